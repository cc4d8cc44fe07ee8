#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "common.h"
#include "params.h"
#include "rng.h"
#include "safetensors.h"

// a small training graph: 60 packed elements
static const reclf_param_desc TRAIN_P[] = {
    {"image.stem.weight", 4, {2, 1, 3, 3}, 0, 18, RECLF_INIT_UNIFORM, 0.3, 1, "test:1"},
    {"image.stem.bias", 1, {2}, 18, 2, RECLF_INIT_UNIFORM, 0.1, 0, "test:2"},
    {"text.tok_emb", 2, {5, 4}, 20, 20, RECLF_INIT_NORMAL, 0.02, 0, "test:3"},
    {"srm.Wo", 2, {4, 4}, 40, 16, RECLF_INIT_ZEROS, 0, 1, "test:4"},
    {"text.ln_f.weight", 1, {4}, 56, 4, RECLF_INIT_ONES, 0, 0, "test:5"},
};
static const reclf_graph TRAIN = {.name = "tiny", .n_params = 5, .params = TRAIN_P, .n_param_elems = 60};

// the same names, but image.stem.bias has 3 entries
static const reclf_param_desc RESHAPED_P[] = {
    {"image.stem.weight", 4, {2, 1, 3, 3}, 0, 18, RECLF_INIT_UNIFORM, 0.3, 1, "test:1"},
    {"image.stem.bias", 1, {3}, 18, 3, RECLF_INIT_UNIFORM, 0.1, 0, "test:2"},
    {"text.tok_emb", 2, {5, 4}, 21, 20, RECLF_INIT_NORMAL, 0.02, 0, "test:3"},
    {"srm.Wo", 2, {4, 4}, 41, 16, RECLF_INIT_ZEROS, 0, 1, "test:4"},
    {"text.ln_f.weight", 1, {4}, 57, 4, RECLF_INIT_ONES, 0, 0, "test:5"},
};
static const reclf_graph RESHAPED = {.name = "tiny", .n_params = 5, .params = RESHAPED_P, .n_param_elems = 61};

// one more parameter than the checkpoint has
static const reclf_param_desc EXTRA_P[] = {
    {"image.stem.weight", 4, {2, 1, 3, 3}, 0, 18, RECLF_INIT_UNIFORM, 0.3, 1, "test:1"},
    {"irm.Wa", 2, {4, 4}, 18, 16, RECLF_INIT_UNIFORM, 0.5, 1, "test:6"},
};
static const reclf_graph EXTRA = {.name = "tiny", .n_params = 2, .params = EXTRA_P, .n_param_elems = 34};

// an evaluation graph: the image stem under the training names (other offsets), plus its own head
static const reclf_param_desc EVAL_P[] = {
    {"head.weight", 2, {3, 2}, 0, 6, RECLF_INIT_UNIFORM, 0.7, 1, "eval:1"},
    {"image.stem.bias", 1, {2}, 6, 2, RECLF_INIT_ZEROS, 0, 0, "eval:2"},
    {"image.stem.weight", 4, {2, 1, 3, 3}, 8, 18, RECLF_INIT_ZEROS, 0, 1, "eval:3"},
};
static const reclf_graph EVAL = {.name = "tiny-eval", .n_params = 3, .params = EVAL_P, .n_param_elems = 26};

static const reclf_graph OTHER = {.name = "other", .n_params = 5, .params = TRAIN_P, .n_param_elems = 60};

static char tmpdir[64];
static char path[128];

static void setup(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/reclf_ckpt_XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
    snprintf(path, sizeof path, "%s/ckpt.safetensors", tmpdir);
}

static void teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(checkpoint, .init = setup, .fini = teardown);

// writes a full training checkpoint (params, moments, metadata) of TRAIN
static void save_train(float *p, float *m, float *v, ckpt_meta *meta) {
    reclf_err err;
    cr_assert_eq(params_init(&TRAIN, p, 1, &err), 0, "%s", err.msg);
    for (int i = 0; i < 60; i++) {
        m[i] = 0.001f * (float)i;
        v[i] = 0.0001f * (float)(60 - i);
    }
    rng_t r;
    rng_seed(&r, 99);
    rng_u64(&r);
    memset(meta, 0, sizeof *meta);
    meta->step = 123;
    rng_to_text(&r, meta->rng, sizeof meta->rng);
    meta->vocab = "[PAD]\n[CLS]\n[SEP]\n[UNK]\nleft\nright";
    meta->config = "{\"d\": 128, \"lr\": 0.001}";
    cr_assert_eq(ckpt_save(path, &TRAIN, p, m, v, meta, &err), 0, "%s", err.msg);
}

Test(checkpoint, params_init_kinds_and_determinism) {
    float a[60], b[60], c[60];
    reclf_err err;
    cr_assert_eq(params_init(&TRAIN, a, 1, &err), 0, "%s", err.msg);
    cr_assert_eq(params_init(&TRAIN, b, 1, &err), 0, "%s", err.msg);
    cr_assert_eq(params_init(&TRAIN, c, 2, &err), 0, "%s", err.msg);
    cr_assert_eq(memcmp(a, b, sizeof a), 0);
    cr_assert_neq(memcmp(a, c, sizeof a), 0);
    for (int i = 0; i < 18; i++) cr_assert(fabsf(a[i]) <= 0.3f && a[i] != 0.0f);
    for (int i = 18; i < 20; i++) cr_assert(fabsf(a[i]) <= 0.1f);
    double s2 = 0;
    for (int i = 20; i < 40; i++) s2 += (double)a[i] * a[i];
    cr_assert(sqrt(s2 / 20) > 0.005 && sqrt(s2 / 20) < 0.05, "tok_emb rms %g", sqrt(s2 / 20));
    for (int i = 40; i < 56; i++) cr_assert_eq(a[i], 0.0f);
    for (int i = 56; i < 60; i++) cr_assert_eq(a[i], 1.0f);
    // each parameter's values depend on its name only: the eval graph's copy of the stem
    // (other offset, other table) starts with the same values for the same seed
    float e[26];
    static const reclf_param_desc U[] = {
        {"head.weight", 2, {3, 2}, 0, 6, RECLF_INIT_UNIFORM, 0.7, 1, "u"},
        {"image.stem.weight", 4, {2, 1, 3, 3}, 6, 18, RECLF_INIT_UNIFORM, 0.3, 1, "u"},
    };
    reclf_graph ug = {.name = "u", .n_params = 2, .params = U, .n_param_elems = 24};
    cr_assert_eq(params_init(&ug, e, 1, &err), 0, "%s", err.msg);
    cr_assert_eq(memcmp(e + 6, a, 18 * sizeof(float)), 0);
    // decay mask: stem weight and Wo only
    unsigned char mask[60];
    cr_assert_eq(params_decay_mask(&TRAIN, mask, &err), 0);
    for (int i = 0; i < 60; i++) cr_assert_eq(mask[i], (i < 18 || (i >= 40 && i < 56)) ? 1 : 0, "element %d", i);
}

Test(checkpoint, params_table_errors) {
    static const reclf_param_desc BAD[] = {
        {"a", 1, {4}, 0, 4, RECLF_INIT_ZEROS, 0, 0, "x"},
        {"b", 1, {4}, 4, 5, RECLF_INIT_ZEROS, 0, 0, "x"},
    };
    reclf_graph g = {.name = "bad", .n_params = 2, .params = BAD, .n_param_elems = 9};
    float p[9];
    reclf_err err;
    cr_assert_neq(params_init(&g, p, 1, &err), 0);
    cr_assert(strstr(err.msg, "parameter b") != NULL, "%s", err.msg);
    static const reclf_param_desc OUT[] = {{"a", 1, {4}, 2, 4, RECLF_INIT_ZEROS, 0, 0, "x"}};
    reclf_graph g2 = {.name = "bad", .n_params = 1, .params = OUT, .n_param_elems = 5};
    cr_assert_neq(params_init(&g2, p, 1, &err), 0);
    cr_assert(strstr(err.msg, "parameter a") != NULL && strstr(err.msg, "outside") != NULL, "%s", err.msg);
}

Test(checkpoint, round_trip) {
    float p[60], m[60], v[60];
    ckpt_meta meta;
    save_train(p, m, v, &meta);
    float p2[60] = {0}, m2[60] = {0}, v2[60] = {0};
    ckpt_meta got;
    reclf_err err;
    cr_assert_eq(ckpt_load(path, &TRAIN, p2, m2, v2, &got, &err), 0, "%s", err.msg);
    cr_assert_eq(memcmp(p, p2, sizeof p), 0);
    cr_assert_eq(memcmp(m, m2, sizeof m), 0);
    cr_assert_eq(memcmp(v, v2, sizeof v), 0);
    cr_assert_str_eq(got.model, "tiny");
    cr_assert_eq(got.step, 123);
    cr_assert_str_eq(got.rng, meta.rng);
    cr_assert_str_eq(got.vocab, meta.vocab);
    cr_assert_str_eq(got.config, meta.config);
    cr_assert_eq(got.has_moments, 1);
    // the saved generator state continues the same stream
    rng_t a, b;
    rng_seed(&a, 99);
    rng_u64(&a);
    cr_assert_eq(rng_from_text(&b, got.rng), 0);
    cr_assert_eq(rng_u64(&a), rng_u64(&b));
    ckpt_meta_free(&got);

    // the file is plain safetensors with the SPEC names and shapes
    st_file f;
    cr_assert_eq(st_open(path, &f, &err), 0, "%s", err.msg);
    cr_assert_eq(f.n_tensors, 15);
    cr_assert_str_eq(f.tensors[0].name, "image.stem.weight");
    cr_assert_str_eq(f.tensors[5].name, "optim.m.image.stem.weight");
    cr_assert_str_eq(f.tensors[14].name, "optim.v.text.ln_f.weight");
    const st_tensor *t = st_find(&f, "image.stem.weight");
    cr_assert(t && t->dtype == ST_F32 && t->ndim == 4 && t->shape[0] == 2 && t->shape[1] == 1 && t->shape[2] == 3);
    cr_assert_str_eq(st_meta(&f, "format"), CKPT_FORMAT);
    cr_assert_str_eq(st_meta(&f, "step"), "123");
    st_close(&f);

    // weights only (evaluation): moments not asked for
    float p3[60] = {0};
    cr_assert_eq(ckpt_load(path, &TRAIN, p3, NULL, NULL, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(memcmp(p, p3, sizeof p), 0);
}

Test(checkpoint, deterministic_bytes) {
    float p[60], m[60], v[60];
    ckpt_meta meta;
    save_train(p, m, v, &meta);
    unsigned char *a, *b;
    size_t la, lb;
    reclf_err err;
    cr_assert_eq(reclf_read_file(path, &a, &la, &err), 0);
    cr_assert_eq(ckpt_save(path, &TRAIN, p, m, v, &meta, &err), 0, "%s", err.msg);
    cr_assert_eq(reclf_read_file(path, &b, &lb, &err), 0);
    cr_assert_eq(la, lb);
    cr_assert_eq(memcmp(a, b, la), 0);
    free(a);
    free(b);
}

Test(checkpoint, weights_only_file) {
    float p[60];
    reclf_err err;
    cr_assert_eq(params_init(&TRAIN, p, 3, &err), 0);
    ckpt_meta meta = {.step = 7};
    cr_assert_eq(ckpt_save(path, &TRAIN, p, NULL, NULL, &meta, &err), 0, "%s", err.msg);
    float p2[60], m[60], v[60];
    ckpt_meta got;
    cr_assert_eq(ckpt_load(path, &TRAIN, p2, NULL, NULL, &got, &err), 0, "%s", err.msg);
    cr_assert_eq(got.has_moments, 0);
    cr_assert_eq(got.step, 7);
    cr_assert_str_eq(got.vocab, "");
    ckpt_meta_free(&got);
    // resuming needs the moments
    cr_assert_neq(ckpt_load(path, &TRAIN, p2, m, v, NULL, &err), 0);
    cr_assert(strstr(err.msg, "optim.m.image.stem.weight") != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, path) != NULL, "%s", err.msg);
}

Test(checkpoint, wrong_shape_refused) {
    float p[60], m[60], v[60], q[61];
    ckpt_meta meta;
    save_train(p, m, v, &meta);
    reclf_err err;
    cr_assert_neq(ckpt_load(path, &RESHAPED, q, NULL, NULL, NULL, &err), 0);
    cr_assert(strstr(err.msg, "'image.stem.bias'") != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, "[2]") != NULL && strstr(err.msg, "[3]") != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, path) != NULL, "%s", err.msg);
    // by name too
    cr_assert_neq(ckpt_load_params_by_name(path, &RESHAPED, q, 0, NULL, &err), 0);
    cr_assert(strstr(err.msg, "'image.stem.bias'") != NULL, "%s", err.msg);
}

Test(checkpoint, missing_tensor_refused) {
    float p[60], m[60], v[60], q[34];
    ckpt_meta meta;
    save_train(p, m, v, &meta);
    reclf_err err;
    cr_assert_neq(ckpt_load(path, &EXTRA, q, NULL, NULL, NULL, &err), 0);
    cr_assert(strstr(err.msg, "'irm.Wa'") != NULL && strstr(err.msg, "missing") != NULL, "%s", err.msg);
}

Test(checkpoint, other_model_refused) {
    float p[60], m[60], v[60], q[60];
    ckpt_meta meta;
    save_train(p, m, v, &meta);
    reclf_err err;
    cr_assert_neq(ckpt_load(path, &OTHER, q, NULL, NULL, NULL, &err), 0);
    cr_assert(strstr(err.msg, "checkpoint of model tiny, expected other") != NULL, "%s", err.msg);
}

Test(checkpoint, not_a_checkpoint) {
    reclf_err err;
    FILE *f = fopen(path, "wb");
    fputs("hello", f);
    fclose(f);
    float q[60];
    cr_assert_neq(ckpt_load(path, &TRAIN, q, NULL, NULL, NULL, &err), 0);
    cr_assert(strstr(err.msg, path) != NULL, "%s", err.msg);
    // a safetensors file without our metadata
    st_writer w;
    st_writer_init(&w);
    int64_t s[1] = {2};
    float x[2] = {1, 2};
    cr_assert_eq(st_writer_add(&w, "image.stem.bias", ST_F32, 1, s, x, &err), 0);
    cr_assert_eq(st_writer_write(&w, path, &err), 0, "%s", err.msg);
    st_writer_free(&w);
    cr_assert_neq(ckpt_load(path, &TRAIN, q, NULL, NULL, NULL, &err), 0);
    cr_assert(strstr(err.msg, "format") != NULL, "%s", err.msg);
    cr_assert_neq(ckpt_load(path, &TRAIN, q, q, NULL, NULL, &err), 0); // m without v
}

Test(checkpoint, load_by_name_into_eval_graph) {
    float p[60], m[60], v[60];
    ckpt_meta meta;
    save_train(p, m, v, &meta);
    float e[26];
    for (int i = 0; i < 26; i++) e[i] = -9.0f;
    reclf_err err;
    int n = -1;
    cr_assert_eq(ckpt_load_params_by_name(path, &EVAL, e, 0, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 2);
    for (int i = 0; i < 6; i++) cr_assert_eq(e[i], -9.0f); // head.weight: not in the file, untouched
    cr_assert_eq(memcmp(e + 6, p + 18, 2 * sizeof(float)), 0);  // image.stem.bias
    cr_assert_eq(memcmp(e + 8, p + 0, 18 * sizeof(float)), 0);  // image.stem.weight
    // strict: the head must be there too
    cr_assert_neq(ckpt_load_params_by_name(path, &EVAL, e, 1, &n, &err), 0);
    cr_assert(strstr(err.msg, "'head.weight'") != NULL && strstr(err.msg, "missing") != NULL, "%s", err.msg);
    // strict works for the training graph itself
    float p2[60];
    cr_assert_eq(ckpt_load_params_by_name(path, &TRAIN, p2, 1, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 5);
    cr_assert_eq(memcmp(p, p2, sizeof p), 0);
}
