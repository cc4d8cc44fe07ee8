/* One image-report pair as the training and evaluation code sees it, whatever its source
 * (SynthCXR generator or a CSV manifest of real data, SPEC §9). */
#ifndef RECLF_SAMPLE_H
#define RECLF_SAMPLE_H

#define RECLF_N_FINDINGS 5

/* Finding order used by labels[], side[], zone[] and masks: opacity, nodule, effusion,
 * pneumothorax, cardiomegaly (also the manifest's label column names). */
enum { FINDING_OPACITY = 0, FINDING_NODULE = 1, FINDING_EFFUSION = 2, FINDING_PNEUMOTHORAX = 3,
       FINDING_CARDIOMEGALY = 4 };
extern const char *const reclf_finding_names[RECLF_N_FINDINGS];

/* Label values: 1 present, 0 absent; manifests may also hold these two. */
#define RECLF_LABEL_UNCERTAIN (-1)
#define RECLF_LABEL_MISSING (-2)

/* side[]: 0 none, 1 left, 2 right (the patient's side; the patient's left is the image's right).
 * zone[]: 0 none, 1 upper, 2 lower. */
enum { SIDE_NONE = 0, SIDE_LEFT = 1, SIDE_RIGHT = 2 };
enum { ZONE_NONE = 0, ZONE_UPPER = 1, ZONE_LOWER = 2 };

typedef struct {
    int size;              /* the image is size x size */
    float *image;          /* size*size grey values in [0,1], row-major */
    char *report;
    char *mirror_report;   /* every left <-> right swapped (always set) */
    char *flip_report;     /* one lateralised finding's side flipped; NULL when there is none
                              (and always NULL for manifest data, whose findings are unknown) */
    int labels[RECLF_N_FINDINGS];
    int side[RECLF_N_FINDINGS];
    int zone[RECLF_N_FINDINGS];
    int is_binding;        /* two lateralised findings on different sides */
    int has_mask;          /* mask_union is set */
    float *masks;          /* 5 x size x size 0/1 values, per finding; NULL for manifest data */
    float *mask_union;     /* size x size 0/1 values; NULL when has_mask is 0 */
} reclf_sample;

/* Frees everything the sample owns and zeroes it (safe on a zeroed or already-freed sample). */
void reclf_sample_free(reclf_sample *s);

#endif
