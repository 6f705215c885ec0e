/*
 * pack_moe: the expert order of a packed mixture of experts (see pack.h).
 *
 * pi-pack puts a layer's most used experts first, so that a runner that
 * keeps some experts close (a GPU, a cache) can take a prefix, as it takes
 * a prefix of a dense layer's hottest neurons.  Use is what pi-profile
 * counted: how often the router chose each expert (the `experts:` section
 * of its statistics, read by actstats.h).  The counts are untrusted input,
 * checked here against the model.
 */
#ifndef PI_PACK_MOE_H
#define PI_PACK_MOE_H

#include <stdint.h>

#include "actstats.h"
#include "err.h"
#include "pack.h"

/* Fills pk->expert and pk->usage (allocated here; pk->n_layer and
 * pk->n_expert set) from the statistics' routing counts: per layer the
 * experts by count, more first, ties to the lower index, and each one's
 * count over the layer's sum.  stats_name is for messages: no experts
 * section, another expert count, or a layer with no routings counted. */
int pi_pack_moe_experts(pi_pack *pk, const pi_actstats_file *st, const char *stats_name,
                        pi_err *err);

/* The router of layer il (one row per expert) with its rows in packed
 * expert order: the source's bytes, row by row. */
void pi_pack_moe_router(const pi_pack *pk, int il, const pi_weight *router, uint8_t *dst);

#endif
