/*
 * dataset: a trace's records held in memory for training, layer by layer.
 *
 * pi-train-predictor needs, for each layer, many tokens' FFN inputs and
 * activations at once (it makes several passes over them), while a trace
 * may be larger than memory and may arrive on a pipe, where a second pass
 * is impossible.  So the traces are read once, streaming, and the records
 * kept in their compact trace encoding (int8 inputs, one-byte activation
 * codes: about 2.1 kB per layer for SmolLM2-135M, a quarter of float); when
 * more records arrive than `memory` allows, a uniform sample of them is kept
 * (reservoir sampling, drawn from the seed), and the caller is told how many
 * were seen and kept.
 *
 * Records are split into training and validation by blocks of 64
 * consecutive records (one in ten blocks validates): neighbouring tokens of
 * one text are alike, and a split token by token would validate on near
 * copies of training tokens.
 */
#ifndef PI_DATASET_H
#define PI_DATASET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "trace.h"

#define PI_DATASET_BLOCK 64
#define PI_DATASET_VAL_EVERY 10

typedef struct pi_dataset_params {
    size_t memory;       /* bytes for the records at most; 0: 2 GiB */
    uint64_t seed;       /* the reservoir's draws */
    const bool *layers;  /* n_layer flags: which layers to keep; NULL: all recorded */
    /* After every chunk of records read (may be NULL). */
    void (*progress)(void *user, int64_t records);
    void *user;
} pi_dataset_params;

typedef struct pi_dataset pi_dataset;

/* Reads the traces (paths; "-" is standard input) whose parts must all come
 * from the model with this fingerprint and shape, and record every layer
 * asked for.  NULL with err naming the file on any problem, or when the
 * traces hold no record. */
pi_dataset *pi_dataset_load(const char *const *paths, int n_paths, uint64_t fingerprint,
                            int n_layer, int n_embd, int n_ff, const pi_dataset_params *p,
                            pi_err *err);
void pi_dataset_free(pi_dataset *d);

/* Whether layer il is held. */
bool pi_dataset_has_layer(const pi_dataset *d, int il);
/* Records read, and records kept in each split. */
int64_t pi_dataset_seen(const pi_dataset *d);
int64_t pi_dataset_count(const pi_dataset *d, bool val);

/* Decodes layer il's records of one split: x gets count rows of n_embd,
 * act count rows of n_ff magnitudes.  -1 for a layer not held. */
int pi_dataset_decode(const pi_dataset *d, int il, bool val, float *x, float *act);

#endif
