/*
 * bench_dot: how close the dot-product kernels come to memory bandwidth.
 *
 * Measures (1) the machine's read bandwidth with a plain streaming sum over
 * a buffer far larger than the caches and over one that fits in the last
 * level cache, with 1 and 2 threads; (2) for every weight type with a dot
 * product, a matrix-vector product (rows split between threads) over a
 * large out-of-cache matrix and a small in-cache one, with each kernel this
 * CPU has: each ISA's single kernel (one pi_vec_dot_fn call per row), and
 * the batched kernel (pi_vec_dot_nx_fn, what matmul uses) with one packed
 * activation row, as in decoding, and with four, as in prompt processing.
 * Speed is reported as GB/s of weight bytes read (1 GB = 1e9 bytes) times
 * the number of activation rows, so that every figure counts dot products
 * done, and, out of cache, as a fraction of the streaming bandwidth with
 * the same thread count.
 *
 * Everything is allocated and filled before timing; each figure is the best
 * of several repetitions (after a warm-up in cache), taken in two rounds
 * over all types.  BENCH_QUICK=1 shrinks the buffers and repetitions for a
 * fast smoke run; BENCH_COLS=n sets the row length (default 4096; the
 * default model's rows have 576 and 1536).  Usage: bench_dot [TYPE...]
 */
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "cpu.h"
#include "quant.h"

#define MIB ((size_t)1 << 20)
#define MAX_THREADS 2
#define MAX_COLS 65536
/* Row length: a typical hidden size by default (BENCH_COLS). */
static int g_cols = 4096;

typedef struct {
    size_t bw_big, bw_small;   /* streaming-sum buffer sizes */
    size_t mat_big, mat_small; /* weight matrix sizes */
    int reps, reps_slow;       /* repetitions (best taken); slow = scalar, out of cache */
    double min_time;           /* in-cache jobs repeat until they take this long */
} bench_config;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- a two-barrier thread pool ----------------------------------------- */

/* The calling thread is worker 0; the others wait on a barrier for each job,
 * so that starting a job costs microseconds, not a pthread_create. */
typedef void (*job_fn)(void *arg, int tid, int nthreads);

typedef struct pool pool;

typedef struct {
    pool *p;
    int tid;
} worker_arg;

struct pool {
    pthread_t threads[MAX_THREADS];
    worker_arg args[MAX_THREADS];
    pthread_barrier_t start, done;
    int nthreads;
    job_fn fn;
    void *arg;
    int quit;
};

static void *worker(void *varg)
{
    worker_arg *wa = varg;
    pool *p = wa->p;
    for (;;) {
        pthread_barrier_wait(&p->start);
        if (p->quit)
            return NULL;
        p->fn(p->arg, wa->tid, p->nthreads);
        pthread_barrier_wait(&p->done);
    }
}

static void pool_start(pool *p, int nthreads)
{
    memset(p, 0, sizeof *p);
    p->nthreads = nthreads;
    pthread_barrier_init(&p->start, NULL, (unsigned)nthreads);
    pthread_barrier_init(&p->done, NULL, (unsigned)nthreads);
    for (int t = 1; t < nthreads; t++) {
        p->args[t] = (worker_arg){p, t};
        if (pthread_create(&p->threads[t], NULL, worker, &p->args[t]) != 0) {
            fprintf(stderr, "bench_dot: cannot create thread\n");
            exit(1);
        }
    }
}

/* Runs fn on all threads; returns the wall time of the whole job. */
static double pool_run(pool *p, job_fn fn, void *arg)
{
    p->fn = fn;
    p->arg = arg;
    double t0 = now();
    pthread_barrier_wait(&p->start);
    fn(arg, 0, p->nthreads);
    pthread_barrier_wait(&p->done);
    return now() - t0;
}

static void pool_stop(pool *p)
{
    p->quit = 1;
    pthread_barrier_wait(&p->start);
    for (int t = 1; t < p->nthreads; t++)
        pthread_join(p->threads[t], NULL);
    pthread_barrier_destroy(&p->start);
    pthread_barrier_destroy(&p->done);
}

/* Best time of `reps` runs, after one warm-up run if `warm`.  Out of cache
 * a warm-up buys nothing (the data was just written, so the pages exist and
 * every pass reads from DRAM alike), and skipping it halves the time the
 * slow scalar passes take. */
static double best_time(pool *p, job_fn fn, void *arg, int reps, int warm)
{
    if (warm)
        pool_run(p, fn, arg);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t = pool_run(p, fn, arg);
        if (t < best)
            best = t;
    }
    return best;
}

/* ---- streaming read bandwidth ----------------------------------------- */

typedef struct {
    const uint8_t *buf;
    size_t size;
    int inner; /* passes per job */
    uint64_t sink[MAX_THREADS];
} stream_job;

/* Sum of 64-bit words over [begin, end): four independent SSE2 accumulators
 * keep the loads, not the adds, the limit, and a prefetch 2 KiB ahead (as
 * in the kernels) keeps enough misses in flight; without it one thread
 * reads about 20% slower on the benchmark machine. */
static uint64_t stream_sum(const uint8_t *begin, const uint8_t *end)
{
#if defined(__SSE2__)
    __m128i s0 = _mm_setzero_si128(), s1 = s0, s2 = s0, s3 = s0;
    for (const uint8_t *q = begin; q + 64 <= end; q += 64) {
        _mm_prefetch((const char *)q + 2048, _MM_HINT_T0);
        s0 = _mm_add_epi64(s0, _mm_load_si128((const __m128i *)q));
        s1 = _mm_add_epi64(s1, _mm_load_si128((const __m128i *)(q + 16)));
        s2 = _mm_add_epi64(s2, _mm_load_si128((const __m128i *)(q + 32)));
        s3 = _mm_add_epi64(s3, _mm_load_si128((const __m128i *)(q + 48)));
    }
    __m128i s = _mm_add_epi64(_mm_add_epi64(s0, s1), _mm_add_epi64(s2, s3));
    uint64_t out[2];
    _mm_storeu_si128((__m128i *)out, s);
    return out[0] + out[1];
#else
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (const uint64_t *q = (const uint64_t *)begin; q + 4 <= (const uint64_t *)end; q += 4) {
        s0 += q[0];
        s1 += q[1];
        s2 += q[2];
        s3 += q[3];
    }
    return s0 + s1 + s2 + s3;
#endif
}

static void stream_work(void *varg, int tid, int nthreads)
{
    stream_job *job = varg;
    size_t chunk = (job->size / (size_t)nthreads) & ~(size_t)63;
    const uint8_t *begin = job->buf + chunk * (size_t)tid;
    const uint8_t *end = tid == nthreads - 1 ? job->buf + job->size : begin + chunk;
    uint64_t s = 0;
    for (int i = 0; i < job->inner; i++)
        s += stream_sum(begin, end);
    job->sink[tid] = s;
}

/* Read bandwidth in GB/s over a buffer of `size` bytes. */
static double stream_bandwidth(pool *p, const uint8_t *buf, size_t size, int inner, int reps)
{
    stream_job job = {buf, size, inner, {0}};
    double t = best_time(p, stream_work, &job, reps, 1);
    return (double)size * inner / t / 1e9;
}

/* bw[0] out of cache, bw[1] in cache, by threads-1: the best of three
 * rounds spread over a few seconds, so that a burst of activity from other
 * processes does not decide the figure every kernel is compared with. */
static void measure_bandwidth(pool *pools, const bench_config *cfg, double bw[2][MAX_THREADS])
{
    uint8_t *buf = aligned_alloc(64, cfg->bw_big);
    if (!buf) {
        fprintf(stderr, "bench_dot: out of memory\n");
        exit(1);
    }
    memset(buf, 1, cfg->bw_big);
    memset(bw, 0, 2 * MAX_THREADS * sizeof bw[0][0]);
    for (int round = 0; round < 3; round++)
        for (int t = 0; t < MAX_THREADS; t++) {
            double big = stream_bandwidth(&pools[t], buf, cfg->bw_big, 1, cfg->reps);
            double small = stream_bandwidth(&pools[t], buf, cfg->bw_small, 20, cfg->reps);
            bw[0][t] = big > bw[0][t] ? big : bw[0][t];
            bw[1][t] = small > bw[1][t] ? small : bw[1][t];
        }
    free(buf);
}

/* ---- matrices ---------------------------------------------------------- */

static uint64_t g_rng = 0x243f6a8885a308d3ull;

static uint64_t xorshift(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}

/* Finite, normal values everywhere a float or scale field is read, so no
 * timing is spoilt by denormal or NaN slow paths. */
static pi_f16 random_f16(uint64_t r, int min_exp, int span)
{
    return (pi_f16)((r & 0x83ffu) | (uint64_t)(min_exp + (int)((r >> 16) % (uint64_t)span)) << 10);
}

static void fill_float_type(pi_type type, uint8_t *buf, size_t size)
{
    for (size_t i = 0; i + 8 <= size; i += 8) {
        uint64_t r = xorshift(), v = 0;
        if (type == PI_TYPE_F32) /* exponents 120..130: |x| in [2^-7, 2^4) */
            for (int k = 0; k < 2; k++) {
                uint64_t x = (r >> (32 * k)) & 0x807fffffu;
                v |= (x | (uint64_t)(120 + (r >> (8 + 3 * k)) % 11) << 23) << (32 * k);
            }
        else
            for (int k = 0; k < 4; k++) {
                uint64_t x = (r >> (16 * k)) & 0xffffu, h;
                h = type == PI_TYPE_F16 ? random_f16(x * 0x9e37u, 10, 8)
                                        : ((x & 0x807fu) | (uint64_t)(120 + x % 11) << 7);
                v |= h << (16 * k);
            }
        memcpy(buf + i, &v, 8);
    }
}

/* Byte offsets of the f16 scale fields in one block of each type (-1 ends). */
static const int *scale_offsets(pi_type type)
{
    static const int q_d[] = {0, -1}, q_dm[] = {0, 2, -1};
    static const int q2k[] = {offsetof(pi_block_q2_K, d), offsetof(pi_block_q2_K, dmin), -1};
    static const int q3k[] = {offsetof(pi_block_q3_K, d), -1};
    static const int q6k[] = {offsetof(pi_block_q6_K, d), -1};
    switch (type) {
    case PI_TYPE_Q4_0: case PI_TYPE_Q5_0: case PI_TYPE_Q8_0: return q_d;
    case PI_TYPE_Q4_1: case PI_TYPE_Q5_1: case PI_TYPE_Q4_K: case PI_TYPE_Q5_K: return q_dm;
    case PI_TYPE_Q2_K: return q2k;
    case PI_TYPE_Q3_K: return q3k;
    case PI_TYPE_Q6_K: return q6k;
    default: return NULL;
    }
}

/* Random bytes, then valid scales (|d| in [2^-9, 2^-4)) in every block. */
static void fill_matrix(pi_type type, uint8_t *buf, size_t size)
{
    const int *offs = scale_offsets(type);
    if (!offs) {
        fill_float_type(type, buf, size);
        return;
    }
    for (size_t i = 0; i + 8 <= size; i += 8) {
        uint64_t r = xorshift();
        memcpy(buf + i, &r, 8);
    }
    size_t bs = pi_type_get_traits(type)->type_size;
    for (size_t b = 0; b + bs <= size; b += bs)
        for (const int *o = offs; *o >= 0; o++) {
            pi_f16 h = random_f16(xorshift(), 6, 5);
            memcpy(buf + b + *o, &h, 2);
        }
}

/* ---- matrix-vector products -------------------------------------------- */

/* The kernels compared for each type: each ISA's single kernel, then the
 * best batched kernel with one and with BATCH_ROWS activation rows. */
enum { K_BATCH1 = PI_ISA_COUNT, K_BATCH4, N_KERNELS };
#define BATCH_ROWS 4

static const char *kernel_name(int k)
{
    return k == K_BATCH1 ? "batch x1" : k == K_BATCH4 ? "batch x4" : pi_isa_name((pi_isa)k);
}

typedef struct {
    pi_vec_dot_fn dot;
    pi_vec_dot_nx_fn nx; /* used instead of dot when set */
    int n_acts;          /* rows of act, packed, for nx */
    const uint8_t *w;
    size_t row_bytes;
    int64_t rows;
    const void *act;
    float *y;
    int inner;
} matvec_job;

static void matvec_work(void *varg, int tid, int nthreads)
{
    matvec_job *job = varg;
    int64_t r0 = job->rows * tid / nthreads, r1 = job->rows * (tid + 1) / nthreads;
    for (int i = 0; i < job->inner; i++)
        for (int64_t r = r0; r < r1; r++) {
            const uint8_t *row = job->w + (size_t)r * job->row_bytes;
            if (job->nx)
                job->nx(g_cols, row, job->act, job->n_acts, job->y + r * BATCH_ROWS, 1);
            else
                job->y[r] = job->dot(g_cols, row, job->act);
        }
}

/* GB/s of weight bytes for one kernel over the first `bytes` of the matrix. */
static double matvec_rate(pool *p, matvec_job job, size_t bytes, int in_cache, int reps,
                          double min_time)
{
    job.rows = (int64_t)(bytes / job.row_bytes);
    job.inner = 1;
    if (in_cache) { /* repeat the product so the barrier cost vanishes */
        double t = pool_run(p, matvec_work, &job);
        job.inner = (int)(min_time / (t > 1e-6 ? t : 1e-6)) + 1;
    }
    double t = best_time(p, matvec_work, &job, reps, in_cache);
    int acts = job.nx ? job.n_acts : 1;
    return (double)job.rows * (double)job.row_bytes * job.inner * acts / t / 1e9;
}

/* The scalar and best kernels must agree on the benchmark matrix too, or
 * the numbers would time a broken kernel. */
static void sanity_check(pi_type type, const matvec_job *job, pi_vec_dot_fn scalar,
                         const void *plain_act)
{
    for (int64_t r = 0; r < 8; r++) {
        const uint8_t *row = job->w + (size_t)r * job->row_bytes;
        float a[BATCH_ROWS], b = scalar(g_cols, row, plain_act);
        if (job->nx)
            job->nx(g_cols, row, job->act, job->n_acts, a, 1);
        else
            a[0] = job->dot(g_cols, row, job->act);
        float tol = 1e-3f * ((b < 0 ? -b : b) + 1.0f); /* values are O(1) */
        if (a[0] - b > tol || b - a[0] > tol)
            fprintf(stderr, "bench_dot: %s: kernels disagree on row %lld: %g vs %g\n",
                    pi_type_name(type), (long long)r, a[0], b);
    }
}

typedef struct {
    double out[N_KERNELS][MAX_THREADS]; /* out of cache, by kernel and threads-1 */
    double in[N_KERNELS][MAX_THREADS];
} type_result;

/* One activation row: plain, packed as a batch of one, and packed as each
 * row of a batch of BATCH_ROWS (the packed ones NULL for types without a
 * packed form). */
typedef struct {
    void *plain, *packed1, *packed4;
} act_forms;

static act_forms activations(pi_type type)
{
    pi_type at = pi_type_get_traits(type)->vec_dot_type;
    size_t psize = pi_dot_pack_size(type, g_cols);
    act_forms a = {malloc(pi_row_size(at, g_cols)), psize ? malloc(psize) : NULL,
                   psize ? malloc(psize * BATCH_ROWS) : NULL};
    float *x = malloc((size_t)g_cols * sizeof *x);
    if (!x || !a.plain || (psize && (!a.packed1 || !a.packed4))) {
        fprintf(stderr, "bench_dot: out of memory\n");
        exit(1);
    }
    for (int i = 0; i < g_cols; i++)
        x[i] = (float)((int64_t)(xorshift() % 2001) - 1000) / 1000.0f;
    int bad = pi_quantize_row(at, x, a.plain, g_cols) != 0;
    if (psize) {
        bad |= pi_dot_pack_row(type, x, g_cols, a.packed1, 1, 0) != 0;
        for (int t = 0; t < BATCH_ROWS; t++)
            bad |= pi_dot_pack_row(type, x, g_cols, a.packed4, BATCH_ROWS, t) != 0;
    }
    if (bad) {
        fprintf(stderr, "bench_dot: cannot quantise activations for %s\n", pi_type_name(type));
        exit(1);
    }
    free(x);
    return a;
}

/* Kernel k's job, or a job with neither function if this CPU has none. */
static matvec_job kernel_job(pi_type type, int k, matvec_job job, const act_forms *a)
{
    if (k < PI_ISA_COUNT) {
        job.dot = pi_vec_dot_get_isa(type, (pi_isa)k);
        job.act = a->plain;
        return job;
    }
    job.nx = a->packed1 ? pi_vec_dot_nx_get(type) : NULL;
    job.n_acts = k == K_BATCH1 ? 1 : BATCH_ROWS;
    job.act = k == K_BATCH1 ? a->packed1 : a->packed4;
    return job;
}

static type_result bench_type(pi_type type, uint8_t *mat, float *y, pool *pools,
                              const bench_config *cfg)
{
    type_result res;
    memset(&res, 0, sizeof res);
    act_forms a = activations(type);
    matvec_job base = {NULL, NULL, 1, mat, pi_row_size(type, g_cols), 0, NULL, y, 1};
    fill_matrix(type, mat, cfg->mat_big);
    for (int k = 0; k < N_KERNELS; k++) {
        matvec_job job = kernel_job(type, k, base, &a);
        if (!job.dot && !job.nx)
            continue;
        sanity_check(type, &job, pi_vec_dot_get_isa(type, PI_ISA_SCALAR), a.plain);
        int slow = k == PI_ISA_SCALAR;
        for (int t = 0; t < MAX_THREADS; t++) {
            res.out[k][t] = matvec_rate(&pools[t], job, cfg->mat_big, 0,
                                        slow ? cfg->reps_slow : cfg->reps, 0);
            res.in[k][t] = matvec_rate(&pools[t], job, cfg->mat_small, 1, cfg->reps,
                                       cfg->min_time);
        }
    }
    free(a.plain);
    free(a.packed1);
    free(a.packed4);
    return res;
}

static void keep_best(type_result *best, const type_result *r)
{
    for (int k = 0; k < N_KERNELS; k++)
        for (int t = 0; t < MAX_THREADS; t++) {
            if (r->out[k][t] > best->out[k][t])
                best->out[k][t] = r->out[k][t];
            if (r->in[k][t] > best->in[k][t])
                best->in[k][t] = r->in[k][t];
        }
}

/* ---- report ------------------------------------------------------------ */

/* Other processes share the cores and the memory bus; the load average
 * printed with the results says whether they had the machine to themselves. */
static void print_loadavg(const char *when)
{
    char line[128] = "";
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (!fgets(line, sizeof line, f))
            line[0] = '\0';
        fclose(f);
    }
    line[strcspn(line, "\n")] = '\0';
    printf("Load average %s: %s\n", when, line[0] ? line : "?");
}

static void print_header(const bench_config *cfg, const double bw[2][2][MAX_THREADS])
{
    const pi_cpu *c = pi_cpu_features();
    printf("CPU: %s (best ISA: %s)\n", c->brand[0] ? c->brand : "?", pi_isa_name(pi_isa_best()));
    printf("\nRead bandwidth (streaming 64-bit sum), GB/s, measured before | after the kernels:\n");
    printf("  %6.0f MiB buffer: 1 thread %5.1f | %5.1f   2 threads %5.1f | %5.1f\n",
           (double)(cfg->bw_big / MIB), bw[0][0][0], bw[1][0][0], bw[0][0][1], bw[1][0][1]);
    printf("  %6.0f MiB buffer: 1 thread %5.1f | %5.1f   2 threads %5.1f | %5.1f\n",
           (double)(cfg->bw_small / MIB), bw[0][1][0], bw[1][1][0], bw[0][1][1], bw[1][1][1]);
    printf("\nMatrix-vector product, %d columns, GB/s of weights read times activation "
           "rows\n(%% = of the better streaming bandwidth, same threads; batch x%d reads the "
           "weights once for %d rows)\n",
           g_cols, BATCH_ROWS, BATCH_ROWS);
    printf("                   | %4.0f MiB matrix (out of cache)  | %.0f MiB matrix (in cache)\n",
           (double)(cfg->mat_big / MIB), (double)(cfg->mat_small / MIB));
    printf("type    kernel     |     1 thread       2 threads    |  1 thread  2 threads\n");
}

static void print_rows(pi_type type, const type_result *r, const double bw[MAX_THREADS])
{
    const char *name = pi_type_name(type);
    for (int k = 0; k < N_KERNELS; k++) {
        if (r->out[k][0] == 0.0)
            continue;
        printf("%-7s %-10s | %6.2f (%3.0f%%)  %6.2f (%3.0f%%)  | %8.2f  %8.2f\n", name,
               kernel_name(k), r->out[k][0], 100.0 * r->out[k][0] / bw[0], r->out[k][1],
               100.0 * r->out[k][1] / bw[1], r->in[k][0], r->in[k][1]);
        name = "";
    }
    fflush(stdout);
}

static const pi_type k_types[] = {
    PI_TYPE_F32,  PI_TYPE_F16,  PI_TYPE_BF16, PI_TYPE_Q4_0, PI_TYPE_Q4_1,
    PI_TYPE_Q5_0, PI_TYPE_Q5_1, PI_TYPE_Q8_0, PI_TYPE_Q2_K, PI_TYPE_Q3_K,
    PI_TYPE_Q4_K, PI_TYPE_Q5_K, PI_TYPE_Q6_K,
};

static bench_config config(void)
{
    const char *cols = getenv("BENCH_COLS");
    if (cols && *cols) {
        g_cols = atoi(cols);
        if (g_cols <= 0 || g_cols % 32 != 0 || g_cols > MAX_COLS) {
            fprintf(stderr, "bench_dot: BENCH_COLS must be a multiple of 32 up to %d\n", MAX_COLS);
            exit(2);
        }
    }
    const char *q = getenv("BENCH_QUICK");
    if (q && *q && strcmp(q, "0") != 0)
        return (bench_config){256 * MIB, 16 * MIB, 64 * MIB, 4 * MIB, 2, 1, 0.01};
    return (bench_config){1024 * MIB, 32 * MIB, 512 * MIB, 16 * MIB, 5, 2, 0.05};
}

/* Types named on the command line (all by default) whose blocks fit the
 * row length. */
static int selected(pi_type type, int argc, char **argv)
{
    if (pi_row_size(type, g_cols) == 0)
        return 0;
    if (argc < 2)
        return 1;
    for (int i = 1; i < argc; i++)
        if (pi_type_from_name(argv[i]) == (int)type)
            return 1;
    return 0;
}

int main(int argc, char **argv)
{
    bench_config cfg = config();
    pool pools[MAX_THREADS];
    for (int t = 0; t < MAX_THREADS; t++)
        pool_start(&pools[t], t + 1);
    print_loadavg("at start");

    /* Bandwidth before and after the kernels; the better of the two is the
     * reference, as other processes may have been busy during either. */
    double bw[2][2][MAX_THREADS];
    measure_bandwidth(pools, &cfg, bw[0]);

    enum { N_TYPES = sizeof k_types / sizeof k_types[0] };
    type_result res[N_TYPES];
    int ran[N_TYPES] = {0};
    uint8_t *mat = aligned_alloc(64, cfg.mat_big);
    float *y = malloc(cfg.mat_big / 64 * BATCH_ROWS * sizeof *y); /* rows <= bytes / 64 */
    if (!mat || !y) {
        fprintf(stderr, "bench_dot: out of memory\n");
        return 1;
    }
    /* Two rounds over all types, best of each figure: a burst of activity
     * from other processes rarely covers the same measurement twice. */
    memset(res, 0, sizeof res);
    for (int round = 0; round < 2; round++)
        for (size_t i = 0; i < N_TYPES; i++)
            if (selected(k_types[i], argc, argv)) {
                type_result r = bench_type(k_types[i], mat, y, pools, &cfg);
                keep_best(&res[i], &r);
                ran[i] = 1;
            }
    free(mat);
    free(y);

    measure_bandwidth(pools, &cfg, bw[1]);
    print_loadavg("at end");
    print_header(&cfg, bw);
    double best[MAX_THREADS];
    for (int t = 0; t < MAX_THREADS; t++)
        best[t] = bw[0][0][t] > bw[1][0][t] ? bw[0][0][t] : bw[1][0][t];
    for (size_t i = 0; i < N_TYPES; i++)
        if (ran[i])
            print_rows(k_types[i], &res[i], best);
    for (int t = 0; t < MAX_THREADS; t++)
        pool_stop(&pools[t]);
    return 0;
}
