/* Tests of the float vector primitives: SIMD against the plain versions. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "vec.h"

static float frand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static void fill(float *x, int n, unsigned seed)
{
    for (int i = 0; i < n; i++)
        x[i] = frand(&seed) * 3.0f;
}

/* Lengths around the SIMD widths, and head sizes of real models. */
static const int lens[] = { 0, 1, 7, 8, 9, 15, 16, 17, 31, 64, 128, 200, 576, 1537 };

static void test_dispatched_dot_matches_plain_dot(void **state)
{
    (void)state;
    float a[1537], b[1537];
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        int n = lens[k];
        fill(a, n, 1 + k);
        fill(b, n, 100 + k);
        double mag = 0.0;
        for (int i = 0; i < n; i++)
            mag += fabs((double)a[i] * b[i]);
        float want = pi_vec_dot_scalar(n, a, b), got = pi_vec_dot(n, a, b);
        if (fabs((double)got - want) > 1e-5 * mag + 1e-30)
            fail_msg("n=%d: %.9g vs %.9g", n, got, want);
    }
}

static void test_dispatched_axpy_matches_plain_axpy(void **state)
{
    (void)state;
    float x[1537], y1[1537], y2[1537];
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        int n = lens[k];
        fill(x, n, 7 + k);
        fill(y1, n, 70 + k);
        fill(y2, n, 70 + k);
        pi_vec_axpy_scalar(n, 0.37f, x, y1);
        pi_vec_axpy(n, 0.37f, x, y2);
        for (int i = 0; i < n; i++)
            if (fabsf(y1[i] - y2[i]) > 1e-6f * (fabsf(y1[i]) + 1.0f))
                fail_msg("n=%d i=%d: %.9g vs %.9g", n, i, y2[i], y1[i]);
    }
}

static void test_dispatched_sumsq_matches_plain_sumsq(void **state)
{
    (void)state;
    float x[1537];
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        int n = lens[k];
        fill(x, n, 11 + k);
        double want = pi_vec_sumsq_scalar(n, x), got = pi_vec_sumsq(n, x);
        assert_true(fabs(got - want) <= 1e-12 * (want + 1.0));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dispatched_dot_matches_plain_dot),
        cmocka_unit_test(test_dispatched_axpy_matches_plain_axpy),
        cmocka_unit_test(test_dispatched_sumsq_matches_plain_sumsq),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
