/*
 * placement: which FFN neurons of which layers live on the GPU under a
 * memory budget (`--vram SIZE`).
 *
 * The always-resident tensors are reserved first: every layer's attention
 * weights, biases and norms, the FFN norm, the token embedding, the output
 * matrix (counted once when tied to the embedding), the output norm, the KV
 * cache for a stated context, and a fixed scratch reserve.  FFN neurons then
 * compete for what is left.  A neuron of layer l costs the bytes of its gate
 * row, its up row and its row of the neuron-major down projection; its value
 * is its firing frequency (the probability that it is active for a token).
 * The plan maximises the expected number of activations served from the GPU
 * greedily by value per byte across all layers.
 *
 * Because a packed model orders each layer's neurons hottest first, a layer's
 * share of the GPU is one number: the length n_gpu of the prefix of its
 * neurons in decreasing frequency.  The plan is a pure function of its
 * inputs (equal ratios are broken by lower layer first), so one packed file
 * serves any budget: pi-pack and pi-run compute the same plan from the
 * stored frequencies.
 *
 * The caller owns the input arrays; pi_placement_plan() fills a caller-owned
 * pi_placement whose layer array pi_placement_free() releases.
 */
#ifndef PI_PLACEMENT_H
#define PI_PLACEMENT_H

#include <stdint.h>
#include <stdio.h>

#include "err.h"
#include "model.h"

/* Bytes per KV cache element on the GPU by default: f16.  (pi's CPU cache is
 * float32 today; the CUDA backend is to store f16, and a plan for a float32
 * cache passes 4.) */
#define PI_PLACEMENT_KV_BYTES 2
/* Default scratch reserve: activations, partial sums and library
 * workspaces that pi's allocator hands out besides weights and KV cache. */
#define PI_PLACEMENT_SCRATCH ((uint64_t)256 << 20)
/* Largest per-neuron cost accepted: keeps the ratio comparisons, done as
 * products of a float frequency and a cost, exact in double. */
#define PI_PLACEMENT_MAX_NEURON_BYTES ((uint64_t)1 << 29)

typedef struct pi_placement_params {
    uint64_t budget;  /* bytes of device memory pi may allocate */
    int ctx;          /* context length the KV cache is sized for, >= 0 */
    int kv_bytes;     /* bytes per KV element, 1..8 (PI_PLACEMENT_KV_BYTES) */
    uint64_t scratch; /* fixed reserve (PI_PLACEMENT_SCRATCH) */
} pi_placement_params;

/* What the plan needs from a model; pi_placement_input_from_model() fills it. */
typedef struct pi_placement_input {
    int n_layer, n_ff;             /* >= 1 each */
    const uint64_t *neuron_bytes;  /* [n_layer]: gate + up + down row, 1..MAX */
    const float *const *freq;      /* [n_layer][n_ff] in [0, 1], any order */
    uint64_t resident;             /* always-resident weights, bytes */
    uint64_t kv_elems_per_token;   /* n_layer * 2 * n_head_kv * head_dim */
} pi_placement_input;

typedef struct pi_placement_layer {
    int n_gpu;      /* the layer's n_gpu hottest neurons are on the GPU */
    uint64_t bytes; /* n_gpu * neuron_bytes */
    double share;   /* taken frequencies / all frequencies (0 when all 0) */
} pi_placement_layer;

typedef struct pi_placement {
    pi_placement_params params;
    int n_layer, n_ff;
    pi_placement_layer *layers; /* [n_layer] */
    uint64_t resident, kv, scratch; /* the parts of `reserved` */
    uint64_t reserved;              /* resident + kv + scratch */
    uint64_t ffn_bytes;             /* FFN neurons placed on the GPU */
    uint64_t ffn_bytes_all;         /* every FFN neuron of the model */
    uint64_t total;                 /* reserved + ffn_bytes <= budget */
    int64_t n_gpu;                  /* neurons on the GPU, all layers */
    double share; /* expected share of all FFN activations served by the GPU */
} pi_placement;

/* Computes the plan into *out (which the caller frees with
 * pi_placement_free() after success; on failure it is left empty).  Fails on
 * bad input, out of memory, or a budget below the reserve:
 * "budget of 512.0 MiB is below the 600.5 MiB the always-resident tensors
 * need (attention, embeddings, KV cache for ctx 4096, scratch)". */
int pi_placement_plan(const pi_placement_input *in, const pi_placement_params *p,
                      pi_placement *out, pi_err *err);
/* Releases the layer array and empties *pl; NULL is allowed. */
void pi_placement_free(pi_placement *pl);

/* Bytes of a model's always-resident weights: attention (weights, biases,
 * q/k norms), attention and FFN norms, token embedding, output norm and
 * output matrix (once when tied). */
uint64_t pi_placement_resident_bytes(const pi_model *m);
/* Per-neuron cost of each layer into out[0..n_layer): gate row + up row +
 * one row of n_embd elements of the down projection in its type (the row
 * itself when down is already neuron-major, as in a packed model).  Fails if
 * the down type cannot hold rows of n_embd elements. */
int pi_placement_neuron_bytes(const pi_model *m, uint64_t *out, pi_err *err);
/* Fills *in from a model and per-layer frequencies; neuron_bytes is caller
 * storage for n_layer costs, which *in points to afterwards. */
int pi_placement_input_from_model(const pi_model *m, const float *const *freq,
                                  uint64_t *neuron_bytes, pi_placement_input *in,
                                  pi_err *err);

/* The plan for a packed model (model.h: m->pack) from the frequencies it
 * stores, as pi-pack computed it; fails for a model that is not packed. */
int pi_placement_plan_model(const pi_model *m, const pi_placement_params *p, pi_placement *out,
                            pi_err *err);

/* Prints the plan as a table (`--dry-run`): per layer the hot neurons on the
 * GPU out of n_ff, MiB and expected share of activations, then the totals.
 * Returns -1 if writing to f failed. */
int pi_placement_print(const pi_placement *pl, FILE *f);

/* Parses a size such as "6G", "512M", "1.5GiB", "800MB", "4096" or "0" into
 * bytes.  Units are binary and case-insensitive: K, M, G, T, optionally
 * followed by "B" or "iB"; a bare "B" or no unit means bytes (whole numbers
 * only).  Up to 6 fraction digits count; the result is rounded down.
 * Returns -1 for anything else: empty, spaces, signs, garbage, overflow. */
int pi_parse_size(const char *s, uint64_t *out);

#endif
