/*
 * test_nn_grad.c - finite-difference gradient checks of every op in the op
 * table (op_table.h) that has gradients, on the CPU, for input and parameter
 * gradients.
 *
 * Each op's scalar loss is L = sum(y * dy) with a fixed random dy (the loss
 * itself for a loss op), so dy is what the backward gets. Every element of
 * small inputs, weights and biases is perturbed (central differences,
 * double-precision loss). Parameter gradients are checked on top of a
 * non-zero starting buffer, which also checks that they accumulate (+=)
 * instead of overwrite; input gradients start at 123 and must be
 * overwritten. The checker itself is shown to reject a gradient with two
 * entries swapped (a wrong index). Fixed seeds; runs in about a second.
 */
#include "op_table.h"

static sg_rng R;

static double case_loss(void *v)
{
    ot_case *c = v;
    if (c->op->forward(c) != 0) {
        fprintf(stderr, "%s forward failed: %s\n", c->op->name, sg_geterr());
        exit(1);
    }
    if (c->op->y < 0)
        return c->loss;
    return dot_d(sg_f32(c->t[c->op->y]), sg_f32(c->t[c->op->dy]),
                 sg_tensor_numel(c->t[c->op->y]));
}

/* A host copy of t's floats (minus start's when given). */
static float *grad_of(const sg_tensor *t, const float *start)
{
    const int64_t n = sg_tensor_numel(t);
    float *g = tbuf(n);
    memcpy(g, sg_f32(t), (size_t)n * sizeof(float));
    for (int64_t i = 0; start && i < n; i++)
        g[i] -= start[i];
    return g;
}

/* Make and run one case of op; the analytic gradients of its pairs in ana[]
 * (NULL where the input is absent). Returns -1 after a failed run. */
static int run_case(ot_case *c, const ot_op *op, const ot_params *a, float *ana[3])
{
    ot_init(c, op, a);
    op->make(c, &R, OT_FOR_GRAD);
    ot_outputs(c, OT_START_RANDOM, &R);
    float *start[3] = { NULL, NULL, NULL };
    for (int k = 0; k < op->ngrad; k++) {
        const sg_tensor *g = c->t[op->grad[k][1]];
        if (g && op->slot[op->grad[k][1]].role == OT_ACC)
            start[k] = grad_of(g, NULL);
    }
    int rc = ot_run(c);
    char label[200];
    ot_label(label, sizeof label, c);
    CHECK(rc == 0, "%s: %s", label, sg_geterr());
    for (int k = 0; k < op->ngrad; k++) {
        const sg_tensor *g = c->t[op->grad[k][1]];
        ana[k] = rc == 0 && g ? grad_of(g, start[k]) : NULL;
        free(start[k]);
    }
    return rc;
}

static void grad_case(const ot_op *op, const ot_params *a)
{
    ot_case c;
    float *ana[3];
    if (run_case(&c, op, a, ana) == 0) {
        char label[200], what[260];
        ot_label(label, sizeof label, &c);
        for (int k = 0; k < op->ngrad; k++) {
            sg_tensor *x = c.t[op->grad[k][0]];
            if (!x)
                continue;
            snprintf(what, sizeof what, "%s: %s", label, op->slot[op->grad[k][0]].name);
            check_grad(what, sg_f32(x), ana[k], sg_tensor_numel(x), case_loss, &c, op->fd_eps);
            free(ana[k]);
        }
    }
    ot_free(&c);
}

/* The checker must reject a gradient with two entries swapped. */
static void test_checker_catches_wrong_index(void)
{
    const ot_op *lin = ot_find("linear");
    const ot_params a = OT_WITH(3, 4, 5, 1, 0, 0, 0);
    ot_case c;
    float *ana[3];
    if (run_case(&c, lin, &a, ana) != 0) {
        CHECK(0, "self-test: no linear case");
        return;
    }
    float *x = sg_f32(c.t[W_X]), *dx = ana[0];
    int good = check_grad_tol("self-test (correct)", x, dx, 12, case_loss, &c, 1e-2f, 1e-2,
                              1e-3, 0);
    EXPECT(good == 0, "checker rejected a correct gradient");
    float t = dx[5];
    dx[5] = dx[6];
    dx[6] = t;
    int bad = check_grad_tol("self-test (swapped)", x, dx, 12, case_loss, &c, 1e-2f, 1e-2,
                             1e-3, 1);
    EXPECT(bad >= 2, "checker accepted a gradient with two entries swapped (%d bad)", bad);
    for (int k = 0; k < lin->ngrad; k++)
        free(ana[k]);
    ot_free(&c);
}

int main(void)
{
    sg_rng_init(&R, 20240601, sg_rng_hash("test_nn_grad"));
    test_checker_catches_wrong_index();
    int ncases = 0;
    for (int i = 0; i < OT_NOPS; i++)
        for (int j = 0; j < ot_ops[i].ngrad_cases; j++, ncases++)
            grad_case(&ot_ops[i], &ot_ops[i].grad_cases[j]);
    printf("%d cases of %d ops\n", ncases, OT_NOPS);
    return check_done("test_nn_grad", "all gradient checks passed");
}
