/*
 * libFuzzer target for the GGUF reader: any bytes must either open (and then
 * every accessor stays inside the buffer) or fail with a message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "quant.h"

/* Touch everything an accessor hands out, so ASan sees any stray pointer. */
static uint64_t walk_value(const pi_gguf_value *v)
{
    uint64_t h = (uint64_t)v->type;
    if (v->type == PI_GGUF_STR) {
        for (uint64_t i = 0; i < v->v.str.len; i++)
            h += (uint8_t)v->v.str.ptr[i];
    } else if (v->type == PI_GGUF_ARR) {
        for (uint64_t i = 0; i < v->v.arr.n; i++) {
            pi_gguf_value e = pi_gguf_arr_at(&v->v.arr, i);
            h += walk_value(&e);
        }
    }
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A private copy so that reads past `size` hit ASan's redzone. */
    uint8_t *copy = malloc(size ? size : 1);
    memcpy(copy, data, size);
    pi_err err;
    pi_gguf *g = pi_gguf_open_memory(copy, size, "fuzz.gguf", &err);
    if (g) {
        volatile uint64_t h = 0;
        for (int64_t i = 0; i < pi_gguf_n_kv(g); i++)
            h += walk_value(&pi_gguf_kv_at(g, i)->value);
        for (int64_t i = 0; i < pi_gguf_n_tensors(g); i++) {
            const pi_gguf_tensor *t = pi_gguf_tensor_at(g, i);
            const uint8_t *p = t->data;
            if (t->size)
                h += p[0] + p[t->size - 1];
            h += (uint64_t)pi_gguf_tensor_nelements(t);
        }
        h += pi_gguf_fingerprint(g);
        uint32_t u;
        pi_gguf_get_u32(g, "general.alignment", &u);
        (void)h;
        pi_gguf_close(g);
    }
    free(copy);
    return 0;
}
