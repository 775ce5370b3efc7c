/*
 * l_tensor.c - the Lua face of sgdsa tensors (the `sgdsa.Tensor` type).
 *
 * A tensor userdata holds one reference to an sg_tensor (refcounted). The
 * userdata is created empty before anything is allocated, so an allocation
 * error never leaks; __gc and __close share one function; t:free() drops the
 * memory at once. Allocations of 1 MiB or more are reported to the collector
 * (lua_gc step) so that big tensors do not pile up between collections.
 *
 * Conventions (PyTorch-like, 1-based indices like Torch7):
 *   t:add(x)  returns a new tensor;  t:add_(x) works in place, returns t.
 *   t[i] on a 1-d tensor is a number; on an n-d tensor a view (select).
 *   Operators + - * / and unary - are element-wise and out of place.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "binding.h"
#include "device.h"

#define BIG_ALLOC (1u << 20)

/* ---- userdata plumbing ---------------------------------------------------------- */

static sg_tensor **newud(lua_State *L)
{
    sg_tensor **ud = lua_newuserdatauv(L, sizeof *ud, 0);
    *ud = NULL;
    luaL_setmetatable(L, SGL_TENSOR_MT);
    return ud;
}

static void report_alloc(lua_State *L, sg_tensor *t)
{
    size_t bytes = (size_t)sg_tensor_numel(t) * sg_dtype_size(t->dtype);
    if (bytes >= BIG_ALLOC)
        lua_gc(L, LUA_GCSTEP, (int)(bytes >> 10 > 1 << 20 ? 1 << 20 : bytes >> 10));
}

void sgl_pushtensor(lua_State *L, sg_tensor *t)
{
    if (!t)
        sgl_error(L);
    sg_tensor **ud = newud(L);
    *ud = t;
    if (t->storage && t->storage->refcount == 1 && t->refcount == 1)
        report_alloc(L, t);
}

sg_tensor *sgl_totensor(lua_State *L, int idx)
{
    sg_tensor **ud = luaL_testudata(L, idx, SGL_TENSOR_MT);
    return ud ? *ud : NULL;
}

sg_tensor *sgl_checktensor(lua_State *L, int idx)
{
    sg_tensor **ud = luaL_testudata(L, idx, SGL_TENSOR_MT);
    if (!ud) {
        const char *got = luaL_typename(L, idx);
        luaL_error(L, "bad argument #%d: expected a tensor, got %s", idx, got);
    }
    if (!*ud || !(*ud)->storage)
        luaL_error(L, "bad argument #%d: tensor was freed", idx);
    return *ud;
}

sg_tensor *sgl_opttensor(lua_State *L, int idx)
{
    return lua_isnoneornil(L, idx) ? NULL : sgl_checktensor(L, idx);
}

static int push_or_error(lua_State *L, sg_tensor *t)
{
    sgl_pushtensor(L, t);
    return 1;
}

static sg_dtype check_dtype(lua_State *L, int idx, sg_dtype def)
{
    if (lua_isnoneornil(L, idx))
        return def;
    const char *s = luaL_checkstring(L, idx);
    if (!strcmp(s, "float32") || !strcmp(s, "float"))
        return SG_F32;
    if (!strcmp(s, "uint8") || !strcmp(s, "byte"))
        return SG_U8;
    if (!strcmp(s, "int32") || !strcmp(s, "int"))
        return SG_I32;
    luaL_error(L, "unknown dtype '%s' (float32, uint8, int32)", s);
    return def;
}

static sg_devtype check_device(lua_State *L, const char *s)
{
    if (!strcmp(s, "cpu"))
        return SG_CPU;
    if (!strcmp(s, "cuda") || !strcmp(s, "cuda:0"))
        return SG_CUDA;
    if (!strncmp(s, "cuda:", 5))
        luaL_error(L, "device '%s': sgdsa uses one GPU, cuda (= cuda:0); choose which with "
                      "SGDSA_CUDA_DEVICE or CUDA_VISIBLE_DEVICES", s);
    luaL_error(L, "unknown device '%s' (cpu, cuda)", s);
    return SG_CPU;
}

/* A size (the number at idx, the shape's k-th): an integer, or a float with an
 * integer value that fits int64 (converting 2^63, inf or NaN is undefined). */
static int64_t shape_size(lua_State *L, int idx, int k)
{
    if (lua_isinteger(L, idx))
        return (int64_t)lua_tointeger(L, idx);
    lua_Number v = lua_tonumber(L, idx);
    if (v != floor(v))
        luaL_error(L, "shape: size %f (element %d) is not an integer", (double)v, k);
    if (!(v >= -0x1p63 && v < 0x1p63))
        luaL_error(L, "shape: size %f (element %d) is out of range", (double)v, k);
    return (int64_t)v;
}

/* Shape from numbers at idx.. (stopping at a non-number) or a table at idx. */
int sgl_checkshape(lua_State *L, int idx, int64_t *size)
{
    int n = 0;
    if (lua_istable(L, idx) && !sgl_totensor(L, idx)) {
        int len = (int)luaL_len(L, idx);
        if (len > SG_MAXDIM)
            luaL_error(L, "shape has %d dimensions (at most %d)", len, SG_MAXDIM);
        for (int i = 1; i <= len; i++) {
            lua_geti(L, idx, i);
            if (!lua_isnumber(L, -1))
                luaL_error(L, "shape: element %d is not an integer", i);
            size[n++] = shape_size(L, -1, i);
            lua_pop(L, 1);
        }
        return n;
    }
    while (lua_type(L, idx + n) == LUA_TNUMBER) {
        if (n >= SG_MAXDIM)
            luaL_error(L, "shape has more than %d dimensions", SG_MAXDIM);
        size[n] = shape_size(L, idx + n, n + 1);
        n++;
    }
    return n;
}

/* ---- constructors ------------------------------------------------------------------ */

static int new_filled(lua_State *L, double v, int fill)
{
    int64_t size[SG_MAXDIM];
    int nd = sgl_checkshape(L, 1, size);
    int next = (lua_istable(L, 1) ? 2 : nd + 1);
    sg_dtype dt = check_dtype(L, next, SG_F32);
    sg_tensor **ud = newud(L);
    *ud = sg_tensor_new(dt, SG_CPU, nd, size);
    if (!*ud)
        return sgl_error(L);
    if (fill)
        SGL_CHECK(L, sg_fill(*ud, v));
    report_alloc(L, *ud);
    return 1;
}

static int l_zeros(lua_State *L) { return new_filled(L, 0, 1); }
static int l_ones(lua_State *L) { return new_filled(L, 1, 1); }
static int l_empty(lua_State *L) { return new_filled(L, 0, 0); }

static int l_full(lua_State *L)
{
    /* full(shape_table, value [, dtype]) */
    int64_t size[SG_MAXDIM];
    luaL_checktype(L, 1, LUA_TTABLE);
    int nd = sgl_checkshape(L, 1, size);
    double v = luaL_checknumber(L, 2);
    sg_dtype dt = check_dtype(L, 3, SG_F32);
    sg_tensor **ud = newud(L);
    *ud = sg_tensor_new(dt, SG_CPU, nd, size);
    if (!*ud)
        return sgl_error(L);
    SGL_CHECK(L, sg_fill(*ud, v));
    return 1;
}

static int random_new(lua_State *L, int normal)
{
    int64_t size[SG_MAXDIM];
    int nd = sgl_checkshape(L, 1, size);
    int next = (lua_istable(L, 1) ? 2 : nd + 1);
    sg_rng *r = lua_isnoneornil(L, next) ? sgl_stream(L, "default") : sgl_checkrng(L, next);
    sg_tensor **ud = newud(L);
    *ud = sg_tensor_new(SG_F32, SG_CPU, nd, size);
    if (!*ud)
        return sgl_error(L);
    SGL_CHECK(L, normal ? sg_tensor_normal(*ud, r, 0, 1) : sg_tensor_uniform(*ud, r, 0, 1));
    report_alloc(L, *ud);
    return 1;
}

static int l_rand(lua_State *L) { return random_new(L, 0); }
static int l_randn(lua_State *L) { return random_new(L, 1); }

static int l_arange(lua_State *L)
{
    /* arange(n) = 0..n-1; arange(a, b [, step]) = a, a+step, ... < b (PyTorch) */
    double a = 0, b, step = 1;
    if (lua_gettop(L) == 1 || lua_isnoneornil(L, 2)) {
        b = luaL_checknumber(L, 1);
    } else {
        a = luaL_checknumber(L, 1);
        b = luaL_checknumber(L, 2);
        step = luaL_optnumber(L, 3, 1);
    }
    if (step == 0)
        return luaL_error(L, "arange: step must not be zero");
    double cnt = ceil((b - a) / step);
    if (cnt < 0)
        cnt = 0;
    if (!(cnt <= 1e10)) /* NaN too */
        return luaL_error(L, "arange: absurd length %f (from %f to %f, step %f)", cnt, a, b, step);
    int64_t n = (int64_t)cnt;
    sg_tensor **ud = newud(L);
    *ud = sg_tensor_new(SG_F32, SG_CPU, 1, &n);
    if (!*ud)
        return sgl_error(L);
    float *p = sg_f32(*ud);
    for (int64_t i = 0; i < n; i++)
        p[i] = (float)(a + step * (double)i);
    return 1;
}

/* Shape of a nested Lua table of numbers. */
static int table_shape(lua_State *L, int idx, int64_t *size)
{
    int nd = 0;
    lua_pushvalue(L, idx);
    while (lua_istable(L, -1)) {
        if (nd >= SG_MAXDIM)
            luaL_error(L, "tensor: nested table deeper than %d", SG_MAXDIM);
        size[nd++] = (int64_t)luaL_len(L, -1);
        if (size[nd - 1] == 0)
            break;
        lua_geti(L, -1, 1);
        lua_remove(L, -2);
    }
    lua_pop(L, 1);
    return nd;
}

static void table_fill(lua_State *L, int idx, sg_tensor *t, int d, int64_t *pos, const int64_t *size,
                       int nd)
{
    int64_t len = (int64_t)luaL_len(L, idx);
    if (len != size[d])
        luaL_error(L, "tensor: ragged nested table (dimension %d has lengths %I and %I)", d + 1,
                   (lua_Integer)size[d], (lua_Integer)len);
    for (int64_t i = 1; i <= len; i++) {
        lua_geti(L, idx, i);
        if (d + 1 < nd) {
            if (!lua_istable(L, -1))
                luaL_error(L, "tensor: expected a table at depth %d", d + 2);
            table_fill(L, lua_gettop(L), t, d + 1, pos, size, nd);
        } else {
            if (!lua_isnumber(L, -1))
                luaL_error(L, "tensor: element is a %s, not a number", luaL_typename(L, -1));
            sg_tensor_set(t, (*pos)++, lua_tonumber(L, -1));
        }
        lua_pop(L, 1);
    }
}

static int l_tensor(lua_State *L)
{
    sg_tensor *src = sgl_totensor(L, 1);
    if (src) { /* sgdsa.tensor(t) = clone */
        sgl_checktensor(L, 1);
        return push_or_error(L, sg_tensor_clone(src));
    }
    if (lua_type(L, 1) == LUA_TNUMBER) { /* a scalar tensor */
        sg_dtype dt = check_dtype(L, 2, SG_F32);
        sg_tensor **ud = newud(L);
        if (!(*ud = sg_tensor_new(dt, SG_CPU, 0, NULL)))
            return sgl_error(L);
        sg_tensor_set(*ud, 0, lua_tonumber(L, 1));
        return 1;
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    sg_dtype dt = check_dtype(L, 2, SG_F32);
    int64_t size[SG_MAXDIM];
    int nd = table_shape(L, 1, size);
    sg_tensor **ud = newud(L);
    if (!(*ud = sg_tensor_new(dt, SG_CPU, nd, size)))
        return sgl_error(L);
    int64_t pos = 0;
    if (sg_tensor_numel(*ud) > 0)
        table_fill(L, 1, *ud, 0, &pos, size, nd);
    return 1;
}

/* ---- geometry ------------------------------------------------------------------------ */

static int check_dimarg(lua_State *L, sg_tensor *t, int idx)
{
    lua_Integer d = luaL_checkinteger(L, idx);
    if (d < 0)
        d += t->ndim + 1; /* -1 = last dimension */
    if (d < 1 || d > t->ndim) {
        char b[128];
        luaL_error(L, "dimension %I out of range for a %d-d tensor (%s)", luaL_checkinteger(L, idx),
                   t->ndim, sg_shape_str(t, b, sizeof b));
    }
    return (int)d - 1;
}

/* t:size([d]) and t:stride([d]): dimension d's value, or all in a table. */
static int dims(lua_State *L, int strides)
{
    sg_tensor *t = sgl_checktensor(L, 1);
    const int64_t *v = strides ? t->stride : t->size;
    if (!lua_isnoneornil(L, 2)) {
        lua_pushinteger(L, v[check_dimarg(L, t, 2)]);
        return 1;
    }
    lua_createtable(L, t->ndim, 0);
    for (int i = 0; i < t->ndim; i++) {
        lua_pushinteger(L, v[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int l_size(lua_State *L) { return dims(L, 0); }

static int l_stride(lua_State *L) { return dims(L, 1); }

static int l_dim(lua_State *L) { lua_pushinteger(L, sgl_checktensor(L, 1)->ndim); return 1; }
static int l_numel(lua_State *L) { lua_pushinteger(L, sg_tensor_numel(sgl_checktensor(L, 1))); return 1; }

static int l_len(lua_State *L)
{
    sg_tensor *t = sgl_checktensor(L, 1);
    lua_pushinteger(L, t->ndim ? t->size[0] : 0);
    return 1;
}

static int l_dtype(lua_State *L) { lua_pushstring(L, sg_dtype_name(sgl_checktensor(L, 1)->dtype)); return 1; }

static int l_device(lua_State *L)
{
    lua_pushstring(L, sg_device_name(sgl_checktensor(L, 1)->storage->device));
    return 1;
}

static int l_is_contiguous(lua_State *L)
{
    lua_pushboolean(L, sg_tensor_is_contiguous(sgl_checktensor(L, 1)));
    return 1;
}

static int l_view(lua_State *L)
{
    sg_tensor *t = sgl_checktensor(L, 1);
    int64_t size[SG_MAXDIM];
    int nd = sgl_checkshape(L, 2, size);
    return push_or_error(L, sg_tensor_view(t, nd, size));
}

static int l_reshape(lua_State *L)
{
    sg_tensor *t = sgl_checktensor(L, 1);
    int64_t size[SG_MAXDIM];
    int nd = sgl_checkshape(L, 2, size);
    return push_or_error(L, sg_tensor_reshape(t, nd, size));
}

static int l_narrow(lua_State *L)
{
    sg_tensor *t = sgl_checktensor(L, 1);
    int d = check_dimarg(L, t, 2);
    lua_Integer start = luaL_checkinteger(L, 3), len = luaL_checkinteger(L, 4);
    if (start < 1) { /* (start - 1 would overflow for math.mininteger) */
        char b[128];
        return luaL_error(L, "narrow: start %I out of bounds for dimension %d of size %I (%s)",
                          start, d + 1, (lua_Integer)t->size[d], sg_shape_str(t, b, sizeof b));
    }
    return push_or_error(L, sg_tensor_narrow(t, d, start - 1, len));
}

static int l_select(lua_State *L)
{
    sg_tensor *t = sgl_checktensor(L, 1);
    int d = check_dimarg(L, t, 2);
    lua_Integer i = luaL_checkinteger(L, 3);
    if (i < 0)
        i += t->size[d] + 1;
    return push_or_error(L, sg_tensor_select(t, d, i - 1));
}

static int l_transpose(lua_State *L)
{
    sg_tensor *t = sgl_checktensor(L, 1);
    int d0, d1;
    if (lua_isnoneornil(L, 2)) {
        if (t->ndim != 2) {
            char b[128];
            return luaL_error(L, "t(): transposes a matrix (2-d tensor); this tensor is %d-d, of size %s"
                                 "%s", t->ndim, sg_shape_str(t, b, sizeof b),
                              t->ndim == 1 ? " (t:view(1, n) is a row, t:view(n, 1) a column)"
                                           : " (t:transpose(d0, d1) swaps two dimensions)");
        }
        d0 = 0; d1 = 1;
    } else {
        d0 = check_dimarg(L, t, 2);
        d1 = check_dimarg(L, t, 3);
    }
    return push_or_error(L, sg_tensor_transpose(t, d0, d1));
}

/* t:resize_(shape...) / t:resize_as_(like): contiguous, reallocated only when
 * the storage must grow, so buffers kept across steps allocate nothing in
 * steady state (module outputs and workspaces use this). */
static int l_resize_(lua_State *L)
{
    sg_tensor *t = sgl_checktensor(L, 1);
    int64_t size[SG_MAXDIM];
    int nd = sgl_checkshape(L, 2, size);
    if (sg_tensor_resize(t, nd, size) != 0) {
        char b[128];
        sg_adderr("resize: tensor %s", sg_shape_str(t, b, sizeof b));
        return sgl_error(L);
    }
    lua_settop(L, 1);
    return 1;
}

static int l_resize_as_(lua_State *L)
{
    sg_tensor *t = sgl_checktensor(L, 1), *like = sgl_checktensor(L, 2);
    if (sg_tensor_resize_as(t, like) != 0) {
        char a[128], b[128];
        sg_adderr("resize_as: tensor %s to %s", sg_shape_str(t, a, sizeof a),
                  sg_shape_str(like, b, sizeof b));
        return sgl_error(L);
    }
    lua_settop(L, 1);
    return 1;
}

static int l_contiguous(lua_State *L) { return push_or_error(L, sg_tensor_contiguous(sgl_checktensor(L, 1))); }
static int l_clone(lua_State *L) { return push_or_error(L, sg_tensor_clone(sgl_checktensor(L, 1))); }

static int l_type(lua_State *L)
{
    sg_tensor *t = sgl_checktensor(L, 1);
    sg_dtype dt = check_dtype(L, 2, SG_F32);
    if (dt == t->dtype) {
        lua_settop(L, 1);
        return 1;
    }
    sg_tensor **ud = newud(L);
    if (!(*ud = sg_tensor_new(dt, t->storage->device, t->ndim, t->size)))
        return sgl_error(L);
    SGL_CHECK(L, sg_copy(*ud, t));
    return 1;
}

static int l_float(lua_State *L) { lua_settop(L, 1); lua_pushstring(L, "float32"); return l_type(L); }
static int l_int(lua_State *L) { lua_settop(L, 1); lua_pushstring(L, "int32"); return l_type(L); }
static int l_byte(lua_State *L) { lua_settop(L, 1); lua_pushstring(L, "uint8"); return l_type(L); }

static int to_device(lua_State *L, sg_devtype dev)
{
    sg_tensor *t = sgl_checktensor(L, 1);
    if (t->storage->device == dev) {
        lua_settop(L, 1);
        return 1;
    }
    sg_tensor *c = sg_tensor_contiguous(t);
    if (!c)
        return sgl_error(L);
    sg_tensor **ud = newud(L);
    *ud = sg_tensor_new(t->dtype, dev, t->ndim, t->size);
    if (!*ud || sg_copy(*ud, c) != 0) {
        sg_tensor_release(c);
        return sgl_error(L);
    }
    sg_tensor_release(c);
    return 1;
}

static int l_cpu(lua_State *L) { return to_device(L, SG_CPU); }
static int l_cuda(lua_State *L) { return to_device(L, SG_CUDA); }
static int l_to(lua_State *L) { return to_device(L, check_device(L, luaL_checkstring(L, 2))); }

/* ---- element access ------------------------------------------------------------------ */

static void check_index_args(lua_State *L, sg_tensor *t, int first, int64_t *idx)
{
    int n = lua_gettop(L) - first + 1;
    if (n != t->ndim) {
        char b[128];
        luaL_error(L, "index: %d indices for a %d-d tensor (%s)", n, t->ndim, sg_shape_str(t, b, sizeof b));
    }
    for (int i = 0; i < t->ndim; i++) {
        lua_Integer v = luaL_checkinteger(L, first + i);
        idx[i] = v < 0 ? v + t->size[i] : v - 1;
    }
}

static int l_get(lua_State *L)
{
    sg_tensor *t = sgl_checktensor(L, 1);
    int64_t idx[SG_MAXDIM], off;
    check_index_args(L, t, 2, idx);
    if (t->storage->device != SG_CPU)
        return luaL_error(L, "index: tensor is on %s (use :cpu())", sg_device_name(t->storage->device));
    SGL_CHECK(L, sg_tensor_offset_of(t, idx, &off));
    if (t->dtype == SG_F32)
        lua_pushnumber(L, sg_tensor_get(t, off));
    else
        lua_pushinteger(L, (lua_Integer)sg_tensor_get(t, off));
    return 1;
}

static int l_set(lua_State *L)
{
    sg_tensor *t = sgl_checktensor(L, 1);
    int top = lua_gettop(L);
    double v = luaL_checknumber(L, top);
    lua_settop(L, top - 1);
    int64_t idx[SG_MAXDIM], off;
    check_index_args(L, t, 2, idx);
    if (t->storage->device != SG_CPU)
        return luaL_error(L, "index: tensor is on %s (use :cpu())", sg_device_name(t->storage->device));
    SGL_CHECK(L, sg_tensor_offset_of(t, idx, &off));
    sg_tensor_set(t, off, v);
    lua_settop(L, 1);
    return 1;
}

static int l_item(lua_State *L)
{
    sg_tensor *t = sgl_checktensor(L, 1);
    if (sg_tensor_numel(t) != 1) {
        char b[128];
        return luaL_error(L, "item: tensor %s has %I elements, not 1", sg_shape_str(t, b, sizeof b),
                          (lua_Integer)sg_tensor_numel(t));
    }
    if (t->storage->device != SG_CPU)
        return luaL_error(L, "item: tensor is on %s (use :cpu())", sg_device_name(t->storage->device));
    lua_pushnumber(L, sg_tensor_get(t, t->offset));
    return 1;
}

/* ---- math -------------------------------------------------------------------------- */

/* out-of-place result tensor shaped like t */
static sg_tensor **new_like(lua_State *L, sg_tensor *t)
{
    sg_tensor **ud = newud(L);
    if (!(*ud = sg_tensor_new(t->dtype, t->storage->device, t->ndim, t->size)))
        sgl_error(L);
    return ud;
}

static int binop(lua_State *L, sg_binop op, int inplace)
{
    sg_tensor *a = sgl_totensor(L, 1), *b = sgl_totensor(L, 2);
    if (!a) { /* number op tensor (operators only) */
        double s = luaL_checknumber(L, 1);
        sgl_checktensor(L, 2);
        sg_tensor **o = new_like(L, b);
        SGL_CHECK(L, sg_binary_scalar(*o, b, s, op, 1));
        return 1;
    }
    sgl_checktensor(L, 1);
    sg_tensor *out = a;
    if (!inplace)
        out = *new_like(L, a);
    if (b) {
        sgl_checktensor(L, 2);
        if (op == SG_OP_ADD && lua_isnumber(L, 3)) /* add(x, alpha) = self + alpha*x */
            SGL_CHECK(L, sg_add_scaled(out, a, lua_tonumber(L, 3), b));
        else if (op == SG_OP_SUB && lua_isnumber(L, 3))
            SGL_CHECK(L, sg_add_scaled(out, a, -lua_tonumber(L, 3), b));
        else
            SGL_CHECK(L, sg_binary(out, a, b, op));
    } else {
        if (!lua_isnumber(L, 2))
            return luaL_error(L, "%s: expected a tensor or a number, got %s",
                              op == SG_OP_ADD ? "add" : op == SG_OP_SUB ? "sub" : op == SG_OP_MUL ? "mul" : "div",
                              luaL_typename(L, 2));
        SGL_CHECK(L, sg_binary_scalar(out, a, lua_tonumber(L, 2), op, 0));
    }
    if (inplace)
        lua_settop(L, 1);
    return 1;
}

static int l_add(lua_State *L) { return binop(L, SG_OP_ADD, 0); }
static int l_sub(lua_State *L) { return binop(L, SG_OP_SUB, 0); }
static int l_mul(lua_State *L) { return binop(L, SG_OP_MUL, 0); }
static int l_div(lua_State *L) { return binop(L, SG_OP_DIV, 0); }
static int l_add_(lua_State *L) { return binop(L, SG_OP_ADD, 1); }
static int l_sub_(lua_State *L) { return binop(L, SG_OP_SUB, 1); }
static int l_mul_(lua_State *L) { return binop(L, SG_OP_MUL, 1); }
static int l_div_(lua_State *L) { return binop(L, SG_OP_DIV, 1); }

static int l_unm(lua_State *L)
{
    sg_tensor *a = sgl_checktensor(L, 1);
    sg_tensor **o = new_like(L, a);
    SGL_CHECK(L, sg_unary(*o, a, SG_FN_NEG));
    return 1;
}

static int l_axpy_(lua_State *L)
{
    /* y:axpy_(alpha, x): y += alpha * x */
    sg_tensor *y = sgl_checktensor(L, 1);
    double alpha = luaL_checknumber(L, 2);
    sg_tensor *x = sgl_checktensor(L, 3);
    SGL_CHECK(L, sg_axpy(y, alpha, x));
    lua_settop(L, 1);
    return 1;
}

static int l_add_scaled_(lua_State *L)
{
    /* out:add_scaled_(a, alpha, b): out = a + alpha*b (fused; e.g. trial = w - eta*g) */
    sg_tensor *out = sgl_checktensor(L, 1), *a = sgl_checktensor(L, 2);
    double alpha = luaL_checknumber(L, 3);
    sg_tensor *b = sgl_checktensor(L, 4);
    SGL_CHECK(L, sg_add_scaled(out, a, alpha, b));
    lua_settop(L, 1);
    return 1;
}

#define UNARY(name, fn)                                                          \
    static int l_##name(lua_State *L)                                            \
    {                                                                            \
        sg_tensor *a = sgl_checktensor(L, 1);                                    \
        sg_tensor **o = new_like(L, a);                                          \
        SGL_CHECK(L, sg_unary(*o, a, fn));                                       \
        return 1;                                                                \
    }                                                                            \
    static int l_##name##_(lua_State *L)                                         \
    {                                                                            \
        sg_tensor *a = sgl_checktensor(L, 1);                                    \
        SGL_CHECK(L, sg_unary(a, a, fn));                                        \
        lua_settop(L, 1);                                                        \
        return 1;                                                                \
    }
UNARY(exp, SG_FN_EXP)
UNARY(log, SG_FN_LOG)
UNARY(sqrt, SG_FN_SQRT)
UNARY(abs, SG_FN_ABS)
UNARY(neg, SG_FN_NEG)
UNARY(relu, SG_FN_RELU)
UNARY(sign, SG_FN_SIGN)
UNARY(tanh, SG_FN_TANH)
UNARY(sigmoid, SG_FN_SIGMOID)
UNARY(square, SG_FN_SQUARE)

static void clamp_args(lua_State *L, double *lo, double *hi)
{
    *lo = lua_isnoneornil(L, 2) ? -HUGE_VAL : luaL_checknumber(L, 2);
    *hi = lua_isnoneornil(L, 3) ? HUGE_VAL : luaL_checknumber(L, 3);
}

static int l_clamp(lua_State *L)
{
    sg_tensor *a = sgl_checktensor(L, 1);
    double lo, hi;
    clamp_args(L, &lo, &hi);
    sg_tensor **o = new_like(L, a);
    SGL_CHECK(L, sg_clamp(*o, a, lo, hi));
    return 1;
}

static int l_clamp_(lua_State *L)
{
    sg_tensor *a = sgl_checktensor(L, 1);
    double lo, hi;
    clamp_args(L, &lo, &hi);
    SGL_CHECK(L, sg_clamp(a, a, lo, hi));
    lua_settop(L, 1);
    return 1;
}

static int l_fill(lua_State *L)
{
    sg_tensor *t = sgl_checktensor(L, 1);
    SGL_CHECK(L, sg_fill(t, luaL_checknumber(L, 2)));
    lua_settop(L, 1);
    return 1;
}

static int l_zero(lua_State *L)
{
    SGL_CHECK(L, sg_fill(sgl_checktensor(L, 1), 0));
    lua_settop(L, 1);
    return 1;
}

static int l_copy(lua_State *L)
{
    sg_tensor *d = sgl_checktensor(L, 1), *s = sgl_checktensor(L, 2);
    SGL_CHECK(L, sg_copy(d, s));
    lua_settop(L, 1);
    return 1;
}

static int l_dot(lua_State *L)
{
    double r;
    SGL_CHECK(L, sg_dot(sgl_checktensor(L, 1), sgl_checktensor(L, 2), &r));
    lua_pushnumber(L, r);
    return 1;
}

static int l_norm(lua_State *L)
{
    double r;
    SGL_CHECK(L, sg_norm(sgl_checktensor(L, 1), luaL_optnumber(L, 2, 2), &r));
    lua_pushnumber(L, r);
    return 1;
}

static int l_isfinite(lua_State *L)
{
    int r;
    SGL_CHECK(L, sg_isfinite_all(sgl_checktensor(L, 1), &r));
    lua_pushboolean(L, r);
    return 1;
}

/* sum/mean/max/min/argmax/argmin: no dim -> number; dim -> tensor (dim kept if keepdim) */
static int reduce(lua_State *L, sg_redop op)
{
    sg_tensor *t = sgl_checktensor(L, 1);
    if (t->dtype != SG_F32) { /* integer data: reduce a float copy (on the tensor's device) */
        sg_tensor **f = newud(L);
        if (!(*f = sg_tensor_new(SG_F32, t->storage->device, t->ndim, t->size)) ||
            sg_copy(*f, t) != 0)
            return sgl_error(L);
        lua_replace(L, 1);
        t = sgl_checktensor(L, 1);
    }
    if (lua_isnoneornil(L, 2)) {
        double r;
        SGL_CHECK(L, sg_reduce_all(t, op, &r));
        if (op == SG_RED_ARGMAX || op == SG_RED_ARGMIN)
            lua_pushinteger(L, (lua_Integer)r + 1);
        else
            lua_pushnumber(L, r);
        return 1;
    }
    int d = check_dimarg(L, t, 2);
    int keep = lua_toboolean(L, 3);
    int64_t one = 1;
    sg_tensor *o = sg_tensor_new(SG_F32, SG_CPU, 1, &one);
    if (!o || sg_reduce_dim(o, t, d, op) != 0) {
        sg_tensor_release(o);
        return sgl_error(L);
    }
    if (op == SG_RED_ARGMAX || op == SG_RED_ARGMIN) { /* 1-based int32 indices */
        sg_tensor *i = sg_tensor_new(SG_I32, SG_CPU, o->ndim, o->size);
        if (!i) {
            sg_tensor_release(o);
            return sgl_error(L);
        }
        int64_t n = sg_tensor_numel(o);
        for (int64_t k = 0; k < n; k++)
            ((int32_t *)sg_tensor_data(i))[k] = (int32_t)sg_f32(o)[k] + 1;
        sg_tensor_release(o);
        o = i;
    }
    if (!keep && o->ndim > 1) {
        sg_tensor *s = sg_tensor_select(o, d, 0);
        sg_tensor_release(o);
        o = s;
    }
    return push_or_error(L, o);
}

static int l_sum(lua_State *L) { return reduce(L, SG_RED_SUM); }
static int l_mean(lua_State *L) { return reduce(L, SG_RED_MEAN); }
static int l_max(lua_State *L) { return reduce(L, SG_RED_MAX); }
static int l_min(lua_State *L) { return reduce(L, SG_RED_MIN); }
static int l_argmax(lua_State *L) { return reduce(L, SG_RED_ARGMAX); }
static int l_argmin(lua_State *L) { return reduce(L, SG_RED_ARGMIN); }

static int l_matmul(lua_State *L)
{
    sg_tensor *a = sgl_checktensor(L, 1), *b = sgl_checktensor(L, 2);
    int64_t sz[2] = {0, 0};
    /* the result lives where the operands do (a mixed pair is sg_matmul's error) */
    const sg_devtype dev = a->storage->device == SG_CUDA || b->storage->device == SG_CUDA
                               ? SG_CUDA : SG_CPU;
    sg_tensor **o = newud(L);
    if (!(*o = sg_tensor_new(SG_F32, dev, 2, sz)))
        return sgl_error(L);
    SGL_CHECK(L, sg_matmul(*o, a, b));
    return 1;
}

/* t:uniform_(lo, hi[, rng]) and t:normal_(mean, std[, rng]) (defaults 0 and 1):
 * t filled in place from rng or the default stream. */
static int random_fill(lua_State *L, int (*fill)(sg_tensor *, struct sg_rng *, double, double))
{
    sg_tensor *t = sgl_checktensor(L, 1);
    double a = luaL_optnumber(L, 2, 0), b = luaL_optnumber(L, 3, 1);
    sg_rng *r = lua_isnoneornil(L, 4) ? sgl_stream(L, "default") : sgl_checkrng(L, 4);
    SGL_CHECK(L, fill(t, r, a, b));
    lua_settop(L, 1);
    return 1;
}

static int l_uniform_(lua_State *L) { return random_fill(L, sg_tensor_uniform); }

static int l_normal_(lua_State *L) { return random_fill(L, sg_tensor_normal); }

static int l_swap_storage(lua_State *L)
{
    sg_tensor *a = sgl_checktensor(L, 1), *b = sgl_checktensor(L, 2);
    SGL_CHECK(L, sg_storage_swap(a->storage, b->storage));
    return 0;
}

static int l_shares_storage(lua_State *L)
{
    lua_pushboolean(L, sgl_checktensor(L, 1)->storage == sgl_checktensor(L, 2)->storage);
    return 1;
}

static int l_totable(lua_State *L)
{
    sg_tensor *t = sgl_checktensor(L, 1);
    if (t->storage->device != SG_CPU)
        return luaL_error(L, "totable: tensor is on %s (use :cpu())", sg_device_name(t->storage->device));
    if (t->ndim == 0) {
        lua_pushnumber(L, sg_tensor_get(t, t->offset));
        return 1;
    }
    lua_createtable(L, (int)t->size[0], 0);
    for (int64_t i = 0; i < t->size[0]; i++) {
        if (t->ndim == 1) {
            double v = sg_tensor_get(t, t->offset + i * t->stride[0]);
            if (t->dtype == SG_F32)
                lua_pushnumber(L, v);
            else
                lua_pushinteger(L, (lua_Integer)v);
        } else {
            lua_pushcfunction(L, l_totable);
            sgl_pushtensor(L, sg_tensor_select(t, 0, i));
            lua_call(L, 1, 1);
        }
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int l_free(lua_State *L)
{
    sg_tensor **ud = luaL_checkudata(L, 1, SGL_TENSOR_MT);
    sg_tensor_free(*ud);
    return 0;
}

static int l_gc(lua_State *L)
{
    sg_tensor **ud = luaL_checkudata(L, 1, SGL_TENSOR_MT);
    sg_tensor_release(*ud);
    *ud = NULL;
    return 0;
}

static int l_is_tensor(lua_State *L)
{
    lua_pushboolean(L, sgl_totensor(L, 1) != NULL);
    return 1;
}

/* ---- printing (Torch7 style) ------------------------------------------------------------- */

#define EDGE 3     /* rows/columns shown at each end of a long dimension */
#define MAXSHOW 20 /* dimensions longer than this are abbreviated */

static void fmt_val(luaL_Buffer *b, const sg_tensor *t, int64_t off, int width, int prec)
{
    char s[64];
    double v = sg_tensor_get(t, off);
    if (t->dtype != SG_F32)
        snprintf(s, sizeof s, " %*lld", width, (long long)v);
    else
        snprintf(s, sizeof s, " %*.*f", width, prec, v);
    luaL_addstring(b, s);
}

static void print_matrix(luaL_Buffer *b, const sg_tensor *t, int64_t base, int d0, int width, int prec)
{
    /* rows along dim d0 (or a single row if the tensor is 1-d) */
    int nd = t->ndim;
    int64_t rows = nd >= 2 ? t->size[nd - 2] : 1, cols = t->size[nd - 1];
    int64_t rs = nd >= 2 ? t->stride[nd - 2] : 0, cs = t->stride[nd - 1];
    (void)d0;
    for (int64_t r = 0; r < rows; r++) {
        if (rows > MAXSHOW && r == EDGE) {
            luaL_addstring(b, " ...\n");
            r = rows - EDGE - 1;
            continue;
        }
        for (int64_t c = 0; c < cols; c++) {
            if (cols > MAXSHOW && c == EDGE) {
                luaL_addstring(b, " ...");
                c = cols - EDGE - 1;
                continue;
            }
            fmt_val(b, t, base + r * rs + c * cs, width, prec);
        }
        luaL_addstring(b, "\n");
    }
}

static void print_slices(luaL_Buffer *b, const sg_tensor *t, int d, int64_t base, int64_t *idx, int width,
                         int prec, int *shown)
{
    if (d == t->ndim - 2) {
        char s[256];
        int k = 0;
        s[k++] = '(';
        for (int i = 0; i < d; i++)
            k += snprintf(s + k, sizeof s - (size_t)k, "%lld,", (long long)idx[i] + 1);
        snprintf(s + k, sizeof s - (size_t)k, ".,.) = \n");
        luaL_addstring(b, s);
        print_matrix(b, t, base, d, width, prec);
        luaL_addstring(b, "\n");
        (*shown)++;
        return;
    }
    for (int64_t i = 0; i < t->size[d]; i++) {
        if (t->size[d] > 2 * EDGE && i == EDGE) {
            luaL_addstring(b, "...\n\n");
            i = t->size[d] - EDGE - 1;
            continue;
        }
        idx[d] = i;
        print_slices(b, t, d + 1, base + i * t->stride[d], idx, width, prec, shown);
    }
}

static int l_tostring(lua_State *L)
{
    sg_tensor **ud = luaL_checkudata(L, 1, SGL_TENSOR_MT);
    sg_tensor *t = *ud;
    if (!t || !t->storage) {
        lua_pushstring(L, "[sgdsa.Tensor (freed)]");
        return 1;
    }
    char shape[128];
    sg_shape_str(t, shape, sizeof shape);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    if (t->storage->device != SG_CPU) {
        lua_pushfstring(L, "[sgdsa.Tensor %s of size %s on %s]", sg_dtype_name(t->dtype), shape,
                        sg_device_name(t->storage->device));
        return 1;
    }
    int64_t n = sg_tensor_numel(t);
    /* column width from the values' range (on a bounded sample for huge tensors) */
    double amax = 0;
    int allint = 1;
    int64_t step = n > 100000 ? n / 100000 : 1;
    if (n > 0) {
        int64_t idx[SG_MAXDIM] = {0};
        for (int64_t k = 0; k < n; k += step) {
            int64_t rem = k, off = t->offset;
            for (int i = t->ndim - 1; i >= 0; i--) {
                idx[i] = rem % t->size[i];
                rem /= t->size[i];
                off += idx[i] * t->stride[i];
            }
            double v = sg_tensor_get(t, off);
            if (isfinite(v)) {
                if (fabs(v) > amax)
                    amax = fabs(v);
                if (v != floor(v))
                    allint = 0;
            }
        }
    }
    int intdigits = amax >= 1 ? (int)floor(log10(amax)) + 1 : 1;
    int prec = (t->dtype != SG_F32 || allint) ? 0 : 4;
    if (intdigits > 8 && prec) /* very large floats: fall back to fewer decimals */
        prec = 1;
    int width = intdigits + 1 + (prec ? prec + 1 : 0);
    if (width < 4)
        width = 4;
    if (t->ndim == 0) {
        fmt_val(&b, t, t->offset, width, prec);
        luaL_addstring(&b, "\n");
    } else if (n == 0) {
        luaL_addstring(&b, "(empty)\n");
    } else if (t->ndim == 1) {
        for (int64_t i = 0; i < t->size[0]; i++) {
            if (t->size[0] > MAXSHOW && i == EDGE) {
                luaL_addstring(&b, " ...\n");
                i = t->size[0] - EDGE - 1;
                continue;
            }
            fmt_val(&b, t, t->offset + i * t->stride[0], width, prec);
            luaL_addstring(&b, "\n");
        }
    } else if (t->ndim == 2) {
        print_matrix(&b, t, t->offset, 0, width, prec);
    } else {
        int64_t idx[SG_MAXDIM] = {0};
        int shown = 0;
        print_slices(&b, t, 0, t->offset, idx, width, prec, &shown);
    }
    char footer[256];
    snprintf(footer, sizeof footer, "[sgdsa.Tensor %s of size %s on %s]", sg_dtype_name(t->dtype), shape,
             sg_device_name(t->storage->device));
    luaL_addstring(&b, footer);
    luaL_pushresult(&b);
    return 1;
}

/* ---- indexing metamethods --------------------------------------------------------------- */

static int l_index(lua_State *L)
{
    /* t[i]: number for 1-d, view (select on dim 1) for n-d; t.name: method */
    if (lua_type(L, 2) == LUA_TNUMBER) {
        sg_tensor *t = sgl_checktensor(L, 1);
        if (t->ndim == 0)
            return luaL_error(L, "index: cannot index a scalar tensor (use :item())");
        lua_Integer i = luaL_checkinteger(L, 2);
        if (i < 0)
            i += t->size[0] + 1;
        if (i < 1 || i > t->size[0]) {
            char b[128];
            return luaL_error(L, "index: %I out of range for dimension 1 of size %I (%s)",
                              luaL_checkinteger(L, 2), (lua_Integer)t->size[0],
                              sg_shape_str(t, b, sizeof b));
        }
        if (t->ndim == 1) {
            if (t->storage->device != SG_CPU)
                return luaL_error(L, "index: tensor is on %s (use :cpu())", sg_device_name(t->storage->device));
            double v = sg_tensor_get(t, t->offset + (i - 1) * t->stride[0]);
            if (t->dtype == SG_F32)
                lua_pushnumber(L, v);
            else
                lua_pushinteger(L, (lua_Integer)v);
            return 1;
        }
        return push_or_error(L, sg_tensor_select(t, 0, i - 1));
    }
    lua_pushvalue(L, 2);
    lua_gettable(L, lua_upvalueindex(1));
    return 1;
}

static int l_newindex(lua_State *L)
{
    sg_tensor *t = sgl_checktensor(L, 1);
    if (lua_type(L, 2) == LUA_TSTRING)
        return luaL_error(L, "cannot set field '%s' of a tensor", lua_tostring(L, 2));
    if (lua_type(L, 2) != LUA_TNUMBER)
        return luaL_error(L, "cannot set a %s key of a tensor (t[i] = number or tensor)",
                          luaL_typename(L, 2));
    lua_Integer i = luaL_checkinteger(L, 2);
    if (t->ndim == 0)
        return luaL_error(L, "index: cannot index a scalar tensor");
    if (i < 0)
        i += t->size[0] + 1;
    sg_tensor *row = sg_tensor_select(t, 0, i - 1);
    if (!row)
        return sgl_error(L);
    int rc;
    sg_tensor *src = sgl_totensor(L, 3);
    if (src)
        rc = sg_copy(row, sgl_checktensor(L, 3));
    else
        rc = sg_fill(row, luaL_checknumber(L, 3));
    sg_tensor_release(row);
    if (rc != 0)
        return sgl_error(L);
    return 0;
}

/* ---- registration ---------------------------------------------------------------------- */

static const luaL_Reg methods[] = {
    {"size", l_size}, {"stride", l_stride}, {"dim", l_dim}, {"numel", l_numel},
    {"nelement", l_numel}, {"dtype", l_dtype}, {"device", l_device},
    {"is_contiguous", l_is_contiguous}, {"view", l_view}, {"reshape", l_reshape},
    {"narrow", l_narrow}, {"select", l_select}, {"transpose", l_transpose}, {"t", l_transpose},
    {"contiguous", l_contiguous}, {"clone", l_clone}, {"resize_", l_resize_},
    {"resize_as_", l_resize_as_}, {"type", l_type}, {"float", l_float},
    {"int", l_int}, {"byte", l_byte}, {"cpu", l_cpu}, {"cuda", l_cuda}, {"to", l_to},
    {"get", l_get}, {"set", l_set}, {"item", l_item},
    {"add", l_add}, {"sub", l_sub}, {"mul", l_mul}, {"div", l_div},
    {"add_", l_add_}, {"sub_", l_sub_}, {"mul_", l_mul_}, {"div_", l_div_},
    {"axpy_", l_axpy_}, {"add_scaled_", l_add_scaled_},
    {"exp", l_exp}, {"exp_", l_exp_}, {"log", l_log}, {"log_", l_log_},
    {"sqrt", l_sqrt}, {"sqrt_", l_sqrt_}, {"abs", l_abs}, {"abs_", l_abs_},
    {"neg", l_neg}, {"neg_", l_neg_}, {"relu", l_relu}, {"relu_", l_relu_},
    {"sign", l_sign}, {"sign_", l_sign_}, {"tanh", l_tanh}, {"tanh_", l_tanh_},
    {"sigmoid", l_sigmoid}, {"sigmoid_", l_sigmoid_}, {"square", l_square}, {"square_", l_square_},
    {"clamp", l_clamp}, {"clamp_", l_clamp_},
    {"fill", l_fill}, {"fill_", l_fill}, {"zero", l_zero}, {"zero_", l_zero}, {"copy", l_copy},
    {"copy_", l_copy},
    {"dot", l_dot}, {"norm", l_norm}, {"isfinite", l_isfinite},
    {"sum", l_sum}, {"mean", l_mean}, {"max", l_max}, {"min", l_min},
    {"argmax", l_argmax}, {"argmin", l_argmin}, {"matmul", l_matmul},
    {"uniform_", l_uniform_}, {"normal_", l_normal_},
    {"swap_storage", l_swap_storage}, {"shares_storage", l_shares_storage},
    {"totable", l_totable}, {"free", l_free},
    {NULL, NULL}};

static const luaL_Reg functions[] = {
    {"tensor", l_tensor}, {"zeros", l_zeros}, {"ones", l_ones}, {"empty", l_empty},
    {"full", l_full}, {"rand", l_rand}, {"randn", l_randn}, {"arange", l_arange},
    {"matmul", l_matmul}, {"is_tensor", l_is_tensor}, {"dot", l_dot},
    {NULL, NULL}};

void sgl_open_tensor(lua_State *L)
{
    /* metatable with methods as the __index upvalue */
    luaL_newmetatable(L, SGL_TENSOR_MT);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "methods"); /* mt.methods: for REPL completion and extension */
    lua_pushcclosure(L, l_index, 1);
    lua_setfield(L, -2, "__index");
    static const luaL_Reg meta[] = {
        {"__newindex", l_newindex}, {"__gc", l_gc}, {"__close", l_gc}, {"__tostring", l_tostring},
        {"__len", l_len}, {"__add", l_add}, {"__sub", l_sub}, {"__mul", l_mul}, {"__div", l_div},
        {"__unm", l_unm}, {NULL, NULL}};
    luaL_setfuncs(L, meta, 0);
    lua_pushstring(L, "sgdsa.Tensor");
    lua_setfield(L, -2, "__name");
    lua_getfield(L, -1, "methods");
    lua_setfield(L, -3, "Tensor"); /* core.Tensor = the methods table */
    lua_pop(L, 1);
    luaL_setfuncs(L, functions, 0);
}
