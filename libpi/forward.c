/*
 * forward: the CPU forward pass (see forward.h).
 *
 * Per layer, for a batch of n tokens:
 *   xn = rmsnorm(x) * attn_norm
 *   q, k, v = xn Wq (+bq), xn Wk (+bk), xn Wv (+bv)    [qwen3: rmsnorm per head]
 *   rope(q, k); append k, v to the cache
 *   x += Wo . softmax(q k^T / sqrt(head_dim), causal) v
 *   x += ffn(rmsnorm(x) * ffn_norm)
 * then logits = Wout . (rmsnorm(x) * output_norm) for the rows asked for.
 * The KV cache is float32, [layer][position][kv_dim].
 */
#include "forward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ffn.h"
#include "gpu.h"
#include "matmul.h"
#include "moe.h"
#include "sparse.h"
#include "threadpool.h"
#include "vec.h"

struct pi_ctx {
    const pi_model *m;
    int n_ctx, n_batch, n_past;
    pi_pool *pool;
    float *k_cache, *v_cache;
    float *rope_freq;             /* n_rot / 2 inverse frequencies */
    float *rope_cs;               /* per batch token: n_rot / 2 (cos, sin) pairs */
    float *x, *xn, *q, *k, *v, *attn; /* n_batch rows each */
    float *att;                   /* n_threads * n_ctx scores */
    float *logits_tmp;            /* n_batch * n_vocab when all logits are asked */
    pi_ffn_scratch ffn;
    pi_sparse *sparse;
    pi_moe *moe; /* a mixture-of-experts model's routing and scratch */
    float *moe_act; /* its activations for the observer (pi_moe_observe) */
    pi_gpu *gpu;
    pi_gpu_mode gpu_mode;
    int gpu_layers;       /* layers the GPU runs (all but with layer offload) */
    int *gpu_hot;         /* hybrid: per layer, the neurons the GPU holds */
    uint64_t *gpu_active; /* per layer, the GPU's counts of the last batch */
    pi_ffn_observer observe;
    void *observe_user;
    size_t bytes;
};

/* Bytes of one activation row in the largest form any matrix of m takes. */
static size_t acts_row_bytes(const pi_model *m)
{
    size_t most = pi_acts_row_bytes(m->output.type, m->output.ne0);
    for (int il = 0; il < m->hp.n_layer; il++) {
        const pi_layer *l = &m->layers[il];
        const pi_weight *ws[] = { &l->wq, &l->wk, &l->wv, &l->wo, &l->gate, &l->up, &l->down,
                                  &l->gate_inp, &l->gate_exps, &l->up_exps, &l->down_exps,
                                  &l->gate_shexp, &l->up_shexp, &l->down_shexp };
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++) {
            size_t b = pi_acts_row_bytes(ws[i]->type, ws[i]->ne0);
            most = b > most ? b : most;
        }
    }
    return most;
}

static void *alloc(pi_ctx *c, size_t n, size_t elem)
{
    c->bytes += n * elem;
    return calloc(n ? n : 1, elem);
}

/* A hybrid layer's cold neurons, on the CPU (gpu.h). */
static void cold_ffn(void *user, int il, const float *x, const int32_t *idx, int64_t stride,
                     const int32_t *first, const int32_t *count, float *out, int n)
{
    pi_ctx *c = user;
    pi_sparse_ffn_listed(c->sparse, c->pool, il, x, out, c->ffn.gate, idx, stride, first, count,
                         n);
}

/* The GPU's part of a context: everything (the sparse module then only
 * counts), or the first layers, or every layer's attention and hot neurons
 * with the CPU computing the rest (gpu.h). */
static int gpu_part(pi_ctx *c, pi_gpu_params *gp, pi_err *err)
{
    const pi_model *m = c->m;
    gp->cold = cold_ffn;
    gp->cold_user = c;
    if (!(c->gpu = pi_gpu_new(m, gp, err)))
        return -1;
    c->gpu_layers = gp->n_layer_gpu ? gp->n_layer_gpu : m->hp.n_layer;
    if (!(c->gpu_active = alloc(c, (size_t)m->hp.n_layer, sizeof *c->gpu_active)))
        return pi_err_set(err, "out of memory");
    return 0;
}

/* Whole on the GPU: no CPU buffers but the statistics. */
static pi_ctx *gpu_ctx_new(pi_ctx *c, const pi_ctx_params *p, pi_gpu_params *gp, pi_err *err)
{
    pi_sparse_params sp = { p->sparsity_shift, 0.0f, false, true };
    if (gpu_part(c, gp, err) ||
        (gp->sparse && !(c->sparse = pi_sparse_new(c->m, c->n_batch, &sp, err)))) {
        pi_ctx_free(c);
        return NULL;
    }
    return c;
}

pi_ctx *pi_ctx_new(const pi_model *m, const pi_ctx_params *p, pi_err *err)
{
    const pi_hparams *hp = &m->hp;
    pi_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        pi_err_set(err, "out of memory");
        return NULL;
    }
    c->m = m;
    c->n_ctx = p && p->n_ctx > 0 ? p->n_ctx : (hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096);
    c->n_batch = p && p->n_batch > 0 ? p->n_batch : 64;
    c->ffn.exact = p && p->exact;
    pi_gpu_params gp = { c->n_ctx, c->n_batch, m->pred && !(p && p->dense),
                         p ? p->sparsity_shift : 0.0f, p ? p->vram : 0, 0, NULL, NULL, NULL };
    if (p && p->gpu) {
        if (p->gate_floor > 0.0f) {
            pi_err_set(err, "--gate-floor is not available on the GPU");
            free(c);
            return NULL;
        }
        if (!(c->gpu_hot = calloc((size_t)hp->n_layer, sizeof *c->gpu_hot)) ||
            pi_gpu_fit(m, &gp, p->offload_layers, c->gpu_hot, &c->gpu_mode, err)) {
            if (!c->gpu_hot)
                pi_err_set(err, "out of memory");
            free(c->gpu_hot);
            free(c);
            return NULL;
        }
        if (c->gpu_mode == PI_GPU_WHOLE)
            return gpu_ctx_new(c, p, &gp, err);
    }
    int nt = p && p->n_threads > 0 ? p->n_threads : 1;
    if (!(c->pool = pi_pool_new(nt, err))) {
        free(c);
        return NULL;
    }
    size_t kv = (size_t)hp->n_head_kv * hp->head_dim, q = (size_t)hp->n_head * hp->head_dim;
    size_t d = (size_t)hp->n_embd, ff = (size_t)hp->n_ff, B = (size_t)c->n_batch;
    ff = (size_t)hp->n_ff_exp > ff ? (size_t)hp->n_ff_exp : ff; /* MoE: one expert's rows */
    ff = (size_t)hp->n_ff_shexp > ff ? (size_t)hp->n_ff_shexp : ff;
    c->k_cache = alloc(c, (size_t)hp->n_layer * c->n_ctx * kv, sizeof(float));
    c->v_cache = alloc(c, (size_t)hp->n_layer * c->n_ctx * kv, sizeof(float));
    c->rope_freq = alloc(c, (size_t)hp->n_rot / 2, sizeof(float));
    c->rope_cs = alloc(c, B * (size_t)hp->n_rot, sizeof(float));
    c->x = alloc(c, B * d, sizeof(float));
    c->xn = alloc(c, B * d, sizeof(float));
    c->q = alloc(c, B * q, sizeof(float));
    c->k = alloc(c, B * kv, sizeof(float));
    c->v = alloc(c, B * kv, sizeof(float));
    c->attn = alloc(c, B * (q > d ? q : d), sizeof(float)); /* also the FFN's output */
    c->att = alloc(c, (size_t)nt * c->n_ctx, sizeof(float));
    c->logits_tmp = NULL;
    c->ffn.gate = alloc(c, B * ff, sizeof(float));
    c->ffn.up = alloc(c, B * ff, sizeof(float));
    c->ffn.acts = alloc(c, B * acts_row_bytes(m), 1);
    if (!c->k_cache || !c->v_cache || !c->rope_freq || !c->rope_cs || !c->x || !c->xn || !c->q || !c->k ||
        !c->v || !c->attn || !c->att || !c->ffn.gate || !c->ffn.up || !c->ffn.acts) {
        pi_ctx_free(c);
        pi_err_set(err, "out of memory for a context of %d tokens", c->n_ctx);
        return NULL;
    }
    pi_sparse_params sp = { p ? p->sparsity_shift : 0.0f, p ? p->gate_floor : 0.0f,
                            c->ffn.exact, false };
    if (m->pred && !(p && p->dense) && !(c->sparse = pi_sparse_new(m, c->n_batch, &sp, err))) {
        pi_ctx_free(c);
        return NULL;
    }
    if (pi_model_is_moe(m) && !(c->moe = pi_moe_new(m, c->n_batch, err))) {
        pi_ctx_free(c);
        return NULL;
    }
    if (p && p->gpu && gpu_part(c, &gp, err)) { /* layer offload or hybrid */
        pi_ctx_free(c);
        return NULL;
    }
    for (int i = 0; i < hp->n_rot / 2; i++)
        c->rope_freq[i] = (float)pow(hp->rope_base, -2.0 * i / hp->n_rot);
    return c;
}

void pi_ctx_free(pi_ctx *c)
{
    if (!c)
        return;
    pi_pool_free(c->pool);
    pi_sparse_free(c->sparse);
    pi_moe_free(c->moe);
    free(c->moe_act);
    pi_gpu_free(c->gpu);
    free(c->gpu_active);
    free(c->gpu_hot);
    free(c->k_cache);
    free(c->v_cache);
    free(c->rope_freq);
    free(c->rope_cs);
    free(c->x);
    free(c->xn);
    free(c->q);
    free(c->k);
    free(c->v);
    free(c->attn);
    free(c->att);
    free(c->ffn.gate);
    free(c->ffn.up);
    free(c->ffn.acts);
    free(c);
}

const pi_model *pi_ctx_model(const pi_ctx *c) { return c->m; }
int pi_ctx_n_ctx(const pi_ctx *c) { return c->n_ctx; }
int pi_ctx_n_batch(const pi_ctx *c) { return c->n_batch; }
int pi_ctx_n_past(const pi_ctx *c) { return c->n_past; }
size_t pi_ctx_memory(const pi_ctx *c) { return c->bytes; }
uint64_t pi_ctx_gpu_memory(const pi_ctx *c) { return c->gpu ? pi_gpu_memory(c->gpu) : 0; }
pi_gpu *pi_ctx_gpu(pi_ctx *c) { return c->gpu; }
pi_sparse *pi_ctx_sparse(pi_ctx *c) { return c->sparse; }
pi_moe *pi_ctx_moe(pi_ctx *c) { return c->moe; }

int pi_ctx_observe_ffn(pi_ctx *c, pi_ffn_observer fn, void *user, pi_err *err)
{
    if (c->moe) {
        free(c->moe_act);
        c->moe_act = NULL;
        if (fn && !(c->moe_act = malloc((size_t)c->n_batch *
                                        (size_t)pi_moe_row_len(c->m) * sizeof(float))))
            return pi_err_set(err, "out of memory for the experts' activations");
        pi_moe_observe(c->moe, c->moe_act);
    }
    c->observe = fn;
    c->observe_user = user;
    return 0;
}

void pi_ctx_truncate(pi_ctx *c, int n_past)
{
    if (n_past >= 0 && n_past < c->n_past)
        c->n_past = n_past;
}

/* out = x / rms(x) * w, for n rows of d. */
static void rmsnorm(float *out, const float *x, const pi_weight *w, int n, int64_t d, float eps)
{
    const float *wf = w->data; /* norms are F32 (checked at load) */
    for (int t = 0; t < n; t++) {
        const float *xr = x + t * d;
        float s = (float)(1.0 / sqrt(pi_vec_sumsq(d, xr) / (double)d + eps));
        for (int64_t i = 0; i < d; i++)
            out[t * d + i] = xr[i] * s * wf[i];
    }
}

/* The rotation angles of the batch's positions, computed once per batch
 * rather than once per head and layer. */
static void rope_angles(pi_ctx *c, int n)
{
    int half = c->m->hp.n_rot / 2;
    for (int t = 0; t < n; t++)
        for (int i = 0; i < half; i++) {
            float th = (float)(c->n_past + t) * c->rope_freq[i];
            c->rope_cs[(size_t)t * 2 * half + 2 * i] = cosf(th);
            c->rope_cs[(size_t)t * 2 * half + 2 * i + 1] = sinf(th);
        }
}

/* Rotates one head of batch token t. */
static void rope(float *v, int t, const pi_ctx *c)
{
    const pi_hparams *hp = &c->m->hp;
    int half = hp->n_rot / 2;
    const float *cs = c->rope_cs + (size_t)t * 2 * half;
    for (int i = 0; i < half; i++) {
        float co = cs[2 * i], sn = cs[2 * i + 1];
        int a = hp->rope_type == PI_ROPE_NEOX ? i : 2 * i;
        int b = hp->rope_type == PI_ROPE_NEOX ? i + half : 2 * i + 1;
        float x0 = v[a], x1 = v[b];
        v[a] = x0 * co - x1 * sn;
        v[b] = x0 * sn + x1 * co;
    }
}

static void add_bias(float *y, const pi_weight *b, int n, int64_t dim)
{
    if (!b->data)
        return;
    const float *bf = b->data;
    for (int t = 0; t < n; t++)
        for (int64_t i = 0; i < dim; i++)
            y[t * dim + i] += bf[i];
}

/* Whether two weights take their activations in the same form (the same
 * vec_dot_type, packed alike), so one quantised copy serves both. */
static bool same_acts(const pi_weight *a, const pi_weight *b)
{
    return pi_acts_row_bytes(a->type, a->ne0) == pi_acts_row_bytes(b->type, b->ne0) &&
           pi_type_get_traits(a->type)->vec_dot_type == pi_type_get_traits(b->type)->vec_dot_type &&
           (pi_vec_dot_nx_get(a->type) != NULL) == (pi_vec_dot_nx_get(b->type) != NULL);
}

/* q, k, v for the batch, normalised (qwen3), rotated, and k, v cached. */
static void qkv(pi_ctx *c, const pi_layer *l, int il, int n)
{
    const pi_hparams *hp = &c->m->hp;
    int hd = hp->head_dim;
    int64_t qd = (int64_t)hp->n_head * hd, kvd = (int64_t)hp->n_head_kv * hd;
    /* One activation form serves all three products when their weights take
     * the same one (the usual case): then one parallel loop does all three. */
    pi_acts a = pi_ffn_acts(c->pool, &c->ffn, l->wq.type, c->xn, n, hp->n_embd);
    pi_mm mm[3] = { { &l->wq, &a, c->q, qd, 0, qd }, { &l->wk, &a, c->k, kvd, 0, kvd },
                    { &l->wv, &a, c->v, kvd, 0, kvd } };
    if (c->ffn.exact || (same_acts(&l->wq, &l->wk) && same_acts(&l->wq, &l->wv))) {
        pi_matmul_many(c->pool, mm, 3);
    } else {
        pi_matmul_many(c->pool, mm, 1);
        for (int i = 1; i < 3; i++) {
            pi_acts ai = pi_ffn_acts(c->pool, &c->ffn, mm[i].w->type, c->xn, n, hp->n_embd);
            mm[i].a = &ai;
            pi_matmul_many(c->pool, &mm[i], 1);
        }
    }
    add_bias(c->q, &l->bq, n, qd);
    add_bias(c->k, &l->bk, n, kvd);
    add_bias(c->v, &l->bv, n, kvd);
    for (int t = 0; t < n; t++) {
        int pos = c->n_past + t;
        for (int h = 0; h < hp->n_head; h++) {
            float *qh = c->q + t * qd + h * hd;
            if (l->q_norm.data)
                rmsnorm(qh, qh, &l->q_norm, 1, hd, hp->rms_eps);
            rope(qh, t, c);
        }
        for (int h = 0; h < hp->n_head_kv; h++) {
            float *kh = c->k + t * kvd + h * hd;
            if (l->k_norm.data)
                rmsnorm(kh, kh, &l->k_norm, 1, hd, hp->rms_eps);
            rope(kh, t, c);
        }
        size_t at = ((size_t)il * c->n_ctx + pos) * kvd;
        memcpy(c->k_cache + at, c->k + t * kvd, kvd * sizeof(float));
        memcpy(c->v_cache + at, c->v + t * kvd, kvd * sizeof(float));
    }
}

typedef struct attn_job {
    pi_ctx *c;
    int il, n;
} attn_job;

/* One (token, head) pair: causal softmax attention over the cache. */
static void attend(pi_ctx *c, int il, int t, int h, float *att)
{
    const pi_hparams *hp = &c->m->hp;
    int hd = hp->head_dim, kvh = h / (hp->n_head / hp->n_head_kv);
    int64_t qd = (int64_t)hp->n_head * hd, kvd = (int64_t)hp->n_head_kv * hd;
    const float *q = c->q + t * qd + h * hd;
    const float *kc = c->k_cache + (size_t)il * c->n_ctx * kvd + kvh * hd;
    const float *vc = c->v_cache + (size_t)il * c->n_ctx * kvd + kvh * hd;
    int len = c->n_past + t + 1;
    float scale = 1.0f / sqrtf((float)hd), mx = -INFINITY;
    for (int p = 0; p < len; p++) {
        att[p] = pi_vec_dot(hd, q, kc + (size_t)p * kvd) * scale;
        mx = att[p] > mx ? att[p] : mx;
    }
    float sum = 0.0f;
    for (int p = 0; p < len; p++)
        sum += att[p] = expf(att[p] - mx);
    float *out = c->attn + t * qd + h * hd;
    memset(out, 0, (size_t)hd * sizeof(float));
    for (int p = 0; p < len; p++)
        pi_vec_axpy(hd, att[p] / sum, vc + (size_t)p * kvd, out);
}

static void attn_worker(void *arg, int64_t i, int ith)
{
    attn_job *j = arg;
    int nh = j->c->m->hp.n_head;
    attend(j->c, j->il, (int)(i / nh), (int)(i % nh), j->c->att + (size_t)ith * j->c->n_ctx);
}

static void layer(pi_ctx *c, int il, int n)
{
    const pi_hparams *hp = &c->m->hp;
    const pi_layer *l = &c->m->layers[il];
    int64_t d = hp->n_embd, qd = (int64_t)hp->n_head * hp->head_dim;
    rmsnorm(c->xn, c->x, &l->attn_norm, n, d, hp->rms_eps);
    qkv(c, l, il, n);
    attn_job j = { c, il, n };
    pi_pool_for(c->pool, (int64_t)n * hp->n_head, attn_worker, &j);
    pi_acts a = pi_ffn_acts(c->pool, &c->ffn, l->wo.type, c->attn, n, qd);
    pi_matmul(c->pool, &l->wo, &a, c->xn, d);
    for (int64_t i = 0; i < n * d; i++)
        c->x[i] += c->xn[i];
    rmsnorm(c->xn, c->x, &l->ffn_norm, n, d, hp->rms_eps);
    /* attn: free now, n x d */
    if (c->moe) {
        pi_moe_ffn(c->moe, c->pool, il, c->xn, c->attn, n, &c->ffn);
    } else if (c->sparse && pi_sparse_layer_on(c->sparse, il)) {
        pi_sparse_ffn(c->sparse, c->pool, il, c->xn, c->attn, c->ffn.gate, n);
    } else {
        pi_ffn_dense(c->pool, l, c->xn, c->attn, n, &c->ffn);
        if (c->sparse)
            pi_sparse_count_dense(c->sparse, il, n);
    }
    if (c->observe)
        c->observe(c->observe_user, il, c->xn, c->moe ? c->moe_act : c->ffn.gate, n);
    for (int64_t i = 0; i < n * d; i++)
        c->x[i] += c->attn[i];
}

static int batch(pi_ctx *c, const int32_t *tokens, int n, float *logits, bool all, pi_err *err)
{
    const pi_model *m = c->m;
    int64_t d = m->hp.n_embd, nv = m->hp.n_vocab;
    for (int t = 0; t < n; t++)
        if (tokens[t] < 0 || tokens[t] >= nv)
            return pi_err_set(err, "token id %d out of range (vocabulary of %lld)", tokens[t],
                              (long long)nv);
    int first_cpu = 0;
    if (c->gpu) {
        bool count = c->sparse != NULL, offload = c->gpu_layers < m->hp.n_layer;
        if (pi_gpu_batch(c->gpu, tokens, n, c->n_past, offload ? NULL : logits, all,
                         count ? c->gpu_active : NULL, offload ? c->x : NULL, err))
            return -1;
        for (int il = 0; count && il < c->gpu_layers; il++)
            pi_sparse_count(c->sparse, il, n, c->gpu_active[il]);
        if (!offload) {
            c->n_past += n;
            return 0;
        }
        first_cpu = c->gpu_layers; /* the CPU runs the rest and the output */
    } else {
        for (int t = 0; t < n; t++)
            pi_weight_row(&m->tok_embd, tokens[t], c->x + t * d);
    }
    rope_angles(c, n);
    for (int il = first_cpu; il < m->hp.n_layer; il++)
        layer(c, il, n);
    c->n_past += n;
    if (!logits)
        return 0;
    int first = all ? 0 : n - 1, rows = n - first;
    rmsnorm(c->xn, c->x + first * d, &m->output_norm, rows, d, m->hp.rms_eps);
    pi_acts a = pi_ffn_acts(c->pool, &c->ffn, m->output.type, c->xn, rows, d);
    pi_matmul(c->pool, &m->output, &a, logits, nv);
    return 0;
}

int pi_decode(pi_ctx *c, const int32_t *tokens, int n, float *logits, bool all_logits,
              pi_err *err)
{
    if (n <= 0)
        return pi_err_set(err, "no tokens to decode");
    if (n > c->n_ctx - c->n_past)
        return pi_err_set(err, "context full: %d tokens cached, %d more do not fit in %d",
                          c->n_past, n, c->n_ctx);
    int64_t nv = c->m->hp.n_vocab;
    for (int done = 0; done < n;) {
        int b = n - done < c->n_batch ? n - done : c->n_batch;
        bool last = done + b == n;
        float *out = all_logits ? logits + (size_t)done * nv : (last ? logits : NULL);
        if (batch(c, tokens + done, b, logits ? out : NULL, all_logits, err))
            return -1;
        done += b;
    }
    return 0;
}
