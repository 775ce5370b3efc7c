/*
 * comm.h - the processes of a data-parallel run (MPI; no Lua, no CUDA here).
 *
 * A run launched by `mpirun -np N sgdsa run ...` has N processes, the ranks
 * 0..N-1 of MPI_COMM_WORLD. Built without MPI (or not launched by a
 * launcher) there is one rank, every collective below is a no-op on it, and
 * nothing of MPI is touched.
 *
 * Every sum here gives every rank the same bits, whatever the timing and
 * whichever algorithm the MPI library would pick for MPI_Allreduce: values
 * are summed in rank order (0, 1, ..., N-1) in double by one process per
 * element and the results handed out, so the ranks of a run take the same
 * decisions from the same numbers.
 *
 *   sg_comm_allsum_f64  small vectors (objectives, BatchNorm statistics):
 *                       every rank's vector gathered to every rank
 *                       (MPI_Allgather), then summed in rank order;
 *   sg_comm_allsum_f32  large vectors (gradients): the vector cut into N
 *                       chunks, chunk r of every rank sent to rank r
 *                       (MPI_Alltoallv), summed there in rank order (double
 *                       accumulation, rounded once), and the summed chunks
 *                       gathered by every rank (MPI_Allgatherv): 2 (N-1)/N
 *                       of the vector sent and received per rank, as a ring
 *                       allreduce.
 *
 * Errors: MPI calls return their error (MPI_ERRORS_RETURN) and the functions
 * return -1 with a message naming the MPI call; nothing here exits. The
 * one exception is sg_comm_abort, which the executable calls on purpose
 * when a rank fails: MPI_Abort ends every rank of the job.
 */
#ifndef SG_COMM_H
#define SG_COMM_H

#include <stdint.h>

#include "api.h"

SG_API_BEGIN

/* 1 when compiled with MPI. */
int sg_comm_built(void);
/* "Open MPI v4.1.4, ..." (the library's version line), or "none". */
const char *sg_comm_library(void);
/* The rank count a launcher announced in the environment (mpirun's
 * OMPI_COMM_WORLD_SIZE, PMI_SIZE, ...), 1 when there is none; *rank its
 * rank (0 when none). Needs no MPI: it is how an executable built without
 * MPI tells that it was launched as one of several ranks. */
int sg_comm_launched(int *rank);
/* Join the job (MPI_Init_thread, FUNNELED) when launched with more than one
 * rank; otherwise nothing (one rank). Returns the rank count, or -1: a
 * launch of several ranks in a build without MPI, or MPI_Init failed. */
int sg_comm_init(void);
/* MPI_Finalize when sg_comm_init joined a job. */
void sg_comm_finalize(void);
/* MPI_Abort(MPI_COMM_WORLD, code) when in a job of several ranks; returns
 * without doing anything otherwise. */
void sg_comm_abort(int code);
int sg_comm_rank(void);   /* 0 on one rank */
int sg_comm_size(void);   /* 1 on one rank */
/* This rank's index among the ranks on its host (0 on one rank). */
int sg_comm_local_rank(void);

/* v[0..n) := the sum over every rank of its v (rank order, same bits on every rank). */
int sg_comm_allsum_f64(double *v, int64_t n);
int sg_comm_allsum_f32(float *v, int64_t n);
/* nbytes of buf from rank `root` to every rank. */
int sg_comm_bcast(void *buf, int64_t nbytes, int root);
int sg_comm_barrier(void);

SG_API_END

#endif
