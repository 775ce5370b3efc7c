/*
 * data.h - in-memory image datasets and the batch loader (no Lua here).
 *
 * A dataset holds N images of C x H x W pixels (uint8, or float32 for user
 * HDF5 data), one int32 label per image and the number of classes. Loaders
 * for the standard formats check every size they read before allocating and
 * return NULL with a message naming the path tried and how to get the data:
 *
 *   IDX (MNIST, Fashion-MNIST; raw or .gz)   sg_idx_load / sg_idx_parse_mem
 *   CIFAR-10 / CIFAR-100 binary               sg_cifar_load / sg_cifar_parse_mem
 *   user HDF5 files                           sg_h5data_load / sg_h5data_load_image
 *
 * The *_mem / *_image variants parse a buffer (used by the fuzz harnesses).
 *
 * A loader turns a dataset into float32 batches N x C x Ho x Wo (Ho = H + 2*pad)
 * plus int32 labels. Pixel value v becomes ((v * scale) - mean[c]) / std[c]
 * where scale is 1/255 for uint8 images and 1 for float32 images; zero padding
 * and the area uncovered by a random crop are raw zeros (black) before
 * normalization, as in torchvision's Pad/RandomCrop followed by Normalize.
 *
 * Determinism: the order of epoch e is the permutation drawn from the shuffle
 * generator at counter base + e * 2^32; the augmentation of the sample at
 * position p of epoch e uses the single Philox block at counter
 * base + e * 2^32 + p of the augment generator. So a batch depends only on
 * (seed, epoch, position), never on thread timing, and any position can be
 * restored exactly from (epoch, index) and the two generator states.
 */
#ifndef SG_DATA_H
#define SG_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "rng.h"

#include "api.h"

SG_API_BEGIN

#define SG_DATA_MAXC 16               /* most channels a dataset may have */
#define SG_DATA_MAXDIM 65536          /* largest H or W accepted from a file */
#define SG_DATA_MAXN ((int64_t)1 << 31) /* most images accepted from a file */
#define SG_DATA_MAXBYTES ((int64_t)1 << 36) /* largest pixel block (64 GiB) */

typedef enum { SG_DATA_U8 = 0, SG_DATA_F32 = 1 } sg_data_dtype;

typedef struct sg_dataset {
    int64_t n;            /* images */
    int c, h, w;          /* channels, height, width */
    int classes;          /* labels lie in [0, classes) */
    sg_data_dtype dtype;
    uint8_t *u8;          /* n*c*h*w pixels, image-major, CHW (dtype U8) */
    float *f32;           /* same for dtype F32 */
    int32_t *labels;      /* n */
    char name[64];        /* "fashion-mnist train", ... (for messages) */
    int refcount;
} sg_dataset;

/* --- datasets --------------------------------------------------------------- */
/* New dataset with uninitialized pixels and labels (refcount 1). */
sg_dataset *sg_dataset_new(int64_t n, int c, int h, int w, int classes, sg_data_dtype dt,
                           const char *name);
void sg_dataset_retain(sg_dataset *d);
void sg_dataset_release(sg_dataset *d);
size_t sg_dataset_image_bytes(const sg_dataset *d);  /* bytes of one image */
/* Check every label lies in [0, classes). */
int sg_dataset_check_labels(const sg_dataset *d, const char *what);
/* Keep only the first n images (n <= size). Limit and split are errors on a
 * dataset a loader holds (made before any loader). */
int sg_dataset_limit(sg_dataset *d, int64_t n);
/* Hold out `nval` images chosen by a permutation drawn from `r` (a copy is
 * used; `r` is not advanced). `d` keeps the rest in its original order; the
 * held-out images, in permutation order, are returned as a new dataset. */
sg_dataset *sg_dataset_split(sg_dataset *d, int64_t nval, const sg_rng *r);
/* Per-channel mean and standard deviation of the scaled pixels (v/255 for
 * uint8), over the whole dataset (population std). */
int sg_dataset_stats(const sg_dataset *d, double *mean, double *std);
/* Error unless images (after `pad` on each side) are c x h x w; the message
 * names both shapes and `who` (e.g. the model). */
int sg_dataset_check_shape(const sg_dataset *d, int pad, int c, int h, int w, const char *who);

/* --- IDX (MNIST / Fashion-MNIST) ---------------------------------------------- */
/* Load an images file (magic 0x00000803, N x H x W uint8) and a labels file
 * (magic 0x00000801, N uint8), raw or gzip. classes: labels must be below it. */
sg_dataset *sg_idx_load(const char *images_path, const char *labels_path, int classes,
                        const char *name);
sg_dataset *sg_idx_parse_mem(const void *images, size_t images_len, const void *labels,
                             size_t labels_len, int classes, const char *name);

/* --- CIFAR binary --------------------------------------------------------------- */
typedef enum { SG_CIFAR10 = 0, SG_CIFAR100 = 1 } sg_cifar_kind;
/* Load and concatenate `nfiles` binary files. CIFAR-10 records are 1 label
 * byte + 3072 pixel bytes; CIFAR-100 records are coarse, fine label bytes +
 * 3072 bytes, and `fine` picks the label (100 fine or 20 coarse classes). */
sg_dataset *sg_cifar_load(const char *const *paths, int nfiles, sg_cifar_kind kind, int fine,
                          const char *name);
sg_dataset *sg_cifar_parse_mem(const void *buf, size_t len, sg_cifar_kind kind, int fine,
                               const char *name);

/* --- user HDF5 -------------------------------------------------------------------- */
typedef enum { SG_LAYOUT_NCHW = 0, SG_LAYOUT_NHWC = 1 } sg_layout;
typedef struct sg_h5data_opts {
    const char *images;   /* dataset path in the file, e.g. "train/images" */
    const char *labels;   /* e.g. "train/labels" */
    sg_layout layout;     /* of a rank-4 images dataset; rank 3 means N x H x W */
    int classes;          /* > 0: labels must be below it; 0: max label + 1 */
} sg_h5data_opts;
sg_dataset *sg_h5data_load(const char *path, const sg_h5data_opts *o, const char *name);
/* Same from an HDF5 file image in memory. */
sg_dataset *sg_h5data_load_image(const void *buf, size_t len, const sg_h5data_opts *o,
                                 const char *name);

/* --- loader ------------------------------------------------------------------------ */
/* Allocator for the batch buffers (the CUDA backend passes cudaHostAlloc-based
 * ones so batches are handed over in pinned memory). NULL = aligned malloc. */
typedef void *(*sg_host_alloc_fn)(size_t nbytes, void *ud);
typedef void (*sg_host_free_fn)(void *p, void *ud);

typedef struct sg_loader_opts {
    int64_t batch;        /* images per batch (> 0) */
    int shuffle;          /* permute every epoch */
    int drop_last;        /* 1: drop the last partial batch; 0: deliver it */
    int pad;              /* zero padding on each side (28 -> 32: pad = 2) */
    int crop;             /* augmentation: random shift in [-crop, crop] (0 = off) */
    int flip;             /* augmentation: horizontal flip with probability 1/2 */
    int normalize;        /* use mean/std below (else mean 0, std 1) */
    double mean[SG_DATA_MAXC], std[SG_DATA_MAXC];
    int prefetch;         /* batches produced ahead by a background thread; 0 = none */
    int workers;          /* threads making one batch (OpenMP; 0 or 1 = one). On a
                             CPU run they compete with the compute threads; on
                             a GPU run 2-4 keep large augmented batches ahead */
    int raw;              /* uint8 datasets: batches hold the source images and each
                             image's shift and flip (sg_batch.u8, .aug) instead of
                             floats, for the transform to run on the GPU
                             (sg_loader_expand on the host); ignored for float32 */
    sg_host_alloc_fn alloc;
    sg_host_free_fn free;
    void *alloc_ud;
} sg_loader_opts;

/* Defaults: batch 128, shuffle on, keep last, no pad, no augmentation, no
 * normalization, prefetch 2, malloc. */
void sg_loader_opts_default(sg_loader_opts *o);

typedef struct sg_loader sg_loader;

typedef struct sg_batch {
    const float *x;       /* n x c x ho x wo; NULL from a raw loader */
    const int32_t *y;     /* n */
    const uint8_t *u8;    /* raw loaders: n x c x h x w source images, else NULL */
    const int32_t *aug;   /* raw loaders: dy[batch] dx[batch] flip[batch] (batch =
                             the loader's batch size; the first n of each are used),
                             then the lookup table: c x 256 floats, the normalized
                             value of each uint8 pixel (lut[ch*256] outside the
                             source). Output (oy, ox) of image i reads source row
                             oy + dy[i] - pad, column (flip[i] ? wo-1-ox : ox) + dx[i] - pad */
    size_t aug_bytes;     /* of aug and the table together (one copy to the GPU) */
    int64_t n;            /* images in this batch (the last may be short); of a
                             sharded loader, this rank's share of them */
    int64_t total;        /* images of the whole batch (all shards; = n unsharded) */
    int64_t epoch;
    int64_t index;        /* batch number within the epoch */
    int64_t first;        /* position of the whole batch's first image within the epoch */
} sg_batch;

/* The loader retains `d` and copies the generators (which are not advanced).
 * `augment` may be NULL when crop == 0 and flip == 0; `shuffle` may be NULL
 * when shuffle == 0. The loader starts at epoch 0, position 0. */
sg_loader *sg_loader_new(sg_dataset *d, const sg_loader_opts *o, const sg_rng *shuffle,
                         const sg_rng *augment);
void sg_loader_free(sg_loader *l);   /* joins the thread; NULL is fine */

int64_t sg_loader_size(const sg_loader *l);      /* images per epoch (after drop_last) */
int64_t sg_loader_nbatches(const sg_loader *l);
int64_t sg_loader_batch(const sg_loader *l);
void sg_loader_shape(const sg_loader *l, int *c, int *h, int *w); /* of one output image */
const sg_dataset *sg_loader_dataset(const sg_loader *l);

/* Data-parallel runs: shard `rank` of `count` (0 <= rank < count). Every
 * batch of n images (positions [first, first+n) of the epoch's order, as
 * unsharded) is cut into `count` contiguous slices, slice r being positions
 * [first + n*r/count, first + n*(r+1)/count), and this loader makes only
 * slice `rank` (sg_batch.n; .total = n). Ranks with the same generators
 * walk the same order and together make every batch exactly once. Epoch
 * size, batch numbering, positions and the state stay those of the whole
 * batches, so a checkpoint's position holds for any rank count. The loader
 * stays where it is; batches made ahead are made again. count = 1: unsharded. */
int sg_loader_set_shard(sg_loader *l, int rank, int count);
/* Go to the start of epoch `epoch` (>= 0). */
int sg_loader_start_epoch(sg_loader *l, int64_t epoch);
/* Next batch of the current epoch: 1 and *b filled (buffers valid until the
 * next call on this loader), 0 at the end of the epoch, -1 on error. */
int sg_loader_next(sg_loader *l, sg_batch *b);
/* Same, copying into caller buffers (x: batch*c*ho*wo floats, y: batch; a raw
 * loader's batch is expanded); *n as sg_batch.n. */
int sg_loader_next_into(sg_loader *l, float *x, int32_t *y, int64_t *n);
/* Raw loaders (opts.raw on a uint8 dataset): 1, else 0. The geometry of the
 * transform: channels, source height and width, padding. */
int sg_loader_is_raw(const sg_loader *l);
void sg_loader_raw_geom(const sg_loader *l, int *c, int *h, int *w, int *pad);
/* The float images of batch b (n x c x ho x wo) into x, on the host: a copy,
 * or, from a raw batch, exactly what the same loader without raw would have
 * made. */
void sg_loader_expand(const sg_loader *l, const sg_batch *b, float *x);
/* Produce the batch covering positions [first, first+count) of `epoch`
 * synchronously, without touching the loader's position (tests, debugging). */
int sg_loader_peek(sg_loader *l, int64_t epoch, int64_t first, int64_t count, float *x,
                   int32_t *y);

/* The position: epoch, index (images of the epoch already delivered), the
 * epoch's order (perm: perm_len() entries, the dataset's n; NULL to skip) and the
 * two generator states (as given at creation; zeros when absent). */
int sg_loader_get_state(const sg_loader *l, int64_t *epoch, int64_t *index, int64_t *perm,
                        uint64_t shuffle[SG_RNG_STATE_LEN], uint64_t augment[SG_RNG_STATE_LEN]);
/* Restore a position. perm may be NULL (recomputed from the shuffle state);
 * when given it must be a permutation of the dataset's n images. */
int sg_loader_set_state(sg_loader *l, int64_t epoch, int64_t index, const int64_t *perm,
                        const uint64_t shuffle[SG_RNG_STATE_LEN],
                        const uint64_t augment[SG_RNG_STATE_LEN]);
int64_t sg_loader_perm_len(const sg_loader *l);   /* n of the dataset */

SG_API_END

#endif
