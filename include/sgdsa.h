/*
 * sgdsa.h - the public, embeddable C API of the sgdsa runtime.
 *
 * A host program embeds sgdsa the way it would embed Lua itself: open a
 * runtime state (a Lua 5.4 state with the standard libraries, the `sgdsa`
 * library loaded as the global `sgdsa`, and `require` able to find the
 * project's Lua modules, models/ and experiments/), run code or scripts in
 * it, close it. Every public symbol carries the `sgdsa_` prefix; everything
 * else in libsgdsa is internal.
 *
 *     sgdsa_state *S = sgdsa_open();
 *     if (!S) { fprintf(stderr, "%s\n", sgdsa_errmsg(NULL)); return 1; }
 *     if (sgdsa_dostring(S, "print(sgdsa.ones(2, 2))", "=host") != 0)
 *         fprintf(stderr, "%s\n", sgdsa_errmsg(S));
 *     sgdsa_close(S);
 *
 * Errors: functions returning int give 0 on success and -1 on error; the
 * message is then available from sgdsa_errmsg(S) until the next call on S.
 * An error raised on purpose (error(), assert(), a check of the sgdsa
 * binding: a mistake such as a bad argument or a missing file) is its
 * message, with the positions inside sgdsa's own Lua files removed (a
 * script's file:line stays); any other error (one the Lua VM raised: a bug)
 * carries a Lua traceback, as every error does when the environment variable
 * SGDSA_TRACEBACK is set to something other than "" or "0". A failed
 * sgdsa_open() leaves its message in sgdsa_errmsg(NULL). Library code never
 * exits or aborts (a script may still call os.exit).
 *
 * Module search path: the Lua modules are looked up under the directory in
 * the environment variable SGDSA_ROOT when set; otherwise next to the
 * installed library (<prefix>/share/sgdsa), then in the source tree the
 * library was built from, then in the configured install prefix. The
 * directory holds lua/sgdsa/ (the Lua library), models/ and experiments/.
 */
#ifndef SGDSA_H
#define SGDSA_H

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && defined(SGDSA_BUILDING)
#define SGDSA_API __declspec(dllexport)
#elif defined(_WIN32)
#define SGDSA_API __declspec(dllimport)
#elif defined(__GNUC__)
#define SGDSA_API __attribute__((visibility("default")))
#else
#define SGDSA_API
#endif

struct lua_State;
typedef struct sgdsa_state sgdsa_state;

/* "0.1.0": the version the library was built as. */
SGDSA_API const char *sgdsa_version(void);

/* Open a runtime state; NULL on failure (message in sgdsa_errmsg(NULL)). */
SGDSA_API sgdsa_state *sgdsa_open(void);
/* Close a state and free everything it holds (NULL is a no-op). */
SGDSA_API void sgdsa_close(sgdsa_state *S);
/* The underlying Lua state, for hosts that use the Lua C API directly. */
SGDSA_API struct lua_State *sgdsa_lua(sgdsa_state *S);
/* The last error message on S (or of the last failed sgdsa_open for NULL); "" if none. */
SGDSA_API const char *sgdsa_errmsg(const sgdsa_state *S);

/*
 * Call the function on top of S's Lua stack below its nargs arguments, as
 * lua_pcall does, with the message handler described under "Errors" above.
 * On error nothing is left on the stack and the message is in
 * sgdsa_errmsg(S).
 */
SGDSA_API int sgdsa_pcall(sgdsa_state *S, int nargs, int nresults);
/* Run a chunk of Lua code; chunkname as in lua_load ("=name" or "@file"), NULL = "=sgdsa". */
SGDSA_API int sgdsa_dostring(sgdsa_state *S, const char *code, const char *chunkname);
/*
 * Run a script file as the stock `lua5.4 SCRIPT ARGS...` does: the global
 * `arg` holds arg[0] = path and arg[1..argc] = argv, and the script receives
 * the argument strings as `...`.
 */
SGDSA_API int sgdsa_dofile(sgdsa_state *S, const char *path, int argc, const char *const *argv);
/*
 * Run a script as `sgdsa run PATH ARGS...` does. Each argument "key=value"
 * becomes a typed override (integers, floats, true/false, otherwise a
 * string); other arguments are positional (typed the same way) at 1, 2, ...
 * The overrides table is the global `sgdsa.args` and the script's `...`; the
 * raw strings are in `arg`. If the script returns a table (an experiment) and
 * the module `sgdsa.trainer` exists, `require("sgdsa.trainer").run(tbl,
 * overrides)` trains it. Returns 0 on success, -1 on error, or the exit
 * status the trainer returned when that is a nonzero integer.
 */
SGDSA_API int sgdsa_run(sgdsa_state *S, const char *path, int argc, const char *const *argv);

/*
 * Signals. sgdsa_catch_signals installs SIGINT/SIGTERM handlers for S:
 *   SGDSA_SIGNALS_STOP      the first signal sets the interrupt flag, which
 *                           Lua code polls with sgdsa.core.interrupted() to
 *                           stop cleanly; a second one aborts the running Lua
 *                           code with the error "interrupted";
 *   SGDSA_SIGNALS_INTERRUPT every SIGINT sets the flag and aborts the running
 *                           Lua code at once (the REPL's Ctrl-C); SIGTERM
 *                           keeps its previous handler;
 *   SGDSA_SIGNALS_DEFAULT   restores the handlers that were there before.
 * sgdsa_interrupt(S) does what a signal does (async-signal-safe);
 * sgdsa_interrupted() returns how many interrupts arrived since the last
 * sgdsa_clear_interrupt(S), which also cancels a pending abort.
 */
enum { SGDSA_SIGNALS_DEFAULT = 0, SGDSA_SIGNALS_STOP = 1, SGDSA_SIGNALS_INTERRUPT = 2 };
SGDSA_API int sgdsa_catch_signals(sgdsa_state *S, int mode);
SGDSA_API void sgdsa_interrupt(sgdsa_state *S);
SGDSA_API int sgdsa_interrupted(void);
SGDSA_API void sgdsa_clear_interrupt(sgdsa_state *S);

/*
 * The CPU's kernels. OpenBLAS picks its kernels (its "core") when it is
 * loaded; a release older than the CPU falls back to an old core (Debian
 * 12's OpenBLAS runs its SSE "Prescott" kernels on new Xeons: matrix
 * products several times slower) and reads OPENBLAS_CORETYPE only at load.
 * sgdsa_blas_core_setenv() sets OPENBLAS_CORETYPE (and a note that sgdsa set
 * it) to the core for this CPU when that happened and the environment names
 * no core, for a program about to execute itself or another that loads
 * sgdsa (the sgdsa executable does so); it returns 1 when it set it, 0 when
 * nothing needed setting (a value the user set is kept), -1 on failure.
 * Without it, opening a state warns once on stderr, naming the fix.
 * sgdsa_cpu_summary() describes the CPU, the BLAS core in use and who chose
 * it, and oneDNN's instruction set, in three lines (a static buffer).
 */
SGDSA_API int sgdsa_blas_core_setenv(void);
SGDSA_API const char *sgdsa_cpu_summary(void);

#ifdef __cplusplus
}
#endif

#endif
