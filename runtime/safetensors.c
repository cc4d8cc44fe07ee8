#include "safetensors.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    size_t size;
} st_dtypes[ST_N_DTYPES] = {
    [ST_F64] = {"F64", 8},  [ST_F32] = {"F32", 4}, [ST_F16] = {"F16", 2}, [ST_BF16] = {"BF16", 2},
    [ST_I64] = {"I64", 8},  [ST_I32] = {"I32", 4}, [ST_I16] = {"I16", 2}, [ST_I8] = {"I8", 1},
    [ST_U64] = {"U64", 8},  [ST_U32] = {"U32", 4}, [ST_U16] = {"U16", 2}, [ST_U8] = {"U8", 1},
    [ST_BOOL] = {"BOOL", 1},
};

const char *st_dtype_name(st_dtype t) {
    return (t >= 0 && t < ST_N_DTYPES) ? st_dtypes[t].name : "?";
}

size_t st_dtype_size(st_dtype t) { return (t >= 0 && t < ST_N_DTYPES) ? st_dtypes[t].size : 0; }

int st_dtype_parse(const char *name, st_dtype *t) {
    for (int i = 0; i < ST_N_DTYPES; i++) {
        if (strcmp(name, st_dtypes[i].name) == 0) {
            *t = (st_dtype)i;
            return 0;
        }
    }
    return -1;
}

// a * b into *out, or -1 on overflow of size_t
static int mul_size(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return -1;
    *out = a * b;
    return 0;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

// ----------------------------------------------------------------------------
// reader

void st_close(st_file *f) {
    if (!f) return;
    for (int i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    free(f->tensors);
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_values[i]);
    }
    free(f->meta_keys);
    free(f->meta_values);
    free(f->data_copy);
    free(f->buf);
    free(f->path);
    memset(f, 0, sizeof *f);
}

// reads the metadata object into f; `where` is the file path for messages
static int parse_metadata(st_file *f, json_t *meta, const char *where, reclf_err *err) {
    if (!json_is_object(meta)) return reclf_fail(err, "%s: __metadata__ is not a JSON object", where);
    size_t n = json_object_size(meta);
    f->meta_keys = calloc(n ? n : 1, sizeof *f->meta_keys);
    f->meta_values = calloc(n ? n : 1, sizeof *f->meta_values);
    if (!f->meta_keys || !f->meta_values) return reclf_fail(err, "%s: out of memory", where);
    const char *key;
    json_t *val;
    json_object_foreach(meta, key, val) {
        if (!json_is_string(val))
            return reclf_fail(err, "%s: __metadata__ entry '%s' is not a string", where, key);
        f->meta_keys[f->n_meta] = dup_str(key);
        f->meta_values[f->n_meta] = dup_str(json_string_value(val));
        f->n_meta++; // counted before the check so st_close frees a half-made pair
        if (!f->meta_keys[f->n_meta - 1] || !f->meta_values[f->n_meta - 1])
            return reclf_fail(err, "%s: out of memory", where);
    }
    return 0;
}

// fills t from one header entry and checks it against the data section of data_len bytes
static int parse_entry(st_tensor *t, const char *name, json_t *e, const unsigned char *data, size_t data_len,
                       const char *where, reclf_err *err) {
    if (!json_is_object(e)) return reclf_fail(err, "%s: tensor '%s': header entry is not a JSON object", where, name);
    json_t *jd = json_object_get(e, "dtype"), *js = json_object_get(e, "shape"),
           *jo = json_object_get(e, "data_offsets");
    if (!json_is_string(jd)) return reclf_fail(err, "%s: tensor '%s': missing or non-string \"dtype\"", where, name);
    if (st_dtype_parse(json_string_value(jd), &t->dtype) != 0)
        return reclf_fail(err, "%s: tensor '%s': unknown dtype \"%s\"", where, name, json_string_value(jd));
    if (!json_is_array(js)) return reclf_fail(err, "%s: tensor '%s': missing or non-array \"shape\"", where, name);
    size_t nd = json_array_size(js);
    if (nd > ST_MAX_DIMS)
        return reclf_fail(err, "%s: tensor '%s': %zu dimensions, at most %d supported", where, name, nd, ST_MAX_DIMS);
    t->ndim = (int)nd;
    size_t numel = 1;
    for (size_t k = 0; k < nd; k++) {
        json_t *x = json_array_get(js, k);
        if (!json_is_integer(x) || json_integer_value(x) < 0)
            return reclf_fail(err, "%s: tensor '%s': shape entry %zu is not a non-negative integer", where, name, k);
        json_int_t s = json_integer_value(x);
        t->shape[k] = (int64_t)s;
        if ((unsigned long long)s > SIZE_MAX || mul_size(numel, (size_t)s, &numel) != 0)
            return reclf_fail(err, "%s: tensor '%s': the number of elements of its shape overflows", where, name);
    }
    size_t nbytes;
    if (mul_size(numel, st_dtype_size(t->dtype), &nbytes) != 0)
        return reclf_fail(err, "%s: tensor '%s': its byte size overflows", where, name);
    t->numel = numel;
    t->nbytes = nbytes;
    if (!json_is_array(jo) || json_array_size(jo) != 2)
        return reclf_fail(err, "%s: tensor '%s': \"data_offsets\" is not an array of two integers", where, name);
    json_t *jb = json_array_get(jo, 0), *je = json_array_get(jo, 1);
    if (!json_is_integer(jb) || !json_is_integer(je))
        return reclf_fail(err, "%s: tensor '%s': \"data_offsets\" is not an array of two integers", where, name);
    json_int_t b = json_integer_value(jb), en = json_integer_value(je);
    if (b < 0 || en < 0)
        return reclf_fail(err, "%s: tensor '%s': negative data offsets [%lld, %lld]", where, name, (long long)b,
                          (long long)en);
    if (b > en)
        return reclf_fail(err, "%s: tensor '%s': data offsets [%lld, %lld] begin after they end", where, name,
                          (long long)b, (long long)en);
    if ((unsigned long long)en > data_len)
        return reclf_fail(err, "%s: tensor '%s': data offsets [%lld, %lld] end past the data section of %zu bytes",
                          where, name, (long long)b, (long long)en, data_len);
    size_t have = (size_t)en - (size_t)b;
    if (have != nbytes) {
        char shp[ST_MAX_DIMS * 24 + 4];
        size_t o = 0;
        shp[o++] = '[';
        for (int k = 0; k < t->ndim; k++)
            o += (size_t)snprintf(shp + o, sizeof shp - o, "%s%lld", k ? ", " : "", (long long)t->shape[k]);
        snprintf(shp + o, sizeof shp - o, "]");
        return reclf_fail(err, "%s: tensor '%s': data offsets give %zu bytes, but %s %s needs %zu", where, name, have,
                          st_dtype_name(t->dtype), shp, nbytes);
    }
    t->data = data + b;
    return 0;
}

// parses f->buf / f->len (already owned by f)
static int st_parse(st_file *f, reclf_err *err) {
    const char *where = f->path;
    if (f->len < 8)
        return reclf_fail(err, "%s: file of %zu bytes is too short for the 8-byte header length", where, f->len);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | f->buf[i];
    if (n > ST_MAX_HEADER)
        return reclf_fail(err, "%s: header length %llu is absurd (limit %u bytes): not a safetensors file?", where,
                          (unsigned long long)n, ST_MAX_HEADER);
    if (n > f->len - 8)
        return reclf_fail(err, "%s: header length %llu runs past the end of the file (%zu bytes)", where,
                          (unsigned long long)n, f->len);
    size_t hlen = (size_t)n;
    json_error_t jerr;
    json_t *root = json_loadb((const char *)f->buf + 8, hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        if (json_error_code(&jerr) == json_error_duplicate_key)
            return reclf_fail(err, "%s: duplicate name in the header: %s", where, jerr.text);
        return reclf_fail(err, "%s: header is not valid JSON (%s at byte %d)", where, jerr.text, jerr.position);
    }
    int rc = -1;
    if (!json_is_object(root)) {
        reclf_fail(err, "%s: header is JSON but not an object", where);
        goto done;
    }
    // the data section, at an 8-aligned address (malloc'ed buffers are; 8 + hlen may not be)
    const unsigned char *data = f->buf + 8 + hlen;
    size_t data_len = f->len - 8 - hlen;
    if ((8 + hlen) % 8 != 0) {
        f->data_copy = malloc(data_len ? data_len : 1);
        if (!f->data_copy) {
            reclf_fail(err, "%s: out of memory", where);
            goto done;
        }
        memcpy(f->data_copy, data, data_len);
        data = f->data_copy;
    }
    size_t nt = json_object_size(root);
    f->tensors = calloc(nt ? nt : 1, sizeof *f->tensors);
    if (!f->tensors) {
        reclf_fail(err, "%s: out of memory", where);
        goto done;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            if (parse_metadata(f, val, where, err) != 0) goto done;
            continue;
        }
        if (!*key) { /* the writer refuses it too: no file of ours has one (found by fuzz_safetensors) */
            reclf_fail(err, "%s: a tensor has an empty name", where);
            goto done;
        }
        st_tensor *t = &f->tensors[f->n_tensors];
        t->name = dup_str(key);
        f->n_tensors++;
        if (!t->name) {
            reclf_fail(err, "%s: out of memory", where);
            goto done;
        }
        if (parse_entry(t, key, val, data, data_len, where, err) != 0) goto done;
    }
    rc = 0;
done:
    json_decref(root);
    return rc;
}

static int st_take(unsigned char *buf, size_t len, const char *path, st_file *f, reclf_err *err) {
    f->buf = buf;
    f->len = len;
    f->path = dup_str(path);
    if (!f->path) {
        st_close(f);
        return reclf_fail(err, "%s: out of memory", path);
    }
    if (st_parse(f, err) != 0) {
        st_close(f);
        return -1;
    }
    return 0;
}

int st_open(const char *path, st_file *f, reclf_err *err) {
    memset(f, 0, sizeof *f);
    unsigned char *buf;
    size_t len;
    if (reclf_read_file(path, &buf, &len, err) != 0) return -1;
    return st_take(buf, len, path, f, err);
}

int st_open_memory(const void *data, size_t len, const char *path, st_file *f, reclf_err *err) {
    memset(f, 0, sizeof *f);
    unsigned char *buf = malloc(len + 1);
    if (!buf) return reclf_fail(err, "%s: out of memory", path);
    if (len) memcpy(buf, data, len);
    buf[len] = 0;
    return st_take(buf, len, path, f, err);
}

const st_tensor *st_find(const st_file *f, const char *name) {
    for (int i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

const char *st_meta(const st_file *f, const char *key) {
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_values[i];
    return NULL;
}

// ----------------------------------------------------------------------------
// writer

void st_writer_init(st_writer *w) { memset(w, 0, sizeof *w); }

void st_writer_free(st_writer *w) {
    for (int i = 0; i < w->n_tensors; i++) free(w->tensors[i].name);
    free(w->tensors);
    for (int i = 0; i < w->n_meta; i++) {
        free(w->meta_keys[i]);
        free(w->meta_values[i]);
    }
    free(w->meta_keys);
    free(w->meta_values);
    memset(w, 0, sizeof *w);
}

int st_writer_add(st_writer *w, const char *name, st_dtype dtype, int ndim, const int64_t *shape, const void *data,
                  reclf_err *err) {
    if (!name || !*name) return reclf_fail(err, "safetensors writer: empty tensor name");
    if (strcmp(name, "__metadata__") == 0)
        return reclf_fail(err, "safetensors writer: '__metadata__' cannot name a tensor");
    if (dtype < 0 || dtype >= ST_N_DTYPES)
        return reclf_fail(err, "safetensors writer: tensor '%s': unknown dtype %d", name, (int)dtype);
    if (ndim < 0 || ndim > ST_MAX_DIMS)
        return reclf_fail(err, "safetensors writer: tensor '%s': %d dimensions, expected 0..%d", name, ndim,
                          ST_MAX_DIMS);
    for (int i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0)
            return reclf_fail(err, "safetensors writer: tensor '%s' added twice", name);
    size_t numel = 1, nbytes;
    for (int k = 0; k < ndim; k++) {
        if (shape[k] < 0 || (uint64_t)shape[k] > SIZE_MAX || mul_size(numel, (size_t)shape[k], &numel) != 0)
            return reclf_fail(err, "safetensors writer: tensor '%s': bad or overflowing size in dimension %d", name, k);
    }
    if (mul_size(numel, st_dtype_size(dtype), &nbytes) != 0)
        return reclf_fail(err, "safetensors writer: tensor '%s': byte size overflows", name);
    if (nbytes > 0 && !data) return reclf_fail(err, "safetensors writer: tensor '%s': no data", name);
    if (w->n_tensors == w->cap_tensors) {
        int cap = w->cap_tensors ? 2 * w->cap_tensors : 16;
        st_wtensor *nt = realloc(w->tensors, (size_t)cap * sizeof *nt);
        if (!nt) return reclf_fail(err, "safetensors writer: out of memory");
        w->tensors = nt;
        w->cap_tensors = cap;
    }
    st_wtensor *t = &w->tensors[w->n_tensors];
    memset(t, 0, sizeof *t);
    t->name = dup_str(name);
    if (!t->name) return reclf_fail(err, "safetensors writer: out of memory");
    t->dtype = dtype;
    t->ndim = ndim;
    for (int k = 0; k < ndim; k++) t->shape[k] = shape[k];
    t->nbytes = nbytes;
    t->data = data;
    w->n_tensors++;
    return 0;
}

int st_writer_meta(st_writer *w, const char *key, const char *value, reclf_err *err) {
    if (!key || !value) return reclf_fail(err, "safetensors writer: NULL metadata key or value");
    char *v = dup_str(value);
    if (!v) return reclf_fail(err, "safetensors writer: out of memory");
    for (int i = 0; i < w->n_meta; i++) {
        if (strcmp(w->meta_keys[i], key) == 0) {
            free(w->meta_values[i]);
            w->meta_values[i] = v;
            return 0;
        }
    }
    if (w->n_meta == w->cap_meta) {
        int cap = w->cap_meta ? 2 * w->cap_meta : 8;
        char **nk = realloc(w->meta_keys, (size_t)cap * sizeof *nk);
        if (nk) w->meta_keys = nk;
        char **nv = nk ? realloc(w->meta_values, (size_t)cap * sizeof *nv) : NULL;
        if (nv) w->meta_values = nv;
        if (!nk || !nv) {
            free(v);
            return reclf_fail(err, "safetensors writer: out of memory");
        }
        w->cap_meta = cap;
    }
    char *k = dup_str(key);
    if (!k) {
        free(v);
        return reclf_fail(err, "safetensors writer: out of memory");
    }
    w->meta_keys[w->n_meta] = k;
    w->meta_values[w->n_meta] = v;
    w->n_meta++;
    return 0;
}

// the header as compact JSON, keys in insertion order (jansson >= 2.8 keeps it)
static char *build_header(const st_writer *w, reclf_err *err) {
    json_t *root = json_object();
    char *out = NULL;
    if (!root) {
        reclf_fail(err, "safetensors writer: out of memory");
        return NULL;
    }
    if (w->n_meta > 0) {
        json_t *meta = json_object();
        if (!meta || json_object_set_new(root, "__metadata__", meta) != 0) {
            reclf_fail(err, "safetensors writer: out of memory");
            goto done;
        }
        for (int i = 0; i < w->n_meta; i++) {
            json_t *s = json_string(w->meta_values[i]);
            if (!s || json_object_set_new(meta, w->meta_keys[i], s) != 0) {
                reclf_fail(err, "safetensors writer: metadata '%s' is not valid UTF-8", w->meta_keys[i]);
                goto done;
            }
        }
    }
    size_t off = 0;
    for (int i = 0; i < w->n_tensors; i++) {
        const st_wtensor *t = &w->tensors[i];
        json_t *e = json_object(), *shape = json_array(), *offs = json_array();
        if (!e || !shape || !offs) {
            json_decref(e);
            json_decref(shape);
            json_decref(offs);
            reclf_fail(err, "safetensors writer: out of memory");
            goto done;
        }
        json_object_set_new(e, "dtype", json_string(st_dtype_name(t->dtype)));
        for (int k = 0; k < t->ndim; k++) json_array_append_new(shape, json_integer((json_int_t)t->shape[k]));
        json_object_set_new(e, "shape", shape);
        json_array_append_new(offs, json_integer((json_int_t)off));
        json_array_append_new(offs, json_integer((json_int_t)(off + t->nbytes)));
        json_object_set_new(e, "data_offsets", offs);
        if (json_object_set_new(root, t->name, e) != 0) {
            reclf_fail(err, "safetensors writer: tensor name '%s' is not valid UTF-8", t->name);
            goto done;
        }
        off += t->nbytes;
    }
    out = json_dumps(root, JSON_COMPACT);
    if (!out) reclf_fail(err, "safetensors writer: cannot serialise the header");
done:
    json_decref(root);
    return out;
}

int st_writer_serialize(const st_writer *w, unsigned char **out, size_t *out_len, reclf_err *err) {
    size_t data_len = 0;
    for (int i = 0; i < w->n_tensors; i++) {
        if (w->tensors[i].nbytes > SIZE_MAX / 2 - data_len)
            return reclf_fail(err, "safetensors writer: total size overflows at tensor '%s'", w->tensors[i].name);
        data_len += w->tensors[i].nbytes;
    }
    char *hdr = build_header(w, err);
    if (!hdr) return -1;
    size_t hlen = strlen(hdr);
    size_t padded = (hlen + 7) / 8 * 8; // 8 + padded is a multiple of 8: the data section is aligned
    size_t total = 8 + padded + data_len;
    unsigned char *buf = malloc(total ? total : 1);
    if (!buf) {
        free(hdr);
        return reclf_fail(err, "safetensors writer: out of memory (%zu bytes)", total);
    }
    uint64_t n = padded;
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(n >> (8 * i));
    memcpy(buf + 8, hdr, hlen);
    memset(buf + 8 + hlen, ' ', padded - hlen);
    free(hdr);
    unsigned char *p = buf + 8 + padded;
    for (int i = 0; i < w->n_tensors; i++) {
        if (w->tensors[i].nbytes) memcpy(p, w->tensors[i].data, w->tensors[i].nbytes);
        p += w->tensors[i].nbytes;
    }
    *out = buf;
    *out_len = total;
    return 0;
}

int st_writer_write(const st_writer *w, const char *path, reclf_err *err) {
    unsigned char *buf;
    size_t len;
    if (st_writer_serialize(w, &buf, &len, err) != 0) {
        // prefix the file name to the writer's message
        if (err) {
            char msg[sizeof err->msg];
            memcpy(msg, err->msg, sizeof msg);
            reclf_fail(err, "%s: %s", path, msg);
        }
        return -1;
    }
    int rc = reclf_write_file_atomic(path, buf, len, err);
    free(buf);
    return rc;
}
