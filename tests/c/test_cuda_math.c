/*
 * test_cuda_math.c - the CUDA backend's memory and math against the CPU:
 * the caching pool (reuse, no device allocation in a steady-state loop, the
 * out-of-memory message naming the size), copies and the input copy stream,
 * pinned host memory, the fused SA-move vector updates, reductions (sum,
 * mean, max/min and their arg forms with the CPU's tie and NaN rules, dot,
 * norms, the finiteness test), tensor math dispatched by core/tensor.c for
 * CUDA tensors (element-wise, matmul incl. transposed views, TF32 option),
 * mixed-device errors, strided and converting copies, random fills of CUDA
 * tensors, and the on-device input transform against a CPU
 * reference of the loader's pixel rule. Skips visibly (exit 77) without a GPU.
 */
#include "cuda_testutil.h"

#ifdef SG_HAVE_CUDA

static void test_pool_and_copies(void)
{
    sg_cuda_mem_stats s0 = sg_cuda_get_mem_stats();
    void *a = sg_cuda_malloc(1000), *b = sg_cuda_malloc(3 << 20);
    CHECK(a && b, "pool: malloc failed: %s", sg_geterr());
    sg_cuda_free(a);
    sg_cuda_free(b);
    /* the same sizes again: served from the pool */
    sg_cuda_mem_stats s1 = sg_cuda_get_mem_stats();
    for (int it = 0; it < 50; it++) {
        void *x = sg_cuda_malloc(1000), *y = sg_cuda_malloc(3 << 20), *z = sg_cuda_malloc(999);
        CHECK(x && y && z, "pool: malloc failed: %s", sg_geterr());
        sg_cuda_free(z);
        sg_cuda_free(y);
        sg_cuda_free(x);
    }
    sg_cuda_mem_stats s2 = sg_cuda_get_mem_stats();
    if (!s2.caching) {
        printf("  ok pool: caching off (SGDSA_CUDA_NO_CACHE): %lld device allocations, "
               "%lld frees, no hits expected\n",
               (long long)s2.device_allocs, (long long)s2.device_frees);
        CHECK(s2.pool_hits == s0.pool_hits && s2.device_frees - s0.device_frees >= 152,
              "pool: caching off, yet %lld hits and %lld frees",
              (long long)(s2.pool_hits - s0.pool_hits),
              (long long)(s2.device_frees - s0.device_frees));
    } else {
        CHECK(s2.device_allocs - s1.device_allocs <= 1,
              "pool: %lld cudaMalloc calls in a steady-state loop",
              (long long)(s2.device_allocs - s1.device_allocs));
        CHECK(s2.pool_hits > s0.pool_hits + 100, "pool: only %lld hits",
              (long long)(s2.pool_hits - s0.pool_hits));
        printf("  ok pool: %lld device allocations, %lld hits, cached %zu bytes\n",
               (long long)s2.device_allocs, (long long)s2.pool_hits, s2.cached);
    }

    /* an absurd allocation: a clear message naming the size */
    void *huge = sg_cuda_malloc((size_t)1 << 50);
    CHECK(huge == NULL && (strstr(sg_geterr(), "out of memory") || strstr(sg_geterr(), "failed")) &&
              strstr(sg_geterr(), "1125899906842624"),
          "pool: absurd allocation gave %p, message '%s'", huge, sg_geterr());
    /* the failed cudaMalloc left no error behind for the next launch check */
    void *small = sg_cuda_malloc(4096);
    CHECK(small && sg_cuda_fill(small, SG_F32, 1024, 1.0) == 0,
          "pool: allocation or launch after the failed one: %s", sg_geterr());
    sg_cuda_free(small);
    printf("  ok out-of-memory message: %s\n", sg_geterr());

    /* copies: host -> device -> device -> host, and the input stream from pinned memory */
    const int64_t n = 100003;
    float *h = rnd(n, -1, 1);
    float *pin = sg_cuda_host_alloc((size_t)n * 4, NULL);
    CHECK(pin != NULL, "pinned alloc failed: %s", sg_geterr());
    if (!pin)
        return;
    memcpy(pin, h, (size_t)n * 4);
    float *d1 = dalloc((size_t)n * 4), *d2 = dalloc((size_t)n * 4);
    OK(sg_cuda_input_copy(1, d1, pin, (size_t)n * 4));
    OK(sg_cuda_input_ready(1));
    OK(sg_cuda_vec_scale_add(d1, d1, d2, n, 1.0f, 1.0f)); /* queued after the copy */
    OK(sg_cuda_input_wait(1));
    float *want = hbuf(n);
    for (int64_t i = 0; i < n; i++)
        want[i] = h[i] + h[i];
    cmp_dev("input copy stream then compute", d2, want, n, 0.0);
    OK(sg_cuda_memcpy(d2, d1, (size_t)n * 4, 1, 1));
    cmp_dev("device-to-device copy", d2, h, n, 0.0);
    OK(sg_cuda_fill(d2, SG_F32, n, 2.5));
    for (int64_t i = 0; i < n; i++)
        want[i] = 2.5f;
    cmp_dev("fill 2.5", d2, want, n, 0.0);
    sg_cuda_host_free(pin, NULL);
    sg_cuda_free(d1);
    sg_cuda_free(d2);
    free(h);
    free(want);
}

static void test_sa_move(void)
{
    const int64_t n = 1000003;
    float *w = rnd(n, -1, 1), *g = rnd(n, -1, 1), *v = rnd(n, -1, 1), *o = hbuf(n);
    float *dw = dup_f(w, n), *dg = dup_f(g, n), *dv = dup_f(v, n), *dout = dalloc((size_t)n * 4);
    /* The GPU rounds each product and sum as the CPU build does (no FMA
     * contraction): exact with the default CPU flags; the tolerance only
     * covers a CPU build that contracts a + alpha*x into an fma (-mfma). */
    const double tol = 1e-6;
    sg_cpu_vec_axpy(w, g, o, n, -0.07f);
    OK(sg_cuda_vec_axpy(dw, dg, dout, n, -0.07f));
    cmp_dev("SA move trial = w - eta*g", dout, o, n, tol);
    sg_cpu_vec_axpbypz(w, g, v, o, n, -0.1f, 0.9f);
    OK(sg_cuda_vec_axpbypz(dw, dg, dv, dout, n, -0.1f, 0.9f));
    cmp_dev("vec_axpbypz", dout, o, n, tol);
    sg_cpu_vec_scale_add(v, g, o, n, 0.9f, 1.0f);
    OK(sg_cuda_vec_scale_add(dv, dg, dout, n, 0.9f, 1.0f));
    cmp_dev("vec_scale_add (momentum)", dout, o, n, tol);
    /* in place: out aliases a */
    sg_cpu_vec_axpy(w, g, w, n, 0.5f);
    OK(sg_cuda_vec_axpy(dw, dg, dw, n, 0.5f));
    cmp_dev("vec_axpy in place", dw, w, n, tol);
    sg_cuda_free(dw); sg_cuda_free(dg); sg_cuda_free(dv); sg_cuda_free(dout);
    free(w); free(g); free(v); free(o);
}

/* CPU tensor + CUDA copy of it */
static sg_tensor *cpu_t(int ndim, const int64_t *size, float lo, float hi)
{
    sg_tensor *t = sg_tensor_new(SG_F32, SG_CPU, ndim, size);
    sg_rng_fill_uniform(&g_rng, sg_f32(t), sg_tensor_numel(t), lo, hi);
    return t;
}

static sg_tensor *to_cuda(const sg_tensor *t)
{
    sg_tensor *c = sg_tensor_new(t->dtype, SG_CUDA, t->ndim, t->size);
    if (!c || sg_copy(c, t) != 0) {
        fprintf(stderr, "to cuda failed: %s\n", sg_geterr());
        exit(1);
    }
    return c;
}

static void cmp_tensor(const char *what, const sg_tensor *gpu, const sg_tensor *cpu, double rtol)
{
    CHECK(sg_tensor_same_shape(gpu, cpu), "%s: shapes differ", what);
    cmp_dev(what, sg_f32(gpu), sg_f32(cpu), sg_tensor_numel(cpu), rtol);
}

static void test_reductions(void)
{
    int64_t sz[1] = {300007};
    sg_tensor *a = cpu_t(1, sz, -2, 1), *b = cpu_t(1, sz, -1, 1);
    float *pa = sg_f32(a);
    pa[1234] = 1.5f;   /* the maximum, twice: the first wins */
    pa[99999] = 1.5f;
    pa[777] = -3.0f;   /* the minimum */
    sg_tensor *ga = to_cuda(a), *gb = to_cuda(b);
    const sg_redop ops[] = {SG_RED_SUM, SG_RED_MEAN, SG_RED_MAX, SG_RED_MIN, SG_RED_ARGMAX,
                            SG_RED_ARGMIN};
    const char *names[] = {"sum", "mean", "max", "min", "argmax", "argmin"};
    for (int i = 0; i < 6; i++) {
        double c = 0, g = 0, g2 = 0;
        OK(sg_reduce_all(a, ops[i], &c));
        OK(sg_reduce_all(ga, ops[i], &g));
        OK(sg_reduce_all(ga, ops[i], &g2));
        CHECK(fabs(g - c) <= 1e-9 * (fabs(c) + 1.0) && g == g2, "%s: gpu %.17g (again %.17g) cpu %.17g",
              names[i], g, g2, c);
        printf("  ok reduce %-6s gpu %.10g cpu %.10g\n", names[i], g, c);
    }
    double c = 0, g = 0;
    OK(sg_dot(a, b, &c));
    OK(sg_dot(ga, gb, &g));
    CHECK(fabs(g - c) <= 1e-9 * (fabs(c) + 1.0), "dot: gpu %.17g cpu %.17g", g, c);
    const double ps[] = {1.0, 2.0, 3.0, INFINITY};
    for (int i = 0; i < 4; i++) {
        OK(sg_norm(a, ps[i], &c));
        OK(sg_norm(ga, ps[i], &g));
        CHECK(fabs(g - c) <= 1e-7 * (fabs(c) + 1.0), "norm p=%g: gpu %.17g cpu %.17g", ps[i], g, c);
    }
    printf("  ok dot and norms (1, 2, 3, inf)\n");
    int fc = -1, fg = -1;
    OK(sg_isfinite_all(ga, &fg));
    CHECK(fg == 1, "isfinite: finite tensor reported %d", fg);
    pa[5000] = NAN;
    pa[6000] = NAN;
    sg_tensor_release(ga);
    ga = to_cuda(a);
    OK(sg_isfinite_all(a, &fc));
    OK(sg_isfinite_all(ga, &fg));
    CHECK(fc == 0 && fg == 0, "isfinite with NaN: cpu %d gpu %d", fc, fg);
    OK(sg_reduce_all(a, SG_RED_ARGMAX, &c));
    OK(sg_reduce_all(ga, SG_RED_ARGMAX, &g));
    CHECK(c == g && g == 5000, "argmax with NaN: gpu %g cpu %g (the first NaN wins)", g, c);
    OK(sg_norm(a, INFINITY, &c));
    OK(sg_norm(ga, INFINITY, &g));
    CHECK(c == g, "inf-norm with NaN: gpu %.17g cpu %.17g (NaNs ignored, as fmax does)", g, c);
    printf("  ok isfinite and NaN rules\n");
    sg_tensor_release(a); sg_tensor_release(b); sg_tensor_release(ga); sg_tensor_release(gb);
}

static void test_tensor_dispatch(void)
{
    int64_t sz[2] = {37, 53};
    sg_tensor *a = cpu_t(2, sz, 0.5f, 2), *b = cpu_t(2, sz, 0.5f, 2);
    sg_tensor *ga = to_cuda(a), *gb = to_cuda(b);
    sg_tensor *o = sg_tensor_new(SG_F32, SG_CPU, 2, sz), *go = sg_tensor_new(SG_F32, SG_CUDA, 2, sz);
    const char *bn[] = {"add", "sub", "mul", "div"};
    for (int op = 0; op < 4; op++) {
        char t[64];
        OK(sg_binary(o, a, b, (sg_binop)op));
        OK(sg_binary(go, ga, gb, (sg_binop)op));
        snprintf(t, sizeof t, "tensor %s", bn[op]);
        cmp_tensor(t, go, o, 1e-6);
        OK(sg_binary_scalar(o, a, 1.7, (sg_binop)op, 1));
        OK(sg_binary_scalar(go, ga, 1.7, (sg_binop)op, 1));
        snprintf(t, sizeof t, "tensor scalar %s", bn[op]);
        cmp_tensor(t, go, o, 1e-6);
    }
    for (int fn = SG_FN_EXP; fn <= SG_FN_SQUARE; fn++) {
        char t[64];
        OK(sg_unary(o, a, (sg_unfn)fn));
        OK(sg_unary(go, ga, (sg_unfn)fn));
        snprintf(t, sizeof t, "tensor unary fn %d", fn);
        cmp_tensor(t, go, o, 1e-5);
    }
    OK(sg_clamp(o, a, 0.8, 1.2));
    OK(sg_clamp(go, ga, 0.8, 1.2));
    cmp_tensor("tensor clamp", go, o, 0.0);
    OK(sg_add_scaled(o, a, -0.3, b));
    OK(sg_add_scaled(go, ga, -0.3, gb));
    cmp_tensor("tensor add_scaled", go, o, 1e-7);
    /* a fresh output workspace is resized on the device */
    sg_tensor *fresh = sg_tensor_new(SG_F32, SG_CUDA, 1, sz);
    OK(sg_binary(fresh, ga, gb, SG_OP_ADD));
    OK(sg_binary(o, a, b, SG_OP_ADD));
    cmp_tensor("tensor add into a resized output", fresh, o, 1e-6);

    /* mixed devices: a clear error naming both */
    int rc = sg_binary(go, ga, b, SG_OP_ADD);
    CHECK(rc != 0 && strstr(sg_geterr(), "cuda") && strstr(sg_geterr(), "cpu"),
          "mixed devices: rc %d, message '%s'", rc, sg_geterr());
    printf("  ok mixed devices: %s\n", sg_geterr());

    /* matmul, plain and through transposed views, fp32 and TF32 */
    int64_t ms[2] = {65, 130}, ks[2] = {130, 47};
    sg_tensor *m1 = cpu_t(2, ms, -1, 1), *m2 = cpu_t(2, ks, -1, 1);
    sg_tensor *g1 = to_cuda(m1), *g2 = to_cuda(m2);
    int64_t one[1] = {1};
    sg_tensor *mo = sg_tensor_new(SG_F32, SG_CPU, 1, one), *gmo = sg_tensor_new(SG_F32, SG_CUDA, 1, one);
    OK(sg_matmul(mo, m1, m2));
    OK(sg_matmul(gmo, g1, g2));
    cmp_tensor("matmul 65x130 @ 130x47", gmo, mo, 1e-5);
    sg_tensor *t1 = sg_tensor_transpose(m2, 0, 1), *t2 = sg_tensor_transpose(m1, 0, 1);
    sg_tensor *gt1 = sg_tensor_transpose(g2, 0, 1), *gt2 = sg_tensor_transpose(g1, 0, 1);
    OK(sg_matmul(mo, t1, t2));
    OK(sg_matmul(gmo, gt1, gt2));
    cmp_tensor("matmul transposed views 47x130 @ 130x65", gmo, mo, 1e-5);
    sg_cuda_set_tf32(1);
    OK(sg_matmul(gmo, gt1, gt2));
    cmp_tensor("matmul TF32 (loose tolerance)", gmo, mo, 3e-2);
    sg_cuda_set_tf32(0);
    sg_tensor_release(t1); sg_tensor_release(t2); sg_tensor_release(gt1); sg_tensor_release(gt2);
    sg_tensor_release(m1); sg_tensor_release(m2); sg_tensor_release(g1); sg_tensor_release(g2);
    sg_tensor_release(mo); sg_tensor_release(gmo); sg_tensor_release(fresh);
    sg_tensor_release(a); sg_tensor_release(b); sg_tensor_release(ga); sg_tensor_release(gb);
    sg_tensor_release(o); sg_tensor_release(go);
}

/* Two host arrays must be identical. */
static void same_host(const char *what, const float *got, const float *want, int64_t n)
{
    int64_t bad = -1;
    for (int64_t i = 0; i < n && bad < 0; i++)
        if (memcmp(&got[i], &want[i], sizeof(float)) != 0)
            bad = i;
    if (bad >= 0)
        CHECK(0, "%s: element %lld of %lld: got %.9g, want %.9g", what, (long long)bad,
              (long long)n, got[bad], want[bad]);
    else
        printf("  ok %-44s n=%-9lld identical\n", what, (long long)n);
}

/* Copies that are not one plain cudaMemcpy: strided views on either side,
 * dtype conversions, fills of strided views, and random fills of CUDA
 * tensors (drawn on the host: the same values as on the CPU). */
static void test_strided_copies(void)
{
    int64_t sz[3] = {5, 7, 9};
    sg_tensor *a = cpu_t(3, sz, -1, 1), *ga = to_cuda(a);
    /* gpu view -> contiguous gpu (:contiguous(), :clone()) and -> cpu */
    sg_tensor *tv = sg_tensor_transpose(a, 0, 2), *gtv = sg_tensor_transpose(ga, 0, 2);
    sg_tensor *want = sg_tensor_contiguous(tv), *gc = sg_tensor_contiguous(gtv);
    CHECK(gc != NULL, "contiguous() of a transposed cuda view: %s", sg_geterr());
    if (gc) {
        CHECK(gc->storage->device == SG_CUDA && sg_tensor_is_contiguous(gc), "contiguous() result");
        cmp_tensor("gpu transposed view -> contiguous gpu", gc, want, 0.0);
    }
    sg_tensor *h = sg_tensor_new(SG_F32, SG_CPU, gtv->ndim, gtv->size);
    OK(sg_copy(h, gtv));
    same_host("gpu transposed view -> cpu", sg_f32(h), sg_f32(want), sg_tensor_numel(h));
    /* cpu view -> gpu view (both strided) */
    sg_tensor *gd = sg_tensor_new(SG_F32, SG_CUDA, 3, sz);
    OK(sg_fill(gd, 0));
    sg_tensor *gdv = sg_tensor_transpose(gd, 0, 2);
    OK(sg_copy(gdv, tv));
    cmp_tensor("cpu view -> gpu view (round trip)", gd, a, 0.0);
    /* gpu -> strided cpu destination */
    sg_tensor *hc = sg_tensor_new(SG_F32, SG_CPU, 3, sz);
    sg_tensor *hcv = sg_tensor_transpose(hc, 0, 2);
    OK(sg_copy(hcv, gtv));
    same_host("gpu view -> cpu view", sg_f32(hc), sg_f32(a), sg_tensor_numel(a));
    /* a narrow (non-contiguous) view filled on the device */
    sg_tensor *nv = sg_tensor_narrow(gd, 2, 3, 4);
    OK(sg_fill(nv, 2.5));
    sg_tensor *back = sg_tensor_new(SG_F32, SG_CPU, 3, sz);
    OK(sg_copy(back, gd));
    int bad = 0;
    for (int64_t i = 0; i < 5; i++)
        for (int64_t j = 0; j < 7; j++)
            for (int64_t k = 0; k < 9; k++) {
                float v = sg_f32(back)[(i * 7 + j) * 9 + k], o = sg_f32(a)[(i * 7 + j) * 9 + k];
                bad += (k >= 3 && k < 7) ? v != 2.5f : v != o;
            }
    CHECK(bad == 0, "fill of a narrow cuda view: %d wrong elements", bad);
    printf("  ok fill of a strided cuda view\n");
    /* dtype conversions with a gpu side */
    sg_tensor *gi = sg_tensor_new(SG_I32, SG_CUDA, 3, sz), *hi = sg_tensor_new(SG_I32, SG_CPU, 3, sz);
    sg_tensor *scaled = sg_tensor_new(SG_F32, SG_CPU, 3, sz);
    OK(sg_binary_scalar(scaled, a, 100.0, SG_OP_MUL, 0));
    sg_tensor *gscaled = to_cuda(scaled);
    OK(sg_copy(gi, gscaled));   /* float32 gpu -> int32 gpu */
    OK(sg_copy(hi, scaled));    /* the cpu's conversion */
    int32_t *gih = calloc((size_t)sg_tensor_numel(a), sizeof *gih);
    down_i(gih, sg_tensor_data(gi), sg_tensor_numel(a));
    CHECK(!memcmp(gih, sg_tensor_data(hi), (size_t)sg_tensor_numel(a) * 4),
          "float32 -> int32 on the gpu differs from the cpu conversion");
    sg_tensor *gf = sg_tensor_new(SG_F32, SG_CUDA, 3, sz), *hf = sg_tensor_new(SG_F32, SG_CPU, 3, sz);
    OK(sg_copy(gf, gi));
    OK(sg_copy(hf, hi));
    cmp_tensor("int32 gpu -> float32 gpu", gf, hf, 0.0);
    free(gih);
    sg_tensor *ts[] = {a, ga, tv, gtv, want, gc, h, gd, gdv, hc, hcv, nv, back, gi, hi,
                       scaled, gscaled, gf, hf};
    for (size_t i = 0; i < sizeof ts / sizeof *ts; i++)
        sg_tensor_release(ts[i]);
}

/* uniform_/normal_ on cuda tensors (a kernel drawing from the generator's
 * position, core/rng_draw.h): the cpu's values from the same generator state,
 * for contiguous tensors and transposed views, from every word offset within
 * a Philox block, and both generators left at the same position. Uniforms
 * are exact; normals go through the device's double log and cos, within an
 * ulp or so of the host's (exact on the emulator, which uses the host's). */
static void test_random_fills(void)
{
    int64_t sz[2] = {301, 233}; /* 70133 values */
    for (int normal = 0; normal <= 1; normal++) {
        for (int skip = 0; skip < 5; skip++) {
            for (int transposed = 0; transposed <= 1; transposed++) {
                sg_tensor *hb = sg_tensor_new(SG_F32, SG_CPU, 2, sz), *gb = sg_tensor_new(SG_F32, SG_CUDA, 2, sz);
                sg_tensor *h = transposed ? sg_tensor_transpose(hb, 0, 1) : hb;
                sg_tensor *g = transposed ? sg_tensor_transpose(gb, 0, 1) : gb;
                sg_rng r1, r2;
                sg_rng_init(&r1, 7, sg_rng_hash("search"));
                for (int i = 0; i < skip; i++) sg_rng_u32(&r1);
                r2 = r1;
                if (normal) {
                    OK(sg_tensor_normal(h, &r1, 0.25, 2.0));
                    OK(sg_tensor_normal(g, &r2, 0.25, 2.0));
                } else {
                    OK(sg_tensor_uniform(h, &r1, -2.0, 3.0));
                    OK(sg_tensor_uniform(g, &r2, -2.0, 3.0));
                }
                char what[96];
                snprintf(what, sizeof what, "%s_ on a cuda %s (word offset %d)", normal ? "normal" : "uniform",
                         transposed ? "transposed view" : "tensor", skip);
                cmp_tensor(what, gb, hb, normal ? 3e-7 : 0.0);
                uint64_t s1[SG_RNG_STATE_LEN], s2[SG_RNG_STATE_LEN];
                sg_rng_get_state(&r1, s1);
                sg_rng_get_state(&r2, s2);
                CHECK(!memcmp(s1, s2, sizeof s1), "%s: the generators advanced differently", what);
                if (transposed) {
                    sg_tensor_release(h);
                    sg_tensor_release(g);
                }
                sg_tensor_release(hb);
                sg_tensor_release(gb);
            }
        }
    }
    printf("  ok uniform_/normal_ on the gpu: the cpu's draws, contiguous and transposed, every block offset\n");
}

/* The loader's pixel rule (core/data.h) on the CPU, as the reference: the
 * lookup table as core/data_loader.c builds it, indexed by the source pixel
 * (0 outside the source). */
/* pad2d / crop2d against the obvious loops (exact). */
static void test_pad_crop(int64_t planes, int64_t h, int64_t w, int64_t p)
{
    const int64_t Ho = h + 2 * p, Wo = w + 2 * p, nx = planes * h * w, ny = planes * Ho * Wo;
    float *x = rnd(nx, -1, 1), *y = hbuf(ny), *dy = rnd(ny, -1, 1), *dx = hbuf(nx);
    for (int64_t pl = 0; pl < planes; pl++)
        for (int64_t i = 0; i < Ho; i++)
            for (int64_t j = 0; j < Wo; j++) {
                const int64_t si = i - p, sj = j - p;
                y[(pl * Ho + i) * Wo + j] = si >= 0 && si < h && sj >= 0 && sj < w
                    ? x[(pl * h + si) * w + sj] : 0.0f;
            }
    for (int64_t pl = 0; pl < planes; pl++)
        for (int64_t i = 0; i < h; i++)
            for (int64_t j = 0; j < w; j++)
                dx[(pl * h + i) * w + j] = dy[(pl * Ho + i + p) * Wo + j + p];
    float *d_x = dup_f(x, nx), *d_dy = dup_f(dy, ny);
    float *d_y = dalloc((size_t)ny * 4), *d_dx = dalloc((size_t)nx * 4);
    OK(sg_cuda_pad2d(d_x, d_y, planes, h, w, p));
    OK(sg_cuda_crop2d(d_dy, d_dx, planes, h, w, p));
    float *gy = hbuf(ny), *gdx = hbuf(nx);
    OK(sg_cuda_memcpy(gy, d_y, (size_t)ny * 4, 0, 1));
    OK(sg_cuda_memcpy(gdx, d_dx, (size_t)nx * 4, 0, 1));
    same_host("pad2d", gy, y, ny);
    same_host("crop2d", gdx, dx, nx);
    sg_cuda_free(d_x); sg_cuda_free(d_dy); sg_cuda_free(d_y); sg_cuda_free(d_dx);
    free(x); free(y); free(dy); free(dx); free(gy); free(gdx);
}

static void make_lut(float *lut, int c, const double *mean, const double *std)
{
    for (int ch = 0; ch < c; ch++)
        for (int v = 0; v < 256; v++)
            lut[ch * 256 + v] = (float)((v * (1.0 / 255.0) - mean[ch]) / std[ch]);
}

static void input_ref(const uint8_t *x, float *y, const int32_t *dy, const int32_t *dx,
                      const int32_t *flip, int64_t n, int c, int h, int w, int pad,
                      const float *lut)
{
    int Ho = h + 2 * pad, Wo = w + 2 * pad;
    for (int64_t i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++)
            for (int oy = 0; oy < Ho; oy++)
                for (int ox = 0; ox < Wo; ox++) {
                    int sy = oy + dy[i] - pad;
                    int sx = (flip[i] ? Wo - 1 - ox : ox) + dx[i] - pad;
                    int v = 0;
                    if (sy >= 0 && sy < h && sx >= 0 && sx < w)
                        v = x[((i * c + ch) * h + sy) * w + sx];
                    y[((i * c + ch) * Ho + oy) * Wo + ox] = lut[ch * 256 + v];
                }
}

static void test_input_transform(void)
{
    const int64_t n = 9, cap = 12; /* a short last batch in a loader of batch 12 */
    const int c = 3, h = 8, w = 6, pad = 2;
    const int Ho = h + 2 * pad, Wo = w + 2 * pad;
    int64_t nx = n * c * h * w, ny = n * c * Ho * Wo;
    uint8_t *x = malloc((size_t)nx);
    for (int64_t i = 0; i < nx; i++)
        x[i] = (uint8_t)(sg_rng_u32(&g_rng) & 255);
    /* the raw loader's aug buffer: dy[cap] dx[cap] flip[cap], then the table */
    size_t aug_bytes = (size_t)cap * 3 * 4 + (size_t)c * 256 * 4;
    int32_t *aug = calloc(1, aug_bytes);
    int32_t *dy = aug, *dx = aug + cap, *fl = aug + 2 * cap;
    float *lut = (float *)(aug + 3 * cap);
    for (int i = 0; i < n; i++) {
        dy[i] = (int32_t)(sg_rng_u32(&g_rng) % 5) - 2;
        dx[i] = (int32_t)(sg_rng_u32(&g_rng) % 5) - 2;
        fl[i] = (int32_t)(sg_rng_u32(&g_rng) & 1);
    }
    const double mean[3] = {0.49, 0.48, 0.45}, std[3] = {0.25, 0.24, 0.26};
    make_lut(lut, c, mean, std);
    float *want = hbuf(ny);
    input_ref(x, want, dy, dx, fl, n, c, h, w, pad, lut);
    uint8_t *d_x = dalloc((size_t)nx);
    OK(sg_cuda_memcpy(d_x, x, (size_t)nx, 1, 0));
    int32_t *d_dy = dup_i(dy, 9), *d_dx = dup_i(dx, 9), *d_fl = dup_i(fl, 9);
    float *d_lut = dalloc((size_t)c * 256 * 4);
    OK(sg_cuda_memcpy(d_lut, lut, (size_t)c * 256 * 4, 1, 0));
    float *d_y = dalloc((size_t)ny * 4);
    OK(sg_cuda_input_transform(d_x, d_y, d_dy, d_dx, d_fl, n, c, h, w, pad, d_lut));
    cmp_dev("input transform (pad, crop, flip, normalize)", d_y, want, ny, 0.0);

    /* the same through an input slot: pinned raw buffers, copy stream, staging */
    uint8_t *px = sg_cuda_host_alloc((size_t)nx, NULL);
    int32_t *paug = sg_cuda_host_alloc(aug_bytes, NULL);
    CHECK(px && paug, "pinned alloc failed: %s", sg_geterr());
    if (px && paug) {
        memcpy(px, x, (size_t)nx);
        memcpy(paug, aug, aug_bytes);
        OK(sg_cuda_fill(d_y, SG_F32, ny, -7.0));
        OK(sg_cuda_input_expand(1, d_y, px, n, cap, paug, aug_bytes, c, h, w, pad));
        OK(sg_cuda_input_ready(1));
        OK(sg_cuda_input_wait(1));
        cmp_dev("input slot: raw batch expanded on the copy stream", d_y, want, ny, 0.0);
        CHECK(sg_cuda_input_expand(2, d_y, px, n, cap, paug, aug_bytes, c, h, w, pad) != 0,
              "slot 2 accepted");
        CHECK(sg_cuda_input_expand(0, d_y, px, n, cap, paug, 16, c, h, w, pad) != 0,
              "a short aug buffer accepted");
        printf("  ok bad input_expand arguments: %s\n", sg_geterr());
    }
    sg_cuda_host_free(px, NULL);
    sg_cuda_host_free(paug, NULL);

    int32_t z[9] = {0};
    input_ref(x, want, z, z, z, n, c, h, w, pad, lut);
    OK(sg_cuda_input_transform(d_x, d_y, NULL, NULL, NULL, n, c, h, w, pad, d_lut));
    cmp_dev("input transform (pad, normalize only)", d_y, want, ny, 0.0);
    sg_cuda_free(d_x); sg_cuda_free(d_dy); sg_cuda_free(d_dx); sg_cuda_free(d_fl);
    sg_cuda_free(d_y); sg_cuda_free(d_lut);
    free(x); free(want); free(aug);
}

int main(void)
{
    cuda_test_begin("the CUDA memory and math tests", 99, "test_cuda_math");
    test_pool_and_copies();
    test_sa_move();
    test_tensor_dispatch();
    /* the kernels that divide indices, with int32 index arithmetic (what
     * these sizes get) and with the int64 kernels of larger tensors */
    for (int wide = 0; wide <= 1; wide++) {
        sg_cuda_set_index64(wide);
        printf("index arithmetic: %s\n", wide ? "int64 (forced)" : "int32");
        test_reductions();
        test_strided_copies();
        test_random_fills();
        test_input_transform();
        test_pad_crop(6, 7, 5, 2);
        test_pad_crop(1, 3, 3, 0);
    }
    sg_cuda_set_index64(0);
    OK(sg_cuda_synchronize());
    return check_done("test_cuda_math", "all CUDA memory and math checks passed");
}

#else
CUDA_TEST_SKIP_MAIN("the CUDA memory and math tests (built without the CUDA backend)")
#endif
