/*
 * op_table.h - the op test table: one entry per layer op of core/ops.h, and
 * three drivers that iterate it (ggml's test-backend-ops in spirit):
 *   test_nn_grad.c       the finite-difference gradient check of every entry
 *                        that has gradients, on the CPU (its grad_cases);
 *   test_cuda_layers.c   every entry on every other registered backend (cuda;
 *                        the emulator in CI) against the CPU (its dev_cases);
 *   test_nn_fixtures.c   every entry with a golden group against PyTorch's
 *                        numbers in tests/fixtures/layers.h5.
 *
 * An entry lists its tensors (slots): inputs its make() fills (the golden
 * file holds them under the same names), outputs the op writes, gradients it
 * adds into (ACC: prefilled, so accumulation is checked) and state it updates
 * (INOUT); forward() and backward() call core/ops.h on the case's tensors, so
 * one entry runs on whatever device its tensors are on. `grad` pairs an input
 * with the slot holding dL/d(input) for L = sum(y * dy) (the loss itself for
 * a loss op). Tolerances, per slot:
 *   against the CPU   |dev - cpu| <= tol_dev * (|cpu| + 0.1 max|cpu|)  (cmp_rel)
 *   against PyTorch   max|a - ref| <= tol_gold * (1 + max|ref|)        (close_rel)
 * a negative tolerance: not compared; int32 slots must be equal.
 *
 * Adding an op: its make/forward/backward (a few lines each), its slots and
 * one ot_op entry in ot_ops[] below; the three drivers then check its
 * gradients on the CPU, run it on every backend against the CPU, and (with
 * a golden group written by tools/make-fixtures) compare it with PyTorch.
 */
#ifndef SG_TEST_OP_TABLE_H
#define SG_TEST_OP_TABLE_H

#include "nn_check.h"

#include "backend.h"
#include "error.h"
#include "ops.h"

#define OT_NSLOT 12

enum { OT_IN, OT_OPT_IN, OT_OUT, OT_ACC, OT_INOUT };

typedef struct {
    const char *name;   /* also the golden dataset's name */
    int role;           /* OT_OPT_IN: an input that may be absent (bias, affine) */
    sg_dtype dt;
    int like;           /* OUT/ACC: the slot whose shape it has, prefilled (OUT: 123,
                           must be overwritten; ACC: a start value); -1: the op sizes it */
    double tol_dev, tol_gold;
    const char *gold_ref;  /* the golden dataset it is compared with, if not `name` */
} ot_slot;

/* Dev-case options the backend driver applies around the case. */
enum { OT_DET = 1, OT_IDX64 = 2 };

typedef struct {
    int64_t d[5];       /* sizes (the entry's make says which) */
    int64_t kernel[2], stride[2], pad[2];
    int flag;           /* bias / affine */
    int update;         /* batchnorm: the running statistics move */
    int64_t block;      /* conv on the cpu: 0 the kernel's choice, +b shared mode in
                           blocks of b images, -b per-thread mode in blocks of b */
    int variant;        /* the entry's special inputs (cross-entropy: NaN rows) */
    unsigned opts;      /* OT_DET, OT_IDX64 */
} ot_params;

typedef struct ot_op ot_op;

typedef struct {
    const ot_op *op;
    ot_params a;
    int training;
    double eps, momentum;
    sg_tensor *t[OT_NSLOT];
    double loss;        /* a loss op's value, in double */
    int64_t correct;
} ot_case;

enum { OT_FOR_GRAD, OT_FOR_DEV };

struct ot_op {
    const char *name;
    const ot_slot *slot;
    int nslot;
    void (*make)(ot_case *c, sg_rng *r, int purpose);
    int (*forward)(ot_case *c);
    int (*backward)(ot_case *c);  /* NULL: forward makes the gradients */
    int y, dy;                    /* L = sum(t[y] * t[dy]); y < 0: L = loss */
    int grad[3][2];               /* {input slot, gradient slot} */
    int ngrad;
    float fd_eps;
    int training;                 /* batchnorm: the mode of this entry */
    const char *golden;           /* the group in layers.h5, or NULL */
    const ot_params *grad_cases;
    int ngrad_cases;
    const ot_params *dev_cases;
    int ndev_cases;
};

/* ---- helpers of make() ---------------------------------------------------------------- */
static inline sg_tensor *ot_new(sg_dtype dt, int ndim, const int64_t *size)
{
    sg_tensor *t = sg_tensor_new(dt, SG_CPU, ndim, size);
    if (!t) {
        fprintf(stderr, "tensor: %s\n", sg_geterr());
        exit(1);
    }
    return t;
}

static inline sg_tensor *ot_rand(sg_rng *r, float lo, float hi, int ndim, const int64_t *size)
{
    sg_tensor *t = ot_new(SG_F32, ndim, size);
    sg_rng_fill_uniform(r, sg_f32(t), sg_tensor_numel(t), lo, hi);
    return t;
}

/* The number of leading non-zero sizes of d: a case's rank. */
static inline int ot_rank(const int64_t *d)
{
    int n = 0;
    while (n < 5 && d[n] > 0)
        n++;
    return n;
}

/* A shuffled ladder of distinct values 0.02 apart, none near 0, so a
 * finite-difference step of 1e-3 never changes an argmax or a sign. */
static inline void ot_ladder(sg_rng *r, sg_tensor *t)
{
    const int64_t n = sg_tensor_numel(t);
    float *x = sg_f32(t);
    int64_t *perm = malloc((size_t)n * sizeof(int64_t));
    if (!perm)
        exit(1);
    sg_rng_permutation(r, perm, n);
    for (int64_t i = 0; i < n; i++) {
        float v = 0.02f * (float)(perm[i] - n / 2);
        x[i] = v >= 0 ? v + 0.01f : v - 0.01f;
    }
    free(perm);
}

/* ---- conv2d ---------------------------------------------------------------------------
 * d = {N, C, H, W, K}; kernel, stride, pad; flag: bias; block (cpu only). */
enum { W_X, W_W, W_B, W_DY, W_Y, W_DX, W_DW, W_DB, W_WS };
/* The slots of a layer with a weight and an optional bias (conv2d, linear). */
#define WEIGHTED_SLOTS(tol_dev)                                                        \
    { "x", OT_IN, SG_F32, -1, -1, -1, NULL },                                          \
    { "weight", OT_IN, SG_F32, -1, -1, -1, NULL },                                     \
    { "bias", OT_OPT_IN, SG_F32, -1, -1, -1, NULL },                                   \
    { "dy", OT_IN, SG_F32, -1, -1, -1, NULL },                                         \
    { "y", OT_OUT, SG_F32, -1, tol_dev, 1e-5, NULL },                                  \
    { "dx", OT_OUT, SG_F32, W_X, tol_dev, 1e-4, NULL },                                \
    { "dweight", OT_ACC, SG_F32, W_W, tol_dev, 1e-4, NULL },                           \
    { "dbias", OT_ACC, SG_F32, W_B, tol_dev, 1e-4, NULL }
static const ot_slot conv_slots[] = { WEIGHTED_SLOTS(5e-4),
                                      { "workspace", OT_OUT, SG_F32, -1, -1, -1, NULL } };

static void conv_make(ot_case *c, sg_rng *r, int purpose)
{
    (void)purpose;
    const int64_t *d = c->a.d, *k = c->a.kernel, *s = c->a.stride, *p = c->a.pad;
    const int64_t xs[4] = { d[0], d[1], d[2], d[3] }, ws[4] = { d[4], d[1], k[0], k[1] };
    const int64_t ys[4] = { d[0], d[4], (d[2] + 2 * p[0] - k[0]) / s[0] + 1,
                            (d[3] + 2 * p[1] - k[1]) / s[1] + 1 };
    c->t[W_X] = ot_rand(r, -1, 1, 4, xs);
    c->t[W_W] = ot_rand(r, -0.5f, 0.5f, 4, ws);
    c->t[W_B] = c->a.flag ? ot_rand(r, -1, 1, 1, &d[4]) : NULL;
    c->t[W_DY] = ot_rand(r, -1, 1, 4, ys);
}

/* A forced block mode (cpu): the kernels with a geometry whose block the
 * case sets, below the op layer, which leaves it to the kernel. */
static const sg_backend *conv_forced(ot_case *c, sg_conv2d_geom *g)
{
    const sg_tensor *x = c->t[W_X], *w = c->t[W_W];
    if (c->a.block == 0 || x->storage->device != SG_CPU)
        return NULL;
    if (sg_conv2d_geom_init(g, x->size[0], x->size[1], x->size[2], x->size[3], w->size[0],
                            w->size[2], w->size[3], c->a.stride[0], c->a.stride[1],
                            c->a.pad[0], c->a.pad[1]) != 0)
        return NULL;
    g->per_thread = c->a.block < 0;
    g->block = c->a.block < 0 ? -c->a.block : c->a.block;
    const sg_backend *be = sg_backend_get(SG_CPU);
    const int64_t ws = (int64_t)be->conv2d_workspace_size(g);
    return sg_tensor_resize(c->t[W_WS], 1, &ws) == 0 ? be : NULL;
}

#define OT_F(t) ((t) ? sg_f32(t) : NULL)

static int conv_forward(ot_case *c)
{
    sg_conv2d_geom g;
    const sg_backend *be = conv_forced(c, &g);
    if (be) {
        const int64_t ys[4] = { g.n, g.k, g.oh, g.ow };
        return sg_tensor_resize(c->t[W_Y], 4, ys) ||
               be->conv2d_forward(sg_f32(c->t[W_WS]), sg_f32(c->t[W_X]), sg_f32(c->t[W_Y]),
                                  sg_f32(c->t[W_W]), OT_F(c->t[W_B]), &g);
    }
    return sg_conv2d_forward(c->t[W_WS], c->t[W_X], c->t[W_Y], c->t[W_W], c->t[W_B],
                             c->a.stride, c->a.pad);
}

static int conv_backward(ot_case *c)
{
    sg_conv2d_geom g;
    const sg_backend *be = conv_forced(c, &g);
    if (be)
        return be->conv2d_backward_data(sg_f32(c->t[W_WS]), sg_f32(c->t[W_DY]),
                                        sg_f32(c->t[W_DX]), sg_f32(c->t[W_W]), &g) ||
               be->conv2d_backward_params(sg_f32(c->t[W_WS]), sg_f32(c->t[W_X]),
                                          sg_f32(c->t[W_DY]), sg_f32(c->t[W_DW]),
                                          OT_F(c->t[W_DB]), &g);
    return sg_conv2d_backward_data(c->t[W_WS], c->t[W_X], c->t[W_DY], c->t[W_DX],
                                   c->t[W_W], c->a.stride, c->a.pad) ||
           sg_conv2d_backward_params(c->t[W_WS], c->t[W_X], c->t[W_DY], c->t[W_DW],
                                     c->t[W_DB], c->a.stride, c->a.pad);
}

#define OT_CONV(n, ci, h, w, k, kh, kw, s, p, bias, block, opts) \
    { { n, ci, h, w, k }, { kh, kw }, { s, s }, { p, p }, bias, 0, block, 0, opts }

/* padding, stride 2, odd sizes, rectangular kernels, no bias, the pointwise
 * path; the forced block modes (ragged last blocks included) */
static const ot_params conv_grad_cases[] = {
    OT_CONV(2, 3, 5, 6, 4, 3, 3, 1, 1, 1, 0, 0),  OT_CONV(3, 2, 7, 5, 3, 3, 3, 2, 1, 1, 1, 0),
    OT_CONV(3, 2, 7, 5, 3, 3, 3, 2, 1, 1, 2, 0),  OT_CONV(2, 3, 6, 7, 2, 2, 3, 2, 0, 0, 0, 0),
    OT_CONV(2, 4, 5, 5, 3, 1, 1, 1, 0, 1, 1, 0),  OT_CONV(3, 4, 5, 5, 3, 1, 1, 1, 0, 0, 2, 0),
    OT_CONV(2, 4, 5, 5, 3, 1, 1, 2, 0, 1, 0, 0),  OT_CONV(1, 2, 4, 4, 2, 5, 5, 1, 2, 1, 0, 0),
    OT_CONV(5, 2, 7, 5, 3, 3, 3, 2, 1, 1, -1, 0), OT_CONV(5, 2, 7, 5, 3, 3, 3, 2, 1, 1, -2, 0),
    OT_CONV(3, 4, 5, 5, 3, 1, 1, 1, 0, 1, -1, 0), OT_CONV(5, 4, 5, 5, 3, 1, 1, 1, 0, 0, -2, 0),
    OT_CONV(2, 3, 6, 7, 2, 2, 3, 2, 0, 0, -1, 0),
};
/* a 1x1 stride-2 shortcut, an odd kernel with stride 2, a ResNet stage, the
 * deterministic algorithms */
static const ot_params conv_dev_cases[] = {
    OT_CONV(4, 3, 9, 7, 5, 3, 3, 1, 1, 1, 0, 0),
    OT_CONV(3, 8, 10, 10, 6, 1, 1, 2, 0, 0, 0, 0),
    OT_CONV(2, 5, 11, 13, 4, 5, 3, 2, 2, 1, 0, OT_IDX64),
    OT_CONV(16, 64, 16, 16, 64, 3, 3, 1, 1, 0, 0, 0),
    OT_CONV(8, 32, 8, 8, 48, 3, 3, 1, 1, 1, 0, OT_DET),
};

/* ---- linear: d = {N, IN, OUT}; flag: bias --------------------------------------------- */
static const ot_slot linear_slots[] = { WEIGHTED_SLOTS(1e-4) };

static void linear_make(ot_case *c, sg_rng *r, int purpose)
{
    (void)purpose;
    const int64_t *d = c->a.d;
    const int64_t xs[2] = { d[0], d[1] }, ws[2] = { d[2], d[1] }, ys[2] = { d[0], d[2] };
    c->t[W_X] = ot_rand(r, -1, 1, 2, xs);
    c->t[W_W] = ot_rand(r, -1, 1, 2, ws);
    c->t[W_B] = c->a.flag ? ot_rand(r, -1, 1, 1, &d[2]) : NULL;
    c->t[W_DY] = ot_rand(r, -1, 1, 2, ys);
}

static int linear_forward(ot_case *c)
{
    return sg_linear_forward(c->t[W_X], c->t[W_Y], c->t[W_W], c->t[W_B]);
}

static int linear_backward(ot_case *c)
{
    return sg_linear_backward_data(c->t[W_DY], c->t[W_DX], c->t[W_W]) ||
           sg_linear_backward_params(c->t[W_X], c->t[W_DY], c->t[W_DW], c->t[W_DB]);
}

#define OT_SIZES(a, b, c_, e, f) { { a, b, c_, e, f }, { 0, 0 }, { 0, 0 }, { 0, 0 }, 0, 0, 0, 0, 0 }
#define OT_WITH(a, b, c_, flag, update, variant, opts) \
    { { a, b, c_, 0, 0 }, { 0, 0 }, { 0, 0 }, { 0, 0 }, flag, update, 0, variant, opts }

static const ot_params linear_grad_cases[] = {
    OT_WITH(4, 7, 5, 1, 0, 0, 0), OT_WITH(3, 6, 2, 0, 0, 0, 0),
};
static const ot_params linear_dev_cases[] = {
    OT_WITH(7, 13, 5, 1, 0, 0, OT_IDX64), OT_WITH(64, 512, 10, 1, 0, 0, 0),
};

/* ---- batch normalization: d = {N, C, HW}; flag: affine; update ------------------------- */
enum { BN_X, BN_G, BN_B, BN_RM, BN_RV, BN_DY, BN_Y, BN_SM, BN_SI, BN_DX, BN_DG, BN_DB };
#define BN_SLOTS(dx_tol)                                                               \
    {                                                                                  \
        { "x", OT_IN, SG_F32, -1, -1, -1, NULL },                                      \
        { "weight", OT_OPT_IN, SG_F32, -1, -1, -1, NULL },                             \
        { "bias", OT_OPT_IN, SG_F32, -1, -1, -1, NULL },                               \
        { "running_mean", OT_INOUT, SG_F32, -1, 1e-4, 1e-5, "running_mean_after" },    \
        { "running_var", OT_INOUT, SG_F32, -1, 1e-4, 1e-5, "running_var_after" },      \
        { "dy", OT_IN, SG_F32, -1, -1, -1, NULL },                                     \
        { "y", OT_OUT, SG_F32, -1, 1e-4, 1e-5, NULL },                                 \
        { "save_mean", OT_OUT, SG_F32, -1, 1e-4, -1, NULL },                           \
        { "save_invstd", OT_OUT, SG_F32, -1, 1e-4, -1, NULL },                         \
        { "dx", OT_OUT, SG_F32, BN_X, dx_tol, 1e-4, NULL },                            \
        { "dweight", OT_ACC, SG_F32, BN_G, 5e-4, 1e-4, NULL },                         \
        { "dbias", OT_ACC, SG_F32, BN_B, 5e-4, 1e-4, NULL },                           \
    }
static const ot_slot bn_train_slots[] = BN_SLOTS(5e-4);
static const ot_slot bn_eval_slots[] = BN_SLOTS(1e-4);

static void bn_make(ot_case *c, sg_rng *r, int purpose)
{
    (void)purpose;
    const int64_t *d = c->a.d, ch = d[1];
    c->t[BN_X] = ot_rand(r, -2, 3, ot_rank(d), d);
    c->t[BN_G] = c->a.flag ? ot_rand(r, 0.5f, 1.5f, 1, &ch) : NULL;
    c->t[BN_B] = c->a.flag ? ot_rand(r, -1, 1, 1, &ch) : NULL;
    c->t[BN_RM] = ot_rand(r, -0.5f, 0.5f, 1, &ch);
    c->t[BN_RV] = ot_rand(r, 0.5f, 2.0f, 1, &ch);
    c->t[BN_DY] = ot_rand(r, -1, 1, ot_rank(d), d);
}

static int bn_forward(ot_case *c)
{
    sg_tensor **t = c->t;
    return sg_batchnorm_forward(t[BN_X], t[BN_Y], t[BN_G], t[BN_B], t[BN_SM], t[BN_SI],
                                t[BN_RM], t[BN_RV], c->eps, c->momentum, c->training,
                                c->a.update, 0);
}

static int bn_backward(ot_case *c)
{
    sg_tensor **t = c->t;
    return sg_batchnorm_backward_data(t[BN_X], t[BN_DY], t[BN_DX], t[BN_G], t[BN_SM],
                                      t[BN_SI], c->training, 0) ||
           sg_batchnorm_backward_params(t[BN_X], t[BN_DY], t[BN_DG], t[BN_DB], t[BN_SM],
                                        t[BN_SI]);
}

/* BatchNorm2d (a 1x5 plane), BatchNorm1d, affine = False */
static const ot_params bn_grad_cases[] = {
    OT_WITH(4, 3, 5, 1, 0, 0, 0), OT_WITH(6, 4, 0, 1, 0, 0, 0), OT_WITH(3, 2, 4, 0, 0, 0, 0),
};
/* training with and without the running-statistics update; BatchNorm1d; a larger map */
static const ot_params bn_train_dev_cases[] = {
    OT_WITH(8, 16, 25, 1, 0, 0, 0),  OT_WITH(8, 16, 25, 1, 1, 0, OT_IDX64),
    OT_WITH(4, 6, 49, 0, 0, 0, 0),   OT_WITH(4, 6, 49, 0, 1, 0, 0),
    OT_WITH(32, 10, 0, 1, 0, 0, 0),  OT_WITH(32, 10, 0, 1, 1, 0, 0),
    OT_WITH(64, 64, 256, 1, 0, 0, 0), OT_WITH(64, 64, 256, 1, 1, 0, 0),
};
static const ot_params bn_eval_dev_cases[] = {
    OT_WITH(8, 16, 25, 1, 0, 0, OT_IDX64), OT_WITH(4, 6, 49, 0, 0, 0, 0),
    OT_WITH(32, 10, 0, 1, 0, 0, 0),        OT_WITH(64, 64, 256, 1, 0, 0, 0),
};

/* ---- one-input ops: relu, dropout, pooling, padding ------------------------------------
 * d: the input's shape; kernel, stride, pad (pooling); pad[0] (pad2d). */
enum { U_X, U_DY, U_Y, U_DX, U_AUX };
#define UNARY_SLOTS(y_dev, y_gold, dx_dev)                                             \
    { "x", OT_IN, SG_F32, -1, -1, -1, NULL },                                          \
    { "dy", OT_IN, SG_F32, -1, -1, -1, NULL },                                         \
    { "y", OT_OUT, SG_F32, -1, y_dev, y_gold, NULL },                                  \
    { "dx", OT_OUT, SG_F32, U_X, dx_dev, 1e-4, NULL }
static const ot_slot relu_slots[] = { UNARY_SLOTS(0.0, 1e-5, 0.0) };
static const ot_slot dropout_slots[] = { UNARY_SLOTS(0.0, -1, 0.0),
                                         { "mask", OT_IN, SG_F32, -1, -1, -1, NULL } };
static const ot_slot maxpool_slots[] = { UNARY_SLOTS(0.0, 1e-5, 1e-6),
                                         { "idx", OT_OUT, SG_I32, -1, 0.0, -1, NULL } };
static const ot_slot avgpool_slots[] = { UNARY_SLOTS(1e-5, 1e-5, 1e-5) };
static const ot_slot gap_slots[] = { UNARY_SLOTS(1e-5, 1e-5, 1e-6) };
static const ot_slot pad_slots[] = { UNARY_SLOTS(0.0, -1, 0.0) };

/* x of shape d (a ladder for the gradient check when `ladder`), dy of
 * shape ys. */
static void unary_make(ot_case *c, sg_rng *r, int ladder, int ny, const int64_t *ys)
{
    c->t[U_X] = ot_rand(r, -1, 1, ot_rank(c->a.d), c->a.d);
    if (ladder)
        ot_ladder(r, c->t[U_X]);
    c->t[U_DY] = ot_rand(r, -1, 1, ny, ys);
}

static void same_make(ot_case *c, sg_rng *r, int purpose)
{
    unary_make(c, r, purpose == OT_FOR_GRAD, ot_rank(c->a.d), c->a.d);
}

static void dropout_make(ot_case *c, sg_rng *r, int purpose)
{
    unary_make(c, r, 0, ot_rank(c->a.d), c->a.d);
    c->t[U_AUX] = ot_new(SG_F32, 1, c->a.d);
    if (sg_dropout_mask(r, c->t[U_AUX], c->t[U_X], 0.3) != 0)
        CHECK(0, "dropout mask: %s", sg_geterr());
    (void)purpose;
}

/* The pooled shape of the case's NxCxHxW input. */
static void pool_shape(const ot_params *a, int64_t ys[4])
{
    ys[0] = a->d[0];
    ys[1] = a->d[1];
    ys[2] = (a->d[2] + 2 * a->pad[0] - a->kernel[0]) / a->stride[0] + 1;
    ys[3] = (a->d[3] + 2 * a->pad[1] - a->kernel[1]) / a->stride[1] + 1;
}

/* Max pooling on the backends: ties (the first maximum wins) and NaNs (the
 * first NaN in window order wins); a ladder for the gradient check. */
static void maxpool_make(ot_case *c, sg_rng *r, int purpose)
{
    int64_t ys[4];
    pool_shape(&c->a, ys);
    unary_make(c, r, purpose == OT_FOR_GRAD, 4, ys);
    if (purpose == OT_FOR_GRAD)
        return;
    float *x = sg_f32(c->t[U_X]);
    const int64_t nx = sg_tensor_numel(c->t[U_X]);
    for (int64_t i = 0; i + 1 < nx; i += 7)
        x[i + 1] = x[i];
    for (int64_t i = 5; i + 2 < nx; i += 61)
        x[i] = x[i + 2] = NAN;
}

static void avgpool_make(ot_case *c, sg_rng *r, int purpose)
{
    int64_t ys[4];
    pool_shape(&c->a, ys);
    unary_make(c, r, 0, 4, ys);
    (void)purpose;
}

static void gap_make(ot_case *c, sg_rng *r, int purpose)
{
    unary_make(c, r, 0, 2, c->a.d);
    (void)purpose;
}

static void pad_make(ot_case *c, sg_rng *r, int purpose)
{
    const int64_t *d = c->a.d, p = c->a.pad[0];
    const int64_t ys[4] = { d[0], d[1], d[2] + 2 * p, d[3] + 2 * p };
    unary_make(c, r, 0, 4, ys);
    (void)purpose;
}

#define T(i) c->t[i]
static int relu_forward(ot_case *c) { return sg_relu_forward(T(U_X), T(U_Y)); }
static int relu_backward(ot_case *c) { return sg_relu_backward_data(T(U_Y), T(U_DY), T(U_DX)); }
static int dropout_forward(ot_case *c) { return sg_dropout_forward(T(U_X), T(U_Y), T(U_AUX)); }
static int dropout_backward(ot_case *c)
{
    return sg_dropout_backward_data(T(U_DY), T(U_DX), T(U_AUX));
}
static int maxpool_forward(ot_case *c)
{
    return sg_maxpool2d_forward(T(U_X), T(U_Y), T(U_AUX), c->a.kernel, c->a.stride, c->a.pad);
}
static int maxpool_backward(ot_case *c)
{
    return sg_maxpool2d_backward_data(T(U_X), T(U_DY), T(U_DX), T(U_AUX), c->a.kernel,
                                      c->a.stride, c->a.pad);
}
static int avgpool_forward(ot_case *c)
{
    return sg_avgpool2d_forward(T(U_X), T(U_Y), c->a.kernel, c->a.stride, c->a.pad);
}
static int avgpool_backward(ot_case *c)
{
    return sg_avgpool2d_backward_data(T(U_X), T(U_DY), T(U_DX), c->a.kernel, c->a.stride,
                                      c->a.pad);
}
static int gap_forward(ot_case *c) { return sg_global_avgpool_forward(T(U_X), T(U_Y)); }
static int gap_backward(ot_case *c)
{
    return sg_global_avgpool_backward_data(T(U_X), T(U_DY), T(U_DX));
}
static int pad_forward(ot_case *c) { return sg_pad2d(T(U_X), T(U_Y), c->a.pad[0]); }
static int pad_backward(ot_case *c) { return sg_crop2d(T(U_DY), T(U_DX), c->a.pad[0]); }

#define OT_POOL(n, ch, h, w, k, s, p, opts) \
    { { n, ch, h, w, 0 }, { k, k }, { s, s }, { p, p }, 0, 0, 0, 0, opts }

static const ot_params maxpool_grad_cases[] = {
    OT_POOL(2, 2, 5, 6, 2, 2, 0, 0), OT_POOL(2, 2, 5, 5, 3, 2, 1, 0),
    OT_POOL(1, 3, 6, 6, 3, 1, 1, 0),
};
static const ot_params avgpool_grad_cases[] = {
    OT_POOL(2, 2, 5, 6, 2, 2, 0, 0), OT_POOL(2, 2, 5, 5, 3, 2, 1, 0),
};
static const ot_params pool_dev_cases[] = {
    OT_POOL(2, 3, 8, 8, 2, 2, 0, 0), OT_POOL(2, 3, 9, 11, 3, 2, 1, OT_IDX64),
    OT_POOL(1, 4, 7, 7, 3, 1, 1, OT_IDX64),
};
static const ot_params small4_cases[] = { OT_SIZES(2, 3, 3, 4, 0) };
static const ot_params flat_dev_cases[] = { OT_SIZES(10007, 0, 0, 0, 0) };
static const ot_params gap_dev_cases[] = {
    OT_SIZES(8, 16, 16, 0, 0), OT_SIZES(3, 5, 1, 0, 0), OT_WITH(3, 5, 7, 0, 0, 0, OT_IDX64),
};
static const ot_params pad_cases[] = {
    OT_POOL(2, 3, 7, 5, 0, 0, 2, OT_IDX64), OT_POOL(1, 1, 3, 3, 0, 0, 0, OT_IDX64),
};

/* ---- cross-entropy: d = {N, classes}; variant 1: rows with NaN logits ------------------ */
enum { CE_X, CE_LAB, CE_DX, CE_LOSS, CE_CORRECT };
static const ot_slot ce_slots[] = {
    { "x", OT_IN, SG_F32, -1, -1, -1, NULL },
    { "labels", OT_IN, SG_I32, -1, -1, -1, NULL },
    { "dx", OT_OUT, SG_F32, CE_X, 1e-5, 1e-4, NULL },
    { "loss", OT_OUT, SG_F32, -1, 1e-6, 1e-5, NULL },
    { "correct", OT_OUT, SG_I32, -1, 0.0, 0.0, NULL },
};

/* On the backends: every third row right (its label the argmax); the NaN
 * variant: a NaN in column 0 makes the argmax 0, other NaNs are skipped. */
static void ce_make(ot_case *c, sg_rng *r, int purpose)
{
    const int64_t n = c->a.d[0], k = c->a.d[1];
    c->t[CE_X] = ot_rand(r, purpose == OT_FOR_GRAD ? -3 : -4, purpose == OT_FOR_GRAD ? 3 : 4,
                         2, c->a.d);
    c->t[CE_LAB] = ot_new(SG_I32, 1, &n);
    float *z = sg_f32(c->t[CE_X]);
    int32_t *lab = sg_tensor_data(c->t[CE_LAB]);
    for (int64_t i = 0; i < n; i++) {
        lab[i] = c->a.variant ? (int32_t)((i * 7) % k) : (int32_t)sg_rng_below(r, (uint64_t)k);
        if (purpose == OT_FOR_GRAD)
            continue;
        if (!c->a.variant) {
            if (i % 3 == 0)
                z[i * k + lab[i]] = 10.0f;
            continue;
        }
        z[i * k + lab[i]] = 9.0f;
        if (i % 4 == 1)
            z[i * k] = NAN;
        if (i % 4 == 2)
            z[i * k + (i * 13 + 5) % k] = NAN;
        if (i % 8 == 3) {
            lab[i] = 0;
            z[i * k] = NAN;
        }
    }
}

static int ce_forward(ot_case *c)
{
    const int64_t one = 1;
    if (sg_cross_entropy(T(CE_X), T(CE_LAB), T(CE_DX), &c->loss, &c->correct) != 0 ||
        sg_tensor_resize(T(CE_LOSS), 1, &one) != 0 || sg_tensor_resize(T(CE_CORRECT), 1, &one))
        return -1;
    const float l = (float)c->loss;
    const int32_t k = (int32_t)c->correct;
    sg_tensor *hl = ot_new(SG_F32, 1, &one), *hk = ot_new(SG_I32, 1, &one);
    memcpy(sg_tensor_data(hl), &l, 4);
    memcpy(sg_tensor_data(hk), &k, 4);
    int rc = sg_copy(T(CE_LOSS), hl) || sg_copy(T(CE_CORRECT), hk);
    sg_tensor_release(hl);
    sg_tensor_release(hk);
    return rc ? -1 : 0;
}
#undef T

static const ot_params ce_grad_cases[] = { OT_SIZES(5, 4, 0, 0, 0), OT_SIZES(3, 10, 0, 0, 0) };
static const ot_params ce_dev_cases[] = {
    OT_SIZES(37, 10, 0, 0, 0), OT_SIZES(130, 100, 0, 0, 0), OT_SIZES(512, 10, 0, 0, 0),
    OT_WITH(64, 40, 0, 0, 0, 1, 0),
};

/* ---- the table ------------------------------------------------------------------------ */
#define OT_N(a) (int)(sizeof(a) / sizeof((a)[0]))
#define OT_CASES(g, d) g, OT_N(g), d, OT_N(d)
#define OT_SLOTS(s) s, OT_N(s)

static const ot_op ot_ops[] = {
    { "conv2d", OT_SLOTS(conv_slots), conv_make, conv_forward, conv_backward, W_Y, W_DY,
      { { W_X, W_DX }, { W_W, W_DW }, { W_B, W_DB } }, 3, 1e-2f, 0, "conv2d",
      OT_CASES(conv_grad_cases, conv_dev_cases) },
    { "linear", OT_SLOTS(linear_slots), linear_make, linear_forward, linear_backward, W_Y,
      W_DY, { { W_X, W_DX }, { W_W, W_DW }, { W_B, W_DB } }, 3, 1e-2f, 0, "linear",
      OT_CASES(linear_grad_cases, linear_dev_cases) },
    { "batchnorm (training)", OT_SLOTS(bn_train_slots), bn_make, bn_forward, bn_backward,
      BN_Y, BN_DY, { { BN_X, BN_DX }, { BN_G, BN_DG }, { BN_B, BN_DB } }, 3, 1e-2f, 1,
      "batchnorm", OT_CASES(bn_grad_cases, bn_train_dev_cases) },
    { "batchnorm (evaluation)", OT_SLOTS(bn_eval_slots), bn_make, bn_forward, bn_backward,
      BN_Y, BN_DY, { { BN_X, BN_DX }, { BN_G, BN_DG }, { BN_B, BN_DB } }, 3, 1e-2f, 0,
      "batchnorm", OT_CASES(bn_grad_cases, bn_eval_dev_cases) },
    { "maxpool2d", OT_SLOTS(maxpool_slots), maxpool_make, maxpool_forward, maxpool_backward,
      U_Y, U_DY, { { U_X, U_DX } }, 1, 1e-3f, 0, "maxpool2d",
      OT_CASES(maxpool_grad_cases, pool_dev_cases) },
    { "avgpool2d", OT_SLOTS(avgpool_slots), avgpool_make, avgpool_forward, avgpool_backward,
      U_Y, U_DY, { { U_X, U_DX } }, 1, 1e-3f, 0, "avgpool2d",
      OT_CASES(avgpool_grad_cases, pool_dev_cases) },
    { "global_avgpool", OT_SLOTS(gap_slots), gap_make, gap_forward, gap_backward, U_Y, U_DY,
      { { U_X, U_DX } }, 1, 1e-3f, 0, "global_avgpool", OT_CASES(small4_cases, gap_dev_cases) },
    { "relu", OT_SLOTS(relu_slots), same_make, relu_forward, relu_backward, U_Y, U_DY,
      { { U_X, U_DX } }, 1, 1e-3f, 0, "relu", OT_CASES(small4_cases, flat_dev_cases) },
    { "dropout", OT_SLOTS(dropout_slots), dropout_make, dropout_forward, dropout_backward, U_Y,
      U_DY, { { U_X, U_DX } }, 1, 1e-3f, 0, NULL, OT_CASES(small4_cases, flat_dev_cases) },
    { "pad2d", OT_SLOTS(pad_slots), pad_make, pad_forward, pad_backward, U_Y, U_DY,
      { { U_X, U_DX } }, 1, 1e-2f, 0, NULL, OT_CASES(pad_cases, pad_cases) },
    { "cross_entropy", OT_SLOTS(ce_slots), ce_make, ce_forward, NULL, -1, -1,
      { { CE_X, CE_DX } }, 1, 1e-2f, 0, "cross_entropy", OT_CASES(ce_grad_cases, ce_dev_cases) },
};
#define OT_NOPS OT_N(ot_ops)

/* ---- what the drivers share ----------------------------------------------------------- */
/* The entry named name, or exit 1. */
static inline const ot_op *ot_find(const char *name)
{
    for (int i = 0; i < OT_NOPS; i++)
        if (!strcmp(ot_ops[i].name, name))
            return &ot_ops[i];
    fprintf(stderr, "no op table entry '%s'\n", name);
    exit(1);
}

enum { OT_START_ZERO, OT_START_RANDOM };

/* A case of op on the cpu with the inputs make() draws from r. */
static inline void ot_init(ot_case *c, const ot_op *op, const ot_params *a)
{
    memset(c, 0, sizeof *c);
    c->op = op;
    c->a = *a;
    c->training = op->training;
    c->eps = 1e-5;
    c->momentum = 0.1;
}

/* The outputs and gradients of a case whose inputs are set: OUT slots with a
 * `like` prefilled with 123 (the op must overwrite), ACC slots with zeros or
 * uniform start values from r (the op must add), the rest empty (the op
 * sizes them). A slot whose `like` input is absent stays NULL. */
static inline void ot_outputs(ot_case *c, int start, sg_rng *r)
{
    const int64_t one = 1;
    for (int i = 0; i < c->op->nslot; i++) {
        const ot_slot *s = &c->op->slot[i];
        if (s->role != OT_OUT && s->role != OT_ACC)
            continue;
        if (s->like < 0) {
            c->t[i] = ot_new(s->dt, 1, &one);
            continue;
        }
        const sg_tensor *like = c->t[s->like];
        if (!like)
            continue;
        c->t[i] = ot_new(s->dt, like->ndim, like->size);
        if (s->role == OT_OUT)
            sg_fill(c->t[i], 123.0);
        else if (start == OT_START_RANDOM)
            sg_rng_fill_uniform(r, sg_f32(c->t[i]), sg_tensor_numel(c->t[i]), -1, 1);
        else
            sg_fill(c->t[i], 0.0);
    }
}

/* dst := src's tensors copied to dev. */
static inline void ot_clone(ot_case *dst, const ot_case *src, sg_devtype dev)
{
    *dst = *src;
    for (int i = 0; i < src->op->nslot; i++) {
        const sg_tensor *t = src->t[i];
        dst->t[i] = t ? sg_tensor_new(t->dtype, dev, t->ndim, t->size) : NULL;
        if (t && (!dst->t[i] || sg_copy(dst->t[i], t) != 0)) {
            fprintf(stderr, "copy of %s to the device: %s\n", src->op->slot[i].name, sg_geterr());
            exit(1);
        }
    }
}

static inline int ot_run(ot_case *c)
{
    return c->op->forward(c) != 0 || (c->op->backward && c->op->backward(c) != 0) ? -1 : 0;
}

static inline void ot_free(ot_case *c)
{
    for (int i = 0; i < OT_NSLOT; i++)
        sg_tensor_release(c->t[i]);
    memset(c->t, 0, sizeof c->t);
}

/* "conv2d 2x3x5x6 k3x3 s1 p1 bias" and the like, for messages. */
static inline void ot_label(char *buf, size_t n, const ot_case *c)
{
    const ot_params *a = &c->a;
    int k = snprintf(buf, n, "%s", c->op->name);
    for (int i = 0; i < ot_rank(a->d) && k > 0 && (size_t)k < n; i++)
        k += snprintf(buf + k, n - (size_t)k, "%s%lld", i ? "x" : " ", (long long)a->d[i]);
    if (k > 0 && (size_t)k < n && (a->kernel[0] || a->stride[0] || a->pad[0]))
        k += snprintf(buf + k, n - (size_t)k, " k%lldx%lld s%lld p%lld", (long long)a->kernel[0],
                      (long long)a->kernel[1], (long long)a->stride[0], (long long)a->pad[0]);
    if (k > 0 && (size_t)k < n)
        snprintf(buf + k, n - (size_t)k, "%s%s%s", a->flag ? " bias/affine" : "",
                 a->update ? " update" : "", a->variant ? " variant" : "");
    if (a->block && k > 0 && (size_t)k < n) {
        size_t l = strlen(buf);
        snprintf(buf + l, n - l, " %s block %lld", a->block < 0 ? "per-thread" : "shared",
                 (long long)(a->block < 0 ? -a->block : a->block));
    }
}

#endif
