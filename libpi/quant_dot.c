/*
 * quant_dot: dot products of a weight row with an activation row, and the
 * run-time choice of implementation.
 *
 * The scalar kernels here are the reference the SIMD kernels are tested
 * against, so they favour clarity and accuracy over speed: integer products
 * are summed exactly in int32 within a block (as the SIMD kernels do), and
 * each block's sum is scaled by d_w * d_a and accumulated in double, which
 * makes the scalar result the dot product of the two dequantised rows up to
 * a final rounding (Q4_1/Q5_1 excepted: see the Q8_1 note below).
 *
 * The K-quants' minimums never touch the inner loop: sum_i (d*sc*q_i - m) *
 * a_i = d*sc*sum_i q_i*a_i - m*sum_i a_i, and the Q8_K activation carries the
 * sums of each 16 of its values (bsums).  Q6_K and Q3_K use the same trick
 * for their constant offsets (-32 and -4).
 */
#include "quant.h"
#include "quant_dot_impl.h"

#include "cpu.h"

#include <pthread.h>
#include <string.h>

/* ---- float weights against F32 activations ---------------------------- */

static float dot_f32(int64_t n, const void *vw, const void *va)
{
    const float *w = vw, *a = va;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)w[i] * a[i];
    return (float)sum;
}

static float dot_f16(int64_t n, const void *vw, const void *va)
{
    const pi_f16 *w = vw;
    const float *a = va;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)pi_f16_to_f32(w[i]) * a[i];
    return (float)sum;
}

static float dot_bf16(int64_t n, const void *vw, const void *va)
{
    const pi_bf16 *w = vw;
    const float *a = va;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)pi_bf16_to_f32(w[i]) * a[i];
    return (float)sum;
}

/* ---- legacy 32-element blocks ----------------------------------------- */

/* d_w * d_a, exact in float (two 11-bit significands). */
static float scale(pi_f16 dw, pi_f16 da)
{
    return pi_f16_to_f32(dw) * pi_f16_to_f32(da);
}

/* Element j of a 32-block lives in the low nibble of qs[j] for j < 16 and in
 * the high nibble of qs[j - 16] otherwise; for Q5, bit j of the
 * little-endian 32-bit qh is element j's bit 4. */
static uint32_t q5_high(const uint8_t qh[4])
{
    return (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
}

/* Each legacy kernel is a loop over blocks of a per-block function, which
 * the batched scalar kernels (below) share, so that both sum the same
 * terms in the same order. */
typedef double (*block_dot_fn)(const void *w, const void *a);

static double block_q4_0(const void *vw, const void *va)
{
    const pi_block_q4_0 *w = vw;
    const pi_block_q8_0 *a = va;
    int32_t isum = 0;
    for (int j = 0; j < 16; j++)
        isum += ((w->qs[j] & 0x0f) - 8) * a->qs[j] + ((w->qs[j] >> 4) - 8) * a->qs[j + 16];
    return (double)scale(w->d, a->d) * isum;
}

static double block_q5_0(const void *vw, const void *va)
{
    const pi_block_q5_0 *w = vw;
    const pi_block_q8_0 *a = va;
    uint32_t qh = q5_high(w->qh);
    int32_t isum = 0;
    for (int j = 0; j < 16; j++) {
        int lo = (w->qs[j] & 0x0f) | (int)((qh >> j) & 1) << 4;
        int hi = (w->qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
        isum += (lo - 16) * a->qs[j] + (hi - 16) * a->qs[j + 16];
    }
    return (double)scale(w->d, a->d) * isum;
}

static double block_q8_0(const void *vw, const void *va)
{
    const pi_block_q8_0 *w = vw;
    const pi_block_q8_0 *a = va;
    int32_t isum = 0;
    for (int j = 0; j < PI_QK; j++)
        isum += w->qs[j] * a->qs[j];
    return (double)scale(w->d, a->d) * isum;
}

/* Q4_1/Q5_1 weights are d*q + m; against Q8_1 the minimum contributes
 * m * d_a * sum(a.qs), which the activation stores as s.  s is an f16, so
 * this term carries s's rounding (relative 2^-11); the SIMD kernels use s the
 * same way, and the tests allow for it. */
static double block_q4_1(const void *vw, const void *va)
{
    const pi_block_q4_1 *w = vw;
    const pi_block_q8_1 *a = va;
    int32_t isum = 0;
    for (int j = 0; j < 16; j++)
        isum += (w->qs[j] & 0x0f) * a->qs[j] + (w->qs[j] >> 4) * a->qs[j + 16];
    return (double)scale(w->d, a->d) * isum + (double)scale(w->m, a->s);
}

static double block_q5_1(const void *vw, const void *va)
{
    const pi_block_q5_1 *w = vw;
    const pi_block_q8_1 *a = va;
    uint32_t qh = q5_high(w->qh);
    int32_t isum = 0;
    for (int j = 0; j < 16; j++) {
        int lo = (w->qs[j] & 0x0f) | (int)((qh >> j) & 1) << 4;
        int hi = (w->qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
        isum += lo * a->qs[j] + hi * a->qs[j + 16];
    }
    return (double)scale(w->d, a->d) * isum + (double)scale(w->m, a->s);
}

static inline float legacy_dot(int64_t n, const void *w, const void *a, size_t wsize,
                               size_t asize, block_dot_fn block)
{
    double sum = 0.0;
    for (int64_t b = 0; b < n / PI_QK; b++)
        sum += block((const uint8_t *)w + b * wsize, (const uint8_t *)a + b * asize);
    return (float)sum;
}

#define LEGACY_DOT(name, wtype, atype)                                        \
    static float dot_##name(int64_t n, const void *w, const void *a)          \
    {                                                                         \
        return legacy_dot(n, w, a, sizeof(wtype), sizeof(atype), block_##name); \
    }
LEGACY_DOT(q4_0, pi_block_q4_0, pi_block_q8_0)
LEGACY_DOT(q5_0, pi_block_q5_0, pi_block_q8_0)
LEGACY_DOT(q8_0, pi_block_q8_0, pi_block_q8_0)
LEGACY_DOT(q4_1, pi_block_q4_1, pi_block_q8_1)
LEGACY_DOT(q5_1, pi_block_q5_1, pi_block_q8_1)

/* ---- K-quants: 256-element super-blocks against Q8_K ------------------- */

/* The K-quant loops below walk 16-element groups g (32-element sub-blocks
 * s for Q4_K/Q5_K), element i = 16g + l.  Q2_K and Q3_K share a layout:
 * two halves of 128, and within a half, element k*32 + l holds bits 2k..2k+1
 * of qs[half*32 + l]; so group g reads qs[32*(g/8) + 16*(g%2) + l] shifted
 * by 2*((g%8)/2). */
static const uint8_t *q2_group(const uint8_t *qs, int g, int *shift)
{
    *shift = 2 * ((g % 8) / 2);
    return qs + 32 * (g / 8) + 16 * (g % 2);
}

static float dot_q2_k(int64_t n, const void *vw, const void *va)
{
    const pi_block_q2_K *w = vw;
    const pi_block_q8_K *a = va;
    double sum = 0.0;
    for (int64_t b = 0; b < n / PI_QK_K; b++) {
        int32_t isum = 0, msum = 0;
        for (int g = 0; g < 16; g++) {
            int shift;
            const uint8_t *q = q2_group(w[b].qs, g, &shift);
            const int8_t *y = a[b].qs + 16 * g;
            int32_t sub = 0;
            for (int l = 0; l < 16; l++)
                sub += ((q[l] >> shift) & 3) * y[l];
            isum += (w[b].scales[g] & 0x0f) * sub;
            msum += (w[b].scales[g] >> 4) * a[b].bsums[g];
        }
        sum += (double)pi_f16_to_f32(w[b].d) * a[b].d * isum;
        sum -= (double)pi_f16_to_f32(w[b].dmin) * a[b].d * msum;
    }
    return (float)sum;
}

/* Q3_K: value = scale * (q2 - 4 * !hbit), hbit for element i being bit
 * i/32 of hmask[i%32].  Summed as scale * (q2 + 4*hbit) minus 4 * scale *
 * bsum, which keeps the inner product unsigned like the SIMD kernel's. */
static float dot_q3_k(int64_t n, const void *vw, const void *va)
{
    const pi_block_q3_K *w = vw;
    const pi_block_q8_K *a = va;
    double sum = 0.0;
    for (int64_t b = 0; b < n / PI_QK_K; b++) {
        uint32_t words[4];
        uint8_t sc[16];
        pi_q3_k_scale_words(w[b].scales, words);
        memcpy(sc, words, 16);
        int32_t isum = 0;
        for (int g = 0; g < 16; g++) {
            int shift;
            const uint8_t *q = q2_group(w[b].qs, g, &shift);
            const uint8_t *hm = w[b].hmask + 16 * (g % 2);
            const int8_t *y = a[b].qs + 16 * g;
            int32_t sub = 0;
            for (int l = 0; l < 16; l++)
                sub += (((q[l] >> shift) & 3) + 4 * ((hm[l] >> (g / 2)) & 1)) * y[l];
            isum += (sc[g] - 32) * (sub - 4 * a[b].bsums[g]);
        }
        sum += (double)pi_f16_to_f32(w[b].d) * a[b].d * isum;
    }
    return (float)sum;
}

/* Q4_K/Q5_K: eight sub-blocks of 32; sub-block s takes the low nibbles of
 * qs[32*(s/2) ..] for even s and the high nibbles for odd s.  Q5_K's fifth
 * bit for element i is bit i/32 of qh[i%32]. */
static inline double dot_q45_k(const pi_block_q8_K *a, pi_f16 d, pi_f16 dmin,
                               const uint8_t *scales, const uint8_t *qs, const uint8_t *qh)
{
    uint32_t words[4];
    uint8_t sc[8], mn[8];
    pi_q4_k_scale_words(scales, words);
    memcpy(sc, words, 8);
    memcpy(mn, words + 2, 8);
    int32_t isum = 0, msum = 0;
    for (int s = 0; s < 8; s++) {
        const uint8_t *q = qs + 32 * (s / 2);
        const int8_t *y = a->qs + 32 * s;
        int shift = 4 * (s % 2);
        int32_t sub = 0;
        for (int l = 0; l < 32; l++) {
            int v = (q[l] >> shift) & 0x0f;
            if (qh)
                v |= ((qh[l] >> s) & 1) << 4;
            sub += v * y[l];
        }
        isum += sc[s] * sub;
        msum += mn[s] * (a->bsums[2 * s] + a->bsums[2 * s + 1]);
    }
    return (double)pi_f16_to_f32(d) * a->d * isum - (double)pi_f16_to_f32(dmin) * a->d * msum;
}

static float dot_q4_k(int64_t n, const void *vw, const void *va)
{
    const pi_block_q4_K *w = vw;
    const pi_block_q8_K *a = va;
    double sum = 0.0;
    for (int64_t b = 0; b < n / PI_QK_K; b++)
        sum += dot_q45_k(&a[b], w[b].d, w[b].dmin, w[b].scales, w[b].qs, NULL);
    return (float)sum;
}

static float dot_q5_k(int64_t n, const void *vw, const void *va)
{
    const pi_block_q5_K *w = vw;
    const pi_block_q8_K *a = va;
    double sum = 0.0;
    for (int64_t b = 0; b < n / PI_QK_K; b++)
        sum += dot_q45_k(&a[b], w[b].d, w[b].dmin, w[b].scales, w[b].qs, w[b].qh);
    return (float)sum;
}

/* Q6_K: two halves of 128; within a half, element k*32 + l (k = 0..3) has
 * its low nibble in ql[64*half + 32*(k%2) + l] (high nibble for k >= 2) and
 * its top two bits at bits 2k of qh[32*half + l]; value = scale * (q - 32),
 * summed as scale * q minus 32 * scale * bsum. */
static float dot_q6_k(int64_t n, const void *vw, const void *va)
{
    const pi_block_q6_K *w = vw;
    const pi_block_q8_K *a = va;
    double sum = 0.0;
    for (int64_t b = 0; b < n / PI_QK_K; b++) {
        int32_t isum = 0;
        for (int g = 0; g < 16; g++) {
            int half = g / 8, k = (g % 8) / 2, l0 = 16 * (g % 2);
            const uint8_t *ql = w[b].ql + 64 * half + 32 * (k % 2) + l0;
            const uint8_t *qh = w[b].qh + 32 * half + l0;
            const int8_t *y = a[b].qs + 16 * g;
            int lshift = 4 * (k / 2), hshift = 2 * k;
            int32_t sub = 0;
            for (int l = 0; l < 16; l++)
                sub += (((ql[l] >> lshift) & 0x0f) | ((qh[l] >> hshift) & 3) << 4) * y[l];
            isum += w[b].scales[g] * (sub - 32 * a[b].bsums[g]);
        }
        sum += (double)pi_f16_to_f32(w[b].d) * a[b].d * isum;
    }
    return (float)sum;
}

/* ---- packed batches (layout: quant_dot_impl.h) ------------------------- */

static bool is_k_quant(pi_type t)
{
    return t == PI_TYPE_Q2_K || t == PI_TYPE_Q3_K || t == PI_TYPE_Q4_K || t == PI_TYPE_Q5_K ||
           t == PI_TYPE_Q6_K;
}

static bool is_legacy(pi_type t)
{
    return t == PI_TYPE_Q4_0 || t == PI_TYPE_Q4_1 || t == PI_TYPE_Q5_0 || t == PI_TYPE_Q5_1 ||
           t == PI_TYPE_Q8_0;
}

size_t pi_dot_pack_size(pi_type wtype, int64_t n)
{
    if (is_k_quant(wtype))
        return pi_row_size(PI_TYPE_Q8_K, n);
    if (!is_legacy(wtype) || n <= 0 || n % PI_QK != 0)
        return 0;
    return (size_t)(n / PI_QK) * PI_PACK_BLOCK;
}

/* One block's Q8_1 fields (Q8_0's are d and qs) and the sum of its codes.
 * The AVX-512 quantiser is bit-exact with pi_quantize_row(), whose per-call
 * overhead and libm rounding otherwise cost a tenth of prompt processing. */
static void q8_block(bool simd, const float *x, pi_block_q8_1 *blk, int32_t *sum)
{
#if defined(__x86_64__) || defined(__i386__)
    if (simd) {
        float d;
        pi_quantize_q8_block_avx512(x, blk->qs, &d, sum);
        blk->d = pi_f32_to_f16(d);
        blk->s = pi_f32_to_f16(d * (float)*sum);
        return;
    }
#endif
    (void)simd;
    pi_quantize_row(PI_TYPE_Q8_1, x, blk, PI_QK);
    *sum = 0;
    for (int j = 0; j < PI_QK; j++)
        *sum += blk->qs[j];
}

/* Each block is quantised alone (Q8_0 and Q8_1 blocks are independent, so
 * the codes are those of the whole row; Q8_0's d and codes are Q8_1's) and
 * scattered to its places. */
int pi_dot_pack_row(pi_type wtype, const float *x, int64_t n, void *acts, int n_acts, int t)
{
    size_t size = pi_dot_pack_size(wtype, n);
    if (size == 0 || t < 0 || t >= n_acts)
        return -1;
    if (is_k_quant(wtype))
        return pi_quantize_row(PI_TYPE_Q8_K, x, (uint8_t *)acts + size * (size_t)t, n);
    bool q8_1 = pi_type_get_traits(wtype)->vec_dot_type == PI_TYPE_Q8_1;
    bool simd = pi_isa_best() >= PI_ISA_AVX512;
    int64_t nb = n / PI_QK;
    for (int64_t b = 0; b < nb; b++) {
        pi_block_q8_1 blk;
        int32_t sum;
        q8_block(simd, x + b * PI_QK, &blk, &sum);
        pi_pack_pos p = pi_pack_locate(acts, n_acts, nb, t, b);
        memcpy(p.lo, blk.qs, 16);
        memcpy(p.hi, blk.qs + 16, 16);
        *p.d = pi_f16_to_f32(blk.d);
        if (q8_1) {
            float s = pi_f16_to_f32(blk.s);
            memcpy(p.sum, &s, 4);
        } else {
            memcpy(p.sum, &sum, 4);
        }
    }
    return 0;
}

/* The scalar batched kernels rebuild each activation block and call the
 * single kernels' block functions, so they give exactly pi_vec_dot()'s
 * results. */
static void nx_legacy(int64_t n, const void *w, const void *acts, int n_acts, float *out,
                      int64_t os, size_t wsize, bool q8_1, block_dot_fn block)
{
    int64_t nb = n / PI_QK;
    for (int t = 0; t < n_acts; t++) {
        double sum = 0.0;
        for (int64_t b = 0; b < nb; b++) {
            pi_pack_pos p = pi_pack_locate(acts, n_acts, nb, t, b);
            pi_block_q8_1 a1;
            pi_block_q8_0 a0;
            if (q8_1) {
                float s;
                memcpy(&s, p.sum, 4);
                a1.d = pi_f32_to_f16(*p.d); /* exact: the value came from an f16 */
                a1.s = pi_f32_to_f16(s);
                memcpy(a1.qs, p.lo, 16);
                memcpy(a1.qs + 16, p.hi, 16);
            } else {
                a0.d = pi_f32_to_f16(*p.d);
                memcpy(a0.qs, p.lo, 16);
                memcpy(a0.qs + 16, p.hi, 16);
            }
            sum += block((const uint8_t *)w + b * wsize, q8_1 ? (const void *)&a1 : &a0);
        }
        out[t * os] = (float)sum;
    }
}

#define NX_LEGACY(name, wtype, q8_1)                                                    \
    static void nx_##name(int64_t n, const void *w, const void *acts, int n_acts, float *out, \
                          int64_t os)                                                   \
    {                                                                                   \
        nx_legacy(n, w, acts, n_acts, out, os, sizeof(wtype), q8_1, block_##name);      \
    }
NX_LEGACY(q4_0, pi_block_q4_0, false)
NX_LEGACY(q5_0, pi_block_q5_0, false)
NX_LEGACY(q8_0, pi_block_q8_0, false)
NX_LEGACY(q4_1, pi_block_q4_1, true)
NX_LEGACY(q5_1, pi_block_q5_1, true)

#define NX_K(name)                                                                       \
    static void nx_##name(int64_t n, const void *w, const void *acts, int n_acts, float *out, \
                          int64_t os)                                                    \
    {                                                                                    \
        size_t size = pi_row_size(PI_TYPE_Q8_K, n);                                      \
        for (int t = 0; t < n_acts; t++)                                                 \
            out[t * os] = dot_##name(n, w, (const uint8_t *)acts + size * (size_t)t);    \
    }
NX_K(q2_k)
NX_K(q3_k)
NX_K(q4_k)
NX_K(q5_k)
NX_K(q6_k)

/* ---- dispatch ---------------------------------------------------------- */

typedef struct {
    pi_type type;
    pi_vec_dot_fn fn[PI_ISA_COUNT];
    pi_vec_dot_nx_fn nx[PI_ISA_COUNT];
} dot_entry;

#if defined(__x86_64__) || defined(__i386__)
#define X86(f) f
#else
#define X86(f) NULL
#endif

/* Single kernels are listed only where they beat the previous ISA's
 * (bench/RESULTS.md): AVX-512 ones for Q4_0 and Q4_K were no faster than
 * AVX2 on short rows, so those types use AVX2's single kernel and AVX-512's
 * batched one. */
static const dot_entry k_dots[] = {
    {PI_TYPE_F32, {dot_f32, X86(pi_dot_f32_avx2)}, {NULL}},
    {PI_TYPE_F16, {dot_f16, X86(pi_dot_f16_avx2)}, {NULL}},
    {PI_TYPE_BF16, {dot_bf16, X86(pi_dot_bf16_avx2)}, {NULL}},
    {PI_TYPE_Q4_0, {dot_q4_0, X86(pi_dot_q4_0_avx2)}, {nx_q4_0, NULL, X86(pi_dot_nx_q4_0_avx512)}},
    {PI_TYPE_Q4_1, {dot_q4_1, X86(pi_dot_q4_1_avx2), X86(pi_dot_q4_1_avx512)},
     {nx_q4_1, NULL, X86(pi_dot_nx_q4_1_avx512)}},
    {PI_TYPE_Q5_0, {dot_q5_0, X86(pi_dot_q5_0_avx2), X86(pi_dot_q5_0_avx512)},
     {nx_q5_0, NULL, X86(pi_dot_nx_q5_0_avx512)}},
    {PI_TYPE_Q5_1, {dot_q5_1, X86(pi_dot_q5_1_avx2), X86(pi_dot_q5_1_avx512)},
     {nx_q5_1, NULL, X86(pi_dot_nx_q5_1_avx512)}},
    {PI_TYPE_Q8_0, {dot_q8_0, X86(pi_dot_q8_0_avx2), X86(pi_dot_q8_0_avx512)},
     {nx_q8_0, NULL, X86(pi_dot_nx_q8_0_avx512)}},
    {PI_TYPE_Q2_K, {dot_q2_k, X86(pi_dot_q2_k_avx2)}, {nx_q2_k}},
    {PI_TYPE_Q3_K, {dot_q3_k, X86(pi_dot_q3_k_avx2)}, {nx_q3_k}},
    {PI_TYPE_Q4_K, {dot_q4_k, X86(pi_dot_q4_k_avx2)}, {nx_q4_k, NULL, X86(pi_dot_nx_q4_k_avx512)}},
    {PI_TYPE_Q5_K, {dot_q5_k, X86(pi_dot_q5_k_avx2)}, {nx_q5_k}},
    {PI_TYPE_Q6_K, {dot_q6_k, X86(pi_dot_q6_k_avx2), X86(pi_dot_q6_k_avx512)},
     {nx_q6_k, NULL, X86(pi_dot_nx_q6_k_avx512)}},
};

/* The kernel tables indexed by ISA and type, with the entries of ISAs this
 * CPU lacks left NULL, and the best ISA.  Global because they describe the
 * machine, which does not change while we run; filled once under
 * pthread_once so that any thread may be the first caller, read-only after. */
static pi_vec_dot_fn g_table[PI_ISA_COUNT][PI_TYPE_COUNT];
static pi_vec_dot_nx_fn g_nx[PI_ISA_COUNT][PI_TYPE_COUNT];
static pi_isa g_best;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void init_table(void)
{
    const pi_cpu *cpu = pi_cpu_features();
    bool avx2 = cpu->avx2 && cpu->fma && cpu->f16c;
    bool have[PI_ISA_COUNT] = {
        [PI_ISA_SCALAR] = true,
        [PI_ISA_AVX2] = avx2,
        [PI_ISA_AVX512] = avx2 && cpu->avx512f && cpu->avx512bw && cpu->avx512vl &&
                          cpu->avx512_vnni,
    };
#if defined(__x86_64__) || defined(__i386__)
    if (have[PI_ISA_AVX2])
        pi_dot_avx2_init();
#endif
    g_best = PI_ISA_SCALAR;
    for (int isa = 0; isa < PI_ISA_COUNT; isa++) {
        if (!have[isa])
            continue;
        g_best = (pi_isa)isa;
        for (size_t i = 0; i < sizeof k_dots / sizeof k_dots[0]; i++) {
            g_table[isa][k_dots[i].type] = k_dots[i].fn[isa];
            g_nx[isa][k_dots[i].type] = k_dots[i].nx[isa];
        }
    }
}

pi_vec_dot_fn pi_vec_dot_get_isa(pi_type type, pi_isa isa)
{
    if ((unsigned)type >= PI_TYPE_COUNT || (unsigned)isa >= PI_ISA_COUNT)
        return NULL;
    pthread_once(&g_once, init_table);
    return g_table[isa][type];
}

pi_vec_dot_nx_fn pi_vec_dot_nx_get_isa(pi_type type, pi_isa isa)
{
    if ((unsigned)type >= PI_TYPE_COUNT || (unsigned)isa >= PI_ISA_COUNT)
        return NULL;
    pthread_once(&g_once, init_table);
    return g_nx[isa][type];
}

/* Both walk down from the best ISA in case a newer one lacks a kernel. */
pi_vec_dot_fn pi_vec_dot_get(pi_type type)
{
    pthread_once(&g_once, init_table);
    if ((unsigned)type >= PI_TYPE_COUNT)
        return NULL;
    for (int isa = g_best; isa >= 0; isa--)
        if (g_table[isa][type])
            return g_table[isa][type];
    return NULL;
}

/* A batched kernel only from an ISA at least as new as any single one: an
 * older ISA's is not worth the packing when a newer single kernel exists. */
pi_vec_dot_nx_fn pi_vec_dot_nx_get(pi_type type)
{
    pthread_once(&g_once, init_table);
    if ((unsigned)type >= PI_TYPE_COUNT)
        return NULL;
    for (int isa = g_best; isa >= 0; isa--)
        if (g_table[isa][type] || g_nx[isa][type])
            return g_nx[isa][type];
    return NULL;
}

pi_isa pi_isa_best(void)
{
    pthread_once(&g_once, init_table);
    return g_best;
}

const char *pi_isa_name(pi_isa isa)
{
    switch (isa) {
    case PI_ISA_SCALAR: return "scalar";
    case PI_ISA_AVX2: return "avx2";
    case PI_ISA_AVX512: return "avx512";
    default: return "?";
    }
}
