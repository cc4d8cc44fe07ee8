/* Dataset front end: SynthCXR (generated on demand) or a manifest (decoded on demand). */
#include "dataset.h"

#include <stdlib.h>
#include <string.h>

#include "synth.h"

int dataset_open(reclf_dataset *ds, const char *spec, int split, int size, uint64_t seed, int skip_bad,
                 reclf_err *err) {
    memset(ds, 0, sizeof *ds);
    if (!spec || !*spec) return reclf_fail(err, "dataset: empty data spec (expected 'synth' or a manifest path)");
    if (size < 16) return reclf_fail(err, "dataset %s: image size %d too small (at least 16)", spec, size);
    ds->split = split;
    ds->size = size;
    ds->seed = seed;
    if (!strcmp(spec, "synth")) {
        ds->kind = DATASET_SYNTH;
        ds->count = synth_split_count(split);
        if (ds->count < 0) return reclf_fail(err, "dataset synth: unknown split %d", split);
        return 0;
    }
    if (split < SPLIT_TRAIN || split > SPLIT_TEST)
        return reclf_fail(err, "dataset %s: split %d is not train, val or test", spec, split);
    ds->kind = DATASET_MANIFEST;
    if (manifest_load(spec, &ds->m, skip_bad, err)) return -1;
    ds->count = ds->m.n_split[split];
    return 0;
}

long dataset_count(const reclf_dataset *ds) { return ds->count; }

int dataset_get(const reclf_dataset *ds, long i, reclf_sample *out, reclf_err *err) {
    memset(out, 0, sizeof *out);
    if (i < 0 || i >= ds->count)
        return reclf_fail(err, "dataset: index %ld out of range (split %s has %ld samples)", i,
                          synth_split_name(ds->split), ds->count);
    if (ds->kind == DATASET_SYNTH) return synth_sample(ds->seed, ds->split, i, ds->size, out, err);
    return manifest_sample(&ds->m, manifest_split_row(&ds->m, ds->split, i), ds->size, out, err);
}

int dataset_report(const reclf_dataset *ds, long i, char **report, reclf_err *err) {
    *report = NULL;
    if (i < 0 || i >= ds->count) return reclf_fail(err, "dataset: index %ld out of range (%ld samples)", i, ds->count);
    if (ds->kind == DATASET_SYNTH) return synth_sample_report(ds->seed, ds->split, i, report, err);
    *report = strdup(ds->m.rows[manifest_split_row(&ds->m, ds->split, i)].report);
    return *report ? 0 : reclf_fail(err, "dataset: out of memory");
}

int dataset_build_vocab(const reclf_dataset *ds, long n, int min_count, int max_size, reclf_vocab *v,
                        reclf_err *err) {
    if (n <= 0 || n > ds->count) n = ds->count;
    if (ds->kind == DATASET_SYNTH && n > 1000000)
        return reclf_fail(err, "dataset_build_vocab: %ld synth reports is too many (give n <= 1000000)", n);
    char **texts = calloc((size_t)(n ? n : 1), sizeof *texts);
    if (!texts) return reclf_fail(err, "dataset_build_vocab: out of memory for %ld reports", n);
    int rc = 0;
    for (long i = 0; i < n && !rc; i++) rc = dataset_report(ds, i, &texts[i], err);
    if (!rc) rc = vocab_build(v, (const char *const *)texts, n, min_count, max_size, err);
    for (long i = 0; i < n; i++) free(texts[i]);
    free(texts);
    return rc;
}

void dataset_close(reclf_dataset *ds) {
    if (!ds) return;
    if (ds->kind == DATASET_MANIFEST) manifest_free(&ds->m);
    memset(ds, 0, sizeof *ds);
}
