/*
 * pi-run: generate text with a GGUF model, or measure its perplexity.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "cuda.h"
#include "forward.h"
#include "gpu.h"
#include "json.h"
#include "moe.h"
#include "sparse.h"
#include "perplexity.h"
#include "placement.h"
#include "placement_moe.h"
#include "sample.h"
#include "tokenizer.h"
#include "tool.h"

static const char *prog = "pi-run";
#define DEFAULT_MODEL "models/SmolLM2-135M-Instruct.Q4_1.gguf"

typedef struct opts {
    const char *model, *prompt, *prompt_file, *ppl_file, *system;
    int n_predict, threads, ctx, batch, ppl_stride, ppl_score;
    bool chat, json, quiet, no_special, ignore_eos, dry_run, dense, sparse_opt, ppl_argmax;
    bool gpu, cpu_fallback; /* --gpu (or a --vram the whole model fits in) */
    bool offload;           /* --offload-layers */
    /* sparse_opt: --sparsity-shift or a nonzero --gate-floor was given */
    float shift, gate_floor; /* --sparsity-shift, --gate-floor */
    uint64_t vram; /* 0: no GPU */
    pi_sample_params sp;
} opts;

static void usage(FILE *f)
{
    fprintf(f,
        "Usage: %s [OPTION]... [-p PROMPT | -f FILE]\n"
        "Generate text with a GGUF model (tokens stream to stdout as they are made),\n"
        "or measure perplexity over a text file.  With neither -p nor -f the prompt\n"
        "is read from standard input.  A model packed by pi-pack with predictors\n"
        "runs sparse: each layer computes only the FFN neurons its predictor selects.\n"
        "\n"
        "  -m, --model FILE        GGUF model (default " DEFAULT_MODEL ")\n"
        "  -p, --prompt TEXT       the prompt\n"
        "  -f, --file FILE         read the prompt from FILE (- for stdin)\n"
        "  -n, --n-predict N       tokens to generate (default 128; -1: until the end\n"
        "                          of generation token or a full context)\n"
        "      --chat              wrap the prompt in the model's chat template\n"
        "      --system TEXT       system message for --chat\n"
        "  -t, --threads N         threads (default: online CPUs)\n"
        "  -c, --ctx-size N        context length in tokens (default: model's, at most\n"
        "                          4096; 512 for --perplexity)\n"
        "  -b, --batch-size N      prompt tokens per forward pass (default 64)\n"
        "  -s, --seed N            random seed (default 0)\n"
        "      --temp T            temperature; 0 is greedy (default 0.8)\n"
        "      --top-k N           keep the N most likely tokens (default 40; 0: off)\n"
        "      --top-p P           keep the smallest set with mass P (default 0.95)\n"
        "      --min-p P           drop tokens below P times the best (default 0.05)\n"
        "      --repeat-penalty R  penalise recent tokens (default 1.0: off)\n"
        "      --repeat-last-n N   how many recent tokens (default 64)\n"
        "      --ignore-eos        keep generating past end-of-generation tokens\n"
        "      --no-special        treat <|...|> in the prompt as plain text\n"
        "      --perplexity FILE   report perplexity of FILE instead of generating\n"
        "      --ppl-stride N      a window starts every N tokens (default ctx-size / 2)\n"
        "      --ppl-score N       tokens scored per window, its last (default: stride;\n"
        "                          -c 512 --ppl-stride 512 --ppl-score 256 is llama.cpp's)\n"
        "      --ppl-argmax        with --json, list the most likely token at every\n"
        "                          scored position (to compare two runs token by token)\n"
        "      --dense             compute every FFN neuron even on a packed model\n"
        "      --sparsity-shift D  add D to every predictor threshold (logits): above 0\n"
        "                          fewer neurons (faster, less exact), below 0 more\n"
        "                          (default 0: the thresholds pi-train-predictor set)\n"
        "      --gate-floor F      sparse: compute the gates of the selected neurons\n"
        "                          first, then up and down only where |silu(gate)| is\n"
        "                          at least F times their mean (default 0: off)\n"
        "      --json              print one JSON object with the text and statistics\n"
        "      --gpu               run every layer on the CUDA GPU, dense or sparse,\n"
        "                          with the KV cache in GPU memory\n"
        "      --vram SIZE         GPU memory pi may take (e.g. 6G); the model runs on\n"
        "                          the GPU when it fits whole (weights, KV cache for\n"
        "                          --ctx-size, scratch), else split with the CPU\n"
        "      --offload-layers    with --vram: a model over the budget runs dense, as\n"
        "                          many whole layers as fit on the GPU, the rest on the CPU\n"
        "                          (without it, a packed model runs hybrid: its hottest\n"
        "                          neurons on the GPU, the rest on the CPU)\n"
        "      --cpu-fallback      with --gpu or --vram: run on the CPU, with a warning,\n"
        "                          when no GPU can be used\n"
        "      --dry-run           print the GPU plan and exit: with --gpu, the bytes a\n"
        "                          full-GPU run takes; with --vram alone, a packed\n"
        "                          model's placement (attention, KV cache, then the\n"
        "                          hottest neurons)\n"
        "  -q, --quiet             no statistics on stderr\n"
        "      --config FILE       read options from a YAML file\n"
        "  -h, --help              show this help and exit\n"
        "\n"
        "Exit status: 0 on success, 1 on a runtime error (bad model, prompt too long\n"
        "for the context), 2 on a usage error.  See pi-run(1).\n",
        prog);
}

static int num(const char *opt, const char *arg, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(arg, &end);
    if (!*arg || *end || errno || v < lo || v > hi) {
        fprintf(stderr, "%s: --%s: '%s' is not a number from %g to %g\n", prog, opt, arg, lo,
                hi);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv, void *opts_out)
{
    opts *o = opts_out;
    enum { CHAT = 256, SYSTEM, TEMP, TOPK, TOPP, MINP, RPEN, RLAST, PPL, STRIDE, SCORE, JSON,
           NOSPECIAL, IGNEOS, VRAM, DRYRUN, DENSE, SHIFT, ARGMAX, FLOOR, GPU, FALLBACK,
           OFFLOAD };
    static const struct option lo[] = {
        { "model", 1, 0, 'm' }, { "prompt", 1, 0, 'p' }, { "file", 1, 0, 'f' },
        { "n-predict", 1, 0, 'n' }, { "threads", 1, 0, 't' }, { "ctx-size", 1, 0, 'c' },
        { "batch-size", 1, 0, 'b' }, { "seed", 1, 0, 's' }, { "quiet", 0, 0, 'q' },
        { "help", 0, 0, 'h' }, { "chat", 0, 0, CHAT }, { "system", 1, 0, SYSTEM },
        { "temp", 1, 0, TEMP }, { "top-k", 1, 0, TOPK }, { "top-p", 1, 0, TOPP },
        { "min-p", 1, 0, MINP }, { "repeat-penalty", 1, 0, RPEN },
        { "repeat-last-n", 1, 0, RLAST }, { "perplexity", 1, 0, PPL },
        { "ppl-stride", 1, 0, STRIDE }, { "ppl-score", 1, 0, SCORE }, { "json", 0, 0, JSON },
        { "no-special", 0, 0, NOSPECIAL }, { "ignore-eos", 0, 0, IGNEOS },
        { "vram", 1, 0, VRAM }, { "dry-run", 0, 0, DRYRUN }, { "dense", 0, 0, DENSE },
        { "sparsity-shift", 1, 0, SHIFT }, { "ppl-argmax", 0, 0, ARGMAX },
        { "gate-floor", 1, 0, FLOOR }, { "gpu", 0, 0, GPU }, { "cpu-fallback", 0, 0, FALLBACK },
        { "offload-layers", 0, 0, OFFLOAD },
        { 0, 0, 0, 0 },
    };
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    *o = (opts){ .model = DEFAULT_MODEL, .n_predict = 128, .threads = cpus > 0 ? (int)cpus : 1,
                 .sp = pi_sample_defaults() };
    int c;
    double v;
    while ((c = getopt_long(argc, argv, "m:p:f:n:t:c:b:s:qh", lo, NULL)) != -1) {
        int rc = 0;
        switch (c) {
        case 'm': o->model = optarg; break;
        case 'p': o->prompt = optarg; break;
        case 'f': o->prompt_file = optarg; break;
        case 'n': rc = num("n-predict", optarg, -1, 1 << 30, &v); o->n_predict = (int)v; break;
        case 't': rc = num("threads", optarg, 1, 512, &v); o->threads = (int)v; break;
        case 'c': rc = num("ctx-size", optarg, 2, 1 << 20, &v); o->ctx = (int)v; break;
        case 'b': rc = num("batch-size", optarg, 1, 8192, &v); o->batch = (int)v; break;
        case 's': rc = num("seed", optarg, 0, 1.8e19, &v); o->sp.seed = (uint64_t)v; break;
        case 'q': o->quiet = true; break;
        case 'h': usage(stdout); exit(0);
        case CHAT: o->chat = true; break;
        case SYSTEM: o->system = optarg; break;
        case TEMP: rc = num("temp", optarg, 0, 100, &v); o->sp.temperature = (float)v; break;
        case TOPK: rc = num("top-k", optarg, 0, 1 << 30, &v); o->sp.top_k = (int)v; break;
        case TOPP: rc = num("top-p", optarg, 0, 1, &v); o->sp.top_p = (float)v; break;
        case MINP: rc = num("min-p", optarg, 0, 1, &v); o->sp.min_p = (float)v; break;
        case RPEN: rc = num("repeat-penalty", optarg, 0.01, 100, &v);
            o->sp.repeat_penalty = (float)v; break;
        case RLAST: rc = num("repeat-last-n", optarg, 0, 1 << 20, &v);
            o->sp.repeat_last_n = (int)v; break;
        case PPL: o->ppl_file = optarg; break;
        case STRIDE: rc = num("ppl-stride", optarg, 1, 1 << 20, &v); o->ppl_stride = (int)v; break;
        case SCORE: rc = num("ppl-score", optarg, 1, 1 << 20, &v); o->ppl_score = (int)v; break;
        case JSON: o->json = true; break;
        case NOSPECIAL: o->no_special = true; break;
        case IGNEOS: o->ignore_eos = true; break;
        case VRAM:
            if (pi_parse_size(optarg, &o->vram) || !o->vram) {
                fprintf(stderr, "%s: --vram: '%s' is not a size like 6G, 512M or 1.5GiB\n",
                        prog, optarg);
                return 2;
            }
            break;
        case DRYRUN: o->dry_run = true; break;
        case GPU: o->gpu = true; break;
        case FALLBACK: o->cpu_fallback = true; break;
        case OFFLOAD: o->offload = true; break;
        case DENSE: o->dense = true; break;
        case ARGMAX: o->ppl_argmax = true; break;
        case FLOOR: rc = num("gate-floor", optarg, 0, 100, &v); o->gate_floor = (float)v;
            o->sparse_opt = o->sparse_opt || v > 0; break;
        case SHIFT: rc = num("sparsity-shift", optarg, -100, 100, &v); o->shift = (float)v;
            o->sparse_opt = true; break;
        default: return 2;
        }
        if (rc)
            return 2;
    }
    if (tool_no_operands(prog, argc, argv))
        return 2;
    if (o->prompt && o->prompt_file) {
        fprintf(stderr, "%s: give -p or -f, not both\n", prog);
        return 2;
    }
    if (o->ppl_argmax && !(o->ppl_file && o->json)) {
        fprintf(stderr, "%s: --ppl-argmax needs --perplexity and --json\n", prog);
        return 2;
    }
    if (o->dense && o->sparse_opt) {
        fprintf(stderr, "%s: --sparsity-shift and --gate-floor have no effect with --dense\n",
                prog);
        return 2;
    }
    if (o->dry_run && !o->vram && !o->gpu) {
        fprintf(stderr, "%s: --dry-run needs --gpu or --vram SIZE\n", prog);
        return 2;
    }
    if (o->cpu_fallback && !o->vram && !o->gpu) {
        fprintf(stderr, "%s: --cpu-fallback needs --gpu or --vram SIZE\n", prog);
        return 2;
    }
    if (o->offload && o->sparse_opt) {
        fprintf(stderr, "%s: --offload-layers runs dense; --sparsity-shift and --gate-floor have "
                "no effect\n", prog);
        return 2;
    }
    o->dense = o->dense || o->offload; /* the baseline llama.cpp's -ngl gives */
    if (o->offload && !o->vram) {
        fprintf(stderr, "%s: --offload-layers needs --vram SIZE\n", prog);
        return 2;
    }
    if ((o->gpu || o->vram) && o->gate_floor > 0) {
        fprintf(stderr, "%s: --gate-floor is not available on the GPU\n", prog);
        return 2;
    }
    /* a budget to run in means the GPU; --offload-layers --dry-run its plan */
    o->gpu = o->gpu || (o->vram && (!o->dry_run || o->offload));
    return 0;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double gib(uint64_t b) { return (double)b / 1073741824.0; }

static long peak_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

typedef struct run {
    const opts *o;
    pi_model *m;
    pi_tokenizer *tok;
    pi_ctx *ctx;
} run;

/* Mean fraction of FFN neurons selected (or kept) since the last reset. */
static double mean_fraction(const pi_sparse_stats *st, const uint64_t *count)
{
    double all = 0.0;
    for (int il = 0; il < st->n_layer; il++)
        all += (double)count[il];
    double denom = (double)st->tokens * (double)st->n_ff * st->n_layer;
    return denom > 0 ? all / denom : 1.0;
}

/* A mixture of experts: how often each expert of each layer was chosen
 * since the context was made (prompt and generation). */
static void experts_json(pi_ctx *ctx)
{
    const pi_moe *e = pi_ctx_moe(ctx);
    const pi_hparams *hp = &pi_ctx_model(ctx)->hp;
    const uint64_t *u = pi_moe_usage(e);
    printf("\"experts\": %d, \"experts_per_token\": %d, \"expert_usage\": [", hp->n_expert,
           hp->n_expert_used);
    for (int il = 0; il < hp->n_layer; il++) {
        printf("%s[", il ? ", " : "");
        for (int x = 0; x < hp->n_expert; x++)
            printf("%s%llu", x ? ", " : "", (unsigned long long)u[(size_t)il * hp->n_expert + x]);
        putchar(']');
    }
    fputs("], ", stdout);
}

/* The sparse fields of --json (after a comma), over `seconds` of work. */
static void sparse_json(pi_ctx *ctx, double seconds)
{
    if (pi_ctx_moe(ctx))
        experts_json(ctx);
    pi_sparse *sp = pi_ctx_sparse(ctx);
    if (!sp) {
        fputs("\"mode\": \"dense\", \"active_fraction\": 1.0", stdout);
        return;
    }
    pi_sparse_stats st = pi_sparse_get_stats(sp);
    printf("\"mode\": \"sparse\", \"sparsity_shift\": %g, \"active_fraction\": %.4f, "
           "\"active_fraction_per_layer\": [", pi_sparse_shift(sp), mean_fraction(&st, st.active));
    for (int il = 0; il < st.n_layer; il++)
        printf("%s%.4f", il ? ", " : "",
               st.tokens ? (double)st.active[il] / ((double)st.tokens * st.n_ff) : 1.0);
    if (pi_sparse_gate_floor(sp) > 0) {
        printf("], \"gate_floor\": %g, \"kept_fraction\": %.4f, \"kept_fraction_per_layer\": [",
               pi_sparse_gate_floor(sp), mean_fraction(&st, st.kept));
        for (int il = 0; il < st.n_layer; il++)
            printf("%s%.4f", il ? ", " : "",
                   st.tokens ? (double)st.kept[il] / ((double)st.tokens * st.n_ff) : 1.0);
    }
    printf("], \"predictor_time_share\": %.4f, \"ffn_time_share\": %.4f",
           seconds > 0 ? st.predictor_s / seconds : 0.0, seconds > 0 ? st.ffn_s / seconds : 0.0);
}

/* The sparse summary line on stderr. */
static void sparse_line(pi_ctx *ctx, double seconds, const char *what)
{
    pi_sparse *sp = pi_ctx_sparse(ctx);
    if (!sp)
        return;
    pi_sparse_stats st = pi_sparse_get_stats(sp);
    fprintf(stderr, "%s: sparse (shift %g): %.1f%% of FFN neurons computed", prog,
            pi_sparse_shift(sp), 100.0 * mean_fraction(&st, st.active));
    if (pi_sparse_gate_floor(sp) > 0)
        fprintf(stderr, ", %.1f%% past the gate floor %g", 100.0 * mean_fraction(&st, st.kept),
                pi_sparse_gate_floor(sp));
    fprintf(stderr, "; predictors %.1f%% of %s time\n",
            seconds > 0 ? 100.0 * st.predictor_s / seconds : 0.0, what);
}

/* How the GPU took part (after a comma; nothing on the CPU). */
static void gpu_json(pi_ctx *ctx)
{
    pi_gpu *g = pi_ctx_gpu(ctx);
    if (!g)
        return;
    static const char *const modes[] = { "whole", "offload", "hybrid" };
    pi_gpu_stats st = pi_gpu_get_stats(g);
    printf("\"gpu_mode\": \"%s\", \"gpu_layers\": %d, ", modes[pi_gpu_get_mode(g)],
           pi_gpu_layers(g));
    if (pi_gpu_get_mode(g) == PI_GPU_HYBRID)
        printf("\"hybrid_gpu_neuron_share\": %.4f, \"hybrid_cpu_s\": %.4f, "
               "\"hybrid_wait_s\": %.4f, ", st.hot + st.cold ?
               (double)st.hot / (double)(st.hot + st.cold) : 0.0, st.cold_s, st.wait_s);
}

/* "2 threads", or "GPU, 1.23 GiB" */
static const char *device_words(const pi_ctx *ctx, int threads)
{
    static char buf[64]; /* one caller at a time: the end-of-run line */
    uint64_t g = pi_ctx_gpu_memory(ctx);
    if (g)
        snprintf(buf, sizeof buf, "GPU, %.2f GiB", gib(g));
    else
        snprintf(buf, sizeof buf, "%d threads", threads);
    return buf;
}

static void ppl_progress(void *user, int w, int nw, const pi_ppl *p)
{
    (void)user;
    fprintf(stderr, "\r%s: window %d/%d, perplexity %.4f", prog, w, nw, p->ppl);
    if (w == nw)
        fputc('\n', stderr);
}

static int perplexity(run *r)
{
    size_t len, n;
    int32_t *ids;
    pi_err err;
    char *text = tool_read_text(prog, r->o->ppl_file, &len);
    if (!text)
        return 1;
    int rc = pi_tokenize(r->tok, text, len, pi_tokenizer_add_bos(r->tok), false, &ids, &n, &err);
    free(text);
    if (rc) {
        fprintf(stderr, "%s: %s: %s\n", prog, r->o->ppl_file, err.msg);
        return 1;
    }
    int win = pi_ctx_n_ctx(r->ctx);
    int stride = r->o->ppl_stride ? r->o->ppl_stride : win / 2;
    pi_ppl p;
    double t0 = now();
    bool show = !r->o->quiet && isatty(2);
    int score = r->o->ppl_score ? r->o->ppl_score : (stride < win ? stride : win / 2);
    int32_t *argmax = NULL;
    if (r->o->ppl_argmax && n >= (size_t)win &&
        !(argmax = malloc(((n - win) / stride + 1) * (size_t)score * sizeof *argmax))) {
        fprintf(stderr, "%s: out of memory\n", prog);
        free(ids);
        return 1;
    }
    rc = pi_perplexity(r->ctx, ids, (int64_t)n, win, stride, score, &p, argmax,
                       show ? ppl_progress : NULL, NULL, &err);
    double dt = now() - t0;
    free(ids);
    if (rc) {
        fprintf(stderr, "%s: %s: %s\n", prog, r->o->ppl_file, err.msg);
        free(argmax);
        return 1;
    }
    double top1 = p.n_scored ? (double)p.n_top1 / (double)p.n_scored : 0.0;
    if (r->o->json) {
        printf("{\"perplexity\": %.6f, \"nll\": %.6f, \"tokens_scored\": %" PRId64
               ", \"windows\": %d, \"context\": %d, \"stride\": %d, \"scored_per_window\": %d, "
               "\"tokens\": %zu, \"seconds\": %.3f, \"top1\": %.6f, ", p.ppl, p.nll, p.n_scored,
               p.n_windows, win, stride, score, n, dt, top1);
        if (argmax) {
            fputs("\"argmax_ids\": [", stdout);
            for (int64_t i = 0; i < p.n_scored; i++)
                printf("%s%d", i ? ", " : "", argmax[i]);
            fputs("], ", stdout);
        }
        sparse_json(r->ctx, dt);
        puts("}");
    } else {
        printf("perplexity: %.4f over %" PRId64 " tokens (%d windows of %d, stride %d, last %d "
               "scored; %.1f s); top-1 %.2f%%\n", p.ppl, p.n_scored, p.n_windows, win, stride,
               score, dt, 100.0 * top1);
        if (!r->o->quiet)
            sparse_line(r->ctx, dt, "perplexity");
    }
    free(argmax);
    return 0;
}

/* The prompt's token ids: raw text, or wrapped in the chat template. */
static int prompt_tokens(run *r, int32_t **ids, size_t *n)
{
    const opts *o = r->o;
    size_t len = 0;
    const char *file = o->prompt_file ? o->prompt_file : "-";
    char *text = o->prompt ? strdup(o->prompt) : tool_read_text(prog, file, &len);
    if (!text)
        return 1;
    len = strlen(text);
    pi_err err;
    bool bos = pi_tokenizer_add_bos(r->tok);
    if (o->chat) {
        if (!pi_tokenizer_has_chat(r->tok)) {
            fprintf(stderr, "%s: %s: the model has no ChatML chat template\n", prog, o->model);
            free(text);
            return 1;
        }
        pi_chat_msg msgs[2] = { { "system", o->system }, { "user", text } };
        char *chat;
        int rc = pi_chat_format(r->tok, o->system ? msgs : msgs + 1, o->system ? 2 : 1, true,
                                &chat, &len, &err);
        free(text);
        if (rc) {
            fprintf(stderr, "%s: %s\n", prog, err.msg);
            return 1;
        }
        text = chat;
    }
    int rc = pi_tokenize(r->tok, text, len, bos, o->chat || !o->no_special, ids, n, &err);
    free(text);
    if (rc) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        return 1;
    }
    if (*n == 0) {
        fprintf(stderr, "%s: the prompt is empty\n", prog);
        return 1;
    }
    if (*n >= (size_t)pi_ctx_n_ctx(r->ctx)) {
        fprintf(stderr, "%s: the prompt is %zu tokens, longer than the context of %d "
                "(raise --ctx-size)\n", prog, *n, pi_ctx_n_ctx(r->ctx));
        free(*ids);
        return 1;
    }
    return 0;
}

static void print_json(const char *text, size_t len, const int32_t *gen, size_t n_prompt,
                       double t_prompt, int n_gen, double t_gen, const run *r)
{
    fputs("{\"text\": ", stdout);
    pi_json_write_str(stdout, text, len);
    fputs(", \"token_ids\": [", stdout);
    for (int i = 0; i < n_gen; i++)
        printf("%s%d", i ? ", " : "", gen[i]);
    putchar(']');
    printf(", \"prompt_tokens\": %zu, \"prompt_tokens_per_s\": %.2f, \"generated_tokens\": %d, "
           "\"generation_tokens_per_s\": %.2f, \"threads\": %d, \"context\": %d, "
           "\"peak_rss_bytes\": %ld, ", n_prompt, n_prompt / t_prompt, n_gen,
           n_gen > 1 ? (n_gen - 1) / t_gen : 0.0, r->o->threads, pi_ctx_n_ctx(r->ctx),
           peak_rss_kb() * 1024);
    printf("\"device\": \"%s\", \"gpu_memory_bytes\": %llu, ",
           pi_ctx_gpu_memory(r->ctx) ? "gpu" : "cpu",
           (unsigned long long)pi_ctx_gpu_memory(r->ctx));
    gpu_json(r->ctx);
    sparse_json(r->ctx, t_gen);
    puts("}");
}

static int generate(run *r)
{
    const opts *o = r->o;
    int32_t *ids;
    size_t n;
    if (prompt_tokens(r, &ids, &n))
        return 1;
    pi_err err;
    int nv = r->m->hp.n_vocab;
    float *logits = malloc((size_t)nv * sizeof *logits);
    pi_sampler *s = pi_sampler_new(&o->sp, nv, &err);
    char *out = NULL;
    int32_t *gen = NULL; /* generated ids, for --json */
    size_t out_len = 0, out_cap = 0;
    int rc = 1, n_gen = 0;
    if (!logits || !s)
        goto done;
    for (size_t i = 0; i < n; i++)
        pi_sampler_accept(s, ids[i]);
    double t0 = now();
    if (pi_decode(r->ctx, ids, (int)n, logits, false, &err))
        goto fail;
    double t_prompt = now() - t0, t1 = now();
    if (pi_ctx_sparse(r->ctx)) /* the statistics describe generation */
        pi_sparse_reset_stats(pi_ctx_sparse(r->ctx));
    int limit = pi_ctx_n_ctx(r->ctx) - (int)n;
    if (o->n_predict >= 0 && o->n_predict < limit)
        limit = o->n_predict;
    if (o->json && !(gen = malloc(((size_t)limit + 1) * sizeof *gen)))
        goto done;
    for (; n_gen < limit; n_gen++) {
        int32_t t = pi_sample(s, logits);
        if (pi_token_is_eog(r->tok, t) && !o->ignore_eos)
            break;
        pi_sampler_accept(s, t);
        if (gen)
            gen[n_gen] = t;
        size_t plen;
        const char *piece = pi_token_piece(r->tok, t, &plen);
        if (pi_token_type(r->tok, t) == PI_TOKEN_CONTROL)
            plen = 0; /* <|im_end|> and kin are structure, not text */
        if (o->json) {
            if (out_len + plen + 1 > out_cap) {
                out_cap = 2 * (out_len + plen) + 64;
                char *no = realloc(out, out_cap);
                if (!no)
                    goto done;
                out = no;
            }
            memcpy(out + out_len, piece, plen);
            out_len += plen;
        } else {
            fwrite(piece, 1, plen, stdout);
            fflush(stdout);
        }
        if (n_gen + 1 < limit && pi_decode(r->ctx, &t, 1, logits, false, &err))
            goto fail;
    }
    double t_gen = now() - t1;
    if (o->json)
        print_json(out ? out : "", out_len, gen, n, t_prompt, n_gen, t_gen, r);
    else if (n_gen)
        putchar('\n');
    if (!o->quiet && !o->json)
        fprintf(stderr, "%s: prompt %zu tokens, %.1f tokens/s; generated %d tokens, "
                "%.1f tokens/s; %s; peak RSS %.1f MiB\n", prog, n, n / t_prompt, n_gen,
                n_gen > 1 ? (n_gen - 1) / t_gen : 0.0, device_words(r->ctx, o->threads),
                peak_rss_kb() / 1024.0);
    if (!o->quiet && !o->json && n_gen)
        sparse_line(r->ctx, t_gen, "generation");
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "%s: %s\n", prog, err.msg);
done:
    free(out);
    free(gen);
    free(logits);
    free(ids);
    pi_sampler_free(s);
    return rc;
}

static int default_ctx(const opts *o, const pi_model *m)
{
    if (o->ctx)
        return o->ctx;
    if (o->ppl_file)
        return 512;
    return m->hp.n_ctx_train < 4096 ? m->hp.n_ctx_train : 4096;
}

static void print_gpu_plan(const pi_gpu_plan *p)
{
    const char *names[] = { "attention", "ffn", "embeddings", "predictors", "kv_cache", "scratch" };
    uint64_t bytes[] = { p->attention, p->ffn, p->embeddings, p->predictors, p->kv, p->scratch };
    for (size_t i = 0; i < sizeof bytes / sizeof bytes[0]; i++)
        printf("  %-11s %14llu bytes %9.3f GiB\n", names[i], (unsigned long long)bytes[i],
               gib(bytes[i]));
    printf("  %-11s %14llu bytes %9.3f GiB\n", "total", (unsigned long long)p->total,
           gib(p->total));
}

/* Over budget: the layer offload or hybrid plan pi-run would run. */
static void gpu_fallback_plan(const opts *o, const pi_model *m, pi_gpu_params *gp)
{
    pi_err err;
    pi_gpu_mode mode;
    pi_gpu_plan p;
    int *hot = calloc((size_t)m->hp.n_layer, sizeof *hot);
    if (!hot || pi_gpu_fit(m, gp, o->offload, hot, &mode, &err) ||
        pi_gpu_plan_for(m, gp, &p, &err)) {
        printf("budget %.1f MiB: does not fit: %s\n", (double)o->vram / 1048576.0,
               hot ? err.msg : "out of memory");
        free(hot);
        return;
    }
    if (mode == PI_GPU_OFFLOAD) {
        printf("budget %.1f MiB: does not fit whole; layer offload: %d of %d layers on the GPU, "
               "the rest and the output on the CPU\n", (double)o->vram / 1048576.0,
               gp->n_layer_gpu, m->hp.n_layer);
    } else {
        int64_t held = 0;
        for (int il = 0; il < m->hp.n_layer; il++)
            held += hot[il];
        printf("budget %.1f MiB: does not fit whole; hybrid: attention on the GPU, %lld of %lld "
               "FFN neurons (the hottest of each layer) on the GPU, the rest on the CPU\n",
               (double)o->vram / 1048576.0, (long long)held,
               (long long)m->hp.n_ff * m->hp.n_layer);
    }
    print_gpu_plan(&p);
    free(hot);
}

/* --gpu --dry-run: what a full-GPU run allocates, by kind (and, over a
 * --vram budget, the plan that runs instead). */
static int gpu_plan(const opts *o, const pi_model *m)
{
    pi_gpu_params gp = { default_ctx(o, m), o->batch ? o->batch : 64, m->pred && !o->dense,
                         o->shift, o->vram, 0, NULL, NULL, NULL };
    pi_gpu_plan p;
    pi_err err;
    if (pi_gpu_plan_for(m, &gp, &p, &err)) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        return 1;
    }
    printf("GPU plan for %s (%s, context %d, batch %d)\n", o->model,
           gp.sparse ? "sparse" : "dense", gp.n_ctx, gp.n_batch);
    print_gpu_plan(&p);
    if (o->vram && p.total <= o->vram)
        printf("budget %.1f MiB: fits\n", (double)o->vram / 1048576.0);
    else if (o->vram)
        gpu_fallback_plan(o, m, &gp);
    printf("device: %s\n", pi_cuda_status());
    return 0;
}

/* --vram --dry-run: the plan a packed model's stored frequencies give. */
static int dry_run(const opts *o, const pi_model *m)
{
    if (o->gpu)
        return gpu_plan(o, m);
    int ctx = default_ctx(o, m);
    pi_placement_params pp = { o->vram, ctx, PI_PLACEMENT_KV_BYTES, PI_PLACEMENT_SCRATCH };
    pi_err err;
    if (pi_model_is_moe(m)) {
        pi_moe_placement mp;
        if (pi_moe_placement_plan_model(m, &pp, &mp, &err)) {
            fprintf(stderr, "%s: %s\n", prog, err.msg);
            return 1;
        }
        int rc = pi_moe_placement_print(&mp, stdout) ? 1 : 0;
        pi_moe_placement_free(&mp);
        return rc;
    }
    pi_placement pl;
    if (pi_placement_plan_model(m, &pp, &pl, &err)) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        return 1;
    }
    int rc = pi_placement_print(&pl, stdout) ? 1 : 0;
    pi_placement_free(&pl);
    return rc;
}

/* A context where the options ask for it: on the GPU, and with
 * --cpu-fallback on the CPU when the GPU cannot take it. */
static pi_ctx *new_ctx(run *r, pi_ctx_params *cp, pi_err *err)
{
    pi_ctx *c = pi_ctx_new(r->m, cp, err);
    if (c || !cp->gpu)
        return c;
    if (!r->o->cpu_fallback) {
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err->msg);
        pi_err_set(err, "GPU: %s", why);
        return NULL;
    }
    fprintf(stderr, "%s: warning: GPU: %s; running on the CPU\n", prog, err->msg);
    cp->gpu = false;
    return pi_ctx_new(r->m, cp, err);
}

int main(int argc, char **argv)
{
    opts o;
    pi_err err;
    pi_args args;
    int rc = tool_args(prog, argc, argv, &args, parse_args, &o);
    if (rc)
        return rc;
    run r = { .o = &o };
    r.m = pi_model_open(o.model, &err);
    if (r.m && o.dry_run) {
        rc = dry_run(&o, r.m);
        pi_model_close(r.m);
        return tool_exit(prog, &args, rc);
    }
    if (r.m && o.sparse_opt && !r.m->pred) {
        fprintf(stderr, "%s: --sparsity-shift, --gate-floor: %s has no predictors (pack it with "
                "pi-pack --predictors)\n", prog, o.model);
        pi_model_close(r.m);
        return tool_exit(prog, &args, 1);
    }
    if (r.m)
        r.tok = pi_tokenizer_load(r.m->gguf, &err);
    pi_ctx_params cp = { .n_ctx = o.ctx ? o.ctx : (o.ppl_file ? 512 : 0),
                         .n_threads = o.threads, .n_batch = o.batch, .dense = o.dense,
                         .sparsity_shift = o.shift, .gate_floor = o.gate_floor, .gpu = o.gpu,
                         .vram = o.vram, .offload_layers = o.offload };
    if (r.m && r.m->pack && !r.m->pred && !o.dense && !o.quiet)
        fprintf(stderr, "%s: %s is packed without predictors: running dense\n", prog, o.model);
    if (r.tok)
        r.ctx = new_ctx(&r, &cp, &err);
    if (!r.ctx) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        rc = 1;
    } else {
        rc = o.ppl_file ? perplexity(&r) : generate(&r);
    }
    pi_ctx_free(r.ctx);
    pi_tokenizer_free(r.tok);
    pi_model_close(r.m);
    return tool_exit(prog, &args, rc);
}
