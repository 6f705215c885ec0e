/*
 * quant_dot_impl: internal interface between the dot-product dispatcher
 * (quant_dot.c, which also holds the scalar kernels and the activation
 * packing) and the SIMD kernel files (quant_dot_avx2.c, quant_dot_avx512.c).
 * Not installed; nothing outside libpi includes it but the dot-product
 * tests, which check the packed layout.
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
/* f16 bits -> float, filled by pi_dot_avx2_init() (global only so that the
 * AVX-512 kernels can share it; read-only once a kernel is handed out). */
extern float pi_dot_f16_table[1 << 16];
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

/* AVX-512 (F, BW, VL, VNNI) kernels; call only when the CPU has those and
 * AVX2/FMA/F16C, after pi_dot_avx2_init().  Types without one here use the
 * AVX2 kernel (quant_dot.c's table says why). */
PI_DOT_DECL(pi_dot_q4_1_avx512);
PI_DOT_DECL(pi_dot_q5_0_avx512);
PI_DOT_DECL(pi_dot_q5_1_avx512);
PI_DOT_DECL(pi_dot_q8_0_avx512);
PI_DOT_DECL(pi_dot_q6_k_avx512);

/* ---- packed activation batches ----------------------------------------- */

/* The batched kernels (pi_vec_dot_nx_fn) read activations packed by
 * pi_dot_pack_row().  For the K-quants the packed form is plain Q8_K rows,
 * one after the other.  For the legacy types it is built so that a 512-bit
 * load is a whole operand of vpdpbusd and the scales are vectors:
 *
 *   rows go in groups of PI_DOT_GROUP (the last group may hold fewer, g);
 *   with nb blocks per row, a group of g rows takes PI_PACK_BLOCK * nb * g
 *   bytes and group j starts at PI_PACK_BLOCK * nb * PI_DOT_GROUP * j;
 *   within a group, blocks go in chunks of PI_PACK_CHUNK (the last may hold
 *   fewer, r); chunk c starts at PI_PACK_BLOCK * PI_PACK_CHUNK * c * g and
 *   holds, in order,
 *     codes: for each row t < g, elements 0-15 of each of the chunk's r
 *            blocks, then elements 16-31 of each (32 * r bytes per row),
 *            which is where the low and the high nibbles of r packed 4-bit
 *            blocks go when they are loaded side by side;
 *     d:     float[r][g], the activation scales;
 *     sum:   [r][g]: for Q8_1 (Q4_1/Q5_1 weights) float s, Q8_1's s
 *            widened; for Q8_0 int32 sum(codes), which the kernels scale
 *            by the offset they add to signed weight codes.
 *
 * PI_PACK_BLOCK = 32 codes + d + sum = 40 bytes per block of each row.
 * The form depends only on the activation type, not on the weight type:
 * the forward pass quantises once for all weights that share a
 * vec_dot_type, so the weight types of one activation type must have
 * batched kernels at the same ISAs, all or none (quant_dot.c's table). */
#define PI_PACK_BLOCK 40
#define PI_PACK_CHUNK 4

/* Where block b of row t of a packed batch lives. */
typedef struct pi_pack_pos {
    uint8_t *lo, *hi; /* elements 0-15 and 16-31 */
    float *d;
    void *sum;
} pi_pack_pos;

static inline pi_pack_pos pi_pack_locate(const void *acts, int n_acts, int64_t nb, int t, int64_t b)
{
    int j = t / PI_DOT_GROUP, g = n_acts - PI_DOT_GROUP * j, k = (int)(b % PI_PACK_CHUNK);
    int64_t c = b / PI_PACK_CHUNK, r = nb - PI_PACK_CHUNK * c;
    g = g < PI_DOT_GROUP ? g : PI_DOT_GROUP;
    r = r < PI_PACK_CHUNK ? r : PI_PACK_CHUNK;
    t %= PI_DOT_GROUP;
    uint8_t *chunk = (uint8_t *)acts + (size_t)PI_PACK_BLOCK * nb * PI_DOT_GROUP * j +
                     (size_t)PI_PACK_BLOCK * PI_PACK_CHUNK * c * g;
    pi_pack_pos p;
    p.lo = chunk + 32 * r * t + 16 * k;
    p.hi = p.lo + 16 * r;
    p.d = (float *)(chunk + 32 * r * g) + k * g + t;
    p.sum = (float *)(chunk + 36 * r * g) + k * g + t;
    return p;
}

/* Q8_0/Q8_1 codes of one block exactly as pi_quantize_row() makes them,
 * with the unrounded float d (the f16 fields are the caller's) and the sum
 * of the codes. */
void pi_quantize_q8_block_avx512(const float *x, int8_t qs[PI_QK], float *d, int32_t *sum);

/* Batched kernels; the same conditions as the single ones. */
#define PI_DOT_NX_DECL(name) \
    void name(int64_t n, const void *w, const void *acts, int n_acts, float *out, int64_t out_stride)
PI_DOT_NX_DECL(pi_dot_nx_q4_0_avx512);
PI_DOT_NX_DECL(pi_dot_nx_q4_1_avx512);
PI_DOT_NX_DECL(pi_dot_nx_q5_0_avx512);
PI_DOT_NX_DECL(pi_dot_nx_q5_1_avx512);
PI_DOT_NX_DECL(pi_dot_nx_q8_0_avx512);
PI_DOT_NX_DECL(pi_dot_nx_q4_k_avx512);
PI_DOT_NX_DECL(pi_dot_nx_q6_k_avx512);

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
