/*
 * runtime.c - the CUDA backend's state: device discovery, lazy
 * initialisation (streams, cuBLAS and cuDNN handles), the caching device
 * allocator, copies, pinned host memory, input copies on their own stream,
 * scratch buffers and the error helpers.
 *
 * The caching pool. Requests are rounded up to a size class (multiples of
 * 512 bytes below 64 KiB, then 8 classes per power of two: at most 12.5%
 * waste), and a freed block goes to its class's free list instead of back to
 * the driver. A request is served from the free list of its class when it
 * can; otherwise cudaMalloc is called (a "device allocation", counted). When
 * cudaMalloc fails the pool gives all cached blocks back and tries once more;
 * failing that, the error names the size asked for and the pool's state.
 * Blocks are reused on the single compute stream, whose ordering makes the
 * reuse safe without events: work queued on a block before its free runs
 * before work queued after its next malloc. The copy stream, the only other
 * stream, waits for the compute stream before writing (sg_cuda_input_copy).
 *
 * SGDSA_CUDA_NO_CACHE=1 turns the cache off, for compute-sanitizer's
 * memcheck (tools/gpu-sanitize): every request is a cudaMalloc of exactly
 * the bytes asked for, and a free waits for both streams and calls cudaFree,
 * so an access past the end of a tensor is past the end of an allocation.
 *
 * Thread safety: one mutex guards the pool and the initialisation; the
 * scratch buffers and kernels are meant for the thread driving the model.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_impl.h"
#include "error.h"

/* ---- error helpers ------------------------------------------------------- */

int sg_cuda_fail_rt(const char *stmt, cudaError_t e, const char *file, int line)
{
    /* reset the runtime's last error (a non-sticky one would otherwise be
     * reported again by the next launch check, naming the wrong kernel) */
    (void)cudaGetLastError();
    if (e == cudaErrorMemoryAllocation)
        return sg_seterr("cuda: out of memory in %s (%s:%d)", stmt, file, line);
    return sg_seterr("cuda: %s failed: %s (%s) at %s:%d", stmt, cudaGetErrorString(e),
                     cudaGetErrorName(e), file, line);
}

int sg_cuda_fail_blas(const char *stmt, cublasStatus_t s, const char *file, int line)
{
    return sg_seterr("cuda: cuBLAS %s failed: %s (%d) at %s:%d", stmt, cublasGetStatusString(s),
                     (int)s, file, line);
}

int sg_cuda_fail_dnn(const char *stmt, cudnnStatus_t s, const char *file, int line)
{
    return sg_seterr("cuda: cuDNN %s failed: %s (%d) at %s:%d", stmt, cudnnGetErrorString(s),
                     (int)s, file, line);
}

static int64_t g_launches;        /* sg_cuda_launches */

void sg_cuda_count_launch(void) { __atomic_fetch_add(&g_launches, 1, __ATOMIC_RELAXED); }
int64_t sg_cuda_launches(void) { return __atomic_load_n(&g_launches, __ATOMIC_RELAXED); }

int sg_cuda_check_launch(const char *what, const char *file, int line)
{
    sg_cuda_count_launch();
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
        return sg_seterr("cuda: launch of kernel %s failed: %s (%s) at %s:%d", what,
                         cudaGetErrorString(e), cudaGetErrorName(e), file, line);
    return 0;
}

/* ---- state ---------------------------------------------------------------------- */

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_count = -1;          /* devices; -1 = not asked yet */
static char g_count_msg[512];     /* why there is no device */
static int g_ready;               /* init done */
static int g_dev;                 /* the device used (SGDSA_CUDA_DEVICE, default 0) */
static _Thread_local int t_dev_set; /* cudaSetDevice(g_dev) done on this thread */
static cudaStream_t g_stream, g_copy_stream;
static cudaEvent_t g_compute_ev, g_copy_ev[SG_CUDA_INPUT_SLOTS];
static cublasHandle_t g_cublas;
static cudnnHandle_t g_cudnn;
static int g_tf32;
static int g_nocache;             /* SGDSA_CUDA_NO_CACHE: no caching pool (sanitizer runs) */
static int g_deterministic;
static int g_sm_count = 1;        /* multiprocessors of g_dev */
static int g_index64;             /* sg_cuda_set_index64: int64 index math forced */

static int64_t g_host_waits;      /* sg_cuda_wait_stream/_event calls */

cudaError_t sg_cuda_wait_stream(cudaStream_t s)
{
    __atomic_fetch_add(&g_host_waits, 1, __ATOMIC_RELAXED);
    return cudaStreamSynchronize(s);
}

cudaError_t sg_cuda_wait_event(cudaEvent_t e)
{
    __atomic_fetch_add(&g_host_waits, 1, __ATOMIC_RELAXED);
    return cudaEventSynchronize(e);
}

int64_t sg_cuda_host_waits(void)
{
    return __atomic_load_n(&g_host_waits, __ATOMIC_RELAXED);
}

int sg_cuda_device_count(void)
{
    pthread_mutex_lock(&g_lock);
    if (g_count < 0) {
        int n = 0;
        cudaError_t e = cudaGetDeviceCount(&n);
        if (e != cudaSuccess) {
            (void)cudaGetLastError();
            snprintf(g_count_msg, sizeof g_count_msg,
                     "cuda: no usable CUDA device: cudaGetDeviceCount: %s (%s); the CPU "
                     "path still works (device=cpu)", cudaGetErrorString(e), cudaGetErrorName(e));
            n = 0;
        } else if (n == 0) {
            snprintf(g_count_msg, sizeof g_count_msg,
                     "cuda: no CUDA device found; the CPU path still works (device=cpu)");
        }
        g_count = n;
    }
    int n = g_count;
    pthread_mutex_unlock(&g_lock);
    if (n == 0)
        sg_seterr("%s", g_count_msg);
    return n;
}

static int init_locked(void)
{
    int dev = 0;
    const char *env = getenv("SGDSA_CUDA_DEVICE");
    if (env && *env) {
        char *end = NULL;
        long v = strtol(env, &end, 10);
        if (*end || v < 0 || v >= g_count)
            return sg_seterr("cuda: SGDSA_CUDA_DEVICE=%s is not a device index in [0, %d)", env,
                             g_count);
        dev = (int)v;
    }
    SG_CU(cudaSetDevice(dev));
    g_dev = dev;
    SG_CU(cudaDeviceGetAttribute(&g_sm_count, cudaDevAttrMultiProcessorCount, dev));
    if (g_sm_count < 1)
        g_sm_count = 1;
    const char *nc = getenv("SGDSA_CUDA_NO_CACHE");
    g_nocache = nc && *nc && strcmp(nc, "0") != 0;
    SG_CU(cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking));
    SG_CU(cudaStreamCreateWithFlags(&g_copy_stream, cudaStreamNonBlocking));
    SG_CU(cudaEventCreateWithFlags(&g_compute_ev, cudaEventDisableTiming));
    for (int i = 0; i < SG_CUDA_INPUT_SLOTS; i++)
        SG_CU(cudaEventCreateWithFlags(&g_copy_ev[i], cudaEventDisableTiming));
    SG_CUBLAS(cublasCreate(&g_cublas));
    SG_CUBLAS(cublasSetStream(g_cublas, g_stream));
    SG_CUBLAS(cublasSetMathMode(g_cublas, g_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    SG_CUDNN(cudnnCreate(&g_cudnn));
    SG_CUDNN(cudnnSetStream(g_cudnn, g_stream));
    return 0;
}

int sg_cuda_init(void)
{
    if (__atomic_load_n(&g_ready, __ATOMIC_ACQUIRE)) {
        /* the current device is per host thread: select ours once per thread */
        if (!t_dev_set) {
            SG_CU(cudaSetDevice(g_dev));
            t_dev_set = 1;
        }
        return 0;
    }
    if (sg_cuda_device_count() <= 0)
        return -1;
    pthread_mutex_lock(&g_lock);
    int rc = 0;
    if (!g_ready) {
        rc = init_locked();
        if (rc == 0)
            __atomic_store_n(&g_ready, 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&g_lock);
    if (rc == 0 && !t_dev_set) {
        SG_CU(cudaSetDevice(g_dev));
        t_dev_set = 1;
    }
    return rc;
}

cudaStream_t sg_cuda_stream(void) { return g_stream; }
int sg_cuda_sm_count(void) { return g_sm_count; }
void sg_cuda_set_index64(int on) { __atomic_store_n(&g_index64, on != 0, __ATOMIC_RELAXED); }

int sg_cuda_index32_ok(int64_t n)
{
    return n >= 0 && n <= INT32_MAX && !__atomic_load_n(&g_index64, __ATOMIC_RELAXED);
}
cublasHandle_t sg_cuda_cublas(void) { return g_cublas; }
cudnnHandle_t sg_cuda_cudnn(void) { return g_cudnn; }

int sg_cuda_device_name(char *buf, size_t n)
{
    if (sg_cuda_init() != 0)
        return -1;
    int dev = 0;
    struct cudaDeviceProp p;
    SG_CU(cudaGetDevice(&dev));
    SG_CU(cudaGetDeviceProperties(&p, dev));
    snprintf(buf, n, "%s (sm_%d%d, %.1f GiB)", p.name, p.major, p.minor,
             (double)p.totalGlobalMem / (1024.0 * 1024.0 * 1024.0));
    return 0;
}

int sg_cuda_synchronize(void)
{
    if (sg_cuda_init() != 0)
        return -1;
    SG_CU(sg_cuda_wait_stream(g_copy_stream));
    SG_CU(sg_cuda_wait_stream(g_stream));
    return 0;
}

int sg_cuda_set_tf32(int on)
{
    g_tf32 = on != 0;
    if (g_ready)
        SG_CUBLAS(cublasSetMathMode(g_cublas, g_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                     : CUBLAS_DEFAULT_MATH));
    return 0;
}

int sg_cuda_get_tf32(void) { return g_tf32; }
void sg_cuda_set_deterministic(int on) { g_deterministic = on != 0; }
int sg_cuda_get_deterministic(void) { return g_deterministic; }

/* ---- the caching pool -------------------------------------------------------------- */

typedef struct { void *p; size_t size; } live_ent;       /* pointer -> class size */
typedef struct { size_t size; void **ptrs; size_t n, cap; } free_list;

static live_ent *g_live;        /* open addressing, capacity g_live_cap (power of 2) */
static size_t g_live_cap, g_live_n, g_live_used; /* used counts tombstones too */
static void *const TOMB = (void *)1;
static free_list *g_free;
static size_t g_nfree, g_free_cap;
static sg_cuda_mem_stats g_stats;

static size_t size_class(size_t n)
{
    if (n == 0)
        n = 1;
    if (n > SIZE_MAX / 4)
        return n;  /* beyond any device: no class (cudaMalloc refuses it) */
    if (n <= 65536)
        return (n + 511) & ~(size_t)511;
    size_t top = 1;
    while (top < n)
        top <<= 1;
    size_t step = top / 16;  /* 8 classes between top/2 and top */
    return (n + step - 1) / step * step;
}

/* A mixing hash (splitmix64's finalizer): cudaMalloc returns 256-byte or,
 * for large blocks, 2 MiB aligned addresses, whose low bits carry nothing; a
 * plain multiplicative hash masked to its low bits sent them all to one slot. */
static size_t hash_ptr(void *p)
{
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBull;
    x ^= x >> 31;
    return (size_t)x;
}

static int live_grow(void)
{
    size_t cap = g_live_cap ? g_live_cap * 2 : 1024;
    if (g_live_n * 4 < g_live_cap)  /* mostly tombstones: rehash at same size */
        cap = g_live_cap;
    live_ent *t = calloc(cap, sizeof *t);
    if (!t)
        return sg_seterr("out of memory: cuda pool table (%zu bytes)", cap * sizeof *t);
    for (size_t i = 0; i < g_live_cap; i++) {
        void *p = g_live[i].p;
        if (!p || p == TOMB)
            continue;
        size_t h = hash_ptr(p) & (cap - 1);
        while (t[h].p)
            h = (h + 1) & (cap - 1);
        t[h] = g_live[i];
    }
    free(g_live);
    g_live = t;
    g_live_cap = cap;
    g_live_used = g_live_n;
    return 0;
}

static int live_put(void *p, size_t size)
{
    if ((g_live_used + 1) * 2 > g_live_cap && live_grow() != 0)
        return -1;
    size_t h = hash_ptr(p) & (g_live_cap - 1);
    while (g_live[h].p && g_live[h].p != TOMB)
        h = (h + 1) & (g_live_cap - 1);
    if (!g_live[h].p)
        g_live_used++;
    g_live[h].p = p;
    g_live[h].size = size;
    g_live_n++;
    return 0;
}

/* Remove p; its class size in *size. 0 if found. */
static int live_take(void *p, size_t *size)
{
    if (!g_live_cap)
        return -1;
    size_t h = hash_ptr(p) & (g_live_cap - 1);
    while (g_live[h].p) {
        if (g_live[h].p == p) {
            *size = g_live[h].size;
            g_live[h].p = TOMB;
            g_live_n--;
            return 0;
        }
        h = (h + 1) & (g_live_cap - 1);
    }
    return -1;
}

static free_list *free_list_of(size_t size, int create)
{
    for (size_t i = 0; i < g_nfree; i++)
        if (g_free[i].size == size)
            return &g_free[i];
    if (!create)
        return NULL;
    if (g_nfree == g_free_cap) {
        size_t cap = g_free_cap ? g_free_cap * 2 : 64;
        free_list *f = realloc(g_free, cap * sizeof *f);
        if (!f)
            return NULL;
        g_free = f;
        g_free_cap = cap;
    }
    free_list *f = &g_free[g_nfree++];
    memset(f, 0, sizeof *f);
    f->size = size;
    return f;
}

/* Wait for both streams: a cached block may still be read by queued compute
 * or written by a queued input copy. */
static int sync_streams(void)
{
    SG_CU(sg_cuda_wait_stream(g_copy_stream));
    SG_CU(sg_cuda_wait_stream(g_stream));
    return 0;
}

static int release_cached_locked(void)
{
    int rc = 0;
    for (size_t i = 0; i < g_nfree; i++) {
        free_list *f = &g_free[i];
        for (size_t j = 0; j < f->n; j++) {
            cudaError_t e = cudaFree(f->ptrs[j]);
            if (e != cudaSuccess && rc == 0)
                rc = sg_cuda_fail_rt("cudaFree(cached block)", e, __FILE__, __LINE__);
            g_stats.cached -= f->size;
            g_stats.device_frees++;
        }
        f->n = 0;
    }
    return rc;
}

/* Device blocks written by input copies (the copy stream) that the host has
 * not waited for yet, per input slot. The pool hands a freed block to the
 * compute stream, which waits for the copy stream only from
 * sg_cuda_input_ready: freeing one of these (a loader's input tensor
 * collected while its next batch is on the way) first waits for the slot's
 * copies. Guarded by g_lock. */
#define SG_INPUT_DSTS 8
static void *g_in_dst[SG_CUDA_INPUT_SLOTS][SG_INPUT_DSTS];
static int g_in_ndst[SG_CUDA_INPUT_SLOTS];

static void input_dst_freed(void *p, size_t size)
{
    const char *lo = p, *hi = lo + size;
    for (int s = 0; s < SG_CUDA_INPUT_SLOTS; s++)
        for (int i = 0; i < g_in_ndst[s]; i++)
            if ((const char *)g_in_dst[s][i] >= lo && (const char *)g_in_dst[s][i] < hi) {
                /* a copy writes into the block (at its start, or into a view of it) */
                (void)sg_cuda_wait_event(g_copy_ev[s]); /* errors surface at the next call */
                g_in_ndst[s] = 0;
                break;
            }
}

/* Record dst as written by the slot's next copy (the copy is queued after). */
static int input_dst_add(int slot, void *dst)
{
    pthread_mutex_lock(&g_lock);
    if (g_in_ndst[slot] == SG_INPUT_DSTS) {
        /* copies without a wait in between: wait for those queued so far */
        cudaError_t e = sg_cuda_wait_event(g_copy_ev[slot]);
        if (e != cudaSuccess) {
            pthread_mutex_unlock(&g_lock);
            return sg_cuda_fail_rt("sg_cuda_wait_event(g_copy_ev[slot])", e, __FILE__,
                                   __LINE__);
        }
        g_in_ndst[slot] = 0;
    }
    g_in_dst[slot][g_in_ndst[slot]++] = dst;
    pthread_mutex_unlock(&g_lock);
    return 0;
}

void *sg_cuda_malloc(size_t nbytes)
{
    if (sg_cuda_init() != 0)
        return NULL;
    size_t size = g_nocache ? (nbytes ? nbytes : 1) : size_class(nbytes);
    void *p = NULL;
    pthread_mutex_lock(&g_lock);
    free_list *f = g_nocache ? NULL : free_list_of(size, 0);
    if (f && f->n > 0) {
        p = f->ptrs[--f->n];
        g_stats.cached -= size;
        g_stats.pool_hits++;
    } else {
        cudaError_t e = cudaMalloc(&p, size);
        if (e == cudaErrorMemoryAllocation) {
            (void)cudaGetLastError();
            /* give the cache back (after the queued work that may use it) and retry */
            if (sync_streams() != 0 || release_cached_locked() != 0) {
                pthread_mutex_unlock(&g_lock);
                return NULL;
            }
            e = cudaMalloc(&p, size);
        }
        if (e != cudaSuccess) {
            (void)cudaGetLastError();
            size_t fr = 0, tot = 0;
            (void)cudaMemGetInfo(&fr, &tot);
            if (e == cudaErrorMemoryAllocation)
                sg_seterr("cuda: out of memory allocating %zu bytes (%.1f MiB) at %s:%d; in use "
                          "%.1f MiB by sgdsa, device free %.1f of %.1f MiB",
                          nbytes, (double)nbytes / 1048576.0, __FILE__, __LINE__,
                          (double)g_stats.in_use / 1048576.0, (double)fr / 1048576.0,
                          (double)tot / 1048576.0);
            else
                sg_seterr("cuda: cudaMalloc of %zu bytes (%.1f MiB) failed: %s (%s) at %s:%d",
                          nbytes, (double)nbytes / 1048576.0, cudaGetErrorString(e),
                          cudaGetErrorName(e), __FILE__, __LINE__);
            pthread_mutex_unlock(&g_lock);
            return NULL;
        }
        g_stats.device_allocs++;
    }
    if (live_put(p, size) != 0) {
        /* cannot track it: give it back (the message of live_put stays) */
        if (cudaFree(p) == cudaSuccess)
            g_stats.device_frees++;
        else
            (void)cudaGetLastError();
        pthread_mutex_unlock(&g_lock);
        return NULL;
    }
    g_stats.in_use += size;
    if (g_stats.in_use > g_stats.peak_in_use)
        g_stats.peak_in_use = g_stats.in_use;
    pthread_mutex_unlock(&g_lock);
    return p;
}

/* Give block p back to the device, counted; a failure is reported as the
 * call `what`. */
static void device_free(void *p, const char *what)
{
    cudaError_t e = cudaFree(p);
    if (e == cudaSuccess)
        g_stats.device_frees++;
    else
        sg_cuda_fail_rt(what, e, __FILE__, __LINE__);
}

/* The device selected on the calling thread, for the paths that do not go
 * through sg_cuda_init (frees, which may come from any thread: without it a
 * thread works on device 0). Only after initialisation (nothing to free
 * before). */
static void select_device(void)
{
    if (!t_dev_set && __atomic_load_n(&g_ready, __ATOMIC_ACQUIRE)) {
        cudaError_t e = cudaSetDevice(g_dev);
        if (e == cudaSuccess)
            t_dev_set = 1;
        else
            sg_cuda_fail_rt("cudaSetDevice(g_dev)", e, __FILE__, __LINE__);
    }
}

void sg_cuda_free(void *p)
{
    if (!p)
        return;
    select_device();
    pthread_mutex_lock(&g_lock);
    size_t size = 0;
    if (live_take(p, &size) != 0) {
        /* not ours: a programming error; do not touch it */
        sg_seterr("cuda: free of a pointer %p the pool did not allocate", p);
        pthread_mutex_unlock(&g_lock);
        return;
    }
    input_dst_freed(p, size);
    g_stats.in_use -= size;
    if (g_nocache) {
        /* no cache: the queued work that may use the block first */
        if (sync_streams() == 0) {
            device_free(p, "cudaFree(block, SGDSA_CUDA_NO_CACHE)");
        }
        pthread_mutex_unlock(&g_lock);
        return;
    }
    free_list *f = free_list_of(size, 1);
    if (f && f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 8;
        void **np = realloc(f->ptrs, cap * sizeof *np);
        if (np) {
            f->ptrs = np;
            f->cap = cap;
        }
    }
    if (f && f->n < f->cap) {
        f->ptrs[f->n++] = p;
        g_stats.cached += size;
    } else {
        /* no room to cache it: give it back (cudaFree waits for the device) */
        device_free(p, "cudaFree(uncacheable block)");
    }
    pthread_mutex_unlock(&g_lock);
}

int sg_cuda_empty_cache(void)
{
    if (sg_cuda_init() != 0)
        return -1;
    pthread_mutex_lock(&g_lock);
    int rc = sync_streams() == 0 ? release_cached_locked() : -1;
    pthread_mutex_unlock(&g_lock);
    return rc;
}

sg_cuda_mem_stats sg_cuda_get_mem_stats(void)
{
    pthread_mutex_lock(&g_lock);
    sg_cuda_mem_stats s = g_stats;
    s.caching = !g_nocache;
    pthread_mutex_unlock(&g_lock);
    return s;
}

/* ---- copies ------------------------------------------------------------------------- */

int sg_cuda_memcpy(void *dst, const void *src, size_t nbytes, int dst_is_device,
                   int src_is_device)
{
    if (sg_cuda_init() != 0)
        return -1;
    if (nbytes == 0)
        return 0;
    enum cudaMemcpyKind kind = dst_is_device ? (src_is_device ? cudaMemcpyDeviceToDevice
                                                              : cudaMemcpyHostToDevice)
                                             : (src_is_device ? cudaMemcpyDeviceToHost
                                                              : cudaMemcpyHostToHost);
    if (kind == cudaMemcpyHostToHost) {
        memmove(dst, src, nbytes);
        return 0;
    }
    SG_CU(cudaMemcpyAsync(dst, src, nbytes, kind, g_stream));
    if (kind != cudaMemcpyDeviceToDevice)
        SG_CU(sg_cuda_wait_stream(g_stream));
    return 0;
}

static int bad_slot(const char *op, int slot)
{
    return sg_seterr("cuda: %s: input slot %d is not in [0, %d)", op, slot, SG_CUDA_INPUT_SLOTS);
}

/* The input slot checked and the device started, for operation op. */
static int slot_ready(const char *op, int slot)
{
    if (slot < 0 || slot >= SG_CUDA_INPUT_SLOTS)
        return bad_slot(op, slot);
    return sg_cuda_init() != 0 ? -1 : 0;
}

/* What every write of an input slot starts with: dst recorded as written
 * by the slot's copies, and the copy stream ordered after the compute queued
 * so far, which may still read dst. */
static int input_begin(int slot, void *dst)
{
    if (input_dst_add(slot, dst) != 0)
        return -1;
    SG_CU(cudaEventRecord(g_compute_ev, g_stream));
    SG_CU(cudaStreamWaitEvent(g_copy_stream, g_compute_ev, 0));
    return 0;
}

int sg_cuda_input_copy(int slot, void *dst, const void *src, size_t nbytes)
{
    if (slot_ready("input_copy", slot) != 0)
        return -1;
    if (nbytes == 0)
        return 0;
    if (input_begin(slot, dst) != 0)
        return -1;
    cudaError_t e = cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyHostToDevice, g_copy_stream);
    /* the event covers whatever was queued, even when the copy failed */
    SG_CU(cudaEventRecord(g_copy_ev[slot], g_copy_stream));
    if (e != cudaSuccess)
        return sg_cuda_fail_rt("cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyHostToDevice, "
                               "g_copy_stream)", e, __FILE__, __LINE__);
    return 0;
}

int sg_cuda_input_ready(int slot)
{
    if (slot_ready("input_ready", slot) != 0)
        return -1;
    SG_CU(cudaStreamWaitEvent(g_stream, g_copy_ev[slot], 0));
    return 0;
}

int sg_cuda_input_wait(int slot)
{
    if (slot_ready("input_wait", slot) != 0)
        return -1;
    SG_CU(sg_cuda_wait_event(g_copy_ev[slot]));
    pthread_mutex_lock(&g_lock);
    g_in_ndst[slot] = 0;
    pthread_mutex_unlock(&g_lock);
    return 0;
}

/* Device staging of raw input batches, one pair of buffers per input slot,
 * used only on the copy stream (whose order makes their reuse safe). */
static void *g_stage_u8[SG_CUDA_INPUT_SLOTS], *g_stage_aug[SG_CUDA_INPUT_SLOTS];
static size_t g_stage_u8_n[SG_CUDA_INPUT_SLOTS], g_stage_aug_n[SG_CUDA_INPUT_SLOTS];

/* The slot's staging buffer of at least nbytes. A buffer replaced may still
 * be read by queued copy-stream work, and a block back in the pool may go to
 * the compute stream: finish the copy stream before giving it back. */
static void *stage(void **buf, size_t *have, size_t nbytes, const char *what)
{
    if (*buf && nbytes <= *have)
        return *buf;
    size_t want = nbytes < 4096 ? 4096 : nbytes;
    void *p = sg_cuda_malloc(want);
    if (!p)
        return sg_adderr("cuda: staging buffer for %s (%zu bytes)", what, nbytes), NULL;
    if (*buf) {
        cudaError_t e = sg_cuda_wait_stream(g_copy_stream);
        if (e != cudaSuccess) {
            sg_cuda_free(p);
            sg_cuda_fail_rt("sg_cuda_wait_stream(g_copy_stream)", e, __FILE__, __LINE__);
            return NULL;
        }
        sg_cuda_free(*buf);
    }
    *buf = p;
    *have = want;
    return p;
}

int sg_cuda_input_expand(int slot, float *dst, const uint8_t *u8, int64_t n, int64_t cap,
                         const int32_t *aug, size_t aug_bytes, int c, int h, int w, int pad)
{
    if (slot < 0 || slot >= SG_CUDA_INPUT_SLOTS)
        return bad_slot("input_expand", slot);
    if (n <= 0 || n > cap || c <= 0 || h <= 0 || w <= 0 || pad < 0 ||
        aug_bytes < (size_t)cap * 3 * sizeof(int32_t) + (size_t)c * 256 * sizeof(float))
        return sg_seterr("cuda: input_expand: %lld images of %dx%dx%d (pad %d) in a batch of "
                         "%lld with %zu bytes of shifts and table: inconsistent", (long long)n,
                         c, h, w, pad, (long long)cap, aug_bytes);
    if (sg_cuda_init() != 0)
        return -1;
    size_t u8_bytes = (size_t)n * c * h * w;
    void *du8 = stage(&g_stage_u8[slot], &g_stage_u8_n[slot], u8_bytes, "raw images");
    if (!du8)
        return -1;
    void *daug = stage(&g_stage_aug[slot], &g_stage_aug_n[slot], aug_bytes, "shifts and table");
    if (!daug)
        return -1;
    if (input_begin(slot, dst) != 0)
        return -1;
    /* from here on the slot's event is recorded on every exit: it must cover
     * whatever was queued */
    const int32_t *a = daug;
    cudaError_t e = cudaMemcpyAsync(du8, u8, u8_bytes, cudaMemcpyHostToDevice, g_copy_stream);
    const char *what = "cudaMemcpyAsync(raw images)";
    if (e == cudaSuccess) {
        e = cudaMemcpyAsync(daug, aug, aug_bytes, cudaMemcpyHostToDevice, g_copy_stream);
        what = "cudaMemcpyAsync(shifts and table)";
    }
    int rc = 0;
    if (e != cudaSuccess)
        rc = sg_cuda_fail_rt(what, e, __FILE__, __LINE__);
    else if (sg_cuda_k_input_transform(g_copy_stream, du8, dst, a, a + cap, a + 2 * cap, n, c, h,
                                       w, pad, (const float *)(a + 3 * cap)) != 0)
        rc = sg_adderr("cuda: input_expand (slot %d)", slot);
    SG_CU(cudaEventRecord(g_copy_ev[slot], g_copy_stream));
    return rc;
}

/* ---- pinned host memory ----------------------------------------------------------------- */

void *sg_cuda_host_alloc(size_t nbytes, void *ud)
{
    (void)ud;
    if (sg_cuda_init() != 0)
        return NULL;
    void *p = NULL;
    /* portable: pinned for every context, whichever thread allocates it */
    cudaError_t e = cudaHostAlloc(&p, nbytes ? nbytes : 1, cudaHostAllocPortable);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        if (e == cudaErrorMemoryAllocation)
            sg_seterr("cuda: out of pinned host memory allocating %zu bytes (cudaHostAlloc at "
                      "%s:%d)", nbytes, __FILE__, __LINE__);
        else
            sg_cuda_fail_rt("cudaHostAlloc", e, __FILE__, __LINE__);
        return NULL;
    }
    return p;
}

void sg_cuda_host_free(void *p, void *ud)
{
    (void)ud;
    if (!p)
        return;
    select_device();
    /* an input copy may still read it (a loader freed with a batch on the way) */
    if (__atomic_load_n(&g_ready, __ATOMIC_ACQUIRE))
        (void)sg_cuda_wait_stream(g_copy_stream);
    cudaError_t e = cudaFreeHost(p);
    if (e != cudaSuccess)
        sg_cuda_fail_rt("cudaFreeHost", e, __FILE__, __LINE__);
}

/* ---- scratch buffers ---------------------------------------------------------------------- */

static void *g_scratch[SG_SCRATCH_NSLOTS];
static size_t g_scratch_n[SG_SCRATCH_NSLOTS];
static void *g_hscratch[SG_SCRATCH_NSLOTS];
static size_t g_hscratch_n[SG_SCRATCH_NSLOTS];
static float *g_ones, *g_zeros;
static int64_t g_ones_n, g_zeros_n;

void *sg_cuda_scratch(int slot, size_t nbytes)
{
    if (slot < 0 || slot >= SG_SCRATCH_NSLOTS)
        return sg_seterr("cuda: bad scratch slot %d", slot), NULL;
    if (nbytes <= g_scratch_n[slot] && g_scratch[slot])
        return g_scratch[slot];
    size_t want = nbytes < 4096 ? 4096 : nbytes + nbytes / 4;
    void *p = sg_cuda_malloc(want);
    if (!p)
        return sg_adderr("cuda scratch buffer of %zu bytes", nbytes), NULL;
    sg_cuda_free(g_scratch[slot]);  /* stream order makes the old one's pending uses safe */
    g_scratch[slot] = p;
    g_scratch_n[slot] = want;
    return p;
}

void *sg_cuda_host_scratch(int slot, size_t nbytes)
{
    if (slot < 0 || slot >= SG_SCRATCH_NSLOTS)
        return sg_seterr("cuda: bad host scratch slot %d", slot), NULL;
    if (nbytes <= g_hscratch_n[slot] && g_hscratch[slot])
        return g_hscratch[slot];
    size_t want = nbytes < 4096 ? 4096 : nbytes + nbytes / 4;
    /* the old buffer may be the source of a queued copy: finish those first */
    if (g_hscratch[slot]) {
        SG_CU_OR(sg_cuda_wait_stream(g_stream), NULL);
        sg_cuda_host_free(g_hscratch[slot], NULL);
        g_hscratch[slot] = NULL;
        g_hscratch_n[slot] = 0;
    }
    void *p = sg_cuda_host_alloc(want, NULL);
    if (!p)
        return NULL;
    g_hscratch[slot] = p;
    g_hscratch_n[slot] = want;
    return p;
}

static const float *const_array(float **buf, int64_t *have, int64_t n, float v)
{
    if (*buf && n <= *have)
        return *buf;
    int64_t want = n < 1024 ? 1024 : n;
    float *p = sg_cuda_malloc((size_t)want * sizeof(float));
    if (!p)
        return NULL;
    if (sg_cuda_fill(p, SG_F32, want, v) != 0) {
        sg_cuda_free(p);
        return NULL;
    }
    sg_cuda_free(*buf);
    *buf = p;
    *have = want;
    return p;
}

const float *sg_cuda_ones(int64_t n) { return const_array(&g_ones, &g_ones_n, n, 1.0f); }
const float *sg_cuda_zeros(int64_t n) { return const_array(&g_zeros, &g_zeros_n, n, 0.0f); }
