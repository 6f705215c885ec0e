/*
 * config: `--config FILE.yaml` for every tool.
 *
 * A config file is a YAML mapping from long option names to values:
 *
 *     threads: 2
 *     json: true
 *     model: models/SmolLM2-135M-Instruct.Q4_1.gguf
 *
 * Rather than each tool reading YAML, the file is turned into command-line
 * options placed before the real ones (`--threads=2 --json --model=...`), so
 * one getopt_long loop handles both and a flag given on the command line
 * overrides the file simply by coming later.  `true` becomes a bare flag,
 * `false` and null leave the option out, and a sequence repeats the option
 * once per element.  Nested mappings are refused.
 */
#ifndef PI_CONFIG_H
#define PI_CONFIG_H

#include <stddef.h>

#include "err.h"

typedef struct pi_args {
    int argc;
    char **argv; /* NULL-terminated; owned by the pi_args */
} pi_args;

/* Expands `--config FILE` / `--config=FILE` (the first one; a second is an
 * error) into options from FILE followed by the remaining arguments.  Without
 * --config the result is a copy of argv.  Returns 0 or -1 with err set. */
int pi_args_expand(int argc, char *const *argv, pi_args *out, pi_err *err);
void pi_args_free(pi_args *a);

/* Parses a YAML config held in memory into "--key=value" options appended to
 * *out (which must be initialised, e.g. zeroed).  `name` is for messages. */
int pi_config_parse(const char *text, size_t len, const char *name, pi_args *out,
                    pi_err *err);

#endif
