/*
 * h5.h - HDF5 files: tensors, arrays, text, attributes, append-only logs,
 * and atomic (crash-safe) file writes. No Lua here; lua/l_h5.c binds it.
 *
 * The file format sgdsa writes (run logs, checkpoints) is documented in
 * docs/FORMAT.md; SG_H5_FORMAT_VERSION is its version.
 *
 * Safety of loading (every read path):
 *   - a file opened for reading must start with the HDF5 signature and, unless
 *     SG_H5_LEGACY is given, use superblock version >= 2: every metadata block
 *     of such files carries a checksum, so corruption is detected by libhdf5
 *     instead of being parsed;
 *   - filter plugins are never loaded, external links are not followed,
 *     external raw-data files and virtual datasets are refused;
 *   - dtype class and size, rank (<= SG_MAXDIM), every dimension and the total
 *     size are checked before anything is allocated, and a dataset that declares
 *     far more bytes than the file stores is refused (see SG_H5_SPARSE_SLACK);
 *   - an expected shape/dtype, when given, is compared first; a mismatch names
 *     the dataset, the file and both shapes.
 * Writing: datasets up to SG_H5_COMPACT_MAX bytes are stored in the (check-
 * summed) object header; larger ones are chunked with a Fletcher-32 checksum
 * filter, so a flipped byte anywhere in a checkpoint is an error on load.
 *
 * Errors: -1 / NULL with sg_geterr() naming the operation, the file, the
 * dataset and the innermost libhdf5 diagnostic. Not thread-safe (libhdf5
 * serial build): use one thread for file I/O.
 */
#ifndef SG_H5_H
#define SG_H5_H

#include <stddef.h>
#include <stdint.h>

#include "tensor.h"

#include "api.h"

SG_API_BEGIN

/* Version of the sgdsa file layout (root attribute "format_version"). */
#define SG_H5_FORMAT_VERSION 1

/* Element types of datasets. Tensors use the first three. */
typedef enum {
    SG_H5_F32 = 0, SG_H5_U8 = 1, SG_H5_I32 = 2,   /* same values as sg_dtype */
    SG_H5_I64 = 3, SG_H5_U64 = 4, SG_H5_F64 = 5,
    SG_H5_TEXT = 6,                              /* a string (scalar dataset) */
    SG_H5_OTHER = 7                              /* anything else (unreadable) */
} sg_h5_type;

const char *sg_h5_type_name(sg_h5_type t);   /* "float32", ..., "text", "other" */
size_t sg_h5_type_size(sg_h5_type t);        /* bytes per element; 0 for text/other */
/* Parse "float32", "uint8", "int32", "int64", "uint64", "float64"; -1 if unknown. */
int sg_h5_type_parse(const char *name);

/* Limits. */
#define SG_H5_COMPACT_MAX 16384               /* bytes: compact layout up to this */
#define SG_H5_CHUNK_BYTES (1 << 20)           /* target chunk size for big datasets */
#define SG_H5_SPARSE_SLACK ((size_t)16 << 20) /* reads up to this many bytes need no backing */
#define SG_H5_MAX_TEXT ((size_t)64 << 20)     /* longest text dataset or attribute read */

/* --- files ----------------------------------------------------------------- */
typedef struct sg_h5file sg_h5file;

enum {
    SG_H5_LEGACY = 1   /* reading: accept superblock v0/v1 files (no checksums) */
};

/* mode: "r" read-only; "w" create or truncate; "a" read-write, created if
 * missing. A file open for writing is held in memory (libhdf5's core
 * driver: an "a" file is read whole at open) and written to `path` by
 * sg_h5_flush and sg_h5_close with sgdsa's own checked write()s; libhdf5
 * itself never writes, so a full disk or an I/O error is an error of the
 * flush or close that names the file and errno, never a failed H5Fclose
 * (after which libhdf5 1.10 crashes at exit). "w" creates or truncates
 * `path` at once. Use sg_h5_open_atomic for files that must survive a crash. */
sg_h5file *sg_h5_open(const char *path, const char *mode, int flags);
/* Crash-safe write: the file is built in memory (as above) and written to
 * "<path>.tmp.<pid>" (created at open); sg_h5_close writes it, fsyncs it,
 * renames it over `path` and fsyncs the directory, so `path` is always either
 * the old or the new complete file. keep != 0 starts from the existing
 * `path` (an atomic update; a missing file starts empty). sg_h5_discard drops
 * the temporary file instead. */
sg_h5file *sg_h5_open_atomic(const char *path, int keep);
/* Close (and commit an atomic file). Returns -1 if anything failed (e.g.
 * "h5 atomic write: writing 'x.h5.tmp.7' failed after 8108 of 16216 bytes:
 * No space left on device"); the handle is freed in every case, and a failed
 * atomic commit leaves `path` untouched and no temporary file. NULL is a
 * no-op. */
int sg_h5_close(sg_h5file *f);
/* Drop the changes: an atomic file's target stays as it was; a plain file
 * stays as it was last written (by its last flush, or empty after "w"). */
void sg_h5_discard(sg_h5file *f);
/* A plain file: written to `path` now (the file is closed and opened again
 * in memory; sgdsa keeps no HDF5 object open between calls). After a failed
 * flush every call on the handle is refused ("a flush of it failed") and
 * sg_h5_close returns -1. An atomic file: nothing reaches the disk before
 * its commit. */
int sg_h5_flush(sg_h5file *f);
const char *sg_h5_path(const sg_h5file *f);  /* the target path */
int sg_h5_writable(const sg_h5file *f);

/* Read everything in f as a check: every object header (so every metadata
 * checksum), every attribute, every dataset's data in full (through the
 * Fletcher-32 filter) and its crc32 attribute, with the storage checks of a
 * read. 0 if all is intact; -1 with a message naming the file, the object and
 * the failure (libhdf5's diagnostic appended) at the first that is not.
 *
 * A file whose metadata libhdf5 failed to load, in any call, is broken from
 * then on: every further call on it fails with that first failure (libhdf5
 * 1.10 would otherwise show what it could read of an object as the whole).
 * Only sg_h5_close and sg_h5_discard still work. */
int sg_h5_verify(sg_h5file *f);

/* --- objects --------------------------------------------------------------- */
typedef struct {
    int is_group;               /* 1: group; 0: dataset */
    sg_h5_type type;            /* datasets only */
    int ndim;                   /* datasets; -1 when the rank exceeds SG_MAXDIM */
    int64_t size[SG_MAXDIM];
    int64_t numel;
    int chunked;                /* 1 if chunked (e.g. a log column) */
    int64_t maxsize0;           /* max extent of dim 0; -1 = unlimited */
} sg_h5_info;

/* 1 if `name` exists (group or dataset), 0 if not, -1 on error. */
int sg_h5_exists(sg_h5file *f, const char *name);
int sg_h5_stat(sg_h5file *f, const char *name, sg_h5_info *info);
/* Visit the datasets under `group` ("" or "/" = root) recursively, in name
 * order, with names relative to the group ("layer1.0.conv1.weight",
 * "search/rng/shuffle"). Soft and external links are skipped. fn returns 0 to
 * continue, >0 to stop (sg_h5_list returns that value), <0 on error. */
typedef int (*sg_h5_visit_fn)(void *ud, const char *name, const sg_h5_info *info);
int sg_h5_list(sg_h5file *f, const char *group, sg_h5_visit_fn fn, void *ud);
/* Create a group (and its parents); existing groups are fine. */
int sg_h5_mkgroup(sg_h5file *f, const char *name);
/* Remove a link (dataset or group); absent is fine. */
int sg_h5_remove(sg_h5file *f, const char *name);

/* --- numeric arrays (any rank up to SG_MAXDIM, contiguous row-major) -------- */
/* Write (replacing any dataset of that name; parent groups are created). */
int sg_h5_write_array(sg_h5file *f, const char *name, sg_h5_type type, int ndim,
                      const int64_t *size, const void *data);
/* What a read expects. type SG_H5_OTHER = any numeric type; ndim -1 = any
 * shape; max_bytes 0 = no limit beyond the file's own backing. */
typedef struct {
    sg_h5_type type;
    int ndim;
    int64_t size[SG_MAXDIM];
    size_t max_bytes;
} sg_h5_expect;
#define SG_H5_EXPECT_ANY ((sg_h5_expect){ SG_H5_OTHER, -1, {0}, 0 })
/* Read a whole numeric dataset into a new malloc'd buffer (free() it);
 * *info (optional) receives its type and shape. */
void *sg_h5_read_array(sg_h5file *f, const char *name, const sg_h5_expect *exp,
                       sg_h5_info *info);
/* Read into caller memory; type and shape must match exactly. */
int sg_h5_read_array_into(sg_h5file *f, const char *name, sg_h5_type type, int ndim,
                          const int64_t *size, void *dst);

/* --- tensors (float32 / uint8 / int32; any device; any strides) ------------ */
int sg_h5_write_tensor(sg_h5file *f, const char *name, const sg_tensor *t);
/* New contiguous CPU tensor; exp may be NULL (anything tensor-typed). */
sg_tensor *sg_h5_read_tensor(sg_h5file *f, const char *name, const sg_h5_expect *exp);
/* Read into an existing tensor (e.g. a slice of a model's flat buffer):
 * dtype and shape must equal dst's; dst may live on any device. */
int sg_h5_read_tensor_into(sg_h5file *f, const char *name, sg_tensor *dst);

/* --- text (a scalar UTF-8 string dataset; for scripts and configs) ---------- */
int sg_h5_write_text(sg_h5file *f, const char *name, const char *s, size_t len);
/* malloc'd, NUL-terminated; *len (optional) = length. */
char *sg_h5_read_text(sg_h5file *f, const char *name, size_t *len);

/* --- attributes on an object (obj "" or "/" = the root group) --------------- */
int sg_h5_attr_set_text(sg_h5file *f, const char *obj, const char *name, const char *s);
int sg_h5_attr_set_i64(sg_h5file *f, const char *obj, const char *name, int64_t v);
int sg_h5_attr_set_f64(sg_h5file *f, const char *obj, const char *name, double v);
typedef enum { SG_H5_ATTR_TEXT = 1, SG_H5_ATTR_INT = 2, SG_H5_ATTR_FLOAT = 3 } sg_h5_attrkind;
typedef struct {
    sg_h5_attrkind kind;
    char *text;       /* SG_H5_ATTR_TEXT: malloc'd (sg_h5_attr_clear frees it) */
    int64_t i;        /* SG_H5_ATTR_INT */
    double d;         /* SG_H5_ATTR_FLOAT (and INT, converted) */
} sg_h5_attrval;
/* 1 found, 0 absent, -1 error (also for non-scalar or non-text/number attrs). */
int sg_h5_attr_get(sg_h5file *f, const char *obj, const char *name, sg_h5_attrval *v);
void sg_h5_attr_clear(sg_h5_attrval *v);
/* Visit attribute names of obj in name order; fn as in sg_h5_list. */
int sg_h5_attr_list(sg_h5file *f, const char *obj,
                    int (*fn)(void *ud, const char *name), void *ud);

/* --- append-only logs ---------------------------------------------------------
 * A log table is a group with one 1-d extendible column per field (float64 or
 * int64), chunked, shuffled+deflated and Fletcher-32 checksummed, plus an
 * attribute "columns" (field names joined by ","). Rows are buffered in memory
 * by sg_h5log_append and written by sg_h5log_write to whatever open file is
 * given (the run log reopens log.h5 atomically per flush; see FORMAT.md). */
typedef struct sg_h5log sg_h5log;
/* types may be NULL (all float64); each SG_H5_F64 or SG_H5_I64. */
sg_h5log *sg_h5log_new(const char *group, int ncols, const char *const *names,
                       const sg_h5_type *types);
void sg_h5log_free(sg_h5log *l);
int sg_h5log_ncols(const sg_h5log *l);
const char *sg_h5log_colname(const sg_h5log *l, int i);
sg_h5_type sg_h5log_coltype(const sg_h5log *l, int i);
int sg_h5log_col(const sg_h5log *l, const char *name);  /* index or -1 */
/* Buffer one row (ncols values; int64 columns take integral doubles). */
int sg_h5log_append(sg_h5log *l, const double *row);
int64_t sg_h5log_pending(const sg_h5log *l);
/* Append the pending rows to the log group in f (created if missing; an
 * existing group must have the same columns). Clears the buffer on success. */
int sg_h5log_write(sg_h5log *l, sg_h5file *f);
/* Rows stored in a log group (-1 on error, e.g. columns of unequal length). */
int64_t sg_h5log_rows(sg_h5file *f, const char *group);
/* Shrink every column of a log group to `rows` (resume drops rows logged
 * after the checkpoint). */
int sg_h5log_truncate(sg_h5file *f, const char *group, int64_t rows);

SG_API_END

#endif
