/*
 * Tests of the thread pool: every chunk of every loop runs exactly once, with
 * that loop's function and argument, and the loop returns only after all of
 * them, across many short loops of changing sizes (where a worker still
 * holding the previous loop's ticket could once claim a chunk of the next).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "threadpool.h"

#define MAX_CHUNKS 96

typedef struct loop {
    int id;
    _Atomic int runs[MAX_CHUNKS];
    _Atomic int wrong; /* chunks run with another loop's argument */
} loop;

static _Atomic int current;

static void count_chunk(void *arg, int64_t k, int ith)
{
    loop *l = arg;
    if (l->id != atomic_load(&current) || k < 0 || k >= MAX_CHUNKS)
        atomic_fetch_add(&l->wrong, 1);
    else
        atomic_fetch_add(&l->runs[k], 1);
}

static void other_fn(void *arg, int64_t k, int ith)
{
    loop *l = arg;
    atomic_fetch_add(&l->wrong, 1000); /* never the function of the loop running */
}

static void every_chunk_once(int threads, int loops)
{
    pi_err err;
    pi_pool *p = pi_pool_new(threads, &err);
    assert_non_null(p);
    loop *l = malloc(sizeof *l);
    assert_non_null(l);
    uint64_t s = 12345;
    for (int i = 0; i < loops; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        /* sizes that grow and shrink: a larger loop after a smaller one is
         * what let a stale ticket through */
        int n = i % 2 ? 2 + (int)(s >> 60) : 32 + (int)(s >> 59) % 64;
        l->id = i;
        atomic_store(&current, i);
        for (int k = 0; k < MAX_CHUNKS; k++)
            atomic_store(&l->runs[k], 0);
        atomic_store(&l->wrong, 0);
        pi_pool_for(p, n, i % 97 == 96 ? other_fn : count_chunk, l);
        if (i % 97 == 96) {
            assert_int_equal(atomic_load(&l->wrong), 1000 * n);
            continue;
        }
        for (int k = 0; k < MAX_CHUNKS; k++)
            if (atomic_load(&l->runs[k]) != (k < n))
                fail_msg("loop %d of %d chunks: chunk %d ran %d times", i, n, k,
                         atomic_load(&l->runs[k]));
        assert_int_equal(atomic_load(&l->wrong), 0);
    }
    free(l);
    pi_pool_free(p);
}

static void test_two_threads_many_short_loops(void **state) { every_chunk_once(2, 200000); }
static void test_four_threads_many_short_loops(void **state) { every_chunk_once(4, 100000); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_threads_many_short_loops),
        cmocka_unit_test(test_four_threads_many_short_loops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
