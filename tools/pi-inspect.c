/*
 * pi-inspect: print what is in a GGUF file (header, metadata, tensor table),
 * as text for people or as JSON for scripts.
 */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "json.h"
#include "packinfo.h"
#include "predictor.h"
#include "quant.h"
#include "tool.h"

static const char *prog = "pi-inspect";

typedef struct opts {
    bool json, meta, tensors;
    uint64_t max_array; /* 0: every element */
    const char *key;
    const char *path;
} opts;

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: %s [OPTION]... [FILE]\n"
            "Print the header, metadata and tensor table of a GGUF file.\n"
            "With no FILE, or when FILE is -, read standard input.\n"
            "\n"
            "  -j, --json            print one JSON object instead of text\n"
            "  -k, --key KEY         print only the value of metadata key KEY\n"
            "  -a, --max-array N     show at most N elements of each array (default 8;\n"
            "                        0 shows all)\n"
            "      --full            same as --max-array 0\n"
            "      --no-meta         leave out the metadata\n"
            "      --no-tensors      leave out the tensor table\n"
            "      --config FILE     read options from a YAML file (flags given here\n"
            "                        override it)\n"
            "  -h, --help            show this help and exit\n"
            "\n"
            "Exit status: 0 on success, 1 if the file cannot be read or is not valid\n"
            "GGUF (one line on stderr names the file and the problem), 2 on a usage\n"
            "error.  See pi-inspect(1).\n",
            prog);
}

static void print_str(FILE *f, pi_gguf_str s, bool json)
{
    if (json) {
        pi_json_write_str(f, s.ptr, s.len);
        return;
    }
    /* Text mode shows control bytes escaped so one value stays on one line. */
    fputc('"', f);
    for (uint64_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c == '\n')
            fputs("\\n", f);
        else if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            fprintf(f, "\\x%02x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void print_value(FILE *f, const pi_gguf_value *v, const opts *o);

static void print_array(FILE *f, const pi_gguf_arr *a, const opts *o)
{
    uint64_t shown = o->max_array && a->n > o->max_array ? o->max_array : a->n;
    fputc('[', f);
    for (uint64_t i = 0; i < shown; i++) {
        pi_gguf_value e = pi_gguf_arr_at(a, i);
        fputs(i ? ", " : "", f);
        print_value(f, &e, o);
    }
    if (shown < a->n && !o->json)
        fprintf(f, ", ... (%" PRIu64 " more)", a->n - shown);
    fputc(']', f);
}

static void print_value(FILE *f, const pi_gguf_value *v, const opts *o)
{
    switch (v->type) {
    case PI_GGUF_STR: print_str(f, v->v.str, o->json); break;
    case PI_GGUF_ARR: print_array(f, &v->v.arr, o); break;
    case PI_GGUF_BOOL: fputs(v->v.b ? "true" : "false", f); break;
    case PI_GGUF_F32: case PI_GGUF_F64: pi_json_write_num(f, v->v.f64); break;
    case PI_GGUF_I8: case PI_GGUF_I16: case PI_GGUF_I32: case PI_GGUF_I64:
        fprintf(f, "%" PRId64, v->v.i64);
        break;
    default: fprintf(f, "%" PRIu64, v->v.u64); break;
    }
}

static void type_label(char *buf, size_t n, const pi_gguf_value *v)
{
    if (v->type == PI_GGUF_ARR)
        snprintf(buf, n, "arr[%s,%" PRIu64 "]", pi_gguf_type_name(v->v.arr.type), v->v.arr.n);
    else
        snprintf(buf, n, "%s", pi_gguf_type_name(v->type));
}

static void shape(char *buf, size_t n, const pi_gguf_tensor *t)
{
    int k = 0;
    for (uint32_t d = 0; d < t->n_dims && k >= 0 && (size_t)k < n; d++)
        k += snprintf(buf + k, n - (size_t)k, d ? " x %" PRId64 : "%" PRId64, t->ne[d]);
}

static void print_predictor_layers(const pi_predictor *p)
{
    pi_predictor_meta m = pi_predictor_get_meta(p);
    int d = pi_predictor_n_embd(p), ff = pi_predictor_n_ff(p);
    if (isfinite(m.keep_mass))
        printf("  labels:     neurons keeping %g of each token's activation mass\n", m.keep_mass);
    if (isfinite(m.label_threshold))
        printf("  labels:     activation magnitude above %g\n", m.label_threshold);
    if (isfinite(m.recall_target))
        printf("  recall:     %g by mass, thresholds set for it\n", m.recall_target);
    printf("  weights:    %s\n", pi_type_name(pi_predictor_wtype(p)));
    printf("  %5s %5s %12s %10s %8s\n", "layer", "rank", "threshold", "params", "of FFN");
    for (int il = 0; il < pi_predictor_n_layer(p); il++) {
        pi_predictor_layer l;
        if (pi_predictor_get_layer(p, il, &l) || !l.rank)
            continue;
        int64_t params = (int64_t)l.rank * (d + ff + 1) + ff;
        printf("  %5d %5d %12.6g %10" PRId64 " %7.1f%%\n", il, l.rank, l.threshold, params,
               100.0 * (double)params / (3.0 * d * ff));
    }
}

/* The pi section of a predictor file (pi-train-predictor's output), read
 * through the predictor loader so that what is shown has been checked.
 * Returns -1 (after saying why) when the section is not valid. */
static int print_predictor(const pi_gguf *g)
{
    char arch[32];
    if (pi_gguf_get_cstr(g, "general.architecture", arch, sizeof arch) ||
        strcmp(arch, PI_PREDICTOR_ARCH))
        return 0;
    pi_err err;
    pi_predictor *p = pi_predictor_from_gguf(g, &err);
    if (!p) {
        printf("pi predictor: not valid: %s\n", err.msg);
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        return -1;
    }
    printf("pi predictor: for the model with fingerprint %016" PRIx64 " (%d layers, %d x %d)\n",
           pi_predictor_fingerprint(p), pi_predictor_n_layer(p), pi_predictor_n_embd(p),
           pi_predictor_n_ff(p));
    print_predictor_layers(p);
    pi_predictor_free(p);
    return 0;
}

static int arch_int(const pi_gguf *g, const char *key, uint32_t *out)
{
    char arch[32], k[96];
    if (pi_gguf_get_cstr(g, "general.architecture", arch, sizeof arch))
        return -1;
    snprintf(k, sizeof k, "%s.%s", arch, key);
    return pi_gguf_get_u32(g, k, out);
}

/* A dense layer's frequencies: how skewed the order is. */
static void print_neurons(const pi_packinfo *pk)
{
    printf("  %5s %8s %8s %8s %9s %12s\n", "layer", "hottest", "median", "coldest",
           "fire>50%", "top10% share");
    for (int il = 0; il < pk->n_layer; il++) {
        const float *f = pi_packinfo_freq(pk, il);
        double all = 0, top = 0;
        int half = 0, k10 = (pk->n_ff + 9) / 10;
        for (int j = 0; j < pk->n_ff; j++) {
            all += f[j];
            top += j < k10 ? f[j] : 0;
            half += f[j] > 0.5f;
        }
        printf("  %5d %8.4f %8.4f %8.4f %9d %11.1f%%\n", il, f[0], f[pk->n_ff / 2],
               f[pk->n_ff - 1], half, all > 0 ? 100.0 * top / all : 0.0);
    }
}

/* A mixture of experts' layers: the order of the experts (source indices,
 * most used first, up to 8) and how concentrated their use is. */
static void print_experts(const pi_packinfo *pk)
{
    int E = pk->n_expert, k10 = (E + 9) / 10, k25 = (E + 3) / 4;
    printf("  %5s %8s %8s %12s %12s %7s  %s\n", "layer", "most", "least", "top10% share",
           "top25% share", "unused", "experts, most used first");
    for (int il = 0; il < pk->n_layer; il++) {
        const float *u = pi_packinfo_usage(pk, il);
        const uint32_t *perm = pi_packinfo_perm(pk, il);
        double top10 = 0, top25 = 0;
        int unused = 0;
        for (int x = 0; x < E; x++) {
            top10 += x < k10 ? u[x] : 0;
            top25 += x < k25 ? u[x] : 0;
            unused += u[x] == 0.0f;
        }
        printf("  %5d %8.4f %8.4f %11.1f%% %11.1f%% %7d  ", il, u[0], u[E - 1], 100.0 * top10,
               100.0 * top25, unused);
        for (int x = 0; x < E && x < 8; x++)
            printf("%s%u", x ? " " : "", perm[(size_t)x * (size_t)pk->n_ff_exp] /
                                             (uint32_t)pk->n_ff_exp);
        printf("%s\n", E > 8 ? " ..." : "");
    }
}

/* The section's shape from the model's own keys, then the section itself,
 * checked by the reader pi-run uses. */
static int read_packed(const pi_gguf *g, pi_packinfo *pk, pi_err *err)
{
    uint32_t n_layer = 0, n_ff = 0, n_expert = 0, n_ff_exp = 0;
    if (!arch_int(g, "expert_count", &n_expert)) {
        if (arch_int(g, "block_count", &n_layer) ||
            arch_int(g, "expert_feed_forward_length", &n_ff_exp) ||
            n_layer > PI_PREDICTOR_MAX_LAYERS || n_expert > 4096 ||
            (uint64_t)n_expert * n_ff_exp > PI_PREDICTOR_MAX_DIM)
            return pi_err_set(err, "%s: no valid block_count, expert_count and "
                              "expert_feed_forward_length", pi_gguf_path(g));
        return pi_packinfo_read_moe(g, (int)n_layer, (int)n_expert, (int)n_ff_exp, pk, err);
    }
    if (arch_int(g, "block_count", &n_layer) || arch_int(g, "feed_forward_length", &n_ff) ||
        n_layer > PI_PREDICTOR_MAX_LAYERS || n_ff > PI_PREDICTOR_MAX_DIM)
        return pi_err_set(err, "%s: no valid block_count and feed_forward_length",
                          pi_gguf_path(g));
    return pi_packinfo_read(g, (int)n_layer, (int)n_ff, pk, err);
}

static void print_order(const pi_gguf *g, const pi_packinfo *pk)
{
    const char *dt = pk->n_expert ? "blk.0.ffn_down_exps_t.weight" : "blk.0.ffn_down_t.weight";
    const pi_gguf_tensor *t = pi_gguf_find_tensor(g, dt);
    const char *down = t ? pi_type_name(t->type) : "?";
    printf("pi packed model: from the model with fingerprint %016" PRIx64, pk->source_fingerprint);
    if (pk->n_expert) {
        printf(" (%d layers of %d experts of %d neurons)\n", pk->n_layer, pk->n_expert,
               pk->n_ff_exp);
        printf("  order:      experts most used first; in each, neurons hottest first at %g "
               "of the activation mass (%" PRIu64 " tokens)\n", pk->freq_level,
               pk->stats_tokens);
        printf("  down:       neuron-major (blk.N.ffn_down_exps_t), %s\n", down);
        return;
    }
    printf(" (%d layers of %d neurons)\n", pk->n_layer, pk->n_ff);
    printf("  order:      hottest first by firing frequency at %g of the activation mass "
           "(%" PRIu64 " tokens)\n", pk->freq_level, pk->stats_tokens);
    printf("  down:       neuron-major (blk.N.ffn_down_t), %s\n", down);
}

/* The pi section of a packed model (pi-pack's output), checked by the same
 * reader pi-run uses.  Returns -1 (after saying why) when it is not valid. */
static int print_packed(const pi_gguf *g)
{
    if (!pi_packinfo_present(g))
        return 0;
    pi_packinfo pk;
    pi_err err;
    if (read_packed(g, &pk, &err)) {
        printf("pi packed model: not valid: %s\n", err.msg);
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        return -1;
    }
    print_order(g, &pk);
    if (pk.plan_n_gpu) {
        uint64_t on = 0;
        for (int il = 0; il < pk.n_layer; il++)
            on += pk.plan_n_gpu[il];
        printf("  plan:       --vram %.1f MiB, ctx %d: %" PRIu64 " of %" PRIu64
               " neurons on the GPU\n", (double)pk.plan_budget / (1 << 20), pk.plan_ctx, on,
               (uint64_t)pk.n_layer * (uint64_t)pk.n_ff);
    }
    if (pk.n_expert)
        print_experts(&pk);
    else
        print_neurons(&pk);
    pi_packinfo_free(&pk);
    if (!pi_gguf_get(g, "pi.predictor.version")) {
        printf("  predictors: none (the model runs dense)\n");
        return 0;
    }
    pi_predictor *p = pi_predictor_from_packed(g, &err);
    if (!p) {
        printf("  predictors: not valid: %s\n", err.msg);
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        return -1;
    }
    printf("  predictors: trained for %016" PRIx64 "\n", pi_predictor_fingerprint(p));
    print_predictor_layers(p);
    pi_predictor_free(p);
    return 0;
}

static void print_text(const pi_gguf *g, const opts *o)
{
    printf("file:         %s\n", pi_gguf_path(g));
    printf("version:      %u\n", pi_gguf_version(g));
    printf("size:         %" PRIu64 " bytes\n", pi_gguf_file_size(g));
    printf("alignment:    %u\n", pi_gguf_alignment(g));
    printf("data offset:  %" PRIu64 "\n", pi_gguf_data_offset(g));
    printf("fingerprint:  %016" PRIx64 "\n", pi_gguf_fingerprint(g));
    if (o->meta) {
        printf("metadata:     %" PRId64 " keys\n", pi_gguf_n_kv(g));
        for (int64_t i = 0; i < pi_gguf_n_kv(g); i++) {
            const pi_gguf_kv *kv = pi_gguf_kv_at(g, i);
            char label[64];
            type_label(label, sizeof label, &kv->value);
            printf("  %-44s %-18s ", kv->key, label);
            print_value(stdout, &kv->value, o);
            putchar('\n');
        }
    }
    if (!o->tensors)
        return;
    printf("tensors:      %" PRId64 "\n", pi_gguf_n_tensors(g));
    printf("  %5s  %-36s %-6s %-22s %12s %12s\n", "#", "name", "type", "shape", "offset",
           "bytes");
    uint64_t params = 0, bytes = 0;
    for (int64_t i = 0; i < pi_gguf_n_tensors(g); i++) {
        const pi_gguf_tensor *t = pi_gguf_tensor_at(g, i);
        char sh[96];
        shape(sh, sizeof sh, t);
        printf("  %5" PRId64 "  %-36s %-6s %-22s %12" PRIu64 " %12" PRIu64 "\n", i, t->name,
               pi_type_name(t->type), sh, t->offset, t->size);
        params += (uint64_t)pi_gguf_tensor_nelements(t);
        bytes += t->size;
    }
    printf("total:        %" PRIu64 " parameters, %" PRIu64 " bytes of tensor data\n", params,
           bytes);
}

static void print_json(const pi_gguf *g, const opts *o)
{
    FILE *f = stdout;
    fputs("{\"file\": ", f);
    const char *p = pi_gguf_path(g);
    pi_json_write_str(f, p, strlen(p));
    fprintf(f, ", \"version\": %u, \"size\": %" PRIu64 ", \"alignment\": %u, "
               "\"data_offset\": %" PRIu64 ", \"fingerprint\": \"%016" PRIx64 "\"",
            pi_gguf_version(g), pi_gguf_file_size(g), pi_gguf_alignment(g),
            pi_gguf_data_offset(g), pi_gguf_fingerprint(g));
    if (o->meta) {
        fputs(",\n \"metadata\": [", f);
        for (int64_t i = 0; i < pi_gguf_n_kv(g); i++) {
            const pi_gguf_kv *kv = pi_gguf_kv_at(g, i);
            fputs(i ? ",\n  {\"key\": " : "\n  {\"key\": ", f);
            pi_json_write_str(f, kv->key, strlen(kv->key));
            fprintf(f, ", \"type\": \"%s\"", pi_gguf_type_name(kv->value.type));
            if (kv->value.type == PI_GGUF_ARR)
                fprintf(f, ", \"elem_type\": \"%s\", \"length\": %" PRIu64 ", \"truncated\": %s",
                        pi_gguf_type_name(kv->value.v.arr.type), kv->value.v.arr.n,
                        o->max_array && kv->value.v.arr.n > o->max_array ? "true" : "false");
            fputs(", \"value\": ", f);
            print_value(f, &kv->value, o);
            fputc('}', f);
        }
        fputs("]", f);
    }
    if (o->tensors) {
        fputs(",\n \"tensors\": [", f);
        for (int64_t i = 0; i < pi_gguf_n_tensors(g); i++) {
            const pi_gguf_tensor *t = pi_gguf_tensor_at(g, i);
            fputs(i ? ",\n  {\"name\": " : "\n  {\"name\": ", f);
            pi_json_write_str(f, t->name, strlen(t->name));
            fprintf(f, ", \"type\": \"%s\", \"shape\": [", pi_type_name(t->type));
            for (uint32_t d = 0; d < t->n_dims; d++)
                fprintf(f, d ? ", %" PRId64 : "%" PRId64, t->ne[d]);
            fprintf(f, "], \"offset\": %" PRIu64 ", \"size\": %" PRIu64 "}", t->offset, t->size);
        }
        fputs("]", f);
    }
    fputs("}\n", f);
}

/* --key: the bare value, one line; strings unquoted so `$(pi-inspect -k ...)`
 * gives what a script wants. */
static int print_key(const pi_gguf *g, const opts *o)
{
    const pi_gguf_value *v = pi_gguf_get(g, o->key);
    if (!v) {
        fprintf(stderr, "%s: %s: no metadata key '%s'\n", prog, pi_gguf_path(g), o->key);
        return 1;
    }
    if (v->type == PI_GGUF_STR && !o->json)
        fwrite(v->v.str.ptr, 1, v->v.str.len, stdout);
    else
        print_value(stdout, v, o);
    putchar('\n');
    return 0;
}

static int parse_args(int argc, char **argv, void *opts_out)
{
    opts *o = opts_out;
    static const struct option longopts[] = {
        { "json", no_argument, NULL, 'j' },       { "key", required_argument, NULL, 'k' },
        { "max-array", required_argument, NULL, 'a' }, { "full", no_argument, NULL, 'F' },
        { "no-meta", no_argument, NULL, 'M' },    { "no-tensors", no_argument, NULL, 'T' },
        { "help", no_argument, NULL, 'h' },       { 0, 0, 0, 0 },
    };
    *o = (opts){ .meta = true, .tensors = true, .max_array = 8, .path = "-" };
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "jk:a:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'j': o->json = true; break;
        case 'k': o->key = optarg; break;
        case 'a':
            o->max_array = strtoull(optarg, &end, 10);
            if (*end || !*optarg || *optarg == '-') {
                fprintf(stderr, "%s: --max-array: '%s' is not a count\n", prog, optarg);
                return 2;
            }
            break;
        case 'F': o->max_array = 0; break;
        case 'M': o->meta = false; break;
        case 'T': o->tensors = false; break;
        case 'h': usage(stdout); exit(0);
        default: return 2;
        }
    }
    if (optind + 1 < argc) {
        fprintf(stderr, "%s: one FILE at most\n", prog);
        return 2;
    }
    if (optind < argc)
        o->path = argv[optind];
    if (!strcmp(o->path, "-") && isatty(0)) {
        fprintf(stderr, "%s: no FILE given and standard input is a terminal\n", prog);
        return 2;
    }
    return 0;
}

int main(int argc, char **argv)
{
    opts o;
    pi_err err;
    pi_args args;
    int rc = tool_args(prog, argc, argv, &args, parse_args, &o);
    if (rc)
        return rc;
    pi_gguf *g = pi_gguf_open(o.path, &err);
    if (!g) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        return tool_exit(prog, &args, 1);
    }
    if (o.key)
        rc = print_key(g, &o);
    else if (o.json)
        print_json(g, &o);
    else
        print_text(g, &o);
    if (!o.key && !o.json && o.meta && (print_predictor(g) || print_packed(g)))
        rc = 1;
    pi_gguf_close(g);
    return tool_exit(prog, &args, rc);
}
