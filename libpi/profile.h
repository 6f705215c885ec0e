/*
 * profile: runs the dense model over text and watches every layer's FFN,
 * feeding a trace (trace.h) and activation statistics (actstats.h).  This is
 * the engine of pi-profile.
 *
 * Text is cut into windows of ctx tokens (the model's BOS first when it
 * wants one); the cache is cleared between windows, so every token sees at
 * most ctx - 1 tokens of context, as in perplexity measurements.  BOS is
 * never recorded: it is not text, and its activations are atypical.
 *
 * Statistics see every text token of every layer (and a mixture of experts'
 * routing).  The trace records one
 * token of every `every` (which one of each group is drawn from `seed`, so
 * sampling does not lock onto positions) and only the chosen layers.  The
 * result depends on the inputs and the seed, not on the thread count.
 */
#ifndef PI_PROFILE_H
#define PI_PROFILE_H

#include <stdbool.h>
#include <stdint.h>

#include "actstats.h"
#include "expertstats.h"
#include "err.h"
#include "model.h"
#include "trace.h"

typedef struct pi_profile_params {
    int ctx;            /* window length in tokens; 0: 512 (capped by the model's) */
    int batch;          /* tokens per forward pass; 0: 64 */
    int threads;        /* 0: 1 */
    int every;          /* record one token in this many; 0: 1 */
    int32_t bos;        /* token that starts every window; -1: none */
    uint64_t seed;
    int64_t max_tokens; /* stop after this many text tokens; 0: no limit */
    const bool *layers; /* n_layer flags: which layers the trace records; NULL: all */
    pi_trace_writer *trace; /* NULL: no trace */
    pi_actstats *stats;     /* NULL: no statistics; rows of pi_profile_n_ff() */
    pi_expertstats *experts; /* a mixture of experts' routing; NULL: not kept */
    /* Called after each forward pass with the text tokens done so far; a
     * non-zero return stops the profile (pi_profile_text fails with
     * "interrupted"). */
    int (*progress)(void *user, int64_t done);
    void *user;
} pi_profile_params;

typedef struct pi_profile pi_profile;

/* Neurons per layer as profiled: n_ff, or for a mixture of experts every
 * expert's neurons side by side (moe.h), whose activations are the chosen
 * experts' weighted ones and 0 elsewhere.  A mixture of experts is profiled
 * for statistics only (no trace). */
int64_t pi_profile_n_ff(const pi_model *m);

pi_profile *pi_profile_new(const pi_model *m, const pi_profile_params *p, pi_err *err);
void pi_profile_free(pi_profile *pf);

/* The header a trace of this profile carries (for pi_trace_writer_open,
 * before pi_profile_new). */
void pi_profile_trace_info(const pi_model *m, const pi_profile_params *p, pi_trace_info *info);

/* Profiles one text's tokens (no BOS: windows get their own).  Texts are
 * independent: a window never spans two.  Returns 0, or -1 with err set. */
int pi_profile_text(pi_profile *pf, const int32_t *tokens, size_t n, pi_err *err);

/* Whether max_tokens has been reached. */
bool pi_profile_done(const pi_profile *pf);
/* Text tokens run and tokens recorded in the trace so far. */
int64_t pi_profile_tokens(const pi_profile *pf);
int64_t pi_profile_recorded(const pi_profile *pf);
/* The window length in use. */
int pi_profile_ctx(const pi_profile *pf);

#endif
