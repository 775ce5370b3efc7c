/*
 * dnnl_guard.h - no signal handler runs inside a oneDNN call (private to
 * kernels/cpu; built when SG_HAVE_DNNL is defined).
 *
 * Some of oneDNN's JIT sgemm kernels move the stack pointer into a heap
 * buffer while they run (oneDNN 2.6, Debian 12's libdnnl; upstream issue
 * 4845, fixed in later releases): a handler entered there, sgdsa's own for
 * Ctrl-C or a profiler's, writes its frame over the heap, and a later
 * free() aborts. Every oneDNN execution (conv_dnnl.c, linear.c) runs
 * between sg_dnnl_guard_enter and sg_dnnl_guard_leave:
 *  - the calling thread blocks the asynchronous signals for the call (two
 *    rt_sigprocmask calls; a signal that arrives meanwhile is delivered at
 *    the leave);
 *  - the OpenMP pool's other threads, on which oneDNN also computes, block
 *    them too: with more than one thread, each call first runs one
 *    parallel region in which each of them does so. A signal sent to the
 *    process then goes to a thread that is not in oneDNN.
 * Synchronous signals (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS)
 * and SIGABRT stay unblocked.
 */
#ifndef SG_KERNELS_CPU_DNNL_GUARD_H
#define SG_KERNELS_CPU_DNNL_GUARD_H

#include <signal.h>

#ifdef SG_HAVE_DNNL
/* Block the asynchronous signals in this thread (the mask before in
 * *saved) and in the OpenMP pool's other threads. */
void sg_dnnl_guard_enter(sigset_t *saved);
/* Restore this thread's mask (pending signals are delivered now). */
void sg_dnnl_guard_leave(const sigset_t *saved);
#endif

#endif
