/* libFuzzer target for YAML config files. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size ? size : 1);
    memcpy(copy, data, size);
    pi_args a = { 0 };
    pi_err err;
    if (pi_config_parse(copy, size, "fuzz.yaml", &a, &err) == 0)
        for (int i = 0; i < a.argc; i++)
            if (strncmp(a.argv[i], "--", 2))
                abort(); /* every option starts with -- */
    pi_args_free(&a);
    free(copy);
    return 0;
}
