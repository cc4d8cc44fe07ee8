/* bin/reclf eval: the downstream evaluations of SPEC §10 on a checkpoint, as a table on stdout and
 * the same numbers as JSON. The rules behind every number are in eval.h (and seg_task.h). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "eval.h"
#include "metrics.h"
#include "seg_task.h"

/* Segmentation is built by another module (runtime/seg_task.c). A weak reference lets this file
 * link with or without it: when seg_task.c is absent, the symbols are NULL and `--task seg` says
 * so instead of failing to link. */
#pragma weak seg_task_run
#pragma weak seg_task_defaults

static const char *USAGE =
    "usage: reclf eval --ckpt FILE [--task zeroshot|probe|retrieval|seg|all] [--data synth|MANIFEST]\n"
    "                  [--json OUT] [--batch N] [--limit N] [--probe-pool N] [--retrieval-pool N]\n"
    "                  [--seg-steps N] [--seed S] [--threads N] [--quiet]\n"
    "  --task        comma-separated list or 'all' (default all; 'all' skips seg when it is not built)\n"
    "  --data        'synth' (SynthCXR of --seed, default 1) or a CSV manifest (its test/train rows)\n"
    "  --batch       images or texts per graph call and the side of a score block (default 64)\n"
    "  --limit       use only the first N test images (and N/5 per class of the 5x200 set; seg: N test)\n"
    "  --probe-pool  training images of the linear probe and of segmentation (default 10000)\n"
    "  --retrieval-pool  first N test images whose N x N score matrix gives R@K and P@K\n"
    "                (default 1000, 0 = whole split; the local score costs ~0.1 ms per pair)\n"
    "  --seg-steps   decoder updates per fraction (default: seg_task's)\n"
    "  --json        also write the numbers as JSON to OUT\n";

enum { T_ZS = 1, T_PROBE = 2, T_RET = 4, T_SEG = 8 };

static int parse_tasks(const char *s, int *mask) {
    *mask = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        if (!strcmp(tok, "zeroshot")) *mask |= T_ZS;
        else if (!strcmp(tok, "probe")) *mask |= T_PROBE;
        else if (!strcmp(tok, "retrieval")) *mask |= T_RET;
        else if (!strcmp(tok, "seg")) *mask |= T_SEG;
        else if (!strcmp(tok, "all")) *mask |= T_ZS | T_PROBE | T_RET | T_SEG | 16;
        else return -1;
    }
    return *mask ? 0 : -1;
}

typedef struct {
    int quiet;
    double t0;
} prog_ctx;

/* one self-overwriting line per phase on stderr */
static void on_progress(void *ctx, const char *phase, long done, long total) {
    prog_ctx *p = ctx;
    if (p->quiet) return;
    fprintf(stderr, "\r  %-24s %6ld / %-6ld %6.1f s", phase, done, total, reclf_now_seconds() - p->t0);
    if (done >= total) fputc('\n', stderr);
    fflush(stderr);
}

static json_t *num_or_null(double v, int defined) { return defined ? json_real(v) : json_null(); }

static const char *FRACTION_KEYS[EVAL_N_FRACTIONS] = {"1%", "10%", "100%"};

static json_t *zeroshot_json(const eval_zeroshot_result *r) {
    json_t *j = json_object(), *per = json_object();
    json_object_set_new(j, "rule", json_string("score(i,c) = mean over c's positive prompts of s - mean over its "
                                               "negations of s, s = (G + Lm)/2 (G for convirt); accuracy: argmax "
                                               "over classes of the positive mean"));
    json_object_set_new(j, "n_test", json_integer(r->n_test));
    json_object_set_new(j, "n_prompts", json_integer(r->n_prompts));
    for (int c = 0; c < RECLF_N_FINDINGS; c++)
        json_object_set_new(per, reclf_finding_names[c], num_or_null(r->auroc[c], r->defined[c]));
    json_object_set_new(j, "auroc", per);
    json_object_set_new(j, "macro_auroc", json_real(r->macro_auroc));
    json_object_set_new(j, "n_balanced", json_integer(r->n_balanced));
    json_object_set_new(j, "accuracy", num_or_null(r->accuracy, r->has_balanced));
    return j;
}

static json_t *probe_json(const eval_probe_result *r) {
    json_t *j = json_object(), *fr = json_object();
    json_object_set_new(j, "features", json_string("vg"));
    json_object_set_new(j, "pool", json_integer(r->pool));
    json_object_set_new(j, "n_test", json_integer(r->n_test));
    for (int f = 0; f < EVAL_N_FRACTIONS; f++) {
        json_t *e = json_object(), *per = json_object();
        json_object_set_new(e, "n_train", json_integer(r->n_train[f]));
        json_object_set_new(e, "macro_auroc", json_real(r->macro_auroc[f]));
        for (int c = 0; c < RECLF_N_FINDINGS; c++) json_object_set_new(per, reclf_finding_names[c], json_real(r->auroc[f][c]));
        json_object_set_new(e, "auroc", per);
        json_object_set_new(fr, FRACTION_KEYS[f], e);
    }
    json_object_set_new(j, "fractions", fr);
    return j;
}

static const char *K_KEYS[2][3] = {{"R@1", "R@5", "R@10"}, {"P@1", "P@5", "P@10"}};

static json_t *direction_json(const double *recall, const double *precision) {
    json_t *j = json_object();
    for (int k = 0; k < 3; k++) json_object_set_new(j, K_KEYS[0][k], json_real(recall[k]));
    for (int k = 0; k < 3; k++) json_object_set_new(j, K_KEYS[1][k], json_real(precision[k]));
    return j;
}

static json_t *retrieval_json(const eval_retrieval_result *r) {
    json_t *j = json_object();
    json_object_set_new(j, "pool", json_integer(r->pool));
    json_object_set_new(j, "n_mirror", json_integer(r->n_mirror));
    json_object_set_new(j, "n_flip", json_integer(r->n_flip));
    json_object_set_new(j, "precision_rule", json_string("exact label-vector match"));
    for (int s = 0; s < EVAL_N_SCORES; s++) {
        const eval_retrieval_scores *x = &r->s[s];
        if (!x->available) {
            json_object_set_new(j, eval_score_names[s], json_null());
            continue;
        }
        json_t *e = json_object();
        json_object_set_new(e, "i2t", direction_json(x->i2t_recall, x->i2t_precision));
        json_object_set_new(e, "t2i", direction_json(x->t2i_recall, x->t2i_precision));
        json_object_set_new(e, "binding_mirror", num_or_null(x->mirror, r->n_mirror > 0));
        json_object_set_new(e, "binding_flip", num_or_null(x->flip, r->n_flip > 0));
        json_object_set_new(j, eval_score_names[s], e);
    }
    return j;
}

static void print_zeroshot(const eval_zeroshot_result *r) {
    printf("\nzero-shot classification (%ld test images, %ld prompts)\n", r->n_test, r->n_prompts);
    printf("  %-14s %s\n", "class", "AUROC");
    for (int c = 0; c < RECLF_N_FINDINGS; c++)
        if (r->defined[c]) printf("  %-14s %.4f\n", reclf_finding_names[c], r->auroc[c]);
        else printf("  %-14s   n/a (one label value only)\n", reclf_finding_names[c]);
    printf("  %-14s %.4f\n", "macro", r->macro_auroc);
    if (r->has_balanced) printf("  accuracy on the single-finding set (%ld images): %.4f\n", r->n_balanced, r->accuracy);
    else printf("  accuracy: n/a (no single-finding images)\n");
}

static void print_probe(const eval_probe_result *r) {
    printf("\nlinear probe on frozen vg (pool %ld training images, %ld test images)\n", r->pool, r->n_test);
    printf("  %-6s %8s %8s", "labels", "n_train", "macro");
    for (int c = 0; c < RECLF_N_FINDINGS; c++) printf(" %8.8s", reclf_finding_names[c]);
    printf("\n");
    for (int f = 0; f < EVAL_N_FRACTIONS; f++) {
        printf("  %-6s %8ld %8.4f", FRACTION_KEYS[f], r->n_train[f], r->macro_auroc[f]);
        for (int c = 0; c < RECLF_N_FINDINGS; c++) printf(" %8.4f", r->auroc[f][c]);
        printf("\n");
    }
}

static void print_retrieval(const eval_retrieval_result *r) {
    printf("\ncross-modal retrieval (pool of %ld test pairs; P@K by exact label match)\n", r->pool);
    printf("  %-9s %-4s %7s %7s %7s %7s %7s %7s\n", "score", "dir", "R@1", "R@5", "R@10", "P@1", "P@5", "P@10");
    for (int s = 0; s < EVAL_N_SCORES; s++) {
        const eval_retrieval_scores *x = &r->s[s];
        if (!x->available) {
            printf("  %-9s      (no local term in this model)\n", eval_score_names[s]);
            continue;
        }
        printf("  %-9s %-4s %7.4f %7.4f %7.4f %7.4f %7.4f %7.4f\n", eval_score_names[s], "i2t", x->i2t_recall[0],
               x->i2t_recall[1], x->i2t_recall[2], x->i2t_precision[0], x->i2t_precision[1], x->i2t_precision[2]);
        printf("  %-9s %-4s %7.4f %7.4f %7.4f %7.4f %7.4f %7.4f\n", "", "t2i", x->t2i_recall[0], x->t2i_recall[1],
               x->t2i_recall[2], x->t2i_precision[0], x->t2i_precision[1], x->t2i_precision[2]);
    }
    printf("  binding accuracy (own report above the other; chance 0.5)\n");
    printf("  %-9s %16s %16s\n", "score", "mirror (n)", "one-side flip (n)");
    for (int s = 0; s < EVAL_N_SCORES; s++) {
        const eval_retrieval_scores *x = &r->s[s];
        if (!x->available) continue;
        char a[32] = "      n/a", b[32] = "      n/a"; /* n/a: no binding case / no flip (manifests) */
        if (r->n_mirror) snprintf(a, sizeof a, "%9.4f", x->mirror);
        if (r->n_flip) snprintf(b, sizeof b, "%9.4f", x->flip);
        printf("  %-9s %s (%4ld) %s (%4ld)\n", eval_score_names[s], a, r->n_mirror, b, r->n_flip);
    }
}

int cmd_eval(int argc, char **argv) {
    eval_opts o;
    eval_defaults(&o);
    const char *ckpt = NULL, *json_out = NULL, *task = "all";
    long seg_steps = 0;
    int quiet = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { fputs(USAGE, stdout); return 0; }
        if (!strcmp(a, "--quiet")) { quiet = 1; continue; }
        if (!v) { fprintf(stderr, "reclf eval: %s needs a value\n%s", a, USAGE); return 2; }
        if (!strcmp(a, "--ckpt")) ckpt = v;
        else if (!strcmp(a, "--task")) task = v;
        else if (!strcmp(a, "--data")) o.data = v;
        else if (!strcmp(a, "--json")) json_out = v;
        else if (!strcmp(a, "--batch")) o.batch = atoi(v);
        else if (!strcmp(a, "--limit")) o.limit = atol(v);
        else if (!strcmp(a, "--probe-pool")) o.probe_pool = atol(v);
        else if (!strcmp(a, "--retrieval-pool")) o.retrieval_pool = atol(v);
        else if (!strcmp(a, "--seg-steps")) seg_steps = atol(v);
        else if (!strcmp(a, "--seed")) o.seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--threads")) reclf_set_threads(atoi(v));
        else { fprintf(stderr, "reclf eval: unknown option '%s'\n%s", a, USAGE); return 2; }
        i++;
    }
    int tasks;
    if (!ckpt) { fprintf(stderr, "reclf eval: --ckpt is required\n%s", USAGE); return 2; }
    if (parse_tasks(task, &tasks) != 0) { fprintf(stderr, "reclf eval: bad --task '%s'\n%s", task, USAGE); return 2; }
    if (o.batch < 1 || o.limit < 0 || o.probe_pool < 0 || o.retrieval_pool < 0 || seg_steps < 0) {
        fprintf(stderr, "reclf eval: --batch must be positive and the sizes non-negative\n");
        return 2;
    }
    int seg_built = seg_task_run != NULL && seg_task_defaults != NULL;
    if ((tasks & T_SEG) && !seg_built) {
        if (!(tasks & 16)) {
            fprintf(stderr, "reclf eval: segmentation is not built yet (runtime/seg_task.c is missing)\n");
            return 1;
        }
        fprintf(stderr, "reclf eval: segmentation is not built yet: --task all skips it\n");
        tasks &= ~T_SEG;
    }

    reclf_err err = {{0}};
    eval_model m;
    prog_ctx pc = {quiet, reclf_now_seconds()};
    if (eval_model_open(&m, ckpt, &err) != 0) { fprintf(stderr, "reclf eval: %s\n", err.msg); return 1; }
    m.progress = on_progress, m.progress_ctx = &pc;
    if (!quiet) printf("evaluating %s (model %s, step %ld) on %s\n", ckpt, m.name, m.step, o.data);

    json_t *root = json_object(), *tlist = json_array();
    json_object_set_new(root, "checkpoint", json_string(ckpt));
    json_object_set_new(root, "model", json_string(m.name));
    json_object_set_new(root, "step", json_integer(m.step));
    json_object_set_new(root, "data", json_string(o.data));
    json_object_set_new(root, "seed", json_integer((json_int_t)o.seed));
    json_object_set_new(root, "limit", json_integer(o.limit));
    eval_testset ts = {0};
    int rc = 1, have_ts = 0, seg_failed = 0;
    if (tasks & (T_ZS | T_PROBE | T_RET)) {
        if (eval_testset_load(&m, &o, &ts, &err) != 0) goto fail;
        have_ts = 1;
    }
    if (tasks & T_ZS) {
        eval_zeroshot_result r;
        if (eval_zeroshot(&m, &o, &ts, &r, &err) != 0) goto fail;
        if (!quiet) print_zeroshot(&r);
        json_object_set_new(root, "zeroshot", zeroshot_json(&r));
        json_array_append_new(tlist, json_string("zeroshot"));
    }
    if (tasks & T_PROBE) {
        eval_probe_result r;
        if (eval_probe(&m, &o, &ts, &r, &err) != 0) goto fail;
        if (!quiet) print_probe(&r);
        json_object_set_new(root, "probe", probe_json(&r));
        json_array_append_new(tlist, json_string("probe"));
    }
    if (tasks & T_RET) {
        eval_retrieval_result r;
        if (eval_retrieval(&m, &o, &ts, &r, &err) != 0) goto fail;
        if (!quiet) print_retrieval(&r);
        json_object_set_new(root, "retrieval", retrieval_json(&r));
        json_array_append_new(tlist, json_string("retrieval"));
    }
    if (tasks & T_SEG) {
        /* ---- segmentation: runtime/seg_task.{c,h} (SPEC §10, U-Net decoder on F0..F3) ---- */
        seg_task_opts so;
        seg_task_result sr;
        seg_task_defaults(&so);
        so.ckpt = ckpt, so.data = o.data, so.seed = o.seed, so.quiet = quiet;
        if (o.probe_pool > 0) so.pool = o.probe_pool;
        if (o.limit > 0) so.limit_test = (int)o.limit;
        if (seg_steps > 0) so.steps = seg_steps;
        if (seg_task_run(&so, &sr, &err) != 0) {
            /* keep the other tasks' numbers: report the failure in the JSON and the exit code */
            fprintf(stderr, "reclf eval: segmentation failed: %s\n", err.msg);
            json_t *j = json_object();
            json_object_set_new(j, "error", json_string(err.msg));
            json_object_set_new(root, "seg", j);
            seg_failed = 1;
            goto write;
        }
        printf("\nsegmentation (U-Net decoder on frozen F0..F3, %ld test images, %ld steps per fraction)\n", sr.n_test,
               so.steps);
        json_t *j = json_object(), *dice = json_object(), *ntr = json_object();
        for (int f = 0; f < 3; f++) {
            printf("  %-5s masks (%6ld): Dice %.4f\n", FRACTION_KEYS[f], sr.n_train[f], sr.dice[f]);
            json_object_set_new(dice, FRACTION_KEYS[f], json_real(sr.dice[f]));
            json_object_set_new(ntr, FRACTION_KEYS[f], json_integer(sr.n_train[f]));
        }
        json_object_set_new(j, "dice", dice);
        json_object_set_new(j, "n_train", ntr);
        json_object_set_new(j, "n_test", json_integer(sr.n_test));
        json_object_set_new(j, "steps", json_integer(so.steps));
        json_object_set_new(root, "seg", j);
        json_array_append_new(tlist, json_string("seg"));
    }
write:
    json_object_set(root, "tasks", tlist);
    json_object_set_new(root, "elapsed_s", json_real(reclf_now_seconds() - pc.t0));
    if (!quiet) printf("\ndone in %.1f s\n", reclf_now_seconds() - pc.t0);
    if (json_out) {
        char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
        char *sn = s ? realloc(s, strlen(s) + 2) : NULL;
        if (sn) s = sn, strcat(s, "\n");
        int w = sn ? reclf_write_file_atomic(json_out, s, strlen(s), &err) : reclf_fail(&err, "out of memory for JSON");
        free(s);
        if (w != 0) {
            seg_failed = 0; /* so that this error is printed */
            goto fail;
        }
        if (!quiet) printf("wrote %s\n", json_out);
    }
    rc = seg_failed; /* already reported */
fail:
    if (rc && !seg_failed) fprintf(stderr, "reclf eval: %s\n", err.msg);
    json_decref(tlist);
    json_decref(root);
    if (have_ts) eval_testset_free(&ts);
    eval_model_close(&m);
    return rc;
}
