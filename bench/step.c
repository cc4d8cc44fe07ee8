/* bench/step: times the training step of a compiled model on one fixed SynthCXR batch
 * (forward, backward, clipping, AdamW), median over --steps after --warmup, with the process's
 * peak resident memory; with --profile (the graph built with -DRECLF_PROFILE) it lists every
 * kernel: time, GFLOP/s, GB/s, share of the step and share of the machine's peaks measured here:
 * for a GEMM-bound kernel, bare sgemm at the shape of its GEMM calls, every thread running its own
 * (as the kernels run them); for the rest, a memory copy. Writes JSON with --json. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "batch.h"
#include "dataset.h"
#include "optim.h"
#include "params.h"
#include "profile.h"
#include "session.h"
#include "synth.h"

extern const reclf_prof_table reclf_profile_reclf __attribute__((weak));
extern const reclf_prof_table reclf_profile_convirt __attribute__((weak));
extern const reclf_prof_table reclf_profile_gloria __attribute__((weak));

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* GFLOP/s of a bare sgemm m x n x k (the best of a few runs) */
static double sgemm_peak(int m, int n, int k) {
    float *a = calloc((size_t)m * k, 4), *b = calloc((size_t)k * n, 4), *c = calloc((size_t)m * n, 4);
    for (size_t i = 0; i < (size_t)m * k; i++) a[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < (size_t)k * n; i++) b[i] = (float)(i % 5) * 0.1f;
    double best = 0;
    for (int r = 0; r < 5; r++) {
        double t0 = reclf_now_seconds();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1, a, k, b, n, 0, c, n);
        double t = reclf_now_seconds() - t0;
        double g = 2.0 * m * n * k / t / 1e9;
        if (g > best) best = g;
    }
    free(a), free(b), free(c);
    return best;
}

/* GB/s of a parallel copy of 256 MiB (read + write counted) */
static double copy_peak(void) {
    size_t n = (size_t)64 << 20;
    float *a = malloc(n * 4), *b = malloc(n * 4);
    #pragma omp parallel for
    for (size_t i = 0; i < n; i++) a[i] = (float)i, b[i] = 0;
    double best = 0;
    for (int r = 0; r < 5; r++) {
        double t0 = reclf_now_seconds();
        #pragma omp parallel for
        for (size_t i = 0; i < n; i++) b[i] = a[i];
        double t = reclf_now_seconds() - t0;
        double g = 2.0 * n * 4 / t / 1e9;
        if (g > best) best = g;
    }
    free(a), free(b);
    return best;
}

/* GFLOP/s of the whole machine on sgemm m x n x k: every thread runs its own single-threaded
 * product at once (OpenBLAS runs single-threaded inside a parallel region), as the generated
 * kernels do; the best of 3 runs of 0.3 GFLOP a thread (a few ms) */
static double sgemm_peak_shape(long m, long n, long k) {
    double per = 2.0 * m * n * k;
    int reps = (int)(3e8 / per) + 1, nt = omp_get_max_threads();
    double best = 0;
    float **bufs = calloc((size_t)nt, sizeof *bufs);
    for (int i = 0; i < nt; i++) {
        bufs[i] = calloc((size_t)(m * k + k * n + m * n), sizeof(float));
        for (long j = 0; j < m * k + k * n; j++) bufs[i][j] = (float)(j % 7) * 0.1f;
    }
    for (int r = 0; r < 3; r++) {
        double t0 = reclf_now_seconds();
        #pragma omp parallel num_threads(nt)
        {
            float *a = bufs[omp_get_thread_num()], *b = a + m * k, *c = b + k * n;
            for (int i = 0; i < reps; i++)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)n, (int)k, 1, a, (int)k, b, (int)n, 0, c, (int)n);
        }
        double g = per * reps * nt / (reclf_now_seconds() - t0) / 1e9;
        if (g > best) best = g;
    }
    for (int i = 0; i < nt; i++) free(bufs[i]);
    free(bufs);
    return best;
}

/* the matching-shape peak of each profiled kernel (0: not GEMM-bound), measured once per shape */
static double *gemm_peaks(const reclf_prof_table *prof) {
    double *peak = calloc((size_t)prof->n, sizeof *peak);
    for (int i = 0; i < prof->n; i++) {
        const reclf_prof_entry *e = &prof->entries[i];
        if (e->gemm_m <= 0) continue;
        for (int j = 0; j < i && !peak[i]; j++) {
            const reclf_prof_entry *f = &prof->entries[j];
            if (f->gemm_m == e->gemm_m && f->gemm_n == e->gemm_n && f->gemm_k == e->gemm_k) peak[i] = peak[j];
        }
        if (!peak[i]) peak[i] = sgemm_peak_shape(e->gemm_m, e->gemm_n, e->gemm_k);
    }
    return peak;
}

static const reclf_prof_table *profile_of(const char *model) {
    if (!strcmp(model, "reclf") && &reclf_profile_reclf) return &reclf_profile_reclf;
    if (!strcmp(model, "convirt") && &reclf_profile_convirt) return &reclf_profile_convirt;
    if (!strcmp(model, "gloria") && &reclf_profile_gloria) return &reclf_profile_gloria;
    return NULL;
}

typedef struct {
    int idx;
    double seconds;
} site_time;

static int cmp_site(const void *a, const void *b) {
    double x = ((const site_time *)a)->seconds, y = ((const site_time *)b)->seconds;
    return (x < y) - (x > y);
}

int main(int argc, char **argv) {
    const char *model = "reclf", *json = NULL;
    int B = 32, steps = 12, warmup = 3, top = 25;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(a, "--model")) model = v, i++;
        else if (!strcmp(a, "--batch")) B = atoi(v), i++;
        else if (!strcmp(a, "--steps")) steps = atoi(v), i++;
        else if (!strcmp(a, "--warmup")) warmup = atoi(v), i++;
        else if (!strcmp(a, "--top")) top = atoi(v), i++;
        else if (!strcmp(a, "--json")) json = v, i++;
        else { fprintf(stderr, "usage: bench-step [--model M] [--batch B] [--steps N] [--warmup N] [--top K] [--json F]\n"); return 2; }
    }
    reclf_err err = {{0}};
    session s;
    reclf_dataset ds;
    batch_t b;
    if (session_open(&s, model, 1, &err) || params_init(s.g, s.params, 1, &err) ||
        dataset_open(&ds, "synth", SPLIT_TRAIN, s.cfg.image, 1, 0, &err) ||
        dataset_build_vocab(&ds, 2000, 1, s.cfg.vocab, &s.vocab, &err) ||
        batch_alloc(&b, B, B, s.cfg.image, s.cfg.seq_len, &err)) {
        fprintf(stderr, "bench-step: %s\n", err.msg);
        return 1;
    }
    s.have_vocab = 1;
    long *idx = malloc(sizeof(long) * (size_t)B);
    for (int i = 0; i < B; i++) idx[i] = i;
    if (batch_load(&b, &ds, &s.vocab, idx, 0, &err)) { fprintf(stderr, "bench-step: %s\n", err.msg); return 1; }
    const reclf_prof_table *prof = profile_of(model);
    double *t = malloc(sizeof(double) * (size_t)(steps + warmup));
    adamw_cfg cfg = ADAMW_DEFAULTS;
    for (int r = 0; r < warmup + steps; r++) {
        if (r == warmup && prof)
            for (int k = 0; k < prof->n; k++) prof->entries[k].seconds = prof->entries[k].flops = prof->entries[k].bytes = 0, prof->entries[k].calls = 0;
        double t0 = reclf_now_seconds(), loss;
        if (session_step(&s, &b, 1, &loss, &err)) { fprintf(stderr, "bench-step: %s\n", err.msg); return 1; }
        clip_grad_norm(s.grads, s.g->n_param_elems, 1.0);
        adamw_step_graph(s.g, s.params, s.grads, s.m, s.v, r + 1, 1e-4, &cfg, &err);
        t[r] = reclf_now_seconds() - t0;
    }
    double *meas = t + warmup;
    double sorted[4096];
    memcpy(sorted, meas, sizeof(double) * (size_t)steps);
    double med = median(sorted, steps);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double rss_mib = ru.ru_maxrss / 1024.0;
    double gemm = sgemm_peak(1024, 1024, 1024), copy = copy_peak();
    double flops = 0;
    if (prof)
        for (int k = 0; k < prof->n; k++) flops += prof->entries[k].flops / steps;
    printf("%s: batch %d, median step %.1f ms over %d steps (min %.1f, max %.1f), peak RSS %.0f MiB\n", model, B,
           med * 1e3, steps, sorted[0] * 1e3, sorted[steps - 1] * 1e3, rss_mib);
    printf("machine peaks measured now: sgemm 1024^3 %.0f GFLOP/s, copy %.1f GB/s\n", gemm, copy);
    double *peak = prof ? gemm_peaks(prof) : NULL;
    if (prof) {
        double total = 0;
        for (int k = 0; k < prof->n; k++) total += prof->entries[k].seconds / steps;
        printf("kernels: %d call sites, %.1f ms in kernels (%.0f%% of the step), %.2f GFLOP, %.0f GFLOP/s overall (%.0f%% of sgemm peak)\n",
               prof->n, total * 1e3, 100 * total / med, flops / 1e9, flops / med / 1e9, 100 * flops / med / 1e9 / gemm);
        site_time *st = malloc(sizeof(site_time) * (size_t)prof->n);
        for (int k = 0; k < prof->n; k++) st[k].idx = k, st[k].seconds = prof->entries[k].seconds;
        qsort(st, (size_t)prof->n, sizeof *st, cmp_site);
        printf("%-6s %-9s %-8s %-8s %-8s %-7s %-15s  %s\n", "ms", "share", "GFLOP/s", "GB/s", "of peak", "against", "sgemm m n k",
               "kernel / node / graph line");
        for (int r = 0; r < top && r < prof->n; r++) {
            int i = st[r].idx;
            const reclf_prof_entry *e = &prof->entries[i];
            double sec = e->seconds / steps, gf = e->flops / steps / sec / 1e9, gb = e->bytes / steps / sec / 1e9;
            char shape[64] = "";
            if (peak[i]) snprintf(shape, sizeof shape, "%ld %ld %ld", e->gemm_m, e->gemm_n, e->gemm_k);
            printf("%6.2f %6.1f%%  %8.1f %8.1f %6.0f%%  %-7s %-15s  %s %s%s  %s\n", sec * 1e3, 100 * sec / med, gf, gb,
                   peak[i] ? 100 * gf / peak[i] : 100 * gb / copy, peak[i] ? "sgemm" : "copy", shape, e->kernel,
                   e->backward ? "(bwd) " : "", e->node, e->source);
        }
        free(st);
    }
    if (json) {
        FILE *f = fopen(json, "w");
        if (f) {
            fprintf(f, "{\"model\": \"%s\", \"batch\": %d, \"threads\": %d, \"median_ms\": %.3f, \"min_ms\": %.3f, \"max_ms\": %.3f, "
                       "\"peak_rss_mib\": %.1f, \"sgemm_gflops\": %.1f, \"copy_gbs\": %.2f, \"step_gflop\": %.4f",
                    model, B, omp_get_max_threads(), med * 1e3, sorted[0] * 1e3, sorted[steps - 1] * 1e3, rss_mib, gemm, copy, flops / 1e9);
            if (prof) {
                fprintf(f, ", \"kernels\": [");
                for (int k = 0; k < prof->n; k++) {
                    const reclf_prof_entry *e = &prof->entries[k];
                    fprintf(f, "%s{\"kernel\": \"%s\", \"node\": \"%s\", \"source\": \"%s\", \"backward\": %d, \"ms\": %.4f, \"gflop\": %.5f, \"mb\": %.3f",
                            k ? ", " : "", e->kernel, e->node, e->source, e->backward, e->seconds / steps * 1e3,
                            e->flops / steps / 1e9, e->bytes / steps / 1e6);
                    if (peak[k])
                        fprintf(f, ", \"gemm\": [%ld, %ld, %ld], \"gemm_peak_gflops\": %.1f", e->gemm_m, e->gemm_n, e->gemm_k, peak[k]);
                    fprintf(f, "}");
                }
                fprintf(f, "]");
            }
            fprintf(f, "}\n");
            fclose(f);
        }
    }
    free(peak), free(idx), free(t);
    batch_free(&b);
    dataset_close(&ds);
    session_close(&s);
    return 0;
}
