/* runtime/kernel_math.h: the vectorisable exp that float kernels use instead of libm's expf, and
 * GELU on top of it, against double-precision references. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>

#include "graph_abi.h"
#include "kernel_math.h"

/* the distance from got to the exact value e, in units of the float spacing at e */
static double ulps(float got, double e) {
    float ef = (float)e;
    double spacing = (double)nextafterf(ef, INFINITY) - (double)ef;
    return fabs((double)got - e) / spacing;
}

Test(kernel_math, exp_within_one_ulp_over_the_normal_range) {
    double worst = 0;
    float worst_at = 0;
    long checked = 0;
    /* every 997th float bit pattern whose exp is a normal float */
    for (uint64_t u = 0; u <= 0xffffffffu; u += 997) {
        float x = kernel_float_of((uint32_t)u);
        if (!(x >= -87.33654f && x <= 88.72283f)) continue;
        double err = ulps(exp_f32(x), exp((double)x));
        if (err > worst) worst = err, worst_at = x;
        checked++;
    }
    cr_assert_gt(checked, 1000000);
    cr_expect_leq(worst, 1.0, "exp_f32 is %.3f ulp off at %.9g", worst, worst_at);
    /* the points where the reduction changes n, and the ends of the range */
    const float edges[] = {0.0f, -0.0f, 0.34657359f, -0.34657359f, 1.0f, -1.0f, 88.72283f, -87.33654f, 1e-10f, -1e-10f};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
        cr_expect_leq(ulps(exp_f32(edges[i]), exp((double)edges[i])), 1.0, "at %.9g", edges[i]);
}

Test(kernel_math, exp_special_values) {
    cr_expect_eq(exp_f32(-INFINITY), 0.0f);
    cr_expect(isinf(exp_f32(INFINITY)) && exp_f32(INFINITY) > 0);
    cr_expect(isnan(exp_f32(NAN)), "NaN must stay NaN (the trainer stops on it)");
    cr_expect_eq(exp_f32(-1000.0f), 0.0f);
    cr_expect(isinf(exp_f32(89.0f)));
    cr_expect_eq(exp_f32(-88.0f), 0.0f, "below FLT_MIN: 0, as with subnormals flushed");
    cr_expect_eq(exp_f32(0.0f), 1.0f);
}

/* GELU in float loses digits to cancellation whatever exp it uses (1 + t and 1 - t^2 near t = -1):
 * exp_f32 must not make it worse than libm's expf does, beyond a few 1e-7. */
static float tanh_libm(float u) { return 1.0f - 2.0f / (1.0f + expf(2.0f * u)); }

Test(kernel_math, gelu_and_its_derivative) {
    const double k = 0.7978845608028654, c = 0.044715;
    for (int i = -1000; i <= 1000; i++) {
        double x = i / 100.0, u = k * (x + c * x * x * x), t = tanh(u);
        double want = 0.5 * x * (1 + t), dwant = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * c * x * x);
        float xf = (float)x, uf = (float)k * (xf + (float)c * xf * xf * xf), tf = tanh_libm(uf);
        float libm = 0.5f * xf * (1 + tf);
        float dlibm = 0.5f * (1 + tf) + 0.5f * xf * (1 - tf * tf) * (float)k * (1 + 3 * (float)c * xf * xf);
        double tol = 2 * fabs(libm - want) + 3e-7 * fmax(1.0, fabs(want));
        double dtol = 2 * fabs(dlibm - dwant) + 3e-7 * fmax(1.0, fabs(dwant));
        cr_expect_leq(fabs((double)gelu_tanh((real)x) - want), tol, "gelu(%g)", x);
        cr_expect_leq(fabs((double)gelu_tanh_grad((real)x) - dwant), dtol, "gelu'(%g)", x);
    }
}
