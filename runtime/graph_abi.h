/* The ABI between the compiler's generated modules (generated/<graph>.c) and the runtime.
 *
 * A generated module describes one compiled graph: its run-time sizes (the batch dimensions),
 * its parameters (packed one after another in a single buffer, in table order), its inputs and
 * outputs, and two entry points. forward() fills the arena and the outputs; backward(), called
 * right after forward() on the same arena, writes d(output 0)/d(parameter) for every parameter
 * (overwriting `grads`) and, where asked, d(output 0)/d(input) for real-valued inputs.
 * Output 0 is the scalar loss of a training graph.
 *
 * The element type is `real`: float by default, double when built with -DREAL_DOUBLE (the
 * gradient checks do this), so one generated file serves both. */
#ifndef RECLF_GRAPH_ABI_H
#define RECLF_GRAPH_ABI_H
#include <stddef.h>

#ifdef REAL_DOUBLE
typedef double real;
#else
typedef float real;
#endif

#define RECLF_MAX_DIMS 6
#define RECLF_MAX_SYMS 4

enum reclf_dtype { RECLF_REAL = 0, RECLF_INT32 = 1 };
enum reclf_init { RECLF_INIT_ZEROS = 0, RECLF_INIT_ONES = 1, RECLF_INIT_UNIFORM = 2, RECLF_INIT_NORMAL = 3 };

/* A shape entry >= 0 is a fixed size; a negative entry -1-k is the run-time size dims[k]. */
typedef struct {
    const char *name;
    int dtype;                   /* enum reclf_dtype */
    int ndim;
    int shape[RECLF_MAX_DIMS];
    int needs_grad;              /* real inputs whose gradient backward() can produce */
    int int_max;                 /* int32 inputs: values lie in [0, int_max) (gradient checks use it) */
    const char *role;            /* "data", "mask" (0/1 values) or "target" */
} reclf_tensor_desc;

typedef struct {
    const char *name;            /* SPEC 8b names, e.g. "image.stem.weight" */
    int ndim;
    int shape[RECLF_MAX_DIMS];   /* fixed sizes only */
    size_t offset;               /* into the packed parameter buffer, in elements */
    size_t numel;
    int init;                    /* enum reclf_init */
    double init_arg;             /* UNIFORM: bound b of U(-b, b); NORMAL: standard deviation */
    int decay;                   /* 1 when AdamW's weight decay applies */
    const char *source;          /* graph file:line that declared it */
} reclf_param_desc;

typedef struct reclf_graph {
    const char *name;            /* graph name as given to `bin/reclf train --model` */
    int n_syms;                  /* run-time sizes, e.g. {"B", "T"} */
    const char *const *sym_names;
    int n_params;
    const reclf_param_desc *params;
    size_t n_param_elems;        /* total elements of the packed parameter buffer */
    int n_inputs;
    const reclf_tensor_desc *inputs;
    int n_outputs;
    const reclf_tensor_desc *outputs;
    const char *config_json;     /* the graph's compile-time configuration, as JSON */
    /* bytes of arena needed for the given run-time sizes (forward and backward together) */
    size_t (*arena_bytes)(const long *dims);
    void (*forward)(void *arena, const real *params, void *const *inputs, const long *dims);
    /* grads: n_param_elems values, overwritten. input_grads[k] may be NULL (not wanted) or point
     * at a buffer of input k's size, overwritten; the array itself may be NULL. */
    void (*backward)(void *arena, real *grads, const real *params, void *const *inputs,
                     real *const *input_grads, const long *dims);
    /* where output k lives after forward(), inside the arena */
    const real *(*output)(const void *arena, int k, const long *dims);
} reclf_graph;

/* generated/registry.c lists every compiled graph; the array ends with NULL. */
extern const reclf_graph *const reclf_graphs[];

/* Entry points whose generated code is another graph's but for the name (the encoders, shared by
 * every variant) are compiled once and listed here; the array ends with {0, 0}. */
typedef struct {
    const char *name;
    const reclf_graph *graph;
} reclf_graph_alias;
extern const reclf_graph_alias reclf_graph_aliases[];

#endif
