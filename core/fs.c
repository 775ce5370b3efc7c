/* fs.c - durable file replacement (fs.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "fs.h"

/* fsync the folder holding path (so a rename in it is durable). */
static int fsync_dir_of(const char *path, const char *op)
{
    char *dir = sg_malloc(strlen(path) + 1, "directory path");
    if (!dir)
        return -1;
    strcpy(dir, path);
    char *slash = strrchr(dir, '/');
    const char *d = ".";
    if (slash == dir)
        d = "/";
    else if (slash) {
        *slash = '\0';
        d = dir;
    }
    int rc = 0;
    int fd = open(d, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        rc = sg_seterr("%s: cannot open folder '%s' to sync it: %s", op, d, strerror(errno));
    else if (fsync(fd) < 0 && errno != EINVAL && errno != EROFS)
        rc = sg_seterr("%s: fsync of folder '%s' failed: %s", op, d, strerror(errno));
    const int e = errno;
    if (fd >= 0)
        close(fd);
    free(dir);
    errno = e;
    return rc;
}

int sg_rename_durable(const char *tmp, const char *dst, const char *op)
{
    if (rename(tmp, dst) < 0) {
        const int e = errno;
        sg_seterr("%s: rename %s -> %s: %s", op, tmp, dst, strerror(e));
        errno = e;
        return -1;
    }
    return fsync_dir_of(dst, op);
}
