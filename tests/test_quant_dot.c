/*
 * Tests of the dot-product kernels (quant_dot.c, quant_dot_avx2.c,
 * quant_dot_avx512.c) and of CPU feature detection (cpu.c).
 *
 * For every weight type with a dot product: random weight rows (random bytes,
 * scale fields set to finite random halves) against random activations
 * quantised to the type's vec_dot_type.  The scalar kernel must equal the
 * dot product of the two dequantised rows, and the SIMD kernels the scalar
 * one, within 1e-5 of sum |w_i| |a_i|: all sum exact integer products per
 * block, so only float rounding of per-block partial sums separates them.
 * The batched kernels (pi_vec_dot_nx_fn) get the same rows packed
 * (pi_dot_pack_row), for batches of several sizes, and must agree with the
 * scalar single kernel on each row the same way (the scalar batched kernel
 * exactly).  Kernels of an ISA the CPU lacks are skipped with a message.
 *
 * PI_ISA is read once per process, so the forcing tests run this program
 * again with PI_ISA set and a --check-isa argument.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cpu.h"
#include "quant.h"
#include "rng.h"
#include "quant_dot_impl.h" /* the packed layout, to check its contents */

#define REL_TOL 1e-5

static const pi_type k_types[] = {
    PI_TYPE_F32,  PI_TYPE_F16,  PI_TYPE_BF16, PI_TYPE_Q4_0, PI_TYPE_Q4_1,
    PI_TYPE_Q5_0, PI_TYPE_Q5_1, PI_TYPE_Q8_0, PI_TYPE_Q2_K, PI_TYPE_Q3_K,
    PI_TYPE_Q4_K, PI_TYPE_Q5_K, PI_TYPE_Q6_K,
};
#define N_TYPES (sizeof k_types / sizeof k_types[0])

/* Block counts: one, a few, odd ones (tails of unrolled loops), many. */
static const int k_blocks[] = {1, 2, 3, 5, 16, 33, 64};
/* Extra lengths for the float types, whose "block" is one element. */
static const int k_float_lengths[] = {1, 7, 8, 31, 33, 100, 1000, 4099};

/* ---- random rows ------------------------------------------------------- */

static uint64_t rng_state = 0x9d07;

static uint64_t next_u64(void) { return rng_next(&rng_state); }

static float uniform(float lo, float hi)
{
    return lo + (hi - lo) * (float)((next_u64() >> 40) * 0x1p-24);
}

/* A finite half of either sign, magnitudes spread over several octaves. */
static pi_f16 random_scale(void)
{
    float mag = ldexpf(uniform(1.0f, 2.0f), (int)(next_u64() % 12) - 10);
    return pi_f32_to_f16(next_u64() & 1 ? mag : -mag);
}

static void set_f16(uint8_t *block, size_t offset)
{
    pi_f16 h = random_scale();
    memcpy(block + offset, &h, sizeof h);
}

/* Byte offsets of the f16 scale fields of each block type. */
static void set_scales(pi_type type, uint8_t *b)
{
    switch (type) {
    case PI_TYPE_Q4_0: set_f16(b, offsetof(pi_block_q4_0, d)); break;
    case PI_TYPE_Q5_0: set_f16(b, offsetof(pi_block_q5_0, d)); break;
    case PI_TYPE_Q8_0: set_f16(b, offsetof(pi_block_q8_0, d)); break;
    case PI_TYPE_Q4_1:
        set_f16(b, offsetof(pi_block_q4_1, d));
        set_f16(b, offsetof(pi_block_q4_1, m));
        break;
    case PI_TYPE_Q5_1:
        set_f16(b, offsetof(pi_block_q5_1, d));
        set_f16(b, offsetof(pi_block_q5_1, m));
        break;
    case PI_TYPE_Q2_K:
        set_f16(b, offsetof(pi_block_q2_K, d));
        set_f16(b, offsetof(pi_block_q2_K, dmin));
        break;
    case PI_TYPE_Q3_K: set_f16(b, offsetof(pi_block_q3_K, d)); break;
    case PI_TYPE_Q4_K:
        set_f16(b, offsetof(pi_block_q4_K, d));
        set_f16(b, offsetof(pi_block_q4_K, dmin));
        break;
    case PI_TYPE_Q5_K:
        set_f16(b, offsetof(pi_block_q5_K, d));
        set_f16(b, offsetof(pi_block_q5_K, dmin));
        break;
    case PI_TYPE_Q6_K: set_f16(b, offsetof(pi_block_q6_K, d)); break;
    default: fail_msg("no scale layout for type %d", (int)type);
    }
}

/* A weight row of n elements: float types from random floats, block types
 * from random bytes with valid scales. */
static void *random_weights(pi_type type, int64_t n)
{
    size_t size = pi_row_size(type, n);
    assert_true(size > 0);
    uint8_t *row = malloc(size);
    assert_non_null(row);
    if (type == PI_TYPE_F32 || type == PI_TYPE_F16 || type == PI_TYPE_BF16) {
        float *x = malloc((size_t)n * sizeof *x);
        assert_non_null(x);
        for (int64_t i = 0; i < n; i++)
            x[i] = uniform(-2.0f, 2.0f);
        assert_int_equal(pi_quantize_row(type, x, row, n), 0);
        free(x);
        return row;
    }
    for (size_t i = 0; i < size; i++)
        row[i] = (uint8_t)next_u64();
    size_t bs = pi_type_get_traits(type)->type_size;
    for (size_t off = 0; off < size; off += bs)
        set_scales(type, row + off);
    return row;
}

/* Activations: floats of varying magnitude, quantised to the dot type. */
static void *random_activations(pi_type type, int64_t n)
{
    pi_type at = pi_type_get_traits(type)->vec_dot_type;
    float *x = malloc((size_t)n * sizeof *x);
    void *row = malloc(pi_row_size(at, n));
    assert_non_null(x);
    assert_non_null(row);
    for (int64_t i = 0; i < n; i++)
        x[i] = uniform(-1.0f, 1.0f) * (1 + (i / 32) % 4);
    assert_int_equal(pi_quantize_row(at, x, row, n), 0);
    free(x);
    return row;
}

/* ---- reference --------------------------------------------------------- */

typedef struct {
    double dot; /* of the dequantised rows, in double */
    double mag; /* sum |w_i| |a_i| */
    double tol; /* allowed |kernel - dot| */
} reference;

/* Q4_1/Q5_1 take the minimum's term from Q8_1's s, an f16 rounded from
 * d_float * sum(qs), where the dequantised activation uses the f16 d: the two
 * differ by up to 2^-11 (d's rounding) plus 2^-11 (s's rounding), relative to
 * s.  Allow 2^-9 * |m * s| per block. */
static double q8_1_slack(pi_type type, const void *w, const void *a, int64_t n)
{
    if (type != PI_TYPE_Q4_1 && type != PI_TYPE_Q5_1)
        return 0.0;
    size_t wsize = pi_type_get_traits(type)->type_size;
    const pi_block_q8_1 *ab = a;
    double slack = 0.0;
    for (int64_t b = 0; b < n / PI_QK; b++) {
        pi_f16 m;
        memcpy(&m, (const uint8_t *)w + b * wsize + offsetof(pi_block_q4_1, m), sizeof m);
        slack += fabs((double)pi_f16_to_f32(m) * pi_f16_to_f32(ab[b].s)) * 0x1p-9;
    }
    return slack;
}

static reference reference_dot(pi_type type, const void *w, const void *a, int64_t n)
{
    pi_type at = pi_type_get_traits(type)->vec_dot_type;
    float *wf = malloc((size_t)n * sizeof *wf), *af = malloc((size_t)n * sizeof *af);
    assert_non_null(wf);
    assert_non_null(af);
    assert_int_equal(pi_dequantize_row(type, w, wf, n), 0);
    assert_int_equal(pi_dequantize_row(at, a, af, n), 0);
    reference r = {0.0, 0.0, 0.0};
    for (int64_t i = 0; i < n; i++) {
        r.dot += (double)wf[i] * af[i];
        r.mag += fabs((double)wf[i] * af[i]);
    }
    r.tol = REL_TOL * r.mag + q8_1_slack(type, w, a, n) + 1e-30;
    free(wf);
    free(af);
    return r;
}

static void check_close(const char *what, pi_type type, int64_t n, double got, double want,
                        double tol)
{
    if (fabs(got - want) <= tol)
        return;
    fail_msg("%s %s n=%lld: got %.9g, want %.9g (|diff| %.3g > tol %.3g)", what,
             pi_type_name(type), (long long)n, got, want, fabs(got - want), tol);
}

/* Calls fn(type, n) for every type and every tested length. */
static void for_each_case(void (*fn)(pi_type, int64_t))
{
    for (size_t t = 0; t < N_TYPES; t++) {
        int64_t bs = pi_type_get_traits(k_types[t])->block_size;
        int64_t unit = bs == 1 ? 32 : bs; /* float types: whole "blocks" of 32 too */
        for (size_t i = 0; i < sizeof k_blocks / sizeof k_blocks[0]; i++)
            fn(k_types[t], k_blocks[i] * unit);
        if (bs == 1)
            for (size_t i = 0; i < sizeof k_float_lengths / sizeof k_float_lengths[0]; i++)
                fn(k_types[t], k_float_lengths[i]);
    }
}

/* ---- kernels ----------------------------------------------------------- */

static void check_scalar(pi_type type, int64_t n)
{
    pi_vec_dot_fn dot = pi_vec_dot_get_isa(type, PI_ISA_SCALAR);
    assert_non_null(dot);
    for (int trial = 0; trial < 4; trial++) {
        void *w = random_weights(type, n), *a = random_activations(type, n);
        reference r = reference_dot(type, w, a, n);
        check_close("scalar", type, n, dot(n, w, a), r.dot, r.tol);
        free(w);
        free(a);
    }
}

static void test_scalar_dot_matches_dequantised_dot(void **state)
{
    (void)state;
    for_each_case(check_scalar);
}

/* A SIMD ISA's single kernel, where it has one, against the scalar one. */
static void check_isa_single(pi_isa isa, pi_type type, int64_t n)
{
    pi_vec_dot_fn scalar = pi_vec_dot_get_isa(type, PI_ISA_SCALAR);
    pi_vec_dot_fn simd = pi_vec_dot_get_isa(type, isa);
    if (!simd)
        return;
    for (int trial = 0; trial < 4; trial++) {
        void *w = random_weights(type, n), *a = random_activations(type, n);
        reference r = reference_dot(type, w, a, n);
        check_close(pi_isa_name(isa), type, n, simd(n, w, a), scalar(n, w, a),
                    REL_TOL * r.mag + 1e-30);
        free(w);
        free(a);
    }
}

static void check_avx2(pi_type type, int64_t n)
{
    assert_non_null(pi_vec_dot_get_isa(type, PI_ISA_AVX2)); /* every type has one */
    check_isa_single(PI_ISA_AVX2, type, n);
}

static void check_avx512(pi_type type, int64_t n) { check_isa_single(PI_ISA_AVX512, type, n); }

static bool have_isa(pi_isa isa)
{
    if (pi_isa_best() >= isa)
        return true;
    print_message("CPU lacks %s (or PI_ISA caps it): its kernels not tested\n", pi_isa_name(isa));
    return false;
}

static void test_avx2_dot_matches_scalar(void **state)
{
    (void)state;
    if (!have_isa(PI_ISA_AVX2))
        skip();
    for_each_case(check_avx2);
}

static void test_avx512_dot_matches_scalar(void **state)
{
    (void)state;
    if (!have_isa(PI_ISA_AVX512))
        skip();
    for_each_case(check_avx512);
}

/* ---- batched kernels --------------------------------------------------- */

/* Batch sizes: one row (decode), part of a group, whole groups, and groups
 * plus a remainder of each size. */
static const int k_batches[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 13};

/* n_acts random activation rows, both packed for the batched kernels and as
 * plain rows of the vec_dot_type; the caller frees both. */
static void random_batch(pi_type type, int64_t n, int n_acts, void **packed, uint8_t **plain)
{
    pi_type at = pi_type_get_traits(type)->vec_dot_type;
    size_t psize = pi_dot_pack_size(type, n), rsize = pi_row_size(at, n);
    assert_true(psize > 0);
    *packed = malloc(psize * (size_t)n_acts);
    *plain = malloc(rsize * (size_t)n_acts);
    float *x = malloc((size_t)n * sizeof *x);
    assert_non_null(*packed);
    assert_non_null(*plain);
    assert_non_null(x);
    /* rows packed out of order, as threads may */
    for (int k = 0; k < n_acts; k++) {
        int t = (k * 5 + 3) % n_acts;
        if (n_acts % 5 == 0)
            t = k;
        for (int64_t i = 0; i < n; i++)
            x[i] = uniform(-1.0f, 1.0f) * (float)(1 + (i / 32 + t) % 4);
        assert_int_equal(pi_dot_pack_row(type, x, n, *packed, n_acts, t), 0);
        assert_int_equal(pi_quantize_row(at, x, *plain + rsize * (size_t)t, n), 0);
    }
    free(x);
}

/* Every ISA's batched kernel for the type against the scalar single kernel
 * on each row; outputs strided, with the gaps checked untouched. */
static void check_batched(pi_type type, int64_t n)
{
    pi_vec_dot_fn scalar = pi_vec_dot_get_isa(type, PI_ISA_SCALAR);
    pi_type at = pi_type_get_traits(type)->vec_dot_type;
    size_t rsize = pi_row_size(at, n);
    for (size_t bi = 0; bi < sizeof k_batches / sizeof k_batches[0]; bi++) {
        int n_acts = k_batches[bi];
        void *w = random_weights(type, n), *packed;
        uint8_t *plain;
        random_batch(type, n, n_acts, &packed, &plain);
        for (int isa = 0; isa <= (int)pi_isa_best(); isa++) {
            pi_vec_dot_nx_fn nx = pi_vec_dot_nx_get_isa(type, (pi_isa)isa);
            if (!nx)
                continue;
            float out[2 * 16];
            for (int i = 0; i < 2 * 16; i++)
                out[i] = -12345.0f;
            nx(n, w, packed, n_acts, out, 2);
            for (int t = 0; t < n_acts; t++) {
                const uint8_t *a = plain + rsize * (size_t)t;
                float want = scalar(n, w, a);
                assert_true(out[2 * t + 1] == -12345.0f);
                if (isa == PI_ISA_SCALAR && out[2 * t] != want)
                    fail_msg("scalar batched %s n=%lld row %d/%d: %.9g, single %.9g",
                             pi_type_name(type), (long long)n, t, n_acts, out[2 * t], want);
                reference r = reference_dot(type, w, a, n);
                char what[48];
                snprintf(what, sizeof what, "%s batched row %d/%d", pi_isa_name((pi_isa)isa), t,
                         n_acts);
                check_close(what, type, n, out[2 * t], want, REL_TOL * r.mag + 1e-30);
            }
        }
        free(w);
        free(packed);
        free(plain);
    }
}

static void test_batched_dots_match_scalar(void **state)
{
    (void)state;
    for (size_t t = 0; t < N_TYPES; t++) {
        pi_type type = k_types[t];
        if (pi_dot_pack_size(type, pi_type_get_traits(type)->block_size) == 0)
            continue; /* float types: no batched form */
        int64_t bs = pi_type_get_traits(type)->block_size;
        for (size_t i = 0; i < sizeof k_blocks / sizeof k_blocks[0]; i++)
            check_batched(type, k_blocks[i] * bs);
    }
}

/* The forward pass packs once for all weights with one vec_dot_type, so
 * those types must have batched kernels at the same ISAs. */
static void test_batched_kernels_cover_each_activation_type(void **state)
{
    (void)state;
    for (int isa = 0; isa < PI_ISA_COUNT; isa++)
        for (size_t i = 0; i < N_TYPES; i++)
            for (size_t j = 0; j < N_TYPES; j++) {
                pi_type a = k_types[i], b = k_types[j];
                bool legacy = pi_type_get_traits(a)->block_size == PI_QK;
                if (!legacy || pi_type_get_traits(a)->vec_dot_type != pi_type_get_traits(b)->vec_dot_type)
                    continue;
                if ((pi_vec_dot_nx_get_isa(a, (pi_isa)isa) != NULL) !=
                    (pi_vec_dot_nx_get_isa(b, (pi_isa)isa) != NULL))
                    fail_msg("%s: batched kernel for %s but not %s", pi_isa_name((pi_isa)isa),
                             pi_type_name(a), pi_type_name(b));
            }
}

/* Blocks of awkward values: ties at every magnitude (d = 1 when the block's
 * maximum is 127), values just below a half, NaN, infinities, zeros. */
static void awkward_row(float *x, int64_t n)
{
    static const float ties[] = {0.5f, 1.5f, -2.5f, 126.5f, -126.5f, 0.49999997f, -0.49999997f,
                                 -0.5f, 3.5f, 127.0f, -127.0f, 0.0f, -0.0f, 64.5f};
    for (int64_t i = 0; i < n; i++) {
        int64_t b = i / PI_QK, j = i % PI_QK;
        switch (b % 5) {
        case 0: x[i] = ties[j % (sizeof ties / sizeof ties[0])]; break;
        case 1: x[i] = j == 7 ? NAN : uniform(-3.0f, 3.0f); break;
        case 2: x[i] = j == 3 ? -INFINITY : uniform(-1.0f, 1.0f); break;
        case 3: x[i] = 0.0f; break;
        default: x[i] = uniform(-1e-3f, 1e-3f) * (float)(1 + j); break;
        }
    }
}

static void check_packed_block(pi_pack_pos p, const int8_t *qs, pi_f16 d, int32_t sum, bool q8_1,
                               pi_f16 s)
{
    assert_memory_equal(p.lo, qs, 16);
    assert_memory_equal(p.hi, qs + 16, 16);
    float want_d = pi_f16_to_f32(d);
    assert_memory_equal(p.d, &want_d, 4);
    if (q8_1) {
        float want_s = pi_f16_to_f32(s);
        assert_memory_equal(p.sum, &want_s, 4);
    } else {
        assert_memory_equal(p.sum, &sum, 4);
    }
}

/* The packed form holds exactly pi_quantize_row()'s codes and scales
 * (the packer has its own SIMD quantiser), in the documented places. */
static void test_packed_rows_hold_quantize_row_values(void **state)
{
    (void)state;
    static const pi_type types[] = {PI_TYPE_Q4_0, PI_TYPE_Q4_1};
    const int64_t n = 23 * PI_QK, nb = n / PI_QK;
    const int n_acts = 6;
    float *x = malloc((size_t)n * sizeof *x);
    assert_non_null(x);
    for (size_t ti = 0; ti < 2; ti++) {
        pi_type type = types[ti];
        bool q8_1 = pi_type_get_traits(type)->vec_dot_type == PI_TYPE_Q8_1;
        uint8_t *packed = calloc((size_t)n_acts, pi_dot_pack_size(type, n));
        assert_non_null(packed);
        for (int t = 0; t < n_acts; t++) {
            if (t % 2)
                awkward_row(x, n);
            else
                for (int64_t i = 0; i < n; i++)
                    x[i] = uniform(-4.0f, 4.0f);
            assert_int_equal(pi_dot_pack_row(type, x, n, packed, n_acts, t), 0);
            for (int64_t b = 0; b < nb; b++) {
                pi_block_q8_0 b0;
                pi_block_q8_1 b1;
                const int8_t *qs = q8_1 ? b1.qs : b0.qs;
                assert_int_equal(pi_quantize_row(q8_1 ? PI_TYPE_Q8_1 : PI_TYPE_Q8_0,
                                                 x + b * PI_QK, q8_1 ? (void *)&b1 : &b0, PI_QK), 0);
                int32_t sum = 0;
                for (int j = 0; j < PI_QK; j++)
                    sum += qs[j];
                check_packed_block(pi_pack_locate(packed, n_acts, nb, t, b), qs,
                                   q8_1 ? b1.d : b0.d, sum, q8_1, q8_1 ? b1.s : 0);
            }
        }
        free(packed);
    }
    free(x);
}

static void test_pack_rejects_what_it_cannot_pack(void **state)
{
    (void)state;
    float x[64] = {0};
    uint8_t buf[4 * 64];
    assert_int_equal(pi_dot_pack_size(PI_TYPE_F32, 64), 0);
    assert_int_equal(pi_dot_pack_size(PI_TYPE_Q4_0, 48), 0);
    assert_int_equal(pi_dot_pack_size(PI_TYPE_Q4_0, 64), 2 * 40);
    assert_int_equal(pi_dot_pack_size(PI_TYPE_Q4_K, 256), pi_row_size(PI_TYPE_Q8_K, 256));
    assert_int_equal(pi_dot_pack_row(PI_TYPE_F16, x, 64, buf, 1, 0), -1);
    assert_int_equal(pi_dot_pack_row(PI_TYPE_Q4_1, x, 48, buf, 1, 0), -1);
    assert_int_equal(pi_dot_pack_row(PI_TYPE_Q4_1, x, 64, buf, 2, 2), -1);
    assert_int_equal(pi_dot_pack_row(PI_TYPE_Q4_1, x, 64, buf, 2, 1), 0);
}

/* Q8_K activations at the ends of their range, weights at the ends of
 * theirs: the int16 pair sums inside the SIMD kernels must not saturate. */
static void test_extreme_codes_do_not_overflow(void **state)
{
    (void)state;
    for (size_t t = 0; t < N_TYPES; t++) {
        pi_type type = k_types[t];
        const pi_type_traits *tr = pi_type_get_traits(type);
        if (tr->block_size == 1)
            continue;
        int64_t n = 8 * (int64_t)tr->block_size;
        uint8_t *w = random_weights(type, n);
        float *x = malloc((size_t)n * sizeof *x);
        void *a = malloc(pi_row_size(tr->vec_dot_type, n));
        static const uint8_t fills[] = {0x00, 0x80, 0xff};
        for (int k = 0; k < 9; k++) {
            memset(w, fills[k % 3], pi_row_size(type, n));
            for (int64_t off = 0; off < (int64_t)pi_row_size(type, n); off += tr->type_size)
                set_scales(type, w + off);
            for (int64_t i = 0; i < n; i++) /* all +1, all -1, alternating */
                x[i] = k / 3 == 0 ? 1.0f : k / 3 == 1 ? -1.0f : (i % 2 ? -1.0f : 1.0f);
            assert_int_equal(pi_quantize_row(tr->vec_dot_type, x, a, n), 0);
            reference r = reference_dot(type, w, a, n);
            check_close("scalar", type, n, pi_vec_dot_get_isa(type, PI_ISA_SCALAR)(n, w, a),
                        r.dot, r.tol);
            for (int isa = PI_ISA_AVX2; isa < PI_ISA_COUNT; isa++) {
                pi_vec_dot_fn v = pi_vec_dot_get_isa(type, (pi_isa)isa); /* NULL if CPU lacks */
                pi_vec_dot_nx_fn nx = pi_vec_dot_nx_get_isa(type, (pi_isa)isa);
                if (v)
                    check_close(pi_isa_name((pi_isa)isa), type, n, v(n, w, a), r.dot, r.tol);
                if (nx) {
                    float out;
                    void *packed = malloc(pi_dot_pack_size(type, n));
                    assert_int_equal(pi_dot_pack_row(type, x, n, packed, 1, 0), 0);
                    nx(n, w, packed, 1, &out, 1);
                    check_close("batched", type, n, out, r.dot, r.tol);
                    free(packed);
                }
            }
        }
        free(w);
        free(x);
        free(a);
    }
}

/* ---- dispatch ---------------------------------------------------------- */

static void test_every_vec_dot_type_has_a_kernel(void **state)
{
    (void)state;
    for (uint32_t t = 0; t < PI_TYPE_COUNT; t++) {
        const pi_type_traits *tr = pi_type_get_traits(t);
        bool has_dot = tr && tr->vec_dot_type != PI_TYPE_COUNT;
        pi_vec_dot_fn fn = pi_vec_dot_get((pi_type)t);
        if (has_dot != (fn != NULL))
            fail_msg("type %s: vec_dot_type says %d, kernel %p", pi_type_name(t), has_dot,
                     (void *)(uintptr_t)fn);
        /* the newest ISA's kernel, walking down where one is missing */
        pi_vec_dot_fn want = NULL;
        for (int isa = pi_isa_best(); isa >= 0 && !want; isa--)
            want = pi_vec_dot_get_isa((pi_type)t, (pi_isa)isa);
        assert_ptr_equal(fn, want);
    }
}

/* Batched kernels are offered only from the ISA the single one comes from
 * or a newer one, and are what matmul uses, so they must exist for the
 * types the default models use wherever SIMD does. */
static void test_batched_dispatch(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_TYPES; i++) {
        pi_type t = k_types[i];
        pi_vec_dot_nx_fn nx = pi_vec_dot_nx_get(t);
        bool found = false;
        for (int isa = pi_isa_best(); isa >= 0 && !found; isa--)
            if (pi_vec_dot_get_isa(t, (pi_isa)isa) || pi_vec_dot_nx_get_isa(t, (pi_isa)isa)) {
                assert_ptr_equal(nx, pi_vec_dot_nx_get_isa(t, (pi_isa)isa));
                found = true;
            }
    }
    if (pi_isa_best() == PI_ISA_AVX512) {
        static const pi_type used[] = {PI_TYPE_Q4_0, PI_TYPE_Q4_1, PI_TYPE_Q5_0, PI_TYPE_Q5_1,
                                       PI_TYPE_Q8_0, PI_TYPE_Q4_K, PI_TYPE_Q6_K};
        for (size_t i = 0; i < sizeof used / sizeof used[0]; i++)
            assert_ptr_equal(pi_vec_dot_nx_get(used[i]), pi_vec_dot_nx_get_isa(used[i], PI_ISA_AVX512));
    }
    assert_null(pi_vec_dot_nx_get(PI_TYPE_F32));
    assert_null(pi_vec_dot_nx_get(PI_TYPE_COUNT));
    assert_null(pi_vec_dot_nx_get_isa(PI_TYPE_Q4_0, PI_ISA_COUNT));
}

static void test_unknown_types_and_isas_have_no_kernel(void **state)
{
    (void)state;
    assert_null(pi_vec_dot_get(PI_TYPE_COUNT));
    assert_null(pi_vec_dot_get((pi_type)4)); /* retired id */
    assert_null(pi_vec_dot_get(PI_TYPE_Q8_K));
    assert_null(pi_vec_dot_get_isa(PI_TYPE_Q4_0, PI_ISA_COUNT));
    assert_null(pi_vec_dot_get_isa(PI_TYPE_COUNT, PI_ISA_SCALAR));
    assert_string_equal(pi_isa_name(PI_ISA_SCALAR), "scalar");
    assert_string_equal(pi_isa_name(PI_ISA_AVX2), "avx2");
    assert_string_equal(pi_isa_name(PI_ISA_AVX512), "avx512");
    assert_string_equal(pi_isa_name(PI_ISA_COUNT), "?");
}

/* ---- CPU detection and PI_ISA ------------------------------------------ */

/* Whether /proc/cpuinfo lists flag; -1 if it cannot be read. */
static int cpuinfo_has(const char *flag)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return -1;
    char line[8192];
    int found = -1;
    while (found < 0 && fgets(line, sizeof line, f)) {
        if (strncmp(line, "flags", 5) != 0)
            continue;
        found = 0;
        for (char *tok = strtok(strchr(line, ':') + 1, " \n"); tok; tok = strtok(NULL, " \n"))
            if (strcmp(tok, flag) == 0)
                found = 1;
    }
    fclose(f);
    return found;
}

static void test_cpu_features_agree_with_proc_cpuinfo(void **state)
{
    (void)state;
    const pi_cpu *c = pi_cpu_features();
    assert_ptr_equal(c, pi_cpu_features());
    assert_true(!c->avx2 || (c->avx && c->os_ymm));
    assert_true(!c->avx512bw || (c->avx512f && c->os_zmm));
    if (c->isa_env[0] || cpuinfo_has("fpu") != 1) {
        print_message("PI_ISA set or no x86 /proc/cpuinfo: flags not compared\n");
        skip();
    }
    assert_int_equal(c->avx2, cpuinfo_has("avx2"));
    assert_int_equal(c->fma, cpuinfo_has("fma"));
    assert_int_equal(c->f16c, cpuinfo_has("f16c"));
    assert_int_equal(c->avx512f, cpuinfo_has("avx512f"));
    assert_int_equal(c->avx512_vnni, cpuinfo_has("avx512_vnni"));
    assert_int_equal(c->avx_vnni, cpuinfo_has("avx_vnni"));
    assert_int_equal(c->amx_int8, cpuinfo_has("amx_int8"));
}

/* Run in a child with PI_ISA=value: exit status 0 if the dispatcher obeys. */
static int check_isa(const char *value)
{
    const pi_cpu *c = pi_cpu_features();
    if (strcmp(c->isa_env, value) != 0)
        return 10;
    bool valid = strcmp(value, "scalar") == 0 || strcmp(value, "avx2") == 0 ||
                 strcmp(value, "avx512") == 0;
    if (c->isa_env_valid != valid)
        return 11;
    if (strcmp(value, "scalar") == 0) {
        if (c->avx2 || c->fma || c->avx512f || pi_isa_best() != PI_ISA_SCALAR)
            return 12;
        for (size_t t = 0; t < N_TYPES; t++)
            if (pi_vec_dot_get(k_types[t]) != pi_vec_dot_get_isa(k_types[t], PI_ISA_SCALAR) ||
                pi_vec_dot_nx_get(k_types[t]) != pi_vec_dot_nx_get_isa(k_types[t], PI_ISA_SCALAR) ||
                pi_vec_dot_get_isa(k_types[t], PI_ISA_AVX2) != NULL)
                return 13;
    }
    if (strcmp(value, "avx2") == 0) {
        if (c->avx512f || c->avx_vnni || c->amx_tile || pi_isa_best() > PI_ISA_AVX2)
            return 14;
        for (size_t t = 0; t < N_TYPES; t++)
            if (pi_vec_dot_get_isa(k_types[t], PI_ISA_AVX512) ||
                pi_vec_dot_nx_get_isa(k_types[t], PI_ISA_AVX512))
                return 15;
    }
    if (strcmp(value, "avx512") == 0 && (c->amx_tile || c->amx_int8 || c->amx_bf16))
        return 16;
    return 0;
}

static int run_with_isa(const char *value)
{
    pid_t pid = fork();
    if (pid == 0) {
        setenv("PI_ISA", value, 1);
        execl("/proc/self/exe", "test_quant_dot", "--check-isa", value, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    assert_true(pid > 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static void test_pi_isa_scalar_forces_scalar_kernels(void **state)
{
    (void)state;
    assert_int_equal(run_with_isa("scalar"), 0);
}

static void test_pi_isa_avx2_caps_newer_extensions(void **state)
{
    (void)state;
    assert_int_equal(run_with_isa("avx2"), 0);
}

static void test_pi_isa_avx512_caps_amx(void **state)
{
    (void)state;
    assert_int_equal(run_with_isa("avx512"), 0);
}

static void test_unknown_pi_isa_is_flagged_and_ignored(void **state)
{
    (void)state;
    assert_int_equal(run_with_isa("sse9"), 0);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--check-isa") == 0)
        return check_isa(argv[2]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalar_dot_matches_dequantised_dot),
        cmocka_unit_test(test_avx2_dot_matches_scalar),
        cmocka_unit_test(test_avx512_dot_matches_scalar),
        cmocka_unit_test(test_batched_dots_match_scalar),
        cmocka_unit_test(test_batched_kernels_cover_each_activation_type),
        cmocka_unit_test(test_packed_rows_hold_quantize_row_values),
        cmocka_unit_test(test_pack_rejects_what_it_cannot_pack),
        cmocka_unit_test(test_extreme_codes_do_not_overflow),
        cmocka_unit_test(test_every_vec_dot_type_has_a_kernel),
        cmocka_unit_test(test_batched_dispatch),
        cmocka_unit_test(test_unknown_types_and_isas_have_no_kernel),
        cmocka_unit_test(test_cpu_features_agree_with_proc_cpuinfo),
        cmocka_unit_test(test_pi_isa_scalar_forces_scalar_kernels),
        cmocka_unit_test(test_pi_isa_avx2_caps_newer_extensions),
        cmocka_unit_test(test_pi_isa_avx512_caps_amx),
        cmocka_unit_test(test_unknown_pi_isa_is_flagged_and_ignored),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
