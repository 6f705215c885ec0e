/*
 * Helper for the reference tests: runs the dense forward pass over token ids
 * and writes the final position's logits, or greedy continuations.
 *   tool_logits MODEL IDS [--out FILE] [--greedy N] [--threads N] [--batch N] [--ctx N]
 * IDS is comma-separated.  --greedy prints N generated ids on one line.
 * --exact 1 takes the float-activation path (see matmul.h).  A packed model
 * runs sparse unless --dense 1; --shift D moves the thresholds, --gate-floor F
 * turns the gate check on (sparse.h); --active 1
 * prints, after the prompt, the neurons computed per layer (sparse.h).
 * --gpu 1 runs on the CUDA device (gpu.h): whole, or under --vram BYTES
 * hybrid (a packed model) or with --offload 1 as many layers as fit.  --experts 1 prints,
 * after the prompt, how often a mixture of experts chose each expert of each
 * layer (moe.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forward.h"
#include "moe.h"
#include "sparse.h"

/* How often each expert of each layer was chosen over the prompt, as
 * "layer L: c0 c1 ..." lines (moe.h keeps counts, not every choice). */
static int print_experts(pi_ctx *c)
{
    const pi_moe *e = pi_ctx_moe(c);
    if (!e) {
        fprintf(stderr, "tool_logits: --experts: not a mixture of experts\n");
        return 1;
    }
    const pi_hparams *hp = &pi_ctx_model(c)->hp;
    for (int il = 0; il < hp->n_layer; il++) {
        printf("layer %d:", il);
        for (int x = 0; x < hp->n_expert; x++)
            printf(" %llu", (unsigned long long)pi_moe_usage(e)[(size_t)il * hp->n_expert + x]);
        putchar('\n');
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: tool_logits MODEL IDS [--out F] [--greedy N] [--threads N] "
                        "[--batch N]\n");
        return 2;
    }
    const char *out = NULL;
    int greedy = 0, active = 0, experts = 0;
    pi_ctx_params cp = { .n_ctx = 1024, .n_threads = 1 };
    for (int i = 3; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--out"))
            out = argv[i + 1];
        else if (!strcmp(argv[i], "--greedy"))
            greedy = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads"))
            cp.n_threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--ctx"))
            cp.n_ctx = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch"))
            cp.n_batch = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--exact"))
            cp.exact = atoi(argv[i + 1]) != 0;
        else if (!strcmp(argv[i], "--dense"))
            cp.dense = atoi(argv[i + 1]) != 0;
        else if (!strcmp(argv[i], "--shift"))
            cp.sparsity_shift = strtof(argv[i + 1], NULL);
        else if (!strcmp(argv[i], "--gate-floor"))
            cp.gate_floor = strtof(argv[i + 1], NULL);
        else if (!strcmp(argv[i], "--gpu"))
            cp.gpu = atoi(argv[i + 1]) != 0;
        else if (!strcmp(argv[i], "--vram"))
            cp.vram = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--offload"))
            cp.offload_layers = atoi(argv[i + 1]) != 0;
        else if (!strcmp(argv[i], "--active"))
            active = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--experts"))
            experts = atoi(argv[i + 1]);
    }
    int32_t ids[1024];
    int n = 0;
    for (char *s = argv[2]; *s && n < 1024; n++) {
        ids[n] = (int32_t)strtol(s, &s, 10);
        if (*s == ',')
            s++;
    }
    pi_err err;
    pi_model *m = pi_model_open(argv[1], &err);
    pi_ctx *c = m ? pi_ctx_new(m, &cp, &err) : NULL;
    if (!c) {
        fprintf(stderr, "tool_logits: %s\n", err.msg);
        return 1;
    }
    int nv = m->hp.n_vocab;
    float *logits = malloc((size_t)nv * sizeof *logits);
    if (pi_decode(c, ids, n, logits, false, &err)) {
        fprintf(stderr, "tool_logits: %s\n", err.msg);
        return 1;
    }
    if (active) {
        if (!pi_ctx_sparse(c)) {
            fprintf(stderr, "tool_logits: --active: the context runs dense\n");
            return 1;
        }
        pi_sparse_stats st = pi_sparse_get_stats(pi_ctx_sparse(c));
        printf("active");
        for (int il = 0; il < st.n_layer; il++)
            printf(" %llu", (unsigned long long)st.active[il]);
        printf(" kept");
        for (int il = 0; il < st.n_layer; il++)
            printf(" %llu", (unsigned long long)st.kept[il]);
        putchar('\n');
    }
    if (experts && print_experts(c))
        return 1;
    if (out) {
        FILE *f = fopen(out, "wb");
        if (!f || fwrite(logits, sizeof *logits, (size_t)nv, f) != (size_t)nv || fclose(f)) {
            fprintf(stderr, "tool_logits: %s: cannot write\n", out);
            return 1;
        }
    }
    for (int g = 0; g < greedy; g++) {
        int32_t best = 0;
        for (int i = 1; i < nv; i++)
            if (logits[i] > logits[best])
                best = i;
        printf(g ? ",%d" : "%d", best);
        if (g + 1 < greedy && pi_decode(c, &best, 1, logits, false, &err)) {
            fprintf(stderr, "tool_logits: %s\n", err.msg);
            return 1;
        }
    }
    if (greedy)
        putchar('\n');
    free(logits);
    pi_ctx_free(c);
    pi_model_close(m);
    return 0;
}
