/*
 * conv.c - 2-d convolution on the GPU through cuDNN.
 *
 * A plan per geometry (and per math mode: fp32 FMA or TF32 tensor cores, and
 * per deterministic setting) holds the cuDNN descriptors and the algorithm
 * chosen for each of the three passes. The algorithms are chosen once, the
 * first time a geometry is seen, by cudnnFind* (which times every candidate;
 * SGDSA_CUDNN_HEURISTIC=1 asks cuDNN's heuristics instead, and a failed Find,
 * or one offering nothing acceptable, falls back to them). In deterministic
 * mode only algorithms cuDNN marks CUDNN_DETERMINISTIC are taken. In fp32
 * mode only candidates whose math type is CUDNN_FMA_MATH are taken
 * (CUDNN_DEFAULT_MATH permits TF32 on Ampere and later). Candidates needing
 * more workspace than SGDSA_CUDNN_WS_MB (default 2048 MiB) are skipped.
 *
 * The bias is added by a custom kernel and its gradient is a deterministic
 * per-channel reduction (reduce.cu). backward_params accumulates: cuDNN's
 * backward-filter runs with beta = 1.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_impl.h"

typedef struct conv_plan {
    int64_t key[11];
    int tf32, det;
    cudnnTensorDescriptor_t xd, yd;
    cudnnFilterDescriptor_t wd;
    cudnnConvolutionDescriptor_t cd[3];  /* forward, backward data, backward filter */
    cudnnConvolutionFwdAlgo_t fwd;
    cudnnConvolutionBwdDataAlgo_t bwd_data;
    cudnnConvolutionBwdFilterAlgo_t bwd_filter;
    size_t ws[3];
    struct conv_plan *next;
} conv_plan;

static conv_plan *g_plans;
static pthread_mutex_t g_plan_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t ws_limit(void)
{
    const char *e = getenv("SGDSA_CUDNN_WS_MB");
    long mb = e && *e ? strtol(e, NULL, 10) : 2048;
    if (mb <= 0)
        mb = 2048;
    return (size_t)mb << 20;
}

static int heuristic_only(void)
{
    const char *e = getenv("SGDSA_CUDNN_HEURISTIC");
    return e && *e && strcmp(e, "0") != 0;
}

/* The first (fastest) candidate that ran, fits the workspace limit, is
 * deterministic when asked, and in fp32 mode uses plain FMA math. In fp32
 * mode nothing else is acceptable: CUDNN_DEFAULT_MATH and the tensor-op math
 * types permit TF32 on Ampere and later, so a candidate labelled with one of
 * them is skipped (the descriptor was set to CUDNN_FMA_MATH, so cuDNN offers
 * FMA candidates; when it offers none, the heuristics are asked below). */
static int pick(const cudnnStatus_t *st, const size_t *mem, const cudnnDeterminism_t *det,
                const cudnnMathType_t *math, int n, int want_det, int tf32, size_t limit)
{
    for (int i = 0; i < n; i++)
        if (st[i] == CUDNN_STATUS_SUCCESS && mem[i] <= limit &&
            (!want_det || det[i] == CUDNN_DETERMINISTIC) &&
            (tf32 || math[i] == CUDNN_FMA_MATH))
            return i;
    return -1;
}

#define NALGO 16

/* The candidates' fields as arrays, for pick(). */
#define PERF_FIELDS(perf, got)                                                       \
    for (i = 0; i < (got); i++) {                                                    \
        st[i] = (perf)[i].status; mem[i] = (perf)[i].memory;                         \
        dt[i] = (perf)[i].determinism; mt[i] = (perf)[i].mathType;                   \
    }

static int choose_passes(conv_plan *p, const sg_conv2d_geom *g, cudnnHandle_t h,
                         size_t limit, int heur, cudnnStatus_t *st, size_t *mem,
                         cudnnDeterminism_t *dt, cudnnMathType_t *mt);

static int choose_algos(conv_plan *p, const sg_conv2d_geom *g)
{
    cudnnHandle_t h = sg_cuda_cudnn();
    const size_t limit = ws_limit();
    const int heur = heuristic_only();
    cudnnStatus_t st[NALGO];
    size_t mem[NALGO];
    cudnnDeterminism_t dt[NALGO];
    cudnnMathType_t mt[NALGO];
    int rc = choose_passes(p, g, h, limit, heur, st, mem, dt, mt);
    /* cudnnFind* tries allocations that may fail: do not leave their error as
     * the runtime's last error for the next launch check to report */
    (void)cudaGetLastError();
    return rc;
}

/* For each pass: cudnnFind* (times every algorithm) unless
 * SGDSA_CUDNN_HEURISTIC is set; when Find fails or offers nothing acceptable,
 * the heuristics (cudnnGet*_v7); nothing acceptable there either is an error. */
static int choose_passes(conv_plan *p, const sg_conv2d_geom *g, cudnnHandle_t h,
                         size_t limit, int heur, cudnnStatus_t *st, size_t *mem,
                         cudnnDeterminism_t *dt, cudnnMathType_t *mt)
{
    int got = 0, i;
    const char *what = p->det ? "deterministic " : "";
    const char *math = p->tf32 ? "" : "FMA-only (no TF32) ";

    {   /* forward */
        cudnnConvolutionFwdAlgoPerf_t perf[NALGO];
        i = -1;
        got = 0;
        if (!heur && cudnnFindConvolutionForwardAlgorithm(h, p->xd, p->wd, p->cd[0], p->yd,
                                                          NALGO, &got, perf) ==
                         CUDNN_STATUS_SUCCESS) {
            PERF_FIELDS(perf, got);
            i = pick(st, mem, dt, mt, got, p->det, p->tf32, limit);
        }
        if (i < 0) {
            SG_CUDNN(cudnnGetConvolutionForwardAlgorithm_v7(h, p->xd, p->wd, p->cd[0], p->yd,
                                                            NALGO, &got, perf));
            PERF_FIELDS(perf, got);
            i = pick(st, mem, dt, mt, got, p->det, p->tf32, limit);
        }
        if (i < 0)
            return sg_seterr("conv2d: cuDNN offers no %s%sforward algorithm within %zu MiB of "
                             "workspace (SGDSA_CUDNN_WS_MB) for input %lldx%lldx%lldx%lld, "
                             "weight %lldx%lldx%lldx%lld (cuda)", what, math, limit >> 20,
                             (long long)g->n, (long long)g->c, (long long)g->h, (long long)g->w,
                             (long long)g->k, (long long)g->c, (long long)g->kh, (long long)g->kw);
        p->fwd = perf[i].algo;
        p->ws[0] = perf[i].memory;
        SG_CUDNN(cudnnSetConvolutionMathType(p->cd[0], perf[i].mathType));
    }
    {   /* backward data */
        cudnnConvolutionBwdDataAlgoPerf_t perf[NALGO];
        i = -1;
        got = 0;
        if (!heur && cudnnFindConvolutionBackwardDataAlgorithm(h, p->wd, p->yd, p->cd[1], p->xd,
                                                               NALGO, &got, perf) ==
                         CUDNN_STATUS_SUCCESS) {
            PERF_FIELDS(perf, got);
            i = pick(st, mem, dt, mt, got, p->det, p->tf32, limit);
        }
        if (i < 0) {
            SG_CUDNN(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, p->wd, p->yd, p->cd[1], p->xd,
                                                                 NALGO, &got, perf));
            PERF_FIELDS(perf, got);
            i = pick(st, mem, dt, mt, got, p->det, p->tf32, limit);
        }
        if (i < 0)
            return sg_seterr("conv2d: cuDNN offers no %s%sbackward-data algorithm within %zu "
                             "MiB of workspace (SGDSA_CUDNN_WS_MB) for input %lldx%lldx%lldx%lld, "
                             "weight %lldx%lldx%lldx%lld (cuda)", what, math, limit >> 20,
                             (long long)g->n, (long long)g->c, (long long)g->h, (long long)g->w,
                             (long long)g->k, (long long)g->c, (long long)g->kh, (long long)g->kw);
        p->bwd_data = perf[i].algo;
        p->ws[1] = perf[i].memory;
        SG_CUDNN(cudnnSetConvolutionMathType(p->cd[1], perf[i].mathType));
    }
    {   /* backward filter */
        cudnnConvolutionBwdFilterAlgoPerf_t perf[NALGO];
        i = -1;
        got = 0;
        if (!heur && cudnnFindConvolutionBackwardFilterAlgorithm(h, p->xd, p->yd, p->cd[2], p->wd,
                                                                 NALGO, &got, perf) ==
                         CUDNN_STATUS_SUCCESS) {
            PERF_FIELDS(perf, got);
            i = pick(st, mem, dt, mt, got, p->det, p->tf32, limit);
        }
        if (i < 0) {
            SG_CUDNN(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, p->xd, p->yd, p->cd[2],
                                                                   p->wd, NALGO, &got, perf));
            PERF_FIELDS(perf, got);
            i = pick(st, mem, dt, mt, got, p->det, p->tf32, limit);
        }
        if (i < 0)
            return sg_seterr("conv2d: cuDNN offers no %s%sbackward-filter algorithm within %zu "
                             "MiB of workspace (SGDSA_CUDNN_WS_MB) for input %lldx%lldx%lldx%lld, "
                             "weight %lldx%lldx%lldx%lld (cuda)", what, math, limit >> 20,
                             (long long)g->n, (long long)g->c, (long long)g->h, (long long)g->w,
                             (long long)g->k, (long long)g->c, (long long)g->kh, (long long)g->kw);
        p->bwd_filter = perf[i].algo;
        p->ws[2] = perf[i].memory;
        SG_CUDNN(cudnnSetConvolutionMathType(p->cd[2], perf[i].mathType));
    }
    return 0;
}
#undef PERF_FIELDS

static void plan_free(conv_plan *p)
{
    if (!p)
        return;
    if (p->xd) cudnnDestroyTensorDescriptor(p->xd);
    if (p->yd) cudnnDestroyTensorDescriptor(p->yd);
    if (p->wd) cudnnDestroyFilterDescriptor(p->wd);
    for (int i = 0; i < 3; i++)
        if (p->cd[i]) cudnnDestroyConvolutionDescriptor(p->cd[i]);
    free(p);
}

static int plan_init(conv_plan *p, const sg_conv2d_geom *g)
{
    if (g->n > INT32_MAX || g->c > INT32_MAX || g->h > INT32_MAX || g->w > INT32_MAX ||
        g->k > INT32_MAX)
        return sg_seterr("conv2d: sizes exceed cuDNN's int range (cuda)");
    SG_CUDNN(cudnnCreateTensorDescriptor(&p->xd));
    SG_CUDNN(cudnnCreateTensorDescriptor(&p->yd));
    SG_CUDNN(cudnnCreateFilterDescriptor(&p->wd));
    SG_CUDNN(cudnnSetTensor4dDescriptor(p->xd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, (int)g->n,
                                        (int)g->c, (int)g->h, (int)g->w));
    SG_CUDNN(cudnnSetFilter4dDescriptor(p->wd, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, (int)g->k,
                                        (int)g->c, (int)g->kh, (int)g->kw));
    for (int i = 0; i < 3; i++) {
        SG_CUDNN(cudnnCreateConvolutionDescriptor(&p->cd[i]));
        SG_CUDNN(cudnnSetConvolution2dDescriptor(p->cd[i], (int)g->ph, (int)g->pw, (int)g->sh,
                                                 (int)g->sw, 1, 1, CUDNN_CROSS_CORRELATION,
                                                 CUDNN_DATA_FLOAT));
        SG_CUDNN(cudnnSetConvolutionMathType(p->cd[i], p->tf32 ? CUDNN_TENSOR_OP_MATH
                                                               : CUDNN_FMA_MATH));
    }
    int on, ok, oh, ow;
    SG_CUDNN(cudnnGetConvolution2dForwardOutputDim(p->cd[0], p->xd, p->wd, &on, &ok, &oh, &ow));
    if (on != g->n || ok != g->k || oh != g->oh || ow != g->ow)
        return sg_seterr("conv2d: cuDNN output %dx%dx%dx%d differs from the geometry's "
                         "%lldx%lldx%lldx%lld (cuda)", on, ok, oh, ow, (long long)g->n,
                         (long long)g->k, (long long)g->oh, (long long)g->ow);
    SG_CUDNN(cudnnSetTensor4dDescriptor(p->yd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, on, ok, oh,
                                        ow));
    return choose_algos(p, g);
}

static conv_plan *get_plan(const sg_conv2d_geom *g)
{
    if (sg_cuda_init() != 0)
        return NULL;
    const int64_t key[11] = {g->n, g->c, g->h, g->w, g->k, g->kh, g->kw, g->sh, g->sw, g->ph, g->pw};
    const int tf32 = sg_cuda_get_tf32(), det = sg_cuda_get_deterministic();
    pthread_mutex_lock(&g_plan_lock);
    for (conv_plan *p = g_plans; p; p = p->next)
        if (p->tf32 == tf32 && p->det == det && !memcmp(p->key, key, sizeof key)) {
            pthread_mutex_unlock(&g_plan_lock);
            return p;
        }
    conv_plan *p = calloc(1, sizeof *p);
    if (!p) {
        pthread_mutex_unlock(&g_plan_lock);
        return sg_seterr("out of memory: conv plan (%zu bytes)", sizeof *p), NULL;
    }
    memcpy(p->key, key, sizeof key);
    p->tf32 = tf32;
    p->det = det;
    if (plan_init(p, g) != 0) {
        plan_free(p);
        pthread_mutex_unlock(&g_plan_lock);
        return NULL;
    }
    p->next = g_plans;
    g_plans = p;
    pthread_mutex_unlock(&g_plan_lock);
    return p;
}

size_t sg_cuda_conv2d_workspace_size(const sg_conv2d_geom *g)
{
    conv_plan *p = get_plan(g);
    if (!p)
        return 0;
    size_t m = p->ws[0];
    if (p->ws[1] > m) m = p->ws[1];
    if (p->ws[2] > m) m = p->ws[2];
    return (m + sizeof(float) - 1) / sizeof(float);
}

/* The workspace for pass i: the caller's, or the backend's scratch. */
static void *workspace(const conv_plan *p, int i, float *ws)
{
    if (ws || p->ws[i] == 0)
        return ws;
    return sg_cuda_scratch(SG_SCRATCH_CONV, p->ws[i]);
}

int sg_cuda_conv2d_forward(float *ws, const float *x, float *y, const float *w,
                           const float *b, const sg_conv2d_geom *g)
{
    conv_plan *p = get_plan(g);
    if (!p)
        return sg_adderr("conv2d_forward");
    void *wsp = workspace(p, 0, ws);
    if (!wsp && p->ws[0])
        return -1;
    const float one = 1.0f, zero = 0.0f;
    SG_CUDNN(cudnnConvolutionForward(sg_cuda_cudnn(), &one, p->xd, x, p->wd, w, p->cd[0], p->fwd,
                                     wsp, p->ws[0], &zero, p->yd, y));
    if (b)
        return sg_cuda_k_bias_add(y, b, g->n, g->k, g->oh * g->ow);
    return 0;
}

int sg_cuda_conv2d_backward_data(float *ws, const float *dy, float *dx, const float *w,
                                 const sg_conv2d_geom *g)
{
    conv_plan *p = get_plan(g);
    if (!p)
        return sg_adderr("conv2d_backward_data");
    void *wsp = workspace(p, 1, ws);
    if (!wsp && p->ws[1])
        return -1;
    const float one = 1.0f, zero = 0.0f;
    SG_CUDNN(cudnnConvolutionBackwardData(sg_cuda_cudnn(), &one, p->wd, w, p->yd, dy, p->cd[1],
                                          p->bwd_data, wsp, p->ws[1], &zero, p->xd, dx));
    return 0;
}

int sg_cuda_conv2d_backward_params(float *ws, const float *x, const float *dy, float *dw,
                                   float *db, const sg_conv2d_geom *g)
{
    conv_plan *p = get_plan(g);
    if (!p)
        return sg_adderr("conv2d_backward_params");
    if (dw) {
        void *wsp = workspace(p, 2, ws);
        if (!wsp && p->ws[2])
            return -1;
        const float one = 1.0f;
        SG_CUDNN(cudnnConvolutionBackwardFilter(sg_cuda_cudnn(), &one, p->xd, x, p->yd, dy,
                                                p->cd[2], p->bwd_filter, wsp, p->ws[2], &one,
                                                p->wd, dw));
    }
    if (db)
        return sg_cuda_k_bias_grad(dy, db, g->n, g->k, g->oh * g->ow);
    return 0;
}
