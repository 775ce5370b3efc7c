/* device.c - memory dispatch between the CPU and (when built) CUDA backends. */
#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "error.h"

void *sg_device_alloc(sg_devtype dev, size_t nbytes)
{
    if (dev == SG_CPU)
        return sg_aligned_alloc(nbytes, "cpu tensor storage");
#ifdef SG_HAVE_CUDA
    if (!sg_cuda_available())
        return NULL;
    return sg_cuda_malloc(nbytes);
#else
    sg_seterr("cuda: sgdsa was built without the CUDA backend (no nvcc/cuDNN at configure time)");
    return NULL;
#endif
}

void sg_device_free(sg_devtype dev, void *p)
{
    if (dev == SG_CPU) {
        free(p);
        return;
    }
#ifdef SG_HAVE_CUDA
    sg_cuda_free(p);
#endif
}

int sg_device_copy(sg_devtype ddev, void *dst, sg_devtype sdev, const void *src, size_t nbytes)
{
    if (ddev == SG_CPU && sdev == SG_CPU) {
        memmove(dst, src, nbytes);
        return 0;
    }
#ifdef SG_HAVE_CUDA
    return sg_cuda_memcpy(dst, src, nbytes, ddev == SG_CUDA, sdev == SG_CUDA);
#else
    return sg_seterr("copy: sgdsa was built without the CUDA backend");
#endif
}

int sg_device_fill(sg_devtype dev, void *p, sg_dtype dt, int64_t n, double v)
{
#ifdef SG_HAVE_CUDA
    if (dev == SG_CUDA)
        return sg_cuda_fill(p, dt, n, v);
#endif
    return sg_seterr("fill: no %s backend for this operation", sg_device_name(dev));
}

int sg_cuda_available(void)
{
#ifdef SG_HAVE_CUDA
    /* sg_cuda_device_count leaves the reason (no driver, driver too old, no
     * GPU, ...) in sg_geterr() */
    return sg_cuda_device_count() > 0;
#else
    sg_seterr("cuda: sgdsa was built without the CUDA backend (no nvcc/cuDNN at configure time)");
    return 0;
#endif
}
