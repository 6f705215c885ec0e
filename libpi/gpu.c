/*
 * gpu: the forward pass on a CUDA device (see gpu.h).  Plain C: the device
 * is reached only through kernels/kernels.h.  The plan is computed here in
 * every build; the rest compiles to a stub without PI_CUDA.
 *
 * Per layer, for a batch of n tokens (every buffer on the device):
 *   xn = rmsnorm(x) * attn_norm;  q, k, v = Wq xn (+b), Wk xn (+b), Wv xn (+b)
 *   [qwen3: rmsnorm each q and k head];  rope(q, k);  k, v -> half cache
 *   attn = attention(q, cache);  x += Wo attn
 *   xn = rmsnorm(x) * ffn_norm, then the FFN adds into x:
 *     dense:  g = Wg xn, u = Wu xn, g = silu(g) u, x += Wd g
 *     sparse: h = relu(W1 xn + b1); z = W2 h; idx = {i : z_i + b2_i > thr}
 *             g, u = rows idx of Wg, Wu times xn; g = silu(g) u;
 *             x += sum over idx of g_i * row i of the neuron-major down
 * and logits = Wout (rmsnorm(x) * output_norm) for the rows asked for.
 */
#include "gpu.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "placement.h"
#include "predictor.h"
#include "quant.h"

#define ALIGN 256 /* every device buffer starts on a 256-byte boundary */

static uint64_t align_up(uint64_t n) { return (n + ALIGN - 1) / ALIGN * ALIGN; }

static uint64_t weight_bytes(const pi_weight *w)
{
    return w->data ? align_up((uint64_t)w->ne1 * w->row_bytes) : 0;
}

static int max_rank(const pi_model *m)
{
    int r = 0;
    for (int il = 0; m->pred && il < m->hp.n_layer; il++) {
        pi_predictor_layer pl;
        if (pi_predictor_get_layer(m->pred, il, &pl) == 0 && pl.rank > r)
            r = pl.rank;
    }
    return r;
}

/* The down kernel's partial sums: chunks of AXPY_CHUNK rows per token
 * (matvec.cu's CH).  Kept here, not asked of the kernels, so the plan is the
 * same in every build; pi_gpu_new() checks it against the kernels' own
 * count. */
#define AXPY_CHUNK 64
static uint64_t axpy_scratch_floats(int64_t max_sel, int64_t n_out, int n_tok)
{
    return (uint64_t)((max_sel + AXPY_CHUNK - 1) / AXPY_CHUNK) * (uint64_t)n_out *
           (uint64_t)n_tok;
}

/* The scratch buffers of one batch, in the order the arena hands them out. */
typedef struct scratch_sizes {
    uint64_t ids, x, xn, q, k, v, attn, gate, up, h, z, idx, nsel, logits, axpy, freq, nhot, cold;
} scratch_sizes;

static int layers_on_gpu(const pi_model *m, const pi_gpu_params *p)
{
    return p->n_layer_gpu > 0 && p->n_layer_gpu < m->hp.n_layer ? p->n_layer_gpu : m->hp.n_layer;
}

/* Neurons of layer il the GPU holds. */
static int64_t hot_of(const pi_model *m, const pi_gpu_params *p, int il)
{
    return p->n_hot && p->n_hot[il] < m->hp.n_ff ? (p->n_hot[il] > 0 ? p->n_hot[il] : 0)
                                                 : m->hp.n_ff;
}

static uint64_t rows_bytes(const pi_weight *w, int64_t rows)
{
    return w->data ? align_up((uint64_t)rows * w->row_bytes) : 0;
}

static scratch_sizes scratch_of(const pi_model *m, const pi_gpu_params *p)
{
    const pi_hparams *hp = &m->hp;
    uint64_t B = (uint64_t)p->n_batch, d = (uint64_t)hp->n_embd, ff = (uint64_t)hp->n_ff;
    uint64_t qd = (uint64_t)hp->n_head * hp->head_dim, kvd = (uint64_t)hp->n_head_kv * hp->head_dim;
    uint64_t rank = p->sparse ? (uint64_t)max_rank(m) : 0;
    scratch_sizes s = {
        .ids = B * 4, .x = B * d * 4, .xn = B * d * 4, .q = B * qd * 4, .k = B * kvd * 4,
        .v = B * kvd * 4, .attn = B * (qd > d ? qd : d) * 4, .gate = B * ff * 4,
        .up = B * ff * 4, .h = B * (rank ? rank : 1) * 4, .z = p->sparse ? B * ff * 4 : 4,
        .idx = p->sparse ? B * ff * 4 : 4, .nsel = (uint64_t)hp->n_layer * B * 4,
        .logits = B * (uint64_t)hp->n_vocab * 4,
        .axpy = axpy_scratch_floats(hp->n_ff, hp->n_embd, p->n_batch) * 4,
        .freq = (uint64_t)(hp->n_rot / 2 > 0 ? hp->n_rot / 2 : 1) * 4,
        .nhot = p->n_hot ? B * 4 : 4, .cold = p->n_hot ? B * d * 4 : 4,
    };
    if (layers_on_gpu(m, p) < hp->n_layer)
        s.logits = 4; /* the output runs on the CPU */
    return s;
}

static uint64_t scratch_total(const scratch_sizes *s)
{
    const uint64_t *f = (const uint64_t *)s;
    uint64_t t = 0;
    for (size_t i = 0; i < sizeof *s / sizeof *f; i++)
        t += align_up(f[i]);
    return t;
}

int pi_gpu_plan_for(const pi_model *m, const pi_gpu_params *p, pi_gpu_plan *out, pi_err *err)
{
    memset(out, 0, sizeof *out);
    if (p->n_ctx <= 0 || p->n_batch <= 0)
        return pi_err_set(err, "GPU plan: context and batch must be positive");
    if (pi_model_is_moe(m))
        return pi_err_set(err, "GPU: mixture-of-experts models run on the CPU only for now");
    if (p->sparse && !m->pred)
        return pi_err_set(err, "the model carries no predictors (pack it with pi-pack --predictors)");
    const pi_hparams *hp = &m->hp;
    if (p->n_hot && !p->sparse)
        return pi_err_set(err, "GPU plan: hybrid placement needs the predictors");
    int nl = layers_on_gpu(m, p);
    for (int il = 0; il < nl; il++) {
        const pi_layer *l = &m->layers[il];
        const pi_weight *att[] = { &l->attn_norm, &l->wq, &l->wk, &l->wv, &l->wo,
                                   &l->bq, &l->bk, &l->bv, &l->q_norm, &l->k_norm };
        for (size_t i = 0; i < sizeof att / sizeof att[0]; i++)
            out->attention += weight_bytes(att[i]);
        int64_t hot = hot_of(m, p, il);
        out->ffn += weight_bytes(&l->ffn_norm) + rows_bytes(&l->gate, hot) +
                    rows_bytes(&l->up, hot) + (l->down_t ? rows_bytes(&l->down, hot)
                                                         : weight_bytes(&l->down));
        pi_predictor_layer pl;
        if (p->sparse && pi_predictor_get_layer(m->pred, il, &pl) == 0 && pl.rank > 0) {
            uint64_t r = (uint64_t)pl.rank;
            out->predictors += align_up(r * (uint64_t)hp->n_embd * 2) + align_up(r * 4) +
                               align_up((uint64_t)hp->n_ff * r * 2) + align_up((uint64_t)hp->n_ff * 4);
        }
    }
    out->embeddings = weight_bytes(&m->tok_embd);
    if (nl == hp->n_layer) {
        out->embeddings += weight_bytes(&m->output_norm);
        if (m->output.data != m->tok_embd.data)
            out->embeddings += weight_bytes(&m->output);
    }
    uint64_t kv_layer = (uint64_t)p->n_ctx * hp->n_head_kv * hp->head_dim * 2;
    out->kv = 2 * align_up(kv_layer * (uint64_t)nl);
    scratch_sizes s = scratch_of(m, p);
    out->scratch = scratch_total(&s);
    out->total = out->attention + out->ffn + out->embeddings + out->predictors + out->kv +
                 out->scratch;
    return 0;
}

/* A size for messages: "1.25 GiB", or "3.4 MiB" when smaller. */
typedef struct size_str {
    char s[32];
} size_str;

static size_str human(uint64_t b)
{
    size_str r;
    if (b >= (uint64_t)1 << 30)
        snprintf(r.s, sizeof r.s, "%.2f GiB", (double)b / 1073741824.0);
    else
        snprintf(r.s, sizeof r.s, "%.1f MiB", (double)b / 1048576.0);
    return r;
}

/* Hybrid: the placement plan's hot prefix per layer, then the GPU plan of
 * that.  The placement is told this run's own scratch and predictors (which
 * it does not count as resident) and plans for a budget short by what the
 * 256-byte alignment of every tensor may add (at most 20 per layer). */
static int fit_hybrid(const pi_model *m, pi_gpu_params *p, const pi_gpu_plan *whole, int *n_hot,
                      pi_gpu_plan *plan, pi_err *err)
{
    uint64_t slack = (uint64_t)ALIGN * (20 * (uint64_t)m->hp.n_layer + 8);
    p->n_hot = n_hot; /* a hybrid's scratch also holds the CPU's partial sums */
    scratch_sizes s = scratch_of(m, p);
    p->n_hot = NULL;
    pi_placement_params pp = { p->vram > slack ? p->vram - slack : 1, p->n_ctx,
                               PI_PLACEMENT_KV_BYTES, scratch_total(&s) + whole->predictors };
    pi_placement pl;
    if (pi_placement_plan_model(m, &pp, &pl, err))
        return -1;
    for (int il = 0; il < m->hp.n_layer; il++)
        n_hot[il] = pl.layers[il].n_gpu;
    pi_placement_free(&pl);
    p->n_hot = n_hot;
    return pi_gpu_plan_for(m, p, plan, err);
}

int pi_gpu_fit(const pi_model *m, pi_gpu_params *p, bool offload, int *n_hot, pi_gpu_mode *mode,
               pi_err *err)
{
    pi_gpu_plan plan;
    p->n_layer_gpu = 0;
    p->n_hot = NULL;
    *mode = PI_GPU_WHOLE;
    if (pi_gpu_plan_for(m, p, &plan, err))
        return -1;
    if (!p->vram || plan.total <= p->vram)
        return 0;
    uint64_t whole = plan.total;
    if (offload) {
        *mode = PI_GPU_OFFLOAD;
        for (int nl = m->hp.n_layer - 1; nl > 0; nl--) {
            p->n_layer_gpu = nl;
            if (pi_gpu_plan_for(m, p, &plan, err))
                return -1;
            if (plan.total <= p->vram)
                return 0;
        }
        p->n_layer_gpu = 0;
        return pi_err_set(err, "not one layer fits in --vram %s (the embeddings, one layer, "
                          "its KV cache and scratch need %s)", human(p->vram).s,
                          human(plan.total).s);
    }
    if (m->pack && m->pred && p->sparse) {
        *mode = PI_GPU_HYBRID;
        pi_gpu_plan w = plan;
        if (fit_hybrid(m, p, &w, n_hot, &plan, err))
            return -1;
        if (plan.total <= p->vram)
            return 0;
        p->n_hot = NULL;
        return pi_err_set(err, "the hybrid plan needs %s on the GPU, over --vram %s",
                          human(plan.total).s, human(p->vram).s);
    }
    return pi_err_set(err, "the model needs %s on the GPU but --vram allows %s: use "
                      "--offload-layers, or a model packed with predictors for hybrid placement",
                      human(whole).s, human(p->vram).s);
}

#ifdef PI_CUDA

#include "../kernels/kernels.h"

/* A device weight: where its bytes went, with the host view's shape. */
typedef struct dev_w {
    const void *p;
    pi_type type;
    int64_t ne0, ne1;
    size_t row_bytes;
} dev_w;

typedef struct dev_layer {
    dev_w attn_norm, wq, wk, wv, wo, bq, bk, bv, q_norm, k_norm, ffn_norm, gate, up, down;
    bool down_t;
    int rank;          /* 0: no predictor, the layer runs dense */
    int64_t n_hot;     /* neurons held here (a prefix); n_ff unless hybrid */
    float threshold;   /* predictor's plus the shift */
    dev_w w1, b1, w2, b2;
} dev_layer;

struct pi_gpu {
    const pi_model *m;
    pi_gpu_params p;
    pi_gpu_plan plan;
    uint8_t *arena;
    uint64_t used;
    dev_w tok_embd, output_norm, output;
    dev_layer *layers;
    uint16_t *k_cache, *v_cache; /* [layer][n_ctx][kv_dim] */
    int32_t *ids, *idx, *nsel;
    float *x, *xn, *q, *k, *v, *attn, *gate, *up, *h, *z, *logits, *axpy, *freq;
    int32_t *nsel_host; /* n_layer * n_batch */
    int n_layer_gpu;
    /* hybrid: per-layer scratch on the device, and page-locked host copies */
    int32_t *nhot;
    float *cold;
    float *xn_h, *out_h;
    int32_t *idx_h, *nsel_h, *nhot_h;
    void *copied; /* event: the copies to the host are done */
    pi_gpu_stats stats;
};

static int cuda_fail(pi_err *err, const char *what, int rc)
{
    return pi_err_set(err, "CUDA %s: %s", what, pi_kernel_error_string(rc));
}

/* Every kernel call goes through CK: the first failure names the step. */
#define CK(what, call)                                                                     \
    do {                                                                                   \
        int rc_ = (call);                                                                  \
        if (rc_ != 0)                                                                      \
            return cuda_fail(err, what, rc_);                                              \
    } while (0)

/* pi's allocator: bump allocation from the arena sized by the plan. */
static void *take(pi_gpu *g, uint64_t bytes)
{
    uint64_t at = g->used;
    g->used += align_up(bytes); /* 0 bytes (a hybrid layer holding no neurons): none, as planned */
    return g->used <= g->plan.total ? g->arena + at : NULL;
}

static int upload(pi_gpu *g, dev_w *d, const pi_weight *w, pi_err *err)
{
    memset(d, 0, sizeof *d);
    if (!w->data)
        return 0;
    uint64_t bytes = (uint64_t)w->ne1 * w->row_bytes;
    void *p = take(g, bytes);
    if (!p)
        return pi_err_set(err, "GPU: the plan has no room for '%s'", w->name);
    CK(w->name, pi_kernel_copy_to_device(p, w->data, bytes, NULL));
    *d = (dev_w){ p, w->type, w->ne0, w->ne1, w->row_bytes };
    return 0;
}

static int upload_matrix(pi_gpu *g, dev_w *d, const pi_weight *w, pi_err *err)
{
    if (w->data && !pi_kernel_matmul_supported((uint32_t)w->type))
        return pi_err_set(err, "GPU: tensor '%s' has type %s, which has no CUDA kernel", w->name,
                          pi_type_name((uint32_t)w->type));
    return upload(g, d, w, err);
}

/* Host floats to a device F16 (pred weights were rounded to F16 values on
 * load, so the conversion is exact) or F32 tensor. */
static int upload_floats(pi_gpu *g, dev_w *d, const float *src, int64_t rows, int64_t cols,
                         bool f16, pi_err *err)
{
    size_t n = (size_t)rows * (size_t)cols, bytes = n * (f16 ? 2 : 4);
    void *p = take(g, bytes);
    if (!p)
        return pi_err_set(err, "GPU: the plan has no room for a predictor");
    const void *host = src;
    uint16_t *tmp = NULL;
    if (f16) {
        if (!(tmp = malloc(bytes)))
            return pi_err_set(err, "out of memory");
        for (size_t i = 0; i < n; i++)
            tmp[i] = pi_f32_to_f16(src[i]);
        host = tmp;
    }
    int rc = pi_kernel_copy_to_device(p, host, bytes, NULL);
    if (rc == 0)
        rc = pi_kernel_stream_sync(NULL); /* tmp is freed next */
    free(tmp);
    if (rc)
        return cuda_fail(err, "predictor upload", rc);
    *d = (dev_w){ p, f16 ? PI_TYPE_F16 : PI_TYPE_F32, cols, rows,
                  (size_t)cols * (f16 ? 2 : 4) };
    return 0;
}

static int upload_layer(pi_gpu *g, int il, pi_err *err)
{
    const pi_layer *l = &g->m->layers[il];
    dev_layer *d = &g->layers[il];
    const pi_weight *hw[] = { &l->attn_norm, &l->bq, &l->bk, &l->bv, &l->q_norm, &l->k_norm,
                              &l->ffn_norm };
    dev_w *dw[] = { &d->attn_norm, &d->bq, &d->bk, &d->bv, &d->q_norm, &d->k_norm, &d->ffn_norm };
    for (size_t i = 0; i < sizeof hw / sizeof hw[0]; i++)
        if (upload(g, dw[i], hw[i], err))
            return -1;
    d->n_hot = hot_of(g->m, &g->p, il);
    pi_weight gate = l->gate, up = l->up, down = l->down;
    gate.ne1 = up.ne1 = d->n_hot; /* a packed layer's hottest neurons: a prefix */
    if (l->down_t)
        down.ne1 = d->n_hot;
    const pi_weight *hm[] = { &l->wq, &l->wk, &l->wv, &l->wo, &gate, &up, &down };
    dev_w *dm[] = { &d->wq, &d->wk, &d->wv, &d->wo, &d->gate, &d->up, &d->down };
    for (size_t i = 0; i < sizeof hm / sizeof hm[0]; i++)
        if (upload_matrix(g, dm[i], hm[i], err))
            return -1;
    d->down_t = l->down_t;
    if (d->n_hot < g->m->hp.n_ff && !l->down_t)
        return pi_err_set(err, "GPU: a hybrid layer needs a packed model (layer %d)", il);
    pi_predictor_layer pl;
    if (!g->p.sparse || pi_predictor_get_layer(g->m->pred, il, &pl) || pl.rank <= 0)
        return d->n_hot < g->m->hp.n_ff
                   ? pi_err_set(err, "GPU: hybrid layer %d has no predictor", il)
                   : 0;
    if (!l->down_t)
        return pi_err_set(err, "GPU: layer %d has a predictor but no neuron-major down", il);
    d->rank = pl.rank;
    d->threshold = pl.threshold + g->p.sparsity_shift;
    int64_t ne = g->m->hp.n_embd, ff = g->m->hp.n_ff;
    if (upload_floats(g, &d->w1, pl.w1, pl.rank, ne, true, err) ||
        upload_floats(g, &d->b1, pl.b1, 1, pl.rank, false, err) ||
        upload_floats(g, &d->w2, pl.w2, ff, pl.rank, true, err) ||
        upload_floats(g, &d->b2, pl.b2, 1, ff, false, err))
        return -1;
    return 0;
}

static int take_scratch(pi_gpu *g, pi_err *err)
{
    scratch_sizes s = scratch_of(g->m, &g->p);
    g->ids = take(g, s.ids);
    g->x = take(g, s.x);
    g->xn = take(g, s.xn);
    g->q = take(g, s.q);
    g->k = take(g, s.k);
    g->v = take(g, s.v);
    g->attn = take(g, s.attn);
    g->gate = take(g, s.gate);
    g->up = take(g, s.up);
    g->h = take(g, s.h);
    g->z = take(g, s.z);
    g->idx = take(g, s.idx);
    g->nsel = take(g, s.nsel);
    g->logits = take(g, s.logits);
    g->axpy = take(g, s.axpy);
    g->freq = take(g, s.freq);
    g->nhot = take(g, s.nhot);
    g->cold = take(g, s.cold);
    if (!g->cold) /* the last one: all or nothing fit */
        return pi_err_set(err, "GPU: the plan has no room for the scratch buffers");
    const pi_hparams *hp = &g->m->hp;
    float freq[hp->n_rot / 2 > 0 ? hp->n_rot / 2 : 1];
    for (int i = 0; i < hp->n_rot / 2; i++)
        freq[i] = (float)pow(hp->rope_base, -2.0 * i / hp->n_rot); /* as forward.c */
    CK("rope table", pi_kernel_copy_to_device(g->freq, freq, sizeof freq, NULL));
    CK("rope table", pi_kernel_stream_sync(NULL));
    return 0;
}

static int check_device(const pi_model *m, const pi_gpu_params *p, const pi_gpu_plan *plan,
                        pi_err *err)
{
    int n = 0, rc = pi_kernel_device_count(&n);
    if (rc != 0)
        return pi_err_set(err, "no usable CUDA device: %s", pi_kernel_error_string(rc));
    if (n == 0)
        return pi_err_set(err, "no CUDA device");
    if (p->vram && plan->total > p->vram)
        return pi_err_set(err, "the model needs %.2f GiB on the GPU (weights, KV cache for %d "
                          "tokens, scratch) but --vram allows %.2f GiB",
                          plan->total / 1073741824.0, p->n_ctx, p->vram / 1073741824.0);
    const pi_weight *e = &m->tok_embd;
    if (!pi_kernel_dequantize_supported((uint32_t)e->type))
        return pi_err_set(err, "GPU: token embedding type %s has no CUDA kernel",
                          pi_type_name((uint32_t)e->type));
    scratch_sizes s = scratch_of(m, p);
    if (pi_kernel_rows_axpy_scratch(m->hp.n_ff, m->hp.n_embd, p->n_batch) * 4 > s.axpy)
        return pi_err_set(err, "GPU: the down kernel needs more scratch than planned");
    if (p->n_hot && !p->cold)
        return pi_err_set(err, "GPU: a hybrid run needs the CPU half of its FFNs");
    if (m->hp.head_dim > 256)
        return pi_err_set(err, "GPU: head size %d exceeds the attention kernel's 256",
                          m->hp.head_dim);
    return 0;
}

/* A hybrid run's page-locked host copies (asynchronous copies need them;
 * host memory, not counted in the budget) and the event the host waits on. */
static int host_buffers(pi_gpu *g, pi_err *err)
{
    size_t B = (size_t)g->p.n_batch, d = (size_t)g->m->hp.n_embd, ff = (size_t)g->m->hp.n_ff;
    void *xn = NULL, *out = NULL, *idx = NULL, *nsel = NULL, *nhot = NULL;
    int rc = pi_kernel_host_alloc(&xn, B * d * 4);
    if (!rc)
        rc = pi_kernel_host_alloc(&out, B * d * 4);
    if (!rc)
        rc = pi_kernel_host_alloc(&idx, B * ff * 4);
    if (!rc)
        rc = pi_kernel_host_alloc(&nsel, B * 4);
    if (!rc)
        rc = pi_kernel_host_alloc(&nhot, B * 4);
    g->xn_h = xn;
    g->out_h = out;
    g->idx_h = idx;
    g->nsel_h = nsel;
    g->nhot_h = nhot;
    if (!rc)
        rc = pi_kernel_event_create(&g->copied);
    return rc ? cuda_fail(err, "page-locked host buffers", rc) : 0;
}

pi_gpu *pi_gpu_new(const pi_model *m, const pi_gpu_params *p, pi_err *err)
{
    pi_gpu_plan plan;
    if (pi_gpu_plan_for(m, p, &plan, err) || check_device(m, p, &plan, err))
        return NULL;
    pi_gpu *g = calloc(1, sizeof *g);
    if (!g || !(g->layers = calloc((size_t)m->hp.n_layer, sizeof *g->layers)) ||
        !(g->nsel_host = calloc((size_t)m->hp.n_layer * p->n_batch, sizeof *g->nsel_host))) {
        pi_gpu_free(g);
        pi_err_set(err, "out of memory");
        return NULL;
    }
    g->m = m;
    g->p = *p;
    g->plan = plan;
    void *arena = NULL;
    int rc = pi_kernel_malloc(&arena, plan.total);
    if (rc) {
        pi_err_set(err, "GPU out of memory: the plan needs %.2f GiB (%s)",
                   plan.total / 1073741824.0, pi_kernel_error_string(rc));
        pi_gpu_free(g);
        return NULL;
    }
    g->arena = arena;
    const pi_hparams *hp = &m->hp;
    g->n_layer_gpu = layers_on_gpu(m, p);
    uint64_t kv_layer = (uint64_t)p->n_ctx * hp->n_head_kv * hp->head_dim;
    int bad = upload_matrix(g, &g->tok_embd, &m->tok_embd, err);
    if (!bad && g->n_layer_gpu == hp->n_layer) { /* the output runs here too */
        bad = upload(g, &g->output_norm, &m->output_norm, err);
        if (!bad && m->output.data != m->tok_embd.data)
            bad = upload_matrix(g, &g->output, &m->output, err);
        else
            g->output = g->tok_embd;
    }
    for (int il = 0; !bad && il < g->n_layer_gpu; il++)
        bad = upload_layer(g, il, err);
    if (!bad) {
        g->k_cache = take(g, kv_layer * 2 * (uint64_t)g->n_layer_gpu);
        g->v_cache = take(g, kv_layer * 2 * (uint64_t)g->n_layer_gpu);
        bad = take_scratch(g, err) || (p->n_hot && host_buffers(g, err));
    }
    if (!bad && (rc = pi_kernel_stream_sync(NULL)))
        bad = cuda_fail(err, "weight upload", rc);
    if (bad) {
        pi_gpu_free(g);
        return NULL;
    }
    return g;
}

void pi_gpu_free(pi_gpu *g)
{
    if (!g)
        return;
    pi_kernel_free(g->arena);
    pi_kernel_host_free(g->xn_h);
    pi_kernel_host_free(g->out_h);
    pi_kernel_host_free(g->idx_h);
    pi_kernel_host_free(g->nsel_h);
    pi_kernel_host_free(g->nhot_h);
    pi_kernel_event_destroy(g->copied);
    free(g->layers);
    free(g->nsel_host);
    free(g);
}

uint64_t pi_gpu_memory(const pi_gpu *g) { return g->used; }
pi_gpu_stats pi_gpu_get_stats(const pi_gpu *g) { return g->stats; }
int pi_gpu_layers(const pi_gpu *g) { return g->n_layer_gpu; }

pi_gpu_mode pi_gpu_get_mode(const pi_gpu *g)
{
    return g->p.n_hot ? PI_GPU_HYBRID
                      : g->n_layer_gpu < g->m->hp.n_layer ? PI_GPU_OFFLOAD : PI_GPU_WHOLE;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int matmul(const dev_w *w, const float *x, int n, float *y, int64_t y_ld, pi_err *err)
{
    CK("matmul", pi_kernel_matmul((uint32_t)w->type, w->p, w->row_bytes, w->ne0, w->ne1, x, n, y,
                                  y_ld, NULL));
    return 0;
}

/* q, k, v of the batch, normalised per head (qwen3), rotated and cached. */
static int qkv(pi_gpu *g, const dev_layer *l, int il, int n, int n_past, pi_err *err)
{
    const pi_hparams *hp = &g->m->hp;
    int hd = hp->head_dim;
    int64_t qd = (int64_t)hp->n_head * hd, kvd = (int64_t)hp->n_head_kv * hd;
    if (matmul(&l->wq, g->xn, n, g->q, qd, err) || matmul(&l->wk, g->xn, n, g->k, kvd, err) ||
        matmul(&l->wv, g->xn, n, g->v, kvd, err))
        return -1;
    if (l->bq.p)
        CK("bias", pi_kernel_add_rows(g->q, l->bq.p, n, qd, NULL));
    if (l->bk.p)
        CK("bias", pi_kernel_add_rows(g->k, l->bk.p, n, kvd, NULL));
    if (l->bv.p)
        CK("bias", pi_kernel_add_rows(g->v, l->bv.p, n, kvd, NULL));
    if (l->q_norm.p)
        CK("q norm", pi_kernel_rmsnorm(g->q, l->q_norm.p, g->q, (int64_t)n * hp->n_head, hd,
                                       hp->rms_eps, NULL));
    if (l->k_norm.p)
        CK("k norm", pi_kernel_rmsnorm(g->k, l->k_norm.p, g->k, (int64_t)n * hp->n_head_kv, hd,
                                       hp->rms_eps, NULL));
    int neox = hp->rope_type == PI_ROPE_NEOX;
    CK("rope", pi_kernel_rope(g->q, n, hp->n_head, hd, hp->n_rot, n_past, g->freq, neox, NULL));
    CK("rope", pi_kernel_rope(g->k, n, hp->n_head_kv, hd, hp->n_rot, n_past, g->freq, neox, NULL));
    size_t at = (size_t)il * (size_t)g->p.n_ctx * (size_t)kvd;
    CK("KV store", pi_kernel_kv_store(g->k, g->v, g->k_cache + at, g->v_cache + at, n, n_past,
                                      (int)kvd, NULL));
    return 0;
}

static int attention(pi_gpu *g, const dev_layer *l, int il, int n, int n_past, pi_err *err)
{
    const pi_hparams *hp = &g->m->hp;
    int64_t d = hp->n_embd;
    size_t at = (size_t)il * (size_t)g->p.n_ctx * (size_t)hp->n_head_kv * hp->head_dim;
    CK("attention norm", pi_kernel_rmsnorm(g->x, l->attn_norm.p, g->xn, n, d, hp->rms_eps, NULL));
    if (qkv(g, l, il, n, n_past, err))
        return -1;
    CK("attention", pi_kernel_attention(g->q, g->k_cache + at, g->v_cache + at, g->attn, n,
                                        n_past, hp->n_head, hp->n_head_kv, hp->head_dim,
                                        1.0f / sqrtf((float)hp->head_dim), NULL));
    if (matmul(&l->wo, g->attn, n, g->xn, d, err))
        return -1;
    CK("residual", pi_kernel_add(g->x, g->xn, n * d, NULL));
    return 0;
}

/* x += down(silu(gate xn) * up xn) over every neuron. */
static int ffn_dense(pi_gpu *g, const dev_layer *l, int n, pi_err *err)
{
    const pi_hparams *hp = &g->m->hp;
    int64_t d = hp->n_embd, ff = hp->n_ff;
    if (matmul(&l->gate, g->xn, n, g->gate, ff, err) || matmul(&l->up, g->xn, n, g->up, ff, err))
        return -1;
    CK("swiglu", pi_kernel_swiglu(g->gate, g->up, g->gate, n * ff, NULL));
    if (l->down_t) {
        CK("down", pi_kernel_rows_axpy((uint32_t)l->down.type, l->down.p, l->down.row_bytes, d,
                                       NULL, NULL, ff, g->gate, n, g->x, 1, g->axpy, NULL));
        return 0;
    }
    if (matmul(&l->down, g->gate, n, g->attn, d, err))
        return -1;
    CK("residual", pi_kernel_add(g->x, g->attn, n * d, NULL));
    return 0;
}

/* The predictor picks each token's neurons: idx and this layer's nsel on
 * the device, nothing copied back. */
static int predict(pi_gpu *g, const dev_layer *l, int32_t *nsel, int n, pi_err *err)
{
    int64_t ff = g->m->hp.n_ff;
    if (matmul(&l->w1, g->xn, n, g->h, l->rank, err))
        return -1;
    CK("predictor", pi_kernel_bias_relu(g->h, l->b1.p, n, l->rank, NULL));
    if (matmul(&l->w2, g->h, n, g->z, ff, err))
        return -1;
    CK("selection", pi_kernel_select(g->z, l->b2.p, n, ff, l->threshold, g->idx, nsel, NULL));
    return 0;
}

/* x += the FFN of the selected neurons with idx[i] < the count in cnt (per
 * token): gate and up rows gathered, down rows added. */
static int ffn_rows(pi_gpu *g, const dev_layer *l, const int32_t *cnt, int n, pi_err *err)
{
    int64_t d = g->m->hp.n_embd, ff = g->m->hp.n_ff;
    CK("sparse gate", pi_kernel_matvec_rows((uint32_t)l->gate.type, l->gate.p, l->gate.row_bytes,
                                            d, g->idx, cnt, ff, g->xn, n, g->gate, NULL));
    CK("sparse up", pi_kernel_matvec_rows((uint32_t)l->up.type, l->up.p, l->up.row_bytes, d,
                                          g->idx, cnt, ff, g->xn, n, g->up, NULL));
    /* entries past a token's count are never read by the down kernel */
    CK("swiglu", pi_kernel_swiglu(g->gate, g->up, g->gate, n * ff, NULL));
    CK("sparse down", pi_kernel_rows_axpy((uint32_t)l->down.type, l->down.p, l->down.row_bytes, d,
                                          g->idx, cnt, ff, g->gate, n, g->x, 1, g->axpy, NULL));
    return 0;
}

/* Only the rows of the neurons the predictor selects are read. */
static int ffn_sparse(pi_gpu *g, const dev_layer *l, int il, int n, pi_err *err)
{
    int32_t *nsel = g->nsel + (size_t)il * g->p.n_batch;
    return predict(g, l, nsel, n, err) || ffn_rows(g, l, nsel, n, err) ? -1 : 0;
}

/* A hybrid layer: the predictor here, the selection split at n_hot; the
 * GPU's hot neurons run while the CPU computes the cold ones from copies,
 * and the CPU's partial sum is added here. */
static int ffn_hybrid(pi_gpu *g, const dev_layer *l, int il, int n, pi_err *err)
{
    const pi_hparams *hp = &g->m->hp;
    int64_t d = hp->n_embd, ff = hp->n_ff;
    int32_t *nsel = g->nsel + (size_t)il * g->p.n_batch;
    if (predict(g, l, nsel, n, err))
        return -1;
    CK("split", pi_kernel_count_below(g->idx, nsel, n, ff, (int32_t)l->n_hot, g->nhot, NULL));
    CK("to host", pi_kernel_copy_to_host(g->xn_h, g->xn, (size_t)n * d * 4, NULL));
    CK("to host", pi_kernel_copy_to_host(g->idx_h, g->idx, (size_t)n * ff * 4, NULL));
    CK("to host", pi_kernel_copy_to_host(g->nsel_h, nsel, (size_t)n * 4, NULL));
    CK("to host", pi_kernel_copy_to_host(g->nhot_h, g->nhot, (size_t)n * 4, NULL));
    CK("to host", pi_kernel_event_record(g->copied, NULL));
    if (ffn_rows(g, l, g->nhot, n, err)) /* the hot ones, while the CPU works */
        return -1;
    double t0 = now_s();
    CK("to host", pi_kernel_event_sync(g->copied));
    double t1 = now_s();
    g->p.cold(g->p.cold_user, il, g->xn_h, g->idx_h, ff, g->nhot_h, g->nsel_h, g->out_h, n);
    g->stats.wait_s += t1 - t0;
    g->stats.cold_s += now_s() - t1;
    for (int t = 0; t < n; t++) {
        g->stats.hot += (uint64_t)g->nhot_h[t];
        g->stats.cold += (uint64_t)(g->nsel_h[t] - g->nhot_h[t]);
    }
    CK("from host", pi_kernel_copy_to_device(g->cold, g->out_h, (size_t)n * d * 4, NULL));
    CK("residual", pi_kernel_add(g->x, g->cold, n * d, NULL));
    return 0;
}

static int layer(pi_gpu *g, int il, int n, int n_past, pi_err *err)
{
    const dev_layer *l = &g->layers[il];
    const pi_hparams *hp = &g->m->hp;
    if (attention(g, l, il, n, n_past, err))
        return -1;
    CK("FFN norm", pi_kernel_rmsnorm(g->x, l->ffn_norm.p, g->xn, n, hp->n_embd, hp->rms_eps,
                                     NULL));
    if (l->n_hot < hp->n_ff)
        return ffn_hybrid(g, l, il, n, err);
    return l->rank ? ffn_sparse(g, l, il, n, err) : ffn_dense(g, l, n, err);
}

int pi_gpu_batch(pi_gpu *g, const int32_t *tokens, int n, int n_past, float *logits, bool all,
                 uint64_t *active, float *x_out, pi_err *err)
{
    const pi_hparams *hp = &g->m->hp;
    int64_t d = hp->n_embd, nv = hp->n_vocab;
    if (n <= 0 || n > g->p.n_batch || n_past < 0 || n_past + n > g->p.n_ctx)
        return pi_err_set(err, "GPU batch of %d tokens at %d does not fit (batch %d, context %d)",
                          n, n_past, g->p.n_batch, g->p.n_ctx);
    bool offload = g->n_layer_gpu < hp->n_layer;
    if (offload && (logits || !x_out))
        return pi_err_set(err, "GPU: with layers on the CPU the caller computes the logits");
    CK("token upload", pi_kernel_copy_to_device(g->ids, tokens, (size_t)n * 4, NULL));
    CK("embedding", pi_kernel_get_rows((uint32_t)g->tok_embd.type, g->tok_embd.p,
                                       g->tok_embd.row_bytes, d, g->ids, n, g->x, NULL));
    for (int il = 0; il < g->n_layer_gpu; il++)
        if (layer(g, il, n, n_past, err))
            return -1;
    if (offload)
        CK("hidden state", pi_kernel_copy_to_host(x_out, g->x, (size_t)n * d * 4, NULL));
    int first = all ? 0 : n - 1, rows = n - first;
    if (logits) {
        CK("output norm", pi_kernel_rmsnorm(g->x + (size_t)first * d, g->output_norm.p, g->xn,
                                            rows, d, hp->rms_eps, NULL));
        if (matmul(&g->output, g->xn, rows, g->logits, nv, err))
            return -1;
        CK("logits", pi_kernel_copy_to_host(logits, g->logits, (size_t)rows * nv * 4, NULL));
    }
    if (active && g->p.sparse)
        CK("counts", pi_kernel_copy_to_host(g->nsel_host, g->nsel,
                                            (size_t)hp->n_layer * g->p.n_batch * 4, NULL));
    CK("batch", pi_kernel_stream_sync(NULL));
    for (int il = 0; active && il < g->n_layer_gpu; il++) {
        uint64_t a = 0;
        for (int t = 0; t < n; t++)
            a += g->layers[il].rank ? (uint64_t)g->nsel_host[(size_t)il * g->p.n_batch + t]
                                    : (uint64_t)hp->n_ff;
        active[il] = a;
    }
    return 0;
}

#else /* !PI_CUDA */

pi_gpu *pi_gpu_new(const pi_model *m, const pi_gpu_params *p, pi_err *err)
{
    pi_err_set(err, "built without CUDA");
    return NULL;
}

void pi_gpu_free(pi_gpu *g) {}
uint64_t pi_gpu_memory(const pi_gpu *g) { return 0; }

int pi_gpu_batch(pi_gpu *g, const int32_t *tokens, int n, int n_past, float *logits, bool all,
                 uint64_t *active, float *x_out, pi_err *err)
{
    return pi_err_set(err, "built without CUDA");
}

pi_gpu_stats pi_gpu_get_stats(const pi_gpu *g) { return (pi_gpu_stats){ 0 }; }
pi_gpu_mode pi_gpu_get_mode(const pi_gpu *g) { return PI_GPU_WHOLE; }
int pi_gpu_layers(const pi_gpu *g) { return 0; }

#endif
