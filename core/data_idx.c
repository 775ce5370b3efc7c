/*
 * data_idx.c - the IDX format of MNIST and Fashion-MNIST.
 *
 * A file is a 4-byte magic (0, 0, type 0x08 = unsigned byte, rank) followed by
 * `rank` big-endian uint32 sizes and the data. Images are rank 3 (N x H x W),
 * labels rank 1 (N). Files may be gzip-compressed (zlib reads raw files
 * transparently). The header is read and every size checked before the body
 * is allocated; a short body is "truncated", extra bytes are an error too.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "data.h"
#include "error.h"

typedef struct {
    int rank;
    int64_t dim[3];
    int64_t count;   /* product of the sizes (bytes of data) */
    size_t hdr;      /* header bytes */
} idx_hdr;

static uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Parse and check the header at b (len bytes available). With magic_only,
 * only the 4-byte magic is checked (the file reader's first step). */
static int idx_header(const uint8_t *b, size_t len, int rank, idx_hdr *h, const char *what,
                      int magic_only)
{
    if (len < 4)
        return sg_seterr("idx: %s is truncated: %zu bytes, shorter than the 4-byte magic "
                         "(cpu)", what, len);
    uint32_t magic = be32(b);
    uint32_t want = 0x800u | (uint32_t)rank;
    if (magic != want)
        return sg_seterr("idx: %s has magic number 0x%08x, expected 0x%08x (an IDX %s file "
                         "of unsigned bytes, rank %d); is it the right file? (cpu)",
                         what, (unsigned)magic, (unsigned)want,
                         rank == 3 ? "images" : "labels", rank);
    h->rank = rank;
    h->hdr = 4 + 4 * (size_t)rank;
    if (magic_only)
        return 0;
    if (len < h->hdr)
        return sg_seterr("idx: %s is truncated inside its header (%zu of %zu bytes) (cpu)",
                         what, len, h->hdr);
    for (int i = 0; i < rank; i++) {
        h->dim[i] = be32(b + 4 + 4 * i);
        int64_t lim = i == 0 ? SG_DATA_MAXN : SG_DATA_MAXDIM;
        if (h->dim[i] > lim || (i > 0 && h->dim[i] == 0))
            return sg_seterr("idx: %s declares size %lld in dimension %d, outside [%d, %lld] "
                             "(cpu)", what, (long long)h->dim[i], i, i > 0, (long long)lim);
    }
    h->count = 1;
    for (int i = 0; i < rank; i++) {
        if (h->dim[i] > 0 && h->count > SG_DATA_MAXBYTES / h->dim[i]) {
            char dims[64];
            if (rank == 3)
                snprintf(dims, sizeof dims, "%lld x %lld x %lld", (long long)h->dim[0],
                         (long long)h->dim[1], (long long)h->dim[2]);
            else
                snprintf(dims, sizeof dims, "%lld", (long long)h->dim[0]);
            return sg_seterr("idx: %s declares %s bytes of data, more than the limit %lld "
                             "(cpu)", what, dims, (long long)SG_DATA_MAXBYTES);
        }
        h->count *= h->dim[i];
    }
    return 0;
}

/* Read a whole IDX file (gz or raw) whose header must have `rank`. */
static uint8_t *idx_read_file(const char *path, int rank, size_t *len)
{
    gzFile f = gzopen(path, "rb");
    if (!f)
        return sg_seterr("idx: cannot open %s: %s (cpu)", path,
                         errno ? strerror(errno) : "out of memory"), NULL;
    gzbuffer(f, 1 << 17);
    uint8_t hdr[16];
    idx_hdr h = {0};
    int got = gzread(f, hdr, 4);
    if (got < 0 || idx_header(hdr, (size_t)got, rank, &h, path, 1) != 0)
        goto fail_hdr;
    got = gzread(f, hdr + 4, (unsigned)(h.hdr - 4));
    if (got < 0 || idx_header(hdr, 4 + (size_t)got, rank, &h, path, 0) != 0)
        goto fail_hdr;
    uint8_t *buf = sg_malloc(h.hdr + (size_t)h.count, path);
    if (!buf) {
        gzclose(f);
        return NULL;
    }
    memcpy(buf, hdr, h.hdr);
    size_t done = 0, want = (size_t)h.count;
    while (done < want) {
        size_t chunk = want - done > (1u << 30) ? (1u << 30) : want - done;
        int r = gzread(f, buf + h.hdr + done, (unsigned)chunk);
        if (r <= 0)
            break;
        done += (size_t)r;
    }
    int errnum = 0;
    const char *zmsg = gzerror(f, &errnum);
    if (errnum != Z_OK && errnum != Z_BUF_ERROR) {
        sg_seterr("idx: %s: read error after %zu of %zu data bytes: %s (cpu)", path, done,
                  want, zmsg);
        goto fail_buf;
    }
    if (done < want) {
        char what[96];
        if (rank == 3)
            snprintf(what, sizeof what, "%lld images of %lldx%lld", (long long)h.dim[0],
                     (long long)h.dim[1], (long long)h.dim[2]);
        else
            snprintf(what, sizeof what, "%lld labels", (long long)h.dim[0]);
        sg_seterr("idx: %s is truncated: %zu of the %zu data bytes its header declares "
                  "(%s) (cpu)", path, done, want, what);
        goto fail_buf;
    }
    uint8_t extra;
    if (gzread(f, &extra, 1) == 1) {
        sg_seterr("idx: %s has data beyond the %zu bytes its header declares; is it the "
                  "right file? (cpu)", path, h.hdr + want);
        goto fail_buf;
    }
    gzclose(f);
    *len = h.hdr + want;
    return buf;
fail_buf:
    free(buf);
    gzclose(f);
    return NULL;
fail_hdr:
    if (got < 0) {
        int e;
        sg_seterr("idx: %s: read error: %s (cpu)", path, gzerror(f, &e));
    }
    gzclose(f);
    return NULL;
}

sg_dataset *sg_idx_parse_mem(const void *images, size_t images_len, const void *labels,
                             size_t labels_len, int classes, const char *name)
{
    const char *nm = name ? name : "idx";
    idx_hdr hi, hl;
    char wi[96], wl[96];
    snprintf(wi, sizeof wi, "%s images", nm);
    snprintf(wl, sizeof wl, "%s labels", nm);
    if (idx_header(images, images_len, 3, &hi, wi, 0) != 0 ||
        idx_header(labels, labels_len, 1, &hl, wl, 0) != 0)
        return NULL;
    if (images_len != hi.hdr + (size_t)hi.count)
        return sg_seterr("idx: %s: %zu bytes but the header declares %lld images of %lldx%lld "
                         "(%zu bytes)%s (cpu)", wi, images_len, (long long)hi.dim[0],
                         (long long)hi.dim[1], (long long)hi.dim[2], hi.hdr + (size_t)hi.count,
                         images_len < hi.hdr + (size_t)hi.count ? ": truncated" : ""), NULL;
    if (labels_len != hl.hdr + (size_t)hl.count)
        return sg_seterr("idx: %s: %zu bytes but the header declares %lld labels (%zu bytes)%s "
                         "(cpu)", wl, labels_len, (long long)hl.dim[0],
                         hl.hdr + (size_t)hl.count,
                         labels_len < hl.hdr + (size_t)hl.count ? ": truncated" : ""), NULL;
    if (hi.dim[0] != hl.dim[0])
        return sg_seterr("idx: %s: %lld images but %lld labels (cpu)", nm,
                         (long long)hi.dim[0], (long long)hl.dim[0]), NULL;
    if (classes < 1 || classes > 256)
        return sg_seterr("idx: %s: classes %d outside [1, 256] (cpu)", nm, classes), NULL;
    sg_dataset *d = sg_dataset_new(hi.dim[0], 1, (int)hi.dim[1], (int)hi.dim[2], classes,
                                   SG_DATA_U8, nm);
    if (!d)
        return NULL;
    if (hi.count)
        memcpy(d->u8, (const uint8_t *)images + hi.hdr, (size_t)hi.count);
    const uint8_t *lb = (const uint8_t *)labels + hl.hdr;
    for (int64_t i = 0; i < d->n; i++)
        d->labels[i] = lb[i];
    if (sg_dataset_check_labels(d, wl) != 0) {
        sg_dataset_release(d);
        return NULL;
    }
    return d;
}

sg_dataset *sg_idx_load(const char *images_path, const char *labels_path, int classes,
                        const char *name)
{
    size_t li = 0, ll = 0;
    uint8_t *im = idx_read_file(images_path, 3, &li);
    if (!im)
        return NULL;
    uint8_t *lb = idx_read_file(labels_path, 1, &ll);
    if (!lb) {
        free(im);
        return NULL;
    }
    char nm[64];
    snprintf(nm, sizeof nm, "%s", name ? name : images_path);
    sg_dataset *d = sg_idx_parse_mem(im, li, lb, ll, classes, nm);
    if (!d)
        sg_adderr("loading %s and %s", images_path, labels_path);
    free(im);
    free(lb);
    return d;
}
