/* Kernel tests: the float build of the C that bin/reclfc emits for tests/kernels/ops.lua
 * (build/kernels/ops_*.c, made by mk/kernels.mk), run on random inputs and compared with
 * straightforward reference loops written here in double.
 *
 * Each entry of ops.lua is a small graph with inputs and outputs and no loss. For every entry
 * and for B = 1 and B = 3 the test
 *   - fills every input (and parameter) with random values, masks with 0/1, indices in range;
 *   - fills the arena with NaN, so a kernel that reads a value nobody wrote shows up;
 *   - runs forward() and compares each output with the reference, element by element:
 *     |got - ref| <= RTOL * max(|ref|, rms(ref)). The floor rms(ref) keeps entries that are
 *     near zero by cancellation (a dot product of mixed signs) from demanding more than float
 *     can give, while every entry is held to 1e-5 of the output's own scale;
 *   - checks that forward() wrote nothing outside its arena (guard bytes after it) and did not
 *     modify its inputs.
 * `make test-kernels` builds and runs it (OMP_NUM_THREADS=2, so the OpenMP paths run). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph_abi.h"
#include "ops_conv2d.h"
#include "ops_conv2d_grads.h"
#include "ops_cross_entropy.h"
#include "ops_elementwise.h"
#include "ops_gather.h"
#include "ops_group_norm.h"
#include "ops_layer_norm.h"
#include "ops_linear.h"
#include "ops_matmul.h"
#include "ops_permute.h"
#include "ops_reduce.h"
#include "ops_slice_concat.h"
#include "ops_softmax.h"

#define RTOL 1e-5
#define MAX_IO 24 /* inputs or outputs of one graph (conv2d_grads: 12 and 18) */
#define GUARD 256 /* bytes checked after the arena */

/* ---------------------------------------------------------------------------------------- */
/* a small deterministic generator (xorshift64*): the same inputs on every run               */

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;

static double uniform(void) { /* in [-1, 1) */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 0x2545F4914F6CDD1DULL) >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

/* ---------------------------------------------------------------------------------------- */
/* one forward run of a graph                                                                */

typedef struct {
    const reclf_graph *g;
    long dims[RECLF_MAX_SYMS];
    void *in[MAX_IO];        /* inputs as the kernels see them */
    void *in_copy[MAX_IO];   /* the same values, to check forward() leaves its inputs alone */
    size_t in_bytes[MAX_IO];
    real *P;                 /* packed parameters */
    unsigned char *arena;
    size_t arena_bytes;
} run_t;

static long numel(const reclf_tensor_desc *d, const long *dims) {
    long n = 1;
    for (int k = 0; k < d->ndim; k++) n *= d->shape[k] >= 0 ? d->shape[k] : dims[-1 - d->shape[k]];
    return n;
}

static int input_index(const run_t *r, const char *name) {
    for (int k = 0; k < r->g->n_inputs; k++)
        if (strcmp(r->g->inputs[k].name, name) == 0) return k;
    cr_assert_fail("%s has no input named %s", r->g->name, name);
    return -1;
}

static real *in_real(run_t *r, const char *name) {
    int k = input_index(r, name);
    cr_assert_eq(r->g->inputs[k].dtype, RECLF_REAL, "%s: input %s is not real", r->g->name, name);
    return r->in[k];
}

static int32_t *in_int(run_t *r, const char *name) {
    int k = input_index(r, name);
    cr_assert_eq(r->g->inputs[k].dtype, RECLF_INT32, "%s: input %s is not int32", r->g->name, name);
    return r->in[k];
}

static real *param(run_t *r, const char *name) {
    for (int k = 0; k < r->g->n_params; k++)
        if (strcmp(r->g->params[k].name, name) == 0) return r->P + r->g->params[k].offset;
    cr_assert_fail("%s has no parameter named %s", r->g->name, name);
    return NULL;
}

/* random inputs and parameters; masks get 0/1 values, int32 inputs values in [0, int_max) */
static void setup(run_t *r, const reclf_graph *g, long B) {
    memset(r, 0, sizeof *r);
    r->g = g;
    cr_assert_leq(g->n_inputs, MAX_IO);
    for (int k = 0; k < g->n_syms; k++) r->dims[k] = B; /* every graph here has the one size B */
    for (int k = 0; k < g->n_inputs; k++) {
        const reclf_tensor_desc *d = &g->inputs[k];
        long n = numel(d, r->dims);
        r->in_bytes[k] = (size_t)n * (d->dtype == RECLF_INT32 ? sizeof(int32_t) : sizeof(real));
        r->in[k] = malloc(r->in_bytes[k]);
        r->in_copy[k] = malloc(r->in_bytes[k]);
        cr_assert(r->in[k] && r->in_copy[k]);
        for (long i = 0; i < n; i++) {
            if (d->dtype == RECLF_INT32) {
                long v = (long)((uniform() + 1.0) * 0.5 * d->int_max);
                ((int32_t *)r->in[k])[i] = (int32_t)(v < d->int_max ? v : d->int_max - 1);
            } else if (strcmp(d->role, "mask") == 0) {
                ((real *)r->in[k])[i] = uniform() < 0.2 ? 0 : 1;
            } else {
                ((real *)r->in[k])[i] = (real)uniform();
            }
        }
    }
    r->P = malloc(sizeof(real) * (g->n_param_elems + 1));
    cr_assert(r->P);
    for (size_t i = 0; i < g->n_param_elems; i++) r->P[i] = (real)(0.5 * uniform());
}

/* runs forward(); the arena starts as NaN and is followed by guard bytes */
static void forward(run_t *r) {
    for (int k = 0; k < r->g->n_inputs; k++) memcpy(r->in_copy[k], r->in[k], r->in_bytes[k]);
    r->arena_bytes = r->g->arena_bytes(r->dims);
    r->arena = malloc(r->arena_bytes + GUARD);
    cr_assert(r->arena);
    real *a = (real *)r->arena;
    for (size_t i = 0; i < r->arena_bytes / sizeof(real); i++) a[i] = NAN;
    memset(r->arena + r->arena_bytes, 0xA5, GUARD);
    r->g->forward(r->arena, r->P, r->in, r->dims);
    for (size_t i = 0; i < GUARD; i++)
        cr_assert_eq(r->arena[r->arena_bytes + i], 0xA5, "%s: forward wrote past its arena of %zu bytes",
                     r->g->name, r->arena_bytes);
    for (int k = 0; k < r->g->n_inputs; k++)
        cr_assert(memcmp(r->in_copy[k], r->in[k], r->in_bytes[k]) == 0, "%s: forward modified input %s",
                  r->g->name, r->g->inputs[k].name);
}

static void teardown(run_t *r) {
    for (int k = 0; k < r->g->n_inputs; k++) {
        free(r->in[k]);
        free(r->in_copy[k]);
    }
    free(r->P);
    free(r->arena);
}

/* output `name`, after checking that its shape is `ndim` dims `...` (-1 stands for B) */
static const real *output(run_t *r, const char *name, int ndim, ...) {
    for (int k = 0; k < r->g->n_outputs; k++) {
        const reclf_tensor_desc *d = &r->g->outputs[k];
        if (strcmp(d->name, name) != 0) continue;
        cr_assert_eq(d->ndim, ndim, "%s: output %s has %d dims, expected %d", r->g->name, name, d->ndim, ndim);
        va_list ap;
        va_start(ap, ndim);
        for (int i = 0; i < ndim; i++) {
            int want = va_arg(ap, int);
            cr_assert_eq(d->shape[i], want, "%s: output %s dim %d is %d, expected %d", r->g->name, name, i,
                         d->shape[i], want);
        }
        va_end(ap);
        const real *p = r->g->output(r->arena, k, r->dims);
        cr_assert(p >= (const real *)r->arena &&
                      (const unsigned char *)(p + numel(d, r->dims)) <= r->arena + r->arena_bytes,
                  "%s: output %s is not inside the arena", r->g->name, name);
        return p;
    }
    cr_assert_fail("%s has no output named %s", r->g->name, name);
    return NULL;
}

/* element-wise comparison with the reference (see the top of the file) */
static void compare(const char *what, long B, const real *got, const double *ref, long n) {
    if (n == 0) return;
    double ss = 0;
    for (long i = 0; i < n; i++) ss += ref[i] * ref[i];
    double floor = sqrt(ss / (double)n);
    if (floor < 1e-30) floor = 1e-30;
    for (long i = 0; i < n; i++) {
        double scale = fabs(ref[i]) > floor ? fabs(ref[i]) : floor;
        double err = fabs((double)got[i] - ref[i]) / scale;
        cr_assert(err <= RTOL, "%s (B=%ld): element %ld is %.9g, reference %.9g (relative error %.2e)", what, B, i,
                  (double)got[i], ref[i], err);
    }
}

static double *ref_alloc(long n) {
    double *p = calloc((size_t)n, sizeof(double));
    cr_assert(p);
    return p;
}

static const long SIZES[] = {1, 3, 37}; /* 37: more images than conv2d's 16 lanes, split unevenly */
#define FOR_EACH_B for (size_t bi = 0; bi < sizeof SIZES / sizeof SIZES[0]; bi++)

/* ---------------------------------------------------------------------------------------- */

Test(kernels, matmul) {
    FOR_EACH_B {
        long B = SIZES[bi];
        run_t r;
        setup(&r, &reclf_graph_ops_matmul, B);
        const real *a = in_real(&r, "a"), *b = in_real(&r, "b"), *x = in_real(&r, "x"), *w = in_real(&r, "w");
        const real *c = in_real(&r, "c"), *d = in_real(&r, "d");
        forward(&r);

        /* bcast[n,h,i,j] = sum_k a[n,0,i,k] b[0,h,j,k]: a [B,1,5,8], b [1,3,6,8] */
        double *ref = ref_alloc(B * 3 * 5 * 6);
        for (long n = 0; n < B; n++)
            for (long h = 0; h < 3; h++)
                for (long i = 0; i < 5; i++)
                    for (long j = 0; j < 6; j++) {
                        double s = 0;
                        for (long k = 0; k < 8; k++) s += (double)a[(n * 5 + i) * 8 + k] * b[(h * 6 + j) * 8 + k];
                        ref[((n * 3 + h) * 5 + i) * 6 + j] = s;
                    }
        compare("matmul bcast", B, output(&r, "bcast", 4, -1, 3, 5, 6), ref, B * 90);
        free(ref);

        /* shared[n,i,j] = sum_k x[n,i,k] w[k,j]: x [B,7,8], w [8,6] */
        ref = ref_alloc(B * 7 * 6);
        for (long n = 0; n < B; n++)
            for (long i = 0; i < 7; i++)
                for (long j = 0; j < 6; j++) {
                    double s = 0;
                    for (long k = 0; k < 8; k++) s += (double)x[(n * 7 + i) * 8 + k] * w[k * 6 + j];
                    ref[(n * 7 + i) * 6 + j] = s;
                }
        compare("matmul shared", B, output(&r, "shared", 3, -1, 7, 6), ref, B * 42);
        free(ref);

        /* ta[i,j] = sum_k c[k,i] d[k,j]: c [4,5], d [4,3] */
        ref = ref_alloc(15);
        for (long i = 0; i < 5; i++)
            for (long j = 0; j < 3; j++) {
                double s = 0;
                for (long k = 0; k < 4; k++) s += (double)c[k * 5 + i] * d[k * 3 + j];
                ref[i * 3 + j] = s;
            }
        compare("matmul ta", B, output(&r, "ta", 2, 5, 3), ref, 15);
        free(ref);
        teardown(&r);
    }
}

Test(kernels, linear) {
    FOR_EACH_B {
        long B = SIZES[bi];
        run_t r;
        setup(&r, &reclf_graph_ops_linear, B);
        cr_assert_eq(r.g->n_param_elems, 6 * 8 + 6);
        const real *x = in_real(&r, "x"), *W = param(&r, "fc.weight"), *bias = param(&r, "fc.bias");
        forward(&r);
        /* y[n,i,o] = relu(sum_k x[n,i,k] W[o,k] + bias[o]) */
        double *ref = ref_alloc(B * 3 * 6);
        for (long n = 0; n < B * 3; n++)
            for (long o = 0; o < 6; o++) {
                double s = bias[o];
                for (long k = 0; k < 8; k++) s += (double)x[n * 8 + k] * W[o * 8 + k];
                ref[n * 6 + o] = s > 0 ? s : 0;
            }
        compare("linear", B, output(&r, "y", 3, -1, 3, 6), ref, B * 18);
        free(ref);
        teardown(&r);
    }
}

Test(kernels, softmax) {
    FOR_EACH_B {
        long B = SIZES[bi];
        run_t r;
        setup(&r, &reclf_graph_ops_softmax, B);
        const real *x = in_real(&r, "x");
        real *m = in_real(&r, "m");
        /* the last batch entry has every key masked: its rows must come out as zeros */
        for (long j = 0; j < 7; j++) m[(B - 1) * 7 + j] = 0;
        if (B > 1) m[0] = 1, m[1] = 0, m[6] = 1; /* and a row with some of each */
        forward(&r);

        double *plain = ref_alloc(B * 28), *masked = ref_alloc(B * 28), *lse = ref_alloc(B * 4);
        for (long n = 0; n < B; n++)
            for (long i = 0; i < 4; i++) {
                const real *row = x + (n * 4 + i) * 7;
                const real *mk = m + n * 7;
                double mx = -INFINITY, mmx = -INFINITY;
                for (long j = 0; j < 7; j++) {
                    if (row[j] > mx) mx = row[j];
                    if (mk[j] != 0 && row[j] > mmx) mmx = row[j];
                }
                double s = 0, ms = 0;
                for (long j = 0; j < 7; j++) {
                    s += exp(row[j] - mx);
                    if (mk[j] != 0) ms += exp(row[j] - mmx);
                }
                for (long j = 0; j < 7; j++) {
                    plain[(n * 4 + i) * 7 + j] = exp(row[j] - mx) / s;
                    masked[(n * 4 + i) * 7 + j] = (mk[j] != 0 && ms > 0) ? exp(row[j] - mmx) / ms : 0;
                }
                lse[n * 4 + i] = ms > 0 ? mmx + log(ms) : -INFINITY;
            }
        compare("softmax", B, output(&r, "plain", 3, -1, 4, 7), plain, B * 28);
        const real *got_masked = output(&r, "masked", 3, -1, 4, 7);
        compare("masked softmax", B, got_masked, masked, B * 28);
        for (long j = 0; j < 28; j++)
            cr_assert_eq(got_masked[(B - 1) * 28 + j], 0, "a fully masked row is exactly zero (SPEC 8b)");
        /* log-sum-exp over the valid keys; a fully masked row has none: only "very negative" */
        const real *got_lse = output(&r, "lse", 3, -1, 4, 1);
        compare("masked logsumexp", B, got_lse, lse, (B - 1) * 4);
        for (long i = 0; i < 4; i++) cr_assert(got_lse[(B - 1) * 4 + i] < -1e8);
        free(plain);
        free(masked);
        free(lse);
        teardown(&r);
    }
}

Test(kernels, layer_norm) {
    FOR_EACH_B {
        long B = SIZES[bi];
        run_t r;
        setup(&r, &reclf_graph_ops_layer_norm, B);
        const real *x = in_real(&r, "x"), *gm = in_real(&r, "gamma"), *bt = in_real(&r, "beta");
        forward(&r);
        /* over the last 16: (x - mean) / sqrt(biased variance + 1e-5) * gamma + beta */
        double *ref = ref_alloc(B * 5 * 16);
        for (long row = 0; row < B * 5; row++) {
            const real *v = x + row * 16;
            double mean = 0, var = 0;
            for (long j = 0; j < 16; j++) mean += v[j];
            mean /= 16;
            for (long j = 0; j < 16; j++) var += (v[j] - mean) * (v[j] - mean);
            var /= 16;
            for (long j = 0; j < 16; j++) ref[row * 16 + j] = (v[j] - mean) / sqrt(var + 1e-5) * gm[j] + bt[j];
        }
        compare("layer_norm", B, output(&r, "y", 3, -1, 5, 16), ref, B * 80);
        free(ref);
        teardown(&r);
    }
}

Test(kernels, group_norm) {
    FOR_EACH_B {
        long B = SIZES[bi];
        run_t r;
        setup(&r, &reclf_graph_ops_group_norm, B);
        const real *x = in_real(&r, "x"), *gm = in_real(&r, "gamma"), *bt = in_real(&r, "beta");
        forward(&r);
        /* x [B,6,4,5], 3 groups of 2 channels: statistics over 2*4*5 = 40 values per group */
        const long C = 6, G = 3, HW = 20, CG = C / G;
        double *ref = ref_alloc(B * C * HW);
        for (long n = 0; n < B; n++)
            for (long gi = 0; gi < G; gi++) {
                const real *v = x + (n * C + gi * CG) * HW;
                double mean = 0, var = 0;
                for (long j = 0; j < CG * HW; j++) mean += v[j];
                mean /= (double)(CG * HW);
                for (long j = 0; j < CG * HW; j++) var += (v[j] - mean) * (v[j] - mean);
                var /= (double)(CG * HW);
                for (long c = gi * CG; c < (gi + 1) * CG; c++)
                    for (long p = 0; p < HW; p++) {
                        long at = (n * C + c) * HW + p;
                        ref[at] = (x[at] - mean) / sqrt(var + 1e-5) * gm[c] + bt[c];
                    }
            }
        compare("group_norm", B, output(&r, "y", 4, -1, 6, 4, 5), ref, B * C * HW);
        free(ref);
        teardown(&r);
    }
}

/* y [B, O, HO, WO] of a 3x3 convolution with bias, in double */
static double *ref_conv3x3(const real *x, const real *w, const real *bias, long B, long C, long H, long W, long O, long S,
                           long PAD, long HO, long WO) {
    double *ref = ref_alloc(B * O * HO * WO);
    for (long n = 0; n < B; n++)
        for (long o = 0; o < O; o++)
            for (long oy = 0; oy < HO; oy++)
                for (long ox = 0; ox < WO; ox++) {
                    double s = bias[o];
                    for (long c = 0; c < C; c++)
                        for (long ky = 0; ky < 3; ky++)
                            for (long kx = 0; kx < 3; kx++) {
                                long iy = oy * S - PAD + ky, ix = ox * S - PAD + kx;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                                s += (double)w[((o * C + c) * 3 + ky) * 3 + kx] * x[((n * C + c) * H + iy) * W + ix];
                            }
                    ref[((n * O + o) * HO + oy) * WO + ox] = s;
                }
    return ref;
}

Test(kernels, conv2d) {
    FOR_EACH_B {
        long B = SIZES[bi];
        run_t r;
        setup(&r, &reclf_graph_ops_conv2d, B);
        forward(&r);
        /* x [B,3,9,9], w [4,3,3,3], stride 2, padding 1 -> [B,4,5,5] */
        double *ref = ref_conv3x3(in_real(&r, "x"), in_real(&r, "w"), in_real(&r, "b"), B, 3, 9, 9, 4, 2, 1, 5, 5);
        compare("conv2d", B, output(&r, "y", 4, -1, 4, 5, 5), ref, B * 4 * 5 * 5);
        free(ref);
        /* x1 [B,1,9,9], w1 [4,1,3,3], stride 1, padding 1 -> [B,4,9,9] */
        ref = ref_conv3x3(in_real(&r, "x1"), in_real(&r, "w1"), in_real(&r, "b1"), B, 1, 9, 9, 4, 1, 1, 9, 9);
        compare("conv2d of one channel", B, output(&r, "y1", 4, -1, 4, 9, 9), ref, B * 4 * 9 * 9);
        free(ref);
        teardown(&r);
    }
}

/* a 3x3 convolution with padding 1 and its two gradients, in double, by their definitions: every
 * (output pixel, kernel offset) pair that lands inside the image links x[n,c,iy,ix] and
 * y[n,o,oy,ox] through w[o,c,ky,kx]. x [B,C,H,W], w [O,C,3,3], dy and y [B,O,HO,WO]. */
static void ref_conv_grads(const real *x, const real *w, const real *dy, long B, long C, long H, long W, long O, long S,
                           long HO, long WO, double *y, double *dx, double *dw) {
    for (long n = 0; n < B; n++)
        for (long o = 0; o < O; o++)
            for (long oy = 0; oy < HO; oy++)
                for (long ox = 0; ox < WO; ox++)
                    for (long c = 0; c < C; c++)
                        for (long ky = 0; ky < 3; ky++)
                            for (long kx = 0; kx < 3; kx++) {
                                long iy = oy * S - 1 + ky, ix = ox * S - 1 + kx;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                                long xi = ((n * C + c) * H + iy) * W + ix, wi = ((o * C + c) * 3 + ky) * 3 + kx;
                                long yi = ((n * O + o) * HO + oy) * WO + ox;
                                y[yi] += (double)w[wi] * x[xi];
                                dx[xi] += (double)w[wi] * dy[yi];
                                dw[wi] += (double)dy[yi] * x[xi];
                            }
}

Test(kernels, conv2d_grads) {
    const struct { const char *tag; long C, side; } images[] = {{"", 5, 11}, {"a", 3, 16}, {"b", 3, 32}};
    FOR_EACH_B {
        long B = SIZES[bi];
        run_t r;
        setup(&r, &reclf_graph_ops_conv2d_grads, B);
        forward(&r);
        for (size_t im = 0; im < sizeof images / sizeof *images; im++) {
            const long C = images[im].C, side = images[im].side;
            char name[16];
            snprintf(name, sizeof name, "x%s", images[im].tag);
            const real *x = in_real(&r, name);
            snprintf(name, sizeof name, "w%s", images[im].tag);
            const real *w = in_real(&r, name);
            for (long S = 1; S <= 2; S++) { /* x [B,C,side,side], w [12,C,3,3] -> [B,12,out,out] */
                const long out = (side + 2 - 3) / S + 1;
                char yname[16], dxname[16], dwname[16], dyname[16];
                snprintf(yname, sizeof yname, "y%s%ld", images[im].tag, S);
                snprintf(dxname, sizeof dxname, "dx%s%ld", images[im].tag, S);
                snprintf(dwname, sizeof dwname, "dw%s%ld", images[im].tag, S);
                snprintf(dyname, sizeof dyname, "dy%s%ld", images[im].tag, S);
                double *y = ref_alloc(B * 12 * out * out), *dx = ref_alloc(B * C * side * side), *dw = ref_alloc(12 * C * 9);
                ref_conv_grads(x, w, in_real(&r, dyname), B, C, side, side, 12, S, out, out, y, dx, dw);
                compare(yname, B, output(&r, yname, 4, -1, 12, out, out), y, B * 12 * out * out);
                compare(dxname, B, output(&r, dxname, 4, -1, C, side, side), dx, B * C * side * side);
                compare(dwname, B, output(&r, dwname, 4, 12, C, 3, 3), dw, 12 * C * 9);
                free(y);
                free(dx);
                free(dw);
            }
        }
        teardown(&r);
    }
}

Test(kernels, gather) {
    FOR_EACH_B {
        long B = SIZES[bi];
        run_t r;
        setup(&r, &reclf_graph_ops_gather, B);
        const real *tab = in_real(&r, "table");
        int32_t *ids = in_int(&r, "ids");
        ids[0] = 0;     /* the first and last rows of the table are used */
        ids[6 * B - 1] = 9;
        forward(&r);
        double *ref = ref_alloc(B * 6 * 5);
        for (long i = 0; i < B * 6; i++)
            for (long j = 0; j < 5; j++) ref[i * 5 + j] = tab[ids[i] * 5 + j];
        const real *got = output(&r, "y", 3, -1, 6, 5);
        for (long i = 0; i < B * 30; i++) cr_assert_eq(got[i], (real)ref[i], "gather copies exactly (element %ld)", i);
        free(ref);
        teardown(&r);
    }
}

Test(kernels, permute) {
    FOR_EACH_B {
        long B = SIZES[bi];
        run_t r;
        setup(&r, &reclf_graph_ops_permute, B);
        const real *x = in_real(&r, "x"); /* [B,3,4,5] */
        forward(&r);
        const real *y = output(&r, "y", 4, 4, -1, 5, 3); /* y[i,n,k,c] = x[n,c,i,k] */
        const real *t = output(&r, "t", 4, -1, 5, 4, 3); /* t[n,k,i,c] = x[n,c,i,k] */
        for (long n = 0; n < B; n++)
            for (long c = 0; c < 3; c++)
                for (long i = 0; i < 4; i++)
                    for (long k = 0; k < 5; k++) {
                        real v = x[((n * 3 + c) * 4 + i) * 5 + k];
                        cr_assert_eq(y[((i * B + n) * 5 + k) * 3 + c], v, "permute (B=%ld)", B);
                        cr_assert_eq(t[((n * 5 + k) * 4 + i) * 3 + c], v, "transpose (B=%ld)", B);
                    }
        teardown(&r);
    }
}

Test(kernels, slice_concat_pad) {
    FOR_EACH_B {
        long B = SIZES[bi];
        run_t r;
        setup(&r, &reclf_graph_ops_slice_concat, B);
        const real *x = in_real(&r, "x"), *z = in_real(&r, "z"); /* [B,6,4], [B,2,4] */
        forward(&r);
        const real *y = output(&r, "y", 3, -1, 5, 4);
        const real *pad = output(&r, "pad", 3, -1, 2, 7);
        for (long n = 0; n < B; n++) {
            for (long j = 0; j < 4; j++) {
                /* rows 0-1 from x rows 1-2, rows 2-3 from z, row 4 from x row 5 */
                for (long i = 0; i < 2; i++) cr_assert_eq(y[(n * 5 + i) * 4 + j], x[(n * 6 + 1 + i) * 4 + j]);
                for (long i = 0; i < 2; i++) cr_assert_eq(y[(n * 5 + 2 + i) * 4 + j], z[(n * 2 + i) * 4 + j]);
                cr_assert_eq(y[(n * 5 + 4) * 4 + j], x[(n * 6 + 5) * 4 + j]);
            }
            for (long i = 0; i < 2; i++)
                for (long j = 0; j < 7; j++) {
                    real want = (j >= 1 && j < 5) ? z[(n * 2 + i) * 4 + j - 1] : 0;
                    cr_assert_eq(pad[(n * 2 + i) * 7 + j], want, "pad (B=%ld)", B);
                }
        }
        teardown(&r);
    }
}

Test(kernels, reductions) {
    FOR_EACH_B {
        long B = SIZES[bi];
        run_t r;
        setup(&r, &reclf_graph_ops_reduce, B);
        const real *x = in_real(&r, "x"); /* [B,5,7] */
        forward(&r);
        double *sum = ref_alloc(B * 7), *mx = ref_alloc(B * 5), *mean = ref_alloc(35), total[1] = {0};
        for (long n = 0; n < B; n++)
            for (long i = 0; i < 5; i++)
                for (long j = 0; j < 7; j++) {
                    double v = x[(n * 5 + i) * 7 + j];
                    sum[n * 7 + j] += v;
                    if (j == 0 || v > mx[n * 5 + i]) mx[n * 5 + i] = v;
                    mean[i * 7 + j] += v / (double)B;
                    total[0] += v;
                }
        compare("sum over axis 2", B, output(&r, "sum", 3, -1, 1, 7), sum, B * 7);
        compare("max over axis 3", B, output(&r, "max", 3, -1, 5, 1), mx, B * 5);
        compare("mean over B", B, output(&r, "mean_b", 3, 1, 5, 7), mean, 35);
        compare("sum of all", B, output(&r, "total", 0), total, 1);
        free(sum);
        free(mx);
        free(mean);
        teardown(&r);
    }
}

static double gelu_ref(double x) { /* the tanh form: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
    const double pi = 3.14159265358979323846;
    return 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x * x * x)));
}

Test(kernels, elementwise_gelu) {
    FOR_EACH_B {
        long B = SIZES[bi];
        run_t r;
        setup(&r, &reclf_graph_ops_elementwise, B);
        real *x = in_real(&r, "x");
        const real *rv = in_real(&r, "r"), *c = in_real(&r, "c");
        x[0] = 3.5f; /* reach the flat parts of GELU and the sigmoid too */
        x[1] = -3.5f;
        forward(&r);
        const long N = 33;
        double *gelu = ref_alloc(B * N), *mix = ref_alloc(B * N), *l2 = ref_alloc(B * N);
        for (long n = 0; n < B; n++) {
            double ss = 0;
            for (long j = 0; j < N; j++) ss += (double)x[n * N + j] * x[n * N + j];
            double inv = 1 / fmax(sqrt(ss), 1e-6);
            for (long j = 0; j < N; j++) {
                double v = x[n * N + j];
                gelu[n * N + j] = gelu_ref(v);
                mix[n * N + j] = 1 / (1 + exp(-v)) * tanh(rv[j]) + c[n] / (exp(rv[j]) + 1);
                l2[n * N + j] = v * inv;
            }
        }
        compare("gelu", B, output(&r, "gelu", 2, -1, 33), gelu, B * N);
        compare("sigmoid*tanh + c/(exp+1)", B, output(&r, "mix", 2, -1, 33), mix, B * N);
        compare("l2norm", B, output(&r, "l2", 2, -1, 33), l2, B * N);
        free(gelu);
        free(mix);
        free(l2);
        teardown(&r);
    }
}

Test(kernels, cross_entropy) {
    FOR_EACH_B {
        long B = SIZES[bi];
        run_t r;
        setup(&r, &reclf_graph_ops_cross_entropy, B);
        const real *z = in_real(&r, "logits");
        const int32_t *t = in_int(&r, "t");
        forward(&r);
        double *ref = ref_alloc(B);
        for (long n = 0; n < B; n++) {
            double mx = z[n * 6];
            for (long j = 1; j < 6; j++) mx = fmax(mx, z[n * 6 + j]);
            double s = 0;
            for (long j = 0; j < 6; j++) s += exp(z[n * 6 + j] - mx);
            ref[n] = mx + log(s) - z[n * 6 + t[n]];
        }
        compare("cross_entropy", B, output(&r, "ce", 1, -1), ref, B);
        free(ref);
        teardown(&r);
    }
}
