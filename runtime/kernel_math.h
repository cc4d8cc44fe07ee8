/* The scalar functions generated kernels call, written so that the compiler can vectorise the
 * loops around them (libm's expf is a scalar call; without -ffast-math GCC has no vector exp).
 * Included by every generated .c after graph_abi.h, which defines `real`. */
#ifndef RECLF_KERNEL_MATH_H
#define RECLF_KERNEL_MATH_H
#include <math.h>
#include <stdint.h>
#include <string.h>

static inline uint32_t kernel_bits_of(float f) { uint32_t u; memcpy(&u, &f, sizeof u); return u; }
static inline float kernel_float_of(uint32_t u) { float f; memcpy(&f, &u, sizeof f); return f; }

/* e^x in float, within 1 ulp of the exact value (tests/c/kernels checks every 97th float of the
 * range). Cody-Waite reduction x = n ln2 + r with |r| <= ln2/2, Cephes' degree-6 polynomial for
 * e^r, and 2^n built in the exponent bits. Results below FLT_MIN are 0 (the runtime flushes
 * subnormals to zero anyway); inf, -inf and NaN behave as in expf. Branch-free but for selects. */
static inline float exp_f32(float x) {
    const float hi = 88.72283172607421875f, lo = -87.33654022216796875f; /* ln FLT_MAX, ln FLT_MIN */
    /* the arithmetic runs on a finite, in-range copy; the select at the end puts back 0, inf, NaN */
    float xc = x >= lo && x <= hi ? x : (x > hi ? hi : lo);
    const float magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to the nearest integer */
    float n = (xc * 1.44269504088896341f + magic) - magic;
    float r = xc - n * 0.693359375f; /* ln2 in two parts: n * 0.693359375 is exact */
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * r * r + r + 1.0f;
    /* 2^n as two factors: n runs from -126 to 128, one past either end of the exponent field */
    int ni = (int)n, n1 = ni / 2, n2 = ni - n1;
    y = y * kernel_float_of((uint32_t)(n1 + 127) << 23) * kernel_float_of((uint32_t)(n2 + 127) << 23);
    return x < lo ? 0.0f : (x > hi ? INFINITY : (x != x ? x : y));
}

#ifdef REAL_DOUBLE
static inline real exp_real(real x) { return exp(x); } /* gradient checks run in double: libm's exp */
#else
static inline real exp_real(real x) { return exp_f32(x); }
#endif

/* GELU, tanh form, and its derivative. tanh(u) = 1 - 2 / (1 + exp(2u)): libm's tanhf is several
 * times slower than an exp, and the absolute error of this form (~1 ulp of 1) is what 0.5 x (1 + t) sees. */
static inline real tanh_via_exp(real u) { return (real)1 - (real)2 / ((real)1 + exp_real((real)2 * u)); }
static inline real gelu_tanh(real x) {
    const real k = (real)0.7978845608028654, c = (real)0.044715;
    return (real)0.5 * x * ((real)1 + tanh_via_exp(k * (x + c * x * x * x)));
}
static inline real gelu_tanh_grad(real x) {
    const real k = (real)0.7978845608028654, c = (real)0.044715;
    real t = tanh_via_exp(k * (x + c * x * x * x));
    return (real)0.5 * ((real)1 + t) + (real)0.5 * x * ((real)1 - t * t) * k * ((real)1 + (real)3 * c * x * x);
}

#endif
