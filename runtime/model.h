/* Finding a compiled graph by name and reading its configuration, and binding the standard
 * inputs (SPEC 1-2) to buffers. Nothing here knows a particular model: a new graph file with the
 * standard inputs is picked up by `make generate` and works here unchanged. */
#ifndef RECLF_MODEL_H
#define RECLF_MODEL_H
#include "common.h"
#include "graph_abi.h"

typedef struct {
    int image;    /* input image side */
    int seq_len;  /* L: token positions per report */
    int vocab;    /* rows of the token embedding */
    int width;    /* d */
} model_config;

/* The graph called `name` ("reclf", "reclf.image", ...), or NULL. */
const reclf_graph *model_find(const char *name);
/* Prints every compiled graph's name to f (for error messages). */
void model_list(void *f);
/* Reads image, seq_len, vocab and width from the graph's configuration JSON. */
int model_config_read(const reclf_graph *g, model_config *cfg, reclf_err *err);
/* Index of the input called `name`, or -1. */
int model_input(const reclf_graph *g, const char *name);
int model_output(const reclf_graph *g, const char *name);
/* Number of elements of tensor desc for the given run-time sizes. */
size_t model_numel(const reclf_tensor_desc *t, const long *dims);
/* Index of run-time size `sym` ("B", "T") or -1. */
int model_sym(const reclf_graph *g, const char *sym);
/* Checks that every input of g is one the runtime can provide (names in `known`, NULL-ended). */
int model_check_inputs(const reclf_graph *g, const char *const *known, reclf_err *err);

#endif
