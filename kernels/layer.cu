/*
 * layer: device kernels for the parts of a decoder layer that are not
 * products with weights: the embedding lookup, RMSNorm, residual and bias
 * additions, RoPE, the half-precision KV cache and causal attention over
 * it, the SwiGLU activation, and the predictor's bias, ReLU and selection.
 *
 * Each follows the CPU code it replaces (libpi/forward.c, ffn.c,
 * predictor.c, vec.c) operation for operation.  Element-wise float math
 * uses the explicit round-to-nearest intrinsics (__fadd_rn, __fmul_rn...)
 * so that nvcc never fuses a multiply and an add that the CPU (built with
 * -ffp-contract=off) keeps apart: the embedding rows and the KV store are
 * bit-exact, the additions and the ReLU are single float operations, and
 * the rest differ from the CPU only where a library function (CUDA's expf
 * and sincosf, within 2 ulp) or an order of summation differs.  Sums
 * (RMSNorm's, attention's dot products and softmax) are in the kernels'
 * own order.
 */
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include "common.cuh"
#include "kernels.h"

/* The kernels and their helpers have internal linkage: other .cu files
 * have launch helpers of the same names. */
namespace {

/* 256 threads a block for the element-wise kernels; past 2^16 blocks
 * threads loop (grid-stride) instead of the grid growing.  A grid's y
 * dimension stops at 65535, so loops over rows stride by gridDim.y. */
enum { THREADS = 256, MAX_GRID = 1 << 16, MAX_GRID_Y = 65535 };

const unsigned FULL_MASK = 0xffffffffu;

unsigned blocks_for(int64_t n)
{
    int64_t g = (n + THREADS - 1) / THREADS;
    return (unsigned)(g < MAX_GRID ? g : MAX_GRID);
}

unsigned rows_for(int64_t n_rows)
{
    return (unsigned)(n_rows < MAX_GRID_Y ? n_rows : MAX_GRID_Y);
}

/* ---- embedding rows --------------------------------------------------- */

/* Token t's row, grid-striding over its elements as dequant.cu does and
 * with the same element functions (common.cuh), so the bits are the CPU's;
 * the grid's y dimension walks the tokens. */
template <class T>
__global__ void get_rows_kernel(const uint8_t *table, size_t row_bytes, int64_t n,
                                const int32_t *ids, int n_tok, float *out)
{
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int t = blockIdx.y; t < n_tok; t += gridDim.y) {
        const typename T::block *row =
            (const typename T::block *)(table + (size_t)ids[t] * row_bytes);
        float *dst = out + (int64_t)t * n;
        for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
            dst[i] = T::at(row + i / T::qk, (int)(i % T::qk));
    }
}

template <class T>
int launch_get_rows(const void *table, size_t row_bytes, int64_t n, const int32_t *ids,
                    int n_tok, float *out, void *stream)
{
    if (n < 0 || n % T::qk != 0 || n_tok < 0 || (uintptr_t)table % T::align != 0 ||
        row_bytes % T::align != 0 || (uintptr_t)out % 4 != 0)
        return PI_KERNEL_EINVAL;
    if (n == 0 || n_tok == 0)
        return 0;
    dim3 grid(blocks_for(n), rows_for(n_tok));
    get_rows_kernel<T><<<grid, THREADS, 0, (cudaStream_t)stream>>>(
        (const uint8_t *)table, row_bytes, n, ids, n_tok, out);
    return (int)cudaGetLastError();
}

/* ---- RMSNorm ---------------------------------------------------------- */

/* The sum of v over the block, in every thread.  blockDim.x is a multiple
 * of 32; `shared` holds 32 doubles.  The closing barrier lets the caller
 * reuse `shared` at once. */
__device__ double block_sum(double v, double *shared)
{
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
    for (int off = 16; off > 0; off >>= 1)
        v += __shfl_xor_sync(FULL_MASK, v, off);
    if (lane == 0)
        shared[warp] = v;
    __syncthreads();
    v = lane < nw ? shared[lane] : 0.0;
    for (int off = 16; off > 0; off >>= 1)
        v += __shfl_xor_sync(FULL_MASK, v, off);
    __syncthreads();
    return v;
}

/* One block per row.  The sum of squares is a double, as the CPU's
 * pi_vec_sumsq is (each square of a float is exact in a double, so only
 * the order of the sum differs), and the scale is computed in double and
 * rounded to float, as forward.c's rmsnorm does; then x * s * w in that
 * order.  y may be x: a thread rewrites only the elements it read, after
 * the barrier that ends the sum. */
__global__ void rmsnorm_kernel(const float *x, const float *w, float *y, int64_t n_rows,
                               int64_t n, float eps)
{
    __shared__ double partial[32];
    for (int64_t r = blockIdx.x; r < n_rows; r += gridDim.x) {
        const float *xr = x + r * n;
        float *yr = y + r * n;
        double s = 0.0;
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
            double v = xr[i];
            s += v * v;
        }
        s = block_sum(s, partial);
        float scale = (float)(1.0 / sqrt(s / (double)n + (double)eps));
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
            yr[i] = __fmul_rn(__fmul_rn(xr[i], scale), w[i]);
    }
}

/* ---- element-wise ----------------------------------------------------- */

__global__ void add_kernel(float *y, const float *x, int64_t n)
{
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        y[i] = __fadd_rn(y[i], x[i]);
}

/* b[j] added to column j of every row; then, for the predictor's hidden
 * layer, a ReLU written as predictor.c's `h > 0 ? h : 0`, which sends -0
 * and NaN to +0 where fmaxf might not. */
template <bool RELU>
__global__ void bias_kernel(float *y, const float *b, int64_t n_rows, int64_t n)
{
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t r = blockIdx.y; r < n_rows; r += gridDim.y)
        for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < n; j += stride) {
            float v = __fadd_rn(y[r * n + j], b[j]);
            y[r * n + j] = RELU ? (v > 0.0f ? v : 0.0f) : v;
        }
}

template <bool RELU>
int launch_bias(float *y, const float *b, int64_t n_rows, int64_t n, void *stream)
{
    if (n_rows < 0 || n < 0)
        return PI_KERNEL_EINVAL;
    if (n_rows == 0 || n == 0)
        return 0;
    dim3 grid(blocks_for(n), rows_for(n_rows));
    bias_kernel<RELU><<<grid, THREADS, 0, (cudaStream_t)stream>>>(y, b, n_rows, n);
    return (int)cudaGetLastError();
}

/* ffn.c's g / (1 + expf(-g)) * u, in that order.  CUDA's expf is within
 * 2 ulp, not glibc's, so a result may differ from the CPU's in its last
 * bits. */
__global__ void swiglu_kernel(const float *gate, const float *up, float *out, int64_t n)
{
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        float g = gate[i];
        out[i] = __fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, expf(-g))), up[i]);
    }
}

/* ---- RoPE and the KV cache -------------------------------------------- */

/* One thread per rotated pair (token, head, i).  The angle is the float
 * product pos * freq[i], rounded once as on the CPU (forward.c's
 * rope_angles), so both sides take the sine of the same float. */
__global__ void rope_kernel(float *x, int n_head, int head_dim, int half, int pos0,
                            const float *freq, int neox, int64_t n_pairs)
{
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t id = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; id < n_pairs;
         id += stride) {
        int i = (int)(id % half);
        int64_t head = id / half; /* t * n_head + h: heads are contiguous */
        int t = (int)(head / n_head);
        float *v = x + head * head_dim;
        float sn, co;
        sincosf(__fmul_rn(__int2float_rn(pos0 + t), freq[i]), &sn, &co);
        int a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
        float x0 = v[a], x1 = v[b];
        v[a] = __fsub_rn(__fmul_rn(x0, co), __fmul_rn(x1, sn));
        v[b] = __fadd_rn(__fmul_rn(x0, sn), __fmul_rn(x1, co));
    }
}

/* The rows of n_tok tokens are contiguous in k, v and in the caches (at
 * position pos0 onwards), so the store is one flat conversion. */
__global__ void kv_store_kernel(const float *k, const float *v, uint16_t *k_cache,
                                uint16_t *v_cache, int64_t n)
{
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        k_cache[i] = __half_as_ushort(__float2half_rn(k[i]));
        v_cache[i] = __half_as_ushort(__float2half_rn(v[i]));
    }
}

/* ---- attention -------------------------------------------------------- */

/* One block per (token, head), its warps taking turns over the positions
 * ATT_STEP at a time (warp w: positions w*STEP.., then (w + nw)*STEP..),
 * each warp with its own running maximum m, sum l and weighted sum acc
 * (online softmax: on a new maximum the old sums are scaled by
 * exp(m_old - m_new)), merged across warps at the end.  No scratch, any
 * context length.  Lane owns dimensions lane + 32e, e < E, so a warp's
 * loads of one cache row are contiguous.  Several positions a step give
 * the warp independent loads and shuffles to overlap. */
enum { ATT_MAX_WARPS = 16, ATT_STEP = 4, ATT_MAX_DIM = 256, ATT_MAX_GRID = 1 << 20 };

template <int E>
__global__ void __launch_bounds__(32 * ATT_MAX_WARPS)
attention_kernel(const float *q, const __half *k_cache, const __half *v_cache, float *out,
                 int n_tok, int pos0, int n_head, int group, int head_dim, int64_t kv_dim,
                 float scale)
{
    __shared__ float s_acc[ATT_MAX_WARPS][ATT_MAX_DIM];
    __shared__ float s_m[ATT_MAX_WARPS], s_l[ATT_MAX_WARPS];
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
    const int64_t n_heads = (int64_t)n_tok * n_head;

    for (int64_t th = blockIdx.x; th < n_heads; th += gridDim.x) {
        const int t = (int)(th / n_head), h = (int)(th % n_head);
        const int len = pos0 + t + 1; /* causal: positions 0 .. pos0 + t */
        const float *qh = q + th * head_dim; /* row t, head h */
        const __half *kh = k_cache + (int64_t)(h / group) * head_dim;
        const __half *vh = v_cache + (int64_t)(h / group) * head_dim;

        float qv[E], acc[E];
#pragma unroll
        for (int e = 0; e < E; e++) {
            int d = lane + 32 * e;
            qv[e] = d < head_dim ? qh[d] : 0.0f;
            acc[e] = 0.0f;
        }
        float m = -INFINITY, l = 0.0f;

        /* j0 depends on the warp only, so every branch on it is uniform
         * within the warp and the full-mask shuffles see all 32 lanes. */
        for (int j0 = warp * ATT_STEP; j0 < len; j0 += nw * ATT_STEP) {
            float s[ATT_STEP];
#pragma unroll
            for (int u = 0; u < ATT_STEP; u++) {
                float dot = 0.0f;
                if (j0 + u < len) {
                    const __half *kr = kh + (int64_t)(j0 + u) * kv_dim;
#pragma unroll
                    for (int e = 0; e < E; e++) {
                        int d = lane + 32 * e;
                        if (d < head_dim)
                            dot = fmaf(qv[e], __half2float(kr[d]), dot);
                    }
                }
                s[u] = dot;
            }
#pragma unroll
            for (int off = 16; off > 0; off >>= 1)
#pragma unroll
                for (int u = 0; u < ATT_STEP; u++)
                    s[u] += __shfl_xor_sync(FULL_MASK, s[u], off);

            float mx = m;
#pragma unroll
            for (int u = 0; u < ATT_STEP; u++) {
                s[u] = j0 + u < len ? s[u] * scale : -INFINITY;
                mx = fmaxf(mx, s[u]);
            }
            /* mx is finite (position j0 is in range); on the first step m
             * is -inf and corr is 0, which clears nothing but zeros. */
            float corr = expf(m - mx);
            l *= corr;
#pragma unroll
            for (int e = 0; e < E; e++)
                acc[e] *= corr;
#pragma unroll
            for (int u = 0; u < ATT_STEP; u++) {
                if (j0 + u >= len)
                    continue;
                float p = expf(s[u] - mx);
                const __half *vr = vh + (int64_t)(j0 + u) * kv_dim;
                l += p;
#pragma unroll
                for (int e = 0; e < E; e++) {
                    int d = lane + 32 * e;
                    if (d < head_dim)
                        acc[e] = fmaf(p, __half2float(vr[d]), acc[e]);
                }
            }
            m = mx;
        }

        /* Merge the warps: a warp that had no position has m = -inf and
         * l = acc = 0, and its factor exp(-inf) = 0 drops it. */
        if (lane == 0) {
            s_m[warp] = m;
            s_l[warp] = l;
        }
#pragma unroll
        for (int e = 0; e < E; e++) {
            int d = lane + 32 * e;
            if (d < head_dim)
                s_acc[warp][d] = acc[e];
        }
        __syncthreads();
        float mx = -INFINITY, sum = 0.0f;
        for (int w = 0; w < nw; w++)
            mx = fmaxf(mx, s_m[w]);
        for (int w = 0; w < nw; w++)
            sum += expf(s_m[w] - mx) * s_l[w];
        for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
            float o = 0.0f;
            for (int w = 0; w < nw; w++)
                o = fmaf(expf(s_m[w] - mx), s_acc[w][d], o);
            out[th * head_dim + d] = o / sum;
        }
        __syncthreads(); /* before the next (token, head) reuses the arrays */
    }
}

template <int E>
int launch_attention(const float *q, const uint16_t *k_cache, const uint16_t *v_cache,
                     float *out, int n_tok, int pos0, int n_head, int n_head_kv, int head_dim,
                     float scale, void *stream)
{
    /* Enough warps that each has a few steps of the longest row. */
    int64_t len = (int64_t)pos0 + n_tok, nw = (len + 4 * ATT_STEP - 1) / (4 * ATT_STEP);
    if (nw > ATT_MAX_WARPS)
        nw = ATT_MAX_WARPS;
    int64_t n_heads = (int64_t)n_tok * n_head;
    unsigned grid = (unsigned)(n_heads < ATT_MAX_GRID ? n_heads : ATT_MAX_GRID);
    attention_kernel<E><<<grid, (unsigned)(32 * nw), 0, (cudaStream_t)stream>>>(
        q, (const __half *)k_cache, (const __half *)v_cache, out, n_tok, pos0, n_head,
        n_head / n_head_kv, head_dim, (int64_t)n_head_kv * head_dim, scale);
    return (int)cudaGetLastError();
}

/* ---- the predictor's selection ---------------------------------------- */

/* One block per token walks its n_ff logits in chunks of SEL_CHUNK: each
 * thread tests SEL_ITEMS elements (item k of thread i is element
 * chunk + k * SEL_THREADS + i, so loads stay coalesced), a warp ballot per
 * item gives each warp's count and each lane's rank within it, and one
 * warp scans the SEL_ITEMS * SEL_WARPS counts in element order to place
 * every warp's run.  Selected indices thus come out ascending. */
enum {
    SEL_WARPS = 32,
    SEL_THREADS = 32 * SEL_WARPS,
    SEL_ITEMS = 8,
    SEL_CHUNK = SEL_THREADS * SEL_ITEMS,
    SEL_PER_LANE = SEL_ITEMS * SEL_WARPS / 32 /* counts each lane of the scan holds */
};
static_assert(SEL_PER_LANE * 32 == SEL_ITEMS * SEL_WARPS, "scan covers every count");

__global__ void __launch_bounds__(SEL_THREADS)
select_kernel(const float *z, const float *b, int64_t n_ff, float threshold, int32_t *idx,
              int32_t *n_sel)
{
    /* offset[k * SEL_WARPS + w]: warp w's count for item k, then (after
     * the scan) the number of selected elements before that run. */
    __shared__ int offset[SEL_ITEMS * SEL_WARPS];
    __shared__ int chunk_total;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, t = blockIdx.x;
    const float *zt = z + (int64_t)t * n_ff;
    int32_t *out = idx + (int64_t)t * n_ff;
    const unsigned below = (1u << lane) - 1u; /* lanes before this one */
    int base = 0;                             /* selected in earlier chunks */

    for (int64_t c0 = 0; c0 < n_ff; c0 += SEL_CHUNK) {
        unsigned mask[SEL_ITEMS];
#pragma unroll
        for (int k = 0; k < SEL_ITEMS; k++) {
            int64_t i = c0 + (int64_t)k * SEL_THREADS + threadIdx.x;
            bool on = i < n_ff && __fadd_rn(zt[i], b[i]) > threshold;
            mask[k] = __ballot_sync(FULL_MASK, on);
        }
        if (lane == 0)
#pragma unroll
            for (int k = 0; k < SEL_ITEMS; k++)
                offset[k * SEL_WARPS + warp] = __popc(mask[k]);
        __syncthreads();
        if (warp == 0) { /* exclusive scan; lane L holds counts L*PER_LANE.. */
            int c[SEL_PER_LANE], mine = 0;
#pragma unroll
            for (int e = 0; e < SEL_PER_LANE; e++) {
                c[e] = offset[lane * SEL_PER_LANE + e];
                mine += c[e];
            }
            int incl = mine;
#pragma unroll
            for (int off = 1; off < 32; off <<= 1) {
                int o = __shfl_up_sync(FULL_MASK, incl, off);
                if (lane >= off)
                    incl += o;
            }
            int run = incl - mine;
#pragma unroll
            for (int e = 0; e < SEL_PER_LANE; e++) {
                offset[lane * SEL_PER_LANE + e] = run;
                run += c[e];
            }
            if (lane == 31)
                chunk_total = incl;
        }
        __syncthreads();
#pragma unroll
        for (int k = 0; k < SEL_ITEMS; k++)
            if (mask[k] >> lane & 1u)
                out[base + offset[k * SEL_WARPS + warp] + __popc(mask[k] & below)] =
                    (int32_t)(c0 + (int64_t)k * SEL_THREADS + threadIdx.x);
        base += chunk_total;
        __syncthreads(); /* before the next chunk rewrites offset and chunk_total */
    }
    if (threadIdx.x == 0)
        n_sel[t] = base;
}

} /* namespace */

/* ---- C entry points (kernels.h) --------------------------------------- */

/* The types get_rows decodes: every type with an element functor in
 * common.cuh, `X(type id, functor)`. */
#define PI_GET_ROWS_TYPES(X)  \
    X(PI_TYPE_F32, deq_f32)   \
    X(PI_TYPE_F16, deq_f16)   \
    X(PI_TYPE_BF16, deq_bf16) \
    X(PI_TYPE_Q4_0, deq_q4_0) \
    X(PI_TYPE_Q4_1, deq_q4_1) \
    X(PI_TYPE_Q5_0, deq_q5_0) \
    X(PI_TYPE_Q5_1, deq_q5_1) \
    X(PI_TYPE_Q8_0, deq_q8_0) \
    X(PI_TYPE_Q2_K, deq_q2_K) \
    X(PI_TYPE_Q3_K, deq_q3_K) \
    X(PI_TYPE_Q4_K, deq_q4_K) \
    X(PI_TYPE_Q5_K, deq_q5_K) \
    X(PI_TYPE_Q6_K, deq_q6_K)

extern "C" int pi_kernel_get_rows(uint32_t type, const void *table, size_t row_bytes, int64_t n,
                                  const int32_t *ids, int n_tok, float *out, void *stream)
{
    switch (type) {
#define CASE(id, T) \
    case id: return launch_get_rows<T>(table, row_bytes, n, ids, n_tok, out, stream);
        PI_GET_ROWS_TYPES(CASE)
#undef CASE
    default:
        return PI_KERNEL_EUNSUPPORTED;
    }
}

extern "C" int pi_kernel_rmsnorm(const float *x, const float *w, float *y, int64_t n_rows,
                                 int64_t n, float eps, void *stream)
{
    if (n_rows < 0 || n < 0)
        return PI_KERNEL_EINVAL;
    if (n_rows == 0 || n == 0)
        return 0;
    /* A short row (a head, for per-head norms) gets a short block. */
    unsigned threads = n >= THREADS ? THREADS : (unsigned)(n + 31) / 32 * 32;
    unsigned grid = (unsigned)(n_rows < MAX_GRID ? n_rows : MAX_GRID);
    rmsnorm_kernel<<<grid, threads, 0, (cudaStream_t)stream>>>(x, w, y, n_rows, n, eps);
    return (int)cudaGetLastError();
}

extern "C" int pi_kernel_add(float *y, const float *x, int64_t n, void *stream)
{
    if (n < 0)
        return PI_KERNEL_EINVAL;
    if (n == 0)
        return 0;
    add_kernel<<<blocks_for(n), THREADS, 0, (cudaStream_t)stream>>>(y, x, n);
    return (int)cudaGetLastError();
}

extern "C" int pi_kernel_add_rows(float *y, const float *b, int64_t n_rows, int64_t n,
                                  void *stream)
{
    return launch_bias<false>(y, b, n_rows, n, stream);
}

extern "C" int pi_kernel_rope(float *x, int n_tok, int n_head, int head_dim, int n_rot, int pos0,
                              const float *freq, int neox, void *stream)
{
    if (n_tok < 0 || n_head < 0 || head_dim < 0 || pos0 < 0 || n_rot < 0 || n_rot % 2 != 0 ||
        n_rot > head_dim || (int64_t)pos0 + n_tok > INT32_MAX)
        return PI_KERNEL_EINVAL;
    int half = n_rot / 2;
    int64_t n_pairs = (int64_t)n_tok * n_head * half;
    if (n_pairs == 0)
        return 0;
    rope_kernel<<<blocks_for(n_pairs), THREADS, 0, (cudaStream_t)stream>>>(
        x, n_head, head_dim, half, pos0, freq, neox != 0, n_pairs);
    return (int)cudaGetLastError();
}

extern "C" int pi_kernel_kv_store(const float *k, const float *v, uint16_t *k_cache,
                                  uint16_t *v_cache, int n_tok, int pos0, int kv_dim, void *stream)
{
    if (n_tok < 0 || pos0 < 0 || kv_dim < 0)
        return PI_KERNEL_EINVAL;
    int64_t n = (int64_t)n_tok * kv_dim, at = (int64_t)pos0 * kv_dim;
    if (n == 0)
        return 0;
    kv_store_kernel<<<blocks_for(n), THREADS, 0, (cudaStream_t)stream>>>(k, v, k_cache + at,
                                                                         v_cache + at, n);
    return (int)cudaGetLastError();
}

extern "C" int pi_kernel_attention(const float *q, const uint16_t *k_cache,
                                   const uint16_t *v_cache, float *out, int n_tok, int pos0,
                                   int n_head, int n_head_kv, int head_dim, float scale,
                                   void *stream)
{
    if (n_tok < 0 || pos0 < 0 || n_head <= 0 || n_head_kv <= 0 || n_head % n_head_kv != 0 ||
        head_dim <= 0 || head_dim > ATT_MAX_DIM || (int64_t)pos0 + n_tok > INT32_MAX)
        return PI_KERNEL_EINVAL;
    if (n_tok == 0)
        return 0;
    if (head_dim <= 64)
        return launch_attention<2>(q, k_cache, v_cache, out, n_tok, pos0, n_head, n_head_kv,
                                   head_dim, scale, stream);
    if (head_dim <= 128)
        return launch_attention<4>(q, k_cache, v_cache, out, n_tok, pos0, n_head, n_head_kv,
                                   head_dim, scale, stream);
    return launch_attention<8>(q, k_cache, v_cache, out, n_tok, pos0, n_head, n_head_kv,
                               head_dim, scale, stream);
}

extern "C" int pi_kernel_swiglu(const float *gate, const float *up, float *out, int64_t n,
                                void *stream)
{
    if (n < 0)
        return PI_KERNEL_EINVAL;
    if (n == 0)
        return 0;
    swiglu_kernel<<<blocks_for(n), THREADS, 0, (cudaStream_t)stream>>>(gate, up, out, n);
    return (int)cudaGetLastError();
}

extern "C" int pi_kernel_bias_relu(float *h, const float *b, int64_t n_rows, int64_t n,
                                   void *stream)
{
    return launch_bias<true>(h, b, n_rows, n, stream);
}

extern "C" int pi_kernel_select(const float *z, const float *b, int n_tok, int64_t n_ff,
                                float threshold, int32_t *idx, int32_t *n_sel, void *stream)
{
    if (n_tok < 0 || n_ff < 0 || n_ff > INT32_MAX)
        return PI_KERNEL_EINVAL;
    if (n_tok == 0)
        return 0;
    select_kernel<<<(unsigned)n_tok, SEL_THREADS, 0, (cudaStream_t)stream>>>(z, b, n_ff, threshold,
                                                                            idx, n_sel);
    return (int)cudaGetLastError();
}

/* One thread per token: a binary search of its ascending list. */
__global__ static void count_below_kernel(const int32_t *__restrict__ idx,
                                          const int32_t *__restrict__ n_sel, int n_tok,
                                          int64_t stride, int32_t bound, int32_t *n_hot)
{
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n_tok)
        return;
    const int32_t *list = idx + (size_t)t * stride;
    int lo = 0, hi = n_sel[t];
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (list[mid] < bound)
            lo = mid + 1;
        else
            hi = mid;
    }
    n_hot[t] = lo;
}

extern "C" int pi_kernel_count_below(const int32_t *idx, const int32_t *n_sel, int n_tok,
                                     int64_t stride, int32_t bound, int32_t *n_hot, void *stream)
{
    if (n_tok < 0 || stride < 0)
        return PI_KERNEL_EINVAL;
    if (n_tok == 0)
        return 0;
    count_below_kernel<<<(unsigned)((n_tok + 127) / 128), 128, 0, (cudaStream_t)stream>>>(
        idx, n_sel, n_tok, stride, bound, n_hot);
    return (int)cudaGetLastError();
}
