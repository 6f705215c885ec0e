/*
 * Tests of the quant module: the type table, half/bfloat16 conversion at its
 * edges, and quantise -> dequantise round trips.  Bit-exactness against the
 * gguf Python package is checked by tests/test_dequant_ref.py.
 */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <float.h>
#include <math.h>

#include "quant.h"
#include "rng.h"

static uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Deterministic N(0, 1) samples: splitmix64 and Box-Muller. */
static uint64_t rng_state = 0x5eed;

static double uniform01(void) { return rng_uniform01(&rng_state); }

static void gaussian(float *x, int64_t n, float sigma)
{
    for (int64_t i = 0; i < n; i++) {
        double r = sqrt(-2.0 * log(uniform01())), a = 6.283185307179586 * uniform01();
        x[i] = (float)(sigma * r * cos(a));
    }
}

/* ---- type table ------------------------------------------------------- */

static const struct {
    pi_type type;
    uint32_t block_size, type_size;
    pi_type vec_dot_type;
} expected[] = {
    { PI_TYPE_F32, 1, 4, PI_TYPE_F32 },        { PI_TYPE_F16, 1, 2, PI_TYPE_F32 },
    { PI_TYPE_BF16, 1, 2, PI_TYPE_F32 },       { PI_TYPE_Q4_0, 32, 18, PI_TYPE_Q8_0 },
    { PI_TYPE_Q4_1, 32, 20, PI_TYPE_Q8_1 },    { PI_TYPE_Q5_0, 32, 22, PI_TYPE_Q8_0 },
    { PI_TYPE_Q5_1, 32, 24, PI_TYPE_Q8_1 },    { PI_TYPE_Q8_0, 32, 34, PI_TYPE_Q8_0 },
    { PI_TYPE_Q8_1, 32, 36, PI_TYPE_COUNT },   { PI_TYPE_Q2_K, 256, 84, PI_TYPE_Q8_K },
    { PI_TYPE_Q3_K, 256, 110, PI_TYPE_Q8_K },  { PI_TYPE_Q4_K, 256, 144, PI_TYPE_Q8_K },
    { PI_TYPE_Q5_K, 256, 176, PI_TYPE_Q8_K },  { PI_TYPE_Q6_K, 256, 210, PI_TYPE_Q8_K },
    { PI_TYPE_Q8_K, 256, 292, PI_TYPE_COUNT }, { PI_TYPE_IQ4_NL, 32, 18, PI_TYPE_COUNT },
    { PI_TYPE_IQ4_XS, 256, 136, PI_TYPE_COUNT }, { PI_TYPE_I8, 1, 1, PI_TYPE_COUNT },
    { PI_TYPE_F64, 1, 8, PI_TYPE_COUNT },      { PI_TYPE_MXFP4, 32, 17, PI_TYPE_COUNT },
};

static void test_traits_match_gguf_block_sizes(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++) {
        const pi_type_traits *t = pi_type_get_traits(expected[i].type);
        assert_non_null(t);
        assert_int_equal(t->block_size, expected[i].block_size);
        assert_int_equal(t->type_size, expected[i].type_size);
        assert_int_equal(t->vec_dot_type, expected[i].vec_dot_type);
    }
}

static void test_retired_and_unknown_ids_have_no_traits(void **state)
{
    (void)state;
    const uint32_t unknown[] = { 4, 5, 31, 32, 33, 36, 37, 38, PI_TYPE_COUNT, 1000, UINT32_MAX };
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        assert_null(pi_type_get_traits(unknown[i]));
        assert_string_equal(pi_type_name(unknown[i]), "?");
        assert_int_equal(pi_row_size(unknown[i], 32), 0);
    }
}

static void test_block_structs_match_type_sizes(void **state)
{
    (void)state;
    assert_int_equal(sizeof(pi_block_q4_0), pi_type_get_traits(PI_TYPE_Q4_0)->type_size);
    assert_int_equal(sizeof(pi_block_q4_1), pi_type_get_traits(PI_TYPE_Q4_1)->type_size);
    assert_int_equal(sizeof(pi_block_q5_0), pi_type_get_traits(PI_TYPE_Q5_0)->type_size);
    assert_int_equal(sizeof(pi_block_q5_1), pi_type_get_traits(PI_TYPE_Q5_1)->type_size);
    assert_int_equal(sizeof(pi_block_q8_0), pi_type_get_traits(PI_TYPE_Q8_0)->type_size);
    assert_int_equal(sizeof(pi_block_q8_1), pi_type_get_traits(PI_TYPE_Q8_1)->type_size);
    assert_int_equal(sizeof(pi_block_q2_K), pi_type_get_traits(PI_TYPE_Q2_K)->type_size);
    assert_int_equal(sizeof(pi_block_q3_K), pi_type_get_traits(PI_TYPE_Q3_K)->type_size);
    assert_int_equal(sizeof(pi_block_q4_K), pi_type_get_traits(PI_TYPE_Q4_K)->type_size);
    assert_int_equal(sizeof(pi_block_q5_K), pi_type_get_traits(PI_TYPE_Q5_K)->type_size);
    assert_int_equal(sizeof(pi_block_q6_K), pi_type_get_traits(PI_TYPE_Q6_K)->type_size);
    assert_int_equal(sizeof(pi_block_q8_K), pi_type_get_traits(PI_TYPE_Q8_K)->type_size);
}

static void test_type_names_round_trip_in_any_case(void **state)
{
    (void)state;
    for (uint32_t t = 0; t < PI_TYPE_COUNT; t++) {
        const pi_type_traits *tr = pi_type_get_traits(t);
        if (tr == NULL)
            continue;
        char lower[32];
        size_t n = strlen(tr->name);
        assert_true(n < sizeof lower);
        for (size_t i = 0; i <= n; i++)
            lower[i] = (char)tolower((unsigned char)tr->name[i]);
        assert_string_equal(pi_type_name(t), tr->name);
        assert_int_equal(pi_type_from_name(tr->name), (int)t);
        assert_int_equal(pi_type_from_name(lower), (int)t);
    }
    assert_string_equal(pi_type_name(PI_TYPE_Q4_K), "Q4_K");
    assert_int_equal(pi_type_from_name("q6_k"), PI_TYPE_Q6_K);
    assert_int_equal(pi_type_from_name("Q4_"), -1);
    assert_int_equal(pi_type_from_name("Q4_KX"), -1);
    assert_int_equal(pi_type_from_name(""), -1);
    assert_int_equal(pi_type_from_name(NULL), -1);
}

static void test_row_size_counts_whole_blocks(void **state)
{
    (void)state;
    assert_int_equal(pi_row_size(PI_TYPE_Q4_K, 512), 288);
    assert_int_equal(pi_row_size(PI_TYPE_Q8_0, 4096), 128 * 34);
    assert_int_equal(pi_row_size(PI_TYPE_F32, 3), 12);
    assert_int_equal(pi_row_size(PI_TYPE_BF16, 7), 14);
    assert_int_equal(pi_row_size(PI_TYPE_Q6_K, 0), 0);
}

static void test_row_size_rejects_partial_blocks_negative_and_overflow(void **state)
{
    (void)state;
    assert_int_equal(pi_row_size(PI_TYPE_Q4_K, 255), 0);
    assert_int_equal(pi_row_size(PI_TYPE_Q4_0, 33), 0);
    assert_int_equal(pi_row_size(PI_TYPE_F32, -4), 0);
    assert_int_equal(pi_row_size(PI_TYPE_Q4_0, -32), 0);
    /* 4 * n and 8 * n wrap around size_t */
    assert_int_equal(pi_row_size(PI_TYPE_F32, INT64_MAX), 0);
    assert_int_equal(pi_row_size(PI_TYPE_F64, INT64_MAX / 2), 0);
    if ((uint64_t)SIZE_MAX / 4 < (uint64_t)INT64_MAX)
        assert_int_equal(pi_row_size(PI_TYPE_F32, (int64_t)(SIZE_MAX / 4) + 1), 0);
    /* the largest count that fits is still accepted */
    uint64_t fits = (uint64_t)SIZE_MAX / 4 < (uint64_t)INT64_MAX ? SIZE_MAX / 4 : INT64_MAX / 4;
    assert_int_equal(pi_row_size(PI_TYPE_F32, (int64_t)fits), fits * 4);
}

/* ---- f16 and bf16 ----------------------------------------------------- */

/* Each half from its fields with ldexp, independently of the bit tricks. */
static void test_f16_to_f32_is_exact_for_every_half(void **state)
{
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        int e = (int)(h >> 10 & 31), m = (int)(h & 1023);
        float sign = (h & 0x8000u) ? -1.0f : 1.0f;
        float got = pi_f16_to_f32((pi_f16)h);
        if (e == 31) {
            uint32_t want = (h & 0x8000u) << 16 | 0x7f800000u | (uint32_t)m << 13;
            assert_int_equal(bits(got), want); /* inf, and NaN payloads kept */
        } else {
            float want = e ? ldexpf((float)(1024 + m), e - 25) : ldexpf((float)m, -24);
            assert_int_equal(bits(got), bits(sign * want)); /* -0 included */
        }
    }
}

static void test_every_half_survives_f32_and_back(void **state)
{
    (void)state;
    for (uint32_t h = 0; h < 65536; h++)
        assert_int_equal(pi_f32_to_f16(pi_f16_to_f32((pi_f16)h)), h);
}

static void test_f32_to_f16_rounds_to_nearest_even(void **state)
{
    (void)state;
    static const struct { float f; uint16_t h; } cases[] = {
        { 1.0f + 0x1p-11f, 0x3c00 },        /* tie, down to the even 1.0 */
        { 1.0f + 3 * 0x1p-11f, 0x3c02 },    /* tie, up to the even 1 + 2^-9 */
        { 1.0f + 0x1p-11f + 0x1p-20f, 0x3c01 }, /* just past the tie */
        { 65504.0f, 0x7bff },               /* largest half */
        { 65519.99f, 0x7bff },
        { 65520.0f, 0x7c00 },               /* tie with 65536: rounds to inf */
        { 0x1p-24f, 0x0001 },               /* smallest subnormal */
        { 0x1p-25f, 0x0000 },               /* tie with 0: even is 0 */
        { 0x1.8p-25f, 0x0001 },
        { 3 * 0x1p-25f, 0x0002 },           /* tie between 1 and 2 units */
        { 5 * 0x1p-25f, 0x0002 },           /* tie between 2 and 3 units */
        { 0x1p-14f - 0x1p-25f, 0x0400 },    /* rounds up to the smallest normal */
        { 0x1p-14f, 0x0400 },
        { 1e-10f, 0x0000 },
        { -0.0f, 0x8000 },
        { -2.0f, 0xc000 },
        { 0.1f, 0x2e66 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(pi_f32_to_f16(cases[i].f), cases[i].h);
        assert_int_equal(pi_f32_to_f16(-cases[i].f), cases[i].h ^ 0x8000);
    }
}

static void test_f32_to_f16_keeps_nan_and_overflows_to_inf(void **state)
{
    (void)state;
    assert_int_equal(pi_f32_to_f16(INFINITY), 0x7c00);
    assert_int_equal(pi_f32_to_f16(-INFINITY), 0xfc00);
    assert_int_equal(pi_f32_to_f16(1e30f), 0x7c00);
    assert_int_equal(pi_f32_to_f16(-FLT_MAX), 0xfc00);
    assert_int_equal(pi_f32_to_f16(from_bits(0x7fc00000u)), 0x7e00);
    assert_int_equal(pi_f32_to_f16(from_bits(0xffc00000u)), 0xfe00);
    /* a payload below the half's 10 bits must not turn the NaN into inf */
    assert_int_equal(pi_f32_to_f16(from_bits(0x7f800001u)), 0x7c01);
}

static void test_bf16_rounds_to_nearest_even_and_quiets_nan(void **state)
{
    (void)state;
    assert_int_equal(pi_f32_to_bf16(1.0f), 0x3f80);
    assert_int_equal(pi_f32_to_bf16(from_bits(0x3f808000u)), 0x3f80); /* tie to even */
    assert_int_equal(pi_f32_to_bf16(from_bits(0x3f818000u)), 0x3f82); /* tie to even */
    assert_int_equal(pi_f32_to_bf16(from_bits(0x3f808001u)), 0x3f81);
    assert_int_equal(pi_f32_to_bf16(from_bits(0x7f7fffffu)), 0x7f80); /* FLT_MAX -> inf */
    assert_int_equal(pi_f32_to_bf16(-INFINITY), 0xff80);
    assert_int_equal(pi_f32_to_bf16(from_bits(0x00000001u)), 0x0000);
    assert_int_equal(pi_f32_to_bf16(from_bits(0x7f800001u)), 0x7fc0); /* sNaN -> quiet */
    assert_int_equal(pi_f32_to_bf16(from_bits(0xffa00000u)), 0xffe0);
    for (uint32_t h = 0; h < 65536; h++) {
        float f = pi_bf16_to_f32((pi_bf16)h);
        assert_int_equal(bits(f), h << 16);
        if ((h & 0x7fffu) <= 0x7f80u) /* not NaN: back unchanged */
            assert_int_equal(pi_f32_to_bf16(f), h);
    }
}

/* ---- round trips ------------------------------------------------------ */

#define ROUNDTRIP_N (PI_QK_K * 64)

/* RMS of dequantise(quantise(x)) - x, relative to the RMS of x. */
static double roundtrip_rel_rmse(pi_type type, const float *x, int64_t n)
{
    void *q = malloc(pi_row_size(type, n));
    float *y = malloc((size_t)n * sizeof *y);
    assert_non_null(q);
    assert_non_null(y);
    assert_int_equal(pi_quantize_row(type, x, q, n), 0);
    assert_int_equal(pi_dequantize_row(type, q, y, n), 0);
    double err = 0, ref = 0;
    for (int64_t i = 0; i < n; i++) {
        err += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
        ref += (double)x[i] * x[i];
    }
    free(q);
    free(y);
    return sqrt(err / ref);
}

/* Bounds on the relative RMSE for Gaussian data, about 1.15x what each type
 * measures (in parentheses), so a regression in a quantiser shows:
 * 8-bit ~0.6%, 6-bit ~1.7%, 5-bit ~3.5-4.5%, 4-bit ~7-9%, Q3_K ~14%,
 * Q2_K ~27%. */
static const struct { pi_type type; double bound; } roundtrip_bounds[] = {
    { PI_TYPE_F32, 0.0 },
    { PI_TYPE_F16, 0.00025 }, /* (0.00021) */
    { PI_TYPE_BF16, 0.002 },  /* (0.00166) */
    { PI_TYPE_Q8_0, 0.0062 }, /* (0.00532) */
    { PI_TYPE_Q8_1, 0.0062 }, /* (0.00532) */
    { PI_TYPE_Q8_K, 0.008 },  /* (0.00691) */
    { PI_TYPE_Q6_K, 0.019 },  /* (0.01655) */
    { PI_TYPE_Q5_K, 0.041 },  /* (0.03572) */
    { PI_TYPE_Q5_1, 0.044 },  /* (0.03793) */
    { PI_TYPE_Q5_0, 0.049 },  /* (0.04257) */
    { PI_TYPE_Q4_K, 0.082 },  /* (0.07152) */
    { PI_TYPE_Q4_1, 0.090 },  /* (0.07851) */
    { PI_TYPE_Q4_0, 0.099 },  /* (0.08599) */
    { PI_TYPE_Q3_K, 0.166 },  /* (0.14427) */
    { PI_TYPE_Q2_K, 0.31 },   /* (0.26923) */
};

static void test_roundtrip_error_within_bounds(void **state)
{
    (void)state;
    float *x = malloc(ROUNDTRIP_N * sizeof *x);
    assert_non_null(x);
    gaussian(x, ROUNDTRIP_N, 0.02f); /* a typical weight scale */
    for (size_t i = 0; i < sizeof roundtrip_bounds / sizeof roundtrip_bounds[0]; i++) {
        double e = roundtrip_rel_rmse(roundtrip_bounds[i].type, x, ROUNDTRIP_N);
        if (!(e <= roundtrip_bounds[i].bound))
            fail_msg("%s: relative RMSE %.5f > %.5f", pi_type_name(roundtrip_bounds[i].type),
                     e, roundtrip_bounds[i].bound);
    }
    free(x);
}

/* A block whose values sit on the type's grid comes back exactly. */
static void test_values_on_the_grid_round_trip_exactly(void **state)
{
    (void)state;
    float x[PI_QK], y[PI_QK];
    uint8_t q[64];
    for (int j = 0; j < PI_QK; j++)
        x[j] = (float)(j % 16 - 8); /* -8 .. 7: Q4_0 with d = 1 */
    assert_int_equal(pi_quantize_row(PI_TYPE_Q4_0, x, q, PI_QK), 0);
    assert_int_equal(pi_dequantize_row(PI_TYPE_Q4_0, q, y, PI_QK), 0);
    assert_memory_equal(x, y, sizeof x);
    for (int j = 0; j < PI_QK; j++)
        x[j] = (float)(j % 16 - 3); /* -3 .. 12: Q4_1 with d = 1, m = -3 */
    assert_int_equal(pi_quantize_row(PI_TYPE_Q4_1, x, q, PI_QK), 0);
    assert_int_equal(pi_dequantize_row(PI_TYPE_Q4_1, q, y, PI_QK), 0);
    assert_memory_equal(x, y, sizeof x);
    for (int j = 0; j < PI_QK; j++)
        x[j] = (float)(8 * j - 127); /* -127 .. 121 and d = 1 */
    x[5] = 127.0f;
    assert_int_equal(pi_quantize_row(PI_TYPE_Q8_0, x, q, PI_QK), 0);
    assert_int_equal(pi_dequantize_row(PI_TYPE_Q8_0, q, y, PI_QK), 0);
    assert_memory_equal(x, y, sizeof x);
}

static void test_zero_rows_dequantize_to_zero(void **state)
{
    (void)state;
    static float x[2 * PI_QK_K], y[2 * PI_QK_K];
    static uint8_t q[2 * PI_QK_K * sizeof(float)]; /* F32 is the largest */
    for (uint32_t t = 0; t < PI_TYPE_COUNT; t++) {
        const pi_type_traits *tr = pi_type_get_traits(t);
        if (tr == NULL || !tr->can_quantize)
            continue;
        memset(q, 0xa5, sizeof q);
        assert_int_equal(pi_quantize_row((pi_type)t, x, q, 2 * PI_QK_K), 0);
        assert_int_equal(pi_dequantize_row((pi_type)t, q, y, 2 * PI_QK_K), 0);
        for (int i = 0; i < 2 * PI_QK_K; i++)
            if (y[i] != 0.0f)
                fail_msg("%s: element %d is %g, not 0", tr->name, i, (double)y[i]);
    }
}

/* Blocks the K-quant fits treat specially: all positive (no minimum to
 * subtract), constant, one spike among zeros, and small values whose
 * super-block scales are f16 subnormals.  (Much smaller ones are beyond the
 * format: a scale below 2^-24 is stored as zero.)  Every element must come
 * back within a little over half a quantisation step, given here as a
 * fraction of the block's largest magnitude. */
static void test_k_quants_handle_degenerate_blocks(void **state)
{
    (void)state;
    static const struct { pi_type type; float tol; } types[] = {
        { PI_TYPE_Q2_K, 0.40f }, /* half a step: 2/6 of the largest */
        { PI_TYPE_Q3_K, 0.16f }, /* 1/8 */
        { PI_TYPE_Q4_K, 0.08f }, /* 2/30 */
        { PI_TYPE_Q5_K, 0.04f }, /* 2/62 */
        { PI_TYPE_Q6_K, 0.02f }, /* 1/64 */
    };
    static const float amax[4] = { 7.0f, 0.375f, 5.0f, 2e-3f };
    static float x[4 * PI_QK_K], y[4 * PI_QK_K];
    static uint8_t q[4 * 210];
    for (int i = 0; i < PI_QK_K; i++) {
        x[i] = 1.0f + (float)(i % 7);
        x[PI_QK_K + i] = -0.375f;
        x[2 * PI_QK_K + i] = i == 77 ? 5.0f : 0.0f;
        x[3 * PI_QK_K + i] = 1e-3f * (float)(i % 5 - 2);
    }
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        assert_int_equal(pi_quantize_row(types[k].type, x, q, 4 * PI_QK_K), 0);
        assert_int_equal(pi_dequantize_row(types[k].type, q, y, 4 * PI_QK_K), 0);
        for (int i = 0; i < 4 * PI_QK_K; i++) {
            if (!(fabsf(y[i] - x[i]) <= types[k].tol * amax[i / PI_QK_K]))
                fail_msg("%s: element %d: %g for %g", pi_type_name(types[k].type), i,
                         (double)y[i], (double)x[i]);
        }
    }
}

static void test_q8_activation_sums_match_codes(void **state)
{
    (void)state;
    float x[PI_QK_K];
    pi_block_q8_K k;
    pi_block_q8_1 b1[PI_QK_K / PI_QK];
    gaussian(x, PI_QK_K, 1.0f);
    assert_int_equal(pi_quantize_row(PI_TYPE_Q8_K, x, &k, PI_QK_K), 0);
    for (int g = 0; g < PI_QK_K / 16; g++) {
        int sum = 0;
        for (int l = 0; l < 16; l++) {
            assert_true(k.qs[16 * g + l] >= -127);
            sum += k.qs[16 * g + l];
        }
        assert_int_equal(k.bsums[g], sum);
    }
    assert_int_equal(pi_quantize_row(PI_TYPE_Q8_1, x, b1, PI_QK_K), 0);
    for (int i = 0; i < PI_QK_K / PI_QK; i++) {
        int sum = 0;
        for (int l = 0; l < PI_QK; l++)
            sum += b1[i].qs[l];
        float d = pi_f16_to_f32(b1[i].d), s = pi_f16_to_f32(b1[i].s);
        assert_true(fabsf(s - d * (float)sum) <= 2e-3f * fabsf(d * (float)sum) + 1e-6f);
    }
}

static void test_unsupported_types_return_minus_one(void **state)
{
    (void)state;
    float x[PI_QK_K] = { 0 };
    uint8_t q[512] = { 0 };
    assert_int_equal(pi_dequantize_row(PI_TYPE_IQ2_XXS, q, x, PI_QK_K), -1);
    assert_int_equal(pi_quantize_row(PI_TYPE_IQ4_NL, x, q, PI_QK), -1);
    assert_int_equal(pi_quantize_row(PI_TYPE_TQ2_0, x, q, PI_QK_K), -1);
    assert_int_equal(pi_dequantize_row(PI_TYPE_I32, q, x, 4), -1);
    assert_int_equal(pi_dequantize_row((pi_type)4, q, x, PI_QK), -1);
    assert_int_equal(pi_quantize_row((pi_type)200, x, q, PI_QK), -1);
    /* a supported type with a partial block */
    assert_int_equal(pi_dequantize_row(PI_TYPE_Q4_K, q, x, 128), -1);
    assert_int_equal(pi_quantize_row(PI_TYPE_Q8_0, x, q, 31), -1);
    assert_int_equal(pi_quantize_row(PI_TYPE_F16, x, q, -1), -1);
}

/* can_dequantize and can_quantize say exactly what the row functions do. */
static void test_capability_flags_match_the_row_functions(void **state)
{
    (void)state;
    static float x[PI_QK_K];
    static uint8_t q[512];
    for (uint32_t t = 0; t < PI_TYPE_COUNT; t++) {
        const pi_type_traits *tr = pi_type_get_traits(t);
        if (tr == NULL)
            continue;
        int64_t n = tr->block_size;
        assert_int_equal(pi_quantize_row((pi_type)t, x, q, n), tr->can_quantize ? 0 : -1);
        assert_int_equal(pi_dequantize_row((pi_type)t, q, x, n), tr->can_dequantize ? 0 : -1);
    }
    const pi_type must_dequantize[] = {
        PI_TYPE_F32, PI_TYPE_F16, PI_TYPE_BF16, PI_TYPE_Q8_0, PI_TYPE_Q4_0, PI_TYPE_Q4_1,
        PI_TYPE_Q5_0, PI_TYPE_Q5_1, PI_TYPE_Q2_K, PI_TYPE_Q3_K, PI_TYPE_Q4_K, PI_TYPE_Q5_K,
        PI_TYPE_Q6_K,
    };
    const pi_type must_quantize[] = {
        PI_TYPE_F32, PI_TYPE_F16, PI_TYPE_BF16, PI_TYPE_Q8_0, PI_TYPE_Q8_1, PI_TYPE_Q8_K,
        PI_TYPE_Q4_0, PI_TYPE_Q4_1, PI_TYPE_Q5_0, PI_TYPE_Q5_1, PI_TYPE_Q2_K, PI_TYPE_Q3_K,
        PI_TYPE_Q4_K, PI_TYPE_Q5_K, PI_TYPE_Q6_K,
    };
    for (size_t i = 0; i < sizeof must_dequantize / sizeof must_dequantize[0]; i++)
        assert_true(pi_type_get_traits(must_dequantize[i])->can_dequantize);
    for (size_t i = 0; i < sizeof must_quantize / sizeof must_quantize[0]; i++)
        assert_true(pi_type_get_traits(must_quantize[i])->can_quantize);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_traits_match_gguf_block_sizes),
        cmocka_unit_test(test_retired_and_unknown_ids_have_no_traits),
        cmocka_unit_test(test_block_structs_match_type_sizes),
        cmocka_unit_test(test_type_names_round_trip_in_any_case),
        cmocka_unit_test(test_row_size_counts_whole_blocks),
        cmocka_unit_test(test_row_size_rejects_partial_blocks_negative_and_overflow),
        cmocka_unit_test(test_f16_to_f32_is_exact_for_every_half),
        cmocka_unit_test(test_every_half_survives_f32_and_back),
        cmocka_unit_test(test_f32_to_f16_rounds_to_nearest_even),
        cmocka_unit_test(test_f32_to_f16_keeps_nan_and_overflows_to_inf),
        cmocka_unit_test(test_bf16_rounds_to_nearest_even_and_quiets_nan),
        cmocka_unit_test(test_roundtrip_error_within_bounds),
        cmocka_unit_test(test_values_on_the_grid_round_trip_exactly),
        cmocka_unit_test(test_zero_rows_dequantize_to_zero),
        cmocka_unit_test(test_k_quants_handle_degenerate_blocks),
        cmocka_unit_test(test_q8_activation_sums_match_codes),
        cmocka_unit_test(test_unsupported_types_return_minus_one),
        cmocka_unit_test(test_capability_flags_match_the_row_functions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
