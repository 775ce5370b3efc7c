/*
 * linear.c - fully connected layers and row-major GEMM on the GPU (cuBLAS).
 *
 * cuBLAS is column-major; a row-major matrix M (r x c, row stride ld) is the
 * column-major matrix M^T (c x r, leading dimension ld). So the row-major
 * product C = op(A) op(B) is computed as the column-major C^T = op(B)^T op(A)^T,
 * i.e. cublasSgemm with the operands swapped. TF32 follows sg_cuda_set_tf32
 * (the handle's math mode). Bias sums are deterministic reductions (reduce.cu).
 */
#include "cuda_impl.h"

/* Row-major C = op(A) op(B) + beta C, cuBLAS's operands swapped. */
static int gemm_rm(int ta, int tb, int m, int n, int k, const float *a, int lda, const float *b,
                   int ldb, float beta, float *c, int ldc)
{
    const float one = 1.0f;
    sg_cuda_count_launch();
    SG_CUBLAS(cublasSgemm(sg_cuda_cublas(), tb ? CUBLAS_OP_T : CUBLAS_OP_N,
                          ta ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &one, b, ldb, a, lda, &beta, c,
                          ldc));
    return 0;
}

int sg_cuda_gemm(int ta, int tb, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                 const float *b, int64_t ldb, float *c, int64_t ldc)
{
    if (sg_cuda_init() != 0)
        return -1;
    if (m > INT32_MAX || n > INT32_MAX || k > INT32_MAX || lda > INT32_MAX || ldb > INT32_MAX ||
        ldc > INT32_MAX)
        return sg_seterr("matmul: sizes %lldx%lld times %lldx%lld exceed cuBLAS's int range "
                         "(cuda)", (long long)m, (long long)k, (long long)k, (long long)n);
    if (m == 0 || n == 0)
        return 0;
    return gemm_rm(ta, tb, (int)m, (int)n, (int)k, a, (int)lda, b, (int)ldb, 0.0f, c, (int)ldc);
}

int sg_cuda_linear_forward(const float *x, float *y, const float *w, const float *b,
                           int64_t n, int64_t in, int64_t out)
{
    if (sg_cuda_init() != 0)
        return -1;
    /* y (n x out) = x (n x in) w^T, w is out x in */
    if (gemm_rm(0, 1, (int)n, (int)out, (int)in, x, (int)in, w, (int)in, 0.0f, y, (int)out) != 0)
        return -1;
    if (b)
        return sg_cuda_k_bias_add(y, b, n, out, 1);
    return 0;
}

int sg_cuda_linear_backward_data(const float *dy, float *dx, const float *w,
                                 int64_t n, int64_t in, int64_t out)
{
    if (sg_cuda_init() != 0)
        return -1;
    /* dx (n x in) = dy (n x out) w (out x in) */
    return gemm_rm(0, 0, (int)n, (int)in, (int)out, dy, (int)out, w, (int)in, 0.0f, dx, (int)in);
}

int sg_cuda_linear_backward_params(const float *x, const float *dy, float *dw, float *db,
                                   int64_t n, int64_t in, int64_t out)
{
    if (sg_cuda_init() != 0)
        return -1;
    /* dw (out x in) += dy^T (out x n) x (n x in) */
    if (dw && gemm_rm(1, 0, (int)out, (int)in, (int)n, dy, (int)out, x, (int)in, 1.0f, dw,
                      (int)in) != 0)
        return -1;
    if (db)
        return sg_cuda_k_bias_grad(dy, db, n, out, 1);
    return 0;
}
