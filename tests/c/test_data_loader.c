/*
 * test_data_loader.c - the batch loader: exact pixel values with padding and
 * normalization; each shuffled epoch is a permutation, reproducible from the
 * seed, different across epochs and seeds, and identical with and without
 * the prefetch thread; drop/keep of the last partial batch; save and restore
 * of the position mid-epoch (with and without the stored order); crop/flip
 * augmentation checked against the source image and reproducible; the
 * pinned-memory allocation hook is used for every batch buffer; raw batches
 * (for the GPU's transform) expand to the plain batches exactly.
 */
#include <math.h>

#include "data.h"
#include "data_testutil.h"
#include "error.h"

enum { N = 37, C = 2, H = 5, W = 6 };

/* image i: pixel p of channel c = (i*31 + c*7 + p*3) % 256; label i % 7 */
static sg_dataset *make_set(void)
{
    sg_dataset *d = sg_dataset_new(N, C, H, W, 7, SG_DATA_U8, "toy");
    for (int i = 0; i < N; i++) {
        d->labels[i] = i % 7;
        for (int c = 0; c < C; c++)
            for (int p = 0; p < H * W; p++)
                d->u8[(i * C + c) * H * W + p] = (uint8_t)((i * 31 + c * 7 + p * 3) % 256);
    }
    return d;
}

static sg_rng stream(uint64_t seed, const char *name)
{
    sg_rng r;
    sg_rng_init(&r, seed, sg_rng_hash(name));
    return r;
}

/* Read a whole epoch: concatenated x and y; returns the number of images. */
static int64_t read_epoch(sg_loader *l, float *x, int32_t *y, int64_t *nbatches, int64_t *last)
{
    int c, h, w;
    sg_loader_shape(l, &c, &h, &w);
    size_t img = (size_t)c * h * w;
    sg_batch b;
    int64_t tot = 0, nb = 0;
    int r;
    while ((r = sg_loader_next(l, &b)) == 1) {
        memcpy(x + tot * img, b.x, (size_t)b.n * img * sizeof(float));
        memcpy(y + tot, b.y, (size_t)b.n * sizeof(int32_t));
        tot += b.n;
        *last = b.n;
        nb++;
    }
    CHECK(r == 0, "next returned %d: %s", r, sg_geterr());
    *nbatches = nb;
    return tot;
}

/* The default options with batches of `batch`. */
static sg_loader_opts opts_batch(int64_t batch)
{
    sg_loader_opts o;
    sg_loader_opts_default(&o);
    o.batch = batch;
    return o;
}

/* Normalization of two channels: (x - m0) / s0 and (x - m1) / s1. */
static void normalize2(sg_loader_opts *o, double m0, double s0, double m1, double s1)
{
    o->normalize = 1;
    o->mean[0] = m0;
    o->std[0] = s0;
    o->mean[1] = m1;
    o->std[1] = s1;
}

static void test_plain(sg_dataset *d)
{
    sg_loader_opts o = opts_batch(8);
    o.shuffle = 0;
    o.pad = 2;
    normalize2(&o, 0.25, 0.5, 0.5, 2.0);
    sg_loader *l = sg_loader_new(d, &o, NULL, NULL);
    CHECK(l != NULL, "loader: %s", sg_geterr());
    if (!l)
        return;
    int c, h, w;
    sg_loader_shape(l, &c, &h, &w);
    CHECK(c == C && h == H + 4 && w == W + 4, "shape %dx%dx%d", c, h, w);
    CHECK(sg_loader_nbatches(l) == 5 && sg_loader_size(l) == N, "keep_last: %lld batches",
          (long long)sg_loader_nbatches(l));
    static float x[N * C * 9 * 10];
    int32_t y[N];
    int64_t nb, last;
    int64_t tot = read_epoch(l, x, y, &nb, &last);
    CHECK(tot == N && nb == 5 && last == 5, "epoch: %lld images, %lld batches, last %lld",
          (long long)tot, (long long)nb, (long long)last);
    int bad = 0;
    for (int i = 0; i < N && !bad; i++) {
        bad |= y[i] != i % 7;
        for (int ch = 0; ch < C; ch++)
            for (int oy = 0; oy < h; oy++)
                for (int ox = 0; ox < w; ox++) {
                    int sy = oy - 2, sx = ox - 2;
                    double v = (sy >= 0 && sy < H && sx >= 0 && sx < W)
                                   ? d->u8[(i * C + ch) * H * W + sy * W + sx] / 255.0 : 0.0;
                    double want = (v - o.mean[ch]) / o.std[ch];
                    float got = x[((size_t)(i * C + ch) * h + oy) * w + ox];
                    if (fabs(got - want) > 1e-6) {
                        fprintf(stderr, "image %d c%d (%d,%d): %g vs %g\n", i, ch, oy, ox, got, want);
                        bad = 1;
                    }
                }
    }
    CHECK(!bad, "padded/normalized pixels or labels wrong");
    /* next epoch without shuffle: the same */
    CHECK(sg_loader_next(l, &(sg_batch){0}) == 0, "past the end gives 0");
    sg_loader_free(l);

    o.drop_last = 1;
    l = sg_loader_new(d, &o, NULL, NULL);
    CHECK(l && sg_loader_nbatches(l) == 4 && sg_loader_size(l) == 32, "drop_last sizes");
    tot = read_epoch(l, x, y, &nb, &last);
    CHECK(tot == 32 && nb == 4 && last == 8, "drop_last epoch %lld %lld %lld", (long long)tot,
          (long long)nb, (long long)last);
    sg_loader_free(l);

    o.batch = 64;
    CHECK(sg_loader_new(d, &o, NULL, NULL) == NULL, "empty drop_last epoch accepted");
    CHECK_ERR("batch 64 is larger than the 37 images");
    o.batch = 8;
    o.std[1] = 0;
    CHECK(sg_loader_new(d, &o, NULL, NULL) == NULL, "std 0 accepted");
    CHECK_ERR("std[1]");
}

/* label i%7 plus image identity: the first pixel of channel 0 is i*31 % 256,
 * unique for i < 37 since 31 is odd and 37 < 256 */
static int image_id(const float *x)
{
    return (int)lrint(x[0] * 255.0);
}

static void test_shuffle(sg_dataset *d)
{
    sg_loader_opts o = opts_batch(5);
    sg_rng sh = stream(7, "shuffle");
    enum { E = 3 };
    size_t img = C * H * W;
    static float x[2][E][N * C * H * W];
    static int32_t y[2][E][N];
    for (int threaded = 0; threaded < 2; threaded++) {
        o.prefetch = threaded ? 3 : 0;
        o.workers = threaded ? 3 : 1; /* several threads per batch: same result */
        sg_loader *l = sg_loader_new(d, &o, &sh, NULL);
        CHECK(l != NULL, "loader: %s", sg_geterr());
        for (int e = 0; e < E; e++) {
            CHECK(sg_loader_start_epoch(l, e) == 0, "start epoch");
            int64_t nb, last;
            CHECK(read_epoch(l, x[threaded][e], y[threaded][e], &nb, &last) == N, "epoch size");
        }
        sg_loader_free(l);
    }
    CHECK(memcmp(x[0], x[1], sizeof x[0]) == 0 && memcmp(y[0], y[1], sizeof y[0]) == 0,
          "prefetch thread changed the batches");
    for (int e = 0; e < E; e++) {
        int seen[N] = {0}, ok = 1;
        for (int i = 0; i < N; i++) {
            int id = image_id(x[0][e] + i * img);
            int idx = -1;
            for (int k = 0; k < N; k++)
                if ((k * 31) % 256 == id)
                    idx = k;
            ok &= idx >= 0 && y[0][e][i] == idx % 7;
            if (idx >= 0)
                seen[idx]++;
        }
        for (int i = 0; i < N; i++)
            ok &= seen[i] == 1;
        CHECK(ok, "epoch %d is not a permutation with matching labels", e);
        int identity = 1;
        for (int i = 0; i < N; i++)
            identity &= image_id(x[0][e] + i * img) == (i * 31) % 256;
        CHECK(!identity, "epoch %d not shuffled", e);
    }
    CHECK(memcmp(y[0][0], y[0][1], sizeof y[0][0]) != 0, "epochs 0 and 1 have the same order");
    /* another seed, another order; the same seed, the same order */
    sg_rng sh2 = stream(8, "shuffle");
    sg_loader *l = sg_loader_new(d, &o, &sh2, NULL);
    static float x2[N * C * H * W];
    int32_t y2[N];
    int64_t nb, last;
    read_epoch(l, x2, y2, &nb, &last);
    CHECK(memcmp(x2, x[0][0], sizeof x2) != 0, "seed 8 gives the order of seed 7");
    sg_loader_free(l);
    /* peek matches the delivered batch */
    l = sg_loader_new(d, &o, &sh, NULL);
    CHECK(sg_loader_peek(l, 2, 10, 5, x2, y2) == 0, "peek: %s", sg_geterr());
    CHECK(memcmp(x2, x[0][2] + 10 * img, 5 * img * sizeof(float)) == 0, "peek differs");
    sg_loader_free(l);
}

static void test_state(sg_dataset *d, int prefetch, int crop, int flip)
{
    sg_loader_opts o = opts_batch(4);
    o.prefetch = prefetch;
    o.workers = prefetch ? 2 : 1;
    o.crop = crop;
    o.flip = flip;
    o.pad = 1;
    sg_rng sh = stream(3, "shuffle"), au = stream(3, "augment");
    sg_loader *a = sg_loader_new(d, &o, &sh, &au);
    CHECK(a != NULL, "loader: %s", sg_geterr());
    if (!a)
        return;
    sg_batch b;
    sg_loader_start_epoch(a, 1);
    for (int k = 0; k < 3; k++)
        sg_loader_next(a, &b);
    int64_t ep, idx, perm[N];
    uint64_t s1[SG_RNG_STATE_LEN], s2[SG_RNG_STATE_LEN];
    sg_loader_get_state(a, &ep, &idx, perm, s1, s2);
    CHECK(ep == 1 && idx == 12, "state epoch %lld index %lld", (long long)ep, (long long)idx);
    /* the rest of this epoch and the whole next one, from the original */
    int c, h, w;
    sg_loader_shape(a, &c, &h, &w);
    size_t img = (size_t)c * h * w;
    static float xa[2 * N * 2 * 7 * 8], xb[2 * N * 2 * 7 * 8];
    int32_t ya[2 * N], yb[2 * N];
    int64_t nb, last, ta, tb;
    ta = read_epoch(a, xa, ya, &nb, &last);
    sg_loader_start_epoch(a, 2);
    ta += read_epoch(a, xa + ta * img, ya + ta, &nb, &last);
    CHECK(ta == (N - 12) + N, "original delivered %lld", (long long)ta);
    sg_loader_free(a);

    for (int with_perm = 0; with_perm < 2; with_perm++) {
        /* a fresh loader from different generators, then the saved state */
        sg_rng wrong = stream(99, "shuffle");
        sg_loader *r = sg_loader_new(d, &o, &wrong, &wrong);
        CHECK(sg_loader_set_state(r, ep, idx, with_perm ? perm : NULL, s1, s2) == 0,
              "set_state: %s", sg_geterr());
        tb = read_epoch(r, xb, yb, &nb, &last);
        sg_loader_start_epoch(r, 2);
        tb += read_epoch(r, xb + tb * img, yb + tb, &nb, &last);
        CHECK(tb == ta && memcmp(xa, xb, (size_t)ta * img * sizeof(float)) == 0 &&
              memcmp(ya, yb, (size_t)ta * sizeof(int32_t)) == 0,
              "restored run differs (prefetch %d crop %d flip %d perm %d)", prefetch, crop, flip,
              with_perm);
        sg_loader_free(r);
    }
    /* bad states are refused with a message */
    sg_loader *r = sg_loader_new(d, &o, &sh, &au);
    perm[3] = perm[4];
    CHECK(sg_loader_set_state(r, 1, 0, perm, s1, s2) != 0, "duplicate in order accepted");
    CHECK_ERR("not a permutation of 37 images");
    CHECK(sg_loader_set_state(r, 1, N + 1, NULL, s1, s2) != 0, "index past end accepted");
    CHECK_ERR("position 38 outside [0, 37]");
    sg_loader_free(r);
}

static void test_augment(sg_dataset *d)
{
    sg_loader_opts o = opts_batch(N);
    o.shuffle = 0;
    o.crop = 2;
    o.flip = 1;
    o.prefetch = 1;
    sg_rng au = stream(11, "augment");
    sg_loader *l = sg_loader_new(d, &o, NULL, &au);
    CHECK(l != NULL, "loader: %s", sg_geterr());
    static float x[N * C * H * W], x2[N * C * H * W];
    int32_t y[N];
    int64_t nb, last;
    read_epoch(l, x, y, &nb, &last);
    /* every output is the source image shifted by (dy, dx) in [-2, 2], maybe
     * mirrored, zero outside; find the transform and count what was used */
    int flips = 0, shifts = 0, unexplained = 0;
    for (int i = 0; i < N; i++) {
        int found = 0;
        for (int f = 0; f < 2 && !found; f++)
            for (int dy = -2; dy <= 2 && !found; dy++)
                for (int dx = -2; dx <= 2 && !found; dx++) {
                    int ok = 1;
                    for (int ch = 0; ch < C && ok; ch++)
                        for (int oy = 0; oy < H && ok; oy++)
                            for (int ox = 0; ox < W && ok; ox++) {
                                int sy = oy + dy, sx = (f ? W - 1 - ox : ox) + dx;
                                double v = (sy >= 0 && sy < H && sx >= 0 && sx < W)
                                    ? d->u8[(i * C + ch) * H * W + sy * W + sx] / 255.0 : 0.0;
                                ok = fabs(x[((size_t)(i * C + ch) * H + oy) * W + ox] - v) < 1e-6;
                            }
                    if (ok) {
                        found = 1;
                        flips += f;
                        shifts += dy != 0 || dx != 0;
                    }
                }
        unexplained += !found;
    }
    CHECK(unexplained == 0, "%d images are not a crop/flip of their source", unexplained);
    CHECK(flips > 5 && flips < N - 5, "flips %d of %d", flips, N);
    CHECK(shifts > N / 2, "shifts %d of %d", shifts, N);
    /* same epoch again: the same augmentation; the next epoch: another */
    sg_loader_start_epoch(l, 0);
    read_epoch(l, x2, y, &nb, &last);
    CHECK(memcmp(x, x2, sizeof x) == 0, "augmentation of epoch 0 not reproducible");
    sg_loader_start_epoch(l, 1);
    read_epoch(l, x2, y, &nb, &last);
    CHECK(memcmp(x, x2, sizeof x) != 0, "epoch 1 repeats epoch 0's augmentation");
    sg_loader_free(l);
    CHECK(sg_loader_new(d, &o, NULL, NULL) == NULL, "augmentation without generator accepted");
}

/* A raw loader (uint8 images, shifts, flips and the lookup table handed out
 * for the GPU) expanded on the host gives the plain loader's batches
 * exactly, threaded or not, short last batch included; its shifts are those
 * the plain loader applied (checked pixel by pixel from the source). */
static void test_raw(sg_dataset *d)
{
    for (int prefetch = 0; prefetch <= 2; prefetch += 2) {
        sg_loader_opts o = opts_batch(10);
        o.pad = 2;
        o.crop = 2;
        o.flip = 1;
        o.prefetch = prefetch;
        normalize2(&o, 0.3, 0.2, 0.6, 0.7);
        sg_rng sh = stream(5, "shuffle"), au = stream(6, "augment");
        sg_loader *p = sg_loader_new(d, &o, &sh, &au);
        o.raw = 1;
        sg_loader *r = sg_loader_new(d, &o, &sh, &au);
        CHECK(p && r, "loaders: %s", sg_geterr());
        if (!p || !r)
            return;
        CHECK(!sg_loader_is_raw(p) && sg_loader_is_raw(r), "raw flags");
        int c, h, w, pad;
        sg_loader_raw_geom(r, &c, &h, &w, &pad);
        CHECK(c == C && h == H && w == W && pad == 2, "raw geometry %dx%dx%d pad %d", c, h, w,
              pad);
        const int Ho = H + 4, Wo = W + 4;
        static float xp[10 * C * (H + 4) * (W + 4)], xr[10 * C * (H + 4) * (W + 4)];
        int bad = 0, batches = 0, images = 0;
        for (int e = 0; e < 2; e++) {
            sg_loader_start_epoch(p, e);
            sg_loader_start_epoch(r, e);
            sg_batch bp, br;
            while (sg_loader_next(p, &bp) == 1) {
                memcpy(xp, bp.x, (size_t)bp.n * C * Ho * Wo * sizeof(float));
                int32_t yp[10];
                memcpy(yp, bp.y, (size_t)bp.n * sizeof(int32_t));
                CHECK(sg_loader_next(r, &br) == 1 && br.n == bp.n && br.x == NULL && br.u8 &&
                      br.aug, "raw batch %d", batches);
                CHECK(br.aug_bytes == 10 * 3 * 4 + (size_t)C * 256 * 4, "aug bytes %zu",
                      br.aug_bytes);
                sg_loader_expand(r, &br, xr);
                bad += memcmp(xp, xr, (size_t)bp.n * C * Ho * Wo * sizeof(float)) != 0;
                bad += memcmp(yp, br.y, (size_t)bp.n * sizeof(int32_t)) != 0;
                const float *lut = (const float *)(br.aug + 30);
                for (int i = 0; i < br.n; i++) {
                    int dy = br.aug[i], dx = br.aug[10 + i], fl = br.aug[20 + i];
                    bad += dy < -2 || dy > 2 || dx < -2 || dx > 2 || (fl != 0 && fl != 1);
                    for (int ch = 0; ch < C; ch++)
                        for (int oy = 0; oy < Ho; oy++)
                            for (int ox = 0; ox < Wo; ox++) {
                                int sy = oy + dy - 2, sx = (fl ? Wo - 1 - ox : ox) + dx - 2;
                                int v = (sy >= 0 && sy < H && sx >= 0 && sx < W)
                                    ? br.u8[((size_t)i * C + ch) * H * W + sy * W + sx] : 0;
                                bad += xp[(((size_t)i * C + ch) * Ho + oy) * Wo + ox] !=
                                       lut[ch * 256 + v];
                            }
                }
                images += (int)bp.n;
                batches++;
            }
            CHECK(sg_loader_next(r, &br) == 0, "raw loader ends with the plain one");
        }
        CHECK(bad == 0 && images == 2 * N && batches == 8, "raw vs plain (prefetch %d): %d "
              "mismatches over %d images in %d batches", prefetch, bad, images, batches);
        float xi[10 * C * (H + 4) * (W + 4)];
        int32_t yi[10];
        int64_t n = 0;
        sg_loader_start_epoch(p, 3);
        sg_loader_start_epoch(r, 3);
        sg_batch bp;
        CHECK(sg_loader_next(p, &bp) == 1 && sg_loader_next_into(r, xi, yi, &n) == 1 &&
              n == bp.n && memcmp(xi, bp.x, (size_t)n * C * Ho * Wo * sizeof(float)) == 0,
              "next_into of a raw loader");
        sg_loader_free(p);
        sg_loader_free(r);
    }
    /* float32 datasets have no raw form: the option is ignored */
    sg_dataset *f = sg_dataset_new(4, 1, 2, 2, 2, SG_DATA_F32, "f32");
    for (int i = 0; i < 16; i++)
        f->f32[i] = (float)i;
    for (int i = 0; i < 4; i++)
        f->labels[i] = i % 2;
    sg_loader_opts o;
    sg_loader_opts_default(&o);
    o.shuffle = 0;
    o.raw = 1;
    sg_loader *l = sg_loader_new(f, &o, NULL, NULL);
    sg_batch b;
    CHECK(l && !sg_loader_is_raw(l) && sg_loader_next(l, &b) == 1 && b.x && !b.u8 &&
          b.x[5] == 5.0f, "raw on float32: %s", sg_geterr());
    sg_loader_free(l);
    sg_dataset_release(f);
}

static int allocs, frees;
static void *count_alloc(size_t n, void *ud)
{
    (*(int *)ud)++;
    allocs++;
    return malloc(n);
}
static void count_free(void *p, void *ud)
{
    frees++;
    free(p);
}

static void test_hook(sg_dataset *d)
{
    sg_loader_opts o;
    sg_loader_opts_default(&o);
    o.shuffle = 0;
    o.prefetch = 2;
    int ud = 0;
    o.alloc = count_alloc;
    o.free = count_free;
    o.alloc_ud = &ud;
    sg_loader *l = sg_loader_new(d, &o, NULL, NULL);
    sg_batch b;
    CHECK(l && sg_loader_next(l, &b) == 1 && b.n == N, "hooked loader: %s", sg_geterr());
    sg_loader_free(l);
    CHECK(allocs == 6 && frees == 6 && ud == 6, "hook: %d allocs, %d frees", allocs, frees);
}

int main(void)
{
    sg_dataset *d = make_set();
    test_plain(d);
    test_raw(d);
    test_shuffle(d);
    for (int p = 0; p <= 2; p += 2) {
        test_state(d, p, 0, 0);
        test_state(d, p, 2, 1);
    }
    test_augment(d);
    test_hook(d);
    sg_dataset_release(d);
    return check_done("test_data_loader", "ok");
}
