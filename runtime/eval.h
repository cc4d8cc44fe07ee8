/* Downstream evaluation (SPEC §10) of a trained checkpoint: zero-shot classification, linear
 * probe and cross-modal retrieval with binding accuracy. (Segmentation lives in seg_task.{c,h}.)
 *
 * A checkpoint of model M is evaluated through M's three forward-only graphs: "M.image"
 * (images -> vg [B,d], V [B,R,d]), "M.text" (tokens -> tg [T,d], W [T,K,d]) and "M.score"
 * ((tg, W, word_mask, vg, V) -> G [T,B], Lm [T,B], attention [T,B,K,R], beta [T,B,K,1]).
 * G holds the global logits cos/τg and Lm the local logits S/τl (SPEC §6); convirt has no Lm,
 * gloria and convirt have no beta. Score matrices of any size are computed block by block.
 *
 * Scoring rules (the exact definitions every number below follows):
 *   similarity s(t, i)  = ½ (G[t,i] + Lm[t,i])   ("combined", as GLoRIA); G[t,i] alone when the
 *                         model has no local term (convirt). The logits are used as they are
 *                         (G is cos/0.07, Lm is S/0.1), as the training loss sees them.
 *   zero-shot           for image i and class c: pos = mean of s over c's positive prompts, neg =
 *                         mean of s over c's "no X" prompts; score(i,c) = pos - neg. (A softmax over
 *                         the two means, as GLoRIA does, is sigma(pos - neg): monotone in the
 *                         difference, so the AUROC is the same.) Per-class and macro AUROC of
 *                         score against the labels. Balanced-set accuracy: argmax over c of pos.
 *   linear probe        frozen vg (the global image embedding, SPEC §1) as features; one logistic
 *                         regression per class (logreg.h) on the first 1%, 10%, 100% of a fixed
 *                         random permutation of the training pool (nested subsets, at least 2 rows);
 *                         macro AUROC on the test split.
 *   retrieval           image->report ranks each image's own report among the pool's reports, and
 *                         report->image the reverse; R@K from metrics.h (pessimistic ties),
 *                         P@K by exact label-vector match (RECLF_MATCH_EXACT), for K = 1, 5, 10; from
 *                         the global, local and combined scores.
 *   binding accuracy    over binding-case images: fraction with s(own report) > s(mirror report);
 *                         over images with a lateralised finding: s(own) > s(flip report). A tie
 *                         counts ½ (so an encoder that cannot tell the texts apart scores 0.5).
 * Nothing here prints: long phases report through an optional progress callback. */
#ifndef RECLF_EVAL_H
#define RECLF_EVAL_H
#include <stdint.h>

#include "checkpoint.h"
#include "common.h"
#include "dataset.h"
#include "graph_abi.h"
#include "model.h"
#include "sample.h"
#include "tokenizer.h"

/* progress of a long phase: done of total units; ctx is the caller's */
typedef void (*eval_progress_fn)(void *ctx, const char *phase, long done, long total);

/* ---- the model: three forward graphs with the checkpoint's parameters -------------------------- */
typedef struct {
    char name[256];                 /* model name from the checkpoint metadata ("reclf", ...) */
    long step;
    const reclf_graph *gi, *gt, *gs; /* <name>.image, <name>.text, <name>.score */
    float *pi, *pt, *ps;            /* their parameters */
    model_config cfg;               /* image side, L, vocab, d */
    reclf_vocab vocab;
    int K, R, d;                    /* word slots (L-1), regions, width */
    int out_G, out_Lm, out_attn, out_beta; /* output indices of the score graph (-1 absent) */
    void *arena;                    /* one arena, grown to the largest graph call */
    size_t arena_size;
    eval_progress_fn progress;      /* optional */
    void *progress_ctx;
} eval_model;

int eval_model_open(eval_model *m, const char *ckpt_path, reclf_err *err);
void eval_model_close(eval_model *m);
/* the model has a local term (Lm) / word importances (beta) */
int eval_model_has_local(const eval_model *m);

/* images [n, S*S] grey in [0,1] -> vg [n,d] and (nullable) V [n,R,d], batches of `batch` */
int eval_encode_images(eval_model *m, const float *images, long n, int batch, float *vg, float *V, reclf_err *err);
/* texts -> tg [n,d], W [n,K,d], word_mask [n,K] */
int eval_encode_texts(eval_model *m, const char *const *texts, long n, int batch, float *tg, float *W,
                      float *word_mask, reclf_err *err);
/* G [nT,nB] and (nullable; ignored without a local term) Lm [nT,nB] for every text x image pair,
 * by blocks of at most block x block pairs. */
int eval_score_matrix(eval_model *m, const float *tg, const float *W, const float *wmask, long nT, const float *vg,
                      const float *V, long nB, int block, float *G, float *Lm, const char *phase, reclf_err *err);
/* For one text and one image: G, Lm (0 without local), the attention [K,R] and beta [K] (beta
 * filled with 1/valid words over the word mask when the graph has none). */
int eval_score_pair(eval_model *m, const float *tg, const float *W, const float *wmask, const float *vg,
                    const float *V, float *G, float *Lm, float *attn, float *beta, reclf_err *err);

/* ---- pure scoring rules (the definitions above), testable on hand-made matrices --------------- */
/* combined similarity S = ½(G + Lm) (or G when Lm is NULL), n values */
void eval_combine(const float *G, const float *Lm, size_t n, float *S);
/* S [n_prompts, n_img]; prompt_class[p] in 0..n_classes-1, prompt_pos[p] 1 positive / 0 negative.
 * score [n_img, n_classes] = mean positive - mean negative; pos [n_img, n_classes] (nullable) =
 * mean positive. A class without positive (negative) prompts uses 0 for that mean. */
void eval_zeroshot_scores(const float *S, long n_prompts, long n_img, const int *prompt_class, const int *prompt_pos,
                          int n_classes, float *score, float *pos);
/* fraction of the n pairs with own[i] > other[i] (a tie counts ½) over those with valid[i] != 0
 * (valid nullable: all). *count (nullable) receives the number counted; none gives 0.5. */
double eval_binding_accuracy(const float *own, const float *other, const int *valid, long n, long *count);

/* ---- the tasks -------------------------------------------------------------------------------- */
typedef struct {
    const char *data;    /* "synth" or a manifest CSV */
    uint64_t seed;       /* SynthCXR seed (1, as training) */
    int batch;           /* images/texts per graph call, and the score block side */
    long limit;          /* > 0: at most this many test images (and limit/5 per class of the zs set) */
    long probe_pool;     /* training images for the probe (default 10000) */
    long retrieval_pool; /* first N test images for R@K/P@K (default 1000; 0 = all) */
} eval_opts;

void eval_defaults(eval_opts *o);

/* The test images with their features, loaded once and shared by the tasks. */
typedef struct {
    long n;
    float *vg, *V;                 /* [n,d], [n,R,d] */
    float *labels;                 /* [n,5] (metrics.h convention) */
    char **report, **mirror, **flip; /* flip[i] NULL when none */
    int *is_binding;
} eval_testset;

int eval_testset_load(eval_model *m, const eval_opts *o, eval_testset *ts, reclf_err *err);
void eval_testset_free(eval_testset *ts);

typedef struct {
    long n_test, n_balanced, n_prompts;
    double auroc[RECLF_N_FINDINGS];
    int defined[RECLF_N_FINDINGS];
    double macro_auroc, accuracy;
    int has_balanced;    /* 0 when no single-finding images were found (accuracy then 0) */
} eval_zeroshot_result;

#define EVAL_N_FRACTIONS 3
extern const double eval_probe_fractions[EVAL_N_FRACTIONS]; /* 0.01, 0.10, 1.00 */
typedef struct {
    long pool, n_test;
    long n_train[EVAL_N_FRACTIONS];
    double macro_auroc[EVAL_N_FRACTIONS];
    double auroc[EVAL_N_FRACTIONS][RECLF_N_FINDINGS];
} eval_probe_result;

enum { EVAL_GLOBAL = 0, EVAL_LOCAL = 1, EVAL_COMBINED = 2, EVAL_N_SCORES = 3 };
extern const char *const eval_score_names[EVAL_N_SCORES]; /* "global", "local", "combined" */
typedef struct {
    int available;            /* 0 for local (and combined = global) without a local term */
    double i2t_recall[3], t2i_recall[3];       /* K = 1, 5, 10 */
    double i2t_precision[3], t2i_precision[3];
    double mirror, flip;      /* binding accuracies */
} eval_retrieval_scores;
typedef struct {
    long pool, n_mirror, n_flip;
    eval_retrieval_scores s[EVAL_N_SCORES];
} eval_retrieval_result;

int eval_zeroshot(eval_model *m, const eval_opts *o, const eval_testset *ts, eval_zeroshot_result *r, reclf_err *err);
int eval_probe(eval_model *m, const eval_opts *o, const eval_testset *ts, eval_probe_result *r, reclf_err *err);
int eval_retrieval(eval_model *m, const eval_opts *o, const eval_testset *ts, eval_retrieval_result *r,
                   reclf_err *err);

#endif
