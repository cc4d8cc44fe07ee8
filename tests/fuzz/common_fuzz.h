/* Shared bits of the libFuzzer harnesses (tests/fuzz/fuzz_*.c): a scratch folder for inputs
 * that the code under test reads from files, created once per process. */
#ifndef RECLF_COMMON_FUZZ_H
#define RECLF_COMMON_FUZZ_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The folder (mkdtemp under /tmp), created on first use and removed at exit. */
const char *fuzz_dir(void);
/* Writes data to fuzz_dir()/name and returns the full path (static buffer, one per call site). */
int fuzz_write(const char *name, const uint8_t *data, size_t size, char *path, size_t path_size);

#endif
