/*
 * sparse: the FFN of a packed model computed only for the neurons its
 * predictors select.
 *
 * Per layer and token, with x the FFN input (after the FFN norm):
 *   z = W2 relu(W1 x + b1) + b2              the layer's predictor (F16 weights)
 *   S = { i : z[i] > threshold + shift }     the neurons to compute
 *   a[i] = silu(gate_i . x) * (up_i . x)     for i in S only (rows gathered)
 *   out = sum over i in S of a[i] * down_t row i   (neuron-major down)
 * A layer whose predictor has rank 0 runs dense.  `shift` moves every
 * layer's threshold (logits): above 0 fewer neurons, below 0 more.
 *
 * With a gate floor F > 0 the gate is also a check (as in CATS, after the
 * predictor): the gates of S are computed first, and up and down only for
 * the neurons of S with |silu(gate)| >= F times the token's mean
 * |silu(gate)| over S; the others count as 0.
 *
 * Every product is per token with the same kernels whether a token comes
 * alone (generation) or in a batch (prompt, perplexity), so a token's FFN
 * does not depend on how it was batched: perplexity measures exactly what
 * generation computes.  Gate and up are threaded over neurons in
 * chunks of whole cache lines of the activation row; the down projection
 * over output columns (pi_ffn_down_t), so no thread adds into another's
 * lines.
 */
#ifndef PI_SPARSE_H
#define PI_SPARSE_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "model.h"
#include "threadpool.h"

typedef struct pi_sparse pi_sparse;

/* What the sparse FFNs did since the last reset. */
typedef struct pi_sparse_stats {
    int n_layer;
    int64_t n_ff;
    uint64_t tokens;         /* tokens through each layer */
    const uint64_t *active;  /* per layer: neurons selected (gate computed), over tokens */
    const uint64_t *kept;    /* per layer: of those, up and down computed */
    double predictor_s;      /* wall seconds in the predictors */
    double ffn_s;            /* wall seconds in the FFNs, predictors included */
} pi_sparse_stats;

typedef struct pi_sparse_params {
    float shift;      /* added to every threshold */
    float gate_floor; /* 0: no gate check */
    bool exact;       /* float activations for gate and up (the reference-
                         precision path) */
    bool count_only;  /* statistics only: the FFNs run elsewhere (the GPU),
                         which reports with pi_sparse_count(); pi_sparse_ffn
                         must not be called */
} pi_sparse_params;

/* For model m (which must carry predictors: m->pred), contexts of up to
 * n_batch tokens per call; p NULL: all zero.  NULL with err set when the
 * model has no predictors or memory runs out. */
pi_sparse *pi_sparse_new(const pi_model *m, int n_batch, const pi_sparse_params *p, pi_err *err);
void pi_sparse_free(pi_sparse *s);

float pi_sparse_shift(const pi_sparse *s);
float pi_sparse_gate_floor(const pi_sparse *s);
/* Whether layer il has a predictor (otherwise the caller runs it dense). */
bool pi_sparse_layer_on(const pi_sparse *s, int il);

/* Layer il's FFN for n <= n_batch tokens: x is n rows of n_embd, out n rows
 * of n_embd; act (n rows of n_ff) receives silu(gate) * up, 0 for neurons
 * not computed. */
void pi_sparse_ffn(pi_sparse *s, pi_pool *pool, int il, const float *x, float *out, float *act,
                   int n);

/* Layer il's FFN over neurons chosen elsewhere (a hybrid run's predictor,
 * on the GPU): for token t the neurons idx[t * stride + i], first[t] <= i <
 * count[t], each in [0, n_ff).  out is overwritten; act is scratch of n
 * rows of n_ff.  Not counted in the statistics (the chooser counts). */
void pi_sparse_ffn_listed(pi_sparse *s, pi_pool *pool, int il, const float *x, float *out,
                          float *act, const int32_t *idx, int64_t stride, const int32_t *first,
                          const int32_t *count, int n);

/* The counts stay owned by s, valid until the next call on s. */
pi_sparse_stats pi_sparse_get_stats(const pi_sparse *s);
void pi_sparse_reset_stats(pi_sparse *s);
/* Counts tokens of a layer computed dense (rank 0) as fully active. */
void pi_sparse_count_dense(pi_sparse *s, int il, int n);
/* Counts n tokens of layer il that selected `active` neurons in all, as
 * computed elsewhere (every selected neuron kept). */
void pi_sparse_count(pi_sparse *s, int il, int n, uint64_t active);

#endif
