/*
 * kernels: the C-callable face of pi's CUDA code.  libpi's cuda.c is the only
 * caller; it decides what runs on the device, these functions only do it.
 * No CUDA types appear here, so the header compiles with the plain C flags:
 * device pointers are `void *`/`float *`, a stream is a `void *` holding a
 * cudaStream_t (NULL for the default stream).
 *
 * Every function returns 0 on success or a non-zero code:
 * PI_KERNEL_EUNSUPPORTED, PI_KERNEL_EINVAL, or a cudaError_t value.
 * pi_kernel_error_string() turns any of them into one static line.
 * Launches are asynchronous: a launch error is returned at once, an error
 * inside the kernel surfaces at the next synchronising call.
 *
 * Files: runtime.cu (devices, memory, streams), dequant.cu (row
 * dequantisation).
 */
#ifndef PI_KERNELS_H
#define PI_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Negative, so they never collide with cudaError_t values (all >= 0). */
#define PI_KERNEL_EUNSUPPORTED (-1) /* no kernel for that type */
#define PI_KERNEL_EINVAL (-2)       /* bad count or misaligned pointer */

const char *pi_kernel_error_string(int code);

/* runtime.cu */
int pi_kernel_device_count(int *count);
int pi_kernel_malloc(void **dev_ptr, size_t bytes);
int pi_kernel_free(void *dev_ptr); /* NULL is allowed */
int pi_kernel_copy_to_device(void *dev_dst, const void *host_src, size_t bytes, void *stream);
int pi_kernel_copy_to_host(void *host_dst, const void *dev_src, size_t bytes, void *stream);
int pi_kernel_stream_sync(void *stream);

/* dequant.cu: n elements (whole blocks of `type`, a pi_type id) from the
 * device row src to the device row dst, on `stream`.  src must be 2-byte
 * aligned (4 for F32) and dst 4-byte aligned; several rows of the same type
 * are one longer row.  Results are bit-identical to pi_dequantize_row(). */
int pi_kernel_dequantize_supported(uint32_t type); /* 1 or 0 */
int pi_kernel_dequantize(uint32_t type, const void *src, float *dst, int64_t n, void *stream);

#ifdef __cplusplus
}
#endif

#endif
