/*
 * l_dist.c - the `sgdsa.core.dist` table: the ranks of a data-parallel run
 * (core/comm.h; NCCL for CUDA tensors, kernels/cuda/nccl.c). The Lua side is
 * lua/sgdsa/dist.lua.
 *
 *   rank(), size(), local_rank()   this process's place in the job (0, 1, 0
 *                                  without one)
 *   built()                        true when sgdsa was built with MPI
 *   nccl()                         true when CUDA tensors are summed with NCCL
 *   library()                      the MPI library's version line, or "none"
 *   allsum(t)                      -> t: a table of numbers, each replaced by
 *                                  its sum over the ranks (rank order, the same
 *                                  bits on every rank)
 *   allsum_tensor(t)               -> t: a contiguous float32 tensor summed
 *                                  over the ranks in place; cpu: MPI (comm.h),
 *                                  cuda: NCCL when built with it (and
 *                                  SGDSA_NCCL is not "0"), else through a host
 *                                  copy and MPI
 *   nccl_check(t)                  -> t: a cuda tensor summed by NCCL over a
 *                                  communicator of this process alone (a
 *                                  check of the NCCL path on one GPU; runs
 *                                  use the job's communicator)
 *   bcast(s)                       -> rank 0's string s, on every rank
 *   barrier()
 * Every rank must make the same calls in the same order (they are
 * collectives); on one rank they return at once.
 */
#include <stdlib.h>
#include <string.h>

#include "binding.h"
#include "comm.h"
#include "device.h"

static int l_rank(lua_State *L) { lua_pushinteger(L, sg_comm_rank()); return 1; }
static int l_size(lua_State *L) { lua_pushinteger(L, sg_comm_size()); return 1; }
static int l_local_rank(lua_State *L) { lua_pushinteger(L, sg_comm_local_rank()); return 1; }
static int l_built(lua_State *L) { lua_pushboolean(L, sg_comm_built()); return 1; }
static int l_library(lua_State *L) { lua_pushstring(L, sg_comm_library()); return 1; }

/* NCCL sums CUDA tensors: built with it, and not turned off by SGDSA_NCCL=0
 * (two ranks on one GPU, which NCCL refuses, or a broken NCCL). */
static int use_nccl(void)
{
    const char *e = getenv("SGDSA_NCCL");
    return sg_device_nccl_built(SG_CUDA) && !(e && strcmp(e, "0") == 0);
}

static int l_nccl(lua_State *L)
{
    lua_pushboolean(L, use_nccl());
    return 1;
}

static int l_allsum(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 1);
    if (n <= 0 || sg_comm_size() <= 1) {
        lua_settop(L, 1);
        return 1;
    }
    if (n > (1 << 20))
        return luaL_error(L, "dist.allsum: %I numbers; sum a tensor (allsum_tensor) instead", n);
    double small[16];
    double *v = n <= 16 ? small : sg_malloc((size_t)n * sizeof *v, "dist.allsum");
    if (!v)
        return sgl_error(L);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, 1, i);
        int ok;
        v[i - 1] = lua_tonumberx(L, -1, &ok);
        lua_pop(L, 1);
        if (!ok) {
            if (v != small)
                free(v);
            return luaL_error(L, "dist.allsum: entry %I is not a number", i);
        }
    }
    int rc = sg_comm_allsum_f64(v, n);
    if (rc == 0)
        for (lua_Integer i = 1; i <= n; i++) {
            lua_pushnumber(L, v[i - 1]);
            lua_seti(L, 1, i);
        }
    if (v != small)
        free(v);
    if (rc)
        return sgl_error(L);
    lua_settop(L, 1);
    return 1;
}

/* The NCCL communicator, made at the first sum of a CUDA tensor (every rank
 * makes that call at once): rank 0 draws the id, MPI hands it out. */
static int nccl_ready(void)
{
    if (sg_device_nccl_ready(SG_CUDA))
        return 0;
    unsigned char id[SG_NCCL_ID_BYTES];
    memset(id, 0, sizeof id);
    if (sg_comm_rank() == 0 && sg_device_nccl_unique_id(SG_CUDA, id) != 0)
        return -1;
    if (sg_comm_bcast(id, sizeof id, 0) != 0)
        return -1;
    return sg_device_nccl_init(SG_CUDA, id, sg_comm_rank(), sg_comm_size());
}

/* A device vector summed through the host: copied out, summed by MPI, copied back. */
static int host_sum(float *dev, int64_t n)
{
    float *h = sg_malloc((size_t)n * sizeof *h, "dist.allsum_tensor host copy");
    if (!h)
        return -1;
    int rc = sg_device_copy(SG_CPU, h, SG_CUDA, dev, (size_t)n * sizeof *h) != 0 ||
             sg_comm_allsum_f32(h, n) != 0 ||
             sg_device_copy(SG_CUDA, dev, SG_CPU, h, (size_t)n * sizeof *h) != 0;
    free(h);
    return rc ? -1 : 0;
}

static int l_allsum_tensor(lua_State *L)
{
    sg_tensor *t = sgl_checktensor(L, 1);
    if (t->dtype != SG_F32 || !sg_tensor_is_contiguous(t))
        return luaL_error(L, "dist.allsum_tensor: expected a contiguous float32 tensor, got %s%s",
                          sg_dtype_name(t->dtype),
                          sg_tensor_is_contiguous(t) ? "" : " (not contiguous)");
    int64_t n = sg_tensor_numel(t);
    lua_settop(L, 1);
    if (sg_comm_size() <= 1 || n == 0)
        return 1;
    if (t->storage->device == SG_CPU) {
        SGL_CHECK(L, sg_comm_allsum_f32(sg_f32(t), n));
        return 1;
    }
    int rc = use_nccl() ? (nccl_ready() != 0 || sg_device_nccl_allsum_f32(SG_CUDA, sg_f32(t), n) != 0)
                        : host_sum(sg_f32(t), n) != 0;
    if (rc) {
        sg_adderr("dist.allsum_tensor: %lld floats on rank %d of %d", (long long)n,
                  sg_comm_rank(), sg_comm_size());
        return sgl_error(L);
    }
    return 1;
}

static int l_nccl_check(lua_State *L)
{
    sg_tensor *t = sgl_checktensor(L, 1);
    lua_settop(L, 1);
    if (!sg_device_built(SG_CUDA))
        return luaL_error(L, "dist.nccl_check: sgdsa was built without CUDA");
    if (t->dtype != SG_F32 || !sg_tensor_is_contiguous(t) || t->storage->device != SG_CUDA)
        return luaL_error(L, "dist.nccl_check: expected a contiguous float32 cuda tensor");
    if (sg_comm_size() > 1)
        return luaL_error(L, "dist.nccl_check: for one process (this is rank %d of %d)",
                          sg_comm_rank(), sg_comm_size());
    unsigned char id[SG_NCCL_ID_BYTES];
    if (sg_device_nccl_unique_id(SG_CUDA, id) != 0 || sg_device_nccl_init(SG_CUDA, id, 0, 1) != 0 ||
        sg_device_nccl_allsum_f32(SG_CUDA, sg_f32(t), sg_tensor_numel(t)) != 0 ||
        sg_device_synchronize(SG_CUDA) != 0) {
        sg_adderr("dist.nccl_check");
        return sgl_error(L);
    }
    sg_device_nccl_finalize(SG_CUDA);
    return 1;
}

static int l_bcast(lua_State *L)
{
    size_t len = 0;
    const char *s = luaL_optlstring(L, 1, "", &len);
    if (sg_comm_size() <= 1) {
        lua_pushlstring(L, s, len);
        return 1;
    }
    int64_t n = (int64_t)len;
    SGL_CHECK(L, sg_comm_bcast(&n, sizeof n, 0));
    char *buf = sg_malloc((size_t)n + 1, "dist.bcast");
    if (!buf)
        return sgl_error(L);
    if (sg_comm_rank() == 0)
        memcpy(buf, s, (size_t)n);
    if (sg_comm_bcast(buf, n, 0) != 0) {
        free(buf);
        return sgl_error(L);
    }
    lua_pushlstring(L, buf, (size_t)n);
    free(buf);
    return 1;
}

static int l_barrier(lua_State *L)
{
    SGL_CHECK(L, sg_comm_barrier());
    return 0;
}

void sgl_open_dist(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"rank", l_rank}, {"size", l_size}, {"local_rank", l_local_rank}, {"built", l_built},
        {"nccl", l_nccl}, {"library", l_library}, {"allsum", l_allsum},
        {"allsum_tensor", l_allsum_tensor}, {"nccl_check", l_nccl_check}, {"bcast", l_bcast},
        {"barrier", l_barrier},
        {NULL, NULL}};
    lua_newtable(L);
    luaL_setfuncs(L, fns, 0);
    lua_setfield(L, -2, "dist");
}
