/*
 * test_nn_fixtures.c - the CPU layer kernels against PyTorch.
 *
 * Reads tests/fixtures/layers.h5 (written by tools/make-fixtures from
 * PyTorch, committed so this test needs no torch) with the HDF5 C API and
 * replays every case: /<op>/<case> holds the inputs, parameters, upstream
 * gradient dy and PyTorch's outputs and gradients (see tools/make-fixtures
 * for the layout). Outputs must agree within 1e-5 and gradients within 1e-4,
 * as max|a-b| <= tol * (1 + max|ref|). Every op must have at least one case,
 * so an emptied or truncated fixture file fails.
 */
#include <hdf5.h>

#include "nn_check.h"

#include "error.h"

#define FIXTURE "tests/fixtures/layers.h5"
#define TOL_OUT 1e-5
#define TOL_GRAD 1e-4

typedef struct {
    float *d;
    int ndim;
    int64_t dims[8];
    int64_t n;
} arr;

static int has(hid_t g, const char *name)
{
    return H5Lexists(g, name, H5P_DEFAULT) > 0;
}

/* Read a dataset as float32 (or int32 when as_int); exits the case on failure. */
static int read_arr(hid_t g, const char *name, arr *a, int as_int)
{
    memset(a, 0, sizeof *a);
    hid_t ds = H5Dopen2(g, name, H5P_DEFAULT);
    if (ds < 0)
        return -1;
    hid_t sp = H5Dget_space(ds);
    hsize_t dims[8];
    int nd = H5Sget_simple_extent_ndims(sp);
    if (nd < 0 || nd > 8) {
        H5Sclose(sp);
        H5Dclose(ds);
        return -1;
    }
    H5Sget_simple_extent_dims(sp, dims, NULL);
    a->ndim = nd;
    a->n = 1;
    for (int i = 0; i < nd; i++) {
        a->dims[i] = (int64_t)dims[i];
        a->n *= a->dims[i];
    }
    a->d = tbuf(a->n);
    herr_t rc = H5Dread(ds, as_int ? H5T_NATIVE_INT32 : H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL,
                        H5P_DEFAULT, a->d);
    H5Sclose(sp);
    H5Dclose(ds);
    return rc < 0 ? -1 : 0;
}

static arr need(hid_t g, const char *where, const char *name)
{
    arr a;
    if (read_arr(g, name, &a, 0)) {
        fprintf(stderr, "FAIL %s: cannot read dataset '%s'\n", where, name);
        g_failures++;
        a.d = tbuf(1);
        a.n = 0;
    }
    return a;
}

static void pair_attr(hid_t g, const char *name, int64_t out[2], int64_t def)
{
    out[0] = out[1] = def;
    if (H5Aexists(g, name) <= 0)
        return;
    hid_t at = H5Aopen(g, name, H5P_DEFAULT);
    H5Aread(at, H5T_NATIVE_INT64, out);
    H5Aclose(at);
}

static double num_attr(hid_t g, const char *name, double def)
{
    double v = def;
    if (H5Aexists(g, name) <= 0)
        return v;
    hid_t at = H5Aopen(g, name, H5P_DEFAULT);
    H5Aread(at, H5T_NATIVE_DOUBLE, &v);
    H5Aclose(at);
    return v;
}

static void compare(const char *where, const char *what, const float *got, const arr *ref,
                    double tol)
{
    double err;
    if (ref->n == 0)
        return;
    if (!close_rel(got, ref->d, ref->n, tol, &err)) {
        fprintf(stderr, "FAIL %s: %s differs from PyTorch: max error %.3g relative (tol %g)\n",
                where, what, err, tol);
        g_failures++;
    }
}

/* A case of a layer with a weight and an optional bias (conv2d, linear). */
typedef struct {
    arr x, w, y, dy, dx, dw, b, db;
    int bias;
} weighted;

static weighted need_weighted(hid_t g, const char *where)
{
    weighted c = { 0 };
    c.x = need(g, where, "x");
    c.w = need(g, where, "weight");
    c.y = need(g, where, "y");
    c.dy = need(g, where, "dy");
    c.dx = need(g, where, "dx");
    c.dw = need(g, where, "dweight");
    c.bias = has(g, "bias");
    if (c.bias) {
        c.b = need(g, where, "bias");
        c.db = need(g, where, "dbias");
    }
    return c;
}

/* Compare the layer's output and gradients with PyTorch's, then free the case. */
static void check_weighted(const char *where, weighted *c, const float *y, const float *dx,
                           const float *dw, const float *db)
{
    compare(where, "y", y, &c->y, TOL_OUT);
    compare(where, "dx", dx, &c->dx, TOL_GRAD);
    compare(where, "dweight", dw, &c->dw, TOL_GRAD);
    if (c->bias)
        compare(where, "dbias", db, &c->db, TOL_GRAD);
    free(c->x.d); free(c->w.d); free(c->y.d); free(c->dy.d); free(c->dx.d); free(c->dw.d);
    free(c->b.d); free(c->db.d);
}

static void run_conv(hid_t g, const char *where)
{
    weighted c = need_weighted(g, where);
    const arr x = c.x, w = c.w, y = c.y;
    int64_t st[2], pd[2];
    pair_attr(g, "stride", st, 1);
    pair_attr(g, "pad", pd, 0);
    sg_conv2d_geom geo;
    if (x.ndim != 4 || w.ndim != 4 ||
        sg_conv2d_geom_init(&geo, x.dims[0], x.dims[1], x.dims[2], x.dims[3], w.dims[0],
                            w.dims[2], w.dims[3], st[0], st[1], pd[0], pd[1])) {
        EXPECT(0, "%s: bad geometry: %s", where, sg_geterr());
        return;
    }
    EXPECT(geo.n * geo.k * geo.oh * geo.ow == y.n, "%s: output size", where);
    float *ws = tbuf((int64_t)sg_cpu_conv2d_workspace_size(&geo));
    float *oy = tbuf(y.n), *odx = tbuf(x.n), *odw = tbuf(w.n), *odb = tbuf(w.dims[0]);
    sg_cpu_conv2d_forward(ws, x.d, oy, w.d, c.bias ? c.b.d : NULL, &geo);
    sg_cpu_conv2d_backward_data(ws, c.dy.d, odx, w.d, &geo);
    sg_cpu_conv2d_backward_params(ws, x.d, c.dy.d, odw, c.bias ? odb : NULL, &geo);
    check_weighted(where, &c, oy, odx, odw, odb);
    free(ws); free(oy); free(odx); free(odw); free(odb);
}

static void run_linear(hid_t g, const char *where)
{
    weighted c = need_weighted(g, where);
    const arr x = c.x, w = c.w;
    const int64_t n = x.dims[0], in = x.dims[1], out = w.dims[0];
    float *oy = tbuf(c.y.n), *odx = tbuf(x.n), *odw = tbuf(w.n), *odb = tbuf(out);
    EXPECT(sg_cpu_linear_forward(x.d, oy, w.d, c.bias ? c.b.d : NULL, n, in, out) == 0, "%s",
           where);
    EXPECT(sg_cpu_linear_backward_data(c.dy.d, odx, w.d, n, in, out) == 0, "%s", where);
    EXPECT(sg_cpu_linear_backward_params(x.d, c.dy.d, odw, c.bias ? odb : NULL, n, in, out) == 0,
           "%s", where);
    check_weighted(where, &c, oy, odx, odw, odb);
    free(oy); free(odx); free(odw); free(odb);
}

static void run_bn(hid_t g, const char *where)
{
    arr x = need(g, where, "x"), y = need(g, where, "y"), dy = need(g, where, "dy");
    arr dx = need(g, where, "dx"), rm = need(g, where, "running_mean");
    arr rv = need(g, where, "running_var"), rma = need(g, where, "running_mean_after");
    arr rva = need(g, where, "running_var_after");
    arr ga = { 0 }, be = { 0 }, dga = { 0 }, dbe = { 0 };
    int affine = has(g, "weight");
    if (affine) {
        ga = need(g, where, "weight");
        be = need(g, where, "bias");
        dga = need(g, where, "dweight");
        dbe = need(g, where, "dbias");
    }
    const int training = (int)num_attr(g, "training", 1);
    const double eps = num_attr(g, "eps", 1e-5), mom = num_attr(g, "momentum", 0.1);
    const int64_t n = x.dims[0], c = x.dims[1];
    int64_t hw = 1;
    for (int i = 2; i < x.ndim; i++)
        hw *= x.dims[i];
    float *oy = tbuf(x.n), *odx = tbuf(x.n), *sm = tbuf(c), *si = tbuf(c);
    float *odg = tbuf(c), *odb = tbuf(c);
    const float *gp = affine ? ga.d : NULL, *bp = affine ? be.d : NULL;
    int rc = training
        ? sg_cpu_batchnorm_forward_train(x.d, oy, gp, bp, sm, si, rm.d, rv.d, n, c, hw, eps,
                                         mom, 1)
        : sg_cpu_batchnorm_forward_eval(x.d, oy, gp, bp, sm, si, rm.d, rv.d, n, c, hw, eps);
    EXPECT(rc == 0, "%s: %s", where, sg_geterr());
    EXPECT(sg_cpu_batchnorm_backward_data(x.d, dy.d, odx, gp, sm, si, n, c, hw, training) == 0,
           "%s", where);
    EXPECT(sg_cpu_batchnorm_backward_params(x.d, dy.d, odg, odb, sm, si, n, c, hw) == 0, "%s",
           where);
    compare(where, "y", oy, &y, TOL_OUT);
    compare(where, "running_mean after the step", rm.d, &rma, TOL_OUT);
    compare(where, "running_var after the step", rv.d, &rva, TOL_OUT);
    compare(where, "dx", odx, &dx, TOL_GRAD);
    if (affine) {
        compare(where, "dweight", odg, &dga, TOL_GRAD);
        compare(where, "dbias", odb, &dbe, TOL_GRAD);
    }
    free(oy); free(odx); free(sm); free(si); free(odg); free(odb);
    free(x.d); free(y.d); free(dy.d); free(dx.d); free(rm.d); free(rv.d); free(rma.d);
    free(rva.d); free(ga.d); free(be.d); free(dga.d); free(dbe.d);
}

static void run_pool(hid_t g, const char *where, const char *op)
{
    arr x = need(g, where, "x"), y = need(g, where, "y"), dy = need(g, where, "dy");
    arr dx = need(g, where, "dx");
    float *oy = tbuf(y.n), *odx = tbuf(x.n);
    if (!strcmp(op, "relu")) {
        sg_cpu_relu_forward(x.d, oy, x.n);
        sg_cpu_relu_backward_data(oy, dy.d, odx, x.n);
    } else if (!strcmp(op, "global_avgpool")) {
        const int64_t hw = x.dims[2] * x.dims[3];
        sg_cpu_global_avgpool_forward(x.d, oy, x.dims[0], x.dims[1], hw);
        sg_cpu_global_avgpool_backward_data(dy.d, odx, x.dims[0], x.dims[1], hw);
    } else {
        int64_t k[2], s[2], p[2];
        pair_attr(g, "kernel", k, 1);
        pair_attr(g, "stride", s, 1);
        pair_attr(g, "pad", p, 0);
        sg_pool2d_geom geo;
        if (sg_pool2d_geom_init(&geo, x.dims[0], x.dims[1], x.dims[2], x.dims[3], k[0], k[1],
                                s[0], s[1], p[0], p[1])) {
            EXPECT(0, "%s: %s", where, sg_geterr());
            return;
        }
        EXPECT(geo.n * geo.c * geo.oh * geo.ow == y.n, "%s: output size", where);
        if (!strcmp(op, "maxpool2d")) {
            int32_t *idx = calloc((size_t)y.n, sizeof(int32_t));
            sg_cpu_maxpool2d_forward(x.d, oy, idx, &geo);
            EXPECT(sg_cpu_maxpool2d_backward_data(dy.d, odx, idx, &geo) == 0, "%s", where);
            free(idx);
        } else {
            sg_cpu_avgpool2d_forward(x.d, oy, &geo);
            sg_cpu_avgpool2d_backward_data(dy.d, odx, &geo);
        }
    }
    compare(where, "y", oy, &y, TOL_OUT);
    compare(where, "dx", odx, &dx, TOL_GRAD);
    free(oy); free(odx); free(x.d); free(y.d); free(dy.d); free(dx.d);
}

static void run_ce(hid_t g, const char *where)
{
    arr z = need(g, where, "x"), dz = need(g, where, "dx"), loss = need(g, where, "loss");
    arr lab, cor;
    if (read_arr(g, "labels", &lab, 1) || read_arr(g, "correct", &cor, 1)) {
        EXPECT(0, "%s: cannot read labels/correct", where);
        return;
    }
    const int32_t *labels = (const int32_t *)(void *)lab.d;
    const int32_t want_correct = *(const int32_t *)(void *)cor.d;
    float *odz = tbuf(z.n);
    double l;
    int64_t correct;
    EXPECT(sg_cpu_cross_entropy(z.d, labels, odz, z.dims[0], z.dims[1], &l, &correct) == 0,
           "%s: %s", where, sg_geterr());
    float lf = (float)l;
    compare(where, "loss", &lf, &loss, TOL_OUT);
    compare(where, "dlogits", odz, &dz, TOL_GRAD);
    EXPECT(correct == want_correct, "%s: %lld correct, PyTorch %d", where, (long long)correct,
           (int)want_correct);
    free(odz); free(z.d); free(dz.d); free(loss.d); free(lab.d); free(cor.d);
}

static const char *ops[] = { "conv2d", "linear", "batchnorm", "maxpool2d", "avgpool2d",
                             "global_avgpool", "relu", "cross_entropy" };
#define NOPS (sizeof ops / sizeof ops[0])
static int op_cases[NOPS];

static herr_t visit_case(hid_t grp, const char *name, const H5L_info_t *info, void *data)
{
    const char *op = data;
    char where[256];
    snprintf(where, sizeof where, "%s/%s", op, name);
    hid_t g = H5Gopen2(grp, name, H5P_DEFAULT);
    if (g < 0) {
        EXPECT(0, "%s: not a group", where);
        return 0;
    }
    size_t i;
    for (i = 0; i < NOPS && strcmp(ops[i], op); i++)
        ;
    if (i == NOPS) {
        EXPECT(0, "%s: unknown op '%s' (tools/make-fixtures newer than this test?)", where, op);
    } else {
        op_cases[i]++;
        int before = g_failures;
        if (!strcmp(op, "conv2d"))
            run_conv(g, where);
        else if (!strcmp(op, "linear"))
            run_linear(g, where);
        else if (!strcmp(op, "batchnorm"))
            run_bn(g, where);
        else if (!strcmp(op, "cross_entropy"))
            run_ce(g, where);
        else
            run_pool(g, where, op);
        printf("%s %s\n", g_failures == before ? "ok  " : "FAIL", where);
    }
    H5Gclose(g);
    return 0;
}

static herr_t visit_op(hid_t root, const char *name, const H5L_info_t *info, void *data)
{
    hid_t g = H5Gopen2(root, name, H5P_DEFAULT);
    if (g < 0)
        return 0;
    H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, visit_case, (void *)name);
    H5Gclose(g);
    return 0;
}

int main(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(FIXTURE, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        fprintf(stderr, "FAIL: cannot open %s (run from the repository root; regenerate with "
                "tools/make-fixtures)\n", FIXTURE);
        return 1;
    }
    int64_t ver[2] = { 0, 0 };
    pair_attr(f, "format_version", ver, 0);
    EXPECT(ver[0] == 1, "%s: format_version %lld, this test reads 1", FIXTURE, (long long)ver[0]);
    H5Literate(f, H5_INDEX_NAME, H5_ITER_INC, NULL, visit_op, NULL);
    H5Fclose(f);
    for (size_t i = 0; i < NOPS; i++)
        EXPECT(op_cases[i] > 0, "no fixture cases for %s in %s", ops[i], FIXTURE);
    return check_done("test_nn_fixtures", "all cases agree with PyTorch");
}
