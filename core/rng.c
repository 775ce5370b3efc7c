/* rng.c - Philox4x32-10 (Salmon et al., SC'11) and the draws built on it. */
#include <math.h>

#include "error.h"
#include "rng.h"
#include "rng_draw.h"

void sg_philox4x32(uint64_t counter, uint64_t key_lo, uint64_t key_hi, uint32_t out[4])
{
    sg_philox_block(counter, key_lo, key_hi, out);
}

uint64_t sg_rng_hash(const char *name)
{
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        h ^= *p;
        h *= 1099511628211ull;
    }
    return h;
}

void sg_rng_init(sg_rng *r, uint64_t seed, uint64_t stream)
{
    r->seed = seed;
    r->stream = stream;
    r->counter = 0;
    r->pos = 4;
}

void sg_rng_get_state(const sg_rng *r, uint64_t st[SG_RNG_STATE_LEN])
{
    st[0] = r->seed; st[1] = r->stream; st[2] = r->counter; st[3] = r->pos;
}

int sg_rng_set_state(sg_rng *r, const uint64_t st[SG_RNG_STATE_LEN])
{
    if (st[3] > 4)
        return sg_seterr("rng: invalid state (word position %llu > 4)", (unsigned long long)st[3]);
    if (st[3] < 4 && st[2] == 0)
        return sg_seterr("rng: invalid state (partial block before the first)");
    r->seed = st[0]; r->stream = st[1]; r->counter = st[2]; r->pos = (uint32_t)st[3];
    if (r->pos < 4) /* regenerate the partially used block */
        sg_philox4x32(r->counter - 1, r->seed, r->stream, r->buf);
    return 0;
}

uint32_t sg_rng_u32(sg_rng *r)
{
    if (r->pos >= 4) {
        sg_philox4x32(r->counter++, r->seed, r->stream, r->buf);
        r->pos = 0;
    }
    return r->buf[r->pos++];
}

uint64_t sg_rng_u64(sg_rng *r)
{
    uint64_t hi = sg_rng_u32(r);
    return (hi << 32) | sg_rng_u32(r);
}

void sg_rng_where(const sg_rng *r, uint64_t *block, unsigned *off)
{
    *block = r->pos < 4 ? r->counter - 1 : r->counter;
    *off = r->pos < 4 ? r->pos : 0;
}

void sg_rng_skip(sg_rng *r, uint64_t n)
{
    uint64_t b;
    unsigned o;
    sg_rng_where(r, &b, &o);
    const uint64_t k = o + (n & 3);
    b += (n >> 2) + (k >> 2);
    r->counter = b;
    r->pos = 4;
    if (k & 3) { /* inside block b: it is the current one */
        sg_philox4x32(r->counter++, r->seed, r->stream, r->buf);
        r->pos = (uint32_t)(k & 3);
    }
}

double sg_rng_uniform(sg_rng *r)
{
    uint32_t hi = sg_rng_u32(r);
    return sg_rng_words_uniform(hi, sg_rng_u32(r));
}

float sg_rng_uniformf(sg_rng *r) { return sg_rng_word_uniformf(sg_rng_u32(r)); }

double sg_rng_normal(sg_rng *r)
{
    uint32_t w[4];
    for (int i = 0; i < 4; i++)
        w[i] = sg_rng_u32(r);
    return sg_rng_words_normal(w);
}

uint64_t sg_rng_below(sg_rng *r, uint64_t n)
{
    /* rejection sampling: unbiased for every n; n = 0 stands for 2^64 */
    if (n == 0)
        return sg_rng_u64(r);
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = sg_rng_u64(r); while (x >= limit);
    return x % n;
}

void sg_rng_permutation(sg_rng *r, int64_t *perm, int64_t n)
{
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)sg_rng_below(r, (uint64_t)i + 1);
        int64_t t = perm[i]; perm[i] = perm[j]; perm[j] = t;
    }
}

void sg_rng_permutation_i32(sg_rng *r, int32_t *perm, int64_t n)
{
    for (int64_t i = 0; i < n; i++) perm[i] = (int32_t)i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)sg_rng_below(r, (uint64_t)i + 1);
        int32_t t = perm[i]; perm[i] = perm[j]; perm[j] = t;
    }
}

void sg_rng_fill_uniform(sg_rng *r, float *x, int64_t n, float lo, float hi)
{
    for (int64_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * sg_rng_uniformf(r);
}

void sg_rng_fill_normal(sg_rng *r, float *x, int64_t n, float mean, float std)
{
    for (int64_t i = 0; i < n; i++) x[i] = mean + std * (float)sg_rng_normal(r);
}
