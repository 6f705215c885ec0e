/*
 * gpu: the forward pass on one CUDA device, every layer on the GPU.
 *
 * pi_gpu_new() computes what the model needs on the device (the plan),
 * allocates it as one arena from which pi hands out every buffer (so the
 * bytes counted are the bytes taken, and a --vram budget is checked against
 * pi's own count, not the card's free memory), copies the weights in once
 * and keeps the KV cache there as IEEE half.  pi_gpu_batch() then runs a
 * batch of tokens through every layer on one stream; the host sends the
 * token ids and receives the logits and, for sparse models, each layer's
 * count of selected neurons (for statistics), once per batch.  The sparse
 * FFN needs no other round trip: the predictor's selection is compacted
 * into an index list on the device and the gather and down kernels read
 * its count there.
 *
 * The math is the CPU's exact path (forward.c with exact set: float
 * activations, weights dequantised on the fly); the sums run in another
 * order and the KV cache is half, so logits agree to float rounding.
 *
 * Built without CUDA, pi_gpu_plan() still works (pi-run --gpu --dry-run
 * prints it) and pi_gpu_new() fails with "built without CUDA".
 */
#ifndef PI_GPU_H
#define PI_GPU_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "model.h"

/* Device bytes of a full-GPU run, by what they hold. */
typedef struct pi_gpu_plan {
    uint64_t attention;  /* attention weights, biases and norms of every layer */
    uint64_t ffn;        /* gate, up, down and the FFN norms */
    uint64_t embeddings; /* token embedding, output norm, output matrix if untied */
    uint64_t predictors; /* W1, b1, W2, b2 of every layer with one (sparse runs) */
    uint64_t kv;         /* K and V caches, half, n_ctx positions */
    uint64_t scratch;    /* activations, index lists, logits of one batch */
    uint64_t total;
} pi_gpu_plan;

typedef struct pi_gpu_params {
    int n_ctx, n_batch;   /* > 0 */
    bool sparse;          /* run the predictors (the model must carry them) */
    float sparsity_shift; /* added to every predictor threshold */
    uint64_t vram;        /* budget in bytes; 0: no limit but the card's */
} pi_gpu_params;

/* Pure arithmetic over the model's tensors; 0, or -1 with err set. */
int pi_gpu_plan_for(const pi_model *m, const pi_gpu_params *p, pi_gpu_plan *out, pi_err *err);

typedef struct pi_gpu pi_gpu;

/* NULL with err set when there is no usable device, the plan exceeds
 * p->vram, the device is out of memory, or a type has no kernel. */
pi_gpu *pi_gpu_new(const pi_model *m, const pi_gpu_params *p, pi_err *err);
void pi_gpu_free(pi_gpu *g);

/* Device bytes the context holds (its arena). */
uint64_t pi_gpu_memory(const pi_gpu *g);

/* Runs tokens[0..n) (n <= n_batch, ids checked by the caller) at positions
 * n_past.. and caches them.  logits: NULL, or the last token's n_vocab
 * floats, or every token's when all.  active: NULL, or n_layer counts of
 * neurons selected over the batch (layers without a predictor count every
 * neuron; a dense run counts n_ff per token).  0, or -1 with err set. */
int pi_gpu_batch(pi_gpu *g, const int32_t *tokens, int n, int n_past, float *logits, bool all,
                 uint64_t *active, pi_err *err);

#endif
