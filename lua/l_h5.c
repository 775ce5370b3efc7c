/*
 * l_h5.c - the Lua binding of core/h5: `sgdsa.core.h5`.
 *
 *   core.h5.open(path, mode [, legacy])   -> File   (mode "r", "w", "a")
 *   core.h5.open_atomic(path [, keep])     -> File   (committed by close)
 *   core.h5.newlog(group, names, types)    -> Log    (types: "float64"/"int64")
 *   core.h5.format_version                 -> integer
 *
 * File methods (all raise on error; messages name file, dataset and shapes):
 *   close() discard() flush() path() writable() exists(n) stat(n) list([g])
 *   mkgroup(n) remove(n)
 *   write(n, tensor)  read(n [, {shape=, dtype=, max_bytes=}])  read_into(n, t)
 *   write_array(n, values [, dtype [, shape]])  read_array(n [, dtype])
 *   write_text(n, s)  read_text(n)
 *   attr(name [, value])  attr_of(obj, name [, value])  attrs([obj])
 *   log_rows(g)  log_truncate(g, rows)
 *   verify()   read everything as a check (h5.h: sg_h5_verify); true or an error
 * Log methods: append(values_in_column_order) pending() write(file) columns()
 *
 * A File userdata is created empty before the file is opened, so an error
 * never leaks a handle; __gc and __close share one function: a file left
 * open is closed, but an atomic file is committed only by an explicit
 * close() or a to-be-closed variable leaving its scope without an error (a
 * file dropped by the collector or by an error is discarded: a half-written
 * checkpoint never replaces a good one).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "binding.h"
#include "h5.h"

#define FILE_MT "sgdsa.H5File"
#define LOG_MT "sgdsa.H5Log"

typedef struct {
    sg_h5file *f;
    int atomic;
} lfile;

static lfile *newfile(lua_State *L)
{
    lfile *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->f = NULL;
    u->atomic = 0;
    luaL_setmetatable(L, FILE_MT);
    return u;
}

static sg_h5file *checkfile(lua_State *L, int idx)
{
    lfile *u = luaL_checkudata(L, idx, FILE_MT);
    if (!u->f)
        luaL_error(L, "h5: file is closed");
    return u->f;
}

static int l_open(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    const char *mode = luaL_optstring(L, 2, "r");
    int legacy = lua_toboolean(L, 3);
    lfile *u = newfile(L);
    u->f = sg_h5_open(path, mode, legacy ? SG_H5_LEGACY : 0);
    if (!u->f)
        return sgl_error(L);
    return 1;
}

static int l_open_atomic(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    int keep = lua_toboolean(L, 2);
    lfile *u = newfile(L);
    u->f = sg_h5_open_atomic(path, keep);
    if (!u->f)
        return sgl_error(L);
    u->atomic = 1;
    return 1;
}

static int l_close(lua_State *L)
{
    lfile *u = luaL_checkudata(L, 1, FILE_MT);
    sg_h5file *f = u->f;
    u->f = NULL;
    if (f && sg_h5_close(f) < 0)
        return sgl_error(L);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_discard(lua_State *L)
{
    lfile *u = luaL_checkudata(L, 1, FILE_MT);
    sg_h5file *f = u->f;
    u->f = NULL;
    sg_h5_discard(f);
    return 0;
}

/* __gc (1 argument) and __close (2: the error object, nil on normal exit). */
static int l_gc(lua_State *L)
{
    lfile *u = luaL_checkudata(L, 1, FILE_MT);
    sg_h5file *f = u->f;
    u->f = NULL;
    if (!f)
        return 0;
    int normal_close = lua_gettop(L) >= 2 && lua_isnil(L, 2);
    if (u->atomic && !normal_close) {
        sg_h5_discard(f);
        return 0;
    }
    if (sg_h5_close(f) < 0 && normal_close)
        return sgl_error(L);
    return 0;
}

static int l_flush(lua_State *L)
{
    SGL_CHECK(L, sg_h5_flush(checkfile(L, 1)));
    return 0;
}

static int l_path(lua_State *L)
{
    lua_pushstring(L, sg_h5_path(checkfile(L, 1)));
    return 1;
}

static int l_writable(lua_State *L)
{
    lua_pushboolean(L, sg_h5_writable(checkfile(L, 1)));
    return 1;
}

static int l_tostring(lua_State *L)
{
    lfile *u = luaL_checkudata(L, 1, FILE_MT);
    if (!u->f)
        lua_pushstring(L, "[sgdsa.H5File (closed)]");
    else
        lua_pushfstring(L, "[sgdsa.H5File %s (%s%s)]", sg_h5_path(u->f),
                        sg_h5_writable(u->f) ? "read-write" : "read-only", u->atomic ? ", atomic" : "");
    return 1;
}

static int l_exists(lua_State *L)
{
    int e = sg_h5_exists(checkfile(L, 1), luaL_checkstring(L, 2));
    if (e < 0)
        return sgl_error(L);
    lua_pushboolean(L, e);
    return 1;
}

static void push_shape(lua_State *L, int ndim, const int64_t *size)
{
    lua_createtable(L, ndim > 0 ? ndim : 0, 0);
    for (int i = 0; i < ndim; i++) {
        lua_pushinteger(L, size[i]);
        lua_rawseti(L, -2, i + 1);
    }
}

static void push_info(lua_State *L, const char *name, const sg_h5_info *in)
{
    lua_createtable(L, 0, 5);
    lua_pushstring(L, name);
    lua_setfield(L, -2, "name");
    if (in->is_group) {
        lua_pushstring(L, "group");
        lua_setfield(L, -2, "kind");
        return;
    }
    lua_pushstring(L, "dataset");
    lua_setfield(L, -2, "kind");
    lua_pushstring(L, sg_h5_type_name(in->type));
    lua_setfield(L, -2, "dtype");
    if (in->ndim >= 0) {
        push_shape(L, in->ndim, in->size);
        lua_setfield(L, -2, "shape");
        lua_pushinteger(L, in->numel);
        lua_setfield(L, -2, "numel");
    }
    lua_pushboolean(L, in->chunked);
    lua_setfield(L, -2, "chunked");
}

static int l_stat(lua_State *L)
{
    sg_h5file *f = checkfile(L, 1);
    const char *name = luaL_checkstring(L, 2);
    int e = sg_h5_exists(f, name);
    if (e < 0)
        return sgl_error(L);
    if (e == 0) {
        lua_pushnil(L);
        return 1;
    }
    sg_h5_info in;
    SGL_CHECK(L, sg_h5_stat(f, name, &in));
    push_info(L, name, &in);
    return 1;
}

struct lctx {
    lua_State *L;
    int n;
};

static int list_cb(void *ud, const char *name, const sg_h5_info *in)
{
    struct lctx *c = ud;
    if (!lua_checkstack(c->L, 4))
        return sg_seterr("h5 list: Lua stack exhausted");
    push_info(c->L, name, in);
    lua_rawseti(c->L, -2, ++c->n);
    return 0;
}

static int l_list(lua_State *L)
{
    sg_h5file *f = checkfile(L, 1);
    const char *g = luaL_optstring(L, 2, "/");
    lua_newtable(L);
    struct lctx c = { L, 0 };
    if (sg_h5_list(f, g, list_cb, &c) < 0)
        return sgl_error(L);
    return 1;
}

static int l_verify(lua_State *L)
{
    SGL_CHECK(L, sg_h5_verify(checkfile(L, 1)));
    lua_pushboolean(L, 1);
    return 1;
}

static int l_mkgroup(lua_State *L)
{
    SGL_CHECK(L, sg_h5_mkgroup(checkfile(L, 1), luaL_checkstring(L, 2)));
    return 0;
}

static int l_remove(lua_State *L)
{
    SGL_CHECK(L, sg_h5_remove(checkfile(L, 1), luaL_checkstring(L, 2)));
    return 0;
}

static int l_write(lua_State *L)
{
    sg_h5file *f = checkfile(L, 1);
    const char *name = luaL_checkstring(L, 2);
    sg_tensor *t = sgl_checktensor(L, 3);
    SGL_CHECK(L, sg_h5_write_tensor(f, name, t));
    return 0;
}

static sg_h5_type check_type(lua_State *L, int idx, const char *name)
{
    int t = sg_h5_type_parse(name);
    if (t < 0)
        luaL_error(L, "h5: unknown dtype '%s' (float32, uint8, int32, int64, uint64, float64)", name);
    (void)idx;
    return (sg_h5_type)t;
}

/* Fill an expectation from an options table {shape=, dtype=, max_bytes=}. */
static void opt_expect(lua_State *L, int idx, sg_h5_expect *e)
{
    *e = SG_H5_EXPECT_ANY;
    if (lua_isnoneornil(L, idx))
        return;
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
        if (strcmp(k, "shape") && strcmp(k, "dtype") && strcmp(k, "max_bytes"))
            luaL_error(L, "h5 read: unknown option '%s' (shape, dtype, max_bytes)", k);
        lua_pop(L, 1);
    }
    if (lua_getfield(L, idx, "dtype") != LUA_TNIL)
        e->type = check_type(L, idx, luaL_checkstring(L, -1));
    lua_pop(L, 1);
    if (lua_getfield(L, idx, "max_bytes") != LUA_TNIL)
        e->max_bytes = (size_t)luaL_checkinteger(L, -1);
    lua_pop(L, 1);
    if (lua_getfield(L, idx, "shape") != LUA_TNIL) {
        luaL_checktype(L, -1, LUA_TTABLE);
        lua_Integer n = luaL_len(L, -1);
        if (n > SG_MAXDIM)
            luaL_error(L, "h5 read: expected shape has %d dims (at most %d)", (int)n, SG_MAXDIM);
        e->ndim = (int)n;
        for (int i = 0; i < n; i++) {
            lua_rawgeti(L, -1, i + 1);
            e->size[i] = luaL_checkinteger(L, -1);
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
}

static int l_read(lua_State *L)
{
    sg_h5file *f = checkfile(L, 1);
    const char *name = luaL_checkstring(L, 2);
    sg_h5_expect e;
    opt_expect(L, 3, &e);
    sgl_pushtensor(L, sg_h5_read_tensor(f, name, &e));
    return 1;
}

static int l_read_into(lua_State *L)
{
    sg_h5file *f = checkfile(L, 1);
    const char *name = luaL_checkstring(L, 2);
    sg_tensor *t = sgl_checktensor(L, 3);
    SGL_CHECK(L, sg_h5_read_tensor_into(f, name, t));
    lua_settop(L, 3);
    return 1;
}

/* write_array(name, values [, dtype [, shape]]): values a number (scalar)
 * or a flat table; dtype defaults to int64 when every value is an integer,
 * else float64; shape defaults to {#values}. */
static int l_write_array(lua_State *L)
{
    sg_h5file *f = checkfile(L, 1);
    const char *name = luaL_checkstring(L, 2);
    int scalar = lua_type(L, 3) == LUA_TNUMBER;
    if (!scalar)
        luaL_checktype(L, 3, LUA_TTABLE);
    lua_Integer n = scalar ? 1 : luaL_len(L, 3);
    if (n < 0 || n > ((lua_Integer)1 << 31))
        return luaL_error(L, "h5 write_array '%s': %d values (too many for a Lua table write)", name, (int)n);
    sg_h5_type type;
    if (!lua_isnoneornil(L, 4)) {
        type = check_type(L, 4, luaL_checkstring(L, 4));
    } else {
        int allint = 1;
        for (lua_Integer i = 1; i <= n && allint; i++) {
            if (scalar)
                lua_pushvalue(L, 3);
            else
                lua_rawgeti(L, 3, i);
            allint = lua_isinteger(L, -1);
            lua_pop(L, 1);
        }
        type = allint ? SG_H5_I64 : SG_H5_F64;
    }
    int ndim = scalar ? 0 : 1;
    int64_t size[SG_MAXDIM] = { (int64_t)n };
    if (!lua_isnoneornil(L, 5)) {
        luaL_checktype(L, 5, LUA_TTABLE);
        lua_Integer nd = luaL_len(L, 5);
        if (nd > SG_MAXDIM)
            return luaL_error(L, "h5 write_array '%s': shape has %d dims (at most %d)", name, (int)nd, SG_MAXDIM);
        int64_t numel = 0;
        ndim = (int)nd;
        for (int i = 0; i < ndim; i++) {
            lua_rawgeti(L, 5, i + 1);
            size[i] = luaL_checkinteger(L, -1);
            lua_pop(L, 1);
        }
        if (sg_shape_numel("write_array shape", ndim, size, &numel) != 0)
            return luaL_error(L, "h5 '%s': %s", name, sg_geterr());
        if (numel != n)
            return luaL_error(L, "h5 write_array '%s': shape has %d elements but %d values were given",
                              name, (int)numel, (int)n);
    }
    size_t es = sg_h5_type_size(type);
    void *buf = lua_newuserdatauv(L, (size_t)n * es + 1, 0);   /* freed by the collector */
    for (lua_Integer i = 0; i < n; i++) {
        if (scalar)
            lua_pushvalue(L, 3);
        else
            lua_rawgeti(L, 3, i + 1);
        int isnum;
        if (type == SG_H5_F32 || type == SG_H5_F64) {
            lua_Number v = lua_tonumberx(L, -1, &isnum);
            if (!isnum)
                return luaL_error(L, "h5 write_array '%s': value %d is not a number", name, (int)i + 1);
            if (type == SG_H5_F32)
                ((float *)buf)[i] = (float)v;
            else
                ((double *)buf)[i] = v;
        } else {
            lua_Integer v = lua_tointegerx(L, -1, &isnum);
            if (!isnum)
                return luaL_error(L, "h5 write_array '%s': value %d is not an integer (dtype %s)",
                                  name, (int)i + 1, sg_h5_type_name(type));
            if (type == SG_H5_U8) {
                if (v < 0 || v > 255)
                    return luaL_error(L, "h5 write_array '%s': value %d out of uint8 range", name, (int)i + 1);
                ((uint8_t *)buf)[i] = (uint8_t)v;
            } else if (type == SG_H5_I32) {
                if (v < INT32_MIN || v > INT32_MAX)
                    return luaL_error(L, "h5 write_array '%s': value %d out of int32 range", name, (int)i + 1);
                ((int32_t *)buf)[i] = (int32_t)v;
            } else if (type == SG_H5_U64) {
                ((uint64_t *)buf)[i] = (uint64_t)v;   /* bit pattern (rng states) */
            } else {
                ((int64_t *)buf)[i] = (int64_t)v;
            }
        }
        lua_pop(L, 1);
    }
    SGL_CHECK(L, sg_h5_write_array(f, name, type, ndim, size, buf));
    return 0;
}

static void push_elem(lua_State *L, sg_h5_type t, const void *buf, int64_t i)
{
    switch (t) {
    case SG_H5_F32: lua_pushnumber(L, ((const float *)buf)[i]); break;
    case SG_H5_U8: lua_pushinteger(L, ((const uint8_t *)buf)[i]); break;
    case SG_H5_I32: lua_pushinteger(L, ((const int32_t *)buf)[i]); break;
    case SG_H5_I64: lua_pushinteger(L, ((const int64_t *)buf)[i]); break;
    case SG_H5_U64: lua_pushinteger(L, (lua_Integer)((const uint64_t *)buf)[i]); break;
    default: lua_pushnumber(L, ((const double *)buf)[i]); break;
    }
}

/* read_array(name [, dtype]) -> values, shape, dtype. A scalar dataset gives
 * a number; anything else a flat table (row-major). uint64 values come back
 * as Lua integers with the same bits. */
static int l_read_array(lua_State *L)
{
    sg_h5file *f = checkfile(L, 1);
    const char *name = luaL_checkstring(L, 2);
    sg_h5_expect e = SG_H5_EXPECT_ANY;
    if (!lua_isnoneornil(L, 3))
        e.type = check_type(L, 3, luaL_checkstring(L, 3));
    sg_h5_info in;
    void *buf = sg_h5_read_array(f, name, &e, &in);
    if (!buf)
        return sgl_error(L);
    if (in.numel > ((int64_t)1 << 31) || !lua_checkstack(L, 4)) {
        free(buf);
        return luaL_error(L, "h5 read_array '%s': %d values are too many for a Lua table", name, (int)in.numel);
    }
    if (in.ndim == 0) {
        push_elem(L, in.type, buf, 0);
    } else {
        lua_createtable(L, (int)in.numel, 0);
        for (int64_t i = 0; i < in.numel; i++) {
            push_elem(L, in.type, buf, i);
            lua_rawseti(L, -2, i + 1);
        }
    }
    free(buf);
    push_shape(L, in.ndim, in.size);
    lua_pushstring(L, sg_h5_type_name(in.type));
    return 3;
}

static int l_write_text(lua_State *L)
{
    sg_h5file *f = checkfile(L, 1);
    const char *name = luaL_checkstring(L, 2);
    size_t len;
    const char *s = luaL_checklstring(L, 3, &len);
    SGL_CHECK(L, sg_h5_write_text(f, name, s, len));
    return 0;
}

static int l_read_text(lua_State *L)
{
    size_t len = 0;
    char *s = sg_h5_read_text(checkfile(L, 1), luaL_checkstring(L, 2), &len);
    if (!s)
        return sgl_error(L);
    lua_pushlstring(L, s, len);
    free(s);
    return 1;
}

/* attribute get/set on obj: value at vidx (none = get). */
static int attr_common(lua_State *L, sg_h5file *f, const char *obj, const char *name, int vidx)
{
    if (lua_isnone(L, vidx)) {
        sg_h5_attrval v;
        int rc = sg_h5_attr_get(f, obj, name, &v);
        if (rc < 0)
            return sgl_error(L);
        if (rc == 0)
            lua_pushnil(L);
        else if (v.kind == SG_H5_ATTR_TEXT)
            lua_pushstring(L, v.text);
        else if (v.kind == SG_H5_ATTR_INT)
            lua_pushinteger(L, v.i);
        else
            lua_pushnumber(L, v.d);
        sg_h5_attr_clear(&v);
        return 1;
    }
    int rc;
    switch (lua_type(L, vidx)) {
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, vidx, &len);
        if (strlen(s) != len)
            return luaL_error(L, "h5 attr '%s': text contains a NUL byte", name);
        rc = sg_h5_attr_set_text(f, obj, name, s);
        break;
    }
    case LUA_TNUMBER:
        rc = lua_isinteger(L, vidx) ? sg_h5_attr_set_i64(f, obj, name, lua_tointeger(L, vidx))
                                    : sg_h5_attr_set_f64(f, obj, name, lua_tonumber(L, vidx));
        break;
    case LUA_TBOOLEAN:
        rc = sg_h5_attr_set_i64(f, obj, name, lua_toboolean(L, vidx));
        break;
    default:
        return luaL_error(L, "h5 attr '%s': value must be a string, number or boolean, got %s",
                          name, luaL_typename(L, vidx));
    }
    if (rc < 0)
        return sgl_error(L);
    return 0;
}

static int l_attr(lua_State *L)
{
    sg_h5file *f = checkfile(L, 1);
    return attr_common(L, f, "/", luaL_checkstring(L, 2), 3);
}

static int l_attr_of(lua_State *L)
{
    sg_h5file *f = checkfile(L, 1);
    return attr_common(L, f, luaL_checkstring(L, 2), luaL_checkstring(L, 3), 4);
}

static int attr_name_cb(void *ud, const char *name)
{
    lua_State *L = ud;
    lua_pushstring(L, name);
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    return 0;
}

/* attrs([obj]) -> {name = value, ...} */
static int l_attrs(lua_State *L)
{
    sg_h5file *f = checkfile(L, 1);
    const char *obj = luaL_optstring(L, 2, "/");
    lua_settop(L, 2);
    lua_newtable(L);   /* 3: names */
    if (sg_h5_attr_list(f, obj, attr_name_cb, L) < 0)
        return sgl_error(L);
    lua_newtable(L);   /* 4: result */
    lua_Integer n = (lua_Integer)lua_rawlen(L, 3);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, 3, i);
        const char *name = lua_tostring(L, -1);
        attr_common(L, f, obj, name, 100);   /* index 100 is none: a get */
        lua_settable(L, 4);
    }
    return 1;
}

static int l_log_rows(lua_State *L)
{
    int64_t n = sg_h5log_rows(checkfile(L, 1), luaL_checkstring(L, 2));
    if (n < 0)
        return sgl_error(L);
    lua_pushinteger(L, n);
    return 1;
}

static int l_log_truncate(lua_State *L)
{
    SGL_CHECK(L, sg_h5log_truncate(checkfile(L, 1), luaL_checkstring(L, 2), luaL_checkinteger(L, 3)));
    return 0;
}

/* --- logs ------------------------------------------------------------------ */

static sg_h5log **checklog(lua_State *L, int idx)
{
    sg_h5log **u = luaL_checkudata(L, idx, LOG_MT);
    if (!*u)
        luaL_error(L, "h5 log: freed");
    return u;
}

static int l_newlog(lua_State *L)
{
    const char *group = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    int n = (int)luaL_len(L, 2);
    if (n <= 0 || n > 1024)
        return luaL_error(L, "h5 log '%s': %d columns (1..1024 allowed)", group, n);
    sg_h5log **u = lua_newuserdatauv(L, sizeof *u, 0);
    *u = NULL;
    luaL_setmetatable(L, LOG_MT);
    const char **names = lua_newuserdatauv(L, (size_t)n * sizeof *names, 0);
    sg_h5_type *types = lua_newuserdatauv(L, (size_t)n * sizeof *types, 0);
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, 2, i + 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            return luaL_error(L, "h5 log '%s': column %d is a %s, not a string", group, i + 1,
                              luaL_typename(L, -1));
        names[i] = lua_tostring(L, -1);   /* anchored by the table at 2 */
        lua_pop(L, 1);
        types[i] = SG_H5_F64;
        if (lua_istable(L, 3)) {
            lua_rawgeti(L, 3, i + 1);
            if (!lua_isnil(L, -1))
                types[i] = check_type(L, -1, luaL_checkstring(L, -1));
            lua_pop(L, 1);
        }
    }
    *u = sg_h5log_new(group, n, names, types);
    if (!*u)
        return sgl_error(L);
    lua_pop(L, 2);
    return 1;
}

static int l_log_gc(lua_State *L)
{
    sg_h5log **u = luaL_checkudata(L, 1, LOG_MT);
    sg_h5log_free(*u);
    *u = NULL;
    return 0;
}

/* append(values): a table of numbers in column order. */
static int l_log_append(lua_State *L)
{
    sg_h5log *l = *checklog(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    int n = sg_h5log_ncols(l);
    double row[1024];
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, 2, i + 1);
        int isnum;
        row[i] = lua_isnil(L, -1) ? NAN : lua_tonumberx(L, -1, &isnum);
        if (!lua_isnil(L, -1) && !isnum)
            return luaL_error(L, "h5 log append: column '%s' got a %s, not a number",
                              sg_h5log_colname(l, i), luaL_typename(L, -1));
        lua_pop(L, 1);
    }
    SGL_CHECK(L, sg_h5log_append(l, row));
    return 0;
}

static int l_log_pending(lua_State *L)
{
    lua_pushinteger(L, sg_h5log_pending(*checklog(L, 1)));
    return 1;
}

static int l_log_write(lua_State *L)
{
    sg_h5log *l = *checklog(L, 1);
    SGL_CHECK(L, sg_h5log_write(l, checkfile(L, 2)));
    return 0;
}

static int l_log_columns(lua_State *L)
{
    sg_h5log *l = *checklog(L, 1);
    int n = sg_h5log_ncols(l);
    lua_createtable(L, n, 0);
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushstring(L, sg_h5log_colname(l, i));
        lua_rawseti(L, -3, i + 1);
        lua_pushstring(L, sg_h5_type_name(sg_h5log_coltype(l, i)));
        lua_rawseti(L, -2, i + 1);
    }
    return 2;
}

void sgl_open_h5(lua_State *L)
{
    static const luaL_Reg file_methods[] = {
        {"close", l_close}, {"discard", l_discard}, {"flush", l_flush}, {"path", l_path},
        {"writable", l_writable}, {"exists", l_exists}, {"stat", l_stat}, {"list", l_list},
        {"mkgroup", l_mkgroup}, {"remove", l_remove}, {"write", l_write}, {"read", l_read},
        {"read_into", l_read_into}, {"write_array", l_write_array}, {"read_array", l_read_array},
        {"write_text", l_write_text}, {"read_text", l_read_text}, {"attr", l_attr},
        {"attr_of", l_attr_of}, {"attrs", l_attrs}, {"log_rows", l_log_rows},
        {"log_truncate", l_log_truncate}, {"verify", l_verify}, {NULL, NULL}};
    static const luaL_Reg file_meta[] = {
        {"__gc", l_gc}, {"__close", l_gc}, {"__tostring", l_tostring}, {NULL, NULL}};
    sgl_newclass(L, FILE_MT, file_meta, file_methods);

    static const luaL_Reg log_methods[] = {
        {"append", l_log_append}, {"pending", l_log_pending}, {"write", l_log_write},
        {"columns", l_log_columns}, {NULL, NULL}};
    static const luaL_Reg log_meta[] = {{"__gc", l_log_gc}, {NULL, NULL}};
    sgl_newclass(L, LOG_MT, log_meta, log_methods);

    static const luaL_Reg fns[] = {
        {"open", l_open}, {"open_atomic", l_open_atomic}, {"newlog", l_newlog}, {NULL, NULL}};
    lua_newtable(L);
    luaL_setfuncs(L, fns, 0);
    lua_pushinteger(L, SG_H5_FORMAT_VERSION);
    lua_setfield(L, -2, "format_version");
    lua_setfield(L, -2, "h5");
}
