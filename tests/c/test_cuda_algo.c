/*
 * test_cuda_algo.c - how the CUDA backend chooses cuDNN's convolution
 * algorithms (kernels/cuda/conv.c), on a GPU and, more sharply, on the CUDA
 * emulator, whose fake algorithms have known costs:
 *  - outside deterministic mode every pass is timed as it runs (a time is
 *    recorded), inside it the heuristics choose (no time);
 *  - fp32 mode takes only CUDNN_FMA_MATH candidates; TF32 mode sets
 *    CUDNN_DEFAULT_MATH on the descriptor (as PyTorch) and never takes the
 *    FP16-converting CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION, not even when it
 *    is the fastest or the heuristics' first;
 *  - emulator: the backward-filter pass is timed as it runs, accumulating
 *    (beta = 1), where the algorithm that is fastest when overwriting is
 *    slow: the one fastest for beta = 1 wins;
 *  - emulator: with the device's memory held by the caching pool (freed
 *    blocks kept), the search's workspace still comes (the pool gives its
 *    blocks back), so the large-workspace algorithm is not starved (cudnnFind
 *    allocating on its own would be);
 *  - the results of the searched calls equal the CPU's, and every choice is
 *    listed (sg_cuda_conv2d_choices).
 * Skips visibly (exit 77) without a GPU.
 */
#include "cuda_testutil.h"

#ifdef SG_HAVE_CUDA

#include <cudnn.h>

typedef struct {
    sg_conv2d_geom g;
    int64_t nx, nw, ny;
    float *x, *w, *dy;                    /* host */
    float *d_x, *d_w, *d_dy, *d_y, *d_dx, *d_dw;
} conv_case;

static void conv_make(conv_case *c, int64_t n, int64_t ch, int64_t h, int64_t k)
{
    OK(sg_conv2d_geom_init(&c->g, n, ch, h, h, k, 3, 3, 1, 1, 1, 1));
    c->nx = n * ch * h * h;
    c->nw = k * ch * 9;
    c->ny = n * k * c->g.oh * c->g.ow;
    c->x = rnd(c->nx, -1, 1);
    c->w = rnd(c->nw, -0.5f, 0.5f);
    c->dy = rnd(c->ny, -1, 1);
    c->d_x = dup_f(c->x, c->nx);
    c->d_w = dup_f(c->w, c->nw);
    c->d_dy = dup_f(c->dy, c->ny);
    c->d_y = dalloc((size_t)c->ny * 4);
    c->d_dx = dalloc((size_t)c->nx * 4);
    c->d_dw = dalloc((size_t)c->nw * 4);
    OK(sg_cuda_fill(c->d_dw, SG_F32, c->nw, 0.0));
}

static void conv_free(conv_case *c)
{
    sg_cuda_free(c->d_x); sg_cuda_free(c->d_w); sg_cuda_free(c->d_dy);
    sg_cuda_free(c->d_y); sg_cuda_free(c->d_dx); sg_cuda_free(c->d_dw);
    free(c->x); free(c->w); free(c->dy);
}

/* The three passes, each compared with the CPU (dw from zero). */
static void conv_run(conv_case *c, const char *tag)
{
    float *y = hbuf(c->ny), *dx = hbuf(c->nx), *dw = hbuf(c->nw);
    float *ws = hbuf((int64_t)sg_cpu_conv2d_workspace_size(&c->g));
    OK(sg_cpu_conv2d_forward(ws, c->x, y, c->w, NULL, &c->g));
    OK(sg_cpu_conv2d_backward_data(ws, c->dy, dx, c->w, &c->g));
    OK(sg_cpu_conv2d_backward_params(ws, c->x, c->dy, dw, NULL, &c->g));
    OK(sg_cuda_fill(c->d_dw, SG_F32, c->nw, 0.0));
    OK(sg_cuda_conv2d_forward(NULL, c->d_x, c->d_y, c->d_w, NULL, &c->g));
    OK(sg_cuda_conv2d_backward_data(NULL, c->d_dy, c->d_dx, c->d_w, &c->g));
    OK(sg_cuda_conv2d_backward_params(NULL, c->d_x, c->d_dy, c->d_dw, NULL, &c->g));
    const double rtol = sg_cuda_get_tf32() ? 5e-2 : 5e-4;
    char t[160];
    snprintf(t, sizeof t, "%s fwd", tag);
    cmp_dev(t, c->d_y, y, c->ny, rtol);
    snprintf(t, sizeof t, "%s bwd-data", tag);
    cmp_dev(t, c->d_dx, dx, c->nx, rtol);
    snprintf(t, sizeof t, "%s bwd-filter (dw from 0)", tag);
    cmp_dev(t, c->d_dw, dw, c->nw, rtol);
    free(y); free(dx); free(dw); free(ws);
}

static sg_cuda_conv_choice chosen(const conv_case *c, int pass, const char *tag)
{
    sg_cuda_conv_choice ch;
    memset(&ch, 0, sizeof ch);
    int rc = sg_cuda_conv2d_chosen(&c->g, pass, &ch);
    CHECK(rc == 0, "%s: pass %d has no algorithm chosen (rc %d)", tag, pass, rc);
    if (rc == 0)
        printf("  %-28s %-15s algo %d math %d workspace %zu %s%.4g\n", tag, ch.pass, ch.algo,
               ch.math, ch.workspace, ch.ms >= 0 ? "timed ms " : "heuristics ", ch.ms);
    return ch;
}

/* Every pass chosen under the current settings: timed or not, math types. */
static void check_choices(const conv_case *c, const char *tag, int want_timed)
{
    const int tf32 = sg_cuda_get_tf32();
    for (int pass = 0; pass < 3; pass++) {
        sg_cuda_conv_choice ch = chosen(c, pass, tag);
        CHECK((ch.ms >= 0) == want_timed, "%s %s: %s, expected %s", tag, ch.pass,
              ch.ms >= 0 ? "timed" : "heuristics", want_timed ? "timed" : "heuristics");
        if (!tf32)
            CHECK(ch.math == CUDNN_FMA_MATH, "%s %s: math type %d in fp32 mode (want FMA, %d)",
                  tag, ch.pass, ch.math, CUDNN_FMA_MATH);
        else
            CHECK(ch.math != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION,
                  "%s %s: TF32 mode took an FP16-converting candidate", tag, ch.pass);
#ifdef SG_CUDA_EMU
        /* the emulator lists the descriptor's math type: DEFAULT in TF32 mode */
        if (tf32)
            CHECK(ch.math == CUDNN_DEFAULT_MATH, "%s %s: math type %d in TF32 mode (want "
                  "CUDNN_DEFAULT_MATH, as PyTorch)", tag, ch.pass, ch.math);
#endif
    }
}

int main(void)
{
#ifdef SG_CUDA_EMU
    /* a small device, and a pool that caches (tools/test runs the C tests
     * with SGDSA_CUDA_NO_CACHE=1), for the starvation check */
    unsetenv("SGDSA_CUDA_NO_CACHE");
    setenv("SGDSA_EMU_MEMORY", "67108864", 1);
#endif
    cuda_or_skip("the CUDA algorithm-choice tests");
    char name[256];
    if (sg_cuda_device_name(name, sizeof name) == 0)
        printf("device: %s\n", name);
    sg_rng_init(&g_rng, 77, sg_rng_hash("test_cuda_algo"));

    conv_case a;
    conv_make(&a, 4, 16, 12, 24);
    sg_cuda_set_tf32(0);
    sg_cuda_set_deterministic(0);
    conv_run(&a, "fp32 timed");
    check_choices(&a, "fp32 timed", 1);
#ifdef SG_CUDA_EMU
    {
        /* timed as it runs: accumulating, backward-filter ALGO_0 costs 1.6x
         * and ALGO_3 (1.1x) wins; cudnnFind, timing beta = 0, took ALGO_0 */
        sg_cuda_conv_choice f = chosen(&a, 2, "fp32 timed");
        CHECK(f.algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3, "backward-filter chose algo %d, "
              "not the fastest when accumulating (%d)", f.algo, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3);
        sg_cuda_conv_choice fw = chosen(&a, 0, "fp32 timed");
        CHECK(fw.algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, "forward chose algo "
              "%d, not the fastest (%d)", fw.algo, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM);
    }
#endif

    sg_cuda_set_deterministic(1);
    conv_run(&a, "fp32 deterministic");
    check_choices(&a, "fp32 deterministic", 0);

    sg_cuda_set_tf32(1);
    conv_run(&a, "tf32 deterministic");
    check_choices(&a, "tf32 deterministic", 0);
    sg_cuda_set_deterministic(0);
    conv_run(&a, "tf32 timed");
    check_choices(&a, "tf32 timed", 1);
    sg_cuda_set_tf32(0);

    int n = sg_cuda_conv2d_choices(NULL, 0);
    CHECK(n >= 12, "%d algorithms listed, expected 4 settings x 3 passes", n);
    if (n > 0) {
        sg_cuda_conv_choice *all = calloc((size_t)n, sizeof *all);
        CHECK(all && sg_cuda_conv2d_choices(all, n) == n, "listing the choices");
        int timed = 0;
        for (int i = 0; all && i < n; i++)
            timed += all[i].ms >= 0;
        CHECK(timed >= 6, "%d of the listed choices timed, expected 6", timed);
        free(all);
    }
    size_t wsn = sg_cuda_conv2d_workspace_size(&a.g);
    printf("  workspace_size %zu floats\n", wsn);
    conv_free(&a);

#ifdef SG_CUDA_EMU
    {
        /* the pool holds all of the device's memory (freed blocks, cached)
         * when a new geometry's forward pass is chosen: its workspace still
         * comes (the pool gives its blocks back), and the faster
         * large-workspace algorithm is taken */
        conv_case b;
        conv_make(&b, 2, 64, 8, 64);   /* IMPLICIT_PRECOMP_GEMM wants 4*K*C*9 bytes */
        void *held[4096];
        int nh = 0;
        const size_t sizes[] = {1 << 20, 64 << 10, 4 << 10};
        for (int s = 0; s < 3; s++)
            while (nh < 4096) {
                void *p = sg_cuda_malloc(sizes[s]);
                if (!p)
                    break;
                held[nh++] = p;
            }
        sg_cuda_mem_stats st0 = sg_cuda_get_mem_stats();
        for (int i = 0; i < nh; i++)
            sg_cuda_free(held[i]);
        sg_cuda_mem_stats st1 = sg_cuda_get_mem_stats();
        printf("  pool: %d blocks, %.1f MiB in use, then %.1f MiB cached\n", nh,
               st0.in_use / 1048576.0, st1.cached / 1048576.0);
        CHECK(st1.caching && st1.cached > (40u << 20), "the pool caches %zu bytes", st1.cached);
        float *y = hbuf(b.ny), *ws = hbuf((int64_t)sg_cpu_conv2d_workspace_size(&b.g));
        OK(sg_cpu_conv2d_forward(ws, b.x, y, b.w, NULL, &b.g));
        OK(sg_cuda_conv2d_forward(NULL, b.d_x, b.d_y, b.d_w, NULL, &b.g));
        cmp_dev("starved pool fwd", b.d_y, y, b.ny, 5e-4);
        sg_cuda_conv_choice f = chosen(&b, 0, "starved pool");
        CHECK(f.algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM && f.workspace > 0,
              "with the pool holding the memory the forward pass chose algo %d (workspace %zu), "
              "not the faster IMPLICIT_PRECOMP_GEMM (%d)", f.algo, f.workspace,
              CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM);
        free(y); free(ws);
        conv_free(&b);
    }
#endif

    OK(sg_cuda_synchronize());
    return check_done("test_cuda_algo", "all CUDA algorithm checks passed");
}

#else
CUDA_TEST_SKIP_MAIN("the CUDA algorithm-choice tests (built without the CUDA backend)")
#endif
