/* Assembling a training batch: images, token ids and masks in the layouts of the standard graph
 * inputs (SPEC 1, 2, 8a, 8b), from a dataset. */
#ifndef RECLF_BATCH_H
#define RECLF_BATCH_H
#include <stdint.h>
#include "common.h"
#include "dataset.h"
#include "tokenizer.h"

typedef struct {
    int B;            /* images (and their own reports) */
    int T;            /* texts: B own reports, then T - B side-swapped negatives (SPEC 8a) */
    int max_T;
    int size, L;      /* image side, token positions */
    float *images;    /* [B, 1, size, size] in [0, 1] (the graph normalises) */
    int32_t *tokens;  /* [max_T, L] */
    float *attn_mask; /* [max_T, L]: 1 on every token but [PAD] */
    float *word_mask; /* [max_T, L-1]: positions 1..L-1, 1 on real tokens, 0 on [SEP] and [PAD] */
    long *index;      /* [B]: the dataset index of each image */
    char **texts;     /* [max_T]: the texts, owned */
} batch_t;

int batch_alloc(batch_t *b, int B, int max_T, int size, int L, reclf_err *err);
void batch_free(batch_t *b);
/* Fills the batch with samples idx[0..B-1] (loaded in parallel). side_swap adds, after the B
 * reports, a copy of each report that names a side with left <-> right swapped. */
int batch_load(batch_t *b, const reclf_dataset *ds, const reclf_vocab *v, const long *idx, int side_swap,
               reclf_err *err);
/* Tokenises text into row t of the batch (tokens, attention and word masks). */
void batch_set_text(batch_t *b, int t, const reclf_vocab *v, const char *text);

#endif
