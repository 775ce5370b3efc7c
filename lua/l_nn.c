/*
 * l_nn.c - Lua binding of the layer kernels, for both devices: the
 * `sgdsa.core.nn` table.
 *
 * A call runs on one device, decided by its tensor arguments: any CUDA tensor
 * among them -> the CUDA kernels (kernels/cuda/nn_cuda.h), otherwise the CPU
 * kernels (kernels/cpu/nn.h). The two headers mirror each other; the table of
 * each device's kernels is below, and every function checks its arguments
 * once, for the call's device, then calls that device's kernel.
 *
 * Checks: every input, parameter and gradient must be a contiguous tensor of
 * the right dtype on the call's device (one on the other device is an error
 * naming both); a mismatch names the function, both shapes and the device:
 *   "conv2d_forward: input 8x3x32x32 has 3 channels, weight 16x4x3x3 expects 4 (cpu)".
 * Outputs, workspaces and saved buffers are tensors the caller owns; they are
 * resized here (sg_tensor_resize only reallocates when they must grow, so a
 * steady-state step allocates nothing). An output buffer on the other device
 * that owns its storage (a cpu buffer given to a GPU call) is moved to the
 * call's device, so module buffers follow their inputs. Parameter-gradient
 * tensors are never resized: they are slices of the model's flat gradient
 * buffer and must already have the parameter's shape; gradients ADD into
 * them. *_backward_data OVERWRITES its dx. Argument order (as in nn.h):
 * workspace, inputs, outputs, parameters, gradients, buffers, then scalars.
 * Optional tensors (bias, its gradient, a workspace) may be nil; a nil
 * workspace is allocated for the call and freed. On the GPU the workspace
 * argument is not used (cuDNN's is the backend's own scratch buffer).
 *
 * Lua API (all tensors float32 unless noted; `pair` = a number or {h, w};
 * each function returns its first output):
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
 *                           momentum=0.1, update_running=true, sync=false)  -> y
 *       x NxC or NxCx... (per channel over N and the rest); gamma/beta C or
 *       nil; save_* := C. update_running=false is the SA trial forward:
 *       batch statistics, running statistics untouched. sync=true (cpu):
 *       the statistics of the whole batch of a data-parallel run, summed
 *       over the ranks (sync_bn; x may then have N = 0).
 *   batchnorm_forward_eval(x, y, gamma, beta, save_mean, save_invstd,
 *                          running_mean, running_var, eps=1e-5) -> y
 *   batchnorm_backward_data(x, dy, dx, gamma, save_mean, save_invstd,
 *                           training, sync=false)              -> dx
 *       sync=true (cpu, training): the sums of dy and dy*xhat over the ranks
 *   batchnorm_backward_params(x, dy, dgamma, dbeta, save_mean, save_invstd)
 *   batchnorm_backward(x, dy, dx, gamma, dgamma, dbeta, save_mean, save_invstd,
 *                      training)                               -> dx
 *       both (dgamma += ..., dbeta += ..., dx := shape of x); dx = false: no
 *       dx (returns nothing); on the GPU one cuDNN call in training mode
 *   batchnorm_apply(x, y, gamma, beta, save_mean, save_invstd) -> y
 *       a forward's output made again from its saved statistics (cpu only)
 *   relu_forward(x, y)                    y := shape of x (y may be x)
 *   relu_backward_data(y, dy, dx)         uses the OUTPUT y; dx may be dy
 *   dropout_mask(gen, mask, x, p)         mask := shape of x; 0 or 1/(1-p)
 *                                         (drawn on the host on both devices)
 *   dropout_forward(x, y, mask)           dropout_backward_data(dy, dx, mask)
 *   maxpool2d_forward(x, y, idx, kernel, stride=kernel, pad=0) -> y
 *       idx: int32 tensor (:= shape of y) or nil (trial forward)
 *   maxpool2d_backward_data(x, dy, dx, idx, kernel, stride=kernel, pad=0)
 *   avgpool2d_forward(x, y, kernel, stride=kernel, pad=0)
 *   avgpool2d_backward_data(x, dy, dx, kernel, stride=kernel, pad=0)
 *   global_avgpool_forward(x, y)          y := NxC
 *   global_avgpool_backward_data(x, dy, dx)
 *   cross_entropy(logits, labels, dlogits [, slot]) -> loss, correct | slot
 *       logits NxC, labels int32 N, dlogits := NxC or nil; slot: a
 *       core.cuda.readback() (ignored on the cpu): on the GPU the loss stays
 *       on the device, its copy is queued into the slot and the slot comes
 *       back, nothing waited for (slot:read() -> loss, correct)
 *   vec_axpy(a, x, out, alpha)             out := a + alpha*x
 *   vec_axpbypz(a, x, y, out, alpha, beta) out := a + alpha*x + beta*y
 *   vec_scale_add(a, x, out, s, alpha)     out := s*a + alpha*x
 *       (same element count; any shape; out may be a or x)
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "binding.h"
#include "comm.h"
#include "nn.h"
#ifdef SG_HAVE_CUDA
#include "nn_cuda.h"
#endif

/* ---- each device's kernels ------------------------------------------------------- */

/* The kernel `op` of the call's device: sg_cpu_<op> (kernels/cpu/nn.h) or
 * sg_cuda_<op> (kernels/cuda/nn_cuda.h). The headers give both one signature
 * (a mismatch would not compile: the two branches of the conditional must
 * have one type); the CUDA convolutions take the CPU's workspace argument and
 * accept NULL. */
#ifdef SG_HAVE_CUDA
#define ON_DEVICE(a, cpu, cuda) ((a)->dev == SG_CUDA ? (cuda) : (cpu))
#else
#define ON_DEVICE(a, cpu, cuda) (cpu)
#endif
#define KERNEL(a, op) ON_DEVICE(a, sg_cpu_##op, sg_cuda_##op)
#define VEC_KERNEL(a, op) ON_DEVICE(a, cpu_##op, sg_cuda_##op) /* the adapters below */

/* The CPU's vector updates cannot fail (they return void; the GPU's return a status). */
static int cpu_vec_axpy(const float *a, const float *x, float *out, int64_t n, float alpha)
{
    sg_cpu_vec_axpy(a, x, out, n, alpha);
    return 0;
}

static int cpu_vec_axpbypz(const float *a, const float *x, const float *y, float *out,
                           int64_t n, float alpha, float beta)
{
    sg_cpu_vec_axpbypz(a, x, y, out, n, alpha, beta);
    return 0;
}

static int cpu_vec_scale_add(const float *a, const float *x, float *out, int64_t n, float s,
                             float alpha)
{
    sg_cpu_vec_scale_add(a, x, out, n, s, alpha);
    return 0;
}

/* ---- argument checks (sgl_args_of and sgl_arg_*: binding.h) ---------------------- */

static const char *shp(const sg_tensor *t, char *buf)
{
    return sg_shape_str(t, buf, 128);
}

static float *F(const sg_tensor *t)
{
    return t ? sg_f32(t) : NULL;
}

/* Return the argument at idx (the function's first output). */
static int ret(lua_State *L, int idx)
{
    lua_pushvalue(L, idx);
    return 1;
}

/* Raise "<op>: <message> (<device>)". */
static void fail(const sgl_args *a, const char *fmt, ...) SG_PRINTF(2, 3);
static void fail(const sgl_args *a, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sg_seterr("%s: %s (%s)", a->op, msg, sg_device_name(a->dev));
    sgl_error(a->L);
}

sgl_args sgl_args_of(lua_State *L, const char *op)
{
    sgl_args a = { L, op, SG_CPU };
#ifdef SG_HAVE_CUDA
    for (int i = 1, n = lua_gettop(L); i <= n && a.dev == SG_CPU; i++) {
        sg_tensor *t = sgl_totensor(L, i);
        if (t && t->storage && t->storage->device == SG_CUDA)
            a.dev = SG_CUDA;
    }
#endif
    return a;
}

sg_tensor *sgl_arg_in(const sgl_args *a, int idx, const char *name, sg_dtype dt)
{
    sg_tensor *t = sgl_checktensor(a->L, idx);
    char b[128];
    sg_devtype d = t->storage->device;
    if (d != a->dev) {
        sg_seterr("%s: %s %s is on %s while other arguments are on %s; move it with :%s() "
                  "(or the others with :%s())", a->op, name, shp(t, b), sg_device_name(d),
                  sg_device_name(a->dev), sg_device_name(a->dev), sg_device_name(d));
        sgl_error(a->L);
    }
    if (t->dtype != dt)
        fail(a, "%s %s is %s, expected %s", name, shp(t, b), sg_dtype_name(t->dtype),
             sg_dtype_name(dt));
    if (!sg_tensor_is_contiguous(t)) {
        sg_seterr("%s: %s %s is not contiguous (%s); use :contiguous()", a->op, name, shp(t, b),
                  sg_device_name(d));
        sgl_error(a->L);
    }
    return t;
}

sg_tensor *sgl_arg_out(const sgl_args *a, int idx, const char *name, sg_dtype dt, int ndim,
                       const int64_t *size)
{
    sg_tensor *t = sgl_checktensor(a->L, idx);
    char b[128];
    if (t->dtype != dt)
        fail(a, "output %s %s is %s, expected %s", name, shp(t, b), sg_dtype_name(t->dtype),
             sg_dtype_name(dt));
    if (t->storage->device != a->dev) {
        if (t->storage->refcount != 1) {
            sg_seterr("%s: output %s %s is on %s and shares its storage, while the inputs are "
                      "on %s; give a %s tensor", a->op, name, shp(t, b),
                      sg_device_name(t->storage->device), sg_device_name(a->dev),
                      sg_device_name(a->dev));
            sgl_error(a->L);
        }
        int64_t n = 1;
        for (int i = 0; i < ndim; i++)
            n *= size[i];
        sg_storage *s = sg_storage_new((size_t)(n > 0 ? n : 1) * sg_dtype_size(dt), a->dev);
        if (!s) {
            sg_adderr("%s: output %s moved to %s", a->op, name, sg_device_name(a->dev));
            sgl_error(a->L);
        }
        sg_storage_release(t->storage);
        t->storage = s;
        t->offset = 0;
    } else if (!sg_tensor_is_contiguous(t)) {
        fail(a, "output %s %s is not contiguous", name, shp(t, b));
    }
    if (sg_tensor_resize(t, ndim, size)) {
        sg_adderr("%s: output %s", a->op, name);
        sgl_error(a->L);
    }
    return t;
}

void sgl_arg_ndim(const sgl_args *a, const sg_tensor *t, const char *name, int ndim)
{
    char b[128];
    if (t->ndim != ndim)
        fail(a, "%s %s must be %d-d", name, shp(t, b), ndim);
}

/* A parameter, its gradient or a saved buffer: exactly ndim/size (never
 * resized); nil gives NULL when optional. */
static sg_tensor *shaped(const sgl_args *a, int idx, const char *name, int ndim,
                         const int64_t *size, int optional)
{
    if (optional && lua_isnoneornil(a->L, idx))
        return NULL;
    sg_tensor *t = sgl_arg_in(a, idx, name, SG_F32);
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
        fail(a, "%s is %s, expected %s", name, shp(t, b), want);
    }
    return t;
}

/* A float32 input with the shape of another. */
static sg_tensor *same_as(const sgl_args *a, int idx, const char *name, const sg_tensor *like,
                          const char *like_name)
{
    sg_tensor *t = sgl_arg_in(a, idx, name, SG_F32);
    char b[128], c[128];
    if (!sg_tensor_same_shape(t, like))
        fail(a, "%s %s does not match %s %s", name, shp(t, b), like_name, shp(like, c));
    return t;
}

/* A float32 output resized to the shape of `like`. */
static sg_tensor *out_like(const sgl_args *a, int idx, const char *name, const sg_tensor *like)
{
    return sgl_arg_out(a, idx, name, SG_F32, like->ndim, like->size);
}

/* A number or a {h, w} table; `def` when absent (def < 0: required). */
static void pair(const sgl_args *a, int idx, int64_t def, int64_t *h, int64_t *w,
                 const char *name)
{
    lua_State *L = a->L;
    if (lua_isnoneornil(L, idx)) {
        if (def < 0)
            luaL_error(L, "%s: missing %s (a number or {h, w})", a->op, name);
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
            luaL_error(L, "%s: %s must be a number or {h, w} of integers", a->op, name);
        return;
    }
    int ok;
    *h = *w = lua_tointegerx(L, idx, &ok);
    if (!ok)
        luaL_error(L, "%s: %s must be an integer or {h, w}, got %s", a->op, name,
                   luaL_typename(L, idx));
}

/* ---- conv2d ---------------------------------------------------------------------- */

/* x (arg 2, NxCxHxW) and a weight-shaped w (arg wi, KxCxKHxKW), stride and pad
 * (args 6, 7): the geometry. */
static void conv_args(const sgl_args *a, int wi, const char *wname, sg_tensor **x,
                      sg_tensor **w, sg_conv2d_geom *g)
{
    char b1[128], b2[128];
    *x = sgl_arg_in(a, 2, "input", SG_F32);
    *w = sgl_arg_in(a, wi, wname, SG_F32);
    const int64_t *xs = (*x)->size, *ws = (*w)->size;
    sgl_arg_ndim(a, *x, "input", 4);
    sgl_arg_ndim(a, *w, "weight", 4);
    if (xs[1] != ws[1])
        fail(a, "input %s has %lld channels, weight %s expects %lld", shp(*x, b1),
             (long long)xs[1], shp(*w, b2), (long long)ws[1]);
    int64_t sh, sw, ph, pw;
    pair(a, 6, 1, &sh, &sw, "stride");
    pair(a, 7, 0, &ph, &pw, "pad");
    if (sg_conv2d_geom_init(g, xs[0], xs[1], xs[2], xs[3], ws[0], ws[2], ws[3], sh, sw, ph,
                            pw)) {
        sg_adderr("%s: input %s, weight %s", a->op, shp(*x, b1), shp(*w, b2));
        sgl_error(a->L);
    }
}

/* dy (arg 3): the output's shape. */
static sg_tensor *conv_dy(const sgl_args *a, const sg_conv2d_geom *g)
{
    int64_t ys[4] = { g->n, g->k, g->oh, g->ow };
    return shaped(a, 3, "dy", 4, ys, 0);
}

/* The workspace (arg 1): on the cpu a float32 tensor resized to the
 * geometry's size, or nil (allocated for the call); on the GPU unused. */
typedef struct {
    float *p;
    float *owned;
} wspace;

static void ws_get(const sgl_args *a, const sg_conv2d_geom *g, wspace *w)
{
    w->p = w->owned = NULL;
    if (a->dev != SG_CPU)
        return;
    size_t n = sg_cpu_conv2d_workspace_size(g);
    if (lua_isnoneornil(a->L, 1)) {
        w->p = w->owned = sg_aligned_alloc((n ? n : 1) * sizeof(float), a->op);
        if (!w->owned)
            sgl_error(a->L);
        return;
    }
    /* a workspace over an input's or output's memory would be overwritten while
     * the kernel reads it (and im2col's memcpy would copy between overlapping ranges) */
    sg_tensor *t = sgl_checktensor(a->L, 1);
    for (int i = 2, top = lua_gettop(a->L); i <= top; i++) {
        sg_tensor *o = sgl_totensor(a->L, i);
        if (o && o->storage == t->storage) {
            char b[128];
            fail(a, "workspace %s shares its storage with argument #%d", shp(t, b), i);
        }
    }
    int64_t sz = (int64_t)(n ? n : 1);
    w->p = sg_f32(sgl_arg_out(a, 1, "workspace", SG_F32, 1, &sz));
}

/* Free a temporary workspace, then raise the kernel's error or return arg `out`. */
static int ws_done(const sgl_args *a, wspace *w, int rc, int out)
{
    free(w->owned);
    if (rc)
        return sgl_error(a->L);
    return ret(a->L, out);
}

static int conv2d_forward(lua_State *L)
{
    sgl_args a = sgl_args_of(L, "conv2d_forward");
    sg_tensor *x, *w;
    sg_conv2d_geom g;
    conv_args(&a, 4, "weight", &x, &w, &g);
    sg_tensor *b = shaped(&a, 5, "bias", 1, &g.k, 1);
    int64_t ys[4] = { g.n, g.k, g.oh, g.ow };
    sg_tensor *y = sgl_arg_out(&a, 3, "y", SG_F32, 4, ys);
    wspace ws;
    ws_get(&a, &g, &ws);
    return ws_done(&a, &ws, KERNEL(&a, conv2d_forward)(ws.p, F(x), F(y), F(w), F(b), &g), 3);
}

static int conv2d_backward_data(lua_State *L)
{
    sgl_args a = sgl_args_of(L, "conv2d_backward_data");
    sg_tensor *x, *w;
    sg_conv2d_geom g;
    conv_args(&a, 5, "weight", &x, &w, &g);
    sg_tensor *dy = conv_dy(&a, &g);
    sg_tensor *dx = out_like(&a, 4, "dx", x);
    wspace ws;
    ws_get(&a, &g, &ws);
    return ws_done(&a, &ws, KERNEL(&a, conv2d_backward_data)(ws.p, F(dy), F(dx), F(w), &g), 4);
}

static int conv2d_backward_params(lua_State *L)
{
    sgl_args a = sgl_args_of(L, "conv2d_backward_params");
    sg_tensor *x, *dw;
    sg_conv2d_geom g;
    conv_args(&a, 4, "dw", &x, &dw, &g);
    sg_tensor *dy = conv_dy(&a, &g);
    sg_tensor *db = shaped(&a, 5, "db", 1, &g.k, 1);
    wspace ws;
    ws_get(&a, &g, &ws);
    return ws_done(&a, &ws,
                   KERNEL(&a, conv2d_backward_params)(ws.p, F(x), F(dy), F(dw), F(db), &g), 4);
}

static int conv2d_output_size(lua_State *L)
{
    sgl_args a = { L, "conv2d_output_size", SG_CPU };
    int64_t h = luaL_checkinteger(L, 1), w = luaL_checkinteger(L, 2);
    int64_t kh = luaL_checkinteger(L, 3), kw = luaL_checkinteger(L, 4);
    int64_t sh, sw, ph, pw;
    pair(&a, 5, 1, &sh, &sw, "stride");
    pair(&a, 6, 0, &ph, &pw, "pad");
    sg_conv2d_geom g;
    if (sg_conv2d_geom_init(&g, 1, 1, h, w, 1, kh, kw, sh, sw, ph, pw))
        return sgl_error(L);
    lua_pushinteger(L, g.oh);
    lua_pushinteger(L, g.ow);
    return 2;
}

/* ---- linear ---------------------------------------------------------------------- */

/* x (arg 1, NxIN) and a weight-shaped w (arg 3, OUTxIN). */
static void lin_args(const sgl_args *a, const char *wname, sg_tensor **x, sg_tensor **w)
{
    char b1[128], b2[128];
    *x = sgl_arg_in(a, 1, "input", SG_F32);
    *w = sgl_arg_in(a, 3, wname, SG_F32);
    sgl_arg_ndim(a, *x, "input", 2);
    sgl_arg_ndim(a, *w, "weight", 2);
    if ((*x)->size[1] != (*w)->size[1])
        fail(a, "input %s has %lld features, weight %s expects %lld", shp(*x, b1),
             (long long)(*x)->size[1], shp(*w, b2), (long long)(*w)->size[1]);
}

static int linear_forward(lua_State *L)
{
    sgl_args a = sgl_args_of(L, "linear_forward");
    sg_tensor *x, *w;
    lin_args(&a, "weight", &x, &w);
    int64_t ys[2] = { x->size[0], w->size[0] };
    sg_tensor *b = shaped(&a, 4, "bias", 1, &ys[1], 1);
    sg_tensor *y = sgl_arg_out(&a, 2, "y", SG_F32, 2, ys);
    SGL_CHECK(L, KERNEL(&a, linear_forward)(F(x), F(y), F(w), F(b), ys[0], x->size[1], ys[1]));
    return ret(L, 2);
}

static int linear_backward_data(lua_State *L)
{
    sgl_args a = sgl_args_of(L, "linear_backward_data");
    sg_tensor *dy = sgl_arg_in(&a, 1, "dy", SG_F32);
    sg_tensor *w = sgl_arg_in(&a, 3, "weight", SG_F32);
    sgl_arg_ndim(&a, dy, "dy", 2);
    sgl_arg_ndim(&a, w, "weight", 2);
    char b1[128], b2[128];
    if (dy->size[1] != w->size[0])
        fail(&a, "dy %s has %lld features, weight %s has %lld outputs", shp(dy, b1),
             (long long)dy->size[1], shp(w, b2), (long long)w->size[0]);
    int64_t xs[2] = { dy->size[0], w->size[1] };
    sg_tensor *dx = sgl_arg_out(&a, 2, "dx", SG_F32, 2, xs);
    SGL_CHECK(L, KERNEL(&a, linear_backward_data)(F(dy), F(dx), F(w), xs[0], xs[1], w->size[0]));
    return ret(L, 2);
}

static int linear_backward_params(lua_State *L)
{
    sgl_args a = sgl_args_of(L, "linear_backward_params");
    sg_tensor *x, *dw;
    lin_args(&a, "dw", &x, &dw);
    int64_t ys[2] = { x->size[0], dw->size[0] };
    sg_tensor *dy = shaped(&a, 2, "dy", 2, ys, 0);
    sg_tensor *db = shaped(&a, 4, "db", 1, &ys[1], 1);
    SGL_CHECK(L, KERNEL(&a, linear_backward_params)(F(x), F(dy), F(dw), F(db), ys[0],
                                                    x->size[1], ys[1]));
    return ret(L, 3);
}

/* ---- batchnorm (and global pooling: the same NxCx... input) ----------------------- */

/* x (arg 1) NxC or NxCx...: n, c and hw (the product of the rest). */
static sg_tensor *nc_input(const sgl_args *a, int64_t *n, int64_t *c, int64_t *hw)
{
    sg_tensor *x = sgl_arg_in(a, 1, "input", SG_F32);
    if (x->ndim < 2) {
        char b[128];
        fail(a, "input %s must be NxC or NxCx...", shp(x, b));
    }
    *n = x->size[0];
    *c = x->size[1];
    *hw = 1;
    for (int i = 2; i < x->ndim; i++)
        *hw *= x->size[i];
    return x;
}

/* sync_bn: the sums over the ranks of a data-parallel run (core/comm.h); on
 * one process nothing is summed and the sync kernels compute what the plain
 * ones do. There are no CUDA kernels for it. */
static int sum_over_ranks(double *v, int64_t n, void *ctx)
{
    (void)ctx;
    return sg_comm_allsum_f64(v, n);
}

static sg_allsum ranks_sum(const sgl_args *a)
{
    if (a->dev != SG_CPU)
        fail(a, "synchronized statistics (sync_bn) run on the cpu only; on cuda use "
                "per-rank statistics (sync_bn = false)");
    sg_allsum s = { sg_comm_size() > 1 ? sum_over_ranks : NULL, NULL };
    return s;
}

static int bn_forward(lua_State *L, int training)
{
    sgl_args a = sgl_args_of(L, training ? "batchnorm_forward_train" : "batchnorm_forward_eval");
    int64_t n, c, hw;
    sg_tensor *x = nc_input(&a, &n, &c, &hw);
    sg_tensor *gamma = shaped(&a, 3, "weight", 1, &c, 1);
    sg_tensor *beta = shaped(&a, 4, "bias", 1, &c, 1);
    sg_tensor *rm = shaped(&a, 7, "running_mean", 1, &c, training);
    sg_tensor *rv = shaped(&a, 8, "running_var", 1, &c, training);
    double eps = luaL_optnumber(L, 9, 1e-5);
    double momentum = training ? luaL_optnumber(L, 10, 0.1) : 0.0;
    int update = training && (lua_isnoneornil(L, 11) ? 1 : lua_toboolean(L, 11));
    if (update && (!rm || !rv))
        return luaL_error(L, "%s: update_running needs running_mean and running_var", a.op);
    if (!(eps > 0)) {
        sg_seterr("%s: eps must be positive, got %g", a.op, eps);
        return sgl_error(L);
    }
    sg_tensor *sm = sgl_arg_out(&a, 5, "save_mean", SG_F32, 1, &c);
    sg_tensor *si = sgl_arg_out(&a, 6, "save_invstd", SG_F32, 1, &c);
    sg_tensor *y = out_like(&a, 2, "y", x);
    if (training && lua_toboolean(L, 12)) {
        sg_allsum sum = ranks_sum(&a);
        SGL_CHECK(L, sg_cpu_batchnorm_forward_train_sync(F(x), F(y), F(gamma), F(beta), F(sm),
                                                         F(si), F(rm), F(rv), n, c, hw, eps,
                                                         momentum, update, &sum));
    } else if (training)
        SGL_CHECK(L, KERNEL(&a, batchnorm_forward_train)(F(x), F(y), F(gamma), F(beta), F(sm),
                                                         F(si), F(rm), F(rv), n, c, hw, eps,
                                                         momentum, update));
    else
        SGL_CHECK(L, KERNEL(&a, batchnorm_forward_eval)(F(x), F(y), F(gamma), F(beta), F(sm),
                                                        F(si), F(rm), F(rv), n, c, hw, eps));
    return ret(L, 2);
}

static int batchnorm_forward_train(lua_State *L) { return bn_forward(L, 1); }
static int batchnorm_forward_eval(lua_State *L) { return bn_forward(L, 0); }

/* The saved statistics (args 5, 6) of a forward: C floats each. */
static void bn_saved(const sgl_args *a, int64_t c, sg_tensor **sm, sg_tensor **si)
{
    *sm = shaped(a, 5, "save_mean", 1, &c, 0);
    *si = shaped(a, 6, "save_invstd", 1, &c, 0);
}

static int batchnorm_backward_data(lua_State *L)
{
    sgl_args a = sgl_args_of(L, "batchnorm_backward_data");
    int64_t n, c, hw;
    sg_tensor *x = nc_input(&a, &n, &c, &hw), *sm, *si;
    sg_tensor *dy = same_as(&a, 2, "dy", x, "input");
    sg_tensor *gamma = shaped(&a, 4, "weight", 1, &c, 1);
    bn_saved(&a, c, &sm, &si);
    luaL_checkany(L, 7);
    int training = lua_toboolean(L, 7);
    sg_tensor *dx = out_like(&a, 3, "dx", x);
    if (training && lua_toboolean(L, 8)) {
        sg_allsum sum = ranks_sum(&a);
        SGL_CHECK(L, sg_cpu_batchnorm_backward_data_sync(F(x), F(dy), F(dx), F(gamma), F(sm),
                                                         F(si), n, c, hw, &sum));
    } else
        SGL_CHECK(L, KERNEL(&a, batchnorm_backward_data)(F(x), F(dy), F(dx), F(gamma), F(sm),
                                                         F(si), n, c, hw, training));
    return ret(L, 3);
}

static int batchnorm_backward_params(lua_State *L)
{
    sgl_args a = sgl_args_of(L, "batchnorm_backward_params");
    int64_t n, c, hw;
    sg_tensor *x = nc_input(&a, &n, &c, &hw), *sm, *si;
    sg_tensor *dy = same_as(&a, 2, "dy", x, "input");
    sg_tensor *dg = shaped(&a, 3, "dweight", 1, &c, 1);
    sg_tensor *db = shaped(&a, 4, "dbias", 1, &c, 1);
    bn_saved(&a, c, &sm, &si);
    SGL_CHECK(L, KERNEL(&a, batchnorm_backward_params)(F(x), F(dy), F(dg), F(db), F(sm),
                                                       F(si), n, c, hw));
    return 0;
}

static int batchnorm_backward(lua_State *L)
{
    sgl_args a = sgl_args_of(L, "batchnorm_backward");
    int64_t n, c, hw;
    sg_tensor *x = nc_input(&a, &n, &c, &hw);
    sg_tensor *dy = same_as(&a, 2, "dy", x, "input");
    sg_tensor *gamma = shaped(&a, 4, "weight", 1, &c, 1);
    sg_tensor *dg = shaped(&a, 5, "dweight", 1, &c, 1);
    sg_tensor *db = shaped(&a, 6, "dbias", 1, &c, 1);
    sg_tensor *sm = shaped(&a, 7, "save_mean", 1, &c, 0);
    sg_tensor *si = shaped(&a, 8, "save_invstd", 1, &c, 0);
    luaL_checkany(L, 9);
    int training = lua_toboolean(L, 9);
    const int want_dx = !(lua_isboolean(L, 3) && !lua_toboolean(L, 3));
    sg_tensor *dx = want_dx ? out_like(&a, 3, "dx", x) : NULL;
    SGL_CHECK(L, KERNEL(&a, batchnorm_backward)(F(x), F(dy), F(dx), F(gamma), F(dg), F(db),
                                                F(sm), F(si), n, c, hw, training));
    return want_dx ? ret(L, 3) : 0;
}

/* A forward's output made again from its saved statistics, bit-identical
 * (CPU models recompute the BatchNorm outputs they do not keep; GPU models
 * keep them, and there is no CUDA kernel). */
static int batchnorm_apply(lua_State *L)
{
    sgl_args a = sgl_args_of(L, "batchnorm_apply");
    if (a.dev != SG_CPU)
        fail(&a, "there is no GPU kernel (models keep their BatchNorm outputs on the GPU)");
    int64_t n, c, hw;
    sg_tensor *x = nc_input(&a, &n, &c, &hw), *sm, *si;
    sg_tensor *gamma = shaped(&a, 3, "weight", 1, &c, 1);
    sg_tensor *beta = shaped(&a, 4, "bias", 1, &c, 1);
    bn_saved(&a, c, &sm, &si);
    sg_tensor *y = out_like(&a, 2, "y", x);
    SGL_CHECK(L, sg_cpu_batchnorm_apply(F(x), F(y), F(gamma), F(beta), F(sm), F(si), n, c, hw));
    return ret(L, 2);
}

static int global_avgpool_forward(lua_State *L)
{
    sgl_args a = sgl_args_of(L, "global_avgpool_forward");
    int64_t n, c, hw;
    sg_tensor *x = nc_input(&a, &n, &c, &hw);
    int64_t ys[2] = { n, c };
    sg_tensor *y = sgl_arg_out(&a, 2, "y", SG_F32, 2, ys);
    SGL_CHECK(L, KERNEL(&a, global_avgpool_forward)(F(x), F(y), n, c, hw));
    return ret(L, 2);
}

static int global_avgpool_backward_data(lua_State *L)
{
    sgl_args a = sgl_args_of(L, "global_avgpool_backward_data");
    int64_t n, c, hw;
    sg_tensor *x = nc_input(&a, &n, &c, &hw);
    sg_tensor *dy = sgl_arg_in(&a, 2, "dy", SG_F32);
    char b1[128], b2[128];
    if (sg_tensor_numel(dy) != n * c || dy->size[0] != n)
        fail(&a, "dy %s does not match input %s (expected %lldx%lld)", shp(dy, b1),
             shp(x, b2), (long long)n, (long long)c);
    sg_tensor *dx = out_like(&a, 3, "dx", x);
    SGL_CHECK(L, KERNEL(&a, global_avgpool_backward_data)(F(dy), F(dx), n, c, hw));
    return ret(L, 3);
}

/* ---- relu, dropout --------------------------------------------------------------- */

/* An element-wise op's tensors: the first input, an optional second input of
 * its shape (i2 = 0: none) and an output resized to its shape. */
typedef struct {
    sg_tensor *in, *in2, *out;
    int64_t n;
} ew_args;

static ew_args elementwise(const sgl_args *a, int i1, const char *n1, int i2, const char *n2,
                           int io, const char *no)
{
    ew_args e;
    e.in = sgl_arg_in(a, i1, n1, SG_F32);
    e.in2 = i2 ? same_as(a, i2, n2, e.in, n1) : NULL;
    e.out = out_like(a, io, no, e.in);
    e.n = sg_tensor_numel(e.in);
    return e;
}

static int relu_forward(lua_State *L)
{
    sgl_args a = sgl_args_of(L, "relu_forward");
    ew_args e = elementwise(&a, 1, "input", 0, NULL, 2, "y");
    SGL_CHECK(L, KERNEL(&a, relu_forward)(F(e.in), F(e.out), e.n));
    return ret(L, 2);
}

static int relu_backward_data(lua_State *L)
{
    sgl_args a = sgl_args_of(L, "relu_backward_data");
    ew_args e = elementwise(&a, 1, "output", 2, "dy", 3, "dx");
    SGL_CHECK(L, KERNEL(&a, relu_backward_data)(F(e.in), F(e.in2), F(e.out), e.n));
    return ret(L, 3);
}

static int dropout_mask(lua_State *L)
{
    sgl_args a = sgl_args_of(L, "dropout_mask");
    sg_rng *r = sgl_checkrng(L, 1);
    sg_tensor *x = sgl_arg_in(&a, 3, "input", SG_F32);
    double p = luaL_checknumber(L, 4);
    sg_tensor *m = out_like(&a, 2, "mask", x);
    SGL_CHECK(L, KERNEL(&a, dropout_mask)(r, F(m), sg_tensor_numel(x), p));
    return ret(L, 2);
}

static int dropout_forward(lua_State *L)
{
    sgl_args a = sgl_args_of(L, "dropout_forward");
    ew_args e = elementwise(&a, 1, "input", 3, "mask", 2, "y");
    SGL_CHECK(L, KERNEL(&a, dropout_forward)(F(e.in), F(e.out), F(e.in2), e.n));
    return ret(L, 2);
}

static int dropout_backward_data(lua_State *L)
{
    sgl_args a = sgl_args_of(L, "dropout_backward_data");
    ew_args e = elementwise(&a, 1, "dy", 3, "mask", 2, "dx");
    SGL_CHECK(L, KERNEL(&a, dropout_backward_data)(F(e.in), F(e.out), F(e.in2), e.n));
    return ret(L, 2);
}

/* ---- pooling --------------------------------------------------------------------- */

/* x (arg 1, NxCxHxW), kernel, stride (default: the kernel) and pad from args
 * kidx..kidx+2: the geometry, and the output's shape in ys. */
static sg_tensor *pool_args(const sgl_args *a, int kidx, sg_pool2d_geom *g, int64_t ys[4])
{
    sg_tensor *x = sgl_arg_in(a, 1, "input", SG_F32);
    sgl_arg_ndim(a, x, "input", 4);
    int64_t kh, kw, sh, sw, ph, pw;
    pair(a, kidx, -1, &kh, &kw, "kernel");
    if (lua_isnoneornil(a->L, kidx + 1)) {
        sh = kh;
        sw = kw;
    } else {
        pair(a, kidx + 1, 1, &sh, &sw, "stride");
    }
    pair(a, kidx + 2, 0, &ph, &pw, "pad");
    if (sg_pool2d_geom_init(g, x->size[0], x->size[1], x->size[2], x->size[3], kh, kw, sh, sw,
                            ph, pw)) {
        char b[128];
        sg_adderr("%s: input %s", a->op, shp(x, b));
        sgl_error(a->L);
    }
    ys[0] = g->n;
    ys[1] = g->c;
    ys[2] = g->oh;
    ys[3] = g->ow;
    return x;
}

static int maxpool2d_forward(lua_State *L)
{
    sgl_args a = sgl_args_of(L, "maxpool2d_forward");
    sg_pool2d_geom g;
    int64_t ys[4];
    sg_tensor *x = pool_args(&a, 4, &g, ys);
    sg_tensor *idx = lua_isnoneornil(L, 3) ? NULL : sgl_arg_out(&a, 3, "indices", SG_I32, 4, ys);
    sg_tensor *y = sgl_arg_out(&a, 2, "y", SG_F32, 4, ys);
    int32_t *ip = idx ? (int32_t *)sg_tensor_data(idx) : NULL;
    SGL_CHECK(L, KERNEL(&a, maxpool2d_forward)(F(x), F(y), ip, &g));
    return ret(L, 2);
}

static int maxpool2d_backward_data(lua_State *L)
{
    sgl_args a = sgl_args_of(L, "maxpool2d_backward_data");
    sg_pool2d_geom g;
    int64_t ys[4];
    sg_tensor *x = pool_args(&a, 5, &g, ys);
    sg_tensor *dy = shaped(&a, 2, "dy", 4, ys, 0);
    sg_tensor *idx = sgl_arg_in(&a, 4, "indices", SG_I32);
    char b1[128], b2[128];
    if (!sg_tensor_same_shape(idx, dy))
        fail(&a, "indices %s do not match dy %s", shp(idx, b1), shp(dy, b2));
    sg_tensor *dx = out_like(&a, 3, "dx", x);
    SGL_CHECK(L, KERNEL(&a, maxpool2d_backward_data)(F(dy), F(dx),
                                                     (const int32_t *)sg_tensor_data(idx), &g));
    return ret(L, 3);
}

static int avgpool2d_forward(lua_State *L)
{
    sgl_args a = sgl_args_of(L, "avgpool2d_forward");
    sg_pool2d_geom g;
    int64_t ys[4];
    sg_tensor *x = pool_args(&a, 3, &g, ys);
    sg_tensor *y = sgl_arg_out(&a, 2, "y", SG_F32, 4, ys);
    SGL_CHECK(L, KERNEL(&a, avgpool2d_forward)(F(x), F(y), &g));
    return ret(L, 2);
}

static int avgpool2d_backward_data(lua_State *L)
{
    sgl_args a = sgl_args_of(L, "avgpool2d_backward_data");
    sg_pool2d_geom g;
    int64_t ys[4];
    sg_tensor *x = pool_args(&a, 4, &g, ys);
    sg_tensor *dy = shaped(&a, 2, "dy", 4, ys, 0);
    sg_tensor *dx = out_like(&a, 3, "dx", x);
    SGL_CHECK(L, KERNEL(&a, avgpool2d_backward_data)(F(dy), F(dx), &g));
    return ret(L, 3);
}

/* ---- loss ------------------------------------------------------------------------ */

static int cross_entropy(lua_State *L)
{
    sgl_args a = sgl_args_of(L, "cross_entropy");
    sg_tensor *z = sgl_arg_in(&a, 1, "logits", SG_F32);
    sg_tensor *lab = sgl_arg_in(&a, 2, "labels", SG_I32);
    sgl_arg_ndim(&a, z, "logits", 2);
    char b1[128], b2[128];
    if (sg_tensor_numel(lab) != z->size[0] || lab->ndim != 1)
        fail(&a, "labels %s must be a 1-d tensor of %lld (logits %s)", shp(lab, b1),
             (long long)z->size[0], shp(z, b2));
    sg_tensor *dz = lua_isnoneornil(L, 3) ? NULL : out_like(&a, 3, "dlogits", z);
#ifdef SG_HAVE_CUDA
    if (a.dev == SG_CUDA && !lua_isnoneornil(L, 4)) {
        SGL_CHECK(L, sg_cuda_cross_entropy_queue(F(z), (const int32_t *)sg_tensor_data(lab), F(dz),
                                                 z->size[0], z->size[1], sgl_checkreadback(L, 4)));
        lua_settop(L, 4);
        return 1;
    }
#endif
    double loss;
    int64_t correct;
    SGL_CHECK(L, KERNEL(&a, cross_entropy)(F(z), (const int32_t *)sg_tensor_data(lab), F(dz),
                                           z->size[0], z->size[1], &loss, &correct));
    lua_pushnumber(L, loss);
    lua_pushinteger(L, correct);
    return 2;
}

/* ---- flat-vector updates --------------------------------------------------------- */

/* A float32 vector (any shape) of n elements. */
static sg_tensor *vec_arg(const sgl_args *a, int idx, const char *name, int64_t n)
{
    sg_tensor *t = sgl_arg_in(a, idx, name, SG_F32);
    char b[128];
    if (sg_tensor_numel(t) != n)
        fail(a, "%s %s has %lld elements, expected %lld", name, shp(t, b),
             (long long)sg_tensor_numel(t), (long long)n);
    return t;
}

/* The first vector, a (arg 1), gives the length. */
static sg_tensor *vec_first(const sgl_args *a, int64_t *n)
{
    sg_tensor *t = sgl_arg_in(a, 1, "a", SG_F32);
    *n = sg_tensor_numel(t);
    return t;
}

static int vec_axpy(lua_State *L)
{
    sgl_args a = sgl_args_of(L, "vec_axpy");
    int64_t n;
    sg_tensor *va = vec_first(&a, &n);
    sg_tensor *x = vec_arg(&a, 2, "x", n);
    sg_tensor *out = vec_arg(&a, 3, "out", n);
    float alpha = (float)luaL_checknumber(L, 4);
    SGL_CHECK(L, VEC_KERNEL(&a, vec_axpy)(F(va), F(x), F(out), n, alpha));
    return ret(L, 3);
}

static int vec_axpbypz(lua_State *L)
{
    sgl_args a = sgl_args_of(L, "vec_axpbypz");
    int64_t n;
    sg_tensor *va = vec_first(&a, &n);
    sg_tensor *x = vec_arg(&a, 2, "x", n);
    sg_tensor *y = vec_arg(&a, 3, "y", n);
    sg_tensor *out = vec_arg(&a, 4, "out", n);
    float alpha = (float)luaL_checknumber(L, 5), beta = (float)luaL_checknumber(L, 6);
    SGL_CHECK(L, VEC_KERNEL(&a, vec_axpbypz)(F(va), F(x), F(y), F(out), n, alpha, beta));
    return ret(L, 4);
}

static int vec_scale_add(lua_State *L)
{
    sgl_args a = sgl_args_of(L, "vec_scale_add");
    int64_t n;
    sg_tensor *va = vec_first(&a, &n);
    sg_tensor *x = vec_arg(&a, 2, "x", n);
    sg_tensor *out = vec_arg(&a, 3, "out", n);
    float s = (float)luaL_checknumber(L, 4), alpha = (float)luaL_checknumber(L, 5);
    SGL_CHECK(L, VEC_KERNEL(&a, vec_scale_add)(F(va), F(x), F(out), n, s, alpha));
    return ret(L, 3);
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
    { "batchnorm_backward", batchnorm_backward },
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
