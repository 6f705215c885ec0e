/*
 * tool.h: what every pi tool does around its own work, written once:
 * expanding --config into options, the usage-error convention ("Try
 * 'pi-x --help'." and exit status 2), checking that standard output was
 * written completely before exiting 0, numeric options, layer lists, and
 * text outputs that appear only when complete.
 */
#ifndef PI_TOOL_H
#define PI_TOOL_H

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "outfile.h"

/* Expands --config and runs the tool's option parser over the result.
 * Returns 0, or the exit status for a usage error (already reported). */
static inline int tool_args(const char *prog, int argc, char **argv, pi_args *args,
                            int (*parse)(int argc, char **argv, void *opts), void *opts)
{
    pi_err err;
    if (pi_args_expand(argc, argv, args, &err)) {
        fprintf(stderr, "%s: %s\nTry '%s --help'.\n", prog, err.msg, prog);
        return 2;
    }
    int rc = parse(args->argc, args->argv, opts);
    if (rc) {
        fprintf(stderr, "Try '%s --help'.\n", prog);
        pi_args_free(args);
    }
    return rc;
}

/* Binary output (a GGUF, a trace) is never written to a terminal: true,
 * after the usage-error message, when it would go to standard output
 * (to_stdout) and that is a terminal. */
static inline bool tool_binary_to_tty(const char *prog, bool to_stdout, const char *what)
{
    if (!to_stdout || !isatty(1))
        return false;
    fprintf(stderr, "%s: refusing to write %s to a terminal (use -o FILE)\nTry '%s --help'.\n",
            prog, what, prog);
    return true;
}

/* For a tool that takes no operands: after getopt, -1 (message printed)
 * when any are left. */
static inline int tool_no_operands(const char *prog, int argc, char **argv)
{
    if (optind >= argc)
        return 0;
    fprintf(stderr, "%s: unexpected argument '%s'\n", prog, argv[optind]);
    return -1;
}

/* The exit status: rc, or 1 if standard output could not be written. */
static inline int tool_exit(const char *prog, pi_args *args, int rc)
{
    pi_args_free(args);
    if (fflush(stdout) || ferror(stdout)) {
        fprintf(stderr, "%s: write error on standard output\n", prog);
        return 1;
    }
    return rc;
}

/* A numeric option: arg must be a number in [lo, hi] (whole when asked). */
static inline int tool_num(const char *prog, const char *opt, const char *arg, double lo,
                           double hi, bool whole, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(arg, &end);
    if (!*arg || *end || errno || !(v >= lo && v <= hi) || (whole && v != floor(v))) {
        fprintf(stderr, "%s: --%s: '%s' is not a %s from %g to %g\n", prog, opt, arg,
                whole ? "whole number" : "number", lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

/* A layer list like "0-3,8,20-" (an open range runs to the last layer)
 * into flags for n layers; -1 with a message on a bad list. */
static inline int tool_layers(const char *prog, const char *s, int n, bool *on)
{
    const char *p = s;
    while (*p) {
        char *end;
        long a = strtol(p, &end, 10), b = a;
        if (end == p || a < 0)
            goto bad;
        p = end;
        if (*p == '-') {
            b = n - 1;
            if (*++p && *p != ',') {
                b = strtol(p, &end, 10);
                if (end == p)
                    goto bad;
                p = end;
            }
        }
        if (b < a || b >= n) {
            fprintf(stderr, "%s: --layers: '%s': the model has layers 0 to %d\n", prog, s, n - 1);
            return -1;
        }
        for (long i = a; i <= b; i++)
            on[i] = true;
        if (*p == ',' && p[1])
            p++;
        else if (*p)
            goto bad;
    }
    return 0;
bad:
    fprintf(stderr, "%s: --layers: '%s' is not a list like 0-3,8,20-\n", prog, s);
    return -1;
}

/* Reads a whole file ("-": stdin) into a NUL-terminated buffer; NULL after
 * a message naming the file. */
static inline char *tool_read_text(const char *prog, const char *path, size_t *len)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) {
        fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0, r;
    char *b = malloc(cap + 1);
    while (b && (r = fread(b + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n < cap)
            continue;
        char *nb = realloc(b, 2 * cap + 1);
        if (!nb)
            free(b);
        b = nb;
        cap *= 2;
    }
    bool bad = !b || ferror(f);
    if (f != stdin)
        fclose(f);
    if (bad) {
        fprintf(stderr, "%s: %s: cannot read\n", prog, path);
        free(b);
        return NULL;
    }
    b[n] = 0;
    *len = n;
    return b;
}

/* A text output (a YAML report) that appears only when complete: written
 * under a temporary name beside path and renamed by tool_out_close(commit);
 * "-" or NULL is standard output.  Creating it early makes an unwritable
 * path fail before a long run rather than after. */
typedef struct tool_out {
    const char *path; /* NULL: standard output */
    char *tmp;
    FILE *f;
} tool_out;

static inline int tool_out_open(const char *prog, tool_out *o, const char *path)
{
    *o = (tool_out){ path && strcmp(path, "-") ? path : NULL, NULL, stdout };
    if (!o->path)
        return 0;
    pi_err err;
    int fd = pi_outfile_create(path, &o->tmp, &err);
    o->f = NULL;
    if (fd >= 0 && !(o->f = fdopen(fd, "w"))) {
        pi_err_set(&err, "%s: cannot create: %s", path, strerror(errno));
        close(fd);
    }
    if (!o->f) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        pi_outfile_discard(o->tmp);
        *o = (tool_out){ 0 };
        return -1;
    }
    return 0;
}

/* Puts the file in place (commit, after checking every write) or removes
 * it; -1 with a message when committing fails. */
static inline int tool_out_close(const char *prog, tool_out *o, bool commit)
{
    int rc = 0;
    if (commit && o->f && (fflush(o->f) || ferror(o->f))) {
        fprintf(stderr, "%s: %s: %s\n", prog, o->path ? o->path : "standard output",
                strerror(errno ? errno : EIO));
        rc = -1;
    }
    if (o->path) { /* a file of ours (tmp NULL: a device written in place) */
        if (fclose(o->f) && commit && !rc) {
            fprintf(stderr, "%s: %s: %s\n", prog, o->path, strerror(errno));
            rc = -1;
        }
        pi_err err;
        if (commit && !rc) {
            if (pi_outfile_commit(o->tmp, o->path, &err)) {
                fprintf(stderr, "%s: %s\n", prog, err.msg);
                rc = -1;
            }
        } else {
            pi_outfile_discard(o->tmp);
        }
    }
    *o = (tool_out){ 0 };
    return rc;
}

#endif
