/*
 * sparse: predictor-selected FFN neurons (see sparse.h).
 */
#include "sparse.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ffn.h"
#include "matmul.h"
#include "predictor.h"

/* Neurons per chunk of the gate/up loop: 64 floats of a token's activation
 * row are one whole number of cache lines, so chunks never share a line. */
#define NEURON_CHUNK 64

/* How one weight type takes a token's activations. */
typedef struct sp_form {
    pi_type wtype;
    pi_vec_dot_fn dot;        /* plain vec_dot_type rows */
    pi_vec_dot_nx_fn dot_nx;  /* or the batched kernel with one packed row */
    size_t row_bytes;         /* per token */
} sp_form;

typedef struct sp_layer {
    int rank;
    float threshold; /* the predictor's plus the shift */
    pi_weight w1, w2t; /* F16 copies: rank x n_embd, and W2 transposed, rank x n_ff */
    const float *b1, *b2;
    sp_form fg, fu; /* how the layer's gate and up take the input */
} sp_layer;

struct pi_sparse {
    const pi_model *m;
    int n_batch, n_layer, max_rank;
    int64_t n_embd, n_ff;
    float shift, gate_floor;
    bool exact;
    sp_layer *layers;
    uint16_t *f16; /* storage of every layer's w1 and w2 */
    float *h, *z;  /* n_batch x max_rank, n_batch x n_ff */
    uint8_t *xg, *xu; /* the tokens in the gate's and up's activation forms */
    int32_t *idx;  /* one token's selected neurons */
    float *act_c;  /* and their activations, compacted */
    double *gsum;  /* per chunk and token: sum of |silu(gate)| over the selected */
    int64_t *gcnt; /* and how many */
    float *tau;    /* per token: the gate floor's threshold */
    uint64_t *active, *kept, tokens;
    double predictor_s, ffn_s;
};

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static sp_form form_of(pi_type wtype, int64_t n, bool exact)
{
    sp_form f = { .wtype = wtype };
    if (exact) {
        f.row_bytes = (size_t)n * sizeof(float);
        return f;
    }
    f.dot_nx = pi_vec_dot_nx_get(wtype);
    if (f.dot_nx && pi_dot_pack_size(wtype, n)) {
        f.row_bytes = pi_dot_pack_size(wtype, n);
        return f;
    }
    f.dot_nx = NULL;
    f.dot = pi_vec_dot_get(wtype);
    f.row_bytes = pi_row_size(pi_type_get_traits(wtype)->vec_dot_type, n);
    return f;
}

static void f16_weight(pi_weight *w, uint16_t *dst, const float *src, int64_t rows,
                       int64_t cols, const char *name)
{
    for (int64_t i = 0; i < rows * cols; i++)
        dst[i] = pi_f32_to_f16(src[i]);
    *w = (pi_weight){ .data = dst, .type = PI_TYPE_F16, .ne0 = cols, .ne1 = rows,
                      .row_bytes = (size_t)cols * sizeof(uint16_t), .name = name };
}

/* The transpose of src (rows x cols) as cols rows of rows. */
static void f16_weight_t(pi_weight *w, uint16_t *dst, const float *src, int64_t rows,
                         int64_t cols, const char *name)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++)
            dst[c * rows + r] = pi_f32_to_f16(src[r * cols + c]);
    *w = (pi_weight){ .data = dst, .type = PI_TYPE_F16, .ne0 = rows, .ne1 = cols,
                      .row_bytes = (size_t)rows * sizeof(uint16_t), .name = name };
}

pi_sparse *pi_sparse_new(const pi_model *m, int n_batch, const pi_sparse_params *p, pi_err *err)
{
    if (!m->pred) {
        pi_err_set(err, "the model carries no predictors (pack it with pi-pack --predictors)");
        return NULL;
    }
    pi_sparse *s = calloc(1, sizeof *s);
    if (!s) {
        pi_err_set(err, "out of memory");
        return NULL;
    }
    s->m = m;
    s->n_batch = n_batch > 0 ? n_batch : 1;
    s->n_layer = m->hp.n_layer;
    s->n_embd = m->hp.n_embd;
    s->n_ff = m->hp.n_ff;
    s->shift = p ? p->shift : 0.0f;
    s->gate_floor = p && p->gate_floor > 0.0f ? p->gate_floor : 0.0f;
    s->exact = p && p->exact;
    bool exact = s->exact;
    s->layers = calloc((size_t)s->n_layer, sizeof *s->layers);
    s->active = calloc((size_t)s->n_layer, sizeof *s->active);
    s->kept = calloc((size_t)s->n_layer, sizeof *s->kept);
    if (!s->layers || !s->active || !s->kept)
        goto oom;
    if (p && p->count_only)
        return s;
    size_t params = 0;
    for (int il = 0; il < s->n_layer; il++) {
        pi_predictor_layer pl;
        if (pi_predictor_get_layer(m->pred, il, &pl) == 0 && pl.rank > 0) {
            params += (size_t)pl.rank * (size_t)(s->n_embd + s->n_ff);
            s->max_rank = pl.rank > s->max_rank ? pl.rank : s->max_rank;
        }
    }
    s->f16 = malloc((params ? params : 1) * sizeof *s->f16);
    if (!s->f16)
        goto oom;
    uint16_t *next = s->f16;
    for (int il = 0; il < s->n_layer; il++) {
        pi_predictor_layer pl;
        if (pi_predictor_get_layer(m->pred, il, &pl) || pl.rank <= 0)
            continue;
        sp_layer *l = &s->layers[il];
        l->rank = pl.rank;
        l->threshold = pl.threshold + s->shift;
        l->b1 = pl.b1;
        l->b2 = pl.b2;
        f16_weight(&l->w1, next, pl.w1, pl.rank, s->n_embd, "pred.w1");
        next += (size_t)pl.rank * s->n_embd;
        f16_weight_t(&l->w2t, next, pl.w2, s->n_ff, pl.rank, "pred.w2t");
        next += (size_t)pl.rank * s->n_ff;
    }
    size_t acts = 0;
    for (int il = 0; il < s->n_layer; il++) {
        const pi_layer *ly = &m->layers[il];
        sp_layer *l = &s->layers[il];
        l->fg = form_of(ly->gate.type, s->n_embd, exact);
        l->fu = form_of(ly->up.type, s->n_embd, exact);
        acts = l->fg.row_bytes > acts ? l->fg.row_bytes : acts;
        acts = l->fu.row_bytes > acts ? l->fu.row_bytes : acts;
    }
    size_t B = (size_t)s->n_batch;
    s->h = malloc(B * (size_t)(s->max_rank ? s->max_rank : 1) * sizeof(float));
    s->z = malloc(B * (size_t)s->n_ff * sizeof(float));
    s->xg = malloc(B * acts);
    s->xu = malloc(B * acts);
    s->idx = malloc((size_t)s->n_ff * sizeof *s->idx);
    s->act_c = malloc((size_t)s->n_ff * sizeof *s->act_c);
    size_t chunks = (size_t)((s->n_ff + NEURON_CHUNK - 1) / NEURON_CHUNK);
    s->gsum = malloc(chunks * B * sizeof *s->gsum);
    s->gcnt = malloc(chunks * B * sizeof *s->gcnt);
    s->tau = malloc(B * sizeof *s->tau);
    if (!s->h || !s->z || !s->xg || !s->xu || !s->idx || !s->act_c || !s->gsum || !s->gcnt ||
        !s->tau)
        goto oom;
    return s;
oom:
    pi_sparse_free(s);
    pi_err_set(err, "out of memory for the sparse FFN");
    return NULL;
}

void pi_sparse_free(pi_sparse *s)
{
    if (!s)
        return;
    free(s->layers);
    free(s->active);
    free(s->kept);
    free(s->gsum);
    free(s->gcnt);
    free(s->tau);
    free(s->f16);
    free(s->h);
    free(s->z);
    free(s->xg);
    free(s->xu);
    free(s->idx);
    free(s->act_c);
    free(s);
}

float pi_sparse_shift(const pi_sparse *s) { return s->shift; }
float pi_sparse_gate_floor(const pi_sparse *s) { return s->gate_floor; }

bool pi_sparse_layer_on(const pi_sparse *s, int il)
{
    return il >= 0 && il < s->n_layer && s->layers[il].rank > 0;
}

/* z = W2 relu(W1 x + b1) + b2 for n tokens, each token on its own so that
 * batching changes nothing.  W1 x is one dot product per hidden unit; W2 h
 * adds the rows of W2's transpose for the hidden units relu left nonzero
 * (about half), which reads half of W2. */
static void predict(pi_sparse *s, pi_pool *pool, const sp_layer *l, const float *x, int n)
{
    int64_t r = l->rank, ff = s->n_ff;
    pi_acts ax = pi_acts_float(x, n, s->n_embd);
    pi_matmul(pool, &l->w1, &ax, s->h, r);
    for (int t = 0; t < n; t++)
        for (int64_t i = 0; i < r; i++) {
            float v = s->h[t * r + i] + l->b1[i];
            s->h[t * r + i] = v > 0.0f ? v : 0.0f;
        }
    for (int t = 0; t < n; t++) {
        float *z = s->z + t * ff;
        pi_ffn_down_t(pool, &l->w2t, s->h + t * r, r, NULL, r, z, 1);
        for (int64_t i = 0; i < ff; i++)
            z[i] += l->b2[i];
    }
}

/* One token's activations in form f, at buf. */
static void to_form(const sp_form *f, const float *x, int64_t d, uint8_t *buf)
{
    if (!f->dot && !f->dot_nx)
        memcpy(buf, x, (size_t)d * sizeof(float));
    else if (f->dot_nx)
        pi_dot_pack_row(f->wtype, x, d, buf, 1, 0);
    else
        pi_quantize_row(pi_type_get_traits(f->wtype)->vec_dot_type, x, buf, d);
}

static float dot_form(const sp_form *f, const pi_weight *w, int64_t row, const uint8_t *a,
                      float *rowbuf)
{
    const uint8_t *wr = (const uint8_t *)w->data + (size_t)row * w->row_bytes;
    if (f->dot_nx) {
        float out;
        f->dot_nx(w->ne0, wr, a, 1, &out, 1);
        return out;
    }
    if (f->dot)
        return f->dot(w->ne0, wr, a);
    /* exact: the dequantised row in double, as the dense exact path */
    pi_dequantize_row(w->type, wr, rowbuf, w->ne0);
    const float *x = (const float *)a;
    double acc = 0.0;
    for (int64_t i = 0; i < w->ne0; i++)
        acc += (double)rowbuf[i] * x[i];
    return (float)acc;
}

static void prefetch_row(const pi_weight *w, int64_t row)
{
    pi_prefetch((const uint8_t *)w->data + (size_t)row * w->row_bytes, w->row_bytes);
}

/* What one pass over the neurons computes: gate and up of every selected
 * neuron, or (with a gate floor) first the gates, then the ups of those whose
 * |silu(gate)| clears the floor. */
typedef enum { GU_BOTH, GU_GATE, GU_UP } gu_pass;

typedef struct gu_job {
    const pi_sparse *s;
    const pi_layer *ly;
    sp_form fg, fu;
    const uint8_t *xu; /* the tokens in up's form: s->xu, or s->xg when the same */
    float threshold;
    float *act;
    int n;
    gu_pass pass;
} gu_job;

static void gu_chunk(void *arg, int64_t chunk, int ith)
{
    const gu_job *j = arg;
    const pi_sparse *s = j->s;
    int64_t ff = s->n_ff, i0 = chunk * NEURON_CHUNK;
    int64_t i1 = i0 + NEURON_CHUNK < ff ? i0 + NEURON_CHUNK : ff;
    float *rowbuf = NULL;
    (void)ith;
    if (s->exact && !(rowbuf = malloc((size_t)s->n_embd * sizeof *rowbuf)))
        abort(); /* a few KiB: only an exhausted heap fails here */
    for (int t = 0; t < j->n; t++) {
        const float *z = s->z + t * ff;
        float *act = j->act + t * ff;
        const uint8_t *xg = s->xg + (size_t)t * j->fg.row_bytes;
        const uint8_t *xu = j->xu + (size_t)t * j->fu.row_bytes;
        int32_t sel[NEURON_CHUNK];
        int k = 0;
        for (int64_t i = i0; i < i1; i++) {
            bool on = z[i] > j->threshold;
            if (j->pass == GU_UP)
                on = on && fabsf(act[i]) >= s->tau[t];
            if (on)
                sel[k++] = (int32_t)i;
            else
                act[i] = 0.0f;
        }
        double sum = 0.0;
        for (int q = 0; q < k; q++) {
            if (q + PI_PREFETCH_AHEAD < k) {
                if (j->pass != GU_UP)
                    prefetch_row(&j->ly->gate, sel[q + PI_PREFETCH_AHEAD]);
                if (j->pass != GU_GATE)
                    prefetch_row(&j->ly->up, sel[q + PI_PREFETCH_AHEAD]);
            }
            int64_t i = sel[q];
            if (j->pass == GU_UP) {
                act[i] *= dot_form(&j->fu, &j->ly->up, i, xu, rowbuf);
                continue;
            }
            float g = dot_form(&j->fg, &j->ly->gate, i, xg, rowbuf);
            act[i] = g / (1.0f + expf(-g));
            if (j->pass == GU_BOTH)
                act[i] *= dot_form(&j->fu, &j->ly->up, i, xu, rowbuf);
            else
                sum += fabsf(act[i]);
        }
        if (j->pass == GU_GATE) {
            s->gsum[chunk * s->n_batch + t] = sum;
            s->gcnt[chunk * s->n_batch + t] = k;
        }
    }
    free(rowbuf);
}

/* The gates' floor per token: gate_floor times the mean |silu(gate)| of
 * the neurons the predictor selected, summed in chunk order. */
static void gate_floor(pi_sparse *s, int n)
{
    int64_t chunks = (s->n_ff + NEURON_CHUNK - 1) / NEURON_CHUNK;
    for (int t = 0; t < n; t++) {
        double sum = 0.0;
        int64_t cnt = 0;
        for (int64_t c = 0; c < chunks; c++) {
            sum += s->gsum[c * s->n_batch + t];
            cnt += s->gcnt[c * s->n_batch + t];
        }
        s->tau[t] = cnt ? (float)(s->gate_floor * sum / (double)cnt) : 0.0f;
    }
}

/* Gate, up and down of the neurons whose s->z exceeds threshold (after the
 * gate floor, when on), for n tokens; counted in the statistics when
 * `count`. */
static void ffn_selected(pi_sparse *s, pi_pool *pool, int il, float threshold, const float *x,
                         float *out, float *act, int n, bool count)
{
    const sp_layer *l = &s->layers[il];
    const pi_layer *ly = &s->m->layers[il];
    int64_t d = s->n_embd, ff = s->n_ff;
    /* gate and up of one type (the usual case) share one copy of the input */
    bool shared = l->fg.wtype == l->fu.wtype;
    gu_job j = { s, ly, l->fg, l->fu, shared ? s->xg : s->xu, threshold, act, n,
                 s->gate_floor > 0.0f ? GU_GATE : GU_BOTH };
    for (int t = 0; t < n; t++) {
        to_form(&j.fg, x + t * d, d, s->xg + (size_t)t * j.fg.row_bytes);
        if (!shared)
            to_form(&j.fu, x + t * d, d, s->xu + (size_t)t * j.fu.row_bytes);
    }
    int64_t chunks = (ff + NEURON_CHUNK - 1) / NEURON_CHUNK;
    pi_pool_for(pool, chunks, gu_chunk, &j);
    if (j.pass == GU_GATE) {
        gate_floor(s, n);
        j.pass = GU_UP;
        pi_pool_for(pool, chunks, gu_chunk, &j);
    }
    for (int t = 0; t < n; t++) {
        const float *z = s->z + t * ff;
        int64_t k = 0, sel = 0;
        for (int64_t i = 0; i < ff; i++)
            if (z[i] > threshold) {
                sel++;
                if (j.pass == GU_UP && act[t * ff + i] == 0.0f)
                    continue; /* below the gate floor */
                s->idx[k] = (int32_t)i;
                s->act_c[k++] = act[t * ff + i];
            }
        if (count) {
            s->active[il] += (uint64_t)sel;
            s->kept[il] += (uint64_t)k;
        }
        pi_ffn_down_t(pool, &ly->down, s->act_c, k, s->idx, k, out + t * d, 1);
    }
    if (count && il == 0)
        s->tokens += (uint64_t)n;
}

void pi_sparse_ffn(pi_sparse *s, pi_pool *pool, int il, const float *x, float *out, float *act,
                   int n)
{
    const sp_layer *l = &s->layers[il];
    double t0 = now_s();
    predict(s, pool, l, x, n);
    double t1 = now_s();
    ffn_selected(s, pool, il, l->threshold, x, out, act, n, true);
    double t2 = now_s();
    s->predictor_s += t1 - t0;
    s->ffn_s += t2 - t0;
}

void pi_sparse_ffn_listed(pi_sparse *s, pi_pool *pool, int il, const float *x, float *out,
                          float *act, const int32_t *idx, int64_t stride, const int32_t *first,
                          const int32_t *count, int n)
{
    int64_t ff = s->n_ff;
    for (int t = 0; t < n; t++) {
        float *z = s->z + t * ff;
        for (int64_t i = 0; i < ff; i++)
            z[i] = -1.0f;
        for (int32_t i = first[t]; i < count[t]; i++)
            if (idx[t * stride + i] >= 0 && idx[t * stride + i] < ff)
                z[idx[t * stride + i]] = 1.0f;
    }
    ffn_selected(s, pool, il, 0.0f, x, out, act, n, false);
}

void pi_sparse_count_dense(pi_sparse *s, int il, int n)
{
    pi_sparse_count(s, il, n, (uint64_t)n * (uint64_t)s->n_ff);
}

void pi_sparse_count(pi_sparse *s, int il, int n, uint64_t active)
{
    s->active[il] += active;
    s->kept[il] += active;
    if (il == 0)
        s->tokens += (uint64_t)n;
}

pi_sparse_stats pi_sparse_get_stats(const pi_sparse *s)
{
    return (pi_sparse_stats){ s->n_layer, s->n_ff, s->tokens, s->active, s->kept,
                              s->predictor_s, s->ffn_s };
}

void pi_sparse_reset_stats(pi_sparse *s)
{
    memset(s->active, 0, (size_t)s->n_layer * sizeof *s->active);
    memset(s->kept, 0, (size_t)s->n_layer * sizeof *s->kept);
    s->tokens = 0;
    s->predictor_s = s->ffn_s = 0.0;
}
