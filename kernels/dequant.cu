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

#include "kernels.h"

extern "C" {
#include "quant.h"
}

/* The device reads blocks through these structs, so their layout must be
 * GGUF's, exactly as quant.c asserts for the CPU. */
static_assert(sizeof(pi_block_q4_0) == 18 && sizeof(pi_block_q4_1) == 20, "legacy layout");
static_assert(sizeof(pi_block_q5_0) == 22 && sizeof(pi_block_q5_1) == 24, "legacy layout");
static_assert(sizeof(pi_block_q8_0) == 34, "Q8_0 layout");
static_assert(sizeof(pi_block_q2_K) == 84 && sizeof(pi_block_q3_K) == 110, "K layout");
static_assert(sizeof(pi_block_q4_K) == 144 && sizeof(pi_block_q5_K) == 176, "K layout");
static_assert(sizeof(pi_block_q6_K) == 210, "Q6_K layout");

/* ---- scalar helpers --------------------------------------------------- */

__device__ static inline float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t em = h & 0x7fffu;

    if (em >= 0x7c00u) /* inf or NaN */
        return __uint_as_float(sign | 0x7f800000u | (em & 0x3ffu) << 13);
    if (em >= 0x0400u) /* normal: rebias the exponent from 15 to 127 */
        return __uint_as_float(sign | ((em << 13) + ((127u - 15u) << 23)));
    /* zero or subnormal: em * 2^-24 is exact, and normal as a float */
    float v = __fmul_rn(__uint2float_rn(em), 5.9604644775390625e-8f);
    return __uint_as_float(sign | __float_as_uint(v));
}

/* Legacy 32-element blocks: byte j holds element j in its low nibble and
 * element j + 16 in its high nibble. */
__device__ static inline int nibble32(const uint8_t *qs, int j)
{
    return j < PI_QK / 2 ? qs[j] & 0xf : qs[j - PI_QK / 2] >> 4;
}

/* Q5 fifth bits: a little-endian 32-bit mask, bit j for element j. */
__device__ static inline int fifth_bit(const uint8_t qh[4], int j)
{
    return qh[j / 8] >> (j % 8) & 1;
}

/* ---- one element of each type ----------------------------------------- */

/* Each type is a struct with its block type, elements per block, and
 * at(b, j): element j of block b, computed exactly as the CPU does. */

struct deq_f32 {
    typedef uint32_t block; /* bits, so nothing can touch a NaN */
    enum { qk = 1, align = 4 };
    __device__ static float at(const block *b, int j) { return __uint_as_float(*b); }
};

struct deq_f16 {
    typedef pi_f16 block;
    enum { qk = 1, align = 2 };
    __device__ static float at(const block *b, int j) { return f16_to_f32(*b); }
};

struct deq_bf16 {
    typedef pi_bf16 block;
    enum { qk = 1, align = 2 };
    __device__ static float at(const block *b, int j)
    {
        return __uint_as_float((uint32_t)*b << 16);
    }
};

struct deq_q4_0 {
    typedef pi_block_q4_0 block;
    enum { qk = PI_QK, align = 2 };
    __device__ static float at(const block *b, int j)
    {
        return __fmul_rn(f16_to_f32(b->d), (float)(nibble32(b->qs, j) - 8));
    }
};

struct deq_q4_1 {
    typedef pi_block_q4_1 block;
    enum { qk = PI_QK, align = 2 };
    __device__ static float at(const block *b, int j)
    {
        float dq = __fmul_rn(f16_to_f32(b->d), (float)nibble32(b->qs, j));
        return __fadd_rn(dq, f16_to_f32(b->m));
    }
};

struct deq_q5_0 {
    typedef pi_block_q5_0 block;
    enum { qk = PI_QK, align = 2 };
    __device__ static float at(const block *b, int j)
    {
        int q = nibble32(b->qs, j) | fifth_bit(b->qh, j) << 4;
        return __fmul_rn(f16_to_f32(b->d), (float)(q - 16));
    }
};

struct deq_q5_1 {
    typedef pi_block_q5_1 block;
    enum { qk = PI_QK, align = 2 };
    __device__ static float at(const block *b, int j)
    {
        int q = nibble32(b->qs, j) | fifth_bit(b->qh, j) << 4;
        float dq = __fmul_rn(f16_to_f32(b->d), (float)q);
        return __fadd_rn(dq, f16_to_f32(b->m));
    }
};

struct deq_q8_0 {
    typedef pi_block_q8_0 block;
    enum { qk = PI_QK, align = 2 };
    __device__ static float at(const block *b, int j)
    {
        return __fmul_rn((float)b->qs[j], f16_to_f32(b->d));
    }
};

/* Q2_K: 16-element sub-block s = j / 16 has a 4-bit scale (low nibble) and
 * minimum (high nibble); its 2-bit codes sit in byte 32*(s/8) + 16*(s%2) + l
 * at shift 2*(s/2 % 4). */
struct deq_q2_K {
    typedef pi_block_q2_K block;
    enum { qk = PI_QK_K, align = 2 };
    __device__ static float at(const block *b, int j)
    {
        int s = j / 16, l = j % 16;
        int q = b->qs[32 * (s / 8) + 16 * (s % 2) + l] >> (2 * (s / 2 % 4)) & 3;
        float dl = __fmul_rn(f16_to_f32(b->d), (float)(b->scales[s] & 0xf));
        float ml = __fmul_rn(f16_to_f32(b->dmin), (float)(b->scales[s] >> 4));
        return __fsub_rn(__fmul_rn(dl, (float)q), ml);
    }
};

/* Q3_K: codes laid out as Q2_K's; the third bit is bit s/2 of
 * hmask[16*(s%2) + l] (clear means subtract 4); sixteen 6-bit scales biased
 * by 32, low nibbles of s and s + 8 sharing byte s % 8, high two bits at
 * 2*(s/4) of byte 8 + s%4. */
struct deq_q3_K {
    typedef pi_block_q3_K block;
    enum { qk = PI_QK_K, align = 2 };
    __device__ static float at(const block *b, int j)
    {
        int s = j / 16, l = j % 16;
        int lo = s < 8 ? b->scales[s] & 0xf : b->scales[s - 8] >> 4;
        int hi = b->scales[8 + s % 4] >> (2 * (s / 4)) & 3;
        int sc = (lo | hi << 4) - 32;
        int q = b->qs[32 * (s / 8) + 16 * (s % 2) + l] >> (2 * (s / 2 % 4)) & 3;
        int h = b->hmask[16 * (s % 2) + l] >> (s / 2) & 1;
        float dl = __fmul_rn(f16_to_f32(b->d), (float)sc);
        return __fmul_rn(dl, (float)(q - (h ? 0 : 4)));
    }
};

/* Q4_K/Q5_K: eight 6-bit scales and minimums in 12 bytes.  For s < 4 they
 * are the low six bits of bytes s and s + 4; for s >= 4 the low and high
 * nibbles of byte s + 4 give their low four bits and the top two bits of
 * bytes s - 4 and s give their high two. */
__device__ static inline void scale_min_k4(const uint8_t p[12], int s, int *sc, int *mn)
{
    if (s < 4) {
        *sc = p[s] & 63;
        *mn = p[s + 4] & 63;
    } else {
        *sc = (p[s + 4] & 0xf) | (p[s - 4] >> 6) << 4;
        *mn = (p[s + 4] >> 4) | (p[s] >> 6) << 4;
    }
}

/* Q4_K/Q5_K nibbles: 32-element sub-block s lives in bytes 32*(s/2) + l,
 * low nibble for even s, high for odd; Q5_K's fifth bit is bit s of qh[l]. */
struct deq_q4_K {
    typedef pi_block_q4_K block;
    enum { qk = PI_QK_K, align = 2 };
    __device__ static float at(const block *b, int j)
    {
        int s = j / 32, l = j % 32, sc, mn;
        scale_min_k4(b->scales, s, &sc, &mn);
        int q = b->qs[32 * (s / 2) + l] >> (4 * (s % 2)) & 0xf;
        float ds = __fmul_rn(f16_to_f32(b->d), (float)sc);
        float dm = __fmul_rn(f16_to_f32(b->dmin), (float)mn);
        return __fsub_rn(__fmul_rn(ds, (float)q), dm);
    }
};

struct deq_q5_K {
    typedef pi_block_q5_K block;
    enum { qk = PI_QK_K, align = 2 };
    __device__ static float at(const block *b, int j)
    {
        int s = j / 32, l = j % 32, sc, mn;
        scale_min_k4(b->scales, s, &sc, &mn);
        int q = (b->qs[32 * (s / 2) + l] >> (4 * (s % 2)) & 0xf) | (b->qh[l] >> s & 1) << 4;
        float ds = __fmul_rn(f16_to_f32(b->d), (float)sc);
        float dm = __fmul_rn(f16_to_f32(b->dmin), (float)mn);
        return __fsub_rn(__fmul_rn(ds, (float)q), dm);
    }
};

/* Q6_K element 128*h + 32*k + l: low four bits in ql[64*h + 32*(k%2) + l]
 * (low nibble for k < 2), high two bits at 2k of qh[32*h + l], bias 32; one
 * signed 8-bit scale per 16 elements. */
struct deq_q6_K {
    typedef pi_block_q6_K block;
    enum { qk = PI_QK_K, align = 2 };
    __device__ static float at(const block *b, int j)
    {
        int h = j / 128, k = j / 32 % 4, l = j % 32;
        int lo = b->ql[64 * h + 32 * (k % 2) + l] >> (4 * (k / 2)) & 0xf;
        int hi = b->qh[32 * h + l] >> (2 * k) & 3;
        float ds = __fmul_rn(f16_to_f32(b->d), (float)b->scales[j / 16]);
        return __fmul_rn(ds, (float)((lo | hi << 4) - 32));
    }
};

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
