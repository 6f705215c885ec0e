/*
 * dequant: device kernels that turn rows of GGUF weights into float rows,
 * bit-identical to the CPU's pi_dequantize_row() (libpi/quant.c, quant_k.c).
 *
 * One thread per output element, grid-striding over the row: thread i finds
 * its block (i / block size) and its place in it, so the stores are
 * coalesced and the few bytes each element needs come through the cache
 * that its neighbours share.
 *
 * Bit-exactness: every float operation is an explicit round-to-nearest
 * intrinsic (__fmul_rn, __fadd_rn, __fsub_rn), which nvcc never contracts
 * into an FMA whatever -fmad says, applied in the CPU's order (sub-block
 * scale first, then scale * code, then the minimum).  Half and bfloat16 are
 * widened by bit arithmetic, as on the CPU, so NaN payloads survive too.
 * Integer-to-float conversions are of small integers and therefore exact.
 */
#include <cuda_runtime.h>
#include <stdint.h>

#include "common.cuh"
#include "kernels.h"

/* ---- kernel and launchers --------------------------------------------- */

template <class T>
__global__ void dequant_kernel(const typename T::block *__restrict__ src,
                               float *__restrict__ dst, int64_t n)
{
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        dst[i] = T::at(src + i / T::qk, (int)(i % T::qk));
}

/* 256 threads a block; past 2^16 blocks (16M threads, far more than an
 * H100 holds at once) threads loop instead of the grid growing. */
enum { THREADS = 256, MAX_GRID = 1 << 16 };

template <class T>
static int launch(const void *src, float *dst, int64_t n, void *stream)
{
    if (n < 0 || n % T::qk != 0 || (uintptr_t)src % T::align != 0 || (uintptr_t)dst % 4 != 0)
        return PI_KERNEL_EINVAL;
    if (n == 0)
        return 0;
    int64_t grid = (n + THREADS - 1) / THREADS;
    if (grid > MAX_GRID)
        grid = MAX_GRID;
    dequant_kernel<T><<<(unsigned)grid, THREADS, 0, (cudaStream_t)stream>>>(
        (const typename T::block *)src, dst, n);
    return (int)cudaGetLastError();
}

/* The one table of what has a kernel: `X(type id, functor)`. */
#define PI_DEQUANT_TYPES(X)          \
    X(PI_TYPE_F32, deq_f32)          \
    X(PI_TYPE_F16, deq_f16)          \
    X(PI_TYPE_BF16, deq_bf16)        \
    X(PI_TYPE_Q4_0, deq_q4_0)        \
    X(PI_TYPE_Q4_1, deq_q4_1)        \
    X(PI_TYPE_Q5_0, deq_q5_0)        \
    X(PI_TYPE_Q5_1, deq_q5_1)        \
    X(PI_TYPE_Q8_0, deq_q8_0)        \
    X(PI_TYPE_Q2_K, deq_q2_K)        \
    X(PI_TYPE_Q3_K, deq_q3_K)        \
    X(PI_TYPE_Q4_K, deq_q4_K)        \
    X(PI_TYPE_Q5_K, deq_q5_K)        \
    X(PI_TYPE_Q6_K, deq_q6_K)

extern "C" int pi_kernel_dequantize_supported(uint32_t type)
{
    switch (type) {
#define CASE(id, T) case id: return 1;
        PI_DEQUANT_TYPES(CASE)
#undef CASE
    default:
        return 0;
    }
}

extern "C" int pi_kernel_dequantize(uint32_t type, const void *src, float *dst, int64_t n,
                                    void *stream)
{
    switch (type) {
#define CASE(id, T) case id: return launch<T>(src, dst, n, stream);
        PI_DEQUANT_TYPES(CASE)
#undef CASE
    default:
        return PI_KERNEL_EUNSUPPORTED;
    }
}
