/*
 * quant_k: the K-quants, whose 256-element super-blocks carry one or two
 * f16 scales plus a small scale (and minimum) per 16- or 32-element
 * sub-block.
 *
 * Dequantisation is bit-exact with gguf-py (gguf/quants.py): the sub-block
 * scale is formed first (d * sc, dmin * m) and then applied (ds * q - dm),
 * each a float32 operation, in that order.
 *
 * Quantisation is pi's own, not a copy of ggml's: each sub-block gets the
 * least-squares scale (and minimum) over a small search of code
 * assignments, the sub-block scales are then quantised to the format's 4, 6
 * or 8 bits, and the codes are re-rounded against the scales as stored, so
 * they fit the scales pi_dequantize_row() will actually use.  The criterion
 * is plain squared error; there is no importance weighting.
 */
#include "quant_k.h"

#include <math.h>
#include <string.h>

#include "quant.h"

/* ---- dequantise ------------------------------------------------------- */

/* Q2_K and Q3_K store 2-bit codes four to a byte: element 128*h + 32*k + l
 * is bits 2k..2k+1 of qs[32*h + l].  In terms of 16-element sub-block s,
 * that is byte 32*(s/8) + 16*(s%2) + l, shift 2*(s/2 % 4); this returns the
 * byte offset of the sub-block and sets the shift. */
static int q2_offset(int s, int *shift)
{
    *shift = 2 * (s / 2 % 4);
    return 32 * (s / 8) + 16 * (s % 2);
}

void pi_dequantize_blocks_q2_K(const void *src, float *dst, int64_t nb)
{
    const pi_block_q2_K *b = src;
    for (int64_t i = 0; i < nb; i++, b++, dst += PI_QK_K) {
        float d = pi_f16_to_f32(b->d), dmin = pi_f16_to_f32(b->dmin);
        for (int s = 0; s < PI_QK_K / 16; s++) {
            int shift;
            const uint8_t *q = b->qs + q2_offset(s, &shift);
            float dl = d * (float)(b->scales[s] & 0xf);
            float ml = dmin * (float)(b->scales[s] >> 4);
            for (int l = 0; l < 16; l++)
                dst[16 * s + l] = dl * (float)(q[l] >> shift & 3) - ml;
        }
    }
}

/* Q3_K's sixteen 6-bit scales, stored with a bias of 32: the low nibbles of
 * scales i and i + 8 share byte i (i < 8), and the high two bits of scale i
 * are bits 2*(i/4).. of byte 8 + i%4. */
static void unpack_q3_scales(const uint8_t p[12], int sc[16])
{
    for (int i = 0; i < 16; i++) {
        int lo = i < 8 ? p[i] & 0xf : p[i - 8] >> 4;
        int hi = p[8 + i % 4] >> (2 * (i / 4)) & 3;
        sc[i] = (lo | hi << 4) - 32;
    }
}

/* The third bit of a Q3_K code is bit k of hmask[l] for element 32*k + l;
 * a clear bit means "subtract 4". */
void pi_dequantize_blocks_q3_K(const void *src, float *dst, int64_t nb)
{
    const pi_block_q3_K *b = src;
    for (int64_t i = 0; i < nb; i++, b++, dst += PI_QK_K) {
        float d = pi_f16_to_f32(b->d);
        int sc[16];
        unpack_q3_scales(b->scales, sc);
        for (int s = 0; s < PI_QK_K / 16; s++) {
            int shift, hbit = s / 2;
            const uint8_t *q = b->qs + q2_offset(s, &shift);
            const uint8_t *hm = b->hmask + 16 * (s % 2);
            float dl = d * (float)sc[s];
            for (int l = 0; l < 16; l++) {
                int v = (q[l] >> shift & 3) - ((hm[l] >> hbit & 1) ? 0 : 4);
                dst[16 * s + l] = dl * (float)v;
            }
        }
    }
}

/* Q4_K/Q5_K pack eight 6-bit scales and eight 6-bit minimums in 12 bytes:
 * bytes 0-3 and 4-7 hold scales and minimums 0-3 in their low six bits and
 * the top two bits of 4-7 in their high two; bytes 8-11 hold the low
 * nibbles of scale and minimum 4-7. */
static void unpack_scale_min(const uint8_t p[12], uint8_t sc[8], uint8_t mn[8])
{
    for (int j = 0; j < 4; j++) {
        sc[j] = p[j] & 63;
        mn[j] = p[j + 4] & 63;
        sc[j + 4] = (uint8_t)((p[j + 8] & 0xf) | (p[j] >> 6) << 4);
        mn[j + 4] = (uint8_t)((p[j + 8] >> 4) | (p[j + 4] >> 6) << 4);
    }
}

static void pack_scale_min(const uint8_t sc[8], const uint8_t mn[8], uint8_t p[12])
{
    for (int j = 0; j < 4; j++) {
        p[j] = (uint8_t)(sc[j] | (sc[j + 4] >> 4) << 6);
        p[j + 4] = (uint8_t)(mn[j] | (mn[j + 4] >> 4) << 6);
        p[j + 8] = (uint8_t)((sc[j + 4] & 0xf) | (mn[j + 4] & 0xf) << 4);
    }
}

/* Q4_K/Q5_K nibbles: byte 32*(s/2) + l holds 32-element sub-block s, in the
 * low nibble for even s and the high nibble for odd s.  Q5_K's fifth bit of
 * sub-block s is bit s of qh[l]. */
/* One super-block of either; qh is NULL for Q4_K. */
static void dequant_q45_K(pi_f16 d16, pi_f16 dmin16, const uint8_t *scales, const uint8_t *qs,
                          const uint8_t *qh, float *dst)
{
    float d = pi_f16_to_f32(d16), dmin = pi_f16_to_f32(dmin16);
    uint8_t sc[8], mn[8];
    unpack_scale_min(scales, sc, mn);
    for (int s = 0; s < 8; s++) {
        const uint8_t *q = qs + 32 * (s / 2);
        int shift = 4 * (s % 2);
        float ds = d * (float)sc[s], dm = dmin * (float)mn[s];
        for (int l = 0; l < 32; l++) {
            int v = (q[l] >> shift & 0xf) | (qh ? (qh[l] >> s & 1) << 4 : 0);
            dst[32 * s + l] = ds * (float)v - dm;
        }
    }
}

void pi_dequantize_blocks_q4_K(const void *src, float *dst, int64_t nb)
{
    const pi_block_q4_K *b = src;
    for (int64_t i = 0; i < nb; i++, b++, dst += PI_QK_K)
        dequant_q45_K(b->d, b->dmin, b->scales, b->qs, NULL, dst);
}

void pi_dequantize_blocks_q5_K(const void *src, float *dst, int64_t nb)
{
    const pi_block_q5_K *b = src;
    for (int64_t i = 0; i < nb; i++, b++, dst += PI_QK_K)
        dequant_q45_K(b->d, b->dmin, b->scales, b->qs, b->qh, dst);
}

/* Q6_K element 128*h + 32*k + l (h < 2, k < 4, l < 32): low four bits in
 * ql[64*h + 32*(k%2) + l] (low nibble for k < 2, high for k >= 2), high two
 * bits at 2k in qh[32*h + l]; codes are stored with a bias of 32. */
static int q6_index_ql(int h, int k, int l) { return 64 * h + 32 * (k % 2) + l; }

void pi_dequantize_blocks_q6_K(const void *src, float *dst, int64_t nb)
{
    const pi_block_q6_K *b = src;
    for (int64_t i = 0; i < nb; i++, b++, dst += PI_QK_K) {
        float d = pi_f16_to_f32(b->d);
        for (int h = 0; h < 2; h++) {
            for (int k = 0; k < 4; k++) {
                for (int l = 0; l < 32; l++) {
                    int e = 128 * h + 32 * k + l;
                    int lo = b->ql[q6_index_ql(h, k, l)] >> (4 * (k / 2)) & 0xf;
                    int hi = b->qh[32 * h + l] >> (2 * k) & 3;
                    float ds = d * (float)b->scales[e / 16];
                    dst[e] = ds * (float)((lo | hi << 4) - 32);
                }
            }
        }
    }
}

void pi_dequantize_blocks_q8_K(const void *src, float *dst, int64_t nb)
{
    const pi_block_q8_K *b = src;
    for (int64_t i = 0; i < nb; i++, b++, dst += PI_QK_K)
        for (int j = 0; j < PI_QK_K; j++)
            dst[j] = b->d * (float)b->qs[j];
}

/* ---- quantise: sub-block fits ----------------------------------------- */

/* Nearest integer, clamped to [lo, hi]; NaN gives lo. */
static int round_clamp(float v, int lo, int hi)
{
    if (!(v > (float)lo))
        return lo;
    if (v >= (float)hi)
        return hi;
    return (int)roundf(v);
}

/* Squared error of x ~ s*q - m with each code rounded to its nearest. */
static float affine_error(const float *x, int n, int nmax, float s, float m)
{
    float err = 0.0f;
    for (int i = 0; i < n; i++) {
        int q = s > 0.0f ? round_clamp((x[i] + m) / s, 0, nmax) : 0;
        float e = s * (float)q - m - x[i];
        err += e * e;
    }
    return err;
}

/* Codes q = round(is * (x - lo)), then the least-squares s and m for those
 * codes, with m >= 0.  False when the codes leave s undetermined. */
static bool affine_lsq(const float *x, int n, int nmax, float is, float lo,
                       float *s, float *m)
{
    double sl = 0, sl2 = 0, sx = 0, sxl = 0;
    for (int i = 0; i < n; i++) {
        double q = round_clamp(is * (x[i] - lo), 0, nmax);
        sl += q;
        sl2 += q * q;
        sx += x[i];
        sxl += x[i] * q;
    }
    double det = n * sl2 - sl * sl; /* exact: integers below 2^53 */
    if (det <= 0)
        return false;
    double scale = (n * sxl - sl * sx) / det;
    double offset = (sl2 * sx - sl * sxl) / det;
    if (offset > 0) { /* the format can only subtract: refit with m = 0 */
        offset = 0;
        scale = sxl / sl2;
    }
    *s = (float)scale;
    *m = (float)-offset;
    return scale > 0;
}

/* Fits x ~ s*q - m over one sub-block, q in [0, nmax], s >= 0, m >= 0.
 * Trial inverse scales spread over nmax +- 1 codes across [min(x, 0), max(x)]
 * each give a code assignment and its least-squares (s, m); the pair with
 * the smallest error wins.  Returns s and sets *m. */
#define AFFINE_TRIALS 10 /* on each side, in steps of 0.1 code */

static float fit_affine(const float *x, int n, int nmax, float *m)
{
    float lo = x[0], hi = x[0];
    for (int i = 1; i < n; i++) {
        lo = fminf(lo, x[i]);
        hi = fmaxf(hi, x[i]);
    }
    if (lo > 0.0f)
        lo = 0.0f;
    if (!(hi > lo)) { /* constant non-positive block */
        *m = -lo;
        return 0.0f;
    }
    float best_s = (hi - lo) / (float)nmax, best_m = -lo;
    float best_err = affine_error(x, n, nmax, best_s, best_m);
    for (int t = -AFFINE_TRIALS; t <= AFFINE_TRIALS; t++) {
        float is = ((float)nmax + 0.1f * (float)t) / (hi - lo), s, mm;
        if (!affine_lsq(x, n, nmax, is, lo, &s, &mm))
            continue;
        float err = affine_error(x, n, nmax, s, mm);
        if (err < best_err) {
            best_err = err;
            best_s = s;
            best_m = mm;
        }
    }
    *m = best_m;
    return best_s;
}

/* The element of largest magnitude, with its sign. */
static float signed_absmax(const float *x, int n)
{
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < n; i++) {
        if (amax < fabsf(x[i])) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    }
    return max;
}

/* Scores codes round(is * x) in [-nq, nq - 1]: (sum xq)^2 / sum q^2 is how
 * much squared error the least-squares scale removes, so larger is better. */
static double symmetric_score(const float *x, int n, int nq, float is, float *s)
{
    double sxq = 0, sqq = 0;
    for (int i = 0; i < n; i++) {
        double q = round_clamp(is * x[i], -nq, nq - 1);
        sxq += x[i] * q;
        sqq += q * q;
    }
    if (sqq <= 0)
        return -1;
    *s = (float)(sxq / sqq);
    return sxq * sxq / sqq;
}

/* Fits x ~ s*q over one sub-block, q in [-nq, nq - 1].  The range is
 * lopsided, so trials put the largest-magnitude element near code -nq and
 * near nq - 1, each over a band of +-25%.  Returns the least-squares s
 * of the best trial (negative when the largest element went to -nq). */
#define SYMMETRIC_TRIALS 16 /* on each side, in steps of nq/64 */

static float fit_symmetric(const float *x, int n, int nq)
{
    float max = signed_absmax(x, n), best_s = 0.0f, s;
    double best = 0;
    if (max == 0.0f)
        return 0.0f;
    for (int t = -SYMMETRIC_TRIALS; t <= SYMMETRIC_TRIALS; t++) {
        float c = (float)(t * nq) / 64.0f;
        double neg = symmetric_score(x, n, nq, -((float)nq + c) / max, &s);
        if (neg > best) {
            best = neg;
            best_s = s;
        }
        double pos = symmetric_score(x, n, nq, ((float)nq - 1.0f + c) / max, &s);
        if (pos > best) {
            best = pos;
            best_s = s;
        }
    }
    return best_s;
}

/* ---- quantise: super-blocks ------------------------------------------- */

/* An f16 super-block scale for sub-block scales up to `top` times it: the
 * largest becomes `top`; clamped so an extreme block stays finite. */
static pi_f16 super_scale(float max, int top)
{
    return pi_f32_to_f16(fminf(max / (float)top, 65504.0f));
}

/* One super-block of the affine K-quants (Q2_K, Q4_K, Q5_K), unpacked:
 * x ~ d*sc[j]*q - dmin*mn[j] for sub-block j. */
typedef struct kmin_block {
    pi_f16 d, dmin;
    uint8_t sc[16], mn[16]; /* 0..scmax */
    uint8_t q[PI_QK_K];     /* 0..nmax */
} kmin_block;

/* Fits each sub-block of `sub` elements, quantises the sub-block scales and
 * minimums to 0..scmax under two f16 super-scales, then re-rounds the codes
 * against the scales as they will be read back. */
static void quantize_kmin(const float *x, int sub, int nmax, int scmax, kmin_block *out)
{
    int nsub = PI_QK_K / sub;
    float s[16], m[16], smax = 0.0f, mmax = 0.0f;
    for (int j = 0; j < nsub; j++) {
        s[j] = fit_affine(x + sub * j, sub, nmax, &m[j]);
        smax = fmaxf(smax, s[j]);
        mmax = fmaxf(mmax, m[j]);
    }
    out->d = super_scale(smax, scmax);
    out->dmin = super_scale(mmax, scmax);
    float d = pi_f16_to_f32(out->d), dmin = pi_f16_to_f32(out->dmin);
    for (int j = 0; j < nsub; j++) {
        out->sc[j] = (uint8_t)(d > 0.0f ? round_clamp(s[j] / d, 0, scmax) : 0);
        out->mn[j] = (uint8_t)(dmin > 0.0f ? round_clamp(m[j] / dmin, 0, scmax) : 0);
        float ds = d * (float)out->sc[j], dm = dmin * (float)out->mn[j];
        for (int l = 0; l < sub; l++) {
            const float v = x[sub * j + l];
            int q = ds > 0.0f ? round_clamp((v + dm) / ds, 0, nmax) : 0;
            out->q[sub * j + l] = (uint8_t)q;
        }
    }
}

/* One super-block of the symmetric K-quants (Q3_K, Q6_K), unpacked:
 * x ~ d*sc[j]*q over 16-element sub-blocks. */
typedef struct ksym_block {
    pi_f16 d;
    int8_t sc[16];     /* -scn..scn-1 */
    int8_t q[PI_QK_K]; /* -nq..nq-1 */
} ksym_block;

/* Fits each sub-block, quantises the sub-block scales to -scn..scn-1 under
 * one f16 super-scale, then re-rounds the codes against them. */
static void quantize_ksym(const float *x, int nq, int scn, ksym_block *out)
{
    float s[16], smax = 0.0f;
    for (int j = 0; j < 16; j++) {
        s[j] = fit_symmetric(x + 16 * j, 16, nq);
        smax = fmaxf(smax, fabsf(s[j]));
    }
    out->d = super_scale(smax, scn - 1);
    float d = pi_f16_to_f32(out->d);
    for (int j = 0; j < 16; j++) {
        out->sc[j] = (int8_t)(d > 0.0f ? round_clamp(s[j] / d, -scn, scn - 1) : 0);
        float ds = d * (float)out->sc[j];
        for (int l = 0; l < 16; l++) {
            int q = ds != 0.0f ? round_clamp(x[16 * j + l] / ds, -nq, nq - 1) : 0;
            out->q[16 * j + l] = (int8_t)q;
        }
    }
}

/* ---- quantise: packing ------------------------------------------------ */

void pi_quantize_blocks_q2_K(const float *x, void *dst, int64_t nb)
{
    pi_block_q2_K *b = dst;
    kmin_block k;
    for (int64_t i = 0; i < nb; i++, b++, x += PI_QK_K) {
        quantize_kmin(x, 16, 3, 15, &k);
        b->d = k.d;
        b->dmin = k.dmin;
        memset(b->qs, 0, sizeof b->qs);
        for (int s = 0; s < 16; s++) {
            int shift;
            uint8_t *q = b->qs + q2_offset(s, &shift);
            b->scales[s] = (uint8_t)(k.sc[s] | k.mn[s] << 4);
            for (int l = 0; l < 16; l++)
                q[l] |= (uint8_t)(k.q[16 * s + l] << shift);
        }
    }
}

void pi_quantize_blocks_q3_K(const float *x, void *dst, int64_t nb)
{
    pi_block_q3_K *b = dst;
    ksym_block k;
    for (int64_t i = 0; i < nb; i++, b++, x += PI_QK_K) {
        quantize_ksym(x, 4, 32, &k);
        b->d = k.d;
        memset(b->qs, 0, sizeof b->qs);
        memset(b->hmask, 0, sizeof b->hmask);
        memset(b->scales, 0, sizeof b->scales);
        for (int s = 0; s < 16; s++) {
            int shift, u = k.sc[s] + 32;
            uint8_t *q = b->qs + q2_offset(s, &shift);
            b->scales[s % 8] |= (uint8_t)((u & 0xf) << (s < 8 ? 0 : 4));
            b->scales[8 + s % 4] |= (uint8_t)((u >> 4) << (2 * (s / 4)));
            for (int l = 0; l < 16; l++) {
                int c = k.q[16 * s + l] + 4; /* 0..7; bit 2 set means "no -4" */
                q[l] |= (uint8_t)((c & 3) << shift);
                b->hmask[16 * (s % 2) + l] |= (uint8_t)((c >> 2) << (s / 2));
            }
        }
    }
}

void pi_quantize_blocks_q4_K(const float *x, void *dst, int64_t nb)
{
    pi_block_q4_K *b = dst;
    kmin_block k;
    for (int64_t i = 0; i < nb; i++, b++, x += PI_QK_K) {
        quantize_kmin(x, 32, 15, 63, &k);
        b->d = k.d;
        b->dmin = k.dmin;
        pack_scale_min(k.sc, k.mn, b->scales);
        for (int s = 0; s < 8; s += 2)
            for (int l = 0; l < 32; l++)
                b->qs[16 * s + l] =
                    (uint8_t)(k.q[32 * s + l] | k.q[32 * (s + 1) + l] << 4);
    }
}

void pi_quantize_blocks_q5_K(const float *x, void *dst, int64_t nb)
{
    pi_block_q5_K *b = dst;
    kmin_block k;
    for (int64_t i = 0; i < nb; i++, b++, x += PI_QK_K) {
        quantize_kmin(x, 32, 31, 63, &k);
        b->d = k.d;
        b->dmin = k.dmin;
        pack_scale_min(k.sc, k.mn, b->scales);
        memset(b->qh, 0, sizeof b->qh);
        for (int s = 0; s < 8; s++) {
            for (int l = 0; l < 32; l++) {
                uint8_t q = k.q[32 * s + l];
                b->qh[l] |= (uint8_t)((q >> 4) << s);
                if (s % 2 == 0)
                    b->qs[16 * s + l] = q & 0xf;
                else
                    b->qs[16 * (s - 1) + l] |= (uint8_t)((q & 0xf) << 4);
            }
        }
    }
}

void pi_quantize_blocks_q6_K(const float *x, void *dst, int64_t nb)
{
    pi_block_q6_K *b = dst;
    ksym_block k;
    for (int64_t i = 0; i < nb; i++, b++, x += PI_QK_K) {
        quantize_ksym(x, 32, 128, &k);
        b->d = k.d;
        memcpy(b->scales, k.sc, sizeof b->scales);
        memset(b->ql, 0, sizeof b->ql);
        memset(b->qh, 0, sizeof b->qh);
        for (int h = 0; h < 2; h++) {
            for (int j = 0; j < 4; j++) {
                for (int l = 0; l < 32; l++) {
                    int u = k.q[128 * h + 32 * j + l] + 32;
                    b->ql[q6_index_ql(h, j, l)] |= (uint8_t)((u & 0xf) << (4 * (j / 2)));
                    b->qh[32 * h + l] |= (uint8_t)((u >> 4) << (2 * j));
                }
            }
        }
    }
}

/* Q8_K: the activation type of the K-quant dots.  Codes stay in
 * [-127, 127] (never -128) so that SIMD kernels may negate them. */
void pi_quantize_blocks_q8_K(const float *x, void *dst, int64_t nb)
{
    pi_block_q8_K *b = dst;
    for (int64_t i = 0; i < nb; i++, b++, x += PI_QK_K) {
        float amax = 0.0f;
        for (int j = 0; j < PI_QK_K; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        float id = amax > 0.0f ? 127.0f / amax : 0.0f;
        for (int j = 0; j < PI_QK_K; j++)
            b->qs[j] = (int8_t)round_clamp(x[j] * id, -127, 127);
        for (int g = 0; g < PI_QK_K / 16; g++) {
            int sum = 0;
            for (int l = 0; l < 16; l++)
                sum += b->qs[16 * g + l];
            b->bsums[g] = (int16_t)sum;
        }
        b->d = amax > 0.0f ? 1.0f / id : 0.0f;
    }
}
