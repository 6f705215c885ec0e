/*
 * Helper for the trace fuzzer's seeds (make fuzz-run): writes a small valid
 * trace, four layers of which two are recorded, with records of varied
 * activations in two chunks (a full one and a partial one, so that the
 * fuzzer starts from a chunk following a chunk); `cat t.trace t.trace` is
 * then a valid two-part trace.  plain writes the same trace decompressed
 * (the header and its chunks, about 10 kB), the form fuzz/fuzz_trace.c
 * compresses itself.
 *   tool_trace write FILE
 *   tool_trace plain FILE
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "trace.h"

enum { N_EMBD = 16, N_FF = 48, N_REC = 2, N_RECORDS = PI_TRACE_CHUNK + 3 };

static int write_trace(const char *path, pi_err *err)
{
    pi_trace_info info = { 0 };
    info.fingerprint = 0x5049545241434521ull;
    info.n_layer = 4;
    info.n_embd = N_EMBD;
    info.n_ff = N_FF;
    info.x_encoding = PI_TRACE_X_I8;
    info.act_encoding = PI_TRACE_ACT_LOG2H;
    info.n_rec = N_REC;
    info.layer[0] = 1;
    info.layer[1] = 3;
    info.ctx = 64;
    info.every = 2;
    info.seed = 1;
    snprintf(info.model, sizeof info.model, "pi trace seed");

    pi_trace_writer *w = pi_trace_writer_open(path, &info, 0, err);
    if (!w)
        return -1;
    static uint8_t slots[N_REC * (8 + N_EMBD + N_FF)];
    size_t ss = pi_trace_slot_size(&info);
    for (int t = 0; t < N_RECORDS; t++) {
        float x[N_EMBD], act[N_FF];
        for (int s = 0; s < N_REC; s++) {
            for (int i = 0; i < N_EMBD; i++)
                x[i] = sinf((float)(i + 3 * t + 7 * s)) * (float)(s + 1);
            /* magnitudes over many half-octaves, some zero, some negative */
            for (int i = 0; i < N_FF; i++) {
                float a = ldexpf(1.0f + (float)i / N_FF, -(i % 20));
                act[i] = i % 5 == t % 5 ? 0.0f : i & 1 ? -a : a;
            }
            pi_trace_encode(&info, x, act, slots + (size_t)s * ss);
        }
        if (pi_trace_write(w, 100 + t, t, slots, err)) {
            pi_trace_writer_abort(w);
            return -1;
        }
    }
    return pi_trace_writer_commit(w, err);
}

/* Replaces the compressed file at path by its content. */
static int decompress_in_place(const char *path, pi_err *err)
{
    static uint8_t in[1 << 16], out[1 << 16];
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(in, 1, sizeof in, f) : 0;
    if (f)
        fclose(f);
    size_t m = ZSTD_decompress(out, sizeof out, in, n);
    if (!f || ZSTD_isError(m))
        return pi_err_set(err, "%s: cannot decompress", path);
    f = fopen(path, "wb");
    if (!f || fwrite(out, 1, m, f) != m || fclose(f))
        return pi_err_set(err, "%s: cannot write", path);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[1], "write") && strcmp(argv[1], "plain"))) {
        fprintf(stderr, "usage: tool_trace write|plain FILE\n");
        return 2;
    }
    pi_err err = { { 0 } };
    if (write_trace(argv[2], &err) ||
        (!strcmp(argv[1], "plain") && decompress_in_place(argv[2], &err))) {
        fprintf(stderr, "tool_trace: %s\n", err.msg);
        return 1;
    }
    return 0;
}
