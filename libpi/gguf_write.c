/*
 * gguf_write: the GGUF v3 writer (see gguf_write.h).
 *
 * Each key/value pair is serialised into its own byte string when it is set;
 * the header and tensor infos are assembled at write time, when tensor offsets
 * are laid out in the order the tensors were added, each aligned.
 */
#include "gguf_write.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "outfile.h"
#include "quant.h"

typedef struct bytes {
    uint8_t *p;
    size_t n, cap;
    bool oom;
} bytes;

typedef struct wkv {
    char *key;
    bytes val; /* type id and value, as in the file */
} wkv;

typedef struct wtensor {
    char *name;
    uint32_t type, n_dims;
    int64_t ne[PI_GGUF_MAX_DIMS];
    const void *data;
    pi_gguf_fill_fn fill; /* when data is NULL */
    void *user;
    uint64_t size, offset;
} wtensor;

struct pi_gguf_writer {
    uint32_t alignment;
    wkv *kv;
    size_t n_kv, cap_kv;
    wtensor *t;
    size_t n_t, cap_t;
};

static void put(bytes *b, const void *p, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n)
            cap *= 2;
        uint8_t *q = realloc(b->p, cap);
        if (!q) {
            b->oom = true;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void put_u32(bytes *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(bytes *b, uint64_t v) { put(b, &v, 8); }
static void put_str(bytes *b, const char *s, size_t n) { put_u64(b, n); put(b, s, n); }

pi_gguf_writer *pi_gguf_writer_new(uint32_t alignment)
{
    if (alignment == 0)
        alignment = PI_GGUF_DEFAULT_ALIGNMENT;
    if (alignment & (alignment - 1))
        return NULL;
    pi_gguf_writer *w = calloc(1, sizeof *w);
    if (w)
        w->alignment = alignment;
    if (w && alignment != PI_GGUF_DEFAULT_ALIGNMENT &&
        pi_gguf_set_u32(w, "general.alignment", alignment, NULL)) {
        pi_gguf_writer_free(w);
        return NULL;
    }
    return w;
}

void pi_gguf_writer_free(pi_gguf_writer *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].val.p);
    }
    for (size_t i = 0; i < w->n_t; i++)
        free(w->t[i].name);
    free(w->kv);
    free(w->t);
    free(w);
}

static void *grow(void *arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return arr;
    size_t c = *cap ? *cap * 2 : 16;
    void *a = realloc(arr, c * elem);
    if (a)
        *cap = c;
    return a;
}

/* Takes ownership of val; replaces an existing key. */
static int add_kv(pi_gguf_writer *w, const char *key, bytes val, pi_err *err)
{
    if (val.oom || !key || !*key) {
        free(val.p);
        return pi_err_set(err, val.oom ? "out of memory" : "empty metadata key");
    }
    for (size_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->kv[i].key, key)) {
            free(w->kv[i].val.p);
            w->kv[i].val = val;
            return 0;
        }
    wkv *kv = grow(w->kv, &w->cap_kv, w->n_kv, sizeof *kv);
    char *k = strdup(key);
    if (!kv || !k) {
        free(k);
        free(val.p);
        return pi_err_set(err, "out of memory");
    }
    w->kv = kv;
    w->kv[w->n_kv++] = (wkv){ k, val };
    return 0;
}

static int set_scalar(pi_gguf_writer *w, const char *key, pi_gguf_type t, const void *v,
                      pi_err *err)
{
    bytes b = { 0 };
    put_u32(&b, t);
    put(&b, v, pi_gguf_type_size(t));
    return add_kv(w, key, b, err);
}

int pi_gguf_set_u32(pi_gguf_writer *w, const char *k, uint32_t v, pi_err *e) { return set_scalar(w, k, PI_GGUF_U32, &v, e); }
int pi_gguf_set_i32(pi_gguf_writer *w, const char *k, int32_t v, pi_err *e) { return set_scalar(w, k, PI_GGUF_I32, &v, e); }
int pi_gguf_set_u64(pi_gguf_writer *w, const char *k, uint64_t v, pi_err *e) { return set_scalar(w, k, PI_GGUF_U64, &v, e); }
int pi_gguf_set_i64(pi_gguf_writer *w, const char *k, int64_t v, pi_err *e) { return set_scalar(w, k, PI_GGUF_I64, &v, e); }
int pi_gguf_set_f32(pi_gguf_writer *w, const char *k, float v, pi_err *e) { return set_scalar(w, k, PI_GGUF_F32, &v, e); }
int pi_gguf_set_f64(pi_gguf_writer *w, const char *k, double v, pi_err *e) { return set_scalar(w, k, PI_GGUF_F64, &v, e); }

int pi_gguf_set_bool(pi_gguf_writer *w, const char *key, bool v, pi_err *err)
{
    uint8_t b = v;
    return set_scalar(w, key, PI_GGUF_BOOL, &b, err);
}

int pi_gguf_set_strn(pi_gguf_writer *w, const char *key, const char *s, size_t len, pi_err *err)
{
    bytes b = { 0 };
    put_u32(&b, PI_GGUF_STR);
    put_str(&b, s, len);
    return add_kv(w, key, b, err);
}

int pi_gguf_set_str(pi_gguf_writer *w, const char *key, const char *s, pi_err *err)
{
    return pi_gguf_set_strn(w, key, s, strlen(s), err);
}

int pi_gguf_set_arr(pi_gguf_writer *w, const char *key, pi_gguf_type elem, const void *data,
                    uint64_t n, pi_err *err)
{
    size_t es = pi_gguf_type_size(elem);
    if (!es || n > SIZE_MAX / es)
        return pi_err_set(err, "key '%s': bad array element type or length", key);
    bytes b = { 0 };
    put_u32(&b, PI_GGUF_ARR);
    put_u32(&b, elem);
    put_u64(&b, n);
    put(&b, data, n * es);
    return add_kv(w, key, b, err);
}

int pi_gguf_set_arr_str(pi_gguf_writer *w, const char *key, const char *const *strs,
                        uint64_t n, pi_err *err)
{
    bytes b = { 0 };
    put_u32(&b, PI_GGUF_ARR);
    put_u32(&b, PI_GGUF_STR);
    put_u64(&b, n);
    for (uint64_t i = 0; i < n; i++)
        put_str(&b, strs[i], strlen(strs[i]));
    return add_kv(w, key, b, err);
}

/* The value without its type id (arrays carry their element type). */
static void put_value(bytes *b, const pi_gguf_value *v)
{
    uint8_t raw[8];
    switch (v->type) {
    case PI_GGUF_STR:
        put_str(b, v->v.str.ptr, v->v.str.len);
        return;
    case PI_GGUF_ARR:
        put_u32(b, v->v.arr.type);
        put_u64(b, v->v.arr.n);
        if (!v->v.arr.items) {
            put(b, v->v.arr.data, v->v.arr.n * pi_gguf_type_size(v->v.arr.type));
            return;
        }
        for (uint64_t i = 0; i < v->v.arr.n; i++)
            put_value(b, &v->v.arr.items[i]);
        return;
    case PI_GGUF_BOOL:
        raw[0] = v->v.b;
        break;
    case PI_GGUF_F32: {
        float f = (float)v->v.f64;
        memcpy(raw, &f, 4);
        break;
    }
    case PI_GGUF_F64:
        memcpy(raw, &v->v.f64, 8);
        break;
    case PI_GGUF_I8: case PI_GGUF_I16: case PI_GGUF_I32: case PI_GGUF_I64:
        memcpy(raw, &v->v.i64, 8); /* little-endian: the low bytes come first */
        break;
    default:
        memcpy(raw, &v->v.u64, 8);
        break;
    }
    put(b, raw, pi_gguf_type_size(v->type));
}

int pi_gguf_set_value(pi_gguf_writer *w, const char *key, const pi_gguf_value *v, pi_err *err)
{
    if ((unsigned)v->type >= PI_GGUF_TYPE_COUNT)
        return pi_err_set(err, "key '%s': unknown value type %d", key, (int)v->type);
    bytes b = { 0 };
    put_u32(&b, v->type);
    put_value(&b, v);
    return add_kv(w, key, b, err);
}

int pi_gguf_add_tensor(pi_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                       const int64_t *ne, const void *data, uint64_t size, pi_err *err)
{
    return pi_gguf_add_tensor_fill(w, name, type, n_dims, ne, size, NULL, (void *)data, err);
}

int pi_gguf_add_tensor_fill(pi_gguf_writer *w, const char *name, uint32_t type,
                            uint32_t n_dims, const int64_t *ne, uint64_t size,
                            pi_gguf_fill_fn fill, void *user, pi_err *err)
{
    const void *data = fill ? NULL : user;
    if (n_dims < 1 || n_dims > PI_GGUF_MAX_DIMS)
        return pi_err_set(err, "tensor '%s': %u dimensions", name, n_dims);
    wtensor t = { .type = type, .n_dims = n_dims, .data = data, .size = size, .fill = fill,
                  .user = fill ? user : NULL };
    uint64_t rows = 1;
    for (uint32_t d = 0; d < PI_GGUF_MAX_DIMS; d++) {
        t.ne[d] = d < n_dims ? ne[d] : 1;
        if (t.ne[d] < 0)
            return pi_err_set(err, "tensor '%s': negative dimension", name);
        if (d > 0)
            rows *= (uint64_t)t.ne[d];
    }
    size_t row = pi_row_size(type, t.ne[0]);
    if ((!row && t.ne[0]) || (uint64_t)row * rows != size)
        return pi_err_set(err, "tensor '%s': %llu bytes do not match a %s tensor of that shape",
                          name, (unsigned long long)size, pi_type_name(type));
    for (size_t i = 0; i < w->n_t; i++)
        if (!strcmp(w->t[i].name, name))
            return pi_err_set(err, "duplicate tensor name '%s'", name);
    wtensor *arr = grow(w->t, &w->cap_t, w->n_t, sizeof *arr);
    if (!arr || !(t.name = strdup(name))) {
        if (arr)
            w->t = arr;
        return pi_err_set(err, "out of memory");
    }
    w->t = arr;
    w->t[w->n_t++] = t;
    return 0;
}

static uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

static int write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t r = write(fd, b, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

/* A tensor's bytes: its data, or what its fill function produced into *buf
 * (grown as needed and reused).  NULL with err set when filling failed. */
static const void *tensor_bytes(const wtensor *t, uint8_t **buf, uint64_t *cap, pi_err *err)
{
    if (!t->fill)
        return t->data;
    if (t->size > *cap) {
        if (t->size > SIZE_MAX) {
            pi_err_set(err, "tensor '%s': too large", t->name);
            return NULL;
        }
        uint8_t *p = realloc(*buf, t->size ? (size_t)t->size : 1);
        if (!p) {
            pi_err_set(err, "out of memory for tensor '%s'", t->name);
            return NULL;
        }
        *buf = p;
        *cap = t->size;
    }
    return t->fill(t->user, *buf, t->size, err) ? NULL : *buf;
}

/* -1 with errno set for a failed write, -2 with err set for a failed fill. */
static int write_fd(const pi_gguf_writer *w, int fd, pi_err *err)
{
    bytes h = { 0 };
    put_u32(&h, PI_GGUF_MAGIC);
    put_u32(&h, 3);
    put_u64(&h, w->n_t);
    put_u64(&h, w->n_kv);
    for (size_t i = 0; i < w->n_kv; i++) {
        put_str(&h, w->kv[i].key, strlen(w->kv[i].key));
        put(&h, w->kv[i].val.p, w->kv[i].val.n);
    }
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        put_str(&h, t->name, strlen(t->name));
        put_u32(&h, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++)
            put_u64(&h, (uint64_t)t->ne[d]);
        put_u32(&h, t->type);
        put_u64(&h, off);
        off = align_up(off + t->size, w->alignment);
    }
    static const uint8_t zeros[256];
    size_t pad = (size_t)(align_up(h.n, w->alignment) - h.n);
    int rc = h.oom ? -1 : write_all(fd, h.p, h.n);
    for (; !rc && pad; pad -= pad > sizeof zeros ? sizeof zeros : pad)
        rc = write_all(fd, zeros, pad > sizeof zeros ? sizeof zeros : pad);
    uint8_t *buf = NULL;
    uint64_t cap = 0;
    for (size_t i = 0; !rc && i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        const void *data = tensor_bytes(t, &buf, &cap, err);
        if (!data) {
            rc = -2;
            break;
        }
        rc = write_all(fd, data, t->size);
        pad = (size_t)(align_up(t->size, w->alignment) - t->size);
        if (!rc && pad && i + 1 < w->n_t)
            rc = write_all(fd, zeros, pad);
    }
    free(buf);
    free(h.p);
    if (h.oom)
        errno = ENOMEM;
    return rc;
}

int pi_gguf_writer_write(const pi_gguf_writer *w, const char *path, pi_err *err)
{
    if (!strcmp(path, "-")) {
        int rc = write_fd(w, 1, err);
        return rc == -1 ? pi_err_set(err, "<stdout>: %s", strerror(errno)) : rc ? -1 : 0;
    }
    char *tmp;
    int fd = pi_outfile_create(path, &tmp, err);
    if (fd < 0)
        return -1;
    int rc = write_fd(w, fd, err);
    if (close(fd) && !rc)
        rc = -1;
    if (rc) {
        if (rc == -1)
            pi_err_set(err, "%s: %s", path, strerror(errno));
        pi_outfile_discard(tmp);
        return -1;
    }
    return pi_outfile_commit(tmp, path, err);
}
