/*
 * fuzz_packed: bytes as a packed model (pi-pack's output, read by pi-run and
 * pi-inspect): the GGUF reader, then the pi section's checks of versions,
 * types, lengths, orders and permutations at the shape the model's own keys
 * give (a mixture of experts' when it has expert keys), and the embedded
 * predictors' checks.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "packinfo.h"
#include "predictor.h"

#define MAX_LAYERS 4096
#define MAX_FF 65536
#define MAX_EXPERTS 256

/* The model's "<arch>.<what>" as an int in 1..max, or 0. */
static int model_dim(const pi_gguf *g, const char *arch, const char *what, uint32_t max)
{
    char key[128];
    uint32_t v;
    snprintf(key, sizeof key, "%s.%s", arch, what);
    return !pi_gguf_get_u32(g, key, &v) && v >= 1 && v <= max ? (int)v : 0;
}

/* Touch what was read, so ASan sees a short allocation. */
static void touch(const pi_packinfo *p)
{
    volatile float h = pi_packinfo_freq(p, p->n_layer - 1)[p->n_ff - 1];
    h += (float)pi_packinfo_perm(p, p->n_layer - 1)[p->n_ff - 1];
    if (p->plan_n_gpu)
        h += (float)p->plan_n_gpu[p->n_layer - 1];
    if (p->n_expert)
        h += pi_packinfo_usage(p, p->n_layer - 1)[p->n_expert - 1];
    (void)h;
}

static void read_section(const pi_gguf *g)
{
    char arch[64];
    int n_layer = 0, n_ff = 0, n_expert = 0, n_ff_exp = 0;
    if (!pi_gguf_get_cstr(g, "general.architecture", arch, sizeof arch)) {
        n_layer = model_dim(g, arch, "block_count", MAX_LAYERS);
        n_ff = model_dim(g, arch, "feed_forward_length", MAX_FF);
        n_expert = model_dim(g, arch, "expert_count", MAX_EXPERTS);
        n_ff_exp = model_dim(g, arch, "expert_feed_forward_length", MAX_FF / MAX_EXPERTS);
    }
    pi_packinfo p;
    pi_err err;
    int rc = -1;
    if (n_layer && n_expert && n_ff_exp)
        rc = pi_packinfo_read_moe(g, n_layer, n_expert, n_ff_exp, &p, &err);
    else if (n_layer && n_ff)
        rc = pi_packinfo_read(g, n_layer, n_ff, &p, &err);
    else
        return;
    if (!rc)
        touch(&p);
    pi_packinfo_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A private copy so that reads past `size` hit ASan's redzone. */
    uint8_t *copy = malloc(size ? size : 1);
    memcpy(copy, data, size);
    pi_err err;
    pi_gguf *g = pi_gguf_open_memory(copy, size, "fuzz.gguf", &err);
    if (g && pi_packinfo_present(g)) {
        read_section(g);
        pi_predictor_free(pi_predictor_from_packed(g, &err));
    }
    pi_gguf_close(g);
    free(copy);
    return 0;
}
