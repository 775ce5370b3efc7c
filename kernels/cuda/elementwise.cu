/*
 * elementwise.cu - custom element-wise kernels of the CUDA backend: fill,
 * strided copies, tensor arithmetic, ReLU, dropout application, the fused
 * SA-move vector updates, bias addition, BatchNorm helpers and the
 * input-batch transform.
 *
 * All are grid-stride loops over int64 indices on the compute stream; the
 * exported functions are extern "C", check the launch and report errors with
 * sg_seterr (never a Lua error: this file is C++).
 *
 * Index arithmetic: a kernel that divides an index (to find a channel, a
 * row, a pixel) is a template on the index type I and is launched with
 * I = int32_t whenever every index it forms fits (fits32): a 32-bit division
 * by a run-time value is a short inline sequence on the GPU, a 64-bit one a
 * call to a software routine. The int64_t instantiation is kept for larger
 * tensors. tools/check-index-math checks that no 32-bit instantiation, and
 * no kernel that is not a template on I, divides in 64 bits.
 */
#include "cuda_impl.h"
#include "rng_draw.h"

#include <math.h>

namespace {

constexpr int kThreads = 256;

inline unsigned blocks_for(int64_t n) { return sg_cuda_blocks(n, kThreads, 65535LL * 8); }

/* Every index of a launch in [0, n] fits a 32-bit signed int (and the int64
 * kernels are not forced for testing). */
inline bool fits32(int64_t n) { return sg_cuda_index32_ok(n) != 0; }

template <typename T>
__global__ void k_fill(T *p, int64_t n, T v)
{
    SG_GRID_LOOP(i, n) p[i] = v;
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
    SG_GRID_LOOP(i, n) o[i] = apply_bin(a[i], b[i], op);
}

__global__ void k_binary_scalar(float *o, const float *a, float s, int64_t n, int op, int first)
{
    SG_GRID_LOOP(i, n) o[i] = first ? apply_bin(s, a[i], op) : apply_bin(a[i], s, op);
}

__global__ void k_unary(float *o, const float *a, int64_t n, int fn)
{
    SG_GRID_LOOP(i, n) {
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
    SG_GRID_LOOP(i, n) {
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
    SG_GRID_LOOP(i, n) o[i] = __fadd_rn(a[i], __fmul_rn(alpha, x[i]));
}

__global__ void k_axpbypz(const float *a, const float *x, const float *y, float *o, int64_t n,
                          float alpha, float beta)
{
    SG_GRID_LOOP(i, n)
        o[i] = __fadd_rn(__fadd_rn(a[i], __fmul_rn(alpha, x[i])), __fmul_rn(beta, y[i]));
}

__global__ void k_scale_add(const float *a, const float *x, float *o, int64_t n, float s,
                            float alpha)
{
    SG_GRID_LOOP(i, n) o[i] = __fadd_rn(__fmul_rn(s, a[i]), __fmul_rn(alpha, x[i]));
}

/* A strided view (the shape and element strides of a tensor) by value. */
struct view_desc {
    int ndim;
    int64_t size[SG_MAXDIM];
    int64_t stride[SG_MAXDIM];
};

/* Element offset of the i-th element (row-major order) of a view, in I. */
template <typename I>
__device__ __forceinline__ I view_offset(const view_desc &v, I i)
{
    I off = 0;
    for (int k = v.ndim - 1; k >= 0; k--) {
        const I sz = (I)v.size[k];
        off += (i % sz) * (I)v.stride[k];
        i /= sz;
    }
    return off;
}

/* The largest element offset of a view of n elements (n > 0), or -1 when a
 * stride is negative (then the 64-bit kernels are used). */
inline int64_t view_extent(const view_desc &v)
{
    int64_t e = 0;
    for (int k = 0; k < v.ndim; k++) {
        if (v.stride[k] < 0)
            return -1;
        e += (v.size[k] - 1) * v.stride[k];
    }
    return e;
}

template <typename T, typename I>
__global__ void k_copy_strided(T *dst, view_desc dv, const T *src, view_desc sv, int64_t n)
{
    SG_GRID_LOOP(i, n) dst[view_offset<I>(dv, (I)i)] = src[view_offset<I>(sv, (I)i)];
}

template <typename T, typename I>
__global__ void k_fill_strided(T *p, view_desc v, int64_t n, T val)
{
    SG_GRID_LOOP(i, n) p[view_offset<I>(v, (I)i)] = val;
}

/* Random fill of a strided view: element i (row-major) takes the draw at
 * word w0 + i (uniform) or w0 + 4i (normal) of the stream: what the host's
 * sequential fill gives it (core/rng_draw.h). */
template <typename I>
__global__ void k_fill_random(float *p, view_desc v, int64_t n, uint64_t seed, uint64_t stream,
                              uint64_t b0, unsigned w0, double a, double b, int normal)
{
    SG_GRID_LOOP(i, n) {
        const uint64_t k = (uint64_t)i;
        p[view_offset<I>(v, (I)i)] = normal ? sg_rng_normal_fill_at(seed, stream, b0, w0 + 4 * k, a, b)
                                      : sg_rng_uniform_fill_at(seed, stream, b0, w0 + k, a, b);
    }
}

/* Dropout mask: element i is 0 when the uniform at word w0 + i is below p,
 * else keep (sg_cpu_dropout_mask's rule and draws). */
__global__ void k_dropout_mask(float *mask, int64_t n, uint64_t seed, uint64_t stream, uint64_t b0,
                               unsigned w0, float p, float keep)
{
    SG_GRID_LOOP(i, n) {
        mask[i] = sg_rng_word_uniformf(sg_rng_word_at(seed, stream, b0, w0 + (uint64_t)i)) < p ? 0.0f : keep;
    }
}

__global__ void k_relu(const float *x, float *y, int64_t n)
{
    SG_GRID_LOOP(i, n) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

__global__ void k_relu_bwd(const float *y, const float *dy, float *dx, int64_t n)
{
    SG_GRID_LOOP(i, n) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

__global__ void k_mul(const float *x, const float *m, float *y, int64_t n)
{
    SG_GRID_LOOP(i, n) y[i] = x[i] * m[i];
}

template <typename I>
__global__ void k_bias_add(float *y, const float *b, int64_t total, I c, I inner)
{
    SG_GRID_LOOP(i, total) y[i] += b[((I)i / inner) % c];
}

__global__ void k_bn_eval_stats(const float *rm, const float *rv, float *sm, float *si,
                                int64_t c, double eps)
{
    SG_GRID_LOOP(i, c) {
        sm[i] = rm[i];
        si[i] = (float)(1.0 / sqrt((double)rv[i] + eps));
    }
}

template <typename I>
__global__ void k_bn_bwd_eval(const float *dy, float *dx, const float *gamma,
                              const float *invstd, int64_t total, I c, I hw)
{
    SG_GRID_LOOP(i, total) {
        const I ch = ((I)i / hw) % c;
        float a = (float)((gamma ? (double)gamma[ch] : 1.0) * (double)invstd[ch]);
        dx[i] = dy[i] * a;
    }
}

/* Flat index t of planes x hh x ww as (plane, y, x). */
template <typename I>
__device__ __forceinline__ void split_plane(I t, I hh, I ww, I *plane, I *y, I *x)
{
    const I row = t / ww;
    *x = t - row * ww;
    *plane = row / hh;
    *y = row - *plane * hh;
}

/* The loader's image transform (core/data_loader.c make_image) with its
 * lookup table: bit-identical to the host's batches. */
template <typename I>
__global__ void k_input_transform(const uint8_t *x, float *y, const int32_t *dy,
                                  const int32_t *dx, const int32_t *flip, int64_t total,
                                  int c, int h, int w, int pad, const float *lut)
{
    const I Ho = h + 2 * pad, Wo = w + 2 * pad;
    SG_GRID_LOOP(i, total) {
        I plane, oy, ox;
        split_plane((I)i, Ho, Wo, &plane, &oy, &ox);
        const I img = plane / c, ch = plane - img * c;
        int sy = (int)oy + (dy ? dy[img] : 0) - pad;
        int sx = (int)((flip && flip[img]) ? Wo - 1 - ox : ox) + (dx ? dx[img] : 0) - pad;
        int v = 0;
        if (sy >= 0 && sy < h && sx >= 0 && sx < w)
            v = x[(plane * h + sy) * (I)w + sx];
        y[i] = lut[ch * 256 + v];
    }
}

/* Zero padding of the two spatial dimensions: y is planes x (h+2p) x (w+2p). */
template <typename I>
__global__ void k_pad2d(const float *x, float *y, int64_t total, I h, I w, I p)
{
    const I Ho = h + 2 * p, Wo = w + 2 * p;
    SG_GRID_LOOP(i, total) {
        I plane, oy, ox;
        split_plane((I)i, Ho, Wo, &plane, &oy, &ox);
        const I sy = oy - p, sx = ox - p;
        y[i] = (sy >= 0 && sy < h && sx >= 0 && sx < w) ? x[(plane * h + sy) * w + sx] : 0.0f;
    }
}

/* The inverse: dx (planes x h x w) is the interior of dy (planes x (h+2p) x (w+2p)). */
template <typename I>
__global__ void k_crop2d(const float *dy, float *dx, int64_t total, I h, I w, I p)
{
    const I Ho = h + 2 * p, Wo = w + 2 * p;
    SG_GRID_LOOP(i, total) {
        I plane, iy, ix;
        split_plane((I)i, h, w, &plane, &iy, &ix);
        dx[i] = dy[(plane * Ho + iy + p) * Wo + ix + p];
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
    const int64_t de = view_extent(dv), se = view_extent(sv);
    const bool narrow = fits32(n) && de >= 0 && fits32(de) && se >= 0 && fits32(se);
    switch (elsize) {
    case 1: {
        void (*k)(uint8_t *, view_desc, const uint8_t *, view_desc, int64_t) =
            narrow ? k_copy_strided<uint8_t, int32_t> : k_copy_strided<uint8_t, int64_t>;
        LAUNCH(k, n, (uint8_t *)dst, dv, (const uint8_t *)src, sv, n);
        break;
    }
    case 4: {
        void (*k)(uint32_t *, view_desc, const uint32_t *, view_desc, int64_t) =
            narrow ? k_copy_strided<uint32_t, int32_t> : k_copy_strided<uint32_t, int64_t>;
        LAUNCH(k, n, (uint32_t *)dst, dv, (const uint32_t *)src, sv, n);
        break;
    }
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
    const int64_t e = view_extent(vd);
    const bool narrow = fits32(n) && e >= 0 && fits32(e);
#define FILL_S(T) do { void (*k)(T *, view_desc, int64_t, T) = narrow ? k_fill_strided<T, int32_t> \
                                                                   : k_fill_strided<T, int64_t>; \
                       LAUNCH(k, n, (T *)p, vd, n, (T)v); } while (0)
    switch (dt) {
    case SG_F32: FILL_S(float); break;
    case SG_I32: FILL_S(int32_t); break;
    case SG_U8: FILL_S(uint8_t); break;
    }
#undef FILL_S
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
    const int64_t e = view_extent(vd);
    if (fits32(n) && e >= 0 && fits32(e))
        LAUNCH(k_fill_random<int32_t>, n, p, vd, n, seed, stream, block, off, a, b, normal);
    else
        LAUNCH(k_fill_random<int64_t>, n, p, vd, n, seed, stream, block, off, a, b, normal);
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
    if (fits32(total))
        LAUNCH(k_bias_add<int32_t>, total, y, b, total, (int32_t)c, (int32_t)inner);
    else
        LAUNCH(k_bias_add<int64_t>, total, y, b, total, c, inner);
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
    if (fits32(total))
        LAUNCH(k_bn_bwd_eval<int32_t>, total, dy, dx, gamma, invstd, total, (int32_t)c, (int32_t)hw);
    else
        LAUNCH(k_bn_bwd_eval<int64_t>, total, dy, dx, gamma, invstd, total, c, hw);
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
    /* the source images are no larger than the output (pad >= 0) */
    if (fits32(total))
        k_input_transform<int32_t><<<blocks_for(total), kThreads, 0, stream>>>(
            x, y, dy, dx, flip, total, c, h, w, pad, lut);
    else
        k_input_transform<int64_t><<<blocks_for(total), kThreads, 0, stream>>>(
            x, y, dy, dx, flip, total, c, h, w, pad, lut);
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
    if (fits32(total))  /* the input is no larger than the output */
        LAUNCH(k_pad2d<int32_t>, total, x, y, total, (int32_t)h, (int32_t)w, (int32_t)p);
    else
        LAUNCH(k_pad2d<int64_t>, total, x, y, total, h, w, p);
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
    if (fits32(planes * (h + 2 * p) * (w + 2 * p)))  /* every index into dy too */
        LAUNCH(k_crop2d<int32_t>, total, dy, dx, total, (int32_t)h, (int32_t)w, (int32_t)p);
    else
        LAUNCH(k_crop2d<int64_t>, total, dy, dx, total, h, w, p);
    return 0;
}

}  // extern "C"
