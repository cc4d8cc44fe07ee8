/* JSONL metrics (one JSON object per line, flushed after each) and the terminal progress line. */
#ifndef RECLF_METRICS_LOG_H
#define RECLF_METRICS_LOG_H
#include <stdio.h>

#include "common.h"

typedef struct {
    FILE *f;
    char *path;
} metrics_log;

typedef struct {
    const char *key;
    double value;
} metrics_num;

typedef struct {
    const char *key;
    const char *value;
} metrics_str;

/* Opens `path` for appending (a resumed run continues the file; parent folders are created).
 * through_step >= 0 first removes the records of later steps, and any line cut short by a crash
 * (a run killed after its last checkpoint logged steps that its resumption logs again); -1 keeps
 * the file as it is, ending a cut line with a newline so the next record starts on its own line. */
int metrics_log_open(metrics_log *ml, const char *path, long through_step, reclf_err *err);

/* Appends {"k1": v1, ..., "s1": "text", ...}: numbers first in the order given, then strings.
 * Integral values print without a fraction (step 120 → 120), others with the shortest of %.15g /
 * %.17g that reads back exactly; NaN and ±Inf, which JSON lacks, are written as null. Keys and
 * strings are JSON-escaped. strs may be NULL when n_strs is 0. The line is flushed. */
int metrics_log_write(metrics_log *ml, const metrics_num *nums, int n_nums, const metrics_str *strs, int n_strs,
                      reclf_err *err);

void metrics_log_close(metrics_log *ml);

/* ---- progress line ----
 * "step 120/600  loss 3.4567  8.51 steps/s  ETA 0:56" (+ extra text). On a terminal the line is
 * rewritten in place with '\r' at every call; otherwise (log file, CI) a full line is printed
 * every `every` steps and at the last step. Rates count only the steps taken since
 * progress_init, so a resumed run shows its own speed. */
typedef struct {
    FILE *out;
    int is_tty;
    long total, start_step, every;
    double t_start;
    int last_len; /* length of the last '\r' line, to blank out leftovers */
} progress_t;

void progress_init(progress_t *p, FILE *out, long total, long start_step, long every);
/* step = updates done so far (1..total); extra may be NULL */
void progress_update(progress_t *p, long step, double loss, const char *extra);
/* ends a '\r' line with a newline (no-op otherwise) */
void progress_finish(progress_t *p);
/* the text of the line, without '\r' or '\n'; steps_per_s <= 0 prints no rate or ETA */
void progress_format(char *buf, size_t n, long step, long total, double loss, double steps_per_s,
                     const char *extra);

#endif
