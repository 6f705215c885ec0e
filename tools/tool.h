/*
 * tool.h: what every pi tool does around its own work, written once:
 * expanding --config into options, the usage-error convention ("Try
 * 'pi-x --help'." and exit status 2), and checking that standard output was
 * written completely before exiting 0.
 */
#ifndef PI_TOOL_H
#define PI_TOOL_H

#include <stdio.h>

#include "config.h"

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

#endif
