/*
 * matmul: threaded weight x activations products (see matmul.h).
 */
#include "matmul.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* The packed form only where a batched kernel will read it. */
static size_t packed_row_bytes(pi_type wtype, int64_t n)
{
    return pi_vec_dot_nx_get(wtype) ? pi_dot_pack_size(wtype, n) : 0;
}

size_t pi_acts_row_bytes(pi_type wtype, int64_t n)
{
    const pi_type_traits *tr = pi_type_get_traits(wtype);
    if (!tr)
        return 0;
    size_t plain = pi_row_size(tr->vec_dot_type, n), packed = packed_row_bytes(wtype, n);
    return packed ? packed : plain;
}

typedef struct quant_job {
    pi_type wtype, type;
    const float *x;
    int n;
    int64_t ne;
    uint8_t *buf;
    size_t row_bytes;
    bool packed;
} quant_job;

static void quant_row(void *arg, int64_t t, int ith)
{
    const quant_job *j = arg;
    (void)ith;
    if (j->packed)
        pi_dot_pack_row(j->wtype, j->x + t * j->ne, j->ne, j->buf, j->n, (int)t);
    else
        pi_quantize_row(j->type, j->x + t * j->ne, j->buf + (size_t)t * j->row_bytes, j->ne);
}

pi_acts pi_acts_quantize(pi_pool *pool, pi_type wtype, const float *x, int n, int64_t ne,
                         void *buf)
{
    pi_type vt = pi_type_get_traits(wtype)->vec_dot_type;
    pi_acts a = { .type = vt, .n = n, .ne = ne, .row_bytes = pi_row_size(vt, ne) };
    if (vt == PI_TYPE_F32) {
        a.data = x;
        return a;
    }
    size_t packed = packed_row_bytes(wtype, ne);
    if (packed) {
        a.row_bytes = packed;
        a.packed = true;
    }
    quant_job j = { wtype, vt, x, n, ne, buf, a.row_bytes, a.packed };
    pi_pool_for(pool, n, quant_row, &j);
    a.data = buf;
    return a;
}

pi_acts pi_acts_float(const float *x, int n, int64_t ne)
{
    return (pi_acts){ .type = PI_TYPE_F32, .n = n, .ne = ne, .row_bytes = (size_t)ne * 4,
                      .data = x };
}

typedef struct mm_job {
    const pi_weight *w;
    const pi_acts *a;
    int64_t r0, r1;
    float *y;
    int64_t ldy;
    pi_vec_dot_fn dot;
    pi_vec_dot_nx_fn dot_nx; /* for packed activations */
    int64_t chunk;           /* rows per chunk */
} mm_job;

/* Rows go out in a few chunks per thread: claiming a chunk is a contended
 * atomic (~100 ns between cores), so a decode step wants a few thousand claims
 * at most, yet several chunks per thread let a thread that was preempted
 * lose only part of its share.  Chunks are multiples of 16 rows so that
 * neighbouring workers do not share cache lines of y. */
#define CHUNKS_PER_THREAD 2

static void chunk_rows(const mm_job *j, int64_t chunk, int64_t *lo, int64_t *hi)
{
    *lo = j->r0 + chunk * j->chunk;
    *hi = *lo + j->chunk < j->r1 ? *lo + j->chunk : j->r1;
}

static void mm_rows(void *arg, int64_t chunk, int ith)
{
    const mm_job *j = arg;
    int64_t lo, hi;
    (void)ith;
    chunk_rows(j, chunk, &lo, &hi);
    const uint8_t *w = j->w->data;
    const uint8_t *a = j->a->data;
    /* Packed Q8_K is plain rows, so a weight type without a batched kernel
     * can share a K-quant's activations; the legacy types' batched kernels
     * come all or none per activation type (quant_dot_impl.h), so packed
     * Q8_0/Q8_1 always finds one. */
    if (j->a->packed && j->dot_nx) {
        for (int64_t r = lo; r < hi; r++)
            j->dot_nx(j->w->ne0, w + (size_t)r * j->w->row_bytes, a, j->a->n, j->y + r, j->ldy);
        return;
    }
    if (j->a->packed && j->a->type != PI_TYPE_Q8_K)
        abort(); /* the invariant above broken: a bug, never input */
    for (int64_t r = lo; r < hi; r++) {
        const void *row = w + (size_t)r * j->w->row_bytes;
        for (int t = 0; t < j->a->n; t++)
            j->y[t * j->ldy + r] = j->dot(j->w->ne0, row, a + (size_t)t * j->a->row_bytes);
    }
}

/* The exact path: a dequantised row against float activations, summed in
 * double so that the result does not depend on the row's length or order. */
static void mm_rows_exact(void *arg, int64_t chunk, int ith)
{
    const mm_job *j = arg;
    int64_t lo, hi;
    (void)ith;
    chunk_rows(j, chunk, &lo, &hi);
    float *row = malloc((size_t)j->w->ne0 * sizeof *row);
    if (!row)
        abort(); /* a few KiB: only an exhausted heap fails here */
    const float *a = j->a->data;
    for (int64_t r = lo; r < hi; r++) {
        pi_dequantize_row(j->w->type, (const uint8_t *)j->w->data + (size_t)r * j->w->row_bytes,
                          row, j->w->ne0);
        for (int t = 0; t < j->a->n; t++) {
            const float *x = a + (size_t)t * j->a->ne;
            double s = 0.0;
            for (int64_t i = 0; i < j->w->ne0; i++)
                s += (double)row[i] * x[i];
            j->y[t * j->ldy + r] = (float)s;
        }
    }
    free(row);
}

/* Several products as one parallel loop: chunks are numbered across the
 * products, each keeping its own chunk size. */
typedef struct many_job {
    mm_job jobs[PI_MATMUL_MANY_MAX];
    bool exact[PI_MATMUL_MANY_MAX];
    int64_t first[PI_MATMUL_MANY_MAX + 1]; /* first chunk of each product */
    int n;
} many_job;

static void many_rows(void *arg, int64_t chunk, int ith)
{
    const many_job *m = arg;
    int i = 0;
    while (chunk >= m->first[i + 1])
        i++;
    (m->exact[i] ? mm_rows_exact : mm_rows)((void *)&m->jobs[i], chunk - m->first[i], ith);
}

void pi_matmul_many(pi_pool *pool, const pi_mm *mm, int n)
{
    if (n < 1 || n > PI_MATMUL_MANY_MAX)
        abort(); /* a caller's bug: the limit is a compile-time constant */
    int64_t rows = 0, want = (int64_t)pi_pool_size(pool) * CHUNKS_PER_THREAD;
    for (int i = 0; i < n; i++)
        rows += mm[i].r1 - mm[i].r0;
    int64_t chunk = ((rows + want - 1) / want + 15) / 16 * 16;
    many_job m = { .n = n };
    for (int i = 0; i < n; i++) {
        const pi_weight *w = mm[i].w;
        m.jobs[i] = (mm_job){ w, mm[i].a, mm[i].r0, mm[i].r1, mm[i].y, mm[i].ldy,
                              pi_vec_dot_get(w->type), pi_vec_dot_nx_get(w->type), chunk };
        m.exact[i] = mm[i].a->type != pi_type_get_traits(w->type)->vec_dot_type;
        m.first[i + 1] = m.first[i] + (mm[i].r1 - mm[i].r0 + chunk - 1) / chunk;
    }
    pi_pool_for(pool, m.first[n], many_rows, &m);
}

void pi_matmul_rows(pi_pool *pool, const pi_weight *w, const pi_acts *a, int64_t r0, int64_t r1,
                    float *y, int64_t ldy)
{
    pi_mm mm = { w, a, y, ldy, r0, r1 };
    pi_matmul_many(pool, &mm, 1);
}

void pi_matmul(pi_pool *pool, const pi_weight *w, const pi_acts *a, float *y, int64_t ldy)
{
    pi_matmul_rows(pool, w, a, 0, w->ne1, y, ldy);
}
