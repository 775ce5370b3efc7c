/*
 * test_cuda_layers.c - every CUDA layer kernel against the CPU kernel on the
 * same inputs (kernels/cuda/nn_cuda.h vs kernels/cpu/nn.h): conv2d forward,
 * backward-data and backward-params (several geometries, fp32 and
 * deterministic mode), linear, batch normalization (training with and
 * without the running-statistics update, evaluation, both backward passes),
 * ReLU, dropout, max/average/global pooling (ties and NaNs resolved as on
 * the CPU) and the cross-entropy loss (its correct count with NaN logits too).
 * Gradients are checked to ACCUMULATE into non-zero buffers and backward_data
 * to OVERWRITE. Skips visibly (exit 77) without a GPU.
 */
#include "cuda_testutil.h"

#ifdef SG_HAVE_CUDA

/* ---- conv2d ------------------------------------------------------------------------ */
static void test_conv(int64_t n, int64_t c, int64_t h, int64_t w, int64_t k, int64_t kh,
                      int64_t kw, int64_t s, int64_t p, int bias)
{
    char tag[160];
    snprintf(tag, sizeof tag, "conv %lldx%lldx%lldx%lld k%lld %lldx%lld s%lld p%lld%s",
             (long long)n, (long long)c, (long long)h, (long long)w, (long long)k,
             (long long)kh, (long long)kw, (long long)s, (long long)p, bias ? " bias" : "");
    sg_conv2d_geom g;
    OK(sg_conv2d_geom_init(&g, n, c, h, w, k, kh, kw, s, s, p, p));
    int64_t nx = n * c * h * w, nw = k * c * kh * kw, ny = n * k * g.oh * g.ow;
    float *x = rnd(nx, -1, 1), *wt = rnd(nw, -0.5f, 0.5f), *b = rnd(k, -1, 1);
    float *dy = rnd(ny, -1, 1), *dw0 = rnd(nw, -1, 1), *db0 = rnd(k, -1, 1);
    float *y = hbuf(ny), *dx = hbuf(nx), *dw = hbuf(nw), *db = hbuf(k);
    memcpy(dw, dw0, (size_t)nw * 4);
    memcpy(db, db0, (size_t)k * 4);
    float *ws = hbuf((int64_t)sg_cpu_conv2d_workspace_size(&g));
    OK(sg_cpu_conv2d_forward(ws, x, y, wt, bias ? b : NULL, &g));
    OK(sg_cpu_conv2d_backward_data(ws, dy, dx, wt, &g));
    OK(sg_cpu_conv2d_backward_params(ws, x, dy, dw, bias ? db : NULL, &g));

    float *d_x = dup_f(x, nx), *d_w = dup_f(wt, nw), *d_b = dup_f(b, k), *d_dy = dup_f(dy, ny);
    float *d_y = dalloc((size_t)ny * 4), *d_dx = dalloc((size_t)nx * 4);
    OK(sg_cuda_fill(d_dx, SG_F32, nx, 7.0));  /* must be overwritten */
    float *d_dw = dup_f(dw0, nw), *d_db = dup_f(db0, k);
    OK(sg_cuda_conv2d_forward(NULL, d_x, d_y, d_w, bias ? d_b : NULL, &g));
    OK(sg_cuda_conv2d_backward_data(NULL, d_dy, d_dx, d_w, &g));
    OK(sg_cuda_conv2d_backward_params(NULL, d_x, d_dy, d_dw, bias ? d_db : NULL, &g));
    char t2[200];
    snprintf(t2, sizeof t2, "%s fwd", tag);
    cmp_dev(t2, d_y, y, ny, 5e-4);
    snprintf(t2, sizeof t2, "%s bwd-data", tag);
    cmp_dev(t2, d_dx, dx, nx, 5e-4);
    snprintf(t2, sizeof t2, "%s bwd-params dw (+=)", tag);
    cmp_dev(t2, d_dw, dw, nw, 5e-4);
    if (bias) {
        snprintf(t2, sizeof t2, "%s bwd-params db (+=)", tag);
        cmp_dev(t2, d_db, db, k, 5e-4);
    }
    /* a caller's workspace is accepted (and not used: the scratch buffer is) */
    size_t wsn = sg_cuda_conv2d_workspace_size(&g);
    float *d_ws = dalloc((wsn ? wsn : 1) * 4);
    OK(sg_cuda_fill(d_y, SG_F32, ny, -3.0));
    OK(sg_cuda_conv2d_forward(d_ws, d_x, d_y, d_w, bias ? d_b : NULL, &g));
    snprintf(t2, sizeof t2, "%s fwd (caller workspace)", tag);
    cmp_dev(t2, d_y, y, ny, 5e-4);
    sg_cuda_free(d_ws);
    sg_cuda_free(d_x); sg_cuda_free(d_w); sg_cuda_free(d_b); sg_cuda_free(d_dy);
    sg_cuda_free(d_y); sg_cuda_free(d_dx); sg_cuda_free(d_dw); sg_cuda_free(d_db);
    free(x); free(wt); free(b); free(dy); free(dw0); free(db0); free(y); free(dx); free(dw);
    free(db); free(ws);
}

/* ---- linear -------------------------------------------------------------------------- */
static void test_linear(int64_t n, int64_t in, int64_t out)
{
    float *x = rnd(n * in, -1, 1), *w = rnd(out * in, -1, 1), *b = rnd(out, -1, 1);
    float *dy = rnd(n * out, -1, 1), *dw = rnd(out * in, -1, 1), *db = rnd(out, -1, 1);
    float *y = hbuf(n * out), *dx = hbuf(n * in);
    float *d_x = dup_f(x, n * in), *d_w = dup_f(w, out * in), *d_b = dup_f(b, out);
    float *d_dy = dup_f(dy, n * out), *d_dw = dup_f(dw, out * in), *d_db = dup_f(db, out);
    float *d_y = dalloc((size_t)(n * out) * 4), *d_dx = dalloc((size_t)(n * in) * 4);
    OK(sg_cpu_linear_forward(x, y, w, b, n, in, out));
    OK(sg_cpu_linear_backward_data(dy, dx, w, n, in, out));
    OK(sg_cpu_linear_backward_params(x, dy, dw, db, n, in, out));
    OK(sg_cuda_linear_forward(d_x, d_y, d_w, d_b, n, in, out));
    OK(sg_cuda_linear_backward_data(d_dy, d_dx, d_w, n, in, out));
    OK(sg_cuda_linear_backward_params(d_x, d_dy, d_dw, d_db, n, in, out));
    cmp_dev("linear fwd", d_y, y, n * out, 1e-4);
    cmp_dev("linear bwd-data", d_dx, dx, n * in, 1e-4);
    cmp_dev("linear bwd-params dw (+=)", d_dw, dw, out * in, 1e-4);
    cmp_dev("linear bwd-params db (+=)", d_db, db, out, 1e-4);
    sg_cuda_free(d_x); sg_cuda_free(d_w); sg_cuda_free(d_b); sg_cuda_free(d_dy);
    sg_cuda_free(d_dw); sg_cuda_free(d_db); sg_cuda_free(d_y); sg_cuda_free(d_dx);
    free(x); free(w); free(b); free(dy); free(dw); free(db); free(y); free(dx);
}

/* ---- batchnorm ------------------------------------------------------------------------- */
static void test_bn(int64_t n, int64_t c, int64_t hw, int affine)
{
    int64_t nx = n * c * hw;
    float *x = rnd(nx, -2, 3), *g = rnd(c, 0.5f, 1.5f), *b = rnd(c, -1, 1);
    float *rm = rnd(c, -0.5f, 0.5f), *rv = rnd(c, 0.5f, 2.0f);
    float *dy = rnd(nx, -1, 1), *dg = rnd(c, -1, 1), *dbt = rnd(c, -1, 1);
    float *y = hbuf(nx), *sm = hbuf(c), *si = hbuf(c), *dx = hbuf(nx);
    float *rm_c = hbuf(c), *rv_c = hbuf(c), *dg0 = hbuf(c), *db0 = hbuf(c);
    memcpy(dg0, dg, (size_t)c * 4);
    memcpy(db0, dbt, (size_t)c * 4);
    memcpy(rm_c, rm, (size_t)c * 4);
    memcpy(rv_c, rv, (size_t)c * 4);
    const float *G = affine ? g : NULL, *B = affine ? b : NULL;
    float *d_x = dup_f(x, nx), *d_g = dup_f(g, c), *d_b = dup_f(b, c);
    float *d_rm = dup_f(rm, c), *d_rv = dup_f(rv, c), *d_dy = dup_f(dy, nx);
    float *d_dg = dup_f(dg, c), *d_db = dup_f(dbt, c);
    float *d_y = dalloc((size_t)nx * 4), *d_sm = dalloc((size_t)c * 4), *d_si = dalloc((size_t)c * 4);
    float *d_dx = dalloc((size_t)nx * 4);
    const float *DG = affine ? d_g : NULL, *DB = affine ? d_b : NULL;
    char tag[64];
    snprintf(tag, sizeof tag, "bn %lldx%lldx%lld%s", (long long)n, (long long)c, (long long)hw,
             affine ? "" : " no-affine");
    char t[160];

    /* trial forward: batch statistics, running statistics untouched (bitwise) */
    OK(sg_cpu_batchnorm_forward_train(x, y, G, B, sm, si, rm_c, rv_c, n, c, hw, 1e-5, 0.1, 0));
    OK(sg_cuda_batchnorm_forward_train(d_x, d_y, DG, DB, d_sm, d_si, d_rm, d_rv, n, c, hw, 1e-5,
                                       0.1, 0));
    snprintf(t, sizeof t, "%s train (no update) y", tag);
    cmp_dev(t, d_y, y, nx, 1e-4);
    float *grm = down_f(d_rm, c), *grv = down_f(d_rv, c);
    CHECK(!memcmp(grm, rm, (size_t)c * 4) && !memcmp(grv, rv, (size_t)c * 4),
          "%s: a training forward without update changed the running statistics", tag);
    free(grm); free(grv);

    /* training forward with the update */
    OK(sg_cpu_batchnorm_forward_train(x, y, G, B, sm, si, rm_c, rv_c, n, c, hw, 1e-5, 0.1, 1));
    OK(sg_cuda_batchnorm_forward_train(d_x, d_y, DG, DB, d_sm, d_si, d_rm, d_rv, n, c, hw, 1e-5,
                                       0.1, 1));
    snprintf(t, sizeof t, "%s train y", tag);
    cmp_dev(t, d_y, y, nx, 1e-4);
    snprintf(t, sizeof t, "%s train save_mean", tag);
    cmp_dev(t, d_sm, sm, c, 1e-4);
    snprintf(t, sizeof t, "%s train save_invstd", tag);
    cmp_dev(t, d_si, si, c, 1e-4);
    snprintf(t, sizeof t, "%s running_mean", tag);
    cmp_dev(t, d_rm, rm_c, c, 1e-4);
    snprintf(t, sizeof t, "%s running_var (unbiased)", tag);
    cmp_dev(t, d_rv, rv_c, c, 1e-4);

    /* backward through batch statistics (uses the saved statistics just made) */
    OK(sg_cuda_fill(d_dx, SG_F32, nx, 9.0));
    OK(sg_cpu_batchnorm_backward_data(x, dy, dx, G, sm, si, n, c, hw, 1));
    OK(sg_cuda_batchnorm_backward_data(d_x, d_dy, d_dx, DG, d_sm, d_si, n, c, hw, 1));
    snprintf(t, sizeof t, "%s bwd-data (training)", tag);
    cmp_dev(t, d_dx, dx, nx, 5e-4);
    OK(sg_cpu_batchnorm_backward_params(x, dy, dg, dbt, sm, si, n, c, hw));
    OK(sg_cuda_batchnorm_backward_params(d_x, d_dy, d_dg, d_db, d_sm, d_si, n, c, hw));
    snprintf(t, sizeof t, "%s bwd-params dgamma (+=)", tag);
    cmp_dev(t, d_dg, dg, c, 5e-4);
    snprintf(t, sizeof t, "%s bwd-params dbeta (+=)", tag);
    cmp_dev(t, d_db, dbt, c, 5e-4);

    /* the modules' backward: one cuDNN call that accumulates dgamma and dbeta
     * itself (betaParamDiff = 1), against the two passes above (dx, and the
     * separate parameter-gradient reduction) and the CPU */
    {
        float *tdx = down_f(d_dx, nx), *tdg = down_f(d_dg, c), *tdb = down_f(d_db, c);
        float *d_dg2 = dup_f(dg0, c), *d_db2 = dup_f(db0, c), *d_dx2 = dalloc((size_t)nx * 4);
        OK(sg_cuda_fill(d_dx2, SG_F32, nx, 9.0));
        OK(sg_cuda_batchnorm_backward(d_x, d_dy, d_dx2, DG, affine ? d_dg2 : NULL,
                                      affine ? d_db2 : NULL, d_sm, d_si, n, c, hw, 1));
        snprintf(t, sizeof t, "%s backward dx = bwd-data", tag);
        cmp_dev(t, d_dx2, tdx, nx, 1e-6);
        snprintf(t, sizeof t, "%s backward dx (cpu)", tag);
        cmp_dev(t, d_dx2, dx, nx, 5e-4);
        if (affine) {
            snprintf(t, sizeof t, "%s backward dgamma (+=) = bwd-params", tag);
            cmp_dev(t, d_dg2, tdg, c, 1e-6);
            snprintf(t, sizeof t, "%s backward dbeta (+=) = bwd-params", tag);
            cmp_dev(t, d_db2, tdb, c, 1e-6);
            /* without dx: the parameter gradients alone, added again */
            OK(sg_cuda_batchnorm_backward(d_x, d_dy, NULL, DG, d_dg2, d_db2, d_sm, d_si, n, c,
                                          hw, 1));
            for (int64_t i = 0; i < c; i++) {
                tdg[i] = dg0[i] + 2 * (tdg[i] - dg0[i]);
                tdb[i] = db0[i] + 2 * (tdb[i] - db0[i]);
            }
            snprintf(t, sizeof t, "%s backward without dx: dgamma (+= again)", tag);
            cmp_dev(t, d_dg2, tdg, c, 1e-5);
            snprintf(t, sizeof t, "%s backward without dx: dbeta (+= again)", tag);
            cmp_dev(t, d_db2, tdb, c, 1e-5);
        }
        sg_cuda_free(d_dg2); sg_cuda_free(d_db2); sg_cuda_free(d_dx2);
        free(tdx); free(tdg); free(tdb);
    }

    /* evaluation forward and its backward */
    OK(sg_cpu_batchnorm_forward_eval(x, y, G, B, sm, si, rm_c, rv_c, n, c, hw, 1e-5));
    OK(sg_cuda_batchnorm_forward_eval(d_x, d_y, DG, DB, d_sm, d_si, d_rm, d_rv, n, c, hw, 1e-5));
    snprintf(t, sizeof t, "%s eval y", tag);
    cmp_dev(t, d_y, y, nx, 1e-4);
    snprintf(t, sizeof t, "%s eval save_invstd", tag);
    cmp_dev(t, d_si, si, c, 1e-4);
    OK(sg_cpu_batchnorm_backward_data(x, dy, dx, G, sm, si, n, c, hw, 0));
    OK(sg_cuda_batchnorm_backward_data(d_x, d_dy, d_dx, DG, d_sm, d_si, n, c, hw, 0));
    snprintf(t, sizeof t, "%s bwd-data (eval)", tag);
    cmp_dev(t, d_dx, dx, nx, 1e-4);

    sg_cuda_free(d_x); sg_cuda_free(d_g); sg_cuda_free(d_b); sg_cuda_free(d_rm);
    sg_cuda_free(d_rv); sg_cuda_free(d_dy); sg_cuda_free(d_dg); sg_cuda_free(d_db);
    sg_cuda_free(d_y); sg_cuda_free(d_sm); sg_cuda_free(d_si); sg_cuda_free(d_dx);
    free(x); free(g); free(b); free(rm); free(rv); free(dy); free(dg); free(dbt); free(y);
    free(sm); free(si); free(dx); free(rm_c); free(rv_c); free(dg0); free(db0);
}

/* ---- pooling ---------------------------------------------------------------------------- */
static void test_pool(int64_t n, int64_t c, int64_t h, int64_t w, int64_t k, int64_t s,
                      int64_t p)
{
    sg_pool2d_geom g;
    OK(sg_pool2d_geom_init(&g, n, c, h, w, k, k, s, s, p, p));
    int64_t nx = n * c * h * w, ny = n * c * g.oh * g.ow;
    float *x = rnd(nx, -1, 1), *dy = rnd(ny, -1, 1), *y = hbuf(ny), *dx = hbuf(nx);
    /* ties: a few repeated values so the first-maximum rule matters; a few
     * NaNs (a NaN wins, the first one in window order) */
    for (int64_t i = 0; i + 1 < nx; i += 7)
        x[i + 1] = x[i];
    for (int64_t i = 5; i + 2 < nx; i += 61) {
        x[i] = NAN;
        x[i + 2] = NAN;
    }
    int32_t *idx = calloc((size_t)ny, sizeof *idx), *gidx = calloc((size_t)ny, sizeof *gidx);
    float *d_x = dup_f(x, nx), *d_dy = dup_f(dy, ny), *d_y = dalloc((size_t)ny * 4);
    float *d_dx = dalloc((size_t)nx * 4);
    int32_t *d_idx = dalloc((size_t)ny * 4);
    char t[160];
    snprintf(t, sizeof t, "maxpool %lldx%lld k%lld s%lld p%lld", (long long)h, (long long)w,
             (long long)k, (long long)s, (long long)p);
    OK(sg_cpu_maxpool2d_forward(x, y, idx, &g));
    OK(sg_cuda_maxpool2d_forward(d_x, d_y, d_idx, &g));
    cmp_dev(t, d_y, y, ny, 0.0);
    down_i(gidx, d_idx, ny);
    CHECK(!memcmp(gidx, idx, (size_t)ny * 4), "%s: argmax indices differ from the cpu", t);
    OK(sg_cpu_maxpool2d_backward_data(dy, dx, idx, &g));
    OK(sg_cuda_maxpool2d_backward_data(d_dy, d_dx, d_idx, &g));
    strcat(t, " bwd");
    cmp_dev(t, d_dx, dx, nx, 1e-6);
    snprintf(t, sizeof t, "avgpool %lldx%lld k%lld s%lld p%lld", (long long)h, (long long)w,
             (long long)k, (long long)s, (long long)p);
    for (int64_t i = 5; i + 2 < nx; i += 61)  /* no NaNs for the averages */
        x[i] = x[i + 2] = 0.25f;
    sg_cuda_free(d_x);
    d_x = dup_f(x, nx);
    OK(sg_cpu_avgpool2d_forward(x, y, &g));
    OK(sg_cuda_avgpool2d_forward(d_x, d_y, &g));
    cmp_dev(t, d_y, y, ny, 1e-5);
    OK(sg_cpu_avgpool2d_backward_data(dy, dx, &g));
    OK(sg_cuda_avgpool2d_backward_data(d_dy, d_dx, &g));
    strcat(t, " bwd");
    cmp_dev(t, d_dx, dx, nx, 1e-5);
    sg_cuda_free(d_x); sg_cuda_free(d_dy); sg_cuda_free(d_y); sg_cuda_free(d_dx);
    sg_cuda_free(d_idx);
    free(x); free(dy); free(y); free(dx); free(idx); free(gidx);
}

static void test_global_pool(int64_t n, int64_t c, int64_t hw)
{
    float *x = rnd(n * c * hw, -1, 1), *dy = rnd(n * c, -1, 1);
    float *y = hbuf(n * c), *dx = hbuf(n * c * hw);
    float *d_x = dup_f(x, n * c * hw), *d_dy = dup_f(dy, n * c);
    float *d_y = dalloc((size_t)(n * c) * 4), *d_dx = dalloc((size_t)(n * c * hw) * 4);
    OK(sg_cpu_global_avgpool_forward(x, y, n, c, hw));
    OK(sg_cuda_global_avgpool_forward(d_x, d_y, n, c, hw));
    cmp_dev("global avgpool fwd", d_y, y, n * c, 1e-5);
    OK(sg_cpu_global_avgpool_backward_data(dy, dx, n, c, hw));
    OK(sg_cuda_global_avgpool_backward_data(d_dy, d_dx, n, c, hw));
    cmp_dev("global avgpool bwd", d_dx, dx, n * c * hw, 1e-6);
    sg_cuda_free(d_x); sg_cuda_free(d_dy); sg_cuda_free(d_y); sg_cuda_free(d_dx);
    free(x); free(dy); free(y); free(dx);
}

/* ---- relu, dropout ----------------------------------------------------------------------- */
static void test_relu_dropout(void)
{
    const int64_t n = 10007;
    float *x = rnd(n, -1, 1), *dy = rnd(n, -1, 1), *y = hbuf(n), *dx = hbuf(n), *m = hbuf(n);
    float *d_x = dup_f(x, n), *d_dy = dup_f(dy, n), *d_y = dalloc(n * 4), *d_dx = dalloc(n * 4);
    float *d_m = dalloc(n * 4);
    OK(sg_cpu_relu_forward(x, y, n));
    OK(sg_cuda_relu_forward(d_x, d_y, n));
    cmp_dev("relu fwd", d_y, y, n, 0.0);
    OK(sg_cpu_relu_backward_data(y, dy, dx, n));
    OK(sg_cuda_relu_backward_data(d_y, d_dy, d_dx, n));
    cmp_dev("relu bwd", d_dx, dx, n, 0.0);
    sg_rng a, b;
    sg_rng_init(&a, 42, sg_rng_hash("dropout"));
    b = a;
    /* four masks queued back to back (the GPU refills its two pinned staging
     * buffers in turn: a refill must wait for the copy that read the buffer),
     * compared afterwards; the last one is kept for the checks below */
    const double ps[] = {0.5, 0.1, 0.0, 0.3};
    float *hm[4], *dm[4];
    for (int i = 0; i < 4; i++) {
        hm[i] = hbuf(n);
        dm[i] = i == 3 ? d_m : dalloc(n * 4);
        OK(sg_cpu_dropout_mask(&a, hm[i], n, ps[i]));
        OK(sg_cuda_dropout_mask(&b, dm[i], n, ps[i]));
    }
    for (int i = 0; i < 4; i++) {
        char t[64];
        snprintf(t, sizeof t, "dropout mask %d, p=%g (same generator state)", i + 1, ps[i]);
        cmp_dev(t, dm[i], hm[i], n, 0.0);
        if (i < 3)
            sg_cuda_free(dm[i]);
    }
    memcpy(m, hm[3], (size_t)n * 4);
    for (int i = 0; i < 4; i++)
        free(hm[i]);
    CHECK(a.counter == b.counter && a.pos == b.pos, "dropout mask: generators advanced differently");
    OK(sg_cpu_dropout_forward(x, y, m, n));
    OK(sg_cuda_dropout_forward(d_x, d_y, d_m, n));
    cmp_dev("dropout fwd", d_y, y, n, 0.0);
    OK(sg_cpu_dropout_backward_data(dy, dx, m, n));
    OK(sg_cuda_dropout_backward_data(d_dy, d_dx, d_m, n));
    cmp_dev("dropout bwd", d_dx, dx, n, 0.0);
    sg_cuda_free(d_x); sg_cuda_free(d_dy); sg_cuda_free(d_y); sg_cuda_free(d_dx);
    sg_cuda_free(d_m);
    free(x); free(dy); free(y); free(dx); free(m);
}

/* ---- cross-entropy --------------------------------------------------------------------------- */
static void test_xent(int64_t n, int64_t c)
{
    float *z = rnd(n * c, -4, 4), *dz = hbuf(n * c);
    int32_t *lab = calloc((size_t)n, sizeof *lab);
    for (int64_t i = 0; i < n; i++)
        lab[i] = (int32_t)(sg_rng_u32(&g_rng) % (uint32_t)c);
    /* make some rows right: the label is the argmax */
    for (int64_t i = 0; i < n; i += 3)
        z[i * c + lab[i]] = 10.0f;
    double l_cpu = 0, l_gpu = 0;
    int64_t k_cpu = 0, k_gpu = -1;
    OK(sg_cpu_cross_entropy(z, lab, dz, n, c, &l_cpu, &k_cpu));
    float *d_z = dup_f(z, n * c), *d_dz = dalloc((size_t)(n * c) * 4);
    int32_t *d_lab = dup_i(lab, n);
    OK(sg_cuda_cross_entropy(d_z, d_lab, d_dz, n, c, &l_gpu, &k_gpu));
    CHECK(fabs(l_gpu - l_cpu) <= 1e-6 * fabs(l_cpu) + 1e-9, "xent %lldx%lld: loss gpu %.12g cpu %.12g",
          (long long)n, (long long)c, l_gpu, l_cpu);
    CHECK(k_gpu == k_cpu, "xent: correct gpu %lld cpu %lld", (long long)k_gpu, (long long)k_cpu);
    char t[64];
    snprintf(t, sizeof t, "xent %lldx%lld dlogits", (long long)n, (long long)c);
    cmp_dev(t, d_dz, dz, n * c, 1e-5);
    /* loss only (dlogits NULL), deterministic: same value twice */
    double l2 = 0, l3 = 0;
    OK(sg_cuda_cross_entropy(d_z, d_lab, NULL, n, c, &l2, NULL));
    OK(sg_cuda_cross_entropy(d_z, d_lab, NULL, n, c, &l3, NULL));
    CHECK(l2 == l_gpu && l3 == l2, "xent: loss not reproducible: %.17g %.17g %.17g", l_gpu, l2, l3);
    /* a bad label is an error naming the row */
    lab[n / 2] = (int32_t)c;
    int32_t *d_bad = dup_i(lab, n);
    int rc = sg_cuda_cross_entropy(d_z, d_bad, NULL, n, c, &l2, NULL);
    CHECK(rc != 0 && strstr(sg_geterr(), "out of range"), "xent: bad label not reported (%s)",
          sg_geterr());
    printf("  ok xent %lldx%lld loss %.9f correct %lld; bad label: %s\n", (long long)n,
           (long long)c, l_gpu, (long long)k_gpu, sg_geterr());
    /* read back later: two slots queued, the newer read first waits once for
     * both; the bad label's error (the same message) comes at its read, the
     * other slot has the synchronous call's numbers, and again without a wait */
    char bad_msg[256];
    snprintf(bad_msg, sizeof bad_msg, "%s", sg_geterr());
    sg_readback *ra = sg_cuda_readback_new(), *rb = sg_cuda_readback_new();
    CHECK(ra && rb, "xent: read-back slots: %s", sg_geterr());
    OK(sg_cuda_cross_entropy_queue(d_z, d_lab, NULL, n, c, ra));
    OK(sg_cuda_cross_entropy_queue(d_z, d_bad, NULL, n, c, rb));
    int64_t waits = sg_cuda_host_waits(), k4 = -1;
    double l4 = 0;
    rc = sg_cuda_cross_entropy_read(rb, &l4, NULL);
    CHECK(rc != 0 && strcmp(sg_geterr(), bad_msg) == 0, "xent read back: bad label: %s (synchronous: %s)",
          rc ? sg_geterr() : "no error", bad_msg);
    OK(sg_cuda_cross_entropy_read(ra, &l4, &k4));
    CHECK(l4 == l_gpu && k4 == k_gpu, "xent read back: loss %.17g correct %lld, synchronous %.17g %lld",
          l4, (long long)k4, l_gpu, (long long)k_gpu);
    OK(sg_cuda_cross_entropy_read(ra, &l4, &k4));
    CHECK(l4 == l_gpu && sg_cuda_host_waits() - waits == 1,
          "xent read back: %lld host waits for two slots read three times, expected 1",
          (long long)(sg_cuda_host_waits() - waits));
    sg_cuda_readback_free(ra);
    sg_cuda_readback_free(rb);
    sg_cuda_free(d_z); sg_cuda_free(d_dz); sg_cuda_free(d_lab); sg_cuda_free(d_bad);
    free(z); free(dz); free(lab);
}

/* Rows with NaNs: the loss is NaN on both devices and the correct count
 * follows the CPU's argmax rule (a NaN in column 0 makes the argmax 0, other
 * NaNs are skipped). */
static void test_xent_nan(void)
{
    const int64_t n = 64, c = 40;
    float *z = rnd(n * c, -4, 4), *dz = hbuf(n * c);
    int32_t *lab = calloc((size_t)n, sizeof *lab);
    for (int64_t i = 0; i < n; i++) {
        lab[i] = (int32_t)((i * 7) % c);
        z[i * c + lab[i]] = 9.0f;                  /* right unless a NaN decides */
        if (i % 4 == 1)
            z[i * c] = NAN;                        /* column 0: argmax 0 */
        if (i % 4 == 2)
            z[i * c + (i * 13 + 5) % c] = NAN;     /* elsewhere: skipped */
        if (i % 8 == 3)
            lab[i] = 0;                            /* label 0 with a NaN at 0: counted */
        if (i % 8 == 3)
            z[i * c] = NAN;
    }
    double l_cpu = 0, l_gpu = 0;
    int64_t k_cpu = -1, k_gpu = -2;
    OK(sg_cpu_cross_entropy(z, lab, dz, n, c, &l_cpu, &k_cpu));
    float *d_z = dup_f(z, n * c), *d_dz = dalloc((size_t)(n * c) * 4);
    int32_t *d_lab = dup_i(lab, n);
    OK(sg_cuda_cross_entropy(d_z, d_lab, d_dz, n, c, &l_gpu, &k_gpu));
    CHECK(isnan(l_cpu) && isnan(l_gpu), "xent with NaN logits: loss cpu %g gpu %g (both NaN)",
          l_cpu, l_gpu);
    CHECK(k_gpu == k_cpu, "xent with NaN logits: correct gpu %lld cpu %lld (argmax rule)",
          (long long)k_gpu, (long long)k_cpu);
    cmp_dev("xent NaN rows dlogits", d_dz, dz, n * c, 1e-5);
    printf("  ok xent with NaN rows: correct %lld on both\n", (long long)k_gpu);
    sg_cuda_free(d_z); sg_cuda_free(d_dz); sg_cuda_free(d_lab);
    free(z); free(dz); free(lab);
}

int main(void)
{
    cuda_or_skip("the CUDA layer tests");
    char name[256];
    if (sg_cuda_device_name(name, sizeof name) == 0)
        printf("device: %s\n", name);
    sg_rng_init(&g_rng, 1234, sg_rng_hash("test_cuda_layers"));
    sg_cuda_set_tf32(0);

    test_conv(4, 3, 9, 7, 5, 3, 3, 1, 1, 1);
    test_conv(3, 8, 10, 10, 6, 1, 1, 2, 0, 0);     /* 1x1 stride-2 shortcut */
    test_conv(2, 5, 11, 13, 4, 5, 3, 2, 2, 1);     /* odd kernel, stride 2 */
    test_conv(16, 64, 16, 16, 64, 3, 3, 1, 1, 0);  /* a ResNet stage */
    sg_cuda_set_deterministic(1);
    test_conv(8, 32, 8, 8, 48, 3, 3, 1, 1, 1);
    sg_cuda_set_deterministic(0);

    test_linear(7, 13, 5);
    test_linear(64, 512, 10);

    test_bn(8, 16, 25, 1);
    test_bn(4, 6, 49, 0);
    test_bn(32, 10, 1, 1);     /* BatchNorm1d */
    test_bn(64, 64, 256, 1);   /* a larger map */

    test_pool(2, 3, 8, 8, 2, 2, 0);
    test_pool(2, 3, 9, 11, 3, 2, 1);
    test_pool(1, 4, 7, 7, 3, 1, 1);
    test_global_pool(8, 16, 16);
    test_global_pool(3, 5, 1);

    /* the layers whose kernels divide indices, again with the int64 index
     * arithmetic of tensors above 2^31 elements */
    sg_cuda_set_index64(1);
    printf("index arithmetic: int64 (forced)\n");
    test_conv(2, 5, 11, 13, 4, 5, 3, 2, 2, 1);     /* the bias */
    test_linear(7, 13, 5);
    test_bn(8, 16, 25, 1);
    test_pool(2, 3, 9, 11, 3, 2, 1);
    test_pool(1, 4, 7, 7, 3, 1, 1);
    test_global_pool(3, 5, 7);
    sg_cuda_set_index64(0);

    test_relu_dropout();
    test_xent(37, 10);
    test_xent(130, 100);
    test_xent(512, 10);
    test_xent_nan();

    return check_done("test_cuda_layers", "all CUDA layer checks passed");
}

#else
CUDA_TEST_SKIP_MAIN("the CUDA layer tests (built without the CUDA backend)")
#endif
