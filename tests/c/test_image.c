/* Image loading (8/16-bit, grey/RGBA, 1x1), errors, resizing, PNG writing and the canvas. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image.h"
#include "stb_image_write.h"

static char dir[64];

static void setup(void) {
    strcpy(dir, "/tmp/reclf_test_image_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}
static void teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

static char *pth(const char *name) {
    static char buf[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

/* A minimal PNG writer for 16-bit grey images (stb_image_write only writes 8 bits): one IDAT
 * holding an uncompressed ("stored") deflate stream. */
static uint32_t crc_table[256];
static uint32_t crc(const unsigned char *p, size_t n, uint32_t c) {
    if (!crc_table[1])
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t v = i;
            for (int k = 0; k < 8; k++) v = v & 1 ? 0xEDB88320u ^ (v >> 1) : v >> 1;
            crc_table[i] = v;
        }
    c = ~c;
    for (size_t i = 0; i < n; i++) c = crc_table[(c ^ p[i]) & 0xff] ^ (c >> 8);
    return ~c;
}
static void be32(unsigned char *p, uint32_t v) {
    p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v;
}
static void chunk(FILE *f, const char *type, const unsigned char *data, uint32_t n) {
    unsigned char h[8];
    be32(h, n);
    memcpy(h + 4, type, 4);
    fwrite(h, 1, 8, f);
    if (n) fwrite(data, 1, n, f); /* fwrite(NULL, 1, 0) is undefined */
    uint32_t c = crc((const unsigned char *)type, 4, 0);
    c = crc(data, n, c);
    be32(h, c);
    fwrite(h, 1, 4, f);
}
static void write_png16(const char *path, const uint16_t *px, int w, int h) {
    size_t raw_n = (size_t)h * (1 + 2 * w);
    unsigned char *raw = malloc(raw_n), *z = malloc(raw_n + 64);
    size_t o = 0;
    for (int y = 0; y < h; y++) {
        raw[o++] = 0; /* filter: none */
        for (int x = 0; x < w; x++) {
            raw[o++] = px[y * w + x] >> 8;
            raw[o++] = px[y * w + x] & 0xff;
        }
    }
    size_t zn = 0;
    z[zn++] = 0x78;
    z[zn++] = 0x01;
    z[zn++] = 1; /* final stored block (raw_n < 65536 here) */
    z[zn++] = raw_n & 0xff;
    z[zn++] = raw_n >> 8;
    z[zn++] = ~raw_n & 0xff;
    z[zn++] = (~raw_n >> 8) & 0xff;
    memcpy(z + zn, raw, raw_n);
    zn += raw_n;
    uint32_t a = 1, b = 0;
    for (size_t i = 0; i < raw_n; i++) {
        a = (a + raw[i]) % 65521;
        b = (b + a) % 65521;
    }
    be32(z + zn, (b << 16) | a);
    zn += 4;
    FILE *f = fopen(path, "wb");
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    fwrite(sig, 1, 8, f);
    unsigned char ihdr[13];
    be32(ihdr, w);
    be32(ihdr + 4, h);
    ihdr[8] = 16; /* bit depth */
    ihdr[9] = 0;  /* grey */
    ihdr[10] = ihdr[11] = ihdr[12] = 0;
    chunk(f, "IHDR", ihdr, 13);
    chunk(f, "IDAT", z, (uint32_t)zn);
    chunk(f, "IEND", NULL, 0);
    fclose(f);
    free(raw);
    free(z);
}

TestSuite(image, .init = setup, .fini = teardown);

Test(image, png_round_trip) {
    int w = 37, h = 23;
    float *img = malloc(sizeof(float) * w * h);
    for (int i = 0; i < w * h; i++) img[i] = (float)((i * 7) % 256) / 255.0f;
    img[0] = -1.0f; /* clamped */
    img[1] = 2.0f;
    reclf_err e;
    cr_assert_eq(reclf_image_save_png(pth("a.png"), img, w, h, &e), 0, "%s", e.msg);
    float *back;
    int bw, bh;
    cr_assert_eq(reclf_image_load_raw(pth("a.png"), &back, &bw, &bh, &e), 0, "%s", e.msg);
    cr_assert_eq(bw, w);
    cr_assert_eq(bh, h);
    cr_assert_float_eq(back[0], 0.0f, 1e-6);
    cr_assert_float_eq(back[1], 1.0f, 1e-6);
    for (int i = 2; i < w * h; i++) cr_assert_float_eq(back[i], img[i], 0.5f / 255.0f + 1e-6f, "pixel %d", i);
    free(back);
    free(img);
}

Test(image, sixteen_bit_grey) {
    uint16_t px[6] = {0, 65535, 32768, 1000, 50000, 257};
    write_png16(pth("g16.png"), px, 3, 2);
    float *back;
    int w, h;
    reclf_err e;
    cr_assert_eq(reclf_image_load_raw(pth("g16.png"), &back, &w, &h, &e), 0, "%s", e.msg);
    cr_assert_eq(w, 3);
    cr_assert_eq(h, 2);
    for (int i = 0; i < 6; i++) cr_assert_float_eq(back[i], px[i] / 65535.0f, 1e-6f, "pixel %d: %f", i, back[i]);
    free(back);
}

Test(image, rgba_and_one_pixel) {
    unsigned char rgba[2 * 4] = {255, 0, 0, 10, 0, 0, 255, 255};
    cr_assert(stbi_write_png(pth("c.png"), 2, 1, 4, rgba, 8));
    float *back;
    int w, h;
    reclf_err e;
    cr_assert_eq(reclf_image_load_raw(pth("c.png"), &back, &w, &h, &e), 0, "%s", e.msg);
    cr_assert_float_eq(back[0], 0.299f, 1e-5f);
    cr_assert_float_eq(back[1], 0.114f, 1e-5f);
    free(back);
    float one = 0.6f;
    cr_assert_eq(reclf_image_save_png(pth("one.png"), &one, 1, 1, &e), 0, "%s", e.msg);
    float out[64];
    cr_assert_eq(reclf_image_load(pth("one.png"), 8, out, &e), 0, "%s", e.msg);
    for (int i = 0; i < 64; i++) cr_assert_float_eq(out[i], 153.0f / 255.0f, 1e-6f);
}

Test(image, errors_name_the_problem) {
    reclf_err e;
    float *p;
    int w, h;
    cr_assert_neq(reclf_image_load_raw(pth("nope.png"), &p, &w, &h, &e), 0);
    cr_assert(strstr(e.msg, "nope.png") && strstr(e.msg, "missing"), "%s", e.msg);

    float img[64 * 64];
    for (int i = 0; i < 64 * 64; i++) img[i] = (float)(i % 97) / 97.0f;
    cr_assert_eq(reclf_image_save_png(pth("t.png"), img, 64, 64, &e), 0);
    cr_assert_eq(truncate(pth("t.png"), 300), 0);
    cr_assert_neq(reclf_image_load_raw(pth("t.png"), &p, &w, &h, &e), 0);
    cr_assert(strstr(e.msg, "t.png") && strstr(e.msg, "truncated"), "%s", e.msg);

    FILE *f = fopen(pth("x.png"), "w");
    fputs("image,report\nthis is a CSV, not a picture\n", f);
    fclose(f);
    cr_assert_neq(reclf_image_load_raw(pth("x.png"), &p, &w, &h, &e), 0);
    cr_assert(strstr(e.msg, "x.png") && strstr(e.msg, "not an image"), "%s", e.msg);

    f = fopen(pth("empty.png"), "w");
    fclose(f);
    cr_assert_neq(reclf_image_load_raw(pth("empty.png"), &p, &w, &h, &e), 0);
    cr_assert(strstr(e.msg, "empty"), "%s", e.msg);
}

Test(image, resize) {
    float in[16], out[4];
    for (int i = 0; i < 16; i++) in[i] = (float)((i % 4 + i / 4) % 2); /* checkerboard */
    reclf_image_resize(in, 4, 4, out, 2, 2);
    for (int i = 0; i < 4; i++) cr_assert_float_eq(out[i], 0.5f, 1e-6f);
    float col[3] = {0, 1, 2}, big[6];
    reclf_image_resize(col, 3, 1, big, 6, 1);
    /* bilinear between pixel centres, clamped at the edges */
    float want[6] = {0, 0.25f, 0.75f, 1.25f, 1.75f, 2};
    for (int i = 0; i < 6; i++) cr_assert_float_eq(big[i], want[i], 1e-6f, "%d: %f", i, big[i]);
    float wide[6] = {0, 1, 2, 3, 4, 5}, small[4];
    reclf_image_resize(wide, 6, 1, small, 4, 1); /* each output covers 1.5 inputs */
    cr_assert_float_eq(small[0], (0 + 0.5f * 1) / 1.5f, 1e-6f);
    cr_assert_float_eq(small[3], (0.5f * 4 + 5) / 1.5f, 1e-6f);
}

Test(image, canvas) {
    reclf_canvas *c = reclf_canvas_new(100, 40, 0, 0, 0);
    cr_assert_not_null(c);
    float g[4] = {0, 1, 1, 0};
    reclf_canvas_blit_grey(c, g, 2, 2, 0, 0, 20, 20);
    cr_assert_eq(c->rgb[0], 0);
    cr_assert_eq(c->rgb[(5 * 100 + 15) * 3], 255);
    int hgt = reclf_canvas_text(c, 30, 2, "Hi 5", 2, 255, 0, 0);
    cr_assert_gt(hgt, 10);
    int red = 0;
    for (int i = 0; i < 100 * 40; i++) red += c->rgb[3 * i] == 255 && c->rgb[3 * i + 1] == 0;
    cr_assert_gt(red, 20);
    cr_assert_gt(reclf_canvas_text_width("Hi 5", 2), 20);
    float heat[1] = {1.0f};
    reclf_canvas_blit_heatmap(c, heat, 1, 1, 80, 20, 10, 10, 0, 1, 1.0f);
    unsigned char want[3];
    reclf_colormap(1.0f, want);
    cr_assert_eq(c->rgb[(25 * 100 + 85) * 3], want[0]);
    cr_assert_gt(want[0], 100); /* hot end is red */
    cr_assert_lt(want[2], 50);
    reclf_canvas_fill_rect(c, 95, 35, 10, 10, 1, 2, 3);
    cr_assert_eq(c->rgb[(39 * 100 + 99) * 3 + 2], 3);
    reclf_err e;
    cr_assert_eq(reclf_canvas_save_png(c, pth("c.png"), &e), 0, "%s", e.msg);
    float *p;
    int w, h;
    cr_assert_eq(reclf_image_load_raw(pth("c.png"), &p, &w, &h, &e), 0, "%s", e.msg);
    cr_assert_eq(w, 100);
    cr_assert_eq(h, 40);
    free(p);
    reclf_canvas_free(c);
}
