/*
 * test_cuda_layers.c - every op of the op table (op_table.h) on every other
 * registered backend (cuda) against the CPU on the same inputs: each case's
 * outputs, gradients (which must ACCUMULATE into their non-zero start) and
 * updated state (left bitwise untouched where the CPU leaves it, as the SA
 * trial forward's running statistics), with the entry's tolerances; cases
 * flagged so run again in deterministic mode or with the int64 index
 * arithmetic of tensors above 2^31 elements. Then what the table does not
 * cover: batch normalization's fused backward, the dropout masks drawn on
 * the device from the CPU's generator state, and the cross-entropy's loss
 * read back later and its bad-label error. Skips visibly (exit 77) without
 * a GPU.
 */
#include "cuda_testutil.h"

#ifdef SG_HAVE_CUDA
#include "op_table.h"

/* t (any device) as a new cpu tensor. */
static sg_tensor *on_cpu(const sg_tensor *t)
{
    sg_tensor *h = ot_new(t->dtype, t->ndim, t->size);
    OK(sg_copy(h, t));
    return h;
}

/* One case of op on dev against the cpu. */
static void dev_case(const ot_op *op, const ot_params *a, sg_devtype dev)
{
    ot_case h, d;
    ot_init(&h, op, a);
    op->make(&h, &g_rng, OT_FOR_DEV);
    ot_outputs(&h, OT_START_RANDOM, &g_rng);
    ot_clone(&d, &h, dev);
    sg_tensor *before[OT_NSLOT] = { NULL };
    for (int i = 0; i < op->nslot; i++)
        if (op->slot[i].role == OT_INOUT && h.t[i])
            before[i] = on_cpu(h.t[i]);
    char label[200], what[260];
    ot_label(label, sizeof label, &h);
    snprintf(what, sizeof what, "%s%s%s (%s)", label, a->opts & OT_DET ? " deterministic" : "",
             a->opts & OT_IDX64 ? " int64 indices" : "", sg_device_name(dev));
    sg_cuda_set_deterministic(!!(a->opts & OT_DET));
    int rc_h = ot_run(&h);
    CHECK(rc_h == 0, "%s on the cpu: %s", what, sg_geterr());
    int rc_d = ot_run(&d);
    CHECK(rc_d == 0, "%s: %s", what, sg_geterr());
    sg_cuda_set_deterministic(0);
    for (int i = 0; i < op->nslot && rc_h == 0 && rc_d == 0; i++) {
        const ot_slot *s = &op->slot[i];
        if (s->role == OT_IN || s->role == OT_OPT_IN || s->tol_dev < 0 || !h.t[i])
            continue;
        char w[300];
        snprintf(w, sizeof w, "%s %s%s", what, s->name, s->role == OT_ACC ? " (+=)" : "");
        sg_tensor *g = on_cpu(d.t[i]);
        const int64_t n = sg_tensor_numel(h.t[i]);
        CHECK(sg_tensor_numel(g) == n, "%s: %lld elements, the cpu %lld", w,
              (long long)sg_tensor_numel(g), (long long)n);
        if (sg_tensor_numel(g) == n && s->dt == SG_I32)
            cmp_i32(w, sg_tensor_data(g), sg_tensor_data(h.t[i]), n);
        else if (sg_tensor_numel(g) == n)
            cmp_rel(w, sg_f32(g), sg_f32(h.t[i]), n, s->tol_dev);
        if (before[i] && !memcmp(sg_f32(before[i]), sg_f32(h.t[i]), (size_t)n * 4))
            CHECK(!memcmp(sg_f32(before[i]), sg_f32(g), (size_t)n * 4),
                  "%s: the cpu left it untouched, the device changed it", w);
        sg_tensor_release(g);
    }
    /* a loss op's value, in double; the NaN-row variant's is NaN */
    if (op->y < 0 && rc_h == 0 && rc_d == 0)
        CHECK(a->variant ? isnan(h.loss) && isnan(d.loss)
                         : fabs(d.loss - h.loss) <= 1e-6 * fabs(h.loss) + 1e-9,
              "%s: loss %.12g, the cpu %.12g", what, d.loss, h.loss);
    for (int i = 0; i < OT_NSLOT; i++)
        sg_tensor_release(before[i]);
    ot_free(&h);
    ot_free(&d);
}

/* Every case of every op on every registered backend but the cpu; the
 * flagged ones again with int64 index arithmetic. Returns the cases run. */
static int all_ops(void)
{
    int ncases = 0;
    for (int dev = SG_CPU + 1; dev <= SG_CUDA; dev++) {
        if (!sg_backend_get((sg_devtype)dev)) {
            printf("no %s backend registered: skipping its op checks\n",
                   sg_device_name((sg_devtype)dev));
            continue;
        }
        for (int i = 0; i < OT_NOPS; i++)
            for (int j = 0; j < ot_ops[i].ndev_cases; j++, ncases++) {
                ot_params a = ot_ops[i].dev_cases[j];
                const unsigned opts = a.opts;
                a.opts &= ~(unsigned)OT_IDX64;
                dev_case(&ot_ops[i], &a, (sg_devtype)dev);
                if (opts & OT_IDX64) {
                    a.opts |= OT_IDX64;
                    sg_cuda_set_index64(1);
                    dev_case(&ot_ops[i], &a, (sg_devtype)dev);
                    sg_cuda_set_index64(0);
                    ncases++;
                }
            }
    }
    return ncases;
}

/* ---- batchnorm's fused backward -----------------------------------------------------
 * The modules' backward: one call that accumulates dgamma and dbeta itself
 * (cuDNN's betaParamDiff = 1), against the two passes (dx, and the separate
 * parameter-gradient reduction); without dx: the parameter gradients alone,
 * added again. */
static void test_bn_fused(const ot_params *a)
{
    const ot_op *op = ot_find("batchnorm (training)");
    ot_case h, d;
    ot_init(&h, op, a);
    op->make(&h, &g_rng, OT_FOR_DEV);
    ot_outputs(&h, OT_START_RANDOM, &g_rng);
    ot_clone(&d, &h, SG_CUDA);
    sg_tensor **t = d.t;
    char tag[160];
    ot_label(tag, sizeof tag, &d);
    OK(ot_run(&d));
    sg_tensor *dx2 = sg_tensor_new(SG_F32, SG_CUDA, t[BN_X]->ndim, t[BN_X]->size);
    sg_tensor *dg2 = NULL, *db2 = NULL;
    OK(sg_fill(dx2, 9.0));
    if (a->flag) {
        dg2 = sg_tensor_new(SG_F32, SG_CUDA, 1, &a->d[1]);
        db2 = sg_tensor_new(SG_F32, SG_CUDA, 1, &a->d[1]);
        OK(sg_copy(dg2, h.t[BN_DG]));
        OK(sg_copy(db2, h.t[BN_DB]));
    }
    OK(sg_batchnorm_backward(t[BN_X], t[BN_DY], dx2, t[BN_G], dg2, db2, t[BN_SM], t[BN_SI], 1));
    char w[220];
    float *sep = down_f(sg_f32(t[BN_DX]), sg_tensor_numel(dx2));
    snprintf(w, sizeof w, "%s backward dx = bwd-data", tag);
    cmp_dev(w, sg_f32(dx2), sep, sg_tensor_numel(dx2), 1e-6);
    free(sep);
    if (a->flag) {
        const int64_t c = a->d[1];
        const char *nm[2] = { "dgamma", "dbeta" };
        sg_tensor *fused[2] = { dg2, db2 };
        const float *start[2] = { sg_f32(h.t[BN_DG]), sg_f32(h.t[BN_DB]) };
        float *want[2] = { down_f(sg_f32(t[BN_DG]), c), down_f(sg_f32(t[BN_DB]), c) };
        for (int k = 0; k < 2; k++) {
            snprintf(w, sizeof w, "%s backward %s (+=) = bwd-params", tag, nm[k]);
            cmp_dev(w, sg_f32(fused[k]), want[k], c, 1e-6);
        }
        OK(sg_batchnorm_backward(t[BN_X], t[BN_DY], NULL, t[BN_G], dg2, db2, t[BN_SM],
                                 t[BN_SI], 1));
        for (int k = 0; k < 2; k++) {
            for (int64_t i = 0; i < c; i++)
                want[k][i] = start[k][i] + 2 * (want[k][i] - start[k][i]);
            snprintf(w, sizeof w, "%s backward without dx: %s (+= again)", tag, nm[k]);
            cmp_dev(w, sg_f32(fused[k]), want[k], c, 1e-5);
            free(want[k]);
        }
    }
    sg_tensor_release(dx2);
    sg_tensor_release(dg2);
    sg_tensor_release(db2);
    ot_free(&h);
    ot_free(&d);
}

/* ---- dropout masks -------------------------------------------------------------------
 * Four masks queued back to back from the same generator state as the cpu's
 * (the GPU refills its two pinned staging buffers in turn: a refill must wait
 * for the copy that read the buffer), compared afterwards; both generators
 * end at the same position. */
static void test_dropout_masks(void)
{
    const int64_t n = 10007;
    sg_rng a, b;
    sg_rng_init(&a, 42, sg_rng_hash("dropout"));
    b = a;
    const double ps[] = {0.5, 0.1, 0.0, 0.3};
    float *hm[4], *dm[4];
    for (int i = 0; i < 4; i++) {
        hm[i] = hbuf(n);
        dm[i] = dalloc(n * 4);
        OK(sg_cpu_dropout_mask(&a, hm[i], n, ps[i]));
        OK(sg_cuda_dropout_mask(&b, dm[i], n, ps[i]));
    }
    for (int i = 0; i < 4; i++) {
        char t[64];
        snprintf(t, sizeof t, "dropout mask %d, p=%g (same generator state)", i + 1, ps[i]);
        cmp_dev(t, dm[i], hm[i], n, 0.0);
        sg_cuda_free(dm[i]);
        free(hm[i]);
    }
    CHECK(a.counter == b.counter && a.pos == b.pos, "dropout mask: generators advanced differently");
}

/* ---- cross-entropy: the loss read back later ---------------------------------------- */
static void test_xent(int64_t n, int64_t c)
{
    float *z = rnd(n * c, -4, 4), *dz = hbuf(n * c);
    int32_t *lab = calloc((size_t)n, sizeof *lab);
    for (int64_t i = 0; i < n; i++)
        lab[i] = (int32_t)(sg_rng_u32(&g_rng) % (uint32_t)c);
    /* make some rows right: the label is the argmax */
    for (int64_t i = 0; i < n; i += 3)
        z[i * c + lab[i]] = 10.0f;
    double l_cpu = 0, l_gpu = 0;
    int64_t k_cpu = 0, k_gpu = -1;
    OK(sg_cpu_cross_entropy(z, lab, dz, n, c, &l_cpu, &k_cpu));
    float *d_z = dup_f(z, n * c), *d_dz = dalloc((size_t)(n * c) * 4);
    int32_t *d_lab = dup_i(lab, n);
    OK(sg_cuda_cross_entropy(d_z, d_lab, d_dz, n, c, &l_gpu, &k_gpu));
    /* loss only (dlogits NULL), deterministic: same value twice */
    double l2 = 0, l3 = 0;
    OK(sg_cuda_cross_entropy(d_z, d_lab, NULL, n, c, &l2, NULL));
    OK(sg_cuda_cross_entropy(d_z, d_lab, NULL, n, c, &l3, NULL));
    CHECK(l2 == l_gpu && l3 == l2, "xent: loss not reproducible: %.17g %.17g %.17g", l_gpu, l2, l3);
    /* a bad label is an error naming the row */
    lab[n / 2] = (int32_t)c;
    int32_t *d_bad = dup_i(lab, n);
    int rc = sg_cuda_cross_entropy(d_z, d_bad, NULL, n, c, &l2, NULL);
    CHECK(rc != 0 && strstr(sg_geterr(), "out of range"), "xent: bad label not reported (%s)",
          sg_geterr());
    printf("  ok xent %lldx%lld loss %.9f correct %lld; bad label: %s\n", (long long)n,
           (long long)c, l_gpu, (long long)k_gpu, sg_geterr());
    /* read back later: two slots queued, the newer read first waits once for
     * both; the bad label's error (the same message) comes at its read, the
     * other slot has the synchronous call's numbers, and again without a wait */
    char bad_msg[256];
    snprintf(bad_msg, sizeof bad_msg, "%s", sg_geterr());
    sg_readback *ra = sg_cuda_readback_new(), *rb = sg_cuda_readback_new();
    CHECK(ra && rb, "xent: read-back slots: %s", sg_geterr());
    OK(sg_cuda_cross_entropy_queue(d_z, d_lab, NULL, n, c, ra));
    OK(sg_cuda_cross_entropy_queue(d_z, d_bad, NULL, n, c, rb));
    int64_t waits = sg_cuda_host_waits(), k4 = -1;
    double l4 = 0;
    rc = sg_cuda_cross_entropy_read(rb, &l4, NULL);
    CHECK(rc != 0 && strcmp(sg_geterr(), bad_msg) == 0, "xent read back: bad label: %s (synchronous: %s)",
          rc ? sg_geterr() : "no error", bad_msg);
    OK(sg_cuda_cross_entropy_read(ra, &l4, &k4));
    CHECK(l4 == l_gpu && k4 == k_gpu, "xent read back: loss %.17g correct %lld, synchronous %.17g %lld",
          l4, (long long)k4, l_gpu, (long long)k_gpu);
    OK(sg_cuda_cross_entropy_read(ra, &l4, &k4));
    CHECK(l4 == l_gpu && sg_cuda_host_waits() - waits == 1,
          "xent read back: %lld host waits for two slots read three times, expected 1",
          (long long)(sg_cuda_host_waits() - waits));
    sg_cuda_readback_free(ra);
    sg_cuda_readback_free(rb);
    sg_cuda_free(d_z); sg_cuda_free(d_dz); sg_cuda_free(d_lab); sg_cuda_free(d_bad);
    free(z); free(dz); free(lab);
}

int main(void)
{
    cuda_test_begin("the CUDA layer tests", 1234, "test_cuda_layers");
    sg_cuda_set_tf32(0);
    const int ncases = all_ops();
    printf("%d cases of %d ops against the cpu\n", ncases, OT_NOPS);
    for (int j = 0; j < OT_N(bn_train_dev_cases); j++) {
        const ot_params *a = &bn_train_dev_cases[j];
        if (!a->update)
            continue;
        test_bn_fused(a);
        if (a->opts & OT_IDX64) {
            sg_cuda_set_index64(1);
            test_bn_fused(a);
            sg_cuda_set_index64(0);
        }
    }
    test_dropout_masks();
    test_xent(37, 10);
    test_xent(130, 100);
    test_xent(512, 10);
    return check_done("test_cuda_layers", "all CUDA layer checks passed");
}

#else
CUDA_TEST_SKIP_MAIN("the CUDA layer tests (built without the CUDA backend)")
#endif
