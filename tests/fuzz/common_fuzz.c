/* Scratch folder of the fuzz harnesses; see common_fuzz.h. */
#include "common_fuzz.h"

#include <dirent.h>

static char dir[64];

static void remove_dir(void) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    closedir(d);
    rmdir(dir);
}

const char *fuzz_dir(void) {
    if (!dir[0]) {
        strcpy(dir, "/tmp/reclf_fuzz_XXXXXX");
        if (!mkdtemp(dir)) abort();
        atexit(remove_dir);
    }
    return dir;
}

int fuzz_write(const char *name, const uint8_t *data, size_t size, char *path, size_t path_size) {
    snprintf(path, path_size, "%s/%s", fuzz_dir(), name);
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    if (size && fwrite(data, 1, size, f) != size) {
        fclose(f);
        return -1;
    }
    return fclose(f);
}
