/*
 * train_label: the parts of training that judge rather than fit (see
 * train.h): each token's labels, the weighted cross-entropy, measuring a
 * stored predictor, and setting its threshold for a recall target.
 */
#include "train_impl.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"

#define S PI_TRAIN_SLICE
#define EVAL_BLOCK 64        /* tokens per chunk when evaluating a predictor */

/* ---- labels ---- */

/* Sorts n (key, index) pairs by increasing key, stably: a radix sort on
 * the top 16 bits (two 8-bit passes; tmp holds 2n), then an insertion sort
 * that only has to move entries within runs of equal top bits. */
static void sort_keys(uint32_t *key, uint32_t *idx, uint32_t *tmp, int n)
{
    uint32_t *k2 = tmp, *i2 = tmp + n;
    for (int shift = 16; shift < 32; shift += 8) {
        int count[257] = { 0 };
        for (int i = 0; i < n; i++)
            count[((key[i] >> shift) & 255) + 1]++;
        if (count[((key[0] >> shift) & 255) + 1] == n)
            continue; /* every key has this byte */
        for (int b = 0; b < 256; b++)
            count[b + 1] += count[b];
        for (int i = 0; i < n; i++) {
            int at = count[(key[i] >> shift) & 255]++;
            k2[at] = key[i];
            i2[at] = idx[i];
        }
        memcpy(key, k2, (size_t)n * sizeof *key);
        memcpy(idx, i2, (size_t)n * sizeof *idx);
    }
    for (int i = 1; i < n; i++) {
        uint32_t k = key[i], x = idx[i];
        int j = i;
        for (; j > 0 && key[j - 1] > k; j--) {
            key[j] = key[j - 1];
            idx[j] = idx[j - 1];
        }
        key[j] = k;
        idx[j] = x;
    }
}

static tokinfo token_labels(const float *act, int n, float keep_mass, float thr,
                            uint32_t *scratch)
{
    tokinfo t = { INFINITY, -1, 0, 0.0f };
    if (isfinite(thr)) {
        double sum = 0;
        t.cut = thr;
        for (int i = 0; i < n; i++)
            if (mag(act[i]) > thr) {
                t.npos++;
                sum += mag(act[i]);
            }
        t.mpos = (float)sum;
        return t;
    }
    uint32_t *key = scratch, *idx = scratch + n;
    for (int i = 0; i < n; i++) {
        float m = mag(act[i]);
        uint32_t bits;
        memcpy(&bits, &m, 4);
        key[i] = ~bits; /* non-negative floats order like their bits */
        idx[i] = (uint32_t)i;
    }
    sort_keys(key, idx, scratch + 2 * n, n);
    double total = 0, sum = 0;
    for (int j = 0; j < n; j++)
        total += mag(act[idx[j]]);
    if (total <= 0)
        return t;
    double goal = keep_mass * total;
    int k = 0;
    while (k < n && sum < goal)
        sum += mag(act[idx[k++]]);
    t.cut = mag(act[idx[k - 1]]);
    t.last = (int32_t)idx[k - 1];
    t.npos = k;
    t.mpos = (float)sum;
    return t;
}

int pi_train_labels(const float *act, int n_ff, float keep_mass, float label_threshold,
                    uint32_t *scratch, uint8_t *label)
{
    tokinfo t = token_labels(act, n_ff, keep_mass, label_threshold, scratch);
    for (int i = 0; i < n_ff; i++)
        label[i] = positive(&t, mag(act[i]), i);
    return t.npos;
}

/* ---- the loss ---- */

double pi_train_bce_row_scalar(int n, const float *act, float cut, int32_t last, float c0,
                               float c1, float scale, float *z)
{
    double loss = 0;
    for (int i = 0; i < n; i++) {
        float m = mag(act[i]), zi = z[i];
        bool y = m > cut || (m == cut && i <= last);
        float w = y ? c0 + c1 * m : 1.0f, e = expf(-fabsf(zi));
        float p = zi >= 0 ? 1.0f / (1.0f + e) : e / (1.0f + e);
        /* logf(1 + e) rather than log1pf(e): as good for a loss, and faster */
        loss += w * ((zi > 0 ? zi : 0.0f) - (y ? zi : 0.0f) + logf(1.0f + e));
        z[i] = w * (p - (float)y) * scale;
    }
    return loss;
}

/* Chosen once; read-only afterwards (set under pthread_once). */
static bool use_avx2;
static pthread_once_t avx2_once = PTHREAD_ONCE_INIT;

static void pick_isa(void)
{
    const pi_cpu *c = pi_cpu_features();
    use_avx2 = c->avx2 && c->fma;
}

double pi_train_bce_row(int n, const float *act, float cut, int32_t last, float c0, float c1,
                        float scale, float *z)
{
    pthread_once(&avx2_once, pick_isa);
    return use_avx2 ? pi_train_bce_row_avx2(n, act, cut, last, c0, c1, scale, z)
                    : pi_train_bce_row_scalar(n, act, cut, last, c0, c1, scale, z);
}

/* ---- shared machinery ---- */

void pi_tr_run(pi_pool *pool, int64_t n, pi_pool_fn fn, void *arg)
{
    if (pool)
        pi_pool_for(pool, n, fn, arg);
    else
        for (int64_t k = 0; k < n; k++)
            fn(arg, k, 0);
}

int pi_tr_check_params(const pi_train_params *prm, pi_err *err)
{
    if (isfinite(prm->label_threshold) ? prm->label_threshold < 0
                                       : !(prm->keep_mass > 0 && prm->keep_mass <= 1))
        return pi_err_set(err, "label: keep mass must be in (0, 1], threshold >= 0");
    if (!(prm->recall_target > 0 && prm->recall_target <= 1))
        return pi_err_set(err, "recall target %g is not in (0, 1]", prm->recall_target);
    if (prm->rank < 0 || prm->rank > PI_PREDICTOR_MAX_RANK)
        return pi_err_set(err, "rank %d out of range (0 to %d)", prm->rank,
                          PI_PREDICTOR_MAX_RANK);
    if (!(prm->lr > 0 && prm->lr < 1) || !(prm->beta1 >= 0 && prm->beta1 < 1) ||
        !(prm->beta2 >= 0 && prm->beta2 < 1))
        return pi_err_set(err, "Adam: lr must be in (0, 1), betas in [0, 1)");
    if (prm->batch < 1 || prm->batch > PI_TRAIN_MAX_BATCH || prm->max_epochs < 1 ||
        prm->patience < 1)
        return pi_err_set(err, "batch (1 to %d), epochs and patience (>= 1) out of range",
                          PI_TRAIN_MAX_BATCH);
    if (prm->pos_mode != PI_TRAIN_POS_BALANCED &&
        !(prm->pos_mode == PI_TRAIN_POS_FIXED && prm->pos_weight > 0 &&
          prm->pos_weight <= 1e6f))
        return pi_err_set(err, "positive weight must be balanced or a number in (0, 1e6]");
    if (!(prm->mass_weight >= 0 && prm->mass_weight <= 1))
        return pi_err_set(err, "mass weight %g is not in [0, 1]", prm->mass_weight);
    return 0;
}

/* Labels of every token of a data set, in parallel; also checks that x is
 * finite (bad: the first token that is not, else -1). */
typedef struct label_job {
    const pi_train_data *data;
    int d, ff;
    float keep_mass, thr;
    uint32_t *scratch; /* 4 * ff per thread */
    tokinfo *tok;
    int64_t *bad;      /* per chunk */
} label_job;

#define LABEL_CHUNK 256

static void label_chunk(void *arg, int64_t c, int ith)
{
    label_job *j = arg;
    int64_t t1 = (c + 1) * LABEL_CHUNK < j->data->n ? (c + 1) * LABEL_CHUNK : j->data->n;
    j->bad[c] = -1;
    for (int64_t t = c * LABEL_CHUNK; t < t1; t++) {
        const float *x = j->data->x + t * j->d;
        for (int k = 0; k < j->d; k++)
            if (!isfinite(x[k]) && j->bad[c] < 0)
                j->bad[c] = t;
        j->tok[t] = token_labels(j->data->act + t * j->ff, j->ff, j->keep_mass, j->thr,
                                 j->scratch + (size_t)ith * 4 * j->ff);
    }
}

tokinfo *pi_tr_make_labels(const pi_train_data *data, int d, int ff,
                            const pi_train_params *prm, pi_pool *pool, const char *what,
                            pi_err *err)
{
    int nt = pool ? pi_pool_size(pool) : 1;
    int64_t nc = (data->n + LABEL_CHUNK - 1) / LABEL_CHUNK;
    label_job j = { data, d, ff, prm->keep_mass, prm->label_threshold,
                    malloc((size_t)nt * 4 * (size_t)ff * sizeof(uint32_t)),
                    malloc((size_t)data->n * sizeof(tokinfo)),
                    malloc((size_t)nc * sizeof(int64_t)) };
    if (!j.scratch || !j.tok || !j.bad) {
        pi_err_set(err, "out of memory");
        goto fail;
    }
    pi_tr_run(pool, nc, label_chunk, &j);
    for (int64_t c = 0; c < nc; c++)
        if (j.bad[c] >= 0) {
            pi_err_set(err, "%s token %lld: input is not finite", what, (long long)j.bad[c]);
            goto fail;
        }
    free(j.scratch);
    free(j.bad);
    return j.tok;
fail:
    free(j.scratch);
    free(j.tok);
    free(j.bad);
    return NULL;
}

int pi_tr_check_data(const pi_train_data *d, const char *what, pi_err *err)
{
    if (!d || d->n < 1 || !d->x || !d->act)
        return pi_err_set(err, "no %s tokens", what);
    return 0;
}

/* ---- evaluating a stored predictor ---- */

/* Positives, predicted active, both; the masses of positives and of both,
 * and sums over tokens of their squares and product (for the error). */
typedef struct tally {
    int64_t pos, on, both;
    double mpos, mboth, pp, bb, pb;
} tally;

typedef struct eval_job {
    const pi_predictor *p;
    int il, ff;
    const pi_train_data *data;
    const tokinfo *tok;
    float *logits;   /* all tokens' (calibration), or EVAL_BLOCK * ff per thread */
    bool keep;       /* logits of all tokens are kept */
    float thr;
    tally *tl;       /* per chunk */
} eval_job;

static void eval_chunk(void *arg, int64_t c, int ith)
{
    eval_job *j = arg;
    int64_t t0 = c * EVAL_BLOCK, n = j->data->n - t0 < EVAL_BLOCK ? j->data->n - t0 : EVAL_BLOCK;
    int d = pi_predictor_n_embd(j->p);
    float *z = j->keep ? j->logits + t0 * j->ff : j->logits + (size_t)ith * EVAL_BLOCK * j->ff;
    pi_predictor_layer_logits(j->p, j->il, j->data->x + t0 * d, n, z);
    if (j->keep)
        return;
    tally s = { 0 };
    for (int64_t t = 0; t < n; t++) {
        const float *a = j->data->act + (t0 + t) * j->ff, *zt = z + t * j->ff;
        double p = 0, b = 0;
        for (int i = 0; i < j->ff; i++) {
            float m = mag(a[i]);
            bool y = positive(&j->tok[t0 + t], m, i), on = zt[i] > j->thr;
            s.pos += y;
            s.on += on;
            s.both += y && on;
            p += y ? m : 0.0;
            b += y && on ? m : 0.0;
        }
        s.mpos += p;
        s.mboth += b;
        s.pp += p * p;
        s.bb += b * b;
        s.pb += p * b;
    }
    j->tl[c] = s;
}

int pi_tr_evaluate(const pi_predictor *p, int il, const pi_train_data *data,
                    const tokinfo *tok, pi_pool *pool, pi_train_eval *out, pi_err *err)
{
    pi_predictor_layer ly;
    pi_predictor_get_layer(p, il, &ly);
    int ff = pi_predictor_n_ff(p), nt = pool ? pi_pool_size(pool) : 1;
    int64_t nc = (data->n + EVAL_BLOCK - 1) / EVAL_BLOCK;
    eval_job j = { p, il, ff, data, tok, malloc((size_t)nt * EVAL_BLOCK * ff * sizeof(float)),
                   false, ly.threshold, malloc((size_t)nc * sizeof(tally)) };
    int rc = 0;
    if (j.logits && j.tl) {
        pi_tr_run(pool, nc, eval_chunk, &j);
        tally s = { 0 };
        for (int64_t c = 0; c < nc; c++) {
            s.pos += j.tl[c].pos;
            s.on += j.tl[c].on;
            s.both += j.tl[c].both;
            s.mpos += j.tl[c].mpos;
            s.mboth += j.tl[c].mboth;
            s.pp += j.tl[c].pp;
            s.bb += j.tl[c].bb;
            s.pb += j.tl[c].pb;
        }
        double cells = (double)data->n * ff, r = s.mpos > 0 ? s.mboth / s.mpos : 1.0;
        /* The ratio estimator's deviation: sum over tokens of (b - r p)^2. */
        double dev = s.bb - 2 * r * s.pb + r * r * s.pp;
        *out = (pi_train_eval){ .tokens = data->n,
                                .recall_count = s.pos ? (double)s.both / s.pos : 1.0,
                                .recall_mass = r,
                                .recall_mass_se = s.mpos > 0 && dev > 0 ? sqrt(dev) / s.mpos : 0,
                                .precision = s.on ? (double)s.both / s.on : 1.0,
                                .active_fraction = s.on / cells,
                                .label_fraction = s.pos / cells };
    } else {
        rc = pi_err_set(err, "out of memory");
    }
    free(j.logits);
    free(j.tl);
    return rc;
}

int pi_tr_check_layer(const pi_predictor *p, int il, const pi_train_params *prm,
                       const pi_train_data *data, pi_err *err)
{
    pi_predictor_layer ly;
    if (pi_predictor_get_layer(p, il, &ly) || !ly.rank)
        return pi_err_set(err, "no predictor");
    return pi_tr_check_params(prm, err) || pi_tr_check_data(data, "validation", err) ? -1 : 0;
}

/* The public entry points name the layer in their messages. */
int pi_tr_layer_error(pi_err *err, int il, const pi_err *e)
{
    return pi_err_set(err, "layer %d: %s", il, e->msg);
}

int pi_train_evaluate(const pi_predictor *p, int il, const pi_train_params *prm,
                      const pi_train_data *data, pi_pool *pool, pi_train_eval *out,
                      pi_err *err)
{
    pi_err e;
    if (pi_tr_check_layer(p, il, prm, data, &e))
        return pi_tr_layer_error(err, il, &e);
    tokinfo *tok = pi_tr_make_labels(data, pi_predictor_n_embd(p), pi_predictor_n_ff(p), prm, pool,
                               "validation", &e);
    int rc = tok ? pi_tr_evaluate(p, il, data, tok, pool, out, &e) : -1;
    free(tok);
    return rc ? pi_tr_layer_error(err, il, &e) : 0;
}

/* ---- calibration ---- */

static inline uint32_t order_key(float z) /* increasing with z */
{
    uint32_t u;
    memcpy(&u, &z, 4);
    return u & 0x80000000u ? ~u : u | 0x80000000u;
}

typedef struct zm {
    float z, m;
} zm;

static int zm_desc(const void *pa, const void *pb)
{
    float a = ((const zm *)pa)->z, b = ((const zm *)pb)->z;
    return (a < b) - (a > b);
}

/* The logit of the positive at which the running mass, in decreasing order
 * of logit, first reaches target: a histogram of the mass over the top 16
 * bits of the logits' order keys finds the bucket, whose entries alone are
 * then sorted. */
static int find_cut(const float *z, const pi_train_data *data, const tokinfo *tok, int ff,
                    double target, float *cut, pi_err *err)
{
    double *hist = calloc(65536, sizeof *hist), total = 0;
    int64_t *count = calloc(65536, sizeof *count);
    zm *e = NULL;
    int rc = pi_err_set(err, "out of memory");
    for (int64_t t = 0; hist && count && t < data->n; t++)
        for (int i = 0; i < ff; i++) {
            float m = mag(data->act[t * ff + i]);
            if (positive(&tok[t], m, i)) {
                uint32_t b = order_key(z[t * ff + i]) >> 16;
                hist[b] += m;
                count[b]++;
                total += m;
            }
        }
    if (!hist || !count)
        goto done;
    if (!(total > 0)) {
        rc = pi_err_set(err, "impossible target: no positive labels in the validation tokens");
        goto done;
    }
    /* Stop at the bucket where the goal is reached, or at the lowest one
     * holding any mass should rounding leave the goal out of reach. */
    int b = 65535, lo = 0;
    while (!(hist[lo] > 0))
        lo++;
    double goal = target * total, sum = 0;
    while (b > lo && sum + hist[b] < goal)
        sum += hist[b--];
    int64_t n = 0;
    if (!(e = malloc((size_t)count[b] * sizeof *e)))
        goto done;
    for (int64_t t = 0; t < data->n; t++)
        for (int i = 0; i < ff; i++) {
            float m = mag(data->act[t * ff + i]), zi = z[t * ff + i];
            if (positive(&tok[t], m, i) && order_key(zi) >> 16 == (uint32_t)b)
                e[n++] = (zm){ zi, m };
        }
    qsort(e, (size_t)n, sizeof *e, zm_desc);
    int64_t k = 0;
    while (k < n - 1 && (sum += e[k].m) < goal)
        k++;
    *cut = e[k].z; /* rounding may leave the goal a hair short: take the bucket */
    rc = 0;
done:
    free(hist);
    free(count);
    free(e);
    return rc;
}

int pi_tr_calibrate(pi_predictor *p, int il, const pi_train_params *prm,
                     const pi_train_data *data, const tokinfo *tok, pi_pool *pool, pi_err *err)
{
    int ff = pi_predictor_n_ff(p);
    eval_job j = { .p = p, .il = il, .ff = ff, .data = data, .tok = tok, .keep = true,
                   .logits = malloc((size_t)data->n * ff * sizeof(float)) };
    if (!j.logits)
        return pi_err_set(err, "out of memory");
    pi_tr_run(pool, (data->n + EVAL_BLOCK - 1) / EVAL_BLOCK, eval_chunk, &j);
    float cut = 0;
    int rc = 0;
    for (int64_t i = 0; i < data->n * ff && !rc; i++)
        if (!isfinite(j.logits[i]))
            rc = pi_err_set(err, "predictor logits are not finite");
    if (!rc)
        rc = find_cut(j.logits, data, tok, ff, prm->recall_target, &cut, err);
    free(j.logits);
    /* Active means z > threshold: the largest float below the cut keeps it. */
    float thr = nextafterf(cut, -INFINITY);
    if (!rc && pi_predictor_set_threshold(p, il, isfinite(thr) ? thr : -FLT_MAX))
        rc = pi_err_set(err, "no predictor");
    return rc;
}

int pi_train_calibrate(pi_predictor *p, int il, const pi_train_params *prm,
                       const pi_train_data *val, pi_pool *pool, pi_err *err)
{
    pi_err e;
    if (pi_tr_check_layer(p, il, prm, val, &e))
        return pi_tr_layer_error(err, il, &e);
    tokinfo *tok = pi_tr_make_labels(val, pi_predictor_n_embd(p), pi_predictor_n_ff(p), prm, pool,
                               "validation", &e);
    int rc = tok ? pi_tr_calibrate(p, il, prm, val, tok, pool, &e) : -1;
    free(tok);
    return rc ? pi_tr_layer_error(err, il, &e) : 0;
}
