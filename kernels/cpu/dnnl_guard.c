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
static int guarded_team = 1;  /* the largest team whose threads block async_set */

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
    const int team = omp_get_max_threads();
    if (team > __atomic_load_n(&guarded_team, __ATOMIC_ACQUIRE) && !omp_in_parallel()) {
        /* (this thread blocks them already: threads the region creates
         * inherit its mask) */
#pragma omp parallel num_threads(team)
        pthread_sigmask(SIG_BLOCK, &async_set, NULL);
        __atomic_store_n(&guarded_team, team, __ATOMIC_RELEASE);
    }
}

void sg_dnnl_guard_leave(const sigset_t *saved) { pthread_sigmask(SIG_SETMASK, saved, NULL); }
#else
typedef int sg_dnnl_guard_unused;  /* (ISO C: a translation unit declares something) */
#endif
