/*
 * actstats_read: reading back the statistics pi-profile writes (see
 * actstats.h), for pi-pack.  The file is untrusted input: every value is
 * checked, and memory follows what is actually present.
 */
#include "actstats.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#define L PI_ACTSTATS_LEVELS

/* ---- Reading ----
 *
 * libyaml's event parser, so memory follows the values actually present:
 * a frequency list is collected in a growing buffer, a layer's block is
 * allocated once a list of exactly n_ff values has been read, and n_layer
 * and n_ff from the header never size an allocation by themselves.  Aliases
 * are refused, so no input is larger once expanded. */

typedef struct reader {
    yaml_parser_t p;
    yaml_event_t ev;
    bool have; /* ev holds an event */
    const char *name;
    pi_err *err;
    pi_actstats_file *out;
    float **layer; /* [n_layer]: L * n_ff frequencies, NULL until read */
    float *block;  /* the layer being read */
    float *buf;    /* the list being read */
    size_t cap;
    int64_t **usage; /* [n_layer]: n_expert routing counts, NULL until read */
    int64_t *counts; /* the usage list being read (n_expert) */
} reader;

/* An error at the current event's line. */
__attribute__((format(printf, 2, 3)))
static int fail(const reader *r, const char *fmt, ...)
{
    if (!r->err)
        return -1;
    char *m = r->err->msg;
    int n = snprintf(m, sizeof r->err->msg, "%s: line %zu: ", r->name,
                     (size_t)r->ev.start_mark.line + 1);
    if (n < 0 || (size_t)n >= sizeof r->err->msg)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m + n, sizeof r->err->msg - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

static int next(reader *r)
{
    if (r->have)
        yaml_event_delete(&r->ev);
    if (!(r->have = yaml_parser_parse(&r->p, &r->ev)))
        return pi_err_set(r->err, "%s: line %zu: %s", r->name, r->p.problem_mark.line + 1,
                          r->p.problem ? r->p.problem : "YAML syntax error");
    return r->ev.type == YAML_ALIAS_EVENT ? fail(r, "aliases are not supported") : 0;
}

static int expect(reader *r, yaml_event_type_t type, const char *what)
{
    return next(r) ? -1 : r->ev.type != type ? fail(r, "expected %s", what) : 0;
}

static const char *sval(const reader *r)
{
    return r->ev.type == YAML_SCALAR_EVENT ? (const char *)r->ev.data.scalar.value : "";
}

/* The next key of the mapping being read: 1 with a key, 0 at its end. */
static int next_key(reader *r)
{
    if (next(r))
        return -1;
    if (r->ev.type == YAML_MAPPING_END_EVENT)
        return 0;
    return r->ev.type == YAML_SCALAR_EVENT ? 1 : fail(r, "keys must be plain words");
}

/* Skips the value that starts with the next event, however nested. */
static int skip_value(reader *r)
{
    int depth = 0;
    do {
        if (next(r))
            return -1;
        yaml_event_type_t t = r->ev.type;
        depth += t == YAML_SEQUENCE_START_EVENT || t == YAML_MAPPING_START_EVENT;
        depth -= t == YAML_SEQUENCE_END_EVENT || t == YAML_MAPPING_END_EVENT;
    } while (depth > 0);
    return 0;
}

/* The current event as a finite number filling the whole scalar (a NUL in a
 * quoted scalar stops strtod early and fails the length check). */
static bool number(const reader *r, double *v)
{
    const char *s = sval(r);
    char *end;
    *v = strtod(s, &end);
    return end != s && (size_t)(end - s) == r->ev.data.scalar.length && isfinite(*v);
}

static int read_int(reader *r, const char *what, double lo, double hi, int64_t *v)
{
    double d;
    if (next(r))
        return -1;
    if (!number(r, &d) || d != floor(d) || d < lo || d > hi)
        return fail(r, "%s must be an integer from %.0f to %.0f", what, lo, hi);
    *v = (int64_t)d;
    return 0;
}

/* "0x" and up to 16 hex digits. */
static int read_fingerprint(reader *r)
{
    if (next(r))
        return -1;
    const char *s = sval(r);
    size_t n = r->ev.type == YAML_SCALAR_EVENT ? r->ev.data.scalar.length : 0;
    char *end = NULL;
    if (n > 2 && n <= 18 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') &&
        isxdigit((unsigned char)s[2]))
        r->out->fingerprint = strtoull(s + 2, &end, 16);
    return end && end == s + n ? 0 : fail(r, "fingerprint must be 0x and 16 hex digits");
}

/* A string, or NULL for null. */
static int read_str(reader *r, char **v)
{
    if (next(r))
        return -1;
    const char *s = sval(r);
    free(*v);
    *v = NULL;
    if (r->ev.type != YAML_SCALAR_EVENT || (r->ev.data.scalar.plain_implicit &&
                                            (!*s || !strcmp(s, "null") || !strcmp(s, "~"))))
        return 0;
    return (*v = strdup(s)) ? 0 : pi_err_set(r->err, "%s: out of memory", r->name);
}

/* One frequency list of level lv; *count gets its length.  Only the first
 * n_ff values are kept, the rest are counted for the message. */
static int read_list(reader *r, int lv, size_t *count)
{
    const size_t n_ff = (size_t)r->out->n_ff;
    if (expect(r, YAML_SEQUENCE_START_EVENT, "a list of frequencies"))
        return -1;
    for (*count = 0;; ++*count) {
        double v;
        if (next(r))
            return -1;
        if (r->ev.type == YAML_SEQUENCE_END_EVENT)
            break;
        if (!number(r, &v) || v < 0 || v > 1)
            return fail(r, "frequency %s: value %zu is not a number from 0 to 1",
                        pi_actstats_level_names[lv], *count + 1);
        if (*count < n_ff && *count == r->cap) {
            size_t cap = r->cap ? 2 * r->cap < n_ff ? 2 * r->cap : n_ff : 1024;
            float *b = realloc(r->buf, cap * sizeof *b);
            if (!b)
                return pi_err_set(r->err, "%s: out of memory", r->name);
            r->buf = b, r->cap = cap;
        }
        if (*count < n_ff)
            r->buf[*count] = (float)v;
    }
    if (*count == n_ff) {
        if (!r->block && !(r->block = malloc(L * n_ff * sizeof *r->block)))
            return pi_err_set(r->err, "%s: out of memory", r->name);
        memcpy(r->block + lv * n_ff, r->buf, n_ff * sizeof *r->buf);
    }
    return 0;
}

/* frequency: {"0.9": [...], "0.95": [...], "0.99": [...]} */
static int read_frequency(reader *r, size_t count[L], bool seen[L])
{
    int k;
    if (expect(r, YAML_MAPPING_START_EVENT, "a mapping from levels to frequencies"))
        return -1;
    while ((k = next_key(r)) > 0) {
        double q;
        bool ok = number(r, &q);
        int lv = 0;
        while (ok && lv < L && q != pi_actstats_levels[lv])
            lv++;
        if (!ok || lv == L)
            return fail(r, "frequency: level must be 0.9, 0.95 or 0.99");
        if (seen[lv])
            return fail(r, "frequency %s given twice", pi_actstats_level_names[lv]);
        seen[lv] = true;
        if (read_list(r, lv, &count[lv]))
            return -1;
    }
    return k;
}

static int read_layer(reader *r, int item)
{
    int64_t il = -1, tokens = -1;
    size_t count[L] = { 0 };
    bool seen[L] = { false };
    int k;
    while ((k = next_key(r)) > 0) {
        if (!strcmp(sval(r), "layer"))
            k = read_int(r, "layer", 0, r->out->n_layer - 1, &il);
        else if (!strcmp(sval(r), "tokens"))
            k = read_int(r, "tokens", 0, 0x1p53, &tokens);
        else if (!strcmp(sval(r), "frequency"))
            k = read_frequency(r, count, seen);
        else
            k = skip_value(r);
        if (k)
            return -1;
    }
    if (k || il < 0 || tokens < 0)
        return k ? -1 : pi_err_set(r->err, "%s: layers item %d: no %s", r->name, item,
                                   il < 0 ? "layer number" : "tokens");
    for (int lv = 0; lv < L; lv++)
        if (!seen[lv] || count[lv] != (size_t)r->out->n_ff)
            return pi_err_set(r->err, seen[lv] ? "%s: layer %d: frequency %s has %zu values, "
                              "expected %d" : "%s: layer %d: no frequency %s", r->name, (int)il,
                              pi_actstats_level_names[lv], count[lv], r->out->n_ff);
    if (r->layer[il])
        return pi_err_set(r->err, "%s: layer %d appears twice", r->name, (int)il);
    r->layer[il] = r->block;
    r->block = NULL;
    return 0;
}

/* A list of layer mappings, each read by fn(r, item); `each` is the
 * message for an item that is not a mapping. */
static int read_layer_list(reader *r, const char *each, int (*fn)(reader *, int))
{
    if (expect(r, YAML_SEQUENCE_START_EVENT, "a list of layers"))
        return -1;
    for (int item = 0; !next(r); item++) {
        if (r->ev.type == YAML_SEQUENCE_END_EVENT)
            return 0;
        if (r->ev.type != YAML_MAPPING_START_EVENT)
            return fail(r, "%s", each);
        if (fn(r, item))
            return -1;
    }
    return -1;
}

static int read_layers(reader *r)
{
    if (r->out->n_layer <= 0 || r->out->n_ff <= 0)
        return fail(r, "layers must come after n_layer and n_ff");
    if (!(r->layer = calloc((size_t)r->out->n_layer, sizeof *r->layer)))
        return pi_err_set(r->err, "%s: out of memory", r->name);
    return read_layer_list(r, "each layer must be a mapping", read_layer);
}

/* ---- The experts section (expertstats.h) ----
 *
 * experts: {n_expert, used, layers: [{layer, tokens, ..., usage: [counts]}]};
 * only n_expert, layer and usage are read.  The counts order the experts of
 * a packed model, so each is checked to be a whole number in range. */

/* One usage list; *count gets its length, only the first n_expert kept. */
static int read_usage(reader *r, size_t *count)
{
    const size_t n = (size_t)r->out->n_expert;
    if (expect(r, YAML_SEQUENCE_START_EVENT, "a list of routing counts"))
        return -1;
    for (*count = 0;; ++*count) {
        double v;
        if (next(r))
            return -1;
        if (r->ev.type == YAML_SEQUENCE_END_EVENT)
            return 0;
        if (!number(r, &v) || v != floor(v) || v < 0 || v > PI_ACTSTATS_MAX_COUNT)
            return fail(r, "experts: usage: count %zu is not an integer from 0 to %.0f",
                        *count + 1, PI_ACTSTATS_MAX_COUNT);
        if (*count < n)
            r->counts[*count] = (int64_t)v;
    }
}

static int read_expert_layer(reader *r, int item)
{
    const int n = r->out->n_expert;
    int64_t il = -1;
    size_t count = 0;
    bool seen = false;
    int k;
    while ((k = next_key(r)) > 0) {
        if (!strcmp(sval(r), "layer")) {
            k = read_int(r, "experts: layer", 0, r->out->n_layer - 1, &il);
        } else if (!strcmp(sval(r), "usage")) {
            if (seen)
                return fail(r, "experts: usage given twice");
            seen = true;
            k = read_usage(r, &count);
        } else {
            k = skip_value(r);
        }
        if (k)
            return -1;
    }
    if (k)
        return -1;
    if (il < 0)
        return pi_err_set(r->err, "%s: experts: layers item %d: no layer number", r->name, item);
    if (!seen)
        return pi_err_set(r->err, "%s: experts: layer %d: no usage", r->name, (int)il);
    if (count != (size_t)n)
        return pi_err_set(r->err, "%s: experts: layer %d: usage has %zu counts, expected %d",
                          r->name, (int)il, count, n);
    if (r->usage[il])
        return pi_err_set(r->err, "%s: experts: layer %d appears twice", r->name, (int)il);
    if (!(r->usage[il] = malloc((size_t)n * sizeof **r->usage)))
        return pi_err_set(r->err, "%s: out of memory", r->name);
    memcpy(r->usage[il], r->counts, (size_t)n * sizeof **r->usage);
    return 0;
}

static int read_expert_layers(reader *r)
{
    if (r->out->n_expert <= 0)
        return fail(r, "experts: layers must come after n_expert");
    r->usage = calloc((size_t)r->out->n_layer, sizeof *r->usage);
    r->counts = malloc((size_t)r->out->n_expert * sizeof *r->counts);
    if (!r->usage || !r->counts)
        return pi_err_set(r->err, "%s: out of memory", r->name);
    return read_layer_list(r, "experts: each layer must be a mapping", read_expert_layer);
}

static int read_experts(reader *r)
{
    if (r->out->n_layer <= 0)
        return fail(r, "experts must come after n_layer");
    if (expect(r, YAML_MAPPING_START_EVENT, "a mapping of expert statistics"))
        return -1;
    int k;
    while ((k = next_key(r)) > 0) {
        int64_t v;
        if (!strcmp(sval(r), "n_expert")) {
            if (r->out->n_expert || r->usage)
                return fail(r, "experts: n_expert given twice or after layers");
            if (read_int(r, "experts: n_expert", 1, PI_ACTSTATS_MAX_EXPERTS, &v))
                return -1;
            r->out->n_expert = (int)v;
        } else if (!strcmp(sval(r), "layers")) {
            if (r->usage)
                return fail(r, "experts: layers given twice");
            if (read_expert_layers(r))
                return -1;
        } else if (skip_value(r)) {
            return -1;
        }
    }
    if (!k && !r->usage)
        return pi_err_set(r->err, "%s: experts: no layers", r->name);
    return k;
}

/* Top-level keys; those before K_MODEL are required. */
enum { K_FORMAT, K_VERSION, K_FINGERPRINT, K_N_LAYER, K_N_FF, K_TOKENS, K_LAYERS, K_MODEL,
       K_ARCH, K_CTX, K_EXPERTS, N_KEY };
static const char *const keys[N_KEY] = { "format", "version", "fingerprint", "n_layer",
                                         "n_ff", "tokens", "layers", "model", "arch", "ctx",
                                         "experts" };

static int read_value(reader *r, int key)
{
    pi_actstats_file *o = r->out;
    int64_t v = 0;
    switch (key) {
    case K_FORMAT:
        if (next(r))
            return -1;
        return strcmp(sval(r), "pi-actstats") ? pi_err_set(r->err, "%s: not activation "
                      "statistics (format is not pi-actstats)", r->name) : 0;
    case K_VERSION:
        if (read_int(r, "version", 0, INT_MAX, &v))
            return -1;
        return v != 1 ? pi_err_set(r->err, "%s: version %d is not supported (expected 1)",
                                   r->name, (int)v) : 0;
    case K_FINGERPRINT: return read_fingerprint(r);
    case K_N_LAYER:
        if (read_int(r, "n_layer", 1, PI_ACTSTATS_MAX_LAYERS, &v))
            return -1;
        o->n_layer = (int)v;
        return 0;
    case K_N_FF:
        if (read_int(r, "n_ff", 1, PI_ACTSTATS_MAX_FF, &v))
            return -1;
        o->n_ff = (int)v;
        return 0;
    case K_TOKENS:
        return read_int(r, "tokens", 0, 0x1p53, &o->tokens);
    case K_CTX:
        if (read_int(r, "ctx", 0, INT_MAX, &v))
            return -1;
        o->ctx = (int)v;
        return 0;
    case K_LAYERS: return read_layers(r);
    case K_EXPERTS: return read_experts(r);
    case K_MODEL: return read_str(r, &o->model);
    case K_ARCH: return read_str(r, &o->arch);
    default: return skip_value(r);
    }
}

static int read_document(reader *r)
{
    bool seen[N_KEY] = { false };
    int k;
    if (expect(r, YAML_STREAM_START_EVENT, "a YAML stream") || next(r))
        return -1;
    if (r->ev.type == YAML_STREAM_END_EVENT)
        return pi_err_set(r->err, "%s: empty file", r->name);
    if (expect(r, YAML_MAPPING_START_EVENT, "a mapping (not activation statistics?)"))
        return -1;
    while ((k = next_key(r)) > 0) {
        int key = 0;
        while (key < N_KEY && strcmp(sval(r), keys[key]))
            key++;
        if (key < N_KEY && seen[key])
            return fail(r, "%s given twice", keys[key]);
        if (key < N_KEY)
            seen[key] = true;
        if (read_value(r, key))
            return -1;
    }
    if (k)
        return -1;
    for (int key = 0; key < K_MODEL; key++)
        if (!seen[key])
            return key == K_FORMAT ? pi_err_set(r->err, "%s: not activation statistics (no "
                                                "format: pi-actstats)", r->name)
                                   : pi_err_set(r->err, "%s: no %s", r->name, keys[key]);
    if (expect(r, YAML_DOCUMENT_END_EVENT, "the end of the document") ||
        expect(r, YAML_STREAM_END_EVENT, "a single YAML document"))
        return -1;
    return 0;
}

/* The experts section, when there was one: every layer, contiguous. */
static int gather_usage(reader *r)
{
    pi_actstats_file *o = r->out;
    size_t n = (size_t)o->n_expert;
    if (!r->usage)
        return 0;
    for (int il = 0; il < o->n_layer; il++)
        if (!r->usage[il])
            return pi_err_set(r->err, "%s: experts: layer %d is missing", r->name, il);
    if (!(o->usage = malloc((size_t)o->n_layer * n * sizeof *o->usage)))
        return pi_err_set(r->err, "%s: out of memory", r->name);
    for (int il = 0; il < o->n_layer; il++)
        memcpy(o->usage + il * n, r->usage[il], n * sizeof *o->usage);
    return 0;
}

/* Every layer present: one contiguous array, as large as what was read. */
static int gather(reader *r)
{
    pi_actstats_file *o = r->out;
    size_t per = L * (size_t)o->n_ff;
    for (int il = 0; il < o->n_layer; il++)
        if (!r->layer[il])
            return pi_err_set(r->err, "%s: layer %d is missing", r->name, il);
    if (!(o->freq = malloc((size_t)o->n_layer * per * sizeof *o->freq)))
        return pi_err_set(r->err, "%s: out of memory", r->name);
    for (int il = 0; il < o->n_layer; il++)
        memcpy(o->freq + il * per, r->layer[il], per * sizeof *o->freq);
    return gather_usage(r);
}

int pi_actstats_read_yaml(const char *text, size_t len, const char *name,
                          pi_actstats_file *out, pi_err *err)
{
    *out = (pi_actstats_file){ .ctx = -1 };
    reader r = { .name = name, .err = err, .out = out };
    if (!yaml_parser_initialize(&r.p))
        return pi_err_set(err, "%s: out of memory", name);
    yaml_parser_set_input_string(&r.p, (const unsigned char *)text, len);
    int rc = read_document(&r);
    if (!rc)
        rc = gather(&r);
    if (r.have)
        yaml_event_delete(&r.ev);
    yaml_parser_delete(&r.p);
    for (int il = 0; il < out->n_layer; il++) {
        free(r.layer ? r.layer[il] : NULL);
        free(r.usage ? r.usage[il] : NULL);
    }
    free(r.layer);
    free(r.usage);
    free(r.counts);
    free(r.block);
    free(r.buf);
    if (rc)
        pi_actstats_file_free(out);
    return rc;
}

void pi_actstats_file_free(pi_actstats_file *f)
{
    if (!f)
        return;
    free(f->model);
    free(f->arch);
    free(f->freq);
    free(f->usage);
    *f = (pi_actstats_file){ .ctx = -1 };
}
