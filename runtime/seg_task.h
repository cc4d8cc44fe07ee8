/* SPEC §10 segmentation: a U-Net decoder (graphs/seg.lua) trained on the image encoder's feature
 * maps F0..F3 with 1%, 10% and 100% of a pool of training masks, scored by Dice on the test split.
 *
 * Protocol of seg_task_run, for each fraction f of the pool:
 *   1. every parameter of the training graph is initialised with params_init(seed), then the
 *      encoder's image.* parameters are overwritten by the checkpoint's (loaded by name, so any
 *      RECLF variant's checkpoint works; the decoder seg.* always starts fresh). Without a
 *      checkpoint the encoder stays at its random initialisation (a baseline, and the tests).
 *   2. `steps` AdamW updates (lr 1e-3, SPEC §8b warm-up + cosine, gradient-norm clip 1.0, weight
 *      decay 0.01 only on parameters flagged for it) on batches of `batch` (image, union mask)
 *      pairs drawn from the first n_train = max(1, round(f · pool)) entries of a seeded shuffle of
 *      the pool (so the 1% set lies inside the 10% set), walked in a fresh seeded permutation each
 *      epoch. Frozen mode (default) trains graph "seg", whose encoder outputs are detached, and
 *      updates no image.* parameter; finetune trains "seg.finetune" and updates every parameter.
 *   3. the probability map of "seg.predict" on every test image, thresholded at 0.5, is scored
 *      against the union mask with reclf_dice (metrics.h: an empty prediction on an empty mask
 *      counts 1, an empty prediction of a non-empty mask or the reverse 0); the result is the mean
 *      over test images.
 * Pool: SynthCXR training indices 0..pool-1; for a manifest, the first `pool` training rows that
 * have a mask (rows without one are skipped). Test set: the whole test split (or its first
 * limit_test samples); for a manifest, only test rows with a mask. SynthCXR data is generated
 * with `seed`, the same seed `bin/reclf train` uses for its data, so a checkpoint trained with
 * seed s is evaluated on the test split of s.
 * The run is deterministic for a seed (and a fixed number of threads).
 *
 * The graphs are looked up by name (model_find): "seg" / "seg.finetune" and "seg.predict", which
 * `make generate` compiles from graphs/seg.lua. */
#ifndef RECLF_SEG_TASK_H
#define RECLF_SEG_TASK_H
#include <stddef.h>

#include "common.h"
#include "graph_abi.h"

typedef struct {
    const char *ckpt;         /* RECLF checkpoint whose image.* encoder is used; NULL or "": random encoder */
    const char *data;         /* "synth" or a manifest CSV */
    int finetune;             /* 1: gradients through the encoder too (graph seg.finetune) */
    long steps;               /* updates per fraction (default 300) */
    int batch;                /* images per update (default 16) */
    long pool;                /* training masks available (synth train indices 0..pool-1), default 10000 */
    unsigned long long seed;  /* initialisation, data order and SynthCXR data (default 1) */
    int limit_test;           /* 0 = whole test split */
    int quiet;                /* 1: print nothing */
} seg_task_opts;

typedef struct {
    double dice[3];      /* 1%, 10%, 100% of the pool */
    double fraction[3];
    long n_train[3];
    long n_test;
} seg_task_result;

void seg_task_defaults(seg_task_opts *o);
/* Runs the three trainings and evaluations; 0 on success, -1 with a message in err. Progress goes
 * to stdout unless o->quiet. */
int seg_task_run(const seg_task_opts *o, seg_task_result *r, reclf_err *err);

/* ---- the pieces seg_task_run is made of (used by tests/c/test_seg.c) -------------------------- */

/* The decoder model: a training graph with its parameters and AdamW state, and the prediction
 * graph. images / masks hold the batch that seg_model_forward_backward reads. */
typedef struct {
    const reclf_graph *g;       /* "seg" (frozen) or "seg.finetune" */
    const reclf_graph *gp;      /* "seg.predict" */
    int frozen;
    int size;                   /* S: images and masks are S x S */
    int batch;                  /* B of images / masks */
    float *params, *grads, *m, *v;   /* g->n_param_elems each */
    unsigned char *decay;       /* per element of params: AdamW weight decay applies */
    unsigned char *trainable;   /* per parameter of g: updated by seg_model_update */
    float *pparams;             /* gp->n_param_elems: params copied by name for prediction */
    int *pmap;                  /* for each parameter of gp, its index in g */
    void *arena, *parena;
    size_t arena_size, parena_size;
    int in_images, in_mask, pin_images, pout_prob;
    float *images, *masks;      /* [batch, 1, S, S] each */
} seg_model;

/* Finds the graphs and allocates everything for batches of `batch`. */
int seg_model_open(seg_model *sm, int finetune, int batch, reclf_err *err);
/* params_init(seed) for every parameter, zero AdamW moments; then, when encoder is non-NULL (a
 * buffer laid out like sm->params), copies its image.* parameters over the fresh ones. */
int seg_model_init(seg_model *sm, unsigned long long seed, const float *encoder, reclf_err *err);
/* Loads the image.* parameters of a checkpoint by name into enc (sm->g's layout, n_param_elems
 * floats); every image.* parameter of the graph must be in the file. n_loaded: how many. */
int seg_model_load_encoder(const seg_model *sm, const char *ckpt, float *enc, int *n_loaded, reclf_err *err);
/* Forward on the first n (<= batch) images/masks; with backward, sm->grads receives d loss. */
int seg_model_forward_backward(seg_model *sm, int n, int backward, double *loss, reclf_err *err);
/* One AdamW update (update number t + 1 of `steps`, SPEC schedule from lr, clip) of the
 * trainable parameters from sm->grads; gnorm (nullable) receives the norm before clipping. */
int seg_model_update(seg_model *sm, long t, long steps, double lr, double clip, double *gnorm, reclf_err *err);
/* Probability maps [n, 1, S, S] of n images [n, 1, S, S] (any n, run in chunks of `batch`). */
int seg_model_predict(seg_model *sm, const float *images, long n, float *prob, reclf_err *err);
void seg_model_close(seg_model *sm);

#endif
