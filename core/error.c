/* error.c - thread-local error messages and checked allocation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

#define SG_ERRLEN 1024
static _Thread_local char errbuf[SG_ERRLEN];

int sg_vseterr(const char *fmt, va_list ap)
{
    vsnprintf(errbuf, sizeof errbuf, fmt, ap);
    return -1;
}

int sg_seterr(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sg_vseterr(fmt, ap);
    va_end(ap);
    return -1;
}

int sg_adderr(const char *fmt, ...)
{
    char old[SG_ERRLEN];
    va_list ap;
    memcpy(old, errbuf, sizeof old);
    va_start(ap, fmt);
    int k = vsnprintf(errbuf, sizeof errbuf, fmt, ap);
    va_end(ap);
    if (k >= 0 && (size_t)k < sizeof errbuf) {
        size_t room = sizeof errbuf - (size_t)k;
        size_t len = strlen(old);
        if (room > 2) {
            memcpy(errbuf + k, ": ", 2);
            room -= 2;
            if (len >= room)
                len = room - 1;
            memcpy(errbuf + k + 2, old, len);
            errbuf[k + 2 + len] = '\0';
        }
    }
    return -1;
}

const char *sg_geterr(void) { return errbuf; }

void sg_clearerr(void) { errbuf[0] = '\0'; }

void *sg_malloc(size_t n, const char *what)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        sg_seterr("out of memory: %s (%zu bytes)", what, n);
    return p;
}

void *sg_calloc(size_t count, size_t size, const char *what)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        sg_seterr("out of memory: %s (%zu x %zu bytes)", what, count, size);
    return p;
}

void *sg_aligned_alloc(size_t n, const char *what)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 64) != 0) {
        sg_seterr("out of memory: %s (%zu bytes)", what, n);
        return NULL;
    }
    return p;
}
