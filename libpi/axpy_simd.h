/* axpy: what the SIMD versions share, for files compiled with F16C. */
#ifndef PI_AXPY_SIMD_H
#define PI_AXPY_SIMD_H

#include <immintrin.h>

#include "quant.h"

static inline float half_to_f32(pi_f16 h) { return _cvtsh_ss(h); }

/* Block b of a Q4_0 or Q4_1 row as value = d * code + m: its codes, d and m
 * (Q4_0 codes are offset by 8, so m = -8 d). */
static inline const uint8_t *axpy_q4_block(const void *row, int64_t b, int affine, float *d,
                                           float *m)
{
    if (affine) {
        const pi_block_q4_1 *blk = (const pi_block_q4_1 *)row + b;
        *d = half_to_f32(blk->d);
        *m = half_to_f32(blk->m);
        return blk->qs;
    }
    const pi_block_q4_0 *blk = (const pi_block_q4_0 *)row + b;
    *d = half_to_f32(blk->d);
    *m = -8.0f * *d;
    return blk->qs;
}

#endif
