/* Per-kernel timing of generated graphs. A generated file built with -DRECLF_PROFILE times each
 * kernel call and exports `reclf_profile_<graph>`: one entry per call site (kernel, node, graph
 * line, phase), accumulating seconds, calls, FLOPs and bytes moved. bench/ reads it. */
#ifndef RECLF_PROFILE_H
#define RECLF_PROFILE_H
#include <omp.h>

typedef struct {
    const char *kernel; /* generated function */
    const char *node;   /* "%12 map:add [B,32,64,64]" */
    const char *source; /* graph file:line */
    int backward;       /* 1 for the backward pass */
    double seconds, flops, bytes;
    long calls;
    long gemm_m, gemm_n, gemm_k; /* the shape of one of its GEMM calls (m x k times k x n); 0: not GEMM-bound */
} reclf_prof_entry;

typedef struct {
    int n;
    reclf_prof_entry *entries;
} reclf_prof_table;

static inline double reclf_prof_now(void) { return omp_get_wtime(); }

#endif
