/* axpy: AVX2/FMA versions (see axpy.h); compiled with -mavx2 -mfma -mf16c. */
#include <immintrin.h>

#include "axpy_impl.h"
#include "axpy_simd.h"

/* Eight int8 codes as floats. */
static inline __m256 i8x8(const int8_t *q)
{
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)q)));
}

/* Eight 4-bit codes (low or high nibbles of 8 bytes) as floats. */
static inline __m256 u4x8(const uint8_t *qs, int high)
{
    __m128i b = _mm_loadl_epi64((const __m128i *)qs);
    if (high)
        b = _mm_srli_epi16(b, 4);
    b = _mm_and_si128(b, _mm_set1_epi8(0xf));
    return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b));
}

static void axpy_f32(int64_t n, int k, const float *a, const void *const *w, float *y)
{
    for (int64_t i = 0; i < n; i += 8) {
        if (n - i < 8) {
            for (int64_t j = i; j < n; j++)
                for (int r = 0; r < k; r++)
                    y[j] += a[r] * ((const float *)w[r])[j];
            break;
        }
        __m256 acc = _mm256_loadu_ps(y + i);
        for (int r = 0; r < k; r++)
            acc = _mm256_fmadd_ps(_mm256_set1_ps(a[r]), _mm256_loadu_ps((const float *)w[r] + i),
                                  acc);
        _mm256_storeu_ps(y + i, acc);
    }
}

static void axpy_f16(int64_t n, int k, const float *a, const void *const *w, float *y)
{
    for (int64_t i = 0; i < n; i += 8) {
        if (n - i < 8) {
            for (int64_t j = i; j < n; j++)
                for (int r = 0; r < k; r++)
                    y[j] += a[r] * half_to_f32(((const pi_f16 *)w[r])[j]);
            break;
        }
        __m256 acc = _mm256_loadu_ps(y + i);
        for (int r = 0; r < k; r++) {
            __m128i h = _mm_loadu_si128((const __m128i *)((const pi_f16 *)w[r] + i));
            acc = _mm256_fmadd_ps(_mm256_set1_ps(a[r]), _mm256_cvtph_ps(h), acc);
        }
        _mm256_storeu_ps(y + i, acc);
    }
}

static void axpy_q8_0(int64_t n, int k, const float *a, const void *const *w, float *y)
{
    for (int64_t b = 0; b < n / PI_QK; b++, y += PI_QK) {
        __m256 acc[4];
        for (int j = 0; j < 4; j++)
            acc[j] = _mm256_loadu_ps(y + 8 * j);
        for (int r = 0; r < k; r++) {
            const pi_block_q8_0 *blk = (const pi_block_q8_0 *)w[r] + b;
            __m256 s = _mm256_set1_ps(a[r] * half_to_f32(blk->d));
            for (int j = 0; j < 4; j++)
                acc[j] = _mm256_fmadd_ps(s, i8x8(blk->qs + 8 * j), acc[j]);
        }
        for (int j = 0; j < 4; j++)
            _mm256_storeu_ps(y + 8 * j, acc[j]);
    }
}

/* Q4_0 and Q4_1: element j < 16 is the low nibble of qs[j], element 16 + j
 * its high nibble; Q4_0 codes are offset by 8, Q4_1 values are d * q + m. */
static void axpy_q4(int64_t n, int k, const float *a, const void *const *w, float *y, int affine)
{
    for (int64_t b = 0; b < n / PI_QK; b++, y += PI_QK) {
        __m256 acc[4];
        for (int j = 0; j < 4; j++)
            acc[j] = _mm256_loadu_ps(y + 8 * j);
        for (int r = 0; r < k; r++) {
            float d, m;
            const uint8_t *qs = axpy_q4_block(w[r], b, affine, &d, &m);
            __m256 s = _mm256_set1_ps(a[r] * d), o = _mm256_set1_ps(a[r] * m);
            for (int j = 0; j < 4; j++) {
                __m256 q = u4x8(qs + 8 * (j & 1), j >> 1);
                acc[j] = _mm256_add_ps(_mm256_fmadd_ps(s, q, o), acc[j]);
            }
        }
        for (int j = 0; j < 4; j++)
            _mm256_storeu_ps(y + 8 * j, acc[j]);
    }
}

static void axpy_q4_0(int64_t n, int k, const float *a, const void *const *w, float *y)
{
    axpy_q4(n, k, a, w, y, 0);
}

static void axpy_q4_1(int64_t n, int k, const float *a, const void *const *w, float *y)
{
    axpy_q4(n, k, a, w, y, 1);
}

pi_axpy_fn pi_axpy_avx2(pi_type type)
{
    switch (type) {
    case PI_TYPE_F32: return axpy_f32;
    case PI_TYPE_F16: return axpy_f16;
    case PI_TYPE_Q8_0: return axpy_q8_0;
    case PI_TYPE_Q4_0: return axpy_q4_0;
    case PI_TYPE_Q4_1: return axpy_q4_1;
    default: return NULL;
    }
}
