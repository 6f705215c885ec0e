/*
 * packinfo: the pi section of a packed model (written by pi-pack, described
 * in man/pi-gguf.5), read back and checked.
 *
 * A packed model is an ordinary GGUF of its architecture whose FFN neurons
 * are reordered hottest first in every layer, whose down projection is
 * stored neuron-major (blk.N.ffn_down_t.weight: n_ff rows of n_embd, so one
 * neuron is one contiguous row), and which carries these keys:
 *
 *   pi.version              u32    PI_PACK_VERSION
 *   pi.source.fingerprint   u64    pi_gguf_fingerprint() of the unpacked model
 *   pi.ffn.freq_level       f32    activation mass the frequencies count at
 *   pi.ffn.stats_tokens     u64    tokens the frequencies were measured on
 *   pi.ffn.freq             u16[n_layer * n_ff]  firing frequency * 65535,
 *                                  in packed order, non-increasing per layer
 *   pi.ffn.perm             u32[n_layer * n_ff]  the unpacked index of each
 *                                  packed neuron (a permutation per layer)
 *   pi.placement.budget     u64    optional, with .ctx (u32) and .n_gpu
 *   pi.placement.ctx        u32    (u32[n_layer]): the plan pi-pack printed
 *   pi.placement.n_gpu      u32[n_layer]   for --vram, as a default
 *
 * plus the predictors' pi.predictor.* keys and pred.N.* tensors (with output
 * rows in packed order), read by pi_predictor_from_packed().
 *
 * A packed mixture of experts (qwen2moe, qwen3moe) sees each layer's
 * neurons as one row of n_ff = E * n_ff_exp, expert x's neuron j at
 * x * n_ff_exp + j (moe.h), so freq and perm keep the form above; they are
 * ordered in blocks of n_ff_exp, one per packed expert.  Packed expert x'
 * takes the rows [x' * n_ff_exp, (x' + 1) * n_ff_exp), all from one source
 * expert (perm / n_ff_exp), hottest first: freq is non-increasing within
 * each block, not across the layer.  Its down projection is
 * blk.N.ffn_down_exps_t.weight (E matrices of n_ff_exp rows of n_embd), its
 * router's rows are in packed expert order, and one more key says how the
 * experts were ordered:
 *
 *   pi.moe.usage            f32[n_layer * E]  each packed expert's share of
 *                                  the layer's routings, non-increasing
 *
 * It has no predictors and no placement keys.
 */
#ifndef PI_PACKINFO_H
#define PI_PACKINFO_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "gguf.h"

#define PI_PACK_VERSION 1
#define PI_PACK_FREQ_SCALE 65535.0f /* stored frequencies are k / 65535 */

typedef struct pi_packinfo {
    uint64_t source_fingerprint;
    float freq_level;
    uint64_t stats_tokens;
    int n_layer, n_ff;   /* a mixture of experts: n_ff = n_expert * n_ff_exp */
    int n_expert, n_ff_exp; /* 0 for a dense model */
    float *freq;     /* [n_layer][n_ff], as stored (k / 65535) */
    uint32_t *perm;  /* [n_layer][n_ff] */
    float *usage;    /* [n_layer][n_expert], pi.moe.usage; NULL for a dense model */
    uint64_t plan_budget; /* 0 when no plan is stored */
    int plan_ctx;
    uint32_t *plan_n_gpu; /* [n_layer] or NULL */
} pi_packinfo;

/* Does the file carry a pi section (the key pi.version)? */
bool pi_packinfo_present(const pi_gguf *g);

/* Reads and checks the section of a model with n_layer layers of n_ff
 * neurons (untrusted input): the version, every key's type and length, each
 * layer's frequencies non-increasing and its perm a permutation.  On failure
 * *out is left empty and err names the file and the key. */
int pi_packinfo_read(const pi_gguf *g, int n_layer, int n_ff, pi_packinfo *out, pi_err *err);
/* The same for a mixture of experts of n_expert >= 1 experts of n_ff_exp
 * neurons: each block of perm is a permutation of one source expert's rows,
 * freq non-increasing per block, pi.moe.usage present, finite, in [0, 1],
 * non-increasing per layer and summing to 1. */
int pi_packinfo_read_moe(const pi_gguf *g, int n_layer, int n_expert, int n_ff_exp,
                         pi_packinfo *out, pi_err *err);
void pi_packinfo_free(pi_packinfo *p); /* empties *p; NULL is allowed */

/* Layer il's frequencies and permutation (n_ff each), and a mixture of
 * experts' usage (n_expert). */
static inline const float *pi_packinfo_freq(const pi_packinfo *p, int il)
{
    return p->freq + (size_t)il * (size_t)p->n_ff;
}
static inline const uint32_t *pi_packinfo_perm(const pi_packinfo *p, int il)
{
    return p->perm + (size_t)il * (size_t)p->n_ff;
}
static inline const float *pi_packinfo_usage(const pi_packinfo *p, int il)
{
    return p->usage + (size_t)il * (size_t)p->n_expert;
}

#endif
