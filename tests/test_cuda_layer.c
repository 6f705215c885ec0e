/*
 * Tests of the layer kernels (kernels/layer.cu), called directly through
 * kernels/kernels.h.  Each kernel runs on fresh random inputs in several
 * shapes and is compared with a plain double-precision reference written
 * here: the relative error |got - ref| / |ref| over the whole output is
 * printed and must be below 1e-5 (the kernels compute in float).  The
 * embedding lookup and the KV store must give the CPU's bits exactly
 * (pi_dequantize_row, pi_f32_to_f16), and the selection the reference's
 * index lists exactly.  Outputs start as NaN (or another value no kernel
 * writes), so an element a kernel never wrote fails the comparison.
 *
 * Without a usable device (a CPU-only build, no GPU, no driver) the
 * comparisons are skipped after main prints why; a CUDA build still checks
 * that the launchers refuse bad arguments, which needs no device.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
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

#define TOL 1e-5

/* ---- device buffers ---------------------------------------------------- */

static void expect_ok(int rc, const char *what)
{
    if (rc != 0)
        fail_msg("%s: %s", what, pi_kernel_error_string(rc));
}
#define OK(call) expect_ok((call), #call)

static void skip_without_device(void)
{
    if (pi_cuda_device_count() == 0)
        skip();
}

/* A device copy of `bytes` bytes of host memory. */
static void *to_device(const void *host, size_t bytes)
{
    void *dev = NULL;
    OK(pi_kernel_malloc(&dev, bytes));
    OK(pi_kernel_copy_to_device(dev, host, bytes, NULL));
    return dev;
}

/* Copies back and waits, so that an error inside a kernel surfaces here. */
static void to_host(void *host, const void *dev, size_t bytes)
{
    OK(pi_kernel_copy_to_host(host, dev, bytes, NULL));
    OK(pi_kernel_stream_sync(NULL));
}

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    assert_non_null(p);
    return p;
}

/* ---- random inputs and comparisons ------------------------------------- */

static double uniform(uint64_t *s, double lo, double hi)
{
    return lo + (hi - lo) * rng_uniform01(s);
}

static float *random_floats(uint64_t *s, size_t n, double lo, double hi)
{
    float *x = xmalloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)uniform(s, lo, hi);
    return x;
}

static float *nan_floats(size_t n)
{
    float *x = xmalloc(n * sizeof *x);
    memset(x, 0xff, n * sizeof *x); /* all-ones bits: a NaN */
    return x;
}

/* Every element finite (a NaN left from the poison means unwritten) and
 * |got - ref| / |ref| below tol; the error is printed either way. */
static void expect_close(const char *what, const float *got, const double *ref, size_t n,
                         double tol)
{
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(got[i]))
            fail_msg("%s: element %zu is %g (not written?), want %g", what, i, (double)got[i],
                     ref[i]);
        double d = (double)got[i] - ref[i];
        num += d * d;
        den += ref[i] * ref[i];
    }
    double rel = den > 0.0 ? sqrt(num / den) : sqrt(num);
    print_message("  %-56s relative error %.3g\n", what, rel);
    if (!(rel < tol))
        fail_msg("%s: relative error %g, want below %g", what, rel, tol);
}

/* ---- embedding rows ---------------------------------------------------- */

/* A type get_rows decodes (every one dequant.cu does), with the offsets
 * of its blocks' half scales, which must be finite: the GPU reproduces the
 * CPU's arithmetic, not the payloads of NaNs made by it.  (Plain F32, F16
 * and BF16 elements are random bits, NaNs included: those are converted,
 * never computed.) */
typedef struct rows_case {
    pi_type type;
    int nscales;
    size_t scale_at[2];
} rows_case;

static const rows_case rows_cases[] = {
    { PI_TYPE_F32, 0, { 0 } },
    { PI_TYPE_F16, 0, { 0 } },
    { PI_TYPE_BF16, 0, { 0 } },
    { PI_TYPE_Q4_0, 1, { offsetof(pi_block_q4_0, d) } },
    { PI_TYPE_Q4_1, 2, { offsetof(pi_block_q4_1, d), offsetof(pi_block_q4_1, m) } },
    { PI_TYPE_Q5_0, 1, { offsetof(pi_block_q5_0, d) } },
    { PI_TYPE_Q5_1, 2, { offsetof(pi_block_q5_1, d), offsetof(pi_block_q5_1, m) } },
    { PI_TYPE_Q8_0, 1, { offsetof(pi_block_q8_0, d) } },
    { PI_TYPE_Q2_K, 2, { offsetof(pi_block_q2_K, d), offsetof(pi_block_q2_K, dmin) } },
    { PI_TYPE_Q3_K, 1, { offsetof(pi_block_q3_K, d) } },
    { PI_TYPE_Q4_K, 2, { offsetof(pi_block_q4_K, d), offsetof(pi_block_q4_K, dmin) } },
    { PI_TYPE_Q5_K, 2, { offsetof(pi_block_q5_K, d), offsetof(pi_block_q5_K, dmin) } },
    { PI_TYPE_Q6_K, 1, { offsetof(pi_block_q6_K, d) } },
};
#define N_ROWS_CASES (sizeof rows_cases / sizeof rows_cases[0])

/* Clearing the top exponent bit of an all-ones exponent leaves a finite
 * half with the other random bits. */
static void make_finite_f16(uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    if ((h & 0x7c00u) == 0x7c00u)
        h &= (uint16_t)~0x4000u;
    memcpy(p, &h, 2);
}

/* n_tok lookups (repeats likely) in a table of random rows that are
 * row_bytes apart, row_bytes being the row's size plus pad. */
static void expect_rows_match(const rows_case *c, int n_tok, size_t pad, uint64_t seed)
{
    const pi_type_traits *tr = pi_type_get_traits(c->type);
    int64_t n = tr->block_size == 1 ? 333 : tr->block_size == PI_QK ? 9 * PI_QK : 3 * PI_QK_K;
    int64_t nb = n / tr->block_size, n_rows = 50;
    size_t row_bytes = pi_row_size(c->type, n) + pad, bytes = (size_t)n_rows * row_bytes;
    uint8_t *table = xmalloc(bytes);
    for (size_t i = 0; i < bytes; i++)
        table[i] = (uint8_t)(rng_next(&seed) >> 56);
    for (int64_t r = 0; r < n_rows; r++)
        for (int64_t b = 0; b < nb; b++)
            for (int f = 0; f < c->nscales; f++)
                make_finite_f16(table + r * row_bytes + b * tr->type_size + c->scale_at[f]);
    int32_t *ids = xmalloc((size_t)n_tok * sizeof *ids);
    for (int t = 0; t < n_tok; t++)
        ids[t] = (int32_t)(rng_next(&seed) % (uint64_t)n_rows);

    size_t out_n = (size_t)n_tok * (size_t)n;
    float *want = xmalloc(out_n * sizeof *want), *got = nan_floats(out_n);
    for (int t = 0; t < n_tok; t++)
        assert_int_equal(pi_dequantize_row(c->type, table + (size_t)ids[t] * row_bytes,
                                           want + (size_t)t * n, n), 0);
    void *d_table = to_device(table, bytes), *d_ids = to_device(ids, (size_t)n_tok * 4);
    float *d_out = to_device(got, out_n * sizeof *got);
    OK(pi_kernel_get_rows((uint32_t)c->type, d_table, row_bytes, n, d_ids, n_tok, d_out, NULL));
    to_host(got, d_out, out_n * sizeof *got);

    for (size_t i = 0; i < out_n; i++)
        if (memcmp(&got[i], &want[i], 4) != 0) {
            uint32_t g, w;
            memcpy(&g, &got[i], 4);
            memcpy(&w, &want[i], 4);
            fail_msg("%s, %d tokens, pad %zu: token %zu element %zu is %08x on the GPU, "
                     "%08x on the CPU", pi_type_name(c->type), n_tok, pad, i / (size_t)n,
                     i % (size_t)n, g, w);
        }
    print_message("  get_rows %-5s %2d tokens of %4lld, pad %zu: bit-exact\n",
                  pi_type_name(c->type), n_tok, (long long)n, pad);
    pi_kernel_free(d_table);
    pi_kernel_free(d_ids);
    pi_kernel_free(d_out);
    free(table);
    free(ids);
    free(want);
    free(got);
}

static void test_get_rows_equals_the_cpu_dequantisation_bit_for_bit(void **state)
{
    skip_without_device();
    for (size_t i = 0; i < N_ROWS_CASES; i++) {
        expect_rows_match(&rows_cases[i], 1, 0, 10 + i);
        expect_rows_match(&rows_cases[i], 17, 8, 20 + i);
        expect_rows_match(&rows_cases[i], 64, 0, 30 + i);
    }
}

/* ---- RMSNorm, additions, SwiGLU, the predictor's bias and ReLU ---------- */

static void expect_rmsnorm(int64_t n_rows, int64_t n, float eps, int in_place, uint64_t seed)
{
    size_t total = (size_t)(n_rows * n);
    float *x = random_floats(&seed, total, -2.0, 2.0);
    float *w = random_floats(&seed, (size_t)n, -1.5, 1.5);
    double *want = xmalloc(total * sizeof *want);
    /* Rows from 1e-3 to 10 in size, so that eps (inside the root) counts. */
    for (int64_t r = 0; r < n_rows; r++) {
        float mag = (float)pow(10.0, uniform(&seed, -3.0, 1.0));
        for (int64_t i = 0; i < n; i++)
            x[r * n + i] *= mag;
    }
    for (int64_t r = 0; r < n_rows; r++) {
        double ss = 0.0;
        for (int64_t i = 0; i < n; i++)
            ss += (double)x[r * n + i] * x[r * n + i];
        double s = 1.0 / sqrt(ss / (double)n + eps);
        for (int64_t i = 0; i < n; i++)
            want[r * n + i] = x[r * n + i] * s * w[i];
    }
    float *got = nan_floats(total);
    float *d_x = to_device(x, total * 4), *d_w = to_device(w, (size_t)n * 4);
    float *d_y = in_place ? d_x : to_device(got, total * 4);
    OK(pi_kernel_rmsnorm(d_x, d_w, d_y, n_rows, n, eps, NULL));
    to_host(got, d_y, total * 4);
    char what[96];
    snprintf(what, sizeof what, "rmsnorm %lld x %lld%s", (long long)n_rows, (long long)n,
             in_place ? " in place" : "");
    expect_close(what, got, want, total, TOL);
    if (!in_place)
        pi_kernel_free(d_y);
    pi_kernel_free(d_x);
    pi_kernel_free(d_w);
    free(x);
    free(w);
    free(want);
    free(got);
}

static void test_rmsnorm_matches_the_double_reference(void **state)
{
    skip_without_device();
    expect_rmsnorm(1, 576, 1e-5f, 0, 1);
    expect_rmsnorm(17, 4097, 1e-6f, 0, 2);
    expect_rmsnorm(64, 128, 1e-6f, 1, 3);
    expect_rmsnorm(3, 37, 1e-5f, 1, 4);
}

/* y += x (b NULL, n_rows 1), or y[r] += b for each row (add_rows), or
 * then a ReLU (bias_relu). */
enum add_kind { ADD, ADD_ROWS, BIAS_RELU };

static void expect_add(enum add_kind kind, int64_t n_rows, int64_t n, uint64_t seed)
{
    static const char *const names[] = { "add", "add_rows", "bias_relu" };
    size_t total = (size_t)(n_rows * n), nb = kind == ADD ? total : (size_t)n;
    float *y = random_floats(&seed, total, -1.0, 1.0), *b = random_floats(&seed, nb, -0.5, 0.5);
    double *want = xmalloc(total * sizeof *want);
    for (size_t i = 0; i < total; i++) {
        double v = (double)y[i] + b[kind == ADD ? i : i % (size_t)n];
        want[i] = kind == BIAS_RELU && v < 0.0 ? 0.0 : v;
    }
    float *d_y = to_device(y, total * 4), *d_b = to_device(b, nb * 4);
    if (kind == ADD)
        OK(pi_kernel_add(d_y, d_b, (int64_t)total, NULL));
    else if (kind == ADD_ROWS)
        OK(pi_kernel_add_rows(d_y, d_b, n_rows, n, NULL));
    else
        OK(pi_kernel_bias_relu(d_y, d_b, n_rows, n, NULL));
    /* In place, so no poison: every input differs from its result. */
    to_host(y, d_y, total * 4);
    char what[96];
    snprintf(what, sizeof what, "%s %lld x %lld", names[kind], (long long)n_rows, (long long)n);
    expect_close(what, y, want, total, TOL);
    pi_kernel_free(d_y);
    pi_kernel_free(d_b);
    free(y);
    free(b);
    free(want);
}

static void test_add_add_rows_and_bias_relu_match_the_reference(void **state)
{
    skip_without_device();
    expect_add(ADD, 1, 1, 1);
    expect_add(ADD, 1, 1000003, 2);
    expect_add(ADD_ROWS, 1, 1, 3);
    expect_add(ADD_ROWS, 17, 4099, 4);
    expect_add(ADD_ROWS, 64, 896, 5);
    expect_add(BIAS_RELU, 1, 1024, 6);
    expect_add(BIAS_RELU, 17, 333, 7);
    expect_add(BIAS_RELU, 64, 2049, 8);
}

static void expect_swiglu(int64_t n, int in_place, uint64_t seed)
{
    float *g = random_floats(&seed, (size_t)n, -12.0, 12.0);
    float *u = random_floats(&seed, (size_t)n, -2.0, 2.0);
    double *want = xmalloc((size_t)n * sizeof *want);
    for (int64_t i = 0; i < n; i++)
        want[i] = g[i] / (1.0 + exp(-(double)g[i])) * u[i];
    float *got = nan_floats((size_t)n);
    float *d_g = to_device(g, (size_t)n * 4), *d_u = to_device(u, (size_t)n * 4);
    float *d_out = in_place ? d_g : to_device(got, (size_t)n * 4);
    OK(pi_kernel_swiglu(d_g, d_u, d_out, n, NULL));
    to_host(got, d_out, (size_t)n * 4);
    char what[96];
    snprintf(what, sizeof what, "swiglu %lld%s", (long long)n, in_place ? " in place" : "");
    expect_close(what, got, want, (size_t)n, TOL);
    if (!in_place)
        pi_kernel_free(d_out);
    pi_kernel_free(d_g);
    pi_kernel_free(d_u);
    free(g);
    free(u);
    free(want);
    free(got);
}

static void test_swiglu_matches_the_reference(void **state)
{
    skip_without_device();
    expect_swiglu(1, 0, 1);
    expect_swiglu(1001, 1, 2);
    expect_swiglu(100003, 0, 3);
}

/* ---- RoPE and the KV cache --------------------------------------------- */

typedef struct rope_case {
    int n_tok, n_head, head_dim, n_rot, pos0, neox;
    double base;
} rope_case;

static void expect_rope(const rope_case *c, uint64_t seed)
{
    int half = c->n_rot / 2;
    size_t total = (size_t)c->n_tok * c->n_head * c->head_dim;
    float *x = random_floats(&seed, total, -2.0, 2.0), *freq = xmalloc((size_t)(half + 1) * 4);
    for (int i = 0; i < half; i++) /* as forward.c computes them */
        freq[i] = (float)pow(c->base, -2.0 * i / c->n_rot);
    double *want = xmalloc(total * sizeof *want);
    for (size_t i = 0; i < total; i++)
        want[i] = x[i];
    for (int t = 0; t < c->n_tok; t++)
        for (int h = 0; h < c->n_head; h++)
            for (int i = 0; i < half; i++) {
                size_t at = ((size_t)t * c->n_head + h) * c->head_dim;
                size_t a = at + (c->neox ? i : 2 * i), b = at + (c->neox ? i + half : 2 * i + 1);
                /* The angle is the CPU's float product; its sine is exact here. */
                float th = (float)(c->pos0 + t) * freq[i];
                double co = cos((double)th), sn = sin((double)th);
                want[a] = x[a] * co - x[b] * sn;
                want[b] = x[a] * sn + x[b] * co;
            }
    float *d_x = to_device(x, total * 4), *d_freq = to_device(freq, (size_t)(half + 1) * 4);
    OK(pi_kernel_rope(d_x, c->n_tok, c->n_head, c->head_dim, c->n_rot, c->pos0, d_freq, c->neox,
                      NULL));
    to_host(x, d_x, total * 4);
    char what[96];
    snprintf(what, sizeof what, "rope %s %d tok x %d heads of %d, n_rot %d, pos0 %d",
             c->neox ? "neox" : "norm", c->n_tok, c->n_head, c->head_dim, c->n_rot, c->pos0);
    expect_close(what, x, want, total, TOL);
    pi_kernel_free(d_x);
    pi_kernel_free(d_freq);
    free(x);
    free(freq);
    free(want);
}

static void test_rope_rotates_like_the_reference(void **state)
{
    static const rope_case cases[] = {
        { 1, 9, 64, 64, 1234, 0, 10000.0 },  { 17, 14, 128, 64, 5, 1, 1000000.0 },
        { 64, 8, 128, 128, 0, 1, 10000.0 },  { 17, 3, 64, 32, 300, 0, 10000.0 },
        { 1, 2, 256, 256, 4000, 1, 10000.0 }, { 3, 5, 80, 40, 77, 0, 10000.0 },
    };
    skip_without_device();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_rope(&cases[i], 100 + i);
}

/* Values from 2^-26 to 2^17 in size, so that some round to zero, some to
 * half subnormals and some overflow to infinity. */
static float wide_random(uint64_t *s)
{
    return (float)(uniform(s, -1.0, 1.0) * exp2(uniform(s, -26.0, 17.0)));
}

static void expect_kv_store(int n_tok, int pos0, int kv_dim, int n_ctx, uint64_t seed)
{
    size_t n = (size_t)n_tok * kv_dim, cache_n = (size_t)n_ctx * kv_dim;
    float *k = xmalloc(n * 4), *v = xmalloc(n * 4);
    for (size_t i = 0; i < n; i++) {
        k[i] = wide_random(&seed);
        v[i] = wide_random(&seed);
    }
    /* 0xffff, a NaN no finite input converts to, marks untouched slots. */
    uint16_t *kc = xmalloc(cache_n * 2), *vc = xmalloc(cache_n * 2);
    memset(kc, 0xff, cache_n * 2);
    memset(vc, 0xff, cache_n * 2);
    float *d_k = to_device(k, n * 4), *d_v = to_device(v, n * 4);
    uint16_t *d_kc = to_device(kc, cache_n * 2), *d_vc = to_device(vc, cache_n * 2);
    OK(pi_kernel_kv_store(d_k, d_v, d_kc, d_vc, n_tok, pos0, kv_dim, NULL));
    to_host(kc, d_kc, cache_n * 2);
    to_host(vc, d_vc, cache_n * 2);
    size_t first = (size_t)pos0 * kv_dim;
    for (size_t i = 0; i < cache_n; i++) {
        int in = i >= first && i < first + n;
        uint16_t wk = in ? pi_f32_to_f16(k[i - first]) : 0xffff;
        uint16_t wv = in ? pi_f32_to_f16(v[i - first]) : 0xffff;
        if (kc[i] != wk || vc[i] != wv)
            fail_msg("kv_store pos0 %d: cache slot %zu (position %zu) holds k %04x v %04x, "
                     "want %04x %04x", pos0, i, i / (size_t)kv_dim, kc[i], vc[i], wk, wv);
    }
    print_message("  kv_store %2d tok x %4d at %4d: bit-exact, the rest untouched\n", n_tok,
                  kv_dim, pos0);
    pi_kernel_free(d_k);
    pi_kernel_free(d_v);
    pi_kernel_free(d_kc);
    pi_kernel_free(d_vc);
    free(k);
    free(v);
    free(kc);
    free(vc);
}

static void test_kv_store_rounds_to_half_like_the_cpu(void **state)
{
    skip_without_device();
    expect_kv_store(1, 0, 192, 8, 1);
    expect_kv_store(17, 100, 1024, 200, 2);
    expect_kv_store(64, 1000, 128, 1100, 3);
    expect_kv_store(1, 4095, 576, 4096, 4);
}

/* ---- attention --------------------------------------------------------- */

typedef struct attn_case {
    int n_tok, pos0, n_head, n_head_kv, head_dim;
} attn_case;

/* Double-precision softmax attention of one (token, head) over the
 * half-rounded cache, positions 0 .. len - 1. */
static void attend_ref(const float *q, const float *kf, const float *vf, int len, int64_t kv_dim,
                       int head_dim, double scale, double *att, double *out)
{
    double mx = -INFINITY, sum = 0.0;
    for (int j = 0; j < len; j++) {
        double dot = 0.0;
        for (int d = 0; d < head_dim; d++)
            dot += (double)q[d] * kf[j * kv_dim + d];
        att[j] = dot * scale;
        mx = att[j] > mx ? att[j] : mx;
    }
    for (int j = 0; j < len; j++)
        sum += att[j] = exp(att[j] - mx);
    for (int d = 0; d < head_dim; d++) {
        double o = 0.0;
        for (int j = 0; j < len; j++)
            o += att[j] * vf[j * kv_dim + d];
        out[d] = o / sum;
    }
}

static void expect_attention(const attn_case *c, uint64_t seed)
{
    /* Five positions past the last token hold NaN: reading them shows. */
    int len = c->pos0 + c->n_tok, n_ctx = len + 5, group = c->n_head / c->n_head_kv;
    int64_t kv_dim = (int64_t)c->n_head_kv * c->head_dim, q_dim = (int64_t)c->n_head * c->head_dim;
    size_t cache_n = (size_t)n_ctx * kv_dim, qn = (size_t)c->n_tok * q_dim;
    uint16_t *kc = xmalloc(cache_n * 2), *vc = xmalloc(cache_n * 2);
    float *kf = xmalloc(cache_n * 4), *vf = xmalloc(cache_n * 4);
    for (size_t i = 0; i < cache_n; i++) {
        int live = i < (size_t)len * kv_dim;
        kc[i] = live ? pi_f32_to_f16((float)uniform(&seed, -1.0, 1.0)) : 0x7e00;
        vc[i] = live ? pi_f32_to_f16((float)uniform(&seed, -1.0, 1.0)) : 0x7e00;
        kf[i] = pi_f16_to_f32(kc[i]);
        vf[i] = pi_f16_to_f32(vc[i]);
    }
    /* q of +-3 against k of +-1: scores with a standard deviation near 1. */
    float *q = random_floats(&seed, qn, -3.0, 3.0), scale = 1.0f / sqrtf((float)c->head_dim);
    double *want = xmalloc(qn * sizeof *want), *att = xmalloc((size_t)len * sizeof *att);
    for (int t = 0; t < c->n_tok; t++)
        for (int h = 0; h < c->n_head; h++) {
            size_t at = (size_t)t * q_dim + (size_t)h * c->head_dim;
            size_t kv_at = (size_t)(h / group) * c->head_dim;
            attend_ref(q + at, kf + kv_at, vf + kv_at, c->pos0 + t + 1, kv_dim, c->head_dim,
                       scale, att, want + at);
        }
    float *got = nan_floats(qn);
    float *d_q = to_device(q, qn * 4), *d_out = to_device(got, qn * 4);
    uint16_t *d_kc = to_device(kc, cache_n * 2), *d_vc = to_device(vc, cache_n * 2);
    OK(pi_kernel_attention(d_q, d_kc, d_vc, d_out, c->n_tok, c->pos0, c->n_head, c->n_head_kv,
                           c->head_dim, scale, NULL));
    to_host(got, d_out, qn * 4);
    char what[96];
    snprintf(what, sizeof what, "attention %2d tok at %4d, %2d/%d heads of %d", c->n_tok,
             c->pos0, c->n_head, c->n_head_kv, c->head_dim);
    expect_close(what, got, want, qn, TOL);
    pi_kernel_free(d_q);
    pi_kernel_free(d_out);
    pi_kernel_free(d_kc);
    pi_kernel_free(d_vc);
    free(kc);
    free(vc);
    free(kf);
    free(vf);
    free(q);
    free(want);
    free(att);
    free(got);
}

/* GQA ratios 1, 3, 4 and 8; head sizes 64, 80, 128 and 256; decoding one
 * token and prefilling 17 or 64, from position 0 and past 1024. */
static void test_attention_matches_the_double_reference(void **state)
{
    static const attn_case cases[] = {
        { 1, 0, 8, 8, 64 },     { 1, 1500, 32, 8, 128 }, { 17, 1100, 16, 2, 128 },
        { 64, 0, 9, 3, 64 },    { 64, 2000, 8, 1, 64 },  { 17, 3, 4, 4, 256 },
        { 1, 37, 6, 2, 80 },    { 17, 1030, 4, 1, 256 }, { 1, 4100, 4, 4, 128 },
    };
    skip_without_device();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_attention(&cases[i], 200 + i);
}

/* ---- the predictor's selection ----------------------------------------- */

/* Logits around a per-token level (so densities differ between tokens),
 * redrawn while z + b lands within 1e-3 of the threshold: no ties. */
static void expect_select(int n_tok, int64_t n_ff, float threshold, uint64_t seed)
{
    size_t total = (size_t)n_tok * (size_t)n_ff;
    float *z = xmalloc(total * 4), *b = random_floats(&seed, (size_t)n_ff, -0.5, 0.5);
    for (int t = 0; t < n_tok; t++) {
        double level = uniform(&seed, -0.5, 0.5);
        for (int64_t i = 0; i < n_ff; i++) {
            float *zi = &z[(size_t)t * n_ff + i];
            do
                *zi = (float)(level + uniform(&seed, -1.0, 1.0));
            while (fabs((double)(*zi + b[i]) - threshold) < 1e-3);
        }
    }
    int32_t *idx = xmalloc(total * 4), n_sel[64];
    assert_true(n_tok <= 64);
    memset(idx, 0xff, total * 4);
    memset(n_sel, 0xff, sizeof n_sel);
    float *d_z = to_device(z, total * 4), *d_b = to_device(b, (size_t)n_ff * 4);
    int32_t *d_idx = to_device(idx, total * 4), *d_n = to_device(n_sel, (size_t)n_tok * 4);
    OK(pi_kernel_select(d_z, d_b, n_tok, n_ff, threshold, d_idx, d_n, NULL));
    to_host(idx, d_idx, total * 4);
    to_host(n_sel, d_n, (size_t)n_tok * 4);
    int64_t selected = 0;
    for (int t = 0; t < n_tok; t++) {
        const int32_t *got = idx + (size_t)t * n_ff;
        int32_t count = 0;
        for (int64_t i = 0; i < n_ff; i++) {
            if (!(z[(size_t)t * n_ff + i] + b[i] > threshold)) /* float sum, as the kernel */
                continue;
            if (count >= n_sel[t] || got[count] != (int32_t)i)
                fail_msg("select %d x %lld: token %d, entry %d is %d of %d, want neuron %lld",
                         n_tok, (long long)n_ff, t, count, count < n_sel[t] ? got[count] : -1,
                         n_sel[t], (long long)i);
            count++;
        }
        if (n_sel[t] != count)
            fail_msg("select %d x %lld: token %d selected %d, want %d", n_tok, (long long)n_ff, t,
                     n_sel[t], count);
        selected += count;
    }
    print_message("  select %2d tok x %6lld, threshold %5g: %lld of %lld, lists equal\n", n_tok,
                  (long long)n_ff, (double)threshold, (long long)selected, (long long)total);
    pi_kernel_free(d_z);
    pi_kernel_free(d_b);
    pi_kernel_free(d_idx);
    pi_kernel_free(d_n);
    free(z);
    free(b);
    free(idx);
}

/* Sizes below, at and past the kernel's chunk of 8192 elements; empty and
 * full selections; sparse and dense ones. */
static void test_select_lists_the_same_neurons_in_order(void **state)
{
    skip_without_device();
    expect_select(1, 1, 0.3f, 1);
    expect_select(3, 31, 0.3f, 2);
    expect_select(17, 1000, 0.3f, 3);
    expect_select(5, 8192, 0.95f, 4);
    expect_select(4, 2 * 8192 + 1, -0.2f, 5);
    expect_select(17, 100000, 1.2f, 6);
    expect_select(64, 5000, 0.0f, 7);
    expect_select(3, 10007, 10.0f, 8);   /* none */
    expect_select(3, 10007, -10.0f, 9);  /* all */
}

/* ---- refusals (no device needed) --------------------------------------- */

static void test_launchers_refuse_bad_arguments(void **state)
{
    float buf[64] = { 0 };
    uint16_t half[64] = { 0 };
    int32_t ids[1] = { 0 };
    assert_int_equal(pi_kernel_get_rows(PI_TYPE_Q8_K, buf, 292, PI_QK_K, ids, 1, buf, NULL),
                     PI_KERNEL_EUNSUPPORTED);
    assert_int_equal(pi_kernel_get_rows(PI_TYPE_Q4_0, buf, 18, PI_QK + 1, ids, 1, buf, NULL),
                     PI_KERNEL_EINVAL);
    assert_int_equal(pi_kernel_get_rows(PI_TYPE_F32, (char *)buf + 2, 16, 4, ids, 1, buf, NULL),
                     PI_KERNEL_EINVAL);
    assert_int_equal(pi_kernel_rmsnorm(buf, buf, buf, -1, 4, 1e-5f, NULL), PI_KERNEL_EINVAL);
    assert_int_equal(pi_kernel_add(buf, buf, -1, NULL), PI_KERNEL_EINVAL);
    assert_int_equal(pi_kernel_rope(buf, 1, 1, 8, 5, 0, buf, 0, NULL), PI_KERNEL_EINVAL);
    assert_int_equal(pi_kernel_rope(buf, 1, 1, 8, 10, 0, buf, 0, NULL), PI_KERNEL_EINVAL);
    assert_int_equal(pi_kernel_kv_store(buf, buf, half, half, 1, -1, 8, NULL), PI_KERNEL_EINVAL);
    assert_int_equal(pi_kernel_attention(buf, half, half, buf, 1, 0, 6, 4, 64, 0.125f, NULL),
                     PI_KERNEL_EINVAL);
    assert_int_equal(pi_kernel_attention(buf, half, half, buf, 1, 0, 4, 4, 257, 0.125f, NULL),
                     PI_KERNEL_EINVAL);
    assert_int_equal(pi_kernel_select(buf, buf, 1, -1, 0.0f, ids, ids, NULL), PI_KERNEL_EINVAL);
    /* Nothing to do is not an error, and launches nothing. */
    assert_int_equal(pi_kernel_swiglu(buf, buf, buf, 0, NULL), 0);
    assert_int_equal(pi_kernel_attention(buf, half, half, buf, 0, 0, 4, 4, 64, 0.125f, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_launchers_refuse_bad_arguments),
        cmocka_unit_test(test_get_rows_equals_the_cpu_dequantisation_bit_for_bit),
        cmocka_unit_test(test_rmsnorm_matches_the_double_reference),
        cmocka_unit_test(test_add_add_rows_and_bias_relu_match_the_reference),
        cmocka_unit_test(test_swiglu_matches_the_reference),
        cmocka_unit_test(test_rope_rotates_like_the_reference),
        cmocka_unit_test(test_kv_store_rounds_to_half_like_the_cpu),
        cmocka_unit_test(test_attention_matches_the_double_reference),
        cmocka_unit_test(test_select_lists_the_same_neurons_in_order),
    };
    if (pi_cuda_device_count() == 0)
        print_message("CUDA unavailable, skipping the GPU comparisons: %s\n", pi_cuda_status());
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#else /* !PI_CUDA: no kernels to call */

static void test_layer_kernels_need_a_cuda_build(void **state)
{
    skip();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layer_kernels_need_a_cuda_build),
    };
    print_message("skipping the layer kernel tests: %s\n", pi_cuda_status());
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#endif
