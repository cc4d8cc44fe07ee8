/* One interface over SynthCXR and CSV manifests (SPEC §9). After dataset_open the dataset is
 * read-only, so dataset_get may be called from several threads at once. */
#ifndef RECLF_DATASET_H
#define RECLF_DATASET_H
#include <stdint.h>

#include "common.h"
#include "manifest.h"
#include "sample.h"
#include "tokenizer.h"

enum { DATASET_SYNTH = 0, DATASET_MANIFEST = 1 };

typedef struct {
    int kind;           /* DATASET_SYNTH or DATASET_MANIFEST */
    int split;          /* SPLIT_TRAIN/VAL/TEST (and SPLIT_ZS for synth) */
    int size;           /* images are size x size */
    uint64_t seed;      /* synth seed */
    long count;
    reclf_manifest m;   /* manifest data */
} reclf_dataset;

/* spec: "synth" or the path of a manifest CSV. For a manifest, only rows of `split` are seen.
 * skip_bad is passed to manifest_load (ignored for synth). */
int dataset_open(reclf_dataset *ds, const char *spec, int split, int size, uint64_t seed, int skip_bad,
                 reclf_err *err);
/* Number of samples (synth train: SYNTH_TRAIN_COUNT, effectively unbounded). */
long dataset_count(const reclf_dataset *ds);
/* Sample i (0 <= i < count); thread-safe. Free with reclf_sample_free. */
int dataset_get(const reclf_dataset *ds, long i, reclf_sample *out, reclf_err *err);
/* The report of sample i alone (malloc'ed; cheap for synth: no image is drawn). */
int dataset_report(const reclf_dataset *ds, long i, char **report, reclf_err *err);
/* Word-level vocabulary from the reports of the first n samples (all when n <= 0 or n > count). */
int dataset_build_vocab(const reclf_dataset *ds, long n, int min_count, int max_size, reclf_vocab *v,
                        reclf_err *err);
void dataset_close(reclf_dataset *ds);

#endif
