/*
 * test_cuda_threads.c - the CUDA backend used from a thread other than the
 * one that initialised it: device blocks and pinned host buffers allocated
 * on the main thread and freed on another one (a thread that never selected
 * the device works on device 0 on a GPU: the frees select the backend's
 * device first), then a kernel launched from that thread.
 *
 * On the CUDA emulator the backend runs on device 1 of two
 * (SGDSA_EMU_DEVICES=2, SGDSA_CUDA_DEVICE=1) with the caching pool off, so
 * that every free is a cudaFree, which the emulator refuses on a thread
 * whose current device is not the allocation's. On a GPU it runs on the
 * default device. Skips visibly (exit 77) without a GPU.
 */
#include "cuda_testutil.h"

#ifdef SG_HAVE_CUDA

#include <pthread.h>

typedef struct {
    void *dev[3];
    void *pinned;
    float *x;
    int64_t n;
} work;

static void *other_thread(void *arg)
{
    work *w = arg;
    for (int i = 0; i < 3; i++)
        sg_cuda_free(w->dev[i]);
    sg_cuda_host_free(w->pinned, NULL);
    /* a kernel from this thread, on the backend's device */
    OK(sg_cuda_fill(w->x, SG_F32, w->n, 2.5));
    return NULL;
}

int main(void)
{
#ifdef SG_CUDA_EMU
    setenv("SGDSA_EMU_DEVICES", "2", 1);
    setenv("SGDSA_CUDA_DEVICE", "1", 1);
    setenv("SGDSA_CUDA_NO_CACHE", "1", 1);
#endif
    cuda_or_skip("the CUDA thread tests");
    char name[256];
    if (sg_cuda_device_name(name, sizeof name) == 0)
        printf("device: %s (SGDSA_CUDA_DEVICE=%s)\n", name,
               getenv("SGDSA_CUDA_DEVICE") ? getenv("SGDSA_CUDA_DEVICE") : "unset");

    work w;
    w.n = 1000;
    for (int i = 0; i < 3; i++)
        w.dev[i] = dalloc((size_t)(1 + i) * 4096);
    w.pinned = sg_cuda_host_alloc(8192, NULL);
    CHECK(w.pinned != NULL, "pinned allocation: %s", sg_geterr());
    w.x = dalloc((size_t)w.n * 4);
    sg_cuda_mem_stats s0 = sg_cuda_get_mem_stats();
    sg_seterr("%s", "");

    pthread_t t;
    CHECK(pthread_create(&t, NULL, other_thread, &w) == 0, "pthread_create");
    pthread_join(t, NULL);

    sg_cuda_mem_stats s1 = sg_cuda_get_mem_stats();
    CHECK(s1.in_use + 4096 * 6 <= s0.in_use, "in use %zu -> %zu: the frees did not happen",
          s0.in_use, s1.in_use);
    if (!s1.caching)
        CHECK(s1.device_frees == s0.device_frees + 3, "device frees %lld -> %lld: a cudaFree "
              "from the other thread failed (%s)", (long long)s0.device_frees,
              (long long)s1.device_frees, sg_geterr());
    float *h = down_f(w.x, w.n);
    int bad = 0;
    for (int64_t i = 0; i < w.n; i++)
        bad += h[i] != 2.5f;
    CHECK(bad == 0, "the fill from the other thread left %d of %lld elements wrong", bad,
          (long long)w.n);
    printf("  ok frees and a launch from another thread (%s pool)\n",
           s1.caching ? "caching" : "no caching");
    free(h);
    sg_cuda_free(w.x);
    OK(sg_cuda_synchronize());
    return check_done("test_cuda_threads", "all CUDA thread checks passed");
}

#else
CUDA_TEST_SKIP_MAIN("the CUDA thread tests (built without the CUDA backend)")
#endif
