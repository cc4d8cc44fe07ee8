/* Image files and pictures: loading PNG/JPEG (any size, 8 or 16 bits, grey/RGB/RGBA) as float
 * grey in [0,1], resizing, writing grey PNGs, and a small RGB canvas for figures. */
#ifndef RECLF_IMAGE_H
#define RECLF_IMAGE_H
#include "common.h"

/* Loads an image at its own size: *pix is a malloc'ed w*h array of grey values in [0,1]
 * (RGB is averaged with luma weights, alpha is ignored). Errors say whether the file is
 * missing, empty/truncated or not an image. */
int reclf_image_load_raw(const char *path, float **pix, int *w, int *h, reclf_err *err);
/* Same from bytes in memory; `name` is used in error messages. */
int reclf_image_decode(const unsigned char *data, size_t len, const char *name, float **pix, int *w, int *h,
                       reclf_err *err);
/* Loads and resizes to size x size into out (size*size floats). */
int reclf_image_load(const char *path, int size, float *out, reclf_err *err);
/* Resizes w x h to ow x oh: area averaging where shrinking, bilinear where enlarging. */
void reclf_image_resize(const float *in, int w, int h, float *out, int ow, int oh);
/* Writes a grey image (values clamped to [0,1]) as an 8-bit grey PNG, atomically. */
int reclf_image_save_png(const char *path, const float *img, int w, int h, reclf_err *err);

/* RGB8 canvas for figures. */
typedef struct {
    int w, h;
    unsigned char *rgb; /* w*h*3 */
} reclf_canvas;

/* New canvas filled with colour (r,g,b); NULL if out of memory or bad size. */
reclf_canvas *reclf_canvas_new(int w, int h, unsigned char r, unsigned char g, unsigned char b);
void reclf_canvas_free(reclf_canvas *c);
void reclf_canvas_fill_rect(reclf_canvas *c, int x, int y, int w, int h, unsigned char r, unsigned char g,
                            unsigned char b);
/* Draws a grey image (values in [0,1]) at (x,y), scaled to dw x dh (nearest neighbour). */
void reclf_canvas_blit_grey(reclf_canvas *c, const float *img, int iw, int ih, int x, int y, int dw, int dh);
/* Blends a heatmap over (x,y,dw,dh): values mapped from [vmin,vmax] through a jet-like colour
 * map (blue, cyan, yellow, red), bilinearly enlarged, mixed with weight alpha. */
void reclf_canvas_blit_heatmap(reclf_canvas *c, const float *heat, int hw, int hh, int x, int y, int dw, int dh,
                               float vmin, float vmax, float alpha);
/* Colour of value t in [0,1] in the heatmap colour map. */
void reclf_colormap(float t, unsigned char rgb[3]);
/* Draws text with stb_easy_font (about 6 x 12 pixels per character at scale 1; '\n' breaks lines).
 * Returns the height drawn in pixels. */
int reclf_canvas_text(reclf_canvas *c, int x, int y, const char *text, int scale, unsigned char r,
                      unsigned char g, unsigned char b);
/* Width in pixels that text would take at this scale (widest line). */
int reclf_canvas_text_width(const char *text, int scale);
int reclf_canvas_save_png(const reclf_canvas *c, const char *path, reclf_err *err);

#endif
