/*
 * pi-profile: run the dense model over text, record every layer's FFN input
 * and activations into a trace, and measure how sparse the activations are.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "actstats.h"
#include "profile.h"
#include "tokenizer.h"
#include "tool.h"

static const char *prog = "pi-profile";
#define DEFAULT_MODEL "models/SmolLM2-135M-Instruct.Q4_1.gguf"
#define DEFAULT_EVERY 2

typedef struct opts {
    const char *model, *output, *stats, *layers;
    char **files;
    int n_files, threads, ctx, batch, every, level;
    int64_t tokens;
    uint64_t seed;
    bool stats_only, quiet;
} opts;

static void usage(FILE *f)
{
    fprintf(f,
        "Usage: %s [OPTION]... [FILE]...\n"
        "Run a model densely over text (the FILEs, or standard input; - is standard\n"
        "input) in windows of --ctx tokens, record each layer's FFN input and every\n"
        "neuron's activation magnitude into a trace (pi-trace(5)), and measure how\n"
        "many neurons carry 90/95/99%% of each token's activation mass.  The trace goes\n"
        "to -o FILE, or to standard output when that is not a terminal.\n"
        "\n"
        "  -m, --model FILE        GGUF model (default " DEFAULT_MODEL ")\n"
        "  -o, --output FILE       write the trace to FILE (- for standard output)\n"
        "      --tokens N          stop after N tokens of text (default: all)\n"
        "      --every K           record one token in K; the statistics still see\n"
        "                          every token (default %d)\n"
        "      --layers LIST       layers to record, e.g. 0-3,8,20- (default: all)\n"
        "  -c, --ctx N             window length in tokens (default 512)\n"
        "  -t, --threads N         threads (default: online CPUs)\n"
        "  -b, --batch-size N      tokens per forward pass (default 64)\n"
        "  -s, --seed N            which token of each K --every records (default 0)\n"
        "      --level N           zstd compression level, 1-19 (default 3)\n"
        "      --stats FILE        write per-layer statistics as YAML to FILE\n"
        "      --stats-only        no trace; the statistics go to --stats FILE or to\n"
        "                          standard output\n"
        "  -q, --quiet             no progress and no table on stderr\n"
        "      --config FILE       read options from a YAML file\n"
        "  -h, --help              show this help and exit\n"
        "\n"
        "Unless --quiet, a table of the neurons needed per token for 90/95/99%% of the\n"
        "activation mass in each layer is printed on stderr at the end.\n"
        "Exit status: 0 on success, 1 on a runtime error, 2 on a usage error.\n"
        "See pi-profile(1) and pi-trace(5).\n",
        prog, DEFAULT_EVERY);
}

static int num(const char *opt, const char *arg, double lo, double hi, double *out)
{
    return tool_num(prog, opt, arg, lo, hi, true, out);
}

static int parse_args(int argc, char **argv, void *opts_out)
{
    opts *o = opts_out;
    enum { TOKENS = 256, EVERY, LAYERS, LEVEL, STATS, STATS_ONLY };
    static const struct option lo[] = {
        { "model", 1, 0, 'm' }, { "output", 1, 0, 'o' }, { "tokens", 1, 0, TOKENS },
        { "every", 1, 0, EVERY }, { "layers", 1, 0, LAYERS }, { "ctx", 1, 0, 'c' },
        { "ctx-size", 1, 0, 'c' }, { "threads", 1, 0, 't' }, { "batch-size", 1, 0, 'b' },
        { "seed", 1, 0, 's' }, { "level", 1, 0, LEVEL }, { "stats", 1, 0, STATS },
        { "stats-only", 0, 0, STATS_ONLY }, { "quiet", 0, 0, 'q' }, { "help", 0, 0, 'h' },
        { 0, 0, 0, 0 },
    };
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    *o = (opts){ .model = DEFAULT_MODEL, .threads = cpus > 0 ? (int)cpus : 1, .ctx = 512,
                 .every = DEFAULT_EVERY, .level = 3 };
    int c;
    double v = 0;
    while ((c = getopt_long(argc, argv, "m:o:c:t:b:s:qh", lo, NULL)) != -1) {
        int rc = 0;
        switch (c) {
        case 'm': o->model = optarg; break;
        case 'o': o->output = optarg; break;
        case TOKENS: rc = num("tokens", optarg, 1, 1e15, &v); o->tokens = (int64_t)v; break;
        case EVERY: rc = num("every", optarg, 1, 1 << 20, &v); o->every = (int)v; break;
        case LAYERS: o->layers = optarg; break;
        case 'c': rc = num("ctx", optarg, 2, 1 << 20, &v); o->ctx = (int)v; break;
        case 't': rc = num("threads", optarg, 1, 512, &v); o->threads = (int)v; break;
        case 'b': rc = num("batch-size", optarg, 1, 8192, &v); o->batch = (int)v; break;
        case 's': rc = num("seed", optarg, 0, 1.8e19, &v); o->seed = (uint64_t)v; break;
        case LEVEL: rc = num("level", optarg, 1, 19, &v); o->level = (int)v; break;
        case STATS: o->stats = optarg; break;
        case STATS_ONLY: o->stats_only = true; break;
        case 'q': o->quiet = true; break;
        case 'h': usage(stdout); exit(0);
        default: return 2;
        }
        if (rc)
            return 2;
    }
    if (o->stats_only && o->output) {
        fprintf(stderr, "%s: --stats-only writes no trace, so -o makes no sense\n", prog);
        return 2;
    }
    o->files = argv + optind;
    o->n_files = argc - optind;
    return 0;
}

/* --- progress --- */

static volatile sig_atomic_t interrupted;
static void on_signal(int sig) { interrupted = sig; }

typedef struct progress {
    int64_t total;
    double t0, last;
    bool show;
} progress;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int show_progress(void *user, int64_t done)
{
    progress *pr = user;
    double t = now();
    if (pr->show && (t - pr->last > 0.2 || done == pr->total)) {
        pr->last = t;
        double rate = (double)done / (t - pr->t0 > 1e-9 ? t - pr->t0 : 1e-9);
        double eta = rate > 0 ? (double)(pr->total - done) / rate : 0;
        int w = 30, fill = pr->total ? (int)(w * done / pr->total) : w;
        fprintf(stderr, "\r[%.*s%*s] %lld/%lld tokens  %.0f tok/s  ETA %d:%02d ", fill,
                "##############################", w - fill, "", (long long)done,
                (long long)pr->total, rate, (int)eta / 60, (int)eta % 60);
    }
    return interrupted != 0;
}

/* --- input --- */

typedef struct text {
    const char *name;
    int32_t *ids;
    size_t n;
} text;

/* Tokenizes every input; the total number of tokens, or -1 (reported). */
static int64_t load_texts(const opts *o, const pi_tokenizer *tk, text *texts)
{
    int64_t total = 0;
    for (int i = 0; i < o->n_files; i++) {
        char *buf;
        size_t len;
        pi_err err;
        texts[i].name = strcmp(o->files[i], "-") ? o->files[i] : "(stdin)";
        if (!(buf = tool_read_text(prog, o->files[i], &len)))
            return -1;
        int rc = pi_tokenize(tk, buf, len, false, false, &texts[i].ids, &texts[i].n, &err);
        free(buf);
        if (rc) {
            fprintf(stderr, "%s: %s: %s\n", prog, texts[i].name, err.msg);
            return -1;
        }
        total += (int64_t)texts[i].n;
    }
    return total;
}

/* --- output --- */

static void print_table(const pi_actstats *st, const pi_model *m)
{
    int ff = (int)pi_profile_n_ff(m); /* a mixture of experts: all experts' neurons */
    fprintf(stderr, "\nneurons needed per token to keep 90/95/99%% of the activation mass "
                    "(mean, of %d)\n", ff);
    fprintf(stderr, "                                              share of firings carried\n"
                    "                                              by the top 10%% of neurons\n"
                    "layer      90%%           95%%           99%%          at 90%%   at 99%%\n");
    double sum[PI_ACTSTATS_LEVELS] = { 0 };
    for (int il = 0; il < m->hp.n_layer; il++) {
        pi_actstats_summary s;
        pi_err err;
        if (pi_actstats_summary_get(st, il, &s, &err))
            continue;
        fprintf(stderr, "%5d", il);
        for (int lv = 0; lv < PI_ACTSTATS_LEVELS; lv++) {
            fprintf(stderr, "  %5.0f %5.1f%%", s.needed_mean[lv] * ff, 100 * s.needed_mean[lv]);
            sum[lv] += s.needed_mean[lv];
        }
        fprintf(stderr, "       %5.1f%%  %5.1f%%\n", 100 * s.firing_share_top10[0],
                100 * s.firing_share_top10[2]);
    }
    fprintf(stderr, " mean");
    for (int lv = 0; lv < PI_ACTSTATS_LEVELS; lv++)
        fprintf(stderr, "  %5.0f %5.1f%%", sum[lv] / m->hp.n_layer * ff,
                100 * sum[lv] / m->hp.n_layer);
    fprintf(stderr, "\n");
}

/* A mixture of experts: how concentrated the routing is, and how many of
 * the chosen experts' neurons a token needs. */
static void print_experts(const pi_actstats *st, const pi_expertstats *es, const pi_model *m)
{
    const pi_hparams *hp = &m->hp;
    double active = (double)hp->n_expert_used * hp->n_ff_exp;
    double row = (double)hp->n_expert * hp->n_ff_exp;
    fprintf(stderr, "\nexperts: %d per token of %d; share of routings served by the most used "
            "10%% / 25%% of experts,\nand neurons needed of the %.0f in the chosen experts "
            "(mean, 90/95/99%% of the mass)\nlayer   top 10%%  top 25%%  unused      90%%     "
            "95%%     99%%\n", hp->n_expert_used, hp->n_expert, active);
    double sum[5] = { 0 };
    for (int il = 0; il < hp->n_layer; il++) {
        pi_expertstats_summary e;
        pi_actstats_summary s;
        pi_err err;
        if (pi_expertstats_summary_get(es, il, &e) || pi_actstats_summary_get(st, il, &s, &err))
            continue;
        double f[5] = { e.top10_share, e.top25_share, s.needed_mean[0] * row / active,
                        s.needed_mean[1] * row / active, s.needed_mean[2] * row / active };
        fprintf(stderr, "%5d   %5.1f%%   %5.1f%%   %5.1f%%   %5.1f%%  %5.1f%%  %5.1f%%\n", il,
                100 * f[0], 100 * f[1], 100 * e.unused, 100 * f[2], 100 * f[3], 100 * f[4]);
        for (int i = 0; i < 5; i++)
            sum[i] += f[i];
    }
    fprintf(stderr, " mean   %5.1f%%   %5.1f%%             %5.1f%%  %5.1f%%  %5.1f%%\n",
            100 * sum[0] / hp->n_layer, 100 * sum[1] / hp->n_layer, 100 * sum[2] / hp->n_layer,
            100 * sum[3] / hp->n_layer, 100 * sum[4] / hp->n_layer);
}

static int stats_write(tool_out *sf, const opts *o, const pi_actstats *st,
                       const pi_expertstats *es, const pi_model *m)
{
    char arch[64] = "";
    pi_gguf_get_cstr(m->gguf, "general.architecture", arch, sizeof arch);
    pi_actstats_meta meta = { o->model, pi_gguf_fingerprint(m->gguf), arch, 0 };
    meta.ctx = o->ctx < m->hp.n_ctx_train ? o->ctx : m->hp.n_ctx_train;
    pi_err err;
    const char *name = sf->path ? sf->path : "(stdout)";
    if (pi_actstats_write_yaml(st, &meta, sf->f, name, &err) ||
        (es && pi_expertstats_write_yaml(es, sf->f, name, &err))) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        return -1;
    }
    if (fflush(sf->f) || ferror(sf->f)) {
        fprintf(stderr, "%s: %s: %s\n", prog, name, strerror(errno));
        return -1;
    }
    return 0;
}

/* --- the run --- */

static int profile(const opts *o, pi_model *m, const pi_tokenizer *tk, const text *texts,
                   int64_t total)
{
    bool *layers = NULL;
    if (o->layers) {
        if (!(layers = calloc((size_t)m->hp.n_layer, sizeof *layers)) ||
            tool_layers(prog, o->layers, m->hp.n_layer, layers)) {
            free(layers);
            return 2;
        }
    }
    pi_err err;
    bool moe = pi_model_is_moe(m);
    if (moe && !o->stats_only) {
        fprintf(stderr, "%s: %s: a mixture of experts: pi-profile writes its statistics only "
                "(--stats-only); traces of experts are not written yet\n", prog, o->model);
        free(layers);
        return 1;
    }
    pi_actstats *st = pi_actstats_new(m->hp.n_layer, (int)pi_profile_n_ff(m), &err);
    pi_expertstats *es = NULL;
    if (st && moe && !(es = pi_expertstats_new(m->hp.n_layer, m->hp.n_expert,
                                               m->hp.n_expert_used, &err))) {
        pi_actstats_free(st);
        st = NULL;
    }
    pi_trace_writer *tw = NULL;
    pi_profile *pf = NULL;
    progress pr = { o->tokens && o->tokens < total ? o->tokens : total, now(), 0,
                    !o->quiet && isatty(2) };
    pi_profile_params pp = { .ctx = o->ctx, .batch = o->batch, .threads = o->threads,
                             .every = o->every, .seed = o->seed, .max_tokens = o->tokens,
                             .layers = layers, .stats = st, .experts = es,
                             .progress = show_progress,
                             .user = &pr, .bos = -1 };
    tool_out sf = { 0 };
    bool want_stats = o->stats || o->stats_only;
    int rc = 1;
    if (!st)
        goto fail;
    if (want_stats && tool_out_open(prog, &sf, o->stats))
        goto done;
    if (pi_tokenizer_add_bos(tk))
        pp.bos = pi_tokenizer_bos(tk);
    if (!o->stats_only) {
        pi_trace_info info;
        pi_profile_trace_info(m, &pp, &info);
        if (!(tw = pi_trace_writer_open(o->output ? o->output : "-", &info, o->level, &err)))
            goto fail;
        pp.trace = tw;
    }
    if (!(pf = pi_profile_new(m, &pp, &err)))
        goto fail;
    for (int i = 0; i < o->n_files && !pi_profile_done(pf); i++)
        if (pi_profile_text(pf, texts[i].ids, texts[i].n, &err))
            goto fail;
    double secs = now() - pr.t0;
    if (pr.show)
        fprintf(stderr, "\n");
    uint64_t bytes = tw ? pi_trace_writer_bytes(tw) : 0;
    /* The statistics are complete on disk before the trace is put in place,
     * and put in place after it: a failure leaves neither. */
    if (want_stats && stats_write(&sf, o, st, es, m))
        goto done;
    if (tw) {
        int crc = pi_trace_writer_commit(tw, &err);
        tw = NULL;
        if (crc)
            goto fail;
    }
    if (want_stats && tool_out_close(prog, &sf, true)) {
        if (o->output && strcmp(o->output, "-"))
            unlink(o->output);
        goto done;
    }
    rc = 0;
    if (!o->quiet) {
        int64_t n = pi_profile_tokens(pf), r = pi_profile_recorded(pf);
        fprintf(stderr, "%s: %lld tokens in %.1f s (%.1f tok/s)", prog, (long long)n, secs,
                (double)n / (secs > 0 ? secs : 1));
        if (!o->stats_only)
            fprintf(stderr, ", %lld recorded, trace %.1f MiB (%.0f bytes per recorded token)",
                    (long long)r, (double)bytes / (1 << 20), r ? (double)bytes / (double)r : 0.0);
        fprintf(stderr, "\n");
        print_table(st, m);
        if (es)
            print_experts(st, es, m);
    }
    goto done;
fail:
    if (pr.show)
        fprintf(stderr, "\n");
    fprintf(stderr, "%s: %s\n", prog, err.msg);
done:
    tool_out_close(prog, &sf, false);
    pi_trace_writer_abort(tw);
    pi_profile_free(pf);
    pi_actstats_free(st);
    pi_expertstats_free(es);
    free(layers);
    return rc;
}

int main(int argc, char **argv)
{
    opts o;
    pi_args args;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    int rc = tool_args(prog, argc, argv, &args, parse_args, &o);
    if (rc)
        return rc;
    static char *stdin_only[] = { "-" };
    if (o.n_files == 0) {
        o.files = stdin_only;
        o.n_files = 1;
    }
    if (tool_binary_to_tty(prog, !o.stats_only && !o.output, "a binary trace"))
        return tool_exit(prog, &args, 2);
    pi_err err;
    pi_model *m = pi_model_open(o.model, &err);
    if (!m) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        return tool_exit(prog, &args, 1);
    }
    text *texts = calloc((size_t)o.n_files, sizeof *texts);
    pi_tokenizer *tk = texts ? pi_tokenizer_load(m->gguf, &err) : NULL;
    int64_t total = tk ? load_texts(&o, tk, texts) : -1;
    if (!tk)
        fprintf(stderr, "%s: %s\n", prog, texts ? err.msg : "out of memory");
    if (total == 0)
        fprintf(stderr, "%s: no text to profile (the input is empty)\n", prog);
    rc = total > 0 ? profile(&o, m, tk, texts, total) : 1;
    pi_tokenizer_free(tk);
    for (int i = 0; texts && i < o.n_files; i++)
        free(texts[i].ids);
    free(texts);
    pi_model_close(m);
    return tool_exit(prog, &args, rc);
}
