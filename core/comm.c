/*
 * comm.c - the ranks of a data-parallel run over MPI (see comm.h). Compiled
 * with SG_HAVE_MPI when CMake finds MPI; without it every rank count is 1
 * and the collectives do nothing.
 *
 * State is per process: the job joined by sg_comm_init, its rank and size,
 * and the scratch buffers of the sums (grown to the largest vector summed,
 * kept until sg_comm_finalize). Only the thread that joined calls MPI
 * (MPI_THREAD_FUNNELED): sgdsa's collectives run on the Lua thread.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "error.h"

#ifdef SG_HAVE_MPI
#include <mpi.h>
#endif

static int g_rank = 0, g_size = 1, g_local = 0;

/* The launcher's rank count and this process's rank, from the environment. */
int sg_comm_launched(int *rank)
{
    static const char *const vars[][2] = {
        {"OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"}, /* Open MPI's mpirun */
        {"PMI_SIZE", "PMI_RANK"},                          /* MPICH's hydra, Intel MPI */
        {"MV2_COMM_WORLD_SIZE", "MV2_COMM_WORLD_RANK"},    /* MVAPICH2 */
    };
    if (rank)
        *rank = 0;
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *s = getenv(vars[i][0]);
        if (!s || !*s)
            continue;
        long n = strtol(s, NULL, 10);
        if (n < 1 || n > INT_MAX)
            continue;
        const char *r = getenv(vars[i][1]);
        if (rank && r)
            *rank = (int)strtol(r, NULL, 10);
        return (int)n;
    }
    return 1;
}

int sg_comm_rank(void) { return g_rank; }
int sg_comm_size(void) { return g_size; }
int sg_comm_local_rank(void) { return g_local; }

#ifdef SG_HAVE_MPI

static int g_joined;
static void *g_scratch;
static size_t g_scratch_bytes;
static int *g_counts;   /* 4 x size ints: counts, displacements (send, receive) */

int sg_comm_built(void) { return 1; }

const char *sg_comm_library(void)
{
    static char buf[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    if (MPI_Get_library_version(buf, &len) != MPI_SUCCESS)
        return "MPI (version unknown)";
    buf[len < (int)sizeof buf ? len : (int)sizeof buf - 1] = 0;
    char *nl = strpbrk(buf, "\n,");  /* the first line, up to the first comma */
    if (nl)
        *nl = 0;
    return buf;
}

static int mpi_err(const char *call, int rc)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS)
        snprintf(msg, sizeof msg, "error %d", rc);
    return sg_seterr("%s failed on rank %d of %d: %s", call, g_rank, g_size, msg);
}

#define MPI_CHECK(call) \
    do { \
        int rc_ = (call); \
        if (rc_ != MPI_SUCCESS) \
            return mpi_err(#call, rc_); \
    } while (0)

int sg_comm_init(void)
{
    int launched_rank;
    int n = sg_comm_launched(&launched_rank);
    if (g_joined || n <= 1)
        return g_size;
    int provided = 0;
    int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS)
        return sg_seterr("MPI_Init_thread failed on rank %d of %d launched (error %d)",
                         launched_rank, n, rc);
    g_joined = 1;
    MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &g_rank));
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &g_size));
    MPI_Comm node;
    MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL,
                                  &node));
    rc = MPI_Comm_rank(node, &g_local);
    MPI_Comm_free(&node);
    if (rc != MPI_SUCCESS)
        return mpi_err("MPI_Comm_rank (node)", rc);
    g_counts = sg_malloc((size_t)4 * g_size * sizeof *g_counts, "MPI counts");
    if (!g_counts)
        return -1;
    return g_size;
}

void sg_comm_finalize(void)
{
    if (!g_joined)
        return;
    MPI_Finalize();
    g_joined = 0;
    free(g_scratch);
    free(g_counts);
    g_scratch = NULL;
    g_counts = NULL;
    g_scratch_bytes = 0;
    g_rank = 0;
    g_size = 1;
    g_local = 0;
}

void sg_comm_abort(int code)
{
    if (g_joined && g_size > 1)
        MPI_Abort(MPI_COMM_WORLD, code);
}

static void *scratch(size_t nbytes)
{
    if (nbytes <= g_scratch_bytes)
        return g_scratch;
    void *p = sg_aligned_alloc(nbytes, "the sums over the ranks");
    if (!p)
        return NULL;
    free(g_scratch);
    g_scratch = p;
    g_scratch_bytes = nbytes;
    return p;
}

/* 1: n values to sum over the ranks; 0: nothing to do (one rank or no
 * values); -1: more values than an MPI count holds. */
static int sum_needed(int64_t n)
{
    if (g_size <= 1 || n <= 0)
        return 0;
    if (n > INT_MAX)
        return sg_seterr("sum over the ranks: %lld values, more than MPI's count of %d",
                         (long long)n, INT_MAX);
    return 1;
}

int sg_comm_allsum_f64(double *v, int64_t n)
{
    const int go = sum_needed(n);
    if (go <= 0)
        return go;
    double *all = scratch((size_t)n * g_size * sizeof *all);
    if (!all)
        return -1;
    MPI_CHECK(MPI_Allgather(v, (int)n, MPI_DOUBLE, all, (int)n, MPI_DOUBLE, MPI_COMM_WORLD));
    for (int64_t i = 0; i < n; i++) {
        double s = all[i];
        for (int r = 1; r < g_size; r++)
            s += all[(int64_t)r * n + i];
        v[i] = s;
    }
    return 0;
}

int sg_comm_allsum_f32(float *v, int64_t n)
{
    const int go = sum_needed(n);
    if (go <= 0)
        return go;
    const int N = g_size, me = g_rank;
    int *cnt = g_counts, *off = g_counts + N, *rcnt = g_counts + 2 * N, *roff = g_counts + 3 * N;
    for (int r = 0; r < N; r++) {
        off[r] = (int)(n * r / N);
        cnt[r] = (int)(n * (r + 1) / N) - off[r];
    }
    const int mine = cnt[me];
    for (int r = 0; r < N; r++) {
        rcnt[r] = mine;
        roff[r] = r * mine;
    }
    float *recv = scratch((size_t)(mine > 0 ? mine : 1) * N * sizeof *recv);
    if (!recv)
        return -1;
    /* chunk r of every rank to rank r */
    MPI_CHECK(MPI_Alltoallv(v, cnt, off, MPI_FLOAT, recv, rcnt, roff, MPI_FLOAT,
                            MPI_COMM_WORLD));
    float *out = v + off[me];
    for (int i = 0; i < mine; i++) {
        double s = recv[i];
        for (int r = 1; r < N; r++)
            s += recv[(int64_t)r * mine + i];
        out[i] = (float)s;
    }
    /* every summed chunk to every rank */
    MPI_CHECK(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, v, cnt, off, MPI_FLOAT,
                             MPI_COMM_WORLD));
    return 0;
}

int sg_comm_bcast(void *buf, int64_t nbytes, int root)
{
    if (g_size <= 1 || nbytes <= 0)
        return 0;
    if (nbytes > INT_MAX)
        return sg_seterr("broadcast over the ranks: %lld bytes, more than MPI's count of %d",
                         (long long)nbytes, INT_MAX);
    MPI_CHECK(MPI_Bcast(buf, (int)nbytes, MPI_BYTE, root, MPI_COMM_WORLD));
    return 0;
}

int sg_comm_barrier(void)
{
    if (g_size <= 1)
        return 0;
    MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
    return 0;
}

#else /* no MPI: one rank */

int sg_comm_built(void) { return 0; }
const char *sg_comm_library(void) { return "none"; }

int sg_comm_init(void)
{
    int rank;
    int n = sg_comm_launched(&rank);
    if (n > 1)
        return sg_seterr("this process is rank %d of %d ranks launched by mpirun, but sgdsa was "
                         "built without MPI, so each rank would run the whole job alone: "
                         "install MPI (Debian: apt-get install openmpi-bin libopenmpi-dev, or "
                         "tools/install-deps --test) and build again, or run without mpirun",
                         rank, n);
    return 1;
}

void sg_comm_finalize(void) {}
void sg_comm_abort(int code) { (void)code; }
int sg_comm_allsum_f64(double *v, int64_t n) { (void)v; (void)n; return 0; }
int sg_comm_allsum_f32(float *v, int64_t n) { (void)v; (void)n; return 0; }
int sg_comm_bcast(void *buf, int64_t nbytes, int root) { (void)buf; (void)nbytes; (void)root; return 0; }
int sg_comm_barrier(void) { return 0; }

#endif
