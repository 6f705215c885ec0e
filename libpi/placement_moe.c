/*
 * placement_moe: the GPU/CPU split of a mixture of experts under a memory
 * budget (see placement_moe.h).  The plan itself is placement.h's greedy
 * pass, over one unit per (layer, expert) whose neurons are all worth the
 * expert's routing probability; this module builds that input and sums the
 * result per layer.
 */
#include "placement_moe.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "packinfo.h"

#define MIB(b) ((double)(b) / (1024.0 * 1024.0))

/* A layer's usage row sums to 1 (up to float rounding of stored shares) or
 * is all zero (a layer pi-profile never saw route). */
static int check_input(const pi_moe_placement_input *in, pi_err *err)
{
    if (in->n_layer < 1 || in->n_expert < 1 || in->n_ff_exp < 1 || in->k < 1 ||
        in->k > in->n_expert)
        return pi_err_set(err, "placement: %d layers of %d experts (%d per token) of %d neurons",
                          in->n_layer, in->n_expert, in->k, in->n_ff_exp);
    if (!in->usage || !in->neuron_bytes)
        return pi_err_set(err, "placement: no expert usage or neuron costs");
    if ((size_t)in->n_layer > (size_t)INT32_MAX / (size_t)in->n_expert)
        return pi_err_set(err, "placement: %d layers of %d experts is too many", in->n_layer,
                          in->n_expert);
    for (int il = 0; il < in->n_layer; il++) {
        const float *u = in->usage + (size_t)il * (size_t)in->n_expert;
        double sum = 0;
        for (int x = 0; x < in->n_expert; x++) {
            if (!(u[x] >= 0.0f && u[x] <= 1.0f))
                return pi_err_set(err, "placement: layer %d: expert %d: usage %g is not in "
                                  "[0, 1]", il, x, (double)u[x]);
            sum += u[x];
        }
        if (sum != 0 && fabs(sum - 1.0) > 1e-3)
            return pi_err_set(err, "placement: layer %d: expert usage sums to %g, not 1", il,
                              sum);
    }
    return 0;
}

/* Each unit's neurons are worth the probability that a token routes to the
 * expert: k times its share, at most 1 (an expert runs once per token). */
static float *unit_values(const pi_moe_placement_input *in, const float **rows,
                          uint64_t *costs)
{
    size_t nu = (size_t)in->n_layer * (size_t)in->n_expert, nf = (size_t)in->n_ff_exp;
    float *v = malloc(nu * nf * sizeof *v);
    if (!v)
        return NULL;
    for (size_t u = 0; u < nu; u++) {
        double p = (double)in->k * (double)in->usage[u];
        float f = p > 1.0 ? 1.0f : (float)p;
        for (size_t j = 0; j < nf; j++)
            v[u * nf + j] = f;
        rows[u] = v + u * nf;
        costs[u] = in->neuron_bytes[u / (size_t)in->n_expert];
    }
    return v;
}

static void sum_layers(const pi_moe_placement_input *in, pi_moe_placement *out)
{
    double share_all = 0, weight_all = 0;
    for (int il = 0; il < in->n_layer; il++) {
        pi_moe_placement_layer *L = &out->layers[il];
        double share = 0, weight = 0;
        for (int x = 0; x < in->n_expert; x++) {
            size_t u = (size_t)il * (size_t)in->n_expert + (size_t)x;
            const pi_placement_layer *U = &out->units.layers[u];
            L->whole += U->n_gpu == in->n_ff_exp;
            L->partial += U->n_gpu > 0 && U->n_gpu < in->n_ff_exp;
            L->n_gpu += U->n_gpu;
            L->bytes += U->bytes;
            share += (double)in->usage[u] * U->n_gpu / in->n_ff_exp;
            weight += in->usage[u];
        }
        L->share = weight > 0 ? share / weight : 0;
        out->whole += L->whole;
        out->partial += L->partial;
        share_all += share;
        weight_all += weight;
    }
    out->share = weight_all > 0 ? share_all / weight_all : 0;
}

int pi_moe_placement_plan(const pi_moe_placement_input *in, const pi_placement_params *p,
                          pi_moe_placement *out, pi_err *err)
{
    if (!out)
        return pi_err_set(err, "placement: no output");
    memset(out, 0, sizeof *out);
    if (!in || !p)
        return pi_err_set(err, "placement: no input or parameters");
    if (check_input(in, err))
        return -1;
    size_t nu = (size_t)in->n_layer * (size_t)in->n_expert;
    const float **rows = malloc(nu * sizeof *rows);
    uint64_t *costs = malloc(nu * sizeof *costs);
    float *values = rows && costs ? unit_values(in, rows, costs) : NULL;
    out->layers = calloc((size_t)in->n_layer, sizeof *out->layers);
    int rc = -1;
    if (!values || !out->layers) {
        pi_err_set(err, "placement: out of memory for %d layers of %d experts", in->n_layer,
                   in->n_expert);
        goto done;
    }
    pi_placement_input units = {
        .n_layer = (int)nu, .n_ff = in->n_ff_exp, .neuron_bytes = costs,
        .freq = (const float *const *)rows, .resident = in->resident,
        .kv_elems_per_token = in->kv_elems_per_token,
    };
    if (pi_placement_plan(&units, p, &out->units, err))
        goto done;
    out->n_layer = in->n_layer;
    out->n_expert = in->n_expert;
    out->n_ff_exp = in->n_ff_exp;
    sum_layers(in, out);
    rc = 0;
done:
    free(values);
    free(rows);
    free(costs);
    if (rc)
        pi_moe_placement_free(out);
    return rc;
}

void pi_moe_placement_free(pi_moe_placement *pl)
{
    if (!pl)
        return;
    pi_placement_free(&pl->units);
    free(pl->layers);
    memset(pl, 0, sizeof *pl);
}

/* ---- From a model ---- */

static uint64_t wbytes(const pi_weight *w)
{
    return w->data ? (uint64_t)w->row_bytes * (uint64_t)w->ne1 : 0;
}

uint64_t pi_moe_placement_resident_bytes(const pi_model *m)
{
    uint64_t b = pi_placement_resident_bytes(m);
    for (int il = 0; il < m->hp.n_layer; il++) {
        const pi_layer *l = &m->layers[il];
        b += wbytes(&l->gate_inp) + wbytes(&l->gate_inp_shexp) + wbytes(&l->gate_shexp) +
             wbytes(&l->up_shexp) + wbytes(&l->down_shexp);
    }
    return b;
}

/* One expert neuron: its gate and up rows and its row of the neuron-major
 * down projection (a row of n_embd in the down type before packing). */
static int expert_neuron_bytes(const pi_model *m, uint64_t *out, pi_err *err)
{
    const pi_hparams *hp = &m->hp;
    for (int il = 0; il < hp->n_layer; il++) {
        const pi_layer *l = &m->layers[il];
        size_t down = l->down_t ? l->down_exps.row_bytes
                                : pi_row_size(l->down_exps.type, hp->n_embd);
        if (!down)
            return pi_err_set(err, "layer %d: ffn_down_exps type %s cannot hold rows of %d "
                              "elements", il, pi_type_name(l->down_exps.type), hp->n_embd);
        out[il] = (uint64_t)l->gate_exps.row_bytes + (uint64_t)l->up_exps.row_bytes + down;
    }
    return 0;
}

int pi_moe_placement_plan_model(const pi_model *m, const pi_placement_params *p,
                                pi_moe_placement *out, pi_err *err)
{
    memset(out, 0, sizeof *out);
    const pi_hparams *hp = &m->hp;
    if (!pi_model_is_moe(m))
        return pi_err_set(err, "%s: not a mixture of experts", pi_gguf_path(m->gguf));
    if (!m->pack || m->pack->n_expert != hp->n_expert || !m->pack->usage)
        return pi_err_set(err, "%s: not a packed mixture of experts: placement needs the "
                          "expert usage pi-pack stores", pi_gguf_path(m->gguf));
    uint64_t *bytes = malloc((size_t)hp->n_layer * sizeof *bytes);
    if (!bytes)
        return pi_err_set(err, "out of memory");
    int rc = -1;
    if (!expert_neuron_bytes(m, bytes, err)) {
        pi_moe_placement_input in = {
            .n_layer = hp->n_layer, .n_expert = hp->n_expert, .k = hp->n_expert_used,
            .n_ff_exp = hp->n_ff_exp, .neuron_bytes = bytes, .usage = m->pack->usage,
            .resident = pi_moe_placement_resident_bytes(m),
            .kv_elems_per_token = (uint64_t)hp->n_layer * 2 * (uint64_t)hp->n_head_kv *
                                  (uint64_t)hp->head_dim,
        };
        rc = pi_moe_placement_plan(&in, p, out, err);
    }
    free(bytes);
    return rc;
}

/* ---- Printing ---- */

int pi_moe_placement_print(const pi_moe_placement *pl, FILE *f)
{
    const pi_placement *u = &pl->units;
    const pi_placement_params *p = &u->params;
    fprintf(f, "GPU budget %.1f MiB; always resident %.1f MiB:\n", MIB(p->budget),
            MIB(u->reserved));
    fprintf(f, "  %-44s %10.1f MiB\n", "attention, router, shared experts, embeddings",
            MIB(u->resident));
    char kv[64];
    snprintf(kv, sizeof kv, "KV cache (ctx %d, %d B/elem)", p->ctx, p->kv_bytes);
    fprintf(f, "  %-44s %10.1f MiB\n", kv, MIB(u->kv));
    fprintf(f, "  %-44s %10.1f MiB\n", "scratch", MIB(u->scratch));
    fprintf(f, "%5s %13s %13s %10s %7s\n", "layer", "whole experts", "in part", "MiB",
            "share");
    for (int il = 0; il < pl->n_layer; il++) {
        const pi_moe_placement_layer *L = &pl->layers[il];
        fprintf(f, "%5d %6d/%-6d %13d %10.1f %6.1f%%\n", il, L->whole, pl->n_expert,
                L->partial, MIB(L->bytes), 100.0 * L->share);
    }
    fprintf(f, "%5s %6d/%-6d %13d %10.1f %6.1f%%\n", "all", pl->whole,
            pl->n_layer * pl->n_expert, pl->partial, MIB(u->ffn_bytes), 100.0 * pl->share);
    fprintf(f, "experts on GPU %.1f of %.1f MiB; GPU total %.1f of %.1f MiB; "
               "expected share of routed compute on GPU %.1f%%\n",
            MIB(u->ffn_bytes), MIB(u->ffn_bytes_all), MIB(u->total), MIB(p->budget),
            100.0 * pl->share);
    return ferror(f) ? -1 : 0;
}
