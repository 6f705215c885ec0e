/*
 * forward: the transformer forward pass over a batch of tokens, with a KV
 * cache, on the CPU.
 *
 * A pi_ctx is the per-run state of one sequence: the KV cache, the scratch
 * buffers (all allocated once, before the first token), and the thread pool.
 * The model is shared and read-only.  The FFN goes through ffn.h, the seam
 * that sparse inference replaces.  A context made with `gpu` set hands
 * every batch to gpu.h instead and keeps nothing but statistics here.
 */
#ifndef PI_FORWARD_H
#define PI_FORWARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "model.h"

typedef struct pi_ctx_params {
    int n_ctx;     /* KV cache length in tokens; 0: min(model's, 4096) */
    int n_threads; /* 0: 1 */
    int n_batch;   /* tokens per forward call at most; 0: 64 */
    bool exact;    /* float activations throughout: the reference-precision
                      path for checks (several times slower) */
    bool dense;    /* a packed model with predictors runs sparse (sparse.h)
                      unless this is set */
    float sparsity_shift; /* added to every predictor threshold (logits) */
    float gate_floor;     /* sparse.h; 0: off */
    bool gpu;             /* every layer on the CUDA device (gpu.h); the KV
                             cache then lives there and `exact`, `n_threads`
                             and FFN observers do not apply */
    uint64_t vram;        /* with gpu: device bytes pi may take; 0: any.  A
                             model over it runs hybrid (a packed sparse
                             model) or, with offload_layers, as many whole
                             layers as fit on the GPU (gpu.h) */
    bool offload_layers;
} pi_ctx_params;

typedef struct pi_ctx pi_ctx;

pi_ctx *pi_ctx_new(const pi_model *m, const pi_ctx_params *p, pi_err *err);
void pi_ctx_free(pi_ctx *c);

const pi_model *pi_ctx_model(const pi_ctx *c);
int pi_ctx_n_ctx(const pi_ctx *c);
int pi_ctx_n_batch(const pi_ctx *c);
int pi_ctx_n_past(const pi_ctx *c);
/* Forgets cached positions from n_past on (0 clears the cache). */
void pi_ctx_truncate(pi_ctx *c, int n_past);
/* Bytes the context allocated on the host (KV cache and scratch). */
size_t pi_ctx_memory(const pi_ctx *c);
/* Bytes it took on the GPU; 0 when it runs on the CPU. */
uint64_t pi_ctx_gpu_memory(const pi_ctx *c);
/* The GPU part (gpu.h); NULL on the CPU. */
struct pi_gpu *pi_ctx_gpu(pi_ctx *c);

/* The sparse FFN's state and statistics; NULL when the context runs dense
 * (an ordinary model, predictors absent, or dense asked for). */
struct pi_sparse *pi_ctx_sparse(pi_ctx *c);
/* A mixture-of-experts model's routing state (moe.h); NULL otherwise. */
struct pi_moe *pi_ctx_moe(pi_ctx *c);

/* Sees every layer's FFN as it runs: x is the FFN input (n rows of n_embd,
 * after the FFN norm), act what enters the down projection (n rows of n_ff,
 * silu(gate x) * up x).  The rows are the tokens of the current batch in
 * order.  Both buffers belong to the context and are only valid during the
 * call.  This is how pi-profile watches the dense model. */
typedef void (*pi_ffn_observer)(void *user, int layer, const float *x, const float *act, int n);
/* fn NULL removes the observer.  For a mixture of experts, act rows are
 * pi_moe_row_len() long: every expert's neurons side by side, the chosen
 * experts' weighted activations and zeros elsewhere (moe.h).  -1 with err
 * set when out of memory for those rows. */
int pi_ctx_observe_ffn(pi_ctx *c, pi_ffn_observer fn, void *user, pi_err *err);

/* Runs tokens[0..n) at positions n_past.. and appends them to the cache;
 * n may exceed n_batch (it is split).  logits: NULL, or room for n_vocab
 * floats (the last token's) or, when all_logits, n * n_vocab (every
 * token's).  -1 with err set on a bad token id or a full cache. */
int pi_decode(pi_ctx *c, const int32_t *tokens, int n, float *logits, bool all_logits,
              pi_err *err);

#endif
