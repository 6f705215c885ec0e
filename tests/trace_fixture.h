/*
 * Shared helpers of tests/test_trace.c and tests/test_trace_bad.c: synthetic
 * traces, private directories, in-memory inputs, and the header and chunk
 * built byte by byte from man/pi-trace.5 (independently of libpi/trace.c).
 * Included after <cmocka.h> and "trace.h"; every helper is static and may go
 * unused in one of the two programs.
 */
#ifndef PI_TRACE_FIXTURE_H
#define PI_TRACE_FIXTURE_H

#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#define FX static __attribute__((unused))

/* ---- random data -------------------------------------------------------- */

FX uint64_t next_random(uint64_t *s) /* xorshift64* */
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1Dull;
}

/* Uniform in [-1, 1). */
FX float uniform(uint64_t *s)
{
    return (float)(next_random(s) >> 40) / (float)(1 << 23) - 1.0f;
}

/* A value spread over many octaves, either sign, sometimes exactly zero. */
FX float spread(uint64_t *s)
{
    uint64_t r = next_random(s);
    if (r % 17 == 0)
        return 0.0f;
    return ldexpf(uniform(s), (int)(r >> 59) - 20);
}

FX void make_info(pi_trace_info *info, uint64_t fingerprint, int n_layer, int n_embd, int n_ff,
                  int n_rec, const int *layers)
{
    memset(info, 0, sizeof *info);
    info->fingerprint = fingerprint;
    info->n_layer = n_layer;
    info->n_embd = n_embd;
    info->n_ff = n_ff;
    info->x_encoding = PI_TRACE_X_I8;
    info->act_encoding = PI_TRACE_ACT_LOG2H;
    info->n_rec = n_rec;
    for (int s = 0; s < n_rec; s++)
        info->layer[s] = layers[s];
    info->ctx = 512;
    info->every = 4;
    info->seed = 0x0123456789abcdefull;
    snprintf(info->model, sizeof info->model, "test model");
}

/* The slots of record i of a synthetic trace: random data seeded by the
 * record's index and the part's seed, so a reader can regenerate them. */
FX void make_slots(const pi_trace_info *info, uint64_t seed, int64_t i, uint8_t *slots)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + (uint64_t)i + 1;
    float *x = malloc(sizeof *x * (size_t)info->n_embd);
    float *act = malloc(sizeof *act * (size_t)info->n_ff);
    assert_non_null(x);
    assert_non_null(act);
    for (int r = 0; r < info->n_rec; r++) {
        float xs = ldexpf(1.0f, (int)(next_random(&s) % 8));
        float as = ldexpf(1.0f, (int)(next_random(&s) % 8) - 4);
        for (int k = 0; k < info->n_embd; k++)
            x[k] = xs * uniform(&s);
        for (int k = 0; k < info->n_ff; k++)
            act[k] = as * spread(&s);
        pi_trace_encode(info, x, act, slots + (size_t)r * pi_trace_slot_size(info));
    }
    free(x);
    free(act);
}

/* Writes n records (tokens 1000 + i, positions i % 7) to path. */
FX void write_trace(const char *path, const pi_trace_info *info, int n, uint64_t seed)
{
    pi_err err = { { 0 } };
    pi_trace_writer *w = pi_trace_writer_open(path, info, 1, &err);
    if (!w)
        fail_msg("%s", err.msg);
    uint8_t *slots = malloc(pi_trace_record_size(info));
    assert_non_null(slots);
    for (int i = 0; i < n; i++) {
        make_slots(info, seed, i, slots);
        if (pi_trace_write(w, 1000 + i, i % 7, slots, &err))
            fail_msg("%s", err.msg);
    }
    free(slots);
    if (pi_trace_writer_commit(w, &err))
        fail_msg("%s", err.msg);
}

/* ---- private directories ------------------------------------------------ */

/* A private directory for one test, removed with everything in it. */
typedef struct tdir {
    char path[64];
} tdir;

FX void tdir_new(tdir *d)
{
    snprintf(d->path, sizeof d->path, "/tmp/pi-test-trace-XXXXXX");
    assert_non_null(mkdtemp(d->path));
}

FX char *tdir_file(const tdir *d, const char *name)
{
    static char path[4][384];
    static int turn;
    char *p = path[turn++ % 4];
    snprintf(p, sizeof path[0], "%s/%s", d->path, name);
    return p;
}

FX void tdir_free(tdir *d)
{
    DIR *dir = opendir(d->path);
    if (dir) {
        for (struct dirent *e; (e = readdir(dir));)
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
                unlink(tdir_file(d, e->d_name));
        closedir(dir);
    }
    rmdir(d->path);
}

/* ---- bytes in memory ---------------------------------------------------- */

typedef struct bytes {
    uint8_t *p;
    size_t n;
} bytes;

FX bytes slurp(const char *path)
{
    bytes b = { NULL, 0 };
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    b.n = (size_t)ftell(f);
    rewind(f);
    b.p = malloc(b.n ? b.n : 1);
    assert_non_null(b.p);
    assert_int_equal(fread(b.p, 1, b.n, f), b.n);
    fclose(f);
    return b;
}

FX void append(bytes *b, const void *p, size_t n)
{
    b->p = realloc(b->p, b->n + n ? b->n + n : 1);
    assert_non_null(b->p);
    if (n)
        memcpy(b->p + b->n, p, n);
    b->n += n;
}

/* Opens n bytes through an anonymous temporary file. */
FX pi_trace_reader *open_bytes(const uint8_t *p, size_t n, FILE **fp, pi_err *err)
{
    *fp = tmpfile();
    assert_non_null(*fp);
    if (n)
        assert_int_equal(fwrite(p, 1, n, *fp), n);
    rewind(*fp);
    return pi_trace_open_file(*fp, "t.trace", err);
}

/* Records read_records delivered before it ended, successfully or not. */
static int64_t fx_delivered __attribute__((unused));

/* Appends what a record holds, decoded: token, position, and for each slot
 * the decoded x, the activation maximum and the codes. */
FX void append_record(bytes *seen, const pi_trace_record *rec)
{
    const pi_trace_info *in = rec->info;
    float *x = malloc(sizeof *x * (size_t)in->n_embd);
    assert_non_null(x);
    append(seen, &rec->token, 4);
    append(seen, &rec->pos, 4);
    for (int s = 0; s < in->n_rec; s++) {
        float max;
        pi_trace_decode_x(rec, s, x);
        const uint8_t *codes = pi_trace_act_codes(rec, s, &max);
        append(seen, x, sizeof *x * (size_t)in->n_embd);
        append(seen, &max, 4);
        append(seen, codes, (size_t)in->n_ff);
    }
    free(x);
}

/* Reads n bytes to the end: the number of records, or -1 with err set (by
 * the open or by pi_trace_next).  A failure must carry a message naming
 * the input.  With seen, every record delivered is appended to it
 * (append_record). */
FX int64_t read_records(const uint8_t *p, size_t n, bytes *seen, pi_err *err)
{
    FILE *f;
    err->msg[0] = 0;
    fx_delivered = 0;
    pi_trace_reader *r = open_bytes(p, n, &f, err);
    int64_t count = -1;
    if (r) {
        pi_trace_record rec;
        int got;
        for (count = 0; (got = pi_trace_next(r, &rec, err)) == 1; count++) {
            assert_int_equal(rec.index, count);
            assert_true(rec.count >= 1 && rec.count <= PI_TRACE_CHUNK);
            assert_true(rec.j >= 0 && rec.j < rec.count);
            if (seen)
                append_record(seen, &rec);
            fx_delivered = count + 1;
        }
        if (got < 0)
            count = -1;
        else
            assert_int_equal(got, 0);
        pi_trace_close(r);
    }
    fclose(f);
    if (count < 0 && strncmp(err->msg, "t.trace: ", 9))
        fail_msg("a failure without a message naming the input: '%s'", err->msg);
    return count;
}

FX int64_t count_records(const uint8_t *p, size_t n, pi_err *err)
{
    return read_records(p, n, NULL, err);
}

FX void expect_failure(const uint8_t *p, size_t n, const char *want)
{
    pi_err err;
    int64_t got = count_records(p, n, &err);
    if (got >= 0 || !strstr(err.msg, want))
        fail_msg("wanted an error containing '%s', got %lld records and '%s'", want,
                 (long long)got, got >= 0 ? "" : err.msg);
}

FX bytes compressed(const uint8_t *p, size_t n)
{
    bytes b;
    b.p = malloc(ZSTD_compressBound(n));
    assert_non_null(b.p);
    b.n = ZSTD_compress(b.p, ZSTD_compressBound(n), p, n, 3);
    assert_false(ZSTD_isError(b.n));
    return b;
}

/* Refuses raw (decompressed) content, compressed as one frame. */
FX void expect_raw_refused(const uint8_t *raw, size_t n, const char *want)
{
    bytes b = compressed(raw, n);
    expect_failure(b.p, b.n, want);
    free(b.p);
}

FX int64_t count_raw(const uint8_t *raw, size_t n)
{
    bytes b = compressed(raw, n);
    pi_err err;
    int64_t got = count_records(b.p, b.n, &err);
    if (got < 0)
        fail_msg("%s", err.msg);
    free(b.p);
    return got;
}

/* ---- the documented layout ---------------------------------------------- */

FX size_t put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> 8 * i);
    return (size_t)n;
}

FX size_t put_float(uint8_t *p, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return put_le(p, u, 4);
}

/* A header of n_layer layers, n_embd 3, n_ff 5, recording layers 0 to
 * n_rec - 1. */
FX size_t documented_header(uint8_t *p, uint32_t version, uint32_t n_layer, uint32_t n_rec,
                            const char *name)
{
    size_t n = 0, nl = strlen(name);
    memcpy(p, "PI-TRACE", 8);
    n += 8;
    n += put_le(p + n, version, 4);
    n += put_le(p + n, 68 + nl + 4 * n_rec, 4);
    n += put_le(p + n, 0x1122334455667788ull, 8); /* fingerprint, offset 16 */
    n += put_le(p + n, n_layer, 4);               /* 24 */
    n += put_le(p + n, 3, 4);                     /* n_embd, 28 */
    n += put_le(p + n, 5, 4);                     /* n_ff, 32 */
    n += put_le(p + n, PI_TRACE_X_I8, 4);         /* 36 */
    n += put_le(p + n, PI_TRACE_ACT_LOG2H, 4);    /* 40 */
    n += put_le(p + n, 256, 4);                   /* ctx, 44 */
    n += put_le(p + n, 2, 4);                     /* every, 48 */
    n += put_le(p + n, 99, 8);                    /* seed, 52 */
    n += put_le(p + n, n_rec, 4);                 /* 60 */
    n += put_le(p + n, nl, 4);                    /* 64 */
    memcpy(p + n, name, nl);
    n += nl;
    for (uint32_t s = 0; s < n_rec; s++)
        n += put_le(p + n, s, 4);
    return n;
}

/* Where each column of a chunk of c records starts, as man/pi-trace.5 gives
 * it (R recorded layers, E = n_embd, F = n_ff). */
typedef struct doc_layout {
    size_t tok, pos, xscale, x, amax, codes, size;
} doc_layout;

FX doc_layout documented_layout(size_t c, size_t R, size_t E, size_t F)
{
    doc_layout l;
    l.tok = 8;
    l.pos = 8 + 4 * c;
    l.xscale = 8 + 8 * c;
    l.x = 8 + 8 * c + 4 * c * R;
    l.amax = 8 + 8 * c + 4 * c * R + c * R * E;
    l.codes = 8 + 8 * c + 8 * c * R + c * R * E;
    l.size = 8 + 8 * c + c * R * (8 + E + F);
    return l;
}

/* Builds a chunk of count records at p from their slots as pi_trace_encode
 * lays them out (count records of n_rec slots, back to back); tok and pos
 * may be NULL (all 0).  Returns its size. */
FX size_t documented_chunk(uint8_t *p, const pi_trace_info *in, size_t count,
                           const int32_t *tok, const int32_t *pos, const uint8_t *slots)
{
    size_t R = (size_t)in->n_rec, E = (size_t)in->n_embd, F = (size_t)in->n_ff;
    size_t ss = 8 + E + F;
    doc_layout l = documented_layout(count, R, E, F);
    memcpy(p, "TCHK", 4);
    put_le(p + 4, count, 4);
    for (size_t j = 0; j < count; j++) {
        put_le(p + l.tok + 4 * j, tok ? (uint32_t)tok[j] : 0, 4);
        put_le(p + l.pos + 4 * j, pos ? (uint32_t)pos[j] : 0, 4);
        for (size_t s = 0; s < R; s++) {
            const uint8_t *src = slots + (j * R + s) * ss;
            size_t row = s * count + j;
            memcpy(p + l.xscale + 4 * row, src, 4);
            memcpy(p + l.x + E * row, src + 4, E);
            memcpy(p + l.amax + 4 * row, src + 4 + E, 4);
            memcpy(p + l.codes + F * row, src + 8 + E, F);
        }
    }
    return l.size;
}

FX size_t chunk_bytes(const pi_trace_info *in, size_t count)
{
    return documented_layout(count, (size_t)in->n_rec, (size_t)in->n_embd, (size_t)in->n_ff)
        .size;
}

/* A record over a caller-held chunk buffer (chunk_bytes(info, 1) bytes)
 * made of one record's slots, for decoding without a reader. */
FX pi_trace_record record_of(const pi_trace_info *info, const uint8_t *slots, uint8_t *buf)
{
    documented_chunk(buf, info, 1, NULL, NULL, slots);
    pi_trace_record rec = { 0 };
    rec.info = info;
    rec.chunk = buf;
    rec.count = 1;
    rec.j = 0;
    return rec;
}

/* ---- checking what a reader delivers ------------------------------------ */

/* Reads n records from r, the whole of a part written by write_trace(seed),
 * and checks each against make_slots(seed): token, position, which part,
 * where it lies in its chunk (PI_TRACE_CHUNK records a chunk, the last one
 * partial), and its decoded values against a direct decode of the slots. */
FX void expect_records(pi_trace_reader *r, const pi_trace_info *want, int n, uint64_t seed,
                       int part, int64_t first_index)
{
    pi_err err;
    uint8_t *slots = malloc(pi_trace_record_size(want));
    uint8_t *one = malloc(chunk_bytes(want, 1));
    size_t nx = (size_t)want->n_embd, na = (size_t)want->n_ff;
    float *x = malloc(sizeof *x * nx), *x2 = malloc(sizeof *x * nx);
    float *a = malloc(sizeof *a * na), *a2 = malloc(sizeof *a * na);
    assert_true(slots && one && x && x2 && a && a2);
    for (int i = 0; i < n; i++) {
        pi_trace_record rec;
        int got = pi_trace_next(r, &rec, &err);
        if (got != 1)
            fail_msg("record %d: got %d (%s)", i, got, got < 0 ? err.msg : "end");
        assert_int_equal(rec.part, part);
        assert_int_equal(rec.index, first_index + i);
        assert_int_equal(rec.token, 1000 + i);
        assert_int_equal(rec.pos, i % 7);
        assert_int_equal(rec.info->n_rec, want->n_rec);
        assert_memory_equal(rec.info->layer, want->layer,
                            sizeof want->layer[0] * (size_t)want->n_rec);
        int first = i / PI_TRACE_CHUNK * PI_TRACE_CHUNK;
        int count = n - first < PI_TRACE_CHUNK ? n - first : PI_TRACE_CHUNK;
        if (rec.j != i - first || rec.count != count)
            fail_msg("record %d of %d: record %d of a chunk of %d, wanted %d of %d", i, n,
                     rec.j, rec.count, i - first, count);
        make_slots(want, seed, i, slots);
        pi_trace_record direct = record_of(want, slots, one);
        for (int s = 0; s < want->n_rec; s++) {
            pi_trace_decode_x(&rec, s, x);
            pi_trace_decode_x(&direct, s, x2);
            assert_memory_equal(x, x2, sizeof *x * nx);
            float max, max2;
            const uint8_t *codes = pi_trace_act_codes(&rec, s, &max);
            const uint8_t *codes2 = pi_trace_act_codes(&direct, s, &max2);
            assert_memory_equal(&max, &max2, 4);
            assert_memory_equal(codes, codes2, na);
            /* The slot as encoded: its codes directly. */
            assert_memory_equal(codes, slots + (size_t)s * pi_trace_slot_size(want) + 8 + nx,
                                na);
            pi_trace_decode_act(&rec, s, a);
            pi_trace_decode_act(&direct, s, a2);
            assert_memory_equal(a, a2, sizeof *a * na);
        }
    }
    free(slots);
    free(one);
    free(x);
    free(x2);
    free(a);
    free(a2);
}

FX void expect_end(pi_trace_reader *r)
{
    pi_err err;
    pi_trace_record rec;
    int got = pi_trace_next(r, &rec, &err);
    if (got != 0)
        fail_msg("wanted the end, got %d (%s)", got, got < 0 ? err.msg : "a record");
    assert_int_equal(pi_trace_next(r, &rec, &err), 0); /* and it stays there */
}

#endif
