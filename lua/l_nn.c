/*
 * l_nn.c - Lua binding of the layer kernels (kernels/cpu/nn.h): the
 * `sgdsa.core.nn` table.
 *
 * Every function checks its tensors (dtype, device, contiguity, shapes) and
 * reports a mismatch naming the function, both shapes and the device, e.g.
 *   "conv2d_forward: input 8x3x32x32 has 3 channels, weight 16x4x3x3 expects 4 (cpu)".
 * Outputs, workspaces and saved buffers are tensors the caller owns; they
 * are resized here (sg_tensor_resize only reallocates when they must grow,
 * so a steady-state step allocates nothing). Parameter-gradient tensors are
 * never resized: they are slices of the model's flat gradient buffer and
 * must already have the parameter's shape; gradients ADD into them.
 * *_backward_data OVERWRITES its dx. Argument order (as in nn.h):
 * workspace, inputs, outputs, parameters, gradients, buffers, then scalars.
 * Optional tensors (bias, its gradient, a workspace) may be nil; a nil
 * workspace is allocated for the call and freed.
 *
 * Lua API (all tensors float32 on cpu unless noted; `pair` = a number or
 * {h, w}; each function returns its first output):
 *
 *   conv2d_forward(ws, x, y, w, b, stride=1, pad=0)            -> y
 *       x NxCxHxW, w KxCxKHxKW (OIHW), b K or nil; y := NxKxOHxOW
 *   conv2d_backward_data(ws, x, dy, dx, w, stride=1, pad=0)    -> dx
 *       x gives the input shape; dx := shape of x
 *   conv2d_backward_params(ws, x, dy, dw, db, stride=1, pad=0) -> dw
 *       dw += dL/dw (KxCxKHxKW), db += dL/db (K) or nil
 *   conv2d_output_size(h, w, kh, kw, stride=1, pad=0)          -> oh, ow
 *   linear_forward(x, y, w, b)               x NxIN, w OUTxIN; y := NxOUT
 *   linear_backward_data(dy, dx, w)          dx := NxIN
 *   linear_backward_params(x, dy, dw, db)    dw += dy^T x, db += sum dy
 *   batchnorm_forward_train(x, y, gamma, beta, save_mean, save_invstd,
 *                           running_mean, running_var, eps=1e-5,
 *                           momentum=0.1, update_running=true)  -> y
 *       x NxC or NxCx... (per channel over N and the rest); gamma/beta C or
 *       nil; save_* := C. update_running=false is the SA trial forward:
 *       batch statistics, running statistics untouched.
 *   batchnorm_forward_eval(x, y, gamma, beta, save_mean, save_invstd,
 *                          running_mean, running_var, eps=1e-5) -> y
 *   batchnorm_backward_data(x, dy, dx, gamma, save_mean, save_invstd,
 *                           training)                          -> dx
 *   batchnorm_backward_params(x, dy, dgamma, dbeta, save_mean, save_invstd)
 *   relu_forward(x, y)                    y := shape of x (y may be x)
 *   relu_backward_data(y, dy, dx)         uses the OUTPUT y; dx may be dy
 *   dropout_mask(gen, mask, x, p)         mask := shape of x; 0 or 1/(1-p)
 *   dropout_forward(x, y, mask)           dropout_backward_data(dy, dx, mask)
 *   maxpool2d_forward(x, y, idx, kernel, stride=kernel, pad=0) -> y
 *       idx: int32 tensor (:= shape of y) or nil (trial forward)
 *   maxpool2d_backward_data(x, dy, dx, idx, kernel, stride=kernel, pad=0)
 *   avgpool2d_forward(x, y, kernel, stride=kernel, pad=0)
 *   avgpool2d_backward_data(x, dy, dx, kernel, stride=kernel, pad=0)
 *   global_avgpool_forward(x, y)          y := NxC
 *   global_avgpool_backward_data(x, dy, dx)
 *   cross_entropy(logits, labels, dlogits) -> loss, correct
 *       logits NxC, labels int32 N, dlogits := NxC or nil
 *   vec_axpy(a, x, out, alpha)             out := a + alpha*x
 *   vec_axpbypz(a, x, y, out, alpha, beta) out := a + alpha*x + beta*y
 *   vec_scale_add(a, x, out, s, alpha)     out := s*a + alpha*x
 *       (same element count; any shape; out may be a or x)
 */
#include <stdlib.h>
#include <string.h>

#include "binding.h"
#include "nn.h"

/* ---- argument checks ------------------------------------------------------------ */

static const char *shp(const sg_tensor *t, char *buf)
{
    return sg_shape_str(t, buf, 128);
}

/* A tensor of dtype dt on the cpu, contiguous. */
static int check_cpu(const char *op, const char *name, const sg_tensor *t, sg_dtype dt)
{
    char b[128];
    if (t->dtype != dt)
        return sg_seterr("%s: %s %s is %s, expected %s (%s)", op, name, shp(t, b),
                         sg_dtype_name(t->dtype), sg_dtype_name(dt),
                         sg_device_name(t->storage->device));
    if (t->storage->device != SG_CPU)
        return sg_seterr("%s: %s %s is on %s; these kernels need cpu tensors", op, name,
                         shp(t, b), sg_device_name(t->storage->device));
    if (!sg_tensor_is_contiguous(t))
        return sg_seterr("%s: %s %s is not contiguous (cpu); use :contiguous()", op, name,
                         shp(t, b));
    return 0;
}

static sg_tensor *in_tensor(lua_State *L, int idx, const char *op, const char *name,
                            sg_dtype dt)
{
    sg_tensor *t = sgl_checktensor(L, idx);
    if (check_cpu(op, name, t, dt))
        sgl_error(L);
    return t;
}

/* An output: checked, then resized to ndim/size. */
static sg_tensor *out_tensor(lua_State *L, int idx, const char *op, const char *name,
                             sg_dtype dt, int ndim, const int64_t *size)
{
    sg_tensor *t = sgl_checktensor(L, idx);
    char b[128];
    if (t->dtype != dt) {
        sg_seterr("%s: output %s %s is %s, expected %s (%s)", op, name, shp(t, b),
                  sg_dtype_name(t->dtype), sg_dtype_name(dt), sg_device_name(t->storage->device));
        sgl_error(L);
    }
    if (t->storage->device != SG_CPU) {
        sg_seterr("%s: output %s %s is on %s; these kernels need cpu tensors", op, name,
                  shp(t, b), sg_device_name(t->storage->device));
        sgl_error(L);
    }
    if (!sg_tensor_is_contiguous(t)) {
        sg_seterr("%s: output %s %s is not contiguous (cpu)", op, name, shp(t, b));
        sgl_error(L);
    }
    if (sg_tensor_resize(t, ndim, size)) {
        sg_adderr("%s: output %s", op, name);
        sgl_error(L);
    }
    return t;
}

/* A parameter or its gradient: exact shape required (never resized). */
static sg_tensor *shaped_tensor(lua_State *L, int idx, const char *op, const char *name,
                                int ndim, const int64_t *size, int optional)
{
    if (optional && lua_isnoneornil(L, idx))
        return NULL;
    sg_tensor *t = in_tensor(L, idx, op, name, SG_F32);
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
        sg_seterr("%s: %s is %s, expected %s (cpu)", op, name, shp(t, b), want);
        sgl_error(L);
    }
    return t;
}

/* Like shaped_tensor, for a tensor that must match another's shape. */
static sg_tensor *same_as(lua_State *L, int idx, const char *op, const char *name,
                          const sg_tensor *like, const char *like_name)
{
    sg_tensor *t = in_tensor(L, idx, op, name, SG_F32);
    if (!sg_tensor_same_shape(t, like)) {
        char a[128], b[128];
        sg_seterr("%s: %s %s does not match %s %s (cpu)", op, name, shp(t, a), like_name,
                  shp(like, b));
        sgl_error(L);
    }
    return t;
}

static sg_tensor *want_ndim(lua_State *L, sg_tensor *t, const char *op, const char *name,
                            int ndim)
{
    if (t->ndim != ndim) {
        char b[128];
        sg_seterr("%s: %s %s must be %d-d (cpu)", op, name, shp(t, b), ndim);
        sgl_error(L);
    }
    return t;
}

/* A number or a {h, w} table; `def` when absent (def < 0: required). */
static void pair(lua_State *L, int idx, int64_t def, int64_t *h, int64_t *w, const char *op,
                 const char *name)
{
    if (lua_isnoneornil(L, idx)) {
        if (def < 0)
            luaL_error(L, "%s: missing %s (a number or {h, w})", op, name);
        *h = *w = def;
        return;
    }
    if (lua_istable(L, idx)) {
        lua_geti(L, idx, 1);
        lua_geti(L, idx, 2);
        int ok1, ok2;
        *h = lua_tointegerx(L, -2, &ok1);
        *w = lua_tointegerx(L, -1, &ok2);
        lua_pop(L, 2);
        if (!ok1 || !ok2)
            luaL_error(L, "%s: %s must be a number or {h, w} of integers", op, name);
        return;
    }
    int ok;
    *h = *w = lua_tointegerx(L, idx, &ok);
    if (!ok)
        luaL_error(L, "%s: %s must be an integer or {h, w}, got %s", op, name,
                   luaL_typename(L, idx));
}

/* Workspace: a float32 cpu tensor resized to n floats, or nil (temporary). */
typedef struct {
    float *p;
    float *owned;
} wspace;

static void get_ws(lua_State *L, int idx, const char *op, size_t n, wspace *w)
{
    w->owned = NULL;
    if (lua_isnoneornil(L, idx)) {
        w->owned = sg_aligned_alloc((n ? n : 1) * sizeof(float), op);
        if (!w->owned)
            sgl_error(L);
        w->p = w->owned;
        return;
    }
    int64_t sz = (int64_t)(n ? n : 1);
    w->p = sg_f32(out_tensor(L, idx, op, "workspace", SG_F32, 1, &sz));
}

static int done_ws(lua_State *L, wspace *w, int rc)
{
    free(w->owned);
    if (rc)
        return sgl_error(L);
    return 0;
}

/* ---- conv2d ---------------------------------------------------------------------- */

/* Check x (NxCxHxW) and w (KxCxKHxKW), fill the geometry. */
static void conv_geom(lua_State *L, const char *op, const sg_tensor *x, const sg_tensor *w,
                      int stride_idx, sg_conv2d_geom *g)
{
    char a[128], b[128];
    want_ndim(L, (sg_tensor *)x, op, "input", 4);
    want_ndim(L, (sg_tensor *)w, op, "weight", 4);
    if (x->size[1] != w->size[1]) {
        sg_seterr("%s: input %s has %lld channels, weight %s expects %lld (cpu)", op,
                  shp(x, a), (long long)x->size[1], shp(w, b), (long long)w->size[1]);
        sgl_error(L);
    }
    int64_t sh, sw, ph, pw;
    pair(L, stride_idx, 1, &sh, &sw, op, "stride");
    pair(L, stride_idx + 1, 0, &ph, &pw, op, "pad");
    if (sg_conv2d_geom_init(g, x->size[0], x->size[1], x->size[2], x->size[3], w->size[0],
                            w->size[2], w->size[3], sh, sw, ph, pw)) {
        sg_adderr("%s: input %s, weight %s", op, shp(x, a), shp(w, b));
        sgl_error(L);
    }
}

static void conv_bias(lua_State *L, int idx, const char *op, const sg_conv2d_geom *g,
                      sg_tensor **b)
{
    int64_t k = g->k;
    *b = shaped_tensor(L, idx, op, "bias", 1, &k, 1);
}

static int conv2d_forward(lua_State *L)
{
    const char *op = "conv2d_forward";
    sg_tensor *x = in_tensor(L, 2, op, "input", SG_F32);
    sg_tensor *w = in_tensor(L, 4, op, "weight", SG_F32);
    sg_conv2d_geom g;
    conv_geom(L, op, x, w, 6, &g);
    sg_tensor *b;
    conv_bias(L, 5, op, &g, &b);
    int64_t ys[4] = { g.n, g.k, g.oh, g.ow };
    sg_tensor *y = out_tensor(L, 3, op, "y", SG_F32, 4, ys);
    wspace ws;
    get_ws(L, 1, op, sg_cpu_conv2d_workspace_size(&g), &ws);
    done_ws(L, &ws, sg_cpu_conv2d_forward(ws.p, sg_f32(x), sg_f32(y), sg_f32(w),
                                          b ? sg_f32(b) : NULL, &g));
    lua_pushvalue(L, 3);
    return 1;
}

static void conv_dy(lua_State *L, int idx, const char *op, const sg_conv2d_geom *g,
                    sg_tensor **dy)
{
    int64_t ys[4] = { g->n, g->k, g->oh, g->ow };
    *dy = shaped_tensor(L, idx, op, "dy", 4, ys, 0);
}

static int conv2d_backward_data(lua_State *L)
{
    const char *op = "conv2d_backward_data";
    sg_tensor *x = in_tensor(L, 2, op, "input", SG_F32);
    sg_tensor *w = in_tensor(L, 5, op, "weight", SG_F32);
    sg_conv2d_geom g;
    conv_geom(L, op, x, w, 6, &g);
    sg_tensor *dy;
    conv_dy(L, 3, op, &g, &dy);
    sg_tensor *dx = out_tensor(L, 4, op, "dx", SG_F32, 4, x->size);
    wspace ws;
    get_ws(L, 1, op, sg_cpu_conv2d_workspace_size(&g), &ws);
    done_ws(L, &ws, sg_cpu_conv2d_backward_data(ws.p, sg_f32(dy), sg_f32(dx), sg_f32(w), &g));
    lua_pushvalue(L, 4);
    return 1;
}

static int conv2d_backward_params(lua_State *L)
{
    const char *op = "conv2d_backward_params";
    sg_tensor *x = in_tensor(L, 2, op, "input", SG_F32);
    sg_tensor *dw = in_tensor(L, 4, op, "dw", SG_F32);
    sg_conv2d_geom g;
    conv_geom(L, op, x, dw, 6, &g);
    sg_tensor *dy, *db;
    conv_dy(L, 3, op, &g, &dy);
    conv_bias(L, 5, op, &g, &db);
    wspace ws;
    get_ws(L, 1, op, sg_cpu_conv2d_workspace_size(&g), &ws);
    done_ws(L, &ws, sg_cpu_conv2d_backward_params(ws.p, sg_f32(x), sg_f32(dy), sg_f32(dw),
                                                  db ? sg_f32(db) : NULL, &g));
    lua_pushvalue(L, 4);
    return 1;
}

static int conv2d_output_size(lua_State *L)
{
    const char *op = "conv2d_output_size";
    int64_t h = luaL_checkinteger(L, 1), w = luaL_checkinteger(L, 2);
    int64_t kh = luaL_checkinteger(L, 3), kw = luaL_checkinteger(L, 4);
    int64_t sh, sw, ph, pw;
    pair(L, 5, 1, &sh, &sw, op, "stride");
    pair(L, 6, 0, &ph, &pw, op, "pad");
    sg_conv2d_geom g;
    if (sg_conv2d_geom_init(&g, 1, 1, h, w, 1, kh, kw, sh, sw, ph, pw))
        return sgl_error(L);
    lua_pushinteger(L, g.oh);
    lua_pushinteger(L, g.ow);
    return 2;
}

/* ---- linear ---------------------------------------------------------------------- */

static void lin_check(lua_State *L, const char *op, const sg_tensor *x, const sg_tensor *w,
                      const char *xname)
{
    char a[128], b[128];
    want_ndim(L, (sg_tensor *)x, op, xname, 2);
    want_ndim(L, (sg_tensor *)w, op, "weight", 2);
    if (x->size[1] != w->size[1]) {
        sg_seterr("%s: %s %s has %lld features, weight %s expects %lld (cpu)", op, xname,
                  shp(x, a), (long long)x->size[1], shp(w, b), (long long)w->size[1]);
        sgl_error(L);
    }
}

static int linear_forward(lua_State *L)
{
    const char *op = "linear_forward";
    sg_tensor *x = in_tensor(L, 1, op, "input", SG_F32);
    sg_tensor *w = in_tensor(L, 3, op, "weight", SG_F32);
    lin_check(L, op, x, w, "input");
    int64_t out = w->size[0];
    sg_tensor *b = shaped_tensor(L, 4, op, "bias", 1, &out, 1);
    int64_t ys[2] = { x->size[0], out };
    sg_tensor *y = out_tensor(L, 2, op, "y", SG_F32, 2, ys);
    SGL_CHECK(L, sg_cpu_linear_forward(sg_f32(x), sg_f32(y), sg_f32(w), b ? sg_f32(b) : NULL,
                                       x->size[0], x->size[1], out));
    lua_pushvalue(L, 2);
    return 1;
}

static int linear_backward_data(lua_State *L)
{
    const char *op = "linear_backward_data";
    sg_tensor *dy = in_tensor(L, 1, op, "dy", SG_F32);
    sg_tensor *w = in_tensor(L, 3, op, "weight", SG_F32);
    want_ndim(L, dy, op, "dy", 2);
    want_ndim(L, w, op, "weight", 2);
    if (dy->size[1] != w->size[0]) {
        char a[128], b[128];
        sg_seterr("%s: dy %s has %lld features, weight %s has %lld outputs (cpu)", op,
                  shp(dy, a), (long long)dy->size[1], shp(w, b), (long long)w->size[0]);
        return sgl_error(L);
    }
    int64_t xs[2] = { dy->size[0], w->size[1] };
    sg_tensor *dx = out_tensor(L, 2, op, "dx", SG_F32, 2, xs);
    SGL_CHECK(L, sg_cpu_linear_backward_data(sg_f32(dy), sg_f32(dx), sg_f32(w), xs[0], xs[1],
                                             w->size[0]));
    lua_pushvalue(L, 2);
    return 1;
}

static int linear_backward_params(lua_State *L)
{
    const char *op = "linear_backward_params";
    sg_tensor *x = in_tensor(L, 1, op, "input", SG_F32);
    sg_tensor *dw = in_tensor(L, 3, op, "dw", SG_F32);
    lin_check(L, op, x, dw, "input");
    int64_t ys[2] = { x->size[0], dw->size[0] };
    sg_tensor *dy = shaped_tensor(L, 2, op, "dy", 2, ys, 0);
    sg_tensor *db = shaped_tensor(L, 4, op, "db", 1, &ys[1], 1);
    SGL_CHECK(L, sg_cpu_linear_backward_params(sg_f32(x), sg_f32(dy), sg_f32(dw),
                                               db ? sg_f32(db) : NULL, x->size[0], x->size[1],
                                               ys[1]));
    lua_pushvalue(L, 3);
    return 1;
}

/* ---- batchnorm ------------------------------------------------------------------- */

/* x NxC or NxCx...: n, c, hw. */
static void bn_dims(lua_State *L, const char *op, const sg_tensor *x, int64_t *n, int64_t *c,
                    int64_t *hw)
{
    if (x->ndim < 2) {
        char a[128];
        sg_seterr("%s: input %s must be NxC or NxCx... (cpu)", op, shp(x, a));
        sgl_error(L);
    }
    *n = x->size[0];
    *c = x->size[1];
    *hw = 1;
    for (int i = 2; i < x->ndim; i++)
        *hw *= x->size[i];
}

static int bn_forward(lua_State *L, int training)
{
    const char *op = training ? "batchnorm_forward_train" : "batchnorm_forward_eval";
    sg_tensor *x = in_tensor(L, 1, op, "input", SG_F32);
    int64_t n, c, hw;
    bn_dims(L, op, x, &n, &c, &hw);
    sg_tensor *gamma = shaped_tensor(L, 3, op, "weight", 1, &c, 1);
    sg_tensor *beta = shaped_tensor(L, 4, op, "bias", 1, &c, 1);
    sg_tensor *rm = shaped_tensor(L, 7, op, "running_mean", 1, &c, training);
    sg_tensor *rv = shaped_tensor(L, 8, op, "running_var", 1, &c, training);
    double eps = luaL_optnumber(L, 9, 1e-5);
    double momentum = training ? luaL_optnumber(L, 10, 0.1) : 0.0;
    int update = training && (lua_isnoneornil(L, 11) ? 1 : lua_toboolean(L, 11));
    if (update && (!rm || !rv))
        return luaL_error(L, "%s: update_running needs running_mean and running_var", op);
    if (!(eps > 0))
        return luaL_error(L, "%s: eps must be positive, got %g", op, eps);
    sg_tensor *sm = out_tensor(L, 5, op, "save_mean", SG_F32, 1, &c);
    sg_tensor *si = out_tensor(L, 6, op, "save_invstd", SG_F32, 1, &c);
    sg_tensor *y = out_tensor(L, 2, op, "y", SG_F32, x->ndim, x->size);
    const float *g = gamma ? sg_f32(gamma) : NULL, *b = beta ? sg_f32(beta) : NULL;
    if (training)
        SGL_CHECK(L, sg_cpu_batchnorm_forward_train(sg_f32(x), sg_f32(y), g, b, sg_f32(sm),
                                                    sg_f32(si), rm ? sg_f32(rm) : NULL,
                                                    rv ? sg_f32(rv) : NULL, n, c, hw, eps,
                                                    momentum, update));
    else
        SGL_CHECK(L, sg_cpu_batchnorm_forward_eval(sg_f32(x), sg_f32(y), g, b, sg_f32(sm),
                                                   sg_f32(si), sg_f32(rm), sg_f32(rv), n, c,
                                                   hw, eps));
    lua_pushvalue(L, 2);
    return 1;
}

static int batchnorm_forward_train(lua_State *L) { return bn_forward(L, 1); }
static int batchnorm_forward_eval(lua_State *L) { return bn_forward(L, 0); }

static int batchnorm_backward_data(lua_State *L)
{
    const char *op = "batchnorm_backward_data";
    sg_tensor *x = in_tensor(L, 1, op, "input", SG_F32);
    int64_t n, c, hw;
    bn_dims(L, op, x, &n, &c, &hw);
    sg_tensor *dy = same_as(L, 2, op, "dy", x, "input");
    sg_tensor *gamma = shaped_tensor(L, 4, op, "weight", 1, &c, 1);
    sg_tensor *sm = shaped_tensor(L, 5, op, "save_mean", 1, &c, 0);
    sg_tensor *si = shaped_tensor(L, 6, op, "save_invstd", 1, &c, 0);
    luaL_checkany(L, 7);
    int training = lua_toboolean(L, 7);
    sg_tensor *dx = out_tensor(L, 3, op, "dx", SG_F32, x->ndim, x->size);
    SGL_CHECK(L, sg_cpu_batchnorm_backward_data(sg_f32(x), sg_f32(dy), sg_f32(dx),
                                                gamma ? sg_f32(gamma) : NULL, sg_f32(sm),
                                                sg_f32(si), n, c, hw, training));
    lua_pushvalue(L, 3);
    return 1;
}

static int batchnorm_backward_params(lua_State *L)
{
    const char *op = "batchnorm_backward_params";
    sg_tensor *x = in_tensor(L, 1, op, "input", SG_F32);
    int64_t n, c, hw;
    bn_dims(L, op, x, &n, &c, &hw);
    sg_tensor *dy = same_as(L, 2, op, "dy", x, "input");
    sg_tensor *dg = shaped_tensor(L, 3, op, "dweight", 1, &c, 1);
    sg_tensor *db = shaped_tensor(L, 4, op, "dbias", 1, &c, 1);
    sg_tensor *sm = shaped_tensor(L, 5, op, "save_mean", 1, &c, 0);
    sg_tensor *si = shaped_tensor(L, 6, op, "save_invstd", 1, &c, 0);
    SGL_CHECK(L, sg_cpu_batchnorm_backward_params(sg_f32(x), sg_f32(dy),
                                                  dg ? sg_f32(dg) : NULL,
                                                  db ? sg_f32(db) : NULL, sg_f32(sm),
                                                  sg_f32(si), n, c, hw));
    return 0;
}

/* batchnorm_apply(x, y, weight, bias, save_mean, save_invstd) -> y: a forward's
 * output made again from its saved statistics (bit-identical). */
static int batchnorm_apply(lua_State *L)
{
    const char *op = "batchnorm_apply";
    sg_tensor *x = in_tensor(L, 1, op, "input", SG_F32);
    int64_t n, c, hw;
    bn_dims(L, op, x, &n, &c, &hw);
    sg_tensor *gamma = shaped_tensor(L, 3, op, "weight", 1, &c, 1);
    sg_tensor *beta = shaped_tensor(L, 4, op, "bias", 1, &c, 1);
    sg_tensor *sm = shaped_tensor(L, 5, op, "save_mean", 1, &c, 0);
    sg_tensor *si = shaped_tensor(L, 6, op, "save_invstd", 1, &c, 0);
    sg_tensor *y = out_tensor(L, 2, op, "y", SG_F32, x->ndim, x->size);
    SGL_CHECK(L, sg_cpu_batchnorm_apply(sg_f32(x), sg_f32(y), gamma ? sg_f32(gamma) : NULL,
                                        beta ? sg_f32(beta) : NULL, sg_f32(sm), sg_f32(si),
                                        n, c, hw));
    lua_pushvalue(L, 2);
    return 1;
}

/* ---- relu, dropout --------------------------------------------------------------- */

static int relu_forward(lua_State *L)
{
    const char *op = "relu_forward";
    sg_tensor *x = in_tensor(L, 1, op, "input", SG_F32);
    sg_tensor *y = out_tensor(L, 2, op, "y", SG_F32, x->ndim, x->size);
    SGL_CHECK(L, sg_cpu_relu_forward(sg_f32(x), sg_f32(y), sg_tensor_numel(x)));
    lua_pushvalue(L, 2);
    return 1;
}

static int relu_backward_data(lua_State *L)
{
    const char *op = "relu_backward_data";
    sg_tensor *y = in_tensor(L, 1, op, "output", SG_F32);
    sg_tensor *dy = same_as(L, 2, op, "dy", y, "output");
    sg_tensor *dx = out_tensor(L, 3, op, "dx", SG_F32, y->ndim, y->size);
    SGL_CHECK(L, sg_cpu_relu_backward_data(sg_f32(y), sg_f32(dy), sg_f32(dx),
                                           sg_tensor_numel(y)));
    lua_pushvalue(L, 3);
    return 1;
}

static int dropout_mask(lua_State *L)
{
    const char *op = "dropout_mask";
    sg_rng *r = sgl_checkrng(L, 1);
    sg_tensor *x = in_tensor(L, 3, op, "input", SG_F32);
    double p = luaL_checknumber(L, 4);
    sg_tensor *m = out_tensor(L, 2, op, "mask", SG_F32, x->ndim, x->size);
    SGL_CHECK(L, sg_cpu_dropout_mask(r, sg_f32(m), sg_tensor_numel(x), p));
    lua_pushvalue(L, 2);
    return 1;
}

static int dropout_forward(lua_State *L)
{
    const char *op = "dropout_forward";
    sg_tensor *x = in_tensor(L, 1, op, "input", SG_F32);
    sg_tensor *m = same_as(L, 3, op, "mask", x, "input");
    sg_tensor *y = out_tensor(L, 2, op, "y", SG_F32, x->ndim, x->size);
    SGL_CHECK(L, sg_cpu_dropout_forward(sg_f32(x), sg_f32(y), sg_f32(m), sg_tensor_numel(x)));
    lua_pushvalue(L, 2);
    return 1;
}

static int dropout_backward_data(lua_State *L)
{
    const char *op = "dropout_backward_data";
    sg_tensor *dy = in_tensor(L, 1, op, "dy", SG_F32);
    sg_tensor *m = same_as(L, 3, op, "mask", dy, "dy");
    sg_tensor *dx = out_tensor(L, 2, op, "dx", SG_F32, dy->ndim, dy->size);
    SGL_CHECK(L, sg_cpu_dropout_backward_data(sg_f32(dy), sg_f32(dx), sg_f32(m),
                                              sg_tensor_numel(dy)));
    lua_pushvalue(L, 2);
    return 1;
}

/* ---- pooling --------------------------------------------------------------------- */

static void pool_geom(lua_State *L, const char *op, const sg_tensor *x, int kidx,
                      sg_pool2d_geom *g)
{
    want_ndim(L, (sg_tensor *)x, op, "input", 4);
    int64_t kh, kw, sh, sw, ph, pw;
    pair(L, kidx, -1, &kh, &kw, op, "kernel");
    if (lua_isnoneornil(L, kidx + 1)) {
        sh = kh;
        sw = kw;
    } else {
        pair(L, kidx + 1, 1, &sh, &sw, op, "stride");
    }
    pair(L, kidx + 2, 0, &ph, &pw, op, "pad");
    if (sg_pool2d_geom_init(g, x->size[0], x->size[1], x->size[2], x->size[3], kh, kw, sh, sw,
                            ph, pw)) {
        char a[128];
        sg_adderr("%s: input %s", op, shp(x, a));
        sgl_error(L);
    }
}

static int maxpool2d_forward(lua_State *L)
{
    const char *op = "maxpool2d_forward";
    sg_tensor *x = in_tensor(L, 1, op, "input", SG_F32);
    sg_pool2d_geom g;
    pool_geom(L, op, x, 4, &g);
    int64_t ys[4] = { g.n, g.c, g.oh, g.ow };
    sg_tensor *idx = lua_isnoneornil(L, 3) ? NULL : out_tensor(L, 3, op, "indices", SG_I32, 4, ys);
    sg_tensor *y = out_tensor(L, 2, op, "y", SG_F32, 4, ys);
    SGL_CHECK(L, sg_cpu_maxpool2d_forward(sg_f32(x), sg_f32(y),
                                          idx ? (int32_t *)sg_tensor_data(idx) : NULL, &g));
    lua_pushvalue(L, 2);
    return 1;
}

static int maxpool2d_backward_data(lua_State *L)
{
    const char *op = "maxpool2d_backward_data";
    sg_tensor *x = in_tensor(L, 1, op, "input", SG_F32);
    sg_pool2d_geom g;
    pool_geom(L, op, x, 5, &g);
    int64_t ys[4] = { g.n, g.c, g.oh, g.ow };
    sg_tensor *dy = shaped_tensor(L, 2, op, "dy", 4, ys, 0);
    sg_tensor *idx = in_tensor(L, 4, op, "indices", SG_I32);
    if (!sg_tensor_same_shape(idx, dy)) {
        char a[128], b[128];
        sg_seterr("%s: indices %s do not match dy %s (cpu)", op, shp(idx, a), shp(dy, b));
        return sgl_error(L);
    }
    sg_tensor *dx = out_tensor(L, 3, op, "dx", SG_F32, 4, x->size);
    SGL_CHECK(L, sg_cpu_maxpool2d_backward_data(sg_f32(dy), sg_f32(dx),
                                                (const int32_t *)sg_tensor_data(idx), &g));
    lua_pushvalue(L, 3);
    return 1;
}

static int avgpool2d_forward(lua_State *L)
{
    const char *op = "avgpool2d_forward";
    sg_tensor *x = in_tensor(L, 1, op, "input", SG_F32);
    sg_pool2d_geom g;
    pool_geom(L, op, x, 3, &g);
    int64_t ys[4] = { g.n, g.c, g.oh, g.ow };
    sg_tensor *y = out_tensor(L, 2, op, "y", SG_F32, 4, ys);
    SGL_CHECK(L, sg_cpu_avgpool2d_forward(sg_f32(x), sg_f32(y), &g));
    lua_pushvalue(L, 2);
    return 1;
}

static int avgpool2d_backward_data(lua_State *L)
{
    const char *op = "avgpool2d_backward_data";
    sg_tensor *x = in_tensor(L, 1, op, "input", SG_F32);
    sg_pool2d_geom g;
    pool_geom(L, op, x, 4, &g);
    int64_t ys[4] = { g.n, g.c, g.oh, g.ow };
    sg_tensor *dy = shaped_tensor(L, 2, op, "dy", 4, ys, 0);
    sg_tensor *dx = out_tensor(L, 3, op, "dx", SG_F32, 4, x->size);
    SGL_CHECK(L, sg_cpu_avgpool2d_backward_data(sg_f32(dy), sg_f32(dx), &g));
    lua_pushvalue(L, 3);
    return 1;
}

static int global_avgpool_forward(lua_State *L)
{
    const char *op = "global_avgpool_forward";
    sg_tensor *x = in_tensor(L, 1, op, "input", SG_F32);
    int64_t n, c, hw;
    bn_dims(L, op, x, &n, &c, &hw);
    int64_t ys[2] = { n, c };
    sg_tensor *y = out_tensor(L, 2, op, "y", SG_F32, 2, ys);
    SGL_CHECK(L, sg_cpu_global_avgpool_forward(sg_f32(x), sg_f32(y), n, c, hw));
    lua_pushvalue(L, 2);
    return 1;
}

static int global_avgpool_backward_data(lua_State *L)
{
    const char *op = "global_avgpool_backward_data";
    sg_tensor *x = in_tensor(L, 1, op, "input", SG_F32);
    int64_t n, c, hw;
    bn_dims(L, op, x, &n, &c, &hw);
    sg_tensor *dy = in_tensor(L, 2, op, "dy", SG_F32);
    if (sg_tensor_numel(dy) != n * c || dy->size[0] != n) {
        char a[128], b[128];
        sg_seterr("%s: dy %s does not match input %s (expected %lldx%lld) (cpu)", op,
                  shp(dy, a), shp(x, b), (long long)n, (long long)c);
        return sgl_error(L);
    }
    sg_tensor *dx = out_tensor(L, 3, op, "dx", SG_F32, x->ndim, x->size);
    SGL_CHECK(L, sg_cpu_global_avgpool_backward_data(sg_f32(dy), sg_f32(dx), n, c, hw));
    lua_pushvalue(L, 3);
    return 1;
}

/* ---- loss ------------------------------------------------------------------------ */

static int cross_entropy(lua_State *L)
{
    const char *op = "cross_entropy";
    sg_tensor *z = in_tensor(L, 1, op, "logits", SG_F32);
    sg_tensor *lab = in_tensor(L, 2, op, "labels", SG_I32);
    want_ndim(L, z, op, "logits", 2);
    if (sg_tensor_numel(lab) != z->size[0] || lab->ndim != 1) {
        char a[128], b[128];
        sg_seterr("%s: labels %s must be a 1-d tensor of %lld (logits %s) (cpu)", op,
                  shp(lab, a), (long long)z->size[0], shp(z, b));
        return sgl_error(L);
    }
    sg_tensor *dz = lua_isnoneornil(L, 3) ? NULL : out_tensor(L, 3, op, "dlogits", SG_F32, 2, z->size);
    double loss;
    int64_t correct;
    SGL_CHECK(L, sg_cpu_cross_entropy(sg_f32(z), (const int32_t *)sg_tensor_data(lab),
                                      dz ? sg_f32(dz) : NULL, z->size[0], z->size[1], &loss,
                                      &correct));
    lua_pushnumber(L, loss);
    lua_pushinteger(L, correct);
    return 2;
}

/* ---- flat-vector updates --------------------------------------------------------- */

static sg_tensor *vec_arg(lua_State *L, int idx, const char *op, const char *name, int64_t n)
{
    sg_tensor *t = in_tensor(L, idx, op, name, SG_F32);
    if (sg_tensor_numel(t) != n) {
        char a[128];
        sg_seterr("%s: %s %s has %lld elements, expected %lld (cpu)", op, name, shp(t, a),
                  (long long)sg_tensor_numel(t), (long long)n);
        sgl_error(L);
    }
    return t;
}

static int vec_axpy(lua_State *L)
{
    const char *op = "vec_axpy";
    sg_tensor *a = in_tensor(L, 1, op, "a", SG_F32);
    int64_t n = sg_tensor_numel(a);
    sg_tensor *x = vec_arg(L, 2, op, "x", n);
    sg_tensor *out = vec_arg(L, 3, op, "out", n);
    float alpha = (float)luaL_checknumber(L, 4);
    sg_cpu_vec_axpy(sg_f32(a), sg_f32(x), sg_f32(out), n, alpha);
    lua_pushvalue(L, 3);
    return 1;
}

static int vec_axpbypz(lua_State *L)
{
    const char *op = "vec_axpbypz";
    sg_tensor *a = in_tensor(L, 1, op, "a", SG_F32);
    int64_t n = sg_tensor_numel(a);
    sg_tensor *x = vec_arg(L, 2, op, "x", n);
    sg_tensor *y = vec_arg(L, 3, op, "y", n);
    sg_tensor *out = vec_arg(L, 4, op, "out", n);
    float alpha = (float)luaL_checknumber(L, 5), beta = (float)luaL_checknumber(L, 6);
    sg_cpu_vec_axpbypz(sg_f32(a), sg_f32(x), sg_f32(y), sg_f32(out), n, alpha, beta);
    lua_pushvalue(L, 4);
    return 1;
}

static int vec_scale_add(lua_State *L)
{
    const char *op = "vec_scale_add";
    sg_tensor *a = in_tensor(L, 1, op, "a", SG_F32);
    int64_t n = sg_tensor_numel(a);
    sg_tensor *x = vec_arg(L, 2, op, "x", n);
    sg_tensor *out = vec_arg(L, 3, op, "out", n);
    float s = (float)luaL_checknumber(L, 4), alpha = (float)luaL_checknumber(L, 5);
    sg_cpu_vec_scale_add(sg_f32(a), sg_f32(x), sg_f32(out), n, s, alpha);
    lua_pushvalue(L, 3);
    return 1;
}

static const luaL_Reg nn_funcs[] = {
    { "conv2d_forward", conv2d_forward },
    { "conv2d_backward_data", conv2d_backward_data },
    { "conv2d_backward_params", conv2d_backward_params },
    { "conv2d_output_size", conv2d_output_size },
    { "linear_forward", linear_forward },
    { "linear_backward_data", linear_backward_data },
    { "linear_backward_params", linear_backward_params },
    { "batchnorm_forward_train", batchnorm_forward_train },
    { "batchnorm_forward_eval", batchnorm_forward_eval },
    { "batchnorm_apply", batchnorm_apply },
    { "batchnorm_backward_data", batchnorm_backward_data },
    { "batchnorm_backward_params", batchnorm_backward_params },
    { "relu_forward", relu_forward },
    { "relu_backward_data", relu_backward_data },
    { "dropout_mask", dropout_mask },
    { "dropout_forward", dropout_forward },
    { "dropout_backward_data", dropout_backward_data },
    { "maxpool2d_forward", maxpool2d_forward },
    { "maxpool2d_backward_data", maxpool2d_backward_data },
    { "avgpool2d_forward", avgpool2d_forward },
    { "avgpool2d_backward_data", avgpool2d_backward_data },
    { "global_avgpool_forward", global_avgpool_forward },
    { "global_avgpool_backward_data", global_avgpool_backward_data },
    { "cross_entropy", cross_entropy },
    { "vec_axpy", vec_axpy },
    { "vec_axpbypz", vec_axpbypz },
    { "vec_scale_add", vec_scale_add },
    { NULL, NULL },
};

void sgl_open_nn(lua_State *L)
{
    lua_newtable(L);
    sgl_setfuncs(L, nn_funcs);
    lua_setfield(L, -2, "nn");
}
