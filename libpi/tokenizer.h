/*
 * tokenizer: text <-> token ids, from the tokenizer.* metadata of a GGUF.
 *
 * Two families, chosen by tokenizer.ggml.model:
 *   "gpt2"   byte-level BPE (GPT-2, SmolLM2, Qwen2.5, Llama 3, DeepSeek): the
 *            text is cut into words by the pre-tokenizer that
 *            tokenizer.ggml.pre names (see unicode.h), each word's bytes are
 *            merged by tokenizer.ggml.merges in rank order;
 *   "llama"  SentencePiece BPE (Llama 2, TinyLlama, Mistral): spaces become
 *            U+2581, a space is prefixed (add_space_prefix), pieces merge by
 *            tokenizer.ggml.scores, unknown bytes fall back to <0xNN> tokens.
 * Both give the ids llama.cpp and Hugging Face tokenizers give.
 *
 * Tokens of type CONTROL (3) and UNKNOWN (2) are recognised in the input as
 * whole tokens only when parse_special is set; USER_DEFINED (4) tokens are
 * always recognised (they are ordinary vocabulary to the model, which is
 * what Hugging Face and llama.cpp do; DeepSeek's vocabulary relies on it).
 * Matching is leftmost-longest.
 *
 * The pi_tokenizer copies what it needs: the pi_gguf may be closed after
 * pi_tokenizer_load().  A loaded tokenizer is read-only and may be used from
 * several threads at once.
 */
#ifndef PI_TOKENIZER_H
#define PI_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "gguf.h"

typedef struct pi_tokenizer pi_tokenizer;

/* Token types, as in tokenizer.ggml.token_type. */
enum {
    PI_TOKEN_UNDEFINED = 0,
    PI_TOKEN_NORMAL = 1,
    PI_TOKEN_UNKNOWN = 2,
    PI_TOKEN_CONTROL = 3,
    PI_TOKEN_USER_DEFINED = 4,
    PI_TOKEN_UNUSED = 5,
    PI_TOKEN_BYTE = 6,
};

/* Reads the vocabulary of g (a whole model or a vocab-only file).  NULL on
 * failure with err naming the file and the problem (missing tokens, a
 * merge naming an unknown token, an unsupported model or pre-tokenizer). */
pi_tokenizer *pi_tokenizer_load(const pi_gguf *g, pi_err *err);
void pi_tokenizer_free(pi_tokenizer *t);

/* Tokenizes text[0..len) into a malloc'ed array *out of *n_out ids (the
 * caller frees it; NULL when *n_out is 0).  add_bos prepends the BOS token
 * (pass pi_tokenizer_add_bos(t) for the model's default).  0, or -1 with err
 * set (out of memory, add_bos without a BOS token). */
int pi_tokenize(const pi_tokenizer *t, const char *text, size_t len, bool add_bos,
                bool parse_special, int32_t **out, size_t *n_out, pi_err *err);

/* The bytes a token stands for, for streaming output: byte-level BPE tokens
 * decoded from the GPT-2 byte<->unicode mapping, SentencePiece U+2581 as a
 * space and <0xNN> as the byte, control and user-defined tokens as their
 * text.  Not NUL-terminated; may be a partial UTF-8 sequence that the next
 * tokens complete.  Unused tokens and ids out of range give length 0. */
const char *pi_token_piece(const pi_tokenizer *t, int32_t id, size_t *len);

/* Writes the text of ids[0..n) to buf like snprintf: at most cap bytes
 * including a terminating NUL (when cap > 0), and returns the full length.
 * CONTROL and UNKNOWN tokens are written only when `special` is set.  For
 * SentencePiece vocabularies the space that tokenizing prefixed (at the
 * start and after each special token) is removed again, so that
 * detokenize(tokenize(s)) == s for every vocabulary. */
size_t pi_detokenize(const pi_tokenizer *t, const int32_t *ids, size_t n, bool special,
                     char *buf, size_t cap);

int32_t pi_tokenizer_n_vocab(const pi_tokenizer *t);
int32_t pi_tokenizer_bos(const pi_tokenizer *t); /* -1 if none */
int32_t pi_tokenizer_eos(const pi_tokenizer *t); /* -1 if none */
bool pi_tokenizer_add_bos(const pi_tokenizer *t); /* the model's default */
/* End of generation: EOS, EOT, EOM and the end tokens llama.cpp recognises by
 * text (<|im_end|>, <|endoftext|>, <|eot_id|>, <|end|>, <end_of_turn>, ...). */
bool pi_token_is_eog(const pi_tokenizer *t, int32_t id);
int pi_token_type(const pi_tokenizer *t, int32_t id); /* PI_TOKEN_*; -1 if out of range */
/* The token's text as stored in the vocabulary (e.g. "Ġworld"). */
const char *pi_token_text(const pi_tokenizer *t, int32_t id, size_t *len);
/* Exact lookup of a vocabulary entry by its stored text; -1 if absent. */
int32_t pi_token_lookup(const pi_tokenizer *t, const char *text, size_t len);

/* Chat formatting.  Only ChatML is supported: tokenizer.chat_template must
 * contain "<|im_start|>".  Each message becomes
 * "<|im_start|>ROLE\nCONTENT<|im_end|>\n"; when the template carries a
 * default system prompt (SmolLM2's "You are a helpful AI assistant named
 * SmolLM, trained by Hugging Face", Qwen2.5's "You are Qwen, ...") it is
 * inserted as a first system message when the first message is not one, as
 * the template does; add_generation_prompt appends
 * "<|im_start|>assistant\n".  The result is a malloc'ed NUL-terminated
 * string, to be tokenized with parse_special. */
typedef struct pi_chat_msg {
    const char *role;
    const char *content;
} pi_chat_msg;

bool pi_tokenizer_has_chat(const pi_tokenizer *t);
int pi_chat_format(const pi_tokenizer *t, const pi_chat_msg *msgs, size_t n,
                   bool add_generation_prompt, char **out, size_t *len, pi_err *err);

#endif
