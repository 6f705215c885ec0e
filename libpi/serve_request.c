/* serve_request: OpenAI request bodies into pi_serve_request (see serve_request.h). */
#include "serve_request.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unicode.h"

int pi_serve_error_set(pi_serve_error *e, int status, const char *param, const char *code,
                       const char *fmt, ...)
{
    if (!e)
        return -1;
    e->status = status;
    e->type = status >= 500 ? "server_error" : "invalid_request_error";
    e->code = code;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    /* Messages quote what the client sent (a model name) and may be cut in
     * the middle of a character: keep them valid UTF-8 for the JSON. */
    for (size_t i = 0, len = strlen(e->message), n; i < len; i += n)
        if (pi_utf8_decode(e->message + i, len - i, &n) == PI_UNICODE_REPLACEMENT && n == 1)
            e->message[i] = '?';
    return -1;
}

static int bad_type(pi_serve_error *e, const char *param, const char *want)
{
    return pi_serve_error_set(e, 400, param, "invalid_type", "'%s' must be %s", param, want);
}

/* An optional member: NULL when absent or null. */
static json_t *member(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_null(v) ? NULL : v;
}

static int opt_number(const json_t *o, const char *key, double lo, double hi, float *out,
                      pi_serve_error *e)
{
    json_t *v = member(o, key);
    if (!v)
        return 0;
    if (!json_is_number(v))
        return bad_type(e, key, "a number");
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi))
        return pi_serve_error_set(e, 400, key, "invalid_value", "'%s' must be from %g to %g, "
                                  "not %g", key, lo, hi, x);
    *out = (float)x;
    return 0;
}

static int opt_int(const json_t *o, const char *key, json_int_t lo, json_int_t hi, int *out,
                   pi_serve_error *e)
{
    json_t *v = member(o, key);
    if (!v)
        return 0;
    if (!json_is_integer(v))
        return bad_type(e, key, "an integer");
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return pi_serve_error_set(e, 400, key, "invalid_value", "'%s' must be from %lld to "
                                  "%lld, not %lld", key, (long long)lo, (long long)hi,
                                  (long long)x);
    *out = (int)x;
    return 0;
}

static int opt_bool(const json_t *o, const char *key, bool *out, pi_serve_error *e)
{
    json_t *v = member(o, key);
    if (!v)
        return 0;
    if (!json_is_boolean(v))
        return bad_type(e, key, "a boolean");
    *out = json_is_true(v);
    return 0;
}

static char *dup_string(const json_t *v, pi_serve_error *e)
{
    char *s = strdup(json_string_value(v));
    if (!s)
        pi_serve_error_set(e, 500, NULL, NULL, "out of memory");
    return s;
}

/* A message's content: a string, or an array of {"type": "text", "text":
 * ...} parts (joined by newlines); null is "" (an assistant turn that
 * only called tools). */
static char *content_text(const json_t *c, const char *param, pi_serve_error *e)
{
    if (!c || json_is_null(c))
        return strdup("");
    if (json_is_string(c))
        return dup_string(c, e);
    if (!json_is_array(c)) {
        bad_type(e, param, "a string or an array of text parts");
        return NULL;
    }
    size_t len = 0, i;
    json_t *part;
    json_array_foreach(c, i, part) {
        json_t *type = json_object_get(part, "type"), *text = json_object_get(part, "text");
        if (!json_is_string(type) || strcmp(json_string_value(type), "text") ||
            !json_is_string(text)) {
            pi_serve_error_set(e, 400, param, "invalid_value", "'%s': only parts of type "
                               "'text' with a string 'text' are supported", param);
            return NULL;
        }
        len += json_string_length(text) + 1;
    }
    char *s = malloc(len + 1), *p = s;
    if (!s) {
        pi_serve_error_set(e, 500, NULL, NULL, "out of memory");
        return NULL;
    }
    json_array_foreach(c, i, part) {
        json_t *text = json_object_get(part, "text");
        if (i)
            *p++ = '\n';
        memcpy(p, json_string_value(text), json_string_length(text));
        p += json_string_length(text);
    }
    *p = 0;
    return s;
}

static int parse_messages(const json_t *body, pi_serve_request *r, pi_serve_error *e)
{
    json_t *msgs = member(body, "messages");
    if (!msgs)
        return pi_serve_error_set(e, 400, "messages", "missing_required_parameter",
                                  "you must provide 'messages'");
    if (!json_is_array(msgs) || json_array_size(msgs) == 0)
        return bad_type(e, "messages", "a non-empty array");
    size_t n = json_array_size(msgs);
    if (!(r->messages = calloc(n, sizeof *r->messages)))
        return pi_serve_error_set(e, 500, NULL, NULL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(msgs, i), *role = json_object_get(m, "role");
        char param[64];
        snprintf(param, sizeof param, "messages[%zu]", i);
        if (!json_is_object(m))
            return bad_type(e, param, "an object");
        snprintf(param, sizeof param, "messages[%zu].role", i);
        if (!json_is_string(role))
            return bad_type(e, param, "a string");
        const char *rs = json_string_value(role);
        /* "developer" is OpenAI's newer name for the system role */
        if (!strcmp(rs, "developer"))
            rs = "system";
        if (strcmp(rs, "system") && strcmp(rs, "user") && strcmp(rs, "assistant"))
            return pi_serve_error_set(e, 400, param, "invalid_value", "'%s' must be 'system', "
                                      "'user' or 'assistant'", param);
        snprintf(param, sizeof param, "messages[%zu].content", i);
        r->n_messages = i + 1;
        if (!(r->messages[i].role = strdup(rs)))
            return pi_serve_error_set(e, 500, NULL, NULL, "out of memory");
        if (!(r->messages[i].content = content_text(json_object_get(m, "content"), param, e)))
            return -1;
    }
    return 0;
}

/* prompt: a string, or an array holding one string. */
static int parse_prompt(const json_t *body, pi_serve_request *r, pi_serve_error *e)
{
    json_t *p = member(body, "prompt");
    if (!p)
        return pi_serve_error_set(e, 400, "prompt", "missing_required_parameter",
                                  "you must provide 'prompt'");
    if (json_is_array(p) && json_array_size(p) == 1 && json_is_string(json_array_get(p, 0)))
        p = json_array_get(p, 0);
    if (!json_is_string(p))
        return bad_type(e, "prompt", "a string (or an array of one string)");
    return (r->prompt = dup_string(p, e)) ? 0 : -1;
}

/* One stop sequence; empty ones are dropped (they would stop before the
 * first token). */
static int add_stop(const json_t *v, pi_serve_request *r, pi_serve_error *e)
{
    if (!json_is_string(v))
        return bad_type(e, "stop", "a string or an array of strings");
    if (json_string_length(v) > PI_SERVE_MAX_STOP_LEN)
        return pi_serve_error_set(e, 400, "stop", "invalid_value", "a stop sequence is at "
                                  "most %d bytes", PI_SERVE_MAX_STOP_LEN);
    if (json_string_length(v) == 0)
        return 0;
    if (!(r->stop[r->n_stop] = dup_string(v, e)))
        return -1;
    r->n_stop++;
    return 0;
}

/* stop: a string or an array of at most four strings. */
static int parse_stop(const json_t *body, pi_serve_request *r, pi_serve_error *e)
{
    json_t *s = member(body, "stop");
    if (!s)
        return 0;
    if (!json_is_array(s))
        return add_stop(s, r, e);
    if (json_array_size(s) > PI_SERVE_MAX_STOP)
        return pi_serve_error_set(e, 400, "stop", "invalid_value", "'stop' holds at most %d "
                                  "sequences", PI_SERVE_MAX_STOP);
    size_t i;
    json_t *v;
    json_array_foreach(s, i, v)
        if (add_stop(v, r, e))
            return -1;
    return 0;
}

/* Options pi does not implement and may not silently ignore. */
static int refuse_unsupported(const json_t *body, pi_serve_error *e)
{
    int n = 1;
    if (opt_int(body, "n", 1, 1 << 20, &n, e))
        return -1;
    if (n != 1)
        return pi_serve_error_set(e, 400, "n", "unsupported_value", "only n = 1 is supported");
    json_t *v = member(body, "logprobs");
    if (v && !json_is_false(v))
        return pi_serve_error_set(e, 400, "logprobs", "unsupported_parameter",
                                  "'logprobs' is not supported");
    if ((v = member(body, "echo")) && !json_is_false(v))
        return pi_serve_error_set(e, 400, "echo", "unsupported_parameter",
                                  "'echo' is not supported");
    if ((v = member(body, "tools")) && !(json_is_array(v) && json_array_size(v) == 0))
        return pi_serve_error_set(e, 400, "tools", "unsupported_parameter",
                                  "'tools' (function calling) is not supported");
    if ((v = member(body, "response_format"))) {
        json_t *type = json_object_get(v, "type");
        if (!json_is_string(type) || strcmp(json_string_value(type), "text"))
            return pi_serve_error_set(e, 400, "response_format", "unsupported_value",
                                      "only a response_format of type 'text' is supported");
    }
    return 0;
}

static int parse_object(pi_serve_kind kind, const json_t *body, pi_serve_request *r,
                        pi_serve_error *e)
{
    json_t *v = member(body, "model");
    if (v && !json_is_string(v))
        return bad_type(e, "model", "a string");
    if (v && !(r->model = dup_string(v, e)))
        return -1;
    if (kind == PI_SERVE_CHAT ? parse_messages(body, r, e) : parse_prompt(body, r, e))
        return -1;
    int max_tokens = 0;
    if (opt_int(body, "max_tokens", 1, 1 << 30, &max_tokens, e) ||
        opt_int(body, "max_completion_tokens", 1, 1 << 30, &r->max_tokens, e))
        return -1;
    if (max_tokens)
        r->max_tokens = max_tokens;
    if (opt_number(body, "temperature", 0, 2, &r->temperature, e) ||
        opt_number(body, "top_p", 0, 1, &r->top_p, e) ||
        opt_number(body, "min_p", 0, 1, &r->min_p, e) ||
        opt_int(body, "top_k", 0, 1 << 30, &r->top_k, e))
        return -1;
    if ((v = member(body, "seed"))) {
        if (!json_is_integer(v))
            return bad_type(e, "seed", "an integer");
        r->has_seed = true;
        r->seed = (uint64_t)json_integer_value(v);
    }
    if (parse_stop(body, r, e) || opt_bool(body, "stream", &r->stream, e))
        return -1;
    if ((v = member(body, "stream_options"))) {
        if (!json_is_object(v))
            return bad_type(e, "stream_options", "an object");
        if (opt_bool(v, "include_usage", &r->include_usage, e))
            return -1;
    }
    return refuse_unsupported(body, e);
}

int pi_serve_request_parse(pi_serve_kind kind, const char *body, size_t len,
                           pi_serve_request *r, pi_serve_error *e)
{
    *r = (pi_serve_request){ .kind = kind, .temperature = -1, .top_p = -1, .min_p = -1,
                             .top_k = -1 };
    json_error_t jerr;
    json_t *root = json_loadb(body, len, 0, &jerr);
    if (!root)
        return pi_serve_error_set(e, 400, NULL, "invalid_json", "the body is not valid JSON: "
                                  "%s (line %d, column %d)", jerr.text, jerr.line, jerr.column);
    int rc = json_is_object(root)
                 ? parse_object(kind, root, r, e)
                 : pi_serve_error_set(e, 400, NULL, "invalid_json",
                                      "the body must be a JSON object");
    json_decref(root);
    return rc;
}

void pi_serve_request_free(pi_serve_request *r)
{
    if (!r)
        return;
    free(r->model);
    for (size_t i = 0; i < r->n_messages; i++) {
        free(r->messages[i].role);
        free(r->messages[i].content);
    }
    free(r->messages);
    free(r->prompt);
    for (int i = 0; i < r->n_stop; i++)
        free(r->stop[i]);
    *r = (pi_serve_request){ 0 };
}
