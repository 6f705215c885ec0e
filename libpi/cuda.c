/*
 * cuda: device discovery and the libpi side of the CUDA kernels (see
 * cuda.h).  This file is plain C compiled with the normal flags; it reaches
 * the CUDA runtime only through kernels/kernels.h, implemented by the CUDA
 * sources in kernels/, so it needs no CUDA headers.  Without PI_CUDA
 * (defined by the Makefile when nvcc is found) it compiles to stubs.
 */
#include "cuda.h"

#include <stddef.h>
#include <stdint.h>

#define NO_CUDA "built without CUDA"

#ifdef PI_CUDA

#include "../kernels/kernels.h"

int pi_cuda_device_count(void)
{
    int n;
    return pi_kernel_device_count(&n) == 0 ? n : 0;
}

const char *pi_cuda_status(void)
{
    int n, rc = pi_kernel_device_count(&n);
    if (rc != 0)
        return pi_kernel_error_string(rc);
    return n > 0 ? "CUDA ready" : "no CUDA device";
}

bool pi_cuda_can_dequantize(pi_type type)
{
    return pi_kernel_dequantize_supported((uint32_t)type) != 0;
}

/* Allocate, copy in, run, copy out, wait: each step only if all before it
 * succeeded, and the device buffers are freed whatever happened. */
static int dequantize_on_device(pi_type type, const void *host_src, size_t src_bytes,
                                float *host_dst, int64_t n)
{
    size_t dst_bytes = (size_t)n * sizeof(float);
    void *src = NULL, *dst = NULL;
    int rc = pi_kernel_malloc(&src, src_bytes);
    if (rc == 0)
        rc = pi_kernel_malloc(&dst, dst_bytes);
    if (rc == 0)
        rc = pi_kernel_copy_to_device(src, host_src, src_bytes, NULL);
    if (rc == 0)
        rc = pi_kernel_dequantize((uint32_t)type, src, dst, n, NULL);
    if (rc == 0)
        rc = pi_kernel_copy_to_host(host_dst, dst, dst_bytes, NULL);
    if (rc == 0)
        rc = pi_kernel_stream_sync(NULL);
    pi_kernel_free(dst);
    pi_kernel_free(src);
    return rc;
}

int pi_cuda_dequantize_row(pi_type type, const void *host_src, float *host_dst, int64_t n,
                           pi_err *err)
{
    const char *name = pi_type_name((uint32_t)type);
    if (!pi_cuda_can_dequantize(type))
        return pi_err_set(err, "CUDA dequantize: no kernel for type %s", name);
    size_t bytes = pi_row_size((uint32_t)type, n);
    if (n < 0 || (bytes == 0 && n != 0) || (uint64_t)n > SIZE_MAX / sizeof(float))
        return pi_err_set(err, "CUDA dequantize %s: %lld elements are not whole blocks", name,
                          (long long)n);
    if (n == 0)
        return 0;
    int rc = dequantize_on_device(type, host_src, bytes, host_dst, n);
    if (rc != 0)
        return pi_err_set(err, "CUDA dequantize %s: %s", name, pi_kernel_error_string(rc));
    return 0;
}

#else /* !PI_CUDA */

int pi_cuda_device_count(void)
{
    return 0;
}

const char *pi_cuda_status(void)
{
    return NO_CUDA;
}

bool pi_cuda_can_dequantize(pi_type type)
{
    return false;
}

int pi_cuda_dequantize_row(pi_type type, const void *host_src, float *host_dst, int64_t n,
                           pi_err *err)
{
    return pi_err_set(err, "CUDA dequantize %s: " NO_CUDA, pi_type_name((uint32_t)type));
}

#endif
