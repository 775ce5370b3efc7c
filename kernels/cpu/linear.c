/*
 * linear.c - fully connected layer on the CPU (OpenBLAS sgemm).
 *
 * y (N x OUT) = x (N x IN) w^T + b, with w stored OUT x IN as in PyTorch.
 * The bias sums of the backward pass accumulate in double.
 */
#include <cblas.h>

#include "nn.h"  /* first: brings <stddef.h>, which error.h needs */
#include "error.h"

int sg_cpu_linear_forward(const float *x, float *y, const float *w, const float *b,
                          int64_t n, int64_t in, int64_t out)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)out, (int)in, 1.0f, x,
                (int)in, w, (int)in, 0.0f, y, (int)out);
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

int sg_cpu_linear_backward_data(const float *dy, float *dx, const float *w,
                                int64_t n, int64_t in, int64_t out)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)in, (int)out, 1.0f, dy,
                (int)out, w, (int)in, 0.0f, dx, (int)in);
    return 0;
}

int sg_cpu_linear_backward_params(const float *x, const float *dy, float *dw, float *db,
                                  int64_t n, int64_t in, int64_t out)
{
    if (dw)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)out, (int)in, (int)n, 1.0f,
                    dy, (int)out, x, (int)in, 1.0f, dw, (int)in);
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
