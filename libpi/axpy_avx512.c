/* axpy: AVX-512 versions (see axpy.h): sixteen floats per instruction,
 * which halves the conversions that bound the AVX2 versions. */
#include <immintrin.h>

#include "axpy_impl.h"
#include "axpy_simd.h"

/* Sixteen int8 codes as floats. */
static inline __m512 i8x16(const int8_t *q)
{
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)q)));
}

static void axpy_q8_0(int64_t n, int k, const float *a, const void *const *w, float *y)
{
    for (int64_t b = 0; b < n / PI_QK; b++, y += PI_QK) {
        __m512 lo = _mm512_loadu_ps(y), hi = _mm512_loadu_ps(y + 16);
        for (int r = 0; r < k; r++) {
            const pi_block_q8_0 *blk = (const pi_block_q8_0 *)w[r] + b;
            __m512 s = _mm512_set1_ps(a[r] * half_to_f32(blk->d));
            lo = _mm512_fmadd_ps(s, i8x16(blk->qs), lo);
            hi = _mm512_fmadd_ps(s, i8x16(blk->qs + 16), hi);
        }
        _mm512_storeu_ps(y, lo);
        _mm512_storeu_ps(y + 16, hi);
    }
}

/* Q4_0 and Q4_1: elements 0..15 are the low nibbles of qs, 16..31 the high. */
static void axpy_q4(int64_t n, int k, const float *a, const void *const *w, float *y, int affine)
{
    for (int64_t b = 0; b < n / PI_QK; b++, y += PI_QK) {
        __m512 lo = _mm512_loadu_ps(y), hi = _mm512_loadu_ps(y + 16);
        for (int r = 0; r < k; r++) {
            float d, m;
            const uint8_t *qs = axpy_q4_block(w[r], b, affine, &d, &m);
            __m128i bytes = _mm_loadu_si128((const __m128i *)qs);
            __m128i mask = _mm_set1_epi8(0xf);
            __m512 ql = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(bytes, mask)));
            __m512 qh = _mm512_cvtepi32_ps(
                _mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(bytes, 4), mask)));
            __m512 s = _mm512_set1_ps(a[r] * d), o = _mm512_set1_ps(a[r] * m);
            lo = _mm512_add_ps(_mm512_fmadd_ps(s, ql, o), lo);
            hi = _mm512_add_ps(_mm512_fmadd_ps(s, qh, o), hi);
        }
        _mm512_storeu_ps(y, lo);
        _mm512_storeu_ps(y + 16, hi);
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

pi_axpy_fn pi_axpy_avx512(pi_type type)
{
    switch (type) {
    case PI_TYPE_Q8_0: return axpy_q8_0;
    case PI_TYPE_Q4_0: return axpy_q4_0;
    case PI_TYPE_Q4_1: return axpy_q4_1;
    default: return NULL;
    }
}
