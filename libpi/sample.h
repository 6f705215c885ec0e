/*
 * sample: choosing the next token from logits.
 *
 * The chain, in llama.cpp's order: repetition penalty over the last
 * `repeat_last_n` tokens, then (unless temperature <= 0, which is greedy)
 * top-k, top-p, min-p, temperature, and a draw from the resulting
 * distribution with the sampler's own seeded generator, so that a seed gives
 * the same text on every machine.
 */
#ifndef PI_SAMPLE_H
#define PI_SAMPLE_H

#include <stdint.h>

#include "err.h"

typedef struct pi_sample_params {
    float temperature;    /* <= 0: greedy (default 0.8) */
    int top_k;            /* <= 0: off (default 40) */
    float top_p;          /* >= 1: off (default 0.95) */
    float min_p;          /* <= 0: off (default 0.05) */
    float repeat_penalty; /* 1: off (default 1.0) */
    int repeat_last_n;    /* default 64 */
    uint64_t seed;
} pi_sample_params;

typedef struct pi_sampler pi_sampler;

pi_sample_params pi_sample_defaults(void);
pi_sampler *pi_sampler_new(const pi_sample_params *p, int n_vocab, pi_err *err);
void pi_sampler_free(pi_sampler *s);
/* Records a token as generated or prompted (for the repetition penalty). */
void pi_sampler_accept(pi_sampler *s, int32_t token);
/* Picks a token; logits are modified in place. */
int32_t pi_sample(pi_sampler *s, float *logits);

#endif
