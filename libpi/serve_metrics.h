/*
 * serve_metrics: pi-serve's counters and their Prometheus text exposition
 * (GET /metrics, text format 0.0.4).
 *
 * Counters are updated by the HTTP threads (one per connection) and the slot
 * workers at once, so every update and the rendering take the one mutex the
 * pi_serve_metrics owns; they are a few additions per request, never per
 * token.  The gauges that describe the moment (queue depth, busy slots) are
 * owned by serve.c and passed in when rendering.
 */
#ifndef PI_SERVE_METRICS_H
#define PI_SERVE_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pi_serve_metrics pi_serve_metrics;

/* What one finished generation did. */
typedef struct pi_serve_gen_stats {
    int prompt_tokens;     /* the whole prompt */
    int cached_tokens;     /* of those, reused from the slot's KV cache */
    int completion_tokens;
    double prompt_s, gen_s; /* wall seconds: prompt evaluation, generation */
    bool failed, cancelled; /* an engine error; the client went away */
    /* sparse contexts: FFN neurons computed and neurons in all, over the
     * generated tokens (both 0 when dense) */
    uint64_t sparse_active, sparse_total;
} pi_serve_gen_stats;

typedef struct pi_serve_gauges {
    int slots, active_slots, queue_depth, queue_limit;
    bool sparse; /* report the active fraction */
} pi_serve_gauges;

pi_serve_metrics *pi_serve_metrics_new(void);
void pi_serve_metrics_free(pi_serve_metrics *m);

/* One HTTP response.  endpoint: the path when it is one pi-serve serves,
 * anything else is counted as "other" (a scanner's paths must not grow the
 * label set). */
void pi_serve_metrics_request(pi_serve_metrics *m, const char *endpoint, int status);
void pi_serve_metrics_generation(pi_serve_metrics *m, const pi_serve_gen_stats *g);

/* The exposition text, malloc'ed (NULL when out of memory). */
char *pi_serve_metrics_text(pi_serve_metrics *m, const pi_serve_gauges *g, size_t *len);

#endif
