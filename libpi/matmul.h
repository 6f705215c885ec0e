/*
 * matmul: weight matrix times a batch of activation vectors, threaded.
 *
 * Activations are first quantised to the weight type's vec_dot_type (the
 * form the dot-product kernels take), once per input and type; then each
 * worker takes a band of weight rows and multiplies every row by all the
 * batch's vectors while the row is in cache, so a batch of n tokens reads
 * the weights once rather than n times.  Where the CPU has batched dot
 * kernels for the weight type (pi_vec_dot_nx_get), the activations are
 * packed for them and each row is unpacked once for several tokens.
 */
#ifndef PI_MATMUL_H
#define PI_MATMUL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "threadpool.h"

/* Activations in one dot-product form: n rows of row_bytes, either plain
 * rows of type or, when `packed`, the batched kernels' packed form of the
 * same values (pi_dot_pack_row). */
typedef struct pi_acts {
    pi_type type; /* a vec_dot_type: F32, Q8_0, Q8_1 or Q8_K */
    int n;
    int64_t ne; /* elements per row */
    size_t row_bytes;
    const void *data;
    bool packed;
} pi_acts;

/* Bytes one row of n elements takes in the activation form of weight type t
 * (in whichever form pi_acts_quantize() picks). */
size_t pi_acts_row_bytes(pi_type wtype, int64_t n);
/* Quantises n rows of x (stride ne floats) into buf for weight type wtype,
 * packed for the batched kernels when this CPU has them for wtype; buf
 * holds at least n * pi_acts_row_bytes(wtype, ne) bytes.  F32 activations
 * are used in place and need no buffer. */
pi_acts pi_acts_quantize(pi_pool *pool, pi_type wtype, const float *x, int n, int64_t ne,
                         void *buf);
/* Float activations for any weight type: the reference-precision path, in
 * which each weight row is dequantised and dotted in float (slow; for
 * checking against an independent float forward pass). */
pi_acts pi_acts_float(const float *x, int n, int64_t ne);

/* y[t * ldy + r] = w.row(r) . acts.row(t) for rows [r0, r1) of w, in parallel. */
void pi_matmul_rows(pi_pool *pool, const pi_weight *w, const pi_acts *a, int64_t r0, int64_t r1,
                    float *y, int64_t ldy);
void pi_matmul(pi_pool *pool, const pi_weight *w, const pi_acts *a, float *y, int64_t ldy);

/* One product of a batch: y[t * ldy + r] = w.row(r) . a.row(t), r0 <= r < r1. */
typedef struct pi_mm {
    const pi_weight *w;
    const pi_acts *a;
    float *y;
    int64_t ldy, r0, r1;
} pi_mm;

#define PI_MATMUL_MANY_MAX 4
/* Up to PI_MATMUL_MANY_MAX independent products in one parallel loop: one
 * synchronisation of the pool instead of one per product (q, k and v; gate
 * and up). */
void pi_matmul_many(pi_pool *pool, const pi_mm *mm, int n);

#endif
