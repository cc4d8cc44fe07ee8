/* bin/reclf dump: the debug state of a checkpoint (as llm.c's PyTorch debug state): one fixed
 * batch, the loss, and the gradient of every parameter under its own SPEC 8b name, so that any
 * other implementation of SPEC can be checked against ours (bench/torch/check_dump.py does). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "commands.h"
#include "dataset.h"
#include "safetensors.h"
#include "session.h"
#include "synth.h"

static const char *USAGE =
    "usage: reclf dump --ckpt FILE --out STATE.safetensors [--data synth|MANIFEST] [--batch B] [--seed S]\n"
    "  writes batch.images [B,1,S,S] (in [0,1], before SPEC 1's normalisation), batch.tokens [B,L] (int32),\n"
    "  batch.attn_mask [B,L], batch.word_mask [B,L-1], loss [] and grad.<parameter> for every parameter;\n"
    "  the batch is the first B samples of the validation split (default B = 8)\n";

int cmd_dump(int argc, char **argv) {
    const char *ckpt = NULL, *out = NULL, *data = "synth";
    int B = 8;
    unsigned long long seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { fputs(USAGE, stdout); return 0; }
        if (!v) { fprintf(stderr, "reclf dump: %s needs a value\n%s", a, USAGE); return 2; }
        if (!strcmp(a, "--ckpt")) ckpt = v;
        else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--batch")) B = atoi(v);
        else if (!strcmp(a, "--seed")) seed = strtoull(v, NULL, 10);
        else { fprintf(stderr, "reclf dump: unknown option '%s'\n%s", a, USAGE); return 2; }
        i++;
    }
    if (!ckpt || !out || B < 2) { fputs(USAGE, stderr); return 2; }

    reclf_err err = {{0}};
    st_file f;
    if (st_open(ckpt, &f, &err) != 0) { fprintf(stderr, "reclf dump: %s\n", err.msg); return 1; }
    const char *model = st_meta(&f, "model");
    char name[256];
    snprintf(name, sizeof name, "%s", model ? model : "");
    st_close(&f);
    if (!name[0]) { fprintf(stderr, "reclf dump: %s: no 'model' in the metadata: not a reclf checkpoint\n", ckpt); return 1; }

    session s;
    reclf_dataset ds;
    batch_t b;
    int rc = 1;
    if (session_open(&s, name, 0, &err) != 0) { fprintf(stderr, "reclf dump: %s\n", err.msg); return 1; }
    ckpt_meta meta;
    memset(&meta, 0, sizeof meta);
    if (session_load(&s, ckpt, &meta, &err) != 0 || !s.have_vocab) {
        fprintf(stderr, "reclf dump: %s\n", err.msg[0] ? err.msg : "checkpoint without vocabulary");
        ckpt_meta_free(&meta);
        session_close(&s);
        return 1;
    }
    ckpt_meta_free(&meta);
    if (dataset_open(&ds, data, SPLIT_VAL, s.cfg.image, seed, 0, &err) != 0) {
        fprintf(stderr, "reclf dump: %s\n", err.msg);
        session_close(&s);
        return 1;
    }
    long *idx = malloc(sizeof(long) * (size_t)B);
    for (int i = 0; i < B; i++) idx[i] = i;
    double loss = 0;
    st_writer w;
    st_writer_init(&w);
    if (batch_alloc(&b, B, B, s.cfg.image, s.cfg.seq_len, &err) != 0) goto fail_batch;
    if (batch_load(&b, &ds, &s.vocab, idx, 0, &err) != 0 || session_step(&s, &b, 1, &loss, &err) != 0) goto fail;
    {
        int L = s.cfg.seq_len, S = s.cfg.image;
        int64_t sh_img[] = {B, 1, S, S}, sh_tok[] = {B, L}, sh_wm[] = {B, L - 1};
        float lossf = (float)loss;
        if (st_writer_add(&w, "batch.images", ST_F32, 4, sh_img, b.images, &err) ||
            st_writer_add(&w, "batch.tokens", ST_I32, 2, sh_tok, b.tokens, &err) ||
            st_writer_add(&w, "batch.attn_mask", ST_F32, 2, sh_tok, b.attn_mask, &err) ||
            st_writer_add(&w, "batch.word_mask", ST_F32, 2, sh_wm, b.word_mask, &err) ||
            st_writer_add(&w, "loss", ST_F32, 0, NULL, &lossf, &err))
            goto fail;
        for (int p = 0; p < s.g->n_params; p++) {
            const reclf_param_desc *d = &s.g->params[p];
            char tname[512];
            int64_t shape[RECLF_MAX_DIMS];
            for (int k = 0; k < d->ndim; k++) shape[k] = d->shape[k];
            snprintf(tname, sizeof tname, "grad.%s", d->name);
            if (st_writer_add(&w, tname, ST_F32, d->ndim, shape, s.grads + d->offset, &err)) goto fail;
        }
        if (st_writer_meta(&w, "format", "reclf-debug-state-1", &err) || st_writer_meta(&w, "model", name, &err) ||
            st_writer_meta(&w, "checkpoint", ckpt, &err) || st_writer_write(&w, out, &err))
            goto fail;
    }
    printf("%s: batch of %d from %s (validation split), loss %.6f, %d parameter gradients\n", out, B, data, loss,
           s.g->n_params);
    rc = 0;
fail:
    batch_free(&b);
fail_batch:
    if (rc) fprintf(stderr, "reclf dump: %s\n", err.msg);
    st_writer_free(&w);
    free(idx);
    dataset_close(&ds);
    session_close(&s);
    return rc;
}
