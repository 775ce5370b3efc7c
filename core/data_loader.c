/*
 * data_loader.c - the batch loader: per-epoch shuffling, padding, crop/flip
 * augmentation, normalization to float32, and a background thread that
 * produces the next batches while the current one is in use.
 *
 * Determinism (see data.h): the order of epoch e comes from the shuffle
 * generator at counter base + e*2^32; the crop offsets and flip of the sample
 * at position p of epoch e come from the one Philox block at counter
 * base + e*2^32 + p of the augment generator. make_batch() is a pure function
 * of (dataset, options, epoch, perm, positions), so it does not matter which
 * thread runs it or when.
 *
 * Threading: batches are numbered k = 0, 1, ... from the position `pos0`
 * where the epoch was (re)started. Batch k lives in slot k % nslots
 * (nslots = prefetch + 1). The consumer holds the slot of the batch it last
 * received until its next call; the worker may produce batch k only while
 * k < next + nslots - held, so it never writes a slot the consumer reads.
 * Repositioning (new epoch, restored state) bumps `gen` and waits for the
 * worker to finish what it is doing; a batch made for an old generation is
 * discarded. The permutation is only changed while the worker is idle.
 */
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "error.h"

#define MAXSLOTS 9

struct sg_loader {
    sg_dataset *d;
    sg_loader_opts o;
    int c, ho, wo;
    size_t out_px;            /* floats per output image */
    int64_t size;             /* images per epoch */
    sg_rng shuffle, augment;
    int has_shuffle, has_augment;
    float lut[SG_DATA_MAXC][256]; /* uint8 value -> normalized float */
    float a[SG_DATA_MAXC], b[SG_DATA_MAXC]; /* float32 data: a*v + b */
    float fill[SG_DATA_MAXC]; /* normalized value of a zero pixel */

    /* position (guarded by mu when a worker exists) */
    int64_t epoch;
    int64_t pos0;             /* position where batch numbering restarted */
    int64_t next;             /* next batch number the consumer takes */
    int64_t nb;               /* batches from pos0 to the end of the epoch */
    int held;                 /* consumer holds batch next-1 */
    int64_t *perm;            /* order of the current epoch (d->n entries) */
    int shard, nshards;       /* this loader makes slice `shard` of `nshards` of each batch */

    int raw;                  /* slots hold uint8 images and shifts (sg_batch.u8, .aug) */
    int nslots;
    float *sx[MAXSLOTS];
    int32_t *sy[MAXSLOTS];
    uint8_t *su8[MAXSLOTS];
    int32_t *saug[MAXSLOTS];
    int64_t ready[MAXSLOTS];  /* batch number held by the slot, -1 = none */

    int threaded;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t produce;          /* next batch number the worker makes */
    uint64_t gen;
    int busy, stop;
};

void sg_loader_opts_default(sg_loader_opts *o)
{
    memset(o, 0, sizeof *o);
    o->batch = 128;
    o->shuffle = 1;
    o->prefetch = 2;
    for (int c = 0; c < SG_DATA_MAXC; c++)
        o->std[c] = 1.0;
}

/* --- producing a batch (pure) ------------------------------------------------ */
static void aug_draw(const sg_loader *l, int64_t epoch, int64_t pos, int *dy, int *dx, int *flip)
{
    *dy = *dx = *flip = 0;
    if (!l->has_augment)
        return;
    uint32_t w[4];
    uint64_t ctr = l->augment.counter + ((uint64_t)epoch << 32) + (uint64_t)pos;
    sg_philox4x32(ctr, l->augment.seed, l->augment.stream, w);
    if (l->o.crop > 0) {
        uint32_t span = 2u * (uint32_t)l->o.crop + 1u;
        *dy = (int)(w[0] % span) - l->o.crop;
        *dx = (int)(w[1] % span) - l->o.crop;
    }
    if (l->o.flip)
        *flip = (int)(w[2] >> 31);
}

/* One output image from the source image at u8 (uint8) or f32 (float32),
 * c x H x W, shifted by (dy, dx) and flipped. */
static void make_image(const sg_loader *l, const uint8_t *u8, const float *f32, int dy, int dx,
                       int flip, float *out)
{
    const sg_dataset *d = l->d;
    int H = d->h, W = d->w, P = l->o.pad, Ho = l->ho, Wo = l->wo;
    size_t hw = (size_t)H * W;
    for (int c = 0; c < l->c; c++) {
        float *o = out + (size_t)c * Ho * Wo;
        const uint8_t *su8 = u8 ? u8 + (size_t)c * hw : NULL;
        const float *sf = f32 ? f32 + (size_t)c * hw : NULL;
        const float *lut = l->lut[c];
        float a = l->a[c], b = l->b[c], fill = l->fill[c];
        /* output column ox reads source column sx = (flip ? Wo-1-ox : ox) + dx - P */
        int lo, hi; /* output columns whose source column is inside [0, W) */
        if (!flip) {
            lo = P - dx;
            hi = P - dx + W;
        } else {
            lo = Wo - 1 + dx - P - (W - 1);
            hi = Wo + dx - P;
        }
        if (lo < 0) lo = 0;
        if (hi > Wo) hi = Wo;
        for (int oy = 0; oy < Ho; oy++) {
            float *row = o + (size_t)oy * Wo;
            int sy = oy + dy - P;
            if (sy < 0 || sy >= H || lo >= hi) {
                for (int ox = 0; ox < Wo; ox++)
                    row[ox] = fill;
                continue;
            }
            for (int ox = 0; ox < lo; ox++)
                row[ox] = fill;
            for (int ox = hi; ox < Wo; ox++)
                row[ox] = fill;
            if (!flip) {
                int s0 = lo + dx - P;
                if (su8) {
                    const uint8_t *s = su8 + (size_t)sy * W + s0;
                    for (int k = 0; k < hi - lo; k++)
                        row[lo + k] = lut[s[k]];
                } else {
                    const float *s = sf + (size_t)sy * W + s0;
                    for (int k = 0; k < hi - lo; k++)
                        row[lo + k] = a * s[k] + b;
                }
            } else { /* source column of ox is base - ox */
                ptrdiff_t base = (ptrdiff_t)sy * W + (Wo - 1 + dx - P);
                if (su8) {
                    const uint8_t *s = su8 + base;
                    for (int ox = lo; ox < hi; ox++)
                        row[ox] = lut[s[-ox]];
                } else {
                    const float *s = sf + base;
                    for (int ox = lo; ox < hi; ox++)
                        row[ox] = a * s[-ox] + b;
                }
            }
        }
    }
}

static const uint8_t *src_u8(const sg_loader *l, int64_t idx)
{
    return l->d->u8 ? l->d->u8 + (size_t)idx * l->c * l->d->h * l->d->w : NULL;
}

static const float *src_f32(const sg_loader *l, int64_t idx)
{
    return l->d->f32 ? l->d->f32 + (size_t)idx * l->c * l->d->h * l->d->w : NULL;
}

/* Fill y and x with the images at positions [first, first+count) of `epoch`;
 * or, with u8 (raw), the source images gathered in order and their shifts
 * and flips in aug (dy, dx, flip arrays of the loader's batch size). */
static void make_batch(const sg_loader *l, int64_t epoch, const int64_t *perm, int64_t first,
                       int64_t count, float *x, uint8_t *u8, int32_t *aug, int32_t *y)
{
    size_t px = (size_t)l->c * l->d->h * l->d->w;
    int64_t cap = l->o.batch;
    /* images are independent: split them over `workers` threads (the result
     * does not depend on the split) */
#pragma omp parallel for num_threads(l->o.workers > 1 ? l->o.workers : 1) if (l->o.workers > 1 && count > 8) schedule(static)
    for (int64_t j = 0; j < count; j++) {
        int64_t pos = first + j, idx = perm[pos];
        int dy, dx, flip;
        aug_draw(l, epoch, pos, &dy, &dx, &flip);
        y[j] = l->d->labels[idx];
        if (u8) {
            aug[j] = dy;
            aug[cap + j] = dx;
            aug[2 * cap + j] = flip;
            memcpy(u8 + (size_t)j * px, src_u8(l, idx), px);
        } else {
            make_image(l, src_u8(l, idx), src_f32(l, idx), dy, dx, flip,
                       x + (size_t)j * l->out_px);
        }
    }
}

/* A raw slot's aug buffer: dy, dx, flip (batch each), then the lookup table. */
static size_t raw_aug_bytes(const sg_loader *l)
{
    return (size_t)l->o.batch * 3 * sizeof(int32_t) + (size_t)l->c * 256 * sizeof(float);
}

/* This loader's slice of a batch of `count` images: offset *lo, *n images. */
static void shard_range(const sg_loader *l, int64_t count, int64_t *lo, int64_t *n)
{
    *lo = count * l->shard / l->nshards;
    *n = count * (l->shard + 1) / l->nshards - *lo;
}

/* Slot s's batch of positions [first, first+count) (this loader's slice of it). */
static void make_slot(const sg_loader *l, int s, int64_t epoch, int64_t first, int64_t count)
{
    int64_t lo, n;
    shard_range(l, count, &lo, &n);
    make_batch(l, epoch, l->perm, first + lo, n, l->sx[s], l->su8[s], l->saug[s], l->sy[s]);
}

static void fill_batch(const sg_loader *l, int s, int64_t first, int64_t count, sg_batch *b)
{
    int64_t lo, n;
    shard_range(l, count, &lo, &n);
    b->x = l->raw ? NULL : l->sx[s];
    b->y = l->sy[s];
    b->u8 = l->raw ? l->su8[s] : NULL;
    b->aug = l->raw ? l->saug[s] : NULL;
    b->aug_bytes = l->raw ? raw_aug_bytes(l) : 0;
    b->n = n;
    b->total = count;
    b->epoch = l->epoch;
    b->index = first / l->o.batch;
    b->first = first;
}

static void batch_range(const sg_loader *l, int64_t k, int64_t *first, int64_t *count)
{
    *first = l->pos0 + k * l->o.batch;
    int64_t left = l->size - *first;
    *count = left < l->o.batch ? left : l->o.batch;
}

/* --- the worker ---------------------------------------------------------------- */
static void *worker(void *arg)
{
    sg_loader *l = arg;
    pthread_mutex_lock(&l->mu);
    while (!l->stop) {
        int64_t k = l->produce;
        if (k < l->nb && k < l->next + l->nslots - l->held) {
            uint64_t g = l->gen;
            int s = (int)(k % l->nslots);
            int64_t first, count;
            batch_range(l, k, &first, &count);
            int64_t epoch = l->epoch;
            l->produce++;
            l->busy = 1;
            pthread_mutex_unlock(&l->mu);
            make_slot(l, s, epoch, first, count);
            pthread_mutex_lock(&l->mu);
            l->busy = 0;
            if (g == l->gen)
                l->ready[s] = k;
            pthread_cond_broadcast(&l->cv);
        } else {
            pthread_cond_wait(&l->cv, &l->mu);
        }
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

/* --- positioning ----------------------------------------------------------------- */
static void draw_perm(const sg_loader *l, int64_t epoch, int64_t *perm)
{
    if (!l->has_shuffle) {
        for (int64_t i = 0; i < l->d->n; i++)
            perm[i] = i;
        return;
    }
    sg_rng g;
    sg_rng_init(&g, l->shuffle.seed, l->shuffle.stream);
    g.counter = l->shuffle.counter + ((uint64_t)epoch << 32);
    sg_rng_permutation(&g, perm, l->d->n);
}

static int64_t count_batches(const sg_loader *l, int64_t pos0)
{
    int64_t left = l->size - pos0;
    if (left <= 0)
        return 0;
    return l->o.drop_last ? left / l->o.batch : (left + l->o.batch - 1) / l->o.batch;
}

/* Move to (epoch, pos0) with order `perm` (NULL: draw it, unless the epoch is
 * unchanged and `redraw` is 0) and, when given, new generators. The caller
 * checked the arguments. */
static void reposition(sg_loader *l, int64_t epoch, int64_t pos0, const int64_t *perm,
                       int redraw, const sg_rng *sh, const sg_rng *au)
{
    if (l->threaded) {
        pthread_mutex_lock(&l->mu);
        l->gen++;
        while (l->busy)
            pthread_cond_wait(&l->cv, &l->mu);
    }
    if (sh)
        l->shuffle = *sh;
    if (au)
        l->augment = *au;
    if (perm)
        memcpy(l->perm, perm, (size_t)l->d->n * sizeof *perm);
    else if (redraw || epoch != l->epoch)
        draw_perm(l, epoch, l->perm);
    l->epoch = epoch;
    l->pos0 = pos0;
    l->next = 0;
    l->held = 0;
    l->nb = count_batches(l, pos0);
    for (int s = 0; s < l->nslots; s++)
        l->ready[s] = -1;
    if (l->threaded) {
        l->produce = 0;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
    }
}

/* --- construction ------------------------------------------------------------------ */
static void *buf_alloc(const sg_loader_opts *o, size_t n, const char *what)
{
    if (o->alloc) {
        void *p = o->alloc(n, o->alloc_ud);
        if (!p)
            sg_seterr("data loader: the batch allocator failed for %s (%zu bytes) (cpu)", what, n);
        return p;
    }
    return sg_aligned_alloc(n, what);
}

static void buf_free(const sg_loader_opts *o, void *p)
{
    if (!p)
        return;
    if (o->alloc)
        o->free(p, o->alloc_ud);
    else
        free(p);
}

sg_loader *sg_loader_new(sg_dataset *d, const sg_loader_opts *o, const sg_rng *shuffle,
                         const sg_rng *augment)
{
    const char *nm = d ? d->name : "?";
    if (!d || !o)
        return sg_seterr("data loader: no dataset or options (cpu)"), NULL;
    if (o->batch < 1 || o->batch > (1 << 24))
        return sg_seterr("data loader %s: batch size %lld outside [1, %d] (cpu)", nm,
                         (long long)o->batch, 1 << 24), NULL;
    if (o->pad < 0 || o->pad > 4096 || o->crop < 0 || o->crop > 4096)
        return sg_seterr("data loader %s: pad %d and crop %d must lie in [0, 4096] (cpu)", nm,
                         o->pad, o->crop), NULL;
    if (o->workers < 0 || o->workers > 256)
        return sg_seterr("data loader %s: workers %d outside [0, 256] (cpu)", nm, o->workers),
               NULL;
    if (o->prefetch < 0 || o->prefetch > MAXSLOTS - 1)
        return sg_seterr("data loader %s: prefetch %d outside [0, %d] (cpu)", nm, o->prefetch,
                         MAXSLOTS - 1), NULL;
    if ((o->alloc == NULL) != (o->free == NULL))
        return sg_seterr("data loader %s: give both alloc and free hooks, or neither (cpu)",
                         nm), NULL;
    if (o->shuffle && !shuffle)
        return sg_seterr("data loader %s: shuffle needs a generator (cpu)", nm), NULL;
    if ((o->crop || o->flip) && !augment)
        return sg_seterr("data loader %s: augmentation needs a generator (cpu)", nm), NULL;
    if (d->n < 1)
        return sg_seterr("data loader %s: the dataset is empty (cpu)", nm), NULL;
    if (o->drop_last && d->n < o->batch)
        return sg_seterr("data loader %s: batch %lld is larger than the %lld images and "
                         "drop_last is set: every epoch would be empty (cpu)", nm,
                         (long long)o->batch, (long long)d->n), NULL;
    if (o->normalize)
        for (int c = 0; c < d->c; c++)
            if (!(o->std[c] > 0) || o->std[c] != o->std[c] || !(o->mean[c] == o->mean[c]))
                return sg_seterr("data loader %s: normalization std[%d] = %g must be positive "
                                 "(mean %g) (cpu)", nm, c, o->std[c], o->mean[c]), NULL;

    sg_loader *l = sg_calloc(1, sizeof *l, "data loader");
    if (!l)
        return NULL;
    l->d = d;
    sg_dataset_retain(d);
    l->o = *o;
    l->c = d->c;
    l->ho = d->h + 2 * o->pad;
    l->wo = d->w + 2 * o->pad;
    l->out_px = (size_t)l->c * l->ho * l->wo;
    l->size = o->drop_last ? d->n / o->batch * o->batch : d->n;
    l->has_shuffle = o->shuffle != 0;
    l->has_augment = o->crop > 0 || o->flip;
    if (l->has_shuffle)
        l->shuffle = *shuffle;
    if (l->has_augment)
        l->augment = *augment;
    double scale = d->dtype == SG_DATA_U8 ? 1.0 / 255.0 : 1.0;
    for (int c = 0; c < l->c; c++) {
        double m = o->normalize ? o->mean[c] : 0.0, s = o->normalize ? o->std[c] : 1.0;
        for (int v = 0; v < 256; v++)
            l->lut[c][v] = (float)((v * scale - m) / s);
        l->a[c] = (float)(1.0 / s);
        l->b[c] = (float)(-m / s);
        /* uint8: the table's value of a 0 pixel (the GPU's pad value; -0.0f
         * from -m/s when m = 0 would differ in the sign bit) */
        l->fill[c] = d->dtype == SG_DATA_U8 ? l->lut[c][0] : (float)(-m / s);
    }
    l->perm = sg_malloc((size_t)d->n * sizeof *l->perm, "data loader permutation");
    if (!l->perm)
        goto fail;
    l->shard = 0;
    l->nshards = 1;
    l->raw = o->raw && d->dtype == SG_DATA_U8;
    l->nslots = o->prefetch + 1;
    for (int s = 0; s < l->nslots; s++) {
        if (l->raw) {
            l->su8[s] = buf_alloc(o, (size_t)o->batch * l->c * d->h * d->w, "raw batch images");
            l->saug[s] = buf_alloc(o, raw_aug_bytes(l), "batch shifts");
            if (!l->su8[s] || !l->saug[s])
                goto fail;
            memcpy(l->saug[s] + o->batch * 3, l->lut, (size_t)l->c * 256 * sizeof(float));
        } else {
            l->sx[s] = buf_alloc(o, (size_t)o->batch * l->out_px * sizeof(float), "batch images");
            if (!l->sx[s])
                goto fail;
        }
        l->sy[s] = buf_alloc(o, (size_t)o->batch * sizeof(int32_t), "batch labels");
        if (!l->sy[s])
            goto fail;
    }
    reposition(l, 0, 0, NULL, 1, NULL, NULL);
    if (o->prefetch > 0) {
        if (pthread_mutex_init(&l->mu, NULL) != 0)
            goto fail_thread;
        if (pthread_cond_init(&l->cv, NULL) != 0) {
            pthread_mutex_destroy(&l->mu);
            goto fail_thread;
        }
        if (pthread_create(&l->th, NULL, worker, l) != 0) {
            pthread_cond_destroy(&l->cv);
            pthread_mutex_destroy(&l->mu);
            goto fail_thread;
        }
        l->threaded = 1;
    }
    return l;
fail_thread:
    sg_seterr("data loader %s: cannot start the prefetch thread (cpu)", nm);
fail:
    sg_loader_free(l);
    return NULL;
}

void sg_loader_free(sg_loader *l)
{
    if (!l)
        return;
    if (l->threaded) {
        pthread_mutex_lock(&l->mu);
        l->stop = 1;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->th, NULL);
        pthread_cond_destroy(&l->cv);
        pthread_mutex_destroy(&l->mu);
    }
    for (int s = 0; s < MAXSLOTS; s++) {
        buf_free(&l->o, l->sx[s]);
        buf_free(&l->o, l->sy[s]);
        buf_free(&l->o, l->su8[s]);
        buf_free(&l->o, l->saug[s]);
    }
    free(l->perm);
    sg_dataset_release(l->d);
    free(l);
}

/* --- queries --------------------------------------------------------------------------- */
int64_t sg_loader_size(const sg_loader *l) { return l->size; }
int64_t sg_loader_batch(const sg_loader *l) { return l->o.batch; }
int64_t sg_loader_perm_len(const sg_loader *l) { return l->d->n; }
const sg_dataset *sg_loader_dataset(const sg_loader *l) { return l->d; }

int64_t sg_loader_nbatches(const sg_loader *l)
{
    return l->o.drop_last ? l->size / l->o.batch : (l->size + l->o.batch - 1) / l->o.batch;
}

void sg_loader_shape(const sg_loader *l, int *c, int *h, int *w)
{
    *c = l->c;
    *h = l->ho;
    *w = l->wo;
}

/* Images of the epoch delivered (the batch handed out last counted; a dropped
 * tail counts as delivered). Called with the lock held, or without a worker. */
static int64_t delivered(const sg_loader *l)
{
    int64_t idx = l->pos0 + l->next * l->o.batch;
    if (idx > l->size || l->next >= l->nb)
        idx = l->size;
    return idx;
}

int sg_loader_set_shard(sg_loader *l, int rank, int count)
{
    if (count < 1 || rank < 0 || rank >= count)
        return sg_seterr("data loader %s: shard %d of %d: need 0 <= shard < count (cpu)",
                         l->d->name, rank, count);
    if (l->threaded) {
        pthread_mutex_lock(&l->mu);
        l->gen++;
        while (l->busy)
            pthread_cond_wait(&l->cv, &l->mu);
    }
    l->shard = rank;
    l->nshards = count;
    int64_t idx = delivered(l);
    if (l->threaded)
        pthread_mutex_unlock(&l->mu);
    /* batches made for the old slices are dropped and made again */
    reposition(l, l->epoch, idx, NULL, 0, NULL, NULL);
    return 0;
}

/* --- iteration --------------------------------------------------------------------------- */
int sg_loader_start_epoch(sg_loader *l, int64_t epoch)
{
    if (epoch < 0 || epoch >= ((int64_t)1 << 31))
        return sg_seterr("data loader %s: epoch %lld outside [0, 2^31) (cpu)", l->d->name,
                         (long long)epoch);
    reposition(l, epoch, 0, NULL, 0, NULL, NULL);
    return 0;
}

int sg_loader_next(sg_loader *l, sg_batch *b)
{
    if (!l->threaded) {
        if (l->next >= l->nb) {
            l->held = 0;
            return 0;
        }
        int64_t first, count;
        batch_range(l, l->next, &first, &count);
        make_slot(l, 0, l->epoch, first, count);
        fill_batch(l, 0, first, count, b);
        l->next++;
        l->held = 1;
        return 1;
    }
    pthread_mutex_lock(&l->mu);
    l->held = 0; /* the previous batch goes back to the worker */
    pthread_cond_broadcast(&l->cv);
    if (l->next >= l->nb) {
        pthread_mutex_unlock(&l->mu);
        return 0;
    }
    int s = (int)(l->next % l->nslots);
    while (l->ready[s] != l->next)
        pthread_cond_wait(&l->cv, &l->mu);
    int64_t first, count;
    batch_range(l, l->next, &first, &count);
    fill_batch(l, s, first, count, b);
    l->ready[s] = -1;
    l->next++;
    l->held = 1;
    pthread_mutex_unlock(&l->mu);
    return 1;
}

int sg_loader_next_into(sg_loader *l, float *x, int32_t *y, int64_t *n)
{
    sg_batch b;
    int r = sg_loader_next(l, &b);
    if (r <= 0) {
        *n = 0;
        return r;
    }
    sg_loader_expand(l, &b, x);
    memcpy(y, b.y, (size_t)b.n * sizeof(int32_t));
    *n = b.n;
    return 1;
}

int sg_loader_is_raw(const sg_loader *l) { return l->raw; }

void sg_loader_raw_geom(const sg_loader *l, int *c, int *h, int *w, int *pad)
{
    *c = l->c;
    *h = l->d->h;
    *w = l->d->w;
    *pad = l->o.pad;
}

void sg_loader_expand(const sg_loader *l, const sg_batch *b, float *x)
{
    if (!b->u8) {
        memcpy(x, b->x, (size_t)b->n * l->out_px * sizeof(float));
        return;
    }
    size_t px = (size_t)l->c * l->d->h * l->d->w;
    int64_t cap = l->o.batch;
    for (int64_t j = 0; j < b->n; j++)
        make_image(l, b->u8 + (size_t)j * px, NULL, b->aug[j], b->aug[cap + j],
                   b->aug[2 * cap + j], x + (size_t)j * l->out_px);
}

int sg_loader_peek(sg_loader *l, int64_t epoch, int64_t first, int64_t count, float *x,
                   int32_t *y)
{
    if (epoch < 0 || epoch >= ((int64_t)1 << 31) || first < 0 || count < 0 ||
        count > l->size || first > l->size - count) /* (first + count may overflow) */
        return sg_seterr("data loader %s: peek epoch %lld, %lld images from position %lld: "
                         "outside the epoch of %lld images (cpu)", l->d->name, (long long)epoch,
                         (long long)count, (long long)first, (long long)l->size);
    int64_t *perm = sg_malloc((size_t)l->d->n * sizeof *perm, "data loader peek permutation");
    if (!perm)
        return -1;
    draw_perm(l, epoch, perm);
    make_batch(l, epoch, perm, first, count, x, NULL, NULL, y);
    free(perm);
    return 0;
}

/* --- state ------------------------------------------------------------------------------ */
int sg_loader_get_state(const sg_loader *l, int64_t *epoch, int64_t *index, int64_t *perm,
                        uint64_t shuffle[SG_RNG_STATE_LEN], uint64_t augment[SG_RNG_STATE_LEN])
{
    sg_loader *m = (sg_loader *)l; /* the lock is not part of the logical state */
    if (l->threaded)
        pthread_mutex_lock(&m->mu);
    *epoch = l->epoch;
    *index = delivered(l);
    if (perm)
        memcpy(perm, l->perm, (size_t)l->d->n * sizeof *perm);
    if (l->threaded)
        pthread_mutex_unlock(&m->mu);
    memset(shuffle, 0, SG_RNG_STATE_LEN * sizeof *shuffle);
    memset(augment, 0, SG_RNG_STATE_LEN * sizeof *augment);
    if (l->has_shuffle)
        sg_rng_get_state(&l->shuffle, shuffle);
    if (l->has_augment)
        sg_rng_get_state(&l->augment, augment);
    return 0;
}

int sg_loader_set_state(sg_loader *l, int64_t epoch, int64_t index, const int64_t *perm,
                        const uint64_t shuffle[SG_RNG_STATE_LEN],
                        const uint64_t augment[SG_RNG_STATE_LEN])
{
    const char *nm = l->d->name;
    if (epoch < 0 || epoch >= ((int64_t)1 << 31))
        return sg_seterr("data loader %s: restored epoch %lld outside [0, 2^31) (cpu)", nm,
                         (long long)epoch);
    if (index < 0 || index > l->size)
        return sg_seterr("data loader %s: restored position %lld outside [0, %lld] (cpu)", nm,
                         (long long)index, (long long)l->size);
    sg_rng sh = l->shuffle, au = l->augment;
    if (l->has_shuffle && shuffle && sg_rng_set_state(&sh, shuffle) != 0)
        return sg_adderr("data loader %s: restoring the shuffle generator", nm);
    if (l->has_augment && augment && sg_rng_set_state(&au, augment) != 0)
        return sg_adderr("data loader %s: restoring the augment generator", nm);
    if (perm) {
        int64_t n = l->d->n;
        uint8_t *seen = sg_calloc((size_t)n, 1, "data loader state check");
        if (!seen)
            return -1;
        for (int64_t i = 0; i < n; i++) {
            if (perm[i] < 0 || perm[i] >= n || seen[perm[i]]) {
                free(seen);
                return sg_seterr("data loader %s: restored order is not a permutation of "
                                 "%lld images (entry %lld = %lld) (cpu)", nm, (long long)n,
                                 (long long)i, (long long)perm[i]);
            }
            seen[perm[i]] = 1;
        }
        free(seen);
    }
    reposition(l, epoch, index, perm, 1, &sh, &au);
    return 0;
}
