#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "optim.h"
#include "params.h"

#define NEAR(a, b, tol) cr_assert(fabs((double)(a) - (double)(b)) <= (tol), "%s = %.9g, expected %.9g", #a, (double)(a), (double)(b))

// lr 0.1 and weight decay 0.5 make the decoupled decay large enough to see
static const adamw_cfg CFG = {0.9, 0.999, 1e-8, 0.5};

Test(optim, adamw_first_step_by_hand) {
    // element 0: decay, p 1, g 0.5;  element 1: no decay, same;  element 2: decay, p -2, g -0.25
    float p[3] = {1.0f, 1.0f, -2.0f}, g[3] = {0.5f, 0.5f, -0.25f}, m[3] = {0}, v[3] = {0};
    unsigned char mask[3] = {1, 0, 1};
    reclf_err err;
    cr_assert_eq(adamw_step(p, g, m, v, mask, 3, 1, 0.1, &CFG, &err), 0, "%s", err.msg);
    // step 1: bc1 = 1 - 0.9 = 0.1, so step_size = lr / bc1 = 0.1 / 0.1 = 1;
    //         bc2 = 1 - 0.999 = 0.001, sqrt(bc2) = 0.0316227766
    // element 0: decay first: p = 1 * (1 - 0.1 * 0.5) = 0.95
    //   m = 0 + (1 - 0.9) * (0.5 - 0) = 0.05;  v = 0.999 * 0 + 0.001 * 0.5² = 0.00025
    //   denom = sqrt(0.00025) / sqrt(0.001) + 1e-8 = 0.0158113883 / 0.0316227766 + 1e-8 = 0.5 + 1e-8
    //   p = 0.95 - 1 * 0.05 / 0.50000001 = 0.95 - 0.099999998 = 0.850000002
    NEAR(m[0], 0.05, 1e-9);
    NEAR(v[0], 0.00025, 1e-10);
    NEAR(p[0], 0.850000002, 1e-7);
    // element 1: no decay: p = 1 - 0.1 = 0.9 (same m, v)
    NEAR(p[1], 0.9, 1e-7);
    NEAR(m[1], 0.05, 1e-9);
    // element 2: p = -2 * 0.95 = -1.9;  m = 0.1 * -0.25 = -0.025;  v = 0.001 * 0.0625 = 6.25e-5
    //   denom = 0.0079056942 / 0.0316227766 + 1e-8 = 0.25 + 1e-8;  p = -1.9 - (-0.025 / 0.25) = -1.8
    NEAR(m[2], -0.025, 1e-9);
    NEAR(v[2], 6.25e-5, 1e-11);
    NEAR(p[2], -1.8, 1e-7);
}

Test(optim, adamw_second_step_bias_correction) {
    // no decay, step 2, moments already non-zero: p 0.5, g 0.2, m 0.1, v 0.01
    float p = 0.5f, g = 0.2f, m = 0.1f, v = 0.01f;
    unsigned char mask = 0;
    cr_assert_eq(adamw_step(&p, &g, &m, &v, &mask, 1, 2, 0.1, &CFG, NULL), 0);
    // m = 0.1 + 0.1 * (0.2 - 0.1) = 0.11
    // v = 0.999 * 0.01 + 0.001 * 0.04 = 0.00999 + 0.00004 = 0.01003
    // bc1 = 1 - 0.9² = 0.19, step_size = 0.1 / 0.19 = 0.5263157895
    // bc2 = 1 - 0.999² = 0.001999, sqrt = 0.0447101778
    // denom = sqrt(0.01003) / 0.0447101778 + 1e-8 = 0.1001498877 / 0.0447101778 = 2.2399796426
    // p = 0.5 - 0.5263157895 * 0.11 / 2.2399796426 = 0.5 - 0.0258460996 = 0.4741539004
    NEAR(m, 0.11, 1e-8);
    NEAR(v, 0.01003, 1e-9);
    NEAR(p, 0.4741539004, 2e-7);
}

Test(optim, adamw_graph_uses_per_tensor_flags) {
    // two tensors: "w" (2 elements, decay) then "b" (1 element, no decay), plus one spare element
    static const reclf_param_desc P[] = {
        {"w", 1, {2}, 0, 2, RECLF_INIT_UNIFORM, 0.5, 1, "test"},
        {"b", 1, {1}, 2, 1, RECLF_INIT_ZEROS, 0, 0, "test"},
    };
    reclf_graph gr = {0};
    gr.name = "tiny";
    gr.n_params = 2;
    gr.params = P;
    gr.n_param_elems = 4;
    float p1[4] = {1, -2, 1, 7}, g[4] = {0.5f, -0.25f, 0.5f, 3}, m1[4] = {0}, v1[4] = {0};
    float p2[4] = {1, -2, 1, 7}, m2[4] = {0}, v2[4] = {0};
    unsigned char mask[4];
    reclf_err err;
    cr_assert_eq(params_decay_mask(&gr, mask, &err), 0, "%s", err.msg);
    cr_assert(mask[0] == 1 && mask[1] == 1 && mask[2] == 0 && mask[3] == 0);
    cr_assert_eq(adamw_step_graph(&gr, p1, g, m1, v1, 1, 0.1, &CFG, &err), 0, "%s", err.msg);
    cr_assert_eq(adamw_step(p2, g, m2, v2, mask, 3, 1, 0.1, &CFG, &err), 0, "%s", err.msg);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(p1[i], p2[i]);
        cr_assert_eq(m1[i], m2[i]);
        cr_assert_eq(v1[i], v2[i]);
    }
    NEAR(p1[0], 0.850000002, 1e-7); // decayed, as in the first test
    NEAR(p1[1], -1.8, 1e-7);
    NEAR(p1[2], 0.9, 1e-7); // not decayed
    cr_assert_eq(p1[3], 7.0f); // no parameter covers it: untouched
    cr_assert_eq(m1[3], 0.0f);
}

Test(optim, adamw_refuses_bad_step) {
    float p = 0, g = 0, m = 0, v = 0;
    reclf_err err;
    cr_assert_neq(adamw_step(&p, &g, &m, &v, NULL, 1, 0, 0.1, &CFG, &err), 0);
    cr_assert(strstr(err.msg, "step 0") != NULL, "%s", err.msg);
}

Test(optim, warmup_length) {
    // warm = max(round(0.05 steps), min(100, steps))
    cr_assert_eq(lr_warmup_steps(10), 10);     // max(round(0.5) = 1, 10)
    cr_assert_eq(lr_warmup_steps(30), 30);     // short run: warms up for its whole length
    cr_assert_eq(lr_warmup_steps(1000), 100);  // max(50, 100)
    cr_assert_eq(lr_warmup_steps(2000), 100);  // max(100, 100)
    cr_assert_eq(lr_warmup_steps(2010), 101);  // round(100.5) = 101, half away from zero
    cr_assert_eq(lr_warmup_steps(4000), 200);
    cr_assert_eq(lr_warmup_steps(0), 0);
}

Test(optim, schedule_short_run) {
    // steps = 10: warm = 10, the whole run is warm-up: lr (t + 1) / 10, full lr at the last step
    double lr = 1e-3;
    NEAR(lr_schedule(lr, 0, 10), 1e-4, 1e-15);
    NEAR(lr_schedule(lr, 4, 10), 5e-4, 1e-15);
    NEAR(lr_schedule(lr, 9, 10), 1e-3, 1e-15);
    cr_assert_eq(lr_schedule(lr, 10, 10), 0.0); // past the end
    cr_assert_eq(lr_schedule(lr, -1, 10), 0.0);
}

Test(optim, schedule_long_run) {
    // steps = 1000: warm = 100; cosine over t = 100..999 with phase (t + 1 - 100) / 900
    double lr = 1e-3;
    NEAR(lr_schedule(lr, 0, 1000), 1e-5, 1e-15);  // 1e-3 * 1 / 100
    NEAR(lr_schedule(lr, 49, 1000), 5e-4, 1e-15); // 1e-3 * 50 / 100
    NEAR(lr_schedule(lr, 99, 1000), 1e-3, 1e-15); // end of warm-up: the peak
    // t = 100: phase 1/900: 1e-3 * ½ (1 + cos(π / 900)) = 1e-3 * 0.99999695383
    NEAR(lr_schedule(lr, 100, 1000), 0.99999695383e-3, 1e-14);
    // t = 549: phase 450/900 = ½: 1e-3 * ½ (1 + cos(π/2)) = 5e-4
    NEAR(lr_schedule(lr, 549, 1000), 5e-4, 1e-15);
    // t = 774: phase 675/900 = ¾: 1e-3 * ½ (1 + cos(3π/4)) = 1e-3 * ½ (1 - 0.70710678) = 1.4644661e-4
    NEAR(lr_schedule(lr, 774, 1000), 1.4644660940672627e-4, 1e-15);
    // the last step, t = 999: phase 1 -> 0
    NEAR(lr_schedule(lr, 999, 1000), 0.0, 1e-18);
    // monotone after the peak
    for (long t = 100; t < 999; t++) cr_assert(lr_schedule(lr, t + 1, 1000) <= lr_schedule(lr, t, 1000));
}

Test(optim, clip_scales_when_above) {
    float g[2] = {3, 4};
    double norm = clip_grad_norm(g, 2, 1.0);
    NEAR(norm, 5.0, 1e-12);
    // coef = 1 / (5 + 1e-6) = 0.19999996: g = (0.59999988, 0.79999984)
    NEAR(g[0], 3.0 / (5.0 + 1e-6), 1e-7);
    NEAR(g[1], 4.0 / (5.0 + 1e-6), 1e-7);
    NEAR(grad_norm(g, 2), 1.0, 1e-6);
}

Test(optim, clip_leaves_small_gradients) {
    float g[2] = {0.3f, 0.4f};
    double norm = clip_grad_norm(g, 2, 1.0);
    NEAR(norm, 0.5, 1e-7);
    cr_assert_eq(g[0], 0.3f);
    cr_assert_eq(g[1], 0.4f);
}

Test(optim, clip_large_and_nonfinite) {
    // more elements than summation blocks, and not a multiple of them
    size_t n = 1001;
    float *g = malloc(n * sizeof *g);
    for (size_t i = 0; i < n; i++) g[i] = 2.0f;
    double norm = clip_grad_norm(g, n, 4.0);
    NEAR(norm, 2.0 * sqrt(1001.0), 1e-9);
    NEAR(grad_norm(g, n), 4.0, 1e-5);
    g[17] = NAN;
    float before = g[0];
    double bad = clip_grad_norm(g, n, 1.0);
    cr_assert(isnan(bad));
    cr_assert_eq(g[0], before); // left alone: the caller skips the update
    free(g);
    float none = 0;
    cr_assert_eq(clip_grad_norm(&none, 0, 1.0), 0.0);
}
