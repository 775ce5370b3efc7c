/*
 * cuda_testutil.h - helpers of the CUDA tests (tests/c/test_cuda_*.c): the
 * visible skip (exit 77 with "no CUDA device: skipping ..." when the build
 * has no CUDA backend or the machine no GPU), device upload/download, and the
 * CUDA-vs-CPU comparison (nn_check.h's cmp_rel on the downloaded array).
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

#include "nn_check.h"

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

/* Host <-> device copies of nbytes (to_device: 1 upload, 0 download, which
 * waits for the queued work), or exit 1. */
static inline void xfer(void *dst, const void *src, size_t nbytes, int to_device)
{
    if (sg_cuda_memcpy(dst, src, nbytes, to_device, !to_device) != 0) {
        fprintf(stderr, "%s failed: %s\n", to_device ? "upload" : "download", sg_geterr());
        exit(1);
    }
}

static inline float *dup_f(const float *h, int64_t n)
{
    float *d = dalloc((size_t)n * sizeof(float));
    xfer(d, h, (size_t)n * sizeof(float), 1);
    return d;
}

static inline int32_t *dup_i(const int32_t *h, int64_t n)
{
    int32_t *d = dalloc((size_t)n * sizeof(int32_t));
    xfer(d, h, (size_t)n * sizeof(int32_t), 1);
    return d;
}

/* Device -> new host buffer. */
static inline float *down_f(const float *d, int64_t n)
{
    float *h = hbuf(n);
    xfer(h, d, (size_t)n * sizeof(float), 0);
    return h;
}

static inline void down_i(int32_t *h, const int32_t *d, int64_t n)
{
    xfer(h, d, (size_t)n * sizeof(int32_t), 0);
}

/* Compare a device array with the CPU reference (cmp_rel); returns the worst
 * relative error. */
static inline double cmp_dev(const char *what, const float *dgpu, const float *cpu, int64_t n,
                             double rtol)
{
    float *g = down_f(dgpu, n);
    double worst = cmp_rel(what, g, cpu, n, rtol);
    free(g);
    return worst;
}

/* A CUDA test's start: the visible skip without a device, the device's
 * name, the tests' generator seeded with (seed, test). */
static inline void cuda_test_begin(const char *what, uint64_t seed, const char *test)
{
    cuda_or_skip(what);
    char name[256];
    if (sg_cuda_device_name(name, sizeof name) == 0)
        printf("device: %s\n", name);
    sg_rng_init(&g_rng, seed, sg_rng_hash(test));
}
#endif

#endif
