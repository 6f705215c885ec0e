/* Tests of a mixture of experts' GPU placement: the most used experts go
 * whole and the next one in part, experts go by routing probability (k
 * times the share), cheaper layers' experts win at equal usage, plans agree
 * with a plain reference on random inputs, bad usage is refused, the reserve
 * error, and the printed table. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "placement_moe.h"

#define assert_near(got, want, tol) near(got, want, tol, #got, __LINE__)
static void near(double got, double want, double tol, const char *what, int line)
{
    if (!(fabs(got - want) <= tol))
        fail_msg("line %d: %s is %.17g, expected %.17g", line, what, got, want);
}

#define MAXL 4
#define MAXE 16

typedef struct problem {
    uint64_t cost[MAXL];
    float usage[MAXL * MAXE];
    pi_moe_placement_input in;
    pi_placement_params p;
} problem;

static void problem_init(problem *pb, int n_layer, int n_expert, int k, int n_ff_exp,
                         uint64_t cost)
{
    memset(pb, 0, sizeof *pb);
    for (int l = 0; l < n_layer; l++) {
        pb->cost[l] = cost;
        for (int x = 0; x < n_expert; x++)
            pb->usage[l * n_expert + x] = 1.0f / (float)n_expert;
    }
    pb->in = (pi_moe_placement_input){ .n_layer = n_layer, .n_expert = n_expert, .k = k,
                                       .n_ff_exp = n_ff_exp, .neuron_bytes = pb->cost,
                                       .usage = pb->usage, .resident = 1000 };
    pb->p = (pi_placement_params){ .budget = 1000, .ctx = 0, .kv_bytes = 2, .scratch = 0 };
}

static pi_moe_placement plan_ok(const problem *pb)
{
    pi_moe_placement pl;
    pi_err err = { { 0 } };
    if (pi_moe_placement_plan(&pb->in, &pb->p, &pl, &err))
        fail_msg("%s", err.msg);
    return pl;
}

static int n_gpu(const pi_moe_placement *pl, int il, int x)
{
    return pl->units.layers[il * pl->n_expert + x].n_gpu;
}

static void test_most_used_experts_go_whole_then_a_slice(void **state)
{
    problem pb;
    problem_init(&pb, 1, 4, 2, 8, 10);
    const float u[] = { 0.1f, 0.4f, 0.2f, 0.3f };
    memcpy(pb.usage, u, sizeof u);
    pb.p.budget = 1000 + 200; /* two experts of 80 bytes and half of a third */
    pi_moe_placement pl = plan_ok(&pb);
    assert_int_equal(n_gpu(&pl, 0, 1), 8);
    assert_int_equal(n_gpu(&pl, 0, 3), 8);
    assert_int_equal(n_gpu(&pl, 0, 2), 4);
    assert_int_equal(n_gpu(&pl, 0, 0), 0);
    assert_int_equal(pl.layers[0].whole, 2);
    assert_int_equal(pl.layers[0].partial, 1);
    assert_int_equal(pl.layers[0].n_gpu, 20);
    assert_true(pl.layers[0].bytes == 200);
    assert_near(pl.layers[0].share, 0.4 + 0.3 + 0.2 * 0.5, 1e-6);
    assert_near(pl.share, 0.8, 1e-6);
    assert_int_equal(pl.whole, 2);
    assert_int_equal(pl.partial, 1);
    assert_true(pl.units.total == 1200);
    pi_moe_placement_free(&pl);
}

static void test_budget_below_reserve_is_refused(void **state)
{
    problem pb;
    problem_init(&pb, 2, 4, 1, 8, 10);
    pb.in.resident = 3 << 20;
    pb.p.budget = 2 << 20;
    pi_moe_placement pl;
    pi_err err = { { 0 } };
    assert_int_equal(pi_moe_placement_plan(&pb.in, &pb.p, &pl, &err), -1);
    assert_non_null(strstr(err.msg, "budget of 2.0 MiB is below the 3.0 MiB"));
    assert_null(pl.layers);
    assert_null(pl.units.layers);
}

static void test_experts_go_by_routing_probability(void **state)
{
    /* k = 2 of 3 experts: worth 0.4, 1.0 and 0.6; the lower index wins a tie. */
    problem pb;
    problem_init(&pb, 1, 3, 2, 4, 10);
    const float u[] = { 0.2f, 0.5f, 0.3f };
    memcpy(pb.usage, u, sizeof u);
    pb.p.budget = 1000 + 70;
    pi_moe_placement pl = plan_ok(&pb);
    assert_int_equal(n_gpu(&pl, 0, 1), 4);
    assert_int_equal(n_gpu(&pl, 0, 2), 3);
    assert_int_equal(n_gpu(&pl, 0, 0), 0);
    assert_near(pl.share, 0.5 + 0.3 * 0.75, 1e-6);
    pi_moe_placement_free(&pl);
    pb.usage[0] = pb.usage[2] = 0.25f;
    pl = plan_ok(&pb);
    assert_int_equal(n_gpu(&pl, 0, 0), 3);
    assert_int_equal(n_gpu(&pl, 0, 2), 0);
    pi_moe_placement_free(&pl);
}

static void test_cheaper_layer_wins_at_equal_usage(void **state)
{
    problem pb;
    problem_init(&pb, 2, 2, 1, 4, 20);
    pb.cost[1] = 10; /* layer 1's experts cost half as much */
    pb.p.budget = 1000 + 80;
    pi_moe_placement pl = plan_ok(&pb);
    assert_int_equal(pl.layers[1].whole, 2);
    assert_int_equal(pl.layers[0].n_gpu, 0);
    assert_near(pl.layers[1].share, 1.0, 1e-9);
    assert_near(pl.share, 0.5, 1e-9);
    pi_moe_placement_free(&pl);
}

/* The plain reference: units in decreasing value per byte (k * share,
 * capped at 1, over the layer's cost; lower unit first on ties), each taking
 * as many of its neurons as still fit. */
static void reference(const problem *pb, int *out)
{
    const pi_moe_placement_input *in = &pb->in;
    int nu = in->n_layer * in->n_expert, order[MAXL * MAXE];
    double v[MAXL * MAXE];
    for (int u = 0; u < nu; u++) {
        double p = in->k * (double)in->usage[u];
        v[u] = (double)(float)(p > 1 ? 1 : p);
        order[u] = u;
    }
    for (int i = 1; i < nu; i++)
        for (int j = i; j > 0; j--) {
            int a = order[j], b = order[j - 1];
            uint64_t ca = in->neuron_bytes[a / in->n_expert];
            uint64_t cb = in->neuron_bytes[b / in->n_expert];
            if (!(v[a] * (double)cb > v[b] * (double)ca))
                break;
            order[j] = b;
            order[j - 1] = a;
        }
    uint64_t left = pb->p.budget - in->resident;
    for (int i = 0; i < nu; i++) {
        int u = order[i];
        uint64_t c = in->neuron_bytes[u / in->n_expert], take = left / c;
        out[u] = take < (uint64_t)in->n_ff_exp ? (int)take : in->n_ff_exp;
        left -= (uint64_t)out[u] * c;
    }
}

static uint32_t rnd(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(*s >> 33);
}

static void test_plans_match_the_reference_on_random_inputs(void **state)
{
    uint64_t seed = 12345;
    for (int trial = 0; trial < 200; trial++) {
        problem pb;
        int nl = 1 + (int)(rnd(&seed) % MAXL), ne = 1 + (int)(rnd(&seed) % MAXE);
        int k = 1 + (int)(rnd(&seed) % (uint32_t)ne), nf = 1 + (int)(rnd(&seed) % 12);
        problem_init(&pb, nl, ne, k, nf, 1);
        for (int l = 0; l < nl; l++) {
            pb.cost[l] = 1 + rnd(&seed) % 50;
            double sum = 0;
            float w[MAXE];
            for (int x = 0; x < ne; x++)
                sum += w[x] = (float)(rnd(&seed) % 8); /* ties on purpose */
            for (int x = 0; x < ne; x++)
                pb.usage[l * ne + x] = sum > 0 ? (float)(w[x] / sum) : 0.0f;
        }
        pb.p.budget = 1000 + rnd(&seed) % 4000;
        pi_moe_placement pl = plan_ok(&pb);
        int want[MAXL * MAXE];
        reference(&pb, want);
        uint64_t bytes = 0;
        for (int u = 0; u < nl * ne; u++) {
            if (pl.units.layers[u].n_gpu != want[u])
                fail_msg("trial %d: unit %d: %d neurons on the GPU, the reference %d", trial,
                         u, pl.units.layers[u].n_gpu, want[u]);
            bytes += (uint64_t)want[u] * pb.cost[u / ne];
        }
        assert_true(pl.units.ffn_bytes == bytes);
        assert_true(pl.units.total <= pb.p.budget);
        pi_moe_placement_free(&pl);
    }
}

static void test_bad_usage_is_refused(void **state)
{
    problem pb;
    pi_moe_placement pl;
    pi_err err = { { 0 } };
    problem_init(&pb, 2, 4, 1, 8, 10);
    pb.usage[5] = NAN;
    assert_int_equal(pi_moe_placement_plan(&pb.in, &pb.p, &pl, &err), -1);
    assert_non_null(strstr(err.msg, "layer 1: expert 1: usage"));
    problem_init(&pb, 2, 4, 1, 8, 10);
    pb.usage[0] = 0.5f; /* layer 0 sums to 1.25 */
    assert_int_equal(pi_moe_placement_plan(&pb.in, &pb.p, &pl, &err), -1);
    assert_non_null(strstr(err.msg, "layer 0: expert usage sums to 1.25"));
    problem_init(&pb, 2, 4, 5, 8, 10); /* k > E */
    assert_int_equal(pi_moe_placement_plan(&pb.in, &pb.p, &pl, &err), -1);
    problem_init(&pb, 2, 4, 1, 8, 0); /* a neuron of no bytes */
    assert_int_equal(pi_moe_placement_plan(&pb.in, &pb.p, &pl, &err), -1);
    assert_non_null(strstr(err.msg, "neuron cost of 0 bytes"));
    /* A layer never measured (all zero) is accepted and worth nothing. */
    problem_init(&pb, 2, 4, 1, 8, 10);
    memset(pb.usage, 0, 4 * sizeof(float));
    pb.p.budget = 1000 + 80;
    pl = plan_ok(&pb);
    assert_int_equal(pl.layers[1].whole, 1);
    assert_near(pl.layers[0].share, 0, 0);
    pi_moe_placement_free(&pl);
}

static void test_plan_prints_as_a_table(void **state)
{
    problem pb;
    problem_init(&pb, 2, 4, 2, 8, 1 << 16);
    pb.in.resident = 100 << 20;
    pb.p.budget = (100 << 20) + (3 << 20); /* six of the eight experts */
    pi_moe_placement pl = plan_ok(&pb);
    char buf[4096] = { 0 };
    FILE *f = fmemopen(buf, sizeof buf - 1, "w");
    assert_int_equal(pi_moe_placement_print(&pl, f), 0);
    fclose(f);
    assert_non_null(strstr(buf, "GPU budget 103.0 MiB; always resident 100.0 MiB"));
    assert_non_null(strstr(buf, "    0      4/4      "));
    assert_non_null(strstr(buf, "    1      2/4      "));
    assert_non_null(strstr(buf, "  all      6/8      "));
    assert_non_null(strstr(buf, "expected share of routed compute on GPU 75.0%"));
    pi_moe_placement_free(&pl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_most_used_experts_go_whole_then_a_slice),
        cmocka_unit_test(test_budget_below_reserve_is_refused),
        cmocka_unit_test(test_experts_go_by_routing_probability),
        cmocka_unit_test(test_cheaper_layer_wins_at_equal_usage),
        cmocka_unit_test(test_plans_match_the_reference_on_random_inputs),
        cmocka_unit_test(test_bad_usage_is_refused),
        cmocka_unit_test(test_plan_prints_as_a_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
