/*
 * expertstats: how a mixture of experts routes, measured (pi-profile on a
 * qwen2moe / qwen3moe model).
 *
 * For every layer it counts how often the router chose each expert.  From
 * the counts: the share of all routings served by the most used 10% and
 * 25% of the experts (rounded up), which says how much of the routed
 * compute a GPU holding that many whole experts would serve, and the share
 * of experts never chosen.  The neurons inside the experts are measured by
 * actstats (actstats.h) over rows of every expert's neurons side by side
 * (moe.h); this module only adds the routing.
 *
 * Written as the `experts:` section of pi-profile's statistics YAML.
 */
#ifndef PI_EXPERTSTATS_H
#define PI_EXPERTSTATS_H

#include <stdint.h>
#include <stdio.h>

#include "err.h"

typedef struct pi_expertstats pi_expertstats;

/* n_layer >= 1, 1 <= k <= n_expert experts per token. */
pi_expertstats *pi_expertstats_new(int n_layer, int n_expert, int k, pi_err *err);
void pi_expertstats_free(pi_expertstats *s);

/* Adds n tokens' choices of layer il: n rows of k expert ids. */
int pi_expertstats_add(pi_expertstats *s, int il, const int32_t *chosen, int n);

typedef struct pi_expertstats_summary {
    int64_t tokens;     /* tokens routed through the layer */
    double top10_share; /* routings served by the most used 10% of experts */
    double top25_share; /* ... 25% */
    double unused;      /* share of experts never chosen */
} pi_expertstats_summary;

int pi_expertstats_summary_get(const pi_expertstats *s, int il, pi_expertstats_summary *out);

/* The `experts:` mapping: n_expert, used, then per layer the summary and
 * `usage`, the n_expert counts. */
int pi_expertstats_write_yaml(const pi_expertstats *s, FILE *f, const char *name, pi_err *err);

#endif
