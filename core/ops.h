/*
 * ops.h - the layer ops on tensors: each checks shapes, dtypes and devices
 * once, then calls its device's backend (the dispatch rule:
 * docs/ARCHITECTURE.md, Layers). What the Lua binding (lua/l_nn.c) and the
 * C API call; the kernels' contract is kernels/cpu/nn.h's.
 *
 * Device: any tensor argument on the GPU runs the op there; every input,
 * parameter and gradient must be a contiguous tensor of the right dtype on
 * that device (one on the other device is an error naming both). Outputs,
 * workspaces and saved buffers are tensors the caller owns, resized here
 * (sg_tensor_resize reallocates only to grow, so a steady-state step
 * allocates nothing); an output on the other device that owns its storage is
 * moved to the op's device, so module buffers follow their inputs.
 * Parameter-gradient tensors are never resized: they are slices of a
 * model's flat gradient buffer and must have the parameter's shape;
 * gradients ADD into them, *_backward_data OVERWRITES its dx. Optional
 * tensors (bias, its gradient, a workspace, indices) may be NULL; a NULL
 * workspace is allocated for the call. On the GPU the workspace is unused.
 * An op the device's backend lacks fails naming the op and the device.
 *
 * Errors: -1 with sg_geterr() naming the op, the shapes and the device:
 *   "conv2d_forward: input 8x3x32x32 has 3 channels, weight 16x4x3x3 expects 4 (cpu)".
 */
#ifndef SG_OPS_H
#define SG_OPS_H

#include <stdint.h>

#include "rng.h"
#include "tensor.h"

#include "api.h"

SG_API_BEGIN

#ifdef __cplusplus
extern "C" {
#endif

/* conv2d: x NxCxHxW, w KxCxKHxKW (OIHW), b K; y := NxKxOHxOW. stride and
 * pad are {h, w}. */
int sg_conv2d_forward(sg_tensor *ws, const sg_tensor *x, sg_tensor *y, const sg_tensor *w,
                      const sg_tensor *b, const int64_t stride[2], const int64_t pad[2]);
/* x gives the input shape; dx := shape of x. */
int sg_conv2d_backward_data(sg_tensor *ws, const sg_tensor *x, const sg_tensor *dy,
                            sg_tensor *dx, const sg_tensor *w, const int64_t stride[2],
                            const int64_t pad[2]);
/* dw += dL/dw, db += dL/db (db may be NULL). */
int sg_conv2d_backward_params(sg_tensor *ws, const sg_tensor *x, const sg_tensor *dy,
                              sg_tensor *dw, sg_tensor *db, const int64_t stride[2],
                              const int64_t pad[2]);
int sg_conv2d_output_size(int64_t h, int64_t w, int64_t kh, int64_t kw,
                          const int64_t stride[2], const int64_t pad[2], int64_t *oh,
                          int64_t *ow);

/* linear: x NxIN, w OUTxIN, b OUT; y := NxOUT; dx := NxIN; dw += dy^T x, db += sum dy. */
int sg_linear_forward(const sg_tensor *x, sg_tensor *y, const sg_tensor *w, const sg_tensor *b);
int sg_linear_backward_data(const sg_tensor *dy, sg_tensor *dx, const sg_tensor *w);
int sg_linear_backward_params(const sg_tensor *x, const sg_tensor *dy, sg_tensor *dw,
                              sg_tensor *db);

/* batch normalization over x NxC or NxCx... (per channel over N and the
 * rest); gamma/beta C or NULL; save_* := C. training: batch statistics
 * (update: the running ones move too; the SA trial forward passes 0);
 * else the running statistics. sync: the statistics of the whole batch of a
 * data-parallel run (cpu; core/comm.h). */
int sg_batchnorm_forward(const sg_tensor *x, sg_tensor *y, const sg_tensor *gamma,
                         const sg_tensor *beta, sg_tensor *save_mean, sg_tensor *save_invstd,
                         sg_tensor *running_mean, sg_tensor *running_var, double eps,
                         double momentum, int training, int update, int sync);
int sg_batchnorm_backward_data(const sg_tensor *x, const sg_tensor *dy, sg_tensor *dx,
                               const sg_tensor *gamma, const sg_tensor *save_mean,
                               const sg_tensor *save_invstd, int training, int sync);
int sg_batchnorm_backward_params(const sg_tensor *x, const sg_tensor *dy, sg_tensor *dgamma,
                                 sg_tensor *dbeta, const sg_tensor *save_mean,
                                 const sg_tensor *save_invstd);
/* Both (dx may be NULL: not computed). */
int sg_batchnorm_backward(const sg_tensor *x, const sg_tensor *dy, sg_tensor *dx,
                          const sg_tensor *gamma, sg_tensor *dgamma, sg_tensor *dbeta,
                          const sg_tensor *save_mean, const sg_tensor *save_invstd,
                          int training);
/* A forward's output made again from its saved statistics, bit-identical. */
int sg_batchnorm_apply(const sg_tensor *x, sg_tensor *y, const sg_tensor *gamma,
                       const sg_tensor *beta, const sg_tensor *save_mean,
                       const sg_tensor *save_invstd);

/* element-wise: y := shape of x (y may be x); relu's backward uses the OUTPUT y. */
int sg_relu_forward(const sg_tensor *x, sg_tensor *y);
int sg_relu_backward_data(const sg_tensor *y, const sg_tensor *dy, sg_tensor *dx);
/* mask := shape of x; 0 with probability p, else 1/(1-p), drawn from r. */
int sg_dropout_mask(sg_rng *r, sg_tensor *mask, const sg_tensor *x, double p);
int sg_dropout_forward(const sg_tensor *x, sg_tensor *y, const sg_tensor *mask);
int sg_dropout_backward_data(const sg_tensor *dy, sg_tensor *dx, const sg_tensor *mask);

/* pooling: x NxCxHxW; kernel, stride, pad {h, w}; idx int32 := shape of y, or NULL. */
int sg_maxpool2d_forward(const sg_tensor *x, sg_tensor *y, sg_tensor *idx,
                         const int64_t kernel[2], const int64_t stride[2], const int64_t pad[2]);
int sg_maxpool2d_backward_data(const sg_tensor *x, const sg_tensor *dy, sg_tensor *dx,
                               const sg_tensor *idx, const int64_t kernel[2],
                               const int64_t stride[2], const int64_t pad[2]);
int sg_avgpool2d_forward(const sg_tensor *x, sg_tensor *y, const int64_t kernel[2],
                         const int64_t stride[2], const int64_t pad[2]);
int sg_avgpool2d_backward_data(const sg_tensor *x, const sg_tensor *dy, sg_tensor *dx,
                               const int64_t kernel[2], const int64_t stride[2],
                               const int64_t pad[2]);
/* x NxCx... -> y NxC (the mean over the rest). */
int sg_global_avgpool_forward(const sg_tensor *x, sg_tensor *y);
int sg_global_avgpool_backward_data(const sg_tensor *x, const sg_tensor *dy, sg_tensor *dx);

/* Zero padding of the spatial dimensions: x NxCxHxW, y := NxCx(H+2p)x(W+2p);
 * crop2d, its backward: dx := NxCx(H-2p)x(W-2p), dy's interior. p in [0, 2^20]. */
int sg_pad2d(const sg_tensor *x, sg_tensor *y, int64_t p);
int sg_crop2d(const sg_tensor *dy, sg_tensor *dx, int64_t p);

/* Cross-entropy over logits NxC and int32 labels N: the mean loss and the
 * rows whose argmax is the label; dlogits := NxC or NULL. */
int sg_cross_entropy(const sg_tensor *logits, const sg_tensor *labels, sg_tensor *dlogits,
                     double *loss, int64_t *correct);

/* The loss left on the device and read back later, so that the host queues
 * more work before it waits (cuda; kernels/cuda/nn_cuda.h). A read-back
 * slot is made once and reused: sg_cross_entropy_queue queues what
 * sg_cross_entropy computes and the copy of its totals into the slot, and
 * returns without waiting; sg_readback_read waits for that copy and gives
 * loss and correct (or the out-of-range label's error). Slots are read back
 * in the order they were queued, so one wait covers every slot queued
 * before the one read: read several newest first. sg_readback_free hands a
 * slot back for reuse. */
typedef struct sg_readback sg_readback;
sg_readback *sg_readback_new(sg_devtype dev);
void sg_readback_free(sg_devtype dev, sg_readback *r);
int sg_cross_entropy_queue(const sg_tensor *logits, const sg_tensor *labels, sg_tensor *dlogits,
                           sg_readback *r);
int sg_readback_read(sg_devtype dev, sg_readback *r, double *loss, int64_t *correct);

/* Flat-vector updates (any shapes of one element count; out may be a or x). */
int sg_vec_axpy(const sg_tensor *a, const sg_tensor *x, sg_tensor *out, float alpha);
int sg_vec_axpbypz(const sg_tensor *a, const sg_tensor *x, const sg_tensor *y, sg_tensor *out,
                   float alpha, float beta);
int sg_vec_scale_add(const sg_tensor *a, const sg_tensor *x, sg_tensor *out, float s,
                     float alpha);

#ifdef __cplusplus
}
#endif

SG_API_END

#endif
