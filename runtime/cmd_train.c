/* bin/reclf train: the command line of the training loop, also under mpirun / srun (runtime/dist.h). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "dist.h"
#include "train.h"

static const char *USAGE =
    "usage: reclf train [options]\n"
    "  --model NAME               graph to train (default reclf; any graphs/NAME.lua with a loss)\n"
    "  --steps N                  total updates (default 1000)\n"
    "  --batch B                  image-report pairs per step (default 32)\n"
    "  --seed S                   seed of initialisation and data order (default 1)\n"
    "  --data synth|MANIFEST.csv  SynthCXR (default) or a CSV manifest (SPEC 9)\n"
    "  --out DIR                  run folder: checkpoint.safetensors, metrics.jsonl (default runs/<model>)\n"
    "  --resume                   continue the run in DIR up to --steps\n"
    "  --lr X                     peak learning rate (default 1e-3)\n"
    "  --weight-decay X           AdamW decay on weight matrices and kernels (default 0.01)\n"
    "  --clip X                   gradient-norm clip (default 1.0)\n"
    "  --hard-negatives none|side-swap   SPEC 8a extra negative texts (default none)\n"
    "  --log-every N              metrics.jsonl line every N steps (default 1, or 10 above 200 steps)\n"
    "  --ckpt-every N             checkpoint every N steps (default 100, and at the end)\n"
    "  --stop-after N             stop cleanly after N updates of this invocation (resume later)\n"
    "  --on-nan stop|skip         a NaN/Inf loss or gradient stops the run (default) or skips the step\n"
    "  --skip-bad                 skip and count bad manifest rows instead of stopping\n"
    "  --vocab FILE               a BERT-style vocab.txt (WordPiece) instead of a vocabulary built from reports\n"
    "  --threads N                OpenMP threads (default: all cores, shared among the ranks of a machine)\n"
    "  --quiet                    no progress line\n"
    "  --no-prefetch              load each batch inside its step (default: the next batch loads on\n"
    "                             a thread of its own while the step runs; same batches either way)\n"
    "  --grad-accum K             K micro-batches per step, each with its own in-batch negatives;\n"
    "                             gradients averaged (default 1)\n"
    "data parallel (mpirun -np N bin/reclf train ..., or srun): --batch is the global batch, rank r\n"
    "takes slots r*B/N .. (r+1)*B/N-1 of it; gradients are averaged; rank 0 writes logs and checkpoints\n"
    "  --gather                   all-gather the features so every loss term sees the whole global\n"
    "                             batch (same result as one process at --batch B)\n"
    "  --check-sync               after every step, fail unless all ranks hold identical parameters\n";

int cmd_train(int argc, char **argv) {
    train_opts o;
    train_defaults(&o);
    int out_given = 0, threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VALUE                                                   \
    if (!v) {                                                        \
        fprintf(stderr, "reclf train: %s needs a value\n%s", a, USAGE); \
        return 2;                                                    \
    }                                                                \
    i++
        if (!strcmp(a, "--model")) { NEED_VALUE; o.model = v; }
        else if (!strcmp(a, "--steps")) { NEED_VALUE; o.steps = atol(v); }
        else if (!strcmp(a, "--batch")) { NEED_VALUE; o.batch = atoi(v); }
        else if (!strcmp(a, "--seed")) { NEED_VALUE; o.seed = strtoull(v, NULL, 10); }
        else if (!strcmp(a, "--data")) { NEED_VALUE; o.data = v; }
        else if (!strcmp(a, "--out")) { NEED_VALUE; o.out = v; out_given = 1; }
        else if (!strcmp(a, "--resume")) o.resume = 1;
        else if (!strcmp(a, "--lr")) { NEED_VALUE; o.lr = atof(v); }
        else if (!strcmp(a, "--weight-decay")) { NEED_VALUE; o.weight_decay = atof(v); }
        else if (!strcmp(a, "--clip")) { NEED_VALUE; o.clip = atof(v); }
        else if (!strcmp(a, "--hard-negatives")) {
            NEED_VALUE;
            if (!strcmp(v, "side-swap")) o.side_swap = 1;
            else if (!strcmp(v, "none")) o.side_swap = 0;
            else { fprintf(stderr, "reclf train: --hard-negatives is none or side-swap, not '%s'\n", v); return 2; }
        }
        else if (!strcmp(a, "--log-every")) { NEED_VALUE; o.log_every = atol(v); }
        else if (!strcmp(a, "--ckpt-every")) { NEED_VALUE; o.ckpt_every = atol(v); }
        else if (!strcmp(a, "--stop-after")) { NEED_VALUE; o.stop_after = atol(v); }
        else if (!strcmp(a, "--on-nan")) {
            NEED_VALUE;
            if (!strcmp(v, "skip")) o.skip_nonfinite = 1;
            else if (!strcmp(v, "stop")) o.skip_nonfinite = 0;
            else { fprintf(stderr, "reclf train: --on-nan is stop or skip, not '%s'\n", v); return 2; }
        }
        else if (!strcmp(a, "--skip-bad")) o.skip_bad = 1;
        else if (!strcmp(a, "--vocab")) { NEED_VALUE; o.vocab_file = v; }
        else if (!strcmp(a, "--threads")) { NEED_VALUE; threads = atoi(v); }
        else if (!strcmp(a, "--quiet")) o.quiet = 1;
        else if (!strcmp(a, "--no-prefetch")) o.no_prefetch = 1;
        else if (!strcmp(a, "--grad-accum")) { NEED_VALUE; o.grad_accum = atoi(v); }
        else if (!strcmp(a, "--gather")) o.gather = 1;
        else if (!strcmp(a, "--check-sync")) o.check_sync = 1;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) { fputs(USAGE, stdout); return 0; }
        else { fprintf(stderr, "reclf train: unknown option '%s'\n%s", a, USAGE); return 2; }
#undef NEED_VALUE
    }
    if (o.steps < 1 || o.batch < 2) {
        fprintf(stderr, "reclf train: --steps must be >= 1 and --batch >= 2 (contrastive learning needs negatives)\n");
        return 2;
    }
    static char out_buf[1024];
    if (!out_given) {
        snprintf(out_buf, sizeof out_buf, "runs/%s", o.model);
        o.out = out_buf;
    }
    if (o.grad_accum < 0 || o.grad_accum > o.batch) {
        fprintf(stderr, "reclf train: --grad-accum must be between 1 and --batch\n");
        return 2;
    }
    reclf_err err = {{0}};
    dist_info dist;
    if (dist_init(&dist, &err) != 0) {
        fprintf(stderr, "reclf train: %s\n", err.msg);
        return 1;
    }
    /* ranks on one machine share its cores: without --threads (or OMP_NUM_THREADS) each takes its
     * part of them, or the ranks' OpenMP teams would fight over the same cores */
    if (threads > 0) reclf_set_threads(threads);
    else if (dist.local_size > 1 && !getenv("OMP_NUM_THREADS")) {
        int n = omp_get_num_procs() / dist.local_size;
        reclf_set_threads(n > 0 ? n : 1);
    }
    o.dist = &dist;
    if (train_run(&o, &err) != 0) {
        if (dist.size > 1) {
            /* the other ranks may be waiting in a collective: end the whole job */
            fprintf(stderr, "reclf train (rank %d of %d): %s\n", dist.rank, dist.size, err.msg);
            dist_abort(&dist, 1);
        }
        fprintf(stderr, "reclf train: %s\n", err.msg);
        dist_finalize(&dist);
        return 1;
    }
    dist_finalize(&dist);
    return 0;
}
