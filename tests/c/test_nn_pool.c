/* test_nn_pool.c - max pooling's unrolled 2x2/stride-2 path against a naive
 * reference, on inputs full of ties and NaNs: the first maximum in row-major
 * order wins, a NaN wins at once; values and saved indices must agree. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nn.h"
#include "rng.h"

int main(void)
{
    sg_rng r;
    sg_rng_init(&r, 3, sg_rng_hash("pool-test"));
    int fails = 0;
    const int64_t shapes[][4] = {{2, 3, 6, 6}, {1, 2, 7, 9}, {4, 1, 2, 2}, {3, 2, 28, 28}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int64_t n = shapes[s][0], c = shapes[s][1], h = shapes[s][2], w = shapes[s][3];
        sg_pool2d_geom g;
        if (sg_pool2d_geom_init(&g, n, c, h, w, 2, 2, 2, 2, 0, 0) != 0) {
            printf("FAIL geometry %zu\n", s);
            return 1;
        }
        static float x[3 * 2 * 28 * 28], y[3 * 2 * 14 * 14];
        static int32_t idx[3 * 2 * 14 * 14];
        for (int64_t i = 0; i < n * c * h * w; i++) {
            uint32_t u = sg_rng_u32(&r) % 16;
            x[i] = u == 0 ? NAN : (float)(u % 3); /* many ties, some NaNs */
        }
        if (sg_cpu_maxpool2d_forward(x, y, idx, &g) != 0) {
            printf("FAIL forward %zu\n", s);
            return 1;
        }
        for (int64_t pl = 0; pl < n * c; pl++)
            for (int64_t oh = 0; oh < g.oh; oh++)
                for (int64_t ow = 0; ow < g.ow; ow++) {
                    const float *in = x + pl * h * w;
                    int64_t best = (2 * oh) * w + 2 * ow;
                    for (int i = 0; i < 2 && !isnan(in[best]); i++)
                        for (int j = 0; j < 2; j++) {
                            int64_t at = (2 * oh + i) * w + 2 * ow + j;
                            if (isnan(in[at]) || in[at] > in[best]) {
                                best = at;
                                if (isnan(in[at]))
                                    break;
                            }
                        }
                    int64_t o = pl * g.oh * g.ow + oh * g.ow + ow;
                    int same = isnan(in[best]) ? isnan(y[o]) : y[o] == in[best];
                    if (!same || idx[o] != best) {
                        if (fails++ < 5)
                            printf("FAIL shape %zu plane %lld (%lld,%lld): got %g at %d, want %g at %lld\n", s,
                                   (long long)pl, (long long)oh, (long long)ow, y[o], idx[o], in[best],
                                   (long long)best);
                    }
                }
    }
    if (fails) {
        printf("%d mismatches\n", fails);
        return 1;
    }
    printf("maxpool 2x2 fast path: all checks passed\n");
    return 0;
}
