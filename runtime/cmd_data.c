/* reclf data synth --n N --split train|val|test --out DIR [--seed S] [--size PX] [--preview FILE.png]
 * reclf data check MANIFEST [--skip-bad] [--size PX] */
#include "cmd_data.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "image.h"
#include "manifest.h"
#include "synth.h"

static void usage(void) {
    fprintf(stderr,
            "usage: reclf data synth --n N --split train|val|test --out DIR [--seed S] [--size PX] [--preview FILE.png]\n"
            "       reclf data check MANIFEST [--skip-bad] [--size PX]\n"
            "  synth    writes DIR/images/NNNNN.png, DIR/masks/NNNNN.png and DIR/manifest.csv (same seed, same bytes);\n"
            "           --preview draws the first 16 samples with their findings\n"
            "  check    loads every row and image of a manifest, prints counts per split and every problem;\n"
            "           with --skip-bad, bad rows are reported but do not fail the check\n");
}

static int parse_long(const char *s, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end) return -1;
    *out = v;
    return 0;
}

/* A labelled grid of the first samples, for looking at the data. */
static int write_preview(const char *path, uint64_t seed, int split, long n, int size, reclf_err *err) {
    const int cols = 4, rows = 4, scale = size >= 192 ? 1 : (192 + size - 1) / size, cell = size * scale;
    const int text_h = 5 * 12 + 8, pad = 8;
    int count = (int)(n < cols * rows ? n : cols * rows);
    reclf_canvas *c = reclf_canvas_new(cols * (cell + pad) + pad, rows * (cell + text_h + pad) + pad, 24, 24, 24);
    if (!c) return reclf_fail(err, "%s: out of memory for the preview", path);
    for (int i = 0; i < count; i++) {
        reclf_sample s;
        synth_findings f;
        if (synth_sample(seed, split, i, size, &s, err) || synth_sample_findings(seed, split, i, &f, NULL, NULL, err)) {
            reclf_canvas_free(c);
            return -1;
        }
        int x = pad + (i % cols) * (cell + pad), y = pad + (i / cols) * (cell + text_h + pad);
        reclf_canvas_blit_grey(c, s.image, size, size, x, y, cell, cell);
        char text[512];
        int o = snprintf(text, sizeof text, "#%d%s\n", i, s.is_binding ? " binding" : "");
        int any = 0;
        static const char *const sz[3] = {"small", "moderate", "large"};
        for (int k = 0; k < RECLF_N_FINDINGS; k++) {
            if (!s.labels[k]) continue;
            any = 1;
            o += snprintf(text + o, sizeof text - (size_t)o, "%s %s%s%s%s\n", reclf_finding_names[k], sz[f.size[k]],
                          s.side[k] ? (s.side[k] == SIDE_LEFT ? " L" : " R") : "",
                          s.zone[k] ? (s.zone[k] == ZONE_UPPER ? " upper" : " lower") : "",
                          "");
        }
        if (!any) snprintf(text + o, sizeof text - (size_t)o, "normal\n");
        reclf_canvas_text(c, x, y + cell + 3, text, 1, 255, 230, 120);
        reclf_sample_free(&s);
    }
    int rc = reclf_canvas_save_png(c, path, err);
    reclf_canvas_free(c);
    return rc;
}

static int data_synth(int argc, char **argv) {
    long n = -1, size = 64;
    long long seed = 1;
    int split = -1;
    const char *out = NULL, *preview = NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "data synth: %s needs a value\n", a);
            usage();
            return 2;
        }
        if (!strcmp(a, "--n")) {
            if (parse_long(v, &n) || n < 0) { fprintf(stderr, "data synth: bad --n '%s'\n", v); usage(); return 2; }
        } else if (!strcmp(a, "--split")) {
            split = synth_split_from_name(v);
            if (split < 0 || split > SPLIT_TEST) { fprintf(stderr, "data synth: bad --split '%s'\n", v); usage(); return 2; }
        } else if (!strcmp(a, "--out")) {
            out = v;
        } else if (!strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            seed = strtoll(v, &end, 10);
            if (errno || end == v || *end) { fprintf(stderr, "data synth: bad --seed '%s'\n", v); usage(); return 2; }
        } else if (!strcmp(a, "--size")) {
            if (parse_long(v, &size) || size < 16 || size > 1024) {
                fprintf(stderr, "data synth: bad --size '%s' (16..1024)\n", v);
                usage();
                return 2;
            }
        } else if (!strcmp(a, "--preview")) {
            preview = v;
        } else {
            fprintf(stderr, "data synth: unknown option '%s'\n", a);
            usage();
            return 2;
        }
        i++;
    }
    if (n < 0 || split < 0 || !out) {
        fprintf(stderr, "data synth: --n, --split and --out are required\n");
        usage();
        return 2;
    }
    reclf_err err;
    double t0 = reclf_now_seconds();
    if (manifest_write_synth(out, (uint64_t)seed, split, n, (int)size, &err)) {
        fprintf(stderr, "data synth: %s\n", err.msg);
        return 1;
    }
    printf("wrote %ld %s samples (%ldx%ld, seed %lld) to %s/manifest.csv in %.1f s\n", n, synth_split_name(split),
           size, size, seed, out, reclf_now_seconds() - t0);
    if (preview) {
        if (write_preview(preview, (uint64_t)seed, split, n, (int)size, &err)) {
            fprintf(stderr, "data synth: preview: %s\n", err.msg);
            return 1;
        }
        printf("preview: %s\n", preview);
    }
    return 0;
}

static int data_check(int argc, char **argv) {
    const char *path = NULL;
    int skip_bad = 0;
    long size = 64;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--skip-bad")) {
            skip_bad = 1;
        } else if (!strcmp(argv[i], "--size") && i + 1 < argc) {
            if (parse_long(argv[++i], &size) || size < 1) { fprintf(stderr, "data check: bad --size\n"); usage(); return 2; }
        } else if (argv[i][0] == '-' || path) {
            fprintf(stderr, "data check: unexpected argument '%s'\n", argv[i]);
            usage();
            return 2;
        } else {
            path = argv[i];
        }
    }
    if (!path) {
        fprintf(stderr, "data check: MANIFEST is required\n");
        usage();
        return 2;
    }
    /* always load with skipping so that every problem is listed, not just the first */
    reclf_manifest m;
    reclf_err err;
    if (manifest_load(path, &m, 1, &err)) {
        fprintf(stderr, "data check: %s\n", err.msg);
        return 1;
    }
    long problems = m.n_skipped, masks = 0, unusable = 0;
    for (long i = 0; i < m.n_skipped; i++) printf("problem: %s\n", m.skipped_msgs[i]);
    long label_counts[RECLF_N_FINDINGS][4] = {{0}};
    for (long r = 0; r < m.n_rows; r++) {
        reclf_sample s;
        if (manifest_sample(&m, r, (int)size, &s, &err)) {
            printf("problem: %s\n", err.msg);
            problems++;
            unusable++;
            continue;
        }
        masks += s.has_mask;
        for (int k = 0; k < RECLF_N_FINDINGS; k++) {
            int l = s.labels[k];
            label_counts[k][l == 1 ? 0 : l == 0 ? 1 : l == -1 ? 2 : 3]++;
        }
        reclf_sample_free(&s);
    }
    printf("%s: %ld rows loaded (train %ld, val %ld, test %ld), %ld with masks\n", path, m.n_rows, m.n_split[0],
           m.n_split[1], m.n_split[2], masks);
    for (int k = 0; k < RECLF_N_FINDINGS; k++)
        printf("  %-13s positive %ld, negative %ld, uncertain %ld, missing %ld\n", reclf_finding_names[k],
               label_counts[k][0], label_counts[k][1], label_counts[k][2], label_counts[k][3]);
    printf("%ld problem%s (%ld rows skipped at load, %ld images or masks unusable)\n", problems, problems == 1 ? "" : "s",
           m.n_skipped, unusable);
    long good = m.n_rows - unusable;
    manifest_free(&m);
    if (problems && !skip_bad) return 1;
    if (good <= 0) {
        fprintf(stderr, "data check: no usable rows\n");
        return 1;
    }
    return 0;
}

int cmd_data(int argc, char **argv) {
    int i = 0;
    if (argc > 0 && !strcmp(argv[0], "data")) i = 1;
    if (i >= argc) {
        usage();
        return 2;
    }
    if (!strcmp(argv[i], "synth")) return data_synth(argc - i - 1, argv + i + 1);
    if (!strcmp(argv[i], "check")) return data_check(argc - i - 1, argv + i + 1);
    fprintf(stderr, "data: unknown subcommand '%s'\n", argv[i]);
    usage();
    return 2;
}
