/* libFuzzer harness of the vocabulary loaders and the tokenizer (runtime/tokenizer.c).
 * Input: byte 0 picks the loader (even: vocab_deserialize of checkpoint metadata, odd:
 * vocab_load_bert of a vocab.txt file), byte 1 the sequence length L (2..65); the rest is split
 * at the first 0xFF byte into the vocabulary text and a report to tokenize. Properties:
 * [CLS] first, [SEP] at the returned length - 1, [PAD] after it, every id inside the vocabulary;
 * a loaded vocabulary survives vocab_serialize -> vocab_deserialize with the same tokens. */
#include <assert.h>

#include "common_fuzz.h"
#include "tokenizer.h"

static void check_tokens(const reclf_vocab *v, const char *text, int L) {
    int32_t ids[80];
    int n = tokenize(v, text, L, ids);
    assert(n >= 2 && n <= L);
    assert(ids[0] == TOK_CLS && ids[n - 1] == TOK_SEP);
    for (int i = 0; i < L; i++) {
        assert(ids[i] >= 0 && ids[i] < v->n);
        if (i >= n) assert(ids[i] == TOK_PAD);
        if (i > 0 && i < n - 1) assert(ids[i] != TOK_PAD && ids[i] != TOK_CLS && ids[i] != TOK_SEP);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    int use_bert = data[0] & 1, L = 2 + data[1] % 64;
    data += 2, size -= 2;
    const uint8_t *sep = memchr(data, 0xFF, size);
    size_t vlen = sep ? (size_t)(sep - data) : size;
    char *vtext = malloc(vlen + 1), *report = NULL;
    memcpy(vtext, data, vlen);
    vtext[vlen] = 0;
    if (sep) {
        size_t rlen = size - vlen - 1;
        report = malloc(rlen + 1);
        memcpy(report, sep + 1, rlen);
        report[rlen] = 0;
    }
    reclf_vocab v;
    reclf_err err = {{0}};
    int rc;
    if (use_bert) {
        char path[512];
        if (fuzz_write("vocab.txt", data, vlen, path, sizeof path)) abort();
        rc = vocab_load_bert(&v, path, &err);
        if (rc) assert(strstr(err.msg, path) != NULL);
    } else {
        rc = vocab_deserialize(&v, vtext, &err);
        if (rc) assert(strncmp(err.msg, "vocabulary", 10) == 0);
    }
    if (rc == 0) {
        assert(v.n >= TOK_N_SPECIAL);
        assert(vocab_id(&v, "[PAD]") == TOK_PAD && vocab_id(&v, "[UNK]") == TOK_UNK);
        check_tokens(&v, report ? report : vtext, L);
        char *s = vocab_serialize(&v);
        reclf_vocab w;
        if (!s || vocab_deserialize(&w, s, &err) != 0) {
            fprintf(stderr, "round trip: %s\n", err.msg);
            abort();
        }
        assert(w.n == v.n && w.wordpiece == v.wordpiece);
        for (int i = 0; i < v.n; i++) assert(!strcmp(w.words[i], v.words[i]));
        vocab_free(&w);
        free(s);
        vocab_free(&v);
    }
    free(vtext);
    free(report);
    return 0;
}
