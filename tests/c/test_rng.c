/* test_rng.c - Philox4x32-10 known answers (Random123), stream independence,
 * exact state save/restore, unbiased integer draws and distribution moments. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "rng.h"

static int fails;
#define CHECK(c, ...) do { if (!(c)) { fails++; printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)

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

    if (fails) { printf("%d failures\n", fails); return 1; }
    printf("rng: all checks passed\n");
    return 0;
}
