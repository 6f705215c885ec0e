/*
 * Tests of the packinfo reader (the pi.* section of a packed model) on
 * small GGUFs written here, one defect at a time, and of the writer's
 * tensors filled by a callback at write time.
 */
#include <dirent.h>
#include <math.h>
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
#include "packinfo.h"
#include "quant.h"

#define NL 3
#define FF 8
#define NE 2            /* a mixture of experts: NE experts of FE neurons, FF in all */
#define FE (FF / NE)

static char dir[64]; /* a fresh directory for the whole run */

static char *in_dir(const char *name)
{
    static char path[sizeof dir + 260]; /* room for any directory entry */
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return path;
}

/* ---- a section, valid or with one thing changed ------------------------ */

typedef struct section {
    const char *skip[3];  /* keys left out */
    uint32_t version;     /* 0: PI_PACK_VERSION */
    float freq_level;
    uint64_t freq_n, perm_n, n_gpu_n; /* entries written */
    bool freq_u32;        /* pi.ffn.freq as u32 */
    bool plan;            /* the three pi.placement keys */
    uint64_t budget;
    uint32_t ctx;
    uint16_t freq[NL * FF + 1];
    uint32_t perm[NL * FF + 1];
    uint32_t n_gpu[NL];
    int n_expert;         /* a mixture of experts' section (NE) when not 0 */
    uint64_t usage_n;     /* pi.moe.usage entries written; 0: none */
    float usage[NL * NE + 1];
} section;

/* Frequencies falling within each layer (ties included) and jumping back up
 * at each layer's start; a different permutation in every layer. */
static section valid(void)
{
    section s = { .freq_level = 0.95f, .freq_n = NL * FF, .perm_n = NL * FF, .n_gpu_n = NL,
                  .plan = true, .budget = 123456789, .ctx = 4096, .n_gpu = { 0, 3, FF } };
    static const uint16_t f[FF] = { 65535, 40000, 40000, 1234, 7, 1, 0, 0 };
    for (int il = 0; il < NL; il++)
        for (int j = 0; j < FF; j++) {
            s.freq[il * FF + j] = (uint16_t)(j ? f[j] / (il + 1) : 65535);
            s.perm[il * FF + j] = (uint32_t)((j * 3 + il) % FF);
        }
    return s;
}

/* A mixture of experts' section: in layer il the experts swapped when il is
 * even, each expert's rows in another order, frequencies falling within
 * each expert and rising again at the next one; no plan. */
static section valid_moe(void)
{
    section s = valid();
    static const uint16_t f[FE] = { 60000, 500, 500, 0 };
    static const float use[NE] = { 0.75f, 0.25f };
    s.plan = false;
    s.n_expert = NE;
    s.usage_n = NL * NE;
    for (int il = 0; il < NL; il++)
        for (int b = 0; b < NE; b++) {
            int x = il % 2 ? b : NE - 1 - b;
            s.usage[il * NE + b] = use[b];
            for (int j = 0; j < FE; j++) {
                s.freq[il * FF + b * FE + j] = (uint16_t)(f[j] / (b + 1));
                s.perm[il * FF + b * FE + j] = (uint32_t)(x * FE + (j * 3 + il) % FE);
            }
        }
    return s;
}

static bool skipped(const section *s, const char *key)
{
    for (int i = 0; i < 3; i++)
        if (s->skip[i] && !strcmp(s->skip[i], key))
            return true;
    return false;
}

static void write_section(const section *s, const char *path)
{
    pi_err err;
    pi_gguf_writer *w = pi_gguf_writer_new(0);
    assert_non_null(w);
    uint32_t freq32[NL * FF + 1];
    for (uint64_t i = 0; i < s->freq_n; i++)
        freq32[i] = s->freq[i];
    float emb[4] = { 1, 2, 3, 4 };
    int64_t ne[1] = { 4 };
    int rc = pi_gguf_set_str(w, "general.architecture", s->n_expert ? "qwen3moe" : "llama", &err) ||
             pi_gguf_set_u32(w, s->n_expert ? "qwen3moe.block_count" : "llama.block_count", NL,
                             &err) ||
             pi_gguf_set_u32(w, s->n_expert ? "qwen3moe.expert_count" : "llama.feed_forward_length",
                             s->n_expert ? NE : FF, &err) ||
             (s->n_expert && pi_gguf_set_u32(w, "qwen3moe.expert_feed_forward_length", FE, &err)) ||
             pi_gguf_add_tensor(w, "token_embd.weight", PI_TYPE_F32, 1, ne, emb, sizeof emb, &err);
#define KEY(k, call) do { if (!rc && !skipped(s, k)) rc = (call); } while (0)
    uint32_t version = s->version ? s->version : PI_PACK_VERSION;
    KEY("pi.version", pi_gguf_set_u32(w, "pi.version", version, &err));
    KEY("pi.source.fingerprint",
        pi_gguf_set_u64(w, "pi.source.fingerprint", 0xfeedface12345678ull, &err));
    KEY("pi.ffn.freq_level", pi_gguf_set_f32(w, "pi.ffn.freq_level", s->freq_level, &err));
    KEY("pi.ffn.stats_tokens", pi_gguf_set_u64(w, "pi.ffn.stats_tokens", 100000, &err));
    KEY("pi.ffn.freq",
        s->freq_u32 ? pi_gguf_set_arr(w, "pi.ffn.freq", PI_GGUF_U32, freq32, s->freq_n, &err)
                    : pi_gguf_set_arr(w, "pi.ffn.freq", PI_GGUF_U16, s->freq, s->freq_n, &err));
    KEY("pi.ffn.perm", pi_gguf_set_arr(w, "pi.ffn.perm", PI_GGUF_U32, s->perm, s->perm_n, &err));
    if (s->usage_n)
        KEY("pi.moe.usage",
            pi_gguf_set_arr(w, "pi.moe.usage", PI_GGUF_F32, s->usage, s->usage_n, &err));
    if (s->plan) {
        KEY("pi.placement.budget", pi_gguf_set_u64(w, "pi.placement.budget", s->budget, &err));
        KEY("pi.placement.ctx", pi_gguf_set_u32(w, "pi.placement.ctx", s->ctx, &err));
        KEY("pi.placement.n_gpu", pi_gguf_set_arr(w, "pi.placement.n_gpu", PI_GGUF_U32,
                                                  s->n_gpu, s->n_gpu_n, &err));
    }
#undef KEY
    if (rc || pi_gguf_writer_write(w, path, &err))
        fail_msg("%s", err.msg);
    pi_gguf_writer_free(w);
}

/* Writes and reads back s; the file is closed before *p is looked at, so
 * the section must not point into it. */
static int read_section(const section *s, pi_packinfo *p, pi_err *err)
{
    char *path = in_dir("s.gguf");
    write_section(s, path);
    pi_gguf *g = pi_gguf_open(path, err);
    if (!g)
        fail_msg("%s", err->msg);
    memset(p, 0x5a, sizeof *p); /* whatever the caller had there */
    int rc = s->n_expert ? pi_packinfo_read_moe(g, NL, s->n_expert, FF / s->n_expert, p, err)
                         : pi_packinfo_read(g, NL, FF, p, err);
    pi_gguf_close(g);
    unlink(path);
    return rc;
}

/* s is refused with a message naming the file and containing want (and
 * want2 when given), and leaves *p empty. */
static void expect_refused(const section *s, const char *want, const char *want2)
{
    pi_packinfo p, empty = { 0 };
    pi_err err = { { 0 } };
    if (read_section(s, &p, &err) != -1)
        fail_msg("accepted; wanted an error containing '%s'", want);
    if (strncmp(err.msg, in_dir("s.gguf"), strlen(in_dir("s.gguf"))) || !strstr(err.msg, want) ||
        (want2 && !strstr(err.msg, want2)))
        fail_msg("wanted an error naming the file and '%s'%s%s, got '%s'", want,
                 want2 ? " and " : "", want2 ? want2 : "", err.msg);
    assert_memory_equal(&p, &empty, sizeof p);
    pi_packinfo_free(&p);
}

/* A valid section with `change` made to s, refused with want (and want2). */
#define REFUSED(change, want, want2) \
    do { section s = valid(); change; expect_refused(&s, want, want2); } while (0)

/* ---- the section -------------------------------------------------------- */

static void test_valid_section_reads_back_exactly(void **state)
{
    (void)state;
    for (int plan = 1; plan >= 0; plan--) {
        section s = valid();
        s.plan = plan;
        pi_packinfo p;
        pi_err err;
        if (read_section(&s, &p, &err))
            fail_msg("%s", err.msg);
        assert_true(p.n_layer == NL && p.n_ff == FF && p.stats_tokens == 100000);
        assert_true(p.source_fingerprint == 0xfeedface12345678ull && p.freq_level == 0.95f);
        for (int il = 0; il < NL; il++)
            for (int j = 0; j < FF; j++) {
                assert_true(pi_packinfo_freq(&p, il)[j] == (float)s.freq[il * FF + j] / 65535.0f);
                assert_int_equal(pi_packinfo_perm(&p, il)[j], s.perm[il * FF + j]);
            }
        assert_true(p.freq[0] == 1.0f && p.freq[FF - 1] == 0.0f);
        assert_int_equal(p.plan_budget, plan ? 123456789 : 0);
        assert_int_equal(p.plan_ctx, plan ? 4096 : 0);
        if (plan)
            assert_memory_equal(p.plan_n_gpu, s.n_gpu, sizeof s.n_gpu);
        else
            assert_null(p.plan_n_gpu);
        pi_packinfo_free(&p);
        assert_null(p.freq);
        pi_packinfo_free(&p); /* an emptied section frees again */
    }
    pi_packinfo_free(NULL);
}

static void test_version_is_required_and_must_be_1(void **state)
{
    (void)state;
    pi_err err;
    for (int with = 0; with < 2; with++) {
        section s = valid();
        s.skip[0] = with ? NULL : "pi.version";
        write_section(&s, in_dir("v.gguf"));
        pi_gguf *g = pi_gguf_open(in_dir("v.gguf"), &err);
        assert_non_null(g);
        assert_int_equal(pi_packinfo_present(g), with);
        pi_gguf_close(g);
        unlink(in_dir("v.gguf"));
        if (!with)
            expect_refused(&s, "pi.version", NULL);
    }
    REFUSED(s.version = 2, "pi.version", "version 2");
    REFUSED(s.version = UINT32_MAX, "pi.version", "4294967295");
}

static void test_scalar_keys_are_required_and_checked(void **state)
{
    (void)state;
    static const char *const keys[] = { "pi.source.fingerprint", "pi.ffn.freq_level",
                                        "pi.ffn.stats_tokens", "pi.ffn.freq", "pi.ffn.perm" };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        REFUSED(s.skip[0] = keys[i], keys[i], NULL);
    static const float levels[] = { 0.0f, -0.5f, 1.5f, NAN, INFINITY };
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++)
        REFUSED(s.freq_level = levels[i], "pi.ffn.freq_level", NULL);
}

static void test_arrays_of_the_wrong_length_or_type_are_refused(void **state)
{
    (void)state;
    REFUSED(s.freq_n = NL * FF - 1, "pi.ffn.freq", "23 entries");
    REFUSED(s.perm_n = NL * FF + 1, "pi.ffn.perm", "25 entries");
    REFUSED(s.freq_u32 = true, "pi.ffn.freq", "wrong type");
}

static void test_freq_may_rise_between_layers_but_not_within_one(void **state)
{
    (void)state;
    section v = valid();
    /* valid() already rises at every layer start; ties are allowed too */
    assert_true(v.freq[FF] > v.freq[FF - 1] && v.freq[1] == v.freq[2]);
    REFUSED(s.freq[FF + 5] = (uint16_t)(s.freq[FF + 4] + 1), "pi.ffn.freq", "layer 1");
}

static void test_perm_must_be_a_permutation_of_each_layer(void **state)
{
    (void)state;
    REFUSED(s.perm[2 * FF + 6] = s.perm[2 * FF + 1], "pi.ffn.perm", "layer 2"); /* duplicate */
    static const uint32_t out[] = { FF, FF + 1, UINT32_MAX, 0x80000000u };
    for (size_t i = 0; i < sizeof out / sizeof out[0]; i++)
        REFUSED(s.perm[3] = out[i], "pi.ffn.perm", "layer 0");
}

static void test_placement_needs_all_three_keys_and_sane_values(void **state)
{
    (void)state;
    static const char *const keys[3] = { "pi.placement.budget", "pi.placement.ctx",
                                         "pi.placement.n_gpu" };
    for (int mask = 1; mask < 7; mask++) { /* each set of keys but none and all */
        section s = valid();
        for (int k = 0, n = 0; k < 3; k++)
            if (!(mask >> k & 1))
                s.skip[n++] = keys[k];
        expect_refused(&s, "pi.placement", NULL);
    }
    REFUSED(s.n_gpu[1] = FF + 1, "pi.placement.n_gpu", "layer 1");
    REFUSED(s.n_gpu_n = NL - 1, "pi.placement.n_gpu", NULL);
    REFUSED(s.budget = 0, "pi.placement.budget", NULL);
    REFUSED(s.ctx = (1u << 24) + 1, "pi.placement.ctx", NULL);
}

/* The arrays are for the shape the caller gives, which must not be empty. */
static void test_shape_must_match_and_not_be_empty(void **state)
{
    (void)state;
    section s = valid();
    pi_err err;
    pi_packinfo p;
    write_section(&s, in_dir("z.gguf"));
    pi_gguf *g = pi_gguf_open(in_dir("z.gguf"), &err);
    assert_non_null(g);
    assert_int_equal(pi_packinfo_read(g, 0, FF, &p, &err), -1);
    assert_int_equal(pi_packinfo_read(g, NL, 0, &p, &err), -1);
    assert_int_equal(pi_packinfo_read(g, NL, FF / 2, &p, &err), -1);
    assert_true(strstr(err.msg, "pi.ffn.freq") && !p.freq);
    pi_gguf_close(g);
    unlink(in_dir("z.gguf"));
}

/* ---- a mixture of experts ---------------------------------------------- */

#define MOE_REFUSED(change, want, want2) \
    do { section s = valid_moe(); change; expect_refused(&s, want, want2); } while (0)

static void test_moe_section_reads_back_exactly(void **state)
{
    (void)state;
    section s = valid_moe();
    pi_packinfo p;
    pi_err err;
    if (read_section(&s, &p, &err))
        fail_msg("%s", err.msg);
    assert_true(p.n_layer == NL && p.n_ff == FF && p.n_expert == NE && p.n_ff_exp == FE);
    for (int il = 0; il < NL; il++) {
        for (int j = 0; j < FF; j++) {
            assert_true(pi_packinfo_freq(&p, il)[j] == (float)s.freq[il * FF + j] / 65535.0f);
            assert_int_equal(pi_packinfo_perm(&p, il)[j], s.perm[il * FF + j]);
        }
        assert_memory_equal(pi_packinfo_usage(&p, il), s.usage + il * NE, NE * sizeof(float));
    }
    assert_null(p.plan_n_gpu);
    pi_packinfo_free(&p);
    assert_null(p.usage);
    /* The same file is not a dense section: it carries pi.moe.usage. */
    s.n_expert = 0;
    write_section(&s, in_dir("m.gguf"));
    s.n_expert = NE;
    pi_gguf *g = pi_gguf_open(in_dir("m.gguf"), &err);
    assert_non_null(g);
    assert_int_equal(pi_packinfo_read(g, NL, FF, &p, &err), -1);
    assert_non_null(strstr(err.msg, "pi.moe.usage in a model without experts"));
    assert_int_equal(pi_packinfo_read_moe(g, NL, 0, FF, &p, &err), -1);
    assert_null(p.freq);
    pi_gguf_close(g);
    unlink(in_dir("m.gguf"));
}

static void test_moe_blocks_each_hold_one_source_expert(void **state)
{
    (void)state;
    section v = valid_moe();
    /* frequencies may rise at an expert's start (valid_moe() does) */
    assert_true(v.freq[FE] > v.freq[FE - 1]);
    MOE_REFUSED(s.freq[FF + FE + 2] = (uint16_t)(s.freq[FF + FE + 1] + 1), "pi.ffn.freq",
                "layer 1, expert 1 is not in decreasing order at neuron 2");
    /* one row of each expert swapped: still a permutation of the layer */
    uint32_t t;
    MOE_REFUSED((t = s.perm[FF + 1], s.perm[FF + 1] = s.perm[FF + FE], s.perm[FF + FE] = t),
                "pi.ffn.perm", "layer 1, expert 0 takes neurons of source experts 0 and 1");
    /* both blocks the same source expert, each in itself fine */
    MOE_REFUSED(memcpy(s.perm + FE, s.perm, FE * sizeof *s.perm), "pi.ffn.perm",
                "layer 0 is not a permutation");
    MOE_REFUSED(s.perm[3] = FF, "pi.ffn.perm", "layer 0 is not a permutation");
}

static void test_moe_usage_is_required_and_checked(void **state)
{
    (void)state;
    MOE_REFUSED(s.usage_n = 0, "missing key pi.moe.usage", NULL);
    MOE_REFUSED(s.usage_n = NL * NE - 1, "pi.moe.usage", "5 entries, expected 6");
    MOE_REFUSED(s.usage[2 * NE + 1] = 0.8f, "pi.moe.usage",
                "layer 2 is not in decreasing order at expert 1");
    static const float bad[] = { NAN, -0.25f, 1.5f, INFINITY };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        MOE_REFUSED(s.usage[NE] = bad[i], "pi.moe.usage", "layer 1, expert 0");
    MOE_REFUSED(s.usage[1] = 0.2f, "pi.moe.usage", "layer 0 sums to");
    MOE_REFUSED(s.plan = true, "pi.placement", "mixture of experts");
}

/* ---- tensors filled at write time --------------------------------------- */

typedef struct filler {
    const void *src;
    uint64_t size;
    int order;     /* position among the tensors */
    int *next;     /* the lowest position the writer may fill next */
    bool fail;
} filler;

static int fill(void *user, void *buf, uint64_t size, pi_err *err)
{
    filler *f = user;
    assert_int_equal(size, f->size);
    assert_true(f->order >= *f->next); /* in the order added, each once */
    *f->next = f->order + 1;
    if (f->fail)
        return pi_err_set(err, "tensor %d: the source went away", f->order);
    memcpy(buf, f->src, size);
    return 0;
}

#define NT 4

/* Tensors of odd sizes (padding after each), the buffer growing and shrinking:
 * mode 0 gives every tensor by pointer, 1 by callback, 2 alternates. */
static int write_tensors(const char *path, uint32_t align, int mode, int fail_at, pi_err *err)
{
    static uint8_t data[NT][4096];
    static const uint32_t type[NT] = { PI_TYPE_F32, PI_TYPE_Q4_0, PI_TYPE_F16, PI_TYPE_F32 };
    static const int64_t ne[NT][2] = { { 5, 1 }, { 64, 2 }, { 3, 1 }, { 32, 32 } };
    for (int i = 0; i < NT; i++)
        for (int j = 0; j < 4096; j++)
            data[i][j] = (uint8_t)(i * 37 + j * 11 + 1);
    pi_gguf_writer *w = pi_gguf_writer_new(align);
    assert_non_null(w);
    assert_int_equal(pi_gguf_set_str(w, "general.architecture", "llama", err), 0);
    filler f[NT];
    int next = 0;
    for (int i = 0; i < NT; i++) {
        char name[16];
        snprintf(name, sizeof name, "t%d", i);
        uint64_t size = pi_row_size(type[i], ne[i][0]) * (uint64_t)ne[i][1];
        f[i] = (filler){ data[i], size, i, &next, i == fail_at };
        int rc = mode == 1 || (mode == 2 && i % 2)
                     ? pi_gguf_add_tensor_fill(w, name, type[i], 2, ne[i], size, fill, &f[i], err)
                     : pi_gguf_add_tensor(w, name, type[i], 2, ne[i], data[i], size, err);
        assert_int_equal(rc, 0);
    }
    int rc = pi_gguf_writer_write(w, path, err);
    pi_gguf_writer_free(w);
    return rc;
}

/* The file's bytes into b (at most cap); its length. */
static size_t slurp(const char *path, uint8_t *b, size_t cap)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    size_t n = fread(b, 1, cap, fp);
    assert_true(n < cap);
    fclose(fp);
    return n;
}

/* Entries of dir whose name contains s. */
static int count_in_dir(const char *s)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strstr(e->d_name, s) != NULL;
    closedir(d);
    return n;
}

static void test_filled_tensors_write_the_same_bytes_as_given_ones(void **state)
{
    (void)state;
    static uint8_t want[1 << 15], got[1 << 15];
    pi_err err;
    for (uint32_t align = 0; align <= 64; align += 64) {
        if (write_tensors(in_dir("given.gguf"), align, 0, -1, &err))
            fail_msg("%s", err.msg);
        size_t n = slurp(in_dir("given.gguf"), want, sizeof want);
        for (int mode = 1; mode <= 2; mode++) {
            if (write_tensors(in_dir("filled.gguf"), align, mode, -1, &err))
                fail_msg("%s", err.msg);
            assert_int_equal(slurp(in_dir("filled.gguf"), got, sizeof got), n);
            assert_memory_equal(got, want, n);
        }
        pi_gguf *g = pi_gguf_open(in_dir("filled.gguf"), &err);
        assert_non_null(g);
        const pi_gguf_tensor *t = pi_gguf_find_tensor(g, "t1");
        assert_true(t && t->size == 72);
        assert_int_equal(((const uint8_t *)t->data)[71], (uint8_t)(37 + 71 * 11 + 1));
        pi_gguf_close(g);
    }
    unlink(in_dir("given.gguf"));
    unlink(in_dir("filled.gguf"));
}

/* Failing at the first, a middle or the last tensor: the callback's message,
 * no file and no temporary; a file already under the name stays as it was. */
static void test_failing_fill_fails_the_write_and_leaves_no_file(void **state)
{
    (void)state;
    static const int fail_at[] = { 0, 1, NT - 1, NT - 1 };
    const char *old = "the old file";
    for (size_t i = 0; i < sizeof fail_at / sizeof fail_at[0]; i++) {
        bool exists = i == 3;
        if (exists) {
            FILE *fp = fopen(in_dir("f.gguf"), "wb");
            assert_non_null(fp);
            fputs(old, fp);
            fclose(fp);
        }
        pi_err err = { { 0 } };
        assert_int_equal(write_tensors(in_dir("f.gguf"), 0, 1 + (int)exists, fail_at[i], &err),
                         -1);
        char want[64];
        snprintf(want, sizeof want, "tensor %d: the source went away", fail_at[i]);
        assert_non_null(strstr(err.msg, want));
        assert_int_equal(count_in_dir(".tmp."), 0);
        if (!exists) {
            assert_int_equal(access(in_dir("f.gguf"), F_OK), -1);
            continue;
        }
        uint8_t b[64];
        assert_int_equal(slurp(in_dir("f.gguf"), b, sizeof b), strlen(old));
        assert_memory_equal(b, old, strlen(old));
        unlink(in_dir("f.gguf"));
    }
}

/* ---- main --------------------------------------------------------------- */

static int make_dir(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/pi-test-packinfo-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int remove_dir(void **state)
{
    (void)state;
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            unlink(in_dir(e->d_name));
    if (d)
        closedir(d);
    return rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_section_reads_back_exactly),
        cmocka_unit_test(test_version_is_required_and_must_be_1),
        cmocka_unit_test(test_scalar_keys_are_required_and_checked),
        cmocka_unit_test(test_arrays_of_the_wrong_length_or_type_are_refused),
        cmocka_unit_test(test_freq_may_rise_between_layers_but_not_within_one),
        cmocka_unit_test(test_perm_must_be_a_permutation_of_each_layer),
        cmocka_unit_test(test_placement_needs_all_three_keys_and_sane_values),
        cmocka_unit_test(test_moe_section_reads_back_exactly),
        cmocka_unit_test(test_moe_blocks_each_hold_one_source_expert),
        cmocka_unit_test(test_moe_usage_is_required_and_checked),
        cmocka_unit_test(test_shape_must_match_and_not_be_empty),
        cmocka_unit_test(test_filled_tensors_write_the_same_bytes_as_given_ones),
        cmocka_unit_test(test_failing_fill_fails_the_write_and_leaves_no_file),
    };
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
