/*
 * emu_dnn.cpp - the cuDNN 9 functions the CUDA backend calls, emulated for
 * the CUDA emulator: 4-d NCHW float tensors and filters, 2-d cross-
 * correlation (forward, backward data, backward filter) and spatial batch
 * normalization, computed as plain reference loops with double accumulators
 * queued on the handle's stream.
 *
 * Strict by design, to catch misuse: every handle and descriptor must be live
 * and set; shapes must agree exactly as cuDNN requires; every data pointer,
 * and the workspace an algorithm needs, must lie in device memory of the
 * size its descriptor implies and be 16-byte aligned (cuDNN's vectorized
 * kernels load 16 bytes at a time; a view 4 bytes off works on its
 * heuristics' test buffers and faults or is refused on ours:
 * CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER); outputs must not overlap
 * inputs or the workspace (which each algorithm overwrites with garbage, as
 * a GPU's would).
 * Violations are reported through emu::complain and answered with
 * CUDNN_STATUS_BAD_PARAM. What the emulator does not implement (other
 * formats, types, CUDNN_CONVOLUTION mode, other batch-norm modes) answers
 * CUDNN_STATUS_NOT_SUPPORTED.
 *
 * Algorithms (plausible, fake, and deliberately different so the backend's
 * choice logic is exercised), with workspace bytes:
 *   forward:         IMPLICIT_PRECOMP_GEMM (deterministic, 4*K*C*R*S),
 *                    IMPLICIT_GEMM (deterministic, 0);
 *   backward data:   ALGO_1 (deterministic, 4*K*C*R*S),
 *                    ALGO_0 (non-deterministic, 0);
 *   backward filter: ALGO_0 (non-deterministic, 0),
 *                    ALGO_1 (deterministic, 4*C*R*S*OH*OW),
 *                    ALGO_3 (non-deterministic, 8*K*C*R*S).
 * The heuristics (Get*_v7) list them in that order with the descriptor's
 * math type; Find* also lists each with CUDNN_DEFAULT_MATH (cuDNN tries both
 * when they differ), sorted by a fake time in which non-deterministic
 * algorithms and, under an FMA descriptor, CUDNN_DEFAULT_MATH are faster.
 * Under a descriptor that permits tensor cores (DEFAULT, TENSOR_OP) both
 * also offer, first, the first algorithm with
 * CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION (FP16 down-conversion: the fastest,
 * never right for float32 training). Find* allocates each candidate's
 * workspace itself, as cuDNN does: a candidate needing more than the free
 * device memory is reported CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED
 * (so memory a caching allocator holds starves it). Both end with an FFT
 * entry whose status is CUDNN_STATUS_NOT_SUPPORTED.
 *
 * Running a convolution advances its stream's fake clock (timing events
 * read it) by a cost that follows the same speeds: tensor-core math types
 * are faster, and backward-filter ALGO_0, the fastest when it overwrites,
 * is slow when it accumulates (beta != 0), as a real algorithm that needs
 * an extra pass for it would be.
 */
#include <cudnn.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <cmath>
#include <initializer_list>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

#include "emu_internal.h"

struct cudnnContext { bool set = true; cudaStream_t stream = nullptr; };
struct cudnnTensorStruct { bool set = false; int n, c, h, w; };
struct cudnnFilterStruct { bool set = false; int k, c, r, s; };
struct cudnnConvolutionStruct {
    bool set = false;
    int ph, pw, sh, sw, dh, dw;
    cudnnMathType_t math = CUDNN_DEFAULT_MATH;
};

namespace {

const cudnnStatus_t OK = CUDNN_STATUS_SUCCESS, BAD = CUDNN_STATUS_BAD_PARAM,
                    UNSUPPORTED = CUDNN_STATUS_NOT_SUPPORTED;

/* Live handles and descriptors: a destroyed or foreign one is caught
 * instead of read. */
std::mutex g_lock;
std::unordered_set<const void *> g_live;

bool is_live(const void *p)
{
    std::lock_guard<std::mutex> l(g_lock);
    return g_live.count(p) != 0;
}

template <class T> cudnnStatus_t create(const char *fn, T **out)
{
    if (!out) {
        emu::complain("%s: NULL output pointer", fn);
        return BAD;
    }
    T *p = new T();
    std::lock_guard<std::mutex> l(g_lock);
    g_live.insert(p);
    *out = p;
    return OK;
}

template <class T> cudnnStatus_t destroy(const char *fn, T *p)
{
    if (!p)
        return OK;
    bool was;
    {
        std::lock_guard<std::mutex> l(g_lock);
        was = g_live.erase(p) != 0;
    }
    if (!was) {
        emu::complain("%s: %p is not a live object (destroyed twice?)", fn, (const void *)p);
        return BAD;
    }
    delete p;
    return OK;
}

template <class T> bool usable(const char *fn, const std::string &what, const T *p)
{
    if (!p)
        emu::complain("%s: %s is NULL", fn, what.c_str());
    else if (!is_live(p))
        emu::complain("%s: %s %p was destroyed or never created", fn, what.c_str(),
                      (const void *)p);
    else if (!p->set)
        emu::complain("%s: %s was never set", fn, what.c_str());
    else
        return true;
    return false;
}

std::string dims(int a, int b, int c, int d)
{
    return std::to_string(a) + "x" + std::to_string(b) + "x" + std::to_string(c) + "x" +
           std::to_string(d);
}
std::string dims(const cudnnTensorStruct *t) { return dims(t->n, t->c, t->h, t->w); }
std::string dims(const cudnnFilterStruct *f) { return dims(f->k, f->c, f->r, f->s); }

/* Each pointer must cover its bytes of one device allocation, 16-byte aligned. */
struct Buf { const char *name; const void *p; size_t bytes; };

bool g_misaligned;  /* the last on_device failure was an alignment (status to return) */

bool on_device(const char *fn, std::initializer_list<Buf> bufs)
{
    g_misaligned = false;
    for (const Buf &b : bufs) {
        if (!b.p || !emu::is_device(b.p, b.bytes)) {
            emu::complain("%s: %s %p is not device memory of %zu bytes", fn, b.name, b.p,
                          b.bytes);
            return false;
        }
        if ((uintptr_t)b.p % 16 != 0) {
            emu::complain("%s: %s %p is not 16-byte aligned (%zu bytes past a 16-byte boundary)",
                          fn, b.name, b.p, (size_t)((uintptr_t)b.p % 16));
            g_misaligned = true;
            return false;
        }
    }
    return true;
}

/* The status of a failed check: misaligned pointers have their own. */
cudnnStatus_t bad() { return g_misaligned ? CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER : BAD; }

/* Written buffer `out` must not overlap any of `ins`. */
bool disjoint(const char *fn, const Buf &out, std::initializer_list<Buf> ins)
{
    const uintptr_t o = (uintptr_t)out.p;
    for (const Buf &b : ins) {
        const uintptr_t p = (uintptr_t)b.p;
        if (o < p + b.bytes && p < o + out.bytes) {
            emu::complain("%s: %s [%p, +%zu bytes) overlaps %s [%p, +%zu bytes)", fn, out.name,
                          out.p, out.bytes, b.name, b.p, b.bytes);
            return false;
        }
    }
    return true;
}

bool scalars(const char *fn, std::initializer_list<const void *> ps)
{
    for (const void *p : ps)
        if (!p) {
            emu::complain("%s: NULL alpha/beta scaling pointer", fn);
            return false;
        }
    return true;
}

bool handle_ok(const char *fn, cudnnHandle_t h) { return usable(fn, "handle", h); }

/* A descriptor given to a setter: live (it need not have been set yet). */
bool settable(const char *fn, const void *d)
{
    if (d && is_live(d))
        return true;
    emu::complain("%s: descriptor %p is not live", fn, d);
    return false;
}

/* dst = alpha*v + beta*dst, not reading dst when beta is 0 (it may hold NaN). */
inline void put(float *dst, double v, float alpha, float beta)
{
    *dst = beta == 0.0f ? (float)(alpha * v) : (float)(alpha * v + (double)beta * *dst);
}

/* ---- convolution ---- */

enum Pass { FWD, BWD_DATA, BWD_FILTER };

struct Geo {
    int n, c, h, w, k, r, s, oh, ow, ph, pw, sh, sw, dh, dw;
    cudnnMathType_t math;
    size_t xbytes() const { return 4 * (size_t)n * c * h * w; }
    size_t wbytes() const { return 4 * (size_t)k * c * r * s; }
    size_t ybytes() const { return 4 * (size_t)n * k * oh * ow; }
};

/* One output extent, or 0 when the dilated filter exceeds the padded input. */
int out_dim(int in, int pad, int k, int stride, int dil)
{
    const long long e = (long long)in + 2LL * pad - (long long)dil * (k - 1) - 1;
    return e < 0 ? 0 : (int)(e / stride + 1);
}

bool out_dims(const char *fn, const cudnnConvolutionStruct *cd, const cudnnTensorStruct *x,
              const cudnnFilterStruct *w, const char *xn, const char *wn, int *oh, int *ow)
{
    if (x->c != w->c) {
        emu::complain("%s: %s descriptor %s has %d channels but %s %s has %d", fn, xn,
                      dims(x).c_str(), x->c, wn, dims(w).c_str(), w->c);
        return false;
    }
    *oh = out_dim(x->h, cd->ph, w->r, cd->sh, cd->dh);
    *ow = out_dim(x->w, cd->pw, w->s, cd->sw, cd->dw);
    if (*oh < 1 || *ow < 1) {
        emu::complain("%s: %s %s dilated by %d,%d does not fit %s %s padded by %d,%d", fn, wn,
                      dims(w).c_str(), cd->dh, cd->dw, xn, dims(x).c_str(), cd->ph, cd->pw);
        return false;
    }
    return true;
}

/* Checks the descriptors of a pass (x/dx, w/dw, conv, y/dy) and their
 * agreement; fills g. */
cudnnStatus_t geometry(const char *fn, Pass p, cudnnTensorDescriptor_t xd,
                       cudnnFilterDescriptor_t wd, cudnnConvolutionDescriptor_t cd,
                       cudnnTensorDescriptor_t yd, Geo *g)
{
    const char *xn = p == BWD_DATA ? "dx" : "x", *wn = p == BWD_FILTER ? "dw" : "w",
               *yn = p == FWD ? "y" : "dy";
    if (!usable(fn, std::string(xn) + " descriptor", xd) ||
        !usable(fn, std::string(wn) + " descriptor", wd) ||
        !usable(fn, "convolution descriptor", cd) ||
        !usable(fn, std::string(yn) + " descriptor", yd))
        return BAD;
    int oh, ow;
    if (!out_dims(fn, cd, xd, wd, xn, wn, &oh, &ow))
        return BAD;
    if (yd->n != xd->n || yd->c != wd->k || yd->h != oh || yd->w != ow) {
        emu::complain("%s: %s descriptor %s but %s %s with %s %s, pad %d,%d stride %d,%d "
                      "dilation %d,%d gives %s", fn, yn, dims(yd).c_str(), xn,
                      dims(xd).c_str(), wn, dims(wd).c_str(), cd->ph, cd->pw, cd->sh, cd->sw,
                      cd->dh, cd->dw, dims(xd->n, wd->k, oh, ow).c_str());
        return BAD;
    }
    *g = Geo{xd->n, xd->c, xd->h, xd->w, wd->k, wd->r, wd->s, oh, ow,
             cd->ph, cd->pw, cd->sh, cd->sw, cd->dh, cd->dw, cd->math};
    return OK;
}

struct Algo { int algo; cudnnDeterminism_t det; size_t ws; double speed; };

/* The algorithms of pass p, in heuristic order (speed: relative fake time). */
std::vector<Algo> algos(Pass p, const Geo &g)
{
    const size_t kcrs = g.wbytes();
    if (p == FWD)
        return {{CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, CUDNN_DETERMINISTIC, kcrs, 1.0},
                {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, CUDNN_DETERMINISTIC, 0, 1.4}};
    if (p == BWD_DATA)
        return {{CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, CUDNN_DETERMINISTIC, kcrs, 1.2},
                {CUDNN_CONVOLUTION_BWD_DATA_ALGO_0, CUDNN_NON_DETERMINISTIC, 0, 1.0}};
    return {{CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0, CUDNN_NON_DETERMINISTIC, 0, 1.0},
            {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, CUDNN_DETERMINISTIC,
             4 * (size_t)g.c * g.r * g.s * g.oh * g.ow, 1.3},
            {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3, CUDNN_NON_DETERMINISTIC, 2 * kcrs, 1.1}};
}

const int algo_count[] = {CUDNN_CONVOLUTION_FWD_ALGO_COUNT, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT,
                          CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT};
const int fft_algo[] = {CUDNN_CONVOLUTION_FWD_ALGO_FFT, CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT,
                        CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT};

cudnnStatus_t ws_size(const char *fn, Pass p, const Geo &g, int algo, size_t *out)
{
    if (algo < 0 || algo >= algo_count[p]) {
        emu::complain("%s: algo %d outside the enum (0..%d)", fn, algo, algo_count[p] - 1);
        return BAD;
    }
    for (const Algo &a : algos(p, g))
        if (a.algo == algo) {
            *out = a.ws;
            return OK;
        }
    emu::complain("%s: algo %d is not supported (not offered by the heuristics or Find)", fn,
                  algo);
    return UNSUPPORTED;
}

struct Entry {
    int algo;
    cudnnStatus_t status;
    float time;
    size_t memory;
    cudnnDeterminism_t det;
    cudnnMathType_t math;
};

/* The fake base time of a pass: fixed cost plus its multiply-adds. */
double base_ms(const Geo &g)
{
    return 1e-3 + 2e-10 * g.n * g.k * g.oh * g.ow * (double)g.c * g.r * g.s;
}

/* Relative speed of a math type (tensor cores are faster). */
double math_speed(cudnnMathType_t m)
{
    return m == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION ? 0.4 : m == CUDNN_FMA_MATH ? 1.0 : 0.5;
}

/* The fake cost of running algo for pass p with the descriptor's math type
 * and blending factor beta. */
double run_ms(Pass p, const Geo &g, int algo, float beta)
{
    double speed = 1.0;
    for (const Algo &a : algos(p, g))
        if (a.algo == algo)
            speed = a.speed;
    if (p == BWD_FILTER && algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0 && beta != 0.0f)
        speed *= 1.6;
    return base_ms(g) * speed * math_speed(g.math);
}

/* Get*_v7 and Find*: check, rank, and fill the perf array (of any pass's
 * perf struct: they share their fields). */
template <class Perf>
cudnnStatus_t report(const char *fn, Pass p, bool find, cudnnHandle_t h,
                     cudnnTensorDescriptor_t xd, cudnnFilterDescriptor_t wd,
                     cudnnConvolutionDescriptor_t cd, cudnnTensorDescriptor_t yd, int req,
                     int *ret, Perf *perf)
{
    Geo g;
    if (!handle_ok(fn, h))
        return BAD;
    if (cudnnStatus_t s = geometry(fn, p, xd, wd, cd, yd, &g))
        return s;
    if (req <= 0 || !ret || !perf) {
        emu::complain("%s: requestedAlgoCount %d, returnedAlgoCount %p, perfResults %p: need a "
                      "positive count and non-NULL pointers", fn, req, (void *)ret, (void *)perf);
        return BAD;
    }
    /* Find runs every candidate (on buffers of its own) and blocks the host */
    if (find && cudaStreamSynchronize(h->stream) != cudaSuccess)
        return CUDNN_STATUS_EXECUTION_FAILED_CUDART;
    const double base = base_ms(g);
    std::vector<Entry> e;
    const bool tensor_ops = g.math == CUDNN_DEFAULT_MATH || g.math == CUDNN_TENSOR_OP_MATH;
    if (tensor_ops) {
        const Algo a = algos(p, g)[0];
        e.push_back({a.algo, OK, find ? (float)(base * a.speed * 0.4) : -1.0f, a.ws, a.det,
                     CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION});
    }
    for (const Algo &a : algos(p, g)) {
        e.push_back({a.algo, OK, find ? (float)(base * a.speed) : -1.0f, a.ws, a.det, g.math});
        if (find && g.math != CUDNN_DEFAULT_MATH)
            e.push_back({a.algo, OK,
                         (float)(base * a.speed * (g.math == CUDNN_FMA_MATH ? 0.9 : 1.1)), a.ws,
                         a.det, CUDNN_DEFAULT_MATH});
    }
    if (find) {
        /* Find allocates each candidate's workspace itself */
        const size_t avail = emu::free_bytes();
        for (Entry &x : e)
            if (x.memory > avail) {
                x.status = CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED;
                x.time = -1.0f;
            }
        std::stable_sort(e.begin(), e.end(), [](const Entry &a, const Entry &b) {
            if ((a.status == OK) != (b.status == OK))
                return a.status == OK;
            return a.time < b.time;
        });
    }
    e.push_back({fft_algo[p], UNSUPPORTED, -1.0f, 0, CUDNN_NON_DETERMINISTIC, g.math});
    const int n = std::min(req, (int)e.size());
    for (int i = 0; i < n; i++) {
        Perf q{};
        q.algo = (decltype(q.algo))e[i].algo;
        q.status = e[i].status;
        q.time = e[i].time;
        q.memory = e[i].memory;
        q.determinism = e[i].det;
        q.mathType = e[i].math;
        perf[i] = q;
    }
    *ret = n;
    return OK;
}

cudnnStatus_t workspace_query(const char *fn, Pass p, cudnnHandle_t h,
                              cudnnTensorDescriptor_t xd, cudnnFilterDescriptor_t wd,
                              cudnnConvolutionDescriptor_t cd, cudnnTensorDescriptor_t yd,
                              int algo, size_t *out)
{
    Geo g;
    if (!handle_ok(fn, h))
        return BAD;
    if (cudnnStatus_t s = geometry(fn, p, xd, wd, cd, yd, &g))
        return s;
    if (!out) {
        emu::complain("%s: NULL sizeInBytes", fn);
        return BAD;
    }
    return ws_size(fn, p, g, algo, out);
}

/* What a convolution call checked and captured (cost: its fake time). */
struct Call { Geo g; float alpha, beta; size_t ws; double cost; };

cudnnStatus_t conv_call(const char *fn, Pass p, cudnnHandle_t h, const void *alpha,
                        const void *beta, cudnnTensorDescriptor_t xd,
                        cudnnFilterDescriptor_t wd, cudnnConvolutionDescriptor_t cd,
                        cudnnTensorDescriptor_t yd, int algo, void *ws, size_t ws_bytes,
                        Call *c)
{
    if (!handle_ok(fn, h))
        return BAD;
    if (cudnnStatus_t s = geometry(fn, p, xd, wd, cd, yd, &c->g))
        return s;
    if (!scalars(fn, {alpha, beta}))
        return BAD;
    if (cudnnStatus_t s = ws_size(fn, p, c->g, algo, &c->ws))
        return s;
    if (c->ws > ws_bytes) {
        emu::complain("%s: algo %d needs %zu bytes of workspace for %s, got "
                      "workSpaceSizeInBytes %zu", fn, algo, c->ws, dims(xd).c_str(), ws_bytes);
        return BAD;
    }
    if (c->ws && !on_device(fn, {{"workSpace", ws, c->ws}}))
        return bad();
    c->alpha = *(const float *)alpha;
    c->beta = *(const float *)beta;
    c->cost = run_ms(p, c->g, algo, c->beta);
    return OK;
}

/* f(x index, w index, y index) for every tap of the cross-correlation. */
template <class F> void taps(const Geo &g, F f)
{
    for (int n = 0; n < g.n; n++)
        for (int k = 0; k < g.k; k++)
            for (int oh = 0; oh < g.oh; oh++)
                for (int ow = 0; ow < g.ow; ow++) {
                    const size_t yi = (((size_t)n * g.k + k) * g.oh + oh) * g.ow + ow;
                    for (int c = 0; c < g.c; c++)
                        for (int r = 0; r < g.r; r++) {
                            const int ih = oh * g.sh - g.ph + r * g.dh;
                            if (ih < 0 || ih >= g.h)
                                continue;
                            for (int s = 0; s < g.s; s++) {
                                const int iw = ow * g.sw - g.pw + s * g.dw;
                                if (iw < 0 || iw >= g.w)
                                    continue;
                                f((((size_t)n * g.c + c) * g.h + ih) * g.w + iw,
                                  (((size_t)k * g.c + c) * g.r + r) * g.s + s, yi);
                            }
                        }
                }
}

/* Checks a pass's buffers (inputs a and b, output out, the workspace: all
 * device memory, out and the workspace overlapping nothing else) and queues
 * it: the workspace is clobbered (the algorithm uses it), then the result
 * accumulated in doubles is blended into out. */
template <class F>
cudnnStatus_t queue(const char *fn, cudnnHandle_t h, const Call &c, void *ws, Buf a, Buf b,
                    Buf out, F accumulate)
{
    const Buf bws{"workSpace", ws, c.ws};
    if (!on_device(fn, {a, b, out}) || !disjoint(fn, out, {a, b, bws}) ||
        !disjoint(fn, bws, {a, b}))
        return bad();
    float *dst = (float *)out.p;
    size_t count = out.bytes / 4;
    emu::enqueue(h->stream, [c, ws, dst, count, accumulate]() {
        if (c.ws)
            std::memset(ws, 0xff, c.ws);
        std::vector<double> acc(count);
        accumulate(acc.data());
        for (size_t i = 0; i < count; i++)
            put(dst + i, acc[i], c.alpha, c.beta);
    }, c.cost);
    return OK;
}

/* ---- batch normalization ---- */

struct Bn {
    int n, c, hw;
    size_t xbytes() const { return 4 * (size_t)n * c * hw; }
    size_t pbytes() const { return 4 * (size_t)c; }
    size_t at(int i, int ch, int j) const { return ((size_t)i * c + ch) * hw + j; }
};

/* Checks handle, mode, epsilon, x and the descriptors that must equal it,
 * and the 1xCx1x1 parameter descriptor; fills b. */
cudnnStatus_t bn_check(const char *fn, cudnnHandle_t h, cudnnBatchNormMode_t mode, double eps,
                       cudnnTensorDescriptor_t xd,
                       std::initializer_list<std::pair<const char *, cudnnTensorDescriptor_t>> same,
                       cudnnTensorDescriptor_t pd, Bn *b)
{
    if (!handle_ok(fn, h))
        return BAD;
    if (mode != CUDNN_BATCHNORM_SPATIAL) {
        const bool known = mode == CUDNN_BATCHNORM_PER_ACTIVATION ||
                           mode == CUDNN_BATCHNORM_SPATIAL_PERSISTENT;
        emu::complain("%s: batch-norm mode %d %s", fn, (int)mode,
                      known ? "not emulated (only CUDNN_BATCHNORM_SPATIAL)" : "invalid");
        return known ? UNSUPPORTED : BAD;
    }
    if (!(eps >= CUDNN_BN_MIN_EPSILON)) {
        emu::complain("%s: epsilon %g below CUDNN_BN_MIN_EPSILON %g", fn, eps,
                      (double)CUDNN_BN_MIN_EPSILON);
        return BAD;
    }
    if (!usable(fn, "x descriptor", xd))
        return BAD;
    for (const auto &d : same) {
        if (!usable(fn, std::string(d.first) + " descriptor", d.second))
            return BAD;
        const cudnnTensorStruct *t = d.second;
        if (t->n != xd->n || t->c != xd->c || t->h != xd->h || t->w != xd->w) {
            emu::complain("%s: %s descriptor %s differs from x descriptor %s", fn, d.first,
                          dims(t).c_str(), dims(xd).c_str());
            return BAD;
        }
    }
    if (!usable(fn, "scale/bias/mean/variance descriptor", pd))
        return BAD;
    if (pd->n != 1 || pd->c != xd->c || pd->h != 1 || pd->w != 1) {
        emu::complain("%s: scale/bias/mean/variance descriptor %s, but spatial mode with x %s "
                      "needs %s", fn, dims(pd).c_str(), dims(xd).c_str(),
                      dims(1, xd->c, 1, 1).c_str());
        return BAD;
    }
    *b = Bn{xd->n, xd->c, xd->h * xd->w};
    return OK;
}

bool both_or_neither(const char *fn, const char *an, const void *a, const char *bn,
                     const void *b)
{
    if (!a == !b)
        return true;
    emu::complain("%s: %s %p and %s %p must both be NULL or both be set", fn, an, a, bn, b);
    return false;
}

/* Per-channel mean and biased variance of x. */
void moments(const Bn &b, const float *x, int ch, double *mean, double *var)
{
    const double m = (double)b.n * b.hw;
    double s = 0, q = 0;
    for (int i = 0; i < b.n; i++)
        for (int j = 0; j < b.hw; j++)
            s += x[b.at(i, ch, j)];
    *mean = s / m;
    for (int i = 0; i < b.n; i++)
        for (int j = 0; j < b.hw; j++) {
            const double d = x[b.at(i, ch, j)] - *mean;
            q += d * d;
        }
    *var = q / m;
}

}  // namespace

extern "C" {

size_t cudnnGetVersion(void) { return CUDNN_VERSION; }

const char *cudnnGetErrorString(cudnnStatus_t s)
{
    switch ((int)s) {
#define NAME(x) case x: return #x;
        NAME(CUDNN_STATUS_SUCCESS)
        NAME(CUDNN_STATUS_NOT_INITIALIZED)
        NAME(CUDNN_STATUS_SUBLIBRARY_VERSION_MISMATCH)
        NAME(CUDNN_STATUS_SERIALIZATION_VERSION_MISMATCH)
        NAME(CUDNN_STATUS_DEPRECATED)
        NAME(CUDNN_STATUS_LICENSE_ERROR)
        NAME(CUDNN_STATUS_RUNTIME_IN_PROGRESS)
        NAME(CUDNN_STATUS_RUNTIME_FP_OVERFLOW)
        NAME(CUDNN_STATUS_SUBLIBRARY_LOADING_FAILED)
        NAME(CUDNN_STATUS_BAD_PARAM)
        NAME(CUDNN_STATUS_INVALID_VALUE)
        NAME(CUDNN_STATUS_BAD_PARAM_NULL_POINTER)
        NAME(CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER)
        NAME(CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED)
        NAME(CUDNN_STATUS_BAD_PARAM_OUT_OF_BOUND)
        NAME(CUDNN_STATUS_BAD_PARAM_SIZE_INSUFFICIENT)
        NAME(CUDNN_STATUS_BAD_PARAM_STREAM_MISMATCH)
        NAME(CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH)
        NAME(CUDNN_STATUS_BAD_PARAM_DUPLICATED_ENTRIES)
        NAME(CUDNN_STATUS_BAD_PARAM_ATTRIBUTE_TYPE)
        NAME(CUDNN_STATUS_BAD_PARAM_CUDA_GRAPH_MISMATCH)
        NAME(CUDNN_STATUS_BAD_PARAM_DESCRIPTOR_TYPE)
        NAME(CUDNN_STATUS_NOT_SUPPORTED)
        NAME(CUDNN_STATUS_NOT_SUPPORTED_GRAPH_PATTERN)
        NAME(CUDNN_STATUS_NOT_SUPPORTED_SHAPE)
        NAME(CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE)
        NAME(CUDNN_STATUS_NOT_SUPPORTED_LAYOUT)
        NAME(CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDA_DRIVER)
        NAME(CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDART)
        NAME(CUDNN_STATUS_NOT_SUPPORTED_ARCH_MISMATCH)
        NAME(CUDNN_STATUS_NOT_SUPPORTED_RUNTIME_PREREQUISITE_MISSING)
        NAME(CUDNN_STATUS_NOT_SUPPORTED_SUBLIBRARY_UNAVAILABLE)
        NAME(CUDNN_STATUS_NOT_SUPPORTED_SHARED_MEMORY_INSUFFICIENT)
        NAME(CUDNN_STATUS_NOT_SUPPORTED_PADDING)
        NAME(CUDNN_STATUS_NOT_SUPPORTED_BAD_LAUNCH_PARAM)
        NAME(CUDNN_STATUS_NOT_SUPPORTED_CUDA_GRAPH_NATIVE_API)
        NAME(CUDNN_STATUS_NOT_SUPPORTED_INVALID_DYNAMIC_SHAPE)
        NAME(CUDNN_STATUS_INTERNAL_ERROR)
        NAME(CUDNN_STATUS_INTERNAL_ERROR_COMPILATION_FAILED)
        NAME(CUDNN_STATUS_INTERNAL_ERROR_UNEXPECTED_VALUE)
        NAME(CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED)
        NAME(CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED)
        NAME(CUDNN_STATUS_INTERNAL_ERROR_BAD_LAUNCH_PARAM)
        NAME(CUDNN_STATUS_INTERNAL_ERROR_TEXTURE_CREATION_FAILED)
        NAME(CUDNN_STATUS_EXECUTION_FAILED)
        NAME(CUDNN_STATUS_EXECUTION_FAILED_CUDA_DRIVER)
        NAME(CUDNN_STATUS_EXECUTION_FAILED_CUBLAS)
        NAME(CUDNN_STATUS_EXECUTION_FAILED_CUDART)
        NAME(CUDNN_STATUS_EXECUTION_FAILED_CURAND)
#undef NAME
    default: return "CUDNN_UNKNOWN_STATUS";
    }
}

/* ---- handle and descriptors ---- */

cudnnStatus_t cudnnCreate(cudnnHandle_t *handle) { return create("cudnnCreate", handle); }
cudnnStatus_t cudnnDestroy(cudnnHandle_t handle) { return destroy("cudnnDestroy", handle); }

cudnnStatus_t cudnnSetStream(cudnnHandle_t handle, cudaStream_t stream)
{
    if (!handle_ok("cudnnSetStream", handle))
        return BAD;
    handle->stream = stream;
    return OK;
}

cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t *d)
{
    return create("cudnnCreateTensorDescriptor", d);
}
cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t d)
{
    return destroy("cudnnDestroyTensorDescriptor", d);
}
cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t *d)
{
    return create("cudnnCreateFilterDescriptor", d);
}
cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t d)
{
    return destroy("cudnnDestroyFilterDescriptor", d);
}
cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t *d)
{
    return create("cudnnCreateConvolutionDescriptor", d);
}
cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t d)
{
    return destroy("cudnnDestroyConvolutionDescriptor", d);
}

/* Shared by the tensor and filter setters: NCHW float, positive sizes, at
 * most 2^31-1 elements (cuDNN's limit). */
static cudnnStatus_t check_4d(const char *fn, cudnnTensorFormat_t format, cudnnDataType_t type,
                              int a, int b, int c, int d)
{
    if (a <= 0 || b <= 0 || c <= 0 || d <= 0) {
        emu::complain("%s: sizes %s must be positive", fn, dims(a, b, c, d).c_str());
        return BAD;
    }
    if ((unsigned)format > CUDNN_TENSOR_NCHW_VECT_C || (unsigned)type > CUDNN_DATA_COMPLEX_FP64) {
        emu::complain("%s: invalid format %d or data type %d", fn, (int)format, (int)type);
        return BAD;
    }
    if (format != CUDNN_TENSOR_NCHW || type != CUDNN_DATA_FLOAT) {
        emu::complain("%s: format %d, data type %d not emulated (only NCHW float)", fn,
                      (int)format, (int)type);
        return UNSUPPORTED;
    }
    if ((long long)a * b * c * d > INT32_MAX) {
        emu::complain("%s: %s exceeds 2^31-1 elements", fn, dims(a, b, c, d).c_str());
        return UNSUPPORTED;
    }
    return OK;
}

cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t d, cudnnTensorFormat_t format,
                                         cudnnDataType_t type, int n, int c, int h, int w)
{
    const char *fn = "cudnnSetTensor4dDescriptor";
    if (!settable(fn, d))
        return BAD;
    if (cudnnStatus_t s = check_4d(fn, format, type, n, c, h, w))
        return s;
    *d = cudnnTensorStruct{true, n, c, h, w};
    return OK;
}

cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t d, cudnnDataType_t type,
                                         cudnnTensorFormat_t format, int k, int c, int h, int w)
{
    const char *fn = "cudnnSetFilter4dDescriptor";
    if (!settable(fn, d))
        return BAD;
    if (cudnnStatus_t s = check_4d(fn, format, type, k, c, h, w))
        return s;
    *d = cudnnFilterStruct{true, k, c, h, w};
    return OK;
}

cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t d, int pad_h,
                                              int pad_w, int u, int v, int dilation_h,
                                              int dilation_w, cudnnConvolutionMode_t mode,
                                              cudnnDataType_t computeType)
{
    const char *fn = "cudnnSetConvolution2dDescriptor";
    if (!settable(fn, d))
        return BAD;
    if (pad_h < 0 || pad_w < 0 || u <= 0 || v <= 0 || dilation_h <= 0 || dilation_w <= 0 ||
        (mode != CUDNN_CONVOLUTION && mode != CUDNN_CROSS_CORRELATION) ||
        (unsigned)computeType > CUDNN_DATA_COMPLEX_FP64) {
        emu::complain("%s: invalid pad %d,%d stride %d,%d dilation %d,%d mode %d or compute "
                      "type %d", fn, pad_h, pad_w, u, v, dilation_h, dilation_w, (int)mode,
                      (int)computeType);
        return BAD;
    }
    if (mode != CUDNN_CROSS_CORRELATION || computeType != CUDNN_DATA_FLOAT) {
        emu::complain("%s: mode %d, compute type %d not emulated (only cross-correlation in "
                      "float)", fn, (int)mode, (int)computeType);
        return UNSUPPORTED;
    }
    d->set = true;
    d->ph = pad_h, d->pw = pad_w, d->sh = u, d->sw = v, d->dh = dilation_h, d->dw = dilation_w;
    return OK;
}

cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t d, cudnnMathType_t math)
{
    const char *fn = "cudnnSetConvolutionMathType";
    if (!settable(fn, d))
        return BAD;
    if ((unsigned)math > CUDNN_FMA_MATH) {
        emu::complain("%s: invalid math type %d", fn, (int)math);
        return BAD;
    }
    d->math = math;
    return OK;
}

cudnnStatus_t cudnnGetConvolution2dForwardOutputDim(const cudnnConvolutionDescriptor_t cd,
                                                    const cudnnTensorDescriptor_t xd,
                                                    const cudnnFilterDescriptor_t wd, int *n,
                                                    int *c, int *h, int *w)
{
    const char *fn = "cudnnGetConvolution2dForwardOutputDim";
    int oh, ow;
    if (!usable(fn, "convolution descriptor", cd) || !usable(fn, "input descriptor", xd) ||
        !usable(fn, "filter descriptor", wd) || !out_dims(fn, cd, xd, wd, "x", "w", &oh, &ow))
        return BAD;
    if (!n || !c || !h || !w) {
        emu::complain("%s: NULL output pointer", fn);
        return BAD;
    }
    *n = xd->n, *c = wd->k, *h = oh, *w = ow;
    return OK;
}

/* ---- algorithm choice ---- */

cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(
    cudnnHandle_t h, const cudnnTensorDescriptor_t xd, const cudnnFilterDescriptor_t wd,
    const cudnnConvolutionDescriptor_t cd, const cudnnTensorDescriptor_t yd, const int req,
    int *ret, cudnnConvolutionFwdAlgoPerf_t *perf)
{
    return report("cudnnGetConvolutionForwardAlgorithm_v7", FWD, false, h, xd, wd, cd, yd, req,
                  ret, perf);
}

cudnnStatus_t cudnnFindConvolutionForwardAlgorithm(
    cudnnHandle_t h, const cudnnTensorDescriptor_t xd, const cudnnFilterDescriptor_t wd,
    const cudnnConvolutionDescriptor_t cd, const cudnnTensorDescriptor_t yd, const int req,
    int *ret, cudnnConvolutionFwdAlgoPerf_t *perf)
{
    return report("cudnnFindConvolutionForwardAlgorithm", FWD, true, h, xd, wd, cd, yd, req,
                  ret, perf);
}

cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(
    cudnnHandle_t h, const cudnnFilterDescriptor_t wd, const cudnnTensorDescriptor_t dyd,
    const cudnnConvolutionDescriptor_t cd, const cudnnTensorDescriptor_t dxd, const int req,
    int *ret, cudnnConvolutionBwdDataAlgoPerf_t *perf)
{
    return report("cudnnGetConvolutionBackwardDataAlgorithm_v7", BWD_DATA, false, h, dxd, wd,
                  cd, dyd, req, ret, perf);
}

cudnnStatus_t cudnnFindConvolutionBackwardDataAlgorithm(
    cudnnHandle_t h, const cudnnFilterDescriptor_t wd, const cudnnTensorDescriptor_t dyd,
    const cudnnConvolutionDescriptor_t cd, const cudnnTensorDescriptor_t dxd, const int req,
    int *ret, cudnnConvolutionBwdDataAlgoPerf_t *perf)
{
    return report("cudnnFindConvolutionBackwardDataAlgorithm", BWD_DATA, true, h, dxd, wd, cd,
                  dyd, req, ret, perf);
}

cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm_v7(
    cudnnHandle_t h, const cudnnTensorDescriptor_t xd, const cudnnTensorDescriptor_t dyd,
    const cudnnConvolutionDescriptor_t cd, const cudnnFilterDescriptor_t dwd, const int req,
    int *ret, cudnnConvolutionBwdFilterAlgoPerf_t *perf)
{
    return report("cudnnGetConvolutionBackwardFilterAlgorithm_v7", BWD_FILTER, false, h, xd,
                  dwd, cd, dyd, req, ret, perf);
}

cudnnStatus_t cudnnFindConvolutionBackwardFilterAlgorithm(
    cudnnHandle_t h, const cudnnTensorDescriptor_t xd, const cudnnTensorDescriptor_t dyd,
    const cudnnConvolutionDescriptor_t cd, const cudnnFilterDescriptor_t dwd, const int req,
    int *ret, cudnnConvolutionBwdFilterAlgoPerf_t *perf)
{
    return report("cudnnFindConvolutionBackwardFilterAlgorithm", BWD_FILTER, true, h, xd, dwd,
                  cd, dyd, req, ret, perf);
}

cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(
    cudnnHandle_t h, const cudnnTensorDescriptor_t xd, const cudnnFilterDescriptor_t wd,
    const cudnnConvolutionDescriptor_t cd, const cudnnTensorDescriptor_t yd,
    cudnnConvolutionFwdAlgo_t algo, size_t *bytes)
{
    return workspace_query("cudnnGetConvolutionForwardWorkspaceSize", FWD, h, xd, wd, cd, yd,
                           (int)algo, bytes);
}

cudnnStatus_t cudnnGetConvolutionBackwardDataWorkspaceSize(
    cudnnHandle_t h, const cudnnFilterDescriptor_t wd, const cudnnTensorDescriptor_t dyd,
    const cudnnConvolutionDescriptor_t cd, const cudnnTensorDescriptor_t dxd,
    cudnnConvolutionBwdDataAlgo_t algo, size_t *bytes)
{
    return workspace_query("cudnnGetConvolutionBackwardDataWorkspaceSize", BWD_DATA, h, dxd, wd,
                           cd, dyd, (int)algo, bytes);
}

cudnnStatus_t cudnnGetConvolutionBackwardFilterWorkspaceSize(
    cudnnHandle_t h, const cudnnTensorDescriptor_t xd, const cudnnTensorDescriptor_t dyd,
    const cudnnConvolutionDescriptor_t cd, const cudnnFilterDescriptor_t dwd,
    cudnnConvolutionBwdFilterAlgo_t algo, size_t *bytes)
{
    return workspace_query("cudnnGetConvolutionBackwardFilterWorkspaceSize", BWD_FILTER, h, xd,
                           dwd, cd, dyd, (int)algo, bytes);
}

/* ---- convolution passes ---- */

cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t h, const void *alpha,
                                      const cudnnTensorDescriptor_t xd, const void *x,
                                      const cudnnFilterDescriptor_t wd, const void *w,
                                      const cudnnConvolutionDescriptor_t cd,
                                      cudnnConvolutionFwdAlgo_t algo, void *ws, size_t ws_bytes,
                                      const void *beta, const cudnnTensorDescriptor_t yd,
                                      void *y)
{
    const char *fn = "cudnnConvolutionForward";
    Call c;
    if (cudnnStatus_t s = conv_call(fn, FWD, h, alpha, beta, xd, wd, cd, yd, (int)algo, ws,
                                    ws_bytes, &c))
        return s;
    const Geo &g = c.g;
    const float *xp = (const float *)x, *wp = (const float *)w;
    return queue(fn, h, c, ws, {"x", x, g.xbytes()}, {"w", w, g.wbytes()}, {"y", y, g.ybytes()},
                 [g, xp, wp](double *acc) {
                     taps(g, [&](size_t xi, size_t wi, size_t yi) { acc[yi] += (double)xp[xi] * wp[wi]; });
                 });
}

cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t h, const void *alpha,
                                           const cudnnFilterDescriptor_t wd, const void *w,
                                           const cudnnTensorDescriptor_t dyd, const void *dy,
                                           const cudnnConvolutionDescriptor_t cd,
                                           cudnnConvolutionBwdDataAlgo_t algo, void *ws,
                                           size_t ws_bytes, const void *beta,
                                           const cudnnTensorDescriptor_t dxd, void *dx)
{
    const char *fn = "cudnnConvolutionBackwardData";
    Call c;
    if (cudnnStatus_t s = conv_call(fn, BWD_DATA, h, alpha, beta, dxd, wd, cd, dyd, (int)algo,
                                    ws, ws_bytes, &c))
        return s;
    const Geo &g = c.g;
    const float *wp = (const float *)w, *dyp = (const float *)dy;
    return queue(fn, h, c, ws, {"w", w, g.wbytes()}, {"dy", dy, g.ybytes()},
                 {"dx", dx, g.xbytes()}, [g, wp, dyp](double *acc) {
                     taps(g, [&](size_t xi, size_t wi, size_t yi) { acc[xi] += (double)wp[wi] * dyp[yi]; });
                 });
}

cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t h, const void *alpha,
                                             const cudnnTensorDescriptor_t xd, const void *x,
                                             const cudnnTensorDescriptor_t dyd, const void *dy,
                                             const cudnnConvolutionDescriptor_t cd,
                                             cudnnConvolutionBwdFilterAlgo_t algo, void *ws,
                                             size_t ws_bytes, const void *beta,
                                             const cudnnFilterDescriptor_t dwd, void *dw)
{
    const char *fn = "cudnnConvolutionBackwardFilter";
    Call c;
    if (cudnnStatus_t s = conv_call(fn, BWD_FILTER, h, alpha, beta, xd, dwd, cd, dyd, (int)algo,
                                    ws, ws_bytes, &c))
        return s;
    const Geo &g = c.g;
    const float *xp = (const float *)x, *dyp = (const float *)dy;
    return queue(fn, h, c, ws, {"x", x, g.xbytes()}, {"dy", dy, g.ybytes()},
                 {"dw", dw, g.wbytes()}, [g, xp, dyp](double *acc) {
                     taps(g, [&](size_t xi, size_t wi, size_t yi) { acc[wi] += (double)xp[xi] * dyp[yi]; });
                 });
}

/* ---- batch normalization ---- */

cudnnStatus_t cudnnBatchNormalizationForwardTraining(
    cudnnHandle_t h, cudnnBatchNormMode_t mode, const void *alpha, const void *beta,
    const cudnnTensorDescriptor_t xd, const void *x, const cudnnTensorDescriptor_t yd, void *y,
    const cudnnTensorDescriptor_t pd, const void *scale, const void *bias, double factor,
    void *run_mean, void *run_var, double eps, void *save_mean, void *save_invvar)
{
    const char *fn = "cudnnBatchNormalizationForwardTraining";
    Bn b;
    if (cudnnStatus_t s = bn_check(fn, h, mode, eps, xd, {{"y", yd}}, pd, &b))
        return s;
    if (!scalars(fn, {alpha, beta}) ||
        !both_or_neither(fn, "resultRunningMean", run_mean, "resultRunningVariance", run_var) ||
        !both_or_neither(fn, "resultSaveMean", save_mean, "resultSaveInvVariance", save_invvar) ||
        !on_device(fn, {{"x", x, b.xbytes()}, {"y", y, b.xbytes()}, {"bnScale", scale, b.pbytes()},
                        {"bnBias", bias, b.pbytes()}}) ||
        (run_mean && !on_device(fn, {{"resultRunningMean", run_mean, b.pbytes()},
                                     {"resultRunningVariance", run_var, b.pbytes()}})) ||
        (save_mean && !on_device(fn, {{"resultSaveMean", save_mean, b.pbytes()},
                                      {"resultSaveInvVariance", save_invvar, b.pbytes()}})))
        return bad();
    const float a = *(const float *)alpha, be = *(const float *)beta;
    const float *xp = (const float *)x, *sc = (const float *)scale, *bi = (const float *)bias;
    float *yp = (float *)y, *rm = (float *)run_mean, *rv = (float *)run_var,
          *sm = (float *)save_mean, *si = (float *)save_invvar;
    emu::enqueue(h->stream, [=]() {
        const double m = (double)b.n * b.hw;
        for (int ch = 0; ch < b.c; ch++) {
            double mean, var;
            moments(b, xp, ch, &mean, &var);
            const double invstd = 1.0 / std::sqrt(var + eps);
            for (int i = 0; i < b.n; i++)
                for (int j = 0; j < b.hw; j++) {
                    const size_t e = b.at(i, ch, j);
                    put(yp + e, sc[ch] * (xp[e] - mean) * invstd + bi[ch], a, be);
                }
            if (rm) {
                rm[ch] = (float)((1 - factor) * rm[ch] + factor * mean);
                rv[ch] = (float)((1 - factor) * rv[ch] + factor * var * m / (m - 1));
            }
            if (sm) {
                sm[ch] = (float)mean;
                si[ch] = (float)invstd;
            }
        }
    });
    return OK;
}

cudnnStatus_t cudnnBatchNormalizationForwardInference(
    cudnnHandle_t h, cudnnBatchNormMode_t mode, const void *alpha, const void *beta,
    const cudnnTensorDescriptor_t xd, const void *x, const cudnnTensorDescriptor_t yd, void *y,
    const cudnnTensorDescriptor_t pd, const void *scale, const void *bias, const void *est_mean,
    const void *est_var, double eps)
{
    const char *fn = "cudnnBatchNormalizationForwardInference";
    Bn b;
    if (cudnnStatus_t s = bn_check(fn, h, mode, eps, xd, {{"y", yd}}, pd, &b))
        return s;
    if (!scalars(fn, {alpha, beta}) ||
        !on_device(fn, {{"x", x, b.xbytes()}, {"y", y, b.xbytes()}, {"bnScale", scale, b.pbytes()},
                        {"bnBias", bias, b.pbytes()}, {"estimatedMean", est_mean, b.pbytes()},
                        {"estimatedVariance", est_var, b.pbytes()}}))
        return bad();
    const float a = *(const float *)alpha, be = *(const float *)beta;
    const float *xp = (const float *)x, *sc = (const float *)scale, *bi = (const float *)bias,
                *em = (const float *)est_mean, *ev = (const float *)est_var;
    float *yp = (float *)y;
    emu::enqueue(h->stream, [=]() {
        for (int ch = 0; ch < b.c; ch++) {
            const double invstd = 1.0 / std::sqrt((double)ev[ch] + eps);
            for (int i = 0; i < b.n; i++)
                for (int j = 0; j < b.hw; j++) {
                    const size_t e = b.at(i, ch, j);
                    put(yp + e, sc[ch] * (xp[e] - (double)em[ch]) * invstd + bi[ch], a, be);
                }
        }
    });
    return OK;
}

cudnnStatus_t cudnnBatchNormalizationBackward(
    cudnnHandle_t h, cudnnBatchNormMode_t mode, const void *alpha_data, const void *beta_data,
    const void *alpha_param, const void *beta_param, const cudnnTensorDescriptor_t xd,
    const void *x, const cudnnTensorDescriptor_t dyd, const void *dy,
    const cudnnTensorDescriptor_t dxd, void *dx, const cudnnTensorDescriptor_t pd,
    const void *scale, void *dscale, void *dbias, double eps, const void *saved_mean,
    const void *saved_invvar)
{
    const char *fn = "cudnnBatchNormalizationBackward";
    Bn b;
    if (cudnnStatus_t s = bn_check(fn, h, mode, eps, xd, {{"dy", dyd}, {"dx", dxd}}, pd, &b))
        return s;
    const Buf bdx{"dx", dx, b.xbytes()}, bds{"dBnScaleResult", dscale, b.pbytes()},
        bdb{"dBnBiasResult", dbias, b.pbytes()};
    if (!scalars(fn, {alpha_data, beta_data, alpha_param, beta_param}) ||
        !both_or_neither(fn, "savedMean", saved_mean, "savedInvVariance", saved_invvar) ||
        !on_device(fn, {{"x", x, b.xbytes()}, {"dy", dy, b.xbytes()}, bdx,
                        {"bnScale", scale, b.pbytes()}, bds, bdb}) ||
        (saved_mean && !on_device(fn, {{"savedMean", saved_mean, b.pbytes()},
                                       {"savedInvVariance", saved_invvar, b.pbytes()}})) ||
        !disjoint(fn, bds, {bdb, bdx}) || !disjoint(fn, bdb, {bdx}))
        return bad();
    const float ad = *(const float *)alpha_data, bd = *(const float *)beta_data,
                ap = *(const float *)alpha_param, bp = *(const float *)beta_param;
    const float *xp = (const float *)x, *dyp = (const float *)dy, *sc = (const float *)scale,
                *smp = (const float *)saved_mean, *sip = (const float *)saved_invvar;
    float *dxp = (float *)dx, *dsp = (float *)dscale, *dbp = (float *)dbias;
    emu::enqueue(h->stream, [=]() {
        const double m = (double)b.n * b.hw;
        for (int ch = 0; ch < b.c; ch++) {
            double mean, invstd;
            if (smp) {
                mean = smp[ch], invstd = sip[ch];
            } else {
                double var;
                moments(b, xp, ch, &mean, &var);
                invstd = 1.0 / std::sqrt(var + eps);
            }
            double sdy = 0, sdyx = 0;
            for (int i = 0; i < b.n; i++)
                for (int j = 0; j < b.hw; j++) {
                    const size_t e = b.at(i, ch, j);
                    sdy += dyp[e];
                    sdyx += dyp[e] * (xp[e] - mean) * invstd;
                }
            for (int i = 0; i < b.n; i++)
                for (int j = 0; j < b.hw; j++) {
                    const size_t e = b.at(i, ch, j);
                    const double xhat = (xp[e] - mean) * invstd;
                    put(dxp + e, sc[ch] * invstd / m * (m * dyp[e] - sdy - xhat * sdyx), ad, bd);
                }
            put(dsp + ch, sdyx, ap, bp);
            put(dbp + ch, sdy, ap, bp);
        }
    });
    return OK;
}

}  // extern "C"
