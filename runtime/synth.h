/* SynthCXR (SPEC §9): a generated chest-radiograph-and-report data set.
 * Every sample is a pure function of (seed, split, index); nothing is cached or shared, so
 * concurrent calls from several threads are safe. */
#ifndef RECLF_SYNTH_H
#define RECLF_SYNTH_H
#include <stdint.h>

#include "common.h"
#include "sample.h"

enum { SPLIT_TRAIN = 0, SPLIT_VAL = 1, SPLIT_TEST = 2,
       SPLIT_ZS = 3 /* balanced single-finding set for zero-shot accuracy (5 x 200) */ };

#define SYNTH_TRAIN_COUNT 1000000000L /* "unbounded": any index >= 0 works */
#define SYNTH_VAL_COUNT 1000L
#define SYNTH_TEST_COUNT 2000L
#define SYNTH_ZS_PER_CLASS 200L

/* Number of samples in a split (-1 for an unknown split). */
long synth_split_count(int split);
/* "train", "val", "test", "zs" -> split id, or -1. */
int synth_split_from_name(const char *name);
const char *synth_split_name(int split);

/* The structured findings a report is rendered from. size: 0 small, 1 moderate, 2 large. */
typedef struct {
    int present[RECLF_N_FINDINGS];
    int side[RECLF_N_FINDINGS];  /* SIDE_* (opacity, nodule, effusion, pneumothorax) */
    int zone[RECLF_N_FINDINGS];  /* ZONE_* (opacity, nodule, pneumothorax) */
    int size[RECLF_N_FINDINGS];
} synth_findings;

/* Generates sample `index` of `split` at size x size pixels (size >= 16). The caller frees it with
 * reclf_sample_free. val/test/zs indices must be below synth_split_count(split). */
int synth_sample(uint64_t seed, int split, long index, int size, reclf_sample *out, reclf_err *err);

/* The findings and report render seed of a sample, without drawing the image (cheap).
 * flip_finding receives the finding whose side flip_report flips (-1 when none); may be NULL. */
int synth_sample_findings(uint64_t seed, int split, long index, synth_findings *f,
                          uint64_t *render_seed, int *flip_finding, reclf_err *err);

/* The report alone (malloc'ed), e.g. to build a vocabulary without drawing images. */
int synth_sample_report(uint64_t seed, int split, long index, char **report, reclf_err *err);

/* Renders a report from findings. Template choices depend only on render_seed and on which
 * findings are present with what zone and size, never on sides: the same findings with sides
 * changed give text identical except for the side words. Returns a malloc'ed string or NULL (out
 * of memory). */
char *synth_render_report(const synth_findings *f, uint64_t render_seed);

/* Word-level left <-> right swap (SPEC §8a), keeping case ("Left" -> "Right"); works on any text.
 * Returns a malloc'ed string or NULL (out of memory). */
char *reclf_swap_sides(const char *text);
/* Number of whole words "left" or "right" (any case) in text: non-zero when it names a side. */
int reclf_names_side(const char *text);

/* Zero-shot prompts for one class: positive -> several report sentences stating the finding
 * (sizes, sides, zones and synonyms varied), otherwise its negations ("no pleural effusion.").
 * *prompts is a malloc'ed array of *n malloc'ed strings; free with synth_free_prompts. */
int synth_class_prompts(int finding, int positive, char ***prompts, int *n);
void synth_free_prompts(char **prompts, int n);

/* Index in SPLIT_ZS of the k-th sample (0 <= k < SYNTH_ZS_PER_CLASS) having exactly that one
 * finding: the 5 x 200 balanced accuracy set is {synth_single_finding_index(seed, f, k)}.
 * The seed argument is accepted for symmetry; the layout does not depend on it. -1 on bad args. */
long synth_single_finding_index(uint64_t seed, int finding, int k);

#endif
