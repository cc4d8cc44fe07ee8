/* Real data through a CSV manifest (SPEC §9):
 *   image,report,split,opacity,nodule,effusion,pneumothorax,cardiomegaly[,mask]
 * Columns are found by name in any order (extra columns are ignored); paths are relative to the
 * CSV's folder; labels are 1, 0, -1 (uncertain) or empty (missing, stored as -2). The parser
 * follows RFC 4180 (quoted fields with commas, doubled quotes and line breaks), accepts CRLF and a
 * UTF-8 byte-order mark, and rejects invalid UTF-8. Rows are counted in CSV records, the header
 * being row 1; every error names path:row and the column. */
#ifndef RECLF_MANIFEST_H
#define RECLF_MANIFEST_H
#include <stdint.h>

#include "common.h"
#include "sample.h"

typedef struct {
    char *image;       /* path as written in the CSV */
    char *image_path;  /* resolved against the CSV's folder */
    char *mask;        /* as written, NULL when absent/empty */
    char *mask_path;   /* resolved, NULL when absent */
    char *report;
    int split;         /* SPLIT_TRAIN, SPLIT_VAL or SPLIT_TEST (synth.h) */
    int labels[RECLF_N_FINDINGS];
    long csv_row;      /* record number in the file (header = 1) */
} reclf_manifest_row;

typedef struct {
    char *path;
    char *dir;                 /* folder the paths are relative to */
    reclf_manifest_row *rows;
    long n_rows;
    long *split_rows[3];       /* indices into rows, per split */
    long n_split[3];
    long n_skipped;            /* bad rows skipped with skip_bad */
    char **skipped_msgs;       /* their messages ("path:row: column 'x': ...") */
} reclf_manifest;

/* Loads and validates a manifest. Checks that every image (and mask) file exists and is
 * readable; decoding happens in manifest_sample. With skip_bad, bad rows are skipped and
 * counted (their messages kept); without it the first bad row is an error. Problems with the
 * file as a whole (unreadable, bad header, unterminated quote) are errors either way. */
int manifest_load(const char *path, reclf_manifest *m, int skip_bad, reclf_err *err);
void manifest_free(reclf_manifest *m);

/* Row index (into m->rows) of the i-th row of a split; -1 when out of range. */
long manifest_split_row(const reclf_manifest *m, int split, long i);

/* Loads row `row` as a sample at size x size: image (and mask) decoded and resized; the mask is
 * binarised at 0.5 and must have the image's size. mirror_report is the side-swapped report,
 * flip_report is NULL, side/zone are 0 (unknown), masks is NULL. Thread-safe. */
int manifest_sample(const reclf_manifest *m, long row, int size, reclf_sample *out, reclf_err *err);

/* Writes n SynthCXR samples of a split (indices 0..n-1) in manifest form under dir:
 * dir/images/NNNNN.png, dir/masks/NNNNN.png (union mask) and dir/manifest.csv. The output is a
 * function of (seed, split, n, size) alone: the same arguments give identical bytes. */
int manifest_write_synth(const char *dir, uint64_t seed, int split, long n, int size, reclf_err *err);

/* Appends one CSV field to buf (quoting it if it holds a comma, quote, CR/LF or edge spaces).
 * Returns 0 or -1 on out of memory. buf/len/cap describe a malloc'ed growable buffer. */
int manifest_csv_field(char **buf, size_t *len, size_t *cap, const char *field);

#endif
