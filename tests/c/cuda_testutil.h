/*
 * cuda_testutil.h - helpers of the CUDA tests (tests/c/test_cuda_*.c): the
 * visible skip (exit 77 with "no CUDA device: skipping ..." when the build
 * has no CUDA backend or the machine no GPU), device upload/download, and the
 * CUDA-vs-CPU comparison with a relative tolerance:
 *     |gpu - cpu| <= rtol * (|cpu| + 0.1 * max_k |cpu_k|)
 * (the second term absorbs the rounding of long sums that cancel), reported
 * with the worst element, so a wrong index fails on that element. A NaN or an
 * infinity must be matched by the same on the other side.
 * Header-only; each test stays one executable.
 */
#ifndef SG_TEST_CUDA_UTIL_H
#define SG_TEST_CUDA_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "error.h"
#include "nn.h"
#include "rng.h"
#include "tensor.h"

/* Exit 77 (ctest: skipped) unless a CUDA device can be used. */
static inline void cuda_or_skip(const char *what)
{
    if (!sg_cuda_available()) {
        printf("no CUDA device: skipping %s (%s)\n", what, sg_geterr());
        fflush(stdout);
        exit(77);
    }
}

/* A test's main in a build without the CUDA backend: the visible skip. */
#define CUDA_TEST_SKIP_MAIN(what) \
    int main(void) { cuda_or_skip(what); return 77; }

#ifdef SG_HAVE_CUDA
#include "nn_cuda.h"

#include "check.h"

static inline float *hbuf(int64_t n) { return check_floats(n); }

/* The tests' generator (seeded by each test) and uniform host buffers from it. */
static sg_rng g_rng __attribute__((unused));

static inline float *rnd(int64_t n, float lo, float hi)
{
    float *p = hbuf(n);
    sg_rng_fill_uniform(&g_rng, p, n, lo, hi);
    return p;
}

static inline void *dalloc(size_t nbytes)
{
    void *p = sg_cuda_malloc(nbytes ? nbytes : 4);
    if (!p) {
        fprintf(stderr, "device allocation failed: %s\n", sg_geterr());
        exit(1);
    }
    return p;
}

static inline float *dup_f(const float *h, int64_t n)
{
    float *d = dalloc((size_t)n * sizeof(float));
    if (sg_cuda_memcpy(d, h, (size_t)n * sizeof(float), 1, 0) != 0) {
        fprintf(stderr, "upload failed: %s\n", sg_geterr());
        exit(1);
    }
    return d;
}

static inline int32_t *dup_i(const int32_t *h, int64_t n)
{
    int32_t *d = dalloc((size_t)n * sizeof(int32_t));
    if (sg_cuda_memcpy(d, h, (size_t)n * sizeof(int32_t), 1, 0) != 0) {
        fprintf(stderr, "upload failed: %s\n", sg_geterr());
        exit(1);
    }
    return d;
}

/* Device -> new host buffer (waits for the queued work). */
static inline float *down_f(const float *d, int64_t n)
{
    float *h = hbuf(n);
    if (sg_cuda_memcpy(h, d, (size_t)n * sizeof(float), 0, 1) != 0) {
        fprintf(stderr, "download failed: %s\n", sg_geterr());
        exit(1);
    }
    return h;
}

static inline void down_i(int32_t *h, const int32_t *d, int64_t n)
{
    if (sg_cuda_memcpy(h, d, (size_t)n * sizeof(int32_t), 0, 1) != 0) {
        fprintf(stderr, "download failed: %s\n", sg_geterr());
        exit(1);
    }
}

/* Compare a device array with the CPU reference; returns the worst relative error. */
static inline double cmp_dev(const char *what, const float *dgpu, const float *cpu, int64_t n,
                             double rtol)
{
    float *g = down_f(dgpu, n);
    double scale = 0.0;
    for (int64_t i = 0; i < n; i++)
        if (isfinite(cpu[i]))
            scale = fmax(scale, fabs((double)cpu[i]));
    scale = scale * 0.1 + 1e-30;
    double worst = 0.0;
    int64_t wi = -1;
    for (int64_t i = 0; i < n; i++) {
        if ((isnan(g[i]) && isnan(cpu[i])) || (isinf(cpu[i]) && g[i] == cpu[i]))
            continue;  /* the same NaN / infinity on both */
        double d = fabs((double)g[i] - (double)cpu[i]);
        double r = d / (fabs((double)cpu[i]) + scale);
        if (!(r <= worst)) {  /* NaN counts as worst */
            worst = r;
            wi = i;
            if (isnan(r))
                break;
        }
    }
    if (!(worst <= rtol))
        CHECK(0, "%s: element %lld of %lld: gpu %.9g cpu %.9g (relative error %.3g > %.3g)",
              what, (long long)wi, (long long)n, wi >= 0 ? g[wi] : 0.0,
              wi >= 0 ? cpu[wi] : 0.0, worst, rtol);
    else
        printf("  ok %-44s n=%-9lld worst relative error %.2e\n", what, (long long)n, worst);
    free(g);
    return worst;
}
#endif

#endif
