/*
 * kernels: the C-callable face of pi's CUDA code.  libpi's cuda.c is the only
 * caller; it decides what runs on the device, these functions only do it.
 * No CUDA types appear here, so the header compiles with the plain C flags:
 * device pointers are `void *`/`float *`, a stream is a `void *` holding a
 * cudaStream_t (NULL for the default stream).
 *
 * Every function returns 0 on success or a non-zero code:
 * PI_KERNEL_EUNSUPPORTED, PI_KERNEL_EINVAL, or a cudaError_t value.
 * pi_kernel_error_string() turns any of them into one static line.
 * Launches are asynchronous: a launch error is returned at once, an error
 * inside the kernel surfaces at the next synchronising call.
 *
 * Files: runtime.cu (devices, memory, streams, events), dequant.cu (row
 * dequantisation), matvec.cu (products with quantised weights, dense and
 * by row index list; matvec.cuh holds its per-type decoding and
 * shared-memory staging), layer.cu (the rest of a decoder layer: embedding
 * rows, RMSNorm, RoPE, the KV cache, attention, the gated activation, the
 * predictor's pieces), common.cuh (device helpers the .cu files share).
 *
 * Layout conventions: a weight matrix is n_rows rows of k elements of one
 * pi_type, row r at byte r * row_bytes, exactly as in the GGUF; activations
 * are float32, one row per token, rows contiguous unless an _ld argument
 * gives the stride in floats.  Index lists of the sparse path live in
 * device memory with their counts, so that a selection made on the device
 * is used on the device without a round trip to the host.
 */
#ifndef PI_KERNELS_H
#define PI_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Negative, so they never collide with cudaError_t values (all >= 0). */
#define PI_KERNEL_EUNSUPPORTED (-1) /* no kernel for that type */
#define PI_KERNEL_EINVAL (-2)       /* bad count or misaligned pointer */

const char *pi_kernel_error_string(int code);

/* runtime.cu */
int pi_kernel_device_count(int *count);
int pi_kernel_malloc(void **dev_ptr, size_t bytes);
int pi_kernel_free(void *dev_ptr); /* NULL is allowed */
int pi_kernel_copy_to_device(void *dev_dst, const void *host_src, size_t bytes, void *stream);
int pi_kernel_copy_to_host(void *host_dst, const void *dev_src, size_t bytes, void *stream);
int pi_kernel_copy_on_device(void *dev_dst, const void *dev_src, size_t bytes, void *stream);
int pi_kernel_stream_sync(void *stream);

/* Timing with CUDA events (for tests and benchmarks): an event is a
 * `void *` holding a cudaEvent_t.  elapsed waits for `stop` and gives the
 * milliseconds between the two recordings. */
int pi_kernel_event_create(void **event);
int pi_kernel_event_destroy(void *event); /* NULL is allowed */
int pi_kernel_event_record(void *event, void *stream);
int pi_kernel_event_elapsed(float *ms, void *start, void *stop);
/* Waits, sleeping, until the work before the event is done. */
int pi_kernel_event_sync(void *event);
/* Page-locked host memory, which asynchronous copies need. */
int pi_kernel_host_alloc(void **host_ptr, size_t bytes);
int pi_kernel_host_free(void *host_ptr); /* NULL is allowed */

/* dequant.cu: n elements (whole blocks of `type`, a pi_type id) from the
 * device row src to the device row dst, on `stream`.  src must be 2-byte
 * aligned (4 for F32) and dst 4-byte aligned; several rows of the same type
 * are one longer row.  Results are bit-identical to pi_dequantize_row(). */
int pi_kernel_dequantize_supported(uint32_t type); /* 1 or 0 */
int pi_kernel_dequantize(uint32_t type, const void *src, float *dst, int64_t n, void *stream);

/* ---- matvec.cu --------------------------------------------------------- */

/* 1 when the type has product kernels (at least F32, F16, BF16, Q4_0, Q4_1,
 * Q5_0, Q5_1, Q8_0, Q2_K..Q6_K), else 0. */
int pi_kernel_matmul_supported(uint32_t type);

/* Dense product: y[t * y_ld + r] = sum_j W[r][j] * x[t * k + j] for r <
 * n_rows, t < n_tok.  k is whole blocks of the type.  Each output is a
 * float sum; its order is the kernel's own (results agree with the CPU to
 * float rounding, not bit for bit). */
int pi_kernel_matmul(uint32_t type, const void *w, size_t row_bytes, int64_t k, int64_t n_rows,
                     const float *x, int n_tok, float *y, int64_t y_ld, void *stream);

/* Gathered rows (sparse gate and up): for each token t < n_tok and i <
 * n_sel[t], y[t * max_sel + i] = W[idx[t * max_sel + i]] . x[t * k ..].
 * idx and n_sel are device arrays ([n_tok][max_sel] and [n_tok]); entries
 * of y past n_sel[t] are not written.  Launches cover max_sel rows per
 * token, and threads past the count return at once. */
int pi_kernel_matvec_rows(uint32_t type, const void *w, size_t row_bytes, int64_t k,
                          const int32_t *idx, const int32_t *n_sel, int64_t max_sel,
                          const float *x, int n_tok, float *y, void *stream);

/* Rows times coefficients (the neuron-major down projection): for each
 * token t, y[t * n_out + d] = sum_{i < n_sel[t]} a[t * max_sel + i] *
 * Wt[idx[t * max_sel + i]][d], Wt being rows of n_out elements.  idx NULL
 * means every row in order (i = 0..max_sel-1, n_sel ignored): the dense
 * product with a neuron-major matrix.  The sum over i is split into fixed
 * chunks whose partial sums (scratch: pi_kernel_rows_axpy_scratch floats)
 * are added in chunk order, so the result does not depend on the launch
 * shape.  accumulate: 1 adds the sum to y, 0 overwrites y. */
size_t pi_kernel_rows_axpy_scratch(int64_t max_sel, int64_t n_out, int n_tok);
int pi_kernel_rows_axpy(uint32_t type, const void *wt, size_t row_bytes, int64_t n_out,
                        const int32_t *idx, const int32_t *n_sel, int64_t max_sel,
                        const float *a, int n_tok, float *y, int accumulate, float *scratch,
                        void *stream);

/* ---- layer.cu ---------------------------------------------------------- */

/* Embedding lookup: out[t * n ..] = dequantised row ids[t] of the table
 * (n elements per row, row_bytes apart), bit-identical to the CPU's row
 * dequantisation; ids is a device array that the host checked before
 * copying it (the kernel trusts it). */
int pi_kernel_get_rows(uint32_t type, const void *table, size_t row_bytes, int64_t n,
                       const int32_t *ids, int n_tok, float *out, void *stream);

/* y[r] = x[r] / sqrt(mean(x[r]^2) + eps) * w for n_rows rows of n floats
 * (w: n floats, shared by every row; y may equal x). */
int pi_kernel_rmsnorm(const float *x, const float *w, float *y, int64_t n_rows, int64_t n,
                      float eps, void *stream);

/* y[i] += x[i] for i < n. */
int pi_kernel_add(float *y, const float *x, int64_t n, void *stream);

/* y[r * n + j] += b[j] for n_rows rows (biases). */
int pi_kernel_add_rows(float *y, const float *b, int64_t n_rows, int64_t n, void *stream);

/* RoPE in place on x: n_tok rows of n_head heads of head_dim floats (row
 * stride n_head * head_dim); token t is at position pos0 + t.  The first
 * n_rot dimensions of each head rotate, pair i by angle pos * freq[i]
 * (freq: n_rot / 2 device floats, as the CPU computes them); neox 0 pairs
 * (2i, 2i+1), neox 1 pairs (i, i + n_rot / 2). */
int pi_kernel_rope(float *x, int n_tok, int n_head, int head_dim, int n_rot, int pos0,
                   const float *freq, int neox, void *stream);

/* Appends n_tok rows of kv_dim floats of k and v at positions pos0.. of
 * one layer's caches, stored as IEEE half ([position][kv_dim] each,
 * round to nearest even). */
int pi_kernel_kv_store(const float *k, const float *v, uint16_t *k_cache, uint16_t *v_cache,
                       int n_tok, int pos0, int kv_dim, void *stream);

/* Causal attention of n_tok query rows (token t at position pos0 + t)
 * over one layer's half caches holding positions 0 .. pos0 + n_tok - 1:
 * out[t][h] = softmax_j(q[t][h] . k[j][h / (n_head / n_head_kv)] * scale)
 * weighted sum of v, for j <= pos0 + t.  q and out: n_tok rows of n_head *
 * head_dim floats; head_dim <= 256. */
int pi_kernel_attention(const float *q, const uint16_t *k_cache, const uint16_t *v_cache,
                        float *out, int n_tok, int pos0, int n_head, int n_head_kv, int head_dim,
                        float scale, void *stream);

/* out[i] = silu(gate[i]) * up[i] for i < n (out may equal gate). */
int pi_kernel_swiglu(const float *gate, const float *up, float *out, int64_t n, void *stream);

/* The predictor's hidden layer: h[r * n + j] = max(0, h[r * n + j] + b[j]). */
int pi_kernel_bias_relu(float *h, const float *b, int64_t n_rows, int64_t n, void *stream);

/* A hybrid layer's split of each token's selection: n_hot[t] = how many of
 * idx[t * stride .. + n_sel[t]) (ascending) are below bound, the rows the
 * GPU holds. */
int pi_kernel_count_below(const int32_t *idx, const int32_t *n_sel, int n_tok, int64_t stride,
                          int32_t bound, int32_t *n_hot, void *stream);

/* The predictor's selection: for each token t, the ascending indices i <
 * n_ff with z[t * n_ff + i] + b[i] > threshold go to idx[t * n_ff ..] and
 * their number to n_sel[t] (b: the predictor's output bias, n_ff floats). */
int pi_kernel_select(const float *z, const float *b, int n_tok, int64_t n_ff, float threshold,
                     int32_t *idx, int32_t *n_sel, void *stream);

#ifdef __cplusplus
}
#endif

#endif
