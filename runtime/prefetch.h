/* Loading the next training batch on a second thread while the current step runs.
 *
 * A batch is a pure function of (seed, step) (SPEC 8b), so loading it early changes nothing but
 * the time the step waits for it. The loader runs batch_load on one OpenMP thread of its own: the
 * step keeps the cores it had, and the loader takes what the step leaves idle (the step does not
 * scale to every core at batch 32). */
#ifndef RECLF_PREFETCH_H
#define RECLF_PREFETCH_H
#include <pthread.h>
#include "batch.h"

typedef struct {
    batch_t *batch;           /* being filled, or filled, for `step` */
    long step;
    int pending;              /* a load was started and not yet waited for */
    pthread_t thread;
    /* the load's arguments and result */
    const reclf_dataset *ds;
    const reclf_vocab *vocab;
    long *idx;                /* [B], owned */
    int B, side_swap, rc;
    reclf_err err;
} prefetch_t;

/* Starts loading samples idx[0..B-1] into b for `step`. b must stay untouched until
 * prefetch_wait. Returns -1 (err set) when the thread cannot be started: load synchronously then. */
int prefetch_start(prefetch_t *p, batch_t *b, long step, const reclf_dataset *ds, const reclf_vocab *v,
                   const long *idx, int B, int side_swap, reclf_err *err);
/* Waits for the pending load; returns its batch_load result (its error in err). */
int prefetch_wait(prefetch_t *p, reclf_err *err);
/* Waits for a pending load, if any, and frees what prefetch_start allocated. */
void prefetch_close(prefetch_t *p);

#endif
