#include "checkpoint.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "params.h"
#include "safetensors.h"

static void shape_text(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t o = 0;
    o += (size_t)snprintf(buf + o, n - o, "[");
    for (int k = 0; k < ndim && o < n; k++)
        o += (size_t)snprintf(buf + o, n - o, "%s%lld", k ? ", " : "", (long long)shape[k]);
    if (o < n) snprintf(buf + o, n - o, "]");
}

static void desc_shape(const reclf_param_desc *d, int64_t *shape) {
    for (int k = 0; k < d->ndim; k++) shape[k] = d->shape[k];
}

// "<prefix><name>" into buf; -1 when it does not fit
static int tensor_name(char *buf, size_t n, const char *prefix, const char *name) {
    int w = snprintf(buf, n, "%s%s", prefix, name);
    return (w < 0 || (size_t)w >= n) ? -1 : 0;
}

int ckpt_save(const char *path, const reclf_graph *g, const float *params, const float *m, const float *v,
              const ckpt_meta *meta, reclf_err *err) {
    if (params_validate(g, err) != 0) return -1;
    if ((m == NULL) != (v == NULL))
        return reclf_fail(err, "%s: both AdamW moments (m and v) or neither must be saved", path);
    st_writer w;
    st_writer_init(&w);
    int rc = -1;
    const float *bufs[3] = {params, m, v};
    const char *prefixes[3] = {"", "optim.m.", "optim.v."};
    char name[1024];
    for (int b = 0; b < 3; b++) {
        if (!bufs[b]) continue;
        for (int i = 0; i < g->n_params; i++) {
            const reclf_param_desc *d = &g->params[i];
            int64_t shape[RECLF_MAX_DIMS];
            desc_shape(d, shape);
            if (tensor_name(name, sizeof name, prefixes[b], d->name) != 0) {
                reclf_fail(err, "%s: parameter name '%s' too long", path, d->name);
                goto done;
            }
            if (st_writer_add(&w, name, ST_F32, d->ndim, shape, bufs[b] + d->offset, err) != 0) goto prefixed;
        }
    }
    char step[32];
    snprintf(step, sizeof step, "%ld", meta ? meta->step : 0L);
    if (st_writer_meta(&w, "format", CKPT_FORMAT, err) != 0 || st_writer_meta(&w, "model", g->name, err) != 0 ||
        st_writer_meta(&w, "step", step, err) != 0 ||
        st_writer_meta(&w, "rng", meta ? meta->rng : "", err) != 0 ||
        st_writer_meta(&w, "vocab", meta && meta->vocab ? meta->vocab : "", err) != 0 ||
        st_writer_meta(&w, "config", meta && meta->config ? meta->config : "", err) != 0)
        goto prefixed;
    rc = st_writer_write(&w, path, err);
    goto done;
prefixed:
    if (err) {
        char msg[sizeof err->msg];
        memcpy(msg, err->msg, sizeof msg);
        reclf_fail(err, "%s: %.900s", path, msg);
    }
done:
    st_writer_free(&w);
    return rc;
}

// copies tensor `name` into dst after checking dtype and shape against d
static int load_tensor(const st_file *f, const char *name, const reclf_param_desc *d, float *dst, reclf_err *err) {
    const st_tensor *t = st_find(f, name);
    if (!t) return reclf_fail(err, "%s: tensor '%s' is missing", f->path, name);
    int64_t want[RECLF_MAX_DIMS];
    desc_shape(d, want);
    int same = t->ndim == d->ndim;
    for (int k = 0; same && k < d->ndim; k++) same = t->shape[k] == want[k];
    if (!same) {
        char a[200], b[200];
        shape_text(a, sizeof a, t->ndim, t->shape);
        shape_text(b, sizeof b, d->ndim, want);
        return reclf_fail(err, "%s: tensor '%s' has shape %s, expected %s", f->path, name, a, b);
    }
    if (t->dtype != ST_F32)
        return reclf_fail(err, "%s: tensor '%s' has dtype %s, expected F32", f->path, name, st_dtype_name(t->dtype));
    memcpy(dst, t->data, t->nbytes); // data may be unaligned in foreign files: memcpy, not float loads
    return 0;
}

static int copy_meta(const st_file *f, ckpt_meta *meta, reclf_err *err) {
    const char *s;
    memset(meta, 0, sizeof *meta);
    if ((s = st_meta(f, "model"))) snprintf(meta->model, sizeof meta->model, "%s", s);
    if ((s = st_meta(f, "rng"))) {
        if (strlen(s) >= sizeof meta->rng)
            return reclf_fail(err, "%s: metadata 'rng' is %zu characters long, at most %zu expected", f->path,
                              strlen(s), sizeof meta->rng - 1);
        snprintf(meta->rng, sizeof meta->rng, "%s", s);
    }
    if ((s = st_meta(f, "step"))) {
        char *end;
        errno = 0;
        long step = strtol(s, &end, 10);
        if (errno || end == s || *end || step < 0)
            return reclf_fail(err, "%s: metadata 'step' is \"%s\", expected a non-negative integer", f->path, s);
        meta->step = step;
    }
    const char *vocab = st_meta(f, "vocab"), *config = st_meta(f, "config");
    meta->vocab = strdup(vocab ? vocab : "");
    meta->config = strdup(config ? config : "");
    if (!meta->vocab || !meta->config) {
        ckpt_meta_free(meta);
        return reclf_fail(err, "%s: out of memory", f->path);
    }
    return 0;
}

int ckpt_load(const char *path, const reclf_graph *g, float *params, float *m, float *v, ckpt_meta *meta,
              reclf_err *err) {
    if (meta) memset(meta, 0, sizeof *meta);
    if (params_validate(g, err) != 0) return -1;
    if ((m == NULL) != (v == NULL))
        return reclf_fail(err, "%s: both AdamW moments (m and v) or neither must be loaded", path);
    st_file f;
    if (st_open(path, &f, err) != 0) return -1;
    int rc = -1;
    const char *fmt = st_meta(&f, "format"), *model = st_meta(&f, "model");
    if (!fmt || strcmp(fmt, CKPT_FORMAT) != 0) {
        reclf_fail(err, "%s: checkpoint format \"%s\", expected \"%s\"", path, fmt ? fmt : "(none)", CKPT_FORMAT);
        goto done;
    }
    if (!model || strcmp(model, g->name) != 0) {
        reclf_fail(err, "%s: checkpoint of model %s, expected %s", path, model ? model : "(none)", g->name);
        goto done;
    }
    char name[1024];
    for (int i = 0; i < g->n_params; i++)
        if (load_tensor(&f, g->params[i].name, &g->params[i], params + g->params[i].offset, err) != 0) goto done;
    int has_moments = 1;
    for (int i = 0; i < g->n_params && has_moments; i++) {
        if (tensor_name(name, sizeof name, "optim.m.", g->params[i].name) == 0 && st_find(&f, name) &&
            tensor_name(name, sizeof name, "optim.v.", g->params[i].name) == 0 && st_find(&f, name))
            continue;
        has_moments = 0;
    }
    if (m) {
        float *bufs[2] = {m, v};
        const char *prefixes[2] = {"optim.m.", "optim.v."};
        for (int b = 0; b < 2; b++) {
            for (int i = 0; i < g->n_params; i++) {
                const reclf_param_desc *d = &g->params[i];
                if (tensor_name(name, sizeof name, prefixes[b], d->name) != 0) {
                    reclf_fail(err, "%s: parameter name '%s' too long", path, d->name);
                    goto done;
                }
                if (load_tensor(&f, name, d, bufs[b] + d->offset, err) != 0) {
                    if (!st_find(&f, name))
                        reclf_fail(err, "%s: tensor '%s' is missing: the checkpoint has no optimiser state to resume from",
                                   path, name);
                    goto done;
                }
            }
        }
    }
    if (meta) {
        if (copy_meta(&f, meta, err) != 0) goto done;
        meta->has_moments = has_moments;
    }
    rc = 0;
done:
    st_close(&f);
    return rc;
}

int ckpt_load_params_by_name(const char *path, const reclf_graph *g, float *params, int strict, int *n_loaded,
                             reclf_err *err) {
    if (n_loaded) *n_loaded = 0;
    if (params_validate(g, err) != 0) return -1;
    st_file f;
    if (st_open(path, &f, err) != 0) return -1;
    int n = 0, rc = -1;
    for (int i = 0; i < g->n_params; i++) {
        const reclf_param_desc *d = &g->params[i];
        if (!st_find(&f, d->name)) {
            if (!strict) continue;
            reclf_fail(err, "%s: tensor '%s' is missing (needed by graph %s)", path, d->name, g->name);
            goto done;
        }
        if (load_tensor(&f, d->name, d, params + d->offset, err) != 0) goto done;
        n++;
    }
    if (n_loaded) *n_loaded = n;
    rc = 0;
done:
    st_close(&f);
    return rc;
}

void ckpt_meta_free(ckpt_meta *meta) {
    if (!meta) return;
    free(meta->vocab);
    free(meta->config);
    meta->vocab = meta->config = NULL;
}
