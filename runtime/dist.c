#include "dist.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef RECLF_MPI
#include <limits.h>
#include <mpi.h>
#endif

/* the environment variables that MPI launchers set in the processes they start */
static const char *const LAUNCHER_VARS[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE", NULL};

static int launched_by_mpi(void) {
    const char *force = getenv("RECLF_MPI");
    if (force && force[0]) return strcmp(force, "0") != 0;
    for (int i = 0; LAUNCHER_VARS[i]; i++)
        if (getenv(LAUNCHER_VARS[i])) return 1;
    return 0;
}

int dist_compiled_with_mpi(void) {
#ifdef RECLF_MPI
    return 1;
#else
    return 0;
#endif
}

int dist_init(dist_info *d, reclf_err *err) {
    memset(d, 0, sizeof *d);
    d->size = d->local_size = 1;
    if (!launched_by_mpi()) return 0;
#ifdef RECLF_MPI
    /* FUNNELED: OpenMP threads compute, only the main thread calls MPI */
    int provided = 0;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return reclf_fail(err, "MPI_Init_thread failed");
    d->mpi = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->size);
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL, &local);
    MPI_Comm_size(local, &d->local_size);
    MPI_Comm_free(&local);
    return 0;
#else
    const char *n = getenv("OMPI_COMM_WORLD_SIZE");
    if (!n) n = getenv("PMI_SIZE");
    if (n && atoi(n) > 1)
        return reclf_fail(err, "started by an MPI launcher as one of %s processes, but this bin/reclf was built "
                          "without MPI: install libopenmpi-dev openmpi-bin and rebuild (make; see mk/mpi.mk)", n);
    (void)err;
    return 0;
#endif
}

void dist_finalize(const dist_info *d) {
#ifdef RECLF_MPI
    if (d->mpi) MPI_Finalize();
#else
    (void)d;
#endif
}

void dist_abort(const dist_info *d, int code) {
#ifdef RECLF_MPI
    if (d->mpi && d->size > 1) MPI_Abort(MPI_COMM_WORLD, code);
#else
    (void)d, (void)code;
#endif
}

#ifdef RECLF_MPI
/* MPI counts are int: long buffers go in pieces */
#define CHUNK ((size_t)1 << 28)
#endif

void dist_allreduce_sum_float(const dist_info *d, float *buf, size_t n) {
#ifdef RECLF_MPI
    if (d->size > 1)
        for (size_t i = 0; i < n; i += CHUNK)
            MPI_Allreduce(MPI_IN_PLACE, buf + i, (int)(n - i < CHUNK ? n - i : CHUNK), MPI_FLOAT, MPI_SUM,
                          MPI_COMM_WORLD);
#else
    (void)d, (void)buf, (void)n;
#endif
}

void dist_allreduce_sum_double(const dist_info *d, double *buf, size_t n) {
#ifdef RECLF_MPI
    if (d->size > 1)
        for (size_t i = 0; i < n; i += CHUNK)
            MPI_Allreduce(MPI_IN_PLACE, buf + i, (int)(n - i < CHUNK ? n - i : CHUNK), MPI_DOUBLE, MPI_SUM,
                          MPI_COMM_WORLD);
#else
    (void)d, (void)buf, (void)n;
#endif
}

void dist_bcast(const dist_info *d, void *buf, size_t bytes, int root) {
#ifdef RECLF_MPI
    if (d->size > 1)
        for (size_t i = 0; i < bytes; i += CHUNK)
            MPI_Bcast((char *)buf + i, (int)(bytes - i < CHUNK ? bytes - i : CHUNK), MPI_BYTE, root, MPI_COMM_WORLD);
#else
    (void)d, (void)buf, (void)bytes, (void)root;
#endif
}

void dist_allgather_long(const dist_info *d, long mine, long *all) {
#ifdef RECLF_MPI
    if (d->size > 1) {
        MPI_Allgather(&mine, 1, MPI_LONG, all, 1, MPI_LONG, MPI_COMM_WORLD);
        return;
    }
#endif
    (void)d;
    all[0] = mine;
}

void dist_allgatherv_float(const dist_info *d, const float *send, const long *counts, float *recv) {
#ifdef RECLF_MPI
    if (d->size > 1) {
        /* a step's features are a few MB: int counts suffice (checked by the caller's sizes) */
        int *cnt = malloc(sizeof(int) * 2 * (size_t)d->size);
        if (!cnt) MPI_Abort(MPI_COMM_WORLD, 1); /* a rank that cannot take part must end the job */
        int *disp = cnt + d->size;
        long off = 0;
        for (int r = 0; r < d->size; r++) cnt[r] = (int)counts[r], disp[r] = (int)off, off += counts[r];
        MPI_Allgatherv(send, cnt[d->rank], MPI_FLOAT, recv, cnt, disp, MPI_FLOAT, MPI_COMM_WORLD);
        free(cnt);
        return;
    }
#endif
    (void)d;
    memcpy(recv, send, sizeof(float) * (size_t)counts[0]);
}

/* FNV-1a over the bytes: equal buffers give equal hashes, and two different ones collide with
 * odds of about 2^-64, which is good enough for a debug check that runs every step */
static uint64_t hash_bytes(const void *p, size_t n) {
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

int dist_check_same(const dist_info *d, const float *buf, size_t n, double *max_diff, int *rank_out, size_t *where) {
    *max_diff = 0, *rank_out = 0, *where = 0;
    if (d->size <= 1) return 0;
    long *h = malloc(sizeof(long) * (size_t)d->size);
    dist_allgather_long(d, (long)hash_bytes(buf, n * sizeof(float)), h);
    int same = 1;
    for (int r = 1; r < d->size; r++) same &= h[r] == h[0];
    free(h);
    if (same) return 0;
    /* find out by how much and where: each rank against rank 0's copy */
    float *ref = malloc(sizeof(float) * n);
    if (d->rank == 0) memcpy(ref, buf, sizeof(float) * n);
    dist_bcast(d, ref, sizeof(float) * n, 0);
    double mine = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        double diff = fabs((double)buf[i] - (double)ref[i]);
        if (diff > mine || (isnan(diff) && !isnan(mine))) mine = diff, at = i;
    }
    free(ref);
    /* every rank learns each rank's (difference, index) */
    double *all = calloc(2 * (size_t)d->size, sizeof(double));
    all[2 * d->rank] = mine, all[2 * d->rank + 1] = (double)at;
    dist_allreduce_sum_double(d, all, 2 * (size_t)d->size);
    for (int r = 0; r < d->size; r++)
        if (all[2 * r] > *max_diff || (isnan(all[2 * r]) && !isnan(*max_diff)))
            *max_diff = all[2 * r], *rank_out = r, *where = (size_t)all[2 * r + 1];
    free(all);
    return 1;
}
