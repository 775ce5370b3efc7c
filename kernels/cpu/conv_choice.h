/*
 * conv_choice.h - the table of convolution implementations (private to
 * kernels/cpu; conv_choice.c): which passes of a geometry (a convolution's,
 * or a linear layer's) run on oneDNN.
 */
#ifndef SG_KERNELS_CPU_CONV_CHOICE_H
#define SG_KERNELS_CPU_CONV_CHOICE_H

#include "nn.h"

/* The passes oneDNN runs for g (SG_CONV_PASS_* bits) when they are known
 * without a measurement: recorded by a run, forced (sg_cpu_conv2d_set_impl,
 * SGDSA_CONV), already chosen in this process, or in the machine's cache;
 * -1 when g must be measured first (sg_cpu_conv2d_passes does it). */
int sg_conv_choice_known(const sg_conv2d_geom *g);
/* Enter g's known choice in the table of choices in effect (the one a run
 * records), when it has one. */
void sg_conv_choice_note(const sg_conv2d_geom *g);

/* The implementation a convolution pass takes from its measured times:
 * ms[i] and ok[i] (measured) for im2col (0), oneDNN's direct algorithm (1)
 * and Winograd (2). The fastest of 0 and 1, unless Winograd is faster than
 * that one by more than WINO_MARGIN (conv_choice.c: 10%); -1 when none was
 * measured. */
int sg_conv_choice_pick(const double *ms, const int *ok);

/* The linear layer's passes with the sgemm of `bits` (SG_CONV_PASS_* bits:
 * oneDNN's, else OpenBLAS's): linear.c, for the measurement. */
int sg_linear_forward_with(int bits, const float *x, float *y, const float *w, const float *b,
                           int64_t n, int64_t in, int64_t out);
int sg_linear_backward_data_with(int bits, const float *dy, float *dx, const float *w,
                                 int64_t n, int64_t in, int64_t out);
int sg_linear_backward_params_with(int bits, const float *x, const float *dy, float *dw,
                                   float *db, int64_t n, int64_t in, int64_t out);

#endif
