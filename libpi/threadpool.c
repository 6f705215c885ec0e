/*
 * threadpool: workers that spin, then sleep, waiting for the next job (see
 * threadpool.h).  A job is published by bumping `generation`; each worker
 * runs its share and decrements `pending`; the caller waits for zero.
 */
#include "threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define SPIN_ROUNDS 200000 /* roughly 100 us of spinning before sleeping */

typedef struct worker {
    pi_pool *pool;
    pthread_t thread;
    int ith;
} worker;

struct pi_pool {
    int n;
    worker *workers;
    pi_pool_fn fn;
    void *arg;
    atomic_uint generation;
    atomic_int pending;
    atomic_bool stop;
    pthread_mutex_t mu;
    pthread_cond_t wake;
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Waits until the generation differs from `seen`; returns the new one. */
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
        p->fn(p->arg, w->ith, p->n);
        atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel);
    }
}

pi_pool *pi_pool_new(int n_threads, pi_err *err)
{
    if (n_threads < 1 || n_threads > 512) {
        pi_err_set(err, "thread count %d out of range (1 to 512)", n_threads);
        return NULL;
    }
    pi_pool *p = calloc(1, sizeof *p);
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
            p->n = i; /* the ones started so far are joined by free */
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

void pi_pool_run(pi_pool *p, pi_pool_fn fn, void *arg)
{
    if (p->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    atomic_store_explicit(&p->pending, p->n - 1, memory_order_relaxed);
    /* The lock orders the publish against a worker about to sleep. */
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    fn(arg, 0, p->n);
    while (atomic_load_explicit(&p->pending, memory_order_acquire) > 0)
        cpu_relax();
}

void pi_pool_split(long n, long grain, int ith, int nth, long *lo, long *hi)
{
    long units = (n + grain - 1) / grain;
    long per = units / nth, extra = units % nth;
    long a = ith * per + (ith < extra ? ith : extra);
    long b = a + per + (ith < extra);
    *lo = a * grain < n ? a * grain : n;
    *hi = b * grain < n ? b * grain : n;
}
