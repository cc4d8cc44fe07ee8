/* Linear probe: one-vs-rest L2-regularised logistic regression by Newton's method.
 * See logreg.h for the objective and the conventions. */
#include "logreg.h"

#include <cblas.h>
#include <math.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define STD_FLOOR 1e-6        /* features with a smaller std are constant: std := 1 */
#define ARMIJO_C 1e-4         /* sufficient-decrease constant of the line search */
#define MAX_HALVINGS 60       /* line-search step halvings before giving up */
#define DECREMENT_EPS 1e-15   /* relative Newton decrement below which we are at the optimum */

reclf_logreg_opts reclf_logreg_default_opts(void) {
    reclf_logreg_opts o = {.l2 = 1e-4, .tol = 1e-8, .max_iter = 100};
    return o;
}

static double sigmoid(double m) {
    if (m >= 0.0) return 1.0 / (1.0 + exp(-m));
    double e = exp(m);
    return e / (1.0 + e);
}

/* log(1 + e^m), without overflow */
static double softplus(double m) { return (m > 0.0 ? m : 0.0) + log1p(exp(-fabs(m))); }

/* Objective of logreg.h at margins m (n) and weights w (dim; the bias is not penalised).
 * u[i] = 1/m_used for used rows and 0 for ignored ones. Summed serially so that the result does
 * not depend on the thread count. */
static double objective(const double *margin, const double *y, const double *u, size_t n,
                        const double *w, size_t dim, double l2) {
    double f = 0.0;
    for (size_t i = 0; i < n; i++)
        if (u[i] > 0.0) f += u[i] * (softplus(margin[i]) - y[i] * margin[i]);
    double ww = 0.0;
    for (size_t d = 0; d < dim; d++) ww += w[d] * w[d];
    return f + 0.5 * l2 * ww;
}

/* Cholesky factorisation of the k x k matrix h + jitter on the diagonal into lower-triangular l
 * (row-major). Returns 0 on success, -1 if the matrix is not positive definite. */
static int cholesky(const double *h, size_t k, double jitter, double *l) {
    for (size_t i = 0; i < k; i++) {
        for (size_t j = 0; j <= i; j++) {
            double s = h[i * k + j] + (i == j ? jitter : 0.0);
            for (size_t t = 0; t < j; t++) s -= l[i * k + t] * l[j * k + t];
            if (i == j) {
                if (!(s > 0.0)) return -1;
                l[i * k + i] = sqrt(s);
            } else {
                l[i * k + j] = s / l[j * k + j];
            }
        }
        for (size_t j = i + 1; j < k; j++) l[i * k + j] = 0.0;
    }
    return 0;
}

/* Solves (l l^T) x = rhs in place. */
static void cholesky_solve(const double *l, size_t k, double *x) {
    for (size_t i = 0; i < k; i++) {
        double s = x[i];
        for (size_t t = 0; t < i; t++) s -= l[i * k + t] * x[t];
        x[i] = s / l[i * k + i];
    }
    for (size_t i = k; i-- > 0;) {
        double s = x[i];
        for (size_t t = i + 1; t < k; t++) s -= l[t * k + i] * x[t];
        x[i] = s / l[i * k + i];
    }
}

/* Scratch shared by the classes of one fit. */
typedef struct {
    size_t n, dim, k;        /* k = dim + 1: the last column of z is the constant 1 (bias) */
    double *z;               /* n x k standardised features */
    double *a;               /* n x k rows of z scaled by sqrt(hessian weight) */
    double *y, *u;           /* n: targets in {0,1}; row weights 1/m_used or 0 */
    double *margin, *trial;  /* n: z theta, and the line search's candidate */
    double *dmargin;         /* n: z direction */
    double *r;               /* n: u (p - y) */
    double *h, *l;           /* k x k: Hessian and its Cholesky factor */
    double *g, *dir, *step;  /* k */
} workspace;

static void workspace_free(workspace *ws) {
    free(ws->z); free(ws->a); free(ws->y); free(ws->u); free(ws->margin); free(ws->trial);
    free(ws->dmargin); free(ws->r); free(ws->h); free(ws->l); free(ws->g); free(ws->dir);
    free(ws->step);
    memset(ws, 0, sizeof *ws);
}

static int workspace_alloc(workspace *ws, size_t n, size_t dim) {
    memset(ws, 0, sizeof *ws);
    ws->n = n;
    ws->dim = dim;
    ws->k = dim + 1;
    size_t nk = (n ? n : 1) * ws->k, n1 = n ? n : 1, kk = ws->k * ws->k;
    ws->z = malloc(nk * sizeof(double));
    ws->a = malloc(nk * sizeof(double));
    ws->y = malloc(n1 * sizeof(double));
    ws->u = malloc(n1 * sizeof(double));
    ws->margin = malloc(n1 * sizeof(double));
    ws->trial = malloc(n1 * sizeof(double));
    ws->dmargin = malloc(n1 * sizeof(double));
    ws->r = malloc(n1 * sizeof(double));
    ws->h = malloc(kk * sizeof(double));
    ws->l = malloc(kk * sizeof(double));
    ws->g = malloc(ws->k * sizeof(double));
    ws->dir = malloc(ws->k * sizeof(double));
    ws->step = malloc(ws->k * sizeof(double));
    if (!ws->z || !ws->a || !ws->y || !ws->u || !ws->margin || !ws->trial || !ws->dmargin ||
        !ws->r || !ws->h || !ws->l || !ws->g || !ws->dir || !ws->step) {
        workspace_free(ws);
        return -1;
    }
    return 0;
}

/* Gradient of the objective at theta (margins in ws->margin) into ws->g; returns max |g|. */
static double gradient(workspace *ws, const double *theta, double l2) {
    size_t n = ws->n, k = ws->k;
    for (size_t i = 0; i < n; i++)
        ws->r[i] = ws->u[i] > 0.0 ? ws->u[i] * (sigmoid(ws->margin[i]) - ws->y[i]) : 0.0;
    for (size_t j = 0; j < k; j++) ws->g[j] = 0.0;
    if (n > 0)
        cblas_dgemv(CblasRowMajor, CblasTrans, (int)n, (int)k, 1.0, ws->z, (int)k, ws->r, 1, 0.0,
                    ws->g, 1);
    double gmax = 0.0;
    for (size_t j = 0; j < k; j++) {
        if (j < ws->dim) ws->g[j] += l2 * theta[j];
        if (fabs(ws->g[j]) > gmax) gmax = fabs(ws->g[j]);
    }
    return gmax;
}

/* Hessian at the current margins into ws->h (full symmetric), l2 on the weight diagonal. */
static void hessian(workspace *ws, double l2) {
    size_t n = ws->n, k = ws->k;
    const double *z = ws->z, *u = ws->u, *margin = ws->margin;
    double *a = ws->a;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        double p = sigmoid(margin[i]);
        double s = u[i] > 0.0 ? sqrt(u[i] * p * (1.0 - p)) : 0.0;
        for (size_t j = 0; j < k; j++) a[i * k + j] = s * z[i * k + j];
    }
    for (size_t j = 0; j < k * k; j++) ws->h[j] = 0.0;
    if (n > 0)
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)k, (int)n, 1.0, a, (int)k, 0.0,
                    ws->h, (int)k);
    for (size_t i = 0; i < k; i++) {
        for (size_t j = 0; j < i; j++) ws->h[i * k + j] = ws->h[j * k + i];
        if (i < ws->dim) ws->h[i * k + i] += l2;
    }
}

/* Newton direction -H^-1 g into ws->dir. Adds a growing jitter if H is numerically singular.
 * Returns -1 if no jitter helps (only with non-finite values). */
static int newton_direction(workspace *ws) {
    size_t k = ws->k;
    double diag_max = 0.0;
    for (size_t i = 0; i < k; i++)
        if (ws->h[i * k + i] > diag_max) diag_max = ws->h[i * k + i];
    double jitter = 0.0;
    for (int attempt = 0; attempt < 12; attempt++) {
        if (cholesky(ws->h, k, jitter, ws->l) == 0) {
            for (size_t j = 0; j < k; j++) ws->dir[j] = -ws->g[j];
            cholesky_solve(ws->l, k, ws->dir);
            return 0;
        }
        jitter = jitter == 0.0 ? 1e-12 * (diag_max > 0.0 ? diag_max : 1.0) : jitter * 100.0;
    }
    return -1;
}

/* Fits one class; theta (k) receives [w; b]. */
static int fit_class(workspace *ws, const float *labels, size_t label_stride,
                     const reclf_logreg_opts *opts, double *theta, int *status, int *iters,
                     size_t *n_used, double *loss, double *grad_norm, size_t c, reclf_err *err) {
    size_t n = ws->n, k = ws->k, dim = ws->dim;
    size_t n_pos = 0, n_neg = 0;
    for (size_t i = 0; i < n; i++) {
        float label = labels[i * label_stride];
        ws->u[i] = label >= 0.0f ? 1.0 : 0.0; /* < 0 and NaN ignored; scaled to 1/m below */
        ws->y[i] = label >= 0.5f ? 1.0 : 0.0;
        if (label >= 0.5f) n_pos++;
        else if (label >= 0.0f) n_neg++;
    }
    size_t m = n_pos + n_neg;
    for (size_t i = 0; i < n; i++) ws->u[i] /= (double)(m ? m : 1);
    *n_used = m;
    *iters = 0;
    for (size_t j = 0; j < k; j++) theta[j] = 0.0;
    theta[dim] = log(((double)n_pos + 0.5) / ((double)n_neg + 0.5));

    if (n > 0)
        cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)n, (int)k, 1.0, ws->z, (int)k, theta, 1,
                    0.0, ws->margin, 1);
    double f = objective(ws->margin, ws->y, ws->u, n, theta, dim, opts->l2);
    if (n_pos == 0 || n_neg == 0) {
        *status = RECLF_LOGREG_ONE_CLASS;
        *loss = f;
        *grad_norm = m ? gradient(ws, theta, opts->l2) : 0.0;
        return 0;
    }

    for (;;) {
        double gmax = gradient(ws, theta, opts->l2);
        *grad_norm = gmax;
        *loss = f;
        if (gmax <= opts->tol) {
            *status = RECLF_LOGREG_CONVERGED;
            break;
        }
        if (*iters >= opts->max_iter) {
            *status = RECLF_LOGREG_MAX_ITER;
            break;
        }
        hessian(ws, opts->l2);
        if (newton_direction(ws) != 0)
            return reclf_fail(err, "logreg: class %zu: the Hessian is not positive definite at "
                                   "iteration %d (non-finite features or weights?)", c, *iters);
        double decrement = 0.0; /* -g.dir = g^T H^-1 g >= 0 */
        for (size_t j = 0; j < k; j++) decrement -= ws->g[j] * ws->dir[j];
        if (!(decrement > DECREMENT_EPS * (1.0 + fabs(f)))) {
            *status = RECLF_LOGREG_CONVERGED; /* at the optimum to machine precision */
            break;
        }

        cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)n, (int)k, 1.0, ws->z, (int)k, ws->dir, 1,
                    0.0, ws->dmargin, 1);
        double t = 1.0, f_new = f;
        int accepted = 0;
        for (int h = 0; h < MAX_HALVINGS; h++, t *= 0.5) {
            for (size_t j = 0; j < k; j++) ws->step[j] = theta[j] + t * ws->dir[j];
            for (size_t i = 0; i < n; i++) ws->trial[i] = ws->margin[i] + t * ws->dmargin[i];
            f_new = objective(ws->trial, ws->y, ws->u, n, ws->step, dim, opts->l2);
            if (f_new <= f - ARMIJO_C * t * decrement) {
                accepted = 1;
                break;
            }
        }
        if (!accepted) {
            *status = RECLF_LOGREG_CONVERGED; /* no decrease possible in double precision */
            break;
        }
        memcpy(theta, ws->step, k * sizeof(double));
        double *swap = ws->margin;
        ws->margin = ws->trial;
        ws->trial = swap;
        f = f_new;
        (*iters)++;
    }
    return 0;
}

void reclf_logreg_free(reclf_logreg *model) {
    if (!model) return;
    free(model->mean); free(model->std); free(model->w); free(model->b);
    free(model->status); free(model->iters); free(model->n_used); free(model->loss);
    free(model->grad_norm);
    memset(model, 0, sizeof *model);
}

int reclf_logreg_fit(reclf_logreg *model, const float *x, size_t n, size_t dim,
                     const float *labels, size_t n_classes, const reclf_logreg_opts *opts_in,
                     reclf_err *err) {
    if (!model) return reclf_fail(err, "logreg: model is NULL");
    memset(model, 0, sizeof *model);
    reclf_logreg_opts opts = opts_in ? *opts_in : reclf_logreg_default_opts();
    if (dim == 0 || n_classes == 0)
        return reclf_fail(err, "logreg: dim %zu and n_classes %zu must be positive", dim, n_classes);
    if ((n > 0 && (!x || !labels)))
        return reclf_fail(err, "logreg: features or labels are NULL for %zu rows", n);
    if (!(opts.l2 >= 0.0) || !isfinite(opts.l2) || !(opts.tol >= 0.0) || opts.max_iter < 0)
        return reclf_fail(err, "logreg: bad options l2=%g tol=%g max_iter=%d (expected l2 >= 0, "
                               "tol >= 0, max_iter >= 0)", opts.l2, opts.tol, opts.max_iter);
    if (n > (size_t)INT_MAX || dim >= (size_t)INT_MAX)
        return reclf_fail(err, "logreg: %zu rows x %zu features: BLAS takes at most %d of each",
                          n, dim, INT_MAX);

    model->dim = dim;
    model->n_classes = n_classes;
    model->mean = malloc(dim * sizeof(float));
    model->std = malloc(dim * sizeof(float));
    model->w = malloc(n_classes * dim * sizeof(double));
    model->b = malloc(n_classes * sizeof(double));
    model->status = malloc(n_classes * sizeof(int));
    model->iters = malloc(n_classes * sizeof(int));
    model->n_used = malloc(n_classes * sizeof(size_t));
    model->loss = malloc(n_classes * sizeof(double));
    model->grad_norm = malloc(n_classes * sizeof(double));
    workspace ws;
    double *theta = malloc((dim + 1) * sizeof(double));
    if (!model->mean || !model->std || !model->w || !model->b || !model->status ||
        !model->iters || !model->n_used || !model->loss || !model->grad_norm || !theta ||
        workspace_alloc(&ws, n, dim) != 0) {
        free(theta);
        reclf_logreg_free(model);
        return reclf_fail(err, "logreg: out of memory for %zu rows x %zu features", n, dim);
    }

    /* Standardisation from all training rows, in double, two passes in row order (the
     * workspace's k-vectors g and dir serve as the per-feature sums). */
    size_t k = dim + 1;
    double *sum = ws.g, *ss = ws.dir;
    for (size_t d = 0; d < dim; d++) sum[d] = ss[d] = 0.0;
    for (size_t i = 0; i < n; i++)
        for (size_t d = 0; d < dim; d++) {
            double v = x[i * dim + d];
            if (!isfinite(v)) {
                free(theta);
                workspace_free(&ws);
                reclf_logreg_free(model);
                return reclf_fail(err, "logreg: feature [row %zu][%zu] is not finite (%g)", i, d, v);
            }
            sum[d] += v;
        }
    for (size_t d = 0; d < dim; d++) sum[d] = n ? sum[d] / (double)n : 0.0; /* now the mean */
    for (size_t i = 0; i < n; i++)
        for (size_t d = 0; d < dim; d++) {
            double dv = (double)x[i * dim + d] - sum[d];
            ss[d] += dv * dv;
        }
    for (size_t d = 0; d < dim; d++) {
        double sd = n ? sqrt(ss[d] / (double)n) : 0.0;
        model->mean[d] = (float)sum[d];
        model->std[d] = sd < STD_FLOOR ? 1.0f : (float)sd;
    }
    /* z uses the float mean/std stored in the model, so that predict sees the same features. */
    for (size_t i = 0; i < n; i++) {
        for (size_t d = 0; d < dim; d++)
            ws.z[i * k + d] = ((double)x[i * dim + d] - model->mean[d]) / model->std[d];
        ws.z[i * k + dim] = 1.0;
    }

    for (size_t c = 0; c < n_classes; c++) {
        if (fit_class(&ws, labels + c, n_classes, &opts, theta, &model->status[c],
                      &model->iters[c], &model->n_used[c], &model->loss[c],
                      &model->grad_norm[c], c, err) != 0) {
            free(theta);
            workspace_free(&ws);
            reclf_logreg_free(model);
            return -1;
        }
        memcpy(model->w + c * dim, theta, dim * sizeof(double));
        model->b[c] = theta[dim];
    }
    free(theta);
    workspace_free(&ws);
    return 0;
}

void reclf_logreg_predict(const reclf_logreg *model, const float *x, size_t n, float *probs) {
    size_t dim = model->dim, nc = model->n_classes;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        const float *row = x + i * dim;
        for (size_t c = 0; c < nc; c++) {
            const double *w = model->w + c * dim;
            double m = model->b[c];
            for (size_t d = 0; d < dim; d++)
                m += w[d] * (((double)row[d] - model->mean[d]) / model->std[d]);
            probs[i * nc + c] = (float)sigmoid(m);
        }
    }
}

void reclf_logreg_raw_weights(const reclf_logreg *model, double *w_raw, double *b_raw) {
    size_t dim = model->dim;
    for (size_t c = 0; c < model->n_classes; c++) {
        double b = model->b[c];
        for (size_t d = 0; d < dim; d++) {
            double w = model->w[c * dim + d] / model->std[d];
            w_raw[c * dim + d] = w;
            b -= w * model->mean[d];
        }
        b_raw[c] = b;
    }
}
