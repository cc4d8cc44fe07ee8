/* libFuzzer harness of the CSV manifest parser (runtime/manifest.c): the input is written as a
 * manifest file next to a real 8x8 PNG "a.png" and a 4x4 mask "m.png", so that rows naming them
 * reach the sample path too. Both skip_bad modes run. Properties checked beyond "no crash":
 *  - an error always comes with a message naming the file;
 *  - a loaded manifest is consistent: rows per split add up, every row's labels are in
 *    {1, 0, -1, missing}, skipped rows have a message each. */
#include <assert.h>

#include "common_fuzz.h"
#include "image.h"
#include "manifest.h"
#include "sample.h"

static void setup(void) {
    static int done;
    if (done) return;
    done = 1;
    float a[64], m[16];
    for (int i = 0; i < 64; i++) a[i] = (float)i / 63.0f;
    for (int i = 0; i < 16; i++) m[i] = (float)(i & 1);
    char p[512];
    reclf_err e;
    snprintf(p, sizeof p, "%s/a.png", fuzz_dir());
    if (reclf_image_save_png(p, a, 8, 8, &e)) abort();
    snprintf(p, sizeof p, "%s/m.png", fuzz_dir());
    if (reclf_image_save_png(p, m, 4, 4, &e)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    setup();
    char path[512];
    if (fuzz_write("manifest.csv", data, size, path, sizeof path)) abort();
    for (int skip_bad = 0; skip_bad < 2; skip_bad++) {
        reclf_manifest m;
        reclf_err err = {{0}};
        if (manifest_load(path, &m, skip_bad, &err) != 0) {
            assert(strstr(err.msg, path) != NULL);
            continue;
        }
        assert(m.n_split[0] + m.n_split[1] + m.n_split[2] == m.n_rows);
        for (long i = 0; i < m.n_skipped; i++) assert(m.skipped_msgs[i] && strstr(m.skipped_msgs[i], path));
        for (long r = 0; r < m.n_rows; r++) {
            for (int k = 0; k < RECLF_N_FINDINGS; k++) {
                int l = m.rows[r].labels[k];
                assert(l == 1 || l == 0 || l == -1 || l == RECLF_LABEL_MISSING);
            }
            if (r < 4) { /* decoding is the slow part: a few rows are enough */
                reclf_sample s;
                if (manifest_sample(&m, r, 16, &s, &err) == 0) {
                    for (int i = 0; i < 16 * 16; i++) assert(s.image[i] >= 0.0f && s.image[i] <= 1.0f);
                    reclf_sample_free(&s);
                } else {
                    assert(strstr(err.msg, path) != NULL);
                }
            }
        }
        manifest_free(&m);
    }
    return 0;
}
