/*
 * profile: the dense model watched layer by layer (see profile.h).
 */
#include "profile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forward.h"
#include "moe.h"

struct pi_profile {
    const pi_model *m;
    pi_profile_params p;
    pi_ctx *ctx;
    pi_trace_info info;
    size_t rec_bytes, slot_bytes;
    uint8_t *slots;   /* n_batch records being built */
    bool *sampled;    /* n_batch: which rows of the batch the trace records */
    int skip;         /* leading rows of the batch that are not text (BOS) */
    int64_t done, recorded;
};

void pi_profile_trace_info(const pi_model *m, const pi_profile_params *p, pi_trace_info *info)
{
    const pi_hparams *hp = &m->hp;
    memset(info, 0, sizeof *info);
    info->fingerprint = pi_gguf_fingerprint(m->gguf);
    info->n_layer = hp->n_layer;
    info->n_embd = hp->n_embd;
    info->n_ff = hp->n_ff;
    info->x_encoding = PI_TRACE_X_I8;
    info->act_encoding = PI_TRACE_ACT_LOG2H;
    for (int il = 0; il < hp->n_layer && il < PI_TRACE_MAX_LAYERS; il++)
        if (!p->layers || p->layers[il])
            info->layer[info->n_rec++] = il;
    int ctx = p->ctx > 0 ? p->ctx : 512;
    info->ctx = ctx < hp->n_ctx_train ? ctx : hp->n_ctx_train;
    info->every = p->every > 0 ? p->every : 1;
    info->seed = p->seed;
    if (pi_gguf_get_cstr(m->gguf, "general.name", info->model, sizeof info->model))
        snprintf(info->model, sizeof info->model, "%s", pi_arch_name(hp->arch));
}

int64_t pi_profile_n_ff(const pi_model *m)
{
    return pi_model_is_moe(m) ? pi_moe_row_len(m) : m->hp.n_ff;
}

static void observe(void *user, int il, const float *x, const float *act, int n)
{
    pi_profile *pf = user;
    int64_t ff = pi_profile_n_ff(pf->m), d = pf->m->hp.n_embd;
    if (n <= pf->skip)
        return;
    if (pf->p.stats)
        pi_actstats_add(pf->p.stats, il, act + pf->skip * ff, n - pf->skip);
    if (pf->p.experts)
        pi_expertstats_add(pf->p.experts, il,
                           pi_moe_chosen(pi_ctx_moe(pf->ctx)) +
                               (size_t)pf->skip * pf->m->hp.n_expert_used,
                           n - pf->skip);
    int slot = pf->p.trace ? pi_trace_slot(&pf->info, il) : -1;
    if (slot < 0)
        return;
    for (int t = pf->skip; t < n; t++)
        if (pf->sampled[t])
            pi_trace_encode(&pf->info, x + t * d, act + t * ff,
                            pf->slots + t * pf->rec_bytes + slot * pf->slot_bytes);
}

pi_profile *pi_profile_new(const pi_model *m, const pi_profile_params *p, pi_err *err)
{
    if (pi_model_is_moe(m) && p->trace) {
        pi_err_set(err, "%s: a mixture of experts: pi-profile writes its statistics only "
                   "(--stats-only); traces of experts are not written yet", pi_gguf_path(m->gguf));
        return NULL;
    }
    pi_profile *pf = calloc(1, sizeof *pf);
    if (!pf) {
        pi_err_set(err, "out of memory");
        return NULL;
    }
    pf->m = m;
    pf->p = *p;
    pi_profile_trace_info(m, p, &pf->info);
    pf->p.every = pf->info.every;
    if (pf->info.n_rec == 0 && p->trace) {
        pi_err_set(err, "no layer to record");
        free(pf);
        return NULL;
    }
    pi_ctx_params cp = { .n_ctx = pf->info.ctx, .n_threads = p->threads,
                         .n_batch = p->batch > 0 ? p->batch : 64 };
    if (!(pf->ctx = pi_ctx_new(m, &cp, err))) {
        free(pf);
        return NULL;
    }
    int nb = pi_ctx_n_batch(pf->ctx);
    pf->rec_bytes = pi_trace_record_size(&pf->info) - 12; /* the slots of one record */
    pf->slot_bytes = pi_trace_slot_size(&pf->info);
    pf->slots = malloc((size_t)nb * pf->rec_bytes);
    pf->sampled = calloc((size_t)nb, sizeof *pf->sampled);
    if (!pf->slots || !pf->sampled) {
        pi_profile_free(pf);
        pi_err_set(err, "out of memory");
        return NULL;
    }
    if (pi_ctx_observe_ffn(pf->ctx, observe, pf, err)) {
        pi_profile_free(pf);
        return NULL;
    }
    return pf;
}

void pi_profile_free(pi_profile *pf)
{
    if (!pf)
        return;
    pi_ctx_free(pf->ctx);
    free(pf->slots);
    free(pf->sampled);
    free(pf);
}

bool pi_profile_done(const pi_profile *pf)
{
    return pf->p.max_tokens > 0 && pf->done >= pf->p.max_tokens;
}

int64_t pi_profile_tokens(const pi_profile *pf) { return pf->done; }
int64_t pi_profile_recorded(const pi_profile *pf) { return pf->recorded; }
int pi_profile_ctx(const pi_profile *pf) { return pf->info.ctx; }

/* Which token of the group of `every` that text token i falls in is
 * recorded: a hash of the seed and the group, so the choice is the same
 * whatever the batch and thread counts. */
static bool is_sampled(const pi_profile *pf, int64_t i)
{
    int64_t k = pf->p.every;
    if (k == 1)
        return true;
    uint64_t z = pf->p.seed + (uint64_t)(i / k) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (int64_t)(z % (uint64_t)k) == i % k;
}

/* One forward pass over toks[0..n) at window position pos; the first
 * `skip` are not text. */
static int run_batch(pi_profile *pf, const int32_t *toks, int n, int skip, int pos, pi_err *err)
{
    pf->skip = skip;
    for (int t = skip; t < n; t++)
        pf->sampled[t] = pf->p.trace && is_sampled(pf, pf->done + t - skip);
    if (pi_decode(pf->ctx, toks, n, NULL, false, err))
        return -1;
    for (int t = skip; t < n; t++) {
        if (!pf->sampled[t])
            continue;
        if (pi_trace_write(pf->p.trace, toks[t], pos + t, pf->slots + t * pf->rec_bytes, err))
            return -1;
        pf->recorded++;
    }
    pf->done += n - skip;
    if (pf->p.progress && pf->p.progress(pf->p.user, pf->done))
        return pi_err_set(err, "interrupted");
    return 0;
}

int pi_profile_text(pi_profile *pf, const int32_t *tokens, size_t n, pi_err *err)
{
    int ctx = pf->info.ctx, nb = pi_ctx_n_batch(pf->ctx);
    bool bos = pf->p.bos >= 0;
    int per_window = ctx - (bos ? 1 : 0);
    int32_t *buf = malloc((size_t)nb * sizeof *buf);
    if (!buf)
        return pi_err_set(err, "out of memory");
    int rc = 0;
    for (size_t at = 0; at < n && !pi_profile_done(pf) && !rc; at += (size_t)per_window) {
        size_t left = n - at;
        int64_t take = left < (size_t)per_window ? (int64_t)left : per_window;
        if (pf->p.max_tokens > 0 && take > pf->p.max_tokens - pf->done)
            take = pf->p.max_tokens - pf->done;
        pi_ctx_truncate(pf->ctx, 0);
        int pos = 0;
        for (int64_t i = 0; i < take && !rc;) {
            int skip = pos == 0 && bos ? 1 : 0;
            int b = (int)(take - i < nb - skip ? take - i : nb - skip);
            if (skip)
                buf[0] = pf->p.bos;
            memcpy(buf + skip, tokens + at + i, (size_t)b * sizeof *buf);
            rc = run_batch(pf, buf, b + skip, skip, pos, err);
            pos += b + skip;
            i += b;
        }
    }
    free(buf);
    return rc;
}
