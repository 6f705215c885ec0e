/*
 * model: loading hyperparameters and weight views from a GGUF (see model.h).
 * Tensor names and metadata keys are those of llama.cpp's converters.
 */
#include "model.h"

#include "packinfo.h"
#include "predictor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    pi_arch arch;
    pi_rope_type rope;
} archs[] = {
    { "llama", PI_ARCH_LLAMA, PI_ROPE_NORM },
    { "qwen2", PI_ARCH_QWEN2, PI_ROPE_NEOX },
    { "qwen3", PI_ARCH_QWEN3, PI_ROPE_NEOX },
    { "qwen2moe", PI_ARCH_QWEN2MOE, PI_ROPE_NEOX },
    { "qwen3moe", PI_ARCH_QWEN3MOE, PI_ROPE_NEOX },
};

bool pi_model_is_moe(const pi_model *m) { return m->hp.n_expert > 0; }

const char *pi_arch_name(pi_arch a)
{
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        if (archs[i].arch == a)
            return archs[i].name;
    return "?";
}

/* Reads "{arch}.{key}" as a positive int. */
static int get_int(const pi_gguf *g, const char *arch, const char *key, int *out, bool required,
                   pi_err *err)
{
    char full[128];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    uint32_t v;
    if (pi_gguf_get_u32(g, full, &v)) {
        if (!required)
            return 0;
        if (pi_gguf_get(g, full))
            return pi_err_set(err, "%s: metadata key '%s' is not a 32-bit count",
                              pi_gguf_path(g), full);
        return pi_err_set(err, "%s: missing metadata key '%s'", pi_gguf_path(g), full);
    }
    if (v == 0 || v > (1u << 24))
        return pi_err_set(err, "%s: metadata key '%s' = %u is out of range", pi_gguf_path(g),
                          full, v);
    *out = (int)v;
    return 0;
}

static float get_float(const pi_gguf *g, const char *arch, const char *key, float dflt)
{
    char full[128];
    float v;
    snprintf(full, sizeof full, "%s.%s", arch, key);
    return pi_gguf_get_f32(g, full, &v) ? dflt : v;
}

/* The router's shape: E experts of n_ff_exp neurons, k used per token;
 * qwen2moe adds a shared expert.  Whether the k weights are renormalised is
 * the architecture's (Qwen3-MoE does, Qwen1.5-MoE does not) unless the file
 * says otherwise. */
static int load_moe(const pi_gguf *g, const char *arch, pi_hparams *hp, pi_err *err)
{
    if (get_int(g, arch, "expert_count", &hp->n_expert, true, err) ||
        get_int(g, arch, "expert_used_count", &hp->n_expert_used, true, err) ||
        get_int(g, arch, "expert_feed_forward_length", &hp->n_ff_exp, true, err))
        return -1;
    if (hp->arch == PI_ARCH_QWEN2MOE &&
        get_int(g, arch, "expert_shared_feed_forward_length", &hp->n_ff_shexp, true, err))
        return -1;
    if (hp->n_expert_used > hp->n_expert || hp->n_expert > 4096)
        return pi_err_set(err, "%s: %d experts used of %d: inconsistent", pi_gguf_path(g),
                          hp->n_expert_used, hp->n_expert);
    char key[128];
    bool norm;
    snprintf(key, sizeof key, "%s.expert_weights_norm", arch);
    hp->expert_norm = pi_gguf_get_bool(g, key, &norm) ? hp->arch == PI_ARCH_QWEN3MOE : norm;
    /* n_ff sizes what is not per expert; a MoE file may leave it out */
    hp->n_ff = hp->n_ff_exp;
    return get_int(g, arch, "feed_forward_length", &hp->n_ff, false, err);
}

static int load_hparams(const pi_gguf *g, pi_hparams *hp, pi_err *err)
{
    char arch[32];
    const char *path = pi_gguf_path(g);
    if (pi_gguf_get_cstr(g, "general.architecture", arch, sizeof arch))
        return pi_err_set(err, "%s: no general.architecture: not a model file", path);
    size_t i = 0;
    while (i < sizeof archs / sizeof archs[0] && strcmp(archs[i].name, arch))
        i++;
    if (i == sizeof archs / sizeof archs[0])
        return pi_err_set(err, "%s: unsupported architecture '%s' (pi runs llama, qwen2, "
                          "qwen3, qwen2moe, qwen3moe)", path, arch);
    *hp = (pi_hparams){ .arch = archs[i].arch, .rope_type = archs[i].rope };
    bool moe = hp->arch == PI_ARCH_QWEN2MOE || hp->arch == PI_ARCH_QWEN3MOE;
    if (get_int(g, arch, "block_count", &hp->n_layer, true, err) ||
        get_int(g, arch, "embedding_length", &hp->n_embd, true, err) ||
        (moe ? load_moe(g, arch, hp, err)
             : get_int(g, arch, "feed_forward_length", &hp->n_ff, true, err)) ||
        get_int(g, arch, "attention.head_count", &hp->n_head, true, err))
        return -1;
    hp->n_head_kv = hp->n_head;
    hp->head_dim = hp->n_embd / hp->n_head;
    hp->n_ctx_train = 4096;
    if (get_int(g, arch, "attention.head_count_kv", &hp->n_head_kv, false, err) ||
        get_int(g, arch, "attention.key_length", &hp->head_dim, false, err) ||
        get_int(g, arch, "context_length", &hp->n_ctx_train, false, err))
        return -1;
    hp->n_rot = hp->head_dim;
    if (get_int(g, arch, "rope.dimension_count", &hp->n_rot, false, err))
        return -1;
    if (hp->n_head % hp->n_head_kv || hp->n_rot > hp->head_dim || hp->n_rot % 2)
        return pi_err_set(err, "%s: inconsistent attention shape (%d heads, %d kv heads, "
                          "head size %d, %d rotated)", path, hp->n_head, hp->n_head_kv,
                          hp->head_dim, hp->n_rot);
    hp->rope_base = get_float(g, arch, "rope.freq_base", 10000.0f);
    hp->rms_eps = get_float(g, arch, "attention.layer_norm_rms_epsilon", 1e-5f);
    return 0;
}

/* Finds a tensor and checks its shape; a missing optional one stays empty. */
static int bind(const pi_gguf *g, pi_weight *w, const char *name, int64_t ne0, int64_t ne1,
                bool required, pi_err *err)
{
    const pi_gguf_tensor *t = pi_gguf_find_tensor(g, name);
    *w = (pi_weight){ 0 };
    if (!t)
        return required ? pi_err_set(err, "%s: missing tensor '%s'", pi_gguf_path(g), name)
                        : 0;
    int64_t rows = t->ne[1] * t->ne[2] * t->ne[3];
    if (t->ne[0] != ne0 || rows != ne1)
        return pi_err_set(err, "%s: tensor '%s' is %lld x %lld, expected %lld x %lld",
                          pi_gguf_path(g), name, (long long)t->ne[0], (long long)rows,
                          (long long)ne0, (long long)ne1);
    const pi_type_traits *tr = pi_type_get_traits(t->type);
    bool vector = ne1 == 1;
    if (!tr->can_dequantize || (!vector && !pi_vec_dot_get(t->type)))
        return pi_err_set(err, "%s: tensor '%s' has type %s, which pi cannot compute with",
                          pi_gguf_path(g), name, tr->name);
    *w = (pi_weight){ .data = t->data, .type = t->type, .ne0 = ne0, .ne1 = ne1,
                      .row_bytes = pi_row_size(t->type, ne0), .name = t->name };
    return 0;
}

/* A 3-D expert tensor: E matrices of rows x ne0, checked dimension by
 * dimension so that a wrong expert count is named as such. */
static int bind_experts(const pi_gguf *g, pi_weight *w, const char *name, int64_t ne0,
                        int64_t rows, int n_expert, pi_err *err)
{
    const pi_gguf_tensor *t = pi_gguf_find_tensor(g, name);
    if (!t)
        return pi_err_set(err, "%s: missing tensor '%s'", pi_gguf_path(g), name);
    if (t->ne[0] != ne0 || t->ne[1] != rows || t->ne[2] != n_expert || t->ne[3] != 1)
        return pi_err_set(err, "%s: tensor '%s' is %lld x %lld x %lld, expected %d experts of "
                          "%lld x %lld", pi_gguf_path(g), name, (long long)t->ne[0],
                          (long long)t->ne[1], (long long)t->ne[2], n_expert, (long long)ne0,
                          (long long)rows);
    return bind(g, w, name, ne0, rows * n_expert, true, err);
}

/* A packed model's experts have a neuron-major down projection: expert x's
 * rows (one per neuron, n_embd long) at x * n_ff_exp. */
static int bind_moe(const pi_gguf *g, const pi_hparams *hp, int il, pi_layer *l, bool packed,
                    pi_err *err)
{
    char n[96];
    int64_t d = hp->n_embd, fe = hp->n_ff_exp, fs = hp->n_ff_shexp;
    int E = hp->n_expert;
    bool shared = hp->arch == PI_ARCH_QWEN2MOE;
#define N(suffix) (snprintf(n, sizeof n, "blk.%d.%s", il, suffix), n)
    if (bind(g, &l->gate_inp, N("ffn_gate_inp.weight"), d, E, true, err) ||
        bind_experts(g, &l->gate_exps, N("ffn_gate_exps.weight"), d, fe, E, err) ||
        bind_experts(g, &l->up_exps, N("ffn_up_exps.weight"), d, fe, E, err) ||
        (packed ? bind_experts(g, &l->down_exps, N("ffn_down_exps_t.weight"), d, fe, E, err)
                : bind_experts(g, &l->down_exps, N("ffn_down_exps.weight"), fe, d, E, err)))
        return -1;
    l->down_t = packed;
    if (shared && (bind(g, &l->gate_inp_shexp, N("ffn_gate_inp_shexp.weight"), d, 1, true, err) ||
                   bind(g, &l->gate_shexp, N("ffn_gate_shexp.weight"), d, fs, true, err) ||
                   bind(g, &l->up_shexp, N("ffn_up_shexp.weight"), d, fs, true, err) ||
                   bind(g, &l->down_shexp, N("ffn_down_shexp.weight"), fs, d, true, err)))
        return -1;
#undef N
    return 0;
}

static int bind_layer(const pi_gguf *g, const pi_hparams *hp, int il, pi_layer *l, bool packed,
                      pi_err *err)
{
    char n[96];
    int64_t d = hp->n_embd, q = (int64_t)hp->n_head * hp->head_dim;
    int64_t kv = (int64_t)hp->n_head_kv * hp->head_dim, ff = hp->n_ff;
    bool bias = hp->arch == PI_ARCH_QWEN2 || hp->arch == PI_ARCH_QWEN2MOE;
    bool qk_norm = hp->arch == PI_ARCH_QWEN3 || hp->arch == PI_ARCH_QWEN3MOE;
#define B(field, suffix, a, b, req)                                                          \
    (snprintf(n, sizeof n, "blk.%d.%s", il, suffix), bind(g, &l->field, n, a, b, req, err))
    if (B(attn_norm, "attn_norm.weight", d, 1, true) || B(wq, "attn_q.weight", d, q, true) ||
        B(wk, "attn_k.weight", d, kv, true) || B(wv, "attn_v.weight", d, kv, true) ||
        B(wo, "attn_output.weight", q, d, true) || B(bq, "attn_q.bias", q, 1, bias) ||
        B(bk, "attn_k.bias", kv, 1, bias) || B(bv, "attn_v.bias", kv, 1, bias) ||
        B(q_norm, "attn_q_norm.weight", hp->head_dim, 1, qk_norm) ||
        B(k_norm, "attn_k_norm.weight", hp->head_dim, 1, qk_norm) ||
        B(ffn_norm, "ffn_norm.weight", d, 1, true))
        return -1;
    if (hp->n_expert)
        return bind_moe(g, hp, il, l, packed, err);
    if (B(gate, "ffn_gate.weight", d, ff, true) || B(up, "ffn_up.weight", d, ff, true) ||
        (packed ? B(down, "ffn_down_t.weight", d, ff, true)
                : B(down, "ffn_down.weight", ff, d, true)))
        return -1;
#undef B
    l->down_t = packed;
    return 0;
}

/* The pi section and the predictors of a packed model, checked against the
 * model they came with. */
static int load_pack(pi_model *m, pi_err *err)
{
    const pi_hparams *hp = &m->hp;
    const char *path = pi_gguf_path(m->gguf);
    if (!(m->pack = calloc(1, sizeof *m->pack)))
        return pi_err_set(err, "out of memory");
    if (hp->n_expert ? pi_packinfo_read_moe(m->gguf, hp->n_layer, hp->n_expert, hp->n_ff_exp,
                                            m->pack, err)
                     : pi_packinfo_read(m->gguf, hp->n_layer, hp->n_ff, m->pack, err))
        return -1;
    if (!pi_gguf_get(m->gguf, "pi.predictor.version"))
        return 0; /* packed without predictors: runs dense */
    if (hp->n_expert)
        return pi_err_set(err, "%s: pi.predictor.version: predictors in a mixture of experts "
                          "are not supported", path);
    if (!(m->pred = pi_predictor_from_packed(m->gguf, err)))
        return -1;
    if (pi_predictor_n_layer(m->pred) != hp->n_layer ||
        pi_predictor_n_embd(m->pred) != hp->n_embd || pi_predictor_n_ff(m->pred) != hp->n_ff)
        return pi_err_set(err, "%s: the predictors' shape (%d layers, %d x %d) is not the "
                          "model's (%d layers, %d x %d)", path, pi_predictor_n_layer(m->pred),
                          pi_predictor_n_embd(m->pred), pi_predictor_n_ff(m->pred),
                          hp->n_layer, hp->n_embd, hp->n_ff);
    if (pi_predictor_fingerprint(m->pred) != m->pack->source_fingerprint)
        return pi_err_set(err, "%s: the predictors were trained for model %016llx, not the "
                          "packed model's source %016llx", path,
                          (unsigned long long)pi_predictor_fingerprint(m->pred),
                          (unsigned long long)m->pack->source_fingerprint);
    return 0;
}

pi_model *pi_model_from_gguf(pi_gguf *g, pi_err *err)
{
    pi_model *m = calloc(1, sizeof *m);
    if (!m) {
        pi_gguf_close(g);
        pi_err_set(err, "out of memory");
        return NULL;
    }
    m->gguf = g;
    pi_hparams *hp = &m->hp;
    if (load_hparams(g, hp, err))
        goto fail;
    const pi_gguf_tensor *emb = pi_gguf_find_tensor(g, "token_embd.weight");
    if (!emb) {
        pi_err_set(err, "%s: missing tensor 'token_embd.weight'", pi_gguf_path(g));
        goto fail;
    }
    hp->n_vocab = (int)emb->ne[1];
    if (emb->ne[1] > (1 << 24) ||
        bind(g, &m->tok_embd, "token_embd.weight", hp->n_embd, hp->n_vocab, true, err) ||
        bind(g, &m->output_norm, "output_norm.weight", hp->n_embd, 1, true, err) ||
        bind(g, &m->output, "output.weight", hp->n_embd, hp->n_vocab, false, err))
        goto fail;
    if (!m->output.data)
        m->output = m->tok_embd; /* tied embeddings */
    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers) {
        pi_err_set(err, "out of memory");
        goto fail;
    }
    bool packed = pi_packinfo_present(g);
    for (int il = 0; il < hp->n_layer; il++)
        if (bind_layer(g, hp, il, &m->layers[il], packed, err))
            goto fail;
    if (packed && load_pack(m, err))
        goto fail;
    return m;
fail:
    pi_model_close(m);
    return NULL;
}

pi_model *pi_model_open(const char *path, pi_err *err)
{
    pi_gguf *g = pi_gguf_open(path, err);
    return g ? pi_model_from_gguf(g, err) : NULL;
}

void pi_model_close(pi_model *m)
{
    if (!m)
        return;
    pi_gguf_close(m->gguf);
    pi_packinfo_free(m->pack);
    free(m->pack);
    pi_predictor_free(m->pred);
    free(m->layers);
    free(m);
}

int pi_weight_row(const pi_weight *w, int64_t r, float *out)
{
    if (r < 0 || r >= w->ne1)
        return -1;
    return pi_dequantize_row(w->type, (const uint8_t *)w->data + (size_t)r * w->row_bytes, out,
                             w->ne0);
}

static uint64_t bytes(const pi_weight *w) { return w->data ? w->row_bytes * (uint64_t)w->ne1 : 0; }

uint64_t pi_model_weight_bytes(const pi_model *m)
{
    uint64_t b = bytes(&m->output) + bytes(&m->output_norm);
    for (int il = 0; il < m->hp.n_layer; il++) {
        const pi_layer *l = &m->layers[il];
        const pi_weight *all[] = { &l->attn_norm, &l->wq, &l->wk, &l->wv, &l->wo, &l->bq,
                                   &l->bk, &l->bv, &l->q_norm, &l->k_norm, &l->ffn_norm,
                                   &l->gate, &l->up, &l->down, &l->gate_inp, &l->gate_exps,
                                   &l->up_exps, &l->down_exps, &l->gate_inp_shexp,
                                   &l->gate_shexp, &l->up_shexp, &l->down_shexp };
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
            b += bytes(all[i]);
    }
    return b;
}
