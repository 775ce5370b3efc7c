/*
 * conv.c - 2-d convolution on the GPU through cuDNN.
 *
 * A plan per geometry (and per math mode: fp32 FMA or TF32 tensor cores, and
 * per deterministic setting) holds the cuDNN descriptors and the algorithm
 * chosen for each of the three passes. A pass's algorithm is chosen the
 * first time that pass runs on the geometry (an eval-only batch size never
 * pays for the backward searches), among the candidates cuDNN's heuristics
 * list (cudnnGet*_v7):
 * - by default by timing each acceptable one as the pass runs (ours, not
 *   cudnnFind*): on the call's own tensors (the backward-filter pass on a
 *   scratch gradient, with beta = 1: it accumulates, and some algorithms pay
 *   for that), in the math type it reports, with a workspace from the
 *   caching pool (so that blocks the pool holds do not starve the
 *   large-workspace algorithms, as cudnnFind's own cudaMalloc would be);
 *   the fastest wins. The choice may differ between processes, and cuDNN's
 *   fastest backward algorithms may use atomics;
 * - in deterministic mode (core.cuda.set_deterministic), or with
 *   SGDSA_CUDNN_HEURISTIC=1, the heuristics' first acceptable candidate,
 *   without running any: the same choice in every process, so a run, or a
 *   run resumed from a checkpoint in a new process, repeats bit for bit.
 *   Deterministic mode also takes only candidates cuDNN marks
 *   CUDNN_DETERMINISTIC.
 * A search in which no candidate runs falls back to the heuristics. Math
 * types as PyTorch sets them: the descriptor says CUDNN_FMA_MATH in fp32
 * mode (only FMA candidates are taken: CUDNN_DEFAULT_MATH permits TF32 on
 * Ampere and later) and CUDNN_DEFAULT_MATH in TF32 mode (TF32 allowed, any
 * candidate but the FP16-converting CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION);
 * the chosen candidate's math type is set on the pass's descriptor.
 * Candidates needing more workspace than SGDSA_CUDNN_WS_MB (default 2048
 * MiB) are skipped. sg_cuda_conv2d_choices lists what was chosen.
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
    int math[NPASS];       /* its cudnnMathType_t */
    size_t ws[NPASS];      /* its workspace bytes */
    float ms[NPASS];       /* its timed milliseconds per call; -1: from the heuristics */
    int chosen[NPASS];     /* algo[i] and ws[i] are set */
    struct conv_plan *next;
} conv_plan;

/* The tensors of a pass: the one run and, while its algorithm is chosen,
 * the timed runs (they write y or dx: the call that follows overwrites
 * them). */
typedef struct {
    const float *x, *w, *dy;
    float *y, *dx;
} conv_io;

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

/* The math type a pass's descriptor is set to before the candidates are
 * listed: as PyTorch, FMA in fp32 mode, DEFAULT (TF32 permitted) in TF32 mode. */
static cudnnMathType_t base_math(const conv_plan *p)
{
    return p->tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
}

/* The candidates of pass `pass` in the heuristics' order (cudnnGet*_v7,
 * with the descriptor at its base math type). Returns cuDNN's status. */
static cudnnStatus_t candidates(const conv_plan *p, int pass, cand *out, int *got)
{
    cudnnHandle_t h = sg_cuda_cudnn();
    cudnnStatus_t s;
    *got = 0;
    s = cudnnSetConvolutionMathType(p->cd[pass], base_math(p));
    if (s != CUDNN_STATUS_SUCCESS)
        return s;
    if (pass == FWD) {
        cudnnConvolutionFwdAlgoPerf_t perf[NALGO];
        s = cudnnGetConvolutionForwardAlgorithm_v7(h, p->xd, p->wd, p->cd[FWD], p->yd, NALGO,
                                                   got, perf);
        TO_CANDS(perf, *got, out);
    } else if (pass == BWD_DATA) {
        cudnnConvolutionBwdDataAlgoPerf_t perf[NALGO];
        s = cudnnGetConvolutionBackwardDataAlgorithm_v7(h, p->wd, p->yd, p->cd[BWD_DATA], p->xd,
                                                        NALGO, got, perf);
        TO_CANDS(perf, *got, out);
    } else {
        cudnnConvolutionBwdFilterAlgoPerf_t perf[NALGO];
        s = cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, p->xd, p->yd, p->cd[BWD_FILTER],
                                                          p->wd, NALGO, got, perf);
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

/* Whether candidate c may be taken: cuDNN supports it, its workspace fits
 * the limit, it is deterministic when asked, and its math type is allowed:
 * in fp32 mode only CUDNN_FMA_MATH (CUDNN_DEFAULT_MATH and the tensor-op
 * types permit TF32 on Ampere and later); in TF32 mode anything but
 * CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION (down-conversion to FP16). */
static int acceptable(const cand *c, int want_det, int tf32, size_t limit)
{
    return c->status == CUDNN_STATUS_SUCCESS && c->memory <= limit &&
           (!want_det || c->det == CUDNN_DETERMINISTIC) &&
           (tf32 ? c->math != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION : c->math == CUDNN_FMA_MATH);
}

/* One run of candidate `algo` of pass `pass` on io's tensors (the
 * backward-filter pass into dw, accumulating as it runs). */
static cudnnStatus_t run_pass(const conv_plan *p, int pass, int algo, const conv_io *io,
                              float *dw, void *ws, size_t ws_bytes)
{
    cudnnHandle_t h = sg_cuda_cudnn();
    const float one = 1.0f, zero = 0.0f;
    if (pass == FWD)
        return cudnnConvolutionForward(h, &one, p->xd, io->x, p->wd, io->w, p->cd[FWD],
                                       (cudnnConvolutionFwdAlgo_t)algo, ws, ws_bytes, &zero,
                                       p->yd, io->y);
    if (pass == BWD_DATA)
        return cudnnConvolutionBackwardData(h, &one, p->wd, io->w, p->yd, io->dy, p->cd[BWD_DATA],
                                            (cudnnConvolutionBwdDataAlgo_t)algo, ws, ws_bytes,
                                            &zero, p->xd, io->dx);
    return cudnnConvolutionBackwardFilter(h, &one, p->xd, io->x, p->yd, io->dy, p->cd[BWD_FILTER],
                                          (cudnnConvolutionBwdFilterAlgo_t)algo, ws, ws_bytes,
                                          &one, p->wd, dw);
}

/* Time the acceptable candidates of c[0..n) as the pass runs; the index of
 * the fastest (its time in *best_ms), or -1 when none ran (nothing is
 * reported: the caller falls back to the heuristics). The workspace comes
 * from the caching pool: the largest any candidate needs, or, when that
 * cannot be had even after the pool gave its cached blocks back, the
 * largest that can (the candidates needing more are skipped). */
static int time_candidates(conv_plan *p, const sg_conv2d_geom *g, int pass, const cand *c,
                           int n, size_t limit, const conv_io *io, float *best_ms)
{
    size_t need[NALGO] = {0};
    int nn = 0;
    for (int i = 0; i < n; i++)
        if (acceptable(&c[i], 0, p->tf32, limit)) {
            size_t b = 0;
            if (cudnnSetConvolutionMathType(p->cd[pass], c[i].math) != CUDNN_STATUS_SUCCESS ||
                ws_bytes(p, pass, c[i].algo, &b) != CUDNN_STATUS_SUCCESS)
                b = c[i].memory;
            need[i] = b > c[i].memory ? b : c[i].memory;
            if (need[i] <= limit)
                nn++;
        }
    if (nn == 0)
        return -1;
    /* the workspace: the largest need that the pool can serve */
    void *ws = NULL;
    size_t have = 0;
    for (;;) {
        size_t want = 0;
        for (int i = 0; i < n; i++)
            if (acceptable(&c[i], 0, p->tf32, limit) && need[i] <= limit && need[i] > want &&
                (have == 0 || need[i] < have))
                want = need[i];
        if (want == 0)
            break;
        ws = sg_cuda_malloc(want);
        if (ws) {
            have = want;
            break;
        }
        have = want;  /* too big: try the next smaller need */
    }
    if (!ws)
        have = 0;
    float *dw = NULL;
    if (pass == BWD_FILTER) {
        const size_t wb = (size_t)g->k * g->c * g->kh * g->kw * sizeof(float);
        dw = sg_cuda_malloc(wb);
        if (!dw || cudaMemsetAsync(dw, 0, wb, sg_cuda_stream()) != cudaSuccess) {
            sg_cuda_free(dw);
            sg_cuda_free(ws);
            (void)cudaGetLastError();
            return -1;
        }
    }
    /* each candidate runs twice, each run timed: the faster counts (the
     * first may pay for loading its kernels); a candidate whose run fails
     * is out */
    cudaEvent_t e[3] = {NULL, NULL, NULL};
    int nev = 0;
    while (nev < 3 && cudaEventCreate(&e[nev]) == cudaSuccess)
        nev++;
    int best = -1;
    for (int i = 0; nev == 3 && i < n; i++) {
        if (!acceptable(&c[i], 0, p->tf32, limit) || need[i] > have)
            continue;
        if (cudnnSetConvolutionMathType(p->cd[pass], c[i].math) != CUDNN_STATUS_SUCCESS)
            continue;
        cudaStream_t st = sg_cuda_stream();
        int ok = cudaEventRecord(e[0], st) == cudaSuccess &&
                 run_pass(p, pass, c[i].algo, io, dw, ws, need[i]) == CUDNN_STATUS_SUCCESS &&
                 cudaEventRecord(e[1], st) == cudaSuccess &&
                 run_pass(p, pass, c[i].algo, io, dw, ws, need[i]) == CUDNN_STATUS_SUCCESS &&
                 cudaEventRecord(e[2], st) == cudaSuccess && sg_cuda_wait_event(e[2]) == cudaSuccess;
        float t1 = 0.0f, t2 = 0.0f;
        ok = ok && cudaEventElapsedTime(&t1, e[0], e[1]) == cudaSuccess &&
             cudaEventElapsedTime(&t2, e[1], e[2]) == cudaSuccess;
        if (!ok)
            continue;
        const float ms = t1 < t2 ? t1 : t2;
        if (best < 0 || ms < *best_ms) {
            best = i;
            *best_ms = ms;
        }
    }
    /* a failed candidate's error is not the next launch's */
    (void)cudaGetLastError();
    for (int k = 0; k < nev; k++)
        cudaEventDestroy(e[k]);
    sg_cuda_free(dw);
    sg_cuda_free(ws);
    return best;
}

/* Choose pass `pass`'s algorithm for p (called with g_plan_lock held); io:
 * the call's tensors, for the timed search (NULL: heuristics only). */
static int choose(conv_plan *p, const sg_conv2d_geom *g, int pass, const conv_io *io)
{
    const size_t limit = ws_limit();
    cand c[NALGO];
    int got = 0, i = -1;
    float ms = -1.0f;
    SG_CUDNN(candidates(p, pass, c, &got));
    if (io && !p->det && !heuristic_only())
        i = time_candidates(p, g, pass, c, got, limit, io, &ms);
    if (i < 0) {
        ms = -1.0f;
        for (int j = 0; j < got && i < 0; j++)
            if (acceptable(&c[j], p->det, p->tf32, limit))
                i = j;
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
    p->math[pass] = (int)c[i].math;
    p->ws[pass] = bytes > c[i].memory ? bytes : c[i].memory;
    p->ms[pass] = ms;
    p->chosen[pass] = 1;
    return 0;
}

/* The largest workspace an acceptable candidate of a pass not chosen yet
 * may need (called with g_plan_lock held). */
static size_t max_workspace(conv_plan *p, int pass)
{
    cand c[NALGO];
    int got = 0;
    size_t m = 0;
    const size_t limit = ws_limit();
    if (candidates(p, pass, c, &got) != CUDNN_STATUS_SUCCESS)
        return 0;
    for (int i = 0; i < got; i++)
        if (acceptable(&c[i], p->det, p->tf32, limit) && c[i].memory > m)
            m = c[i].memory;
    return m;
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
        SG_CUDNN(cudnnSetConvolutionMathType(p->cd[i], base_math(p)));
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
 * passes in `passes` (bit 1 << pass) chosen (timed on io's tensors, or by
 * the heuristics when io is NULL). */
static conv_plan *get_plan(const sg_conv2d_geom *g, unsigned passes, const conv_io *io)
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
        if ((passes & (1u << i)) && !p->chosen[i] && choose(p, g, i, io) != 0) {
            pthread_mutex_unlock(&g_plan_lock);
            return NULL;
        }
    pthread_mutex_unlock(&g_plan_lock);
    return p;
}

size_t sg_cuda_conv2d_workspace_size(const sg_conv2d_geom *g)
{
    conv_plan *p = get_plan(g, 0, NULL);
    if (!p)
        return 0;
    size_t m = 0;
    pthread_mutex_lock(&g_plan_lock);
    for (int i = 0; i < NPASS; i++) {
        size_t b = p->chosen[i] ? p->ws[i] : max_workspace(p, i);
        if (b > m)
            m = b;
    }
    pthread_mutex_unlock(&g_plan_lock);
    return (m + sizeof(float) - 1) / sizeof(float);
}

int sg_cuda_conv2d_choices(sg_cuda_conv_choice *out, int cap)
{
    int n = 0;
    pthread_mutex_lock(&g_plan_lock);
    for (conv_plan *p = g_plans; p; p = p->next)
        for (int i = 0; i < NPASS; i++) {
            if (!p->chosen[i])
                continue;
            if (n < cap) {
                sg_cuda_conv_choice *c = &out[n];
                memset(c, 0, sizeof *c);
                for (int k = 0; k < 11; k++)
                    c->key[k] = p->key[k];
                c->tf32 = p->tf32;
                c->deterministic = p->det;
                c->pass = pass_name[i];
                c->algo = p->algo[i];
                c->math = p->math[i];
                c->workspace = p->ws[i];
                c->ms = p->ms[i];
            }
            n++;
        }
    pthread_mutex_unlock(&g_plan_lock);
    return n;
}

int sg_cuda_conv2d_chosen(const sg_conv2d_geom *g, int pass, sg_cuda_conv_choice *out)
{
    if (pass < 0 || pass >= NPASS)
        return sg_seterr("conv2d_chosen: pass %d is not 0 (forward), 1 (backward-data) or 2 "
                         "(backward-filter)", pass);
    const int64_t key[11] = {g->n, g->c, g->h, g->w, g->k, g->kh, g->kw, g->sh, g->sw, g->ph, g->pw};
    const int tf32 = sg_cuda_get_tf32(), det = sg_cuda_get_deterministic();
    int rc = 1;
    pthread_mutex_lock(&g_plan_lock);
    for (conv_plan *p = g_plans; p; p = p->next)
        if (p->tf32 == tf32 && p->det == det && !memcmp(p->key, key, sizeof key) &&
            p->chosen[pass]) {
            memset(out, 0, sizeof *out);
            memcpy(out->key, key, sizeof key);
            out->tf32 = tf32;
            out->deterministic = det;
            out->pass = pass_name[pass];
            out->algo = p->algo[pass];
            out->math = p->math[pass];
            out->workspace = p->ws[pass];
            out->ms = p->ms[pass];
            rc = 0;
            break;
        }
    pthread_mutex_unlock(&g_plan_lock);
    return rc;
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

/* Run `pass` of operation op on io's tensors (backward-filter into dw) with
 * the algorithm the plan chose and its workspace. */
static int run_chosen(const sg_conv2d_geom *g, int pass, const conv_io *io, float *dw, float *ws,
                      const char *op)
{
    static const char *const call[NPASS] = {"cudnnConvolutionForward",
                                            "cudnnConvolutionBackwardData",
                                            "cudnnConvolutionBackwardFilter"};
    conv_plan *p = get_plan(g, 1u << pass, io);
    if (!p)
        return sg_adderr("%s", op);
    void *wsp = workspace(p, pass, ws);
    if (!wsp && p->ws[pass])
        return -1;
    sg_cuda_count_launch();
    cudnnStatus_t st = run_pass(p, pass, p->algo[pass], io, dw, wsp, p->ws[pass]);
    if (st != CUDNN_STATUS_SUCCESS)
        return sg_cuda_fail_dnn(call[pass], st, __FILE__, __LINE__);
    return 0;
}

int sg_cuda_conv2d_forward(float *ws, const float *x, float *y, const float *w,
                           const float *b, const sg_conv2d_geom *g)
{
    const conv_io io = {x, w, NULL, y, NULL};
    if (run_chosen(g, FWD, &io, NULL, ws, "conv2d_forward") != 0)
        return -1;
    if (b)
        return sg_cuda_k_bias_add(y, b, g->n, g->k, g->oh * g->ow);
    return 0;
}

int sg_cuda_conv2d_backward_data(float *ws, const float *dy, float *dx, const float *w,
                                 const sg_conv2d_geom *g)
{
    const conv_io io = {NULL, w, dy, NULL, dx};
    return run_chosen(g, BWD_DATA, &io, NULL, ws, "conv2d_backward_data");
}

int sg_cuda_conv2d_backward_params(float *ws, const float *x, const float *dy, float *dw,
                                   float *db, const sg_conv2d_geom *g)
{
    const conv_io io = {x, NULL, dy, NULL, NULL};
    if (dw && run_chosen(g, BWD_FILTER, &io, dw, ws, "conv2d_backward_params") != 0)
        return -1;
    if (db)
        return sg_cuda_k_bias_grad(dy, db, g->n, g->k, g->oh * g->ow);
    return 0;
}
