/* Downstream evaluation (SPEC §10): see eval.h for the exact rules. */
#include "eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "logreg.h"
#include "metrics.h"
#include "rng.h"
#include "safetensors.h"
#include "synth.h"

const double eval_probe_fractions[EVAL_N_FRACTIONS] = {0.01, 0.10, 1.00};
const char *const eval_score_names[EVAL_N_SCORES] = {"global", "local", "combined"};

/* images are generated/decoded this many at a time, so a large pool never sits in memory */
#define LOAD_CHUNK 256

static void progress(eval_model *m, const char *phase, long done, long total) {
    if (m->progress) m->progress(m->progress_ctx, phase, done, total);
}

/* ---- model ------------------------------------------------------------------------------------ */

static int need_io(const reclf_graph *g, const char *const *inputs, const char *const *outputs, reclf_err *err) {
    for (int i = 0; inputs[i]; i++)
        if (model_input(g, inputs[i]) < 0) return reclf_fail(err, "graph %s has no input '%s'", g->name, inputs[i]);
    for (int i = 0; outputs[i]; i++)
        if (model_output(g, outputs[i]) < 0) return reclf_fail(err, "graph %s has no output '%s'", g->name, outputs[i]);
    return 0;
}

static int load_graph(const char *ckpt, const char *model, const char *suffix, const reclf_graph **g, float **p,
                      reclf_err *err) {
    char name[300];
    snprintf(name, sizeof name, "%s.%s", model, suffix);
    *g = model_find(name);
    if (!*g)
        return reclf_fail(err, "%s: model '%s' has no evaluation graph '%s' (add it to graphs/lib/model.lua and "
                          "run `make generate`)", ckpt, model, name);
    *p = calloc((*g)->n_param_elems ? (*g)->n_param_elems : 1, sizeof(float));
    if (!*p) return reclf_fail(err, "out of memory for the parameters of %s", name);
    /* strict: an evaluation graph whose parameter is missing from the checkpoint would run on zeros */
    return ckpt_load_params_by_name(ckpt, *g, *p, 1, NULL, err);
}

int eval_model_open(eval_model *m, const char *ckpt, reclf_err *err) {
    memset(m, 0, sizeof *m);
    m->out_G = m->out_Lm = m->out_attn = m->out_beta = -1;
    st_file f;
    if (st_open(ckpt, &f, err) != 0) return -1;
    const char *model = st_meta(&f, "model"), *vocab = st_meta(&f, "vocab"), *step = st_meta(&f, "step");
    snprintf(m->name, sizeof m->name, "%s", model ? model : "");
    m->step = step ? atol(step) : 0;
    int rc = 0;
    if (!m->name[0]) rc = reclf_fail(err, "%s: no 'model' in the metadata: not a reclf checkpoint", ckpt);
    else if (!vocab || !vocab[0]) rc = reclf_fail(err, "%s: the checkpoint holds no vocabulary ('vocab' metadata)", ckpt);
    else if (vocab_deserialize(&m->vocab, vocab, err) != 0) rc = -1;
    st_close(&f);
    if (rc) return -1;

    static const char *const img_in[] = {"images", NULL}, *const img_out[] = {"vg", "V", NULL};
    static const char *const txt_in[] = {"tokens", "attn_mask", NULL}, *const txt_out[] = {"tg", "W", NULL};
    static const char *const sc_in[] = {"tg", "W", "vg", "V", "word_mask", NULL}, *const sc_out[] = {"G", NULL};
    if (load_graph(ckpt, m->name, "image", &m->gi, &m->pi, err) || load_graph(ckpt, m->name, "text", &m->gt, &m->pt, err) ||
        load_graph(ckpt, m->name, "score", &m->gs, &m->ps, err) || need_io(m->gi, img_in, img_out, err) ||
        need_io(m->gt, txt_in, txt_out, err) || need_io(m->gs, sc_in, sc_out, err) ||
        model_config_read(m->gi, &m->cfg, err)) {
        eval_model_close(m);
        return -1;
    }
    const reclf_tensor_desc *W = &m->gt->outputs[model_output(m->gt, "W")];
    const reclf_tensor_desc *V = &m->gi->outputs[model_output(m->gi, "V")];
    m->K = W->shape[1], m->R = V->shape[1], m->d = m->cfg.width;
    m->out_G = model_output(m->gs, "G");
    m->out_Lm = model_output(m->gs, "Lm");
    m->out_attn = model_output(m->gs, "attention");
    m->out_beta = model_output(m->gs, "beta");
    if (m->vocab.n > m->cfg.vocab) {
        reclf_fail(err, "%s: the vocabulary has %d tokens but the model's embedding has %d rows", ckpt, m->vocab.n,
                   m->cfg.vocab);
        eval_model_close(m);
        return -1;
    }
    return 0;
}

void eval_model_close(eval_model *m) {
    free(m->pi), free(m->pt), free(m->ps), free(m->arena);
    if (m->vocab.words) vocab_free(&m->vocab);
    memset(m, 0, sizeof *m);
}

int eval_model_has_local(const eval_model *m) { return m->out_Lm >= 0; }

/* run-time sizes of g for B images and T texts */
static void set_dims(const reclf_graph *g, long *dims, long B, long T) {
    for (int k = 0; k < RECLF_MAX_SYMS; k++) dims[k] = 0;
    int b = model_sym(g, "B"), t = model_sym(g, "T");
    if (b >= 0) dims[b] = B;
    if (t >= 0) dims[t] = T;
}

static int reserve(eval_model *m, const reclf_graph *g, const long *dims, reclf_err *err) {
    size_t need = g->arena_bytes(dims);
    if (need <= m->arena_size) return 0;
    free(m->arena);
    m->arena = aligned_alloc(64, (need + 63) / 64 * 64);
    m->arena_size = m->arena ? need : 0;
    if (!m->arena) return reclf_fail(err, "cannot allocate the %.1f MiB arena of %s", need / 1048576.0, g->name);
    return 0;
}

int eval_encode_images(eval_model *m, const float *images, long n, int batch, float *vg, float *V, reclf_err *err) {
    const reclf_graph *g = m->gi;
    long pix = (long)m->cfg.image * m->cfg.image, d = m->d, R = m->R;
    int o_vg = model_output(g, "vg"), o_V = model_output(g, "V");
    for (long i0 = 0; i0 < n; i0 += batch) {
        long bn = n - i0 < batch ? n - i0 : batch;
        long dims[RECLF_MAX_SYMS];
        set_dims(g, dims, bn, bn);
        if (reserve(m, g, dims, err) != 0) return -1;
        void *in[8] = {0};
        in[model_input(g, "images")] = (void *)(images + i0 * pix); /* [bn,1,S,S]: the same layout */
        g->forward(m->arena, m->pi, in, dims);
        memcpy(vg + i0 * d, g->output(m->arena, o_vg, dims), sizeof(float) * bn * d);
        if (V) memcpy(V + i0 * R * d, g->output(m->arena, o_V, dims), sizeof(float) * bn * R * d);
    }
    return 0;
}

int eval_encode_texts(eval_model *m, const char *const *texts, long n, int batch, float *tg, float *W,
                      float *word_mask, reclf_err *err) {
    const reclf_graph *g = m->gt;
    long L = m->cfg.seq_len, K = m->K, d = m->d;
    if (K != L - 1) return reclf_fail(err, "graph %s: %ld word slots for %ld token positions (expected L-1)", g->name, K, L);
    int32_t *ids = malloc(sizeof(int32_t) * batch * L);
    float *am = malloc(sizeof(float) * batch * L);
    if (!ids || !am) {
        free(ids), free(am);
        return reclf_fail(err, "out of memory for %d texts", batch);
    }
    int o_tg = model_output(g, "tg"), o_W = model_output(g, "W");
    for (long i0 = 0; i0 < n; i0 += batch) {
        long bn = n - i0 < batch ? n - i0 : batch;
        for (long t = 0; t < bn; t++) {
            int32_t *row = ids + t * L;
            tokenize(&m->vocab, texts[i0 + t], (int)L, row);
            for (long j = 0; j < L; j++) am[t * L + j] = row[j] != TOK_PAD;
            /* word slots are positions 1..L-1 (SPEC 2): real tokens count, [SEP] and [PAD] do not */
            for (long j = 1; j < L; j++) word_mask[(i0 + t) * K + j - 1] = row[j] != TOK_PAD && row[j] != TOK_SEP;
        }
        long dims[RECLF_MAX_SYMS];
        set_dims(g, dims, bn, bn);
        if (reserve(m, g, dims, err) != 0) {
            free(ids), free(am);
            return -1;
        }
        void *in[8] = {0};
        in[model_input(g, "tokens")] = ids;
        in[model_input(g, "attn_mask")] = am;
        g->forward(m->arena, m->pt, in, dims);
        memcpy(tg + i0 * d, g->output(m->arena, o_tg, dims), sizeof(float) * bn * d);
        memcpy(W + i0 * K * d, g->output(m->arena, o_W, dims), sizeof(float) * bn * K * d);
    }
    free(ids), free(am);
    return 0;
}

/* one forward of the score graph on tn texts x bn images (contiguous slices of the inputs) */
static void score_forward(eval_model *m, const float *tg, const float *W, const float *wmask, long tn, const float *vg,
                          const float *V, long bn, long *dims) {
    const reclf_graph *g = m->gs;
    void *in[8] = {0};
    in[model_input(g, "tg")] = (void *)tg;
    in[model_input(g, "W")] = (void *)W;
    in[model_input(g, "word_mask")] = (void *)wmask;
    in[model_input(g, "vg")] = (void *)vg;
    in[model_input(g, "V")] = (void *)V;
    set_dims(g, dims, bn, tn);
    g->forward(m->arena, m->ps, in, dims);
}

int eval_score_matrix(eval_model *m, const float *tg, const float *W, const float *wmask, long nT, const float *vg,
                      const float *V, long nB, int block, float *G, float *Lm, const char *phase, reclf_err *err) {
    long K = m->K, R = m->R, d = m->d;
    if (block < 1) return reclf_fail(err, "eval_score_matrix: block %d must be positive", block);
    long dims[RECLF_MAX_SYMS];
    set_dims(m->gs, dims, nB < block ? nB : block, nT < block ? nT : block);
    if (reserve(m, m->gs, dims, err) != 0) return -1;
    long nbt = (nT + block - 1) / block, nbb = (nB + block - 1) / block, done = 0;
    for (long t0 = 0; t0 < nT; t0 += block) {
        long tn = nT - t0 < block ? nT - t0 : block;
        for (long b0 = 0; b0 < nB; b0 += block) {
            long bn = nB - b0 < block ? nB - b0 : block;
            score_forward(m, tg + t0 * d, W + t0 * K * d, wmask + t0 * K, tn, vg + b0 * d, V + b0 * R * d, bn, dims);
            const float *g = m->gs->output(m->arena, m->out_G, dims);
            const float *l = m->out_Lm >= 0 && Lm ? m->gs->output(m->arena, m->out_Lm, dims) : NULL;
            for (long t = 0; t < tn; t++) {
                memcpy(G + (t0 + t) * nB + b0, g + t * bn, sizeof(float) * bn);
                if (l) memcpy(Lm + (t0 + t) * nB + b0, l + t * bn, sizeof(float) * bn);
            }
            if (phase) progress(m, phase, ++done, nbt * nbb);
        }
    }
    return 0;
}

int eval_score_pair(eval_model *m, const float *tg, const float *W, const float *wmask, const float *vg,
                    const float *V, float *G, float *Lm, float *attn, float *beta, reclf_err *err) {
    long K = m->K, R = m->R;
    long dims[RECLF_MAX_SYMS];
    set_dims(m->gs, dims, 1, 1);
    if (reserve(m, m->gs, dims, err) != 0) return -1;
    score_forward(m, tg, W, wmask, 1, vg, V, 1, dims);
    *G = m->gs->output(m->arena, m->out_G, dims)[0];
    *Lm = m->out_Lm >= 0 ? m->gs->output(m->arena, m->out_Lm, dims)[0] : 0.0f;
    if (attn) {
        if (m->out_attn >= 0) memcpy(attn, m->gs->output(m->arena, m->out_attn, dims), sizeof(float) * K * R);
        else for (long i = 0; i < K * R; i++) attn[i] = 0.0f;
    }
    if (beta) {
        if (m->out_beta >= 0) {
            memcpy(beta, m->gs->output(m->arena, m->out_beta, dims), sizeof(float) * K);
        } else { /* no importance: every valid word counts the same (SPEC 7 reclf-noirm's rule) */
            long nv = 0;
            for (long k = 0; k < K; k++) nv += wmask[k] != 0;
            for (long k = 0; k < K; k++) beta[k] = wmask[k] != 0 && nv ? 1.0f / nv : 0.0f;
        }
    }
    return 0;
}

/* ---- scoring rules ---------------------------------------------------------------------------- */

void eval_combine(const float *G, const float *Lm, size_t n, float *S) {
    for (size_t i = 0; i < n; i++) S[i] = Lm ? 0.5f * (G[i] + Lm[i]) : G[i];
}

void eval_zeroshot_scores(const float *S, long n_prompts, long n_img, const int *prompt_class, const int *prompt_pos,
                          int n_classes, float *score, float *pos) {
    long np[64] = {0}, nn[64] = {0};
    for (long p = 0; p < n_prompts; p++) (prompt_pos[p] ? np : nn)[prompt_class[p]]++;
    for (long i = 0; i < n_img; i++)
        for (int c = 0; c < n_classes; c++) {
            double sp = 0, sn = 0;
            for (long p = 0; p < n_prompts; p++)
                if (prompt_class[p] == c) {
                    if (prompt_pos[p]) sp += S[p * n_img + i];
                    else sn += S[p * n_img + i];
                }
            double mp = np[c] ? sp / np[c] : 0.0, mn = nn[c] ? sn / nn[c] : 0.0;
            score[i * n_classes + c] = (float)(mp - mn);
            if (pos) pos[i * n_classes + c] = (float)mp;
        }
}

double eval_binding_accuracy(const float *own, const float *other, const int *valid, long n, long *count) {
    double hits = 0;
    long cnt = 0;
    for (long i = 0; i < n; i++) {
        if (valid && !valid[i]) continue;
        cnt++;
        if (own[i] > other[i]) hits += 1;
        else if (own[i] == other[i]) hits += 0.5;
    }
    if (count) *count = cnt;
    return cnt ? hits / cnt : 0.5;
}

/* ---- data ------------------------------------------------------------------------------------- */

void eval_defaults(eval_opts *o) {
    memset(o, 0, sizeof *o);
    o->data = "synth";
    o->seed = 1;
    o->batch = 64;
    o->probe_pool = 10000;
    o->retrieval_pool = 1000;
}

/* What the tasks keep of each sample besides its features (any pointer may be NULL). */
typedef struct {
    float *labels;       /* [n,5] */
    char **report, **mirror, **flip;
    int *is_binding;
} sample_info;

/* Loads samples idx[0..n) of ds in chunks (in parallel), encodes their images into vg [n,d] and
 * (nullable) V [n,R,d], and keeps what `info` asks for. */
static int load_encode(eval_model *m, const reclf_dataset *ds, const long *idx, long n, int batch, float *vg,
                       float *V, sample_info *info, const char *phase, reclf_err *err) {
    long pix = (long)m->cfg.image * m->cfg.image;
    float *img = malloc(sizeof(float) * LOAD_CHUNK * pix);
    if (!img) return reclf_fail(err, "out of memory for %d images", LOAD_CHUNK);
    int failed = 0;
    for (long c0 = 0; c0 < n && !failed; c0 += LOAD_CHUNK) {
        long cn = n - c0 < LOAD_CHUNK ? n - c0 : LOAD_CHUNK;
        reclf_err first = {{0}};
        #pragma omp parallel for schedule(dynamic)
        for (long k = 0; k < cn; k++) {
            reclf_sample s;
            reclf_err e;
            long i = c0 + k;
            if (dataset_get(ds, idx[i], &s, &e) != 0) {
                #pragma omp critical
                if (!failed++) first = e;
                continue;
            }
            memcpy(img + k * pix, s.image, sizeof(float) * pix);
            if (info && info->labels)
                for (int f = 0; f < RECLF_N_FINDINGS; f++)
                    info->labels[i * RECLF_N_FINDINGS + f] = s.labels[f] == RECLF_LABEL_MISSING ? -1.0f : (float)s.labels[f];
            if (info && info->report) info->report[i] = s.report, s.report = NULL;
            if (info && info->mirror) info->mirror[i] = s.mirror_report, s.mirror_report = NULL;
            if (info && info->flip) info->flip[i] = s.flip_report, s.flip_report = NULL;
            if (info && info->is_binding) info->is_binding[i] = s.is_binding;
            reclf_sample_free(&s);
        }
        if (failed) {
            *err = first;
            break;
        }
        if (eval_encode_images(m, img, cn, batch, vg + c0 * m->d, V ? V + c0 * m->R * m->d : NULL, err) != 0) failed = 1;
        progress(m, phase, c0 + cn, n);
    }
    free(img);
    return failed ? -1 : 0;
}

static void free_strings(char **s, long n) {
    if (!s) return;
    for (long i = 0; i < n; i++) free(s[i]);
    free(s);
}

int eval_testset_load(eval_model *m, const eval_opts *o, eval_testset *ts, reclf_err *err) {
    memset(ts, 0, sizeof *ts);
    reclf_dataset ds;
    if (dataset_open(&ds, o->data, SPLIT_TEST, m->cfg.image, o->seed, 0, err) != 0) return -1;
    long n = dataset_count(&ds);
    if (o->limit > 0 && o->limit < n) n = o->limit;
    if (n < 2) {
        dataset_close(&ds);
        return reclf_fail(err, "%s: the test split has %ld images (at least 2 needed)", o->data, n);
    }
    ts->n = n;
    long d = m->d, R = m->R;
    ts->vg = malloc(sizeof(float) * n * d);
    ts->V = malloc(sizeof(float) * n * R * d);
    ts->labels = malloc(sizeof(float) * n * RECLF_N_FINDINGS);
    ts->report = calloc(n, sizeof(char *));
    ts->mirror = calloc(n, sizeof(char *));
    ts->flip = calloc(n, sizeof(char *));
    ts->is_binding = calloc(n, sizeof(int));
    long *idx = malloc(sizeof(long) * n);
    int rc = -1;
    if (!ts->vg || !ts->V || !ts->labels || !ts->report || !ts->mirror || !ts->flip || !ts->is_binding || !idx) {
        reclf_fail(err, "out of memory for %ld test images", n);
    } else {
        for (long i = 0; i < n; i++) idx[i] = i;
        sample_info info = {ts->labels, ts->report, ts->mirror, ts->flip, ts->is_binding};
        rc = load_encode(m, &ds, idx, n, o->batch, ts->vg, ts->V, &info, "test images", err);
    }
    free(idx);
    dataset_close(&ds);
    if (rc) eval_testset_free(ts);
    return rc;
}

void eval_testset_free(eval_testset *ts) {
    free(ts->vg), free(ts->V), free(ts->labels), free(ts->is_binding);
    free_strings(ts->report, ts->n), free_strings(ts->mirror, ts->n), free_strings(ts->flip, ts->n);
    memset(ts, 0, sizeof *ts);
}

/* encoded texts: tg [n,d], W [n,K,d], word mask [n,K] */
typedef struct {
    long n;
    float *tg, *W, *wm;
} text_feats;

static void text_feats_free(text_feats *t) {
    free(t->tg), free(t->W), free(t->wm);
    memset(t, 0, sizeof *t);
}

static int text_feats_encode(eval_model *m, const char *const *texts, long n, int batch, text_feats *t, reclf_err *err) {
    memset(t, 0, sizeof *t);
    t->n = n;
    t->tg = malloc(sizeof(float) * (n ? n : 1) * m->d);
    t->W = malloc(sizeof(float) * (n ? n : 1) * m->K * m->d);
    t->wm = malloc(sizeof(float) * (n ? n : 1) * m->K);
    if (!t->tg || !t->W || !t->wm) {
        text_feats_free(t);
        return reclf_fail(err, "out of memory for %ld texts", n);
    }
    if (eval_encode_texts(m, texts, n, batch, t->tg, t->W, t->wm, err) != 0) {
        text_feats_free(t);
        return -1;
    }
    return 0;
}

/* S [nT, nB] = the combined similarity of texts x images (G alone without a local term) */
static int similarity(eval_model *m, const text_feats *t, long nT, const float *vg, const float *V, long nB, int block,
                      float *S, const char *phase, reclf_err *err) {
    float *Lm = eval_model_has_local(m) ? malloc(sizeof(float) * nT * nB) : NULL;
    if (eval_model_has_local(m) && !Lm) return reclf_fail(err, "out of memory for a %ld x %ld score matrix", nT, nB);
    int rc = eval_score_matrix(m, t->tg, t->W, t->wm, nT, vg, V, nB, block, S, Lm, phase, err);
    if (!rc) eval_combine(S, Lm, (size_t)(nT * nB), S);
    free(Lm);
    return rc;
}

/* ---- zero-shot classification ----------------------------------------------------------------- */

int eval_zeroshot(eval_model *m, const eval_opts *o, const eval_testset *ts, eval_zeroshot_result *r, reclf_err *err) {
    memset(r, 0, sizeof *r);
    enum { C = RECLF_N_FINDINGS };
    /* the prompt list: every class's positive prompts first, then every class's negations, so that
     * the positives are a prefix (the balanced set needs only those) */
    char **texts = NULL;
    int *pclass = NULL, *ppos = NULL;
    long np = 0, n_pos = 0;
    int rc = -1;
    text_feats tf = {0};
    float *S = NULL, *score = NULL, *pos = NULL, *zvg = NULL, *zV = NULL, *zS = NULL, *zpos = NULL, *zlab = NULL;
    long *zidx = NULL;
    int *ztarget = NULL;
    reclf_dataset zds;
    int have_zds = 0;
    for (int positive = 1; positive >= 0; positive--)
        for (int c = 0; c < C; c++) {
            char **p;
            int n;
            if (synth_class_prompts(c, positive, &p, &n) != 0) {
                reclf_fail(err, "zero-shot: out of memory for the prompts of %s", reclf_finding_names[c]);
                goto done;
            }
            char **nt = realloc(texts, sizeof(char *) * (np + n));
            int *nc = realloc(pclass, sizeof(int) * (np + n)), *npp = NULL;
            if (nt) texts = nt;
            if (nc) pclass = nc;
            if (nt && nc) npp = realloc(ppos, sizeof(int) * (np + n));
            if (!npp) {
                synth_free_prompts(p, n);
                reclf_fail(err, "zero-shot: out of memory for the prompts");
                goto done;
            }
            ppos = npp;
            for (int k = 0; k < n; k++, np++) texts[np] = p[k], pclass[np] = c, ppos[np] = positive;
            free(p); /* the strings now belong to texts */
            if (positive) n_pos += n;
        }
    r->n_prompts = np;
    if (text_feats_encode(m, (const char *const *)texts, np, o->batch, &tf, err) != 0) goto done;

    /* AUROC on the test split */
    long n = ts->n;
    S = malloc(sizeof(float) * np * n);
    score = malloc(sizeof(float) * n * C);
    pos = malloc(sizeof(float) * n * C);
    if (!S || !score || !pos) {
        reclf_fail(err, "zero-shot: out of memory for %ld x %ld scores", np, n);
        goto done;
    }
    if (similarity(m, &tf, np, ts->vg, ts->V, n, o->batch, S, "zero-shot scores", err) != 0) goto done;
    eval_zeroshot_scores(S, np, n, pclass, ppos, C, score, pos);
    size_t ndef;
    if (reclf_macro_auroc(score, ts->labels, n, C, r->auroc, r->defined, &r->macro_auroc, &ndef, err) != 0) goto done;
    r->n_test = n;

    /* accuracy on the balanced single-finding set: SynthCXR's 5 x 200 (SPLIT_ZS); for a manifest,
     * the test images with exactly one positive finding and every other label negative */
    long nz = 0;
    if (!strcmp(o->data, "synth")) {
        long per = SYNTH_ZS_PER_CLASS;
        if (o->limit > 0) per = o->limit / C < 1 ? 1 : (o->limit / C < per ? o->limit / C : per);
        nz = per * C;
        zidx = malloc(sizeof(long) * nz);
        ztarget = malloc(sizeof(int) * nz);
        zvg = malloc(sizeof(float) * nz * m->d);
        zV = malloc(sizeof(float) * nz * m->R * m->d);
        if (!zidx || !ztarget || !zvg || !zV) {
            reclf_fail(err, "zero-shot: out of memory for %ld balanced-set images", nz);
            goto done;
        }
        for (int c = 0; c < C; c++)
            for (long k = 0; k < per; k++) {
                zidx[c * per + k] = synth_single_finding_index(o->seed, c, (int)k);
                ztarget[c * per + k] = c;
            }
        if (dataset_open(&zds, "synth", SPLIT_ZS, m->cfg.image, o->seed, 0, err) != 0) goto done;
        have_zds = 1;
        if (load_encode(m, &zds, zidx, nz, o->batch, zvg, zV, NULL, "balanced set", err) != 0) goto done;
        zS = malloc(sizeof(float) * n_pos * nz);
        zpos = malloc(sizeof(float) * nz * C);
        zlab = malloc(sizeof(float) * nz * C); /* scratch for the score argument */
        if (!zS || !zpos || !zlab) {
            reclf_fail(err, "zero-shot: out of memory for the balanced-set scores");
            goto done;
        }
        if (similarity(m, &tf, n_pos, zvg, zV, nz, o->batch, zS, "balanced-set scores", err) != 0) goto done;
        eval_zeroshot_scores(zS, n_pos, nz, pclass, ppos, C, zlab, zpos);
        r->accuracy = reclf_accuracy(zpos, nz, C, ztarget, NULL);
    } else {
        ztarget = malloc(sizeof(int) * n);
        if (!ztarget) {
            reclf_fail(err, "zero-shot: out of memory");
            goto done;
        }
        for (long i = 0; i < n; i++) {
            int npos = 0, nneg = 0, which = -1;
            for (int c = 0; c < C; c++) {
                float l = ts->labels[i * C + c];
                if (l >= 0.5f) npos++, which = c;
                else if (l >= 0) nneg++;
            }
            ztarget[i] = npos == 1 && nneg == C - 1 ? which : -1;
        }
        size_t counted;
        r->accuracy = reclf_accuracy(pos, n, C, ztarget, &counted);
        nz = (long)counted;
    }
    r->n_balanced = nz;
    r->has_balanced = nz > 0;
    rc = 0;
done:
    if (have_zds) dataset_close(&zds);
    free_strings(texts, np);
    free(pclass), free(ppos), free(S), free(score), free(pos), free(zidx), free(ztarget), free(zvg), free(zV);
    free(zS), free(zpos), free(zlab);
    text_feats_free(&tf);
    return rc;
}

/* ---- linear probe ----------------------------------------------------------------------------- */

int eval_probe(eval_model *m, const eval_opts *o, const eval_testset *ts, eval_probe_result *r, reclf_err *err) {
    memset(r, 0, sizeof *r);
    enum { C = RECLF_N_FINDINGS };
    reclf_dataset ds;
    if (dataset_open(&ds, o->data, SPLIT_TRAIN, m->cfg.image, o->seed, 0, err) != 0) return -1;
    long pool = dataset_count(&ds);
    if (o->probe_pool > 0 && o->probe_pool < pool) pool = o->probe_pool;
    if (pool < 2) {
        dataset_close(&ds);
        return reclf_fail(err, "probe: %s has %ld training images (at least 2 needed)", o->data, pool);
    }
    long d = m->d;
    long *idx = malloc(sizeof(long) * pool);
    float *vg = malloc(sizeof(float) * pool * d), *lab = malloc(sizeof(float) * pool * C);
    float *x = malloc(sizeof(float) * pool * d), *y = malloc(sizeof(float) * pool * C);
    float *probs = malloc(sizeof(float) * ts->n * C);
    int rc = -1;
    if (!idx || !vg || !lab || !x || !y || !probs) {
        reclf_fail(err, "probe: out of memory for %ld training images", pool);
        goto done;
    }
    for (long i = 0; i < pool; i++) idx[i] = i;
    sample_info info = {lab, NULL, NULL, NULL, NULL};
    if (load_encode(m, &ds, idx, pool, o->batch, vg, NULL, &info, "probe training images", err) != 0) goto done;
    /* nested subsets: the first n of one fixed permutation of the pool */
    rng_t rng = rng_split(o->seed, 0x70726f6265ull /* "probe" */);
    rng_shuffle(&rng, idx, (size_t)pool, sizeof(long));
    r->pool = pool;
    r->n_test = ts->n;
    for (int f = 0; f < EVAL_N_FRACTIONS; f++) {
        long nt = lround(eval_probe_fractions[f] * pool);
        if (nt < 2) nt = 2;
        if (nt > pool) nt = pool;
        for (long i = 0; i < nt; i++) {
            memcpy(x + i * d, vg + idx[i] * d, sizeof(float) * d);
            memcpy(y + i * C, lab + idx[i] * C, sizeof(float) * C);
        }
        reclf_logreg lr;
        if (reclf_logreg_fit(&lr, x, nt, d, y, C, NULL, err) != 0) goto done;
        reclf_logreg_predict(&lr, ts->vg, ts->n, probs);
        reclf_logreg_free(&lr);
        r->n_train[f] = nt;
        if (reclf_macro_auroc(probs, ts->labels, ts->n, C, r->auroc[f], NULL, &r->macro_auroc[f], NULL, err) != 0)
            goto done;
        progress(m, "probe fits", f + 1, EVAL_N_FRACTIONS);
    }
    rc = 0;
done:
    free(idx), free(vg), free(lab), free(x), free(y), free(probs);
    dataset_close(&ds);
    return rc;
}

/* ---- retrieval and binding -------------------------------------------------------------------- */

/* binding pairs, scored one image block at a time: own, mirror and flip reports against their image */
#define BIND_BLOCK 8

static int binding(eval_model *m, const eval_opts *o, const eval_testset *ts, eval_retrieval_result *r, reclf_err *err) {
    long n = ts->n, d = m->d, R = m->R;
    int local = eval_model_has_local(m);
    /* the images that take part: binding cases and images with a one-side flip */
    long *sel = malloc(sizeof(long) * n), ns = 0;
    float *own[EVAL_N_SCORES], *mir[EVAL_N_SCORES], *flp[EVAL_N_SCORES];
    int *vm = calloc(n, sizeof(int)), *vf = calloc(n, sizeof(int));
    float *G = malloc(sizeof(float) * 3 * BIND_BLOCK * BIND_BLOCK), *L = malloc(sizeof(float) * 3 * BIND_BLOCK * BIND_BLOCK);
    float *bvg = malloc(sizeof(float) * BIND_BLOCK * d), *bV = malloc(sizeof(float) * BIND_BLOCK * R * d);
    int rc = -1, oom = !sel || !vm || !vf || !G || !L || !bvg || !bV;
    for (int s = 0; s < EVAL_N_SCORES; s++) {
        own[s] = malloc(sizeof(float) * (n ? n : 1));
        mir[s] = malloc(sizeof(float) * (n ? n : 1));
        flp[s] = malloc(sizeof(float) * (n ? n : 1));
        oom |= !own[s] || !mir[s] || !flp[s];
    }
    if (oom) {
        reclf_fail(err, "binding: out of memory");
        goto done;
    }
    for (long i = 0; i < n; i++)
        if (ts->is_binding[i] || ts->flip[i]) sel[ns++] = i;
    for (long b0 = 0; b0 < ns; b0 += BIND_BLOCK) {
        long bn = ns - b0 < BIND_BLOCK ? ns - b0 : BIND_BLOCK;
        const char *texts[3 * BIND_BLOCK];
        for (long k = 0; k < bn; k++) {
            long i = sel[b0 + k];
            texts[k] = ts->report[i];
            texts[bn + k] = ts->mirror[i];
            texts[2 * bn + k] = ts->flip[i] ? ts->flip[i] : ts->report[i]; /* placeholder, not counted */
            memcpy(bvg + k * d, ts->vg + i * d, sizeof(float) * d);
            memcpy(bV + k * R * d, ts->V + i * R * d, sizeof(float) * R * d);
        }
        text_feats tf;
        if (text_feats_encode(m, texts, 3 * bn, o->batch, &tf, err) != 0) goto done;
        int e = eval_score_matrix(m, tf.tg, tf.W, tf.wm, 3 * bn, bvg, bV, bn, 3 * BIND_BLOCK, G, local ? L : NULL, NULL, err);
        text_feats_free(&tf);
        if (e) goto done;
        for (long k = 0; k < bn; k++) {
            long i = sel[b0 + k];
            vm[i] = ts->is_binding[i] != 0;
            vf[i] = ts->flip[i] != NULL;
            float **which[3] = {own, mir, flp}; /* text rows: own reports, mirrors, flips */
            for (int t = 0; t < 3; t++) {
                float g = G[(t * bn + k) * bn + k], l = local ? L[(t * bn + k) * bn + k] : g;
                which[t][EVAL_GLOBAL][i] = g;
                which[t][EVAL_LOCAL][i] = l;
                which[t][EVAL_COMBINED][i] = local ? 0.5f * (g + l) : g;
            }
        }
        progress(m, "binding pairs", b0 + bn, ns);
    }
    for (int s = 0; s < EVAL_N_SCORES; s++) {
        r->s[s].mirror = eval_binding_accuracy(own[s], mir[s], vm, n, &r->n_mirror);
        r->s[s].flip = eval_binding_accuracy(own[s], flp[s], vf, n, &r->n_flip);
    }
    rc = 0;
done:
    for (int s = 0; s < EVAL_N_SCORES; s++) free(own[s]), free(mir[s]), free(flp[s]);
    free(sel), free(vm), free(vf), free(G), free(L), free(bvg), free(bV);
    return rc;
}

/* R@K and P@K of one text x image score matrix X [P,P] (XT is scratch of the same size) */
static int retrieval_metrics(const float *X, float *XT, long P, const float *labels, eval_retrieval_scores *s,
                             reclf_err *err) {
    static const size_t ks[3] = {1, 5, 10};
    for (long t = 0; t < P; t++)
        for (long i = 0; i < P; i++) XT[i * P + t] = X[t * P + i]; /* image-major: rows are image queries */
    for (int k = 0; k < 3; k++) {
        s->i2t_recall[k] = reclf_recall_at_k(XT, P, P, ks[k]);
        s->t2i_recall[k] = reclf_recall_at_k(X, P, P, ks[k]);
        if (reclf_precision_at_k(XT, P, P, labels, labels, RECLF_N_FINDINGS, RECLF_MATCH_EXACT, ks[k],
                                 &s->i2t_precision[k], err) != 0 ||
            reclf_precision_at_k(X, P, P, labels, labels, RECLF_N_FINDINGS, RECLF_MATCH_EXACT, ks[k],
                                 &s->t2i_precision[k], err) != 0)
            return -1;
    }
    return 0;
}

int eval_retrieval(eval_model *m, const eval_opts *o, const eval_testset *ts, eval_retrieval_result *r,
                   reclf_err *err) {
    memset(r, 0, sizeof *r);
    long P = ts->n;
    if (o->retrieval_pool > 0 && o->retrieval_pool < P) P = o->retrieval_pool;
    int local = eval_model_has_local(m);
    text_feats tf = {0};
    float *G = malloc(sizeof(float) * P * P), *L = local ? malloc(sizeof(float) * P * P) : NULL;
    float *X = malloc(sizeof(float) * P * P), *XT = malloc(sizeof(float) * P * P);
    int rc = -1;
    if (!G || !X || !XT || (local && !L)) {
        reclf_fail(err, "retrieval: out of memory for %ld x %ld scores", P, P);
        goto done;
    }
    r->pool = P;
    if (text_feats_encode(m, (const char *const *)ts->report, P, o->batch, &tf, err) != 0) goto done;
    if (eval_score_matrix(m, tf.tg, tf.W, tf.wm, P, ts->vg, ts->V, P, o->batch, G, L, "retrieval scores", err) != 0)
        goto done;
    for (int s = 0; s < EVAL_N_SCORES; s++) {
        /* without a local term: no local scores, and the combined score is the global one */
        r->s[s].available = local || s != EVAL_LOCAL;
        if (!r->s[s].available) continue;
        if (s == EVAL_GLOBAL) memcpy(X, G, sizeof(float) * P * P);
        else if (s == EVAL_LOCAL) memcpy(X, L, sizeof(float) * P * P);
        else eval_combine(G, L, (size_t)(P * P), X);
        if (retrieval_metrics(X, XT, P, ts->labels, &r->s[s], err) != 0) goto done;
    }
    if (binding(m, o, ts, r, err) != 0) goto done;
    rc = 0;
done:
    text_feats_free(&tf);
    free(G), free(L), free(X), free(XT);
    return rc;
}
