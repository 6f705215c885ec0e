/*
 * quant: the type table, half and bfloat16 conversion, and the row
 * (de)quantisers for the float types and the 32-element legacy quants.  The
 * K-quants live in quant_k.c.
 *
 * Dequantisation reproduces the `gguf` Python package (gguf/quants.py) bit
 * for bit: each value is computed with the same float32 operations in the
 * same order (d * q, then + m), and -ffp-contract=off keeps the compiler from
 * fusing them.  The legacy quantisers follow the same package, which mirrors
 * ggml's reference quantisers, so their bytes match as well.
 */
#include "quant.h"

#include <math.h>
#include <string.h>

#include "quant_k.h"

_Static_assert(sizeof(pi_block_q4_0) == 18, "Q4_0 block layout");
_Static_assert(sizeof(pi_block_q4_1) == 20, "Q4_1 block layout");
_Static_assert(sizeof(pi_block_q5_0) == 22, "Q5_0 block layout");
_Static_assert(sizeof(pi_block_q5_1) == 24, "Q5_1 block layout");
_Static_assert(sizeof(pi_block_q8_0) == 34, "Q8_0 block layout");
_Static_assert(sizeof(pi_block_q8_1) == 36, "Q8_1 block layout");
_Static_assert(sizeof(pi_block_q2_K) == 84, "Q2_K block layout");
_Static_assert(sizeof(pi_block_q3_K) == 110, "Q3_K block layout");
_Static_assert(sizeof(pi_block_q4_K) == 144, "Q4_K block layout");
_Static_assert(sizeof(pi_block_q5_K) == 176, "Q5_K block layout");
_Static_assert(sizeof(pi_block_q6_K) == 210, "Q6_K block layout");
_Static_assert(sizeof(pi_block_q8_K) == 292, "Q8_K block layout");

/* ---- half and bfloat16 ------------------------------------------------ */

static inline uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Pure bit arithmetic rather than a lookup table: no global state, and the
 * common (normal) case is a shift and an add.  NaN payloads are kept bit for
 * bit (signalling NaNs stay signalling), as numpy's astype(float32) does. */
float pi_f16_to_f32(pi_f16 h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t em = h & 0x7fffu; /* exponent and mantissa */

    if (em >= 0x7c00u) /* inf or NaN */
        return bits_f32(sign | 0x7f800000u | (em & 0x3ffu) << 13);
    if (em >= 0x0400u) /* normal: rebias the exponent from 15 to 127 */
        return bits_f32(sign | ((em << 13) + ((127u - 15u) << 23)));
    /* zero or subnormal: em * 2^-24 is exact, and normal as a float */
    return bits_f32(sign | f32_bits((float)em * 0x1p-24f));
}

/* Subnormal half (or 2^-14 after rounding up): the value in units of 2^-24,
 * rounded to nearest even.  ax is the float's bits without the sign, with
 * 2^-25 < value < 2^-14, so the shift below is 14..24. */
static uint16_t f32_to_f16_subnormal(uint32_t ax)
{
    uint32_t shift = 126u - (ax >> 23);
    uint32_t m = (ax & 0x7fffffu) | 0x800000u;
    uint32_t q = m >> shift;
    uint32_t rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);

    if (rem > half || (rem == half && (q & 1u)))
        q++;
    return (uint16_t)q;
}

/* Matches numpy's astype(float16), NaN handling included: the payload is
 * truncated to 10 bits and forced non-zero so the result stays a NaN. */
pi_f16 pi_f32_to_f16(float f)
{
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)(x >> 16 & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;

    if (ax > 0x7f800000u) {
        uint32_t m = ax >> 13 & 0x3ffu;
        return (pi_f16)(sign | 0x7c00u | (m ? m : 1u));
    }
    if (ax >= 0x477ff000u) /* 65520 and up round to inf */
        return (pi_f16)(sign | 0x7c00u);
    if (ax >= 0x38800000u) { /* normal half: round the 13 dropped bits to even */
        uint32_t r = ax + 0xfffu + (ax >> 13 & 1u);
        return (pi_f16)(sign | ((r >> 13) - ((127u - 15u) << 10)));
    }
    if (ax <= 0x33000000u) /* up to 2^-25, half of the smallest subnormal */
        return sign;
    return (pi_f16)(sign | f32_to_f16_subnormal(ax));
}

float pi_bf16_to_f32(pi_bf16 h)
{
    return bits_f32((uint32_t)h << 16);
}

/* What gguf-py's BF16.quantize_blocks (and ggml) do: a NaN keeps its sign and
 * high payload and is forced quiet; everything else rounds to nearest even,
 * overflowing to inf. */
pi_bf16 pi_f32_to_bf16(float f)
{
    uint32_t x = f32_bits(f);

    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (pi_bf16)(x >> 16 | 0x40u);
    return (pi_bf16)((x + 0x7fffu + (x >> 16 & 1u)) >> 16);
}

/* ---- float types ------------------------------------------------------ */

static void dequant_f32(const void *src, float *dst, int64_t n)
{
    memcpy(dst, src, (size_t)n * sizeof(float));
}

static void quant_f32(const float *src, void *dst, int64_t n)
{
    memcpy(dst, src, (size_t)n * sizeof(float));
}

static void dequant_f16(const void *src, float *dst, int64_t n)
{
    const pi_f16 *h = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = pi_f16_to_f32(h[i]);
}

static void quant_f16(const float *src, void *dst, int64_t n)
{
    pi_f16 *h = dst;
    for (int64_t i = 0; i < n; i++)
        h[i] = pi_f32_to_f16(src[i]);
}

static void dequant_bf16(const void *src, float *dst, int64_t n)
{
    const pi_bf16 *h = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = pi_bf16_to_f32(h[i]);
}

static void quant_bf16(const float *src, void *dst, int64_t n)
{
    pi_bf16 *h = dst;
    for (int64_t i = 0; i < n; i++)
        h[i] = pi_f32_to_bf16(src[i]);
}

/* ---- legacy quants: dequantise ---------------------------------------- */

/* In every 32-element block, byte j holds element j in its low nibble and
 * element j + 16 in its high nibble; Q5's fifth bits are a little-endian
 * 32-bit mask, bit j for element j. */
#define HALF (PI_QK / 2)

static uint32_t load_qh(const uint8_t qh[4])
{
    return (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 |
           (uint32_t)qh[3] << 24;
}

static void dequant_q4_0(const void *src, float *dst, int64_t nb)
{
    const pi_block_q4_0 *b = src;
    for (int64_t i = 0; i < nb; i++, b++, dst += PI_QK) {
        float d = pi_f16_to_f32(b->d);
        for (int j = 0; j < HALF; j++) {
            dst[j] = d * (float)((b->qs[j] & 0xf) - 8);
            dst[j + HALF] = d * (float)((b->qs[j] >> 4) - 8);
        }
    }
}

static void dequant_q4_1(const void *src, float *dst, int64_t nb)
{
    const pi_block_q4_1 *b = src;
    for (int64_t i = 0; i < nb; i++, b++, dst += PI_QK) {
        float d = pi_f16_to_f32(b->d), m = pi_f16_to_f32(b->m);
        for (int j = 0; j < HALF; j++) {
            dst[j] = d * (float)(b->qs[j] & 0xf) + m;
            dst[j + HALF] = d * (float)(b->qs[j] >> 4) + m;
        }
    }
}

static void dequant_q5_0(const void *src, float *dst, int64_t nb)
{
    const pi_block_q5_0 *b = src;
    for (int64_t i = 0; i < nb; i++, b++, dst += PI_QK) {
        float d = pi_f16_to_f32(b->d);
        uint32_t qh = load_qh(b->qh);
        for (int j = 0; j < HALF; j++) {
            int lo = (b->qs[j] & 0xf) | (int)(qh >> j & 1u) << 4;
            int hi = (b->qs[j] >> 4) | (int)(qh >> (j + HALF) & 1u) << 4;
            dst[j] = d * (float)(lo - 16);
            dst[j + HALF] = d * (float)(hi - 16);
        }
    }
}

static void dequant_q5_1(const void *src, float *dst, int64_t nb)
{
    const pi_block_q5_1 *b = src;
    for (int64_t i = 0; i < nb; i++, b++, dst += PI_QK) {
        float d = pi_f16_to_f32(b->d), m = pi_f16_to_f32(b->m);
        uint32_t qh = load_qh(b->qh);
        for (int j = 0; j < HALF; j++) {
            int lo = (b->qs[j] & 0xf) | (int)(qh >> j & 1u) << 4;
            int hi = (b->qs[j] >> 4) | (int)(qh >> (j + HALF) & 1u) << 4;
            dst[j] = d * (float)lo + m;
            dst[j + HALF] = d * (float)hi + m;
        }
    }
}

static void dequant_q8_0(const void *src, float *dst, int64_t nb)
{
    const pi_block_q8_0 *b = src;
    for (int64_t i = 0; i < nb; i++, b++, dst += PI_QK) {
        float d = pi_f16_to_f32(b->d);
        for (int j = 0; j < PI_QK; j++)
            dst[j] = (float)b->qs[j] * d;
    }
}

static void dequant_q8_1(const void *src, float *dst, int64_t nb)
{
    const pi_block_q8_1 *b = src;
    for (int64_t i = 0; i < nb; i++, b++, dst += PI_QK) {
        float d = pi_f16_to_f32(b->d);
        for (int j = 0; j < PI_QK; j++)
            dst[j] = (float)b->qs[j] * d;
    }
}

/* ---- legacy quants: quantise ------------------------------------------ */

/* The element of largest magnitude, with its sign; the first on ties, like
 * numpy's argmax and ggml's strict '<' scan. */
static float signed_absmax(const float *x, int n)
{
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++) {
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    return max;
}

/* trunc(v) clipped to [0, top], as numpy's trunc().astype(uint8).clip()
 * gives for finite v >= -1; NaN maps to 0 instead of being undefined. */
static uint8_t trunc_clip(float v, int top)
{
    if (!(v >= 0.0f))
        return 0;
    if (v >= (float)top)
        return (uint8_t)top;
    return (uint8_t)v;
}

static void block_min_max(const float *x, int n, float *min, float *max)
{
    *min = *max = x[0];
    for (int j = 1; j < n; j++) {
        if (x[j] < *min)
            *min = x[j];
        if (x[j] > *max)
            *max = x[j];
    }
}

/* Q4_0 and Q5_0 put the largest-magnitude element at the extreme code
 * (-8 or -16) and round by adding 8.5 (16.5) and truncating. */
static void quant_q4_0(const float *x, void *dst, int64_t nb)
{
    pi_block_q4_0 *b = dst;
    for (int64_t i = 0; i < nb; i++, b++, x += PI_QK) {
        float d = signed_absmax(x, PI_QK) / -8.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        b->d = pi_f32_to_f16(d);
        for (int j = 0; j < HALF; j++) {
            uint8_t lo = trunc_clip(x[j] * id + 8.5f, 15);
            uint8_t hi = trunc_clip(x[j + HALF] * id + 8.5f, 15);
            b->qs[j] = (uint8_t)(lo | hi << 4);
        }
    }
}

static void quant_q5_0(const float *x, void *dst, int64_t nb)
{
    pi_block_q5_0 *b = dst;
    for (int64_t i = 0; i < nb; i++, b++, x += PI_QK) {
        float d = signed_absmax(x, PI_QK) / -16.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        uint32_t qh = 0;
        b->d = pi_f32_to_f16(d);
        for (int j = 0; j < HALF; j++) {
            uint8_t lo = trunc_clip(x[j] * id + 16.5f, 31);
            uint8_t hi = trunc_clip(x[j + HALF] * id + 16.5f, 31);
            b->qs[j] = (uint8_t)((lo & 0xf) | (hi & 0xf) << 4);
            qh |= (uint32_t)(lo >> 4) << j | (uint32_t)(hi >> 4) << (j + HALF);
        }
        for (int k = 0; k < 4; k++)
            b->qh[k] = (uint8_t)(qh >> (8 * k));
    }
}

/* Q4_1 and Q5_1 span [min, max] with the codes 0..15 (0..31). */
static void quant_q4_1(const float *x, void *dst, int64_t nb)
{
    pi_block_q4_1 *b = dst;
    for (int64_t i = 0; i < nb; i++, b++, x += PI_QK) {
        float min, max;
        block_min_max(x, PI_QK, &min, &max);
        float d = (max - min) / 15.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        b->d = pi_f32_to_f16(d);
        b->m = pi_f32_to_f16(min);
        for (int j = 0; j < HALF; j++) {
            uint8_t lo = trunc_clip((x[j] - min) * id + 0.5f, 15);
            uint8_t hi = trunc_clip((x[j + HALF] - min) * id + 0.5f, 15);
            b->qs[j] = (uint8_t)(lo | hi << 4);
        }
    }
}

static void quant_q5_1(const float *x, void *dst, int64_t nb)
{
    pi_block_q5_1 *b = dst;
    for (int64_t i = 0; i < nb; i++, b++, x += PI_QK) {
        float min, max;
        block_min_max(x, PI_QK, &min, &max);
        float d = (max - min) / 31.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        uint32_t qh = 0;
        b->d = pi_f32_to_f16(d);
        b->m = pi_f32_to_f16(min);
        for (int j = 0; j < HALF; j++) {
            uint8_t lo = trunc_clip((x[j] - min) * id + 0.5f, 31);
            uint8_t hi = trunc_clip((x[j + HALF] - min) * id + 0.5f, 31);
            b->qs[j] = (uint8_t)((lo & 0xf) | (hi & 0xf) << 4);
            qh |= (uint32_t)(lo >> 4) << j | (uint32_t)(hi >> 4) << (j + HALF);
        }
        for (int k = 0; k < 4; k++)
            b->qh[k] = (uint8_t)(qh >> (8 * k));
    }
}

/* Q8 codes: round half away from zero (roundf, which is what gguf-py's
 * np_roundf computes), clamped in case rounding of 1/d overshoots 127. */
static int8_t q8_code(float v)
{
    if (v != v)
        return 0;
    if (v <= -127.0f)
        return -127;
    if (v >= 127.0f)
        return 127;
    return (int8_t)roundf(v);
}

static float block_absmax(const float *x, int n)
{
    float amax = 0.0f;
    for (int j = 0; j < n; j++)
        amax = fmaxf(amax, fabsf(x[j]));
    return amax;
}

static void quant_q8_0(const float *x, void *dst, int64_t nb)
{
    pi_block_q8_0 *b = dst;
    for (int64_t i = 0; i < nb; i++, b++, x += PI_QK) {
        float d = block_absmax(x, PI_QK) / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        b->d = pi_f32_to_f16(d);
        for (int j = 0; j < PI_QK; j++)
            b->qs[j] = q8_code(x[j] * id);
    }
}

/* As Q8_0, plus s = d * sum(qs) with the float d the codes were rounded
 * with (ggml's convention), so a Q4_1/Q5_1 dot adds m * s for the minimum. */
static void quant_q8_1(const float *x, void *dst, int64_t nb)
{
    pi_block_q8_1 *b = dst;
    for (int64_t i = 0; i < nb; i++, b++, x += PI_QK) {
        float d = block_absmax(x, PI_QK) / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        int sum = 0;
        for (int j = 0; j < PI_QK; j++) {
            b->qs[j] = q8_code(x[j] * id);
            sum += b->qs[j];
        }
        b->d = pi_f32_to_f16(d);
        b->s = pi_f32_to_f16(d * (float)sum);
    }
}

/* ---- type table ------------------------------------------------------- */

/* Converts whole blocks; n counts blocks (elements for the float types). */
typedef void (*dequant_fn)(const void *src, float *dst, int64_t nb);
typedef void (*quant_fn)(const float *src, void *dst, int64_t nb);

typedef struct type_entry {
    pi_type_traits traits;
    dequant_fn dequant;
    quant_fn quant;
} type_entry;

/* Sizes are GGUF's (gguf-py GGML_QUANT_SIZES), except Q8_1, which in pi is
 * the 36-byte activation block with an f16 d and s. */
#define TYPE(id, bs, ts, vdt, deq, q) \
    [PI_TYPE_##id] = { { #id, bs, ts, (deq) != NULL, (q) != NULL, vdt }, deq, q }
#define NO_DOT PI_TYPE_COUNT

static const type_entry types[PI_TYPE_COUNT] = {
    TYPE(F32, 1, 4, PI_TYPE_F32, dequant_f32, quant_f32),
    TYPE(F16, 1, 2, PI_TYPE_F32, dequant_f16, quant_f16),
    TYPE(Q4_0, 32, 18, PI_TYPE_Q8_0, dequant_q4_0, quant_q4_0),
    TYPE(Q4_1, 32, 20, PI_TYPE_Q8_1, dequant_q4_1, quant_q4_1),
    TYPE(Q5_0, 32, 22, PI_TYPE_Q8_0, dequant_q5_0, quant_q5_0),
    TYPE(Q5_1, 32, 24, PI_TYPE_Q8_1, dequant_q5_1, quant_q5_1),
    TYPE(Q8_0, 32, 34, PI_TYPE_Q8_0, dequant_q8_0, quant_q8_0),
    TYPE(Q8_1, 32, 36, NO_DOT, dequant_q8_1, quant_q8_1),
    TYPE(Q2_K, 256, 84, PI_TYPE_Q8_K, pi_dequantize_blocks_q2_K,
         pi_quantize_blocks_q2_K),
    TYPE(Q3_K, 256, 110, PI_TYPE_Q8_K, pi_dequantize_blocks_q3_K,
         pi_quantize_blocks_q3_K),
    TYPE(Q4_K, 256, 144, PI_TYPE_Q8_K, pi_dequantize_blocks_q4_K,
         pi_quantize_blocks_q4_K),
    TYPE(Q5_K, 256, 176, PI_TYPE_Q8_K, pi_dequantize_blocks_q5_K,
         pi_quantize_blocks_q5_K),
    TYPE(Q6_K, 256, 210, PI_TYPE_Q8_K, pi_dequantize_blocks_q6_K,
         pi_quantize_blocks_q6_K),
    TYPE(Q8_K, 256, 292, NO_DOT, pi_dequantize_blocks_q8_K,
         pi_quantize_blocks_q8_K),
    TYPE(IQ2_XXS, 256, 66, NO_DOT, NULL, NULL),
    TYPE(IQ2_XS, 256, 74, NO_DOT, NULL, NULL),
    TYPE(IQ3_XXS, 256, 98, NO_DOT, NULL, NULL),
    TYPE(IQ1_S, 256, 50, NO_DOT, NULL, NULL),
    TYPE(IQ4_NL, 32, 18, NO_DOT, NULL, NULL),
    TYPE(IQ3_S, 256, 110, NO_DOT, NULL, NULL),
    TYPE(IQ2_S, 256, 82, NO_DOT, NULL, NULL),
    TYPE(IQ4_XS, 256, 136, NO_DOT, NULL, NULL),
    TYPE(I8, 1, 1, NO_DOT, NULL, NULL),
    TYPE(I16, 1, 2, NO_DOT, NULL, NULL),
    TYPE(I32, 1, 4, NO_DOT, NULL, NULL),
    TYPE(I64, 1, 8, NO_DOT, NULL, NULL),
    TYPE(F64, 1, 8, NO_DOT, NULL, NULL),
    TYPE(IQ1_M, 256, 56, NO_DOT, NULL, NULL),
    TYPE(BF16, 1, 2, PI_TYPE_F32, dequant_bf16, quant_bf16),
    TYPE(TQ1_0, 256, 54, NO_DOT, NULL, NULL),
    TYPE(TQ2_0, 256, 66, NO_DOT, NULL, NULL),
    TYPE(MXFP4, 32, 17, NO_DOT, NULL, NULL),
};

static const type_entry *entry(uint32_t type)
{
    if (type >= PI_TYPE_COUNT || types[type].traits.name == NULL)
        return NULL;
    return &types[type];
}

const pi_type_traits *pi_type_get_traits(uint32_t type)
{
    const type_entry *e = entry(type);
    return e ? &e->traits : NULL;
}

const char *pi_type_name(uint32_t type)
{
    const type_entry *e = entry(type);
    return e ? e->traits.name : "?";
}

static int ascii_upper(int c)
{
    return c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c;
}

/* Table names are upper case except the K suffix ("Q4_K"), so compare both
 * sides folded to upper case. */
static bool name_equal(const char *table, const char *name)
{
    for (; *table && *name; table++, name++)
        if (ascii_upper((unsigned char)*table) != ascii_upper((unsigned char)*name))
            return false;
    return *table == *name;
}

int pi_type_from_name(const char *name)
{
    if (name == NULL)
        return -1;
    for (int t = 0; t < PI_TYPE_COUNT; t++)
        if (types[t].traits.name && name_equal(types[t].traits.name, name))
            return t;
    return -1;
}

size_t pi_row_size(uint32_t type, int64_t n)
{
    const type_entry *e = entry(type);
    if (e == NULL || n < 0 || n % e->traits.block_size != 0)
        return 0;
    uint64_t nb = (uint64_t)n / e->traits.block_size;
    if (nb > SIZE_MAX / e->traits.type_size)
        return 0;
    return (size_t)nb * e->traits.type_size;
}

/* The number of blocks in n elements, or -1 if n is not whole blocks. */
static int64_t whole_blocks(const type_entry *e, int64_t n)
{
    if (n < 0 || n % e->traits.block_size != 0)
        return -1;
    return n / e->traits.block_size;
}

int pi_dequantize_row(pi_type type, const void *src, float *dst, int64_t n)
{
    const type_entry *e = entry((uint32_t)type);
    int64_t nb;
    if (e == NULL || e->dequant == NULL || (nb = whole_blocks(e, n)) < 0)
        return -1;
    e->dequant(src, dst, nb);
    return 0;
}

int pi_quantize_row(pi_type type, const float *src, void *dst, int64_t n)
{
    const type_entry *e = entry((uint32_t)type);
    int64_t nb;
    if (e == NULL || e->quant == NULL || (nb = whole_blocks(e, n)) < 0)
        return -1;
    e->quant(src, dst, nb);
    return 0;
}
