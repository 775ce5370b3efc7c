/*
 * test_data_fmnist.c - the real Fashion-MNIST from Debian's
 * dataset-fashion-mnist package (/usr/share/datasets/fashion-mnist, or the
 * directory in $SGDSA_DATA/fashion-mnist): 60,000 training and 10,000 test
 * images of 28x28, 6,000 per class in training and 1,000 in test, the known
 * first labels, pixel sum of the first image and the per-channel statistics
 * (numpy: mean 0.2860406, std 0.3530242). Skips (77) when not installed.
 */
#include <math.h>
#include <sys/stat.h>

#include "data.h"
#include "data_testutil.h"
#include "error.h"

int main(void)
{
    char dir[512] = "/usr/share/datasets/fashion-mnist";
    const char *env = getenv("SGDSA_DATA");
    char tr_i[600], tr_l[600], te_i[600], te_l[600];
    struct stat st;
    if (env) {
        char alt[560];
        snprintf(alt, sizeof alt, "%s/fashion-mnist/train-images-idx3-ubyte.gz", env);
        if (stat(alt, &st) == 0)
            snprintf(dir, sizeof dir, "%s/fashion-mnist", env);
    }
    snprintf(tr_i, sizeof tr_i, "%s/train-images-idx3-ubyte.gz", dir);
    snprintf(tr_l, sizeof tr_l, "%s/train-labels-idx1-ubyte.gz", dir);
    snprintf(te_i, sizeof te_i, "%s/t10k-images-idx3-ubyte.gz", dir);
    snprintf(te_l, sizeof te_l, "%s/t10k-labels-idx1-ubyte.gz", dir);
    if (stat(tr_i, &st) != 0) {
        printf("SKIP test_data_fmnist: %s not found (install the Debian package "
               "dataset-fashion-mnist, or set SGDSA_DATA)\n", tr_i);
        return 77;
    }
    sg_dataset *tr = sg_idx_load(tr_i, tr_l, 10, "fashion-mnist train");
    sg_dataset *te = sg_idx_load(te_i, te_l, 10, "fashion-mnist test");
    CHECK(tr && te, "load: %s", sg_geterr());
    if (!tr || !te)
        return 1;
    CHECK(tr->n == 60000 && te->n == 10000, "sizes %lld %lld", (long long)tr->n,
          (long long)te->n);
    CHECK(tr->c == 1 && tr->h == 28 && tr->w == 28, "shape %dx%dx%d", tr->c, tr->h, tr->w);
    int cnt[10] = {0}, cte[10] = {0};
    for (int64_t i = 0; i < tr->n; i++)
        cnt[tr->labels[i]]++;
    for (int64_t i = 0; i < te->n; i++)
        cte[te->labels[i]]++;
    for (int k = 0; k < 10; k++)
        CHECK(cnt[k] == 6000 && cte[k] == 1000, "class %d: %d train, %d test", k, cnt[k], cte[k]);
    CHECK(tr->labels[0] == 9 && tr->labels[3] == 3 && te->labels[1] == 2,
          "first labels %d %d %d", tr->labels[0], tr->labels[3], te->labels[1]);
    long sum = 0;
    for (int p = 0; p < 784; p++)
        sum += tr->u8[p];
    CHECK(sum == 76247, "pixel sum of image 0: %ld", sum);
    double m, s;
    CHECK(sg_dataset_stats(tr, &m, &s) == 0, "stats: %s", sg_geterr());
    CHECK(fabs(m - 0.2860406) < 1e-6 && fabs(s - 0.3530242) < 1e-6, "mean %.7f std %.7f", m, s);

    /* a full shuffled epoch at batch 128 covers each image once */
    sg_loader_opts o;
    sg_loader_opts_default(&o);
    o.normalize = 1;
    o.mean[0] = m;
    o.std[0] = s;
    o.pad = 2;
    sg_rng r;
    sg_rng_init(&r, 0, sg_rng_hash("shuffle"));
    sg_loader *l = sg_loader_new(tr, &o, &r, NULL);
    CHECK(l != NULL, "loader: %s", sg_geterr());
    sg_batch b;
    int64_t tot = 0, nb = 0;
    int lab[10] = {0};
    double bsum = 0;
    while (l && sg_loader_next(l, &b) == 1) {
        tot += b.n;
        nb++;
        for (int64_t i = 0; i < b.n; i++)
            lab[b.y[i]]++;
        for (int64_t i = 0; i < b.n * 32 * 32; i++)
            bsum += b.x[i];
    }
    CHECK(tot == 60000 && nb == 469, "epoch: %lld images in %lld batches", (long long)tot,
          (long long)nb);
    for (int k = 0; k < 10; k++)
        CHECK(lab[k] == 6000, "epoch class %d: %d", k, lab[k]);
    /* normalized mean over the padded 32x32 images: (784*0 + 240*(-m/s)) / 1024 */
    double want = 240.0 / 1024.0 * (-m / s);
    CHECK(fabs(bsum / (60000.0 * 1024) - want) < 1e-4, "batch mean %g vs %g",
          bsum / (60000.0 * 1024), want);
    sg_loader_free(l);
    sg_dataset_release(tr);
    sg_dataset_release(te);
    return check_done("test_data_fmnist", "ok (60000/10000 images, 6000 per class)");
}
