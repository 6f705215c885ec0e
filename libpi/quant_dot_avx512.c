/*
 * quant_dot_avx512: AVX-512 (F, BW, VL, VNNI) dot products for the weight
 * types models use most, single (pi_vec_dot_fn) and batched
 * (pi_vec_dot_nx_fn); the scalar kernels in quant_dot.c define what each
 * must compute.
 *
 * VNNI's vpdpbusd multiplies unsigned bytes by signed bytes and adds each
 * four products into an int32 lane, which replaces AVX2's vpmaddubsw +
 * vpmaddwd pair.  The weight codes are the unsigned side: 4- and 5-bit
 * codes are unsigned already, and a signed code q gets the offset K that
 * makes it so (q + 8 for Q4_0, + 16 for Q5_0, q ^ 0x80 = q + 128 for Q8_0),
 * with K * sum(activations) subtracted in int32 before any rounding.  (The
 * single Q8_0 kernel instead moves the sign onto the activation, as AVX2's
 * does.)  The K-quants are described with their kernels below.
 *
 * The legacy types (32-element blocks) put their cost in per-block work:
 * unpacking, a scale per block, turning per-block int32 sums into floats.
 * Two layouts keep it small:
 *
 *   batched: activations packed (quant_dot_impl.h) so that a chunk of four
 *   blocks is one 512-bit register per half: the low nibbles of four
 *   weight blocks side by side meet elements 0-15 of four activation
 *   blocks, the high nibbles elements 16-31, and each 128-bit lane of the
 *   result holds one block.  Weights are unpacked once per chunk for up to
 *   four activation rows; a transpose of the four rows' results leaves lane
 *   4k + t = block k of row t, which meets a vector of scales loaded
 *   straight from the packed activations.  One row alone (decode) skips the
 *   transpose and scales each lane.
 *
 *   single: the plain activation layout; eight blocks per step as four
 *   pairs, each pair's lanes reduced to one int32 sum per block, the scales
 *   gathered and converted eight at a time.
 *
 * Only kernels that beat AVX2's on the benchmark machine are registered
 * (quant_dot.c); bench/RESULTS.md has the figures.
 */
#include "quant_dot_impl.h"

#include <immintrin.h>

/* The kernels are written once over the weight type and specialised by
 * constant arguments, which only works if every helper is inlined. */
#define INLINE static inline __attribute__((always_inline))
/* Loops over a few registers must be unrolled, or the registers go through
 * the stack. */
#define UNROLL _Pragma("GCC unroll 8")

/* Weights stream from memory once per token, and the kernels' arithmetic
 * no longer hides the latency the hardware prefetchers leave: prefetching
 * into L2 far ahead (keeping many misses in flight) and into L1 shortly
 * before use reads weights from DRAM at about 93% of the streaming
 * bandwidth on one core of the benchmark machine, against 78% with a
 * single L1 prefetch 2 KiB ahead.  Prefetches never fault, so running past
 * a row or the matrix is harmless. */
#define PREFETCH_FAR 8192
#define PREFETCH_NEAR 1024

INLINE void prefetch(const void *p, int bytes)
{
    for (int off = 0; off < bytes; off += 64) {
        _mm_prefetch((const char *)p + PREFETCH_FAR + off, _MM_HINT_T1);
        _mm_prefetch((const char *)p + PREFETCH_NEAR + off, _MM_HINT_T0);
    }
}

INLINE __mmask64 bytes_mask(int n)
{
    return n >= 64 ? ~(__mmask64)0 : n <= 0 ? 0 : ((__mmask64)1 << n) - 1;
}

/* lane 4k + i <- element k: spreads four per-block values over the blocks'
 * 128-bit lanes; the second half does the same for elements 4-7. */
INLINE __m512i spread_idx(int base)
{
    return _mm512_setr_epi32(base, base, base, base, base + 1, base + 1, base + 1, base + 1,
                             base + 2, base + 2, base + 2, base + 2, base + 3, base + 3, base + 3,
                             base + 3);
}

/* Word indexes for vpermw/vpermt2w, which pick each chunk's f16 scales
 * (and Q5's qh) out of its bytes: words 0-3 the four blocks' d, then Q4_1's
 * four m, or Q5_0's four qh as word pairs (Q5_1: d, m, qh).  Tables, as
 * GCC 12 has no _mm512_setr_epi16. */
static const uint16_t k_q4_1_dm[32] = {0, 10, 20, 30, 1, 11, 21, 31};
static const uint16_t k_q4_0_d[32] = {0, 9, 18, 27};
static const uint16_t k_q5_0_dqh[32] = {0, 11, 22, 33, 1, 2, 12, 13, 23, 24, 34, 35};
static const uint16_t k_q5_1_dmqh[32] = {0, 12, 24, 36, 1,  13, 25, 37,
                                         2, 3,  14, 15, 26, 27, 38, 39};
static const uint16_t k_q8_0_d[32] = {0, 17, 34, 51};

INLINE __m512i words(const uint16_t w[32]) { return _mm512_loadu_si512(w); }

/* ---- unpacking a chunk of four legacy weight blocks -------------------- */

/* Codes of up to four blocks, block k in 128-bit lane k: lo holds the codes
 * of elements 0-15, hi of elements 16-31, both unsigned.  dm holds the four
 * scales as floats in elements 0-3 and, for Q4_1/Q5_1, the minimums in 4-7.
 * Blocks k >= r are left with codes of another block (or none) and scale 0,
 * and meet zero activations. */
typedef struct {
    __m512i lo, hi;
    __m256 dm;
} wchunk;

/* Four halves at the given byte offsets (even, < 128) of a chunk of `size`
 * bytes, as floats. */
INLINE __m128 chunk_halves(const uint8_t *p, int size, __m512i idx)
{
    __m512i z0 = _mm512_maskz_loadu_epi8(bytes_mask(size), p);
    __m512i z1 = _mm512_maskz_loadu_epi8(bytes_mask(size - 64), p + 64);
    return _mm_cvtph_ps(_mm512_castsi512_si128(_mm512_permutex2var_epi16(z0, idx, z1)));
}

/* 16 bytes at p + k * stride into lane k, for k < r. */
INLINE __m512i lanes16(const uint8_t *p, int stride, int r)
{
    __m512i v = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)p));
    if (r > 1)
        v = _mm512_mask_broadcast_i32x4(v, 0x00f0, _mm_loadu_si128((const __m128i *)(p + stride)));
    if (r > 2)
        v = _mm512_mask_broadcast_i32x4(v, 0x0f00, _mm_loadu_si128((const __m128i *)(p + 2 * stride)));
    if (r > 3)
        v = _mm512_mask_broadcast_i32x4(v, 0xf000, _mm_loadu_si128((const __m128i *)(p + 3 * stride)));
    return v;
}

INLINE void split_nibbles(__m512i q, wchunk *c)
{
    const __m512i low4 = _mm512_set1_epi8(0x0f);
    c->lo = _mm512_and_si512(q, low4);
    c->hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), low4);
}

/* Q4_1: 20-byte blocks, so the four blocks' qs are dword-aligned and one
 * two-register permute gathers them. */
INLINE wchunk chunk_q4_1(const pi_block_q4_1 *w, int r)
{
    const uint8_t *p = (const uint8_t *)w;
    const __m512i qs_idx = _mm512_setr_epi32(1, 2, 3, 4, 6, 7, 8, 9, 11, 12, 13, 14, 28, 29, 30, 31);
    const __m512i dm_idx = words(k_q4_1_dm);
    __m512i z0, z1;
    if (r == 4) {
        z0 = _mm512_loadu_si512(p);
        z1 = _mm512_loadu_si512(p + 16);
    } else {
        z0 = _mm512_maskz_loadu_epi8(bytes_mask(20 * r), p);
        z1 = _mm512_maskz_loadu_epi8(bytes_mask(20 * r - 16), p + 16);
    }
    wchunk c;
    split_nibbles(_mm512_permutex2var_epi32(z0, qs_idx, z1), &c);
    c.dm = _mm256_cvtph_ps(_mm512_castsi512_si128(_mm512_permutexvar_epi16(dm_idx, z0)));
    return c;
}

INLINE wchunk chunk_q4_0(const pi_block_q4_0 *w, int r)
{
    const uint8_t *p = (const uint8_t *)w;
    const __m512i d_idx = words(k_q4_0_d);
    wchunk c;
    split_nibbles(lanes16(p + 2, sizeof *w, r), &c);
    c.dm = _mm256_castps128_ps256(chunk_halves(p, (int)sizeof *w * r, d_idx));
    return c;
}

/* Q5_0: the fifth bits of block k are its 32-bit qh, here broadcast over
 * lane k; vpshufb gives each byte the qh byte holding its bit (bytes 0-1
 * for elements 0-15, 2-3 for 16-31), then each byte tests its own bit. */
INLINE __m512i q5_bits(__m512i qh, int half)
{
    const __m512i pick = _mm512_set_epi64(0x0101010101010101ll, 0, 0x0101010101010101ll, 0,
                                          0x0101010101010101ll, 0, 0x0101010101010101ll, 0);
    const __m512i bit = _mm512_set1_epi64((long long)0x8040201008040201ull);
    __m512i sel = _mm512_add_epi8(pick, _mm512_set1_epi8((char)(2 * half)));
    __mmask64 set = _mm512_test_epi8_mask(_mm512_shuffle_epi8(qh, sel), bit);
    return _mm512_maskz_mov_epi8(set, _mm512_set1_epi8(0x10));
}

/* One permute of the chunk's first 128 bytes collects the four d (words
 * 0-3) and the four qh (dwords 2-5). */
INLINE wchunk chunk_q5_0(const pi_block_q5_0 *w, int r)
{
    const uint8_t *p = (const uint8_t *)w;
    const __m512i idx = words(k_q5_0_dqh);
    int size = (int)sizeof *w * r;
    __m512i z0 = _mm512_maskz_loadu_epi8(bytes_mask(size), p);
    __m512i z1 = _mm512_maskz_loadu_epi8(bytes_mask(size - 64), p + 64);
    __m512i f = _mm512_permutex2var_epi16(z0, idx, z1);
    __m512i qh = _mm512_permutexvar_epi32(spread_idx(2), f);
    wchunk c;
    split_nibbles(lanes16(p + 6, sizeof *w, r), &c);
    c.lo = _mm512_or_si512(c.lo, q5_bits(qh, 0));
    c.hi = _mm512_or_si512(c.hi, q5_bits(qh, 1));
    c.dm = _mm256_castps128_ps256(_mm_cvtph_ps(_mm512_castsi512_si128(f)));
    return c;
}

INLINE wchunk chunk_q5_1(const pi_block_q5_1 *w, int r)
{
    const uint8_t *p = (const uint8_t *)w;
    const __m512i idx = words(k_q5_1_dmqh);
    int size = (int)sizeof *w * r;
    __m512i z0 = _mm512_maskz_loadu_epi8(bytes_mask(size), p);
    __m512i z1 = _mm512_maskz_loadu_epi8(bytes_mask(size - 64), p + 64);
    __m512i f = _mm512_permutex2var_epi16(z0, idx, z1);
    __m512i qh = _mm512_permutexvar_epi32(spread_idx(4), f);
    wchunk c;
    split_nibbles(lanes16(p + 8, sizeof *w, r), &c);
    c.lo = _mm512_or_si512(c.lo, q5_bits(qh, 0));
    c.hi = _mm512_or_si512(c.hi, q5_bits(qh, 1));
    c.dm = _mm256_cvtph_ps(_mm512_castsi512_si128(f));
    return c;
}

INLINE wchunk chunk_q8_0(const pi_block_q8_0 *w, int r)
{
    const uint8_t *p = (const uint8_t *)w;
    const __m512i d_idx = words(k_q8_0_d);
    const __m512i sign = _mm512_set1_epi8((char)0x80);
    /* blocks 0,1 and 2,3 as two registers of whole blocks, then their
     * 128-bit halves regrouped into elements 0-15 and 16-31 */
    __m512i b01 = _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(p + 2)));
    __m512i b23 = _mm512_setzero_si512();
    if (r > 1)
        b01 = _mm512_inserti64x4(b01, _mm256_loadu_si256((const __m256i *)(p + 36)), 1);
    if (r > 2)
        b23 = _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(p + 70)));
    if (r > 3)
        b23 = _mm512_inserti64x4(b23, _mm256_loadu_si256((const __m256i *)(p + 104)), 1);
    wchunk c;
    c.lo = _mm512_xor_si512(_mm512_shuffle_i64x2(b01, b23, _MM_SHUFFLE(2, 0, 2, 0)), sign);
    c.hi = _mm512_xor_si512(_mm512_shuffle_i64x2(b01, b23, _MM_SHUFFLE(3, 1, 3, 1)), sign);
    c.dm = _mm256_castps128_ps256(chunk_halves(p, (int)sizeof *w * r, d_idx));
    return c;
}

/* ---- batched kernels for the legacy types ------------------------------ */

/* Activation codes of row t of a packed chunk with r blocks. */
INLINE __m512i act_lo(const uint8_t *chunk, int r, int t)
{
    const uint8_t *p = chunk + 32 * r * t;
    return r == 4 ? _mm512_loadu_si512(p) : _mm512_maskz_loadu_epi8(bytes_mask(16 * r), p);
}

INLINE __m512i act_hi(const uint8_t *chunk, int r, int t)
{
    const uint8_t *p = chunk + 32 * r * t + 16 * r;
    return r == 4 ? _mm512_loadu_si512(p) : _mm512_maskz_loadu_epi8(bytes_mask(16 * r), p);
}

INLINE __m512i chunk_dot(const wchunk *c, __m512i ylo, __m512i yhi)
{
    return _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), c->lo, ylo), c->hi, yhi);
}

/* The per-type parts, as flags the compiler folds: `min` for Q4_1/Q5_1
 * (s times the weight minimum), `off` for the types with a code offset. */
#define KIND_MIN 1
#define KIND_OFF 2

INLINE wchunk load_chunk(pi_type type, const void *w, int64_t b, int r)
{
    switch (type) {
    case PI_TYPE_Q4_0: return chunk_q4_0((const pi_block_q4_0 *)w + b, r);
    case PI_TYPE_Q5_0: return chunk_q5_0((const pi_block_q5_0 *)w + b, r);
    case PI_TYPE_Q5_1: return chunk_q5_1((const pi_block_q5_1 *)w + b, r);
    case PI_TYPE_Q8_0: return chunk_q8_0((const pi_block_q8_0 *)w + b, r);
    default: return chunk_q4_1((const pi_block_q4_1 *)w + b, r);
    }
}

INLINE int block_bytes(pi_type type)
{
    switch (type) {
    case PI_TYPE_Q4_0: return sizeof(pi_block_q4_0);
    case PI_TYPE_Q5_0: return sizeof(pi_block_q5_0);
    case PI_TYPE_Q5_1: return sizeof(pi_block_q5_1);
    case PI_TYPE_Q8_0: return sizeof(pi_block_q8_0);
    default: return sizeof(pi_block_q4_1);
    }
}

/* log2 of the offset that makes a signed code unsigned (see the top);
 * the Q8_1 types (KIND_MIN) have none. */
INLINE int offset_shift(pi_type type)
{
    return type == PI_TYPE_Q4_0 ? 3 : type == PI_TYPE_Q5_0 ? 4 : 7;
}

/* One activation row (decode): no transpose; lane 4k + i holds a quarter of
 * block k's sum and gets block k's scale. */
INLINE void nx1_chunk(pi_type type, int kind, const void *w, int64_t b, const uint8_t *chunk,
                      int r, __m512 *acc, __m256 *accm)
{
    wchunk c = load_chunk(type, w, b, r);
    __m512i ylo = act_lo(chunk, r, 0), yhi = act_hi(chunk, r, 0);
    __m512i p = chunk_dot(&c, ylo, yhi);
    if (kind == KIND_OFF) {
        /* The offset comes off each lane's own partial sum, so that every
         * lane holds an exact share of the block's dot product: taking it
         * from one lane would leave the others with large terms that cancel
         * only after rounding. */
        __m512i k = _mm512_set1_epi8((char)(1 << offset_shift(type)));
        __m512i off = _mm512_dpbusd_epi32(_mm512_setzero_si512(), k, ylo);
        p = _mm512_sub_epi32(p, _mm512_dpbusd_epi32(off, k, yhi));
    }
    const float *d = (const float *)(chunk + 32 * r);
    __m256 prod;
    __mmask8 m = (__mmask8)((1 << r) - 1);
    if (kind == KIND_MIN) { /* d_a in 0-3, s in 4-7 */
        __m256 da = r == 4 ? _mm256_loadu_ps(d)
                           : _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_maskz_loadu_ps(m, d)),
                                                  _mm_maskz_loadu_ps(m, d + r), 1);
        prod = _mm256_mul_ps(c.dm, da);
        *accm = _mm256_add_ps(*accm, prod);
    } else {
        __m128 da = r == 4 ? _mm_loadu_ps(d) : _mm_maskz_loadu_ps(m, d);
        prod = _mm256_castps128_ps256(_mm_mul_ps(_mm256_castps256_ps128(c.dm), da));
    }
    __m512 s = _mm512_permutexvar_ps(spread_idx(0), _mm512_castps256_ps512(prod));
    *acc = _mm512_fmadd_ps(s, _mm512_cvtepi32_ps(p), *acc);
}

INLINE float nx1(pi_type type, int kind, int64_t nb, const void *w, const uint8_t *acts)
{
    __m512 acc = _mm512_setzero_ps();
    __m256 accm = _mm256_setzero_ps();
    int64_t b = 0;
    int cbytes = PI_PACK_CHUNK * block_bytes(type);
    for (; b + PI_PACK_CHUNK <= nb; b += PI_PACK_CHUNK) {
        prefetch((const uint8_t *)w + b * block_bytes(type), cbytes);
        nx1_chunk(type, kind, w, b, acts + PI_PACK_BLOCK * b, PI_PACK_CHUNK, &acc, &accm);
    }
    if (b < nb)
        nx1_chunk(type, kind, w, b, acts + PI_PACK_BLOCK * b, (int)(nb - b), &acc, &accm);
    float sum = _mm512_reduce_add_ps(acc);
    if (kind == KIND_MIN) {
        __m128 m = _mm256_extractf128_ps(accm, 1);
        m = _mm_add_ps(m, _mm_movehl_ps(m, m));
        sum += _mm_cvtss_f32(_mm_add_ss(m, _mm_movehdup_ps(m)));
    }
    return sum;
}

/* Four int32 vectors, lanes 4k+i of vector t -> lane 4k+t of the result
 * holds sum_i v_t[4k+i]. */
INLINE __m512i transpose_sum(__m512i v0, __m512i v1, __m512i v2, __m512i v3)
{
    __m512i t0 = _mm512_add_epi32(_mm512_unpacklo_epi32(v0, v1), _mm512_unpackhi_epi32(v0, v1));
    __m512i t1 = _mm512_add_epi32(_mm512_unpacklo_epi32(v2, v3), _mm512_unpackhi_epi32(v2, v3));
    return _mm512_add_epi32(_mm512_unpacklo_epi64(t0, t1), _mm512_unpackhi_epi64(t0, t1));
}

/* [r][g] floats of a packed chunk as lanes 4k + t (zero elsewhere). */
INLINE __m512 act_scales(const float *p, int r, int g)
{
    if (r == 4 && g == 4)
        return _mm512_loadu_ps(p);
    __mmask16 m = 0;
    for (int k = 0; k < r; k++)
        m |= (__mmask16)(((1 << g) - 1) << (4 * k));
    return _mm512_maskz_expandloadu_ps(m, p);
}

INLINE void nx4_chunk(pi_type type, int kind, const void *w, int64_t b, const uint8_t *chunk,
                      int r, int g, __m512 *acc, __m512 *accm)
{
    wchunk c = load_chunk(type, w, b, r);
    const __m512i zero = _mm512_setzero_si512();
    __m512i p0 = chunk_dot(&c, act_lo(chunk, r, 0), act_hi(chunk, r, 0));
    __m512i p1 = chunk_dot(&c, act_lo(chunk, r, 1), act_hi(chunk, r, 1));
    __m512i p2 = g > 2 ? chunk_dot(&c, act_lo(chunk, r, 2), act_hi(chunk, r, 2)) : zero;
    __m512i p3 = g > 3 ? chunk_dot(&c, act_lo(chunk, r, 3), act_hi(chunk, r, 3)) : zero;
    __m512i u = transpose_sum(p0, p1, p2, p3);
    const float *d = (const float *)(chunk + 32 * r * g);
    __m512 dm = _mm512_castps256_ps512(c.dm);
    if (kind == KIND_OFF) {
        __m512i sum = _mm512_castps_si512(act_scales(d + r * g, r, g));
        u = _mm512_sub_epi32(u, _mm512_slli_epi32(sum, offset_shift(type)));
    }
    __m512 s = _mm512_mul_ps(_mm512_permutexvar_ps(spread_idx(0), dm), act_scales(d, r, g));
    *acc = _mm512_fmadd_ps(s, _mm512_cvtepi32_ps(u), *acc);
    if (kind == KIND_MIN) {
        __m512 mw = _mm512_permutexvar_ps(spread_idx(4), dm);
        *accm = _mm512_fmadd_ps(mw, act_scales(d + r * g, r, g), *accm);
    }
}

/* Up to four activation rows of one packed group; out[t * os]. */
INLINE void nx4(pi_type type, int kind, int64_t nb, const void *w, const uint8_t *group,
                int g, int fetch, float *out, int64_t os)
{
    __m512 acc = _mm512_setzero_ps(), accm = _mm512_setzero_ps();
    int64_t b = 0;
    int cbytes = PI_PACK_CHUNK * block_bytes(type);
    for (; b + PI_PACK_CHUNK <= nb; b += PI_PACK_CHUNK) {
        if (fetch)
            prefetch((const uint8_t *)w + b * block_bytes(type), cbytes);
        nx4_chunk(type, kind, w, b, group + PI_PACK_BLOCK * b * g, PI_PACK_CHUNK, g, &acc, &accm);
    }
    if (b < nb)
        nx4_chunk(type, kind, w, b, group + PI_PACK_BLOCK * b * g, (int)(nb - b), g, &acc, &accm);
    if (kind == KIND_MIN)
        acc = _mm512_add_ps(acc, accm);
    __m256 hi = _mm256_castsi256_ps(_mm512_extracti64x4_epi64(_mm512_castps_si512(acc), 1));
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(acc), hi);
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    float v[4];
    _mm_storeu_ps(v, q);
    for (int t = 0; t < g; t++)
        out[t * os] = v[t];
}

INLINE void nx(pi_type type, int kind, int64_t n, const void *w, const void *acts, int n_acts,
               float *out, int64_t os)
{
    int64_t nb = n / PI_QK;
    size_t group_bytes = (size_t)PI_PACK_BLOCK * nb * PI_DOT_GROUP;
    for (int j = 0; PI_DOT_GROUP * j < n_acts; j++) {
        int g = n_acts - PI_DOT_GROUP * j;
        const uint8_t *group = (const uint8_t *)acts + group_bytes * j;
        float *o = out + PI_DOT_GROUP * j * os;
        /* constant group sizes, so that each case is compiled on its own */
        if (g >= 4)
            nx4(type, kind, nb, w, group, 4, j == 0, o, os);
        else if (g == 3)
            nx4(type, kind, nb, w, group, 3, j == 0, o, os);
        else if (g == 2)
            nx4(type, kind, nb, w, group, 2, j == 0, o, os);
        else
            o[0] = nx1(type, kind, nb, w, group);
    }
}

void pi_dot_nx_q4_0_avx512(int64_t n, const void *w, const void *acts, int n_acts, float *out,
                           int64_t os)
{
    nx(PI_TYPE_Q4_0, KIND_OFF, n, w, acts, n_acts, out, os);
}

void pi_dot_nx_q4_1_avx512(int64_t n, const void *w, const void *acts, int n_acts, float *out,
                           int64_t os)
{
    nx(PI_TYPE_Q4_1, KIND_MIN, n, w, acts, n_acts, out, os);
}

void pi_dot_nx_q5_0_avx512(int64_t n, const void *w, const void *acts, int n_acts, float *out,
                           int64_t os)
{
    nx(PI_TYPE_Q5_0, KIND_OFF, n, w, acts, n_acts, out, os);
}

void pi_dot_nx_q5_1_avx512(int64_t n, const void *w, const void *acts, int n_acts, float *out,
                           int64_t os)
{
    nx(PI_TYPE_Q5_1, KIND_MIN, n, w, acts, n_acts, out, os);
}

void pi_dot_nx_q8_0_avx512(int64_t n, const void *w, const void *acts, int n_acts, float *out,
                           int64_t os)
{
    nx(PI_TYPE_Q8_0, KIND_OFF, n, w, acts, n_acts, out, os);
}

/* ---- single-row kernels for the legacy types --------------------------- */

/* The single kernels for Q4_1, Q5_0 and Q5_1 (Q8_0 has its own below; for
 * Q4_0 AVX2's was as fast).  Blocks b and b+1 of a step side by side: the
 * 128-bit lanes hold [lo b | hi b | lo b+1 | hi b+1] (lo: codes of elements
 * 0-15), and the activation blocks' codes are simply [b | b+1].  `two` is
 * 0 for a lone last block (upper half zero). */
INLINE __m512i pair_codes(pi_type type, const uint8_t *w, int two)
{
    int size = block_bytes(type);
    int qs = type == PI_TYPE_Q5_0 ? 6 : type == PI_TYPE_Q5_1 ? 8 : 4;
    __m512i x = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(w + qs)));
    if (two)
        x = _mm512_mask_broadcast_i32x4(x, 0xff00, _mm_loadu_si128((const __m128i *)(w + size + qs)));
    x = _mm512_mask_srli_epi16(x, 0xff00ff00u, x, 4);
    x = _mm512_and_si512(x, _mm512_set1_epi8(0x0f));
    if (type == PI_TYPE_Q5_0 || type == PI_TYPE_Q5_1) {
        /* qh of each block over its two lanes; lanes 1 and 3 (elements
         * 16-31) read qh bytes 2-3 */
        int qh_at = qs - 4;
        uint32_t h0, h1 = 0;
        memcpy(&h0, w + qh_at, 4);
        if (two)
            memcpy(&h1, w + size + qh_at, 4);
        __m512i qh = _mm512_mask_set1_epi32(_mm512_set1_epi32((int)h0), 0xff00, (int)h1);
        const __m512i pick = _mm512_set_epi64(0x0303030303030303ll, 0x0202020202020202ll,
                                              0x0101010101010101ll, 0, 0x0303030303030303ll,
                                              0x0202020202020202ll, 0x0101010101010101ll, 0);
        const __m512i bit = _mm512_set1_epi64((long long)0x8040201008040201ull);
        __mmask64 set = _mm512_test_epi8_mask(_mm512_shuffle_epi8(qh, pick), bit);
        x = _mm512_mask_or_epi32(x, 0xffff, x, _mm512_maskz_mov_epi8(set, _mm512_set1_epi8(0x10)));
    }
    return x;
}

/* The activation block: Q8_1 (36 bytes, codes at 4) for Q4_1 and Q5_1,
 * Q8_0 (34 bytes, codes at 2) for the others. */
INLINE int act_bytes(pi_type type)
{
    return type == PI_TYPE_Q4_1 || type == PI_TYPE_Q5_1 ? 36 : 34;
}

/* Activation blocks b, b+1. */
INLINE __m512i pair_acts(pi_type type, const uint8_t *a, int two)
{
    int size = act_bytes(type), qs = size - 32;
    __m512i y = _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(a + qs)));
    if (two)
        y = _mm512_inserti64x4(y, _mm256_loadu_si256((const __m256i *)(a + size + qs)), 1);
    return y;
}

INLINE __m512i pair_dot(pi_type type, int kind, const uint8_t *w, const uint8_t *a, int two)
{
    __m512i y = pair_acts(type, a, two);
    __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), pair_codes(type, w, two), y);
    if (kind == KIND_OFF) {
        __m512i k = _mm512_set1_epi8((char)(1 << offset_shift(type)));
        p = _mm512_sub_epi32(p, _mm512_dpbusd_epi32(_mm512_setzero_si512(), k, y));
    }
    return p;
}

/* Up to eight blocks: pair j in register j, transposed so that lane 4k + j
 * holds a half-block sum (k = 0, 1: block 2j; k = 2, 3: block 2j+1), then
 * halves added into lanes k = 0 and 2.  For Q4_1/Q5_1 lanes k = 1 and 3
 * become 1, and the scale vector holds m * s there, so one FMA adds both.
 * The scales are gathered in the order that lands d_w * d_a of block 2j in
 * lane j and of block 2j+1 in lane 8 + j after one permute. */
INLINE __m512 step8(pi_type type, int kind, const uint8_t *w, const uint8_t *a, int nblk,
                    __m512 acc)
{
    int ws = block_bytes(type), as = act_bytes(type);
    __m512i p[4];
    UNROLL for (int j = 0; j < 4; j++)
        p[j] = 2 * j < nblk ? pair_dot(type, kind, w + 2 * j * ws, a + 2 * j * as, 2 * j + 1 < nblk)
                            : _mm512_setzero_si512();
    __m512i u = transpose_sum(p[0], p[1], p[2], p[3]);
    u = _mm512_add_epi32(u, _mm512_shuffle_i32x4(u, u, _MM_SHUFFLE(2, 3, 0, 1)));
    u = kind == KIND_MIN ? _mm512_mask_mov_epi32(u, 0xf0f0, _mm512_set1_epi32(1))
                         : _mm512_maskz_mov_epi32(0x0f0f, u);

    const __m256i order = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
    __mmask8 valid = _mm256_cmplt_epi32_mask(order, _mm256_set1_epi32(nblk));
    __m256i gw = _mm256_mmask_i32gather_epi32(_mm256_setzero_si256(), valid,
                                              _mm256_mullo_epi32(order, _mm256_set1_epi32(ws)), w, 1);
    __m256i ga = _mm256_mmask_i32gather_epi32(_mm256_setzero_si256(), valid,
                                              _mm256_mullo_epi32(order, _mm256_set1_epi32(as)), a, 1);
    /* without minimums, the upper half of each dword is code bytes, not a
     * half: keep it out of the arithmetic */
    __mmask16 halves = kind == KIND_MIN ? 0xffff : 0x5555;
    __m512 s = _mm512_mul_ps(_mm512_maskz_cvtph_ps(halves, gw), _mm512_maskz_cvtph_ps(halves, ga));
    const __m512i perm = _mm512_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15);
    s = _mm512_permutexvar_ps(perm, s);
    return _mm512_fmadd_ps(s, _mm512_cvtepi32_ps(u), acc);
}

/* The last blocks of a row, up to two: each lane scaled on its own, which
 * for a pair or two costs less than a step's transpose and gathers. */
INLINE __m512 tail_pair(pi_type type, int kind, const uint8_t *w, const uint8_t *a, int two,
                        __m512 acc)
{
    const float *f16 = pi_dot_f16_table;
    int ws = block_bytes(type), as = act_bytes(type);
    pi_f16 h[8];
    memcpy(h, w, 4);          /* d, and m for the Q8_1 types */
    memcpy(h + 2, a, 4);      /* d, and s for Q8_1 */
    if (two) {
        memcpy(h + 4, w + ws, 4);
        memcpy(h + 6, a + as, 4);
    }
    __m512i p = pair_dot(type, kind, w, a, two);
    __m512 s = _mm512_set1_ps(f16[h[0]] * f16[h[2]]);
    if (two)
        s = _mm512_mask_mov_ps(s, 0xff00, _mm512_set1_ps(f16[h[4]] * f16[h[6]]));
    acc = _mm512_fmadd_ps(s, _mm512_cvtepi32_ps(p), acc);
    if (kind == KIND_MIN) { /* m * s in lane 0 */
        float m = f16[h[1]] * f16[h[3]] + (two ? f16[h[5]] * f16[h[7]] : 0.0f);
        acc = _mm512_mask_add_ps(acc, 1, acc, _mm512_set1_ps(m));
    }
    return acc;
}

INLINE float single(pi_type type, int kind, int64_t n, const void *vw, const void *va)
{
    const uint8_t *w = vw, *a = va;
    int64_t nb = n / PI_QK, b = 0;
    int ws = block_bytes(type), as = act_bytes(type);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0;
    for (; b + 16 <= nb; b += 16) {
        prefetch(w + b * ws, 16 * ws);
        acc0 = step8(type, kind, w + b * ws, a + b * as, 8, acc0);
        acc1 = step8(type, kind, w + (b + 8) * ws, a + (b + 8) * as, 8, acc1);
    }
    for (; b + 2 < nb; b += 8) {
        prefetch(w + b * ws, 8 * ws);
        acc0 = step8(type, kind, w + b * ws, a + b * as, nb - b < 8 ? (int)(nb - b) : 8, acc0);
    }
    if (b < nb)
        acc1 = tail_pair(type, kind, w + b * ws, a + b * as, nb - b == 2, acc1);
    return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

float pi_dot_q4_1_avx512(int64_t n, const void *w, const void *a)
{
    return single(PI_TYPE_Q4_1, KIND_MIN, n, w, a);
}

float pi_dot_q5_0_avx512(int64_t n, const void *w, const void *a)
{
    return single(PI_TYPE_Q5_0, KIND_OFF, n, w, a);
}

float pi_dot_q5_1_avx512(int64_t n, const void *w, const void *a)
{
    return single(PI_TYPE_Q5_1, KIND_MIN, n, w, a);
}

/* Q8_0 blocks are 32 signed codes, one 256-bit register, and need no
 * unpacking: the AVX2 kernel's structure, with vpsignb moving the weight's
 * sign onto the activation (exact, as activations are never -128) and one
 * 256-bit vpdpbusd for vpmaddubsw + vpmaddwd.  At 256 bits three ports
 * share the work; regrouping blocks for 512-bit registers costs more than
 * the wider registers save (bench/RESULTS.md). */
INLINE __m256 block_q8_0(__m256 acc, const pi_block_q8_0 *w, const pi_block_q8_0 *a)
{
    __m256i x = _mm256_loadu_si256((const __m256i *)w->qs);
    __m256i y = _mm256_loadu_si256((const __m256i *)a->qs);
    __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_sign_epi8(x, x),
                                    _mm256_sign_epi8(y, x));
    __m256 s = _mm256_mul_ps(_mm256_broadcast_ss(&pi_dot_f16_table[w->d]),
                             _mm256_broadcast_ss(&pi_dot_f16_table[a->d]));
    return _mm256_fmadd_ps(s, _mm256_cvtepi32_ps(p), acc);
}

float pi_dot_q8_0_avx512(int64_t n, const void *vw, const void *va)
{
    const pi_block_q8_0 *w = vw, *a = va;
    int64_t nb = n / PI_QK, b = 0;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
    for (; b + 2 <= nb; b += 2) {
        prefetch(w + b, 2 * sizeof *w);
        acc0 = block_q8_0(acc0, w + b, a + b);
        acc1 = block_q8_0(acc1, w + b + 1, a + b + 1);
    }
    if (b < nb)
        acc0 = block_q8_0(acc0, w + b, a + b);
    __m256 v = _mm256_add_ps(acc0, acc1);
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    return _mm_cvtss_f32(_mm_add_ss(q, _mm_movehdup_ps(q)));
}

/* ---- K-quants against Q8_K -------------------------------------------- */

/* A super-block is 256 codes, four 512-bit registers.  Sub-block scales are
 * small integers, so they are applied before any conversion: vpmaddubsw
 * adds code*activation pairs into int16 (at most 2 * 63 * 127), and
 * vpdpwssd multiplies those by the int16 scale of their sub-block and adds
 * pairs into int32 accumulators; one float FMA per super-block and row
 * applies d * d_a.  The activations are plain Q8_K rows, so the batched
 * kernels take up to four rows per pass and share the weights' unpacking;
 * the single Q6_K kernel is the one-row case (for Q4_K, AVX2's single
 * kernel was as fast as the one-row case, so only the batched one is
 * offered).  Each row keeps two int32 chains, as vpdpwssd's latency would
 * otherwise bound a lone row. */

/* vpshufb controls for Q4_K, reading the scale bytes: byte 2c of each
 * 128-bit lane as int16 in lanes 0-1, byte 2c+1 in lanes 2-3 (sub-blocks
 * 2c and 2c+1 of 64 codes); 0x80 makes the zero high bytes. */
#define Z2(j) (j), 0x80
#define Z8(j) Z2(j), Z2(j), Z2(j), Z2(j), Z2(j), Z2(j), Z2(j), Z2(j)
#define SC4(c) {Z8(2 * (c)), Z8(2 * (c)), Z8(2 * (c) + 1), Z8(2 * (c) + 1)}
static _Alignas(64) const uint8_t k_q4_k_spread[4][64] = {SC4(0), SC4(1), SC4(2), SC4(3)};
/* vpermw indexes for Q6_K: word 4j + q in 128-bit lane q (16-code groups). */
#define G8(w) w, w, w, w, w, w, w, w
#define SC6(j) {G8(4 * (j)), G8(4 * (j) + 1), G8(4 * (j) + 2), G8(4 * (j) + 3)}
static _Alignas(64) const uint16_t k_q6_k_spread[4][32] = {SC6(0), SC6(1), SC6(2), SC6(3)};

INLINE __m512i load512(const void *p) { return _mm512_loadu_si512(p); }

INLINE float f16_scalar(pi_f16 h) { return _cvtsh_ss(h); }

/* Sums the (up to four) rows' float accumulators into out[t * os]. */
INLINE void store_rows(const __m512 *acc, const __m256 *accm, int g, float *out,
                       int64_t os)
{
    for (int t = 0; t < g; t++) {
        __m256 m = accm[t];
        __m128 q = _mm_add_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        q = _mm_add_ps(q, _mm_movehl_ps(q, q));
        q = _mm_add_ss(q, _mm_movehdup_ps(q));
        out[t * os] = _mm512_reduce_add_ps(acc[t]) + _mm_cvtss_f32(q);
    }
}

/* pi_q4_k_scale_words() in one register: bytes 0-7 the eight scales, 8-15
 * the eight minimums.  The 16-byte load reads 4 bytes of qs too. */
INLINE __m128i q4_k_scales(const uint8_t *s12)
{
    const __m128i m6 = _mm_set1_epi8(0x3f), m4 = _mm_set1_epi8(0x0f), b45 = _mm_set1_epi8(0x30);
    __m128i v = _mm_loadu_si128((const __m128i *)s12);
    __m128i low = _mm_and_si128(v, m6); /* dwords: scales 0-3, mins 0-3 */
    __m128i u2 = _mm_shuffle_epi32(v, _MM_SHUFFLE(2, 2, 2, 2));
    __m128i nib = _mm_blend_epi32(u2, _mm_srli_epi32(u2, 4), 0x2); /* dword 1: u2 >> 4 */
    __m128i high = _mm_or_si128(_mm_and_si128(nib, m4), _mm_and_si128(_mm_srli_epi32(v, 2), b45));
    return _mm_unpacklo_epi32(low, high); /* scales 0-3, 4-7, mins 0-3, 4-7 */
}

/* Q4_K: qs[32c + l] holds sub-block 2c (low nibble) and 2c+1 (high) of
 * element l, so one 256-bit load broadcast to both halves, with the upper
 * half shifted, is 64 codes in activation order.  The minimums meet the
 * activation's 16-element sums two at a time (each minimum repeated). */
INLINE void q4_k_super(const pi_block_q4_K *w, const pi_block_q8_K *a, size_t astride, int g,
                       __m512 *acc, __m256 *accm)
{
    __m128i s8 = q4_k_scales(w->scales);
    __m512i scb = _mm512_broadcast_i32x4(s8);
    const __m128i pairs = _mm_setr_epi8(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
    __m256i mn2 = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(s8, pairs));
    __m512i x[4], sc[4];
    const __m512i low4 = _mm512_set1_epi8(0x0f);
    UNROLL for (int c = 0; c < 4; c++) {
        __m512i q = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(w->qs + 32 * c)));
        x[c] = _mm512_and_si512(_mm512_mask_srli_epi16(q, 0xffff0000u, q, 4), low4);
        sc[c] = _mm512_shuffle_epi8(scb, _mm512_load_si512(k_q4_k_spread[c]));
    }
    float d = f16_scalar(w->d), dmin = f16_scalar(w->dmin);
    UNROLL for (int t = 0; t < g; t++) {
        const pi_block_q8_K *at = (const pi_block_q8_K *)((const uint8_t *)a + astride * (size_t)t);
        __m512i s0 = _mm512_setzero_si512(), s1 = s0;
        s0 = _mm512_dpwssd_epi32(s0, _mm512_maddubs_epi16(x[0], load512(at->qs)), sc[0]);
        s1 = _mm512_dpwssd_epi32(s1, _mm512_maddubs_epi16(x[1], load512(at->qs + 64)), sc[1]);
        s0 = _mm512_dpwssd_epi32(s0, _mm512_maddubs_epi16(x[2], load512(at->qs + 128)), sc[2]);
        s1 = _mm512_dpwssd_epi32(s1, _mm512_maddubs_epi16(x[3], load512(at->qs + 192)), sc[3]);
        __m512i sum = _mm512_add_epi32(s0, s1);
        acc[t] = _mm512_fmadd_ps(_mm512_set1_ps(d * at->d), _mm512_cvtepi32_ps(sum), acc[t]);
        __m256i bs = _mm256_loadu_si256((const __m256i *)at->bsums);
        __m256 mins = _mm256_cvtepi32_ps(_mm256_madd_epi16(mn2, bs));
        accm[t] = _mm256_fnmadd_ps(_mm256_set1_ps(dmin * at->d), mins, accm[t]);
    }
}

/* Q6_K: per half of 128, 64 bytes of ql give the low nibbles of groups of
 * 32 k = 0, 1 (low nibbles) and 2, 3 (high nibbles); the 32 qh bytes,
 * broadcast to both halves, give bits 2k.  Codes are q + 32: the -32
 * comes off as 32 * sum(scale * bsum). */
INLINE void q6_k_super(const pi_block_q6_K *w, const pi_block_q8_K *a, size_t astride, int g,
                       __m512 *acc, __m256 *accm)
{
    const __m512i low4 = _mm512_set1_epi8(0x0f), b45 = _mm512_set1_epi8(0x30);
    /* bits 2k to bits 4-5: k = 0 | 1 shift left by 4 | 2, k = 2 | 3 right by 0 | 2 */
    const __m512i shl01 = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
    const __m512i shr23 = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
    __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)w->scales));
    __m512i scz = _mm512_castsi256_si512(sc16);
    __m512i x[4], sc[4];
    UNROLL for (int h = 0; h < 2; h++) {
        __m512i l = load512(w->ql + 64 * h);
        __m512i hb = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(w->qh + 32 * h)));
        x[2 * h] = _mm512_or_si512(_mm512_and_si512(l, low4),
                                   _mm512_and_si512(_mm512_sllv_epi16(hb, shl01), b45));
        x[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), low4),
                                       _mm512_and_si512(_mm512_srlv_epi16(hb, shr23), b45));
    }
    UNROLL for (int j = 0; j < 4; j++)
        sc[j] = _mm512_permutexvar_epi16(_mm512_load_si512(k_q6_k_spread[j]), scz);
    float d = f16_scalar(w->d);
    UNROLL for (int t = 0; t < g; t++) {
        const pi_block_q8_K *at = (const pi_block_q8_K *)((const uint8_t *)a + astride * (size_t)t);
        __m512i s0 = _mm512_setzero_si512(), s1 = s0;
        s0 = _mm512_dpwssd_epi32(s0, _mm512_maddubs_epi16(x[0], load512(at->qs)), sc[0]);
        s1 = _mm512_dpwssd_epi32(s1, _mm512_maddubs_epi16(x[1], load512(at->qs + 64)), sc[1]);
        s0 = _mm512_dpwssd_epi32(s0, _mm512_maddubs_epi16(x[2], load512(at->qs + 128)), sc[2]);
        s1 = _mm512_dpwssd_epi32(s1, _mm512_maddubs_epi16(x[3], load512(at->qs + 192)), sc[3]);
        __m512i sum = _mm512_add_epi32(s0, s1);
        __m256i offs = _mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)at->bsums));
        sum = _mm512_sub_epi32(sum, _mm512_zextsi256_si512(_mm256_slli_epi32(offs, 5)));
        acc[t] = _mm512_fmadd_ps(_mm512_set1_ps(d * at->d), _mm512_cvtepi32_ps(sum), acc[t]);
    }
    (void)accm;
}

/* One weight row against g (constant, 1-4) activation rows. */
INLINE void k_rows(pi_type type, int64_t n, const void *w, const void *a, size_t astride, int g,
                   int fetch, float *out, int64_t os)
{
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    __m256 accm[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                      _mm256_setzero_ps()};
    for (int64_t b = 0; b < n / PI_QK_K; b++) {
        const pi_block_q8_K *ab = (const pi_block_q8_K *)a + b;
        if (type == PI_TYPE_Q4_K) {
            const pi_block_q4_K *wb = (const pi_block_q4_K *)w + b;
            if (fetch)
                prefetch(wb, sizeof *wb);
            q4_k_super(wb, ab, astride, g, acc, accm);
        } else {
            const pi_block_q6_K *wb = (const pi_block_q6_K *)w + b;
            if (fetch)
                prefetch(wb, sizeof *wb);
            q6_k_super(wb, ab, astride, g, acc, accm);
        }
    }
    store_rows(acc, accm, g, out, os);
}

INLINE void k_nx(pi_type type, int64_t n, const void *w, const void *acts, int n_acts, float *out,
                 int64_t os)
{
    size_t size = pi_row_size(PI_TYPE_Q8_K, n);
    for (int t = 0; t < n_acts; t += 4) {
        const uint8_t *a = (const uint8_t *)acts + size * (size_t)t;
        int g = n_acts - t, fetch = t == 0;
        if (g >= 4)
            k_rows(type, n, w, a, size, 4, fetch, out + t * os, os);
        else if (g == 3)
            k_rows(type, n, w, a, size, 3, fetch, out + t * os, os);
        else if (g == 2)
            k_rows(type, n, w, a, size, 2, fetch, out + t * os, os);
        else
            k_rows(type, n, w, a, size, 1, fetch, out + t * os, os);
    }
}

float pi_dot_q6_k_avx512(int64_t n, const void *w, const void *a)
{
    float out;
    k_rows(PI_TYPE_Q6_K, n, w, a, 0, 1, 1, &out, 1);
    return out;
}

void pi_dot_nx_q4_k_avx512(int64_t n, const void *w, const void *acts, int n_acts, float *out,
                           int64_t os)
{
    k_nx(PI_TYPE_Q4_K, n, w, acts, n_acts, out, os);
}

void pi_dot_nx_q6_k_avx512(int64_t n, const void *w, const void *acts, int n_acts, float *out,
                           int64_t os)
{
    k_nx(PI_TYPE_Q6_K, n, w, acts, n_acts, out, os);
}

/* ---- quantising activations for the packed form ------------------------ */

/* One 32-element block as pi_quantize_row() makes Q8_0/Q8_1 codes, bit for
 * bit: amax over |x| skipping NaNs (fmaxf), d = amax / 127, codes
 * round(x / d) half away from zero, NaN to 0, clamped to [-127, 127].
 * vmaxps returns its second operand when one is NaN, which is fmaxf's rule
 * with the running maximum second; roundf is truncation plus one step when
 * the exact remainder reaches a half. */
INLINE __m512i q8_codes(__m512 v)
{
    v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, v, _CMP_ORD_Q), v);
    v = _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(-127.0f)), _mm512_set1_ps(127.0f));
    __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m512 f = _mm512_sub_ps(v, t);
    const __m512 one = _mm512_set1_ps(1.0f);
    t = _mm512_mask_add_ps(t, _mm512_cmp_ps_mask(f, _mm512_set1_ps(0.5f), _CMP_GE_OQ), t, one);
    t = _mm512_mask_sub_ps(t, _mm512_cmp_ps_mask(f, _mm512_set1_ps(-0.5f), _CMP_LE_OQ), t, one);
    return _mm512_cvttps_epi32(t);
}

void pi_quantize_q8_block_avx512(const float *x, int8_t qs[PI_QK], float *d, int32_t *sum)
{
    __m512 x0 = _mm512_loadu_ps(x), x1 = _mm512_loadu_ps(x + 16);
    __m512 m = _mm512_max_ps(_mm512_abs_ps(x0), _mm512_setzero_ps());
    m = _mm512_max_ps(_mm512_abs_ps(x1), m);
    float amax = _mm512_reduce_max_ps(m);
    *d = amax / 127.0f;
    __m512 id = _mm512_set1_ps(*d != 0.0f ? 1.0f / *d : 0.0f);
    __m512i q0 = q8_codes(_mm512_mul_ps(x0, id)), q1 = q8_codes(_mm512_mul_ps(x1, id));
    _mm_storeu_si128((__m128i *)qs, _mm512_cvtepi32_epi8(q0));
    _mm_storeu_si128((__m128i *)(qs + 16), _mm512_cvtepi32_epi8(q1));
    *sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
}
