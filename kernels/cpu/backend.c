/*
 * backend.c - the cpu backend's table (kernels/backend.h), registered when
 * the library is loaded. Host memory and the tensor math of host tensors
 * are the core's (core/tensor.c); this table holds the layer kernels and the
 * convolution setting.
 */
#include "nn.h"

/* The vector updates cannot fail (they return void; the table's return a status). */
static int vec_axpy(const float *a, const float *x, float *out, int64_t n, float alpha)
{
    sg_cpu_vec_axpy(a, x, out, n, alpha);
    return 0;
}

static int vec_axpbypz(const float *a, const float *x, const float *y, float *out, int64_t n,
                       float alpha, float beta)
{
    sg_cpu_vec_axpbypz(a, x, y, out, n, alpha, beta);
    return 0;
}

static int vec_scale_add(const float *a, const float *x, float *out, int64_t n, float s,
                         float alpha)
{
    sg_cpu_vec_scale_add(a, x, out, n, s, alpha);
    return 0;
}

static int conv2d_set_impl(int impl)
{
    return sg_cpu_conv2d_set_impl((sg_conv_impl)impl);
}

static int conv2d_get_impl(void)
{
    return (int)sg_cpu_conv2d_get_impl();
}

static const sg_backend cpu_backend = {
    .name = "cpu", .dev = SG_CPU,
    .conv2d_set_impl = conv2d_set_impl, .conv2d_get_impl = conv2d_get_impl,
    .conv2d_impl_choices = sg_cpu_conv2d_choices, .conv2d_impl_pin = sg_cpu_conv2d_pin,
#define CPU_KERNEL(entry) .entry = sg_cpu_##entry,
    SG_BACKEND_LAYER_KERNELS(CPU_KERNEL)
    /* the cpu's own: the BatchNorm recomputation and synchronized statistics */
    .batchnorm_apply = sg_cpu_batchnorm_apply,
    .batchnorm_forward_train_sync = sg_cpu_batchnorm_forward_train_sync,
    .batchnorm_backward_data_sync = sg_cpu_batchnorm_backward_data_sync,
    .vec_axpy = vec_axpy, .vec_axpbypz = vec_axpbypz, .vec_scale_add = vec_scale_add,
};

__attribute__((constructor)) static void register_cpu(void)
{
    sg_backend_register(&cpu_backend);
}
