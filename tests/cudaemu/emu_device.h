/*
 * emu_device.h - the device side of the CUDA emulator: force-included
 * (g++ -include) in each .cu file of kernels/cuda, which the build has
 * rewritten so that `k<<<grid, block, smem, stream>>>(args)` reads
 * `::emu::launch(k, "k", grid, block, smem, stream)(args)`.
 *
 * Kernels are plain functions. A launch is queued on its stream; when it
 * runs, each block runs its threads as coroutines (emu_runtime.cpp) that
 * switch at __syncthreads, __syncwarp and the warp shuffles, in an order
 * shuffled at every barrier, so that a missing barrier shows as a wrong
 * result. threadIdx and friends name the running coroutine's indices.
 * __shared__ arrays are function statics: blocks run one at a time.
 * Pointer arguments must be device memory when the kernel runs.
 */
#ifndef SG_EMU_DEVICE_H
#define SG_EMU_DEVICE_H

#define __global__
#define __device__
#define __host__
#define __shared__ static

#include <cuda_runtime_api.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace emu {

extern uint3 thread_idx, block_idx;
extern dim3 block_dim, grid_dim;

void sync_block();
void sync_warp(unsigned mask);
/* The warp exchange behind the shuffles: this lane offers v and gets the
 * value of lane src (its own when src is outside the mask's lanes). */
uint64_t warp_exchange(unsigned mask, uint64_t v, int src);

struct launch_cfg {
    dim3 grid, block;
    size_t smem;
    cudaStream_t stream;
    const char *name;
};
/* Validate the configuration (a bad one sets the launch error) and queue
 * body to run once per thread of the grid; ptrs are the kernel's pointer
 * arguments, checked to be device memory when it runs. */
void submit(const launch_cfg &c, std::function<void()> body, std::vector<const void *> ptrs);

template <class Tuple, size_t... I>
std::vector<const void *> pointer_args(const Tuple &t, std::index_sequence<I...>)
{
    std::vector<const void *> v;
    auto add = [&v](const auto &a) {
        if constexpr (std::is_pointer_v<std::decay_t<decltype(a)>>)
            v.push_back((const void *)a);
    };
    (add(std::get<I>(t)), ...);
    return v;
}

template <class... P>
struct launcher {
    void (*kernel)(P...);
    launch_cfg cfg;
    template <class... A>
    void operator()(A &&...a) const
    {
        static_assert(sizeof...(A) == sizeof...(P), "kernel launched with the wrong argument count");
        std::tuple<std::decay_t<P>...> args(std::forward<A>(a)...);
        auto k = kernel;
        submit(cfg, [k, args]() { std::apply(k, args); },
               pointer_args(args, std::index_sequence_for<P...>{}));
    }
};

template <class... P>
launcher<P...> launch(void (*k)(P...), const char *name, dim3 grid, dim3 block, size_t smem = 0,
                      cudaStream_t stream = 0)
{
    return launcher<P...>{k, launch_cfg{grid, block, smem, stream, name}};
}

inline int lane() { return (int)((thread_idx.x + block_dim.x * (thread_idx.y + block_dim.y * thread_idx.z)) & 31); }

template <class T>
T shfl_from(unsigned mask, T v, int src)
{
    static_assert(sizeof(T) <= sizeof(uint64_t) && std::is_trivially_copyable_v<T>, "shuffle type");
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof v);
    bits = warp_exchange(mask, bits, src);
    T r;
    std::memcpy(&r, &bits, sizeof r);
    return r;
}

}  // namespace emu

#define threadIdx (::emu::thread_idx)
#define blockIdx (::emu::block_idx)
#define blockDim (::emu::block_dim)
#define gridDim (::emu::grid_dim)
constexpr int warpSize = 32;

inline void __syncthreads() { ::emu::sync_block(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { ::emu::sync_warp(mask); }

template <class T>
T __shfl_sync(unsigned mask, T v, int src, int width = 32)
{
    int l = ::emu::lane();
    return ::emu::shfl_from(mask, v, (l & ~(width - 1)) + (src & (width - 1)));
}
template <class T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32)
{
    int l = ::emu::lane();
    int s = (l & (width - 1)) + (int)delta;
    return ::emu::shfl_from(mask, v, s < width ? l + (int)delta : l);
}
template <class T>
T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32)
{
    int l = ::emu::lane();
    return ::emu::shfl_from(mask, v, (l & (width - 1)) >= (int)delta ? l - (int)delta : l);
}
template <class T>
T __shfl_xor_sync(unsigned mask, T v, int m, int width = 32)
{
    int l = ::emu::lane();
    int s = l ^ m;
    return ::emu::shfl_from(mask, v, (s & ~(width - 1)) == (l & ~(width - 1)) ? s : l);
}

/* Coroutines of one block never run at once: plain read-modify-writes are atomic. */
template <class T>
T atomicMin(T *p, T v) { T o = *p; if (v < o) *p = v; return o; }
template <class T>
T atomicMax(T *p, T v) { T o = *p; if (v > o) *p = v; return o; }
template <class T>
T atomicAdd(T *p, T v) { T o = *p; *p = o + v; return o; }

/* Round-to-nearest arithmetic without contraction (built with -ffp-contract=off). */
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }

#endif
