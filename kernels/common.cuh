/*
 * common: device helpers that the kernels/ sources share: the GGUF block
 * layouts as the device reads them, half-to-float widening, and one element
 * of each type (deq_*::at), computed exactly as the CPU's
 * pi_dequantize_row() does (libpi/quant.c, quant_k.c).
 *
 * Header-only: every function is static inline, so each .cu file that
 * includes it compiles its own copy and no device linking is needed.
 * Bit-exactness rules (dequant.cu's header explains them) apply to at():
 * every float operation is an explicit round-to-nearest intrinsic, applied
 * in the CPU's order.
 */
#ifndef PI_KERNELS_COMMON_CUH
#define PI_KERNELS_COMMON_CUH

#include <cuda_runtime.h>
#include <stdint.h>

extern "C" {
#include "quant.h"
}

/* The device reads blocks through these structs, so their layout must be
 * GGUF's, exactly as quant.c asserts for the CPU. */
static_assert(sizeof(pi_block_q4_0) == 18 && sizeof(pi_block_q4_1) == 20, "legacy layout");
static_assert(sizeof(pi_block_q5_0) == 22 && sizeof(pi_block_q5_1) == 24, "legacy layout");
static_assert(sizeof(pi_block_q8_0) == 34, "Q8_0 layout");
static_assert(sizeof(pi_block_q2_K) == 84 && sizeof(pi_block_q3_K) == 110, "K layout");
static_assert(sizeof(pi_block_q4_K) == 144 && sizeof(pi_block_q5_K) == 176, "K layout");
static_assert(sizeof(pi_block_q6_K) == 210, "Q6_K layout");

/* ---- scalar helpers --------------------------------------------------- */

__device__ static inline float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t em = h & 0x7fffu;

    if (em >= 0x7c00u) /* inf or NaN */
        return __uint_as_float(sign | 0x7f800000u | (em & 0x3ffu) << 13);
    if (em >= 0x0400u) /* normal: rebias the exponent from 15 to 127 */
        return __uint_as_float(sign | ((em << 13) + ((127u - 15u) << 23)));
    /* zero or subnormal: em * 2^-24 is exact, and normal as a float */
    float v = __fmul_rn(__uint2float_rn(em), 5.9604644775390625e-8f);
    return __uint_as_float(sign | __float_as_uint(v));
}

/* Legacy 32-element blocks: byte j holds element j in its low nibble and
 * element j + 16 in its high nibble. */
__device__ static inline int nibble32(const uint8_t *qs, int j)
{
    return j < PI_QK / 2 ? qs[j] & 0xf : qs[j - PI_QK / 2] >> 4;
}

/* Q5 fifth bits: a little-endian 32-bit mask, bit j for element j. */
__device__ static inline int fifth_bit(const uint8_t qh[4], int j)
{
    return qh[j / 8] >> (j % 8) & 1;
}

/* ---- one element of each type ----------------------------------------- */

/* Each type is a struct with its block type, elements per block, and
 * at(b, j): element j of block b, computed exactly as the CPU does. */

struct deq_f32 {
    typedef uint32_t block; /* bits, so nothing can touch a NaN */
    enum { qk = 1, align = 4 };
    __device__ static float at(const block *b, int j) { return __uint_as_float(*b); }
};

struct deq_f16 {
    typedef pi_f16 block;
    enum { qk = 1, align = 2 };
    __device__ static float at(const block *b, int j) { return f16_to_f32(*b); }
};

struct deq_bf16 {
    typedef pi_bf16 block;
    enum { qk = 1, align = 2 };
    __device__ static float at(const block *b, int j)
    {
        return __uint_as_float((uint32_t)*b << 16);
    }
};

struct deq_q4_0 {
    typedef pi_block_q4_0 block;
    enum { qk = PI_QK, align = 2 };
    __device__ static float at(const block *b, int j)
    {
        return __fmul_rn(f16_to_f32(b->d), (float)(nibble32(b->qs, j) - 8));
    }
};

struct deq_q4_1 {
    typedef pi_block_q4_1 block;
    enum { qk = PI_QK, align = 2 };
    __device__ static float at(const block *b, int j)
    {
        float dq = __fmul_rn(f16_to_f32(b->d), (float)nibble32(b->qs, j));
        return __fadd_rn(dq, f16_to_f32(b->m));
    }
};

struct deq_q5_0 {
    typedef pi_block_q5_0 block;
    enum { qk = PI_QK, align = 2 };
    __device__ static float at(const block *b, int j)
    {
        int q = nibble32(b->qs, j) | fifth_bit(b->qh, j) << 4;
        return __fmul_rn(f16_to_f32(b->d), (float)(q - 16));
    }
};

struct deq_q5_1 {
    typedef pi_block_q5_1 block;
    enum { qk = PI_QK, align = 2 };
    __device__ static float at(const block *b, int j)
    {
        int q = nibble32(b->qs, j) | fifth_bit(b->qh, j) << 4;
        float dq = __fmul_rn(f16_to_f32(b->d), (float)q);
        return __fadd_rn(dq, f16_to_f32(b->m));
    }
};

struct deq_q8_0 {
    typedef pi_block_q8_0 block;
    enum { qk = PI_QK, align = 2 };
    __device__ static float at(const block *b, int j)
    {
        return __fmul_rn((float)b->qs[j], f16_to_f32(b->d));
    }
};

/* Q2_K: 16-element sub-block s = j / 16 has a 4-bit scale (low nibble) and
 * minimum (high nibble); its 2-bit codes sit in byte 32*(s/8) + 16*(s%2) + l
 * at shift 2*(s/2 % 4). */
struct deq_q2_K {
    typedef pi_block_q2_K block;
    enum { qk = PI_QK_K, align = 2 };
    __device__ static float at(const block *b, int j)
    {
        int s = j / 16, l = j % 16;
        int q = b->qs[32 * (s / 8) + 16 * (s % 2) + l] >> (2 * (s / 2 % 4)) & 3;
        float dl = __fmul_rn(f16_to_f32(b->d), (float)(b->scales[s] & 0xf));
        float ml = __fmul_rn(f16_to_f32(b->dmin), (float)(b->scales[s] >> 4));
        return __fsub_rn(__fmul_rn(dl, (float)q), ml);
    }
};

/* Q3_K: codes laid out as Q2_K's; the third bit is bit s/2 of
 * hmask[16*(s%2) + l] (clear means subtract 4); sixteen 6-bit scales biased
 * by 32, low nibbles of s and s + 8 sharing byte s % 8, high two bits at
 * 2*(s/4) of byte 8 + s%4. */
struct deq_q3_K {
    typedef pi_block_q3_K block;
    enum { qk = PI_QK_K, align = 2 };
    __device__ static float at(const block *b, int j)
    {
        int s = j / 16, l = j % 16;
        int lo = s < 8 ? b->scales[s] & 0xf : b->scales[s - 8] >> 4;
        int hi = b->scales[8 + s % 4] >> (2 * (s / 4)) & 3;
        int sc = (lo | hi << 4) - 32;
        int q = b->qs[32 * (s / 8) + 16 * (s % 2) + l] >> (2 * (s / 2 % 4)) & 3;
        int h = b->hmask[16 * (s % 2) + l] >> (s / 2) & 1;
        float dl = __fmul_rn(f16_to_f32(b->d), (float)sc);
        return __fmul_rn(dl, (float)(q - (h ? 0 : 4)));
    }
};

/* Q4_K/Q5_K: eight 6-bit scales and minimums in 12 bytes.  For s < 4 they
 * are the low six bits of bytes s and s + 4; for s >= 4 the low and high
 * nibbles of byte s + 4 give their low four bits and the top two bits of
 * bytes s - 4 and s give their high two. */
__device__ static inline void scale_min_k4(const uint8_t p[12], int s, int *sc, int *mn)
{
    if (s < 4) {
        *sc = p[s] & 63;
        *mn = p[s + 4] & 63;
    } else {
        *sc = (p[s + 4] & 0xf) | (p[s - 4] >> 6) << 4;
        *mn = (p[s + 4] >> 4) | (p[s] >> 6) << 4;
    }
}

/* Q4_K/Q5_K nibbles: 32-element sub-block s lives in bytes 32*(s/2) + l,
 * low nibble for even s, high for odd; Q5_K's fifth bit is bit s of qh[l]. */
struct deq_q4_K {
    typedef pi_block_q4_K block;
    enum { qk = PI_QK_K, align = 2 };
    __device__ static float at(const block *b, int j)
    {
        int s = j / 32, l = j % 32, sc, mn;
        scale_min_k4(b->scales, s, &sc, &mn);
        int q = b->qs[32 * (s / 2) + l] >> (4 * (s % 2)) & 0xf;
        float ds = __fmul_rn(f16_to_f32(b->d), (float)sc);
        float dm = __fmul_rn(f16_to_f32(b->dmin), (float)mn);
        return __fsub_rn(__fmul_rn(ds, (float)q), dm);
    }
};

struct deq_q5_K {
    typedef pi_block_q5_K block;
    enum { qk = PI_QK_K, align = 2 };
    __device__ static float at(const block *b, int j)
    {
        int s = j / 32, l = j % 32, sc, mn;
        scale_min_k4(b->scales, s, &sc, &mn);
        int q = (b->qs[32 * (s / 2) + l] >> (4 * (s % 2)) & 0xf) | (b->qh[l] >> s & 1) << 4;
        float ds = __fmul_rn(f16_to_f32(b->d), (float)sc);
        float dm = __fmul_rn(f16_to_f32(b->dmin), (float)mn);
        return __fsub_rn(__fmul_rn(ds, (float)q), dm);
    }
};

/* Q6_K element 128*h + 32*k + l: low four bits in ql[64*h + 32*(k%2) + l]
 * (low nibble for k < 2), high two bits at 2k of qh[32*h + l], bias 32; one
 * signed 8-bit scale per 16 elements. */
struct deq_q6_K {
    typedef pi_block_q6_K block;
    enum { qk = PI_QK_K, align = 2 };
    __device__ static float at(const block *b, int j)
    {
        int h = j / 128, k = j / 32 % 4, l = j % 32;
        int lo = b->ql[64 * h + 32 * (k % 2) + l] >> (4 * (k / 2)) & 0xf;
        int hi = b->qh[32 * h + l] >> (2 * k) & 3;
        float ds = __fmul_rn(f16_to_f32(b->d), (float)b->scales[j / 16]);
        return __fmul_rn(ds, (float)((lo | hi << 4) - 32));
    }
};

#endif
