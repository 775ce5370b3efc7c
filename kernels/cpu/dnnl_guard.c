/*
 * dnnl_guard.c - no signal handler runs inside a oneDNN call (see
 * dnnl_guard.h; tests/c/test_dnnl_signals.c).
 */
#ifdef SG_HAVE_DNNL
#include <omp.h>
#include <pthread.h>
#include <signal.h>

#include "dnnl_guard.h"

static sigset_t async_set;
static pthread_once_t set_once = PTHREAD_ONCE_INIT;

static void make_set(void)
{
    static const int sync_signals[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGABRT };
    sigfillset(&async_set);
    for (unsigned i = 0; i < sizeof sync_signals / sizeof sync_signals[0]; i++)
        sigdelset(&async_set, sync_signals[i]);
}

void sg_dnnl_guard_enter(sigset_t *saved)
{
    pthread_once(&set_once, make_set);
    pthread_sigmask(SIG_BLOCK, &async_set, saved);
    /* Every call, not once: libgomp lets a shrinking team's surplus threads
     * go and makes new ones when the team grows again, in whatever parallel
     * region comes first (one of ours, with this thread's signals
     * unblocked). The threads of this region are those oneDNN's regions
     * use next; threads made during the call inherit this thread's mask. */
    const int team = omp_get_max_threads();
    if (team > 1 && !omp_in_parallel()) {
#pragma omp parallel num_threads(team)
        pthread_sigmask(SIG_BLOCK, &async_set, NULL);
    }
}

void sg_dnnl_guard_leave(const sigset_t *saved) { pthread_sigmask(SIG_SETMASK, saved, NULL); }
#else
typedef int sg_dnnl_guard_unused;  /* (ISO C: a translation unit declares something) */
#endif
