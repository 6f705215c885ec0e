/* serve_http: the OpenAI-compatible HTTP API over libmicrohttpd (see serve_http.h). */
#include "serve_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "serve_response.h"

/* Idle keep-alive connections are closed after this; it also bounds how
 * long a client may take to send its request. */
#define IDLE_TIMEOUT_S 60
/* Connections (each a thread) at once; beyond, new ones are refused. */
#define MAX_CONNECTIONS 256
/* How often a waiting request checks that its client is still there. */
#define POLL_MS 250

struct pi_http {
    pi_serve *srv;
    pi_http_params p;
    char *api_key;
    struct MHD_Daemon *d;
    int listen_fd, port;
    atomic_int in_flight;
    atomic_bool draining;
    atomic_uint_fast64_t n_ids;
    long long started; /* Unix seconds: the model's "created" */
};

typedef struct route route;

/* One request, from its first header to its completion (MHD's con_cls).
 * A streamed response holds a second reference until MHD frees it. */
typedef struct req {
    pi_http *h;
    struct MHD_Connection *conn;
    const route *route;
    atomic_int refs;
    char *body;
    size_t len, cap;
    bool too_big;
    int status, prompt_tokens, completion_tokens;
    char method[8]; /* for the log */
    struct timespec t0;
} req;

struct route {
    const char *path, *method;
    bool prefix; /* path is a prefix (/v1/models/ID) */
    enum MHD_Result (*fn)(req *rq, const char *url);
};

static double since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (t.tv_nsec - t0->tv_nsec) * 1e-9;
}

static void req_unref(req *rq)
{
    if (atomic_fetch_sub(&rq->refs, 1) != 1)
        return;
    free(rq->body);
    free(rq);
}

/* ---- answering ------------------------------------------------------------- */

static enum MHD_Result queue(req *rq, int status, struct MHD_Response *r)
{
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    enum MHD_Result ret = MHD_queue_response(rq->conn, (unsigned)status, r);
    MHD_destroy_response(r);
    rq->status = status;
    pi_serve_metrics_request(pi_serve_metrics_of(rq->h->srv),
                             rq->route ? rq->route->path : "other", status);
    return ret;
}

/* Answers with body (malloc'ed, taken; NULL: out of memory, a bare 500). */
static enum MHD_Result reply(req *rq, int status, const char *type, char *body)
{
    if (!body) {
        static char oom[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\","
                            "\"param\":null,\"code\":null}}";
        struct MHD_Response *r = MHD_create_response_from_buffer(strlen(oom), oom,
                                                                 MHD_RESPMEM_PERSISTENT);
        if (r)
            MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        return queue(rq, 500, r);
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body,
                                                             MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    return queue(rq, status, r);
}

static enum MHD_Result reply_json(req *rq, int status, char *json)
{
    return reply(rq, status, "application/json", json);
}

static enum MHD_Result reply_error(req *rq, const pi_serve_error *e)
{
    char *json = pi_serve_error_json(e);
    if (!json)
        return reply_json(rq, 500, NULL);
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(json), json,
                                                             MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(json);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (e->status == 401)
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (e->status == 405 && rq->route)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, rq->route->method);
    if (e->status == 503)
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    return queue(rq, e->status, r);
}

/* Whether the client closed its end: a peek that reads end-of-file.  The
 * connection's thread is this one, blocked in our code, so nobody else is
 * reading the socket. */
static bool client_gone(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return false;
    char b;
    ssize_t n = recv(ci->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static void new_id(pi_http *h, pi_serve_kind kind, char *id, size_t size)
{
    uint64_t n = atomic_fetch_add(&h->n_ids, 1), x = n * 0x9e3779b97f4a7c15ull ^
                                                     (uint64_t)h->started;
    x = (x ^ (x >> 31)) * 0xbf58476d1ce4e5b9ull;
    snprintf(id, size, "%s-%016llx%06llx", kind == PI_SERVE_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long long)(x ^ (x >> 29)), (unsigned long long)(n & 0xffffff));
}

/* ---- streaming ------------------------------------------------------------- */

typedef struct stream {
    req *rq;
    pi_serve_job *job;
    pi_serve_head head;
    char id[48];
    bool include_usage, started, done;
    size_t from;      /* bytes of the job's text sent */
    char *pend;       /* events formatted and not yet handed to MHD */
    size_t pend_len, pend_off, pend_cap;
} stream;

static int append(stream *st, const char *s, size_t n)
{
    if (st->pend_len + n > st->pend_cap) {
        size_t cap = 2 * (st->pend_len + n);
        char *p = realloc(st->pend, cap);
        if (!p)
            return -1;
        st->pend = p;
        st->pend_cap = cap;
    }
    memcpy(st->pend + st->pend_len, s, n);
    st->pend_len += n;
    return 0;
}

/* Appends the server-sent event "data: JSON\n\n" (json taken; NULL: out
 * of memory, -1). */
static int event(stream *st, char *json)
{
    int rc = !json || append(st, "data: ", 6) || append(st, json, strlen(json)) ||
             append(st, "\n\n", 2);
    free(json);
    return rc ? -1 : 0;
}

/* The events of the stream's end: the finish_reason, the usage when asked,
 * [DONE]; an error object instead when the generation failed. */
static int stream_end(stream *st, const pi_serve_out *o)
{
    st->done = true;
    st->rq->prompt_tokens = o->prompt_tokens;
    st->rq->completion_tokens = o->completion_tokens;
    const char *finish = pi_serve_finish_reason(o->finish);
    int rc;
    if (finish) {
        rc = event(st, pi_serve_chunk_json(&st->head, st->head.kind == PI_SERVE_CHAT ? NULL : "",
                                           0, false, finish));
        if (!rc && st->include_usage)
            rc = event(st, pi_serve_usage_chunk_json(&st->head, o->prompt_tokens,
                                                     o->completion_tokens));
    } else {
        pi_serve_error e;
        pi_serve_error_set(&e, 500, NULL, NULL, "%s", o->error);
        rc = event(st, pi_serve_error_json(&e));
    }
    return rc || append(st, "data: [DONE]\n\n", 14) ? -1 : 0;
}

/* Formats the next events, waiting up to POLL_MS for text.  -1: the client
 * is gone or memory ran out. */
static int stream_fill(stream *st)
{
    if (!st->started) {
        st->started = true;
        if (st->head.kind == PI_SERVE_CHAT) /* the role first, as OpenAI does */
            return event(st, pi_serve_chunk_json(&st->head, "", 0, true, NULL));
    }
    pi_serve_out o;
    if (pi_serve_job_read(st->job, st->from, POLL_MS, &o))
        return -1;
    int rc = 0;
    if (o.len) {
        rc = event(st, pi_serve_chunk_json(&st->head, o.text, o.len, false, NULL));
        st->from += o.len;
    }
    free(o.text);
    if (!rc && o.finish != PI_SERVE_RUNNING)
        return stream_end(st, &o);
    if (!rc && !o.len && client_gone(st->rq->conn))
        return -1;
    return rc;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    stream *st = cls;
    while (st->pend_off == st->pend_len) {
        st->pend_off = st->pend_len = 0;
        if (st->done)
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (stream_fill(st))
            return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = st->pend_len - st->pend_off < max ? st->pend_len - st->pend_off : max;
    memcpy(buf, st->pend + st->pend_off, n);
    st->pend_off += n;
    return (ssize_t)n;
}

static void stream_free(void *cls)
{
    stream *st = cls;
    pi_serve_job_release(st->job); /* stops the generation if the client left early */
    req_unref(st->rq);
    free(st->pend);
    free(st);
}

static enum MHD_Result start_stream(req *rq, pi_serve_job *job, const pi_serve_request *r)
{
    stream *st = calloc(1, sizeof *st);
    if (!st) {
        pi_serve_job_release(job);
        return reply_json(rq, 500, NULL);
    }
    *st = (stream){ .rq = rq, .job = job, .include_usage = r->include_usage };
    new_id(rq->h, r->kind, st->id, sizeof st->id);
    st->head = (pi_serve_head){ r->kind, st->id, (long long)time(NULL),
                                pi_serve_model_id(rq->h->srv) };
    atomic_fetch_add(&rq->refs, 1);
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384,
                                                                  stream_read, st, stream_free);
    if (!resp) {
        stream_free(st);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    return queue(rq, 200, resp);
}

/* ---- the endpoints ----------------------------------------------------------- */

/* Waits for the whole text; NULL when the client left. */
static char *wait_text(req *rq, pi_serve_job *job, size_t *len, pi_serve_out *end)
{
    char *text = NULL;
    *len = 0;
    struct timespec checked;
    clock_gettime(CLOCK_MONOTONIC, &checked);
    for (;;) {
        pi_serve_out o;
        if (pi_serve_job_read(job, *len, POLL_MS, &o))
            break;
        if (o.len) {
            char *t = realloc(text, *len + o.len + 1);
            if (!t) {
                free(o.text);
                break;
            }
            text = t;
            memcpy(text + *len, o.text, o.len + 1);
            *len += o.len;
        }
        free(o.text);
        if (o.finish != PI_SERVE_RUNNING) {
            *end = o;
            return text ? text : strdup("");
        }
        /* text arrives at every token, so the check goes by the clock */
        if (since(&checked) * 1000 >= POLL_MS) {
            if (client_gone(rq->conn))
                break;
            clock_gettime(CLOCK_MONOTONIC, &checked);
        }
    }
    free(text);
    return NULL;
}

static enum MHD_Result completion(req *rq, pi_serve_kind kind)
{
    pi_serve_request r;
    pi_serve_error e;
    pi_serve_job *job = NULL;
    if (rq->too_big) {
        pi_serve_error_set(&e, 413, NULL, "request_too_large", "the request body is over the "
                           "limit of %zu bytes", rq->h->p.max_body);
        return reply_error(rq, &e);
    }
    if (!pi_serve_request_parse(kind, rq->body ? rq->body : "", rq->len, &r, &e))
        job = pi_serve_submit(rq->h->srv, &r, &e);
    if (!job) {
        pi_serve_request_free(&r);
        return reply_error(rq, &e);
    }
    rq->prompt_tokens = pi_serve_job_prompt_tokens(job);
    if (r.stream) {
        enum MHD_Result ret = start_stream(rq, job, &r);
        pi_serve_request_free(&r);
        return ret;
    }
    pi_serve_request_free(&r);
    size_t len;
    pi_serve_out end;
    char *text = wait_text(rq, job, &len, &end);
    pi_serve_job_release(job);
    if (!text) {
        rq->status = 499; /* nginx's "client closed request", for the log and metrics */
        pi_serve_metrics_request(pi_serve_metrics_of(rq->h->srv), rq->route->path, 499);
        return MHD_NO;
    }
    rq->completion_tokens = end.completion_tokens;
    const char *finish = pi_serve_finish_reason(end.finish);
    if (!finish) {
        free(text);
        pi_serve_error_set(&e, 500, NULL, NULL, "%s", end.error);
        return reply_error(rq, &e);
    }
    char id[48];
    new_id(rq->h, kind, id, sizeof id);
    pi_serve_head head = { kind, id, (long long)time(NULL), pi_serve_model_id(rq->h->srv) };
    char *json = pi_serve_completion_json(&head, text, len, finish, end.prompt_tokens,
                                          end.completion_tokens);
    free(text);
    return reply_json(rq, 200, json);
}

static enum MHD_Result chat(req *rq, const char *url)
{
    return completion(rq, PI_SERVE_CHAT);
}

static enum MHD_Result text_completion(req *rq, const char *url)
{
    return completion(rq, PI_SERVE_COMPLETION);
}

static enum MHD_Result models(req *rq, const char *url)
{
    const char *id = pi_serve_model_id(rq->h->srv);
    bool one = !strncmp(url, "/v1/models/", 11);
    if (one && strcmp(url + 11, id)) {
        pi_serve_error e;
        pi_serve_error_set(&e, 404, "model", "model_not_found", "the model '%.200s' does not "
                           "exist; this server has '%.200s'", url + 11, id);
        return reply_error(rq, &e);
    }
    return reply_json(rq, 200, pi_serve_models_json(id, rq->h->started, !one));
}

static enum MHD_Result health(req *rq, const char *url)
{
    return reply_json(rq, 200, strdup("{\"status\":\"ok\"}"));
}

static enum MHD_Result metrics(req *rq, const char *url)
{
    char *text = pi_serve_metrics_render(rq->h->srv, NULL);
    return text ? reply(rq, 200, "text/plain; version=0.0.4; charset=utf-8", text)
                : reply_json(rq, 500, NULL);
}

static const route routes[] = {
    { "/v1/chat/completions", "POST", false, chat },
    { "/v1/completions", "POST", false, text_completion },
    { "/v1/models", "GET", false, models },
    { "/v1/models/", "GET", true, models },
    { "/health", "GET", false, health },
    { "/metrics", "GET", false, metrics },
};

static const route *find_route(const char *url)
{
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++)
        if (routes[i].prefix ? !strncmp(url, routes[i].path, strlen(routes[i].path))
                             : !strcmp(url, routes[i].path))
            return &routes[i];
    return NULL;
}

/* ---- the request's life -------------------------------------------------------- */

/* A constant-time comparison, so that response times do not reveal how
 * much of a guessed key was right. */
static bool key_ok(const char *key, const char *auth)
{
    if (!auth || strncasecmp(auth, "Bearer ", 7))
        return false;
    auth += 7;
    size_t a = strlen(key), b = strlen(auth);
    unsigned diff = a != b;
    for (size_t i = 0; i < a; i++)
        diff |= (unsigned char)key[i] ^ (unsigned char)(i < b ? auth[i] : 0);
    return diff == 0;
}

/* What can be decided from the headers alone: authentication, the route,
 * the method, the body's announced size.  MHD_YES without a response: go
 * on to the body. */
static enum MHD_Result on_headers(req *rq, const char *url, const char *method)
{
    pi_http *h = rq->h;
    pi_serve_error e;
    const route *rt = find_route(url);
    rq->route = rt;
    if (h->api_key && !(rt && rt->fn == health) &&
        !key_ok(h->api_key, MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND,
                                                        MHD_HTTP_HEADER_AUTHORIZATION))) {
        pi_serve_error_set(&e, 401, NULL, "invalid_api_key", "a missing or wrong API key "
                           "(send 'Authorization: Bearer KEY')");
        return reply_error(rq, &e);
    }
    if (!rt) {
        pi_serve_error_set(&e, 404, NULL, "unknown_url", "no such endpoint: %s %.200s", method,
                           url);
        return reply_error(rq, &e);
    }
    if (strcmp(method, rt->method)) {
        pi_serve_error_set(&e, 405, NULL, "method_not_allowed", "%s takes %s, not %.20s",
                           rt->path, rt->method, method);
        return reply_error(rq, &e);
    }
    if (atomic_load(&h->draining) && rt->fn != health && rt->fn != metrics) {
        pi_serve_error_set(&e, 503, NULL, "shutting_down", "the server is shutting down");
        return reply_error(rq, &e);
    }
    const char *cl = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && strtoull(cl, NULL, 10) > h->p.max_body) {
        /* answered before the body is read: MHD then discards it and closes */
        pi_serve_error_set(&e, 413, NULL, "request_too_large", "the request body is %s bytes, "
                           "over the limit of %zu", cl, h->p.max_body);
        return reply_error(rq, &e);
    }
    if (!strcmp(method, "GET"))
        return rt->fn(rq, url);
    return MHD_YES;
}

static void body_append(req *rq, const char *data, size_t n)
{
    if (rq->too_big || rq->len + n > rq->h->p.max_body) {
        rq->too_big = true; /* the rest is read and dropped; 413 at the end */
        return;
    }
    if (rq->len + n + 1 > rq->cap) {
        size_t cap = 2 * (rq->len + n) + 1024;
        if (cap > rq->h->p.max_body + 1)
            cap = rq->h->p.max_body + 1;
        char *b = realloc(rq->body, cap);
        if (!b) {
            rq->too_big = true;
            return;
        }
        rq->body = b;
        rq->cap = cap;
    }
    memcpy(rq->body + rq->len, data, n);
    rq->len += n;
    rq->body[rq->len] = 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload, size_t *upload_size, void **con_cls)
{
    pi_http *h = cls;
    req *rq = *con_cls;
    if (!rq) {
        if (!(rq = calloc(1, sizeof *rq)))
            return MHD_NO;
        rq->h = h;
        rq->conn = c;
        snprintf(rq->method, sizeof rq->method, "%s", method);
        atomic_init(&rq->refs, 1);
        clock_gettime(CLOCK_MONOTONIC, &rq->t0);
        *con_cls = rq;
        atomic_fetch_add(&h->in_flight, 1);
        return on_headers(rq, url, method);
    }
    if (*upload_size) {
        body_append(rq, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    return rq->route->fn(rq, url);
}

static void log_request(req *rq, const char *url, enum MHD_RequestTerminationCode toe)
{
    pi_http *h = rq->h;
    char client[64] = "?", path[128];
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(rq->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, client, sizeof client);
    else if (sa && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, client,
                  sizeof client);
    /* the path is the client's: printable ASCII only, and not too long */
    snprintf(path, sizeof path, "%s", rq->route ? rq->route->path : url ? url : "?");
    for (char *p = path; *p; p++)
        if (*p < 0x20 || *p > 0x7e)
            *p = '?';
    char line[320];
    for (char *p = rq->method; *p; p++)
        if (*p < 0x20 || *p > 0x7e)
            *p = '?';
    int n = snprintf(line, sizeof line, "%s %s %s %d", client, rq->method, path, rq->status);
    if (rq->prompt_tokens)
        n += snprintf(line + n, sizeof line - (size_t)n, " %d+%d tokens", rq->prompt_tokens,
                      rq->completion_tokens);
    snprintf(line + n, sizeof line - (size_t)n, " %.3f s%s", since(&rq->t0),
             toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection closed early)");
    h->p.log(h->p.log_user, line);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    pi_http *h = cls;
    req *rq = *con_cls;
    if (!rq)
        return;
    if (h->p.log)
        log_request(rq, NULL, toe);
    *con_cls = NULL;
    req_unref(rq);
    atomic_fetch_sub(&h->in_flight, 1);
}

/* ---- the daemon ------------------------------------------------------------------ */

static int listen_on(const char *host, int port, pi_err *err)
{
    struct addrinfo hints = { .ai_flags = AI_PASSIVE | AI_NUMERICSERV,
                              .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *ai;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    int rc = getaddrinfo(host, ps, &hints, &ai);
    if (rc)
        return pi_err_set(err, "%s: %s", host, gai_strerror(rc));
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 128)) {
        pi_err_set(err, "%s port %d: %s", host, port, strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    return fd;
}

static int bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t n = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &n))
        return -1;
    return ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                          : ((struct sockaddr_in *)&ss)->sin_port);
}

pi_http *pi_http_start(pi_serve *s, const pi_http_params *p, pi_err *err)
{
    pi_http *h = calloc(1, sizeof *h);
    if (!h) {
        pi_err_set(err, "out of memory");
        return NULL;
    }
    h->srv = s;
    h->p = *p;
    h->started = (long long)time(NULL);
    atomic_init(&h->in_flight, 0);
    atomic_init(&h->draining, false);
    atomic_init(&h->n_ids, 0);
    if (p->api_key && !(h->api_key = strdup(p->api_key))) {
        pi_err_set(err, "out of memory");
        free(h);
        return NULL;
    }
    h->p.api_key = NULL;
    h->p.host = NULL;
    /* The socket is ours rather than MHD's so that a failure says why
     * (address in use, no such address) and port 0 can be resolved. */
    h->listen_fd = listen_on(p->host, p->port, err);
    if (h->listen_fd < 0 || (h->port = bound_port(h->listen_fd)) < 0) {
        if (h->listen_fd >= 0)
            close(h->listen_fd);
        free(h->api_key);
        free(h);
        return NULL;
    }
    h->d = MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                                MHD_USE_ITC,
                            0, NULL, NULL, on_request, h, MHD_OPTION_LISTEN_SOCKET,
                            (MHD_socket)h->listen_fd, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
                            h, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_TIMEOUT_S,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)MAX_CONNECTIONS,
                            MHD_OPTION_END);
    if (!h->d) {
        pi_err_set(err, "port %d: the HTTP server (libmicrohttpd) did not start", h->port);
        close(h->listen_fd);
        free(h->api_key);
        free(h);
        return NULL;
    }
    return h;
}

int pi_http_port(const pi_http *h) { return h->port; }
int pi_http_in_flight(pi_http *h) { return atomic_load(&h->in_flight); }

void pi_http_quiesce(pi_http *h)
{
    if (!h || atomic_exchange(&h->draining, true))
        return;
    MHD_socket fd = MHD_quiesce_daemon(h->d);
    /* The socket stays open until MHD stops (its threads may still look at
     * it), but shutting it down makes the kernel refuse new connections now
     * instead of queueing them unanswered. */
    if (fd != MHD_INVALID_SOCKET)
        shutdown(fd, SHUT_RDWR);
}

void pi_http_stop(pi_http *h)
{
    if (!h)
        return;
    bool quiesced = atomic_load(&h->draining);
    MHD_stop_daemon(h->d);
    if (quiesced) /* MHD closes the socket itself unless it gave it back */
        close(h->listen_fd);
    free(h->api_key);
    free(h);
}
