/*
 * rng.h - counter-based random numbers (Philox4x32-10).
 *
 * A generator is (key, counter): key = (seed, stream id), counter = a 64-bit
 * block index. Each block yields four 32-bit words. Streams are independent
 * because they have different keys; a named stream's id is a hash of its
 * name ("init", "shuffle", "augment", "search", ...), so adding a stream never
 * shifts another stream's draws. The whole state is five integers and can be
 * saved and restored exactly (sg_rng_get_state / sg_rng_set_state).
 * The same function runs on CPU and GPU (it is plain integer arithmetic), so
 * both devices draw the same numbers for the same state.
 */
#ifndef SG_RNG_H
#define SG_RNG_H

#include <stdint.h>

#include "api.h"

SG_API_BEGIN

typedef struct sg_rng {
    uint64_t seed;
    uint64_t stream;   /* stream id (hash of the name) */
    uint64_t counter;  /* next block to generate */
    uint32_t buf[4];   /* current block */
    uint32_t pos;      /* words of buf already used (4 = empty) */
} sg_rng;

/* Serialized state: {seed, stream, counter, pos}; buf is recomputed. */
#define SG_RNG_STATE_LEN 4

uint64_t sg_rng_hash(const char *name);            /* FNV-1a 64 of a stream name */
void sg_rng_init(sg_rng *r, uint64_t seed, uint64_t stream);
void sg_rng_get_state(const sg_rng *r, uint64_t st[SG_RNG_STATE_LEN]);
int sg_rng_set_state(sg_rng *r, const uint64_t st[SG_RNG_STATE_LEN]);

/* The Philox4x32-10 block function: out = philox(counter, key). */
void sg_philox4x32(uint64_t counter, uint64_t key_lo, uint64_t key_hi, uint32_t out[4]);

/* Where the generator stands: the next word is word *off (0..3) of block
 * *block; and a move past n words, as drawing them would leave it. Block
 * numbers wrap at 2^64 as the counter does. rng_draw.h computes the draws
 * at a (block, word) position, so a fill of n values runs in parallel (on
 * either device) and then skips what the sequential calls would have
 * taken, with their values from any state. */
void sg_rng_where(const sg_rng *r, uint64_t *block, unsigned *off);
void sg_rng_skip(sg_rng *r, uint64_t n);

uint32_t sg_rng_u32(sg_rng *r);
uint64_t sg_rng_u64(sg_rng *r);
double sg_rng_uniform(sg_rng *r);               /* [0, 1), 53 bits */
float sg_rng_uniformf(sg_rng *r);               /* [0, 1), 24 bits */
double sg_rng_normal(sg_rng *r);                /* N(0, 1), Box-Muller */
uint64_t sg_rng_below(sg_rng *r, uint64_t n);   /* uniform in [0, n), unbiased; n = 0: 2^64 */
void sg_rng_permutation(sg_rng *r, int64_t *perm, int64_t n); /* Fisher-Yates */
/* The same permutation (the same draws) as int32 values, n <= INT32_MAX + 1. */
void sg_rng_permutation_i32(sg_rng *r, int32_t *perm, int64_t n);
void sg_rng_fill_uniform(sg_rng *r, float *x, int64_t n, float lo, float hi);
void sg_rng_fill_normal(sg_rng *r, float *x, int64_t n, float mean, float std);

SG_API_END

#endif
