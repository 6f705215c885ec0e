/*
 * threadpool: a fixed set of worker threads that share out one parallel
 * loop at a time, for the matrix products and attention of the forward pass.
 *
 * A loop is cut into chunks that workers claim one by one from an atomic
 * counter, so the split adapts to whoever is running: on a shared, noisy
 * machine a worker that the OS preempts costs at most the chunk it holds,
 * and the calling thread (which takes part as worker 0) does the rest.
 * A decode step issues a few hundred short loops, so dispatch must cost
 * microseconds: idle workers spin briefly before sleeping.
 */
#ifndef PI_THREADPOOL_H
#define PI_THREADPOOL_H

#include <stdint.h>

#include "err.h"

typedef struct pi_pool pi_pool;

/* Processes one chunk; ith (0 <= ith < pool size) identifies the thread, for
 * per-thread scratch. */
typedef void (*pi_pool_fn)(void *arg, int64_t chunk, int ith);

pi_pool *pi_pool_new(int n_threads, pi_err *err);
void pi_pool_free(pi_pool *p);
int pi_pool_size(const pi_pool *p);
/* Runs fn for chunks 0 .. n_chunks-1 across the pool; returns when all are
 * done.  Not reentrant: one loop at a time per pool. */
void pi_pool_for(pi_pool *p, int64_t n_chunks, pi_pool_fn fn, void *arg);

#endif
