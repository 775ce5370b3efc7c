/*
 * data_testutil.h - helpers for the data tests: a CHECK macro, a scratch
 * directory, and writers for the IDX (raw or gzip), CIFAR binary and HDF5
 * formats so the tests build their own small files.
 */
#ifndef DATA_TESTUTIL_H
#define DATA_TESTUTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include <hdf5.h>

#include "check.h"
/* the last error message must contain every fragment given */
#define CHECK_ERR(frag) CHECK(strstr(sg_geterr(), (frag)) != NULL, "error '%s' lacks '%s'", sg_geterr(), (frag))

static char tmpdir[256];
static char made[64][320];
static int nmade;

static inline void tmp_init(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sgdsa-data-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        exit(1);
    }
}

static inline const char *tmp_path(const char *name)
{
    if (nmade >= 64) {
        fprintf(stderr, "too many scratch files\n");
        exit(1);
    }
    snprintf(made[nmade], sizeof made[0], "%s/%s", tmpdir, name);
    return made[nmade++];
}

static inline void tmp_cleanup(void)
{
    for (int i = 0; i < nmade; i++)
        unlink(made[i]);
    rmdir(tmpdir);
}

static inline void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

/* An IDX file in memory: magic 0x0800|rank, sizes, data. Caller frees. */
static inline uint8_t *idx_build(int rank, const uint32_t *dims, const uint8_t *data, size_t *len)
{
    size_t n = 1;
    for (int i = 0; i < rank; i++)
        n *= dims[i];
    *len = 4 + 4 * (size_t)rank + n;
    uint8_t *b = malloc(*len);
    put_be32(b, 0x800u | (uint32_t)rank);
    for (int i = 0; i < rank; i++)
        put_be32(b + 4 + 4 * i, dims[i]);
    memcpy(b + 4 + 4 * rank, data, n);
    return b;
}

static inline void write_raw(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, len, f) != len) {
        perror(path);
        exit(1);
    }
    fclose(f);
}

static inline void write_gz(const char *path, const void *buf, size_t len)
{
    gzFile f = gzopen(path, "wb");
    if (!f || gzwrite(f, buf, (unsigned)len) != (int)len) {
        fprintf(stderr, "gzwrite %s failed\n", path);
        exit(1);
    }
    gzclose(f);
}

/* Write an HDF5 dataset (creating groups on the way, e.g. "train/images"). */
static inline void h5_put(hid_t f, const char *name, hid_t type, int rank, const hsize_t *dims,
                   const void *data)
{
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(f, name, type, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    if (d < 0 || H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
        fprintf(stderr, "h5_put %s failed\n", name);
        exit(1);
    }
    H5Dclose(d);
    H5Sclose(sp);
    H5Pclose(lcpl);
}

#endif
