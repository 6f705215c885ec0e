/*
 * predictor: the AVX2/FMA matrix product (see pi_predictor_gemm in
 * predictor.h); compiled with -mavx2 -mfma.
 *
 * Every C element is its initial value plus a[i][l] * b[l][j] fused-added
 * in order of l, in the 4 x 16 tiles and the narrower edge tiles alike, so
 * the result does not depend on the blocking: it is the plain triple loop
 * with fmaf().
 */
#include <immintrin.h>

#include "predictor.h"

static void tile_4x16(int64_t k, const float *a, int64_t lda, const float *b, int64_t ldb,
                      float *c, int64_t ldc)
{
    __m256 c00 = _mm256_loadu_ps(c), c01 = _mm256_loadu_ps(c + 8);
    __m256 c10 = _mm256_loadu_ps(c + ldc), c11 = _mm256_loadu_ps(c + ldc + 8);
    __m256 c20 = _mm256_loadu_ps(c + 2 * ldc), c21 = _mm256_loadu_ps(c + 2 * ldc + 8);
    __m256 c30 = _mm256_loadu_ps(c + 3 * ldc), c31 = _mm256_loadu_ps(c + 3 * ldc + 8);
    for (int64_t l = 0; l < k; l++) {
        __m256 b0 = _mm256_loadu_ps(b + l * ldb), b1 = _mm256_loadu_ps(b + l * ldb + 8);
        __m256 a0 = _mm256_broadcast_ss(a + l), a1 = _mm256_broadcast_ss(a + lda + l);
        __m256 a2 = _mm256_broadcast_ss(a + 2 * lda + l), a3 = _mm256_broadcast_ss(a + 3 * lda + l);
        c00 = _mm256_fmadd_ps(a0, b0, c00);
        c01 = _mm256_fmadd_ps(a0, b1, c01);
        c10 = _mm256_fmadd_ps(a1, b0, c10);
        c11 = _mm256_fmadd_ps(a1, b1, c11);
        c20 = _mm256_fmadd_ps(a2, b0, c20);
        c21 = _mm256_fmadd_ps(a2, b1, c21);
        c30 = _mm256_fmadd_ps(a3, b0, c30);
        c31 = _mm256_fmadd_ps(a3, b1, c31);
    }
    _mm256_storeu_ps(c, c00);
    _mm256_storeu_ps(c + 8, c01);
    _mm256_storeu_ps(c + ldc, c10);
    _mm256_storeu_ps(c + ldc + 8, c11);
    _mm256_storeu_ps(c + 2 * ldc, c20);
    _mm256_storeu_ps(c + 2 * ldc + 8, c21);
    _mm256_storeu_ps(c + 3 * ldc, c30);
    _mm256_storeu_ps(c + 3 * ldc + 8, c31);
}

/* One row of C, 8 or 16 columns wide (w). */
static void tile_1xw(int w, int64_t k, const float *a, const float *b, int64_t ldb, float *c)
{
    __m256 c0 = _mm256_loadu_ps(c), c1 = w > 8 ? _mm256_loadu_ps(c + 8) : _mm256_setzero_ps();
    for (int64_t l = 0; l < k; l++) {
        __m256 al = _mm256_broadcast_ss(a + l);
        c0 = _mm256_fmadd_ps(al, _mm256_loadu_ps(b + l * ldb), c0);
        if (w > 8)
            c1 = _mm256_fmadd_ps(al, _mm256_loadu_ps(b + l * ldb + 8), c1);
    }
    _mm256_storeu_ps(c, c0);
    if (w > 8)
        _mm256_storeu_ps(c + 8, c1);
}

/* One row of C, w < 8 columns wide: masked loads never touch the bytes
 * beyond the row. */
static void tile_1xmask(int w, int64_t k, const float *a, const float *b, int64_t ldb, float *c)
{
    __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(w), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256 c0 = _mm256_maskload_ps(c, mask);
    for (int64_t l = 0; l < k; l++)
        c0 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + l), _mm256_maskload_ps(b + l * ldb, mask), c0);
    _mm256_maskstore_ps(c, mask, c0);
}

void pi_predictor_gemm_avx2(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                            const float *b, int64_t ldb, float *c, int64_t ldc)
{
    int64_t n16 = n - n % 16, n8 = n - n % 8, i = 0;
    for (; i + 4 <= m; i += 4)
        for (int64_t j = 0; j < n16; j += 16)
            tile_4x16(k, a + i * lda, lda, b + j, ldb, c + i * ldc + j, ldc);
    for (; i < m; i++)
        for (int64_t j = 0; j < n16; j += 16)
            tile_1xw(16, k, a + i * lda, b + j, ldb, c + i * ldc + j);
    for (i = 0; i < m; i++) {
        if (n8 > n16)
            tile_1xw(8, k, a + i * lda, b + n16, ldb, c + i * ldc + n16);
        if (n > n8)
            tile_1xmask((int)(n - n8), k, a + i * lda, b + n8, ldb, c + i * ldc + n8);
    }
}
