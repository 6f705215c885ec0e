/* Tests of activation statistics: the neurons needed per token by
 * construction and against a plain sort, firing frequencies, concentration,
 * magnitudes, and the YAML file written and read back (or refused). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "actstats.h"
#include "expertstats.h"

/* ---- Helpers ---- */

/* This cmocka has no assert_double_equal. */
#define assert_near(got, want, tol) near(got, want, tol, #got, __LINE__)
static void near(double got, double want, double tol, const char *what, int line)
{
    if (!(fabs(got - want) <= tol))
        fail_msg("line %d: %s is %.17g, expected %.17g", line, what, got, want);
}

static pi_actstats *new_stats(int n_layer, int n_ff)
{
    pi_err err = { { 0 } };
    pi_actstats *s = pi_actstats_new(n_layer, n_ff, &err);
    if (!s)
        fail_msg("%s", err.msg);
    return s;
}

static pi_actstats_summary summary(const pi_actstats *s, int il)
{
    pi_actstats_summary sm;
    pi_err err;
    assert_int_equal(pi_actstats_summary_get(s, il, &sm, &err), 0);
    return sm;
}

/* Firing counts of layer 0 (frequencies times tokens, exact for small counts). */
static void fire_counts(const pi_actstats *s, int n, int lv, int64_t tokens, int64_t *out)
{
    double *f = malloc((size_t)n * sizeof *f);
    assert_int_equal(pi_actstats_frequency(s, 0, lv, f), 0);
    for (int i = 0; i < n; i++)
        out[i] = llround(f[i] * (double)tokens);
    free(f);
}

/* Adds one row to a fresh single-layer pi_actstats and returns, per level,
 * which neurons fired (fired[lv * n + i]) and how many. */
static void one_row(const float *row, int n, int needed[PI_ACTSTATS_LEVELS], char *fired)
{
    pi_actstats *s = new_stats(1, n);
    assert_int_equal(pi_actstats_add(s, 0, row, 1), 0);
    int64_t *c = malloc((size_t)n * sizeof *c);
    pi_actstats_summary sm = summary(s, 0);
    for (int lv = 0; lv < PI_ACTSTATS_LEVELS; lv++) {
        fire_counts(s, n, lv, 1, c);
        needed[lv] = 0;
        for (int i = 0; i < n; i++) {
            needed[lv] += (int)c[i];
            if (fired)
                fired[lv * n + i] = (char)c[i];
        }
        assert_int_equal(llround(sm.needed_mean[lv] * n), needed[lv]);
    }
    free(c);
    pi_actstats_free(s);
}

/* ---- The plain reference: sort the row, add from the top ---- */

typedef struct ref_item {
    float a;
    int i;
} ref_item;

static int ref_cmp(const void *pa, const void *pb)
{
    const ref_item *a = pa, *b = pb;
    if (a->a != b->a)
        return a->a > b->a ? -1 : 1;
    return a->i - b->i;
}

static const int pct[PI_ACTSTATS_LEVELS] = { 90, 95, 99 };

/* In the module's units (2^(e-32) for a maximum in [2^e, 2^(e+1)), truncated):
 * fills fired and returns the counts.  Also checks that plain double sums
 * need the same number. */
static void reference(const float *row, int n, int needed[PI_ACTSTATS_LEVELS], char *fired)
{
    ref_item *it = malloc((size_t)n * sizeof *it);
    float mx = 0;
    double dtotal = 0;
    for (int i = 0; i < n; i++) {
        float a = isfinite(row[i]) ? fabsf(row[i]) : 0;
        it[i] = (ref_item){ a, i };
        mx = fmaxf(mx, a);
        dtotal += a;
    }
    qsort(it, (size_t)n, sizeof *it, ref_cmp);
    memset(fired, 0, (size_t)PI_ACTSTATS_LEVELS * n);
    for (int lv = 0; lv < PI_ACTSTATS_LEVELS; lv++) {
        needed[lv] = 0;
        if (mx == 0)
            continue;
        double scale = ldexp(1, 32 - ilogbf(mx));
        uint64_t total = 0, cum = 0;
        for (int i = 0; i < n; i++)
            total += (uint64_t)((double)it[i].a * scale);
        int k = 0;
        while (cum * 100 < total * (uint64_t)pct[lv]) {
            cum += (uint64_t)((double)it[k].a * scale);
            fired[lv * n + it[k++].i] = 1;
        }
        needed[lv] = k;
        double dcum = 0;
        int dk = 0;
        while (dcum < pi_actstats_levels[lv] * dtotal)
            dcum += it[dk++].a;
        assert_int_equal(dk, k);
    }
    free(it);
}

/* xorshift64* and Box-Muller: reproducible without libc's rand(). */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static double uniform(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 0x2545f4914f6cdd1dull) >> 11) / 9007199254740992.0;
}

static double gaussian(void)
{
    return sqrt(-2 * log(1 - uniform())) * cos(6.283185307179586 * uniform());
}

/* Heavy tails like real FFN activations: exp(gaussian) times gaussian, with
 * some exact zeros and repeated values. */
static void random_row(float *row, int n)
{
    double spread = 0.5 + 2.5 * uniform();
    for (int i = 0; i < n; i++) {
        double u = uniform();
        if (u < 0.02)
            row[i] = 0;
        else if (u < 0.05 && i > 0)
            row[i] = -row[i - 1];
        else
            row[i] = (float)(exp(spread * gaussian()) * gaussian());
    }
}

/* ---- Behaviour by construction ---- */

static void test_dominant_neuron_is_enough_for_090_but_not_099(void **state)
{
    (void)state;
    /* Total |a| 100: one neuron holds 95.5. */
    const float row[] = { 0.5f, 2.5f, -95.5f, 0.3f, -1.2f };
    int needed[PI_ACTSTATS_LEVELS];
    char fired[3 * 5];
    one_row(row, 5, needed, fired);
    assert_int_equal(needed[0], 1);
    assert_int_equal(needed[1], 1);
    assert_int_equal(needed[2], 3); /* 95.5 + 2.5 + 1.2 = 99.2 */
    assert_true(fired[0 * 5 + 2] && fired[2 * 5 + 2] && fired[2 * 5 + 1] && fired[2 * 5 + 4]);
    assert_false(fired[2 * 5 + 0] || fired[2 * 5 + 3]);
}

static void test_uniform_rows_need_ceil_q_n(void **state)
{
    (void)state;
    enum { N = 1536 };
    float row[N];
    for (int i = 0; i < N; i++)
        row[i] = i % 3 ? 0.37f : -0.37f;
    int needed[PI_ACTSTATS_LEVELS];
    char *fired = malloc(3 * N);
    one_row(row, N, needed, fired);
    for (int lv = 0; lv < PI_ACTSTATS_LEVELS; lv++) {
        int want = (int)ceil(pi_actstats_levels[lv] * N);
        assert_int_equal(needed[lv], want);
        /* Equal values are taken in index order. */
        for (int i = 0; i < N; i++)
            assert_int_equal(fired[lv * N + i], i < want);
    }
    free(fired);
}

static void test_equal_and_close_values_in_the_crossing_bucket(void **state)
{
    (void)state;
    /* 4.5 and six 1s (one bucket): 0.9 of 10.5 needs 4.5 + five 1s. */
    const float ties[] = { 1, 1, 1, 4.5f, 1, 1, 1 };
    int needed[PI_ACTSTATS_LEVELS];
    char fired[3 * 7];
    one_row(ties, 7, needed, fired);
    assert_int_equal(needed[0], 6);
    assert_int_equal(needed[1], 7);
    assert_false(fired[6]); /* the last 1 by index is the one left out */
    /* Values within 1/16 octave of each other share a bucket, so the
     * crossing bucket must be sorted: total 20.15, 0.9 of it is 18.135. */
    const float close[] = { 1.03f, 1.01f, 1.05f, 1.0f, 1.02f, 1.04f, 10, 2, 1.5f, 0.5f };
    char want[3 * 10];
    int ref[PI_ACTSTATS_LEVELS];
    char got[3 * 10];
    one_row(close, 10, needed, got);
    reference(close, 10, ref, want);
    assert_int_equal(needed[0], 8); /* 10, 2, 1.5, 1.05, 1.04, 1.03, 1.02, 1.01 */
    for (int lv = 0; lv < PI_ACTSTATS_LEVELS; lv++)
        assert_int_equal(needed[lv], ref[lv]);
    assert_memory_equal(got, want, sizeof got);
}

static void test_zero_and_nonfinite_values_carry_no_mass(void **state)
{
    (void)state;
    const float rows[3][4] = { { 0, -0.0f, 0, 0 },
                               { NAN, 30, INFINITY, 1 },
                               { 2, 0, 0, 2 } };
    pi_actstats *s = new_stats(1, 4);
    assert_int_equal(pi_actstats_add(s, 0, rows[0], 3), 0);
    pi_actstats_summary sm = summary(s, 0);
    assert_int_equal(sm.tokens, 3);
    assert_int_equal(sm.nonfinite, 2);
    assert_int_equal(sm.mag_zeros, 4 + 2);
    /* Needed: 0 for the zero row; 1 (the 30) for row 1 at 0.9, 2 at 0.99; 2
     * for row 2. */
    assert_near(sm.needed_mean[0], (0 + 1 + 2) / 3.0 / 4, 1e-12);
    assert_near(sm.needed_mean[2], (0 + 2 + 2) / 3.0 / 4, 1e-12);
    assert_near(sm.needed_p10[0], 0, 0);
    assert_near(sm.needed_p90[0], 0.5, 0);
    int64_t c[4];
    fire_counts(s, 4, 0, 3, c);
    assert_true(c[0] == 1 && c[1] == 1 && c[2] == 0 && c[3] == 1);
    assert_near(sm.mag_max, 30, 0);
    assert_near(sm.mag_mean, 35.0 / 10, 1e-12);
    pi_actstats_free(s);
}

static void test_firing_frequencies_over_known_rows(void **state)
{
    (void)state;
    /* Row t: neuron t % 4 holds almost everything, neuron 5 a steady 9%. */
    enum { N = 6, T = 8 };
    float rows[T][N];
    for (int t = 0; t < T; t++)
        for (int i = 0; i < N; i++)
            rows[t][i] = i == t % 4 ? 100 : i == 5 ? 10 : 0.1f;
    pi_actstats *s = new_stats(2, N);
    assert_int_equal(pi_actstats_add(s, 1, rows[0], T), 0);
    double f[N];
    assert_int_equal(pi_actstats_frequency(s, 1, 0, f), 0);
    for (int i = 0; i < 4; i++)
        assert_near(f[i], 0.25, 0);
    assert_near(f[4], 0, 0);
    assert_near(f[5], 0, 0); /* 100 / 110.4 is already past 0.9 */
    assert_int_equal(pi_actstats_frequency(s, 1, 1, f), 0);
    assert_near(f[5], 1, 0); /* but not past 0.95 */
    assert_int_equal(pi_actstats_frequency(s, 0, 1, f), 0);
    assert_near(f[5], 0, 0); /* layer 0 saw nothing */
    pi_actstats_free(s);
}

static void test_concentration_of_firings_and_mass(void **state)
{
    (void)state;
    /* Ten neurons: neuron 0 always 100, neuron j = 1 + t % 9 gets 50 in row
     * t, the other eight 1.  Total 158 per row. */
    enum { N = 10, T = 9 };
    float rows[T][N];
    for (int t = 0; t < T; t++)
        for (int i = 0; i < N; i++)
            rows[t][i] = i == 0 ? 100 : i == 1 + t % 9 ? 50 : 1;
    pi_actstats *s = new_stats(1, N);
    assert_int_equal(pi_actstats_add(s, 0, rows[0], T), 0);
    pi_actstats_summary sm = summary(s, 0);
    /* 0.9 (142.2) takes 100 and 50: neuron 0 fires 9 times of 18 firings,
     * each other neuron once. */
    assert_near(sm.firing_share_top10[0], 9.0 / 18, 1e-12);
    assert_near(sm.firing_share_top20[0], 10.0 / 18, 1e-12);
    /* 0.99 (156.42) takes 100, 50 and seven 1s, leaving out the last index:
     * neurons 0..7 fire every row, 8 in eight, 9 in one (81 firings). */
    assert_near(sm.firing_share_top10[2], 9.0 / 81, 1e-12);
    assert_near(sm.firing_share_top20[2], 18.0 / 81, 1e-12);
    /* Mass of the two most frequent at 0.99 (neurons 0 and 1). */
    assert_near(sm.mass_share_top10, 900.0 / (T * 158), 1e-12);
    assert_near(sm.mass_share_top20, (900.0 + 58) / (T * 158), 1e-12);
    pi_actstats_free(s);
}

static void test_magnitude_percentiles_within_a_bin(void **state)
{
    (void)state;
    enum { N = 100 };
    float row[N];
    for (int i = 0; i < N; i++)
        row[i] = i < 50 ? 1.0f : i < 99 ? -8.0f : 1e6f;
    pi_actstats *s = new_stats(1, N);
    assert_int_equal(pi_actstats_add(s, 0, row, 1), 0);
    pi_actstats_summary sm = summary(s, 0);
    assert_near(sm.mag_p50, 1, 0.032);
    assert_near(sm.mag_p90, 8, 8 * 0.032);
    assert_near(sm.mag_p99, 8, 8 * 0.032);
    assert_near(sm.mag_max, 1e6, 0);
    assert_near(sm.mag_mean, (50 + 49 * 8 + 1e6) / N, 1e-9);
    pi_actstats_free(s);
}

static void test_bucket_method_matches_sorting_on_random_rows(void **state)
{
    (void)state;
    const int sizes[] = { 1536, 257, 1, 2, 33 };
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        int n = sizes[k], rows = k == 0 ? 3000 : 1000;
        float *row = malloc((size_t)n * sizeof *row);
        char *want = malloc(3 * (size_t)n), *got = malloc(3 * (size_t)n);
        for (int t = 0; t < rows; t++) {
            random_row(row, n);
            int ref[PI_ACTSTATS_LEVELS], needed[PI_ACTSTATS_LEVELS];
            reference(row, n, ref, want);
            one_row(row, n, needed, got);
            for (int lv = 0; lv < PI_ACTSTATS_LEVELS; lv++)
                if (needed[lv] != ref[lv])
                    fail_msg("n %d row %d level %d: %d needed, sorting says %d", n, t, lv,
                             needed[lv], ref[lv]);
            assert_memory_equal(got, want, 3 * (size_t)n);
        }
        free(row);
        free(want);
        free(got);
    }
}

/* Firing counts are kept 21 bits per level for a while and then moved to
 * 64-bit counts: nothing may be lost when that happens. */
static void test_counts_stay_exact_past_two_million_rows(void **state)
{
    (void)state;
    enum { N = 2, CHUNK = 1 << 16 };
    const int64_t rows = (1 << 21) + 100;
    float *buf = malloc(CHUNK * N * sizeof *buf);
    for (int t = 0; t < CHUNK; t++)
        buf[t * N] = 1, buf[t * N + 1] = t % 4 ? 0 : 0.05f;
    pi_actstats *s = new_stats(1, N);
    for (int64_t done = 0; done < rows; done += CHUNK)
        assert_int_equal(pi_actstats_add(s, 0, buf, (int)(rows - done < CHUNK ? rows - done
                                                                                : CHUNK)), 0);
    /* In every fourth row 1 of 1.05 is enough for 0.9 but not for 0.99. */
    int64_t c[N];
    fire_counts(s, N, 2, rows, c);
    assert_int_equal(c[0], rows);
    assert_int_equal(c[1], (rows + 3) / 4);
    fire_counts(s, N, 0, rows, c);
    assert_int_equal(c[0], rows);
    assert_int_equal(c[1], 0);
    assert_int_equal(summary(s, 0).tokens, rows);
    free(buf);
    pi_actstats_free(s);
}

static void test_bad_arguments_are_refused(void **state)
{
    (void)state;
    pi_err err = { { 0 } };
    assert_null(pi_actstats_new(0, 10, &err));
    assert_non_null(strstr(err.msg, "out of range"));
    assert_null(pi_actstats_new(1, PI_ACTSTATS_MAX_FF + 1, &err));
    pi_actstats *s = new_stats(2, 4);
    float row[4] = { 1, 2, 3, 4 };
    assert_int_equal(pi_actstats_add(s, 2, row, 1), -1);
    assert_int_equal(pi_actstats_add(s, -1, row, 1), -1);
    assert_int_equal(pi_actstats_add(s, 0, NULL, 1), -1);
    assert_int_equal(pi_actstats_add(s, 0, NULL, 0), 0);
    pi_actstats_summary sm;
    assert_int_equal(pi_actstats_summary_get(s, 5, &sm, &err), -1);
    pi_actstats_free(s);
    pi_actstats_free(NULL);
    pi_actstats_file_free(NULL);
}

/* ---- The YAML file ---- */

static char *write_text(const pi_actstats *s, const pi_actstats_meta *meta, size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    pi_err err = { { 0 } };
    if (pi_actstats_write_yaml(s, meta, f, "mem.yaml", &err))
        fail_msg("%s", err.msg);
    fclose(f);
    return buf;
}

static void test_written_file_reads_back(void **state)
{
    (void)state;
    enum { NL = 3, N = 100 };
    pi_actstats *s = new_stats(NL, N);
    float row[N];
    for (int t = 0; t < 400; t++)
        for (int il = 0; il < NL; il++) {
            random_row(row, N);
            assert_int_equal(pi_actstats_add(s, il, row, 1), 0);
        }
    pi_actstats_meta meta = { "odd \"name\"\n\xc3\xa9.gguf", 0xfedcba9876543210ull, "llama", 512 };
    size_t len;
    char *text = write_text(s, &meta, &len);
    pi_actstats_file f;
    pi_err err = { { 0 } };
    if (pi_actstats_read_yaml(text, len, "mem.yaml", &f, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(f.n_layer, NL);
    assert_int_equal(f.n_ff, N);
    assert_int_equal(f.tokens, 400);
    assert_int_equal(f.ctx, 512);
    assert_true(f.fingerprint == meta.fingerprint);
    assert_string_equal(f.model, meta.model);
    assert_string_equal(f.arch, "llama");
    double want[N];
    for (int il = 0; il < NL; il++)
        for (int lv = 0; lv < PI_ACTSTATS_LEVELS; lv++) {
            pi_actstats_frequency(s, il, lv, want);
            const float *got = pi_actstats_file_freq(&f, il, lv);
            for (int i = 0; i < N; i++)
                assert_near(got[i], want[i], 1e-5 * want[i] + 1e-9);
        }
    pi_actstats_file_free(&f);
    /* Keys the reader needs are all in the text a person sees. */
    assert_non_null(strstr(text, "\nlevels: [0.9, 0.95, 0.99]\n"));
    assert_non_null(strstr(text, "    mass_share_top10: "));
    assert_non_null(strstr(text, "        first_exponent: -24\n"));
    free(text);
    pi_actstats_free(s);
}

static void test_write_errors_are_reported(void **state)
{
    (void)state;
    FILE *f = fopen("/dev/full", "w");
    if (!f)
        skip();
    pi_actstats *s = new_stats(1, 8);
    pi_err err = { { 0 } };
    assert_int_equal(pi_actstats_write_yaml(s, NULL, f, "full.yaml", &err), -1);
    assert_non_null(strstr(err.msg, "full.yaml: "));
    fclose(f);
    pi_actstats_free(s);
}

#define HEAD "format: pi-actstats\nversion: 1\nfingerprint: \"0x00000000000000ab\"\n" \
             "n_layer: 2\nn_ff: 3\ntokens: 4\nextra: {a: [1, {b: 2}]}\nlayers:\n"
#define LAYER(n) "  - layer: " #n "\n    tokens: 4\n    ignored: [x]\n    frequency: " \
                 "{\"0.9\": [0, 0.5, 1], 0.95: [0, 0.5, 1], \"0.99\": [0.25, 1.0e-06, 1]}\n"

static void test_reader_accepts_layers_in_any_order(void **state)
{
    (void)state;
    const char *y = HEAD LAYER(1) LAYER(0);
    pi_actstats_file f;
    pi_err err = { { 0 } };
    if (pi_actstats_read_yaml(y, strlen(y), "s.yaml", &f, &err))
        fail_msg("%s", err.msg);
    assert_true(f.fingerprint == 0xab);
    assert_null(f.model);
    assert_int_equal(f.ctx, -1);
    assert_near(pi_actstats_file_freq(&f, 1, 2)[1], 1e-6, 1e-12);
    assert_near(pi_actstats_file_freq(&f, 0, 0)[2], 1, 0);
    pi_actstats_file_free(&f);
}

/* pi-profile's experts section (expertstats.h): the usage counts are read,
 * the summary numbers skipped. */
#define EXPERTS "experts:\n  n_expert: 3\n  used: 2\n  layers:\n"
#define EXPERT_LAYER(n, usage) "    - layer: " #n "\n      tokens: 4\n      top10_share: 0.5\n" \
                               "      usage: " usage "\n"

static void test_reader_reads_the_experts_section(void **state)
{
    (void)state;
    pi_actstats_file f;
    pi_err err = { { 0 } };
    const char *dense = HEAD LAYER(0) LAYER(1);
    if (pi_actstats_read_yaml(dense, strlen(dense), "s.yaml", &f, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(f.n_expert, 0);
    assert_null(f.usage);
    pi_actstats_file_free(&f);
    const char *y = HEAD LAYER(0) LAYER(1) EXPERTS EXPERT_LAYER(1, "[0, 7, 1125899906842624]")
                    EXPERT_LAYER(0, "[3, 2, 3]");
    if (pi_actstats_read_yaml(y, strlen(y), "s.yaml", &f, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(f.n_expert, 3);
    static const int64_t want[2][3] = { { 3, 2, 3 }, { 0, 7, 1125899906842624 } };
    for (int il = 0; il < 2; il++)
        assert_memory_equal(pi_actstats_file_usage(&f, il), want[il], sizeof want[il]);
    pi_actstats_file_free(&f);
    assert_null(f.usage);
    assert_int_equal(f.n_expert, 0);
}

/* What pi-profile writes for a mixture of experts (the statistics, then
 * the experts section) reads back with the counts it counted. */
static void test_written_experts_section_reads_back(void **state)
{
    (void)state;
    enum { NL = 2, E = 5, K = 2 };
    pi_actstats *s = new_stats(NL, E * 4);
    pi_err err = { { 0 } };
    pi_expertstats *es = pi_expertstats_new(NL, E, K, &err);
    assert_non_null(es);
    float row[E * 4];
    int64_t want[NL][E] = { { 0 } };
    for (int t = 0; t < 50; t++)
        for (int il = 0; il < NL; il++) {
            random_row(row, E * 4);
            assert_int_equal(pi_actstats_add(s, il, row, 1), 0);
            int32_t chosen[K] = { (t * (il + 1)) % E, (t * 3 + 1) % E };
            if (chosen[1] == chosen[0])
                chosen[1] = (chosen[0] + 1) % E;
            assert_int_equal(pi_expertstats_add(es, il, chosen, 1), 0);
            want[il][chosen[0]]++;
            want[il][chosen[1]]++;
        }
    char *buf = NULL;
    size_t len;
    FILE *f = open_memstream(&buf, &len);
    if (pi_actstats_write_yaml(s, NULL, f, "mem.yaml", &err) ||
        pi_expertstats_write_yaml(es, f, "mem.yaml", &err))
        fail_msg("%s", err.msg);
    fclose(f);
    pi_actstats_file rf;
    if (pi_actstats_read_yaml(buf, len, "mem.yaml", &rf, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(rf.n_expert, E);
    for (int il = 0; il < NL; il++)
        assert_memory_equal(pi_actstats_file_usage(&rf, il), want[il], sizeof want[il]);
    pi_actstats_file_free(&rf);
    free(buf);
    pi_expertstats_free(es);
    pi_actstats_free(s);
}

static void test_reader_rejects_bad_experts_sections(void **state)
{
    (void)state;
    const struct { const char *yaml, *want; } cases[] = {
        { HEAD LAYER(0) LAYER(1) EXPERTS EXPERT_LAYER(0, "[1, 2, 3]"),
          "experts: layer 1 is missing" },
        { HEAD LAYER(0) LAYER(1) EXPERTS EXPERT_LAYER(0, "[1, 2]") EXPERT_LAYER(1, "[1, 2, 3]"),
          "experts: layer 0: usage has 2 counts, expected 3" },
        { HEAD LAYER(0) LAYER(1) EXPERTS EXPERT_LAYER(0, "[1, 2, 3, 4]"),
          "usage has 4 counts, expected 3" },
        { HEAD LAYER(0) LAYER(1) EXPERTS EXPERT_LAYER(0, "[1, -2, 3]"),
          "experts: usage: count 2 is not an integer" },
        { HEAD LAYER(0) LAYER(1) EXPERTS EXPERT_LAYER(0, "[1, 2.5, 3]"), "count 2 is not" },
        { HEAD LAYER(0) LAYER(1) EXPERTS EXPERT_LAYER(0, "[1, 2, .inf]"), "count 3 is not" },
        { HEAD LAYER(0) LAYER(1) EXPERTS EXPERT_LAYER(0, "[1, 2, 2251799813685248]"),
          "count 3 is not" },
        { HEAD LAYER(0) LAYER(1) EXPERTS EXPERT_LAYER(0, "[1, x, 3]"), "count 2 is not" },
        { HEAD LAYER(0) LAYER(1) EXPERTS EXPERT_LAYER(0, "[1, 2, 3]") EXPERT_LAYER(0, "[1, 2, 3]"),
          "experts: layer 0 appears twice" },
        { HEAD LAYER(0) LAYER(1) EXPERTS EXPERT_LAYER(2, "[1, 2, 3]"),
          "experts: layer must be an integer from 0 to 1" },
        { HEAD LAYER(0) LAYER(1) EXPERTS "    - layer: 0\n", "experts: layer 0: no usage" },
        { HEAD LAYER(0) LAYER(1) EXPERTS "    - usage: [1, 2, 3]\n",
          "experts: layers item 0: no layer number" },
        { HEAD LAYER(0) LAYER(1) "experts:\n  layers: []\n  n_expert: 3\n",
          "layers must come after n_expert" },
        { HEAD LAYER(0) LAYER(1) "experts:\n  n_expert: 0\n", "n_expert must be an integer" },
        { HEAD LAYER(0) LAYER(1) "experts:\n  n_expert: 3\n", "experts: no layers" },
        { HEAD LAYER(0) LAYER(1) "experts: [1, 2]\n", "expected a mapping of expert" },
        { "format: pi-actstats\nexperts: {n_expert: 2}\n", "experts must come after n_layer" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pi_actstats_file f;
        pi_err err = { { 0 } };
        const char *y = cases[i].yaml;
        assert_int_equal(pi_actstats_read_yaml(y, strlen(y), "s.yaml", &f, &err), -1);
        if (!strstr(err.msg, cases[i].want) || strncmp(err.msg, "s.yaml: ", 8))
            fail_msg("case %zu: got '%s'", i, err.msg);
        assert_null(f.freq);
        assert_null(f.usage);
        pi_actstats_file_free(&f);
    }
}

static void test_reader_rejects_bad_files(void **state)
{
    (void)state;
    const struct { const char *yaml, *want; } cases[] = {
        { "", "empty file" },
        { "\x01\x02 garbage: [", "line" },
        { "just text\n", "expected a mapping" },
        { "format: pi-trace\n", "format is not pi-actstats" },
        { "version: 1\n", "no format" },
        { "format: pi-actstats\nversion: 2\n", "version 2 is not supported" },
        { HEAD LAYER(0), "layer 1 is missing" },
        { HEAD LAYER(0) LAYER(0), "layer 0 appears twice" },
        { HEAD LAYER(0) LAYER(2), "layer must be an integer from 0 to 1" },
        { HEAD "  - layer: 1\n    tokens: 4\n    frequency: {0.9: [0, 1], 0.95: [0, 0, 0], "
               "0.99: [0, 0, 0]}\n" LAYER(0), "layer 1: frequency 0.9 has 2 values, expected 3" },
        { HEAD "  - layer: 1\n    tokens: 4\n    frequency: {0.9: [0, 1, 0, 1], 0.95: [0, 0, 0], "
               "0.99: [0, 0, 0]}\n", "frequency 0.9 has 4 values" },
        { HEAD "  - layer: 1\n    tokens: 4\n    frequency: {0.9: [0, 1.5, 0]}\n",
          "frequency 0.9: value 2 is not a number from 0 to 1" },
        { HEAD "  - layer: 1\n    tokens: 4\n    frequency: {0.9: [0, .nan, 0]}\n",
          "value 2 is not a number" },
        { HEAD "  - layer: 1\n    tokens: 4\n    frequency: {0.9: [0, 1, 0]}\n",
          "layer 1: no frequency 0.95" },
        { HEAD "  - layer: 1\n    tokens: 4\n    frequency: {0.8: [0, 1, 0]}\n",
          "level must be 0.9, 0.95 or 0.99" },
        { HEAD "  - tokens: 4\n", "layers item 0: no layer number" },
        { HEAD "  - layer: 0\n", "layers item 0: no tokens" },
        { HEAD "  - layer: 0.5\n", "layer must be an integer from 0 to 1" },
        { HEAD "  - 7\n", "each layer must be a mapping" },
        { "format: pi-actstats\nx: &a [1]\ny: *a\n", "aliases are not supported" },
        { "format: pi-actstats\nlayers: []\n", "layers must come after n_layer and n_ff" },
        { "format: pi-actstats\nversion: 1\nfingerprint: 0xzz\n", "fingerprint must be" },
        { "format: pi-actstats\nversion: 1\nfingerprint: \"0x00000000000000001\"\n",
          "fingerprint must be" },
        { "format: pi-actstats\nn_ff: 2000000\n", "n_ff must be an integer from 1 to 1048576" },
        { "format: pi-actstats\nn_layer: 2\nn_layer: 3\n", "n_layer given twice" },
        { "format: pi-actstats\nversion: 1\nn_layer: 1\nn_ff: 1\ntokens: 1\nlayers: []\n",
          "no fingerprint" },
        { HEAD LAYER(0) LAYER(1) "---\nformat: pi-actstats\n", "a single YAML document" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pi_actstats_file f;
        pi_err err = { { 0 } };
        const char *y = cases[i].yaml;
        assert_int_equal(pi_actstats_read_yaml(y, strlen(y), "s.yaml", &f, &err), -1);
        if (!strstr(err.msg, cases[i].want) || strncmp(err.msg, "s.yaml: ", 8))
            fail_msg("case %zu: got '%s'", i, err.msg);
        assert_null(f.freq);
        pi_actstats_file_free(&f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dominant_neuron_is_enough_for_090_but_not_099),
        cmocka_unit_test(test_uniform_rows_need_ceil_q_n),
        cmocka_unit_test(test_equal_and_close_values_in_the_crossing_bucket),
        cmocka_unit_test(test_zero_and_nonfinite_values_carry_no_mass),
        cmocka_unit_test(test_firing_frequencies_over_known_rows),
        cmocka_unit_test(test_concentration_of_firings_and_mass),
        cmocka_unit_test(test_magnitude_percentiles_within_a_bin),
        cmocka_unit_test(test_bucket_method_matches_sorting_on_random_rows),
        cmocka_unit_test(test_counts_stay_exact_past_two_million_rows),
        cmocka_unit_test(test_bad_arguments_are_refused),
        cmocka_unit_test(test_written_file_reads_back),
        cmocka_unit_test(test_write_errors_are_reported),
        cmocka_unit_test(test_reader_accepts_layers_in_any_order),
        cmocka_unit_test(test_reader_rejects_bad_files),
        cmocka_unit_test(test_reader_reads_the_experts_section),
        cmocka_unit_test(test_written_experts_section_reads_back),
        cmocka_unit_test(test_reader_rejects_bad_experts_sections),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
