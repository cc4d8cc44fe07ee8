/* AdamW, the learning-rate schedule and gradient-norm clipping (SPEC §8, §8b), over the packed
 * parameter buffer of a graph (float).
 *
 * adamw_step follows torch.optim.AdamW (amsgrad = False, maximize = False) operation by operation,
 * for one element with gradient g at step t (t = 1 for the first update):
 *     p = p * (1 - lr * wd)                 only where the decay flag is set (decoupled decay,
 *                                           applied to the parameter before the Adam update)
 *     m = m + (1 - β1) * (g - m)            (torch: exp_avg.lerp_(grad, 1 - β1))
 *     v = β2 * v + (1 - β2) * g * g
 *     step_size = lr / (1 - β1^t)           (bias corrections in double, as Python floats)
 *     denom = sqrt(v) / sqrt(1 - β2^t) + ε
 *     p = p - step_size * m / denom
 * Elements whose decay flag is 0 (biases, norms, embeddings: SPEC §8b) skip the first line only. */
#ifndef RECLF_OPTIM_H
#define RECLF_OPTIM_H
#include <stddef.h>

#include "common.h"
#include "graph_abi.h"

typedef struct {
    double beta1, beta2, eps, weight_decay;
} adamw_cfg;

/* SPEC §8: β = (0.9, 0.999), ε = 1e-8, weight decay 0.01 */
#define ADAMW_DEFAULTS ((adamw_cfg){0.9, 0.999, 1e-8, 0.01})

/* One update of n elements. decay_mask: one byte per element (nonzero = decay), e.g. from
 * params_decay_mask; NULL means no decay anywhere. step >= 1 counts this update (the first
 * update is step 1, as torch's state['step'] after its increment). */
int adamw_step(float *params, const float *grads, float *m, float *v, const unsigned char *decay_mask, size_t n,
               long step, double lr, const adamw_cfg *cfg, reclf_err *err);

/* The same with each parameter tensor's own decay flag from the graph's table; elements of the
 * buffer that belong to no parameter are left alone. */
int adamw_step_graph(const reclf_graph *g, float *params, const float *grads, float *m, float *v, long step,
                     double lr, const adamw_cfg *cfg, reclf_err *err);

/* SPEC §8b warm-up length: max(round(0.05 · steps), min(100, steps)). round() is half away from
 * zero on the exact value steps / 20, computed in integers: (steps + 10) / 20. (Python's round()
 * rounds half to even and would give one step less when steps = 2010, 2050, 2090, ...) */
long lr_warmup_steps(long steps);

/* SPEC §8b learning rate for the update taken when t steps have already been taken
 * (t = 0 .. steps-1), with W = lr_warmup_steps(steps):
 *     t <  W:  lr · (t + 1) / W
 *     t >= W:  lr · ½ (1 + cos(π · (t + 1 - W) / (steps - W)))
 * Our reading of "cosine from lr to 0 at the last step": the warm-up reaches lr at its last
 * update t = W-1 (cosine phase 0, continuous with the warm-up), and the cosine reaches 0 at the
 * last update t = steps-1, so the last update has lr 0. When W = steps (runs of <= 100 steps)
 * there is no cosine phase and the last update uses the full lr. t outside [0, steps) gives 0. */
double lr_schedule(double lr, long t, long steps);

/* Global gradient-norm clipping like torch.nn.utils.clip_grad_norm_(max_norm, norm_type=2):
 * norm = sqrt(Σ g²) over all n elements (accumulated in double, in fixed blocks, so the result
 * does not depend on the number of OpenMP threads); coef = max_norm / (norm + 1e-6); when
 * coef < 1 (torch clamps coef to 1) every gradient is multiplied by coef. Returns the norm
 * before clipping. A non-finite norm (NaN/Inf gradients) leaves the gradients as they are and is
 * returned as is: the caller should skip that update. */
double clip_grad_norm(float *grads, size_t n, double max_norm);

/* sqrt(Σ g²) without changing anything (same blocked summation as clip_grad_norm) */
double grad_norm(const float *grads, size_t n);

#endif
