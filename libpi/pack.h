/*
 * pack: writing a packed model (pi-pack; the format is in packinfo.h and
 * man/pi-gguf.5) from a model, its predictors and its activation statistics.
 *
 * Each layer's neurons are sorted by firing frequency, hottest first (ties:
 * the sum of the frequencies at every statistics level, then the lower
 * index), and the model is rewritten in that order:
 *
 *   ffn_gate, ffn_up   rows permuted (bytes copied, nothing requantised);
 *   ffn_down           replaced by ffn_down_t, neuron-major: row j is the
 *                      down column of packed neuron j, requantised to the
 *                      down type (pi_pack_down_type());
 *   predictors         output rows (W2, b2) permuted to match;
 *
 * and every other tensor and metadata key is copied as it is.
 *
 * A mixture of experts (qwen2moe, qwen3moe; pack_moe.h) is packed whole
 * experts first: each layer's experts sorted by how often the router chose
 * them (the statistics' `experts:` usage counts, more used first, ties to
 * the lower index), then inside each expert its neurons hottest first as
 * above.  The layer's neurons are one row of E * n_ff_exp (moe.h), so perm
 * and the frequencies keep their dense form, in blocks of one expert each:
 *
 *   ffn_gate_inp       the router's rows in packed expert order (bytes);
 *   ffn_gate_exps,     whole experts reordered and rows permuted inside
 *   ffn_up_exps        each (bytes copied);
 *   ffn_down_exps      replaced by ffn_down_exps_t, neuron-major per expert,
 *                      requantised to the down type;
 *
 * and the shared expert copied as it is.  A mixture of experts has no
 * predictors and no placement plan yet.
 *
 * The output is a pure function of the inputs: the same model, predictors,
 * statistics and parameters give the same bytes.  Tensors are produced one
 * at a time while the file is written, so memory stays near one layer's
 * down projection.
 */
#ifndef PI_PACK_H
#define PI_PACK_H

#include <stdint.h>

#include "actstats.h"
#include "err.h"
#include "model.h"
#include "placement.h"
#include "predictor.h"

typedef struct pi_pack_params {
    int down_type; /* a pi_type for ffn_down_t, or -1: pi_pack_down_type()'s choice */
    int level;     /* statistics level index to order by, or -1: the level
                      equal to the predictors' keep_mass, else 0.99 */
    const char *stats_name, *pred_name; /* the inputs' file names, for messages */
} pi_pack_params;

typedef struct pi_pack {
    const pi_model *m;
    const pi_predictor *pred;
    int n_layer, n_ff, n_embd, level; /* a mixture of experts: n_ff = E * n_ff_exp */
    int n_expert, n_ff_exp;  /* E experts of n_ff_exp neurons; 0 for a dense model */
    pi_type down_type;
    uint64_t fingerprint;  /* the source model's */
    uint64_t stats_tokens;
    uint32_t *perm;        /* [n_layer][n_ff]: source index of each packed neuron */
    uint16_t *freq_q;      /* [n_layer][n_ff]: frequency * 65535, as stored */
    float *freq;           /* [n_layer][n_ff]: freq_q / 65535 */
    uint64_t *neuron_bytes; /* [n_layer]: gate row + up row + down_t row */
    uint32_t *expert;      /* [n_layer][n_expert]: source index of each packed expert */
    float *usage;          /* [n_layer][n_expert]: its share of the layer's routings */
} pi_pack;

/* The down type an automatic choice gives for a source type: float types
 * stay as they are; a quantised down projection becomes Q8_0 (F16 when
 * n_embd is not whole blocks of 32), because requantising along the other
 * axis rounds a second time: on SmolLM2-135M Q4_1 (bench/RESULTS.md) Q8_0
 * costs 0.13% perplexity for 70% more down bytes, Q5_1 1.1% for 20% more,
 * Q4_1 2.7% for none.  -1 when the source type cannot be read. */
int pi_pack_down_type(pi_type src, int64_t n_embd);

/* Checks the inputs against each other (fingerprints and shapes; err names
 * which file belongs to another model) and computes the order.  m and pred
 * must outlive pk; pred must be NULL for a mixture of experts, whose
 * statistics must have their experts section.  On failure pk is left
 * empty. */
int pi_pack_prepare(pi_pack *pk, const pi_model *m, const pi_predictor *pred,
                    const pi_actstats_file *stats, const pi_pack_params *p, pi_err *err);
void pi_pack_free(pi_pack *pk); /* NULL is allowed */

/* The placement plan for a budget, from the frequencies as stored, so that it
 * is the plan a runner computes from the packed file.  Refused for a mixture
 * of experts. */
int pi_pack_placement(const pi_pack *pk, const pi_placement_params *pp, pi_placement *out,
                      pi_err *err);

/* Called after each layer's down projection is written (done of n_layer);
 * a non-zero return stops the write ("interrupted"), leaving no file. */
typedef int (*pi_pack_progress_fn)(void *user, int done, int n_layer);

/* Writes the packed model to path atomically ("-": standard output); plan,
 * when not NULL, is stored as the file's default placement. */
int pi_pack_write(const pi_pack *pk, const pi_placement *plan, const char *path,
                  pi_pack_progress_fn progress, void *user, pi_err *err);

#endif
