/* SPEC §10 segmentation task: see seg_task.h for the protocol. */
#include "seg_task.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "dataset.h"
#include "metrics.h"
#include "metrics_log.h"
#include "model.h"
#include "optim.h"
#include "params.h"
#include "rng.h"
#include "synth.h"

#define SEG_LR 1e-3
#define SEG_CLIP 1.0
/* rng_split streams of this task, distinct from each other for a seed */
#define STREAM_POOL 0x736567706f6f6cull  /* "segpool": the pool's shuffle */
#define STREAM_ORDER 0x7365676f72640000ull /* "segord" + fraction << 40 + epoch: epoch permutations */

static const double FRACTIONS[3] = {0.01, 0.10, 1.00};

void seg_task_defaults(seg_task_opts *o) {
    memset(o, 0, sizeof *o);
    o->ckpt = NULL;
    o->data = "synth";
    o->finetune = 0;
    o->steps = 300;
    o->batch = 16;
    o->pool = 10000;
    o->seed = 1;
    o->limit_test = 0;
    o->quiet = 0;
}

/* ---- seg_model --------------------------------------------------------------------------------- */

static int is_encoder_param(const char *name) { return strncmp(name, "image.", 6) == 0; }

/* A [B, 1, S, S] tensor with B the run-time batch: returns S, or -1 when the layout differs. */
static int image_side(const reclf_tensor_desc *t) {
    if (t->dtype != RECLF_REAL || t->ndim != 4 || t->shape[0] >= 0 || t->shape[1] != 1 || t->shape[2] < 1 ||
        t->shape[2] != t->shape[3])
        return -1;
    return t->shape[2];
}

static const reclf_graph *find_graph(const char *name, reclf_err *err) {
    const reclf_graph *g = model_find(name);
    if (!g)
        reclf_fail(err, "graph '%s' is not compiled into this program: graphs/seg.lua makes it; run `make generate` "
                   "and rebuild", name);
    return g;
}

/* dims for a graph whose only run-time size is B */
static int batch_dims(const reclf_graph *g, long B, long *dims, reclf_err *err) {
    memset(dims, 0, sizeof(long) * RECLF_MAX_SYMS);
    int k = model_sym(g, "B");
    if (k < 0 || g->n_syms != 1) return reclf_fail(err, "graph %s: expected one run-time size B", g->name);
    dims[k] = B;
    return 0;
}

int seg_model_open(seg_model *sm, int finetune, int batch, reclf_err *err) {
    memset(sm, 0, sizeof *sm);
    long dims[RECLF_MAX_SYMS];
    if (batch < 1) return reclf_fail(err, "seg: batch %d must be positive", batch);
    sm->frozen = !finetune;
    sm->batch = batch;
    if (!(sm->g = find_graph(finetune ? "seg.finetune" : "seg", err))) return -1;
    if (!(sm->gp = find_graph("seg.predict", err))) return -1;
    const reclf_graph *g = sm->g, *gp = sm->gp;
    if (params_validate(g, err) != 0 || params_validate(gp, err) != 0) return -1;

    /* the layouts this file relies on: images and mask [B, 1, S, S] in, loss and prob out */
    sm->in_images = model_input(g, "images");
    sm->in_mask = model_input(g, "mask");
    sm->pin_images = model_input(gp, "images");
    sm->pout_prob = model_output(gp, "prob");
    if (g->n_inputs != 2 || sm->in_images < 0 || sm->in_mask < 0 || g->n_outputs < 1 ||
        strcmp(g->outputs[0].name, "loss") != 0)
        return reclf_fail(err, "graph %s: expected inputs images and mask and a loss output", g->name);
    if (gp->n_inputs != 1 || sm->pin_images < 0 || sm->pout_prob < 0)
        return reclf_fail(err, "graph %s: expected the input images and the output prob", gp->name);
    int S = image_side(&g->inputs[sm->in_images]);
    if (S < 1 || image_side(&g->inputs[sm->in_mask]) != S || image_side(&gp->inputs[sm->pin_images]) != S ||
        image_side(&gp->outputs[sm->pout_prob]) != S)
        return reclf_fail(err, "graphs %s / %s: images, mask and prob must all be [B, 1, S, S] with one S", g->name,
                          gp->name);
    sm->size = S;

    size_t n = g->n_param_elems, np = gp->n_param_elems, px = (size_t)batch * S * S;
    sm->params = calloc(n, sizeof(float));
    sm->grads = calloc(n, sizeof(float));
    sm->m = calloc(n, sizeof(float));
    sm->v = calloc(n, sizeof(float));
    sm->decay = calloc(n ? n : 1, 1);
    sm->trainable = calloc((size_t)g->n_params + 1, 1);
    sm->pparams = calloc(np ? np : 1, sizeof(float));
    sm->pmap = calloc((size_t)gp->n_params + 1, sizeof(int));
    sm->images = calloc(px, sizeof(float));
    sm->masks = calloc(px, sizeof(float));
    if (!sm->params || !sm->grads || !sm->m || !sm->v || !sm->decay || !sm->trainable || !sm->pparams || !sm->pmap ||
        !sm->images || !sm->masks)
        goto oom;
    if (params_decay_mask(g, sm->decay, err) != 0) goto fail;
    /* frozen: the encoder's parameters are never updated (the graph's detach already makes their
     * gradients zero; skipping them also keeps weight decay off them) */
    for (int i = 0; i < g->n_params; i++) sm->trainable[i] = !(sm->frozen && is_encoder_param(g->params[i].name));
    /* the prediction graph reads the training graph's parameters by name */
    for (int i = 0; i < gp->n_params; i++) {
        int j = params_find(g, gp->params[i].name);
        if (j < 0 || g->params[j].numel != gp->params[i].numel) {
            reclf_fail(err, "graph %s: parameter %s has no counterpart of the same size in %s", gp->name,
                       gp->params[i].name, g->name);
            goto fail;
        }
        sm->pmap[i] = j;
    }
    if (batch_dims(g, batch, dims, err) != 0) goto fail;
    sm->arena_size = g->arena_bytes(dims);
    if (batch_dims(gp, batch, dims, err) != 0) goto fail;
    sm->parena_size = gp->arena_bytes(dims);
    sm->arena = aligned_alloc(64, (sm->arena_size + 63) / 64 * 64);
    sm->parena = aligned_alloc(64, (sm->parena_size + 63) / 64 * 64);
    if (!sm->arena || !sm->parena) goto oom;
    return 0;
oom:
    reclf_fail(err, "seg: out of memory for graph %s at batch %d", g->name, batch);
fail:
    seg_model_close(sm);
    return -1;
}

int seg_model_init(seg_model *sm, unsigned long long seed, const float *encoder, reclf_err *err) {
    const reclf_graph *g = sm->g;
    if (params_init(g, sm->params, seed, err) != 0) return -1;
    /* after params_init, which initialises every parameter, encoder ones included */
    if (encoder)
        for (int i = 0; i < g->n_params; i++)
            if (is_encoder_param(g->params[i].name))
                memcpy(sm->params + g->params[i].offset, encoder + g->params[i].offset,
                       sizeof(float) * g->params[i].numel);
    memset(sm->m, 0, sizeof(float) * g->n_param_elems);
    memset(sm->v, 0, sizeof(float) * g->n_param_elems);
    memset(sm->grads, 0, sizeof(float) * g->n_param_elems);
    return 0;
}

int seg_model_load_encoder(const seg_model *sm, const char *ckpt, float *enc, int *n_loaded, reclf_err *err) {
    const reclf_graph *g = sm->g;
    /* NaN marks what the file did not provide */
    for (size_t i = 0; i < g->n_param_elems; i++) enc[i] = NAN;
    int n = 0;
    if (ckpt_load_params_by_name(ckpt, g, enc, 0, &n, err) != 0) return -1;
    for (int i = 0; i < g->n_params; i++) {
        const reclf_param_desc *d = &g->params[i];
        if (!is_encoder_param(d->name)) continue;
        for (size_t k = 0; k < d->numel; k++)
            if (!isfinite(enc[d->offset + k]))
                return reclf_fail(err, "%s: the image encoder's tensor '%s' is missing or not finite; segmentation "
                                  "needs a checkpoint of a RECLF-family model (SPEC 8b image.* names)", ckpt, d->name);
    }
    if (n_loaded) *n_loaded = n;
    return 0;
}

int seg_model_forward_backward(seg_model *sm, int n, int backward, double *loss, reclf_err *err) {
    const reclf_graph *g = sm->g;
    long dims[RECLF_MAX_SYMS];
    if (n < 1 || n > sm->batch) return reclf_fail(err, "seg: %d images for a model of batch %d", n, sm->batch);
    if (batch_dims(g, n, dims, err) != 0) return -1;
    if (g->arena_bytes(dims) > sm->arena_size) return reclf_fail(err, "seg: arena too small for batch %d", n);
    void *inputs[2] = {0};
    inputs[sm->in_images] = sm->images;
    inputs[sm->in_mask] = sm->masks;
    g->forward(sm->arena, sm->params, inputs, dims);
    *loss = g->output(sm->arena, 0, dims)[0];
    if (backward) g->backward(sm->arena, sm->grads, sm->params, inputs, NULL, dims);
    return 0;
}

int seg_model_update(seg_model *sm, long t, long steps, double lr, double clip, double *gnorm, reclf_err *err) {
    const reclf_graph *g = sm->g;
    /* frozen parameters take no part in the norm either */
    for (int i = 0; i < g->n_params; i++)
        if (!sm->trainable[i]) memset(sm->grads + g->params[i].offset, 0, sizeof(float) * g->params[i].numel);
    double norm = clip_grad_norm(sm->grads, g->n_param_elems, clip);
    if (gnorm) *gnorm = norm;
    if (!isfinite(norm)) return reclf_fail(err, "seg: non-finite gradient at update %ld", t + 1);
    double lr_t = lr_schedule(lr, t, steps);
    adamw_cfg cfg = ADAMW_DEFAULTS;
    for (int i = 0; i < g->n_params; i++) {
        if (!sm->trainable[i]) continue;
        size_t o = g->params[i].offset;
        if (adamw_step(sm->params + o, sm->grads + o, sm->m + o, sm->v + o, sm->decay + o, g->params[i].numel, t + 1,
                       lr_t, &cfg, err) != 0)
            return -1;
    }
    return 0;
}

int seg_model_predict(seg_model *sm, const float *images, long n, float *prob, reclf_err *err) {
    const reclf_graph *gp = sm->gp;
    for (int i = 0; i < gp->n_params; i++)
        memcpy(sm->pparams + gp->params[i].offset, sm->params + sm->g->params[sm->pmap[i]].offset,
               sizeof(float) * gp->params[i].numel);
    size_t px = (size_t)sm->size * sm->size;
    long dims[RECLF_MAX_SYMS];
    for (long s = 0; s < n; s += sm->batch) {
        long c = n - s < sm->batch ? n - s : sm->batch;
        if (batch_dims(gp, c, dims, err) != 0) return -1;
        if (gp->arena_bytes(dims) > sm->parena_size) return reclf_fail(err, "seg: arena too small for batch %ld", c);
        void *inputs[1] = {(void *)(images + (size_t)s * px)};
        gp->forward(sm->parena, sm->pparams, inputs, dims);
        memcpy(prob + (size_t)s * px, gp->output(sm->parena, sm->pout_prob, dims), sizeof(float) * (size_t)c * px);
    }
    return 0;
}

void seg_model_close(seg_model *sm) {
    free(sm->params), free(sm->grads), free(sm->m), free(sm->v), free(sm->decay), free(sm->trainable);
    free(sm->pparams), free(sm->pmap), free(sm->arena), free(sm->parena), free(sm->images), free(sm->masks);
    memset(sm, 0, sizeof *sm);
}

/* ---- data -------------------------------------------------------------------------------------- */

/* Indices (into the split) of the samples that have masks: synth ones are all masked; manifest
 * rows count only with a mask file. At most `limit` (limit <= 0: all). */
static int masked_indices(const reclf_dataset *ds, long limit, long **out, long *n_out, reclf_err *err) {
    long count = dataset_count(ds);
    long cap = limit > 0 && limit < count ? limit : count;
    long *idx = malloc(sizeof(long) * (size_t)(cap > 0 ? cap : 1));
    if (!idx) return reclf_fail(err, "seg: out of memory for %ld indices", cap);
    long n = 0;
    for (long i = 0; i < count && n < cap; i++) {
        if (ds->kind == DATASET_MANIFEST && !ds->m.rows[manifest_split_row(&ds->m, ds->split, i)].mask_path) continue;
        idx[n++] = i;
    }
    *out = idx;
    *n_out = n;
    return 0;
}

/* images and union masks of samples idx[0..n-1] into [n, S*S] buffers, in parallel */
static int load_pairs(const reclf_dataset *ds, const long *idx, long n, float *images, float *masks, reclf_err *err) {
    size_t px = (size_t)ds->size * ds->size;
    int failed = 0;
    reclf_err first = {{0}};
    #pragma omp parallel for schedule(dynamic)
    for (long i = 0; i < n; i++) {
        reclf_sample s;
        reclf_err e = {{0}};
        int bad = dataset_get(ds, idx[i], &s, &e) != 0;
        if (!bad && (!s.has_mask || !s.mask_union)) {
            reclf_fail(&e, "seg: %s sample %ld has no mask", synth_split_name(ds->split), idx[i]);
            bad = 1;
        }
        if (!bad) {
            memcpy(images + (size_t)i * px, s.image, sizeof(float) * px);
            memcpy(masks + (size_t)i * px, s.mask_union, sizeof(float) * px);
        }
        reclf_sample_free(&s);
        if (bad) {
            #pragma omp critical
            if (!failed++) first = e;
        }
    }
    if (failed) {
        *err = first;
        return -1;
    }
    return 0;
}

/* Position p of a fraction's training stream: entry perm[p % n] of the epoch p / n's seeded
 * permutation of the first n pool entries (recomputed when the epoch changes). */
typedef struct {
    long n, epoch;
    long *perm;
} epoch_order;

static long order_at(epoch_order *o, unsigned long long seed, int fraction, long p) {
    long epoch = p / o->n;
    if (epoch != o->epoch) {
        for (long i = 0; i < o->n; i++) o->perm[i] = i;
        rng_t r = rng_split(seed, STREAM_ORDER + ((unsigned long long)fraction << 40) + (unsigned long long)epoch);
        rng_shuffle(&r, o->perm, (size_t)o->n, sizeof(long));
        o->epoch = epoch;
    }
    return o->perm[p % o->n];
}

/* ---- the task ---------------------------------------------------------------------------------- */

int seg_task_run(const seg_task_opts *o, seg_task_result *r, reclf_err *err) {
    seg_model sm;
    reclf_dataset train, test;
    int rc = -1, have_model = 0, have_train = 0, have_test = 0;
    long *pool = NULL, *test_idx = NULL, *slot = NULL;
    float *enc = NULL, *test_images = NULL, *test_masks = NULL, *prob = NULL;
    epoch_order order = {0, -1, NULL};

    memset(r, 0, sizeof *r);
    if (!o->data || !*o->data) return reclf_fail(err, "seg: no data (expected 'synth' or a manifest path)");
    if (o->steps < 1 || o->batch < 1 || o->pool < 1 || o->limit_test < 0)
        return reclf_fail(err, "seg: steps (%ld), batch (%d) and pool (%ld) must be positive, limit_test (%d) >= 0",
                          o->steps, o->batch, o->pool, o->limit_test);
    if (seg_model_open(&sm, o->finetune, o->batch, err) != 0) return -1;
    have_model = 1;
    int S = sm.size;
    size_t px = (size_t)S * S;

    if (o->ckpt && *o->ckpt) {
        int n_loaded = 0;
        if (!(enc = malloc(sizeof(float) * (sm.g->n_param_elems ? sm.g->n_param_elems : 1)))) {
            reclf_fail(err, "seg: out of memory");
            goto done;
        }
        if (seg_model_load_encoder(&sm, o->ckpt, enc, &n_loaded, err) != 0) goto done;
        if (!o->quiet) printf("seg: image encoder from %s (%d tensors)\n", o->ckpt, n_loaded);
    } else if (!o->quiet) {
        printf("seg: no checkpoint: the image encoder keeps its random initialisation (seed %llu)\n", o->seed);
    }

    /* data: the pool of training masks (shuffled once: the fractions are nested prefixes) and the
     * test set, loaded once for the three evaluations */
    if (dataset_open(&train, o->data, SPLIT_TRAIN, S, o->seed, 0, err) != 0) goto done;
    have_train = 1;
    if (dataset_open(&test, o->data, SPLIT_TEST, S, o->seed, 0, err) != 0) goto done;
    have_test = 1;
    long n_pool, n_test;
    if (masked_indices(&train, o->pool, &pool, &n_pool, err) != 0) goto done;
    if (masked_indices(&test, o->limit_test, &test_idx, &n_test, err) != 0) goto done;
    if (n_pool < 1 || n_test < 1) {
        reclf_fail(err, "seg: %s has %s", o->data, n_pool < 1 ? "no training sample with a mask" : "no test sample with a mask");
        goto done;
    }
    rng_t pr = rng_split(o->seed, STREAM_POOL);
    rng_shuffle(&pr, pool, (size_t)n_pool, sizeof(long));
    test_images = malloc(sizeof(float) * px * (size_t)n_test);
    test_masks = malloc(sizeof(float) * px * (size_t)n_test);
    prob = malloc(sizeof(float) * px * (size_t)n_test);
    order.perm = malloc(sizeof(long) * (size_t)n_pool);
    slot = malloc(sizeof(long) * (size_t)o->batch);
    if (!test_images || !test_masks || !prob || !order.perm || !slot) {
        reclf_fail(err, "seg: out of memory for %ld test images of %dx%d", n_test, S, S);
        goto done;
    }
    if (load_pairs(&test, test_idx, n_test, test_images, test_masks, err) != 0) goto done;
    r->n_test = n_test;
    if (!o->quiet)
        printf("seg: %s encoder, %ld training masks in the pool, %ld test masks, %ld steps of batch %d per fraction\n",
               o->finetune ? "fine-tuned" : "frozen", n_pool, n_test, o->steps, o->batch);

    for (int k = 0; k < 3; k++) {
        long n_train = lround(FRACTIONS[k] * (double)n_pool);
        if (n_train < 1) n_train = 1;
        r->fraction[k] = FRACTIONS[k];
        r->n_train[k] = n_train;
        if (seg_model_init(&sm, o->seed, enc, err) != 0) goto done;
        order.n = n_train;
        order.epoch = -1;
        progress_t prog;
        long every = o->steps / 10 > 0 ? o->steps / 10 : 1;
        if (!o->quiet) progress_init(&prog, stdout, o->steps, 0, every);
        for (long t = 0; t < o->steps; t++) {
            for (int i = 0; i < o->batch; i++)
                slot[i] = pool[order_at(&order, o->seed, k, t * o->batch + i)];
            if (load_pairs(&train, slot, o->batch, sm.images, sm.masks, err) != 0) goto done;
            double loss, gnorm;
            if (seg_model_forward_backward(&sm, o->batch, 1, &loss, err) != 0) goto done;
            if (!isfinite(loss)) {
                reclf_fail(err, "seg: non-finite loss at update %ld of the %g%% run", t + 1, 100 * FRACTIONS[k]);
                goto done;
            }
            if (seg_model_update(&sm, t, o->steps, SEG_LR, SEG_CLIP, &gnorm, err) != 0) goto done;
            if (!o->quiet) {
                char extra[96];
                snprintf(extra, sizeof extra, "|g| %.2f  (seg %g%%: %ld masks)", gnorm, 100 * FRACTIONS[k], n_train);
                progress_update(&prog, t + 1, loss, extra);
            }
        }
        if (!o->quiet) progress_finish(&prog);
        if (seg_model_predict(&sm, test_images, n_test, prob, err) != 0) goto done;
        r->dice[k] = reclf_mean_dice(prob, test_masks, (size_t)n_test, px, 0.5f);
        if (!o->quiet)
            printf("seg %g%% (%ld masks): Dice %.4f on %ld test images\n", 100 * FRACTIONS[k], n_train, r->dice[k],
                   n_test);
    }
    rc = 0;
done:
    free(pool), free(test_idx), free(slot), free(order.perm);
    free(enc), free(test_images), free(test_masks), free(prob);
    if (have_train) dataset_close(&train);
    if (have_test) dataset_close(&test);
    if (have_model) seg_model_close(&sm);
    return rc;
}
