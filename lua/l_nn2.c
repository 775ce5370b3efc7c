/*
 * l_nn2.c - tensor helpers the module library (lua/sgdsa/nn.lua) needs on
 * top of the layer binding of lua/l_nn.c: the `sgdsa.core.nn2` table.
 *
 *   nn2.resize(t, shape...)  -> t   contiguous, reallocated only when it must
 *                                   grow (sg_tensor_resize), so module buffers
 *                                   kept across steps allocate nothing in
 *                                   steady state
 *   nn2.resize_as(t, like)   -> t   the same, to the shape of `like`
 */
#include "binding.h"

static int l_resize(lua_State *L)
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

static int l_resize_as(lua_State *L)
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

void sgl_open_nn2(lua_State *L)
{
    static const luaL_Reg fns[] = {{"resize", l_resize}, {"resize_as", l_resize_as}, {NULL, NULL}};
    lua_newtable(L);
    sgl_setfuncs(L, fns);
    lua_setfield(L, -2, "nn2");
}
