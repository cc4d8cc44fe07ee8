/* Image loading, resizing and writing through stb (the implementations live in libstb), and a
 * small RGB canvas for figures and previews. */
#include "image.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stb_image.h"
#include "stb_image_write.h"
/* stb_easy_font is header-only with static functions; not all of them are used here */
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-braces"
#endif
#include "stb_easy_font.h"
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#define RECLF_IMAGE_MAX_PIXELS (1LL << 26)

static int looks_like_png(const unsigned char *d, size_t n) {
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    return n >= 4 && memcmp(d, sig, n < 8 ? n : 8) == 0;
}
static int looks_like_jpeg(const unsigned char *d, size_t n) { return n >= 2 && d[0] == 0xFF && d[1] == 0xD8; }

/* What stb_image 2.27 mishandles in a PNG's chunks (found by tests/fuzz/fuzz_image.c), or NULL:
 * - it reserves a chunk's declared length before reading it, so 40 bytes declaring a 1.6 GB IDAT
 *   allocate 1.6 GB: a chunk running past the end of the data is refused;
 * - an empty first IDAT makes it copy 0 bytes to a NULL buffer (undefined behaviour). Encoders
 *   write no empty IDAT, so one is refused too. */
static const char *png_bad_chunk(const unsigned char *d, size_t n) {
    for (size_t i = 8; i + 8 <= n;) {
        size_t len = ((size_t)d[i] << 24) | ((size_t)d[i + 1] << 16) | ((size_t)d[i + 2] << 8) | d[i + 3];
        if (len > n - i - 8) return "a chunk runs past the end";
        if (!memcmp(d + i + 4, "IEND", 4)) return NULL;
        if (len == 0 && !memcmp(d + i + 4, "IDAT", 4)) return "an empty IDAT chunk";
        i += 12 + len; /* length, type, data, CRC */
    }
    return NULL;
}

/* Two ways a corrupt JPEG breaks stb_image 2.27 (Debian's libstb; upstream checks both since 2.28),
 * both found by tests/fuzz/fuzz_image.c:
 * - a DHT segment declaring more than 256 codes makes stb write past its Huffman table;
 * - the DC coefficient times its quantiser overflows an int when the quantiser is 16-bit or was
 *   never defined (stb then reads whatever its table held). Baseline and progressive JPEG of
 *   8-bit samples, the only kind stb decodes, use 8-bit tables (ITU T.81 B.2.4.1), defined before
 *   the scan that uses them (B.2.4), so a file breaking either rule is refused as corrupt.
 * Walks the JPEG's segments (skipping entropy-coded data after each SOS) and returns what is wrong,
 * or NULL; anything else, malformed or not, is left to stb. */
static const char *jpeg_bad_table(const unsigned char *d, size_t n) {
    unsigned defined = 0, used = 0; /* quantisation tables 0-15 defined by DQT, used by the frame */
    size_t i = 2;
    while (i + 4 <= n) {
        if (d[i] != 0xFF) { /* entropy-coded data: find the next marker that is not stuffing or RSTn */
            i++;
            continue;
        }
        unsigned m = d[i + 1];
        if (m == 0x00 || m == 0xFF || (m >= 0xD0 && m <= 0xD8) || m == 0x01) {
            i += m == 0xFF ? 1 : 2; /* stuffed byte, fill, RSTn, SOI, TEM: no length */
            continue;
        }
        if (m == 0xD9) return NULL; /* end of image */
        size_t len = ((size_t)d[i + 2] << 8) | d[i + 3], end = i + 2 + len;
        if (len < 2) return NULL;
        if (m == 0xC4) { /* tables as stb reads them: while bytes of the segment are left, a table
                           * class byte and 16 counts, read even past the segment (0 past the data) */
            for (size_t p = i + 4; p < end;) {
                unsigned codes = 0;
                for (size_t k = 1; k <= 16; k++) codes += p + k < n ? d[p + k] : 0;
                if (codes > 256) return "a Huffman table declares more than 256 codes";
                p += 17 + codes;
            }
        }
        if (m == 0xDB) { /* tables as stb reads them: a precision/id byte, then 64 entries */
            for (size_t p = i + 4; p < end && p < n;) {
                if (d[p] >> 4) return "a 16-bit quantisation table, but the samples are 8-bit";
                defined |= 1u << (d[p] & 15);
                p += 65;
            }
        }
        if (m >= 0xC0 && m <= 0xC2 && i + 10 <= n) /* SOF: components of 3 bytes, the third its table */
            for (size_t c = 0, nc = d[i + 9]; c < nc && i + 12 + 3 * c < n; c++) used |= 1u << (d[i + 12 + 3 * c] & 15);
        if (m == 0xDA && (used & ~defined)) return "a quantisation table is used before it is defined";
        i = end; /* past the data when the length lies: the loop ends */
    }
    return NULL;
}

int reclf_image_decode(const unsigned char *data, size_t len, const char *name, float **pix, int *w, int *h,
                       reclf_err *err) {
    *pix = NULL;
    if (len == 0) return reclf_fail(err, "%s: empty file (truncated image)", name);
    if (len > 0x7fffffff) return reclf_fail(err, "%s: file too large (%zu bytes)", name, len);
    int iw, ih, ch;
    const char *kind = looks_like_png(data, len) ? "PNG" : looks_like_jpeg(data, len) ? "JPEG" : NULL;
    /* stb also reads BMP, GIF, PSD, TGA, ...: refuse them, only PNG and JPEG are data (SPEC 9) */
    if (!kind) return reclf_fail(err, "%s: not an image (expected PNG or JPEG; %zu bytes)", name, len);
    const char *bad_chunk = !strcmp(kind, "PNG") ? png_bad_chunk(data, len) : NULL;
    if (bad_chunk) return reclf_fail(err, "%s: truncated or corrupt PNG image (%zu bytes; %s)", name, len, bad_chunk);
    const char *bad_table = !strcmp(kind, "JPEG") ? jpeg_bad_table(data, len) : NULL;
    if (bad_table) return reclf_fail(err, "%s: corrupt JPEG image (%s)", name, bad_table);
    if (!stbi_info_from_memory(data, (int)len, &iw, &ih, &ch)) {
        return reclf_fail(err, "%s: truncated or corrupt %s image (%zu bytes; %s)", name, kind, len,
                          stbi_failure_reason());
    }
    /* A few bytes of header can claim any size: refuse before stb allocates the pixels (the
     * largest radiographs are ~4k x 4k; this allows 8k x 8k). */
    if ((long long)iw * ih > RECLF_IMAGE_MAX_PIXELS)
        return reclf_fail(err, "%s: %s image of %dx%d pixels is too large (at most %lld pixels)", name, kind, iw, ih,
                          (long long)RECLF_IMAGE_MAX_PIXELS);
    int is16 = stbi_is_16_bit_from_memory(data, (int)len);
    void *raw;
    if (is16) raw = stbi_load_16_from_memory(data, (int)len, &iw, &ih, &ch, 0);
    else raw = stbi_load_from_memory(data, (int)len, &iw, &ih, &ch, 0);
    if (!raw)
        return reclf_fail(err, "%s: truncated or corrupt %s image (%dx%d, %zu bytes; %s)", name, kind, iw, ih, len,
                          stbi_failure_reason());
    size_t n = (size_t)iw * ih;
    float *out = malloc(n * sizeof(float));
    if (!out) {
        stbi_image_free(raw);
        return reclf_fail(err, "%s: out of memory for a %dx%d image", name, iw, ih);
    }
    const float scale = is16 ? 1.0f / 65535.0f : 1.0f / 255.0f;
    const unsigned char *p8 = raw;
    const unsigned short *p16 = raw;
    for (size_t i = 0; i < n; i++) {
        float c[4] = {0, 0, 0, 0};
        for (int k = 0; k < ch && k < 4; k++) c[k] = (is16 ? p16[i * ch + k] : p8[i * ch + k]) * scale;
        /* 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA: alpha is ignored (radiographs are opaque) */
        out[i] = ch >= 3 ? 0.299f * c[0] + 0.587f * c[1] + 0.114f * c[2] : c[0];
    }
    stbi_image_free(raw);
    *pix = out;
    *w = iw;
    *h = ih;
    return 0;
}

int reclf_image_load_raw(const char *path, float **pix, int *w, int *h, reclf_err *err) {
    *pix = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) return reclf_fail(err, "%s: missing file (no such file)", path);
        return reclf_fail(err, "%s: cannot open: %s", path, strerror(errno));
    }
    fclose(f);
    unsigned char *data;
    size_t len;
    if (reclf_read_file(path, &data, &len, err)) return -1;
    int rc = reclf_image_decode(data, len, path, pix, w, h, err);
    free(data);
    return rc;
}

/* Resamples one line of n values (stride si) into on values (stride so): area averaging when
 * shrinking (every source value contributes by its overlap), bilinear between pixel centres when
 * enlarging. */
static void resample_line(const float *src, int n, int si, float *dst, int on, int so) {
    if (n == on) {
        for (int i = 0; i < n; i++) dst[(size_t)i * so] = src[(size_t)i * si];
        return;
    }
    double ratio = (double)n / on;
    for (int o = 0; o < on; o++) {
        double acc = 0.0;
        if (on < n) {
            double a = o * ratio, b = (o + 1) * ratio;
            int i0 = (int)floor(a), i1 = (int)ceil(b);
            if (i1 > n) i1 = n;
            for (int i = i0; i < i1; i++) {
                double lo = i > a ? i : a, hi = i + 1 < b ? i + 1 : b;
                acc += (hi - lo) * src[(size_t)i * si];
            }
            acc /= ratio;
        } else {
            double s = (o + 0.5) * ratio - 0.5;
            if (s < 0) s = 0;
            if (s > n - 1) s = n - 1;
            int i0 = (int)floor(s);
            int i1 = i0 + 1 < n ? i0 + 1 : i0;
            double t = s - i0;
            acc = (1 - t) * src[(size_t)i0 * si] + t * src[(size_t)i1 * si];
        }
        dst[(size_t)o * so] = (float)acc;
    }
}

void reclf_image_resize(const float *in, int w, int h, float *out, int ow, int oh) {
    float *tmp = malloc((size_t)h * ow * sizeof(float));
    if (!tmp) { /* fall back to nearest neighbour rather than fail: it needs no memory */
        for (int y = 0; y < oh; y++)
            for (int x = 0; x < ow; x++)
                out[(size_t)y * ow + x] = in[(size_t)(y * h / oh) * w + (x * w / ow)];
        return;
    }
    for (int y = 0; y < h; y++) resample_line(in + (size_t)y * w, w, 1, tmp + (size_t)y * ow, ow, 1);
    for (int x = 0; x < ow; x++) resample_line(tmp + x, h, ow, out + x, oh, ow);
    free(tmp);
}

int reclf_image_load(const char *path, int size, float *out, reclf_err *err) {
    float *pix;
    int w, h;
    if (reclf_image_load_raw(path, &pix, &w, &h, err)) return -1;
    reclf_image_resize(pix, w, h, out, size, size);
    free(pix);
    return 0;
}

typedef struct {
    unsigned char *p;
    size_t n, cap;
    int oom;
} membuf;

static void membuf_write(void *ctx, void *data, int size) {
    membuf *m = ctx;
    if (m->oom || size <= 0) return;
    if (m->n + (size_t)size > m->cap) {
        size_t cap = m->cap ? m->cap : 4096;
        while (cap < m->n + (size_t)size) cap *= 2;
        unsigned char *np = realloc(m->p, cap);
        if (!np) {
            m->oom = 1;
            return;
        }
        m->p = np;
        m->cap = cap;
    }
    memcpy(m->p + m->n, data, (size_t)size);
    m->n += (size_t)size;
}

static int write_png(const char *path, const unsigned char *px, int w, int h, int comp, reclf_err *err) {
    membuf m = {0};
    int ok = stbi_write_png_to_func(membuf_write, &m, w, h, comp, px, w * comp);
    if (!ok || m.oom) {
        free(m.p);
        return reclf_fail(err, "%s: PNG encoding failed (%dx%d)", path, w, h);
    }
    int rc = reclf_write_file_atomic(path, m.p, m.n, err);
    free(m.p);
    return rc;
}

int reclf_image_save_png(const char *path, const float *img, int w, int h, reclf_err *err) {
    if (w <= 0 || h <= 0) return reclf_fail(err, "%s: bad image size %dx%d", path, w, h);
    size_t n = (size_t)w * h;
    unsigned char *px = malloc(n);
    if (!px) return reclf_fail(err, "%s: out of memory", path);
    for (size_t i = 0; i < n; i++) {
        float v = img[i];
        v = v < 0 ? 0 : v > 1 ? 1 : v; /* NaN ends up 0 via the comparisons below */
        px[i] = (unsigned char)(v == v ? (int)(v * 255.0f + 0.5f) : 0);
    }
    int rc = write_png(path, px, w, h, 1, err);
    free(px);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Canvas */

reclf_canvas *reclf_canvas_new(int w, int h, unsigned char r, unsigned char g, unsigned char b) {
    if (w <= 0 || h <= 0 || w > 32768 || h > 32768) return NULL;
    reclf_canvas *c = malloc(sizeof *c);
    if (!c) return NULL;
    c->w = w;
    c->h = h;
    c->rgb = malloc((size_t)w * h * 3);
    if (!c->rgb) {
        free(c);
        return NULL;
    }
    for (size_t i = 0; i < (size_t)w * h; i++) {
        c->rgb[3 * i] = r;
        c->rgb[3 * i + 1] = g;
        c->rgb[3 * i + 2] = b;
    }
    return c;
}

void reclf_canvas_free(reclf_canvas *c) {
    if (!c) return;
    free(c->rgb);
    free(c);
}

static void put(reclf_canvas *c, int x, int y, unsigned char r, unsigned char g, unsigned char b) {
    if (x < 0 || y < 0 || x >= c->w || y >= c->h) return;
    unsigned char *p = c->rgb + ((size_t)y * c->w + x) * 3;
    p[0] = r;
    p[1] = g;
    p[2] = b;
}

void reclf_canvas_fill_rect(reclf_canvas *c, int x, int y, int w, int h, unsigned char r, unsigned char g,
                            unsigned char b) {
    for (int j = y < 0 ? 0 : y; j < y + h && j < c->h; j++)
        for (int i = x < 0 ? 0 : x; i < x + w && i < c->w; i++) put(c, i, j, r, g, b);
}

void reclf_canvas_blit_grey(reclf_canvas *c, const float *img, int iw, int ih, int x, int y, int dw, int dh) {
    for (int j = 0; j < dh; j++)
        for (int i = 0; i < dw; i++) {
            float v = img[(size_t)(j * ih / dh) * iw + (i * iw / dw)];
            v = v < 0 ? 0 : v > 1 ? 1 : v;
            unsigned char g = (unsigned char)(v * 255.0f + 0.5f);
            put(c, x + i, y + j, g, g, g);
        }
}

void reclf_colormap(float t, unsigned char rgb[3]) {
    /* piecewise linear jet: blue -> cyan -> green/yellow -> red */
    if (!(t >= 0)) t = 0;
    if (t > 1) t = 1;
    float r = 1.5f - fabsf(4.0f * t - 3.0f), g = 1.5f - fabsf(4.0f * t - 2.0f), b = 1.5f - fabsf(4.0f * t - 1.0f);
    float v[3] = {r, g, b};
    for (int k = 0; k < 3; k++) {
        float x = v[k] < 0 ? 0 : v[k] > 1 ? 1 : v[k];
        rgb[k] = (unsigned char)(x * 255.0f + 0.5f);
    }
}

void reclf_canvas_blit_heatmap(reclf_canvas *c, const float *heat, int hw, int hh, int x, int y, int dw, int dh,
                               float vmin, float vmax, float alpha) {
    if (dw <= 0 || dh <= 0) return;
    float *big = malloc((size_t)dw * dh * sizeof(float));
    if (!big) return;
    reclf_image_resize(heat, hw, hh, big, dw, dh);
    float range = vmax - vmin;
    if (!(range > 0)) range = 1.0f;
    for (int j = 0; j < dh; j++)
        for (int i = 0; i < dw; i++) {
            int X = x + i, Y = y + j;
            if (X < 0 || Y < 0 || X >= c->w || Y >= c->h) continue;
            unsigned char col[3];
            reclf_colormap((big[(size_t)j * dw + i] - vmin) / range, col);
            unsigned char *p = c->rgb + ((size_t)Y * c->w + X) * 3;
            for (int k = 0; k < 3; k++) p[k] = (unsigned char)((1 - alpha) * p[k] + alpha * col[k] + 0.5f);
        }
    free(big);
}

int reclf_canvas_text(reclf_canvas *c, int x, int y, const char *text, int scale, unsigned char r,
                      unsigned char g, unsigned char b) {
    if (!text || !*text) return 0;
    if (scale < 1) scale = 1;
    size_t len = strlen(text);
    int cap = (int)(len * 400 + 1024); /* stb_easy_font needs ~270 bytes per character */
    char *buf = malloc((size_t)cap);
    char *copy = strdup(text);
    if (!buf || !copy) {
        free(buf);
        free(copy);
        return 0;
    }
    unsigned char colour[4] = {r, g, b, 255};
    int quads = stb_easy_font_print(0, 0, copy, colour, buf, cap);
    /* each vertex: x, y, z floats then 4 colour bytes (16 bytes); quads are axis-aligned */
    for (int q = 0; q < quads; q++) {
        float x0 = 1e9f, y0 = 1e9f, x1 = -1e9f, y1 = -1e9f;
        for (int k = 0; k < 4; k++) {
            float v[2];
            memcpy(v, buf + (size_t)(q * 4 + k) * 16, sizeof v);
            x0 = fminf(x0, v[0]);
            x1 = fmaxf(x1, v[0]);
            y0 = fminf(y0, v[1]);
            y1 = fmaxf(y1, v[1]);
        }
        reclf_canvas_fill_rect(c, x + (int)lroundf(x0 * scale), y + (int)lroundf(y0 * scale),
                               (int)lroundf((x1 - x0) * scale), (int)lroundf((y1 - y0) * scale), r, g, b);
    }
    int hgt = stb_easy_font_height(copy) * scale;
    free(buf);
    free(copy);
    return hgt;
}

int reclf_canvas_text_width(const char *text, int scale) {
    if (!text) return 0;
    char *copy = strdup(text);
    if (!copy) return 0;
    int w = stb_easy_font_width(copy) * (scale < 1 ? 1 : scale);
    free(copy);
    return w;
}

int reclf_canvas_save_png(const reclf_canvas *c, const char *path, reclf_err *err) {
    return write_png(path, c->rgb, c->w, c->h, 3, err);
}
