/*
 * unicode: UTF-8, categories, and the BPE pre-tokenizers as hand-written
 * matchers.
 *
 * Each regular expression a pre-tokenizer uses is one function that answers
 * "how many code points does the expression match at position i of this
 * piece" (0: no match), trying the alternatives in order as a backtracking
 * regex engine would.  split() applies a sequence of them the way
 * llama.cpp's unicode_regex_split() and Hugging Face's Split(Isolated)
 * do: the matches of one expression and the gaps between them become the
 * pieces the next expression sees, and an expression never looks past the
 * end of its piece (so "$" and "(?!\S)" see the piece's end as the end).
 *
 * The expressions, from llama.cpp's llama-vocab.cpp:
 *   GPT-2:   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)
 *   Llama 3: (?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])
 *            |[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*
 *            |\s*[\r\n]+|\s+(?!\S)|\s+                (Qwen2: \p{N} for \p{N}{1,3})
 */
#include "unicode.h"

#include <stdbool.h>
#include <stdlib.h>

uint32_t pi_utf8_decode(const char *s, size_t len, size_t *n)
{
    const unsigned char *u = (const unsigned char *)s;
    unsigned b0 = u[0];
    *n = 1;
    if (b0 < 0x80)
        return b0;
    size_t need;
    uint32_t cp;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        need = 1, cp = b0 & 0x1F;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        need = 2, cp = b0 & 0x0F;
        if (b0 == 0xE0) lo = 0xA0;      /* overlong */
        if (b0 == 0xED) hi = 0x9F;      /* surrogates */
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        need = 3, cp = b0 & 0x07;
        if (b0 == 0xF0) lo = 0x90;      /* overlong */
        if (b0 == 0xF4) hi = 0x8F;      /* above U+10FFFF */
    } else {
        return PI_UNICODE_REPLACEMENT;
    }
    if (len <= need || u[1] < lo || u[1] > hi)
        return PI_UNICODE_REPLACEMENT;
    for (size_t k = 1; k <= need; k++) {
        if ((u[k] & 0xC0) != 0x80)
            return PI_UNICODE_REPLACEMENT;
        cp = cp << 6 | (u[k] & 0x3F);
    }
    *n = need + 1;
    return cp;
}

size_t pi_utf8_encode(uint32_t cp, char out[4])
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

unsigned pi_unicode_flags(uint32_t cp)
{
    if (cp > 0x10FFFF)
        return 0;
    size_t lo = 0, hi = pi_unicode_n_ranges; /* last range with start <= cp */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (pi_unicode_ranges[mid].start <= cp)
            lo = mid;
        else
            hi = mid;
    }
    return pi_unicode_ranges[lo].flags;
}

/* ---- the text as code points ---------------------------------------- */

typedef struct cpts {
    const char *text;
    size_t n;
    uint32_t *cp;
    uint16_t *fl;
    size_t *off; /* byte offset of each code point; off[n] is the length */
} cpts;

enum { WS = PI_UCAT_WHITESPACE, LET = PI_UCAT_LETTER, NUM = PI_UCAT_NUMBER };

static bool is_(const cpts *c, size_t j, size_t end, unsigned f) { return j < end && (c->fl[j] & f); }
static bool is_other(const cpts *c, size_t j, size_t end) /* [^\s\p{L}\p{N}] */
{
    return j < end && !(c->fl[j] & (WS | LET | NUM));
}
static bool is_crlf(uint32_t cp) { return cp == '\r' || cp == '\n'; }

static size_t run(const cpts *c, size_t j, size_t end, unsigned f)
{
    size_t k = j;
    while (k < end && (c->fl[k] & f))
        k++;
    return k - j;
}

static size_t run_other(const cpts *c, size_t j, size_t end)
{
    size_t k = j;
    while (is_other(c, k, end))
        k++;
    return k - j;
}

static uint32_t lower_ascii(uint32_t cp) { return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp; }

/* 's|'t|'re|'ve|'m|'ll|'d, optionally ASCII case-insensitive. */
static size_t contraction(const cpts *c, size_t i, size_t end, bool fold)
{
    if (c->cp[i] != '\'' || i + 1 >= end)
        return 0;
    uint32_t a = fold ? lower_ascii(c->cp[i + 1]) : c->cp[i + 1];
    if (a == 's' || a == 't' || a == 'm' || a == 'd')
        return 2;
    if (i + 2 >= end)
        return 0;
    uint32_t b = fold ? lower_ascii(c->cp[i + 2]) : c->cp[i + 2];
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
        return 3;
    return 0;
}

/* \s+(?!\S)|\s+ given a whitespace run of k >= 1 at i. */
static size_t trailing_ws(size_t i, size_t k, size_t end) { return i + k == end || k == 1 ? k : k - 1; }

/* ---- the expressions ------------------------------------------------- */

typedef size_t (*matcher)(const cpts *c, size_t i, size_t end);

static size_t m_gpt2(const cpts *c, size_t i, size_t end)
{
    size_t m = contraction(c, i, end, false);
    if (m)
        return m;
    size_t sp = c->cp[i] == ' ' && i + 1 < end; /* " ?" */
    if (is_(c, i + sp, end, LET))
        return sp + run(c, i + sp, end, LET);
    if (is_(c, i + sp, end, NUM))
        return sp + run(c, i + sp, end, NUM);
    if (is_other(c, i + sp, end))
        return sp + run_other(c, i + sp, end);
    size_t k = run(c, i, end, WS);
    return k ? trailing_ws(i, k, end) : 0;
}

static size_t m_llama3_digits(const cpts *c, size_t i, size_t end, size_t max_digits)
{
    size_t m = contraction(c, i, end, true);
    if (m)
        return m;
    uint32_t cp = c->cp[i];
    if (c->fl[i] & LET) /* [^\r\n\p{L}\p{N}]?\p{L}+ */
        return run(c, i, end, LET);
    if (!is_crlf(cp) && !(c->fl[i] & NUM) && is_(c, i + 1, end, LET))
        return 1 + run(c, i + 1, end, LET);
    if (c->fl[i] & NUM) { /* \p{N}{1,max} */
        size_t k = run(c, i, end, NUM);
        return k < max_digits ? k : max_digits;
    }
    size_t sp = cp == ' ' && i + 1 < end; /* " ?[^\s\p{L}\p{N}]+[\r\n]*" */
    if (is_other(c, i + sp, end)) {
        size_t j = i + sp + run_other(c, i + sp, end);
        while (j < end && is_crlf(c->cp[j]))
            j++;
        return j - i;
    }
    size_t k = run(c, i, end, WS);
    if (!k)
        return 0;
    for (size_t j = i + k; j > i; j--) /* \s*[\r\n]+: up to the last newline */
        if (is_crlf(c->cp[j - 1]))
            return j - i;
    return trailing_ws(i, k, end);
}

static size_t m_llama3(const cpts *c, size_t i, size_t end) { return m_llama3_digits(c, i, end, 3); }
static size_t m_qwen2(const cpts *c, size_t i, size_t end) { return m_llama3_digits(c, i, end, 1); }

static size_t m_digit(const cpts *c, size_t i, size_t end) /* \p{N} */
{
    (void)end;
    return (c->fl[i] & NUM) ? 1 : 0;
}

static size_t m_digits(const cpts *c, size_t i, size_t end) /* \p{N}+ */
{
    return run(c, i, end, NUM);
}

static size_t m_three_ascii_digits(const cpts *c, size_t i, size_t end) /* [0-9][0-9][0-9] */
{
    for (size_t k = 0; k < 3; k++)
        if (i + k >= end || c->cp[i + k] < '0' || c->cp[i + k] > '9')
            return 0;
    return 3;
}

static bool is_default_punct(const cpts *c, size_t j) /* [\p{P}\$\+<=>\^~\|] */
{
    uint32_t cp = c->cp[j];
    return (c->fl[j] & PI_UCAT_PUNCT) || cp == '$' || cp == '+' || cp == '<' || cp == '=' ||
           cp == '>' || cp == '^' || cp == '~' || cp == '|';
}

static size_t m_default_punct(const cpts *c, size_t i, size_t end)
{
    size_t k = i;
    while (k < end && is_default_punct(c, k))
        k++;
    return k - i;
}

/* DeepSeek LLM's expressions spell out their letter and punctuation classes
 * (from its tokenizer.json, as quoted in llama.cpp); ranges are inclusive. */
typedef struct cp_range {
    uint32_t lo, hi;
} cp_range;

static const cp_range ds_letters[] = {
    {0x0041, 0x005A}, {0x0061, 0x007A}, {0x00B5, 0x00B5}, {0x00C0, 0x00D6}, {0x00D8, 0x00F6},
    {0x00F8, 0x01BA}, {0x01BC, 0x01BF}, {0x01C4, 0x0293}, {0x0295, 0x02AF}, {0x0370, 0x0373},
    {0x0376, 0x0377}, {0x037B, 0x037D}, {0x037F, 0x037F}, {0x0386, 0x0386}, {0x0388, 0x038A},
    {0x038C, 0x038C}, {0x038E, 0x03A1}, {0x03A3, 0x03F5}, {0x03F7, 0x0481}, {0x048A, 0x052F},
    {0x0531, 0x0556}, {0x10A0, 0x10C5}, {0x13A0, 0x13F5}, {0x13F8, 0x13FD}, {0x1C90, 0x1CBA},
    {0x1CBD, 0x1CBF}, {0x1D00, 0x1D2B}, {0x1D6B, 0x1D77}, {0x1D79, 0x1D9A}, {0x1E00, 0x1F15},
    {0x1F18, 0x1F1D}, {0x1F20, 0x1F45}, {0x1F48, 0x1F4D}, {0x1F50, 0x1F57}, {0x1F59, 0x1F59},
    {0x1F5B, 0x1F5B}, {0x1F5D, 0x1F5D}, {0x1F5F, 0x1F7D}, {0x1F80, 0x1FB4}, {0x1FB6, 0x1FBC},
    {0x1FBE, 0x1FBE}, {0x1FC2, 0x1FC4}, {0x1FC6, 0x1FCC}, {0x1FD0, 0x1FD3}, {0x1FD6, 0x1FDB},
    {0x1FE0, 0x1FEC}, {0x1FF2, 0x1FF4}, {0x1FF6, 0x1FFC}, {0x2102, 0x2102}, {0x2107, 0x2107},
    {0x210A, 0x2113}, {0x2115, 0x2115}, {0x2119, 0x211D}, {0x2124, 0x2124}, {0x2126, 0x2126},
    {0x2128, 0x2128}, {0x212A, 0x212D}, {0x212F, 0x2134}, {0x2139, 0x2139}, {0x213C, 0x213F},
    {0x2145, 0x2149}, {0x214E, 0x214E}, {0x2183, 0x2184}, {0x2C00, 0x2C7B}, {0x2C7E, 0x2CE4},
    {0x2CEB, 0x2CEE}, {0x2CF2, 0x2CF3}, {0xA640, 0xA66D}, {0xA680, 0xA69B}, {0xA722, 0xA76F},
    {0xA771, 0xA787}, {0xA78B, 0xA78E}, {0xAB70, 0xABBF}, {0xFB00, 0xFB06}, {0xFB13, 0xFB17},
    {0xFF21, 0xFF3A}, {0xFF41, 0xFF5A}, {0x10400, 0x1044F}, {0x104B0, 0x104D3},
    {0x104D8, 0x104FB}, {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2}, {0x118A0, 0x118DF},
    {0x1E900, 0x1E943},
};
static const cp_range ds_punct[] = {
    {0x0021, 0x002F}, {0x003A, 0x007E}, {0xFF01, 0xFF0F}, {0xFF1A, 0xFF5E}, {0x2018, 0x201F},
    {0x3000, 0x3002},
};
static const cp_range ds_cjk[] = {{0x4E00, 0x9FA5}, {0x0800, 0x4E00}, {0xAC00, 0xD7FF}};

static bool in_ranges(uint32_t cp, const cp_range *r, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (cp >= r[k].lo && cp <= r[k].hi)
            return true;
    return false;
}

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static size_t run_class(const cpts *c, size_t j, size_t end, const cp_range *r, size_t n)
{
    size_t k = j;
    while (k < end && in_ranges(c->cp[k], r, n))
        k++;
    return k - j;
}

/* \s?[class]+ */
static size_t ws_opt_class(const cpts *c, size_t i, size_t end, const cp_range *r, size_t n)
{
    size_t k;
    if ((c->fl[i] & WS) && (k = run_class(c, i + 1, end, r, n)))
        return 1 + k;
    return run_class(c, i, end, r, n); /* U+3000 is both \s and in a class */
}

static size_t m_ds_newline(const cpts *c, size_t i, size_t end) /* [\r\n] */
{
    (void)end;
    return is_crlf(c->cp[i]);
}
static size_t m_ds_letters(const cpts *c, size_t i, size_t end)
{
    return ws_opt_class(c, i, end, ds_letters, N_OF(ds_letters));
}
static size_t m_ds_punct(const cpts *c, size_t i, size_t end)
{
    return ws_opt_class(c, i, end, ds_punct, N_OF(ds_punct));
}
static size_t m_ds_trailing_ws(const cpts *c, size_t i, size_t end) /* \s+$ */
{
    size_t k = run(c, i, end, WS);
    return k && i + k == end ? k : 0;
}
static size_t m_ds_cjk(const cpts *c, size_t i, size_t end)
{
    return run_class(c, i, end, ds_cjk, N_OF(ds_cjk));
}

static const matcher seq_default[] = {m_default_punct, m_gpt2, m_digits, m_three_ascii_digits, NULL};
static const matcher seq_gpt2[] = {m_gpt2, NULL};
static const matcher seq_starcoder[] = {m_digit, m_gpt2, NULL};
static const matcher seq_llama3[] = {m_llama3, NULL};
static const matcher seq_qwen2[] = {m_qwen2, NULL};
static const matcher seq_deepseek_llm[] = {m_ds_newline, m_ds_letters, m_ds_punct,
                                           m_ds_trailing_ws, m_ds_cjk, m_digits, NULL};

/* ---- splitting -------------------------------------------------------- */

typedef struct splitter {
    const cpts *c;
    pi_word_fn fn;
    void *ctx;
} splitter;

/* Splits code points [a, b) with stages[0], handing each piece to the next
 * stage; after the last stage a piece is a word. */
static int split(const splitter *s, const matcher *stages, size_t a, size_t b)
{
    const cpts *c = s->c;
    if (!stages[0])
        return s->fn(s->ctx, c->text + c->off[a], c->off[b] - c->off[a]);
    size_t gap = a, i = a;
    int rc;
    while (i < b) {
        size_t m = stages[0](c, i, b);
        if (!m) {
            i++;
            continue;
        }
        if (gap < i && (rc = split(s, stages + 1, gap, i)))
            return rc;
        if ((rc = split(s, stages + 1, i, i + m)))
            return rc;
        i += m;
        gap = i;
    }
    return gap < b ? split(s, stages + 1, gap, b) : 0;
}

static const matcher *stages_of(pi_pretok kind)
{
    switch (kind) {
    case PI_PRETOK_DEFAULT: return seq_default;
    case PI_PRETOK_GPT2: return seq_gpt2;
    case PI_PRETOK_STARCODER: return seq_starcoder;
    case PI_PRETOK_LLAMA3: return seq_llama3;
    case PI_PRETOK_QWEN2: return seq_qwen2;
    case PI_PRETOK_DEEPSEEK_LLM: return seq_deepseek_llm;
    }
    return seq_gpt2;
}

int pi_pretokenize(pi_pretok kind, const char *text, size_t len, pi_word_fn fn, void *ctx,
                   pi_err *err)
{
    if (len == 0)
        return 0;
    cpts c = {.text = text};
    c.cp = malloc(len * sizeof *c.cp);
    c.fl = malloc(len * sizeof *c.fl);
    c.off = malloc((len + 1) * sizeof *c.off);
    if (!c.cp || !c.fl || !c.off) {
        free(c.cp), free(c.fl), free(c.off);
        return pi_err_set(err, "pre-tokenizer: out of memory for %zu bytes of text", len);
    }
    for (size_t at = 0, n; at < len; at += n) {
        uint32_t cp = pi_utf8_decode(text + at, len - at, &n);
        c.off[c.n] = at;
        c.cp[c.n] = cp;
        c.fl[c.n] = (uint16_t)pi_unicode_flags(cp);
        c.n++;
    }
    c.off[c.n] = len;
    splitter s = {&c, fn, ctx};
    int rc = split(&s, stages_of(kind), 0, c.n);
    free(c.cp), free(c.fl), free(c.off);
    return rc;
}
