/*
 * l_data.c - the Lua face of datasets and batch loaders (`sgdsa.core.data`).
 *
 *   D.idx(images_path, labels_path, classes [, name])         -> Dataset
 *   D.cifar({paths...}, "cifar10"|"cifar100", fine [, name])  -> Dataset
 *   D.hdf5(path, {images=, labels=, layout="NCHW"|"NHWC", classes=} [, name])
 *   D.loader(dataset, {batch=, shuffle=, drop_last=, pad=, crop=, flip=,
 *            mean={...}, std={...}, prefetch=, workers=}, shuffle_gen, augment_gen) -> Loader
 *
 * Dataset: size(), shape() -> {c,h,w}, classes(), dtype(), name(), limit(n),
 *   split(n, gen) -> Dataset, stats() -> {mean...}, {std...},
 *   check_shape(pad, {c,h,w} [, who]), images() -> tensor, labels() -> tensor.
 * Loader: next() -> x (float32 n x c x h x w), y (int32 n) | nil at the end;
 *   next_into(x, y [, slot]) -> n, first (position of the batch's first image),
 *   total (images of the whole batch; n is this shard's) | nil
 *   (cuda x, y: slot = an asynchronous copy, see core.cuda.input_ready);
 *   start_epoch(e) (0-based); position() -> epoch, index;
 *   size(), nbatches(), batch(), shape(); state() -> {epoch, index, perm (int32
 *   tensor, 0-based), shuffle={4}, augment={4}}; set_state(t); peek(e, first, n);
 *   shard(rank, count): make only that slice of every batch (data-parallel runs);
 *   free() (also __gc and __close).
 * Epochs are 0-based here; lua/sgdsa/data.lua presents them 1-based.
 * Userdata are created empty before the C object exists, so an error never leaks.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "binding.h"
#include "data.h"
#include "l_data.h"
#include "device.h"

#define DATASET_MT "sgdsa.Dataset"
#define LOADER_MT "sgdsa.Loader"

/* ---- datasets ------------------------------------------------------------------ */
static sg_dataset **newds(lua_State *L)
{
    sg_dataset **ud = lua_newuserdatauv(L, sizeof *ud, 0);
    *ud = NULL;
    luaL_setmetatable(L, DATASET_MT);
    return ud;
}

static sg_dataset *checkds(lua_State *L, int idx)
{
    sg_dataset **ud = luaL_checkudata(L, idx, DATASET_MT);
    if (!*ud)
        luaL_error(L, "bad argument #%d: dataset was freed", idx);
    return *ud;
}

static int ds_gc(lua_State *L)
{
    sg_dataset **ud = luaL_checkudata(L, 1, DATASET_MT);
    sg_dataset_release(*ud);
    *ud = NULL;
    return 0;
}

static int push_ds(lua_State *L, sg_dataset **ud, sg_dataset *d)
{
    if (!d)
        return sgl_error(L);
    *ud = d;
    size_t bytes = (size_t)d->n * sg_dataset_image_bytes(d);
    if (bytes >= (1u << 20))
        lua_gc(L, LUA_GCSTEP, (int)(bytes >> 20 > (1 << 20) ? (1 << 20) : bytes >> 20));
    return 1;
}

static int l_idx(lua_State *L)
{
    const char *pi = luaL_checkstring(L, 1), *pl = luaL_checkstring(L, 2);
    int classes = (int)luaL_checkinteger(L, 3);
    const char *name = luaL_optstring(L, 4, NULL);
    sg_dataset **ud = newds(L);
    return push_ds(L, ud, sg_idx_load(pi, pl, classes, name));
}

static int l_cifar(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    const char *kind = luaL_checkstring(L, 2);
    int fine = lua_toboolean(L, 3);
    const char *name = luaL_optstring(L, 4, NULL);
    sg_cifar_kind k;
    if (strcmp(kind, "cifar10") == 0)
        k = SG_CIFAR10;
    else if (strcmp(kind, "cifar100") == 0)
        k = SG_CIFAR100;
    else
        return luaL_error(L, "data.cifar: kind '%s' is not \"cifar10\" or \"cifar100\"", kind);
    int n = (int)luaL_len(L, 1);
    if (n < 1 || n > 64)
        return luaL_error(L, "data.cifar: %d files given, expected 1..64", n);
    const char *paths[64];
    for (int i = 0; i < n; i++) {
        lua_geti(L, 1, i + 1);
        paths[i] = lua_tostring(L, -1);
        if (!paths[i])
            return luaL_error(L, "data.cifar: file %d is not a string", i + 1);
        lua_pop(L, 1); /* the table keeps the string alive */
    }
    sg_dataset **ud = newds(L);
    return push_ds(L, ud, sg_cifar_load(paths, n, k, fine, name));
}

static int l_hdf5(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    const char *name = luaL_optstring(L, 3, NULL);
    sg_h5data_opts o = {"images", "labels", SG_LAYOUT_NCHW, 0};
    if (lua_getfield(L, 2, "images") == LUA_TSTRING)
        o.images = lua_tostring(L, -1);
    if (lua_getfield(L, 2, "labels") == LUA_TSTRING)
        o.labels = lua_tostring(L, -1);
    if (lua_getfield(L, 2, "layout") == LUA_TSTRING) {
        const char *lay = lua_tostring(L, -1);
        if (strcmp(lay, "NHWC") == 0)
            o.layout = SG_LAYOUT_NHWC;
        else if (strcmp(lay, "NCHW") != 0)
            return luaL_error(L, "data.hdf5: layout '%s' is not \"NCHW\" or \"NHWC\"", lay);
    }
    if (lua_getfield(L, 2, "classes") != LUA_TNIL)
        o.classes = (int)luaL_checkinteger(L, -1);
    /* the strings stay on the stack (and in the table) during the load */
    sg_dataset **ud = newds(L);
    return push_ds(L, ud, sg_h5data_load(path, &o, name));
}

static int ds_size(lua_State *L)
{
    lua_pushinteger(L, checkds(L, 1)->n);
    return 1;
}

static int ds_shape(lua_State *L)
{
    sg_dataset *d = checkds(L, 1);
    lua_createtable(L, 3, 0);
    lua_pushinteger(L, d->c); lua_rawseti(L, -2, 1);
    lua_pushinteger(L, d->h); lua_rawseti(L, -2, 2);
    lua_pushinteger(L, d->w); lua_rawseti(L, -2, 3);
    return 1;
}

static int ds_classes(lua_State *L)
{
    lua_pushinteger(L, checkds(L, 1)->classes);
    return 1;
}

static int ds_dtype(lua_State *L)
{
    lua_pushstring(L, checkds(L, 1)->dtype == SG_DATA_U8 ? "uint8" : "float32");
    return 1;
}

static int ds_name(lua_State *L)
{
    lua_pushstring(L, checkds(L, 1)->name);
    return 1;
}

static int ds_limit(lua_State *L)
{
    SGL_CHECK(L, sg_dataset_limit(checkds(L, 1), luaL_checkinteger(L, 2)));
    return 0;
}

static int ds_split(lua_State *L)
{
    sg_dataset *d = checkds(L, 1);
    lua_Integer n = luaL_checkinteger(L, 2);
    sg_rng *r = sgl_checkrng(L, 3);
    sg_dataset **ud = newds(L);
    return push_ds(L, ud, sg_dataset_split(d, n, r));
}

static int ds_stats(lua_State *L)
{
    sg_dataset *d = checkds(L, 1);
    double m[SG_DATA_MAXC], s[SG_DATA_MAXC];
    SGL_CHECK(L, sg_dataset_stats(d, m, s));
    lua_createtable(L, d->c, 0);
    lua_createtable(L, d->c, 0);
    for (int c = 0; c < d->c; c++) {
        lua_pushnumber(L, m[c]); lua_rawseti(L, -3, c + 1);
        lua_pushnumber(L, s[c]); lua_rawseti(L, -2, c + 1);
    }
    return 2;
}

static int ds_check_shape(lua_State *L)
{
    sg_dataset *d = checkds(L, 1);
    lua_Integer p = luaL_checkinteger(L, 2);
    if (p < 0 || p > 4096)
        return luaL_error(L, "dataset:check_shape: pad %I outside [0, 4096]", p);
    int pad = (int)p;
    luaL_checktype(L, 3, LUA_TTABLE);
    int v[3];
    for (int i = 0; i < 3; i++) {
        lua_geti(L, 3, i + 1);
        lua_Integer x = luaL_checkinteger(L, -1);
        if (x < 0 || x > INT_MAX)
            return luaL_error(L, "dataset:check_shape: size %I outside [0, %d]", x, INT_MAX);
        v[i] = (int)x;
        lua_pop(L, 1);
    }
    SGL_CHECK(L, sg_dataset_check_shape(d, pad, v[0], v[1], v[2], luaL_optstring(L, 4, NULL)));
    return 0;
}

static int ds_images(lua_State *L)
{
    sg_dataset *d = checkds(L, 1);
    int64_t size[4] = {d->n, d->c, d->h, d->w};
    sg_tensor *t = sg_tensor_new(d->dtype == SG_DATA_U8 ? SG_U8 : SG_F32, SG_CPU, 4, size);
    if (t)
        memcpy(sg_tensor_data(t), d->u8 ? (void *)d->u8 : (void *)d->f32,
               (size_t)d->n * sg_dataset_image_bytes(d));
    sgl_pushtensor(L, t);
    return 1;
}

static int ds_labels(lua_State *L)
{
    sg_dataset *d = checkds(L, 1);
    int64_t size[1] = {d->n};
    sg_tensor *t = sg_tensor_new(SG_I32, SG_CPU, 1, size);
    if (t)
        memcpy(sg_tensor_data(t), d->labels, (size_t)d->n * sizeof(int32_t));
    sgl_pushtensor(L, t);
    return 1;
}

static int ds_tostring(lua_State *L)
{
    sg_dataset **ud = luaL_checkudata(L, 1, DATASET_MT);
    if (!*ud)
        lua_pushstring(L, "sgdsa.Dataset(freed)");
    else
        lua_pushfstring(L, "sgdsa.Dataset(%s: %I images of %dx%dx%d %s, %d classes)",
                        (*ud)->name, (lua_Integer)(*ud)->n, (*ud)->c, (*ud)->h, (*ud)->w,
                        (*ud)->dtype == SG_DATA_U8 ? "uint8" : "float32", (*ud)->classes);
    return 1;
}

/* ---- loaders ----------------------------------------------------------------------- */
/* The batch buffer allocator for loaders made from Lua (see l_data.h). */
static sg_host_alloc_fn host_alloc;
static sg_host_free_fn host_free;
static void *host_ud;
static int host_raw;

void sgl_data_set_host_allocator(sg_host_alloc_fn alloc, sg_host_free_fn free_fn, void *ud,
                                 int raw)
{
    host_alloc = alloc && free_fn ? alloc : NULL;
    host_free = alloc && free_fn ? free_fn : NULL;
    host_ud = ud;
    host_raw = raw;
}

static sg_loader *checkld(lua_State *L, int idx)
{
    sg_loader **ud = luaL_checkudata(L, idx, LOADER_MT);
    if (!*ud)
        luaL_error(L, "bad argument #%d: loader was freed", idx);
    return *ud;
}

sg_loader *sgl_checkloader(lua_State *L, int idx) { return checkld(L, idx); }

static int ld_gc(lua_State *L)
{
    sg_loader **ud = luaL_checkudata(L, 1, LOADER_MT);
    sg_loader_free(*ud);
    *ud = NULL;
    return 0;
}

static int opt_int(lua_State *L, int t, const char *k, int def)
{
    int r = def;
    int ty = lua_getfield(L, t, k);
    if (ty == LUA_TBOOLEAN)
        r = lua_toboolean(L, -1);
    else if (ty != LUA_TNIL) {
        if (!lua_isinteger(L, -1))
            luaL_error(L, "data.loader: option %s must be an integer or boolean, got %s", k,
                       luaL_typename(L, -1));
        lua_Integer v = lua_tointeger(L, -1);
        if (v < INT_MIN || v > INT_MAX) /* (not truncated into range) */
            luaL_error(L, "data.loader: option %s = %I is out of range", k, v);
        r = (int)v;
    }
    lua_pop(L, 1);
    return r;
}

static int l_loader(lua_State *L)
{
    sg_dataset *d = checkds(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    sg_rng *sh = lua_isnoneornil(L, 3) ? NULL : sgl_checkrng(L, 3);
    sg_rng *au = lua_isnoneornil(L, 4) ? NULL : sgl_checkrng(L, 4);
    sg_loader_opts o;
    sg_loader_opts_default(&o);
    o.alloc = host_alloc;
    o.free = host_free;
    o.alloc_ud = host_ud;
    if (lua_getfield(L, 2, "batch") != LUA_TNIL)
        o.batch = luaL_checkinteger(L, -1);
    lua_pop(L, 1);
    o.shuffle = opt_int(L, 2, "shuffle", 1);
    o.drop_last = opt_int(L, 2, "drop_last", 0);
    o.pad = opt_int(L, 2, "pad", 0);
    o.crop = opt_int(L, 2, "crop", 0);
    o.flip = opt_int(L, 2, "flip", 0);
    o.prefetch = opt_int(L, 2, "prefetch", 2);
    o.workers = opt_int(L, 2, "workers", 1);
    o.raw = opt_int(L, 2, "raw", host_raw);
    int tm = lua_getfield(L, 2, "mean"), ts = lua_getfield(L, 2, "std");
    if (tm != LUA_TNIL || ts != LUA_TNIL) {
        if (tm != LUA_TTABLE || ts != LUA_TTABLE)
            return luaL_error(L, "data.loader: mean and std must both be tables of %d numbers",
                              d->c);
        if (luaL_len(L, -2) != d->c || luaL_len(L, -1) != d->c)
            return luaL_error(L, "data.loader: mean and std need %d numbers (one per channel "
                              "of %s), got %d and %d", d->c, d->name, (int)luaL_len(L, -2),
                              (int)luaL_len(L, -1));
        o.normalize = 1;
        for (int c = 0; c < d->c; c++) {
            lua_geti(L, -2, c + 1);
            lua_geti(L, -2, c + 1);
            o.mean[c] = luaL_checknumber(L, -2);
            o.std[c] = luaL_checknumber(L, -1);
            lua_pop(L, 2);
        }
    }
    lua_pop(L, 2);
    sg_loader **ud = lua_newuserdatauv(L, sizeof *ud, 1);
    *ud = NULL;
    luaL_setmetatable(L, LOADER_MT);
    lua_pushvalue(L, 1); /* keep the dataset userdata alive with the loader */
    lua_setiuservalue(L, -2, 1);
    *ud = sg_loader_new(d, &o, o.shuffle ? sh : NULL, (o.crop || o.flip) ? au : NULL);
    if (!*ud)
        return sgl_error(L);
    return 1;
}

static sg_tensor *batch_tensor(sg_dtype dt, int ndim, const int64_t *size)
{
    return sg_tensor_new(dt, SG_CPU, ndim, size);
}

/* The loader's next batch in *b, the shapes of its images (sx: n x c x h x w)
 * and labels (sy: n), and their sizes in bytes; 0 with nil pushed after the
 * epoch's last batch. Raises on errors. */
static int next_batch(lua_State *L, sg_loader *l, sg_batch *b, int64_t sx[4], int64_t sy[1],
                      size_t *nx, size_t *ny)
{
    int r = sg_loader_next(l, b);
    if (r <= 0) {
        if (r < 0)
            sgl_error(L);   /* raises */
        lua_pushnil(L);
        return 0;
    }
    int c, h, w;
    sg_loader_shape(l, &c, &h, &w);
    sx[0] = b->n; sx[1] = c; sx[2] = h; sx[3] = w;
    sy[0] = b->n;
    *nx = (size_t)b->n * c * h * w * sizeof(float);
    *ny = (size_t)b->n * sizeof(int32_t);
    return 1;
}

static int ld_next(lua_State *L)
{
    sg_loader *l = checkld(L, 1);
    sg_batch b;
    int64_t sx[4], sy[1];
    size_t nx, ny;
    if (!next_batch(L, l, &b, sx, sy, &nx, &ny))
        return 1;
    sg_tensor *x = batch_tensor(SG_F32, 4, sx);
    if (x)
        sg_loader_expand(l, &b, sg_tensor_data(x));
    sgl_pushtensor(L, x);
    sg_tensor *y = batch_tensor(SG_I32, 1, sy);
    if (y)
        memcpy(sg_tensor_data(y), b.y, ny);
    sgl_pushtensor(L, y);
    return 2;
}

static int ld_next_into(lua_State *L)
{
    sg_loader *l = checkld(L, 1);
    sg_tensor *x = sgl_checktensor(L, 2), *y = sgl_checktensor(L, 3);
    sg_batch b;
    int64_t sx[4], sy[1];
    size_t nx, ny;
    /* checked before the loader moves on */
    sg_devtype dev = x->storage->device;
    if (x->dtype != SG_F32 || y->dtype != SG_I32 || y->storage->device != dev ||
        (dev != SG_CPU && dev != SG_CUDA))
        return luaL_error(L, "loader:next_into: x must be a float32 and y an int32 tensor, "
                          "both on the cpu or both on cuda (got %s %s and %s %s)",
                          sg_dtype_name(x->dtype), sg_device_name(x->storage->device),
                          sg_dtype_name(y->dtype), sg_device_name(y->storage->device));
    if (!next_batch(L, l, &b, sx, sy, &nx, &ny))
        return 1;
    SGL_CHECK(L, sg_tensor_resize(x, 4, sx));
    SGL_CHECK(L, sg_tensor_resize(y, 1, sy));
    if (dev == SG_CPU) {
        sg_loader_expand(l, &b, sg_tensor_data(x));
        memcpy(sg_tensor_data(y), b.y, ny);
    } else {
        /* Straight from the loader's batch buffer (pinned when the loader was made
         * with core.cuda.use_pinned_loader_memory(true)) on the input-copy stream,
         * after the compute already queued. Without a slot: compute queued next
         * waits for it and so does the host, which returns the buffer to the
         * loader before its next call. With a slot (double buffering): neither
         * waits; core.cuda.input_ready(slot) orders compute after the copy and
         * core.cuda.input_wait(slot) must return before the loader's next call. */
        int async = !lua_isnoneornil(L, 4);
        int slot = async ? (int)luaL_checkinteger(L, 4) : 0;
        int rc;
        if (b.u8) { /* raw: uint8 images, shifts and table, transformed on the device */
            int c, h, w, pad;
            sg_loader_raw_geom(l, &c, &h, &w, &pad);
            rc = sg_device_input_copy(dev, slot, sg_tensor_data(y), b.y, ny) != 0 ||
                 sg_device_input_expand(dev, slot, sg_tensor_data(x), b.u8, b.n, sg_loader_batch(l),
                                        b.aug, b.aug_bytes, c, h, w, pad) != 0;
        } else {
            rc = sg_device_input_copy(dev, slot, sg_tensor_data(x), b.x, nx) != 0 ||
                 sg_device_input_copy(dev, slot, sg_tensor_data(y), b.y, ny) != 0;
        }
        if (rc ||
            (!async && (sg_device_input_ready(dev, slot) != 0 || sg_device_input_wait(dev, slot) != 0))) {
            sg_adderr("loader:next_into (cuda)");
            return sgl_error(L);
        }
    }
    lua_pushinteger(L, b.n);
    lua_pushinteger(L, b.first);
    lua_pushinteger(L, b.total);
    return 3;
}

static int ld_shard(lua_State *L)
{
    sg_loader *l = checkld(L, 1);
    lua_Integer r = luaL_checkinteger(L, 2), n = luaL_checkinteger(L, 3);
    if (n < 1 || n > INT_MAX || r < 0 || r >= n)
        return luaL_error(L, "loader:shard: shard %I of %I (need 0 <= shard < count)", r, n);
    SGL_CHECK(L, sg_loader_set_shard(l, (int)r, (int)n));
    return 0;
}

static int ld_start_epoch(lua_State *L)
{
    SGL_CHECK(L, sg_loader_start_epoch(checkld(L, 1), luaL_checkinteger(L, 2)));
    return 0;
}

static int ld_position(lua_State *L)
{
    int64_t e, i;
    uint64_t s1[SG_RNG_STATE_LEN], s2[SG_RNG_STATE_LEN];
    sg_loader_get_state(checkld(L, 1), &e, &i, NULL, s1, s2);
    lua_pushinteger(L, e);
    lua_pushinteger(L, i);
    return 2;
}

static int ld_size(lua_State *L)
{
    lua_pushinteger(L, sg_loader_size(checkld(L, 1)));
    return 1;
}

static int ld_nbatches(lua_State *L)
{
    lua_pushinteger(L, sg_loader_nbatches(checkld(L, 1)));
    return 1;
}

static int ld_batch(lua_State *L)
{
    lua_pushinteger(L, sg_loader_batch(checkld(L, 1)));
    return 1;
}

static int ld_shape(lua_State *L)
{
    int c, h, w;
    sg_loader_shape(checkld(L, 1), &c, &h, &w);
    lua_createtable(L, 3, 0);
    lua_pushinteger(L, c); lua_rawseti(L, -2, 1);
    lua_pushinteger(L, h); lua_rawseti(L, -2, 2);
    lua_pushinteger(L, w); lua_rawseti(L, -2, 3);
    return 1;
}

static void push_u64s(lua_State *L, const uint64_t *v, int n)
{
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushinteger(L, (lua_Integer)v[i]);
        lua_rawseti(L, -2, i + 1);
    }
}

static int ld_state(lua_State *L)
{
    sg_loader *l = checkld(L, 1);
    int64_t n = sg_loader_perm_len(l), e, i;
    uint64_t s1[SG_RNG_STATE_LEN], s2[SG_RNG_STATE_LEN];
    int64_t *perm = lua_newuserdatauv(L, (size_t)n * sizeof *perm, 0); /* scratch, collected */
    sg_loader_get_state(l, &e, &i, perm, s1, s2);
    int64_t size[1] = {n};
    sg_tensor *pt = sg_tensor_new(SG_I32, SG_CPU, 1, size);
    if (pt) {
        int32_t *p = sg_tensor_data(pt);
        for (int64_t k = 0; k < n; k++)
            p[k] = (int32_t)perm[k];
    }
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, e); lua_setfield(L, -2, "epoch");
    lua_pushinteger(L, i); lua_setfield(L, -2, "index");
    sgl_pushtensor(L, pt);
    lua_setfield(L, -2, "perm");
    push_u64s(L, s1, SG_RNG_STATE_LEN);
    lua_setfield(L, -2, "shuffle");
    push_u64s(L, s2, SG_RNG_STATE_LEN);
    lua_setfield(L, -2, "augment");
    return 1;
}

static int get_u64s(lua_State *L, int t, const char *k, uint64_t *v, int n)
{
    if (lua_getfield(L, t, k) == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    if (!lua_istable(L, -1) || luaL_len(L, -1) != n)
        return luaL_error(L, "loader:set_state: %s must be a table of %d integers", k, n);
    for (int i = 0; i < n; i++) {
        lua_geti(L, -1, i + 1);
        if (!lua_isinteger(L, -1))
            return luaL_error(L, "loader:set_state: %s[%d] is not an integer", k, i + 1);
        v[i] = (uint64_t)lua_tointeger(L, -1);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return 1;
}

static int ld_set_state(lua_State *L)
{
    sg_loader *l = checkld(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    int64_t e, i;
    uint64_t s1[SG_RNG_STATE_LEN], s2[SG_RNG_STATE_LEN];
    sg_loader_get_state(l, &e, &i, NULL, s1, s2); /* absent fields keep their value */
    lua_getfield(L, 2, "epoch");
    lua_getfield(L, 2, "index");
    if (!lua_isinteger(L, -2) || !lua_isinteger(L, -1))
        return luaL_error(L, "loader:set_state: epoch and index must be integers");
    e = lua_tointeger(L, -2);
    i = lua_tointeger(L, -1);
    lua_pop(L, 2);
    get_u64s(L, 2, "shuffle", s1, SG_RNG_STATE_LEN);
    get_u64s(L, 2, "augment", s2, SG_RNG_STATE_LEN);
    int64_t *perm = NULL, n = sg_loader_perm_len(l);
    lua_getfield(L, 2, "perm");
    if (!lua_isnil(L, -1)) {
        sg_tensor *pt = sgl_checktensor(L, -1);
        if (pt->dtype != SG_I32 || pt->ndim != 1 || pt->size[0] != n ||
            !sg_tensor_is_contiguous(pt) || pt->storage->device != SG_CPU)
            return luaL_error(L, "loader:set_state: perm must be a contiguous int32 cpu vector "
                              "of %I entries (the dataset's size)", (lua_Integer)n);
        perm = lua_newuserdatauv(L, (size_t)n * sizeof *perm, 0);
        const int32_t *p = sg_tensor_data(pt);
        for (int64_t k = 0; k < n; k++)
            perm[k] = p[k];
    }
    SGL_CHECK(L, sg_loader_set_state(l, e, i, perm, s1, s2));
    return 0;
}

static int ld_peek(lua_State *L)
{
    sg_loader *l = checkld(L, 1);
    lua_Integer e = luaL_checkinteger(L, 2), first = luaL_checkinteger(L, 3),
                n = luaL_checkinteger(L, 4);
    if (n < 0 || n > sg_loader_size(l))
        return luaL_error(L, "loader:peek: count %I outside [0, %I]", n,
                          (lua_Integer)sg_loader_size(l));
    int c, h, w;
    sg_loader_shape(l, &c, &h, &w);
    int64_t sx[4] = {n, c, h, w}, sy[1] = {n};
    sg_tensor *x = batch_tensor(SG_F32, 4, sx);
    sgl_pushtensor(L, x);
    sg_tensor *y = batch_tensor(SG_I32, 1, sy);
    sgl_pushtensor(L, y);
    SGL_CHECK(L, sg_loader_peek(l, e, first, n, sg_tensor_data(x), sg_tensor_data(y)));
    return 2;
}

static int ld_tostring(lua_State *L)
{
    sg_loader **ud = luaL_checkudata(L, 1, LOADER_MT);
    if (!*ud) {
        lua_pushstring(L, "sgdsa.Loader(freed)");
        return 1;
    }
    int c, h, w;
    sg_loader_shape(*ud, &c, &h, &w);
    lua_pushfstring(L, "sgdsa.Loader(%s: %I images, batch %I, %I batches of %dx%dx%d)",
                    sg_loader_dataset(*ud)->name, (lua_Integer)sg_loader_size(*ud),
                    (lua_Integer)sg_loader_batch(*ud), (lua_Integer)sg_loader_nbatches(*ud),
                    c, h, w);
    return 1;
}

static void new_type(lua_State *L, const char *mt, const luaL_Reg *methods, lua_CFunction gc,
                     lua_CFunction tostr)
{
    luaL_newmetatable(L, mt);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "free");
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, tostr);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);
}

void sgl_open_data(lua_State *L)
{
    static const luaL_Reg dm[] = {
        {"size", ds_size}, {"shape", ds_shape}, {"classes", ds_classes}, {"dtype", ds_dtype},
        {"name", ds_name}, {"limit", ds_limit}, {"split", ds_split}, {"stats", ds_stats},
        {"check_shape", ds_check_shape}, {"images", ds_images}, {"labels", ds_labels},
        {NULL, NULL}};
    static const luaL_Reg lm[] = {
        {"next", ld_next}, {"next_into", ld_next_into}, {"start_epoch", ld_start_epoch},
        {"position", ld_position}, {"size", ld_size}, {"nbatches", ld_nbatches},
        {"batch", ld_batch}, {"shape", ld_shape}, {"state", ld_state},
        {"set_state", ld_set_state}, {"peek", ld_peek}, {"shard", ld_shard}, {NULL, NULL}};
    new_type(L, DATASET_MT, dm, ds_gc, ds_tostring);
    new_type(L, LOADER_MT, lm, ld_gc, ld_tostring);
    static const luaL_Reg fns[] = {
        {"idx", l_idx}, {"cifar", l_cifar}, {"hdf5", l_hdf5}, {"loader", l_loader},
        {NULL, NULL}};
    lua_newtable(L);
    luaL_setfuncs(L, fns, 0);
    lua_setfield(L, -2, "data");
}
