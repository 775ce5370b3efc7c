/*
 * emu_internal.h - what the cuDNN and cuBLAS emulations (emu_dnn.cpp,
 * emu_blas.cpp) use of the CUDA runtime emulation (emu_runtime.cpp).
 *
 * The emulator runs the CUDA backend on a machine without a GPU, to test
 * it: device memory is host memory that the runtime tracks, streams are
 * queues of work run in order when the host waits for them (so a missing
 * synchronization reads stale data, as on a GPU), kernels run with one
 * coroutine per CUDA thread, and cuDNN/cuBLAS calls are plain reference
 * loops queued on their handle's stream. It is a test device, not a fast
 * one.
 */
#ifndef SG_EMU_INTERNAL_H
#define SG_EMU_INTERNAL_H

#include <cuda_runtime_api.h>

#include <cstddef>
#include <functional>

namespace emu {

/* Queue fn on stream s (NULL: the legacy default stream). It runs, in
 * order with the stream's other work, when the host waits for the stream
 * or for work that depends on it. Thread-safe; fn must not call the
 * emulated APIs. cost_ms: the time it takes on the stream's fake clock,
 * which timing events read (cudaEventElapsedTime): the emulated libraries
 * give their algorithms plausible, different costs, so that code timing
 * them has something to choose from; kernels cost nothing. */
void enqueue(cudaStream_t s, std::function<void()> fn, double cost_ms = 0.0);

/* Free device memory (the SGDSA_EMU_MEMORY cap minus live allocations). */
size_t free_bytes();

/* True when [p, p + bytes) lies inside one live cudaMalloc allocation. */
bool is_device(const void *p, size_t bytes);

/* An illegal access found while running queued work: the message goes to
 * stderr and every later runtime call fails with cudaErrorIllegalAddress
 * (a sticky error, as on a GPU). */
void fault(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A bad argument found by an emulated library call (before queuing): the
 * message goes to stderr; the caller returns its library's BAD_PARAM. */
void complain(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

}  // namespace emu

#endif
