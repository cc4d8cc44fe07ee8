#include "optim.h"

#include <math.h>

#ifdef _OPENMP
#define OMP_PARALLEL_FOR _Pragma("omp parallel for schedule(static)")
#else
#define OMP_PARALLEL_FOR
#endif

#define OPTIM_PI 3.14159265358979323846

// the constants of one update, computed once in double like torch's Python-float scalars
typedef struct {
    float decay_factor; // 1 - lr * wd
    float one_minus_b1, b2, one_minus_b2;
    float step_size;    // lr / (1 - β1^t)
    float bc2_sqrt;     // sqrt(1 - β2^t)
    float eps;
} adamw_consts;

static int adamw_prepare(adamw_consts *c, long step, double lr, const adamw_cfg *cfg, reclf_err *err) {
    if (step < 1) return reclf_fail(err, "adamw: step %ld, expected >= 1 (the first update is step 1)", step);
    if (!(cfg->beta1 >= 0.0 && cfg->beta1 < 1.0 && cfg->beta2 >= 0.0 && cfg->beta2 < 1.0))
        return reclf_fail(err, "adamw: betas (%g, %g) outside [0, 1)", cfg->beta1, cfg->beta2);
    if (!isfinite(lr)) return reclf_fail(err, "adamw: learning rate %g is not finite", lr);
    double bc1 = 1.0 - pow(cfg->beta1, (double)step);
    double bc2 = 1.0 - pow(cfg->beta2, (double)step);
    c->decay_factor = (float)(1.0 - lr * cfg->weight_decay);
    c->one_minus_b1 = (float)(1.0 - cfg->beta1);
    c->b2 = (float)cfg->beta2;
    c->one_minus_b2 = (float)(1.0 - cfg->beta2);
    c->step_size = (float)(lr / bc1);
    c->bc2_sqrt = (float)sqrt(bc2);
    c->eps = (float)cfg->eps;
    return 0;
}

// one element, in torch's order of operations
static inline void adamw_elem(float *p, float g, float *m, float *v, int decay, const adamw_consts *k) {
    float pi = *p;
    if (decay) pi *= k->decay_factor;
    float mi = *m + k->one_minus_b1 * (g - *m);
    float vi = k->b2 * *v + k->one_minus_b2 * g * g;
    float denom = sqrtf(vi) / k->bc2_sqrt + k->eps;
    *p = pi - k->step_size * (mi / denom);
    *m = mi;
    *v = vi;
}

// elements [0, n) with one decay flag for all
static void adamw_range(float *p, const float *g, float *m, float *v, size_t n, int decay, const adamw_consts *c) {
    OMP_PARALLEL_FOR
    for (size_t i = 0; i < n; i++) adamw_elem(&p[i], g[i], &m[i], &v[i], decay, c);
}

int adamw_step(float *params, const float *grads, float *m, float *v, const unsigned char *decay_mask, size_t n,
               long step, double lr, const adamw_cfg *cfg, reclf_err *err) {
    adamw_consts c;
    if (adamw_prepare(&c, step, lr, cfg, err) != 0) return -1;
    if (!decay_mask) {
        adamw_range(params, grads, m, v, n, 0, &c);
        return 0;
    }
    OMP_PARALLEL_FOR
    for (size_t i = 0; i < n; i++) adamw_elem(&params[i], grads[i], &m[i], &v[i], decay_mask[i] != 0, &c);
    return 0;
}

int adamw_step_graph(const reclf_graph *g, float *params, const float *grads, float *m, float *v, long step,
                     double lr, const adamw_cfg *cfg, reclf_err *err) {
    adamw_consts c;
    if (adamw_prepare(&c, step, lr, cfg, err) != 0) return -1;
    for (int i = 0; i < g->n_params; i++) {
        const reclf_param_desc *d = &g->params[i];
        if (d->offset > g->n_param_elems || d->numel > g->n_param_elems - d->offset)
            return reclf_fail(err, "adamw: graph %s: parameter %s lies outside the buffer of %zu elements", g->name,
                              d->name, g->n_param_elems);
    }
    for (int i = 0; i < g->n_params; i++) {
        const reclf_param_desc *d = &g->params[i];
        size_t o = d->offset;
        adamw_range(params + o, grads + o, m + o, v + o, d->numel, d->decay != 0, &c);
    }
    return 0;
}

long lr_warmup_steps(long steps) {
    if (steps <= 0) return 0;
    long w5 = (steps + 10) / 20; // round(0.05 · steps), halves away from zero
    long cap = steps < 100 ? steps : 100;
    return w5 > cap ? w5 : cap;
}

double lr_schedule(double lr, long t, long steps) {
    if (steps <= 0 || t < 0 || t >= steps) return 0.0;
    long w = lr_warmup_steps(steps);
    if (t < w) return lr * (double)(t + 1) / (double)w;
    double progress = (double)(t + 1 - w) / (double)(steps - w); // in (0, 1], 1 at t = steps-1
    return lr * 0.5 * (1.0 + cos(OPTIM_PI * progress));
}

#define NORM_BLOCKS 256

double grad_norm(const float *grads, size_t n) {
    // fixed blocks, each summed in order, then the blocks in order: the same bits for any
    // number of threads
    double partial[NORM_BLOCKS];
    OMP_PARALLEL_FOR
    for (int b = 0; b < NORM_BLOCKS; b++) {
        size_t lo = n / NORM_BLOCKS * (size_t)b + (n % NORM_BLOCKS < (size_t)b ? n % NORM_BLOCKS : (size_t)b);
        size_t len = n / NORM_BLOCKS + ((size_t)b < n % NORM_BLOCKS ? 1 : 0);
        double s = 0.0;
        for (size_t i = lo; i < lo + len; i++) s += (double)grads[i] * (double)grads[i];
        partial[b] = s;
    }
    double total = 0.0;
    for (int b = 0; b < NORM_BLOCKS; b++) total += partial[b];
    return sqrt(total);
}

double clip_grad_norm(float *grads, size_t n, double max_norm) {
    double norm = grad_norm(grads, n);
    if (!isfinite(norm)) return norm;
    double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0) {
        // torch multiplies by the coefficient as a float tensor
        float cf = (float)coef;
        OMP_PARALLEL_FOR
        for (size_t i = 0; i < n; i++) grads[i] *= cf;
    }
    return norm;
}
