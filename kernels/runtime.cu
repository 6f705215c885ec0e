/*
 * runtime: thin wrappers over the CUDA runtime (device count, memory,
 * copies, stream synchronisation, event timing) so that libpi's C code
 * reaches CUDA only through kernels.h and needs no CUDA headers.  No policy
 * here: libpi decides when to allocate, copy and wait.
 */
#include <cuda_runtime.h>

#include "kernels.h"

const char *pi_kernel_error_string(int code)
{
    switch (code) {
    case 0:
        return "no error";
    case PI_KERNEL_EUNSUPPORTED:
        return "no CUDA kernel for this type";
    case PI_KERNEL_EINVAL:
        return "element count not whole blocks, or pointer misaligned";
    default:
        return cudaGetErrorString((cudaError_t)code);
    }
}

int pi_kernel_device_count(int *count)
{
    *count = 0;
    cudaError_t e = cudaGetDeviceCount(count);
    if (e != cudaSuccess) {
        *count = 0;
        /* Clear the sticky last-error so later calls report their own. */
        (void)cudaGetLastError();
    }
    return (int)e;
}

int pi_kernel_malloc(void **dev_ptr, size_t bytes)
{
    *dev_ptr = NULL;
    return (int)cudaMalloc(dev_ptr, bytes);
}

int pi_kernel_free(void *dev_ptr)
{
    return dev_ptr ? (int)cudaFree(dev_ptr) : 0;
}

int pi_kernel_copy_to_device(void *dev_dst, const void *host_src, size_t bytes, void *stream)
{
    return (int)cudaMemcpyAsync(dev_dst, host_src, bytes, cudaMemcpyHostToDevice,
                                (cudaStream_t)stream);
}

int pi_kernel_copy_to_host(void *host_dst, const void *dev_src, size_t bytes, void *stream)
{
    return (int)cudaMemcpyAsync(host_dst, dev_src, bytes, cudaMemcpyDeviceToHost,
                                (cudaStream_t)stream);
}

int pi_kernel_copy_on_device(void *dev_dst, const void *dev_src, size_t bytes, void *stream)
{
    return (int)cudaMemcpyAsync(dev_dst, dev_src, bytes, cudaMemcpyDeviceToDevice,
                                (cudaStream_t)stream);
}

int pi_kernel_stream_sync(void *stream)
{
    return (int)cudaStreamSynchronize((cudaStream_t)stream);
}

int pi_kernel_event_create(void **event)
{
    cudaEvent_t e = NULL;
    /* a host waiting on an event sleeps rather than spins: the hybrid path's
     * CPU threads wait for copies while they have nothing to do */
    cudaError_t rc = cudaEventCreateWithFlags(&e, cudaEventBlockingSync);
    *event = rc == cudaSuccess ? (void *)e : NULL;
    return (int)rc;
}

int pi_kernel_event_destroy(void *event)
{
    return event ? (int)cudaEventDestroy((cudaEvent_t)event) : 0;
}

int pi_kernel_event_record(void *event, void *stream)
{
    return (int)cudaEventRecord((cudaEvent_t)event, (cudaStream_t)stream);
}

int pi_kernel_event_elapsed(float *ms, void *start, void *stop)
{
    cudaError_t rc = cudaEventSynchronize((cudaEvent_t)stop);
    if (rc == cudaSuccess)
        rc = cudaEventElapsedTime(ms, (cudaEvent_t)start, (cudaEvent_t)stop);
    return (int)rc;
}

int pi_kernel_event_sync(void *event)
{
    return (int)cudaEventSynchronize((cudaEvent_t)event);
}

int pi_kernel_host_alloc(void **host_ptr, size_t bytes)
{
    *host_ptr = NULL;
    return (int)cudaMallocHost(host_ptr, bytes);
}

int pi_kernel_host_free(void *host_ptr)
{
    return host_ptr ? (int)cudaFreeHost(host_ptr) : 0;
}
