/* Reader and writer of the safetensors format (huggingface/safetensors):
 *     8 bytes   N, the header length, little-endian uint64
 *     N bytes   JSON object: name -> {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}
 *               plus an optional "__metadata__": {string: string}; padded with spaces
 *     rest      the data section; offsets are relative to its start
 *
 * The reader loads the whole file and validates everything before handing out pointers:
 * header length past the end of the file or over 100 MB, header not a JSON object, bad or
 * duplicate entries, unknown dtype, negative / overflowing / past-the-end offsets, begin > end,
 * byte size different from dtype size × product(shape) (computed with overflow checks).
 * Offsets of different tensors may overlap and may leave holes. Errors name the file and the tensor.
 *
 * The writer keeps the tensors in the order they were added (deterministic output), lays the
 * data out contiguously in that order, pads the header with spaces so that the data section
 * starts at a multiple of 8, and writes the file atomically (reclf_write_file_atomic). */
#ifndef RECLF_SAFETENSORS_H
#define RECLF_SAFETENSORS_H
#include <stddef.h>
#include <stdint.h>

#include "common.h"

#define ST_MAX_DIMS 8
#define ST_MAX_HEADER (100u * 1000u * 1000u) /* as the reference implementation */

typedef enum {
    ST_F64, ST_F32, ST_F16, ST_BF16,
    ST_I64, ST_I32, ST_I16, ST_I8,
    ST_U64, ST_U32, ST_U16, ST_U8,
    ST_BOOL,
    ST_N_DTYPES
} st_dtype;

typedef struct {
    char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t numel;
    size_t nbytes;
    /* Points into the file's buffer, valid until st_close. The data section is placed at an
     * address aligned to 8, so data is aligned for its dtype whenever its begin offset is a
     * multiple of the dtype size (true of every file this writer makes out of 8-byte-or-smaller
     * types added in decreasing size, and of all-F32 checkpoints); otherwise read it with memcpy. */
    const void *data;
} st_tensor;

typedef struct {
    char *path;
    unsigned char *buf; /* the whole file */
    size_t len;
    unsigned char *data_copy; /* the data section when it had to be moved to an aligned address */
    int n_tensors;
    st_tensor *tensors; /* in header order */
    int n_meta;
    char **meta_keys;
    char **meta_values;
} st_file;

const char *st_dtype_name(st_dtype t);
size_t st_dtype_size(st_dtype t);
/* returns 0 and sets *t for a known dtype name ("F32", ...), else -1 */
int st_dtype_parse(const char *name, st_dtype *t);

/* Reads and validates `path`. On error f is left empty (st_close on it is safe). */
int st_open(const char *path, st_file *f, reclf_err *err);
/* Parses an in-memory file (the buffer is copied); `path` only names it in messages. */
int st_open_memory(const void *data, size_t len, const char *path, st_file *f, reclf_err *err);
const st_tensor *st_find(const st_file *f, const char *name);
/* the metadata value for key, or NULL */
const char *st_meta(const st_file *f, const char *key);
void st_close(st_file *f);

/* ---- writer ---- */
typedef struct {
    char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t nbytes;
    const void *data; /* not copied: must stay valid until st_writer_write */
} st_wtensor;

typedef struct {
    int n_tensors, cap_tensors;
    st_wtensor *tensors;
    int n_meta, cap_meta;
    char **meta_keys;
    char **meta_values;
} st_writer;

void st_writer_init(st_writer *w);
/* Adds a tensor (name copied, data pointer kept). Refuses duplicate names, "__metadata__",
 * ndim outside 0..ST_MAX_DIMS, negative sizes and sizes that overflow. */
int st_writer_add(st_writer *w, const char *name, st_dtype dtype, int ndim, const int64_t *shape, const void *data,
                  reclf_err *err);
/* Adds or replaces a metadata entry (both strings copied). */
int st_writer_meta(st_writer *w, const char *key, const char *value, reclf_err *err);
/* Serialises to one malloc'ed buffer (header + data). */
int st_writer_serialize(const st_writer *w, unsigned char **out, size_t *out_len, reclf_err *err);
/* Serialises and writes `path` atomically. */
int st_writer_write(const st_writer *w, const char *path, reclf_err *err);
void st_writer_free(st_writer *w);

#endif
