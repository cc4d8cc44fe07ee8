/* A model in memory: its graph, parameters, optimiser state, vocabulary and arena. Training,
 * the debug dump and the evaluations all start from one of these. */
#ifndef RECLF_SESSION_H
#define RECLF_SESSION_H
#include "batch.h"
#include "checkpoint.h"
#include "common.h"
#include "graph_abi.h"
#include "model.h"
#include "tokenizer.h"

typedef struct {
    const reclf_graph *g;
    model_config cfg;
    float *params, *grads, *m, *v;  /* n_param_elems each (m, v only when training) */
    reclf_vocab vocab;
    int have_vocab;
    void *arena;
    size_t arena_size;
    long step;                      /* updates taken */
    int sym_B, sym_T;               /* indices of the run-time sizes B and T */
} session;

/* The standard inputs the runtime provides to training graphs. */
extern const char *const session_train_inputs[];

int session_open(session *s, const char *model, int with_optimizer, reclf_err *err);
/* Loads a checkpoint (weights, and the optimiser state when the session has one). */
int session_load(session *s, const char *path, ckpt_meta *meta, reclf_err *err);
int session_save(const session *s, const char *path, const char *config_json, reclf_err *err);
/* Makes sure the arena holds the graph at these sizes. */
int session_reserve(session *s, long B, long T, reclf_err *err);
/* forward (and backward when grads is wanted) of the training graph on a batch; returns the loss */
int session_step(session *s, const batch_t *b, int backward, double *loss, reclf_err *err);
void session_close(session *s);

#endif
