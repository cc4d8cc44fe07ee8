#include "params.h"

#include <string.h>

#include "rng.h"

uint64_t params_name_hash(const char *name) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ULL;
    }
    return h;
}

int params_find(const reclf_graph *g, const char *name) {
    for (int i = 0; i < g->n_params; i++)
        if (strcmp(g->params[i].name, name) == 0) return i;
    return -1;
}

int params_validate(const reclf_graph *g, reclf_err *err) {
    const char *gname = g->name ? g->name : "(unnamed graph)";
    if (g->n_params < 0 || (g->n_params > 0 && !g->params))
        return reclf_fail(err, "graph %s: bad parameter table (n_params = %d)", gname, g->n_params);
    for (int i = 0; i < g->n_params; i++) {
        const reclf_param_desc *d = &g->params[i];
        const char *pn = d->name ? d->name : "(unnamed)";
        if (!d->name) return reclf_fail(err, "graph %s: parameter %d has no name", gname, i);
        if (d->ndim < 0 || d->ndim > RECLF_MAX_DIMS)
            return reclf_fail(err, "graph %s: parameter %s: ndim %d outside 0..%d", gname, pn, d->ndim,
                              RECLF_MAX_DIMS);
        size_t n = 1;
        for (int k = 0; k < d->ndim; k++) {
            if (d->shape[k] < 0)
                return reclf_fail(err, "graph %s: parameter %s: dimension %d is %d (parameters have fixed sizes)",
                                  gname, pn, k, d->shape[k]);
            n *= (size_t)d->shape[k];
        }
        if (n != d->numel)
            return reclf_fail(err, "graph %s: parameter %s: numel %zu but its shape holds %zu elements", gname, pn,
                              d->numel, n);
        if (d->offset > g->n_param_elems || d->numel > g->n_param_elems - d->offset)
            return reclf_fail(err, "graph %s: parameter %s: elements [%zu, %zu) outside the buffer of %zu", gname,
                              pn, d->offset, d->offset + d->numel, g->n_param_elems);
        if (d->init < RECLF_INIT_ZEROS || d->init > RECLF_INIT_NORMAL)
            return reclf_fail(err, "graph %s: parameter %s: unknown init kind %d", gname, pn, d->init);
        if ((d->init == RECLF_INIT_UNIFORM || d->init == RECLF_INIT_NORMAL) && !(d->init_arg >= 0.0))
            return reclf_fail(err, "graph %s: parameter %s: init argument %g must be >= 0", gname, pn, d->init_arg);
        for (int j = 0; j < i; j++)
            if (strcmp(g->params[j].name, d->name) == 0)
                return reclf_fail(err, "graph %s: parameter %s is declared twice", gname, pn);
    }
    return 0;
}

int params_init(const reclf_graph *g, float *params, uint64_t seed, reclf_err *err) {
    if (params_validate(g, err) != 0) return -1;
    memset(params, 0, g->n_param_elems * sizeof *params);
    for (int i = 0; i < g->n_params; i++) {
        const reclf_param_desc *d = &g->params[i];
        float *p = params + d->offset;
        rng_t r = rng_split(seed, params_name_hash(d->name));
        switch (d->init) {
        case RECLF_INIT_ZEROS:
            for (size_t k = 0; k < d->numel; k++) p[k] = 0.0f;
            break;
        case RECLF_INIT_ONES:
            for (size_t k = 0; k < d->numel; k++) p[k] = 1.0f;
            break;
        case RECLF_INIT_UNIFORM: {
            double b = d->init_arg;
            for (size_t k = 0; k < d->numel; k++) p[k] = (float)rng_uniform(&r, -b, b);
            break;
        }
        case RECLF_INIT_NORMAL: {
            double sd = d->init_arg;
            for (size_t k = 0; k < d->numel; k++) p[k] = (float)(sd * rng_normal(&r));
            break;
        }
        }
    }
    return 0;
}

int params_decay_mask(const reclf_graph *g, unsigned char *mask, reclf_err *err) {
    if (params_validate(g, err) != 0) return -1;
    memset(mask, 0, g->n_param_elems);
    for (int i = 0; i < g->n_params; i++) {
        const reclf_param_desc *d = &g->params[i];
        if (d->decay) memset(mask + d->offset, 1, d->numel);
    }
    return 0;
}
