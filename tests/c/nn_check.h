/*
 * nn_check.h - helpers shared by the kernel and op tests (tests/c/test_nn_*.c,
 * test_cuda_*.c, op_table.h): a finite-difference gradient checker, seeded
 * fills and the element-wise comparisons.
 *
 * The checker perturbs every element of a float buffer by +-eps (central
 * difference; the denominator is the float-rounded step actually taken),
 * evaluates a scalar loss in double, and compares with the analytic
 * gradient element by element:
 *     |num - ana| <= rtol * max(|num|, |ana|) + atol * max_k |num_k|
 * so a gradient written to a wrong index (or with a wrong sign or scale)
 * fails on that element. Header-only (static functions) so each test stays
 * one executable.
 */
#ifndef SG_TEST_NN_CHECK_H
#define SG_TEST_NN_CHECK_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"

#include "check.h"

typedef double (*nn_loss_fn)(void *ctx);

static inline float *tbuf(int64_t n) { return check_floats(n); }

static inline void fill_uniform(sg_rng *r, float *x, int64_t n, float lo, float hi)
{
    sg_rng_fill_uniform(r, x, n, lo, hi);
}

/* sum_i y[i] * p[i] in double: the scalar loss whose dL/dy is p. */
static inline double dot_d(const float *y, const float *p, int64_t n)
{
    double s = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += (double)y[i] * (double)p[i];
    return s;
}

/* Compare numerical and analytic gradients of `loss` w.r.t. x[0..n).
 * Returns the number of mismatching elements (also added to g_failures). */
static inline int check_grad_tol(const char *what, float *x, const float *ana, int64_t n,
                          nn_loss_fn loss, void *ctx, float eps, double rtol, double atol,
                          int quiet)
{
    double *num = malloc((size_t)n * sizeof(double));
    if (!num) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    double scale = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const float save = x[i];
        const float xp = save + eps, xm = save - eps;
        x[i] = xp;
        const double lp = loss(ctx);
        x[i] = xm;
        const double lm = loss(ctx);
        x[i] = save;
        num[i] = (lp - lm) / ((double)xp - (double)xm);
        if (fabs(num[i]) > scale)
            scale = fabs(num[i]);
    }
    int bad = 0;
    double worst = 0.0;
    int64_t wi = -1;
    for (int64_t i = 0; i < n; i++) {
        const double a = ana[i], b = num[i];
        const double err = fabs(a - b);
        const double lim = rtol * fmax(fabs(a), fabs(b)) + atol * scale;
        if (!(err <= lim)) {
            bad++;
            if (!(err <= worst)) {
                worst = err;
                wi = i;
            }
        }
    }
    if (bad && !quiet)
        fprintf(stderr, "FAIL gradcheck %s: %d of %lld elements differ; worst at %lld: "
                "analytic %.6g numeric %.6g (scale %.3g)\n", what, bad, (long long)n,
                (long long)wi, wi >= 0 ? ana[wi] : 0.0, wi >= 0 ? num[wi] : 0.0, scale);
    free(num);
    return bad;
}

static inline int check_grad(const char *what, float *x, const float *ana, int64_t n,
                      nn_loss_fn loss, void *ctx, float eps)
{
    int bad = check_grad_tol(what, x, ana, n, loss, ctx, eps, 1e-2, 1e-3, 0);
    if (bad)
        g_failures++;
    return bad;
}

/* max |a-b| <= tol * (1 + max |b|) */
static inline int close_rel(const float *a, const float *b, int64_t n, double tol, double *maxerr)
{
    double m = 0.0, e = 0.0;
    for (int64_t i = 0; i < n; i++) {
        if (fabs(b[i]) > m)
            m = fabs(b[i]);
        const double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= e))
            e = d;
    }
    if (maxerr)
        *maxerr = e / (1.0 + m);
    return e <= tol * (1.0 + m);
}

/* Compare got with the reference want:
 *     |got - want| <= rtol * (|want| + 0.1 * max_k |want_k|)
 * (the second term absorbs the rounding of long sums that cancel); a NaN or
 * an infinity must be matched by the same on the other side. A failure is
 * a CHECK naming the worst element, so a wrong index fails on that element;
 * a pass prints an "ok" line. Returns the worst relative error. */
static inline double cmp_rel(const char *what, const float *got, const float *want, int64_t n,
                             double rtol)
{
    double scale = 0.0;
    for (int64_t i = 0; i < n; i++)
        if (isfinite(want[i]))
            scale = fmax(scale, fabs((double)want[i]));
    scale = scale * 0.1 + 1e-30;
    double worst = 0.0;
    int64_t wi = -1;
    for (int64_t i = 0; i < n; i++) {
        if ((isnan(got[i]) && isnan(want[i])) || (isinf(want[i]) && got[i] == want[i]))
            continue;  /* the same NaN / infinity on both */
        double d = fabs((double)got[i] - (double)want[i]);
        double r = d / (fabs((double)want[i]) + scale);
        if (!(r <= worst)) {  /* NaN counts as worst */
            worst = r;
            wi = i;
            if (isnan(r))
                break;
        }
    }
    if (!(worst <= rtol))
        CHECK(0, "%s: element %lld of %lld: got %.9g want %.9g (relative error %.3g > %.3g)",
              what, (long long)wi, (long long)n, wi >= 0 ? got[wi] : 0.0,
              wi >= 0 ? want[wi] : 0.0, worst, rtol);
    else
        printf("  ok %-44s n=%-9lld worst relative error %.2e\n", what, (long long)n, worst);
    return worst;
}

/* Two int32 arrays must be equal. */
static inline void cmp_i32(const char *what, const int32_t *got, const int32_t *want, int64_t n)
{
    int64_t i = 0;
    while (i < n && got[i] == want[i])
        i++;
    if (i < n)
        CHECK(0, "%s: element %lld of %lld: got %d want %d", what, (long long)i, (long long)n,
              (int)got[i], (int)want[i]);
}

#endif
