/* Training resumes exactly: a run stopped after k updates (--stop-after, which writes a checkpoint
 * as SIGINT does) and resumed logs the same losses, and ends with the same parameters, as a run
 * that never stopped. The straight run loads each next batch during the step (the default), the
 * stopped one loads in the step (--no-prefetch) until it stops, with a load pending then, so both
 * ways give the same batches. Also: a second run into the same folder without --resume is refused. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "session.h"
#include "train.h"

static void losses_of(const char *dir, double *loss, int n) {
    char path[512], line[4096];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s missing", path);
    int i = 0;
    while (i < n && fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "\"loss\": ");
        cr_assert_not_null(p, "no loss in %s", line);
        loss[i++] = strtod(p + 8, NULL);
    }
    fclose(f);
    cr_assert_eq(i, n, "%s: %d logged steps, expected %d", path, i, n);
}

static train_opts small(const char *out) {
    train_opts o;
    train_defaults(&o);
    o.model = "reclf";
    o.steps = 6;
    o.batch = 4;
    o.seed = 7;
    o.out = out;
    o.log_every = 1;
    o.quiet = 1;
    return o;
}

Test(train, resume_logs_the_same_losses, .timeout = 120) {
    char straight[] = "/tmp/reclf_resume_aXXXXXX", split[] = "/tmp/reclf_resume_bXXXXXX";
    cr_assert_not_null(mkdtemp(straight));
    cr_assert_not_null(mkdtemp(split));
    reclf_err err = {{0}};
    train_opts a = small(straight);
    cr_assert_eq(train_run(&a, &err), 0, "%s", err.msg);

    train_opts b = small(split);
    b.stop_after = 2;
    b.no_prefetch = 1;
    cr_assert_eq(train_run(&b, &err), 0, "%s", err.msg);
    b.stop_after = 0;
    b.no_prefetch = 0;
    b.resume = 1;
    cr_assert_eq(train_run(&b, &err), 0, "%s", err.msg);

    double la[6], lb[6];
    losses_of(straight, la, 6);
    losses_of(split, lb, 6);
    for (int i = 0; i < 6; i++) cr_expect_eq(la[i], lb[i], "step %d: %.9g vs %.9g", i + 1, la[i], lb[i]);

    /* the final parameters are bit-identical */
    session s1, s2;
    char c1[600], c2[600];
    snprintf(c1, sizeof c1, "%s/checkpoint.safetensors", straight);
    snprintf(c2, sizeof c2, "%s/checkpoint.safetensors", split);
    cr_assert_eq(session_open(&s1, "reclf", 0, &err), 0, "%s", err.msg);
    cr_assert_eq(session_open(&s2, "reclf", 0, &err), 0, "%s", err.msg);
    ckpt_meta m1, m2;
    memset(&m1, 0, sizeof m1), memset(&m2, 0, sizeof m2);
    cr_assert_eq(session_load(&s1, c1, &m1, &err), 0, "%s", err.msg);
    cr_assert_eq(session_load(&s2, c2, &m2, &err), 0, "%s", err.msg);
    cr_expect_eq(m1.step, 6);
    cr_expect_eq(m2.step, 6);
    cr_expect_eq(memcmp(s1.params, s2.params, sizeof(float) * s1.g->n_param_elems), 0, "parameters differ");
    ckpt_meta_free(&m1), ckpt_meta_free(&m2);
    session_close(&s1), session_close(&s2);

    /* a new run into a folder that holds one is refused, naming the folder */
    train_opts c = small(straight);
    cr_expect_neq(train_run(&c, &err), 0);
    cr_expect(strstr(err.msg, "--resume") != NULL, "%s", err.msg);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf %s %s", straight, split);
    cr_expect_eq(system(cmd), 0);
}
