/*
 * test_nn_ops.c - semantics of the CPU layer kernels beyond gradients:
 *  - conv2d against a direct double-precision loop for shapes that take the
 *    one-image blocks (32x32 output), multi-image blocks with a ragged last
 *    block, the pointwise path, in both threading modes, with im2col and
 *    (when built with it) oneDNN; oneDNN's special cases (no bias, only a
 *    bias gradient, accumulation, strides that skip the input's end) and
 *    bit-identical repeats with 1 and 2 threads;
 *  - BatchNorm running statistics (momentum 0.1, unbiased variance, as
 *    PyTorch) and "a trial forward (update_running = 0) leaves them alone
 *    and gives the same output", and batchnorm_apply remakes an output from
 *    the saved statistics bit for bit;
 *  - dropout masks (values, rate, reproducibility from the rng state);
 *  - cross-entropy value, correct count and bad-label errors;
 *  - the flat-vector SA updates; geometry errors name the sizes.
 */
#include "nn_check.h"

#include <omp.h>

#include "conv_choice.h"
#include "error.h"

static sg_rng R;

static void conv_ref(const float *x, const float *w, const float *b, double *y,
                     const sg_conv2d_geom *g)
{
    for (int64_t n = 0; n < g->n; n++)
        for (int64_t k = 0; k < g->k; k++)
            for (int64_t oh = 0; oh < g->oh; oh++)
                for (int64_t ow = 0; ow < g->ow; ow++) {
                    double s = b ? b[k] : 0.0;
                    for (int64_t c = 0; c < g->c; c++)
                        for (int64_t i = 0; i < g->kh; i++)
                            for (int64_t j = 0; j < g->kw; j++) {
                                int64_t ih = oh * g->sh - g->ph + i, iw = ow * g->sw - g->pw + j;
                                if (ih < 0 || ih >= g->h || iw < 0 || iw >= g->w)
                                    continue;
                                s += (double)w[((k * g->c + c) * g->kh + i) * g->kw + j] *
                                     x[((n * g->c + c) * g->h + ih) * g->w + iw];
                            }
                    y[((n * g->k + k) * g->oh + oh) * g->ow + ow] = s;
                }
}

/* Forward against conv_ref; backward_data / backward_params against the
 * block-size-1 result computed the same way (already gradient-checked). */
static const char *impl_name(sg_conv_impl impl)
{
    return impl == SG_CONV_DNNL       ? "dnnl"
           : impl == SG_CONV_WINOGRAD ? "winograd"
           : impl == SG_CONV_IM2COL   ? "im2col"
                                      : "auto";
}

static void test_conv_ref_impl(int64_t n, int64_t c, int64_t h, int64_t w, int64_t k,
                               int64_t kh, int64_t s, int64_t p, int64_t block,
                               sg_conv_impl impl)
{
    sg_conv2d_geom g;
    EXPECT(sg_cpu_conv2d_set_impl(impl) == 0, "%s", sg_geterr());
    EXPECT(sg_conv2d_geom_init(&g, n, c, h, w, k, kh, kh, s, s, p, p) == 0, "%s", sg_geterr());
    const int wino = impl == SG_CONV_WINOGRAD && sg_cpu_conv2d_winograd_ok(&g);
    EXPECT(g.dnnl == (impl == SG_CONV_DNNL ? SG_CONV_PASS_ALL
                      : impl == SG_CONV_WINOGRAD ? SG_CONV_PASS_ALL | (wino ? SG_CONV_WINO_ALL : 0)
                                                 : 0),
           "%s: geometry dnnl flag %d", impl_name(impl), g.dnnl);
    const double tol = 1e-5;  /* Winograd's transforms round more, still within it (nn.h) */
    const int64_t auto_block = g.block;
    if (block != 0) {         /* forced: +b shared mode, -b per-thread mode, block |b| */
        g.per_thread = block < 0;
        g.block = block < 0 ? -block : block;
    }
    const int64_t nx = n * c * h * w, nw = k * c * kh * kh, ny = n * k * g.oh * g.ow;
    float *x = tbuf(nx), *wt = tbuf(nw), *b = tbuf(k), *y = tbuf(ny), *dy = tbuf(ny);
    float *ws = tbuf((int64_t)sg_cpu_conv2d_workspace_size(&g));
    double *yr = malloc((size_t)ny * sizeof(double));
    fill_uniform(&R, x, nx, -1, 1);
    fill_uniform(&R, wt, nw, -1, 1);
    fill_uniform(&R, b, k, -1, 1);
    fill_uniform(&R, dy, ny, -1, 1);
    EXPECT(sg_cpu_conv2d_forward(ws, x, y, wt, b, &g) == 0, "%s", sg_geterr());
    conv_ref(x, wt, b, yr, &g);
    double maxd = 0.0, maxr = 0.0;
    for (int64_t i = 0; i < ny; i++) {
        maxd = fmax(maxd, fabs(y[i] - yr[i]));
        maxr = fmax(maxr, fabs(yr[i]));
    }
    EXPECT(maxd <= tol * (1.0 + maxr), "%s conv %lldx%lldx%lldx%lld k%lld %lldx%lld s%lld p%lld "
           "block %lld per-image %d (auto block %lld): forward max error %g (max |y| %g)",
           impl_name(impl), (long long)n,
           (long long)c, (long long)h, (long long)w, (long long)k, (long long)kh, (long long)kh,
           (long long)s, (long long)p, (long long)g.block, g.per_thread, (long long)auto_block, maxd,
           maxr);

    /* Backward with this block size vs. a direct double evaluation. */
    float *dx = tbuf(nx), *dw = tbuf(nw), *db = tbuf(k);
    EXPECT(sg_cpu_conv2d_backward_data(ws, dy, dx, wt, &g) == 0, "%s", sg_geterr());
    EXPECT(sg_cpu_conv2d_backward_params(ws, x, dy, dw, db, &g) == 0, "%s", sg_geterr());
    double *dxr = calloc((size_t)nx, sizeof(double)), *dwr = calloc((size_t)nw, sizeof(double));
    double *dbr = calloc((size_t)k, sizeof(double));
    for (int64_t in = 0; in < n; in++)
        for (int64_t kk = 0; kk < k; kk++)
            for (int64_t oh = 0; oh < g.oh; oh++)
                for (int64_t ow = 0; ow < g.ow; ow++) {
                    const double d = dy[((in * k + kk) * g.oh + oh) * g.ow + ow];
                    dbr[kk] += d;
                    for (int64_t cc = 0; cc < c; cc++)
                        for (int64_t i = 0; i < kh; i++)
                            for (int64_t j = 0; j < kh; j++) {
                                int64_t ih = oh * s - p + i, iw = ow * s - p + j;
                                if (ih < 0 || ih >= h || iw < 0 || iw >= w)
                                    continue;
                                const int64_t xi = ((in * c + cc) * h + ih) * w + iw;
                                const int64_t wi = ((kk * c + cc) * kh + i) * kh + j;
                                dxr[xi] += d * wt[wi];
                                dwr[wi] += d * x[xi];
                            }
                }
    double e1 = 0, m1 = 0, e2 = 0, m2 = 0, e3 = 0, m3 = 0;
    for (int64_t i = 0; i < nx; i++) { e1 = fmax(e1, fabs(dx[i] - dxr[i])); m1 = fmax(m1, fabs(dxr[i])); }
    for (int64_t i = 0; i < nw; i++) { e2 = fmax(e2, fabs(dw[i] - dwr[i])); m2 = fmax(m2, fabs(dwr[i])); }
    for (int64_t i = 0; i < k; i++) { e3 = fmax(e3, fabs(db[i] - dbr[i])); m3 = fmax(m3, fabs(dbr[i])); }
    EXPECT(e1 <= tol * (1 + m1) && e2 <= tol * (1 + m2) && e3 <= tol * (1 + m3),
           "%s conv %lldx%lldx%lldx%lld k%lld %lldx%lld s%lld p%lld block %lld per-image %d "
           "backward errors: dx %g (max %g) dw %g (max %g) db %g (max %g)", impl_name(impl),
           (long long)n, (long long)c, (long long)h, (long long)w, (long long)k, (long long)kh,
           (long long)kh, (long long)s, (long long)p, (long long)g.block, g.per_thread, e1, m1,
           e2, m2, e3, m3);
    free(x); free(wt); free(b); free(y); free(dy); free(ws); free(yr); free(dx); free(dw);
    free(db); free(dxr); free(dwr); free(dbr);
    sg_cpu_conv2d_set_impl(SG_CONV_AUTO);
}

/* Every conv test with im2col and, when built in, with oneDNN. */
static void test_conv_ref(int64_t n, int64_t c, int64_t h, int64_t w, int64_t k, int64_t kh,
                          int64_t s, int64_t p, int64_t block)
{
    test_conv_ref_impl(n, c, h, w, k, kh, s, p, block, SG_CONV_IM2COL);
    if (sg_cpu_conv2d_have_dnnl() && block == 0) {
        test_conv_ref_impl(n, c, h, w, k, kh, s, p, 0, SG_CONV_DNNL);
        test_conv_ref_impl(n, c, h, w, k, kh, s, p, 0, SG_CONV_WINOGRAD);
    }
}

/* One forward + backward with the current thread count into fresh buffers;
 * dw/db accumulate onto `init` (copied in first). */
typedef struct {
    float *y, *dx, *dw, *db;
} conv_out;

static conv_out conv_run(const sg_conv2d_geom *g, const float *x, const float *wt, const float *b,
                         const float *dy, const float *dw_init, const float *db_init)
{
    const int64_t nx = g->n * g->c * g->h * g->w, nw = g->k * g->c * g->kh * g->kw;
    const int64_t ny = g->n * g->k * g->oh * g->ow;
    conv_out o = { tbuf(ny), tbuf(nx), tbuf(nw), tbuf(g->k) };
    memcpy(o.dw, dw_init, (size_t)nw * sizeof(float));
    memcpy(o.db, db_init, (size_t)g->k * sizeof(float));
    float *ws = tbuf((int64_t)sg_cpu_conv2d_workspace_size(g));
    EXPECT(sg_cpu_conv2d_forward(ws, x, o.y, wt, b, g) == 0, "%s", sg_geterr());
    EXPECT(sg_cpu_conv2d_backward_params(ws, x, dy, o.dw, o.db, g) == 0, "%s", sg_geterr());
    EXPECT(sg_cpu_conv2d_backward_data(ws, dy, o.dx, wt, g) == 0, "%s", sg_geterr());
    free(ws);
    return o;
}

static void conv_out_free(conv_out *o) { free(o->y); free(o->dx); free(o->dw); free(o->db); }

/* oneDNN only (direct, then Winograd where it runs): special arguments, and repeats bit for bit (the determinism
 * promise: same thread count, same bits, also across a cache rebuild). */
static void test_conv_dnnl_impl(sg_conv_impl impl)
{
    const char *name = impl_name(impl);
    if (!sg_cpu_conv2d_have_dnnl()) {
        EXPECT(sg_cpu_conv2d_set_impl(impl) == -1 && strstr(sg_geterr(), "without oneDNN"),
               "set_impl(%s) without oneDNN: '%s'", name, sg_geterr());
        return;
    }
    EXPECT(sg_cpu_conv2d_set_impl(impl) == 0, "%s", sg_geterr());
    const int threads0 = omp_get_max_threads();
    for (int nt = 1; nt <= 2; nt++) {
        omp_set_num_threads(nt);
        sg_conv2d_geom g;
        EXPECT(sg_conv2d_geom_init(&g, 6, 24, 10, 10, 40, 3, 3, 1, 1, 1, 1) == 0 && g.dnnl,
               "%s", sg_geterr());
        const int64_t nx = g.n * g.c * g.h * g.w, nw = g.k * g.c * 9, ny = g.n * g.k * g.oh * g.ow;
        float *x = tbuf(nx), *wt = tbuf(nw), *b = tbuf(g.k), *dy = tbuf(ny);
        float *dw0 = tbuf(nw), *db0 = tbuf(g.k), *zw = tbuf(nw), *zb = tbuf(g.k);
        fill_uniform(&R, x, nx, -1, 1);
        fill_uniform(&R, wt, nw, -1, 1);
        fill_uniform(&R, b, g.k, -1, 1);
        fill_uniform(&R, dy, ny, -1, 1);
        fill_uniform(&R, dw0, nw, -1, 1);
        fill_uniform(&R, db0, g.k, -1, 1);
        conv_out a = conv_run(&g, x, wt, b, dy, dw0, db0);
        conv_out a2 = conv_run(&g, x, wt, b, dy, dw0, db0);
        sg_cpu_conv2d_cache_clear();
        conv_out a3 = conv_run(&g, x, wt, b, dy, dw0, db0);
        EXPECT(!memcmp(a.y, a2.y, (size_t)ny * 4) && !memcmp(a.dx, a2.dx, (size_t)nx * 4) &&
               !memcmp(a.dw, a2.dw, (size_t)nw * 4) && !memcmp(a.db, a2.db, (size_t)g.k * 4),
               "%s conv, %d threads: a repeat differs", name, nt);
        EXPECT(!memcmp(a.y, a3.y, (size_t)ny * 4) && !memcmp(a.dx, a3.dx, (size_t)nx * 4) &&
               !memcmp(a.dw, a3.dw, (size_t)nw * 4) && !memcmp(a.db, a3.db, (size_t)g.k * 4),
               "%s conv, %d threads: a repeat after clearing the cache differs", name, nt);
        /* accumulation: dw0 + grad, against a run from zero */
        conv_out z = conv_run(&g, x, wt, b, dy, zw, zb);
        int bad = 0;
        for (int64_t i = 0; i < nw; i++)
            bad += fabsf(a.dw[i] - (dw0[i] + z.dw[i])) > 1e-5f * (1 + fabsf(z.dw[i]));
        for (int64_t i = 0; i < g.k; i++)
            bad += fabsf(a.db[i] - (db0[i] + z.db[i])) > 1e-5f * (1 + fabsf(z.db[i]));
        EXPECT(bad == 0, "%s conv: dw/db do not accumulate (%d wrong)", name, bad);
        /* no bias: y = the biased output - b */
        float *y = tbuf(ny), *ws = tbuf((int64_t)sg_cpu_conv2d_workspace_size(&g));
        EXPECT(sg_cpu_conv2d_forward(ws, x, y, wt, NULL, &g) == 0, "%s", sg_geterr());
        bad = 0;
        for (int64_t i = 0; i < ny; i++)
            bad += fabsf(y[i] + b[(i / (g.oh * g.ow)) % g.k] - a.y[i]) > 1e-5f;
        EXPECT(bad == 0, "%s conv without bias: %d wrong", name, bad);
        /* only db (dw NULL), only dw (db NULL) */
        float *db = tbuf(g.k), *dw = tbuf(nw);
        EXPECT(sg_cpu_conv2d_backward_params(ws, x, dy, NULL, db, &g) == 0, "%s", sg_geterr());
        EXPECT(sg_cpu_conv2d_backward_params(ws, x, dy, dw, NULL, &g) == 0, "%s", sg_geterr());
        bad = 0;
        for (int64_t i = 0; i < g.k; i++)
            bad += fabsf(db[i] - z.db[i]) > 1e-4f * (1 + fabsf(z.db[i]));
        for (int64_t i = 0; i < nw; i++)
            bad += dw[i] != z.dw[i];
        EXPECT(bad == 0, "%s conv with dw or db NULL: %d wrong", name, bad);
        free(y); free(ws); free(db); free(dw);
        conv_out_free(&a); conv_out_free(&a2); conv_out_free(&a3); conv_out_free(&z);
        free(x); free(wt); free(b); free(dy); free(dw0); free(db0); free(zw); free(zb);
    }
    omp_set_num_threads(threads0);
    sg_cpu_conv2d_set_impl(SG_CONV_AUTO);
}

static void test_conv_dnnl(void)
{
    test_conv_dnnl_impl(SG_CONV_DNNL);
    test_conv_dnnl_impl(SG_CONV_WINOGRAD);
}

static void test_bn_running(void)
{
    const int64_t n = 5, c = 3, hw = 4, nx = n * c * hw;
    float *x = tbuf(nx), *y1 = tbuf(nx), *y2 = tbuf(nx), *ga = tbuf(c), *be = tbuf(c);
    float *sm = tbuf(c), *si = tbuf(c), *rm = tbuf(c), *rv = tbuf(c), *rm0 = tbuf(c),
          *rv0 = tbuf(c);
    fill_uniform(&R, x, nx, -1, 4);
    fill_uniform(&R, ga, c, 0.5f, 2);
    fill_uniform(&R, be, c, -1, 1);
    fill_uniform(&R, rm, c, -1, 1);
    fill_uniform(&R, rv, c, 0.5f, 2);
    memcpy(rm0, rm, (size_t)c * sizeof(float));
    memcpy(rv0, rv, (size_t)c * sizeof(float));

    /* Trial forward: batch statistics, running statistics untouched (bitwise). */
    EXPECT(sg_cpu_batchnorm_forward_train(x, y1, ga, be, sm, si, rm, rv, n, c, hw, 1e-5, 0.1,
                                          0) == 0, "%s", sg_geterr());
    EXPECT(memcmp(rm, rm0, (size_t)c * sizeof(float)) == 0 &&
           memcmp(rv, rv0, (size_t)c * sizeof(float)) == 0,
           "trial batchnorm forward changed the running statistics");
    /* Forward at the current point: same output, running stats updated. */
    EXPECT(sg_cpu_batchnorm_forward_train(x, y2, ga, be, sm, si, rm, rv, n, c, hw, 1e-5, 0.1,
                                          1) == 0, "%s", sg_geterr());
    EXPECT(memcmp(y1, y2, (size_t)nx * sizeof(float)) == 0,
           "trial and regular training forward differ");
    for (int64_t ch = 0; ch < c; ch++) {
        double s = 0, ss = 0;
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < hw; j++)
                s += x[(i * c + ch) * hw + j];
        const double mean = s / (n * hw);
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < hw; j++) {
                const double d = x[(i * c + ch) * hw + j] - mean;
                ss += d * d;
            }
        const double var_b = ss / (n * hw), var_u = ss / (n * hw - 1);
        const double erm = 0.9 * rm0[ch] + 0.1 * mean, erv = 0.9 * rv0[ch] + 0.1 * var_u;
        EXPECT(fabs(rm[ch] - erm) <= 1e-6 * (1 + fabs(erm)), "running_mean[%lld] %g, want %g",
               (long long)ch, rm[ch], erm);
        EXPECT(fabs(rv[ch] - erv) <= 1e-6 * (1 + fabs(erv)),
               "running_var[%lld] %g, want %g (unbiased)", (long long)ch, rv[ch], erv);
        EXPECT(fabs(sm[ch] - mean) <= 1e-6 * (1 + fabs(mean)), "save_mean[%lld]", (long long)ch);
        EXPECT(fabs(si[ch] - 1 / sqrt(var_b + 1e-5)) <= 1e-5 * si[ch],
               "save_invstd[%lld] %g, want %g (biased)", (long long)ch, si[ch],
               1 / sqrt(var_b + 1e-5));
        const double want0 = (x[ch * hw] - mean) / sqrt(var_b + 1e-5) * ga[ch] + be[ch];
        EXPECT(fabs(y2[ch * hw] - want0) <= 1e-5 * (1 + fabs(want0)), "bn output %g want %g",
               y2[ch * hw], want0);
    }
    /* The output made again from the saved statistics is the forward's, bit for bit
     * (models that do not keep BatchNorm outputs rely on it); without gamma/beta too. */
    EXPECT(sg_cpu_batchnorm_apply(x, y1, ga, be, sm, si, n, c, hw) == 0, "%s", sg_geterr());
    EXPECT(memcmp(y1, y2, (size_t)nx * sizeof(float)) == 0,
           "batchnorm_apply differs from the training forward's output");
    EXPECT(sg_cpu_batchnorm_forward_train(x, y2, NULL, NULL, sm, si, rm, rv, n, c, hw, 1e-5,
                                          0.1, 0) == 0, "%s", sg_geterr());
    EXPECT(sg_cpu_batchnorm_apply(x, y1, NULL, NULL, sm, si, n, c, hw) == 0, "%s", sg_geterr());
    EXPECT(memcmp(y1, y2, (size_t)nx * sizeof(float)) == 0,
           "batchnorm_apply differs from the training forward's output (no affine)");
    /* Eval mode uses the running statistics; apply reproduces it too. */
    EXPECT(sg_cpu_batchnorm_forward_eval(x, y1, ga, be, sm, si, rm, rv, n, c, hw, 1e-5) == 0,
           "%s", sg_geterr());
    const double want = (x[hw + 1] - rm[1]) / sqrt(rv[1] + 1e-5) * ga[1] + be[1];
    EXPECT(fabs(y1[hw + 1] - want) <= 1e-5 * (1 + fabs(want)), "bn eval output %g want %g",
           y1[hw + 1], want);
    EXPECT(sg_cpu_batchnorm_apply(x, y2, ga, be, sm, si, n, c, hw) == 0, "%s", sg_geterr());
    EXPECT(memcmp(y1, y2, (size_t)nx * sizeof(float)) == 0,
           "batchnorm_apply differs from the eval forward's output");
    EXPECT(sg_cpu_batchnorm_apply(x, y2, ga, be, sm, si, n, 0, hw) == -1 &&
               strstr(sg_geterr(), "batchnorm_apply") && strstr(sg_geterr(), "C=0"),
           "expected a size error from batchnorm_apply, got '%s'", sg_geterr());
    /* One value per channel cannot update an unbiased variance. */
    EXPECT(sg_cpu_batchnorm_forward_train(x, y1, ga, be, sm, si, rm, rv, 1, c, 1, 1e-5, 0.1, 1)
               == -1 && strstr(sg_geterr(), "N=1 C=3 HW=1"),
           "expected an error for a 1-value batch, got '%s'", sg_geterr());
    free(x); free(y1); free(y2); free(ga); free(be); free(sm); free(si); free(rm); free(rv);
    free(rm0); free(rv0);
}

static void test_dropout(void)
{
    const int64_t n = 20000;
    float *m1 = tbuf(n), *m2 = tbuf(n);
    sg_rng a, b;
    sg_rng_init(&a, 7, sg_rng_hash("dropout"));
    b = a;
    EXPECT(sg_cpu_dropout_mask(&a, m1, n, 0.25) == 0, "%s", sg_geterr());
    EXPECT(sg_cpu_dropout_mask(&b, m2, n, 0.25) == 0, "%s", sg_geterr());
    EXPECT(memcmp(m1, m2, (size_t)n * sizeof(float)) == 0, "same rng state, different masks");
    int64_t zeros = 0, other = 0;
    for (int64_t i = 0; i < n; i++) {
        if (m1[i] == 0.0f)
            zeros++;
        else if (fabsf(m1[i] - 1.0f / 0.75f) > 1e-6f)
            other++;
    }
    EXPECT(other == 0, "%lld mask values are neither 0 nor 1/(1-p)", (long long)other);
    EXPECT(zeros > 4700 && zeros < 5300, "dropout p=0.25 zeroed %lld of %lld", (long long)zeros,
           (long long)n);
    EXPECT(sg_cpu_dropout_mask(&a, m1, n, 1.0) == -1 && strstr(sg_geterr(), "dropout_mask"),
           "p=1 accepted");
    free(m1); free(m2);
}

static void test_ce(void)
{
    /* Two rows, three classes, values computed by hand. */
    const float z[6] = { 1, 2, 3, 0.5f, 0.5f, -1 };
    int32_t lab[2] = { 2, 1 };
    float dz[6];
    double loss;
    int64_t correct;
    EXPECT(sg_cpu_cross_entropy(z, lab, dz, 2, 3, &loss, &correct) == 0, "%s", sg_geterr());
    const double l0 = log(exp(1.0) + exp(2.0) + exp(3.0)) - 3.0;
    const double l1 = log(2 * exp(0.5) + exp(-1.0)) - 0.5;
    EXPECT(fabs(loss - (l0 + l1) / 2) < 1e-7, "cross_entropy loss %.9g want %.9g", loss,
           (l0 + l1) / 2);
    /* Row 0: argmax 2 == label. Row 1: tie between 0 and 1, first wins -> 0 != 1. */
    EXPECT(correct == 1, "correct %lld want 1", (long long)correct);
    const double p02 = exp(3.0 - log(exp(1.0) + exp(2.0) + exp(3.0)));
    EXPECT(fabs(dz[2] - (p02 - 1) / 2) < 1e-7, "dlogits[2] %g want %g", dz[2], (p02 - 1) / 2);
    lab[1] = 3;
    EXPECT(sg_cpu_cross_entropy(z, lab, dz, 2, 3, &loss, &correct) == -1 &&
           strstr(sg_geterr(), "label 3 at row 2 out of range [0, 3)"),
           "bad label message: '%s'", sg_geterr());
    /* Large logits stay finite (log-sum-exp is shifted). */
    const float big[2] = { 1000.0f, 0.0f };
    int32_t l2 = 1;
    EXPECT(sg_cpu_cross_entropy(big, &l2, NULL, 1, 2, &loss, NULL) == 0 && fabs(loss - 1000) < 1e-3,
           "large logits: loss %g", loss);
}

static void test_vec(void)
{
    const int64_t n = 100003;
    float *w = tbuf(n), *g = tbuf(n), *v = tbuf(n), *out = tbuf(n);
    fill_uniform(&R, w, n, -1, 1);
    fill_uniform(&R, g, n, -1, 1);
    fill_uniform(&R, v, n, -1, 1);
    sg_cpu_vec_axpy(w, g, out, n, -0.3f);
    int bad = 0;
    for (int64_t i = 0; i < n; i++)
        bad += fabsf(out[i] - (w[i] - 0.3f * g[i])) > 1e-6f;
    EXPECT(bad == 0, "vec_axpy: %d wrong", bad);
    sg_cpu_vec_axpbypz(w, g, v, out, n, 0.5f, -2.0f);
    bad = 0;
    for (int64_t i = 0; i < n; i++)
        bad += fabsf(out[i] - (w[i] + 0.5f * g[i] - 2.0f * v[i])) > 1e-5f;
    EXPECT(bad == 0, "vec_axpbypz: %d wrong", bad);
    memcpy(out, v, (size_t)n * sizeof(float));
    sg_cpu_vec_scale_add(out, g, out, n, 0.9f, 1.0f);  /* in place: v = 0.9 v + g */
    bad = 0;
    for (int64_t i = 0; i < n; i++)
        bad += fabsf(out[i] - (0.9f * v[i] + g[i])) > 1e-6f;
    EXPECT(bad == 0, "vec_scale_add in place: %d wrong", bad);
    free(w); free(g); free(v); free(out);
}

static void test_errors(void)
{
    sg_conv2d_geom g;
    EXPECT(sg_conv2d_geom_init(&g, 2, 3, 2, 2, 4, 5, 5, 1, 1, 0, 0) == -1 &&
           strstr(sg_geterr(), "kernel 5x5 larger than padded input 2x2") &&
           strstr(sg_geterr(), "(cpu)"), "conv geometry message: '%s'", sg_geterr());
    sg_pool2d_geom p;
    EXPECT(sg_pool2d_geom_init(&p, 1, 1, 4, 4, 2, 2, 2, 2, 2, 2) == -1 &&
           strstr(sg_geterr(), "padding 2x2 must be at most half the kernel 2x2"),
           "pool geometry message: '%s'", sg_geterr());
    EXPECT(sg_pool2d_geom_init(&p, 1, 1, 5, 5, 3, 3, 2, 2, 1, 1) == 0 && p.oh == 3 && p.ow == 3,
           "pool output size %lldx%lld want 3x3", (long long)p.oh, (long long)p.ow);
    EXPECT(sg_conv2d_geom_init(&g, 2, 3, 7, 8, 4, 3, 3, 2, 2, 1, 1) == 0 && g.oh == 4 && g.ow == 4,
           "conv output size %lldx%lld want 4x4", (long long)g.oh, (long long)g.ow);
}

/* The linear layer with OpenBLAS's and with oneDNN's sgemm (forced by
 * sg_cpu_conv2d_set_impl) against a double evaluation, accumulation into dw,
 * and repeats bit for bit; shapes that leave both libraries' tile edges
 * ragged. */
static void test_linear_impls(void)
{
    const int64_t shapes[][3] = { { 7, 33, 5 }, { 128, 100, 130 }, { 1, 17, 3 } };
    const sg_conv_impl impls[] = { SG_CONV_IM2COL, SG_CONV_DNNL };
    for (int si = 0; si < 3; si++)
        for (int ii = 0; ii < 2; ii++) {
            const sg_conv_impl impl = impls[ii];
            if (impl == SG_CONV_DNNL && !sg_cpu_conv2d_have_dnnl())
                continue;
            EXPECT(sg_cpu_conv2d_set_impl(impl) == 0, "%s", sg_geterr());
            const int64_t n = shapes[si][0], in = shapes[si][1], out = shapes[si][2];
            EXPECT(sg_cpu_linear_passes(n, in, out) == (impl == SG_CONV_DNNL ? SG_CONV_PASS_ALL : 0),
                   "linear %s: passes %d", impl_name(impl), sg_cpu_linear_passes(n, in, out));
            float *x = tbuf(n * in), *w = tbuf(out * in), *b = tbuf(out), *dy = tbuf(n * out);
            float *y = tbuf(n * out), *dx = tbuf(n * in), *dw = tbuf(out * in), *db = tbuf(out);
            float *y2 = tbuf(n * out), *dx2 = tbuf(n * in), *dw2 = tbuf(out * in), *db2 = tbuf(out);
            fill_uniform(&R, x, n * in, -1, 1);
            fill_uniform(&R, w, out * in, -1, 1);
            fill_uniform(&R, b, out, -1, 1);
            fill_uniform(&R, dy, n * out, -1, 1);
            fill_uniform(&R, dw, out * in, -1, 1);
            fill_uniform(&R, db, out, -1, 1);
            float *dw0 = tbuf(out * in);
            memcpy(dw0, dw, (size_t)(out * in) * sizeof(float));
            memcpy(dw2, dw, (size_t)(out * in) * sizeof(float));
            memcpy(db2, db, (size_t)out * sizeof(float));
            double ey = 0, edx = 0, edw = 0, my = 0, mdx = 0, mdw = 0;
            for (int rep = 0; rep < 2; rep++) {
                float *yy = rep ? y2 : y, *dxx = rep ? dx2 : dx, *dww = rep ? dw2 : dw;
                float *dbb = rep ? db2 : db;
                EXPECT(sg_cpu_linear_forward(x, yy, w, b, n, in, out) == 0, "%s", sg_geterr());
                EXPECT(sg_cpu_linear_backward_data(dy, dxx, w, n, in, out) == 0, "%s", sg_geterr());
                EXPECT(sg_cpu_linear_backward_params(x, dy, dww, dbb, n, in, out) == 0, "%s",
                       sg_geterr());
            }
            for (int64_t r = 0; r < n; r++)
                for (int64_t o = 0; o < out; o++) {
                    double s = b[o];
                    for (int64_t i = 0; i < in; i++)
                        s += (double)x[r * in + i] * w[o * in + i];
                    ey = fmax(ey, fabs(y[r * out + o] - s));
                    my = fmax(my, fabs(s));
                }
            for (int64_t r = 0; r < n; r++)
                for (int64_t i = 0; i < in; i++) {
                    double s = 0;
                    for (int64_t o = 0; o < out; o++)
                        s += (double)dy[r * out + o] * w[o * in + i];
                    edx = fmax(edx, fabs(dx[r * in + i] - s));
                    mdx = fmax(mdx, fabs(s));
                }
            /* dw = dw0 + the gradient */
            for (int64_t o = 0; o < out; o++)
                for (int64_t i = 0; i < in; i++) {
                    double s = 0;
                    for (int64_t r = 0; r < n; r++)
                        s += (double)dy[r * out + o] * x[r * in + i];
                    edw = fmax(edw, fabs((double)dw[o * in + i] - dw0[o * in + i] - s));
                    mdw = fmax(mdw, fabs(s));
                }
            EXPECT(ey <= 1e-5 * (1 + my) && edx <= 1e-5 * (1 + mdx) && edw <= 1e-5 * (2 + mdw),
                   "linear %s %lldx%lld k%lld: errors y %g (max %g) dx %g (max %g) dw %g (max %g)",
                   impl_name(impl), (long long)n, (long long)in, (long long)out, ey, my, edx, mdx,
                   edw, mdw);
            EXPECT(!memcmp(y, y2, (size_t)(n * out) * sizeof(float)) &&
                       !memcmp(dx, dx2, (size_t)(n * in) * sizeof(float)) &&
                       !memcmp(dw, dw2, (size_t)(out * in) * sizeof(float)),
                   "linear %s %lldx%lld k%lld: a repeat differs", impl_name(impl), (long long)n,
                   (long long)in, (long long)out);
            free(x); free(w); free(b); free(dy); free(y); free(dx); free(dw); free(db);
            free(y2); free(dx2); free(dw2); free(db2); free(dw0);
        }
    sg_cpu_conv2d_set_impl(SG_CONV_AUTO);
}

/* The choice among measured times (conv_choice.c): the fastest, and
 * Winograd only with a lead of more than 10% over the fastest of the others. */
static void test_choice_rule(void)
{
    static const struct { double ms[3]; int ok[3], want; } cases[] = {
        { { 3.0, 2.0, 1.0 }, { 1, 1, 1 }, 2 },    /* Winograd 50% ahead */
        { { 3.0, 2.0, 1.85 }, { 1, 1, 1 }, 1 },   /* 7.5% ahead: the direct algorithm */
        { { 3.0, 2.0, 1.79 }, { 1, 1, 1 }, 2 },   /* 10.5% ahead */
        { { 1.5, 2.0, 1.4 }, { 1, 1, 1 }, 0 },    /* im2col the fastest of the others */
        { { 1.5, 2.0, 1.0 }, { 1, 0, 1 }, 2 },
        { { 9.0, 2.0, 1.0 }, { 1, 1, 0 }, 1 },    /* Winograd not measured */
        { { 0.0, 0.0, 1.0 }, { 0, 0, 1 }, 2 },    /* the only one */
        { { 2.0, 1.0, 0.0 }, { 1, 1, 0 }, 1 },
        { { 0.0, 0.0, 0.0 }, { 0, 0, 0 }, -1 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK(sg_conv_choice_pick(cases[i].ms, cases[i].ok) == cases[i].want,
              "choice rule case %zu: got %d, want %d", i, sg_conv_choice_pick(cases[i].ms, cases[i].ok),
              cases[i].want);
}

int main(void)
{
    sg_rng_init(&R, 99, sg_rng_hash("test_nn_ops"));
    /* last argument: 0 automatic, +b shared mode / -b per-thread mode with
     * blocks of b images */
    test_conv_ref(5, 3, 32, 32, 4, 3, 1, 1, 0);  /* 32x32 output: one image per block */
    test_conv_ref(3, 3, 32, 32, 4, 3, 1, 1, 1);  /* shared, block 1 */
    test_conv_ref(7, 4, 6, 6, 5, 3, 1, 1, 0);    /* automatic: per thread, blocks */
    test_conv_ref(7, 4, 6, 6, 5, 3, 1, 1, -2);   /* per thread, ragged blocks */
    test_conv_ref(5, 4, 6, 6, 5, 3, 1, 1, 2);    /* shared, ragged last block */
    test_conv_ref(5, 4, 6, 6, 5, 3, 2, 0, 3);
    test_conv_ref(3, 6, 16, 16, 3, 1, 1, 0, 0);  /* pointwise */
    test_conv_ref(4, 6, 5, 7, 3, 1, 1, 0, 1);    /* pointwise, shared, per image */
    test_conv_ref(4, 6, 5, 7, 3, 1, 1, 0, -1);   /* pointwise, per thread, per image */
    test_conv_ref(4, 6, 5, 7, 3, 1, 1, 0, 4);    /* pointwise, shared, blocked */
    test_conv_ref(3, 2, 9, 9, 3, 3, 3, 1, 0);    /* stride 3 */
    test_conv_ref(3, 2, 9, 9, 3, 2, 2, 0, 0);    /* the stride skips the last input row/column */
    test_conv_ref(2, 3, 8, 8, 5, 3, 2, 1, 0);    /* ... and the last padding row/column */
    test_conv_ref(4, 16, 8, 8, 24, 3, 1, 1, 0);  /* channels in blocks of 8 */
    test_conv_ref(3, 10, 7, 7, 12, 3, 2, 1, 0);  /* channels not a multiple of 8, stride 2 */
    test_conv_ref(4, 16, 8, 8, 32, 1, 2, 0, 0);  /* strided 1x1 (projection shortcut) */
    test_conv_ref(4, 64, 12, 12, 64, 3, 1, 1, 0); /* ResNet-like: Winograd where oneDNN has it */
    test_conv_ref(3, 32, 9, 7, 48, 3, 1, 1, 0);   /* ... with a ragged tile edge */
    test_conv_dnnl();
    test_choice_rule();
    test_linear_impls();
    test_bn_running();
    test_dropout();
    test_ce();
    test_vec();
    test_errors();
    return check_done("test_nn_ops", "all checks passed");
}
