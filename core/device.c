/* device.c - memory and settings of a device, through its backend's table. */
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "device.h"
#include "error.h"

/* The table of dev when it has `entry`; else return `fail` from the caller. */
#define NEED(dev, op, entry, fail)                                          \
    const sg_backend *be = SG_BACKEND_FN(dev, op, entry);                   \
    if (!be)                                                                \
        return fail

void *sg_device_alloc(sg_devtype dev, size_t nbytes)
{
    if (dev == SG_CPU)
        return sg_aligned_alloc(nbytes, "cpu tensor storage");
    if (sg_device_count(dev) <= 0)  /* the reason is in sg_geterr() */
        return NULL;
    NEED(dev, "alloc", alloc, NULL);
    return be->alloc(nbytes);
}

void sg_device_free(sg_devtype dev, void *p)
{
    if (dev == SG_CPU) {
        free(p);
        return;
    }
    const sg_backend *be = sg_backend_get(dev);
    if (be && be->free)
        be->free(p);
}

int sg_device_copy(sg_devtype ddev, void *dst, sg_devtype sdev, const void *src, size_t nbytes)
{
    if (ddev == SG_CPU && sdev == SG_CPU) {
        memmove(dst, src, nbytes);
        return 0;
    }
    const sg_devtype dev = ddev != SG_CPU ? ddev : sdev;
    NEED(dev, "copy", memcpy, -1);
    return be->memcpy(dst, src, nbytes, ddev != SG_CPU, sdev != SG_CPU);
}

int sg_device_fill(sg_devtype dev, void *p, sg_dtype dt, int64_t n, double v)
{
    NEED(dev, "fill", fill, -1);
    return be->fill(p, dt, n, v);
}

int sg_cuda_available(void)
{
    /* device_count leaves the reason (no driver, driver too old, no GPU, ...)
     * in sg_geterr() */
    return sg_device_count(SG_CUDA) > 0;
}

int sg_device_built(sg_devtype dev)
{
    return sg_backend_get(dev) != NULL;
}

int sg_device_count(sg_devtype dev)
{
    if (dev == SG_CPU)
        return 1;
    const sg_backend *be = SG_BACKEND_FN(dev, "cuda", device_count);
    return be ? be->device_count() : 0;
}

/* int sg_device_<name>(sg_devtype dev, params): the table's entry of dev
 * applied to args, or -1 naming op when the backend lacks it. */
#define DEVICE_FN(name, op, entry, params, args)                              \
    int sg_device_##name params                                               \
    {                                                                         \
        NEED(dev, op, entry, -1);                                             \
        return be->entry args;                                                \
    }

DEVICE_FN(describe, "device_name", device_name, (sg_devtype dev, char *buf, size_t n), (buf, n))
DEVICE_FN(synchronize, "synchronize", synchronize, (sg_devtype dev), ())
DEVICE_FN(empty_cache, "empty_cache", empty_cache, (sg_devtype dev), ())
DEVICE_FN(set_tf32, "set_tf32", set_tf32, (sg_devtype dev, int on), (on))
DEVICE_FN(get_tf32, "get_tf32", get_tf32, (sg_devtype dev), ())
DEVICE_FN(get_deterministic, "get_deterministic", get_deterministic, (sg_devtype dev), ())
DEVICE_FN(set_conv_impl, "conv_impl", conv2d_set_impl, (sg_devtype dev, int impl), (impl))
DEVICE_FN(get_conv_impl, "conv_impl", conv2d_get_impl, (sg_devtype dev), ())
DEVICE_FN(conv_choices, "conv_algorithms", conv2d_choices,
          (sg_devtype dev, sg_conv_choice *out, int cap), (out, cap))
DEVICE_FN(conv_impl_pin, "conv_choices", conv2d_impl_pin, (sg_devtype dev, const char *text),
          (text))

int64_t sg_device_conv_impl_choices(sg_devtype dev, char *buf, size_t n)
{
    NEED(dev, "conv_choices", conv2d_impl_choices, -1);
    return (int64_t)be->conv2d_impl_choices(buf, n);
}
DEVICE_FN(input_copy, "input_copy", input_copy,
          (sg_devtype dev, int slot, void *dst, const void *src, size_t nbytes),
          (slot, dst, src, nbytes))
DEVICE_FN(input_ready, "input_ready", input_ready, (sg_devtype dev, int slot), (slot))
DEVICE_FN(input_wait, "input_wait", input_wait, (sg_devtype dev, int slot), (slot))
DEVICE_FN(input_expand, "input_expand", input_expand,
          (sg_devtype dev, int slot, float *dst, const uint8_t *u8, int64_t n, int64_t cap,
           const int32_t *aug, size_t aug_bytes, int c, int h, int w, int pad),
          (slot, dst, u8, n, cap, aug, aug_bytes, c, h, w, pad))
DEVICE_FN(nccl_unique_id, "nccl", nccl_unique_id,
          (sg_devtype dev, unsigned char id[SG_NCCL_ID_BYTES]), (id))
DEVICE_FN(nccl_init, "nccl", nccl_init,
          (sg_devtype dev, const unsigned char id[SG_NCCL_ID_BYTES], int rank, int size),
          (id, rank, size))
DEVICE_FN(nccl_allsum_f32, "nccl", nccl_allsum_f32, (sg_devtype dev, float *v, int64_t n), (v, n))

int sg_device_mem_stats(sg_devtype dev, sg_mem_stats *out)
{
    NEED(dev, "memory_stats", mem_stats, -1);
    *out = be->mem_stats();
    return 0;
}

int64_t sg_device_host_waits(sg_devtype dev)
{
    NEED(dev, "host_waits", host_waits, -1);
    return be->host_waits();
}

int64_t sg_device_launches(sg_devtype dev)
{
    NEED(dev, "launches", launches, -1);
    return be->launches();
}

int sg_device_set_deterministic(sg_devtype dev, int on)
{
    NEED(dev, "set_deterministic", set_deterministic, -1);
    be->set_deterministic(on);
    return 0;
}

int sg_device_host_allocator(sg_devtype dev, void *(**alloc)(size_t, void *),
                             void (**free_fn)(void *, void *))
{
    NEED(dev, "host_allocator", host_alloc, -1);
    *alloc = be->host_alloc;
    *free_fn = be->host_free;
    return 0;
}

int sg_device_nccl_built(sg_devtype dev)
{
    const sg_backend *be = sg_backend_get(dev);
    return be && be->nccl_built && be->nccl_built();
}

int sg_device_nccl_ready(sg_devtype dev)
{
    const sg_backend *be = sg_backend_get(dev);
    return be && be->nccl_ready && be->nccl_ready();
}

void sg_device_nccl_finalize(sg_devtype dev)
{
    /* (a process that never asked for the backend has nothing to finalize:
     * its module is not loaded for this) */
    const sg_backend *be = sg_backend_loaded(dev);
    if (be && be->nccl_finalize)
        be->nccl_finalize();
}
