#include "metrics_log.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// the folder part of path, created when missing
static int make_parent(const char *path, reclf_err *err) {
    const char *slash = strrchr(path, '/');
    if (!slash || slash == path) return 0;
    size_t n = (size_t)(slash - path);
    char *dir = malloc(n + 1);
    if (!dir) return reclf_fail(err, "%s: out of memory", path);
    memcpy(dir, path, n);
    dir[n] = 0;
    int rc = reclf_mkdirs(dir, err);
    free(dir);
    return rc;
}

/* the "step" of a JSONL record, or -1 when it has none */
static long step_of(const char *line, size_t len) {
    static const char key[] = "\"step\": ";
    for (size_t i = 0; i + sizeof key - 1 < len; i++)
        if (!memcmp(line + i, key, sizeof key - 1)) return strtol(line + i + sizeof key - 1, NULL, 10);
    return -1;
}

/* Keeps the whole records of steps <= through (a killed run logged steps its checkpoint does not
 * hold: the resumed run logs them again). Rewritten atomically, only when something goes. */
static int drop_records_after(const char *path, long through, reclf_err *err) {
    unsigned char *data;
    size_t len;
    if (access(path, F_OK) != 0) return 0;
    if (reclf_read_file(path, &data, &len, err) != 0) return -1;
    char *out = malloc(len + 1);
    if (!out) {
        free(data);
        return reclf_fail(err, "%s: out of memory", path);
    }
    size_t kept = 0;
    for (size_t i = 0; i < len;) {
        size_t j = i;
        while (j < len && data[j] != '\n') j++;
        const char *line = (const char *)data + i;
        size_t n = j - i;
        /* a whole record ends with '}' and its newline; a line cut by a crash is dropped */
        int whole = j < len && n > 0 && line[n - 1] == '}';
        long step = whole ? step_of(line, n) : -1;
        if (whole && step <= through) {
            memcpy(out + kept, line, n + 1);
            kept += n + 1;
        }
        i = j + 1;
    }
    int rc = kept == len ? 0 : reclf_write_file_atomic(path, out, kept, err);
    free(out);
    free(data);
    return rc;
}

int metrics_log_open(metrics_log *ml, const char *path, long through_step, reclf_err *err) {
    memset(ml, 0, sizeof *ml);
    if (make_parent(path, err) != 0) return -1;
    if (through_step >= 0 && drop_records_after(path, through_step, err) != 0) return -1;
    FILE *f = fopen(path, "a+");
    if (!f) return reclf_fail(err, "%s: cannot open for appending: %s", path, strerror(errno));
    // a record cut short by a crash: end it so the next one starts on its own line
    if (fseek(f, 0, SEEK_END) == 0 && ftell(f) > 0 && fseek(f, -1, SEEK_END) == 0) {
        int c = fgetc(f);
        fseek(f, 0, SEEK_END);
        if (c != '\n' && c != EOF) fputc('\n', f);
    }
    ml->path = strdup(path);
    if (!ml->path) {
        fclose(f);
        return reclf_fail(err, "%s: out of memory", path);
    }
    ml->f = f;
    return 0;
}

static void put_json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        switch (c) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (c < 0x20) fprintf(f, "\\u%04x", c);
            else fputc(c, f);
        }
    }
    fputc('"', f);
}

static void put_json_number(FILE *f, double x) {
    if (!isfinite(x)) {
        fputs("null", f);
        return;
    }
    if (x == floor(x) && fabs(x) < 1e15) {
        fprintf(f, "%.0f", x);
        return;
    }
    char buf[40];
    snprintf(buf, sizeof buf, "%.15g", x);
    if (strtod(buf, NULL) != x) snprintf(buf, sizeof buf, "%.17g", x);
    fputs(buf, f);
}

int metrics_log_write(metrics_log *ml, const metrics_num *nums, int n_nums, const metrics_str *strs, int n_strs,
                      reclf_err *err) {
    if (!ml->f) return reclf_fail(err, "metrics log: not open");
    FILE *f = ml->f;
    fputc('{', f);
    int first = 1;
    for (int i = 0; i < n_nums; i++) {
        if (!first) fputs(", ", f);
        first = 0;
        put_json_string(f, nums[i].key);
        fputs(": ", f);
        put_json_number(f, nums[i].value);
    }
    for (int i = 0; i < n_strs; i++) {
        if (!first) fputs(", ", f);
        first = 0;
        put_json_string(f, strs[i].key);
        fputs(": ", f);
        if (strs[i].value) put_json_string(f, strs[i].value);
        else fputs("null", f);
    }
    fputs("}\n", f);
    if (fflush(f) != 0 || ferror(f)) return reclf_fail(err, "%s: write failed: %s", ml->path, strerror(errno));
    return 0;
}

void metrics_log_close(metrics_log *ml) {
    if (ml->f) fclose(ml->f);
    free(ml->path);
    memset(ml, 0, sizeof *ml);
}

// ----------------------------------------------------------------------------
// progress line

void progress_init(progress_t *p, FILE *out, long total, long start_step, long every) {
    memset(p, 0, sizeof *p);
    p->out = out;
    p->is_tty = out && isatty(fileno(out));
    p->total = total;
    p->start_step = start_step;
    p->every = every > 0 ? every : 1;
    p->t_start = reclf_now_seconds();
}

void progress_format(char *buf, size_t n, long step, long total, double loss, double steps_per_s,
                     const char *extra) {
    int w = snprintf(buf, n, "step %ld/%ld  loss %.4f", step, total, loss);
    if (w < 0 || (size_t)w >= n) return;
    size_t o = (size_t)w;
    if (steps_per_s > 0) {
        double eta = (double)(total > step ? total - step : 0) / steps_per_s;
        long s = (long)(eta + 0.5), h = s / 3600, mi = (s / 60) % 60, se = s % 60;
        if (h > 0) w = snprintf(buf + o, n - o, "  %.2f steps/s  ETA %ld:%02ld:%02ld", steps_per_s, h, mi, se);
        else w = snprintf(buf + o, n - o, "  %.2f steps/s  ETA %ld:%02ld", steps_per_s, mi, se);
        if (w < 0 || (size_t)w >= n - o) return;
        o += (size_t)w;
    }
    if (extra && *extra) snprintf(buf + o, n - o, "  %s", extra);
}

void progress_update(progress_t *p, long step, double loss, const char *extra) {
    if (!p->out) return;
    int last = step >= p->total;
    if (!p->is_tty && step % p->every != 0 && !last) return;
    double dt = reclf_now_seconds() - p->t_start;
    long done = step - p->start_step;
    double rate = (dt > 0 && done > 0) ? (double)done / dt : 0.0;
    char line[512];
    progress_format(line, sizeof line, step, p->total, loss, rate, extra);
    if (p->is_tty) {
        int len = (int)strlen(line);
        int pad = p->last_len > len ? p->last_len - len : 0;
        fprintf(p->out, "\r%s%*s", line, pad, "");
        p->last_len = len;
    } else {
        fprintf(p->out, "%s\n", line);
    }
    fflush(p->out);
}

void progress_finish(progress_t *p) {
    if (p->out && p->is_tty && p->last_len > 0) {
        fputc('\n', p->out);
        fflush(p->out);
    }
    p->last_len = 0;
}
