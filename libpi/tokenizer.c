/*
 * tokenizer: loading a GGUF vocabulary, splitting out special tokens, and
 * the public API.  Byte-level BPE is in tokenizer_bpe.c, SentencePiece in
 * tokenizer_spm.c, the pre-tokenizers in unicode.c.
 *
 * Loading copies the token texts into one buffer with an open-addressing
 * text -> id table, turns merges into an (left id, right id) -> (rank,
 * merged id) table, precomputes every token's bytes for pi_token_piece, and
 * builds a byte trie of the special tokens.  Every merge's two sides and its
 * result are checked to be tokens, as Hugging Face's BPE does, so a bad
 * vocabulary fails at load and not in the middle of a text.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h"

#define KEY "tokenizer.ggml."

/* tokenizer.ggml.pre values, as llama.cpp groups them by expression. */
static const struct pretok_name {
    const char *name;
    pi_pretok kind;
    bool ignore_merges;
} pretok_names[] = {
    {"default", PI_PRETOK_DEFAULT, false},
    {"gpt2", PI_PRETOK_GPT2, false},       {"gpt-2", PI_PRETOK_GPT2, false},
    {"phi-2", PI_PRETOK_GPT2, false},      {"roberta-bpe", PI_PRETOK_GPT2, false},
    {"mpt", PI_PRETOK_GPT2, false},        {"olmo", PI_PRETOK_GPT2, false},
    {"jais", PI_PRETOK_GPT2, false},       {"starcoder", PI_PRETOK_STARCODER, false},
    {"smollm", PI_PRETOK_STARCODER, false}, {"refact", PI_PRETOK_STARCODER, false},
    {"command-r", PI_PRETOK_STARCODER, false}, {"codeshell", PI_PRETOK_STARCODER, false},
    {"exaone", PI_PRETOK_STARCODER, false}, {"minerva-7b", PI_PRETOK_STARCODER, false},
    {"llama3", PI_PRETOK_LLAMA3, true},    {"llama-v3", PI_PRETOK_LLAMA3, true},
    {"llama-bpe", PI_PRETOK_LLAMA3, true}, {"falcon3", PI_PRETOK_LLAMA3, true},
    {"dbrx", PI_PRETOK_LLAMA3, false},     {"smaug-bpe", PI_PRETOK_LLAMA3, false},
    {"qwen2", PI_PRETOK_QWEN2, false},     {"deepseek-r1-qwen", PI_PRETOK_QWEN2, false},
    {"stablelm2", PI_PRETOK_QWEN2, false}, {"megrez", PI_PRETOK_QWEN2, false},
    {"deepseek-llm", PI_PRETOK_DEEPSEEK_LLM, false},
};

/* End-of-generation tokens recognised by their text (llama.cpp's list). */
static const char *const eog_names[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>", "<EOT>",
    "<\xEF\xBD\x9C" "end\xE2\x96\x81" "of\xE2\x96\x81" "sentence\xEF\xBD\x9C>", /* DeepSeek */
};

/* ---- small helpers ---------------------------------------------------- */

static int fail(pi_err *err, const pi_gguf *g, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(pi_err *err, const pi_gguf *g, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return pi_err_set(err, "%s: %s", pi_gguf_path(g), msg);
}

/* A token's text fit for an error message: printable ASCII and UTF-8 kept,
 * control bytes escaped, long texts cut. */
static const char *show(const char *s, size_t n, char buf[64])
{
    size_t o = 0, i = 0;
    for (; i < n && o < 52; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7F)
            o += (size_t)snprintf(buf + o, 64 - o, "\\x%02X", c);
        else
            buf[o++] = (char)c;
    }
    if (i < n)
        memcpy(buf + o, "...", 3), o += 3;
    buf[o] = 0;
    return buf;
}

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 0xCBF29CE484222325u ^ n; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001B3u;
    return h ^ (h >> 32);
}

static size_t table_size(size_t n) /* a power of two, at most half full */
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    return cap;
}

static const char *tok_text(const pi_tokenizer *t, int32_t id, size_t *len)
{
    *len = t->text_off[id + 1] - t->text_off[id];
    return t->text + t->text_off[id];
}

int pi_tk_push(pi_tk_ids *ids, int32_t id, pi_err *err)
{
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? 2 * ids->cap : 256;
        int32_t *v = realloc(ids->v, cap * sizeof *v);
        if (!v)
            return pi_err_set(err, "tokenizer: out of memory");
        ids->v = v, ids->cap = cap;
    }
    ids->v[ids->n++] = id;
    return 0;
}

int32_t pi_tk_find(const pi_tokenizer *t, const char *s, size_t n)
{
    for (size_t i = hash_bytes(s, n) & t->map_mask;; i = (i + 1) & t->map_mask) {
        int32_t id = t->map[i];
        if (id < 0)
            return -1;
        size_t len;
        const char *txt = tok_text(t, id, &len);
        if (len == n && memcmp(txt, s, n) == 0)
            return id;
    }
}

/* ---- loading ---------------------------------------------------------- */

static int load_tokens(pi_tokenizer *t, const pi_gguf *g, pi_err *err)
{
    const pi_gguf_arr *a = pi_gguf_get_arr(g, KEY "tokens", PI_GGUF_STR);
    if (!a)
        return fail(err, g, KEY "tokens: missing or not an array of strings");
    if (a->n == 0 || a->n > INT32_MAX)
        return fail(err, g, KEY "tokens: %llu entries", (unsigned long long)a->n);
    t->n_vocab = (int32_t)a->n;
    size_t total = 0;
    for (uint64_t i = 0; i < a->n; i++)
        total += pi_gguf_arr_str(a, i).len;
    t->text = malloc(total ? total : 1);
    t->text_off = malloc((a->n + 1) * sizeof *t->text_off);
    t->type = malloc(a->n);
    t->eog = calloc(a->n, 1);
    t->map_mask = table_size(a->n) - 1;
    t->map = malloc((t->map_mask + 1) * sizeof *t->map);
    if (!t->text || !t->text_off || !t->type || !t->eog || !t->map)
        return fail(err, g, "out of memory for %llu tokens", (unsigned long long)a->n);
    memset(t->map, 0xFF, (t->map_mask + 1) * sizeof *t->map);
    size_t off = 0;
    for (uint64_t i = 0; i < a->n; i++) {
        pi_gguf_str s = pi_gguf_arr_str(a, i);
        memcpy(t->text + off, s.ptr, s.len);
        t->text_off[i] = off;
        off += s.len;
        t->type[i] = PI_TOKEN_NORMAL;
    }
    t->text_off[a->n] = off;
    for (int32_t id = 0; id < t->n_vocab; id++) { /* the first of duplicates wins */
        size_t len;
        const char *s = tok_text(t, id, &len);
        size_t i = hash_bytes(s, len) & t->map_mask;
        while (t->map[i] >= 0) {
            size_t l2;
            const char *s2 = tok_text(t, t->map[i], &l2);
            if (l2 == len && memcmp(s, s2, len) == 0)
                break;
            i = (i + 1) & t->map_mask;
        }
        if (t->map[i] < 0)
            t->map[i] = id;
    }
    return 0;
}

static int load_types_scores(pi_tokenizer *t, const pi_gguf *g, pi_err *err)
{
    const pi_gguf_arr *a = pi_gguf_get_arr(g, KEY "token_type", PI_GGUF_TYPE_COUNT);
    if (a) {
        if (a->type > PI_GGUF_I64 || a->type == PI_GGUF_F32 || a->type == PI_GGUF_BOOL ||
            a->type == PI_GGUF_STR || a->type == PI_GGUF_ARR)
            return fail(err, g, KEY "token_type: not an integer array");
        if (a->n != (uint64_t)t->n_vocab)
            return fail(err, g, KEY "token_type: %llu entries for %d tokens",
                        (unsigned long long)a->n, t->n_vocab);
        for (int32_t i = 0; i < t->n_vocab; i++) {
            int64_t ty = pi_gguf_arr_i64(a, (uint64_t)i);
            t->type[i] = (uint8_t)(ty >= 0 && ty <= PI_TOKEN_BYTE ? ty : PI_TOKEN_UNDEFINED);
        }
    }
    if (!t->spm)
        return 0;
    t->score = calloc((size_t)t->n_vocab, sizeof *t->score);
    if (!t->score)
        return fail(err, g, "out of memory");
    a = pi_gguf_get_arr(g, KEY "scores", PI_GGUF_TYPE_COUNT);
    if (a) {
        if (a->type != PI_GGUF_F32)
            return fail(err, g, KEY "scores: not an f32 array");
        if (a->n != (uint64_t)t->n_vocab)
            return fail(err, g, KEY "scores: %llu entries for %d tokens",
                        (unsigned long long)a->n, t->n_vocab);
        for (int32_t i = 0; i < t->n_vocab; i++)
            t->score[i] = pi_gguf_arr_f32(a, (uint64_t)i);
    }
    return 0;
}

/* GPT-2's mapping of bytes to printable code points: the printable Latin-1
 * bytes stand for themselves, the other 68 take U+0100.. in byte order. */
static void gpt2_byte_map(uint32_t cp[256])
{
    uint32_t next = 256;
    for (int b = 0; b < 256; b++) {
        bool self = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        cp[b] = self ? (uint32_t)b : next++;
    }
}

static void find_byte_tokens(pi_tokenizer *t)
{
    for (int b = 0; b < 256; b++) {
        char s[8];
        int32_t id;
        if (t->spm) {
            snprintf(s, sizeof s, "<0x%02X>", b);
            id = pi_tk_find(t, s, 6);
            if (id < 0)
                s[0] = (char)b, id = pi_tk_find(t, s, 1);
        } else {
            id = pi_tk_find(t, s, pi_utf8_encode(t->byte_cp[b], s));
        }
        t->byte_tok[b] = id;
    }
}

static int load_merges(pi_tokenizer *t, const pi_gguf *g, pi_err *err)
{
    const pi_gguf_arr *a = pi_gguf_get_arr(g, KEY "merges", PI_GGUF_STR);
    if (!a)
        return fail(err, g, KEY "merges: missing or not an array of strings "
                            "(the gpt2 tokenizer needs it)");
    if (a->n > INT32_MAX)
        return fail(err, g, KEY "merges: %llu entries", (unsigned long long)a->n);
    t->merge_mask = table_size(a->n) - 1;
    t->merges = malloc((t->merge_mask + 1) * sizeof *t->merges);
    size_t cap = 256;
    char *cat = malloc(cap), show1[64], show2[64];
    if (!t->merges || !cat) {
        free(cat);
        return fail(err, g, "out of memory for %llu merges", (unsigned long long)a->n);
    }
    memset(t->merges, 0xFF, (t->merge_mask + 1) * sizeof *t->merges);
    int rc = 0;
    for (uint64_t i = 0; i < a->n && rc == 0; i++) {
        pi_gguf_str s = pi_gguf_arr_str(a, i);
        const char *sp = s.len > 1 ? memchr(s.ptr + 1, ' ', s.len - 1) : NULL;
        if (!sp) {
            rc = fail(err, g, KEY "merges[%llu] '%s': not two tokens separated by a space",
                      (unsigned long long)i, show(s.ptr, s.len, show1));
            break;
        }
        size_t nl = (size_t)(sp - s.ptr), nr = s.len - nl - 1;
        if (s.len > cap) {
            char *c2 = realloc(cat, cap = s.len);
            if (!c2) {
                rc = fail(err, g, "out of memory");
                break;
            }
            cat = c2;
        }
        memcpy(cat, s.ptr, nl);
        memcpy(cat + nl, sp + 1, nr);
        int32_t l = pi_tk_find(t, s.ptr, nl), r = pi_tk_find(t, sp + 1, nr);
        int32_t res = pi_tk_find(t, cat, nl + nr);
        const char *bad = l < 0 ? s.ptr : r < 0 ? sp + 1 : res < 0 ? cat : NULL;
        if (bad) {
            size_t nb = l < 0 ? nl : r < 0 ? nr : nl + nr;
            rc = fail(err, g, KEY "merges[%llu] '%s': '%s' is not in the vocabulary",
                      (unsigned long long)i, show(s.ptr, s.len, show1), show(bad, nb, show2));
            break;
        }
        uint64_t key = (uint64_t)l << 32 | (uint32_t)r;
        size_t k = pi_tk_merge_hash(key) & t->merge_mask;
        while (t->merges[k].key != UINT64_MAX && t->merges[k].key != key)
            k = (k + 1) & t->merge_mask;
        if (t->merges[k].key == UINT64_MAX) /* a repeated merge keeps its first rank */
            t->merges[k] = (pi_tk_merge){key, (int32_t)i, res};
    }
    free(cat);
    return rc;
}

static void load_special_ids(pi_tokenizer *t, const pi_gguf *g)
{
    static const struct {
        const char *key;
        size_t field;
    } keys[] = {
        {KEY "bos_token_id", offsetof(pi_tokenizer, bos)},
        {KEY "eos_token_id", offsetof(pi_tokenizer, eos)},
        {KEY "unknown_token_id", offsetof(pi_tokenizer, unk)},
        {KEY "eot_token_id", offsetof(pi_tokenizer, eot)},
        {KEY "eom_token_id", offsetof(pi_tokenizer, eom)},
    };
    /* SentencePiece defaults, as llama.cpp; BPE has none. */
    t->bos = t->spm ? 1 : -1, t->eos = t->spm ? 2 : -1, t->unk = t->spm ? 0 : -1;
    t->eot = t->eom = -1;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        int32_t *f = (int32_t *)((char *)t + keys[i].field);
        uint32_t v;
        if (pi_gguf_get_u32(g, keys[i].key, &v) == 0 && v < (uint32_t)t->n_vocab)
            *f = (int32_t)v; /* an id out of range is ignored, as llama.cpp does */
        if (*f >= t->n_vocab)
            *f = -1;
    }
    bool b;
    t->add_bos = t->spm;
    if (pi_gguf_get_bool(g, KEY "add_bos_token", &b) == 0)
        t->add_bos = b;
    t->add_bos = t->add_bos && t->bos >= 0;
    t->add_space_prefix = t->spm;
    if (pi_gguf_get_bool(g, KEY "add_space_prefix", &b) == 0)
        t->add_space_prefix = b;

    for (size_t i = 0; i < sizeof eog_names / sizeof eog_names[0]; i++) {
        int32_t id = pi_tk_find(t, eog_names[i], strlen(eog_names[i]));
        if (id >= 0)
            t->eog[id] = 1;
    }
    int32_t ids[3] = {t->eos, t->eot, t->eom};
    for (int i = 0; i < 3; i++)
        if (ids[i] >= 0)
            t->eog[ids[i]] = 1;
}

/* The bytes each token stands for; never longer than its text. */
static int build_pieces(pi_tokenizer *t, const pi_gguf *g, pi_err *err)
{
    size_t n = (size_t)t->n_vocab;
    t->piece = malloc(t->text_off[n] ? t->text_off[n] : 1);
    t->piece_off = malloc((n + 1) * sizeof *t->piece_off);
    if (!t->piece || !t->piece_off)
        return fail(err, g, "out of memory");
    int16_t byte_of[256 + 68]; /* GPT-2 code point -> byte */
    memset(byte_of, 0xFF, sizeof byte_of);
    for (int b = 0; b < 256; b++)
        byte_of[t->byte_cp[b]] = (int16_t)b;
    size_t o = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        size_t len;
        const char *s = tok_text(t, id, &len);
        int ty = t->type[id];
        t->piece_off[id] = o;
        if (ty == PI_TOKEN_CONTROL || ty == PI_TOKEN_UNKNOWN || ty == PI_TOKEN_USER_DEFINED) {
            memcpy(t->piece + o, s, len), o += len;
        } else if (t->spm && ty == PI_TOKEN_BYTE && len == 6 && memcmp(s, "<0x", 3) == 0 &&
                   s[5] == '>') {
            char hex[3] = {s[3], s[4], 0}, *end;
            long v = strtol(hex, &end, 16);
            if (*end)
                memcpy(t->piece + o, s, len), o += len;
            else
                t->piece[o++] = (char)v;
        } else if (t->spm && ty == PI_TOKEN_NORMAL) {
            for (size_t i = 0; i < len; i++) {
                if (i + 3 <= len && memcmp(s + i, "\xE2\x96\x81", 3) == 0)
                    t->piece[o++] = ' ', i += 2;
                else
                    t->piece[o++] = s[i];
            }
        } else if (!t->spm && ty == PI_TOKEN_NORMAL) {
            for (size_t i = 0, k; i < len; i += k) {
                uint32_t cp = pi_utf8_decode(s + i, len - i, &k);
                if (cp < 256 + 68 && byte_of[cp] >= 0)
                    t->piece[o++] = (char)byte_of[cp];
                else
                    memcpy(t->piece + o, s + i, k), o += k;
            }
        }
    }
    t->piece_off[n] = o;
    return 0;
}

static int build_trie(pi_tokenizer *t, const pi_gguf *g, pi_err *err)
{
    size_t cap = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        int ty = t->type[id];
        if (ty == PI_TOKEN_CONTROL || ty == PI_TOKEN_UNKNOWN || ty == PI_TOKEN_USER_DEFINED)
            cap += t->text_off[id + 1] - t->text_off[id];
    }
    memset(t->trie_root, 0xFF, sizeof t->trie_root);
    if (!cap)
        return 0;
    t->trie = malloc(cap * sizeof *t->trie);
    if (!t->trie)
        return fail(err, g, "out of memory");
    for (int32_t id = 0; id < t->n_vocab; id++) {
        int ty = t->type[id];
        if (ty != PI_TOKEN_CONTROL && ty != PI_TOKEN_UNKNOWN && ty != PI_TOKEN_USER_DEFINED)
            continue;
        size_t len;
        const unsigned char *s = (const unsigned char *)tok_text(t, id, &len);
        if (!len)
            continue;
        t->n_user_defined += ty == PI_TOKEN_USER_DEFINED;
        int32_t *link = &t->trie_root[s[0]], node = -1;
        for (size_t i = 0; i < len; i++) {
            while (*link >= 0 && t->trie[*link].byte != s[i])
                link = &t->trie[*link].sibling;
            if (*link < 0) {
                t->trie[t->n_trie] = (pi_tk_trie){-1, -1, -1, s[i]};
                *link = (int32_t)t->n_trie++;
            }
            node = *link;
            link = &t->trie[node].child;
        }
        if (t->trie[node].id < 0)
            t->trie[node].id = id;
    }
    return 0;
}

static const char *find(const char *s, const char *end, const char *what)
{
    size_t n = strlen(what);
    for (; s + n <= end; s++)
        if (memcmp(s, what, n) == 0)
            return s;
    return NULL;
}

/* A ChatML template's default system prompt: the first literal
 * '<|im_start|>system\n...<|im_end|>' in it whose text has no quotes or
 * braces (so is not an expression), with Jinja string escapes undone. */
static char *chat_default_system(const char *tpl, size_t n)
{
    const char *end = tpl + n, *tag = "<|im_start|>system";
    for (const char *p = tpl; (p = find(p, end, tag)); p++) {
        const char *q = p + strlen(tag);
        if (q < end && *q == '\n')
            q++;
        else if (q + 1 < end && q[0] == '\\' && q[1] == 'n')
            q += 2;
        else
            continue;
        const char *e = find(q, end, "<|im_end|>");
        if (!e)
            return NULL;
        bool literal = e > q;
        for (const char *c = q; c < e && literal; c++) {
            if (*c == '\\')
                c++;
            else if (*c == '\'' || *c == '"' || *c == '{' || *c == '}')
                literal = false;
        }
        if (!literal)
            continue;
        char *out = malloc((size_t)(e - q) + 1), *o = out;
        if (!out)
            return NULL;
        for (const char *c = q; c < e; c++) {
            if (*c == '\\' && c + 1 < e) {
                c++;
                *o++ = *c == 'n' ? '\n' : *c == 't' ? '\t' : *c;
            } else {
                *o++ = *c;
            }
        }
        *o = 0;
        return out;
    }
    return NULL;
}

static int load_model_kind(pi_tokenizer *t, const pi_gguf *g, pi_err *err)
{
    pi_gguf_str model, pre;
    char buf[64];
    if (pi_gguf_get_str(g, KEY "model", &model) != 0)
        return fail(err, g, KEY "model: missing");
    if (model.len == 4 && memcmp(model.ptr, "gpt2", 4) == 0)
        t->spm = false;
    else if (model.len == 5 && memcmp(model.ptr, "llama", 5) == 0)
        t->spm = true;
    else
        return fail(err, g, KEY "model '%s': unsupported tokenizer (pi reads 'gpt2' and 'llama')",
                    show(model.ptr, model.len, buf));
    t->pre = PI_PRETOK_DEFAULT;
    if (t->spm || pi_gguf_get_str(g, KEY "pre", &pre) != 0)
        return 0;
    for (size_t i = 0; i < sizeof pretok_names / sizeof pretok_names[0]; i++) {
        if (strlen(pretok_names[i].name) == pre.len &&
            memcmp(pretok_names[i].name, pre.ptr, pre.len) == 0) {
            t->pre = pretok_names[i].kind;
            t->ignore_merges = pretok_names[i].ignore_merges;
            return 0;
        }
    }
    return fail(err, g, KEY "pre '%s': unknown pre-tokenizer", show(pre.ptr, pre.len, buf));
}

pi_tokenizer *pi_tokenizer_load(const pi_gguf *g, pi_err *err)
{
    pi_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        fail(err, g, "out of memory");
        return NULL;
    }
    gpt2_byte_map(t->byte_cp);
    if (load_model_kind(t, g, err) || load_tokens(t, g, err) || load_types_scores(t, g, err))
        goto bad;
    find_byte_tokens(t);
    if ((!t->spm && load_merges(t, g, err)) || build_pieces(t, g, err) || build_trie(t, g, err))
        goto bad;
    load_special_ids(t, g);
    pi_gguf_str tpl;
    if (pi_gguf_get_str(g, "tokenizer.chat_template", &tpl) == 0 &&
        find(tpl.ptr, tpl.ptr + tpl.len, "<|im_start|>")) {
        t->chatml = true;
        t->chat_system = chat_default_system(tpl.ptr, tpl.len);
    }
    return t;
bad:
    pi_tokenizer_free(t);
    return NULL;
}

void pi_tokenizer_free(pi_tokenizer *t)
{
    if (!t)
        return;
    free(t->text), free(t->text_off), free(t->piece), free(t->piece_off);
    free(t->type), free(t->eog), free(t->score), free(t->map), free(t->merges);
    free(t->trie), free(t->chat_system);
    free(t);
}

/* ---- tokenizing ---------------------------------------------------------- */

/* The longest special token allowed here that starts at s[0..n), or -1. */
static int32_t match_special(const pi_tokenizer *t, const char *s, size_t n, bool parse_special,
                             size_t *len)
{
    int32_t node = t->trie_root[(unsigned char)s[0]], best = -1;
    for (size_t i = 1; node >= 0; i++) {
        int32_t id = t->trie[node].id;
        if (id >= 0 && (parse_special || t->type[id] == PI_TOKEN_USER_DEFINED))
            best = id, *len = i;
        if (i == n)
            break;
        node = t->trie[node].child;
        while (node >= 0 && t->trie[node].byte != (unsigned char)s[i])
            node = t->trie[node].sibling;
    }
    return best;
}

/* A run of text between special tokens.  SentencePiece prefixes a space to
 * every run: each follows the start or a special token, as in llama.cpp. */
static int encode_text(const pi_tokenizer *t, const char *s, size_t n, pi_tk_ids *out,
                       pi_err *err)
{
    if (!n)
        return 0;
    if (t->spm)
        return pi_tk_spm_encode(t, s, n, t->add_space_prefix, out, err);
    return pi_tk_bpe_encode(t, s, n, out, err);
}

int pi_tokenize(const pi_tokenizer *t, const char *text, size_t len, bool add_bos,
                bool parse_special, int32_t **out, size_t *n_out, pi_err *err)
{
    *out = NULL;
    *n_out = 0;
    if (add_bos && t->bos < 0)
        return pi_err_set(err, "tokenizer: the vocabulary has no BOS token");
    pi_tk_ids ids = {0};
    int rc = add_bos ? pi_tk_push(&ids, t->bos, err) : 0;
    bool scan = t->n_trie && (parse_special || t->n_user_defined);
    size_t start = 0;
    for (size_t i = 0; i < len && scan && rc == 0;) {
        size_t mlen = 0;
        int32_t id = match_special(t, text + i, len - i, parse_special, &mlen);
        if (id < 0) {
            i++;
            continue;
        }
        rc = encode_text(t, text + start, i - start, &ids, err);
        if (rc == 0)
            rc = pi_tk_push(&ids, id, err);
        i += mlen;
        start = i;
    }
    if (rc == 0)
        rc = encode_text(t, text + start, len - start, &ids, err);
    if (rc) {
        free(ids.v);
        return -1;
    }
    *out = ids.v;
    *n_out = ids.n;
    return 0;
}

/* ---- accessors and detokenizing ---------------------------------------------- */

int32_t pi_tokenizer_n_vocab(const pi_tokenizer *t) { return t->n_vocab; }
int32_t pi_tokenizer_bos(const pi_tokenizer *t) { return t->bos; }
int32_t pi_tokenizer_eos(const pi_tokenizer *t) { return t->eos; }
bool pi_tokenizer_add_bos(const pi_tokenizer *t) { return t->add_bos; }

bool pi_token_is_eog(const pi_tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->n_vocab && t->eog[id];
}

int pi_token_type(const pi_tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->n_vocab ? t->type[id] : -1;
}

const char *pi_token_text(const pi_tokenizer *t, int32_t id, size_t *len)
{
    if (id < 0 || id >= t->n_vocab) {
        *len = 0;
        return "";
    }
    return tok_text(t, id, len);
}

int32_t pi_token_lookup(const pi_tokenizer *t, const char *text, size_t len)
{
    return pi_tk_find(t, text, len);
}

const char *pi_token_piece(const pi_tokenizer *t, int32_t id, size_t *len)
{
    if (id < 0 || id >= t->n_vocab) {
        *len = 0;
        return "";
    }
    *len = t->piece_off[id + 1] - t->piece_off[id];
    return t->piece + t->piece_off[id];
}

static bool is_special_type(int ty)
{
    return ty == PI_TOKEN_CONTROL || ty == PI_TOKEN_UNKNOWN || ty == PI_TOKEN_USER_DEFINED;
}

size_t pi_detokenize(const pi_tokenizer *t, const int32_t *ids, size_t n, bool special,
                     char *buf, size_t cap)
{
    size_t total = 0;
    bool strip = t->spm && t->add_space_prefix; /* undo the prefixed space */
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *p = pi_token_piece(t, ids[i], &len);
        int ty = pi_token_type(t, ids[i]);
        if (is_special_type(ty)) {
            if (!special && ty != PI_TOKEN_USER_DEFINED)
                len = 0;
            strip = t->spm && t->add_space_prefix;
        } else if (ty >= 0) {
            if (strip && len && p[0] == ' ')
                p++, len--;
            strip = false;
        }
        if (total < cap)
            memcpy(buf + total, p, len < cap - total ? len : cap - total);
        total += len;
    }
    if (cap)
        buf[total < cap ? total : cap - 1] = 0;
    return total;
}

/* ---- chat ---------------------------------------------------------------- */

bool pi_tokenizer_has_chat(const pi_tokenizer *t) { return t->chatml; }

static size_t put(char *o, size_t at, const char *s)
{
    size_t n = strlen(s);
    if (o)
        memcpy(o + at, s, n);
    return at + n;
}

static size_t chatml(const pi_tokenizer *t, const pi_chat_msg *m, size_t n, bool gen, char *o)
{
    size_t at = 0;
    if (t->chat_system && n > 0 && strcmp(m[0].role, "system") != 0) {
        at = put(o, at, "<|im_start|>system\n");
        at = put(o, at, t->chat_system);
        at = put(o, at, "<|im_end|>\n");
    }
    for (size_t i = 0; i < n; i++) {
        at = put(o, at, "<|im_start|>");
        at = put(o, at, m[i].role);
        at = put(o, at, "\n");
        at = put(o, at, m[i].content);
        at = put(o, at, "<|im_end|>\n");
    }
    if (gen)
        at = put(o, at, "<|im_start|>assistant\n");
    return at;
}

int pi_chat_format(const pi_tokenizer *t, const pi_chat_msg *msgs, size_t n,
                   bool add_generation_prompt, char **out, size_t *len, pi_err *err)
{
    *out = NULL;
    if (!t->chatml)
        return pi_err_set(err, "chat: the model's chat template is not ChatML "
                               "(no <|im_start|>); only ChatML is supported");
    for (size_t i = 0; i < n; i++)
        if (!msgs[i].role || !msgs[i].content)
            return pi_err_set(err, "chat: message %zu has no role or content", i);
    size_t need = chatml(t, msgs, n, add_generation_prompt, NULL);
    char *o = malloc(need + 1);
    if (!o)
        return pi_err_set(err, "chat: out of memory");
    chatml(t, msgs, n, add_generation_prompt, o);
    o[need] = 0;
    *out = o;
    if (len)
        *len = need;
    return 0;
}
