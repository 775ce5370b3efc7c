/*
 * binding.h - helpers shared by the Lua binding files (lua/l_*.c).
 *
 * This is the only layer that knows both Lua and the C core (what may call
 * what, and the error convention: docs/ARCHITECTURE.md, Layers).
 *
 * Each binding file exports one `void sgl_open_<part>(lua_State *L)` that adds
 * its functions to the table on top of the stack (the `sgdsa.core` table);
 * lua/module.c lists the parts.
 */
#ifndef SGL_BINDING_H
#define SGL_BINDING_H

#include <lauxlib.h>
#include <lua.h>

#include "error.h"
#include "rng.h"
#include "tensor.h"

#define SGL_TENSOR_MT "sgdsa.Tensor"
#define SGL_RNG_MT "sgdsa.Generator"

/* Raise the pending core error (sg_geterr()) as a Lua error with position. */
int sgl_error(lua_State *L);
#define SGL_CHECK(L, expr) do { if ((expr) != 0) return sgl_error(L); } while (0)

/* Tensors. sgl_checktensor errors on a non-tensor or a freed tensor. */
sg_tensor *sgl_checktensor(lua_State *L, int idx);
sg_tensor *sgl_totensor(lua_State *L, int idx);    /* NULL if not a tensor */
sg_tensor *sgl_opttensor(lua_State *L, int idx);   /* NULL if nil/none */
/* Push a tensor, taking over one reference (the caller's). NULL -> raises sg_geterr(). */
void sgl_pushtensor(lua_State *L, sg_tensor *t);
/* Read a shape from args idx.. (numbers) or a table at idx. Returns ndim. */
int sgl_checkshape(lua_State *L, int idx, int64_t *size);

/* Generators (userdata holding an sg_rng). */
sg_rng *sgl_checkrng(lua_State *L, int idx);
sg_rng *sgl_pushrng(lua_State *L);                  /* new zero-initialised generator */
/* The runtime's named stream (created from the global seed on first use). */
sg_rng *sgl_stream(lua_State *L, const char *name);

/* Register functions into the table at the top of the stack. */
void sgl_setfuncs(lua_State *L, const luaL_Reg *fns);
/* Register the userdata metatable `name`: the metamethods `meta` and a
 * method table `methods` as its __index. */
void sgl_newclass(lua_State *L, const char *name, const luaL_Reg *meta, const luaL_Reg *methods);

/* Parts of the core module (each in its own lua/l_<part>.c). */
void sgl_open_tensor(lua_State *L);
void sgl_open_rng(lua_State *L);
void sgl_open_h5(lua_State *L);      /* lua/l_h5.c: core.h5 */
void sgl_open_sys(lua_State *L);
void sgl_open_data(lua_State *L);     /* lua/l_data.c: core.data, datasets and loaders */
void sgl_open_nn(lua_State *L);       /* lua/l_nn.c: core.nn, the layer ops (core/ops.h) */
void sgl_open_cuda(lua_State *L);     /* lua/l_cuda.c: core.cuda, the GPU's settings and copies */
void sgl_open_dist(lua_State *L);     /* lua/l_dist.c: core.dist, the ranks of a data-parallel run */

/* A core.cuda.readback() slot (lua/l_cuda.c); raises on anything else. */
struct sg_readback *sgl_checkreadback(lua_State *L, int idx);

/* Open the whole `sgdsa.core` table (pushes it). */
int sgl_open(lua_State *L);

#endif
