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
    .name = "cpu",
    .dev = SG_CPU,
    .conv2d_set_impl = conv2d_set_impl,
    .conv2d_get_impl = conv2d_get_impl,
    .conv2d_workspace_size = sg_cpu_conv2d_workspace_size,
    .conv2d_forward = sg_cpu_conv2d_forward,
    .conv2d_backward_data = sg_cpu_conv2d_backward_data,
    .conv2d_backward_params = sg_cpu_conv2d_backward_params,
    .linear_forward = sg_cpu_linear_forward,
    .linear_backward_data = sg_cpu_linear_backward_data,
    .linear_backward_params = sg_cpu_linear_backward_params,
    .batchnorm_forward_train = sg_cpu_batchnorm_forward_train,
    .batchnorm_forward_eval = sg_cpu_batchnorm_forward_eval,
    .batchnorm_apply = sg_cpu_batchnorm_apply,
    .batchnorm_backward_data = sg_cpu_batchnorm_backward_data,
    .batchnorm_backward_params = sg_cpu_batchnorm_backward_params,
    .batchnorm_backward = sg_cpu_batchnorm_backward,
    .batchnorm_forward_train_sync = sg_cpu_batchnorm_forward_train_sync,
    .batchnorm_backward_data_sync = sg_cpu_batchnorm_backward_data_sync,
    .relu_forward = sg_cpu_relu_forward,
    .relu_backward_data = sg_cpu_relu_backward_data,
    .dropout_mask = sg_cpu_dropout_mask,
    .dropout_forward = sg_cpu_dropout_forward,
    .dropout_backward_data = sg_cpu_dropout_backward_data,
    .maxpool2d_forward = sg_cpu_maxpool2d_forward,
    .maxpool2d_backward_data = sg_cpu_maxpool2d_backward_data,
    .avgpool2d_forward = sg_cpu_avgpool2d_forward,
    .avgpool2d_backward_data = sg_cpu_avgpool2d_backward_data,
    .global_avgpool_forward = sg_cpu_global_avgpool_forward,
    .global_avgpool_backward_data = sg_cpu_global_avgpool_backward_data,
    .pad2d = sg_cpu_pad2d,
    .crop2d = sg_cpu_crop2d,
    .cross_entropy = sg_cpu_cross_entropy,
    .vec_axpy = vec_axpy,
    .vec_axpbypz = vec_axpbypz,
    .vec_scale_add = vec_scale_add,
};

__attribute__((constructor)) static void register_cpu(void)
{
    sg_backend_register(&cpu_backend);
}
