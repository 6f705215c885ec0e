/*
 * axpy: weighted sums of quantised rows (see axpy.h): the plain C version
 * and the run-time choice.
 */
#include "axpy.h"

#include "axpy_impl.h"
#include "cpu.h"

#define SLICE 256 /* floats dequantised at a time: a multiple of every block size */

static void axpy_scalar(pi_type type, int64_t n, int k, const float *a, const void *const *w,
                        float *y)
{
    const pi_type_traits *tr = pi_type_get_traits(type);
    int64_t per = SLICE / tr->block_size * tr->block_size;
    float buf[SLICE];
    for (int64_t i = 0; i < n; i += per) {
        int64_t len = n - i < per ? n - i : per;
        size_t off = (size_t)(i / tr->block_size) * tr->type_size;
        for (int r = 0; r < k; r++) {
            pi_dequantize_row(type, (const uint8_t *)w[r] + off, buf, len);
            for (int64_t j = 0; j < len; j++)
                y[i + j] += a[r] * buf[j];
        }
    }
}

#define SCALAR(T)                                                                             \
    static void axpy_##T(int64_t n, int k, const float *a, const void *const *w, float *y)   \
    {                                                                                         \
        axpy_scalar(PI_TYPE_##T, n, k, a, w, y);                                              \
    }
SCALAR(F32)
SCALAR(F16)
SCALAR(BF16)
SCALAR(Q4_0)
SCALAR(Q4_1)
SCALAR(Q5_0)
SCALAR(Q5_1)
SCALAR(Q8_0)
SCALAR(Q2_K)
SCALAR(Q3_K)
SCALAR(Q4_K)
SCALAR(Q5_K)
SCALAR(Q6_K)

static pi_axpy_fn scalar_fn(pi_type type)
{
    switch (type) {
    case PI_TYPE_F32: return axpy_F32;
    case PI_TYPE_F16: return axpy_F16;
    case PI_TYPE_BF16: return axpy_BF16;
    case PI_TYPE_Q4_0: return axpy_Q4_0;
    case PI_TYPE_Q4_1: return axpy_Q4_1;
    case PI_TYPE_Q5_0: return axpy_Q5_0;
    case PI_TYPE_Q5_1: return axpy_Q5_1;
    case PI_TYPE_Q8_0: return axpy_Q8_0;
    case PI_TYPE_Q2_K: return axpy_Q2_K;
    case PI_TYPE_Q3_K: return axpy_Q3_K;
    case PI_TYPE_Q4_K: return axpy_Q4_K;
    case PI_TYPE_Q5_K: return axpy_Q5_K;
    case PI_TYPE_Q6_K: return axpy_Q6_K;
    default: return NULL;
    }
}

pi_axpy_fn pi_axpy_get_isa(pi_type type, pi_isa isa)
{
    if (isa == PI_ISA_SCALAR)
        return scalar_fn(type);
    const pi_cpu *c = pi_cpu_features();
    bool avx2 = c->avx2 && c->fma && c->f16c;
    if (isa == PI_ISA_AVX2 && avx2)
        return pi_axpy_avx2(type);
    if (isa == PI_ISA_AVX512 && avx2 && c->avx512f && c->avx512bw && c->avx512vl)
        return pi_axpy_avx512(type);
    return NULL;
}

pi_axpy_fn pi_axpy_get(pi_type type)
{
    /* The newest ISA that has a version for the type. */
    for (int isa = PI_ISA_COUNT - 1; isa > PI_ISA_SCALAR; isa--) {
        pi_axpy_fn f = pi_axpy_get_isa(type, (pi_isa)isa);
        if (f)
            return f;
    }
    return scalar_fn(type);
}
