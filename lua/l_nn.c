/*
 * l_nn.c - Lua binding of the layer ops (core/ops.h), for both devices: the
 * `sgdsa.core.nn` table.
 *
 * Each function reads its Lua arguments (tensors, nil for an optional one,
 * numbers, `pair`s) and calls the op of core/ops.h (the dispatch rule:
 * docs/ARCHITECTURE.md, Layers), in the argument order of kernels/cpu/nn.h.
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
 *   pad2d(x, y, p)                         y := NxCx(H+2p)x(W+2p), zeros around x
 *   crop2d(dy, dx, p)                      dx := the interior of dy
 */
#include "binding.h"
#include "ops.h"

#define T(i) sgl_checktensor(L, (i))
#define OPT(i) sgl_opttensor(L, (i))

/* Return the argument at idx (the function's first output). */
static int ret(lua_State *L, int idx)
{
    lua_pushvalue(L, idx);
    return 1;
}

/* Raise the op's error, or return argument `out`. */
static int done(lua_State *L, int rc, int out)
{
    return rc ? sgl_error(L) : ret(L, out);
}

/* A number or a {h, w} table into v; `def` when absent (def < 0: required). */
static void pair(lua_State *L, const char *op, int idx, int64_t def, int64_t v[2],
                 const char *name)
{
    if (lua_isnoneornil(L, idx)) {
        if (def < 0)
            luaL_error(L, "%s: missing %s (a number or {h, w})", op, name);
        v[0] = v[1] = def;
        return;
    }
    if (lua_istable(L, idx)) {
        lua_geti(L, idx, 1);
        lua_geti(L, idx, 2);
        int ok1, ok2;
        v[0] = lua_tointegerx(L, -2, &ok1);
        v[1] = lua_tointegerx(L, -1, &ok2);
        lua_pop(L, 2);
        if (!ok1 || !ok2)
            luaL_error(L, "%s: %s must be a number or {h, w} of integers", op, name);
        return;
    }
    int ok;
    v[0] = v[1] = lua_tointegerx(L, idx, &ok);
    if (!ok)
        luaL_error(L, "%s: %s must be an integer or {h, w}, got %s", op, name,
                   luaL_typename(L, idx));
}

/* ---- conv2d ----------------------------------------------------------------------- */

/* The three passes, pass 0 forward, 1 backward-data, 2 backward-params:
 * (ws, x, y|dy, w|dx|dw, b|w|db, stride = 1, pad = 0); each returns its output. */
static int conv2d_pass(lua_State *L, int pass)
{
    static const char *const names[] = { "conv2d_forward", "conv2d_backward_data",
                                         "conv2d_backward_params" };
    sg_tensor *ws = OPT(1), *x = T(2), *t3 = T(3), *t4 = T(4), *t5 = pass == 1 ? T(5) : OPT(5);
    int64_t s[2], p[2];
    pair(L, names[pass], 6, 1, s, "stride");
    pair(L, names[pass], 7, 0, p, "pad");
    const int rc = pass == 0   ? sg_conv2d_forward(ws, x, t3, t4, t5, s, p)
                   : pass == 1 ? sg_conv2d_backward_data(ws, x, t3, t4, t5, s, p)
                               : sg_conv2d_backward_params(ws, x, t3, t4, t5, s, p);
    return done(L, rc, pass == 0 ? 3 : 4);
}

static int conv2d_forward(lua_State *L) { return conv2d_pass(L, 0); }
static int conv2d_backward_data(lua_State *L) { return conv2d_pass(L, 1); }
static int conv2d_backward_params(lua_State *L) { return conv2d_pass(L, 2); }

static int conv2d_output_size(lua_State *L)
{
    int64_t h = luaL_checkinteger(L, 1), w = luaL_checkinteger(L, 2);
    int64_t kh = luaL_checkinteger(L, 3), kw = luaL_checkinteger(L, 4);
    int64_t s[2], p[2], oh, ow;
    pair(L, "conv2d_output_size", 5, 1, s, "stride");
    pair(L, "conv2d_output_size", 6, 0, p, "pad");
    SGL_CHECK(L, sg_conv2d_output_size(h, w, kh, kw, s, p, &oh, &ow));
    lua_pushinteger(L, oh);
    lua_pushinteger(L, ow);
    return 2;
}

/* ---- linear ---------------------------------------------------------------------- */

static int linear_forward(lua_State *L)
{
    return done(L, sg_linear_forward(T(1), T(2), T(3), OPT(4)), 2);
}

static int linear_backward_data(lua_State *L)
{
    return done(L, sg_linear_backward_data(T(1), T(2), T(3)), 2);
}

static int linear_backward_params(lua_State *L)
{
    return done(L, sg_linear_backward_params(T(1), T(2), T(3), OPT(4)), 3);
}

/* ---- batchnorm, global pooling ----------------------------------------------------- */

static int bn_forward(lua_State *L, int training)
{
    sg_tensor *x = T(1), *y = T(2), *gamma = OPT(3), *beta = OPT(4), *sm = T(5), *si = T(6);
    sg_tensor *rm = OPT(7), *rv = OPT(8);
    double eps = luaL_optnumber(L, 9, 1e-5);
    double momentum = training ? luaL_optnumber(L, 10, 0.1) : 0.0;
    int update = training && (lua_isnoneornil(L, 11) ? 1 : lua_toboolean(L, 11));
    int sync = training && lua_toboolean(L, 12);
    return done(L, sg_batchnorm_forward(x, y, gamma, beta, sm, si, rm, rv, eps, momentum,
                                        training, update, sync), 2);
}

static int batchnorm_forward_train(lua_State *L) { return bn_forward(L, 1); }
static int batchnorm_forward_eval(lua_State *L) { return bn_forward(L, 0); }

static int batchnorm_backward_data(lua_State *L)
{
    sg_tensor *x = T(1), *dy = T(2), *dx = T(3), *gamma = OPT(4), *sm = T(5), *si = T(6);
    luaL_checkany(L, 7);
    int training = lua_toboolean(L, 7);
    return done(L, sg_batchnorm_backward_data(x, dy, dx, gamma, sm, si, training,
                                              training && lua_toboolean(L, 8)), 3);
}

static int batchnorm_backward_params(lua_State *L)
{
    SGL_CHECK(L, sg_batchnorm_backward_params(T(1), T(2), OPT(3), OPT(4), T(5), T(6)));
    return 0;
}

static int batchnorm_backward(lua_State *L)
{
    sg_tensor *x = T(1), *dy = T(2);
    const int want_dx = !(lua_isboolean(L, 3) && !lua_toboolean(L, 3));
    sg_tensor *dx = want_dx ? T(3) : NULL;
    sg_tensor *gamma = OPT(4), *dg = OPT(5), *db = OPT(6), *sm = T(7), *si = T(8);
    luaL_checkany(L, 9);
    SGL_CHECK(L, sg_batchnorm_backward(x, dy, dx, gamma, dg, db, sm, si, lua_toboolean(L, 9)));
    return want_dx ? ret(L, 3) : 0;
}

static int batchnorm_apply(lua_State *L)
{
    return done(L, sg_batchnorm_apply(T(1), T(2), OPT(3), OPT(4), T(5), T(6)), 2);
}

static int global_avgpool_forward(lua_State *L)
{
    return done(L, sg_global_avgpool_forward(T(1), T(2)), 2);
}

static int global_avgpool_backward_data(lua_State *L)
{
    return done(L, sg_global_avgpool_backward_data(T(1), T(2), T(3)), 3);
}

/* ---- relu, dropout --------------------------------------------------------------- */

static int relu_forward(lua_State *L)
{
    return done(L, sg_relu_forward(T(1), T(2)), 2);
}

static int relu_backward_data(lua_State *L)
{
    return done(L, sg_relu_backward_data(T(1), T(2), T(3)), 3);
}

static int dropout_mask(lua_State *L)
{
    sg_rng *r = sgl_checkrng(L, 1);
    sg_tensor *m = T(2), *x = T(3);
    return done(L, sg_dropout_mask(r, m, x, luaL_checknumber(L, 4)), 2);
}

static int dropout_forward(lua_State *L)
{
    return done(L, sg_dropout_forward(T(1), T(2), T(3)), 2);
}

static int dropout_backward_data(lua_State *L)
{
    return done(L, sg_dropout_backward_data(T(1), T(2), T(3)), 2);
}

/* ---- pooling --------------------------------------------------------------------- */

/* A pooling window: kernel, stride and pad, each {h, w}. */
typedef struct {
    int64_t k[2], s[2], p[2];
} pool_win;

/* kernel, stride (default: the kernel) and pad from args kidx..kidx+2. */
static pool_win pool_sizes(lua_State *L, const char *op, int kidx)
{
    pool_win w;
    pair(L, op, kidx, -1, w.k, "kernel");
    if (lua_isnoneornil(L, kidx + 1)) {
        w.s[0] = w.k[0];
        w.s[1] = w.k[1];
    } else {
        pair(L, op, kidx + 1, 1, w.s, "stride");
    }
    pair(L, op, kidx + 2, 0, w.p, "pad");
    return w;
}

static int maxpool2d_forward(lua_State *L)
{
    sg_tensor *x = T(1), *y = T(2), *idx = OPT(3);
    const pool_win w = pool_sizes(L, "maxpool2d_forward", 4);
    return done(L, sg_maxpool2d_forward(x, y, idx, w.k, w.s, w.p), 2);
}

static int maxpool2d_backward_data(lua_State *L)
{
    sg_tensor *x = T(1), *dy = T(2), *dx = T(3), *idx = T(4);
    const pool_win w = pool_sizes(L, "maxpool2d_backward_data", 5);
    return done(L, sg_maxpool2d_backward_data(x, dy, dx, idx, w.k, w.s, w.p), 3);
}

static int avgpool2d_forward(lua_State *L)
{
    sg_tensor *x = T(1), *y = T(2);
    const pool_win w = pool_sizes(L, "avgpool2d_forward", 3);
    return done(L, sg_avgpool2d_forward(x, y, w.k, w.s, w.p), 2);
}

static int avgpool2d_backward_data(lua_State *L)
{
    sg_tensor *x = T(1), *dy = T(2), *dx = T(3);
    const pool_win w = pool_sizes(L, "avgpool2d_backward_data", 4);
    return done(L, sg_avgpool2d_backward_data(x, dy, dx, w.k, w.s, w.p), 3);
}

/* ---- padding --------------------------------------------------------------------- */

static int pad2d(lua_State *L)
{
    sg_tensor *x = T(1), *y = T(2);
    return done(L, sg_pad2d(x, y, luaL_checkinteger(L, 3)), 2);
}

static int crop2d(lua_State *L)
{
    sg_tensor *dy = T(1), *dx = T(2);
    return done(L, sg_crop2d(dy, dx, luaL_checkinteger(L, 3)), 2);
}

/* ---- loss ------------------------------------------------------------------------ */

static int cross_entropy(lua_State *L)
{
    sg_tensor *z = T(1), *lab = T(2), *dz = OPT(3);
    if (z->storage->device == SG_CUDA && !lua_isnoneornil(L, 4)) {
        SGL_CHECK(L, sg_cross_entropy_queue(z, lab, dz, sgl_checkreadback(L, 4)));
        lua_settop(L, 4);
        return 1;
    }
    double loss;
    int64_t correct;
    SGL_CHECK(L, sg_cross_entropy(z, lab, dz, &loss, &correct));
    lua_pushnumber(L, loss);
    lua_pushinteger(L, correct);
    return 2;
}

/* ---- flat-vector updates --------------------------------------------------------- */

static int vec_axpy(lua_State *L)
{
    sg_tensor *a = T(1), *x = T(2), *out = T(3);
    return done(L, sg_vec_axpy(a, x, out, (float)luaL_checknumber(L, 4)), 3);
}

static int vec_axpbypz(lua_State *L)
{
    sg_tensor *a = T(1), *x = T(2), *y = T(3), *out = T(4);
    float alpha = (float)luaL_checknumber(L, 5), beta = (float)luaL_checknumber(L, 6);
    return done(L, sg_vec_axpbypz(a, x, y, out, alpha, beta), 4);
}

static int vec_scale_add(lua_State *L)
{
    sg_tensor *a = T(1), *x = T(2), *out = T(3);
    float s = (float)luaL_checknumber(L, 4), alpha = (float)luaL_checknumber(L, 5);
    return done(L, sg_vec_scale_add(a, x, out, s, alpha), 3);
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
    { "pad2d", pad2d },
    { "crop2d", crop2d },
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
