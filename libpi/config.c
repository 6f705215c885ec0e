/*
 * config: YAML config files as command-line options (see config.h).
 * libyaml's event parser is enough: the accepted shape is one flat mapping
 * whose values are scalars or sequences of scalars.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define MAX_CONFIG_BYTES (1 << 20)

static int push(pi_args *a, const char *s, size_t n)
{
    char **v = realloc(a->argv, (size_t)(a->argc + 2) * sizeof *v);
    if (!v)
        return -1;
    a->argv = v;
    if (!(v[a->argc] = strndup(s, n)))
        return -1;
    v[++a->argc] = NULL;
    return 0;
}

/* "--key=value", "--key" for true, nothing for false/null. */
static int push_option(pi_args *a, const char *key, const yaml_event_t *ev)
{
    const char *val = (const char *)ev->data.scalar.value;
    size_t vlen = ev->data.scalar.length;
    bool plain = ev->data.scalar.plain_implicit;
    if (plain && (!strcmp(val, "false") || !strcmp(val, "null") || !strcmp(val, "~") ||
                  vlen == 0))
        return 0;
    size_t n = strlen(key) + vlen + 4;
    char *opt = malloc(n);
    if (!opt)
        return -1;
    if (plain && !strcmp(val, "true"))
        snprintf(opt, n, "--%s", key);
    else
        snprintf(opt, n, "--%s=%.*s", key, (int)vlen, val);
    int rc = push(a, opt, strlen(opt));
    free(opt);
    return rc;
}

typedef enum { WANT_DOC, WANT_KEY, WANT_VALUE, IN_SEQ, DONE } state;

static int step(state *st, char **key, const yaml_event_t *ev, pi_args *out,
                const char *name, pi_err *err)
{
    switch (ev->type) {
    case YAML_STREAM_START_EVENT: case YAML_DOCUMENT_START_EVENT:
    case YAML_DOCUMENT_END_EVENT: case YAML_NO_EVENT:
        return 0;
    case YAML_STREAM_END_EVENT:
        *st = DONE;
        return 0;
    case YAML_MAPPING_START_EVENT:
        if (*st != WANT_DOC)
            return pi_err_set(err, "%s: line %zu: nested mappings are not options", name,
                              ev->start_mark.line + 1);
        *st = WANT_KEY;
        return 0;
    case YAML_MAPPING_END_EVENT:
        *st = WANT_DOC;
        return 0;
    case YAML_SEQUENCE_START_EVENT:
        if (*st != WANT_VALUE)
            return pi_err_set(err, "%s: line %zu: a sequence must be the value of an option",
                              name, ev->start_mark.line + 1);
        *st = IN_SEQ;
        return 0;
    case YAML_SEQUENCE_END_EVENT:
        *st = WANT_KEY;
        return 0;
    case YAML_SCALAR_EVENT:
        if (*st == WANT_KEY) {
            free(*key);
            *key = strndup((const char *)ev->data.scalar.value, ev->data.scalar.length);
            if (!*key)
                return pi_err_set(err, "%s: out of memory", name);
            if (!strcmp(*key, "config"))
                return pi_err_set(err, "%s: line %zu: a config file cannot name another", name,
                                  ev->start_mark.line + 1);
            if (!**key || strchr(*key, '=') || (*key)[0] == '-')
                return pi_err_set(err, "%s: line %zu: '%s' is not an option name", name,
                                  ev->start_mark.line + 1, *key);
            *st = WANT_VALUE;
            return 0;
        }
        if (*st == WANT_VALUE || *st == IN_SEQ) {
            if (push_option(out, *key, ev))
                return pi_err_set(err, "%s: out of memory", name);
            if (*st == WANT_VALUE)
                *st = WANT_KEY;
            return 0;
        }
        return pi_err_set(err, "%s: line %zu: the file must be a mapping of option names "
                          "to values", name, ev->start_mark.line + 1);
    default:
        return pi_err_set(err, "%s: line %zu: anchors and aliases are not supported", name,
                          ev->start_mark.line + 1);
    }
}

int pi_config_parse(const char *text, size_t len, const char *name, pi_args *out,
                    pi_err *err)
{
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p))
        return pi_err_set(err, "%s: out of memory", name);
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    state st = WANT_DOC;
    char *key = NULL;
    int rc = 0;
    while (!rc && st != DONE) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            rc = pi_err_set(err, "%s: line %zu: %s", name, p.problem_mark.line + 1,
                            p.problem ? p.problem : "YAML syntax error");
            break;
        }
        rc = step(&st, &key, &ev, out, name, err);
        yaml_event_delete(&ev);
    }
    free(key);
    yaml_parser_delete(&p);
    return rc;
}

static int load_file(const char *path, pi_args *out, pi_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return pi_err_set(err, "%s: %s", path, strerror(errno));
    char *buf = malloc(MAX_CONFIG_BYTES + 1);
    size_t n = buf ? fread(buf, 1, MAX_CONFIG_BYTES + 1, f) : 0;
    int bad = !buf || ferror(f);
    fclose(f);
    int rc;
    if (bad)
        rc = pi_err_set(err, "%s: cannot read", path);
    else if (n > MAX_CONFIG_BYTES)
        rc = pi_err_set(err, "%s: larger than %d bytes", path, MAX_CONFIG_BYTES);
    else
        rc = pi_config_parse(buf, n, path, out, err);
    free(buf);
    return rc;
}

static int push_arg(pi_args *a, const char *s, pi_err *err)
{
    return push(a, s, strlen(s)) ? pi_err_set(err, "out of memory") : 0;
}

void pi_args_free(pi_args *a)
{
    for (int i = 0; a->argv && i < a->argc; i++)
        free(a->argv[i]);
    free(a->argv);
    a->argv = NULL;
    a->argc = 0;
}

int pi_args_expand(int argc, char *const *argv, pi_args *out, pi_err *err)
{
    *out = (pi_args){ 0 };
    const char *config = NULL;
    int rc = argc > 0 ? push_arg(out, argv[0], err) : 0;
    for (int i = 1; !rc && i < argc; i++) {
        const char *file = NULL;
        if (!strcmp(argv[i], "--"))
            break; /* operands from here on are not options */
        if (!strcmp(argv[i], "--config")) {
            if (i + 1 == argc)
                rc = pi_err_set(err, "option '--config' requires a file");
            else
                file = argv[++i];
        } else if (!strncmp(argv[i], "--config=", 9)) {
            file = argv[i] + 9;
        }
        if (!file)
            continue;
        if (config)
            rc = pi_err_set(err, "--config given twice");
        else
            rc = load_file(config = file, out, err);
    }
    for (int i = 1; !rc && i < argc; i++) {
        if (!strcmp(argv[i], "--config") && config) {
            i++;
            continue;
        }
        if (!strncmp(argv[i], "--config=", 9))
            continue;
        rc = push_arg(out, argv[i], err);
        if (!rc && !strcmp(argv[i], "--"))
            while (!rc && ++i < argc)
                rc = push_arg(out, argv[i], err);
    }
    if (rc)
        pi_args_free(out);
    return rc;
}
