/*
 * device.h - the device dispatch for memory: allocation, copies, fill.
 *
 * The CPU backend is always built. The CUDA backend (kernels/cuda/, built
 * when nvcc and cuDNN are found: SG_HAVE_CUDA) provides the sg_cuda_*
 * functions declared below; without it, any use of the cuda device is a
 * clear error, and the CPU path works as before.
 */
#ifndef SG_DEVICE_H
#define SG_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "tensor.h"

void *sg_device_alloc(sg_devtype dev, size_t nbytes);
void sg_device_free(sg_devtype dev, void *p);
int sg_device_copy(sg_devtype ddev, void *dst, sg_devtype sdev, const void *src, size_t nbytes);
int sg_device_fill(sg_devtype dev, void *p, sg_dtype dt, int64_t n, double v);
/* 1 if a CUDA device can be used; 0 with a message in sg_geterr() if not. */
int sg_cuda_available(void);

/* Implemented by the CUDA backend (kernels/cuda) when SG_HAVE_CUDA is set.
 * All return 0 / non-NULL on success, and set sg_geterr() on failure. */
#ifdef SG_HAVE_CUDA
int sg_cuda_device_count(void);
void *sg_cuda_malloc(size_t nbytes);
void sg_cuda_free(void *p);
int sg_cuda_memcpy(void *dst, const void *src, size_t nbytes, int dst_is_device, int src_is_device);
int sg_cuda_fill(void *p, sg_dtype dt, int64_t n, double v);
/* Strided views on the device (non-contiguous copies and fills). */
int sg_cuda_copy_strided(void *dst, int dndim, const int64_t *dsize, const int64_t *dstride,
                         const void *src, int sndim, const int64_t *ssize,
                         const int64_t *sstride, int64_t n, size_t elsize);
int sg_cuda_fill_strided(void *p, int ndim, const int64_t *size, const int64_t *stride,
                         int64_t n, sg_dtype dt, double v);
/* Random draws into a strided float view, as the host's fill (core/rng_draw.h). */
int sg_cuda_fill_random(float *p, int ndim, const int64_t *size, const int64_t *stride, int64_t n,
                        uint64_t seed, uint64_t stream, uint64_t block, unsigned off, double a, double b,
                        int normal);
/* Tensor math on contiguous float32 device arrays (core/tensor.c's CUDA
 * branches); the same declarations as kernels/cuda/nn_cuda.h. */
int sg_cuda_binary(float *out, const float *a, const float *b, int64_t n, sg_binop op);
int sg_cuda_binary_scalar(float *out, const float *a, float s, int64_t n, sg_binop op,
                          int scalar_first);
int sg_cuda_unary(float *out, const float *a, int64_t n, sg_unfn fn);
int sg_cuda_clamp(float *out, const float *a, int64_t n, float lo, float hi);
int sg_cuda_vec_axpy(const float *a, const float *x, float *out, int64_t n, float alpha);
int sg_cuda_reduce(const float *a, int64_t n, sg_redop op, double *out);
int sg_cuda_dot(const float *a, const float *b, int64_t n, double *out);
int sg_cuda_norm(const float *a, int64_t n, double p, double *out);
int sg_cuda_isfinite(const float *a, int64_t n, int *out);
int sg_cuda_gemm(int ta, int tb, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                 const float *b, int64_t ldb, float *c, int64_t ldc);
#endif

#endif
