/*
 * gen_model: random-weight GGUF models in the shapes of real ones, for
 * benchmarking inference at sizes no test model has (a 7B or 70B Llama on a
 * GPU, say).  Not a tool of the pipeline and not a benchmark itself: it
 * writes the files the benchmarks run on.
 *
 * Speed: quantised blocks are written directly (random codes, scales set so
 * that every dequantised weight has the intended spread), never quantised
 * from floats, so the file is written about as fast as the disk takes it.
 * Each row draws from its own splitmix64 stream, seeded by the seed, the
 * tensor's name and the row, so the bytes depend on neither the thread
 * count nor the order of generation.  libpi's GGUF writer produces one tensor
 * at a time (its rows shared among threads) and writes it under a temporary
 * name renamed into place when complete; memory peaks at the largest tensor.
 * Generation runs at 4-10 GB/s for Q4_0 on one or two cores, so writing is
 * bound by the file system; -o /dev/null measures generation alone.
 *
 * Scales: a matrix with fan-in n (its row length) gets weights of standard
 * deviation 1/sqrt(n), so that every product of a unit-RMS input has
 * unit-RMS outputs; attn_output and ffn_down, which add to the residual
 * stream, another factor 1/sqrt(2 n_layer) (GPT-2's scaling), so the
 * residual stream stays near unit size through any number of layers instead
 * of growing like sqrt(2 n_layer).  A fixed 0.02, as real models are
 * initialised, gives products whose size grows with sqrt(n_embd) (1.3 at
 * 4096, 0.5 at 576).  Embedding rows get 3/sqrt(n_embd), so logits (the
 * final RMS-normed state against those rows) spread with a deviation of
 * about 3: finite, and a next-token distribution that is neither flat nor
 * one-hot.  (With tied embeddings the last token's own embedding, still in
 * the residual stream, lifts its logit, so a tied model's continuation soon
 * repeats one token; --untied avoids that.)  Norm weights are uniform in
 * [0.8, 1.2], qwen2's q/k/v biases have deviation 0.5, as in
 * tests/ref/synth.py's models.  Codes are uniform; block
 * scales vary by +-25% around the target with a random sign (legacy
 * formats) or through the sub-block scales (K-quants), every block centred.
 *
 * Vocabulary: byte-level BPE ("gpt2"): the 256 byte tokens, then word
 * pieces of lowercase letters (with and without a leading space), each the
 * merge of a shorter one and a letter, then <|endoftext|>, <|im_start|> and
 * <|im_end|> (bos, and eos) with a ChatML template.  Text in, noise out.
 *
 * Mixtures of experts (qwen2moe, qwen3moe): tensors and keys as llama.cpp's
 * converter writes them (tests/ref/README.md): per layer an F32 router
 * ffn_gate_inp (n_embd x E, rows of std 2/sqrt(n_embd): logits spread about
 * +-2), the experts as 3-D tensors (ffn_gate_exps n_embd x n_ff_exp x E...),
 * and qwen2moe's shared expert with its gate.  What the router sees decides
 * how tokens spread over experts, and random weights need two changes for
 * that spread to look like a trained model's.  Attention with random q and
 * k is nearly uniform, so every position adds about the same average of the
 * values to its residual stream; over the layers that common part grows
 * until all tokens of a text route alike (measured: by the last of 24
 * layers the common direction held 64% of the router input's energy; in
 * the last of 48, one expert took 88% of the tokens).  So a MoE gets q and k three times larger (in
 * qwen3moe through attn_q_norm and attn_k_norm, which undo any scale of
 * attn_q and attn_k), scores nine times, and each head attends to a few
 * positions, as trained heads do; and qwen2moe's attn_v.bias, a constant
 * added to every position, gets std 0.1.  Then each layer uses every expert
 * and the top quarter of the experts serves about 45% of the routings (a
 * thousand tokens).  --router-skew makes usage more uneven on purpose: see
 * router_gains().
 *
 * Adding an architecture means a preset (shape) and its tensors in
 * plan_layer(); the planner, generator and writer work on any row length
 * and any number of rows.
 */
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../tools/tool.h"
#include "gguf_write.h"
#include "quant.h"
#include "threadpool.h"
#include "unicode.h"

static const char *prog = "gen_model";

static bool is_moe(const char *arch)
{
    return !strcmp(arch, "qwen2moe") || !strcmp(arch, "qwen3moe");
}

/* ---- shapes ------------------------------------------------------------- */

typedef struct shape {
    const char *name, *arch, *pre; /* preset, general.architecture, tokenizer.ggml.pre */
    int n_layer, n_embd, n_ff, n_head, n_head_kv, head_dim; /* head_dim 0: n_embd / n_head */
    int n_vocab, n_ctx;
    double rope_base, rms_eps;
    bool tied;
    /* mixture of experts (qwen2moe, qwen3moe): experts per layer, used per
     * token, each expert's n_ff, and qwen2moe's shared expert's n_ff */
    int n_expert, n_expert_used, n_ff_exp, n_ff_shexp;
} shape;

/* From the models' config.json (head_dim, tie_word_embeddings...); MoE from
 * Qwen/Qwen1.5-MoE-A2.7B's (moe_intermediate_size 1408, 60 experts, 4 per
 * token, shared_expert_intermediate_size 5632: 14.3B parameters) and
 * Qwen/Qwen3-30B-A3B's (intermediate_size 6144, moe_intermediate_size 768,
 * 128 experts, 8 per token, head_dim 128: 30.5B).  qwen3-moe-tiny is no
 * real model: a qwen3moe of 30M parameters (17 MB in Q4_0) for quick runs. */
#define DENSE 0, 0, 0, 0
static const shape presets[] = {
    { "llama-7b", "llama", "gpt2", 32, 4096, 11008, 32, 32, 0, 32000, 4096, 1e4, 1e-5, false,
      DENSE },
    { "llama-13b", "llama", "gpt2", 40, 5120, 13824, 40, 40, 0, 32000, 4096, 1e4, 1e-5, false,
      DENSE },
    { "llama3-8b", "llama", "llama-bpe", 32, 4096, 14336, 32, 8, 0, 128256, 8192, 5e5, 1e-5,
      false, DENSE },
    { "llama3-70b", "llama", "llama-bpe", 80, 8192, 28672, 64, 8, 0, 128256, 8192, 5e5, 1e-5,
      false, DENSE },
    { "mistral-7b", "llama", "gpt2", 32, 4096, 14336, 32, 8, 0, 32000, 32768, 1e6, 1e-5, false,
      DENSE },
    { "smollm2-135m", "llama", "smollm", 30, 576, 1536, 9, 3, 0, 49152, 8192, 1e5, 1e-5, true,
      DENSE },
    { "smollm2-360m", "llama", "smollm", 32, 960, 2560, 15, 5, 0, 49152, 8192, 1e5, 1e-5, true,
      DENSE },
    { "smollm2-1.7b", "llama", "smollm", 24, 2048, 8192, 32, 32, 0, 49152, 8192, 1.3e5, 1e-5,
      true, DENSE },
    { "qwen2.5-0.5b", "qwen2", "qwen2", 24, 896, 4864, 14, 2, 0, 151936, 32768, 1e6, 1e-6, true,
      DENSE },
    { "qwen2.5-1.5b", "qwen2", "qwen2", 28, 1536, 8960, 12, 2, 0, 151936, 32768, 1e6, 1e-6, true,
      DENSE },
    { "qwen2.5-7b", "qwen2", "qwen2", 28, 3584, 18944, 28, 4, 0, 152064, 32768, 1e6, 1e-6, false,
      DENSE },
    { "qwen3-0.6b", "qwen3", "qwen2", 28, 1024, 3072, 16, 8, 128, 151936, 40960, 1e6, 1e-6, true,
      DENSE },
    { "qwen3-8b", "qwen3", "qwen2", 36, 4096, 12288, 32, 8, 128, 151936, 40960, 1e6, 1e-6, false,
      DENSE },
    { "qwen1.5-moe-a2.7b", "qwen2moe", "qwen2", 24, 2048, 5632, 16, 16, 0, 151936, 8192, 1e6,
      1e-6, false, 60, 4, 1408, 5632 },
    { "qwen3-30b-a3b", "qwen3moe", "qwen2", 48, 2048, 6144, 32, 4, 128, 151936, 40960, 1e6, 1e-6,
      false, 128, 8, 768, 0 },
    { "qwen3-moe-tiny", "qwen3moe", "qwen2", 4, 256, 1536, 4, 2, 64, 8192, 4096, 1e6, 1e-6,
      false, 32, 4, 256, 0 },
};
#undef DENSE
#define N_PRESETS (sizeof presets / sizeof presets[0])

/* ---- tensor types --------------------------------------------------------- */

/* --type names: a pi type, or q4_k_m (Q4_K with llama.cpp's Q6_K choices). */
#define TYPE_Q4_K_M 1000

static const struct {
    uint32_t type, ftype; /* general.file_type: llama.cpp's llama_ftype */
    double e2;            /* mean square of a dequantised code at unit block scale */
} types[] = {
    /* float types: 16 random bits index a table of uniform values */
    { PI_TYPE_F32, 0, 1 }, { PI_TYPE_F16, 1, 1 }, { PI_TYPE_BF16, 32, 1 },
    /* legacy: uniform codes less their offset: -8..7, -16..15, -127..127 */
    { PI_TYPE_Q4_0, 2, 21.5 }, { PI_TYPE_Q4_1, 3, 21.25 }, { PI_TYPE_Q5_0, 8, 85.5 },
    { PI_TYPE_Q5_1, 9, 85.25 }, { PI_TYPE_Q8_0, 7, 5460.5 },
    /* K-quants: E[sub-scale^2] * E[(code - centre)^2], sub-scales as gen_row() draws them */
    { PI_TYPE_Q2_K, 10, 137.5 * 1.25 }, { PI_TYPE_Q3_K, 11, 341.5 * 5.5 },
    { PI_TYPE_Q4_K, 14, 2341.5 * 21.25 }, { PI_TYPE_Q5_K, 16, 2341.5 * 85.25 },
    { PI_TYPE_Q6_K, 18, 2341.5 * 341.5 }, { TYPE_Q4_K_M, 15, 0 },
};

static int type_index(uint32_t t)
{
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (types[i].type == t)
            return (int)i;
    return -1;
}

/* -1 when the name is no type gen_model writes. */
static int parse_type(const char *s)
{
    if (!strcasecmp(s, "q4_k_m"))
        return TYPE_Q4_K_M;
    int t = pi_type_from_name(s);
    return t >= 0 && type_index((uint32_t)t) >= 0 ? t : -1;
}

static const char *type_label(int t)
{
    return t == TYPE_Q4_K_M ? "Q4_K_M" : pi_type_name((uint32_t)t);
}

/* What llama.cpp writes when rows are not whole K-quant super-blocks
 * (llama_tensor_get_type's fallback; Q4_0 where it now picks IQ4_NL,
 * which pi does not compute). */
static uint32_t k_fallback(uint32_t t)
{
    switch (t) {
    case PI_TYPE_Q4_K: return PI_TYPE_Q5_0;
    case PI_TYPE_Q5_K: return PI_TYPE_Q5_1;
    case PI_TYPE_Q6_K: return PI_TYPE_Q8_0;
    default: return PI_TYPE_Q4_0;
    }
}

/* ---- the plan: every tensor's name, type, shape and spread ------------------- */

typedef struct tspec {
    char name[64];
    uint32_t type, n_dims;
    int64_t ne[4];
    float center, sigma; /* of the dequantised values */
    float skew;          /* a router: --router-skew (row gains, see fill()) */
    uint64_t size, seed;
    struct run *run; /* what fill() needs */
} tspec;

typedef struct plan {
    shape s;
    int type, embd_type, output_type; /* -1: as type */
    double router_skew;
    tspec *t;
    size_t n, cap;
    uint64_t bytes, params;
    int n_fallback[PI_TYPE_COUNT]; /* by the type asked for */
} plan;

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

/* llama.cpp's use_more_bits(): the layers Q4_K_M gives Q6_K attn_v and ffn_down. */
static bool more_bits(int il, int n)
{
    return il < n / 8 || il >= 7 * n / 8 || (il - n / 8) % 3 == 2;
}

/* The type of a weight matrix: --type, the Q4_K_M mixture, --embd-type or
 * --output-type, then the fallback for rows that are not whole blocks. */
static int matrix_type(plan *p, const char *name, int il, int64_t row)
{
    int t = p->type;
    bool embd = !strcmp(name, "token_embd.weight"), out = !strcmp(name, "output.weight");
    if (t == TYPE_Q4_K_M) {
        /* ffn_down_exps and ffn_down_shexp are "ffn_down" too, and for a
         * MoE llama.cpp takes the layer from the name, so they follow the
         * dense rule; with exactly 8 experts (Mixtral) it gives attn_k and
         * attn_v Q8_0 and attn_output Q5_K. */
        bool v_down = strstr(name, "attn_v") || strstr(name, "ffn_down");
        t = out || (embd && p->s.tied) || (v_down && more_bits(il, p->s.n_layer))
                ? PI_TYPE_Q6_K : PI_TYPE_Q4_K;
        if (p->s.n_expert == 8 && (strstr(name, "attn_k.") || strstr(name, "attn_v.")))
            t = PI_TYPE_Q8_0;
        if (p->s.n_expert == 8 && strstr(name, "attn_output."))
            t = PI_TYPE_Q5_K;
    }
    if (embd && p->embd_type >= 0)
        t = p->embd_type;
    if (out && p->output_type >= 0)
        t = p->output_type;
    const pi_type_traits *tr = pi_type_get_traits((uint32_t)t);
    if (row % tr->block_size && tr->block_size == PI_QK_K) {
        p->n_fallback[t]++;
        tr = pi_type_get_traits(k_fallback((uint32_t)t));
        t = (int)k_fallback((uint32_t)t);
    }
    if (row % tr->block_size) {
        fprintf(stderr, "%s: %s: rows of %lld are not whole %s blocks of %u\n", prog, name,
                (long long)row, tr->name, tr->block_size);
        return -1;
    }
    return t;
}

static int add(plan *p, const char *name, int type, float center, float sigma, int64_t ne0,
               int64_t ne1, int64_t ne2)
{
    if (type < 0)
        return -1;
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 256;
        tspec *t = realloc(p->t, cap * sizeof *t);
        if (!t) {
            fprintf(stderr, "%s: out of memory\n", prog);
            return -1;
        }
        p->t = t, p->cap = cap;
    }
    tspec *t = &p->t[p->n++];
    *t = (tspec){ .type = (uint32_t)type, .n_dims = ne2 > 1 ? 3 : ne1 > 1 ? 2 : 1,
                  .ne = { ne0, ne1, ne2, 1 }, .center = center, .sigma = sigma };
    snprintf(t->name, sizeof t->name, "%s", name);
    t->size = pi_row_size(t->type, ne0) * (uint64_t)(ne1 * ne2);
    p->bytes += t->size;
    p->params += (uint64_t)(ne0 * ne1 * ne2);
    return 0;
}

/* n weight matrices (n > 1: experts, a 3-D tensor) of `rows` outputs by
 * `cols` inputs, std gain/sqrt(cols). */
static int matrices(plan *p, const char *name, int il, int64_t cols, int64_t rows, int64_t n,
                    double gain)
{
    return add(p, name, matrix_type(p, name, il, cols), 0, (float)(gain / sqrt((double)cols)),
               cols, rows, n);
}

static int matrix(plan *p, const char *name, int il, int64_t cols, int64_t rows, double gain)
{
    return matrices(p, name, il, cols, rows, 1, gain);
}

#define NORM_CENTER 1.0f
#define NORM_SIGMA 0.11547f /* uniform on [0.8, 1.2] */
#define BIAS_SIGMA 0.5f
#define QK_SHARP 3.0    /* MoE: q and k 3 times larger, scores 9 times */
#define MOE_V_BIAS_SIGMA 0.1f
#define ROUTER_GAIN 2.0 /* router logits spread about +-2, as tests/ref/synth.py's */

/* The FFN of a MoE layer, as llama.cpp's converter writes it: the router
 * (F32, which llama.cpp never quantises), the experts' three 3-D tensors
 * and, for qwen2moe, the shared expert and its sigmoid gate (HF's (1, n_embd)
 * weight, so GGUF's [n_embd, 1]). */
static int plan_moe(plan *p, int il)
{
    const shape *s = &p->s;
    int64_t d = s->n_embd, fe = s->n_ff_exp, fs = s->n_ff_shexp, E = s->n_expert;
    double resid = 1 / sqrt(2.0 * s->n_layer);
    char n[64];
    int rc = 0;
#define NAME(x) (snprintf(n, sizeof n, "blk.%d." x, il), n)
    rc |= add(p, NAME("ffn_gate_inp.weight"), PI_TYPE_F32, 0,
              (float)(ROUTER_GAIN / sqrt((double)d)), d, E, 1);
    if (!rc)
        p->t[p->n - 1].skew = (float)p->router_skew;
    rc |= matrices(p, NAME("ffn_gate_exps.weight"), il, d, fe, E, 1);
    rc |= matrices(p, NAME("ffn_up_exps.weight"), il, d, fe, E, 1);
    rc |= matrices(p, NAME("ffn_down_exps.weight"), il, fe, d, E, resid);
    if (!strcmp(s->arch, "qwen2moe")) {
        rc |= add(p, NAME("ffn_gate_inp_shexp.weight"), PI_TYPE_F32, 0,
                  (float)(1 / sqrt((double)d)), d, 1, 1);
        if (!rc)
            p->t[p->n - 1].n_dims = 2;
        rc |= matrix(p, NAME("ffn_gate_shexp.weight"), il, d, fs, 1);
        rc |= matrix(p, NAME("ffn_up_shexp.weight"), il, d, fs, 1);
        rc |= matrix(p, NAME("ffn_down_shexp.weight"), il, fs, d, resid);
    }
#undef NAME
    return rc ? -1 : 0;
}

static int plan_layer(plan *p, int il)
{
    const shape *s = &p->s;
    int64_t d = s->n_embd, q = (int64_t)s->n_head * s->head_dim;
    int64_t kv = (int64_t)s->n_head_kv * s->head_dim, ff = s->n_ff;
    double resid = 1 / sqrt(2.0 * s->n_layer);
    bool qwen2 = !strncmp(s->arch, "qwen2", 5), qwen3 = !strncmp(s->arch, "qwen3", 5);
    /* MoE: sharp attention (see the header); qwen3's q/k norms undo any
     * gain of attn_q and attn_k, so there the norm weights carry it */
    double sharp = s->n_expert ? QK_SHARP : 1, qk = qwen3 ? 1 : sharp;
    float qk_norm = qwen3 ? (float)sharp : 1;
    char n[64];
    int rc = 0;
#define NAME(x) (snprintf(n, sizeof n, "blk.%d." x, il), n)
    rc |= add(p, NAME("attn_norm.weight"), PI_TYPE_F32, NORM_CENTER, NORM_SIGMA, d, 1, 1);
    rc |= matrix(p, NAME("attn_q.weight"), il, d, q, qk);
    rc |= matrix(p, NAME("attn_k.weight"), il, d, kv, qk);
    rc |= matrix(p, NAME("attn_v.weight"), il, d, kv, 1);
    if (qwen2) {
        rc |= add(p, NAME("attn_q.bias"), PI_TYPE_F32, 0, BIAS_SIGMA, q, 1, 1);
        rc |= add(p, NAME("attn_k.bias"), PI_TYPE_F32, 0, BIAS_SIGMA, kv, 1, 1);
        rc |= add(p, NAME("attn_v.bias"), PI_TYPE_F32, 0,
                  s->n_expert ? MOE_V_BIAS_SIGMA : BIAS_SIGMA, kv, 1, 1);
    }
    if (qwen3) {
        rc |= add(p, NAME("attn_q_norm.weight"), PI_TYPE_F32, qk_norm * NORM_CENTER,
                  qk_norm * NORM_SIGMA, s->head_dim, 1, 1);
        rc |= add(p, NAME("attn_k_norm.weight"), PI_TYPE_F32, qk_norm * NORM_CENTER,
                  qk_norm * NORM_SIGMA, s->head_dim, 1, 1);
    }
    rc |= matrix(p, NAME("attn_output.weight"), il, q, d, resid);
    rc |= add(p, NAME("ffn_norm.weight"), PI_TYPE_F32, NORM_CENTER, NORM_SIGMA, d, 1, 1);
    if (s->n_expert) {
        rc |= plan_moe(p, il);
    } else {
        rc |= matrix(p, NAME("ffn_gate.weight"), il, d, ff, 1);
        rc |= matrix(p, NAME("ffn_up.weight"), il, d, ff, 1);
        rc |= matrix(p, NAME("ffn_down.weight"), il, ff, d, resid);
    }
#undef NAME
    return rc ? -1 : 0;
}

static int make_plan(plan *p, uint64_t seed)
{
    const shape *s = &p->s;
    if (matrix(p, "token_embd.weight", 0, s->n_embd, s->n_vocab, 3.0))
        return -1;
    for (int il = 0; il < s->n_layer; il++)
        if (plan_layer(p, il))
            return -1;
    if (add(p, "output_norm.weight", PI_TYPE_F32, NORM_CENTER, NORM_SIGMA, s->n_embd, 1, 1) ||
        (!s->tied && matrix(p, "output.weight", s->n_layer - 1, s->n_embd, s->n_vocab, 3.0)))
        return -1;
    for (size_t i = 0; i < p->n; i++) { /* FNV-1a of the name, mixed with the seed */
        uint64_t h = 0xCBF29CE484222325u;
        for (const char *c = p->t[i].name; *c; c++)
            h = (h ^ (unsigned char)*c) * 0x100000001B3u;
        uint64_t st = h ^ seed;
        p->t[i].seed = splitmix(&st);
    }
    return 0;
}

/* ---- generating blocks ------------------------------------------------------ */

/* Per tensor: the block scales (or the value table of a float type) that
 * give its values their spread. */
typedef struct gen {
    const tspec *t;
    size_t row_bytes;
    pi_f16 d[32], m[32]; /* legacy: scale and minimum by 5 random bits */
    pi_f16 kd, kdmin;    /* K-quants */
    void *tab;           /* float types: 65536 values */
} gen;

static void gen_setup(gen *g, const tspec *t, void *tab)
{
    *g = (gen){ .t = t, .row_bytes = pi_row_size(t->type, t->ne[0]), .tab = tab };
    double e2 = types[type_index(t->type)].e2, d = t->sigma / sqrt(e2);
    if (tab) { /* uniform, 65536 levels, mean center, std sigma */
        for (int i = 0; i < 65536; i++) {
            float v = t->center + t->sigma * 1.7320508f * ((2 * i + 1) / 65536.0f - 1);
            if (t->type == PI_TYPE_F32)
                ((float *)tab)[i] = v;
            else
                ((uint16_t *)tab)[i] = t->type == PI_TYPE_F16 ? pi_f32_to_f16(v)
                                                              : pi_f32_to_bf16(v);
        }
        return;
    }
    /* 16 scales from 0.75 d to 1.25 d (normalised to mean square d^2),
     * each with either sign, and each block centred by its minimum. */
    double f[16], ms = 0, centre = t->type == PI_TYPE_Q4_1 ? 7.5 : 15.5;
    for (int i = 0; i < 16; i++)
        f[i] = 0.75 + 0.5 * (i + 0.5) / 16, ms += f[i] * f[i] / 16;
    for (int i = 0; i < 32; i++) {
        g->d[i] = pi_f32_to_f16((float)(d * f[i & 15] / sqrt(ms) * (i & 16 ? -1 : 1)));
        g->m[i] = pi_f32_to_f16((float)(-centre * pi_f16_to_f32(g->d[i])));
    }
    /* K-quants: value = d sc (q - c) with the minimum dmin m = d c sc, m = sc */
    double kc = t->type == PI_TYPE_Q2_K ? 1.5 : t->type == PI_TYPE_Q4_K ? 7.5 : 15.5;
    g->kd = pi_f32_to_f16((float)d);
    g->kdmin = pi_f32_to_f16((float)(kc * pi_f16_to_f32(g->kd)));
}

static void rand_bytes(uint64_t *s, void *dst, size_t n)
{
    uint8_t *p = dst;
    for (; n >= 8; n -= 8, p += 8) {
        uint64_t r = splitmix(s);
        memcpy(p, &r, 8);
    }
    for (uint64_t r = n ? splitmix(s) : 0; n--; r >>= 8)
        *p++ = (uint8_t)r;
}

/* Q8_0 codes without -128 (ggml's quantiser never writes it): bytes 0x80
 * become 0x81.  The zero-byte test's false positives are bytes that are
 * 0x81 already. */
static uint64_t no_minus128(uint64_t x)
{
    uint64_t t = x ^ 0x8080808080808080u;
    uint64_t z = (t - 0x0101010101010101u) & ~t & 0x8080808080808080u;
    return x | z >> 7;
}

static void pack_scale_min(const uint8_t sc[8], const uint8_t mn[8], uint8_t p[12])
{
    for (int j = 0; j < 4; j++) { /* as quant_k.c: six bits each, 12 bytes */
        p[j] = (uint8_t)(sc[j] | (sc[j + 4] >> 4) << 6);
        p[j + 4] = (uint8_t)(mn[j] | (mn[j + 4] >> 4) << 6);
        p[j + 8] = (uint8_t)((sc[j + 4] & 0xf) | (mn[j + 4] & 0xf) << 4);
    }
}

static void gen_row(const gen *g, uint64_t s, uint8_t *dst)
{
    int64_t n = g->t->ne[0], nb = n / pi_type_get_traits(g->t->type)->block_size;
    switch (g->t->type) {
    case PI_TYPE_F32: /* 16 random bits index a table of values */
        for (int64_t i = 0; i < n; i += 4)
            for (uint64_t r = splitmix(&s), k = i; k < (uint64_t)i + 4 && k < (uint64_t)n;
                 k++, r >>= 16)
                ((float *)dst)[k] = ((const float *)g->tab)[r & 0xFFFF];
        break;
    case PI_TYPE_F16: case PI_TYPE_BF16:
        for (int64_t i = 0; i < n; i += 4)
            for (uint64_t r = splitmix(&s), k = i; k < (uint64_t)i + 4 && k < (uint64_t)n;
                 k++, r >>= 16)
                ((uint16_t *)dst)[k] = ((const uint16_t *)g->tab)[r & 0xFFFF];
        break;
#define LEGACY(T, MIN)                                                                       \
    for (T *b = (T *)dst; nb--; b++) {                                                       \
        uint64_t r = splitmix(&s);                                                           \
        b->d = g->d[r & 31];                                                                 \
        MIN;                                                                                 \
        rand_bytes(&s, b->qs, sizeof b->qs);                                                 \
    }
    case PI_TYPE_Q4_0: LEGACY(pi_block_q4_0, (void)0); break;
    case PI_TYPE_Q4_1: LEGACY(pi_block_q4_1, b->m = g->m[r & 31]); break;
    case PI_TYPE_Q5_0: LEGACY(pi_block_q5_0, memcpy(b->qh, (uint8_t *)&r + 4, 4)); break;
    case PI_TYPE_Q5_1:
        LEGACY(pi_block_q5_1, (b->m = g->m[r & 31], memcpy(b->qh, (uint8_t *)&r + 4, 4)));
        break;
    case PI_TYPE_Q8_0:
        for (pi_block_q8_0 *b = (pi_block_q8_0 *)dst; nb--; b++) {
            b->d = g->d[splitmix(&s) & 31];
            for (int k = 0; k < 4; k++) {
                uint64_t r = no_minus128(splitmix(&s));
                memcpy(b->qs + 8 * k, &r, 8);
            }
        }
        break;
#undef LEGACY
    case PI_TYPE_Q2_K: /* sub-scales 8..15, minimum = scale, dmin = 1.5 d */
        for (pi_block_q2_K *b = (pi_block_q2_K *)dst; nb--; b++) {
            uint64_t r = splitmix(&s);
            for (int j = 0; j < 16; j++, r >>= 3)
                b->scales[j] = (uint8_t)((8 + (r & 7)) * 0x11);
            rand_bytes(&s, b->qs, sizeof b->qs);
            b->d = g->kd, b->dmin = g->kdmin;
        }
        break;
    case PI_TYPE_Q3_K: /* sub-scales -32..31, codes -4..3: all random */
        for (pi_block_q3_K *b = (pi_block_q3_K *)dst; nb--; b++) {
            rand_bytes(&s, b, offsetof(pi_block_q3_K, d));
            b->d = g->kd;
        }
        break;
    case PI_TYPE_Q4_K: case PI_TYPE_Q5_K: { /* sub-scales 32..63, minimum = scale */
        size_t stride = g->t->type == PI_TYPE_Q4_K ? sizeof(pi_block_q4_K) : sizeof(pi_block_q5_K);
        for (uint8_t *b = dst; nb--; b += stride) {
            uint64_t r = splitmix(&s);
            uint8_t sc[8];
            for (int j = 0; j < 8; j++, r >>= 5)
                sc[j] = (uint8_t)(32 + (r & 31));
            pi_block_q4_K *k = (pi_block_q4_K *)b; /* same head as Q5_K */
            k->d = g->kd, k->dmin = g->kdmin;
            pack_scale_min(sc, sc, k->scales);
            rand_bytes(&s, b + offsetof(pi_block_q4_K, qs), stride - offsetof(pi_block_q4_K, qs));
        }
        break;
    }
    case PI_TYPE_Q6_K: /* sub-scales +-(32..63) */
        for (pi_block_q6_K *b = (pi_block_q6_K *)dst; nb--; b++) {
            rand_bytes(&s, b, sizeof b->ql + sizeof b->qh); /* ql, qh */
            uint64_t r = splitmix(&s), sg = splitmix(&s);
            for (int j = 0; j < 16; j++, r >>= 4, sg >>= 1) {
                int v = 32 + 2 * (int)(r & 15) + (int)(sg >> 32 & 1);
                b->scales[j] = (int8_t)(sg & 1 ? -v : v);
            }
            b->d = g->kd;
        }
        break;
    }
}

/* ---- vocabulary ------------------------------------------------------------- */

#define MAX_VOCAB (1 << 21)
static const char *const specials[] = { "<|endoftext|>", "<|im_start|>", "<|im_end|>" };
#define MIN_VOCAB (256 + 3)

typedef struct vocab {
    const char **tok, **merge;
    int32_t *type;
    int n_tok, n_merge, bos, eos;
    char *arena;
} vocab;

static void vocab_free(vocab *v)
{
    free(v->tok), free(v->merge), free(v->type), free(v->arena);
}

/* The byte tokens in GPT-2's bytes-to-unicode form, then pieces made by
 * appending a letter to a byte token (a-z, or the space "Ġ") or to an
 * earlier piece, breadth first, each a merge of the two; then the specials. */
static int make_vocab(vocab *v, int n_vocab)
{
    *v = (vocab){ .n_tok = n_vocab, .n_merge = n_vocab - MIN_VOCAB };
    v->tok = calloc((size_t)n_vocab, sizeof *v->tok);
    v->merge = calloc((size_t)v->n_merge + 1, sizeof *v->merge);
    v->type = malloc((size_t)n_vocab * sizeof *v->type);
    char *a = v->arena = malloc((size_t)n_vocab * 32 + 4096); /* pieces: at most 7 bytes */
    if (!v->tok || !v->merge || !v->type || !a)
        return -1;
    for (int b = 0, next = 256; b < 256; b++) {
        bool self = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        v->tok[b] = a;
        a += pi_utf8_encode(self ? (uint32_t)b : (uint32_t)next++, a);
        *a++ = 0;
    }
    int n = 256, seeds[27];
    for (int c = 0; c < 26; c++)
        seeds[c] = 'a' + c;
    seeds[26] = ' ';
    for (int src = 0; n < n_vocab - 3; src++) {
        int from = src < 27 ? seeds[src] : 256 + src - 27;
        for (int c = 0; c < 26 && n < n_vocab - 3; c++, n++) {
            v->merge[n - 256] = a;
            a += sprintf(a, "%s %c", v->tok[from], 'a' + c) + 1;
            v->tok[n] = a;
            a += sprintf(a, "%s%c", v->tok[from], 'a' + c) + 1;
        }
    }
    for (int i = 0; i < n_vocab; i++)
        v->type[i] = i < n_vocab - 3 ? 1 : 3; /* normal, control */
    for (int i = 0; i < 3; i++)
        v->tok[n_vocab - 3 + i] = specials[i];
    v->bos = n_vocab - 3, v->eos = n_vocab - 1;
    return 0;
}

/* ---- metadata --------------------------------------------------------------- */

static const char chatml[] =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

static int set_meta(pi_gguf_writer *w, const plan *p, const vocab *v, uint64_t seed, pi_err *e)
{
    const shape *s = &p->s;
    char k[128], name[128];
    uint32_t ftype = types[type_index((uint32_t)p->type)].ftype;
#define A(key) (snprintf(k, sizeof k, "%s." key, s->arch), k)
    snprintf(name, sizeof name, "gen_model %s %s seed %llu", s->name, type_label(p->type),
             (unsigned long long)seed);
    int rc = pi_gguf_set_str(w, "general.architecture", s->arch, e) ||
        pi_gguf_set_str(w, "general.type", "model", e) ||
        pi_gguf_set_str(w, "general.name", name, e) ||
        pi_gguf_set_str(w, "general.description", "random weights written by pi's "
                        "bench/gen_model for benchmarks: not a trained model", e) ||
        pi_gguf_set_u32(w, A("block_count"), (uint32_t)s->n_layer, e) ||
        pi_gguf_set_u32(w, A("context_length"), (uint32_t)s->n_ctx, e) ||
        pi_gguf_set_u32(w, A("embedding_length"), (uint32_t)s->n_embd, e) ||
        pi_gguf_set_u32(w, A("feed_forward_length"), (uint32_t)s->n_ff, e) ||
        pi_gguf_set_u32(w, A("attention.head_count"), (uint32_t)s->n_head, e) ||
        pi_gguf_set_u32(w, A("attention.head_count_kv"), (uint32_t)s->n_head_kv, e) ||
        pi_gguf_set_u32(w, A("rope.dimension_count"), (uint32_t)s->head_dim, e) ||
        pi_gguf_set_f32(w, A("rope.freq_base"), (float)s->rope_base, e) ||
        pi_gguf_set_f32(w, A("attention.layer_norm_rms_epsilon"), (float)s->rms_eps, e) ||
        pi_gguf_set_u32(w, A("vocab_size"), (uint32_t)s->n_vocab, e) ||
        pi_gguf_set_u32(w, "general.file_type", ftype, e) ||
        pi_gguf_set_u32(w, "general.quantization_version", 2, e);
    if (!rc && s->n_expert) /* as convert_hf_to_gguf.py's Qwen2MoeModel */
        rc = pi_gguf_set_u32(w, A("expert_count"), (uint32_t)s->n_expert, e) ||
             pi_gguf_set_u32(w, A("expert_used_count"), (uint32_t)s->n_expert_used, e) ||
             pi_gguf_set_u32(w, A("expert_feed_forward_length"), (uint32_t)s->n_ff_exp, e) ||
             (s->n_ff_shexp && pi_gguf_set_u32(w, A("expert_shared_feed_forward_length"),
                                               (uint32_t)s->n_ff_shexp, e));
    if (!rc && s->head_dim * s->n_head != s->n_embd)
        rc = pi_gguf_set_u32(w, A("attention.key_length"), (uint32_t)s->head_dim, e) ||
             pi_gguf_set_u32(w, A("attention.value_length"), (uint32_t)s->head_dim, e);
#undef A
    return rc || pi_gguf_set_str(w, "tokenizer.ggml.model", "gpt2", e) ||
        pi_gguf_set_str(w, "tokenizer.ggml.pre", s->pre, e) ||
        pi_gguf_set_arr_str(w, "tokenizer.ggml.tokens", v->tok, (uint64_t)v->n_tok, e) ||
        pi_gguf_set_arr(w, "tokenizer.ggml.token_type", PI_GGUF_I32, v->type,
                        (uint64_t)v->n_tok, e) ||
        pi_gguf_set_arr_str(w, "tokenizer.ggml.merges", v->merge, (uint64_t)v->n_merge, e) ||
        pi_gguf_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)v->bos, e) ||
        pi_gguf_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)v->eos, e) ||
        pi_gguf_set_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)v->bos, e) ||
        pi_gguf_set_bool(w, "tokenizer.ggml.add_bos_token", false, e) ||
        pi_gguf_set_str(w, "tokenizer.chat_template", chatml, e) ? -1 : 0;
}

/* ---- writing ---------------------------------------------------------------- */

static volatile sig_atomic_t interrupted;
static void on_signal(int sig) { interrupted = sig; }

typedef struct run {
    pi_pool *pool;
    uint64_t done, total;
    bool show;
    void *tab; /* a float type's 65536 values */
} run;

typedef struct job {
    const gen *g;
    uint8_t *buf;
    int64_t rows, per_chunk;
    const float *gain; /* F32 only: each row's factor, or NULL */
} job;

static void fill_chunk(void *arg, int64_t c, int ith)
{
    const job *j = arg;
    int64_t r1 = (c + 1) * j->per_chunk < j->rows ? (c + 1) * j->per_chunk : j->rows;
    for (int64_t r = c * j->per_chunk; r < r1; r++) {
        uint64_t s = j->g->t->seed ^ (uint64_t)r * 0xD1B54A32D192ED03u;
        uint8_t *row = j->buf + (size_t)r * j->g->row_bytes;
        gen_row(j->g, splitmix(&s), row);
        for (int64_t i = 0; j->gain && i < j->g->t->ne[0]; i++)
            ((float *)row)[i] *= j->gain[r];
    }
}

/* --router-skew S: expert e's router row is multiplied by
 * exp(S z_e) / sqrt(mean over e' of exp(2 S z_e')), z_e standard normal
 * from the tensor's seed (so each layer has its own popular experts), which
 * leaves the rows' mean square as it was.  Top-k routing takes the largest
 * logits, and a row with a larger norm throws larger logits, so an expert's
 * share of the routings grows with its gain: log-normal popularity.  (A
 * bias along a shared direction acts only through the part common to all
 * router inputs, which with random weights is each text's own and kept
 * small on purpose, see the header: it would pick other experts for every
 * text.) */
static float *router_gains(const tspec *t)
{
    int64_t E = t->ne[1];
    float *g = malloc((size_t)E * sizeof *g);
    uint64_t s = t->seed ^ 0x5851F42D4C957F2Du;
    double ms = 0;
    for (int64_t e = 0; g && e < E; e++) { /* Box-Muller, one normal per pair */
        double u1 = ((double)(splitmix(&s) >> 11) + 0.5) / 9007199254740992.0;
        double u2 = (double)(splitmix(&s) >> 11) / 9007199254740992.0;
        double z = sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2);
        g[e] = (float)exp(t->skew * z);
        ms += (double)g[e] * g[e] / (double)E;
    }
    for (int64_t e = 0; g && e < E; e++)
        g[e] = (float)(g[e] / sqrt(ms));
    return g;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int fill(void *user, void *buf, uint64_t size, pi_err *err)
{
    const tspec *t = user;
    run *r = t->run;
    if (interrupted)
        return pi_err_set(err, "interrupted");
    bool flt = t->type == PI_TYPE_F32 || t->type == PI_TYPE_F16 || t->type == PI_TYPE_BF16;
    gen g;
    gen_setup(&g, t, flt ? r->tab : NULL);
    int64_t rows = t->ne[1] * t->ne[2] * t->ne[3];
    job j = { &g, buf, rows, (int64_t)((1u << 20) / g.row_bytes), NULL };
    if (j.per_chunk < 1)
        j.per_chunk = 1;
    float *gain = NULL;
    if (t->skew > 0 && !(j.gain = gain = router_gains(t)))
        return pi_err_set(err, "out of memory");
    pi_pool_for(r->pool, (rows + j.per_chunk - 1) / j.per_chunk, fill_chunk, &j);
    free(gain);
    r->done += size;
    if (r->show)
        fprintf(stderr, "\r%s: %.2f of %.2f GB (%.0f%%)", prog, r->done / 1e9, r->total / 1e9,
                100.0 * (double)r->done / (double)r->total);
    return 0;
}

/* path: the file, or "-" for standard output; out: its name for messages. */
static int write_model(plan *p, const char *path, const char *out, uint64_t seed, int threads,
                       bool quiet)
{
    pi_err err;
    vocab v;
    run r = { .total = p->bytes, .show = !quiet && isatty(2) };
    pi_gguf_writer *w = pi_gguf_writer_new(0);
    int rc = 1;
    double t0 = now();
    if (make_vocab(&v, p->s.n_vocab) || !w || !(r.tab = malloc(65536 * sizeof(float)))) {
        fprintf(stderr, "%s: out of memory\n", prog);
        goto done;
    }
    if (!(r.pool = pi_pool_new(threads, &err)) || set_meta(w, p, &v, seed, &err))
        goto fail;
    for (size_t i = 0; i < p->n; i++) {
        tspec *t = &p->t[i];
        t->run = &r;
        if (pi_gguf_add_tensor_fill(w, t->name, t->type, t->n_dims, t->ne, t->size, fill, t,
                                    &err))
            goto fail;
    }
    if (pi_gguf_writer_write(w, path, &err))
        goto fail;
    double dt = now() - t0;
    struct stat st; /* the file's size; the tensor data's on a stream */
    bool file = strcmp(path, "-") && !stat(path, &st);
    double size = file ? (double)st.st_size : (double)p->bytes;
    if (r.show)
        fputc('\n', stderr);
    if (!quiet)
        fprintf(stderr, "%s: wrote %s: %s, %s, %zu tensors, %.0f bytes%s (%.2f GB) in %.1f s "
                "(%.2f GB/s)\n", prog, strcmp(out, "-") ? out : "standard output", p->s.name,
                type_label(p->type), p->n, size, file ? "" : " of tensor data", size / 1e9, dt,
                size / 1e9 / dt);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "%s%s: %s\n", r.show && r.done ? "\n" : "", prog, err.msg);
done:
    pi_pool_free(r.pool);
    pi_gguf_writer_free(w);
    vocab_free(&v);
    free(r.tab);
    return rc;
}

/* ---- options ---------------------------------------------------------------- */

/* Shape overrides, in the order of their options; those from EXPERT_OPTS
 * on are for the MoE architectures only. */
#define MAX_EXPERTS 4096 /* libpi's limit */
static const struct {
    const char *opt;
    size_t off;
    int lo, hi;
} shape_opts[] = {
    { "n-layer", offsetof(shape, n_layer), 1, 1 << 20 },
    { "n-embd", offsetof(shape, n_embd), 1, 1 << 20 },
    { "n-ff", offsetof(shape, n_ff), 1, 1 << 20 },
    { "n-head", offsetof(shape, n_head), 1, 1 << 20 },
    { "n-head-kv", offsetof(shape, n_head_kv), 1, 1 << 20 },
    { "head-dim", offsetof(shape, head_dim), 2, 1 << 20 },
    { "vocab", offsetof(shape, n_vocab), MIN_VOCAB, MAX_VOCAB },
    { "ctx", offsetof(shape, n_ctx), 1, 1 << 20 },
    { "experts", offsetof(shape, n_expert), 1, MAX_EXPERTS },
    { "experts-used", offsetof(shape, n_expert_used), 1, MAX_EXPERTS },
    { "ff-exp", offsetof(shape, n_ff_exp), 1, 1 << 20 },
    { "ff-shexp", offsetof(shape, n_ff_shexp), 1, 1 << 20 },
};
#define N_SHAPE_OPTS (sizeof shape_opts / sizeof shape_opts[0])
#define EXPERT_OPTS 8
#define HEAD_DIM_OPT 5

typedef struct opts {
    const char *preset, *output, *arch;
    int type, embd_type, output_type, threads, tied;
    int shape_val[N_SHAPE_OPTS]; /* 0: the preset's */
    double rope_base, rms_eps;   /* 0: the preset's */
    double router_skew;
    uint64_t seed;
    bool dry_run, quiet;
} opts;

static void usage(FILE *f)
{
    fprintf(f,
        "Usage: %s --preset NAME [OPTION]... -o OUT.gguf\n"
        "Write a GGUF model with random weights in the shape of a real one, for\n"
        "benchmarks where no real weights are at hand.  Quantised blocks are written\n"
        "directly (random codes and scales), so a 7B model takes seconds.  pi-run,\n"
        "pi-inspect and the gguf Python package read it like any model; the text it\n"
        "generates is noise.  The same options and seed give the same bytes.\n"
        "\n"
        "  -P, --preset NAME       the shape to start from (below)\n"
        "  -T, --type TYPE         type of the weight matrices: f32, f16, bf16, q8_0, q4_0,\n"
        "                          q4_1, q5_0, q5_1, q2_k, q3_k, q4_k, q5_k, q6_k, or q4_k_m\n"
        "                          (Q4_K with Q6_K for the output and for attn_v and\n"
        "                          ffn_down in some layers, as llama.cpp) (default q4_0).\n"
        "                          Rows that are not whole 256-element super-blocks get\n"
        "                          llama.cpp's fallback (Q4_K -> Q5_0, Q5_K -> Q5_1,\n"
        "                          Q6_K -> Q8_0, Q2_K and Q3_K -> Q4_0), with a note.\n"
        "                          Norms and biases are F32.\n"
        "      --embd-type TYPE    type of token_embd (default: as --type)\n"
        "      --output-type TYPE  type of output.weight (default: as --type; untied only)\n"
        "  -o, --output FILE       the GGUF to write (- for standard output; a device\n"
        "                          or FIFO is written in place: /dev/null times the\n"
        "                          generation alone)\n"
        "  -s, --seed N            random seed (default 0)\n"
        "  -t, --threads N         threads generating blocks (default: online CPUs, at\n"
        "                          most 4); the bytes do not depend on it\n"
        "      --dry-run           print the tensors, their types and sizes; write nothing\n"
        "  -q, --quiet             no progress and no summary on stderr\n"
        "      --config FILE       read options from a YAML file\n"
        "  -h, --help              show this help and exit\n"
        "\n"
        "Shape overrides (each replaces the preset's value):\n"
        "      --arch ARCH         llama, qwen2 (q/k/v biases), qwen3 (q/k norms), or the\n"
        "                          mixtures of experts qwen2moe (as qwen2, with a shared\n"
        "                          expert) and qwen3moe (as qwen3)\n"
        "      --n-layer N         blocks\n"
        "      --n-embd N          hidden size\n"
        "      --n-ff N            feed-forward size (MoE: only the feed_forward_length\n"
        "                          key, and the defaults below)\n"
        "      --n-head N          attention heads\n"
        "      --n-head-kv N       key/value heads (grouped-query attention)\n"
        "      --head-dim N        size of a head (default n-embd / n-head)\n"
        "      --vocab N           vocabulary size (at least %d)\n"
        "      --ctx N             training context length\n"
        "      --rope-base F       RoPE frequency base\n"
        "      --rms-eps F         RMSNorm epsilon\n"
        "      --tied, --untied    output projection shared with token_embd, or its own\n"
        "Mixtures of experts (qwen2moe, qwen3moe; a dense preset made one by --arch\n"
        "gets 8 experts, 2 used, of n-ff / 2, and a shared expert of n-ff):\n"
        "      --experts N         experts per layer (at most %d)\n"
        "      --experts-used N    experts each token is routed to\n"
        "      --ff-exp N          feed-forward size of each expert\n"
        "      --ff-shexp N        feed-forward size of qwen2moe's shared expert\n"
        "      --router-skew S     uneven expert popularity: each expert's router row is\n"
        "                          scaled by exp(S z), z standard normal per expert and\n"
        "                          layer, mean square kept; top-k favours the larger rows.\n"
        "                          0 (default): plain random rows.  The top quarter of\n"
        "                          128 experts (8 used) serves about 45%% of the routings\n"
        "                          at 0, 55%% at 0.25, 70%% at 0.5 (from 0 to 4)\n"
        "\n"
        "Presets:\n", prog, MIN_VOCAB, MAX_EXPERTS);
    for (size_t i = 0; i < N_PRESETS; i++) {
        const shape *s = &presets[i];
        fprintf(f, "  %-17s %-8s %2d layers, embd %4d, ff %5d, heads %2d/%d, vocab %6d%s\n",
                s->name, s->arch, s->n_layer, s->n_embd, s->n_ff, s->n_head, s->n_head_kv,
                s->n_vocab, s->tied ? ", tied" : "");
        if (s->n_expert) {
            fprintf(f, "%29s%d experts, %d used, of ff %d", "", s->n_expert, s->n_expert_used,
                    s->n_ff_exp);
            if (s->n_ff_shexp)
                fprintf(f, "; shared expert of ff %d", s->n_ff_shexp);
            fputc('\n', f);
        }
    }
    fprintf(f,
        "\n"
        "Weights have standard deviation 1/sqrt(fan-in) (attn_output and ffn_down\n"
        "also 1/sqrt(2 n-layer); embeddings 3/sqrt(n-embd); routers 2/sqrt(n-embd)),\n"
        "so activations stay near unit size through every layer and the logits are\n"
        "finite and spread.\n"
        "Example: %s -P llama-7b -T q4_0 -o /tmp/llama-7b.q4_0.gguf\n"
        "Exit status: 0 on success, 1 on a runtime error, 2 on a usage error.\n", prog);
}

static int type_opt(const char *opt, const char *arg, int *out)
{
    *out = parse_type(arg);
    if (*out >= 0 && (*out != TYPE_Q4_K_M || !strcmp(opt, "type")))
        return 0;
    fprintf(stderr, "%s: --%s: '%s' is not a type gen_model writes (see --help)\n", prog, opt,
            arg);
    return -1;
}

static int parse_args(int argc, char **argv, void *opts_out)
{
    opts *o = opts_out;
    enum { EMBD_T = 256, OUT_T, DRY, ARCH, ROPE, EPS, TIED, UNTIED, SKEW, SHAPE0 };
    struct option lo[32] = {
        { "preset", 1, 0, 'P' }, { "type", 1, 0, 'T' }, { "embd-type", 1, 0, EMBD_T },
        { "output-type", 1, 0, OUT_T }, { "output", 1, 0, 'o' }, { "seed", 1, 0, 's' },
        { "threads", 1, 0, 't' }, { "dry-run", 0, 0, DRY }, { "quiet", 0, 0, 'q' },
        { "help", 0, 0, 'h' }, { "arch", 1, 0, ARCH }, { "rope-base", 1, 0, ROPE },
        { "rms-eps", 1, 0, EPS }, { "tied", 0, 0, TIED }, { "untied", 0, 0, UNTIED },
        { "router-skew", 1, 0, SKEW },
    };
    for (size_t i = 0; i < N_SHAPE_OPTS; i++)
        lo[16 + i] = (struct option){ shape_opts[i].opt, 1, 0, SHAPE0 + (int)i };
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    *o = (opts){ .type = PI_TYPE_Q4_0, .embd_type = -1, .output_type = -1, .tied = -1,
                 .threads = ncpu < 1 ? 1 : ncpu > 4 ? 4 : (int)ncpu };
    int c;
    double v;
    while ((c = getopt_long(argc, argv, "P:T:o:s:t:qh", lo, NULL)) != -1) {
        int rc = 0;
        switch (c) {
        case 'P': o->preset = optarg; break;
        case 'T': rc = type_opt("type", optarg, &o->type); break;
        case EMBD_T: rc = type_opt("embd-type", optarg, &o->embd_type); break;
        case OUT_T: rc = type_opt("output-type", optarg, &o->output_type); break;
        case 'o': o->output = optarg; break;
        case 's': rc = tool_num(prog, "seed", optarg, 0, 9007199254740992.0, true, &v);
            o->seed = (uint64_t)v; break;
        case 't': rc = tool_num(prog, "threads", optarg, 1, 256, true, &v); o->threads = (int)v;
            break;
        case DRY: o->dry_run = true; break;
        case 'q': o->quiet = true; break;
        case 'h': usage(stdout); exit(0);
        case ARCH:
            o->arch = optarg;
            if (strcmp(optarg, "llama") && strcmp(optarg, "qwen2") && strcmp(optarg, "qwen3") &&
                !is_moe(optarg)) {
                fprintf(stderr, "%s: --arch: '%s' is not llama, qwen2, qwen3, qwen2moe or "
                        "qwen3moe\n", prog, optarg);
                rc = -1;
            }
            break;
        case SKEW: rc = tool_num(prog, "router-skew", optarg, 0, 4, false, &o->router_skew);
            break;
        case ROPE: rc = tool_num(prog, "rope-base", optarg, 1, 1e12, false, &o->rope_base); break;
        case EPS: rc = tool_num(prog, "rms-eps", optarg, 1e-12, 1, false, &o->rms_eps); break;
        case TIED: case UNTIED: o->tied = c == TIED; break;
        default:
            if (c < SHAPE0 || c >= SHAPE0 + (int)N_SHAPE_OPTS)
                return 2;
            int i = c - SHAPE0;
            rc = tool_num(prog, shape_opts[i].opt, optarg, shape_opts[i].lo, shape_opts[i].hi,
                          true, &v);
            o->shape_val[i] = (int)v;
        }
        if (rc)
            return 2;
    }
    if (tool_no_operands(prog, argc, argv))
        return 2;
    if (!o->preset) {
        fprintf(stderr, "%s: no shape: give --preset NAME (see --help for the list)\n", prog);
        return 2;
    }
    if (!o->output && !o->dry_run) {
        fprintf(stderr, "%s: no output: give -o OUT.gguf (- for standard output)\n", prog);
        return 2;
    }
    if (o->output && o->dry_run) {
        fprintf(stderr, "%s: --dry-run writes nothing; drop -o\n", prog);
        return 2;
    }
    return 0;
}

/* The experts: the preset's and the overrides, for a MoE architecture;
 * none for a dense one, which refuses the expert options.  A dense preset
 * made MoE gets 8 experts, 2 used, of n_ff / 2 (llama.cpp's default
 * n_ff_exp is n_ff / n_expert_used) and a shared expert of n_ff.  Shapes
 * llama.cpp would refuse are refused too. */
static int moe_shape(const opts *o, shape *s)
{
    if (!is_moe(s->arch)) {
        const char *opt = o->router_skew ? "router-skew" : NULL;
        for (size_t k = EXPERT_OPTS; k < N_SHAPE_OPTS; k++)
            opt = o->shape_val[k] ? shape_opts[k].opt : opt;
        if (opt) {
            fprintf(stderr, "%s: --%s: only for the MoE architectures (qwen2moe, qwen3moe)\n",
                    prog, opt);
            return -1;
        }
        s->n_expert = s->n_expert_used = s->n_ff_exp = s->n_ff_shexp = 0;
        return 0;
    }
    bool qwen2moe = !strcmp(s->arch, "qwen2moe");
    if (!s->n_expert)
        s->n_expert = 8;
    if (!s->n_expert_used)
        s->n_expert_used = s->n_expert < 2 ? 1 : 2;
    if (!s->n_ff_exp)
        s->n_ff_exp = s->n_ff / s->n_expert_used > 0 ? s->n_ff / s->n_expert_used : 1;
    s->n_ff_shexp = !qwen2moe ? 0 : s->n_ff_shexp ? s->n_ff_shexp : s->n_ff;
    if (!qwen2moe && o->shape_val[N_SHAPE_OPTS - 1]) {
        fprintf(stderr, "%s: --ff-shexp: qwen3moe has no shared expert\n", prog);
        return -1;
    }
    if (s->n_expert_used > s->n_expert) {
        fprintf(stderr, "%s: %d experts used of %d: give --experts-used at most --experts\n",
                prog, s->n_expert_used, s->n_expert);
        return -1;
    }
    /* llama.cpp's qwen2moe makes attn_q n_embd x n_embd and needs output.weight */
    if (qwen2moe && s->n_head * s->head_dim != s->n_embd) {
        fprintf(stderr, "%s: qwen2moe needs n-head x head-dim = n-embd (%d x %d != %d)\n", prog,
                s->n_head, s->head_dim, s->n_embd);
        return -1;
    }
    if (qwen2moe && s->tied) {
        fprintf(stderr, "%s: qwen2moe cannot be --tied: llama.cpp requires output.weight\n",
                prog);
        return -1;
    }
    return 0;
}

/* The preset with the overrides; -1 (message printed) for a shape that
 * pi's loader would refuse. */
static int make_shape(const opts *o, shape *s)
{
    size_t i = 0;
    while (i < N_PRESETS && strcmp(presets[i].name, o->preset))
        i++;
    if (i == N_PRESETS) {
        fprintf(stderr, "%s: --preset: unknown preset '%s' (see --help for the list)\n", prog,
                o->preset);
        return -1;
    }
    *s = presets[i];
    for (size_t k = 0; k < N_SHAPE_OPTS; k++)
        if (o->shape_val[k])
            *(int *)((char *)s + shape_opts[k].off) = o->shape_val[k];
    if (o->arch)
        s->arch = o->arch, s->pre = strcmp(o->arch, "llama") ? "qwen2" : s->pre;
    if (o->rope_base)
        s->rope_base = o->rope_base;
    if (o->rms_eps)
        s->rms_eps = o->rms_eps;
    if (o->tied >= 0)
        s->tied = o->tied;
    if (!o->shape_val[HEAD_DIM_OPT] && (!s->head_dim || o->shape_val[1] || o->shape_val[3])) {
        if (s->n_embd % s->n_head) {
            fprintf(stderr, "%s: n-embd %d is not a multiple of n-head %d: give --head-dim\n",
                    prog, s->n_embd, s->n_head);
            return -1;
        }
        s->head_dim = s->n_embd / s->n_head;
    }
    if (s->n_head % s->n_head_kv) {
        fprintf(stderr, "%s: n-head %d is not a multiple of n-head-kv %d\n", prog, s->n_head,
                s->n_head_kv);
        return -1;
    }
    if (s->head_dim % 2) {
        fprintf(stderr, "%s: head-dim %d is odd (RoPE rotates pairs)\n", prog, s->head_dim);
        return -1;
    }
    if (s->tied && o->output_type >= 0) {
        fprintf(stderr, "%s: --output-type: a tied model has no output.weight (add --untied, or "
                "use --embd-type)\n", prog);
        return -1;
    }
    return moe_shape(o, s);
}

static void print_plan(const plan *p)
{
    const shape *s = &p->s;
    printf("%s: %s, %d layers, embd %d, ff %d, %d heads (%d kv) of %d, vocab %d, context %d, "
           "rope base %g, %s, %s\n", s->name, s->arch, s->n_layer, s->n_embd, s->n_ff, s->n_head,
           s->n_head_kv, s->head_dim, s->n_vocab, s->n_ctx, s->rope_base,
           s->tied ? "tied" : "untied", type_label(p->type));
    if (s->n_expert)
        printf("experts: %d per layer, %d used, of ff %d; shared expert of ff %d; router skew "
               "%g\n", s->n_expert, s->n_expert_used, s->n_ff_exp, s->n_ff_shexp, p->router_skew);
    printf("%6s  %-32s %-5s %-24s %12s\n", "#", "name", "type", "shape", "bytes");
    for (size_t i = 0; i < p->n; i++) {
        const tspec *t = &p->t[i];
        char sh[64];
        int o = snprintf(sh, sizeof sh, "%lld", (long long)t->ne[0]);
        for (uint32_t d = 1; d < t->n_dims; d++)
            o += snprintf(sh + o, sizeof sh - (size_t)o, " x %lld", (long long)t->ne[d]);
        printf("%6zu  %-32s %-5s %-24s %12llu\n", i, t->name, pi_type_name(t->type), sh,
               (unsigned long long)t->size);
    }
    printf("total: %zu tensors, %llu parameters, %llu bytes (%.2f GB) of tensor data\n", p->n,
           (unsigned long long)p->params, (unsigned long long)p->bytes, p->bytes / 1e9);
}

/* A device or a FIFO (/dev/null, a named pipe) is written in place, as
 * standard output is, because renaming the finished temporary file onto it
 * would replace the node itself: it becomes standard output.  Returns 0 or
 * the exit status. */
static int open_special(const char *path, bool *special)
{
    *special = false;
    struct stat st;
    if (!strcmp(path, "-") || stat(path, &st) || S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))
        return 0;
    int fd = open(path, O_WRONLY);
    if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0) {
        fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
        return 1;
    }
    close(fd);
    *special = true;
    return 0;
}

int main(int argc, char **argv)
{
    opts o;
    pi_args args;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    int rc = tool_args(prog, argc, argv, &args, parse_args, &o);
    if (rc)
        return rc;
    bool special;
    plan p = { .type = o.type, .embd_type = o.embd_type, .output_type = o.output_type,
               .router_skew = o.router_skew };
    if (make_shape(&o, &p.s) || make_plan(&p, o.seed)) {
        fprintf(stderr, "Try '%s --help'.\n", prog);
        free(p.t);
        return tool_exit(prog, &args, 2);
    }
    for (uint32_t t = 0; t < PI_TYPE_COUNT && !o.quiet; t++)
        if (p.n_fallback[t])
            fprintf(stderr, "%s: note: %d %s tensors are %s: their rows are not whole "
                    "super-blocks of 256 (llama.cpp's fallback)\n", prog, p.n_fallback[t],
                    pi_type_name(t), pi_type_name(k_fallback(t)));
    if (o.dry_run)
        print_plan(&p);
    else if (!(rc = open_special(o.output, &special)))
        rc = tool_binary_to_tty(prog, !strcmp(o.output, "-") || special, "a binary GGUF")
                 ? 2 : write_model(&p, special ? "-" : o.output, o.output, o.seed, o.threads,
                                   o.quiet);
    free(p.t);
    return tool_exit(prog, &args, rc);
}
