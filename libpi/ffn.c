/*
 * ffn: the dense SwiGLU feed-forward block (see ffn.h).
 */
#include "ffn.h"

#include <math.h>
#include <string.h>

#include "vec.h"

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
    if (l->down_t) {
        pi_ffn_down_t(pool, &l->down, s->gate, ff, NULL, ff, out, n);
        return;
    }
    a = pi_ffn_acts(pool, s, l->down.type, s->gate, n, ff);
    pi_matmul(pool, &l->down, &a, out, d);
}

/* Threads split the output columns at whole blocks, so that each owns a
 * slice of every output row: no partial sums to add up, no shared lines. */
#define DOWN_T_SLICE 1024 /* most floats one slice dequantises at a time */

typedef struct down_t_job {
    const pi_weight *w;
    const float *act;
    int64_t lda;
    const int32_t *idx;
    int64_t n_idx;
    float *out;
    int n;
    int64_t blocks_per_chunk, n_blocks, block;
    size_t block_bytes;
} down_t_job;

static void down_t_chunk(void *arg, int64_t chunk, int ith)
{
    const down_t_job *j = arg;
    int64_t b0 = chunk * j->blocks_per_chunk;
    int64_t b1 = b0 + j->blocks_per_chunk < j->n_blocks ? b0 + j->blocks_per_chunk : j->n_blocks;
    int64_t c0 = b0 * j->block, width = (b1 - b0) * j->block, d = j->w->ne0;
    float row[DOWN_T_SLICE];
    for (int t = 0; t < j->n; t++)
        memset(j->out + t * d + c0, 0, (size_t)width * sizeof(float));
    for (int64_t k = 0; k < j->n_idx; k++) {
        int64_t neuron = j->idx ? j->idx[k] : k;
        const uint8_t *src = (const uint8_t *)j->w->data + (size_t)neuron * j->w->row_bytes +
                             (size_t)b0 * j->block_bytes;
        pi_dequantize_row(j->w->type, src, row, width);
        for (int t = 0; t < j->n; t++) {
            float a = j->act[t * j->lda + k];
            if (a != 0.0f)
                pi_vec_axpy(width, a, row, j->out + t * d + c0);
        }
    }
}

void pi_ffn_down_t(pi_pool *pool, const pi_weight *w, const float *act, int64_t lda,
                   const int32_t *idx, int64_t n_idx, float *out, int n)
{
    const pi_type_traits *tr = pi_type_get_traits(w->type);
    int64_t n_blocks = w->ne0 / tr->block_size;
    int64_t per = DOWN_T_SLICE / tr->block_size;
    int64_t threads = pi_pool_size(pool);
    int64_t even = (n_blocks + threads - 1) / threads;
    down_t_job j = { .w = w, .act = act, .lda = lda, .idx = idx, .n_idx = n_idx, .out = out,
                     .n = n, .blocks_per_chunk = even < per ? even : per, .n_blocks = n_blocks,
                     .block = tr->block_size, .block_bytes = tr->type_size };
    if (j.blocks_per_chunk < 1)
        j.blocks_per_chunk = 1;
    pi_pool_for(pool, (n_blocks + j.blocks_per_chunk - 1) / j.blocks_per_chunk, down_t_chunk,
                &j);
}
