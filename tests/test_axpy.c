/* Tests of the weighted quantised row sums: against dequantise-then-add, for
 * every type with a plain version, and the AVX2 versions against the plain. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "axpy.h"

static float frand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

#define MAXN 1024
static const pi_type types[] = { PI_TYPE_F32, PI_TYPE_F16, PI_TYPE_BF16, PI_TYPE_Q4_0,
                                 PI_TYPE_Q4_1, PI_TYPE_Q5_0, PI_TYPE_Q5_1, PI_TYPE_Q8_0,
                                 PI_TYPE_Q2_K, PI_TYPE_Q3_K, PI_TYPE_Q4_K, PI_TYPE_Q5_K,
                                 PI_TYPE_Q6_K };

typedef struct rows {
    uint8_t q[PI_AXPY_ROWS][MAXN * 4];
    float deq[PI_AXPY_ROWS][MAXN];
    const void *w[PI_AXPY_ROWS];
} rows;

/* k random rows of n elements quantised to t, and what they dequantise to. */
static void make_rows(rows *r, pi_type t, int64_t n, int k, unsigned seed)
{
    float x[MAXN];
    for (int i = 0; i < k; i++) {
        for (int64_t j = 0; j < n; j++)
            x[j] = frand(&seed) * 2.0f;
        assert_int_equal(pi_quantize_row(t, x, r->q[i], n), 0);
        assert_int_equal(pi_dequantize_row(t, r->q[i], r->deq[i], n), 0);
        r->w[i] = r->q[i];
    }
}

static void check(pi_axpy_fn f, const rows *r, pi_type t, int64_t n, int k, const char *what)
{
    static const float a[PI_AXPY_ROWS] = { 0.5f, -1.25f, 2.0f, 0.0f };
    float y[MAXN], want[MAXN];
    unsigned seed = 99;
    for (int64_t j = 0; j < n; j++)
        want[j] = y[j] = frand(&seed);
    for (int i = 0; i < k; i++)
        for (int64_t j = 0; j < n; j++)
            want[j] += a[i] * r->deq[i][j];
    f(n, k, a, r->w, y);
    for (int64_t j = 0; j < n; j++)
        if (fabsf(y[j] - want[j]) > 1e-5f * (fabsf(want[j]) + 4.0f))
            fail_msg("%s %s n=%lld k=%d j=%lld: %.9g, want %.9g", what, pi_type_name(t),
                     (long long)n, k, (long long)j, y[j], want[j]);
}

static void test_every_version_adds_the_dequantised_rows(void **state)
{
    (void)state;
    static rows r;
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        pi_type t = types[ti];
        int64_t bs = pi_type_get_traits(t)->block_size;
        const int64_t lens[] = { bs == 1 ? 7 : bs, bs == 1 ? 64 : 2 * bs, bs == 1 ? 577 : 4 * bs,
                                 bs == 1 ? 1024 : 1024 / bs * bs };
        for (size_t li = 0; li < 4; li++)
            for (int k = 1; k <= PI_AXPY_ROWS; k++) {
                make_rows(&r, t, lens[li], k, (unsigned)(ti * 131 + li * 7 + (size_t)k));
                pi_axpy_fn s = pi_axpy_get_isa(t, PI_ISA_SCALAR);
                assert_non_null(s);
                check(s, &r, t, lens[li], k, "scalar");
                pi_axpy_fn v = pi_axpy_get_isa(t, PI_ISA_AVX2);
                if (v)
                    check(v, &r, t, lens[li], k, "avx2");
                pi_axpy_fn z = pi_axpy_get_isa(t, PI_ISA_AVX512);
                if (z)
                    check(z, &r, t, lens[li], k, "avx512");
                check(pi_axpy_get(t), &r, t, lens[li], k, "best");
            }
    }
}

static void test_types_that_cannot_be_read_have_none(void **state)
{
    (void)state;
    assert_null(pi_axpy_get(PI_TYPE_IQ2_XXS));
    assert_null(pi_axpy_get_isa(PI_TYPE_IQ4_NL, PI_ISA_SCALAR));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_version_adds_the_dequantised_rows),
        cmocka_unit_test(test_types_that_cannot_be_read_have_none),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
