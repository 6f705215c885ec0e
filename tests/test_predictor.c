/*
 * Tests of the predictor module: the matrix product against the plain
 * triple loop, logits and selection, the file round trip, and the loader's
 * refusal of files that are not, or not entirely, predictors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cpu.h"
#include "gguf_write.h"
#include "predictor.h"

#define D 20  /* n_embd: not a multiple of 8, so every edge path runs */
#define FF 37 /* n_ff */

static uint64_t rng_state = 1;
static float frand(void) /* uniform in [-1, 1) */
{
    rng_state = rng_state * 6364136223846793005u + 1442695040888963407u;
    return (float)(rng_state >> 40) * 0x1p-23f - 1.0f;
}

static float *random_floats(size_t n, float scale)
{
    float *v = malloc(n * sizeof *v);
    assert_non_null(v);
    for (size_t i = 0; i < n; i++)
        v[i] = scale * frand();
    return v;
}

static char *tmp_path(const char *what)
{
    static char path[2][96];
    static int k;
    k ^= 1;
    snprintf(path[k], sizeof path[k], "/tmp/pi-test-predictor-%d-%s.gguf", (int)getpid(), what);
    return path[k];
}

/* A predictor of three layers, the middle one absent. */
static pi_predictor *make_predictor(pi_type wtype)
{
    pi_err err;
    pi_predictor *p = pi_predictor_new(3, D, FF, 0x0123456789abcdefu, &err);
    assert_non_null(p);
    assert_int_equal(pi_predictor_set_wtype(p, wtype, &err), 0);
    int ranks[3] = { 5, 0, 9 };
    for (int il = 0; il < 3; il++) {
        int r = ranks[il];
        float *w1 = random_floats((size_t)r * D + 1, 0.5f), *b1 = random_floats((size_t)r + 1, 0.1f);
        float *w2 = random_floats((size_t)FF * r + 1, 0.5f), *b2 = random_floats(FF, 0.1f);
        assert_int_equal(pi_predictor_set_layer(p, il, r, w1, b1, w2, b2, 0.05f * il, &err), 0);
        free(w1);
        free(b1);
        free(w2);
        free(b2);
    }
    pi_predictor_set_meta(p, &(pi_predictor_meta){ 0.99f, 0.95f, NAN });
    return p;
}

/* ---- the matrix product ---- */

static void naive(int m, int n, int k, const float *a, int lda, const float *b, int ldb, float *c,
                  int ldc, int fused)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            float s = c[i * ldc + j];
            for (int l = 0; l < k; l++)
                s = fused ? fmaf(a[i * lda + l], b[l * ldb + j], s) : s + a[i * lda + l] * b[l * ldb + j];
            c[i * ldc + j] = s;
        }
}

static void test_gemm_equals_the_triple_loop(void **state)
{
    (void)state;
    const pi_cpu *cpu = pi_cpu_features();
    int sizes[] = { 0, 1, 3, 4, 7, 8, 9, 15, 16, 17, 33 };
    int ns = (int)(sizeof sizes / sizeof *sizes);
    for (int im = 0; im < ns; im++)
        for (int in = 0; in < ns; in++)
            for (int ik = 0; ik < 5; ik++) {
                int m = sizes[im], n = sizes[in], k = sizes[ik * 2];
                int lda = k + 3, ldb = n + 5, ldc = n + 2;
                float *a = random_floats((size_t)(m * lda + 1), 1), *b = random_floats((size_t)(k * ldb + 1), 1);
                float *c0 = random_floats((size_t)(m * ldc + 1), 1);
                float *c1 = malloc((size_t)(m * ldc + 1) * sizeof *c1), *c2 = malloc((size_t)(m * ldc + 1) * sizeof *c2);
                for (int v = 0; v < 2; v++) {
                    if (v && !(cpu->avx2 && cpu->fma))
                        break;
                    memcpy(c1, c0, (size_t)(m * ldc + 1) * sizeof *c1);
                    memcpy(c2, c0, (size_t)(m * ldc + 1) * sizeof *c2);
                    naive(m, n, k, a, lda, b, ldb, c1, ldc, v);
                    (v ? pi_predictor_gemm_avx2 : pi_predictor_gemm_scalar)(m, n, k, a, lda, b, ldb, c2, ldc);
                    if (memcmp(c1, c2, (size_t)(m * ldc + 1) * sizeof *c1))
                        fail_msg("%s gemm differs from the triple loop at %d x %d x %d",
                                 v ? "AVX2" : "scalar", m, n, k);
                }
                free(a);
                free(b);
                free(c0);
                free(c1);
                free(c2);
            }
}

/* ---- logits and selection ---- */

static void test_logits_match_a_double_reference(void **state)
{
    (void)state;
    pi_predictor *p = make_predictor(PI_TYPE_F32);
    pi_predictor_layer ly;
    assert_int_equal(pi_predictor_get_layer(p, 2, &ly), 0);
    int n = 7;
    float *x = random_floats((size_t)n * D, 2), *z = malloc((size_t)n * FF * sizeof *z);
    assert_int_equal(pi_predictor_layer_logits(p, 2, x, n, z), 0);
    for (int t = 0; t < n; t++) {
        double h[9];
        for (int j = 0; j < ly.rank; j++) {
            h[j] = ly.b1[j];
            for (int k = 0; k < D; k++)
                h[j] += (double)ly.w1[j * D + k] * x[t * D + k];
            h[j] = h[j] > 0 ? h[j] : 0;
        }
        for (int i = 0; i < FF; i++) {
            double zi = ly.b2[i];
            for (int j = 0; j < ly.rank; j++)
                zi += (double)ly.w2[i * ly.rank + j] * h[j];
            assert_true(fabs(zi - z[t * FF + i]) < 1e-5 * (1 + fabs(zi)));
        }
    }
    assert_int_equal(pi_predictor_layer_logits(p, 1, x, n, z), -1); /* absent */
    assert_int_equal(pi_predictor_layer_logits(p, 3, x, n, z), -1); /* out of range */
    free(x);
    free(z);
    pi_predictor_free(p);
}

static void test_select_agrees_with_logits_above_threshold(void **state)
{
    (void)state;
    pi_predictor *p = make_predictor(PI_TYPE_F16);
    int n = 40;
    float *x = random_floats((size_t)n * D, 2), *z = malloc((size_t)n * FF * sizeof *z);
    float one[FF];
    int32_t idx[FF];
    assert_int_equal(pi_predictor_layer_logits(p, 0, x, n, z), 0);
    int total = 0;
    for (int t = 0; t < n; t++) {
        int count = pi_predictor_select(p, 0, x + t * D, one, idx);
        /* One token at a time gives the batch's logits bit for bit. */
        assert_memory_equal(one, z + t * FF, sizeof one);
        int c = 0;
        for (int i = 0; i < FF; i++)
            if (z[t * FF + i] > 0.0f) {
                assert_true(c < count);
                assert_int_equal(idx[c++], i);
            }
        assert_int_equal(c, count);
        total += count;
    }
    assert_true(total > 0 && total < n * FF);
    assert_int_equal(pi_predictor_select(p, 1, x, one, idx), -1);
    assert_int_equal(pi_predictor_set_threshold(p, 0, 1e9f), 0);
    assert_int_equal(pi_predictor_select(p, 0, x, one, idx), 0);
    assert_int_equal(pi_predictor_set_threshold(p, 0, NAN), -1);
    assert_int_equal(pi_predictor_set_threshold(p, 1, 0.0f), -1);
    free(x);
    free(z);
    pi_predictor_free(p);
}

static void test_set_layer_rounds_and_refuses_bad_values(void **state)
{
    (void)state;
    pi_err err;
    pi_predictor *p = pi_predictor_new(1, 2, 3, 7, &err);
    float w1[2] = { 0.1f, 1e5f }, b1[1] = { 0 }, w2[3] = { 1, 2, 3 }, b2[3] = { 0 };
    assert_int_equal(pi_predictor_set_layer(p, 0, 1, w1, b1, w2, b2, 0, &err), -1);
    assert_non_null(strstr(err.msg, "out of F16 range"));
    assert_int_equal(pi_predictor_set_wtype(p, PI_TYPE_F32, &err), 0);
    assert_int_equal(pi_predictor_set_layer(p, 0, 1, w1, b1, w2, b2, 0, &err), 0);
    assert_int_equal(pi_predictor_set_wtype(p, PI_TYPE_F16, &err), -1); /* 1e5 does not fit */
    assert_int_equal(pi_predictor_wtype(p), PI_TYPE_F32);
    w1[1] = 0.3f;
    assert_int_equal(pi_predictor_set_layer(p, 0, 1, w1, b1, w2, b2, 0, &err), 0);
    assert_int_equal(pi_predictor_set_wtype(p, PI_TYPE_F16, &err), 0);
    pi_predictor_layer ly;
    pi_predictor_get_layer(p, 0, &ly);
    assert_true(ly.w1[0] != 0.1f && fabsf(ly.w1[0] - 0.1f) < 1e-4f); /* rounded to F16 */
    b2[2] = NAN;
    assert_int_equal(pi_predictor_set_layer(p, 0, 1, w1, b1, w2, b2, 0, &err), -1);
    assert_non_null(strstr(err.msg, "b2[2] is not finite"));
    pi_predictor_get_layer(p, 0, &ly);
    assert_int_equal(ly.rank, 1); /* unchanged */
    assert_int_equal(pi_predictor_set_layer(p, 0, PI_PREDICTOR_MAX_RANK + 1, w1, b1, w2, b2, 0, &err), -1);
    assert_int_equal(pi_predictor_set_layer(p, 1, 1, w1, b1, w2, b2, 0, &err), -1);
    assert_int_equal(pi_predictor_set_layer(p, 0, 0, NULL, NULL, NULL, NULL, 0, &err), 0);
    pi_predictor_get_layer(p, 0, &ly);
    assert_int_equal(ly.rank, 0);
    assert_null(ly.w1);
    assert_int_equal(pi_predictor_set_wtype(p, PI_TYPE_Q8_0, &err), -1);
    pi_predictor_free(p);
    assert_null(pi_predictor_new(0, 2, 3, 0, &err));
    assert_null(pi_predictor_new(1, PI_PREDICTOR_MAX_DIM + 1, 3, 0, &err));
    pi_predictor_free(NULL);
}

/* ---- the file ---- */

static void expect_same(const pi_predictor *a, const pi_predictor *b)
{
    assert_int_equal(pi_predictor_n_layer(a), pi_predictor_n_layer(b));
    assert_int_equal(pi_predictor_n_embd(a), pi_predictor_n_embd(b));
    assert_int_equal(pi_predictor_n_ff(a), pi_predictor_n_ff(b));
    assert_true(pi_predictor_fingerprint(a) == pi_predictor_fingerprint(b));
    assert_int_equal(pi_predictor_wtype(a), pi_predictor_wtype(b));
    for (int il = 0; il < pi_predictor_n_layer(a); il++) {
        pi_predictor_layer x, y;
        pi_predictor_get_layer(a, il, &x);
        pi_predictor_get_layer(b, il, &y);
        assert_int_equal(x.rank, y.rank);
        if (!x.rank)
            continue;
        int r = x.rank;
        assert_true(x.threshold == y.threshold);
        assert_memory_equal(x.w1, y.w1, (size_t)r * D * sizeof(float));
        assert_memory_equal(x.b1, y.b1, (size_t)r * sizeof(float));
        assert_memory_equal(x.w2, y.w2, (size_t)r * FF * sizeof(float));
        assert_memory_equal(x.b2, y.b2, (size_t)FF * sizeof(float));
    }
}

static void test_save_and_load_round_trip(void **state)
{
    (void)state;
    for (int v = 0; v < 2; v++) {
        pi_type wtype = v ? PI_TYPE_F32 : PI_TYPE_F16;
        rng_state = 42;
        pi_predictor *p = make_predictor(wtype);
        /* The values held are the inputs within F16 precision. */
        rng_state = 42;
        float *w1 = random_floats(5 * D + 1, 0.5f);
        pi_predictor_layer ly;
        pi_predictor_get_layer(p, 0, &ly);
        for (int i = 0; i < 5 * D; i++)
            assert_true(fabsf(ly.w1[i] - w1[i]) <= (v ? 0 : fabsf(w1[i]) * 0x1p-11f));
        free(w1);
        pi_err err;
        const char *path = tmp_path("rt");
        assert_int_equal(pi_predictor_save(p, path, &err), 0);
        pi_predictor *q = pi_predictor_load(path, &err);
        if (!q)
            fail_msg("%s", err.msg);
        expect_same(p, q);
        pi_predictor_meta m = pi_predictor_get_meta(q);
        assert_true(m.recall_target == 0.99f && m.keep_mass == 0.95f && isnan(m.label_threshold));
        /* The file's tensors have the storage type: F16 halves the weights. */
        pi_gguf *g = pi_gguf_open(path, &err);
        assert_int_equal(pi_gguf_find_tensor(g, "pred.2.w2")->type, wtype);
        assert_int_equal(pi_gguf_find_tensor(g, "pred.2.w2")->ne[0], 9);
        assert_int_equal(pi_gguf_find_tensor(g, "pred.2.w2")->ne[1], FF);
        assert_int_equal(pi_gguf_find_tensor(g, "pred.2.b1")->type, PI_TYPE_F32);
        assert_null(pi_gguf_find_tensor(g, "pred.1.w1"));
        pi_gguf_close(g);
        pi_predictor_free(q);
        pi_predictor_free(p);
        unlink(path);
    }
}

/* A predictor file written field by field, with one thing broken. */
typedef struct breakage {
    const char *arch;        /* NULL: "pi-predictor" */
    uint32_t version;        /* 0: current */
    bool no_fingerprint;
    int rank_count;          /* entries of the rank array (0: n_layer) */
    const char *skip;        /* tensor left out */
    const char *reshape;     /* tensor given one row too many */
    const char *poison;      /* tensor with a NaN */
    const char *extra;       /* one more tensor */
    bool f16_bias;           /* b1 as F16 */
} breakage;

static void write_broken(const char *path, const breakage *bk)
{
    pi_err err;
    pi_gguf_writer *w = pi_gguf_writer_new(0);
    uint32_t ranks[2] = { 3, 0 };
    float thr[2] = { 0.5f, 0 };
    assert_int_equal(pi_gguf_set_str(w, "general.architecture", bk->arch ? bk->arch : "pi-predictor", &err), 0);
    pi_gguf_set_u32(w, "pi.predictor.version", bk->version ? bk->version : 1, &err);
    if (!bk->no_fingerprint)
        pi_gguf_set_u64(w, "pi.predictor.fingerprint", 99, &err);
    pi_gguf_set_u32(w, "pi.predictor.n_layer", 2, &err);
    pi_gguf_set_u32(w, "pi.predictor.n_embd", D, &err);
    pi_gguf_set_u32(w, "pi.predictor.n_ff", FF, &err);
    pi_gguf_set_arr(w, "pi.predictor.rank", PI_GGUF_U32, ranks, (uint64_t)(bk->rank_count ? bk->rank_count : 2), &err);
    pi_gguf_set_arr(w, "pi.predictor.threshold", PI_GGUF_F32, thr, 2, &err);
    /* The writer reads tensor data only when it writes: one buffer each. */
    static float data[5][4096];
    static uint16_t half[5][4096];
    const char *names[5] = { "pred.0.w1", "pred.0.b1", "pred.0.w2", "pred.0.b2", bk->extra };
    int64_t shapes[5][2] = { { D, 3 }, { 3, 1 }, { 3, FF }, { FF, 1 }, { 4, 1 } };
    for (int t = 0; t < 5; t++) {
        if (!names[t] || (bk->skip && !strcmp(bk->skip, names[t])))
            continue;
        bool weight = t == 0 || t == 2, f16 = weight || (t == 1 && bk->f16_bias);
        int64_t ne[2] = { shapes[t][0], shapes[t][1] };
        if (bk->reshape && !strcmp(bk->reshape, names[t]))
            ne[weight ? 1 : 0]++;
        for (int i = 0; i < 4096; i++) {
            data[t][i] = 0.01f * (float)(i % 17);
            half[t][i] = pi_f32_to_f16(data[t][i]);
        }
        if (bk->poison && !strcmp(bk->poison, names[t])) {
            data[t][2] = NAN;
            half[t][2] = 0x7e00;
        }
        uint64_t n = (uint64_t)(ne[0] * ne[1]);
        assert_int_equal(pi_gguf_add_tensor(w, names[t], f16 ? PI_TYPE_F16 : PI_TYPE_F32,
                                            weight || t == 4 ? 2 : 1, ne,
                                            f16 ? (void *)half[t] : (void *)data[t],
                                            n * (f16 ? 2 : 4), &err), 0);
    }
    assert_int_equal(pi_gguf_writer_write(w, path, &err), 0);
    pi_gguf_writer_free(w);
}

static void expect_refused(const breakage *bk, const char *want)
{
    const char *path = tmp_path("bad");
    write_broken(path, bk);
    pi_err err = { { 0 } };
    pi_predictor *p = pi_predictor_load(path, &err);
    if (p || !strstr(err.msg, want) || strncmp(err.msg, path, strlen(path)))
        fail_msg("wanted an error containing '%s', got %s'%s'", want, p ? "success " : "", err.msg);
    unlink(path);
}

static void test_loader_accepts_the_hand_written_file(void **state)
{
    (void)state;
    const char *path = tmp_path("good");
    write_broken(path, &(breakage){ 0 });
    pi_err err;
    pi_predictor *p = pi_predictor_load(path, &err);
    if (!p)
        fail_msg("%s", err.msg);
    pi_predictor_layer ly;
    pi_predictor_get_layer(p, 0, &ly);
    assert_int_equal(ly.rank, 3);
    assert_true(ly.threshold == 0.5f);
    assert_true(ly.w2[5] == pi_f16_to_f32(pi_f32_to_f16(0.05f)));
    assert_true(ly.b2[5] == 0.01f * 5.0f);
    assert_true(pi_predictor_fingerprint(p) == 99);
    assert_true(isnan(pi_predictor_get_meta(p).recall_target));
    pi_predictor_free(p);
    unlink(path);
}

static void test_loader_refuses_broken_files(void **state)
{
    (void)state;
    expect_refused(&(breakage){ .arch = "llama" }, "not a predictor file (architecture 'llama')");
    expect_refused(&(breakage){ .version = 2 }, "predictor format version 2");
    expect_refused(&(breakage){ .no_fingerprint = true }, "pi.predictor.fingerprint");
    expect_refused(&(breakage){ .rank_count = 1 }, "pi.predictor.rank has 1 entries for 2 layers");
    expect_refused(&(breakage){ .skip = "pred.0.b2" }, "missing tensor 'pred.0.b2'");
    expect_refused(&(breakage){ .reshape = "pred.0.w1" },
                   "tensor 'pred.0.w1' has shape [20, 4], expected [20, 3]");
    expect_refused(&(breakage){ .reshape = "pred.0.b2" },
                   "tensor 'pred.0.b2' has shape [38, 1], expected [37, 1]");
    expect_refused(&(breakage){ .poison = "pred.0.w2" }, "tensor 'pred.0.w2': element 2 is not finite");
    expect_refused(&(breakage){ .poison = "pred.0.b1" }, "tensor 'pred.0.b1': element 2 is not finite");
    expect_refused(&(breakage){ .f16_bias = true }, "tensor 'pred.0.b1' has type F16, expected F32");
    expect_refused(&(breakage){ .extra = "pred.1.w1" }, "unexpected tensor 'pred.1.w1'");
    expect_refused(&(breakage){ .extra = "pred.00.b1" }, "unexpected tensor 'pred.00.b1'");
    expect_refused(&(breakage){ .extra = "token_embd" }, "unexpected tensor 'token_embd'");
}

static void test_loader_refuses_every_truncation(void **state)
{
    (void)state;
    pi_predictor *p = make_predictor(PI_TYPE_F16);
    pi_err err;
    const char *path = tmp_path("whole"), *cut = tmp_path("cut");
    assert_int_equal(pi_predictor_save(p, path, &err), 0);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static uint8_t buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    assert_true(n > 0 && n < sizeof buf);
    for (size_t len = 0; len < n; len += len < 512 ? 1 : 97) {
        f = fopen(cut, "wb");
        assert_int_equal(fwrite(buf, 1, len, f), len);
        fclose(f);
        pi_predictor *q = pi_predictor_load(cut, &err);
        if (q)
            fail_msg("a file cut to %zu of %zu bytes was accepted", len, n);
        assert_non_null(strstr(err.msg, cut));
    }
    unlink(cut);
    unlink(path);
    pi_predictor_free(p);
}

static void test_save_refuses_an_unwritable_path(void **state)
{
    (void)state;
    pi_predictor *p = make_predictor(PI_TYPE_F16);
    pi_err err;
    assert_int_equal(pi_predictor_save(p, "/nonexistent/dir/p.gguf", &err), -1);
    assert_non_null(strstr(err.msg, "/nonexistent/dir/p.gguf"));
    assert_null(pi_predictor_load("/nonexistent/dir/p.gguf", &err));
    pi_predictor_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm_equals_the_triple_loop),
        cmocka_unit_test(test_logits_match_a_double_reference),
        cmocka_unit_test(test_select_agrees_with_logits_above_threshold),
        cmocka_unit_test(test_set_layer_rounds_and_refuses_bad_values),
        cmocka_unit_test(test_save_and_load_round_trip),
        cmocka_unit_test(test_loader_accepts_the_hand_written_file),
        cmocka_unit_test(test_loader_refuses_broken_files),
        cmocka_unit_test(test_loader_refuses_every_truncation),
        cmocka_unit_test(test_save_refuses_an_unwritable_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
