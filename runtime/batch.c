#include "batch.h"

#include <stdlib.h>
#include <string.h>

#include "synth.h"

int batch_alloc(batch_t *b, int B, int max_T, int size, int L, reclf_err *err) {
    memset(b, 0, sizeof *b);
    b->B = B, b->T = B, b->max_T = max_T, b->size = size, b->L = L;
    b->images = calloc((size_t)B * size * size, sizeof(float));
    b->tokens = calloc((size_t)max_T * L, sizeof(int32_t));
    b->attn_mask = calloc((size_t)max_T * L, sizeof(float));
    b->word_mask = calloc((size_t)max_T * (L - 1), sizeof(float));
    b->index = calloc((size_t)B, sizeof(long));
    b->texts = calloc((size_t)max_T, sizeof(char *));
    if (!b->images || !b->tokens || !b->attn_mask || !b->word_mask || !b->index || !b->texts) {
        batch_free(b);
        return reclf_fail(err, "out of memory for a batch of %d", B);
    }
    return 0;
}

void batch_free(batch_t *b) {
    if (b->texts)
        for (int t = 0; t < b->max_T; t++) free(b->texts[t]);
    free(b->images), free(b->tokens), free(b->attn_mask), free(b->word_mask), free(b->index), free(b->texts);
    memset(b, 0, sizeof *b);
}

void batch_set_text(batch_t *b, int t, const reclf_vocab *v, const char *text) {
    int L = b->L;
    int32_t *ids = b->tokens + (size_t)t * L;
    tokenize(v, text, L, ids);
    for (int j = 0; j < L; j++) b->attn_mask[(size_t)t * L + j] = ids[j] != TOK_PAD;
    /* word slots are positions 1..L-1 (SPEC 2): real tokens count, [SEP] and [PAD] do not */
    for (int j = 1; j < L; j++) b->word_mask[(size_t)t * (L - 1) + j - 1] = ids[j] != TOK_PAD && ids[j] != TOK_SEP;
}

int batch_load(batch_t *b, const reclf_dataset *ds, const reclf_vocab *v, const long *idx, int side_swap,
               reclf_err *err) {
    int B = b->B, failed = 0;
    reclf_err first = {{0}};
    for (int t = 0; t < b->max_T; t++) free(b->texts[t]), b->texts[t] = NULL;
    #pragma omp parallel for schedule(dynamic)
    for (int i = 0; i < B; i++) {
        reclf_sample s;
        reclf_err e;
        memset(&s, 0, sizeof s);
        if (dataset_get(ds, idx[i], &s, &e) != 0) {
            #pragma omp critical
            if (!failed++) first = e;
            continue;
        }
        memcpy(b->images + (size_t)i * b->size * b->size, s.image, sizeof(float) * b->size * b->size);
        b->texts[i] = s.report, s.report = NULL;
        b->index[i] = idx[i];
        reclf_sample_free(&s);
    }
    if (failed) {
        *err = first;
        return -1;
    }
    int T = B;
    for (int i = 0; i < B && side_swap && T < b->max_T; i++)
        if (reclf_names_side(b->texts[i])) b->texts[T++] = reclf_swap_sides(b->texts[i]);
    b->T = T;
    for (int t = 0; t < T; t++) batch_set_text(b, t, v, b->texts[t]);
    return 0;
}
