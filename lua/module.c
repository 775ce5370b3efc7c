/* module.c - assembles the `sgdsa.core` table from the binding parts. */
#include "binding.h"
#include "cpu_info.h"

typedef void (*sgl_part)(lua_State *L);

/* One line per binding part; each adds its functions to the table on top. */
static const sgl_part parts[] = {
    sgl_open_tensor,
    sgl_open_rng,
    sgl_open_h5,
    sgl_open_sys,
    sgl_open_data,
    sgl_open_nn,
    sgl_open_cuda,
    sgl_open_dist,
};

int sgl_open(lua_State *L)
{
    sg_blas_warn_once(); /* a slow BLAS core is worth one line, once per process */
    lua_newtable(L);
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        parts[i](L);
    return 1;
}

void sgl_setfuncs(lua_State *L, const luaL_Reg *fns)
{
    luaL_setfuncs(L, fns, 0);
}

void sgl_newclass(lua_State *L, const char *name, const luaL_Reg *meta, const luaL_Reg *methods)
{
    luaL_newmetatable(L, name);
    luaL_setfuncs(L, meta, 0);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}

int sgl_error(lua_State *L)
{
    luaL_where(L, 1);
    lua_pushstring(L, sg_geterr());
    lua_concat(L, 2);
    return lua_error(L);
}
