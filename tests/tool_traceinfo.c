/*
 * tool_traceinfo: reads a whole trace (a file or - for stdin) and prints
 * what the tool tests check: parts, records, recorded layers, the model's
 * fingerprint, and the tokens of the first records.  A bad trace prints the
 * reader's message and exits 1.
 *
 *   tool_traceinfo FILE
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "trace.h"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: tool_traceinfo FILE\n");
        return 2;
    }
    pi_err err;
    pi_trace_reader *r = pi_trace_open(argv[1], &err);
    if (!r) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    const pi_trace_info *in = pi_trace_reader_info(r);
    float *x = malloc(sizeof *x * (size_t)in->n_embd), *a = malloc(sizeof *a * (size_t)in->n_ff);
    pi_trace_record rec;
    int rc = 0, parts = 1;
    int64_t n = 0;
    double sum = 0;
    while (x && a && (rc = pi_trace_next(r, &rec, &err)) == 1) {
        parts = rec.part + 1;
        for (int s = 0; s < rec.info->n_rec; s++) {
            pi_trace_decode_x(&rec, s, x);
            pi_trace_decode_act(&rec, s, a);
            for (int i = 0; i < in->n_ff; i++)
                sum += a[i];
        }
        if (n < 4)
            printf("record %" PRId64 " token %d pos %d\n", n, rec.token, rec.pos);
        n++;
    }
    if (!x || !a || rc < 0) {
        fprintf(stderr, "%s\n", x && a ? err.msg : "out of memory");
        free(x);
        free(a);
        pi_trace_close(r);
        return 1;
    }
    printf("parts %d\nrecords %" PRId64 "\nlayers %d\nfirst_layer %d\nfingerprint %016" PRIx64
           "\nevery %d\nctx %d\nmass %.6g\n", parts, n, in->n_rec, in->layer[0], in->fingerprint,
           in->every, in->ctx, sum);
    free(x);
    free(a);
    pi_trace_close(r);
    return 0;
}
