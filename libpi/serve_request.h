/*
 * serve_request: the body of an OpenAI chat or text completion request,
 * parsed (jansson) and checked into a plain struct, and the OpenAI-style
 * error that describes why a request was refused.
 *
 * This is the only code that reads bytes a client sent as JSON, so it is
 * what fuzz/fuzz_serve_request.c exercises.  It checks shapes and ranges
 * (types, temperature in [0, 2], at most four stop strings...) but knows
 * nothing of the model: the model name, the chat template and whether the
 * prompt fits the context are checked by serve.c.
 *
 * Fields a client may send that pi does not implement are ignored when they
 * cannot change the answer (user, presence_penalty, ...) and refused when
 * silently ignoring them would give a wrong one (n > 1, logprobs, echo,
 * tools, a response_format other than text).  A JSON null counts as absent,
 * as OpenAI's API does.
 */
#ifndef PI_SERVE_REQUEST_H
#define PI_SERVE_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PI_SERVE_MAX_STOP 4        /* OpenAI's limit on stop sequences */
#define PI_SERVE_MAX_STOP_LEN 256  /* bytes per stop sequence */

typedef enum pi_serve_kind { PI_SERVE_CHAT, PI_SERVE_COMPLETION } pi_serve_kind;

/* An OpenAI error object: {"error": {"message", "type", "param", "code"}}
 * with the HTTP status it goes with.  type and code are static strings
 * (code NULL: null); param is "" for null. */
typedef struct pi_serve_error {
    int status;
    const char *type, *code;
    char param[64];
    char message[448];
} pi_serve_error;

/* Fills e; type is "invalid_request_error" below 500, else "server_error".
 * Returns -1. */
int pi_serve_error_set(pi_serve_error *e, int status, const char *param, const char *code,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));

typedef struct pi_serve_msg {
    char *role, *content; /* role: system, user or assistant */
} pi_serve_msg;

/* A checked request.  Every string is owned (NUL-terminated, valid UTF-8,
 * without NUL bytes, as jansson guarantees). */
typedef struct pi_serve_request {
    pi_serve_kind kind;
    char *model;            /* NULL: absent */
    pi_serve_msg *messages; /* chat: n_messages >= 1 */
    size_t n_messages;
    char *prompt;           /* completion */
    int max_tokens;         /* 0: absent (max_tokens or max_completion_tokens) */
    float temperature;      /* [0, 2]; < 0: absent */
    float top_p;            /* [0, 1]; < 0: absent */
    float min_p;            /* [0, 1]; < 0: absent (llama.cpp's extension) */
    int top_k;              /* >= 0; < 0: absent (llama.cpp's extension) */
    bool has_seed;
    uint64_t seed;
    char *stop[PI_SERVE_MAX_STOP]; /* non-empty strings */
    int n_stop;
    bool stream, include_usage; /* include_usage: stream_options.include_usage */
} pi_serve_request;

/* Parses body[0..len) as a request of the given kind into *r (which the
 * caller frees with pi_serve_request_free whatever the result).  0, or -1
 * with e set to a 400 naming the parameter at fault. */
int pi_serve_request_parse(pi_serve_kind kind, const char *body, size_t len,
                           pi_serve_request *r, pi_serve_error *e);
void pi_serve_request_free(pi_serve_request *r);

#endif
