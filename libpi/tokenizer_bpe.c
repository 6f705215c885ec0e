/*
 * tokenizer_bpe: byte-level BPE over the words of a pre-tokenizer.
 *
 * Works on token ids, not strings: a word starts as one symbol per byte (the
 * token of that byte's GPT-2 code point), and merges are looked up by
 * (left id, right id) in the table tokenizer.c built, which gives the rank
 * and the merged token, so the hot loop never builds a string.  The
 * adjacent pair of lowest rank merges first (ties: leftmost), with a binary
 * heap per word whose stale entries are recognised by their byte length:
 * the algorithm of llama.cpp's llm_tokenizer_bpe_session and of Hugging
 * Face's BPE.  Llama 3 vocabularies (ignore_merges) take a word that is a
 * token as it is.
 */
#include <stdlib.h>

#include "tokenizer_impl.h"

static const pi_tk_merge *merge_find(const pi_tokenizer *t, int32_t l, int32_t r)
{
    uint64_t key = (uint64_t)(uint32_t)l << 32 | (uint32_t)r;
    for (size_t i = pi_tk_merge_hash(key) & t->merge_mask;; i = (i + 1) & t->merge_mask) {
        if (t->merges[i].key == key)
            return &t->merges[i];
        if (t->merges[i].key == UINT64_MAX)
            return NULL;
    }
}

typedef struct bpe_sym {
    int32_t id; /* -1: a byte without a token */
    int32_t prev, next;
    uint32_t len; /* 0: merged away */
} bpe_sym;

typedef struct bpe_pair {
    int32_t rank, left, right, result;
    uint32_t size;
} bpe_pair;

typedef struct bpe {
    const pi_tokenizer *t;
    pi_tk_ids *out;
    pi_err *err;
    bpe_sym *sym; /* reused from word to word */
    size_t cap_sym;
    bpe_pair *heap;
    size_t n_heap, cap_heap;
    char *scratch; /* a word in GPT-2 code points (Llama 3's whole-word lookup) */
} bpe;

static bool pair_before(const bpe_pair *a, const bpe_pair *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static int pair_push(bpe *w, int32_t l, int32_t r)
{
    if (l < 0 || r < 0 || w->sym[l].id < 0 || w->sym[r].id < 0)
        return 0;
    const pi_tk_merge *m = merge_find(w->t, w->sym[l].id, w->sym[r].id);
    if (!m)
        return 0;
    if (w->n_heap == w->cap_heap) {
        size_t cap = w->cap_heap ? 2 * w->cap_heap : 64;
        bpe_pair *h = realloc(w->heap, cap * sizeof *h);
        if (!h)
            return pi_err_set(w->err, "tokenizer: out of memory");
        w->heap = h, w->cap_heap = cap;
    }
    bpe_pair p = {m->rank, l, r, m->result, w->sym[l].len + w->sym[r].len};
    size_t i = w->n_heap++;
    while (i > 0 && pair_before(&p, &w->heap[(i - 1) / 2])) {
        w->heap[i] = w->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    w->heap[i] = p;
    return 0;
}

static bpe_pair pair_pop(bpe *w)
{
    bpe_pair top = w->heap[0], last = w->heap[--w->n_heap];
    size_t i = 0, n = w->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && pair_before(&w->heap[c + 1], &w->heap[c]))
            c++;
        if (!pair_before(&w->heap[c], &last))
            break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n)
        w->heap[i] = last;
    return top;
}

/* Tokenizes one pre-tokenizer word (a pi_word_fn). */
static int bpe_word(void *ctx, const char *word, size_t n)
{
    bpe *w = ctx;
    const pi_tokenizer *t = w->t;
    if (t->ignore_merges) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            k += pi_utf8_encode(t->byte_cp[(unsigned char)word[i]], w->scratch + k);
        int32_t id = pi_tk_find(t, w->scratch, k);
        if (id >= 0)
            return pi_tk_push(w->out, id, w->err);
    }
    if (n > w->cap_sym) {
        bpe_sym *s = realloc(w->sym, n * sizeof *s);
        if (!s)
            return pi_err_set(w->err, "tokenizer: out of memory");
        w->sym = s, w->cap_sym = n;
    }
    for (size_t i = 0; i < n; i++)
        w->sym[i] = (bpe_sym){t->byte_tok[(unsigned char)word[i]], (int32_t)i - 1,
                              i + 1 < n ? (int32_t)i + 1 : -1, 1};
    w->n_heap = 0;
    for (size_t i = 1; i < n; i++)
        if (pair_push(w, (int32_t)i - 1, (int32_t)i))
            return -1;
    while (w->n_heap) {
        bpe_pair p = pair_pop(w);
        bpe_sym *l = &w->sym[p.left], *r = &w->sym[p.right];
        if (!l->len || !r->len || l->len + r->len != p.size)
            continue; /* stale: one side was merged since */
        l->id = p.result;
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0)
            w->sym[r->next].prev = p.left;
        if (pair_push(w, l->prev, p.left) || pair_push(w, p.left, l->next))
            return -1;
    }
    /* A byte without a token has nothing to stand for it; like llama.cpp,
     * it is dropped. */
    for (int32_t i = 0; n && i != -1; i = w->sym[i].next)
        if (w->sym[i].id >= 0 && pi_tk_push(w->out, w->sym[i].id, w->err))
            return -1;
    return 0;
}

int pi_tk_bpe_encode(const pi_tokenizer *t, const char *text, size_t len, pi_tk_ids *out,
                     pi_err *err)
{
    bpe w = {.t = t, .out = out, .err = err};
    if (t->ignore_merges && !(w.scratch = malloc(2 * len + 1))) /* GPT-2 code points: <= 2 bytes */
        return pi_err_set(err, "tokenizer: out of memory");
    int rc = pi_pretokenize(t->pre, text, len, bpe_word, &w, err);
    free(w.sym), free(w.heap), free(w.scratch);
    return rc ? -1 : 0;
}
