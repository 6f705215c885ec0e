/*
 * model: a transformer's hyperparameters and weights, as views into a
 * memory-mapped GGUF.  Nothing is copied: a weight is a pointer into the
 * mapping plus its type and shape.
 *
 * Supported architectures (general.architecture):
 *   llama   Llama 2/3, SmolLM2, TinyLlama, Mistral: GQA, RoPE (adjacent
 *           pairs), SwiGLU, RMSNorm, tied or untied output;
 *   qwen2   as llama plus q/k/v biases, RoPE on split halves (NeoX);
 *   qwen3   as qwen2 without biases, with RMSNorm of each q and k head;
 *   qwen2moe  qwen2 attention; the FFN is a mixture of experts: a router
 *           picks the top k of E experts per token (softmax weights, not
 *           renormalised) and a shared expert, gated by a sigmoid, is added;
 *   qwen3moe  qwen3 attention; top k of E experts, weights renormalised to
 *           sum 1, no shared expert.
 * A MoE layer's experts are 3-D GGUF tensors (ffn_{gate,up,down}_exps), held
 * here as one matrix whose rows are expert after expert (moe.h).
 *
 * A model packed by pi-pack (man/pi-gguf.5) opens the same way; its layers
 * then have a neuron-major down projection (a mixture of experts' experts
 * too) and the model carries its pi section and predictors.
 */
#ifndef PI_MODEL_H
#define PI_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "gguf.h"
#include "quant.h"

typedef enum pi_arch {
    PI_ARCH_LLAMA,
    PI_ARCH_QWEN2,
    PI_ARCH_QWEN3,
    PI_ARCH_QWEN2MOE,
    PI_ARCH_QWEN3MOE
} pi_arch;

typedef enum pi_rope_type {
    PI_ROPE_NORM, /* rotate (x[2i], x[2i+1]) */
    PI_ROPE_NEOX  /* rotate (x[i], x[i + d/2]) */
} pi_rope_type;

typedef struct pi_hparams {
    pi_arch arch;
    int n_layer, n_embd, n_ff, n_head, n_head_kv, head_dim, n_vocab, n_ctx_train;
    int n_rot; /* dimensions of each head that RoPE rotates */
    float rope_base, rms_eps;
    pi_rope_type rope_type;
    /* mixture of experts (0 for a dense model) */
    int n_expert, n_expert_used; /* E, and k experts per token */
    int n_ff_exp, n_ff_shexp;    /* neurons of each expert, of the shared one */
    bool expert_norm;            /* renormalise the k weights to sum 1 */
} pi_hparams;

/* A weight: rows of ne0 elements, ne1 rows (vectors have ne1 == 1). */
typedef struct pi_weight {
    const void *data; /* NULL when the model has no such tensor */
    pi_type type;
    int64_t ne0, ne1;
    size_t row_bytes;
    const char *name;
} pi_weight;

typedef struct pi_layer {
    pi_weight attn_norm, wq, wk, wv, wo, bq, bk, bv, q_norm, k_norm;
    pi_weight ffn_norm, gate, up, down;
    /* MoE layers (gate, up and down above then empty): the router (E rows),
     * the experts as one matrix each, expert e's rows at e * n_ff_exp (gate,
     * up) and e * n_embd (down), and qwen2moe's shared expert and its gate
     * (one row) */
    pi_weight gate_inp, gate_exps, up_exps, down_exps;
    pi_weight gate_inp_shexp, gate_shexp, up_shexp, down_shexp;
    /* down is neuron-major (a packed model's ffn_down_t: n_ff rows of n_embd,
     * one per neuron) rather than GGUF's n_embd rows of n_ff; in a MoE layer
     * down_exps is (ffn_down_exps_t: expert e's n_ff_exp rows of n_embd at
     * e * n_ff_exp) */
    bool down_t;
} pi_layer;

typedef struct pi_model {
    pi_gguf *gguf;
    pi_hparams hp;
    pi_weight tok_embd, output_norm, output; /* output may alias tok_embd */
    pi_layer *layers;
    /* A packed model's pi section and predictors (packinfo.h); NULL for an
     * ordinary model. */
    struct pi_packinfo *pack;
    struct pi_predictor *pred;
} pi_model;

/* Opens and checks a model: architecture, every tensor present with the
 * shape the hyperparameters imply, types the engine can compute with. */
pi_model *pi_model_open(const char *path, pi_err *err);
/* The same over a GGUF already open; the model takes ownership of g. */
pi_model *pi_model_from_gguf(pi_gguf *g, pi_err *err);
void pi_model_close(pi_model *m);

const char *pi_arch_name(pi_arch a);
/* Whether the model's FFNs are mixtures of experts. */
bool pi_model_is_moe(const pi_model *m);
/* Row r of a weight, as float (for embedding lookups). */
int pi_weight_row(const pi_weight *w, int64_t r, float *out);
/* Bytes of all weights: what one generated token reads from a dense model
 * (every matrix once); a mixture of experts reads only its chosen experts. */
uint64_t pi_model_weight_bytes(const pi_model *m);

#endif
