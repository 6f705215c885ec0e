/*
 * pack: the packed-model writer (see pack.h).
 */
#include "pack.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf_write.h"
#include "packinfo.h"
#include "quant.h"
#include "requant.h"

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
    if (pi_model_is_moe(m))
        return pi_err_set(err, "%s: a mixture of experts: pi-pack does not order experts yet",
                          path);
    const char *sn = p->stats_name ? p->stats_name : "statistics";
    const char *pn = p->pred_name ? p->pred_name : "predictors";
    if (st->fingerprint != fp)
        return pi_err_set(err, "%s: statistics of another model (fingerprint %016llx; %s "
                          "is %016llx)", sn, (unsigned long long)st->fingerprint, path,
                          (unsigned long long)fp);
    if (st->n_layer != hp->n_layer || st->n_ff != hp->n_ff)
        return pi_err_set(err, "%s: %d layers of %d neurons; %s has %d of %d", sn,
                          st->n_layer, st->n_ff, path, hp->n_layer, hp->n_ff);
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
        pi_type src = m->layers[il].down.type;
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

int pi_pack_prepare(pi_pack *pk, const pi_model *m, const pi_predictor *pred,
                    const pi_actstats_file *st, const pi_pack_params *p, pi_err *err)
{
    memset(pk, 0, sizeof *pk);
    const pi_hparams *hp = &m->hp;
    uint64_t fp = pi_gguf_fingerprint(m->gguf);
    if (check_inputs(m, pred, st, p, fp, err) || down_type(m, p->down_type, &pk->down_type, err))
        return -1;
    *pk = (pi_pack){ .m = m, .pred = pred, .n_layer = hp->n_layer, .n_ff = hp->n_ff,
                     .n_embd = hp->n_embd, .level = choose_level(pred, p->level),
                     .down_type = pk->down_type, .fingerprint = fp,
                     .stats_tokens = (uint64_t)st->tokens };
    size_t n = (size_t)hp->n_layer * (size_t)hp->n_ff;
    pk->perm = malloc(n * sizeof *pk->perm);
    pk->freq_q = malloc(n * sizeof *pk->freq_q);
    pk->freq = malloc(n * sizeof *pk->freq);
    pk->neuron_bytes = malloc((size_t)hp->n_layer * sizeof *pk->neuron_bytes);
    ranked *r = malloc((size_t)hp->n_ff * sizeof *r);
    if (!pk->perm || !pk->freq_q || !pk->freq || !pk->neuron_bytes || !r) {
        free(r);
        pi_pack_free(pk);
        return pi_err_set(err, "out of memory");
    }
    for (int il = 0; il < hp->n_layer; il++) {
        const float *f = pi_actstats_file_freq(st, il, pk->level);
        for (int i = 0; i < hp->n_ff; i++) {
            float tie = 0.0f;
            for (int lv = 0; lv < PI_ACTSTATS_LEVELS; lv++)
                tie += pi_actstats_file_freq(st, il, lv)[i];
            r[i] = (ranked){ f[i], tie, (uint32_t)i };
        }
        qsort(r, (size_t)hp->n_ff, sizeof *r, hotter_first);
        size_t base = (size_t)il * (size_t)hp->n_ff;
        for (int j = 0; j < hp->n_ff; j++) {
            pk->perm[base + j] = r[j].i;
            /* Rounding is monotone, so the stored order stays non-increasing. */
            pk->freq_q[base + j] = (uint16_t)lrintf(r[j].f * PI_PACK_FREQ_SCALE);
            pk->freq[base + j] = (float)pk->freq_q[base + j] / PI_PACK_FREQ_SCALE;
        }
        const pi_layer *l = &m->layers[il];
        pk->neuron_bytes[il] = (uint64_t)l->gate.row_bytes + (uint64_t)l->up.row_bytes +
                               (uint64_t)pi_row_size(pk->down_type, hp->n_embd);
    }
    free(r);
    return 0;
}

int pi_pack_placement(const pi_pack *pk, const pi_placement_params *pp, pi_placement *out,
                      pi_err *err)
{
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

typedef enum { FILL_GATE, FILL_UP, FILL_DOWN } fill_kind;

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

/* down: the source (n_embd rows of n_ff) dequantised, then column perm[j]
 * requantised as row j. */
static int fill_down(const fill_ctx *c, const pi_weight *w, uint8_t *dst, pi_err *err)
{
    const pi_pack *pk = c->pk;
    int64_t d = pk->n_embd, ff = pk->n_ff;
    float *src = malloc((size_t)d * (size_t)ff * sizeof *src);
    float *col = malloc((size_t)d * sizeof *col);
    if (!src || !col) {
        free(src);
        free(col);
        return pi_err_set(err, "out of memory for layer %d's down projection", c->il);
    }
    for (int64_t r = 0; r < d; r++)
        pi_dequantize_row(w->type, (const uint8_t *)w->data + (size_t)r * w->row_bytes,
                          src + r * ff, ff);
    const uint32_t *perm = pk->perm + (size_t)c->il * (size_t)ff;
    size_t row = pi_row_size(pk->down_type, d);
    for (int64_t j = 0; j < ff; j++) {
        for (int64_t r = 0; r < d; r++)
            col[r] = src[r * ff + perm[j]];
        pi_requantize_row(pk->down_type, col, dst + (size_t)j * row, d);
    }
    free(src);
    free(col);
    return 0;
}

static int fill(void *user, void *buf, uint64_t size, pi_err *err)
{
    const fill_ctx *c = user;
    const pi_layer *l = &c->pk->m->layers[c->il];
    (void)size;
    switch (c->kind) {
    case FILL_GATE: return fill_rows(c, &l->gate, buf);
    case FILL_UP: return fill_rows(c, &l->up, buf);
    case FILL_DOWN:
        if (fill_down(c, &l->down, buf, err))
            return -1;
        if (c->progress && c->progress(c->user, c->il + 1, c->pk->n_layer))
            return pi_err_set(err, "interrupted");
        return 0;
    }
    return 0;
}

/* Which FFN tensor of which layer a source tensor is, if any. */
static bool ffn_tensor(const char *name, int n_layer, int *il, fill_kind *kind)
{
    int end = 0;
    char what[16];
    if (sscanf(name, "blk.%d.ffn_%15[a-z].weight%n", il, what, &end) != 2 || name[end] ||
        *il < 0 || *il >= n_layer)
        return false;
    if (!strcmp(what, "gate"))
        *kind = FILL_GATE;
    else if (!strcmp(what, "up"))
        *kind = FILL_UP;
    else if (!strcmp(what, "down"))
        *kind = FILL_DOWN;
    else
        return false;
    char canon[64];
    snprintf(canon, sizeof canon, "blk.%d.ffn_%s.weight", *il, what);
    return !strcmp(canon, name);
}

static int add_tensors(pi_gguf_writer *w, const pi_pack *pk, fill_ctx *ctx, pi_err *err)
{
    const pi_gguf *g = pk->m->gguf;
    for (int64_t i = 0; i < pi_gguf_n_tensors(g); i++) {
        const pi_gguf_tensor *t = pi_gguf_tensor_at(g, i);
        int il;
        fill_kind kind;
        if (!ffn_tensor(t->name, pk->n_layer, &il, &kind)) {
            if (pi_gguf_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, t->size, err))
                return -1;
            continue;
        }
        fill_ctx *c = &ctx[(size_t)il * 3 + kind];
        if (kind != FILL_DOWN) {
            if (pi_gguf_add_tensor_fill(w, t->name, t->type, t->n_dims, t->ne, t->size, fill, c,
                                        err))
                return -1;
            continue;
        }
        char name[64];
        snprintf(name, sizeof name, "blk.%d.ffn_down_t.weight", il);
        int64_t ne[2] = { pk->n_embd, pk->n_ff };
        uint64_t size = (uint64_t)pi_row_size(pk->down_type, pk->n_embd) * (uint64_t)pk->n_ff;
        if (pi_gguf_add_tensor_fill(w, name, pk->down_type, 2, ne, size, fill, c, err))
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
    fill_ctx *ctx = calloc((size_t)pk->n_layer * 3, sizeof *ctx);
    pi_predictor *pred = NULL;
    pi_predictor_hold *hold = NULL;
    int rc = -1;
    if (!w || !ctx) {
        pi_err_set(&e, "out of memory");
        goto done;
    }
    for (int il = 0; il < pk->n_layer; il++)
        for (int k = 0; k < 3; k++)
            ctx[(size_t)il * 3 + k] = (fill_ctx){ pk, il, (fill_kind)k, progress, user };
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
