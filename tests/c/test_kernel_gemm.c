/* runtime/kernel_gemm.h: gemm_tiled and gemm_gathered against a double-precision product.
 * gemm_tiled over shapes that end in
 * every kind of partial block (rows not a multiple of 8, columns not a multiple of 32 or of 16),
 * sums short enough for the copied panel and long enough to read B in place, A plain and
 * transposed, overwriting C and adding into it; and C outside the product left untouched. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "graph_abi.h"
#include "kernel_gemm.h"

static float value(unsigned *state) {
    *state = *state * 1664525u + 1013904223u;
    return (float)((*state >> 8) & 0xffff) / 65536.0f - 0.5f;
}

/* checks one product; A, B and C live in larger blocks (their leading dimensions exceed the
 * shape) whose other elements must not change */
static void check(int trans_a, long m, long n, long k, int beta) {
    const long lda = (trans_a ? m : k) + 3, ldb = n + 5, ldc = n + 7;
    const long a_rows = trans_a ? k : m;
    float *A = malloc(sizeof(float) * (size_t)(a_rows * lda));
    float *B = malloc(sizeof(float) * (size_t)(k * ldb));
    float *C = malloc(sizeof(float) * (size_t)(m * ldc));
    float *C0 = malloc(sizeof(float) * (size_t)(m * ldc));
    cr_assert(A && B && C && C0);
    unsigned s = (unsigned)(m * 131 + n * 17 + k * 7 + trans_a * 3 + beta);
    for (long i = 0; i < a_rows * lda; i++) A[i] = value(&s);
    for (long i = 0; i < k * ldb; i++) B[i] = value(&s);
    for (long i = 0; i < m * ldc; i++) C[i] = C0[i] = value(&s);

    gemm_tiled(trans_a, m, n, k, A, lda, B, ldb, beta, C, ldc);

    double worst = 0;
    for (long i = 0; i < m; i++)
        for (long j = 0; j < ldc; j++) {
            if (j >= n) { /* past the product's columns: untouched */
                cr_assert_eq(C[i * ldc + j], C0[i * ldc + j], "C[%ld][%ld] outside the product was written", i, j);
                continue;
            }
            double e = beta ? C0[i * ldc + j] : 0.0;
            for (long p = 0; p < k; p++) e += (double)(trans_a ? A[p * lda + i] : A[i * lda + p]) * B[p * ldb + j];
            double err = fabs(C[i * ldc + j] - e);
            if (err > worst) worst = err;
        }
    /* float sums of k products of values below 0.25 in size: a few ulps of k/4 at worst */
    cr_expect_leq(worst, 1e-6 * (double)k + 1e-6, "trans_a %d, m %ld, n %ld, k %ld, beta %d: off by %g", trans_a, m, n, k,
                  beta, worst);
    free(A);
    free(B);
    free(C);
    free(C0);
}

Test(kernel_gemm, matches_a_double_product_at_edge_shapes) {
    const long ms[] = {1, 3, 8, 13, 32};
    const long ns[] = {1, 16, 17, 32, 45, 64};
    const long ks[] = {1, 32, 33, 600}; /* 600: past the copied panel's limit, B read in place */
    for (int trans_a = 0; trans_a < 2; trans_a++)
        for (int beta = 0; beta < 2; beta++)
            for (size_t a = 0; a < sizeof ms / sizeof *ms; a++)
                for (size_t b = 0; b < sizeof ns / sizeof *ns; b++)
                    for (size_t c = 0; c < sizeof ks / sizeof *ks; c++) check(trans_a, ms[a], ns[b], ks[c], beta);
}

Test(kernel_gemm, matches_at_the_convolution_shapes) {
    check(0, 32, 1024, 288, 0);  /* forward of a 32-channel 32x32 layer */
    check(1, 288, 1024, 32, 0);  /* its input gradient's columns, w^T . dy */
    check(0, 144, 32, 1024, 1);  /* its weight gradient, a chunk's rows, summed over images */
    check(0, 128, 64, 1152, 0);  /* forward of a 128-channel 8x8 layer */
}

/* gemm_gathered: B's rows scattered through a block (some overlapping, as a convolution's kernel
 * offsets overlap), its halves from two bases, n from 1 to 32 columns, m with partial blocks */
Test(kernel_gemm, gathered_matches_a_double_product) {
    unsigned s = 7;
    enum { SPAN = 4000, K = 45, LDA = 47, LDC = 40 };
    float *B = malloc(sizeof(float) * SPAN), *A = malloc(sizeof(float) * 13 * LDA), *C = malloc(sizeof(float) * 13 * LDC);
    int off[K];
    cr_assert(B && A && C);
    for (long i = 0; i < SPAN; i++) B[i] = value(&s);
    for (long i = 0; i < 13 * LDA; i++) A[i] = value(&s);
    for (int p = 0; p < K; p++) off[p] = (p * 37) % 1900; /* rows 37 apart, wrapping: overlaps */
    const float *B0 = B + 5, *B1 = B + 2000;
    const long ms[] = {1, 8, 13}, ns[] = {1, 16, 20, 32};
    for (size_t a = 0; a < 3; a++)
        for (size_t b = 0; b < 4; b++) {
            const long m = ms[a], n = ns[b];
            for (long i = 0; i < 13 * LDC; i++) C[i] = -99.0f;
            gemm_gathered(m, n, K, A, LDA, off, B0, B1, C, LDC);
            for (long i = 0; i < 13; i++)
                for (long j = 0; j < LDC; j++) {
                    if (i >= m || j >= n) {
                        cr_assert_eq(C[i * LDC + j], -99.0f, "m %ld, n %ld: C[%ld][%ld] outside the product was written", m, n, i, j);
                        continue;
                    }
                    double e = 0;
                    for (int p = 0; p < K; p++) e += (double)A[i * LDA + p] * (j < 16 ? B0[off[p] + j] : B1[off[p] + j - 16]);
                    cr_assert_leq(fabs(C[i * LDC + j] - e), 1e-5, "m %ld, n %ld: C[%ld][%ld] is %g, expected %g", m, n, i, j,
                                  C[i * LDC + j], e);
                }
        }
    free(A);
    free(B);
    free(C);
}

/* gemm_gathered_sum: A's rows through offsets, read as R segments of X (rows 1-8 of a block, the
 * ninth alone), n across a partial panel of 32, adding into C or overwriting it */
Test(kernel_gemm, gathered_sum_matches_a_double_product) {
    unsigned s = 11;
    enum { SPAN = 3000, M = 9, R = 5, X = 7, LDA = 40, LDB = 45, LDC = 50 };
    float *A = malloc(sizeof(float) * SPAN), *B = malloc(sizeof(float) * R * X * LDB);
    float *C = malloc(sizeof(float) * M * LDC), *C0 = malloc(sizeof(float) * M * LDC);
    int off[M];
    cr_assert(A && B && C && C0);
    for (long i = 0; i < SPAN; i++) A[i] = value(&s);
    for (long i = 0; i < R * X * LDB; i++) B[i] = value(&s);
    for (int i = 0; i < M; i++) off[i] = (i * 331) % 2500;
    const long ns[] = {1, 16, 33, 45};
    for (int beta = 0; beta < 2; beta++)
        for (size_t b = 0; b < 4; b++) {
            const long n = ns[b];
            for (long i = 0; i < M * LDC; i++) C[i] = C0[i] = value(&s);
            gemm_gathered_sum(M, n, R, X, A, off, LDA, B, LDB, beta, C, LDC);
            for (long i = 0; i < M; i++)
                for (long j = 0; j < LDC; j++) {
                    if (j >= n) {
                        cr_assert_eq(C[i * LDC + j], C0[i * LDC + j], "n %ld: C[%ld][%ld] outside the product was written", n, i, j);
                        continue;
                    }
                    double e = beta ? C0[i * LDC + j] : 0.0;
                    for (long r = 0; r < R; r++)
                        for (long x = 0; x < X; x++) e += (double)A[off[i] + r * LDA + x] * B[(r * X + x) * LDB + j];
                    cr_assert_leq(fabs(C[i * LDC + j] - e), 1e-5, "beta %d, n %ld: C[%ld][%ld] is %g, expected %g", beta, n, i, j,
                                  C[i * LDC + j], e);
                }
        }
    free(A);
    free(B);
    free(C);
    free(C0);
}
