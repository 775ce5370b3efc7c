/*
 * batchnorm.c - batch normalization on the GPU: cuDNN (spatial mode) for the
 * forward passes and the training backward. The modules' backward
 * (sg_cuda_batchnorm_backward) is one cuDNN call in training mode: dx, and
 * the parameter gradients accumulated by cuDNN itself (betaParamDiff = 1:
 * dgamma += ..., dbeta += ..., as the API requires). Custom kernels serve the
 * evaluation-mode backward (dx = dy*gamma*invstd) and the parameter gradients
 * asked for alone (backward_params, or a backward without dx).
 *
 * x is N x C x HW (BatchNorm1d: HW = 1), described to cuDNN as N x C x HW x 1.
 * Running statistics follow PyTorch (as cuDNN does): momentum-weighted,
 * unbiased variance in running_var. A training forward with update_running = 0
 * (the SA trial forward) passes NULL running buffers to cuDNN, which then
 * does not read or write them. Without affine parameters (gamma/beta NULL),
 * device arrays of ones and zeros stand in.
 */
#include <pthread.h>
#include <string.h>

#include "cuda_impl.h"

/* Scratch for a pair of per-channel gradients nobody reads: two halves,
 * each starting 256-byte aligned (cuDNN's pointers must be 16-byte
 * aligned). *second: the second half. */
static float *scratch_pair(int64_t c, float **second)
{
    const int64_t half = (c + 63) / 64 * 64;
    float *t = sg_cuda_scratch(SG_SCRATCH_BN, (size_t)half * 2 * sizeof(float));
    *second = t ? t + half : NULL;
    return t;
}

/* Descriptors are reused across calls (set per call: cheap host work). */
static cudnnTensorDescriptor_t g_xd, g_pd;

static int descs(int64_t n, int64_t c, int64_t hw, const char *op)
{
    if (n <= 0 || c <= 0 || hw <= 0)
        return sg_seterr("%s: invalid sizes N=%lld C=%lld HW=%lld (cuda)", op, (long long)n,
                         (long long)c, (long long)hw);
    if (n > INT32_MAX || c > INT32_MAX || hw > INT32_MAX)
        return sg_seterr("%s: sizes N=%lld C=%lld HW=%lld exceed cuDNN's int range (cuda)", op,
                         (long long)n, (long long)c, (long long)hw);
    if (sg_cuda_init() != 0)
        return -1;
    if (!g_xd) {
        SG_CUDNN(cudnnCreateTensorDescriptor(&g_xd));
        cudnnStatus_t s = cudnnCreateTensorDescriptor(&g_pd);
        if (s != CUDNN_STATUS_SUCCESS) {
            cudnnDestroyTensorDescriptor(g_xd);
            g_xd = NULL;
            return sg_cuda_fail_dnn("cudnnCreateTensorDescriptor(&g_pd)", s, __FILE__, __LINE__);
        }
    }
    SG_CUDNN(cudnnSetTensor4dDescriptor(g_xd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, (int)n, (int)c,
                                        (int)hw, 1));
    SG_CUDNN(cudnnSetTensor4dDescriptor(g_pd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, (int)c, 1, 1));
    return 0;
}

static const float k_one = 1.0f, k_zero = 0.0f;

/* A forward's set-up: the descriptors, more than one value per channel when
 * it updates the running statistics, its eps (cuDNN's minimum) and its scale
 * and shift (gamma and beta, or ones and zeros for a BatchNorm without affine
 * parameters); counts the cuDNN call that follows. */
static int forward_setup(const char *op, int64_t n, int64_t c, int64_t hw, const float *gamma,
                         const float *beta, double eps, int update_running, const float **g,
                         const float **b)
{
    if (descs(n, c, hw, op) != 0)
        return -1;
    if (update_running && n * hw < 2)
        return sg_seterr("%s: need more than 1 value per channel to update running "
                         "statistics, got input N=%lld C=%lld HW=%lld (cuda)", op,
                         (long long)n, (long long)c, (long long)hw);
    if (eps < CUDNN_BN_MIN_EPSILON)
        return sg_seterr("%s: eps %g below cuDNN's minimum %g (cuda)", op, eps,
                         (double)CUDNN_BN_MIN_EPSILON);
    *g = gamma ? gamma : sg_cuda_ones(c);
    *b = beta ? beta : sg_cuda_zeros(c);
    if (!*g || !*b)
        return -1;
    sg_cuda_count_launch();
    return 0;
}

int sg_cuda_batchnorm_forward_train(const float *x, float *y, const float *gamma,
                                    const float *beta, float *save_mean, float *save_invstd,
                                    float *running_mean, float *running_var,
                                    int64_t n, int64_t c, int64_t hw, double eps,
                                    double momentum, int update_running)
{
    const float *g = NULL, *b = NULL;
    if (forward_setup("batchnorm_forward_train", n, c, hw, gamma, beta, eps, update_running, &g,
                      &b) != 0)
        return -1;
    SG_CUDNN(cudnnBatchNormalizationForwardTraining(
        sg_cuda_cudnn(), CUDNN_BATCHNORM_SPATIAL, &k_one, &k_zero, g_xd, x, g_xd, y, g_pd, g, b,
        update_running ? momentum : 0.0, update_running ? running_mean : NULL,
        update_running ? running_var : NULL, eps, save_mean, save_invstd));
    return 0;
}

int sg_cuda_batchnorm_forward_eval(const float *x, float *y, const float *gamma,
                                   const float *beta, float *save_mean, float *save_invstd,
                                   const float *running_mean, const float *running_var,
                                   int64_t n, int64_t c, int64_t hw, double eps)
{
    const float *g = NULL, *b = NULL;
    if (forward_setup("batchnorm_forward_eval", n, c, hw, gamma, beta, eps, 0, &g, &b) != 0)
        return -1;
    SG_CUDNN(cudnnBatchNormalizationForwardInference(
        sg_cuda_cudnn(), CUDNN_BATCHNORM_SPATIAL, &k_one, &k_zero, g_xd, x, g_xd, y, g_pd, g, b,
        running_mean, running_var, eps));
    return sg_cuda_k_bn_eval_stats(running_mean, running_var, save_mean, save_invstd, c, eps);
}

int sg_cuda_batchnorm_backward_data(const float *x, const float *dy, float *dx,
                                    const float *gamma, const float *save_mean,
                                    const float *save_invstd, int64_t n, int64_t c,
                                    int64_t hw, int training)
{
    if (descs(n, c, hw, "batchnorm_backward_data") != 0)
        return -1;
    if (!training)
        return sg_cuda_k_bn_backward_eval(dy, dx, gamma, save_invstd, n, c, hw);
    const float *g = gamma ? gamma : sg_cuda_ones(c);
    float *tmp2 = NULL, *tmp = scratch_pair(c, &tmp2);
    if (!g || !tmp)
        return -1;
    /* cuDNN computes dgamma/dbeta as well: into scratch, discarded (the
     * accumulating parameter gradients are backward_params' job). The eps
     * argument is unused when saved statistics are given; pass a legal one. */
    sg_cuda_count_launch();
    SG_CUDNN(cudnnBatchNormalizationBackward(
        sg_cuda_cudnn(), CUDNN_BATCHNORM_SPATIAL, &k_one, &k_zero, &k_one, &k_zero, g_xd, x,
        g_xd, dy, g_xd, dx, g_pd, g, tmp, tmp2, 1e-5, save_mean, save_invstd));
    return 0;
}

int sg_cuda_batchnorm_backward(const float *x, const float *dy, float *dx, const float *gamma,
                               float *dgamma, float *dbeta, const float *save_mean,
                               const float *save_invstd, int64_t n, int64_t c, int64_t hw,
                               int training)
{
    if (!training || !dx) {
        if (sg_cuda_batchnorm_backward_params(x, dy, dgamma, dbeta, save_mean, save_invstd, n,
                                              c, hw) != 0)
            return -1;
        return dx ? sg_cuda_batchnorm_backward_data(x, dy, dx, gamma, save_mean, save_invstd, n,
                                                    c, hw, training)
                  : 0;
    }
    if (descs(n, c, hw, "batchnorm_backward") != 0)
        return -1;
    const float *g = gamma ? gamma : sg_cuda_ones(c);
    /* a gradient not asked for goes to scratch (accumulated there, unread) */
    float *tmp = NULL, *tmp2 = NULL;
    if (!dgamma || !dbeta) {
        tmp = scratch_pair(c, &tmp2);
        if (!tmp)
            return -1;
    }
    if (!g)
        return -1;
    /* alpha/beta for dx: 1, 0 (overwrite); for the parameter gradients 1, 1
     * (accumulate). The eps argument is unused with saved statistics. */
    sg_cuda_count_launch();
    SG_CUDNN(cudnnBatchNormalizationBackward(
        sg_cuda_cudnn(), CUDNN_BATCHNORM_SPATIAL, &k_one, &k_zero, &k_one, &k_one, g_xd, x,
        g_xd, dy, g_xd, dx, g_pd, g, dgamma ? dgamma : tmp, dbeta ? dbeta : tmp2, 1e-5,
        save_mean, save_invstd));
    return 0;
}

int sg_cuda_batchnorm_backward_params(const float *x, const float *dy, float *dgamma,
                                      float *dbeta, const float *save_mean,
                                      const float *save_invstd, int64_t n, int64_t c,
                                      int64_t hw)
{
    if (n <= 0 || c <= 0 || hw <= 0)
        return sg_seterr("batchnorm_backward_params: invalid sizes N=%lld C=%lld HW=%lld (cuda)",
                         (long long)n, (long long)c, (long long)hw);
    if (sg_cuda_init() != 0)
        return -1;
    return sg_cuda_k_bn_param_grad(x, dy, dgamma, dbeta, save_mean, save_invstd, n, c, hw);
}
