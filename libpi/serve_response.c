/* serve_response: OpenAI-shaped JSON bodies (see serve_response.h). */
#include "serve_response.h"

#include <jansson.h>

/* Serialises and frees o (NULL in, NULL out: a failed json_* call). */
static char *dump(json_t *o)
{
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

/* A JSON string, or null for NULL. */
static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

char *pi_serve_error_json(const pi_serve_error *e)
{
    return dump(json_pack("{s:{s:s,s:s,s:o,s:o}}", "error", "message", e->message, "type",
                          e->type ? e->type : "invalid_request_error", "param",
                          str_or_null(e->param[0] ? e->param : NULL), "code",
                          str_or_null(e->code)));
}

static json_t *usage(int prompt_tokens, int completion_tokens)
{
    return json_pack("{s:i,s:i,s:i}", "prompt_tokens", prompt_tokens, "completion_tokens",
                     completion_tokens, "total_tokens", prompt_tokens + completion_tokens);
}

/* The fields every object of a response starts with. */
static json_t *object(const pi_serve_head *h, const char *type)
{
    return json_pack("{s:s,s:s,s:I,s:s}", "id", h->id, "object", type, "created",
                     (json_int_t)h->created, "model", h->model);
}

/* Adds key: value to o, taking value; o is freed and NULL returned when
 * either is NULL or the addition fails, so calls chain. */
static json_t *with(json_t *o, const char *key, json_t *value)
{
    if (!o || !value || json_object_set_new(o, key, value)) {
        json_decref(o);
        json_decref(value);
        return NULL;
    }
    return o;
}

char *pi_serve_completion_json(const pi_serve_head *h, const char *text, size_t len,
                               const char *finish, int prompt_tokens, int completion_tokens)
{
    bool chat = h->kind == PI_SERVE_CHAT;
    json_t *choice = json_pack("{s:i,s:n,s:o}", "index", 0, "logprobs", "finish_reason",
                               str_or_null(finish));
    json_t *content = json_stringn(text ? text : "", len);
    if (chat)
        choice = with(choice, "message",
                      with(json_pack("{s:s}", "role", "assistant"), "content", content));
    else
        choice = with(choice, "text", content);
    json_t *o = object(h, chat ? "chat.completion" : "text_completion");
    o = with(o, "choices", choice ? json_pack("[o]", choice) : NULL);
    return dump(with(o, "usage", usage(prompt_tokens, completion_tokens)));
}

char *pi_serve_chunk_json(const pi_serve_head *h, const char *text, size_t len, bool role,
                          const char *finish)
{
    bool chat = h->kind == PI_SERVE_CHAT;
    json_t *choice = json_pack("{s:i,s:n,s:o}", "index", 0, "logprobs", "finish_reason",
                               str_or_null(finish));
    if (chat) {
        json_t *delta = json_object();
        if (role)
            delta = with(delta, "role", json_string("assistant"));
        if (text)
            delta = with(delta, "content", json_stringn(text, len));
        choice = with(choice, "delta", delta);
    } else {
        choice = with(choice, "text", json_stringn(text ? text : "", text ? len : 0));
    }
    json_t *o = object(h, chat ? "chat.completion.chunk" : "text_completion");
    return dump(with(o, "choices", choice ? json_pack("[o]", choice) : NULL));
}

char *pi_serve_usage_chunk_json(const pi_serve_head *h, int prompt_tokens,
                                int completion_tokens)
{
    json_t *o = object(h, h->kind == PI_SERVE_CHAT ? "chat.completion.chunk"
                                                   : "text_completion");
    o = with(o, "choices", json_array());
    return dump(with(o, "usage", usage(prompt_tokens, completion_tokens)));
}

char *pi_serve_models_json(const char *model, long long created, bool list)
{
    json_t *m = json_pack("{s:s,s:s,s:I,s:s}", "id", model, "object", "model", "created",
                          (json_int_t)created, "owned_by", "pi");
    if (!list)
        return dump(m);
    return dump(m ? json_pack("{s:s,s:[o]}", "object", "list", "data", m) : NULL);
}
