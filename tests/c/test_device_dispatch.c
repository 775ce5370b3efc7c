/* test_device_dispatch.c - the tensor core's device checks, run where there
 * is no GPU: a build with the CUDA backend, and tensors whose storage is
 * marked as on the GPU (host memory underneath, never touched as device
 * memory: every case here must be refused before any CUDA call). Mixed
 * devices are errors naming both devices, whichever operand is the odd one
 * out, the output included (a CUDA output with CPU operands once
 * dereferenced NULL). Skips (77) without the CUDA backend or when a GPU is
 * usable (marked host memory would then reach real kernels). */
#include <stdio.h>
#include <string.h>

#include "device.h"
#include "error.h"
#include "tensor.h"

#ifdef SG_HAVE_CUDA
#include "check.h"

static sg_tensor *vec(int64_t n)
{
    sg_tensor *t = sg_tensor_new(SG_F32, SG_CPU, 1, &n);
    if (t)
        sg_fill(t, 1.0);
    return t;
}

/* mark (or unmark) a host tensor as a CUDA one */
static void on_gpu(sg_tensor *t, int gpu) { t->storage->device = gpu ? SG_CUDA : SG_CPU; }

/* rc must be an error whose message holds both device names and `what` */
static void refused(const char *what, int rc)
{
    const char *m = sg_geterr();
    CHECK(rc != 0 && strstr(m, "different devices") && strstr(m, "cuda") && strstr(m, "cpu"),
          "%s: rc %d, message '%s'", what, rc, m);
    if (rc != 0 && strstr(m, "different devices"))
        printf("  ok %s: %s\n", what, m);
}
#endif

int main(void)
{
#ifndef SG_HAVE_CUDA
    printf("built without the CUDA backend: nothing to check\n");
    return 77;
#else
    if (sg_cuda_available()) {
        printf("a GPU is usable: skipping (tests/c/test_cuda_math.c covers the real thing)\n");
        return 77;
    }
    sg_tensor *out = vec(4), *a = vec(4), *b = vec(4), *m = NULL;
    int64_t sq[2] = {2, 2};
    m = sg_tensor_new(SG_F32, SG_CPU, 2, sq);
    CHECK(out && a && b && m, "allocation");

    /* the output alone on the GPU */
    on_gpu(out, 1);
    refused("add_scaled: cuda out, cpu a and b", sg_add_scaled(out, a, 2.0, b));
    refused("binary: cuda out, cpu a and b", sg_binary(out, a, b, SG_OP_ADD));
    refused("binary_scalar: cuda out, cpu a", sg_binary_scalar(out, a, 2.0, SG_OP_MUL, 0));
    refused("unary: cuda out, cpu a", sg_unary(out, a, SG_FN_EXP));
    refused("clamp: cuda out, cpu a", sg_clamp(out, a, 0.0, 1.0));
    on_gpu(out, 0);

    /* one input on the GPU */
    on_gpu(a, 1);
    refused("binary: cpu out, cuda a, cpu b", sg_binary(out, a, b, SG_OP_SUB));
    refused("add_scaled: cpu out, cuda a, cpu b", sg_add_scaled(out, a, 1.0, b));
    on_gpu(a, 0);
    on_gpu(b, 1);
    refused("binary: cpu out and a, cuda b", sg_binary(out, a, b, SG_OP_DIV));
    on_gpu(b, 0);

    /* inputs on the GPU, a one-element output on the CPU: the devices, not the shapes */
    sg_tensor *one = vec(1);
    on_gpu(a, 1);
    on_gpu(b, 1);
    refused("add_scaled: cpu out of another shape, cuda a and b", sg_add_scaled(one, a, 1.0, b));
    refused("binary: cpu out of another shape, cuda a and b", sg_binary(one, a, b, SG_OP_ADD));
    on_gpu(a, 0);
    on_gpu(b, 0);

    /* matmul: each operand the odd one out */
    sg_tensor *mo = sg_tensor_new(SG_F32, SG_CPU, 2, sq), *m2 = sg_tensor_new(SG_F32, SG_CPU, 2, sq);
    CHECK(mo && m2, "allocation");
    on_gpu(mo, 1);
    refused("matmul: cuda out, cpu operands", sg_matmul(mo, m, m2));
    on_gpu(mo, 0);
    on_gpu(m2, 1);
    refused("matmul: cpu out and a, cuda b", sg_matmul(mo, m, m2));
    on_gpu(m2, 0);

    sg_tensor_release(out);
    sg_tensor_release(a);
    sg_tensor_release(b);
    sg_tensor_release(one);
    sg_tensor_release(m);
    sg_tensor_release(mo);
    sg_tensor_release(m2);
    return check_done("test_device_dispatch", "all passed");
#endif
}
