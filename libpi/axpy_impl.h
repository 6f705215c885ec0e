/* axpy: the SIMD versions, private to axpy.c (see axpy.h). */
#ifndef PI_AXPY_IMPL_H
#define PI_AXPY_IMPL_H

#include "axpy.h"

pi_axpy_fn pi_axpy_avx2(pi_type type);   /* NULL for types it lacks */
pi_axpy_fn pi_axpy_avx512(pi_type type); /* NULL for types it lacks */

#endif
