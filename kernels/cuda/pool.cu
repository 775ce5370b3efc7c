/*
 * pool.cu - max, average and global average pooling on the GPU (NCHW).
 *
 * Custom kernels rather than cuDNN pooling: the backend's API (kernels/cpu/
 * nn.h) records the int32 argmax index of every max-pool output, so the
 * backward pass needs neither x nor y (cuDNN's needs both) and ties resolve
 * exactly as on the CPU (first maximum in row-major window order, a NaN
 * wins). Semantics are the CPU's: ceil_mode = False, padding as -infinity for
 * max and as zeros counted in the divisor (kh*kw) for average.
 *
 * Backward passes are gathers (one thread per input element sums the outputs
 * whose windows cover it, in a fixed order): no atomics, deterministic.
 *
 * Index arithmetic in 32 bits when the input and the output fit (the
 * kernels are templates on the index type I; see elementwise.cu).
 */
#include "cuda_impl.h"

#include <math.h>
#include <stdlib.h>

namespace {

constexpr int kThreads = 256;

inline unsigned blocks_for(int64_t n) { return sg_cuda_blocks(n, kThreads, 65535LL * 16); }

template <typename I>
struct geom {
    using index = I;
    I h, w, kh, kw, sh, sw, ph, pw, oh, ow;
};

template <typename I>
inline geom<I> to_geom(const sg_pool2d_geom *g)
{
    geom<I> r = {(I)g->h, (I)g->w, (I)g->kh, (I)g->kw, (I)g->sh, (I)g->sw, (I)g->ph, (I)g->pw,
                 (I)g->oh, (I)g->ow};
    return r;
}

/* Every index of a pooling launch (input and output, window corners
 * included) fits 32 bits. */
inline bool pool_fits32(const sg_pool2d_geom *g)
{
    const int64_t in = g->n * g->c * g->h * g->w, out = g->n * g->c * g->oh * g->ow;
    const int64_t pad = (g->h + g->ph + g->kh) * (g->w + g->pw + g->kw);
    return sg_cuda_index32_ok(in) && sg_cuda_index32_ok(out) && sg_cuda_index32_ok(pad);
}

/* One pooling launch over total = N*C*plane threads, with 32-bit index
 * arithmetic where every index fits (pool_fits32) and 64-bit otherwise:
 * launch(geom, total) issues kernel `name`. */
template <typename F>
int pool_launch(const sg_pool2d_geom *g, int64_t plane, const char *name, F launch)
{
    if (sg_cuda_init() != 0)
        return -1;
    const int64_t total = g->n * g->c * plane;
    SG_PRELAUNCH();
    if (pool_fits32(g))
        launch(to_geom<int32_t>(g), total);
    else
        launch(to_geom<int64_t>(g), total);
    return SG_LAUNCHED(name);
}

/* Output t's plane and its window clipped to the input: rows [hs, he),
 * columns [ws, we). */
template <typename I>
struct window {
    I pl, hs, he, ws, we;
};

template <typename I>
__device__ __forceinline__ window<I> window_of(I t, const geom<I> &g)
{
    const I row = t / g.ow, ow = t - row * g.ow;
    const I pl = row / g.oh, oh = row - pl * g.oh;
    const I h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
    window<I> r;
    r.pl = pl;
    r.hs = h0 < 0 ? 0 : h0;
    r.he = h0 + g.kh > g.h ? g.h : h0 + g.kh;
    r.ws = w0 < 0 ? 0 : w0;
    r.we = w0 + g.kw > g.w ? g.w : w0 + g.kw;
    return r;
}

template <typename I>
__global__ void k_maxpool_fwd(const float *x, float *y, int32_t *idx, int64_t total, geom<I> g)
{
    SG_GRID_LOOP(i, total) {
        const window<I> wn = window_of((I)i, g);
        const float *in = x + wn.pl * g.h * g.w;
        const I hs = wn.hs, he = wn.he, ws = wn.ws, we = wn.we;
        float best = -INFINITY;
        I bi = hs * g.w + ws;
        bool done = false;
        for (I ih = hs; ih < he && !done; ih++)
            for (I iw = ws; iw < we; iw++) {
                float v = in[ih * g.w + iw];
                if (v > best || isnan(v)) {
                    best = v;
                    bi = ih * g.w + iw;
                    if (isnan(v)) { done = true; break; }
                }
            }
        y[i] = best;
        if (idx)
            idx[i] = (int32_t)bi;
    }
}

/* Output range whose windows contain input coordinate i (one axis). */
template <typename I>
__device__ __forceinline__ void out_range(I i, I k, I s, I p, I on, I *lo, I *hi)
{
    /* o*s - p <= i < o*s - p + k  <=>  (i + p - k)/s < o <= (i + p)/s */
    I a = i + p - k + 1;
    *lo = a <= 0 ? 0 : (a + s - 1) / s;
    I b = (i + p) / s;
    *hi = b >= on ? on - 1 : b;
}

/* Input t's plane and coordinates and the outputs whose windows contain it:
 * rows [ohl, ohh], columns [owl, owh]. */
template <typename I>
struct reach {
    I pl, ih, iw, ohl, ohh, owl, owh;
};

template <typename I>
__device__ __forceinline__ reach<I> reach_of(I t, const geom<I> &g)
{
    reach<I> r;
    const I row = t / g.w;
    r.iw = t - row * g.w;
    r.pl = row / g.h;
    r.ih = row - r.pl * g.h;
    out_range<I>(r.ih, g.kh, g.sh, g.ph, g.oh, &r.ohl, &r.ohh);
    out_range<I>(r.iw, g.kw, g.sw, g.pw, g.ow, &r.owl, &r.owh);
    return r;
}

template <typename I>
__global__ void k_maxpool_bwd(const float *dy, float *dx, const int32_t *idx, int64_t total,
                              geom<I> g, int *bad)
{
    SG_GRID_LOOP(i, total) {
        const reach<I> r = reach_of((I)i, g);
        const I pl = r.pl, ih = r.ih, iw = r.iw, ohl = r.ohl, ohh = r.ohh, owl = r.owl, owh = r.owh;
        const int32_t me = (int32_t)(ih * g.w + iw);
        const float *d = dy + pl * g.oh * g.ow;
        const int32_t *ix = idx + pl * g.oh * g.ow;
        float s = 0.0f;
        for (I oh = ohl; oh <= ohh; oh++)
            for (I ow = owl; ow <= owh; ow++)
                if (ix[oh * g.ow + ow] == me)
                    s += d[oh * g.ow + ow];
        dx[i] = s;
        /* validate each output's index once: the thread of the window's first cell */
        if (bad && ih == 0 && iw == 0) {
            for (I o = 0; o < g.oh * g.ow; o++)
                if (ix[o] < 0 || ix[o] >= g.h * g.w)
                    *bad = 1;
        }
    }
}

template <typename I>
__global__ void k_avgpool_fwd(const float *x, float *y, int64_t total, geom<I> g)
{
    SG_GRID_LOOP(i, total) {
        const window<I> wn = window_of((I)i, g);
        const float *in = x + wn.pl * g.h * g.w;
        const I hs = wn.hs, he = wn.he, ws = wn.ws, we = wn.we;
        float s = 0.0f;
        for (I ih = hs; ih < he; ih++)
            for (I iw = ws; iw < we; iw++)
                s += in[ih * g.w + iw];
        y[i] = s / (float)(g.kh * g.kw);
    }
}

template <typename I>
__global__ void k_avgpool_bwd(const float *dy, float *dx, int64_t total, geom<I> g)
{
    SG_GRID_LOOP(i, total) {
        const reach<I> r = reach_of((I)i, g);
        const I pl = r.pl, ohl = r.ohl, ohh = r.ohh, owl = r.owl, owh = r.owh;
        const float *d = dy + pl * g.oh * g.ow;
        const float div = (float)(g.kh * g.kw);
        float s = 0.0f;
        for (I oh = ohl; oh <= ohh; oh++)
            for (I ow = owl; ow <= owh; ow++)
                s += d[oh * g.ow + ow] / div;
        dx[i] = s;
    }
}

/* one warp per plane */
__global__ void k_gap_fwd(const float *x, float *y, int64_t planes, int64_t hw)
{
    const int lane = threadIdx.x & 31;
    const int64_t pl = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    if (pl >= planes)
        return;
    const float *p = x + pl * hw;
    double s = 0.0;
    for (int64_t j = lane; j < hw; j += 32)
        s += p[j];
    for (int o = 16; o > 0; o >>= 1)
        s += __shfl_down_sync(0xffffffffu, s, o);
    if (lane == 0)
        y[pl] = (float)(s / (double)hw);
}

template <typename I>
__global__ void k_gap_bwd(const float *dy, float *dx, int64_t total, I hw, float inv)
{
    SG_GRID_LOOP(i, total) dx[i] = dy[(I)i / hw] * inv;
}

}  // namespace

extern "C" {

int sg_cuda_maxpool2d_forward(const float *x, float *y, int32_t *idx, const sg_pool2d_geom *g)
{
    return pool_launch(g, g->oh * g->ow, "k_maxpool_fwd", [&](auto gi, int64_t total) {
        using I = typename decltype(gi)::index;
        k_maxpool_fwd<I><<<blocks_for(total), kThreads, 0, sg_cuda_stream()>>>(x, y, idx, total,
                                                                            gi);
    });
}

int sg_cuda_maxpool2d_backward_data(const float *dy, float *dx, const int32_t *idx,
                                    const sg_pool2d_geom *g)
{
    if (sg_cuda_init() != 0)
        return -1;
    /* checking the indices costs a sync: only when SGDSA_CUDA_CHECK_INDICES is set */
    const int check = getenv("SGDSA_CUDA_CHECK_INDICES") != NULL;
    int *bad = NULL, *hbad = NULL;
    cudaStream_t st = sg_cuda_stream();
    if (check) {
        bad = (int *)sg_cuda_scratch(SG_SCRATCH_REDUCE, sizeof(int));
        hbad = (int *)sg_cuda_host_scratch(SG_SCRATCH_REDUCE, sizeof(int));
        if (!bad || !hbad)
            return -1;
        SG_CU(cudaMemsetAsync(bad, 0, sizeof(int), st));
    }
    if (pool_launch(g, g->h * g->w, "k_maxpool_bwd", [&](auto gi, int64_t total) {
            using I = typename decltype(gi)::index;
            k_maxpool_bwd<I><<<blocks_for(total), kThreads, 0, st>>>(dy, dx, idx, total, gi, bad);
        }) != 0)
        return -1;
    if (check) {
        SG_CU(cudaMemcpyAsync(hbad, bad, sizeof(int), cudaMemcpyDeviceToHost, st));
        SG_CU(sg_cuda_wait_stream(st));
        if (*hbad)
            return sg_seterr("maxpool2d_backward_data: index out of range for a %lldx%lld "
                             "plane (indices not from the matching forward?) (cuda)",
                             (long long)g->h, (long long)g->w);
    }
    return 0;
}

int sg_cuda_avgpool2d_forward(const float *x, float *y, const sg_pool2d_geom *g)
{
    return pool_launch(g, g->oh * g->ow, "k_avgpool_fwd", [&](auto gi, int64_t total) {
        using I = typename decltype(gi)::index;
        k_avgpool_fwd<I><<<blocks_for(total), kThreads, 0, sg_cuda_stream()>>>(x, y, total, gi);
    });
}

int sg_cuda_avgpool2d_backward_data(const float *dy, float *dx, const sg_pool2d_geom *g)
{
    return pool_launch(g, g->h * g->w, "k_avgpool_bwd", [&](auto gi, int64_t total) {
        using I = typename decltype(gi)::index;
        k_avgpool_bwd<I><<<blocks_for(total), kThreads, 0, sg_cuda_stream()>>>(dy, dx, total, gi);
    });
}

int sg_cuda_global_avgpool_forward(const float *x, float *y, int64_t n, int64_t c, int64_t hw)
{
    if (sg_cuda_init() != 0)
        return -1;
    int64_t threads = n * c * 32;
    SG_PRELAUNCH();
    k_gap_fwd<<<(unsigned)((threads + kThreads - 1) / kThreads), kThreads, 0,
                sg_cuda_stream()>>>(x, y, n * c, hw);
    return SG_LAUNCHED("k_gap_fwd");
}

int sg_cuda_global_avgpool_backward_data(const float *dy, float *dx, int64_t n, int64_t c,
                                         int64_t hw)
{
    if (sg_cuda_init() != 0)
        return -1;
    int64_t total = n * c * hw;
    SG_PRELAUNCH();
    if (sg_cuda_index32_ok(total))
        k_gap_bwd<int32_t><<<blocks_for(total), kThreads, 0, sg_cuda_stream()>>>(
            dy, dx, total, (int32_t)hw, 1.0f / (float)hw);
    else
        k_gap_bwd<int64_t><<<blocks_for(total), kThreads, 0, sg_cuda_stream()>>>(
            dy, dx, total, hw, 1.0f / (float)hw);
    return SG_LAUNCHED("k_gap_bwd");
}

}  // extern "C"
