/*
 * vec: float vector primitives of the forward pass that are not matrix
 * products: the attention dot products and weighted sums, and the sums of
 * squares of RMSNorm.
 *
 * Each has a plain C version and an AVX2/FMA one chosen once at run time
 * (PI_ISA=scalar forces the plain ones).  The plain versions are written as
 * loops a compiler will not reorder, so they are the reference the SIMD
 * ones are tested against; results differ by float rounding only.
 */
#ifndef PI_VEC_H
#define PI_VEC_H

#include <stdint.h>

/* sum_i a[i] * b[i] */
float pi_vec_dot(int64_t n, const float *a, const float *b);
/* y[i] += alpha * x[i] */
void pi_vec_axpy(int64_t n, float alpha, const float *x, float *y);
/* sum_i x[i]^2, accumulated in double precision or better */
double pi_vec_sumsq(int64_t n, const float *x);

/* The plain C versions, for tests. */
float pi_vec_dot_scalar(int64_t n, const float *a, const float *b);
void pi_vec_axpy_scalar(int64_t n, float alpha, const float *x, float *y);
double pi_vec_sumsq_scalar(int64_t n, const float *x);

#endif
