/*
 * tool_quant: a stdin-to-stdout filter over pi_dequantize_row() and
 * pi_quantize_row(), so that tests/test_dequant_ref.py can compare libpi with
 * the gguf Python package.
 *
 *   tool_quant dequant TYPE < blocks > f32      (little-endian floats)
 *   tool_quant quantize TYPE < f32 > blocks
 *
 * The element count is inferred from the input size, which must be a whole
 * number of blocks.  Floats are read and written in host order; the tests
 * run on little-endian machines.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"

static const char *prog = "tool_quant";

static int usage(void)
{
    fprintf(stderr, "usage: %s dequant|quantize TYPE < input > output\n", prog);
    return 2;
}

/* Reads all of stdin into a malloc'd buffer. */
static unsigned char *read_all(size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, stdin);
        if (n < cap)
            break;
        unsigned char *bigger = realloc(buf, cap *= 2);
        if (bigger == NULL)
            free(buf);
        buf = bigger;
    }
    if (buf == NULL || ferror(stdin)) {
        fprintf(stderr, "%s: -: cannot read input\n", prog);
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

static int write_all(const void *buf, size_t len)
{
    if (fwrite(buf, 1, len, stdout) != len || fflush(stdout) != 0) {
        fprintf(stderr, "%s: -: write failed\n", prog);
        return 1;
    }
    return 0;
}

/* Converts `in` (len bytes) one way or the other; returns the exit status. */
static int convert(bool dequant, const pi_type_traits *t, pi_type type,
                   const unsigned char *in, size_t len)
{
    size_t in_unit = dequant ? t->type_size : t->block_size * sizeof(float);
    if (len % in_unit != 0) {
        fprintf(stderr, "%s: -: %zu bytes is not a whole number of %s blocks\n",
                prog, len, t->name);
        return 1;
    }
    int64_t n = (int64_t)(len / in_unit * t->block_size);
    size_t out_len = dequant ? (size_t)n * sizeof(float) : pi_row_size(type, n);
    void *out = malloc(out_len ? out_len : 1);
    if (out == NULL) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return 1;
    }
    /* `in` came from malloc, so it is aligned for the block structs */
    int rc = dequant ? pi_dequantize_row(type, in, out, n)
                     : pi_quantize_row(type, (const float *)(const void *)in, out, n);
    rc = rc == 0 ? write_all(out, out_len) : 1;
    free(out);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 3)
        return usage();
    bool dequant = strcmp(argv[1], "dequant") == 0;
    if (!dequant && strcmp(argv[1], "quantize") != 0)
        return usage();
    int type = pi_type_from_name(argv[2]);
    const pi_type_traits *t = type < 0 ? NULL : pi_type_get_traits((uint32_t)type);
    if (t == NULL) {
        fprintf(stderr, "%s: unknown type '%s'\n", prog, argv[2]);
        return 2;
    }
    if (dequant ? !t->can_dequantize : !t->can_quantize) {
        fprintf(stderr, "%s: %s: cannot %s this type\n", prog, t->name, argv[1]);
        return 1;
    }
    size_t len;
    unsigned char *in = read_all(&len);
    if (in == NULL)
        return 1;
    int rc = convert(dequant, t, (pi_type)type, in, len);
    free(in);
    return rc;
}
