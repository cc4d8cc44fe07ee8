/* CSV manifests: RFC 4180 quoting, CRLF, BOM, every error with its path:row and column,
 * skip_bad, and a written SynthCXR manifest that reloads equal. Also the dataset front end. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "image.h"
#include "manifest.h"
#include "synth.h"

static char dir[64];

static char *pth(const char *name) {
    static char buf[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static void put(const char *name, const char *text) {
    FILE *f = fopen(pth(name), "wb");
    cr_assert_not_null(f);
    fwrite(text, 1, strlen(text), f);
    fclose(f);
}

static void setup(void) {
    strcpy(dir, "/tmp/reclf_test_manifest_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    float a[8 * 8], m[16 * 16];
    for (int i = 0; i < 64; i++) a[i] = (float)i / 63.0f;
    for (int i = 0; i < 256; i++) m[i] = i % 16 < 8 ? 1.0f : 0.0f;
    reclf_err e;
    cr_assert_eq(reclf_image_save_png(pth("a.png"), a, 8, 8, &e), 0);
    cr_assert_eq(reclf_image_save_png(pth("m8.png"), a, 8, 8, &e), 0);
    cr_assert_eq(reclf_image_save_png(pth("m16.png"), m, 16, 16, &e), 0);
    put("bad.png", "\x89PNG\r\n\x1a\n truncated");
}

static void teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(manifest, .init = setup, .fini = teardown);

#define HDR "image,report,split,opacity,nodule,effusion,pneumothorax,cardiomegaly,mask\n"

Test(manifest, quoting_crlf_bom_and_column_order) {
    put("q.csv", "\xEF\xBB\xBF"
                 "split,image,Report,nodule,opacity,effusion,pneumothorax,cardiomegaly,extra\r\n"
                 "train,a.png,\"Heart, normal; \"\"quoted\"\"\r\nsecond line\",1,0,-1,,0,x\r\n"
                 "\r\n"
                 "val,a.png,plain report,0,1.0,0,1,-1.0,\"y,z\"\r\n"
                 "test,a.png,\"left \xC3\xA9panchement\",,,,,,\n");
    reclf_manifest m;
    reclf_err e;
    cr_assert_eq(manifest_load(pth("q.csv"), &m, 0, &e), 0, "%s", e.msg);
    cr_assert_eq(m.n_rows, 3);
    cr_assert_str_eq(m.rows[0].report, "Heart, normal; \"quoted\"\r\nsecond line");
    int l0[5] = {0, 1, -1, -2, 0}, l1[5] = {1, 0, 0, 1, -1}, l2[5] = {-2, -2, -2, -2, -2};
    for (int k = 0; k < 5; k++) {
        cr_assert_eq(m.rows[0].labels[k], l0[k], "row 0 label %d", k);
        cr_assert_eq(m.rows[1].labels[k], l1[k], "row 1 label %d", k);
        cr_assert_eq(m.rows[2].labels[k], l2[k], "row 2 label %d", k);
    }
    cr_assert_eq(m.rows[0].csv_row, 2);
    cr_assert_eq(m.rows[1].csv_row, 4); /* the blank line is record 3 */
    cr_assert_eq(m.n_split[SPLIT_TRAIN], 1);
    cr_assert_eq(m.n_split[SPLIT_VAL], 1);
    cr_assert_eq(m.n_split[SPLIT_TEST], 1);
    cr_assert_eq(manifest_split_row(&m, SPLIT_TEST, 0), 2);
    cr_assert_null(m.rows[0].mask);
    reclf_sample s;
    cr_assert_eq(manifest_sample(&m, 2, 4, &s, &e), 0, "%s", e.msg);
    cr_assert_str_eq(s.mirror_report, "right \xC3\xA9panchement");
    cr_assert_null(s.flip_report);
    cr_assert_eq(s.has_mask, 0);
    /* 8x8 ramp averaged 2x2 */
    cr_assert_float_eq(s.image[0], (0 + 1 + 8 + 9) / 4.0f / 63.0f, 1.0f / 255);
    reclf_sample_free(&s);
    manifest_free(&m);
}

/* loads text as a manifest and expects an error containing "<path>:<row>:" and each needle */
static void expect_error(const char *text, int row, const char *n1, const char *n2) {
    put("e.csv", text);
    reclf_manifest m;
    reclf_err e;
    cr_assert_neq(manifest_load(pth("e.csv"), &m, 0, &e), 0, "no error for: %s", text);
    char where[300];
    snprintf(where, sizeof where, "%s:%d:", pth("e.csv"), row);
    cr_assert(strstr(e.msg, where), "expected '%s' in '%s'", where, e.msg);
    cr_assert(strstr(e.msg, n1), "expected '%s' in '%s'", n1, e.msg);
    if (n2) cr_assert(strstr(e.msg, n2), "expected '%s' in '%s'", n2, e.msg);
}

Test(manifest, errors_name_path_row_and_column) {
    expect_error("image,report,split,opacity,effusion,pneumothorax,cardiomegaly\n", 1, "missing column", "nodule");
    expect_error(HDR "a.png,ok,train,0,0,0,0,0,\n"
                     "a.png,ok,train,0,0,yes,0,0,\n", 3, "column 'effusion'", "bad label value 'yes'");
    expect_error(HDR "a.png,\"never closed,train,0,0,0,0,0,\n", 2, "column 'report'", "unterminated quote");
    expect_error(HDR "a.png,ok,train,0,0,0\n", 2, "too few fields", "pneumothorax");
    expect_error(HDR "a.png,ok,train,0,0,0,0,0,,extra\n", 2, "too many fields", NULL);
    expect_error(HDR "a.png,  ,train,0,0,0,0,0,\n", 2, "column 'report'", "empty report");
    expect_error(HDR "a.png,bad \xC3\x28 byte,train,0,0,0,0,0,\n", 2, "column 'report'", "invalid UTF-8");
    expect_error(HDR "missing.png,ok,train,0,0,0,0,0,\n", 2, "column 'image'", "missing");
    expect_error(HDR "a.png,ok,train,0,0,0,0,0,nomask.png\n", 2, "column 'mask'", "missing");
    expect_error(HDR "a.png,ok,dev,0,0,0,0,0,\n", 2, "column 'split'", "dev");
    expect_error("image,report,split,opacity,nodule,effusion,pneumothorax,cardiomegaly,nodule\n", 1, "twice", "nodule");
    reclf_manifest m;
    reclf_err e;
    cr_assert_neq(manifest_load(pth("none.csv"), &m, 0, &e), 0);
    cr_assert(strstr(e.msg, "none.csv") && strstr(e.msg, "missing"), "%s", e.msg);
}

Test(manifest, image_problems_on_sample) {
    put("s.csv", HDR "a.png,ok,train,0,0,0,0,0,m16.png\n"
                     "a.png,ok,train,0,0,0,0,0,m8.png\n"
                     "bad.png,ok,train,0,0,0,0,0,\n");
    reclf_manifest m;
    reclf_err e;
    cr_assert_eq(manifest_load(pth("s.csv"), &m, 0, &e), 0, "%s", e.msg);
    reclf_sample s;
    char where[300];
    cr_assert_neq(manifest_sample(&m, 0, 8, &s, &e), 0);
    snprintf(where, sizeof where, "%s:2:", pth("s.csv"));
    cr_assert(strstr(e.msg, where) && strstr(e.msg, "column 'mask'") && strstr(e.msg, "16x16") && strstr(e.msg, "8x8"),
              "%s", e.msg);
    cr_assert_eq(manifest_sample(&m, 1, 4, &s, &e), 0, "%s", e.msg);
    cr_assert_eq(s.has_mask, 1);
    cr_assert_float_eq(s.mask_union[0], 0.0f, 0); /* ramp < 0.5 at the top */
    cr_assert_float_eq(s.mask_union[15], 1.0f, 0);
    reclf_sample_free(&s);
    cr_assert_neq(manifest_sample(&m, 2, 8, &s, &e), 0);
    snprintf(where, sizeof where, "%s:4:", pth("s.csv"));
    cr_assert(strstr(e.msg, where) && strstr(e.msg, "truncated") && strstr(e.msg, "bad.png"), "%s", e.msg);
    manifest_free(&m);
}

Test(manifest, skip_bad_counts) {
    put("k.csv", HDR "a.png,one,train,0,0,0,0,0,\n"
                     "a.png,two,train,0,maybe,0,0,0,\n"
                     "a.png,three,val,1,0,0,0,0,\n"
                     "a.png,,test,0,0,0,0,0,\n"
                     "a.png,five,test,0,0,0,0,1,\n");
    reclf_manifest m;
    reclf_err e;
    cr_assert_neq(manifest_load(pth("k.csv"), &m, 0, &e), 0);
    cr_assert_eq(manifest_load(pth("k.csv"), &m, 1, &e), 0, "%s", e.msg);
    cr_assert_eq(m.n_rows, 3);
    cr_assert_eq(m.n_skipped, 2);
    cr_assert(strstr(m.skipped_msgs[0], "k.csv:3:") && strstr(m.skipped_msgs[0], "nodule"), "%s", m.skipped_msgs[0]);
    cr_assert(strstr(m.skipped_msgs[1], "k.csv:5:") && strstr(m.skipped_msgs[1], "empty report"), "%s", m.skipped_msgs[1]);
    cr_assert_str_eq(m.rows[2].report, "five");
    cr_assert_eq(m.n_split[SPLIT_TEST], 1);
    manifest_free(&m);
}

Test(manifest, csv_field_quoting) {
    char *b = NULL;
    size_t len = 0, cap = 0;
    cr_assert_eq(manifest_csv_field(&b, &len, &cap, "plain"), 0);
    cr_assert_eq(manifest_csv_field(&b, &len, &cap, ",a \"b\"\nc"), 0);
    cr_assert_str_eq(b, "plain\",a \"\"b\"\"\nc\"");
    free(b);
}

Test(manifest, synth_written_reloads_equal) {
    reclf_err e;
    char *out = pth("synth");
    cr_assert_eq(manifest_write_synth(out, 5, SPLIT_VAL, 12, 32, &e), 0, "%s", e.msg);
    char mpath[300];
    snprintf(mpath, sizeof mpath, "%s/manifest.csv", out);
    reclf_manifest m;
    cr_assert_eq(manifest_load(mpath, &m, 0, &e), 0, "%s", e.msg);
    cr_assert_eq(m.n_rows, 12);
    cr_assert_eq(m.n_split[SPLIT_VAL], 12);
    for (long i = 0; i < 12; i++) {
        reclf_sample a, b;
        cr_assert_eq(synth_sample(5, SPLIT_VAL, i, 32, &a, &e), 0);
        cr_assert_eq(manifest_sample(&m, i, 32, &b, &e), 0, "%s", e.msg);
        cr_assert_str_eq(a.report, b.report);
        cr_assert_str_eq(a.mirror_report, b.mirror_report);
        cr_assert_eq(memcmp(a.labels, b.labels, sizeof a.labels), 0);
        for (int p = 0; p < 32 * 32; p++) {
            cr_assert_float_eq(a.image[p], b.image[p], 0.5f / 255 + 1e-6f);
            cr_assert_eq(a.mask_union[p], b.mask_union[p]);
        }
        reclf_sample_free(&a);
        reclf_sample_free(&b);
    }
    manifest_free(&m);
    /* identical bytes from a second write */
    char *out2 = pth("synth2");
    cr_assert_eq(manifest_write_synth(out2, 5, SPLIT_VAL, 12, 32, &e), 0, "%s", e.msg);
    const char *files[] = {"manifest.csv", "images/00007.png", "masks/00003.png"};
    for (int k = 0; k < 3; k++) {
        char p1[300], p2[300];
        snprintf(p1, sizeof p1, "%s/%s", out, files[k]);
        snprintf(p2, sizeof p2, "%s/%s", out2, files[k]);
        unsigned char *d1, *d2;
        size_t n1, n2;
        cr_assert_eq(reclf_read_file(p1, &d1, &n1, &e), 0, "%s", e.msg);
        cr_assert_eq(reclf_read_file(p2, &d2, &n2, &e), 0, "%s", e.msg);
        cr_assert_eq(n1, n2);
        cr_assert_eq(memcmp(d1, d2, n1), 0, "%s differs", files[k]);
        free(d1);
        free(d2);
    }
    cr_assert_neq(manifest_write_synth(out2, 5, SPLIT_VAL, 1001, 32, &e), 0);
}

Test(manifest, dataset_front_end) {
    reclf_err e;
    char *out = pth("ds");
    cr_assert_eq(manifest_write_synth(out, 2, SPLIT_TEST, 6, 64, &e), 0, "%s", e.msg);
    char mpath[300];
    snprintf(mpath, sizeof mpath, "%s/manifest.csv", out);
    reclf_dataset dm, ds;
    cr_assert_eq(dataset_open(&dm, mpath, SPLIT_TEST, 64, 0, 0, &e), 0, "%s", e.msg);
    cr_assert_eq(dataset_open(&ds, "synth", SPLIT_TEST, 64, 2, 0, &e), 0, "%s", e.msg);
    cr_assert_eq(dataset_count(&dm), 6);
    cr_assert_eq(dataset_count(&ds), 2000);
    /* concurrent gets (as training does with OpenMP) give the same results as serial ones */
    int bad = 0;
#pragma omp parallel for reduction(+ : bad)
    for (int i = 0; i < 24; i++) {
        reclf_sample a, b;
        reclf_err le;
        if (dataset_get(&dm, i % 6, &a, &le) || dataset_get(&ds, i % 6, &b, &le)) {
            bad++;
            continue;
        }
        bad += strcmp(a.report, b.report) != 0;
        for (int p = 0; p < 64 * 64; p++) bad += fabsf(a.image[p] - b.image[p]) > 0.5f / 255 + 1e-6f;
        reclf_sample_free(&a);
        reclf_sample_free(&b);
    }
    cr_assert_eq(bad, 0);
    reclf_sample s;
    cr_assert_neq(dataset_get(&dm, 6, &s, &e), 0);
    reclf_vocab v;
    cr_assert_eq(dataset_build_vocab(&ds, 200, 1, 0, &v, &e), 0, "%s", e.msg);
    cr_assert_geq(vocab_id(&v, "left"), 4);
    cr_assert_geq(vocab_id(&v, "right"), 4);
    cr_assert_geq(vocab_id(&v, "pneumothorax"), 4);
    vocab_free(&v);
    dataset_close(&dm);
    dataset_close(&ds);
    cr_assert_neq(dataset_open(&dm, pth("nothing.csv"), SPLIT_TRAIN, 64, 0, 0, &e), 0);
}
