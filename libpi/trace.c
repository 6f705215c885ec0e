/*
 * trace: the profiling trace format (see trace.h and man/pi-trace.5).
 *
 * Decompressed layout, all integers little-endian:
 *   header  "PI-TRACE", u32 version, u32 header bytes, u64 fingerprint,
 *           u32 n_layer, n_embd, n_ff, x encoding, act encoding, ctx, every,
 *           u64 seed, u32 n_rec, u32 name length, the name, n_rec u32 layers
 *   chunk   "TCHK", u32 count (1..PI_TRACE_CHUNK), then for its records
 *           i32 token[count], i32 position[count],
 *           f32 x scale[n_rec][count], int8 x[n_rec][count][n_embd],
 *           f32 act maximum[n_rec][count], u8 codes[n_rec][count][n_ff]
 *
 * Records travel in chunks, stored column by column, because zstd's entropy
 * coder keeps one table per block: interleaving int8 inputs with activation
 * codes record by record mixes two distributions and cost 13% in size.
 */
#include "trace.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "outfile.h"

#define HEADER_FIXED 68
#define MAX_DIM (1 << 20)
#define MAX_RECORD ((size_t)256 << 20)

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> 8 * i);
}

static void put_u64(uint8_t *p, uint64_t v)
{
    put_u32(p, (uint32_t)v);
    put_u32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const uint8_t *p) { return get_u32(p) | (uint64_t)get_u32(p + 4) << 32; }

static float get_f32(const uint8_t *p)
{
    uint32_t u = get_u32(p);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void put_f32(uint8_t *p, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    put_u32(p, u);
}

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

size_t pi_trace_slot_size(const pi_trace_info *info)
{
    return 8 + (size_t)info->n_embd + (size_t)info->n_ff;
}

size_t pi_trace_record_size(const pi_trace_info *info)
{
    return 12 + (size_t)info->n_rec * pi_trace_slot_size(info);
}

int pi_trace_slot(const pi_trace_info *info, int il)
{
    for (int s = 0; s < info->n_rec; s++)
        if (info->layer[s] == il)
            return s;
    return -1;
}

/* --- encoding --- */

static void encode_x(const float *x, int n, uint8_t *out)
{
    float amax = 0.0f;
    for (int i = 0; i < n; i++)
        if (isfinite(x[i]) && fabsf(x[i]) > amax)
            amax = fabsf(x[i]);
    /* inv in double: 127 / amax overflows a float when amax < 4e-37. */
    float scale = amax / 127.0f;
    double inv = amax > 0.0f ? 127.0 / amax : 0.0;
    put_f32(out, scale);
    for (int i = 0; i < n; i++) {
        float v = isfinite(x[i]) ? (float)(x[i] * inv) : 0.0f;
        out[4 + i] = (uint8_t)(int8_t)lrintf(v);
    }
}

/* The half-octave bin of a non-negative finite float: its exponent and
 * first mantissa bit.  Exact and cheap, which matters at 46,000 neurons per
 * token; the bins are 1.5 and 4/3 wide in turn rather than sqrt(2). */
static uint32_t bin_of(float a) { return f32_bits(a) >> 22; }

static void encode_act(const float *act, int n, uint8_t *out)
{
    float amax = 0.0f;
    for (int i = 0; i < n; i++) {
        float a = fabsf(act[i]);
        if (isfinite(a) && a > amax)
            amax = a;
    }
    put_f32(out, amax);
    uint32_t kmax = bin_of(amax);
    for (int i = 0; i < n; i++) {
        float a = fabsf(act[i]);
        uint32_t d = kmax - bin_of(a); /* a <= amax, so no wrap for finite a */
        out[4 + i] = isfinite(a) && a > 0.0f && d < PI_TRACE_ACT_CODES
                         ? (uint8_t)(PI_TRACE_ACT_CODES - d) : 0;
    }
}

void pi_trace_encode(const pi_trace_info *info, const float *x, const float *act, uint8_t *slot)
{
    encode_x(x, info->n_embd, slot);
    encode_act(act, info->n_ff, slot + 4 + info->n_embd);
}

float pi_trace_code_value(float max, int code)
{
    if (code <= 0 || code > PI_TRACE_ACT_CODES || !(max > 0.0f))
        return 0.0f;
    int64_t key = (int64_t)bin_of(max) - (PI_TRACE_ACT_CODES - code);
    if (key <= 0)
        return 0.0f;
    uint32_t lo_bits = (uint32_t)key << 22;
    float lo;
    memcpy(&lo, &lo_bits, 4);
    /* The middle of [2^e, 1.5 2^e) or [1.5 2^e, 2^(e+1)). */
    return key & 1 ? lo * (7.0f / 6.0f) : lo * 1.25f;
}

/* Where each column of a chunk of `count` records starts. */
typedef struct chunk_layout {
    size_t tok, pos, xscale, x, amax, codes, size;
} chunk_layout;

static chunk_layout layout(const pi_trace_info *in, size_t count)
{
    chunk_layout l;
    size_t cr = count * (size_t)in->n_rec;
    l.tok = 8;
    l.pos = l.tok + 4 * count;
    l.xscale = l.pos + 4 * count;
    l.x = l.xscale + 4 * cr;
    l.amax = l.x + cr * (size_t)in->n_embd;
    l.codes = l.amax + 4 * cr;
    l.size = l.codes + cr * (size_t)in->n_ff;
    return l;
}

/* Record j's slot s within a chunk is row s * count + j of each column. */
static size_t row(const pi_trace_record *rec, int slot)
{
    return (size_t)slot * (size_t)rec->count + (size_t)rec->j;
}

void pi_trace_decode_x_row(float scale, const int8_t *q, int n, float *x)
{
    for (int i = 0; i < n; i++)
        x[i] = scale * (float)q[i];
}

void pi_trace_decode_act_row(float max, const uint8_t *codes, int n, float *act)
{
    float value[PI_TRACE_ACT_CODES + 1];
    for (int c = 0; c <= PI_TRACE_ACT_CODES; c++)
        value[c] = pi_trace_code_value(max, c);
    for (int i = 0; i < n; i++)
        act[i] = value[codes[i]];
}

void pi_trace_decode_x(const pi_trace_record *rec, int slot, float *x)
{
    float scale;
    const int8_t *q = pi_trace_x_raw(rec, slot, &scale);
    pi_trace_decode_x_row(scale, q, rec->info->n_embd, x);
}

const int8_t *pi_trace_x_raw(const pi_trace_record *rec, int slot, float *scale)
{
    chunk_layout l = layout(rec->info, (size_t)rec->count);
    size_t r = row(rec, slot);
    *scale = get_f32(rec->chunk + l.xscale + 4 * r);
    return (const int8_t *)(rec->chunk + l.x + r * (size_t)rec->info->n_embd);
}

const uint8_t *pi_trace_act_codes(const pi_trace_record *rec, int slot, float *max)
{
    chunk_layout l = layout(rec->info, (size_t)rec->count);
    size_t r = row(rec, slot);
    *max = get_f32(rec->chunk + l.amax + 4 * r);
    return rec->chunk + l.codes + r * (size_t)rec->info->n_ff;
}

void pi_trace_decode_act(const pi_trace_record *rec, int slot, float *act)
{
    float max;
    const uint8_t *codes = pi_trace_act_codes(rec, slot, &max);
    pi_trace_decode_act_row(max, codes, rec->info->n_ff, act);
}

/* --- header --- */

static int check_info(const pi_trace_info *in, const char *name, pi_err *err)
{
    if (in->n_layer < 1 || in->n_layer > PI_TRACE_MAX_LAYERS || in->n_embd < 1 ||
        in->n_embd > MAX_DIM || in->n_ff < 1 || in->n_ff > MAX_DIM)
        return pi_err_set(err, "%s: implausible shape in header (%d layers, %d x %d)", name,
                          in->n_layer, in->n_embd, in->n_ff);
    if (in->x_encoding != PI_TRACE_X_I8 || in->act_encoding != PI_TRACE_ACT_LOG2H)
        return pi_err_set(err, "%s: unknown encoding %d/%d (this pi reads %d/%d)", name,
                          in->x_encoding, in->act_encoding, PI_TRACE_X_I8, PI_TRACE_ACT_LOG2H);
    if (in->n_rec < 1 || in->n_rec > in->n_layer)
        return pi_err_set(err, "%s: %d recorded layers of %d", name, in->n_rec, in->n_layer);
    for (int s = 0; s < in->n_rec; s++)
        if (in->layer[s] < 0 || in->layer[s] >= in->n_layer || (s && in->layer[s] <= in->layer[s - 1]))
            return pi_err_set(err, "%s: bad list of recorded layers in header", name);
    if (pi_trace_record_size(in) > MAX_RECORD / PI_TRACE_CHUNK)
        return pi_err_set(err, "%s: records of %zu bytes are too large", name,
                          pi_trace_record_size(in));
    return 0;
}

static size_t header_size(const pi_trace_info *in)
{
    return HEADER_FIXED + strlen(in->model) + 4 * (size_t)in->n_rec;
}

static void put_header(const pi_trace_info *in, uint8_t *p)
{
    size_t nl = strlen(in->model);
    memcpy(p, "PI-TRACE", 8);
    put_u32(p + 8, PI_TRACE_VERSION);
    put_u32(p + 12, (uint32_t)header_size(in));
    put_u64(p + 16, in->fingerprint);
    const int32_t v[] = { in->n_layer, in->n_embd, in->n_ff, in->x_encoding, in->act_encoding,
                          in->ctx, in->every };
    for (int i = 0; i < 7; i++)
        put_u32(p + 24 + 4 * i, (uint32_t)v[i]);
    put_u64(p + 52, in->seed);
    put_u32(p + 60, (uint32_t)in->n_rec);
    put_u32(p + 64, (uint32_t)nl);
    memcpy(p + HEADER_FIXED, in->model, nl);
    for (int s = 0; s < in->n_rec; s++)
        put_u32(p + HEADER_FIXED + nl + 4 * s, (uint32_t)in->layer[s]);
}

/* Parses a header of size bytes at p (size already read from p + 12). */
static int get_header(const uint8_t *p, size_t size, pi_trace_info *in, const char *name,
                      pi_err *err)
{
    memset(in, 0, sizeof *in);
    if (get_u32(p + 8) != PI_TRACE_VERSION)
        return pi_err_set(err, "%s: trace version %u (this pi reads %d)", name, get_u32(p + 8),
                          PI_TRACE_VERSION);
    in->fingerprint = get_u64(p + 16);
    int32_t *v[] = { &in->n_layer, &in->n_embd, &in->n_ff, &in->x_encoding, &in->act_encoding,
                     &in->ctx, &in->every };
    for (int i = 0; i < 7; i++) {
        uint32_t u = get_u32(p + 24 + 4 * i);
        *v[i] = u > (uint32_t)INT32_MAX ? -1 : (int32_t)u;
    }
    in->seed = get_u64(p + 52);
    uint32_t n_rec = get_u32(p + 60), nl = get_u32(p + 64);
    if (nl >= sizeof in->model || n_rec > PI_TRACE_MAX_LAYERS ||
        size != HEADER_FIXED + nl + 4 * (size_t)n_rec)
        return pi_err_set(err, "%s: malformed trace header", name);
    memcpy(in->model, p + HEADER_FIXED, nl);
    if (memchr(in->model, 0, nl))
        return pi_err_set(err, "%s: malformed trace header", name);
    in->n_rec = (int)n_rec;
    for (uint32_t s = 0; s < n_rec; s++) {
        uint32_t l = get_u32(p + HEADER_FIXED + nl + 4 * s);
        in->layer[s] = l > (uint32_t)INT32_MAX ? -1 : (int32_t)l;
    }
    return check_info(in, name, err);
}

/* --- writing --- */

struct pi_trace_writer {
    FILE *f;
    char *path, *tmp; /* tmp NULL when writing to standard output */
    ZSTD_CCtx *cctx;
    uint8_t *out;
    size_t out_cap;
    pi_trace_info info;
    chunk_layout full; /* the chunk buffer: PI_TRACE_CHUNK records' columns */
    uint8_t *chunk;
    int count;
    uint64_t bytes;
};

static int compress(pi_trace_writer *w, const void *src, size_t n, ZSTD_EndDirective mode,
                    pi_err *err)
{
    ZSTD_inBuffer in = { src, n, 0 };
    for (;;) {
        ZSTD_outBuffer out = { w->out, w->out_cap, 0 };
        size_t left = ZSTD_compressStream2(w->cctx, &out, &in, mode);
        if (ZSTD_isError(left))
            return pi_err_set(err, "%s: zstd: %s", w->path, ZSTD_getErrorName(left));
        if (out.pos && fwrite(w->out, 1, out.pos, w->f) != out.pos)
            return pi_err_set(err, "%s: %s", w->path, strerror(errno));
        w->bytes += out.pos;
        if (mode == ZSTD_e_end ? left == 0 : in.pos == in.size)
            return 0;
    }
}

/* Writes the buffered records as one chunk: each column's first `count`
 * rows of every slot, in order. */
static int flush_chunk(pi_trace_writer *w, pi_err *err)
{
    if (!w->count)
        return 0;
    const chunk_layout *l = &w->full;
    size_t c = (size_t)w->count, cap = PI_TRACE_CHUNK;
    uint8_t head[8];
    memcpy(head, "TCHK", 4);
    put_u32(head + 4, (uint32_t)c);
    int rc = compress(w, head, 8, ZSTD_e_continue, err) ||
             compress(w, w->chunk + l->tok, 4 * c, ZSTD_e_continue, err) ||
             compress(w, w->chunk + l->pos, 4 * c, ZSTD_e_continue, err);
    const struct { size_t at, width; } col[] = {
        { l->xscale, 4 }, { l->x, (size_t)w->info.n_embd }, { l->amax, 4 },
        { l->codes, (size_t)w->info.n_ff } };
    for (int k = 0; k < 4 && !rc; k++)
        for (int s = 0; s < w->info.n_rec && !rc; s++)
            rc = compress(w, w->chunk + col[k].at + (size_t)s * cap * col[k].width,
                          c * col[k].width, ZSTD_e_continue, err);
    w->count = 0;
    return rc ? -1 : 0;
}

pi_trace_writer *pi_trace_writer_open(const char *path, const pi_trace_info *info, int level,
                                      pi_err *err)
{
    if (check_info(info, path, err))
        return NULL;
    pi_trace_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(path))) {
        free(w);
        pi_err_set(err, "out of memory");
        return NULL;
    }
    if (strcmp(path, "-") == 0) {
        w->f = stdout;
    } else {
        int fd = pi_outfile_create(path, &w->tmp, err);
        if (fd >= 0 && !(w->f = fdopen(fd, "wb"))) {
            pi_err_set(err, "%s: cannot create: %s", path, strerror(errno));
            close(fd);
        }
        if (!w->f) {
            pi_outfile_discard(w->tmp);
            free(w->path);
            free(w);
            return NULL;
        }
    }
    w->info = *info;
    w->full = layout(info, PI_TRACE_CHUNK);
    w->out_cap = ZSTD_CStreamOutSize();
    size_t hs = header_size(info);
    uint8_t *hdr = malloc(hs);
    w->out = malloc(w->out_cap);
    w->chunk = malloc(w->full.size);
    w->cctx = ZSTD_createCCtx();
    int rc = -1;
    if (!hdr || !w->out || !w->chunk || !w->cctx) {
        pi_err_set(err, "out of memory");
    } else {
        ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, level ? level : 3);
        ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 1); /* corruption is detected */
        put_header(info, hdr);
        rc = compress(w, hdr, hs, ZSTD_e_continue, err);
    }
    free(hdr);
    if (rc) {
        pi_trace_writer_abort(w);
        return NULL;
    }
    return w;
}

int pi_trace_write(pi_trace_writer *w, int32_t token, int32_t pos, const uint8_t *slots,
                   pi_err *err)
{
    const chunk_layout *l = &w->full;
    size_t j = (size_t)w->count, cap = PI_TRACE_CHUNK, d = (size_t)w->info.n_embd;
    size_t ff = (size_t)w->info.n_ff, ss = pi_trace_slot_size(&w->info);
    put_u32(w->chunk + l->tok + 4 * j, (uint32_t)token);
    put_u32(w->chunk + l->pos + 4 * j, (uint32_t)pos);
    for (int s = 0; s < w->info.n_rec; s++) {
        const uint8_t *src = slots + (size_t)s * ss;
        size_t r = (size_t)s * cap + j;
        memcpy(w->chunk + l->xscale + 4 * r, src, 4);
        memcpy(w->chunk + l->x + r * d, src + 4, d);
        memcpy(w->chunk + l->amax + 4 * r, src + 4 + d, 4);
        memcpy(w->chunk + l->codes + r * ff, src + 8 + d, ff);
    }
    return ++w->count == PI_TRACE_CHUNK ? flush_chunk(w, err) : 0;
}

uint64_t pi_trace_writer_bytes(const pi_trace_writer *w) { return w->bytes; }

static void writer_free(pi_trace_writer *w)
{
    ZSTD_freeCCtx(w->cctx);
    free(w->out);
    free(w->chunk);
    free(w->tmp);
    free(w->path);
    free(w);
}

int pi_trace_writer_commit(pi_trace_writer *w, pi_err *err)
{
    int rc = flush_chunk(w, err);
    if (!rc)
        rc = compress(w, NULL, 0, ZSTD_e_end, err);
    if (!rc && (fflush(w->f) || ferror(w->f)))
        rc = pi_err_set(err, "%s: %s", w->path, strerror(errno));
    if (w->f == stdout) {
        writer_free(w);
        return rc;
    }
    if (fclose(w->f) && !rc)
        rc = pi_err_set(err, "%s: %s", w->path, strerror(errno));
    w->f = NULL;
    if (!rc)
        rc = pi_outfile_commit(w->tmp, w->path, err);
    else
        pi_outfile_discard(w->tmp);
    w->tmp = NULL; /* freed by either */
    writer_free(w);
    return rc;
}

void pi_trace_writer_abort(pi_trace_writer *w)
{
    if (!w)
        return;
    if (w->f != stdout) { /* a file of ours, or a device written in place */
        if (w->f)
            fclose(w->f);
        pi_outfile_discard(w->tmp);
        w->tmp = NULL;
    } else {
        fflush(w->f);
    }
    writer_free(w);
}

/* --- reading --- */

struct pi_trace_reader {
    FILE *f;
    bool own;
    char name[256];
    ZSTD_DCtx *dctx;
    uint8_t *in;
    size_t in_cap;
    ZSTD_inBuffer zin;
    uint8_t *buf; /* decompressed bytes [pos, len) not yet consumed */
    size_t cap, pos, len;
    size_t frame_left; /* zstd's last answer: 0 when a frame just ended */
    bool pending;      /* zstd filled the output: it may hold more */
    bool eof, started;
    pi_trace_info first, cur;
    size_t chunk_size; /* bytes of the chunk being handed out, at pos */
    int chunk_count, chunk_next;
    int part;
    int64_t records;
};

/* Makes at least need bytes available; 0 when the input ends first. */
static int fill(pi_trace_reader *r, size_t need, pi_err *err)
{
    while (r->len - r->pos < need) {
        if (r->pos) {
            memmove(r->buf, r->buf + r->pos, r->len - r->pos);
            r->len -= r->pos;
            r->pos = 0;
        }
        size_t want = need + ZSTD_DStreamOutSize();
        if (r->cap < want) {
            uint8_t *b = realloc(r->buf, want);
            if (!b)
                return pi_err_set(err, "out of memory");
            r->buf = b;
            r->cap = want;
        }
        if (r->zin.pos == r->zin.size && !r->pending) {
            if (r->eof)
                return 0;
            size_t got = fread(r->in, 1, r->in_cap, r->f);
            if (ferror(r->f))
                return pi_err_set(err, "%s: %s", r->name, strerror(errno));
            if (got == 0) {
                r->eof = true;
                continue;
            }
            r->started = true;
            r->zin = (ZSTD_inBuffer){ r->in, got, 0 };
        }
        ZSTD_outBuffer out = { r->buf + r->len, r->cap - r->len, 0 };
        size_t ret = ZSTD_decompressStream(r->dctx, &out, &r->zin);
        if (ZSTD_isError(ret)) {
            if (ZSTD_getErrorCode(ret) == ZSTD_error_prefix_unknown)
                return pi_err_set(err, "%s: not a pi trace (not zstd-compressed data)", r->name);
            return pi_err_set(err, "%s: corrupted trace: zstd: %s", r->name,
                              ZSTD_getErrorName(ret));
        }
        r->frame_left = ret;
        r->pending = out.pos == out.size;
        r->len += out.pos;
    }
    return 1;
}

/* What an unexpected end of input means. */
static int ended(pi_trace_reader *r, const char *what, pi_err *err)
{
    if (!r->started)
        return pi_err_set(err, "%s: empty file, not a trace", r->name);
    if (r->frame_left)
        return pi_err_set(err, "%s: truncated trace (the zstd frame is incomplete)", r->name);
    return pi_err_set(err, "%s: truncated trace (%s)", r->name, what);
}

/* Reads a part header at the current position into r->cur. */
static int read_header(pi_trace_reader *r, pi_err *err)
{
    int got = fill(r, 16, err);
    if (got <= 0)
        return got < 0 ? -1 : ended(r, "short header", err);
    const uint8_t *p = r->buf + r->pos;
    if (memcmp(p, "PI-TRACE", 8))
        return pi_err_set(err, "%s: not a pi trace (bad magic)", r->name);
    size_t hs = get_u32(p + 12);
    if (hs < HEADER_FIXED || hs > HEADER_FIXED + 256 + 4 * PI_TRACE_MAX_LAYERS)
        return pi_err_set(err, "%s: malformed trace header", r->name);
    if ((got = fill(r, hs, err)) <= 0)
        return got < 0 ? -1 : ended(r, "short header", err);
    if (get_header(r->buf + r->pos, hs, &r->cur, r->name, err))
        return -1;
    r->pos += hs;
    return 0;
}

static pi_trace_reader *reader_new(FILE *f, bool own, const char *name, pi_err *err)
{
    pi_trace_reader *r = calloc(1, sizeof *r);
    if (!r) {
        if (own)
            fclose(f);
        pi_err_set(err, "out of memory");
        return NULL;
    }
    r->f = f;
    r->own = own;
    snprintf(r->name, sizeof r->name, "%s", name);
    r->in_cap = ZSTD_DStreamInSize();
    r->in = malloc(r->in_cap);
    r->dctx = ZSTD_createDCtx();
    if (!r->in || !r->dctx) {
        pi_err_set(err, "out of memory");
        pi_trace_close(r);
        return NULL;
    }
    if (read_header(r, err)) {
        pi_trace_close(r);
        return NULL;
    }
    r->first = r->cur;
    return r;
}

pi_trace_reader *pi_trace_open(const char *path, pi_err *err)
{
    if (strcmp(path, "-") == 0)
        return reader_new(stdin, false, "(stdin)", err);
    FILE *f = fopen(path, "rb");
    if (!f) {
        pi_err_set(err, "%s: %s", path, strerror(errno));
        return NULL;
    }
    return reader_new(f, true, path, err);
}

pi_trace_reader *pi_trace_open_file(void *fp, const char *name, pi_err *err)
{
    return reader_new(fp, false, name, err);
}

void pi_trace_close(pi_trace_reader *r)
{
    if (!r)
        return;
    if (r->own)
        fclose(r->f);
    ZSTD_freeDCtx(r->dctx);
    free(r->in);
    free(r->buf);
    free(r);
}

const pi_trace_info *pi_trace_reader_info(const pi_trace_reader *r) { return &r->first; }

/* A chunk's scales must be finite and non-negative and its codes in range,
 * so that decoding cannot fail. */
static int check_chunk(pi_trace_reader *r, const uint8_t *c, const chunk_layout *l, size_t count,
                       pi_err *err)
{
    size_t rows = count * (size_t)r->cur.n_rec;
    for (size_t i = 0; i < rows; i++) {
        float xs = get_f32(c + l->xscale + 4 * i), am = get_f32(c + l->amax + 4 * i);
        if (!isfinite(xs) || xs < 0.0f || !isfinite(am) || am < 0.0f)
            return pi_err_set(err, "%s: corrupted trace (bad scale near record %lld)", r->name,
                              (long long)r->records);
    }
    for (size_t i = 0; i < rows * (size_t)r->cur.n_ff; i++)
        if (c[l->codes + i] > PI_TRACE_ACT_CODES)
            return pi_err_set(err, "%s: corrupted trace (bad code near record %lld)", r->name,
                              (long long)r->records);
    return 0;
}

static bool same_model(const pi_trace_info *a, const pi_trace_info *b)
{
    return a->fingerprint == b->fingerprint && a->n_layer == b->n_layer &&
           a->n_embd == b->n_embd && a->n_ff == b->n_ff;
}

/* Moves to the next chunk, reading any part headers on the way: 1, 0 at
 * the end of the trace, -1 on an error. */
static int next_chunk(pi_trace_reader *r, pi_err *err)
{
    r->pos += r->chunk_size;
    r->chunk_size = 0;
    for (;;) {
        int got = fill(r, 4, err);
        if (got < 0)
            return -1;
        if (got == 0) {
            if (r->len > r->pos)
                return ended(r, "short chunk", err);
            return r->frame_left ? ended(r, "", err) : 0;
        }
        const uint8_t *p = r->buf + r->pos;
        if (memcmp(p, "PI-T", 4) == 0) { /* the next part of a concatenation */
            if (read_header(r, err))
                return -1;
            r->part++;
            if (!same_model(&r->first, &r->cur))
                return pi_err_set(err, "%s: part %d was recorded from another model "
                                  "(fingerprint %016llx, the first part's is %016llx)",
                                  r->name, r->part + 1, (unsigned long long)r->cur.fingerprint,
                                  (unsigned long long)r->first.fingerprint);
            continue;
        }
        if (memcmp(p, "TCHK", 4))
            return pi_err_set(err, "%s: corrupted trace (bad chunk tag after record %lld)",
                              r->name, (long long)r->records);
        if ((got = fill(r, 8, err)) <= 0)
            return got < 0 ? -1 : ended(r, "short chunk", err);
        uint32_t count = get_u32(r->buf + r->pos + 4);
        if (count < 1 || count > PI_TRACE_CHUNK)
            return pi_err_set(err, "%s: corrupted trace (a chunk of %u records)", r->name, count);
        chunk_layout l = layout(&r->cur, count);
        if ((got = fill(r, l.size, err)) <= 0)
            return got < 0 ? -1 : ended(r, "short chunk", err);
        if (check_chunk(r, r->buf + r->pos, &l, count, err))
            return -1;
        r->chunk_size = l.size;
        r->chunk_count = (int)count;
        r->chunk_next = 0;
        return 1;
    }
}

int pi_trace_next(pi_trace_reader *r, pi_trace_record *rec, pi_err *err)
{
    if (r->chunk_next == r->chunk_count) {
        int got = next_chunk(r, err);
        if (got <= 0)
            return got;
    }
    const uint8_t *c = r->buf + r->pos;
    chunk_layout l = layout(&r->cur, (size_t)r->chunk_count);
    int j = r->chunk_next++;
    rec->info = &r->cur;
    rec->part = r->part;
    rec->index = r->records++;
    rec->token = (int32_t)get_u32(c + l.tok + 4 * (size_t)j);
    rec->pos = (int32_t)get_u32(c + l.pos + 4 * (size_t)j);
    rec->chunk = c;
    rec->count = r->chunk_count;
    rec->j = j;
    return 1;
}
