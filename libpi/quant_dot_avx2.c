/*
 * quant_dot_avx2: AVX2 + FMA + F16C dot products, one per weight type; the
 * scalar kernels in quant_dot.c define what each must compute.
 *
 * Integer blocks all follow one pattern.  Weights are unpacked to unsigned
 * bytes and multiplied with the signed activation bytes by vpmaddubsw, which
 * adds adjacent products into int16 (never saturating here: the largest
 * pair is 2 * 63 * 128); vpmaddwd then adds pairs into int32, multiplying by
 * the sub-block scale on the way when the format has one.  Only after a
 * whole block is the int32 sum converted to float and scaled by d_w * d_a.
 * Offsets that make a weight signed (-8 for Q4_0, -32 for Q6_K...) are not
 * applied to the weights but subtracted as offset * sum(activations): per
 * block with a second vpmaddubsw for the legacy formats, from Q8_K's bsums
 * for the K-quants.
 *
 * The legacy formats have only 32 elements per block, so per-block overhead
 * decides their speed: they process blocks in pairs (one widening, one
 * conversion and one FMA per pair), read the f16 scales through a table
 * (loads instead of vector-port conversions), and keep two accumulators so
 * that consecutive FMAs do not wait on each other.  The K-quants amortise
 * their scales over 256 elements and are unrolled over a super-block.
 *
 * Q8 activations are assumed to lie in [-127, 127] where this file uses
 * vpsignb to make a signed weight unsigned (Q8_0 x Q8_0): the quantisers
 * never produce -128 there.
 */
#include "quant_dot_impl.h"

#include <immintrin.h>

static inline float hsum4_ps(__m128 s)
{
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float hsum_ps(__m256 v)
{
    return hsum4_ps(_mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1)));
}

/* Weights stream from DRAM once per token.  A pure load loop keeps enough
 * misses in flight to reach bandwidth, but with ~3 cycles of arithmetic per
 * 18-byte block the hardware prefetchers alone fall far behind (5.5 against
 * 12 GB/s for Q4_0 on one thread of the benchmark machine).  Prefetching
 * every line 2 KiB ahead (about DRAM latency times per-core bandwidth,
 * with margin) closes most of the gap and helps in cache too.  Rows of a
 * matrix are contiguous, so prefetching past a row's end is useful, and
 * prefetching past the matrix's end is harmless (prefetches never fault).
 * (The AVX-512 kernels' L2-plus-L1 prefetch was no faster here: these
 * kernels' arithmetic, not the misses in flight, is what limits them.) */
#define PREFETCH_BYTES 2048

static inline void prefetch_block(const void *p, int bytes)
{
    for (int off = 0; off < bytes; off += 64)
        _mm_prefetch((const char *)p + PREFETCH_BYTES + off, _MM_HINT_T0);
}

static inline __m256i loadu(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }

/* Sum adjacent int16 pairs into int32 and convert to float. */
static inline __m256 pairs_to_ps(__m256i x)
{
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(x, _mm256_set1_epi16(1)));
}

/* f16 -> f32 by table lookup for the per-block scales.  With F16C each
 * scalar conversion costs a register move and a two-uop vcvtph2ps on the
 * vector ports the integer work needs; a table read is a load, and
 * vbroadcastss from memory is a pure load too.  Filled once, before any
 * kernel can be handed out (pi_dot_avx2_init, called under quant_dot.c's
 * pthread_once), and read-only after; the AVX-512 kernels read it too. */
float pi_dot_f16_table[1 << 16];

void pi_dot_avx2_init(void)
{
    const __m128i step = _mm_setr_epi16(0, 1, 2, 3, 4, 5, 6, 7);
    for (uint32_t i = 0; i < (1u << 16); i += 8) {
        __m128i h = _mm_add_epi16(_mm_set1_epi16((short)i), step);
        _mm256_storeu_ps(pi_dot_f16_table + i, _mm256_cvtph_ps(h));
    }
}

static inline float f16(pi_f16 h) { return pi_dot_f16_table[h]; }

static inline __m256 bcast_f16(pi_f16 h) { return _mm256_broadcast_ss(&pi_dot_f16_table[h]); }

/* [f(h0) x4 | f(h1) x4]: one scale per 128-bit lane. */
static inline __m256 f16_pair(pi_f16 h0, pi_f16 h1)
{
    return _mm256_blend_ps(bcast_f16(h0), bcast_f16(h1), 0xf0);
}

/* ---- float weights against F32 activations ---------------------------- */

float pi_dot_f32_avx2(int64_t n, const void *vw, const void *va)
{
    const float *w = vw, *a = va;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(a + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8), _mm256_loadu_ps(a + i + 8), acc1);
        acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 16), _mm256_loadu_ps(a + i + 16), acc2);
        acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 24), _mm256_loadu_ps(a + i + 24), acc3);
    }
    for (; i + 8 <= n; i += 8)
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(a + i), acc0);
    float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
    for (; i < n; i++)
        sum += w[i] * a[i];
    return sum;
}

static inline __m256 load_f16x8(const pi_f16 *p)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

float pi_dot_f16_avx2(int64_t n, const void *vw, const void *va)
{
    const pi_f16 *w = vw;
    const float *a = va;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        acc0 = _mm256_fmadd_ps(load_f16x8(w + i), _mm256_loadu_ps(a + i), acc0);
        acc1 = _mm256_fmadd_ps(load_f16x8(w + i + 8), _mm256_loadu_ps(a + i + 8), acc1);
        acc2 = _mm256_fmadd_ps(load_f16x8(w + i + 16), _mm256_loadu_ps(a + i + 16), acc2);
        acc3 = _mm256_fmadd_ps(load_f16x8(w + i + 24), _mm256_loadu_ps(a + i + 24), acc3);
    }
    for (; i + 8 <= n; i += 8)
        acc0 = _mm256_fmadd_ps(load_f16x8(w + i), _mm256_loadu_ps(a + i), acc0);
    float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
    for (; i < n; i++)
        sum += f16(w[i]) * a[i];
    return sum;
}

/* bfloat16 is the top half of a float: widen and shift. */
static inline __m256 load_bf16x8(const pi_bf16 *p)
{
    __m256i x = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(x, 16));
}

float pi_dot_bf16_avx2(int64_t n, const void *vw, const void *va)
{
    const pi_bf16 *w = vw;
    const float *a = va;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        acc0 = _mm256_fmadd_ps(load_bf16x8(w + i), _mm256_loadu_ps(a + i), acc0);
        acc1 = _mm256_fmadd_ps(load_bf16x8(w + i + 8), _mm256_loadu_ps(a + i + 8), acc1);
        acc2 = _mm256_fmadd_ps(load_bf16x8(w + i + 16), _mm256_loadu_ps(a + i + 16), acc2);
        acc3 = _mm256_fmadd_ps(load_bf16x8(w + i + 24), _mm256_loadu_ps(a + i + 24), acc3);
    }
    for (; i + 8 <= n; i += 8)
        acc0 = _mm256_fmadd_ps(load_bf16x8(w + i), _mm256_loadu_ps(a + i), acc0);
    float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
    for (; i < n; i++) {
        uint32_t bits = (uint32_t)w[i] << 16;
        float x;
        memcpy(&x, &bits, 4);
        sum += x * a[i];
    }
    return sum;
}

/* ---- legacy 32-element blocks ----------------------------------------- */

/* Two blocks at a time, arranged [block 0 | block 1] by 128-bit lane: the
 * low lane of `lo` holds block 0's elements 0-15, the high lane block 1's,
 * and `hi` their elements 16-31.  Adding the lo and hi products leaves one
 * int16 vector per pair, so the int32 widening, the conversion and the FMA
 * happen once per two blocks, with a scale vector [s0 x4 | s1 x4]. */

static inline __m256i load_2x16(const void *p0, const void *p1)
{
    __m128i a = _mm_loadu_si128((const __m128i *)p0), b = _mm_loadu_si128((const __m128i *)p1);
    return _mm256_inserti128_si256(_mm256_castsi128_si256(a), b, 1);
}

/* Two blocks' packed nibbles (16 bytes each) -> lo and hi codes. */
static inline void nibbles_pair(const uint8_t *qs0, const uint8_t *qs1, __m256i *lo, __m256i *hi)
{
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    __m256i v = load_2x16(qs0, qs1);
    *lo = _mm256_and_si256(v, low4);
    *hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
}

/* Two blocks' Q5 fifth bits (32-bit qh each) -> 0x10 in the bytes of lo and
 * hi whose bit is set.  vpshufb gives each byte the qh byte holding its bit,
 * then each byte tests its own bit (j % 8). */
static inline void q5_bits_pair(const uint8_t *qh0, const uint8_t *qh1, __m256i *lo, __m256i *hi)
{
    const __m256i pick_lo = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                             0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    const __m256i pick_hi = _mm256_add_epi8(pick_lo, _mm256_set1_epi8(2));
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    const __m256i b4 = _mm256_set1_epi8(0x10);
    uint32_t h0, h1;
    memcpy(&h0, qh0, 4);
    memcpy(&h1, qh1, 4);
    __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi32((int)h0)),
                                        _mm_set1_epi32((int)h1), 1);
    __m256i l = _mm256_and_si256(_mm256_shuffle_epi8(v, pick_lo), bit);
    __m256i h = _mm256_and_si256(_mm256_shuffle_epi8(v, pick_hi), bit);
    *lo = _mm256_and_si256(_mm256_cmpeq_epi8(l, bit), b4);
    *hi = _mm256_and_si256(_mm256_cmpeq_epi8(h, bit), b4);
}

/* Unsigned codes lo/hi against signed activations: int16 pair sums of the
 * pair.  Codes are at most 31, so each int16 is at most 4 * 31 * 128. */
static inline __m256i pair_products(__m256i lo, __m256i hi, __m256i ylo, __m256i yhi)
{
    return _mm256_add_epi16(_mm256_maddubs_epi16(lo, ylo), _mm256_maddubs_epi16(hi, yhi));
}

/* acc + [s0 x4 | s1 x4] * (int16 pair sums widened). */
static inline __m256 pair_fma(__m256 acc, __m256 s, __m256i p16)
{
    return _mm256_fmadd_ps(s, pairs_to_ps(p16), acc);
}

/* A pair's scales d_w * d_a.  `two` is 0 for a lone last block, which then
 * stands in for the second block too, with scale 0. */
static inline __m256 pair_scale(pi_f16 w0, pi_f16 w1, pi_f16 a0, pi_f16 a1, int two)
{
    return _mm256_mul_ps(f16_pair(w0, two ? w1 : 0), f16_pair(a0, a1));
}

/* The loops: two pairs per step into two accumulators (so that FMAs do
 * not wait on each other), a last pair, then a lone last block as a pair
 * with itself.  accm0/accm1 collect Q4_1/Q5_1's minimum terms in lane 0. */
#define LEGACY_DOT(name, wtype, atype, pair)                                   \
    float name(int64_t n, const void *vw, const void *va)                      \
    {                                                                          \
        const wtype *w = vw;                                                   \
        const atype *a = va;                                                   \
        int64_t nb = n / PI_QK, b = 0;                                         \
        __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;                        \
        __m128 accm0 = _mm_setzero_ps(), accm1 = accm0;                        \
        for (; b + 4 <= nb; b += 4) {                                          \
            prefetch_block(w + b, 4 * sizeof *w);                              \
            acc0 = pair(acc0, &accm0, w + b, a + b, 1);                        \
            acc1 = pair(acc1, &accm1, w + b + 2, a + b + 2, 1);                \
        }                                                                      \
        for (; b + 2 <= nb; b += 2)                                            \
            acc0 = pair(acc0, &accm0, w + b, a + b, 1);                        \
        if (b < nb)                                                            \
            acc1 = pair(acc1, &accm1, w + b, a + b, 0);                        \
        __m128 m = _mm_add_ss(accm0, accm1);                                   \
        return hsum_ps(_mm256_add_ps(acc0, acc1)) + _mm_cvtss_f32(m);          \
    }

/* Q4_0: codes q - 8; the 8 comes off as 8 * (sum of activations). */
static inline __m256 pair_q4_0(__m256 acc, __m128 *accm, const pi_block_q4_0 *w,
                               const pi_block_q8_0 *a, int two)
{
    (void)accm;
    const pi_block_q4_0 *w1 = w + two;
    const pi_block_q8_0 *a1 = a + two;
    const __m256i eight = _mm256_set1_epi8(8);
    __m256i lo, hi;
    nibbles_pair(w->qs, w1->qs, &lo, &hi);
    __m256i ylo = load_2x16(a->qs, a1->qs), yhi = load_2x16(a->qs + 16, a1->qs + 16);
    __m256i p = _mm256_sub_epi16(pair_products(lo, hi, ylo, yhi), pair_products(eight, eight, ylo, yhi));
    return pair_fma(acc, pair_scale(w->d, w1->d, a->d, a1->d, two), p);
}

static inline __m256 pair_q5_0(__m256 acc, __m128 *accm, const pi_block_q5_0 *w,
                               const pi_block_q8_0 *a, int two)
{
    (void)accm;
    const pi_block_q5_0 *w1 = w + two;
    const pi_block_q8_0 *a1 = a + two;
    const __m256i sixteen = _mm256_set1_epi8(16);
    __m256i lo, hi, hlo, hhi;
    nibbles_pair(w->qs, w1->qs, &lo, &hi);
    q5_bits_pair(w->qh, w1->qh, &hlo, &hhi);
    lo = _mm256_or_si256(lo, hlo);
    hi = _mm256_or_si256(hi, hhi);
    __m256i ylo = load_2x16(a->qs, a1->qs), yhi = load_2x16(a->qs + 16, a1->qs + 16);
    __m256i p = _mm256_sub_epi16(pair_products(lo, hi, ylo, yhi),
                                 pair_products(sixteen, sixteen, ylo, yhi));
    return pair_fma(acc, pair_scale(w->d, w1->d, a->d, a1->d, two), p);
}

/* Q4_1/Q5_1: unsigned codes need no offset; the minimum's m * s terms go
 * to a separate scalar sum (the caller's accm). */
static inline __m128 min_terms(__m128 accm, pi_f16 m0, pi_f16 m1, pi_f16 s0, pi_f16 s1, int two)
{
    __m128 t = _mm_mul_ss(_mm_load_ss(&pi_dot_f16_table[m0]), _mm_load_ss(&pi_dot_f16_table[s0]));
    if (two) /* one add into accm per pair keeps its dependency chain short */
        t = _mm_fmadd_ss(_mm_load_ss(&pi_dot_f16_table[m1]), _mm_load_ss(&pi_dot_f16_table[s1]), t);
    return _mm_add_ss(accm, t);
}

/* Q4_1/Q5_1 once the pair's codes are unpacked. */
static inline __m256 pair_with_min(__m256 acc, __m128 *accm, __m256i lo, __m256i hi,
                                   const pi_f16 d[2], const pi_f16 m[2],
                                   const pi_block_q8_1 *a, int two)
{
    const pi_block_q8_1 *a1 = a + two;
    __m256i ylo = load_2x16(a->qs, a1->qs), yhi = load_2x16(a->qs + 16, a1->qs + 16);
    *accm = min_terms(*accm, m[0], m[1], a->s, a1->s, two);
    return pair_fma(acc, pair_scale(d[0], d[1], a->d, a1->d, two), pair_products(lo, hi, ylo, yhi));
}

static inline __m256 pair_q4_1(__m256 acc, __m128 *accm, const pi_block_q4_1 *w,
                               const pi_block_q8_1 *a, int two)
{
    const pi_block_q4_1 *w1 = w + two;
    __m256i lo, hi;
    nibbles_pair(w->qs, w1->qs, &lo, &hi);
    return pair_with_min(acc, accm, lo, hi, (pi_f16[2]){w->d, w1->d}, (pi_f16[2]){w->m, w1->m}, a, two);
}

static inline __m256 pair_q5_1(__m256 acc, __m128 *accm, const pi_block_q5_1 *w,
                               const pi_block_q8_1 *a, int two)
{
    const pi_block_q5_1 *w1 = w + two;
    __m256i lo, hi, hlo, hhi;
    nibbles_pair(w->qs, w1->qs, &lo, &hi);
    q5_bits_pair(w->qh, w1->qh, &hlo, &hhi);
    lo = _mm256_or_si256(lo, hlo);
    hi = _mm256_or_si256(hi, hhi);
    return pair_with_min(acc, accm, lo, hi, (pi_f16[2]){w->d, w1->d}, (pi_f16[2]){w->m, w1->m}, a, two);
}

LEGACY_DOT(pi_dot_q4_0_avx2, pi_block_q4_0, pi_block_q8_0, pair_q4_0)
LEGACY_DOT(pi_dot_q5_0_avx2, pi_block_q5_0, pi_block_q8_0, pair_q5_0)
LEGACY_DOT(pi_dot_q4_1_avx2, pi_block_q4_1, pi_block_q8_1, pair_q4_1)
LEGACY_DOT(pi_dot_q5_1_avx2, pi_block_q5_1, pi_block_q8_1, pair_q5_1)

/* Q8_0: signed codes on both sides; vpsignb moves the weight's sign onto
 * the activation (exact, as activations are never -128).  Blocks are 34
 * bytes, so one block per step is fast enough. */
static inline __m256 block_q8_0(__m256 acc, const pi_block_q8_0 *w, const pi_block_q8_0 *a)
{
    __m256i x = loadu(w->qs), y = loadu(a->qs);
    __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
    __m256 s = _mm256_mul_ps(bcast_f16(w->d), bcast_f16(a->d));
    return _mm256_fmadd_ps(s, pairs_to_ps(p), acc);
}

float pi_dot_q8_0_avx2(int64_t n, const void *vw, const void *va)
{
    const pi_block_q8_0 *w = vw, *a = va;
    int64_t nb = n / PI_QK, b = 0;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
    for (; b + 2 <= nb; b += 2) {
        prefetch_block(w + b, 2 * sizeof *w);
        acc0 = block_q8_0(acc0, w + b, a + b);
        acc1 = block_q8_0(acc1, w + b + 1, a + b + 1);
    }
    if (b < nb)
        acc0 = block_q8_0(acc0, w + b, a + b);
    return hsum_ps(_mm256_add_ps(acc0, acc1));
}

/* ---- K-quants against Q8_K --------------------------------------------- */

/* vpshufb controls spreading one int16 of each 128-bit lane over the lane:
 * k_same[j] element j in both lanes (a 32-element sub-block with one
 * scale), k_split[g] element 2g in the low lane and 2g+1 in the high lane
 * (a 32-element group whose halves have 16-element scales).  Constant
 * tables, so each use is a vpshufb with a memory operand. */
#define PAIR8(a, b) a, b, a, b, a, b, a, b, a, b, a, b, a, b, a, b
#define SAME(j) {PAIR8(2 * (j), 2 * (j) + 1), PAIR8(2 * (j), 2 * (j) + 1)}
#define SPLIT(g) {PAIR8(4 * (g), 4 * (g) + 1), PAIR8(4 * (g) + 2, 4 * (g) + 3)}
static _Alignas(32) const uint8_t k_same[8][32] = {
    SAME(0), SAME(1), SAME(2), SAME(3), SAME(4), SAME(5), SAME(6), SAME(7),
};
static _Alignas(32) const uint8_t k_split[4][32] = {SPLIT(0), SPLIT(1), SPLIT(2), SPLIT(3)};

static inline __m256i spread(const uint8_t ctl[32], __m256i scales)
{
    return _mm256_shuffle_epi8(scales, _mm256_load_si256((const __m256i *)ctl));
}

/* 16 scales as int16 -> each 8-scale half broadcast to both lanes. */
static inline void scales_by_half(__m256i sc16, __m256i out[2])
{
    out[0] = _mm256_permute4x64_epi64(sc16, 0x44);
    out[1] = _mm256_permute4x64_epi64(sc16, 0xee);
}

/* acc + d * (int32 lanes as float). */
static inline __m256 scale_add(__m256 acc, float d, __m256i sumi)
{
    return _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
}

/* One 32-element group with two 16-element scales: codes q against y. */
static inline __m256i group16(__m256i q, const int8_t *y, __m256i half_sc, int g)
{
    __m256i p = _mm256_maddubs_epi16(q, loadu(y));
    return _mm256_madd_epi16(p, spread(k_split[g], half_sc));
}

/* Q2_K and Q3_K 2-bit codes: group k of a 128-element half is bits 2k of
 * each byte of the half's 32 bytes. */
static inline __m256i crumbs(__m256i qv, int k)
{
    return _mm256_and_si256(_mm256_srli_epi16(qv, 2 * k), _mm256_set1_epi8(3));
}

float pi_dot_q2_k_avx2(int64_t n, const void *vw, const void *va)
{
    const pi_block_q2_K *w = vw;
    const pi_block_q8_K *a = va;
    const __m128i low4 = _mm_set1_epi8(0x0f);
    __m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / PI_QK_K; b++) {
        prefetch_block(w + b, sizeof *w);
        __m128i s8 = _mm_loadu_si128((const __m128i *)w[b].scales);
        __m256i sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(s8, low4));
        __m256i mn16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(s8, 4), low4));
        accm = scale_add(accm, f16(w[b].dmin) * a[b].d, _mm256_madd_epi16(mn16, loadu(a[b].bsums)));

        __m256i hs[2];
        scales_by_half(sc16, hs);
        const int8_t *y = a[b].qs;
        __m256i q0 = loadu(w[b].qs), q1 = loadu(w[b].qs + 32);
        __m256i s0 = _mm256_add_epi32(group16(crumbs(q0, 0), y, hs[0], 0),
                                      group16(crumbs(q0, 1), y + 32, hs[0], 1));
        __m256i s1 = _mm256_add_epi32(group16(crumbs(q0, 2), y + 64, hs[0], 2),
                                      group16(crumbs(q0, 3), y + 96, hs[0], 3));
        s0 = _mm256_add_epi32(s0, group16(crumbs(q1, 0), y + 128, hs[1], 0));
        s1 = _mm256_add_epi32(s1, group16(crumbs(q1, 1), y + 160, hs[1], 1));
        s0 = _mm256_add_epi32(s0, group16(crumbs(q1, 2), y + 192, hs[1], 2));
        s1 = _mm256_add_epi32(s1, group16(crumbs(q1, 3), y + 224, hs[1], 3));
        acc = scale_add(acc, f16(w[b].d) * a[b].d, _mm256_add_epi32(s0, s1));
    }
    return hsum_ps(acc) - hsum_ps(accm);
}

/* Q3_K: codes q2 + 4*hbit are unsigned; the -4 comes off as 4 * scale *
 * bsum.  Group g's high bit is bit g of each hmask byte, moved to bit 2. */
static inline __m256i q3_codes(__m256i qv, __m256i hm, int k, int g)
{
    __m256i hb = g <= 2 ? _mm256_slli_epi16(hm, 2 - g) : _mm256_srli_epi16(hm, g - 2);
    return _mm256_or_si256(crumbs(qv, k), _mm256_and_si256(hb, _mm256_set1_epi8(4)));
}

float pi_dot_q3_k_avx2(int64_t n, const void *vw, const void *va)
{
    const pi_block_q3_K *w = vw;
    const pi_block_q8_K *a = va;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / PI_QK_K; b++) {
        prefetch_block(w + b, sizeof *w);
        uint32_t words[4];
        pi_q3_k_scale_words(w[b].scales, words);
        __m128i s8 = _mm_setr_epi32((int)words[0], (int)words[1], (int)words[2], (int)words[3]);
        __m256i sc16 = _mm256_cvtepi8_epi16(_mm_sub_epi8(s8, _mm_set1_epi8(32)));
        __m256i offs = _mm256_slli_epi32(_mm256_madd_epi16(sc16, loadu(a[b].bsums)), 2);

        __m256i hs[2];
        scales_by_half(sc16, hs);
        const int8_t *y = a[b].qs;
        __m256i hm = loadu(w[b].hmask), q0 = loadu(w[b].qs), q1 = loadu(w[b].qs + 32);
        __m256i s0 = _mm256_add_epi32(group16(q3_codes(q0, hm, 0, 0), y, hs[0], 0),
                                      group16(q3_codes(q0, hm, 1, 1), y + 32, hs[0], 1));
        __m256i s1 = _mm256_add_epi32(group16(q3_codes(q0, hm, 2, 2), y + 64, hs[0], 2),
                                      group16(q3_codes(q0, hm, 3, 3), y + 96, hs[0], 3));
        s0 = _mm256_add_epi32(s0, group16(q3_codes(q1, hm, 0, 4), y + 128, hs[1], 0));
        s1 = _mm256_add_epi32(s1, group16(q3_codes(q1, hm, 1, 5), y + 160, hs[1], 1));
        s0 = _mm256_add_epi32(s0, group16(q3_codes(q1, hm, 2, 6), y + 192, hs[1], 2));
        s1 = _mm256_add_epi32(s1, group16(q3_codes(q1, hm, 3, 7), y + 224, hs[1], 3));
        acc = scale_add(acc, f16(w[b].d) * a[b].d, _mm256_sub_epi32(_mm256_add_epi32(s0, s1), offs));
    }
    return hsum_ps(acc);
}

/* Q4_K/Q5_K: 32 bytes of qs hold sub-blocks 2c (low nibbles) and 2c+1
 * (high nibbles); each sub-block has one scale.  For Q5_K, the fifth bit
 * of sub-block s is bit s of each qh byte, moved to bit 4. */
static inline __m256i q5_k_bit(__m256i qh, int s)
{
    __m256i v = s <= 4 ? _mm256_slli_epi16(qh, 4 - s) : _mm256_srli_epi16(qh, s - 4);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

static inline __m256i q45_k_chunk(const uint8_t *qs, const __m256i *qh, const int8_t *y,
                                  __m256i sc, int c)
{
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    __m256i q = loadu(qs + 32 * c);
    __m256i lo = _mm256_and_si256(q, low4);
    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
    if (qh) {
        lo = _mm256_or_si256(lo, q5_k_bit(*qh, 2 * c));
        hi = _mm256_or_si256(hi, q5_k_bit(*qh, 2 * c + 1));
    }
    __m256i plo = _mm256_maddubs_epi16(lo, loadu(y + 64 * c));
    __m256i phi = _mm256_maddubs_epi16(hi, loadu(y + 64 * c + 32));
    plo = _mm256_madd_epi16(plo, spread(k_same[2 * c], sc));
    phi = _mm256_madd_epi16(phi, spread(k_same[2 * c + 1], sc));
    return _mm256_add_epi32(plo, phi);
}

/* Minimums: sum over sub-blocks s of mn[s] * (bsum[2s] + bsum[2s+1]), as
 * 4 int32 partial sums. */
static inline __m128i q45_k_mins(__m128i mn16, const int16_t *bsums)
{
    __m128i lo = _mm_loadu_si128((const __m128i *)bsums);
    __m128i hi = _mm_loadu_si128((const __m128i *)(bsums + 8));
    return _mm_madd_epi16(mn16, _mm_hadd_epi16(lo, hi));
}

/* One super-block; qh is NULL for Q4_K. */
static inline void q45_k_block(pi_f16 d, pi_f16 dmin, const uint8_t *scales, const uint8_t *qs,
                               const uint8_t *qh, const pi_block_q8_K *a, __m256 *acc, __m128 *accm)
{
    uint32_t words[4];
    pi_q4_k_scale_words(scales, words);
    __m128i s8 = _mm_setr_epi32((int)words[0], (int)words[1], (int)words[2], (int)words[3]);
    __m256i smn = _mm256_cvtepu8_epi16(s8); /* scales in the low lane, mins in the high */
    __m128i mins = q45_k_mins(_mm256_extracti128_si256(smn, 1), a->bsums);
    *accm = _mm_fmadd_ps(_mm_set1_ps(f16(dmin) * a->d), _mm_cvtepi32_ps(mins), *accm);

    __m256i sc = _mm256_permute4x64_epi64(smn, 0x44);
    __m256i hv = qh ? loadu(qh) : _mm256_setzero_si256();
    const __m256i *h = qh ? &hv : NULL;
    __m256i s0 = _mm256_add_epi32(q45_k_chunk(qs, h, a->qs, sc, 0), q45_k_chunk(qs, h, a->qs, sc, 1));
    __m256i s1 = _mm256_add_epi32(q45_k_chunk(qs, h, a->qs, sc, 2), q45_k_chunk(qs, h, a->qs, sc, 3));
    *acc = scale_add(*acc, f16(d) * a->d, _mm256_add_epi32(s0, s1));
}

float pi_dot_q4_k_avx2(int64_t n, const void *vw, const void *va)
{
    const pi_block_q4_K *w = vw;
    const pi_block_q8_K *a = va;
    __m256 acc = _mm256_setzero_ps();
    __m128 accm = _mm_setzero_ps();
    for (int64_t b = 0; b < n / PI_QK_K; b++) {
        prefetch_block(w + b, sizeof *w);
        q45_k_block(w[b].d, w[b].dmin, w[b].scales, w[b].qs, NULL, &a[b], &acc, &accm);
    }
    return hsum_ps(acc) - hsum4_ps(accm);
}

float pi_dot_q5_k_avx2(int64_t n, const void *vw, const void *va)
{
    const pi_block_q5_K *w = vw;
    const pi_block_q8_K *a = va;
    __m256 acc = _mm256_setzero_ps();
    __m128 accm = _mm_setzero_ps();
    for (int64_t b = 0; b < n / PI_QK_K; b++) {
        prefetch_block(w + b, sizeof *w);
        q45_k_block(w[b].d, w[b].dmin, w[b].scales, w[b].qs, w[b].qh, &a[b], &acc, &accm);
    }
    return hsum_ps(acc) - hsum4_ps(accm);
}

/* Q6_K: per 128-element half, two 32-byte loads of low nibbles and one of
 * 2-bit highs make four 32-element groups; the -32 offset comes off via
 * bsums.  Group g's highs are bits 2g of each qh byte, moved to bits 4-5. */
static inline __m256i q6_half(const uint8_t *ql, const uint8_t *qh, const int8_t *y, __m256i hs)
{
    const __m256i low4 = _mm256_set1_epi8(0x0f), b45 = _mm256_set1_epi8(0x30);
    __m256i l0 = loadu(ql), l1 = loadu(ql + 32), hq = loadu(qh);
    __m256i q0 = _mm256_or_si256(_mm256_and_si256(l0, low4), _mm256_and_si256(_mm256_slli_epi16(hq, 4), b45));
    __m256i q1 = _mm256_or_si256(_mm256_and_si256(l1, low4), _mm256_and_si256(_mm256_slli_epi16(hq, 2), b45));
    __m256i q2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low4), _mm256_and_si256(hq, b45));
    __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low4),
                                 _mm256_and_si256(_mm256_srli_epi16(hq, 2), b45));
    __m256i s0 = _mm256_add_epi32(group16(q0, y, hs, 0), group16(q1, y + 32, hs, 1));
    __m256i s1 = _mm256_add_epi32(group16(q2, y + 64, hs, 2), group16(q3, y + 96, hs, 3));
    return _mm256_add_epi32(s0, s1);
}

float pi_dot_q6_k_avx2(int64_t n, const void *vw, const void *va)
{
    const pi_block_q6_K *w = vw;
    const pi_block_q8_K *a = va;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / PI_QK_K; b++) {
        prefetch_block(w + b, sizeof *w);
        __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)w[b].scales));
        __m256i offs = _mm256_slli_epi32(_mm256_madd_epi16(sc16, loadu(a[b].bsums)), 5);
        __m256i hs[2];
        scales_by_half(sc16, hs);
        __m256i s = _mm256_add_epi32(q6_half(w[b].ql, w[b].qh, a[b].qs, hs[0]),
                                     q6_half(w[b].ql + 64, w[b].qh + 32, a[b].qs + 128, hs[1]));
        acc = scale_add(acc, f16(w[b].d) * a[b].d, _mm256_sub_epi32(s, offs));
    }
    return hsum_ps(acc);
}
