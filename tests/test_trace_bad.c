/*
 * Tests of the profiling trace reader (libpi/trace.c) against damaged and
 * hostile input: every truncation, flipped bits, foreign files, and headers
 * and chunks built by hand to break each rule of man/pi-trace.5.  Each is
 * refused with a message naming the input, and nothing read from it ever
 * differs from what was written.  The well-formed side: tests/test_trace.c.
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

/* ---- truncation and corruption ------------------------------------------ */

static void expect_every_cut_refused(const bytes *b, size_t step)
{
    pi_err err;
    for (size_t cut = 1; cut < b->n; cut += cut + 64 < b->n ? step : 1) {
        int64_t got = count_records(b->p, cut, &err);
        if (got >= 0)
            fail_msg("cut at %zu of %zu bytes: %lld records and no error", cut, b->n,
                     (long long)got);
        if (!strstr(err.msg, "truncated"))
            fail_msg("cut at %zu of %zu bytes: '%s'", cut, b->n, err.msg);
    }
}

static void test_reader_refuses_every_truncation(void **state)
{
    (void)state;
    tdir d;
    tdir_new(&d);
    const int layers[2] = { 0, 1 };
    pi_trace_info info;
    make_info(&info, 9, 2, 16, 48, 2, layers);
    write_trace(tdir_file(&d, "t.trace"), &info, 6, 5);
    bytes b = slurp(tdir_file(&d, "t.trace"));
    pi_err err;
    assert_int_equal(count_records(b.p, b.n, &err), 6);
    expect_failure(b.p, 0, "empty");
    expect_every_cut_refused(&b, 1);
    free(b.p);

    /* Three chunks (64 + 64 + 22): every cut, in steps of 3 bytes and at
     * each of the last 64. */
    write_trace(tdir_file(&d, "c.trace"), &info, 150, 6);
    b = slurp(tdir_file(&d, "c.trace"));
    assert_int_equal(count_records(b.p, b.n, &err), 150);
    expect_every_cut_refused(&b, 3);
    free(b.p);

    /* Chunks larger than zstd's blocks, so that some records arrive before
     * the cut (and are delivered before the error). */
    const int one[1] = { 2 };
    make_info(&info, 9, 3, 64, 2048, 1, one);
    write_trace(tdir_file(&d, "big.trace"), &info, 200, 7);
    b = slurp(tdir_file(&d, "big.trace"));
    assert_int_equal(count_records(b.p, b.n, &err), 200);
    int64_t most = 0;
    for (int k = 1; k <= 40; k++) {
        size_t cut = k == 40 ? b.n - 1 : b.n / 40 * (size_t)k + (size_t)k;
        int64_t got = count_records(b.p, cut, &err);
        if (got >= 0 || !strstr(err.msg, "truncated"))
            fail_msg("cut at %zu of %zu bytes: %lld records, '%s'", cut, b.n, (long long)got,
                     err.msg);
        /* Whole chunks, or all when only the checksum is missing. */
        assert_true(fx_delivered % PI_TRACE_CHUNK == 0 || fx_delivered == 200);
        if (fx_delivered > most)
            most = fx_delivered;
    }
    if (most < 2 * PI_TRACE_CHUNK)
        fail_msg("at most %lld records delivered before a cut", (long long)most);
    free(b.p);
    tdir_free(&d);
}

/* RFC 8878 3.1.1.1: magic, descriptor, window, dictionary id, content size. */
static size_t frame_header_size(const uint8_t *p)
{
    uint8_t fhd = p[4];
    int single = fhd >> 5 & 1;
    const size_t did[4] = { 0, 1, 2, 4 }, fcs[4] = { 0, 2, 4, 8 };
    size_t content_size = fhd >> 6 == 0 ? (size_t)single : fcs[fhd >> 6];
    return 4 + 1 + (single ? 0 : 1) + did[fhd & 3] + content_size;
}

/* Flipping any bit is either refused (a block that does not decode, or the
 * content checksum) or, where zstd ignores the bit (the window size, spare
 * bits of an entropy table description), yields the very same records: a
 * damaged trace never feeds the trainer different data.  A flip inside the
 * zstd frame's data is refused nearly always. */
static void test_reader_refuses_corrupted_bytes(void **state)
{
    (void)state;
    tdir d;
    tdir_new(&d);
    const int layers[2] = { 0, 1 };
    pi_trace_info info;
    make_info(&info, 9, 2, 16, 48, 2, layers);
    write_trace(tdir_file(&d, "t.trace"), &info, 6, 5);
    bytes b = slurp(tdir_file(&d, "t.trace"));
    bytes clean = { NULL, 0 };
    pi_err err;
    assert_int_equal(read_records(b.p, b.n, &clean, &err), 6);
    size_t fh = frame_header_size(b.p), refused = 0, flips = 0;
    for (size_t i = 0; i < b.n; i++)
        for (int k = 0; k < 8; k++) {
            b.p[i] ^= (uint8_t)(1 << k);
            bytes seen = { NULL, 0 };
            int64_t got = read_records(b.p, b.n, &seen, &err);
            if (got >= 0 && (seen.n != clean.n || memcmp(seen.p, clean.p, clean.n)))
                fail_msg("byte %zu of %zu, bit %d: %lld different records and no error", i,
                         b.n, k, (long long)got);
            if (i >= fh) {
                flips++;
                refused += got < 0;
            }
            free(seen.p);
            b.p[i] ^= (uint8_t)(1 << k);
        }
    if (refused < flips * 95 / 100)
        fail_msg("only %zu of %zu flips after the frame header refused", refused, flips);
    /* The checksum itself. */
    b.p[b.n - 1] ^= 1;
    expect_failure(b.p, b.n, "corrupted");
    free(b.p);
    free(clean.p);
    tdir_free(&d);
}

static void test_reader_refuses_foreign_files(void **state)
{
    (void)state;
    const char *text = "this is not a trace, only some text that goes on for a while\n";
    expect_failure((const uint8_t *)text, strlen(text), "not a pi trace");

    uint8_t garbage[300];
    uint64_t s = 3;
    for (size_t i = 0; i < sizeof garbage; i++)
        garbage[i] = (uint8_t)next_random(&s);
    expect_raw_refused(garbage, sizeof garbage, "bad magic");

    /* A zstd stream too short to hold a header. */
    expect_raw_refused((const uint8_t *)"PI-TRACE", 8, "truncated");
}

/* ---- hostile headers ---------------------------------------------------- */

static void test_reader_refuses_bad_headers(void **state)
{
    (void)state;
    uint8_t raw[8192];
    size_t n = documented_header(raw, 2, 4, 2, "m");
    expect_raw_refused(raw, n, "version 2");

    n = documented_header(raw, 1, 4, 5, "m"); /* more recorded layers than layers */
    expect_raw_refused(raw, n, "recorded layers");

    n = documented_header(raw, 1, 4, 2, "m");
    put_le(raw + 12, n + 1, 4); /* header size disagrees with its contents */
    raw[n] = 0;
    expect_raw_refused(raw, n + 1, "malformed");
    put_le(raw + 12, 1u << 30, 4);
    expect_raw_refused(raw, n, "malformed");

    n = documented_header(raw, 1, 4, 2, "m");
    put_le(raw + 28, 0, 4); /* n_embd 0 */
    expect_raw_refused(raw, n, "implausible");
    put_le(raw + 28, 0x80000000u, 4); /* negative */
    expect_raw_refused(raw, n, "implausible");

    n = documented_header(raw, 1, 4, 2, "m");
    put_le(raw + 36, 7, 4);
    expect_raw_refused(raw, n, "unknown encoding");

    n = documented_header(raw, 1, 4, 2, "m");
    put_le(raw + 68 + 1 + 4, 0, 4); /* layers 0, 0: not increasing */
    expect_raw_refused(raw, n, "bad list");

    n = documented_header(raw, 1, 4, 2, "m\001");
    raw[69] = 0; /* a NUL inside the name */
    expect_raw_refused(raw, n, "malformed");

    /* A record of 12 + 1024 * (8 + 2^20 + 2^20) bytes is refused before
     * anything is allocated for it. */
    n = documented_header(raw, 1, 1024, 1024, "");
    put_le(raw + 28, 1u << 20, 4);
    put_le(raw + 32, 1u << 20, 4);
    expect_raw_refused(raw, n, "too large");

    /* Records of at most 4 MiB, so that a chunk of 64 stays within
     * 256 MiB: 12 + 2 * (8 + 2^20 + 2^20 - 16) = 2^22 - 4 bytes pass (a
     * header alone is a valid trace), 12 + 2 * (8 + 2^20 + 2^20 - 10) =
     * 2^22 + 8 do not. */
    n = documented_header(raw, 1, 4, 2, "");
    put_le(raw + 28, 1u << 20, 4);
    put_le(raw + 32, (1u << 20) - 16, 4);
    assert_int_equal(count_raw(raw, n), 0);
    put_le(raw + 32, (1u << 20) - 10, 4);
    expect_raw_refused(raw, n, "too large");

    /* The second part's header, cut short or with another magic. */
    n = documented_header(raw, 1, 4, 2, "m");
    size_t m = documented_header(raw + n, 1, 4, 2, "m");
    assert_int_equal(count_raw(raw, n + m), 0);
    expect_raw_refused(raw, n + m - 1, "truncated trace (short header)");
    expect_raw_refused(raw, n + 6, "truncated");
    raw[n + 7] = 'X';
    expect_raw_refused(raw, n + m, "bad magic");
}

/* ---- hostile chunks ----------------------------------------------------- */

enum { E = 3, F = 5 }; /* documented_header's n_embd and n_ff */

/* A trace of documented_header (4 layers, n_rec recorded) and chunks of
 * counts[0], counts[1], ... valid records (x scale 1, x {1, -1, 2}, maximum
 * 1, codes {32, 31, 0, 1, 30}), decompressed; at[k] is where chunk k
 * starts.  Returns its size. */
static size_t valid_trace(uint8_t *raw, int n_rec, const int *counts, int n_chunks, size_t *at)
{
    const int layers[4] = { 0, 1, 2, 3 };
    pi_trace_info info;
    make_info(&info, 1, 4, E, F, n_rec, layers);
    size_t n = documented_header(raw, 1, 4, (uint32_t)n_rec, "m");
    uint8_t slots[PI_TRACE_CHUNK * 4 * (8 + E + F)];
    for (int i = 0; i < PI_TRACE_CHUNK * n_rec; i++) {
        uint8_t *p = slots + (size_t)i * (8 + E + F);
        const uint8_t q[E] = { 1, 0xff, 2 }, codes[F] = { 32, 31, 0, 1, 30 };
        put_float(p, 1.0f);
        memcpy(p + 4, q, E);
        put_float(p + 4 + E, 1.0f);
        memcpy(p + 8 + E, codes, F);
    }
    for (int k = 0; k < n_chunks; k++) {
        at[k] = n;
        n += documented_chunk(raw + n, &info, (size_t)counts[k], NULL, NULL, slots);
    }
    return n;
}

static void test_reader_refuses_bad_chunk_tags(void **state)
{
    (void)state;
    static uint8_t raw[65536];
    size_t at[3];
    const int counts[2] = { 3, 2 };
    size_t n = valid_trace(raw, 2, counts, 2, at);
    assert_int_equal(count_raw(raw, n), 5);

    const char *tags[] = { "XCHK", "TREC" /* version 1's old records */, "tchk", "TCH\0",
                           "\0\0\0\0" };
    for (size_t t = 0; t < sizeof tags / sizeof tags[0]; t++) {
        memcpy(raw + at[0], tags[t], 4);
        expect_raw_refused(raw, n, "corrupted trace (bad chunk tag after record 0)");
        memcpy(raw + at[0], "TCHK", 4);
        memcpy(raw + at[1], tags[t], 4);
        expect_raw_refused(raw, n, "bad chunk tag after record 3");
        assert_int_equal(fx_delivered, 3);
        memcpy(raw + at[1], "TCHK", 4);
    }
    /* Anything after the last chunk is read as a tag. */
    memset(raw + n, 0, 8);
    expect_raw_refused(raw, n + 8, "bad chunk tag after record 5");
    assert_int_equal(count_raw(raw, n), 5);
}

static void test_reader_refuses_bad_chunk_counts(void **state)
{
    (void)state;
    static uint8_t raw[65536];
    size_t at[2];
    const int full[2] = { PI_TRACE_CHUNK, 1 };
    size_t n = valid_trace(raw, 3, full, 2, at);
    assert_int_equal(count_raw(raw, n), PI_TRACE_CHUNK + 1);

    const int counts[2] = { 3, 2 };
    n = valid_trace(raw, 2, counts, 2, at);
    const struct {
        uint32_t count;
        const char *want;
    } bad[] = {
        { 0, "a chunk of 0 records" },
        { PI_TRACE_CHUNK + 1, "a chunk of 65 records" },
        { 1000, "a chunk of 1000 records" },
        { UINT32_MAX, "a chunk of 4294967295 records" },
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        put_le(raw + at[0] + 4, bad[k].count, 4);
        expect_raw_refused(raw, n, bad[k].want);
        put_le(raw + at[0] + 4, 3, 4);
        put_le(raw + at[1] + 4, bad[k].count, 4);
        expect_raw_refused(raw, n, bad[k].want);
        assert_int_equal(fx_delivered, 3);
        put_le(raw + at[1] + 4, 2, 4);
    }
    assert_int_equal(count_raw(raw, n), 5);

    /* A count that disagrees with the bytes that follow: more records than
     * there are is a short chunk at the end; fewer misreads the columns,
     * which the checks catch here. */
    put_le(raw + at[1] + 4, 3, 4);
    expect_raw_refused(raw, n, "truncated trace (short chunk)");
    assert_int_equal(fx_delivered, 3);
    put_le(raw + at[1] + 4, 2, 4);
    put_le(raw + at[0] + 4, 2, 4);
    expect_raw_refused(raw, n, "corrupted");
}

/* Every row of every column is checked, in any chunk: the first row and
 * the last, of the first chunk and of a later one. */
static void test_reader_refuses_bad_scales_and_codes(void **state)
{
    (void)state;
    static uint8_t raw[65536];
    size_t at[2];
    const int counts[2] = { 3, 4 };
    enum { R = 2 };
    size_t n = valid_trace(raw, R, counts, 2, at);
    assert_int_equal(count_raw(raw, n), 7);
    const float bad_scales[] = { -1.0f, -1e-40f, NAN, INFINITY, -INFINITY };
    for (int k = 0; k < 2; k++) {
        size_t c = (size_t)counts[k];
        doc_layout l = documented_layout(c, R, E, F);
        const char *where = k ? "near record 3" : "near record 0";
        const size_t rows[2] = { 0, R * c - 1 };
        for (int w = 0; w < 2; w++) {
            size_t row = rows[w];
            uint8_t *xs = raw + at[k] + l.xscale + 4 * row, *am = raw + at[k] + l.amax + 4 * row;
            uint8_t *codes = raw + at[k] + l.codes + F * row;
            for (size_t b = 0; b < sizeof bad_scales / sizeof bad_scales[0]; b++) {
                put_float(xs, bad_scales[b]);
                expect_raw_refused(raw, n, "corrupted trace (bad scale");
                expect_raw_refused(raw, n, where);
                put_float(xs, 1.0f);
                put_float(am, bad_scales[b]);
                expect_raw_refused(raw, n, "corrupted trace (bad scale");
                expect_raw_refused(raw, n, where);
                put_float(am, 1.0f);
            }
            for (int i = 0; i < F; i += F - 1) {
                uint8_t keep = codes[i];
                codes[i] = PI_TRACE_ACT_CODES + 1;
                expect_raw_refused(raw, n, "corrupted trace (bad code");
                expect_raw_refused(raw, n, where);
                codes[i] = 255;
                expect_raw_refused(raw, n, "bad code");
                codes[i] = PI_TRACE_ACT_CODES;
                assert_int_equal(count_raw(raw, n), 7);
                codes[i] = keep;
            }
            /* Zero scales and maxima, the largest finite ones and
             * subnormal ones are all valid. */
            const float fine[] = { 0.0f, 3.4e38f, 1e-42f };
            for (size_t b = 0; b < 3; b++) {
                put_float(xs, fine[b]);
                put_float(am, fine[b]);
                assert_int_equal(count_raw(raw, n), 7);
            }
            put_float(xs, 1.0f);
            put_float(am, 1.0f);
        }
        assert_int_equal(count_raw(raw, n), 7);
    }
}

/* A stream that ends inside a chunk, though its zstd frame is complete. */
static void test_reader_refuses_short_chunks(void **state)
{
    (void)state;
    static uint8_t raw[65536];
    size_t at[2];
    const int counts[2] = { 3, 2 };
    size_t n = valid_trace(raw, 2, counts, 2, at);
    size_t size1 = n - at[1];
    const size_t keep[] = { 1, 2, 3, 4, 5, 7, 8, 9, 16, size1 / 2, size1 - 1 };
    for (size_t k = 0; k < sizeof keep / sizeof keep[0]; k++) {
        expect_raw_refused(raw, at[1] + keep[k], "truncated trace (short chunk)");
        assert_int_equal(fx_delivered, 3);
        expect_raw_refused(raw, at[0] + keep[k], "truncated trace (short chunk)");
        assert_int_equal(fx_delivered, 0);
    }
    assert_int_equal(count_raw(raw, at[1]), 3);
    assert_int_equal(count_raw(raw, n), 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reader_refuses_every_truncation),
        cmocka_unit_test(test_reader_refuses_corrupted_bytes),
        cmocka_unit_test(test_reader_refuses_foreign_files),
        cmocka_unit_test(test_reader_refuses_bad_headers),
        cmocka_unit_test(test_reader_refuses_bad_chunk_tags),
        cmocka_unit_test(test_reader_refuses_bad_chunk_counts),
        cmocka_unit_test(test_reader_refuses_bad_scales_and_codes),
        cmocka_unit_test(test_reader_refuses_short_chunks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
