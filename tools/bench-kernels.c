/*
 * bench-kernels.c - GFLOP/s of the CPU conv2d kernels on the convolution
 * shapes of VGG16 and ResNet34 (CIFAR, 3x32x32) at batch 128: forward,
 * backward to the input and weight gradient, per distinct shape and summed
 * over each network (weighted by how often the shape occurs).
 *
 * Not a test; built and run by hand (unset the OpenBLAS variables that this
 * environment sets, they halve its speed):
 *
 *   gcc -O3 -march=x86-64-v2 -fopenmp -std=c11 -D_DEFAULT_SOURCE -include stddef.h \
 *       -Icore -Ikernels/cpu -I/usr/include/x86_64-linux-gnu/openblas-openmp \
 *       tools/bench-kernels.c kernels/cpu/[a-z]*.c core/error.c core/rng.c \
 *       -L/usr/lib/x86_64-linux-gnu/openblas-openmp \
 *       -Wl,-rpath,/usr/lib/x86_64-linux-gnu/openblas-openmp -lopenblas -lm \
 *       -o /tmp/bench-kernels
 *
 * (The rpath matters: without it the loader picks whichever libopenblas.so.0
 * the Debian alternatives point to, here the pthread build, whose threads
 * then fight the OpenMP pool.)
 *
 *   env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS=2 /tmp/bench-kernels [batch] [block]
 *
 * `block` (optional) forces a strategy for every shape, to compare them:
 * 0 = the kernel's own choice, +b = shared mode with b images per GEMM,
 * -b = per-thread mode with b images per GEMM, "shared" = shared mode with
 * the block size the kernel would pick for it (the whole batch as share).
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "nn.h"

typedef struct { int c, hw, k, kh, s, p, count_vgg, count_res; } shape;

static const shape shapes[] = {
    { 3, 32, 64, 3, 1, 1, 1, 1 },      /* stem */
    { 64, 32, 64, 3, 1, 1, 1, 6 },
    { 64, 16, 128, 3, 1, 1, 1, 0 },
    { 64, 32, 128, 3, 2, 1, 0, 1 },
    { 64, 32, 128, 1, 2, 0, 0, 1 },    /* projection shortcut */
    { 128, 16, 128, 3, 1, 1, 1, 7 },
    { 128, 8, 256, 3, 1, 1, 1, 0 },
    { 128, 16, 256, 3, 2, 1, 0, 1 },
    { 128, 16, 256, 1, 2, 0, 0, 1 },
    { 256, 8, 256, 3, 1, 1, 2, 11 },
    { 256, 4, 512, 3, 1, 1, 1, 0 },
    { 256, 8, 512, 3, 2, 1, 0, 1 },
    { 256, 8, 512, 1, 2, 0, 0, 1 },
    { 512, 4, 512, 3, 1, 1, 2, 5 },
    { 512, 2, 512, 3, 1, 1, 3, 0 },
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static float *buf(size_t n)
{
    float *p = sg_aligned_alloc((n ? n : 1) * sizeof(float), "bench");
    if (!p) {
        fprintf(stderr, "%s\n", sg_geterr());
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        p[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
    return p;
}

int main(int argc, char **argv)
{
    const int n = argc > 1 ? atoi(argv[1]) : 128;
    const int shared = argc > 2 && !strcmp(argv[2], "shared");
    const int force_block = argc > 2 && !shared ? atoi(argv[2]) : 0;
    printf("conv2d CPU kernels, batch %d, %d threads%s\n", n, omp_get_max_threads(),
           shared ? " (forced shared mode)" : force_block ? " (forced block)" : "");
    printf("%-26s %6s %7s %8s %8s %8s %9s\n", "shape (C,HW->K,k,s,p)", "mode", "fwd", "bwd-d",
           "bwd-w", "all", "ms/step");
    double t_vgg = 0, f_vgg = 0, t_res = 0, f_res = 0;
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const shape *s = &shapes[si];
        sg_conv2d_geom g;
        if (sg_conv2d_geom_init(&g, n, s->c, s->hw, s->hw, s->k, s->kh, s->kh, s->s, s->s, s->p,
                                s->p)) {
            fprintf(stderr, "%s\n", sg_geterr());
            return 1;
        }
        if (force_block != 0) {
            g.per_thread = force_block < 0;
            g.block = force_block < 0 ? -force_block : force_block;
            if (g.block > n)
                g.block = n;
        }
        if (shared) {  /* what geom_init picks with one thread: the batch is the share */
            int64_t ohw = g.oh * g.ow, ckk = (int64_t)s->c * s->kh * s->kh;
            int64_t b = (1024 + ohw - 1) / ohw;
            while (b > 1 && ckk * b * ohw > ((int64_t)4 << 20))
                b--;
            g.block = b < n ? b : n;
            g.per_thread = 0;
        }
        const size_t nx = (size_t)n * s->c * s->hw * s->hw, ny = (size_t)n * s->k * g.oh * g.ow;
        const size_t nw = (size_t)s->k * s->c * s->kh * s->kh;
        float *ws = buf(sg_cpu_conv2d_workspace_size(&g)), *x = buf(nx), *y = buf(ny);
        float *w = buf(nw), *b = buf(s->k), *dx = buf(nx), *dw = buf(nw), *db = buf(s->k);
        const double flop = 2.0 * n * s->k * (double)s->c * s->kh * s->kh * g.oh * g.ow;
        sg_cpu_conv2d_forward(ws, x, y, w, b, &g);  /* warm-up */
        double tf = 1e30, td = 1e30, tw = 1e30;
        for (int rep = 0; rep < 3; rep++) {
            double t0 = now();
            sg_cpu_conv2d_forward(ws, x, y, w, b, &g);
            double t1 = now();
            sg_cpu_conv2d_backward_data(ws, y, dx, w, &g);
            double t2 = now();
            sg_cpu_conv2d_backward_params(ws, x, y, dw, db, &g);
            double t3 = now();
            if (t1 - t0 < tf) tf = t1 - t0;
            if (t2 - t1 < td) td = t2 - t1;
            if (t3 - t2 < tw) tw = t3 - t2;
        }
        /* The stem's input gradient is not needed in training, but count it. */
        const double tall = tf + td + tw;
        char name[64];
        snprintf(name, sizeof name, "%d,%d->%d,%dx%d,s%d,p%d", s->c, s->hw, s->k, s->kh, s->kh,
                 s->s, s->p);
        printf("%-26s %5lld%c %7.1f %8.1f %8.1f %8.1f %9.2f\n", name, (long long)g.block, g.per_thread ? 'T' : 'S',
               flop / tf * 1e-9, flop / td * 1e-9, flop / tw * 1e-9, 3 * flop / tall * 1e-9,
               tall * 1e3);
        t_vgg += s->count_vgg * tall;
        f_vgg += s->count_vgg * 3 * flop;
        t_res += s->count_res * tall;
        f_res += s->count_res * 3 * flop;
        free(ws); free(x); free(y); free(w); free(b); free(dx); free(dw); free(db);
    }
    printf("vgg16    convs fwd+bwd: %8.1f ms/step  %6.1f GFLOP/s  (%.0f img/s conv-only)\n",
           t_vgg * 1e3, f_vgg / t_vgg * 1e-9, n / t_vgg);
    printf("resnet34 convs fwd+bwd: %8.1f ms/step  %6.1f GFLOP/s  (%.0f img/s conv-only)\n",
           t_res * 1e3, f_res / t_res * 1e-9, n / t_res);
    return 0;
}
