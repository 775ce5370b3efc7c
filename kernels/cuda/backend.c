/*
 * backend.c - the cuda backend's table (kernels/backend.h), registered when
 * the library is loaded (whether or not a GPU is present: device_count
 * says so, and every entry fails with the reason when there is none).
 */
#include "nn_cuda.h"

static const sg_backend cuda_backend = {
    .name = "cuda",
    .dev = SG_CUDA,
    .device_count = sg_cuda_device_count,
    .device_name = sg_cuda_device_name,
    .alloc = sg_cuda_malloc,
    .free = sg_cuda_free,
    .memcpy = sg_cuda_memcpy,
    .fill = sg_cuda_fill,
    .copy_strided = sg_cuda_copy_strided,
    .fill_strided = sg_cuda_fill_strided,
    .fill_random = sg_cuda_fill_random,
    .synchronize = sg_cuda_synchronize,
    .empty_cache = sg_cuda_empty_cache,
    .mem_stats = sg_cuda_get_mem_stats,
    .host_waits = sg_cuda_host_waits,
    .launches = sg_cuda_launches,
    .host_alloc = sg_cuda_host_alloc,
    .host_free = sg_cuda_host_free,
    .input_copy = sg_cuda_input_copy,
    .input_ready = sg_cuda_input_ready,
    .input_wait = sg_cuda_input_wait,
    .input_expand = sg_cuda_input_expand,
    .set_tf32 = sg_cuda_set_tf32,
    .get_tf32 = sg_cuda_get_tf32,
    .set_deterministic = sg_cuda_set_deterministic,
    .get_deterministic = sg_cuda_get_deterministic,
    .conv2d_choices = sg_cuda_conv2d_choices,
    .nccl_built = sg_nccl_built,
    .nccl_unique_id = sg_nccl_unique_id,
    .nccl_init = sg_nccl_init,
    .nccl_ready = sg_nccl_ready,
    .nccl_allsum_f32 = sg_nccl_allsum_f32,
    .nccl_finalize = sg_nccl_finalize,
    .binary = sg_cuda_binary,
    .binary_scalar = sg_cuda_binary_scalar,
    .unary = sg_cuda_unary,
    .clamp = sg_cuda_clamp,
    .reduce = sg_cuda_reduce,
    .dot = sg_cuda_dot,
    .norm = sg_cuda_norm,
    .all_finite = sg_cuda_isfinite,
    .gemm = sg_cuda_gemm,
#define CUDA_KERNEL(entry) .entry = sg_cuda_##entry,
    SG_BACKEND_LAYER_KERNELS(CUDA_KERNEL)
    .readback_new = sg_cuda_readback_new,
    .readback_free = sg_cuda_readback_free,
    .cross_entropy_queue = sg_cuda_cross_entropy_queue,
    .cross_entropy_read = sg_cuda_cross_entropy_read,
    .vec_axpy = sg_cuda_vec_axpy,
    .vec_axpbypz = sg_cuda_vec_axpbypz,
    .vec_scale_add = sg_cuda_vec_scale_add,
};

__attribute__((constructor)) static void register_cuda(void)
{
    sg_backend_register(&cuda_backend);
}
