/*
 * threadpool: chunked parallel loops (see threadpool.h).
 *
 * One 64-bit ticket holds the loop's generation (high half) and the next
 * unclaimed chunk (low half).  A worker claims a chunk with a compare-and-
 * swap that also checks the generation, so a worker that wakes late can never
 * claim a chunk of a later loop with the previous loop's function: the loop
 * description (fn, arg, n) is rewritten only after every chunk of the
 * previous loop was claimed and finished, after the old ticket is closed
 * (no chunk left to claim, and a value no stale swap expects).
 */
#include "threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define SPIN_ROUNDS 20000 /* ~1 ms of pause instructions before sleeping */

typedef struct worker {
    struct pi_pool *pool;
    pthread_t thread;
    int ith;
} worker;

struct pi_pool {
    int n;
    worker *workers;
    _Atomic(pi_pool_fn) fn;
    _Atomic(void *) arg;
    _Atomic int64_t n_chunks;
    /* Each hot atomic on its own cache line: they are written by different
     * cores at different moments. */
    _Alignas(64) _Atomic uint64_t ticket; /* generation << 32 | next chunk */
    _Alignas(64) _Atomic int64_t done;    /* chunks finished in this generation */
    _Alignas(64) atomic_uint generation;  /* what sleeping workers wait on */
    _Alignas(64) atomic_bool stop;
    pthread_mutex_t mu;
    pthread_cond_t wake;
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Claims and runs chunks of generation gen until none are left. */
static void run_chunks(pi_pool *p, uint32_t gen, int ith)
{
    for (;;) {
        uint64_t t = atomic_load_explicit(&p->ticket, memory_order_acquire);
        uint32_t k = (uint32_t)t;
        if ((uint32_t)(t >> 32) != gen || k >= atomic_load(&p->n_chunks))
            return;
        pi_pool_fn fn = atomic_load_explicit(&p->fn, memory_order_relaxed);
        void *arg = atomic_load_explicit(&p->arg, memory_order_relaxed);
        if (!atomic_compare_exchange_weak_explicit(&p->ticket, &t, t + 1, memory_order_acq_rel,
                                                   memory_order_acquire))
            continue;
        fn(arg, k, ith);
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
    }
}

static unsigned wait_job(pi_pool *p, unsigned seen)
{
    for (int i = 0; i < SPIN_ROUNDS; i++) {
        unsigned g = atomic_load_explicit(&p->generation, memory_order_acquire);
        if (g != seen)
            return g;
        cpu_relax();
    }
    pthread_mutex_lock(&p->mu);
    unsigned g;
    while ((g = atomic_load(&p->generation)) == seen)
        pthread_cond_wait(&p->wake, &p->mu);
    pthread_mutex_unlock(&p->mu);
    return g;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    pi_pool *p = w->pool;
    unsigned seen = 0;
    for (;;) {
        seen = wait_job(p, seen);
        if (atomic_load(&p->stop))
            return NULL;
        run_chunks(p, (uint32_t)(atomic_load(&p->ticket) >> 32), w->ith);
    }
}

pi_pool *pi_pool_new(int n_threads, pi_err *err)
{
    if (n_threads < 1 || n_threads > 512) {
        pi_err_set(err, "thread count %d out of range (1 to 512)", n_threads);
        return NULL;
    }
    /* aligned_alloc: the struct's cache-line alignment must hold on the heap. */
    size_t size = (sizeof(pi_pool) + 63) / 64 * 64;
    pi_pool *p = aligned_alloc(64, size);
    if (p)
        memset(p, 0, size);
    if (!p || !(p->workers = calloc((size_t)n_threads, sizeof *p->workers))) {
        free(p);
        pi_err_set(err, "out of memory");
        return NULL;
    }
    p->n = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    for (int i = 1; i < n_threads; i++) {
        p->workers[i] = (worker){ .pool = p, .ith = i };
        if (pthread_create(&p->workers[i].thread, NULL, worker_main, &p->workers[i])) {
            p->n = i; /* join the ones started so far */
            pi_pool_free(p);
            pi_err_set(err, "cannot start thread %d", i);
            return NULL;
        }
    }
    return p;
}

void pi_pool_free(pi_pool *p)
{
    if (!p)
        return;
    atomic_store(&p->stop, true);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add(&p->generation, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++)
        pthread_join(p->workers[i].thread, NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    free(p->workers);
    free(p);
}

int pi_pool_size(const pi_pool *p) { return p->n; }

void pi_pool_for(pi_pool *p, int64_t n_chunks, pi_pool_fn fn, void *arg)
{
    if (n_chunks <= 0)
        return;
    if (p->n == 1 || n_chunks == 1) {
        for (int64_t k = 0; k < n_chunks; k++)
            fn(arg, k, 0);
        return;
    }
    uint32_t gen = (uint32_t)(atomic_load(&p->ticket) >> 32) + 1;
    /* Close the finished loop's ticket first.  A worker may still hold it
     * (generation gen - 1, next chunk = the old count): with the new, larger
     * count stored, its check would pass and its compare-and-swap on the
     * stale value succeed, running a chunk of the new loop under the old
     * ticket and counting it done.  A closed ticket has no chunk left and a
     * different value, so that swap fails. */
    atomic_store_explicit(&p->ticket, (uint64_t)(gen - 1) << 32 | UINT32_MAX,
                          memory_order_seq_cst);
    atomic_store_explicit(&p->fn, fn, memory_order_relaxed);
    atomic_store_explicit(&p->arg, arg, memory_order_relaxed);
    atomic_store_explicit(&p->n_chunks, n_chunks, memory_order_relaxed);
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    atomic_store_explicit(&p->ticket, (uint64_t)gen << 32, memory_order_release);
    /* The lock orders the publish against a worker about to sleep. */
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    run_chunks(p, gen, 0);
    /* Only chunks a worker claimed and has not finished remain. */
    for (unsigned i = 0; atomic_load_explicit(&p->done, memory_order_acquire) < n_chunks; i++)
        if (i % 4096 == 4095)
            sched_yield();
        else
            cpu_relax();
}
