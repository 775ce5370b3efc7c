/*
 * runtime.h - internals shared by lua/runtime.c (the embeddable API) and
 * lua/l_sys.c (system helpers and the interrupt flag). Not installed.
 *
 * The interrupt flag is process-wide, as signals are: a counter bumped by the
 * SIGINT/SIGTERM handler (or sgl_interrupt), and a Lua state that the handler
 * may abort by setting a hook, as the stock lua.c interpreter does.
 */
#ifndef SGL_RUNTIME_H
#define SGL_RUNTIME_H

#include <stddef.h>

#include <lua.h>

/* Install (mode 1 = stop, 2 = interrupt) or restore (0) the signal handlers;
 * restoring is a no-op when another Lua state owns them. */
int sgl_catch_signals(lua_State *L, int mode);
void sgl_interrupt(lua_State *L);          /* async-signal-safe */
int sgl_interrupted(void);
void sgl_clear_interrupt(lua_State *L);

/* Push the overrides table of `sgdsa run SCRIPT ARGS`: key=value arguments
 * as keys, the others as positional values, each typed (integer, float,
 * true/false, else string). */
void sgl_push_overrides(lua_State *L, int argc, const char *const *argv);

/* The directory holding lua/sgdsa, models/ and experiments/ (see sgdsa.h). */
const char *sgl_root(char *buf, size_t n);

#endif
