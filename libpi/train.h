/*
 * train: fitting one layer's activation predictor (predictor.h) to recorded
 * FFN inputs and activations, calibrating its threshold, and measuring it.
 *
 * The caller (pi-train-predictor) holds one layer's data in memory: n tokens'
 * FFN inputs x (n x n_embd) and activation magnitudes a (n x n_ff), split
 * into a training and a validation part.  pi_train_layer():
 *
 *   1. labels every (token, neuron): positive iff the neuron is in the
 *      smallest set of largest |a| whose sum reaches keep_mass of the
 *      token's total (pi_train_labels), or, with a fixed label threshold,
 *      iff |a| > label_threshold;
 *   2. standardises x per dimension (mean and deviation of the training
 *      part; folded into W1 and b1 afterwards, so the predictor reads raw x);
 *   3. trains W1, b1, W2, b2 with Adam on weighted binary cross-entropy in
 *      minibatches, evaluating the validation loss after every epoch and
 *      keeping the best weights (early stopping after `patience` epochs
 *      without improvement);
 *   4. stores the layer in the predictor (rounded to its storage type), then
 *      sets its threshold to the highest logit cut at which recall by mass on
 *      the validation part reaches recall_target (pi_train_calibrate);
 *   5. measures it on the validation part (pi_train_evaluate).
 *
 * Loss weights.  A positive example weighs pos_weight * ((1 - mass_weight) +
 * mass_weight * k * |a_i| / M), where k is the token's number of positives
 * and M their total |a|: with mass_weight 0 every positive counts the same,
 * with 1 a positive counts in proportion to its share of the token's mass
 * (k * share averages 1 over a token's positives, so the mix keeps the total
 * weight of positives unchanged).  Recall is judged by mass, so a positive
 * that carries little of it matters little: the default 1 follows the
 * measure (on SmolLM2-135M, 7 layers, 20k training tokens, it predicted
 * 91.8% of the neurons active at 0.99 recall by mass on held-out tokens,
 * against 92.2% with 0.5 and 92.5% with 0).  Negatives weigh 1.  pos_weight is n_neg / n_pos of the training
 * labels clamped to [1, 100] (PI_TRAIN_POS_BALANCED: both classes weigh the
 * same in total, but positives never less than negatives, since the target
 * is high recall) or a given number (PI_TRAIN_POS_FIXED).
 *
 * Threads and determinism.  A minibatch is cut into slices of
 * PI_TRAIN_SLICE rows whose forward and backward passes run in parallel
 * (each row's results depend on that row only); then the parameters are cut
 * into blocks, and each block's gradient (a sum over the minibatch's rows
 * in row order) and Adam step are computed by one thread.  Every sum has a
 * fixed order, so the weights are bit-identical for a given seed and data
 * whatever the number of threads.  They do depend on the instruction set:
 * the AVX2 kernels (pi_predictor_gemm, pi_train_bce_row) round differently
 * from the plain C ones (PI_ISA=scalar selects those).
 */
#ifndef PI_TRAIN_H
#define PI_TRAIN_H

#include <stdint.h>

#include "err.h"
#include "predictor.h"
#include "threadpool.h"

#define PI_TRAIN_SLICE 32
#define PI_TRAIN_MAX_BATCH 4096

typedef enum pi_train_pos_mode {
    PI_TRAIN_POS_BALANCED = 0, /* n_neg / n_pos, clamped to [1, 100] */
    PI_TRAIN_POS_FIXED = 1,    /* pos_weight as given */
} pi_train_pos_mode;

typedef struct pi_train_params {
    int rank;              /* 0: pi_train_default_rank() */
    float lr;              /* Adam step size (1e-3) */
    float beta1, beta2;    /* Adam moment decay (0.9, 0.999) */
    int batch;             /* tokens per minibatch, <= PI_TRAIN_MAX_BATCH (256) */
    int max_epochs;        /* (20) */
    int patience;          /* epochs without a better validation loss (3) */
    uint64_t seed;         /* initial weights and the order of tokens (0) */
    float keep_mass;       /* label share of each token's |a| (0.99) */
    float label_threshold; /* NaN (default): keep_mass labels; else |a| > it */
    float recall_target;   /* recall by mass the threshold is set for (0.99) */
    pi_train_pos_mode pos_mode; /* (PI_TRAIN_POS_BALANCED) */
    float pos_weight;      /* for PI_TRAIN_POS_FIXED (> 0) */
    float mass_weight;     /* 0..1, see above (1) */
} pi_train_params;

void pi_train_params_default(pi_train_params *p);

/* About 5% of the layer's FFN weights (3 * n_embd * n_ff: gate, up and
 * down): round(0.05 * 3 * n_embd * n_ff / (n_embd + n_ff)), at least 1 and
 * at most PI_PREDICTOR_MAX_RANK.  63 for SmolLM2-135M (576, 1536), whose
 * predictor then has 5.0% of the FFN's parameters. */
int pi_train_default_rank(int n_embd, int n_ff);

/* One layer's tokens: x is n rows of n_embd, act n rows of n_ff magnitudes
 * (the sign is ignored; non-finite values count as 0). */
typedef struct pi_train_data {
    const float *x;
    const float *act;
    int64_t n;
} pi_train_data;

/* What a predictor does on a set of tokens.  Counts and masses are pooled
 * over all (token, neuron) pairs. */
typedef struct pi_train_eval {
    int64_t tokens;
    double recall_count;     /* positives predicted active / positives */
    double recall_mass;      /* |a| of positives predicted active / |a| of positives */
    double recall_mass_se;   /* its standard error, taking tokens as independent:
                              * sampling noise only; on SmolLM2 traces the drop
                              * from validation to later text was ~10x this */
    double precision;        /* positives predicted active / predicted active */
    double active_fraction;  /* predicted active / (tokens * n_ff) */
    double label_fraction;   /* positives / (tokens * n_ff) */
} pi_train_eval;

typedef struct pi_train_report {
    int rank;
    int epochs;              /* epochs run */
    int best_epoch;          /* whose weights were kept (1-based) */
    double train_loss;       /* of the best epoch */
    double val_loss;         /* of the best epoch */
    float pos_weight;        /* as used */
    float threshold;         /* as calibrated */
    int64_t params;          /* rank * (n_embd + n_ff + 1) + n_ff */
    double cost_fraction;    /* params / (3 * n_embd * n_ff) */
    pi_train_eval val;       /* on the validation part, at the threshold */
} pi_train_report;

/* Called after each epoch; epochs count from 1.  Losses are the mean
 * weighted cross-entropy per (token, neuron). */
typedef void (*pi_train_progress_fn)(void *user, int il, int epoch, double train_loss,
                                     double val_loss);

/* Trains layer il of p on `train`, calibrates and measures on `val` (both
 * need at least one token), and stores the result in p (and a summary in
 * *report, which may be NULL).  pool may be NULL (single-threaded).  Fails
 * with err set for bad parameters or data (a non-finite input), an
 * impossible recall target (no positive labels in the validation part), a
 * diverged training, or out of memory; p's layer is then unchanged.  Messages
 * start "layer <il>: ".  p's meta (pi_predictor_set_meta) is the caller's
 * to record. */
int pi_train_layer(pi_predictor *p, int il, const pi_train_params *prm,
                   const pi_train_data *train, const pi_train_data *val, pi_pool *pool,
                   pi_train_progress_fn progress, void *user, pi_train_report *report,
                   pi_err *err);

/* Sets layer il's threshold to the highest value at which recall by mass on
 * `val` (labels from prm) reaches prm->recall_target: the positives' logits
 * are sorted in decreasing order and the cut placed just below the first at
 * which the running mass reaches the target.  "impossible target" when val
 * has no positive label. */
int pi_train_calibrate(pi_predictor *p, int il, const pi_train_params *prm,
                       const pi_train_data *val, pi_pool *pool, pi_err *err);

/* Measures layer il (at its threshold) on `data` with labels from prm. */
int pi_train_evaluate(const pi_predictor *p, int il, const pi_train_params *prm,
                      const pi_train_data *data, pi_pool *pool, pi_train_eval *out,
                      pi_err *err);

/* The labels of one token: label[i] = 1 for positives, else 0; returns how
 * many.  keep_mass: sort |a| decreasingly (equal values: lower index first),
 * add them in that order in double precision, and take the shortest prefix
 * whose sum reaches keep_mass times the sum of all; a token with no mass
 * has none.  A finite label_threshold >= 0 replaces keep_mass: |a| > it.
 * scratch holds 4 * n_ff uint32_t. */
int pi_train_labels(const float *act, int n_ff, float keep_mass, float label_threshold,
                    uint32_t *scratch, uint8_t *label);

/* The loss kernel: one token's n logits z are replaced by scale * dL/dz,
 * and the sum of L over the row is returned.  L_i = w_i * BCE(sigmoid(z_i),
 * y_i) with y_i = 1 iff |a_i| > cut, or |a_i| == cut and i <= last (a
 * token's labels as pi_train_labels makes them), w_i = c0 + c1 * |a_i| for
 * positives and 1 for negatives.  An AVX2 version (polynomial exp and log)
 * is chosen at run time where the CPU has AVX2 and FMA; the two agree to
 * float rounding.  The versions are public for tests. */
double pi_train_bce_row(int n, const float *act, float cut, int32_t last, float c0, float c1,
                        float scale, float *z);
double pi_train_bce_row_scalar(int n, const float *act, float cut, int32_t last, float c0,
                               float c1, float scale, float *z);
double pi_train_bce_row_avx2(int n, const float *act, float cut, int32_t last, float c0,
                             float c1, float scale, float *z);

#endif
