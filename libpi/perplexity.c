/* perplexity: strided-window evaluation (see perplexity.h). */
#include "perplexity.h"

#include <math.h>
#include <stdlib.h>

/* -log softmax(logits)[target], in double for a long sum; *best: the
 * most likely token (the first of equals). */
static double nll_of(const float *logits, int n_vocab, int32_t target, int32_t *best)
{
    float mx = logits[0];
    *best = 0;
    for (int i = 1; i < n_vocab; i++)
        if (logits[i] > mx) {
            mx = logits[i];
            *best = i;
        }
    double sum = 0.0;
    for (int i = 0; i < n_vocab; i++)
        sum += exp((double)logits[i] - mx);
    return log(sum) - ((double)logits[target] - mx);
}

int pi_perplexity(pi_ctx *c, const int32_t *tokens, int64_t n, int n_ctx, int stride,
                  int score, pi_ppl *out, int32_t *argmax, pi_ppl_progress progress, void *user,
                  pi_err *err)
{
    int nv = pi_ctx_model(c)->hp.n_vocab;
    if (n_ctx < 2 || n_ctx > pi_ctx_n_ctx(c))
        return pi_err_set(err, "perplexity window of %d tokens: must be 2 to %d", n_ctx,
                          pi_ctx_n_ctx(c));
    if (stride < 1 || stride > n_ctx)
        return pi_err_set(err, "perplexity stride %d: must be 1 to %d", stride, n_ctx);
    if (score == 0)
        score = stride < n_ctx ? stride : n_ctx / 2;
    if (score < 1 || score >= n_ctx)
        return pi_err_set(err, "perplexity scores %d tokens per window: must be 1 to %d", score,
                          n_ctx - 1);
    if (n < n_ctx)
        return pi_err_set(err, "text has %lld tokens, fewer than one window of %d",
                          (long long)n, n_ctx);
    int n_windows = (int)((n - n_ctx) / stride) + 1;
    int batch = pi_ctx_n_batch(c);
    float *logits = malloc((size_t)batch * nv * sizeof *logits);
    if (!logits)
        return pi_err_set(err, "out of memory");
    double sum = 0.0;
    int64_t scored = 0, top1 = 0;
    *out = (pi_ppl){ 0 };
    for (int w = 0; w < n_windows; w++) {
        const int32_t *win = tokens + (int64_t)w * stride;
        pi_ctx_truncate(c, 0);
        /* Positions p predict win[p + 1]; those scored are the last `score`. */
        int first = n_ctx - 1 - score;
        for (int p = 0; p < n_ctx - 1; p += batch) {
            int b = n_ctx - 1 - p < batch ? n_ctx - 1 - p : batch;
            bool want = p + b > first;
            if (pi_decode(c, win + p, b, want ? logits : NULL, want, err)) {
                free(logits);
                return -1;
            }
            for (int i = 0; want && i < b; i++)
                if (p + i >= first) {
                    int32_t best;
                    sum += nll_of(logits + (size_t)i * nv, nv, win[p + i + 1], &best);
                    top1 += best == win[p + i + 1];
                    if (argmax)
                        argmax[scored] = best;
                    scored++;
                }
        }
        *out = (pi_ppl){ sum / (double)scored, exp(sum / (double)scored), scored, top1, w + 1 };
        if (progress)
            progress(user, w + 1, n_windows, out);
    }
    free(logits);
    return 0;
}
