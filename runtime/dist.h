/* Data-parallel training across processes (SPEC 8, ARCHITECTURE "runtime"): the few collective
 * operations the training loop needs, over MPI when bin/reclf is built with -DRECLF_MPI (mk/mpi.mk
 * does this when mpicc is there) and started by an MPI launcher (mpirun, srun), and trivial
 * single-process versions otherwise, so the training loop is written once.
 *
 * Every function here is collective when size > 1: all ranks call it in the same order with the
 * same sizes. Errors inside MPI are fatal (MPI's default handler aborts the whole job), which is
 * what a data-parallel job wants: a rank that cannot take part must not leave the others waiting. */
#ifndef RECLF_DIST_H
#define RECLF_DIST_H
#include <stddef.h>
#include <stdint.h>

#include "common.h"

typedef struct {
    int rank, size;       /* this process and the number of processes (1 without MPI) */
    int local_size;       /* processes on this machine (they share its cores) */
    int mpi;              /* 1 when MPI was initialised by dist_init */
} dist_info;

/* Starts MPI when the program was started by an MPI launcher (OMPI_COMM_WORLD_SIZE, PMIX_RANK,
 * PMI_RANK or PMI_SIZE in the environment, or RECLF_MPI=1), so a plain `bin/reclf train` of an
 * MPI build stays a single process that never touches MPI. Fails when started by a launcher of
 * several processes but built without MPI (every process would train alone into the same folder). */
int dist_init(dist_info *d, reclf_err *err);
/* Ends MPI if dist_init started it. */
void dist_finalize(const dist_info *d);
/* Ends the whole job after an error on one rank (MPI_Abort), so the others do not wait forever. */
void dist_abort(const dist_info *d, int code);
/* 1 when the library was built with MPI support */
int dist_compiled_with_mpi(void);

/* In-place sums over all ranks; the result is the same on every rank. */
void dist_allreduce_sum_float(const dist_info *d, float *buf, size_t n);
void dist_allreduce_sum_double(const dist_info *d, double *buf, size_t n);
/* root's bytes to every rank */
void dist_bcast(const dist_info *d, void *buf, size_t bytes, int root);
/* every rank's `mine` into all[0..size-1], in rank order */
void dist_allgather_long(const dist_info *d, long mine, long *all);
/* Concatenates every rank's `send` (counts[r] floats from rank r, counts known on every rank)
 * into `recv` in rank order. */
void dist_allgatherv_float(const dist_info *d, const float *send, const long *counts, float *recv);

/* Checks that buf (n floats) is bitwise the same on every rank: a 64-bit hash is compared first
 * (cheap); on a mismatch rank 0's buffer is broadcast and each rank measures max |x - x_rank0|.
 * Returns 0 when identical; otherwise 1 with *max_diff (over ranks), *rank_out (the worst rank) and
 * *where (element index of the worst difference on that rank) filled in, the same on every rank. */
int dist_check_same(const dist_info *d, const float *buf, size_t n, double *max_diff, int *rank_out, size_t *where);

#endif
