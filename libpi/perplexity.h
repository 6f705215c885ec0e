/*
 * perplexity: how well the model predicts a token sequence.
 *
 * Windows of n_ctx tokens start every `stride` tokens; each window is
 * evaluated from an empty cache and scores only its last `score` tokens.
 * With score == stride (the default, score 0) every scored token is
 * predicted with at least n_ctx - stride tokens of context and none is scored
 * twice; stride == n_ctx / 2 is the usual choice.  llama.cpp's `perplexity`
 * tool is stride == n_ctx, score == n_ctx / 2: the second half of
 * non-overlapping windows.
 */
#ifndef PI_PERPLEXITY_H
#define PI_PERPLEXITY_H

#include <stdint.h>

#include "err.h"
#include "forward.h"

typedef struct pi_ppl {
    double nll;      /* mean negative log-likelihood, nats per token */
    double ppl;      /* exp(nll) */
    int64_t n_scored;
    int64_t n_top1;  /* scored tokens that were the model's most likely */
    int n_windows;
} pi_ppl;

/* Called after each window with the running result (may be NULL). */
typedef void (*pi_ppl_progress)(void *user, int window, int n_windows, const pi_ppl *now);

/* argmax: NULL, or room for every scored position's most likely token (in
 * scoring order; at most (n - n_ctx) / stride + 1 windows of `score`), for
 * comparing two runs position by position. */
int pi_perplexity(pi_ctx *c, const int32_t *tokens, int64_t n, int n_ctx, int stride,
                  int score, pi_ppl *out, int32_t *argmax, pi_ppl_progress progress, void *user,
                  pi_err *err);

#endif
