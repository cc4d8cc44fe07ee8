/* libFuzzer harness of the safetensors reader (runtime/safetensors.c, st_open_memory). Every
 * byte of every tensor the reader hands out is read (ASan catches any pointer past the buffer),
 * and an accepted file must survive a round trip: written again with st_writer and read back,
 * it has the same tensors (names, dtypes, shapes, bytes) and the same metadata. */
#include <assert.h>

#include "common_fuzz.h"
#include "safetensors.h"

static volatile unsigned sink; /* keeps the reads of the tensor bytes */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    st_file f;
    reclf_err err = {{0}};
    if (st_open_memory(data, size, "fuzz.safetensors", &f, &err) != 0) {
        assert(strncmp(err.msg, "fuzz.safetensors", 16) == 0);
        return 0;
    }
    unsigned sum = 0;
    st_writer w;
    st_writer_init(&w);
    for (int i = 0; i < f.n_tensors; i++) {
        const st_tensor *t = &f.tensors[i];
        assert(t->nbytes == t->numel * st_dtype_size(t->dtype));
        const unsigned char *p = t->data;
        for (size_t k = 0; k < t->nbytes; k++) sum += p[k];
        assert(st_find(&f, t->name) == t);
        if (st_writer_add(&w, t->name, t->dtype, t->ndim, t->shape, t->data, &err) != 0) abort();
    }
    sink = sum;
    for (int i = 0; i < f.n_meta; i++) {
        assert(st_meta(&f, f.meta_keys[i]) != NULL);
        if (st_writer_meta(&w, f.meta_keys[i], f.meta_values[i], &err) != 0) abort();
    }
    unsigned char *buf;
    size_t len;
    /* a name or value the reader accepted is valid UTF-8 JSON text, so it serialises again */
    if (st_writer_serialize(&w, &buf, &len, &err) != 0) {
        fprintf(stderr, "round trip: %s\n", err.msg);
        abort();
    }
    st_file g;
    if (st_open_memory(buf, len, "again", &g, &err) != 0) {
        fprintf(stderr, "round trip: %s\n", err.msg);
        abort();
    }
    assert(g.n_tensors == f.n_tensors && g.n_meta == f.n_meta);
    for (int i = 0; i < f.n_tensors; i++) {
        const st_tensor *a = &f.tensors[i], *b = st_find(&g, a->name);
        assert(b && b->dtype == a->dtype && b->ndim == a->ndim && b->nbytes == a->nbytes);
        assert(memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)a->ndim) == 0);
        assert(a->nbytes == 0 || memcmp(a->data, b->data, a->nbytes) == 0);
    }
    for (int i = 0; i < f.n_meta; i++) assert(!strcmp(st_meta(&g, f.meta_keys[i]), f.meta_values[i]));
    st_close(&g);
    free(buf);
    st_writer_free(&w);
    st_close(&f);
    return 0;
}
