/* Shared conventions of the runtime: error reporting and small helpers.
 * Library functions never exit: they return 0 on success and non-zero on error, filling a
 * reclf_err with a message that says what was wrong, where (path:row, tensor name) and what was
 * expected. Only the command-line layer (runtime/main.c and cmd_*.c) prints and exits. */
#ifndef RECLF_COMMON_H
#define RECLF_COMMON_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
    char msg[1024];
} reclf_err;

/* Formats a message into err (if err is non-NULL) and returns -1, so `return reclf_fail(err, ...)`. */
int reclf_fail(reclf_err *err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Writes `len` bytes to `path` atomically: a temporary file in the same folder, fsync, rename,
 * fsync of the folder. A crash at any moment leaves either the old file or the new one. */
int reclf_write_file_atomic(const char *path, const void *data, size_t len, reclf_err *err);
/* Removes the temporary files that writers of `path` killed mid-write left behind (path.tmp.PID
 * of a process that no longer runs). Returns how many went. */
int reclf_remove_stale_temporaries(const char *path);

/* Reads a whole file into a malloc'ed buffer (NUL-terminated for convenience). */
int reclf_read_file(const char *path, unsigned char **data, size_t *len, reclf_err *err);

/* Creates a directory and its parents (like mkdir -p). */
int reclf_mkdirs(const char *path, reclf_err *err);

double reclf_now_seconds(void);

/* Sets OpenMP's (and so OpenBLAS's) thread count; n <= 0 leaves the default. */
void reclf_set_threads(int n);

#endif
