/*
 * l_rng.c - random generators for Lua: `sgdsa.Generator` and named streams.
 *
 * The runtime keeps one global seed and a table of named streams
 * (registry["sgdsa.streams"]). sgdsa.stream("search") returns the stream of
 * that name, created from the seed on first use; sgdsa.manual_seed(n)
 * re-seeds every existing stream, so all draws restart from the new seed.
 * A generator's state is four integers ({seed, stream, counter, pos}) that
 * g:state() returns and g:set_state() restores exactly (for checkpoints);
 * g:skip(n) moves past n words (a data-parallel rank's dropout mask is its
 * slice of the whole batch's).
 */
#include <stdlib.h>
#include <string.h>

#include "binding.h"

#define STREAMS_KEY "sgdsa.streams"
#define SEED_KEY "sgdsa.seed"

sg_rng *sgl_checkrng(lua_State *L, int idx) { return luaL_checkudata(L, idx, SGL_RNG_MT); }

sg_rng *sgl_pushrng(lua_State *L)
{
    sg_rng *r = lua_newuserdatauv(L, sizeof *r, 1);
    memset(r, 0, sizeof *r);
    r->pos = 4;
    luaL_setmetatable(L, SGL_RNG_MT);
    return r;
}

static uint64_t global_seed(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, SEED_KEY);
    uint64_t s = (uint64_t)lua_tointeger(L, -1);
    lua_pop(L, 1);
    return s;
}

static void push_streams(lua_State *L)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX, STREAMS_KEY) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, STREAMS_KEY);
    }
}

sg_rng *sgl_stream(lua_State *L, const char *name)
{
    push_streams(L);
    sg_rng *r;
    if (lua_getfield(L, -1, name) == LUA_TUSERDATA) {
        r = sgl_checkrng(L, -1);
        lua_pop(L, 2);
        return r; /* kept alive by the registry table */
    }
    lua_pop(L, 1);
    r = sgl_pushrng(L);
    sg_rng_init(r, global_seed(L), sg_rng_hash(name));
    lua_pushstring(L, name);
    lua_setiuservalue(L, -2, 1);
    lua_setfield(L, -2, name);
    lua_pop(L, 1);
    return r;
}

static int l_stream(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    sgl_stream(L, name);
    push_streams(L);
    lua_getfield(L, -1, name);
    return 1;
}

static int l_manual_seed(lua_State *L)
{
    lua_Integer s = luaL_checkinteger(L, 1);
    lua_pushinteger(L, s);
    lua_setfield(L, LUA_REGISTRYINDEX, SEED_KEY);
    push_streams(L);
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        sg_rng *r = sgl_checkrng(L, -1);
        sg_rng_init(r, (uint64_t)s, r->stream);
        lua_pop(L, 1);
    }
    return 0;
}

static int l_initial_seed(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)global_seed(L));
    return 1;
}

static int l_generator(lua_State *L)
{
    /* sgdsa.Generator(seed [, name]) : an independent generator */
    lua_Integer seed = luaL_checkinteger(L, 1);
    const char *name = luaL_optstring(L, 2, "default");
    sg_rng *r = sgl_pushrng(L);
    sg_rng_init(r, (uint64_t)seed, sg_rng_hash(name));
    lua_pushstring(L, name);
    lua_setiuservalue(L, -2, 1);
    return 1;
}

static int g_uniform(lua_State *L)
{
    sg_rng *r = sgl_checkrng(L, 1);
    double lo = luaL_optnumber(L, 2, 0), hi = luaL_optnumber(L, 3, 1);
    lua_pushnumber(L, lo + (hi - lo) * sg_rng_uniform(r));
    return 1;
}

static int g_normal(lua_State *L)
{
    sg_rng *r = sgl_checkrng(L, 1);
    double m = luaL_optnumber(L, 2, 0), s = luaL_optnumber(L, 3, 1);
    lua_pushnumber(L, m + s * sg_rng_normal(r));
    return 1;
}

/*
 * As math.random: g:random() -> a float uniform in [0, 1); g:random(n) -> an
 * integer uniform in 1..n; g:random(m, n) -> m..n; g:random(0) -> an integer
 * with all 64 bits random.
 */
static int g_random(lua_State *L)
{
    sg_rng *r = sgl_checkrng(L, 1);
    lua_Integer a = 1, b;
    switch (lua_gettop(L)) {
    case 1:
        lua_pushnumber(L, sg_rng_uniform(r));
        return 1;
    case 2:
        b = luaL_checkinteger(L, 2);
        if (b == 0) {
            lua_pushinteger(L, (lua_Integer)sg_rng_u64(r));
            return 1;
        }
        break;
    case 3:
        a = luaL_checkinteger(L, 2);
        b = luaL_checkinteger(L, 3);
        break;
    default:
        return luaL_error(L, "random: wrong number of arguments (random(), random(n) or random(m, n))");
    }
    if (b < a)
        return luaL_error(L, "random: empty interval [%I, %I]", a, b);
    /* in unsigned arithmetic: b - a overflows for wide intervals, and
     * [math.mininteger, math.maxinteger] holds 2^64 values (span + 1 = 0) */
    uint64_t span = (uint64_t)b - (uint64_t)a;
    uint64_t x = span == UINT64_MAX ? sg_rng_u64(r) : sg_rng_below(r, span + 1);
    lua_pushinteger(L, (lua_Integer)((uint64_t)a + x));
    return 1;
}

static int g_permutation(lua_State *L)
{
    /* g:permutation(n) -> int32 tensor holding a random permutation of 1..n */
    sg_rng *r = sgl_checkrng(L, 1);
    lua_Integer n = luaL_checkinteger(L, 2);
    if (n < 0 || n > INT32_MAX) /* the values 1..n are int32 */
        return luaL_error(L, "permutation: bad length %I (0 to 2^31 - 1)", n);
    int64_t sz = n;
    sg_tensor *t = sg_tensor_new(SG_I32, SG_CPU, 1, &sz);
    if (!t)
        return sgl_error(L);
    /* in the int32 tensor itself: no int64 scratch array twice its size */
    int32_t *p = sg_tensor_data(t);
    sg_rng_permutation_i32(r, p, n);
    for (lua_Integer i = 0; i < n; i++)
        p[i] += 1;
    sgl_pushtensor(L, t);
    return 1;
}

static int g_state(lua_State *L)
{
    sg_rng *r = sgl_checkrng(L, 1);
    uint64_t st[SG_RNG_STATE_LEN];
    sg_rng_get_state(r, st);
    lua_createtable(L, SG_RNG_STATE_LEN, 0);
    for (int i = 0; i < SG_RNG_STATE_LEN; i++) {
        lua_pushinteger(L, (lua_Integer)st[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int g_set_state(lua_State *L)
{
    sg_rng *r = sgl_checkrng(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    uint64_t st[SG_RNG_STATE_LEN];
    for (int i = 0; i < SG_RNG_STATE_LEN; i++) {
        lua_geti(L, 2, i + 1);
        if (!lua_isinteger(L, -1))
            return luaL_error(L, "set_state: element %d of the state is not an integer", i + 1);
        st[i] = (uint64_t)lua_tointeger(L, -1);
        lua_pop(L, 1);
    }
    SGL_CHECK(L, sg_rng_set_state(r, st));
    return 0;
}

/* g:skip(n): move past n 32-bit words, as n single-word draws would (a
 * dropout mask of n values, a uniform float each). */
static int g_skip(lua_State *L)
{
    sg_rng *r = sgl_checkrng(L, 1);
    lua_Integer n = luaL_checkinteger(L, 2);
    if (n < 0)
        return luaL_error(L, "skip: negative count %I", n);
    sg_rng_skip(r, (uint64_t)n);
    lua_settop(L, 1);
    return 1;
}

static int g_clone(lua_State *L)
{
    sg_rng *r = sgl_checkrng(L, 1);
    sg_rng *c = sgl_pushrng(L);
    *c = *r;
    lua_getiuservalue(L, 1, 1);
    lua_setiuservalue(L, -2, 1);
    return 1;
}

static int g_tostring(lua_State *L)
{
    sg_rng *r = sgl_checkrng(L, 1);
    lua_getiuservalue(L, 1, 1);
    const char *name = lua_isstring(L, -1) ? lua_tostring(L, -1) : "?";
    lua_pushfstring(L, "sgdsa.Generator(stream '%s', seed %I, block %I)", name, (lua_Integer)r->seed,
                    (lua_Integer)r->counter);
    return 1;
}

void sgl_open_rng(lua_State *L)
{
    static const luaL_Reg gm[] = {
        {"uniform", g_uniform}, {"normal", g_normal}, {"random", g_random},
        {"permutation", g_permutation}, {"state", g_state}, {"set_state", g_set_state},
        {"clone", g_clone}, {"skip", g_skip}, {NULL, NULL}};
    static const luaL_Reg meta[] = {{"__tostring", g_tostring}, {NULL, NULL}};
    sgl_newclass(L, SGL_RNG_MT, meta, gm);
    static const luaL_Reg fns[] = {
        {"stream", l_stream}, {"manual_seed", l_manual_seed}, {"initial_seed", l_initial_seed},
        {"Generator", l_generator}, {NULL, NULL}};
    luaL_setfuncs(L, fns, 0);
}
