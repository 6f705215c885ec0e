/* libFuzzer target for pi-serve's request parser: any bytes as the body of
 * a chat and of a text completion request.  Beyond not crashing, a parsed
 * request must hold what serve_request.h promises, and a refusal must be a
 * 4xx whose error object serialises (valid UTF-8 even when the message
 * quotes the client). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "serve_request.h"
#include "serve_response.h"

static void check_request(const pi_serve_request *r)
{
    if (r->kind == PI_SERVE_CHAT) {
        if (r->n_messages == 0 || !r->messages)
            abort();
        for (size_t i = 0; i < r->n_messages; i++)
            if (!r->messages[i].content || (strcmp(r->messages[i].role, "system") &&
                                            strcmp(r->messages[i].role, "user") &&
                                            strcmp(r->messages[i].role, "assistant")))
                abort();
    } else if (!r->prompt) {
        abort();
    }
    if (r->n_stop < 0 || r->n_stop > PI_SERVE_MAX_STOP || r->max_tokens < 0 ||
        r->temperature > 2 || r->top_p > 1 || r->min_p > 1)
        abort();
    for (int i = 0; i < r->n_stop; i++)
        if (!r->stop[i][0] || strlen(r->stop[i]) > PI_SERVE_MAX_STOP_LEN)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int k = 0; k < 2; k++) {
        pi_serve_request r;
        pi_serve_error e;
        if (pi_serve_request_parse(k ? PI_SERVE_COMPLETION : PI_SERVE_CHAT, (const char *)data,
                                   size, &r, &e) == 0) {
            check_request(&r);
        } else {
            if (e.status < 400 || e.status > 599 || !e.message[0])
                abort();
            char *json = pi_serve_error_json(&e);
            if (!json && e.status != 500) /* 500: out of memory, where NULL is fair */
                abort();
            free(json);
        }
        pi_serve_request_free(&r);
    }
    return 0;
}
