/*
 * enospc.c - an LD_PRELOAD library that fills the disk under a program, for
 * the full-disk tests (tests/lua/test_full_disk.lua): writes to regular files
 * under one folder are counted, and the Nth of them is where the disk fills.
 *
 *   SGDSA_ENOSPC_DIR=DIR   count writes to regular files under DIR only
 *                          (default: every regular file)
 *   SGDSA_ENOSPC_AT=N      the Nth counted write stores half of its bytes
 *                          (a short write, as on a disk that fills during
 *                          it) and every later one fails with ENOSPC; unset
 *                          or 0: nothing fails
 *   SGDSA_ENOSPC_LOG=FILE  append "<n> <bytes> <path>" for each counted write
 *
 * It wraps write, pwrite, pwrite64, writev and pwritev as the program calls
 * them through the dynamic linker (libhdf5's and sgdsa's file writes; not
 * stdio's, which glibc makes internally).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static char g_dir[PATH_MAX];
static long g_at;
static long g_count;
static int g_ready;

static void setup(void)
{
    if (g_ready)
        return;
    const char *d = getenv("SGDSA_ENOSPC_DIR");
    if (d && *d && !realpath(d, g_dir))
        snprintf(g_dir, sizeof g_dir, "%s", d);
    const char *at = getenv("SGDSA_ENOSPC_AT");
    g_at = at ? strtol(at, NULL, 10) : 0;
    g_ready = 1;
}

static void *real(const char *name)
{
    void *f = dlsym(RTLD_NEXT, name);
    if (!f)
        abort();   /* a test helper: no libc symbol means a broken setup */
    return f;
}

/* Is fd a regular file under the folder? Its path goes to path. */
static int counted(int fd, char *path, size_t n)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        return 0;
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t k = readlink(link, path, n - 1);
    if (k < 0)
        return 0;
    path[k] = '\0';
    size_t dl = strlen(g_dir);
    return dl == 0 || (strncmp(path, g_dir, dl) == 0 && (path[dl] == '/' || path[dl] == '\0'));
}

/* How many of len bytes this write may store; -1 (errno ENOSPC): none. */
static ssize_t allowance(int fd, size_t len)
{
    setup();
    char path[PATH_MAX];
    int saved = errno;
    if (!counted(fd, path, sizeof path)) {
        errno = saved;
        return (ssize_t)len;
    }
    long n = __atomic_add_fetch(&g_count, 1, __ATOMIC_SEQ_CST);
    const char *log = getenv("SGDSA_ENOSPC_LOG");
    if (log && *log) {
        FILE *f = fopen(log, "a");
        if (f) {
            fprintf(f, "%ld %zu %s\n", n, len, path);
            fclose(f);
        }
    }
    errno = saved;
    if (g_at <= 0 || n < g_at)
        return (ssize_t)len;
    if (n == g_at && len > 1)
        return (ssize_t)(len / 2);
    errno = ENOSPC;
    return -1;
}

ssize_t write(int fd, const void *buf, size_t len)
{
    static ssize_t (*f)(int, const void *, size_t);
    if (!f)
        f = (ssize_t (*)(int, const void *, size_t))real("write");
    ssize_t a = allowance(fd, len);
    return a < 0 ? -1 : f(fd, buf, (size_t)a);
}

/* pwrite and pwrite64 (the same type where off_t is 64 bits, as this shim
 * assumes): the real call `name` on what the allowance lets through. */
_Static_assert(sizeof(off_t) == sizeof(off64_t), "the shim assumes a 64-bit off_t");
typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off64_t);

static ssize_t positioned(const char *name, pwrite_fn *f, int fd, const void *buf, size_t len,
                          off64_t off)
{
    if (!*f)
        *f = (pwrite_fn)real(name);
    ssize_t a = allowance(fd, len);
    return a < 0 ? -1 : (*f)(fd, buf, (size_t)a, off);
}

ssize_t pwrite(int fd, const void *buf, size_t len, off_t off)
{
    static pwrite_fn f;
    return positioned("pwrite", &f, fd, buf, len, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t len, off64_t off)
{
    static pwrite_fn f;
    return positioned("pwrite64", &f, fd, buf, len, off);
}

/* The vector calls store all or nothing of what they were given. */
static size_t iov_bytes(const struct iovec *iov, int n)
{
    size_t s = 0;
    for (int i = 0; i < n; i++)
        s += iov[i].iov_len;
    return s;
}

ssize_t writev(int fd, const struct iovec *iov, int n)
{
    static ssize_t (*f)(int, const struct iovec *, int);
    if (!f)
        f = (ssize_t (*)(int, const struct iovec *, int))real("writev");
    size_t len = iov_bytes(iov, n);
    ssize_t a = allowance(fd, len);
    if (a >= 0 && (size_t)a < len) {
        errno = ENOSPC;
        return -1;
    }
    return a < 0 ? -1 : f(fd, iov, n);
}

ssize_t pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
    static ssize_t (*f)(int, const struct iovec *, int, off_t);
    if (!f)
        f = (ssize_t (*)(int, const struct iovec *, int, off_t))real("pwritev");
    size_t len = iov_bytes(iov, n);
    ssize_t a = allowance(fd, len);
    if (a >= 0 && (size_t)a < len) {
        errno = ENOSPC;
        return -1;
    }
    return a < 0 ? -1 : f(fd, iov, n, off);
}
