/*
 * conv.c - 2-d convolution on the CPU: im2col + OpenBLAS sgemm, and the
 * dispatch to oneDNN (conv_dnnl.c) for the passes measured faster there on
 * this machine (conv_choice.c).
 *
 * The unit of work is a block of images: im2col writes a (C*KH*KW) x
 * (nb*OH*OW) matrix (row = (c,i,j), column = (image, oh, ow)) and one sgemm
 * covers the block, so small late-stage maps (4x4, 2x2) still give the GEMM
 * wide matrices; with nb > 1 the K x cols result is scattered to NCHW (and
 * dy gathered from NCHW for the backward passes), O(K*cols) copies next to
 * the GEMM's O(K*CKK*cols). Blocks of one image read and write the
 * activations directly.
 *
 * Threads (picked by sg_conv2d_geom_init):
 *  - per thread (the batch has at least 2 images per thread): ONE OpenMP
 *    parallel region per call; each thread takes a contiguous share of the
 *    images and runs its blocks with its own workspace slice and a
 *    single-threaded sgemm (OpenBLAS's OpenMP build runs single-threaded
 *    inside a parallel region). No barrier per block and no nested pools:
 *    this keeps both cores busy and degrades gracefully when the cores are
 *    shared. Weight gradients go to per-thread partial sums in the
 *    workspace, added in thread order at the end (deterministic for a given
 *    thread count).
 *  - shared (small batches): blocks run one after another, each loop and
 *    each sgemm using the whole pool.
 */
#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"  /* first: brings <stddef.h>, which error.h needs */
#include "conv_choice.h"
#include "conv_dnnl.h"
#include "error.h"

/* Target GEMM columns per block, and the largest im2col buffer (floats) of
 * one block: per thread in per-thread mode, in total in shared mode. */
#define CONV_TARGET_COLS 1024
#define CONV_MAX_COL_FLOATS ((int64_t)4 << 20)

/* 1x1, stride 1, no padding: the input image already is its im2col matrix. */
static int is_pointwise(const sg_conv2d_geom *g)
{
    return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0;
}

void sg_cpu_conv2d_cache_clear(void)
{
#ifdef SG_HAVE_DNNL
    sg_dnnl_conv2d_cache_clear();
#endif
}

int sg_conv2d_geom_init(sg_conv2d_geom *g, int64_t n, int64_t c, int64_t h, int64_t w,
                        int64_t k, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                        int64_t ph, int64_t pw)
{
    if (n <= 0 || c <= 0 || h <= 0 || w <= 0 || k <= 0 || kh <= 0 || kw <= 0 || sh <= 0 ||
        sw <= 0 || ph < 0 || pw < 0)
        return sg_seterr("conv2d: invalid geometry: input %lldx%lldx%lldx%lld, weight "
                         "%lldx%lldx%lldx%lld, stride %lldx%lld, padding %lldx%lld (cpu)",
                         (long long)n, (long long)c, (long long)h, (long long)w,
                         (long long)k, (long long)c, (long long)kh, (long long)kw,
                         (long long)sh, (long long)sw, (long long)ph, (long long)pw);
    /* bounded before any arithmetic: a stride or padding of 2^62 (from Lua) would
     * overflow the sums and products below */
    const int64_t lim = (int64_t)1 << 30;
    if (h > lim || w > lim || kh > lim || kw > lim || sh > lim || sw > lim || ph > lim || pw > lim)
        return sg_seterr("conv2d: sizes too large: input %lldx%lld, kernel %lldx%lld, stride "
                         "%lldx%lld, padding %lldx%lld (at most %lld each) (cpu)", (long long)h,
                         (long long)w, (long long)kh, (long long)kw, (long long)sh, (long long)sw,
                         (long long)ph, (long long)pw, (long long)lim);
    if (h + 2 * ph < kh || w + 2 * pw < kw)
        return sg_seterr("conv2d: kernel %lldx%lld larger than padded input %lldx%lld "
                         "(input %lldx%lld, padding %lldx%lld) (cpu)",
                         (long long)kh, (long long)kw, (long long)(h + 2 * ph),
                         (long long)(w + 2 * pw), (long long)h, (long long)w, (long long)ph,
                         (long long)pw);
    int64_t ckk = c * kh * kw;
    const int64_t oh = (h + 2 * ph - kh) / sh + 1, ow = (w + 2 * pw - kw) / sw + 1;
    if (ckk > INT32_MAX || k > INT32_MAX || n * c * h * w > ((int64_t)1 << 40) ||
        oh > INT32_MAX / ow)
        return sg_seterr("conv2d: sizes too large (C*KH*KW = %lld, K = %lld, output %lldx%lld) "
                         "(cpu)", (long long)ckk, (long long)k, (long long)oh, (long long)ow);
    g->n = n; g->c = c; g->h = h; g->w = w; g->k = k;
    g->kh = kh; g->kw = kw; g->sh = sh; g->sw = sw; g->ph = ph; g->pw = pw;
    g->oh = oh;
    g->ow = ow;
    g->threads = omp_get_max_threads();
    if (g->threads < 1)
        g->threads = 1;
    g->per_thread = g->threads == 1 || n >= 2 * (int64_t)g->threads;
    /* images one thread (or the whole pool) works through */
    const int64_t share = g->per_thread ? (n + g->threads - 1) / g->threads : n;
    const int64_t ohw = g->oh * g->ow;
    int64_t b = (CONV_TARGET_COLS + ohw - 1) / ohw;
    while (b > 1 && ckk * b * ohw > CONV_MAX_COL_FLOATS)
        b--;
    if (b > share)
        b = share;
    if (b * ohw > INT32_MAX)
        b = 1;
    g->block = b < 1 ? 1 : b;
    g->dnnl = sg_conv_choice_known(g);
    return 0;
}

/* Workspace of one block worker: im2col matrix, then the K x cols buffer. */
static int64_t col_floats(const sg_conv2d_geom *g)
{
    if (g->block == 1 && is_pointwise(g))
        return 0;
    return g->c * g->kh * g->kw * g->block * g->oh * g->ow;
}

static int64_t ybuf_floats(const sg_conv2d_geom *g)
{
    return g->block > 1 ? g->k * g->block * g->oh * g->ow : 0;
}

/* Per-thread slice: col, ybuf, partial dw (K x CKK), partial db (K). */
static int64_t slice_floats(const sg_conv2d_geom *g)
{
    return col_floats(g) + ybuf_floats(g) + g->k * g->c * g->kh * g->kw + g->k;
}

static size_t im2col_workspace_size(const sg_conv2d_geom *g)
{
    if (g->per_thread)
        return (size_t)(g->threads * slice_floats(g));
    return (size_t)(col_floats(g) + ybuf_floats(g));
}

/* g with its passes on oneDNN known (measured now when g->dnnl is -1). */
static sg_conv2d_geom resolved(const sg_conv2d_geom *g)
{
    sg_conv2d_geom r = *g;
    if (r.dnnl < 0)
        r.dnnl = sg_cpu_conv2d_passes(g);
    return r;
}

size_t sg_cpu_conv2d_workspace_size(const sg_conv2d_geom *g)
{
    /* the choice is entered in the table of those in effect (measured first when new) */
    sg_conv2d_geom r = *g;
    if (r.dnnl < 0)
        r.dnnl = sg_cpu_conv2d_passes(g);
    else
        sg_conv_choice_note(g);
#ifdef SG_HAVE_DNNL
    if (r.dnnl) {
        const size_t im = im2col_workspace_size(&r);
        const size_t dn = sg_dnnl_conv2d_workspace_size(&r, im);
        return (r.dnnl & SG_CONV_PASS_ALL) == SG_CONV_PASS_ALL || dn > im ? dn : im;
    }
#endif
    return im2col_workspace_size(&r);
}

/* Range [lo, hi) of output columns ow whose input column ow*sw - pw + j is inside [0, W). */
static inline void valid_range(int64_t j, int64_t s, int64_t p, int64_t in, int64_t out,
                               int64_t *lo, int64_t *hi)
{
    int64_t a = p - j;                       /* need ow*s >= a */
    int64_t l = a > 0 ? (a + s - 1) / s : 0;
    int64_t bmax = in - 1 + p - j;           /* need ow*s <= bmax */
    int64_t h = bmax < 0 ? 0 : bmax / s + 1;
    if (h > out)
        h = out;
    if (l > h)
        l = h;
    *lo = l;
    *hi = h;
}

/* col[(c,i,j)][b*OHW + oh*OW + ow] = x[b][c][oh*sh-ph+i][ow*sw-pw+j] (0 outside). */
static void im2col(const float *x, float *col, const sg_conv2d_geom *g, int64_t nb, int par)
{
    const int64_t C = g->c, H = g->h, W = g->w, KH = g->kh, KW = g->kw;
    const int64_t OH = g->oh, OW = g->ow, ohw = OH * OW, cols = nb * ohw;
    const int64_t rows = C * KH * KW;
#pragma omp parallel for schedule(static) if (par)
    for (int64_t r = 0; r < rows; r++) {
        const int64_t j = r % KW, i = (r / KW) % KH, c = r / (KW * KH);
        int64_t lo, hi;
        valid_range(j, g->sw, g->pw, W, OW, &lo, &hi);
        float *dst = col + r * cols;
        for (int64_t b = 0; b < nb; b++) {
            const float *src = x + (b * C + c) * H * W;
            for (int64_t oh = 0; oh < OH; oh++) {
                float *d = dst + b * ohw + oh * OW;
                const int64_t ih = oh * g->sh - g->ph + i;
                if (ih < 0 || ih >= H) {
                    memset(d, 0, (size_t)OW * sizeof(float));
                    continue;
                }
                const float *s = src + ih * W;
                const int64_t off = j - g->pw;  /* input column = ow*sw + off */
                for (int64_t ow = 0; ow < lo; ow++)
                    d[ow] = 0.0f;
                if (g->sw == 1) {
                    if (hi > lo)
                        memcpy(d + lo, s + lo + off, (size_t)(hi - lo) * sizeof(float));
                } else {
                    for (int64_t ow = lo; ow < hi; ow++)
                        d[ow] = s[ow * g->sw + off];
                }
                for (int64_t ow = hi; ow < OW; ow++)
                    d[ow] = 0.0f;
            }
        }
    }
}

/* dx[b][c] = sum over (i,j) of col rows scattered back (dx overwritten). */
static void col2im(const float *col, float *dx, const sg_conv2d_geom *g, int64_t nb, int par)
{
    const int64_t C = g->c, H = g->h, W = g->w, KH = g->kh, KW = g->kw;
    const int64_t OH = g->oh, OW = g->ow, ohw = OH * OW, cols = nb * ohw;
#pragma omp parallel for schedule(static) if (par)
    for (int64_t bc = 0; bc < nb * C; bc++) {
        const int64_t b = bc / C, c = bc % C;
        float *plane = dx + bc * H * W;
        memset(plane, 0, (size_t)(H * W) * sizeof(float));
        for (int64_t i = 0; i < KH; i++)
            for (int64_t j = 0; j < KW; j++) {
                int64_t lo, hi;
                valid_range(j, g->sw, g->pw, W, OW, &lo, &hi);
                const float *src = col + ((c * KH + i) * KW + j) * cols + b * ohw;
                for (int64_t oh = 0; oh < OH; oh++) {
                    const int64_t ih = oh * g->sh - g->ph + i;
                    if (ih < 0 || ih >= H)
                        continue;
                    float *d = plane + ih * W;
                    const int64_t off = j - g->pw;
                    const float *s = src + oh * OW;
                    for (int64_t ow = lo; ow < hi; ow++)
                        d[ow * g->sw + off] += s[ow];
                }
            }
    }
}

/* ybuf[k][bi*ohw + p] = dy[n0+bi][k][p] */
static void gather_dy(const float *dy, float *ybuf, const sg_conv2d_geom *g, int64_t n0,
                      int64_t nb, int par)
{
    const int64_t K = g->k, ohw = g->oh * g->ow, cols = nb * ohw;
#pragma omp parallel for schedule(static) if (par)
    for (int64_t bk = 0; bk < nb * K; bk++) {
        const int64_t bi = bk / K, k = bk % K;
        memcpy(ybuf + k * cols + bi * ohw, dy + ((n0 + bi) * K + k) * ohw,
               (size_t)ohw * sizeof(float));
    }
}

/* ---- one block of nb images starting at n0 (par: use the pool inside) ------------ */

/* The tensors of a forward (in x, out y, w, b) or backward-data (in dy, out dx,
 * w) pass, for run_blocks. */
typedef struct {
    const float *in, *w, *b;
    float *out;
} conv_io;

static void fwd_block(const conv_io *io, float *col, float *ybuf, const sg_conv2d_geom *g,
                      int64_t n0, int64_t nb, int par)
{
    const float *x = io->in, *w = io->w, *b = io->b;
    float *y = io->out;
    const int64_t K = g->k, ohw = g->oh * g->ow, ckk = g->c * g->kh * g->kw;
    const int64_t cols = nb * ohw, out_img = K * ohw;
    const float *colp = x + n0 * g->c * g->h * g->w;
    if (!(nb == 1 && is_pointwise(g))) {
        im2col(colp, col, g, nb, par);
        colp = col;
    }
    if (nb == 1) {
        float *yb = y + n0 * out_img;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)K, (int)ohw, (int)ckk,
                    1.0f, w, (int)ckk, colp, (int)ohw, 0.0f, yb, (int)ohw);
        if (b) {
#pragma omp parallel for schedule(static) if (par)
            for (int64_t k = 0; k < K; k++) {
                float *row = yb + k * ohw;
                const float bk = b[k];
                for (int64_t p = 0; p < ohw; p++)
                    row[p] += bk;
            }
        }
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)K, (int)cols, (int)ckk, 1.0f,
                w, (int)ckk, colp, (int)cols, 0.0f, ybuf, (int)cols);
#pragma omp parallel for schedule(static) if (par)
    for (int64_t bk = 0; bk < nb * K; bk++) {
        const int64_t bi = bk / K, k = bk % K;
        const float *s = ybuf + k * cols + bi * ohw;
        float *d = y + (n0 + bi) * out_img + k * ohw;
        const float bias = b ? b[k] : 0.0f;
        for (int64_t p = 0; p < ohw; p++)
            d[p] = s[p] + bias;
    }
}

static void bwd_data_block(const conv_io *io, float *col, float *ybuf, const sg_conv2d_geom *g,
                           int64_t n0, int64_t nb, int par)
{
    const float *dy = io->in, *w = io->w;
    float *dx = io->out;
    const int64_t K = g->k, ohw = g->oh * g->ow, ckk = g->c * g->kh * g->kw;
    const int64_t cols = nb * ohw;
    const float *dyp = dy + n0 * K * ohw;
    if (nb > 1) {
        gather_dy(dy, ybuf, g, n0, nb, par);
        dyp = ybuf;
    }
    float *dxb = dx + n0 * g->c * g->h * g->w;
    if (nb == 1 && is_pointwise(g)) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)ckk, (int)cols, (int)K, 1.0f,
                    w, (int)ckk, dyp, (int)cols, 0.0f, dxb, (int)cols);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)ckk, (int)cols, (int)K, 1.0f, w,
                (int)ckk, dyp, (int)cols, 0.0f, col, (int)cols);
    col2im(col, dxb, g, nb, par);
}

/* dw += dy x^T and db += row sums, for one block (dw/db may be NULL). */
static void bwd_params_block(const float *x, const float *dy, float *dw, float *db, float *col,
                             float *ybuf, const sg_conv2d_geom *g, int64_t n0, int64_t nb,
                             int par)
{
    const int64_t K = g->k, ohw = g->oh * g->ow, ckk = g->c * g->kh * g->kw;
    const int64_t cols = nb * ohw;
    const float *colp = x + n0 * g->c * g->h * g->w;
    if (!(nb == 1 && is_pointwise(g))) {
        im2col(colp, col, g, nb, par);
        colp = col;
    }
    const float *dyp = dy + n0 * K * ohw;
    if (nb > 1) {
        gather_dy(dy, ybuf, g, n0, nb, par);
        dyp = ybuf;
    }
    if (dw)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)K, (int)ckk, (int)cols, 1.0f,
                    dyp, (int)cols, colp, (int)cols, 1.0f, dw, (int)ckk);
    if (db) {
#pragma omp parallel for schedule(static) if (par)
        for (int64_t k = 0; k < K; k++) {
            const float *row = dyp + k * cols;
            double s = 0.0;
            for (int64_t p = 0; p < cols; p++)
                s += row[p];
            db[k] += (float)s;
        }
    }
}

/* ---- entry points ----------------------------------------------------------------- */

/* This thread's images [lo, hi) of n split over nt threads. */
static void share_of(int64_t n, int t, int nt, int64_t *lo, int64_t *hi)
{
    const int64_t per = (n + nt - 1) / nt;
    *lo = t * per < n ? t * per : n;
    *hi = *lo + per < n ? *lo + per : n;
}

/* Runs block over the images in blocks of g->block: in turn with the thread
 * pool inside each block, or (g->per_thread) each thread over its share of
 * the images with its own slice of ws. */
static int run_blocks(float *ws, const sg_conv2d_geom *g, const conv_io *io,
                      void (*block)(const conv_io *, float *, float *, const sg_conv2d_geom *,
                                    int64_t, int64_t, int))
{
    const int64_t B = g->block;
    if (!g->per_thread) {
        float *col = ws, *ybuf = ws + col_floats(g);
        for (int64_t n0 = 0; n0 < g->n; n0 += B)
            block(io, col, ybuf, g, n0, g->n - n0 < B ? g->n - n0 : B, 1);
        return 0;
    }
    const int64_t slice = slice_floats(g);
#pragma omp parallel num_threads(g->threads)
    {
        const int t = omp_get_thread_num();
        float *col = ws + t * slice, *ybuf = col + col_floats(g);
        int64_t lo, hi;
        share_of(g->n, t, omp_get_num_threads(), &lo, &hi);
        for (int64_t n0 = lo; n0 < hi; n0 += B)
            block(io, col, ybuf, g, n0, hi - n0 < B ? hi - n0 : B, 0);
    }
    return 0;
}

int sg_cpu_conv2d_forward(float *ws, const float *x, float *y, const float *w,
                          const float *b, const sg_conv2d_geom *g0)
{
    const sg_conv2d_geom r = resolved(g0), *g = &r;
#ifdef SG_HAVE_DNNL
    if (g->dnnl & SG_CONV_PASS_FWD)
        return sg_dnnl_conv2d_forward(ws, x, y, w, b, g);
#endif
    const conv_io io = {x, w, b, y};
    return run_blocks(ws, g, &io, fwd_block);
}

int sg_cpu_conv2d_backward_data(float *ws, const float *dy, float *dx, const float *w,
                                const sg_conv2d_geom *g0)
{
    const sg_conv2d_geom r = resolved(g0), *g = &r;
#ifdef SG_HAVE_DNNL
    if (g->dnnl & SG_CONV_PASS_BWD_DATA)
        return sg_dnnl_conv2d_backward_data(ws, dy, dx, w, g);
#endif
    const conv_io io = {dy, w, NULL, dx};
    return run_blocks(ws, g, &io, bwd_data_block);
}

#ifdef SG_HAVE_DNNL
/* db += per-channel sums of dy in double, without a workspace (the bias
 * gradient when oneDNN computes the weight gradient). */
static void bias_grad(const float *dy, float *db, const sg_conv2d_geom *g)
{
    const int64_t K = g->k, ohw = g->oh * g->ow;
#pragma omp parallel for schedule(static) if (g->n * K * ohw >= SG_PAR_MIN)
    for (int64_t k = 0; k < K; k++) {
        double s = 0.0;
        for (int64_t n = 0; n < g->n; n++) {
            const float *row = dy + (n * K + k) * ohw;
            for (int64_t p = 0; p < ohw; p++)
                s += row[p];
        }
        db[k] += (float)s;
    }
}
#endif

int sg_cpu_conv2d_backward_params(float *ws, const float *x, const float *dy, float *dw,
                                  float *db, const sg_conv2d_geom *g0)
{
    const sg_conv2d_geom r = resolved(g0), *g = &r;
#ifdef SG_HAVE_DNNL
    if (g->dnnl & SG_CONV_PASS_BWD_WEIGHTS) {
        if (dw && sg_dnnl_conv2d_backward_weights(ws, x, dy, dw, g))
            return -1;
        if (db)
            bias_grad(dy, db, g);
        return 0;
    }
#endif
    const int64_t B = g->block;
    if (!g->per_thread) {
        float *col = ws, *ybuf = ws + col_floats(g);
        for (int64_t n0 = 0; n0 < g->n; n0 += B)
            bwd_params_block(x, dy, dw, db, col, ybuf, g, n0, g->n - n0 < B ? g->n - n0 : B, 1);
        return 0;
    }
    const int64_t slice = slice_floats(g), off = col_floats(g) + ybuf_floats(g);
    const int64_t nw = g->k * g->c * g->kh * g->kw, total = nw + g->k;
#pragma omp parallel num_threads(g->threads)
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        float *col = ws + t * slice, *ybuf = col + col_floats(g);
        float *pdw = col + off, *pdb = pdw + nw;
        memset(pdw, 0, (size_t)total * sizeof(float));
        int64_t lo, hi;
        share_of(g->n, t, nt, &lo, &hi);
        for (int64_t n0 = lo; n0 < hi; n0 += B)
            bwd_params_block(x, dy, dw ? pdw : NULL, db ? pdb : NULL, col, ybuf, g, n0,
                             hi - n0 < B ? hi - n0 : B, 0);
#pragma omp barrier
        /* add the partial sums in thread order (deterministic) */
#pragma omp for schedule(static)
        for (int64_t e = 0; e < total; e++) {
            float s = 0.0f;
            for (int u = 0; u < nt; u++)
                s += ws[u * slice + off + e];
            if (e < nw) {
                if (dw)
                    dw[e] += s;
            } else if (db) {
                db[e - nw] += s;
            }
        }
    }
    return 0;
}
