/*
 * quant_k: the K-quant (256-element super-block) row kernels behind
 * pi_dequantize_row() and pi_quantize_row().  Private to the quant module:
 * quant.c's type table points at these; nothing else should call them.
 *
 * Each function converts `nb` whole blocks; the public entry points have
 * already checked the type and the element count.
 */
#ifndef PI_QUANT_K_H
#define PI_QUANT_K_H

#include <stdint.h>

void pi_dequantize_blocks_q2_K(const void *src, float *dst, int64_t nb);
void pi_dequantize_blocks_q3_K(const void *src, float *dst, int64_t nb);
void pi_dequantize_blocks_q4_K(const void *src, float *dst, int64_t nb);
void pi_dequantize_blocks_q5_K(const void *src, float *dst, int64_t nb);
void pi_dequantize_blocks_q6_K(const void *src, float *dst, int64_t nb);
void pi_dequantize_blocks_q8_K(const void *src, float *dst, int64_t nb);

void pi_quantize_blocks_q2_K(const float *src, void *dst, int64_t nb);
void pi_quantize_blocks_q3_K(const float *src, void *dst, int64_t nb);
void pi_quantize_blocks_q4_K(const float *src, void *dst, int64_t nb);
void pi_quantize_blocks_q5_K(const float *src, void *dst, int64_t nb);
void pi_quantize_blocks_q6_K(const float *src, void *dst, int64_t nb);
void pi_quantize_blocks_q8_K(const float *src, void *dst, int64_t nb);

#endif
