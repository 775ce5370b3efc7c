/* h5_testutil.h - helpers shared by the HDF5 safety tests and the h5 fuzz
 * harness: write a small but real checkpoint (weights under PyTorch names,
 * BN buffers, search state, script text, attributes), and load *everything*
 * in a file through the checked API, hashing what was read, so a test can
 * tell "clear error" from "valid data identical to the original". */
#ifndef H5_TESTUTIL_H
#define H5_TESTUTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "h5.h"
#include "rng.h"
#include "tensor.h"

static inline uint64_t h5t_fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Write a checkpoint-like file (atomically) at path. Returns 0 or -1. */
static inline int h5t_write_checkpoint(const char *path, uint64_t seed)
{
    sg_rng r;
    sg_rng_init(&r, seed, 99);
    sg_h5file *f = sg_h5_open_atomic(path, 0);
    if (!f)
        return -1;
    int rc = 0;
    struct { const char *name; int nd; int64_t s[4]; } ws[] = {
        { "conv1.weight", 4, { 16, 3, 3, 3 } },
        { "bn1.weight", 1, { 16 } },
        { "bn1.bias", 1, { 16 } },
        { "bn1.running_mean", 1, { 16 } },
        { "bn1.running_var", 1, { 16 } },
        { "layer1.0.conv1.weight", 4, { 16, 16, 3, 3 } },
        { "linear.weight", 2, { 10, 1024 } },   /* 40 KB: chunked + fletcher32 */
        { "linear.bias", 1, { 10 } },
    };
    for (size_t i = 0; i < sizeof ws / sizeof ws[0] && rc == 0; i++) {
        sg_tensor *t = sg_tensor_new(SG_F32, SG_CPU, ws[i].nd, ws[i].s);
        if (!t)
            return sg_h5_discard(f), -1;
        sg_rng_fill_normal(&r, sg_f32(t), sg_tensor_numel(t), 0.0f, 1.0f);
        rc = sg_h5_write_tensor(f, ws[i].name, t);
        sg_tensor_release(t);
    }
    int64_t nbt = 123;
    double temp = 0.8;
    int64_t epoch = 7, step = 1234;
    uint64_t rng[4] = { seed, 0x9e3779b97f4a7c15ull, 555, 2 };
    int64_t order[3000];
    for (int i = 0; i < 3000; i++)
        order[i] = (i * 7919) % 3000;
    int64_t n4 = 4, n3000 = 3000;
    const char *script = "local sg = require \"sgdsa\"\nreturn { epochs = 3, seed = 1 }\n";
    if (rc == 0) rc = sg_h5_write_array(f, "bn1.num_batches_tracked", SG_H5_I64, 0, NULL, &nbt);
    if (rc == 0) rc = sg_h5_write_array(f, "search/temperature", SG_H5_F64, 0, NULL, &temp);
    if (rc == 0) rc = sg_h5_write_array(f, "search/epoch", SG_H5_I64, 0, NULL, &epoch);
    if (rc == 0) rc = sg_h5_write_array(f, "search/step", SG_H5_I64, 0, NULL, &step);
    if (rc == 0) rc = sg_h5_write_array(f, "search/rng/shuffle", SG_H5_U64, 1, &n4, rng);
    if (rc == 0) rc = sg_h5_write_array(f, "search/data/order", SG_H5_I64, 1, &n3000, order);
    if (rc == 0) rc = sg_h5_write_text(f, "script", script, strlen(script));
    if (rc == 0) rc = sg_h5_attr_set_i64(f, "/", "format_version", SG_H5_FORMAT_VERSION);
    if (rc == 0) rc = sg_h5_attr_set_text(f, "/", "kind", "checkpoint");
    if (rc == 0) rc = sg_h5_attr_set_f64(f, "search", "T0", 1.0);
    if (rc != 0) {
        sg_h5_discard(f);
        return -1;
    }
    return sg_h5_close(f);
}

struct h5t_walk {
    sg_h5file *f;
    uint64_t h;
    int n;
    const char *obj;
};

static inline int h5t_attr_cb(void *ud, const char *name)
{
    struct h5t_walk *w = ud;
    sg_h5_attrval v;
    int rc = sg_h5_attr_get(w->f, w->obj, name, &v);
    if (rc <= 0)
        return rc < 0 ? -1 : sg_seterr("attribute '%s' listed but absent", name);
    w->h = h5t_fnv(w->h, name, strlen(name));
    w->h = h5t_fnv(w->h, &v.kind, sizeof v.kind);
    if (v.kind == SG_H5_ATTR_TEXT)
        w->h = h5t_fnv(w->h, v.text, strlen(v.text));
    else
        w->h = h5t_fnv(w->h, &v.d, sizeof v.d);
    sg_h5_attr_clear(&v);
    return 0;
}

static inline int h5t_ds_cb(void *ud, const char *name, const sg_h5_info *info)
{
    struct h5t_walk *w = ud;
    w->h = h5t_fnv(w->h, name, strlen(name));
    w->n++;
    if (info->type == SG_H5_TEXT) {
        size_t len = 0;
        char *s = sg_h5_read_text(w->f, name, &len);
        if (!s)
            return -1;
        w->h = h5t_fnv(w->h, s, len);
        free(s);
    } else {
        sg_h5_expect e = SG_H5_EXPECT_ANY;
        e.max_bytes = (size_t)64 << 20;
        sg_h5_info in;
        void *buf = sg_h5_read_array(w->f, name, &e, &in);
        if (!buf)
            return -1;
        w->h = h5t_fnv(w->h, &in.type, sizeof in.type);
        w->h = h5t_fnv(w->h, in.size, (size_t)in.ndim * sizeof in.size[0]);
        w->h = h5t_fnv(w->h, buf, (size_t)in.numel * sg_h5_type_size(in.type));
        free(buf);
    }
    w->obj = name;
    return sg_h5_attr_list(w->f, name, h5t_attr_cb, w) < 0 ? -1 : 0;
}

/* Read every dataset and attribute; *digest = hash of all of it. */
static inline int h5t_load_all(const char *path, int flags, uint64_t *digest, int *ndatasets)
{
    sg_h5file *f = sg_h5_open(path, "r", flags);
    if (!f)
        return -1;
    struct h5t_walk w = { f, 0xcbf29ce484222325ull, 0, "/" };
    int rc = sg_h5_attr_list(f, "/", h5t_attr_cb, &w);
    if (rc == 0)
        rc = sg_h5_list(f, "/", h5t_ds_cb, &w);
    if (rc == 0 && sg_h5_exists(f, "search") == 1) {
        w.obj = "search";
        rc = sg_h5_attr_list(f, "search", h5t_attr_cb, &w);
    }
    if (sg_h5_close(f) < 0 && rc == 0)
        rc = -1;
    if (rc == 0) {
        *digest = w.h;
        if (ndatasets)
            *ndatasets = w.n;
    }
    return rc < 0 ? -1 : 0;
}

#endif
