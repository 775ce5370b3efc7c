/*
 * data_set.c - the in-memory dataset: allocation, reference counting, label
 * checks, the first-N limit, the seeded validation split, per-channel
 * statistics and the shape check against a model's input.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "error.h"

size_t sg_dataset_image_bytes(const sg_dataset *d)
{
    size_t px = (size_t)d->c * (size_t)d->h * (size_t)d->w;
    return px * (d->dtype == SG_DATA_F32 ? sizeof(float) : 1);
}

sg_dataset *sg_dataset_new(int64_t n, int c, int h, int w, int classes, sg_data_dtype dt,
                           const char *name)
{
    const char *nm = name ? name : "dataset";
    if (n < 0 || n > SG_DATA_MAXN || c < 1 || c > SG_DATA_MAXC || h < 1 || w < 1 ||
        h > SG_DATA_MAXDIM || w > SG_DATA_MAXDIM || classes < 1)
        return sg_seterr("dataset %s: invalid geometry %lld images of %dx%dx%d, %d classes "
                         "(allowed: at most %lld images, 1..%d channels, sides 1..%d, "
                         "classes >= 1) (cpu)",
                         nm, (long long)n, c, h, w, classes, (long long)SG_DATA_MAXN,
                         SG_DATA_MAXC, SG_DATA_MAXDIM), NULL;
    int64_t px = (int64_t)c * h * w;
    int64_t bytes = px * n * (dt == SG_DATA_F32 ? 4 : 1);
    if (px * n > SG_DATA_MAXBYTES || bytes > SG_DATA_MAXBYTES)
        return sg_seterr("dataset %s: %lld images of %dx%dx%d need %lld bytes, more than "
                         "the limit %lld (cpu)", nm, (long long)n, c, h, w, (long long)bytes,
                         (long long)SG_DATA_MAXBYTES), NULL;
    sg_dataset *d = sg_calloc(1, sizeof *d, "dataset");
    if (!d)
        return NULL;
    d->n = n; d->c = c; d->h = h; d->w = w; d->classes = classes; d->dtype = dt;
    d->refcount = 1;
    snprintf(d->name, sizeof d->name, "%s", nm);
    void *px_mem = sg_malloc((size_t)bytes, "dataset pixels");
    d->labels = sg_malloc((size_t)n * sizeof(int32_t), "dataset labels");
    if (!px_mem || !d->labels) {
        free(px_mem);
        free(d->labels);
        free(d);
        return sg_adderr("dataset %s (%lld images of %dx%dx%d)", nm, (long long)n, c, h, w),
               NULL;
    }
    if (dt == SG_DATA_F32)
        d->f32 = px_mem;
    else
        d->u8 = px_mem;
    return d;
}

void sg_dataset_retain(sg_dataset *d)
{
    if (d)
        d->refcount++;
}

void sg_dataset_release(sg_dataset *d)
{
    if (!d || --d->refcount > 0)
        return;
    free(d->u8);
    free(d->f32);
    free(d->labels);
    free(d);
}

int sg_dataset_check_labels(const sg_dataset *d, const char *what)
{
    for (int64_t i = 0; i < d->n; i++)
        if (d->labels[i] < 0 || d->labels[i] >= d->classes)
            return sg_seterr("%s: label %d of image %lld is out of range [0, %d) (cpu)",
                             what, (int)d->labels[i], (long long)i, d->classes);
    return 0;
}

/* A dataset a loader holds must not change size: the loader sized its
 * permutation and epoch from it (and its prefetch thread may be reading). */
static int check_unshared(const sg_dataset *d, const char *op)
{
    if (d->refcount > 1)
        return sg_seterr("dataset %s: %s while a loader uses it (%s it before making loaders) "
                         "(cpu)", d->name, op, op);
    return 0;
}

int sg_dataset_limit(sg_dataset *d, int64_t n)
{
    if (check_unshared(d, "limit") != 0)
        return -1;
    if (n < 0 || n > d->n)
        return sg_seterr("dataset %s: limit %lld outside [0, %lld] (cpu)", d->name,
                         (long long)n, (long long)d->n);
    d->n = n; /* the arrays keep their capacity; only the count shrinks */
    return 0;
}

sg_dataset *sg_dataset_split(sg_dataset *d, int64_t nval, const sg_rng *r)
{
    if (check_unshared(d, "split") != 0)
        return NULL;
    if (nval < 0 || nval >= d->n)
        return sg_seterr("dataset %s: validation size %lld must lie in [0, %lld) "
                         "(the training set has %lld images) (cpu)", d->name, (long long)nval,
                         (long long)d->n, (long long)d->n), NULL;
    char nm[80];
    snprintf(nm, sizeof nm, "%s (validation)", d->name);
    sg_dataset *v = sg_dataset_new(nval, d->c, d->h, d->w, d->classes, d->dtype, nm);
    int64_t *perm = sg_malloc((size_t)d->n * sizeof *perm, "validation split permutation");
    uint8_t *held = sg_calloc((size_t)d->n, 1, "validation split mask");
    if (!v || !perm || !held) {
        sg_dataset_release(v);
        free(perm);
        free(held);
        return NULL;
    }
    sg_rng g = *r;
    sg_rng_permutation(&g, perm, d->n);
    size_t ib = sg_dataset_image_bytes(d);
    uint8_t *src = d->dtype == SG_DATA_F32 ? (uint8_t *)d->f32 : d->u8;
    uint8_t *dst = v->dtype == SG_DATA_F32 ? (uint8_t *)v->f32 : v->u8;
    for (int64_t i = 0; i < nval; i++) {
        memcpy(dst + (size_t)i * ib, src + (size_t)perm[i] * ib, ib);
        v->labels[i] = d->labels[perm[i]];
        held[perm[i]] = 1;
    }
    int64_t k = 0; /* compact the rest in place, keeping their order */
    for (int64_t i = 0; i < d->n; i++) {
        if (held[i])
            continue;
        if (k != i) {
            memmove(src + (size_t)k * ib, src + (size_t)i * ib, ib);
            d->labels[k] = d->labels[i];
        }
        k++;
    }
    d->n = k;
    free(perm);
    free(held);
    return v;
}

int sg_dataset_stats(const sg_dataset *d, double *mean, double *std)
{
    if (d->n == 0)
        return sg_seterr("dataset %s: cannot compute mean/std of an empty dataset (cpu)",
                         d->name);
    int64_t hw = (int64_t)d->h * d->w;
    double scale = d->dtype == SG_DATA_U8 ? 1.0 / 255.0 : 1.0;
    for (int c = 0; c < d->c; c++) {
        double s = 0, s2 = 0;
        if (d->dtype == SG_DATA_U8) {
            /* exact integer histogram: no rounding drift on 50k images */
            int64_t hist[256] = {0};
            for (int64_t i = 0; i < d->n; i++) {
                const uint8_t *p = d->u8 + ((size_t)i * d->c + c) * hw;
                for (int64_t j = 0; j < hw; j++)
                    hist[p[j]]++;
            }
            for (int v = 0; v < 256; v++) {
                s += (double)hist[v] * v;
                s2 += (double)hist[v] * v * v;
            }
        } else {
            for (int64_t i = 0; i < d->n; i++) {
                const float *p = d->f32 + ((size_t)i * d->c + c) * hw;
                for (int64_t j = 0; j < hw; j++) {
                    s += p[j];
                    s2 += (double)p[j] * p[j];
                }
            }
        }
        double cnt = (double)d->n * (double)hw;
        double m = s / cnt;
        double var = s2 / cnt - m * m;
        mean[c] = m * scale;
        std[c] = sqrt(var > 0 ? var : 0) * scale;
        if (!isfinite(mean[c]) || !isfinite(std[c]))
            return sg_seterr("dataset %s: channel %d has non-finite mean/std (cpu)", d->name, c);
    }
    return 0;
}

int sg_dataset_check_shape(const sg_dataset *d, int pad, int c, int h, int w, const char *who)
{
    /* in 64 bits: pad may be anything an int holds */
    int64_t ho = d->h + 2 * (int64_t)pad, wo = d->w + 2 * (int64_t)pad;
    if (d->c == c && ho == h && wo == w)
        return 0;
    if (pad)
        return sg_seterr("data: %s images are %dx%dx%d (%dx%lldx%lld after padding %d) but %s "
                         "expects %dx%dx%d (cpu)", d->name, d->c, d->h, d->w, d->c, (long long)ho,
                         (long long)wo, pad, who ? who : "the model", c, h, w);
    return sg_seterr("data: %s images are %dx%dx%d but %s expects %dx%dx%d%s (cpu)", d->name,
                     d->c, d->h, d->w, who ? who : "the model", c, h, w,
                     (d->c == c && h >= d->h && w >= d->w && (h - d->h) % 2 == 0 &&
                      h - d->h == w - d->w) ? " (use the pad option)" : "");
}
