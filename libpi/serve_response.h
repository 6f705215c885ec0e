/*
 * serve_response: the JSON bodies pi-serve answers with, in the shapes of
 * OpenAI's API (so that its client libraries parse them): chat and text
 * completions, their streamed chunks, the model list, and error objects.
 *
 * Every function returns a malloc'ed NUL-terminated compact JSON text (free
 * it with free()), or NULL when out of memory.  Text passed in must be
 * valid UTF-8 (serve.h publishes only such text).
 */
#ifndef PI_SERVE_RESPONSE_H
#define PI_SERVE_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>

#include "serve_request.h"

/* What every object of one response repeats. */
typedef struct pi_serve_head {
    pi_serve_kind kind;
    const char *id;    /* "chatcmpl-..." or "cmpl-..." */
    long long created; /* Unix seconds */
    const char *model;
} pi_serve_head;

/* {"error": {"message", "type", "param", "code"}} */
char *pi_serve_error_json(const pi_serve_error *e);

/* A whole completion: one choice with the text (chat: as the assistant's
 * message), its finish_reason ("stop", "length") and the usage counts. */
char *pi_serve_completion_json(const pi_serve_head *h, const char *text, size_t len,
                               const char *finish, int prompt_tokens, int completion_tokens);

/* One streamed chunk: text[0..len) as the delta (text NULL: none), the
 * assistant role in the delta when role is set (a chat stream's first
 * chunk), and finish (NULL: null). */
char *pi_serve_chunk_json(const pi_serve_head *h, const char *text, size_t len, bool role,
                          const char *finish);
/* The closing chunk of stream_options.include_usage: no choices, the usage. */
char *pi_serve_usage_chunk_json(const pi_serve_head *h, int prompt_tokens,
                                int completion_tokens);

/* GET /v1/models (list) or /v1/models/ID (one model object). */
char *pi_serve_models_json(const char *model, long long created, bool list);

#endif
