/*
 * Tests of the dot-product kernels (quant_dot.c, quant_dot_avx2.c) and of
 * CPU feature detection (cpu.c).
 *
 * For every weight type with a dot product: random weight rows (random bytes,
 * scale fields set to finite random halves) against random activations
 * quantised to the type's vec_dot_type.  The scalar kernel must equal the
 * dot product of the two dequantised rows, and the AVX2 kernel the scalar
 * one, within 1e-5 of sum |w_i| |a_i|: both sum exact integer products per
 * block, so only float rounding of per-block partial sums separates them.
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

static uint64_t next_u64(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

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

static void check_avx2(pi_type type, int64_t n)
{
    pi_vec_dot_fn scalar = pi_vec_dot_get_isa(type, PI_ISA_SCALAR);
    pi_vec_dot_fn avx2 = pi_vec_dot_get_isa(type, PI_ISA_AVX2);
    assert_non_null(avx2);
    for (int trial = 0; trial < 4; trial++) {
        void *w = random_weights(type, n), *a = random_activations(type, n);
        reference r = reference_dot(type, w, a, n);
        check_close("avx2", type, n, avx2(n, w, a), scalar(n, w, a), REL_TOL * r.mag + 1e-30);
        free(w);
        free(a);
    }
}

static bool have_avx2(void)
{
    if (pi_isa_best() >= PI_ISA_AVX2)
        return true;
    print_message("CPU lacks AVX2/FMA/F16C (or PI_ISA caps it): AVX2 kernels not tested\n");
    return false;
}

static void test_avx2_dot_matches_scalar(void **state)
{
    (void)state;
    if (!have_avx2())
        skip();
    for_each_case(check_avx2);
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
            pi_vec_dot_fn s = pi_vec_dot_get_isa(type, PI_ISA_SCALAR);
            pi_vec_dot_fn v = pi_vec_dot_get_isa(type, PI_ISA_AVX2); /* NULL without AVX2 */
            check_close("scalar", type, n, s(n, w, a), r.dot, r.tol);
            if (v)
                check_close("avx2", type, n, v(n, w, a), r.dot, r.tol);
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
        if (has_dot)
            assert_ptr_equal(fn, pi_vec_dot_get_isa((pi_type)t, pi_isa_best()));
    }
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
    bool valid = strcmp(value, "scalar") == 0 || strcmp(value, "avx2") == 0;
    if (c->isa_env_valid != valid)
        return 11;
    if (strcmp(value, "scalar") == 0) {
        if (c->avx2 || c->fma || c->avx512f || pi_isa_best() != PI_ISA_SCALAR)
            return 12;
        for (size_t t = 0; t < N_TYPES; t++)
            if (pi_vec_dot_get(k_types[t]) != pi_vec_dot_get_isa(k_types[t], PI_ISA_SCALAR) ||
                pi_vec_dot_get_isa(k_types[t], PI_ISA_AVX2) != NULL)
                return 13;
    }
    if (strcmp(value, "avx2") == 0 && (c->avx512f || c->avx_vnni || c->amx_tile))
        return 14;
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
        cmocka_unit_test(test_extreme_codes_do_not_overflow),
        cmocka_unit_test(test_every_vec_dot_type_has_a_kernel),
        cmocka_unit_test(test_unknown_types_and_isas_have_no_kernel),
        cmocka_unit_test(test_cpu_features_agree_with_proc_cpuinfo),
        cmocka_unit_test(test_pi_isa_scalar_forces_scalar_kernels),
        cmocka_unit_test(test_pi_isa_avx2_caps_newer_extensions),
        cmocka_unit_test(test_unknown_pi_isa_is_flagged_and_ignored),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
