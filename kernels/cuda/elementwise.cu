/*
 * elementwise.cu - custom element-wise kernels of the CUDA backend: fill,
 * strided copies, tensor arithmetic, ReLU, dropout application, the fused
 * SA-move vector updates, bias addition, BatchNorm helpers and the
 * input-batch transform.
 *
 * All are grid-stride loops over int64 indices on the compute stream; the
 * exported functions are extern "C", check the launch and report errors with
 * sg_seterr (never a Lua error: this file is C++).
 */
#include "cuda_impl.h"
#include "rng_draw.h"

#include <math.h>

namespace {

constexpr int kThreads = 256;

inline unsigned blocks_for(int64_t n)
{
    int64_t b = (n + kThreads - 1) / kThreads;
    if (b > 65535LL * 8)
        b = 65535LL * 8;
    return (unsigned)(b < 1 ? 1 : b);
}

#define GRID_LOOP(i, n) \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
         i += (int64_t)blockDim.x * gridDim.x)

template <typename T>
__global__ void k_fill(T *p, int64_t n, T v)
{
    GRID_LOOP(i, n) p[i] = v;
}

__device__ __forceinline__ float apply_bin(float x, float y, int op)
{
    switch (op) {
    case SG_OP_ADD: return x + y;
    case SG_OP_SUB: return x - y;
    case SG_OP_MUL: return x * y;
    default: return x / y;
    }
}

__global__ void k_binary(float *o, const float *a, const float *b, int64_t n, int op)
{
    GRID_LOOP(i, n) o[i] = apply_bin(a[i], b[i], op);
}

__global__ void k_binary_scalar(float *o, const float *a, float s, int64_t n, int op, int first)
{
    GRID_LOOP(i, n) o[i] = first ? apply_bin(s, a[i], op) : apply_bin(a[i], s, op);
}

__global__ void k_unary(float *o, const float *a, int64_t n, int fn)
{
    GRID_LOOP(i, n) {
        float x = a[i], r;
        switch (fn) {
        case SG_FN_EXP: r = expf(x); break;
        case SG_FN_LOG: r = logf(x); break;
        case SG_FN_SQRT: r = sqrtf(x); break;
        case SG_FN_ABS: r = fabsf(x); break;
        case SG_FN_NEG: r = -x; break;
        case SG_FN_RELU: r = x > 0 ? x : 0; break;
        case SG_FN_SIGN: r = (float)((x > 0) - (x < 0)); break;
        case SG_FN_TANH: r = tanhf(x); break;
        case SG_FN_SIGMOID: r = 1.0f / (1.0f + expf(-x)); break;
        default: r = x * x; break;
        }
        o[i] = r;
    }
}

__global__ void k_clamp(float *o, const float *a, int64_t n, float lo, float hi)
{
    GRID_LOOP(i, n) {
        float v = a[i];
        o[i] = v < lo ? lo : (v > hi ? hi : v);
    }
}

/* The SA-move updates round every product and sum as the CPU kernels do
 * (kernels/cpu/elementwise.c, built without FMA contraction): nvcc would
 * otherwise fuse a + alpha*x into one fma and the trial points would differ
 * from the CPU's in the last bit. __fmul_rn/__fadd_rn are never contracted. */
__global__ void k_axpy(const float *a, const float *x, float *o, int64_t n, float alpha)
{
    GRID_LOOP(i, n) o[i] = __fadd_rn(a[i], __fmul_rn(alpha, x[i]));
}

__global__ void k_axpbypz(const float *a, const float *x, const float *y, float *o, int64_t n,
                          float alpha, float beta)
{
    GRID_LOOP(i, n)
        o[i] = __fadd_rn(__fadd_rn(a[i], __fmul_rn(alpha, x[i])), __fmul_rn(beta, y[i]));
}

__global__ void k_scale_add(const float *a, const float *x, float *o, int64_t n, float s,
                            float alpha)
{
    GRID_LOOP(i, n) o[i] = __fadd_rn(__fmul_rn(s, a[i]), __fmul_rn(alpha, x[i]));
}

/* A strided view (the shape and element strides of a tensor) by value. */
struct view_desc {
    int ndim;
    int64_t size[SG_MAXDIM];
    int64_t stride[SG_MAXDIM];
};

/* Element offset of the i-th element (row-major order) of a view. */
__device__ __forceinline__ int64_t view_offset(const view_desc &v, int64_t i)
{
    int64_t off = 0;
    for (int k = v.ndim - 1; k >= 0; k--) {
        const int64_t sz = v.size[k];
        off += (i % sz) * v.stride[k];
        i /= sz;
    }
    return off;
}

template <typename T>
__global__ void k_copy_strided(T *dst, view_desc dv, const T *src, view_desc sv, int64_t n)
{
    GRID_LOOP(i, n) dst[view_offset(dv, i)] = src[view_offset(sv, i)];
}

template <typename T>
__global__ void k_fill_strided(T *p, view_desc v, int64_t n, T val)
{
    GRID_LOOP(i, n) p[view_offset(v, i)] = val;
}

/* Random fill of a strided view: element i (row-major) takes the draw at
 * word w0 + i (uniform) or w0 + 4i (normal) of the stream: what the host's
 * sequential fill gives it (core/rng_draw.h). */
__global__ void k_fill_random(float *p, view_desc v, int64_t n, uint64_t seed, uint64_t stream,
                              uint64_t b0, unsigned w0, double a, double b, int normal)
{
    GRID_LOOP(i, n) {
        const uint64_t k = (uint64_t)i;
        p[view_offset(v, i)] = normal ? sg_rng_normal_fill_at(seed, stream, b0, w0 + 4 * k, a, b)
                                      : sg_rng_uniform_fill_at(seed, stream, b0, w0 + k, a, b);
    }
}

/* Dropout mask: element i is 0 when the uniform at word w0 + i is below p,
 * else keep (sg_cpu_dropout_mask's rule and draws). */
__global__ void k_dropout_mask(float *mask, int64_t n, uint64_t seed, uint64_t stream, uint64_t b0,
                               unsigned w0, float p, float keep)
{
    GRID_LOOP(i, n) {
        mask[i] = sg_rng_word_uniformf(sg_rng_word_at(seed, stream, b0, w0 + (uint64_t)i)) < p ? 0.0f : keep;
    }
}

__global__ void k_relu(const float *x, float *y, int64_t n)
{
    GRID_LOOP(i, n) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

__global__ void k_relu_bwd(const float *y, const float *dy, float *dx, int64_t n)
{
    GRID_LOOP(i, n) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

__global__ void k_mul(const float *x, const float *m, float *y, int64_t n)
{
    GRID_LOOP(i, n) y[i] = x[i] * m[i];
}

__global__ void k_bias_add(float *y, const float *b, int64_t total, int64_t c, int64_t inner)
{
    GRID_LOOP(i, total) y[i] += b[(i / inner) % c];
}

__global__ void k_bn_eval_stats(const float *rm, const float *rv, float *sm, float *si,
                                int64_t c, double eps)
{
    GRID_LOOP(i, c) {
        sm[i] = rm[i];
        si[i] = (float)(1.0 / sqrt((double)rv[i] + eps));
    }
}

__global__ void k_bn_bwd_eval(const float *dy, float *dx, const float *gamma,
                              const float *invstd, int64_t total, int64_t c, int64_t hw)
{
    GRID_LOOP(i, total) {
        int64_t ch = (i / hw) % c;
        float a = (float)((gamma ? (double)gamma[ch] : 1.0) * (double)invstd[ch]);
        dx[i] = dy[i] * a;
    }
}

/* The loader's image transform (core/data_loader.c make_image) with its
 * lookup table: bit-identical to the host's batches. */
__global__ void k_input_transform(const uint8_t *x, float *y, const int32_t *dy,
                                  const int32_t *dx, const int32_t *flip, int64_t total,
                                  int c, int h, int w, int pad, const float *lut)
{
    const int Ho = h + 2 * pad, Wo = w + 2 * pad;
    GRID_LOOP(t, total) {
        int ox = (int)(t % Wo);
        int oy = (int)((t / Wo) % Ho);
        int ch = (int)((t / ((int64_t)Wo * Ho)) % c);
        int64_t img = t / ((int64_t)Wo * Ho * c);
        int sy = oy + (dy ? dy[img] : 0) - pad;
        int sx = ((flip && flip[img]) ? Wo - 1 - ox : ox) + (dx ? dx[img] : 0) - pad;
        int v = 0;
        if (sy >= 0 && sy < h && sx >= 0 && sx < w)
            v = x[((img * c + ch) * h + sy) * (int64_t)w + sx];
        y[t] = lut[ch * 256 + v];
    }
}

/* Zero padding of the two spatial dimensions: y is planes x (h+2p) x (w+2p). */
__global__ void k_pad2d(const float *x, float *y, int64_t total, int64_t h, int64_t w,
                        int64_t p)
{
    const int64_t Ho = h + 2 * p, Wo = w + 2 * p;
    GRID_LOOP(t, total) {
        int64_t ox = t % Wo, oy = (t / Wo) % Ho, plane = t / (Wo * Ho);
        int64_t sy = oy - p, sx = ox - p;
        y[t] = (sy >= 0 && sy < h && sx >= 0 && sx < w) ? x[(plane * h + sy) * w + sx] : 0.0f;
    }
}

/* The inverse: dx (planes x h x w) is the interior of dy (planes x (h+2p) x (w+2p)). */
__global__ void k_crop2d(const float *dy, float *dx, int64_t total, int64_t h, int64_t w,
                         int64_t p)
{
    const int64_t Ho = h + 2 * p, Wo = w + 2 * p;
    GRID_LOOP(t, total) {
        int64_t ix = t % w, iy = (t / w) % h, plane = t / (w * h);
        dx[t] = dy[(plane * Ho + iy + p) * Wo + ix + p];
    }
}

}  // namespace

#define LAUNCH(kernel, n, ...)                                                       \
    do {                                                                             \
        if ((n) > 0) {                                                               \
            SG_PRELAUNCH();                                                          \
            kernel<<<blocks_for(n), kThreads, 0, sg_cuda_stream()>>>(__VA_ARGS__);   \
            if (SG_LAUNCHED(#kernel) != 0)                                           \
                return -1;                                                           \
        }                                                                            \
    } while (0)

extern "C" {

int sg_cuda_fill(void *p, sg_dtype dt, int64_t n, double v)
{
    if (sg_cuda_init() != 0)
        return -1;
    if (n <= 0)
        return 0;
    size_t bytes = (size_t)n * sg_dtype_size(dt);
    if (v == 0.0 && !signbit(v)) {  /* -0.0 is not all-zero bits */
        SG_CU(cudaMemsetAsync(p, 0, bytes, sg_cuda_stream()));
        return 0;
    }
    switch (dt) {
    case SG_F32: LAUNCH(k_fill<float>, n, (float *)p, n, (float)v); break;
    case SG_I32: LAUNCH(k_fill<int32_t>, n, (int32_t *)p, n, (int32_t)v); break;
    case SG_U8: SG_CU(cudaMemsetAsync(p, (int)(uint8_t)v, bytes, sg_cuda_stream())); break;
    }
    return 0;
}

static int make_view(view_desc *v, int ndim, const int64_t *size, const int64_t *stride,
                     const char *op)
{
    if (ndim < 0 || ndim > SG_MAXDIM)
        return sg_seterr("%s: %d dimensions (at most %d) (cuda)", op, ndim, SG_MAXDIM);
    v->ndim = ndim;
    for (int k = 0; k < SG_MAXDIM; k++) {
        v->size[k] = k < ndim ? size[k] : 1;
        v->stride[k] = k < ndim ? stride[k] : 0;
        if (k < ndim && v->size[k] <= 0)
            v->size[k] = 1;  /* an empty view has n == 0 and launches nothing */
    }
    return 0;
}

int sg_cuda_copy_strided(void *dst, int dndim, const int64_t *dsize, const int64_t *dstride,
                         const void *src, int sndim, const int64_t *ssize,
                         const int64_t *sstride, int64_t n, size_t elsize)
{
    if (sg_cuda_init() != 0)
        return -1;
    view_desc dv, sv;
    if (make_view(&dv, dndim, dsize, dstride, "copy") != 0 ||
        make_view(&sv, sndim, ssize, sstride, "copy") != 0)
        return -1;
    switch (elsize) {
    case 1: LAUNCH(k_copy_strided<uint8_t>, n, (uint8_t *)dst, dv, (const uint8_t *)src, sv, n); break;
    case 4: LAUNCH(k_copy_strided<uint32_t>, n, (uint32_t *)dst, dv, (const uint32_t *)src, sv, n); break;
    default: return sg_seterr("copy: element size %zu not supported (cuda)", elsize);
    }
    return 0;
}

int sg_cuda_fill_strided(void *p, int ndim, const int64_t *size, const int64_t *stride,
                         int64_t n, sg_dtype dt, double v)
{
    if (sg_cuda_init() != 0)
        return -1;
    view_desc vd;
    if (make_view(&vd, ndim, size, stride, "fill") != 0)
        return -1;
    switch (dt) {
    case SG_F32: LAUNCH(k_fill_strided<float>, n, (float *)p, vd, n, (float)v); break;
    case SG_I32: LAUNCH(k_fill_strided<int32_t>, n, (int32_t *)p, vd, n, (int32_t)v); break;
    case SG_U8: LAUNCH(k_fill_strided<uint8_t>, n, (uint8_t *)p, vd, n, (uint8_t)v); break;
    }
    return 0;
}

int sg_cuda_fill_random(float *p, int ndim, const int64_t *size, const int64_t *stride, int64_t n,
                        uint64_t seed, uint64_t stream, uint64_t block, unsigned off, double a, double b,
                        int normal)
{
    if (sg_cuda_init() != 0)
        return -1;
    view_desc vd;
    if (make_view(&vd, ndim, size, stride, normal ? "normal" : "uniform") != 0)
        return -1;
    LAUNCH(k_fill_random, n, p, vd, n, seed, stream, block, off, a, b, normal);
    return 0;
}

int sg_cuda_binary(float *out, const float *a, const float *b, int64_t n, sg_binop op)
{
    if (sg_cuda_init() != 0)
        return -1;
    LAUNCH(k_binary, n, out, a, b, n, (int)op);
    return 0;
}

int sg_cuda_binary_scalar(float *out, const float *a, float s, int64_t n, sg_binop op,
                          int scalar_first)
{
    if (sg_cuda_init() != 0)
        return -1;
    LAUNCH(k_binary_scalar, n, out, a, s, n, (int)op, scalar_first);
    return 0;
}

int sg_cuda_unary(float *out, const float *a, int64_t n, sg_unfn fn)
{
    if (sg_cuda_init() != 0)
        return -1;
    LAUNCH(k_unary, n, out, a, n, (int)fn);
    return 0;
}

int sg_cuda_clamp(float *out, const float *a, int64_t n, float lo, float hi)
{
    if (sg_cuda_init() != 0)
        return -1;
    LAUNCH(k_clamp, n, out, a, n, lo, hi);
    return 0;
}

int sg_cuda_vec_axpy(const float *a, const float *x, float *out, int64_t n, float alpha)
{
    if (sg_cuda_init() != 0)
        return -1;
    LAUNCH(k_axpy, n, a, x, out, n, alpha);
    return 0;
}

int sg_cuda_vec_axpbypz(const float *a, const float *x, const float *y, float *out,
                        int64_t n, float alpha, float beta)
{
    if (sg_cuda_init() != 0)
        return -1;
    LAUNCH(k_axpbypz, n, a, x, y, out, n, alpha, beta);
    return 0;
}

int sg_cuda_vec_scale_add(const float *a, const float *x, float *out, int64_t n, float s,
                          float alpha)
{
    if (sg_cuda_init() != 0)
        return -1;
    LAUNCH(k_scale_add, n, a, x, out, n, s, alpha);
    return 0;
}

int sg_cuda_relu_forward(const float *x, float *y, int64_t n)
{
    if (sg_cuda_init() != 0)
        return -1;
    LAUNCH(k_relu, n, x, y, n);
    return 0;
}

int sg_cuda_relu_backward_data(const float *y, const float *dy, float *dx, int64_t n)
{
    if (sg_cuda_init() != 0)
        return -1;
    LAUNCH(k_relu_bwd, n, y, dy, dx, n);
    return 0;
}

int sg_cuda_dropout_mask(sg_rng *r, float *mask, int64_t n, double p)
{
    if (sg_cuda_init() != 0)
        return -1;
    if (!(p >= 0.0 && p < 1.0))
        return sg_seterr("dropout_mask: probability %g not in [0, 1) (cuda)", p);
    if (n < 0)
        return sg_seterr("dropout_mask: negative size %lld (cuda)", (long long)n);
    if (n == 0)
        return 0;
    const float keep = (float)(1.0 / (1.0 - p));
    if (p == 0.0)
        return sg_cuda_fill(mask, SG_F32, n, keep);
    uint64_t b0;
    unsigned w0;
    sg_rng_where(r, &b0, &w0);
    LAUNCH(k_dropout_mask, n, mask, n, r->seed, r->stream, b0, w0, (float)p, keep);
    sg_rng_skip(r, (uint64_t)n);
    return 0;
}

int sg_cuda_dropout_forward(const float *x, float *y, const float *mask, int64_t n)
{
    if (sg_cuda_init() != 0)
        return -1;
    LAUNCH(k_mul, n, x, mask, y, n);
    return 0;
}

int sg_cuda_dropout_backward_data(const float *dy, float *dx, const float *mask, int64_t n)
{
    if (sg_cuda_init() != 0)
        return -1;
    LAUNCH(k_mul, n, dy, mask, dx, n);
    return 0;
}

int sg_cuda_k_bias_add(float *y, const float *b, int64_t n, int64_t c, int64_t inner)
{
    int64_t total = n * c * inner;
    LAUNCH(k_bias_add, total, y, b, total, c, inner);
    return 0;
}

int sg_cuda_k_bn_eval_stats(const float *running_mean, const float *running_var,
                            float *save_mean, float *save_invstd, int64_t c, double eps)
{
    LAUNCH(k_bn_eval_stats, c, running_mean, running_var, save_mean, save_invstd, c, eps);
    return 0;
}

int sg_cuda_k_bn_backward_eval(const float *dy, float *dx, const float *gamma,
                               const float *invstd, int64_t n, int64_t c, int64_t hw)
{
    int64_t total = n * c * hw;
    LAUNCH(k_bn_bwd_eval, total, dy, dx, gamma, invstd, total, c, hw);
    return 0;
}

int sg_cuda_k_input_transform(cudaStream_t stream, const uint8_t *x, float *y,
                              const int32_t *dy, const int32_t *dx, const int32_t *flip,
                              int64_t n, int c, int h, int w, int pad, const float *lut)
{
    if (n <= 0 || c <= 0 || h <= 0 || w <= 0 || pad < 0 || !lut)
        return sg_seterr("input_transform: invalid sizes N=%lld C=%d H=%d W=%d pad=%d or no "
                         "lookup table (cuda)", (long long)n, c, h, w, pad);
    int64_t total = n * c * (int64_t)(h + 2 * pad) * (w + 2 * pad);
    SG_PRELAUNCH();
    k_input_transform<<<blocks_for(total), kThreads, 0, stream>>>(x, y, dy, dx, flip, total, c,
                                                                  h, w, pad, lut);
    return SG_LAUNCHED("k_input_transform") != 0 ? -1 : 0;
}

int sg_cuda_input_transform(const uint8_t *x, float *y, const int32_t *dy, const int32_t *dx,
                            const int32_t *flip, int64_t n, int c, int h, int w, int pad,
                            const float *lut)
{
    if (sg_cuda_init() != 0)
        return -1;
    return sg_cuda_k_input_transform(sg_cuda_stream(), x, y, dy, dx, flip, n, c, h, w, pad, lut);
}

int sg_cuda_pad2d(const float *x, float *y, int64_t planes, int64_t h, int64_t w, int64_t p)
{
    if (sg_cuda_init() != 0)
        return -1;
    if (planes < 0 || h < 0 || w < 0 || p < 0)
        return sg_seterr("pad2d: invalid sizes planes=%lld H=%lld W=%lld pad=%lld (cuda)",
                         (long long)planes, (long long)h, (long long)w, (long long)p);
    int64_t total = planes * (h + 2 * p) * (w + 2 * p);
    LAUNCH(k_pad2d, total, x, y, total, h, w, p);
    return 0;
}

int sg_cuda_crop2d(const float *dy, float *dx, int64_t planes, int64_t h, int64_t w, int64_t p)
{
    if (sg_cuda_init() != 0)
        return -1;
    if (planes < 0 || h < 0 || w < 0 || p < 0)
        return sg_seterr("crop2d: invalid sizes planes=%lld H=%lld W=%lld pad=%lld (cuda)",
                         (long long)planes, (long long)h, (long long)w, (long long)p);
    int64_t total = planes * h * w;
    LAUNCH(k_crop2d, total, dy, dx, total, h, w, p);
    return 0;
}

}  // extern "C"
