/*
 * Helper for tests/test_gguf_interop.py: writes a GGUF holding one value of
 * every metadata type, a nested array and tensors of several types, so the
 * Python `gguf` package can check that it reads what pi writes.
 *   tool_gguf write FILE
 */
#include <stdio.h>
#include <string.h>

#include "gguf_write.h"
#include "quant.h"

int main(int argc, char **argv)
{
    if (argc != 3 || strcmp(argv[1], "write")) {
        fprintf(stderr, "usage: tool_gguf write FILE\n");
        return 2;
    }
    pi_err err = { { 0 } };
    pi_gguf_writer *w = pi_gguf_writer_new(0);
    static float f32[4 * 64];
    static uint8_t q8[2 * 34 * 2], q4k[144];
    for (int i = 0; i < 4 * 64; i++)
        f32[i] = (float)i * 0.25f - 10.0f;
    pi_quantize_row(PI_TYPE_Q8_0, f32, q8, 128);
    pi_quantize_row(PI_TYPE_Q4_K, f32, q4k, 256);
    int8_t i8s[3] = { -128, 0, 127 };
    int32_t i32s[2] = { -5, 7 };
    const char *toks[4] = { "<s>", "hello", " w\xc3\xb6rld", "" };
    int rc = pi_gguf_set_str(w, "general.architecture", "llama", &err) ||
             pi_gguf_set_str(w, "general.name", "pi interop test", &err) ||
             pi_gguf_set_u32(w, "test.u32", 123456789u, &err) ||
             pi_gguf_set_i32(w, "test.i32", -42, &err) ||
             pi_gguf_set_u64(w, "test.u64", 18446744073709551615ull, &err) ||
             pi_gguf_set_i64(w, "test.i64", -9007199254740993ll, &err) ||
             pi_gguf_set_f32(w, "test.f32", 1e-3f, &err) ||
             pi_gguf_set_f64(w, "test.f64", 3.141592653589793, &err) ||
             pi_gguf_set_bool(w, "test.bool", true, &err) ||
             pi_gguf_set_arr(w, "test.arr_i8", PI_GGUF_I8, i8s, 3, &err) ||
             pi_gguf_set_arr(w, "test.arr_i32", PI_GGUF_I32, i32s, 2, &err) ||
             pi_gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, 4, &err);
    int64_t ne_f32[2] = { 64, 4 }, ne_q8[2] = { 64, 2 }, ne_q4k[1] = { 256 };
    rc = rc || pi_gguf_add_tensor(w, "f32.weight", PI_TYPE_F32, 2, ne_f32, f32, sizeof f32, &err) ||
         pi_gguf_add_tensor(w, "q8_0.weight", PI_TYPE_Q8_0, 2, ne_q8, q8, 2 * 2 * 34, &err) ||
         pi_gguf_add_tensor(w, "q4_k.weight", PI_TYPE_Q4_K, 1, ne_q4k, q4k, 144, &err) ||
         pi_gguf_writer_write(w, argv[2], &err);
    pi_gguf_writer_free(w);
    if (rc) {
        fprintf(stderr, "tool_gguf: %s\n", err.msg);
        return 1;
    }
    return 0;
}
