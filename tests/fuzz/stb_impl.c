/* stb_image and stb_image_write compiled into the fuzz and replay binaries with the sanitizers
 * (the system libstb is not instrumented, so an overflow inside it would go unseen). The same
 * stb version as libstb-dev: both come from /usr/include/stb. */
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#endif
#include "stb_image.h"
#include "stb_image_write.h"
