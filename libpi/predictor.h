/*
 * predictor: per-layer activation predictors, which guess before an FFN runs
 * which of its neurons a token will need.
 *
 * Each layer's predictor is the low-rank MLP of Deja Vu and PowerInfer:
 *
 *     h = relu(W1 x + b1)      W1: rank x n_embd, x the FFN input (after the
 *     z = W2 h + b2            W2: n_ff x rank    FFN norm), z one logit per neuron
 *
 * and neuron i is predicted active when z[i] > threshold, a per-layer
 * threshold in logit space (the sigmoid is monotone, so it never needs to be
 * applied).  A pi_predictor holds every layer of one model; a layer with rank
 * 0 has no predictor (not trained).  It records the fingerprint of the model
 * it was trained for (pi_gguf_fingerprint) and how its labels were made.
 *
 * On disk it is a small GGUF of its own (general.architecture "pi-predictor"):
 *   pi.predictor.version          u32 (PI_PREDICTOR_VERSION)
 *   pi.predictor.fingerprint      u64
 *   pi.predictor.n_layer, .n_embd, .n_ff                      u32
 *   pi.predictor.rank             u32[n_layer], 0 = no predictor
 *   pi.predictor.threshold        f32[n_layer]
 *   pi.predictor.recall_target, .keep_mass, .label_threshold  f32, each
 *                                 written only when known (finite)
 * and for each present layer il the tensors pred.<il>.w1 (F16 or F32, rank
 * rows of n_embd), pred.<il>.b1 (F32, rank), pred.<il>.w2 (F16 or F32, n_ff
 * rows of rank) and pred.<il>.b2 (F32, n_ff).
 *
 * Weights are held as floats.  A predictor has a storage type for W1 and W2
 * (F16 by default, which halves the file); setting a layer rounds its weights
 * to that type at once, so the values held, the values saved and the values
 * loaded back are the same floats, and a threshold calibrated in memory is
 * exact for the file.
 *
 * Logits come from pi_predictor_gemm, in which each output is its initial
 * value plus the products summed in index order whatever the blocking, so a
 * token's logits do not depend on how many tokens go in at once.  Functions
 * that only read a predictor may run concurrently.
 */
#ifndef PI_PREDICTOR_H
#define PI_PREDICTOR_H

#include <stdint.h>

#include "err.h"
#include "gguf.h"
#include "gguf_write.h"
#include "quant.h"

#define PI_PREDICTOR_ARCH "pi-predictor"
#define PI_PREDICTOR_VERSION 1
#define PI_PREDICTOR_MAX_LAYERS 4096
#define PI_PREDICTOR_MAX_DIM (1 << 20) /* n_embd, n_ff */
#define PI_PREDICTOR_MAX_RANK 4096

typedef struct pi_predictor pi_predictor;

/* One layer as held in memory (row-major floats; NULLs when rank is 0).
 * The pointers stay valid until the layer is set again or p is freed. */
typedef struct pi_predictor_layer {
    int rank;
    float threshold;
    const float *w1; /* rank x n_embd */
    const float *b1; /* rank */
    const float *w2; /* n_ff x rank */
    const float *b2; /* n_ff */
} pi_predictor_layer;

/* How the predictor was trained; NaN where unknown or not applicable:
 * keep_mass when labels came from a fixed magnitude threshold, and
 * label_threshold when they came from keep_mass. */
typedef struct pi_predictor_meta {
    float recall_target;   /* recall by mass the thresholds were set for */
    float keep_mass;       /* label: in the minimal set keeping this mass */
    float label_threshold; /* label: |a| above this */
} pi_predictor_meta;

/* An empty predictor (every layer absent, storage F16, meta all NaN).
 * 1 <= n_layer <= PI_PREDICTOR_MAX_LAYERS, 1 <= n_embd, n_ff <=
 * PI_PREDICTOR_MAX_DIM. */
pi_predictor *pi_predictor_new(int n_layer, int n_embd, int n_ff, uint64_t fingerprint,
                               pi_err *err);
void pi_predictor_free(pi_predictor *p);

int pi_predictor_n_layer(const pi_predictor *p);
int pi_predictor_n_embd(const pi_predictor *p);
int pi_predictor_n_ff(const pi_predictor *p);
uint64_t pi_predictor_fingerprint(const pi_predictor *p);

/* Storage type of W1 and W2: PI_TYPE_F16 or PI_TYPE_F32.  Changing to F16
 * rounds the layers already set; -1 (err set) for another type or when a
 * weight does not fit in F16. */
int pi_predictor_set_wtype(pi_predictor *p, pi_type type, pi_err *err);
pi_type pi_predictor_wtype(const pi_predictor *p);

void pi_predictor_set_meta(pi_predictor *p, const pi_predictor_meta *meta);
pi_predictor_meta pi_predictor_get_meta(const pi_predictor *p);

/* Copies layer il's weights in (rank 0 removes the layer; the arrays are then
 * not read), rounding W1 and W2 to the storage type.  Fails (err set, the
 * layer unchanged) for a bad layer or rank, a non-finite value, a weight
 * that overflows F16, or out of memory. */
int pi_predictor_set_layer(pi_predictor *p, int il, int rank, const float *w1, const float *b1,
                           const float *w2, const float *b2, float threshold, pi_err *err);
/* -1 for a bad layer, an absent one, or a non-finite threshold. */
int pi_predictor_set_threshold(pi_predictor *p, int il, float threshold);
/* Fills *out (rank 0 and NULLs for an absent layer); -1 for a bad layer. */
int pi_predictor_get_layer(const pi_predictor *p, int il, pi_predictor_layer *out);

/* Logits of n tokens: x is n rows of n_embd floats, out n rows of n_ff.
 * -1 (nothing written) for a bad or absent layer. */
int pi_predictor_layer_logits(const pi_predictor *p, int il, const float *x, int64_t n,
                              float *out);
/* One token: fills logits[0..n_ff) and writes the neurons with a logit above
 * the layer's threshold, in increasing order, to idx[0..n_ff).  Returns how
 * many; -1 for a bad or absent layer. */
int pi_predictor_select(const pi_predictor *p, int il, const float *x, float *logits,
                        int32_t *idx);

/* Writes the predictor GGUF atomically (a temporary file renamed into
 * place; "-" writes standard output). */
int pi_predictor_save(const pi_predictor *p, const char *path, pi_err *err);
/* Adds p's pi.predictor.* keys and pred.* tensors to another file being
 * written (a packed model).  The writer references F16 copies that *hold
 * owns: free it with pi_predictor_hold_free() after pi_gguf_writer_write().
 * The predictor itself must also outlive the write. */
typedef struct pi_predictor_hold pi_predictor_hold;
int pi_predictor_add_to_writer(const pi_predictor *p, pi_gguf_writer *w, pi_predictor_hold **hold,
                               pi_err *err);
void pi_predictor_hold_free(pi_predictor_hold *h); /* NULL is allowed */

/* Reads and validates a predictor file (untrusted input): architecture,
 * version, fingerprint, shapes against the ranks, tensor types, every value
 * finite, no tensor that does not belong.  NULL with err naming the file. */
pi_predictor *pi_predictor_load(const char *path, pi_err *err);
/* The same from an open GGUF; messages name pi_gguf_path(g). */
pi_predictor *pi_predictor_from_gguf(const pi_gguf *g, pi_err *err);
/* The predictors inside a packed model: the same checks, except that the
 * file's architecture is the model's and its other tensors are the model's. */
pi_predictor *pi_predictor_from_packed(const pi_gguf *g, pi_err *err);

/* C[m x n] += A[m x k] B[k x n], row-major with leading dimensions lda, ldb,
 * ldc: the one matrix product of inference and training.  Each C element
 * gets its products added one by one in index order, so the result does not
 * depend on how the loops are blocked or how many rows go in at once.  The
 * plain C version adds each rounded product (no FMA): it equals the naive
 * triple loop bit for bit, and is register-blocked (4 x 8 tiles) so that the
 * compiler vectorises it.  The AVX2 version, chosen at run time when
 * pi_cpu_features() reports AVX2 and FMA (PI_ISA=scalar turns it off),
 * fuses each multiply-add: the triple loop with fmaf(). */
void pi_predictor_gemm(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                       const float *b, int64_t ldb, float *c, int64_t ldc);
/* The two versions, for tests and benchmarks (the AVX2 one only where the
 * CPU has AVX2 and FMA). */
void pi_predictor_gemm_scalar(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                              const float *b, int64_t ldb, float *c, int64_t ldc);
void pi_predictor_gemm_avx2(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                            const float *b, int64_t ldb, float *c, int64_t ldc);

#endif
