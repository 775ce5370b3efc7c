/*
 * l_cuda.c - the `sgdsa.core.cuda` table: the GPU's availability, settings,
 * memory statistics and input copies, and the padding kernels of nn.Pad.
 * The layer kernels are bound once for both devices in lua/l_nn.c: each
 * core.nn call runs on the device of its tensor arguments.
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
 *   pad2d(x, y, p)         -> y: N x C x (H+2p) x (W+2p), x zero-padded (cuda x; y
 *                          resized, moved to the GPU when a cpu buffer of its own)
 *   crop2d(dy, dx, p)      -> dx: N x C x H x W, the interior of dy (pad2d's backward)
 *   readback()             -> a loss read-back slot: core.nn.cross_entropy(logits,
 *                          labels, dlogits, slot) on the GPU leaves the loss on
 *                          the device, queues its copy into the slot and returns
 *                          the slot; slot:read() -> loss, correct waits for it
 *                          (not again for a slot queued before one already read:
 *                          read the newest first); slot:free() (also __gc and
 *                          __close) hands it back for reuse
 *   use_pinned_loader_memory(on) -> previous; data loaders created while on
 *                          hand out batches in pinned host memory
 *                          (sg_cuda_host_alloc), so copies to the GPU are
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
#ifdef SG_HAVE_CUDA
#include "nn_cuda.h"
#endif

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

#ifdef SG_HAVE_CUDA

static int l_device_count(lua_State *L)
{
    int n = sg_cuda_device_count();
    lua_pushinteger(L, n > 0 ? n : 0);
    return 1;
}

static int l_device_name(lua_State *L)
{
    char buf[256];
    if (!sg_cuda_available() || sg_cuda_device_name(buf, sizeof buf) != 0)
        return no_gpu(L);
    lua_pushstring(L, buf);
    return 1;
}

/* f() when there is a device; nothing to wait for or free otherwise. */
static int on_device(lua_State *L, int (*f)(void))
{
    if (sg_cuda_device_count() > 0)
        SGL_CHECK(L, f());
    return 0;
}

static int l_synchronize(lua_State *L) { return on_device(L, sg_cuda_synchronize); }
static int l_empty_cache(lua_State *L) { return on_device(L, sg_cuda_empty_cache); }
/* f(slot) (argument 1, default 0) when there is a device. */
static int on_slot(lua_State *L, int (*f)(int))
{
    int slot = (int)luaL_optinteger(L, 1, 0);
    if (sg_cuda_device_count() > 0)
        SGL_CHECK(L, f(slot));
    return 0;
}

static int l_input_wait(lua_State *L) { return on_slot(L, sg_cuda_input_wait); }
static int l_input_ready(lua_State *L) { return on_slot(L, sg_cuda_input_ready); }

/* set_tf32, set_deterministic: the previous value. TF32 reaches cuBLAS at
 * once when the backend is initialized; a refusal is an error (cuDNN keeps
 * the setting). */
static int l_set_tf32(lua_State *L)
{
    luaL_checkany(L, 1);
    int prev = sg_cuda_get_tf32();
    SGL_CHECK(L, sg_cuda_set_tf32(lua_toboolean(L, 1)));
    lua_pushboolean(L, prev);
    return 1;
}

static int l_set_deterministic(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_pushboolean(L, sg_cuda_get_deterministic());
    sg_cuda_set_deterministic(lua_toboolean(L, 1));
    return 1;
}

static int l_memory_stats(lua_State *L)
{
    if (!sg_cuda_available())
        return no_gpu(L);
    sg_cuda_mem_stats s = sg_cuda_get_mem_stats();
    lua_createtable(L, 0, 8);
    lua_pushinteger(L, (lua_Integer)s.in_use); lua_setfield(L, -2, "in_use");
    lua_pushinteger(L, (lua_Integer)s.cached); lua_setfield(L, -2, "cached");
    lua_pushinteger(L, (lua_Integer)s.peak_in_use); lua_setfield(L, -2, "peak_in_use");
    lua_pushinteger(L, (lua_Integer)s.device_allocs); lua_setfield(L, -2, "device_allocs");
    lua_pushinteger(L, (lua_Integer)s.device_frees); lua_setfield(L, -2, "device_frees");
    lua_pushinteger(L, (lua_Integer)s.pool_hits); lua_setfield(L, -2, "pool_hits");
    lua_pushboolean(L, s.caching); lua_setfield(L, -2, "caching");
    lua_pushinteger(L, (lua_Integer)sg_cuda_host_waits()); lua_setfield(L, -2, "host_waits");
    lua_pushinteger(L, (lua_Integer)sg_cuda_launches()); lua_setfield(L, -2, "launches");
    return 1;
}

static int l_conv_algorithms(lua_State *L)
{
    int n = sg_cuda_conv2d_choices(NULL, 0);
    sg_cuda_conv_choice *c = n > 0 ? malloc((size_t)n * sizeof *c) : NULL;
    if (n > 0 && !c)
        return luaL_error(L, "conv_algorithms: out of memory (%d entries)", n);
    if (c) {
        const int m = sg_cuda_conv2d_choices(c, n);  /* no more than n: plans are only added */
        n = m < n ? m : n;
    }
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
    SGL_CHECK(L, sg_cuda_input_copy(slot, sg_tensor_data(dst), sg_tensor_data(src),
                                    (size_t)sg_tensor_numel(src) * sg_dtype_size(src->dtype)));
    if (!async)
        SGL_CHECK(L, sg_cuda_input_ready(slot));
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
    if (on)
        sgl_data_set_host_allocator(sg_cuda_host_alloc, sg_cuda_host_free, NULL, raw);
    else
        sgl_data_set_host_allocator(NULL, NULL, NULL, 0);
    pinned_loaders = on;
    lua_pushboolean(L, prev);
    return 1;
}

/* ---- loss read-back slots (sg_cuda_readback; the queue is core.nn.cross_entropy's) ---- */

#define READBACK_MT "sgdsa.cuda.Readback"

sg_cuda_readback *sgl_checkreadback(lua_State *L, int idx)
{
    sg_cuda_readback **u = luaL_checkudata(L, idx, READBACK_MT);
    if (!*u)
        luaL_error(L, "a freed read-back slot");
    return *u;
}

static int l_readback(lua_State *L)
{
    sg_cuda_readback **u = lua_newuserdatauv(L, sizeof *u, 0);
    *u = NULL;
    luaL_setmetatable(L, READBACK_MT);
    *u = sg_cuda_readback_new();
    if (!*u)
        return sgl_error(L);
    return 1;
}

static int rb_read(lua_State *L)
{
    sg_cuda_readback *r = sgl_checkreadback(L, 1);
    double loss;
    int64_t correct;
    SGL_CHECK(L, sg_cuda_cross_entropy_read(r, &loss, &correct));
    lua_pushnumber(L, loss);
    lua_pushinteger(L, (lua_Integer)correct);
    return 2;
}

/* free, __gc and __close */
static int rb_free(lua_State *L)
{
    sg_cuda_readback **u = luaL_checkudata(L, 1, READBACK_MT);
    sg_cuda_readback_free(*u);
    *u = NULL;
    return 0;
}

static void open_readback(lua_State *L)
{
    static const luaL_Reg mt[] = {{"__gc", rb_free}, {"__close", rb_free}, {NULL, NULL}};
    static const luaL_Reg methods[] = {{"read", rb_read}, {"free", rb_free}, {NULL, NULL}};
    sgl_newclass(L, READBACK_MT, mt, methods);
}

/* ---- zero padding (nn.Pad on the GPU; argument checks of lua/l_nn.c) --------------- */

static int pad_arg(lua_State *L, int idx, const char *op)
{
    lua_Integer p = luaL_checkinteger(L, idx);
    if (p < 0 || p > (1 << 20))
        return luaL_error(L, "%s: padding must be in [0, 2^20], got %I", op, (lua_Integer)p);
    return (int)p;
}

/* pad2d (crop = 0) and its backward crop2d (crop = 1): arg 1 is N x C x H x W,
 * arg 2 the output N x C x (H +- 2p) x (W +- 2p), arg 3 the padding p. */
static int pad_or_crop(lua_State *L, int crop)
{
    sgl_args a = { L, crop ? "crop2d" : "pad2d", SG_CUDA };
    const char *in = crop ? "dy" : "input", *out = crop ? "dx" : "y";
    sg_tensor *x = sgl_arg_in(&a, 1, in, SG_F32);
    sgl_arg_ndim(&a, x, in, 4);
    int64_t p = pad_arg(L, 3, a.op), d = crop ? -2 * p : 2 * p;
    if (x->size[2] + d < 0 || x->size[3] + d < 0) {
        char b[128];
        sg_seterr("%s: dy %s is smaller than twice the padding %lld (cuda)", a.op,
                  sg_shape_str(x, b, sizeof b), (long long)p);
        return sgl_error(L);
    }
    int64_t ys[4] = { x->size[0], x->size[1], x->size[2] + d, x->size[3] + d };
    /* before sgl_arg_out, which may resize the output (and with it the input) */
    sg_tensor *y0 = sgl_totensor(L, 2);
    if (y0 && y0->storage == x->storage)
        return luaL_error(L, "%s: %s must not share storage with %s", a.op, out,
                          crop ? "dy" : "the input");
    sg_tensor *y = sgl_arg_out(&a, 2, out, SG_F32, 4, ys);
    int64_t planes = ys[0] * ys[1];
    SGL_CHECK(L, crop ? sg_cuda_crop2d(sg_f32(x), sg_f32(y), planes, ys[2], ys[3], p)
                      : sg_cuda_pad2d(sg_f32(x), sg_f32(y), planes, x->size[2], x->size[3], p));
    lua_pushvalue(L, 2);
    return 1;
}

static int l_pad2d(lua_State *L) { return pad_or_crop(L, 0); }
static int l_crop2d(lua_State *L) { return pad_or_crop(L, 1); }

#else /* no backend: no GPU and no CUDA tensor */

static int l_device_count(lua_State *L)
{
    lua_pushinteger(L, 0);
    return 1;
}

/* device_name, memory_stats: nil and the reason. */
static int l_no_gpu(lua_State *L)
{
    sg_cuda_available();
    return no_gpu(L);
}
#define l_device_name l_no_gpu
#define l_memory_stats l_no_gpu

/* synchronize, empty_cache, input_wait: nothing queued, nothing cached. */
static int l_nothing(lua_State *L)
{
    (void)L;
    return 0;
}
#define l_synchronize l_nothing
#define l_empty_cache l_nothing
#define l_input_wait l_nothing
#define l_input_ready l_nothing

/* conv_algorithms: none chosen. */
static int l_conv_algorithms(lua_State *L)
{
    lua_newtable(L);
    return 1;
}

/* set_tf32, set_deterministic: accepted, always off. */
static int l_flag_off(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_pushboolean(L, 0);
    return 1;
}
#define l_set_tf32 l_flag_off
#define l_set_deterministic l_flag_off

/* pad2d, crop2d (and input_copy after its arguments): the reason, raised. */
static int l_unavailable(lua_State *L)
{
    sg_cuda_available();
    return sgl_error(L);
}
#define l_pad2d l_unavailable
#define l_crop2d l_unavailable
#define l_readback l_unavailable

static int l_input_copy(lua_State *L)
{
    sgl_checktensor(L, 1);
    sgl_checktensor(L, 2);
    return l_unavailable(L);
}

static int l_use_pinned_loader_memory(lua_State *L)
{
    luaL_checkany(L, 1);
    if (lua_toboolean(L, 1))
        return l_unavailable(L);
    lua_pushboolean(L, 0);
    return 1;
}

#endif /* SG_HAVE_CUDA */

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
    lua_newtable(L);
    sgl_setfuncs(L, fns);
#ifdef SG_HAVE_CUDA
    open_readback(L);
    lua_pushboolean(L, 1);
#else
    lua_pushboolean(L, 0);
#endif
    lua_setfield(L, -2, "built");
    lua_setfield(L, -2, "cuda");
    lua_pushcfunction(L, l_available);
    lua_setfield(L, -2, "cuda_available");
}
