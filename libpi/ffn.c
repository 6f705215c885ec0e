/*
 * ffn: the dense SwiGLU feed-forward block (see ffn.h).
 */
#include "ffn.h"

#include <math.h>

void pi_swiglu(float *g, const float *u, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

void pi_ffn_dense(pi_pool *pool, const pi_layer *l, const float *x, float *out, int n,
                  const pi_ffn_scratch *s)
{
    int64_t d = l->gate.ne0, ff = l->gate.ne1;
    pi_acts a = pi_acts_quantize(pool, l->gate.type, x, n, d, s->acts);
    pi_matmul(pool, &l->gate, &a, s->gate, ff);
    if (l->up.type != l->gate.type)
        a = pi_acts_quantize(pool, l->up.type, x, n, d, s->acts);
    pi_matmul(pool, &l->up, &a, s->up, ff);
    pi_swiglu(s->gate, s->up, n * ff);
    a = pi_acts_quantize(pool, l->down.type, s->gate, n, ff, s->acts);
    pi_matmul(pool, &l->down, &a, out, d);
}
