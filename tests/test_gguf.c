/*
 * Tests of the GGUF reader and writer: round trips of every value type, and
 * the reader's refusal of truncated, hostile and inconsistent files.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "gguf.h"
#include "gguf_write.h"
#include "quant.h"

/* A byte builder for hand-made (often broken) files. */
typedef struct buf {
    uint8_t b[4096];
    size_t n;
} buf;

static void put(buf *b, const void *p, size_t n)
{
    assert_true(b->n + n <= sizeof b->b);
    memcpy(b->b + b->n, p, n);
    b->n += n;
}
static void u32(buf *b, uint32_t v) { put(b, &v, 4); }
static void u64(buf *b, uint64_t v) { put(b, &v, 8); }
static void str(buf *b, const char *s) { u64(b, strlen(s)); put(b, s, strlen(s)); }
static void header(buf *b, uint32_t version, uint64_t nt, uint64_t nkv)
{
    b->n = 0;
    u32(b, PI_GGUF_MAGIC);
    u32(b, version);
    u64(b, nt);
    u64(b, nkv);
}
static void tensor_info(buf *b, const char *name, uint64_t ne0, uint32_t type, uint64_t off)
{
    str(b, name);
    u32(b, 1);
    u64(b, ne0);
    u32(b, type);
    u64(b, off);
}
static void pad_to(buf *b, size_t align)
{
    while (b->n % align)
        b->b[b->n++] = 0;
}

/* Opens b; asserts it fails with a message that names the file and contains
 * `want`. */
static void expect_error(const buf *b, const char *want)
{
    pi_err err = { { 0 } };
    pi_gguf *g = pi_gguf_open_memory(b->b, b->n, "bad.gguf", &err);
    if (g || !strstr(err.msg, want) || strncmp(err.msg, "bad.gguf: ", 10))
        fail_msg("wanted an error containing '%s', got %s'%s'", want, g ? "success " : "",
                 err.msg);
}

static pi_gguf *expect_ok(const buf *b)
{
    pi_err err = { { 0 } };
    pi_gguf *g = pi_gguf_open_memory(b->b, b->n, "good.gguf", &err);
    if (!g)
        fail_msg("unexpected error: %s", err.msg);
    return g;
}

static char *tmp_path(void)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/pi-test-gguf-%d.gguf", (int)getpid());
    return path;
}

static void test_writer_round_trips_every_value_type(void **state)
{
    (void)state;
    pi_err err;
    pi_gguf_writer *w = pi_gguf_writer_new(64);
    assert_non_null(w);
    uint8_t u8s[3] = { 1, 2, 255 };
    float f32s[2] = { 1.5f, -0.25f };
    const char *strs[3] = { "a", "", "\xe2\x82\xac uro" };
    assert_int_equal(pi_gguf_set_u32(w, "u32", 4000000000u, &err), 0);
    assert_int_equal(pi_gguf_set_i32(w, "i32", -7, &err), 0);
    assert_int_equal(pi_gguf_set_u64(w, "u64", UINT64_MAX, &err), 0);
    assert_int_equal(pi_gguf_set_i64(w, "i64", INT64_MIN, &err), 0);
    assert_int_equal(pi_gguf_set_f32(w, "f32", 0.1f, &err), 0);
    assert_int_equal(pi_gguf_set_f64(w, "f64", 0.1, &err), 0);
    assert_int_equal(pi_gguf_set_bool(w, "bool", true, &err), 0);
    assert_int_equal(pi_gguf_set_str(w, "str", "hello", &err), 0);
    assert_int_equal(pi_gguf_set_str(w, "str", "replaced", &err), 0);
    assert_int_equal(pi_gguf_set_arr(w, "arr.u8", PI_GGUF_U8, u8s, 3, &err), 0);
    assert_int_equal(pi_gguf_set_arr(w, "arr.f32", PI_GGUF_F32, f32s, 2, &err), 0);
    assert_int_equal(pi_gguf_set_arr_str(w, "arr.str", strs, 3, &err), 0);
    float data[64];
    for (int i = 0; i < 64; i++)
        data[i] = (float)i;
    int64_t ne[2] = { 32, 2 };
    assert_int_equal(pi_gguf_add_tensor(w, "t0", PI_TYPE_F32, 2, ne, data, sizeof data, &err), 0);
    assert_int_equal(pi_gguf_add_tensor(w, "t1", PI_TYPE_F32, 1, ne, data, 128, &err), 0);
    assert_int_not_equal(pi_gguf_add_tensor(w, "t1", PI_TYPE_F32, 1, ne, data, 128, &err), 0);
    assert_int_not_equal(pi_gguf_add_tensor(w, "t2", PI_TYPE_F32, 1, ne, data, 100, &err), 0);
    assert_int_equal(pi_gguf_writer_write(w, tmp_path(), &err), 0);
    pi_gguf_writer_free(w);

    pi_gguf *g = pi_gguf_open(tmp_path(), &err);
    if (!g)
        fail_msg("%s", err.msg);
    uint32_t v32;
    uint64_t v64;
    int64_t i64;
    float f;
    bool b;
    char s[32];
    assert_int_equal(pi_gguf_alignment(g), 64);
    assert_int_equal(pi_gguf_get_u32(g, "u32", &v32), 0);
    assert_int_equal(v32, 4000000000u);
    assert_int_equal(pi_gguf_get_i64(g, "i32", &i64), 0);
    assert_int_equal(i64, -7);
    assert_int_not_equal(pi_gguf_get_u32(g, "i32", &v32), 0); /* negative: no u32 */
    assert_int_equal(pi_gguf_get_u64(g, "u64", &v64), 0);
    assert_true(v64 == UINT64_MAX);
    assert_int_not_equal(pi_gguf_get_i64(g, "u64", &i64), 0); /* out of range */
    assert_int_equal(pi_gguf_get_i64(g, "i64", &i64), 0);
    assert_true(i64 == INT64_MIN);
    assert_int_equal(pi_gguf_get_f32(g, "f32", &f), 0);
    assert_true(f == 0.1f);
    assert_true(pi_gguf_get(g, "f64")->v.f64 == 0.1);
    assert_int_equal(pi_gguf_get_bool(g, "bool", &b), 0);
    assert_true(b);
    assert_int_equal(pi_gguf_get_cstr(g, "str", s, sizeof s), 0);
    assert_string_equal(s, "replaced");
    assert_int_not_equal(pi_gguf_get_cstr(g, "missing", s, sizeof s), 0);
    const pi_gguf_arr *a = pi_gguf_get_arr(g, "arr.u8", PI_GGUF_U8);
    assert_non_null(a);
    assert_int_equal(a->n, 3);
    assert_int_equal(pi_gguf_arr_i64(a, 2), 255);
    assert_null(pi_gguf_get_arr(g, "arr.u8", PI_GGUF_STR));
    a = pi_gguf_get_arr(g, "arr.f32", PI_GGUF_F32);
    assert_true(pi_gguf_arr_f32(a, 1) == -0.25f);
    a = pi_gguf_get_arr(g, "arr.str", PI_GGUF_STR);
    assert_int_equal(pi_gguf_arr_str(a, 1).len, 0);
    assert_memory_equal(pi_gguf_arr_str(a, 2).ptr, strs[2], strlen(strs[2]));
    assert_int_equal(pi_gguf_n_tensors(g), 2);
    const pi_gguf_tensor *t = pi_gguf_find_tensor(g, "t0");
    assert_non_null(t);
    assert_int_equal(t->ne[1], 2);
    assert_int_equal(t->offset % 64, 0);
    assert_memory_equal(t->data, data, sizeof data);
    t = pi_gguf_find_tensor(g, "t1");
    assert_int_equal(t->offset % 64, 0);
    assert_memory_equal(t->data, data, 128);
    assert_null(pi_gguf_find_tensor(g, "t2"));
    pi_gguf_close(g);
    unlink(tmp_path());
}

/* Copying every value of a file (nested arrays included) reproduces it. */
static void test_set_value_copies_nested_arrays(void **state)
{
    (void)state;
    buf b;
    header(&b, 3, 0, 1);
    str(&b, "nested");
    u32(&b, PI_GGUF_ARR);
    u32(&b, PI_GGUF_ARR);
    u64(&b, 2);
    u32(&b, PI_GGUF_I16); u64(&b, 2); put(&b, (int16_t[]){ -1, 2 }, 4);
    u32(&b, PI_GGUF_STR); u64(&b, 1); str(&b, "x");
    pi_gguf *g = expect_ok(&b);
    pi_err err;
    pi_gguf_writer *w = pi_gguf_writer_new(0);
    assert_int_equal(pi_gguf_set_value(w, "nested", pi_gguf_get(g, "nested"), &err), 0);
    assert_int_equal(pi_gguf_writer_write(w, tmp_path(), &err), 0);
    pi_gguf_writer_free(w);
    FILE *f = fopen(tmp_path(), "rb");
    uint8_t copy[4096];
    size_t n = fread(copy, 1, sizeof copy, f);
    fclose(f);
    /* The writer pads the header to the alignment; the reader accepts both. */
    assert_int_equal(n, (b.n + 31) / 32 * 32);
    assert_memory_equal(copy, b.b, b.n);
    const pi_gguf_arr *outer = pi_gguf_get_arr(g, "nested", PI_GGUF_ARR);
    assert_int_equal(pi_gguf_arr_i64(&outer->items[0].v.arr, 0), -1);
    assert_memory_equal(pi_gguf_arr_str(&outer->items[1].v.arr, 0).ptr, "x", 1);
    pi_gguf_close(g);
    unlink(tmp_path());
}

static void good_file(buf *b)
{
    header(b, 3, 2, 2);
    str(b, "general.architecture"); u32(b, PI_GGUF_STR); str(b, "llama");
    str(b, "general.alignment"); u32(b, PI_GGUF_U32); u32(b, 32);
    tensor_info(b, "a", 32, PI_TYPE_Q8_0, 0);
    tensor_info(b, "b", 8, PI_TYPE_F32, 64);
    pad_to(b, 32);
    for (int i = 0; i < 96; i++)
        b->b[b->n++] = (uint8_t)i;
}

static void test_reader_accepts_a_minimal_valid_file(void **state)
{
    (void)state;
    buf b;
    good_file(&b);
    pi_gguf *g = expect_ok(&b);
    assert_int_equal(pi_gguf_n_tensors(g), 2);
    assert_int_equal(pi_gguf_tensor_at(g, 0)->size, 34);
    assert_int_equal(pi_gguf_tensor_at(g, 1)->size, 32);
    assert_int_equal(pi_gguf_version(g), 3);
    pi_gguf_close(g);
}

/* Every proper prefix of a valid file is refused cleanly (ASan checks that no
 * byte past the prefix is read). */
static void test_reader_refuses_every_truncation(void **state)
{
    (void)state;
    buf b;
    good_file(&b);
    for (size_t n = 0; n < b.n; n++) {
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, b.b, n);
        pi_err err = { { 0 } };
        pi_gguf *g = pi_gguf_open_memory(copy, n, "cut.gguf", &err);
        if (g)
            fail_msg("prefix of %zu bytes accepted", n);
        assert_true(strncmp(err.msg, "cut.gguf: ", 10) == 0);
        free(copy);
    }
}

static void test_reader_refuses_bad_magic_and_versions(void **state)
{
    (void)state;
    buf b;
    good_file(&b);
    b.b[0] = 'X';
    expect_error(&b, "not a GGUF file");
    header(&b, 1, 0, 0);
    expect_error(&b, "version 1");
    header(&b, 0x03000000, 0, 0);
    expect_error(&b, "big-endian");
    header(&b, 4, 0, 0);
    expect_error(&b, "unsupported GGUF version 4");
    header(&b, 2, 0, 0);
    pi_gguf_close(expect_ok(&b));
}

static void test_reader_refuses_absurd_counts_and_lengths(void **state)
{
    (void)state;
    buf b;
    header(&b, 3, 0, UINT64_MAX);
    expect_error(&b, "metadata count");
    header(&b, 3, 1ull << 60, 0);
    expect_error(&b, "tensor count");
    header(&b, 3, 0, 1);
    u64(&b, UINT64_MAX);
    u64(&b, 0);
    u64(&b, 0);
    expect_error(&b, "truncated");
    header(&b, 3, 0, 1);
    str(&b, "k"); u32(&b, PI_GGUF_ARR); u32(&b, PI_GGUF_U32); u64(&b, 1ull << 62);
    expect_error(&b, "exceeds the file");
    header(&b, 3, 0, 1);
    str(&b, "k"); u32(&b, PI_GGUF_ARR); u32(&b, PI_GGUF_STR); u64(&b, UINT64_MAX);
    expect_error(&b, "exceeds the file");
    header(&b, 3, 0, 1);
    str(&b, "k"); u32(&b, 13); u32(&b, 0);
    expect_error(&b, "unknown value type 13");
    header(&b, 3, 0, 1);
    str(&b, "k"); u32(&b, PI_GGUF_ARR); u32(&b, 99); u64(&b, 0);
    expect_error(&b, "unknown array element type");
}

static void test_reader_limits_array_nesting(void **state)
{
    (void)state;
    buf b;
    header(&b, 3, 0, 1);
    str(&b, "deep");
    u32(&b, PI_GGUF_ARR);
    for (int i = 0; i < 100; i++) {
        u32(&b, PI_GGUF_ARR);
        u64(&b, 1);
    }
    expect_error(&b, "nested deeper");
}

static void test_reader_refuses_duplicate_and_bad_keys(void **state)
{
    (void)state;
    buf b;
    header(&b, 3, 0, 2);
    str(&b, "k"); u32(&b, PI_GGUF_U8); b.b[b.n++] = 1;
    str(&b, "k"); u32(&b, PI_GGUF_U8); b.b[b.n++] = 2;
    expect_error(&b, "duplicate metadata key 'k'");
    header(&b, 3, 0, 1);
    u64(&b, 3); put(&b, "a\0b", 3); u32(&b, PI_GGUF_U8); b.b[b.n++] = 1;
    expect_error(&b, "NUL");
    header(&b, 3, 0, 1);
    str(&b, ""); u32(&b, PI_GGUF_U8); b.b[b.n++] = 1;
    expect_error(&b, "empty");
    header(&b, 3, 0, 1);
    str(&b, "general.alignment"); u32(&b, PI_GGUF_U32); u32(&b, 48);
    expect_error(&b, "power of two");
}

/* One tensor table entry broken at a time. */
static void test_reader_refuses_bad_tensor_tables(void **state)
{
    (void)state;
    buf b;
    const struct { const char *a, *b; uint64_t ne_b, off_b; uint32_t type_b; const char *want; }
        cases[] = {
            { "a", "b", 8, 64, PI_TYPE_F32, NULL },
            { "a", "b", 8, 4096, PI_TYPE_F32, "beyond end of file" },
            { "a", "b", 64, 64, PI_TYPE_F32, "beyond end of file" },
            { "a", "b", 8, 33, PI_TYPE_F32, "not a multiple of the alignment" },
            { "a", "b", 8, 32, PI_TYPE_F32, "overlap" },
            { "a", "a", 8, 64, PI_TYPE_F32, "duplicate tensor name" },
            { "a", "b", 8, 64, 4, "unknown type 4" },
            { "a", "b", 8, 64, 1000, "unknown type 1000" },
            { "a", "b", 8, 64, PI_TYPE_Q4_0, "not a multiple of Q4_0" },
            { "a", "b", 1ull << 63, 64, PI_TYPE_F32, "dimension 0" },
        };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        header(&b, 3, 2, 0);
        tensor_info(&b, cases[i].a, 32, PI_TYPE_Q8_0, 0);
        tensor_info(&b, cases[i].b, cases[i].ne_b, cases[i].type_b, cases[i].off_b);
        pad_to(&b, 32);
        memset(b.b + b.n, 0, 96);
        b.n += 96;
        if (cases[i].want)
            expect_error(&b, cases[i].want);
        else
            pi_gguf_close(expect_ok(&b));
    }
    header(&b, 3, 1, 0);
    str(&b, "big"); u32(&b, 4);
    for (int d = 0; d < 4; d++)
        u64(&b, 1ull << 10);
    u32(&b, PI_TYPE_F32); u64(&b, 0);
    pad_to(&b, 32);
    memset(b.b + b.n, 0, 64);
    b.n += 64;
    expect_error(&b, "beyond end of file");
    header(&b, 3, 1, 0);
    str(&b, "huge"); u32(&b, 4);
    for (int d = 0; d < 4; d++)
        u64(&b, 1ull << 40);
    u32(&b, PI_TYPE_F32); u64(&b, 0);
    pad_to(&b, 32);
    expect_error(&b, "overflows");
    header(&b, 3, 1, 0);
    str(&b, "dims"); u32(&b, 5);
    pad_to(&b, 32);
    memset(b.b + b.n, 0, 64);
    b.n += 64;
    expect_error(&b, "5 dimensions");
}

static void test_fingerprint_tracks_names_shapes_and_data(void **state)
{
    (void)state;
    buf b;
    good_file(&b);
    pi_gguf *g = expect_ok(&b);
    uint64_t f0 = pi_gguf_fingerprint(g);
    pi_gguf_close(g);
    g = expect_ok(&b);
    assert_true(pi_gguf_fingerprint(g) == f0); /* deterministic */
    pi_gguf_close(g);
    b.n -= 1; /* last data byte of tensor b changes */
    b.b[b.n++] ^= 0xff;
    g = expect_ok(&b);
    assert_true(pi_gguf_fingerprint(g) != f0);
    pi_gguf_close(g);
}

static void test_open_reports_missing_file(void **state)
{
    (void)state;
    pi_err err;
    assert_null(pi_gguf_open("/nonexistent/x.gguf", &err));
    assert_non_null(strstr(err.msg, "/nonexistent/x.gguf: "));
    assert_null(pi_gguf_open("/tmp", &err));
    assert_non_null(strstr(err.msg, "directory"));
    assert_null(pi_gguf_open_memory(NULL, 0, "empty.gguf", &err));
    assert_string_equal(err.msg, "empty.gguf: empty file");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writer_round_trips_every_value_type),
        cmocka_unit_test(test_set_value_copies_nested_arrays),
        cmocka_unit_test(test_reader_accepts_a_minimal_valid_file),
        cmocka_unit_test(test_reader_refuses_every_truncation),
        cmocka_unit_test(test_reader_refuses_bad_magic_and_versions),
        cmocka_unit_test(test_reader_refuses_absurd_counts_and_lengths),
        cmocka_unit_test(test_reader_limits_array_nesting),
        cmocka_unit_test(test_reader_refuses_duplicate_and_bad_keys),
        cmocka_unit_test(test_reader_refuses_bad_tensor_tables),
        cmocka_unit_test(test_fingerprint_tracks_names_shapes_and_data),
        cmocka_unit_test(test_open_reports_missing_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
