/*
 * device.h - memory, settings and streams of a device, through its backend's
 * table (kernels/backend.h; the dispatch rule: docs/ARCHITECTURE.md, Layers).
 *
 * The CPU backend is always built, the CUDA backend (kernels/cuda) when nvcc
 * and cuDNN are found (SG_HAVE_CUDA). A device setting its backend does not
 * have is an error naming the setting and the device. All return 0 /
 * non-NULL on success and set sg_geterr() on failure, unless stated.
 */
#ifndef SG_DEVICE_H
#define SG_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "tensor.h"

#include "api.h"

SG_API_BEGIN

#ifdef __cplusplus
extern "C" {
#endif

void *sg_device_alloc(sg_devtype dev, size_t nbytes);
void sg_device_free(sg_devtype dev, void *p);
int sg_device_copy(sg_devtype ddev, void *dst, sg_devtype sdev, const void *src, size_t nbytes);
int sg_device_fill(sg_devtype dev, void *p, sg_dtype dt, int64_t n, double v);
/* 1 if a CUDA device can be used; 0 with a message in sg_geterr() if not. */
int sg_cuda_available(void);

/* 1 when sgdsa was built with a backend for dev (0: without). */
int sg_device_built(sg_devtype dev);
/* Number of devices of a kind (0 with the reason in sg_geterr()). */
int sg_device_count(sg_devtype dev);
/* "NVIDIA H200 (sm_90, 139.8 GiB)" into buf. */
int sg_device_describe(sg_devtype dev, char *buf, size_t n);
/* Wait for all queued work; give cached blocks back to the driver. */
int sg_device_synchronize(sg_devtype dev);
int sg_device_empty_cache(sg_devtype dev);

/* The counters of a device's caching pool of memory blocks. */
typedef struct sg_mem_stats {
    size_t in_use;          /* bytes handed out, rounded to blocks */
    size_t cached;          /* bytes held free in the pool */
    size_t peak_in_use;
    int64_t device_allocs;  /* driver allocations so far (the pool's misses) */
    int64_t device_frees;   /* driver frees so far */
    int64_t pool_hits;      /* allocations served from the pool */
    int caching;            /* 0 under SGDSA_CUDA_NO_CACHE=1 (every block from the driver) */
} sg_mem_stats;
int sg_device_mem_stats(sg_devtype dev, sg_mem_stats *out);
/* Host waits for the device so far, and work items queued on its compute
 * stream so far (-1 with a message when the backend does not count them). */
int64_t sg_device_host_waits(sg_devtype dev);
int64_t sg_device_launches(sg_devtype dev);

/* Settings: TF32 math, deterministic algorithms (cuda); the convolution
 * implementation (cpu: sg_conv_impl of kernels/cpu/nn.h, 0 auto, 1 im2col,
 * 2 dnnl). Getters return the value, or -1 with a message. */
int sg_device_set_tf32(sg_devtype dev, int on);
int sg_device_get_tf32(sg_devtype dev);
int sg_device_set_deterministic(sg_devtype dev, int on);
int sg_device_get_deterministic(sg_devtype dev);
int sg_device_set_conv_impl(sg_devtype dev, int impl);
int sg_device_get_conv_impl(sg_devtype dev);
/* The implementation chosen per geometry and pass so far, one line each
 * (cpu; kernels/cpu/nn.h's sg_cpu_conv2d_choices): written into buf (n
 * bytes, NUL-terminated, cut when short); returns the full length, or -1
 * with a message. _pin: those lines' choices pinned over every other (a
 * resume's); -1 with a message naming a line that is not a choice. */
int64_t sg_device_conv_impl_choices(sg_devtype dev, char *buf, size_t n);
int sg_device_conv_impl_pin(sg_devtype dev, const char *text);

/* A convolution algorithm chosen by a backend: the geometry (n, c, h, w, k,
 * kh, kw, sh, sw, ph, pw), the settings it was chosen under, the pass
 * ("forward", "backward-data", "backward-filter"), the library's algorithm
 * and math type (enum values), its workspace bytes and its timed
 * milliseconds per call (-1: chosen by the heuristics, untimed). */
typedef struct sg_conv_choice {
    int64_t key[11];
    int tf32, deterministic;
    const char *pass;
    int algo, math;
    size_t workspace;
    float ms;
} sg_conv_choice;
/* Every algorithm chosen so far: fills out[0..cap) and returns how many
 * there are (-1 with a message). */
int sg_device_conv_choices(sg_devtype dev, sg_conv_choice *out, int cap);

/* Pinned host memory for copies to dev (the data loader's allocation hooks,
 * core/data.h): the functions, or -1 with a message. */
int sg_device_host_allocator(sg_devtype dev, void *(**alloc)(size_t, void *),
                             void (**free)(void *, void *));

/* Input copies on the device's copy stream, overlapped with compute; see
 * kernels/cuda/nn_cuda.h for the ordering rules. */
#define SG_INPUT_SLOTS 2
int sg_device_input_copy(sg_devtype dev, int slot, void *dst, const void *src, size_t nbytes);
int sg_device_input_ready(sg_devtype dev, int slot);
int sg_device_input_wait(sg_devtype dev, int slot);
int sg_device_input_expand(sg_devtype dev, int slot, float *dst, const uint8_t *u8, int64_t n,
                           int64_t cap, const int32_t *aug, size_t aug_bytes, int c, int h,
                           int w, int pad);

/* Sums of device vectors over the ranks of a data-parallel run (NCCL on
 * cuda; see kernels/cuda/nn_cuda.h). built: 1 or 0 (0 also without a backend). */
#define SG_NCCL_ID_BYTES 128
int sg_device_nccl_built(sg_devtype dev);
int sg_device_nccl_unique_id(sg_devtype dev, unsigned char id[SG_NCCL_ID_BYTES]);
int sg_device_nccl_init(sg_devtype dev, const unsigned char id[SG_NCCL_ID_BYTES], int rank,
                        int size);
int sg_device_nccl_ready(sg_devtype dev);
int sg_device_nccl_allsum_f32(sg_devtype dev, float *v, int64_t n);
void sg_device_nccl_finalize(sg_devtype dev);

#ifdef __cplusplus
}
#endif

SG_API_END

#endif
