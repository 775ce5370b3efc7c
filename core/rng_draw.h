/*
 * rng_draw.h - the draws of rng.h as pure functions of a position in the
 * stream, for host code and CUDA kernels alike (plain integer arithmetic and
 * double math): word w of the stream (seed, stream) is word w % 4 of the
 * Philox4x32-10 block w / 4. A uniform float takes one word, a normal four
 * (two 53-bit uniforms for Box-Muller), so the i-th of n draws starting at
 * word w0 is a function of w0 + i (or w0 + 4i) alone: fills run in parallel,
 * on either device, and give what the sequential calls sg_rng_uniformf /
 * sg_rng_normal give (the same expressions, unfused: the CUDA build keeps
 * double a + b * c unfused with __dadd_rn / __dmul_rn). Uniforms are exact
 * on both devices; a normal also goes through double log and cos, whose
 * CUDA versions may differ from the host libm's in the last bit, so a GPU
 * normal can differ from the host's by an ulp (the emulator, on the host's
 * libm, matches exactly). rng.c's sequential generator is built on the same
 * functions.
 */
#ifndef SG_RNG_DRAW_H
#define SG_RNG_DRAW_H

#include <math.h>
#include <stdint.h>

#if defined(__CUDACC__) || defined(SG_EMU_DEVICE_H)
#define SG_RNG_FN static inline __host__ __device__
#else
#define SG_RNG_FN static inline
#endif

/* The Philox4x32-10 block function: out = philox(counter, key). */
SG_RNG_FN void sg_philox_block(uint64_t counter, uint64_t key_lo, uint64_t key_hi, uint32_t out[4])
{
    uint32_t c0 = (uint32_t)counter, c1 = (uint32_t)(counter >> 32);
    uint32_t c2 = (uint32_t)key_hi, c3 = (uint32_t)(key_hi >> 32);
    uint32_t k0 = (uint32_t)key_lo, k1 = (uint32_t)(key_lo >> 32);
    for (int i = 0; i < 10; i++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
        c0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        c1 = (uint32_t)p1;
        c2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c3 = (uint32_t)p0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

/* [0, 1) from one word, 24 bits */
SG_RNG_FN float sg_rng_word_uniformf(uint32_t w) { return (float)(w >> 8) * 0x1.0p-24f; }

/* [0, 1) from two words (hi, lo), 53 bits */
SG_RNG_FN double sg_rng_words_uniform(uint32_t hi, uint32_t lo)
{
    return (double)((((uint64_t)hi << 32) | lo) >> 11) * 0x1.0p-53;
}

/* N(0, 1) by Box-Muller from four words */
SG_RNG_FN double sg_rng_words_normal(const uint32_t w[4])
{
    double u1 = 1.0 - sg_rng_words_uniform(w[0], w[1]); /* (0, 1] */
    double u2 = sg_rng_words_uniform(w[2], w[3]);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * 3.14159265358979323846 * u2);
}

/* The word at position w of stream (seed, stream), w counted from the start
 * of block b0 (block numbers wrap at 2^64, as the generator's counter does). */
SG_RNG_FN uint32_t sg_rng_word_at(uint64_t seed, uint64_t stream, uint64_t b0, uint64_t w)
{
    uint32_t b[4];
    sg_philox_block(b0 + (w >> 2), seed, stream, b);
    return b[w & 3];
}

/* The four words at positions w .. w+3 from block b0 (one block, or the ends of two). */
SG_RNG_FN void sg_rng_words4_at(uint64_t seed, uint64_t stream, uint64_t b0, uint64_t w, uint32_t out[4])
{
    uint32_t b[4];
    sg_philox_block(b0 + (w >> 2), seed, stream, b);
    unsigned k = (unsigned)(w & 3);
    if (k == 0) {
        out[0] = b[0]; out[1] = b[1]; out[2] = b[2]; out[3] = b[3];
        return;
    }
    uint32_t c[4];
    sg_philox_block(b0 + (w >> 2) + 1, seed, stream, c);
    for (unsigned i = 0; i < 4; i++)
        out[i] = k + i < 4 ? b[k + i] : c[k + i - 4];
}

/* a + (b - a) * U[0, 1) from the word at w, and mean + std * N(0, 1) from the
 * words at w .. w+3, as the fills compute them (double, unfused, then float) */
#if defined(__CUDA_ARCH__)
#define SG_RNG_AXPY(x, y, z) __dadd_rn((x), __dmul_rn((y), (z)))
#else
#define SG_RNG_AXPY(x, y, z) ((x) + (y) * (z))
#endif
SG_RNG_FN float sg_rng_uniform_fill_at(uint64_t seed, uint64_t stream, uint64_t b0, uint64_t w, double lo,
                                       double hi)
{
    return (float)SG_RNG_AXPY(lo, hi - lo, (double)sg_rng_word_uniformf(sg_rng_word_at(seed, stream, b0, w)));
}

SG_RNG_FN float sg_rng_normal_fill_at(uint64_t seed, uint64_t stream, uint64_t b0, uint64_t w, double mean,
                                      double std)
{
    uint32_t q[4];
    sg_rng_words4_at(seed, stream, b0, w, q);
    return (float)SG_RNG_AXPY(mean, std, sg_rng_words_normal(q));
}

#endif
