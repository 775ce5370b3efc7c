/*
 * nn.h - float32 CPU kernels for the network layers (NCHW, raw pointers).
 *
 * These are the building blocks of the CPU backend: convolution, linear,
 * batch normalization, ReLU, pooling, dropout, the fused cross-entropy loss
 * and the flat-vector updates of an SA move. They know nothing of tensors or
 * Lua: the op layer (core/ops.c) checks shapes once and calls them through
 * the cpu backend's table (kernels/cpu/backend.c, kernels/backend.h) with
 * contiguous float32 buffers.
 *
 * Conventions (the same for every kernel):
 *
 *  - Argument order: workspace, inputs, outputs, parameters, gradients,
 *    buffers (saved statistics, indices, running statistics), then sizes
 *    (or a geometry struct) and scalars.
 *  - Layout: activations are N x C x H x W, conv weights K x C x KH x KW
 *    (OIHW, as PyTorch), linear weights OUT x IN, all contiguous row-major.
 *  - Backward to the input (*_backward_data) OVERWRITES dx.
 *    Parameter gradients (*_backward_params) ADD into dw/db, so a model can
 *    accumulate into its flat gradient buffer; clear it once per step.
 *  - A bias / affine pointer may be NULL (no bias, no affine), and so may the
 *    matching gradient pointer (that gradient is then not computed).
 *  - Sizes and shapes are checked once, by the op (core/ops.c), before a
 *    kernel runs; kernels return 0, or -1 with sg_geterr() naming the
 *    operation and the sizes for what only they can see (a geometry their
 *    implementation cannot take, a label out of range, a library's failure).
 *    They never allocate except where stated, and never exit. Loops and
 *    GEMMs share one OpenMP pool (docs/ARCHITECTURE.md, "Threads").
 *  - Accumulations that decide accuracy (BN statistics, loss) use double.
 */
#ifndef SG_KERNELS_CPU_NN_H
#define SG_KERNELS_CPU_NN_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"  /* the geometries, sg_allsum */
#include "rng.h"

/* Loops over fewer elements than this run on the calling thread: waking the
 * OpenMP pool costs more than the work. Results do not depend on it: every
 * parallel loop's iterations are independent or reduce in a fixed order.
 * On `parallel for simd` the condition is `if (parallel : n > SG_PAR_MIN)`:
 * a bare `if` applies to the simd construct too and leaves the small loops
 * scalar. */
#define SG_PAR_MIN 32768

/* ---- conv2d --------------------------------------------------------------
 * y[n,k,oh,ow] = b[k] + sum_{c,i,j} w[k,c,i,j] * x[n,c,oh*sh-ph+i,ow*sw-pw+j]
 * (zero padding). Two implementations, chosen per geometry and pass by
 * measurement on the machine (g->dnnl; conv_choice.c, and below):
 *  - im2col over blocks of images + OpenBLAS sgemm (conv.c), always built.
 *    geom_init picks the block size and the threading:
 *     - per thread (batch >= 2 images per thread): one OpenMP region per
 *       call, each thread runs its own share of the images with a
 *       single-threaded sgemm in its own workspace slice; weight gradients
 *       are per-thread partial sums added in thread order (deterministic for
 *       a thread count);
 *     - shared (small batches): one block at a time on the whole pool.
 *  - oneDNN's direct convolution (conv_dnnl.c), when built with oneDNN
 *    (SG_HAVE_DNNL): primitives cached per geometry, made at the first use
 *    (milliseconds), reorders to and from its blocked layouts inside the
 *    workspace; deterministic for a thread count as well.
 *  - oneDNN's Winograd convolution F(4x4, 3x3) (conv_dnnl.c), for the 3x3
 *    stride-1 geometries where oneDNN has it on this CPU (AVX-512): about
 *    half the multiplications of the direct one; its results differ from
 *    the direct ones by the rounding of its transforms (about 2e-6 of the
 *    output's scale on ResNet shapes, a few times the direct sum's; within
 *    the 1e-5 tests/c/test_nn_ops.c asks of every implementation).
 * The geometry records the thread count it was made for (make it again
 * after sg_set_num_threads()); the caller owns a workspace of
 * sg_cpu_conv2d_workspace_size(g) floats, shared by the three functions.
 * With oneDNN, sg_cpu_conv2d_workspace_size and the first call of a new
 * geometry create its primitives; a failure to create them (out of memory,
 * say) is returned by every call with that geometry, naming the oneDNN
 * function, its status, the pass and the shapes. */

/* Which implementation runs each pass of a geometry (conv_choice.c):
 * recorded by the run being resumed (sg_cpu_conv2d_pin), else forced
 * (IM2COL, DNNL or WINOGRAD for every shape and pass: sg_cpu_conv2d_set_impl,
 * Lua sgdsa.core.conv_impl, else the environment variable
 * SGDSA_CONV=im2col|dnnl|winograd, read once; a build without oneDNN runs
 * im2col), else AUTO: chosen earlier in this process, else from the
 * machine's cache file ($XDG_CACHE_HOME/sgdsa or ~/.cache/sgdsa), else
 * measured at the geometry's first call (a few ms; every implementation
 * that runs there timed on a slice of the batch with data of its own) and
 * appended to the cache. The implementations agree within rounding, not
 * bit for bit: a run is
 * reproducible for a fixed choice and thread count, which is why a run
 * records its choices (log.h5's cpu_conv_choices) and a resume pins them.
 * set_impl: -1 when oneDNN is asked for and sgdsa was built without it.
 * A recorded Winograd choice for a geometry this CPU has no Winograd kernels
 * for runs oneDNN's direct algorithm (a warning on stderr). */
typedef enum {
    SG_CONV_AUTO = 0,
    SG_CONV_IM2COL = 1,
    SG_CONV_DNNL = 2,
    SG_CONV_WINOGRAD = 3  /* oneDNN's Winograd where it runs, oneDNN direct elsewhere */
} sg_conv_impl;
/* g->dnnl: bit p (SG_CONV_PASS_*) when pass p runs on oneDNN, and also bit
 * p + SG_CONV_WINO_SHIFT when it runs oneDNN's Winograd algorithm. */
enum { SG_CONV_PASS_FWD = 1, SG_CONV_PASS_BWD_DATA = 2, SG_CONV_PASS_BWD_WEIGHTS = 4,
       SG_CONV_PASS_ALL = 7, SG_CONV_WINO_SHIFT = 3, SG_CONV_WINO_ALL = 7 << 3 };
int sg_cpu_conv2d_set_impl(sg_conv_impl impl);
/* The forced choice in force (the override, else SGDSA_CONV, else AUTO). */
sg_conv_impl sg_cpu_conv2d_get_impl(void);
/* 1 when built with oneDNN (SG_HAVE_DNNL). */
int sg_cpu_conv2d_have_dnnl(void);
/* 1 when oneDNN has its Winograd algorithm for all three passes of g on
 * this CPU (3x3, stride 1, an ISA it has kernels for); 0 otherwise. */
int sg_cpu_conv2d_winograd_ok(const sg_conv2d_geom *g);
/* The passes oneDNN runs for g: g->dnnl, or when that is -1 the table's
 * choice, measured now when the geometry is new. */
int sg_cpu_conv2d_passes(const sg_conv2d_geom *g);
/* The choices in effect in this process, one line per geometry in the order
 * made ("128x64x32x32 k64 3x3 s1x1 p1x1 t2: forward dnnl, backward-data
 * dnnl, backward-params im2col # measured ..."), written into buf (n bytes,
 * NUL-terminated, cut when short); returns the full length (as snprintf). */
size_t sg_cpu_conv2d_choices(char *buf, size_t n);
/* Pin the choices of text (lines as above; '#' lines and what follows '#'
 * ignored) over every other: a resume's. -1 with a message naming the line
 * when one is not a choice. oneDNN choices in a build without it run im2col
 * (a warning on stderr). */
int sg_cpu_conv2d_pin(const char *text);
/* Free the cached oneDNN primitives (made again on demand; also freed at
 * exit). Safe at any time: it waits for a running oneDNN convolution. */
void sg_cpu_conv2d_cache_clear(void);

/* Workspace length in floats (may be 0). */
size_t sg_cpu_conv2d_workspace_size(const sg_conv2d_geom *g);
/* y: N x K x OH x OW. */
int sg_cpu_conv2d_forward(float *ws, const float *x, float *y, const float *w,
                          const float *b, const sg_conv2d_geom *g);
/* dx = d(loss)/dx from dy (overwrites dx). */
int sg_cpu_conv2d_backward_data(float *ws, const float *dy, float *dx, const float *w,
                                const sg_conv2d_geom *g);
/* dw += d/dw, db += d/db (db may be NULL). */
int sg_cpu_conv2d_backward_params(float *ws, const float *x, const float *dy, float *dw,
                                  float *db, const sg_conv2d_geom *g);

/* ---- linear ---------------------------------------------------------------
 * y (N x OUT) = x (N x IN) w^T + b. Each pass's sgemm is OpenBLAS's or
 * oneDNN's (when built with it), chosen per shape (N, IN, OUT, threads) as
 * the convolutions' implementations are (same precedence, cache and run
 * record: lines "linear 128x784 k512 t2: forward dnnl, backward-data
 * openblas, backward-params dnnl"; SGDSA_CONV=im2col forces OpenBLAS,
 * dnnl or winograd oneDNN). */
/* The passes of a linear layer whose sgemm is oneDNN's (SG_CONV_PASS_*
 * bits), measured now when the shape is new. */
int sg_cpu_linear_passes(int64_t n, int64_t in, int64_t out);
int sg_cpu_linear_forward(const float *x, float *y, const float *w, const float *b,
                          int64_t n, int64_t in, int64_t out);
/* dx (N x IN) = dy w (overwrites). */
int sg_cpu_linear_backward_data(const float *dy, float *dx, const float *w,
                                int64_t n, int64_t in, int64_t out);
/* dw += dy^T x, db += column sums of dy. */
int sg_cpu_linear_backward_params(const float *x, const float *dy, float *dw, float *db,
                                  int64_t n, int64_t in, int64_t out);

/* ---- batch normalization --------------------------------------------------
 * One kernel for BatchNorm2d (x is N x C x HW, HW = H*W) and BatchNorm1d
 * (x is N x C, pass hw = 1). Per channel c over the N*HW values:
 *
 *   training:  mean, var = batch mean and biased variance;
 *              y = (x - mean) / sqrt(var + eps) * gamma + beta;
 *              save_mean = mean, save_invstd = 1/sqrt(var + eps);
 *              if update_running (the forward at the current point, never a
 *              trial forward): running_mean = (1-momentum)*running_mean +
 *              momentum*mean, running_var likewise with the UNBIASED batch
 *              variance var*M/(M-1), M = N*HW (PyTorch's definition).
 *   eval:      uses running_mean/running_var; save_mean = running_mean,
 *              save_invstd = 1/sqrt(running_var + eps).
 *
 * gamma/beta may be NULL (affine=False). save_mean/save_invstd (C floats)
 * are always written and are what the backward functions read; `training`
 * in backward says whether the statistics depended on x (batch stats). */
int sg_cpu_batchnorm_forward_train(const float *x, float *y, const float *gamma,
                                   const float *beta, float *save_mean, float *save_invstd,
                                   float *running_mean, float *running_var,
                                   int64_t n, int64_t c, int64_t hw, double eps,
                                   double momentum, int update_running);
int sg_cpu_batchnorm_forward_eval(const float *x, float *y, const float *gamma,
                                  const float *beta, float *save_mean, float *save_invstd,
                                  const float *running_mean, const float *running_var,
                                  int64_t n, int64_t c, int64_t hw, double eps);
/* y = (x - save_mean) * save_invstd * gamma + beta: a forward's output made
 * again from the statistics it saved, bit-identical to it (models that do
 * not keep BatchNorm outputs recompute them for the backward). */
int sg_cpu_batchnorm_apply(const float *x, float *y, const float *gamma, const float *beta,
                           const float *save_mean, const float *save_invstd, int64_t n,
                           int64_t c, int64_t hw);
/* dx (overwrites). training: through the batch statistics; eval: dy*gamma*invstd. */
int sg_cpu_batchnorm_backward_data(const float *x, const float *dy, float *dx,
                                   const float *gamma, const float *save_mean,
                                   const float *save_invstd, int64_t n, int64_t c,
                                   int64_t hw, int training);
/* dgamma += sum(dy * xhat), dbeta += sum(dy) per channel (either may be NULL). */
int sg_cpu_batchnorm_backward_params(const float *x, const float *dy, float *dgamma,
                                     float *dbeta, const float *save_mean,
                                     const float *save_invstd, int64_t n, int64_t c,
                                     int64_t hw);
/* Both: backward_params (dgamma, dbeta: either or both may be NULL) then
 * backward_data (dx may be NULL: not computed). What a BatchNorm module's
 * backward calls; on the GPU one cuDNN call in training mode. */
int sg_cpu_batchnorm_backward(const float *x, const float *dy, float *dx, const float *gamma,
                              float *dgamma, float *dbeta, const float *save_mean,
                              const float *save_invstd, int64_t n, int64_t c, int64_t hw,
                              int training);

/* Synchronized batch normalization (a data-parallel run's sync_bn): the
 * statistics of the whole batch, held in shards by the ranks. `sum` adds a
 * vector over every rank in place and gives every rank the same bits
 * (core/comm.h's sg_comm_allsum_f64 behind it); with sum->fn == NULL (one
 * process) these compute exactly what the kernels above do. The forward
 * reduces the per-channel sums and count (mean), then the centered sums of
 * squares around the global mean (variance): the same two passes in double
 * as above, over the union of the shards; running statistics and M are the
 * global batch's. The backward (training) reduces the per-channel sums of
 * dy and dy*xhat. Parameter gradients stay per shard
 * (sg_cpu_batchnorm_backward_params): the gradient reduction adds them.
 * Each call allocates 2C+1 doubles. */
int sg_cpu_batchnorm_forward_train_sync(const float *x, float *y, const float *gamma,
                                        const float *beta, float *save_mean, float *save_invstd,
                                        float *running_mean, float *running_var,
                                        int64_t n, int64_t c, int64_t hw, double eps,
                                        double momentum, int update_running,
                                        const sg_allsum *sum);
int sg_cpu_batchnorm_backward_data_sync(const float *x, const float *dy, float *dx,
                                        const float *gamma, const float *save_mean,
                                        const float *save_invstd, int64_t n, int64_t c,
                                        int64_t hw, const sg_allsum *sum);

/* ---- elementwise ----------------------------------------------------------- */
/* y = max(x, 0); y may alias x. */
int sg_cpu_relu_forward(const float *x, float *y, int64_t n);
/* dx = dy where y > 0 else 0 (uses the OUTPUT y, so in-place relu works);
 * dx may alias dy. */
int sg_cpu_relu_backward_data(const float *y, const float *dy, float *dx, int64_t n);

/* Dropout with an explicit mask (so a trial forward reuses the point's mask).
 * mask[i] = 0 with probability p, else 1/(1-p); drawn sequentially from r
 * (p = 0: all ones; p must be in [0, 1)). */
int sg_cpu_dropout_mask(sg_rng *r, float *mask, int64_t n, double p);
/* y = x * mask (y may alias x); dx = dy * mask (dx may alias dy). */
int sg_cpu_dropout_forward(const float *x, float *y, const float *mask, int64_t n);
int sg_cpu_dropout_backward_data(const float *dy, float *dx, const float *mask, int64_t n);

/* ---- pooling (semantics: sg_pool2d_geom in kernels/backend.h) ---------------- */
int sg_cpu_maxpool2d_forward(const float *x, float *y, int32_t *idx, const sg_pool2d_geom *g);
int sg_cpu_maxpool2d_backward_data(const float *dy, float *dx, const int32_t *idx,
                                   const sg_pool2d_geom *g);
int sg_cpu_avgpool2d_forward(const float *x, float *y, const sg_pool2d_geom *g);
int sg_cpu_avgpool2d_backward_data(const float *dy, float *dx, const sg_pool2d_geom *g);
/* Zero padding of the spatial dimensions (nn.Pad): x planes x h x w, y
 * planes x (h+2p) x (w+2p) written whole; crop2d, its backward: dx = dy's
 * interior. */
int sg_cpu_pad2d(const float *x, float *y, int64_t planes, int64_t h, int64_t w, int64_t p);
int sg_cpu_crop2d(const float *dy, float *dx, int64_t planes, int64_t h, int64_t w, int64_t p);
/* Global average pool: x N x C x HW -> y N x C (mean over HW). */
int sg_cpu_global_avgpool_forward(const float *x, float *y, int64_t n, int64_t c, int64_t hw);
int sg_cpu_global_avgpool_backward_data(const float *dy, float *dx, int64_t n, int64_t c,
                                        int64_t hw);

/* ---- loss -------------------------------------------------------------------
 * Cross-entropy over logits (N x C) and int32 labels in [0, C): log-softmax
 * fused with the negative log-likelihood, mean over the batch.
 * *loss = mean loss; *correct = number of rows whose argmax (first maximum)
 * equals the label (may be NULL); dlogits (may be NULL) = (softmax - onehot)/N,
 * overwritten. Non-finite logits give a non-finite loss (not an error). */
int sg_cpu_cross_entropy(const float *logits, const int32_t *labels, float *dlogits,
                         int64_t n, int64_t c, double *loss, int64_t *correct);

/* ---- flat-vector updates (the SA move) ---------------------------------------
 * All parallel over the vector; out may alias any input. */
/* out = a + alpha * x   (trial = w - eta*g is alpha = -eta) */
void sg_cpu_vec_axpy(const float *a, const float *x, float *out, int64_t n, float alpha);
/* out = a + alpha * x + beta * y */
void sg_cpu_vec_axpbypz(const float *a, const float *x, const float *y, float *out,
                        int64_t n, float alpha, float beta);
/* out = s * a + alpha * x   (momentum buffers: v = mu*v + g) */
void sg_cpu_vec_scale_add(const float *a, const float *x, float *out, int64_t n, float s,
                          float alpha);

#endif
