/* The training loop (SPEC 8): AdamW, warm-up + cosine schedule, clipping, side-swap negatives,
 * JSONL metrics, atomic checkpoints, exact resume, and clean stops on SIGINT/SIGTERM or NaN. */
#ifndef RECLF_TRAIN_H
#define RECLF_TRAIN_H
#include "common.h"
#include "dist.h"

typedef struct {
    const char *model;      /* graph name */
    long steps;             /* total updates of the run */
    int batch;
    unsigned long long seed;
    const char *data;       /* "synth" or a manifest CSV */
    const char *out;        /* run folder */
    int resume;
    double lr, weight_decay, clip;
    int side_swap;          /* --hard-negatives side-swap */
    long log_every;         /* 0: automatic */
    long ckpt_every;        /* 0: automatic */
    long stop_after;        /* stop (with a checkpoint) after this many updates of this invocation; 0: never */
    int skip_bad;
    int skip_nonfinite;     /* --on-nan skip */
    const char *vocab_file; /* BERT vocab.txt instead of building one */
    int quiet;
    int no_prefetch;        /* --no-prefetch: load each batch in the step instead of during the previous one */
    /* data parallelism (runtime/dist.h): batch is the GLOBAL batch; rank r of N takes slots
     * r*B/N .. (r+1)*B/N - 1 of each step's index list. NULL dist: one process. */
    const dist_info *dist;
    int grad_accum;         /* K micro-batches per step (each with its own negatives), gradients averaged */
    int gather;             /* --gather: every loss term sees the whole global batch (split graphs) */
    int check_sync;         /* --check-sync: fail when the ranks' parameters differ after a step */
} train_opts;

void train_defaults(train_opts *o);
/* Returns 0 when the run finished or stopped cleanly (signal, --stop-after), -1 on error. */
int train_run(const train_opts *o, reclf_err *err);

#endif
