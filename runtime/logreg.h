/* Linear probe (SPEC §10, supervised classification): one binary logistic regression per class
 * (one-vs-rest) on frozen features.
 *
 * Fitting, for every class c separately:
 *   1. Features are standardised with the mean and the population standard deviation of every
 *      feature over all n training rows: z = (x - mean) / std. A feature whose std is below 1e-6
 *      (constant) gets std = 1, so it becomes 0 and carries no weight.
 *   2. Rows whose label for c is < 0 are ignored; label >= 0.5 is positive, otherwise negative
 *      (the convention of metrics.h).
 *   3. The objective, over the m used rows, with y in {0, 1} and p = sigmoid(w.z + b):
 *          f(w, b) = (1/m) sum_i [ -y_i log p_i - (1 - y_i) log(1 - p_i) ] + (l2 / 2) |w|^2
 *      The bias is not penalised. Default l2 = 1e-4 (per-row mean loss, so the penalty does not
 *      change with the size of the training set's fraction; with standardised features it
 *      keeps separable data finite without visibly biasing the fit).
 *   4. It is minimised by Newton's method in double precision (Hessian by cblas_dsyrk, Cholesky
 *      solve, backtracking Armijo line search), from w = 0 and b = the smoothed log-odds of the
 *      positives, until max |grad| <= tol, the Newton decrement is negligible, or max_iter
 *      iterations. The method is deterministic: the same input, options and thread count give the
 *      same bits.
 *   A class whose used rows are all positive or all negative (or that has none) cannot be fitted:
 *   it gets w = 0, b = log((P + 0.5) / (N + 0.5)), status RECLF_LOGREG_ONE_CLASS, and predicts
 *   the smoothed frequency (P + 0.5) / (P + N + 1) for every row. */
#ifndef RECLF_LOGREG_H
#define RECLF_LOGREG_H
#include <stddef.h>
#include "common.h"

typedef struct {
    double l2;    /* L2 penalty on the weights (not the bias); default 1e-4 */
    double tol;   /* stop when max |gradient| <= tol; default 1e-8 */
    int max_iter; /* Newton iterations per class; default 100 */
} reclf_logreg_opts;

reclf_logreg_opts reclf_logreg_default_opts(void);

enum {
    RECLF_LOGREG_CONVERGED = 0, /* max |gradient| <= tol, or no further decrease possible */
    RECLF_LOGREG_MAX_ITER = 1,  /* stopped by max_iter: usable, but not at the optimum */
    RECLF_LOGREG_ONE_CLASS = 2, /* no positives or no negatives among the used rows */
};

typedef struct {
    size_t dim, n_classes;
    float *mean, *std; /* dim: the standardisation, from the training features */
    double *w;         /* n_classes x dim, row-major: weights on the standardised features */
    double *b;         /* n_classes: biases */
    /* per-class report of the fit, n_classes entries each */
    int *status;        /* RECLF_LOGREG_* */
    int *iters;         /* Newton iterations taken */
    size_t *n_used;     /* rows with a label >= 0 */
    double *loss;       /* final objective f */
    double *grad_norm;  /* final max |gradient| */
} reclf_logreg;

/* Fits the probe on x (n x dim, row-major) and labels (n x n_classes, row-major; < 0 ignored).
 * opts may be NULL for the defaults. On success the model owns its arrays (free them with
 * reclf_logreg_free); on failure the model is left empty. Needs about 2 n (dim + 1) doubles of
 * scratch memory. */
int reclf_logreg_fit(reclf_logreg *model, const float *x, size_t n, size_t dim,
                     const float *labels, size_t n_classes, const reclf_logreg_opts *opts,
                     reclf_err *err);

/* Probabilities p[i * n_classes + c] = sigmoid(w_c . (x_i - mean) / std + b_c) for n rows of x
 * (n x dim, the model's dim). */
void reclf_logreg_predict(const reclf_logreg *model, const float *x, size_t n, float *probs);

/* The same probe expressed on the raw features: p = sigmoid(w_raw . x + b_raw), with
 * w_raw[c][d] = w[c][d] / std[d] and b_raw[c] = b[c] - sum_d w_raw[c][d] mean[d]. w_raw is
 * n_classes x dim, b_raw n_classes. */
void reclf_logreg_raw_weights(const reclf_logreg *model, double *w_raw, double *b_raw);

void reclf_logreg_free(reclf_logreg *model);

#endif
