/*
 * test_nn_fixtures.c - every op of the op table (op_table.h) with a golden
 * group, on the CPU, against PyTorch.
 *
 * Reads tests/fixtures/layers.h5 (written by tools/make-fixtures from
 * PyTorch, committed so this test needs no torch) with the HDF5 C API and
 * replays every case: /<group>/<case> holds the inputs, parameters and
 * upstream gradient dy under the names of the entry's slots, and PyTorch's
 * outputs and gradients (see tools/make-fixtures for the layout); the
 * attributes stride, pad, kernel, training, eps and momentum set the case.
 * Each compared slot must agree within its tol_gold (outputs 1e-5,
 * gradients 1e-4), as max|a-b| <= tol * (1 + max|ref|); int32 ones exactly.
 * Every golden group must have at least one case, so an emptied or
 * truncated fixture file fails.
 */
#include <hdf5.h>

#include "op_table.h"

#define FIXTURE "tests/fixtures/layers.h5"

static int has(hid_t g, const char *name)
{
    return H5Lexists(g, name, H5P_DEFAULT) > 0;
}

/* A dataset as a cpu tensor of dtype dt (F32 or I32), or NULL. */
static sg_tensor *read_tensor(hid_t g, const char *name, sg_dtype dt)
{
    if (!has(g, name))
        return NULL;
    hid_t ds = H5Dopen2(g, name, H5P_DEFAULT);
    if (ds < 0)
        return NULL;
    hid_t sp = H5Dget_space(ds);
    hsize_t dims[8];
    int64_t size[8];
    int nd = H5Sget_simple_extent_ndims(sp);
    sg_tensor *t = NULL;
    if (nd >= 0 && nd <= 8 && H5Sget_simple_extent_dims(sp, dims, NULL) >= 0) {
        for (int i = 0; i < nd; i++)
            size[i] = (int64_t)dims[i];
        const int64_t one = 1;
        t = nd ? ot_new(dt, nd, size) : ot_new(dt, 1, &one);
        if (H5Dread(ds, dt == SG_I32 ? H5T_NATIVE_INT32 : H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL,
                    H5P_DEFAULT, sg_tensor_data(t)) < 0) {
            sg_tensor_release(t);
            t = NULL;
        }
    }
    H5Sclose(sp);
    H5Dclose(ds);
    return t;
}

static void pair_attr(hid_t g, const char *name, int64_t out[2], int64_t def)
{
    out[0] = out[1] = def;
    if (H5Aexists(g, name) <= 0)
        return;
    hid_t at = H5Aopen(g, name, H5P_DEFAULT);
    H5Aread(at, H5T_NATIVE_INT64, out);
    H5Aclose(at);
}

static double num_attr(hid_t g, const char *name, double def)
{
    double v = def;
    if (H5Aexists(g, name) <= 0)
        return v;
    hid_t at = H5Aopen(g, name, H5P_DEFAULT);
    H5Aread(at, H5T_NATIVE_DOUBLE, &v);
    H5Aclose(at);
    return v;
}

/* The entry of a golden case: its group, and the mode its training
 * attribute (when it has one) names. */
static const ot_op *entry_of(hid_t g, const char *group)
{
    const int training = (int)num_attr(g, "training", -1);
    for (int i = 0; i < OT_NOPS; i++)
        if (ot_ops[i].golden && !strcmp(ot_ops[i].golden, group) &&
            (training < 0 || ot_ops[i].training == training))
            return &ot_ops[i];
    return NULL;
}

/* Read one case's inputs, run its entry on the cpu (gradients starting at
 * zero, the running statistics updated) and compare with PyTorch. */
static void run_case(hid_t g, const char *where, const ot_op *op)
{
    ot_params a;
    memset(&a, 0, sizeof a);
    pair_attr(g, "kernel", a.kernel, 1);
    pair_attr(g, "stride", a.stride, 1);
    pair_attr(g, "pad", a.pad, 0);
    a.update = 1;
    ot_case c;
    ot_init(&c, op, &a);
    c.eps = num_attr(g, "eps", 1e-5);
    c.momentum = num_attr(g, "momentum", 0.1);
    int missing = 0;
    for (int i = 0; i < op->nslot; i++) {
        const ot_slot *s = &op->slot[i];
        if (s->role != OT_IN && s->role != OT_OPT_IN && s->role != OT_INOUT)
            continue;
        c.t[i] = read_tensor(g, s->name, s->dt);
        if (!c.t[i] && (s->role != OT_OPT_IN || has(g, s->name))) {
            EXPECT(0, "%s: cannot read dataset '%s'", where, s->name);
            missing++;
        }
    }
    ot_outputs(&c, OT_START_ZERO, NULL);
    if (!missing && ot_run(&c) != 0)
        EXPECT(0, "%s: %s", where, sg_geterr());
    else if (!missing)
        for (int i = 0; i < op->nslot; i++) {
            const ot_slot *s = &op->slot[i];
            if (s->role == OT_IN || s->role == OT_OPT_IN || s->tol_gold < 0 || !c.t[i])
                continue;
            const char *ref_name = s->gold_ref ? s->gold_ref : s->name;
            sg_tensor *ref = read_tensor(g, ref_name, s->dt);
            const int64_t n = sg_tensor_numel(c.t[i]);
            if (!ref || sg_tensor_numel(ref) != n) {
                EXPECT(0, "%s: %s: %lld elements, PyTorch's '%s' %lld", where, s->name,
                       (long long)n, ref_name, ref ? (long long)sg_tensor_numel(ref) : -1LL);
            } else if (s->dt == SG_I32) {
                char what[300];
                snprintf(what, sizeof what, "%s: %s (PyTorch)", where, s->name);
                cmp_i32(what, sg_tensor_data(c.t[i]), sg_tensor_data(ref), n);
            } else {
                double err;
                if (!close_rel(sg_f32(c.t[i]), sg_f32(ref), n, s->tol_gold, &err))
                    EXPECT(0, "%s: %s differs from PyTorch: max error %.3g relative (tol %g)",
                           where, s->name, err, s->tol_gold);
            }
            sg_tensor_release(ref);
        }
    ot_free(&c);
}

/* The golden groups, each with the number of cases read. */
static const char *groups[OT_NOPS];
static int group_cases[OT_NOPS], ngroups;

static herr_t visit_case(hid_t grp, const char *name, const H5L_info_t *info, void *data)
{
    (void)info;
    const char *group = data;
    char where[256];
    snprintf(where, sizeof where, "%s/%s", group, name);
    hid_t g = H5Gopen2(grp, name, H5P_DEFAULT);
    if (g < 0) {
        EXPECT(0, "%s: not a group", where);
        return 0;
    }
    const ot_op *op = entry_of(g, group);
    if (!op) {
        EXPECT(0, "%s: no op table entry for '%s' (tools/make-fixtures newer than this test?)",
               where, group);
    } else {
        for (int i = 0; i < ngroups; i++)
            group_cases[i] += !strcmp(groups[i], group);
        int before = g_failures;
        run_case(g, where, op);
        printf("%s %s\n", g_failures == before ? "ok  " : "FAIL", where);
    }
    H5Gclose(g);
    return 0;
}

static herr_t visit_op(hid_t root, const char *name, const H5L_info_t *info, void *data)
{
    (void)info;
    (void)data;
    hid_t g = H5Gopen2(root, name, H5P_DEFAULT);
    if (g < 0)
        return 0;
    H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, visit_case, (void *)name);
    H5Gclose(g);
    return 0;
}

int main(void)
{
    for (int i = 0; i < OT_NOPS; i++) {
        int seen = 0;
        for (int j = 0; j < ngroups && ot_ops[i].golden; j++)
            seen |= !strcmp(groups[j], ot_ops[i].golden);
        if (ot_ops[i].golden && !seen)
            groups[ngroups++] = ot_ops[i].golden;
    }
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(FIXTURE, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        fprintf(stderr, "FAIL: cannot open %s (run from the repository root; regenerate with "
                "tools/make-fixtures)\n", FIXTURE);
        return 1;
    }
    int64_t ver[2] = { 0, 0 };
    pair_attr(f, "format_version", ver, 0);
    EXPECT(ver[0] == 1, "%s: format_version %lld, this test reads 1", FIXTURE, (long long)ver[0]);
    H5Literate(f, H5_INDEX_NAME, H5_ITER_INC, NULL, visit_op, NULL);
    H5Fclose(f);
    for (int i = 0; i < ngroups; i++)
        EXPECT(group_cases[i] > 0, "no fixture cases for %s in %s", groups[i], FIXTURE);
    return check_done("test_nn_fixtures", "all cases agree with PyTorch");
}
