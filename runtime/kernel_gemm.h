/* The products of the convolution kernels (compiler/ops/conv.lua), for the shapes where OpenBLAS's
 * sgemm is slow: one operand has few rows (32 output channels) or the sum is short (K = 32), so
 * that packing both operands costs as much as the product. Here neither is packed but for a short
 * panel of B: an 8 x 32 block of C lives in registers (16 AVX-512 accumulators) for the whole sum,
 * each step loads 32 values of B's row and broadcasts 8 of A's. Measured at the SPEC's convolution
 * shapes on one Zen 4 core: 105-118 GFLOP/s against sgemm's 80-100 (bench/ shows it per kernel).
 *   gemm_tiled         C = A . B (+ C), both strided;
 *   gemm_gathered      B's rows found through a table of offsets: a convolution's kernel offsets
 *                      read its bordered input planes in place, with no columns built;
 *   gemm_gathered_sum  A's rows found through offsets, the sum read one output row at a time: a
 *                      weight gradient's columns, read in place the same way.
 * Without AVX-512, and in double (the gradient checks), gemm_tiled is cblas_?gemm with the same
 * arguments and the other two are plain loops. Included by generated .c files after graph_abi.h,
 * which defines `real`. */
#ifndef RECLF_KERNEL_GEMM_H
#define RECLF_KERNEL_GEMM_H
#include <cblas.h>

/* C [m, n] (row stride ldc) = A . B + beta C, beta 0 or 1; A [m, k] at A[i*lda + p], or with
 * trans_a, A^T: element (i, p) at A[p*lda + i]; B [k, n] at B[p*ldb + j]. */
static inline void gemm_tiled(int trans_a, long m, long n, long k, const real *A, long lda, const real *B, long ldb,
                              int beta, real *C, long ldc);

/* C [m, 0:n] (n <= 32, row stride ldc) = A [m, k] . B with A[i*lda + p]; B's row p is 32 values:
 * B0[off[p] + j] for j < 16, then B1[off[p] + j - 16] */
static inline void gemm_gathered(long m, long n, long k, const real *A, long lda, const int *off, const real *B0,
                                 const real *B1, real *C, long ldc);

/* C [m, n] (row stride ldc) = sum over r < R, x < X of a_i(r, x) B[(r*X + x)*ldb + j] (+ C when
 * beta), with a_i(r, x) = A[off[i] + r*lda + x]: A's rows found through offsets and read as R
 * segments of X. A convolution's weight gradient reads its input planes in place this way */
static inline void gemm_gathered_sum(long m, long n, long R, long X, const real *A, const int *off, long lda,
                                     const real *B, long ldb, int beta, real *C, long ldc);

#if defined(__AVX512F__) && !defined(REAL_DOUBLE)
#include <immintrin.h>

/* The block: C[0:mr, 0:32] (mr <= 8; the columns masked to the valid ones by mlo, mhi, B's loads
 * too) from 8 rows of A and 32 columns of B, 16 accumulators. They are named, never an array:
 * GCC kept an array of them in memory unless every index folded to a constant (40% of the speed).
 * Rows past mr repeat row mr - 1 and are not stored: the shapes here have whole blocks of 8. */
/* the rows' pointers a0..a7: row i starts at ROW(i), rows past mr at ROW(mr - 1) */
#define GEMM_ROW_POINTERS(ROW)                                                                                   \
    const float *a0 = ROW(0), *a1 = ROW(1 < mr ? 1 : mr - 1), *a2 = ROW(2 < mr ? 2 : mr - 1),                    \
                *a3 = ROW(3 < mr ? 3 : mr - 1), *a4 = ROW(4 < mr ? 4 : mr - 1), *a5 = ROW(5 < mr ? 5 : mr - 1),  \
                *a6 = ROW(6 < mr ? 6 : mr - 1), *a7 = ROW(7 < mr ? 7 : mr - 1)
#define GEMM_ACCUMULATORS                                                                                        \
    __m512 lo0 = _mm512_setzero_ps(), lo1 = lo0, lo2 = lo0, lo3 = lo0, lo4 = lo0, lo5 = lo0, lo6 = lo0, lo7 = lo0; \
    __m512 hi0 = lo0, hi1 = lo0, hi2 = lo0, hi3 = lo0, hi4 = lo0, hi5 = lo0, hi6 = lo0, hi7 = lo0
/* one step of the sum: row i's element at index `at` times B's row (b0, b1) */
#define GEMM_ROW(i, at)                                                                                          \
    do {                                                                                                         \
        const __m512 v = _mm512_set1_ps(a##i[at]);                                                               \
        lo##i = _mm512_fmadd_ps(v, b0, lo##i);                                                                   \
        hi##i = _mm512_fmadd_ps(v, b1, hi##i);                                                                   \
    } while (0)
#define GEMM_ROWS(at)                                                                                            \
    GEMM_ROW(0, at); GEMM_ROW(1, at); GEMM_ROW(2, at); GEMM_ROW(3, at);                                          \
    GEMM_ROW(4, at); GEMM_ROW(5, at); GEMM_ROW(6, at); GEMM_ROW(7, at)

/* the first mr rows of the block into C, added to it when beta: the block's sum is added at the
 * end, not started from C, so that a sum over many calls (a weight gradient over the images)
 * stays as accurate as BLAS's */
#define GEMM_STORE                                                                                               \
    do {                                                                                                         \
        float out[8][32] __attribute__((aligned(64)));                                                           \
        _mm512_store_ps(out[0], lo0), _mm512_store_ps(out[0] + 16, hi0);                                         \
        _mm512_store_ps(out[1], lo1), _mm512_store_ps(out[1] + 16, hi1);                                         \
        _mm512_store_ps(out[2], lo2), _mm512_store_ps(out[2] + 16, hi2);                                         \
        _mm512_store_ps(out[3], lo3), _mm512_store_ps(out[3] + 16, hi3);                                         \
        _mm512_store_ps(out[4], lo4), _mm512_store_ps(out[4] + 16, hi4);                                         \
        _mm512_store_ps(out[5], lo5), _mm512_store_ps(out[5] + 16, hi5);                                         \
        _mm512_store_ps(out[6], lo6), _mm512_store_ps(out[6] + 16, hi6);                                         \
        _mm512_store_ps(out[7], lo7), _mm512_store_ps(out[7] + 16, hi7);                                         \
        for (long i = 0; i < mr; i++) {                                                                          \
            __m512 l = _mm512_load_ps(out[i]), h = _mm512_load_ps(out[i] + 16);                                  \
            if (beta) {                                                                                          \
                l = _mm512_add_ps(l, _mm512_maskz_loadu_ps(mlo, C + i * ldc));                                   \
                h = _mm512_add_ps(h, _mm512_maskz_loadu_ps(mhi, C + i * ldc + 16));                              \
            }                                                                                                    \
            _mm512_mask_storeu_ps(C + i * ldc, mlo, l);                                                          \
            _mm512_mask_storeu_ps(C + i * ldc + 16, mhi, h);                                                     \
        }                                                                                                        \
    } while (0)

/* the masks of the first n <= 32 columns, as two halves of 16 */
static inline __mmask16 gemm_mask_lo(long n) { return (__mmask16)(n >= 16 ? 0xffff : (1u << n) - 1); }
static inline __mmask16 gemm_mask_hi(long n) { return (__mmask16)(n >= 32 ? 0xffff : n <= 16 ? 0 : (1u << (n - 16)) - 1); }

/* gemm_tiled's block: a(i, p) = A[i*ars + p*aks], B's row p at B + p*ldb */
static inline void gemm_tiled_block(long mr, long k, const float *A, long ars, long aks, const float *restrict B, long ldb,
                                    int beta, float *restrict C, long ldc, __mmask16 mlo, __mmask16 mhi) {
#define ROW(i) (A + (i) * ars)
    GEMM_ROW_POINTERS(ROW);
#undef ROW
    GEMM_ACCUMULATORS;
    for (long p = 0; p < k; p++) {
        const __m512 b0 = _mm512_maskz_loadu_ps(mlo, B + p * ldb), b1 = _mm512_maskz_loadu_ps(mhi, B + p * ldb + 16);
        GEMM_ROWS(p * aks);
    }
    GEMM_STORE;
}

/* gemm_gathered's block: a(i, p) = A[i*lda + p], B's row p at B0 + off[p] and B1 + off[p] */
static inline void gemm_gathered_block(long mr, long k, const float *A, long lda, const int *restrict off,
                                       const float *B0, const float *B1, float *restrict C, long ldc, __mmask16 mlo,
                                       __mmask16 mhi) {
    const int beta = 0;
#define ROW(i) (A + (i) * lda)
    GEMM_ROW_POINTERS(ROW);
#undef ROW
    GEMM_ACCUMULATORS;
    for (long p = 0; p < k; p++) {
        const __m512 b0 = _mm512_maskz_loadu_ps(mlo, B0 + off[p]), b1 = _mm512_maskz_loadu_ps(mhi, B1 + off[p]);
        GEMM_ROWS(p);
    }
    GEMM_STORE;
}

/* gemm_gathered_sum's block: a(i, r, x) = A[off[i] + r*lda + x], B's row (r, x) at B + (r*X + x)*ldb */
static inline void gemm_gathered_sum_block(long mr, long R, long X, const float *A, const int *off, long lda,
                                           const float *restrict B, long ldb, int beta, float *restrict C, long ldc,
                                           __mmask16 mlo, __mmask16 mhi) {
#define ROW(i) (A + off[i])
    GEMM_ROW_POINTERS(ROW);
#undef ROW
    GEMM_ACCUMULATORS;
    for (long r = 0; r < R; r++) {
        const float *b = B + r * X * ldb;
        for (long x = 0; x < X; x++) {
            const __m512 b0 = _mm512_maskz_loadu_ps(mlo, b + x * ldb), b1 = _mm512_maskz_loadu_ps(mhi, b + x * ldb + 16);
            GEMM_ROWS(r * lda + x);
        }
    }
    GEMM_STORE;
}

#undef GEMM_ROW_POINTERS
#undef GEMM_ACCUMULATORS
#undef GEMM_ROW
#undef GEMM_ROWS
#undef GEMM_STORE

/* the B panel is copied when it is short enough to be reread from a small buffer: rows of B a
 * multiple of 4 KiB apart (1024 columns) share an L1 set, and a short sum rereads the panel for
 * every block of 8 rows of A */
#define GEMM_TILED_PACK_K 512

static inline void gemm_tiled(int trans_a, long m, long n, long k, const float *A, long lda, const float *B, long ldb,
                              int beta, float *C, long ldc) {
    const long ars = trans_a ? 1 : lda, aks = trans_a ? lda : 1;
    float panel[GEMM_TILED_PACK_K * 32] __attribute__((aligned(64))); /* [k, 32] */
    for (long j = 0; j < n; j += 32) {
        const long nj = n - j < 32 ? n - j : 32; /* the last panel may be narrower: masked */
        const __mmask16 mlo = gemm_mask_lo(nj), mhi = gemm_mask_hi(nj);
        const float *b = B + j;
        long lb = ldb;
        if (k <= GEMM_TILED_PACK_K) { /* zeros past the valid columns, so the sums read no garbage */
            for (long p = 0; p < k; p++) {
                _mm512_store_ps(panel + p * 32, _mm512_maskz_loadu_ps(mlo, B + p * ldb + j));
                _mm512_store_ps(panel + p * 32 + 16, _mm512_maskz_loadu_ps(mhi, B + p * ldb + j + 16));
            }
            b = panel;
            lb = 32;
        }
        for (long i = 0; i < m; i += 8)
            gemm_tiled_block(m - i < 8 ? m - i : 8, k, A + i * ars, ars, aks, b, lb, beta, C + i * ldc + j, ldc, mlo, mhi);
    }
}

static inline void gemm_gathered(long m, long n, long k, const float *A, long lda, const int *off, const float *B0,
                                 const float *B1, float *C, long ldc) {
    for (long i = 0; i < m; i += 8)
        gemm_gathered_block(m - i < 8 ? m - i : 8, k, A + i * lda, lda, off, B0, B1, C + i * ldc, ldc, gemm_mask_lo(n),
                            gemm_mask_hi(n));
}

static inline void gemm_gathered_sum(long m, long n, long R, long X, const float *A, const int *off, long lda,
                                     const float *B, long ldb, int beta, float *C, long ldc) {
    for (long j = 0; j < n; j += 32) {
        const long nj = n - j < 32 ? n - j : 32;
        for (long i = 0; i < m; i += 8)
            gemm_gathered_sum_block(m - i < 8 ? m - i : 8, R, X, A, off + i, lda, B + j, ldb, beta, C + i * ldc + j, ldc,
                                    gemm_mask_lo(nj), gemm_mask_hi(nj));
    }
}

#else /* no AVX-512, or double: BLAS, and plain loops for gemm_gathered and gemm_gathered_sum */

static inline void gemm_gathered(long m, long n, long k, const real *A, long lda, const int *off, const real *B0,
                                 const real *B1, real *C, long ldc) {
    for (long i = 0; i < m; i++) {
        real acc[32] = {0};
        for (long p = 0; p < k; p++) {
            const real a = A[i * lda + p], *b0 = B0 + off[p], *b1 = B1 + off[p] - 16;
            for (long j = 0; j < n && j < 16; j++) acc[j] += a * b0[j];
            for (long j = 16; j < n; j++) acc[j] += a * b1[j];
        }
        for (long j = 0; j < n; j++) C[i * ldc + j] = acc[j];
    }
}

static inline void gemm_gathered_sum(long m, long n, long R, long X, const real *A, const int *off, long lda,
                                     const real *B, long ldb, int beta, real *C, long ldc) {
    for (long i = 0; i < m; i++)
        for (long j = 0; j < n; j++) {
            real s = 0;
            for (long r = 0; r < R; r++)
                for (long x = 0; x < X; x++) s += A[off[i] + r * lda + x] * B[(r * X + x) * ldb + j];
            C[i * ldc + j] = beta ? C[i * ldc + j] + s : s;
        }
}

static inline void gemm_tiled(int trans_a, long m, long n, long k, const real *A, long lda, const real *B, long ldb,
                              int beta, real *C, long ldc) {
#ifdef REAL_DOUBLE
    cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, CblasNoTrans, (int)m, (int)n, (int)k, 1.0, A, (int)lda,
                B, (int)ldb, beta ? 1.0 : 0.0, C, (int)ldc);
#else
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, CblasNoTrans, (int)m, (int)n, (int)k, 1.0f, A, (int)lda,
                B, (int)ldb, beta ? 1.0f : 0.0f, C, (int)ldc);
#endif
}

#endif
#endif
