/*
 * data_cifar.c - the CIFAR-10 and CIFAR-100 "binary version" files.
 *
 * CIFAR-10: records of 1 label byte + 3072 pixel bytes (3 x 32 x 32, CHW),
 * 10,000 per file (data_batch_1..5.bin, test_batch.bin).
 * CIFAR-100: records of 1 coarse label byte, 1 fine label byte + 3072 pixel
 * bytes (train.bin: 50,000, test.bin: 10,000).
 * A file's size must be a whole number of records; sizes are checked with
 * stat() before anything is allocated.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data.h"
#include "error.h"

#define CIFAR_PIXELS 3072

static size_t record_bytes(sg_cifar_kind kind) { return (kind == SG_CIFAR100 ? 2 : 1) + CIFAR_PIXELS; }
static int cifar_classes(sg_cifar_kind kind, int fine) { return kind == SG_CIFAR10 ? 10 : fine ? 100 : 20; }

/* Decode `nrec` records from buf into d starting at image `at`. */
static int decode(sg_dataset *d, int64_t at, const uint8_t *buf, int64_t nrec,
                  sg_cifar_kind kind, int fine, const char *what)
{
    size_t rb = record_bytes(kind);
    int lab_off = kind == SG_CIFAR10 ? 0 : fine ? 1 : 0;
    int nl = kind == SG_CIFAR10 ? 1 : 2;
    for (int64_t i = 0; i < nrec; i++) {
        const uint8_t *r = buf + (size_t)i * rb;
        int lab = r[lab_off];
        if (lab >= d->classes)
            return sg_seterr("cifar: %s: record %lld has %slabel %d, outside [0, %d); is it "
                             "a %s file? (cpu)", what, (long long)i,
                             kind == SG_CIFAR10 ? "" : fine ? "fine " : "coarse ", lab,
                             d->classes, kind == SG_CIFAR10 ? "CIFAR-10" : "CIFAR-100");
        d->labels[at + i] = lab;
        memcpy(d->u8 + (size_t)(at + i) * CIFAR_PIXELS, r + nl, CIFAR_PIXELS);
    }
    return 0;
}

static int check_len(size_t len, sg_cifar_kind kind, const char *what, int64_t *nrec)
{
    size_t rb = record_bytes(kind);
    if (len == 0)
        return sg_seterr("cifar: %s is empty (cpu)", what);
    if (len % rb != 0)
        return sg_seterr("cifar: %s has %zu bytes, not a whole number of %zu-byte %s records "
                         "(%zu complete, %zu bytes left over): truncated or not a %s file "
                         "(cpu)", what, len, rb, kind == SG_CIFAR10 ? "CIFAR-10" : "CIFAR-100",
                         len / rb, len % rb, kind == SG_CIFAR10 ? "CIFAR-10" : "CIFAR-100");
    if ((int64_t)(len / rb) > SG_DATA_MAXN)
        return sg_seterr("cifar: %s holds %zu records, more than the limit %lld (cpu)", what,
                         len / rb, (long long)SG_DATA_MAXN);
    *nrec = (int64_t)(len / rb);
    return 0;
}

sg_dataset *sg_cifar_parse_mem(const void *buf, size_t len, sg_cifar_kind kind, int fine,
                               const char *name)
{
    const char *nm = name ? name : "cifar";
    int64_t n = 0;
    if (check_len(len, kind, nm, &n) != 0)
        return NULL;
    sg_dataset *d = sg_dataset_new(n, 3, 32, 32, cifar_classes(kind, fine), SG_DATA_U8, nm);
    if (!d)
        return NULL;
    if (decode(d, 0, buf, n, kind, fine, nm) != 0) {
        sg_dataset_release(d);
        return NULL;
    }
    return d;
}

sg_dataset *sg_cifar_load(const char *const *paths, int nfiles, sg_cifar_kind kind, int fine,
                          const char *name)
{
    if (nfiles < 1 || nfiles > 64)
        return sg_seterr("cifar: %d files given, expected 1..64 (cpu)", nfiles), NULL;
    int64_t nrec[64] = {0}, total = 0;
    for (int i = 0; i < nfiles; i++) {
        struct stat st;
        if (stat(paths[i], &st) != 0)
            return sg_seterr("cifar: cannot open %s: %s (cpu)", paths[i], strerror(errno)),
                   NULL;
        if (!S_ISREG(st.st_mode))
            return sg_seterr("cifar: %s is not a regular file (cpu)", paths[i]), NULL;
        if (check_len((size_t)st.st_size, kind, paths[i], &nrec[i]) != 0)
            return NULL;
        total += nrec[i];
    }
    sg_dataset *d = sg_dataset_new(total, 3, 32, 32, cifar_classes(kind, fine), SG_DATA_U8,
                                   name ? name : "cifar");
    if (!d)
        return NULL;
    size_t rb = record_bytes(kind);
    uint8_t *buf = NULL;
    int64_t at = 0;
    for (int i = 0; i < nfiles; i++) {
        size_t len = (size_t)nrec[i] * rb;
        free(buf);
        buf = sg_malloc(len, paths[i]);
        FILE *f = buf ? fopen(paths[i], "rb") : NULL;
        if (!f) {
            if (buf)
                sg_seterr("cifar: cannot open %s: %s (cpu)", paths[i], strerror(errno));
            goto fail;
        }
        size_t got = fread(buf, 1, len, f);
        int rd_err = ferror(f);
        fclose(f);
        if (got != len) {
            sg_seterr("cifar: %s: read %zu of %zu bytes%s (cpu)", paths[i], got, len,
                      rd_err ? " (read error)" : " (the file shrank while reading)");
            goto fail;
        }
        if (decode(d, at, buf, nrec[i], kind, fine, paths[i]) != 0)
            goto fail;
        at += nrec[i];
    }
    free(buf);
    return d;
fail:
    free(buf);
    sg_dataset_release(d);
    return NULL;
}
