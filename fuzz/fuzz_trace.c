/*
 * libFuzzer target for the trace reader: any bytes must either read to the
 * end (and then every record decodes inside its chunk) or fail with a
 * message, without crashing, hanging or leaking.
 *
 * Mutating compressed bytes mostly yields data zstd refuses, so an input
 * that starts with 'P' (as a decompressed trace does: "PI-TRACE") is taken
 * as the decompressed content and compressed here first; that way the
 * header and chunk checks see mutated headers and chunks.  Every other
 * input goes to the reader as it is.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "trace.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    void *packed = NULL;
    if (size && data[0] == 'P') {
        size_t cap = ZSTD_compressBound(size);
        packed = malloc(cap);
        if (!packed)
            return 0;
        size = ZSTD_compress(packed, cap, data, size, 1);
        if (ZSTD_isError(size)) {
            free(packed);
            return 0;
        }
        data = packed;
    }
    FILE *f = tmpfile(); /* fmemopen refuses an empty buffer */
    if (!f || (size && fwrite(data, 1, size, f) != size)) {
        if (f)
            fclose(f);
        free(packed);
        return 0;
    }
    free(packed);
    rewind(f);
    pi_err err;
    pi_trace_reader *r = pi_trace_open_file(f, "fuzz.trace", &err);
    if (r) {
        const pi_trace_info *first = pi_trace_reader_info(r);
        float *x = malloc(sizeof *x * (size_t)first->n_embd);
        float *act = malloc(sizeof *act * (size_t)first->n_ff);
        volatile float h = 0.0f;
        pi_trace_record rec;
        /* Every part has the first part's shape, so one scratch buffer
         * serves them all. */
        while (x && act && pi_trace_next(r, &rec, &err) == 1) {
            for (int s = 0; s < rec.info->n_rec; s++) {
                pi_trace_decode_x(&rec, s, x);
                pi_trace_decode_act(&rec, s, act);
                float max;
                const uint8_t *codes = pi_trace_act_codes(&rec, s, &max);
                h += x[0] + x[rec.info->n_embd - 1] + act[0] + act[rec.info->n_ff - 1] +
                     pi_trace_code_value(max, codes[rec.info->n_ff - 1]);
            }
            h += (float)pi_trace_slot(rec.info, rec.info->layer[0]);
        }
        (void)h;
        free(x);
        free(act);
        pi_trace_close(r);
    }
    fclose(f);
    return 0;
}
