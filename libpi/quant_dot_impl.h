/*
 * quant_dot_impl: internal interface between the dot-product dispatcher
 * (quant_dot.c, which also holds the scalar kernels) and the SIMD kernel
 * files (quant_dot_avx2.c).  Not installed; nothing outside libpi includes it.
 *
 * Every kernel has the pi_vec_dot_fn signature: n elements (a multiple of
 * the weight type's block size), a weight row, an activation row of the
 * weight type's vec_dot_type.
 */
#ifndef PI_QUANT_DOT_IMPL_H
#define PI_QUANT_DOT_IMPL_H

#include "quant.h"

#include <string.h>

#define PI_DOT_DECL(name) float name(int64_t n, const void *w, const void *a)

/* AVX2 + FMA + F16C kernels; call only when pi_cpu_features() has all
 * three, and only after pi_dot_avx2_init() has returned (it fills the
 * f16 -> f32 table the kernels read scales through). */
void pi_dot_avx2_init(void);
PI_DOT_DECL(pi_dot_f32_avx2);
PI_DOT_DECL(pi_dot_f16_avx2);
PI_DOT_DECL(pi_dot_bf16_avx2);
PI_DOT_DECL(pi_dot_q4_0_avx2);
PI_DOT_DECL(pi_dot_q4_1_avx2);
PI_DOT_DECL(pi_dot_q5_0_avx2);
PI_DOT_DECL(pi_dot_q5_1_avx2);
PI_DOT_DECL(pi_dot_q8_0_avx2);
PI_DOT_DECL(pi_dot_q2_k_avx2);
PI_DOT_DECL(pi_dot_q3_k_avx2);
PI_DOT_DECL(pi_dot_q4_k_avx2);
PI_DOT_DECL(pi_dot_q5_k_avx2);
PI_DOT_DECL(pi_dot_q6_k_avx2);

/* Q4_K and Q5_K pack eight 6-bit scales and eight 6-bit minimums into 12
 * bytes: bytes 0-3 hold the low 6 bits of scales 0-3 (top 2 bits: high bits
 * of scales 4-7), bytes 4-7 the same for the minimums, bytes 8-11 the low
 * nibbles of scales 4-7 and (high nibble) of minimums 4-7.  Working on
 * 32-bit words unpacks four at once and leaves the result where the SIMD
 * kernels can move it straight into a vector register.  Out: words 0-1 hold
 * scales 0-7 as bytes, words 2-3 minimums 0-7 (little-endian hosts, like
 * GGUF itself). */
static inline void pi_q4_k_scale_words(const uint8_t s[12], uint32_t o[4])
{
    uint32_t u[3];
    memcpy(u, s, 12);
    o[0] = u[0] & 0x3f3f3f3fu;
    o[1] = (u[2] & 0x0f0f0f0fu) | ((u[0] >> 2) & 0x30303030u);
    o[2] = u[1] & 0x3f3f3f3fu;
    o[3] = ((u[2] >> 4) & 0x0f0f0f0fu) | ((u[1] >> 2) & 0x30303030u);
}

/* Q3_K packs sixteen 6-bit scales (stored +32) into 12 bytes: bytes 0-7 hold
 * the low nibbles (scale j in byte j%8, high nibble for j >= 8), bytes 8-11
 * two high bits each (scale j in byte 8 + j%4, bit pair j/4).  Out: the 16
 * biased scales (0..63) as bytes of four words. */
static inline void pi_q3_k_scale_words(const uint8_t s[12], uint32_t o[4])
{
    uint32_t u[3];
    memcpy(u, s, 12);
    o[0] = (u[0] & 0x0f0f0f0fu) | ((u[2] & 0x03030303u) << 4);
    o[1] = (u[1] & 0x0f0f0f0fu) | (((u[2] >> 2) & 0x03030303u) << 4);
    o[2] = ((u[0] >> 4) & 0x0f0f0f0fu) | (((u[2] >> 4) & 0x03030303u) << 4);
    o[3] = ((u[1] >> 4) & 0x0f0f0f0fu) | (((u[2] >> 6) & 0x03030303u) << 4);
}

#endif
