/* libFuzzer target for activation statistics files (pi-profile --stats). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "actstats.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size ? size : 1);
    memcpy(copy, data, size);
    pi_actstats_file f;
    pi_err err;
    if (pi_actstats_read_yaml(copy, size, "fuzz.yaml", &f, &err) == 0) {
        /* What the reader promises pi-pack. */
        size_t n = (size_t)f.n_layer * PI_ACTSTATS_LEVELS * (size_t)f.n_ff;
        if (f.n_layer < 1 || f.n_ff < 1 || !f.freq)
            abort();
        for (size_t i = 0; i < n; i++)
            if (!(f.freq[i] >= 0 && f.freq[i] <= 1))
                abort();
        /* The experts section: absent, or every layer's counts in range. */
        if (!f.usage != !f.n_expert || f.n_expert < 0 || f.n_expert > PI_ACTSTATS_MAX_EXPERTS)
            abort();
        for (size_t i = 0; i < (size_t)f.n_layer * (size_t)f.n_expert; i++)
            if (f.usage[i] < 0 || f.usage[i] > (int64_t)PI_ACTSTATS_MAX_COUNT)
                abort();
    }
    pi_actstats_file_free(&f);
    free(copy);
    return 0;
}
