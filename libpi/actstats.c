/*
 * actstats: FFN activation statistics (see actstats.h).
 *
 * The hot path is pi_actstats_add(): pi-profile calls it for every token and
 * layer, so a row of n_ff values costs a few linear passes and never a sort.
 * The smallest set of neurons holding a fraction q of the row's |a| mass is
 * found by bucketing: each |a| gets a key from its float bits relative to the
 * row's maximum (16 buckets per octave, 32 octaves, everything smaller in the
 * last bucket), the buckets' counts and masses are summed, a walk from the
 * top finds the bucket where the running mass crosses q, and only that
 * bucket's members (a handful) are sorted to take exactly as many as needed.
 *
 * Mass is counted in integer units: |a| * 2^(32-e) truncated, where 2^e <= max
 * < 2^(e+1).  Integer sums are exact in any order, so the bucket method gives
 * exactly the answer of sorting the row and adding from the top (with
 * doubles the two orders could round differently right at the threshold).
 * The scale is a power of two, so the product is exact and truncation is the
 * only rounding: under one unit, less than 2^-32 of the row's total.  The
 * maximum has fewer than 2^33 units and n_ff <= 2^20, so 100 * sum fits.
 */
#include "actstats.h"

#include <ctype.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "json.h"

#define L PI_ACTSTATS_LEVELS
const double pi_actstats_levels[L] = { 0.90, 0.95, 0.99 };
const char *const pi_actstats_level_names[L] = { "0.9", "0.95", "0.99" };
/* The levels in percent, for exact integer comparisons. */
static const uint64_t level_pct[L] = { 90, 95, 99 };

/* Selection buckets: float bits >> 19 keep the exponent and the top 4
 * mantissa bits, so one key step is 1/16 octave. */
#define KEY_SHIFT 19
#define N_BUCKET (32 * 16)

/* Magnitude histogram: 1/16-octave bins from 2^-24 to 2^16 (the same keys as
 * above, absolute), after slots for exact zeros and for smaller values. */
#define FIRST_EXP (-24)
#define N_OCTAVE 40
#define FINE_LO ((127 + FIRST_EXP) << 4)
#define N_FINE (N_OCTAVE * 16)
#define SLOT_ZERO 0
#define SLOT_UNDER 1
#define SLOT_FINE 2
#define SLOT_OVER (SLOT_FINE + N_FINE)
#define N_SLOT (SLOT_OVER + 1)

/* A row's firings go into one word per neuron, FIELD_BITS per level, so
 * marking costs one read-modify-write per neuron rather than L; the words
 * are emptied into the int64 counts before a field can overflow. */
#define FIELD_BITS 21
#define FIELD_MAX ((1 << FIELD_BITS) - 1)

typedef struct layer {
    int64_t tokens, nonfinite;
    int64_t *fire;   /* [L][n_ff]: rows in which the neuron was needed... */
    uint64_t *recent; /* [n_ff]: ...plus these, over recent_rows rows */
    int64_t recent_rows;
    int64_t *needed; /* [L][n_ff + 1]: histogram of neurons needed per row */
    double *mass;    /* [n_ff]: sum of |a| */
    float mag_max;
    int64_t mag[N_SLOT];
} layer;

typedef struct member {
    float a;
    int i;
} member;

struct pi_actstats {
    int n_layer, n_ff;
    layer *layers;
    /* Scratch for one row, allocated once. */
    float *mag;
    uint16_t *key;
    member *members;
    struct bucket {
        uint64_t units;
        uint32_t count;
    } b[N_BUCKET];
};

static uint32_t f32_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

pi_actstats *pi_actstats_new(int n_layer, int n_ff, pi_err *err)
{
    if (n_layer < 1 || n_layer > PI_ACTSTATS_MAX_LAYERS || n_ff < 1 || n_ff > PI_ACTSTATS_MAX_FF) {
        pi_err_set(err, "activation statistics: %d layers of %d neurons is out of range",
                   n_layer, n_ff);
        return NULL;
    }
    pi_actstats *s = calloc(1, sizeof *s);
    size_t n = (size_t)n_ff;
    if (s) {
        s->n_layer = n_layer;
        s->n_ff = n_ff;
        s->layers = calloc((size_t)n_layer, sizeof *s->layers);
        s->mag = malloc(n * sizeof *s->mag);
        s->key = malloc(n * sizeof *s->key);
        s->members = malloc((n + L) * sizeof *s->members);
    }
    bool ok = s && s->layers && s->mag && s->key && s->members;
    for (int il = 0; ok && il < n_layer; il++) {
        layer *ly = &s->layers[il];
        ly->fire = calloc(L * n, sizeof *ly->fire);
        ly->recent = calloc(n, sizeof *ly->recent);
        ly->needed = calloc(L * (n + 1), sizeof *ly->needed);
        ly->mass = calloc(n, sizeof *ly->mass);
        ok = ly->fire && ly->recent && ly->needed && ly->mass;
    }
    if (!ok) {
        pi_actstats_free(s);
        pi_err_set(err, "activation statistics: out of memory");
        return NULL;
    }
    return s;
}

void pi_actstats_free(pi_actstats *s)
{
    if (!s)
        return;
    for (int il = 0; s->layers && il < s->n_layer; il++) {
        free(s->layers[il].fire);
        free(s->layers[il].recent);
        free(s->layers[il].needed);
        free(s->layers[il].mass);
    }
    free(s->layers);
    free(s->mag);
    free(s->key);
    free(s->members);
    free(s);
}

/* ---- One row ---- */

static int64_t fired(const layer *ly, int n, int lv, int i)
{
    uint64_t field = ly->recent[i] >> (FIELD_BITS * lv) & FIELD_MAX;
    return ly->fire[(size_t)lv * n + i] + (int64_t)field;
}

static void flush_recent(layer *ly, int n)
{
    for (int lv = 0; lv < L; lv++)
        for (int i = 0; i < n; i++)
            ly->fire[(size_t)lv * n + i] = fired(ly, n, lv, i);
    memset(ly->recent, 0, (size_t)n * sizeof *ly->recent);
    ly->recent_rows = 0;
}

/* Through int64_t: a plain conversion instruction, and units < 2^33. */
static uint64_t units(float a, double scale)
{
    return (uint64_t)(int64_t)((double)a * scale);
}

static bool reached(uint64_t cum, uint64_t total, int lv)
{
    return cum * 100 >= total * level_pct[lv];
}

/* Descending magnitude; ties in index order so the choice is reproducible. */
static int member_cmp(const void *pa, const void *pb)
{
    const member *a = pa, *b = pb;
    if (a->a != b->a)
        return a->a > b->a ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}

/* Histogram slot of a nonzero finite |a| from its absolute key. */
static int mag_slot(uint32_t b)
{
    return b < FINE_LO ? SLOT_UNDER : b < FINE_LO + N_FINE ? SLOT_FINE + (int)(b - FINE_LO)
                                                          : SLOT_OVER;
}

/* First pass: |a| into scratch, per-neuron mass, exact zeros (*zeros) and
 * all the zeros in scratch (*held, non-finite values included).  Returns the
 * largest float bits: for non-negative floats the bits are in the order of
 * the values, and an integer maximum needs no care for NaN. */
static uint32_t scan_row(pi_actstats *s, layer *ly, const float *act, int *held, int *zeros)
{
    uint32_t top = 0;
    int bad = 0, z = 0;
    for (int i = 0; i < s->n_ff; i++) {
        float a = fabsf(act[i]);
        bool ok = a <= FLT_MAX;
        a = ok ? a : 0;
        bad += !ok;
        z += a == 0;
        uint32_t u = f32_bits(a);
        top = u > top ? u : top;
        s->mag[i] = a;
        ly->mass[i] += a;
    }
    ly->nonfinite += bad;
    *held = z;
    *zeros = z - bad;
    return top;
}

/* Second pass: keys relative to the maximum, bucket counts and masses.
 * Returns the row's total in units. */
static uint64_t fill_buckets(pi_actstats *s, uint32_t topkey, double scale)
{
    uint16_t *key = s->key;
    memset(s->b, 0, sizeof s->b);
    uint64_t total = 0;
    for (int i = 0; i < s->n_ff; i++) {
        uint32_t k = topkey - (f32_bits(s->mag[i]) >> KEY_SHIFT); /* |a| <= max */
        k = k < N_BUCKET - 1 ? k : N_BUCKET - 1;
        uint64_t u = units(s->mag[i], scale);
        key[i] = (uint16_t)k;
        s->b[k].count++;
        s->b[k].units += u;
        total += u;
    }
    return total;
}

/* The row's magnitudes into the layer's histogram.  A bucket above the last
 * is exactly one 1/16-octave bin of the histogram, shifted by the row's top
 * key, so whole buckets are added; zeros sit in the bucket of key 0 (the
 * last one unless the maximum is below 2^-95), and only the nonzero members
 * of the last bucket, 32 octaves below the maximum, are looked at singly. */
static void add_magnitudes(const pi_actstats *s, layer *ly, uint32_t topkey, int held,
                           int zeros)
{
    const uint32_t last = N_BUCKET - 1, zb = topkey < last ? topkey : last;
    int64_t left = s->n_ff - (int64_t)s->b[last].count;
    for (uint32_t k = 0; left > 0; k++) {
        int64_t c = (int64_t)s->b[k].count - (k == zb ? held : 0);
        ly->mag[mag_slot(topkey - k)] += c;
        left -= s->b[k].count;
    }
    ly->mag[SLOT_ZERO] += zeros;
    if ((int64_t)s->b[last].count - (zb == last ? held : 0) > 0)
        for (int i = 0; i < s->n_ff; i++)
            if (s->key[i] == last && s->mag[i] != 0)
                ly->mag[mag_slot(f32_bits(s->mag[i]) >> KEY_SHIFT)]++;
}

static void add_row(pi_actstats *s, layer *ly, const float *act)
{
    const int n = s->n_ff;
    if (ly->recent_rows == FIELD_MAX)
        flush_recent(ly, n);
    ly->recent_rows++;
    ly->tokens++;
    int held, zeros;
    const uint32_t top = scan_row(s, ly, act, &held, &zeros);
    if (top == 0) {
        /* Nothing to keep: zero neurons are needed and none fires. */
        ly->mag[SLOT_ZERO] += zeros;
        for (int lv = 0; lv < L; lv++)
            ly->needed[(size_t)lv * (n + 1)]++;
        return;
    }
    float mx;
    memcpy(&mx, &top, sizeof mx);
    if (mx > ly->mag_max)
        ly->mag_max = mx;
    const double scale = ldexp(1, 32 - ilogbf(mx));
    const uint64_t total = fill_buckets(s, top >> KEY_SHIFT, scale);
    add_magnitudes(s, ly, top >> KEY_SHIFT, held, zeros);

    /* Walk from the top bucket: kb[lv] is where level lv's running mass
     * crosses its threshold, with cnt[lv] neurons and cum[lv] units above it.
     * Levels rise, so the buckets do not go back up. */
    int kb[L], cnt[L];
    uint64_t cum[L];
    int lv = 0, c = 0;
    uint64_t m = 0;
    for (int k = 0; k < N_BUCKET && lv < L; k++) {
        uint64_t next = m + s->b[k].units;
        for (; lv < L && reached(next, total, lv); lv++)
            kb[lv] = k, cnt[lv] = c, cum[lv] = m;
        m = next;
        c += (int)s->b[k].count;
    }

    /* One pass marks everything above each crossing bucket as needed and
     * gathers the crossing buckets' members, without branches: each member
     * list is written at every neuron and advances only on a match.  A level
     * whose bucket is the previous level's shares its list (and writes to a
     * sink); lists are one slot apart for the write past the end. */
    member *list[L], *p[L], sink[L];
    int want[L];
    for (lv = 0; lv < L; lv++) {
        bool same = lv > 0 && kb[lv] == kb[lv - 1];
        list[lv] = same ? list[lv - 1]
                 : lv > 0 ? list[lv - 1] + s->b[kb[lv - 1]].count + 1 : s->members;
        p[lv] = same ? &sink[lv] : list[lv];
        want[lv] = same ? -1 : kb[lv];
    }
    const uint16_t *key = s->key;
    uint64_t *rec = ly->recent;
    const int b0 = kb[0], b1 = kb[1], b2 = kb[2];
    for (int i = 0; i < n; i++) {
        const int k = key[i];
        const member mi = { s->mag[i], i };
        *p[0] = mi, p[0] += k == want[0];
        *p[1] = mi, p[1] += k == want[1];
        *p[2] = mi, p[2] += k == want[2];
        rec[i] += (uint64_t)(k < b0) | (uint64_t)(k < b1) << FIELD_BITS |
                  (uint64_t)(k < b2) << 2 * FIELD_BITS;
    }

    /* Then just enough of the crossing bucket's largest members. */
    for (lv = 0; lv < L; lv++) {
        member *mb = list[lv];
        int nm = (int)s->b[kb[lv]].count;
        if (lv == 0 || kb[lv] != kb[lv - 1])
            qsort(mb, (size_t)nm, sizeof *mb, member_cmp);
        uint64_t sum = cum[lv];
        int take = 0;
        while (take < nm && !reached(sum, total, lv))
            sum += units(mb[take++].a, scale);
        for (int j = 0; j < take; j++)
            rec[mb[j].i] += (uint64_t)1 << FIELD_BITS * lv;
        ly->needed[(size_t)lv * (n + 1) + (size_t)(cnt[lv] + take)]++;
    }
}

int pi_actstats_add(pi_actstats *s, int il, const float *act, int n)
{
    if (!s || il < 0 || il >= s->n_layer || n < 0 || (n > 0 && !act))
        return -1;
    for (int t = 0; t < n; t++)
        add_row(s, &s->layers[il], act + (size_t)t * s->n_ff);
    return 0;
}

/* ---- Summaries ---- */

typedef struct ranked {
    int64_t count;
    int i;
} ranked;

static int ranked_cmp(const void *pa, const void *pb)
{
    const ranked *a = pa, *b = pb;
    if (a->count != b->count)
        return a->count > b->count ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}

/* Nearest-rank percentile of a histogram over 0..n, as a fraction of n. */
static double hist_percentile(const int64_t *h, int n, int64_t total, double p)
{
    int64_t rank = (int64_t)ceil(p * (double)total);
    if (rank < 1)
        rank = 1;
    int64_t c = 0;
    for (int k = 0; k <= n; k++)
        if ((c += h[k]) >= rank)
            return (double)k / n;
    return 1;
}

/* A representative |a| for a magnitude slot: the middle of a 1/16-octave bin
 * (within 3.2% of anything in it), the bound for values beyond the range. */
static double slot_value(int slot, double mx)
{
    if (slot == SLOT_ZERO)
        return 0;
    if (slot == SLOT_UNDER)
        return ldexp(1, FIRST_EXP);
    if (slot == SLOT_OVER)
        return mx;
    int b = FINE_LO + slot - SLOT_FINE;
    return ldexp(1 + ((b & 15) + 0.5) / 16, (b >> 4) - 127);
}

static double mag_percentile(const layer *ly, int64_t total, double p)
{
    int64_t rank = (int64_t)ceil(p * (double)total), c = 0;
    if (rank < 1)
        rank = 1;
    for (int slot = 0; slot < N_SLOT; slot++)
        if ((c += ly->mag[slot]) >= rank)
            return fmin(slot_value(slot, ly->mag_max), ly->mag_max);
    return ly->mag_max;
}

/* The top 10% and 20% of neurons, rounded up. */
static int top_count(int n, int pct)
{
    return (n * pct + 99) / 100;
}

static void concentration(const pi_actstats *s, const layer *ly, ranked *r,
                          pi_actstats_summary *out)
{
    const int n = s->n_ff;
    for (int lv = 0; lv < L; lv++) {
        int64_t all = 0, t10 = 0, t20 = 0;
        for (int i = 0; i < n; i++)
            r[i] = (ranked){ fired(ly, n, lv, i), i }, all += r[i].count;
        qsort(r, (size_t)n, sizeof *r, ranked_cmp);
        for (int i = 0; i < top_count(n, 20); i++)
            *(i < top_count(n, 10) ? &t10 : &t20) += r[i].count;
        out->firing_share_top10[lv] = all ? (double)t10 / all : 0;
        out->firing_share_top20[lv] = all ? (double)(t10 + t20) / all : 0;
    }
    /* r is now ranked by firing at the last level, 0.99. */
    double all = 0, m10 = 0, m20 = 0;
    for (int i = 0; i < n; i++)
        all += ly->mass[i];
    for (int i = 0; i < top_count(n, 20); i++)
        *(i < top_count(n, 10) ? &m10 : &m20) += ly->mass[r[i].i];
    out->mass_share_top10 = all > 0 ? m10 / all : 0;
    out->mass_share_top20 = all > 0 ? (m10 + m20) / all : 0;
}

static void summarize(const pi_actstats *s, int il, ranked *r, pi_actstats_summary *out)
{
    const layer *ly = &s->layers[il];
    const int n = s->n_ff;
    memset(out, 0, sizeof *out);
    out->tokens = ly->tokens;
    out->nonfinite = ly->nonfinite;
    out->mag_zeros = ly->mag[SLOT_ZERO];
    out->mag_max = ly->mag_max;
    concentration(s, ly, r, out);
    if (ly->tokens > 0) {
        for (int lv = 0; lv < L; lv++) {
            const int64_t *h = ly->needed + (size_t)lv * (n + 1);
            double sum = 0;
            for (int k = 0; k <= n; k++)
                sum += (double)k * (double)h[k];
            out->needed_mean[lv] = sum / (double)ly->tokens / n;
            out->needed_p10[lv] = hist_percentile(h, n, ly->tokens, 0.10);
            out->needed_p50[lv] = hist_percentile(h, n, ly->tokens, 0.50);
            out->needed_p90[lv] = hist_percentile(h, n, ly->tokens, 0.90);
        }
    }
    int64_t finite = 0;
    for (int slot = 0; slot < N_SLOT; slot++)
        finite += ly->mag[slot];
    if (finite > 0) {
        double sum = 0; /* non-finite values added 0 to the neurons' mass */
        for (int i = 0; i < n; i++)
            sum += ly->mass[i];
        out->mag_mean = sum / (double)finite;
        out->mag_p50 = mag_percentile(ly, finite, 0.50);
        out->mag_p90 = mag_percentile(ly, finite, 0.90);
        out->mag_p99 = mag_percentile(ly, finite, 0.99);
    }
}

int pi_actstats_summary_get(const pi_actstats *s, int il, pi_actstats_summary *out,
                            pi_err *err)
{
    if (!s || il < 0 || il >= s->n_layer)
        return pi_err_set(err, "activation statistics: no layer %d", il);
    ranked *r = malloc((size_t)s->n_ff * sizeof *r);
    if (!r)
        return pi_err_set(err, "activation statistics: out of memory");
    summarize(s, il, r, out);
    free(r);
    return 0;
}

int pi_actstats_frequency(const pi_actstats *s, int il, int lv, double *out)
{
    if (!s || il < 0 || il >= s->n_layer || lv < 0 || lv >= L)
        return -1;
    const layer *ly = &s->layers[il];
    for (int i = 0; i < s->n_ff; i++)
        out[i] = ly->tokens ? (double)fired(ly, s->n_ff, lv, i) / (double)ly->tokens : 0;
    return 0;
}

/* ---- Writing ---- */

/* %.6g, but an exponent always comes with a decimal point ("1.0e-06"):
 * YAML 1.1 readers such as PyYAML take "1e-06" for a string.  Returned by
 * value so that several fit in one fprintf. */
typedef struct num {
    char s[32];
} num;

static num fmt(double x)
{
    num r;
    if (!isfinite(x)) {
        snprintf(r.s, sizeof r.s, "%s", x != x ? ".nan" : x > 0 ? ".inf" : "-.inf");
        return r;
    }
    char buf[24];
    snprintf(buf, sizeof buf, "%.6g", x);
    char *e = strchr(buf, 'e');
    if (e && !strchr(buf, '.'))
        snprintf(r.s, sizeof r.s, "%.*s.0%s", (int)(e - buf), buf, e);
    else
        snprintf(r.s, sizeof r.s, "%s", buf);
    return r;
}

static void put_str(FILE *f, const char *s)
{
    if (s)
        pi_json_write_str(f, s, strlen(s)); /* JSON strings are YAML strings */
    else
        fputs("null", f);
}

/* {"0.9": x, "0.95": y, "0.99": z} */
static void put_levels(FILE *f, const char *key, const double *v)
{
    fprintf(f, "    %s: {\"%s\": %s, \"%s\": %s, \"%s\": %s}\n", key,
            pi_actstats_level_names[0], fmt(v[0]).s, pi_actstats_level_names[1],
            fmt(v[1]).s, pi_actstats_level_names[2], fmt(v[2]).s);
}

static void put_magnitude(FILE *f, const layer *ly, const pi_actstats_summary *sm)
{
    fprintf(f, "    magnitude:\n      mean: %s\n      p50: %s\n      p90: %s\n"
            "      p99: %s\n      max: %s\n", fmt(sm->mag_mean).s, fmt(sm->mag_p50).s,
            fmt(sm->mag_p90).s, fmt(sm->mag_p99).s, fmt(sm->mag_max).s);
    /* counts: below 2^FIRST_EXP, then one per octave, then everything larger. */
    fprintf(f, "      log2_histogram:\n        first_exponent: %d\n        zeros: %lld\n"
            "        counts: [%lld", FIRST_EXP, (long long)ly->mag[SLOT_ZERO],
            (long long)ly->mag[SLOT_UNDER]);
    for (int o = 0; o < N_OCTAVE; o++) {
        int64_t c = 0;
        for (int j = 0; j < 16; j++)
            c += ly->mag[SLOT_FINE + o * 16 + j];
        fprintf(f, ", %lld", (long long)c);
    }
    fprintf(f, ", %lld]\n", (long long)ly->mag[SLOT_OVER]);
}

static void put_layer(FILE *f, const pi_actstats *s, int il, const pi_actstats_summary *sm)
{
    const layer *ly = &s->layers[il];
    fprintf(f, "  - layer: %d\n    tokens: %lld\n    nonfinite: %lld\n    needed_fraction:\n",
            il, (long long)ly->tokens, (long long)ly->nonfinite);
    for (int lv = 0; lv < L; lv++)
        fprintf(f, "      \"%s\": {mean: %s, p10: %s, p50: %s, p90: %s}\n",
                pi_actstats_level_names[lv], fmt(sm->needed_mean[lv]).s,
                fmt(sm->needed_p10[lv]).s, fmt(sm->needed_p50[lv]).s,
                fmt(sm->needed_p90[lv]).s);
    put_levels(f, "firing_share_top10", sm->firing_share_top10);
    put_levels(f, "firing_share_top20", sm->firing_share_top20);
    fprintf(f, "    mass_share_top10: %s\n    mass_share_top20: %s\n",
            fmt(sm->mass_share_top10).s, fmt(sm->mass_share_top20).s);
    put_magnitude(f, ly, sm);
    fputs("    frequency:\n", f);
    for (int lv = 0; lv < L; lv++) {
        fprintf(f, "      \"%s\": [", pi_actstats_level_names[lv]);
        for (int i = 0; i < s->n_ff; i++) {
            int64_t c = fired(ly, s->n_ff, lv, i);
            fprintf(f, "%s%s", i ? ", " : "", fmt(ly->tokens ? (double)c / ly->tokens : 0).s);
        }
        fputs("]\n", f);
    }
}

int pi_actstats_write_yaml(const pi_actstats *s, const pi_actstats_meta *meta, FILE *f,
                           const char *name, pi_err *err)
{
    ranked *r = s ? malloc((size_t)s->n_ff * sizeof *r) : NULL;
    if (!r)
        return pi_err_set(err, "%s: %s", name, s ? "out of memory" : "no statistics");
    int64_t tokens = 0;
    for (int il = 0; il < s->n_layer; il++)
        if (s->layers[il].tokens > tokens)
            tokens = s->layers[il].tokens;
    fputs("# FFN activation statistics from pi-profile --stats; pi-pack reads the "
          "frequencies.\n# needed_fraction: share of neurons needed per token to keep "
          "each fraction of |a| mass.\nformat: pi-actstats\nversion: 1\nmodel: ", f);
    put_str(f, meta ? meta->model : NULL);
    fprintf(f, "\nfingerprint: \"0x%016llx\"\narch: ",
            (unsigned long long)(meta ? meta->fingerprint : 0));
    put_str(f, meta ? meta->arch : NULL);
    fprintf(f, "\nctx: %d\nn_layer: %d\nn_ff: %d\ntokens: %lld\nlevels: [%s, %s, %s]\n"
            "layers:\n", meta ? meta->ctx : 0, s->n_layer, s->n_ff, (long long)tokens,
            pi_actstats_level_names[0], pi_actstats_level_names[1],
            pi_actstats_level_names[2]);
    for (int il = 0; il < s->n_layer && !ferror(f); il++) {
        pi_actstats_summary sm;
        summarize(s, il, r, &sm);
        put_layer(f, s, il, &sm);
    }
    free(r);
    if (fflush(f) || ferror(f))
        return pi_err_set(err, "%s: write error", name);
    return 0;
}
