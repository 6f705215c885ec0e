/*
 * ffn: the feed-forward block of one layer, out = down(silu(gate x) * up x).
 *
 * This is the one function sparse inference replaces: everything that
 * decides which neurons to compute plugs in here, and the rest of the
 * forward pass does not change.
 */
#ifndef PI_FFN_H
#define PI_FFN_H

#include <stdbool.h>

#include "matmul.h"
#include "model.h"
#include "threadpool.h"

/* Scratch the FFN may use, sized for the context's batch. */
typedef struct pi_ffn_scratch {
    float *gate; /* n_batch * n_ff */
    float *up;   /* n_batch * n_ff */
    void *acts;  /* quantised activations: n_batch rows of max(n_embd, n_ff) */
    bool exact;  /* float activations (the reference-precision path) */
} pi_ffn_scratch;

/* x: n rows of n_embd (already normalised); out: n rows of n_embd.  On
 * return s->gate holds the activations silu(gate x) * up x (n rows of n_ff),
 * which the forward pass shows to its FFN observer. */
void pi_ffn_dense(pi_pool *pool, const pi_layer *l, const float *x, float *out, int n,
                  const pi_ffn_scratch *s);

/* x in the activation form weight type wtype takes (float when s->exact). */
pi_acts pi_ffn_acts(pi_pool *pool, const pi_ffn_scratch *s, pi_type wtype, const float *x, int n,
                    int64_t ne);

/* A neuron-major down projection w (n_ff rows of n_embd): out[t] = sum over
 * k < n_idx of act[t * lda + k] * row idx[k] of w (row k when idx is NULL),
 * for n tokens; out is n rows of w->ne0.  Rows are added in groups of
 * PI_AXPY_ROWS (axpy.h).  One token: dequantised on the fly, skipping
 * activations that are exactly 0, the list cut into fixed runs of rows that
 * threads sum separately and that are then added in order, so the result
 * does not depend on the number of threads.  Several tokens: threads take
 * column slices, each group of rows dequantised once for all tokens. */
void pi_ffn_down_t(pi_pool *pool, const pi_weight *w, const float *act, int64_t lda,
                   const int32_t *idx, int64_t n_idx, float *out, int n);

/* Rows read in a data-dependent order (selected neurons) are short and
 * scattered, which the hardware prefetcher does not follow: the row this
 * many ahead is requested while the current one is computed. */
#define PI_PREFETCH_AHEAD 4

static inline void pi_prefetch(const void *p, size_t bytes)
{
    for (size_t o = 0; o < bytes; o += 64)
        __builtin_prefetch((const char *)p + o);
}

/* SiLU(g) * u, elementwise, in place in g. */
void pi_swiglu(float *g, const float *u, int64_t n);

#endif
