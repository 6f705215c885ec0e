/*
 * train: the AVX2/FMA loss kernel (see pi_train_bce_row in train.h);
 * compiled with -mavx2 -mfma.
 *
 * exp and log are polynomials here, not libm calls: the loss of every
 * (token, neuron) pair is computed each epoch, and libm's scalar expf and
 * log1pf would cost as much as the matrix products.  exp(-|z|) is Cephes'
 * expf (range reduction by ln 2, degree-6 polynomial, relative error about
 * 1e-7); log(1 + e) for e in (0, 1] is 2 atanh(s), s = e / (2 + e) <= 1/3,
 * summed to s^13 (truncation below 2e-8).  The results differ from the
 * plain C version's by float rounding only.
 */
#include <float.h>
#include <immintrin.h>

#include "train.h"

static __m256 exp_neg(__m256 x) /* exp(-x), x >= 0 */
{
    __m256 t = _mm256_max_ps(_mm256_sub_ps(_mm256_setzero_ps(), x), _mm256_set1_ps(-87.0f));
    __m256 fx = _mm256_round_ps(_mm256_mul_ps(t, _mm256_set1_ps(1.44269504088896341f)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), t);
    r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i n = _mm256_add_epi32(_mm256_cvttps_epi32(fx), _mm256_set1_epi32(127));
    return _mm256_mul_ps(y, _mm256_castsi256_ps(_mm256_slli_epi32(n, 23)));
}

static __m256 log1p_unit(__m256 e) /* log(1 + e), 0 <= e <= 1 */
{
    __m256 s = _mm256_div_ps(e, _mm256_add_ps(e, _mm256_set1_ps(2.0f))), s2 = _mm256_mul_ps(s, s);
    __m256 y = _mm256_set1_ps(1.0f / 13);
    y = _mm256_fmadd_ps(y, s2, _mm256_set1_ps(1.0f / 11));
    y = _mm256_fmadd_ps(y, s2, _mm256_set1_ps(1.0f / 9));
    y = _mm256_fmadd_ps(y, s2, _mm256_set1_ps(1.0f / 7));
    y = _mm256_fmadd_ps(y, s2, _mm256_set1_ps(1.0f / 5));
    y = _mm256_fmadd_ps(y, s2, _mm256_set1_ps(1.0f / 3));
    y = _mm256_fmadd_ps(y, s2, _mm256_set1_ps(1.0f));
    return _mm256_mul_ps(_mm256_add_ps(s, s), y);
}

double pi_train_bce_row_avx2(int n, const float *act, float cut, int32_t last, float c0,
                             float c1, float scale, float *z)
{
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);
    const __m256 vcut = _mm256_set1_ps(cut), vc0 = _mm256_set1_ps(c0), vc1 = _mm256_set1_ps(c1);
    const __m256 vscale = _mm256_set1_ps(scale), big = _mm256_set1_ps(FLT_MAX);
    const __m256i after_last = _mm256_set1_epi32(last + 1), step = _mm256_set1_epi32(8);
    __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256d acc = _mm256_setzero_pd();
    int i = 0;
    for (; i + 8 <= n; i += 8, idx = _mm256_add_epi32(idx, step)) {
        __m256 m = _mm256_and_ps(_mm256_loadu_ps(act + i), absmask);
        m = _mm256_and_ps(m, _mm256_cmp_ps(m, big, _CMP_LE_OQ)); /* NaN, inf: 0 */
        __m256 tie = _mm256_and_ps(_mm256_cmp_ps(m, vcut, _CMP_EQ_OQ),
                                   _mm256_castsi256_ps(_mm256_cmpgt_epi32(after_last, idx)));
        __m256 y = _mm256_or_ps(_mm256_cmp_ps(m, vcut, _CMP_GT_OQ), tie);
        __m256 w = _mm256_blendv_ps(one, _mm256_fmadd_ps(vc1, m, vc0), y);
        __m256 zz = _mm256_loadu_ps(z + i), e = exp_neg(_mm256_and_ps(zz, absmask));
        __m256 r = _mm256_div_ps(one, _mm256_add_ps(one, e));
        __m256 p = _mm256_blendv_ps(_mm256_mul_ps(e, r), r, _mm256_cmp_ps(zz, zero, _CMP_GE_OQ));
        __m256 l = _mm256_sub_ps(_mm256_max_ps(zz, zero), _mm256_and_ps(y, zz));
        l = _mm256_mul_ps(w, _mm256_add_ps(l, log1p_unit(e)));
        acc = _mm256_add_pd(acc, _mm256_cvtps_pd(_mm256_castps256_ps128(l)));
        acc = _mm256_add_pd(acc, _mm256_cvtps_pd(_mm256_extractf128_ps(l, 1)));
        __m256 g = _mm256_mul_ps(w, _mm256_sub_ps(p, _mm256_and_ps(y, one)));
        _mm256_storeu_ps(z + i, _mm256_mul_ps(g, vscale));
    }
    __m128d h = _mm_add_pd(_mm256_castpd256_pd128(acc), _mm256_extractf128_pd(acc, 1));
    double loss = _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
    if (i < n)
        loss += pi_train_bce_row_scalar(n - i, act + i, cut, last - i, c0, c1, scale, z + i);
    return loss;
}
