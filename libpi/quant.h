/*
 * quant: tensor element types, their block layouts, and the row-level math
 * every matmul is built from.
 *
 * Type ids and block layouts are GGUF's (ggml's) so that weights are used
 * straight from the memory-mapped file.  Three families of operation:
 *
 *   dequantise   quantised row -> float row (bit-exact with the reference
 *                dequantisation of the `gguf` Python package);
 *   quantise     float row -> quantised row, for the types the packer writes
 *                and for the activation types Q8_0, Q8_1 and Q8_K;
 *   dot          one weight row against an activation row that was quantised
 *                to the weight type's `vec_dot_type` (Q8_0 for Q4_0/Q5_0/Q8_0,
 *                Q8_1 for Q4_1/Q5_1, Q8_K for the K-quants, F32 for the float
 *                types).  Each has a plain scalar version; SIMD versions are
 *                chosen at run time by CPU feature detection (quant_dot.c).
 *
 * All functions take element counts that are multiples of the type's block
 * size; callers check that once (pi_row_size() returns 0 otherwise).
 */
#ifndef PI_QUANT_H
#define PI_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* GGML type ids, as stored in GGUF tensor infos. Gaps are ids ggml retired. */
typedef enum pi_type {
    PI_TYPE_F32 = 0,
    PI_TYPE_F16 = 1,
    PI_TYPE_Q4_0 = 2,
    PI_TYPE_Q4_1 = 3,
    PI_TYPE_Q5_0 = 6,
    PI_TYPE_Q5_1 = 7,
    PI_TYPE_Q8_0 = 8,
    PI_TYPE_Q8_1 = 9,
    PI_TYPE_Q2_K = 10,
    PI_TYPE_Q3_K = 11,
    PI_TYPE_Q4_K = 12,
    PI_TYPE_Q5_K = 13,
    PI_TYPE_Q6_K = 14,
    PI_TYPE_Q8_K = 15,
    PI_TYPE_IQ2_XXS = 16,
    PI_TYPE_IQ2_XS = 17,
    PI_TYPE_IQ3_XXS = 18,
    PI_TYPE_IQ1_S = 19,
    PI_TYPE_IQ4_NL = 20,
    PI_TYPE_IQ3_S = 21,
    PI_TYPE_IQ2_S = 22,
    PI_TYPE_IQ4_XS = 23,
    PI_TYPE_I8 = 24,
    PI_TYPE_I16 = 25,
    PI_TYPE_I32 = 26,
    PI_TYPE_I64 = 27,
    PI_TYPE_F64 = 28,
    PI_TYPE_IQ1_M = 29,
    PI_TYPE_BF16 = 30,
    PI_TYPE_TQ1_0 = 34,
    PI_TYPE_TQ2_0 = 35,
    PI_TYPE_MXFP4 = 39,
    PI_TYPE_COUNT = 40
} pi_type;

#define PI_QK 32   /* elements per block of the legacy quants */
#define PI_QK_K 256 /* elements per super-block of the K-quants */

typedef uint16_t pi_f16;  /* IEEE half, stored as bits */
typedef uint16_t pi_bf16; /* bfloat16, stored as bits */

/* Block layouts (packed, little-endian, exactly as in GGUF files). */
typedef struct { pi_f16 d; uint8_t qs[PI_QK / 2]; } pi_block_q4_0;
typedef struct { pi_f16 d, m; uint8_t qs[PI_QK / 2]; } pi_block_q4_1;
typedef struct { pi_f16 d; uint8_t qh[4]; uint8_t qs[PI_QK / 2]; } pi_block_q5_0;
typedef struct { pi_f16 d, m; uint8_t qh[4]; uint8_t qs[PI_QK / 2]; } pi_block_q5_1;
typedef struct { pi_f16 d; int8_t qs[PI_QK]; } pi_block_q8_0;
/* Activation-only: s = d * sum(qs), so Q4_1/Q5_1 dots fold in the minimum. */
typedef struct { pi_f16 d, s; int8_t qs[PI_QK]; } pi_block_q8_1;

typedef struct {
    uint8_t scales[PI_QK_K / 16]; /* low nibble scale, high nibble min */
    uint8_t qs[PI_QK_K / 4];
    pi_f16 d, dmin;
} pi_block_q2_K;
typedef struct {
    uint8_t hmask[PI_QK_K / 8];
    uint8_t qs[PI_QK_K / 4];
    uint8_t scales[12]; /* 16 six-bit scales */
    pi_f16 d;
} pi_block_q3_K;
typedef struct {
    pi_f16 d, dmin;
    uint8_t scales[12]; /* 8 six-bit scales and 8 six-bit mins */
    uint8_t qs[PI_QK_K / 2];
} pi_block_q4_K;
typedef struct {
    pi_f16 d, dmin;
    uint8_t scales[12];
    uint8_t qh[PI_QK_K / 8];
    uint8_t qs[PI_QK_K / 2];
} pi_block_q5_K;
typedef struct {
    uint8_t ql[PI_QK_K / 2];
    uint8_t qh[PI_QK_K / 4];
    int8_t scales[PI_QK_K / 16];
    pi_f16 d;
} pi_block_q6_K;
/* Activation-only: bsums are sums of each 16 qs, for the K-quant minimums.
 * pi_quantize_row() keeps qs in [-127, 127]. */
typedef struct {
    float d;
    int8_t qs[PI_QK_K];
    int16_t bsums[PI_QK_K / 16];
} pi_block_q8_K;

typedef struct pi_type_traits {
    const char *name;     /* "Q4_K" */
    uint32_t block_size;  /* elements per block */
    uint32_t type_size;   /* bytes per block */
    bool can_dequantize;  /* pi_dequantize_row() supports it */
    bool can_quantize;    /* pi_quantize_row() supports it */
    pi_type vec_dot_type; /* activation type for pi_vec_dot(); PI_TYPE_COUNT if none */
} pi_type_traits;

/* NULL for ids that are not a known type (including retired ids 4 and 5). */
const pi_type_traits *pi_type_get_traits(uint32_t type);
const char *pi_type_name(uint32_t type); /* "?" for unknown ids */
/* Type id for a name such as "q4_k" or "Q4_K"; -1 if unknown. */
int pi_type_from_name(const char *name);

/* Bytes for n elements; 0 if the type is unknown or n is not a multiple of
 * its block size, or on overflow. */
size_t pi_row_size(uint32_t type, int64_t n);

/* Half and bfloat16 conversion, exact in the widening direction. */
float pi_f16_to_f32(pi_f16 h);
pi_f16 pi_f32_to_f16(float f);   /* round to nearest even */
float pi_bf16_to_f32(pi_bf16 h);
pi_bf16 pi_f32_to_bf16(float f); /* round to nearest even, NaN kept quiet */

/* Return 0, or -1 if the type has no such operation or n is not a whole
 * number of blocks. */
int pi_dequantize_row(pi_type type, const void *src, float *dst, int64_t n);
int pi_quantize_row(pi_type type, const float *src, void *dst, int64_t n);

/* Dot products.  `w` is a row of the weight type, `a` a row of its
 * vec_dot_type, both of n elements. */
typedef float (*pi_vec_dot_fn)(int64_t n, const void *w, const void *a);

typedef enum pi_isa {
    PI_ISA_SCALAR = 0,
    PI_ISA_AVX2 = 1,   /* AVX2 + FMA + F16C */
    PI_ISA_AVX512 = 2, /* AVX2's plus AVX-512 F, BW, VL and VNNI */
    PI_ISA_COUNT
} pi_isa;

/* Best implementation for this CPU; NULL if the type has no dot product. */
pi_vec_dot_fn pi_vec_dot_get(pi_type type);
/* A specific implementation (for tests and benchmarks); NULL if that ISA has
 * none for the type or the CPU lacks the ISA. */
pi_vec_dot_fn pi_vec_dot_get_isa(pi_type type, pi_isa isa);
const char *pi_isa_name(pi_isa isa);
/* The ISA pi_vec_dot_get() picks on this CPU. */
pi_isa pi_isa_best(void);

/* Batched dot products, for matrix products: one weight row against a batch
 * of activation rows, with the row's unpacked blocks reused for several
 * activations at a time.  The batch is stored in a packed form that only
 * these kernels read (quant_dot_impl.h describes it): pi_dot_pack_size() bytes
 * per row, rows in groups of PI_DOT_GROUP, written row by row with
 * pi_dot_pack_row().  Results agree with pi_vec_dot() on the same
 * activations to within float rounding of the per-block sums. */
#define PI_DOT_GROUP 4

/* out[t * out_stride] = w . row t of the packed batch, for t < n_acts. */
typedef void (*pi_vec_dot_nx_fn)(int64_t n, const void *w, const void *acts, int n_acts,
                                 float *out, int64_t out_stride);

/* Best batched kernel for this CPU, NULL if the type has none (the caller
 * then uses pi_vec_dot_get() on unpacked rows); and one ISA's, as for
 * pi_vec_dot_get_isa(). */
pi_vec_dot_nx_fn pi_vec_dot_nx_get(pi_type type);
pi_vec_dot_nx_fn pi_vec_dot_nx_get_isa(pi_type type, pi_isa isa);
/* Bytes per activation row of n elements in the packed form for weight type
 * wtype; 0 if the type has no batched kernels or n is not whole blocks. */
size_t pi_dot_pack_size(pi_type wtype, int64_t n);
/* Quantises x (n elements) as row t of a packed batch of n_acts rows at
 * acts; rows may be written in any order, from different threads.  Returns
 * 0, or -1 if wtype has no packed form or n is not whole blocks. */
int pi_dot_pack_row(pi_type wtype, const float *x, int64_t n, void *acts, int n_acts, int t);

#endif
