/*
 * error.h - how library code reports failure.
 *
 * Library code never exits or aborts. A function that can fail returns an
 * int status (0 = ok, -1 = error) or NULL, after recording a message with
 * sg_seterr(). The message names the operation, the shapes and the device,
 * e.g. "add: shapes 2x3 and 3x2 differ (cpu)". The message lives in a
 * thread-local buffer until the next sg_seterr() on that thread. How it
 * reaches the user: docs/ARCHITECTURE.md, Layers ("Errors").
 */
#ifndef SG_ERROR_H
#define SG_ERROR_H

#include <stdarg.h>
#include <stddef.h>

#include "api.h"

SG_API_BEGIN

#if defined(__GNUC__)
#define SG_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define SG_PRINTF(a, b)
#endif

/* Record an error message; always returns -1 so callers can `return sg_seterr(...)`. */
int sg_seterr(const char *fmt, ...) SG_PRINTF(1, 2);
int sg_vseterr(const char *fmt, va_list ap);
/* Prepend "prefix: " to the current message (adds context on the way up). */
int sg_adderr(const char *fmt, ...) SG_PRINTF(1, 2);
/* The last message recorded on this thread ("" if none). */
const char *sg_geterr(void);
void sg_clearerr(void);

/* Checked allocation: returns NULL and sets "out of memory: <what> (<n> bytes)". */
void *sg_malloc(size_t n, const char *what);
void *sg_calloc(size_t count, size_t size, const char *what);
void *sg_aligned_alloc(size_t n, const char *what); /* 64-byte aligned; free with free() */

SG_API_END

#endif
