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
 * Two ways to run a model larger than the budget (forward.c picks):
 *   layer offload (n_layer_gpu < n_layer): layers [0, n_layer_gpu) run here,
 *     dense or sparse; the batch's hidden state then goes back to the host,
 *     where the caller runs the other layers and the output (llama.cpp's
 *     -ngl);
 *   hybrid (n_hot): every layer's attention runs here, and of its FFN the
 *     n_hot[il] hottest neurons of a packed model (a prefix, pi-pack's
 *     order); the predictor runs here, the selection is split at n_hot, and
 *     while the GPU computes the selected hot neurons the caller's `cold`
 *     function computes the selected cold ones on the CPU from copies of the
 *     FFN input and the index list (page-locked, asynchronous); its partial
 *     sum comes back once and is added here.  The host waits for copies on
 *     an event (sleeping, not spinning).
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

/* The CPU half of a hybrid layer's FFN: for token t the neurons idx[t *
 * stride + i], first[t] <= i < count[t], of layer il, over x (n rows of
 * n_embd, the FFN input); out: n rows of n_embd, overwritten. */
typedef void (*pi_gpu_cold_fn)(void *user, int il, const float *x, const int32_t *idx,
                               int64_t stride, const int32_t *first, const int32_t *count,
                               float *out, int n);

typedef struct pi_gpu_params {
    int n_ctx, n_batch;   /* > 0 */
    bool sparse;          /* run the predictors (the model must carry them) */
    float sparsity_shift; /* added to every predictor threshold */
    uint64_t vram;        /* budget in bytes; 0: no limit but the card's */
    int n_layer_gpu;      /* layer offload: layers on the GPU; 0: all */
    const int *n_hot;     /* hybrid: per layer, the hot neurons held; NULL: all */
    pi_gpu_cold_fn cold;  /* hybrid: computes the rest */
    void *cold_user;
} pi_gpu_params;

/* Pure arithmetic over the model's tensors; 0, or -1 with err set. */
int pi_gpu_plan_for(const pi_model *m, const pi_gpu_params *p, pi_gpu_plan *out, pi_err *err);

/* How a model runs under p->vram: whole on the GPU when it fits (or no
 * budget is given); else with `offload`, as many whole layers as fit
 * (n_layer_gpu set); else, for a packed sparse model, hybrid: attention of
 * every layer and the hot neurons that placement.h's plan gives each layer
 * (n_hot, the caller's array of n_layer ints, filled and set in p; the
 * caller still sets p->cold).  -1 with err set when none fits. */
typedef enum pi_gpu_mode { PI_GPU_WHOLE, PI_GPU_OFFLOAD, PI_GPU_HYBRID } pi_gpu_mode;
int pi_gpu_fit(const pi_model *m, pi_gpu_params *p, bool offload, int *n_hot, pi_gpu_mode *mode,
               pi_err *err);

typedef struct pi_gpu pi_gpu;

/* NULL with err set when there is no usable device, the plan exceeds
 * p->vram, the device is out of memory, or a type has no kernel. */
pi_gpu *pi_gpu_new(const pi_model *m, const pi_gpu_params *p, pi_err *err);
void pi_gpu_free(pi_gpu *g);

/* Device bytes the context holds (its arena). */
uint64_t pi_gpu_memory(const pi_gpu *g);

/* Runs tokens[0..n) (n <= n_batch, ids checked by the caller) at positions
 * n_past.. and caches them.  logits: NULL, or the last token's n_vocab
 * floats, or every token's when all.  active: NULL, or counts of neurons
 * selected over the batch for the layers run here (layers without a
 * predictor count every neuron; a dense run counts n_ff per token).  With
 * layer offload, x_out receives the hidden state after the GPU's layers (n
 * rows of n_embd) and logits must be NULL.  0, or -1 with err set. */
int pi_gpu_batch(pi_gpu *g, const int32_t *tokens, int n, int n_past, float *logits, bool all,
                 uint64_t *active, float *x_out, pi_err *err);

/* Where a hybrid run's time and neurons went, since creation. */
typedef struct pi_gpu_stats {
    double cold_s;          /* CPU computing cold neurons */
    double wait_s;          /* host waiting for the GPU's copies */
    uint64_t hot, cold;     /* selected neurons computed by the GPU, the CPU */
} pi_gpu_stats;
pi_gpu_stats pi_gpu_get_stats(const pi_gpu *g);
pi_gpu_mode pi_gpu_get_mode(const pi_gpu *g);
int pi_gpu_layers(const pi_gpu *g); /* layers the GPU runs */

#endif
