/*
 * Tests of the tokenizer: llama.cpp's vocabulary test vectors, known ids and
 * round trips on the real models, the pre-tokenizer expressions, merge order
 * and special tokens on small synthetic vocabularies, ChatML formatting, and
 * clear failures on bad vocabularies.
 *
 * The test vectors live beside the project in ../shared/vocab and the models
 * in models/ (scripts/get-model); tests that need them skip when absent.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "gguf.h"
#include "gguf_write.h"
#include "tokenizer.h"
#include "unicode.h"

#define VOCAB_DIR "../shared/vocab"
#define SMOLLM "models/SmolLM2-135M-Instruct.Q4_1.gguf"
#define QWEN "models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"

/* ---- helpers ---------------------------------------------------------- */

static pi_tokenizer *load_file(const char *path)
{
    pi_err err = {{0}};
    pi_gguf *g = pi_gguf_open(path, &err);
    if (!g)
        fail_msg("%s", err.msg);
    pi_tokenizer *t = pi_tokenizer_load(g, &err);
    pi_gguf_close(g); /* the tokenizer must not need it any more */
    if (!t)
        fail_msg("%s", err.msg);
    return t;
}

static pi_tokenizer *load_model_or_skip(const char *path)
{
    if (access(path, R_OK) != 0) {
        print_message("%s absent (scripts/get-model fetches it), skipping\n", path);
        return NULL;
    }
    return load_file(path);
}

static size_t tokenize(const pi_tokenizer *t, const char *s, bool special, int32_t **ids)
{
    pi_err err = {{0}};
    size_t n;
    if (pi_tokenize(t, s, strlen(s), false, special, ids, &n, &err) != 0)
        fail_msg("%s", err.msg);
    return n;
}

static void expect_ids(const pi_tokenizer *t, const char *s, bool special, const int32_t *want,
                       size_t n_want)
{
    int32_t *ids;
    size_t n = tokenize(t, s, special, &ids);
    bool same = n == n_want && (n == 0 || memcmp(ids, want, n * sizeof *ids) == 0);
    if (!same) {
        char got[1024] = "", exp[1024] = "";
        for (size_t i = 0, o = 0; i < n && o < 1000; i++)
            o += (size_t)snprintf(got + o, sizeof got - o, " %d", ids[i]);
        for (size_t i = 0, o = 0; i < n_want && o < 1000; i++)
            o += (size_t)snprintf(exp + o, sizeof exp - o, " %d", want[i]);
        free(ids);
        fail_msg("'%s': got%s, want%s", s, got, exp);
    }
    free(ids);
}
#define EXPECT_IDS(t, s, special, ...)                                                           \
    do {                                                                                         \
        static const int32_t want_[] = {__VA_ARGS__};                                            \
        expect_ids(t, s, special, want_, sizeof want_ / sizeof want_[0]);                        \
    } while (0)

static void expect_round_trip(const pi_tokenizer *t, const char *s, size_t len, bool special)
{
    pi_err err = {{0}};
    int32_t *ids;
    size_t n;
    if (pi_tokenize(t, s, len, false, special, &ids, &n, &err) != 0)
        fail_msg("%s", err.msg);
    char *back = malloc(len + 1);
    size_t got = pi_detokenize(t, ids, n, special, back, len + 1);
    if (got != len || memcmp(back, s, len) != 0)
        fail_msg("round trip of '%.*s' gave '%.*s'", (int)len, s,
                 (int)(got < len ? got : len), back);
    free(back);
    free(ids);
}

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    char *b = malloc(cap + 1);
    size_t k;
    while ((k = fread(b + len, 1, cap - len, f)) > 0) {
        len += k;
        if (len == cap)
            b = realloc(b, (cap *= 2) + 1);
    }
    fclose(f);
    b[len] = 0;
    *n = len;
    return b;
}

/* ---- synthetic vocabularies ------------------------------------------- */

static char *tmp_path(void)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/pi-test-tokenizer-%d.gguf", (int)getpid());
    return path;
}

typedef void (*fill_fn)(pi_gguf_writer *w);

/* Writes a vocabulary with fill, then loads it: the tokenizer, or NULL with
 * err set. */
static pi_tokenizer *load_written(fill_fn fill, pi_err *err)
{
    pi_gguf_writer *w = pi_gguf_writer_new(0);
    fill(w);
    if (pi_gguf_writer_write(w, tmp_path(), err) != 0)
        fail_msg("%s", err->msg);
    pi_gguf_writer_free(w);
    pi_gguf *g = pi_gguf_open(tmp_path(), err);
    if (!g)
        fail_msg("%s", err->msg);
    pi_tokenizer *t = pi_tokenizer_load(g, err);
    pi_gguf_close(g);
    unlink(tmp_path());
    return t;
}

static void set_str(pi_gguf_writer *w, const char *k, const char *v)
{
    pi_err err;
    assert_int_equal(pi_gguf_set_str(w, k, v, &err), 0);
}

static void set_strs(pi_gguf_writer *w, const char *k, const char *const *v, size_t n)
{
    pi_err err;
    assert_int_equal(pi_gguf_set_arr_str(w, k, v, n, &err), 0);
}

static void set_i32s(pi_gguf_writer *w, const char *k, const int32_t *v, size_t n)
{
    pi_err err;
    assert_int_equal(pi_gguf_set_arr(w, k, PI_GGUF_I32, v, n, &err), 0);
}

/* A byte-level BPE vocabulary: the 256 byte tokens (id = byte) in GPT-2's
 * code points, then merges ab, bc, abc, aa, and three special tokens. */
enum { T_AB = 256, T_ABC, T_AA, T_CTL, T_USR, T_USRX, N_SMALL };

static void gpt2_char(int b, char out[3])
{
    int n = 0, cp = b;
    bool self = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    if (!self) {
        for (int k = 0; k < b; k++)
            n += !((k >= 0x21 && k <= 0x7E) || (k >= 0xA1 && k <= 0xAC) || k >= 0xAE);
        cp = 256 + n;
    }
    if (cp < 0x80) {
        out[0] = (char)cp, out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | cp >> 6), out[1] = (char)(0x80 | (cp & 0x3F)), out[2] = 0;
    }
}

static const char *small_pre = "gpt2";

static void fill_small_bpe(pi_gguf_writer *w)
{
    static char bytes[256][3];
    const char *tok[N_SMALL];
    int32_t type[N_SMALL];
    for (int b = 0; b < 256; b++) {
        gpt2_char(b, bytes[b]);
        tok[b] = bytes[b];
        type[b] = PI_TOKEN_NORMAL;
    }
    tok[T_AB] = "ab", tok[T_ABC] = "abc", tok[T_AA] = "aa";
    tok[T_CTL] = "<|ctl|>", tok[T_USR] = "<u>", tok[T_USRX] = "<u>x";
    type[T_AB] = type[T_ABC] = type[T_AA] = PI_TOKEN_NORMAL;
    type[T_CTL] = PI_TOKEN_CONTROL, type[T_USR] = type[T_USRX] = PI_TOKEN_USER_DEFINED;
    static const char *merges[] = {"a b", "ab c", "a a"};
    set_str(w, "tokenizer.ggml.model", "gpt2");
    set_str(w, "tokenizer.ggml.pre", small_pre);
    set_strs(w, "tokenizer.ggml.tokens", tok, N_SMALL);
    set_i32s(w, "tokenizer.ggml.token_type", type, N_SMALL);
    set_strs(w, "tokenizer.ggml.merges", merges, 3);
    pi_err err;
    assert_int_equal(pi_gguf_set_u32(w, "tokenizer.ggml.eos_token_id", T_CTL, &err), 0);
}

/* A SentencePiece vocabulary with byte fallback. */
enum { S_UNK, S_BOS, S_EOS, S_BYTE0, S_SP = S_BYTE0 + 256, S_A, S_B, S_SPA, S_AB, S_SPAB, N_SPM };

static void fill_small_spm(pi_gguf_writer *w)
{
    static char bytes[256][8];
    const char *tok[N_SPM] = {"<unk>", "<s>", "</s>"};
    int32_t type[N_SPM] = {PI_TOKEN_UNKNOWN, PI_TOKEN_CONTROL, PI_TOKEN_CONTROL};
    float score[N_SPM] = {0};
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        tok[S_BYTE0 + b] = bytes[b];
        type[S_BYTE0 + b] = PI_TOKEN_BYTE;
    }
    tok[S_SP] = "\xE2\x96\x81", tok[S_A] = "a", tok[S_B] = "b";
    tok[S_SPA] = "\xE2\x96\x81" "a", tok[S_AB] = "ab", tok[S_SPAB] = "\xE2\x96\x81" "ab";
    for (int i = S_SP; i < N_SPM; i++)
        type[i] = PI_TOKEN_NORMAL, score[i] = (float)-i;
    score[S_AB] = -1.0f; /* "a"+"b" beats "▁"+"a": the result is ▁ ab -> ▁ab */
    set_str(w, "tokenizer.ggml.model", "llama");
    set_strs(w, "tokenizer.ggml.tokens", tok, N_SPM);
    set_i32s(w, "tokenizer.ggml.token_type", type, N_SPM);
    pi_err err;
    assert_int_equal(pi_gguf_set_arr(w, "tokenizer.ggml.scores", PI_GGUF_F32, score, N_SPM, &err),
                     0);
}

/* ---- the llama.cpp test vectors ----------------------------------------- */

/* Runs every vector of ggml-vocab-NAME.gguf; returns the number passed. */
static int run_vectors(const char *name, int *total)
{
    char path[256], p2[300];
    snprintf(path, sizeof path, VOCAB_DIR "/ggml-vocab-%s.gguf", name);
    pi_tokenizer *t = load_file(path);
    size_t ni, no;
    snprintf(p2, sizeof p2, "%s.inp", path);
    char *inp = slurp(p2, &ni);
    snprintf(p2, sizeof p2, "%s.out", path);
    char *out = slurp(p2, &no);
    assert_non_null(inp);
    assert_non_null(out);
    const char *sep = "\n__ggml_vocab_test__\n";
    int passed = 0;
    *total = 0;
    char *s = inp, *o = out, *end;
    while ((end = strstr(s, sep))) {
        char *nl = strchr(o, '\n');
        assert_non_null(nl);
        *nl = 0;
        int32_t want[1024];
        size_t n_want = 0;
        for (char *p = o, *q; n_want < 1024; p = q) {
            long v = strtol(p, &q, 10);
            if (q == p)
                break;
            want[n_want++] = (int32_t)v;
        }
        pi_err err = {{0}};
        int32_t *ids;
        size_t n;
        size_t len = (size_t)(end - s);
        assert_int_equal(pi_tokenize(t, s, len, false, false, &ids, &n, &err), 0);
        bool ok = n == n_want && (n == 0 || memcmp(ids, want, n * sizeof *ids) == 0);
        char *back = malloc(len + 1);
        ok = ok && pi_detokenize(t, ids, n, false, back, len + 1) == len && !memcmp(back, s, len);
        if (!ok)
            print_message("%s: vector %d '%.*s' differs\n", name, *total, (int)len, s);
        passed += ok;
        ++*total;
        free(back);
        free(ids);
        s = end + strlen(sep);
        o = nl + 1;
    }
    free(inp);
    free(out);
    pi_tokenizer_free(t);
    return passed;
}

static void test_llama_cpp_vocab_vectors_all_pass(void **state)
{
    (void)state;
    if (access(VOCAB_DIR, R_OK) != 0) {
        print_message("%s absent, skipping the vocabulary test vectors\n", VOCAB_DIR);
        skip();
    }
    static const char *names[] = {"gpt-2", "deepseek-llm", "starcoder", "llama-spm"};
    int failed = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        int total, passed = run_vectors(names[i], &total);
        print_message("%-14s %d/%d vectors (ids and round trip)\n", names[i], passed, total);
        assert_true(total > 40);
        failed += total - passed;
    }
    assert_int_equal(failed, 0);
}

/* ---- the real models ---------------------------------------------------- */

/* Expected ids from an independent Python BPE (the merges applied naively
 * to the words of the `regex` module's split) and from the vocabulary. */
static void test_smollm2_gives_known_ids(void **state)
{
    (void)state;
    pi_tokenizer *t = load_model_or_skip(SMOLLM);
    if (!t)
        skip();
    EXPECT_IDS(t, "Hello", false, 19556);
    EXPECT_IDS(t, " world", false, 905);
    EXPECT_IDS(t, "Hello world", false, 19556, 905);
    EXPECT_IDS(t, "Hello, world! 12345", false, 19556, 28, 905, 17, 216, 33, 34, 35, 36, 37);
    EXPECT_IDS(t, "   leading spaces\t\ttabs\n\n\nnewlines", false, 256, 2899, 5600, 197, 197, 100,
               7366, 1116, 198, 2241, 5110);
    EXPECT_IDS(t, "I'm sure they'll say it's fine", false, 57, 5248, 2090, 502, 3060, 1643, 357,
               506, 4979);
    EXPECT_IDS(t, "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E \xF0\x9F\xA6\x99", false, 23274, 115, 40993,
               179, 120, 248, 15107, 116, 243);
    EXPECT_IDS(t, "<|im_start|>user\nHi<|im_end|>", true, 1, 4093, 198, 26843, 2);
    int32_t *ids;
    size_t n = tokenize(t, "<|im_start|>", false, &ids);
    assert_true(n > 1 && ids[0] != 1); /* as text when not parsing specials */
    free(ids);
    assert_int_equal(pi_tokenizer_n_vocab(t), 49152);
    assert_int_equal(pi_tokenizer_bos(t), 1);
    assert_int_equal(pi_tokenizer_eos(t), 2);
    assert_false(pi_tokenizer_add_bos(t));
    assert_true(pi_token_is_eog(t, 2));  /* <|im_end|> */
    assert_true(pi_token_is_eog(t, 0));  /* <|endoftext|> */
    assert_false(pi_token_is_eog(t, 1)); /* <|im_start|> */
    size_t len;
    const char *p = pi_token_piece(t, 905, &len);
    assert_int_equal(len, 6);
    assert_memory_equal(p, " world", 6);
    p = pi_token_text(t, 905, &len);
    assert_memory_equal(p, "\xC4\xA0world", 7);
    pi_tokenizer_free(t);
}

static void test_qwen25_gives_known_ids(void **state)
{
    (void)state;
    pi_tokenizer *t = load_model_or_skip(QWEN);
    if (!t)
        skip();
    EXPECT_IDS(t, "Hello world", false, 9707, 1879);
    EXPECT_IDS(t, "Hello, world! 12345", false, 9707, 11, 1879, 0, 220, 16, 17, 18, 19, 20);
    EXPECT_IDS(t, "def fib(n):\n    return n if n < 2 else fib(n-1) + fib(n-2)\n", false, 750,
               15801, 1445, 982, 262, 470, 308, 421, 308, 366, 220, 17, 770, 15801, 1445, 12, 16,
               8, 488, 15801, 1445, 12, 17, 340);
    EXPECT_IDS(t, "   leading spaces\t\ttabs\n\n\nnewlines", false, 256, 6388, 12621, 197, 3244,
               3435, 1406, 931, 7969);
    EXPECT_IDS(t, "I'M sure they'LL say it's fine", false, 40, 27603, 2704, 807, 6, 4086, 1977,
               432, 594, 6915);
    EXPECT_IDS(t, "<|im_start|>assistant\n<tool_call>", false, 27, 91, 318, 4906, 91, 29,
               77091, 198, 151657); /* <tool_call> is user-defined: always a token */
    EXPECT_IDS(t, "<|im_start|>", true, 151644);
    assert_true(pi_token_is_eog(t, 151645)); /* <|im_end|> */
    assert_true(pi_token_is_eog(t, 151643)); /* <|endoftext|> */
    size_t len;
    pi_token_piece(t, 151700, &len); /* [PAD...]: unused */
    assert_int_equal(len, 0);
    pi_tokenizer_free(t);
}

static const char *round_trip_texts[] = {
    "Hello world",
    "",
    " ",
    "\n",
    "   \n\n\t\t  \r\n  x  ",
    ("\xC3\x9C" "ber Stra\xC3\x9F" "e, caf\xC3\xA9, na\xC3\xAF" "ve \xE2\x80\x94 \xCE\xB1\xCE\xB2\xCE\xB3"),
    ("\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x81\xAE\xE3\x83\x86\xE3\x82\xAD\xE3\x82\xB9\xE3\x83\x88"
     " \xE4\xB8\xAD\xE6\x96\x87 \xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4"),
    "\xF0\x9F\xA6\x99 \xF0\x9F\x98\xB6\xE2\x80\x8D\xF0\x9F\x8C\xAB\xEF\xB8\x8F \xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD",
    "int main(void)\n{\n\tfor (int i = 0; i < 10; i++)\n\t\tprintf(\"%d\\n\", i);\n}\n",
    "x = [1, 22, 333, 4444, 55555]  # comment\n    y = x[::-1]\n",
    "It's, don't, we'LL, they'RE 'quoted' ''",
    "<|im_start|>user\nnot special here<|im_end|>",
};

static void round_trips(const pi_tokenizer *t)
{
    for (size_t i = 0; i < sizeof round_trip_texts / sizeof round_trip_texts[0]; i++) {
        const char *s = round_trip_texts[i];
        expect_round_trip(t, s, strlen(s), false);
        expect_round_trip(t, s, strlen(s), true);
    }
}

static void test_real_models_round_trip_text(void **state)
{
    (void)state;
    const char *models[] = {SMOLLM, QWEN};
    int ran = 0;
    for (int i = 0; i < 2; i++) {
        pi_tokenizer *t = load_model_or_skip(models[i]);
        if (!t)
            continue;
        round_trips(t);
        pi_tokenizer_free(t);
        ran++;
    }
    if (!ran)
        skip();
}

/* English-like text: words of a fixed list in a fixed pseudo-random order. */
static char *english(size_t size)
{
    static const char *words[] = {"the", "model", "runs", "faster", "when", "only", "a", "small",
                                  "part", "of", "each", "layer", "is", "active,", "and", "we",
                                  "predict", "which", "neurons", "matter.", "In", "2024", "it",
                                  "took", "12.5", "seconds;", "now", "less.\n", "Tokenizers",
                                  "don't", "need", "regex", "libraries", "(really)!"};
    char *s = malloc(size + 32);
    size_t n = 0;
    uint32_t x = 12345;
    while (n < size) {
        x = x * 1103515245u + 12345u;
        const char *w = words[(x >> 16) % (sizeof words / sizeof words[0])];
        n += (size_t)sprintf(s + n, "%s%s", n ? " " : "", w);
    }
    s[size] = 0;
    return s;
}

static void test_tokenizing_a_megabyte_is_fast(void **state)
{
    (void)state;
    pi_tokenizer *t = load_model_or_skip(SMOLLM);
    if (!t)
        skip();
    size_t size = 1 << 20;
    char *s = english(size);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    pi_err err;
    int32_t *ids;
    size_t n;
    assert_int_equal(pi_tokenize(t, s, size, false, false, &ids, &n, &err), 0);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double sec = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) * 1e-9;
    print_message("1 MiB of English: %zu tokens in %.3f s\n", n, sec);
    assert_true(sec < 5.0); /* well under a second in a release build; slack for sanitizers */
    char *back = malloc(size + 1);
    assert_int_equal(pi_detokenize(t, ids, n, false, back, size + 1), size);
    assert_memory_equal(back, s, size);
    free(back);
    free(ids);
    free(s);
    pi_tokenizer_free(t);
}

/* ---- pre-tokenizers ------------------------------------------------------ */

static int join_word(void *ctx, const char *w, size_t n)
{
    char *out = ctx;
    size_t k = strlen(out);
    if (k)
        out[k++] = '|';
    memcpy(out + k, w, n);
    out[k + n] = 0;
    return 0;
}

static void expect_split(pi_pretok kind, const char *s, const char *want)
{
    char got[512] = "";
    pi_err err;
    assert_int_equal(pi_pretokenize(kind, s, strlen(s), join_word, got, &err), 0);
    if (strcmp(got, want) != 0)
        fail_msg("split of '%s': got '%s', want '%s'", s, got, want);
}

/* Expected splits from the Python `regex` module running the same
 * expressions in sequence. */
static void test_pretokenizers_split_like_the_regexes(void **state)
{
    (void)state;
    expect_split(PI_PRETOK_DEFAULT, "a+b<=c 12345 ok!!", "a|+|b|<=|c| |123|45| ok|!!");
    expect_split(PI_PRETOK_GPT2, "I'm  fine,\tyou're 42 ... done  \n\nok",
                 "I|'m| | fine|,|\t|you|'re| 42| ...| done|  \n|\n|ok");
    expect_split(PI_PRETOK_STARCODER, "call f(123) x2  ok", "call| f|(|1|2|3|)| x|2| | ok");
    expect_split(PI_PRETOK_LLAMA3, "HE'S 12345 apples!\n\n  go\r\n\tdone  ",
                 "HE|'S| |123|45| apples|!\n\n| | go|\r\n|\tdone|  ");
    expect_split(PI_PRETOK_QWEN2, "HE'S 12345 apples!\n\n  go",
                 "HE|'S| |1|2|3|4|5| apples|!\n\n| | go");
    expect_split(PI_PRETOK_DEEPSEEK_LLM,
                 "Hello, \xE4\xB8\x96\xE7\x95\x8C 123 ab  \nx\xEF\xBC\x81\xEF\xBC\x9F",
                 "Hello|,| |\xE4\xB8\x96\xE7\x95\x8C| |123| ab|  |\n|x|\xEF\xBC\x81\xEF\xBC\x9F");
    /* Invalid UTF-8 survives byte for byte, as a unit of its own. */
    expect_split(PI_PRETOK_GPT2, "ab\xFF\xC3 cd", "ab|\xFF\xC3| cd");
    assert_int_equal(pi_unicode_flags('a'), PI_UCAT_LETTER);
    assert_int_equal(pi_unicode_flags(0x3000), PI_UCAT_SEPARATOR | PI_UCAT_WHITESPACE);
    assert_int_equal(pi_unicode_flags(0x0661), PI_UCAT_NUMBER); /* Arabic-Indic one */
    assert_int_equal(pi_unicode_flags(0x0301), PI_UCAT_MARK);
}

/* ---- synthetic vocabularies ----------------------------------------------- */

static void test_bpe_merges_in_rank_order_and_matches_special_tokens(void **state)
{
    (void)state;
    pi_err err = {{0}};
    pi_tokenizer *t = load_written(fill_small_bpe, &err);
    if (!t)
        fail_msg("%s", err.msg);
    EXPECT_IDS(t, "abc", false, T_ABC);
    EXPECT_IDS(t, "aaa", false, T_AA, 'a');        /* equal ranks: leftmost first */
    EXPECT_IDS(t, "aaaa", false, T_AA, T_AA);
    EXPECT_IDS(t, "cab", false, 'c', T_AB);
    EXPECT_IDS(t, "x<|ctl|>", true, 'x', T_CTL);
    EXPECT_IDS(t, "<|ctl|>", false, '<', '|', 'c', 't', 'l', '|', '>');
    EXPECT_IDS(t, "<u>xy", false, T_USRX, 'y');    /* longest match; user-defined always */
    EXPECT_IDS(t, "<u>y", false, T_USR, 'y');
    int32_t ids[] = {'x', T_CTL, T_USR, T_AB};
    char buf[64];
    assert_int_equal(pi_detokenize(t, ids, 4, false, buf, sizeof buf), 6);
    assert_string_equal(buf, "x<u>ab");
    assert_int_equal(pi_detokenize(t, ids, 4, true, buf, sizeof buf), 13);
    assert_string_equal(buf, "x<|ctl|><u>ab");
    assert_int_equal(pi_detokenize(t, ids, 4, true, buf, 4), 13); /* snprintf-like */
    assert_string_equal(buf, "x<|");
    assert_true(pi_token_is_eog(t, T_CTL));
    assert_int_equal(pi_tokenizer_bos(t), -1);
    int32_t *out;
    size_t n;
    assert_int_equal(pi_tokenize(t, "a", 1, true, false, &out, &n, &err), -1);
    assert_non_null(strstr(err.msg, "BOS"));
    expect_round_trip(t, "\x00\xFF\xC3 bin\x80", 8, false);
    pi_tokenizer_free(t);
}

static void test_every_pretokenizer_name_loads(void **state)
{
    (void)state;
    static const char *names[] = {"default", "gpt2", "gpt-2", "smollm", "starcoder", "qwen2",
                                  "llama3", "llama-bpe", "deepseek-llm"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        small_pre = names[i];
        pi_err err = {{0}};
        pi_tokenizer *t = load_written(fill_small_bpe, &err);
        if (!t)
            fail_msg("%s: %s", names[i], err.msg);
        EXPECT_IDS(t, "abc", false, T_ABC);
        expect_round_trip(t, round_trip_texts[8], strlen(round_trip_texts[8]), false);
        pi_tokenizer_free(t);
    }
    small_pre = "gpt2";
}

static void test_spm_prefixes_a_space_and_falls_back_to_bytes(void **state)
{
    (void)state;
    pi_err err = {{0}};
    pi_tokenizer *t = load_written(fill_small_spm, &err);
    if (!t)
        fail_msg("%s", err.msg);
    assert_true(pi_tokenizer_add_bos(t));
    EXPECT_IDS(t, "ab", false, S_SPAB);
    EXPECT_IDS(t, "ab b", false, S_SPAB, S_SP, S_B);
    EXPECT_IDS(t, "\xC3\xA9", false, S_SP, S_BYTE0 + 0xC3, S_BYTE0 + 0xA9);
    EXPECT_IDS(t, "a<s>b", true, S_SPA, S_BOS, S_SP, S_B); /* a space after a special, too */
    int32_t *ids;
    size_t n;
    assert_int_equal(pi_tokenize(t, "a", 1, true, false, &ids, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], S_BOS);
    char buf[16];
    assert_int_equal(pi_detokenize(t, ids, n, false, buf, sizeof buf), 1);
    assert_string_equal(buf, "a");
    free(ids);
    size_t len;
    assert_memory_equal(pi_token_piece(t, S_BYTE0 + 0x41, &len), "A", 1);
    assert_memory_equal(pi_token_piece(t, S_SPAB, &len), " ab", 3);
    expect_round_trip(t, "  ab\tba \xE2\x82\xAC\xFF", 12, false);
    expect_round_trip(t, "a<s>b</s> c", 11, true);
    pi_tokenizer_free(t);
}

/* ---- chat ---------------------------------------------------------------- */

static const char *chat_template;
static void fill_chat(pi_gguf_writer *w)
{
    fill_small_bpe(w);
    set_str(w, "tokenizer.chat_template", chat_template);
}

/* The templates as stored in SmolLM2-135M-Instruct and (trimmed of its
 * tool-calling branch) Qwen2.5-Coder-Instruct; the expected strings are
 * what jinja2 renders from the full templates. */
static const char smollm_template[] =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}";
static const char qwen_template[] =
    "{%- if messages[0]['role'] == 'system' %}\n"
    "        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n"
    "    {%- else %}\n"
    "        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a "
    "helpful assistant.<|im_end|>\\n' }}\n"
    "    {%- endif %}\n";

static void expect_chat(const pi_chat_msg *m, size_t n, bool gen, const char *want)
{
    pi_err err = {{0}};
    pi_tokenizer *t = load_written(fill_chat, &err);
    if (!t)
        fail_msg("%s", err.msg);
    assert_true(pi_tokenizer_has_chat(t));
    char *out;
    size_t len;
    assert_int_equal(pi_chat_format(t, m, n, gen, &out, &len, &err), 0);
    assert_string_equal(out, want);
    assert_int_equal(len, strlen(want));
    free(out);
    pi_tokenizer_free(t);
}

static void test_chatml_formats_like_the_templates(void **state)
{
    (void)state;
    const pi_chat_msg two[] = {{"user", "What is 2+2?"}, {"assistant", "4"}};
    const pi_chat_msg sys[] = {{"system", "Be brief."}, {"user", "Hi"}};
    chat_template = smollm_template;
    expect_chat(two, 2, false,
                "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by "
                "Hugging Face<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
                "<|im_start|>assistant\n4<|im_end|>\n");
    expect_chat(sys, 2, true,
                "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                "<|im_start|>assistant\n");
    chat_template = qwen_template;
    expect_chat(two, 1, true,
                "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
                "assistant.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
                "<|im_start|>assistant\n");
    chat_template = "{{ '<|im_start|>' + m['role'] }}"; /* ChatML without a default */
    expect_chat(two, 2, false,
                "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n");

    pi_err err = {{0}};
    pi_tokenizer *t = load_written(fill_small_bpe, &err); /* no template */
    char *out;
    assert_false(pi_tokenizer_has_chat(t));
    assert_int_equal(pi_chat_format(t, two, 2, true, &out, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "ChatML"));
    pi_tokenizer_free(t);

    t = load_model_or_skip(SMOLLM); /* the model's own template */
    if (t) {
        assert_int_equal(pi_chat_format(t, two, 1, true, &out, NULL, &err), 0);
        assert_string_equal(out, "<|im_start|>system\nYou are a helpful AI assistant named "
                                 "SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\n"
                                 "What is 2+2?<|im_end|>\n<|im_start|>assistant\n");
        free(out);
        pi_tokenizer_free(t);
    }
}

/* ---- bad vocabularies ------------------------------------------------------ */

static const char *bad_case;
static void fill_bad(pi_gguf_writer *w)
{
    static const char *tok[] = {"a", "b", "c", "ab"};
    static const char *merges_unknown[] = {"a b", "a x"};
    static const char *merges_result[] = {"b c"};
    static const char *merges_nospace[] = {"ab"};
    static const int32_t types2[] = {1, 1};
    if (strcmp(bad_case, "no model") != 0)
        set_str(w, "tokenizer.ggml.model", strcmp(bad_case, "bert") ? "gpt2" : "bert");
    if (strcmp(bad_case, "no tokens") != 0)
        set_strs(w, "tokenizer.ggml.tokens", tok, 4);
    if (!strcmp(bad_case, "unknown merge"))
        set_strs(w, "tokenizer.ggml.merges", merges_unknown, 2);
    else if (!strcmp(bad_case, "unknown result"))
        set_strs(w, "tokenizer.ggml.merges", merges_result, 1);
    else if (!strcmp(bad_case, "no space"))
        set_strs(w, "tokenizer.ggml.merges", merges_nospace, 1);
    else if (strcmp(bad_case, "no merges") != 0)
        set_strs(w, "tokenizer.ggml.merges", tok, 0);
    if (!strcmp(bad_case, "pre"))
        set_str(w, "tokenizer.ggml.pre", "no-such-pre");
    if (!strcmp(bad_case, "types"))
        set_i32s(w, "tokenizer.ggml.token_type", types2, 2);
}

static void test_bad_vocabularies_fail_with_clear_errors(void **state)
{
    (void)state;
    static const struct {
        const char *name, *want;
    } cases[] = {
        {"no model", "tokenizer.ggml.model: missing"},
        {"bert", "tokenizer.ggml.model 'bert': unsupported tokenizer"},
        {"no tokens", "tokenizer.ggml.tokens: missing"},
        {"no merges", "tokenizer.ggml.merges: missing"},
        {"unknown merge", "tokenizer.ggml.merges[1] 'a x': 'x' is not in the vocabulary"},
        {"unknown result", "tokenizer.ggml.merges[0] 'b c': 'bc' is not in the vocabulary"},
        {"no space", "tokenizer.ggml.merges[0] 'ab': not two tokens"},
        {"pre", "tokenizer.ggml.pre 'no-such-pre': unknown pre-tokenizer"},
        {"types", "tokenizer.ggml.token_type: 2 entries for 4 tokens"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bad_case = cases[i].name;
        pi_err err = {{0}};
        pi_tokenizer *t = load_written(fill_bad, &err);
        if (t || !strstr(err.msg, cases[i].want) || strncmp(err.msg, tmp_path(), strlen(tmp_path())))
            fail_msg("%s: wanted an error '%s', got %s'%s'", cases[i].name, cases[i].want,
                     t ? "success " : "", err.msg);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama_cpp_vocab_vectors_all_pass),
        cmocka_unit_test(test_smollm2_gives_known_ids),
        cmocka_unit_test(test_qwen25_gives_known_ids),
        cmocka_unit_test(test_real_models_round_trip_text),
        cmocka_unit_test(test_tokenizing_a_megabyte_is_fast),
        cmocka_unit_test(test_pretokenizers_split_like_the_regexes),
        cmocka_unit_test(test_bpe_merges_in_rank_order_and_matches_special_tokens),
        cmocka_unit_test(test_every_pretokenizer_name_loads),
        cmocka_unit_test(test_spm_prefixes_a_space_and_falls_back_to_bytes),
        cmocka_unit_test(test_chatml_formats_like_the_templates),
        cmocka_unit_test(test_bad_vocabularies_fail_with_clear_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
