/* core.c - the `sgdsa.core` Lua C module for a stock lua5.4 interpreter. */
#include <lua.h>

int sgl_open(lua_State *L);

int luaopen_sgdsa_core(lua_State *L);
int luaopen_sgdsa_core(lua_State *L) { return sgl_open(L); }
