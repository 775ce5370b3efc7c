/*
 * embed.c - a host program that embeds the sgdsa runtime through the
 * installed header and library only (built by tests/sh/test_embed.sh with
 * `pkg-config --cflags --libs sgdsa`).
 *
 * usage: embed SCRIPT
 * Runs code and SCRIPT through the public API, checks results through the
 * Lua C API, and checks that a failing chunk reports file:line and a
 * traceback and leaves the state usable. Prints "EMBED OK" and exits 0 on
 * success; prints what failed and exits 1 otherwise.
 */
#include <stdio.h>
#include <string.h>

#include <lua.h>
#include <sgdsa.h>

#include "../c/check.h"

/* script run with two arguments through sgdsa_dofile, or (run) sgdsa_run:
 * it succeeds and leaves the global from_script equal to want. */
static void check_script(sgdsa_state *S, const char *script, int run, const char *const *args,
                         const char *want)
{
    const char *how = run ? "run" : "dofile";
    int rc = run ? sgdsa_run(S, script, 2, args) : sgdsa_dofile(S, script, 2, args);
    CHECK(rc == 0, "%s %s: %s", how, script, sgdsa_errmsg(S));
    lua_State *L = sgdsa_lua(S);
    lua_getglobal(L, "from_script");
    const char *got = lua_tostring(L, -1);
    CHECK(got && strcmp(got, want) == 0, "from_script after %s = %s", how, got ? got : "(nil)");
    lua_pop(L, 1);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: embed SCRIPT\n");
        return 2;
    }
    CHECK(strlen(sgdsa_version()) >= 5, "version '%s'", sgdsa_version());
    /* the CPU's kernels: three lines, the BLAS core among them */
    CHECK(strstr(sgdsa_cpu_summary(), "\nBLAS: ") && strstr(sgdsa_cpu_summary(), ", core "),
          "cpu summary '%s'", sgdsa_cpu_summary());

    sgdsa_state *S = sgdsa_open();
    if (S == NULL) {
        fprintf(stderr, "embed: sgdsa_open failed: %s\n", sgdsa_errmsg(NULL));
        return 1;
    }
    lua_State *L = sgdsa_lua(S);

    /* Tensors from a chunk, read back through the Lua C API. */
    int rc = sgdsa_dostring(S, "local t = sgdsa.ones(3, 4) * 2\nresult = t:sum()", "=host");
    CHECK(rc == 0, "dostring: %s", sgdsa_errmsg(S));
    lua_getglobal(L, "result");
    CHECK(lua_tonumber(L, -1) == 24.0, "sum of ones(3,4)*2 = %g, want 24", lua_tonumber(L, -1));
    lua_pop(L, 1);

    /* A script with arguments, as lua5.4 SCRIPT ARGS would run it; then the
     * same script with `sgdsa run` semantics: typed overrides. */
    const char *args[] = {"7", "seven"};
    check_script(S, argv[1], 0, args, "7:seven:6");
    const char *overrides[] = {"n=7", "tag=seven"};
    check_script(S, argv[1], 1, overrides, "n=7 tag=seven");

    /* Errors carry file:line and a traceback; the state stays usable. */
    rc = sgdsa_dostring(S, "local x = 1\nlocal y = nil + x", "@host.lua");
    CHECK(rc == -1, "an arithmetic error returned %d", rc);
    CHECK(strstr(sgdsa_errmsg(S), "host.lua:2:") != NULL, "no file:line in '%s'", sgdsa_errmsg(S));
    CHECK(strstr(sgdsa_errmsg(S), "stack traceback") != NULL, "no traceback in '%s'",
          sgdsa_errmsg(S));
    rc = sgdsa_dostring(S, "sgdsa.zeros(2, 3):add(sgdsa.zeros(3, 2))", "=host");
    CHECK(rc == -1 && strstr(sgdsa_errmsg(S), "2x3") != NULL, "shape error: '%s'", sgdsa_errmsg(S));
    rc = sgdsa_dostring(S, "local x = = 1", "=host");
    CHECK(rc == -1 && strstr(sgdsa_errmsg(S), "host:1:") != NULL, "syntax error: '%s'",
          sgdsa_errmsg(S));
    rc = sgdsa_dostring(S, "result = 5", NULL);
    CHECK(rc == 0 && sgdsa_errmsg(S)[0] == '\0', "state unusable after errors: '%s'", sgdsa_errmsg(S));

    /* The interrupt flag, as a signal handler would set it. */
    sgdsa_clear_interrupt(S);
    CHECK(sgdsa_interrupted() == 0, "interrupted() = %d after clear", sgdsa_interrupted());
    rc = sgdsa_catch_signals(S, SGDSA_SIGNALS_STOP);
    CHECK(rc == 0, "catch_signals: %s", sgdsa_errmsg(S));
    sgdsa_interrupt(S);
    rc = sgdsa_dostring(S, "assert(sgdsa.core.interrupted())", "=host");
    CHECK(rc == 0, "core.interrupted() after sgdsa_interrupt: %s", sgdsa_errmsg(S));
    sgdsa_interrupt(S); /* the second one aborts the next Lua code */
    rc = sgdsa_dostring(S, "for i = 1, 1e9 do end", "=host");
    CHECK(rc == -1 && strstr(sgdsa_errmsg(S), "interrupted") != NULL, "hard interrupt: rc %d '%s'",
          rc, sgdsa_errmsg(S));
    sgdsa_catch_signals(S, SGDSA_SIGNALS_DEFAULT);
    sgdsa_clear_interrupt(S);
    rc = sgdsa_dostring(S, "assert(not sgdsa.core.interrupted())", "=host");
    CHECK(rc == 0, "after clear_interrupt: %s", sgdsa_errmsg(S));

    sgdsa_close(S);
    return check_done(NULL, "EMBED OK");
}
