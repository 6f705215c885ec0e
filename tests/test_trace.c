/*
 * Tests of the profiling trace (libpi/trace.c), the well-formed side: the
 * two encodings, the documented layout of headers and chunks, write and read
 * round trips across chunk boundaries, concatenated parts, and the writer's
 * handling of its file.  Damaged and hostile input: tests/test_trace_bad.c.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "trace.h"
#include "trace_fixture.h"

static int compare_names(const void *a, const void *b) { return strcmp(a, b); }

/* Names in the directory, sorted and space-separated ("" when empty). */
static void tdir_list(const tdir *d, char *out, size_t cap)
{
    char names[16][256];
    int n = 0;
    DIR *dir = opendir(d->path);
    assert_non_null(dir);
    for (struct dirent *e; (e = readdir(dir));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && n < 16)
            snprintf(names[n++], sizeof names[0], "%s", e->d_name);
    closedir(dir);
    qsort(names, (size_t)n, sizeof names[0], compare_names);
    out[0] = 0;
    for (int i = 0; i < n; i++)
        snprintf(out + strlen(out), cap - strlen(out), "%s%s", i ? " " : "", names[i]);
}

/* ---- encodings ---------------------------------------------------------- */

static void test_x_round_trips_within_half_a_step(void **state)
{
    (void)state;
    enum { N = 1000 };
    int layer0 = 0;
    pi_trace_info info;
    make_info(&info, 1, 1, N, 4, 1, &layer0);
    uint8_t *slot = malloc(pi_trace_slot_size(&info)), *buf = malloc(chunk_bytes(&info, 1));
    assert_non_null(slot);
    assert_non_null(buf);
    float x[N], y[N], act[4] = { 0 };
    uint64_t s = 42;
    const float scales[] = { 1.0f, 3.0e-3f, 7.5e4f, 1e-30f, 1e30f };
    for (size_t t = 0; t < sizeof scales / sizeof scales[0]; t++) {
        for (int i = 0; i < N; i++)
            x[i] = scales[t] * uniform(&s);
        x[17] = -scales[t]; /* the maximum magnitude is negative */
        pi_trace_encode(&info, x, act, slot);
        pi_trace_record rec = record_of(&info, slot, buf);
        pi_trace_decode_x(&rec, 0, y);
        float scale;
        memcpy(&scale, slot, 4);
        assert_true(scale > 0.0f);
        assert_true(fabsf(scale * 127.0f - scales[t]) <= scales[t] * 1e-6f);
        for (int i = 0; i < N; i++)
            if (!(fabsf(y[i] - x[i]) <= scale * 0.5f * (1.0f + 1e-5f)))
                fail_msg("scale %g: x[%d] = %.9g came back as %.9g (step %g)", scales[t], i,
                         x[i], y[i], scale);
        assert_true(y[17] == -scales[t] || fabsf(y[17] + scales[t]) <= scales[t] * 1e-6f);
    }
    free(slot);
    free(buf);
}

static void test_x_stores_non_finite_values_and_zero_rows_as_zero(void **state)
{
    (void)state;
    int layer0 = 0;
    pi_trace_info info;
    make_info(&info, 1, 1, 6, 1, 1, &layer0);
    uint8_t slot[8 + 6 + 1], buf[16 + sizeof slot];
    assert_int_equal(chunk_bytes(&info, 1), sizeof buf);
    float x[6] = { 1.0f, NAN, -INFINITY, INFINITY, -0.5f, 0.0f }, y[6], act[1] = { 0 };
    pi_trace_encode(&info, x, act, slot);
    pi_trace_record rec = record_of(&info, slot, buf);
    pi_trace_decode_x(&rec, 0, y);
    const float want[6] = { 1.0f, 0.0f, 0.0f, 0.0f, -0.5f, 0.0f };
    for (int i = 0; i < 6; i++)
        assert_true(fabsf(y[i] - want[i]) <= 0.5f / 127.0f);
    assert_true(y[1] == 0.0f && y[2] == 0.0f && y[3] == 0.0f && y[5] == 0.0f);

    float zeros[6] = { 0 }, nans[6] = { NAN, NAN, NAN, NAN, NAN, NAN };
    pi_trace_encode(&info, zeros, act, slot);
    rec = record_of(&info, slot, buf);
    pi_trace_decode_x(&rec, 0, y);
    for (int i = 0; i < 6; i++)
        assert_true(y[i] == 0.0f);
    pi_trace_encode(&info, nans, act, slot);
    rec = record_of(&info, slot, buf);
    pi_trace_decode_x(&rec, 0, y);
    for (int i = 0; i < 6; i++)
        assert_true(y[i] == 0.0f);
}

/* A row far below float's normal range must still be quantised against its
 * own maximum, not collapse to zeros (127 / max overflows a float there). */
static void test_x_keeps_rows_of_tiny_values(void **state)
{
    (void)state;
    int layer0 = 0;
    pi_trace_info info;
    make_info(&info, 1, 1, 4, 1, 1, &layer0);
    uint8_t slot[8 + 4 + 1], buf[16 + sizeof slot];
    float x[4] = { 1e-38f, -5e-39f, 0.0f, 2.5e-39f }, y[4], act[1] = { 0 };
    pi_trace_encode(&info, x, act, slot);
    pi_trace_record rec = record_of(&info, slot, buf);
    pi_trace_decode_x(&rec, 0, y);
    float scale;
    memcpy(&scale, slot, 4);
    for (int i = 0; i < 4; i++)
        if (!(fabsf(y[i] - x[i]) <= scale))
            fail_msg("x[%d] = %g came back as %g (step %g)", i, x[i], y[i], scale);
    assert_true(y[0] > 0.0f && y[1] < 0.0f && y[2] == 0.0f);
}

/* The half-octave bin of a positive float, as the format defines it. */
static int bin_of(float a)
{
    uint32_t u;
    memcpy(&u, &a, 4);
    return (int)(u >> 22);
}

/* Encodes a slot of n_embd 1 and reads its codes back through a record over
 * buf (chunk_bytes(info, 1) bytes), where they stay. */
static void encode_acts(const pi_trace_info *info, const float *act, uint8_t *slot, uint8_t *buf,
                        float *max, const uint8_t **codes)
{
    float x[1] = { 0 };
    pi_trace_encode(info, x, act, slot);
    pi_trace_record rec = record_of(info, slot, buf);
    *codes = pi_trace_act_codes(&rec, 0, max);
    assert_memory_equal(*codes, slot + 8 + 1, (size_t)info->n_ff);
}

static void test_act_codes_count_half_octaves_down_from_the_maximum(void **state)
{
    (void)state;
    enum { N = 12 };
    int layer0 = 0;
    pi_trace_info info;
    make_info(&info, 1, 1, 1, N, 1, &layer0);
    uint8_t slot[8 + 1 + N], buf[16 + sizeof slot];
    const float m = 3.75f; /* bin [3, 4): exponent 1, upper half */
    float act[N] = {
        m,                 /* the maximum: 32 */
        -0.5f,             /* [0.5, 0.75), five bins below: 27 */
        ldexpf(m, -16),    /* exactly 2^-16 of the maximum, 32 bins below: 0 */
        ldexpf(m, -17),    /* below: 0 */
        0.0f,              /* 0 */
        -0.0f,             /* 0 */
        -m,                /* negative: its magnitude, 32 */
        2.0f,              /* [2, 3): one bin below: 31 */
        1.5f,              /* [1.5, 2): 30 */
        ldexpf(1.0f, -14), /* [1, 1.5) 2^-14, 31 bins below: 1 */
        ldexpf(1.9f, -15), /* [1.5, 2) 2^-15, 32 bins below: 0 */
        3.0f,              /* the maximum's bin: 32 */
    };
    float max;
    const uint8_t *codes;
    encode_acts(&info, act, slot, buf, &max, &codes);
    assert_true(max == m);
    const uint8_t want[N] = { 32, 27, 0, 0, 0, 0, 32, 31, 30, 1, 0, 32 };
    for (int i = 0; i < N; i++)
        if (codes[i] != want[i])
            fail_msg("act[%d] = %g: code %d, wanted %d", i, act[i], codes[i], want[i]);

    /* Negative values keep their magnitude: a row and its negation code
     * alike. */
    float neg[N];
    uint8_t slot2[sizeof slot], buf2[sizeof buf];
    for (int i = 0; i < N; i++)
        neg[i] = -act[i];
    float max2;
    const uint8_t *codes2;
    encode_acts(&info, neg, slot2, buf2, &max2, &codes2);
    assert_true(max2 == m);
    assert_memory_equal(codes, codes2, N);
}

static void test_act_code_values_lie_inside_their_bins(void **state)
{
    (void)state;
    enum { N = 4096 };
    int layer0 = 0;
    pi_trace_info info;
    make_info(&info, 1, 1, 1, N, 1, &layer0);
    uint8_t *slot = malloc(pi_trace_slot_size(&info)), *buf = malloc(chunk_bytes(&info, 1));
    float *act = malloc(sizeof *act * N), *dec = malloc(sizeof *dec * N);
    assert_non_null(slot);
    assert_non_null(buf);
    assert_non_null(act);
    assert_non_null(dec);
    uint64_t s = 7;
    for (int round = 0; round < 50; round++) {
        float scale = ldexpf(1.0f, (int)(next_random(&s) % 200) - 100);
        for (int i = 0; i < N; i++)
            act[i] = scale * spread(&s);
        float max;
        const uint8_t *codes;
        encode_acts(&info, act, slot, buf, &max, &codes);
        pi_trace_record rec = record_of(&info, slot, buf);
        pi_trace_decode_act(&rec, 0, dec);
        for (int i = 0; i < N; i++) {
            float a = fabsf(act[i]);
            assert_true(a <= max);
            int d = bin_of(max) - bin_of(a);
            int want = a > 0.0f && d < PI_TRACE_ACT_CODES ? PI_TRACE_ACT_CODES - d : 0;
            if (codes[i] != want)
                fail_msg("%g of max %g: code %d, wanted %d", a, max, codes[i], want);
            if (a <= ldexpf(max, -16))
                assert_int_equal(codes[i], 0);
            float v = pi_trace_code_value(max, codes[i]);
            assert_true(dec[i] == v);
            if (codes[i] == 0) {
                assert_true(v == 0.0f);
                /* 16 octaves below the maximum's bin, which is at most
                 * 1.5 times as wide as the maximum. */
                assert_true(a < 1.5f * ldexpf(max, -16));
                continue;
            }
            if (bin_of(v) != bin_of(a))
                fail_msg("%g (code %d of max %g) decodes to %g, outside its bin", a, codes[i],
                         max, v);
            /* The middle of the bin: 1.25 2^e or 1.75 2^e. */
            int e;
            float frac = frexpf(v, &e);
            assert_true(frac == 0.625f || frac == 0.875f);
        }
    }
    assert_true(pi_trace_code_value(1.0f, 0) == 0.0f);
    assert_true(pi_trace_code_value(1.0f, 32) == 1.25f);
    assert_true(pi_trace_code_value(1.5f, 32) == 1.75f);
    assert_true(pi_trace_code_value(1.0f, 31) == 0.875f);
    assert_true(pi_trace_code_value(0.0f, 32) == 0.0f);
    assert_true(pi_trace_code_value(1.0f, 33) == 0.0f);
    free(slot);
    free(buf);
    free(act);
    free(dec);
}

static void test_act_stores_non_finite_values_as_zero(void **state)
{
    (void)state;
    enum { N = 5 };
    int layer0 = 0;
    pi_trace_info info;
    make_info(&info, 1, 1, 1, N, 1, &layer0);
    uint8_t slot[8 + 1 + N], buf[16 + sizeof slot];
    float act[N] = { INFINITY, 0.25f, NAN, -INFINITY, -1.0f };
    float max;
    const uint8_t *codes;
    encode_acts(&info, act, slot, buf, &max, &codes);
    assert_true(max == 1.0f);
    const uint8_t want[N] = { 0, 28, 0, 0, 32 };
    assert_memory_equal(codes, want, N);

    float all_nan[N] = { NAN, NAN, INFINITY, 0.0f, -0.0f };
    encode_acts(&info, all_nan, slot, buf, &max, &codes);
    assert_true(max == 0.0f);
    for (int i = 0; i < N; i++)
        assert_int_equal(codes[i], 0);
}

static void test_slot_finds_recorded_layers_only(void **state)
{
    (void)state;
    const int layers[3] = { 1, 4, 7 };
    pi_trace_info info;
    make_info(&info, 1, 8, 16, 48, 3, layers);
    assert_int_equal(pi_trace_slot(&info, 1), 0);
    assert_int_equal(pi_trace_slot(&info, 4), 1);
    assert_int_equal(pi_trace_slot(&info, 7), 2);
    assert_int_equal(pi_trace_slot(&info, 0), -1);
    assert_int_equal(pi_trace_slot(&info, 5), -1);
    assert_int_equal(pi_trace_slot(&info, 8), -1);
    assert_int_equal(pi_trace_slot(&info, -1), -1);
    assert_int_equal(pi_trace_slot_size(&info), 8 + 16 + 48);
    assert_int_equal(pi_trace_record_size(&info), 12 + 3 * (8 + 16 + 48));
}

/* ---- writing and reading ------------------------------------------------ */

static void test_records_round_trip(void **state)
{
    (void)state;
    tdir d;
    tdir_new(&d);
    const int layers[3] = { 0, 2, 5 };
    pi_trace_info info;
    make_info(&info, 0xfeedfacecafebeefull, 6, 40, 100, 3, layers);
    info.ctx = 2048;
    info.every = 3;
    info.seed = UINT64_MAX - 5;
    snprintf(info.model, sizeof info.model, "SmolLM2 135M Instruct \xc3\xa9");
    write_trace(tdir_file(&d, "a.trace"), &info, 9, 11);

    pi_err err;
    pi_trace_reader *r = pi_trace_open(tdir_file(&d, "a.trace"), &err);
    if (!r)
        fail_msg("%s", err.msg);
    const pi_trace_info *got = pi_trace_reader_info(r);
    assert_true(got->fingerprint == info.fingerprint);
    assert_int_equal(got->n_layer, 6);
    assert_int_equal(got->n_embd, 40);
    assert_int_equal(got->n_ff, 100);
    assert_int_equal(got->x_encoding, PI_TRACE_X_I8);
    assert_int_equal(got->act_encoding, PI_TRACE_ACT_LOG2H);
    assert_int_equal(got->n_rec, 3);
    assert_memory_equal(got->layer, layers, sizeof layers);
    assert_int_equal(got->ctx, 2048);
    assert_int_equal(got->every, 3);
    assert_true(got->seed == UINT64_MAX - 5);
    assert_string_equal(got->model, info.model);
    expect_records(r, &info, 9, 11, 0, 0);
    expect_end(r);
    pi_trace_close(r);
    pi_trace_close(NULL);
    tdir_free(&d);
}

/* Records travel PI_TRACE_CHUNK at a time: around and across chunk
 * boundaries they come back whole and in order, each at its place in its
 * chunk (expect_records checks rec.j and rec.count); 150 records are three
 * chunks, of 64, 64 and 22. */
static void test_records_round_trip_across_chunks(void **state)
{
    (void)state;
    tdir d;
    tdir_new(&d);
    const int layers[2] = { 1, 2 };
    pi_trace_info info;
    make_info(&info, 0xabcdefull, 4, 20, 36, 2, layers);
    const int counts[] = { 150, 1, 63, 64, 65, 128, 129 };
    for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++) {
        write_trace(tdir_file(&d, "c.trace"), &info, counts[k], 20 + k);
        pi_err err;
        pi_trace_reader *r = pi_trace_open(tdir_file(&d, "c.trace"), &err);
        if (!r)
            fail_msg("%s", err.msg);
        expect_records(r, &info, counts[k], 20 + k, 0, 0);
        expect_end(r);
        pi_trace_close(r);
    }
    tdir_free(&d);
}

static void test_a_trace_without_records_is_valid(void **state)
{
    (void)state;
    tdir d;
    tdir_new(&d);
    int layer0 = 0;
    pi_trace_info info;
    make_info(&info, 5, 1, 8, 8, 1, &layer0);
    info.model[0] = 0;
    write_trace(tdir_file(&d, "e.trace"), &info, 0, 1);
    pi_err err;
    pi_trace_reader *r = pi_trace_open(tdir_file(&d, "e.trace"), &err);
    if (!r)
        fail_msg("%s", err.msg);
    assert_string_equal(pi_trace_reader_info(r)->model, "");
    expect_end(r);
    pi_trace_close(r);

    /* Only the header: no empty chunk. */
    bytes b = slurp(tdir_file(&d, "e.trace"));
    uint8_t raw[256];
    assert_int_equal(ZSTD_decompress(raw, sizeof raw, b.p, b.n), 68 + 4);
    free(b.p);
    tdir_free(&d);
}

/* A header and a chunk built byte by byte at the offsets man/pi-trace.5
 * gives, decoded as it says. */
static void test_reader_reads_the_documented_layout(void **state)
{
    (void)state;
    enum { C = 3, R = 2, E = 3, F = 5 }; /* documented_header: n_embd 3, n_ff 5 */
    uint8_t raw[512];
    size_t h = documented_header(raw, 1, 4, R, "m");
    /* Tokens at 8, positions at 8 + 4c, x scales at 8 + 8c, x at
     * 8 + 8c + 4cR, maxima at 8 + 8c + 4cR + cRE, codes at 8 + 8c + 8cR +
     * cRE, 8 + 8c + cR(8 + E + F) bytes in all; row s * c + j of each
     * column is slot s of record j. */
    doc_layout l = documented_layout(C, R, E, F);
    assert_true(l.tok == 8 && l.pos == 20 && l.xscale == 32 && l.x == 56 && l.amax == 74 &&
                l.codes == 98 && l.size == 128);
    uint8_t *c = raw + h;
    memset(c, 0xee, 128);
    memcpy(c, "TCHK", 4);
    put_le(c + 4, C, 4);
    const int32_t tok[C] = { -3, 7, 1 << 30 }, pos[C] = { 9, 10, 11 };
    uint8_t slots[C][R][8 + E + F];
    for (int j = 0; j < C; j++) {
        put_le(c + 8 + 4 * j, (uint32_t)tok[j], 4);
        put_le(c + 20 + 4 * j, (uint32_t)pos[j], 4);
        for (int s = 0; s < R; s++) {
            int row = s * C + j;
            const uint8_t q[E] = { 1, 0xff /* -1 */, (uint8_t)(5 + s + 2 * j) };
            const uint8_t codes[F] = { 32, 31, 0, 1, (uint8_t)(30 - j - s) };
            put_float(c + 32 + 4 * row, (float)(j + 1));         /* x scale */
            memcpy(c + 56 + E * row, q, E);                      /* x */
            put_float(c + 74 + 4 * row, ldexpf(1.0f, 1 + s));    /* maximum 2 or 4 */
            memcpy(c + 98 + F * row, codes, F);                  /* codes */
            /* The same as pi_trace_encode lays a slot out. */
            put_float(slots[j][s], (float)(j + 1));
            memcpy(slots[j][s] + 4, q, E);
            put_float(slots[j][s] + 4 + E, ldexpf(1.0f, 1 + s));
            memcpy(slots[j][s] + 8 + E, codes, F);
        }
    }
    for (size_t i = 0; i < 128; i++)
        assert_true(c[i] != 0xee); /* every byte placed (none is 0xee) */
    /* The fixture's chunk builder, used elsewhere, agrees. */
    pi_trace_info di;
    const int dl[R] = { 0, 1 };
    make_info(&di, 1, 4, E, F, R, dl);
    uint8_t again[128];
    assert_int_equal(documented_chunk(again, &di, C, tok, pos, &slots[0][0][0]), 128);
    assert_memory_equal(again, c, 128);
    size_t n = h + 128;

    bytes b = compressed(raw, n);
    FILE *f;
    pi_err err;
    pi_trace_reader *r = open_bytes(b.p, b.n, &f, &err);
    if (!r)
        fail_msg("%s", err.msg);
    const pi_trace_info *info = pi_trace_reader_info(r);
    assert_true(info->fingerprint == 0x1122334455667788ull);
    assert_int_equal(info->n_layer, 4);
    assert_int_equal(info->n_embd, 3);
    assert_int_equal(info->n_ff, 5);
    assert_int_equal(info->ctx, 256);
    assert_int_equal(info->every, 2);
    assert_true(info->seed == 99);
    assert_int_equal(info->n_rec, 2);
    assert_int_equal(info->layer[1], 1);
    assert_string_equal(info->model, "m");
    for (int j = 0; j < C; j++) {
        pi_trace_record rec;
        assert_int_equal(pi_trace_next(r, &rec, &err), 1);
        assert_int_equal(rec.token, tok[j]);
        assert_int_equal(rec.pos, pos[j]);
        assert_int_equal(rec.index, j);
        assert_int_equal(rec.count, C);
        assert_int_equal(rec.j, j);
        for (int s = 0; s < R; s++) {
            float x[3], a[5], max, k = (float)(j + 1), m = ldexpf(1.0f, 1 + s);
            pi_trace_decode_x(&rec, s, x);
            if (!(x[0] == k && x[1] == -k && x[2] == k * (float)(5 + s + 2 * j)))
                fail_msg("record %d slot %d: x %g %g %g", j, s, x[0], x[1], x[2]);
            const uint8_t *codes = pi_trace_act_codes(&rec, s, &max);
            assert_true(max == m);
            assert_memory_equal(codes, slots[j][s] + 8 + E, F);
            pi_trace_decode_act(&rec, s, a);
            /* m = 2^(1+s) is the lower bin of its octave: middle 1.25 m;
             * one bin below, [0.75 m, m): 0.875 m. */
            assert_true(a[0] == 1.25f * m && a[1] == 0.875f * m && a[2] == 0.0f);
            assert_true(a[3] == pi_trace_code_value(m, 1) && a[3] > 0.0f);
            assert_true(a[4] == pi_trace_code_value(m, 30 - j - s));
        }
    }
    expect_end(r);
    pi_trace_close(r);
    fclose(f);
    free(b.p);
}

/* What the writer puts in the stream, decompressed, is the documented
 * layout: the header, then full chunks, then one partial chunk. */
static void test_writer_writes_the_documented_layout(void **state)
{
    (void)state;
    tdir d;
    tdir_new(&d);
    const int layers[2] = { 1, 3 };
    pi_trace_info info;
    make_info(&info, 0x77, 4, 16, 48, 2, layers);
    enum { N = PI_TRACE_CHUNK + 6 };
    write_trace(tdir_file(&d, "w.trace"), &info, N, 4);
    bytes b = slurp(tdir_file(&d, "w.trace"));
    size_t hs = 68 + strlen(info.model) + 4 * 2;
    size_t want = hs + chunk_bytes(&info, PI_TRACE_CHUNK) + chunk_bytes(&info, 6);
    assert_int_equal(chunk_bytes(&info, 6), 8 + 8 * 6 + 6 * 2 * (8 + 16 + 48));
    uint8_t *raw = malloc(want + 100), *chunk = malloc(chunk_bytes(&info, PI_TRACE_CHUNK));
    uint8_t *slots = malloc((size_t)N * pi_trace_record_size(&info));
    assert_true(raw && chunk && slots);
    size_t got = ZSTD_decompress(raw, want + 100, b.p, b.n);
    assert_false(ZSTD_isError(got));
    assert_int_equal(got, want);
    assert_memory_equal(raw, "PI-TRACE", 8);
    assert_int_equal(raw[12] | raw[13] << 8, hs);

    int32_t tok[N], pos[N];
    size_t rs = pi_trace_record_size(&info) - 12;
    for (int i = 0; i < N; i++) {
        tok[i] = 1000 + i;
        pos[i] = i % 7;
        make_slots(&info, 4, i, slots + (size_t)i * rs);
    }
    size_t at = hs, n = documented_chunk(chunk, &info, PI_TRACE_CHUNK, tok, pos, slots);
    assert_memory_equal(raw + at, chunk, n);
    at += n;
    n = documented_chunk(chunk, &info, 6, tok + PI_TRACE_CHUNK, pos + PI_TRACE_CHUNK,
                         slots + PI_TRACE_CHUNK * rs);
    assert_memory_equal(raw + at, chunk, n);
    assert_int_equal(at + n, want);
    free(raw);
    free(chunk);
    free(slots);
    free(b.p);
    tdir_free(&d);
}

/* ---- concatenation ------------------------------------------------------ */

static void test_concatenated_traces_read_as_parts(void **state)
{
    (void)state;
    tdir d;
    tdir_new(&d);
    const int la[2] = { 0, 2 }, lb[1] = { 1 };
    pi_trace_info a, b;
    make_info(&a, 77, 3, 24, 64, 2, la);
    make_info(&b, 77, 3, 24, 64, 1, lb); /* another run may record other layers */
    snprintf(b.model, sizeof b.model, "the same model, renamed");
    write_trace(tdir_file(&d, "a.trace"), &a, 5, 1);
    write_trace(tdir_file(&d, "b.trace"), &b, 4, 2);
    bytes cat = slurp(tdir_file(&d, "a.trace")), tail = slurp(tdir_file(&d, "b.trace"));
    append(&cat, tail.p, tail.n);
    append(&cat, tail.p, tail.n); /* a third part */

    FILE *f;
    pi_err err;
    pi_trace_reader *r = open_bytes(cat.p, cat.n, &f, &err);
    if (!r)
        fail_msg("%s", err.msg);
    expect_records(r, &a, 5, 1, 0, 0);
    expect_records(r, &b, 4, 2, 1, 5);
    expect_records(r, &b, 4, 2, 2, 9);
    assert_int_equal(pi_trace_reader_info(r)->n_rec, 2); /* the first part's */
    expect_end(r);
    pi_trace_close(r);
    fclose(f);

    /* zstd's skippable frames (RFC 8878 3.1.2) carry no trace bytes. */
    const uint8_t skip[12] = { 0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 'n', 'o', 't', 'e' };
    bytes framed = { NULL, 0 };
    append(&framed, skip, sizeof skip);
    append(&framed, cat.p, cat.n);
    append(&framed, skip, sizeof skip);
    assert_int_equal(count_records(framed.p, framed.n, &err), 13);
    free(framed.p);
    free(cat.p);
    free(tail.p);
    tdir_free(&d);
}

/* Each part ends with a partial chunk (64 + 6, 64 + 36): the next part's
 * header follows it, and its records are laid out by their own header. */
static void test_concatenated_parts_end_in_partial_chunks(void **state)
{
    (void)state;
    tdir d;
    tdir_new(&d);
    const int la[2] = { 0, 2 }, lb[1] = { 1 };
    pi_trace_info a, b;
    make_info(&a, 78, 3, 24, 40, 2, la);
    make_info(&b, 78, 3, 24, 40, 1, lb);
    write_trace(tdir_file(&d, "a.trace"), &a, 70, 5);
    write_trace(tdir_file(&d, "b.trace"), &b, 100, 6);
    bytes cat = slurp(tdir_file(&d, "a.trace")), tail = slurp(tdir_file(&d, "b.trace"));
    bytes head = slurp(tdir_file(&d, "a.trace"));
    append(&cat, tail.p, tail.n);
    append(&cat, head.p, head.n);

    FILE *f;
    pi_err err;
    pi_trace_reader *r = open_bytes(cat.p, cat.n, &f, &err);
    if (!r)
        fail_msg("%s", err.msg);
    expect_records(r, &a, 70, 5, 0, 0);
    expect_records(r, &b, 100, 6, 1, 70);
    expect_records(r, &a, 70, 5, 2, 170);
    expect_end(r);
    pi_trace_close(r);
    fclose(f);

    /* And decompressed as one frame: chunks do not depend on frames. */
    size_t cap = 2 * (chunk_bytes(&a, 64) + chunk_bytes(&a, 6)) + chunk_bytes(&b, 64) +
                 chunk_bytes(&b, 36) + 3 * 256;
    uint8_t *raw = malloc(cap);
    assert_non_null(raw);
    size_t n = ZSTD_decompress(raw, cap, cat.p, cat.n);
    assert_false(ZSTD_isError(n));
    assert_int_equal(count_raw(raw, n), 240);
    free(raw);
    free(cat.p);
    free(tail.p);
    free(head.p);
    tdir_free(&d);
}

static void test_concatenation_refuses_another_model(void **state)
{
    (void)state;
    tdir d;
    tdir_new(&d);
    const int l[1] = { 0 };
    pi_trace_info a, b, c;
    make_info(&a, 77, 3, 24, 64, 1, l);
    make_info(&b, 78, 3, 24, 64, 1, l); /* another fingerprint */
    make_info(&c, 77, 3, 24, 65, 1, l); /* the same fingerprint, another shape */
    write_trace(tdir_file(&d, "a.trace"), &a, 3, 1);
    write_trace(tdir_file(&d, "b.trace"), &b, 2, 2);
    write_trace(tdir_file(&d, "c.trace"), &c, 2, 3);
    for (int k = 0; k < 2; k++) {
        bytes cat = slurp(tdir_file(&d, "a.trace"));
        bytes tail = slurp(tdir_file(&d, k ? "c.trace" : "b.trace"));
        append(&cat, tail.p, tail.n);
        FILE *f;
        pi_err err;
        pi_trace_reader *r = open_bytes(cat.p, cat.n, &f, &err);
        if (!r)
            fail_msg("%s", err.msg);
        expect_records(r, &a, 3, 1, 0, 0);
        pi_trace_record rec;
        assert_int_equal(pi_trace_next(r, &rec, &err), -1);
        if (!strstr(err.msg, "another model") || !strstr(err.msg, "part 2"))
            fail_msg("unexpected message: %s", err.msg);
        pi_trace_close(r);
        fclose(f);
        free(cat.p);
        free(tail.p);
    }
    tdir_free(&d);
}

/* ---- the writer --------------------------------------------------------- */

static void test_writer_abort_leaves_nothing(void **state)
{
    (void)state;
    tdir d;
    tdir_new(&d);
    int layer0 = 0;
    pi_trace_info info;
    make_info(&info, 1, 1, 8, 8, 1, &layer0);
    pi_err err;
    pi_trace_writer *w = pi_trace_writer_open(tdir_file(&d, "x.trace"), &info, 0, &err);
    if (!w)
        fail_msg("%s", err.msg);
    uint8_t slot[8 + 8 + 8] = { 0 };
    for (int i = 0; i < 100; i++) /* a full chunk written, a partial one held */
        assert_int_equal(pi_trace_write(w, i, i, slot, &err), 0);
    char list[1024];
    tdir_list(&d, list, sizeof list);
    assert_non_null(strstr(list, "x.trace.tmp.")); /* the temporary file */
    pi_trace_writer_abort(w);
    pi_trace_writer_abort(NULL);
    tdir_list(&d, list, sizeof list);
    assert_string_equal(list, "");
    tdir_free(&d);
}

static void test_writer_commit_leaves_exactly_the_target(void **state)
{
    (void)state;
    tdir d;
    tdir_new(&d);
    int layer0 = 0;
    pi_trace_info info;
    make_info(&info, 1, 1, 8, 8, 1, &layer0);
    write_trace(tdir_file(&d, "x.trace"), &info, 3, 1);
    char list[1024];
    tdir_list(&d, list, sizeof list);
    assert_string_equal(list, "x.trace");

    /* Overwriting an existing trace replaces it whole. */
    write_trace(tdir_file(&d, "x.trace"), &info, 5, 2);
    tdir_list(&d, list, sizeof list);
    assert_string_equal(list, "x.trace");
    bytes b = slurp(tdir_file(&d, "x.trace"));
    pi_err err;
    assert_int_equal(count_records(b.p, b.n, &err), 5);
    free(b.p);

    /* Like any new file, it gets the mode the umask allows, not mkstemp's
     * private 0600. */
    mode_t um = umask(022);
    write_trace(tdir_file(&d, "y.trace"), &info, 1, 1);
    umask(um);
    struct stat st;
    assert_int_equal(stat(tdir_file(&d, "y.trace"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    tdir_free(&d);
}

static void test_writer_reports_bad_paths_and_headers(void **state)
{
    (void)state;
    int layer0 = 0;
    pi_trace_info info;
    make_info(&info, 1, 1, 8, 8, 1, &layer0);
    pi_err err;
    assert_null(pi_trace_writer_open("/nonexistent-pi-dir/x.trace", &info, 0, &err));
    if (!strstr(err.msg, "/nonexistent-pi-dir/x.trace"))
        fail_msg("message does not name the path: %s", err.msg);

    tdir d;
    tdir_new(&d);
    info.n_rec = 2; /* more recorded layers than the model has */
    assert_null(pi_trace_writer_open(tdir_file(&d, "x.trace"), &info, 0, &err));
    assert_non_null(strstr(err.msg, "x.trace"));
    info.n_rec = 1;
    info.x_encoding = 9;
    assert_null(pi_trace_writer_open(tdir_file(&d, "x.trace"), &info, 0, &err));
    assert_non_null(strstr(err.msg, "unknown encoding"));
    char list[1024];
    tdir_list(&d, list, sizeof list);
    assert_string_equal(list, "");
    tdir_free(&d);

    assert_null(pi_trace_open("/nonexistent-pi-dir/x.trace", &err));
    assert_non_null(strstr(err.msg, "/nonexistent-pi-dir/x.trace: "));
}

/* ---- streaming ---------------------------------------------------------- */

static void test_reader_streams_long_traces(void **state)
{
    (void)state;
    tdir d;
    tdir_new(&d);
    int layer0 = 3;
    pi_trace_info info;
    make_info(&info, 1, 4, 64, 20000, 1, &layer0);
    write_trace(tdir_file(&d, "long.trace"), &info, 2000, 8);
    pi_err err;
    pi_trace_reader *r = pi_trace_open(tdir_file(&d, "long.trace"), &err);
    if (!r)
        fail_msg("%s", err.msg);
    expect_records(r, &info, 2000, 8, 0, 0);
    expect_end(r);
    pi_trace_close(r);

    /* Records of several zstd blocks each (3 x 200 kB). */
    const int all[3] = { 0, 1, 2 };
    make_info(&info, 1, 3, 4096, 200000, 3, all);
    write_trace(tdir_file(&d, "wide.trace"), &info, 12, 9);
    r = pi_trace_open(tdir_file(&d, "wide.trace"), &err);
    if (!r)
        fail_msg("%s", err.msg);
    expect_records(r, &info, 12, 9, 0, 0);
    expect_end(r);
    pi_trace_close(r);
    tdir_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_x_round_trips_within_half_a_step),
        cmocka_unit_test(test_x_stores_non_finite_values_and_zero_rows_as_zero),
        cmocka_unit_test(test_x_keeps_rows_of_tiny_values),
        cmocka_unit_test(test_act_codes_count_half_octaves_down_from_the_maximum),
        cmocka_unit_test(test_act_code_values_lie_inside_their_bins),
        cmocka_unit_test(test_act_stores_non_finite_values_as_zero),
        cmocka_unit_test(test_slot_finds_recorded_layers_only),
        cmocka_unit_test(test_records_round_trip),
        cmocka_unit_test(test_records_round_trip_across_chunks),
        cmocka_unit_test(test_a_trace_without_records_is_valid),
        cmocka_unit_test(test_reader_reads_the_documented_layout),
        cmocka_unit_test(test_writer_writes_the_documented_layout),
        cmocka_unit_test(test_concatenated_traces_read_as_parts),
        cmocka_unit_test(test_concatenated_parts_end_in_partial_chunks),
        cmocka_unit_test(test_concatenation_refuses_another_model),
        cmocka_unit_test(test_writer_abort_leaves_nothing),
        cmocka_unit_test(test_writer_commit_leaves_exactly_the_target),
        cmocka_unit_test(test_writer_reports_bad_paths_and_headers),
        cmocka_unit_test(test_reader_streams_long_traces),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
