/*
 * conv.c - 2-d convolution on the CPU: im2col + OpenBLAS sgemm.
 *
 * Two strategies (see nn.h), picked per geometry by sg_conv2d_geom_init:
 *
 * Per image (OH*OW >= CONV_PER_IMAGE_MIN): one OpenMP parallel region per
 * call; each thread takes a static share of the images and, for each, runs
 * im2col and a sgemm in its own workspace slice. sgemm called inside a
 * parallel region runs single-threaded (OpenBLAS OpenMP build), so the two
 * never oversubscribe, and there is no barrier per image: this is robust
 * when the cores are shared. Weight gradients go to per-thread partial sums
 * in the workspace, added in thread order at the end.
 *
 * Blocked (small maps): im2col writes a (C*KH*KW) x (block*OH*OW) matrix
 * (row = (c,i,j), column = (image, oh, ow)), so one multi-threaded sgemm
 * covers a block: 4x4 and 2x2 maps still give the GEMM thousands of
 * columns. The GEMM result (K x cols) is scattered to NCHW (and dy gathered
 * from NCHW for the backward passes); the copies are O(K*cols) next to the
 * GEMM's O(K*CKK*cols).
 */
#include <cblas.h>
#include <omp.h>
#include <string.h>

#include "nn.h"  /* first: brings <stddef.h>, which error.h needs */
#include "error.h"

/* Target GEMM columns per block and the largest im2col buffer (floats). */
#define CONV_TARGET_COLS 1024
#define CONV_MAX_COL_FLOATS ((int64_t)8 << 20)
/* Output maps at least this large (OH*OW) use the per-image strategy. */
#define CONV_PER_IMAGE_MIN 256

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
    if (h + 2 * ph < kh || w + 2 * pw < kw)
        return sg_seterr("conv2d: kernel %lldx%lld larger than padded input %lldx%lld "
                         "(input %lldx%lld, padding %lldx%lld) (cpu)",
                         (long long)kh, (long long)kw, (long long)(h + 2 * ph),
                         (long long)(w + 2 * pw), (long long)h, (long long)w, (long long)ph,
                         (long long)pw);
    int64_t ckk = c * kh * kw;
    if (ckk > INT32_MAX || k > INT32_MAX || n * c * h * w > ((int64_t)1 << 40))
        return sg_seterr("conv2d: sizes too large (C*KH*KW = %lld, K = %lld) (cpu)",
                         (long long)ckk, (long long)k);
    g->n = n; g->c = c; g->h = h; g->w = w; g->k = k;
    g->kh = kh; g->kw = kw; g->sh = sh; g->sw = sw; g->ph = ph; g->pw = pw;
    g->oh = (h + 2 * ph - kh) / sh + 1;
    g->ow = (w + 2 * pw - kw) / sw + 1;
    int64_t ohw = g->oh * g->ow;
    int64_t b = (CONV_TARGET_COLS + ohw - 1) / ohw;
    while (b > 1 && ckk * b * ohw > CONV_MAX_COL_FLOATS)
        b--;
    if (b > n)
        b = n;
    if (b * ohw > INT32_MAX)
        b = 1;
    g->block = b < 1 ? 1 : b;
    g->per_image = ohw >= CONV_PER_IMAGE_MIN;
    g->threads = omp_get_max_threads();
    if (g->threads < 1)
        g->threads = 1;
    return 0;
}

/* 1x1, stride 1, no padding: the input image already is its im2col matrix. */
static int is_pointwise(const sg_conv2d_geom *g)
{
    return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0;
}

/* Per-image mode: floats per thread (im2col of one image, then the
 * thread's partial weight and bias gradients). */
static int64_t per_image_slice(const sg_conv2d_geom *g)
{
    const int64_t ckk = g->c * g->kh * g->kw;
    return (is_pointwise(g) ? 0 : ckk * g->oh * g->ow) + g->k * ckk + g->k;
}

size_t sg_cpu_conv2d_workspace_size(const sg_conv2d_geom *g)
{
    if (g->per_image)
        return (size_t)(g->threads * per_image_slice(g));
    int64_t cols = g->block * g->oh * g->ow;
    int64_t ckk = g->c * g->kh * g->kw;
    int64_t sz = 0;
    if (!(g->block == 1 && is_pointwise(g)))
        sz += ckk * cols;          /* im2col matrix */
    if (g->block > 1)
        sz += g->k * cols;         /* GEMM output / gathered dy, K x cols */
    return (size_t)sz;
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

/* ---- per-image strategy ------------------------------------------------------ */

static void fwd_per_image(float *ws, const float *x, float *y, const float *w, const float *b,
                          const sg_conv2d_geom *g)
{
    const int64_t K = g->k, ohw = g->oh * g->ow, ckk = g->c * g->kh * g->kw;
    const int64_t in_img = g->c * g->h * g->w, slice = per_image_slice(g);
    const int pw = is_pointwise(g);
#pragma omp parallel num_threads(g->threads)
    {
        float *col = ws + omp_get_thread_num() * slice;
#pragma omp for schedule(static)
        for (int64_t n = 0; n < g->n; n++) {
            const float *colp = x + n * in_img;
            if (!pw) {
                im2col(colp, col, g, 1, 0);
                colp = col;
            }
            float *yn = y + n * K * ohw;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)K, (int)ohw, (int)ckk,
                        1.0f, w, (int)ckk, colp, (int)ohw, 0.0f, yn, (int)ohw);
            if (b)
                for (int64_t k = 0; k < K; k++) {
                    float *row = yn + k * ohw;
                    const float bk = b[k];
                    for (int64_t p = 0; p < ohw; p++)
                        row[p] += bk;
                }
        }
    }
}

static void bwd_data_per_image(float *ws, const float *dy, float *dx, const float *w,
                               const sg_conv2d_geom *g)
{
    const int64_t K = g->k, ohw = g->oh * g->ow, ckk = g->c * g->kh * g->kw;
    const int64_t in_img = g->c * g->h * g->w, slice = per_image_slice(g);
    const int pw = is_pointwise(g);
#pragma omp parallel num_threads(g->threads)
    {
        float *col = ws + omp_get_thread_num() * slice;
#pragma omp for schedule(static)
        for (int64_t n = 0; n < g->n; n++) {
            float *dxn = dx + n * in_img;
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)ckk, (int)ohw, (int)K,
                        1.0f, w, (int)ckk, dy + n * K * ohw, (int)ohw, 0.0f, pw ? dxn : col,
                        (int)ohw);
            if (!pw)
                col2im(col, dxn, g, 1, 0);
        }
    }
}

static void bwd_params_per_image(float *ws, const float *x, const float *dy, float *dw,
                                 float *db, const sg_conv2d_geom *g)
{
    const int64_t K = g->k, ohw = g->oh * g->ow, ckk = g->c * g->kh * g->kw;
    const int64_t in_img = g->c * g->h * g->w, slice = per_image_slice(g);
    const int64_t colsz = is_pointwise(g) ? 0 : ckk * ohw;
    const int pw = is_pointwise(g);
    const int T = g->threads;
#pragma omp parallel num_threads(T)
    {
        float *col = ws + omp_get_thread_num() * slice;
        float *pdw = col + colsz, *pdb = pdw + K * ckk;
        memset(pdw, 0, (size_t)(K * ckk + K) * sizeof(float));
#pragma omp for schedule(static)
        for (int64_t n = 0; n < g->n; n++) {
            const float *colp = x + n * in_img;
            if (!pw) {
                im2col(colp, col, g, 1, 0);
                colp = col;
            }
            const float *dyn = dy + n * K * ohw;
            if (dw)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)K, (int)ckk, (int)ohw,
                            1.0f, dyn, (int)ohw, colp, (int)ohw, 1.0f, pdw, (int)ckk);
            if (db)
                for (int64_t k = 0; k < K; k++) {
                    const float *row = dyn + k * ohw;
                    double s = 0.0;
                    for (int64_t p = 0; p < ohw; p++)
                        s += row[p];
                    pdb[k] += (float)s;
                }
        }
        /* the implicit barrier of `omp for` has passed: add the partials in thread order */
        const int64_t total = K * ckk + K;
#pragma omp for schedule(static)
        for (int64_t e = 0; e < total; e++) {
            float s = 0.0f;
            for (int t = 0; t < T; t++)
                s += ws[t * slice + colsz + e];
            if (e < K * ckk) {
                if (dw)
                    dw[e] += s;
            } else if (db) {
                db[e - K * ckk] += s;
            }
        }
    }
}

/* ---- entry points ---------------------------------------------------------------- */

int sg_cpu_conv2d_forward(float *ws, const float *x, float *y, const float *w,
                          const float *b, const sg_conv2d_geom *g)
{
    if (g->per_image) {
        fwd_per_image(ws, x, y, w, b, g);
        return 0;
    }
    const int64_t C = g->c, K = g->k, ohw = g->oh * g->ow, ckk = C * g->kh * g->kw;
    const int64_t B = g->block, in_img = C * g->h * g->w, out_img = K * ohw;
    const int pw = is_pointwise(g);
    float *col = ws;
    float *ybuf = ws + ((B == 1 && pw) ? 0 : ckk * B * ohw);
    for (int64_t n0 = 0; n0 < g->n; n0 += B) {
        const int64_t nb = g->n - n0 < B ? g->n - n0 : B, cols = nb * ohw;
        const float *xb = x + n0 * in_img;
        const float *colp = xb;
        if (!(B == 1 && pw)) {
            im2col(xb, col, g, nb, 1);
            colp = col;
        }
        if (B == 1) {
            float *yb = y + n0 * out_img;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)K, (int)ohw, (int)ckk,
                        1.0f, w, (int)ckk, colp, (int)ohw, 0.0f, yb, (int)ohw);
            if (b) {
#pragma omp parallel for schedule(static)
                for (int64_t k = 0; k < K; k++) {
                    float *row = yb + k * ohw;
                    const float bk = b[k];
                    for (int64_t p = 0; p < ohw; p++)
                        row[p] += bk;
                }
            }
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)K, (int)cols, (int)ckk,
                        1.0f, w, (int)ckk, colp, (int)cols, 0.0f, ybuf, (int)cols);
#pragma omp parallel for schedule(static)
            for (int64_t bk = 0; bk < nb * K; bk++) {
                const int64_t bi = bk / K, k = bk % K;
                const float *s = ybuf + k * cols + bi * ohw;
                float *d = y + (n0 + bi) * out_img + k * ohw;
                const float bias = b ? b[k] : 0.0f;
                for (int64_t p = 0; p < ohw; p++)
                    d[p] = s[p] + bias;
            }
        }
    }
    return 0;
}

/* ybuf[k][bi*ohw + p] = dy[n0+bi][k][p] */
static void gather_dy(const float *dy, float *ybuf, const sg_conv2d_geom *g, int64_t n0,
                      int64_t nb)
{
    const int64_t K = g->k, ohw = g->oh * g->ow, cols = nb * ohw;
#pragma omp parallel for schedule(static)
    for (int64_t bk = 0; bk < nb * K; bk++) {
        const int64_t bi = bk / K, k = bk % K;
        memcpy(ybuf + k * cols + bi * ohw, dy + ((n0 + bi) * K + k) * ohw,
               (size_t)ohw * sizeof(float));
    }
}

int sg_cpu_conv2d_backward_data(float *ws, const float *dy, float *dx, const float *w,
                                const sg_conv2d_geom *g)
{
    if (g->per_image) {
        bwd_data_per_image(ws, dy, dx, w, g);
        return 0;
    }
    const int64_t C = g->c, K = g->k, ohw = g->oh * g->ow, ckk = C * g->kh * g->kw;
    const int64_t B = g->block, in_img = C * g->h * g->w, out_img = K * ohw;
    const int pw = is_pointwise(g);
    float *col = ws;
    float *ybuf = ws + ((B == 1 && pw) ? 0 : ckk * B * ohw);
    for (int64_t n0 = 0; n0 < g->n; n0 += B) {
        const int64_t nb = g->n - n0 < B ? g->n - n0 : B, cols = nb * ohw;
        const float *dyp = dy + n0 * out_img;
        if (B > 1) {
            gather_dy(dy, ybuf, g, n0, nb);
            dyp = ybuf;
        }
        float *dxb = dx + n0 * in_img;
        if (B == 1 && pw) {
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)ckk, (int)cols, (int)K,
                        1.0f, w, (int)ckk, dyp, (int)cols, 0.0f, dxb, (int)cols);
        } else {
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)ckk, (int)cols, (int)K,
                        1.0f, w, (int)ckk, dyp, (int)cols, 0.0f, col, (int)cols);
            col2im(col, dxb, g, nb, 1);
        }
    }
    return 0;
}

int sg_cpu_conv2d_backward_params(float *ws, const float *x, const float *dy, float *dw,
                                  float *db, const sg_conv2d_geom *g)
{
    if (g->per_image) {
        bwd_params_per_image(ws, x, dy, dw, db, g);
        return 0;
    }
    const int64_t C = g->c, K = g->k, ohw = g->oh * g->ow, ckk = C * g->kh * g->kw;
    const int64_t B = g->block, in_img = C * g->h * g->w, out_img = K * ohw;
    const int pw = is_pointwise(g);
    float *col = ws;
    float *ybuf = ws + ((B == 1 && pw) ? 0 : ckk * B * ohw);
    for (int64_t n0 = 0; n0 < g->n; n0 += B) {
        const int64_t nb = g->n - n0 < B ? g->n - n0 : B, cols = nb * ohw;
        const float *xb = x + n0 * in_img;
        const float *colp = xb;
        if (!(B == 1 && pw)) {
            im2col(xb, col, g, nb, 1);
            colp = col;
        }
        const float *dyp = dy + n0 * out_img;
        if (B > 1) {
            gather_dy(dy, ybuf, g, n0, nb);
            dyp = ybuf;
        }
        if (dw)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)K, (int)ckk, (int)cols,
                        1.0f, dyp, (int)cols, colp, (int)cols, 1.0f, dw, (int)ckk);
        if (db) {
#pragma omp parallel for schedule(static)
            for (int64_t k = 0; k < K; k++) {
                const float *row = dyp + k * cols;
                double s = 0.0;
                for (int64_t p = 0; p < cols; p++)
                    s += row[p];
                db[k] += (float)s;
            }
        }
    }
    return 0;
}
