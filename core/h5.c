/*
 * h5.c - HDF5 I/O for sgdsa: checked reads, checksummed writes, atomic files
 * and append-only log tables. See h5.h for the contract and docs/FORMAT.md
 * for the layout of the files sgdsa writes.
 *
 * Every libhdf5 failure is turned into an sg_seterr message naming the
 * operation, the file and the object, followed by libhdf5's innermost
 * diagnostic (e.g. "incorrect metadata checksum after all read attempts").
 * libhdf5's own printing of error stacks is switched off once, at first use.
 *
 * A file whose metadata libhdf5 failed to load (a bad checksum, an
 * undecodable object header) is "broken" from then on: libhdf5 1.10 keeps the
 * part of an object header it could read in its cache, and later calls see
 * that part as the whole (an object with fewer links or attributes, and no
 * error). So every call on a broken handle fails with the first failure's
 * message; only close and discard still work.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <H5PLpublic.h>
#include <hdf5.h>
#include <zlib.h>

#include "error.h"
#include "fs.h"
#include "h5.h"

/* The memory of a file open for writing (see make_write_fapl). */
struct sg_h5image {
    unsigned char *buf;   /* libhdf5's core driver's buffer */
    size_t size;          /* its bytes */
    int owned;            /* the file closed and gave the buffer to the handle */
};

struct sg_h5file {
    hid_t fid;
    char *path;     /* target path */
    char *tmp;      /* atomic: the temporary file being written; else NULL */
    int fd;         /* writable: the file the image is written to (tmp or path); else -1 */
    struct sg_h5image img;
    int writable;
    int strict;     /* refuse unchecksummed structures (see dense_refused) */
    char *broken;   /* the failure that broke the file's metadata, or NULL */
};

struct sg_h5log {
    char *group;
    int ncols;
    char **names;
    sg_h5_type *types;
    double *buf;     /* pending rows, row-major */
    int64_t nbuf, cap;
};

/* ------------------------------------------------------------------------- */
/* library state and errors                                                  */

static int g_init;
static int h5_fail(const char *fmt, ...) SG_PRINTF(1, 2);
static hid_t g_lapl = H5I_INVALID_HID;   /* link access: no external links */
static hid_t g_dapl = H5I_INVALID_HID;   /* dataset access: same */
/* Creation: links and attributes always stay *compact* (in the checksummed
 * object header, never in a fractal heap): libhdf5 1.10.8's dense-storage
 * iteration frees uninitialised pointers on some corrupt inputs, so files
 * sgdsa writes never use it. */
static hid_t g_fcpl = H5I_INVALID_HID;
static hid_t g_gcpl = H5I_INVALID_HID;

static herr_t deny_elink(const char *parent_file, const char *parent_group,
                         const char *child_file, const char *child_object,
                         unsigned *acc_flags, hid_t fapl_id, void *op_data)
{
    return -1;   /* sgdsa never follows external links (files stay self-contained) */
}

static int h5_init(void)
{
    if (g_init)
        return 0;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    /* A file must not make us dlopen() filter plugins. */
    H5PLset_loading_state(0);
    g_lapl = H5Pcreate(H5P_LINK_ACCESS);
    g_dapl = H5Pcreate(H5P_DATASET_ACCESS);
    g_fcpl = H5Pcreate(H5P_FILE_CREATE);
    g_gcpl = H5Pcreate(H5P_GROUP_CREATE);
    if (g_fcpl < 0 || g_gcpl < 0 || H5Pset_link_phase_change(g_fcpl, 65535, 65535) < 0 ||
        H5Pset_link_phase_change(g_gcpl, 65535, 65535) < 0 ||
        H5Pset_attr_phase_change(g_fcpl, 65535, 65535) < 0 ||
        H5Pset_attr_phase_change(g_gcpl, 65535, 65535) < 0)
        return h5_fail("h5: cannot initialise libhdf5 creation property lists (cpu)");
    if (g_lapl < 0 || g_dapl < 0 || H5Pset_elink_cb(g_lapl, deny_elink, NULL) < 0 ||
        H5Pset_elink_cb(g_dapl, deny_elink, NULL) < 0 || H5Pset_nlinks(g_lapl, 8) < 0 ||
        H5Pset_nlinks(g_dapl, 8) < 0)
        return sg_seterr("h5: cannot initialise libhdf5 property lists (cpu)");
    g_init = 1;
    return 0;
}

/* The file the current public call works on (set by usable()): the one a
 * metadata failure breaks. */
static sg_h5file *g_cur;

struct walk {
    char detail[256];   /* the innermost diagnostic */
    int metadata;       /* some metadata could not be loaded */
};

static herr_t walk_cb(unsigned n, const H5E_error2_t *e, void *ud)
{
    struct walk *w = ud;
    if (!e)
        return 0;
    if (n == 0 && e->desc)
        snprintf(w->detail, sizeof w->detail, "%s", e->desc);
    if (e->maj_num == H5E_CACHE || e->min_num == H5E_CANTLOAD || e->min_num == H5E_CANTPROTECT ||
        e->min_num == H5E_CANTDECODE)
        w->metadata = 1;
    return 0;
}

/* Record "<message>: <libhdf5 innermost diagnostic>" and clear the stack; a
 * failure to load metadata breaks the file being worked on (see the top). */
static int h5_fail(const char *fmt, ...) SG_PRINTF(1, 2);
static int h5_fail(const char *fmt, ...)
{
    char msg[768];
    struct walk w = { "", 0 };
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_cb, &w);
    H5Eclear2(H5E_DEFAULT);
    if (w.detail[0])
        sg_seterr("%s (libhdf5: %s)", msg, w.detail);
    else
        sg_seterr("%s", msg);
    if (w.metadata && g_cur && !g_cur->broken) {
        const char *e = sg_geterr();
        size_t n = strlen(e) + 1;
        g_cur->broken = malloc(n);
        if (g_cur->broken)
            memcpy(g_cur->broken, e, n);
    }
    return -1;
}

static char *dupstr(const char *s, const char *what)
{
    size_t n = strlen(s);
    char *p = sg_malloc(n + 1, what);
    if (p)
        memcpy(p, s, n + 1);
    return p;
}

static const char *fname(const sg_h5file *f) { return f ? f->path : "?"; }

/* CRC-32 (zlib) of a buffer of any size. Chunked and long contiguous data
 * carry it as the int64 attribute "crc32": Fletcher-32, the HDF5 chunk
 * filter, cannot tell a 0x0000 word from 0xffff (ones' complement), so it
 * misses e.g. the high words of small int64 values overwritten with 0xff. */
static uint32_t crc_of(uint32_t crc, const void *p, size_t n)
{
    const unsigned char *b = p;
    while (n > 0) {
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        crc = (uint32_t)crc32(crc, b, k);
        b += k;
        n -= k;
    }
    return crc;
}

/* Close whichever of a dataspace, a datatype and an attribute are open
 * (>= 0). */
static void close_attr(hid_t sid, hid_t tid, hid_t aid)
{
    if (sid >= 0)
        H5Sclose(sid);
    if (tid >= 0)
        H5Tclose(tid);
    if (aid >= 0)
        H5Aclose(aid);
}

static int crc_set(hid_t did, uint32_t crc)
{
    int64_t v = crc;
    htri_t ex = H5Aexists(did, "crc32");
    if (ex < 0 || (ex > 0 && H5Adelete(did, "crc32") < 0))
        return -1;
    hid_t sid = H5Screate(H5S_SCALAR);
    hid_t aid = sid >= 0 ? H5Acreate2(did, "crc32", H5T_STD_I64LE, sid, H5P_DEFAULT, H5P_DEFAULT) : -1;
    int rc = (aid < 0 || H5Awrite(aid, H5T_NATIVE_INT64, &v) < 0) ? -1 : 0;
    close_attr(sid, -1, aid);
    return rc;
}

/* 1: *crc read; 0: no crc32 attribute; -1: error. */
static int crc_get(hid_t did, uint32_t *crc)
{
    htri_t ex = H5Aexists(did, "crc32");
    if (ex <= 0)
        return ex < 0 ? -1 : 0;
    hid_t aid = H5Aopen(did, "crc32", H5P_DEFAULT);
    int64_t v = -1;
    int rc = (aid < 0 || H5Aread(aid, H5T_NATIVE_INT64, &v) < 0) ? -1 : 1;
    if (aid >= 0)
        H5Aclose(aid);
    if (rc == 1 && (v < 0 || v > 0xffffffffll))
        rc = -1;
    *crc = (uint32_t)v;
    return rc;
}

/* Verify data just read from did against its crc32 attribute, if any. */
static int crc_check(hid_t did, const void *buf, size_t n, const sg_h5file *f, const char *name,
                     const char *op)
{
    uint32_t want;
    int have = crc_get(did, &want);
    if (have < 0)
        return h5_fail("%s '%s' in '%s': cannot read its crc32 attribute", op, name, fname(f));
    if (have == 0)
        return 0;
    uint32_t got = crc_of(0, buf, n);
    if (got != want)
        return sg_seterr("%s '%s' in '%s': data checksum mismatch (crc32 stored %08x, computed "
                         "%08x): the file is corrupt", op, name, fname(f), (unsigned)want, (unsigned)got);
    return 0;
}

static void shape_str(int ndim, const int64_t *size, char *buf, size_t n)
{
    if (ndim == 0) {
        snprintf(buf, n, "scalar");
        return;
    }
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < ndim && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, i ? "x%lld" : "%lld", (long long)size[i]);
}

/* ------------------------------------------------------------------------- */
/* types                                                                     */

static const char *const type_names[] = {
    "float32", "uint8", "int32", "int64", "uint64", "float64", "text", "other"
};

const char *sg_h5_type_name(sg_h5_type t)
{
    return (t >= 0 && t <= SG_H5_OTHER) ? type_names[t] : "other";
}

size_t sg_h5_type_size(sg_h5_type t)
{
    switch (t) {
    case SG_H5_F32: case SG_H5_I32: return 4;
    case SG_H5_U8: return 1;
    case SG_H5_I64: case SG_H5_U64: case SG_H5_F64: return 8;
    default: return 0;
    }
}

int sg_h5_type_parse(const char *name)
{
    for (int t = 0; t < SG_H5_TEXT; t++)
        if (strcmp(name, type_names[t]) == 0)
            return t;
    return -1;
}

static hid_t mem_type(sg_h5_type t)
{
    switch (t) {
    case SG_H5_F32: return H5T_NATIVE_FLOAT;
    case SG_H5_U8: return H5T_NATIVE_UINT8;
    case SG_H5_I32: return H5T_NATIVE_INT32;
    case SG_H5_I64: return H5T_NATIVE_INT64;
    case SG_H5_U64: return H5T_NATIVE_UINT64;
    case SG_H5_F64: return H5T_NATIVE_DOUBLE;
    default: return H5I_INVALID_HID;
    }
}

static hid_t file_type(sg_h5_type t)
{
    switch (t) {
    case SG_H5_F32: return H5T_IEEE_F32LE;
    case SG_H5_U8: return H5T_STD_U8LE;
    case SG_H5_I32: return H5T_STD_I32LE;
    case SG_H5_I64: return H5T_STD_I64LE;
    case SG_H5_U64: return H5T_STD_U64LE;
    case SG_H5_F64: return H5T_IEEE_F64LE;
    default: return H5I_INVALID_HID;
    }
}

static sg_h5_type classify(hid_t tid)
{
    H5T_class_t c = H5Tget_class(tid);
    size_t sz = H5Tget_size(tid);
    size_t prec = H5Tget_precision(tid);
    if (c == H5T_FLOAT) {
        if (sz == 4 && prec == 32)
            return SG_H5_F32;
        if (sz == 8 && prec == 64)
            return SG_H5_F64;
        return SG_H5_OTHER;
    }
    if (c == H5T_INTEGER) {
        H5T_sign_t s = H5Tget_sign(tid);
        if (prec != sz * 8)
            return SG_H5_OTHER;
        if (sz == 1 && s == H5T_SGN_NONE)
            return SG_H5_U8;
        if (sz == 4 && s == H5T_SGN_2)
            return SG_H5_I32;
        if (sz == 8 && s == H5T_SGN_2)
            return SG_H5_I64;
        if (sz == 8 && s == H5T_SGN_NONE)
            return SG_H5_U64;
        return SG_H5_OTHER;
    }
    if (c == H5T_STRING)
        return SG_H5_TEXT;
    return SG_H5_OTHER;
}

/* ------------------------------------------------------------------------- */
/* names                                                                     */

/* A name: non-empty, < 1024 bytes, components non-empty and not "." / "..". */
static int check_name(const char *op, const sg_h5file *f, const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= 1024)
        return sg_seterr("%s: invalid name of %zu bytes in '%s' (1..1023 bytes)", op, n, fname(f));
    const char *p = name[0] == '/' ? name + 1 : name;
    if (*p == '\0')
        return sg_seterr("%s: name '/' is the root group, not a dataset (file '%s')", op, fname(f));
    while (*p) {
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == 0 || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
            return sg_seterr("%s: invalid name '%s' in '%s' (empty, '.' or '..' component)",
                             op, name, fname(f));
        if (!e)
            break;
        p = e + 1;
        if (*p == '\0')
            return sg_seterr("%s: invalid name '%s' in '%s' (trailing '/')", op, name, fname(f));
    }
    return 0;
}

static const char *objname(const char *obj) { return (obj == NULL || obj[0] == '\0') ? "/" : obj; }

/* "the root group '/'" or "'name'" (relative to the root), for messages. */
static void objdesc(const char *path, char *buf, size_t n)
{
    if (strcmp(objname(path), "/") == 0)
        snprintf(buf, n, "the root group '/'");
    else
        snprintf(buf, n, "'%s'", path[0] == '/' ? path + 1 : path);
}

/* Load the object header of `name` (at loc) through H5Oget_info: 1 if it
 * loads, else 0 with the error set (and the file broken). The first load of
 * a header decides what libhdf5 caches: H5Oget_info fails when a chunk of it
 * is damaged, while some other calls (H5Gget_info, H5Lexists through the
 * group) succeed on the chunks that did load and hide the rest for good. So
 * every group is loaded this way before anything else looks into it. */
static int header_ok(sg_h5file *f, hid_t loc, const char *name, const char *op)
{
    H5O_info_t oi;
    if (H5Oget_info_by_name2(loc, name, &oi, H5O_INFO_BASIC, g_lapl) < 0) {
        char d[1100];
        objdesc(name, d, sizeof d);
        h5_fail("%s: cannot read the object header of %s in '%s'", op, d, fname(f));
        return 0;
    }
    return 1;
}

/* Before anything looks into a group: its object header is loaded
 * (header_ok), and in strict files it must keep the group's links in that
 * (checksummed) header: "dense" storage puts them in a fractal heap whose
 * blocks carry no checksum by default, and libhdf5 1.10.8 frees garbage
 * pointers when such a block is corrupt. sgdsa never writes dense groups;
 * h5py does for > 8 links. */
static int dense_refused(sg_h5file *f, hid_t loc, const char *group, const char *op)
{
    if (f->fid < 0)
        return sg_seterr("%s: '%s' is unusable: a flush of it failed (close it)", op, fname(f));
    if (!header_ok(f, loc, group, op))
        return -1;
    if (!f->strict)
        return 0;
    H5G_info_t gi;
    if (H5Gget_info_by_name(loc, group, &gi, g_lapl) < 0)
        return h5_fail("%s: cannot inspect group '%s' in '%s'", op, group, fname(f));
    if (gi.storage_type == H5G_STORAGE_TYPE_DENSE)
        return sg_seterr("%s: group '%s' in '%s' keeps its %llu links in dense storage (no "
                         "checksums); open the file with the legacy flag (Lua: {legacy=true}) if "
                         "you trust it", op, group, fname(f), (unsigned long long)gi.nlinks);
    return 0;
}

/* 1 / 0 / -1: does the link `name` resolve (every prefix exists)? */
static int link_exists(sg_h5file *f, const char *name, const char *op)
{
    if (f->fid < 0)
        return sg_seterr("%s: '%s' is unusable: a flush of it failed (close it)", op, fname(f));
    char buf[1024];
    size_t n = strlen(name);
    if (n >= sizeof buf)
        return sg_seterr("%s: name too long in '%s'", op, fname(f));
    memcpy(buf, name, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            /* the group we look into: "/" or the prefix before this component */
            char *last = NULL;
            for (size_t j = 1; j < i; j++)
                if (buf[j] == '/')
                    last = buf + j;
            char save = 0;
            if (last) {
                save = *last;
                *last = '\0';
            }
            int bad = dense_refused(f, f->fid, last ? buf : "/", op);
            if (last)
                *last = save;
            if (bad < 0)
                return -1;
            buf[i] = '\0';
            htri_t e = H5Lexists(f->fid, buf, g_lapl);
            if (e < 0)
                return h5_fail("%s: cannot look up '%s' in '%s'", op, buf, fname(f));
            if (e == 0)
                return 0;
            if (c != '\0') {   /* intermediate component must be a group */
                H5O_info_t oi;
                if (H5Oget_info_by_name2(f->fid, buf, &oi, H5O_INFO_BASIC, g_lapl) < 0)
                    return h5_fail("%s: cannot inspect '%s' in '%s'", op, buf, fname(f));
                if (oi.type != H5O_TYPE_GROUP)
                    return 0;
            }
            buf[i] = c;
        }
    }
    return 1;
}

/* ------------------------------------------------------------------------- */
/* files                                                                     */

/* Before libhdf5 parses a file: signature at offset 0, supported superblock. */
static int precheck(const char *path, int flags, const char *op)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sg_seterr("%s: cannot open '%s' for reading: %s", op, path, strerror(errno));
    struct stat st;
    unsigned char hdr[9];
    ssize_t got = -1;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
        got = pread(fd, hdr, sizeof hdr, 0);
    int err = errno;
    close(fd);
    if (!S_ISREG(st.st_mode))
        return sg_seterr("%s: '%s' is not a regular file", op, path);
    if (got < 0)
        return sg_seterr("%s: cannot read '%s': %s", op, path, strerror(err));
    static const unsigned char sig[8] = { 0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n' };
    if (got < 9 || memcmp(hdr, sig, 8) != 0)
        return sg_seterr("%s: '%s' is not an HDF5 file (no HDF5 signature at offset 0; "
                         "%lld bytes)", op, path, (long long)st.st_size);
    int ver = hdr[8];
    if (ver > 3)
        return sg_seterr("%s: '%s' has HDF5 superblock version %d (libhdf5 1.10 reads 0..3)",
                         op, path, ver);
    if (ver < 2 && !(flags & SG_H5_LEGACY))
        return sg_seterr("%s: '%s' uses the legacy HDF5 format (superblock version %d, no "
                         "metadata checksums); open it with the legacy flag "
                         "(Lua: {legacy=true}) if you trust it, or rewrite it with "
                         "h5py.File(..., libver='latest')", op, path, ver);
    return 0;
}

static hid_t make_fapl(void)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0)
        return fapl;
    if (H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST) < 0 ||
        H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0 ||
        H5Pset_file_locking(fapl, 1, 1) < 0) {
        H5Pclose(fapl);
        return H5I_INVALID_HID;
    }
    return fapl;
}

/* Files open for writing live in memory. libhdf5's core driver holds the
 * whole file in one buffer (no backing store), so libhdf5 never writes to
 * disk: no full disk or I/O error can make H5Dwrite, H5Fflush or H5Fclose
 * fail. (libhdf5 1.10 keeps a file whose H5Fclose failed half-destroyed in
 * its ID table and crashes at exit closing it again.) sgdsa writes the image
 * itself, with checked write()s, on sg_h5_flush and sg_h5_close. The image
 * callbacks below let the handle own the buffer the driver hands back when
 * the file closes: the bytes of the closed file, written out without a copy. */
static void *img_malloc(size_t size, H5FD_file_image_op_t op, void *ud)
{
    struct sg_h5image *im = ud;
    void *p = malloc(size ? size : 1);
    if (p && op == H5FD_FILE_IMAGE_OP_FILE_OPEN) {
        im->buf = p;
        im->size = size;
    }
    return p;
}

static void *img_memcpy(void *dst, const void *src, size_t size, H5FD_file_image_op_t op, void *ud)
{
    return memcpy(dst, src, size);
}

static void *img_realloc(void *ptr, size_t size, H5FD_file_image_op_t op, void *ud)
{
    struct sg_h5image *im = ud;
    void *p = realloc(ptr, size ? size : 1);
    if (p && (ptr == NULL || ptr == im->buf)) {
        im->buf = p;
        im->size = size;
    }
    return p;
}

static herr_t img_free(void *ptr, H5FD_file_image_op_t op, void *ud)
{
    struct sg_h5image *im = ud;
    if (op == H5FD_FILE_IMAGE_OP_FILE_CLOSE && ptr != NULL && ptr == im->buf) {
        im->owned = 1;    /* the closed file's bytes: sg_h5_close writes them */
        return 0;
    }
    if (ptr == im->buf)
        im->buf = NULL;
    free(ptr);
    return 0;
}

static void *img_udata_copy(void *ud) { return ud; }
static herr_t img_udata_free(void *ud) { return 0; }

/* File access for a file held in memory, its image tracked in *im. No HDF5
 * file locking: the file on disk is never written through libhdf5. */
static hid_t make_write_fapl(struct sg_h5image *im)
{
    hid_t fapl = make_fapl();
    if (fapl < 0)
        return fapl;
    H5FD_file_image_callbacks_t cb = { img_malloc, img_memcpy, img_realloc, img_free,
                                       img_udata_copy, img_udata_free, im };
    if (H5Pset_file_locking(fapl, 0, 1) < 0 || H5Pset_fapl_core(fapl, (size_t)1 << 20, 0) < 0 ||
        H5Pset_file_image_callbacks(fapl, &cb) < 0) {
        H5Pclose(fapl);
        return H5I_INVALID_HID;
    }
    return fapl;
}

static uint64_t le_uint(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;)
        v = (v << 8) | p[i];
    return v;
}

/* The length of the HDF5 file in a closed file's image: the "end of file
 * address" in its superblock (HDF5 file format specification, the superblock,
 * versions 0-3), the image beyond it being the driver's unused allocation.
 * -1 if the image does not start with a superblock that says so. */
static int64_t image_length(const unsigned char *b, size_t n)
{
    static const unsigned char sig[8] = { 0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n' };
    if (n < 16 || memcmp(b, sig, 8) != 0)
        return -1;
    size_t osize, base_at;
    switch (b[8]) {
    case 0: osize = b[13]; base_at = 24; break;
    case 1: osize = b[13]; base_at = 28; break;
    case 2: case 3: osize = b[9]; base_at = 12; break;
    default: return -1;
    }
    if (osize != 2 && osize != 4 && osize != 8)
        return -1;
    size_t eoa_at = base_at + 2 * osize;
    if (n < eoa_at + osize)
        return -1;
    uint64_t base = le_uint(b + base_at, osize), eoa = le_uint(b + eoa_at, osize);
    if (base != 0 || eoa > n || eoa < eoa_at + osize)
        return -1;
    return (int64_t)eoa;
}

/* Write n bytes of an image over the file open at f->fd (from offset 0,
 * cutting whatever followed). */
static int write_image(sg_h5file *f, const unsigned char *b, size_t n, const char *op)
{
    const char *target = f->tmp ? f->tmp : f->path;
    size_t done = 0;
    while (done < n) {
        size_t k = n - done > ((size_t)1 << 30) ? ((size_t)1 << 30) : n - done;
        ssize_t w = pwrite(f->fd, b + done, k, (off_t)done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return sg_seterr("%s: writing '%s' failed after %zu of %zu bytes: %s", op, target,
                             done, n, strerror(errno));
        done += (size_t)w;
    }
    if (ftruncate(f->fd, (off_t)n) < 0)
        return sg_seterr("%s: setting the size of '%s' to %zu bytes failed: %s", op, target, n,
                         strerror(errno));
    return 0;
}

static sg_h5file *new_handle(const char *path)
{
    sg_h5file *f = sg_calloc(1, sizeof *f, "h5 file handle");
    if (!f)
        return NULL;
    f->fid = H5I_INVALID_HID;
    f->fd = -1;
    f->path = dupstr(path, "h5 file path");
    if (!f->path) {
        free(f);
        return NULL;
    }
    return f;
}

/* Close what the handle holds on disk and free it. The image buffer is freed
 * only once the driver has given it up (a failed H5Fclose may still own it). */
static void free_handle(sg_h5file *f)
{
    if (g_cur == f)
        g_cur = NULL;
    if (f->fd >= 0)
        close(f->fd);
    if (f->img.owned)
        free(f->img.buf);
    free(f->path);
    free(f->tmp);
    free(f->broken);
    free(f);
}

/* Open (mode "w", "a") or create the in-memory file of handle f, whose image
 * goes to `out` (created or truncated now when `truncate`, so a folder that
 * cannot take it is an error at once). `src`: the existing file the image
 * starts from, or NULL for an empty one. */
static int open_in_memory(sg_h5file *f, const char *src, const char *out, int truncate,
                          const char *op)
{
    f->fd = open(out, O_WRONLY | O_CLOEXEC | (truncate ? O_CREAT | O_TRUNC : 0), 0666);
    if (f->fd < 0)
        return sg_seterr("%s: cannot %s '%s': %s", op, truncate ? "create" : "open for writing",
                         out, strerror(errno));
    hid_t fapl = make_write_fapl(&f->img);
    if (fapl < 0)
        return h5_fail("%s: cannot make a file access property list for '%s'", op, out);
    f->fid = src ? H5Fopen(src, H5F_ACC_RDWR, fapl) : H5Fcreate(out, H5F_ACC_TRUNC, g_fcpl, fapl);
    H5Pclose(fapl);
    if (f->fid < 0)
        return h5_fail("%s: cannot %s '%s'", op, src ? "open" : "create", src ? src : out);
    f->writable = 1;
    return 0;
}

/* Start of a public call on f: f becomes the file a metadata failure breaks;
 * a broken file refuses the call. */
static int usable(sg_h5file *f, const char *op)
{
    g_cur = f;
    if (f->broken)
        return sg_seterr("%s: '%s' is damaged and no longer read: %s", op, f->path, f->broken);
    return 0;
}

sg_h5file *sg_h5_open(const char *path, const char *mode, int flags)
{
    g_cur = NULL;
    if (h5_init() < 0)
        return NULL;
    if (!mode || (strcmp(mode, "r") && strcmp(mode, "w") && strcmp(mode, "a"))) {
        sg_seterr("h5 open: mode '%s' for '%s' (use \"r\", \"w\" or \"a\")", mode ? mode : "(null)", path);
        return NULL;
    }
    int exists = access(path, F_OK) == 0;
    if (mode[0] == 'r' || (mode[0] == 'a' && exists))
        if (precheck(path, flags, "h5 open") < 0)
            return NULL;
    sg_h5file *f = new_handle(path);
    if (!f)
        return NULL;
    f->strict = !(flags & SG_H5_LEGACY);
    if (mode[0] != 'r') {
        int update = mode[0] == 'a' && exists;
        if (open_in_memory(f, update ? path : NULL, path, !update, "h5 open") < 0 ||
            (update && !header_ok(f, f->fid, "/", "h5 open"))) {
            sg_h5_discard(f);
            return NULL;
        }
        return f;
    }
    hid_t fapl = make_fapl();
    if (fapl < 0) {
        h5_fail("h5 open: cannot make a file access property list for '%s'", path);
        free_handle(f);
        return NULL;
    }
    f->fid = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    if (f->fid < 0) {
        h5_fail("h5 open: cannot open '%s' (mode \"r\")", path);
        free_handle(f);
        return NULL;
    }
    if (!header_ok(f, f->fid, "/", "h5 open")) {
        H5Fclose(f->fid);
        H5Eclear2(H5E_DEFAULT);
        free_handle(f);
        return NULL;
    }
    return f;
}

sg_h5file *sg_h5_open_atomic(const char *path, int keep)
{
    g_cur = NULL;
    if (h5_init() < 0)
        return NULL;
    int exists = access(path, F_OK) == 0;
    if (keep && exists && precheck(path, 0, "h5 atomic update") < 0)
        return NULL;
    sg_h5file *f = new_handle(path);
    if (!f)
        return NULL;
    f->strict = 1;
    size_t n = strlen(path) + 32;
    f->tmp = sg_malloc(n, "h5 temporary path");
    if (!f->tmp) {
        free_handle(f);
        return NULL;
    }
    snprintf(f->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    if (open_in_memory(f, keep && exists ? path : NULL, f->tmp, 1, "h5 atomic write") < 0) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", sg_geterr());
        sg_h5_discard(f);
        sg_seterr("%s (for '%s')", msg, path);
        return NULL;
    }
    if (keep && exists && !header_ok(f, f->fid, "/", "h5 atomic update")) {
        sg_h5_discard(f);
        return NULL;
    }
    return f;
}

/* Close the in-memory file f->fid and write the closed file's bytes to f->fd. */
static int write_closed(sg_h5file *f, const char *op)
{
    const char *target = f->tmp ? f->tmp : f->path;
    herr_t e = H5Fclose(f->fid);
    f->fid = H5I_INVALID_HID;
    if (e < 0)
        return h5_fail("%s: closing '%s' failed", op, target);
    int64_t len = f->img.owned ? image_length(f->img.buf, f->img.size) : -1;
    if (len < 0)
        return sg_seterr("%s: the image of '%s' has no valid HDF5 superblock (%zu bytes)", op,
                         target, f->img.owned ? f->img.size : (size_t)0);
    int rc = write_image(f, f->img.buf, (size_t)len, op);
    free(f->img.buf);
    memset(&f->img, 0, sizeof f->img);
    return rc;
}

int sg_h5_close(sg_h5file *f)
{
    if (!f)
        return 0;
    g_cur = NULL;
    const char *op = f->tmp ? "h5 atomic write" : "h5 close";
    const char *target = f->tmp ? f->tmp : f->path;
    int rc = 0;
    if (f->fid >= 0 && f->writable)
        rc = write_closed(f, op);
    else if (f->fid >= 0 && H5Fclose(f->fid) < 0)
        rc = h5_fail("%s: closing '%s' failed", op, target);
    else if (f->fid < 0 && f->writable)
        rc = sg_seterr("%s: '%s' was not written: a flush of it failed", op, target);
    f->fid = H5I_INVALID_HID;
    if (f->fd >= 0) {
        if (rc == 0 && f->tmp && fsync(f->fd) < 0)
            rc = sg_seterr("%s: fsync '%s' failed: %s", op, target, strerror(errno));
        if (close(f->fd) < 0 && rc == 0)
            rc = sg_seterr("%s: closing '%s' failed: %s", op, target, strerror(errno));
        f->fd = -1;
    }
    if (f->tmp) {
        if (rc == 0)
            rc = sg_rename_durable(f->tmp, f->path, op);
        if (rc != 0)
            unlink(f->tmp);
    }
    free_handle(f);
    return rc;
}

void sg_h5_discard(sg_h5file *f)
{
    if (!f)
        return;
    if (f->fid >= 0)
        H5Fclose(f->fid);
    H5Eclear2(H5E_DEFAULT);
    if (f->tmp) {
        if (f->fd >= 0) {
            close(f->fd);
            f->fd = -1;
        }
        unlink(f->tmp);
    }
    free_handle(f);
}

int sg_h5_flush(sg_h5file *f)
{
    if (usable(f, "h5 flush") < 0)
        return -1;
    if (!f->writable)
        return 0;
    if (f->fid < 0)
        return sg_seterr("h5 flush: '%s' was not written: an earlier flush of it failed", f->path);
    if (f->tmp) {   /* an atomic file reaches the disk only when committed */
        if (H5Fflush(f->fid, H5F_SCOPE_LOCAL) < 0)
            return h5_fail("h5 flush: '%s' failed", f->tmp);
        return 0;
    }
    /* A plain file: closed, written and opened again, so that the file on
     * disk is a closed file (libhdf5 1.10.8's H5Fget_file_image leaves a
     * stale superblock checksum). sgdsa keeps no object open between calls,
     * so nothing else sees the new file id. */
    if (write_closed(f, "h5 flush") < 0)
        return -1;
    hid_t fapl = make_write_fapl(&f->img);
    if (fapl < 0)
        return h5_fail("h5 flush: cannot make a file access property list for '%s'", f->path);
    f->fid = H5Fopen(f->path, H5F_ACC_RDWR, fapl);
    H5Pclose(fapl);
    if (f->fid < 0)
        return h5_fail("h5 flush: cannot open '%s' again after writing it", f->path);
    return 0;
}

const char *sg_h5_path(const sg_h5file *f) { return f->path; }
int sg_h5_writable(const sg_h5file *f) { return f->writable; }

static int need_writable(sg_h5file *f, const char *op, const char *name)
{
    if (usable(f, op) < 0)
        return -1;
    if (!f->writable)
        return sg_seterr("%s '%s': file '%s' is open read-only", op, name, f->path);
    if (f->fid < 0)
        return sg_seterr("%s '%s': file '%s' was not written: a flush of it failed (close it)", op,
                         name, f->path);
    return 0;
}

/* ------------------------------------------------------------------------- */
/* objects                                                                   */

/* Fill info from an open dataset. */
static int describe(hid_t did, sg_h5_info *info, const sg_h5file *f, const char *name, const char *op)
{
    memset(info, 0, sizeof *info);
    info->maxsize0 = -1;
    hid_t tid = H5Dget_type(did);
    if (tid < 0)
        return h5_fail("%s: cannot read the datatype of '%s' in '%s'", op, name, fname(f));
    info->type = classify(tid);
    H5Tclose(tid);
    hid_t sid = H5Dget_space(did);
    if (sid < 0)
        return h5_fail("%s: cannot read the dataspace of '%s' in '%s'", op, name, fname(f));
    H5S_class_t sc = H5Sget_simple_extent_type(sid);
    int rc = 0;
    if (sc == H5S_SCALAR) {
        info->ndim = 0;
        info->numel = 1;
    } else if (sc == H5S_SIMPLE) {
        int nd = H5Sget_simple_extent_ndims(sid);
        hsize_t dims[H5S_MAX_RANK], maxd[H5S_MAX_RANK];
        if (nd < 0 || nd > H5S_MAX_RANK || H5Sget_simple_extent_dims(sid, dims, maxd) < 0) {
            rc = h5_fail("%s: cannot read the shape of '%s' in '%s'", op, name, fname(f));
        } else if (nd > SG_MAXDIM) {
            info->ndim = -1;
            info->numel = -1;
        } else {
            info->ndim = nd;
            int64_t numel = 1;
            for (int i = 0; i < nd; i++) {
                if (dims[i] > (hsize_t)SG_MAX_NUMEL) {
                    numel = -1;
                    info->size[i] = -1;
                    continue;
                }
                info->size[i] = (int64_t)dims[i];
                if (numel >= 0 && dims[i] > 0 && numel > SG_MAX_NUMEL / (int64_t)dims[i])
                    numel = -1;
                else if (numel >= 0)
                    numel *= (int64_t)dims[i];
            }
            info->numel = numel;
            if (nd >= 1)
                info->maxsize0 = maxd[0] == H5S_UNLIMITED ? -1 : (int64_t)(maxd[0] > (hsize_t)INT64_MAX ? INT64_MAX : maxd[0]);
        }
    } else {
        info->ndim = 0;      /* H5S_NULL: an empty dataspace */
        info->numel = 0;
        info->type = SG_H5_OTHER;
    }
    H5Sclose(sid);
    hid_t dcpl = H5Dget_create_plist(did);
    if (dcpl >= 0) {
        info->chunked = H5Pget_layout(dcpl) == H5D_CHUNKED;
        H5Pclose(dcpl);
    }
    return rc;
}

/* Open a dataset by name, with a clear message if it is absent or a group. */
static hid_t open_ds(sg_h5file *f, const char *name, const char *op)
{
    if (check_name(op, f, name) < 0)
        return H5I_INVALID_HID;
    int e = link_exists(f, name, op);
    if (e < 0)
        return H5I_INVALID_HID;
    if (e == 0) {
        sg_seterr("%s: no dataset '%s' in '%s'", op, name, fname(f));
        return H5I_INVALID_HID;
    }
    H5O_info_t oi;
    if (H5Oget_info_by_name2(f->fid, name, &oi, H5O_INFO_BASIC, g_lapl) < 0) {
        h5_fail("%s: cannot inspect '%s' in '%s'", op, name, fname(f));
        return H5I_INVALID_HID;
    }
    if (oi.type != H5O_TYPE_DATASET) {
        sg_seterr("%s: '%s' in '%s' is a %s, not a dataset", op, name, fname(f),
                  oi.type == H5O_TYPE_GROUP ? "group" : "named datatype");
        return H5I_INVALID_HID;
    }
    hid_t did = H5Dopen2(f->fid, name, g_dapl);
    if (did < 0)
        h5_fail("%s: cannot open dataset '%s' in '%s'", op, name, fname(f));
    return did;
}

int sg_h5_exists(sg_h5file *f, const char *name)
{
    if (usable(f, "h5 exists") < 0)
        return -1;
    if (name[0] == '\0' || strcmp(name, "/") == 0)
        return 1;
    if (check_name("h5 exists", f, name) < 0)
        return -1;
    return link_exists(f, name, "h5 exists");
}

int sg_h5_stat(sg_h5file *f, const char *name, sg_h5_info *info)
{
    const char *op = "h5 stat";
    memset(info, 0, sizeof *info);
    if (usable(f, op) < 0)
        return -1;
    if (name[0] == '\0' || strcmp(name, "/") == 0) {
        info->is_group = 1;
        return 0;
    }
    if (check_name(op, f, name) < 0)
        return -1;
    int e = link_exists(f, name, op);
    if (e <= 0)
        return e < 0 ? -1 : sg_seterr("%s: no object '%s' in '%s'", op, name, fname(f));
    H5O_info_t oi;
    if (H5Oget_info_by_name2(f->fid, name, &oi, H5O_INFO_BASIC, g_lapl) < 0)
        return h5_fail("%s: cannot inspect '%s' in '%s'", op, name, fname(f));
    if (oi.type == H5O_TYPE_GROUP) {
        info->is_group = 1;
        return 0;
    }
    hid_t did = open_ds(f, name, op);
    if (did < 0)
        return -1;
    int rc = describe(did, info, f, name, op);
    H5Dclose(did);
    return rc;
}

struct list_ctx {
    sg_h5file *f;
    sg_h5_visit_fn fn;
    void *ud;
    int failed;
};

/* Deeper than any file sgdsa writes (runs nest 2 levels): H5Lvisit recurses
 * into a group after its link's callback, so refusing here bounds the
 * recursion on a corrupt file whose groups nest without end. */
#define SG_H5_MAX_DEPTH 32

static herr_t list_cb(hid_t g, const char *name, const H5L_info_t *li, void *ud)
{
    struct list_ctx *c = ud;
    if (li->type != H5L_TYPE_HARD)
        return 0;
    int depth = 0;
    for (const char *p = name; *p; p++)
        depth += *p == '/';
    if (depth >= SG_H5_MAX_DEPTH) {
        sg_seterr("h5 list: '%s' in '%s' nests more than %d groups deep (a corrupt file?)",
                  name, fname(c->f), SG_H5_MAX_DEPTH);
        c->failed = 1;
        return -1;
    }
    H5O_info_t oi;
    if (H5Oget_info_by_name2(g, name, &oi, H5O_INFO_BASIC, g_lapl) < 0) {
        h5_fail("h5 list: cannot inspect '%s' in '%s'", name, fname(c->f));
        c->failed = 1;
        return -1;
    }
    if (oi.type == H5O_TYPE_GROUP && dense_refused(c->f, g, name, "h5 list") < 0) {
        c->failed = 1;
        return -1;
    }
    if (oi.type != H5O_TYPE_DATASET)
        return 0;
    hid_t did = H5Dopen2(g, name, g_dapl);
    if (did < 0) {
        h5_fail("h5 list: cannot open dataset '%s' in '%s'", name, fname(c->f));
        c->failed = 1;
        return -1;
    }
    sg_h5_info info;
    int rc = describe(did, &info, c->f, name, "h5 list");
    H5Dclose(did);
    if (rc < 0) {
        c->failed = 1;
        return -1;
    }
    rc = c->fn(c->ud, name, &info);
    if (rc < 0)
        c->failed = 1;
    return rc;
}

int sg_h5_list(sg_h5file *f, const char *group, sg_h5_visit_fn fn, void *ud)
{
    const char *op = "h5 list";
    const char *g = objname(group);
    if (usable(f, op) < 0)
        return -1;
    if (strcmp(g, "/") != 0) {
        sg_h5_info info;
        if (sg_h5_stat(f, g, &info) < 0)
            return sg_adderr("%s", op);
        if (!info.is_group)
            return sg_seterr("%s: '%s' in '%s' is a dataset, not a group", op, g, fname(f));
    }
    if (dense_refused(f, f->fid, g, op) < 0)
        return -1;
    struct list_ctx c = { f, fn, ud, 0 };
    herr_t rc = H5Lvisit_by_name(f->fid, g, H5_INDEX_NAME, H5_ITER_INC, list_cb, &c, g_lapl);
    if (c.failed)
        return -1;
    if (rc < 0)
        return h5_fail("%s: cannot walk group '%s' in '%s'", op, g, fname(f));
    return (int)rc;
}

int sg_h5_mkgroup(sg_h5file *f, const char *name)
{
    const char *op = "h5 mkgroup";
    if (need_writable(f, op, name) < 0 || check_name(op, f, name) < 0)
        return -1;
    int e = link_exists(f, name, op);
    if (e < 0)
        return -1;
    if (e == 1) {
        H5O_info_t oi;
        if (H5Oget_info_by_name2(f->fid, name, &oi, H5O_INFO_BASIC, g_lapl) < 0)
            return h5_fail("%s: cannot inspect '%s' in '%s'", op, name, fname(f));
        if (oi.type != H5O_TYPE_GROUP)
            return sg_seterr("%s: '%s' in '%s' exists and is not a group", op, name, fname(f));
        return 0;
    }
    /* Create each missing level with the compact-storage gcpl. */
    char buf[1024];
    size_t n = strlen(name);
    memcpy(buf, name, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char c = buf[i];
        buf[i] = '\0';
        htri_t ex = H5Lexists(f->fid, buf, g_lapl);
        if (ex < 0)
            return h5_fail("%s: cannot look up '%s' in '%s'", op, buf, fname(f));
        if (ex == 0) {
            hid_t gid = H5Gcreate2(f->fid, buf, H5P_DEFAULT, g_gcpl, H5P_DEFAULT);
            if (gid < 0)
                return h5_fail("%s: cannot create group '%s' in '%s'", op, buf, fname(f));
            H5Gclose(gid);
        }
        buf[i] = c;
    }
    return 0;
}

/* Create the parent groups of `name` (compact storage). */
static int mkparents(sg_h5file *f, const char *name, const char *op)
{
    const char *slash = strrchr(name, '/');
    if (!slash || slash == name)
        return 0;
    char buf[1024];
    size_t n = (size_t)(slash - name);
    memcpy(buf, name, n);
    buf[n] = '\0';
    if (sg_h5_mkgroup(f, buf) < 0)
        return sg_adderr("%s '%s'", op, name);
    return 0;
}

int sg_h5_remove(sg_h5file *f, const char *name)
{
    const char *op = "h5 remove";
    if (need_writable(f, op, name) < 0 || check_name(op, f, name) < 0)
        return -1;
    int e = link_exists(f, name, op);
    if (e <= 0)
        return e;
    if (H5Ldelete(f->fid, name, g_lapl) < 0)
        return h5_fail("%s: cannot delete '%s' in '%s'", op, name, fname(f));
    return 0;
}

/* ------------------------------------------------------------------------- */
/* writing                                                                   */

/* Storage for a new dataset: compact (in the checksummed object header) when
 * small, else chunked (~1 MiB chunks) with Fletcher-32, optionally deflated. */
static hid_t make_dcpl(int ndim, const int64_t *size, size_t esize, size_t bytes, int deflate)
{
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (dcpl < 0)
        return dcpl;
    if (bytes <= SG_H5_COMPACT_MAX || ndim == 0) {
        if (H5Pset_layout(dcpl, H5D_COMPACT) < 0)
            goto fail;
        return dcpl;
    }
    hsize_t chunk[SG_MAXDIM];
    size_t cb = esize;
    for (int i = 0; i < ndim; i++) {
        chunk[i] = (hsize_t)size[i];
        cb *= (size_t)size[i];
    }
    for (int i = 0; i < ndim && cb > SG_H5_CHUNK_BYTES; i++) {
        while (cb > SG_H5_CHUNK_BYTES && chunk[i] > 1) {
            hsize_t half = (chunk[i] + 1) / 2;
            cb = cb / (size_t)chunk[i] * (size_t)half;
            chunk[i] = half;
        }
    }
    if (H5Pset_chunk(dcpl, ndim, chunk) < 0)
        goto fail;
    if (deflate > 0 && (H5Pset_shuffle(dcpl) < 0 || H5Pset_deflate(dcpl, (unsigned)deflate) < 0))
        goto fail;
    if (H5Pset_fletcher32(dcpl) < 0)
        goto fail;
    return dcpl;
fail:
    H5Pclose(dcpl);
    return H5I_INVALID_HID;
}

static int check_shape(const char *op, const sg_h5file *f, const char *name, int ndim, const int64_t *size,
                       size_t esize, size_t *bytes)
{
    if (ndim < 0 || ndim > SG_MAXDIM)
        return sg_seterr("%s '%s' in '%s': rank %d (0..%d allowed)", op, name, fname(f), ndim, SG_MAXDIM);
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (size[i] < 0 || size[i] > SG_MAX_NUMEL || (size[i] > 0 && numel > SG_MAX_NUMEL / size[i])) {
            char s[160];
            shape_str(ndim, size, s, sizeof s);
            return sg_seterr("%s '%s' in '%s': invalid shape %s", op, name, fname(f), s);
        }
        numel *= size[i];
    }
    *bytes = (size_t)numel * esize;
    return 0;
}

/* Create dataset `name` of file type ftype (with its parent groups) in the
 * caller's space sid and storage dcpl, which are closed here (either invalid:
 * their set-up failed, reported here), and write `bytes` bytes of data of
 * memory type mtype to it (nothing when data is NULL); with crc, also the
 * crc32 attribute of those bytes. */
static int create_ds(sg_h5file *f, const char *name, hid_t ftype, hid_t mtype, hid_t sid,
                     hid_t dcpl, const void *data, size_t bytes, int crc, const char *op)
{
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    hid_t did = H5I_INVALID_HID;
    int rc = 0;
    if (ftype < 0 || sid < 0 || dcpl < 0 || lcpl < 0 || H5Pset_create_intermediate_group(lcpl, 1) < 0) {
        rc = h5_fail("%s '%s' in '%s': cannot set up the dataset", op, name, fname(f));
        goto done;
    }
    did = H5Dcreate2(f->fid, name, ftype, sid, lcpl, dcpl, H5P_DEFAULT);
    if (did < 0) {
        rc = h5_fail("%s '%s' in '%s': cannot create the dataset", op, name, fname(f));
        goto done;
    }
    if (data && H5Dwrite(did, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        rc = h5_fail("%s '%s' in '%s': writing %zu bytes failed", op, name, fname(f), bytes);
    else if (crc && crc_set(did, crc_of(0, data, bytes)) < 0)
        rc = h5_fail("%s '%s' in '%s': writing its crc32 attribute failed", op, name, fname(f));
done:
    if (did >= 0)
        H5Dclose(did);
    if (dcpl >= 0)
        H5Pclose(dcpl);
    close_attr(sid, -1, -1);
    if (lcpl >= 0)
        H5Pclose(lcpl);
    return rc;
}

/* Create (replacing) dataset `name` of the given type/space and write data. */
static int write_ds(sg_h5file *f, const char *name, hid_t ftype, hid_t mtype, int ndim,
                    const int64_t *size, size_t esize, const void *data, const char *op)
{
    size_t bytes = 0;
    if (need_writable(f, op, name) < 0 || check_name(op, f, name) < 0 ||
        check_shape(op, f, name, ndim, size, esize, &bytes) < 0)
        return -1;
    if (sg_h5_remove(f, name) < 0 || mkparents(f, name, op) < 0)
        return sg_adderr("%s '%s'", op, name);
    hsize_t dims[SG_MAXDIM];
    for (int i = 0; i < ndim; i++)
        dims[i] = (hsize_t)size[i];
    hid_t sid = ndim == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(ndim, dims, NULL);
    hid_t dcpl = make_dcpl(ndim, size, esize, bytes, 0);
    /* chunked storage (larger than compact) has Fletcher-32 checksums per
     * chunk; the crc32 attribute covers the whole */
    return create_ds(f, name, ftype, mtype, sid, dcpl, bytes > 0 ? data : NULL, bytes,
                     bytes > SG_H5_COMPACT_MAX && ndim > 0, op);
}

int sg_h5_write_array(sg_h5file *f, const char *name, sg_h5_type type, int ndim,
                      const int64_t *size, const void *data)
{
    if (type < 0 || type >= SG_H5_TEXT)
        return sg_seterr("h5 write '%s' in '%s': type %d is not numeric", name, fname(f), (int)type);
    return write_ds(f, name, file_type(type), mem_type(type), ndim, size, sg_h5_type_size(type),
                    data, "h5 write");
}

int sg_h5_write_tensor(sg_h5file *f, const char *name, const sg_tensor *t)
{
    if (sg_tensor_check(t, "h5 write") < 0)
        return -1;
    if (t->dtype != SG_F32 && t->dtype != SG_U8 && t->dtype != SG_I32)
        return sg_seterr("h5 write '%s' in '%s': tensor dtype %d unsupported", name, fname(f), (int)t->dtype);
    if (t->storage->device == SG_CPU && sg_tensor_is_contiguous(t))
        return sg_h5_write_array(f, name, (sg_h5_type)t->dtype, t->ndim, t->size, sg_tensor_data(t));
    sg_tensor *c = sg_tensor_new(t->dtype, SG_CPU, t->ndim, t->size);
    if (!c)
        return sg_adderr("h5 write '%s'", name);
    int rc = sg_copy(c, t);
    if (rc == 0)
        rc = sg_h5_write_array(f, name, (sg_h5_type)t->dtype, t->ndim, t->size, sg_tensor_data(c));
    else
        sg_adderr("h5 write '%s' (copy to cpu from %s)", name, sg_device_name(t->storage->device));
    sg_tensor_release(c);
    return rc;
}

static hid_t text_type(size_t len)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0)
        return t;
    if (H5Tset_size(t, len ? len : 1) < 0 || H5Tset_strpad(t, H5T_STR_NULLPAD) < 0 ||
        H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
        H5Tclose(t);
        return H5I_INVALID_HID;
    }
    return t;
}

int sg_h5_write_text(sg_h5file *f, const char *name, const char *s, size_t len)
{
    const char *op = "h5 write_text";
    if (need_writable(f, op, name) < 0 || check_name(op, f, name) < 0)
        return -1;
    if (len > SG_H5_MAX_TEXT)
        return sg_seterr("%s '%s' in '%s': %zu bytes (at most %zu)", op, name, fname(f), len, SG_H5_MAX_TEXT);
    if (sg_h5_remove(f, name) < 0 || mkparents(f, name, op) < 0)
        return sg_adderr("%s '%s'", op, name);
    char *buf = sg_calloc(len ? len : 1, 1, "h5 text buffer");
    if (!buf)
        return -1;
    memcpy(buf, s, len);
    hid_t tid = text_type(len);
    hid_t sid = H5Screate(H5S_SCALAR);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    /* Texts that fit live in the checksummed object header (compact); longer
     * ones are contiguous, with no checksum: a crc32 attribute. */
    if (dcpl >= 0 && len <= 60000 && H5Pset_layout(dcpl, H5D_COMPACT) < 0) {
        H5Pclose(dcpl);
        dcpl = H5I_INVALID_HID;
    }
    int rc = create_ds(f, name, tid, tid, sid, dcpl, buf, len, len > 60000, op);
    if (tid >= 0)
        H5Tclose(tid);
    free(buf);
    return rc;
}

/* ------------------------------------------------------------------------- */
/* reading                                                                   */

typedef struct {
    hid_t did;
    sg_h5_info info;
    size_t bytes;
} rd_t;

/* The storage of dataset did (`bytes` bytes of data when read; ndim, size and
 * tname for the message): no external raw data, no virtual dataset, known
 * filters only, and no more bytes declared than the file can back. */
static int check_storage(sg_h5file *f, hid_t did, const char *name, int ndim, const int64_t *size,
                         const char *tname, size_t bytes, const char *op)
{
    hid_t dcpl = H5Dget_create_plist(did);
    if (dcpl < 0)
        return h5_fail("%s '%s' in '%s': cannot read the storage properties", op, name, fname(f));
    H5D_layout_t lay = H5Pget_layout(dcpl);
    int next = H5Pget_external_count(dcpl);
    int nfilt = H5Pget_nfilters(dcpl);
    int deflated = 0, badfilter = -1;
    for (int i = 0; i < nfilt; i++) {
        unsigned fl, cd[8];
        size_t ncd = 8;
        char fn[64];
        H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &fl, &ncd, cd, sizeof fn, fn, NULL);
        if (id == H5Z_FILTER_DEFLATE)
            deflated = 1;
        else if (id != H5Z_FILTER_SHUFFLE && id != H5Z_FILTER_FLETCHER32)
            badfilter = (int)id;
    }
    H5Pclose(dcpl);
    if (lay < 0 || next < 0 || nfilt < 0)
        return h5_fail("%s '%s' in '%s': cannot read the storage properties", op, name, fname(f));
    if (lay == H5D_VIRTUAL || next > 0)
        return sg_seterr("%s '%s' in '%s': data stored outside the file (%s) is refused", op, name,
                         fname(f), lay == H5D_VIRTUAL ? "virtual dataset" : "external raw-data files");
    if (badfilter >= 0)
        return sg_seterr("%s '%s' in '%s': uses HDF5 filter %d (sgdsa reads deflate, shuffle and "
                         "fletcher32 only)", op, name, fname(f), badfilter);
    /* A corrupt or hostile header can declare terabytes backed by nothing. */
    if (bytes > SG_H5_SPARSE_SLACK) {
        hsize_t fsize = 0;
        hsize_t stored = H5Dget_storage_size(did);
        H5Fget_filesize(f->fid, &fsize);
        H5Eclear2(H5E_DEFAULT);
        double backing = (double)stored * (deflated ? 1100.0 : 1.0);
        if (stored > fsize || (double)bytes > backing) {
            char s1[160];
            if (ndim >= 0)
                shape_str(ndim, size, s1, sizeof s1);
            else
                snprintf(s1, sizeof s1, "rank > %d", SG_MAXDIM);
            return sg_seterr("%s '%s' in '%s': declares %s %s (%zu bytes) but the file stores %llu "
                             "bytes for it (file size %llu): corrupt or sparse dataset refused", op,
                             name, fname(f), s1, tname, bytes, (unsigned long long)stored,
                             (unsigned long long)fsize);
        }
    }
    return 0;
}

/* Open `name` and check everything before a byte is allocated. */
static int rd_open(sg_h5file *f, const char *name, const sg_h5_expect *exp, int tensor,
                   rd_t *r, const char *op)
{
    r->did = H5I_INVALID_HID;
    if (usable(f, op) < 0)
        return -1;
    r->did = open_ds(f, name, op);
    if (r->did < 0)
        return -1;
    sg_h5_info *in = &r->info;
    char s1[160], s2[160];
    if (describe(r->did, in, f, name, op) < 0)
        goto fail;
    if (in->type == SG_H5_TEXT || in->type == SG_H5_OTHER) {
        sg_seterr("%s '%s' in '%s': dataset holds %s data (sgdsa reads float32, uint8, int32, "
                  "int64, uint64, float64 arrays)", op, name, fname(f),
                  in->type == SG_H5_TEXT ? "text" : "an unsupported type of");
        goto fail;
    }
    sg_h5_type want = exp ? exp->type : SG_H5_OTHER;
    if (want != SG_H5_OTHER && in->type != want) {
        sg_seterr("%s '%s' in '%s': dtype %s in file, expected %s", op, name, fname(f),
                  sg_h5_type_name(in->type), sg_h5_type_name(want));
        goto fail;
    }
    if (tensor && in->type != SG_H5_F32 && in->type != SG_H5_U8 && in->type != SG_H5_I32) {
        sg_seterr("%s '%s' in '%s': dtype %s is not a tensor dtype (float32, uint8, int32); "
                  "read it as an array", op, name, fname(f), sg_h5_type_name(in->type));
        goto fail;
    }
    if (in->ndim < 0) {
        sg_seterr("%s '%s' in '%s': rank above %d", op, name, fname(f), SG_MAXDIM);
        goto fail;
    }
    if (in->numel < 0) {
        sg_seterr("%s '%s' in '%s': declared size exceeds %lld elements", op, name, fname(f),
                  (long long)SG_MAX_NUMEL);
        goto fail;
    }
    if (exp && exp->ndim >= 0) {
        int same = exp->ndim == in->ndim;
        for (int i = 0; same && i < in->ndim; i++)
            same = exp->size[i] == in->size[i];
        if (!same) {
            shape_str(in->ndim, in->size, s1, sizeof s1);
            shape_str(exp->ndim, exp->size, s2, sizeof s2);
            sg_seterr("%s '%s' in '%s': shape %s in file, expected %s", op, name, fname(f), s1, s2);
            goto fail;
        }
    }
    r->bytes = (size_t)in->numel * sg_h5_type_size(in->type);
    if (exp && exp->max_bytes && r->bytes > exp->max_bytes) {
        sg_seterr("%s '%s' in '%s': %zu bytes exceed the limit of %zu", op, name, fname(f),
                  r->bytes, exp->max_bytes);
        goto fail;
    }
    if (check_storage(f, r->did, name, in->ndim, in->size, sg_h5_type_name(in->type), r->bytes,
                      op) < 0)
        goto fail;
    return 0;
fail:
    H5Dclose(r->did);
    r->did = H5I_INVALID_HID;
    return -1;
}

static int rd_read(sg_h5file *f, const char *name, rd_t *r, void *dst, const char *op)
{
    int rc = 0;
    if (r->bytes > 0 && H5Dread(r->did, mem_type(r->info.type), H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) < 0)
        rc = h5_fail("%s '%s' in '%s': reading %zu bytes failed", op, name, fname(f), r->bytes);
    if (rc == 0)
        rc = crc_check(r->did, dst, r->bytes, f, name, op);
    H5Dclose(r->did);
    r->did = H5I_INVALID_HID;
    return rc;
}

void *sg_h5_read_array(sg_h5file *f, const char *name, const sg_h5_expect *exp, sg_h5_info *info)
{
    const char *op = "h5 read";
    rd_t r;
    if (rd_open(f, name, exp, 0, &r, op) < 0)
        return NULL;
    void *buf = sg_malloc(r.bytes, "h5 read buffer");
    if (!buf) {
        H5Dclose(r.did);
        return NULL;
    }
    if (rd_read(f, name, &r, buf, op) < 0) {
        free(buf);
        return NULL;
    }
    if (info)
        *info = r.info;
    return buf;
}

int sg_h5_read_array_into(sg_h5file *f, const char *name, sg_h5_type type, int ndim,
                          const int64_t *size, void *dst)
{
    if (ndim < 0 || ndim > SG_MAXDIM)
        return sg_seterr("h5 read '%s': expected rank %d invalid", name, ndim);
    sg_h5_expect e = { type, ndim, {0}, 0 };
    if (ndim > 0)
        memcpy(e.size, size, (size_t)ndim * sizeof *size);
    rd_t r;
    if (rd_open(f, name, &e, 0, &r, "h5 read") < 0)
        return -1;
    return rd_read(f, name, &r, dst, "h5 read");
}

sg_tensor *sg_h5_read_tensor(sg_h5file *f, const char *name, const sg_h5_expect *exp)
{
    const char *op = "h5 read";
    rd_t r;
    if (rd_open(f, name, exp, 1, &r, op) < 0)
        return NULL;
    sg_tensor *t = sg_tensor_new((sg_dtype)r.info.type, SG_CPU, r.info.ndim, r.info.size);
    if (!t) {
        sg_adderr("%s '%s' in '%s'", op, name, fname(f));
        H5Dclose(r.did);
        return NULL;
    }
    if (rd_read(f, name, &r, sg_tensor_data(t), op) < 0) {
        sg_tensor_release(t);
        return NULL;
    }
    return t;
}

int sg_h5_read_tensor_into(sg_h5file *f, const char *name, sg_tensor *dst)
{
    const char *op = "h5 read";
    if (sg_tensor_check(dst, op) < 0)
        return -1;
    sg_h5_expect e = { (sg_h5_type)dst->dtype, dst->ndim, {0}, 0 };
    memcpy(e.size, dst->size, (size_t)dst->ndim * sizeof(int64_t));
    rd_t r;
    if (rd_open(f, name, &e, 1, &r, op) < 0)
        return -1;
    if (dst->storage->device == SG_CPU && sg_tensor_is_contiguous(dst))
        return rd_read(f, name, &r, sg_tensor_data(dst), op);
    sg_tensor *t = sg_tensor_new(dst->dtype, SG_CPU, dst->ndim, dst->size);
    if (!t) {
        H5Dclose(r.did);
        return sg_adderr("%s '%s'", op, name);
    }
    int rc = rd_read(f, name, &r, sg_tensor_data(t), op);
    if (rc == 0 && sg_copy(dst, t) < 0)
        rc = sg_adderr("%s '%s' (copy to %s)", op, name, sg_device_name(dst->storage->device));
    sg_tensor_release(t);
    return rc;
}

/* Read a string value (dataset or attribute) of type tid; `rd` reads it.
 * Fixed-length strings are bounded by limit; variable-length ones are copied. */
static char *read_string(hid_t tid, size_t limit, herr_t (*rd)(hid_t obj, hid_t mt, void *buf),
                         hid_t obj, size_t *len, const char *what, const sg_h5file *f, const char *op)
{
    char *out = NULL;
    htri_t var = H5Tis_variable_str(tid);
    if (var < 0) {
        h5_fail("%s %s in '%s': cannot read the string type", op, what, fname(f));
        return NULL;
    }
    H5T_cset_t cset = H5Tget_cset(tid);
    hid_t mt = H5Tcopy(H5T_C_S1);
    if (mt < 0 || (cset >= 0 && H5Tset_cset(mt, cset) < 0)) {
        h5_fail("%s %s in '%s': cannot make a string type", op, what, fname(f));
        if (mt >= 0)
            H5Tclose(mt);
        return NULL;
    }
    if (var) {
        char *p = NULL;
        if (H5Tset_size(mt, H5T_VARIABLE) < 0 || rd(obj, mt, &p) < 0) {
            h5_fail("%s %s in '%s': reading the string failed", op, what, fname(f));
        } else {
            size_t n = p ? strnlen(p, limit + 1) : 0;
            if (n > limit)
                sg_seterr("%s %s in '%s': string longer than %zu bytes", op, what, fname(f), limit);
            else if ((out = sg_malloc(n + 1, "h5 string"))) {
                memcpy(out, p, n);
                out[n] = '\0';
                *len = n;
            }
        }
        if (p)
            H5free_memory(p);
    } else {
        size_t sz = H5Tget_size(tid);
        if (sz == 0 || sz > limit) {
            sg_seterr("%s %s in '%s': fixed string of %zu bytes (1..%zu allowed)", op, what,
                      fname(f), sz, limit);
        } else if (H5Tset_size(mt, sz) < 0 || H5Tset_strpad(mt, H5T_STR_NULLPAD) < 0) {
            h5_fail("%s %s in '%s': cannot make a string type", op, what, fname(f));
        } else if ((out = sg_malloc(sz + 1, "h5 string"))) {
            if (rd(obj, mt, out) < 0) {
                h5_fail("%s %s in '%s': reading %zu bytes failed", op, what, fname(f), sz);
                free(out);
                out = NULL;
            } else {
                out[sz] = '\0';
                *len = strnlen(out, sz);
            }
        }
    }
    H5Tclose(mt);
    return out;
}

static herr_t dread_all(hid_t did, hid_t mt, void *buf)
{
    return H5Dread(did, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
}

static herr_t aread_all(hid_t aid, hid_t mt, void *buf) { return H5Aread(aid, mt, buf); }

char *sg_h5_read_text(sg_h5file *f, const char *name, size_t *len)
{
    const char *op = "h5 read_text";
    if (usable(f, op) < 0)
        return NULL;
    hid_t did = open_ds(f, name, op);
    if (did < 0)
        return NULL;
    sg_h5_info info;
    char *out = NULL;
    size_t n = 0;
    if (describe(did, &info, f, name, op) < 0)
        goto done;
    if (info.type != SG_H5_TEXT || info.numel != 1) {
        char s[160];
        shape_str(info.ndim, info.size, s, sizeof s);
        sg_seterr("%s '%s' in '%s': not a text dataset (%s %s)", op, name, fname(f),
                  sg_h5_type_name(info.type), s);
        goto done;
    }
    hsize_t fsize = 0;
    H5Fget_filesize(f->fid, &fsize);
    size_t limit = fsize < SG_H5_MAX_TEXT ? (size_t)fsize : SG_H5_MAX_TEXT;
    hid_t tid = H5Dget_type(did);
    if (tid < 0) {
        h5_fail("%s '%s' in '%s': cannot read the datatype", op, name, fname(f));
        goto done;
    }
    char what[1100];
    snprintf(what, sizeof what, "'%s'", name);
    out = read_string(tid, limit, dread_all, did, &n, what, f, op);
    H5Tclose(tid);
    /* the crc covers the stored bytes: the text plus its NUL padding (none when written by sgdsa) */
    if (out && crc_check(did, out, n, f, name, op) < 0) {
        free(out);
        out = NULL;
    }
done:
    H5Dclose(did);
    if (out && len)
        *len = n;
    return out;
}

/* ------------------------------------------------------------------------- */
/* verification                                                              */

#define SG_H5_VERIFY_SLAB ((size_t)16 << 20)   /* bytes of data read at a time */

typedef struct {
    sg_h5file *f;
    haddr_t *seen;       /* object headers visited (hard links may repeat or loop) */
    size_t nseen, cap;
} vctx;

static const char *const vop = "h5 verify";

/* Variable-length parts of a value of type tid need freeing after a read
 * (a compound or array may hold variable-length strings, which the API
 * counts as strings: freeing one without any is harmless). */
static int has_vlen(hid_t tid)
{
    H5T_class_t k = H5Tget_class(tid);
    return H5Tis_variable_str(tid) > 0 || H5Tdetect_class(tid, H5T_VLEN) > 0 ||
           ((k == H5T_COMPOUND || k == H5T_ARRAY) && H5Tdetect_class(tid, H5T_STRING) > 0);
}

struct vattr {
    vctx *c;
    const char *obj;
    int failed;
};

static herr_t vattr_cb(hid_t loc, const char *name, const H5A_info_t *ai, void *ud)
{
    struct vattr *a = ud;
    sg_h5file *f = a->c->f;
    char d[1100];
    objdesc(a->obj, d, sizeof d);
    hid_t aid = H5Aopen(loc, name, H5P_DEFAULT);
    hid_t tid = aid >= 0 ? H5Aget_type(aid) : H5I_INVALID_HID;
    hid_t sid = aid >= 0 ? H5Aget_space(aid) : H5I_INVALID_HID;
    hssize_t np = sid >= 0 ? H5Sget_simple_extent_npoints(sid) : -1;
    size_t sz = tid >= 0 ? H5Tget_size(tid) : 0;
    int rc = 0;
    if (aid < 0 || tid < 0 || sid < 0 || np < 0 || sz == 0) {
        rc = h5_fail("%s: cannot open attribute '%s' of %s in '%s'", vop, name, d, fname(f));
    } else if ((size_t)np > SG_H5_MAX_TEXT / sz) {
        rc = sg_seterr("%s: attribute '%s' of %s in '%s' declares %lld values of %zu bytes: "
                       "corrupt or too large", vop, name, d, fname(f), (long long)np, sz);
    } else {
        void *buf = sg_calloc((size_t)np > 0 ? (size_t)np : 1, sz, "h5 verify attribute");
        if (!buf)
            rc = -1;
        else if (np > 0 && H5Aread(aid, tid, buf) < 0)
            rc = h5_fail("%s: cannot read attribute '%s' of %s in '%s'", vop, name, d, fname(f));
        else if (np > 0 && has_vlen(tid))
            H5Dvlen_reclaim(tid, sid, H5P_DEFAULT, buf);
        free(buf);
    }
    close_attr(sid, tid, aid);
    if (rc < 0)
        a->failed = 1;
    return rc < 0 ? -1 : 0;
}

/* Read every element of dataset did (slabs along the first dimension),
 * through its filters (Fletcher-32), and compare its crc32 attribute. */
static int verify_data(vctx *c, hid_t did, const char *path)
{
    sg_h5file *f = c->f;
    const char *name = path[0] == '/' ? path + 1 : path;
    hid_t tid = H5Dget_type(did);
    hid_t sid = H5Dget_space(did);
    hid_t fs = H5I_INVALID_HID, ms = H5I_INVALID_HID;
    void *buf = NULL;
    int rc = 0;
    if (tid < 0 || sid < 0) {
        rc = h5_fail("%s: cannot read the datatype or dataspace of '%s' in '%s'", vop, name, fname(f));
        goto done;
    }
    H5S_class_t sc = H5Sget_simple_extent_type(sid);
    if (sc == H5S_NULL)
        goto done;
    sg_h5_type t = classify(tid);
    int numeric = t != SG_H5_TEXT && t != SG_H5_OTHER;
    hid_t mt = numeric ? mem_type(t) : tid;
    size_t esize = numeric ? sg_h5_type_size(t) : H5Tget_size(tid);
    int nd = sc == H5S_SCALAR ? 0 : H5Sget_simple_extent_ndims(sid);
    hsize_t dims[H5S_MAX_RANK];
    if (esize == 0 || nd < 0 || nd > H5S_MAX_RANK || (nd > 0 && H5Sget_simple_extent_dims(sid, dims, NULL) < 0)) {
        rc = h5_fail("%s: cannot read the shape of '%s' in '%s'", vop, name, fname(f));
        goto done;
    }
    /* elements in one row (all dimensions but the first) and in all */
    hsize_t row = 1, total = 1;
    int64_t size[SG_MAXDIM];
    for (int i = 0; i < nd; i++) {
        if (i < SG_MAXDIM)
            size[i] = dims[i] > (hsize_t)INT64_MAX ? INT64_MAX : (int64_t)dims[i];
        if (dims[i] > 0 && total > (hsize_t)SIZE_MAX / esize / dims[i]) {
            rc = sg_seterr("%s: '%s' in '%s' declares more data than memory can address: "
                           "corrupt dataset", vop, name, fname(f));
            goto done;
        }
        total *= dims[i];
        if (i > 0)
            row *= dims[i];
    }
    size_t bytes = (size_t)total * esize;
    if (check_storage(f, did, name, nd <= SG_MAXDIM ? nd : -1, size,
                      numeric ? sg_h5_type_name(t) : "elements", bytes, vop) < 0) {
        rc = -1;
        goto done;
    }
    if (total == 0)
        goto done;
    int vlen = !numeric && has_vlen(tid);
    hsize_t rows_per = nd == 0 ? 1 : SG_H5_VERIFY_SLAB / esize / (row ? row : 1);
    if (rows_per == 0)
        rows_per = 1;
    hsize_t nrows = nd == 0 ? 1 : dims[0];
    if (rows_per > nrows)
        rows_per = nrows;
    buf = sg_malloc((size_t)(rows_per * (nd == 0 ? 1 : row)) * esize, "h5 verify buffer");
    if (!buf) {
        rc = -1;
        goto done;
    }
    uint32_t crc = 0;
    size_t text_len = 0;
    for (hsize_t r0 = 0; r0 < nrows && rc == 0; r0 += rows_per) {
        hsize_t nr = nrows - r0 < rows_per ? nrows - r0 : rows_per;
        herr_t e;
        if (nd == 0) {
            e = H5Dread(did, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
        } else {
            hsize_t start[H5S_MAX_RANK] = { 0 }, count[H5S_MAX_RANK];
            start[0] = r0;
            count[0] = nr;
            for (int i = 1; i < nd; i++)
                count[i] = dims[i];
            fs = H5Scopy(sid);
            ms = H5Screate_simple(nd, count, NULL);
            e = (fs < 0 || ms < 0 ||
                 H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0)
                    ? -1 : H5Dread(did, mt, ms, fs, H5P_DEFAULT, buf);
        }
        size_t got = (size_t)(nr * (nd == 0 ? 1 : row)) * esize;
        if (e < 0)
            rc = h5_fail("%s: cannot read the data of '%s' in '%s' (rows %llu..%llu)", vop, name,
                         fname(f), (unsigned long long)r0, (unsigned long long)(r0 + nr - 1));
        else if (vlen)
            H5Dvlen_reclaim(mt, nd == 0 ? sid : ms, H5P_DEFAULT, buf);
        else if (t == SG_H5_TEXT)
            text_len = strnlen(buf, esize);
        else
            crc = crc_of(crc, buf, got);
        if (fs >= 0)
            H5Sclose(fs);
        if (ms >= 0)
            H5Sclose(ms);
        fs = ms = H5I_INVALID_HID;
    }
    if (rc == 0 && !vlen && (numeric || (t == SG_H5_TEXT && total == 1))) {
        uint32_t want;
        int have = crc_get(did, &want);
        if (t == SG_H5_TEXT)
            crc = crc_of(0, buf, text_len);
        if (have < 0)
            rc = h5_fail("%s: '%s' in '%s': cannot read its crc32 attribute", vop, name, fname(f));
        else if (have && crc != want)
            rc = sg_seterr("%s: '%s' in '%s': data checksum mismatch (crc32 stored %08x, computed "
                           "%08x): the file is corrupt", vop, name, fname(f), (unsigned)want,
                           (unsigned)crc);
    }
done:
    free(buf);
    close_attr(sid, tid, -1);
    return rc;
}

struct vlinks {
    char **names;
    size_t n, cap;
    int failed;
};

static herr_t vlink_cb(hid_t g, const char *name, const H5L_info_t *li, void *ud)
{
    struct vlinks *l = ud;
    if (li->type != H5L_TYPE_HARD)
        return 0;   /* soft and external links are never followed */
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        char **p = realloc(l->names, cap * sizeof *p);
        if (!p) {
            sg_seterr("h5 verify: out of memory listing links");
            l->failed = 1;
            return -1;
        }
        l->names = p;
        l->cap = cap;
    }
    if (!(l->names[l->n] = dupstr(name, "h5 verify link name"))) {
        l->failed = 1;
        return -1;
    }
    l->n++;
    return 0;
}

static int verify_object(vctx *c, const char *path, int depth)
{
    sg_h5file *f = c->f;
    char d[1100];
    objdesc(path, d, sizeof d);
    if (depth > SG_H5_MAX_DEPTH)
        return sg_seterr("%s: %s in '%s' nests more than %d groups deep (a corrupt file?)", vop, d,
                         fname(f), SG_H5_MAX_DEPTH);
    /* the object header: every chunk is loaded, so every checksum is checked */
    H5O_info_t oi;
    if (H5Oget_info_by_name2(f->fid, path, &oi, H5O_INFO_ALL, g_lapl) < 0)
        return h5_fail("%s: cannot read the object header of %s in '%s'", vop, d, fname(f));
    for (size_t i = 0; i < c->nseen; i++)
        if (c->seen[i] == oi.addr)
            return 0;
    if (c->nseen == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 64;
        haddr_t *p = realloc(c->seen, cap * sizeof *p);
        if (!p)
            return sg_seterr("%s: out of memory (%zu objects)", vop, cap);
        c->seen = p;
        c->cap = cap;
    }
    c->seen[c->nseen++] = oi.addr;
    hid_t oid = H5Oopen(f->fid, path, g_lapl);
    if (oid < 0)
        return h5_fail("%s: cannot open %s in '%s'", vop, d, fname(f));
    int rc = 0;
    struct vattr a = { c, path, 0 };
    hsize_t idx = 0;
    if (H5Aiterate2(oid, H5_INDEX_NAME, H5_ITER_NATIVE, &idx, vattr_cb, &a) < 0) {
        if (a.failed)
            H5Eclear2(H5E_DEFAULT);
        else
            h5_fail("%s: cannot list the attributes of %s in '%s'", vop, d, fname(f));
        rc = -1;
    }
    if (rc == 0 && oi.type == H5O_TYPE_DATASET) {
        rc = verify_data(c, oid, path);
    } else if (rc == 0 && oi.type == H5O_TYPE_GROUP) {
        struct vlinks l = { NULL, 0, 0, 0 };
        hsize_t li = 0;
        if (dense_refused(f, f->fid, path, vop) < 0) {
            rc = -1;
        } else if (H5Literate(oid, H5_INDEX_NAME, H5_ITER_NATIVE, &li, vlink_cb, &l) < 0) {
            if (l.failed)
                H5Eclear2(H5E_DEFAULT);
            rc = l.failed ? -1 : h5_fail("%s: cannot list the links of %s in '%s'", vop, d, fname(f));
        }
        for (size_t i = 0; i < l.n; i++) {
            if (rc == 0) {
                size_t n = strlen(path) + strlen(l.names[i]) + 2;
                char *child = sg_malloc(n, "h5 verify path");
                if (!child) {
                    rc = -1;
                } else {
                    snprintf(child, n, "%s%s%s", path, strcmp(path, "/") ? "/" : "", l.names[i]);
                    rc = verify_object(c, child, depth + 1);
                    free(child);
                }
            }
            free(l.names[i]);
        }
        free(l.names);
    }
    H5Oclose(oid);
    return rc;
}

int sg_h5_verify(sg_h5file *f)
{
    if (usable(f, vop) < 0)
        return -1;
    vctx c = { f, NULL, 0, 0 };
    int rc = verify_object(&c, "/", 0);
    free(c.seen);
    return rc;
}

/* ------------------------------------------------------------------------- */
/* attributes                                                                */

static hid_t open_obj(sg_h5file *f, const char *obj, const char *op)
{
    const char *o = objname(obj);
    if (f->fid < 0) {
        sg_seterr("%s: '%s' is unusable: a flush of it failed (close it)", op, fname(f));
        return H5I_INVALID_HID;
    }
    if (strcmp(o, "/") != 0) {
        if (check_name(op, f, o) < 0)
            return H5I_INVALID_HID;
        int e = link_exists(f, o, op);
        if (e <= 0) {
            if (e == 0)
                sg_seterr("%s: no object '%s' in '%s'", op, o, fname(f));
            return H5I_INVALID_HID;
        }
    }
    hid_t id = H5Oopen(f->fid, o, g_lapl);
    if (id < 0)
        h5_fail("%s: cannot open object '%s' in '%s'", op, o, fname(f));
    return id;
}

static int attr_write(sg_h5file *f, const char *obj, const char *name, hid_t tid, hid_t mt,
                      const void *buf)
{
    const char *op = "h5 attr";
    if (need_writable(f, op, name) < 0)
        return -1;
    hid_t oid = open_obj(f, obj, op);
    if (oid < 0)
        return -1;
    int rc = 0;
    htri_t ex = H5Aexists(oid, name);
    if (ex < 0 || (ex > 0 && H5Adelete(oid, name) < 0)) {
        rc = h5_fail("%s: cannot replace attribute '%s' of '%s' in '%s'", op, name, objname(obj), fname(f));
    } else {
        hid_t sid = H5Screate(H5S_SCALAR);
        hid_t aid = H5Acreate2(oid, name, tid, sid, H5P_DEFAULT, H5P_DEFAULT);
        if (aid < 0 || H5Awrite(aid, mt, buf) < 0)
            rc = h5_fail("%s: cannot write attribute '%s' of '%s' in '%s'", op, name, objname(obj), fname(f));
        if (aid >= 0)
            H5Aclose(aid);
        H5Sclose(sid);
    }
    H5Oclose(oid);
    return rc;
}

int sg_h5_attr_set_text(sg_h5file *f, const char *obj, const char *name, const char *s)
{
    size_t len = strlen(s);
    if (len > 60000)
        return sg_seterr("h5 attr: text attribute '%s' of %zu bytes (at most 60000; store long "
                         "text as a dataset with write_text)", name, len);
    hid_t tid = text_type(len);
    if (tid < 0)
        return h5_fail("h5 attr: cannot make a string type for '%s'", name);
    char *buf = sg_calloc(len ? len : 1, 1, "h5 attribute text");
    int rc = -1;
    if (buf) {
        memcpy(buf, s, len);
        rc = attr_write(f, obj, name, tid, tid, buf);
        free(buf);
    }
    H5Tclose(tid);
    return rc;
}

int sg_h5_attr_set_i64(sg_h5file *f, const char *obj, const char *name, int64_t v)
{
    return attr_write(f, obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &v);
}

int sg_h5_attr_set_f64(sg_h5file *f, const char *obj, const char *name, double v)
{
    return attr_write(f, obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v);
}

void sg_h5_attr_clear(sg_h5_attrval *v)
{
    free(v->text);
    memset(v, 0, sizeof *v);
}

int sg_h5_attr_get(sg_h5file *f, const char *obj, const char *name, sg_h5_attrval *v)
{
    const char *op = "h5 attr";
    memset(v, 0, sizeof *v);
    if (usable(f, op) < 0)
        return -1;
    hid_t oid = open_obj(f, obj, op);
    if (oid < 0)
        return -1;
    int rc = 1;
    hid_t aid = H5I_INVALID_HID, tid = H5I_INVALID_HID, sid = H5I_INVALID_HID;
    htri_t ex = H5Aexists(oid, name);
    if (ex < 0) {
        rc = h5_fail("%s: cannot look up attribute '%s' of '%s' in '%s'", op, name, objname(obj), fname(f));
        goto done;
    }
    if (ex == 0) {
        rc = 0;
        goto done;
    }
    aid = H5Aopen(oid, name, H5P_DEFAULT);
    tid = aid >= 0 ? H5Aget_type(aid) : H5I_INVALID_HID;
    sid = aid >= 0 ? H5Aget_space(aid) : H5I_INVALID_HID;
    if (aid < 0 || tid < 0 || sid < 0) {
        rc = h5_fail("%s: cannot open attribute '%s' of '%s' in '%s'", op, name, objname(obj), fname(f));
        goto done;
    }
    hssize_t npts = H5Sget_simple_extent_npoints(sid);
    if (npts != 1) {
        rc = sg_seterr("%s: attribute '%s' of '%s' in '%s' has %lld values (only single values "
                       "are read)", op, name, objname(obj), fname(f), (long long)npts);
        goto done;
    }
    H5T_class_t c = H5Tget_class(tid);
    if (c == H5T_STRING) {
        size_t n = 0;
        char what[600];
        snprintf(what, sizeof what, "attribute '%s' of '%s'", name, objname(obj));
        v->text = read_string(tid, SG_H5_MAX_TEXT < 65536 ? SG_H5_MAX_TEXT : 65536, aread_all, aid,
                              &n, what, f, op);
        if (!v->text)
            rc = -1;
        else
            v->kind = SG_H5_ATTR_TEXT;
    } else if (c == H5T_INTEGER) {
        if (H5Tget_size(tid) == 8 && H5Tget_sign(tid) == H5T_SGN_NONE) {
            uint64_t u;
            if (H5Aread(aid, H5T_NATIVE_UINT64, &u) < 0)
                rc = -1;
            v->i = (int64_t)u;
        } else if (H5Aread(aid, H5T_NATIVE_INT64, &v->i) < 0) {
            rc = -1;
        }
        if (rc < 0)
            h5_fail("%s: reading attribute '%s' of '%s' in '%s' failed", op, name, objname(obj), fname(f));
        v->kind = SG_H5_ATTR_INT;
        v->d = (double)v->i;
    } else if (c == H5T_FLOAT) {
        if (H5Aread(aid, H5T_NATIVE_DOUBLE, &v->d) < 0)
            rc = h5_fail("%s: reading attribute '%s' of '%s' in '%s' failed", op, name, objname(obj), fname(f));
        v->kind = SG_H5_ATTR_FLOAT;
    } else {
        rc = sg_seterr("%s: attribute '%s' of '%s' in '%s' is neither text nor a number", op,
                       name, objname(obj), fname(f));
    }
done:
    close_attr(sid, tid, aid);
    H5Oclose(oid);
    if (rc < 0)
        sg_h5_attr_clear(v);
    return rc;
}

struct attr_ctx {
    int (*fn)(void *, const char *);
    void *ud;
    int failed;
};

static herr_t attr_cb(hid_t loc, const char *name, const H5A_info_t *ai, void *ud)
{
    struct attr_ctx *c = ud;
    int rc = c->fn(c->ud, name);
    if (rc < 0)
        c->failed = 1;
    return rc;
}

int sg_h5_attr_list(sg_h5file *f, const char *obj, int (*fn)(void *ud, const char *name), void *ud)
{
    if (usable(f, "h5 attr list") < 0)
        return -1;
    hid_t oid = open_obj(f, obj, "h5 attr list");
    if (oid < 0)
        return -1;
    struct attr_ctx c = { fn, ud, 0 };
    hsize_t idx = 0;
    herr_t rc = H5Aiterate2(oid, H5_INDEX_NAME, H5_ITER_INC, &idx, attr_cb, &c);
    if (rc < 0 && !c.failed)
        h5_fail("h5 attr list: cannot iterate the attributes of '%s' in '%s'", objname(obj), fname(f));
    H5Oclose(oid);
    return (c.failed || rc < 0) ? -1 : (int)rc;
}

/* ------------------------------------------------------------------------- */
/* logs                                                                      */

sg_h5log *sg_h5log_new(const char *group, int ncols, const char *const *names, const sg_h5_type *types)
{
    if (ncols <= 0 || ncols > 1024) {
        sg_seterr("h5 log '%s': %d columns (1..1024 allowed)", group, ncols);
        return NULL;
    }
    sg_h5log *l = sg_calloc(1, sizeof *l, "h5 log");
    if (!l)
        return NULL;
    l->ncols = ncols;
    l->group = dupstr(group, "h5 log group");
    l->names = sg_calloc((size_t)ncols, sizeof *l->names, "h5 log names");
    l->types = sg_calloc((size_t)ncols, sizeof *l->types, "h5 log types");
    if (!l->group || !l->names || !l->types)
        goto fail;
    if (check_name("h5 log", NULL, group) < 0)
        goto fail;
    for (int i = 0; i < ncols; i++) {
        const char *n = names[i];
        if (!n[0] || strchr(n, '/') || strchr(n, ',') || strlen(n) > 200 ||
            strcmp(n, ".") == 0 || strcmp(n, "..") == 0) {
            sg_seterr("h5 log '%s': invalid column name '%s' (no '/', ',', at most 200 bytes)", group, n);
            goto fail;
        }
        for (int j = 0; j < i; j++)
            if (strcmp(names[j], n) == 0) {
                sg_seterr("h5 log '%s': column '%s' given twice", group, n);
                goto fail;
            }
        sg_h5_type t = types ? types[i] : SG_H5_F64;
        if (t != SG_H5_F64 && t != SG_H5_I64) {
            sg_seterr("h5 log '%s': column '%s' has type %s (float64 or int64 allowed)", group, n,
                      sg_h5_type_name(t));
            goto fail;
        }
        l->types[i] = t;
        if (!(l->names[i] = dupstr(n, "h5 log column name")))
            goto fail;
    }
    return l;
fail:
    sg_h5log_free(l);
    return NULL;
}

void sg_h5log_free(sg_h5log *l)
{
    if (!l)
        return;
    for (int i = 0; l->names && i < l->ncols; i++)
        free(l->names[i]);
    free(l->names);
    free(l->types);
    free(l->group);
    free(l->buf);
    free(l);
}

int sg_h5log_ncols(const sg_h5log *l) { return l->ncols; }
const char *sg_h5log_colname(const sg_h5log *l, int i) { return (i >= 0 && i < l->ncols) ? l->names[i] : NULL; }
sg_h5_type sg_h5log_coltype(const sg_h5log *l, int i) { return (i >= 0 && i < l->ncols) ? l->types[i] : SG_H5_OTHER; }
int64_t sg_h5log_pending(const sg_h5log *l) { return l->nbuf; }

int sg_h5log_col(const sg_h5log *l, const char *name)
{
    for (int i = 0; i < l->ncols; i++)
        if (strcmp(l->names[i], name) == 0)
            return i;
    return -1;
}

int sg_h5log_append(sg_h5log *l, const double *row)
{
    for (int i = 0; i < l->ncols; i++)
        if (l->types[i] == SG_H5_I64 &&
            !(row[i] == floor(row[i]) && fabs(row[i]) < 9.2e18))
            return sg_seterr("h5 log '%s' append: column '%s' is int64 but got %g", l->group,
                             l->names[i], row[i]);
    if (l->nbuf == l->cap) {
        int64_t cap = l->cap ? 2 * l->cap : 256;
        double *b = realloc(l->buf, (size_t)cap * (size_t)l->ncols * sizeof *b);
        if (!b)
            return sg_seterr("h5 log '%s' append: out of memory for %lld rows", l->group, (long long)cap);
        l->buf = b;
        l->cap = cap;
    }
    memcpy(l->buf + l->nbuf * l->ncols, row, (size_t)l->ncols * sizeof *row);
    l->nbuf++;
    return 0;
}

static char *join_names(int n, char *const *names)
{
    size_t len = 1;
    for (int i = 0; i < n; i++)
        len += strlen(names[i]) + 1;
    char *s = sg_malloc(len, "h5 log column list");
    if (!s)
        return NULL;
    s[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (i)
            strcat(s, ",");
        strcat(s, names[i]);
    }
    return s;
}

static int log_path(char *buf, size_t n, const char *group, const char *col)
{
    if ((size_t)snprintf(buf, n, "%s/%s", group, col) >= n)
        return sg_seterr("h5 log: name '%s/%s' too long", group, col);
    return 0;
}

/* Rows of log `group`; *cols (optional) receives its "columns" attribute. */
static int64_t log_rows(sg_h5file *f, const char *group, char **cols, const char *op)
{
    sg_h5_attrval v;
    int found = sg_h5_attr_get(f, group, "columns", &v);
    if (found <= 0) {
        if (found == 0)
            sg_seterr("%s: group '%s' in '%s' is not an sgdsa log (no 'columns' attribute)", op,
                      group, fname(f));
        return -1;
    }
    if (v.kind != SG_H5_ATTR_TEXT) {
        sg_h5_attr_clear(&v);
        return sg_seterr("%s: attribute 'columns' of '%s' in '%s' is not text", op, group, fname(f));
    }
    int64_t rows = -1;
    char *save = NULL, *list = v.text;
    char path[1400];
    for (char *c = strtok_r(list, ",", &save); c; c = strtok_r(NULL, ",", &save)) {
        if (log_path(path, sizeof path, group, c) < 0)
            goto fail;
        hid_t did = open_ds(f, path, op);
        if (did < 0)
            goto fail;
        sg_h5_info in;
        int rc = describe(did, &in, f, path, op);
        H5Dclose(did);
        if (rc < 0)
            goto fail;
        if (in.ndim != 1 || in.numel < 0) {
            sg_seterr("%s: log column '%s' in '%s' is not 1-d", op, path, fname(f));
            goto fail;
        }
        if (rows >= 0 && in.size[0] != rows) {
            sg_seterr("%s: log '%s' in '%s' has columns of unequal length (%lld and %lld rows)",
                      op, group, fname(f), (long long)rows, (long long)in.size[0]);
            goto fail;
        }
        rows = in.size[0];
    }
    if (rows < 0) {
        sg_seterr("%s: log '%s' in '%s' has no columns", op, group, fname(f));
        goto fail;
    }
    if (cols) {   /* strtok_r cut the text; read it again */
        sg_h5_attr_clear(&v);
        if (sg_h5_attr_get(f, group, "columns", &v) <= 0)
            return -1;
        *cols = v.text;
        v.text = NULL;
    }
    sg_h5_attr_clear(&v);
    return rows;
fail:
    sg_h5_attr_clear(&v);
    return -1;
}

int64_t sg_h5log_rows(sg_h5file *f, const char *group)
{
    if (usable(f, "h5 log rows") < 0)
        return -1;
    return log_rows(f, group, NULL, "h5 log rows");
}

static int log_create(sg_h5log *l, sg_h5file *f, const char *op)
{
    if (sg_h5_mkgroup(f, l->group) < 0)
        return -1;
    char path[1400];
    for (int i = 0; i < l->ncols; i++) {
        if (log_path(path, sizeof path, l->group, l->names[i]) < 0)
            return -1;
        hsize_t dims[1] = { 0 }, maxd[1] = { H5S_UNLIMITED }, chunk[1] = { 4096 };
        hid_t sid = H5Screate_simple(1, dims, maxd);
        hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
        int rc = 0;
        if (sid < 0 || dcpl < 0 || H5Pset_chunk(dcpl, 1, chunk) < 0 || H5Pset_shuffle(dcpl) < 0 ||
            H5Pset_deflate(dcpl, 4) < 0 || H5Pset_fletcher32(dcpl) < 0) {
            rc = h5_fail("%s: cannot set up column '%s' in '%s'", op, path, fname(f));
        } else {
            hid_t did = H5Dcreate2(f->fid, path, file_type(l->types[i]), sid, H5P_DEFAULT, dcpl, H5P_DEFAULT);
            if (did < 0)
                rc = h5_fail("%s: cannot create column '%s' in '%s'", op, path, fname(f));
            else
                H5Dclose(did);
        }
        if (sid >= 0)
            H5Sclose(sid);
        if (dcpl >= 0)
            H5Pclose(dcpl);
        if (rc)
            return rc;
    }
    char *cols = join_names(l->ncols, l->names);
    if (!cols)
        return -1;
    int rc = sg_h5_attr_set_text(f, l->group, "columns", cols);
    free(cols);
    return rc;
}

int sg_h5log_write(sg_h5log *l, sg_h5file *f)
{
    const char *op = "h5 log write";
    if (need_writable(f, op, l->group) < 0)
        return -1;
    int e = link_exists(f, l->group, op);
    if (e < 0)
        return -1;
    if (e == 0 && log_create(l, f, op) < 0)
        return -1;
    char *have = NULL;
    int64_t rows = log_rows(f, l->group, &have, op);
    if (rows < 0)
        return -1;
    char *want = join_names(l->ncols, l->names);
    if (!want) {
        free(have);
        return -1;
    }
    int same = strcmp(have, want) == 0;
    if (!same)
        sg_seterr("%s: log '%s' in '%s' has columns {%s}; this writer has {%s}", op, l->group,
                  fname(f), have, want);
    free(have);
    free(want);
    if (!same)
        return -1;
    if (l->nbuf == 0)
        return 0;
    void *col = sg_malloc((size_t)l->nbuf * 8, "h5 log column buffer");
    if (!col)
        return -1;
    char path[1400];
    int rc = 0;
    for (int i = 0; i < l->ncols && rc == 0; i++) {
        for (int64_t r = 0; r < l->nbuf; r++) {
            double v = l->buf[r * l->ncols + i];
            if (l->types[i] == SG_H5_I64)
                ((int64_t *)col)[r] = (int64_t)v;
            else
                ((double *)col)[r] = v;
        }
        if ((rc = log_path(path, sizeof path, l->group, l->names[i])) < 0)
            break;
        hid_t did = open_ds(f, path, op);
        if (did < 0) {
            rc = -1;
            break;
        }
        sg_h5_info in;
        if (describe(did, &in, f, path, op) < 0 || in.type != l->types[i]) {
            if (in.type != l->types[i])
                sg_seterr("%s: column '%s' in '%s' is %s, the writer's is %s", op, path, fname(f),
                          sg_h5_type_name(in.type), sg_h5_type_name(l->types[i]));
            H5Dclose(did);
            rc = -1;
            break;
        }
        hsize_t newn[1] = { (hsize_t)(rows + l->nbuf) }, start[1] = { (hsize_t)rows },
                cnt[1] = { (hsize_t)l->nbuf };
        hid_t fs = H5I_INVALID_HID, ms = H5I_INVALID_HID;
        if (H5Dset_extent(did, newn) < 0 || (fs = H5Dget_space(did)) < 0 ||
            H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, cnt, NULL) < 0 ||
            (ms = H5Screate_simple(1, cnt, NULL)) < 0 ||
            H5Dwrite(did, mem_type(l->types[i]), ms, fs, H5P_DEFAULT, col) < 0)
            rc = h5_fail("%s: appending %lld rows to '%s' in '%s' failed", op, (long long)l->nbuf,
                         path, fname(f));
        uint32_t old = 0;
        int have = rc == 0 ? crc_get(did, &old) : 0;
        size_t nb = (size_t)l->nbuf * 8;
        if (rc == 0 && (have < 0 || (have == 0 && rows > 0)))
            rc = sg_seterr("%s: column '%s' in '%s' lacks a valid crc32 attribute", op, path, fname(f));
        if (rc == 0 && crc_set(did, (uint32_t)crc32_combine(old, crc_of(0, col, nb), (z_off_t)nb)) < 0)
            rc = h5_fail("%s: updating the crc32 of '%s' in '%s' failed", op, path, fname(f));
        if (fs >= 0)
            H5Sclose(fs);
        if (ms >= 0)
            H5Sclose(ms);
        H5Dclose(did);
    }
    free(col);
    if (rc == 0)
        l->nbuf = 0;
    return rc;
}

int sg_h5log_truncate(sg_h5file *f, const char *group, int64_t rows)
{
    const char *op = "h5 log truncate";
    if (need_writable(f, op, group) < 0)
        return -1;
    char *cols = NULL;
    int64_t have = log_rows(f, group, &cols, op);
    if (have < 0)
        return -1;
    if (rows < 0 || rows > have) {
        free(cols);
        return sg_seterr("%s: log '%s' in '%s' has %lld rows; cannot truncate to %lld", op, group,
                         fname(f), (long long)have, (long long)rows);
    }
    int rc = 0;
    char *save = NULL, path[1400];
    for (char *c = strtok_r(cols, ",", &save); c && rc == 0; c = strtok_r(NULL, ",", &save)) {
        if ((rc = log_path(path, sizeof path, group, c)) < 0)
            break;
        hid_t did = open_ds(f, path, op);
        if (did < 0) {
            rc = -1;
            break;
        }
        H5Dclose(did);
        /* verified read of the rows kept (also recomputes their crc32) */
        sg_h5_expect e = { SG_H5_OTHER, 1, { have }, 0 };
        sg_h5_info in;
        void *buf = sg_h5_read_array(f, path, &e, &in);
        if (!buf) {
            rc = -1;
            break;
        }
        if ((did = open_ds(f, path, op)) < 0) {
            free(buf);
            rc = -1;
            break;
        }
        hsize_t n[1] = { (hsize_t)rows };
        if (H5Dset_extent(did, n) < 0)
            rc = h5_fail("%s: cannot resize '%s' in '%s' to %lld rows", op, path, fname(f), (long long)rows);
        else if (crc_set(did, crc_of(0, buf, (size_t)rows * sg_h5_type_size(in.type))) < 0)
            rc = h5_fail("%s: updating the crc32 of '%s' in '%s' failed", op, path, fname(f));
        free(buf);
        H5Dclose(did);
    }
    free(cols);
    return rc;
}
