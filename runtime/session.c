#include "session.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "params.h"

const char *const session_train_inputs[] = {"images", "tokens", "attn_mask", "word_mask", NULL};

int session_open(session *s, const char *model, int with_optimizer, reclf_err *err) {
    memset(s, 0, sizeof *s);
    s->g = model_find(model);
    if (!s->g) {
        char list[1024] = "";
        for (int i = 0; reclf_graphs[i]; i++)
            if (!strchr(reclf_graphs[i]->name, '.') && strlen(list) + strlen(reclf_graphs[i]->name) + 2 < sizeof list) {
                strcat(list, " ");
                strcat(list, reclf_graphs[i]->name);
            }
        return reclf_fail(err, "no model called '%s' (compiled graphs:%s); add graphs/%s.lua and run `make generate`",
                          model, list, model);
    }
    if (s->g->n_outputs < 1 || strcmp(s->g->outputs[0].name, "loss") != 0)
        return reclf_fail(err, "graph %s has no loss output: it cannot be trained", model);
    if (model_check_inputs(s->g, session_train_inputs, err) != 0) return -1;
    if (model_config_read(s->g, &s->cfg, err) != 0) return -1;
    if (params_validate(s->g, err) != 0) return -1;
    s->sym_B = model_sym(s->g, "B");
    s->sym_T = model_sym(s->g, "T");
    size_t n = s->g->n_param_elems;
    s->params = calloc(n, sizeof(float));
    s->grads = calloc(n, sizeof(float));
    if (with_optimizer) {
        s->m = calloc(n, sizeof(float));
        s->v = calloc(n, sizeof(float));
    }
    if (!s->params || !s->grads || (with_optimizer && (!s->m || !s->v))) {
        session_close(s);
        return reclf_fail(err, "out of memory for %zu parameters", n);
    }
    return 0;
}

int session_load(session *s, const char *path, ckpt_meta *meta, reclf_err *err) {
    if (ckpt_load(path, s->g, s->params, s->m, s->v, meta, err) != 0) return -1;
    s->step = meta->step;
    if (meta->vocab && meta->vocab[0]) {
        if (vocab_deserialize(&s->vocab, meta->vocab, err) != 0) return -1;
        s->have_vocab = 1;
    }
    return 0;
}

int session_save(const session *s, const char *path, const char *config_json, reclf_err *err) {
    ckpt_meta meta;
    memset(&meta, 0, sizeof meta);
    meta.step = s->step;
    char *vocab = s->have_vocab ? vocab_serialize(&s->vocab) : NULL;
    meta.vocab = vocab;
    meta.config = (char *)config_json;
    int rc = ckpt_save(path, s->g, s->params, s->m, s->v, &meta, err);
    free(vocab);
    return rc;
}

int session_reserve(session *s, long B, long T, reclf_err *err) {
    long dims[RECLF_MAX_SYMS] = {0};
    if (s->sym_B >= 0) dims[s->sym_B] = B;
    if (s->sym_T >= 0) dims[s->sym_T] = T;
    size_t need = s->g->arena_bytes(dims);
    if (need <= s->arena_size) return 0;
    free(s->arena);
    s->arena = aligned_alloc(64, (need + 63) / 64 * 64);
    if (!s->arena) {
        s->arena_size = 0;
        return reclf_fail(err, "cannot allocate the %.1f MiB arena for batch %ld", need / 1048576.0, B);
    }
    s->arena_size = need;
    return 0;
}

int session_step(session *s, const batch_t *b, int backward, double *loss, reclf_err *err) {
    long dims[RECLF_MAX_SYMS] = {0};
    if (s->sym_B >= 0) dims[s->sym_B] = b->B;
    if (s->sym_T >= 0) dims[s->sym_T] = b->T;
    else if (b->T != b->B) return reclf_fail(err, "graph %s has no text count T: side-swap negatives need one", s->g->name);
    if (session_reserve(s, b->B, b->T, err) != 0) return -1;
    void *inputs[8] = {0};
    for (int i = 0; i < s->g->n_inputs; i++) {
        const char *name = s->g->inputs[i].name;
        if (!strcmp(name, "images")) inputs[i] = b->images;
        else if (!strcmp(name, "tokens")) inputs[i] = b->tokens;
        else if (!strcmp(name, "attn_mask")) inputs[i] = b->attn_mask;
        else if (!strcmp(name, "word_mask")) inputs[i] = b->word_mask;
    }
    /* token ids index the embedding: an id past its rows would read out of bounds */
    for (size_t i = 0; i < (size_t)b->T * b->L; i++)
        if (b->tokens[i] < 0 || b->tokens[i] >= s->cfg.vocab)
            return reclf_fail(err, "token id %d is outside the model's vocabulary of %d", b->tokens[i], s->cfg.vocab);
    s->g->forward(s->arena, s->params, inputs, dims);
    *loss = s->g->output(s->arena, 0, dims)[0];
    if (backward) s->g->backward(s->arena, s->grads, s->params, inputs, NULL, dims);
    return 0;
}

void session_close(session *s) {
    free(s->params), free(s->grads), free(s->m), free(s->v), free(s->arena);
    if (s->have_vocab) vocab_free(&s->vocab);
    memset(s, 0, sizeof *s);
}
