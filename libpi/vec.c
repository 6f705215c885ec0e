/* vec: plain versions and run-time dispatch (see vec.h). */
#include "vec.h"

#include <pthread.h>
#include <stdbool.h>

#include "cpu.h"
#include "vec_impl.h"

float pi_vec_dot_scalar(int64_t n, const float *a, const float *b)
{
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

void pi_vec_axpy_scalar(int64_t n, float alpha, const float *x, float *y)
{
    for (int64_t i = 0; i < n; i++)
        y[i] += alpha * x[i];
}

double pi_vec_sumsq_scalar(int64_t n, const float *x)
{
    double s = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += (double)x[i] * x[i];
    return s;
}

/* Chosen once; read-only afterwards (set under pthread_once). */
static bool use_avx2;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void pick(void)
{
    const pi_cpu *c = pi_cpu_features();
    use_avx2 = c->avx2 && c->fma;
}

static bool avx2(void)
{
    pthread_once(&once, pick);
    return use_avx2;
}

float pi_vec_dot(int64_t n, const float *a, const float *b)
{
    return avx2() ? pi_vec_dot_avx2(n, a, b) : pi_vec_dot_scalar(n, a, b);
}

void pi_vec_axpy(int64_t n, float alpha, const float *x, float *y)
{
    if (avx2())
        pi_vec_axpy_avx2(n, alpha, x, y);
    else
        pi_vec_axpy_scalar(n, alpha, x, y);
}

double pi_vec_sumsq(int64_t n, const float *x)
{
    return avx2() ? pi_vec_sumsq_avx2(n, x) : pi_vec_sumsq_scalar(n, x);
}
