/* Tests of the downstream evaluation (runtime/eval.c, runtime/cmd_eval.c): the scoring rules on
 * hand-made matrices, block-by-block scoring against one block, and an end-to-end run of
 * `reclf eval` on a freshly initialised reclf checkpoint. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "dataset.h"
#include "eval.h"
#include "params.h"
#include "session.h"
#include "synth.h"

/* ---- scoring rules ---------------------------------------------------------------------------- */

Test(eval, combine_is_half_sum_or_global) {
    float G[3] = {1, 2, -4}, L[3] = {3, -2, 1}, S[3];
    eval_combine(G, L, 3, S);
    cr_assert_float_eq(S[0], 2.0f, 0);
    cr_assert_float_eq(S[1], 0.0f, 0);
    cr_assert_float_eq(S[2], -1.5f, 0);
    eval_combine(G, NULL, 3, S); /* convirt: global only */
    cr_assert_float_eq(S[2], -4.0f, 0);
}

/* Two classes, six prompts, two images. S is [prompt, image]:
 *   p0 class 0 +   {1, 4}       p3 class 1 +   {5, 0}
 *   p1 class 0 +   {3, 2}       p4 class 1 -   {1, 1}
 *   p2 class 0 -   {2, 6}       p5 class 1 -   {3, 5}
 * image 0: class 0 pos (1+3)/2 = 2, neg 2 -> 0;   class 1 pos 5, neg (1+3)/2 = 2 -> 3
 * image 1: class 0 pos (4+2)/2 = 3, neg 6 -> -3;  class 1 pos 0, neg (1+5)/2 = 3 -> -3 */
Test(eval, zeroshot_rule_by_hand) {
    const float S[6 * 2] = {1, 4, 3, 2, 2, 6, 5, 0, 1, 1, 3, 5};
    const int cls[6] = {0, 0, 0, 1, 1, 1}, pos[6] = {1, 1, 0, 1, 0, 0};
    float score[4], mp[4];
    eval_zeroshot_scores(S, 6, 2, cls, pos, 2, score, mp);
    const float want_score[4] = {0, 3, -3, -3}, want_pos[4] = {2, 5, 3, 0};
    for (int i = 0; i < 4; i++) {
        cr_assert_float_eq(score[i], want_score[i], 1e-6, "score[%d] = %g", i, score[i]);
        cr_assert_float_eq(mp[i], want_pos[i], 1e-6, "pos[%d] = %g", i, mp[i]);
    }
    /* the prompt order does not matter: the same prompts shuffled give the same scores */
    const float S2[6 * 2] = {3, 5, 2, 6, 5, 0, 1, 4, 1, 1, 3, 2};
    const int cls2[6] = {1, 0, 1, 0, 1, 0}, pos2[6] = {0, 0, 1, 1, 0, 1};
    float score2[4];
    eval_zeroshot_scores(S2, 6, 2, cls2, pos2, 2, score2, NULL);
    for (int i = 0; i < 4; i++) cr_assert_float_eq(score2[i], want_score[i], 1e-6);
}

Test(eval, binding_accuracy_by_hand) {
    const float own[6] = {2, 1, 5, 3, 0, 9}, other[6] = {1, 1, 6, 2, 4, -9};
    const int valid[6] = {1, 1, 1, 1, 1, 0};
    long n;
    /* wins: 0, 3; tie: 1 (counts 1/2); losses: 2, 4; 5 not counted -> 2.5 / 5 */
    cr_assert_float_eq(eval_binding_accuracy(own, other, valid, 6, &n), 0.5, 1e-12);
    cr_assert_eq(n, 5);
    const int v2[6] = {1, 0, 0, 1, 0, 1}; /* all wins */
    cr_assert_float_eq(eval_binding_accuracy(own, other, v2, 6, &n), 1.0, 1e-12);
    cr_assert_eq(n, 3);
    cr_assert_float_eq(eval_binding_accuracy(own, other, NULL, 3, &n), 1.5 / 3, 1e-12);
    const int none[6] = {0};
    cr_assert_float_eq(eval_binding_accuracy(own, other, none, 6, &n), 0.5, 0);
    cr_assert_eq(n, 0);
}

/* ---- a fresh checkpoint ------------------------------------------------------------------------- */

static char ckpt_path[256], json_path[256], png_path[256];

static void make_checkpoint(void) {
    reclf_err err = {{0}};
    session s;
    reclf_dataset ds;
    snprintf(ckpt_path, sizeof ckpt_path, "/tmp/test_eval_%d.safetensors", (int)getpid());
    snprintf(json_path, sizeof json_path, "/tmp/test_eval_%d.json", (int)getpid());
    snprintf(png_path, sizeof png_path, "/tmp/test_eval_%d.png", (int)getpid());
    cr_assert_eq(session_open(&s, "reclf", 0, &err), 0, "%s", err.msg);
    cr_assert_eq(params_init(s.g, s.params, 7, &err), 0, "%s", err.msg);
    cr_assert_eq(dataset_open(&ds, "synth", SPLIT_TRAIN, s.cfg.image, 1, 0, &err), 0, "%s", err.msg);
    cr_assert_eq(dataset_build_vocab(&ds, 1000, 1, s.cfg.vocab, &s.vocab, &err), 0, "%s", err.msg);
    s.have_vocab = 1;
    cr_assert_eq(session_save(&s, ckpt_path, "{}", &err), 0, "%s", err.msg);
    dataset_close(&ds);
    session_close(&s);
}

static void cleanup(void) {
    remove(ckpt_path);
    remove(json_path);
    remove(png_path);
}

/* Scoring a 19 x 13 matrix by blocks of 5 (ragged edges on both sides) gives the same G and Lm
 * as one 19 x 13 block, and the diagonal of the matrix is what eval_score_pair gives. */
Test(eval, block_scoring_matches_one_block, .init = make_checkpoint, .fini = cleanup) {
    reclf_err err = {{0}};
    eval_model m;
    cr_assert_eq(eval_model_open(&m, ckpt_path, &err), 0, "%s", err.msg);
    cr_assert(eval_model_has_local(&m));
    enum { NT = 19, NB = 13 };
    long d = m.d, K = m.K, R = m.R, S = m.cfg.image;
    float *img = malloc(sizeof(float) * NB * S * S), *vg = malloc(sizeof(float) * NB * d);
    float *V = malloc(sizeof(float) * NB * R * d), *tg = malloc(sizeof(float) * NT * d);
    float *W = malloc(sizeof(float) * NT * K * d), *wm = malloc(sizeof(float) * NT * K);
    float G1[NT * NB], L1[NT * NB], G2[NT * NB], L2[NT * NB];
    char *texts[NT];
    for (int i = 0; i < NT; i++) {
        reclf_sample s;
        cr_assert_eq(synth_sample(1, SPLIT_VAL, i, (int)S, &s, &err), 0, "%s", err.msg);
        if (i < NB) memcpy(img + i * S * S, s.image, sizeof(float) * S * S);
        texts[i] = s.report, s.report = NULL;
        reclf_sample_free(&s);
    }
    cr_assert_eq(eval_encode_images(&m, img, NB, 4, vg, V, &err), 0, "%s", err.msg);
    cr_assert_eq(eval_encode_texts(&m, (const char *const *)texts, NT, 6, tg, W, wm, &err), 0, "%s", err.msg);
    cr_assert_eq(eval_score_matrix(&m, tg, W, wm, NT, vg, V, NB, 64, G1, L1, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(eval_score_matrix(&m, tg, W, wm, NT, vg, V, NB, 5, G2, L2, NULL, &err), 0, "%s", err.msg);
    for (int i = 0; i < NT * NB; i++) {
        cr_assert(isfinite(G1[i]) && isfinite(L1[i]));
        cr_assert_float_eq(G2[i], G1[i], 1e-4 * (1 + fabsf(G1[i])), "G[%d]: %g vs %g", i, G2[i], G1[i]);
        cr_assert_float_eq(L2[i], L1[i], 1e-4 * (1 + fabsf(L1[i])), "Lm[%d]: %g vs %g", i, L2[i], L1[i]);
    }
    /* G is cos / 0.07: within +-1/0.07 */
    for (int i = 0; i < NT * NB; i++) cr_assert(fabsf(G1[i]) <= 1.0f / 0.07f + 1e-3f);
    float *attn = malloc(sizeof(float) * K * R), beta[256];
    for (int i = 0; i < NB; i += 6) {
        float g, l;
        cr_assert_eq(eval_score_pair(&m, tg + i * d, W + i * K * d, wm + i * K, vg + i * d, V + i * R * d, &g, &l,
                                     attn, beta, &err), 0, "%s", err.msg);
        cr_assert_float_eq(g, G1[i * NB + i], 1e-4 * (1 + fabsf(g)));
        cr_assert_float_eq(l, L1[i * NB + i], 1e-4 * (1 + fabsf(l)));
        /* attention rows of valid words sum to 1 over the regions; beta sums to 1 over valid words */
        double bs = 0;
        for (long k = 0; k < K; k++) {
            if (wm[i * K + k] == 0) continue;
            double as = 0;
            for (long j = 0; j < R; j++) as += attn[k * R + j];
            cr_assert_float_eq(as, 1.0, 1e-4, "word %ld: attention sums to %g", k, as);
            bs += beta[k];
        }
        cr_assert_float_eq(bs, 1.0, 1e-4, "beta sums to %g", bs);
    }
    free(attn);
    for (int i = 0; i < NT; i++) free(texts[i]);
    free(img), free(vg), free(V), free(tg), free(W), free(wm);
    eval_model_close(&m);
}

/* ---- end to end --------------------------------------------------------------------------------- */

static double get_num(json_t *root, const char *path) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *j = root;
    for (char *tok = strtok(buf, "."); tok; tok = strtok(NULL, ".")) {
        j = json_object_get(j, tok);
        cr_assert(j != NULL, "JSON has no key '%s' (in %s)", tok, path);
    }
    cr_assert(json_is_number(j), "%s is not a number", path);
    return json_number_value(j);
}

static void check_unit(json_t *root, const char *path) {
    double v = get_num(root, path);
    cr_assert(v >= 0.0 && v <= 1.0, "%s = %g is outside [0, 1]", path, v);
}

Test(eval, end_to_end_json, .init = make_checkpoint, .fini = cleanup, .timeout = 120) {
    char *argv[] = {"eval", "--ckpt", ckpt_path, "--task", "zeroshot,probe,retrieval", "--limit", "64",
                    "--probe-pool", "200", "--json", json_path, "--quiet", NULL};
    cr_assert_eq(cmd_eval(12, argv), 0);
    json_error_t jerr;
    json_t *root = json_load_file(json_path, 0, &jerr);
    cr_assert(root != NULL, "%s: %s", json_path, jerr.text);

    cr_assert_str_eq(json_string_value(json_object_get(root, "model")), "reclf");
    cr_assert_eq(get_num(root, "zeroshot.n_test"), 64);
    cr_assert_eq(get_num(root, "zeroshot.n_balanced"), 60); /* 64 / 5 = 12 per class */
    cr_assert_eq(get_num(root, "zeroshot.n_prompts"), 61);
    char path[256];
    for (int c = 0; c < RECLF_N_FINDINGS; c++) {
        snprintf(path, sizeof path, "zeroshot.auroc.%s", reclf_finding_names[c]);
        check_unit(root, path);
    }
    check_unit(root, "zeroshot.macro_auroc");
    check_unit(root, "zeroshot.accuracy");

    cr_assert_eq(get_num(root, "probe.pool"), 200);
    const char *fr[3] = {"1%", "10%", "100%"};
    const int ntr[3] = {2, 20, 200};
    for (int f = 0; f < 3; f++) {
        snprintf(path, sizeof path, "probe.fractions.%s.n_train", fr[f]);
        cr_assert_eq(get_num(root, path), ntr[f]);
        snprintf(path, sizeof path, "probe.fractions.%s.macro_auroc", fr[f]);
        check_unit(root, path);
        for (int c = 0; c < RECLF_N_FINDINGS; c++) {
            snprintf(path, sizeof path, "probe.fractions.%s.auroc.%s", fr[f], reclf_finding_names[c]);
            check_unit(root, path);
        }
    }
    /* even a random encoder's vg carries the image: 200 labels beat chance on cardiomegaly */
    cr_assert(get_num(root, "probe.fractions.100%.auroc.cardiomegaly") > 0.6);

    cr_assert_eq(get_num(root, "retrieval.pool"), 64);
    cr_assert(get_num(root, "retrieval.n_mirror") > 0);
    cr_assert(get_num(root, "retrieval.n_flip") > 0);
    const char *scores[3] = {"global", "local", "combined"}, *dirs[2] = {"i2t", "t2i"};
    const char *ks[6] = {"R@1", "R@5", "R@10", "P@1", "P@5", "P@10"};
    for (int s = 0; s < 3; s++) {
        for (int d = 0; d < 2; d++) {
            double prev = 0;
            for (int k = 0; k < 6; k++) {
                snprintf(path, sizeof path, "retrieval.%s.%s.%s", scores[s], dirs[d], ks[k]);
                check_unit(root, path);
                double v = get_num(root, path);
                if (k < 3) cr_assert(v >= prev, "%s: recall must grow with K", path);
                prev = k < 3 ? v : 0;
            }
        }
        snprintf(path, sizeof path, "retrieval.%s.binding_mirror", scores[s]);
        check_unit(root, path);
        snprintf(path, sizeof path, "retrieval.%s.binding_flip", scores[s]);
        check_unit(root, path);
    }
    json_decref(root);
}

/* explain writes a PNG (its content is checked by eye; here: that it is a PNG of a sane size) */
Test(eval, explain_writes_png, .init = make_checkpoint, .fini = cleanup) {
    char *argv[] = {"explain", "--ckpt", ckpt_path, "--index", "3", "--out", png_path, NULL};
    cr_assert_eq(cmd_explain(7, argv), 0);
    FILE *f = fopen(png_path, "rb");
    cr_assert(f != NULL);
    unsigned char h[24];
    cr_assert_eq(fread(h, 1, 24, f), 24);
    fclose(f);
    cr_assert(!memcmp(h, "\x89PNG\r\n\x1a\n", 8));
    unsigned w = (unsigned)h[16] << 24 | h[17] << 16 | h[18] << 8 | h[19];
    unsigned ht = (unsigned)h[20] << 24 | h[21] << 16 | h[22] << 8 | h[23];
    cr_assert(w >= 600 && ht >= 300, "%u x %u", w, ht);
}
