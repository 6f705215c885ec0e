/*
 * gguf_write: writing GGUF v3 files.
 *
 * Metadata is serialised as it is set (setting a key again replaces it), and
 * tensors are referenced, not copied: their data must stay valid until
 * pi_gguf_writer_write() returns.  Output goes to a temporary file beside the
 * destination that is renamed into place only when complete, so a failed or
 * interrupted write never leaves a half-written file under the final name.
 */
#ifndef PI_GGUF_WRITE_H
#define PI_GGUF_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "gguf.h"

typedef struct pi_gguf_writer pi_gguf_writer;

/* alignment 0 means the GGUF default (32); otherwise a power of two, and it
 * is recorded as general.alignment when it differs from the default. */
pi_gguf_writer *pi_gguf_writer_new(uint32_t alignment);
void pi_gguf_writer_free(pi_gguf_writer *w);

/* Each returns 0, or -1 with err set (out of memory, bad argument). */
int pi_gguf_set_u32(pi_gguf_writer *w, const char *key, uint32_t v, pi_err *err);
int pi_gguf_set_i32(pi_gguf_writer *w, const char *key, int32_t v, pi_err *err);
int pi_gguf_set_u64(pi_gguf_writer *w, const char *key, uint64_t v, pi_err *err);
int pi_gguf_set_i64(pi_gguf_writer *w, const char *key, int64_t v, pi_err *err);
int pi_gguf_set_f32(pi_gguf_writer *w, const char *key, float v, pi_err *err);
int pi_gguf_set_f64(pi_gguf_writer *w, const char *key, double v, pi_err *err);
int pi_gguf_set_bool(pi_gguf_writer *w, const char *key, bool v, pi_err *err);
int pi_gguf_set_str(pi_gguf_writer *w, const char *key, const char *s, pi_err *err);
int pi_gguf_set_strn(pi_gguf_writer *w, const char *key, const char *s, size_t len,
                     pi_err *err);
/* An array of n scalars of type elem, given in host (little-endian) layout. */
int pi_gguf_set_arr(pi_gguf_writer *w, const char *key, pi_gguf_type elem, const void *data,
                    uint64_t n, pi_err *err);
int pi_gguf_set_arr_str(pi_gguf_writer *w, const char *key, const char *const *strs,
                        uint64_t n, pi_err *err);
/* Any value, nested arrays included, e.g. one read with pi_gguf_get(). */
int pi_gguf_set_value(pi_gguf_writer *w, const char *key, const pi_gguf_value *v,
                      pi_err *err);

/* ne[0] is the row length and must be a multiple of the type's block size;
 * size must equal the type's size for that shape. */
int pi_gguf_add_tensor(pi_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                       const int64_t *ne, const void *data, uint64_t size, pi_err *err);

/* A tensor whose bytes are produced at write time, one tensor at a time, so
 * that a large file is written without holding all of it: fill() must write
 * exactly `size` bytes to buf and return 0, or return -1 with err set, which
 * fails the write (and discards the temporary file).  Tensors are filled in
 * the order they were added. */
typedef int (*pi_gguf_fill_fn)(void *user, void *buf, uint64_t size, pi_err *err);
int pi_gguf_add_tensor_fill(pi_gguf_writer *w, const char *name, uint32_t type,
                            uint32_t n_dims, const int64_t *ne, uint64_t size,
                            pi_gguf_fill_fn fill, void *user, pi_err *err);

/* Writes the file ("-" for standard output, written directly). */
int pi_gguf_writer_write(const pi_gguf_writer *w, const char *path, pi_err *err);

#endif
