/* SynthCXR: determinism, split separation, visible findings, side/zone geometry, report/label
 * consistency and the mirror/flip reports. */
#include <criterion/criterion.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "synth.h"

#define S 64

static reclf_sample get(uint64_t seed, int split, long i) {
    reclf_sample s;
    reclf_err e;
    int rc = synth_sample(seed, split, i, S, &s, &e);
    cr_assert_eq(rc, 0, "%s", e.msg);
    return s;
}

Test(synth, deterministic) {
    for (long i = 0; i < 5; i++) {
        reclf_sample a = get(42, SPLIT_TRAIN, i), b = get(42, SPLIT_TRAIN, i);
        cr_assert_eq(memcmp(a.image, b.image, S * S * sizeof(float)), 0);
        cr_assert_eq(memcmp(a.masks, b.masks, 5 * S * S * sizeof(float)), 0);
        cr_assert_str_eq(a.report, b.report);
        cr_assert_str_eq(a.mirror_report, b.mirror_report);
        cr_assert_eq(memcmp(a.labels, b.labels, sizeof a.labels), 0);
        reclf_sample_free(&a);
        reclf_sample_free(&b);
    }
}

Test(synth, splits_and_seeds_differ) {
    int same_report = 0;
    for (long i = 0; i < 20; i++) {
        reclf_sample a = get(1, SPLIT_TRAIN, i), b = get(1, SPLIT_VAL, i), c = get(1, SPLIT_TEST, i), d = get(2, SPLIT_TRAIN, i);
        cr_assert_neq(memcmp(a.image, b.image, S * S * sizeof(float)), 0);
        cr_assert_neq(memcmp(b.image, c.image, S * S * sizeof(float)), 0);
        cr_assert_neq(memcmp(a.image, d.image, S * S * sizeof(float)), 0);
        same_report += !strcmp(a.report, b.report);
        reclf_sample_free(&a);
        reclf_sample_free(&b);
        reclf_sample_free(&c);
        reclf_sample_free(&d);
    }
    cr_assert_lt(same_report, 3);
}

Test(synth, index_range_errors) {
    reclf_sample s;
    reclf_err e;
    cr_assert_neq(synth_sample(1, SPLIT_VAL, 1000, S, &s, &e), 0);
    cr_assert(strstr(e.msg, "1000") && strstr(e.msg, "val"), "%s", e.msg);
    cr_assert_neq(synth_sample(1, 7, 0, S, &s, &e), 0);
    cr_assert_eq(synth_sample(1, SPLIT_TEST, 1999, S, &s, &e), 0);
    reclf_sample_free(&s);
}

/* mean over the mask, and over the same mask mirrored left-right (the other lung) */
static void mask_means(const reclf_sample *s, int k, double *in, double *mirror, double *cx, double *cy) {
    double a = 0, b = 0, n = 0, sx = 0, sy = 0;
    const float *m = s->masks + (size_t)k * S * S;
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++)
            if (m[y * S + x] > 0) {
                a += s->image[y * S + x];
                b += s->image[y * S + (S - 1 - x)];
                sx += x;
                sy += y;
                n++;
            }
    *in = n ? a / n : 0;
    *mirror = n ? b / n : 0;
    *cx = n ? sx / n : -1;
    *cy = n ? sy / n : -1;
}

Test(synth, findings_visible_and_located) {
    double diff[5] = {0}, cnt[5] = {0}, cy_zone[5][3] = {{0}}, n_zone[5][3] = {{0}};
    int normal = 0, binding = 0, n = 400;
    for (long i = 0; i < n; i++) {
        reclf_sample s = get(3, SPLIT_TRAIN, i);
        int any = 0, area_union = 0;
        for (int p = 0; p < S * S; p++) area_union += s.mask_union[p] > 0;
        for (int k = 0; k < 5; k++) {
            int area = 0;
            for (int p = 0; p < S * S; p++) area += s.masks[k * S * S + p] > 0;
            if (!s.labels[k]) {
                cr_assert_eq(area, 0, "sample %ld: mask of absent %s", i, reclf_finding_names[k]);
                continue;
            }
            any = 1;
            cr_assert_gt(area, 2, "sample %ld: %s mask too small (%d px)", i, reclf_finding_names[k], area);
            double in, mir, cx, cy;
            mask_means(&s, k, &in, &mir, &cx, &cy);
            if (k == FINDING_CARDIOMEGALY) {
                /* heart wider than half the thorax: widest mask row > 0.33 of the image */
                int wmax = 0;
                for (int y = 0; y < S; y++) {
                    int w = 0;
                    for (int x = 0; x < S; x++) w += s.masks[k * S * S + y * S + x] > 0;
                    if (w > wmax) wmax = w;
                }
                cr_assert_gt(wmax, 0.33 * S, "sample %ld: heart only %d px wide", i, wmax);
                continue;
            }
            /* the patient's left is on the image's right */
            if (s.side[k] == SIDE_LEFT) cr_assert_gt(cx, S / 2.0, "sample %ld %s", i, reclf_finding_names[k]);
            else cr_assert_lt(cx, S / 2.0, "sample %ld %s", i, reclf_finding_names[k]);
            /* masks can overlap; compare lone findings against the other lung */
            if (area_union == area || k == FINDING_PNEUMOTHORAX) {
                diff[k] += k == FINDING_PNEUMOTHORAX ? mir - in : in - mir;
                cnt[k]++;
            }
            cy_zone[k][s.zone[k]] += cy;
            n_zone[k][s.zone[k]]++;
        }
        normal += !any;
        binding += s.is_binding;
        reclf_sample_free(&s);
    }
    for (int k = 0; k < 4; k++) {
        cr_assert_gt(cnt[k], 5, "%s", reclf_finding_names[k]);
        cr_log_info("%s: mean contrast %.3f over %g samples", reclf_finding_names[k], diff[k] / cnt[k], cnt[k]);
        cr_assert_gt(diff[k] / cnt[k], 0.1, "%s contrast %.3f", reclf_finding_names[k], diff[k] / cnt[k]);
    }
    for (int k = 0; k < 4; k++) {
        if (k == FINDING_EFFUSION) continue;
        cr_assert_lt(cy_zone[k][ZONE_UPPER] / n_zone[k][ZONE_UPPER] + 5, cy_zone[k][ZONE_LOWER] / n_zone[k][ZONE_LOWER],
                     "%s: upper zone not above lower", reclf_finding_names[k]);
    }
    cr_assert(normal > 0.2 * n && normal < 0.4 * n, "normal %d of %d", normal, n);
    cr_assert(binding > 0.15 * n && binding < 0.35 * n, "binding %d of %d", binding, n);
}

Test(synth, proportions) {
    /* about 30% normal, 25% binding cases (4000 samples: +-0.03 is over 4 sigma) */
    int normal = 0, binding = 0, n = 4000;
    for (long i = 0; i < n; i++) {
        synth_findings f;
        reclf_err e;
        cr_assert_eq(synth_sample_findings(11, SPLIT_TRAIN, i, &f, NULL, NULL, &e), 0);
        int any = 0, l = 0, r = 0;
        for (int k = 0; k < 5; k++) {
            any |= f.present[k];
            l += f.present[k] && f.side[k] == SIDE_LEFT;
            r += f.present[k] && f.side[k] == SIDE_RIGHT;
        }
        normal += !any;
        binding += l && r;
    }
    cr_assert(normal > 0.27 * n && normal < 0.33 * n, "normal %d of %d", normal, n);
    cr_assert(binding > 0.22 * n && binding < 0.28 * n, "binding %d of %d", binding, n);
}

static int contains_ci(const char *hay, const char *needle) {
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (!strncasecmp(hay, needle, n)) return 1;
    return 0;
}

/* splits text into words (letters only), returns count */
static int words(const char *t, char w[][32], int max) {
    int n = 0;
    while (*t && n < max) {
        while (*t && !isalpha((unsigned char)*t)) t++;
        int l = 0;
        while (isalpha((unsigned char)*t)) {
            if (l < 31) w[n][l++] = (char)tolower((unsigned char)*t);
            t++;
        }
        if (l) w[n++][l] = 0;
    }
    return n;
}

Test(synth, reports_match_labels_and_mirrors) {
    static const char *const key[5] = {"opacity|consolidation|airspace", "nodul", "effusion|pleural fluid",
                                       "pneumothorax", "cardiomegaly|enlarge"};
    static char wa[200][32], wb[200][32];
    for (long i = 0; i < 300; i++) {
        reclf_sample s = get(5, SPLIT_TEST, i);
        int lat = 0;
        for (int k = 0; k < 5; k++) {
            char alts[64];
            strcpy(alts, key[k]);
            int found = 0;
            for (char *tok = strtok(alts, "|"); tok; tok = strtok(NULL, "|")) found |= contains_ci(s.report, tok);
            if (s.labels[k]) cr_assert(found, "sample %ld: %s present but not in '%s'", i, reclf_finding_names[k], s.report);
            lat += s.labels[k] && s.side[k];
            if (s.labels[k] && s.side[k]) cr_assert_eq(s.zone[k] != 0, k != FINDING_EFFUSION);
        }
        /* side words appear exactly when a lateralised finding does */
        cr_assert_eq(reclf_names_side(s.report) > 0, lat > 0, "sample %ld: '%s'", i, s.report);
        cr_assert_eq(reclf_names_side(s.report), lat, "one side word per lateralised finding: '%s'", s.report);
        /* mirror = word-level swap, both ways */
        char *sw = reclf_swap_sides(s.report);
        cr_assert_str_eq(sw, s.mirror_report);
        free(sw);
        sw = reclf_swap_sides(s.mirror_report);
        cr_assert_str_eq(sw, s.report);
        free(sw);
        /* flip: exactly one side word differs */
        if (!lat) {
            cr_assert_null(s.flip_report);
            cr_assert_str_eq(s.mirror_report, s.report);
        } else {
            cr_assert_not_null(s.flip_report);
            int na = words(s.report, wa, 200), nb = words(s.flip_report, wb, 200), ndiff = 0;
            cr_assert_eq(na, nb);
            for (int j = 0; j < na; j++)
                if (strcmp(wa[j], wb[j])) {
                    ndiff++;
                    cr_assert((!strcmp(wa[j], "left") && !strcmp(wb[j], "right")) ||
                              (!strcmp(wa[j], "right") && !strcmp(wb[j], "left")));
                }
            cr_assert_eq(ndiff, 1, "'%s' vs '%s'", s.report, s.flip_report);
            if (s.is_binding) cr_assert_str_neq(s.mirror_report, s.report);
        }
        reclf_sample_free(&s);
    }
}

Test(synth, render_with_sides_swapped) {
    synth_findings f = {0};
    f.present[FINDING_NODULE] = 1;
    f.side[FINDING_NODULE] = SIDE_RIGHT;
    f.zone[FINDING_NODULE] = ZONE_UPPER;
    f.present[FINDING_OPACITY] = 1;
    f.side[FINDING_OPACITY] = SIDE_LEFT;
    f.zone[FINDING_OPACITY] = ZONE_LOWER;
    f.size[FINDING_OPACITY] = 1;
    for (uint64_t rs = 0; rs < 50; rs++) {
        char *a = synth_render_report(&f, rs);
        synth_findings g = f;
        g.side[FINDING_NODULE] = SIDE_LEFT;
        g.side[FINDING_OPACITY] = SIDE_RIGHT;
        char *b = synth_render_report(&g, rs), *c = reclf_swap_sides(a);
        cr_assert_str_eq(b, c);
        cr_assert(strstr(a, "upper") && strstr(a, "lower"), "%s", a);
        free(a);
        free(b);
        free(c);
    }
}

Test(synth, swap_sides_words) {
    char *s = reclf_swap_sides("Left-sided effusion, RIGHT lung; leftover rightward. left");
    cr_assert_str_eq(s, "Right-sided effusion, LEFT lung; leftover rightward. right");
    free(s);
    cr_assert_eq(reclf_names_side("Bright, cleft, no sides."), 0);
    cr_assert_eq(reclf_names_side("left and Right"), 2);
}

Test(synth, zero_shot_set_and_prompts) {
    for (int f = 0; f < 5; f++)
        for (int k = 0; k < 200; k += 37) {
            long idx = synth_single_finding_index(9, f, k);
            cr_assert_geq(idx, 0);
            reclf_sample s = get(9, SPLIT_ZS, idx);
            for (int j = 0; j < 5; j++) cr_assert_eq(s.labels[j], j == f, "finding %d k %d label %d", f, k, j);
            reclf_sample_free(&s);
        }
    cr_assert_eq(synth_single_finding_index(9, 0, 200), -1);
    char **p;
    int n;
    cr_assert_eq(synth_class_prompts(FINDING_EFFUSION, 1, &p, &n), 0);
    cr_assert_geq(n, 4);
    int left = 0;
    for (int i = 0; i < n; i++) {
        cr_assert(strstr(p[i], "effusion") || strstr(p[i], "pleural fluid"), "%s", p[i]);
        left += strstr(p[i], "left") != NULL;
    }
    cr_assert(left > 0 && left < n);
    synth_free_prompts(p, n);
    cr_assert_eq(synth_class_prompts(FINDING_OPACITY, 0, &p, &n), 0);
    for (int i = 0; i < n; i++) cr_assert(strstr(p[i], "no"), "%s", p[i]);
    synth_free_prompts(p, n);
    cr_assert_eq(synth_class_prompts(FINDING_OPACITY, 1, &p, &n), 0);
    cr_assert_str_eq(p[0], "there is a moderate left upper zone opacity.");
    synth_free_prompts(p, n);
}
