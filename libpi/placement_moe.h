/*
 * placement_moe: which experts, and which neurons of the others, of a
 * mixture of experts live on the GPU under a memory budget (`--vram SIZE`).
 *
 * The always-resident tensors come first, as for a dense model (placement.h),
 * and for a MoE layer they also hold the router and qwen2moe's shared expert
 * and its gate: every token runs them.  The routed experts then compete for
 * what is left.  A token computes all the neurons of each expert it is routed
 * to, so every neuron of expert x is worth the probability that a token
 * chooses x (k times x's share of the layer's routings, measured by
 * pi-profile and stored by pi-pack in decreasing order); its cost is its gate
 * row, up row and row of the neuron-major down projection.  The greedy
 * value-per-byte pass of placement.h over (layer, expert) units then places
 * the most used experts whole and a prefix of the next expert's neurons,
 * which pi-pack orders hottest first, so the slice on the GPU is the part
 * that fires most.
 *
 * The plan's figure of merit is the expected share of routed compute served
 * by the GPU: over a layer, the sum of each expert's routing share times the
 * fraction of its neurons on the GPU.
 */
#ifndef PI_PLACEMENT_MOE_H
#define PI_PLACEMENT_MOE_H

#include <stdint.h>
#include <stdio.h>

#include "err.h"
#include "model.h"
#include "placement.h"

typedef struct pi_moe_placement_input {
    int n_layer, n_expert, k, n_ff_exp; /* >= 1 each, k <= n_expert */
    const uint64_t *neuron_bytes;       /* [n_layer]: one expert neuron's cost */
    const float *usage;                 /* [n_layer][n_expert]: share of the
                                           layer's routings, each row summing
                                           to 1 (or all 0: never measured) */
    uint64_t resident;                  /* attention, router, shared experts, ... */
    uint64_t kv_elems_per_token;
} pi_moe_placement_input;

typedef struct pi_moe_placement_layer {
    int whole;      /* experts with every neuron on the GPU */
    int partial;    /* experts with some of their neurons on the GPU */
    int64_t n_gpu;  /* neurons on the GPU */
    uint64_t bytes; /* their bytes */
    double share;   /* expected share of the layer's routed compute on the GPU */
} pi_moe_placement_layer;

typedef struct pi_moe_placement {
    /* One unit per (layer, expert), unit il * n_expert + x: units.layers[u].n_gpu
     * is the prefix of expert x's neurons on the GPU; the reserve and byte
     * totals are those of units. */
    pi_placement units;
    int n_layer, n_expert, n_ff_exp;
    pi_moe_placement_layer *layers; /* [n_layer] */
    int whole, partial;             /* over all layers */
    double share; /* expected share of all routed compute on the GPU */
} pi_moe_placement;

/* Computes the plan into *out (freed with pi_moe_placement_free() after
 * success; left empty on failure).  Fails on bad input (usage outside [0, 1]
 * or a row that does not sum to 1 or 0), out of memory, or a budget below the
 * reserve, with placement.h's message. */
int pi_moe_placement_plan(const pi_moe_placement_input *in, const pi_placement_params *p,
                          pi_moe_placement *out, pi_err *err);
void pi_moe_placement_free(pi_moe_placement *pl); /* NULL is allowed */

/* Bytes of a MoE model's always-resident weights: those of
 * pi_placement_resident_bytes() plus every layer's router and shared
 * expert with its gate. */
uint64_t pi_moe_placement_resident_bytes(const pi_model *m);

/* The plan for a packed MoE model from the expert usage and order it stores;
 * fails for a model that is not a packed mixture of experts. */
int pi_moe_placement_plan_model(const pi_model *m, const pi_placement_params *p,
                                pi_moe_placement *out, pi_err *err);

/* Prints the plan (`--dry-run`): per layer the experts whole and in part on
 * the GPU, MiB and expected share of routed compute, then the totals.
 * Returns -1 if writing to f failed. */
int pi_moe_placement_print(const pi_moe_placement *pl, FILE *f);

#endif
