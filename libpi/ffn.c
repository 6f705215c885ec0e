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

pi_acts pi_ffn_acts(pi_pool *pool, const pi_ffn_scratch *s, pi_type wtype, const float *x, int n,
                    int64_t ne)
{
    return s->exact ? pi_acts_float(x, n, ne) : pi_acts_quantize(pool, wtype, x, n, ne, s->acts);
}

void pi_ffn_dense(pi_pool *pool, const pi_layer *l, const float *x, float *out, int n,
                  const pi_ffn_scratch *s)
{
    int64_t d = l->gate.ne0, ff = l->gate.ne1;
    pi_acts a = pi_ffn_acts(pool, s, l->gate.type, x, n, d);
    pi_mm mm[2] = { { &l->gate, &a, s->gate, ff, 0, ff }, { &l->up, &a, s->up, ff, 0, ff } };
    if (s->exact || l->up.type == l->gate.type) {
        pi_matmul_many(pool, mm, 2); /* one parallel loop for both */
    } else {
        pi_matmul_many(pool, mm, 1);
        pi_acts b = pi_ffn_acts(pool, s, l->up.type, x, n, d);
        mm[1].a = &b;
        pi_matmul_many(pool, &mm[1], 1);
    }
    pi_swiglu(s->gate, s->up, n * ff);
    a = pi_ffn_acts(pool, s, l->down.type, s->gate, n, ff);
    pi_matmul(pool, &l->down, &a, out, d);
}
