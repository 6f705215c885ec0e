/*
 * fuzz_predictor: bytes as a predictor GGUF (pi-train-predictor's output,
 * read by pi-pack and pi-run): the GGUF reader, then the predictor's own
 * checks of keys, shapes, types and values.
 */
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "predictor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pi_err err;
    pi_gguf *g = pi_gguf_open_memory(data, size, "fuzz", &err);
    if (!g)
        return 0;
    pi_predictor *p = pi_predictor_from_gguf(g, &err);
    if (p) {
        float x[4096], logits[4096];
        int32_t idx[4096];
        int d = pi_predictor_n_embd(p), ff = pi_predictor_n_ff(p);
        if (d <= 4096 && ff <= 4096) {
            for (int i = 0; i < d; i++)
                x[i] = (float)(i % 7) - 3.0f;
            for (int il = 0; il < pi_predictor_n_layer(p); il++)
                pi_predictor_select(p, il, x, logits, idx);
        }
        pi_predictor_free(p);
    }
    pi_gguf_close(g);
    return 0;
}
