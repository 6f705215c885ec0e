/*
 * cuda: libpi's door to the GPU.  It asks whether a usable CUDA device is
 * there (and why not, if not) and runs the kernels of kernels/ on it; the
 * rest of libpi calls this module, never the kernels or the CUDA runtime.
 *
 * Built without CUDA (`make CUDA=0`, or no nvcc), every function is a stub:
 * no devices, and anything that would run on one fails with "built without
 * CUDA".  A CUDA build on a machine with no GPU or no driver likewise
 * reports zero devices, with the runtime's reason in pi_cuda_status().
 */
#ifndef PI_CUDA_H
#define PI_CUDA_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "quant.h"

/* Usable CUDA devices; 0 when built without CUDA or when none can be used. */
int pi_cuda_device_count(void);

/* One static line on the state of CUDA: "CUDA ready", or why not: "built
 * without CUDA", "no CUDA device", or the runtime's own error such as "CUDA
 * driver version is insufficient for CUDA runtime version". */
const char *pi_cuda_status(void);

/* Whether pi_cuda_dequantize_row() has a kernel for the type (false when
 * built without CUDA). */
bool pi_cuda_can_dequantize(pi_type type);

/* pi_dequantize_row() on the current device, for tests and checks: copies
 * the host row (pi_row_size(type, n) bytes) to the device, dequantises, and
 * copies n floats back, waiting for it all.  Bit-identical to the CPU.
 * Returns 0, or -1 with err filled. */
int pi_cuda_dequantize_row(pi_type type, const void *host_src, float *host_dst, int64_t n,
                           pi_err *err);

#endif
