/*
 * elementwise.c - ReLU, dropout, fused cross-entropy, zero padding and the
 * flat-vector updates of an SA move, on the CPU.
 *
 * The vector updates are the hot loop of the search (trial = w - eta*g over
 * the whole flat parameter buffer): one OpenMP-parallel, vectorizable pass.
 * Cross-entropy works row by row in double (max-shifted log-sum-exp) and
 * reduces the per-row losses in a fixed order, so the loss does not depend
 * on the thread count.
 */
#include <math.h>
#include <string.h>

#include "nn.h"  /* first: brings <stddef.h>, which error.h needs */
#include "error.h"

int sg_cpu_relu_forward(const float *x, float *y, int64_t n)
{
#pragma omp parallel for simd schedule(static) if (parallel : n > SG_PAR_MIN)
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
    return 0;
}

int sg_cpu_relu_backward_data(const float *y, const float *dy, float *dx, int64_t n)
{
#pragma omp parallel for simd schedule(static) if (parallel : n > SG_PAR_MIN)
    for (int64_t i = 0; i < n; i++)
    {
        const float g = dy[i];  /* read whatever the sign: a compare and a blend */
        dx[i] = y[i] > 0.0f ? g : 0.0f;
    }
    return 0;
}

int sg_cpu_dropout_mask(sg_rng *r, float *mask, int64_t n, double p)
{
    if (!(p >= 0.0 && p < 1.0))
        return sg_seterr("dropout_mask: probability %g not in [0, 1) (cpu)", p);
    if (n < 0)
        return sg_seterr("dropout_mask: negative size %lld (cpu)", (long long)n);
    const float keep = (float)(1.0 / (1.0 - p));
    if (p == 0.0) {
        for (int64_t i = 0; i < n; i++)
            mask[i] = 1.0f;
        return 0;
    }
    /* chunks drawn in parallel, each by a copy of r moved to its first word:
     * the values of one sequential pass (and the GPU's, core/rng_draw.h) */
    const float fp = (float)p;
    const int64_t chunk = 4096, nchunks = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) if (n > SG_PAR_MIN)
    for (int64_t c = 0; c < nchunks; c++) {
        sg_rng g = *r;
        sg_rng_skip(&g, (uint64_t)(c * chunk));
        const int64_t end = c * chunk + chunk < n ? c * chunk + chunk : n;
        for (int64_t i = c * chunk; i < end; i++)
            mask[i] = sg_rng_uniformf(&g) < fp ? 0.0f : keep;
    }
    sg_rng_skip(r, (uint64_t)n);
    return 0;
}

int sg_cpu_dropout_forward(const float *x, float *y, const float *mask, int64_t n)
{
#pragma omp parallel for simd schedule(static) if (parallel : n > SG_PAR_MIN)
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] * mask[i];
    return 0;
}

int sg_cpu_dropout_backward_data(const float *dy, float *dx, const float *mask, int64_t n)
{
#pragma omp parallel for simd schedule(static) if (parallel : n > SG_PAR_MIN)
    for (int64_t i = 0; i < n; i++)
        dx[i] = dy[i] * mask[i];
    return 0;
}

int sg_cpu_cross_entropy(const float *logits, const int32_t *labels, float *dlogits,
                         int64_t n, int64_t c, double *loss, int64_t *correct)
{
    if (n <= 0 || c <= 0)
        return sg_seterr("cross_entropy: invalid sizes: logits %lldx%lld (cpu)",
                         (long long)n, (long long)c);
    for (int64_t i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= c)
            return sg_seterr("cross_entropy: label %d at row %lld out of range [0, %lld) "
                             "for logits %lldx%lld (cpu)", (int)labels[i], (long long)(i + 1),
                             (long long)c, (long long)n, (long long)c);
    /* Per-row results reduced in order below (thread-count independent). */
    double total = 0.0;
    int64_t hits = 0;
    const double invn = 1.0 / (double)n;
#pragma omp parallel for schedule(static) reduction(+ : hits) ordered if (n * c > SG_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        const float *z = logits + i * c;
        int64_t am = 0;
        float mx = z[0];
        for (int64_t j = 1; j < c; j++)
            if (z[j] > mx) {
                mx = z[j];
                am = j;
            }
        double se = 0.0;
        for (int64_t j = 0; j < c; j++)
            se += exp((double)z[j] - (double)mx);
        const double lse = (double)mx + log(se);
        const double li = lse - (double)z[labels[i]];
        if (am == labels[i])
            hits++;
        if (dlogits) {
            float *d = dlogits + i * c;
            for (int64_t j = 0; j < c; j++)
                d[j] = (float)((exp((double)z[j] - lse) - (j == labels[i] ? 1.0 : 0.0)) * invn);
        }
#pragma omp ordered
        total += li;
    }
    *loss = total * invn;
    if (correct)
        *correct = hits;
    return 0;
}

void sg_cpu_vec_axpy(const float *a, const float *x, float *out, int64_t n, float alpha)
{
#pragma omp parallel for simd schedule(static) if (parallel : n > SG_PAR_MIN)
    for (int64_t i = 0; i < n; i++)
        out[i] = a[i] + alpha * x[i];
}

void sg_cpu_vec_axpbypz(const float *a, const float *x, const float *y, float *out,
                        int64_t n, float alpha, float beta)
{
#pragma omp parallel for simd schedule(static) if (parallel : n > SG_PAR_MIN)
    for (int64_t i = 0; i < n; i++)
        out[i] = a[i] + alpha * x[i] + beta * y[i];
}

void sg_cpu_vec_scale_add(const float *a, const float *x, float *out, int64_t n, float s,
                          float alpha)
{
#pragma omp parallel for simd schedule(static) if (parallel : n > SG_PAR_MIN)
    for (int64_t i = 0; i < n; i++)
        out[i] = s * a[i] + alpha * x[i];
}

int sg_cpu_pad2d(const float *x, float *y, int64_t planes, int64_t h, int64_t w, int64_t p)
{
    const int64_t wo = w + 2 * p, plane = (h + 2 * p) * wo;
#pragma omp parallel for schedule(static) if (planes * plane > SG_PAR_MIN)
    for (int64_t q = 0; q < planes; q++) {
        float *yq = y + q * plane;
        const float *xq = x + q * h * w;
        memset(yq, 0, (size_t)(p * wo + p) * sizeof *yq);
        for (int64_t i = 0; i < h; i++) {
            float *row = yq + (p + i) * wo + p;
            memcpy(row, xq + i * w, (size_t)w * sizeof *row);
            /* the right border of this row and the left border of the next */
            memset(row + w, 0, (size_t)(2 * p) * sizeof *row);
        }
        memset(yq + (p + h) * wo + p, 0, (size_t)(p * wo - p) * sizeof *yq);
    }
    return 0;
}

int sg_cpu_crop2d(const float *dy, float *dx, int64_t planes, int64_t h, int64_t w, int64_t p)
{
    const int64_t wo = w + 2 * p, plane = (h + 2 * p) * wo;
#pragma omp parallel for schedule(static) if (planes * h * w > SG_PAR_MIN)
    for (int64_t q = 0; q < planes; q++)
        for (int64_t i = 0; i < h; i++)
            memcpy(dx + (q * h + i) * w, dy + q * plane + (p + i) * wo + p,
                   (size_t)w * sizeof *dx);
    return 0;
}
