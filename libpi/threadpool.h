/*
 * threadpool: a fixed set of worker threads that run one parallel job at a
 * time, for the matrix products of the forward pass.
 *
 * A decode step issues a few hundred short jobs, so dispatch must cost
 * microseconds: workers spin briefly on an atomic job counter before they
 * sleep on a condition variable.  The calling thread takes part as worker 0,
 * so a pool of n threads starts n - 1.
 */
#ifndef PI_THREADPOOL_H
#define PI_THREADPOOL_H

#include "err.h"

typedef struct pi_pool pi_pool;

/* fn(arg, ith, nth): the share of worker ith out of nth. */
typedef void (*pi_pool_fn)(void *arg, int ith, int nth);

pi_pool *pi_pool_new(int n_threads, pi_err *err);
void pi_pool_free(pi_pool *p);
int pi_pool_size(const pi_pool *p);
/* Runs fn on every worker and returns when all are done. */
void pi_pool_run(pi_pool *p, pi_pool_fn fn, void *arg);

/* The half-open range [*lo, *hi) of n items that worker ith of nth takes,
 * in multiples of `grain` so that a worker's rows start on a boundary. */
void pi_pool_split(long n, long grain, int ith, int nth, long *lo, long *hi);

#endif
