/*
 * Tests of the CUDA product kernels (kernels/matvec.cu), called directly
 * through kernels/kernels.h, against a double-precision CPU reference built
 * on pi_dequantize_row(): for every type with product kernels, the dense
 * product (1 to 64 tokens), gathered rows (index lists with duplicates,
 * reversed order, empty and full counts) and rows times coefficients (with
 * and without a list, overwriting and accumulating).  Shapes reach one
 * block, several tiles, a partial last tile or chunk, odd row counts, and
 * rows and pointers that are not 16-byte aligned.
 *
 * Weights are random bytes with every scale field a finite half; outputs
 * start as a NaN pattern, so an element never written shows, and the ones
 * the kernels must not write are checked to still hold it.  The relative
 * error ||got - ref|| / ||ref|| of each run must stay below 1e-5 (float
 * sums); the worst per type and kernel is printed.  rows_axpy must also be
 * bit-identical from call to call and whatever the number of tokens.
 *
 * PI_CUDA_BENCH=1 adds a timing of the dense product on 4096 x 4096
 * matrices (median of 50 batches, each launch on its own copy of the
 * matrix so that L2 does not hold it) next to the device's copy bandwidth.
 *
 * Without a usable device (a CPU-only build, no GPU, no driver) the tests
 * are skipped after main prints why; the argument checks need no device.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cuda.h"
#include "quant.h"
#include "rng.h"

#ifdef PI_CUDA

#include "../kernels/kernels.h"

/* ---- random weights --------------------------------------------------- */

/* The type and the offsets in its block of the half scales to keep finite. */
typedef struct mv_case {
    pi_type type;
    int nscale;
    size_t scale[2];
} mv_case;

#define AT(T, m) offsetof(T, m)

static const mv_case cases[] = {
    { PI_TYPE_F32, 0, { 0 } },
    { PI_TYPE_F16, 0, { 0 } },
    { PI_TYPE_BF16, 0, { 0 } },
    { PI_TYPE_Q4_0, 1, { AT(pi_block_q4_0, d) } },
    { PI_TYPE_Q4_1, 2, { AT(pi_block_q4_1, d), AT(pi_block_q4_1, m) } },
    { PI_TYPE_Q5_0, 1, { AT(pi_block_q5_0, d) } },
    { PI_TYPE_Q5_1, 2, { AT(pi_block_q5_1, d), AT(pi_block_q5_1, m) } },
    { PI_TYPE_Q8_0, 1, { AT(pi_block_q8_0, d) } },
    { PI_TYPE_Q2_K, 2, { AT(pi_block_q2_K, d), AT(pi_block_q2_K, dmin) } },
    { PI_TYPE_Q3_K, 1, { AT(pi_block_q3_K, d) } },
    { PI_TYPE_Q4_K, 2, { AT(pi_block_q4_K, d), AT(pi_block_q4_K, dmin) } },
    { PI_TYPE_Q5_K, 2, { AT(pi_block_q5_K, d), AT(pi_block_q5_K, dmin) } },
    { PI_TYPE_Q6_K, 1, { AT(pi_block_q6_K, d) } },
};
#define NCASES (sizeof cases / sizeof cases[0])

static float rand_sym(uint64_t *s)
{
    return (float)(2.0 * rng_uniform01(s) - 1.0);
}

/* Weights need 4-byte alignment for F32, 2 for every other type. */
static size_t type_align(pi_type type)
{
    return type == PI_TYPE_F32 ? 4 : 2;
}

/* The layout of a test matrix: n_rows rows of n elements, row_bytes apart,
 * from byte `offset` of its buffer; `skew` adds padding to each row and
 * moves the start off 16-byte alignment. */
typedef struct layout {
    int64_t n_rows, n;
    size_t row_bytes, offset, bytes;
} layout;

static layout make_layout(pi_type type, int64_t n_rows, int64_t n, bool skew)
{
    size_t a = type_align(type);
    layout l = { n_rows, n, pi_row_size(type, n) + (skew ? 3 * a : 0), skew ? a : 0, 0 };
    l.bytes = l.offset + (size_t)n_rows * l.row_bytes;
    return l;
}

/* Random bytes, then float elements in [-1, 1] or block scales of random
 * sign and a magnitude between 2^-8 and 1. */
static uint8_t *random_matrix(const mv_case *c, const layout *l, uint64_t seed)
{
    const pi_type_traits *t = pi_type_get_traits(c->type);
    uint8_t *buf = malloc(l->bytes);
    assert_non_null(buf);
    for (size_t i = 0; i < l->bytes; i++)
        buf[i] = (uint8_t)(rng_next(&seed) >> 56);
    for (int64_t r = 0; r < l->n_rows; r++) {
        uint8_t *row = buf + l->offset + (size_t)r * l->row_bytes;
        if (t->block_size == 1) {
            for (int64_t j = 0; j < l->n; j++) {
                float v = rand_sym(&seed);
                pi_f16 h = c->type == PI_TYPE_F16 ? pi_f32_to_f16(v) : pi_f32_to_bf16(v);
                if (c->type == PI_TYPE_F32)
                    memcpy(row + 4 * j, &v, 4);
                else
                    memcpy(row + 2 * j, &h, 2);
            }
            continue;
        }
        for (int64_t b = 0; b < l->n / t->block_size; b++)
            for (int f = 0; f < c->nscale; f++) {
                double mag = exp2(-8.0 * rng_uniform01(&seed));
                pi_f16 h = pi_f32_to_f16((float)(rng_next(&seed) & 1 ? mag : -mag));
                memcpy(row + (size_t)b * t->type_size + c->scale[f], &h, 2);
            }
    }
    return buf;
}

/* The CPU's dequantisation of every row (copied to an aligned buffer first,
 * since the test rows need not be aligned). */
static float *dequantize_matrix(pi_type type, const uint8_t *buf, const layout *l)
{
    float *out = malloc((size_t)(l->n_rows * l->n) * sizeof(float));
    void *row = malloc(l->row_bytes + 16);
    assert_non_null(out);
    assert_non_null(row);
    for (int64_t r = 0; r < l->n_rows; r++) {
        memcpy(row, buf + l->offset + (size_t)r * l->row_bytes, l->row_bytes);
        assert_int_equal(pi_dequantize_row(type, row, out + r * l->n, l->n), 0);
    }
    free(row);
    return out;
}

static float *random_floats(size_t n, uint64_t seed)
{
    float *v = malloc((n ? n : 1) * sizeof(float));
    assert_non_null(v);
    for (size_t i = 0; i < n; i++)
        v[i] = rand_sym(&seed);
    return v;
}

/* ---- device buffers --------------------------------------------------- */

static void expect_ok(int rc, const char *what)
{
    if (rc != 0)
        fail_msg("%s: %s", what, pi_kernel_error_string(rc));
}
#define CHECK(call) expect_ok((call), #call)

static void *dev_upload(const void *host, size_t bytes)
{
    void *p;
    CHECK(pi_kernel_malloc(&p, bytes ? bytes : 1));
    if (bytes)
        CHECK(pi_kernel_copy_to_device(p, host, bytes, NULL));
    return p;
}

static void dev_download(void *host, const void *dev, size_t bytes)
{
    CHECK(pi_kernel_copy_to_host(host, dev, bytes, NULL));
    CHECK(pi_kernel_stream_sync(NULL));
}

/* A quiet NaN no kernel computes: an element still holding it was not written. */
#define POISON 0x7fc0beefu

static float *poisoned(size_t n)
{
    uint32_t *p = malloc((n ? n : 1) * sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = POISON;
    return (float *)p;
}

static bool is_poison(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u == POISON;
}

static bool same_bits(const float *a, const float *b, size_t n)
{
    return memcmp(a, b, n * sizeof(float)) == 0;
}

/* ---- comparing with the reference ------------------------------------- */

enum { K_MATMUL, K_ROWS, K_AXPY, NKERNEL };
static const char *const kernel_name[NKERNEL] = { "matmul", "matvec_rows", "rows_axpy" };
static double worst[NCASES][NKERNEL];

/* Sums of squares of the error and of the reference over one run. */
typedef struct err_sum {
    double diff2, ref2;
} err_sum;

static void err_add(err_sum *e, float got, double ref, const char *what, long long i)
{
    if (is_poison(got))
        fail_msg("%s: element %lld was not written", what, i);
    e->diff2 += ((double)got - ref) * ((double)got - ref);
    e->ref2 += ref * ref;
}

static void err_check(const err_sum *e, size_t ci, int kernel, const char *what)
{
    double rel = e->ref2 > 0 ? sqrt(e->diff2 / e->ref2) : sqrt(e->diff2);
    if (!(rel < 1e-5))
        fail_msg("%s: relative error %.3g", what, rel);
    if (rel > worst[ci][kernel])
        worst[ci][kernel] = rel;
}

static double dot_ref(const float *w, const float *x, int64_t n)
{
    double s = 0;
    for (int64_t j = 0; j < n; j++)
        s += (double)w[j] * x[j];
    return s;
}

/* Block sizes that reach one block, a partial tile and many tiles. */
static void sizes_for(pi_type type, int64_t n[3])
{
    uint32_t qk = pi_type_get_traits(type)->block_size;
    if (qk == 1) {
        n[0] = 4, n[1] = 1000, n[2] = 4100;
    } else if (qk == PI_QK) {
        n[0] = PI_QK, n[1] = 37 * PI_QK, n[2] = 9 * 1024 + 3 * PI_QK;
    } else {
        n[0] = PI_QK_K, n[1] = 9 * PI_QK_K, n[2] = 37 * PI_QK_K;
    }
}

/* ---- the dense product ------------------------------------------------ */

typedef struct dense_shape {
    int64_t k, n_rows;
    int n_tok;
    bool skew; /* rows and matrix start off 16-byte alignment */
    bool x_off; /* activations one float past 16-byte alignment */
} dense_shape;

static void check_matmul(size_t ci, const dense_shape *s, uint64_t seed)
{
    const mv_case *c = &cases[ci];
    char what[128];
    snprintf(what, sizeof what, "%s matmul k %lld, %lld rows, %d tokens%s%s",
             pi_type_name(c->type), (long long)s->k, (long long)s->n_rows, s->n_tok,
             s->skew ? ", skewed rows" : "", s->x_off ? ", offset x" : "");
    layout l = make_layout(c->type, s->n_rows, s->k, s->skew);
    uint8_t *w = random_matrix(c, &l, seed);
    float *wf = dequantize_matrix(c->type, w, &l);
    size_t nx = (size_t)(s->n_tok * s->k) + 4;
    float *x = random_floats(nx, seed + 1);
    int64_t y_ld = s->n_tok > 1 ? s->n_rows + 3 : s->n_rows;
    size_t ny = (size_t)((s->n_tok - 1) * y_ld + s->n_rows);
    float *y = poisoned(ny);

    uint8_t *dw = dev_upload(w, l.bytes);
    float *dx = dev_upload(x, nx * sizeof(float)), *dy = dev_upload(y, ny * sizeof(float));
    const float *xs = x + (s->x_off ? 1 : 0);
    CHECK(pi_kernel_matmul(c->type, dw + l.offset, l.row_bytes, s->k, s->n_rows,
                           dx + (s->x_off ? 1 : 0), s->n_tok, dy, y_ld, NULL));
    dev_download(y, dy, ny * sizeof(float));

    err_sum e = { 0, 0 };
    for (int t = 0; t < s->n_tok; t++)
        for (int64_t r = 0; r < y_ld && t * y_ld + r < (int64_t)ny; r++) {
            float got = y[t * y_ld + r];
            if (r >= s->n_rows) {
                if (!is_poison(got))
                    fail_msg("%s: y[%lld] between rows was written", what,
                             (long long)(t * y_ld + r));
                continue;
            }
            err_add(&e, got, dot_ref(wf + r * s->k, xs + t * s->k, s->k), what, t * y_ld + r);
        }
    err_check(&e, ci, K_MATMUL, what);

    pi_kernel_free(dw);
    pi_kernel_free(dx);
    pi_kernel_free(dy);
    free(w);
    free(wf);
    free(x);
    free(y);
}

/* ---- gathered rows ---------------------------------------------------- */

typedef enum list_kind { LIST_DUPS, LIST_REVERSED, LIST_RANDOM } list_kind;

/* count entries of a list over n_rows rows, then -1 up to max_sel (entries
 * past the count must not be read). */
static void make_list(int32_t *list, list_kind kind, int64_t count, int64_t max_sel,
                      int64_t n_rows, uint64_t *seed)
{
    for (int64_t i = 0; i < max_sel; i++) {
        if (i >= count)
            list[i] = -1;
        else if (kind == LIST_REVERSED)
            list[i] = (int32_t)(((n_rows - 1 - i) % n_rows + n_rows) % n_rows);
        else
            list[i] = (int32_t)(rng_next(seed) % (uint64_t)n_rows);
    }
    if (kind == LIST_DUPS && count >= 3) {
        list[1] = list[0];
        list[count - 1] = list[0];
    }
}

typedef struct rows_shape {
    int64_t n_rows, max_sel;
    int n_tok;
    int32_t count[4];
    list_kind kind[4];
} rows_shape;

static const rows_shape rows_shapes[] = {
    { 67, 9, 4, { 9, 0, 5, 1 }, { LIST_DUPS, LIST_RANDOM, LIST_REVERSED, LIST_RANDOM } },
    { 67, 67, 1, { 67 }, { LIST_REVERSED } },
    { 300, 131, 3, { 131, 64, 2 }, { LIST_DUPS, LIST_RANDOM, LIST_REVERSED } },
};

static void check_matvec_rows(size_t ci, const rows_shape *s, int64_t k, bool skew, bool x_off,
                              uint64_t seed)
{
    const mv_case *c = &cases[ci];
    char what[128];
    snprintf(what, sizeof what, "%s matvec_rows k %lld, %lld of %lld rows, %d tokens%s%s",
             pi_type_name(c->type), (long long)k, (long long)s->max_sel, (long long)s->n_rows,
             s->n_tok, skew ? ", skewed rows" : "", x_off ? ", offset x" : "");
    layout l = make_layout(c->type, s->n_rows, k, skew);
    uint8_t *w = random_matrix(c, &l, seed);
    float *wf = dequantize_matrix(c->type, w, &l);
    size_t nx = (size_t)(s->n_tok * k) + 4, ny = (size_t)(s->n_tok * s->max_sel);
    float *x = random_floats(nx, seed + 1), *y = poisoned(ny);
    int32_t *idx = malloc(ny * sizeof *idx);
    assert_non_null(idx);
    for (int t = 0; t < s->n_tok; t++)
        make_list(idx + t * s->max_sel, s->kind[t], s->count[t], s->max_sel, s->n_rows, &seed);

    uint8_t *dw = dev_upload(w, l.bytes);
    float *dx = dev_upload(x, nx * sizeof(float)), *dy = dev_upload(y, ny * sizeof(float));
    int32_t *didx = dev_upload(idx, ny * sizeof *idx);
    int32_t *dn = dev_upload(s->count, (size_t)s->n_tok * sizeof(int32_t));
    const float *xs = x + (x_off ? 1 : 0);
    CHECK(pi_kernel_matvec_rows(c->type, dw + l.offset, l.row_bytes, k, didx, dn, s->max_sel,
                                dx + (x_off ? 1 : 0), s->n_tok, dy, NULL));
    dev_download(y, dy, ny * sizeof(float));

    err_sum e = { 0, 0 };
    for (int t = 0; t < s->n_tok; t++)
        for (int64_t i = 0; i < s->max_sel; i++) {
            int64_t o = t * s->max_sel + i;
            if (i >= s->count[t]) {
                if (!is_poison(y[o]))
                    fail_msg("%s: y[%lld] past token %d's count %d was written", what,
                             (long long)o, t, s->count[t]);
                continue;
            }
            err_add(&e, y[o], dot_ref(wf + idx[o] * k, xs + t * k, k), what, o);
        }
    err_check(&e, ci, K_ROWS, what);

    pi_kernel_free(dw);
    pi_kernel_free(dx);
    pi_kernel_free(dy);
    pi_kernel_free(didx);
    pi_kernel_free(dn);
    free(w);
    free(wf);
    free(x);
    free(y);
    free(idx);
}

/* ---- rows times coefficients ------------------------------------------ */

/* A rows_axpy problem on the device: Wt (n_rows rows of n_out), coefficients
 * [n_tok][max_sel], and, with a list, its indices and counts. */
typedef struct axpy_problem {
    const mv_case *c;
    layout l;
    int64_t max_sel;
    int n_tok;
    bool list;
    uint8_t *w, *dw;
    float *wf, *a, *da, *dy, *dscratch;
    int32_t *idx, *didx, *count, *dcount;
} axpy_problem;

static void axpy_setup(axpy_problem *p, const mv_case *c, int64_t n_out, int64_t n_rows,
                       int64_t max_sel, int n_tok, const int32_t *count, bool skew,
                       uint64_t seed)
{
    memset(p, 0, sizeof *p);
    p->c = c;
    p->l = make_layout(c->type, n_rows, n_out, skew);
    p->max_sel = max_sel;
    p->n_tok = n_tok;
    p->list = count != NULL;
    p->w = random_matrix(c, &p->l, seed);
    p->wf = dequantize_matrix(c->type, p->w, &p->l);
    size_t na = (size_t)(n_tok * max_sel), ny = (size_t)(n_tok * n_out);
    p->a = random_floats(na, seed + 1);
    p->dw = dev_upload(p->w, p->l.bytes);
    p->da = dev_upload(p->a, na * sizeof(float));
    float *y = poisoned(ny);
    p->dy = dev_upload(y, ny * sizeof(float));
    free(y);
    size_t ns = pi_kernel_rows_axpy_scratch(max_sel, n_out, n_tok);
    float *scratch = poisoned(ns);
    p->dscratch = dev_upload(scratch, ns * sizeof(float));
    free(scratch);
    if (p->list) {
        static const list_kind kinds[] = { LIST_DUPS, LIST_RANDOM, LIST_REVERSED };
        p->count = malloc((size_t)n_tok * sizeof *p->count);
        p->idx = malloc((na ? na : 1) * sizeof *p->idx);
        assert_non_null(p->count);
        assert_non_null(p->idx);
        memcpy(p->count, count, (size_t)n_tok * sizeof *count);
        for (int t = 0; t < n_tok; t++)
            make_list(p->idx + t * max_sel, kinds[t % 3], count[t], max_sel, n_rows, &seed);
        p->didx = dev_upload(p->idx, na * sizeof *p->idx);
        p->dcount = dev_upload(p->count, (size_t)n_tok * sizeof *p->count);
    }
}

static void axpy_free(axpy_problem *p)
{
    pi_kernel_free(p->dw);
    pi_kernel_free(p->da);
    pi_kernel_free(p->dy);
    pi_kernel_free(p->dscratch);
    pi_kernel_free(p->didx);
    pi_kernel_free(p->dcount);
    free(p->w);
    free(p->wf);
    free(p->a);
    free(p->idx);
    free(p->count);
}

/* Runs the first n_tok tokens of the problem and returns their outputs. */
static float *axpy_run(const axpy_problem *p, int n_tok, int accumulate)
{
    int64_t n_out = p->l.n;
    CHECK(pi_kernel_rows_axpy(p->c->type, p->dw + p->l.offset, p->l.row_bytes, n_out, p->didx,
                              p->dcount, p->max_sel, p->da, n_tok, p->dy, accumulate,
                              p->dscratch, NULL));
    float *y = malloc((size_t)(n_tok * n_out) * sizeof(float));
    assert_non_null(y);
    dev_download(y, p->dy, (size_t)(n_tok * n_out) * sizeof(float));
    return y;
}

static void check_rows_axpy(size_t ci, int64_t n_out, int64_t n_rows, int64_t max_sel, int n_tok,
                            const int32_t *count, bool skew, uint64_t seed)
{
    const mv_case *c = &cases[ci];
    char what[160];
    snprintf(what, sizeof what, "%s rows_axpy %lld columns, %s %lld of %lld rows, %d tokens%s",
             pi_type_name(c->type), (long long)n_out, count ? "list of" : "all", (long long)max_sel,
             (long long)n_rows, n_tok, skew ? ", skewed rows" : "");
    axpy_problem p;
    axpy_setup(&p, c, n_out, n_rows, max_sel, n_tok, count, skew, seed);
    size_t ny = (size_t)(n_tok * n_out);

    float *y0 = axpy_run(&p, n_tok, 0);
    err_sum e = { 0, 0 };
    double *ref = calloc((size_t)n_out, sizeof *ref);
    assert_non_null(ref);
    for (int t = 0; t < n_tok; t++) {
        int64_t n = count ? count[t] : max_sel;
        memset(ref, 0, (size_t)n_out * sizeof *ref);
        for (int64_t i = 0; i < n; i++) {
            int64_t row = count ? p.idx[t * max_sel + i] : i;
            double ai = p.a[t * max_sel + i];
            for (int64_t d = 0; d < n_out; d++)
                ref[d] += ai * p.wf[row * n_out + d];
        }
        for (int64_t d = 0; d < n_out; d++)
            err_add(&e, y0[t * n_out + d], ref[d], what, t * n_out + d);
    }
    err_check(&e, ci, K_AXPY, what);

    float *again = axpy_run(&p, n_tok, 0);
    if (!same_bits(y0, again, ny))
        fail_msg("%s: a second call gave different bits", what);
    float *twice = axpy_run(&p, n_tok, 1);
    for (size_t i = 0; i < ny; i++)
        if (twice[i] != 2 * y0[i])
            fail_msg("%s: accumulating onto y gave %g at %zu, not y + sum = %g", what,
                     (double)twice[i], i, 2.0 * y0[i]);
    /* Fewer tokens: each token's result must not depend on the batch. */
    for (int nt = 1; nt < n_tok; nt = nt * 3) {
        float *fewer = axpy_run(&p, nt, 0);
        if (!same_bits(y0, fewer, (size_t)(nt * n_out)))
            fail_msg("%s: the first %d tokens alone gave different bits", what, nt);
        free(fewer);
    }
    free(ref);
    free(y0);
    free(again);
    free(twice);
    axpy_free(&p);
}

/* ---- the tests -------------------------------------------------------- */

static void skip_without_device(void)
{
    if (pi_cuda_device_count() == 0)
        skip();
}

static void test_products_match_the_cpu(void **state)
{
    const mv_case *c = *state;
    size_t ci = (size_t)(c - cases);
    uint64_t seed = 1000u * (uint64_t)c->type;
    int64_t n[3];
    skip_without_device();
    assert_true(pi_kernel_matmul_supported(c->type));
    sizes_for(c->type, n);

    const dense_shape dense[] = {
        { n[0], 7, 1, false, false },  { n[1], 67, 1, true, false }, { n[2], 67, 1, false, false },
        { n[1], 7, 3, false, false },  { n[2], 67, 64, true, false }, { n[2], 5, 2, false, false },
        { n[0], 1, 5, true, false },   { n[1], 7, 3, false, true },  { n[1], 130, 8, false, false },
    };
    for (size_t i = 0; i < sizeof dense / sizeof dense[0]; i++)
        check_matmul(ci, &dense[i], seed++);
    if (pi_type_get_traits(c->type)->block_size == 1) { /* k not a multiple of 4 */
        dense_shape odd = { 37, 7, 3, true, false };
        check_matmul(ci, &odd, seed++);
    }

    for (size_t i = 0; i < sizeof rows_shapes / sizeof rows_shapes[0]; i++)
        check_matvec_rows(ci, &rows_shapes[i], n[i], i == 1, false, seed++);
    check_matvec_rows(ci, &rows_shapes[0], n[1], false, true, seed++);

    static const int32_t counts[] = { 150, 0, 65, 64, 1 };
    check_rows_axpy(ci, n[0], 200, 150, 5, counts, false, seed++);
    check_rows_axpy(ci, n[1], 200, 150, 5, counts, true, seed++);
    check_rows_axpy(ci, n[2], 150, 150, 1, NULL, false, seed++);
    check_rows_axpy(ci, n[1], 150, 150, 64, NULL, true, seed++);
    check_rows_axpy(ci, n[0], 64, 64, 3, NULL, false, seed++);
    if (pi_type_get_traits(c->type)->block_size == 1) /* n_out not a multiple of 4 */
        check_rows_axpy(ci, 37, 200, 150, 5, counts, true, seed++);

    print_message("%-5s worst ||got - ref|| / ||ref||: %s %.1e, %s %.1e, %s %.1e\n",
                  pi_type_name(c->type), kernel_name[K_MATMUL], worst[ci][K_MATMUL],
                  kernel_name[K_ROWS], worst[ci][K_ROWS], kernel_name[K_AXPY],
                  worst[ci][K_AXPY]);
}

/* ---- what works without a device -------------------------------------- */

static void test_kernel_table_lists_exactly_the_tested_types(void **state)
{
    for (uint32_t t = 0; t < PI_TYPE_COUNT; t++) {
        bool tested = false;
        for (size_t i = 0; i < NCASES; i++)
            tested |= cases[i].type == (pi_type)t;
        if (pi_kernel_matmul_supported(t) != (int)tested)
            fail_msg("type %s: kernel %s, test case %s", pi_type_name(t),
                     pi_kernel_matmul_supported(t) ? "yes" : "no", tested ? "yes" : "no");
    }
}

/* Bad arguments are refused before anything touches the device, so the
 * pointers here are never dereferenced. */
static void test_refuses_bad_arguments(void **state)
{
    uint8_t *w = (uint8_t *)(uintptr_t)4096;
    float *f = (float *)(uintptr_t)8192, *s = (float *)(uintptr_t)12288;
    int32_t *idx = (int32_t *)(uintptr_t)16384;
    size_t q4 = pi_row_size(PI_TYPE_Q4_0, 64);

    assert_int_equal(pi_kernel_matmul(PI_TYPE_Q8_K, w, 292, 256, 1, f, 1, f, 1, NULL),
                     PI_KERNEL_EUNSUPPORTED);
    assert_int_equal(pi_kernel_matmul(PI_TYPE_I32, w, 4, 1, 1, f, 1, f, 1, NULL),
                     PI_KERNEL_EUNSUPPORTED);
    assert_int_equal(pi_kernel_matvec_rows(PI_TYPE_IQ2_XXS, w, 66, 256, idx, idx, 1, f, 1, f,
                                           NULL),
                     PI_KERNEL_EUNSUPPORTED);
    assert_int_equal(pi_kernel_rows_axpy(PI_TYPE_Q8_K, w, 292, 256, NULL, NULL, 1, f, 1, f, 0, s,
                                         NULL),
                     PI_KERNEL_EUNSUPPORTED);
    /* partial blocks, short rows, odd weight pointers, overlapping outputs */
    assert_int_equal(pi_kernel_matmul(PI_TYPE_Q4_0, w, q4, 48, 2, f, 1, f, 2, NULL),
                     PI_KERNEL_EINVAL);
    assert_int_equal(pi_kernel_matmul(PI_TYPE_Q4_0, w, q4 - 2, 64, 2, f, 1, f, 2, NULL),
                     PI_KERNEL_EINVAL);
    assert_int_equal(pi_kernel_matmul(PI_TYPE_Q4_0, w + 1, q4, 64, 2, f, 1, f, 2, NULL),
                     PI_KERNEL_EINVAL);
    assert_int_equal(pi_kernel_matmul(PI_TYPE_F32, w + 2, 256, 64, 2, f, 1, f, 2, NULL),
                     PI_KERNEL_EINVAL);
    assert_int_equal(pi_kernel_matmul(PI_TYPE_Q4_0, w, q4, 64, 4, f, 2, f, 3, NULL),
                     PI_KERNEL_EINVAL);
    assert_int_equal(pi_kernel_matmul(PI_TYPE_Q4_0, w, q4, 64, 4, f, -1, f, 4, NULL),
                     PI_KERNEL_EINVAL);
    /* lists without counts, counts without lists */
    assert_int_equal(pi_kernel_matvec_rows(PI_TYPE_Q4_0, w, q4, 64, NULL, idx, 4, f, 1, f, NULL),
                     PI_KERNEL_EINVAL);
    assert_int_equal(pi_kernel_matvec_rows(PI_TYPE_Q4_0, w, q4, 64, idx, NULL, 4, f, 1, f, NULL),
                     PI_KERNEL_EINVAL);
    assert_int_equal(pi_kernel_rows_axpy(PI_TYPE_Q4_0, w, q4, 64, idx, NULL, 4, f, 1, f, 0, s,
                                         NULL),
                     PI_KERNEL_EINVAL);
    assert_int_equal(pi_kernel_rows_axpy(PI_TYPE_Q4_0, w, q4, 48, NULL, NULL, 4, f, 1, f, 0, s,
                                         NULL),
                     PI_KERNEL_EINVAL);
    assert_int_equal(pi_kernel_rows_axpy(PI_TYPE_Q4_0, w, q4, 64, NULL, NULL, 4, f, 1, f, 0,
                                         NULL, NULL),
                     PI_KERNEL_EINVAL);
    /* nothing to do is not an error, and needs no scratch */
    assert_int_equal(pi_kernel_matmul(PI_TYPE_Q4_0, w, q4, 64, 0, f, 1, f, 0, NULL), 0);
    assert_int_equal(pi_kernel_matvec_rows(PI_TYPE_Q4_0, w, q4, 64, idx, idx, 0, f, 1, f, NULL), 0);
    assert_int_equal(pi_kernel_rows_axpy_scratch(0, 4096, 4), 0);
    assert_int_equal(pi_kernel_rows_axpy_scratch(100, 4096, 0), 0);
    assert_true(pi_kernel_rows_axpy_scratch(1, 4096, 4) >= 4 * 4096);
}

/* ---- PI_CUDA_BENCH=1: dense product bandwidth ------------------------- */

enum { BENCH_N = 4096, BENCH_SAMPLES = 50, BENCH_WARMUP = 5 };

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Median over BENCH_SAMPLES batches of the milliseconds one matmul takes,
 * each batch launching once on every copy of the matrix. */
static float time_matmul(pi_type type, uint8_t *const *mats, int nmat, size_t row_bytes,
                         const float *x, int n_tok, float *y, void *start, void *stop)
{
    float ms[BENCH_SAMPLES];
    for (int i = 0; i < BENCH_WARMUP; i++)
        CHECK(pi_kernel_matmul(type, mats[i % nmat], row_bytes, BENCH_N, BENCH_N, x, n_tok, y,
                               BENCH_N, NULL));
    for (int s = 0; s < BENCH_SAMPLES; s++) {
        CHECK(pi_kernel_event_record(start, NULL));
        for (int m = 0; m < nmat; m++)
            CHECK(pi_kernel_matmul(type, mats[m], row_bytes, BENCH_N, BENCH_N, x, n_tok, y,
                                   BENCH_N, NULL));
        CHECK(pi_kernel_event_record(stop, NULL));
        CHECK(pi_kernel_event_elapsed(&ms[s], start, stop));
        ms[s] /= (float)nmat;
    }
    qsort(ms, BENCH_SAMPLES, sizeof ms[0], cmp_float);
    return ms[BENCH_SAMPLES / 2];
}

static void bench_copy(void *start, void *stop)
{
    size_t bytes = (size_t)512 << 20;
    void *src, *dst;
    float ms[BENCH_SAMPLES];
    CHECK(pi_kernel_malloc(&src, bytes));
    CHECK(pi_kernel_malloc(&dst, bytes));
    for (int s = -2; s < BENCH_SAMPLES; s++) {
        CHECK(pi_kernel_event_record(start, NULL));
        CHECK(pi_kernel_copy_on_device(dst, src, bytes, NULL));
        CHECK(pi_kernel_event_record(stop, NULL));
        if (s >= 0)
            CHECK(pi_kernel_event_elapsed(&ms[s], start, stop));
    }
    CHECK(pi_kernel_stream_sync(NULL));
    qsort(ms, BENCH_SAMPLES, sizeof ms[0], cmp_float);
    double sec = ms[BENCH_SAMPLES / 2] * 1e-3;
    print_message("device copy of 512 MiB: %.0f GB/s read + write (%.0f GB/s each way)\n",
                  2.0 * (double)bytes / sec * 1e-9, (double)bytes / sec * 1e-9);
    pi_kernel_free(src);
    pi_kernel_free(dst);
}

static void test_bench_dense_product(void **state)
{
    static const pi_type types[] = { PI_TYPE_Q4_0, PI_TYPE_Q4_K, PI_TYPE_Q8_0, PI_TYPE_F16 };
    static const int toks[] = { 1, 8, 64 };
    void *start, *stop;
    skip_without_device();
    CHECK(pi_kernel_event_create(&start));
    CHECK(pi_kernel_event_create(&stop));
    bench_copy(start, stop);

    float *x = random_floats(64 * BENCH_N, 7), *dx = dev_upload(x, 64 * BENCH_N * sizeof(float));
    float *dy = dev_upload(x, 64 * BENCH_N * sizeof(float));
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const mv_case *c = NULL;
        for (size_t i = 0; i < NCASES; i++)
            if (cases[i].type == types[ti])
                c = &cases[i];
        layout l = make_layout(types[ti], BENCH_N, BENCH_N, false);
        /* Enough copies to overflow the L2 (50 MB on an H100) several times. */
        int nmat = (int)(((size_t)256 << 20) / l.bytes) + 1;
        uint8_t *w = random_matrix(c, &l, 11), **mats = calloc((size_t)nmat, sizeof *mats);
        assert_non_null(mats);
        for (int m = 0; m < nmat; m++)
            mats[m] = dev_upload(w, l.bytes);
        for (size_t k = 0; k < sizeof toks / sizeof toks[0]; k++) {
            float ms = time_matmul(types[ti], mats, nmat, l.row_bytes, dx, toks[k], dy, start,
                                   stop);
            print_message("%-5s %dx%d, %2d token%s: %8.2f us, %6.0f GB/s of weights, "
                          "%.1f us per token\n",
                          pi_type_name(types[ti]), BENCH_N, BENCH_N, toks[k],
                          toks[k] == 1 ? " " : "s", ms * 1e3, (double)l.bytes / (ms * 1e-3) * 1e-9,
                          ms * 1e3 / toks[k]);
        }
        for (int m = 0; m < nmat; m++)
            pi_kernel_free(mats[m]);
        free(mats);
        free(w);
    }
    pi_kernel_free(dx);
    pi_kernel_free(dy);
    free(x);
    pi_kernel_event_destroy(start);
    pi_kernel_event_destroy(stop);
}

int main(void)
{
    static char names[NCASES][64];
    struct CMUnitTest tests[NCASES + 3] = {
        cmocka_unit_test(test_kernel_table_lists_exactly_the_tested_types),
        cmocka_unit_test(test_refuses_bad_arguments),
    };
    size_t n = 2;
    for (size_t i = 0; i < NCASES; i++) {
        snprintf(names[i], sizeof names[i], "test_%s_products_match_the_cpu",
                 pi_type_name(cases[i].type));
        tests[n++] = (struct CMUnitTest){ names[i], test_products_match_the_cpu, NULL, NULL,
                                          (void *)&cases[i] };
    }
    const char *bench = getenv("PI_CUDA_BENCH");
    if (bench && strcmp(bench, "1") == 0)
        tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_bench_dense_product);
    if (pi_cuda_device_count() == 0)
        print_message("CUDA unavailable, skipping the GPU product tests: %s\n", pi_cuda_status());
    return _cmocka_run_group_tests("test_cuda_matvec", tests, n, NULL, NULL);
}

#else /* !PI_CUDA */

static void test_products_need_a_cuda_build(void **state)
{
    assert_int_equal(pi_cuda_device_count(), 0);
    skip();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_products_need_a_cuda_build),
    };
    print_message("built without CUDA, skipping the GPU product tests: %s\n", pi_cuda_status());
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#endif
