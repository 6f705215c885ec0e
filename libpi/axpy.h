/*
 * axpy: accumulating weighted rows of a quantised matrix into a float vector,
 * y += sum_r a[r] * row_r, dequantising on the fly.  This is the product of
 * a neuron-major down projection (a packed model's ffn_down_t): each active
 * neuron adds its activation times its row.
 *
 * Up to PI_AXPY_ROWS rows go in at once so that y is loaded and stored once
 * per group rather than once per row.  Rows are whole blocks of their type;
 * n is a multiple of the block size.  A plain C version serves every type
 * that can be dequantised; AVX2 versions cover F32, F16, Q8_0, Q4_0 and
 * Q4_1, AVX-512 ones Q8_0, Q4_0 and Q4_1 (chosen at run time; PI_ISA caps
 * them, see cpu.h).  The versions agree to float rounding: the SIMD ones
 * fuse multiply-adds.
 */
#ifndef PI_AXPY_H
#define PI_AXPY_H

#include <stdint.h>

#include "quant.h"

#define PI_AXPY_ROWS 4

/* y[0..n) += sum over r < k of a[r] * dequantised w[r][0..n), 1 <= k <= 4. */
typedef void (*pi_axpy_fn)(int64_t n, int k, const float *a, const void *const *w, float *y);

/* Best version for this CPU; NULL if the type cannot be dequantised. */
pi_axpy_fn pi_axpy_get(pi_type type);
/* A given ISA's; NULL when it has none for the type or the CPU lacks it. */
pi_axpy_fn pi_axpy_get_isa(pi_type type, pi_isa isa);

#endif
