/*
 * tokenizer_impl: what tokenizer.c (loading, the API), tokenizer_bpe.c
 * (byte-level BPE) and tokenizer_spm.c (SentencePiece) share.  Internal to
 * libpi.
 */
#ifndef PI_TOKENIZER_IMPL_H
#define PI_TOKENIZER_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "tokenizer.h"
#include "unicode.h"

/* One merge rule: (left id, right id) -> rank and the merged token. */
typedef struct pi_tk_merge {
    uint64_t key; /* left << 32 | right; UINT64_MAX: empty slot */
    int32_t rank;
    int32_t result;
} pi_tk_merge;

/* A byte trie of the special tokens, for leftmost-longest matching. */
typedef struct pi_tk_trie {
    int32_t child, sibling; /* node indices, -1: none */
    int32_t id;             /* token ending here, -1: none */
    uint8_t byte;
} pi_tk_trie;

struct pi_tokenizer {
    bool spm;              /* SentencePiece ("llama"), else byte-level BPE ("gpt2") */
    pi_pretok pre;
    bool ignore_merges;    /* Llama 3: a word that is a token is not merged */
    bool add_bos;
    bool add_space_prefix; /* SentencePiece */
    int32_t n_vocab;
    int32_t bos, eos, unk, eot, eom; /* -1: none */

    char *text;        /* every token's stored text, back to back */
    size_t *text_off;  /* n_vocab + 1 offsets into text */
    char *piece;       /* every token's bytes (pi_token_piece) */
    size_t *piece_off; /* n_vocab + 1 */
    uint8_t *type;     /* PI_TOKEN_* */
    uint8_t *eog;
    float *score;      /* SentencePiece scores; NULL for BPE */

    int32_t *map;      /* open addressing: text -> id, -1: empty slot */
    size_t map_mask;
    pi_tk_merge *merges;
    size_t merge_mask;

    int32_t byte_tok[256]; /* the token of each single byte, -1: none */
    uint32_t byte_cp[256]; /* GPT-2's byte -> code point mapping */

    pi_tk_trie *trie;
    size_t n_trie;
    int32_t trie_root[256];
    size_t n_user_defined;

    bool chatml;
    char *chat_system; /* the template's default system prompt, or NULL */
};

typedef struct pi_tk_ids {
    int32_t *v;
    size_t n, cap;
} pi_tk_ids;

static inline uint64_t pi_tk_merge_hash(uint64_t key)
{
    key *= 0x9E3779B97F4A7C15u;
    return key ^ (key >> 29);
}

int pi_tk_push(pi_tk_ids *ids, int32_t id, pi_err *err);
int32_t pi_tk_find(const pi_tokenizer *t, const char *s, size_t n);
/* Encode one run of text (no special tokens in it), appending to out. */
int pi_tk_bpe_encode(const pi_tokenizer *t, const char *text, size_t len, pi_tk_ids *out,
                     pi_err *err);
int pi_tk_spm_encode(const pi_tokenizer *t, const char *text, size_t len, bool space_prefix,
                     pi_tk_ids *out, pi_err *err);

#endif
