/*
 * ffn: the dense SwiGLU feed-forward block (see ffn.h).
 */
#include "ffn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "axpy.h"

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
#define DOWN_T_SLICE 1024 /* most columns of one chunk */

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
    pi_axpy_fn axpy;
} down_t_job;

/* One token, positions [i0, i1) of the index list, whole rows into y: rows
 * in groups, fused dequantise-and-add, skipping neurons whose activation is
 * exactly 0. */
static void down_t_one(const down_t_job *j, int64_t i0, int64_t i1, float *y)
{
    const uint8_t *w = j->w->data;
    size_t rb = j->w->row_bytes;
    float a[PI_AXPY_ROWS];
    const void *rows[PI_AXPY_ROWS];
    int k = 0;
    for (int64_t i = i0; i < i1; i++) {
        if (j->act[i] == 0.0f)
            continue;
        int64_t neuron = j->idx ? j->idx[i] : i;
        a[k] = j->act[i];
        rows[k] = w + (size_t)neuron * rb;
        if (i + PI_PREFETCH_AHEAD < i1) {
            int64_t ahead = j->idx ? j->idx[i + PI_PREFETCH_AHEAD] : i + PI_PREFETCH_AHEAD;
            pi_prefetch(w + (size_t)ahead * rb, rb);
        }
        if (++k == PI_AXPY_ROWS) {
            j->axpy(j->w->ne0, k, a, rows, y);
            k = 0;
        }
    }
    if (k)
        j->axpy(j->w->ne0, k, a, rows, y);
}

/* Several tokens: each group of rows is dequantised once and added to every
 * token's output as float rows (activations of 0 add nothing). */
static void down_t_many(const down_t_job *j, int64_t width, size_t off, int64_t c0,
                        float (*rowbuf)[DOWN_T_SLICE])
{
    pi_axpy_fn f32 = pi_axpy_get(PI_TYPE_F32);
    int64_t d = j->w->ne0;
    for (int64_t i0 = 0; i0 < j->n_idx; i0 += PI_AXPY_ROWS) {
        int k = j->n_idx - i0 < PI_AXPY_ROWS ? (int)(j->n_idx - i0) : PI_AXPY_ROWS;
        const void *rows[PI_AXPY_ROWS];
        for (int r = 0; r < k; r++) {
            int64_t neuron = j->idx ? j->idx[i0 + r] : i0 + r;
            pi_dequantize_row(j->w->type,
                              (const uint8_t *)j->w->data + (size_t)neuron * j->w->row_bytes + off,
                              rowbuf[r], width);
            rows[r] = rowbuf[r];
        }
        for (int t = 0; t < j->n; t++) {
            const float *act = j->act + t * j->lda + i0;
            f32(width, k, act, rows, j->out + t * d + c0);
        }
    }
}

static void down_t_chunk(void *arg, int64_t chunk, int ith)
{
    const down_t_job *j = arg;
    int64_t b0 = chunk * j->blocks_per_chunk;
    int64_t b1 = b0 + j->blocks_per_chunk < j->n_blocks ? b0 + j->blocks_per_chunk : j->n_blocks;
    int64_t c0 = b0 * j->block, width = (b1 - b0) * j->block, d = j->w->ne0;
    size_t off = (size_t)b0 * j->block_bytes;
    for (int t = 0; t < j->n; t++)
        memset(j->out + t * d + c0, 0, (size_t)width * sizeof(float));
    float rowbuf[PI_AXPY_ROWS][DOWN_T_SLICE];
    down_t_many(j, width, off, c0, rowbuf);
}

/* One token: the index list is cut into runs of DOWN_T_RUN positions, each
 * summed over whole rows into a partial output of its own (run 0 into out),
 * then the partials are added to out in run order.  Whole rows stream from
 * memory, which the hardware prefetcher follows, where slices of every row
 * would not; and since the runs do not depend on the number of threads,
 * neither do the sums. */
#define DOWN_T_RUN 256

typedef struct down_run_job {
    const down_t_job *j;
    float *partial; /* (n_runs - 1) rows of ne0 */
    int64_t n_runs;
} down_run_job;

static void down_run(void *arg, int64_t run, int ith)
{
    const down_run_job *r = arg;
    const down_t_job *j = r->j;
    int64_t d = j->w->ne0, i0 = run * DOWN_T_RUN;
    int64_t i1 = i0 + DOWN_T_RUN < j->n_idx ? i0 + DOWN_T_RUN : j->n_idx;
    float *y = run ? r->partial + (run - 1) * d : j->out;
    (void)ith;
    memset(y, 0, (size_t)d * sizeof(float));
    down_t_one(j, i0, i1, y);
}

static void down_reduce(void *arg, int64_t chunk, int ith)
{
    const down_run_job *r = arg;
    int64_t d = r->j->w->ne0, c0 = chunk * DOWN_T_SLICE;
    int64_t c1 = c0 + DOWN_T_SLICE < d ? c0 + DOWN_T_SLICE : d;
    (void)ith;
    for (int64_t k = 1; k < r->n_runs; k++) {
        const float *p = r->partial + (k - 1) * d;
        for (int64_t c = c0; c < c1; c++)
            r->j->out[c] += p[c];
    }
}

static void down_t_rows(pi_pool *pool, const down_t_job *j)
{
    down_run_job r = { j, NULL, (j->n_idx + DOWN_T_RUN - 1) / DOWN_T_RUN };
    int64_t d = j->w->ne0;
    if (r.n_runs < 1)
        r.n_runs = 1;
    if (r.n_runs > 1 && !(r.partial = malloc((size_t)(r.n_runs - 1) * d * sizeof(float))))
        abort(); /* n_ff / 256 rows of n_embd: only an exhausted heap fails here */
    pi_pool_for(pool, r.n_runs, down_run, &r);
    if (r.n_runs > 1)
        pi_pool_for(pool, (d + DOWN_T_SLICE - 1) / DOWN_T_SLICE, down_reduce, &r);
    free(r.partial);
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
                     .block = tr->block_size, .block_bytes = tr->type_size,
                     .axpy = pi_axpy_get(w->type) };
    if (n == 1) {
        down_t_rows(pool, &j);
        return;
    }
    if (j.blocks_per_chunk < 1)
        j.blocks_per_chunk = 1;
    pi_pool_for(pool, (n_blocks + j.blocks_per_chunk - 1) / j.blocks_per_chunk, down_t_chunk,
                &j);
}
