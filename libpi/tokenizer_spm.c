/*
 * tokenizer_spm: SentencePiece BPE as llama.cpp runs it for "llama"
 * vocabularies.
 *
 * Spaces become U+2581 ("▁"), with one prefixed when the caller asks
 * (add_space_prefix at the start of the text and after a special token).
 * The text starts as one symbol per UTF-8 character (an invalid byte is a
 * character of its own; llama.cpp would take the length its lead byte
 * promises, swallowing what follows); repeatedly the adjacent
 * pair whose concatenation is the vocabulary entry with the highest score is
 * merged (ties: leftmost).  A final symbol that is no token is written as
 * its bytes' <0xNN> tokens (byte fallback), or UNK when those are missing.
 * Only normal and user-defined entries take part: control, unknown, unused
 * and byte tokens are never produced by merging, as in SentencePiece.
 */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h"

typedef struct spm_sym {
    uint32_t start, len; /* bytes of the escaped text; len 0: merged away */
    int32_t prev, next;
} spm_sym;

typedef struct spm_pair {
    float score;
    int32_t left, right;
    uint32_t size; /* bytes of the pair when queued, to spot stale entries */
} spm_pair;

typedef struct spm {
    const pi_tokenizer *t;
    const char *s;
    spm_sym *sym;
    spm_pair *heap;
    size_t n_heap, cap_heap;
} spm;

static bool usable(const pi_tokenizer *t, int32_t id)
{
    int ty = t->type[id];
    return ty != PI_TOKEN_CONTROL && ty != PI_TOKEN_UNKNOWN && ty != PI_TOKEN_BYTE &&
           ty != PI_TOKEN_UNUSED;
}

static bool before(const spm_pair *a, const spm_pair *b)
{
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static int heap_push(spm *m, spm_pair p)
{
    if (m->n_heap == m->cap_heap) {
        size_t cap = m->cap_heap ? 2 * m->cap_heap : 64;
        spm_pair *h = realloc(m->heap, cap * sizeof *h);
        if (!h)
            return -1;
        m->heap = h, m->cap_heap = cap;
    }
    size_t i = m->n_heap++;
    while (i > 0 && before(&p, &m->heap[(i - 1) / 2])) {
        m->heap[i] = m->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    m->heap[i] = p;
    return 0;
}

static spm_pair heap_pop(spm *m)
{
    spm_pair top = m->heap[0], last = m->heap[--m->n_heap];
    size_t i = 0, n = m->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && before(&m->heap[c + 1], &m->heap[c]))
            c++;
        if (!before(&m->heap[c], &last))
            break;
        m->heap[i] = m->heap[c];
        i = c;
    }
    if (n)
        m->heap[i] = last;
    return top;
}

static int try_pair(spm *m, int32_t l, int32_t r)
{
    if (l < 0 || r < 0)
        return 0;
    uint32_t size = m->sym[l].len + m->sym[r].len;
    int32_t id = pi_tk_find(m->t, m->s + m->sym[l].start, size);
    if (id < 0 || !usable(m->t, id))
        return 0;
    return heap_push(m, (spm_pair){m->t->score[id], l, r, size});
}

static int emit(const spm *m, const spm_sym *y, pi_tk_ids *out, pi_err *err)
{
    const pi_tokenizer *t = m->t;
    int32_t id = pi_tk_find(t, m->s + y->start, y->len);
    if (id >= 0 && usable(t, id))
        return pi_tk_push(out, id, err);
    for (uint32_t k = 0; k < y->len; k++) {
        int32_t b = t->byte_tok[(unsigned char)m->s[y->start + k]];
        if (b < 0)
            b = t->unk;
        if (b >= 0 && pi_tk_push(out, b, err))
            return -1;
    }
    return 0;
}

static int merge_all(spm *m, size_t n_sym, pi_err *err)
{
    for (size_t i = 1; i < n_sym; i++)
        if (try_pair(m, (int32_t)i - 1, (int32_t)i))
            return pi_err_set(err, "tokenizer: out of memory");
    while (m->n_heap) {
        spm_pair p = heap_pop(m);
        spm_sym *l = &m->sym[p.left], *r = &m->sym[p.right];
        if (!l->len || !r->len || l->len + r->len != p.size)
            continue; /* one side was merged since */
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0)
            m->sym[r->next].prev = p.left;
        if (try_pair(m, l->prev, p.left) || try_pair(m, p.left, l->next))
            return pi_err_set(err, "tokenizer: out of memory");
    }
    return 0;
}

int pi_tk_spm_encode(const pi_tokenizer *t, const char *text, size_t len, bool space_prefix,
                     pi_tk_ids *out, pi_err *err)
{
    if (len > (UINT32_MAX - 3) / 3)
        return pi_err_set(err, "tokenizer: text of %zu bytes is too long", len);
    size_t cap = 3 * (len + 1), n = 0;
    char *s = malloc(cap);
    spm m = {.t = t, .s = s};
    if (!s)
        return pi_err_set(err, "tokenizer: out of memory");
    for (size_t i = 0; i < len + space_prefix; i++) {
        char ch = space_prefix ? (i ? text[i - 1] : ' ') : text[i];
        if (ch == ' ')
            memcpy(s + n, "\xE2\x96\x81", 3), n += 3;
        else
            s[n++] = ch;
    }
    m.sym = n ? malloc(n * sizeof *m.sym) : NULL;
    if (!m.sym) {
        free(s);
        return n ? pi_err_set(err, "tokenizer: out of memory") : 0;
    }
    size_t n_sym = 0;
    for (size_t at = 0; at < n; n_sym++) {
        size_t cl;
        pi_utf8_decode(s + at, n - at, &cl);
        m.sym[n_sym] = (spm_sym){(uint32_t)at, (uint32_t)cl, (int32_t)n_sym - 1, (int32_t)n_sym + 1};
        at += cl;
    }
    m.sym[n_sym - 1].next = -1;
    int rc = merge_all(&m, n_sym, err);
    for (int32_t i = 0; rc == 0 && i != -1; i = m.sym[i].next)
        rc = emit(&m, &m.sym[i], out, err);
    free(m.heap);
    free(m.sym);
    free(s);
    return rc;
}
