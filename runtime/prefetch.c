/* The next batch, loaded while the step runs (prefetch.h). */
#include "prefetch.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

static void *load(void *arg) {
    prefetch_t *p = arg;
    /* this thread's own OpenMP settings: one thread, so the loader never competes with the
     * step's parallel regions for more than one core */
    omp_set_num_threads(1);
    p->batch->B = p->B;
    p->rc = batch_load(p->batch, p->ds, p->vocab, p->idx, p->side_swap, &p->err);
    return NULL;
}

int prefetch_start(prefetch_t *p, batch_t *b, long step, const reclf_dataset *ds, const reclf_vocab *v,
                   const long *idx, int B, int side_swap, reclf_err *err) {
    if (p->pending) return reclf_fail(err, "prefetch: a load is already pending");
    if (!p->idx || p->B < B) {
        long *grown = realloc(p->idx, sizeof(long) * (size_t)B);
        if (!grown) return reclf_fail(err, "prefetch: out of memory for %d indices", B);
        p->idx = grown;
    }
    memcpy(p->idx, idx, sizeof(long) * (size_t)B);
    p->batch = b, p->step = step, p->ds = ds, p->vocab = v, p->B = B, p->side_swap = side_swap, p->rc = 0;
    memset(&p->err, 0, sizeof p->err);
    int e = pthread_create(&p->thread, NULL, load, p);
    if (e != 0) return reclf_fail(err, "prefetch: cannot start the loader thread (%s)", strerror(e));
    p->pending = 1;
    return 0;
}

int prefetch_wait(prefetch_t *p, reclf_err *err) {
    if (!p->pending) return reclf_fail(err, "prefetch: no load is pending");
    pthread_join(p->thread, NULL);
    p->pending = 0;
    if (p->rc != 0 && err) *err = p->err;
    return p->rc;
}

void prefetch_close(prefetch_t *p) {
    if (p->pending) prefetch_wait(p, NULL);
    free(p->idx);
    p->idx = NULL;
}
