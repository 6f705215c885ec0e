/*
 * moe: the feed-forward block of a mixture-of-experts layer (qwen2moe,
 * qwen3moe; see model.h), on the CPU.
 *
 * Per token the router's logits go through a softmax; the k most probable
 * experts (ties to the lower index) run with those probabilities as
 * weights, renormalised to sum 1 when the model says so.  The batch's
 * tokens are grouped by expert, and each chosen expert runs once over its
 * tokens through the dense FFN code (ffn.h) on a view of its rows, so a
 * token reads the weights of its k experts only, and a batch reads each
 * chosen expert once.  qwen2moe adds a shared expert, computed for every
 * token and scaled by sigmoid(gate_inp_shexp . x).
 *
 * The result of a token does not depend on the batch it came in: experts
 * are added in expert order, each expert's rows computed by the same
 * kernels alone or in a group.
 *
 * A model packed by pi-pack (pack.h) runs the same way: its router's rows
 * are in the packed expert order, so the chosen ids are packed ids, and
 * each expert's down projection is neuron-major (model.h's down_t).  Its
 * logits differ from the unpacked model's by the order experts are added
 * in and the requantised down projection only.
 */
#ifndef PI_MOE_H
#define PI_MOE_H

#include <stdint.h>

#include "err.h"
#include "ffn.h"
#include "model.h"
#include "threadpool.h"

typedef struct pi_moe pi_moe;

/* Scratch for batches of up to n_batch tokens of model m (a MoE model). */
pi_moe *pi_moe_new(const pi_model *m, int n_batch, pi_err *err);
void pi_moe_free(pi_moe *e);

/* Layer il's FFN: x is n rows of n_embd (after the FFN norm), out n rows of
 * n_embd (overwritten).  s: the context's FFN scratch, sized for the larger
 * of n_ff_exp and n_ff_shexp. */
void pi_moe_ffn(pi_moe *e, pi_pool *pool, int il, const float *x, float *out, int n,
                const pi_ffn_scratch *s);

/* The experts the last pi_moe_ffn() call chose: for token t, k ids in
 * decreasing weight and their weights (k = n_expert_used). */
const int32_t *pi_moe_chosen(const pi_moe *e);
const float *pi_moe_weights(const pi_moe *e);

/* How often each expert of each layer was chosen since creation
 * ([n_layer][n_expert] counts). */
const uint64_t *pi_moe_usage(const pi_moe *e);

/* Neurons of a MoE layer seen as one row: expert x's neuron j at x *
 * n_ff_exp + j (E * n_ff_exp in all). */
int64_t pi_moe_row_len(const pi_model *m);
/* When act is not NULL, each later pi_moe_ffn() also writes its tokens'
 * activations as such rows (n rows of pi_moe_row_len): expert x's
 * silu(gate x) * up x times the token's weight for x where x was chosen, 0
 * elsewhere, so a neuron's magnitude is what it adds to the output.  act
 * holds n_batch rows; NULL stops it. */
void pi_moe_observe(pi_moe *e, float *act);

#endif
