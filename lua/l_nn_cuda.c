/*
 * l_nn_cuda.c - the GPU side of the Lua binding: the `sgdsa.core.cuda` table
 * and device dispatch for the layer functions of `sgdsa.core.nn`.
 *
 * core.cuda (every build):
 *   available()            -> true | false, reason
 *   device_count()         -> n (0 without a driver/GPU or without the backend)
 *   device_name()          -> "NVIDIA H200 (sm_90, 139.8 GiB)" | nil, reason
 *   synchronize()          waits for queued GPU work (no-op without CUDA)
 *   set_tf32(bool)         -> previous; TF32 for GEMMs and convolutions (off by default)
 *   set_deterministic(bool)-> previous; deterministic cuDNN algorithms only
 *   memory_stats()         -> {in_use=, cached=, peak_in_use=, device_allocs=,
 *                              device_frees=, pool_hits=} | nil, reason
 *   empty_cache()          gives the pool's free blocks back to the driver
 *   input_copy(dst, src)   copies a cpu tensor into a cuda tensor of the same
 *                          size on the copy stream (overlaps compute); the
 *                          source must stay untouched until input_wait()
 *   input_wait()
 *   pad2d(x, y, p)         -> y: N x C x (H+2p) x (W+2p), x zero-padded (cuda x; y
 *                          resized, moved to the GPU when a cpu buffer of its own)
 *   crop2d(dy, dx, p)      -> dx: N x C x H x W, the interior of dy (pad2d's backward)
 *   use_pinned_loader_memory(on) -> previous; data loaders created while on
 *                          hand out batches in pinned host memory
 *                          (sg_cuda_host_alloc), so copies to the GPU are
 *                          asynchronous DMA; off by default
 * core.cuda_available is core.cuda.available (what sgdsa.nn asks).
 *
 * Dispatch (only when built with CUDA): this part is registered after
 * sgl_open_nn and replaces each function of core.nn by a closure holding the
 * original. A call whose tensor arguments include one on the GPU runs the
 * CUDA kernel (kernels/cuda/nn_cuda.h) with the same argument list, checks
 * and messages as lua/l_nn.c; any other call goes to the original CPU
 * function unchanged. On the GPU path:
 *  - every input, parameter and gradient must be a contiguous CUDA tensor; a
 *    CPU one is an error naming both devices;
 *  - an OUTPUT buffer (y, dx, save_*, indices, mask, dlogits: overwritten and
 *    resized anyway) that is still on the CPU and owns its storage is moved to
 *    the GPU (its storage replaced), so module buffers follow their inputs;
 *  - the workspace argument is ignored: cuDNN's workspace is the backend's own
 *    scratch buffer, sized by the algorithms chosen.
 */
#include <stdlib.h>
#include <string.h>

#include "binding.h"
#include "device.h"
#include "l_data.h"
#ifdef SG_HAVE_CUDA
#include "nn_cuda.h"
#endif


/* ---- core.cuda ----------------------------------------------------------------- */

static int l_available(lua_State *L)
{
    if (sg_cuda_available()) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushboolean(L, 0);
    lua_pushstring(L, sg_geterr());
    return 2;
}

static int l_device_count(lua_State *L)
{
#ifdef SG_HAVE_CUDA
    int n = sg_cuda_device_count();
    lua_pushinteger(L, n > 0 ? n : 0);
#else
    lua_pushinteger(L, 0);
#endif
    return 1;
}

static int l_device_name(lua_State *L)
{
#ifdef SG_HAVE_CUDA
    char buf[256];
    if (sg_cuda_available() && sg_cuda_device_name(buf, sizeof buf) == 0) {
        lua_pushstring(L, buf);
        return 1;
    }
#else
    sg_cuda_available();
#endif
    lua_pushnil(L);
    lua_pushstring(L, sg_geterr());
    return 2;
}

static int l_synchronize(lua_State *L)
{
#ifdef SG_HAVE_CUDA
    if (sg_cuda_device_count() > 0)
        SGL_CHECK(L, sg_cuda_synchronize());
#endif
    (void)L;
    return 0;
}

static int l_set_tf32(lua_State *L)
{
    luaL_checkany(L, 1);
#ifdef SG_HAVE_CUDA
    lua_pushboolean(L, sg_cuda_get_tf32());
    sg_cuda_set_tf32(lua_toboolean(L, 1));
#else
    lua_pushboolean(L, 0);
#endif
    return 1;
}

static int l_set_deterministic(lua_State *L)
{
    luaL_checkany(L, 1);
#ifdef SG_HAVE_CUDA
    lua_pushboolean(L, sg_cuda_get_deterministic());
    sg_cuda_set_deterministic(lua_toboolean(L, 1));
#else
    lua_pushboolean(L, 0);
#endif
    return 1;
}

static int l_memory_stats(lua_State *L)
{
#ifdef SG_HAVE_CUDA
    if (sg_cuda_available()) {
        sg_cuda_mem_stats s = sg_cuda_get_mem_stats();
        lua_createtable(L, 0, 6);
        lua_pushinteger(L, (lua_Integer)s.in_use); lua_setfield(L, -2, "in_use");
        lua_pushinteger(L, (lua_Integer)s.cached); lua_setfield(L, -2, "cached");
        lua_pushinteger(L, (lua_Integer)s.peak_in_use); lua_setfield(L, -2, "peak_in_use");
        lua_pushinteger(L, (lua_Integer)s.device_allocs); lua_setfield(L, -2, "device_allocs");
        lua_pushinteger(L, (lua_Integer)s.device_frees); lua_setfield(L, -2, "device_frees");
        lua_pushinteger(L, (lua_Integer)s.pool_hits); lua_setfield(L, -2, "pool_hits");
        return 1;
    }
#else
    sg_cuda_available();
#endif
    lua_pushnil(L);
    lua_pushstring(L, sg_geterr());
    return 2;
}

static int l_empty_cache(lua_State *L)
{
#ifdef SG_HAVE_CUDA
    if (sg_cuda_device_count() > 0)
        SGL_CHECK(L, sg_cuda_empty_cache());
#endif
    (void)L;
    return 0;
}

static int l_input_copy(lua_State *L)
{
    sg_tensor *dst = sgl_checktensor(L, 1), *src = sgl_checktensor(L, 2);
#ifdef SG_HAVE_CUDA
    char a[128], b[128];
    if (dst->storage->device != SG_CUDA || src->storage->device != SG_CPU)
        return luaL_error(L, "input_copy: needs a cuda destination and a cpu source, got %s "
                          "and %s", sg_device_name(dst->storage->device),
                          sg_device_name(src->storage->device));
    if (dst->dtype != src->dtype || sg_tensor_numel(dst) != sg_tensor_numel(src) ||
        !sg_tensor_is_contiguous(dst) || !sg_tensor_is_contiguous(src))
        return luaL_error(L, "input_copy: %s %s into %s %s: needs contiguous tensors of one "
                          "dtype and size", sg_dtype_name(src->dtype),
                          sg_shape_str(src, a, sizeof a), sg_dtype_name(dst->dtype),
                          sg_shape_str(dst, b, sizeof b));
    SGL_CHECK(L, sg_cuda_input_copy(sg_tensor_data(dst), sg_tensor_data(src),
                                    (size_t)sg_tensor_numel(src) * sg_dtype_size(src->dtype)));
    lua_settop(L, 1);
    return 1;
#else
    (void)dst;
    (void)src;
    sg_cuda_available();
    return sgl_error(L);
#endif
}

static int l_input_wait(lua_State *L)
{
#ifdef SG_HAVE_CUDA
    if (sg_cuda_device_count() > 0)
        SGL_CHECK(L, sg_cuda_input_wait());
#endif
    (void)L;
    return 0;
}

static int pinned_loaders;

static int l_use_pinned_loader_memory(lua_State *L)
{
    luaL_checkany(L, 1);
    int on = lua_toboolean(L, 1), prev = pinned_loaders;
#ifdef SG_HAVE_CUDA
    if (on && !sg_cuda_available())
        return sgl_error(L);
    if (on)
        sgl_data_set_host_allocator(sg_cuda_host_alloc, sg_cuda_host_free, NULL);
    else
        sgl_data_set_host_allocator(NULL, NULL, NULL);
    pinned_loaders = on;
#else
    if (on) {
        sg_cuda_available();
        return sgl_error(L);
    }
#endif
    lua_pushboolean(L, prev);
    return 1;
}

#ifdef SG_HAVE_CUDA
/* ---- argument checks for the GPU path ---------------------------------------------- */

static const char *shp(const sg_tensor *t, char *buf) { return sg_shape_str(t, buf, 128); }

static sg_tensor *c_in(lua_State *L, int idx, const char *op, const char *name, sg_dtype dt)
{
    sg_tensor *t = sgl_checktensor(L, idx);
    char b[128];
    if (t->storage->device != SG_CUDA) {
        sg_seterr("%s: %s %s is on %s while other arguments are on cuda; move it with :cuda() "
                  "(or the others with :cpu())", op, name, shp(t, b),
                  sg_device_name(t->storage->device));
        sgl_error(L);
    }
    if (t->dtype != dt) {
        sg_seterr("%s: %s %s is %s, expected %s (cuda)", op, name, shp(t, b),
                  sg_dtype_name(t->dtype), sg_dtype_name(dt));
        sgl_error(L);
    }
    if (!sg_tensor_is_contiguous(t)) {
        sg_seterr("%s: %s %s is not contiguous (cuda); use :contiguous()", op, name, shp(t, b));
        sgl_error(L);
    }
    return t;
}

/* An output: moved to the GPU if it is a CPU buffer owning its storage, then resized. */
static sg_tensor *c_out(lua_State *L, int idx, const char *op, const char *name, sg_dtype dt,
                        int ndim, const int64_t *size)
{
    sg_tensor *t = sgl_checktensor(L, idx);
    char b[128];
    if (t->dtype != dt) {
        sg_seterr("%s: output %s %s is %s, expected %s (cuda)", op, name, shp(t, b),
                  sg_dtype_name(t->dtype), sg_dtype_name(dt));
        sgl_error(L);
    }
    if (t->storage->device != SG_CUDA) {
        if (t->storage->refcount != 1) {
            sg_seterr("%s: output %s %s is on %s and shares its storage, while the inputs are "
                      "on cuda; give a cuda tensor", op, name, shp(t, b),
                      sg_device_name(t->storage->device));
            sgl_error(L);
        }
        int64_t n = 1;
        for (int i = 0; i < ndim; i++)
            n *= size[i];
        sg_storage *s = sg_storage_new((size_t)(n > 0 ? n : 1) * sg_dtype_size(dt), SG_CUDA);
        if (!s) {
            sg_adderr("%s: output %s moved to cuda", op, name);
            sgl_error(L);
        }
        sg_storage_release(t->storage);
        t->storage = s;
        t->offset = 0;
    } else if (!sg_tensor_is_contiguous(t)) {
        sg_seterr("%s: output %s %s is not contiguous (cuda)", op, name, shp(t, b));
        sgl_error(L);
    }
    if (sg_tensor_resize(t, ndim, size)) {
        sg_adderr("%s: output %s", op, name);
        sgl_error(L);
    }
    return t;
}

static sg_tensor *c_shaped(lua_State *L, int idx, const char *op, const char *name, int ndim,
                           const int64_t *size, int optional)
{
    if (optional && lua_isnoneornil(L, idx))
        return NULL;
    sg_tensor *t = c_in(L, idx, op, name, SG_F32);
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
        sg_seterr("%s: %s is %s, expected %s (cuda)", op, name, shp(t, b), want);
        sgl_error(L);
    }
    return t;
}

static sg_tensor *c_same_as(lua_State *L, int idx, const char *op, const char *name,
                            const sg_tensor *like, const char *like_name)
{
    sg_tensor *t = c_in(L, idx, op, name, SG_F32);
    if (!sg_tensor_same_shape(t, like)) {
        char a[128], b[128];
        sg_seterr("%s: %s %s does not match %s %s (cuda)", op, name, shp(t, a), like_name,
                  shp(like, b));
        sgl_error(L);
    }
    return t;
}

static void c_ndim(lua_State *L, const sg_tensor *t, const char *op, const char *name, int ndim)
{
    if (t->ndim != ndim) {
        char b[128];
        sg_seterr("%s: %s %s must be %d-d (cuda)", op, name, shp(t, b), ndim);
        sgl_error(L);
    }
}

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

static float *F(const sg_tensor *t) { return t ? sg_f32(t) : NULL; }

/* ---- conv2d ------------------------------------------------------------------------ */

static void conv_geom(lua_State *L, const char *op, const sg_tensor *x, const sg_tensor *w,
                      int stride_idx, sg_conv2d_geom *g)
{
    char a[128], b[128];
    c_ndim(L, x, op, "input", 4);
    c_ndim(L, w, op, "weight", 4);
    if (x->size[1] != w->size[1]) {
        sg_seterr("%s: input %s has %lld channels, weight %s expects %lld (cuda)", op,
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

static int conv2d_forward(lua_State *L)
{
    const char *op = "conv2d_forward";
    sg_tensor *x = c_in(L, 2, op, "input", SG_F32);
    sg_tensor *w = c_in(L, 4, op, "weight", SG_F32);
    sg_conv2d_geom g;
    conv_geom(L, op, x, w, 6, &g);
    sg_tensor *b = c_shaped(L, 5, op, "bias", 1, &g.k, 1);
    int64_t ys[4] = {g.n, g.k, g.oh, g.ow};
    sg_tensor *y = c_out(L, 3, op, "y", SG_F32, 4, ys);
    SGL_CHECK(L, sg_cuda_conv2d_forward(NULL, F(x), F(y), F(w), F(b), &g));
    lua_pushvalue(L, 3);
    return 1;
}

static int conv2d_backward_data(lua_State *L)
{
    const char *op = "conv2d_backward_data";
    sg_tensor *x = c_in(L, 2, op, "input", SG_F32);
    sg_tensor *w = c_in(L, 5, op, "weight", SG_F32);
    sg_conv2d_geom g;
    conv_geom(L, op, x, w, 6, &g);
    int64_t ys[4] = {g.n, g.k, g.oh, g.ow};
    sg_tensor *dy = c_shaped(L, 3, op, "dy", 4, ys, 0);
    sg_tensor *dx = c_out(L, 4, op, "dx", SG_F32, 4, x->size);
    SGL_CHECK(L, sg_cuda_conv2d_backward_data(NULL, F(dy), F(dx), F(w), &g));
    lua_pushvalue(L, 4);
    return 1;
}

static int conv2d_backward_params(lua_State *L)
{
    const char *op = "conv2d_backward_params";
    sg_tensor *x = c_in(L, 2, op, "input", SG_F32);
    sg_tensor *dw = c_in(L, 4, op, "dw", SG_F32);
    sg_conv2d_geom g;
    conv_geom(L, op, x, dw, 6, &g);
    int64_t ys[4] = {g.n, g.k, g.oh, g.ow};
    sg_tensor *dy = c_shaped(L, 3, op, "dy", 4, ys, 0);
    sg_tensor *db = c_shaped(L, 5, op, "bias", 1, &g.k, 1);
    SGL_CHECK(L, sg_cuda_conv2d_backward_params(NULL, F(x), F(dy), F(dw), F(db), &g));
    lua_pushvalue(L, 4);
    return 1;
}

/* ---- linear ------------------------------------------------------------------------ */

static void lin_check(lua_State *L, const char *op, const sg_tensor *x, const sg_tensor *w)
{
    char a[128], b[128];
    c_ndim(L, x, op, "input", 2);
    c_ndim(L, w, op, "weight", 2);
    if (x->size[1] != w->size[1]) {
        sg_seterr("%s: input %s has %lld features, weight %s expects %lld (cuda)", op,
                  shp(x, a), (long long)x->size[1], shp(w, b), (long long)w->size[1]);
        sgl_error(L);
    }
}

static int linear_forward(lua_State *L)
{
    const char *op = "linear_forward";
    sg_tensor *x = c_in(L, 1, op, "input", SG_F32);
    sg_tensor *w = c_in(L, 3, op, "weight", SG_F32);
    lin_check(L, op, x, w);
    int64_t out = w->size[0];
    sg_tensor *b = c_shaped(L, 4, op, "bias", 1, &out, 1);
    int64_t ys[2] = {x->size[0], out};
    sg_tensor *y = c_out(L, 2, op, "y", SG_F32, 2, ys);
    SGL_CHECK(L, sg_cuda_linear_forward(F(x), F(y), F(w), F(b), x->size[0], x->size[1], out));
    lua_pushvalue(L, 2);
    return 1;
}

static int linear_backward_data(lua_State *L)
{
    const char *op = "linear_backward_data";
    sg_tensor *dy = c_in(L, 1, op, "dy", SG_F32);
    sg_tensor *w = c_in(L, 3, op, "weight", SG_F32);
    c_ndim(L, dy, op, "dy", 2);
    c_ndim(L, w, op, "weight", 2);
    if (dy->size[1] != w->size[0]) {
        char a[128], b[128];
        sg_seterr("%s: dy %s has %lld features, weight %s has %lld outputs (cuda)", op,
                  shp(dy, a), (long long)dy->size[1], shp(w, b), (long long)w->size[0]);
        return sgl_error(L);
    }
    int64_t xs[2] = {dy->size[0], w->size[1]};
    sg_tensor *dx = c_out(L, 2, op, "dx", SG_F32, 2, xs);
    SGL_CHECK(L, sg_cuda_linear_backward_data(F(dy), F(dx), F(w), xs[0], xs[1], w->size[0]));
    lua_pushvalue(L, 2);
    return 1;
}

static int linear_backward_params(lua_State *L)
{
    const char *op = "linear_backward_params";
    sg_tensor *x = c_in(L, 1, op, "input", SG_F32);
    sg_tensor *dw = c_in(L, 3, op, "dw", SG_F32);
    lin_check(L, op, x, dw);
    int64_t ys[2] = {x->size[0], dw->size[0]};
    sg_tensor *dy = c_shaped(L, 2, op, "dy", 2, ys, 0);
    sg_tensor *db = c_shaped(L, 4, op, "db", 1, &ys[1], 1);
    SGL_CHECK(L, sg_cuda_linear_backward_params(F(x), F(dy), F(dw), F(db), x->size[0],
                                                x->size[1], ys[1]));
    lua_pushvalue(L, 3);
    return 1;
}

/* ---- batchnorm --------------------------------------------------------------------- */

static void bn_dims(lua_State *L, const char *op, const sg_tensor *x, int64_t *n, int64_t *c,
                    int64_t *hw)
{
    if (x->ndim < 2) {
        char a[128];
        sg_seterr("%s: input %s must be NxC or NxCx... (cuda)", op, shp(x, a));
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
    sg_tensor *x = c_in(L, 1, op, "input", SG_F32);
    int64_t n, c, hw;
    bn_dims(L, op, x, &n, &c, &hw);
    sg_tensor *gamma = c_shaped(L, 3, op, "weight", 1, &c, 1);
    sg_tensor *beta = c_shaped(L, 4, op, "bias", 1, &c, 1);
    sg_tensor *rm = c_shaped(L, 7, op, "running_mean", 1, &c, training);
    sg_tensor *rv = c_shaped(L, 8, op, "running_var", 1, &c, training);
    double eps = luaL_optnumber(L, 9, 1e-5);
    double momentum = training ? luaL_optnumber(L, 10, 0.1) : 0.0;
    int update = training && (lua_isnoneornil(L, 11) ? 1 : lua_toboolean(L, 11));
    if (update && (!rm || !rv))
        return luaL_error(L, "%s: update_running needs running_mean and running_var", op);
    if (!(eps > 0))
        return luaL_error(L, "%s: eps must be positive, got %g", op, eps);
    sg_tensor *sm = c_out(L, 5, op, "save_mean", SG_F32, 1, &c);
    sg_tensor *si = c_out(L, 6, op, "save_invstd", SG_F32, 1, &c);
    sg_tensor *y = c_out(L, 2, op, "y", SG_F32, x->ndim, x->size);
    if (training)
        SGL_CHECK(L, sg_cuda_batchnorm_forward_train(F(x), F(y), F(gamma), F(beta), F(sm), F(si),
                                                     F(rm), F(rv), n, c, hw, eps, momentum,
                                                     update));
    else
        SGL_CHECK(L, sg_cuda_batchnorm_forward_eval(F(x), F(y), F(gamma), F(beta), F(sm), F(si),
                                                    F(rm), F(rv), n, c, hw, eps));
    lua_pushvalue(L, 2);
    return 1;
}

static int batchnorm_forward_train(lua_State *L) { return bn_forward(L, 1); }
static int batchnorm_forward_eval(lua_State *L) { return bn_forward(L, 0); }

static int batchnorm_backward_data(lua_State *L)
{
    const char *op = "batchnorm_backward_data";
    sg_tensor *x = c_in(L, 1, op, "input", SG_F32);
    int64_t n, c, hw;
    bn_dims(L, op, x, &n, &c, &hw);
    sg_tensor *dy = c_same_as(L, 2, op, "dy", x, "input");
    sg_tensor *gamma = c_shaped(L, 4, op, "weight", 1, &c, 1);
    sg_tensor *sm = c_shaped(L, 5, op, "save_mean", 1, &c, 0);
    sg_tensor *si = c_shaped(L, 6, op, "save_invstd", 1, &c, 0);
    luaL_checkany(L, 7);
    int training = lua_toboolean(L, 7);
    sg_tensor *dx = c_out(L, 3, op, "dx", SG_F32, x->ndim, x->size);
    SGL_CHECK(L, sg_cuda_batchnorm_backward_data(F(x), F(dy), F(dx), F(gamma), F(sm), F(si), n,
                                                 c, hw, training));
    lua_pushvalue(L, 3);
    return 1;
}

static int batchnorm_backward_params(lua_State *L)
{
    const char *op = "batchnorm_backward_params";
    sg_tensor *x = c_in(L, 1, op, "input", SG_F32);
    int64_t n, c, hw;
    bn_dims(L, op, x, &n, &c, &hw);
    sg_tensor *dy = c_same_as(L, 2, op, "dy", x, "input");
    sg_tensor *dg = c_shaped(L, 3, op, "dweight", 1, &c, 1);
    sg_tensor *db = c_shaped(L, 4, op, "dbias", 1, &c, 1);
    sg_tensor *sm = c_shaped(L, 5, op, "save_mean", 1, &c, 0);
    sg_tensor *si = c_shaped(L, 6, op, "save_invstd", 1, &c, 0);
    SGL_CHECK(L, sg_cuda_batchnorm_backward_params(F(x), F(dy), F(dg), F(db), F(sm), F(si), n, c,
                                                   hw));
    return 0;
}

/* ---- relu, dropout ----------------------------------------------------------------- */

static int relu_forward(lua_State *L)
{
    const char *op = "relu_forward";
    sg_tensor *x = c_in(L, 1, op, "input", SG_F32);
    sg_tensor *y = c_out(L, 2, op, "y", SG_F32, x->ndim, x->size);
    SGL_CHECK(L, sg_cuda_relu_forward(F(x), F(y), sg_tensor_numel(x)));
    lua_pushvalue(L, 2);
    return 1;
}

static int relu_backward_data(lua_State *L)
{
    const char *op = "relu_backward_data";
    sg_tensor *y = c_in(L, 1, op, "output", SG_F32);
    sg_tensor *dy = c_same_as(L, 2, op, "dy", y, "output");
    sg_tensor *dx = c_out(L, 3, op, "dx", SG_F32, y->ndim, y->size);
    SGL_CHECK(L, sg_cuda_relu_backward_data(F(y), F(dy), F(dx), sg_tensor_numel(y)));
    lua_pushvalue(L, 3);
    return 1;
}

static int dropout_mask(lua_State *L)
{
    const char *op = "dropout_mask";
    sg_rng *r = sgl_checkrng(L, 1);
    sg_tensor *x = c_in(L, 3, op, "input", SG_F32);
    double p = luaL_checknumber(L, 4);
    sg_tensor *m = c_out(L, 2, op, "mask", SG_F32, x->ndim, x->size);
    SGL_CHECK(L, sg_cuda_dropout_mask(r, F(m), sg_tensor_numel(x), p));
    lua_pushvalue(L, 2);
    return 1;
}

static int dropout_forward(lua_State *L)
{
    const char *op = "dropout_forward";
    sg_tensor *x = c_in(L, 1, op, "input", SG_F32);
    sg_tensor *m = c_same_as(L, 3, op, "mask", x, "input");
    sg_tensor *y = c_out(L, 2, op, "y", SG_F32, x->ndim, x->size);
    SGL_CHECK(L, sg_cuda_dropout_forward(F(x), F(y), F(m), sg_tensor_numel(x)));
    lua_pushvalue(L, 2);
    return 1;
}

static int dropout_backward_data(lua_State *L)
{
    const char *op = "dropout_backward_data";
    sg_tensor *dy = c_in(L, 1, op, "dy", SG_F32);
    sg_tensor *m = c_same_as(L, 3, op, "mask", dy, "dy");
    sg_tensor *dx = c_out(L, 2, op, "dx", SG_F32, dy->ndim, dy->size);
    SGL_CHECK(L, sg_cuda_dropout_backward_data(F(dy), F(dx), F(m), sg_tensor_numel(dy)));
    lua_pushvalue(L, 2);
    return 1;
}

/* ---- pooling ----------------------------------------------------------------------- */

static void pool_geom(lua_State *L, const char *op, const sg_tensor *x, int kidx,
                      sg_pool2d_geom *g)
{
    c_ndim(L, x, op, "input", 4);
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
    sg_tensor *x = c_in(L, 1, op, "input", SG_F32);
    sg_pool2d_geom g;
    pool_geom(L, op, x, 4, &g);
    int64_t ys[4] = {g.n, g.c, g.oh, g.ow};
    sg_tensor *idx = lua_isnoneornil(L, 3) ? NULL : c_out(L, 3, op, "indices", SG_I32, 4, ys);
    sg_tensor *y = c_out(L, 2, op, "y", SG_F32, 4, ys);
    SGL_CHECK(L, sg_cuda_maxpool2d_forward(F(x), F(y), idx ? (int32_t *)sg_tensor_data(idx) : NULL,
                                           &g));
    lua_pushvalue(L, 2);
    return 1;
}

static int maxpool2d_backward_data(lua_State *L)
{
    const char *op = "maxpool2d_backward_data";
    sg_tensor *x = c_in(L, 1, op, "input", SG_F32);
    sg_pool2d_geom g;
    pool_geom(L, op, x, 5, &g);
    int64_t ys[4] = {g.n, g.c, g.oh, g.ow};
    sg_tensor *dy = c_shaped(L, 2, op, "dy", 4, ys, 0);
    sg_tensor *idx = c_in(L, 4, op, "indices", SG_I32);
    if (!sg_tensor_same_shape(idx, dy)) {
        char a[128], b[128];
        sg_seterr("%s: indices %s do not match dy %s (cuda)", op, shp(idx, a), shp(dy, b));
        return sgl_error(L);
    }
    sg_tensor *dx = c_out(L, 3, op, "dx", SG_F32, 4, x->size);
    SGL_CHECK(L, sg_cuda_maxpool2d_backward_data(F(dy), F(dx),
                                                 (const int32_t *)sg_tensor_data(idx), &g));
    lua_pushvalue(L, 3);
    return 1;
}

static int avgpool2d_forward(lua_State *L)
{
    const char *op = "avgpool2d_forward";
    sg_tensor *x = c_in(L, 1, op, "input", SG_F32);
    sg_pool2d_geom g;
    pool_geom(L, op, x, 3, &g);
    int64_t ys[4] = {g.n, g.c, g.oh, g.ow};
    sg_tensor *y = c_out(L, 2, op, "y", SG_F32, 4, ys);
    SGL_CHECK(L, sg_cuda_avgpool2d_forward(F(x), F(y), &g));
    lua_pushvalue(L, 2);
    return 1;
}

static int avgpool2d_backward_data(lua_State *L)
{
    const char *op = "avgpool2d_backward_data";
    sg_tensor *x = c_in(L, 1, op, "input", SG_F32);
    sg_pool2d_geom g;
    pool_geom(L, op, x, 4, &g);
    int64_t ys[4] = {g.n, g.c, g.oh, g.ow};
    sg_tensor *dy = c_shaped(L, 2, op, "dy", 4, ys, 0);
    sg_tensor *dx = c_out(L, 3, op, "dx", SG_F32, 4, x->size);
    SGL_CHECK(L, sg_cuda_avgpool2d_backward_data(F(dy), F(dx), &g));
    lua_pushvalue(L, 3);
    return 1;
}

static int global_avgpool_forward(lua_State *L)
{
    const char *op = "global_avgpool_forward";
    sg_tensor *x = c_in(L, 1, op, "input", SG_F32);
    int64_t n, c, hw;
    bn_dims(L, op, x, &n, &c, &hw);
    int64_t ys[2] = {n, c};
    sg_tensor *y = c_out(L, 2, op, "y", SG_F32, 2, ys);
    SGL_CHECK(L, sg_cuda_global_avgpool_forward(F(x), F(y), n, c, hw));
    lua_pushvalue(L, 2);
    return 1;
}

static int global_avgpool_backward_data(lua_State *L)
{
    const char *op = "global_avgpool_backward_data";
    sg_tensor *x = c_in(L, 1, op, "input", SG_F32);
    int64_t n, c, hw;
    bn_dims(L, op, x, &n, &c, &hw);
    sg_tensor *dy = c_in(L, 2, op, "dy", SG_F32);
    if (sg_tensor_numel(dy) != n * c || dy->size[0] != n) {
        char a[128], b[128];
        sg_seterr("%s: dy %s does not match input %s (expected %lldx%lld) (cuda)", op,
                  shp(dy, a), shp(x, b), (long long)n, (long long)c);
        return sgl_error(L);
    }
    sg_tensor *dx = c_out(L, 3, op, "dx", SG_F32, x->ndim, x->size);
    SGL_CHECK(L, sg_cuda_global_avgpool_backward_data(F(dy), F(dx), n, c, hw));
    lua_pushvalue(L, 3);
    return 1;
}

/* ---- loss -------------------------------------------------------------------------- */

static int cross_entropy(lua_State *L)
{
    const char *op = "cross_entropy";
    sg_tensor *z = c_in(L, 1, op, "logits", SG_F32);
    sg_tensor *lab = c_in(L, 2, op, "labels", SG_I32);
    c_ndim(L, z, op, "logits", 2);
    if (sg_tensor_numel(lab) != z->size[0] || lab->ndim != 1) {
        char a[128], b[128];
        sg_seterr("%s: labels %s must be a 1-d tensor of %lld (logits %s) (cuda)", op,
                  shp(lab, a), (long long)z->size[0], shp(z, b));
        return sgl_error(L);
    }
    sg_tensor *dz = lua_isnoneornil(L, 3) ? NULL : c_out(L, 3, op, "dlogits", SG_F32, 2, z->size);
    double loss;
    int64_t correct;
    SGL_CHECK(L, sg_cuda_cross_entropy(F(z), (const int32_t *)sg_tensor_data(lab), F(dz),
                                       z->size[0], z->size[1], &loss, &correct));
    lua_pushnumber(L, loss);
    lua_pushinteger(L, correct);
    return 2;
}

/* ---- flat-vector updates ----------------------------------------------------------- */

static sg_tensor *vec_arg(lua_State *L, int idx, const char *op, const char *name, int64_t n)
{
    sg_tensor *t = c_in(L, idx, op, name, SG_F32);
    if (sg_tensor_numel(t) != n) {
        char a[128];
        sg_seterr("%s: %s %s has %lld elements, expected %lld (cuda)", op, name, shp(t, a),
                  (long long)sg_tensor_numel(t), (long long)n);
        sgl_error(L);
    }
    return t;
}

static int vec_axpy(lua_State *L)
{
    const char *op = "vec_axpy";
    sg_tensor *a = c_in(L, 1, op, "a", SG_F32);
    int64_t n = sg_tensor_numel(a);
    sg_tensor *x = vec_arg(L, 2, op, "x", n);
    sg_tensor *out = vec_arg(L, 3, op, "out", n);
    float alpha = (float)luaL_checknumber(L, 4);
    SGL_CHECK(L, sg_cuda_vec_axpy(F(a), F(x), F(out), n, alpha));
    lua_pushvalue(L, 3);
    return 1;
}

static int vec_axpbypz(lua_State *L)
{
    const char *op = "vec_axpbypz";
    sg_tensor *a = c_in(L, 1, op, "a", SG_F32);
    int64_t n = sg_tensor_numel(a);
    sg_tensor *x = vec_arg(L, 2, op, "x", n);
    sg_tensor *y = vec_arg(L, 3, op, "y", n);
    sg_tensor *out = vec_arg(L, 4, op, "out", n);
    float alpha = (float)luaL_checknumber(L, 5), beta = (float)luaL_checknumber(L, 6);
    SGL_CHECK(L, sg_cuda_vec_axpbypz(F(a), F(x), F(y), F(out), n, alpha, beta));
    lua_pushvalue(L, 4);
    return 1;
}

static int vec_scale_add(lua_State *L)
{
    const char *op = "vec_scale_add";
    sg_tensor *a = c_in(L, 1, op, "a", SG_F32);
    int64_t n = sg_tensor_numel(a);
    sg_tensor *x = vec_arg(L, 2, op, "x", n);
    sg_tensor *out = vec_arg(L, 3, op, "out", n);
    float s = (float)luaL_checknumber(L, 4), alpha = (float)luaL_checknumber(L, 5);
    SGL_CHECK(L, sg_cuda_vec_scale_add(F(a), F(x), F(out), n, s, alpha));
    lua_pushvalue(L, 3);
    return 1;
}

/* ---- zero padding (nn.Pad) ------------------------------------------------------- */

static int pad_arg(lua_State *L, int idx, const char *op)
{
    lua_Integer p = luaL_checkinteger(L, idx);
    if (p < 0 || p > (1 << 20))
        return luaL_error(L, "%s: padding must be in [0, 2^20], got %lld", op, (long long)p);
    return (int)p;
}

static int l_pad2d(lua_State *L)
{
    const char *op = "pad2d";
    sg_tensor *x = c_in(L, 1, op, "input", SG_F32);
    c_ndim(L, x, op, "input", 4);
    int64_t p = pad_arg(L, 3, op);
    int64_t ys[4] = {x->size[0], x->size[1], x->size[2] + 2 * p, x->size[3] + 2 * p};
    sg_tensor *y = c_out(L, 2, op, "y", SG_F32, 4, ys);
    if (y->storage == x->storage)
        return luaL_error(L, "%s: y must not share storage with the input", op);
    SGL_CHECK(L, sg_cuda_pad2d(F(x), F(y), x->size[0] * x->size[1], x->size[2], x->size[3], p));
    lua_pushvalue(L, 2);
    return 1;
}

static int l_crop2d(lua_State *L)
{
    const char *op = "crop2d";
    sg_tensor *dy = c_in(L, 1, op, "dy", SG_F32);
    c_ndim(L, dy, op, "dy", 4);
    int64_t p = pad_arg(L, 3, op);
    if (dy->size[2] < 2 * p || dy->size[3] < 2 * p) {
        char a[128];
        sg_seterr("%s: dy %s is smaller than twice the padding %lld (cuda)", op, shp(dy, a),
                  (long long)p);
        return sgl_error(L);
    }
    int64_t xs[4] = {dy->size[0], dy->size[1], dy->size[2] - 2 * p, dy->size[3] - 2 * p};
    sg_tensor *dx = c_out(L, 2, op, "dx", SG_F32, 4, xs);
    if (dx->storage == dy->storage)
        return luaL_error(L, "%s: dx must not share storage with dy", op);
    SGL_CHECK(L, sg_cuda_crop2d(F(dy), F(dx), xs[0] * xs[1], xs[2], xs[3], p));
    lua_pushvalue(L, 2);
    return 1;
}

static const luaL_Reg cuda_impls[] = {
    {"conv2d_forward", conv2d_forward},
    {"conv2d_backward_data", conv2d_backward_data},
    {"conv2d_backward_params", conv2d_backward_params},
    {"linear_forward", linear_forward},
    {"linear_backward_data", linear_backward_data},
    {"linear_backward_params", linear_backward_params},
    {"batchnorm_forward_train", batchnorm_forward_train},
    {"batchnorm_forward_eval", batchnorm_forward_eval},
    {"batchnorm_backward_data", batchnorm_backward_data},
    {"batchnorm_backward_params", batchnorm_backward_params},
    {"relu_forward", relu_forward},
    {"relu_backward_data", relu_backward_data},
    {"dropout_mask", dropout_mask},
    {"dropout_forward", dropout_forward},
    {"dropout_backward_data", dropout_backward_data},
    {"maxpool2d_forward", maxpool2d_forward},
    {"maxpool2d_backward_data", maxpool2d_backward_data},
    {"avgpool2d_forward", avgpool2d_forward},
    {"avgpool2d_backward_data", avgpool2d_backward_data},
    {"global_avgpool_forward", global_avgpool_forward},
    {"global_avgpool_backward_data", global_avgpool_backward_data},
    {"cross_entropy", cross_entropy},
    {"vec_axpy", vec_axpy},
    {"vec_axpbypz", vec_axpbypz},
    {"vec_scale_add", vec_scale_add},
    {NULL, NULL},
};

/* upvalue 1: the original (CPU) function; upvalue 2: index into cuda_impls */
static int dispatch(lua_State *L)
{
    int n = lua_gettop(L);
    for (int i = 1; i <= n; i++) {
        sg_tensor *t = sgl_totensor(L, i);
        if (t && t->storage && t->storage->device == SG_CUDA)
            return cuda_impls[lua_tointeger(L, lua_upvalueindex(2))].func(L);
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, n, LUA_MULTRET);
    return lua_gettop(L);
}

/* Wrap every function of core.nn (table at the top of the stack's "nn" field). */
static void wrap_nn(lua_State *L)
{
    if (lua_getfield(L, -1, "nn") != LUA_TTABLE) {
        lua_pop(L, 1);
        return;
    }
    for (int i = 0; cuda_impls[i].name; i++) {
        if (lua_getfield(L, -1, cuda_impls[i].name) != LUA_TFUNCTION) {
            lua_pop(L, 1);  /* not in this core.nn: nothing to wrap */
            continue;
        }
        lua_pushinteger(L, i);
        lua_pushcclosure(L, dispatch, 2);
        lua_setfield(L, -2, cuda_impls[i].name);
    }
    lua_pop(L, 1);
}
#endif /* SG_HAVE_CUDA */

#ifndef SG_HAVE_CUDA
static int l_unavailable(lua_State *L)
{
    sg_cuda_available();
    return sgl_error(L);
}
#define l_pad2d l_unavailable
#define l_crop2d l_unavailable
#endif

void sgl_open_nn_cuda(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"available", l_available}, {"device_count", l_device_count},
        {"device_name", l_device_name}, {"synchronize", l_synchronize},
        {"set_tf32", l_set_tf32}, {"set_deterministic", l_set_deterministic},
        {"memory_stats", l_memory_stats}, {"empty_cache", l_empty_cache},
        {"input_copy", l_input_copy}, {"input_wait", l_input_wait},
        {"pad2d", l_pad2d}, {"crop2d", l_crop2d},
        {"use_pinned_loader_memory", l_use_pinned_loader_memory}, {NULL, NULL}};
    lua_newtable(L);
    sgl_setfuncs(L, fns);
    lua_pushboolean(L,
#ifdef SG_HAVE_CUDA
                    1
#else
                    0
#endif
    );
    lua_setfield(L, -2, "built");
    lua_setfield(L, -2, "cuda");
    lua_pushcfunction(L, l_available);
    lua_setfield(L, -2, "cuda_available");
#ifdef SG_HAVE_CUDA
    wrap_nn(L);
#endif
}
