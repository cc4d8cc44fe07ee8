/* bin/reclf train: the command line of the training loop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
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
    "  --threads N                OpenMP threads (default: all cores)\n"
    "  --quiet                    no progress line\n";

int cmd_train(int argc, char **argv) {
    train_opts o;
    train_defaults(&o);
    int out_given = 0;
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
        else if (!strcmp(a, "--threads")) { NEED_VALUE; reclf_set_threads(atoi(v)); }
        else if (!strcmp(a, "--quiet")) o.quiet = 1;
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
    reclf_err err = {{0}};
    if (train_run(&o, &err) != 0) {
        fprintf(stderr, "reclf train: %s\n", err.msg);
        return 1;
    }
    return 0;
}
