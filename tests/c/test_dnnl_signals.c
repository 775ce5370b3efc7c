/*
 * test_dnnl_signals.c - signals that arrive while oneDNN computes do no harm
 * (kernels/cpu/dnnl_guard.c).
 *
 * Some of oneDNN's JIT sgemm kernels point the stack pointer into a heap
 * buffer while they run (oneDNN 2.6, Debian 12's; upstream issue 4845): a
 * signal handler entered there writes its frame over the heap, and a later
 * free() aborts ("corrupted size vs. prev_size"), as a Ctrl-C in a step
 * would. The guard keeps every signal away from oneDNN's calls.
 *
 * The test: a SIGALRM handler, every 100 us, that counts the times it
 * finds its own frame outside the stack of the thread it runs on, while
 * each oneDNN path runs in a loop: the three passes of a linear layer on
 * dnnl_sgemm, and of a convolution on oneDNN's direct and (where this CPU
 * has it) Winograd algorithm, with 1 and 2 threads; with 2 also while the
 * main thread blocks SIGALRM, so that the signals go to the pool's other
 * threads; and so with 3 threads after the team shrank and grew again.
 * Every result must equal the one computed without signals, bit for bit.
 */
#define _GNU_SOURCE
#include "nn_check.h"

#include <omp.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "conv_choice.h"
#include "error.h"

#define MAXTHREADS 64

static struct {
    pthread_t id;
    uintptr_t lo, hi;
} stacks[MAXTHREADS];
static int nstacks;
static long n_signals, n_off, n_unknown;  /* (atomic adds in the handler) */

static void on_alarm(int sig)
{
    (void)sig;
    volatile char here = 0;
    const uintptr_t a = (uintptr_t)&here;
    const pthread_t me = pthread_self();
    __atomic_add_fetch(&n_signals, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < nstacks; i++)
        if (pthread_equal(stacks[i].id, me)) {
            if (a < stacks[i].lo || a >= stacks[i].hi)
                __atomic_add_fetch(&n_off, 1, __ATOMIC_RELAXED);
            return;
        }
    __atomic_add_fetch(&n_unknown, 1, __ATOMIC_RELAXED);
}

/* The stack of the calling thread, entered in `stacks`. */
static void record_stack(void)
{
    pthread_attr_t attr;
    void *lo;
    size_t size;
    if (pthread_getattr_np(pthread_self(), &attr) != 0)
        return;
    if (pthread_attr_getstack(&attr, &lo, &size) == 0) {
#pragma omp critical(record_stack)
        if (nstacks < MAXTHREADS) {
            stacks[nstacks].id = pthread_self();
            stacks[nstacks].lo = (uintptr_t)lo;
            stacks[nstacks].hi = (uintptr_t)lo + size;
            nstacks++;
        }
    }
    pthread_attr_destroy(&attr);
}

/* Main's stack and those of the OpenMP pool's threads (made now if new). */
static void record_stacks(void)
{
    nstacks = 0;
#pragma omp parallel
    record_stack();
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void alarm_every(long us)
{
    struct itimerval it = { { 0, us }, { 0, us } };
    setitimer(ITIMER_REAL, &it, NULL);
}

/* ---- the workloads: one round each, outputs into out (n floats) --------------------- */

enum { LIN_N = 128, LIN_IN = 400, LIN_OUT = 120 };

typedef struct {
    float *x, *w, *b, *dy;
    float *y, *dx, *dw, *db;
} lin_bufs;

static int linear_round(lin_bufs *l)
{
    memset(l->dw, 0, sizeof(float) * LIN_IN * LIN_OUT);
    memset(l->db, 0, sizeof(float) * LIN_OUT);
    return sg_linear_forward_with(SG_CONV_PASS_ALL, l->x, l->y, l->w, l->b, LIN_N, LIN_IN, LIN_OUT) ||
           sg_linear_backward_data_with(SG_CONV_PASS_ALL, l->dy, l->dx, l->w, LIN_N, LIN_IN,
                                        LIN_OUT) ||
           sg_linear_backward_params_with(SG_CONV_PASS_ALL, l->x, l->dy, l->dw, l->db, LIN_N,
                                          LIN_IN, LIN_OUT);
}

typedef struct {
    sg_conv2d_geom g;
    float *ws, *x, *w, *b, *dy;
    float *y, *dx, *dw, *db;
} conv_bufs;

static int conv_round(conv_bufs *c)
{
    const sg_conv2d_geom *g = &c->g;
    memset(c->dw, 0, sizeof(float) * (size_t)(g->k * g->c * g->kh * g->kw));
    memset(c->db, 0, sizeof(float) * (size_t)g->k);
    return sg_cpu_conv2d_forward(c->ws, c->x, c->y, c->w, c->b, g) ||
           sg_cpu_conv2d_backward_data(c->ws, c->dy, c->dx, c->w, g) ||
           sg_cpu_conv2d_backward_params(c->ws, c->x, c->dy, c->dw, c->db, g);
}

static float *copy_of(const float *p, size_t n)
{
    float *q = tbuf((int64_t)n);
    memcpy(q, p, n * sizeof *q);
    return q;
}

/* Run `round` for `seconds` under SIGALRM every 100 us; every round's
 * outputs (outs[i], lens[i] floats) must equal the reference ones. With
 * `main_blocks`, this thread blocks SIGALRM meanwhile, so that the signals
 * go to the OpenMP pool's other threads (which must block them too: they
 * then wait, and this thread takes one at the end). */
static void under_signals(const char *what, int threads, int main_blocks, int (*round)(void *),
                          void *arg, float *const *outs, const size_t *lens, int nout,
                          double seconds)
{
    float *ref[4];
    EXPECT(round(arg) == 0, "%s, %d thread(s): %s", what, threads, sg_geterr());
    for (int i = 0; i < nout; i++)
        ref[i] = copy_of(outs[i], lens[i]);
    record_stacks();
    n_signals = n_off = n_unknown = 0;
    long rounds = 0, differ = 0;
    sigset_t alrm, saved;
    sigemptyset(&alrm);
    sigaddset(&alrm, SIGALRM);
    if (main_blocks)
        pthread_sigmask(SIG_BLOCK, &alrm, &saved);
    alarm_every(100);
    const double t0 = now_s();
    while (now_s() - t0 < seconds) {
        if (round(arg) != 0) {
            EXPECT(0, "%s, %d thread(s): %s", what, threads, sg_geterr());
            break;
        }
        for (int i = 0; i < nout; i++)
            differ += memcmp(outs[i], ref[i], lens[i] * sizeof(float)) != 0;
        rounds++;
    }
    alarm_every(0);
    if (main_blocks)
        pthread_sigmask(SIG_SETMASK, &saved, NULL);
    const long sigs = __atomic_load_n(&n_signals, __ATOMIC_RELAXED);
    const long off = __atomic_load_n(&n_off, __ATOMIC_RELAXED);
    printf("  %-28s %d thread(s)%s: %5ld rounds, %5ld signals handled, %ld off the "
           "thread's stack, %ld on unknown threads\n",
           what, threads, main_blocks ? ", main blocks" : "             ", rounds, sigs, off,
           __atomic_load_n(&n_unknown, __ATOMIC_RELAXED));
    EXPECT(off == 0, "%s, %d thread(s): %ld of %ld signal handlers ran with the stack pointer "
           "off the thread's stack (inside oneDNN)", what, threads, off, sigs);
    EXPECT(differ == 0, "%s, %d thread(s): %ld outputs of %ld rounds differ from the "
           "reference", what, threads, differ, rounds);
    EXPECT(main_blocks || sigs >= 20, "%s, %d thread(s): only %ld signals arrived", what,
           threads, sigs);
    for (int i = 0; i < nout; i++)
        free(ref[i]);
}

static int linear_round_v(void *p) { return linear_round(p); }
static int conv_round_v(void *p) { return conv_round(p); }

static void test_linear(int threads, int main_blocks)
{
    lin_bufs l = { tbuf(LIN_N * LIN_IN), tbuf(LIN_IN * LIN_OUT), tbuf(LIN_OUT),
                   tbuf(LIN_N * LIN_OUT), tbuf(LIN_N * LIN_OUT), tbuf(LIN_N * LIN_IN),
                   tbuf(LIN_IN * LIN_OUT), tbuf(LIN_OUT) };
    sg_rng r;
    sg_rng_init(&r, 5, 1);
    fill_uniform(&r, l.x, LIN_N * LIN_IN, -1, 1);
    fill_uniform(&r, l.w, LIN_IN * LIN_OUT, -1, 1);
    fill_uniform(&r, l.b, LIN_OUT, -1, 1);
    fill_uniform(&r, l.dy, LIN_N * LIN_OUT, -1, 1);
    float *outs[4] = { l.y, l.dx, l.dw, l.db };
    const size_t lens[4] = { LIN_N * LIN_OUT, LIN_N * LIN_IN, LIN_IN * LIN_OUT, LIN_OUT };
    under_signals("linear on dnnl_sgemm", threads, main_blocks, linear_round_v, &l, outs, lens, 4,
                  0.3);
    free(l.x); free(l.w); free(l.b); free(l.dy); free(l.y); free(l.dx); free(l.dw); free(l.db);
}

static void test_conv(int threads, int main_blocks, int wino)
{
    conv_bufs c;
    EXPECT(sg_conv2d_geom_init(&c.g, 16, 16, 12, 12, 32, 3, 3, 1, 1, 1, 1) == 0, "%s",
           sg_geterr());
    if (wino && !sg_cpu_conv2d_winograd_ok(&c.g)) {
        printf("  convolution, Winograd        %d thread(s): skipped, no Winograd kernels on "
               "this CPU\n", threads);
        return;
    }
    c.g.dnnl = SG_CONV_PASS_ALL | (wino ? SG_CONV_WINO_ALL : 0);
    const sg_conv2d_geom *g = &c.g;
    const int64_t nx = g->n * g->c * g->h * g->w, nw = g->k * g->c * 9, ny = g->n * g->k * g->oh * g->ow;
    c.ws = tbuf((int64_t)sg_cpu_conv2d_workspace_size(g) + 1);
    c.x = tbuf(nx); c.w = tbuf(nw); c.b = tbuf(g->k); c.dy = tbuf(ny);
    c.y = tbuf(ny); c.dx = tbuf(nx); c.dw = tbuf(nw); c.db = tbuf(g->k);
    sg_rng r;
    sg_rng_init(&r, 6, 1);
    fill_uniform(&r, c.x, nx, -1, 1);
    fill_uniform(&r, c.w, nw, -1, 1);
    fill_uniform(&r, c.b, g->k, -1, 1);
    fill_uniform(&r, c.dy, ny, -1, 1);
    float *outs[4] = { c.y, c.dx, c.dw, c.db };
    const size_t lens[4] = { (size_t)ny, (size_t)nx, (size_t)nw, (size_t)g->k };
    under_signals(wino ? "convolution, Winograd" : "convolution, direct", threads, main_blocks,
                  conv_round_v, &c, outs, lens, 4, 0.2);
    free(c.ws); free(c.x); free(c.w); free(c.b); free(c.dy);
    free(c.y); free(c.dx); free(c.dw); free(c.db);
}

int main(void)
{
    if (!sg_cpu_conv2d_have_dnnl()) {
        printf("test_dnnl_signals: SKIP (built without oneDNN)\n");
        return 77;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    /* the pool's threads made now, with signals unblocked (as by any
     * parallel loop before the first oneDNN call) */
    sg_set_num_threads(2);
    record_stacks();
    for (int threads = 1; threads <= 2; threads++)
        for (int main_blocks = 0; main_blocks <= (threads > 1); main_blocks++) {
            sg_set_num_threads(threads);
            test_linear(threads, main_blocks);
            test_conv(threads, main_blocks, 0);
            test_conv(threads, main_blocks, 1);
        }
    /* A team that shrinks lets its surplus threads go (libgomp); grown
     * again by a parallel loop, it has new threads with signals unblocked,
     * which the next oneDNN call must block. */
    sg_set_num_threads(2);
    record_stacks();
    sg_set_num_threads(3);
    record_stacks();
    test_linear(3, 1);
    sg_set_num_threads(2);
    record_stacks();
    sg_set_num_threads(3);
    record_stacks();
    test_linear(3, 1);
    return check_done("test_dnnl_signals", "no signal handler ran inside oneDNN");
}
