#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "safetensors.h"

// a file made of an 8-byte length, the given header text and `data_len` bytes of data
static unsigned char *make_file(const char *header, const void *data, size_t data_len, size_t *len) {
    size_t h = strlen(header);
    unsigned char *buf = malloc(8 + h + data_len + 1);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(buf + 8, header, h);
    if (data_len) memcpy(buf + 8 + h, data, data_len);
    *len = 8 + h + data_len;
    return buf;
}

// parses a file made of header + data and expects a refusal whose message has every `needles`
static void expect_refused(const char *header, size_t data_len, const char *needle1, const char *needle2) {
    unsigned char zeros[64] = {0};
    size_t len;
    unsigned char *buf = make_file(header, zeros, data_len, &len);
    st_file f;
    reclf_err err = {{0}};
    int rc = st_open_memory(buf, len, "bad.safetensors", &f, &err);
    cr_assert_neq(rc, 0, "accepted: %s", header);
    cr_assert(strstr(err.msg, "bad.safetensors") != NULL, "message without the file: %s", err.msg);
    if (needle1) cr_assert(strstr(err.msg, needle1) != NULL, "'%s' not in: %s", needle1, err.msg);
    if (needle2) cr_assert(strstr(err.msg, needle2) != NULL, "'%s' not in: %s", needle2, err.msg);
    cr_assert_eq(f.n_tensors, 0);
    st_close(&f);
    free(buf);
}

static char tmpdir[64];

static void make_tmpdir(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/reclf_st_XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
}

static void rm_tmpdir(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(safetensors, .init = make_tmpdir, .fini = rm_tmpdir);

Test(safetensors, round_trip) {
    float a[6] = {1, -2, 3.5f, 0, 1e-30f, -7};
    double b[4] = {1.0 / 3, -2, 1e300, 0};
    int32_t c[4] = {-1, 2, INT32_MAX, INT32_MIN};
    int64_t d[1] = {-1234567890123LL};
    uint8_t e[5] = {0, 1, 2, 254, 255};
    int64_t sa[2] = {2, 3}, sb[1] = {4}, sc[2] = {2, 2}, se[1] = {5}, sz[2] = {0, 3};
    st_writer w;
    st_writer_init(&w);
    reclf_err err;
    cr_assert_eq(st_writer_add(&w, "layer.weight", ST_F32, 2, sa, a, &err), 0, "%s", err.msg);
    cr_assert_eq(st_writer_add(&w, "b64", ST_F64, 1, sb, b, &err), 0, "%s", err.msg);
    cr_assert_eq(st_writer_add(&w, "ints", ST_I32, 2, sc, c, &err), 0, "%s", err.msg);
    cr_assert_eq(st_writer_add(&w, "scalar", ST_I64, 0, NULL, d, &err), 0, "%s", err.msg);
    cr_assert_eq(st_writer_add(&w, "bytes", ST_U8, 1, se, e, &err), 0, "%s", err.msg);
    cr_assert_eq(st_writer_add(&w, "empty", ST_F32, 2, sz, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(st_writer_meta(&w, "model", "reclf", &err), 0);
    cr_assert_eq(st_writer_meta(&w, "config", "{\"d\": 128, \"name\": \"x\\ny\"}", &err), 0);
    cr_assert_eq(st_writer_meta(&w, "step", "1", &err), 0);
    cr_assert_eq(st_writer_meta(&w, "step", "12", &err), 0); // replaced
    // writer refusals
    cr_assert_neq(st_writer_add(&w, "bytes", ST_U8, 1, se, e, &err), 0);
    cr_assert(strstr(err.msg, "'bytes'") != NULL, "%s", err.msg);
    cr_assert_neq(st_writer_add(&w, "__metadata__", ST_U8, 1, se, e, &err), 0);

    char path[128];
    snprintf(path, sizeof path, "%s/rt.safetensors", tmpdir);
    cr_assert_eq(st_writer_write(&w, path, &err), 0, "%s", err.msg);
    // deterministic: the same tensors serialise to the same bytes
    unsigned char *s1, *s2;
    size_t l1, l2;
    cr_assert_eq(st_writer_serialize(&w, &s1, &l1, &err), 0);
    cr_assert_eq(st_writer_serialize(&w, &s2, &l2, &err), 0);
    cr_assert_eq(l1, l2);
    cr_assert_eq(memcmp(s1, s2, l1), 0);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | s1[i];
    cr_assert_eq((8 + hl) % 8, 0, "data section not 8-aligned: header %llu", (unsigned long long)hl);
    cr_assert_eq(s1[8], '{');
    cr_assert(s1[8 + hl - 1] == '}' || s1[8 + hl - 1] == ' ');
    free(s1);
    free(s2);
    st_writer_free(&w);

    st_file f;
    cr_assert_eq(st_open(path, &f, &err), 0, "%s", err.msg);
    cr_assert_eq(f.n_tensors, 6);
    const char *order[6] = {"layer.weight", "b64", "ints", "scalar", "bytes", "empty"};
    for (int i = 0; i < 6; i++) cr_assert_str_eq(f.tensors[i].name, order[i]); // order as given
    const st_tensor *t = st_find(&f, "layer.weight");
    cr_assert_not_null(t);
    cr_assert_eq(t->dtype, ST_F32);
    cr_assert_eq(t->ndim, 2);
    cr_assert(t->shape[0] == 2 && t->shape[1] == 3);
    cr_assert_eq(t->nbytes, sizeof a);
    cr_assert_eq(memcmp(t->data, a, sizeof a), 0);
    cr_assert_eq((uintptr_t)t->data % 4, 0);
    t = st_find(&f, "b64");
    cr_assert(t && t->dtype == ST_F64 && t->ndim == 1 && t->shape[0] == 4 && memcmp(t->data, b, sizeof b) == 0);
    t = st_find(&f, "ints");
    cr_assert(t && t->dtype == ST_I32 && t->numel == 4 && memcmp(t->data, c, sizeof c) == 0);
    t = st_find(&f, "scalar");
    cr_assert(t && t->dtype == ST_I64 && t->ndim == 0 && t->numel == 1 && memcmp(t->data, d, sizeof d) == 0);
    t = st_find(&f, "bytes");
    cr_assert(t && t->dtype == ST_U8 && memcmp(t->data, e, sizeof e) == 0);
    t = st_find(&f, "empty");
    cr_assert(t && t->numel == 0 && t->nbytes == 0 && t->shape[0] == 0 && t->shape[1] == 3);
    cr_assert_null(st_find(&f, "nope"));
    cr_assert_str_eq(st_meta(&f, "model"), "reclf");
    cr_assert_str_eq(st_meta(&f, "config"), "{\"d\": 128, \"name\": \"x\\ny\"}");
    cr_assert_str_eq(st_meta(&f, "step"), "12");
    cr_assert_null(st_meta(&f, "nope"));
    st_close(&f);
    st_close(&f); // closing twice is harmless
}

Test(safetensors, every_truncation_refused) {
    float a[3] = {1, 2, 3};
    int64_t s[1] = {3};
    st_writer w;
    st_writer_init(&w);
    cr_assert_eq(st_writer_add(&w, "a", ST_F32, 1, s, a, NULL), 0);
    unsigned char *buf;
    size_t len;
    cr_assert_eq(st_writer_serialize(&w, &buf, &len, NULL), 0);
    st_writer_free(&w);
    // the whole file parses; every shorter prefix is refused with a message
    st_file f;
    reclf_err err;
    cr_assert_eq(st_open_memory(buf, len, "t.safetensors", &f, &err), 0, "%s", err.msg);
    st_close(&f);
    for (size_t n = 0; n < len; n++) {
        err.msg[0] = 0;
        cr_assert_neq(st_open_memory(buf, n, "t.safetensors", &f, &err), 0, "prefix of %zu bytes accepted", n);
        cr_assert(strstr(err.msg, "t.safetensors") != NULL, "%s", err.msg);
    }
    // on disk too
    char path[128];
    snprintf(path, sizeof path, "%s/trunc.safetensors", tmpdir);
    FILE *fp = fopen(path, "wb");
    fwrite(buf, 1, len - 2, fp);
    fclose(fp);
    cr_assert_neq(st_open(path, &f, &err), 0);
    cr_assert(strstr(err.msg, "'a'") != NULL && strstr(err.msg, "past") != NULL, "%s", err.msg);
    free(buf);
}

Test(safetensors, short_file_and_missing_file) {
    st_file f;
    reclf_err err;
    cr_assert_neq(st_open_memory("abc", 3, "tiny.safetensors", &f, &err), 0);
    cr_assert(strstr(err.msg, "too short") != NULL, "%s", err.msg);
    cr_assert_neq(st_open("/nonexistent/x.safetensors", &f, &err), 0);
    cr_assert(strstr(err.msg, "/nonexistent/x.safetensors") != NULL, "%s", err.msg);
}

Test(safetensors, header_length_past_end) {
    unsigned char buf[40] = {0};
    buf[0] = 0xe8; // 1000 bytes of header in a 40-byte file
    buf[1] = 0x03;
    memcpy(buf + 8, "{}", 2);
    st_file f;
    reclf_err err;
    cr_assert_neq(st_open_memory(buf, sizeof buf, "h.safetensors", &f, &err), 0);
    cr_assert(strstr(err.msg, "past the end") != NULL, "%s", err.msg);
    // absurd: 2^63
    memset(buf, 0, 8);
    buf[7] = 0x80;
    cr_assert_neq(st_open_memory(buf, sizeof buf, "h.safetensors", &f, &err), 0);
    cr_assert(strstr(err.msg, "absurd") != NULL, "%s", err.msg);
    // all ones: 2^64 - 1, where 8 + n would wrap around
    memset(buf, 0xff, 8);
    cr_assert_neq(st_open_memory(buf, sizeof buf, "h.safetensors", &f, &err), 0);
}

Test(safetensors, malformed_headers) {
    // offsets past the end of the data section (4 bytes of data)
    expect_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "'a'", "past");
    // offsets that overflow 64 bits: jansson refuses integers past 2^63 - 1
    expect_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,18446744073709551624]}}", 8, NULL,
                   NULL);
    // offsets near 2^63: end past data, and end - begin would be huge
    expect_refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[7],\"data_offsets\":[9223372036854775800,9223372036854775807]}}",
                   8, "'a'", "past");
    expect_refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[-2,0]}}", 8, "'a'", "negative");
    // begin after end
    expect_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8, "'a'", "begin after");
    // a shape whose element count overflows
    expect_refused("{\"big\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,8]}}", 8,
                   "'big'", "overflow");
    // element count fits but bytes overflow
    expect_refused("{\"big\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904],\"data_offsets\":[0,8]}}", 8, "'big'",
                   "overflow");
    // unknown dtype
    expect_refused("{\"a\":{\"dtype\":\"F31\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8, "'a'", "F31");
    // size different from dtype size x product(shape): F32 [3] needs 12 bytes, offsets give 8
    expect_refused("{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "'w'", "needs 12");
    // not JSON, JSON but not an object, empty header
    expect_refused("this is not json", 8, "not valid JSON", NULL);
    expect_refused("[1,2,3]", 8, "not an object", NULL);
    expect_refused("", 8, "JSON", NULL);
    // duplicate names
    expect_refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                   "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
                   8, "duplicate", NULL);
    // entry fields
    expect_refused("{\"a\":7}", 8, "'a'", NULL);
    expect_refused("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 8, "'a'", "dtype");
    expect_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":\"1\",\"data_offsets\":[0,4]}}", 8, "'a'", "shape");
    expect_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 8, "'a'", "shape");
    expect_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 8, "'a'", "shape");
    expect_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 8, "'a'",
                   "dimensions");
    expect_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 8, "'a'", "data_offsets");
    expect_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 8, "'a'", "data_offsets");
    // metadata must map strings to strings
    expect_refused("{\"__metadata__\":{\"step\":3}}", 8, "step", NULL);
    expect_refused("{\"__metadata__\":[]}", 8, "__metadata__", NULL);
    // a bad tensor after a good one
    expect_refused("{\"ok\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                   "\"bad\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,1]}}",
                   8, "'bad'", NULL);
}

Test(safetensors, overlap_allowed_and_unaligned_header) {
    // two tensors over the same bytes; a 7-byte-longer header leaves the data unaligned in the file
    const char *hdr = "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                      "\"y\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[4,8]}}";
    float vals[2] = {1.5f, -2.0f};
    size_t len;
    unsigned char *buf = make_file(hdr, vals, sizeof vals, &len);
    st_file f;
    reclf_err err;
    cr_assert_eq(st_open_memory(buf, len, "ov.safetensors", &f, &err), 0, "%s", err.msg);
    const st_tensor *x = st_find(&f, "x"), *y = st_find(&f, "y");
    cr_assert(x && y);
    cr_assert_eq((uintptr_t)x->data % 8, 0);
    cr_assert_eq(((const float *)x->data)[0], 1.5f);
    cr_assert_eq(((const float *)x->data)[1], -2.0f);
    cr_assert_eq((const char *)y->data, (const char *)x->data + 4);
    cr_assert_eq(f.n_meta, 0);
    st_close(&f);
    free(buf);
}
