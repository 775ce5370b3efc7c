/*
 * bench-kernels.c - GFLOP/s of the CPU conv2d kernels on the convolution
 * shapes of VGG16 and ResNet34 (CIFAR, 3x32x32) at batch 128: forward,
 * backward to the input and weight gradient, per distinct shape and summed
 * over each network (weighted by how often the shape occurs).
 *
 * Built with oneDNN, each shape runs im2col, the measured choice ("auto":
 * oneDNN for the passes conv_choice.c measured faster on it, or the
 * machine's cache says, im2col for the rest)
 * and oneDNN for every pass, alternating, so all three see the same load;
 * the totals add "best/pass", the fastest of the three for each pass.
 *
 * Not a test; built and run by hand (it prints the BLAS core and warns, with
 * the fix, when OpenBLAS fell back to one older than the CPU: it does not
 * re-execute itself as sgdsa does):
 *
 *   gcc -O3 -march=x86-64-v2 -fopenmp -std=c11 -D_DEFAULT_SOURCE -include stddef.h \
 *       -DSG_HAVE_DNNL -Icore -Ikernels -Ikernels/cpu -I/usr/include/x86_64-linux-gnu/openblas-openmp \
 *       tools/bench-kernels.c kernels/cpu/[a-z]*.c core/error.c core/rng.c core/cpu_info.c \
 *       core/backend.c core/device.c core/tensor.c \
 *       -L/usr/lib/x86_64-linux-gnu/openblas-openmp \
 *       -Wl,-rpath,/usr/lib/x86_64-linux-gnu/openblas-openmp -lopenblas -ldnnl -lm \
 *       -o /tmp/bench-kernels
 *
 * (drop -DSG_HAVE_DNNL and -ldnnl for im2col alone. The rpath matters:
 * without it the loader picks whichever libopenblas.so.0 the Debian
 * alternatives point to, here the pthread build, whose threads then fight
 * the OpenMP pool.)
 *
 *   env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS=2 GOMP_SPINCOUNT=10000 \
 *       /tmp/bench-kernels [batch] [block]
 *
 * (GOMP_SPINCOUNT as the sgdsa executable sets it.) `block` (optional)
 * forces an im2col strategy for every shape, to compare them:
 * 0 = the kernel's own choice, +b = shared mode with b images per GEMM,
 * -b = per-thread mode with b images per GEMM, "shared" = shared mode with
 * the block size the kernel would pick for it (the whole batch as share).
 * Environment: BENCH_REPS (default 5, the best run counts), BENCH_ONLY
 * (a list of shape names as printed: only those).
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu_info.h"
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

/* Implementations compared side by side (per shape, alternating runs, so
 * both see the same machine load): im2col, and oneDNN when built in
 * (-DSG_HAVE_DNNL ... -ldnnl): "auto" the measured choice, "dnnl" oneDNN for
 * every pass. */
enum { IM2COL, AUTO, DNNL, NIMPL };
static const char *const impl_names[NIMPL] = { "im2col", "auto", "dnnl" };

static int select_impl(int im)
{
    if (im == IM2COL)
        return sg_cpu_conv2d_set_impl(SG_CONV_IM2COL);
    if (im == AUTO)
        return sg_cpu_conv2d_set_impl(SG_CONV_AUTO);
    return sg_cpu_conv2d_set_impl(SG_CONV_DNNL);
}

int main(int argc, char **argv)
{
    const int n = argc > 1 ? atoi(argv[1]) : 128;
    const int shared = argc > 2 && !strcmp(argv[2], "shared");
    const int force_block = argc > 2 && !shared ? atoi(argv[2]) : 0;
    const int reps = getenv("BENCH_REPS") ? atoi(getenv("BENCH_REPS")) : 5;
    const int nimpl = sg_cpu_conv2d_have_dnnl() ? NIMPL : 1;
    printf("conv2d CPU kernels, batch %d, %d threads, best of %d%s\n", n, omp_get_max_threads(),
           reps, shared ? " (forced shared mode)" : force_block ? " (forced block)" : "");
    char kernels[512];
    sg_cpu_summary(kernels, sizeof kernels);
    printf("%s\n", kernels);
    sg_blas_warn_once(); /* no re-exec here: set OPENBLAS_CORETYPE as it says */
    printf("GFLOP/s per pass; 'all' = 3 x flop / (fwd + bwd-d + bwd-w time); mode: im2col's\n"
           "images per block, T per thread / S shared; auto: each pass's measured choice\n"
           "(i im2col, d oneDNN direct, w oneDNN Winograd)\n");
    printf("%-26s %-10s %6s %7s %8s %8s %8s %9s\n", "shape (C,HW->K,k,s,p)", "impl", "mode", "fwd",
           "bwd-d", "bwd-w", "all", "ms/step");
    double t_net[2][NIMPL][3] = { { { 0 } } }, t_best[2][3] = { { 0 } }, f_net[2] = { 0 };
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const shape *s = &shapes[si];
        char name[64];
        snprintf(name, sizeof name, "%d,%d->%d,%dx%d,s%d,p%d", s->c, s->hw, s->k, s->kh, s->kh,
                 s->s, s->p);
        if (getenv("BENCH_ONLY") && !strstr(getenv("BENCH_ONLY"), name))
            continue;  /* BENCH_ONLY="64,32->64,3x3,s1,p1 ...": those shapes only */
        sg_conv2d_geom gs[NIMPL];
        float *wss[NIMPL];
        for (int im = 0; im < nimpl; im++) {
            sg_conv2d_geom *g = &gs[im];
            if (select_impl(im) ||
                sg_conv2d_geom_init(g, n, s->c, s->hw, s->hw, s->k, s->kh, s->kh, s->s, s->s,
                                    s->p, s->p)) {
                fprintf(stderr, "%s\n", sg_geterr());
                return 1;
            }
            if (force_block != 0) {
                g->per_thread = force_block < 0;
                g->block = force_block < 0 ? -force_block : force_block;
                if (g->block > n)
                    g->block = n;
            }
            if (shared) {  /* what geom_init picks with one thread: the batch is the share */
                int64_t ohw = g->oh * g->ow, ckk = (int64_t)s->c * s->kh * s->kh;
                int64_t b = (1024 + ohw - 1) / ohw;
                while (b > 1 && ckk * b * ohw > ((int64_t)4 << 20))
                    b--;
                g->block = b < n ? b : n;
                g->per_thread = 0;
            }
            wss[im] = buf(sg_cpu_conv2d_workspace_size(g));
        }
        const sg_conv2d_geom *g0 = &gs[0];
        const size_t nx = (size_t)n * s->c * s->hw * s->hw, ny = (size_t)n * s->k * g0->oh * g0->ow;
        const size_t nw = (size_t)s->k * s->c * s->kh * s->kh;
        float *x = buf(nx), *y = buf(ny);
        float *w = buf(nw), *b = buf(s->k), *dx = buf(nx), *dw = buf(nw), *db = buf(s->k);
        const double flop = 2.0 * n * s->k * (double)s->c * s->kh * s->kh * g0->oh * g0->ow;
        double t[NIMPL][3];
        for (int im = 0; im < nimpl; im++) {
            t[im][0] = t[im][1] = t[im][2] = 1e30;
            select_impl(im);
            sg_cpu_conv2d_forward(wss[im], x, y, w, b, &gs[im]);  /* warm-up */
            sg_cpu_conv2d_backward_params(wss[im], x, y, dw, db, &gs[im]);
        }
        for (int rep = 0; rep < reps; rep++)
            for (int im = 0; im < nimpl; im++) {
                const sg_conv2d_geom *g = &gs[im];
                float *ws = wss[im];
                select_impl(im);
                int rc = 0;
                double t0 = now();
                rc |= sg_cpu_conv2d_forward(ws, x, y, w, b, g);
                double t1 = now();
                rc |= sg_cpu_conv2d_backward_data(ws, y, dx, w, g);
                double t2 = now();
                rc |= sg_cpu_conv2d_backward_params(ws, x, y, dw, db, g);
                double t3 = now();
                if (rc) {
                    fprintf(stderr, "%s\n", sg_geterr());
                    return 1;
                }
                if (t1 - t0 < t[im][0]) t[im][0] = t1 - t0;
                if (t2 - t1 < t[im][1]) t[im][1] = t2 - t1;
                if (t3 - t2 < t[im][2]) t[im][2] = t3 - t2;
            }
        for (int im = 0; im < nimpl; im++) {
            /* The stem's input gradient is not needed in training, but count it. */
            const double tall = t[im][0] + t[im][1] + t[im][2];
            /* mode: im2col's block and threading; for auto, the passes on oneDNN */
            char mode[16];
            const int d = sg_cpu_conv2d_passes(&gs[im]);
            if (im == AUTO)
                for (int p = 0; p < 3; p++)  /* i: im2col, d: oneDNN, w: Winograd */
                    mode[p] = d & (1 << (p + SG_CONV_WINO_SHIFT)) ? 'w' : d & (1 << p) ? 'd' : 'i';
                mode[3] = 0;
            else
                snprintf(mode, sizeof mode, "%lld%c", (long long)gs[im].block,
                         gs[im].per_thread ? 'T' : 'S');
            printf("%-26s %-10s %6s %7.1f %8.1f %8.1f %8.1f %9.2f\n", im ? "" : name,
                   impl_names[im], im == IM2COL || im == AUTO ? mode : "", flop / t[im][0] * 1e-9,
                   flop / t[im][1] * 1e-9, flop / t[im][2] * 1e-9, 3 * flop / tall * 1e-9,
                   tall * 1e3);
        }
        for (int net = 0; net < 2; net++) {
            const int cnt = net ? s->count_res : s->count_vgg;
            f_net[net] += cnt * 3 * flop;
            for (int p = 0; p < 3; p++) {
                double best = 1e30;
                for (int im = 0; im < nimpl; im++) {
                    t_net[net][im][p] += cnt * t[im][p];
                    if (t[im][p] < best)
                        best = t[im][p];
                }
                t_best[net][p] += cnt * best;
            }
        }
        for (int im = 0; im < nimpl; im++)
            free(wss[im]);
        free(x); free(y); free(w); free(b); free(dx); free(dw); free(db);
    }
    for (int net = 0; net < 2; net++)
        for (int im = 0; im <= nimpl; im++) {
            const double *tt = im < nimpl ? t_net[net][im] : t_best[net];
            const double tot = tt[0] + tt[1] + tt[2];
            printf("%-8s convs %-10s fwd %7.1f  bwd-d %7.1f  bwd-w %7.1f  = %8.1f ms/step  "
                   "%6.1f GFLOP/s\n", net ? "resnet34" : "vgg16",
                   im < nimpl ? impl_names[im] : "best/pass", tt[0] * 1e3, tt[1] * 1e3,
                   tt[2] * 1e3, tot * 1e3, f_net[net] / tot * 1e-9);
        }
    return 0;
}
