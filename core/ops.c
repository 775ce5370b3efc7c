/*
 * ops.c - the layer ops (ops.h): argument checks once, then the kernel of
 * the op's device through its backend's table (kernels/backend.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "comm.h"
#include "error.h"
#include "ops.h"

/* One op's call: its name, its device and that device's backend table. */
typedef struct {
    const char *op;
    sg_devtype dev;
    const sg_backend *be;
} op_call;

/* The device of an op: cuda when any tensor argument is there, else cpu. */
static op_call op_begin(const char *op, int n, const sg_tensor *const *ts)
{
    op_call o = { op, SG_CPU, NULL };
    for (int i = 0; i < n && o.dev == SG_CPU; i++)
        if (ts[i] && ts[i]->storage && ts[i]->storage->device == SG_CUDA)
            o.dev = SG_CUDA;
    o.be = sg_backend_get(o.dev);
    return o;
}
#define BEGIN(op, ...)                                                                 \
    op_begin(op, (int)(sizeof((const sg_tensor *[]){ __VA_ARGS__ }) / sizeof(sg_tensor *)), \
             (const sg_tensor *[]){ __VA_ARGS__ })

/* The backend's `entry` called with the arguments, or -1 naming op and device. */
#define CALL(o, entry, ...)                                                            \
    ((o)->be && (o)->be->entry ? (o)->be->entry(__VA_ARGS__)                           \
                               : sg_backend_lacks((o)->dev, (o)->op, #entry))

static const char *shp(const sg_tensor *t, char *buf)
{
    return sg_shape_str(t, buf, 128);
}

static float *F(const sg_tensor *t)
{
    return t ? sg_f32(t) : NULL;
}

/* "<op>: <message> (<device>)"; -1. */
static int fail(const op_call *o, const char *fmt, ...) SG_PRINTF(2, 3);
static int fail(const op_call *o, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return sg_seterr("%s: %s (%s)", o->op, msg, sg_device_name(o->dev));
}

/* An input, parameter or gradient: on the op's device, of dtype dt, contiguous. */
static int in(const op_call *o, const sg_tensor *t, const char *name, sg_dtype dt)
{
    char b[128];
    if (sg_tensor_check(t, o->op) != 0)
        return -1;
    sg_devtype d = t->storage->device;
    if (d != o->dev)
        return sg_seterr("%s: %s %s is on %s while other arguments are on %s; move it with "
                         ":%s() (or the others with :%s())", o->op, name, shp(t, b),
                         sg_device_name(d), sg_device_name(o->dev), sg_device_name(o->dev),
                         sg_device_name(d));
    if (t->dtype != dt)
        return fail(o, "%s %s is %s, expected %s", name, shp(t, b), sg_dtype_name(t->dtype),
                    sg_dtype_name(dt));
    if (!sg_tensor_is_contiguous(t))
        return sg_seterr("%s: %s %s is not contiguous (%s); use :contiguous()", o->op, name,
                         shp(t, b), sg_device_name(d));
    return 0;
}

/* An output, workspace or saved buffer: dtype dt, moved to the op's device
 * when it owns its storage, resized to ndim/size. */
static int out(const op_call *o, sg_tensor *t, const char *name, sg_dtype dt, int ndim,
               const int64_t *size)
{
    char b[128];
    if (sg_tensor_check(t, o->op) != 0)
        return -1;
    if (t->dtype != dt)
        return fail(o, "output %s %s is %s, expected %s", name, shp(t, b),
                    sg_dtype_name(t->dtype), sg_dtype_name(dt));
    if (t->storage->device != o->dev) {
        if (t->storage->refcount != 1)
            return sg_seterr("%s: output %s %s is on %s and shares its storage, while the "
                             "inputs are on %s; give a %s tensor", o->op, name, shp(t, b),
                             sg_device_name(t->storage->device), sg_device_name(o->dev),
                             sg_device_name(o->dev));
        int64_t n = 1;
        for (int i = 0; i < ndim; i++)
            n *= size[i];
        sg_storage *s = sg_storage_new((size_t)(n > 0 ? n : 1) * sg_dtype_size(dt), o->dev);
        if (!s)
            return sg_adderr("%s: output %s moved to %s", o->op, name, sg_device_name(o->dev));
        sg_storage_release(t->storage);
        t->storage = s;
        t->offset = 0;
    } else if (!sg_tensor_is_contiguous(t)) {
        return fail(o, "output %s %s is not contiguous", name, shp(t, b));
    }
    if (sg_tensor_resize(t, ndim, size))
        return sg_adderr("%s: output %s", o->op, name);
    return 0;
}

/* A float32 output resized to the shape of `like`. */
static int out_like(const op_call *o, sg_tensor *t, const char *name, const sg_tensor *like)
{
    return out(o, t, name, SG_F32, like->ndim, like->size);
}

static int ndim_is(const op_call *o, const sg_tensor *t, const char *name, int ndim)
{
    char b[128];
    return t->ndim != ndim ? fail(o, "%s %s must be %d-d", name, shp(t, b), ndim) : 0;
}

/* A parameter, its gradient or a saved buffer: exactly ndim/size (never
 * resized); NULL is fine when optional. */
static int shaped(const op_call *o, const sg_tensor *t, const char *name, int ndim,
                  const int64_t *size, int optional)
{
    if (!t) {
        if (optional)
            return 0;
        return fail(o, "missing %s", name);
    }
    if (in(o, t, name, SG_F32) != 0)
        return -1;
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++)
        ok = t->size[i] == size[i];
    if (!ok) {
        char b[128], want[128];
        size_t pos = 0;
        want[0] = '\0';
        for (int i = 0; i < ndim && pos < sizeof want; i++)
            pos += (size_t)snprintf(want + pos, sizeof want - pos, i ? "x%lld" : "%lld",
                                    (long long)size[i]);
        return fail(o, "%s is %s, expected %s", name, shp(t, b), want);
    }
    return 0;
}

/* A float32 input with the shape of another. */
static int same_as(const op_call *o, const sg_tensor *t, const char *name,
                   const sg_tensor *like, const char *like_name)
{
    char b[128], c[128];
    if (in(o, t, name, SG_F32) != 0)
        return -1;
    if (!sg_tensor_same_shape(t, like))
        return fail(o, "%s %s does not match %s %s", name, shp(t, b), like_name, shp(like, c));
    return 0;
}

/* ---- conv2d ---------------------------------------------------------------------- */

/* x (NxCxHxW) and a weight-shaped w (KxCxKHxKW): the geometry; dy (when
 * given) has the output's shape. */
static int conv_args(const op_call *o, const sg_tensor *x, const sg_tensor *w, const char *wname,
                     const sg_tensor *dy, const int64_t stride[2], const int64_t pad[2],
                     sg_conv2d_geom *g)
{
    char b1[128], b2[128];
    if (in(o, x, "input", SG_F32) != 0 || in(o, w, wname, SG_F32) != 0 ||
        ndim_is(o, x, "input", 4) != 0 || ndim_is(o, w, "weight", 4) != 0)
        return -1;
    const int64_t *xs = x->size, *ws = w->size;
    if (xs[1] != ws[1])
        return fail(o, "input %s has %lld channels, weight %s expects %lld", shp(x, b1),
                    (long long)xs[1], shp(w, b2), (long long)ws[1]);
    if (sg_conv2d_geom_init(g, xs[0], xs[1], xs[2], xs[3], ws[0], ws[2], ws[3], stride[0],
                            stride[1], pad[0], pad[1]))
        return sg_adderr("%s: input %s, weight %s", o->op, shp(x, b1), shp(w, b2));
    const int64_t ys[4] = { g->n, g->k, g->oh, g->ow };
    return dy ? shaped(o, dy, "dy", 4, ys, 0) : 0;
}

/* The workspace: on the cpu ws resized to the geometry's size, or (ws NULL)
 * allocated for the call into *owned; on the GPU unused. args: the op's
 * arguments after ws (argument #2 on), none of which it may share storage with. */
static int ws_get(const op_call *o, sg_tensor *ws, const sg_tensor *const *args, int nargs,
                  const sg_conv2d_geom *g, float **p, float **owned)
{
    *p = *owned = NULL;
    if (o->dev != SG_CPU)
        return 0;
    if (!o->be || !o->be->conv2d_workspace_size)
        return sg_backend_lacks(o->dev, o->op, "conv2d_workspace_size");
    size_t n = o->be->conv2d_workspace_size(g);
    if (!ws) {
        *p = *owned = sg_aligned_alloc((n ? n : 1) * sizeof(float), o->op);
        return *owned ? 0 : -1;
    }
    /* a workspace over an input's or output's memory would be overwritten while
     * the kernel reads it (and im2col's memcpy would copy between overlapping ranges) */
    if (sg_tensor_check(ws, o->op) != 0)
        return -1;
    for (int i = 0; i < nargs; i++)
        if (args[i] && args[i]->storage == ws->storage) {
            char b[128];
            return fail(o, "workspace %s shares its storage with argument #%d", shp(ws, b),
                        i + 2);
        }
    int64_t sz = (int64_t)(n ? n : 1);
    if (out(o, ws, "workspace", SG_F32, 1, &sz) != 0)
        return -1;
    *p = sg_f32(ws);
    return 0;
}

/* Run a conv pass's kernel with the workspace, then free a temporary one. */
#define CONV_RUN(o, ws, g, entry, ...)                                                  \
    do {                                                                                \
        float *wp_, *owned_;                                                            \
        if (ws_get(o, ws, (const sg_tensor *[]){ __VA_ARGS__ }, 4, g, &wp_, &owned_))   \
            return -1;                                                                  \
        int rc_ = CALL(o, entry, wp_, ARGS_##entry);                                    \
        free(owned_);                                                                   \
        return rc_;                                                                     \
    } while (0)
#define ARGS_conv2d_forward F(x), F(y), F(w), F(b), &g
#define ARGS_conv2d_backward_data F(dy), F(dx), F(w), &g
#define ARGS_conv2d_backward_params F(x), F(dy), F(dw), F(db), &g

int sg_conv2d_forward(sg_tensor *ws, const sg_tensor *x, sg_tensor *y, const sg_tensor *w,
                      const sg_tensor *b, const int64_t stride[2], const int64_t pad[2])
{
    op_call o = BEGIN("conv2d_forward", ws, x, y, w, b);
    sg_conv2d_geom g;
    if (conv_args(&o, x, w, "weight", NULL, stride, pad, &g) != 0 ||
        shaped(&o, b, "bias", 1, &g.k, 1) != 0)
        return -1;
    const int64_t ys[4] = { g.n, g.k, g.oh, g.ow };
    if (out(&o, y, "y", SG_F32, 4, ys) != 0)
        return -1;
    CONV_RUN(&o, ws, &g, conv2d_forward, x, y, w, b);
}

int sg_conv2d_backward_data(sg_tensor *ws, const sg_tensor *x, const sg_tensor *dy,
                            sg_tensor *dx, const sg_tensor *w, const int64_t stride[2],
                            const int64_t pad[2])
{
    op_call o = BEGIN("conv2d_backward_data", ws, x, dy, dx, w);
    sg_conv2d_geom g;
    if (conv_args(&o, x, w, "weight", dy, stride, pad, &g) != 0 ||
        out_like(&o, dx, "dx", x) != 0)
        return -1;
    CONV_RUN(&o, ws, &g, conv2d_backward_data, x, dy, dx, w);
}

int sg_conv2d_backward_params(sg_tensor *ws, const sg_tensor *x, const sg_tensor *dy,
                              sg_tensor *dw, sg_tensor *db, const int64_t stride[2],
                              const int64_t pad[2])
{
    op_call o = BEGIN("conv2d_backward_params", ws, x, dy, dw, db);
    sg_conv2d_geom g;
    if (conv_args(&o, x, dw, "dw", dy, stride, pad, &g) != 0 ||
        shaped(&o, db, "db", 1, &g.k, 1) != 0)
        return -1;
    CONV_RUN(&o, ws, &g, conv2d_backward_params, x, dy, dw, db);
}

int sg_conv2d_output_size(int64_t h, int64_t w, int64_t kh, int64_t kw,
                          const int64_t stride[2], const int64_t pad[2], int64_t *oh,
                          int64_t *ow)
{
    sg_conv2d_geom g;
    if (sg_conv2d_geom_init(&g, 1, 1, h, w, 1, kh, kw, stride[0], stride[1], pad[0], pad[1]))
        return -1;
    *oh = g.oh;
    *ow = g.ow;
    return 0;
}

/* ---- linear ---------------------------------------------------------------------- */

/* x (NxIN) and a weight-shaped w (OUTxIN). */
static int lin_args(const op_call *o, const sg_tensor *x, const sg_tensor *w, const char *wname)
{
    char b1[128], b2[128];
    if (in(o, x, "input", SG_F32) != 0 || in(o, w, wname, SG_F32) != 0 ||
        ndim_is(o, x, "input", 2) != 0 || ndim_is(o, w, "weight", 2) != 0)
        return -1;
    if (x->size[1] != w->size[1])
        return fail(o, "input %s has %lld features, weight %s expects %lld", shp(x, b1),
                    (long long)x->size[1], shp(w, b2), (long long)w->size[1]);
    return 0;
}

/* Sizes both backends' GEMMs take (BLAS and cuBLAS index with int). */
static int lin_sizes(const op_call *o, int64_t n, int64_t in, int64_t out)
{
    if (n <= 0 || in <= 0 || out <= 0 || n > INT32_MAX || in > INT32_MAX || out > INT32_MAX)
        return fail(o, "invalid sizes: input %lldx%lld, weight %lldx%lld", (long long)n,
                    (long long)in, (long long)out, (long long)in);
    return 0;
}

int sg_linear_forward(const sg_tensor *x, sg_tensor *y, const sg_tensor *w, const sg_tensor *b)
{
    op_call o = BEGIN("linear_forward", x, y, w, b);
    if (lin_args(&o, x, w, "weight") != 0)
        return -1;
    int64_t ys[2] = { x->size[0], w->size[0] };
    if (shaped(&o, b, "bias", 1, &ys[1], 1) != 0 || out(&o, y, "y", SG_F32, 2, ys) != 0 ||
        lin_sizes(&o, ys[0], x->size[1], ys[1]) != 0)
        return -1;
    return CALL(&o, linear_forward, F(x), F(y), F(w), F(b), ys[0], x->size[1], ys[1]);
}

int sg_linear_backward_data(const sg_tensor *dy, sg_tensor *dx, const sg_tensor *w)
{
    op_call o = BEGIN("linear_backward_data", dy, dx, w);
    char b1[128], b2[128];
    if (in(&o, dy, "dy", SG_F32) != 0 || in(&o, w, "weight", SG_F32) != 0 ||
        ndim_is(&o, dy, "dy", 2) != 0 || ndim_is(&o, w, "weight", 2) != 0)
        return -1;
    if (dy->size[1] != w->size[0])
        return fail(&o, "dy %s has %lld features, weight %s has %lld outputs", shp(dy, b1),
                    (long long)dy->size[1], shp(w, b2), (long long)w->size[0]);
    int64_t xs[2] = { dy->size[0], w->size[1] };
    if (out(&o, dx, "dx", SG_F32, 2, xs) != 0 || lin_sizes(&o, xs[0], xs[1], w->size[0]) != 0)
        return -1;
    return CALL(&o, linear_backward_data, F(dy), F(dx), F(w), xs[0], xs[1], w->size[0]);
}

int sg_linear_backward_params(const sg_tensor *x, const sg_tensor *dy, sg_tensor *dw,
                              sg_tensor *db)
{
    op_call o = BEGIN("linear_backward_params", x, dy, dw, db);
    if (lin_args(&o, x, dw, "dw") != 0)
        return -1;
    int64_t ys[2] = { x->size[0], dw->size[0] };
    if (shaped(&o, dy, "dy", 2, ys, 0) != 0 || shaped(&o, db, "db", 1, &ys[1], 1) != 0 ||
        lin_sizes(&o, ys[0], x->size[1], ys[1]) != 0)
        return -1;
    return CALL(&o, linear_backward_params, F(x), F(dy), F(dw), F(db), ys[0], x->size[1],
                ys[1]);
}

/* ---- batchnorm (and global pooling: the same NxCx... input) ----------------------- */

/* x NxC or NxCx...: n, c and hw (the product of the rest). */
static int nc_input(const op_call *o, const sg_tensor *x, int64_t *n, int64_t *c, int64_t *hw)
{
    if (in(o, x, "input", SG_F32) != 0)
        return -1;
    if (x->ndim < 2) {
        char b[128];
        return fail(o, "input %s must be NxC or NxCx...", shp(x, b));
    }
    *n = x->size[0];
    *c = x->size[1];
    *hw = 1;
    for (int i = 2; i < x->ndim; i++)
        *hw *= x->size[i];
    return 0;
}

/* sync_bn: the sums over the ranks of a data-parallel run (core/comm.h); on
 * one process nothing is summed and the sync kernels compute what the plain
 * ones do. */
static int sum_over_ranks(double *v, int64_t n, void *ctx)
{
    (void)ctx;
    return sg_comm_allsum_f64(v, n);
}

static int ranks_sum(const op_call *o, sg_allsum *s)
{
    if (o->dev != SG_CPU)
        return fail(o, "synchronized statistics (sync_bn) run on the cpu only; on cuda use "
                       "per-rank statistics (sync_bn = false)");
    s->fn = sg_comm_size() > 1 ? sum_over_ranks : NULL;
    s->ctx = NULL;
    return 0;
}

int sg_batchnorm_forward(const sg_tensor *x, sg_tensor *y, const sg_tensor *gamma,
                         const sg_tensor *beta, sg_tensor *sm, sg_tensor *si, sg_tensor *rm,
                         sg_tensor *rv, double eps, double momentum, int training, int update,
                         int sync)
{
    op_call o = BEGIN(training ? "batchnorm_forward_train" : "batchnorm_forward_eval", x, y,
                      gamma, beta, sm, si, rm, rv);
    int64_t n = 0, c = 0, hw = 0;
    if (nc_input(&o, x, &n, &c, &hw) != 0 || shaped(&o, gamma, "weight", 1, &c, 1) != 0 ||
        shaped(&o, beta, "bias", 1, &c, 1) != 0 ||
        shaped(&o, rm, "running_mean", 1, &c, training) != 0 ||
        shaped(&o, rv, "running_var", 1, &c, training) != 0)
        return -1;
    update = training && update;
    if (update && (!rm || !rv))
        return sg_seterr("%s: update_running needs running_mean and running_var", o.op);
    if (!(eps > 0))
        return sg_seterr("%s: eps must be positive, got %g", o.op, eps);
    if (out(&o, sm, "save_mean", SG_F32, 1, &c) != 0 ||
        out(&o, si, "save_invstd", SG_F32, 1, &c) != 0 || out_like(&o, y, "y", x) != 0)
        return -1;
    sg_allsum sum;
    if (training && sync)
        return ranks_sum(&o, &sum) ? -1
               : CALL(&o, batchnorm_forward_train_sync, F(x), F(y), F(gamma), F(beta), F(sm),
                      F(si), F(rm), F(rv), n, c, hw, eps, momentum, update, &sum);
    if (training)
        return CALL(&o, batchnorm_forward_train, F(x), F(y), F(gamma), F(beta), F(sm), F(si),
                    F(rm), F(rv), n, c, hw, eps, momentum, update);
    return CALL(&o, batchnorm_forward_eval, F(x), F(y), F(gamma), F(beta), F(sm), F(si),
                F(rm), F(rv), n, c, hw, eps);
}

/* The saved statistics of a forward: C floats each. */
static int bn_saved(const op_call *o, const sg_tensor *sm, const sg_tensor *si, int64_t c)
{
    return shaped(o, sm, "save_mean", 1, &c, 0) != 0 || shaped(o, si, "save_invstd", 1, &c, 0)
               ? -1 : 0;
}

int sg_batchnorm_backward_data(const sg_tensor *x, const sg_tensor *dy, sg_tensor *dx,
                               const sg_tensor *gamma, const sg_tensor *sm,
                               const sg_tensor *si, int training, int sync)
{
    op_call o = BEGIN("batchnorm_backward_data", x, dy, dx, gamma, sm, si);
    int64_t n = 0, c = 0, hw = 0;
    if (nc_input(&o, x, &n, &c, &hw) != 0 || same_as(&o, dy, "dy", x, "input") != 0 ||
        shaped(&o, gamma, "weight", 1, &c, 1) != 0 || bn_saved(&o, sm, si, c) != 0 ||
        out_like(&o, dx, "dx", x) != 0)
        return -1;
    sg_allsum sum;
    if (training && sync)
        return ranks_sum(&o, &sum) ? -1
               : CALL(&o, batchnorm_backward_data_sync, F(x), F(dy), F(dx), F(gamma), F(sm),
                      F(si), n, c, hw, &sum);
    return CALL(&o, batchnorm_backward_data, F(x), F(dy), F(dx), F(gamma), F(sm), F(si), n, c,
                hw, training);
}

int sg_batchnorm_backward_params(const sg_tensor *x, const sg_tensor *dy, sg_tensor *dg,
                                 sg_tensor *db, const sg_tensor *sm, const sg_tensor *si)
{
    op_call o = BEGIN("batchnorm_backward_params", x, dy, dg, db, sm, si);
    int64_t n = 0, c = 0, hw = 0;
    if (nc_input(&o, x, &n, &c, &hw) != 0 || same_as(&o, dy, "dy", x, "input") != 0 ||
        shaped(&o, dg, "dweight", 1, &c, 1) != 0 || shaped(&o, db, "dbias", 1, &c, 1) != 0 ||
        bn_saved(&o, sm, si, c) != 0)
        return -1;
    return CALL(&o, batchnorm_backward_params, F(x), F(dy), F(dg), F(db), F(sm), F(si), n, c,
                hw);
}

int sg_batchnorm_backward(const sg_tensor *x, const sg_tensor *dy, sg_tensor *dx,
                          const sg_tensor *gamma, sg_tensor *dg, sg_tensor *db,
                          const sg_tensor *sm, const sg_tensor *si, int training)
{
    op_call o = BEGIN("batchnorm_backward", x, dy, dx, gamma, dg, db, sm, si);
    int64_t n = 0, c = 0, hw = 0;
    if (nc_input(&o, x, &n, &c, &hw) != 0 || same_as(&o, dy, "dy", x, "input") != 0 ||
        shaped(&o, gamma, "weight", 1, &c, 1) != 0 ||
        shaped(&o, dg, "dweight", 1, &c, 1) != 0 || shaped(&o, db, "dbias", 1, &c, 1) != 0 ||
        bn_saved(&o, sm, si, c) != 0 || (dx && out_like(&o, dx, "dx", x) != 0))
        return -1;
    return CALL(&o, batchnorm_backward, F(x), F(dy), F(dx), F(gamma), F(dg), F(db), F(sm),
                F(si), n, c, hw, training);
}

int sg_batchnorm_apply(const sg_tensor *x, sg_tensor *y, const sg_tensor *gamma,
                       const sg_tensor *beta, const sg_tensor *sm, const sg_tensor *si)
{
    op_call o = BEGIN("batchnorm_apply", x, y, gamma, beta, sm, si);
    if (!o.be || !o.be->batchnorm_apply)  /* GPU models keep their BatchNorm outputs */
        return sg_backend_lacks(o.dev, o.op, "batchnorm_apply");
    int64_t n = 0, c = 0, hw = 0;
    if (nc_input(&o, x, &n, &c, &hw) != 0 || shaped(&o, gamma, "weight", 1, &c, 1) != 0 ||
        shaped(&o, beta, "bias", 1, &c, 1) != 0 || bn_saved(&o, sm, si, c) != 0 ||
        out_like(&o, y, "y", x) != 0)
        return -1;
    return CALL(&o, batchnorm_apply, F(x), F(y), F(gamma), F(beta), F(sm), F(si), n, c, hw);
}

/* Global pooling's sizes: every plane non-empty. */
static int gap_sizes(const op_call *o, int64_t n, int64_t c, int64_t hw)
{
    if (n <= 0 || c <= 0 || hw <= 0)
        return fail(o, "invalid sizes N=%lld C=%lld HW=%lld", (long long)n, (long long)c,
                    (long long)hw);
    return 0;
}

int sg_global_avgpool_forward(const sg_tensor *x, sg_tensor *y)
{
    op_call o = BEGIN("global_avgpool_forward", x, y);
    int64_t n = 0, c = 0, hw = 0;
    if (nc_input(&o, x, &n, &c, &hw) != 0)
        return -1;
    int64_t ys[2] = { n, c };
    if (out(&o, y, "y", SG_F32, 2, ys) != 0 || gap_sizes(&o, n, c, hw) != 0)
        return -1;
    return CALL(&o, global_avgpool_forward, F(x), F(y), n, c, hw);
}

int sg_global_avgpool_backward_data(const sg_tensor *x, const sg_tensor *dy, sg_tensor *dx)
{
    op_call o = BEGIN("global_avgpool_backward_data", x, dy, dx);
    int64_t n = 0, c = 0, hw = 0;
    char b1[128], b2[128];
    if (nc_input(&o, x, &n, &c, &hw) != 0 || in(&o, dy, "dy", SG_F32) != 0)
        return -1;
    if (sg_tensor_numel(dy) != n * c || dy->size[0] != n)
        return fail(&o, "dy %s does not match input %s (expected %lldx%lld)", shp(dy, b1),
                    shp(x, b2), (long long)n, (long long)c);
    if (out_like(&o, dx, "dx", x) != 0 || gap_sizes(&o, n, c, hw) != 0)
        return -1;
    return CALL(&o, global_avgpool_backward_data, F(dy), F(dx), n, c, hw);
}

/* ---- relu, dropout --------------------------------------------------------------- */

/* An element-wise op's tensors: the first input, an optional second input of
 * its shape (NULL: none) and an output resized to its shape. */
static int elementwise(const op_call *o, const sg_tensor *in1, const char *n1,
                       const sg_tensor *in2, const char *n2, sg_tensor *o1, const char *no)
{
    if (in(o, in1, n1, SG_F32) != 0 || (n2 && same_as(o, in2, n2, in1, n1) != 0) ||
        out_like(o, o1, no, in1) != 0)
        return -1;
    return 0;
}

int sg_relu_forward(const sg_tensor *x, sg_tensor *y)
{
    op_call o = BEGIN("relu_forward", x, y);
    if (elementwise(&o, x, "input", NULL, NULL, y, "y") != 0)
        return -1;
    return CALL(&o, relu_forward, F(x), F(y), sg_tensor_numel(x));
}

int sg_relu_backward_data(const sg_tensor *y, const sg_tensor *dy, sg_tensor *dx)
{
    op_call o = BEGIN("relu_backward_data", y, dy, dx);
    if (elementwise(&o, y, "output", dy, "dy", dx, "dx") != 0)
        return -1;
    return CALL(&o, relu_backward_data, F(y), F(dy), F(dx), sg_tensor_numel(y));
}

int sg_dropout_mask(sg_rng *r, sg_tensor *mask, const sg_tensor *x, double p)
{
    op_call o = BEGIN("dropout_mask", mask, x);
    if (in(&o, x, "input", SG_F32) != 0 || out_like(&o, mask, "mask", x) != 0)
        return -1;
    return CALL(&o, dropout_mask, r, F(mask), sg_tensor_numel(x), p);
}

int sg_dropout_forward(const sg_tensor *x, sg_tensor *y, const sg_tensor *mask)
{
    op_call o = BEGIN("dropout_forward", x, y, mask);
    if (elementwise(&o, x, "input", mask, "mask", y, "y") != 0)
        return -1;
    return CALL(&o, dropout_forward, F(x), F(y), F(mask), sg_tensor_numel(x));
}

int sg_dropout_backward_data(const sg_tensor *dy, sg_tensor *dx, const sg_tensor *mask)
{
    op_call o = BEGIN("dropout_backward_data", dy, dx, mask);
    if (elementwise(&o, dy, "dy", mask, "mask", dx, "dx") != 0)
        return -1;
    return CALL(&o, dropout_backward_data, F(dy), F(dx), F(mask), sg_tensor_numel(dy));
}

/* ---- pooling --------------------------------------------------------------------- */

/* x (NxCxHxW), kernel, stride and pad: the geometry, and the output's shape in ys. */
static int pool_args(const op_call *o, const sg_tensor *x, const int64_t k[2],
                     const int64_t s[2], const int64_t p[2], sg_pool2d_geom *g, int64_t ys[4])
{
    if (in(o, x, "input", SG_F32) != 0 || ndim_is(o, x, "input", 4) != 0)
        return -1;
    if (sg_pool2d_geom_init(g, x->size[0], x->size[1], x->size[2], x->size[3], k[0], k[1],
                            s[0], s[1], p[0], p[1])) {
        char b[128];
        return sg_adderr("%s: input %s", o->op, shp(x, b));
    }
    ys[0] = g->n;
    ys[1] = g->c;
    ys[2] = g->oh;
    ys[3] = g->ow;
    return 0;
}

int sg_maxpool2d_forward(const sg_tensor *x, sg_tensor *y, sg_tensor *idx,
                         const int64_t kernel[2], const int64_t stride[2], const int64_t pad[2])
{
    op_call o = BEGIN("maxpool2d_forward", x, y, idx);
    sg_pool2d_geom g;
    int64_t ys[4];
    if (pool_args(&o, x, kernel, stride, pad, &g, ys) != 0 ||
        (idx && out(&o, idx, "indices", SG_I32, 4, ys) != 0) ||
        out(&o, y, "y", SG_F32, 4, ys) != 0)
        return -1;
    int32_t *ip = idx ? (int32_t *)sg_tensor_data(idx) : NULL;
    return CALL(&o, maxpool2d_forward, F(x), F(y), ip, &g);
}

int sg_maxpool2d_backward_data(const sg_tensor *x, const sg_tensor *dy, sg_tensor *dx,
                               const sg_tensor *idx, const int64_t kernel[2],
                               const int64_t stride[2], const int64_t pad[2])
{
    op_call o = BEGIN("maxpool2d_backward_data", x, dy, dx, idx);
    sg_pool2d_geom g;
    int64_t ys[4];
    char b1[128], b2[128];
    if (pool_args(&o, x, kernel, stride, pad, &g, ys) != 0 ||
        shaped(&o, dy, "dy", 4, ys, 0) != 0 || in(&o, idx, "indices", SG_I32) != 0)
        return -1;
    if (!sg_tensor_same_shape(idx, dy))
        return fail(&o, "indices %s do not match dy %s", shp(idx, b1), shp(dy, b2));
    if (out_like(&o, dx, "dx", x) != 0)
        return -1;
    return CALL(&o, maxpool2d_backward_data, F(dy), F(dx), (const int32_t *)sg_tensor_data(idx),
                &g);
}

int sg_avgpool2d_forward(const sg_tensor *x, sg_tensor *y, const int64_t kernel[2],
                         const int64_t stride[2], const int64_t pad[2])
{
    op_call o = BEGIN("avgpool2d_forward", x, y);
    sg_pool2d_geom g;
    int64_t ys[4];
    if (pool_args(&o, x, kernel, stride, pad, &g, ys) != 0 ||
        out(&o, y, "y", SG_F32, 4, ys) != 0)
        return -1;
    return CALL(&o, avgpool2d_forward, F(x), F(y), &g);
}

int sg_avgpool2d_backward_data(const sg_tensor *x, const sg_tensor *dy, sg_tensor *dx,
                               const int64_t kernel[2], const int64_t stride[2],
                               const int64_t pad[2])
{
    op_call o = BEGIN("avgpool2d_backward_data", x, dy, dx);
    sg_pool2d_geom g;
    int64_t ys[4];
    if (pool_args(&o, x, kernel, stride, pad, &g, ys) != 0 ||
        shaped(&o, dy, "dy", 4, ys, 0) != 0 || out_like(&o, dx, "dx", x) != 0)
        return -1;
    return CALL(&o, avgpool2d_backward_data, F(dy), F(dx), &g);
}

/* ---- zero padding ------------------------------------------------------------------ */

/* pad2d (crop = 0) and its backward crop2d (crop = 1). */
static int pad_or_crop(const sg_tensor *x, sg_tensor *y, int64_t p, int crop)
{
    op_call o = BEGIN(crop ? "crop2d" : "pad2d", x, y);
    const char *iname = crop ? "dy" : "input", *oname = crop ? "dx" : "y";
    if (in(&o, x, iname, SG_F32) != 0 || ndim_is(&o, x, iname, 4) != 0)
        return -1;
    if (p < 0 || p > (1 << 20))
        return sg_seterr("%s: padding must be in [0, 2^20], got %lld", o.op, (long long)p);
    const int64_t d = crop ? -2 * p : 2 * p;
    if (x->size[2] + d < 0 || x->size[3] + d < 0) {
        char b[128];
        return fail(&o, "dy %s is smaller than twice the padding %lld", shp(x, b),
                    (long long)p);
    }
    /* before out(), which may resize the output (and with it the input) */
    if (y->storage == x->storage)
        return sg_seterr("%s: %s must not share storage with %s", o.op, oname,
                         crop ? "dy" : "the input");
    int64_t ys[4] = { x->size[0], x->size[1], x->size[2] + d, x->size[3] + d };
    if (out(&o, y, oname, SG_F32, 4, ys) != 0)
        return -1;
    const int64_t planes = ys[0] * ys[1];
    return crop ? CALL(&o, crop2d, F(x), F(y), planes, ys[2], ys[3], p)
                : CALL(&o, pad2d, F(x), F(y), planes, x->size[2], x->size[3], p);
}

int sg_pad2d(const sg_tensor *x, sg_tensor *y, int64_t p)
{
    return pad_or_crop(x, y, p, 0);
}

int sg_crop2d(const sg_tensor *dy, sg_tensor *dx, int64_t p)
{
    return pad_or_crop(dy, dx, p, 1);
}

/* ---- loss ------------------------------------------------------------------------ */

/* cross_entropy's arguments: logits N x C, labels int32 N, dlogits like logits. */
static int xent_args(const op_call *o, const sg_tensor *z, const sg_tensor *lab, sg_tensor *dz)
{
    char b1[128], b2[128];
    if (in(o, z, "logits", SG_F32) != 0 || in(o, lab, "labels", SG_I32) != 0 ||
        ndim_is(o, z, "logits", 2) != 0)
        return -1;
    if (sg_tensor_numel(lab) != z->size[0] || lab->ndim != 1)
        return fail(o, "labels %s must be a 1-d tensor of %lld (logits %s)", shp(lab, b1),
                    (long long)z->size[0], shp(z, b2));
    return dz ? out_like(o, dz, "dlogits", z) : 0;
}

int sg_cross_entropy(const sg_tensor *z, const sg_tensor *lab, sg_tensor *dz, double *loss,
                     int64_t *correct)
{
    op_call o = BEGIN("cross_entropy", z, lab, dz);
    if (xent_args(&o, z, lab, dz) != 0)
        return -1;
    return CALL(&o, cross_entropy, F(z), (const int32_t *)sg_tensor_data(lab), F(dz),
                z->size[0], z->size[1], loss, correct);
}

int sg_cross_entropy_queue(const sg_tensor *z, const sg_tensor *lab, sg_tensor *dz,
                           sg_readback *r)
{
    op_call o = BEGIN("cross_entropy", z, lab, dz);
    if (xent_args(&o, z, lab, dz) != 0)
        return -1;
    return CALL(&o, cross_entropy_queue, F(z), (const int32_t *)sg_tensor_data(lab), F(dz),
                z->size[0], z->size[1], r);
}

sg_readback *sg_readback_new(sg_devtype dev)
{
    const sg_backend *be = sg_backend_get(dev);
    if (!be || !be->readback_new) {
        sg_backend_lacks(dev, "readback", "readback_new");
        return NULL;
    }
    return be->readback_new();
}

void sg_readback_free(sg_devtype dev, sg_readback *r)
{
    const sg_backend *be = sg_backend_get(dev);
    if (r && be && be->readback_free)
        be->readback_free(r);
}

int sg_readback_read(sg_devtype dev, sg_readback *r, double *loss, int64_t *correct)
{
    const sg_backend *be = sg_backend_get(dev);
    if (!be || !be->cross_entropy_read)
        return sg_backend_lacks(dev, "cross_entropy", "cross_entropy_read");
    return be->cross_entropy_read(r, loss, correct);
}

/* ---- flat-vector updates --------------------------------------------------------- */

/* A float32 vector (any shape) of n elements. */
static int vec_arg(const op_call *o, const sg_tensor *t, const char *name, int64_t n)
{
    char b[128];
    if (in(o, t, name, SG_F32) != 0)
        return -1;
    if (sg_tensor_numel(t) != n)
        return fail(o, "%s %s has %lld elements, expected %lld", name, shp(t, b),
                    (long long)sg_tensor_numel(t), (long long)n);
    return 0;
}

/* a, then x, y (NULL: none) and out, each of a's element count n. */
static int vec_args(const op_call *o, const sg_tensor *a, const sg_tensor *x, const sg_tensor *y,
                    const sg_tensor *out_, int64_t *n)
{
    if (in(o, a, "a", SG_F32) != 0)
        return -1;
    *n = sg_tensor_numel(a);
    return vec_arg(o, x, "x", *n) != 0 || (y && vec_arg(o, y, "y", *n) != 0) ||
           vec_arg(o, out_, "out", *n) != 0 ? -1 : 0;
}

int sg_vec_axpy(const sg_tensor *a, const sg_tensor *x, sg_tensor *o_, float alpha)
{
    op_call o = BEGIN("vec_axpy", a, x, o_);
    int64_t n;
    return vec_args(&o, a, x, NULL, o_, &n) ? -1
           : CALL(&o, vec_axpy, F(a), F(x), F(o_), n, alpha);
}

int sg_vec_axpbypz(const sg_tensor *a, const sg_tensor *x, const sg_tensor *y, sg_tensor *o_,
                   float alpha, float beta)
{
    op_call o = BEGIN("vec_axpbypz", a, x, y, o_);
    int64_t n;
    return vec_args(&o, a, x, y, o_, &n) ? -1
           : CALL(&o, vec_axpbypz, F(a), F(x), F(y), F(o_), n, alpha, beta);
}

int sg_vec_scale_add(const sg_tensor *a, const sg_tensor *x, sg_tensor *o_, float s,
                     float alpha)
{
    op_call o = BEGIN("vec_scale_add", a, x, o_);
    int64_t n;
    return vec_args(&o, a, x, NULL, o_, &n) ? -1
           : CALL(&o, vec_scale_add, F(a), F(x), F(o_), n, s, alpha);
}
