#include "model.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

const reclf_graph *model_find(const char *name) {
    for (int i = 0; reclf_graphs[i]; i++)
        if (strcmp(reclf_graphs[i]->name, name) == 0) return reclf_graphs[i];
    for (int i = 0; reclf_graph_aliases[i].name; i++)
        if (strcmp(reclf_graph_aliases[i].name, name) == 0) return reclf_graph_aliases[i].graph;
    return NULL;
}

void model_list(void *f) {
    for (int i = 0; reclf_graphs[i]; i++)
        if (!strchr(reclf_graphs[i]->name, '.')) fprintf((FILE *)f, " %s", reclf_graphs[i]->name);
}

int model_config_read(const reclf_graph *g, model_config *cfg, reclf_err *err) {
    json_error_t jerr;
    json_t *root = json_loads(g->config_json, 0, &jerr);
    if (!root) return reclf_fail(err, "graph %s: bad configuration JSON: %s", g->name, jerr.text);
    const char *keys[] = {"image", "seq_len", "vocab", "width"};
    int *dst[] = {&cfg->image, &cfg->seq_len, &cfg->vocab, &cfg->width};
    for (int i = 0; i < 4; i++) {
        json_t *v = json_object_get(root, keys[i]);
        if (!json_is_integer(v)) {
            json_decref(root);
            return reclf_fail(err, "graph %s: configuration has no integer '%s'", g->name, keys[i]);
        }
        *dst[i] = (int)json_integer_value(v);
    }
    json_decref(root);
    return 0;
}

int model_input(const reclf_graph *g, const char *name) {
    for (int i = 0; i < g->n_inputs; i++)
        if (strcmp(g->inputs[i].name, name) == 0) return i;
    return -1;
}

int model_output(const reclf_graph *g, const char *name) {
    for (int i = 0; i < g->n_outputs; i++)
        if (strcmp(g->outputs[i].name, name) == 0) return i;
    return -1;
}

size_t model_numel(const reclf_tensor_desc *t, const long *dims) {
    size_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= (size_t)(t->shape[d] >= 0 ? t->shape[d] : dims[-1 - t->shape[d]]);
    return n;
}

int model_sym(const reclf_graph *g, const char *sym) {
    for (int i = 0; i < g->n_syms; i++)
        if (strcmp(g->sym_names[i], sym) == 0) return i;
    return -1;
}

int model_check_inputs(const reclf_graph *g, const char *const *known, reclf_err *err) {
    for (int i = 0; i < g->n_inputs; i++) {
        int ok = 0;
        for (int k = 0; known[k]; k++) ok |= strcmp(g->inputs[i].name, known[k]) == 0;
        if (!ok) {
            char list[512] = "";
            for (int k = 0; known[k]; k++) {
                strncat(list, k ? ", " : "", sizeof list - strlen(list) - 1);
                strncat(list, known[k], sizeof list - strlen(list) - 1);
            }
            return reclf_fail(err, "graph %s needs input '%s', which the runtime does not provide (it provides: %s)",
                              g->name, g->inputs[i].name, list);
        }
    }
    return 0;
}
