/*
 * Tests of the CUDA module: for every type with a dequantisation kernel,
 * random rows (every scale field finite) come back from the GPU with the
 * same float bits as pi_dequantize_row() gives on the CPU; F16 and BF16 are
 * checked on every bit pattern, NaNs included.  Without a usable device
 * (a CPU-only build, no GPU, no driver) those tests are skipped after main
 * prints why; the error-path tests run everywhere.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cuda.h"
#include "err.h"
#include "quant.h"

/* ---- random rows with finite scales ----------------------------------- */

typedef enum field_kind { FIELD_F16, FIELD_BF16, FIELD_F32 } field_kind;

/* A float-valued field inside each block that must not be inf or NaN:
 * the GPU is not asked to reproduce the CPU's NaN payloads through
 * arithmetic, only through plain conversion (see the bit-pattern tests). */
typedef struct field {
    size_t offset;
    field_kind kind;
} field;

typedef struct dq_case {
    pi_type type;
    int nfields;
    field fields[2];
} dq_case;

#define F16_AT(T, m) { offsetof(T, m), FIELD_F16 }

static const dq_case cases[] = {
    { PI_TYPE_F32, 1, { { 0, FIELD_F32 } } },
    { PI_TYPE_F16, 1, { { 0, FIELD_F16 } } },
    { PI_TYPE_BF16, 1, { { 0, FIELD_BF16 } } },
    { PI_TYPE_Q4_0, 1, { F16_AT(pi_block_q4_0, d) } },
    { PI_TYPE_Q4_1, 2, { F16_AT(pi_block_q4_1, d), F16_AT(pi_block_q4_1, m) } },
    { PI_TYPE_Q5_0, 1, { F16_AT(pi_block_q5_0, d) } },
    { PI_TYPE_Q5_1, 2, { F16_AT(pi_block_q5_1, d), F16_AT(pi_block_q5_1, m) } },
    { PI_TYPE_Q8_0, 1, { F16_AT(pi_block_q8_0, d) } },
    { PI_TYPE_Q2_K, 2, { F16_AT(pi_block_q2_K, d), F16_AT(pi_block_q2_K, dmin) } },
    { PI_TYPE_Q3_K, 1, { F16_AT(pi_block_q3_K, d) } },
    { PI_TYPE_Q4_K, 2, { F16_AT(pi_block_q4_K, d), F16_AT(pi_block_q4_K, dmin) } },
    { PI_TYPE_Q5_K, 2, { F16_AT(pi_block_q5_K, d), F16_AT(pi_block_q5_K, dmin) } },
    { PI_TYPE_Q6_K, 1, { F16_AT(pi_block_q6_K, d) } },
};
#define NCASES (sizeof cases / sizeof cases[0])

static uint64_t next_random(uint64_t *s) /* xorshift64* */
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dull;
}

/* Clearing the top exponent bit of an all-ones exponent keeps the rest of
 * the random bits (sign, mantissa) and makes the value finite. */
static void make_finite(uint8_t *p, field_kind kind)
{
    if (kind == FIELD_F32) {
        uint32_t x;
        memcpy(&x, p, 4);
        if ((x & 0x7f800000u) == 0x7f800000u)
            x &= ~0x40000000u;
        memcpy(p, &x, 4);
        return;
    }
    uint16_t h, exp = kind == FIELD_F16 ? 0x7c00u : 0x7f80u;
    memcpy(&h, p, 2);
    if ((h & exp) == exp)
        h &= (uint16_t)~0x4000u;
    memcpy(p, &h, 2);
}

static uint8_t *random_row(const dq_case *c, int64_t nblocks, size_t block_bytes, uint64_t seed)
{
    size_t bytes = (size_t)nblocks * block_bytes;
    uint8_t *row = malloc(bytes);
    assert_non_null(row);
    for (size_t i = 0; i < bytes; i++)
        row[i] = (uint8_t)(next_random(&seed) >> 56);
    for (int64_t b = 0; b < nblocks; b++)
        for (int f = 0; f < c->nfields; f++)
            make_finite(row + (size_t)b * block_bytes + c->fields[f].offset, c->fields[f].kind);
    return row;
}

/* ---- comparing the GPU with the CPU ----------------------------------- */

static void skip_without_device(void)
{
    if (pi_cuda_device_count() == 0)
        skip();
}

/* Dequantises src on both sides and compares the float bits; the GPU's
 * buffer starts as a NaN pattern so an element it never wrote shows up. */
static void expect_gpu_equals_cpu(pi_type type, const void *src, int64_t n)
{
    float *want = malloc((size_t)n * sizeof(float));
    float *got = malloc((size_t)n * sizeof(float));
    pi_err err = { { 0 } };
    assert_non_null(want);
    assert_non_null(got);
    memset(got, 0xff, (size_t)n * sizeof(float));

    assert_int_equal(pi_dequantize_row(type, src, want, n), 0);
    if (pi_cuda_dequantize_row(type, src, got, n, &err) != 0)
        fail_msg("%s", err.msg);
    for (int64_t i = 0; i < n; i++) {
        uint32_t w, g;
        memcpy(&w, &want[i], 4);
        memcpy(&g, &got[i], 4);
        if (w != g)
            fail_msg("%s, %lld elements: element %lld is %08x (%g) on the GPU, %08x (%g) "
                     "on the CPU", pi_type_name(type), (long long)n, (long long)i, g,
                     (double)got[i], w, (double)want[i]);
    }
    free(want);
    free(got);
}

static void expect_random_rows_match(const dq_case *c, int64_t nblocks, uint64_t seed)
{
    const pi_type_traits *t = pi_type_get_traits(c->type);
    assert_non_null(t);
    uint8_t *row = random_row(c, nblocks, t->type_size, seed);
    expect_gpu_equals_cpu(c->type, row, nblocks * t->block_size);
    free(row);
}

/* One block, an odd number of blocks, and a row long enough to need many
 * thread blocks, each with its own seed. */
static void test_gpu_dequantizes_like_the_cpu(void **state)
{
    const dq_case *c = *state;
    const pi_type_traits *t = pi_type_get_traits(c->type);
    skip_without_device();
    assert_true(pi_cuda_can_dequantize(c->type));
    int64_t long_row = ((int64_t)1 << 18) + 37 * PI_QK_K;
    expect_random_rows_match(c, 1, 1u + c->type);
    expect_random_rows_match(c, 37, 1000u + c->type);
    expect_random_rows_match(c, long_row / t->block_size, 2000u + c->type);
}

static void expect_every_16_bit_pattern_matches(pi_type type)
{
    uint16_t *all = malloc(65536 * sizeof *all);
    assert_non_null(all);
    for (uint32_t i = 0; i < 65536; i++)
        all[i] = (uint16_t)i;
    expect_gpu_equals_cpu(type, all, 65536);
    free(all);
}

static void test_f16_every_bit_pattern_including_nan_matches(void **state)
{
    skip_without_device();
    expect_every_16_bit_pattern_matches(PI_TYPE_F16);
}

static void test_bf16_every_bit_pattern_including_nan_matches(void **state)
{
    skip_without_device();
    expect_every_16_bit_pattern_matches(PI_TYPE_BF16);
}

/* More elements than one pass of the launcher's capped grid (2^16 blocks
 * of 256 threads), so threads go round the grid-stride loop. */
static void test_row_longer_than_the_grid_matches(void **state)
{
    static const dq_case q4_1 = { PI_TYPE_Q4_1, 2,
                                  { F16_AT(pi_block_q4_1, d), F16_AT(pi_block_q4_1, m) } };
    skip_without_device();
    expect_random_rows_match(&q4_1, ((int64_t)1 << 24) / PI_QK + 1001, 77);
}

/* ---- what works without a device -------------------------------------- */

static void test_status_explains_the_device_count(void **state)
{
    const char *status = pi_cuda_status();
    assert_non_null(status);
    assert_true(status[0] != '\0');
    if (pi_cuda_device_count() > 0)
        assert_string_equal(status, "CUDA ready");
    else
        assert_string_not_equal(status, "CUDA ready");
#ifndef PI_CUDA
    assert_int_equal(pi_cuda_device_count(), 0);
    assert_string_equal(status, "built without CUDA");
#endif
}

static void test_kernel_table_lists_exactly_the_tested_types(void **state)
{
    for (uint32_t t = 0; t < PI_TYPE_COUNT; t++) {
        bool tested = false;
        for (size_t i = 0; i < NCASES; i++)
            tested |= cases[i].type == (pi_type)t;
#ifdef PI_CUDA
        if (pi_cuda_can_dequantize((pi_type)t) != tested)
            fail_msg("type %s: kernel %s, test case %s", pi_type_name(t),
                     pi_cuda_can_dequantize((pi_type)t) ? "yes" : "no", tested ? "yes" : "no");
#else
        (void)tested; /* CPU-only build: no kernel may claim any type */
        assert_false(pi_cuda_can_dequantize((pi_type)t));
#endif
    }
}

static void expect_refusal(pi_type type, int64_t n, const char *want)
{
    uint8_t src[PI_QK_K * 4] = { 0 };
    float dst[PI_QK_K];
    pi_err err = { { 0 } };
    assert_int_equal(pi_cuda_dequantize_row(type, src, dst, n, &err), -1);
    if (!strstr(err.msg, want))
        fail_msg("wanted an error containing '%s', got '%s'", want, err.msg);
}

static void test_refuses_types_without_a_kernel(void **state)
{
    expect_refusal(PI_TYPE_Q8_K, PI_QK_K, "Q8_K");
    expect_refusal(PI_TYPE_IQ2_XXS, PI_QK_K, "IQ2_XXS");
    expect_refusal(PI_TYPE_I32, 4, "I32");
}

static void test_refuses_partial_blocks(void **state)
{
    expect_refusal(PI_TYPE_Q4_0, PI_QK + 1, "Q4_0");
    expect_refusal(PI_TYPE_Q6_K, PI_QK, "Q6_K");
    expect_refusal(PI_TYPE_Q8_0, -PI_QK, "Q8_0");
}

int main(void)
{
    static char names[NCASES][64];
    struct CMUnitTest tests[NCASES + 7] = {
        cmocka_unit_test(test_status_explains_the_device_count),
        cmocka_unit_test(test_kernel_table_lists_exactly_the_tested_types),
        cmocka_unit_test(test_refuses_types_without_a_kernel),
        cmocka_unit_test(test_refuses_partial_blocks),
        cmocka_unit_test(test_f16_every_bit_pattern_including_nan_matches),
        cmocka_unit_test(test_bf16_every_bit_pattern_including_nan_matches),
        cmocka_unit_test(test_row_longer_than_the_grid_matches),
    };
    for (size_t i = 0; i < NCASES; i++) {
        snprintf(names[i], sizeof names[i], "test_%s_gpu_dequantizes_like_the_cpu",
                 pi_type_name(cases[i].type));
        tests[7 + i] = (struct CMUnitTest){ names[i], test_gpu_dequantizes_like_the_cpu, NULL,
                                            NULL, (void *)&cases[i] };
    }
    if (pi_cuda_device_count() == 0)
        print_message("CUDA unavailable, skipping the GPU comparisons: %s\n", pi_cuda_status());
    return cmocka_run_group_tests(tests, NULL, NULL);
}
