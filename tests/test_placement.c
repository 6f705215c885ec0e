/* Tests of GPU placement: the reserve and its error, the edges of the
 * budget, which layers fill first, prefixes against a global cut, ratio
 * ordering with differing costs, agreement with a plain reference, exact
 * byte accounting, determinism, the printed table, the size parser, and the
 * reserve of a hand-built model. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "placement.h"

/* ---- Helpers ---- */

/* This cmocka has no assert_double_equal. */
#define assert_near(got, want, tol) near(got, want, tol, #got, __LINE__)
static void near(double got, double want, double tol, const char *what, int line)
{
    if (!(fabs(got - want) <= tol))
        fail_msg("line %d: %s is %.17g, expected %.17g", line, what, got, want);
}

#define MAXL 8

/* A placement problem with its own storage: n_layer layers of n_ff neurons. */
typedef struct problem {
    int n_layer, n_ff;
    uint64_t cost[MAXL];
    float *f[MAXL];
    pi_placement_input in;
    pi_placement_params p;
} problem;

static void problem_init(problem *pb, int n_layer, int n_ff, uint64_t cost)
{
    memset(pb, 0, sizeof *pb);
    pb->n_layer = n_layer;
    pb->n_ff = n_ff;
    for (int l = 0; l < n_layer; l++) {
        pb->cost[l] = cost;
        pb->f[l] = calloc((size_t)n_ff, sizeof(float));
    }
    pb->in = (pi_placement_input){ .n_layer = n_layer, .n_ff = n_ff,
                                   .neuron_bytes = pb->cost,
                                   .freq = (const float *const *)pb->f,
                                   .resident = 1000, .kv_elems_per_token = 0 };
    pb->p = (pi_placement_params){ .budget = 1000, .ctx = 0, .kv_bytes = 2, .scratch = 0 };
}

static void problem_free(problem *pb)
{
    for (int l = 0; l < pb->n_layer; l++)
        free(pb->f[l]);
}

static pi_placement plan_ok(const problem *pb)
{
    pi_placement pl;
    pi_err err = { { 0 } };
    if (pi_placement_plan(&pb->in, &pb->p, &pl, &err))
        fail_msg("%s", err.msg);
    return pl;
}

/* Deterministic pseudo-random numbers (64-bit LCG, top bits). */
static uint32_t rnd(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(*s >> 33);
}

/* Byte accounting, shares and maximality that every plan must satisfy. */
static void check_invariants(const problem *pb, const pi_placement *pl)
{
    uint64_t ffn = 0, all = 0;
    int64_t n = 0;
    double taken_all = 0, sum_all = 0;
    assert_int_equal(pl->n_layer, pb->n_layer);
    assert_int_equal(pl->n_ff, pb->n_ff);
    for (int l = 0; l < pb->n_layer; l++) {
        const pi_placement_layer *L = &pl->layers[l];
        assert_true(L->n_gpu >= 0 && L->n_gpu <= pb->n_ff);
        assert_true(L->bytes == (uint64_t)L->n_gpu * pb->cost[l]);
        ffn += L->bytes;
        all += (uint64_t)pb->n_ff * pb->cost[l];
        n += L->n_gpu;
        /* The share is that of the n_gpu hottest neurons. */
        float *s = malloc((size_t)pb->n_ff * sizeof *s);
        memcpy(s, pb->f[l], (size_t)pb->n_ff * sizeof *s);
        double sum = 0, taken = 0;
        for (int k = 0; k < L->n_gpu; k++) { /* selection of the k-th hottest */
            int best = k;
            for (int j = k + 1; j < pb->n_ff; j++)
                if (s[j] > s[best])
                    best = j;
            float t = s[k];
            s[k] = s[best];
            s[best] = t;
            taken += s[k];
        }
        for (int j = 0; j < pb->n_ff; j++)
            sum += pb->f[l][j];
        assert_near(L->share, sum > 0 ? taken / sum : 0, 1e-9);
        taken_all += taken;
        sum_all += sum;
        free(s);
    }
    assert_true(pl->ffn_bytes == ffn);
    assert_true(pl->ffn_bytes_all == all);
    assert_true(pl->n_gpu == n);
    assert_true(pl->total == pl->reserved + ffn);
    assert_true(pl->total <= pb->p.budget);
    assert_near(pl->share, sum_all > 0 ? taken_all / sum_all : 0, 1e-9);
    /* Greedy leaves no room for the next neuron of any unfinished layer. */
    for (int l = 0; l < pb->n_layer; l++)
        if (pl->layers[l].n_gpu < pb->n_ff)
            assert_true(pb->p.budget - pl->total < pb->cost[l]);
}

/* The plain reference: repeatedly scan every layer for the best next neuron
 * (highest frequency per byte, lower layer on ties) among those that fit. */
static void reference(const problem *pb, int *n_gpu)
{
    float *s[MAXL];
    for (int l = 0; l < pb->n_layer; l++) {
        s[l] = malloc((size_t)pb->n_ff * sizeof(float));
        memcpy(s[l], pb->f[l], (size_t)pb->n_ff * sizeof(float));
        for (int i = 1; i < pb->n_ff; i++) /* insertion sort, descending */
            for (int j = i; j > 0 && s[l][j] > s[l][j - 1]; j--) {
                float t = s[l][j];
                s[l][j] = s[l][j - 1];
                s[l][j - 1] = t;
            }
        n_gpu[l] = 0;
    }
    uint64_t left = pb->p.budget - pb->in.resident;
    for (;;) {
        int best = -1;
        for (int l = 0; l < pb->n_layer; l++) {
            if (n_gpu[l] == pb->n_ff || pb->cost[l] > left)
                continue;
            if (best < 0 || (double)s[l][n_gpu[l]] * (double)pb->cost[best] >
                                (double)s[best][n_gpu[best]] * (double)pb->cost[l])
                best = l;
        }
        if (best < 0)
            break;
        left -= pb->cost[best];
        n_gpu[best]++;
    }
    for (int l = 0; l < pb->n_layer; l++)
        free(s[l]);
}

/* ---- The reserve ---- */

static void test_budget_below_reserve_is_refused(void **state)
{
    problem pb;
    problem_init(&pb, 2, 4, 100);
    pb.in.resident = 512 << 10;
    pb.in.kv_elems_per_token = 1024;
    pb.p = (pi_placement_params){ .budget = 1 << 20, .ctx = 256, .kv_bytes = 2,
                                  .scratch = 1 << 20 };
    pi_placement pl;
    pi_err err = { { 0 } };
    assert_int_equal(pi_placement_plan(&pb.in, &pb.p, &pl, &err), -1);
    assert_string_equal(err.msg, "budget of 1.0 MiB is below the 2.0 MiB the always-resident "
                                 "tensors need (attention, embeddings, KV cache for ctx 256, "
                                 "scratch)");
    assert_null(pl.layers);
    pi_placement_free(&pl);

    /* One byte short of the reserve is refused too. */
    pb.p.budget = (2 << 20) - 1;
    assert_int_equal(pi_placement_plan(&pb.in, &pb.p, &pl, &err), -1);
    assert_non_null(strstr(err.msg, "is below the 2.0 MiB"));
    problem_free(&pb);
}

static void test_budget_of_exactly_the_reserve_places_no_neuron(void **state)
{
    problem pb;
    problem_init(&pb, 3, 5, 100);
    for (int l = 0; l < 3; l++)
        for (int i = 0; i < 5; i++)
            pb.f[l][i] = 0.5f;
    pb.in.resident = 7000;
    pb.in.kv_elems_per_token = 3 * 2 * 4;
    pb.p = (pi_placement_params){ .ctx = 10, .kv_bytes = 2, .scratch = 333 };
    uint64_t reserved = 7000 + 240 * 2 + 333;
    for (uint64_t extra = 0; extra < 100; extra += 99) { /* 0 and cost - 1 */
        pb.p.budget = reserved + extra;
        pi_placement pl = plan_ok(&pb);
        assert_true(pl.resident == 7000 && pl.kv == 480 && pl.scratch == 333);
        assert_true(pl.reserved == reserved && pl.total == reserved);
        assert_true(pl.ffn_bytes == 0 && pl.n_gpu == 0);
        for (int l = 0; l < 3; l++)
            assert_int_equal(pl.layers[l].n_gpu, 0);
        assert_near(pl.share, 0, 0);
        check_invariants(&pb, &pl);
        pi_placement_free(&pl);
    }
    problem_free(&pb);
}

static void test_huge_budget_places_every_neuron(void **state)
{
    problem pb;
    problem_init(&pb, 3, 6, 12345);
    for (int l = 0; l < 3; l++)
        for (int i = 0; i < 6; i++)
            pb.f[l][i] = (float)((l + i) % 4) / 4.0f; /* some zeros */
    pb.p.budget = UINT64_MAX;
    pi_placement pl = plan_ok(&pb);
    for (int l = 0; l < 3; l++) {
        assert_int_equal(pl.layers[l].n_gpu, 6);
        assert_near(pl.layers[l].share, 1, 0);
    }
    assert_near(pl.share, 1, 0);
    assert_true(pl.ffn_bytes == pl.ffn_bytes_all && pl.ffn_bytes == 3 * 6 * 12345);
    check_invariants(&pb, &pl);
    pi_placement_free(&pl);

    /* A budget of exactly everything is enough; one byte less is not. */
    pb.p.budget = 1000 + 3 * 6 * 12345;
    pl = plan_ok(&pb);
    assert_true(pl.n_gpu == 18 && pl.total == pb.p.budget);
    pi_placement_free(&pl);
    pb.p.budget--;
    pl = plan_ok(&pb);
    assert_true(pl.n_gpu == 17);
    check_invariants(&pb, &pl);
    pi_placement_free(&pl);
    problem_free(&pb);
}

static void test_all_zero_frequencies_give_share_zero(void **state)
{
    problem pb;
    problem_init(&pb, 2, 3, 10);
    pb.p.budget = 1000 + 40;
    pi_placement pl = plan_ok(&pb);
    /* Zero-value neurons still fill free room, lower layer first. */
    assert_int_equal(pl.layers[0].n_gpu, 3);
    assert_int_equal(pl.layers[1].n_gpu, 1);
    assert_near(pl.layers[0].share, 0, 0);
    assert_near(pl.share, 0, 0);
    pi_placement_free(&pl);
    problem_free(&pb);
}

/* ---- Which neurons ---- */

static void test_hotter_layer_fills_first(void **state)
{
    problem pb;
    problem_init(&pb, 2, 4, 100);
    const float l0[4] = { 0.1f, 0.3f, 0.2f, 0.05f }, l1[4] = { 0.5f, 0.9f, 0.4f, 0.6f };
    memcpy(pb.f[0], l0, sizeof l0);
    memcpy(pb.f[1], l1, sizeof l1);
    pb.p.budget = 1000 + 3 * 100 + 50;
    pi_placement pl = plan_ok(&pb);
    assert_int_equal(pl.layers[0].n_gpu, 0);
    assert_int_equal(pl.layers[1].n_gpu, 3);
    assert_near(pl.layers[1].share, (0.9 + 0.6 + 0.5) / 2.4, 1e-6);
    check_invariants(&pb, &pl);
    pi_placement_free(&pl);

    pb.p.budget = 1000 + 6 * 100;
    pl = plan_ok(&pb);
    assert_int_equal(pl.layers[0].n_gpu, 2);
    assert_int_equal(pl.layers[1].n_gpu, 4);
    assert_near(pl.layers[0].share, 0.5 / 0.65, 1e-6);
    assert_near(pl.share, (2.4 + 0.5) / (2.4 + 0.65), 1e-6);
    check_invariants(&pb, &pl);
    pi_placement_free(&pl);
    problem_free(&pb);
}

static void test_prefixes_equal_counts_above_the_global_cut(void **state)
{
    enum { L = 4, F = 50, N = L * F };
    problem pb;
    problem_init(&pb, L, F, 64);
    /* Distinct frequencies k / N, shuffled over layers and positions. */
    int perm[N];
    uint64_t seed = 42;
    for (int k = 0; k < N; k++)
        perm[k] = k;
    for (int k = N - 1; k > 0; k--) {
        int j = (int)(rnd(&seed) % (uint32_t)(k + 1)), t = perm[k];
        perm[k] = perm[j];
        perm[j] = t;
    }
    for (int k = 0; k < N; k++)
        pb.f[k / F][k % F] = (float)(perm[k] + 1) / N;
    for (int taken = 0; taken <= N; taken += 7) {
        pb.p.budget = 1000 + (uint64_t)taken * 64 + 63;
        pi_placement pl = plan_ok(&pb);
        /* The taken-th hottest neuron has frequency (N - taken + 1) / N. */
        float cut = (float)(N - taken + 1) / N;
        for (int l = 0; l < L; l++) {
            int above = 0;
            for (int i = 0; i < F; i++)
                above += pb.f[l][i] >= cut;
            assert_int_equal(pl.layers[l].n_gpu, above);
        }
        assert_true(pl.n_gpu == taken);
        check_invariants(&pb, &pl);
        pi_placement_free(&pl);
    }
    problem_free(&pb);
}

static void test_differing_costs_order_by_frequency_per_byte(void **state)
{
    problem pb;
    problem_init(&pb, 2, 8, 100);
    pb.cost[1] = 10;
    for (int i = 0; i < 8; i++) {
        pb.f[0][i] = 0.5f; /* 0.005 per byte */
        pb.f[1][i] = 0.1f; /* 0.01 per byte: cheaper layer wins though colder */
    }
    pb.p.budget = 1000 + 45;
    pi_placement pl = plan_ok(&pb);
    assert_int_equal(pl.layers[0].n_gpu, 0);
    assert_int_equal(pl.layers[1].n_gpu, 4);
    check_invariants(&pb, &pl);
    pi_placement_free(&pl);

    /* A better-ratio neuron that no longer fits leaves room for cheaper ones
     * of another layer. */
    for (int i = 0; i < 8; i++) {
        pb.f[0][i] = 0.9f;  /* 0.009 per byte */
        pb.f[1][i] = 0.05f; /* 0.005 per byte */
    }
    pb.p.budget = 1000 + 150;
    pl = plan_ok(&pb);
    assert_int_equal(pl.layers[0].n_gpu, 1);
    assert_int_equal(pl.layers[1].n_gpu, 5);
    assert_true(pl.total == pb.p.budget);
    check_invariants(&pb, &pl);
    pi_placement_free(&pl);
    problem_free(&pb);
}

static void test_plans_match_the_reference_on_random_inputs(void **state)
{
    uint64_t seed = 7;
    for (int trial = 0; trial < 300; trial++) {
        int n_layer = 1 + (int)(rnd(&seed) % MAXL), n_ff = 1 + (int)(rnd(&seed) % 40);
        problem pb;
        problem_init(&pb, n_layer, n_ff, 1);
        uint64_t all = 0;
        for (int l = 0; l < n_layer; l++) {
            /* Few distinct costs and frequencies, so that ties are common. */
            pb.cost[l] = 8 * (1 + rnd(&seed) % 4);
            all += pb.cost[l] * (uint64_t)n_ff;
            for (int i = 0; i < n_ff; i++)
                pb.f[l][i] = (float)(rnd(&seed) % 9) / 8.0f;
        }
        pb.p.budget = 1000 + rnd(&seed) % (all + 50);
        pi_placement pl = plan_ok(&pb);
        int want[MAXL];
        reference(&pb, want);
        for (int l = 0; l < n_layer; l++)
            if (pl.layers[l].n_gpu != want[l])
                fail_msg("trial %d: layer %d: %d neurons, reference %d", trial, l,
                         pl.layers[l].n_gpu, want[l]);
        check_invariants(&pb, &pl);
        pi_placement_free(&pl);
        problem_free(&pb);
    }
}

static void test_ties_go_to_the_lower_layer(void **state)
{
    problem pb;
    problem_init(&pb, 3, 2, 100);
    for (int l = 0; l < 3; l++)
        pb.f[l][0] = pb.f[l][1] = 0.25f;
    pb.p.budget = 1000 + 3 * 100;
    pi_placement pl = plan_ok(&pb);
    assert_int_equal(pl.layers[0].n_gpu, 2);
    assert_int_equal(pl.layers[1].n_gpu, 1);
    assert_int_equal(pl.layers[2].n_gpu, 0);
    pi_placement_free(&pl);
    problem_free(&pb);
}

static void test_plan_is_a_pure_function_of_its_inputs(void **state)
{
    enum { L = 5, F = 64 };
    problem pb;
    problem_init(&pb, L, F, 48);
    uint64_t seed = 99;
    for (int l = 0; l < L; l++)
        for (int i = 0; i < F; i++)
            pb.f[l][i] = (float)(rnd(&seed) % 5) / 4.0f;
    pb.cost[2] = 96;
    pb.p.budget = 1000 + 48 * 100 + 17;
    pi_placement a = plan_ok(&pb), b = plan_ok(&pb);
    /* Neurons in another order within each layer: the same plan. */
    for (int l = 0; l < L; l++)
        for (int i = 0; i < F / 2; i++) {
            float t = pb.f[l][i];
            pb.f[l][i] = pb.f[l][F - 1 - i];
            pb.f[l][F - 1 - i] = t;
        }
    pi_placement c = plan_ok(&pb);
    for (int l = 0; l < L; l++) {
        assert_int_equal(a.layers[l].n_gpu, b.layers[l].n_gpu);
        assert_int_equal(a.layers[l].n_gpu, c.layers[l].n_gpu);
        assert_true(a.layers[l].bytes == c.layers[l].bytes);
        assert_true(a.layers[l].share == b.layers[l].share);
    }
    assert_true(a.total == b.total && a.total == c.total && a.share == b.share);
    check_invariants(&pb, &c);
    pi_placement_free(&a);
    pi_placement_free(&b);
    pi_placement_free(&c);
    problem_free(&pb);
}

static void test_bad_input_is_refused(void **state)
{
    problem pb;
    problem_init(&pb, 2, 3, 10);
    pb.p.budget = UINT64_MAX;
    pi_placement pl;
    pi_err err = { { 0 } };

    pb.f[1][2] = NAN;
    assert_int_equal(pi_placement_plan(&pb.in, &pb.p, &pl, &err), -1);
    assert_non_null(strstr(err.msg, "layer 1: neuron 2"));
    pb.f[1][2] = 1.5f;
    assert_int_equal(pi_placement_plan(&pb.in, &pb.p, &pl, &err), -1);
    pb.f[1][2] = -0.1f;
    assert_int_equal(pi_placement_plan(&pb.in, &pb.p, &pl, &err), -1);
    pb.f[1][2] = 0;

    pb.cost[0] = 0;
    assert_int_equal(pi_placement_plan(&pb.in, &pb.p, &pl, &err), -1);
    pb.cost[0] = PI_PLACEMENT_MAX_NEURON_BYTES + 1;
    assert_int_equal(pi_placement_plan(&pb.in, &pb.p, &pl, &err), -1);
    pb.cost[0] = 10;

    pb.p.kv_bytes = 0;
    assert_int_equal(pi_placement_plan(&pb.in, &pb.p, &pl, &err), -1);
    pb.p.kv_bytes = 2;
    pb.p.ctx = -1;
    assert_int_equal(pi_placement_plan(&pb.in, &pb.p, &pl, &err), -1);
    pb.p.ctx = 0;

    /* A KV cache that overflows 64 bits. */
    pb.in.kv_elems_per_token = UINT64_MAX / 2;
    pb.p.ctx = 3;
    assert_int_equal(pi_placement_plan(&pb.in, &pb.p, &pl, &err), -1);
    assert_non_null(strstr(err.msg, "overflow"));
    pb.in.kv_elems_per_token = 0;

    pb.in.n_layer = 0;
    assert_int_equal(pi_placement_plan(&pb.in, &pb.p, &pl, &err), -1);
    pb.in.n_layer = 2;
    assert_int_equal(pi_placement_plan(NULL, &pb.p, &pl, &err), -1);
    assert_int_equal(pi_placement_plan(&pb.in, &pb.p, NULL, &err), -1);

    pl = plan_ok(&pb);
    pi_placement_free(&pl);
    pi_placement_free(NULL);
    problem_free(&pb);
}

/* ---- The printed plan ---- */

static void test_plan_prints_as_a_table(void **state)
{
    problem pb;
    problem_init(&pb, 2, 4, 1 << 20);
    const float l0[4] = { 0.1f, 0.3f, 0.2f, 0.05f }, l1[4] = { 0.5f, 0.9f, 0.4f, 0.6f };
    memcpy(pb.f[0], l0, sizeof l0);
    memcpy(pb.f[1], l1, sizeof l1);
    pb.in.resident = 3 << 20;
    pb.in.kv_elems_per_token = 1024;
    pb.p = (pi_placement_params){ .budget = 10 << 20, .ctx = 512, .kv_bytes = 2,
                                  .scratch = 1 << 20 };
    pi_placement pl = plan_ok(&pb);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    assert_int_equal(pi_placement_print(&pl, f), 0);
    fclose(f);
    assert_non_null(strstr(text, "GPU budget 10.0 MiB; always resident 5.0 MiB"));
    assert_non_null(strstr(text, "KV cache (ctx 512, 2 B/elem)"));
    assert_non_null(strstr(text, "    0        1/4               1.0   46.2%\n"));
    assert_non_null(strstr(text, "    1        4/4               4.0  100.0%\n"));
    assert_non_null(strstr(text, "  all        5/8               5.0   88.5%\n"));
    assert_non_null(strstr(text, "GPU total 10.0 of 10.0 MiB"));
    free(text);
    pi_placement_free(&pl);
    problem_free(&pb);
}

/* ---- Sizes ---- */

static void test_sizes_parse(void **state)
{
    static const struct {
        const char *s;
        uint64_t v;
    } good[] = {
        { "0", 0 },
        { "4096", 4096 },
        { "100B", 100 },
        { "6G", 6ULL << 30 },
        { "6g", 6ULL << 30 },
        { "512M", 512ULL << 20 },
        { "1.5GiB", 3ULL << 29 },
        { "800MB", 800ULL << 20 },
        { "0.5k", 512 },
        { "2T", 2ULL << 40 },
        { "1.0000001G", 1ULL << 30 },
        { "0.1K", 102 },
        { "0G", 0 },
        { "16777215T", 16777215ULL << 40 },
        { "18446744073709551615", UINT64_MAX },
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        uint64_t v = 1;
        if (pi_parse_size(good[i].s, &v) || v != good[i].v)
            fail_msg("'%s' gave %llu, expected %llu", good[i].s, (unsigned long long)v,
                     (unsigned long long)good[i].v);
    }
    static const char *const bad[] = {
        "",      "G",      "-1G",      "+1G",  " 6G",       "6G ",   "6 G",
        "1.5",   ".5G",    "5.G",      "6X",   "6GB2",      "6GiBB", "6Gi",
        "1e9",   "0x10",   "1,5G",     "inf",  "16777216T", "18446744073709551616",
        "6KG",   "1..5G",  "nan",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v = 7;
        if (pi_parse_size(bad[i], &v) == 0)
            fail_msg("'%s' was accepted as %llu", bad[i], (unsigned long long)v);
        assert_true(v == 7);
    }
    uint64_t v;
    assert_int_equal(pi_parse_size(NULL, &v), -1);
}

/* ---- From a model ---- */

static void set_w(pi_weight *w, pi_type t, int64_t ne0, int64_t ne1)
{
    static const char dummy[1];
    *w = (pi_weight){ .data = dummy, .type = t, .ne0 = ne0, .ne1 = ne1,
                      .row_bytes = pi_row_size(t, ne0), .name = "w" };
}

static void test_model_reserve_and_costs(void **state)
{
    enum { NL = 2, D = 64, FF = 128, V = 100, H = 4, HKV = 2, HD = 16 };
    static const char emb[1], out[1];
    pi_layer layers[NL];
    memset(layers, 0, sizeof layers);
    pi_model m = { .hp = { .n_layer = NL, .n_embd = D, .n_ff = FF, .n_head = H,
                           .n_head_kv = HKV, .head_dim = HD, .n_vocab = V },
                   .layers = layers };
    set_w(&m.tok_embd, PI_TYPE_Q8_0, D, V);
    m.tok_embd.data = emb;
    set_w(&m.output_norm, PI_TYPE_F32, D, 1);
    m.output = m.tok_embd; /* tied */
    uint64_t want = 34 * 2 * V + 4 * D;
    for (int l = 0; l < NL; l++) {
        pi_layer *L = &layers[l];
        set_w(&L->attn_norm, PI_TYPE_F32, D, 1);
        set_w(&L->ffn_norm, PI_TYPE_F32, D, 1);
        set_w(&L->wq, PI_TYPE_Q4_0, D, H * HD);
        set_w(&L->wk, PI_TYPE_Q4_0, D, HKV * HD);
        set_w(&L->wv, PI_TYPE_Q4_0, D, HKV * HD);
        set_w(&L->wo, PI_TYPE_Q4_0, H * HD, D);
        set_w(&L->bq, PI_TYPE_F32, H * HD, 1); /* qwen2-style biases */
        set_w(&L->gate, PI_TYPE_Q4_0, D, FF);
        set_w(&L->up, PI_TYPE_Q4_0, D, FF);
        set_w(&L->down, PI_TYPE_Q8_0, FF, D); /* as in the file: rows of n_ff */
        want += 2 * 4 * D + 18 * 2 * (H * HD + 2 * HKV * HD + D) + 4 * H * HD;
    }
    assert_true(pi_placement_resident_bytes(&m) == want);

    /* Untied output counts on its own. */
    set_w(&m.output, PI_TYPE_F16, D, V);
    m.output.data = out;
    assert_true(pi_placement_resident_bytes(&m) == want + 2 * D * V);

    /* gate and up rows are 2 Q4_0 blocks (36 B); down as Q8_0 rows of n_embd
     * 2 blocks (68 B) whether in the file's layout or neuron-major. */
    uint64_t cost[NL];
    pi_err err = { { 0 } };
    assert_int_equal(pi_placement_neuron_bytes(&m, cost, &err), 0);
    assert_true(cost[0] == 36 + 36 + 68 && cost[1] == 140);
    set_w(&layers[1].down, PI_TYPE_F16, D, FF); /* neuron-major, repacked */
    layers[1].down_t = true;
    assert_int_equal(pi_placement_neuron_bytes(&m, cost, &err), 0);
    assert_true(cost[1] == 36 + 36 + 2 * D);

    float f0[FF] = { 0 }, f1[FF] = { 0 };
    f1[5] = 1;
    const float *freq[NL] = { f0, f1 };
    pi_placement_input in;
    assert_int_equal(pi_placement_input_from_model(&m, freq, cost, &in, &err), 0);
    assert_true(in.n_layer == NL && in.n_ff == FF && in.neuron_bytes == cost);
    assert_true(in.resident == want + 2 * D * V);
    assert_true(in.kv_elems_per_token == (uint64_t)NL * 2 * HKV * HD);
    pi_placement_params p = { .budget = in.resident + 128 * 2 * 64 * 2 + 200, .ctx = 128,
                              .kv_bytes = PI_PLACEMENT_KV_BYTES, .scratch = 0 };
    pi_placement pl;
    assert_int_equal(pi_placement_plan(&in, &p, &pl, &err), 0);
    assert_true(pl.kv == 128 * 2 * 64 * 2);
    assert_int_equal(pl.layers[1].n_gpu, 1);
    assert_int_equal(pl.layers[0].n_gpu, 0);
    assert_near(pl.share, 1, 0);
    pi_placement_free(&pl);

    /* A K-quant down cannot hold rows of 64 elements. */
    set_w(&layers[0].down, PI_TYPE_Q4_K, FF * 2, D);
    assert_int_equal(pi_placement_neuron_bytes(&m, cost, &err), -1);
    assert_string_equal(err.msg, "layer 0: ffn_down type Q4_K cannot hold rows of 64 elements");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_budget_below_reserve_is_refused),
        cmocka_unit_test(test_budget_of_exactly_the_reserve_places_no_neuron),
        cmocka_unit_test(test_huge_budget_places_every_neuron),
        cmocka_unit_test(test_all_zero_frequencies_give_share_zero),
        cmocka_unit_test(test_hotter_layer_fills_first),
        cmocka_unit_test(test_prefixes_equal_counts_above_the_global_cut),
        cmocka_unit_test(test_differing_costs_order_by_frequency_per_byte),
        cmocka_unit_test(test_plans_match_the_reference_on_random_inputs),
        cmocka_unit_test(test_ties_go_to_the_lower_layer),
        cmocka_unit_test(test_plan_is_a_pure_function_of_its_inputs),
        cmocka_unit_test(test_bad_input_is_refused),
        cmocka_unit_test(test_plan_prints_as_a_table),
        cmocka_unit_test(test_sizes_parse),
        cmocka_unit_test(test_model_reserve_and_costs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
