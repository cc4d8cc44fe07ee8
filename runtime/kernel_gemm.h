/* gemm_tiled: the GEMM of the convolution kernels, C = A . B (+ C), for the shapes where OpenBLAS's
 * sgemm is slow: one operand has few rows (32 output channels) or the sum is short (K = 32), so
 * that packing both operands costs as much as the product. Here neither is packed but for a short
 * panel of B: the 8 x 32 block of C lives in registers (16 AVX-512 accumulators) for the whole sum,
 * each step loads 32 values of B's row and broadcasts 8 of A's. Measured at the SPEC's convolution
 * shapes on one Zen 4 core: 105-118 GFLOP/s against sgemm's 80-100 (bench/ shows it per kernel).
 *
 * Without AVX-512, and in double (the gradient checks), it is cblas_?gemm with the same arguments.
 * Included by generated .c files after graph_abi.h, which defines `real`. */
#ifndef RECLF_KERNEL_GEMM_H
#define RECLF_KERNEL_GEMM_H
#include <cblas.h>

/* C [m, n] (row stride ldc) = A . B + beta C, beta 0 or 1; A [m, k] at A[i*lda + p], or with
 * trans_a, A^T: element (i, p) at A[p*lda + i]; B [k, n] at B[p*ldb + j]. */
static inline void gemm_tiled(int trans_a, long m, long n, long k, const real *A, long lda, const real *B, long ldb,
                              int beta, real *C, long ldc);

#if defined(__AVX512F__) && !defined(REAL_DOUBLE)
#include <immintrin.h>

/* the B panel is copied when it is short enough to be reread from a small buffer: rows of B a
 * multiple of 4 KiB apart (1024 columns) share an L1 set, and a short sum rereads the panel for
 * every block of 8 rows of A */
#define GEMM_TILED_PACK_K 512

/* C[0:MR, 0:32] (masked to the valid columns by mlo, mhi; B's loads too) = sum over p of a(i, p) b(p, :), where
 * a(i, p) = A[i*ars + p*aks] and row p of B is at B + p*ldb */
#define GEMM_TILED_BLOCK(MR)                                                                                     \
    static inline void gemm_tiled_block##MR(long k, const float *restrict A, long ars, long aks,                \
                                            const float *restrict B, long ldb, int beta, float *restrict C,     \
                                            long ldc, __mmask16 mlo, __mmask16 mhi) {                           \
        __m512 lo[MR], hi[MR];                                                                                   \
        for (int i = 0; i < MR; i++) {                                                                           \
            lo[i] = beta ? _mm512_maskz_loadu_ps(mlo, C + i * ldc) : _mm512_setzero_ps();                        \
            hi[i] = beta ? _mm512_maskz_loadu_ps(mhi, C + i * ldc + 16) : _mm512_setzero_ps();                   \
        }                                                                                                        \
        for (long p = 0; p < k; p++) {                                                                           \
            const __m512 b0 = _mm512_maskz_loadu_ps(mlo, B + p * ldb);                                           \
            const __m512 b1 = _mm512_maskz_loadu_ps(mhi, B + p * ldb + 16);                                      \
            for (int i = 0; i < MR; i++) {                                                                       \
                const __m512 a = _mm512_set1_ps(A[i * ars + p * aks]);                                           \
                lo[i] = _mm512_fmadd_ps(a, b0, lo[i]);                                                           \
                hi[i] = _mm512_fmadd_ps(a, b1, hi[i]);                                                           \
            }                                                                                                    \
        }                                                                                                        \
        for (int i = 0; i < MR; i++) {                                                                           \
            _mm512_mask_storeu_ps(C + i * ldc, mlo, lo[i]);                                                      \
            _mm512_mask_storeu_ps(C + i * ldc + 16, mhi, hi[i]);                                                 \
        }                                                                                                        \
    }
GEMM_TILED_BLOCK(8)
GEMM_TILED_BLOCK(4)
GEMM_TILED_BLOCK(2)
GEMM_TILED_BLOCK(1)
#undef GEMM_TILED_BLOCK

static inline void gemm_tiled(int trans_a, long m, long n, long k, const float *A, long lda, const float *B, long ldb,
                              int beta, float *C, long ldc) {
    const long ars = trans_a ? 1 : lda, aks = trans_a ? lda : 1;
    float panel[GEMM_TILED_PACK_K * 32] __attribute__((aligned(64))); /* [k, 32] */
    for (long j = 0; j < n; j += 32) {
        const long nj = n - j < 32 ? n - j : 32; /* the last panel may be narrower: masked */
        const __mmask16 mlo = (__mmask16)(nj >= 16 ? 0xffff : (1u << nj) - 1);
        const __mmask16 mhi = (__mmask16)(nj >= 32 ? 0xffff : nj <= 16 ? 0 : (1u << (nj - 16)) - 1);
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
        long i = 0;
        for (; i + 8 <= m; i += 8) gemm_tiled_block8(k, A + i * ars, ars, aks, b, lb, beta, C + i * ldc + j, ldc, mlo, mhi);
        if (m - i >= 4) { gemm_tiled_block4(k, A + i * ars, ars, aks, b, lb, beta, C + i * ldc + j, ldc, mlo, mhi); i += 4; }
        if (m - i >= 2) { gemm_tiled_block2(k, A + i * ars, ars, aks, b, lb, beta, C + i * ldc + j, ldc, mlo, mhi); i += 2; }
        if (m - i >= 1) gemm_tiled_block1(k, A + i * ars, ars, aks, b, lb, beta, C + i * ldc + j, ldc, mlo, mhi);
    }
}

#else /* no AVX-512, or double: BLAS */

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
