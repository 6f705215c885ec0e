/*
 * packinfo: reading the pi section of a packed model (see packinfo.h).
 */
#include "packinfo.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

bool pi_packinfo_present(const pi_gguf *g)
{
    return pi_gguf_get(g, "pi.version") != NULL;
}

void pi_packinfo_free(pi_packinfo *p)
{
    if (!p)
        return;
    free(p->freq);
    free(p->perm);
    free(p->plan_n_gpu);
    free(p->usage);
    memset(p, 0, sizeof *p);
}

/* An integer array of n elements of type t, or NULL with err set. */
static const pi_gguf_arr *get_arr(const pi_gguf *g, const char *key, pi_gguf_type t, uint64_t n,
                                  pi_err *err)
{
    const pi_gguf_arr *a = pi_gguf_get_arr(g, key, t);
    if (!a) {
        pi_err_set(err, "%s: %s%s (an array of %s)", pi_gguf_path(g),
                   pi_gguf_get(g, key) ? "wrong type for " : "missing key ", key,
                   pi_gguf_type_name(t));
        return NULL;
    }
    if (a->n != n) {
        pi_err_set(err, "%s: %s has %llu entries, expected %llu", pi_gguf_path(g), key,
                   (unsigned long long)a->n, (unsigned long long)n);
        return NULL;
    }
    return a;
}

/* The neurons of one expert, or of the whole layer in a dense model. */
static int block_len(const pi_packinfo *p) { return p->n_expert ? p->n_ff_exp : p->n_ff; }

/* Packed block b of layer il (entries [i0, i0 + bs) of the arrays): its
 * frequencies non-increasing, and its sources distinct (seen, over the
 * layer) rows of one source block. */
static int check_block(const pi_gguf *g, const pi_packinfo *p, const pi_gguf_arr *fa,
                       const pi_gguf_arr *pa, int il, int b, uint8_t *seen, pi_err *err)
{
    const char *path = pi_gguf_path(g);
    int64_t bs = block_len(p), prev = 65535, x = -1;
    uint64_t i0 = (uint64_t)il * (uint64_t)p->n_ff + (uint64_t)b * (uint64_t)bs;
    for (int64_t j = 0; j < bs; j++) {
        uint64_t i = i0 + (uint64_t)j;
        int64_t f = pi_gguf_arr_i64(fa, i), src = pi_gguf_arr_i64(pa, i);
        if (f > prev)
            return p->n_expert
                       ? pi_err_set(err, "%s: pi.ffn.freq: layer %d, expert %d is not in "
                                    "decreasing order at neuron %lld", path, il, b, (long long)j)
                       : pi_err_set(err, "%s: pi.ffn.freq: layer %d is not in decreasing order "
                                    "at neuron %lld", path, il, (long long)j);
        if (src < 0 || src >= p->n_ff || seen[src]++)
            return pi_err_set(err, "%s: pi.ffn.perm: layer %d is not a permutation of 0..%d",
                              path, il, p->n_ff - 1);
        if (x >= 0 && src / bs != x)
            return pi_err_set(err, "%s: pi.ffn.perm: layer %d, expert %d takes neurons of "
                              "source experts %lld and %lld", path, il, b, (long long)x,
                              (long long)(src / bs));
        x = src / bs;
        prev = f;
        p->freq[i] = (float)f / PI_PACK_FREQ_SCALE;
        p->perm[i] = (uint32_t)src;
    }
    return 0;
}

static int read_neurons(const pi_gguf *g, pi_packinfo *p, pi_err *err)
{
    uint64_t n = (uint64_t)p->n_layer * (uint64_t)p->n_ff;
    const pi_gguf_arr *fa = get_arr(g, "pi.ffn.freq", PI_GGUF_U16, n, err);
    const pi_gguf_arr *pa = fa ? get_arr(g, "pi.ffn.perm", PI_GGUF_U32, n, err) : NULL;
    if (!pa)
        return -1;
    p->freq = malloc(n * sizeof *p->freq);
    p->perm = malloc(n * sizeof *p->perm);
    uint8_t *seen = malloc((size_t)p->n_ff);
    if (!p->freq || !p->perm || !seen) {
        free(seen);
        return pi_err_set(err, "%s: out of memory for the pi section", pi_gguf_path(g));
    }
    int rc = 0, nb = p->n_ff / block_len(p);
    for (int il = 0; il < p->n_layer && !rc; il++) {
        memset(seen, 0, (size_t)p->n_ff);
        for (int b = 0; b < nb && !rc; b++)
            rc = check_block(g, p, fa, pa, il, b, seen, err);
    }
    free(seen);
    return rc;
}

/* A mixture of experts' pi.moe.usage: shares of the routings, non-increasing
 * in each layer and summing to 1 (within float rounding); a dense model has
 * no such key. */
static int read_usage(const pi_gguf *g, pi_packinfo *p, pi_err *err)
{
    const char *path = pi_gguf_path(g);
    if (!p->n_expert)
        return pi_gguf_get(g, "pi.moe.usage")
                   ? pi_err_set(err, "%s: pi.moe.usage in a model without experts", path)
                   : 0;
    size_t E = (size_t)p->n_expert;
    const pi_gguf_arr *a = get_arr(g, "pi.moe.usage", PI_GGUF_F32, (uint64_t)p->n_layer * E,
                                   err);
    if (!a)
        return -1;
    if (!(p->usage = malloc((size_t)p->n_layer * E * sizeof *p->usage)))
        return pi_err_set(err, "%s: out of memory for the pi section", path);
    for (int il = 0; il < p->n_layer; il++) {
        double sum = 0.0;
        for (size_t x = 0; x < E; x++) {
            float u = pi_gguf_arr_f32(a, (uint64_t)il * E + x);
            if (!(u >= 0.0f && u <= 1.0f))
                return pi_err_set(err, "%s: pi.moe.usage: layer %d, expert %zu: %g is not a "
                                  "share from 0 to 1", path, il, x, (double)u);
            if (x && u > p->usage[(size_t)il * E + x - 1])
                return pi_err_set(err, "%s: pi.moe.usage: layer %d is not in decreasing order "
                                  "at expert %zu", path, il, x);
            sum += p->usage[(size_t)il * E + x] = u;
        }
        if (!(fabs(sum - 1.0) < 1e-3))
            return pi_err_set(err, "%s: pi.moe.usage: layer %d sums to %g, not 1", path, il,
                              sum);
    }
    return 0;
}

static int read_plan(const pi_gguf *g, pi_packinfo *p, pi_err *err)
{
    bool has_budget = pi_gguf_get(g, "pi.placement.budget") != NULL;
    bool has_ctx = pi_gguf_get(g, "pi.placement.ctx") != NULL;
    bool has_n = pi_gguf_get(g, "pi.placement.n_gpu") != NULL;
    if (!has_budget && !has_ctx && !has_n)
        return 0;
    if (p->n_expert) /* its n_gpu would count neurons of experts no plan places */
        return pi_err_set(err, "%s: pi.placement: a mixture of experts has no plan yet",
                          pi_gguf_path(g));
    uint32_t ctx;
    if (!has_budget || !has_ctx || !has_n)
        return pi_err_set(err, "%s: pi.placement needs budget, ctx and n_gpu together",
                          pi_gguf_path(g));
    if (pi_gguf_get_u64(g, "pi.placement.budget", &p->plan_budget) || p->plan_budget == 0 ||
        pi_gguf_get_u32(g, "pi.placement.ctx", &ctx) || ctx > (1u << 24))
        return pi_err_set(err, "%s: bad pi.placement.budget or pi.placement.ctx",
                          pi_gguf_path(g));
    p->plan_ctx = (int)ctx;
    const pi_gguf_arr *a = get_arr(g, "pi.placement.n_gpu", PI_GGUF_U32, (uint64_t)p->n_layer,
                                   err);
    if (!a)
        return -1;
    if (!(p->plan_n_gpu = malloc((size_t)p->n_layer * sizeof *p->plan_n_gpu)))
        return pi_err_set(err, "%s: out of memory", pi_gguf_path(g));
    for (int il = 0; il < p->n_layer; il++) {
        int64_t v = pi_gguf_arr_i64(a, (uint64_t)il);
        if (v < 0 || v > p->n_ff)
            return pi_err_set(err, "%s: pi.placement.n_gpu: layer %d has %lld of %d neurons",
                              pi_gguf_path(g), il, (long long)v, p->n_ff);
        p->plan_n_gpu[il] = (uint32_t)v;
    }
    return 0;
}

static int read_scalars(const pi_gguf *g, pi_packinfo *p, pi_err *err)
{
    const char *path = pi_gguf_path(g);
    if (pi_gguf_get_u64(g, "pi.source.fingerprint", &p->source_fingerprint))
        return pi_err_set(err, "%s: missing or invalid pi.source.fingerprint", path);
    if (pi_gguf_get_f32(g, "pi.ffn.freq_level", &p->freq_level) ||
        !(p->freq_level > 0.0f && p->freq_level <= 1.0f))
        return pi_err_set(err, "%s: missing or invalid pi.ffn.freq_level", path);
    if (pi_gguf_get_u64(g, "pi.ffn.stats_tokens", &p->stats_tokens))
        return pi_err_set(err, "%s: missing or invalid pi.ffn.stats_tokens", path);
    return 0;
}

static int read_section(const pi_gguf *g, int n_layer, int n_expert, int n_ff_exp,
                        pi_packinfo *out, pi_err *err)
{
    const char *path = pi_gguf_path(g);
    memset(out, 0, sizeof *out);
    uint32_t version;
    if (pi_gguf_get_u32(g, "pi.version", &version))
        return pi_err_set(err, "%s: missing or invalid pi.version", path);
    if (version != PI_PACK_VERSION)
        return pi_err_set(err, "%s: pi.version: packed format version %u (this build reads %d)",
                          path, version, PI_PACK_VERSION);
    int64_t n_ff = (int64_t)(n_expert ? n_expert : 1) * n_ff_exp;
    if (n_layer < 1 || n_expert < 0 || n_ff_exp < 1)
        return pi_err_set(err, "%s: no layers to pack", path);
    if (n_ff > INT32_MAX)
        return pi_err_set(err, "%s: %d experts of %d neurons: too many", path, n_expert,
                          n_ff_exp);
    out->n_layer = n_layer;
    out->n_ff = (int)n_ff;
    out->n_expert = n_expert;
    out->n_ff_exp = n_expert ? n_ff_exp : 0;
    if (read_scalars(g, out, err) || read_usage(g, out, err) || read_neurons(g, out, err) ||
        read_plan(g, out, err)) {
        pi_packinfo_free(out);
        return -1;
    }
    return 0;
}

int pi_packinfo_read(const pi_gguf *g, int n_layer, int n_ff, pi_packinfo *out, pi_err *err)
{
    return read_section(g, n_layer, 0, n_ff, out, err);
}

int pi_packinfo_read_moe(const pi_gguf *g, int n_layer, int n_expert, int n_ff_exp,
                         pi_packinfo *out, pi_err *err)
{
    if (n_expert < 1) {
        memset(out, 0, sizeof *out);
        return pi_err_set(err, "%s: no experts", pi_gguf_path(g));
    }
    return read_section(g, n_layer, n_expert, n_ff_exp, out, err);
}
