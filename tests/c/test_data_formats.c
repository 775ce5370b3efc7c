/*
 * test_data_formats.c - the dataset parsers on files the test writes itself:
 * IDX (raw and gzip), CIFAR-10/100 binary and user HDF5, each read back and
 * compared pixel by pixel, and every error case (missing file, wrong magic,
 * truncation, trailing bytes, count mismatch, label out of range, wrong
 * layout/type) checked for its message. Also the validation split, the
 * first-N limit, per-channel statistics and the model shape check.
 */
#include <math.h>

#include "data.h"
#include "data_testutil.h"
#include "error.h"

static uint8_t px(int64_t i, int64_t p) { return (uint8_t)((i * 31 + p * 7) % 251); }

static void test_idx(void)
{
    enum { N = 23, H = 5, W = 4 };
    uint8_t img[N * H * W], lab[N];
    for (int i = 0; i < N; i++) {
        lab[i] = (uint8_t)(i % 10);
        for (int p = 0; p < H * W; p++)
            img[i * H * W + p] = px(i, p);
    }
    uint32_t di[3] = {N, H, W}, dl[1] = {N};
    size_t li, ll;
    uint8_t *bi = idx_build(3, di, img, &li), *bl = idx_build(1, dl, lab, &ll);
    const char *pi = tmp_path("img-idx3-ubyte"), *pl = tmp_path("lab-idx1-ubyte");
    const char *gi = tmp_path("img-idx3-ubyte.gz"), *gl = tmp_path("lab-idx1-ubyte.gz");
    write_raw(pi, bi, li);
    write_raw(pl, bl, ll);
    write_gz(gi, bi, li);
    write_gz(gl, bl, ll);

    for (int gz = 0; gz < 2; gz++) {
        sg_dataset *d = sg_idx_load(gz ? gi : pi, gz ? gl : pl, 10, "t");
        CHECK(d != NULL, "idx load (gz %d): %s", gz, sg_geterr());
        if (!d)
            continue;
        CHECK(d->n == N && d->c == 1 && d->h == H && d->w == W && d->classes == 10,
              "geometry %lld %d %d %d %d", (long long)d->n, d->c, d->h, d->w, d->classes);
        CHECK(memcmp(d->u8, img, sizeof img) == 0, "pixels differ (gz %d)", gz);
        int ok = 1;
        for (int i = 0; i < N; i++)
            ok &= d->labels[i] == i % 10;
        CHECK(ok, "labels differ (gz %d)", gz);
        sg_dataset_release(d);
    }

    /* missing file: the message names the path */
    const char *missing = tmp_path("no-such-file.gz");
    CHECK(sg_idx_load(missing, pl, 10, "t") == NULL, "missing file accepted");
    CHECK_ERR(missing);
    CHECK_ERR("cannot open");

    /* wrong magic: labels file given as images */
    CHECK(sg_idx_load(pl, pl, 10, "t") == NULL, "labels as images accepted");
    CHECK_ERR("magic number 0x00000801, expected 0x00000803");

    /* truncated raw and gzip files */
    const char *tr = tmp_path("trunc-idx3-ubyte"), *tg = tmp_path("trunc-idx3-ubyte.gz");
    write_raw(tr, bi, li - 7);
    write_gz(tg, bi, li - 7);
    CHECK(sg_idx_load(tr, pl, 10, "t") == NULL, "truncated raw accepted");
    CHECK_ERR("truncated");
    CHECK_ERR("23 images of 5x4");
    CHECK(sg_idx_load(tg, pl, 10, "t") == NULL, "truncated gz accepted");
    CHECK_ERR("truncated");
    write_raw(tr, bi, 10); /* inside the header */
    CHECK(sg_idx_load(tr, pl, 10, "t") == NULL, "truncated header accepted");
    CHECK_ERR("header");

    /* trailing bytes */
    uint8_t *big = malloc(li + 3);
    memcpy(big, bi, li);
    memset(big + li, 0, 3);
    const char *tb = tmp_path("trail-idx3-ubyte");
    write_raw(tb, big, li + 3);
    CHECK(sg_idx_load(tb, pl, 10, "t") == NULL, "trailing bytes accepted");
    CHECK_ERR("beyond");
    free(big);

    /* count mismatch between images and labels */
    uint32_t dl2[1] = {N - 1};
    size_t ll2;
    uint8_t *bl2 = idx_build(1, dl2, lab, &ll2);
    CHECK(sg_idx_parse_mem(bi, li, bl2, ll2, 10, "t") == NULL, "count mismatch accepted");
    CHECK_ERR("23 images but 22 labels");
    free(bl2);

    /* label out of range */
    lab[5] = 10;
    uint8_t *bl3 = idx_build(1, dl, lab, &ll);
    CHECK(sg_idx_parse_mem(bi, li, bl3, ll, 10, "t") == NULL, "label 10 accepted");
    CHECK_ERR("label 10 of image 5 is out of range [0, 10)");
    free(bl3);

    /* absurd declared sizes are rejected before allocating */
    uint8_t hdr[16];
    put_be32(hdr, 0x803);
    put_be32(hdr + 4, 0x7fffffff);
    put_be32(hdr + 8, 60000);
    put_be32(hdr + 12, 60000);
    CHECK(sg_idx_parse_mem(hdr, 16, bl, ll, 10, "t") == NULL, "huge header accepted");
    CHECK_ERR("declares 2147483647 x 60000 x 60000 bytes of data, more than the limit");
    free(bi);
    free(bl);
}

static uint8_t *cifar_build(int n, int nlab, int first, size_t *len, int bad_label_at)
{
    size_t rb = (size_t)nlab + 3072;
    *len = rb * (size_t)n;
    uint8_t *b = malloc(*len);
    for (int i = 0; i < n; i++) {
        uint8_t *r = b + rb * (size_t)i;
        int g = first + i;
        r[0] = (uint8_t)(nlab == 1 ? g % 10 : g % 20);
        if (nlab == 2)
            r[1] = (uint8_t)(g % 100);
        if (i == bad_label_at)
            r[nlab - 1] = nlab == 1 ? 10 : 100;
        for (int p = 0; p < 3072; p++)
            r[nlab + p] = px(g, p);
    }
    return b;
}

static void test_cifar(void)
{
    size_t l1, l2;
    uint8_t *b1 = cifar_build(7, 1, 0, &l1, -1), *b2 = cifar_build(5, 1, 7, &l2, -1);
    const char *p1 = tmp_path("data_batch_1.bin"), *p2 = tmp_path("data_batch_2.bin");
    write_raw(p1, b1, l1);
    write_raw(p2, b2, l2);
    const char *paths[2] = {p1, p2};
    sg_dataset *d = sg_cifar_load(paths, 2, SG_CIFAR10, 0, "c10");
    CHECK(d != NULL, "cifar10 load: %s", sg_geterr());
    if (d) {
        CHECK(d->n == 12 && d->c == 3 && d->h == 32 && d->w == 32 && d->classes == 10,
              "cifar10 geometry n=%lld", (long long)d->n);
        int ok = 1;
        for (int i = 0; i < 12; i++) {
            ok &= d->labels[i] == i % 10;
            for (int p = 0; p < 3072; p++)
                ok &= d->u8[(size_t)i * 3072 + p] == px(i, p);
        }
        CHECK(ok, "cifar10 contents differ");
        sg_dataset_release(d);
    }
    /* truncated: not a whole number of records */
    const char *pt = tmp_path("data_batch_3.bin");
    write_raw(pt, b1, l1 - 100);
    const char *pp[2] = {p1, pt};
    CHECK(sg_cifar_load(pp, 2, SG_CIFAR10, 0, "c10") == NULL, "truncated cifar accepted");
    CHECK_ERR(pt);
    CHECK_ERR("not a whole number of 3073-byte CIFAR-10 records (6 complete, 2973 bytes left over)");
    /* missing */
    const char *pm = tmp_path("test_batch.bin");
    CHECK(sg_cifar_load(&pm, 1, SG_CIFAR10, 0, "c10") == NULL, "missing cifar accepted");
    CHECK_ERR(pm);
    /* label out of range */
    size_t lb;
    uint8_t *bb = cifar_build(4, 1, 0, &lb, 2);
    CHECK(sg_cifar_parse_mem(bb, lb, SG_CIFAR10, 0, "c10") == NULL, "label 10 accepted");
    CHECK_ERR("record 2 has label 10, outside [0, 10)");
    free(bb);
    /* CIFAR-100: fine and coarse labels */
    size_t l100;
    uint8_t *b100 = cifar_build(6, 2, 0, &l100, -1);
    sg_dataset *fine = sg_cifar_parse_mem(b100, l100, SG_CIFAR100, 1, "c100");
    sg_dataset *coarse = sg_cifar_parse_mem(b100, l100, SG_CIFAR100, 0, "c100");
    CHECK(fine && coarse, "cifar100 parse: %s", sg_geterr());
    if (fine && coarse) {
        CHECK(fine->classes == 100 && coarse->classes == 20, "classes %d %d", fine->classes,
              coarse->classes);
        int ok = 1;
        for (int i = 0; i < 6; i++)
            ok &= fine->labels[i] == i % 100 && coarse->labels[i] == i % 20 &&
                  fine->u8[(size_t)i * 3072 + 11] == px(i, 11);
        CHECK(ok, "cifar100 labels/pixels differ");
    }
    sg_dataset_release(fine);
    sg_dataset_release(coarse);
    /* a CIFAR-10 file read as CIFAR-100 does not divide evenly */
    CHECK(sg_cifar_parse_mem(b1, l1, SG_CIFAR100, 1, "c100") == NULL, "kind mix accepted");
    CHECK_ERR("3074-byte CIFAR-100 records");
    free(b100);
    free(b1);
    free(b2);
}

static void test_hdf5(void)
{
    enum { N = 9, C = 3, H = 4, W = 5 };
    uint8_t nchw[N * C * H * W];
    float nhwc[N * H * W * C];
    int64_t labels[N];
    for (int i = 0; i < N; i++) {
        labels[i] = i % 4;
        for (int c = 0; c < C; c++)
            for (int p = 0; p < H * W; p++) {
                uint8_t v = px(i, c * H * W + p);
                nchw[((i * C + c) * H * W) + p] = v;
                nhwc[(i * H * W + p) * C + c] = v * 0.5f - 3.0f;
            }
    }
    const char *path = tmp_path("user.h5");
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t d4[4] = {N, C, H, W}, d4h[4] = {N, H, W, C}, d1[1] = {N}, d1s[1] = {N - 2};
    h5_put(f, "train/images", H5T_NATIVE_UINT8, 4, d4, nchw);
    h5_put(f, "train/labels", H5T_NATIVE_INT64, 1, d1, labels);
    h5_put(f, "hwc/x", H5T_NATIVE_FLOAT, 4, d4h, nhwc);
    h5_put(f, "hwc/y", H5T_NATIVE_INT64, 1, d1, labels);
    h5_put(f, "short_labels", H5T_NATIVE_INT64, 1, d1s, labels);
    h5_put(f, "float_labels", H5T_NATIVE_FLOAT, 1, d1, nhwc);
    static uint8_t big[2 * 20 * 20 * 3];
    hsize_t db[4] = {2, 20, 20, 3}, db1[1] = {2};
    h5_put(f, "big/x", H5T_NATIVE_UINT8, 4, db, big);
    h5_put(f, "big/y", H5T_NATIVE_INT64, 1, db1, labels);
    H5Fclose(f);

    sg_h5data_opts o = {"train/images", "train/labels", SG_LAYOUT_NCHW, 0};
    sg_dataset *d = sg_h5data_load(path, &o, "h5");
    CHECK(d != NULL, "hdf5 uint8 load: %s", sg_geterr());
    if (d) {
        CHECK(d->n == N && d->c == C && d->h == H && d->w == W && d->classes == 4 &&
              d->dtype == SG_DATA_U8, "hdf5 geometry");
        CHECK(memcmp(d->u8, nchw, sizeof nchw) == 0, "hdf5 uint8 pixels differ");
        CHECK(d->labels[7] == 3, "hdf5 label %d", d->labels[7]);
        sg_dataset_release(d);
    }
    sg_h5data_opts oh = {"hwc/x", "hwc/y", SG_LAYOUT_NHWC, 10};
    d = sg_h5data_load(path, &oh, "h5");
    CHECK(d != NULL, "hdf5 NHWC float load: %s", sg_geterr());
    if (d) {
        CHECK(d->c == C && d->h == H && d->w == W && d->classes == 10 && d->dtype == SG_DATA_F32,
              "hdf5 NHWC geometry");
        int ok = 1;
        for (int i = 0; i < N * C * H * W; i++)
            ok &= d->f32[i] == nchw[i] * 0.5f - 3.0f;
        CHECK(ok, "NHWC -> NCHW transposition wrong");
        sg_dataset_release(d);
    }
    /* refused: each message says what is wrong (and, where it helps, the fix) */
    static const struct {
        sg_h5data_opts o;
        const char *accepted, *err, *err2;
    } bad[] = {
        /* channels-last data declared NCHW: the message suggests the layout */
        {{"big/x", "big/y", SG_LAYOUT_NCHW, 0}, "20 channels accepted",
         "2x20x20x3, read as NCHW with 20 channels", "layout = \"NHWC\""},
        {{"train/imagez", "train/labels", SG_LAYOUT_NCHW, 0}, "missing dataset accepted",
         "no dataset 'train/imagez'", "train/images"},
        {{"nogroup/images", "train/labels", SG_LAYOUT_NCHW, 0}, "missing group accepted",
         "no dataset 'nogroup/images'", NULL},
        {{"train/images", "short_labels", SG_LAYOUT_NCHW, 0}, "count mismatch accepted",
         "9 images in 'train/images' but 7 labels", NULL},
        {{"train/images", "float_labels", SG_LAYOUT_NCHW, 0}, "float labels accepted",
         "must be integers", NULL},
        {{"train/images", "train/labels", SG_LAYOUT_NCHW, 3}, "label 3 with classes 3 accepted",
         "out of range [0, 3)", NULL},
        {{"train/labels", "train/labels", SG_LAYOUT_NCHW, 0}, "int64 images accepted",
         "must be uint8 or floating point", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(sg_h5data_load(path, &bad[i].o, "h5") == NULL, "%s", bad[i].accepted);
        CHECK_ERR(bad[i].err);
        if (bad[i].err2)
            CHECK_ERR(bad[i].err2);
    }
    const char *missing = tmp_path("missing.h5");
    CHECK(sg_h5data_load(missing, &o, "h5") == NULL, "missing file accepted");
    CHECK_ERR(missing);
    const char *junk = tmp_path("junk.h5");
    write_raw(junk, "not an hdf5 file at all", 23);
    CHECK(sg_h5data_load(junk, &o, "h5") == NULL, "junk accepted");
    CHECK_ERR("not an HDF5 file");

    /* the in-memory path (used by the fuzzer) reads the same file */
    FILE *fp = fopen(path, "rb");
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *img = malloc((size_t)len);
    CHECK(fread(img, 1, (size_t)len, fp) == (size_t)len, "read back");
    fclose(fp);
    d = sg_h5data_load_image(img, (size_t)len, &o, "mem");
    CHECK(d && memcmp(d->u8, nchw, sizeof nchw) == 0, "hdf5 image load: %s", sg_geterr());
    sg_dataset_release(d);
    CHECK(sg_h5data_load_image(img, 100, &o, "mem") == NULL, "truncated image accepted");
    free(img);
}

static void test_split_stats_shape(void)
{
    sg_dataset *d = sg_dataset_new(100, 2, 3, 3, 5, SG_DATA_U8, "s");
    CHECK(d != NULL, "new: %s", sg_geterr());
    for (int i = 0; i < 100; i++) {
        d->labels[i] = i % 5;
        for (int p = 0; p < 18; p++)
            d->u8[i * 18 + p] = (uint8_t)(p == 0 ? i : px(i, p));
    }
    double mean[2], std[2];
    CHECK(sg_dataset_stats(d, mean, std) == 0, "stats: %s", sg_geterr());
    for (int c = 0; c < 2; c++) { /* naive two-pass reference */
        double s = 0, s2 = 0;
        for (int i = 0; i < 100; i++)
            for (int p = 0; p < 9; p++)
                s += d->u8[i * 18 + c * 9 + p] / 255.0;
        double m = s / 900;
        for (int i = 0; i < 100; i++)
            for (int p = 0; p < 9; p++) {
                double v = d->u8[i * 18 + c * 9 + p] / 255.0 - m;
                s2 += v * v;
            }
        CHECK(fabs(mean[c] - m) < 1e-12 && fabs(std[c] - sqrt(s2 / 900)) < 1e-9,
              "stats channel %d: %g %g vs %g %g", c, mean[c], std[c], m, sqrt(s2 / 900));
    }

    sg_rng r;
    sg_rng_init(&r, 42, sg_rng_hash("validation"));
    sg_dataset *a = sg_dataset_new(100, 2, 3, 3, 5, SG_DATA_U8, "a");
    memcpy(a->u8, d->u8, 1800);
    memcpy(a->labels, d->labels, 400);
    sg_dataset *va = sg_dataset_split(a, 30, &r);
    sg_dataset *vd = sg_dataset_split(d, 30, &r);
    CHECK(va && vd, "split: %s", sg_geterr());
    if (va && vd) {
        CHECK(a->n == 70 && va->n == 30, "split sizes %lld %lld", (long long)a->n,
              (long long)va->n);
        CHECK(memcmp(va->u8, vd->u8, 30 * 18) == 0, "same seed, different split");
        int seen[100] = {0}, ok = 1, ordered = 1;
        for (int i = 0; i < 70; i++) {
            seen[a->u8[i * 18]]++;
            ok &= a->labels[i] == a->u8[i * 18] % 5;
            if (i)
                ordered &= a->u8[i * 18] > a->u8[(i - 1) * 18];
        }
        for (int i = 0; i < 30; i++) {
            seen[va->u8[i * 18]]++;
            ok &= va->labels[i] == va->u8[i * 18] % 5 &&
                  va->u8[i * 18 + 5] == px(va->u8[i * 18], 5);
        }
        for (int i = 0; i < 100; i++)
            ok &= seen[i] == 1;
        CHECK(ok, "split is not a partition with matching labels");
        CHECK(ordered, "training part lost its order");
        sg_rng r2;
        sg_rng_init(&r2, 43, sg_rng_hash("validation"));
        sg_dataset *b = sg_dataset_new(100, 2, 3, 3, 5, SG_DATA_U8, "b");
        memcpy(b->u8, d->u8, 1800);
        memcpy(b->labels, d->labels, 400);
        sg_dataset_limit(b, 100);
        sg_dataset *vb = sg_dataset_split(b, 30, &r2);
        CHECK(vb && memcmp(vb->u8, va->u8, 30 * 18) != 0, "another seed, same split");
        sg_dataset_release(vb);
        sg_dataset_release(b);
    }
    CHECK(sg_dataset_split(a, 70, &r) == NULL, "split of everything accepted");
    CHECK_ERR("validation size 70");
    CHECK(sg_dataset_limit(a, 10) == 0 && a->n == 10, "limit");
    CHECK(sg_dataset_limit(a, 11) != 0, "limit beyond size accepted");

    CHECK(sg_dataset_check_shape(d, 0, 2, 3, 3, "mlp") == 0, "shape ok");
    CHECK(sg_dataset_check_shape(d, 1, 2, 3, 3, "lenet") != 0, "shape mismatch accepted");
    CHECK_ERR("2x3x3 (2x5x5 after padding 1) but lenet expects 2x3x3");
    CHECK(sg_dataset_check_shape(d, 0, 2, 5, 5, "resnet") != 0, "shape mismatch accepted");
    CHECK_ERR("use the pad option");
    sg_dataset_release(va);
    sg_dataset_release(vd);
    sg_dataset_release(a);
    sg_dataset_release(d);
}

int main(void)
{
    tmp_init();
    test_idx();
    test_cifar();
    test_hdf5();
    test_split_stats_shape();
    tmp_cleanup();
    return check_done("test_data_formats", "ok");
}
