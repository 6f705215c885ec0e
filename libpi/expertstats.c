/*
 * expertstats: routing counts of a mixture of experts (see expertstats.h).
 */
#include "expertstats.h"

#include <stdlib.h>

struct pi_expertstats {
    int n_layer, n_expert, k;
    int64_t *tokens; /* [n_layer] */
    int64_t *count;  /* [n_layer][n_expert] */
};

pi_expertstats *pi_expertstats_new(int n_layer, int n_expert, int k, pi_err *err)
{
    if (n_layer < 1 || n_expert < 1 || k < 1 || k > n_expert) {
        pi_err_set(err, "expert statistics: %d layers, %d of %d experts: bad shape", n_layer,
                   k, n_expert);
        return NULL;
    }
    pi_expertstats *s = calloc(1, sizeof *s);
    if (s) {
        s->tokens = calloc((size_t)n_layer, sizeof *s->tokens);
        s->count = calloc((size_t)n_layer * (size_t)n_expert, sizeof *s->count);
    }
    if (!s || !s->tokens || !s->count) {
        pi_expertstats_free(s);
        pi_err_set(err, "out of memory");
        return NULL;
    }
    s->n_layer = n_layer;
    s->n_expert = n_expert;
    s->k = k;
    return s;
}

void pi_expertstats_free(pi_expertstats *s)
{
    if (!s)
        return;
    free(s->tokens);
    free(s->count);
    free(s);
}

int pi_expertstats_add(pi_expertstats *s, int il, const int32_t *chosen, int n)
{
    if (il < 0 || il >= s->n_layer || n < 0)
        return -1;
    int64_t *c = s->count + (size_t)il * s->n_expert;
    for (int i = 0; i < n * s->k; i++)
        if (chosen[i] >= 0 && chosen[i] < s->n_expert)
            c[chosen[i]]++;
    s->tokens[il] += n;
    return 0;
}

static int by_count_desc(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x < y) - (x > y);
}

int pi_expertstats_summary_get(const pi_expertstats *s, int il, pi_expertstats_summary *out)
{
    if (il < 0 || il >= s->n_layer)
        return -1;
    int E = s->n_expert;
    int64_t sorted[E], all = 0;
    int unused = 0;
    for (int x = 0; x < E; x++) {
        sorted[x] = s->count[(size_t)il * E + x];
        all += sorted[x];
        unused += sorted[x] == 0;
    }
    qsort(sorted, (size_t)E, sizeof *sorted, by_count_desc);
    int n10 = (E + 9) / 10, n25 = (E + 3) / 4;
    int64_t top10 = 0, top25 = 0;
    for (int x = 0; x < n25; x++) {
        top25 += sorted[x];
        top10 += x < n10 ? sorted[x] : 0;
    }
    *out = (pi_expertstats_summary){
        .tokens = s->tokens[il],
        .top10_share = all ? (double)top10 / (double)all : 0.0,
        .top25_share = all ? (double)top25 / (double)all : 0.0,
        .unused = (double)unused / E,
    };
    return 0;
}

int pi_expertstats_write_yaml(const pi_expertstats *s, FILE *f, const char *name, pi_err *err)
{
    fprintf(f, "experts:\n  n_expert: %d\n  used: %d\n  layers:\n", s->n_expert, s->k);
    for (int il = 0; il < s->n_layer && !ferror(f); il++) {
        pi_expertstats_summary sm;
        pi_expertstats_summary_get(s, il, &sm);
        fprintf(f, "    - layer: %d\n      tokens: %lld\n      top10_share: %.6g\n"
                "      top25_share: %.6g\n      unused: %.6g\n      usage: [", il,
                (long long)sm.tokens, sm.top10_share, sm.top25_share, sm.unused);
        for (int x = 0; x < s->n_expert; x++)
            fprintf(f, "%s%lld", x ? ", " : "",
                    (long long)s->count[(size_t)il * s->n_expert + x]);
        fputs("]\n", f);
    }
    if (fflush(f) || ferror(f))
        return pi_err_set(err, "%s: write error", name);
    return 0;
}
