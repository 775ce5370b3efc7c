/*
 * cuda_impl.h - internals of the CUDA backend, shared by its .c and .cu files
 * (not part of any public API).
 *
 * - Check macros: every CUDA runtime, cuBLAS and cuDNN call goes through
 *   SG_CU / SG_CUBLAS / SG_CUDNN, which on failure record the statement, the
 *   library's message, file and line with sg_seterr() and return -1 (the
 *   *_OR variants return a given value, e.g. NULL).
 * - The backend state: lazily initialised on first use (device, compute and
 *   copy streams, cuBLAS and cuDNN handles bound to the compute stream).
 * - Scratch buffers: persistent device buffers per purpose, grown on demand
 *   from the pool (so steady-state steps do not allocate). Each slot is used by
 *   one operation at a time on the single compute stream, so reuse is ordered.
 * - Launchers of the custom kernels (defined in the .cu files) used by the
 *   cuBLAS/cuDNN wrappers.
 */
#ifndef SG_CUDA_IMPL_H
#define SG_CUDA_IMPL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "error.h"
#include "nn_cuda.h"

int sg_cuda_fail_rt(const char *stmt, cudaError_t e, const char *file, int line);
int sg_cuda_fail_blas(const char *stmt, cublasStatus_t s, const char *file, int line);
int sg_cuda_fail_dnn(const char *stmt, cudnnStatus_t s, const char *file, int line);

#define SG_CU_OR(stmt, ret) do { cudaError_t sg_e_ = (stmt); \
    if (sg_e_ != cudaSuccess) { sg_cuda_fail_rt(#stmt, sg_e_, __FILE__, __LINE__); return ret; } } while (0)
#define SG_CUBLAS_OR(stmt, ret) do { cublasStatus_t sg_s_ = (stmt); \
    if (sg_s_ != CUBLAS_STATUS_SUCCESS) { sg_cuda_fail_blas(#stmt, sg_s_, __FILE__, __LINE__); return ret; } } while (0)
#define SG_CUDNN_OR(stmt, ret) do { cudnnStatus_t sg_s_ = (stmt); \
    if (sg_s_ != CUDNN_STATUS_SUCCESS) { sg_cuda_fail_dnn(#stmt, sg_s_, __FILE__, __LINE__); return ret; } } while (0)
#define SG_CU(stmt) SG_CU_OR(stmt, -1)
#define SG_CUBLAS(stmt) SG_CUBLAS_OR(stmt, -1)
#define SG_CUDNN(stmt) SG_CUDNN_OR(stmt, -1)

/* The host waits for the device only through these two (counted:
 * sg_cuda_host_waits): cudaStreamSynchronize and cudaEventSynchronize. */
cudaError_t sg_cuda_wait_stream(cudaStream_t s);
cudaError_t sg_cuda_wait_event(cudaEvent_t e);

/* Initialise the backend once (thread-safe); -1 with a message when no
 * device can be used. Every entry point calls it (cheap after the first). */
int sg_cuda_init(void);
cudaStream_t sg_cuda_stream(void);      /* the compute stream */
/* The device's multiprocessor count (asked once, at initialisation). */
int sg_cuda_sm_count(void);
/* Whether the kernels may use int32 index arithmetic for a launch whose
 * indices (one past the largest included) go up to n: n fits and the int64
 * kernels are not forced (sg_cuda_set_index64). */
int sg_cuda_index32_ok(int64_t n);
cublasHandle_t sg_cuda_cublas(void);
cudnnHandle_t sg_cuda_cudnn(void);

enum {
    SG_SCRATCH_CONV = 0,    /* cuDNN convolution workspace */
    SG_SCRATCH_REDUCE,      /* partial sums of reductions and loss */
    SG_SCRATCH_BN,          /* BatchNorm parameter-gradient partials and dummies */
    SG_SCRATCH_NSLOTS
};
/* A device buffer of at least nbytes for `slot` (NULL + message on OOM). */
void *sg_cuda_scratch(int slot, size_t nbytes);
/* A pinned host buffer of at least nbytes for `slot` (results, masks). */
void *sg_cuda_host_scratch(int slot, size_t nbytes);
/* Device arrays of n ones / zeros (float), kept and grown on demand. */
const float *sg_cuda_ones(int64_t n);
const float *sg_cuda_zeros(int64_t n);

/* Launch-error check after a kernel launch: names the kernel. SG_PRELAUNCH()
 * before the launch clears a stale (non-sticky) error that a library call
 * left behind (cuDNN's algorithm search records its failed allocations), so
 * the check reports this launch's error only. */
int sg_cuda_check_launch(const char *what, const char *file, int line);
/* Count a cuDNN/cuBLAS compute call (sg_cuda_launches; kernels are counted
 * by sg_cuda_check_launch). */
void sg_cuda_count_launch(void);
#define SG_LAUNCHED(what) sg_cuda_check_launch(what, __FILE__, __LINE__)

/* A loop nvcc must not unroll (the emulator's g++ build has no such pragma). */
#ifdef __CUDACC__
#define SG_NO_UNROLL _Pragma("unroll 1")
#else
#define SG_NO_UNROLL
#endif
#define SG_PRELAUNCH() ((void)cudaGetLastError())

/* A grid-stride loop over [0, n); not unrolled: the launches give most
 * threads one element, and unrolling makes the compiler divide the (64-bit)
 * trip count. */
#define SG_GRID_LOOP(i, n) \
    SG_NO_UNROLL \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
         i += (int64_t)blockDim.x * gridDim.x)

/* Blocks of `threads` covering n elements, at least 1 and at most cap. */
static inline unsigned sg_cuda_blocks(int64_t n, int threads, int64_t cap)
{
    int64_t b = (n + threads - 1) / threads;
    if (b > cap)
        b = cap;
    return (unsigned)(b < 1 ? 1 : b);
}

/* ---- custom kernel launchers (elementwise.cu; the sums in reduce.cu) ---------- */
/* sg_cuda_input_transform on `stream` (the copy stream for input slots) */
int sg_cuda_k_input_transform(cudaStream_t stream, const uint8_t *x, float *y,
                              const int32_t *dy, const int32_t *dx, const int32_t *flip,
                              int64_t n, int c, int h, int w, int pad, const float *lut);
/* y[(i*c + ch)*inner + j] += b[ch] */
int sg_cuda_k_bias_add(float *y, const float *b, int64_t n, int64_t c, int64_t inner);
/* db[ch] += sum_{i,j} dy[(i*c + ch)*inner + j]  (deterministic, double) */
int sg_cuda_k_bias_grad(const float *dy, float *db, int64_t n, int64_t c, int64_t inner);
/* dgamma[ch] += sum dy*(x-mean)*invstd, dbeta[ch] += sum dy (either may be NULL) */
int sg_cuda_k_bn_param_grad(const float *x, const float *dy, float *dgamma, float *dbeta,
                            const float *mean, const float *invstd, int64_t n, int64_t c,
                            int64_t hw);
/* save_mean = running_mean, save_invstd = 1/sqrt(running_var + eps) */
int sg_cuda_k_bn_eval_stats(const float *running_mean, const float *running_var,
                            float *save_mean, float *save_invstd, int64_t c, double eps);
/* dx = dy * gamma * invstd (gamma may be NULL) */
int sg_cuda_k_bn_backward_eval(const float *dy, float *dx, const float *gamma,
                               const float *invstd, int64_t n, int64_t c, int64_t hw);

#ifdef __cplusplus
}
#endif

#endif
