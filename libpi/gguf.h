/*
 * gguf: reading GGUF files (versions 2 and 3, little-endian).
 *
 * The file is memory-mapped read-only and never copied whole; a pipe or other
 * unmappable input is read into one heap buffer instead.  Opening validates
 * everything a later reader would trust: counts and string lengths against
 * the bytes that remain, array nesting depth, the tensor table (known type,
 * shape, alignment, extent inside the file, no two tensors overlapping), and
 * unique keys and tensor names.  After a successful open every pointer handed
 * out points inside the buffer and every size is consistent with it.
 *
 * The pi_gguf owns the mapping and all parsed metadata; values, strings and
 * tensor data returned by the accessors live until pi_gguf_close().  Strings
 * in GGUF are not NUL-terminated and may contain any bytes, so values are
 * (pointer, length) pairs; keys and tensor names are checked to contain no
 * NUL and are handed out NUL-terminated.
 */
#ifndef PI_GGUF_H
#define PI_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define PI_GGUF_MAGIC 0x46554747u /* "GGUF" read as a little-endian u32 */
#define PI_GGUF_DEFAULT_ALIGNMENT 32
#define PI_GGUF_MAX_DIMS 4
#define PI_GGUF_MAX_DEPTH 8 /* nesting of arrays inside arrays */

typedef enum pi_gguf_type {
    PI_GGUF_U8 = 0,
    PI_GGUF_I8 = 1,
    PI_GGUF_U16 = 2,
    PI_GGUF_I16 = 3,
    PI_GGUF_U32 = 4,
    PI_GGUF_I32 = 5,
    PI_GGUF_F32 = 6,
    PI_GGUF_BOOL = 7,
    PI_GGUF_STR = 8,
    PI_GGUF_ARR = 9,
    PI_GGUF_U64 = 10,
    PI_GGUF_I64 = 11,
    PI_GGUF_F64 = 12,
    PI_GGUF_TYPE_COUNT
} pi_gguf_type;

typedef struct pi_gguf_str {
    const char *ptr; /* not NUL-terminated */
    uint64_t len;
} pi_gguf_str;

typedef struct pi_gguf_value pi_gguf_value;

typedef struct pi_gguf_arr {
    pi_gguf_type type; /* element type */
    uint64_t n;
    /* Scalar elements: packed little-endian in the file, possibly unaligned;
     * read them with pi_gguf_arr_*().  String and array elements: `items`. */
    const void *data;
    pi_gguf_value *items;
} pi_gguf_arr;

struct pi_gguf_value {
    pi_gguf_type type;
    union {
        uint64_t u64; /* U8, U16, U32, U64 */
        int64_t i64;  /* I8, I16, I32, I64 */
        double f64;   /* F32, F64 */
        bool b;
        pi_gguf_str str;
        pi_gguf_arr arr;
    } v;
};

typedef struct pi_gguf_kv {
    const char *key;
    pi_gguf_value value;
} pi_gguf_kv;

typedef struct pi_gguf_tensor {
    const char *name;
    uint32_t type; /* pi_type id */
    uint32_t n_dims;
    int64_t ne[PI_GGUF_MAX_DIMS]; /* ne[0] is the row length; unused dims 1 */
    uint64_t offset;              /* from the start of the data section */
    uint64_t size;                /* bytes */
    const void *data;
} pi_gguf_tensor;

typedef struct pi_gguf pi_gguf;

/* Opens and validates `path` ("-" reads standard input).  NULL on failure,
 * with err naming the file and the problem. */
pi_gguf *pi_gguf_open(const char *path, pi_err *err);
/* Validates a GGUF held in memory (not copied; must outlive the result).
 * `name` is used in error messages. */
pi_gguf *pi_gguf_open_memory(const void *buf, size_t size, const char *name,
                             pi_err *err);
void pi_gguf_close(pi_gguf *g);

uint32_t pi_gguf_version(const pi_gguf *g);
uint32_t pi_gguf_alignment(const pi_gguf *g);
uint64_t pi_gguf_data_offset(const pi_gguf *g); /* start of tensor data */
uint64_t pi_gguf_file_size(const pi_gguf *g);
const char *pi_gguf_path(const pi_gguf *g);

/* Metadata. */
int64_t pi_gguf_n_kv(const pi_gguf *g);
const pi_gguf_kv *pi_gguf_kv_at(const pi_gguf *g, int64_t i);
const pi_gguf_value *pi_gguf_get(const pi_gguf *g, const char *key); /* NULL if absent */

/* Typed getters: 0 on success, -1 if the key is absent or its value does not
 * convert exactly (an integer out of range, a string asked as a number). */
int pi_gguf_get_u32(const pi_gguf *g, const char *key, uint32_t *out);
int pi_gguf_get_u64(const pi_gguf *g, const char *key, uint64_t *out);
int pi_gguf_get_i64(const pi_gguf *g, const char *key, int64_t *out);
int pi_gguf_get_f32(const pi_gguf *g, const char *key, float *out);
int pi_gguf_get_bool(const pi_gguf *g, const char *key, bool *out);
int pi_gguf_get_str(const pi_gguf *g, const char *key, pi_gguf_str *out);
/* Copies a string value into buf as a C string (truncating); -1 if absent,
 * not a string, or containing NUL. */
int pi_gguf_get_cstr(const pi_gguf *g, const char *key, char *buf, size_t size);
/* An array value whose elements have type `elem` (PI_GGUF_TYPE_COUNT: any). */
const pi_gguf_arr *pi_gguf_get_arr(const pi_gguf *g, const char *key,
                                   pi_gguf_type elem);

/* Scalar conversions of one value (same rules as the typed getters). */
int pi_gguf_value_u64(const pi_gguf_value *v, uint64_t *out);
int pi_gguf_value_i64(const pi_gguf_value *v, int64_t *out);
int pi_gguf_value_f64(const pi_gguf_value *v, double *out);

/* Element i of an array (i < n is the caller's to check). */
pi_gguf_value pi_gguf_arr_at(const pi_gguf_arr *a, uint64_t i);
pi_gguf_str pi_gguf_arr_str(const pi_gguf_arr *a, uint64_t i);
float pi_gguf_arr_f32(const pi_gguf_arr *a, uint64_t i);   /* F32 arrays */
int64_t pi_gguf_arr_i64(const pi_gguf_arr *a, uint64_t i); /* any integer array */

const char *pi_gguf_type_name(pi_gguf_type t); /* "u32", "str", ...; "?" */
size_t pi_gguf_type_size(pi_gguf_type t);      /* 0 for STR and ARR */

/* Tensors, in file order. */
int64_t pi_gguf_n_tensors(const pi_gguf *g);
const pi_gguf_tensor *pi_gguf_tensor_at(const pi_gguf *g, int64_t i);
const pi_gguf_tensor *pi_gguf_find_tensor(const pi_gguf *g, const char *name);
int64_t pi_gguf_tensor_nelements(const pi_gguf_tensor *t);

/* A 64-bit identity of the model's tensors: names, types and shapes (in name
 * order, so independent of file layout) and the first and last bytes of each
 * tensor's data (so that two fine-tunes of one shape differ) .  Traces and
 * packed files record it to refuse being used against the wrong model. */
uint64_t pi_gguf_fingerprint(const pi_gguf *g);

#endif
