/*
 * pi-serve: an OpenAI-compatible HTTP server over pi's engine.
 *
 * The signals that end it are blocked in every thread and taken by the main
 * thread with sigwait, so no handler and no global flag are needed: the
 * main thread sleeps until SIGINT or SIGTERM, stops accepting, waits for
 * the requests in flight (a second signal cancels them), and exits 0.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "forward.h"
#include "placement.h"
#include "serve.h"
#include "serve_http.h"
#include "tokenizer.h"
#include "tool.h"

static const char *prog = "pi-serve";
#define DEFAULT_MODEL "models/SmolLM2-135M-Instruct.Q4_1.gguf"

typedef struct opts {
    const char *model, *host, *api_key;
    int port, slots, queue, threads, ctx, batch, max_tokens;
    uint64_t max_body;
    bool quiet, dense, sparse_opt;
    float shift, gate_floor;
} opts;

static void usage(FILE *f)
{
    fprintf(f,
        "Usage: %s [OPTION]...\n"
        "Serve a GGUF model over an OpenAI-compatible HTTP API: POST\n"
        "/v1/chat/completions and /v1/completions (streamed as server-sent events\n"
        "with \"stream\": true), GET /v1/models, /health and /metrics (Prometheus).\n"
        "Each slot generates for one request at a time with its own KV cache; the\n"
        "slots share the one loaded model.  SIGINT or SIGTERM stops accepting,\n"
        "finishes the requests in flight and exits 0 (a second signal cancels them).\n"
        "\n"
        "  -m, --model FILE        GGUF model (default " DEFAULT_MODEL ");\n"
        "                          requests name it by its file name\n"
        "      --host ADDR         address to listen on (default 127.0.0.1; 0.0.0.0:\n"
        "                          every interface)\n"
        "      --port N            TCP port (default 8080; 0: any free port)\n"
        "      --slots N           concurrent generations (default 1)\n"
        "      --queue N           requests that may wait for a slot; more get 503\n"
        "                          (default 8)\n"
        "  -t, --threads N         threads per slot (default: online CPUs / slots)\n"
        "  -c, --ctx-size N        context per slot in tokens (also --ctx; default:\n"
        "                          model's, at most 4096); prompt + max_tokens must fit\n"
        "  -b, --batch-size N      prompt tokens per forward pass (default 64)\n"
        "      --max-tokens N      cap on a request's max_tokens, and its value when\n"
        "                          a request gives none (default 1024)\n"
        "      --max-body SIZE     largest request body, e.g. 1M (default 1M); more\n"
        "                          gets 413\n"
        "      --api-key KEY       require 'Authorization: Bearer KEY' on every\n"
        "                          endpoint but /health (default: $PI_API_KEY if set)\n"
        "      --dense             compute every FFN neuron even on a packed model\n"
        "      --sparsity-shift D  add D to every predictor threshold (see pi-run)\n"
        "      --gate-floor F      sparse gate check (see pi-run; default 0: off)\n"
        "  -q, --quiet             no startup line and no line per request on stderr\n"
        "      --config FILE       read options from a YAML file\n"
        "  -h, --help              show this help and exit\n"
        "\n"
        "Exit status: 0 after a signal, 1 on a runtime error (bad model, port in\n"
        "use), 2 on a usage error.  See pi-serve(1).\n",
        prog);
}

static int parse_args(int argc, char **argv, void *opts_out)
{
    opts *o = opts_out;
    enum { HOST = 256, PORT, SLOTS, QUEUE, MAXTOK, MAXBODY, KEY, DENSE, SHIFT, FLOOR };
    static const struct option lo[] = {
        { "model", 1, 0, 'm' }, { "host", 1, 0, HOST }, { "port", 1, 0, PORT },
        { "slots", 1, 0, SLOTS }, { "queue", 1, 0, QUEUE }, { "threads", 1, 0, 't' },
        { "ctx-size", 1, 0, 'c' }, { "ctx", 1, 0, 'c' }, { "batch-size", 1, 0, 'b' },
        { "max-tokens", 1, 0, MAXTOK }, { "max-body", 1, 0, MAXBODY },
        { "api-key", 1, 0, KEY }, { "dense", 0, 0, DENSE }, { "sparsity-shift", 1, 0, SHIFT },
        { "gate-floor", 1, 0, FLOOR }, { "quiet", 0, 0, 'q' }, { "help", 0, 0, 'h' },
        { 0, 0, 0, 0 },
    };
    *o = (opts){ .model = DEFAULT_MODEL, .host = "127.0.0.1", .port = 8080, .slots = 1,
                 .queue = 8, .max_tokens = 1024, .max_body = 1 << 20,
                 .api_key = getenv("PI_API_KEY") };
    int c;
    double v = 0;
    while ((c = getopt_long(argc, argv, "m:t:c:b:qh", lo, NULL)) != -1) {
        int rc = 0;
        switch (c) {
        case 'm': o->model = optarg; break;
        case HOST: o->host = optarg; break;
        case PORT: rc = tool_num(prog, "port", optarg, 0, 65535, true, &v); o->port = (int)v;
            break;
        case SLOTS: rc = tool_num(prog, "slots", optarg, 1, 256, true, &v); o->slots = (int)v;
            break;
        case QUEUE: rc = tool_num(prog, "queue", optarg, 0, 4096, true, &v); o->queue = (int)v;
            break;
        case 't': rc = tool_num(prog, "threads", optarg, 1, 512, true, &v); o->threads = (int)v;
            break;
        case 'c': rc = tool_num(prog, "ctx-size", optarg, 2, 1 << 20, true, &v);
            o->ctx = (int)v; break;
        case 'b': rc = tool_num(prog, "batch-size", optarg, 1, 8192, true, &v);
            o->batch = (int)v; break;
        case MAXTOK: rc = tool_num(prog, "max-tokens", optarg, 1, 1 << 20, true, &v);
            o->max_tokens = (int)v; break;
        case MAXBODY:
            if (pi_parse_size(optarg, &o->max_body) || o->max_body < 64 ||
                o->max_body > (1u << 30)) {
                fprintf(stderr, "%s: --max-body: '%s' is not a size from 64 to 1G, like 1M\n",
                        prog, optarg);
                return 2;
            }
            break;
        case KEY: o->api_key = optarg; break;
        case DENSE: o->dense = true; break;
        case SHIFT: rc = tool_num(prog, "sparsity-shift", optarg, -100, 100, false, &v);
            o->shift = (float)v; o->sparse_opt = true; break;
        case FLOOR: rc = tool_num(prog, "gate-floor", optarg, 0, 100, false, &v);
            o->gate_floor = (float)v; o->sparse_opt = o->sparse_opt || v > 0; break;
        case 'q': o->quiet = true; break;
        case 'h': usage(stdout); exit(0);
        default: return 2;
        }
        if (rc)
            return 2;
    }
    if (tool_no_operands(prog, argc, argv))
        return 2;
    if (o->api_key && !*o->api_key)
        o->api_key = NULL; /* PI_API_KEY= (empty) means none */
    if (o->dense && o->sparse_opt) {
        fprintf(stderr, "%s: --sparsity-shift and --gate-floor have no effect with --dense\n",
                prog);
        return 2;
    }
    if (!o->threads) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        o->threads = cpus > o->slots ? (int)(cpus / o->slots) : 1;
    }
    return 0;
}

static void log_line(void *user, const char *line)
{
    fprintf(stderr, "%s: %s\n", prog, line);
}

/* The name requests give: the model file's name. */
static const char *model_id(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* Waits for SIGINT or SIGTERM, then drains: no new connections, the
 * requests in flight answered (a second signal cancels their generations). */
static void serve_until_signal(pi_http *h, pi_serve *s, const sigset_t *set, bool quiet)
{
    int sig;
    while (sigwait(set, &sig))
        ;
    pi_http_quiesce(h);
    if (!quiet)
        fprintf(stderr, "%s: %s: finishing %d request(s) in flight\n", prog,
                sig == SIGINT ? "SIGINT" : "SIGTERM", pi_http_in_flight(h));
    const struct timespec tick = { 0, 50 * 1000000L };
    bool cancelled = false;
    while (pi_http_in_flight(h) > 0)
        if (sigtimedwait(set, NULL, &tick) > 0 && !cancelled) {
            if (!quiet)
                fprintf(stderr, "%s: second signal: cancelling the generations\n", prog);
            pi_serve_cancel_all(s);
            cancelled = true;
        }
}

int main(int argc, char **argv)
{
    opts o;
    pi_err err;
    pi_args args;
    int rc = tool_args(prog, argc, argv, &args, parse_args, &o);
    if (rc)
        return rc;
    /* blocked before any thread starts, so every thread inherits the mask */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN); /* a client gone mid-write is an error return, not death */

    pi_model *m = pi_model_open(o.model, &err);
    pi_tokenizer *tok = NULL;
    pi_serve *s = NULL;
    pi_http *h = NULL;
    if (m && o.sparse_opt && !m->pred) {
        fprintf(stderr, "%s: --sparsity-shift, --gate-floor: %s has no predictors (pack it "
                "with pi-pack --predictors)\n", prog, o.model);
        rc = 1;
        goto done;
    }
    if (m)
        tok = pi_tokenizer_load(m->gguf, &err);
    pi_serve_params sp = {
        .ctx = { .n_ctx = o.ctx, .n_threads = o.threads, .n_batch = o.batch, .dense = o.dense,
                 .sparsity_shift = o.shift, .gate_floor = o.gate_floor },
        .n_slots = o.slots, .n_queue = o.queue, .max_tokens = o.max_tokens,
        .model_id = model_id(o.model),
    };
    if (tok)
        s = pi_serve_new(m, tok, &sp, &err);
    pi_http_params hp = { .host = o.host, .port = o.port, .api_key = o.api_key,
                          .max_body = (size_t)o.max_body, .log = o.quiet ? NULL : log_line };
    if (s)
        h = pi_http_start(s, &hp, &err);
    if (!h) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        rc = 1;
        goto done;
    }
    if (!o.quiet)
        fprintf(stderr, "%s: listening on http://%s%s%s:%d/v1 (model %s, %d slot%s x %d "
                "thread%s, context %d, %s%s)\n", prog, strchr(o.host, ':') ? "[" : "", o.host,
                strchr(o.host, ':') ? "]" : "", pi_http_port(h), sp.model_id, o.slots,
                o.slots > 1 ? "s" : "", o.threads, o.threads > 1 ? "s" : "", pi_serve_n_ctx(s),
                pi_serve_sparse(s) ? "sparse" : "dense", o.api_key ? ", API key required" : "");
    serve_until_signal(h, s, &set, o.quiet);
    if (!o.quiet)
        fprintf(stderr, "%s: stopped\n", prog);
done:
    pi_http_stop(h);
    pi_serve_free(s);
    pi_tokenizer_free(tok);
    pi_model_close(m);
    return tool_exit(prog, &args, rc);
}
