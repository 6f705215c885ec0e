/*
 * Tests of the requant module: for the four legacy quants the least-squares
 * quantiser never loses to the reference one (pi_quantize_row) on any row,
 * wins overall, is deterministic and decodes to finite values; every other
 * type gets exactly the reference bytes; partial blocks are refused.
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

#include "quant.h"
#include "requant.h"
#include "rng.h"

#define N 256   /* row length: 8 blocks */
#define ROWS 64 /* rows per distribution */

static const pi_type legacy[] = { PI_TYPE_Q4_0, PI_TYPE_Q4_1, PI_TYPE_Q5_0, PI_TYPE_Q5_1 };
#define N_LEGACY (sizeof legacy / sizeof legacy[0])

/* Deterministic samples: splitmix64, Box-Muller for N(0, 1). */
static uint64_t rng_state;

static double uniform01(void) { return rng_uniform01(&rng_state); }

static float normal(void)
{
    double r = sqrt(-2.0 * log(uniform01())), a = 6.283185307179586 * uniform01();
    return (float)(r * cos(a));
}

/* ---- the rows ---------------------------------------------------------- */

typedef enum dist {
    GAUSSIAN,
    UNIFORM,
    Q4_1_ACROSS, /* columns of a matrix quantised to Q4_1 by rows */
    OUTLIER,     /* gaussian with one element fifty times larger */
    TINY,        /* gaussian so small that the f16 scales are subnormal */
    CONSTANT,
    ZERO,
    N_DIST
} dist;

static const char *const dist_name[N_DIST] = { "gaussian", "uniform", "Q4_1 across",
                                               "outlier", "tiny", "constant", "zero" };

/* ROWS rows of N floats, the same for the same distribution every time. */
static void make_rows(dist d, float *x)
{
    rng_state = 0x5eed0000u + (uint64_t)d;
    for (int r = 0; r < ROWS; r++) {
        float *row = x + (size_t)r * N, sigma = 0.02f * (float)(1 + r % 5);
        for (int i = 0; i < N; i++) {
            switch (d) {
            case GAUSSIAN: case OUTLIER: row[i] = sigma * normal(); break;
            case TINY: row[i] = 1e-4f * sigma * normal(); break;
            case UNIFORM: row[i] = sigma * (2.0f * (float)uniform01() - 1.0f) + 0.01f; break;
            case CONSTANT: row[i] = 0.0137f * (float)(r - ROWS / 2); break;
            default: row[i] = 0.0f; break;
            }
        }
        if (d == OUTLIER)
            row[(int)(uniform01() * N)] = (r % 2 ? 50.0f : -50.0f) * sigma;
    }
    if (d != Q4_1_ACROSS)
        return;
    /* A [N][ROWS] matrix quantised along its rows of ROWS, then read down
     * its columns: what pi-pack does to a down projection. */
    float *m = malloc((size_t)N * ROWS * sizeof *m), *dq = malloc((size_t)ROWS * sizeof *dq);
    uint8_t *q = malloc(pi_row_size(PI_TYPE_Q4_1, ROWS));
    assert_true(m && dq && q);
    for (int i = 0; i < N; i++) {
        for (int r = 0; r < ROWS; r++)
            dq[r] = 0.03f * normal();
        assert_int_equal(pi_quantize_row(PI_TYPE_Q4_1, dq, q, ROWS), 0);
        assert_int_equal(pi_dequantize_row(PI_TYPE_Q4_1, q, m + (size_t)i * ROWS, ROWS), 0);
    }
    for (int r = 0; r < ROWS; r++)
        for (int i = 0; i < N; i++)
            x[(size_t)r * N + (size_t)i] = m[(size_t)i * ROWS + (size_t)r];
    free(m);
    free(dq);
    free(q);
}

/* Squared error of a quantised row after decoding; asserts it decodes to
 * finite values. */
static double row_error(pi_type t, const void *q, const float *x, int64_t n)
{
    float y[N];
    assert_true(n <= N);
    assert_int_equal(pi_dequantize_row(t, q, y, n), 0);
    double e = 0.0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(y[i]))
            fail_msg("%s: element %lld decodes to %g", pi_type_name(t), (long long)i, y[i]);
        e += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
    }
    return e;
}

/* ---- error against the reference quantiser ----------------------------- */

/* Block by block, so also row by row: the search includes the reference's
 * own scale (and offset), so it can only do better. */
static void test_error_never_exceeds_the_reference_quantiser(void **state)
{
    (void)state;
    float *x = malloc((size_t)ROWS * N * sizeof *x);
    uint8_t ref[N * 2], req[N * 2];
    assert_non_null(x);
    for (int d = 0; d < N_DIST; d++) {
        make_rows((dist)d, x);
        for (size_t k = 0; k < N_LEGACY; k++) {
            pi_type t = legacy[k];
            size_t bs = pi_row_size(t, PI_QK);
            double sum_ref = 0.0, sum_req = 0.0;
            for (int r = 0; r < ROWS; r++) {
                const float *row = x + (size_t)r * N;
                assert_int_equal(pi_quantize_row(t, row, ref, N), 0);
                assert_int_equal(pi_requantize_row(t, row, req, N), 0);
                for (int b = 0; b < N / PI_QK; b++) {
                    const float *xb = row + b * PI_QK;
                    double e_ref = row_error(t, ref + (size_t)b * bs, xb, PI_QK);
                    double e_req = row_error(t, req + (size_t)b * bs, xb, PI_QK);
                    if (e_req > e_ref)
                        fail_msg("%s, %s row %d block %d: error %.9g, reference %.9g",
                                 pi_type_name(t), dist_name[d], r, b, e_req, e_ref);
                    sum_ref += e_ref;
                    sum_req += e_req;
                }
            }
            /* Constant and zero rows are exact up to the f16 offset either way. */
            if (d < CONSTANT && !(sum_req < sum_ref))
                fail_msg("%s, %s rows: total error %.9g, reference %.9g", pi_type_name(t),
                         dist_name[d], sum_req, sum_ref);
        }
    }
    free(x);
}

static void test_zero_rows_stay_exactly_zero(void **state)
{
    (void)state;
    float x[N] = { 0 }, y[N];
    uint8_t q[N * 2];
    for (size_t k = 0; k < N_LEGACY; k++) {
        assert_int_equal(pi_requantize_row(legacy[k], x, q, N), 0);
        assert_int_equal(pi_dequantize_row(legacy[k], q, y, N), 0);
        for (int i = 0; i < N; i++)
            assert_true(y[i] == 0.0f);
    }
}

/* A row that is already on a type's grid (the reference's own output)
 * comes back without error: the search includes the span it was made with. */
static void test_rows_on_the_grid_come_back_exactly(void **state)
{
    (void)state;
    float x[N], g[N];
    uint8_t q[N * 2];
    rng_state = 0x9e7d;
    for (size_t k = 0; k < N_LEGACY; k++) {
        pi_type t = legacy[k];
        for (int rep = 0; rep < 16; rep++) {
            for (int i = 0; i < N; i++)
                x[i] = 0.05f * normal();
            assert_int_equal(pi_quantize_row(t, x, q, N), 0);
            assert_int_equal(pi_dequantize_row(t, q, g, N), 0);
            assert_int_equal(pi_requantize_row(t, g, q, N), 0);
            double e = row_error(t, q, g, N);
            if (e > 0.0)
                fail_msg("%s: grid row %d comes back with error %g", pi_type_name(t), rep, e);
        }
    }
}

/* ---- determinism and finiteness ---------------------------------------- */

static void test_output_is_deterministic_and_fully_written(void **state)
{
    (void)state;
    float *x = malloc((size_t)ROWS * N * sizeof *x);
    uint8_t a[N * 2], b[N * 2];
    assert_non_null(x);
    for (int d = 0; d < N_DIST; d++) {
        make_rows((dist)d, x);
        for (size_t k = 0; k < N_LEGACY; k++) {
            size_t size = pi_row_size(legacy[k], N);
            for (int r = 0; r < ROWS; r++) {
                /* Different garbage in each buffer: a byte left unwritten shows. */
                memset(a, 0x00, sizeof a);
                memset(b, 0xa5, sizeof b);
                assert_int_equal(pi_requantize_row(legacy[k], x + (size_t)r * N, a, N), 0);
                assert_int_equal(pi_requantize_row(legacy[k], x + (size_t)r * N, b, N), 0);
                assert_memory_equal(a, b, size);
                assert_int_equal(b[size], 0xa5); /* nothing past the row */
            }
        }
    }
    free(x);
}

/* Wide blocks near the top of the f16 range, tiny ones near its bottom, and
 * blocks with one huge element: the search's spans and refits must not
 * overflow or underflow into non-finite scales or offsets. */
static void test_extreme_ranges_decode_to_finite_values(void **state)
{
    (void)state;
    float x[N];
    uint8_t q[N * 2];
    static const float scales[] = { 6e4f, 3e4f, 1e-7f, 1e-5f, 1.0f };
    rng_state = 0xe47;
    for (size_t s = 0; s < sizeof scales / sizeof scales[0]; s++) {
        for (int i = 0; i < N; i++)
            x[i] = scales[s] * (2.0f * (float)uniform01() - 1.0f);
        x[5] = scales[s];       /* the full range, both signs, in block 0 */
        x[6] = -scales[s];
        x[40] = 1e4f * (scales[s] < 1.0f ? 1.0f : 0.0f); /* block 1: one giant */
        for (size_t k = 0; k < N_LEGACY; k++) {
            assert_int_equal(pi_requantize_row(legacy[k], x, q, N), 0);
            row_error(legacy[k], q, x, N); /* asserts finiteness */
        }
    }
}

/* ---- other types and bad lengths ---------------------------------------- */

static void test_other_types_get_the_reference_bytes(void **state)
{
    (void)state;
    float x[N];
    uint8_t a[N * 8], b[N * 8];
    rng_state = 0x07e;
    for (int i = 0; i < N; i++)
        x[i] = 0.1f * normal();
    int checked = 0;
    for (uint32_t t = 0; t < PI_TYPE_COUNT; t++) {
        const pi_type_traits *tr = pi_type_get_traits(t);
        if (!tr || t == PI_TYPE_Q4_0 || t == PI_TYPE_Q4_1 || t == PI_TYPE_Q5_0 ||
            t == PI_TYPE_Q5_1)
            continue;
        size_t size = tr->can_quantize ? pi_row_size(t, N) : 0;
        assert_true(size <= sizeof a);
        memset(a, 0x11, sizeof a);
        memset(b, 0x11, sizeof b);
        int want = pi_quantize_row((pi_type)t, x, a, N);
        assert_int_equal(pi_requantize_row((pi_type)t, x, b, N), want);
        assert_int_equal(want, tr->can_quantize ? 0 : -1);
        assert_memory_equal(a, b, sizeof a);
        checked += tr->can_quantize;
    }
    assert_true(checked >= 3); /* at least F32, F16 and Q8_0 */
    assert_int_equal(pi_requantize_row(PI_TYPE_COUNT, x, a, N), -1);
}

static void test_partial_blocks_are_refused_and_nothing_written(void **state)
{
    (void)state;
    float x[N] = { 0.5f };
    uint8_t q[N * 2];
    static const int64_t bad[] = { 1, 16, 31, 33, 48, 255, -1, -32 };
    for (size_t k = 0; k < N_LEGACY; k++)
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            memset(q, 0x3c, sizeof q);
            if (pi_requantize_row(legacy[k], x, q, bad[i]) != -1)
                fail_msg("%s, n = %lld: accepted", pi_type_name(legacy[k]), (long long)bad[i]);
            for (size_t j = 0; j < sizeof q; j++)
                assert_int_equal(q[j], 0x3c);
        }
    /* No blocks at all is a whole number of them. */
    for (size_t k = 0; k < N_LEGACY; k++)
        assert_int_equal(pi_requantize_row(legacy[k], x, q, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_never_exceeds_the_reference_quantiser),
        cmocka_unit_test(test_zero_rows_stay_exactly_zero),
        cmocka_unit_test(test_rows_on_the_grid_come_back_exactly),
        cmocka_unit_test(test_output_is_deterministic_and_fully_written),
        cmocka_unit_test(test_extreme_ranges_decode_to_finite_values),
        cmocka_unit_test(test_other_types_get_the_reference_bytes),
        cmocka_unit_test(test_partial_blocks_are_refused_and_nothing_written),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
