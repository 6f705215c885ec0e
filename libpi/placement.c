/*
 * placement: the GPU/CPU split of FFN neurons under a memory budget (see
 * placement.h).
 *
 * After the reserve, the plan is a greedy fractional-knapsack pass: every
 * layer's frequencies are sorted hottest first, and the next neuron taken is
 * the one with the highest frequency per byte among the layers' next
 * neurons (a k-way merge kept in a binary heap of layers).  Within a layer
 * all neurons cost the same, so the layer's taken neurons are a prefix of its
 * hottest-first order.  When a layer's next neuron no longer fits, none of
 * its later ones will either; the layer leaves the heap and cheaper neurons
 * of other layers may still fill what is left.
 */
#include "placement.h"

#include "packinfo.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MIB(b) ((double)(b) / (1024.0 * 1024.0))

/* ---- Checking the input and sizing the reserve ---- */

static int check_input(const pi_placement_input *in, const pi_placement_params *p, pi_err *err)
{
    if (!in || !p)
        return pi_err_set(err, "placement: no input or parameters");
    if (in->n_layer < 1 || in->n_ff < 1)
        return pi_err_set(err, "placement: %d layers of %d neurons", in->n_layer, in->n_ff);
    if (!in->neuron_bytes || !in->freq)
        return pi_err_set(err, "placement: no neuron costs or frequencies");
    if ((size_t)in->n_layer > SIZE_MAX / sizeof(float) / (size_t)in->n_ff)
        return pi_err_set(err, "placement: %d layers of %d neurons is too many", in->n_layer,
                          in->n_ff);
    if (p->ctx < 0 || p->kv_bytes < 1 || p->kv_bytes > 8)
        return pi_err_set(err, "placement: bad context %d or KV element size %d", p->ctx,
                          p->kv_bytes);
    for (int il = 0; il < in->n_layer; il++) {
        uint64_t c = in->neuron_bytes[il];
        if (c < 1 || c > PI_PLACEMENT_MAX_NEURON_BYTES)
            return pi_err_set(err, "placement: layer %d: neuron cost of %llu bytes", il,
                              (unsigned long long)c);
        const float *f = in->freq[il];
        if (!f)
            return pi_err_set(err, "placement: layer %d: no frequencies", il);
        for (int i = 0; i < in->n_ff; i++)
            if (!(f[i] >= 0.0f && f[i] <= 1.0f)) /* also refuses NaN */
                return pi_err_set(err, "placement: layer %d: neuron %d: frequency %g is not in [0, 1]",
                                  il, i, (double)f[i]);
    }
    return 0;
}

/* Fills the reserve fields of out; fails on overflow or a budget below it. */
static int reserve(const pi_placement_input *in, const pi_placement_params *p,
                   pi_placement *out, pi_err *err)
{
    uint64_t kv, reserved;
    if (__builtin_mul_overflow(in->kv_elems_per_token, (uint64_t)p->ctx, &kv) ||
        __builtin_mul_overflow(kv, (uint64_t)p->kv_bytes, &kv) ||
        __builtin_add_overflow(in->resident, kv, &reserved) ||
        __builtin_add_overflow(reserved, p->scratch, &reserved))
        return pi_err_set(err, "placement: the always-resident tensors overflow 64 bits");
    out->resident = in->resident;
    out->kv = kv;
    out->scratch = p->scratch;
    out->reserved = reserved;
    if (p->budget < reserved)
        return pi_err_set(err,
                          "budget of %.1f MiB is below the %.1f MiB the always-resident "
                          "tensors need (attention, embeddings, KV cache for ctx %d, scratch)",
                          MIB(p->budget), MIB(reserved), p->ctx);
    return 0;
}

/* ---- The k-way merge ---- */

static int cmp_desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

typedef struct merge {
    const float *sorted; /* [n_layer][n_ff], each layer hottest first */
    const uint64_t *cost;
    int *pos; /* next neuron of each layer */
    int n_ff;
} merge;

/* Does layer a's next neuron come before layer b's?  f_a / c_a > f_b / c_b,
 * compared as products, which are exact in double (24-bit frequencies times
 * costs below 2^29); equal ratios go to the lower layer. */
static bool before(const merge *m, int a, int b)
{
    double fa = m->sorted[(size_t)a * (size_t)m->n_ff + (size_t)m->pos[a]];
    double fb = m->sorted[(size_t)b * (size_t)m->n_ff + (size_t)m->pos[b]];
    double x = fa * (double)m->cost[b], y = fb * (double)m->cost[a];
    return x > y || (x == y && a < b);
}

static void sift_down(const merge *m, int *heap, int n, int i)
{
    for (;;) {
        int best = i, l = 2 * i + 1, r = l + 1;
        if (l < n && before(m, heap[l], heap[best]))
            best = l;
        if (r < n && before(m, heap[r], heap[best]))
            best = r;
        if (best == i)
            return;
        int t = heap[i];
        heap[i] = heap[best];
        heap[best] = t;
        i = best;
    }
}

/* Takes neurons while they fit in `left` bytes; pos[l] ends as n_gpu[l]. */
static void greedy(const merge *m, int n_layer, int *heap, uint64_t left)
{
    int n = n_layer;
    for (int i = 0; i < n; i++)
        heap[i] = i;
    for (int i = n / 2 - 1; i >= 0; i--)
        sift_down(m, heap, n, i);
    int *pos = m->pos;
    while (n > 0) {
        int l = heap[0];
        bool fits = m->cost[l] <= left;
        if (fits) {
            left -= m->cost[l];
            pos[l]++;
        }
        if (!fits || pos[l] == m->n_ff)
            heap[0] = heap[--n];
        /* Taking a neuron only lowers the layer's key (frequencies are
         * sorted), so the heap is restored from the top either way. */
        sift_down(m, heap, n, 0);
    }
}

/* ---- The plan ---- */

static int fill_layers(const pi_placement_input *in, const float *sorted, const int *pos,
                       pi_placement *out, pi_err *err)
{
    double taken_all = 0, sum_all = 0;
    for (int il = 0; il < in->n_layer; il++) {
        const float *f = sorted + (size_t)il * (size_t)in->n_ff;
        double taken = 0, sum = 0;
        for (int i = 0; i < in->n_ff; i++) {
            if (i == pos[il])
                taken = sum;
            sum += f[i];
        }
        if (pos[il] == in->n_ff)
            taken = sum;
        uint64_t c = in->neuron_bytes[il], all;
        pi_placement_layer *L = &out->layers[il];
        L->n_gpu = pos[il];
        L->bytes = (uint64_t)pos[il] * c;
        L->share = sum > 0 ? taken / sum : 0;
        if (__builtin_mul_overflow((uint64_t)in->n_ff, c, &all) ||
            __builtin_add_overflow(out->ffn_bytes_all, all, &out->ffn_bytes_all))
            return pi_err_set(err, "placement: the FFN weights overflow 64 bits");
        out->ffn_bytes += L->bytes;
        out->n_gpu += L->n_gpu;
        taken_all += taken;
        sum_all += sum;
    }
    out->total = out->reserved + out->ffn_bytes;
    out->share = sum_all > 0 ? taken_all / sum_all : 0;
    return 0;
}

int pi_placement_plan(const pi_placement_input *in, const pi_placement_params *p,
                      pi_placement *out, pi_err *err)
{
    if (!out)
        return pi_err_set(err, "placement: no output");
    memset(out, 0, sizeof *out);
    if (check_input(in, p, err) || reserve(in, p, out, err))
        return -1;
    size_t nl = (size_t)in->n_layer, nf = (size_t)in->n_ff;
    float *sorted = malloc(nl * nf * sizeof *sorted);
    int *pos = calloc(nl, sizeof *pos), *heap = malloc(nl * sizeof *heap);
    out->layers = calloc(nl, sizeof *out->layers);
    int rc = -1;
    if (!sorted || !pos || !heap || !out->layers) {
        pi_err_set(err, "placement: out of memory for %d layers of %d neurons", in->n_layer,
                   in->n_ff);
        goto done;
    }
    for (size_t il = 0; il < nl; il++) {
        memcpy(sorted + il * nf, in->freq[il], nf * sizeof *sorted);
        qsort(sorted + il * nf, nf, sizeof *sorted, cmp_desc);
    }
    merge m = { sorted, in->neuron_bytes, pos, in->n_ff };
    greedy(&m, in->n_layer, heap, p->budget - out->reserved);
    out->params = *p;
    out->n_layer = in->n_layer;
    out->n_ff = in->n_ff;
    rc = fill_layers(in, sorted, pos, out, err);
done:
    free(sorted);
    free(pos);
    free(heap);
    if (rc)
        pi_placement_free(out);
    return rc;
}

void pi_placement_free(pi_placement *pl)
{
    if (!pl)
        return;
    free(pl->layers);
    memset(pl, 0, sizeof *pl);
}

/* ---- From a model ---- */

static uint64_t wbytes(const pi_weight *w)
{
    return w->data ? (uint64_t)w->row_bytes * (uint64_t)w->ne1 : 0;
}

uint64_t pi_placement_resident_bytes(const pi_model *m)
{
    uint64_t b = wbytes(&m->tok_embd) + wbytes(&m->output_norm);
    if (m->output.data != m->tok_embd.data)
        b += wbytes(&m->output);
    for (int il = 0; il < m->hp.n_layer; il++) {
        const pi_layer *l = &m->layers[il];
        const pi_weight *all[] = { &l->attn_norm, &l->wq, &l->wk, &l->wv, &l->wo, &l->bq,
                                   &l->bk, &l->bv, &l->q_norm, &l->k_norm, &l->ffn_norm };
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
            b += wbytes(all[i]);
    }
    return b;
}

int pi_placement_neuron_bytes(const pi_model *m, uint64_t *out, pi_err *err)
{
    const pi_hparams *hp = &m->hp;
    for (int il = 0; il < hp->n_layer; il++) {
        const pi_layer *l = &m->layers[il];
        /* The file's down projection has rows of n_ff (one per output); the
         * packed model's has one row of n_embd per neuron. */
        size_t down = l->down_t ? l->down.row_bytes
                          : pi_row_size(l->down.type, hp->n_embd);
        if (!down)
            return pi_err_set(err, "layer %d: ffn_down type %s cannot hold rows of %d elements",
                              il, pi_type_name(l->down.type), hp->n_embd);
        out[il] = (uint64_t)l->gate.row_bytes + (uint64_t)l->up.row_bytes + (uint64_t)down;
    }
    return 0;
}

int pi_placement_input_from_model(const pi_model *m, const float *const *freq,
                                  uint64_t *neuron_bytes, pi_placement_input *in,
                                  pi_err *err)
{
    const pi_hparams *hp = &m->hp;
    if (pi_placement_neuron_bytes(m, neuron_bytes, err))
        return -1;
    *in = (pi_placement_input){
        .n_layer = hp->n_layer,
        .n_ff = hp->n_ff,
        .neuron_bytes = neuron_bytes,
        .freq = freq,
        .resident = pi_placement_resident_bytes(m),
        .kv_elems_per_token = (uint64_t)hp->n_layer * 2 * (uint64_t)hp->n_head_kv *
                              (uint64_t)hp->head_dim,
    };
    return 0;
}

int pi_placement_plan_model(const pi_model *m, const pi_placement_params *p, pi_placement *out,
                            pi_err *err)
{
    memset(out, 0, sizeof *out);
    if (!m->pack)
        return pi_err_set(err, "%s: not a packed model: placement needs the firing frequencies "
                          "pi-pack stores", pi_gguf_path(m->gguf));
    int nl = m->hp.n_layer;
    const float **freq = malloc((size_t)nl * sizeof *freq);
    uint64_t *bytes = malloc((size_t)nl * sizeof *bytes);
    pi_placement_input in;
    int rc = -1;
    if (!freq || !bytes) {
        pi_err_set(err, "out of memory");
        goto done;
    }
    for (int il = 0; il < nl; il++)
        freq[il] = pi_packinfo_freq(m->pack, il);
    if (!pi_placement_input_from_model(m, freq, bytes, &in, err))
        rc = pi_placement_plan(&in, p, out, err);
done:
    free(freq);
    free(bytes);
    return rc;
}

/* ---- Printing ---- */

int pi_placement_print(const pi_placement *pl, FILE *f)
{
    const pi_placement_params *p = &pl->params;
    fprintf(f, "GPU budget %.1f MiB; always resident %.1f MiB:\n", MIB(p->budget),
            MIB(pl->reserved));
    fprintf(f, "  attention, norms, embeddings  %10.1f MiB\n", MIB(pl->resident));
    fprintf(f, "  KV cache (ctx %d, %d B/elem)  %10.1f MiB\n", p->ctx, p->kv_bytes, MIB(pl->kv));
    fprintf(f, "  scratch                       %10.1f MiB\n", MIB(pl->scratch));
    fprintf(f, "%5s %17s %10s %7s\n", "layer", "neurons on GPU", "MiB", "share");
    for (int il = 0; il < pl->n_layer; il++) {
        const pi_placement_layer *L = &pl->layers[il];
        fprintf(f, "%5d %8d/%-8d %10.1f %6.1f%%\n", il, L->n_gpu, pl->n_ff, MIB(L->bytes),
                100.0 * L->share);
    }
    fprintf(f, "%5s %8lld/%-8lld %10.1f %6.1f%%\n", "all", (long long)pl->n_gpu,
            (long long)pl->n_layer * pl->n_ff, MIB(pl->ffn_bytes), 100.0 * pl->share);
    fprintf(f, "FFN on GPU %.1f of %.1f MiB; GPU total %.1f of %.1f MiB; "
               "expected share of FFN activations on GPU %.1f%%\n",
            MIB(pl->ffn_bytes), MIB(pl->ffn_bytes_all), MIB(pl->total), MIB(p->budget),
            100.0 * pl->share);
    return ferror(f) ? -1 : 0;
}

/* ---- Sizes ---- */

static bool digit(char c) { return c >= '0' && c <= '9'; }

static char lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c; }

int pi_parse_size(const char *s, uint64_t *out)
{
    if (!s || !out || !digit(*s))
        return -1;
    uint64_t whole = 0, frac = 0, scale = 1;
    for (; digit(*s); s++) {
        unsigned d = (unsigned)(*s - '0');
        if (whole > (UINT64_MAX - d) / 10)
            return -1;
        whole = whole * 10 + d;
    }
    bool has_frac = *s == '.';
    if (has_frac) {
        if (!digit(*++s))
            return -1;
        for (; digit(*s); s++)
            if (scale < 1000000) { /* later digits are below a byte per MiB */
                frac = frac * 10 + (uint64_t)(*s - '0');
                scale *= 10;
            }
    }
    int shift = 0;
    switch (lower(*s)) {
    case 'k': shift = 10; break;
    case 'm': shift = 20; break;
    case 'g': shift = 30; break;
    case 't': shift = 40; break;
    }
    if (shift) {
        s++;
        if (lower(*s) == 'i' && lower(s[1]) == 'b')
            s += 2;
        else if (lower(*s) == 'b')
            s++;
    } else {
        if (has_frac)
            return -1; /* no fractions of a byte */
        if (lower(*s) == 'b')
            s++;
    }
    if (*s)
        return -1;
    if (whole > UINT64_MAX >> shift)
        return -1;
    /* frac < 10^6 and the unit <= 2^40: the product fits in 64 bits. */
    uint64_t v = whole << shift, part = (frac << shift) / scale;
    if (__builtin_add_overflow(v, part, &v))
        return -1;
    *out = v;
    return 0;
}
