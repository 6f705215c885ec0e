/*
 * sample: the sampling chain (see sample.h).  Candidates are kept as
 * (id, logit) pairs; top-k uses a partial selection so that a 152k vocabulary
 * is not sorted whole for every token.
 */
#include "sample.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct cand {
    int32_t id;
    float logit;
} cand;

struct pi_sampler {
    pi_sample_params p;
    int n_vocab;
    cand *c;
    int32_t *recent; /* ring of the last repeat_last_n tokens */
    int n_recent, head;
    uint64_t rng;
};

pi_sample_params pi_sample_defaults(void)
{
    return (pi_sample_params){ .temperature = 0.8f, .top_k = 40, .top_p = 0.95f,
                               .min_p = 0.05f, .repeat_penalty = 1.0f, .repeat_last_n = 64,
                               .seed = 0 };
}

pi_sampler *pi_sampler_new(const pi_sample_params *p, int n_vocab, pi_err *err)
{
    pi_sampler *s = calloc(1, sizeof *s);
    if (!s || n_vocab <= 0)
        goto oom;
    s->p = *p;
    if (s->p.repeat_last_n < 0)
        s->p.repeat_last_n = 0;
    s->n_vocab = n_vocab;
    s->c = malloc((size_t)n_vocab * sizeof *s->c);
    s->recent = malloc(((size_t)s->p.repeat_last_n + 1) * sizeof *s->recent);
    if (!s->c || !s->recent)
        goto oom;
    /* splitmix64 of the seed: a well-mixed, non-zero state even for seed 0. */
    uint64_t z = p->seed + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    s->rng = (z ^ (z >> 31)) | 1;
    return s;
oom:
    pi_sampler_free(s);
    pi_err_set(err, "out of memory for the sampler");
    return NULL;
}

void pi_sampler_free(pi_sampler *s)
{
    if (!s)
        return;
    free(s->c);
    free(s->recent);
    free(s);
}

void pi_sampler_accept(pi_sampler *s, int32_t token)
{
    int n = s->p.repeat_last_n;
    if (n == 0)
        return;
    s->recent[s->head] = token;
    s->head = (s->head + 1) % n;
    if (s->n_recent < n)
        s->n_recent++;
}

/* xorshift64*: small, fast, and the same on every platform. */
static double uniform(pi_sampler *s)
{
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return (double)((s->rng * 0x2545f4914f6cdd1dull) >> 11) / 9007199254740992.0;
}

static void penalize(pi_sampler *s, float *logits)
{
    float pen = s->p.repeat_penalty;
    if (pen == 1.0f || s->n_recent == 0)
        return;
    /* Each distinct recent token is penalised once, as in llama.cpp. */
    for (int i = 0; i < s->n_recent; i++) {
        int32_t t = s->recent[i];
        bool seen = false;
        for (int j = 0; j < i && !seen; j++)
            seen = s->recent[j] == t;
        if (seen || t < 0 || t >= s->n_vocab)
            continue;
        logits[t] = logits[t] > 0 ? logits[t] / pen : logits[t] * pen;
    }
}

static int cmp_desc(const void *a, const void *b)
{
    float x = ((const cand *)a)->logit, y = ((const cand *)b)->logit;
    return x < y ? 1 : x > y ? -1 : ((const cand *)a)->id - ((const cand *)b)->id;
}

/* Moves the k largest to the front (quickselect), then sorts those. */
static void top_k(cand *c, int n, int k)
{
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        float pivot = c[(lo + hi) / 2].logit;
        int i = lo, j = hi;
        while (i <= j) {
            while (c[i].logit > pivot)
                i++;
            while (c[j].logit < pivot)
                j--;
            if (i <= j) {
                cand t = c[i];
                c[i++] = c[j];
                c[j--] = t;
            }
        }
        if (k - 1 <= j)
            hi = j;
        else if (k - 1 >= i)
            lo = i;
        else
            break;
    }
    qsort(c, (size_t)k, sizeof *c, cmp_desc);
}

int32_t pi_sample(pi_sampler *s, float *logits)
{
    penalize(s, logits);
    int n = s->n_vocab;
    if (s->p.temperature <= 0.0f) {
        int32_t best = 0;
        for (int i = 1; i < n; i++)
            if (logits[i] > logits[best])
                best = i;
        return best;
    }
    for (int i = 0; i < n; i++)
        s->c[i] = (cand){ i, logits[i] };
    int k = s->p.top_k > 0 && s->p.top_k < n ? s->p.top_k : n;
    top_k(s->c, n, k);
    n = k;
    /* Probabilities at temperature 1 for the top-p and min-p cuts. */
    double sum = 0.0, mx = s->c[0].logit;
    for (int i = 0; i < n; i++)
        sum += exp(s->c[i].logit - mx);
    if (s->p.top_p < 1.0f) {
        double cum = 0.0;
        for (int i = 0; i < n; i++) {
            cum += exp(s->c[i].logit - mx) / sum;
            if (cum >= s->p.top_p) {
                n = i + 1;
                break;
            }
        }
    }
    if (s->p.min_p > 0.0f) {
        /* p_i >= min_p * p_max  <=>  logit_i >= logit_max + log(min_p) */
        double cut = mx + log(s->p.min_p);
        int keep = 1;
        while (keep < n && s->c[keep].logit >= cut)
            keep++;
        n = keep;
    }
    double total = 0.0;
    for (int i = 0; i < n; i++)
        total += exp((s->c[i].logit - mx) / s->p.temperature);
    double r = uniform(s) * total;
    for (int i = 0; i < n; i++) {
        r -= exp((s->c[i].logit - mx) / s->p.temperature);
        if (r <= 0.0)
            return s->c[i].id;
    }
    return s->c[n - 1].id;
}
