/*
 * backend.h - the kernel interface: what a backend (kernels/cpu,
 * kernels/cuda) provides to the core, as one table of functions.
 *
 * The op layer (core/ops.c, core/tensor.c, core/device.c) calls the table
 * of the device its tensors are on: sg_backend_get(dev)->fn(...). Kernels
 * take raw pointers (device pointers on the GPU) and sizes or a geometry
 * struct, under the conventions of kernels/cpu/nn.h. Each backend fills a
 * static sg_backend and registers it at load; a NULL entry is an op it
 * lacks (sg_backend_lacks). The dispatch rule and what may include what:
 * docs/ARCHITECTURE.md, Layers.
 */
#ifndef SG_KERNELS_BACKEND_H
#define SG_KERNELS_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "device.h"  /* sg_mem_stats, sg_conv_choice */
#include "rng.h"
#include "tensor.h"  /* sg_dtype, sg_devtype, sg_binop, sg_unfn, sg_redop */

#ifdef __cplusplus
extern "C" {  /* the core headers are plain C; .cu files are C++ */
#endif

/* ---- geometries ------------------------------------------------------------
 * conv2d: y[n,k,oh,ow] = b[k] + sum_{c,i,j} w[k,c,i,j] * x[n,c,oh*sh-ph+i,ow*sw-pw+j]
 * (zero padding). sg_conv2d_geom_init (kernels/cpu/conv.c: the block size,
 * threading and implementation are the CPU's choices, see nn.h) fills it;
 * the GPU reads only the sizes. */
/* A loss read-back slot of a backend (core/ops.h; cuda: pinned totals and
 * an event). */
typedef struct sg_readback sg_readback;

typedef struct sg_conv2d_geom {
    int64_t n, c, h, w;  /* input N x C x H x W */
    int64_t k;           /* output channels */
    int64_t kh, kw;      /* kernel */
    int64_t sh, sw;      /* stride */
    int64_t ph, pw;      /* zero padding */
    int64_t oh, ow;      /* output spatial size (computed) */
    int64_t block;       /* images per GEMM block (computed) */
    int per_thread;      /* 1: each thread runs its own images, 0: shared (computed) */
    int threads;         /* OpenMP threads the workspace is sized for (computed) */
    int dnnl;            /* passes oneDNN runs, SG_CONV_PASS_* bits (and SG_CONV_WINO_*
                            for its Winograd), -1: measured at the first call
                            (computed, see kernels/cpu/nn.h) */
} sg_conv2d_geom;

/* Fill g; -1 with a message for non-positive sizes or an empty output. */
int sg_conv2d_geom_init(sg_conv2d_geom *g, int64_t n, int64_t c, int64_t h, int64_t w,
                        int64_t k, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                        int64_t ph, int64_t pw);

/* Pooling, PyTorch semantics with ceil_mode = False: OH = (H + 2*ph - kh)/sh + 1;
 * padding at most half the kernel. Max pooling treats padding as -infinity
 * and saves, per output, the flat index (ih*W + iw) of the maximum in its
 * input plane (first maximum wins; a NaN wins) in `idx` (int32, N*C*OH*OW;
 * NULL in a trial forward). Average pooling counts the padding zeros in the
 * divisor (count_include_pad = True), clipped to the padded input. */
typedef struct sg_pool2d_geom {
    int64_t n, c, h, w;
    int64_t kh, kw, sh, sw, ph, pw;
    int64_t oh, ow;  /* computed */
} sg_pool2d_geom;

int sg_pool2d_geom_init(sg_pool2d_geom *g, int64_t n, int64_t c, int64_t h, int64_t w,
                        int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph,
                        int64_t pw);

/* Synchronized batch normalization: `fn` adds a vector over every rank in
 * place and gives every rank the same bits (core/comm.h's
 * sg_comm_allsum_f64); fn == NULL: one process, nothing summed. */
typedef struct sg_allsum {
    int (*fn)(double *v, int64_t n, void *ctx);
    void *ctx;
} sg_allsum;

/* ---- the table ------------------------------------------------------------- */
typedef struct sg_backend {
    const char *name;  /* "cpu", "cuda" */
    sg_devtype dev;

    /* device and memory (device pointers; the cpu backend leaves these NULL:
     * host memory is the core's) */
    int (*device_count)(void);
    int (*device_name)(char *buf, size_t n);
    void *(*alloc)(size_t nbytes);
    void (*free)(void *p);
    int (*memcpy)(void *dst, const void *src, size_t nbytes, int dst_is_device,
                  int src_is_device);
    int (*fill)(void *p, sg_dtype dt, int64_t n, double v);
    int (*copy_strided)(void *dst, int dndim, const int64_t *dsize, const int64_t *dstride,
                        const void *src, int sndim, const int64_t *ssize,
                        const int64_t *sstride, int64_t n, size_t elsize);
    int (*fill_strided)(void *p, int ndim, const int64_t *size, const int64_t *stride,
                        int64_t n, sg_dtype dt, double v);
    int (*fill_random)(float *p, int ndim, const int64_t *size, const int64_t *stride,
                       int64_t n, uint64_t seed, uint64_t stream, uint64_t block,
                       unsigned off, double a, double b, int normal);
    int (*synchronize)(void);
    int (*empty_cache)(void);
    sg_mem_stats (*mem_stats)(void);
    int64_t (*host_waits)(void);
    int64_t (*launches)(void);
    void *(*host_alloc)(size_t nbytes, void *ud);
    void (*host_free)(void *p, void *ud);
    int (*input_copy)(int slot, void *dst, const void *src, size_t nbytes);
    int (*input_ready)(int slot);
    int (*input_wait)(int slot);
    int (*input_expand)(int slot, float *dst, const uint8_t *u8, int64_t n, int64_t cap,
                        const int32_t *aug, size_t aug_bytes, int c, int h, int w, int pad);

    /* settings */
    int (*set_tf32)(int on);
    int (*get_tf32)(void);
    void (*set_deterministic)(int on);
    int (*get_deterministic)(void);
    int (*conv2d_set_impl)(int impl);  /* cpu: sg_conv_impl */
    int (*conv2d_get_impl)(void);
    int (*conv2d_choices)(sg_conv_choice *out, int cap);
    /* cpu: the implementation chosen per geometry and pass, as text
     * (kernels/cpu/nn.h's sg_cpu_conv2d_choices), and pinning such text */
    size_t (*conv2d_impl_choices)(char *buf, size_t n);
    int (*conv2d_impl_pin)(const char *text);

    /* sums over the ranks of a data-parallel run (NCCL) */
    int (*nccl_built)(void);
    int (*nccl_unique_id)(unsigned char id[SG_NCCL_ID_BYTES]);
    int (*nccl_init)(const unsigned char id[SG_NCCL_ID_BYTES], int rank, int size);
    int (*nccl_ready)(void);
    int (*nccl_allsum_f32)(float *v, int64_t n);
    void (*nccl_finalize)(void);

    /* tensor math on contiguous float32 arrays (the cpu's is core/tensor.c) */
    int (*binary)(float *out, const float *a, const float *b, int64_t n, sg_binop op);
    int (*binary_scalar)(float *out, const float *a, float s, int64_t n, sg_binop op,
                         int scalar_first);
    int (*unary)(float *out, const float *a, int64_t n, sg_unfn fn);
    int (*clamp)(float *out, const float *a, int64_t n, float lo, float hi);
    int (*reduce)(const float *a, int64_t n, sg_redop op, double *out);
    int (*dot)(const float *a, const float *b, int64_t n, double *out);
    int (*norm)(const float *a, int64_t n, double p, double *out);
    int (*all_finite)(const float *a, int64_t n, int *out);
    int (*gemm)(int ta, int tb, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                const float *b, int64_t ldb, float *c, int64_t ldc);

    /* layers */
    size_t (*conv2d_workspace_size)(const sg_conv2d_geom *g);
    int (*conv2d_forward)(float *ws, const float *x, float *y, const float *w, const float *b,
                          const sg_conv2d_geom *g);
    int (*conv2d_backward_data)(float *ws, const float *dy, float *dx, const float *w,
                                const sg_conv2d_geom *g);
    int (*conv2d_backward_params)(float *ws, const float *x, const float *dy, float *dw,
                                  float *db, const sg_conv2d_geom *g);
    int (*linear_forward)(const float *x, float *y, const float *w, const float *b, int64_t n,
                          int64_t in, int64_t out);
    int (*linear_backward_data)(const float *dy, float *dx, const float *w, int64_t n,
                                int64_t in, int64_t out);
    int (*linear_backward_params)(const float *x, const float *dy, float *dw, float *db,
                                  int64_t n, int64_t in, int64_t out);
    int (*batchnorm_forward_train)(const float *x, float *y, const float *gamma,
                                   const float *beta, float *save_mean, float *save_invstd,
                                   float *running_mean, float *running_var, int64_t n,
                                   int64_t c, int64_t hw, double eps, double momentum,
                                   int update_running);
    int (*batchnorm_forward_eval)(const float *x, float *y, const float *gamma,
                                  const float *beta, float *save_mean, float *save_invstd,
                                  const float *running_mean, const float *running_var,
                                  int64_t n, int64_t c, int64_t hw, double eps);
    int (*batchnorm_apply)(const float *x, float *y, const float *gamma, const float *beta,
                           const float *save_mean, const float *save_invstd, int64_t n,
                           int64_t c, int64_t hw);
    int (*batchnorm_backward_data)(const float *x, const float *dy, float *dx,
                                   const float *gamma, const float *save_mean,
                                   const float *save_invstd, int64_t n, int64_t c, int64_t hw,
                                   int training);
    int (*batchnorm_backward_params)(const float *x, const float *dy, float *dgamma,
                                     float *dbeta, const float *save_mean,
                                     const float *save_invstd, int64_t n, int64_t c,
                                     int64_t hw);
    int (*batchnorm_backward)(const float *x, const float *dy, float *dx, const float *gamma,
                              float *dgamma, float *dbeta, const float *save_mean,
                              const float *save_invstd, int64_t n, int64_t c, int64_t hw,
                              int training);
    int (*batchnorm_forward_train_sync)(const float *x, float *y, const float *gamma,
                                        const float *beta, float *save_mean,
                                        float *save_invstd, float *running_mean,
                                        float *running_var, int64_t n, int64_t c, int64_t hw,
                                        double eps, double momentum, int update_running,
                                        const sg_allsum *sum);
    int (*batchnorm_backward_data_sync)(const float *x, const float *dy, float *dx,
                                        const float *gamma, const float *save_mean,
                                        const float *save_invstd, int64_t n, int64_t c,
                                        int64_t hw, const sg_allsum *sum);
    int (*relu_forward)(const float *x, float *y, int64_t n);
    int (*relu_backward_data)(const float *y, const float *dy, float *dx, int64_t n);
    int (*dropout_mask)(sg_rng *r, float *mask, int64_t n, double p);
    int (*dropout_forward)(const float *x, float *y, const float *mask, int64_t n);
    int (*dropout_backward_data)(const float *dy, float *dx, const float *mask, int64_t n);
    int (*maxpool2d_forward)(const float *x, float *y, int32_t *idx, const sg_pool2d_geom *g);
    int (*maxpool2d_backward_data)(const float *dy, float *dx, const int32_t *idx,
                                   const sg_pool2d_geom *g);
    int (*avgpool2d_forward)(const float *x, float *y, const sg_pool2d_geom *g);
    int (*avgpool2d_backward_data)(const float *dy, float *dx, const sg_pool2d_geom *g);
    int (*global_avgpool_forward)(const float *x, float *y, int64_t n, int64_t c, int64_t hw);
    int (*global_avgpool_backward_data)(const float *dy, float *dx, int64_t n, int64_t c,
                                        int64_t hw);
    /* x: planes x h x w; y: planes x (h+2p) x (w+2p), written whole (zeros
     * around x); crop2d is its backward: dx (planes x h x w) = dy's interior */
    int (*pad2d)(const float *x, float *y, int64_t planes, int64_t h, int64_t w, int64_t p);
    int (*crop2d)(const float *dy, float *dx, int64_t planes, int64_t h, int64_t w, int64_t p);
    int (*cross_entropy)(const float *logits, const int32_t *labels, float *dlogits, int64_t n,
                         int64_t c, double *loss, int64_t *correct);
    /* the loss left on the device and read back later (core/ops.h's
     * sg_cross_entropy_queue; a backend with a queue of its own) */
    sg_readback *(*readback_new)(void);
    void (*readback_free)(sg_readback *r);
    int (*cross_entropy_queue)(const float *logits, const int32_t *labels, float *dlogits,
                               int64_t n, int64_t c, sg_readback *r);
    int (*cross_entropy_read)(sg_readback *r, double *loss, int64_t *correct);
    /* flat-vector updates (the SA move); out may alias any input */
    int (*vec_axpy)(const float *a, const float *x, float *out, int64_t n, float alpha);
    int (*vec_axpbypz)(const float *a, const float *x, const float *y, float *out, int64_t n,
                       float alpha, float beta);
    int (*vec_scale_add)(const float *a, const float *x, float *out, int64_t n, float s,
                         float alpha);
} sg_backend;

/* The layer kernels every backend provides as sg_<backend>_<entry> with the
 * table's signature: kernels/<backend>/backend.c fills its table from this
 * list (X(entry) per kernel). */
#define SG_BACKEND_LAYER_KERNELS(X)                                                     \
    X(conv2d_workspace_size) X(conv2d_forward) X(conv2d_backward_data)                  \
    X(conv2d_backward_params) X(linear_forward) X(linear_backward_data)                 \
    X(linear_backward_params) X(batchnorm_forward_train) X(batchnorm_forward_eval)      \
    X(batchnorm_backward_data) X(batchnorm_backward_params) X(batchnorm_backward)       \
    X(relu_forward) X(relu_backward_data) X(dropout_mask) X(dropout_forward)            \
    X(dropout_backward_data) X(maxpool2d_forward) X(maxpool2d_backward_data)            \
    X(avgpool2d_forward) X(avgpool2d_backward_data) X(global_avgpool_forward)           \
    X(global_avgpool_backward_data) X(pad2d) X(crop2d) X(cross_entropy)

/* Register a backend for its device (kernels/<backend>/backend.c, at load;
 * exported: the CUDA backend is a module of its own, libsgdsa_cuda.so). */
__attribute__((visibility("default"))) void sg_backend_register(const sg_backend *b);
/* The table of a device, or NULL when no backend for it is built. The CUDA
 * table is loaded on the first call for SG_CUDA: the module libsgdsa_cuda.so
 * beside libsgdsa_core.so (dlopen; its constructor registers the table),
 * unless the table is linked in already (the C tests). */
const sg_backend *sg_backend_get(sg_devtype dev);
/* dev's table when it is already there (linked in or loaded), else NULL;
 * loads nothing. */
const sg_backend *sg_backend_loaded(sg_devtype dev);
/* -1 with "<op>: the <device> backend has no <entry>" (or, with no backend
 * for the device, "<op>: sgdsa was built without the <device> backend"). */
int sg_backend_lacks(sg_devtype dev, const char *op, const char *entry);

/* The table of dev when it has `entry`, else NULL with sg_backend_lacks's message. */
#define SG_BACKEND_FN(dev, op, entry)                                                   \
    ((sg_backend_get(dev) && sg_backend_get(dev)->entry)                                \
         ? sg_backend_get(dev)                                                          \
         : (sg_backend_lacks((dev), (op), #entry), (const sg_backend *)NULL))

#ifdef __cplusplus
}
#endif

#endif
