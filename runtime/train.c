#include "train.h"

#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "batch.h"
#include "dataset.h"
#include "metrics_log.h"
#include "optim.h"
#include "params.h"
#include "rng.h"
#include "session.h"
#include "synth.h"

/* vocabulary built from this many training reports (SynthCXR's is small and saturates early) */
#define VOCAB_REPORTS 20000

static volatile sig_atomic_t stop_signal = 0;
static void on_signal(int sig) { stop_signal = sig; }

void train_defaults(train_opts *o) {
    memset(o, 0, sizeof *o);
    o->model = "reclf";
    o->steps = 1000;
    o->batch = 32;
    o->seed = 1;
    o->data = "synth";
    o->out = "runs/reclf";
    o->lr = 1e-3;
    o->weight_decay = 0.01;
    o->clip = 1.0;
}

/* The dataset index of batch slot i at a step: synthetic training data is unbounded, so every
 * step sees fresh samples; a manifest is walked in a fresh permutation each epoch. Either way the
 * order is a pure function of (seed, step), which makes resumed runs exact. */
typedef struct {
    long n;
    long epoch;
    long *perm;
} order_t;

static long order_index(order_t *o, const reclf_dataset *ds, unsigned long long seed, long k) {
    if (ds->kind == DATASET_SYNTH) return k;
    long epoch = k / o->n;
    if (epoch != o->epoch || !o->perm) {
        if (!o->perm) o->perm = malloc(sizeof(long) * (size_t)o->n);
        for (long i = 0; i < o->n; i++) o->perm[i] = i;
        rng_t r = rng_split(seed, 0x6f72646572ull + (unsigned long long)epoch);
        rng_shuffle(&r, o->perm, (size_t)o->n, sizeof(long));
        o->epoch = epoch;
    }
    return o->perm[k % o->n];
}

/* the run's options as JSON, kept in every checkpoint's metadata */
static char *options_json(const train_opts *o) {
    json_t *j = json_object();
    json_object_set_new(j, "model", json_string(o->model));
    json_object_set_new(j, "steps", json_integer(o->steps));
    json_object_set_new(j, "batch", json_integer(o->batch));
    json_object_set_new(j, "seed", json_integer((json_int_t)o->seed));
    json_object_set_new(j, "data", json_string(o->data));
    json_object_set_new(j, "lr", json_real(o->lr));
    json_object_set_new(j, "weight_decay", json_real(o->weight_decay));
    json_object_set_new(j, "clip", json_real(o->clip));
    json_object_set_new(j, "hard_negatives", json_string(o->side_swap ? "side-swap" : "none"));
    char *s = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(j);
    return s;
}

/* first parameter whose gradient holds a NaN or an Inf, for the error message */
static const char *first_nonfinite(const session *s) {
    for (int p = 0; p < s->g->n_params; p++) {
        const reclf_param_desc *d = &s->g->params[p];
        for (size_t i = 0; i < d->numel; i++)
            if (!isfinite(s->grads[d->offset + i])) return d->name;
    }
    return NULL;
}

int train_run(const train_opts *o, reclf_err *err) {
    session s;
    reclf_dataset ds;
    batch_t b;
    metrics_log ml = {0};
    order_t order = {0, -1, NULL};
    char ckpt[4096], metrics_path[4096];
    char *opts_json = NULL;
    int rc = -1, have_ds = 0, have_batch = 0;

    if (o->steps < 1 || o->batch < 1) return reclf_fail(err, "--steps and --batch must be positive");
    if (session_open(&s, o->model, 1, err) != 0) return -1;
    if (reclf_mkdirs(o->out, err) != 0) goto done;
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", o->out);
    snprintf(metrics_path, sizeof metrics_path, "%s/metrics.jsonl", o->out);
    opts_json = options_json(o);

    if (dataset_open(&ds, o->data, SPLIT_TRAIN, s.cfg.image, o->seed, o->skip_bad, err) != 0) goto done;
    have_ds = 1;
    if (ds.kind == DATASET_MANIFEST) {
        if (ds.m.n_skipped > 0) fprintf(stderr, "reclf: skipped %ld bad manifest rows (--skip-bad)\n", (long)ds.m.n_skipped);
        order.n = dataset_count(&ds);
        if (order.n < o->batch) {
            reclf_fail(err, "%s: %ld training rows, fewer than one batch of %d", o->data, order.n, o->batch);
            goto done;
        }
    }

    struct stat st;
    if (o->resume && stat(ckpt, &st) == 0) {
        ckpt_meta meta;
        memset(&meta, 0, sizeof meta);
        if (session_load(&s, ckpt, &meta, err) != 0) goto done;
        ckpt_meta_free(&meta);
        if (!s.have_vocab) {
            reclf_fail(err, "%s: the checkpoint holds no vocabulary", ckpt);
            goto done;
        }
        if (!o->quiet) printf("resuming %s from step %ld of %ld\n", ckpt, s.step, o->steps);
    } else {
        if (o->resume) {
            reclf_fail(err, "--resume: no checkpoint at %s", ckpt);
            goto done;
        }
        if (stat(ckpt, &st) == 0) {
            reclf_fail(err, "%s already holds a run (%s); use --resume to continue it or another --out", o->out, ckpt);
            goto done;
        }
        remove(metrics_path);
        if (params_init(s.g, s.params, o->seed, err) != 0) goto done;
        if (o->vocab_file) {
            if (vocab_load_bert(&s.vocab, o->vocab_file, err) != 0) goto done;
        } else {
            long n = dataset_count(&ds) < VOCAB_REPORTS ? dataset_count(&ds) : VOCAB_REPORTS;
            if (dataset_build_vocab(&ds, n, 1, s.cfg.vocab, &s.vocab, err) != 0) goto done;
        }
        s.have_vocab = 1;
        if (s.vocab.n > s.cfg.vocab) {
            reclf_fail(err, "the vocabulary has %d tokens but the model's embedding has %d rows; rebuild with "
                       "`bin/reclfc --set vocab=%d` or a smaller vocabulary", s.vocab.n, s.cfg.vocab, s.vocab.n);
            goto done;
        }
    }
    if (s.step >= o->steps) {
        if (!o->quiet) printf("%s is already at step %ld of %ld: nothing to do\n", ckpt, s.step, o->steps);
        rc = 0;
        goto done;
    }
    int max_T = o->side_swap ? 2 * o->batch : o->batch;
    if (batch_alloc(&b, o->batch, max_T, s.cfg.image, s.cfg.seq_len, err) != 0) goto done;
    have_batch = 1;
    if (session_reserve(&s, o->batch, max_T, err) != 0) goto done;
    if (metrics_log_open(&ml, metrics_path, err) != 0) goto done;

    long log_every = o->log_every > 0 ? o->log_every : (o->steps <= 200 ? 1 : 10);
    long ckpt_every = o->ckpt_every > 0 ? o->ckpt_every : 100;
    if (!o->quiet)
        printf("training %s: %zu parameters, batch %d%s, %ld steps, arena %.0f MiB, vocabulary %d\n", s.g->name,
               s.g->n_param_elems, o->batch, o->side_swap ? " + side-swap negatives" : "", o->steps,
               s.arena_size / 1048576.0, s.vocab.n);
    progress_t prog;
    progress_init(&prog, stdout, o->steps, s.step, log_every);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    stop_signal = 0;

    long *idx = malloc(sizeof(long) * (size_t)o->batch);
    long taken = 0, skipped = 0;
    int failed = 0;
    adamw_cfg acfg = ADAMW_DEFAULTS;
    acfg.weight_decay = o->weight_decay;
    double t_start = reclf_now_seconds();
    while (s.step < o->steps) {
        long t = s.step;
        for (int i = 0; i < o->batch; i++) idx[i] = order_index(&order, &ds, o->seed, t * o->batch + i);
        double t0 = reclf_now_seconds();
        if (batch_load(&b, &ds, &s.vocab, idx, o->side_swap, err) != 0) { failed = 1; break; }
        double t1 = reclf_now_seconds();
        double loss;
        if (session_step(&s, &b, 1, &loss, err) != 0) { failed = 1; break; }
        double t2 = reclf_now_seconds();
        double gnorm = grad_norm(s.grads, s.g->n_param_elems);
        if (!isfinite(loss) || !isfinite(gnorm)) {
            const char *where = first_nonfinite(&s);
            char what[512];
            snprintf(what, sizeof what, "step %ld: %s (loss %g)", t + 1,
                     where ? "non-finite gradient, first in tensor" : "non-finite loss", loss);
            if (o->skip_nonfinite) {
                fprintf(stderr, "\nreclf: %s %s: update skipped (--on-nan skip)\n", what, where ? where : "");
                skipped++;
                s.step++;
                continue;
            }
            reclf_fail(err, "%s %s; stopped, the last good checkpoint is %s (use --on-nan skip to skip such steps)",
                       what, where ? where : "", ckpt);
            failed = 1;
            break;
        }
        double lr = lr_schedule(o->lr, t, o->steps);
        clip_grad_norm(s.grads, s.g->n_param_elems, o->clip);
        if (adamw_step_graph(s.g, s.params, s.grads, s.m, s.v, t + 1, lr, &acfg, err) != 0) { failed = 1; break; }
        s.step++;
        taken++;
        if (s.step % log_every == 0 || s.step == o->steps) {
            metrics_num nums[] = {{"step", (double)s.step}, {"loss", loss}, {"lr", lr}, {"grad_norm", gnorm},
                                  {"texts", (double)b.T}, {"data_s", t1 - t0}, {"step_s", t2 - t1},
                                  {"elapsed_s", reclf_now_seconds() - t_start}};
            if (metrics_log_write(&ml, nums, 8, NULL, 0, err) != 0) { failed = 1; break; }
        }
        if (!o->quiet) {
            char extra[96];
            snprintf(extra, sizeof extra, "lr %.2e  |g| %.2f", lr, gnorm);
            progress_update(&prog, s.step, loss, extra);
        }
        int stop_now = stop_signal || (o->stop_after > 0 && taken >= o->stop_after);
        if (s.step % ckpt_every == 0 || s.step == o->steps || stop_now) {
            if (session_save(&s, ckpt, opts_json, err) != 0) { failed = 1; break; }
        }
        if (stop_now) break;
    }
    free(idx);
    if (!o->quiet) progress_finish(&prog);
    if (failed) goto done;
    if (stop_signal)
        printf("stopped by signal %d at step %ld; checkpoint %s (continue with --resume)\n", (int)stop_signal, s.step, ckpt);
    else if (s.step < o->steps)
        printf("stopped after %ld updates at step %ld; checkpoint %s (continue with --resume)\n", taken, s.step, ckpt);
    else if (!o->quiet)
        printf("done: %ld steps%s; checkpoint %s, metrics %s\n", s.step, skipped ? " (some skipped)" : "", ckpt, metrics_path);
    rc = 0;
done:
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (ml.f) metrics_log_close(&ml);
    if (have_batch) batch_free(&b);
    if (have_ds) dataset_close(&ds);
    free(order.perm);
    free(opts_json);
    session_close(&s);
    return rc;
}
