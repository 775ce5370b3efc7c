/*
 * emu_runtime.cpp - the CUDA runtime of the emulator: one device whose
 * memory is host memory, streams and events, copies, and kernel execution
 * (see emu_internal.h for the whole design).
 *
 * What it checks, as a GPU or compute-sanitizer would:
 * - copies and library calls touch only live allocations, within bounds,
 *   with the copy kind the pointers say; kernels' pointer arguments are
 *   device memory; launch configurations are within the hardware limits;
 * - work on a stream runs only when the host waits for it (stream or event
 *   synchronization, cudaFree, a copy to pageable memory), or when another
 *   stream that waits on it runs: reading a result without waiting reads
 *   stale memory;
 * - new allocations are filled with 0xff bytes (float NaN), so reading
 *   memory never written shows;
 * - warp shuffles need every lane of their mask, and a block whose threads
 *   wait at different barriers is a deadlock; both are illegal-address
 *   faults (sticky, as on a GPU).
 *
 * - devices: SGDSA_EMU_DEVICES (default 1) of them, one memory shared; the
 *   current device is per host thread (0 until cudaSetDevice), and
 *   cudaMalloc and cudaFree must run with the allocation's device current
 *   (on a GPU, a thread that never selected the device works on device 0:
 *   it creates a context there and cannot free another device's memory).
 *
 * Environment: SGDSA_EMU_MEMORY (device bytes, default 4 GiB),
 * SGDSA_EMU_NO_DEVICE=1 (report no device), SGDSA_EMU_SEED (the barrier
 * order's seed, default 1; 0 runs threads in index order), SGDSA_EMU_SMS
 * (the multiprocessor count reported, default 132).
 */
#include "emu_device.h"
#include "emu_internal.h"

#include <ucontext.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

/* EMU_ASAN: the build is sanitized (this file is not, see CMakeLists.txt) */
#if defined(__SANITIZE_ADDRESS__) && !defined(EMU_ASAN)
#define EMU_ASAN 1
#endif
#ifdef EMU_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

struct CUstream_st {
    std::deque<std::function<void()>> q;
    uint64_t queued = 0, ran = 0;
    double clock = 0.0;  /* fake milliseconds of the work run (emu::enqueue's costs) */
};
struct CUevent_st {
    cudaStream_t s = nullptr;
    uint64_t at = 0;
    bool timing = true;  /* created without cudaEventDisableTiming */
    bool stamped = false;
    double t = 0.0;      /* its stream's clock when it completed */
    uint64_t gen = 0;    /* records so far: a stale stamp is ignored */
};

namespace emu {

uint3 thread_idx, block_idx;
dim3 block_dim, grid_dim;

namespace {

std::recursive_mutex g_mu;  /* every API call; queued work runs under it */
std::map<uintptr_t, size_t> g_dev;  /* live device allocations: start -> bytes */
std::map<uintptr_t, size_t> g_pinned;  /* cudaHostAlloc'd blocks: start -> bytes */
std::set<cudaStream_t> g_streams;
size_t g_used, g_limit;
cudaError_t g_last = cudaSuccess, g_sticky = cudaSuccess;
unsigned g_seed = 1;
int g_sms = 132;
int g_ndev = 1;
thread_local int t_cur;  /* the host thread's current device */
std::map<uintptr_t, int> g_owner;  /* live device allocations: start -> device */
bool g_env_read;

void read_env()
{
    if (g_env_read)
        return;
    g_env_read = true;
    const char *m = getenv("SGDSA_EMU_MEMORY");
    g_limit = m ? (size_t)strtoull(m, nullptr, 10) : ((size_t)4 << 30);
    const char *s = getenv("SGDSA_EMU_SEED");
    g_seed = s ? (unsigned)strtoul(s, nullptr, 10) : 1u;
    const char *sm = getenv("SGDSA_EMU_SMS");
    g_sms = sm && atoi(sm) > 0 ? atoi(sm) : 132;
    const char *nd = getenv("SGDSA_EMU_DEVICES");
    g_ndev = nd && atoi(nd) > 0 ? atoi(nd) : 1;
}

void vsay(const char *kind, const char *fmt, va_list ap)
{
    fprintf(stderr, "sgdsa CUDA emulator: %s: ", kind);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

/* [p, p + bytes) inside one block of m */
bool in_blocks(const std::map<uintptr_t, size_t> &m, const void *p, size_t bytes)
{
    uintptr_t a = (uintptr_t)p;
    auto it = m.upper_bound(a);
    if (it == m.begin())
        return false;
    --it;
    return a >= it->first && bytes <= it->second && a - it->first <= it->second - bytes;
}

bool in_device(const void *p, size_t bytes) { return in_blocks(g_dev, p, bytes); }

bool in_pinned(const void *p, size_t bytes) { return in_blocks(g_pinned, p, bytes); }

/* ---- streams: run queued work in order --------------------------------------- */
void drain(cudaStream_t s, uint64_t upto)
{
    while (s->ran < upto && !s->q.empty()) {
        std::function<void()> fn = std::move(s->q.front());
        s->q.pop_front();
        if (g_sticky == cudaSuccess)
            fn();
        s->ran++;
    }
}

void drain_all()
{
    for (cudaStream_t s : g_streams)
        drain(s, s->queued);
}

void push(cudaStream_t s, std::function<void()> fn)
{
    if (!s || s == cudaStreamLegacy || s == cudaStreamPerThread) {
        if (g_sticky == cudaSuccess)
            fn();  /* the legacy stream: our streams are non-blocking, it waits for nothing */
        return;
    }
    s->q.push_back(std::move(fn));
    s->queued++;
}

cudaError_t fail(cudaError_t e)
{
    g_last = e;
    return e;
}

#define EMU_ENTER()                                  \
    std::lock_guard<std::recursive_mutex> lk_(g_mu); \
    read_env();                                      \
    if (g_sticky != cudaSuccess)                     \
        return g_sticky

/* ---- kernel threads ----------------------------------------------------------------
 * Thread i of a block runs on worker i: a coroutine with its own stack,
 * started once (makecontext) and then switched to and from with the
 * compiler's __builtin_setjmp/__builtin_longjmp: no signal mask, no
 * sanitizer interception (swapcontext makes two system calls a switch,
 * and AddressSanitizer unpoisons the whole stack at each longjmp). A worker
 * that finishes a thread waits for the next one, so a launch costs two
 * switches per thread plus two per barrier. x86-64 only (the register
 * names below). */
#ifndef __x86_64__
#error "the CUDA emulator's coroutine switch is written for x86-64"
#endif
enum { T_READY, T_BLOCK, T_WARP, T_DONE };
constexpr size_t kStack = 256 << 10;

struct worker {
    ucontext_t uc;   /* only to start it */
    void *jb[5];     /* where it waits */
    char *stack;
    bool live;       /* started, and between threads or in one */
    void *fake;      /* AddressSanitizer's fake stack while switched out */
};
std::vector<worker *> g_workers;
void *g_sched_jb[5];

/* __builtin_setjmp keeps only the frame and stack pointers: the functions
 * that switch (to_sched, resume) clobber every other callee-saved register
 * right after it, so that they save them in their prologue, on their own
 * stack, and restore them on return; and they are noipa, so that no caller
 * keeps a value in a caller-saved register across them (GCC's
 * interprocedural register allocation would, seeing they clobber none). */
#define EMU_CLOBBER_SAVED() asm volatile("" ::: "rbx", "r12", "r13", "r14", "r15", "memory")

/* __builtin_longjmp may not share a function with its __builtin_setjmp;
 * not noreturn: AddressSanitizer would unpoison the whole stack before each call */
__attribute__((noinline)) void jump(void **jb) { __builtin_longjmp(jb, 1); }
ucontext_t g_sched_uc;  /* swapcontext's save area when a worker starts (unused after) */
#ifdef EMU_ASAN
const void *g_sched_bottom;
size_t g_sched_size;
void *g_sched_fake;
#endif

struct thr {
    int state;
    unsigned mask;      /* T_WARP: the lanes of the exchange */
    unsigned seq;       /* warp exchanges done: the slot parity */
};

struct block_run {
    std::vector<thr> t;
    const std::function<void()> *body;
    int cur;
    uint64_t slots[2][1024];  /* [parity][linear thread id] */
    bool failed;
    const char *name;
};
block_run *g_blk;

/* from a worker to the scheduler; returns when the scheduler resumes it */
__attribute__((noipa)) void to_sched()
{
    worker *w = g_workers[g_blk->cur];
    if (__builtin_setjmp(w->jb) == 0) {
#ifdef EMU_ASAN
        __sanitizer_start_switch_fiber(&w->fake, g_sched_bottom, g_sched_size);
#endif
        jump(g_sched_jb);
    }
    EMU_CLOBBER_SAVED();
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(w->fake, nullptr, nullptr);
#endif
}

void worker_main()
{
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &g_sched_bottom, &g_sched_size);
#endif
    for (;;) {
        (*g_blk->body)();
        g_blk->t[g_blk->cur].state = T_DONE;
        to_sched();
    }
}

/* from the scheduler into thread i's worker, until it waits or finishes */
__attribute__((noipa)) void resume(int i)
{
    worker *w = g_workers[i];
    if (__builtin_setjmp(g_sched_jb) == 0) {
#ifdef EMU_ASAN
        __sanitizer_start_switch_fiber(&g_sched_fake, w->stack, kStack);
#endif
        if (w->live)
            jump(w->jb);
        w->live = true;
        getcontext(&w->uc);
        w->uc.uc_stack.ss_sp = w->stack;
        w->uc.uc_stack.ss_size = kStack;
        w->uc.uc_link = nullptr;
        makecontext(&w->uc, worker_main, 0);
        swapcontext(&g_sched_uc, &w->uc);  /* it comes back by jump() */
    }
    EMU_CLOBBER_SAVED();
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(g_sched_fake, nullptr, nullptr);
#endif
}

void set_thread(int i)
{
    unsigned bx = block_dim.x, by = block_dim.y;
    thread_idx.x = (unsigned)i % bx;
    thread_idx.y = ((unsigned)i / bx) % by;
    thread_idx.z = (unsigned)i / (bx * by);
}

void block_fault(block_run *b, const char *what)
{
    if (!b->failed)
        fault("kernel %s, block (%u,%u,%u): %s", b->name, block_idx.x, block_idx.y, block_idx.z,
              what);
    b->failed = true;
}

/* release a barrier if one is complete; false when none is (a deadlock) */
bool release(block_run *b)
{
    int n = (int)b->t.size();
    bool any = false;
    for (int w = 0; w * 32 < n; w++) {
        int lo = w * 32, hi = lo + 32 < n ? lo + 32 : n;
        int first = -1;
        for (int i = lo; i < hi; i++)
            if (b->t[i].state == T_WARP) { first = i; break; }
        if (first < 0)
            continue;
        unsigned mask = b->t[first].mask;
        bool ready = true;
        for (int l = 0; l < 32; l++) {
            if (!(mask >> l & 1u))
                continue;
            int i = lo + l;
            if (i >= hi || b->t[i].state == T_DONE) {
                block_fault(b, "a warp shuffle or __syncwarp names a lane that has exited or does not exist");
                return false;
            }
            if (b->t[i].state != T_WARP)
                ready = false;
            else if (b->t[i].mask != mask) {
                block_fault(b, "lanes of one warp are in warp operations with different masks");
                return false;
            }
        }
        if (!ready)
            continue;
        for (int l = 0; l < 32; l++)
            if (mask >> l & 1u)
                b->t[lo + l].state = T_READY;
        any = true;
    }
    if (any)
        return true;
    bool waiting = false;
    for (thr &t : b->t) {
        if (t.state == T_WARP) {
            block_fault(b, "deadlock: threads wait at __syncthreads while others wait in a warp operation");
            return false;
        }
        waiting |= t.state == T_BLOCK;
    }
    if (!waiting)
        return false;
    for (thr &t : b->t)
        if (t.state == T_BLOCK)
            t.state = T_READY;
    return true;
}

unsigned next_rand(unsigned &s)
{
    s = s * 1103515245u + 12345u;
    return s >> 8;
}

void run_block(block_run *b, unsigned &rng)
{
    int n = (int)b->t.size();
    for (int i = 0; i < n; i++) {
        b->t[i].state = T_READY;
        b->t[i].seq = 0;
    }
    std::vector<int> order(n);
    for (int i = 0; i < n; i++)
        order[i] = i;
    for (;;) {
        if (g_seed)
            for (int i = n - 1; i > 0; i--)
                std::swap(order[i], order[next_rand(rng) % (unsigned)(i + 1)]);
        for (int k = 0; k < n; k++) {
            int i = order[k];
            if (b->t[i].state != T_READY)
                continue;
            b->cur = i;
            set_thread(i);
            resume(i);
        }
        if (b->failed || !release(b))
            break;
    }
    for (int i = 0; i < n; i++)
        if (b->t[i].state != T_DONE) {
            if (!b->failed)
                block_fault(b, "threads still waiting when the block ended");
            g_workers[i]->live = false;  /* abandoned mid-kernel: restart it fresh */
        }
}

void run_grid(const launch_cfg &c, const std::function<void()> &body)
{
    int n = (int)(c.block.x * c.block.y * c.block.z);
    while (g_workers.size() < (size_t)n) {
        worker *w = new worker();
        w->stack = (char *)malloc(kStack);
        if (!w->stack) {
            delete w;
            fault("kernel %s: out of host memory for thread stacks", c.name);
            return;
        }
        g_workers.push_back(w);
    }
    block_run *b = new block_run();
    b->t.resize(n);
    b->body = &body;
    b->name = c.name;
    g_blk = b;
    block_dim = c.block;
    grid_dim = c.grid;
    unsigned rng = g_seed;
    for (unsigned z = 0; z < c.grid.z && !b->failed; z++)
        for (unsigned y = 0; y < c.grid.y && !b->failed; y++)
            for (unsigned x = 0; x < c.grid.x && !b->failed; x++) {
                block_idx.x = x;
                block_idx.y = y;
                block_idx.z = z;
                run_block(b, rng);
            }
    g_blk = nullptr;
    delete b;
}

void wait_here(int state, unsigned mask)
{
    block_run *b = g_blk;
    thr &me = b->t[b->cur];
    me.state = state;
    me.mask = mask;
    to_sched();
}

}  // namespace

void sync_block() { wait_here(T_BLOCK, 0); }

void sync_warp(unsigned mask) { wait_here(T_WARP, mask); }

uint64_t warp_exchange(unsigned mask, uint64_t v, int src)
{
    block_run *b = g_blk;
    int me = b->cur, base = me & ~31;
    unsigned par = b->t[me].seq & 1u;
    b->slots[par][me] = v;
    wait_here(T_WARP, mask);
    b->t[me].seq++;
    if (src < 0 || src > 31 || !(mask >> src & 1u)) {
        block_fault(b, "a shuffle reads a lane outside its mask");
        return v;
    }
    return b->slots[par][base + src];
}

void submit(const launch_cfg &c, std::function<void()> body, std::vector<const void *> ptrs)
{
    std::lock_guard<std::recursive_mutex> lk(g_mu);
    read_env();
    if (g_sticky != cudaSuccess)
        return;
    unsigned long long threads = (unsigned long long)c.block.x * c.block.y * c.block.z;
    if (c.grid.x == 0 || c.grid.y == 0 || c.grid.z == 0 || threads == 0 || threads > 1024 ||
        c.block.x > 1024 || c.block.y > 1024 || c.block.z > 64 || c.grid.y > 65535 ||
        c.grid.z > 65535 || c.grid.x > 2147483647u || c.smem > 48 * 1024) {
        fprintf(stderr,
                "sgdsa CUDA emulator: kernel %s: invalid configuration grid (%u,%u,%u) block "
                "(%u,%u,%u) shared %zu\n",
                c.name, c.grid.x, c.grid.y, c.grid.z, c.block.x, c.block.y, c.block.z, c.smem);
        g_last = cudaErrorInvalidConfiguration;
        return;
    }
    if (c.stream && c.stream != cudaStreamLegacy && c.stream != cudaStreamPerThread &&
        !g_streams.count(c.stream)) {
        g_last = cudaErrorInvalidResourceHandle;
        return;
    }
    launch_cfg cfg = c;
    push(c.stream, [cfg, body, ptrs]() {
        for (size_t i = 0; i < ptrs.size(); i++)
            if (ptrs[i] && !in_device(ptrs[i], 1)) {
                fault("kernel %s: pointer argument %zu (%p) is not device memory", cfg.name, i + 1,
                      ptrs[i]);
                return;
            }
        run_grid(cfg, body);
    });
}

void enqueue(cudaStream_t s, std::function<void()> fn, double cost_ms)
{
    std::lock_guard<std::recursive_mutex> lk(g_mu);
    if (cost_ms > 0 && s && s != cudaStreamLegacy && s != cudaStreamPerThread)
        push(s, [fn, s, cost_ms]() {
            fn();
            s->clock += cost_ms;
        });
    else
        push(s, std::move(fn));
}

size_t free_bytes()
{
    std::lock_guard<std::recursive_mutex> lk(g_mu);
    read_env();
    return g_limit - g_used;
}

bool is_device(const void *p, size_t bytes)
{
    std::lock_guard<std::recursive_mutex> lk(g_mu);
    return in_device(p, bytes);
}

void fault(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsay("illegal access", fmt, ap);
    va_end(ap);
    std::lock_guard<std::recursive_mutex> lk(g_mu);
    g_sticky = g_last = cudaErrorIllegalAddress;
}

void complain(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsay("bad call", fmt, ap);
    va_end(ap);
}

}  // namespace emu

using namespace emu;

extern "C" {

/* ---- errors --------------------------------------------------------------------- */
cudaError_t cudaGetLastError(void)
{
    std::lock_guard<std::recursive_mutex> lk(g_mu);
    cudaError_t e = g_sticky != cudaSuccess ? g_sticky : g_last;
    g_last = cudaSuccess;
    return e;
}

cudaError_t cudaPeekAtLastError(void)
{
    std::lock_guard<std::recursive_mutex> lk(g_mu);
    return g_sticky != cudaSuccess ? g_sticky : g_last;
}

static const char *err_name(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
    default: return "cudaErrorUnknown";
    }
}

const char *cudaGetErrorName(cudaError_t e) { return err_name(e); }

const char *cudaGetErrorString(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    default: return "unknown error";
    }
}

/* ---- device ----------------------------------------------------------------------- */
cudaError_t cudaGetDeviceCount(int *n)
{
    EMU_ENTER();
    if (getenv("SGDSA_EMU_NO_DEVICE") && atoi(getenv("SGDSA_EMU_NO_DEVICE"))) {
        *n = 0;
        return fail(cudaErrorNoDevice);
    }
    *n = g_ndev;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int d)
{
    EMU_ENTER();
    if (d < 0 || d >= g_ndev)
        return fail(cudaErrorInvalidDevice);
    t_cur = d;
    return cudaSuccess;
}

cudaError_t cudaGetDevice(int *d)
{
    EMU_ENTER();
    *d = t_cur;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *p, int d)
{
    EMU_ENTER();
    if (d < 0 || d >= g_ndev)
        return fail(cudaErrorInvalidDevice);
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "sgdsa CUDA emulator (CPU)");
    p->totalGlobalMem = g_limit;
    p->major = 9;
    p->minor = 0;
    p->multiProcessorCount = g_sms;
    p->warpSize = 32;
    p->maxThreadsPerBlock = 1024;
    p->maxThreadsDim[0] = 1024;
    p->maxThreadsDim[1] = 1024;
    p->maxThreadsDim[2] = 64;
    p->maxGridSize[0] = 2147483647;
    p->maxGridSize[1] = 65535;
    p->maxGridSize[2] = 65535;
    p->sharedMemPerBlock = 48 * 1024;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int *v, enum cudaDeviceAttr attr, int d)
{
    EMU_ENTER();
    if (d < 0 || d >= g_ndev)
        return fail(cudaErrorInvalidDevice);
    if (!v)
        return fail(cudaErrorInvalidValue);
    switch (attr) {
    case cudaDevAttrMultiProcessorCount: *v = g_sms; return cudaSuccess;
    case cudaDevAttrWarpSize: *v = 32; return cudaSuccess;
    case cudaDevAttrMaxThreadsPerBlock: *v = 1024; return cudaSuccess;
    case cudaDevAttrComputeCapabilityMajor: *v = 9; return cudaSuccess;
    case cudaDevAttrComputeCapabilityMinor: *v = 0; return cudaSuccess;
    default:
        complain("cudaDeviceGetAttribute: attribute %d not emulated", (int)attr);
        return fail(cudaErrorInvalidValue);
    }
}

cudaError_t cudaDeviceSynchronize(void)
{
    EMU_ENTER();
    drain_all();
    return g_sticky;
}

cudaError_t cudaMemGetInfo(size_t *fr, size_t *tot)
{
    EMU_ENTER();
    *fr = g_limit - g_used;
    *tot = g_limit;
    return cudaSuccess;
}

/* ---- memory ------------------------------------------------------------------------ */
cudaError_t cudaMalloc(void **p, size_t n)
{
    EMU_ENTER();
    *p = nullptr;
    if (n == 0)
        return cudaSuccess;
    if (n > g_limit - g_used)
        return fail(cudaErrorMemoryAllocation);
    void *m = nullptr;
    if (posix_memalign(&m, 256, n) != 0)
        return fail(cudaErrorMemoryAllocation);
    memset(m, 0xff, n);
    g_dev[(uintptr_t)m] = n;
    g_owner[(uintptr_t)m] = t_cur;
    g_used += n;
    *p = m;
    return cudaSuccess;
}

cudaError_t cudaFree(void *p)
{
    EMU_ENTER();
    drain_all();  /* cudaFree synchronizes the device */
    if (!p)
        return g_sticky;
    auto it = g_dev.find((uintptr_t)p);
    if (it == g_dev.end()) {
        complain("cudaFree(%p): not the start of a live device allocation", p);
        return fail(cudaErrorInvalidValue);
    }
    const int owner = g_owner[(uintptr_t)p];
    if (owner != t_cur) {
        complain("cudaFree(%p): allocated on device %d, but this thread's current device is %d "
                 "(cudaSetDevice first)", p, owner, t_cur);
        return fail(cudaErrorInvalidValue);
    }
    g_owner.erase((uintptr_t)p);
    g_used -= it->second;
    g_dev.erase(it);
    free(p);
    return g_sticky;
}

cudaError_t cudaHostAlloc(void **p, size_t n, unsigned int flags)
{
    EMU_ENTER();
    (void)flags;
    void *m = nullptr;
    if (posix_memalign(&m, 4096, n ? n : 1) != 0) {
        *p = nullptr;
        return fail(cudaErrorMemoryAllocation);
    }
    g_pinned[(uintptr_t)m] = n ? n : 1;
    *p = m;
    return cudaSuccess;
}

cudaError_t cudaMallocHost(void **p, size_t n) { return cudaHostAlloc(p, n, 0); }

cudaError_t cudaFreeHost(void *p)
{
    EMU_ENTER();
    drain_all();
    if (!p)
        return cudaSuccess;
    if (!g_pinned.erase((uintptr_t)p)) {
        complain("cudaFreeHost(%p): not a cudaHostAlloc block", p);
        return fail(cudaErrorInvalidValue);
    }
    free(p);
    return cudaSuccess;
}

/* Check a copy's pointers against its kind; the kind with cudaMemcpyDefault resolved. */
static bool copy_ok(void *dst, const void *src, size_t n, cudaMemcpyKind *kind, const char *fn)
{
    bool dd = in_device(dst, n), sd = in_device(src, n);
    if (*kind == cudaMemcpyDefault)
        *kind = dd ? (sd ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
                   : (sd ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost);
    bool want_dd = *kind == cudaMemcpyHostToDevice || *kind == cudaMemcpyDeviceToDevice;
    bool want_sd = *kind == cudaMemcpyDeviceToHost || *kind == cudaMemcpyDeviceToDevice;
    if (dd == want_dd && sd == want_sd)
        return true;
    complain("%s(dst %p, src %p, %zu bytes, kind %d): the %s is not %s memory of that size", fn,
             dst, src, n, (int)*kind, dd != want_dd ? "destination" : "source",
             (dd != want_dd ? want_dd : want_sd) ? "device" : "host");
    return false;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind kind)
{
    EMU_ENTER();
    if (n == 0)
        return cudaSuccess;
    if (!copy_ok(dst, src, n, &kind, "cudaMemcpy"))
        return fail(cudaErrorInvalidValue);
    memmove(dst, src, n);
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind kind,
                            cudaStream_t s)
{
    EMU_ENTER();
    if (n == 0)
        return cudaSuccess;
    if (!copy_ok(dst, src, n, &kind, "cudaMemcpyAsync"))
        return fail(cudaErrorInvalidValue);
    if (kind == cudaMemcpyHostToDevice && !in_pinned(src, n)) {
        /* pageable source: staged at the call, so the caller may reuse it */
        std::shared_ptr<std::vector<char>> stage =
            std::make_shared<std::vector<char>>((const char *)src, (const char *)src + n);
        push(s, [dst, stage, n]() { memcpy(dst, stage->data(), n); });
        return cudaSuccess;
    }
    if (kind == cudaMemcpyDeviceToHost && !in_pinned(dst, n)) {
        /* pageable destination: the call returns when the copy is done */
        if (s && s != cudaStreamLegacy && s != cudaStreamPerThread)
            drain(s, s->queued);
        if (g_sticky == cudaSuccess)
            memcpy(dst, src, n);
        return g_sticky;
    }
    push(s, [dst, src, n]() { memmove(dst, src, n); });
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t s)
{
    EMU_ENTER();
    if (n == 0)
        return cudaSuccess;
    if (!in_device(p, n)) {
        complain("cudaMemsetAsync(%p, %d, %zu bytes): not device memory of that size", p, v, n);
        return fail(cudaErrorInvalidValue);
    }
    push(s, [p, v, n]() { memset(p, v, n); });
    return cudaSuccess;
}

cudaError_t cudaMemset(void *p, int v, size_t n)
{
    return cudaMemsetAsync(p, v, n, nullptr);
}

/* ---- streams and events --------------------------------------------------------------- */
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned int flags)
{
    EMU_ENTER();
    (void)flags;
    *s = new CUstream_st();
    g_streams.insert(*s);
    return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t *s) { return cudaStreamCreateWithFlags(s, 0); }

cudaError_t cudaStreamDestroy(cudaStream_t s)
{
    EMU_ENTER();
    if (!g_streams.erase(s))
        return fail(cudaErrorInvalidResourceHandle);
    drain(s, s->queued);
    delete s;
    return g_sticky;
}

cudaError_t cudaStreamSynchronize(cudaStream_t s)
{
    EMU_ENTER();
    if (s && s != cudaStreamLegacy && s != cudaStreamPerThread) {
        if (!g_streams.count(s))
            return fail(cudaErrorInvalidResourceHandle);
        drain(s, s->queued);
    }
    return g_sticky;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned int flags)
{
    EMU_ENTER();
    *e = new CUevent_st();
    (*e)->timing = !(flags & cudaEventDisableTiming);
    return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t *e) { return cudaEventCreateWithFlags(e, 0); }

cudaError_t cudaEventDestroy(cudaEvent_t e)
{
    EMU_ENTER();
    /* a timing event's stamp is queued on its stream: run up to it first */
    if (e->timing && e->s && g_streams.count(e->s))
        drain(e->s, e->at);
    delete e;
    return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s)
{
    EMU_ENTER();
    if (s == cudaStreamLegacy || s == cudaStreamPerThread)
        s = nullptr;
    if (s && !g_streams.count(s))
        return fail(cudaErrorInvalidResourceHandle);
    e->stamped = false;
    e->gen++;
    if (e->timing) {
        /* the stream's clock when the work queued before it has run */
        const uint64_t gen = e->gen;
        push(s, [e, s, gen]() {
            if (e->gen == gen) {
                e->t = s ? s->clock : 0.0;
                e->stamped = true;
            }
        });
    }
    e->s = s;
    e->at = s ? s->queued : 0;
    return cudaSuccess;
}

cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end)
{
    EMU_ENTER();
    if (!ms || !start || !end)
        return fail(cudaErrorInvalidValue);
    if (!start->timing || !end->timing)
        return fail(cudaErrorInvalidResourceHandle);
    if (!start->stamped || !end->stamped)
        return fail(cudaErrorNotReady);
    *ms = (float)(end->t - start->t);
    return cudaSuccess;
}

cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned int flags)
{
    EMU_ENTER();
    (void)flags;
    if (s == cudaStreamLegacy || s == cudaStreamPerThread)
        s = nullptr;
    if (s && !g_streams.count(s))
        return fail(cudaErrorInvalidResourceHandle);
    cudaStream_t es = e->s;
    uint64_t at = e->at;
    if (!es)
        return cudaSuccess;
    if (!s) {
        drain(es, at);
        return g_sticky;
    }
    push(s, [es, at]() { drain(es, at); });
    return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t e)
{
    EMU_ENTER();
    if (e->s)
        drain(e->s, e->at);
    return g_sticky;
}

cudaError_t cudaEventQuery(cudaEvent_t e)
{
    EMU_ENTER();
    return !e->s || e->s->ran >= e->at ? cudaSuccess : cudaErrorNotReady;
}

}  // extern "C"
