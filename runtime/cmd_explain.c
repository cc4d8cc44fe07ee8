/* bin/reclf explain: one picture of how a checkpoint reads one image-report pair: the image, and
 * for every word of the report its word->region attention (SPEC §3, the 8x8 map bilinearly
 * enlarged over the image as a heat overlay) and IRM's importance β (SPEC §5) as a bar. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "dataset.h"
#include "eval.h"
#include "image.h"
#include "synth.h"

static const char *USAGE =
    "usage: reclf explain --ckpt FILE --index N --out FILE.png [--data synth|MANIFEST] [--split test|val|train]\n"
    "                     [--report own|mirror|flip] [--seed S]\n"
    "  draws sample N's image and, per word of its report (or of its mirror / one-side flip), the\n"
    "  word's attention over the 8x8 regions as a heat map (each map scaled to its own maximum) and\n"
    "  the word's importance beta (IRM, SPEC 5) as a bar\n";

#define IMG_SIDE 256  /* the large image on the left */
#define TILE 112      /* one word's map */
#define COLS 6
#define GAP 10
#define LABEL_H 34    /* word, beta value and bar under each tile */

/* Appends text wrapped at `width` characters (on spaces) to out (size n). */
static void wrap_text(const char *text, int width, char *out, size_t n) {
    size_t o = 0;
    int col = 0;
    const char *p = text;
    while (*p && o + 2 < n) {
        const char *w = p;
        while (*w == ' ') w++;
        const char *e = w;
        while (*e && *e != ' ') e++;
        int len = (int)(e - w);
        if (len == 0) break;
        if (col > 0 && col + 1 + len > width) out[o++] = '\n', col = 0;
        else if (col > 0) out[o++] = ' ', col++;
        for (int i = 0; i < len && o + 2 < n; i++) out[o++] = w[i];
        col += len;
        p = e;
    }
    out[o] = 0;
}

int cmd_explain(int argc, char **argv) {
    const char *ckpt = NULL, *data = "synth", *split_name = "test", *out = NULL, *which = "own";
    long index = -1;
    unsigned long long seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { fputs(USAGE, stdout); return 0; }
        if (!v) { fprintf(stderr, "reclf explain: %s needs a value\n%s", a, USAGE); return 2; }
        if (!strcmp(a, "--ckpt")) ckpt = v;
        else if (!strcmp(a, "--index")) index = atol(v);
        else if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--split")) split_name = v;
        else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--report")) which = v;
        else if (!strcmp(a, "--seed")) seed = strtoull(v, NULL, 10);
        else { fprintf(stderr, "reclf explain: unknown option '%s'\n%s", a, USAGE); return 2; }
        i++;
    }
    int split = synth_split_from_name(split_name);
    if (!ckpt || !out || index < 0 || split < 0 || split == SPLIT_ZS ||
        (strcmp(which, "own") && strcmp(which, "mirror") && strcmp(which, "flip"))) {
        fputs(USAGE, stderr);
        return 2;
    }

    reclf_err err = {{0}};
    eval_model m;
    reclf_dataset ds;
    reclf_sample s;
    memset(&s, 0, sizeof s);
    reclf_canvas *cv = NULL;
    float *V = NULL, *W = NULL, *attn = NULL, *beta = NULL;
    int rc = 1, have_ds = 0;
    if (eval_model_open(&m, ckpt, &err) != 0) { fprintf(stderr, "reclf explain: %s\n", err.msg); return 1; }
    if (dataset_open(&ds, data, split, m.cfg.image, seed, 0, &err) != 0) goto fail;
    have_ds = 1;
    if (dataset_get(&ds, index, &s, &err) != 0) goto fail;
    const char *text = !strcmp(which, "own") ? s.report : !strcmp(which, "mirror") ? s.mirror_report : s.flip_report;
    if (!text) {
        reclf_fail(&err, "sample %ld has no one-side flip report (no lateralised finding)", index);
        goto fail;
    }

    long K = m.K, R = m.R, d = m.d, L = m.cfg.seq_len;
    float vg[1024], tg[1024], wm[256], G, Lm;
    int32_t ids[256];
    if (d > 1024 || K > 256 || L > 256 || R != 64) {
        reclf_fail(&err, "explain supports d <= 1024, L <= 256 and an 8x8 region map (got d %ld, L %ld, R %ld)", d, L, R);
        goto fail;
    }
    V = malloc(sizeof(float) * R * d);
    W = malloc(sizeof(float) * K * d);
    attn = malloc(sizeof(float) * K * R);
    beta = malloc(sizeof(float) * K);
    if (!V || !W || !attn || !beta) { reclf_fail(&err, "out of memory"); goto fail; }
    if (eval_encode_images(&m, s.image, 1, 1, vg, V, &err) != 0 ||
        eval_encode_texts(&m, &text, 1, 1, tg, W, wm, &err) != 0 ||
        eval_score_pair(&m, tg, W, wm, vg, V, &G, &Lm, attn, beta, &err) != 0)
        goto fail;
    tokenize(&m.vocab, text, (int)L, ids);

    int nv = 0;
    for (long k = 0; k < K; k++) nv += wm[k] != 0;
    int rows = (nv + COLS - 1) / COLS;
    char wrapped[4096];
    wrap_text(text, 42, wrapped, sizeof wrapped);
    int left_w = IMG_SIDE + 2 * GAP, grid_x = left_w + GAP;
    int W_px = grid_x + COLS * (TILE + GAP) + GAP;
    int text_h = 12;
    for (const char *c = wrapped; *c; c++) text_h += 12 * (*c == '\n');
    int H_px = 40 + (rows * (TILE + LABEL_H + GAP)) + GAP;
    int left_h = 40 + IMG_SIDE + 20 + text_h + 120;
    if (H_px < left_h) H_px = left_h;
    cv = reclf_canvas_new(W_px, H_px, 255, 255, 255);
    if (!cv) { reclf_fail(&err, "out of memory for a %d x %d canvas", W_px, H_px); goto fail; }

    char title[512];
    snprintf(title, sizeof title, "%s (step %ld): %s sample %ld, %s report   G = %.2f   Lm = %.2f%s", m.name, m.step,
             split_name, index, which, G, Lm, eval_model_has_local(&m) ? "" : " (no local term)");
    reclf_canvas_text(cv, GAP, 8, title, 2, 0, 0, 0);
    int y = 40;
    reclf_canvas_blit_grey(cv, s.image, s.size, s.size, GAP, y, IMG_SIDE, IMG_SIDE);
    y += IMG_SIDE + 4;
    reclf_canvas_text(cv, GAP, y, "image right = patient's left", 1, 90, 90, 90);
    y += 16;
    y += reclf_canvas_text(cv, GAP, y, wrapped, 1, 0, 0, 0) + 8;
    char labels[256] = "";
    for (int f = 0; f < RECLF_N_FINDINGS; f++)
        if (s.labels[f] == 1) {
            static const char *const side[] = {"", "left ", "right "};
            char one[64];
            snprintf(one, sizeof one, "%s%s%s", labels[0] ? ", " : "labels: ", s.side[f] >= 0 && s.side[f] <= 2 ? side[s.side[f]] : "",
                     reclf_finding_names[f]);
            strncat(labels, one, sizeof labels - strlen(labels) - 1);
        }
    reclf_canvas_text(cv, GAP, y, labels[0] ? labels : "labels: normal", 1, 0, 0, 150);
    y += 14;
    if (s.is_binding) reclf_canvas_text(cv, GAP, y, "binding case", 1, 150, 0, 0), y += 14;
    reclf_canvas_text(cv, GAP, y + 6, "maps: attention of each word over\nthe 8x8 regions, each scaled to its\nown maximum (blue 0 .. red max);\nnumber and bar: IRM importance beta;\nthe tick marks the uniform 1/n\n(n words)", 1, 90, 90, 90);

    int t = 0;
    for (long k = 0; k < K; k++) {
        if (wm[k] == 0) continue;
        int tx = grid_x + (t % COLS) * (TILE + GAP), ty = 40 + (t / COLS) * (TILE + LABEL_H + GAP);
        t++;
        const float *a = attn + k * R;
        float amax = 0;
        for (long j = 0; j < R; j++) amax = a[j] > amax ? a[j] : amax;
        /* region j is (y, x) = (j / 8, j % 8) (SPEC 8b): the attention row is already an 8x8 image */
        reclf_canvas_blit_grey(cv, s.image, s.size, s.size, tx, ty, TILE, TILE);
        reclf_canvas_blit_heatmap(cv, a, 8, 8, tx, ty, TILE, TILE, 0.0f, amax > 0 ? amax : 1.0f, 0.45f);
        int id = ids[k + 1];
        const char *word = id >= 0 && id < m.vocab.n ? m.vocab.words[id] : "?";
        char lab[96];
        snprintf(lab, sizeof lab, "%.11s %.3f", word, beta[k]); /* fits a tile */
        reclf_canvas_text(cv, tx, ty + TILE + 3, lab, 1, 0, 0, 0);
        /* the bar's half-way tick is the uniform importance 1/nv: IRM's departures from a plain
         * average show as bars shorter or longer than the tick (full width: 2/nv or more) */
        float rel = beta[k] * nv / 2.0f;
        int bw = (int)(TILE * (rel < 1.0f ? rel : 1.0f) + 0.5f);
        reclf_canvas_fill_rect(cv, tx, ty + TILE + 18, TILE, 8, 225, 225, 225);
        reclf_canvas_fill_rect(cv, tx, ty + TILE + 18, bw, 8, 200, 60, 40);
        reclf_canvas_fill_rect(cv, tx + TILE / 2, ty + TILE + 16, 1, 12, 0, 0, 0);
    }
    if (reclf_canvas_save_png(cv, out, &err) != 0) goto fail;
    printf("wrote %s (%d words; G %.3f, Lm %.3f)\n", out, nv, G, Lm);
    rc = 0;
fail:
    if (rc) fprintf(stderr, "reclf explain: %s\n", err.msg);
    reclf_canvas_free(cv);
    free(V), free(W), free(attn), free(beta);
    reclf_sample_free(&s);
    if (have_ds) dataset_close(&ds);
    eval_model_close(&m);
    return rc;
}
