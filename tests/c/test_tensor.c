/* test_tensor.c - the C tensor core: geometry, views, strided math against
 * naive loops, matmul against a triple loop, error messages, storage swap. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "rng.h"
#include "tensor.h"

#include "check.h"

static sg_tensor *mk(int nd, int64_t a, int64_t b, int64_t c)
{
    int64_t s[3] = {a, b, c};
    return sg_tensor_new(SG_F32, SG_CPU, nd, s);
}

int main(void)
{
    sg_rng r;
    sg_rng_init(&r, 5, 1);

    sg_tensor *a = mk(2, 3, 4, 0);
    for (int i = 0; i < 12; i++) sg_f32(a)[i] = (float)i;
    CHECK(sg_tensor_numel(a) == 12 && sg_tensor_is_contiguous(a), "new");

    /* transpose is a view with swapped strides */
    sg_tensor *at = sg_tensor_transpose(a, 0, 1);
    CHECK(at->size[0] == 4 && at->size[1] == 3 && !sg_tensor_is_contiguous(at), "transpose");
    int64_t idx[2] = {3, 1}, off;
    CHECK(sg_tensor_offset_of(at, idx, &off) == 0 && sg_tensor_get(at, off) == 7, "transposed element");

    /* contiguous copy of a transpose */
    sg_tensor *atc = sg_tensor_contiguous(at);
    CHECK(sg_tensor_is_contiguous(atc) && sg_f32(atc)[1] == 4 && sg_f32(atc)[3] == 1, "contiguous copy");

    /* narrow + fill writes through the view only */
    sg_tensor *col = sg_tensor_narrow(a, 1, 1, 2);
    sg_fill(col, -1);
    CHECK(sg_f32(a)[0] == 0 && sg_f32(a)[1] == -1 && sg_f32(a)[2] == -1 && sg_f32(a)[3] == 3, "narrow fill");

    /* strided binary op vs naive */
    sg_tensor *x = mk(2, 4, 3, 0), *y = mk(2, 4, 3, 0), *o = mk(2, 4, 3, 0);
    sg_tensor_uniform(x, &r, -1, 1);
    sg_binary(o, at, x, SG_OP_MUL);
    int ok = 1;
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++) {
            int64_t ij[2] = {i, j}, oa;
            sg_tensor_offset_of(at, ij, &oa);
            if (sg_f32(o)[i * 3 + j] != (float)sg_tensor_get(at, oa) * sg_f32(x)[i * 3 + j]) ok = 0;
        }
    CHECK(ok, "strided mul");

    /* shape mismatch message */
    sg_tensor *bad = mk(2, 3, 4, 0);
    CHECK(sg_binary(o, x, bad, SG_OP_ADD) != 0 && strstr(sg_geterr(), "add: shapes 4x3 and 3x4 differ"),
          "mismatch message: %s", sg_geterr());

    /* matmul (with a transposed operand) vs triple loop */
    sg_tensor *m1 = mk(2, 5, 7, 0), *m2 = mk(2, 6, 7, 0), *mo = mk(2, 1, 1, 0);
    sg_tensor_normal(m1, &r, 0, 1);
    sg_tensor_normal(m2, &r, 0, 1);
    sg_tensor *m2t = sg_tensor_transpose(m2, 0, 1); /* 7x6 */
    CHECK(sg_matmul(mo, m1, m2t) == 0 && mo->size[0] == 5 && mo->size[1] == 6, "matmul shape");
    double maxerr = 0;
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 6; j++) {
            double s = 0;
            for (int k = 0; k < 7; k++) s += (double)sg_f32(m1)[i * 7 + k] * sg_f32(m2)[j * 7 + k];
            maxerr = fmax(maxerr, fabs(s - sg_f32(mo)[i * 6 + j]));
        }
    CHECK(maxerr < 1e-4, "matmul error %g", maxerr);
    CHECK(sg_matmul(mo, m1, m2) != 0 && strstr(sg_geterr(), "matmul: shapes 5x7 and 6x7"), "matmul msg: %s", sg_geterr());

    /* reductions */
    double v;
    sg_tensor *e = mk(2, 2, 3, 0);
    float ev[6] = {1, 5, 2, -3, 4, 0};
    memcpy(sg_f32(e), ev, sizeof ev);
    sg_reduce_all(e, SG_RED_SUM, &v); CHECK(v == 9, "sum %g", v);
    sg_reduce_all(e, SG_RED_ARGMAX, &v); CHECK(v == 1, "argmax %g", v);
    sg_reduce_all(e, SG_RED_MIN, &v); CHECK(v == -3, "min %g", v);
    sg_tensor *red = mk(1, 1, 0, 0);
    sg_reduce_dim(red, e, 0, SG_RED_MAX);
    CHECK(red->ndim == 2 && red->size[0] == 1 && sg_f32(red)[0] == 1 && sg_f32(red)[1] == 5 && sg_f32(red)[2] == 2, "max dim 1");
    sg_reduce_dim(red, e, 1, SG_RED_MEAN);
    CHECK(red->size[0] == 2 && fabsf(sg_f32(red)[0] - 8.0f / 3) < 1e-6f && fabsf(sg_f32(red)[1] - 1.0f / 3) < 1e-6f, "mean dim 2");

    /* view, -1 inference, and a view of a non-contiguous tensor is refused */
    int64_t vs[2] = {-1, 2};
    sg_tensor *vw = sg_tensor_view(a, 2, vs);
    CHECK(vw && vw->size[0] == 6, "view -1");
    CHECK(sg_tensor_view(at, 2, vs) == NULL && strstr(sg_geterr(), "not contiguous"), "view non-contiguous: %s", sg_geterr());

    /* absurd and negative sizes are errors, not aborts */
    int64_t huge[2] = {1ll << 30, 1ll << 30};
    CHECK(sg_tensor_new(SG_F32, SG_CPU, 2, huge) == NULL && strstr(sg_geterr(), "absurd"), "absurd: %s", sg_geterr());
    int64_t neg[1] = {-2};
    CHECK(sg_tensor_new(SG_F32, SG_CPU, 1, neg) == NULL && strstr(sg_geterr(), "negative"), "negative: %s", sg_geterr());
    int64_t big[1] = {1ll << 38}; /* 1 TiB: allocation g_failures cleanly */
    sg_tensor *bt = sg_tensor_new(SG_F32, SG_CPU, 1, big);
    CHECK(bt == NULL && strstr(sg_geterr(), "out of memory"), "oom: %s", sg_geterr());

    /* storage swap: every view sees the other buffer */
    sg_tensor *w = mk(1, 4, 0, 0), *tr = mk(1, 4, 0, 0);
    sg_fill(w, 1); sg_fill(tr, 2);
    sg_tensor *wv = sg_tensor_narrow(w, 0, 1, 2);
    CHECK(sg_storage_swap(w->storage, tr->storage) == 0 && sg_f32(wv)[0] == 2 && sg_f32(tr)[0] == 1, "swap");

    /* freed tensors are rejected */
    sg_tensor_free(w);
    CHECK(sg_fill(w, 0) != 0 && strstr(sg_geterr(), "freed"), "freed: %s", sg_geterr());

    /* resize reuses storage when it fits (no allocation in steady state) */
    sg_tensor *ws = mk(1, 100, 0, 0);
    void *p = ws->storage->data;
    int64_t s50[2] = {5, 10};
    sg_tensor_resize(ws, 2, s50);
    CHECK(ws->storage->data == p, "resize smaller reallocated");

    sg_tensor *all[] = {a, at, atc, col, x, y, o, bad, m1, m2, mo, m2t, e, red, vw, w, tr, wv, ws};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) sg_tensor_release(all[i]);
    return check_done("test_tensor", "all checks passed");
}
