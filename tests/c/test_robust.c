/* Robustness of the code that reads untrusted bytes (docs/ROBUSTNESS.md):
 *  - every input under tests/fuzz/regressions/<harness>/ and tests/fuzz/seeds/<harness>/ is
 *    replayed through the libFuzzer harness itself (tests/fuzz/fuzz_*.c, included here with its
 *    entry point renamed), so crashes found by fuzzing stay fixed without clang, and the
 *    harnesses' properties (round trips, value ranges) are checked on every `make test`;
 *  - a safetensors file with any single byte of its header changed is refused or read consistently;
 *  - an image whose header claims a huge size is refused before anything is allocated;
 *  - a failed atomic write leaves the old file and no temporary file behind;
 *  - the tokenizer on very long and non-UTF-8 text keeps [CLS] ... [SEP] within L;
 *  - a resumed run's metrics log drops the steps past its checkpoint; killed writers' temporary
 *    checkpoint files are removed, a live writer's are not.
 * Run from the repository root (make test-c does). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "image.h"
#include "metrics_log.h"
#include "safetensors.h"
#include "tokenizer.h"

/* the harnesses, each entry point under its own name */
#include "../fuzz/common_fuzz.c"
#define LLVMFuzzerTestOneInput fuzz_manifest_one
#include "../fuzz/fuzz_manifest.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_safetensors_one
#include "../fuzz/fuzz_safetensors.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_vocab_one
#include "../fuzz/fuzz_vocab.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_image_one
#include "../fuzz/fuzz_image.c"
#undef LLVMFuzzerTestOneInput

/* Runs fn on every file of dir; returns the number of files (0 when dir is missing). */
static int replay_dir(const char *dir, int (*fn)(const uint8_t *, size_t)) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unsigned char *data;
        size_t len;
        reclf_err err;
        cr_assert_eq(reclf_read_file(path, &data, &len, &err), 0, "%s", err.msg);
        fprintf(stderr, "replay %s (%zu bytes)\n", path, len);
        fn(data, len); /* a failed property aborts the test, naming the input above */
        free(data);
        n++;
    }
    closedir(d);
    return n;
}

static void replay(const char *harness, int (*fn)(const uint8_t *, size_t)) {
    char dir[256];
    struct stat st;
    cr_assert_eq(stat("tests/fuzz/seeds", &st), 0, "run from the repository root (tests/fuzz/seeds not found)");
    snprintf(dir, sizeof dir, "tests/fuzz/seeds/%s", harness);
    int seeds = replay_dir(dir, fn);
    snprintf(dir, sizeof dir, "tests/fuzz/regressions/%s", harness);
    int regressions = replay_dir(dir, fn);
    cr_assert_gt(seeds, 0, "no seed inputs for %s", harness);
    fprintf(stderr, "%s: %d seeds, %d regressions replayed\n", harness, seeds, regressions);
}

Test(fuzz_replay, manifest) { replay("manifest", fuzz_manifest_one); }
Test(fuzz_replay, safetensors) { replay("safetensors", fuzz_safetensors_one); }
Test(fuzz_replay, vocab) { replay("vocab", fuzz_vocab_one); }
Test(fuzz_replay, image) { replay("image", fuzz_image_one); }

/* The regression found by fuzz_vocab: a vocab.txt token ending in several CRs lost one CR per
 * save/load, so a resumed checkpoint could read a different (or shorter) vocabulary. */
Test(robust, vocab_trailing_crs_round_trip) {
    char path[512];
    const char text[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\nlung\r\r\nheart\r\n\r\r\nrib\n";
    cr_assert_eq(fuzz_write("vocab_cr.txt", (const uint8_t *)text, sizeof text - 1, path, sizeof path), 0);
    reclf_vocab v, w;
    reclf_err err;
    cr_assert_eq(vocab_load_bert(&v, path, &err), 0, "%s", err.msg);
    cr_assert_eq(v.n, 7); /* 4 specials, lung, heart, rib: the line of CRs alone is empty */
    cr_assert_str_eq(v.words[4], "lung");
    cr_assert_str_eq(v.words[5], "heart");
    char *s = vocab_serialize(&v);
    cr_assert_eq(vocab_deserialize(&w, s, &err), 0, "%s", err.msg);
    cr_assert_eq(w.n, 7);
    for (int i = 0; i < 7; i++) cr_assert_str_eq(w.words[i], v.words[i]);
    free(s);
    vocab_free(&v);
    vocab_free(&w);
}

/* Every single-byte change of a small file's header: refused with the file named, or accepted
 * and then every tensor lies inside the data section (the harness reads each byte and checks
 * the round trip). 256 values x every header position. */
Test(robust, safetensors_every_header_byte) {
    unsigned char data[24];
    for (int i = 0; i < 24; i++) data[i] = (unsigned char)i;
    st_writer w;
    st_writer_init(&w);
    reclf_err err;
    int64_t s2[] = {2, 2}, s3[] = {3};
    cr_assert_eq(st_writer_add(&w, "a", ST_F32, 2, s2, data, &err), 0);
    cr_assert_eq(st_writer_add(&w, "b", ST_U16, 1, s3, data + 16, &err), 0);
    cr_assert_eq(st_writer_meta(&w, "k", "v", &err), 0);
    unsigned char *buf;
    size_t len;
    cr_assert_eq(st_writer_serialize(&w, &buf, &len, &err), 0);
    size_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | buf[i];
    long accepted = 0, refused = 0;
    for (size_t pos = 0; pos < 8 + hlen; pos++) {
        unsigned char orig = buf[pos];
        for (int b = 0; b < 256; b++) {
            if (b == orig) continue;
            buf[pos] = (unsigned char)b;
            st_file f;
            if (st_open_memory(buf, len, "flip.safetensors", &f, &err) == 0) {
                accepted++;
                st_close(&f);
                fuzz_safetensors_one(buf, len); /* bounds and round trip */
            } else {
                refused++;
                cr_assert(strstr(err.msg, "flip.safetensors") != NULL, "%s", err.msg);
            }
        }
        buf[pos] = orig;
    }
    /* most changes break the JSON or the sizes; some (a name's letter, padding) are harmless */
    cr_assert_gt(refused, accepted);
    cr_assert_gt(accepted, 0);
    free(buf);
    st_writer_free(&w);
}

/* A PNG header that claims 10000 x 10000 grey pixels (100 MB decoded, 400 MB as floats) in 67
 * bytes: within stb's own limit (2^30 components), refused from the header by ours before stb
 * allocates the pixels. */
Test(robust, image_huge_dimensions_refused, .timeout = 10) {
    static const unsigned char png[] = {
        0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n',
        0, 0, 0, 13, 'I', 'H', 'D', 'R', 0, 0, 0x27, 0x10, 0, 0, 0x27, 0x10, 8, 0, 0, 0, 0,
        0x00, 0x00, 0x00, 0x00, /* CRC (stb does not check it) */
        0, 0, 0, 10, 'I', 'D', 'A', 'T', 0x78, 0x9c, 0x63, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00,
        0x00, 0x00, 0x00, 0x00,
        0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xae, 0x42, 0x60, 0x82};
    float *pix = (float *)1;
    int w = 0, h = 0;
    reclf_err err = {{0}};
    cr_assert_neq(reclf_image_decode(png, sizeof png, "huge.png", &pix, &w, &h, &err), 0);
    cr_assert_null(pix);
    cr_assert(strstr(err.msg, "huge.png") && strstr(err.msg, "10000x10000 pixels is too large"), "%s", err.msg);
}

/* A failed atomic write (rename onto a folder) reports the rename, leaves the target as it was
 * and removes its temporary file. */
Test(robust, atomic_write_failure_leaves_nothing) {
    char dir[] = "/tmp/reclf_test_robust_XXXXXX", target[128], inner[160];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(target, sizeof target, "%s/checkpoint.safetensors", dir);
    cr_assert_eq(mkdir(target, 0755), 0);
    snprintf(inner, sizeof inner, "%s/keep", target);
    FILE *f = fopen(inner, "w");
    cr_assert_not_null(f);
    fputs("x", f);
    fclose(f);
    reclf_err err;
    cr_assert_neq(reclf_write_file_atomic(target, "new", 3, &err), 0);
    cr_assert(strstr(err.msg, "rename") != NULL, "%s", err.msg);
    DIR *d = opendir(dir);
    int entries = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') {
            entries++;
            cr_assert_str_eq(e->d_name, "checkpoint.safetensors", "left behind: %s", e->d_name);
        }
    closedir(d);
    cr_assert_eq(entries, 1);
    cr_assert_eq(access(inner, F_OK), 0);
    /* and into a folder that does not exist: an error naming the temporary file's path */
    char missing[160];
    snprintf(missing, sizeof missing, "%s/no/such/dir/c.st", dir);
    cr_assert_neq(reclf_write_file_atomic(missing, "new", 3, &err), 0);
    cr_assert(strstr(err.msg, "cannot create") != NULL, "%s", err.msg);
    unlink(inner);
    rmdir(target);
    rmdir(dir);
}

/* 200,000 characters of words, punctuation, invalid UTF-8 and control bytes: [CLS], L-2 tokens,
 * [SEP], every id valid; words longer than the tokenizer's limit become [UNK]. */
Test(robust, tokenizer_long_and_binary_text) {
    const char *texts[] = {"the", "lung", "heart", NULL};
    reclf_vocab v;
    reclf_err err;
    cr_assert_eq(vocab_build(&v, texts, 3, 1, 0, &err), 0);
    size_t n = 200000;
    char *s = malloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        unsigned k = (unsigned)(i * 2654435761u >> 7);
        s[i] = "the lung\xff\xfe heart,\x01\t"[k % 19];
    }
    s[n] = 0;
    int32_t ids[64];
    int used = tokenize(&v, s, 64, ids);
    cr_assert_eq(used, 64);
    cr_assert_eq(ids[0], TOK_CLS);
    cr_assert_eq(ids[63], TOK_SEP);
    for (int i = 1; i < 63; i++) cr_assert(ids[i] >= TOK_SEP + 1 && ids[i] < v.n, "id %d at %d", ids[i], i);
    /* one 10,000-letter word: a single [UNK] */
    memset(s, 'a', 10000);
    s[10000] = 0;
    used = tokenize(&v, s, 8, ids);
    cr_assert_eq(used, 3);
    cr_assert_eq(ids[1], TOK_UNK);
    cr_assert_eq(ids[2], TOK_SEP);
    free(s);
    vocab_free(&v);
}

/* The image seeds are valid PNG/JPEG files of known sizes: the checks added to image.c (JPEG
 * Huffman tables, size limit, PNG/JPEG only) must not refuse them; the fuzz regression is refused. */
Test(robust, image_seeds_decode_and_bad_dht_refused) {
    static const struct { const char *file; int w, h; } seeds[] = {
        {"grey16_32x32.png", 32, 32}, {"grey8.jpg", 8, 6}, {"grey8.png", 7, 7},
        {"one_pixel.png", 1, 1},      {"rgb.png", 5, 3},   {"rgba16_8x8.png", 8, 8}};
    char path[256];
    reclf_err err;
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        snprintf(path, sizeof path, "tests/fuzz/seeds/image/%s", seeds[i].file);
        float *pix;
        int w, h;
        cr_assert_eq(reclf_image_load_raw(path, &pix, &w, &h, &err), 0, "%s", err.msg);
        cr_assert(w == seeds[i].w && h == seeds[i].h, "%s: %dx%d", path, w, h);
        free(pix);
    }
    float *pix;
    int w, h;
    cr_assert_neq(reclf_image_load_raw("tests/fuzz/regressions/image/jpeg-dht-too-many-codes", &pix, &w, &h, &err), 0);
    cr_assert(strstr(err.msg, "Huffman table declares more than 256 codes") != NULL, "%s", err.msg);
    cr_assert_neq(reclf_image_load_raw("tests/fuzz/regressions/image/jpeg-dqt-16bit-dc-overflow", &pix, &w, &h, &err), 0);
    cr_assert(strstr(err.msg, "corrupt JPEG image (a") && strstr(err.msg, "quantisation table"), "%s", err.msg);
    cr_assert_neq(reclf_image_load_raw("tests/fuzz/regressions/image/jpeg-undefined-dqt-dc-overflow", &pix, &w, &h, &err), 0);
    cr_assert(strstr(err.msg, "used before it is defined") != NULL, "%s", err.msg);
    cr_assert_neq(reclf_image_load_raw("tests/fuzz/regressions/image/png-empty-idat-null-offset", &pix, &w, &h, &err), 0);
    cr_assert(strstr(err.msg, "an empty IDAT chunk") != NULL, "%s", err.msg);
    /* a BMP header (stb would read it): not PNG or JPEG, refused */
    static const unsigned char bmp[] = {'B', 'M', 58, 0, 0, 0, 0, 0, 0, 0, 54, 0, 0, 0, 40, 0, 0, 0, 1, 0, 0, 0,
                                        1, 0, 0, 0, 1, 0, 24, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 0};
    cr_assert_neq(reclf_image_decode(bmp, sizeof bmp, "x.bmp", &pix, &w, &h, &err), 0);
    cr_assert(strstr(err.msg, "not an image (expected PNG or JPEG") != NULL, "%s", err.msg);
}

/* A run killed after its last checkpoint logged steps that the resumed run logs again: opening the
 * log through the checkpoint's step drops them, and the line the kill cut short. */
Test(robust, metrics_log_drops_steps_past_the_checkpoint) {
    char dir[] = "/tmp/reclf_mlogXXXXXX", path[600];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    const char text[] = "{\"step\": 1, \"loss\": 4}\n{\"step\": 2, \"loss\": 3}\n{\"step\": 3, \"loss\": 2}\n{\"step\": 4, \"lo";
    reclf_err err;
    cr_assert_eq(reclf_write_file_atomic(path, text, sizeof text - 1, &err), 0, "%s", err.msg);
    metrics_log ml;
    cr_assert_eq(metrics_log_open(&ml, path, 2, &err), 0, "%s", err.msg);
    metrics_num n[] = {{"step", 3}, {"loss", 2.5}};
    cr_assert_eq(metrics_log_write(&ml, n, 2, NULL, 0, &err), 0, "%s", err.msg);
    metrics_log_close(&ml);
    unsigned char *data;
    size_t len;
    cr_assert_eq(reclf_read_file(path, &data, &len, &err), 0, "%s", err.msg);
    cr_expect_eq(len, strlen("{\"step\": 1, \"loss\": 4}\n{\"step\": 2, \"loss\": 3}\n{\"step\": 3, \"loss\": 2.5}\n"));
    cr_expect(len > 0 && strstr((char *)data, "\"step\": 3, \"loss\": 2.5}") != NULL, "%.*s", (int)len, data);
    cr_expect(strstr((char *)data, "\"loss\": 2}") == NULL, "the dropped record of step 3 is back");
    free(data);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
}

/* Temporary checkpoint files of killed writers go; a live writer's file stays. */
Test(robust, stale_temporaries_removed) {
    char dir[] = "/tmp/reclf_tmpsXXXXXX", path[600], dead[700], live[700];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", dir);
    snprintf(dead, sizeof dead, "%s.tmp.%ld", path, 2147483600L); /* above any pid_max */
    snprintf(live, sizeof live, "%s.tmp.%ld", path, (long)getpid());
    reclf_err err;
    cr_assert_eq(reclf_write_file_atomic(dead, "x", 1, &err), 0, "%s", err.msg);
    cr_assert_eq(reclf_write_file_atomic(live, "y", 1, &err), 0, "%s", err.msg);
    cr_expect_eq(reclf_remove_stale_temporaries(path), 1);
    cr_expect_neq(access(dead, F_OK), 0, "the dead writer's file is still there");
    cr_expect_eq(access(live, F_OK), 0, "the live writer's file went");
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
}
