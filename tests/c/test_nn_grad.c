/*
 * test_nn_grad.c - finite-difference gradient checks of every CPU layer
 * kernel (kernels/cpu/nn.h), for input and parameter gradients.
 *
 * Each layer's scalar loss is L = sum(y * p) with a fixed random p, so
 * dL/dy = p is fed to the backward kernels. Every element of small inputs,
 * weights and biases is perturbed (central differences, double-precision
 * loss). Parameter gradients are checked on top of a non-zero starting
 * buffer, which also checks that they accumulate (+=) instead of overwrite.
 * The checker itself is shown to reject a gradient with two entries
 * swapped (a wrong index). Fixed seeds; runs in well under a second.
 */
#include "nn_check.h"

#include "error.h"

static sg_rng R;

/* Analytic param grad check: kernel added into a buffer prefilled with `base`. */
static void sub_base(float *g, int64_t n, float base)
{
    for (int64_t i = 0; i < n; i++)
        g[i] -= base;
}

/* ---- conv2d ------------------------------------------------------------- */
typedef struct {
    sg_conv2d_geom g;
    float *ws, *x, *y, *w, *b, *p;
} conv_ctx;

static double conv_loss(void *v)
{
    conv_ctx *c = v;
    if (sg_cpu_conv2d_forward(c->ws, c->x, c->y, c->w, c->b, &c->g)) {
        fprintf(stderr, "conv forward failed: %s\n", sg_geterr());
        exit(1);
    }
    return dot_d(c->y, c->p, c->g.n * c->g.k * c->g.oh * c->g.ow);
}

static void test_conv(int64_t n, int64_t ci, int64_t h, int64_t w, int64_t k, int64_t kh,
                      int64_t kw, int64_t s, int64_t pad, int bias, int64_t block)
{
    conv_ctx c;
    if (sg_conv2d_geom_init(&c.g, n, ci, h, w, k, kh, kw, s, s, pad, pad)) {
        EXPECT(0, "geom: %s", sg_geterr());
        return;
    }
    if (block != 0) {         /* forced: +b shared mode, -b per-thread mode, block |b| */
        c.g.per_thread = block < 0;
        c.g.block = block < 0 ? -block : block;
    }
    char name[160];
    snprintf(name, sizeof name, "conv2d %lldx%lldx%lldx%lld k%lld %lldx%lld s%lld p%lld%s %s %lld",
             (long long)n, (long long)ci, (long long)h, (long long)w, (long long)k,
             (long long)kh, (long long)kw, (long long)s, (long long)pad, bias ? "" : " nobias",
             c.g.per_thread ? "per-thread, block" : "shared, block", (long long)c.g.block);
    const int64_t nx = n * ci * h * w, nw = k * ci * kh * kw, ny = n * k * c.g.oh * c.g.ow;
    c.ws = tbuf((int64_t)sg_cpu_conv2d_workspace_size(&c.g));
    c.x = tbuf(nx); c.y = tbuf(ny); c.w = tbuf(nw); c.b = bias ? tbuf(k) : NULL; c.p = tbuf(ny);
    fill_uniform(&R, c.x, nx, -1, 1);
    fill_uniform(&R, c.w, nw, -1, 1);
    if (c.b)
        fill_uniform(&R, c.b, k, -1, 1);
    fill_uniform(&R, c.p, ny, -1, 1);
    float *dx = tbuf(nx), *dw = tbuf(nw), *db = tbuf(k);
    for (int64_t i = 0; i < nx; i++)
        dx[i] = 123.0f;  /* backward_data must overwrite */
    for (int64_t i = 0; i < nw; i++)
        dw[i] = 0.5f;
    for (int64_t i = 0; i < k; i++)
        db[i] = 0.5f;
    conv_loss(&c);
    EXPECT(sg_cpu_conv2d_backward_data(c.ws, c.p, dx, c.w, &c.g) == 0, "%s", sg_geterr());
    EXPECT(sg_cpu_conv2d_backward_params(c.ws, c.x, c.p, dw, c.b ? db : NULL, &c.g) == 0,
           "%s", sg_geterr());
    sub_base(dw, nw, 0.5f);
    sub_base(db, k, 0.5f);
    char what[200];
    snprintf(what, sizeof what, "%s: input", name);
    check_grad(what, c.x, dx, nx, conv_loss, &c, 1e-2f);
    snprintf(what, sizeof what, "%s: weight", name);
    check_grad(what, c.w, dw, nw, conv_loss, &c, 1e-2f);
    if (c.b) {
        snprintf(what, sizeof what, "%s: bias", name);
        check_grad(what, c.b, db, k, conv_loss, &c, 1e-2f);
    }
    free(c.ws); free(c.x); free(c.y); free(c.w); free(c.b); free(c.p);
    free(dx); free(dw); free(db);
}

/* ---- linear ------------------------------------------------------------- */
typedef struct {
    int64_t n, in, out;
    float *x, *y, *w, *b, *p;
} lin_ctx;

static double lin_loss(void *v)
{
    lin_ctx *c = v;
    sg_cpu_linear_forward(c->x, c->y, c->w, c->b, c->n, c->in, c->out);
    return dot_d(c->y, c->p, c->n * c->out);
}

static void test_linear(int64_t n, int64_t in, int64_t out, int bias)
{
    lin_ctx c = { n, in, out, tbuf(n * in), tbuf(n * out), tbuf(out * in),
                  bias ? tbuf(out) : NULL, tbuf(n * out) };
    fill_uniform(&R, c.x, n * in, -1, 1);
    fill_uniform(&R, c.w, out * in, -1, 1);
    if (c.b)
        fill_uniform(&R, c.b, out, -1, 1);
    fill_uniform(&R, c.p, n * out, -1, 1);
    float *dx = tbuf(n * in), *dw = tbuf(out * in), *db = tbuf(out);
    for (int64_t i = 0; i < out * in; i++)
        dw[i] = -0.25f;
    for (int64_t i = 0; i < out; i++)
        db[i] = -0.25f;
    EXPECT(sg_cpu_linear_backward_data(c.p, dx, c.w, n, in, out) == 0, "%s", sg_geterr());
    EXPECT(sg_cpu_linear_backward_params(c.x, c.p, dw, c.b ? db : NULL, n, in, out) == 0,
           "%s", sg_geterr());
    sub_base(dw, out * in, -0.25f);
    sub_base(db, out, -0.25f);
    char what[128];
    snprintf(what, sizeof what, "linear %lldx%lld->%lld%s: input", (long long)n,
             (long long)in, (long long)out, bias ? "" : " nobias");
    check_grad(what, c.x, dx, n * in, lin_loss, &c, 1e-2f);
    snprintf(what, sizeof what, "linear %lldx%lld->%lld: weight", (long long)n, (long long)in,
             (long long)out);
    check_grad(what, c.w, dw, out * in, lin_loss, &c, 1e-2f);
    if (c.b)
        check_grad("linear: bias", c.b, db, out, lin_loss, &c, 1e-2f);
    free(c.x); free(c.y); free(c.w); free(c.b); free(c.p); free(dx); free(dw); free(db);
}

/* ---- batchnorm ------------------------------------------------------------ */
typedef struct {
    int64_t n, c, hw;
    int training;
    float *x, *y, *gamma, *beta, *sm, *si, *rm, *rv, *p;
} bn_ctx;

static double bn_loss(void *v)
{
    bn_ctx *c = v;
    int rc = c->training
        ? sg_cpu_batchnorm_forward_train(c->x, c->y, c->gamma, c->beta, c->sm, c->si, c->rm,
                                         c->rv, c->n, c->c, c->hw, 1e-5, 0.1, 0)
        : sg_cpu_batchnorm_forward_eval(c->x, c->y, c->gamma, c->beta, c->sm, c->si, c->rm,
                                        c->rv, c->n, c->c, c->hw, 1e-5);
    if (rc) {
        fprintf(stderr, "bn forward failed: %s\n", sg_geterr());
        exit(1);
    }
    return dot_d(c->y, c->p, c->n * c->c * c->hw);
}

static void test_bn(int64_t n, int64_t ch, int64_t hw, int training, int affine)
{
    const int64_t nx = n * ch * hw;
    bn_ctx c = { n, ch, hw, training, tbuf(nx), tbuf(nx), affine ? tbuf(ch) : NULL,
                 affine ? tbuf(ch) : NULL, tbuf(ch), tbuf(ch), tbuf(ch), tbuf(ch), tbuf(nx) };
    fill_uniform(&R, c.x, nx, -2, 3);
    if (affine) {
        fill_uniform(&R, c.gamma, ch, 0.5f, 1.5f);
        fill_uniform(&R, c.beta, ch, -1, 1);
    }
    fill_uniform(&R, c.rm, ch, -0.5f, 0.5f);
    fill_uniform(&R, c.rv, ch, 0.5f, 2.0f);
    fill_uniform(&R, c.p, nx, -1, 1);
    bn_loss(&c);
    float *dx = tbuf(nx), *dg = tbuf(ch), *dbt = tbuf(ch);
    for (int64_t i = 0; i < ch; i++)
        dg[i] = dbt[i] = 1.0f;
    EXPECT(sg_cpu_batchnorm_backward_data(c.x, c.p, dx, c.gamma, c.sm, c.si, n, ch, hw,
                                          training) == 0, "%s", sg_geterr());
    EXPECT(sg_cpu_batchnorm_backward_params(c.x, c.p, dg, dbt, c.sm, c.si, n, ch, hw) == 0,
           "%s", sg_geterr());
    sub_base(dg, ch, 1.0f);
    sub_base(dbt, ch, 1.0f);
    char what[128];
    snprintf(what, sizeof what, "batchnorm %s N=%lld C=%lld HW=%lld%s: input",
             training ? "train" : "eval", (long long)n, (long long)ch, (long long)hw,
             affine ? "" : " noaffine");
    /* BN's output is scale-free in x, so the FD step is relative to the spread (~1). */
    check_grad(what, c.x, dx, nx, bn_loss, &c, 1e-2f);
    if (affine) {
        snprintf(what, sizeof what, "batchnorm %s: weight", training ? "train" : "eval");
        check_grad(what, c.gamma, dg, ch, bn_loss, &c, 1e-2f);
        snprintf(what, sizeof what, "batchnorm %s: bias", training ? "train" : "eval");
        check_grad(what, c.beta, dbt, ch, bn_loss, &c, 1e-2f);
    }
    free(c.x); free(c.y); free(c.gamma); free(c.beta); free(c.sm); free(c.si); free(c.rm);
    free(c.rv); free(c.p); free(dx); free(dg); free(dbt);
}

/* ---- pooling, relu, dropout, global pool -------------------------------------- */
typedef struct {
    int kind;  /* 0 max, 1 avg, 2 global avg, 3 relu, 4 dropout */
    sg_pool2d_geom g;
    int64_t nx, ny;
    float *x, *y, *p, *mask;
    int32_t *idx;
} pool_ctx;

static double pool_loss(void *v)
{
    pool_ctx *c = v;
    switch (c->kind) {
    case 0: sg_cpu_maxpool2d_forward(c->x, c->y, c->idx, &c->g); break;
    case 1: sg_cpu_avgpool2d_forward(c->x, c->y, &c->g); break;
    case 2: sg_cpu_global_avgpool_forward(c->x, c->y, c->g.n, c->g.c, c->g.h * c->g.w); break;
    case 3: sg_cpu_relu_forward(c->x, c->y, c->nx); break;
    default: sg_cpu_dropout_forward(c->x, c->y, c->mask, c->nx); break;
    }
    return dot_d(c->y, c->p, c->ny);
}

/* Inputs for the non-smooth ops: a shuffled ladder of distinct values 0.02
 * apart, none near 0, so +-eps (1e-3) never changes an argmax or a sign. */
static void ladder(float *x, int64_t n)
{
    int64_t *perm = malloc((size_t)n * sizeof(int64_t));
    sg_rng_permutation(&R, perm, n);
    for (int64_t i = 0; i < n; i++) {
        float v = 0.02f * (float)(perm[i] - n / 2);
        x[i] = v >= 0 ? v + 0.01f : v - 0.01f;
    }
    free(perm);
}

static void test_pool(int kind, int64_t n, int64_t ch, int64_t h, int64_t w, int64_t k,
                      int64_t s, int64_t pad)
{
    pool_ctx c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    if (kind <= 1) {
        if (sg_pool2d_geom_init(&c.g, n, ch, h, w, k, k, s, s, pad, pad)) {
            EXPECT(0, "pool geom: %s", sg_geterr());
            return;
        }
    } else {
        c.g.n = n; c.g.c = ch; c.g.h = h; c.g.w = w; c.g.oh = h; c.g.ow = w;
    }
    c.nx = n * ch * h * w;
    c.ny = kind <= 1 ? n * ch * c.g.oh * c.g.ow : kind == 2 ? n * ch : c.nx;
    c.x = tbuf(c.nx); c.y = tbuf(c.ny); c.p = tbuf(c.ny); c.mask = tbuf(c.nx);
    c.idx = calloc((size_t)c.ny, sizeof(int32_t));
    if (kind == 0 || kind == 3)
        ladder(c.x, c.nx);
    else
        fill_uniform(&R, c.x, c.nx, -1, 1);
    fill_uniform(&R, c.p, c.ny, -1, 1);
    if (kind == 4)
        EXPECT(sg_cpu_dropout_mask(&R, c.mask, c.nx, 0.3) == 0, "%s", sg_geterr());
    pool_loss(&c);
    float *dx = tbuf(c.nx);
    for (int64_t i = 0; i < c.nx; i++)
        dx[i] = 7.0f;
    int rc;
    switch (kind) {
    case 0: rc = sg_cpu_maxpool2d_backward_data(c.p, dx, c.idx, &c.g); break;
    case 1: rc = sg_cpu_avgpool2d_backward_data(c.p, dx, &c.g); break;
    case 2: rc = sg_cpu_global_avgpool_backward_data(c.p, dx, n, ch, h * w); break;
    case 3: rc = sg_cpu_relu_backward_data(c.y, c.p, dx, c.nx); break;
    default: rc = sg_cpu_dropout_backward_data(c.p, dx, c.mask, c.nx); break;
    }
    EXPECT(rc == 0, "%s", sg_geterr());
    static const char *names[] = { "maxpool2d", "avgpool2d", "global_avgpool", "relu", "dropout" };
    char what[128];
    snprintf(what, sizeof what, "%s %lldx%lldx%lldx%lld k%lld s%lld p%lld: input",
             names[kind], (long long)n, (long long)ch, (long long)h, (long long)w,
             (long long)k, (long long)s, (long long)pad);
    check_grad(what, c.x, dx, c.nx, pool_loss, &c, 1e-3f);
    free(c.x); free(c.y); free(c.p); free(c.mask); free(c.idx); free(dx);
}

/* ---- cross-entropy -------------------------------------------------------- */
typedef struct {
    int64_t n, c;
    float *z;
    int32_t *lab;
} ce_ctx;

static double ce_loss(void *v)
{
    ce_ctx *c = v;
    double l;
    sg_cpu_cross_entropy(c->z, c->lab, NULL, c->n, c->c, &l, NULL);
    return l;
}

static void test_ce(int64_t n, int64_t cl)
{
    ce_ctx c = { n, cl, tbuf(n * cl), calloc((size_t)n, sizeof(int32_t)) };
    fill_uniform(&R, c.z, n * cl, -3, 3);
    for (int64_t i = 0; i < n; i++)
        c.lab[i] = (int32_t)sg_rng_below(&R, (uint64_t)cl);
    float *dz = tbuf(n * cl);
    double l;
    int64_t correct;
    EXPECT(sg_cpu_cross_entropy(c.z, c.lab, dz, n, cl, &l, &correct) == 0, "%s", sg_geterr());
    char what[64];
    snprintf(what, sizeof what, "cross_entropy %lldx%lld: logits", (long long)n, (long long)cl);
    check_grad(what, c.z, dz, n * cl, ce_loss, &c, 1e-2f);
    free(c.z); free(c.lab); free(dz);
}

/* The checker must reject a gradient with two entries swapped. */
static void test_checker_catches_wrong_index(void)
{
    lin_ctx c = { 3, 4, 5, tbuf(12), tbuf(15), tbuf(20), tbuf(5), tbuf(15) };
    fill_uniform(&R, c.x, 12, -1, 1);
    fill_uniform(&R, c.w, 20, -1, 1);
    fill_uniform(&R, c.b, 5, -1, 1);
    fill_uniform(&R, c.p, 15, -1, 1);
    float *dx = tbuf(12);
    sg_cpu_linear_backward_data(c.p, dx, c.w, 3, 4, 5);
    int good = check_grad_tol("self-test (correct)", c.x, dx, 12, lin_loss, &c, 1e-2f, 1e-2,
                              1e-3, 0);
    EXPECT(good == 0, "checker rejected a correct gradient");
    float t = dx[5];
    dx[5] = dx[6];
    dx[6] = t;
    int bad = check_grad_tol("self-test (swapped)", c.x, dx, 12, lin_loss, &c, 1e-2f, 1e-2,
                             1e-3, 1);
    EXPECT(bad >= 2, "checker accepted a gradient with two entries swapped (%d bad)", bad);
    free(c.x); free(c.y); free(c.w); free(c.b); free(c.p); free(dx);
}

int main(void)
{
    sg_rng_init(&R, 20240601, sg_rng_hash("test_nn_grad"));
    test_checker_catches_wrong_index();

    /* conv: padding, stride 2, odd sizes, rectangular kernels, no bias,
     * the pointwise path; last argument: 0 = automatic, +b = shared mode
     * with blocks of b images, -b = per-thread mode with blocks of b (ragged
     * last blocks included). */
    test_conv(2, 3, 5, 6, 4, 3, 3, 1, 1, 1, 0);
    test_conv(3, 2, 7, 5, 3, 3, 3, 2, 1, 1, 1);
    test_conv(3, 2, 7, 5, 3, 3, 3, 2, 1, 1, 2);
    test_conv(2, 3, 6, 7, 2, 2, 3, 2, 0, 0, 0);
    test_conv(2, 4, 5, 5, 3, 1, 1, 1, 0, 1, 1);
    test_conv(3, 4, 5, 5, 3, 1, 1, 1, 0, 0, 2);
    test_conv(2, 4, 5, 5, 3, 1, 1, 2, 0, 1, 0);
    test_conv(1, 2, 4, 4, 2, 5, 5, 1, 2, 1, 0);
    test_conv(5, 2, 7, 5, 3, 3, 3, 2, 1, 1, -1);
    test_conv(5, 2, 7, 5, 3, 3, 3, 2, 1, 1, -2);
    test_conv(3, 4, 5, 5, 3, 1, 1, 1, 0, 1, -1);
    test_conv(5, 4, 5, 5, 3, 1, 1, 1, 0, 0, -2);
    test_conv(2, 3, 6, 7, 2, 2, 3, 2, 0, 0, -1);

    test_linear(4, 7, 5, 1);
    test_linear(3, 6, 2, 0);

    for (int training = 0; training <= 1; training++) {
        test_bn(4, 3, 5, training, 1);   /* BatchNorm2d, 5 = a 1x5 plane */
        test_bn(6, 4, 1, training, 1);   /* BatchNorm1d */
        test_bn(3, 2, 4, training, 0);   /* affine = False */
    }

    test_pool(0, 2, 2, 5, 6, 2, 2, 0);
    test_pool(0, 2, 2, 5, 5, 3, 2, 1);
    test_pool(0, 1, 3, 6, 6, 3, 1, 1);
    test_pool(1, 2, 2, 5, 6, 2, 2, 0);
    test_pool(1, 2, 2, 5, 5, 3, 2, 1);
    test_pool(2, 2, 3, 3, 4, 0, 0, 0);
    test_pool(3, 2, 3, 3, 4, 0, 0, 0);
    test_pool(4, 2, 3, 3, 4, 0, 0, 0);

    test_ce(5, 4);
    test_ce(3, 10);

    return check_done("test_nn_grad", "all gradient checks passed");
}
