/*
 * pool.c - max, average and global average pooling on the CPU (NCHW).
 *
 * PyTorch semantics, ceil_mode = False. Max pooling pads with -infinity and
 * records the flat in-plane index of the first maximum (NaN wins), so the
 * backward pass is a scatter; a trial forward passes idx = NULL. Every
 * loop is parallel over (image, channel) planes: a plane's output and input
 * gradient belong to one thread, so there are no races and no atomics.
 */
#include <float.h>
#include <math.h>
#include <string.h>

#include "nn.h"  /* first: brings <stddef.h>, which error.h needs */
#include "error.h"

int sg_pool2d_geom_init(sg_pool2d_geom *g, int64_t n, int64_t c, int64_t h, int64_t w,
                        int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph,
                        int64_t pw)
{
    if (n <= 0 || c <= 0 || h <= 0 || w <= 0 || kh <= 0 || kw <= 0 || sh <= 0 || sw <= 0 ||
        ph < 0 || pw < 0)
        return sg_seterr("pool2d: invalid geometry: input %lldx%lldx%lldx%lld, kernel "
                         "%lldx%lld, stride %lldx%lld, padding %lldx%lld (cpu)",
                         (long long)n, (long long)c, (long long)h, (long long)w,
                         (long long)kh, (long long)kw, (long long)sh, (long long)sw,
                         (long long)ph, (long long)pw);
    const int64_t lim = (int64_t)1 << 30; /* before any arithmetic (2 * 2^62 overflows) */
    if (h > lim || w > lim || kh > lim || kw > lim || sh > lim || sw > lim || ph > lim || pw > lim)
        return sg_seterr("pool2d: sizes too large: input %lldx%lld, kernel %lldx%lld, stride "
                         "%lldx%lld, padding %lldx%lld (at most %lld each) (cpu)", (long long)h,
                         (long long)w, (long long)kh, (long long)kw, (long long)sh, (long long)sw,
                         (long long)ph, (long long)pw, (long long)lim);
    if (2 * ph > kh || 2 * pw > kw)
        return sg_seterr("pool2d: padding %lldx%lld must be at most half the kernel %lldx%lld "
                         "(cpu)", (long long)ph, (long long)pw, (long long)kh, (long long)kw);
    if (h + 2 * ph < kh || w + 2 * pw < kw)
        return sg_seterr("pool2d: kernel %lldx%lld larger than padded input %lldx%lld (input "
                         "%lldx%lld, padding %lldx%lld) (cpu)", (long long)kh, (long long)kw,
                         (long long)(h + 2 * ph), (long long)(w + 2 * pw), (long long)h,
                         (long long)w, (long long)ph, (long long)pw);
    if (h * w > INT32_MAX)
        return sg_seterr("pool2d: plane %lldx%lld too large for int32 indices (cpu)",
                         (long long)h, (long long)w);
    g->n = n; g->c = c; g->h = h; g->w = w;
    g->kh = kh; g->kw = kw; g->sh = sh; g->sw = sw; g->ph = ph; g->pw = pw;
    g->oh = (h + 2 * ph - kh) / sh + 1;
    g->ow = (w + 2 * pw - kw) / sw + 1;
    return 0;
}

/* The common 2x2, stride 2, unpadded window, unrolled; the same rule as the
 * general loop: the first maximum in row-major order wins, a NaN wins at once. */
static void maxpool_2x2(const float *in, float *out, int32_t *ix, int64_t W, int64_t OH, int64_t OW)
{
    for (int64_t oh = 0; oh < OH; oh++) {
        const float *r0 = in + 2 * oh * W, *r1 = r0 + W;
        for (int64_t ow = 0; ow < OW; ow++) {
            const int64_t c = 2 * ow;
            const float v[4] = {r0[c], r0[c + 1], r1[c], r1[c + 1]};
            const int64_t at[4] = {2 * oh * W + c, 2 * oh * W + c + 1, (2 * oh + 1) * W + c,
                                   (2 * oh + 1) * W + c + 1};
            int k = 0;
            if (!isnan(v[0]))
                for (int j = 1; j < 4; j++) {
                    if (isnan(v[j])) {
                        k = j;
                        break;
                    }
                    if (v[j] > v[k])
                        k = j;
                }
            out[oh * OW + ow] = v[k];
            if (ix)
                ix[oh * OW + ow] = (int32_t)at[k];
        }
    }
}

/* The window of output (oh, ow) clipped to the input: rows [hs, he),
 * columns [ws, we). */
static inline void window(const sg_pool2d_geom *g, int64_t oh, int64_t ow, int64_t *hs,
                          int64_t *he, int64_t *ws, int64_t *we)
{
    const int64_t h0 = oh * g->sh - g->ph, w0 = ow * g->sw - g->pw;
    *hs = h0 < 0 ? 0 : h0;
    *he = h0 + g->kh > g->h ? g->h : h0 + g->kh;
    *ws = w0 < 0 ? 0 : w0;
    *we = w0 + g->kw > g->w ? g->w : w0 + g->kw;
}

int sg_cpu_maxpool2d_forward(const float *x, float *y, int32_t *idx, const sg_pool2d_geom *g)
{
    const int64_t H = g->h, W = g->w, OH = g->oh, OW = g->ow;
    if (g->kh == 2 && g->kw == 2 && g->sh == 2 && g->sw == 2 && g->ph == 0 && g->pw == 0) {
#pragma omp parallel for schedule(static) if (g->n * g->c * g->h * g->w > SG_PAR_MIN)
        for (int64_t pl = 0; pl < g->n * g->c; pl++)
            maxpool_2x2(x + pl * H * W, y + pl * OH * OW, idx ? idx + pl * OH * OW : NULL, W, OH, OW);
        return 0;
    }
#pragma omp parallel for schedule(static) if (g->n * g->c * g->h * g->w > SG_PAR_MIN)
    for (int64_t pl = 0; pl < g->n * g->c; pl++) {
        const float *in = x + pl * H * W;
        float *out = y + pl * OH * OW;
        int32_t *ix = idx ? idx + pl * OH * OW : NULL;
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++) {
                int64_t hs, he, ws, we;
                window(g, oh, ow, &hs, &he, &ws, &we);
                float best = -INFINITY;
                int64_t bi = hs * W + ws;
                for (int64_t ih = hs; ih < he; ih++)
                    for (int64_t iw = ws; iw < we; iw++) {
                        const float v = in[ih * W + iw];
                        if (v > best || isnan(v)) {
                            best = v;
                            bi = ih * W + iw;
                            if (isnan(v))
                                goto done;
                        }
                    }
            done:
                out[oh * OW + ow] = best;
                if (ix)
                    ix[oh * OW + ow] = (int32_t)bi;
            }
    }
    return 0;
}

int sg_cpu_maxpool2d_backward_data(const float *dy, float *dx, const int32_t *idx,
                                   const sg_pool2d_geom *g)
{
    const int64_t HW = g->h * g->w, OHW = g->oh * g->ow;
    int bad = 0;
#pragma omp parallel for schedule(static) reduction(| : bad) if (g->n * g->c * g->h * g->w > SG_PAR_MIN)
    for (int64_t pl = 0; pl < g->n * g->c; pl++) {
        float *d = dx + pl * HW;
        const float *s = dy + pl * OHW;
        const int32_t *ix = idx + pl * OHW;
        memset(d, 0, (size_t)HW * sizeof(float));
        for (int64_t o = 0; o < OHW; o++) {
            if (ix[o] < 0 || ix[o] >= HW) {
                bad = 1;
                continue;
            }
            d[ix[o]] += s[o];
        }
    }
    if (bad)
        return sg_seterr("maxpool2d_backward_data: index out of range for a %lldx%lld plane "
                         "(indices not from the matching forward?) (cpu)",
                         (long long)g->h, (long long)g->w);
    return 0;
}

/* Divisor with count_include_pad: with ceil_mode = False every window lies
 * inside the zero-padded input, so it is always the full kernel area. */
static inline int64_t avg_div(const sg_pool2d_geom *g)
{
    return g->kh * g->kw;
}

int sg_cpu_avgpool2d_forward(const float *x, float *y, const sg_pool2d_geom *g)
{
    const int64_t H = g->h, W = g->w, OH = g->oh, OW = g->ow;
#pragma omp parallel for schedule(static) if (g->n * g->c * g->h * g->w > SG_PAR_MIN)
    for (int64_t pl = 0; pl < g->n * g->c; pl++) {
        const float *in = x + pl * H * W;
        float *out = y + pl * OH * OW;
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++) {
                int64_t hs, he, ws, we;
                window(g, oh, ow, &hs, &he, &ws, &we);
                float s = 0.0f;
                for (int64_t ih = hs; ih < he; ih++)
                    for (int64_t iw = ws; iw < we; iw++)
                        s += in[ih * W + iw];
                out[oh * OW + ow] = s / (float)avg_div(g);
            }
    }
    return 0;
}

int sg_cpu_avgpool2d_backward_data(const float *dy, float *dx, const sg_pool2d_geom *g)
{
    const int64_t H = g->h, W = g->w, OH = g->oh, OW = g->ow;
#pragma omp parallel for schedule(static) if (g->n * g->c * g->h * g->w > SG_PAR_MIN)
    for (int64_t pl = 0; pl < g->n * g->c; pl++) {
        float *d = dx + pl * H * W;
        const float *s = dy + pl * OH * OW;
        memset(d, 0, (size_t)(H * W) * sizeof(float));
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++) {
                int64_t hs, he, ws, we;
                window(g, oh, ow, &hs, &he, &ws, &we);
                const float v = s[oh * OW + ow] / (float)avg_div(g);
                for (int64_t ih = hs; ih < he; ih++)
                    for (int64_t iw = ws; iw < we; iw++)
                        d[ih * W + iw] += v;
            }
    }
    return 0;
}

int sg_cpu_global_avgpool_forward(const float *x, float *y, int64_t n, int64_t c, int64_t hw)
{
#pragma omp parallel for schedule(static) if (n * c * hw > SG_PAR_MIN)
    for (int64_t pl = 0; pl < n * c; pl++) {
        const float *p = x + pl * hw;
        double s = 0.0;
        for (int64_t j = 0; j < hw; j++)
            s += p[j];
        y[pl] = (float)(s / (double)hw);
    }
    return 0;
}

int sg_cpu_global_avgpool_backward_data(const float *dy, float *dx, int64_t n, int64_t c,
                                        int64_t hw)
{
    const float inv = 1.0f / (float)hw;
#pragma omp parallel for schedule(static) if (n * c * hw > SG_PAR_MIN)
    for (int64_t pl = 0; pl < n * c; pl++) {
        const float v = dy[pl] * inv;
        float *d = dx + pl * hw;
        for (int64_t j = 0; j < hw; j++)
            d[j] = v;
    }
    return 0;
}
