/*
 * requant: quantising float rows that were already quantised once, as when
 * pi-pack rewrites a down projection neuron-major.
 *
 * For Q4_0, Q4_1, Q5_0 and Q5_1, pi_requantize_row() searches each block's
 * scale (and offset) for the least squared error instead of spanning the
 * block's range as pi_quantize_row() does; the blocks are ordinary blocks of
 * the type.  Other types go to pi_quantize_row().  Deterministic: the same
 * floats give the same bytes.
 */
#ifndef PI_REQUANT_H
#define PI_REQUANT_H

#include <stdint.h>

#include "quant.h"

/* 0, or -1 if the type cannot be quantised or n is not whole blocks. */
int pi_requantize_row(pi_type type, const float *src, void *dst, int64_t n);

#endif
