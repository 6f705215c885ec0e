/*
 * pack: the packed-model writer (see pack.h).
 */
#include "pack.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf_write.h"
#include "moe.h"
#include "pack_moe.h"
#include "packinfo.h"
#include "quant.h"
#include "requant.h"

/* The FFN tensors pack rewrites; FILL_ROUTER only in a mixture of experts. */
typedef enum { FILL_GATE, FILL_UP, FILL_DOWN, FILL_ROUTER, N_FILL } fill_kind;

/* Layer il's FFN matrix of a kind: a mixture of experts' experts are one
 * matrix each (moe.h), so that perm and rows work alike for both. */
static const pi_weight *ffn_weight(const pi_model *m, int il, fill_kind k)
{
    const pi_layer *l = &m->layers[il];
    bool moe = pi_model_is_moe(m);
    switch (k) {
    case FILL_GATE: return moe ? &l->gate_exps : &l->gate;
    case FILL_UP: return moe ? &l->up_exps : &l->up;
    case FILL_DOWN: return moe ? &l->down_exps : &l->down;
    default: return &l->gate_inp;
    }
}

/* The neurons of one expert, or of the whole layer in a dense model: perm
 * never takes a neuron out of its block. */
static int block_len(const pi_pack *pk) { return pk->n_expert ? pk->n_ff_exp : pk->n_ff; }

int pi_pack_down_type(pi_type src, int64_t n_embd)
{
    const pi_type_traits *tr = pi_type_get_traits(src);
    if (!tr || !tr->can_dequantize)
        return -1;
    if (src == PI_TYPE_F32 || src == PI_TYPE_F16 || src == PI_TYPE_BF16)
        return src;
    return pi_row_size(PI_TYPE_Q8_0, n_embd) ? PI_TYPE_Q8_0 : PI_TYPE_F16;
}

void pi_pack_free(pi_pack *pk)
{
    if (!pk)
        return;
    free(pk->perm);
    free(pk->freq_q);
    free(pk->freq);
    free(pk->neuron_bytes);
    free(pk->expert);
    free(pk->usage);
    memset(pk, 0, sizeof *pk);
}

/* ---- the order ---- */

typedef struct ranked {
    float f, tie; /* frequency at the level; sum over every level */
    uint32_t i;
} ranked;

static int hotter_first(const void *pa, const void *pb)
{
    const ranked *a = pa, *b = pb;
    if (a->f != b->f)
        return a->f > b->f ? -1 : 1;
    if (a->tie != b->tie)
        return a->tie > b->tie ? -1 : 1;
    return a->i < b->i ? -1 : a->i > b->i;
}

static int choose_level(const pi_predictor *pred, int level)
{
    if (level >= 0)
        return level;
    float km = pred ? pi_predictor_get_meta(pred).keep_mass : NAN;
    for (int lv = 0; lv < PI_ACTSTATS_LEVELS; lv++)
        if (fabs(pi_actstats_levels[lv] - km) < 1e-6)
            return lv;
    return PI_ACTSTATS_LEVELS - 1;
}

static int check_inputs(const pi_model *m, const pi_predictor *pred,
                        const pi_actstats_file *st, const pi_pack_params *p, uint64_t fp,
                        pi_err *err)
{
    const pi_hparams *hp = &m->hp;
    const char *path = pi_gguf_path(m->gguf);
    if (m->pack)
        return pi_err_set(err, "%s: already packed (pack the original model)", path);
    if (pi_model_is_moe(m) && pred)
        return pi_err_set(err, "%s: a mixture of experts has no predictors to pack (drop "
                          "--predictors)", path);
    const char *sn = p->stats_name ? p->stats_name : "statistics";
    const char *pn = p->pred_name ? p->pred_name : "predictors";
    if (st->fingerprint != fp)
        return pi_err_set(err, "%s: statistics of another model (fingerprint %016llx; %s "
                          "is %016llx)", sn, (unsigned long long)st->fingerprint, path,
                          (unsigned long long)fp);
    /* a mixture of experts' statistics see each layer's experts as one row */
    int64_t ff = pi_model_is_moe(m) ? pi_moe_row_len(m) : hp->n_ff;
    if (st->n_layer != hp->n_layer || st->n_ff != ff)
        return pi_err_set(err, "%s: %d layers of %d neurons; %s has %d of %lld", sn,
                          st->n_layer, st->n_ff, path, hp->n_layer, (long long)ff);
    if (st->tokens < 1)
        return pi_err_set(err, "%s: measured on no tokens", sn);
    if (pred && pi_predictor_fingerprint(pred) != fp)
        return pi_err_set(err, "%s: predictors of another model (fingerprint %016llx; %s "
                          "is %016llx)", pn, (unsigned long long)pi_predictor_fingerprint(pred),
                          path, (unsigned long long)fp);
    if (pred && (pi_predictor_n_layer(pred) != hp->n_layer ||
                 pi_predictor_n_embd(pred) != hp->n_embd || pi_predictor_n_ff(pred) != hp->n_ff))
        return pi_err_set(err, "%s: %d layers of %d x %d; %s has %d of %d x %d", pn,
                          pi_predictor_n_layer(pred), pi_predictor_n_embd(pred),
                          pi_predictor_n_ff(pred), path, hp->n_layer, hp->n_embd, hp->n_ff);
    if (p->level >= PI_ACTSTATS_LEVELS)
        return pi_err_set(err, "no statistics level %d", p->level);
    return 0;
}

/* The down type: the one asked for, which must be a weight type that can be
 * requantised in rows of n_embd, or the automatic choice. */
static int down_type(const pi_model *m, int asked, pi_type *out, pi_err *err)
{
    int64_t d = m->hp.n_embd;
    for (int il = 0; il < m->hp.n_layer; il++) {
        pi_type src = ffn_weight(m, il, FILL_DOWN)->type;
        int t = asked >= 0 ? asked : pi_pack_down_type(src, d);
        const pi_type_traits *tr = t >= 0 ? pi_type_get_traits((uint32_t)t) : NULL;
        if (!tr || !tr->can_quantize || !pi_vec_dot_get((pi_type)t))
            return pi_err_set(err, "unsupported quant type %s for the neuron-major down "
                              "projection", t >= 0 ? pi_type_name((uint32_t)t)
                                                   : pi_type_name(src));
        if (!pi_row_size((uint32_t)t, d))
            return pi_err_set(err, "unsupported quant type %s for the neuron-major down "
                              "projection: rows of %lld elements are not whole %u-element "
                              "blocks", tr->name, (long long)d, tr->block_size);
        if (il > 0 && (pi_type)t != *out)
            return pi_err_set(err, "the layers' down projections would get different types "
                              "(%s, %s): choose one with --down-type", pi_type_name(*out),
                              tr->name);
        *out = (pi_type)t;
    }
    return 0;
}

/* Layer il's order: packed block b (a packed expert, or the whole dense
 * layer) is source block expert[b], its neurons hottest first. */
static void order_layer(pi_pack *pk, const pi_actstats_file *st, int il, ranked *r)
{
    int bs = block_len(pk), nb = pk->n_ff / bs;
    const float *f = pi_actstats_file_freq(st, il, pk->level);
    size_t base = (size_t)il * (size_t)pk->n_ff;
    for (int b = 0; b < nb; b++) {
        uint32_t x = pk->expert ? pk->expert[(size_t)il * (size_t)nb + (size_t)b] : 0;
        for (int j = 0; j < bs; j++) {
            uint32_t i = x * (uint32_t)bs + (uint32_t)j;
            float tie = 0.0f;
            for (int lv = 0; lv < PI_ACTSTATS_LEVELS; lv++)
                tie += pi_actstats_file_freq(st, il, lv)[i];
            r[j] = (ranked){ f[i], tie, i };
        }
        qsort(r, (size_t)bs, sizeof *r, hotter_first);
        for (int j = 0; j < bs; j++) {
            size_t q = base + (size_t)b * (size_t)bs + (size_t)j;
            pk->perm[q] = r[j].i;
            /* Rounding is monotone, so the stored order stays non-increasing. */
            pk->freq_q[q] = (uint16_t)lrintf(r[j].f * PI_PACK_FREQ_SCALE);
            pk->freq[q] = (float)pk->freq_q[q] / PI_PACK_FREQ_SCALE;
        }
    }
}

int pi_pack_prepare(pi_pack *pk, const pi_model *m, const pi_predictor *pred,
                    const pi_actstats_file *st, const pi_pack_params *p, pi_err *err)
{
    memset(pk, 0, sizeof *pk);
    const pi_hparams *hp = &m->hp;
    uint64_t fp = pi_gguf_fingerprint(m->gguf);
    if (check_inputs(m, pred, st, p, fp, err) || down_type(m, p->down_type, &pk->down_type, err))
        return -1;
    bool moe = pi_model_is_moe(m);
    *pk = (pi_pack){ .m = m, .pred = pred, .n_layer = hp->n_layer, .n_ff = st->n_ff,
                     .n_embd = hp->n_embd, .level = choose_level(pred, p->level),
                     .n_expert = moe ? hp->n_expert : 0, .n_ff_exp = moe ? hp->n_ff_exp : 0,
                     .down_type = pk->down_type, .fingerprint = fp,
                     .stats_tokens = (uint64_t)st->tokens };
    if (moe && pi_pack_moe_experts(pk, st, p->stats_name ? p->stats_name : "statistics", err)) {
        pi_pack_free(pk);
        return -1;
    }
    size_t n = (size_t)pk->n_layer * (size_t)pk->n_ff;
    pk->perm = malloc(n * sizeof *pk->perm);
    pk->freq_q = malloc(n * sizeof *pk->freq_q);
    pk->freq = malloc(n * sizeof *pk->freq);
    pk->neuron_bytes = malloc((size_t)hp->n_layer * sizeof *pk->neuron_bytes);
    ranked *r = malloc((size_t)block_len(pk) * sizeof *r);
    if (!pk->perm || !pk->freq_q || !pk->freq || !pk->neuron_bytes || !r) {
        free(r);
        pi_pack_free(pk);
        return pi_err_set(err, "out of memory");
    }
    for (int il = 0; il < hp->n_layer; il++) {
        order_layer(pk, st, il, r);
        pk->neuron_bytes[il] = (uint64_t)ffn_weight(m, il, FILL_GATE)->row_bytes +
                               (uint64_t)ffn_weight(m, il, FILL_UP)->row_bytes +
                               (uint64_t)pi_row_size(pk->down_type, hp->n_embd);
    }
    free(r);
    return 0;
}

int pi_pack_placement(const pi_pack *pk, const pi_placement_params *pp, pi_placement *out,
                      pi_err *err)
{
    if (pk->n_expert)
        return pi_err_set(err, "%s: a mixture of experts: pi-pack stores no GPU plan for "
                          "one (pi-run --vram SIZE --dry-run on the packed file prints it)", pi_gguf_path(pk->m->gguf));
    const float **freq = malloc((size_t)pk->n_layer * sizeof *freq);
    if (!freq)
        return pi_err_set(err, "out of memory");
    for (int il = 0; il < pk->n_layer; il++)
        freq[il] = pk->freq + (size_t)il * (size_t)pk->n_ff;
    const pi_hparams *hp = &pk->m->hp;
    pi_placement_input in = {
        .n_layer = pk->n_layer,
        .n_ff = pk->n_ff,
        .neuron_bytes = pk->neuron_bytes,
        .freq = freq,
        .resident = pi_placement_resident_bytes(pk->m),
        .kv_elems_per_token =
            (uint64_t)hp->n_layer * 2 * (uint64_t)hp->n_head_kv * (uint64_t)hp->head_dim,
    };
    int rc = pi_placement_plan(&in, pp, out, err);
    free(freq);
    return rc;
}

/* ---- writing ---- */

typedef struct fill_ctx {
    const pi_pack *pk;
    int il;
    fill_kind kind;
    pi_pack_progress_fn progress;
    void *user;
} fill_ctx;

/* gate and up: the source rows in packed order, byte for byte. */
static int fill_rows(const fill_ctx *c, const pi_weight *w, uint8_t *dst)
{
    const uint32_t *perm = c->pk->perm + (size_t)c->il * (size_t)c->pk->n_ff;
    for (int j = 0; j < c->pk->n_ff; j++)
        memcpy(dst + (size_t)j * w->row_bytes,
               (const uint8_t *)w->data + (size_t)perm[j] * w->row_bytes, w->row_bytes);
    return 0;
}

/* down, one block (an expert, or the dense layer) at a time: the source
 * block (n_embd rows of bs) dequantised, then column j of it requantised as
 * the row of the packed neuron that is source neuron j.  Source expert x's
 * rows are x * n_embd onwards (moe.h); a dense layer is block 0. */
static int fill_down(const fill_ctx *c, const pi_weight *w, uint8_t *dst, pi_err *err)
{
    const pi_pack *pk = c->pk;
    int64_t d = pk->n_embd, bs = block_len(pk), nb = pk->n_ff / bs;
    float *src = malloc((size_t)d * (size_t)bs * sizeof *src);
    float *col = malloc((size_t)d * sizeof *col);
    if (!src || !col) {
        free(src);
        free(col);
        return pi_err_set(err, "out of memory for layer %d's down projection", c->il);
    }
    size_t row = pi_row_size(pk->down_type, d);
    for (int64_t b = 0; b < nb; b++) {
        const uint32_t *perm = pk->perm + (size_t)c->il * (size_t)pk->n_ff + (size_t)(b * bs);
        int64_t x = perm[0] / bs;
        for (int64_t r = 0; r < d; r++)
            pi_dequantize_row(w->type, (const uint8_t *)w->data + (size_t)(x * d + r) *
                              w->row_bytes, src + r * bs, bs);
        for (int64_t j = 0; j < bs; j++) {
            for (int64_t r = 0; r < d; r++)
                col[r] = src[r * bs + (perm[j] - x * bs)];
            pi_requantize_row(pk->down_type, col, dst + (size_t)(b * bs + j) * row, d);
        }
    }
    free(src);
    free(col);
    return 0;
}

static int fill(void *user, void *buf, uint64_t size, pi_err *err)
{
    const fill_ctx *c = user;
    const pi_weight *w = ffn_weight(c->pk->m, c->il, c->kind);
    (void)size;
    switch (c->kind) {
    case FILL_ROUTER: pi_pack_moe_router(c->pk, c->il, w, buf); return 0;
    case FILL_DOWN:
        if (fill_down(c, w, buf, err))
            return -1;
        if (c->progress && c->progress(c->user, c->il + 1, c->pk->n_layer))
            return pi_err_set(err, "interrupted");
        return 0;
    default: return fill_rows(c, w, buf);
    }
}

/* The source's FFN tensor names, by fill_kind: a dense model's, a mixture
 * of experts' (whose shared expert is copied as it is). */
static const char *const ffn_names[2][N_FILL] = {
    { "gate", "up", "down", NULL },
    { "gate_exps", "up_exps", "down_exps", "gate_inp" },
};

/* Which FFN tensor of which layer a source tensor is, if any. */
static bool ffn_tensor(const char *name, int n_layer, bool moe, int *il, fill_kind *kind)
{
    int end = 0;
    char what[24];
    if (sscanf(name, "blk.%d.ffn_%23[a-z_].weight%n", il, what, &end) != 2 || name[end] ||
        *il < 0 || *il >= n_layer)
        return false;
    int k = 0;
    while (k < N_FILL && !(ffn_names[moe][k] && !strcmp(ffn_names[moe][k], what)))
        k++;
    if (k == N_FILL)
        return false;
    *kind = (fill_kind)k;
    char canon[64];
    snprintf(canon, sizeof canon, "blk.%d.ffn_%s.weight", *il, what);
    return !strcmp(canon, name);
}

/* The neuron-major down projection that replaces a layer's down: one row of
 * n_embd per neuron, a mixture of experts' as E matrices of n_ff_exp rows. */
static int add_down_t(pi_gguf_writer *w, const pi_pack *pk, fill_ctx *c, pi_err *err)
{
    char name[64];
    int64_t ne[3] = { pk->n_embd, pk->n_expert ? pk->n_ff_exp : pk->n_ff, pk->n_expert };
    snprintf(name, sizeof name, pk->n_expert ? "blk.%d.ffn_down_exps_t.weight"
                                             : "blk.%d.ffn_down_t.weight", c->il);
    uint64_t size = (uint64_t)pi_row_size(pk->down_type, pk->n_embd) * (uint64_t)pk->n_ff;
    return pi_gguf_add_tensor_fill(w, name, pk->down_type, pk->n_expert ? 3 : 2, ne, size, fill,
                                   c, err);
}

static int add_tensors(pi_gguf_writer *w, const pi_pack *pk, fill_ctx *ctx, pi_err *err)
{
    const pi_gguf *g = pk->m->gguf;
    for (int64_t i = 0; i < pi_gguf_n_tensors(g); i++) {
        const pi_gguf_tensor *t = pi_gguf_tensor_at(g, i);
        int il;
        fill_kind kind;
        if (!ffn_tensor(t->name, pk->n_layer, pk->n_expert > 0, &il, &kind)) {
            if (pi_gguf_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, t->size, err))
                return -1;
            continue;
        }
        fill_ctx *c = &ctx[(size_t)il * N_FILL + kind];
        if (kind == FILL_DOWN ? add_down_t(w, pk, c, err)
                              : pi_gguf_add_tensor_fill(w, t->name, t->type, t->n_dims, t->ne,
                                                        t->size, fill, c, err))
            return -1;
    }
    return 0;
}

static int add_keys(pi_gguf_writer *w, const pi_pack *pk, const pi_placement *plan, pi_err *err)
{
    const pi_gguf *g = pk->m->gguf;
    for (int64_t i = 0; i < pi_gguf_n_kv(g); i++) {
        const pi_gguf_kv *kv = pi_gguf_kv_at(g, i);
        if (strcmp(kv->key, "general.alignment") && pi_gguf_set_value(w, kv->key, &kv->value, err))
            return -1;
    }
    uint64_t n = (uint64_t)pk->n_layer * (uint64_t)pk->n_ff;
    int rc = pi_gguf_set_u32(w, "pi.version", PI_PACK_VERSION, err);
    rc = rc ? rc : pi_gguf_set_u64(w, "pi.source.fingerprint", pk->fingerprint, err);
    rc = rc ? rc : pi_gguf_set_f32(w, "pi.ffn.freq_level",
                                   (float)pi_actstats_levels[pk->level], err);
    rc = rc ? rc : pi_gguf_set_u64(w, "pi.ffn.stats_tokens", pk->stats_tokens, err);
    rc = rc ? rc : pi_gguf_set_arr(w, "pi.ffn.freq", PI_GGUF_U16, pk->freq_q, n, err);
    rc = rc ? rc : pi_gguf_set_arr(w, "pi.ffn.perm", PI_GGUF_U32, pk->perm, n, err);
    if (!rc && pk->n_expert)
        rc = pi_gguf_set_arr(w, "pi.moe.usage", PI_GGUF_F32, pk->usage,
                             (uint64_t)pk->n_layer * (uint64_t)pk->n_expert, err);
    if (rc || !plan)
        return rc;
    uint32_t *n_gpu = malloc((size_t)pk->n_layer * sizeof *n_gpu);
    if (!n_gpu)
        return pi_err_set(err, "out of memory");
    for (int il = 0; il < pk->n_layer; il++)
        n_gpu[il] = (uint32_t)plan->layers[il].n_gpu;
    rc = pi_gguf_set_u64(w, "pi.placement.budget", plan->params.budget, err);
    rc = rc ? rc : pi_gguf_set_u32(w, "pi.placement.ctx", (uint32_t)plan->params.ctx, err);
    rc = rc ? rc : pi_gguf_set_arr(w, "pi.placement.n_gpu", PI_GGUF_U32, n_gpu,
                                   (uint64_t)pk->n_layer, err);
    free(n_gpu);
    return rc;
}

/* The predictors with W2's rows and b2 in packed order. */
static pi_predictor *permute_predictor(const pi_pack *pk, pi_err *err)
{
    const pi_predictor *src = pk->pred;
    pi_predictor *p = pi_predictor_new(pk->n_layer, pk->n_embd, pk->n_ff, pk->fingerprint, err);
    if (!p)
        return NULL;
    pi_predictor_meta meta = pi_predictor_get_meta(src);
    pi_predictor_set_meta(p, &meta);
    if (pi_predictor_set_wtype(p, pi_predictor_wtype(src), err))
        goto fail;
    float *w2 = NULL, *b2 = NULL;
    for (int il = 0; il < pk->n_layer; il++) {
        pi_predictor_layer L;
        pi_predictor_get_layer(src, il, &L);
        if (!L.rank)
            continue;
        float *nw2 = realloc(w2, (size_t)pk->n_ff * (size_t)L.rank * sizeof *w2);
        float *nb2 = nw2 ? realloc(b2, (size_t)pk->n_ff * sizeof *b2) : NULL;
        w2 = nw2 ? nw2 : w2;
        b2 = nb2 ? nb2 : b2;
        if (!nw2 || !nb2) {
            pi_err_set(err, "out of memory");
            goto fail_buf;
        }
        const uint32_t *perm = pk->perm + (size_t)il * (size_t)pk->n_ff;
        for (int j = 0; j < pk->n_ff; j++) {
            memcpy(w2 + (size_t)j * L.rank, L.w2 + (size_t)perm[j] * L.rank,
                   (size_t)L.rank * sizeof *w2);
            b2[j] = L.b2[perm[j]];
        }
        if (pi_predictor_set_layer(p, il, L.rank, L.w1, L.b1, w2, b2, L.threshold, err))
            goto fail_buf;
    }
    free(w2);
    free(b2);
    return p;
fail_buf:
    free(w2);
    free(b2);
fail:
    pi_predictor_free(p);
    return NULL;
}

int pi_pack_write(const pi_pack *pk, const pi_placement *plan, const char *path,
                  pi_pack_progress_fn progress, void *user, pi_err *err)
{
    pi_err e = { { 0 } };
    pi_gguf_writer *w = pi_gguf_writer_new(pi_gguf_alignment(pk->m->gguf));
    fill_ctx *ctx = calloc((size_t)pk->n_layer * N_FILL, sizeof *ctx);
    pi_predictor *pred = NULL;
    pi_predictor_hold *hold = NULL;
    int rc = -1;
    if (!w || !ctx) {
        pi_err_set(&e, "out of memory");
        goto done;
    }
    for (int il = 0; il < pk->n_layer; il++)
        for (int k = 0; k < N_FILL; k++)
            ctx[(size_t)il * N_FILL + k] = (fill_ctx){ pk, il, (fill_kind)k, progress, user };
    if (add_keys(w, pk, plan, &e) || add_tensors(w, pk, ctx, &e))
        goto done;
    if (pk->pred && (!(pred = permute_predictor(pk, &e)) ||
                     pi_predictor_add_to_writer(pred, w, &hold, &e)))
        goto done;
    rc = pi_gguf_writer_write(w, path, &e);
done:
    if (rc && !strncmp(e.msg, path, strlen(path)))
        *err = e;
    else if (rc)
        pi_err_set(err, "%s: %s", path, e.msg);
    pi_predictor_hold_free(hold);
    pi_predictor_free(pred);
    free(ctx);
    pi_gguf_writer_free(w);
    return rc;
}
