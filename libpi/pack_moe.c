/*
 * pack_moe: ordering a mixture of experts' experts by use (see pack_moe.h).
 */
#include "pack_moe.h"

#include <stdlib.h>
#include <string.h>

typedef struct by_use {
    int64_t count;
    uint32_t x;
} by_use;

static int more_used_first(const void *pa, const void *pb)
{
    const by_use *a = pa, *b = pb;
    if (a->count != b->count)
        return a->count > b->count ? -1 : 1;
    return a->x < b->x ? -1 : a->x > b->x;
}

static int check_counts(const pi_pack *pk, const pi_actstats_file *st, const char *sn,
                        pi_err *err)
{
    const char *path = pi_gguf_path(pk->m->gguf);
    if (!st->usage)
        return pi_err_set(err, "%s: no experts section (the routing counts %s needs to order "
                          "its experts; write it with pi-profile --stats)", sn, path);
    if (st->n_expert != pk->n_expert)
        return pi_err_set(err, "%s: experts: %d experts; %s has %d", sn, st->n_expert, path,
                          pk->n_expert);
    for (int il = 0; il < pk->n_layer; il++) {
        const int64_t *u = pi_actstats_file_usage(st, il);
        int64_t sum = 0;
        for (int x = 0; x < pk->n_expert; x++)
            sum += u[x]; /* the reader bounds each count so that this cannot overflow */
        if (sum <= 0)
            return pi_err_set(err, "%s: experts: layer %d: no routings counted", sn, il);
    }
    return 0;
}

int pi_pack_moe_experts(pi_pack *pk, const pi_actstats_file *st, const char *sn, pi_err *err)
{
    if (check_counts(pk, st, sn, err))
        return -1;
    size_t E = (size_t)pk->n_expert;
    pk->expert = malloc((size_t)pk->n_layer * E * sizeof *pk->expert);
    pk->usage = malloc((size_t)pk->n_layer * E * sizeof *pk->usage);
    by_use *r = malloc(E * sizeof *r);
    if (!pk->expert || !pk->usage || !r) {
        free(r);
        return pi_err_set(err, "out of memory");
    }
    for (int il = 0; il < pk->n_layer; il++) {
        const int64_t *u = pi_actstats_file_usage(st, il);
        int64_t sum = 0;
        for (size_t x = 0; x < E; x++) {
            r[x] = (by_use){ u[x], (uint32_t)x };
            sum += u[x];
        }
        qsort(r, E, sizeof *r, more_used_first);
        for (size_t k = 0; k < E; k++) {
            pk->expert[(size_t)il * E + k] = r[k].x;
            /* Division and rounding to float are monotone: the shares stay
             * non-increasing, as a reader checks. */
            pk->usage[(size_t)il * E + k] = (float)((double)r[k].count / (double)sum);
        }
    }
    free(r);
    return 0;
}

void pi_pack_moe_router(const pi_pack *pk, int il, const pi_weight *router, uint8_t *dst)
{
    const uint32_t *ex = pk->expert + (size_t)il * (size_t)pk->n_expert;
    for (int k = 0; k < pk->n_expert; k++)
        memcpy(dst + (size_t)k * router->row_bytes,
               (const uint8_t *)router->data + (size_t)ex[k] * router->row_bytes,
               router->row_bytes);
}
