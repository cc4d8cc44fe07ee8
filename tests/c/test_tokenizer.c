/* Tokenizer: word vocabulary ids, truncation, [UNK], serialisation, WordPiece. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tokenizer.h"

static const char *const texts[] = {"The heart is normal.", "No pleural effusion.", "the HEART"};

static void build(reclf_vocab *v, int min_count, int max_size) {
    reclf_err e;
    cr_assert_eq(vocab_build(v, texts, 3, min_count, max_size, &e), 0, "%s", e.msg);
}

Test(tokenizer, word_ids) {
    reclf_vocab v;
    build(&v, 1, 0);
    /* count 2: ".", "heart", "the" (ties alphabetical); count 1: effusion is no normal pleural */
    const char *want[] = {"[PAD]", "[CLS]", "[SEP]", "[UNK]", ".", "heart", "the", "effusion", "is", "no", "normal", "pleural"};
    cr_assert_eq(v.n, 12);
    for (int i = 0; i < 12; i++) cr_assert_str_eq(v.words[i], want[i]);
    cr_assert_eq(vocab_id(&v, "pleural"), 11);
    cr_assert_eq(vocab_id(&v, "enlarged"), -1);
    int32_t ids[10];
    int n = tokenize(&v, "The heart is ENLARGED.", 10, ids);
    int32_t exp[10] = {1, 6, 5, 8, 3, 4, 2, 0, 0, 0};
    cr_assert_eq(n, 7);
    for (int i = 0; i < 10; i++) cr_assert_eq(ids[i], exp[i], "position %d: %d", i, ids[i]);
    /* punctuation split from words, any whitespace */
    n = tokenize(&v, "  no\teffusion,heart\r\n", 10, ids);
    int32_t exp2[6] = {1, 9, 7, 3, 5, 2};
    cr_assert_eq(n, 6);
    for (int i = 0; i < 6; i++) cr_assert_eq(ids[i], exp2[i], "position %d: %d", i, ids[i]);
    vocab_free(&v);
}

Test(tokenizer, truncation_keeps_sep) {
    reclf_vocab v;
    build(&v, 1, 0);
    int32_t ids[4];
    cr_assert_eq(tokenize(&v, "the heart is normal.", 4, ids), 4);
    cr_assert_eq(ids[0], 1);
    cr_assert_eq(ids[1], 6);
    cr_assert_eq(ids[2], 5);
    cr_assert_eq(ids[3], 2);
    int32_t two[2];
    cr_assert_eq(tokenize(&v, "the heart", 2, two), 2);
    cr_assert_eq(two[0], 1);
    cr_assert_eq(two[1], 2);
    cr_assert_eq(tokenize(&v, "x", 1, two), -1);
    int32_t e[5];
    cr_assert_eq(tokenize(&v, "", 5, e), 2);
    cr_assert_eq(e[1], 2);
    cr_assert_eq(e[4], 0);
    vocab_free(&v);
}

Test(tokenizer, min_count_and_max_size) {
    reclf_vocab v;
    build(&v, 2, 0);
    cr_assert_eq(v.n, 7);
    cr_assert_str_eq(v.words[6], "the");
    vocab_free(&v);
    build(&v, 1, 5);
    cr_assert_eq(v.n, 5);
    cr_assert_str_eq(v.words[4], ".");
    vocab_free(&v);
}

Test(tokenizer, serialise_round_trip) {
    reclf_vocab v, w;
    build(&v, 1, 0);
    char *s = vocab_serialize(&v);
    cr_assert_not_null(s);
    const char *head = "reclf-vocab 1 0 12\n[PAD]\n[CLS]\n[SEP]\n[UNK]\n.\nheart\n";
    cr_assert_eq(strncmp(s, head, strlen(head)), 0, "%s", s);
    reclf_err e;
    cr_assert_eq(vocab_deserialize(&w, s, &e), 0, "%s", e.msg);
    cr_assert_eq(w.n, v.n);
    cr_assert_eq(w.wordpiece, 0);
    for (int i = 0; i < v.n; i++) cr_assert_str_eq(w.words[i], v.words[i]);
    int32_t a[12], b[12];
    tokenize(&v, "No pleural effusion; heart normal.", 12, a);
    tokenize(&w, "No pleural effusion; heart normal.", 12, b);
    cr_assert_eq(memcmp(a, b, sizeof a), 0);
    free(s);
    vocab_free(&w);
    vocab_free(&v);
    cr_assert_neq(vocab_deserialize(&w, "garbage", &e), 0);
    cr_assert(strstr(e.msg, "header"), "%s", e.msg);
    cr_assert_neq(vocab_deserialize(&w, "reclf-vocab 1 0 6\n[PAD]\n[CLS]\n[SEP]\n[UNK]\nx\n", &e), 0);
    cr_assert(strstr(e.msg, "6") && strstr(e.msg, "5"), "%s", e.msg);
    cr_assert_neq(vocab_deserialize(&w, "reclf-vocab 1 0 5\n[CLS]\n[PAD]\n[SEP]\n[UNK]\nx\n", &e), 0);
}

Test(tokenizer, wordpiece) {
    char path[] = "/tmp/reclf_test_vocab_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    const char *txt = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\nheart\ncardio\n##mega\n##ly\n.\npleura\n##l\ncardio\n";
    cr_assert_eq(write(fd, txt, strlen(txt)), (ssize_t)strlen(txt));
    close(fd);
    reclf_vocab v;
    reclf_err e;
    cr_assert_eq(vocab_load_bert(&v, path, &e), 0, "%s", e.msg);
    unlink(path);
    /* specials at 0..3 whatever the file order, then the rest in file order, duplicates dropped */
    cr_assert_eq(v.n, 13);
    cr_assert_eq(vocab_id(&v, "[UNK]"), 3);
    cr_assert_eq(vocab_id(&v, "[MASK]"), 4);
    cr_assert_eq(vocab_id(&v, "cardio"), 7);
    cr_assert_eq(vocab_id(&v, "##l"), 12);
    int32_t ids[12];
    int n = tokenize(&v, "Cardiomegaly. Pleural xyz cardiox", 12, ids);
    /* "cardiox" would need "##x": a word that cannot be split entirely is one [UNK] */
    int32_t want[12] = {1, 7, 8, 9, 10, 11, 12, 3, 3, 2, 0, 0};
    cr_assert_eq(n, 10);
    for (int i = 0; i < 12; i++) cr_assert_eq(ids[i], want[i], "position %d: %d", i, ids[i]);
    /* pieces of a word that does not fit are cut with the rest */
    int32_t s[4];
    cr_assert_eq(tokenize(&v, "cardiomegaly", 4, s), 4);
    cr_assert_eq(s[1], 7);
    cr_assert_eq(s[2], 8);
    cr_assert_eq(s[3], 2);
    char *ser = vocab_serialize(&v);
    reclf_vocab w;
    cr_assert_eq(vocab_deserialize(&w, ser, &e), 0, "%s", e.msg);
    cr_assert_eq(w.wordpiece, 1);
    int32_t ids2[12];
    tokenize(&w, "Cardiomegaly. Pleural xyz cardiox", 12, ids2);
    cr_assert_eq(memcmp(ids, ids2, sizeof ids), 0);
    free(ser);
    vocab_free(&w);
    vocab_free(&v);
    cr_assert_neq(vocab_load_bert(&v, "/nonexistent/vocab.txt", &e), 0);
    cr_assert(strstr(e.msg, "/nonexistent/vocab.txt"), "%s", e.msg);
}
