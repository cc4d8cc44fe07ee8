#include "train.h"

#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "batch.h"
#include "prefetch.h"
#include "dataset.h"
#include "metrics_log.h"
#include "optim.h"
#include "params.h"
#include "rng.h"
#include "session.h"
#include "synth.h"

/* vocabulary built from this many training reports (SynthCXR's is small and saturates early) */
#define VOCAB_REPORTS 20000

static volatile sig_atomic_t stop_signal = 0;
static void on_signal(int sig) { stop_signal = sig; }

void train_defaults(train_opts *o) {
    memset(o, 0, sizeof *o);
    o->model = "reclf";
    o->steps = 1000;
    o->batch = 32;
    o->seed = 1;
    o->data = "synth";
    o->out = "runs/reclf";
    o->lr = 1e-3;
    o->weight_decay = 0.01;
    o->clip = 1.0;
}

/* The dataset index of batch slot i at a step: synthetic training data is unbounded, so every
 * step sees fresh samples; a manifest is walked in a fresh permutation each epoch. Either way the
 * order is a pure function of (seed, step), which makes resumed runs exact. */
typedef struct {
    long n;
    long epoch;
    long *perm;
} order_t;

static long order_index(order_t *o, const reclf_dataset *ds, unsigned long long seed, long k) {
    if (ds->kind == DATASET_SYNTH) return k;
    long epoch = k / o->n;
    if (epoch != o->epoch || !o->perm) {
        if (!o->perm) o->perm = malloc(sizeof(long) * (size_t)o->n);
        for (long i = 0; i < o->n; i++) o->perm[i] = i;
        rng_t r = rng_split(seed, 0x6f72646572ull + (unsigned long long)epoch);
        rng_shuffle(&r, o->perm, (size_t)o->n, sizeof(long));
        o->epoch = epoch;
    }
    return o->perm[k % o->n];
}

/* the run's options as JSON, kept in every checkpoint's metadata */
static char *options_json(const train_opts *o) {
    json_t *j = json_object();
    json_object_set_new(j, "model", json_string(o->model));
    json_object_set_new(j, "steps", json_integer(o->steps));
    json_object_set_new(j, "batch", json_integer(o->batch));
    json_object_set_new(j, "seed", json_integer((json_int_t)o->seed));
    json_object_set_new(j, "data", json_string(o->data));
    json_object_set_new(j, "lr", json_real(o->lr));
    json_object_set_new(j, "weight_decay", json_real(o->weight_decay));
    json_object_set_new(j, "clip", json_real(o->clip));
    json_object_set_new(j, "hard_negatives", json_string(o->side_swap ? "side-swap" : "none"));
    char *s = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(j);
    return s;
}

/* first parameter whose gradient holds a NaN or an Inf, for the error message */
static const char *first_nonfinite(const session *s) {
    for (int p = 0; p < s->g->n_params; p++) {
        const reclf_param_desc *d = &s->g->params[p];
        for (size_t i = 0; i < d->numel; i++)
            if (!isfinite(s->grads[d->offset + i])) return d->name;
    }
    return NULL;
}

/* name of the parameter holding element `at` of the packed buffer */
static const char *param_at(const reclf_graph *g, size_t at) {
    for (int p = 0; p < g->n_params; p++)
        if (at >= g->params[p].offset && at < g->params[p].offset + g->params[p].numel) return g->params[p].name;
    return "(padding)";
}

/* The slots [lo, hi) of the global batch that micro-batch k of rank r takes: rank r owns
 * r*B/N .. (r+1)*B/N - 1, cut in K consecutive micro-batches the same way. N = 2, K = 1 and
 * N = 1, K = 2 give the same micro-batches, which is what makes --grad-accum the single-process
 * twin of data parallelism without --gather. */
static void shard_range(int B, int N, int K, int r, int k, int *lo, int *hi) {
    int rlo = (int)((long)r * B / N), n = (int)((long)(r + 1) * B / N) - rlo;
    *lo = rlo + (int)((long)k * n / K);
    *hi = rlo + (int)((long)(k + 1) * n / K);
}

static int reserve_arena(void **arena, size_t *size, size_t need, const char *what, reclf_err *err) {
    if (need <= *size) return 0;
    free(*arena);
    *arena = aligned_alloc(64, (need + 63) / 64 * 64);
    *size = *arena ? need : 0;
    if (!*arena) return reclf_fail(err, "cannot allocate the %.1f MiB arena of %s", need / 1048576.0, what);
    return 0;
}

/* ---- --gather: one step split in three graphs (graphs/lib/model.lua: features_loss, image_vjp,
 * text_vjp) so the loss sees every pair of the global batch while each rank encodes only its shard.
 *   1. each rank runs image_vjp and text_vjp forward on its shard: the features vg, V, tg, W;
 *   2. the features and word masks of all ranks are all-gathered (one MPI_Allgatherv of one packed
 *      buffer per rank); images in rank order = global batch order; texts: the B real reports of
 *      all ranks first, in rank order, then the side-swapped extras of all ranks, in rank order.
 *      That is exactly the single-process order (batch_load appends a rank's extras in slot
 *      order), and CE2n needs it: its first B texts are the images' own reports;
 *   3. every rank runs features_loss forward + backward on the gathered batch (the same on every
 *      rank): d loss / d features, and the gradients of its own parameters (SRM, IRM);
 *   4. each rank copies its shard's slice of the feature gradients into the d_* inputs of its
 *      vjp graphs and runs their backward: its shard's part of the encoder gradients;
 *   5. encoder gradients are summed over ranks (MPI_Allreduce); features_loss gradients are
 *      already whole on every rank and are added after the sum. */
typedef struct {
    const reclf_graph *g[3];  /* image_vjp, text_vjp, features_loss */
    float *p[3], *gr[3];      /* parameters and gradients in each graph's own packed layout */
    int *map[3];              /* graph parameter j -> training-graph parameter index */
    void *arena[3];
    size_t arena_size[3];
    int d, R, K;              /* width, image regions, word slots */
    /* this rank's encoder inputs d_* ([maxB or maxT] rows) */
    float *d_vg, *d_V, *d_tg, *d_W;
    float *send, *recv;       /* packed features: this rank's, all ranks' */
    float *vg, *V, *tg, *W, *wm;       /* the gathered global batch */
    float *dvg, *dV, *dtg, *dW;        /* d loss / d (gathered features) */
    long *B_of, *T_of;        /* per rank: images and texts this step */
} split_t;

enum { G_IMG = 0, G_TXT = 1, G_LOSS = 2 };

static void split_close(split_t *sp) {
    for (int k = 0; k < 3; k++) free(sp->p[k]), free(sp->gr[k]), free(sp->map[k]), free(sp->arena[k]);
    free(sp->d_vg), free(sp->d_V), free(sp->d_tg), free(sp->d_W), free(sp->send), free(sp->recv);
    free(sp->vg), free(sp->V), free(sp->tg), free(sp->W), free(sp->wm);
    free(sp->dvg), free(sp->dV), free(sp->dtg), free(sp->dW), free(sp->B_of), free(sp->T_of);
    memset(sp, 0, sizeof *sp);
}

/* binds graph g's inputs by name (names NULL-ended, bufs alongside); unnamed inputs get NULL */
static void bind(const reclf_graph *g, void **inputs, const char *const *names, void *const *bufs) {
    for (int i = 0; i < g->n_inputs; i++) {
        inputs[i] = NULL;
        for (int k = 0; names[k]; k++)
            if (!strcmp(g->inputs[i].name, names[k])) inputs[i] = bufs[k];
    }
}

static long *sym_dims(const reclf_graph *g, long *dims, long B, long T) {
    memset(dims, 0, sizeof(long) * RECLF_MAX_SYMS);
    int b = model_sym(g, "B"), t = model_sym(g, "T");
    if (b >= 0) dims[b] = B;
    if (t >= 0) dims[t] = T;
    return dims;
}

/* maxB, maxT: the largest shard of any rank; Bg, maxTg: the global batch */
static int split_open(split_t *sp, const session *s, int n_ranks, long maxB, long maxT, long Bg, long maxTg,
                      reclf_err *err) {
    static const char *const suffix[3] = {"image_vjp", "text_vjp", "features_loss"};
    memset(sp, 0, sizeof *sp);
    char name[256];
    for (int k = 0; k < 3; k++) {
        snprintf(name, sizeof name, "%s.%s", s->g->name, suffix[k]);
        sp->g[k] = model_find(name);
        if (!sp->g[k])
            return reclf_fail(err, "--gather needs the graph %s (graphs/lib/model.lua gives every model one; "
                              "run `make generate`)", name);
        if (params_validate(sp->g[k], err) != 0) return -1;
        if (sp->g[k]->n_inputs > 8) return reclf_fail(err, "%s has %d inputs; the runtime binds at most 8", name, sp->g[k]->n_inputs);
    }
    /* every training parameter must get its gradient from one of the three graphs */
    unsigned char *covered = calloc((size_t)s->g->n_params + 1, 1);
    if (!covered) return reclf_fail(err, "out of memory");
    for (int k = 0; k < 3; k++) {
        const reclf_graph *g = sp->g[k];
        sp->map[k] = malloc(sizeof(int) * ((size_t)g->n_params + 1));
        sp->p[k] = calloc(g->n_param_elems + 1, sizeof(float));
        sp->gr[k] = calloc(g->n_param_elems + 1, sizeof(float));
        if (!sp->map[k] || !sp->p[k] || !sp->gr[k]) {
            free(covered);
            return reclf_fail(err, "out of memory for the parameters of %s", g->name);
        }
        for (int j = 0; j < g->n_params; j++) {
            int i = params_find(s->g, g->params[j].name);
            if (i < 0 || s->g->params[i].numel != g->params[j].numel) {
                free(covered);
                return reclf_fail(err, "%s: parameter %s is %s the training graph %s", g->name, g->params[j].name,
                                  i < 0 ? "not in" : "of another size than in", s->g->name);
            }
            sp->map[k][j] = i;
            covered[i] = 1;
        }
    }
    for (int i = 0; i < s->g->n_params; i++)
        if (!covered[i]) {
            free(covered);
            return reclf_fail(err, "--gather: parameter %s of %s is in none of its image_vjp, text_vjp and "
                              "features_loss graphs, so it would get no gradient", s->g->params[i].name, s->g->name);
        }
    free(covered);
    sp->d = s->cfg.width, sp->K = s->cfg.seq_len - 1;
    int vo = model_output(sp->g[G_IMG], "V");
    if (vo < 0 || model_output(sp->g[G_IMG], "vg") < 0 || model_output(sp->g[G_TXT], "tg") < 0 ||
        model_output(sp->g[G_TXT], "W") < 0)
        return reclf_fail(err, "%s / %s: the outputs vg, V, tg, W are missing", sp->g[G_IMG]->name, sp->g[G_TXT]->name);
    sp->R = sp->g[G_IMG]->outputs[vo].shape[1];
    size_t d = (size_t)sp->d, R = (size_t)sp->R, K = (size_t)sp->K;
    size_t per_image = d + R * d, per_text = d + K * d + K;
    sp->d_vg = calloc((size_t)maxB * d, sizeof(float));
    sp->d_V = calloc((size_t)maxB * R * d, sizeof(float));
    sp->d_tg = calloc((size_t)maxT * d, sizeof(float));
    sp->d_W = calloc((size_t)maxT * K * d, sizeof(float));
    sp->send = calloc((size_t)maxB * per_image + (size_t)maxT * per_text, sizeof(float));
    sp->recv = calloc((size_t)Bg * per_image + (size_t)maxTg * per_text, sizeof(float));
    sp->vg = calloc((size_t)Bg * d, sizeof(float)), sp->dvg = calloc((size_t)Bg * d, sizeof(float));
    sp->V = calloc((size_t)Bg * R * d, sizeof(float)), sp->dV = calloc((size_t)Bg * R * d, sizeof(float));
    sp->tg = calloc((size_t)maxTg * d, sizeof(float)), sp->dtg = calloc((size_t)maxTg * d, sizeof(float));
    sp->W = calloc((size_t)maxTg * K * d, sizeof(float)), sp->dW = calloc((size_t)maxTg * K * d, sizeof(float));
    sp->wm = calloc((size_t)maxTg * K, sizeof(float));
    sp->B_of = calloc((size_t)n_ranks, sizeof(long)), sp->T_of = calloc((size_t)n_ranks, sizeof(long));
    if (!sp->d_vg || !sp->d_V || !sp->d_tg || !sp->d_W || !sp->send || !sp->recv || !sp->vg || !sp->dvg || !sp->V ||
        !sp->dV || !sp->tg || !sp->dtg || !sp->W || !sp->dW || !sp->wm || !sp->B_of || !sp->T_of)
        return reclf_fail(err, "out of memory for the gathered batch of %ld", Bg);
    if ((size_t)Bg * per_image + (size_t)maxTg * per_text > (size_t)2147483647)
        return reclf_fail(err, "--gather: %ld pairs of features exceed MPI's int counts", Bg);
    /* the arenas at their largest sizes, so the step never reallocates */
    long dims[RECLF_MAX_SYMS];
    const long sizes[3][2] = {{maxB, maxT}, {maxB, maxT}, {Bg, maxTg}};
    for (int k = 0; k < 3; k++)
        if (reserve_arena(&sp->arena[k], &sp->arena_size[k], sp->g[k]->arena_bytes(sym_dims(sp->g[k], dims, sizes[k][0], sizes[k][1])),
                          sp->g[k]->name, err) != 0)
            return -1;
    return 0;
}

/* One --gather step of this rank: b is its shard (Bl images, Tl texts: Bl reports, then its
 * side-swapped extras), off its first slot in the global batch of Bg. Leaves the whole-batch
 * gradient in s->grads (the same on every rank) and the global loss in *loss. */
static int split_step(split_t *sp, session *s, const batch_t *b, const dist_info *dist, long Bg, long off,
                      double *loss, long *Tg_out, double *gather_s, double *allreduce_s, reclf_err *err) {
    const size_t d = (size_t)sp->d, R = (size_t)sp->R, K = (size_t)sp->K;
    const long Bl = b->B, Tl = b->T, L = b->L;
    for (long i = 0; i < Tl * L; i++)
        if (b->tokens[i] < 0 || b->tokens[i] >= s->cfg.vocab)
            return reclf_fail(err, "token id %d is outside the model's vocabulary of %d", b->tokens[i], s->cfg.vocab);
    /* the current parameters in each graph's own layout */
    for (int k = 0; k < 3; k++)
        for (int j = 0; j < sp->g[k]->n_params; j++)
            memcpy(sp->p[k] + sp->g[k]->params[j].offset, s->params + s->g->params[sp->map[k][j]].offset,
                   sizeof(float) * sp->g[k]->params[j].numel);

    /* 1. encoders forward on the shard (d_* are read only by backward) */
    long di[RECLF_MAX_SYMS], dt[RECLF_MAX_SYMS], dl[RECLF_MAX_SYMS];
    sym_dims(sp->g[G_IMG], di, Bl, Tl), sym_dims(sp->g[G_TXT], dt, Bl, Tl);
    if (reserve_arena(&sp->arena[G_IMG], &sp->arena_size[G_IMG], sp->g[G_IMG]->arena_bytes(di), sp->g[G_IMG]->name, err) ||
        reserve_arena(&sp->arena[G_TXT], &sp->arena_size[G_TXT], sp->g[G_TXT]->arena_bytes(dt), sp->g[G_TXT]->name, err))
        return -1;
    void *in_img[8], *in_txt[8], *in_loss[8];
    bind(sp->g[G_IMG], in_img, (const char *const[]){"images", "d_vg", "d_V", NULL},
         (void *const[]){b->images, sp->d_vg, sp->d_V});
    bind(sp->g[G_TXT], in_txt, (const char *const[]){"tokens", "attn_mask", "d_tg", "d_W", NULL},
         (void *const[]){b->tokens, b->attn_mask, sp->d_tg, sp->d_W});
    sp->g[G_IMG]->forward(sp->arena[G_IMG], sp->p[G_IMG], in_img, di);
    sp->g[G_TXT]->forward(sp->arena[G_TXT], sp->p[G_TXT], in_txt, dt);
    const real *vg = sp->g[G_IMG]->output(sp->arena[G_IMG], model_output(sp->g[G_IMG], "vg"), di);
    const real *V = sp->g[G_IMG]->output(sp->arena[G_IMG], model_output(sp->g[G_IMG], "V"), di);
    const real *tg = sp->g[G_TXT]->output(sp->arena[G_TXT], model_output(sp->g[G_TXT], "tg"), dt);
    const real *W = sp->g[G_TXT]->output(sp->arena[G_TXT], model_output(sp->g[G_TXT], "W"), dt);

    /* 2. all-gather: [vg | V | tg | W | word_mask] of each rank, in rank order */
    double t0 = reclf_now_seconds();
    int N = dist->size;
    dist_allgather_long(dist, Tl, sp->T_of);
    long *cnt = malloc(sizeof(long) * (size_t)N);
    long Tg = 0;
    for (int r = 0; r < N; r++) {
        int lo, hi;
        shard_range((int)Bg, N, 1, r, 0, &lo, &hi);
        sp->B_of[r] = hi - lo;
        cnt[r] = (long)(sp->B_of[r] * (d + R * d) + sp->T_of[r] * (d + K * d + K));
        Tg += sp->T_of[r];
    }
    float *q = sp->send;
    memcpy(q, vg, sizeof(float) * Bl * d), q += Bl * d;
    memcpy(q, V, sizeof(float) * Bl * R * d), q += Bl * R * d;
    memcpy(q, tg, sizeof(float) * Tl * d), q += Tl * d;
    memcpy(q, W, sizeof(float) * Tl * K * d), q += Tl * K * d;
    memcpy(q, b->word_mask, sizeof(float) * Tl * K);
    dist_allgatherv_float(dist, sp->send, cnt, sp->recv);
    free(cnt);
    /* unpack: image rows at the rank's slots; real texts likewise, extras after all Bg reports */
    const float *p = sp->recv;
    long boff = 0, eoff = Bg, my_eoff = Bg;
    for (int r = 0; r < N; r++) {
        long Br = sp->B_of[r], Er = sp->T_of[r] - Br;
        if (r == dist->rank) my_eoff = eoff;
        memcpy(sp->vg + boff * d, p, sizeof(float) * Br * d), p += Br * d;
        memcpy(sp->V + boff * R * d, p, sizeof(float) * Br * R * d), p += Br * R * d;
        memcpy(sp->tg + boff * d, p, sizeof(float) * Br * d), p += Br * d;
        memcpy(sp->tg + eoff * d, p, sizeof(float) * Er * d), p += Er * d;
        memcpy(sp->W + boff * K * d, p, sizeof(float) * Br * K * d), p += Br * K * d;
        memcpy(sp->W + eoff * K * d, p, sizeof(float) * Er * K * d), p += Er * K * d;
        memcpy(sp->wm + boff * K, p, sizeof(float) * Br * K), p += Br * K;
        memcpy(sp->wm + eoff * K, p, sizeof(float) * Er * K), p += Er * K;
        boff += Br, eoff += Er;
    }
    *gather_s = reclf_now_seconds() - t0;

    /* 3. the loss on the whole batch, forward and backward (identically on every rank) */
    const reclf_graph *gl = sp->g[G_LOSS];
    sym_dims(gl, dl, Bg, Tg);
    if (reserve_arena(&sp->arena[G_LOSS], &sp->arena_size[G_LOSS], gl->arena_bytes(dl), gl->name, err)) return -1;
    static const char *const feat_names[] = {"vg", "V", "tg", "W", "word_mask", NULL};
    bind(gl, in_loss, feat_names, (void *const[]){sp->vg, sp->V, sp->tg, sp->W, sp->wm});
    real *in_grads[8] = {0};
    bind(gl, (void **)in_grads, feat_names, (void *const[]){sp->dvg, sp->dV, sp->dtg, sp->dW, NULL});
    for (int i = 0; i < gl->n_inputs; i++)
        if (in_grads[i] && !gl->inputs[i].needs_grad) {
            /* a feature the loss does not use (convirt's V and W): its gradient is zero */
            memset(in_grads[i], 0, sizeof(float) * model_numel(&gl->inputs[i], dl));
            in_grads[i] = NULL;
        }
    gl->forward(sp->arena[G_LOSS], sp->p[G_LOSS], in_loss, dl);
    *loss = gl->output(sp->arena[G_LOSS], 0, dl)[0];
    gl->backward(sp->arena[G_LOSS], sp->gr[G_LOSS], sp->p[G_LOSS], in_loss, in_grads, dl);

    /* 4. this shard's slice of the feature gradients into the d_* inputs, then encoder backward */
    long Er = Tl - Bl;
    memcpy(sp->d_vg, sp->dvg + off * d, sizeof(float) * Bl * d);
    memcpy(sp->d_V, sp->dV + off * R * d, sizeof(float) * Bl * R * d);
    memcpy(sp->d_tg, sp->dtg + off * d, sizeof(float) * Bl * d);
    memcpy(sp->d_tg + Bl * d, sp->dtg + my_eoff * d, sizeof(float) * Er * d);
    memcpy(sp->d_W, sp->dW + off * K * d, sizeof(float) * Bl * K * d);
    memcpy(sp->d_W + Bl * K * d, sp->dW + my_eoff * K * d, sizeof(float) * Er * K * d);
    sp->g[G_IMG]->backward(sp->arena[G_IMG], sp->gr[G_IMG], sp->p[G_IMG], in_img, NULL, di);
    sp->g[G_TXT]->backward(sp->arena[G_TXT], sp->gr[G_TXT], sp->p[G_TXT], in_txt, NULL, dt);

    /* 5. the training graph's gradient: encoders summed over ranks, then the loss graph's own */
    memset(s->grads, 0, sizeof(float) * s->g->n_param_elems);
    for (int k = G_IMG; k <= G_LOSS; k++) {
        if (k == G_LOSS) {
            double t1 = reclf_now_seconds();
            dist_allreduce_sum_float(dist, s->grads, s->g->n_param_elems);
            *allreduce_s = reclf_now_seconds() - t1;
        }
        for (int j = 0; j < sp->g[k]->n_params; j++) {
            float *dst = s->grads + s->g->params[sp->map[k][j]].offset;
            const float *src = sp->gr[k] + sp->g[k]->params[j].offset;
            for (size_t e = 0; e < sp->g[k]->params[j].numel; e++) dst[e] += src[e];
        }
    }
    *Tg_out = Tg;
    return 0;
}

/* Rank 0's state (step, parameters, moments, vocabulary) to every rank, after it initialised or
 * resumed the run: only rank 0 reads and writes the run folder. */
static int share_state(const dist_info *dist, session *s, reclf_err *err) {
    if (dist->size <= 1) return 0;
    size_t n = s->g->n_param_elems;
    dist_bcast(dist, &s->step, sizeof s->step, 0);
    dist_bcast(dist, s->params, sizeof(float) * n, 0);
    dist_bcast(dist, s->m, sizeof(float) * n, 0);
    dist_bcast(dist, s->v, sizeof(float) * n, 0);
    char *text = dist->rank == 0 ? vocab_serialize(&s->vocab) : NULL;
    long len = text ? (long)strlen(text) + 1 : 0;
    dist_bcast(dist, &len, sizeof len, 0);
    if (dist->rank != 0) text = calloc((size_t)len + 1, 1);
    if (!text) return reclf_fail(err, "out of memory for the vocabulary");
    dist_bcast(dist, text, (size_t)len, 0);
    int rc = 0;
    if (dist->rank != 0) {
        rc = vocab_deserialize(&s->vocab, text, err);
        if (rc == 0) s->have_vocab = 1;
    }
    free(text);
    return rc;
}

int train_run(const train_opts *o, reclf_err *err) {
    session s;
    reclf_dataset ds;
    batch_t b, b_next; /* b_next: the plain step's next batch, loaded while the step runs */
    prefetch_t pf = {0};
    split_t sp;
    metrics_log ml = {0};
    order_t order = {0, -1, NULL};
    char ckpt[4096], metrics_path[4096];
    char *opts_json = NULL;
    float *acc = NULL;
    int rc = -1, have_ds = 0, have_batch = 0, have_next = 0, have_split = 0;
    static const dist_info single = {0, 1, 1, 0};
    const dist_info *dist = o->dist ? o->dist : &single;
    const int N = dist->size, rank = dist->rank, root = rank == 0;
    const int K = o->grad_accum > 0 ? o->grad_accum : 1;
    const int quiet = o->quiet || !root;
    /* the plain single-process step (the graph's gradient as it is) unless data is split */
    const int plain = N == 1 && K == 1 && !o->gather;

    if (o->steps < 1 || o->batch < 1) return reclf_fail(err, "--steps and --batch must be positive");
    if (o->gather && K > 1) return reclf_fail(err, "--gather and --grad-accum do not go together");
    /* the smallest micro-batch: in-batch negatives need two pairs, --gather one image per rank */
    int min_n = o->batch, max_n = 0;
    for (int r = 0; r < N; r++)
        for (int k = 0; k < K; k++) {
            int lo, hi;
            shard_range(o->batch, N, K, r, k, &lo, &hi);
            if (hi - lo < min_n) min_n = hi - lo;
            if (hi - lo > max_n) max_n = hi - lo;
        }
    if (min_n < (o->gather ? 1 : 2))
        return reclf_fail(err, "--batch %d cut in %d rank(s) x %d micro-batch(es) leaves %d pair(s) in one of them; "
                          "each needs %s", o->batch, N, K, min_n, o->gather ? "at least one" : "two (in-batch negatives)");
    if (session_open(&s, o->model, 1, err) != 0) return -1;
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", o->out);
    snprintf(metrics_path, sizeof metrics_path, "%s/metrics.jsonl", o->out);
    if (root && reclf_mkdirs(o->out, err) != 0) goto done;
    opts_json = options_json(o);
    if (N > 1 || K > 1 || o->gather) {
        /* data-parallel runs say so in the checkpoint; plain runs keep their metadata as it was */
        json_error_t jerr;
        json_t *j = json_loads(opts_json, 0, &jerr);
        if (N > 1) json_object_set_new(j, "ranks", json_integer(N));
        if (K > 1) json_object_set_new(j, "grad_accum", json_integer(K));
        if (o->gather) json_object_set_new(j, "gather", json_true());
        free(opts_json);
        opts_json = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
        json_decref(j);
    }

    if (dataset_open(&ds, o->data, SPLIT_TRAIN, s.cfg.image, o->seed, o->skip_bad, err) != 0) goto done;
    have_ds = 1;
    if (ds.kind == DATASET_MANIFEST) {
        if (ds.m.n_skipped > 0 && root) fprintf(stderr, "reclf: skipped %ld bad manifest rows (--skip-bad)\n", (long)ds.m.n_skipped);
        order.n = dataset_count(&ds);
        if (order.n < o->batch) {
            reclf_fail(err, "%s: %ld training rows, fewer than one batch of %d", o->data, order.n, o->batch);
            goto done;
        }
    }

    struct stat st;
    if (!root) {
        /* the other ranks get everything from rank 0 below */
    } else if (o->resume && stat(ckpt, &st) == 0) {
        ckpt_meta meta;
        memset(&meta, 0, sizeof meta);
        if (session_load(&s, ckpt, &meta, err) != 0) goto done;
        ckpt_meta_free(&meta);
        if (!s.have_vocab) {
            reclf_fail(err, "%s: the checkpoint holds no vocabulary", ckpt);
            goto done;
        }
        if (!quiet) printf("resuming %s from step %ld of %ld\n", ckpt, s.step, o->steps);
    } else {
        if (o->resume) {
            reclf_fail(err, "--resume: no checkpoint at %s", ckpt);
            goto done;
        }
        if (stat(ckpt, &st) == 0) {
            reclf_fail(err, "%s already holds a run (%s); use --resume to continue it or another --out", o->out, ckpt);
            goto done;
        }
        remove(metrics_path);
        if (params_init(s.g, s.params, o->seed, err) != 0) goto done;
        if (o->vocab_file) {
            if (vocab_load_bert(&s.vocab, o->vocab_file, err) != 0) goto done;
        } else {
            long n = dataset_count(&ds) < VOCAB_REPORTS ? dataset_count(&ds) : VOCAB_REPORTS;
            if (dataset_build_vocab(&ds, n, 1, s.cfg.vocab, &s.vocab, err) != 0) goto done;
        }
        s.have_vocab = 1;
        if (s.vocab.n > s.cfg.vocab) {
            reclf_fail(err, "the vocabulary has %d tokens but the model's embedding has %d rows; rebuild with "
                       "`bin/reclfc --set vocab=%d` or a smaller vocabulary", s.vocab.n, s.cfg.vocab, s.vocab.n);
            goto done;
        }
    }
    if (share_state(dist, &s, err) != 0) goto done;
    if (s.step >= o->steps) {
        if (!quiet) printf("%s is already at step %ld of %ld: nothing to do\n", ckpt, s.step, o->steps);
        rc = 0;
        goto done;
    }
    int max_T = o->side_swap ? 2 * max_n : max_n;
    if (batch_alloc(&b, max_n, max_T, s.cfg.image, s.cfg.seq_len, err) != 0) goto done;
    have_batch = 1;
    if (plain && !o->no_prefetch) {
        if (batch_alloc(&b_next, max_n, max_T, s.cfg.image, s.cfg.seq_len, err) != 0) goto done;
        have_next = 1;
    }
    if (o->gather) {
        have_split = 1;
        if (split_open(&sp, &s, N, max_n, max_T, o->batch, o->side_swap ? 2L * o->batch : o->batch, err) != 0) goto done;
    } else if (session_reserve(&s, max_n, max_T, err) != 0) goto done;
    if (!plain && !o->gather && !(acc = malloc(sizeof(float) * s.g->n_param_elems))) {
        reclf_fail(err, "out of memory for the gradient accumulator");
        goto done;
    }
    if (root) {
        int stale = reclf_remove_stale_temporaries(ckpt);
        if (stale && !quiet) printf("removed %d temporary checkpoint file(s) of a killed run\n", stale);
    }
    /* the log holds steps 1..s.step, as the checkpoint does */
    if (root && metrics_log_open(&ml, metrics_path, s.step, err) != 0) goto done;

    long log_every = o->log_every > 0 ? o->log_every : (o->steps <= 200 ? 1 : 10);
    long ckpt_every = o->ckpt_every > 0 ? o->ckpt_every : 100;
    if (!quiet) {
        printf("training %s: %zu parameters, batch %d%s, %ld steps, arena %.0f MiB, vocabulary %d\n", s.g->name,
               s.g->n_param_elems, o->batch, o->side_swap ? " + side-swap negatives" : "", o->steps,
               (o->gather ? sp.arena_size[0] + sp.arena_size[1] + sp.arena_size[2] : s.arena_size) / 1048576.0, s.vocab.n);
        if (N > 1 || K > 1 || o->gather)
            printf("data parallel: %d rank(s) x %d micro-batch(es) of %d-%d pairs%s\n", N, K, min_n, max_n,
                   o->gather ? ", features gathered: every loss term sees the global batch" : "");
    }
    progress_t prog;
    progress_init(&prog, stdout, o->steps, s.step, log_every);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    stop_signal = 0;

    long *idx = malloc(sizeof(long) * (size_t)o->batch), *idx_next = malloc(sizeof(long) * (size_t)o->batch);
    long taken = 0, skipped = 0;
    int failed = 0, stop_sig = 0;
    adamw_cfg acfg = ADAMW_DEFAULTS;
    acfg.weight_decay = o->weight_decay;
    double t_start = reclf_now_seconds();
    double sum_ar = 0, sum_step = 0; /* for the closing all-reduce summary */
    /* debugging the check itself: RECLF_TEST_DESYNC=S nudges one parameter on the last rank after
     * step S, which --check-sync must then report */
    long desync_step = getenv("RECLF_TEST_DESYNC") ? atol(getenv("RECLF_TEST_DESYNC")) : 0;
    while (s.step < o->steps) {
        long t = s.step;
        /* the global batch's index list: the same function of (seed, step) for any number of ranks */
        for (int i = 0; i < o->batch; i++) idx[i] = order_index(&order, &ds, o->seed, t * o->batch + i);
        double loss, data_s = 0, step_s = 0, ar_s = 0, gather_s = 0, texts;
        int sig_now;
        if (plain) {
            /* this step's batch: the one loaded during the previous step, or loaded now; data_s is
             * the time the step waited for it */
            double t0 = reclf_now_seconds();
            batch_t *cur = NULL;
            if (pf.pending) {
                if (prefetch_wait(&pf, err) != 0) { failed = 1; break; }
                if (pf.step == t) cur = pf.batch;
            }
            if (!cur) {
                cur = &b;
                if (batch_load(&b, &ds, &s.vocab, idx, o->side_swap, err) != 0) { failed = 1; break; }
            }
            double t1 = reclf_now_seconds();
            if (have_next && t + 1 < o->steps) {
                /* the next step's batch, into the buffer this step does not read */
                long *next = idx_next;
                for (int i = 0; i < o->batch; i++) next[i] = order_index(&order, &ds, o->seed, (t + 1) * o->batch + i);
                batch_t *other = cur == &b ? &b_next : &b;
                reclf_err perr;
                if (prefetch_start(&pf, other, t + 1, &ds, &s.vocab, next, o->batch, o->side_swap, &perr) != 0 && !quiet)
                    fprintf(stderr, "warning: %s; loading batches in the step instead\n", perr.msg);
            }
            if (session_step(&s, cur, 1, &loss, err) != 0) { failed = 1; break; }
            data_s = t1 - t0, step_s = reclf_now_seconds() - t1;
            texts = cur->T;
            sig_now = 0;
        } else {
            double loss_part = 0, texts_part = 0;
            if (o->gather) {
                int lo, hi;
                shard_range(o->batch, N, 1, rank, 0, &lo, &hi);
                double t0 = reclf_now_seconds();
                b.B = hi - lo;
                if (batch_load(&b, &ds, &s.vocab, idx + lo, o->side_swap, err) != 0) { failed = 1; break; }
                double t1 = reclf_now_seconds();
                long Tg = 0;
                if (split_step(&sp, &s, &b, dist, o->batch, lo, &loss, &Tg, &gather_s, &ar_s, err) != 0) { failed = 1; break; }
                data_s = t1 - t0, step_s = reclf_now_seconds() - t1;
                if (root) loss_part = loss, texts_part = (double)Tg; /* the same on every rank: count it once */
            } else {
                /* K micro-batches of this rank's shard, each its own contrastive batch; the step's
                 * gradient is their average over all ranks, weighted by size (sizes n/B) */
                memset(acc, 0, sizeof(float) * s.g->n_param_elems);
                for (int k = 0; k < K && !failed; k++) {
                    int lo, hi;
                    shard_range(o->batch, N, K, rank, k, &lo, &hi);
                    double t0 = reclf_now_seconds();
                    b.B = hi - lo;
                    if (batch_load(&b, &ds, &s.vocab, idx + lo, o->side_swap, err) != 0) { failed = 1; break; }
                    double t1 = reclf_now_seconds(), lk;
                    if (session_step(&s, &b, 1, &lk, err) != 0) { failed = 1; break; }
                    float w = (float)((double)(hi - lo) / o->batch);
                    for (size_t i = 0; i < s.g->n_param_elems; i++) acc[i] += w * s.grads[i];
                    loss_part += (double)w * lk, texts_part += b.T;
                    data_s += t1 - t0, step_s += reclf_now_seconds() - t1;
                }
                if (failed) break;
                double t2 = reclf_now_seconds();
                dist_allreduce_sum_float(dist, acc, s.g->n_param_elems);
                ar_s = reclf_now_seconds() - t2;
                step_s += ar_s;
                memcpy(s.grads, acc, sizeof(float) * s.g->n_param_elems);
            }
            /* loss, texts and a pending stop signal, agreed by all ranks: every rank then takes
             * the same decisions (NaN stop or skip, stopping, last step) */
            double agree[3] = {loss_part, texts_part, stop_signal ? 1.0 : 0.0};
            dist_allreduce_sum_double(dist, agree, 3);
            loss = agree[0], texts = agree[1], sig_now = agree[2] > 0;
        }
        double gnorm = grad_norm(s.grads, s.g->n_param_elems);
        if (!isfinite(loss) || !isfinite(gnorm)) {
            const char *where = first_nonfinite(&s);
            char what[512];
            if (where) snprintf(what, sizeof what, "step %ld: non-finite gradient, first in tensor %s (loss %g)", t + 1, where, loss);
            else snprintf(what, sizeof what, "step %ld: non-finite loss (%g)", t + 1, loss);
            if (o->skip_nonfinite) {
                if (root) fprintf(stderr, "\nreclf: %s: update skipped (--on-nan skip)\n", what);
                skipped++;
                s.step++;
                continue;
            }
            struct stat cst;
            if (stat(ckpt, &cst) == 0)
                reclf_fail(err, "%s; stopped, the last good checkpoint is %s (use --on-nan skip to skip such steps)", what, ckpt);
            else
                reclf_fail(err, "%s; stopped before any checkpoint was written (use --on-nan skip to skip such steps)", what);
            failed = 1;
            break;
        }
        double lr = lr_schedule(o->lr, t, o->steps);
        clip_grad_norm(s.grads, s.g->n_param_elems, o->clip);
        if (adamw_step_graph(s.g, s.params, s.grads, s.m, s.v, t + 1, lr, &acfg, err) != 0) { failed = 1; break; }
        s.step++;
        taken++;
        if (desync_step == s.step && rank == N - 1) s.params[0] += 1e-3f;
        if (o->check_sync) {
            double diff;
            int bad_rank;
            size_t at;
            if (dist_check_same(dist, s.params, s.g->n_param_elems, &diff, &bad_rank, &at)) {
                reclf_fail(err, "--check-sync: after step %ld the parameters of rank %d differ from rank 0's: "
                           "max |p - p_rank0| = %g in %s (element %zu of the packed buffer)",
                           s.step, bad_rank, diff, param_at(s.g, at), at);
                failed = 1;
                break;
            }
        }
        sum_ar += ar_s + gather_s, sum_step += step_s;
        if (root && (s.step % log_every == 0 || s.step == o->steps)) {
            metrics_num nums[12] = {{"step", (double)s.step}, {"loss", loss}, {"lr", lr}, {"grad_norm", gnorm},
                                    {"texts", texts}, {"data_s", data_s}, {"step_s", step_s},
                                    {"elapsed_s", reclf_now_seconds() - t_start}};
            int n_nums = 8;
            if (N > 1) {
                nums[n_nums++] = (metrics_num){"ranks", (double)N};
                nums[n_nums++] = (metrics_num){"allreduce_s", ar_s};
            }
            if (o->gather && N > 1) nums[n_nums++] = (metrics_num){"gather_s", gather_s};
            if (metrics_log_write(&ml, nums, n_nums, NULL, 0, err) != 0) { failed = 1; break; }
        }
        if (!quiet) {
            char extra[160];
            int n = snprintf(extra, sizeof extra, "lr %.2e  |g| %.2f", lr, gnorm);
            if (N > 1)
                snprintf(extra + n, sizeof extra - (size_t)n, "  comm %.0f/%.0f ms", 1e3 * (ar_s + gather_s),
                         1e3 * step_s);
            progress_update(&prog, s.step, loss, extra);
        }
        /* with several ranks only the agreed signal counts, so all stop after the same step */
        if (N == 1 && stop_signal) stop_sig = stop_signal;
        else if (N > 1 && sig_now) stop_sig = stop_signal ? stop_signal : SIGTERM;
        int stop_now = stop_sig || (o->stop_after > 0 && taken >= o->stop_after);
        if (s.step % ckpt_every == 0 || s.step == o->steps || stop_now) {
            if (root && session_save(&s, ckpt, opts_json, err) != 0) { failed = 1; break; }
        }
        if (stop_now) break;
    }
    free(idx);
    free(idx_next);
    if (!quiet) progress_finish(&prog);
    if (failed) goto done;
    if (!root) {
        /* rank 0 reports */
    } else if (stop_sig)
        printf("stopped by signal %d at step %ld; checkpoint %s (continue with --resume)\n", stop_sig, s.step, ckpt);
    else if (s.step < o->steps)
        printf("stopped after %ld updates at step %ld; checkpoint %s (continue with --resume)\n", taken, s.step, ckpt);
    else if (!quiet)
        printf("done: %ld steps%s; checkpoint %s, metrics %s\n", s.step, skipped ? " (some skipped)" : "", ckpt, metrics_path);
    if (!quiet && N > 1 && taken > 0)
        printf("%d ranks: %s %.1f ms per step of %.1f ms (%.0f%%)\n", N, o->gather ? "all-gather + all-reduce" : "all-reduce",
               1e3 * sum_ar / taken, 1e3 * sum_step / taken, sum_step > 0 ? 100 * sum_ar / sum_step : 0.0);
    rc = 0;
done:
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    prefetch_close(&pf); /* before the batches and the dataset it reads */
    if (ml.f) metrics_log_close(&ml);
    if (have_split) split_close(&sp);
    if (have_batch) batch_free(&b);
    if (have_next) batch_free(&b_next);
    if (have_ds) dataset_close(&ds);
    free(acc);
    free(order.perm);
    free(opts_json);
    session_close(&s);
    return rc;
}
