/*
 * matvec: products of GGUF weight matrices with float activations: the
 * dense product for one token or a batch, the product with rows picked by
 * a device index list (sparse gate and up), and the neuron-major down
 * projection (rows times coefficients).  kernels.h has the contracts.
 *
 * Weights stream through shared memory.  A warp copies a stretch of each
 * row it works on (a "segment") into shared memory with 16-byte cp.async
 * copies, placing the segment at the same address modulo 16 as its source:
 * GGUF blocks are 18, 20, 34, 110... bytes, so rows are rarely 16-byte
 * aligned, but this way only the head and tail of a segment (under 16
 * bytes each) move as 2-byte words and every other byte comes in a wide,
 * coalesced load, once.  While a warp computes one stage of segments, the
 * copies of its next stage are in flight (double buffering).
 *
 * In shared memory, weights are decoded four elements at a time: a "run"
 * is four consecutive elements, which in every type share one scale and
 * have their codes at one shift in four consecutive bytes (and their high
 * bits likewise in four more).  Lane l takes runs l, l + 32, ..., so the
 * matching activations are coalesced float4 loads.  A stage's sub-block
 * scales are decoded once, spread over the lanes, into a float table
 * instead of by each of the lanes that use them; codes become floats by the magic-number
 * trick rather than by integer conversions (bytes4() says why).
 *
 * Dense product and gathered rows (dot_kernel): a block of up to WARPS
 * warps owns R rows and TOK tokens.  Its warps split k into tiles of TE
 * elements; each lane keeps R x TOK float sums, which meet in shared
 * memory at the end.  A dequantised weight serves TOK tokens from
 * registers and an activation float4 serves R rows, so a batch costs far
 * less than TOK single-token products (a TOK-token block reads the weights
 * once; blocks of the same rows run side by side and share them in L2).
 *
 * Rows times coefficients (axpy_kernel): one warp owns one chunk of CH
 * entries of the index list, one to TOK tokens and a tile of CW columns;
 * it adds the chunk's rows, scaled, in list order into per-lane sums with
 * explicit fused multiply-adds and writes them to scratch; chunk_sum_kernel
 * then adds the chunks in order.  CH is a constant and no sum depends on
 * TOK or the grid, so the result depends on the inputs alone.
 *
 * Shapes the fast kernels do not take (k or n_out not a multiple of 4, or
 * activations not 16-byte aligned, which only the float types or offset
 * pointers can give) run on simple kernels built on deq_*::at().
 */
#include <cuda_runtime.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels.h"
#include "matvec.cuh"

enum {
    WARPS = 4, /* warps per block */
    CH = 64,   /* list entries per chunk of rows_axpy: fixes its order of summation */
    RB = 8,    /* rows per stage of rows_axpy */
    MAX_GRID = 1 << 16
};

/* ---- dense product and gathered rows ---------------------------------- */

template <bool B>
struct flag {
    static constexpr bool value = B;
};

/* Block b owns rows (dense) or list entries (gathered) first..first+R-1 and
 * tokens tok0..tok0+TOK-1; see pi_kernel_matmul and pi_kernel_matvec_rows.
 * Rows past the end repeat the last row, tokens past n_tok the last token,
 * so that all lanes run the same code; their sums are not stored.  The
 * one-token kernel, memory-bound, asks for 8 resident blocks per SM (at
 * most 64 registers): 32 warps, each with one or two tiles of weights in
 * flight, cover the memory latency. */
template <class T, int R, int TOK>
__global__ void __launch_bounds__(WARPS * 32, TOK == 1 ? 8 : 1)
dot_kernel(const uint8_t *__restrict__ w, size_t row_bytes, int64_t k, int64_t n_rows,
           const float *__restrict__ x, int n_tok, float *__restrict__ y, int64_t y_ld,
           const int32_t *__restrict__ idx, const int32_t *__restrict__ n_sel, int64_t max_sel)
{
    typedef stage_mem<T, R, T::TE> M;
    __shared__ M mem[WARPS];
    __shared__ float red[WARPS][R * TOK];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarp = blockDim.x >> 5;
    const int64_t bid = blockIdx.x;
    M &sm = mem[warp];

    const uint8_t *rowp[R];
    int64_t first;
    int tok0, nrow, ntok;
    if (idx == nullptr) {
        int64_t ntg = (n_tok + TOK - 1) / TOK;
        tok0 = (int)(bid % ntg * TOK);
        first = bid / ntg * R;
        nrow = (int)min((int64_t)R, n_rows - first);
        ntok = min(TOK, n_tok - tok0);
#pragma unroll
        for (int r = 0; r < R; r++)
            rowp[r] = w + min(first + r, n_rows - 1) * row_bytes;
    } else {
        int64_t nig = (max_sel + R - 1) / R;
        tok0 = (int)(bid / nig);
        first = bid % nig * R;
        int64_t n = min(max((int64_t)n_sel[tok0], (int64_t)0), max_sel);
        if (first >= n)
            return; /* the whole block: nothing below has synchronised yet */
        const int32_t *list = idx + tok0 * max_sel;
        nrow = (int)min((int64_t)R, n - first);
        ntok = 1;
#pragma unroll
        for (int r = 0; r < R; r++)
            rowp[r] = w + (int64_t)list[min(first + r, n - 1)] * row_bytes;
    }
    const float *xp[TOK];
#pragma unroll
    for (int u = 0; u < TOK; u++)
        xp[u] = x + (int64_t)min(tok0 + u, n_tok - 1) * k;

    /* One token and no minimum: sum code * x per run, then scale once. */
    constexpr bool factor = TOK == 1 && T::NSUB > 0 && !T::MIN;
    float acc[R][TOK];
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int u = 0; u < TOK; u++)
            acc[r][u] = 0.f;

    const int64_t ntile = (k + T::TE - 1) / T::TE;
    edge_words<R> eg;
    auto issue = [&](int64_t tile, int bsel) {
        int64_t e0 = tile * T::TE;
        int bytes = (int)(min((int64_t)T::TE, k - e0) / T::QK * T::BS);
        const uint8_t *src[R];
        int n[R];
#pragma unroll
        for (int r = 0; r < R; r++) {
            src[r] = rowp[r] + e0 / T::QK * T::BS;
            n[r] = bytes;
        }
        stage_issue<M, R>(sm, bsel, src, n, eg, lane);
    };

    int cur = 0;
    int64_t tile = warp;
    if (tile < ntile) {
        issue(tile, 0);
        stage_store_edges<M, R>(sm, 0, eg);
    }
    cp_async_commit();
    for (; tile < ntile; tile += nwarp, cur ^= 1) {
        int64_t next = tile + nwarp;
        if (next < ntile)
            issue(next, cur ^ 1);
        cp_async_commit();
        cp_async_wait_prev();
        __syncwarp();
        const int64_t e0 = tile * T::TE;
        const int ne = (int)min((int64_t)T::TE, k - e0);
        stage_scales<T, M, R>(sm, cur, ne / T::QK, R, lane);
        __syncwarp();
        const uint8_t *seg[R];
#pragma unroll
        for (int r = 0; r < R; r++)
            seg[r] = sm.buf[cur][r] + sm.off[cur][r];
        /* A full tile has no bounds to test, so the compiler may hoist loads;
         * with several tokens, unrolling all of it would hoist too many. */
        auto runs = [&](auto full) {
#pragma unroll(TOK == 1 ? T::TE / 128 : 1)
            for (int m = 0; m < T::TE / 128; m++) {
                const int rho = lane + 32 * m;
                if (!decltype(full)::value && 4 * rho >= ne)
                    break;
                float4 xv[TOK];
#pragma unroll
                for (int u = 0; u < TOK; u++)
                    xv[u] = __ldg((const float4 *)(xp[u] + e0) + rho);
#pragma unroll
                for (int r = 0; r < R; r++) {
                    float v[4];
                    if constexpr (factor) {
                        float2 dm = run_codes<T>(seg[r], sm.scl[r], rho, v);
                        float p = v[0] * xv[0].x;
                        p = __fmaf_rn(v[1], xv[0].y, p);
                        p = __fmaf_rn(v[2], xv[0].z, p);
                        p = __fmaf_rn(v[3], xv[0].w, p);
                        acc[r][0] = __fmaf_rn(dm.x, p, acc[r][0]);
                    } else {
                        run_values<T>(seg[r], sm.scl[r], rho, v);
#pragma unroll
                        for (int u = 0; u < TOK; u++) {
                            float a = __fmaf_rn(v[0], xv[u].x, acc[r][u]);
                            a = __fmaf_rn(v[1], xv[u].y, a);
                            a = __fmaf_rn(v[2], xv[u].z, a);
                            acc[r][u] = __fmaf_rn(v[3], xv[u].w, a);
                        }
                    }
                }
            }
        };
        if (ne == T::TE)
            runs(flag<true>());
        else
            runs(flag<false>());
        __syncwarp(); /* stage cur and the scale table are free again */
        if (next < ntile)
            stage_store_edges<M, R>(sm, cur ^ 1, eg);
    }

#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int u = 0; u < TOK; u++) {
            float s = warp_sum(acc[r][u]);
            if (lane == 0)
                red[warp][r * TOK + u] = s;
        }
    __syncthreads();
    if (threadIdx.x < R * TOK) {
        int r = threadIdx.x / TOK, u = threadIdx.x % TOK;
        if (r < nrow && u < ntok) {
            float s = red[0][threadIdx.x];
            for (int i = 1; i < nwarp; i++)
                s += red[i][threadIdx.x];
            if (idx == nullptr)
                y[(int64_t)(tok0 + u) * y_ld + first + r] = s;
            else
                y[(int64_t)tok0 * max_sel + first + r] = s;
        }
    }
}

/* The same products, one warp per output, element by element: for shapes
 * and alignments dot_kernel does not take. */
template <class D>
__global__ void __launch_bounds__(WARPS * 32)
dot_simple_kernel(const uint8_t *__restrict__ w, size_t row_bytes, int64_t k, int64_t n_rows,
                  const float *__restrict__ x, int n_tok, float *__restrict__ y, int64_t y_ld,
                  const int32_t *__restrict__ idx, const int32_t *__restrict__ n_sel,
                  int64_t max_sel)
{
    const int lane = threadIdx.x & 31;
    const int64_t o = (int64_t)blockIdx.x * WARPS + (threadIdx.x >> 5);
    int64_t t, row;
    float *dst;
    if (idx == nullptr) {
        if (o >= n_rows * n_tok)
            return;
        t = o / n_rows;
        row = o % n_rows;
        dst = y + t * y_ld + row;
    } else {
        if (o >= n_tok * max_sel)
            return;
        t = o / max_sel;
        int64_t i = o % max_sel;
        if (i >= min((int64_t)n_sel[t], max_sel))
            return;
        row = idx[o];
        dst = y + o;
    }
    const typename D::block *b = (const typename D::block *)(w + row * row_bytes);
    const float *xt = x + t * k;
    float s = 0.f;
    for (int64_t j = lane; j < k; j += 32)
        s = __fmaf_rn(D::at(b + j / D::qk, (int)(j % D::qk)), xt[j], s);
    s = warp_sum(s);
    if (lane == 0)
        *dst = s;
}

/* ---- rows times coefficients ------------------------------------------ */

/* Warp task (token group, chunk c, column tile) adds rows of chunk c of the
 * list, in list order, times their coefficients, into scratch[(t * nch +
 * c) * n_out + column].  With an index list each task has one token.  As
 * for dot_kernel, the one-token kernel trades registers (80) for resident
 * warps (24 per SM). */
template <class T, int TOK>
__global__ void __launch_bounds__(WARPS * 32, TOK == 1 ? 6 : 1)
axpy_kernel(const uint8_t *__restrict__ wt, size_t row_bytes, int64_t n_out,
            const int32_t *__restrict__ idx, const int32_t *__restrict__ n_sel, int64_t max_sel,
            const float *__restrict__ a, int n_tok, float *__restrict__ scratch, int64_t nch)
{
    typedef stage_mem<T, RB, T::CW> M;
    constexpr int RUNS = T::CW / 128; /* runs per lane */
    __shared__ M mem[WARPS];
    const int lane = threadIdx.x & 31;
    M &sm = mem[threadIdx.x >> 5];

    const int64_t nct = (n_out + T::CW - 1) / T::CW;
    const int64_t ntg = (n_tok + TOK - 1) / TOK;
    const int64_t task = (int64_t)blockIdx.x * WARPS + (threadIdx.x >> 5);
    if (task >= ntg * nch * nct)
        return; /* this warp only: the kernel never synchronises the block */
    const int64_t ct = task % nct, chunk = task / nct % nch;
    const int tok0 = (int)(task / (nct * nch) * TOK), ntok = min(TOK, n_tok - tok0);
    const int64_t n = idx ? min(max((int64_t)n_sel[tok0], (int64_t)0), max_sel) : max_sel;
    const int64_t i0 = chunk * CH, i1 = min(i0 + CH, n);
    if (i0 >= i1)
        return;
    const int64_t col0 = ct * T::CW;
    const int ncol = (int)min((int64_t)T::CW, n_out - col0);
    const int bytes = ncol / T::QK * T::BS;
    const uint8_t *base = wt + col0 / T::QK * T::BS;
    const int32_t *list = idx ? idx + (int64_t)tok0 * max_sel : nullptr;
    const float *ap[TOK];
#pragma unroll
    for (int u = 0; u < TOK; u++)
        ap[u] = a + (int64_t)min(tok0 + u, n_tok - 1) * max_sel;

    float acc[RUNS][TOK][4];
#pragma unroll
    for (int m = 0; m < RUNS; m++)
#pragma unroll
        for (int u = 0; u < TOK; u++)
#pragma unroll
            for (int c = 0; c < 4; c++)
                acc[m][u][c] = 0.f;

    const int nstage = (int)((i1 - i0 + RB - 1) / RB);
    edge_words<RB> eg;
    auto issue = [&](int stage, int bsel) {
        const uint8_t *src[RB];
        int nb[RB];
#pragma unroll
        for (int q = 0; q < RB; q++) {
            int64_t i = i0 + (int64_t)stage * RB + q;
            bool ok = i < i1;
            src[q] = ok ? base + (int64_t)(list ? __ldg(list + i) : i) * row_bytes : base;
            nb[q] = ok ? bytes : 0;
        }
        stage_issue<M, RB>(sm, bsel, src, nb, eg, lane);
    };

    issue(0, 0);
    stage_store_edges<M, RB>(sm, 0, eg);
    cp_async_commit();
    int cur = 0;
    for (int stage = 0; stage < nstage; stage++, cur ^= 1) {
        if (stage + 1 < nstage)
            issue(stage + 1, cur ^ 1);
        cp_async_commit();
        cp_async_wait_prev();
        __syncwarp();
        const int64_t is = i0 + (int64_t)stage * RB;
        const int nrow = (int)min((int64_t)RB, i1 - is);
        stage_scales<T, M, RB>(sm, cur, ncol / T::QK, nrow, lane);
        __syncwarp();
        for (int q = 0; q < nrow; q++) {
            const uint8_t *seg = sm.buf[cur][q] + sm.off[cur][q];
            float av[TOK];
#pragma unroll
            for (int u = 0; u < TOK; u++)
                av[u] = __ldg(ap[u] + is + q);
#pragma unroll
            for (int m = 0; m < RUNS; m++) {
                const int rho = lane + 32 * m;
                if (4 * rho < ncol) {
                    float v[4];
                    run_values<T>(seg, sm.scl[q], rho, v);
#pragma unroll
                    for (int u = 0; u < TOK; u++)
#pragma unroll
                        for (int c = 0; c < 4; c++)
                            acc[m][u][c] = __fmaf_rn(av[u], v[c], acc[m][u][c]);
                }
            }
        }
        __syncwarp();
        if (stage + 1 < nstage)
            stage_store_edges<M, RB>(sm, cur ^ 1, eg);
    }

#pragma unroll
    for (int m = 0; m < RUNS; m++) {
        const int rho = lane + 32 * m;
#pragma unroll
        for (int u = 0; u < TOK; u++) /* unrolled, so acc stays in registers */
            if (4 * rho < ncol && u < ntok) {
                float *p = scratch + ((int64_t)(tok0 + u) * nch + chunk) * n_out + col0 + 4 * rho;
#pragma unroll
                for (int c = 0; c < 4; c++)
                    p[c] = acc[m][u][c];
            }
    }
}

/* The same chunk sums element by element, one thread per output column:
 * for n_out not a multiple of 4 (float types only). */
template <class D>
__global__ void axpy_simple_kernel(const uint8_t *__restrict__ wt, size_t row_bytes, int64_t n_out,
                                   const int32_t *__restrict__ idx,
                                   const int32_t *__restrict__ n_sel, int64_t max_sel,
                                   const float *__restrict__ a, int n_tok,
                                   float *__restrict__ scratch, int64_t nch)
{
    const int64_t total = n_tok * nch * n_out, stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += stride) {
        const int64_t d = e % n_out, chunk = e / n_out % nch, t = e / (n_out * nch);
        const int64_t n = idx ? min(max((int64_t)n_sel[t], (int64_t)0), max_sel) : max_sel;
        float s = 0.f;
        for (int64_t i = chunk * CH; i < min(chunk * CH + CH, n); i++) {
            int64_t row = idx ? idx[t * max_sel + i] : i;
            const typename D::block *b = (const typename D::block *)(wt + row * row_bytes);
            s = __fmaf_rn(a[t * max_sel + i], D::at(b + d / D::qk, (int)(d % D::qk)), s);
        }
        if (chunk * CH < n)
            scratch[e] = s;
    }
}

/* y[t][d] (+)= the chunk sums of token t in chunk order.  n_sel NULL: every
 * token has max_sel entries. */
__global__ void chunk_sum_kernel(const float *__restrict__ scratch, int64_t nch, int64_t n_out,
                                 const int32_t *__restrict__ n_sel, int64_t max_sel, int n_tok,
                                 float *__restrict__ y, int accumulate)
{
    const int64_t total = n_tok * n_out, stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += stride) {
        const int64_t t = e / n_out, d = e % n_out;
        const int64_t n = n_sel ? min(max((int64_t)n_sel[t], (int64_t)0), max_sel) : max_sel;
        const float *p = scratch + t * nch * n_out + d;
        float s = 0.f;
        for (int64_t c = 0; c < (n + CH - 1) / CH; c++)
            s = __fadd_rn(s, p[c * n_out]);
        y[e] = accumulate ? __fadd_rn(y[e], s) : s;
    }
}

/* ---- launchers -------------------------------------------------------- */

template <typename... P, typename... A>
static int launch(void (*kernel)(P...), int64_t grid, int threads, void *stream, A... args)
{
    kernel<<<(unsigned)grid, threads, 0, (cudaStream_t)stream>>>(args...);
    return (int)cudaGetLastError();
}

static int64_t cdiv(int64_t a, int64_t b)
{
    return (a + b - 1) / b;
}

/* The weight matrix: rows of n whole blocks, aligned for the block fields. */
template <class T>
static bool weights_ok(const void *w, size_t row_bytes, int64_t n)
{
    return n >= 0 && n % T::QK == 0 && row_bytes >= (uint64_t)(n / T::QK * T::BS) &&
           (uintptr_t)w % T::deq::align == 0 && row_bytes % T::deq::align == 0;
}

static bool floats_ok(const float *p)
{
    return (uintptr_t)p % 4 == 0;
}

/* Dense (idx NULL) or gathered products: dot_kernel where runs of four
 * fit (k a multiple of 4, activations 16-byte aligned), else the simple
 * kernel. */
template <class T, int R, int TOK>
static int dot_launch(const void *w, size_t row_bytes, int64_t k, int64_t n_rows, const float *x,
                      int n_tok, float *y, int64_t y_ld, const int32_t *idx,
                      const int32_t *n_sel, int64_t max_sel, void *stream)
{
    int64_t grid = idx ? n_tok * cdiv(max_sel, R) : cdiv(n_rows, R) * cdiv(n_tok, TOK);
    int warps = (int)max((int64_t)1, min((int64_t)WARPS, cdiv(k, T::TE)));
    if (grid > INT_MAX)
        return PI_KERNEL_EINVAL;
    return launch(dot_kernel<T, R, TOK>, grid, 32 * warps, stream, (const uint8_t *)w, row_bytes,
                  k, n_rows, x, n_tok, y, y_ld, idx, n_sel, max_sel);
}

template <class T>
static int dot(const void *w, size_t row_bytes, int64_t k, int64_t n_rows, const float *x,
               int n_tok, float *y, int64_t y_ld, const int32_t *idx, const int32_t *n_sel,
               int64_t max_sel, void *stream)
{
    if (k % 4 != 0 || (uintptr_t)x % 16 != 0) {
        int64_t grid = cdiv(idx ? n_tok * max_sel : n_tok * n_rows, WARPS);
        if (grid > INT_MAX)
            return PI_KERNEL_EINVAL;
        return launch(dot_simple_kernel<typename T::deq>, grid, 32 * WARPS, stream,
                      (const uint8_t *)w, row_bytes, k, n_rows, x, n_tok, y, y_ld, idx, n_sel,
                      max_sel);
    }
    if (idx || n_tok == 1)
        return dot_launch<T, 2, 1>(w, row_bytes, k, n_rows, x, n_tok, y, y_ld, idx, n_sel,
                                   max_sel, stream);
    if (n_tok == 2)
        return dot_launch<T, 2, 2>(w, row_bytes, k, n_rows, x, n_tok, y, y_ld, idx, n_sel,
                                   max_sel, stream);
    if (n_tok <= 4)
        return dot_launch<T, 4, 4>(w, row_bytes, k, n_rows, x, n_tok, y, y_ld, idx, n_sel,
                                   max_sel, stream);
    return dot_launch<T, 4, 8>(w, row_bytes, k, n_rows, x, n_tok, y, y_ld, idx, n_sel, max_sel,
                               stream);
}

template <class T>
static int matmul(const void *w, size_t row_bytes, int64_t k, int64_t n_rows, const float *x,
                  int n_tok, float *y, int64_t y_ld, void *stream)
{
    if (!weights_ok<T>(w, row_bytes, k) || n_rows < 0 || n_tok < 0 || !floats_ok(x) ||
        !floats_ok(y) || (n_tok > 1 && y_ld < n_rows))
        return PI_KERNEL_EINVAL;
    if (n_rows == 0 || n_tok == 0)
        return 0;
    return dot<T>(w, row_bytes, k, n_rows, x, n_tok, y, y_ld, nullptr, nullptr, 0, stream);
}

template <class T>
static int matvec_rows(const void *w, size_t row_bytes, int64_t k, const int32_t *idx,
                       const int32_t *n_sel, int64_t max_sel, const float *x, int n_tok,
                       float *y, void *stream)
{
    if (!weights_ok<T>(w, row_bytes, k) || max_sel < 0 || n_tok < 0 || !floats_ok(x) ||
        !floats_ok(y) || !idx || !n_sel || (uintptr_t)idx % 4 || (uintptr_t)n_sel % 4)
        return PI_KERNEL_EINVAL;
    if (max_sel == 0 || n_tok == 0)
        return 0;
    return dot<T>(w, row_bytes, k, 0, x, n_tok, y, 0, idx, n_sel, max_sel, stream);
}

/* The token group of an index-free rows_axpy: TOK tokens share each row. */
template <class T, int TOK>
static int axpy_launch(const void *wt, size_t row_bytes, int64_t n_out, const int32_t *idx,
                       const int32_t *n_sel, int64_t max_sel, const float *a, int n_tok,
                       float *scratch, int64_t nch, void *stream)
{
    int64_t grid = cdiv(cdiv(n_tok, TOK) * nch * cdiv(n_out, T::CW), WARPS);
    if (grid > INT_MAX)
        return PI_KERNEL_EINVAL;
    return launch(axpy_kernel<T, TOK>, grid, 32 * WARPS, stream, (const uint8_t *)wt, row_bytes,
                  n_out, idx, n_sel, max_sel, a, n_tok, scratch, nch);
}

template <class T>
static int axpy_chunks(const void *wt, size_t row_bytes, int64_t n_out, const int32_t *idx,
                       const int32_t *n_sel, int64_t max_sel, const float *a, int n_tok,
                       float *scratch, int64_t nch, void *stream)
{
    if (n_out % 4 != 0) {
        int64_t grid = min(cdiv(n_tok * nch * n_out, 256), (int64_t)MAX_GRID);
        return launch(axpy_simple_kernel<typename T::deq>, grid, 256, stream,
                      (const uint8_t *)wt, row_bytes, n_out, idx, n_sel, max_sel, a, n_tok,
                      scratch, nch);
    }
    if (idx || n_tok == 1)
        return axpy_launch<T, 1>(wt, row_bytes, n_out, idx, n_sel, max_sel, a, n_tok, scratch,
                                 nch, stream);
    if (n_tok == 2)
        return axpy_launch<T, 2>(wt, row_bytes, n_out, idx, n_sel, max_sel, a, n_tok, scratch,
                                 nch, stream);
    if (n_tok <= 4)
        return axpy_launch<T, 4>(wt, row_bytes, n_out, idx, n_sel, max_sel, a, n_tok, scratch,
                                 nch, stream);
    return axpy_launch<T, 8>(wt, row_bytes, n_out, idx, n_sel, max_sel, a, n_tok, scratch, nch,
                             stream);
}

template <class T>
static int rows_axpy(const void *wt, size_t row_bytes, int64_t n_out, const int32_t *idx,
                     const int32_t *n_sel, int64_t max_sel, const float *a, int n_tok, float *y,
                     int accumulate, float *scratch, void *stream)
{
    if (!weights_ok<T>(wt, row_bytes, n_out) || max_sel < 0 || n_tok < 0 || !floats_ok(a) ||
        !floats_ok(y) || !floats_ok(scratch) || (idx && !n_sel) || (uintptr_t)idx % 4 ||
        (uintptr_t)n_sel % 4)
        return PI_KERNEL_EINVAL;
    if (n_out == 0 || n_tok == 0)
        return 0;
    int64_t nch = cdiv(max_sel, CH);
    if (nch > 0) {
        if (!scratch)
            return PI_KERNEL_EINVAL;
        int rc = axpy_chunks<T>(wt, row_bytes, n_out, idx, n_sel, max_sel, a, n_tok, scratch,
                                nch, stream);
        if (rc != 0)
            return rc;
    }
    int64_t grid = min(cdiv(n_tok * n_out, 256), (int64_t)MAX_GRID);
    return launch(chunk_sum_kernel, grid, 256, stream, (const float *)scratch, nch, n_out,
                  idx ? n_sel : nullptr, max_sel, n_tok, y, accumulate);
}

/* The one table of what has product kernels: `X(type id, type struct)`. */
#define PI_MATVEC_TYPES(X)   \
    X(PI_TYPE_F32, mv_f32)   \
    X(PI_TYPE_F16, mv_f16)   \
    X(PI_TYPE_BF16, mv_bf16) \
    X(PI_TYPE_Q4_0, mv_q4_0) \
    X(PI_TYPE_Q4_1, mv_q4_1) \
    X(PI_TYPE_Q5_0, mv_q5_0) \
    X(PI_TYPE_Q5_1, mv_q5_1) \
    X(PI_TYPE_Q8_0, mv_q8_0) \
    X(PI_TYPE_Q2_K, mv_q2_K) \
    X(PI_TYPE_Q3_K, mv_q3_K) \
    X(PI_TYPE_Q4_K, mv_q4_K) \
    X(PI_TYPE_Q5_K, mv_q5_K) \
    X(PI_TYPE_Q6_K, mv_q6_K)

extern "C" int pi_kernel_matmul_supported(uint32_t type)
{
    switch (type) {
#define CASE(id, T) case id: return 1;
        PI_MATVEC_TYPES(CASE)
#undef CASE
    default:
        return 0;
    }
}

extern "C" int pi_kernel_matmul(uint32_t type, const void *w, size_t row_bytes, int64_t k,
                                int64_t n_rows, const float *x, int n_tok, float *y, int64_t y_ld,
                                void *stream)
{
    switch (type) {
#define CASE(id, T) \
    case id: return matmul<T>(w, row_bytes, k, n_rows, x, n_tok, y, y_ld, stream);
        PI_MATVEC_TYPES(CASE)
#undef CASE
    default:
        return PI_KERNEL_EUNSUPPORTED;
    }
}

extern "C" int pi_kernel_matvec_rows(uint32_t type, const void *w, size_t row_bytes, int64_t k,
                                     const int32_t *idx, const int32_t *n_sel, int64_t max_sel,
                                     const float *x, int n_tok, float *y, void *stream)
{
    switch (type) {
#define CASE(id, T) \
    case id: return matvec_rows<T>(w, row_bytes, k, idx, n_sel, max_sel, x, n_tok, y, stream);
        PI_MATVEC_TYPES(CASE)
#undef CASE
    default:
        return PI_KERNEL_EUNSUPPORTED;
    }
}

extern "C" size_t pi_kernel_rows_axpy_scratch(int64_t max_sel, int64_t n_out, int n_tok)
{
    if (max_sel <= 0 || n_out <= 0 || n_tok <= 0)
        return 0;
    return (size_t)n_tok * (size_t)cdiv(max_sel, CH) * (size_t)n_out;
}

extern "C" int pi_kernel_rows_axpy(uint32_t type, const void *wt, size_t row_bytes,
                                   int64_t n_out, const int32_t *idx, const int32_t *n_sel,
                                   int64_t max_sel, const float *a, int n_tok, float *y,
                                   int accumulate, float *scratch, void *stream)
{
    switch (type) {
#define CASE(id, T)                                                                          \
    case id:                                                                                 \
        return rows_axpy<T>(wt, row_bytes, n_out, idx, n_sel, max_sel, a, n_tok, y, accumulate, \
                            scratch, stream);
        PI_MATVEC_TYPES(CASE)
#undef CASE
    default:
        return PI_KERNEL_EUNSUPPORTED;
    }
}
