/*
 * pi-pack: combine a model, its predictors and its activation statistics
 * into one packed GGUF for sparse inference, and plan GPU placement.
 */
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "actstats.h"
#include "pack.h"
#include "tool.h"

static const char *prog = "pi-pack";
#define DEFAULT_MODEL "models/SmolLM2-135M-Instruct.Q4_1.gguf"

typedef struct opts {
    const char *model, *predictors, *stats, *output, *down_type;
    double level;
    uint64_t vram;
    int ctx;
    bool has_vram, dry_run, quiet;
} opts;

static void usage(FILE *f)
{
    fprintf(f,
        "Usage: %s [OPTION]... --stats STATS.yaml --predictors PRED.gguf -o OUT.gguf\n"
        "Write a packed model: each layer's FFN neurons reordered hottest first (by the\n"
        "firing frequencies pi-profile measured), the down projection stored neuron-major\n"
        "for the sparse kernels, and the predictors from pi-train-predictor with their\n"
        "outputs in the same order.  With --vram, also plan which neurons go to a GPU.\n"
        "A mixture of experts (qwen2moe, qwen3moe) is packed with its experts ordered\n"
        "by how often the router chose them (the statistics' experts section), most\n"
        "used first, and each expert's neurons hottest first; it takes no predictors\n"
        "and no --vram.\n"
        "\n"
        "  -m, --model FILE        the model to pack (default " DEFAULT_MODEL ")\n"
        "      --predictors FILE   predictors trained for the model (without them the\n"
        "                          packed model runs dense only)\n"
        "      --stats FILE        activation statistics from pi-profile --stats\n"
        "  -o, --output FILE       the packed GGUF (- for standard output)\n"
        "      --down-type TYPE    quant type of the neuron-major down projection: q8_0,\n"
        "                          q5_1, q4_1, f16, ... (default: q8_0 for a quantised\n"
        "                          model, its own type for a float one; see pi-pack(1)\n"
        "                          for what each costs in perplexity)\n"
        "      --level Q           order by firing frequency at activation mass Q: 0.9,\n"
        "                          0.95 or 0.99 (default: the predictors' keep-mass, else\n"
        "                          0.99)\n"
        "      --vram SIZE         plan GPU placement for SIZE bytes of device memory\n"
        "                          (e.g. 6G, 512M) and store it as the file's default plan\n"
        "      --ctx N             context the plan reserves a KV cache for (default: the\n"
        "                          model's training context, at most 4096)\n"
        "      --dry-run           print what would be written, and the plan with --vram;\n"
        "                          write nothing\n"
        "  -q, --quiet             no progress and no summary on stderr\n"
        "      --config FILE       read options from a YAML file\n"
        "  -h, --help              show this help and exit\n"
        "\n"
        "The output is a pure function of the inputs: packing again gives the same bytes.\n"
        "Exit status: 0 on success, 1 on a runtime error, 2 on a usage error.\n"
        "See pi-pack(1) and pi-gguf(5).\n",
        prog);
}

static int parse_args(int argc, char **argv, void *opts_out)
{
    opts *o = opts_out;
    enum { PRED = 256, STATS, DOWN, LEVEL, VRAM, CTX, DRY };
    static const struct option lo[] = {
        { "model", 1, 0, 'm' }, { "predictors", 1, 0, PRED }, { "stats", 1, 0, STATS },
        { "output", 1, 0, 'o' }, { "down-type", 1, 0, DOWN }, { "level", 1, 0, LEVEL },
        { "vram", 1, 0, VRAM }, { "ctx", 1, 0, CTX }, { "dry-run", 0, 0, DRY },
        { "quiet", 0, 0, 'q' }, { "help", 0, 0, 'h' }, { 0, 0, 0, 0 },
    };
    *o = (opts){ .model = DEFAULT_MODEL, .level = -1, .ctx = -1 };
    int c;
    double v = 0;
    while ((c = getopt_long(argc, argv, "m:o:qh", lo, NULL)) != -1) {
        int rc = 0;
        switch (c) {
        case 'm': o->model = optarg; break;
        case PRED: o->predictors = optarg; break;
        case STATS: o->stats = optarg; break;
        case 'o': o->output = optarg; break;
        case DOWN: o->down_type = optarg; break;
        case LEVEL: {
            char *end;
            v = strtod(optarg, &end);
            o->level = -2;
            for (int lv = 0; lv < PI_ACTSTATS_LEVELS; lv++)
                if (*optarg && !*end && fabs(v - pi_actstats_levels[lv]) < 1e-9)
                    o->level = lv;
            if (o->level == -2) {
                fprintf(stderr, "%s: --level: '%s' is not one of 0.9, 0.95, 0.99\n", prog,
                        optarg);
                rc = -1;
            }
            break;
        }
        case VRAM:
            if (pi_parse_size(optarg, &o->vram)) {
                fprintf(stderr, "%s: --vram: '%s' is not a size like 6G, 512M or 1.5GiB\n",
                        prog, optarg);
                rc = -1;
            }
            o->has_vram = true;
            break;
        case CTX: rc = tool_num(prog, "ctx", optarg, 0, 1 << 24, true, &v); o->ctx = (int)v;
            break;
        case DRY: o->dry_run = true; break;
        case 'q': o->quiet = true; break;
        case 'h': usage(stdout); exit(0);
        default: return 2;
        }
        if (rc)
            return 2;
    }
    if (tool_no_operands(prog, argc, argv))
        return 2;
    if (!o->stats) {
        fprintf(stderr, "%s: no statistics: give --stats STATS.yaml (from pi-profile --stats)\n",
                prog);
        return 2;
    }
    if (!o->output && !o->dry_run) {
        fprintf(stderr, "%s: no output: give -o OUT.gguf (- for standard output)\n", prog);
        return 2;
    }
    if (o->output && o->dry_run) {
        fprintf(stderr, "%s: --dry-run writes nothing; drop -o\n", prog);
        return 2;
    }
    return 0;
}

static volatile sig_atomic_t interrupted;
static void on_signal(int sig) { interrupted = sig; }

static int on_layer(void *user, int done, int n_layer)
{
    if (*(const bool *)user)
        fprintf(stderr, "\r%s: layer %d of %d", prog, done, n_layer);
    return interrupted != 0;
}

static pi_actstats_file *read_stats(const char *path)
{
    size_t len;
    char *text = tool_read_text(prog, path, &len);
    if (!text)
        return NULL;
    pi_actstats_file *f = calloc(1, sizeof *f);
    pi_err err;
    if (f && pi_actstats_read_yaml(text, len, path, f, &err)) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        pi_actstats_file_free(f);
        free(f);
        f = NULL;
    } else if (!f) {
        fprintf(stderr, "%s: out of memory\n", prog);
    }
    free(text);
    return f;
}

static void describe_moe(const pi_pack *pk, FILE *f)
{
    float lo = 1.0f, hi = 0.0f; /* the most used expert's share, over the layers */
    for (int il = 0; il < pk->n_layer; il++) {
        float u = pk->usage[(size_t)il * (size_t)pk->n_expert];
        lo = u < lo ? u : lo;
        hi = u > hi ? u : hi;
    }
    fprintf(f, "%d layers of %d experts of %d neurons; experts ordered by use (the most used "
               "serves %.1f%% to %.1f%% of a layer's routings), neurons in each by firing "
               "frequency at %g of the activation mass (%llu tokens); down projections "
               "neuron-major in %s; no predictors (the packed model runs dense)\n",
            pk->n_layer, pk->n_expert, pk->n_ff_exp, 100.0 * lo, 100.0 * hi,
            pi_actstats_levels[pk->level], (unsigned long long)pk->stats_tokens,
            pi_type_name(pk->down_type));
}

static void describe(const pi_pack *pk, const pi_predictor *pred, FILE *f)
{
    if (pk->n_expert) {
        describe_moe(pk, f);
        return;
    }
    int trained = 0, rank = 0;
    for (int il = 0; pred && il < pk->n_layer; il++) {
        pi_predictor_layer L;
        pi_predictor_get_layer(pred, il, &L);
        trained += L.rank > 0;
        rank = L.rank > rank ? L.rank : rank;
    }
    fprintf(f, "%d layers of %d neurons ordered by firing frequency at %g of the activation "
               "mass (%llu tokens); down projection neuron-major in %s; ",
            pk->n_layer, pk->n_ff, pi_actstats_levels[pk->level],
            (unsigned long long)pk->stats_tokens, pi_type_name(pk->down_type));
    if (pred)
        fprintf(f, "predictors for %d layers (rank up to %d)\n", trained, rank);
    else
        fprintf(f, "no predictors (the packed model runs dense)\n");
}

static int pack(const opts *o, const pi_model *m, const pi_predictor *pred,
                const pi_actstats_file *st)
{
    pi_err err;
    int down = -1;
    if (o->down_type && (down = pi_type_from_name(o->down_type)) < 0) {
        fprintf(stderr, "%s: --down-type: unknown type '%s'\n", prog, o->down_type);
        return 2;
    }
    pi_pack_params pp = { down, (int)o->level, o->stats, o->predictors };
    pi_pack pk;
    if (pi_pack_prepare(&pk, m, pred, st, &pp, &err)) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        return 1;
    }
    pi_placement plan = { 0 };
    int rc = 1;
    if (o->has_vram) {
        int ctx = o->ctx >= 0 ? o->ctx : m->hp.n_ctx_train < 4096 ? m->hp.n_ctx_train : 4096;
        pi_placement_params prm = { o->vram, ctx, PI_PLACEMENT_KV_BYTES, PI_PLACEMENT_SCRATCH };
        if (pi_pack_placement(&pk, &prm, &plan, &err)) {
            fprintf(stderr, "%s: %s\n", prog, err.msg);
            goto done;
        }
    }
    if (o->dry_run) {
        printf("%s: ", o->model);
        describe(&pk, pred, stdout);
        if (o->has_vram && pi_placement_print(&plan, stdout))
            goto done;
        rc = 0;
        goto done;
    }
    bool show = !o->quiet && isatty(2);
    if (pi_pack_write(&pk, o->has_vram ? &plan : NULL, o->output, on_layer, &show, &err)) {
        fprintf(stderr, "%s%s: %s\n", show ? "\n" : "", prog, err.msg);
        goto done;
    }
    if (show)
        fprintf(stderr, "\n");
    if (!o->quiet) {
        struct stat sb;
        fprintf(stderr, "%s: wrote %s", prog, strcmp(o->output, "-") ? o->output : "stdout");
        if (strcmp(o->output, "-") && !stat(o->output, &sb))
            fprintf(stderr, " (%.1f MiB)", (double)sb.st_size / (1 << 20));
        fprintf(stderr, ": ");
        describe(&pk, pred, stderr);
        if (o->has_vram)
            pi_placement_print(&plan, stderr);
    }
    rc = 0;
done:
    pi_placement_free(&plan);
    pi_pack_free(&pk);
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
    if (tool_binary_to_tty(prog, o.output && !strcmp(o.output, "-"), "a binary GGUF"))
        return tool_exit(prog, &args, 2);
    pi_err err;
    pi_model *m = pi_model_open(o.model, &err);
    pi_predictor *pred = NULL;
    pi_actstats_file *st = NULL;
    rc = 1;
    if (!m)
        fprintf(stderr, "%s: %s\n", prog, err.msg);
    else if (o.predictors && pi_model_is_moe(m))
        fprintf(stderr, "%s: %s: a mixture of experts has no predictors to pack (drop "
                "--predictors %s)\n", prog, o.model, o.predictors);
    else if (o.predictors && !(pred = pi_predictor_load(o.predictors, &err)))
        fprintf(stderr, "%s: %s\n", prog, err.msg);
    else if ((st = read_stats(o.stats)))
        rc = pack(&o, m, pred, st);
    pi_actstats_file_free(st);
    free(st);
    pi_predictor_free(pred);
    pi_model_close(m);
    return tool_exit(prog, &args, rc);
}
