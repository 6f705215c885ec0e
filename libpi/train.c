/*
 * train: one layer's predictor from recorded activations (see train.h).
 *
 * Labels are never stored per neuron: each token keeps the magnitude at
 * which its positive set is cut (and the index of the last positive among
 * equal magnitudes), so a label is one comparison against the activation
 * row that the loss reads anyway.
 *
 * Training works in a padded, transposed layout in which every product is
 * pi_predictor_gemm with a long inner dimension: W1T (dp x rp) and W2T
 * (rp x fp), plus a copy of W2 (fp x rp) for the backward product, with
 * n_embd, rank and n_ff rounded up to multiples of 8 (dp, rp, fp).  Padding
 * is zero and stays zero: its inputs are zero, so its gradients are zero,
 * and Adam does not move a weight whose gradient has always been zero.
 *
 * A step has two parallel loops.  Over slices of S rows of the minibatch
 * (X standardised):
 *
 *   H  = relu(X W1T + b1)        S x rp
 *   Z  = H W2T + b2              S x fp
 *   G  = dLoss/dZ                S x fp        kept for the batch
 *   dH = (G W2) * [H > 0]        S x rp        kept, with X^T and H^T
 *
 * then over blocks of parameters, each summing its gradient over all the
 * minibatch's rows and taking its Adam step:
 *
 *   dW2T = H^T G, db2 = colsum G    (column blocks of W2T, with b2)
 *   dW1T = X^T dH                   (row blocks of W1T)
 *   db1  = colsum dH
 *
 * so no thread's partial sums ever need adding up (see train.h).
 */
#include "train_impl.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"

#define S PI_TRAIN_SLICE
#define EVAL_BLOCK 64        /* tokens per chunk when evaluating a predictor */
#define ADAM_EPS 1e-8

void pi_train_params_default(pi_train_params *p)
{
    *p = (pi_train_params){ .rank = 0, .lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f,
                            .batch = 256, .max_epochs = 20, .patience = 3, .seed = 0,
                            .keep_mass = 0.99f, .label_threshold = NAN,
                            .recall_target = 0.99f, .pos_mode = PI_TRAIN_POS_BALANCED,
                            .pos_weight = 1.0f, .mass_weight = 1.0f };
}

int pi_train_default_rank(int n_embd, int n_ff)
{
    double r = round(0.05 * 3.0 * n_embd * n_ff / ((double)n_embd + n_ff));
    return r < 1 ? 1 : r > PI_PREDICTOR_MAX_RANK ? PI_PREDICTOR_MAX_RANK : (int)r;
}

/* ---- training ---- */

/* splitmix64: small, fast, statistically sound, the same everywhere. */
typedef uint64_t rng;

static uint64_t rng_next(rng *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static float rng_uniform(rng *r, float a) /* in [-a, a) */
{
    return a * ((float)(rng_next(r) >> 40) * 0x1p-23f - 1.0f);
}

typedef struct trainer {
    const pi_train_params *prm;
    int d, ff, r, dp, rp, fp;
    int64_t np, o_b1, o_w2, o_b2; /* parameter count; offsets of b1, W2T, b2 */
    float *w, *w2, *m, *v, *best; /* w: W1T, b1, W2T, b2; w2: W2 (fp x rp) */
    float *mu, *isd;              /* standardisation of x (dp each) */
    float wpos;
    /* The minibatch, bcap rows (a multiple of S): standardised inputs and
     * hidden activations transposed (dp x bcap, rp x bcap), dL/dz and dL/dh
     * (bcap x fp, bcap x rp). */
    float *xt, *ht, *g, *dh;
    int64_t bcap;
    float *scr;                   /* per thread: scr_n floats */
    size_t scr_n;
    /* The pass under way: rows [start, start + n) of `rows` (NULL: of the
     * data in order), in slices of S. */
    const pi_train_data *data;
    const tokinfo *tok;
    const int64_t *rows;
    int64_t start, n, nslices;
    bool backward;
    float scale;
    double *loss;                 /* per slice */
    float lr_t, eps_t;            /* this step's bias-corrected Adam */
} trainer;

#define CW 128 /* columns of W2T per chunk of the update */
#define RW 64  /* rows of W1T per chunk of the update */

/* Forward pass of one slice, the loss gradient in place of the logits and,
 * in training, dL/dh and the transposed copies the update needs. */
static void slice_pass(void *arg, int64_t sl, int ith)
{
    trainer *t = arg;
    int d = t->d, ff = t->ff, dp = t->dp, rp = t->rp, fp = t->fp;
    int64_t r0 = sl * S, ns = t->n - r0 < S ? t->n - r0 : S;
    float *xs = t->scr + (size_t)ith * t->scr_n, *h = xs + S * dp, *z = h + S * rp;
    if (t->backward)
        z = t->g + r0 * fp;
    for (int s = 0; s < S; s++) {
        float *xr = xs + (size_t)s * dp;
        memset(xr, 0, (size_t)dp * sizeof(float));
        if (s < ns) {
            int64_t row = t->start + r0 + s;
            const float *x = t->data->x + (t->rows ? t->rows[row] : row) * d;
            for (int k = 0; k < d; k++)
                xr[k] = (x[k] - t->mu[k]) * t->isd[k];
        }
        memcpy(h + (size_t)s * rp, t->w + t->o_b1, (size_t)rp * sizeof(float));
        memcpy(z + (size_t)s * fp, t->w + t->o_b2, (size_t)fp * sizeof(float));
    }
    pi_predictor_gemm(S, rp, dp, xs, dp, t->w, rp, h, rp);
    for (int i = 0; i < S * rp; i++)
        h[i] = h[i] > 0.0f ? h[i] : 0.0f;
    pi_predictor_gemm(S, fp, rp, h, rp, t->w + t->o_w2, fp, z, fp);
    double loss = 0;
    float mw = t->prm->mass_weight;
    for (int s = 0; s < S; s++) {
        float *zr = z + (size_t)s * fp;
        memset(zr + ff, 0, (size_t)(fp - ff) * sizeof(float));
        if (s >= ns) {
            memset(zr, 0, (size_t)ff * sizeof(float));
            continue;
        }
        int64_t row = t->start + r0 + s;
        row = t->rows ? t->rows[row] : row;
        const tokinfo *ti = &t->tok[row];
        float c1 = ti->mpos > 0 ? t->wpos * mw * ti->npos / ti->mpos : 0;
        loss += pi_train_bce_row(ff, t->data->act + row * ff, ti->cut, ti->last,
                                 t->wpos * (1 - mw), c1, t->scale, zr);
    }
    t->loss[sl] = loss;
    if (!t->backward)
        return;
    float *dh = t->dh + r0 * rp;
    memset(dh, 0, (size_t)S * rp * sizeof(float));
    pi_predictor_gemm(S, rp, fp, z, fp, t->w2, rp, dh, rp);
    for (int i = 0; i < S * rp; i++)
        dh[i] = h[i] > 0.0f ? dh[i] : 0.0f;
    for (int k = 0; k < dp; k++)
        for (int s = 0; s < S; s++)
            t->xt[k * t->bcap + r0 + s] = xs[s * dp + k];
    for (int j = 0; j < rp; j++)
        for (int s = 0; s < S; s++)
            t->ht[j * t->bcap + r0 + s] = h[s * rp + j];
}

static inline void adam(trainer *t, int64_t p, float g)
{
    float b1 = t->prm->beta1, b2 = t->prm->beta2;
    t->m[p] = b1 * t->m[p] + (1 - b1) * g;
    t->v[p] = b2 * t->v[p] + (1 - b2) * g * g;
    t->w[p] -= t->lr_t * t->m[p] / (sqrtf(t->v[p]) + t->eps_t);
}

/* One chunk of the update: the gradient of a block of parameters over the
 * whole minibatch (each a sum over its rows in order, whoever computes it),
 * then the Adam step on that block.  Chunks: columns of W2T with b2, rows
 * of W1T, and b1. */
static void update_chunk(void *arg, int64_t c, int ith)
{
    trainer *t = arg;
    int rp = t->rp, fp = t->fp, nw2 = (fp + CW - 1) / CW, nw1 = (t->dp + RW - 1) / RW;
    int64_t K = t->nslices * S, B = t->bcap;
    float *buf = t->scr + (size_t)ith * t->scr_n;
    if (c < nw2) {
        int c0 = (int)c * CW, cw = fp - c0 < CW ? fp - c0 : CW;
        memset(buf, 0, (size_t)rp * cw * sizeof(float));
        pi_predictor_gemm(rp, cw, K, t->ht, B, t->g + c0, fp, buf, cw);
        for (int j = 0; j < rp; j++)
            for (int i = c0; i < c0 + cw; i++) {
                adam(t, t->o_w2 + (int64_t)j * fp + i, buf[j * cw + i - c0]);
                t->w2[(size_t)i * rp + j] = t->w[t->o_w2 + (int64_t)j * fp + i];
            }
        /* Row by row, so that the bias sums read memory in order. */
        memset(buf, 0, (size_t)cw * sizeof(float));
        for (int64_t b = 0; b < K; b++)
            for (int i = 0; i < cw; i++)
                buf[i] += t->g[b * fp + c0 + i];
        for (int i = 0; i < cw; i++)
            adam(t, t->o_b2 + c0 + i, buf[i]);
    } else if (c < nw2 + nw1) {
        int r0 = (int)(c - nw2) * RW, rw = t->dp - r0 < RW ? t->dp - r0 : RW;
        memset(buf, 0, (size_t)rw * rp * sizeof(float));
        pi_predictor_gemm(rw, rp, K, t->xt + r0 * B, B, t->dh, rp, buf, rp);
        for (int i = 0; i < rw * rp; i++)
            adam(t, (int64_t)r0 * rp + i, buf[i]);
    } else {
        memset(buf, 0, (size_t)rp * sizeof(float));
        for (int64_t b = 0; b < K; b++)
            for (int j = 0; j < rp; j++)
                buf[j] += t->dh[b * rp + j];
        for (int j = 0; j < rp; j++)
            adam(t, t->o_b1 + j, buf[j]);
    }
}

/* Runs the slices of rows [start, start + n); returns their summed loss. */
static double pass(trainer *t, pi_pool *pool, const pi_train_data *data, const tokinfo *tok,
                   const int64_t *rows, int64_t start, int64_t n, bool backward)
{
    t->data = data;
    t->tok = tok;
    t->rows = rows;
    t->start = start;
    t->n = n;
    t->nslices = (n + S - 1) / S;
    t->backward = backward;
    t->scale = backward ? (float)(1.0 / ((double)n * t->ff)) : 1.0f;
    pi_tr_run(pool, t->nslices, slice_pass, t);
    double sum = 0;
    for (int64_t s = 0; s < t->nslices; s++)
        sum += t->loss[s];
    return sum;
}

static double train_epoch(trainer *t, pi_pool *pool, const pi_train_data *tr,
                          const tokinfo *tok, int64_t *perm, rng *rg, int64_t *step)
{
    for (int64_t i = tr->n - 1; i > 0; i--) {
        int64_t k = (int64_t)((rng_next(rg) >> 11) % (uint64_t)(i + 1)), tmp = perm[i];
        perm[i] = perm[k];
        perm[k] = tmp;
    }
    double sum = 0;
    const pi_train_params *prm = t->prm;
    for (int64_t b0 = 0; b0 < tr->n; b0 += prm->batch) {
        sum += pass(t, pool, tr, tok, perm, b0, tr->n - b0 < prm->batch ? tr->n - b0 : prm->batch,
                    true);
        ++*step;
        double c2 = sqrt(1 - pow(prm->beta2, (double)*step));
        t->lr_t = (float)(prm->lr * c2 / (1 - pow(prm->beta1, (double)*step)));
        t->eps_t = (float)(ADAM_EPS * c2);
        pi_tr_run(pool, (t->fp + CW - 1) / CW + (t->dp + RW - 1) / RW + 1, update_chunk, t);
    }
    return sum / ((double)tr->n * t->ff);
}

/* Mean and inverse deviation of each input dimension; a dimension whose
 * deviation is negligible against the others is ignored (0). */
static void standardise(trainer *t, const pi_train_data *tr)
{
    int d = t->d;
    double *s = calloc(2 * (size_t)d, sizeof *s), mean_sd = 0;
    if (!s)
        return; /* left at mean 0, scale 1 */
    for (int64_t i = 0; i < tr->n; i++)
        for (int k = 0; k < d; k++) {
            double x = tr->x[i * d + k];
            s[k] += x;
            s[d + k] += x * x;
        }
    for (int k = 0; k < d; k++) {
        double mu = s[k] / tr->n, var = s[d + k] / tr->n - mu * mu;
        t->mu[k] = (float)mu;
        s[d + k] = var > 0 ? sqrt(var) : 0;
        mean_sd += s[d + k] / d;
    }
    for (int k = 0; k < d; k++)
        t->isd[k] = s[d + k] > 1e-6 * mean_sd ? (float)(1 / s[d + k]) : 0.0f;
    free(s);
}

/* He-uniform W1, Glorot-uniform W2, b1 = 0, and b2 at each neuron's
 * (weighted) log-odds of being positive, so that training starts from the
 * base rates.  Also chooses the positive weight. */
static int init_weights(trainer *t, const pi_train_data *tr, const tokinfo *tok, pi_err *err)
{
    int64_t *cnt = calloc((size_t)t->ff, sizeof *cnt), npos = 0;
    if (!cnt)
        return pi_err_set(err, "out of memory");
    for (int64_t i = 0; i < tr->n; i++) {
        npos += tok[i].npos;
        for (int j = 0; j < t->ff; j++)
            cnt[j] += positive(&tok[i], mag(tr->act[i * t->ff + j]), j);
    }
    double neg = (double)tr->n * t->ff - npos;
    t->wpos = t->prm->pos_mode == PI_TRAIN_POS_FIXED ? t->prm->pos_weight
              : npos ? (float)fmin(fmax(neg / npos, 1), 100) : 1.0f;
    rng rg = t->prm->seed;
    float a1 = sqrtf(6.0f / t->d), a2 = sqrtf(6.0f / (float)(t->r + t->ff));
    for (int j = 0; j < t->r; j++)
        for (int k = 0; k < t->d; k++)
            t->w[(size_t)k * t->rp + j] = rng_uniform(&rg, a1);
    for (int j = 0; j < t->r; j++)
        for (int i = 0; i < t->ff; i++)
            t->w[t->o_w2 + (size_t)j * t->fp + i] = rng_uniform(&rg, a2);
    for (int i = 0; i < t->ff; i++) {
        double lo = log((t->wpos * cnt[i] + 0.5) / (tr->n - cnt[i] + 0.5));
        t->w[t->o_b2 + i] = (float)fmin(fmax(lo, -8), 8);
    }
    for (int j = 0; j < t->rp; j++)
        for (int i = 0; i < t->fp; i++)
            t->w2[(size_t)i * t->rp + j] = t->w[t->o_w2 + (size_t)j * t->fp + i];
    free(cnt);
    return 0;
}

static int trainer_alloc(trainer *t, int nthreads, int64_t n_val)
{
    t->dp = (t->d + 7) / 8 * 8;
    t->rp = (t->r + 7) / 8 * 8;
    t->fp = (t->ff + 7) / 8 * 8;
    t->o_b1 = (int64_t)t->dp * t->rp;
    t->o_w2 = t->o_b1 + t->rp;
    t->o_b2 = t->o_w2 + (int64_t)t->rp * t->fp;
    t->np = t->o_b2 + t->fp;
    t->bcap = ((int64_t)t->prm->batch + S - 1) / S * S;
    size_t slice = (size_t)S * (t->dp + t->rp + t->fp), upd = (size_t)t->rp * (CW > RW ? CW : RW);
    t->scr_n = slice > upd ? slice : upd;
    int64_t nloss = (n_val > t->bcap ? n_val : t->bcap) / S + 1;
    size_t np = (size_t)t->np, B = (size_t)t->bcap;
    float **arr[] = { &t->w, &t->m, &t->v, &t->best };
    for (int i = 0; i < 4; i++)
        *arr[i] = calloc(np, sizeof(float));
    t->w2 = calloc((size_t)t->rp * t->fp, sizeof(float));
    t->mu = calloc((size_t)t->dp * 2, sizeof(float));
    t->isd = t->mu ? t->mu + t->dp : NULL;
    t->xt = calloc(B * (t->dp + 2 * (size_t)t->rp + t->fp), sizeof(float));
    t->ht = t->xt ? t->xt + B * t->dp : NULL;
    t->dh = t->xt ? t->ht + B * t->rp : NULL;
    t->g = t->xt ? t->dh + B * t->rp : NULL;
    t->scr = malloc((size_t)nthreads * t->scr_n * sizeof(float));
    t->loss = malloc((size_t)nloss * sizeof(double));
    return t->w && t->m && t->v && t->best && t->w2 && t->mu && t->xt && t->scr && t->loss ? 0
                                                                                          : -1;
}

static void trainer_free(trainer *t)
{
    void *p[] = { t->w, t->m, t->v, t->best, t->w2, t->mu, t->xt, t->scr, t->loss };
    for (size_t i = 0; i < sizeof p / sizeof *p; i++)
        free(p[i]);
}

/* The trained weights in the predictor's layout: standardisation folded
 * into W1 and b1 (W1 rounded to the storage type first, so that b1 absorbs
 * the rounding of the mean's share), padding dropped. */
static void export_layer(const trainer *t, pi_type wtype, float *w1, float *b1, float *w2,
                         float *b2)
{
    int d = t->d, r = t->r;
    for (int j = 0; j < r; j++) {
        double acc = t->w[t->o_b1 + j];
        for (int k = 0; k < d; k++) {
            float w = t->w[(size_t)k * t->rp + j] * t->isd[k];
            if (wtype == PI_TYPE_F16)
                w = pi_f16_to_f32(pi_f32_to_f16(w));
            w1[(size_t)j * d + k] = w;
            acc -= (double)w * t->mu[k];
        }
        b1[j] = (float)acc;
    }
    for (int i = 0; i < t->ff; i++) {
        for (int j = 0; j < r; j++)
            w2[(size_t)i * r + j] = t->w[t->o_w2 + (size_t)j * t->fp + i];
        b2[i] = t->w[t->o_b2 + i];
    }
}

/* Epochs with early stopping; leaves the best weights in t->w. */
static void train_loop(trainer *t, pi_pool *pool, int il, const pi_train_data *tr,
                       const tokinfo *tok_tr, const pi_train_data *va, const tokinfo *tok_va,
                       int64_t *perm, pi_train_progress_fn progress, void *user,
                       pi_train_report *rep)
{
    rng rg = t->prm->seed ^ 0x5eed5eed5eed5eedu; /* a stream apart from the weights' */
    int64_t step = 0;
    double best = INFINITY;
    for (int64_t i = 0; i < tr->n; i++)
        perm[i] = i;
    for (int epoch = 1, bad = 0; epoch <= t->prm->max_epochs && bad < t->prm->patience;
         epoch++) {
        double tl = train_epoch(t, pool, tr, tok_tr, perm, &rg, &step);
        double vl = pass(t, pool, va, tok_va, NULL, 0, va->n, false) / ((double)va->n * t->ff);
        if (progress)
            progress(user, il, epoch, tl, vl);
        rep->epochs = epoch;
        if (vl < best) {
            best = vl;
            bad = 0;
            memcpy(t->best, t->w, (size_t)t->np * sizeof(float));
            rep->best_epoch = epoch;
            rep->train_loss = tl;
            rep->val_loss = vl;
        } else {
            bad++;
        }
    }
    memcpy(t->w, t->best, (size_t)t->np * sizeof(float));
}

/* Stores the trained layer in a scratch predictor, calibrates and measures
 * it there, and only then copies it into p. */
static int finish(trainer *t, pi_predictor *p, int il, const pi_train_data *va,
                  const tokinfo *tok_va, pi_pool *pool, pi_train_report *rep, pi_err *err)
{
    int d = t->d, ff = t->ff, r = t->r;
    pi_predictor *q = pi_predictor_new(pi_predictor_n_layer(p), d, ff, 0, err);
    float *w = malloc(((size_t)r * (d + ff + 1) + ff) * sizeof(float));
    int rc = -1;
    if (!q || !w) {
        pi_err_set(err, "out of memory");
        goto done;
    }
    float *w1 = w, *b1 = w1 + (size_t)r * d, *w2 = b1 + r, *b2 = w2 + (size_t)ff * r;
    export_layer(t, pi_predictor_wtype(p), w1, b1, w2, b2);
    pi_predictor_layer ly;
    if (pi_predictor_set_wtype(q, pi_predictor_wtype(p), err) ||
        pi_predictor_set_layer(q, il, r, w1, b1, w2, b2, 0.0f, err) ||
        pi_tr_calibrate(q, il, t->prm, va, tok_va, pool, err) ||
        pi_tr_evaluate(q, il, va, tok_va, pool, &rep->val, err) || pi_predictor_get_layer(q, il, &ly) ||
        pi_predictor_set_layer(p, il, r, ly.w1, ly.b1, ly.w2, ly.b2, ly.threshold, err))
        goto done;
    rep->threshold = ly.threshold;
    rc = 0;
done:
    free(w);
    pi_predictor_free(q);
    return rc;
}

static int train_layer(pi_predictor *p, int il, const pi_train_params *prm,
                       const pi_train_data *train, const pi_train_data *val, pi_pool *pool,
                       pi_train_progress_fn progress, void *user, pi_train_report *report,
                       pi_err *err)
{
    if (pi_tr_check_params(prm, err) || pi_tr_check_data(train, "training", err) ||
        pi_tr_check_data(val, "validation", err))
        return -1;
    trainer t = { .prm = prm, .d = pi_predictor_n_embd(p), .ff = pi_predictor_n_ff(p) };
    t.r = prm->rank ? prm->rank : pi_train_default_rank(t.d, t.ff);
    pi_train_report rep = { .rank = t.r };
    int nthreads = pool ? pi_pool_size(pool) : 1, rc = -1;
    tokinfo *tok_tr = NULL, *tok_va = NULL;
    int64_t *perm = malloc((size_t)train->n * sizeof *perm), vpos = 0;
    if (trainer_alloc(&t, nthreads, val->n) || !perm) {
        pi_err_set(err, "out of memory");
        goto done;
    }
    if (!(tok_tr = pi_tr_make_labels(train, t.d, t.ff, prm, pool, "training", err)) ||
        !(tok_va = pi_tr_make_labels(val, t.d, t.ff, prm, pool, "validation", err)))
        goto done;
    for (int64_t i = 0; i < val->n; i++)
        vpos += tok_va[i].npos;
    if (!vpos) {
        pi_err_set(err, "impossible target: no positive labels in the validation tokens");
        goto done;
    }
    standardise(&t, train);
    if (init_weights(&t, train, tok_tr, err))
        goto done;
    rep.pos_weight = t.wpos;
    train_loop(&t, pool, il, train, tok_tr, val, tok_va, perm, progress, user, &rep);
    if (!rep.best_epoch) {
        pi_err_set(err, "training diverged (the validation loss is not finite)");
        goto done;
    }
    if (finish(&t, p, il, val, tok_va, pool, &rep, err))
        goto done;
    rep.params = (int64_t)t.r * (t.d + t.ff + 1) + t.ff;
    rep.cost_fraction = (double)rep.params / (3.0 * t.d * t.ff);
    if (report)
        *report = rep;
    rc = 0;
done:
    trainer_free(&t);
    free(tok_tr);
    free(tok_va);
    free(perm);
    return rc;
}

int pi_train_layer(pi_predictor *p, int il, const pi_train_params *prm,
                   const pi_train_data *train, const pi_train_data *val, pi_pool *pool,
                   pi_train_progress_fn progress, void *user, pi_train_report *report,
                   pi_err *err)
{
    pi_err e;
    if (il < 0 || il >= pi_predictor_n_layer(p))
        return pi_err_set(err, "layer %d out of range (0 to %d)", il, pi_predictor_n_layer(p) - 1);
    if (train_layer(p, il, prm, train, val, pool, progress, user, report, &e))
        return pi_tr_layer_error(err, il, &e);
    return 0;
}
