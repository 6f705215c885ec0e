/*
 * libFuzzer target for the tokenizer.  The first input byte picks a mode:
 *   0xxxxxxx  tokenize the rest with one of seven small vocabularies (byte-
 *             level BPE under each pre-tokenizer, and SentencePiece), with
 *             or without parse_special, and check that detokenizing gives
 *             the input back byte for byte;
 *   10xxxxxx  load a vocabulary whose tokenizer.chat_template is the rest
 *             (the default-system-prompt scan reads untrusted text) and
 *             format a conversation;
 *   11xxxxxx  open the rest as a GGUF, load its vocabulary if it has one,
 *             and tokenize a fixed text with it.
 * The vocabularies are GGUF files built in memory, so the target needs no
 * files.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "tokenizer.h"

/* ---- a GGUF of tokenizer metadata, built in memory ------------------------ */

typedef struct buf {
    uint8_t *b;
    size_t n, cap;
} buf;

static void put(buf *b, const void *p, size_t n)
{
    if (n == 0)
        return;
    if (b->n + n > b->cap) {
        b->cap = 2 * (b->n + n);
        b->b = realloc(b->b, b->cap);
        if (!b->b)
            abort();
    }
    memcpy(b->b + b->n, p, n);
    b->n += n;
}
static void u32(buf *b, uint32_t v) { put(b, &v, 4); }
static void u64(buf *b, uint64_t v) { put(b, &v, 8); }
static void strn(buf *b, const char *s, size_t n) { u64(b, n), put(b, s, n); }
static void str(buf *b, const char *s) { strn(b, s, strlen(s)); }
static void kv_str(buf *b, const char *k, const char *v, size_t n)
{
    str(b, k), u32(b, 8), strn(b, v, n);
}
static void kv_strs(buf *b, const char *k, const char *const *v, size_t n)
{
    str(b, k), u32(b, 9), u32(b, 8), u64(b, n);
    for (size_t i = 0; i < n; i++)
        str(b, v[i]);
}
static void kv_i32s(buf *b, const char *k, const int32_t *v, size_t n)
{
    str(b, k), u32(b, 9), u32(b, 5), u64(b, n), put(b, v, 4 * n);
}
static void kv_f32s(buf *b, const char *k, const float *v, size_t n)
{
    str(b, k), u32(b, 9), u32(b, 6), u64(b, n), put(b, v, 4 * n);
}
static void header(buf *b, uint64_t n_kv) { u32(b, 0x46554747u), u32(b, 3), u64(b, 0), u64(b, n_kv); }

static pi_tokenizer *load(const buf *b)
{
    pi_err err;
    pi_gguf *g = pi_gguf_open_memory(b->b, b->n, "fuzz.gguf", &err);
    pi_tokenizer *t = g ? pi_tokenizer_load(g, &err) : NULL;
    pi_gguf_close(g);
    return t;
}

/* ---- the vocabularies -------------------------------------------------------- */

static char gpt2_chars[256][3];
static void gpt2_char(int b, char out[3])
{
    int n = 0, cp = b;
#define SELF(k) (((k) >= 0x21 && (k) <= 0x7E) || ((k) >= 0xA1 && (k) <= 0xAC) || (k) >= 0xAE)
    if (!SELF(b)) {
        for (int k = 0; k < b; k++)
            n += !SELF(k);
        cp = 256 + n;
    }
    if (cp < 0x80)
        out[0] = (char)cp, out[1] = 0;
    else
        out[0] = (char)(0xC0 | cp >> 6), out[1] = (char)(0x80 | (cp & 0x3F)), out[2] = 0;
}

/* Merged tokens in GPT-2 code points (Ġ is the space), in rank order. */
static const char *const bpe_merges[] = {"\xC4\xA0 t", "\xC4\xA0t h", "e r", "i n", "a b",
                                         "ab c", "a a", "\xC4\xA0 a", "1 2", "12 3"};
static const char *const bpe_merged[] = {"\xC4\xA0t", "\xC4\xA0th", "er", "in", "ab",
                                         "abc", "aa", ("\xC4\xA0" "a"), "12", "123"};
static const char *const specials[] = {"<|ctl|>", "<s>", "<u>", "<u>x", "\xC3\xB8"};
static const int32_t special_types[] = {3, 3, 4, 4, 4};
#define N_MERGES (sizeof bpe_merges / sizeof bpe_merges[0])
#define N_SPECIAL (sizeof specials / sizeof specials[0])

static pi_tokenizer *bpe_vocab(const char *pre)
{
    const char *tok[256 + N_MERGES + N_SPECIAL];
    int32_t type[256 + N_MERGES + N_SPECIAL];
    size_t n = 0;
    for (int b = 0; b < 256; b++, n++)
        tok[n] = gpt2_chars[b], type[n] = 1;
    for (size_t i = 0; i < N_MERGES; i++, n++)
        tok[n] = bpe_merged[i], type[n] = 1;
    for (size_t i = 0; i < N_SPECIAL; i++, n++)
        tok[n] = specials[i], type[n] = special_types[i];
    buf b = {0};
    header(&b, 5);
    kv_str(&b, "tokenizer.ggml.model", "gpt2", 4);
    kv_str(&b, "tokenizer.ggml.pre", pre, strlen(pre));
    kv_strs(&b, "tokenizer.ggml.tokens", tok, n);
    kv_i32s(&b, "tokenizer.ggml.token_type", type, n);
    kv_strs(&b, "tokenizer.ggml.merges", bpe_merges, N_MERGES);
    pi_tokenizer *t = load(&b);
    free(b.b);
    return t;
}

static pi_tokenizer *spm_vocab(void)
{
    static const char *const words[] = {"\xE2\x96\x81", "a", "b", ("\xE2\x96\x81" "a"), "ab",
                                        ("\xE2\x96\x81" "ab"), "\xE4\xB8\xAD",
                                        "\xE2\x96\x81\xE2\x96\x81"};
    enum { N = 3 + 256 + sizeof words / sizeof words[0] + 1 };
    static char bytes[256][8];
    const char *tok[N] = {"<unk>", "<s>", "</s>"};
    int32_t type[N] = {2, 3, 3};
    float score[N] = {0};
    size_t n = 3;
    for (int b = 0; b < 256; b++, n++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        tok[n] = bytes[b], type[n] = 6;
    }
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++, n++)
        tok[n] = words[i], type[n] = 1, score[n] = -(float)i;
    tok[n] = "<u>", type[n] = 4, n++;
    buf b = {0};
    header(&b, 4);
    kv_str(&b, "tokenizer.ggml.model", "llama", 5);
    kv_strs(&b, "tokenizer.ggml.tokens", tok, n);
    kv_i32s(&b, "tokenizer.ggml.token_type", type, n);
    kv_f32s(&b, "tokenizer.ggml.scores", score, n);
    pi_tokenizer *t = load(&b);
    free(b.b);
    return t;
}

enum { N_VOCABS = 7 };
static pi_tokenizer *vocabs[N_VOCABS];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    static const char *pres[] = {"default", "gpt2", "smollm", "llama3", "qwen2", "deepseek-llm"};
    for (int b = 0; b < 256; b++)
        gpt2_char(b, gpt2_chars[b]);
    for (int i = 0; i < 6; i++)
        vocabs[i] = bpe_vocab(pres[i]);
    vocabs[6] = spm_vocab();
    for (int i = 0; i < N_VOCABS; i++)
        if (!vocabs[i])
            abort();
    return 0;
}

/* ---- the modes ------------------------------------------------------------- */

static void tokenize_and_check(const pi_tokenizer *t, bool spm, bool special, const char *s,
                               size_t n)
{
    pi_err err;
    int32_t *ids;
    size_t n_ids;
    if (pi_tokenize(t, s, n, false, special, &ids, &n_ids, &err) != 0)
        abort();
    volatile size_t sum = 0;
    for (size_t i = 0; i < n_ids; i++) {
        size_t len;
        const char *p = pi_token_piece(t, ids[i], &len);
        sum = sum + (len ? (unsigned char)p[len - 1] : 0); /* touch the piece */
        if (ids[i] < 0 || ids[i] >= pi_tokenizer_n_vocab(t))
            abort();
    }
    (void)sum;
    char *back = malloc(n + 1);
    size_t got = pi_detokenize(t, ids, n_ids, special, back, n + 1);
    /* SentencePiece reads a literal U+2581 as a space: no exact round trip. */
    bool exact = !spm || !memmem(s, n, "\xE2\x96\x81", 3);
    if (exact && (got != n || memcmp(back, s, n) != 0))
        abort();
    char small[7];
    if (pi_detokenize(t, ids, n_ids, special, small, sizeof small) != got)
        abort();
    free(back);
    free(ids);
}

static void chat_template(const char *s, size_t n)
{
    static const char *const tok[] = {"a", "b"};
    buf b = {0};
    header(&b, 4);
    kv_str(&b, "tokenizer.ggml.model", "gpt2", 4);
    kv_strs(&b, "tokenizer.ggml.tokens", tok, 2);
    kv_strs(&b, "tokenizer.ggml.merges", tok, 0);
    kv_str(&b, "tokenizer.chat_template", s, n);
    pi_tokenizer *t = load(&b);
    free(b.b);
    if (!t)
        abort();
    pi_chat_msg m[] = {{"user", "hi"}, {"assistant", "ho"}};
    pi_err err;
    char *out;
    if (pi_chat_format(t, m, 2, true, &out, NULL, &err) == 0)
        free(out);
    pi_tokenizer_free(t);
}

static void any_gguf(const uint8_t *s, size_t n)
{
    buf b = {malloc(n ? n : 1), 0, n ? n : 1}; /* a private copy: overreads hit ASan's redzone */
    put(&b, s, n);
    pi_tokenizer *t = load(&b);
    if (t) {
        static const char text[] = "Hello <s> w\xC3\xB8rld 123\n\t<|im_start|>";
        pi_err err;
        int32_t *ids;
        size_t n_ids;
        if (pi_tokenize(t, text, sizeof text - 1, false, true, &ids, &n_ids, &err) == 0) {
            char out[256];
            pi_detokenize(t, ids, n_ids, true, out, sizeof out);
            free(ids);
        }
        pi_tokenizer_free(t);
    }
    free(b.b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t mode = data[0];
    /* A private copy, so that reads past the end hit ASan's redzone. */
    char *s = malloc(size);
    memcpy(s, data + 1, size - 1);
    if (!(mode & 0x80)) {
        int v = (mode & 0x0F) % N_VOCABS;
        tokenize_and_check(vocabs[v], v == 6, mode & 0x10, s, size - 1);
    } else if (!(mode & 0x40)) {
        chat_template(s, size - 1);
    } else {
        any_gguf(data + 1, size - 1);
    }
    free(s);
    return 0;
}
