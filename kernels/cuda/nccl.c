/*
 * nccl.c - sums of device vectors over the ranks of a data-parallel run
 * (NCCL; see nn_cuda.h). Without SG_HAVE_NCCL (NCCL not found, or the CPU
 * emulator build) every function but sg_nccl_built fails with the reason.
 */
#include <string.h>

#include "cuda_impl.h"

#ifdef SG_HAVE_NCCL
#include <nccl.h>

static ncclComm_t g_comm;
static int g_ready;

static int nccl_fail(const char *stmt, ncclResult_t r, const char *file, int line)
{
    return sg_seterr("%s failed: %s (%s:%d) (cuda)", stmt, ncclGetErrorString(r), file, line);
}

#define SG_NCCL(stmt) do { ncclResult_t sg_r_ = (stmt); \
    if (sg_r_ != ncclSuccess) return nccl_fail(#stmt, sg_r_, __FILE__, __LINE__); } while (0)

int sg_nccl_built(void) { return 1; }
int sg_nccl_ready(void) { return g_ready; }

int sg_nccl_unique_id(unsigned char id[SG_NCCL_ID_BYTES])
{
    ncclUniqueId u;
    if (sizeof u != SG_NCCL_ID_BYTES)
        return sg_seterr("nccl: ncclUniqueId has %zu bytes, expected %d (cuda)", sizeof u,
                         SG_NCCL_ID_BYTES);
    SG_NCCL(ncclGetUniqueId(&u));
    memcpy(id, &u, sizeof u);
    return 0;
}

int sg_nccl_init(const unsigned char id[SG_NCCL_ID_BYTES], int rank, int size)
{
    if (g_ready)
        return 0;
    if (sg_cuda_init() != 0)
        return -1;
    ncclUniqueId u;
    memcpy(&u, id, sizeof u);
    SG_NCCL(ncclCommInitRank(&g_comm, size, u, rank));
    g_ready = 1;
    return 0;
}

int sg_nccl_allsum_f32(float *v, int64_t n)
{
    if (!g_ready)
        return sg_seterr("nccl: the communicator is not made (sg_nccl_init) (cuda)");
    if (n <= 0)
        return 0;
    SG_NCCL(ncclAllReduce(v, v, (size_t)n, ncclFloat, ncclSum, g_comm, sg_cuda_stream()));
    return 0;
}

void sg_nccl_finalize(void)
{
    if (!g_ready)
        return;
    ncclCommDestroy(g_comm);
    g_ready = 0;
}

#else

static int no_nccl(void)
{
    return sg_seterr("nccl: sgdsa was built without NCCL (cuda)");
}

int sg_nccl_built(void) { return 0; }
int sg_nccl_ready(void) { return 0; }
int sg_nccl_unique_id(unsigned char id[SG_NCCL_ID_BYTES]) { (void)id; return no_nccl(); }
int sg_nccl_init(const unsigned char id[SG_NCCL_ID_BYTES], int rank, int size)
{
    (void)id; (void)rank; (void)size;
    return no_nccl();
}
int sg_nccl_allsum_f32(float *v, int64_t n) { (void)v; (void)n; return no_nccl(); }
void sg_nccl_finalize(void) {}

#endif
