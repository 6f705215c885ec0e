/* serve_metrics: counters and Prometheus text (see serve_metrics.h). */
#include "serve_metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The label values of pi_requests_total: every path pi-serve answers, then
 * "other".  /v1/models/ID is counted as /v1/models. */
static const char *const endpoints[] = {
    "/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/metrics", "other",
};
#define N_ENDPOINTS (sizeof endpoints / sizeof *endpoints)
/* Distinct (endpoint, status) pairs kept; statuses are the dozen this
 * server sends, so the table never fills in practice (a pair past it is
 * counted under the last entry's labels rather than lost). */
#define MAX_PAIRS 96

typedef struct pair {
    int endpoint, status;
    uint64_t count;
} pair;

struct pi_serve_metrics {
    pthread_mutex_t mu;
    pair pairs[MAX_PAIRS];
    int n_pairs;
    uint64_t errors, prompt_tokens, cached_tokens, completion_tokens, generations,
        gen_failed, cancelled, sparse_active, sparse_total;
    double prompt_s, gen_s;
};

pi_serve_metrics *pi_serve_metrics_new(void)
{
    pi_serve_metrics *m = calloc(1, sizeof *m);
    if (m && pthread_mutex_init(&m->mu, NULL)) {
        free(m);
        return NULL;
    }
    return m;
}

void pi_serve_metrics_free(pi_serve_metrics *m)
{
    if (!m)
        return;
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static int endpoint_index(const char *path)
{
    if (!strncmp(path, "/v1/models/", 11))
        path = "/v1/models";
    for (size_t i = 0; i + 1 < N_ENDPOINTS; i++)
        if (!strcmp(path, endpoints[i]))
            return (int)i;
    return N_ENDPOINTS - 1;
}

void pi_serve_metrics_request(pi_serve_metrics *m, const char *endpoint, int status)
{
    int ep = endpoint_index(endpoint);
    pthread_mutex_lock(&m->mu);
    int i = 0;
    while (i < m->n_pairs && !(m->pairs[i].endpoint == ep && m->pairs[i].status == status))
        i++;
    if (i == m->n_pairs) {
        if (m->n_pairs < MAX_PAIRS)
            m->pairs[m->n_pairs++] = (pair){ ep, status, 0 };
        else
            i = MAX_PAIRS - 1;
    }
    m->pairs[i].count++;
    if (status >= 400)
        m->errors++;
    pthread_mutex_unlock(&m->mu);
}

void pi_serve_metrics_generation(pi_serve_metrics *m, const pi_serve_gen_stats *g)
{
    pthread_mutex_lock(&m->mu);
    m->generations++;
    m->prompt_tokens += (uint64_t)g->prompt_tokens;
    m->cached_tokens += (uint64_t)g->cached_tokens;
    m->completion_tokens += (uint64_t)g->completion_tokens;
    m->prompt_s += g->prompt_s;
    m->gen_s += g->gen_s;
    m->gen_failed += g->failed;
    m->errors += g->failed;
    m->cancelled += g->cancelled;
    m->sparse_active += g->sparse_active;
    m->sparse_total += g->sparse_total;
    pthread_mutex_unlock(&m->mu);
}

static void head(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void counter(FILE *f, const char *name, const char *help, uint64_t v)
{
    head(f, name, "counter", help);
    fprintf(f, "%s %llu\n", name, (unsigned long long)v);
}

static void seconds(FILE *f, const char *name, const char *help, double v)
{
    head(f, name, "counter", help);
    fprintf(f, "%s %.6f\n", name, v);
}

static void gauge(FILE *f, const char *name, const char *help, double v)
{
    head(f, name, "gauge", help);
    fprintf(f, "%s %.6g\n", name, v);
}

char *pi_serve_metrics_text(pi_serve_metrics *m, const pi_serve_gauges *g, size_t *len)
{
    char *text = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&text, &n);
    if (!f)
        return NULL;
    pthread_mutex_lock(&m->mu);
    head(f, "pi_requests_total", "counter", "HTTP responses by endpoint and status.");
    for (int i = 0; i < m->n_pairs; i++)
        fprintf(f, "pi_requests_total{endpoint=\"%s\",status=\"%d\"} %llu\n",
                endpoints[m->pairs[i].endpoint], m->pairs[i].status,
                (unsigned long long)m->pairs[i].count);
    counter(f, "pi_errors_total", "Responses with status 400 or above, and generations that "
            "failed after their response began.", m->errors);
    counter(f, "pi_generations_total", "Generations finished (or stopped).",
            m->generations);
    counter(f, "pi_cancelled_total", "Generations stopped because the client went away.",
            m->cancelled);
    counter(f, "pi_prompt_tokens_total", "Prompt tokens of finished generations.",
            m->prompt_tokens);
    counter(f, "pi_prompt_tokens_cached_total", "Prompt tokens reused from a slot's KV cache "
            "rather than evaluated.", m->cached_tokens);
    counter(f, "pi_tokens_generated_total", "Completion tokens generated.",
            m->completion_tokens);
    seconds(f, "pi_prompt_seconds_total", "Seconds spent evaluating prompts, over all slots.",
            m->prompt_s);
    seconds(f, "pi_generation_seconds_total", "Seconds spent generating, over all slots.",
            m->gen_s);
    gauge(f, "pi_tokens_per_second", "Generation speed of one slot: tokens generated over "
          "generation seconds, since start.",
          m->gen_s > 0 ? (double)m->completion_tokens / m->gen_s : 0.0);
    gauge(f, "pi_prompt_tokens_per_second", "Prompt evaluation speed of one slot, since start.",
          m->prompt_s > 0 ? (double)(m->prompt_tokens - m->cached_tokens) / m->prompt_s : 0.0);
    if (g->sparse)
        gauge(f, "pi_sparse_active_fraction", "Fraction of FFN neurons computed per generated "
              "token (sparse model), since start.",
              m->sparse_total ? (double)m->sparse_active / (double)m->sparse_total : 1.0);
    pthread_mutex_unlock(&m->mu);
    gauge(f, "pi_slots", "Generation slots (concurrent generations).", g->slots);
    gauge(f, "pi_active_slots", "Slots generating now.", g->active_slots);
    gauge(f, "pi_queue_depth", "Requests waiting for a slot.", g->queue_depth);
    gauge(f, "pi_queue_limit", "Waiting requests beyond which requests get 503.",
          g->queue_limit);
    if (fclose(f)) {
        free(text);
        return NULL;
    }
    if (len)
        *len = n;
    return text;
}
