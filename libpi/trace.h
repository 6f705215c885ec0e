/*
 * trace: the file pi-profile writes and pi-train-predictor reads, holding
 * for each recorded token and layer the FFN input and every neuron's
 * activation magnitude, at reduced precision (man/pi-trace.5).
 *
 * A trace is a zstd stream.  Decompressed, it is one or more parts, each a
 * header naming the model (its fingerprint and shape) followed by records,
 * which travel in chunks of up to PI_TRACE_CHUNK stored column by column.  Because concatenated zstd frames decompress to the concatenation
 * of their contents, `cat a.trace b.trace` is a trace with two parts; the
 * reader checks that every part belongs to the same model as the first.
 *
 * Encodings (one of each today, named in the header so that others can be
 * added):
 *   x    int8 with one float32 scale per row: x[i] ~ scale * q[i];
 *   act  a float32 row maximum and one byte per neuron: the float's exponent
 *        and first mantissa bit (half-octave bins [2^e, 1.5*2^e) and
 *        [1.5*2^e, 2^(e+1))), counted down from the maximum's bin: code 32
 *        is the maximum's bin, 1 the bin 31 steps below it (about 2^-16 of
 *        the maximum), 0 smaller or zero.
 *
 * The reader streams: its memory is one chunk plus zstd's window, however
 * long the trace.  Everything read is validated, so decoding cannot fail.
 */
#ifndef PI_TRACE_H
#define PI_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define PI_TRACE_VERSION 1
#define PI_TRACE_MAX_LAYERS 1024
#define PI_TRACE_X_I8 1     /* float32 scale, int8 per element */
#define PI_TRACE_ACT_LOG2H 1 /* float32 maximum, one half-octave code per neuron */
#define PI_TRACE_ACT_CODES 32
#define PI_TRACE_CHUNK 64    /* records per chunk at most */

/* What a part's header says. */
typedef struct pi_trace_info {
    uint64_t fingerprint; /* pi_gguf_fingerprint of the model */
    int n_layer, n_embd, n_ff;
    int x_encoding, act_encoding;
    int n_rec;                         /* layers recorded in each record */
    int32_t layer[PI_TRACE_MAX_LAYERS]; /* which, increasing */
    int ctx, every;                    /* how the profile ran (informational) */
    uint64_t seed;
    char model[256];                   /* the model's name (informational) */
} pi_trace_info;

/* Bytes of one recorded layer ("slot") and of one record, uncompressed. */
size_t pi_trace_slot_size(const pi_trace_info *info);
size_t pi_trace_record_size(const pi_trace_info *info);
/* The slot holding layer il, or -1 when the part does not record it. */
int pi_trace_slot(const pi_trace_info *info, int il);

/* Encodes one token's FFN input x (n_embd floats) and activations act (n_ff
 * floats, signed; their magnitude is kept) into slot (pi_trace_slot_size
 * bytes).  Non-finite values are stored as 0. */
void pi_trace_encode(const pi_trace_info *info, const float *x, const float *act, uint8_t *slot);

/* --- writing --- */

typedef struct pi_trace_writer pi_trace_writer;

/* Starts a one-part trace at path ("-": standard output).  A file is written
 * under a temporary name beside path and renamed into place by commit, so an
 * interrupted or failed run leaves nothing.  level: zstd level (0: default). */
pi_trace_writer *pi_trace_writer_open(const char *path, const pi_trace_info *info, int level,
                                      pi_err *err);
/* Appends one record: the token id, its position in the profiling window,
 * and n_rec slots from pi_trace_encode, in the header's layer order. */
int pi_trace_write(pi_trace_writer *w, int32_t token, int32_t pos, const uint8_t *slots,
                   pi_err *err);
/* Compressed bytes written so far. */
uint64_t pi_trace_writer_bytes(const pi_trace_writer *w);
/* Ends the stream and puts the file in place; frees w whatever happens. */
int pi_trace_writer_commit(pi_trace_writer *w, pi_err *err);
/* Removes whatever was written (a file; standard output cannot be undone).
 * Accepts NULL. */
void pi_trace_writer_abort(pi_trace_writer *w);

/* --- reading --- */

typedef struct pi_trace_reader pi_trace_reader;

typedef struct pi_trace_record {
    const pi_trace_info *info; /* the header of the part it belongs to */
    int part;                  /* 0 for the first part */
    int64_t index;             /* records before it, all parts */
    int32_t token, pos;
    /* Where it lies (for the decoding functions below); valid until the
     * next pi_trace_next. */
    const uint8_t *chunk;
    int count, j;
} pi_trace_record;

/* Opens path ("-": standard input) and reads the first part's header. */
pi_trace_reader *pi_trace_open(const char *path, pi_err *err);
/* Reads from a caller-owned FILE (not closed by pi_trace_close); name is
 * for messages. */
pi_trace_reader *pi_trace_open_file(void *fp, const char *name, pi_err *err);
void pi_trace_close(pi_trace_reader *r);

/* The first part's header: the model every part must belong to. */
const pi_trace_info *pi_trace_reader_info(const pi_trace_reader *r);
/* 1 and *rec filled, 0 at the end of the trace, -1 with err set on a
 * truncated or corrupted trace or a part from another model. */
int pi_trace_next(pi_trace_reader *r, pi_trace_record *rec, pi_err *err);

/* Decoding a record's slot: x into n_embd floats, activation magnitudes
 * into n_ff floats (the middle of each code's bin; 0 for code 0). */
void pi_trace_decode_x(const pi_trace_record *rec, int slot, float *x);
void pi_trace_decode_act(const pi_trace_record *rec, int slot, float *act);
/* The raw int8 inputs and their scale, for callers that keep records in
 * their compact form. */
const int8_t *pi_trace_x_raw(const pi_trace_record *rec, int slot, float *scale);
/* The raw codes and the row maximum, for callers that work on bins. */
const uint8_t *pi_trace_act_codes(const pi_trace_record *rec, int slot, float *max);
/* The same for one row held elsewhere in its encoded form (scale and n int8
 * values; row maximum and n codes). */
void pi_trace_decode_x_row(float scale, const int8_t *q, int n, float *x);
void pi_trace_decode_act_row(float max, const uint8_t *codes, int n, float *act);
/* The magnitude a code stands for, given the row maximum. */
float pi_trace_code_value(float max, int code);

#endif
