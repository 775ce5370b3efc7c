/*
 * conv_dnnl.h - the oneDNN side of conv2d (private to kernels/cpu; built when
 * SG_HAVE_DNNL is defined). conv.c dispatches here for geometries whose
 * `dnnl` flag sg_conv2d_geom_init set; the functions have the contracts of
 * their sg_cpu_conv2d_* twins in nn.h.
 */
#ifndef SG_KERNELS_CPU_CONV_DNNL_H
#define SG_KERNELS_CPU_CONV_DNNL_H

#include "nn.h"

#ifdef SG_HAVE_DNNL
/* Workspace floats for the three passes of g (creates and caches the
 * primitives); `fallback` when they cannot be made (the error is kept and
 * returned by the next call with g). */
size_t sg_dnnl_conv2d_workspace_size(const sg_conv2d_geom *g, size_t fallback);
int sg_dnnl_conv2d_forward(float *ws, const float *x, float *y, const float *w,
                           const float *b, const sg_conv2d_geom *g);
int sg_dnnl_conv2d_backward_data(float *ws, const float *dy, float *dx, const float *w,
                                 const sg_conv2d_geom *g);
/* dw += the weight gradient only (conv.c adds the bias gradient). */
int sg_dnnl_conv2d_backward_weights(float *ws, const float *x, const float *dy, float *dw,
                                    const sg_conv2d_geom *g);
void sg_dnnl_conv2d_cache_clear(void);
/* Images per oneDNN execution for g (a call runs its batch in such chunks). */
int64_t sg_dnnl_conv2d_chunk(const sg_conv2d_geom *g);
/* 1 when oneDNN makes Winograd primitives for the three passes of g here. */
int sg_dnnl_conv2d_winograd_ok(const sg_conv2d_geom *g);
#endif

#endif
