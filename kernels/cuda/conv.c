/*
 * conv.c - 2-d convolution on the GPU through cuDNN.
 *
 * A plan per geometry (and per math mode: fp32 FMA or TF32 tensor cores, and
 * per deterministic setting) holds the cuDNN descriptors and the algorithm
 * chosen for each of the three passes. A pass's algorithm is chosen the
 * first time that pass runs on the geometry (an eval-only batch size never
 * pays for the backward searches):
 * - by default with cudnnFind*, which times every candidate (the fastest
 *   acceptable one wins; the choice may differ between processes, and
 *   cuDNN's fastest backward algorithms may use atomics);
 * - in deterministic mode (core.cuda.set_deterministic), or with
 *   SGDSA_CUDNN_HEURISTIC=1, with cuDNN's heuristics (cudnnGet*_v7), which
 *   rank the candidates without running them: the same choice in every
 *   process, so a run, or a run resumed from a checkpoint in a new process,
 *   repeats bit for bit. Deterministic mode also takes only candidates
 *   cuDNN marks CUDNN_DETERMINISTIC.
 * A failed Find, or one offering nothing acceptable, falls back to the
 * heuristics. In fp32 mode only candidates whose math type is
 * CUDNN_FMA_MATH are taken (CUDNN_DEFAULT_MATH permits TF32 on Ampere and
 * later). Candidates needing more workspace than SGDSA_CUDNN_WS_MB (default
 * 2048 MiB) are skipped.
 *
 * The bias is added by a custom kernel and its gradient is a deterministic
 * per-channel reduction (reduce.cu). backward_params accumulates: cuDNN's
 * backward-filter runs with beta = 1.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_impl.h"

enum { FWD, BWD_DATA, BWD_FILTER, NPASS };
static const char *const pass_name[NPASS] = { "forward", "backward-data", "backward-filter" };

typedef struct conv_plan {
    int64_t key[11];
    int tf32, det;
    cudnnTensorDescriptor_t xd, yd;
    cudnnFilterDescriptor_t wd;
    cudnnConvolutionDescriptor_t cd[NPASS];
    int algo[NPASS];       /* cudnnConvolution{Fwd,BwdData,BwdFilter}Algo_t */
    size_t ws[NPASS];      /* its workspace bytes */
    int chosen[NPASS];     /* algo[i] and ws[i] are set */
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

#define NALGO 16

/* One candidate of any pass (the three cuDNN perf structs have these fields). */
typedef struct {
    int algo;
    cudnnStatus_t status;
    size_t memory;
    cudnnDeterminism_t det;
    cudnnMathType_t math;
} cand;

#define TO_CANDS(perf, got, out)                                                     \
    for (int j_ = 0; j_ < (got); j_++)                                               \
        (out)[j_] = (cand){ (int)(perf)[j_].algo, (perf)[j_].status, (perf)[j_].memory, \
                            (perf)[j_].determinism, (perf)[j_].mathType }

/* The candidates of pass `pass`, fastest first: timed by cudnnFind* when
 * `find`, else ranked by the heuristics. Returns cuDNN's status. */
static cudnnStatus_t candidates(const conv_plan *p, int pass, int find, cand *out, int *got)
{
    cudnnHandle_t h = sg_cuda_cudnn();
    cudnnStatus_t s;
    *got = 0;
    if (pass == FWD) {
        cudnnConvolutionFwdAlgoPerf_t perf[NALGO];
        s = find ? cudnnFindConvolutionForwardAlgorithm(h, p->xd, p->wd, p->cd[FWD], p->yd,
                                                        NALGO, got, perf)
                 : cudnnGetConvolutionForwardAlgorithm_v7(h, p->xd, p->wd, p->cd[FWD], p->yd,
                                                          NALGO, got, perf);
        TO_CANDS(perf, *got, out);
    } else if (pass == BWD_DATA) {
        cudnnConvolutionBwdDataAlgoPerf_t perf[NALGO];
        s = find ? cudnnFindConvolutionBackwardDataAlgorithm(h, p->wd, p->yd, p->cd[BWD_DATA],
                                                             p->xd, NALGO, got, perf)
                 : cudnnGetConvolutionBackwardDataAlgorithm_v7(h, p->wd, p->yd, p->cd[BWD_DATA],
                                                               p->xd, NALGO, got, perf);
        TO_CANDS(perf, *got, out);
    } else {
        cudnnConvolutionBwdFilterAlgoPerf_t perf[NALGO];
        s = find ? cudnnFindConvolutionBackwardFilterAlgorithm(h, p->xd, p->yd,
                                                               p->cd[BWD_FILTER], p->wd, NALGO,
                                                               got, perf)
                 : cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, p->xd, p->yd,
                                                                 p->cd[BWD_FILTER], p->wd,
                                                                 NALGO, got, perf);
        TO_CANDS(perf, *got, out);
    }
    if (s != CUDNN_STATUS_SUCCESS)
        *got = 0;
    return s;
}
#undef TO_CANDS

/* The workspace bytes of algorithm `algo` for pass `pass` (with the math
 * type already set on the pass's descriptor): asked rather than taken from
 * the heuristics' estimate, as PyTorch does. */
static cudnnStatus_t ws_bytes(const conv_plan *p, int pass, int algo, size_t *out)
{
    cudnnHandle_t h = sg_cuda_cudnn();
    if (pass == FWD)
        return cudnnGetConvolutionForwardWorkspaceSize(h, p->xd, p->wd, p->cd[FWD], p->yd,
                                                       (cudnnConvolutionFwdAlgo_t)algo, out);
    if (pass == BWD_DATA)
        return cudnnGetConvolutionBackwardDataWorkspaceSize(
            h, p->wd, p->yd, p->cd[BWD_DATA], p->xd, (cudnnConvolutionBwdDataAlgo_t)algo, out);
    return cudnnGetConvolutionBackwardFilterWorkspaceSize(
        h, p->xd, p->yd, p->cd[BWD_FILTER], p->wd, (cudnnConvolutionBwdFilterAlgo_t)algo, out);
}

/* The first (fastest) candidate that ran, fits the workspace limit, is
 * deterministic when asked, and in fp32 mode uses plain FMA math. In fp32
 * mode nothing else is acceptable: CUDNN_DEFAULT_MATH and the tensor-op math
 * types permit TF32 on Ampere and later, so a candidate labelled with one of
 * them is skipped (the descriptor was set to CUDNN_FMA_MATH, so cuDNN offers
 * FMA candidates; when it offers none, the heuristics are asked). */
static int pick(const cand *c, int n, int want_det, int tf32, size_t limit)
{
    for (int i = 0; i < n; i++)
        if (c[i].status == CUDNN_STATUS_SUCCESS && c[i].memory <= limit &&
            (!want_det || c[i].det == CUDNN_DETERMINISTIC) && (tf32 || c[i].math == CUDNN_FMA_MATH))
            return i;
    return -1;
}

/* Choose pass `pass`'s algorithm for p (called with g_plan_lock held). */
static int choose(conv_plan *p, const sg_conv2d_geom *g, int pass)
{
    const size_t limit = ws_limit();
    cand c[NALGO];
    int got = 0, i = -1;
    if (!p->det && !heuristic_only()) {
        (void)candidates(p, pass, 1, c, &got);
        /* cudnnFind* tries allocations that may fail: do not leave their
         * error as the runtime's last error for the next launch check */
        (void)cudaGetLastError();
        i = pick(c, got, p->det, p->tf32, limit);
    }
    if (i < 0) {
        SG_CUDNN(candidates(p, pass, 0, c, &got));
        i = pick(c, got, p->det, p->tf32, limit);
    }
    if (i < 0)
        return sg_seterr("conv2d: cuDNN offers no %s%s%s algorithm within %zu MiB of "
                         "workspace (SGDSA_CUDNN_WS_MB) for input %lldx%lldx%lldx%lld, "
                         "weight %lldx%lldx%lldx%lld (cuda)", p->det ? "deterministic " : "",
                         p->tf32 ? "" : "FMA-only (no TF32) ", pass_name[pass], limit >> 20,
                         (long long)g->n, (long long)g->c, (long long)g->h, (long long)g->w,
                         (long long)g->k, (long long)g->c, (long long)g->kh, (long long)g->kw);
    SG_CUDNN(cudnnSetConvolutionMathType(p->cd[pass], c[i].math));
    size_t bytes = 0;
    SG_CUDNN(ws_bytes(p, pass, c[i].algo, &bytes));
    p->algo[pass] = c[i].algo;
    p->ws[pass] = bytes > c[i].memory ? bytes : c[i].memory;
    p->chosen[pass] = 1;
    return 0;
}

static void plan_free(conv_plan *p)
{
    if (!p)
        return;
    if (p->xd) cudnnDestroyTensorDescriptor(p->xd);
    if (p->yd) cudnnDestroyTensorDescriptor(p->yd);
    if (p->wd) cudnnDestroyFilterDescriptor(p->wd);
    for (int i = 0; i < NPASS; i++)
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
    for (int i = 0; i < NPASS; i++) {
        SG_CUDNN(cudnnCreateConvolutionDescriptor(&p->cd[i]));
        SG_CUDNN(cudnnSetConvolution2dDescriptor(p->cd[i], (int)g->ph, (int)g->pw, (int)g->sh,
                                                 (int)g->sw, 1, 1, CUDNN_CROSS_CORRELATION,
                                                 CUDNN_DATA_FLOAT));
        SG_CUDNN(cudnnSetConvolutionMathType(p->cd[i], p->tf32 ? CUDNN_TENSOR_OP_MATH
                                                               : CUDNN_FMA_MATH));
    }
    int on, ok, oh, ow;
    SG_CUDNN(cudnnGetConvolution2dForwardOutputDim(p->cd[FWD], p->xd, p->wd, &on, &ok, &oh, &ow));
    if (on != g->n || ok != g->k || oh != g->oh || ow != g->ow)
        return sg_seterr("conv2d: cuDNN output %dx%dx%dx%d differs from the geometry's "
                         "%lldx%lldx%lldx%lld (cuda)", on, ok, oh, ow, (long long)g->n,
                         (long long)g->k, (long long)g->oh, (long long)g->ow);
    SG_CUDNN(cudnnSetTensor4dDescriptor(p->yd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, on, ok, oh,
                                        ow));
    return 0;
}

/* The plan of g under the current settings, with the algorithms of the
 * passes in `passes` (bit 1 << pass) chosen. */
static conv_plan *get_plan(const sg_conv2d_geom *g, unsigned passes)
{
    if (sg_cuda_init() != 0)
        return NULL;
    const int64_t key[11] = {g->n, g->c, g->h, g->w, g->k, g->kh, g->kw, g->sh, g->sw, g->ph, g->pw};
    const int tf32 = sg_cuda_get_tf32(), det = sg_cuda_get_deterministic();
    pthread_mutex_lock(&g_plan_lock);
    conv_plan *p = g_plans;
    while (p && !(p->tf32 == tf32 && p->det == det && !memcmp(p->key, key, sizeof key)))
        p = p->next;
    if (!p) {
        p = calloc(1, sizeof *p);
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
    }
    for (int i = 0; i < NPASS; i++)
        if ((passes & (1u << i)) && !p->chosen[i] && choose(p, g, i) != 0) {
            pthread_mutex_unlock(&g_plan_lock);
            return NULL;
        }
    pthread_mutex_unlock(&g_plan_lock);
    return p;
}

size_t sg_cuda_conv2d_workspace_size(const sg_conv2d_geom *g)
{
    conv_plan *p = get_plan(g, (1u << NPASS) - 1);
    if (!p)
        return 0;
    size_t m = 0;
    for (int i = 0; i < NPASS; i++)
        if (p->ws[i] > m)
            m = p->ws[i];
    return (m + sizeof(float) - 1) / sizeof(float);
}

/* The workspace for pass i: the backend's scratch buffer, sized for the
 * algorithm chosen under the current settings. A caller's `ws` is not used:
 * its size cannot be checked against that algorithm (set_tf32 or
 * set_deterministic between sizing it and the call choose another one). */
static void *workspace(const conv_plan *p, int i, float *ws)
{
    (void)ws;
    if (p->ws[i] == 0)
        return NULL;
    return sg_cuda_scratch(SG_SCRATCH_CONV, p->ws[i]);
}

int sg_cuda_conv2d_forward(float *ws, const float *x, float *y, const float *w,
                           const float *b, const sg_conv2d_geom *g)
{
    conv_plan *p = get_plan(g, 1u << FWD);
    if (!p)
        return sg_adderr("conv2d_forward");
    void *wsp = workspace(p, FWD, ws);
    if (!wsp && p->ws[FWD])
        return -1;
    const float one = 1.0f, zero = 0.0f;
    SG_CUDNN(cudnnConvolutionForward(sg_cuda_cudnn(), &one, p->xd, x, p->wd, w, p->cd[FWD],
                                     (cudnnConvolutionFwdAlgo_t)p->algo[FWD], wsp, p->ws[FWD],
                                     &zero, p->yd, y));
    if (b)
        return sg_cuda_k_bias_add(y, b, g->n, g->k, g->oh * g->ow);
    return 0;
}

int sg_cuda_conv2d_backward_data(float *ws, const float *dy, float *dx, const float *w,
                                 const sg_conv2d_geom *g)
{
    conv_plan *p = get_plan(g, 1u << BWD_DATA);
    if (!p)
        return sg_adderr("conv2d_backward_data");
    void *wsp = workspace(p, BWD_DATA, ws);
    if (!wsp && p->ws[BWD_DATA])
        return -1;
    const float one = 1.0f, zero = 0.0f;
    SG_CUDNN(cudnnConvolutionBackwardData(sg_cuda_cudnn(), &one, p->wd, w, p->yd, dy,
                                          p->cd[BWD_DATA],
                                          (cudnnConvolutionBwdDataAlgo_t)p->algo[BWD_DATA], wsp,
                                          p->ws[BWD_DATA], &zero, p->xd, dx));
    return 0;
}

int sg_cuda_conv2d_backward_params(float *ws, const float *x, const float *dy, float *dw,
                                   float *db, const sg_conv2d_geom *g)
{
    if (dw) {
        conv_plan *p = get_plan(g, 1u << BWD_FILTER);
        if (!p)
            return sg_adderr("conv2d_backward_params");
        void *wsp = workspace(p, BWD_FILTER, ws);
        if (!wsp && p->ws[BWD_FILTER])
            return -1;
        const float one = 1.0f;
        SG_CUDNN(cudnnConvolutionBackwardFilter(
            sg_cuda_cudnn(), &one, p->xd, x, p->yd, dy, p->cd[BWD_FILTER],
            (cudnnConvolutionBwdFilterAlgo_t)p->algo[BWD_FILTER], wsp, p->ws[BWD_FILTER], &one,
            p->wd, dw));
    }
    if (db)
        return sg_cuda_k_bias_grad(dy, db, g->n, g->k, g->oh * g->ow);
    return 0;
}
