/*
 * runtime.c - the embeddable runtime (include/sgdsa.h): a Lua 5.4 state with
 * the standard libraries, `sgdsa.core` preloaded from the binding, the module
 * path pointed at the project's Lua library, models/ and experiments/, and
 * the `sgdsa` library required into the global `sgdsa`.
 *
 * Every call into Lua goes through one message handler, which tells a message
 * for the user (a deliberate error) from a bug and formats each (see "error
 * messages" below). The `sgdsa run` semantics (typed key=value overrides,
 * experiment tables handed to sgdsa.trainer) live here too, so that hosts get
 * them without main.c.
 */
#define _GNU_SOURCE /* dladdr */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "binding.h"
#include "comm.h"
#include "cpu_info.h"
#include "runtime.h"
#include "sgdsa.h"
#include "device.h"

#ifndef SGDSA_VERSION
#define SGDSA_VERSION "0.0.0"
#endif
#ifndef SGDSA_SRC_ROOT
#define SGDSA_SRC_ROOT ""
#endif
#ifndef SGDSA_INSTALL_ROOT
#define SGDSA_INSTALL_ROOT "/usr/local/share/sgdsa"
#endif

struct sgdsa_state {
    lua_State *L;
    char *err; /* last error message (malloc'd), NULL if none */
};

static _Thread_local char open_err[2048];

const char *sgdsa_version(void) { return SGDSA_VERSION; }

int sgdsa_blas_core_setenv(void) { return sg_blas_core_setenv(); }

/* ---- data-parallel runs (core/comm.h) ----------------------------------------- */

int sgdsa_dist_init(void)
{
    open_err[0] = '\0';
    int n = sg_comm_init();
    if (n < 0) {
        snprintf(open_err, sizeof open_err, "%s", sg_geterr());
        return -1;
    }
    if (n > 1 && !getenv("SGDSA_CUDA_DEVICE")) {
        /* one GPU per rank: the rank's index on its host, unless the
         * launcher already gave each rank a single device */
        const char *vis = getenv("CUDA_VISIBLE_DEVICES");
        if (!vis || strchr(vis, ',')) {
            char dev[16];
            snprintf(dev, sizeof dev, "%d", sg_comm_local_rank());
            setenv("SGDSA_CUDA_DEVICE", dev, 1);
        }
    }
    return n;
}

void sgdsa_dist_finalize(void)
{
    sg_device_nccl_finalize(SG_CUDA);
    sg_comm_finalize();
}

int sgdsa_dist_rank(void) { return sg_comm_rank(); }
int sgdsa_dist_size(void) { return sg_comm_size(); }
void sgdsa_dist_abort(int code) { sg_comm_abort(code); }

const char *sgdsa_cpu_summary(void)
{
    static _Thread_local char buf[512];
    sg_cpu_summary(buf, sizeof buf);
    return buf;
}

/* ---- where the Lua library lives ------------------------------------------ */

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int has_library(const char *root)
{
    char p[PATH_MAX];
    int n = snprintf(p, sizeof p, "%s/lua/sgdsa", root);
    return n > 0 && (size_t)n < sizeof p && is_dir(p);
}

/* An installed libsgdsa lives in <prefix>/lib[/<multiarch>]: look for <prefix>/share/sgdsa. */
static int root_beside_library(char *buf, size_t n)
{
    Dl_info info;
    char dir[PATH_MAX];
    if (dladdr((void *)sgdsa_version, &info) == 0 || info.dli_fname == NULL)
        return 0;
    if (realpath(info.dli_fname, dir) == NULL)
        return 0;
    for (int up = 0; up < 3; up++) {
        char *slash = strrchr(dir, '/');
        if (slash == NULL || slash == dir)
            return 0;
        *slash = '\0';
        int k = snprintf(buf, n, "%s/share/sgdsa", dir);
        if (k > 0 && (size_t)k < n && has_library(buf))
            return 1;
    }
    return 0;
}

const char *sgl_root(char *buf, size_t n)
{
    const char *env = getenv("SGDSA_ROOT");
    if (env != NULL && env[0] != '\0')
        snprintf(buf, n, "%s", env);
    else if (root_beside_library(buf, n))
        ;
    else if (SGDSA_SRC_ROOT[0] != '\0' && has_library(SGDSA_SRC_ROOT))
        snprintf(buf, n, "%s", SGDSA_SRC_ROOT);
    else
        snprintf(buf, n, "%s", SGDSA_INSTALL_ROOT);
    return buf;
}

/* ---- error messages ------------------------------------------------------------
 *
 * An error is either a message for the user or a bug. A message is raised on
 * purpose: by error() or assert() (in a script or in sgdsa's Lua library), by
 * a C function of this library (the binding's checks, a file that cannot be
 * read, a script that does not load), or while an interrupt is pending. Any
 * other error is a bug, in a script or in sgdsa: one the Lua VM raises while
 * running Lua code (indexing a nil value, calling a nil value, ...), or a
 * standard library function's argument check.
 *
 * A message is shown without a traceback, and with the "file:line:" positions
 * that point into sgdsa's own Lua files (<root>/lua, <root>/models) taken
 * out; a message that began with one begins instead with the position of the
 * innermost call outside those files, if any: the line of the user's script
 * that led to the error. A bug is shown with its traceback. SGDSA_TRACEBACK=1
 * (`sgdsa run --traceback`) shows every error as a bug is shown.
 */

static lua_CFunction base_error, base_assert;   /* the base library's error and assert */

/* Was the C function fn compiled into this library (the binding, the runtime)? */
static int in_this_library(lua_CFunction fn)
{
    Dl_info a, b;
    return fn != NULL && dladdr((void *)fn, &a) != 0 && dladdr((void *)sgdsa_version, &b) != 0 &&
           a.dli_fbase == b.dli_fbase;
}

/* Was the error being handled raised on purpose (see above)? */
static int deliberate(lua_State *L)
{
    if (sgl_interrupted() > 0)
        return 1;
    lua_Debug ar;
    if (!lua_getstack(L, 1, &ar))
        return 1;   /* raised by the host before any function ran */
    if (!lua_getinfo(L, "Sf", &ar))
        return 0;
    int user = 0;
    if (strcmp(ar.what, "C") == 0) {
        lua_CFunction fn = lua_tocfunction(L, -1);
        user = fn == base_error || fn == base_assert || in_this_library(fn);
    }
    lua_pop(L, 1);
    return user;
}

/* Is `file` (a chunk name as Lua prints it: the path, or "..." and the path's
 * end when it is long) one of sgdsa's own Lua files, under <root>/lua/ or
 * <root>/models/? */
static int library_file(const char *file, size_t n, const char *root)
{
    char pre[PATH_MAX];
    for (int k = 0; k < 2; k++) {
        int pn = snprintf(pre, sizeof pre, "%s/%s/", root, k == 0 ? "lua" : "models");
        if (pn <= 0 || (size_t)pn >= sizeof pre)
            continue;
        size_t plen = (size_t)pn;
        if (n < 3 || memcmp(file, "...", 3) != 0) {
            if (n > plen && memcmp(file, pre, plen) == 0)
                return 1;
            continue;
        }
        /* "..." + the end of prefix + relative path: find how much of the
         * prefix's end the tail begins with, and see whether that file exists */
        const char *tail = file + 3;
        size_t tn = n - 3;
        for (size_t o = plen < tn ? plen : tn; o > 0; o--) {
            if (memcmp(pre + plen - o, tail, o) != 0)
                continue;
            char full[PATH_MAX];
            int fn = snprintf(full, sizeof full, "%s%.*s", pre, (int)(tn - o), tail + o);
            if (fn > 0 && (size_t)fn < sizeof full && access(full, F_OK) == 0)
                return 1;
        }
    }
    return 0;
}

/* Push msg without the "file:line: " positions that point into sgdsa's own
 * Lua files; 1 if msg began with one. */
static int push_without_library_positions(lua_State *L, const char *msg, const char *root)
{
    int leading = 0;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    const char *p = msg;
    while (*p) {
        int at_start = p == msg || p[-1] == ' ' || p[-1] == '\n' || p[-1] == '\t';
        if (at_start) {
            /* FILE.lua:DIGITS: followed by a space */
            const char *q = p;
            while (*q && *q != ':' && *q != '\n')
                q++;
            size_t fn = (size_t)(q - p);
            if (*q == ':' && fn > 4 && memcmp(q - 4, ".lua", 4) == 0) {
                const char *d = q + 1;
                while (*d >= '0' && *d <= '9')
                    d++;
                if (d > q + 1 && d[0] == ':' && d[1] == ' ' && library_file(p, fn, root)) {
                    leading |= p == msg;
                    p = d + 2;
                    continue;
                }
            }
        }
        luaL_addchar(&b, *p);
        p++;
    }
    luaL_pushresult(&b);
    return leading;
}

/* Push "file:line: " of the innermost Lua function on the stack that is not
 * in sgdsa's own Lua files (a user's script); 0 (nothing pushed) if none. */
static int push_user_position(lua_State *L, const char *root)
{
    lua_Debug ar;
    for (int level = 1; lua_getstack(L, level, &ar); level++) {
        if (!lua_getinfo(L, "Sl", &ar) || strcmp(ar.what, "C") == 0 || ar.currentline <= 0)
            continue;
        if (ar.source[0] == '@' && library_file(ar.source + 1, strlen(ar.source + 1), root))
            continue;
        lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.currentline);
        return 1;
    }
    return 0;
}

static int msghandler(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            msg = lua_tostring(L, -1);
        else
            msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    const char *tb = getenv("SGDSA_TRACEBACK");
    int always = tb != NULL && tb[0] != '\0' && strcmp(tb, "0") != 0;
    if (!always && deliberate(L)) {
        char root[PATH_MAX];
        sgl_root(root, sizeof root);
        if (push_without_library_positions(L, msg, root) && push_user_position(L, root)) {
            lua_insert(L, -2);
            lua_concat(L, 2);
        }
        return 1;
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

static void set_err(sgdsa_state *S, const char *msg)
{
    free(S->err);
    S->err = NULL;
    if (msg != NULL) {
        size_t n = strlen(msg) + 1;
        S->err = malloc(n);
        if (S->err != NULL)
            memcpy(S->err, msg, n);
    }
}

int sgdsa_pcall(sgdsa_state *S, int nargs, int nresults)
{
    lua_State *L = S->L;
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, msghandler);
    lua_insert(L, base);
    int rc = lua_pcall(L, nargs, nresults, base);
    lua_remove(L, base);
    if (rc != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        set_err(S, msg ? msg : "(error object is not a string)");
        lua_pop(L, 1);
        return -1;
    }
    set_err(S, NULL);
    return 0;
}

const char *sgdsa_errmsg(const sgdsa_state *S)
{
    if (S == NULL)
        return open_err;
    return S->err ? S->err : (S->L ? "" : "sgdsa: out of memory");
}

lua_State *sgdsa_lua(sgdsa_state *S) { return S ? S->L : NULL; }

/* ---- opening a state ---------------------------------------------------------- */

static int open_core(lua_State *L) { return sgl_open(L); }

/* Runs inside a protected call: libraries, paths, preload, require "sgdsa". */
static int init_state(lua_State *L)
{
    char root[PATH_MAX];
    luaL_openlibs(L);
    sgl_root(root, sizeof root);
    lua_getglobal(L, "error");
    base_error = lua_tocfunction(L, -1);
    lua_getglobal(L, "assert");
    base_assert = lua_tocfunction(L, -1);
    lua_pop(L, 2);

    lua_getglobal(L, "package");
    lua_getfield(L, -1, "path");
    const char *old = lua_tostring(L, -1);
    lua_pushfstring(L, "%s/lua/?.lua;%s/lua/?/init.lua;%s/?.lua;%s/?/init.lua;%s",
                    root, root, root, root, old ? old : "");
    lua_setfield(L, -3, "path");
    lua_pop(L, 1);

    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, open_core);
    lua_setfield(L, -2, "sgdsa.core");
    lua_pop(L, 2);

    lua_getglobal(L, "require");
    lua_pushstring(L, "sgdsa");
    lua_call(L, 1, 1);
    lua_setglobal(L, "sgdsa");
    return 0;
}

sgdsa_state *sgdsa_open(void)
{
    open_err[0] = '\0';
    sgdsa_state *S = calloc(1, sizeof *S);
    if (S == NULL) {
        snprintf(open_err, sizeof open_err, "sgdsa_open: out of memory (%zu bytes)", sizeof *S);
        return NULL;
    }
    S->L = luaL_newstate();
    if (S->L == NULL) {
        free(S);
        snprintf(open_err, sizeof open_err, "sgdsa_open: cannot create a Lua state (out of memory)");
        return NULL;
    }
    lua_pushcfunction(S->L, init_state);
    if (sgdsa_pcall(S, 0, 0) != 0) {
        snprintf(open_err, sizeof open_err, "sgdsa_open: loading the sgdsa library failed: %s",
                 S->err ? S->err : "out of memory");
        sgdsa_close(S);
        return NULL;
    }
    return S;
}

void sgdsa_close(sgdsa_state *S)
{
    if (S == NULL)
        return;
    if (S->L != NULL) {
        sgl_catch_signals(S->L, 0); /* only if S owns the handlers */
        lua_close(S->L);
    }
    free(S->err);
    free(S);
}

/* ---- running code ------------------------------------------------------------- */

int sgdsa_dostring(sgdsa_state *S, const char *code, const char *chunkname)
{
    if (code == NULL) {
        set_err(S, "sgdsa_dostring: code is NULL");
        return -1;
    }
    if (luaL_loadbuffer(S->L, code, strlen(code), chunkname ? chunkname : "=sgdsa") != LUA_OK) {
        set_err(S, lua_tostring(S->L, -1));
        lua_pop(S->L, 1);
        return -1;
    }
    return sgdsa_pcall(S, 0, 0);
}

/* Global `arg` as lua5.4 builds it: arg[0] = script, arg[1..] = arguments. */
static void set_arg(lua_State *L, const char *path, int argc, const char *const *argv)
{
    lua_createtable(L, argc, 1);
    lua_pushstring(L, path);
    lua_rawseti(L, -2, 0);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setglobal(L, "arg");
}

/* What a protected file runner needs; passed as a light userdata. */
typedef struct {
    const char *path;
    int argc;
    const char *const *argv;
    int status; /* sgdsa_run: the trainer's exit status */
} run_args;

static void load_file(lua_State *L, const char *path)
{
    if (luaL_loadfile(L, path) != LUA_OK)
        lua_error(L);
}

static int dofile_main(lua_State *L)
{
    run_args *ra = (run_args *)lua_touserdata(L, 1);
    load_file(L, ra->path);
    set_arg(L, ra->path, ra->argc, ra->argv);
    luaL_checkstack(L, ra->argc + 1, "sgdsa_dofile: too many script arguments");
    for (int i = 0; i < ra->argc; i++)
        lua_pushstring(L, ra->argv[i]);
    lua_call(L, ra->argc, 0);
    return 0;
}

static int check_args(sgdsa_state *S, const char *op, const char *path, int argc,
                      const char *const *argv)
{
    if (path == NULL || argc < 0 || (argc > 0 && argv == NULL)) {
        char msg[128];
        snprintf(msg, sizeof msg, "%s: bad arguments (path %s, argc %d)", op,
                 path ? "set" : "NULL", argc);
        set_err(S, msg);
        return -1;
    }
    return 0;
}

/* The arguments of operation op checked, then fn(ra) run protected. */
static int run_checked(sgdsa_state *S, const char *op, lua_CFunction fn, run_args *ra)
{
    if (check_args(S, op, ra->path, ra->argc, ra->argv) != 0)
        return -1;
    lua_pushcfunction(S->L, fn);
    lua_pushlightuserdata(S->L, ra);
    return sgdsa_pcall(S, 1, 0);
}

int sgdsa_dofile(sgdsa_state *S, const char *path, int argc, const char *const *argv)
{
    run_args ra = {path, argc, argv, 0};
    return run_checked(S, "sgdsa_dofile", dofile_main, &ra);
}

/* Push a command-line value typed: integer, float, true/false or string. */
static void push_typed(lua_State *L, const char *v)
{
    if (strcmp(v, "true") == 0)
        lua_pushboolean(L, 1);
    else if (strcmp(v, "false") == 0)
        lua_pushboolean(L, 0);
    else if (lua_stringtonumber(L, v) == 0)
        lua_pushstring(L, v);
}

/* Length of the key in "key=value" (key: [A-Za-z_][A-Za-z0-9_.]*), 0 if none. */
static size_t key_length(const char *a)
{
    const char *eq = strchr(a, '=');
    if (eq == NULL || eq == a)
        return 0;
    if (!((a[0] >= 'a' && a[0] <= 'z') || (a[0] >= 'A' && a[0] <= 'Z') || a[0] == '_'))
        return 0;
    for (const char *p = a; p < eq; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.'))
            return 0;
    }
    return (size_t)(eq - a);
}

/* Does `require(name)` have something to load? (loaded, preloaded or on package.path) */
static int module_exists(lua_State *L, const char *name)
{
    static const char code[] =
        "local name = ...\n"
        "if package.loaded[name] ~= nil or package.preload[name] ~= nil then return true end\n"
        "return package.searchpath(name, package.path) ~= nil\n";
    if (luaL_loadbuffer(L, code, sizeof code - 1, "=module_exists") != LUA_OK)
        lua_error(L);
    lua_pushstring(L, name);
    lua_call(L, 1, 1);
    int found = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return found;
}

void sgl_push_overrides(lua_State *L, int argc, const char *const *argv)
{
    lua_createtable(L, 0, argc);
    int args = lua_gettop(L);
    lua_Integer npos = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        size_t k = key_length(a);
        if (k > 0) {
            lua_pushlstring(L, a, k);
            push_typed(L, a + k + 1);
            lua_rawset(L, args);
        } else {
            push_typed(L, a);
            lua_rawseti(L, args, ++npos);
        }
    }
}

static int run_main(lua_State *L)
{
    run_args *ra = (run_args *)lua_touserdata(L, 1);
    load_file(L, ra->path);
    int chunk = lua_gettop(L);
    set_arg(L, ra->path, ra->argc, ra->argv);

    /* The overrides: named keys and positional values, all typed. */
    sgl_push_overrides(L, ra->argc, ra->argv);
    int args = lua_gettop(L);
    if (lua_getglobal(L, "sgdsa") == LUA_TTABLE) {
        lua_pushvalue(L, args);
        lua_setfield(L, -2, "args");
    }
    lua_pop(L, 1);

    lua_pushvalue(L, chunk);
    lua_pushvalue(L, args);
    lua_call(L, 1, 1);
    if (!lua_istable(L, -1))
        return 0;
    int experiment = lua_gettop(L);
    if (!module_exists(L, "sgdsa.trainer")) {
        fprintf(stderr, "sgdsa run: %s returned a table (an experiment) but the module "
                        "sgdsa.trainer is not available, so nothing was trained\n", ra->path);
        return 0;
    }
    lua_getglobal(L, "require");
    lua_pushstring(L, "sgdsa.trainer");
    lua_call(L, 1, 1);
    if (lua_getfield(L, -1, "run") != LUA_TFUNCTION)
        return luaL_error(L, "sgdsa run: module sgdsa.trainer has no function run(experiment, overrides)");
    lua_pushvalue(L, experiment);
    lua_pushvalue(L, args);
    lua_call(L, 2, 1);
    if (lua_isinteger(L, -1))
        ra->status = (int)lua_tointeger(L, -1);
    else if (lua_isboolean(L, -1) && !lua_toboolean(L, -1))
        ra->status = 1;
    return 0;
}

int sgdsa_run(sgdsa_state *S, const char *path, int argc, const char *const *argv)
{
    run_args ra = {path, argc, argv, 0};
    if (run_checked(S, "sgdsa_run", run_main, &ra) != 0)
        return -1;
    return ra.status;
}

/* ---- signals -------------------------------------------------------------------- */

int sgdsa_catch_signals(sgdsa_state *S, int mode)
{
    if (sgl_catch_signals(S ? S->L : NULL, mode) != 0) {
        if (S)
            set_err(S, sg_geterr());
        return -1;
    }
    return 0;
}

void sgdsa_interrupt(sgdsa_state *S) { sgl_interrupt(S ? S->L : NULL); }

int sgdsa_interrupted(void) { return sgl_interrupted(); }

void sgdsa_clear_interrupt(sgdsa_state *S) { sgl_clear_interrupt(S ? S->L : NULL); }
