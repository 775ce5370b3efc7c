/*
 * fs.h - durable file replacement: the one writer of "write a temporary,
 * fsync it, rename it over the target" (HDF5 atomic writes, core.fsync_rename).
 */
#ifndef SG_FS_H
#define SG_FS_H

#include "api.h"

SG_API_BEGIN

/* Rename tmp to dst, then fsync dst's folder so that the rename itself is
 * durable (a folder that cannot be synced, EINVAL or EROFS, is not an
 * error). -1 with a message naming op, the paths and the system's reason;
 * errno is the failing call's. The caller has fsynced tmp's data. */
int sg_rename_durable(const char *tmp, const char *dst, const char *op);

SG_API_END

#endif
