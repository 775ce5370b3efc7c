/*
 * linear.c - fully connected layer on the CPU: sgemm from OpenBLAS or from
 * oneDNN (dnnl_sgemm), chosen per shape and pass by measurement on the
 * machine (conv_choice.c: the "linear" lines of the same table, cache and
 * run record as the convolutions').
 *
 * y (N x OUT) = x (N x IN) w^T + b, with w stored OUT x IN as in PyTorch.
 * The bias sums of the backward pass accumulate in double. Both sgemms
 * repeat bit for bit for a given thread count; they differ from each other
 * in rounding. oneDNN's runs with the signals blocked (dnnl_guard.h).
 */
#include <cblas.h>
#ifdef SG_HAVE_DNNL
#include <dnnl.h>
#endif

#include "nn.h"  /* first: brings <stddef.h>, which error.h needs */
#include "conv_choice.h"
#include "dnnl_guard.h"
#include "error.h"

/* C (M x N, row-major) = alpha op(A) op(B) + beta C, on oneDNN when `dnnl`. */
static int gemm(int dnnl, const char *op, int ta, int tb, int64_t m, int64_t n, int64_t k,
                const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                int64_t ldc)
{
#ifdef SG_HAVE_DNNL
    if (dnnl) {
        sigset_t saved;
        sg_dnnl_guard_enter(&saved);
        const dnnl_status_t st = dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, 1.0f, a, lda,
                                            b, ldb, beta, c, ldc);
        sg_dnnl_guard_leave(&saved);
        if (st != dnnl_success)
            return sg_seterr("%s: oneDNN dnnl_sgemm failed (%d) for %lldx%lld times %lldx%lld (cpu)",
                             op, (int)st, (long long)m, (long long)k, (long long)k, (long long)n);
        return 0;
    }
#else
    (void)op;
    if (dnnl)
        return sg_seterr("%s: oneDNN sgemm asked for in a build without oneDNN (cpu)", op);
#endif
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (int)m, (int)n, (int)k, 1.0f, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
    return 0;
}

int sg_linear_forward_with(int bits, const float *x, float *y, const float *w, const float *b,
                           int64_t n, int64_t in, int64_t out)
{
    if (gemm(bits & SG_CONV_PASS_FWD, "linear_forward", 0, 1, n, out, in, x, in, w, in, 0.0f, y,
             out))
        return -1;
    if (b) {
#pragma omp parallel for schedule(static) if (n * out > SG_PAR_MIN)
        for (int64_t i = 0; i < n; i++) {
            float *row = y + i * out;
            for (int64_t o = 0; o < out; o++)
                row[o] += b[o];
        }
    }
    return 0;
}

int sg_linear_backward_data_with(int bits, const float *dy, float *dx, const float *w,
                                 int64_t n, int64_t in, int64_t out)
{
    return gemm(bits & SG_CONV_PASS_BWD_DATA, "linear_backward_data", 0, 0, n, in, out, dy, out,
                w, in, 0.0f, dx, in);
}

int sg_linear_backward_params_with(int bits, const float *x, const float *dy, float *dw,
                                   float *db, int64_t n, int64_t in, int64_t out)
{
    if (dw && gemm(bits & SG_CONV_PASS_BWD_WEIGHTS, "linear_backward_params", 1, 0, out, in, n,
                   dy, out, x, in, 1.0f, dw, in))
        return -1;
    if (db) {
#pragma omp parallel for schedule(static) if (n * out > SG_PAR_MIN)
        for (int64_t o = 0; o < out; o++) {
            double s = 0.0;
            for (int64_t i = 0; i < n; i++)
                s += dy[i * out + o];
            db[o] += (float)s;
        }
    }
    return 0;
}

int sg_cpu_linear_forward(const float *x, float *y, const float *w, const float *b,
                          int64_t n, int64_t in, int64_t out)
{
    return sg_linear_forward_with(sg_cpu_linear_passes(n, in, out), x, y, w, b, n, in, out);
}

int sg_cpu_linear_backward_data(const float *dy, float *dx, const float *w,
                                int64_t n, int64_t in, int64_t out)
{
    return sg_linear_backward_data_with(sg_cpu_linear_passes(n, in, out), dy, dx, w, n, in, out);
}

int sg_cpu_linear_backward_params(const float *x, const float *dy, float *dw, float *db,
                                  int64_t n, int64_t in, int64_t out)
{
    return sg_linear_backward_params_with(sg_cpu_linear_passes(n, in, out), x, dy, dw, db, n, in,
                                          out);
}
