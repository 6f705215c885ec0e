/*
 * requant: quantising weights that pi rewrites (see requant.h).
 *
 * The reference quantisers in quant.c span each block's [min, max] (or its
 * largest magnitude), which is what the file formats define but not what
 * minimises the error.  Rewriting an already quantised matrix along the
 * other axis adds a second rounding, so here each block tries a set of
 * scales, fits scale and offset to the codes by least squares, and keeps
 * the candidate with the smallest squared error after rounding the scale and
 * offset to F16 as the block stores them.
 */
#include "requant.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#define QK PI_QK
#define HALF (PI_QK / 2)
#define STEPS 24 /* candidate scales per block, either side of the span */

typedef struct fit {
    pi_f16 d, m; /* m unused for the symmetric types */
    uint8_t q[QK];
    double err;
} fit;

static float clampf(float v, float lo, float hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Codes for x given the stored scale and offset, and the squared error of
 * the values exactly as pi_dequantize_row() decodes them, summed in double
 * so that near-ties between candidates are not decided by rounding. */
static void assign(const float *x, int nmax, bool affine, fit *f)
{
    int off = affine ? 0 : (nmax + 1) / 2;
    float d = pi_f16_to_f32(f->d);
    float m = affine ? pi_f16_to_f32(f->m) : -(float)off * d;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    double err = 0.0;
    for (int j = 0; j < QK; j++) {
        float q = d != 0.0f ? clampf(roundf((x[j] - m) * id), 0.0f, (float)nmax) : 0.0f;
        f->q[j] = (uint8_t)q;
        float y = affine ? d * q + m : d * (float)((int)q - off);
        double e = (double)y - (double)x[j];
        err += e * e;
    }
    f->err = err;
}

/* Least-squares scale (and offset) for the codes in f, stored in f16. */
static void refit(const float *x, int nmax, bool affine, fit *f)
{
    double sq = 0, sqq = 0, sx = 0, sqx = 0;
    double off = affine ? 0.0 : (double)((nmax + 1) / 2);
    for (int j = 0; j < QK; j++) {
        double q = (double)f->q[j] - off;
        sq += q;
        sqq += q * q;
        sx += x[j];
        sqx += q * x[j];
    }
    double d, m = 0;
    if (affine) {
        double det = QK * sqq - sq * sq;
        if (det <= 0)
            return;
        d = (QK * sqx - sq * sx) / det;
        m = (sx - d * sq) / QK;
    } else {
        if (sqq <= 0)
            return;
        d = sqx / sqq;
    }
    f->d = pi_f32_to_f16((float)d);
    f->m = pi_f32_to_f16((float)m);
}

static void best_fit(const float *x, int nmax, bool affine, fit *best)
{
    float lo = x[0], hi = x[0], amax = 0.0f, sgn = 0.0f;
    for (int j = 0; j < QK; j++) {
        lo = x[j] < lo ? x[j] : lo;
        hi = x[j] > hi ? x[j] : hi;
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            sgn = x[j];
        }
    }
    best->err = INFINITY;
    if (hi == lo && (affine || amax == 0.0f)) {
        *best = (fit){ .d = 0, .m = pi_f32_to_f16(affine ? lo : 0.0f) };
        assign(x, nmax, affine, best);
        return;
    }
    for (int s = -STEPS; s <= STEPS; s++) {
        fit f = { 0 };
        /* Spans slightly narrower and wider than the data's, so that the
         * outermost values may clip when that lowers the error. */
        float span = (float)nmax + 0.1f * (float)s;
        if (span <= 1.0f)
            continue;
        if (affine) {
            f.d = pi_f32_to_f16((hi - lo) / span);
            f.m = pi_f32_to_f16(lo);
        } else {
            f.d = pi_f32_to_f16(sgn / -((span + 1.0f) / 2.0f));
        }
        /* The fit before refitting counts too: the refit's scale, rounded
         * to f16 (coarsely when it is subnormal), can be worse. */
        assign(x, nmax, affine, &f);
        if (f.err < best->err)
            *best = f;
        refit(x, nmax, affine, &f);
        assign(x, nmax, affine, &f);
        if (f.err < best->err)
            *best = f;
    }
}

static void encode(pi_type type, const fit *f, void *dst)
{
    uint8_t qs[HALF];
    uint32_t qh = 0;
    for (int j = 0; j < HALF; j++) {
        qs[j] = (uint8_t)((f->q[j] & 0xf) | (f->q[j + HALF] & 0xf) << 4);
        qh |= (uint32_t)(f->q[j] >> 4) << j | (uint32_t)(f->q[j + HALF] >> 4) << (j + HALF);
    }
    uint8_t qhb[4] = { (uint8_t)qh, (uint8_t)(qh >> 8), (uint8_t)(qh >> 16), (uint8_t)(qh >> 24) };
    switch (type) {
    case PI_TYPE_Q4_0: {
        pi_block_q4_0 *b = dst;
        b->d = f->d;
        memcpy(b->qs, qs, HALF);
        break;
    }
    case PI_TYPE_Q4_1: {
        pi_block_q4_1 *b = dst;
        b->d = f->d;
        b->m = f->m;
        memcpy(b->qs, qs, HALF);
        break;
    }
    case PI_TYPE_Q5_0: {
        pi_block_q5_0 *b = dst;
        b->d = f->d;
        memcpy(b->qh, qhb, 4);
        memcpy(b->qs, qs, HALF);
        break;
    }
    default: {
        pi_block_q5_1 *b = dst;
        b->d = f->d;
        b->m = f->m;
        memcpy(b->qh, qhb, 4);
        memcpy(b->qs, qs, HALF);
        break;
    }
    }
}

int pi_requantize_row(pi_type type, const float *src, void *dst, int64_t n)
{
    int nmax;
    bool affine;
    switch (type) {
    case PI_TYPE_Q4_0: nmax = 15; affine = false; break;
    case PI_TYPE_Q4_1: nmax = 15; affine = true; break;
    case PI_TYPE_Q5_0: nmax = 31; affine = false; break;
    case PI_TYPE_Q5_1: nmax = 31; affine = true; break;
    default: return pi_quantize_row(type, src, dst, n);
    }
    if (n < 0 || n % QK)
        return -1;
    size_t bs = pi_type_get_traits(type)->type_size;
    for (int64_t i = 0; i < n / QK; i++) {
        fit f;
        best_fit(src + i * QK, nmax, affine, &f);
        encode(type, &f, (uint8_t *)dst + (size_t)i * bs);
    }
    return 0;
}
