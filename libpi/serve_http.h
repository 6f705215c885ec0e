/*
 * serve_http: pi-serve's HTTP face: libmicrohttpd serving an OpenAI-
 * compatible API over a pi_serve (serve.h).
 *
 *   POST /v1/chat/completions   POST /v1/completions   (JSON, or server-sent
 *                                                      events with "stream")
 *   GET  /v1/models, /v1/models/ID    GET /health    GET /metrics (Prometheus)
 *
 * Every connection has its own thread (MHD_USE_THREAD_PER_CONNECTION), so a
 * request waiting for its generation blocks nobody else; the number of
 * generations is bounded by serve.c's slots and queue, not here.  While it
 * waits, a request checks every 250 ms whether its client has gone (a
 * closed socket), and if so releases its job, which frees the slot.
 *
 * Errors are OpenAI error objects: 400 bad JSON, types or values, 401
 * missing or wrong API key (every path but /health needs it when one is
 * set), 404 unknown path or model, 405 wrong method, 413 body over
 * max_body, 503 queue full or shutting down.
 */
#ifndef PI_SERVE_HTTP_H
#define PI_SERVE_HTTP_H

#include <stddef.h>

#include "err.h"
#include "serve.h"

typedef struct pi_http_params {
    const char *host;    /* address or name to listen on */
    int port;            /* 0: a free port the system picks (pi_http_port tells) */
    const char *api_key; /* NULL: no authentication */
    size_t max_body;     /* request body limit, bytes */
    /* One line per finished request (client, method, path, status, tokens,
     * seconds), for the tool to print; NULL: none. */
    void (*log)(void *user, const char *line);
    void *log_user;
} pi_http_params;

typedef struct pi_http pi_http;

/* Listens and serves s (which must outlive the pi_http).  NULL with err
 * naming the address and the problem. */
pi_http *pi_http_start(pi_serve *s, const pi_http_params *p, pi_err *err);
int pi_http_port(const pi_http *h);
/* Stops accepting connections; requests in flight go on to their end, new
 * requests on open connections get 503. */
void pi_http_quiesce(pi_http *h);
/* Requests begun and not yet completely answered. */
int pi_http_in_flight(pi_http *h);
/* Closes every connection and stops the threads. */
void pi_http_stop(pi_http *h);

#endif
