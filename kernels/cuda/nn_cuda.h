/*
 * nn_cuda.h - the CUDA backend: device memory, streams, settings, and the
 * float32 layer kernels on device pointers (cuDNN, cuBLAS, custom kernels).
 *
 * Built only when nvcc and cuDNN are found (SG_HAVE_CUDA). The layer kernels
 * mirror kernels/cpu/nn.h exactly (its conventions, the sg_cuda_ prefix, the
 * geometry structs of kernels/backend.h); the table in backend.c registers
 * them for the op layer (core/ops.c). Every pointer argument that is not a
 * host scalar output is a DEVICE pointer (allocated with sg_cuda_malloc, or
 * a CUDA tensor's data). Streams, waits, errors and the memory pool follow
 * docs/CUDA.md, "Rules the code keeps".
 */
#ifndef SG_NN_CUDA_H
#define SG_NN_CUDA_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {  /* the core headers are plain C; .cu files are C++ */
#endif

#include "backend.h"  /* sg_conv2d_geom, sg_pool2d_geom, sg_rng, sg_dtype, ... */

/* ---- devices, settings, streams ------------------------------------------ */
/* Number of CUDA devices; 0 with a message in sg_geterr() when there is no
 * driver or no GPU (never an error that stops the CPU path). */
int sg_cuda_device_count(void);
/* "NVIDIA H200 (sm_90, 139.8 GiB)" into buf; -1 when no device. */
int sg_cuda_device_name(char *buf, size_t n);
/* Wait for all queued work on the backend's streams. */
int sg_cuda_synchronize(void);
/* TF32 tensor cores for GEMMs and convolutions (off by default: fp32 parity).
 * -1 when cuBLAS refuses the math mode (the setting is kept for cuDNN). */
int sg_cuda_set_tf32(int on);
int sg_cuda_get_tf32(void);
/* Deterministic mode: convolutions use only deterministic cuDNN algorithms
 * (chosen again per shape when the mode changes). Off by default. */
void sg_cuda_set_deterministic(int on);
int sg_cuda_get_deterministic(void);
/* Testing: the kernels' int64 index arithmetic for every size (on), instead
 * of int32 wherever the sizes allow (off, the default), so that tests reach
 * the paths of tensors above 2^31 elements on small ones. */
void sg_cuda_set_index64(int on);

/* ---- memory ----------------------------------------------------------------- */
void *sg_cuda_malloc(size_t nbytes);
void sg_cuda_free(void *p);
/* Synchronous copy (waits for queued compute first, so results are visible). */
int sg_cuda_memcpy(void *dst, const void *src, size_t nbytes, int dst_is_device,
                   int src_is_device);
int sg_cuda_fill(void *p, sg_dtype dt, int64_t n, double v);
/* Strided copy between two views on the device, element i of dst (row-major
 * order of its own shape) := element i of src; same element count n, element
 * size 1 or 4 bytes; dst and src point at element 0 of each view. */
int sg_cuda_copy_strided(void *dst, int dndim, const int64_t *dsize, const int64_t *dstride,
                         const void *src, int sndim, const int64_t *ssize,
                         const int64_t *sstride, int64_t n, size_t elsize);
/* Fill a strided view with v (p: its element 0). */
int sg_cuda_fill_strided(void *p, int ndim, const int64_t *size, const int64_t *stride,
                         int64_t n, sg_dtype dt, double v);
/* Fill a strided float view (p: its element 0) with random draws: element i
 * (row-major) gets a + (b - a) * U[0,1) from word `off` + i of the stream
 * (seed, stream), or (normal) a + b * N(0,1) from words `off` + 4i .. +3,
 * counted from the start of block `block` (sg_rng_where):
 * the values the host's sequential fill draws (core/rng_draw.h). The caller
 * moves its generator past the n (or 4n) words. */
int sg_cuda_fill_random(float *p, int ndim, const int64_t *size, const int64_t *stride, int64_t n,
                        uint64_t seed, uint64_t stream, uint64_t block, unsigned off, double a, double b,
                        int normal);
/* Give every cached (free) block back to the driver. */
int sg_cuda_empty_cache(void);

typedef sg_mem_stats sg_cuda_mem_stats;  /* core/device.h */
sg_cuda_mem_stats sg_cuda_get_mem_stats(void);
/* How many times the host has waited for the device so far (stream and
 * event synchronizations: loss and reduction results, synchronous copies,
 * input slots). A steady-state search step waits once, for the objectives
 * it reads back together (tests/lua/test_cuda_model.lua counts them). */
int64_t sg_cuda_host_waits(void);
/* Work items queued on the compute stream so far: custom kernel launches
 * and cuDNN/cuBLAS compute calls (not copies or memsets). */
int64_t sg_cuda_launches(void);

/* Pinned host memory, with the signatures of the data loader's allocation
 * hooks (sg_host_alloc_fn / sg_host_free_fn in core/data.h; ud unused). */
void *sg_cuda_host_alloc(size_t nbytes, void *ud);
void sg_cuda_host_free(void *p, void *ud);

/* Input copies on the copy stream, host -> device, overlapped with compute.
 * Each copy belongs to one of SG_CUDA_INPUT_SLOTS slots (one per input buffer
 * of a double-buffered loader) and starts after the compute queued so far
 * (dst may be a buffer an earlier step still reads); it does not hold up
 * compute until sg_cuda_input_ready(slot), after which the compute queued
 * waits for the slot's copies. src should be pinned (sg_cuda_host_alloc) for
 * a truly asynchronous copy and must stay untouched until
 * sg_cuda_input_wait(slot) returns (the host waits for the slot's copies). */
#define SG_CUDA_INPUT_SLOTS SG_INPUT_SLOTS
int sg_cuda_input_copy(int slot, void *dst, const void *src, size_t nbytes);
int sg_cuda_input_ready(int slot);
int sg_cuda_input_wait(int slot);

/* ---- sums over the ranks of a data-parallel run (NCCL; kernels/cuda/nccl.c) -----
 * Built with NCCL when CMake finds it beside the CUDA toolkit (SG_HAVE_NCCL);
 * otherwise sg_nccl_built() is 0 and the others fail with that message (the
 * caller sums through the host and MPI instead). The communicator is made
 * once from an id that rank 0 draws (sg_nccl_unique_id) and every rank
 * receives (the caller broadcasts it, through MPI). sg_nccl_allsum_f32 sums
 * a device vector over the ranks in place with ncclAllReduce on the compute
 * stream, queued after the work before it; NCCL's ring and tree algorithms
 * reduce each element once and hand the result to every rank, so the ranks
 * get the same bits, and a run repeats for a fixed NCCL version, rank count
 * and topology. */
int sg_nccl_built(void);
int sg_nccl_unique_id(unsigned char id[SG_NCCL_ID_BYTES]);
int sg_nccl_init(const unsigned char id[SG_NCCL_ID_BYTES], int rank, int size);
int sg_nccl_ready(void);
int sg_nccl_allsum_f32(float *v, int64_t n);
void sg_nccl_finalize(void);

/* ---- tensor math on contiguous float32 device arrays (core/tensor.c) ------- */
int sg_cuda_binary(float *out, const float *a, const float *b, int64_t n, sg_binop op);
int sg_cuda_binary_scalar(float *out, const float *a, float s, int64_t n, sg_binop op,
                          int scalar_first);
int sg_cuda_unary(float *out, const float *a, int64_t n, sg_unfn fn);
int sg_cuda_clamp(float *out, const float *a, int64_t n, float lo, float hi);
/* Whole-array reductions (result to the host; accumulation in double; sum
 * and dot reduce in a fixed order, so they are deterministic). */
int sg_cuda_reduce(const float *a, int64_t n, sg_redop op, double *out);
int sg_cuda_dot(const float *a, const float *b, int64_t n, double *out);
int sg_cuda_norm(const float *a, int64_t n, double p, double *out);
int sg_cuda_isfinite(const float *a, int64_t n, int *out);
/* Row-major GEMM: c (m x n) = op(a) op(b), op = transpose when ta/tb; lda/ldb
 * are the row strides of a and b as stored (cuBLAS; TF32 when enabled). */
int sg_cuda_gemm(int ta, int tb, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                 const float *b, int64_t ldb, float *c, int64_t ldc);

/* ---- conv2d (cuDNN) ------------------------------------------------------------
 * The algorithms for a geometry are chosen once per pass, on its first call
 * (each candidate of cuDNN's heuristics timed as the pass runs, with a
 * workspace from the caching pool; in deterministic mode the heuristics'
 * first deterministic one) and cached with the descriptors (conv.c).
 * ws is not used (the CPU's signature): the backend's scratch buffer, sized
 * for the chosen algorithm, is; sg_cuda_conv2d_workspace_size(g) says how
 * many floats the three passes need at most (for a pass not chosen yet, the
 * most any acceptable candidate needs). */
typedef sg_conv_choice sg_cuda_conv_choice;  /* core/device.h */
/* Every algorithm chosen so far in this process: fills out[0..cap) and
 * returns how many there are (call again with a larger array when more). */
int sg_cuda_conv2d_choices(sg_cuda_conv_choice *out, int cap);
/* The algorithm chosen for pass (0 forward, 1 backward-data, 2
 * backward-filter) of g under the current settings: 0 and *out, 1 when
 * none is chosen yet, -1 for a bad pass. */
int sg_cuda_conv2d_chosen(const sg_conv2d_geom *g, int pass, sg_cuda_conv_choice *out);

/* ---- the layer kernels: sg_cuda_<entry> for each entry of
 * SG_BACKEND_LAYER_KERNELS, with the table's signature (kernels/backend.h)
 * and kernels/cpu/nn.h's contract. Where the GPU's differ:
 *  - linear: cuBLAS; batch normalization: cuDNN's spatial mode (save_* and
 *    running_* are C floats). Training without update_running passes no
 *    running buffers to cuDNN, so a trial forward leaves them untouched.
 *    batchnorm_backward (dx, dgamma, dbeta may each be NULL) in training
 *    mode with a dx is one cudnnBatchNormalizationBackward that accumulates
 *    the parameter gradients itself (betaParamDiff = 1): three passes over
 *    the activations instead of five.
 *  - dropout_mask draws on the device from r's position (core/rng_draw.h):
 *    the values sg_cpu_dropout_mask draws for the same generator state,
 *    which both leave at the same position.
 *  - pooling: custom kernels that keep the CPU's int32 argmax indices, so
 *    backward needs no x/y and ties resolve exactly as on the CPU.
 *  - cross_entropy: logits and labels (int32) on the device; loss and
 *    correct to the host (waits). An out-of-range label is an error naming
 *    the row, as on the CPU. */
#define SG_CUDA_DECLARE(entry) extern __typeof__(*((sg_backend *)0)->entry) sg_cuda_##entry;
SG_BACKEND_LAYER_KERNELS(SG_CUDA_DECLARE)
#undef SG_CUDA_DECLARE

/* The loss left on the device and read back later, so that the host queues
 * more work before it waits. A read-back slot (pinned host memory and an
 * event) is made once and reused: sg_cuda_cross_entropy_queue queues what
 * sg_cuda_cross_entropy computes and the copy of its totals into the slot,
 * and returns without waiting (the slot's earlier result is dropped);
 * sg_cuda_cross_entropy_read waits for the copy and gives loss and correct,
 * or the out-of-range label's error. Slots are read back in the order they
 * were queued on the compute stream, so a wait for one covers every slot
 * queued before it: reading several slots newest first waits once, and a
 * slot read again does not wait. sg_cuda_readback_free hands a slot back for
 * reuse (its pinned memory is kept). */
sg_readback *sg_cuda_readback_new(void);
void sg_cuda_readback_free(sg_readback *r);
int sg_cuda_cross_entropy_queue(const float *logits, const int32_t *labels, float *dlogits,
                                int64_t n, int64_t c, sg_readback *r);
int sg_cuda_cross_entropy_read(sg_readback *r, double *loss, int64_t *correct);

/* ---- flat-vector updates (the SA move); out may alias any input ------------------- */
int sg_cuda_vec_axpy(const float *a, const float *x, float *out, int64_t n, float alpha);
int sg_cuda_vec_axpbypz(const float *a, const float *x, const float *y, float *out,
                        int64_t n, float alpha, float beta);
int sg_cuda_vec_scale_add(const float *a, const float *x, float *out, int64_t n, float s,
                          float alpha);

/* ---- input batches on the device -----------------------------------------------------
 * The data loader's image transform (core/data.h, raw loaders) on uint8 images
 * on the device: x is N x C x H x W uint8; y is N x C x (H+2*pad) x (W+2*pad);
 * output (oy, ox) of image i reads source row oy + dy[i] - pad and column
 * (flip[i] ? Wo-1-ox : ox) + dx[i] - pad; a pixel v becomes lut[c*256 + v]
 * and positions outside the source lut[c*256] (the loader's table: exactly
 * the host's values). dy, dx, flip: N int32 on the device, or NULL (no
 * shift / no flip); lut: C x 256 floats on the device. On the compute stream. */
int sg_cuda_input_transform(const uint8_t *x, float *y, const int32_t *dy, const int32_t *dx,
                            const int32_t *flip, int64_t n, int c, int h, int w, int pad,
                            const float *lut);

/* A raw batch (sg_batch of a raw loader: u8 images, aug = shifts, flips and
 * the lookup table) expanded into the float batch dst (N x C x Ho x Wo) on
 * the copy stream, as input slot `slot`: the host buffers are copied into the
 * slot's device staging buffers after the compute queued so far, then the
 * transform runs there; the same ordering rules as sg_cuda_input_copy (the
 * compute waits from sg_cuda_input_ready(slot) on; the host buffers must stay
 * untouched until sg_cuda_input_wait(slot)). cap: the loader's batch size
 * (aug holds dy[cap] dx[cap] flip[cap] then the table). */
int sg_cuda_input_expand(int slot, float *dst, const uint8_t *u8, int64_t n, int64_t cap,
                         const int32_t *aug, size_t aug_bytes, int c, int h, int w, int pad);

#ifdef __cplusplus
}
#endif

#endif
