/* libFuzzer harness of image decoding (runtime/image.c, reclf_image_decode, with stb_image
 * compiled in and instrumented: tests/fuzz/stb_impl.c). An accepted image has a positive size,
 * every pixel in [0,1], and resizes to 16x16 with every value in [0,1]; an error names the input. */
#include <assert.h>
#include <math.h>

#include "common_fuzz.h"
#include "image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    float *pix = NULL;
    int w = 0, h = 0;
    reclf_err err = {{0}};
    if (reclf_image_decode(data, size, "fuzz.img", &pix, &w, &h, &err) != 0) {
        assert(pix == NULL && strncmp(err.msg, "fuzz.img", 8) == 0);
        return 0;
    }
    assert(pix && w > 0 && h > 0);
    for (size_t i = 0; i < (size_t)w * h; i++) assert(pix[i] >= 0.0f && pix[i] <= 1.0f);
    float out[16 * 16];
    reclf_image_resize(pix, w, h, out, 16, 16);
    for (int i = 0; i < 16 * 16; i++) assert(out[i] >= -1e-6f && out[i] <= 1.0f + 1e-6f);
    free(pix);
    return 0;
}
