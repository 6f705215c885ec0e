/*
 * gguf: the GGUF reader (see gguf.h).
 *
 * Layout of a file: magic, version (u32), tensor count (u64), metadata count
 * (u64), the metadata key/value pairs, the tensor infos (name, n_dims, dims,
 * type, offset), padding to `general.alignment`, then the tensor data.
 * Parsing is a cursor over the buffer that refuses to step past its end; every
 * count is checked against the bytes left before anything is allocated for it,
 * so a hostile header cannot make us allocate more than a small multiple of
 * the file size.
 */
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "quant.h"

struct pi_gguf {
    char *path;
    const uint8_t *buf;
    size_t size;
    void *map;      /* mmap'ed region, or NULL */
    void *heap;     /* buffer read from a pipe, or NULL */
    uint32_t version;
    uint32_t alignment;
    uint64_t data_offset;
    int64_t n_kv, n_tensors;
    pi_gguf_kv *kv;
    pi_gguf_tensor *tensors;
    /* Every array of parsed items, kept for freeing. */
    pi_gguf_value **allocs;
    size_t n_allocs, cap_allocs;
};

typedef struct cursor {
    const uint8_t *p, *end;
    const char *name;
    pi_err *err;
} cursor;

static size_t left(const cursor *c) { return (size_t)(c->end - c->p); }

static int need(cursor *c, uint64_t n, const char *what)
{
    if (n > left(c))
        return pi_err_set(c->err, "%s: truncated file: %s needs %llu bytes, %zu left",
                          c->name, what, (unsigned long long)n, left(c));
    return 0;
}

static int rd(cursor *c, void *out, size_t n, const char *what)
{
    if (need(c, n, what))
        return -1;
    memcpy(out, c->p, n);
    c->p += n;
    return 0;
}

static int rd_u32(cursor *c, uint32_t *v, const char *what) { return rd(c, v, 4, what); }
static int rd_u64(cursor *c, uint64_t *v, const char *what) { return rd(c, v, 8, what); }

static int rd_str(cursor *c, pi_gguf_str *s, const char *what)
{
    uint64_t len;
    if (rd_u64(c, &len, what) || need(c, len, what))
        return -1;
    s->ptr = (const char *)c->p;
    s->len = len;
    c->p += len;
    return 0;
}

/* Keys and tensor names become C strings: they must hold no NUL. */
static char *dup_name(cursor *c, pi_gguf_str s, const char *what)
{
    if (memchr(s.ptr, 0, s.len)) {
        pi_err_set(c->err, "%s: %s contains a NUL byte", c->name, what);
        return NULL;
    }
    char *d = malloc(s.len + 1);
    if (!d) {
        pi_err_set(c->err, "%s: out of memory for %s", c->name, what);
        return NULL;
    }
    memcpy(d, s.ptr, s.len);
    d[s.len] = 0;
    return d;
}

size_t pi_gguf_type_size(pi_gguf_type t)
{
    static const uint8_t size[PI_GGUF_TYPE_COUNT] = {
        [PI_GGUF_U8] = 1, [PI_GGUF_I8] = 1, [PI_GGUF_U16] = 2, [PI_GGUF_I16] = 2,
        [PI_GGUF_U32] = 4, [PI_GGUF_I32] = 4, [PI_GGUF_F32] = 4, [PI_GGUF_BOOL] = 1,
        [PI_GGUF_U64] = 8, [PI_GGUF_I64] = 8, [PI_GGUF_F64] = 8,
    };
    return (unsigned)t < PI_GGUF_TYPE_COUNT ? size[t] : 0;
}

const char *pi_gguf_type_name(pi_gguf_type t)
{
    static const char *const names[PI_GGUF_TYPE_COUNT] = {
        "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "str", "arr", "u64", "i64", "f64",
    };
    return (unsigned)t < PI_GGUF_TYPE_COUNT ? names[t] : "?";
}

/* Decodes one scalar stored little-endian at p into v. */
static void scalar_from(pi_gguf_value *v, pi_gguf_type t, const uint8_t *p)
{
    v->type = t;
    switch (t) {
    case PI_GGUF_U8: v->v.u64 = p[0]; break;
    case PI_GGUF_I8: v->v.i64 = (int8_t)p[0]; break;
    case PI_GGUF_BOOL: v->v.b = p[0] != 0; break;
    case PI_GGUF_U16: { uint16_t x; memcpy(&x, p, 2); v->v.u64 = x; break; }
    case PI_GGUF_I16: { int16_t x; memcpy(&x, p, 2); v->v.i64 = x; break; }
    case PI_GGUF_U32: { uint32_t x; memcpy(&x, p, 4); v->v.u64 = x; break; }
    case PI_GGUF_I32: { int32_t x; memcpy(&x, p, 4); v->v.i64 = x; break; }
    case PI_GGUF_F32: { float x; memcpy(&x, p, 4); v->v.f64 = x; break; }
    case PI_GGUF_U64: memcpy(&v->v.u64, p, 8); break;
    case PI_GGUF_I64: memcpy(&v->v.i64, p, 8); break;
    case PI_GGUF_F64: memcpy(&v->v.f64, p, 8); break;
    default: break;
    }
}

static int keep_alloc(pi_gguf *g, pi_gguf_value *items)
{
    if (g->n_allocs == g->cap_allocs) {
        size_t cap = g->cap_allocs ? 2 * g->cap_allocs : 16;
        pi_gguf_value **a = realloc(g->allocs, cap * sizeof *a);
        if (!a)
            return -1;
        g->allocs = a;
        g->cap_allocs = cap;
    }
    g->allocs[g->n_allocs++] = items;
    return 0;
}

static int parse_value(pi_gguf *g, cursor *c, pi_gguf_type t, pi_gguf_value *v,
                       int depth, const char *key);

static int parse_array(pi_gguf *g, cursor *c, pi_gguf_value *v, int depth, const char *key)
{
    uint32_t et;
    uint64_t n;
    if (rd_u32(c, &et, "array type") || rd_u64(c, &n, "array length"))
        return -1;
    if (et >= PI_GGUF_TYPE_COUNT)
        return pi_err_set(c->err, "%s: key '%s': unknown array element type %u", c->name, key, et);
    if (depth >= PI_GGUF_MAX_DEPTH)
        return pi_err_set(c->err, "%s: key '%s': arrays nested deeper than %d", c->name, key,
                          PI_GGUF_MAX_DEPTH);
    v->type = PI_GGUF_ARR;
    v->v.arr = (pi_gguf_arr){ .type = (pi_gguf_type)et, .n = n, .data = c->p };
    size_t es = pi_gguf_type_size((pi_gguf_type)et);
    if (es) {
        if (n > left(c) / es)
            return pi_err_set(c->err, "%s: key '%s': array of %llu %s elements exceeds the file",
                              c->name, key, (unsigned long long)n, pi_gguf_type_name(et));
        c->p += n * es;
        return 0;
    }
    /* A string takes at least 8 bytes, an array at least 12. */
    size_t min = et == PI_GGUF_STR ? 8 : 12;
    if (n > left(c) / min)
        return pi_err_set(c->err, "%s: key '%s': array of %llu %s elements exceeds the file",
                          c->name, key, (unsigned long long)n, pi_gguf_type_name(et));
    if (n == 0)
        return 0;
    pi_gguf_value *items = calloc(n, sizeof *items);
    if (!items || keep_alloc(g, items)) {
        free(items);
        return pi_err_set(c->err, "%s: key '%s': out of memory", c->name, key);
    }
    v->v.arr.items = items;
    for (uint64_t i = 0; i < n; i++)
        if (parse_value(g, c, (pi_gguf_type)et, &items[i], depth + 1, key))
            return -1;
    return 0;
}

static int parse_value(pi_gguf *g, cursor *c, pi_gguf_type t, pi_gguf_value *v,
                       int depth, const char *key)
{
    if (t == PI_GGUF_STR) {
        v->type = t;
        return rd_str(c, &v->v.str, "string value");
    }
    if (t == PI_GGUF_ARR)
        return parse_array(g, c, v, depth, key);
    size_t es = pi_gguf_type_size(t);
    if (!es)
        return pi_err_set(c->err, "%s: key '%s': unknown value type %u", c->name, key, (unsigned)t);
    if (need(c, es, "value"))
        return -1;
    scalar_from(v, t, c->p);
    c->p += es;
    return 0;
}

static int cmp_kv(const void *a, const void *b)
{
    return strcmp(((const pi_gguf_kv *)a)->key, ((const pi_gguf_kv *)b)->key);
}

static int parse_kv(pi_gguf *g, cursor *c)
{
    g->kv = calloc(g->n_kv ? (size_t)g->n_kv : 1, sizeof *g->kv);
    if (!g->kv)
        return pi_err_set(c->err, "%s: out of memory", c->name);
    for (int64_t i = 0; i < g->n_kv; i++) {
        pi_gguf_str ks;
        uint32_t t;
        if (rd_str(c, &ks, "metadata key"))
            return -1;
        if (ks.len == 0)
            return pi_err_set(c->err, "%s: metadata key %lld is empty", c->name, (long long)i);
        if (!(g->kv[i].key = dup_name(c, ks, "metadata key")))
            return -1;
        if (rd_u32(c, &t, "metadata type"))
            return -1;
        if (parse_value(g, c, (pi_gguf_type)t, &g->kv[i].value, 0, g->kv[i].key))
            return -1;
    }
    /* Duplicate keys would make lookups ambiguous. */
    pi_gguf_kv *sorted = malloc((g->n_kv ? (size_t)g->n_kv : 1) * sizeof *sorted);
    if (!sorted)
        return pi_err_set(c->err, "%s: out of memory", c->name);
    memcpy(sorted, g->kv, (size_t)g->n_kv * sizeof *sorted);
    qsort(sorted, (size_t)g->n_kv, sizeof *sorted, cmp_kv);
    int rc = 0;
    for (int64_t i = 1; i < g->n_kv && !rc; i++)
        if (!strcmp(sorted[i - 1].key, sorted[i].key))
            rc = pi_err_set(c->err, "%s: duplicate metadata key '%s'", c->name, sorted[i].key);
    free(sorted);
    return rc;
}

static int parse_alignment(pi_gguf *g, cursor *c)
{
    g->alignment = PI_GGUF_DEFAULT_ALIGNMENT;
    const pi_gguf_value *v = pi_gguf_get(g, "general.alignment");
    if (!v)
        return 0;
    if (v->type != PI_GGUF_U32 || v->v.u64 == 0 || (v->v.u64 & (v->v.u64 - 1)) ||
        v->v.u64 > (1u << 30))
        return pi_err_set(c->err, "%s: general.alignment must be a u32 power of two", c->name);
    g->alignment = (uint32_t)v->v.u64;
    return 0;
}

static int parse_tensor_info(pi_gguf *g, cursor *c, pi_gguf_tensor *t, int64_t i)
{
    pi_gguf_str ns;
    uint32_t nd, type;
    if (rd_str(c, &ns, "tensor name"))
        return -1;
    if (!(t->name = dup_name(c, ns, "tensor name")))
        return -1;
    if (rd_u32(c, &nd, "tensor dims"))
        return -1;
    if (nd < 1 || nd > PI_GGUF_MAX_DIMS)
        return pi_err_set(c->err, "%s: tensor '%s': %u dimensions (1 to %d allowed)", c->name,
                          t->name, nd, PI_GGUF_MAX_DIMS);
    t->n_dims = nd;
    for (int d = 0; d < PI_GGUF_MAX_DIMS; d++)
        t->ne[d] = 1;
    for (uint32_t d = 0; d < nd; d++) {
        uint64_t ne;
        if (rd_u64(c, &ne, "tensor shape"))
            return -1;
        if (ne > INT64_MAX)
            return pi_err_set(c->err, "%s: tensor '%s': dimension %u is %llu", c->name, t->name,
                              d, (unsigned long long)ne);
        t->ne[d] = (int64_t)ne;
    }
    if (rd_u32(c, &type, "tensor type") || rd_u64(c, &t->offset, "tensor offset"))
        return -1;
    t->type = type;
    const pi_type_traits *tr = pi_type_get_traits(type);
    if (!tr)
        return pi_err_set(c->err, "%s: tensor '%s': unknown type %u", c->name, t->name, type);
    (void)i;
    return 0;
}

/* Size of a tensor, or an error if its shape is impossible. */
static int tensor_size(cursor *c, pi_gguf_tensor *t)
{
    const pi_type_traits *tr = pi_type_get_traits(t->type);
    if (t->ne[0] % tr->block_size)
        return pi_err_set(c->err, "%s: tensor '%s': row length %lld is not a multiple of %s's "
                          "block size %u", c->name, t->name, (long long)t->ne[0], tr->name,
                          tr->block_size);
    int64_t nel = 1;
    for (int d = 0; d < PI_GGUF_MAX_DIMS; d++)
        if (__builtin_mul_overflow(nel, t->ne[d], &nel))
            return pi_err_set(c->err, "%s: tensor '%s': element count overflows", c->name,
                              t->name);
    uint64_t blocks = (uint64_t)t->ne[0] / tr->block_size;
    uint64_t size = tr->type_size;
    for (int d = 0; d < PI_GGUF_MAX_DIMS; d++) {
        uint64_t k = d == 0 ? blocks : (uint64_t)t->ne[d];
        if (k && size > UINT64_MAX / k)
            return pi_err_set(c->err, "%s: tensor '%s': size overflows", c->name, t->name);
        size *= k;
    }
    t->size = size;
    return 0;
}

static int cmp_offset(const void *a, const void *b)
{
    const pi_gguf_tensor *x = *(pi_gguf_tensor *const *)a, *y = *(pi_gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp((*(pi_gguf_tensor *const *)a)->name, (*(pi_gguf_tensor *const *)b)->name);
}

/* Extents inside the file, alignment, no overlap, unique names. */
static int check_tensors(pi_gguf *g, cursor *c)
{
    uint64_t data_size = g->size - g->data_offset;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        pi_gguf_tensor *t = &g->tensors[i];
        if (tensor_size(c, t))
            return -1;
        if (t->offset % g->alignment)
            return pi_err_set(c->err, "%s: tensor '%s': offset %llu is not a multiple of the "
                              "alignment %u", c->name, t->name, (unsigned long long)t->offset,
                              g->alignment);
        if (t->offset > data_size || t->size > data_size - t->offset)
            return pi_err_set(c->err, "%s: tensor '%s': data (offset %llu, %llu bytes) extends "
                              "beyond end of file", c->name, t->name,
                              (unsigned long long)t->offset, (unsigned long long)t->size);
        t->data = g->buf + g->data_offset + t->offset;
    }
    size_t n = (size_t)g->n_tensors;
    pi_gguf_tensor **order = malloc((n ? n : 1) * sizeof *order);
    if (!order)
        return pi_err_set(c->err, "%s: out of memory", c->name);
    for (size_t i = 0; i < n; i++)
        order[i] = &g->tensors[i];
    int rc = 0;
    qsort(order, n, sizeof *order, cmp_offset);
    for (size_t i = 1; i < n && !rc; i++)
        if (order[i - 1]->offset + order[i - 1]->size > order[i]->offset)
            rc = pi_err_set(c->err, "%s: tensors '%s' and '%s' overlap", c->name,
                            order[i - 1]->name, order[i]->name);
    qsort(order, n, sizeof *order, cmp_name);
    for (size_t i = 1; i < n && !rc; i++)
        if (!strcmp(order[i - 1]->name, order[i]->name))
            rc = pi_err_set(c->err, "%s: duplicate tensor name '%s'", c->name, order[i]->name);
    free(order);
    return rc;
}

static int parse_header(pi_gguf *g, cursor *c)
{
    uint32_t magic;
    uint64_t nt, nkv;
    if (left(c) < 4 || (memcpy(&magic, c->p, 4), magic != PI_GGUF_MAGIC))
        return pi_err_set(c->err, "%s: not a GGUF file (bad magic)", c->name);
    c->p += 4;
    if (rd_u32(c, &g->version, "version"))
        return -1;
    if (g->version == 1)
        return pi_err_set(c->err, "%s: GGUF version 1 is not supported (convert it to v3)",
                          c->name);
    if (g->version > 0xffff)
        return pi_err_set(c->err, "%s: big-endian GGUF is not supported", c->name);
    if (g->version != 2 && g->version != 3)
        return pi_err_set(c->err, "%s: unsupported GGUF version %u", c->name, g->version);
    if (rd_u64(c, &nt, "tensor count") || rd_u64(c, &nkv, "metadata count"))
        return -1;
    /* A key/value pair takes at least 13 bytes and a tensor info at least 28. */
    if (nkv > left(c) / 13)
        return pi_err_set(c->err, "%s: metadata count %llu exceeds the file", c->name,
                          (unsigned long long)nkv);
    if (nt > left(c) / 28)
        return pi_err_set(c->err, "%s: tensor count %llu exceeds the file", c->name,
                          (unsigned long long)nt);
    g->n_tensors = (int64_t)nt;
    g->n_kv = (int64_t)nkv;
    return 0;
}

static int parse(pi_gguf *g, pi_err *err)
{
    if (!g->buf || g->size == 0)
        return pi_err_set(err, "%s: empty file", g->path);
    cursor c = { g->buf, g->buf + g->size, g->path, err };
    if (parse_header(g, &c) || parse_kv(g, &c) || parse_alignment(g, &c))
        return -1;
    g->tensors = calloc(g->n_tensors ? (size_t)g->n_tensors : 1, sizeof *g->tensors);
    if (!g->tensors)
        return pi_err_set(err, "%s: out of memory", g->path);
    for (int64_t i = 0; i < g->n_tensors; i++)
        if (parse_tensor_info(g, &c, &g->tensors[i], i))
            return -1;
    uint64_t pos = (uint64_t)(c.p - g->buf);
    uint64_t data = (pos + g->alignment - 1) / g->alignment * g->alignment;
    /* A file with no tensors may end right after its header. */
    if (data > g->size && g->n_tensors == 0)
        data = g->size;
    if (data > g->size)
        return pi_err_set(err, "%s: truncated file: no room for the data section", g->path);
    g->data_offset = data;
    return check_tensors(g, &c);
}

static pi_gguf *gguf_new(const char *name, pi_err *err)
{
    pi_gguf *g = calloc(1, sizeof *g);
    if (g)
        g->path = strdup(name);
    if (!g || !g->path) {
        free(g);
        pi_err_set(err, "%s: out of memory", name);
        return NULL;
    }
    return g;
}

pi_gguf *pi_gguf_open_memory(const void *buf, size_t size, const char *name, pi_err *err)
{
    pi_gguf *g = gguf_new(name ? name : "<memory>", err);
    if (!g)
        return NULL;
    g->buf = buf;
    g->size = size;
    if (parse(g, err)) {
        pi_gguf_close(g);
        return NULL;
    }
    return g;
}

/* Pipes and other unmappable inputs are read whole into the heap. */
static int slurp(int fd, void **out, size_t *size)
{
    size_t cap = 1 << 20, n = 0;
    uint8_t *b = malloc(cap);
    if (!b)
        return -1;
    for (;;) {
        if (n == cap) {
            uint8_t *nb = cap > SIZE_MAX / 2 ? NULL : realloc(b, cap * 2);
            if (!nb) {
                free(b);
                errno = ENOMEM;
                return -1;
            }
            b = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, b + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            free(b);
            return -1;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    *out = b;
    *size = n;
    return 0;
}

pi_gguf *pi_gguf_open(const char *path, pi_err *err)
{
    bool is_stdin = !strcmp(path, "-");
    pi_gguf *g = gguf_new(is_stdin ? "<stdin>" : path, err);
    if (!g)
        return NULL;
    int fd = is_stdin ? 0 : open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st)) {
        pi_err_set(err, "%s: %s", g->path, strerror(errno));
        goto fail;
    }
    if (S_ISDIR(st.st_mode)) {
        pi_err_set(err, "%s: is a directory", g->path);
        goto fail;
    }
    if (S_ISREG(st.st_mode) && st.st_size > 0) {
        g->map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (g->map == MAP_FAILED)
            g->map = NULL;
        else
            g->buf = g->map, g->size = (size_t)st.st_size;
    }
    if (!g->map && slurp(fd, &g->heap, &g->size)) {
        pi_err_set(err, "%s: %s", g->path, strerror(errno));
        goto fail;
    }
    if (!g->map)
        g->buf = g->heap;
    if (!is_stdin)
        close(fd);
    fd = -1;
    if (parse(g, err))
        goto fail;
    return g;
fail:
    if (fd > 0)
        close(fd);
    pi_gguf_close(g);
    return NULL;
}

void pi_gguf_close(pi_gguf *g)
{
    if (!g)
        return;
    if (g->map)
        munmap(g->map, g->size);
    free(g->heap);
    for (int64_t i = 0; g->kv && i < g->n_kv; i++)
        free((char *)g->kv[i].key);
    for (int64_t i = 0; g->tensors && i < g->n_tensors; i++)
        free((char *)g->tensors[i].name);
    for (size_t i = 0; i < g->n_allocs; i++)
        free(g->allocs[i]);
    free(g->allocs);
    free(g->kv);
    free(g->tensors);
    free(g->path);
    free(g);
}

uint32_t pi_gguf_version(const pi_gguf *g) { return g->version; }
uint32_t pi_gguf_alignment(const pi_gguf *g) { return g->alignment; }
uint64_t pi_gguf_data_offset(const pi_gguf *g) { return g->data_offset; }
uint64_t pi_gguf_file_size(const pi_gguf *g) { return g->size; }
const char *pi_gguf_path(const pi_gguf *g) { return g->path; }
int64_t pi_gguf_n_kv(const pi_gguf *g) { return g->n_kv; }
int64_t pi_gguf_n_tensors(const pi_gguf *g) { return g->n_tensors; }

const pi_gguf_kv *pi_gguf_kv_at(const pi_gguf *g, int64_t i)
{
    return i >= 0 && i < g->n_kv ? &g->kv[i] : NULL;
}

const pi_gguf_tensor *pi_gguf_tensor_at(const pi_gguf *g, int64_t i)
{
    return i >= 0 && i < g->n_tensors ? &g->tensors[i] : NULL;
}

/* Linear scans: a model has a few dozen keys and a few hundred tensors, and
 * lookups happen at load time only. */
const pi_gguf_value *pi_gguf_get(const pi_gguf *g, const char *key)
{
    for (int64_t i = 0; g->kv && i < g->n_kv; i++)
        if (g->kv[i].key && !strcmp(g->kv[i].key, key))
            return &g->kv[i].value;
    return NULL;
}

const pi_gguf_tensor *pi_gguf_find_tensor(const pi_gguf *g, const char *name)
{
    for (int64_t i = 0; i < g->n_tensors; i++)
        if (!strcmp(g->tensors[i].name, name))
            return &g->tensors[i];
    return NULL;
}

int64_t pi_gguf_tensor_nelements(const pi_gguf_tensor *t)
{
    return t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
}

int pi_gguf_value_u64(const pi_gguf_value *v, uint64_t *out)
{
    switch (v->type) {
    case PI_GGUF_U8: case PI_GGUF_U16: case PI_GGUF_U32: case PI_GGUF_U64:
        *out = v->v.u64;
        return 0;
    case PI_GGUF_I8: case PI_GGUF_I16: case PI_GGUF_I32: case PI_GGUF_I64:
        if (v->v.i64 < 0)
            return -1;
        *out = (uint64_t)v->v.i64;
        return 0;
    default:
        return -1;
    }
}

int pi_gguf_value_i64(const pi_gguf_value *v, int64_t *out)
{
    uint64_t u;
    switch (v->type) {
    case PI_GGUF_I8: case PI_GGUF_I16: case PI_GGUF_I32: case PI_GGUF_I64:
        *out = v->v.i64;
        return 0;
    default:
        if (pi_gguf_value_u64(v, &u) || u > INT64_MAX)
            return -1;
        *out = (int64_t)u;
        return 0;
    }
}

int pi_gguf_value_f64(const pi_gguf_value *v, double *out)
{
    int64_t i;
    if (v->type == PI_GGUF_F32 || v->type == PI_GGUF_F64) {
        *out = v->v.f64;
        return 0;
    }
    if (pi_gguf_value_i64(v, &i))
        return -1;
    *out = (double)i;
    return 0;
}

int pi_gguf_get_u64(const pi_gguf *g, const char *key, uint64_t *out)
{
    const pi_gguf_value *v = pi_gguf_get(g, key);
    return v ? pi_gguf_value_u64(v, out) : -1;
}

int pi_gguf_get_u32(const pi_gguf *g, const char *key, uint32_t *out)
{
    uint64_t u;
    if (pi_gguf_get_u64(g, key, &u) || u > UINT32_MAX)
        return -1;
    *out = (uint32_t)u;
    return 0;
}

int pi_gguf_get_i64(const pi_gguf *g, const char *key, int64_t *out)
{
    const pi_gguf_value *v = pi_gguf_get(g, key);
    return v ? pi_gguf_value_i64(v, out) : -1;
}

int pi_gguf_get_f32(const pi_gguf *g, const char *key, float *out)
{
    const pi_gguf_value *v = pi_gguf_get(g, key);
    double d;
    if (!v || pi_gguf_value_f64(v, &d))
        return -1;
    *out = (float)d;
    return 0;
}

int pi_gguf_get_bool(const pi_gguf *g, const char *key, bool *out)
{
    const pi_gguf_value *v = pi_gguf_get(g, key);
    if (!v || v->type != PI_GGUF_BOOL)
        return -1;
    *out = v->v.b;
    return 0;
}

int pi_gguf_get_str(const pi_gguf *g, const char *key, pi_gguf_str *out)
{
    const pi_gguf_value *v = pi_gguf_get(g, key);
    if (!v || v->type != PI_GGUF_STR)
        return -1;
    *out = v->v.str;
    return 0;
}

int pi_gguf_get_cstr(const pi_gguf *g, const char *key, char *buf, size_t size)
{
    pi_gguf_str s;
    if (!size || pi_gguf_get_str(g, key, &s) || memchr(s.ptr, 0, s.len))
        return -1;
    size_t n = s.len < size - 1 ? (size_t)s.len : size - 1;
    memcpy(buf, s.ptr, n);
    buf[n] = 0;
    return 0;
}

const pi_gguf_arr *pi_gguf_get_arr(const pi_gguf *g, const char *key, pi_gguf_type elem)
{
    const pi_gguf_value *v = pi_gguf_get(g, key);
    if (!v || v->type != PI_GGUF_ARR)
        return NULL;
    if (elem != PI_GGUF_TYPE_COUNT && v->v.arr.type != elem)
        return NULL;
    return &v->v.arr;
}

pi_gguf_value pi_gguf_arr_at(const pi_gguf_arr *a, uint64_t i)
{
    if (a->items)
        return a->items[i];
    pi_gguf_value v = { 0 };
    scalar_from(&v, a->type, (const uint8_t *)a->data + i * pi_gguf_type_size(a->type));
    return v;
}

pi_gguf_str pi_gguf_arr_str(const pi_gguf_arr *a, uint64_t i)
{
    return a->items[i].v.str;
}

float pi_gguf_arr_f32(const pi_gguf_arr *a, uint64_t i)
{
    float f;
    memcpy(&f, (const uint8_t *)a->data + 4 * i, 4);
    return f;
}

int64_t pi_gguf_arr_i64(const pi_gguf_arr *a, uint64_t i)
{
    pi_gguf_value v = pi_gguf_arr_at(a, i);
    switch (v.type) {
    case PI_GGUF_U8: case PI_GGUF_U16: case PI_GGUF_U32: case PI_GGUF_U64:
        return (int64_t)v.v.u64;
    case PI_GGUF_I8: case PI_GGUF_I16: case PI_GGUF_I32: case PI_GGUF_I64:
        return v.v.i64;
    default:
        return 0;
    }
}

/* FNV-1a: fast and well spread; the fingerprint guards against mistakes, not
 * against an adversary. */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

uint64_t pi_gguf_fingerprint(const pi_gguf *g)
{
    size_t n = (size_t)g->n_tensors;
    const pi_gguf_tensor **order = malloc((n ? n : 1) * sizeof *order);
    uint64_t h = 0xcbf29ce484222325ull;
    if (!order)
        return 0;
    for (size_t i = 0; i < n; i++)
        order[i] = &g->tensors[i];
    qsort(order, n, sizeof *order, cmp_name);
    for (size_t i = 0; i < n; i++) {
        const pi_gguf_tensor *t = order[i];
        size_t edge = t->size < 64 ? (size_t)t->size : 64;
        h = fnv(h, t->name, strlen(t->name) + 1);
        h = fnv(h, &t->type, sizeof t->type);
        h = fnv(h, t->ne, sizeof t->ne);
        h = fnv(h, t->data, edge);
        h = fnv(h, (const uint8_t *)t->data + t->size - edge, edge);
    }
    free(order);
    return h;
}
