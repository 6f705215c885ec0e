/* vec: the SIMD implementations, private to vec.c (see vec.h). */
#ifndef PI_VEC_IMPL_H
#define PI_VEC_IMPL_H

#include <stdint.h>

float pi_vec_dot_avx2(int64_t n, const float *a, const float *b);
void pi_vec_axpy_avx2(int64_t n, float alpha, const float *x, float *y);
double pi_vec_sumsq_avx2(int64_t n, const float *x);

#endif
