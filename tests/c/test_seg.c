/* Tests of the SPEC §10 segmentation task (runtime/seg_task.c) on the graphs of graphs/seg.lua
 * ("seg", "seg.finetune", "seg.predict", compiled by `make generate`). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "metrics.h"
#include "params.h"
#include "seg_task.h"
#include "synth.h"

static void open_ok(seg_model *sm, int finetune, int batch) {
    reclf_err err = {{0}};
    cr_assert_eq(seg_model_open(sm, finetune, batch, &err), 0, "%s", err.msg);
}

/* fills the model's batch with SynthCXR training samples; with `masked`, only samples whose union
 * mask is non-empty (so a constant prediction cannot score well on them) */
static void fill_batch(seg_model *sm, int masked) {
    size_t px = (size_t)sm->size * sm->size;
    long idx = 0;
    for (int i = 0; i < sm->batch; idx++) {
        reclf_sample s;
        reclf_err err = {{0}};
        cr_assert_eq(synth_sample(7, SPLIT_TRAIN, idx, sm->size, &s, &err), 0, "%s", err.msg);
        cr_assert(s.has_mask && s.mask_union);
        double area = 0;
        for (size_t k = 0; k < px; k++) area += s.mask_union[k];
        if (!masked || area > 0) {
            memcpy(sm->images + i * px, s.image, sizeof(float) * px);
            memcpy(sm->masks + i * px, s.mask_union, sizeof(float) * px);
            i++;
        }
        reclf_sample_free(&s);
        cr_assert_lt(idx, 1000, "no masked samples among the first 1000");
    }
}

/* A few updates per fraction on a random encoder: Dice in [0, 1], the sizes as documented, and
 * the same numbers twice. */
Test(seg, end_to_end_deterministic, .timeout = 600) {
    seg_task_opts o;
    seg_task_defaults(&o);
    cr_assert_eq(o.steps, 300);
    cr_assert_eq(o.batch, 16);
    cr_assert_eq(o.pool, 10000);
    o.steps = 2;
    o.batch = 2;
    o.pool = 250;
    o.limit_test = 16;
    o.seed = 3;
    o.quiet = 1;
    seg_task_result a, b;
    reclf_err err = {{0}};
    cr_assert_eq(seg_task_run(&o, &a, &err), 0, "%s", err.msg);
    cr_assert_eq(seg_task_run(&o, &b, &err), 0, "%s", err.msg);
    const long want_n[3] = {3, 25, 250}; /* round(0.01 * 250) = 2.5 -> 3 (half away from zero) */
    const double want_f[3] = {0.01, 0.10, 1.00};
    cr_assert_eq(a.n_test, 16);
    for (int k = 0; k < 3; k++) {
        cr_assert_eq(a.n_train[k], want_n[k], "fraction %d: %ld training masks", k, a.n_train[k]);
        cr_assert_float_eq(a.fraction[k], want_f[k], 1e-15);
        cr_assert(a.dice[k] >= 0.0 && a.dice[k] <= 1.0, "Dice %g", a.dice[k]);
        cr_assert_eq(a.dice[k], b.dice[k], "fraction %d: Dice %.17g then %.17g", k, a.dice[k], b.dice[k]);
    }
}

Test(seg, rejects_bad_options) {
    seg_task_opts o;
    seg_task_defaults(&o);
    seg_task_result r;
    reclf_err err = {{0}};
    o.steps = 0;
    cr_assert_neq(seg_task_run(&o, &r, &err), 0);
    cr_assert(strstr(err.msg, "steps") != NULL, "%s", err.msg);
    seg_task_defaults(&o);
    o.ckpt = "/nonexistent/ckpt.safetensors";
    o.quiet = 1;
    cr_assert_neq(seg_task_run(&o, &r, &err), 0);
    cr_assert(strstr(err.msg, "/nonexistent/ckpt.safetensors") != NULL, "%s", err.msg);
}

/* The frozen graph's detach: with the same parameters and batch as seg.finetune, the loss and the
 * decoder's gradients agree, the encoder's gradients are exactly zero (and not in finetune), and
 * an update moves the decoder but leaves every image.* parameter bit for bit as it was. */
Test(seg, frozen_encoder_gets_no_gradient, .timeout = 600) {
    seg_model fz, ft;
    open_ok(&fz, 0, 2);
    open_ok(&ft, 1, 2);
    reclf_err err = {{0}};
    cr_assert(fz.frozen && !ft.frozen);
    cr_assert_eq(fz.g->n_param_elems, ft.g->n_param_elems);
    cr_assert_eq(seg_model_init(&fz, 5, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(seg_model_init(&ft, 5, NULL, &err), 0, "%s", err.msg);
    fill_batch(&fz, 0);
    size_t px = (size_t)fz.size * fz.size * fz.batch;
    memcpy(ft.images, fz.images, sizeof(float) * px);
    memcpy(ft.masks, fz.masks, sizeof(float) * px);
    double lz, lt;
    cr_assert_eq(seg_model_forward_backward(&fz, 2, 1, &lz, &err), 0, "%s", err.msg);
    cr_assert_eq(seg_model_forward_backward(&ft, 2, 1, &lt, &err), 0, "%s", err.msg);
    cr_assert(isfinite(lz) && lz > 0, "loss %g", lz);
    cr_assert_float_eq(lz, lt, 1e-6 * fabs(lt));
    int n_image = 0, n_seg = 0;
    for (int i = 0; i < fz.g->n_params; i++) {
        const reclf_param_desc *d = &fz.g->params[i];
        int j = params_find(ft.g, d->name);
        cr_assert_geq(j, 0, "%s missing from seg.finetune", d->name);
        const float *gz = fz.grads + d->offset, *gt = ft.grads + ft.g->params[j].offset;
        double maxz = 0, maxt = 0, diff = 0;
        for (size_t k = 0; k < d->numel; k++) {
            maxz = fmax(maxz, fabs(gz[k]));
            maxt = fmax(maxt, fabs(gt[k]));
            diff = fmax(diff, fabs(gz[k] - gt[k]));
        }
        if (!strncmp(d->name, "image.", 6)) {
            cr_assert_eq(maxz, 0.0, "%s: frozen gradient %g", d->name, maxz);
            /* the region and global projections do not reach the segmentation loss at all */
            if (!strstr(d->name, "_proj.")) cr_assert_gt(maxt, 0.0, "%s: no gradient in finetune", d->name);
            n_image++;
        } else {
            cr_assert_eq(strncmp(d->name, "seg.", 4), 0, "decoder parameter %s is not named seg.*", d->name);
            cr_assert_gt(maxt, 0.0, "%s: zero gradient", d->name);
            cr_assert_leq(diff, 1e-4 * maxt, "%s: frozen and finetune gradients differ by %g (max %g)", d->name, diff,
                          maxt);
            n_seg++;
        }
    }
    cr_assert_gt(n_image, 40);
    cr_assert_eq(n_seg, 14); /* 3 stages x (conv, gn) x (weight, bias) + head weight and bias */

    /* an update: image.* unchanged even if a gradient had leaked in; seg.* moved */
    float *before = malloc(sizeof(float) * fz.g->n_param_elems);
    memcpy(before, fz.params, sizeof(float) * fz.g->n_param_elems);
    for (int i = 0; i < fz.g->n_params; i++) /* pretend the encoder had gradients */
        if (!strncmp(fz.g->params[i].name, "image.", 6)) fz.grads[fz.g->params[i].offset] = 1.0f;
    double gnorm;
    cr_assert_eq(seg_model_update(&fz, 0, 10, 1e-3, 1.0, &gnorm, &err), 0, "%s", err.msg);
    for (int i = 0; i < fz.g->n_params; i++) {
        const reclf_param_desc *d = &fz.g->params[i];
        int same = memcmp(before + d->offset, fz.params + d->offset, sizeof(float) * d->numel) == 0;
        if (!strncmp(d->name, "image.", 6)) cr_assert(same, "%s changed in frozen mode", d->name);
        else cr_assert(!same, "%s did not change", d->name);
    }
    free(before);
    seg_model_close(&fz);
    seg_model_close(&ft);
}

/* The encoder comes from a checkpoint by name, after params_init: image.* take the file's values,
 * seg.* keep the fresh initialisation of the run's seed. */
Test(seg, encoder_loads_by_name) {
    seg_model sm;
    open_ok(&sm, 0, 1);
    reclf_err err = {{0}};
    size_t n = sm.g->n_param_elems;
    float *file_params = malloc(sizeof(float) * n), *fresh = malloc(sizeof(float) * n), *enc = malloc(sizeof(float) * n);
    cr_assert_eq(params_init(sm.g, file_params, 99, &err), 0, "%s", err.msg);
    cr_assert_eq(params_init(sm.g, fresh, 1, &err), 0, "%s", err.msg);
    char path[] = "/tmp/test_seg_ckpt_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    ckpt_meta meta;
    memset(&meta, 0, sizeof meta);
    cr_assert_eq(ckpt_save(path, sm.g, file_params, NULL, NULL, &meta, &err), 0, "%s", err.msg);
    int n_loaded = 0;
    cr_assert_eq(seg_model_load_encoder(&sm, path, enc, &n_loaded, &err), 0, "%s", err.msg);
    cr_assert_eq(n_loaded, sm.g->n_params);
    cr_assert_eq(seg_model_init(&sm, 1, enc, &err), 0, "%s", err.msg);
    for (int i = 0; i < sm.g->n_params; i++) {
        const reclf_param_desc *d = &sm.g->params[i];
        const float *want = strncmp(d->name, "image.", 6) ? fresh : file_params;
        cr_assert_eq(memcmp(sm.params + d->offset, want + d->offset, sizeof(float) * d->numel), 0, "%s", d->name);
    }
    remove(path);
    free(file_params), free(fresh), free(enc);
    seg_model_close(&sm);
}

/* A real learning signal: trained on one repeated batch of masked images, the loss falls and the
 * thresholded prediction overlaps the masks (Dice well above what a constant prediction gets: 0
 * for all-empty, 2|T| / (S^2 + |T|) for all-full, below 0.2 on these findings). */
Test(seg, learns_a_repeated_batch, .timeout = 600) {
    seg_model sm;
    open_ok(&sm, 0, 3);
    reclf_err err = {{0}};
    cr_assert_eq(seg_model_init(&sm, 2, NULL, &err), 0, "%s", err.msg);
    fill_batch(&sm, 1);
    size_t px = (size_t)sm.size * sm.size;
    double full = 0;
    for (int i = 0; i < sm.batch; i++) {
        double area = 0;
        for (size_t k = 0; k < px; k++) area += sm.masks[i * px + k];
        full += 2 * area / ((double)px + area) / sm.batch;
    }
    cr_assert_lt(full, 0.2, "all-full prediction would score %g", full);
    const long steps = 40;
    double first = 0, last = 0;
    for (long t = 0; t < steps; t++) {
        double loss;
        cr_assert_eq(seg_model_forward_backward(&sm, sm.batch, 1, &loss, &err), 0, "%s", err.msg);
        if (t == 0) first = loss;
        last = loss;
        cr_assert_eq(seg_model_update(&sm, t, steps, 1e-3, 1.0, NULL, &err), 0, "%s", err.msg);
    }
    double loss;
    cr_assert_eq(seg_model_forward_backward(&sm, sm.batch, 0, &loss, &err), 0, "%s", err.msg);
    float *prob = malloc(sizeof(float) * px * sm.batch);
    cr_assert_eq(seg_model_predict(&sm, sm.images, sm.batch, prob, &err), 0, "%s", err.msg);
    double dice = reclf_mean_dice(prob, sm.masks, sm.batch, px, 0.5f);
    fprintf(stderr, "seg learns_a_repeated_batch: loss %.4f -> %.4f (after %.4f), Dice %.4f\n", first, last, loss, dice);
    cr_assert_lt(loss, 0.6 * first, "loss %g -> %g", first, loss);
    cr_assert_gt(dice, 0.5, "Dice %g on the training batch", dice);
    free(prob);
    seg_model_close(&sm);
}
