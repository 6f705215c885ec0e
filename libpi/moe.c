/*
 * moe: mixture-of-experts FFN on the CPU (see moe.h).
 */
#include "moe.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "matmul.h"
#include "vec.h"

struct pi_moe {
    const pi_model *m;
    int n_batch, n_expert, k;
    float *logits;   /* n_batch x E: router logits, then probabilities */
    int32_t *chosen; /* n_batch x k */
    float *weight;   /* n_batch x k */
    int32_t *count;  /* E: tokens per expert in this batch */
    int32_t *tok;    /* E x n_batch: which tokens, in order */
    float *tw;       /* E x n_batch: with which weight */
    float *xg, *yg;  /* n_batch x n_embd: one expert's tokens gathered, its output */
    void *router_acts;
    uint64_t *usage; /* n_layer x E */
    float *observed; /* n_batch rows of E x n_ff_exp, or NULL */
};

pi_moe *pi_moe_new(const pi_model *m, int n_batch, pi_err *err)
{
    const pi_hparams *hp = &m->hp;
    pi_moe *e = calloc(1, sizeof *e);
    if (!e) {
        pi_err_set(err, "out of memory");
        return NULL;
    }
    size_t B = (size_t)n_batch, E = (size_t)hp->n_expert, k = (size_t)hp->n_expert_used;
    size_t d = (size_t)hp->n_embd;
    e->m = m;
    e->n_batch = n_batch;
    e->n_expert = hp->n_expert;
    e->k = hp->n_expert_used;
    e->logits = malloc(B * E * sizeof *e->logits);
    e->chosen = malloc(B * k * sizeof *e->chosen);
    e->weight = malloc(B * k * sizeof *e->weight);
    e->count = malloc(E * sizeof *e->count);
    e->tok = malloc(E * B * sizeof *e->tok);
    e->tw = malloc(E * B * sizeof *e->tw);
    e->xg = malloc(B * d * sizeof *e->xg);
    e->yg = malloc(B * d * sizeof *e->yg);
    size_t ra = 0;
    for (int il = 0; il < hp->n_layer; il++) {
        size_t b = pi_acts_row_bytes(m->layers[il].gate_inp.type, hp->n_embd);
        ra = b > ra ? b : ra;
    }
    e->router_acts = malloc(B * ra);
    e->usage = calloc((size_t)hp->n_layer * E, sizeof *e->usage);
    if (!e->logits || !e->chosen || !e->weight || !e->count || !e->tok || !e->tw || !e->xg ||
        !e->yg || !e->router_acts || !e->usage) {
        pi_moe_free(e);
        pi_err_set(err, "out of memory for the experts' scratch");
        return NULL;
    }
    return e;
}

void pi_moe_free(pi_moe *e)
{
    if (!e)
        return;
    free(e->logits);
    free(e->chosen);
    free(e->weight);
    free(e->count);
    free(e->tok);
    free(e->tw);
    free(e->xg);
    free(e->yg);
    free(e->router_acts);
    free(e->usage);
    free(e);
}

const int32_t *pi_moe_chosen(const pi_moe *e) { return e->chosen; }
const float *pi_moe_weights(const pi_moe *e) { return e->weight; }
const uint64_t *pi_moe_usage(const pi_moe *e) { return e->usage; }
int64_t pi_moe_row_len(const pi_model *m) { return (int64_t)m->hp.n_expert * m->hp.n_ff_exp; }
void pi_moe_observe(pi_moe *e, float *act) { e->observed = act; }

/* Softmax of one token's router logits, then its k most probable experts
 * in decreasing order (ties to the lower index: a strict comparison while
 * scanning upwards), weights renormalised when the model says so. */
static void route(const pi_moe *e, const float *logit, int32_t *ids, float *w, bool norm)
{
    int E = e->n_expert;
    float mx = logit[0];
    for (int i = 1; i < E; i++)
        mx = logit[i] > mx ? logit[i] : mx;
    double sum = 0.0;
    float p[E];
    for (int i = 0; i < E; i++)
        sum += p[i] = expf(logit[i] - mx);
    for (int i = 0; i < E; i++)
        p[i] = (float)(p[i] / sum);
    double wsum = 0.0;
    for (int j = 0; j < e->k; j++) {
        int best = -1;
        for (int i = 0; i < E; i++) {
            bool taken = false;
            for (int q = 0; q < j && !taken; q++)
                taken = ids[q] == i;
            if (!taken && (best < 0 || p[i] > p[best]))
                best = i;
        }
        ids[j] = best;
        w[j] = p[best];
        wsum += p[best];
    }
    for (int j = 0; norm && j < e->k; j++)
        w[j] = (float)(w[j] / wsum);
}

/* A dense-FFN view of expert x's rows; a packed model's down projection is
 * neuron-major (n_ff rows per expert), which the dense FFN computes as such. */
static pi_layer expert_view(const pi_layer *l, int x, int64_t n_ff, int64_t d)
{
    pi_layer v = { 0 };
    int64_t down_rows = l->down_t ? n_ff : d;
    v.gate = l->gate_exps;
    v.up = l->up_exps;
    v.down = l->down_exps;
    v.gate.data = (const uint8_t *)l->gate_exps.data + (size_t)x * n_ff * l->gate_exps.row_bytes;
    v.up.data = (const uint8_t *)l->up_exps.data + (size_t)x * n_ff * l->up_exps.row_bytes;
    v.down.data = (const uint8_t *)l->down_exps.data +
                  (size_t)x * down_rows * l->down_exps.row_bytes;
    v.gate.ne1 = v.up.ne1 = n_ff;
    v.down.ne1 = down_rows;
    v.down_t = l->down_t;
    return v;
}

static void shared_expert(pi_moe *e, pi_pool *pool, const pi_layer *l, const float *x,
                          float *out, int n, const pi_ffn_scratch *s)
{
    int64_t d = e->m->hp.n_embd;
    pi_layer v = { 0 };
    v.gate = l->gate_shexp;
    v.up = l->up_shexp;
    v.down = l->down_shexp;
    pi_ffn_dense(pool, &v, x, e->yg, n, s);
    float gw[d];
    pi_weight_row(&l->gate_inp_shexp, 0, gw);
    for (int t = 0; t < n; t++) {
        float g = pi_vec_dot(d, gw, x + t * d);
        g = 1.0f / (1.0f + expf(-g));
        for (int64_t i = 0; i < d; i++)
            out[t * d + i] += g * e->yg[t * d + i];
    }
}

void pi_moe_ffn(pi_moe *e, pi_pool *pool, int il, const float *x, float *out, int n,
                const pi_ffn_scratch *s)
{
    const pi_hparams *hp = &e->m->hp;
    const pi_layer *l = &e->m->layers[il];
    int64_t d = hp->n_embd;
    int E = e->n_expert, k = e->k;
    pi_acts a = s->exact ? pi_acts_float(x, n, d)
                         : pi_acts_quantize(pool, l->gate_inp.type, x, n, d, e->router_acts);
    pi_matmul(pool, &l->gate_inp, &a, e->logits, E);
    memset(e->count, 0, (size_t)E * sizeof *e->count);
    for (int t = 0; t < n; t++) {
        int32_t *ids = e->chosen + (size_t)t * k;
        float *w = e->weight + (size_t)t * k;
        route(e, e->logits + (size_t)t * E, ids, w, hp->expert_norm);
        for (int j = 0; j < k; j++) {
            int c = e->count[ids[j]]++;
            e->tok[(size_t)ids[j] * e->n_batch + c] = t;
            e->tw[(size_t)ids[j] * e->n_batch + c] = w[j];
            e->usage[(size_t)il * E + ids[j]]++;
        }
    }
    memset(out, 0, (size_t)n * d * sizeof *out);
    int64_t fe = hp->n_ff_exp, row = (int64_t)E * fe;
    if (e->observed)
        memset(e->observed, 0, (size_t)n * (size_t)row * sizeof *e->observed);
    for (int x_ = 0; x_ < E; x_++) {
        int c = e->count[x_];
        if (!c)
            continue;
        const int32_t *tok = e->tok + (size_t)x_ * e->n_batch;
        const float *tw = e->tw + (size_t)x_ * e->n_batch;
        for (int i = 0; i < c; i++)
            memcpy(e->xg + (size_t)i * d, x + (size_t)tok[i] * d, (size_t)d * sizeof *x);
        pi_layer v = expert_view(l, x_, hp->n_ff_exp, d);
        pi_ffn_dense(pool, &v, e->xg, e->yg, c, s);
        for (int i = 0; i < c; i++)
            pi_vec_axpy(d, tw[i], e->yg + (size_t)i * d, out + (size_t)tok[i] * d);
        for (int i = 0; e->observed && i < c; i++) {
            float *o = e->observed + (size_t)tok[i] * row + (size_t)x_ * fe;
            const float *act = s->gate + (size_t)i * fe; /* silu(g) * u, ffn.h */
            for (int64_t j = 0; j < fe; j++)
                o[j] = tw[i] * act[j];
        }
    }
    if (l->gate_shexp.data)
        shared_expert(e, pool, l, x, out, n, s);
}
