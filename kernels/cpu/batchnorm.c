/*
 * batchnorm.c - batch normalization (2d and 1d) on the CPU.
 *
 * x is viewed as N x C x HW (HW = 1 for BatchNorm1d); statistics are per
 * channel over M = N*HW values, accumulated in double with two passes
 * (mean, then centered squares) so large activations do not lose the
 * variance. Running statistics follow PyTorch exactly: momentum-weighted
 * average, biased variance for normalization, unbiased for running_var.
 * Parallel over channels (each thread owns whole channels, no reductions
 * across threads, so results do not depend on the thread count).
 */
#include <math.h>
#include <stdlib.h>

#include "nn.h"  /* first: brings <stddef.h>, which error.h needs */
#include "error.h"

static int check_sizes(const char *op, int64_t n, int64_t c, int64_t hw)
{
    if (n <= 0 || c <= 0 || hw <= 0)
        return sg_seterr("%s: invalid sizes N=%lld C=%lld HW=%lld (cpu)", op, (long long)n,
                         (long long)c, (long long)hw);
    return 0;
}

/* y = x * a + b on channel ch, with a and b made from the statistics as they
 * are saved (float): the last step of both forwards and of
 * sg_cpu_batchnorm_apply, so that an output recomputed from the saved
 * statistics is bit-identical to the forward's. */
static void apply_channel(const float *x, float *y, const float *gamma, const float *beta,
                          float mean, float invstd, int64_t n, int64_t c, int64_t hw,
                          int64_t ch)
{
    const double g = gamma ? gamma[ch] : 1.0;
    const float a = (float)((double)invstd * g);
    const float b = (float)((beta ? beta[ch] : 0.0) - (double)mean * (double)invstd * g);
    for (int64_t i = 0; i < n; i++) {
        const float *p = x + (i * c + ch) * hw;
        float *q = y + (i * c + ch) * hw;
        for (int64_t j = 0; j < hw; j++)
            q[j] = p[j] * a + b;
    }
}

/* The sum of channel ch of x (N, C, HW) and the sum of its squared
 * deviations from mean, in double, in memory order: the statistics of both
 * training forwards. */
static double chan_sum(const float *x, int64_t n, int64_t c, int64_t hw, int64_t ch)
{
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const float *p = x + (i * c + ch) * hw;
        for (int64_t j = 0; j < hw; j++)
            s += p[j];
    }
    return s;
}

static double chan_sqdev(const float *x, int64_t n, int64_t c, int64_t hw, int64_t ch,
                         double mean)
{
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const float *p = x + (i * c + ch) * hw;
        for (int64_t j = 0; j < hw; j++) {
            const double d = p[j] - mean;
            ss += d * d;
        }
    }
    return ss;
}

/* dx = k * (dy - mdy - (x - fm) * kx) on channel ch: the last step of both
 * backward-data passes. */
static void dx_channel(const float *x, const float *dy, float *dx, int64_t n, int64_t c,
                       int64_t hw, int64_t ch, float k, float mdy, float kx, float fm)
{
    for (int64_t i = 0; i < n; i++) {
        const float *p = x + (i * c + ch) * hw;
        const float *d = dy + (i * c + ch) * hw;
        float *q = dx + (i * c + ch) * hw;
        for (int64_t j = 0; j < hw; j++)
            q[j] = k * (d[j] - mdy - (p[j] - fm) * kx);
    }
}

int sg_cpu_batchnorm_forward_train(const float *x, float *y, const float *gamma,
                                   const float *beta, float *save_mean, float *save_invstd,
                                   float *running_mean, float *running_var,
                                   int64_t n, int64_t c, int64_t hw, double eps,
                                   double momentum, int update_running)
{
    if (check_sizes("batchnorm_forward_train", n, c, hw))
        return -1;
    const int64_t m = n * hw;
    if (update_running && m < 2)
        return sg_seterr("batchnorm_forward_train: need more than 1 value per channel to "
                         "update running statistics, got input N=%lld C=%lld HW=%lld (cpu)",
                         (long long)n, (long long)c, (long long)hw);
#pragma omp parallel for schedule(static) if (n * c * hw > SG_PAR_MIN)
    for (int64_t ch = 0; ch < c; ch++) {
        const double mean = chan_sum(x, n, c, hw, ch) / (double)m;
        const double ss = chan_sqdev(x, n, c, hw, ch, mean);
        const double var = ss / (double)m;
        const double invstd = 1.0 / sqrt(var + eps);
        save_mean[ch] = (float)mean;
        save_invstd[ch] = (float)invstd;
        if (update_running) {
            running_mean[ch] = (float)((1.0 - momentum) * running_mean[ch] + momentum * mean);
            running_var[ch] = (float)((1.0 - momentum) * running_var[ch] +
                                      momentum * ss / (double)(m - 1));
        }
        apply_channel(x, y, gamma, beta, save_mean[ch], save_invstd[ch], n, c, hw, ch);
    }
    return 0;
}

int sg_cpu_batchnorm_forward_eval(const float *x, float *y, const float *gamma,
                                  const float *beta, float *save_mean, float *save_invstd,
                                  const float *running_mean, const float *running_var,
                                  int64_t n, int64_t c, int64_t hw, double eps)
{
    if (check_sizes("batchnorm_forward_eval", n, c, hw))
        return -1;
#pragma omp parallel for schedule(static) if (n * c * hw > SG_PAR_MIN)
    for (int64_t ch = 0; ch < c; ch++) {
        const double mean = running_mean[ch];
        const double invstd = 1.0 / sqrt((double)running_var[ch] + eps);
        save_mean[ch] = (float)mean;
        save_invstd[ch] = (float)invstd;
        apply_channel(x, y, gamma, beta, save_mean[ch], save_invstd[ch], n, c, hw, ch);
    }
    return 0;
}

int sg_cpu_batchnorm_apply(const float *x, float *y, const float *gamma, const float *beta,
                           const float *save_mean, const float *save_invstd, int64_t n,
                           int64_t c, int64_t hw)
{
    if (check_sizes("batchnorm_apply", n, c, hw))
        return -1;
#pragma omp parallel for schedule(static) if (n * c * hw > SG_PAR_MIN)
    for (int64_t ch = 0; ch < c; ch++)
        apply_channel(x, y, gamma, beta, save_mean[ch], save_invstd[ch], n, c, hw, ch);
    return 0;
}

/* Per-channel sums of dy and dy*xhat. */
static void dy_sums(const float *x, const float *dy, int64_t n, int64_t c, int64_t hw,
                    int64_t ch, double mean, double invstd, double *sdy, double *sdyx)
{
    double a = 0.0, b = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const float *p = x + (i * c + ch) * hw;
        const float *d = dy + (i * c + ch) * hw;
        for (int64_t j = 0; j < hw; j++) {
            a += d[j];
            b += d[j] * (p[j] - mean);
        }
    }
    *sdy = a;
    *sdyx = b * invstd;
}

int sg_cpu_batchnorm_backward_data(const float *x, const float *dy, float *dx,
                                   const float *gamma, const float *save_mean,
                                   const float *save_invstd, int64_t n, int64_t c,
                                   int64_t hw, int training)
{
    if (check_sizes("batchnorm_backward_data", n, c, hw))
        return -1;
    const int64_t m = n * hw;
#pragma omp parallel for schedule(static) if (n * c * hw > SG_PAR_MIN)
    for (int64_t ch = 0; ch < c; ch++) {
        const double mean = save_mean[ch], invstd = save_invstd[ch];
        const double g = gamma ? gamma[ch] : 1.0;
        if (!training) {
            const float a = (float)(g * invstd);
            for (int64_t i = 0; i < n; i++) {
                const float *d = dy + (i * c + ch) * hw;
                float *q = dx + (i * c + ch) * hw;
                for (int64_t j = 0; j < hw; j++)
                    q[j] = d[j] * a;
            }
            continue;
        }
        double sdy, sdyx;
        dy_sums(x, dy, n, c, hw, ch, mean, invstd, &sdy, &sdyx);
        /* dx = g*invstd * (dy - mean(dy) - xhat*mean(dy*xhat)) */
        const float k = (float)(g * invstd);
        const float mdy = (float)(sdy / (double)m);
        const float kx = (float)(sdyx / (double)m * invstd);  /* applied to (x - mean) */
        const float fm = (float)mean;
        dx_channel(x, dy, dx, n, c, hw, ch, k, mdy, kx, fm);
    }
    return 0;
}

int sg_cpu_batchnorm_backward_params(const float *x, const float *dy, float *dgamma,
                                     float *dbeta, const float *save_mean,
                                     const float *save_invstd, int64_t n, int64_t c,
                                     int64_t hw)
{
    if (check_sizes("batchnorm_backward_params", n, c, hw))
        return -1;
    if (!dgamma && !dbeta)
        return 0;
#pragma omp parallel for schedule(static) if (n * c * hw > SG_PAR_MIN)
    for (int64_t ch = 0; ch < c; ch++) {
        double sdy, sdyx;
        dy_sums(x, dy, n, c, hw, ch, save_mean[ch], save_invstd[ch], &sdy, &sdyx);
        if (dgamma)
            dgamma[ch] += (float)sdyx;
        if (dbeta)
            dbeta[ch] += (float)sdy;
    }
    return 0;
}

/* ---- synchronized statistics (data-parallel sync_bn) ------------------------------ */

static int allsum(const sg_allsum *sum, double *v, int64_t n, const char *op)
{
    if (!sum || !sum->fn)
        return 0;
    if (sum->fn(v, n, sum->ctx) != 0)
        return sg_adderr("%s: summing the statistics over the ranks", op);
    return 0;
}

/* A rank's shard may be empty (n = 0): it still takes part in the sums. */
static int check_sync_sizes(const char *op, int64_t n, int64_t c, int64_t hw)
{
    if (n < 0 || c <= 0 || hw <= 0)
        return sg_seterr("%s: invalid sizes N=%lld C=%lld HW=%lld (cpu)", op, (long long)n,
                         (long long)c, (long long)hw);
    return 0;
}

int sg_cpu_batchnorm_forward_train_sync(const float *x, float *y, const float *gamma,
                                        const float *beta, float *save_mean, float *save_invstd,
                                        float *running_mean, float *running_var,
                                        int64_t n, int64_t c, int64_t hw, double eps,
                                        double momentum, int update_running,
                                        const sg_allsum *sum)
{
    const char *op = "batchnorm_forward_train (sync_bn)";
    if (check_sync_sizes(op, n, c, hw))
        return -1;
    if (update_running && (!running_mean || !running_var))
        return sg_seterr("%s: update_running without running_mean/running_var buffers "
                         "(C=%lld) (cpu)", op, (long long)c);
    double *v = sg_malloc((size_t)(2 * c + 1) * sizeof *v, "batchnorm sync_bn sums");
    if (!v)
        return -1;
    double *s = v, *ss = v + c + 1;
    /* pass 1: per-channel sums and the count, over every rank */
#pragma omp parallel for schedule(static) if (n * c * hw > SG_PAR_MIN)
    for (int64_t ch = 0; ch < c; ch++)
        s[ch] = chan_sum(x, n, c, hw, ch);
    s[c] = (double)(n * hw);
    if (allsum(sum, s, c + 1, op)) {
        free(v);
        return -1;
    }
    const double m = s[c];
    if (m < 1 || (update_running && m < 2)) {
        free(v);
        return sg_seterr("%s: need more than 1 value per channel over all ranks, got %.0f "
                         "(C=%lld) (cpu)", op, m, (long long)c);
    }
    /* pass 2: centered sums of squares around the global mean */
#pragma omp parallel for schedule(static) if (n * c * hw > SG_PAR_MIN)
    for (int64_t ch = 0; ch < c; ch++)
        ss[ch] = chan_sqdev(x, n, c, hw, ch, s[ch] / m);
    if (allsum(sum, ss, c, op)) {
        free(v);
        return -1;
    }
#pragma omp parallel for schedule(static) if (n * c * hw > SG_PAR_MIN)
    for (int64_t ch = 0; ch < c; ch++) {
        const double mean = s[ch] / m;
        const double invstd = 1.0 / sqrt(ss[ch] / m + eps);
        save_mean[ch] = (float)mean;
        save_invstd[ch] = (float)invstd;
        if (update_running) {
            running_mean[ch] = (float)((1.0 - momentum) * running_mean[ch] + momentum * mean);
            running_var[ch] = (float)((1.0 - momentum) * running_var[ch] +
                                      momentum * ss[ch] / (m - 1));
        }
        apply_channel(x, y, gamma, beta, save_mean[ch], save_invstd[ch], n, c, hw, ch);
    }
    free(v);
    return 0;
}

int sg_cpu_batchnorm_backward_data_sync(const float *x, const float *dy, float *dx,
                                        const float *gamma, const float *save_mean,
                                        const float *save_invstd, int64_t n, int64_t c,
                                        int64_t hw, const sg_allsum *sum)
{
    const char *op = "batchnorm_backward_data (sync_bn)";
    if (check_sync_sizes(op, n, c, hw))
        return -1;
    double *v = sg_malloc((size_t)(2 * c + 1) * sizeof *v, "batchnorm sync_bn sums");
    if (!v)
        return -1;
#pragma omp parallel for schedule(static) if (n * c * hw > SG_PAR_MIN)
    for (int64_t ch = 0; ch < c; ch++)
        dy_sums(x, dy, n, c, hw, ch, save_mean[ch], save_invstd[ch], &v[2 * ch], &v[2 * ch + 1]);
    v[2 * c] = (double)(n * hw);
    if (allsum(sum, v, 2 * c + 1, op)) {
        free(v);
        return -1;
    }
    const double m = v[2 * c];
#pragma omp parallel for schedule(static) if (n * c * hw > SG_PAR_MIN)
    for (int64_t ch = 0; ch < c; ch++) {
        const double invstd = save_invstd[ch];
        const double g = gamma ? gamma[ch] : 1.0;
        /* dx = g*invstd * (dy - mean(dy) - xhat*mean(dy*xhat)), means over every rank */
        const float k = (float)(g * invstd);
        const float mdy = (float)(v[2 * ch] / m);
        const float kx = (float)(v[2 * ch + 1] / m * invstd);
        const float fm = save_mean[ch];
        dx_channel(x, dy, dx, n, c, hw, ch, k, mdy, kx, fm);
    }
    free(v);
    return 0;
}

int sg_cpu_batchnorm_backward(const float *x, const float *dy, float *dx, const float *gamma,
                              float *dgamma, float *dbeta, const float *save_mean,
                              const float *save_invstd, int64_t n, int64_t c, int64_t hw,
                              int training)
{
    if (sg_cpu_batchnorm_backward_params(x, dy, dgamma, dbeta, save_mean, save_invstd, n, c,
                                         hw) != 0)
        return -1;
    if (!dx)
        return 0;
    return sg_cpu_batchnorm_backward_data(x, dy, dx, gamma, save_mean, save_invstd, n, c, hw,
                                          training);
}
