/*
 * predictor: per-layer activation predictors, their logits and their GGUF
 * file (see predictor.h).
 *
 * Each layer keeps its weights twice: row-major as in the file (what
 * pi_predictor_get_layer hands out and save writes) and transposed, so that
 * both products of the logits run as pi_predictor_gemm with the long
 * dimension innermost (x W1^T over rank, h W2^T over n_ff).
 */
#include "predictor.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "gguf_write.h"

typedef struct player {
    int rank;
    float threshold;
    float *mem;            /* one allocation holding the six arrays */
    float *w1, *b1, *w2, *b2;
    float *w1t, *w2t;      /* n_embd x rank, rank x n_ff */
} player;

struct pi_predictor {
    int n_layer, n_embd, n_ff;
    uint64_t fingerprint;
    pi_type wtype;
    pi_predictor_meta meta;
    player *layers;
};

/* ---- the matrix product ---- */

/* One 4 x 8 tile of C: a fixed shape, so that the compiler keeps the
 * accumulators in vector registers (eight SSE registers at the x86-64
 * baseline) and each k step is one broadcast and two 4-wide multiplies and
 * adds per row. */
static void tile_4x8(int64_t k, const float *a, int64_t lda, const float *b, int64_t ldb,
                     float *c, int64_t ldc)
{
    float acc[4][8];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 8; j++)
            acc[i][j] = c[i * ldc + j];
    for (int64_t l = 0; l < k; l++) {
        const float *bl = b + l * ldb;
        for (int i = 0; i < 4; i++) {
            float ail = a[i * lda + l];
            for (int j = 0; j < 8; j++)
                acc[i][j] += ail * bl[j];
        }
    }
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 8; j++)
            c[i * ldc + j] = acc[i][j];
}

static void tile_1x8(int64_t k, const float *a, const float *b, int64_t ldb, float *c)
{
    float acc[8];
    for (int j = 0; j < 8; j++)
        acc[j] = c[j];
    for (int64_t l = 0; l < k; l++) {
        const float *bl = b + l * ldb;
        for (int j = 0; j < 8; j++)
            acc[j] += a[l] * bl[j];
    }
    for (int j = 0; j < 8; j++)
        c[j] = acc[j];
}

void pi_predictor_gemm_scalar(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                              const float *b, int64_t ldb, float *c, int64_t ldc)
{
    int64_t n8 = n - n % 8, i = 0;
    for (; i + 4 <= m; i += 4)
        for (int64_t j = 0; j < n8; j += 8)
            tile_4x8(k, a + i * lda, lda, b + j, ldb, c + i * ldc + j, ldc);
    for (; i < m; i++)
        for (int64_t j = 0; j < n8; j += 8)
            tile_1x8(k, a + i * lda, b + j, ldb, c + i * ldc + j);
    for (i = 0; i < m; i++)
        for (int64_t j = n8; j < n; j++) {
            float s = c[i * ldc + j];
            for (int64_t l = 0; l < k; l++)
                s += a[i * lda + l] * b[l * ldb + j];
            c[i * ldc + j] = s;
        }
}

/* Chosen once; read-only afterwards (set under pthread_once). */
static bool use_avx2;
static pthread_once_t avx2_once = PTHREAD_ONCE_INIT;

static void pick_isa(void)
{
    const pi_cpu *c = pi_cpu_features();
    use_avx2 = c->avx2 && c->fma;
}

void pi_predictor_gemm(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                       const float *b, int64_t ldb, float *c, int64_t ldc)
{
    pthread_once(&avx2_once, pick_isa);
    if (use_avx2)
        pi_predictor_gemm_avx2(m, n, k, a, lda, b, ldb, c, ldc);
    else
        pi_predictor_gemm_scalar(m, n, k, a, lda, b, ldb, c, ldc);
}

/* ---- the container ---- */

pi_predictor *pi_predictor_new(int n_layer, int n_embd, int n_ff, uint64_t fingerprint,
                               pi_err *err)
{
    if (n_layer < 1 || n_layer > PI_PREDICTOR_MAX_LAYERS || n_embd < 1 ||
        n_embd > PI_PREDICTOR_MAX_DIM || n_ff < 1 || n_ff > PI_PREDICTOR_MAX_DIM) {
        pi_err_set(err, "predictor shape out of range (%d layers, n_embd %d, n_ff %d)", n_layer,
                   n_embd, n_ff);
        return NULL;
    }
    pi_predictor *p = calloc(1, sizeof *p);
    if (!p || !(p->layers = calloc((size_t)n_layer, sizeof *p->layers))) {
        free(p);
        pi_err_set(err, "out of memory");
        return NULL;
    }
    p->n_layer = n_layer;
    p->n_embd = n_embd;
    p->n_ff = n_ff;
    p->fingerprint = fingerprint;
    p->wtype = PI_TYPE_F16;
    p->meta = (pi_predictor_meta){ NAN, NAN, NAN };
    return p;
}

void pi_predictor_free(pi_predictor *p)
{
    if (!p)
        return;
    for (int il = 0; il < p->n_layer; il++)
        free(p->layers[il].mem);
    free(p->layers);
    free(p);
}

int pi_predictor_n_layer(const pi_predictor *p) { return p->n_layer; }
int pi_predictor_n_embd(const pi_predictor *p) { return p->n_embd; }
int pi_predictor_n_ff(const pi_predictor *p) { return p->n_ff; }
uint64_t pi_predictor_fingerprint(const pi_predictor *p) { return p->fingerprint; }
pi_type pi_predictor_wtype(const pi_predictor *p) { return p->wtype; }
void pi_predictor_set_meta(pi_predictor *p, const pi_predictor_meta *meta) { p->meta = *meta; }
pi_predictor_meta pi_predictor_get_meta(const pi_predictor *p) { return p->meta; }

/* Rounds n weights to the storage type in place; -1 with the index of the
 * first that is (or became) non-finite. */
static int64_t round_weights(pi_type t, float *w, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        if (t == PI_TYPE_F16)
            w[i] = pi_f16_to_f32(pi_f32_to_f16(w[i]));
        if (!isfinite(w[i]))
            return i;
    }
    return -1;
}

static int64_t first_nonfinite(const float *v, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return i;
    return -1;
}

static void transpose(const float *src, int64_t rows, int64_t cols, float *dst)
{
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++)
            dst[j * rows + i] = src[i * cols + j];
}

/* Fills a new layer from the caller's arrays; -1 with err set. */
static int fill_layer(const pi_predictor *p, int il, player *ly, int rank, const float *w1,
                      const float *b1, const float *w2, const float *b2, pi_err *err)
{
    int64_t d = p->n_embd, ff = p->n_ff, r = rank;
    size_t n = (size_t)(2 * r * d + r + 2 * ff * r + ff);
    if (!(ly->mem = malloc(n * sizeof(float))))
        return pi_err_set(err, "layer %d: out of memory", il);
    ly->rank = rank;
    ly->w1 = ly->mem;
    ly->b1 = ly->w1 + r * d;
    ly->w2 = ly->b1 + r;
    ly->b2 = ly->w2 + ff * r;
    ly->w1t = ly->b2 + ff;
    ly->w2t = ly->w1t + d * r;
    memcpy(ly->w1, w1, (size_t)(r * d) * sizeof(float));
    memcpy(ly->b1, b1, (size_t)r * sizeof(float));
    memcpy(ly->w2, w2, (size_t)(ff * r) * sizeof(float));
    memcpy(ly->b2, b2, (size_t)ff * sizeof(float));
    static const char *const names[4] = { "w1", "b1", "w2", "b2" };
    float *arr[4] = { ly->w1, ly->b1, ly->w2, ly->b2 };
    int64_t len[4] = { r * d, r, ff * r, ff };
    for (int t = 0; t < 4; t++) {
        bool w = t == 0 || t == 2;
        int64_t bad = w ? round_weights(p->wtype, arr[t], len[t]) : first_nonfinite(arr[t], len[t]);
        if (bad >= 0) {
            pi_err_set(err, "layer %d: %s[%lld] is %s", il, names[t], (long long)bad,
                       w && p->wtype == PI_TYPE_F16 && isfinite((t ? w2 : w1)[bad])
                           ? "out of F16 range" : "not finite");
            free(ly->mem);
            return -1;
        }
    }
    transpose(ly->w1, r, d, ly->w1t);
    transpose(ly->w2, ff, r, ly->w2t);
    return 0;
}

int pi_predictor_set_layer(pi_predictor *p, int il, int rank, const float *w1, const float *b1,
                           const float *w2, const float *b2, float threshold, pi_err *err)
{
    if (il < 0 || il >= p->n_layer)
        return pi_err_set(err, "layer %d out of range (0 to %d)", il, p->n_layer - 1);
    if (rank < 0 || rank > PI_PREDICTOR_MAX_RANK)
        return pi_err_set(err, "layer %d: rank %d out of range (0 to %d)", il, rank,
                          PI_PREDICTOR_MAX_RANK);
    player ly = { 0 };
    if (rank > 0) {
        if (!isfinite(threshold))
            return pi_err_set(err, "layer %d: threshold is not finite", il);
        if (!w1 || !b1 || !w2 || !b2)
            return pi_err_set(err, "layer %d: missing weights", il);
        if (fill_layer(p, il, &ly, rank, w1, b1, w2, b2, err))
            return -1;
        ly.threshold = threshold;
    }
    free(p->layers[il].mem);
    p->layers[il] = ly;
    return 0;
}

int pi_predictor_set_wtype(pi_predictor *p, pi_type type, pi_err *err)
{
    if (type != PI_TYPE_F16 && type != PI_TYPE_F32)
        return pi_err_set(err, "predictor weights must be F16 or F32, not %s", pi_type_name(type));
    if (type == p->wtype)
        return 0;
    if (type == PI_TYPE_F16) {
        /* Check every layer first so that a failure changes nothing. */
        for (int il = 0; il < p->n_layer; il++) {
            const player *ly = &p->layers[il];
            int64_t n1 = (int64_t)ly->rank * p->n_embd, n2 = (int64_t)ly->rank * p->n_ff;
            for (int64_t i = 0; i < n1 + n2; i++) {
                float v = i < n1 ? ly->w1[i] : ly->w2[i - n1];
                if (!isfinite(pi_f16_to_f32(pi_f32_to_f16(v))))
                    return pi_err_set(err, "layer %d: weight %g is out of F16 range", il, v);
            }
        }
        for (int il = 0; il < p->n_layer; il++) {
            player *ly = &p->layers[il];
            if (!ly->rank)
                continue;
            round_weights(type, ly->w1, (int64_t)ly->rank * p->n_embd);
            round_weights(type, ly->w2, (int64_t)ly->rank * p->n_ff);
            transpose(ly->w1, ly->rank, p->n_embd, ly->w1t);
            transpose(ly->w2, p->n_ff, ly->rank, ly->w2t);
        }
    }
    p->wtype = type;
    return 0;
}

int pi_predictor_set_threshold(pi_predictor *p, int il, float threshold)
{
    if (il < 0 || il >= p->n_layer || !p->layers[il].rank || !isfinite(threshold))
        return -1;
    p->layers[il].threshold = threshold;
    return 0;
}

int pi_predictor_get_layer(const pi_predictor *p, int il, pi_predictor_layer *out)
{
    if (il < 0 || il >= p->n_layer)
        return -1;
    const player *ly = &p->layers[il];
    *out = (pi_predictor_layer){ ly->rank, ly->threshold, ly->w1, ly->b1, ly->w2, ly->b2 };
    return 0;
}

/* ---- logits ---- */

/* Hidden activations of a block of tokens live on the stack: this many
 * floats (16 KiB), so one block holds 4096 / rank tokens. */
#define HBUF 4096

int pi_predictor_layer_logits(const pi_predictor *p, int il, const float *x, int64_t n,
                              float *out)
{
    if (il < 0 || il >= p->n_layer || !p->layers[il].rank || n < 0)
        return -1;
    const player *ly = &p->layers[il];
    int64_t d = p->n_embd, ff = p->n_ff, r = ly->rank, block = HBUF / r;
    float h[HBUF];
    for (int64_t t0 = 0; t0 < n; t0 += block) {
        int64_t nb = n - t0 < block ? n - t0 : block;
        for (int64_t t = 0; t < nb; t++)
            memcpy(h + t * r, ly->b1, (size_t)r * sizeof(float));
        pi_predictor_gemm(nb, r, d, x + t0 * d, d, ly->w1t, r, h, r);
        for (int64_t i = 0; i < nb * r; i++)
            h[i] = h[i] > 0.0f ? h[i] : 0.0f;
        float *z = out + t0 * ff;
        for (int64_t t = 0; t < nb; t++)
            memcpy(z + t * ff, ly->b2, (size_t)ff * sizeof(float));
        pi_predictor_gemm(nb, ff, r, h, r, ly->w2t, ff, z, ff);
    }
    return 0;
}

int pi_predictor_select(const pi_predictor *p, int il, const float *x, float *logits,
                        int32_t *idx)
{
    if (pi_predictor_layer_logits(p, il, x, 1, logits))
        return -1;
    float thr = p->layers[il].threshold;
    int count = 0;
    for (int i = 0; i < p->n_ff; i++)
        if (logits[i] > thr)
            idx[count++] = i;
    return count;
}

/* ---- saving ---- */

/* The F16 copies of the weights live until the file is written. */
static int add_weight(pi_gguf_writer *w, const pi_predictor *p, const char *name,
                      const float *v, int64_t cols, int64_t rows, uint16_t **keep, pi_err *err)
{
    int64_t ne[2] = { cols, rows }, n = cols * rows;
    if (p->wtype == PI_TYPE_F32)
        return pi_gguf_add_tensor(w, name, PI_TYPE_F32, 2, ne, v, (uint64_t)n * 4, err);
    if (!(*keep = malloc((size_t)n * sizeof(uint16_t))))
        return pi_err_set(err, "out of memory");
    for (int64_t i = 0; i < n; i++)
        (*keep)[i] = pi_f32_to_f16(v[i]);
    return pi_gguf_add_tensor(w, name, PI_TYPE_F16, 2, ne, *keep, (uint64_t)n * 2, err);
}

static int add_layer(pi_gguf_writer *w, const pi_predictor *p, int il, uint16_t **keep,
                     pi_err *err)
{
    const player *ly = &p->layers[il];
    int64_t r = ly->rank, ff = p->n_ff;
    char name[64];
    snprintf(name, sizeof name, "pred.%d.w1", il);
    if (add_weight(w, p, name, ly->w1, p->n_embd, r, &keep[0], err))
        return -1;
    snprintf(name, sizeof name, "pred.%d.b1", il);
    if (pi_gguf_add_tensor(w, name, PI_TYPE_F32, 1, &r, ly->b1, (uint64_t)r * 4, err))
        return -1;
    snprintf(name, sizeof name, "pred.%d.w2", il);
    if (add_weight(w, p, name, ly->w2, r, ff, &keep[1], err))
        return -1;
    snprintf(name, sizeof name, "pred.%d.b2", il);
    return pi_gguf_add_tensor(w, name, PI_TYPE_F32, 1, &ff, ly->b2, (uint64_t)ff * 4, err);
}

static int set_meta(pi_gguf_writer *w, const pi_predictor *p, uint32_t *ranks, float *thr,
                    pi_err *err)
{
    for (int il = 0; il < p->n_layer; il++) {
        ranks[il] = (uint32_t)p->layers[il].rank;
        thr[il] = p->layers[il].threshold;
    }
    int rc = pi_gguf_set_u32(w, "pi.predictor.version", PI_PREDICTOR_VERSION, err);
    rc = rc ? rc : pi_gguf_set_u64(w, "pi.predictor.fingerprint", p->fingerprint, err);
    rc = rc ? rc : pi_gguf_set_u32(w, "pi.predictor.n_layer", (uint32_t)p->n_layer, err);
    rc = rc ? rc : pi_gguf_set_u32(w, "pi.predictor.n_embd", (uint32_t)p->n_embd, err);
    rc = rc ? rc : pi_gguf_set_u32(w, "pi.predictor.n_ff", (uint32_t)p->n_ff, err);
    rc = rc ? rc : pi_gguf_set_arr(w, "pi.predictor.rank", PI_GGUF_U32, ranks,
                                   (uint64_t)p->n_layer, err);
    rc = rc ? rc : pi_gguf_set_arr(w, "pi.predictor.threshold", PI_GGUF_F32, thr,
                                   (uint64_t)p->n_layer, err);
    const char *keys[3] = { "pi.predictor.recall_target", "pi.predictor.keep_mass",
                            "pi.predictor.label_threshold" };
    float vals[3] = { p->meta.recall_target, p->meta.keep_mass, p->meta.label_threshold };
    for (int i = 0; i < 3 && !rc; i++)
        if (isfinite(vals[i]))
            rc = pi_gguf_set_f32(w, keys[i], vals[i], err);
    return rc;
}

/* The F16 copies a writer references until it has written. */
struct pi_predictor_hold {
    int n;
    uint16_t **keep; /* [2 * n_layer] */
};

void pi_predictor_hold_free(pi_predictor_hold *h)
{
    if (!h)
        return;
    for (int i = 0; h->keep && i < h->n; i++)
        free(h->keep[i]);
    free(h->keep);
    free(h);
}

int pi_predictor_add_to_writer(const pi_predictor *p, pi_gguf_writer *w, pi_predictor_hold **hold,
                               pi_err *err)
{
    *hold = calloc(1, sizeof **hold);
    uint32_t *ranks = malloc((size_t)p->n_layer * sizeof *ranks);
    float *thr = malloc((size_t)p->n_layer * sizeof *thr);
    int rc = -1;
    if (!*hold || !ranks || !thr ||
        !((*hold)->keep = calloc((size_t)p->n_layer * 2, sizeof *(*hold)->keep))) {
        pi_err_set(err, "out of memory");
        goto done;
    }
    (*hold)->n = 2 * p->n_layer;
    if (set_meta(w, p, ranks, thr, err))
        goto done;
    for (int il = 0; il < p->n_layer; il++)
        if (p->layers[il].rank && add_layer(w, p, il, (*hold)->keep + 2 * il, err))
            goto done;
    rc = 0;
done:
    free(thr);
    free(ranks);
    if (rc) {
        pi_predictor_hold_free(*hold);
        *hold = NULL;
    }
    return rc;
}

int pi_predictor_save(const pi_predictor *p, const char *path, pi_err *err)
{
    pi_gguf_writer *w = pi_gguf_writer_new(0);
    pi_predictor_hold *hold = NULL;
    pi_err e = { { 0 } };
    int rc = -1;
    if (!w) {
        pi_err_set(&e, "out of memory");
        goto done;
    }
    if (pi_gguf_set_str(w, "general.architecture", PI_PREDICTOR_ARCH, &e) ||
        pi_predictor_add_to_writer(p, w, &hold, &e))
        goto done;
    rc = pi_gguf_writer_write(w, path, err);
done:
    if (rc && e.msg[0])
        pi_err_set(err, "%s: %s", path, e.msg);
    pi_predictor_hold_free(hold);
    pi_gguf_writer_free(w);
    return rc;
}

/* ---- loading ---- */

typedef struct loader {
    const pi_gguf *g;
    const char *path;
    pi_err *err;
    bool embedded; /* inside a packed model, among the model's keys and tensors */
} loader;

#define FAIL(ld, ...) pi_err_set((ld)->err, __VA_ARGS__)

static int get_dim(const loader *ld, const char *key, uint32_t max, int *out)
{
    uint32_t v;
    if (pi_gguf_get_u32(ld->g, key, &v))
        return pi_gguf_get(ld->g, key) ? FAIL(ld, "%s: %s is not a u32", ld->path, key)
                                       : FAIL(ld, "%s: missing key %s", ld->path, key);
    if (v < 1 || v > max)
        return FAIL(ld, "%s: %s = %u out of range (1 to %u)", ld->path, key, v, max);
    *out = (int)v;
    return 0;
}

static int get_opt_f32(const loader *ld, const char *key, float *out)
{
    *out = NAN;
    if (!pi_gguf_get(ld->g, key))
        return 0;
    if (pi_gguf_get_f32(ld->g, key, out))
        return FAIL(ld, "%s: %s is not a number", ld->path, key);
    return 0;
}

static int check_header(const loader *ld, uint64_t *fp, int dims[3])
{
    char arch[64];
    if (ld->embedded)
        ; /* the model's architecture */
    else if (pi_gguf_get_cstr(ld->g, "general.architecture", arch, sizeof arch))
        return FAIL(ld, "%s: not a predictor file (no general.architecture)", ld->path);
    else if (strcmp(arch, PI_PREDICTOR_ARCH))
        return FAIL(ld, "%s: not a predictor file (architecture '%s')", ld->path, arch);
    uint32_t version;
    if (pi_gguf_get_u32(ld->g, "pi.predictor.version", &version))
        return FAIL(ld, "%s: missing or invalid pi.predictor.version", ld->path);
    if (version != PI_PREDICTOR_VERSION)
        return FAIL(ld, "%s: predictor format version %u (this build reads %d)", ld->path,
                    version, PI_PREDICTOR_VERSION);
    if (pi_gguf_get_u64(ld->g, "pi.predictor.fingerprint", fp))
        return FAIL(ld, "%s: missing or invalid pi.predictor.fingerprint", ld->path);
    if (get_dim(ld, "pi.predictor.n_layer", PI_PREDICTOR_MAX_LAYERS, &dims[0]) ||
        get_dim(ld, "pi.predictor.n_embd", PI_PREDICTOR_MAX_DIM, &dims[1]) ||
        get_dim(ld, "pi.predictor.n_ff", PI_PREDICTOR_MAX_DIM, &dims[2]))
        return -1;
    return 0;
}

static const pi_gguf_arr *get_per_layer(const loader *ld, const char *key, pi_gguf_type t,
                                        int n_layer)
{
    const pi_gguf_arr *a = pi_gguf_get_arr(ld->g, key, t);
    if (!a)
        FAIL(ld, "%s: missing key %s (an array of %s)", ld->path, key, pi_gguf_type_name(t));
    else if (a->n != (uint64_t)n_layer)
        FAIL(ld, "%s: %s has %llu entries for %d layers", ld->path, key,
             (unsigned long long)a->n, n_layer);
    else
        return a;
    return NULL;
}

/* Finds tensor pred.<il>.<what>, checks its type and shape, and decodes it
 * into dst (ne0 * ne1 floats, every one finite) unless dst is NULL. */
static int read_tensor(const loader *ld, int il, const char *what, bool weight, int64_t ne0,
                       int64_t ne1, float *dst)
{
    char name[64];
    snprintf(name, sizeof name, "pred.%d.%s", il, what);
    const pi_gguf_tensor *t = pi_gguf_find_tensor(ld->g, name);
    if (!t)
        return FAIL(ld, "%s: missing tensor '%s'", ld->path, name);
    if (t->type != PI_TYPE_F32 && !(weight && t->type == PI_TYPE_F16))
        return FAIL(ld, "%s: tensor '%s' has type %s, expected %s", ld->path, name,
                    pi_type_name(t->type), weight ? "F16 or F32" : "F32");
    uint32_t dims = weight ? 2 : 1;
    if (t->n_dims != dims || t->ne[0] != ne0 || (weight && t->ne[1] != ne1))
        return FAIL(ld, "%s: tensor '%s' has shape [%lld, %lld], expected [%lld, %lld]",
                    ld->path, name, (long long)t->ne[0],
                    (long long)(t->n_dims > 1 ? t->ne[1] : 1), (long long)ne0, (long long)ne1);
    int64_t n = dst ? ne0 * ne1 : 0;
    for (int64_t i = 0; i < n; i++) {
        if (t->type == PI_TYPE_F16) {
            uint16_t h;
            memcpy(&h, (const uint8_t *)t->data + 2 * i, 2);
            dst[i] = pi_f16_to_f32(h);
        } else {
            memcpy(&dst[i], (const uint8_t *)t->data + 4 * i, 4);
        }
        if (!isfinite(dst[i]))
            return FAIL(ld, "%s: tensor '%s': element %lld is not finite", ld->path, name,
                        (long long)i);
    }
    return 0;
}

/* Reads layer il into p, or with a NULL buf only checks its tensors. */
static int read_layer(const loader *ld, pi_predictor *p, int il, int rank, float thr,
                      float *buf)
{
    int64_t d = p->n_embd, ff = p->n_ff, r = rank;
    float *w1 = buf, *b1 = buf ? w1 + r * d : NULL, *w2 = buf ? b1 + r : NULL;
    float *b2 = buf ? w2 + ff * r : NULL;
    if (read_tensor(ld, il, "w1", true, d, r, w1) || read_tensor(ld, il, "b1", false, r, 1, b1) ||
        read_tensor(ld, il, "w2", true, r, ff, w2) || read_tensor(ld, il, "b2", false, ff, 1, b2))
        return -1;
    if (!buf)
        return 0;
    pi_err e;
    if (pi_predictor_set_layer(p, il, rank, w1, b1, w2, b2, thr, &e))
        return FAIL(ld, "%s: %s", ld->path, e.msg);
    return 0;
}

/* Is `name` one of the tensors of a present layer? */
static bool expected_tensor(const pi_predictor *p, const char *name)
{
    int il, end = 0;
    char what[3];
    if (sscanf(name, "pred.%d.%2[wb12]%n", &il, what, &end) != 2 || name[end] || il < 0 ||
        il >= p->n_layer || !p->layers[il].rank)
        return false;
    char canon[64];
    snprintf(canon, sizeof canon, "pred.%d.%s", il, what);
    return !strcmp(canon, name) && (!strcmp(what, "w1") || !strcmp(what, "b1") ||
                                    !strcmp(what, "w2") || !strcmp(what, "b2"));
}

/* Weights are F16 in memory only when every weight tensor is F16 (so
 * nothing read is rounded). */
static pi_type file_wtype(const pi_gguf *g)
{
    for (int64_t i = 0; i < pi_gguf_n_tensors(g); i++)
        if (pi_gguf_tensor_at(g, i)->type == PI_TYPE_F32 &&
            !strncmp(pi_gguf_tensor_at(g, i)->name, "pred.", 5) &&
            strstr(pi_gguf_tensor_at(g, i)->name, ".w"))
            return PI_TYPE_F32;
    return PI_TYPE_F16;
}

static int read_layers(const loader *ld, pi_predictor *p)
{
    const pi_gguf_arr *ranks = get_per_layer(ld, "pi.predictor.rank", PI_GGUF_U32, p->n_layer);
    const pi_gguf_arr *thr = ranks ? get_per_layer(ld, "pi.predictor.threshold", PI_GGUF_F32,
                                                   p->n_layer) : NULL;
    if (!thr)
        return -1;
    int64_t max_rank = 0, present = 0;
    for (int il = 0; il < p->n_layer; il++) {
        int64_t r = pi_gguf_arr_i64(ranks, (uint64_t)il);
        if (r > PI_PREDICTOR_MAX_RANK)
            return FAIL(ld, "%s: layer %d: rank %lld out of range (0 to %d)", ld->path, il,
                        (long long)r, PI_PREDICTOR_MAX_RANK);
        if (r > 0 && !isfinite(pi_gguf_arr_f32(thr, (uint64_t)il)))
            return FAIL(ld, "%s: layer %d: threshold is not finite", ld->path, il);
        /* Shapes first: the buffer below is sized from the header, but the
         * tensors' existence proves the file holds that much data. */
        if (r > 0 && read_layer(ld, p, il, (int)r, 0, NULL))
            return -1;
        max_rank = r > max_rank ? r : max_rank;
        present += r > 0;
    }
    int64_t d = p->n_embd, ff = p->n_ff;
    float *buf = malloc((size_t)(max_rank * (d + ff + 1) + ff) * sizeof(float));
    if (!buf)
        return FAIL(ld, "%s: out of memory", ld->path);
    int rc = 0;
    for (int il = 0; il < p->n_layer && !rc; il++) {
        int rank = (int)pi_gguf_arr_i64(ranks, (uint64_t)il);
        if (rank)
            rc = read_layer(ld, p, il, rank, pi_gguf_arr_f32(thr, (uint64_t)il), buf);
    }
    free(buf);
    if (rc || ld->embedded || pi_gguf_n_tensors(ld->g) == 4 * present)
        return rc;
    for (int64_t i = 0; i < pi_gguf_n_tensors(ld->g); i++) {
        const char *name = pi_gguf_tensor_at(ld->g, i)->name;
        if (!expected_tensor(p, name))
            return FAIL(ld, "%s: unexpected tensor '%s'", ld->path, name);
    }
    return 0;
}

static pi_predictor *from_gguf(const pi_gguf *g, bool embedded, pi_err *err)
{
    loader ld = { g, pi_gguf_path(g), err, embedded };
    uint64_t fp;
    int dims[3];
    if (check_header(&ld, &fp, dims))
        return NULL;
    pi_predictor_meta meta;
    if (get_opt_f32(&ld, "pi.predictor.recall_target", &meta.recall_target) ||
        get_opt_f32(&ld, "pi.predictor.keep_mass", &meta.keep_mass) ||
        get_opt_f32(&ld, "pi.predictor.label_threshold", &meta.label_threshold))
        return NULL;
    pi_err e;
    pi_predictor *p = pi_predictor_new(dims[0], dims[1], dims[2], fp, &e);
    if (!p) {
        pi_err_set(err, "%s: %s", ld.path, e.msg);
        return NULL;
    }
    p->wtype = file_wtype(g);
    p->meta = meta;
    if (read_layers(&ld, p)) {
        pi_predictor_free(p);
        return NULL;
    }
    return p;
}

pi_predictor *pi_predictor_from_gguf(const pi_gguf *g, pi_err *err)
{
    return from_gguf(g, false, err);
}

pi_predictor *pi_predictor_from_packed(const pi_gguf *g, pi_err *err)
{
    return from_gguf(g, true, err);
}

pi_predictor *pi_predictor_load(const char *path, pi_err *err)
{
    pi_gguf *g = pi_gguf_open(path, err);
    if (!g)
        return NULL;
    pi_predictor *p = pi_predictor_from_gguf(g, err);
    pi_gguf_close(g);
    return p;
}
