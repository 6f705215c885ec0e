/*
 * dataset: trace records kept compact in memory for training (see
 * dataset.h).
 *
 * Each split keeps, per held layer, an array of fixed-size entries in the
 * trace's own encoding: float32 x scale, n_embd int8, float32 activation
 * maximum, n_ff codes.  Arrays grow by doubling up to the split's capacity;
 * past it, reservoir sampling (Vitter's algorithm R) replaces entries so
 * that every record seen is kept with the same probability.
 */
#include "dataset.h"

#include <stdlib.h>
#include <string.h>

typedef struct split {
    int64_t seen, cap, count, alloc; /* records seen, at most kept, kept, allocated */
    uint8_t **entries;               /* [held layer] alloc entries each */
} split;

struct pi_dataset {
    int n_layer, n_embd, n_ff;
    int n_held;
    int *held;  /* layers held, increasing */
    int *index; /* [n_layer]: position in held, or -1 */
    size_t entry;
    uint64_t seed;
    split sp[2]; /* training, validation */
};

static uint64_t mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void pi_dataset_free(pi_dataset *d)
{
    if (!d)
        return;
    for (int s = 0; s < 2; s++) {
        for (int h = 0; d->sp[s].entries && h < d->n_held; h++)
            free(d->sp[s].entries[h]);
        free(d->sp[s].entries);
    }
    free(d->held);
    free(d->index);
    free(d);
}

bool pi_dataset_has_layer(const pi_dataset *d, int il)
{
    return il >= 0 && il < d->n_layer && d->index[il] >= 0;
}

int64_t pi_dataset_seen(const pi_dataset *d) { return d->sp[0].seen + d->sp[1].seen; }
int64_t pi_dataset_count(const pi_dataset *d, bool val) { return d->sp[val].count; }

/* The entry a record goes to in split s, or -1 when the reservoir passes it
 * over; grows the arrays as needed (-2 when out of memory). */
static int64_t place(pi_dataset *d, int s)
{
    split *sp = &d->sp[s];
    int64_t k = sp->seen++;
    if (k >= sp->cap) {
        uint64_t j = mix(d->seed ^ mix((uint64_t)k * 2 + (uint64_t)s)) % (uint64_t)(k + 1);
        return j < (uint64_t)sp->cap ? (int64_t)j : -1;
    }
    if (k == sp->alloc) {
        int64_t n = sp->alloc ? sp->alloc * 2 : 256;
        n = n < sp->cap ? n : sp->cap;
        for (int h = 0; h < d->n_held; h++) {
            uint8_t *e = realloc(sp->entries[h], (size_t)n * d->entry);
            if (!e)
                return -2;
            sp->entries[h] = e;
        }
        sp->alloc = n;
    }
    sp->count++;
    return k;
}

static int keep(pi_dataset *d, const pi_trace_record *rec, int64_t index, const char *name,
                pi_err *err)
{
    int s = (index / PI_DATASET_BLOCK) % PI_DATASET_VAL_EVERY == PI_DATASET_VAL_EVERY - 1;
    int slot[PI_TRACE_MAX_LAYERS];
    for (int h = 0; h < d->n_held; h++)
        if ((slot[h] = pi_trace_slot(rec->info, d->held[h])) < 0)
            return pi_err_set(err, "%s: part %d does not record layer %d", name, rec->part + 1,
                              d->held[h]);
    int64_t at = place(d, s);
    if (at == -2)
        return pi_err_set(err, "out of memory holding the trace's records");
    if (at < 0)
        return 0;
    for (int h = 0; h < d->n_held; h++) {
        uint8_t *e = d->sp[s].entries[h] + (size_t)at * d->entry;
        float scale, max;
        const int8_t *x = pi_trace_x_raw(rec, slot[h], &scale);
        const uint8_t *codes = pi_trace_act_codes(rec, slot[h], &max);
        memcpy(e, &scale, 4);
        memcpy(e + 4, x, (size_t)d->n_embd);
        memcpy(e + 4 + d->n_embd, &max, 4);
        memcpy(e + 8 + d->n_embd, codes, (size_t)d->n_ff);
    }
    return 0;
}

/* Fixes the layers held (those asked for, or else those the first part
 * records) and the capacity of each split. */
static int hold(pi_dataset *d, const pi_trace_info *in, const pi_dataset_params *p, pi_err *err)
{
    for (int il = 0; il < d->n_layer; il++)
        if (p->layers ? p->layers[il] : pi_trace_slot(in, il) >= 0) {
            d->index[il] = d->n_held;
            d->held[d->n_held++] = il;
        }
    if (d->n_held == 0)
        return pi_err_set(err, "no layer to train");
    size_t memory = p->memory ? p->memory : (size_t)2 << 30;
    int64_t cap = (int64_t)(memory / (d->entry * (size_t)d->n_held));
    d->sp[1].cap = cap / PI_DATASET_VAL_EVERY > 0 ? cap / PI_DATASET_VAL_EVERY : 1;
    d->sp[0].cap = cap - d->sp[1].cap > 0 ? cap - d->sp[1].cap : 1;
    for (int s = 0; s < 2; s++)
        if (!(d->sp[s].entries = calloc((size_t)d->n_held, sizeof *d->sp[s].entries)))
            return pi_err_set(err, "out of memory");
    return 0;
}

static int read_trace(pi_dataset *d, const char *path, uint64_t fingerprint,
                      const pi_dataset_params *p, int64_t *index, pi_err *err)
{
    pi_trace_reader *r = pi_trace_open(path, err);
    if (!r)
        return -1;
    const pi_trace_info *in = pi_trace_reader_info(r);
    const char *name = strcmp(path, "-") ? path : "(stdin)";
    int rc = 0;
    if (in->fingerprint != fingerprint || in->n_layer != d->n_layer || in->n_embd != d->n_embd ||
        in->n_ff != d->n_ff)
        rc = pi_err_set(err, "%s: the trace was recorded from another model (fingerprint "
                        "%016llx, the model's is %016llx)", name,
                        (unsigned long long)in->fingerprint, (unsigned long long)fingerprint);
    if (!rc && !d->sp[0].entries)
        rc = hold(d, in, p, err);
    pi_trace_record rec;
    int got = 0;
    while (!rc && (got = pi_trace_next(r, &rec, err)) == 1) {
        rc = keep(d, &rec, (*index)++, name, err);
        if (!rc && p->progress && *index % PI_TRACE_CHUNK == 0)
            p->progress(p->user, *index);
    }
    pi_trace_close(r);
    return rc || got < 0 ? -1 : 0;
}

pi_dataset *pi_dataset_load(const char *const *paths, int n_paths, uint64_t fingerprint,
                            int n_layer, int n_embd, int n_ff, const pi_dataset_params *p,
                            pi_err *err)
{
    pi_dataset *d = calloc(1, sizeof *d);
    if (!d || !(d->held = calloc((size_t)n_layer, sizeof *d->held)) ||
        !(d->index = malloc((size_t)n_layer * sizeof *d->index))) {
        pi_dataset_free(d);
        pi_err_set(err, "out of memory");
        return NULL;
    }
    *d = (pi_dataset){ n_layer, n_embd, n_ff, 0, d->held, d->index,
                       8 + (size_t)n_embd + (size_t)n_ff, p->seed, { { 0 } } };
    for (int il = 0; il < n_layer; il++)
        d->index[il] = -1;
    int64_t index = 0;
    for (int i = 0; i < n_paths; i++)
        if (read_trace(d, paths[i], fingerprint, p, &index, err)) {
            pi_dataset_free(d);
            return NULL;
        }
    if (index == 0) {
        pi_dataset_free(d);
        pi_err_set(err, "%s: the trace holds no record", n_paths == 1 ? paths[0] : "traces");
        return NULL;
    }
    return d;
}

int pi_dataset_decode(const pi_dataset *d, int il, bool val, float *x, float *act)
{
    if (!pi_dataset_has_layer(d, il))
        return -1;
    const split *sp = &d->sp[val];
    const uint8_t *e = sp->entries[d->index[il]];
    for (int64_t r = 0; r < sp->count; r++, e += d->entry) {
        float scale, max;
        memcpy(&scale, e, 4);
        memcpy(&max, e + 4 + d->n_embd, 4);
        pi_trace_decode_x_row(scale, (const int8_t *)(e + 4), d->n_embd, x + r * d->n_embd);
        pi_trace_decode_act_row(max, e + 8 + d->n_embd, d->n_ff, act + r * d->n_ff);
    }
    return 0;
}
