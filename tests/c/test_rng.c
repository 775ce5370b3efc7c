/* test_rng.c - Philox4x32-10 known answers (Random123), stream independence,
 * exact state save/restore, unbiased integer draws and distribution moments;
 * where/skip, and tensor fills (parallel, any strides) that draw exactly what
 * the sequential calls draw and leave the generator where they leave it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"
#include "tensor.h"
#include "nn.h"

#include "check.h"

/* The same serialized state (seed, stream, counter, word position). */
static int same_state(const sg_rng *a, const sg_rng *b)
{
    uint64_t sa[SG_RNG_STATE_LEN], sb[SG_RNG_STATE_LEN];
    sg_rng_get_state(a, sa);
    sg_rng_get_state(b, sb);
    return !memcmp(sa, sb, sizeof sa);
}

int main(void)
{
    uint32_t o[4];
    /* Random123 kat_vectors: philox4x32 10 rounds */
    sg_philox4x32(0, 0, 0, o);
    CHECK(o[0] == 0x6627e8d5u && o[1] == 0xe169c58du && o[2] == 0xbc57ac4cu && o[3] == 0x9b00dbd8u,
          "kat zero: %08x %08x %08x %08x", o[0], o[1], o[2], o[3]);
    sg_philox4x32(~0ull, ~0ull, ~0ull, o);
    CHECK(o[0] == 0x408f276du && o[1] == 0x41c83b0eu && o[2] == 0xa20bc7c6u && o[3] == 0x6d5451fdu,
          "kat ones: %08x %08x %08x %08x", o[0], o[1], o[2], o[3]);

    /* streams: different names, different draws; same name+seed, same draws */
    sg_rng a, b, c;
    sg_rng_init(&a, 7, sg_rng_hash("search"));
    sg_rng_init(&b, 7, sg_rng_hash("search"));
    sg_rng_init(&c, 7, sg_rng_hash("shuffle"));
    int same = 1, diff = 0;
    for (int i = 0; i < 100; i++) {
        uint32_t x = sg_rng_u32(&a), y = sg_rng_u32(&b), z = sg_rng_u32(&c);
        same &= x == y;
        diff += x != z;
    }
    CHECK(same, "same stream must repeat");
    CHECK(diff > 95, "different streams must differ (%d/100)", diff);

    /* state save/restore mid-block */
    for (int skip = 0; skip < 9; skip++) {
        sg_rng r, s;
        sg_rng_init(&r, 42, 3);
        for (int i = 0; i < skip; i++) sg_rng_u32(&r);
        uint64_t st[SG_RNG_STATE_LEN];
        sg_rng_get_state(&r, st);
        sg_rng_init(&s, 0, 0);
        CHECK(sg_rng_set_state(&s, st) == 0, "set_state");
        for (int i = 0; i < 20; i++)
            CHECK(sg_rng_u32(&r) == sg_rng_u32(&s), "restored stream diverges (skip %d, draw %d)", skip, i);
    }
    uint64_t bad[4] = {1, 2, 3, 9};
    sg_rng t;
    CHECK(sg_rng_set_state(&t, bad) != 0, "invalid state must be rejected");

    /* moments of uniform and normal draws (n = 200000, 5-sigma bounds) */
    sg_rng r;
    sg_rng_init(&r, 1, sg_rng_hash("test"));
    int n = 200000;
    double su = 0, sn = 0, sn2 = 0;
    for (int i = 0; i < n; i++) {
        double u = sg_rng_uniform(&r);
        CHECK(u >= 0 && u < 1, "uniform out of range %g", u);
        su += u;
        double z = sg_rng_normal(&r);
        sn += z;
        sn2 += z * z;
    }
    CHECK(fabs(su / n - 0.5) < 5 * sqrt(1.0 / 12 / n), "uniform mean %g", su / n);
    CHECK(fabs(sn / n) < 5 / sqrt(n), "normal mean %g", sn / n);
    CHECK(fabs(sn2 / n - 1) < 5 * sqrt(2.0 / n), "normal variance %g", sn2 / n);

    /* below(n): every value hit, counts within 5 sigma */
    int cnt[7] = {0};
    for (int i = 0; i < 70000; i++) cnt[sg_rng_below(&r, 7)]++;
    for (int k = 0; k < 7; k++)
        CHECK(fabs((double)cnt[k] - 10000) < 5 * sqrt(10000 * 6.0 / 7), "below(7) count[%d] = %d", k, cnt[k]);

    /* permutation is a permutation */
    int64_t perm[1000];
    int seen[1000] = {0};
    sg_rng_permutation(&r, perm, 1000);
    int ok = 1;
    for (int i = 0; i < 1000; i++) { if (perm[i] < 0 || perm[i] >= 1000 || seen[perm[i]]++) ok = 0; }
    CHECK(ok, "permutation");

    /* the int32 permutation: the same draws, so the same order */
    sg_rng r64, r32;
    sg_rng_init(&r64, 77, 3);
    r32 = r64;
    int32_t perm32[1000];
    sg_rng_permutation(&r64, perm, 1000);
    sg_rng_permutation_i32(&r32, perm32, 1000);
    int same32 = 1;
    for (int i = 0; i < 1000; i++) same32 &= perm[i] == perm32[i];
    CHECK(same32 && sg_rng_u64(&r64) == sg_rng_u64(&r32), "permutation_i32 differs from permutation");

    /* where/skip: skipping n words leaves the state that drawing them does,
     * from every word offset within a block */
    for (int start = 0; start < 5; start++) {
        for (int skip = 0; skip < 9; skip++) {
            sg_rng r1, r2;
            sg_rng_init(&r1, 5, 11);
            for (int i = 0; i < start; i++) sg_rng_u32(&r1);
            uint64_t b;
            unsigned o;
            sg_rng_where(&r1, &b, &o);
            CHECK(b * 4 + o == (uint64_t)start, "where after %d words: block %llu word %u", start,
                  (unsigned long long)b, o);
            r2 = r1;
            for (int i = 0; i < skip; i++) sg_rng_u32(&r1);
            sg_rng_skip(&r2, (uint64_t)skip);
            CHECK(same_state(&r1, &r2), "skip(%d) from word %d: state differs from %d draws", skip, start,
                  skip);
            for (int i = 0; i < 9; i++)
                CHECK(sg_rng_u32(&r1) == sg_rng_u32(&r2), "skip(%d) from word %d: draw %d differs", skip,
                      start, i);
        }
    }

    /* tensor fills: contiguous (parallel) and transposed views, from every
     * word offset within a block, equal the sequential draws exactly */
    for (int normal = 0; normal <= 1; normal++) {
        for (int skip = 0; skip < 5; skip++) {
            for (int transposed = 0; transposed <= 1; transposed++) {
                const int64_t rows = 300, cols = 257; /* 77100 values: past the parallel threshold */
                int64_t size[2] = {rows, cols};
                sg_tensor *base = sg_tensor_new(SG_F32, SG_CPU, 2, size);
                sg_tensor *t = transposed ? sg_tensor_transpose(base, 0, 1) : base;
                sg_rng f, q;
                sg_rng_init(&f, 99, sg_rng_hash("search"));
                for (int i = 0; i < skip; i++) sg_rng_u32(&f);
                q = f;
                int rc = normal ? sg_tensor_normal(t, &f, 0.5, 2.0) : sg_tensor_uniform(t, &f, -1.0, 3.0);
                CHECK(rc == 0, "fill");
                /* row-major order of t: element (i, j) of t is base (j, i) when transposed */
                const float *x = (const float *)base->storage->data;
                int64_t bad = 0, n0 = transposed ? cols : rows, n1 = transposed ? rows : cols;
                for (int64_t i = 0; i < n0; i++)
                    for (int64_t j = 0; j < n1; j++) {
                        float want = normal ? (float)(0.5 + 2.0 * sg_rng_normal(&q))
                                            : (float)(-1.0 + 4.0 * sg_rng_uniformf(&q));
                        float got = transposed ? x[j * cols + i] : x[i * cols + j];
                        bad += memcmp(&want, &got, sizeof got) != 0;
                    }
                CHECK(bad == 0, "%s fill (skip %d, %s): %lld values differ from the sequential draws",
                      normal ? "normal" : "uniform", skip, transposed ? "transposed" : "contiguous",
                      (long long)bad);
                CHECK(same_state(&f, &q),
                      "%s fill (skip %d): the generator is not where the sequential draws leave it",
                      normal ? "normal" : "uniform", skip);
                if (transposed)
                    sg_tensor_release(t);
                sg_tensor_release(base);
            }
        }
    }

    /* dropout masks (chunks in parallel): the sequential rule's values */
    {
        const int64_t n = 100003;
        float *m = malloc((size_t)n * sizeof *m);
        sg_rng f, q;
        sg_rng_init(&f, 3, sg_rng_hash("dropout"));
        sg_rng_u32(&f);
        q = f;
        CHECK(m && sg_cpu_dropout_mask(&f, m, n, 0.3) == 0, "dropout_mask");
        int64_t bad = 0;
        const float keep = (float)(1.0 / (1.0 - 0.3));
        for (int64_t i = 0; m && i < n; i++)
            bad += m[i] != (sg_rng_uniformf(&q) < 0.3f ? 0.0f : keep);
        CHECK(bad == 0, "dropout mask: %lld values differ from the sequential rule", (long long)bad);
        CHECK(same_state(&f, &q), "dropout mask: generator state");
        free(m);
    }

    /* fills near the end of the counter: the sequential draws go on to block
     * 2^62 and past (the counter is 64 bits, wrapping at 2^64), and the fills
     * must draw the same and leave the generator where they leave it */
    {
        const uint64_t counters[3] = {((uint64_t)1 << 62) - 1, UINT64_MAX - 1, UINT64_MAX};
        for (int ci = 0; ci < 3; ci++)
            for (int normal = 0; normal <= 2; normal++) { /* uniform, normal, dropout mask */
                sg_rng f, q;
                sg_rng_init(&f, 7, sg_rng_hash("search"));
                uint64_t st[SG_RNG_STATE_LEN] = {7, sg_rng_hash("search"), counters[ci], 4};
                sg_rng_set_state(&f, st);
                sg_rng_u32(&f); /* mid-block */
                q = f;
                int64_t size[1] = {9};
                sg_tensor *t = sg_tensor_new(SG_F32, SG_CPU, 1, size);
                float *x = (float *)t->storage->data;
                int rc = normal == 1 ? sg_tensor_normal(t, &f, 0.5, 2.0)
                       : normal == 0 ? sg_tensor_uniform(t, &f, -1.0, 3.0)
                                     : sg_cpu_dropout_mask(&f, x, 9, 0.5);
                CHECK(rc == 0, "fill");
                int bad = 0;
                for (int i = 0; i < 9; i++) {
                    float want = normal == 1 ? (float)(0.5 + 2.0 * sg_rng_normal(&q))
                               : normal == 0 ? (float)(-1.0 + 4.0 * sg_rng_uniformf(&q))
                                             : (sg_rng_uniformf(&q) < 0.5f ? 0.0f : 2.0f);
                    bad += memcmp(&want, &x[i], sizeof want) != 0;
                }
                uint64_t sf[SG_RNG_STATE_LEN], sq[SG_RNG_STATE_LEN];
                sg_rng_get_state(&f, sf);
                sg_rng_get_state(&q, sq);
                CHECK(bad == 0, "fill %d at counter %llu: %d values differ from the sequential draws", normal,
                      (unsigned long long)counters[ci], bad);
                CHECK(!memcmp(sf, sq, sizeof sf), "fill %d at counter %llu: generator at block %llu word %llu, "
                      "the sequential draws at %llu word %llu", normal, (unsigned long long)counters[ci],
                      (unsigned long long)sf[2], (unsigned long long)sf[3], (unsigned long long)sq[2],
                      (unsigned long long)sq[3]);
                sg_tensor_release(t);
            }
    }

    return check_done("test_rng", "all checks passed");
}
