/* Parameter initialisation and the weight-decay mask, from a graph's parameter table
 * (reclf_param_desc: name, shape, offset into the packed buffer, init kind, decay flag). */
#ifndef RECLF_PARAMS_H
#define RECLF_PARAMS_H
#include <stdint.h>

#include "common.h"
#include "graph_abi.h"

/* Checks the table: offsets and sizes inside n_param_elems, numel = product(shape), known init,
 * no two parameters with the same name. Errors name the graph and the parameter. */
int params_validate(const reclf_graph *g, reclf_err *err);

/* Fills params (g->n_param_elems floats) from each descriptor: ZEROS, ONES, UNIFORM(-b, b) with
 * b = init_arg, NORMAL(0, std) with std = init_arg. Deterministic for a seed, and each parameter
 * draws from its own stream rng_split(seed, hash(name)), so a parameter's initial value depends
 * only on (seed, its name, its size): it does not change when other parameters are added,
 * removed or reordered, and two graphs sharing a name start that parameter alike.
 * Elements of the buffer covered by no parameter are set to 0. */
int params_init(const reclf_graph *g, float *params, uint64_t seed, reclf_err *err);

/* mask[i] = 1 when element i of the packed buffer belongs to a parameter with decay = 1, else 0.
 * mask has g->n_param_elems entries. */
int params_decay_mask(const reclf_graph *g, unsigned char *mask, reclf_err *err);

/* Index of the parameter called `name`, or -1. */
int params_find(const reclf_graph *g, const char *name);

/* 64-bit FNV-1a hash of a name: the stream id that params_init uses for it. */
uint64_t params_name_hash(const char *name);

#endif
