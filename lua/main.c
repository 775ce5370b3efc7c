/*
 * main.c - the `sgdsa` executable: subcommands, and the interactive REPL.
 *
 *   sgdsa run SCRIPT [key=value ...]   run a script (experiments go to sgdsa.trainer);
 *                                      under `mpirun -np N`, one rank of a data-parallel run
 *   sgdsa [repl]                       interactive REPL
 *   sgdsa -e CODE [-i]                 run code (then the REPL with -i)
 *   sgdsa -i SCRIPT [key=value ...]    run a script, then the REPL
 *   sgdsa inspect|sweep|table|plot|bench ARGS   -> require("sgdsa.<cmd>").main(args)
 *   sgdsa resume DIR [key=value ...]   continue a run from its folder (log.h5's script)
 *   sgdsa env                          LUA_PATH and LUA_CPATH for a stock lua5.4
 *   sgdsa --version | --help | help CMD
 *
 * Exit status: 0 success, 1 script or runtime error (130 when it was an
 * interrupt), 2 usage error. An error is printed as lua/runtime.c formats
 * it: a mistake (a bad override, an unknown key, a missing file, a script
 * that does not load) as its message, with the script's file:line when it is
 * in the script; a bug with its traceback; every error with its traceback
 * under `sgdsa run --traceback` or SGDSA_TRACEBACK=1.
 *
 * The REPL: readline line editing and history (~/.sgdsa_history or
 * $SGDSA_HISTORY), completion of globals and of fields/methods after `.`/`:`
 * (walking tables and metatables' __index tables, and the names a lazy
 * namespace lists in its metatable's __complete, never calling code), help(x)
 * (lua/sgdsa/help.lua), the
 * values of an expression printed without `=`, multi-line statements, Ctrl-C
 * aborting the running chunk (a Lua hook) or clearing the line at the prompt.
 * Readline runs in callback mode under select(), so a signal at the prompt is
 * seen as EINTR and handled outside the signal handler. When stdin is not a
 * terminal, lines are read plainly with no prompt, for piped input.
 */
#define _GNU_SOURCE /* dladdr */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <readline/history.h>
#include <readline/readline.h>

#include "sgdsa.h"

enum { EXIT_OK = 0, EXIT_ERR = 1, EXIT_USAGE = 2, EXIT_INTERRUPTED = 130 };

/* ---- help texts ------------------------------------------------------------- */

typedef struct {
    const char *name;
    const char *summary;
    const char *usage; /* NULL: a Lua subcommand, whose module prints its own help */
} command;

static const command commands[] = {
    {"run", "run a Lua script or experiment",
     "usage: sgdsa run [--traceback] SCRIPT [key=value ...] [ARG ...]\n"
     "\n"
     "Run a Lua script. Each key=value argument is an override, typed as a\n"
     "number, a boolean (true/false) or else a string; other arguments are\n"
     "positional (args[1], args[2], ...). The overrides table is the global\n"
     "sgdsa.args and the script's `...`; the raw strings are in the global `arg`.\n"
     "A script that returns a table (an experiment) is trained with\n"
     "require('sgdsa.trainer').run(experiment, overrides).\n"
     "\n"
     "The first Ctrl-C (or SIGTERM) sets sgdsa.core.interrupted(), so a trainer\n"
     "stops cleanly after the current step (and checkpoints there); a second one\n"
     "aborts the script. `sgdsa run resume=runs/NAME` without a script is\n"
     "`sgdsa resume runs/NAME` (continue a run from its folder).\n"
     "Exit status: 0 ok, 1 error (130 after an interrupt), 2 usage error.\n"
     "\n"
     "An error is shown as its message (with the script's file:line when it\n"
     "is in the script); an error the Lua VM raised (a bug, in the script or\n"
     "in sgdsa) also with its stack traceback. --traceback (or the environment\n"
     "variable SGDSA_TRACEBACK=1) shows the traceback of every error.\n"
     "\n"
     "Data-parallel: `mpirun -np N sgdsa run SCRIPT ...` runs the experiment on\n"
     "N ranks (one per GPU with device=cuda), each on its slice of every\n"
     "minibatch, all taking the same decisions; rank 0 prints and writes the\n"
     "run folder, the others print only errors, and an error on any rank stops\n"
     "them all. sync_bn=true: BatchNorm statistics of the whole minibatch.\n"},
    {"resume", "continue a run from its folder: sgdsa resume runs/NAME [key=value ...]",
     "usage: sgdsa resume RUN_FOLDER [key=value ...]\n"
     "       sgdsa run resume=RUN_FOLDER [key=value ...]\n"
     "\n"
     "Continue a run where it stopped (Ctrl-C, a kill, a crash), from its last\n"
     "checkpoint: the script and the overrides it was started with are read\n"
     "from RUN_FOLDER/log.h5 and run again (the recorded text of the script, so\n"
     "an edited or moved file does not change the run), with resume=RUN_FOLDER.\n"
     "key=value arguments given here replace the recorded ones; as with\n"
     "`sgdsa run SCRIPT resume=...`, only keys that do not change the run's\n"
     "results may differ (epochs, threads, progress, checkpoint, device, ...).\n"
     "The first Ctrl-C stops after the current step and checkpoints there.\n"
     "Errors as for sgdsa run (SGDSA_TRACEBACK=1 for every traceback).\n"
     "Exit status: 0 ok, 1 error (130 after an interrupt), 2 usage error.\n"},
    {"repl", "interactive REPL (the default without arguments)",
     "usage: sgdsa repl\n"
     "\n"
     "Interactive Lua 5.4 with the sgdsa library loaded as the global `sgdsa`.\n"
     "An expression's value is printed (no `=` needed); incomplete statements\n"
     "continue on the next line; TAB completes globals and fields/methods after\n"
     "`.` and `:`; help(x) prints the documentation of x, help() an index;\n"
     "Ctrl-C aborts the running chunk or clears the line; Ctrl-D\n"
     "exits. History is kept in ~/.sgdsa_history (or $SGDSA_HISTORY; empty to\n"
     "disable). The result of the last expression is kept in `_`.\n"
     "With stdin not a terminal, lines are read without prompts; the exit status\n"
     "is then 1 if any chunk failed.\n"},
    {"env", "print LUA_PATH and LUA_CPATH for a stock lua5.4 (eval \"$(sgdsa env)\")",
     "usage: sgdsa env\n"
     "\n"
     "Print the shell lines that let a stock lua5.4 (or any Lua 5.4 host) load this\n"
     "sgdsa: `require \"sgdsa\"` finds the Lua library, the networks (sgdsa.models)\n"
     "and the sgdsa.core module this executable uses:\n"
     "\n"
     "  eval \"$(sgdsa env)\"; lua5.4 -e 'print(require(\"sgdsa\").ones(2))'\n"
     "\n"
     "The paths end in ;; (Lua's default path after them). An installed sgdsa also\n"
     "records them in sgdsa.pc: pkg-config --variable=lua_path sgdsa (and lua_cpath).\n"},
    {"inspect", "show the contents of an HDF5 run file or checkpoint", NULL},
    {"sweep", "run an experiment over a grid of overrides or seeds", NULL},
    {"table", "tabulate results of runs", NULL},
    {"plot", "plot logs of runs", NULL},
    {"bench", "benchmark kernels and training steps", NULL},
    {NULL, NULL, NULL},
};

static void print_main_help(FILE *f)
{
    fprintf(f,
            "usage: sgdsa [COMMAND] [ARGS...]\n"
            "       sgdsa SCRIPT.lua [key=value ...]   (same as sgdsa run)\n"
            "       sgdsa -e CODE [-e CODE ...] [-i]  run code, then the REPL with -i\n"
            "       sgdsa -i SCRIPT [key=value ...]    run a script, then the REPL\n"
            "       sgdsa --version | --help\n"
            "\n"
            "SGD with simulated annealing: the sgdsa runtime driven by Lua 5.4.\n"
            "\n"
            "commands:\n");
    for (const command *c = commands; c->name; c++)
        fprintf(f, "  %-8s %s\n", c->name, c->summary);
    fprintf(f, "  help CMD  help on a command (also: sgdsa CMD --help)\n"
               "\n"
               "Environment: SGDSA_ROOT (where lua/sgdsa, models/, experiments/ live),\n"
               "SGDSA_HISTORY (REPL history file), SGDSA_TRACEBACK=1 (a stack traceback\n"
               "with every error, not only with bugs), OPENBLAS_CORETYPE (OpenBLAS's\n"
               "kernels: when unset and OpenBLAS falls back to a core older than the CPU,\n"
               "sgdsa sets it and restarts itself; --version says which core runs).\n");
}

static const command *find_command(const char *name)
{
    for (const command *c = commands; c->name; c++)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

static int usage_error(const char *fmt, const char *what)
{
    fprintf(stderr, "sgdsa: ");
    fprintf(stderr, fmt, what);
    fprintf(stderr, "\n(try `sgdsa --help`)\n");
    return EXIT_USAGE;
}

static int is_help(const char *a) { return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0; }

/* ---- the runtime --------------------------------------------------------------- */

static sgdsa_state *open_state(void)
{
    sgdsa_state *S = sgdsa_open();
    if (S == NULL)
        fprintf(stderr, "sgdsa: %s\n", sgdsa_errmsg(NULL));
    return S;
}

/* An error on one rank of a data-parallel run ends the job: the other ranks
 * would wait for this one in their next sum forever. Its message first (with
 * the rank), then a moment for ranks failing at about the same time to print
 * theirs, then MPI_Abort, which takes every rank down. */
static void abort_job(int rc)
{
    if (sgdsa_dist_size() <= 1)
        return;
    fprintf(stderr, "sgdsa: rank %d of %d failed: stopping every rank of the run (its run "
                    "folder keeps the last checkpoint)\n", sgdsa_dist_rank(), sgdsa_dist_size());
    fflush(stderr);
    struct timespec t = {0, 500000000};
    nanosleep(&t, NULL);
    sgdsa_dist_abort(rc);
}

static int report(sgdsa_state *S)
{
    if (sgdsa_dist_size() > 1)
        fprintf(stderr, "sgdsa: rank %d of %d: %s\n", sgdsa_dist_rank(), sgdsa_dist_size(),
                sgdsa_errmsg(S));
    else
        fprintf(stderr, "sgdsa: %s\n", sgdsa_errmsg(S));
    fflush(stderr);
    int rc = sgdsa_interrupted() ? EXIT_INTERRUPTED : EXIT_ERR;
    abort_job(rc);
    return rc;
}

/* Join a data-parallel job when mpirun started this process as one of several
 * ranks (sgdsa_dist_init); every rank but 0 prints nothing but errors (its
 * standard output goes to /dev/null). -1 when it cannot join (printed). */
static int join_job(int then_repl)
{
    int n = sgdsa_dist_init();
    if (n < 0) {
        fprintf(stderr, "sgdsa run: %s\n", sgdsa_errmsg(NULL));
        return -1;
    }
    if (n > 1 && then_repl) {
        fprintf(stderr, "sgdsa: -i (a REPL after the script) is not available on %d ranks\n", n);
        abort_job(EXIT_USAGE);
        return -1;
    }
    if (n > 1 && sgdsa_dist_rank() > 0) {
        fflush(stdout);
        if (!freopen("/dev/null", "w", stdout))
            fprintf(stderr, "sgdsa: rank %d: cannot send its output to /dev/null\n",
                    sgdsa_dist_rank());
    }
    return n;
}

/* Run SCRIPT ARGS with `sgdsa run` semantics; the status to exit with. */
static int run_script(sgdsa_state *S, const char *path, int argc, char **argv)
{
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "sgdsa run: cannot open script %s: %s\n", path, strerror(errno));
        return EXIT_USAGE;
    }
    sgdsa_clear_interrupt(S);
    if (sgdsa_catch_signals(S, SGDSA_SIGNALS_STOP) != 0)
        return report(S);
    int rc = sgdsa_run(S, path, argc, (const char *const *)argv);
    sgdsa_catch_signals(S, SGDSA_SIGNALS_DEFAULT);
    if (rc < 0)
        return report(S);
    return rc;
}

/* Continue the run in folder `dir`: require("sgdsa.trainer").resume_folder(dir, args). */
static int resume_folder(const char *dir, int argc, char **argv)
{
    sgdsa_state *S = open_state();
    if (S == NULL)
        return EXIT_ERR;
    lua_State *L = sgdsa_lua(S);
    int rc = EXIT_ERR;
    sgdsa_clear_interrupt(S);
    if (sgdsa_catch_signals(S, SGDSA_SIGNALS_STOP) != 0) {
        rc = report(S);
        goto done;
    }
    static const char code[] =
        "local dir, args = ...\n"
        "return require('sgdsa.trainer').resume_folder(dir, args)\n";
    if (luaL_loadbuffer(L, code, sizeof code - 1, "=sgdsa resume") != LUA_OK) {
        fprintf(stderr, "sgdsa resume: %s\n", lua_tostring(L, -1));
        goto done;
    }
    lua_pushstring(L, dir);
    lua_createtable(L, argc, 0);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i + 1);
    }
    if (sgdsa_pcall(S, 2, 1) != 0) {
        rc = report(S);
    } else {
        rc = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : EXIT_OK;
        lua_pop(L, 1);
    }
    sgdsa_catch_signals(S, SGDSA_SIGNALS_DEFAULT);
done:
    sgdsa_close(S);
    return rc;
}

static int cmd_resume(int argc, char **argv)
{
    if (argc > 0 && is_help(argv[0])) {
        fputs(find_command("resume")->usage, stdout);
        return EXIT_OK;
    }
    if (argc == 0)
        return usage_error("%s: missing RUN_FOLDER (sgdsa resume runs/NAME)", "resume");
    if (argv[0][0] == '-')
        return usage_error("resume: unknown option %s", argv[0]);
    return resume_folder(argv[0], argc - 1, argv + 1);
}

/* require("sgdsa.<name>").main(args) for the Lua-implemented subcommands. */
static int lua_command(const command *c, int argc, char **argv)
{
    sgdsa_state *S = open_state();
    if (S == NULL)
        return EXIT_ERR;
    lua_State *L = sgdsa_lua(S);
    char module[64];
    snprintf(module, sizeof module, "sgdsa.%s", c->name);
    static const char finder[] =
        "local name = ...\n"
        "if package.loaded[name] ~= nil or package.preload[name] ~= nil then return true end\n"
        "if package.searchpath(name, package.path) then return true end\n"
        "return false, ' (looked under ' .. sgdsa.core.root() .. ' and on package.path)'\n";
    int rc = EXIT_ERR;
    if (luaL_loadbuffer(L, finder, sizeof finder - 1, "=sgdsa") != LUA_OK) {
        fprintf(stderr, "sgdsa %s: %s\n", c->name, lua_tostring(L, -1));
        goto done;
    }
    lua_pushstring(L, module);
    if (sgdsa_pcall(S, 1, 2) != 0) {
        rc = report(S);
        goto done;
    }
    if (!lua_toboolean(L, -2)) {
        if (argc > 0 && is_help(argv[0]))
            fprintf(stderr, "sgdsa %s: %s\n", c->name, c->summary);
        fprintf(stderr, "sgdsa %s: this command is not available: the Lua module %s was not "
                        "found%s\n", c->name, module, lua_tostring(L, -1) ? lua_tostring(L, -1) : "");
        goto done;
    }
    lua_pop(L, 2);
    sgdsa_clear_interrupt(S);
    sgdsa_catch_signals(S, SGDSA_SIGNALS_STOP);
    lua_getglobal(L, "require");
    lua_pushstring(L, module);
    if (sgdsa_pcall(S, 1, 1) != 0) {
        rc = report(S);
        goto done;
    }
    if (lua_getfield(L, -1, "main") != LUA_TFUNCTION) {
        fprintf(stderr, "sgdsa %s: module %s has no function main(args)\n", c->name, module);
        goto done;
    }
    lua_createtable(L, argc, 1);
    lua_pushfstring(L, "sgdsa %s", c->name);
    lua_rawseti(L, -2, 0);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i + 1);
    }
    if (sgdsa_pcall(S, 1, 1) != 0) {
        rc = report(S);
        goto done;
    }
    if (lua_isinteger(L, -1))
        rc = (int)lua_tointeger(L, -1);
    else if (lua_isnoneornil(L, -1) || lua_toboolean(L, -1))
        rc = EXIT_OK;
    else
        rc = EXIT_ERR;
done:
    sgdsa_close(S);
    return rc;
}

/* ---- sgdsa env ---------------------------------------------------------------------- */

/* Is there a file at dir/rel? */
static int file_at(const char *dir, const char *rel)
{
    char p[PATH_MAX];
    int n = snprintf(p, sizeof p, "%s/%s", dir, rel);
    return n > 0 && (size_t)n < sizeof p && access(p, R_OK) == 0;
}

/* Quote s for a POSIX shell ('...', with ' as '\''). */
static void print_quoted(const char *s)
{
    putchar('\'');
    for (; *s; s++) {
        if (*s == '\'')
            fputs("'\\''", stdout);
        else
            putchar(*s);
    }
    putchar('\'');
}

/* The start of a command without arguments: -1 to go on, or the exit status
 * (its usage for --help, a usage error for anything else). */
static int no_arguments(const char *cmd, int argc, char **argv)
{
    if (argc == 0)
        return -1;
    if (is_help(argv[0])) {
        fputs(find_command(cmd)->usage, stdout);
        return EXIT_OK;
    }
    char fmt[64];
    snprintf(fmt, sizeof fmt, "%s: unexpected argument %%s", cmd);
    return usage_error(fmt, argv[0]);
}

/*
 * LUA_PATH: the Lua library of this executable's runtime (sgdsa.core.root());
 * LUA_CPATH: the sgdsa.core module beside the libsgdsa it runs, installed
 * (<libdir>/lua/5.4/sgdsa/core.so) or in a build tree (<build>/lib/sgdsa/core.so).
 */
static int cmd_env(int argc, char **argv)
{
    const int rc0 = no_arguments("env", argc, argv);
    if (rc0 >= 0)
        return rc0;
    Dl_info info;
    char lib[PATH_MAX];
    if (dladdr((void *)sgdsa_version, &info) == 0 || info.dli_fname == NULL ||
        realpath(info.dli_fname, lib) == NULL) {
        fprintf(stderr, "sgdsa env: cannot tell where libsgdsa is loaded from\n");
        return EXIT_ERR;
    }
    char *slash = strrchr(lib, '/');
    if (slash != NULL)
        *slash = '\0';
    const char *cpath = NULL;
    if (file_at(lib, "lua/5.4/sgdsa/core.so"))
        cpath = "lua/5.4/?.so";
    else if (file_at(lib, "lib/sgdsa/core.so"))
        cpath = "lib/?.so";
    if (cpath == NULL) {
        fprintf(stderr, "sgdsa env: no sgdsa/core.so beside %s (under lua/5.4/ or lib/)\n", lib);
        return EXIT_ERR;
    }
    sgdsa_state *S = open_state();
    if (S == NULL)
        return EXIT_ERR;
    int rc = EXIT_OK;
    if (sgdsa_dostring(S, "env_root = sgdsa.core.root()", "=env") != 0) {
        rc = report(S);
    } else {
        lua_State *L = sgdsa_lua(S);
        lua_getglobal(L, "env_root");
        const char *root = lua_tostring(L, -1);
        char buf[3 * PATH_MAX];
        snprintf(buf, sizeof buf, "%s/lua/?.lua;%s/lua/?/init.lua;;", root, root);
        fputs("export LUA_PATH=", stdout);
        print_quoted(buf);
        snprintf(buf, sizeof buf, "%s/%s;;", lib, cpath);
        fputs("\nexport LUA_CPATH=", stdout);
        print_quoted(buf);
        putchar('\n');
        lua_pop(L, 1);
    }
    sgdsa_close(S);
    return rc;
}

/* ---- REPL: printing ---------------------------------------------------------------- */

/*
 * The printer, in Lua: strings raw at top level, tables briefly (up to 12
 * entries, nested ones up to 4, deeper ones as {...}), anything with __tostring or __name through
 * tostring (tensors print themselves).
 */
static const char printer_src[] =
    "local function key_order(a, b)\n"
    "  local ta, tb = type(a), type(b)\n"
    "  if ta ~= tb then return ta < tb end\n"
    "  if ta == 'number' or ta == 'string' then return a < b end\n"
    "  return tostring(a) < tostring(b)\n"
    "end\n"
    "local function brief(v, depth)\n"
    "  if type(v) == 'string' then return string.format('%q', v) end\n"
    "  if type(v) ~= 'table' then return tostring(v) end\n"
    "  local mt = getmetatable(v)\n"
    "  if mt and (mt.__tostring or mt.__name) then return tostring(v) end\n"
    "  local n, keys = rawlen(v), {}\n"
    "  for k in next, v do\n"
    "    if not (math.type(k) == 'integer' and k >= 1 and k <= n) then keys[#keys + 1] = k end\n"
    "  end\n"
    "  local total = n + #keys\n"
    "  if total == 0 then return '{}' end\n"
    "  if depth > 2 then return '{...}' end\n"
    "  table.sort(keys, key_order)\n"
    "  local parts, limit = {}, depth == 1 and 12 or 4\n"
    "  for i = 1, math.min(n, limit) do parts[#parts + 1] = brief(rawget(v, i), depth + 1) end\n"
    "  for _, k in ipairs(keys) do\n"
    "    if #parts >= limit then break end\n"
    "    local ks = (type(k) == 'string' and k:match('^[%a_][%w_]*$')) and k\n"
    "               or '[' .. brief(k, depth + 1) .. ']'\n"
    "    parts[#parts + 1] = ks .. ' = ' .. brief(rawget(v, k), depth + 1)\n"
    "  end\n"
    "  local s = '{' .. table.concat(parts, ', ')\n"
    "  if total > #parts then s = s .. string.format(', ... (%d entries)', total) end\n"
    "  return s .. '}'\n"
    "end\n"
    "return function(...)\n"
    "  local out = {}\n"
    "  for i = 1, select('#', ...) do\n"
    "    local v = select(i, ...)\n"
    "    out[i] = type(v) == 'string' and v or brief(v, 1)\n"
    "  end\n"
    "  return table.concat(out, '\\t')\n"
    "end\n";

static int printer_ref = LUA_NOREF;

/* Print the n values on top of the stack (and pop them); `_` = the first. */
static void print_values(sgdsa_state *S, int n)
{
    lua_State *L = sgdsa_lua(S);
    if (n <= 0)
        return;
    lua_pushvalue(L, -n);
    lua_setglobal(L, "_");
    lua_rawgeti(L, LUA_REGISTRYINDEX, printer_ref);
    lua_insert(L, -(n + 1));
    if (sgdsa_pcall(S, n, 1) != 0) {
        fprintf(stderr, "%s\n", sgdsa_errmsg(S));
        return;
    }
    const char *s = lua_tostring(L, -1);
    if (s != NULL) {
        fputs(s, stdout);
        fputc('\n', stdout);
    }
    fflush(stdout);
    lua_pop(L, 1);
}

/* ---- REPL: completion ---------------------------------------------------------------- */

static lua_State *complete_L;
static char **matches;
static size_t nmatches, capmatches;

static const char *const keywords[] = {
    "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if",
    "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while", NULL,
};

static void add_match(const char *s)
{
    for (size_t i = 0; i < nmatches; i++)
        if (strcmp(matches[i], s) == 0)
            return;
    if (nmatches == capmatches) {
        size_t cap = capmatches ? 2 * capmatches : 64;
        char **m = realloc(matches, cap * sizeof *m);
        if (m == NULL)
            return;
        matches = m;
        capmatches = cap;
    }
    char *copy = strdup(s);
    if (copy != NULL)
        matches[nmatches++] = copy;
}

static void clear_matches(void)
{
    for (size_t i = 0; i < nmatches; i++)
        free(matches[i]);
    nmatches = 0;
}

static int is_identifier(const char *s)
{
    if (!(*s == '_' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
        return 0;
    for (; *s; s++)
        if (!(*s == '_' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9')))
            return 0;
    return 1;
}

/*
 * Look up field `key` of the value at the top of the stack without running
 * code: raw access on tables, then the metatable's __index while it is a
 * table. Replaces the top with the result (nil if none).
 */
static void safe_field(lua_State *L, const char *key)
{
    for (int depth = 0; depth < 16; depth++) {
        if (lua_istable(L, -1)) {
            lua_pushstring(L, key);
            lua_rawget(L, -2);
            if (!lua_isnil(L, -1)) {
                lua_remove(L, -2);
                return;
            }
            lua_pop(L, 1);
        }
        if (!lua_getmetatable(L, -1)) {
            lua_pop(L, 1);
            lua_pushnil(L);
            return;
        }
        lua_pushliteral(L, "__index");
        lua_rawget(L, -2);
        lua_remove(L, -2); /* the metatable */
        lua_remove(L, -2); /* the value */
        if (!lua_istable(L, -1)) {
            lua_pop(L, 1);
            lua_pushnil(L);
            return;
        }
    }
    lua_pop(L, 1);
    lua_pushnil(L);
}

/* Add "<prefix><key>" for each identifier key of the table on top starting with `part`. */
static void add_keys(lua_State *L, const char *prefix, const char *part, int methods_only)
{
    size_t plen = strlen(part);
    char buf[512];
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
        if (lua_type(L, -2) == LUA_TSTRING) {
            const char *k = lua_tostring(L, -2);
            int callable = lua_isfunction(L, -1);
            if (!callable && luaL_getmetafield(L, -1, "__call") != LUA_TNIL) {
                callable = 1;
                lua_pop(L, 1);
            }
            if (strncmp(k, part, plen) == 0 && is_identifier(k) &&
                (!methods_only || callable) && (plen > 1 || strncmp(k, "__", 2) != 0)) {
                snprintf(buf, sizeof buf, "%s%s", prefix, k);
                add_match(buf);
            }
        }
        lua_pop(L, 1);
    }
}

/*
 * Candidates from the value on top: its own keys, the names its metatable
 * lists in __complete (the keys of a table: what a lazy namespace such as
 * sgdsa.optim or sgdsa.models loads on first use), then its __index chain
 * (pops it).
 */
static void add_candidates(lua_State *L, const char *prefix, const char *part, int methods_only)
{
    for (int depth = 0; depth < 16; depth++) {
        if (lua_istable(L, -1))
            add_keys(L, prefix, part, methods_only);
        if (!lua_getmetatable(L, -1))
            break;
        lua_pushliteral(L, "__complete");
        if (lua_rawget(L, -2) == LUA_TTABLE && !methods_only) {
            size_t plen = strlen(part);
            char buf[512];
            lua_pushnil(L);
            while (lua_next(L, -2) != 0) {
                lua_pop(L, 1);
                if (lua_type(L, -1) == LUA_TSTRING) {
                    const char *k = lua_tostring(L, -1);
                    if (strncmp(k, part, plen) == 0 && is_identifier(k)) {
                        snprintf(buf, sizeof buf, "%s%s", prefix, k);
                        add_match(buf);
                    }
                }
            }
        }
        lua_pop(L, 1);
        lua_pushliteral(L, "__index");
        lua_rawget(L, -2);
        if (lua_istable(L, -1)) {
            lua_remove(L, -2);
            lua_remove(L, -2);
            continue;
        }
        /*
         * __index is a function (never called here): offer the metatable's
         * `methods` table (the binding's convention), else the function's
         * first upvalue when it is a table, else the metatable's own fields.
         */
        if (lua_getfield(L, -2, "methods") == LUA_TTABLE) {
            add_keys(L, prefix, part, methods_only);
        } else if (lua_iscfunction(L, -2) && lua_getupvalue(L, -2, 1) != NULL) {
            if (lua_istable(L, -1))
                add_keys(L, prefix, part, methods_only);
            lua_pop(L, 1);
        } else {
            lua_pushvalue(L, -3);
            add_keys(L, prefix, part, methods_only);
            lua_pop(L, 1);
        }
        lua_pop(L, 3); /* methods, __index, the metatable */
        break;
    }
    lua_pop(L, 1);
}

static void collect(const char *text)
{
    lua_State *L = complete_L;
    int top = lua_gettop(L);
    clear_matches();
    const char *sep = NULL;
    for (const char *p = text; *p; p++)
        if (*p == '.' || *p == ':')
            sep = p;
    if (sep == NULL) {
        lua_pushglobaltable(L);
        add_candidates(L, "", text, 0);
        size_t n = strlen(text);
        for (int i = 0; keywords[i]; i++)
            if (strncmp(keywords[i], text, n) == 0)
                add_match(keywords[i]);
        lua_settop(L, top);
        return;
    }
    /* Walk the path before the last separator: a.b.c */
    char path[512], prefix[512];
    size_t plen = (size_t)(sep - text);
    if (plen >= sizeof path)
        return;
    memcpy(path, text, plen);
    path[plen] = '\0';
    memcpy(prefix, text, plen + 1);
    prefix[plen + 1] = '\0';
    lua_pushglobaltable(L);
    char *save = NULL;
    for (char *seg = strtok_r(path, ".:", &save); seg; seg = strtok_r(NULL, ".:", &save)) {
        if (!is_identifier(seg)) {
            lua_settop(L, top);
            return;
        }
        safe_field(L, seg);
        if (lua_isnil(L, -1)) {
            lua_settop(L, top);
            return;
        }
    }
    add_candidates(L, prefix, sep + 1, *sep == ':');
    lua_settop(L, top);
}

static char *match_generator(const char *text, int state)
{
    static size_t next;
    (void)text;
    if (state == 0)
        next = 0;
    return next < nmatches ? strdup(matches[next++]) : NULL;
}

/* List matches by their last component ("zeros", not "sgdsa.zeros"), as th does. */
static void display_matches(char **list, int n, int max_length)
{
    char **shown = malloc(sizeof(char *) * (size_t)(n + 2));
    if (shown == NULL) {
        rl_display_match_list(list, n, max_length);
        rl_forced_update_display();
        return;
    }
    int width = 0;
    shown[0] = list[0];
    for (int i = 1; i <= n; i++) {
        const char *cut = list[i];
        for (const char *p = list[i]; *p; p++)
            if (*p == '.' || *p == ':')
                cut = p + 1;
        shown[i] = (char *)cut;
        int len = (int)strlen(cut);
        if (len > width)
            width = len;
    }
    shown[n + 1] = NULL;
    rl_display_match_list(shown, n, width);
    free(shown);
    rl_forced_update_display();
}

static char **complete(const char *text, int start, int end)
{
    (void)start;
    (void)end;
    rl_attempted_completion_over = 1; /* never fall back to file names */
    collect(text);
    return rl_completion_matches(text, match_generator);
}

/* ---- REPL: reading lines -------------------------------------------------------------- */

static char *line_result;
static int line_done;

static void on_line(char *line)
{
    line_result = line;
    line_done = 1;
    rl_callback_handler_remove();
}

enum { READ_LINE, READ_EOF, READ_INTERRUPT };

/* Read one line with readline (terminal) or plainly (pipe); *out is malloc'd. */
static int read_line(int tty, const char *prompt, char **out)
{
    *out = NULL;
    if (!tty) {
        size_t cap = 0;
        ssize_t n;
        for (;;) {
            errno = 0;
            n = getline(out, &cap, stdin);
            if (n >= 0)
                break;
            if (errno == EINTR) {
                clearerr(stdin);
                if (sgdsa_interrupted())
                    return READ_INTERRUPT;
                continue;
            }
            free(*out);
            *out = NULL;
            return READ_EOF;
        }
        if (n > 0 && (*out)[n - 1] == '\n')
            (*out)[n - 1] = '\0';
        return READ_LINE;
    }
    line_done = 0;
    line_result = NULL;
    /* SIGINT/SIGTERM stay blocked except inside pselect and while readline
     * handles a key, so a Ctrl-C that lands between the flag test and the
     * wait still wakes the wait (with plain select it could be lost and the
     * prompt would hang until the next key). */
    sigset_t block, orig;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigprocmask(SIG_BLOCK, &block, &orig);
    rl_callback_handler_install(prompt, on_line);
    while (!line_done) {
        if (sgdsa_interrupted()) {
            /* Ctrl-C at the prompt: drop the line, start a fresh prompt. */
            rl_callback_sigcleanup();
            rl_free_line_state();
            rl_replace_line("", 0);
            rl_point = rl_end = 0;
            rl_callback_handler_remove();
            sigprocmask(SIG_SETMASK, &orig, NULL);
            fputs("^C\n", stdout);
            fflush(stdout);
            return READ_INTERRUPT;
        }
        fd_set fds;
        FD_ZERO(&fds);
        FD_SET(STDIN_FILENO, &fds);
        int r = pselect(STDIN_FILENO + 1, &fds, NULL, NULL, NULL, &orig);
        if (r < 0) {
            if (errno != EINTR)
                break;
            continue;
        }
        if (r > 0) {
            sigprocmask(SIG_SETMASK, &orig, NULL);
            rl_callback_read_char();
            sigprocmask(SIG_BLOCK, &block, NULL);
        }
    }
    sigprocmask(SIG_SETMASK, &orig, NULL);
    if (!line_done) {
        rl_callback_handler_remove();
        return READ_EOF;
    }
    if (line_result == NULL) {
        fputc('\n', stdout);
        return READ_EOF;
    }
    *out = line_result;
    return READ_LINE;
}

/* ---- REPL: evaluating -------------------------------------------------------------------- */

/* Is the compile error in the message an unfinished chunk? (lua.c's test) */
static int incomplete(lua_State *L)
{
    size_t len;
    const char *msg = lua_tolstring(L, -1, &len);
    static const char eof[] = "<eof>";
    size_t n = sizeof eof - 1;
    return msg && len >= n && strcmp(msg + len - n, eof) == 0;
}

/* Run the function on top; print its results or the error. 0 ok, -1 error. */
static int run_chunk(sgdsa_state *S)
{
    lua_State *L = sgdsa_lua(S);
    int base = lua_gettop(L) - 1;
    sgdsa_clear_interrupt(S);
    int rc = sgdsa_pcall(S, 0, LUA_MULTRET);
    int interrupted = sgdsa_interrupted() > 0;
    sgdsa_clear_interrupt(S);
    if (rc != 0) {
        if (interrupted && isatty(STDERR_FILENO))
            fputc('\n', stderr); /* after the terminal's ^C echo */
        fprintf(stderr, "%s\n", sgdsa_errmsg(S));
        fflush(stderr);
        return -1;
    }
    print_values(S, lua_gettop(L) - base);
    lua_settop(L, base);
    return 0;
}

static char *history_path(void)
{
    const char *env = getenv("SGDSA_HISTORY");
    if (env != NULL)
        return env[0] ? strdup(env) : NULL;
    const char *home = getenv("HOME");
    if (home == NULL || home[0] == '\0')
        return NULL;
    size_t n = strlen(home) + sizeof "/.sgdsa_history";
    char *p = malloc(n);
    if (p != NULL)
        snprintf(p, n, "%s/.sgdsa_history", home);
    return p;
}

static void remember(const char *hist, const char *entry)
{
    if (entry[0] == '\0')
        return;
    HIST_ENTRY *last = history_length > 0 ? history_get(history_base + history_length - 1) : NULL;
    if (last != NULL && strcmp(last->line, entry) == 0)
        return;
    add_history(entry);
    if (hist != NULL) {
        FILE *f = fopen(hist, "a"); /* append_history needs the file to exist */
        if (f != NULL) {
            fclose(f);
            append_history(1, hist);
        }
    }
}

static int repl(sgdsa_state *S)
{
    lua_State *L = sgdsa_lua(S);
    int tty = isatty(STDIN_FILENO);
    int failures = 0;

    if (luaL_loadbuffer(L, printer_src, sizeof printer_src - 1, "=repl") != LUA_OK ||
        sgdsa_pcall(S, 0, 1) != 0) {
        fprintf(stderr, "sgdsa repl: %s\n", lua_isstring(L, -1) ? lua_tostring(L, -1) : sgdsa_errmsg(S));
        return EXIT_ERR;
    }
    printer_ref = luaL_ref(L, LUA_REGISTRYINDEX);

    char *hist = NULL;
    if (tty) {
        rl_readline_name = "sgdsa";
        rl_catch_signals = 0;
        rl_catch_sigwinch = 1;
        rl_attempted_completion_function = complete;
        rl_completion_display_matches_hook = display_matches;
        rl_completer_word_break_characters = " \t\n\"\\'`@$><=;|&{(+-*/%^~#,[]";
        rl_completion_append_character = '\0';
        rl_basic_quote_characters = "\"'";
        complete_L = L;
        hist = history_path();
        stifle_history(1000);
        if (hist != NULL)
            read_history(hist);
        if (isatty(STDOUT_FILENO))
            printf("sgdsa %s  (%s)  help() for help, TAB completes, Ctrl-C interrupts, Ctrl-D exits\n",
                   sgdsa_version(), LUA_RELEASE);
    }
    if (sgdsa_catch_signals(S, SGDSA_SIGNALS_INTERRUPT) != 0) {
        fprintf(stderr, "sgdsa repl: %s\n", sgdsa_errmsg(S));
        free(hist);
        return EXIT_ERR;
    }
    /* help(x): the documentation of x (lua/sgdsa/help.lua); `help` alone prints the index */
    if (sgdsa_dostring(S, "if help == nil then help = sgdsa.help end", "=repl") != 0)
        fprintf(stderr, "sgdsa repl: no help: %s\n", sgdsa_errmsg(S));

    char *chunk = NULL; /* the statement being assembled over several lines */
    size_t chunk_len = 0;
    for (;;) {
        char *line;
        int r = read_line(tty, chunk ? ">> " : "> ", &line);
        if (r == READ_EOF)
            break;
        if (r == READ_INTERRUPT) {
            sgdsa_clear_interrupt(S);
            free(chunk);
            chunk = NULL;
            chunk_len = 0;
            continue;
        }
        /* Append the line to the pending chunk. */
        size_t n = strlen(line);
        char *grown = realloc(chunk, chunk_len + n + 2);
        if (grown == NULL) {
            fprintf(stderr, "sgdsa repl: out of memory reading a line (%zu bytes)\n", chunk_len + n);
            free(line);
            continue;
        }
        if (chunk != NULL)
            grown[chunk_len++] = '\n';
        chunk = grown;
        memcpy(chunk + chunk_len, line, n + 1);
        chunk_len += n;
        free(line);

        /* First line of a statement: try it as an expression ("=expr" too). */
        int first = strchr(chunk, '\n') == NULL;
        int loaded = 0;
        if (first) {
            const char *expr = chunk[0] == '=' ? chunk + 1 : chunk;
            const char *code = lua_pushfstring(L, "return %s;", expr);
            loaded = luaL_loadbuffer(L, code, strlen(code), "=stdin") == LUA_OK;
            lua_remove(L, -2);  /* the code; leaves the function or the message */
            if (!loaded)
                lua_pop(L, 1);
        }
        if (!loaded) {
            if (luaL_loadbuffer(L, chunk, chunk_len, "=stdin") != LUA_OK) {
                if (incomplete(L)) {
                    lua_pop(L, 1);
                    continue; /* keep reading the statement */
                }
                fprintf(stderr, "%s\n", lua_tostring(L, -1));
                fflush(stderr);
                lua_pop(L, 1);
                failures++;
                if (tty)
                    remember(hist, chunk);
                free(chunk);
                chunk = NULL;
                chunk_len = 0;
                continue;
            }
        }
        if (tty)
            remember(hist, chunk);
        free(chunk);
        chunk = NULL;
        chunk_len = 0;
        if (run_chunk(S) != 0)
            failures++;
    }
    free(chunk);
    sgdsa_catch_signals(S, SGDSA_SIGNALS_DEFAULT);
    if (hist != NULL)
        history_truncate_file(hist, 1000);
    free(hist);
    clear_matches();
    free(matches);
    matches = NULL;
    capmatches = 0;
    luaL_unref(L, LUA_REGISTRYINDEX, printer_ref);
    return (!tty && failures > 0) ? EXIT_ERR : EXIT_OK;
}

/* ---- entry points -------------------------------------------------------------------------- */

static int cmd_run(int argc, char **argv, int then_repl)
{
    int i = 0;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (is_help(argv[i])) {
            fputs(find_command("run")->usage, stdout);
            return EXIT_OK;
        }
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        }
        if (strcmp(argv[i], "--traceback") == 0) {
            setenv("SGDSA_TRACEBACK", "1", 1);   /* read by the runtime's message handler */
            continue;
        }
        return usage_error("run: unknown option %s", argv[i]);
    }
    if (i >= argc)
        return usage_error("%s: missing SCRIPT", then_repl ? "-i" : "run");
    /* sgdsa run resume=DIR [key=value ...]: the run folder's own script */
    const int resume_dir = !then_repl && strncmp(argv[i], "resume=", 7) == 0 && access(argv[i], F_OK) != 0;
    if (resume_dir && argv[i][7] == '\0')
        return usage_error("run: %s needs a run folder (resume=runs/NAME)", argv[i]);
    if (join_job(then_repl) < 0)
        return EXIT_ERR;
    if (resume_dir)
        return resume_folder(argv[i] + 7, argc - i - 1, argv + i + 1);
    sgdsa_state *S = open_state();
    if (S == NULL) {
        abort_job(EXIT_ERR);
        return EXIT_ERR;
    }
    int rc = run_script(S, argv[i], argc - i - 1, argv + i + 1);
    if (rc == EXIT_USAGE)
        abort_job(rc);
    if (then_repl && rc != EXIT_USAGE)
        rc = repl(S);
    sgdsa_close(S);
    sgdsa_dist_finalize();
    return rc;
}

static int cmd_repl(int argc, char **argv)
{
    const int rc0 = no_arguments("repl", argc, argv);
    if (rc0 >= 0)
        return rc0;
    sgdsa_state *S = open_state();
    if (S == NULL)
        return EXIT_ERR;
    int rc = repl(S);
    sgdsa_close(S);
    return rc;
}

/* sgdsa -e CODE [-e CODE ...] [-i [SCRIPT ARGS...]] */
static int cmd_exec(int argc, char **argv)
{
    const char **codes = calloc((size_t)argc + 1, sizeof *codes);
    int ncodes = 0, interactive = 0, rest = argc;
    if (codes == NULL) {
        fprintf(stderr, "sgdsa: out of memory parsing %d arguments\n", argc);
        return EXIT_ERR;
    }
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "-e") == 0) {
            if (i + 1 >= argc) {
                free(codes);
                return usage_error("%s needs an argument: -e CODE", "-e");
            }
            codes[ncodes++] = argv[++i];
        } else if (strcmp(argv[i], "-i") == 0) {
            interactive = 1;
            rest = i + 1;
            break;
        } else {
            free(codes);
            return usage_error("unexpected argument %s after -e CODE", argv[i]);
        }
    }
    sgdsa_state *S = open_state();
    int rc = S ? EXIT_OK : EXIT_ERR;
    for (int i = 0; S && i < ncodes && rc == EXIT_OK; i++) {
        sgdsa_clear_interrupt(S);
        sgdsa_catch_signals(S, SGDSA_SIGNALS_STOP);
        if (sgdsa_dostring(S, codes[i], "=(command line)") != 0)
            rc = report(S);
        sgdsa_catch_signals(S, SGDSA_SIGNALS_DEFAULT);
    }
    if (S && interactive) {
        if (rest < argc)
            rc = run_script(S, argv[rest], argc - rest - 1, argv + rest + 1);
        if (rc != EXIT_USAGE)
            rc = repl(S);
    }
    sgdsa_close(S);
    free(codes);
    return rc;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/*
 * Settings that libraries read when they are loaded, before main(): when one
 * needs setting, we set it and re-execute ourselves once (the new image sees
 * them set, so it does not loop). A value the user set always wins.
 *
 * OpenMP's default barrier wait spins for a long time (libgomp: 300,000
 * iterations). When the cores are shared with other work, a spinning thread
 * keeps its peer off the core and every parallel region waits a whole time
 * slice: measured here, an mlp training step ran 4.5x slower next to two busy
 * loops (606 vs 2,747 img/s), while a short spin costs nothing on an idle
 * machine. So GOMP_SPINCOUNT=10000 unless OMP_WAIT_POLICY or GOMP_SPINCOUNT
 * is set.
 *
 * OpenBLAS falls back to old kernels on a CPU newer than its release
 * (Debian 12's on new Xeons: SSE "Prescott" kernels, sgemm 6x slower than
 * SkylakeX): sgdsa_blas_core_setenv() sets OPENBLAS_CORETYPE to the core for
 * this CPU's ISA (cpuid, at run time) unless OPENBLAS_CORETYPE is set.
 */
static void exec_with_load_settings(char **argv)
{
    int again = 0;
    if (!getenv("OMP_WAIT_POLICY") && !getenv("GOMP_SPINCOUNT") &&
        setenv("GOMP_SPINCOUNT", "10000", 1) == 0)
        again = 1;
    if (sgdsa_blas_core_setenv() > 0)
        again = 1;
    if (again)
        execv("/proc/self/exe", argv);
    /* exec failed (no /proc): go on as we are (opening the state warns
     * about the BLAS core) */
}

int main(int argc, char **argv)
{
    exec_with_load_settings(argv);
    if (argc < 2)
        return cmd_repl(0, NULL);
    const char *a = argv[1];
    if (strcmp(a, "--version") == 0 || strcmp(a, "-v") == 0) {
        printf("sgdsa %s (%s)\n%s\n", sgdsa_version(), LUA_RELEASE, sgdsa_cpu_summary());
        return EXIT_OK;
    }
    if (is_help(a)) {
        print_main_help(stdout);
        return EXIT_OK;
    }
    if (strcmp(a, "help") == 0) {
        if (argc < 3) {
            print_main_help(stdout);
            return EXIT_OK;
        }
        const command *c = find_command(argv[2]);
        if (c == NULL)
            return usage_error("help: unknown command %s", argv[2]);
        if (c->usage != NULL) {
            fputs(c->usage, stdout);
            return EXIT_OK;
        }
        char *help[] = {"--help", NULL};
        return lua_command(c, 1, help);
    }
    if (strcmp(a, "-e") == 0)
        return cmd_exec(argc - 1, argv + 1);
    if (strcmp(a, "-i") == 0) {
        if (argc == 2)
            return cmd_repl(0, NULL);
        return cmd_run(argc - 2, argv + 2, 1);
    }
    if (strcmp(a, "run") == 0)
        return cmd_run(argc - 2, argv + 2, 0);
    if (strcmp(a, "repl") == 0)
        return cmd_repl(argc - 2, argv + 2);
    if (strcmp(a, "env") == 0)
        return cmd_env(argc - 2, argv + 2);
    if (strcmp(a, "resume") == 0)
        return cmd_resume(argc - 2, argv + 2);
    const command *c = find_command(a);
    if (c != NULL)
        return lua_command(c, argc - 2, argv + 2);
    if (a[0] == '-')
        return usage_error("unknown option %s", a);
    if (ends_with(a, ".lua"))
        return cmd_run(argc - 1, argv + 1, 0);
    return usage_error("unknown command %s", a);
}
