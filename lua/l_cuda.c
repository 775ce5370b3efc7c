/*
 * l_cuda.c - the `sgdsa.core.cuda` table: the GPU's availability, settings,
 * memory statistics and input copies (core/device.h). The layer ops are
 * bound once for both devices in lua/l_nn.c: each core.nn call runs on the
 * device of its tensor arguments.
 *
 * core.cuda (every build; without the backend available() is false with the
 * reason, there are no CUDA tensors, and what needs a GPU raises the reason):
 *   available()            -> true | false, reason
 *   device_count()         -> n (0 without a driver/GPU or without the backend)
 *   device_name()          -> "NVIDIA H200 (sm_90, 139.8 GiB)" | nil, reason
 *   synchronize()          waits for queued GPU work (no-op without CUDA)
 *   set_tf32(bool)         -> previous; TF32 for GEMMs and convolutions (off by
 *                          default); an error when cuBLAS refuses the math mode
 *   set_deterministic(bool)-> previous; deterministic cuDNN algorithms only
 *   memory_stats()         -> {in_use=, cached=, peak_in_use=, device_allocs=,
 *                              device_frees=, pool_hits=, caching=, host_waits=,
 *                              launches=}
 *                          | nil, reason (caching false under SGDSA_CUDA_NO_CACHE=1;
 *                          host_waits: times the host has waited for the device;
 *                          launches: kernels and cuDNN/cuBLAS calls queued)
 *   empty_cache()          gives the pool's free blocks back to the driver
 *   conv_algorithms()      -> list of the cuDNN algorithms chosen so far, one
 *                          {input="NxCxHxW", weight="KxCxKHxKW", stride="SHxSW",
 *                          pad="PHxPW", tf32=, deterministic=, pass="forward" |
 *                          "backward-data" | "backward-filter", algo=, math=
 *                          (cuDNN's enum values), workspace= (bytes), ms= (the
 *                          timed time per call; nil: the heuristics' choice)}
 *                          per geometry, settings and pass (empty without CUDA)
 *   input_copy(dst, src [, slot])  copies a cpu tensor into a cuda tensor of
 *                          the same size on the copy stream, after the compute
 *                          queued so far. Without a slot, compute queued next
 *                          waits for it; with a slot (0 or 1: double buffering)
 *                          nothing waits until input_ready(slot). The source
 *                          must stay untouched until input_wait(slot)
 *   input_ready([slot])    compute queued from now on waits for the slot's copies
 *   input_wait([slot])     the host waits for the slot's copies (slot 0 default)
 *   pad2d(x, y, p), crop2d(dy, dx, p)  core.nn.pad2d/crop2d for cuda tensors
 *                          only (x on the GPU; y moved there when a cpu buffer
 *                          of its own)
 *   readback()             -> a loss read-back slot: core.nn.cross_entropy(logits,
 *                          labels, dlogits, slot) on the GPU leaves the loss on
 *                          the device, queues its copy into the slot and returns
 *                          the slot; slot:read() -> loss, correct waits for it
 *                          (not again for a slot queued before one already read:
 *                          read the newest first); slot:free() (also __gc and
 *                          __close) hands it back for reuse
 *   use_pinned_loader_memory(on) -> previous; data loaders created while on
 *                          hand out batches in pinned host memory
 *                          (the backend's host allocator), so copies to the GPU are
 *                          asynchronous DMA, and those of uint8 datasets hand
 *                          out raw batches (uint8 images, shifts, flips) that
 *                          loader:next_into pads, crops, flips and normalizes
 *                          on the GPU (SGDSA_GPU_INPUT=host: on the host
 *                          instead); off by default
 *   built                  true when the backend is compiled in
 * core.cuda_available is core.cuda.available (what sgdsa.nn asks).
 */
#include <stdlib.h>
#include <string.h>

#include "binding.h"
#include "device.h"
#include "l_data.h"
#include "ops.h"

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

/* nil and the reason there is no usable GPU (the pending sg_geterr()). */
static int no_gpu(lua_State *L)
{
    lua_pushnil(L);
    lua_pushstring(L, sg_geterr());
    return 2;
}

/* Raise the reason there is no backend (sgdsa built without it). */
static int unavailable(lua_State *L)
{
    sg_cuda_available();
    return sgl_error(L);
}

static int l_device_count(lua_State *L)
{
    int n = sg_device_count(SG_CUDA);
    lua_pushinteger(L, n > 0 ? n : 0);
    return 1;
}

static int l_device_name(lua_State *L)
{
    char buf[256];
    if (!sg_cuda_available() || sg_device_describe(SG_CUDA, buf, sizeof buf) != 0)
        return no_gpu(L);
    lua_pushstring(L, buf);
    return 1;
}

/* f(SG_CUDA) when there is a device; nothing to wait for or free otherwise. */
static int on_device(lua_State *L, int (*f)(sg_devtype))
{
    if (sg_device_count(SG_CUDA) > 0)
        SGL_CHECK(L, f(SG_CUDA));
    return 0;
}

static int l_synchronize(lua_State *L) { return on_device(L, sg_device_synchronize); }
static int l_empty_cache(lua_State *L) { return on_device(L, sg_device_empty_cache); }
/* f(SG_CUDA, slot) (argument 1, default 0) when there is a device. */
static int on_slot(lua_State *L, int (*f)(sg_devtype, int))
{
    int slot = (int)luaL_optinteger(L, 1, 0);
    if (sg_device_count(SG_CUDA) > 0)
        SGL_CHECK(L, f(SG_CUDA, slot));
    return 0;
}

static int l_input_wait(lua_State *L) { return on_slot(L, sg_device_input_wait); }
static int l_input_ready(lua_State *L) { return on_slot(L, sg_device_input_ready); }

/* set_tf32, set_deterministic: the previous value (without the backend:
 * accepted, always off). TF32 reaches cuBLAS at once when the backend is
 * initialized; a refusal is an error (cuDNN keeps the setting). */
static int set_flag(lua_State *L, int (*get)(sg_devtype), int (*set)(sg_devtype, int))
{
    luaL_checkany(L, 1);
    int prev = get(SG_CUDA);
    if (prev >= 0)
        SGL_CHECK(L, set(SG_CUDA, lua_toboolean(L, 1)));
    lua_pushboolean(L, prev > 0);
    return 1;
}

static int l_set_tf32(lua_State *L)
{
    return set_flag(L, sg_device_get_tf32, sg_device_set_tf32);
}

static int l_set_deterministic(lua_State *L)
{
    return set_flag(L, sg_device_get_deterministic, sg_device_set_deterministic);
}

static int l_memory_stats(lua_State *L)
{
    sg_mem_stats s;
    if (!sg_cuda_available() || sg_device_mem_stats(SG_CUDA, &s) != 0)
        return no_gpu(L);
    lua_createtable(L, 0, 8);
    lua_pushinteger(L, (lua_Integer)s.in_use); lua_setfield(L, -2, "in_use");
    lua_pushinteger(L, (lua_Integer)s.cached); lua_setfield(L, -2, "cached");
    lua_pushinteger(L, (lua_Integer)s.peak_in_use); lua_setfield(L, -2, "peak_in_use");
    lua_pushinteger(L, (lua_Integer)s.device_allocs); lua_setfield(L, -2, "device_allocs");
    lua_pushinteger(L, (lua_Integer)s.device_frees); lua_setfield(L, -2, "device_frees");
    lua_pushinteger(L, (lua_Integer)s.pool_hits); lua_setfield(L, -2, "pool_hits");
    lua_pushboolean(L, s.caching); lua_setfield(L, -2, "caching");
    lua_pushinteger(L, (lua_Integer)sg_device_host_waits(SG_CUDA));
    lua_setfield(L, -2, "host_waits");
    lua_pushinteger(L, (lua_Integer)sg_device_launches(SG_CUDA));
    lua_setfield(L, -2, "launches");
    return 1;
}

static int l_conv_algorithms(lua_State *L)
{
    int n = sg_device_built(SG_CUDA) ? sg_device_conv_choices(SG_CUDA, NULL, 0) : 0;
    sg_conv_choice *c = n > 0 ? malloc((size_t)n * sizeof *c) : NULL;
    if (n > 0 && !c)
        return luaL_error(L, "conv_algorithms: out of memory (%d entries)", n);
    if (c) {
        /* no more than n: plans are only added */
        const int m = sg_device_conv_choices(SG_CUDA, c, n);
        n = m < n ? m : n;
    }
    if (n < 0)
        n = 0;
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        const int64_t *k = c[i].key;
        lua_createtable(L, 0, 11);
        lua_pushfstring(L, "%Ix%Ix%Ix%I", (lua_Integer)k[0], (lua_Integer)k[1], (lua_Integer)k[2],
                        (lua_Integer)k[3]);
        lua_setfield(L, -2, "input");
        lua_pushfstring(L, "%Ix%Ix%Ix%I", (lua_Integer)k[4], (lua_Integer)k[1], (lua_Integer)k[5],
                        (lua_Integer)k[6]);
        lua_setfield(L, -2, "weight");
        lua_pushfstring(L, "%Ix%I", (lua_Integer)k[7], (lua_Integer)k[8]);
        lua_setfield(L, -2, "stride");
        lua_pushfstring(L, "%Ix%I", (lua_Integer)k[9], (lua_Integer)k[10]);
        lua_setfield(L, -2, "pad");
        lua_pushboolean(L, c[i].tf32); lua_setfield(L, -2, "tf32");
        lua_pushboolean(L, c[i].deterministic); lua_setfield(L, -2, "deterministic");
        lua_pushstring(L, c[i].pass); lua_setfield(L, -2, "pass");
        lua_pushinteger(L, c[i].algo); lua_setfield(L, -2, "algo");
        lua_pushinteger(L, c[i].math); lua_setfield(L, -2, "math");
        lua_pushinteger(L, (lua_Integer)c[i].workspace); lua_setfield(L, -2, "workspace");
        if (c[i].ms >= 0) {
            lua_pushnumber(L, c[i].ms);
            lua_setfield(L, -2, "ms");
        }
        lua_rawseti(L, -2, i + 1);
    }
    free(c);
    return 1;
}

static int l_input_copy(lua_State *L)
{
    sg_tensor *dst = sgl_checktensor(L, 1), *src = sgl_checktensor(L, 2);
    char a[128], b[128];
    if (!sg_device_built(SG_CUDA))
        return unavailable(L);
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
    int async = !lua_isnoneornil(L, 3);
    int slot = async ? (int)luaL_checkinteger(L, 3) : 0;
    SGL_CHECK(L, sg_device_input_copy(SG_CUDA, slot, sg_tensor_data(dst), sg_tensor_data(src),
                                      (size_t)sg_tensor_numel(src) * sg_dtype_size(src->dtype)));
    if (!async)
        SGL_CHECK(L, sg_device_input_ready(SG_CUDA, slot));
    lua_settop(L, 1);
    return 1;
}

static int pinned_loaders;

static int l_use_pinned_loader_memory(lua_State *L)
{
    luaL_checkany(L, 1);
    int on = lua_toboolean(L, 1), prev = pinned_loaders;
    if (on && !sg_cuda_available())
        return sgl_error(L);
    const char *where = on ? getenv("SGDSA_GPU_INPUT") : NULL;
    int raw = 1;
    if (where && *where) {
        if (strcmp(where, "host") != 0 && strcmp(where, "device") != 0)
            return luaL_error(L, "SGDSA_GPU_INPUT=%s: expected \"device\" (pad, crop, flip "
                              "and normalize on the GPU, the default) or \"host\"", where);
        raw = strcmp(where, "device") == 0;
    }
    if (on) {
        void *(*alloc)(size_t, void *);
        void (*release)(void *, void *);
        SGL_CHECK(L, sg_device_host_allocator(SG_CUDA, &alloc, &release));
        sgl_data_set_host_allocator(alloc, release, NULL, raw);
    } else {
        sgl_data_set_host_allocator(NULL, NULL, NULL, 0);
    }
    pinned_loaders = on;
    lua_pushboolean(L, prev);
    return 1;
}

/* pad2d (crop = 0) and crop2d (crop = 1): core.nn's ops, for cuda tensors only. */
static int pad_or_crop(lua_State *L, int crop)
{
    sg_tensor *x = sgl_checktensor(L, 1), *y = sgl_checktensor(L, 2);
    lua_Integer p = luaL_checkinteger(L, 3);
    if (!sg_device_built(SG_CUDA))
        return unavailable(L);
    if (x->storage->device != SG_CUDA) {
        char b[128];
        return luaL_error(L, "%s: %s %s is on %s; core.cuda.%s takes a cuda tensor (core.nn.%s "
                          "either)", crop ? "crop2d" : "pad2d", crop ? "dy" : "input",
                          sg_shape_str(x, b, sizeof b), sg_device_name(x->storage->device),
                          crop ? "crop2d" : "pad2d", crop ? "crop2d" : "pad2d");
    }
    SGL_CHECK(L, crop ? sg_crop2d(x, y, p) : sg_pad2d(x, y, p));
    lua_pushvalue(L, 2);
    return 1;
}

static int l_pad2d(lua_State *L) { return pad_or_crop(L, 0); }
static int l_crop2d(lua_State *L) { return pad_or_crop(L, 1); }

/* ---- loss read-back slots (core/ops.h; the queue is core.nn.cross_entropy's) -------- */

#define READBACK_MT "sgdsa.cuda.Readback"

sg_readback *sgl_checkreadback(lua_State *L, int idx)
{
    sg_readback **u = luaL_checkudata(L, idx, READBACK_MT);
    if (!*u)
        luaL_error(L, "a freed read-back slot");
    return *u;
}

static int l_readback(lua_State *L)
{
    if (!sg_device_built(SG_CUDA))
        return unavailable(L);
    sg_readback **u = lua_newuserdatauv(L, sizeof *u, 0);
    *u = NULL;
    luaL_setmetatable(L, READBACK_MT);
    *u = sg_readback_new(SG_CUDA);
    if (!*u)
        return sgl_error(L);
    return 1;
}

static int rb_read(lua_State *L)
{
    sg_readback *r = sgl_checkreadback(L, 1);
    double loss;
    int64_t correct;
    SGL_CHECK(L, sg_readback_read(SG_CUDA, r, &loss, &correct));
    lua_pushnumber(L, loss);
    lua_pushinteger(L, (lua_Integer)correct);
    return 2;
}

/* free, __gc and __close */
static int rb_free(lua_State *L)
{
    sg_readback **u = luaL_checkudata(L, 1, READBACK_MT);
    sg_readback_free(SG_CUDA, *u);
    *u = NULL;
    return 0;
}

/* cuda.built: whether sgdsa has its CUDA backend (loaded on this access) */
static int l_cuda_index(lua_State *L)
{
    const char *k = lua_tostring(L, 2);
    if (k && !strcmp(k, "built")) {
        lua_pushboolean(L, sg_device_built(SG_CUDA));
        return 1;
    }
    return 0;
}

void sgl_open_cuda(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"available", l_available}, {"device_count", l_device_count},
        {"device_name", l_device_name}, {"synchronize", l_synchronize},
        {"set_tf32", l_set_tf32}, {"set_deterministic", l_set_deterministic},
        {"memory_stats", l_memory_stats}, {"empty_cache", l_empty_cache},
        {"conv_algorithms", l_conv_algorithms},
        {"input_copy", l_input_copy}, {"input_ready", l_input_ready},
        {"input_wait", l_input_wait},
        {"pad2d", l_pad2d}, {"crop2d", l_crop2d},
        {"use_pinned_loader_memory", l_use_pinned_loader_memory}, {"readback", l_readback},
        {NULL, NULL}};
    static const luaL_Reg rb_meta[] = {{"__gc", rb_free}, {"__close", rb_free}, {NULL, NULL}};
    static const luaL_Reg rb_methods[] = {{"read", rb_read}, {"free", rb_free}, {NULL, NULL}};
    sgl_newclass(L, READBACK_MT, rb_meta, rb_methods);
    lua_newtable(L);
    sgl_setfuncs(L, fns);
    /* cuda.built is read on access: asking loads the CUDA backend's module
     * (core/backend.c), which a CPU-only session never needs */
    lua_newtable(L);
    lua_pushcfunction(L, l_cuda_index);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    lua_setfield(L, -2, "cuda");
    lua_pushcfunction(L, l_available);
    lua_setfield(L, -2, "cuda_available");
}
