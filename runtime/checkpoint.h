/* Training checkpoints: one .safetensors file (written atomically) holding
 *   - every parameter under its SPEC §8b name, F32, with the graph's shape;
 *   - the AdamW moments as "optim.m.<name>" and "optim.v.<name>" (same shapes), when given;
 *   - metadata: "format" (CKPT_FORMAT), "model" (graph name), "step", "rng" (generator state as
 *     text, see rng_to_text), "vocab" and "config" (strings passed through unchanged).
 * Tensors appear in the graph's parameter order, then all m, then all v, so saving the same state
 * twice gives byte-identical files. The parameter tensors load into a PyTorch module as they are
 * (safetensors.torch.load_file). */
#ifndef RECLF_CHECKPOINT_H
#define RECLF_CHECKPOINT_H
#include "common.h"
#include "graph_abi.h"

#define CKPT_FORMAT "reclf-checkpoint-1"

typedef struct {
    char model[256];  /* load: the "model" metadata; save: ignored (the graph's name is written) */
    long step;        /* updates taken so far */
    char rng[256];    /* generator state as text ("" when none) */
    char *vocab;      /* save: may be NULL (written as ""); load: malloc'ed, free with ckpt_meta_free */
    char *config;     /* JSON text; same ownership rules as vocab */
    int has_moments;  /* load: 1 when the file holds optim.m.* and optim.v.* for every parameter */
} ckpt_meta;

/* m and v may both be NULL (weights only); otherwise both must be given. */
int ckpt_save(const char *path, const reclf_graph *g, const float *params, const float *m, const float *v,
              const ckpt_meta *meta, reclf_err *err);

/* Loads a checkpoint of graph g: the "model" metadata must equal g->name, and every parameter
 * must be present as F32 with g's shape. m and v (nullable, both or neither) ask for the
 * moments too, which must then be present; pass NULL to load weights only (evaluation).
 * meta (nullable) receives the metadata; free it with ckpt_meta_free. On error nothing useful is
 * in params/m/v and meta is left empty. */
int ckpt_load(const char *path, const reclf_graph *g, float *params, float *m, float *v, ckpt_meta *meta,
              reclf_err *err);

/* Loads into g's buffer every parameter of g that the file has under the same name (the
 * evaluation graphs reuse the training graph's names), checking dtype F32 and shape. Ignores the
 * model name and the other tensors. strict = 1: every parameter of g must be in the file;
 * strict = 0: missing ones are left as they are in params (e.g. freshly initialised heads).
 * n_loaded (nullable) receives the number of parameters loaded. */
int ckpt_load_params_by_name(const char *path, const reclf_graph *g, float *params, int strict, int *n_loaded,
                             reclf_err *err);

void ckpt_meta_free(ckpt_meta *meta);

#endif
