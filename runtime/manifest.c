/* CSV manifests of real (or written-out synthetic) data, SPEC §9. */
#include "manifest.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "image.h"
#include "synth.h"

/* ------------------------------------------------------------------------------------------ */
/* RFC 4180 record reader */

typedef struct {
    char **f;
    int n, cap;
} record;

static void record_clear(record *r) {
    for (int i = 0; i < r->n; i++) free(r->f[i]);
    r->n = 0;
}

static int record_push(record *r, const char *s, size_t len) {
    if (r->n == r->cap) {
        int cap = r->cap ? r->cap * 2 : 16;
        char **nf = realloc(r->f, (size_t)cap * sizeof *nf);
        if (!nf) return -1;
        r->f = nf;
        r->cap = cap;
    }
    char *c = malloc(len + 1);
    if (!c) return -1;
    memcpy(c, s, len);
    c[len] = 0;
    r->f[r->n++] = c;
    return 0;
}

typedef struct {
    char *p;
    size_t n, cap;
} field_buf;

static int fb_put(field_buf *b, char c) {
    if (b->n + 1 >= b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        char *np = realloc(b->p, cap);
        if (!np) return -1;
        b->p = np;
        b->cap = cap;
    }
    b->p[b->n++] = c;
    return 0;
}

enum { REC_OK = 1, REC_EOF = 0, REC_UNTERMINATED = -1, REC_OOM = -2 };

/* Reads one record starting at *pos. A record ends at an unquoted LF, CRLF or CR, or at the end
 * of the data. *blank is set for an empty line. */
static int read_record(const char *s, size_t len, size_t *pos, record *rec, field_buf *fb, int *blank) {
    record_clear(rec);
    size_t i = *pos;
    if (i >= len) return REC_EOF;
    *blank = (s[i] == '\n' || s[i] == '\r');
    for (;;) {
        fb->n = 0;
        if (i < len && s[i] == '"') {
            i++;
            for (;;) {
                if (i >= len) {
                    *pos = len;
                    return REC_UNTERMINATED;
                }
                if (s[i] == '"') {
                    if (i + 1 < len && s[i + 1] == '"') {
                        if (fb_put(fb, '"')) return REC_OOM;
                        i += 2;
                        continue;
                    }
                    i++;
                    break;
                }
                if (fb_put(fb, s[i++])) return REC_OOM;
            }
            /* be lenient about text between the closing quote and the separator */
            while (i < len && s[i] != ',' && s[i] != '\n' && s[i] != '\r')
                if (fb_put(fb, s[i++])) return REC_OOM;
        } else {
            while (i < len && s[i] != ',' && s[i] != '\n' && s[i] != '\r')
                if (fb_put(fb, s[i++])) return REC_OOM;
        }
        if (record_push(rec, fb->p ? fb->p : "", fb->n)) return REC_OOM;
        if (i < len && s[i] == ',') {
            i++;
            continue;
        }
        if (i < len && s[i] == '\r') { /* CRLF or a lone CR */
            i++;
            if (i < len && s[i] == '\n') i++;
        } else if (i < len && s[i] == '\n') {
            i++;
        }
        *pos = i;
        return REC_OK;
    }
}

/* Returns the byte offset of the first invalid UTF-8 sequence, or -1 when valid. */
static long utf8_invalid_at(const char *str) {
    const unsigned char *s = (const unsigned char *)str;
    for (long i = 0; s[i];) {
        unsigned c = s[i];
        int n;
        unsigned cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            n = 1; cp = c & 0x1F; min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2; cp = c & 0x0F; min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3; cp = c & 0x07; min = 0x10000;
        } else {
            return i;
        }
        for (int k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i; /* overlong, range, surrogate */
        i += n + 1;
    }
    return -1;
}

/* ------------------------------------------------------------------------------------------ */

enum { COL_IMAGE = 0, COL_REPORT, COL_SPLIT, COL_LABEL0, COL_MASK = COL_LABEL0 + RECLF_N_FINDINGS, N_COLS };

static const char *col_name(int c) {
    static const char *const fixed[] = {"image", "report", "split"};
    if (c < COL_LABEL0) return fixed[c];
    if (c < COL_MASK) return reclf_finding_names[c - COL_LABEL0];
    return "mask";
}

static char *resolve(const char *dir, const char *p) {
    if (p[0] == '/') return strdup(p);
    size_t n = strlen(dir) + strlen(p) + 2;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s/%s", dir, p);
    return s;
}

static int parse_label(const char *s, int *out) {
    /* CheXpert-style manifests write 1.0 / 0.0 / -1.0; accept those too */
    while (*s == ' ') s++;
    size_t n = strlen(s);
    while (n && s[n - 1] == ' ') n--;
    if (n == 0) { *out = RECLF_LABEL_MISSING; return 0; }
    static const char *const ok[] = {"1", "0", "-1", "1.0", "0.0", "-1.0"};
    static const int val[] = {1, 0, -1, 1, 0, -1};
    for (int i = 0; i < 6; i++)
        if (strlen(ok[i]) == n && !strncmp(s, ok[i], n)) { *out = val[i]; return 0; }
    return -1;
}

static void row_free(reclf_manifest_row *r) {
    free(r->image);
    free(r->image_path);
    free(r->mask);
    free(r->mask_path);
    free(r->report);
}

void manifest_free(reclf_manifest *m) {
    if (!m) return;
    for (long i = 0; i < m->n_rows; i++) row_free(&m->rows[i]);
    free(m->rows);
    for (int s = 0; s < 3; s++) free(m->split_rows[s]);
    for (long i = 0; i < m->n_skipped; i++) free(m->skipped_msgs[i]);
    free(m->skipped_msgs);
    free(m->path);
    free(m->dir);
    memset(m, 0, sizeof *m);
}

static int check_file(const char *path, const char *mpath, long row, const char *col, const char *resolved,
                      reclf_err *err) {
    if (access(resolved, F_OK) != 0)
        return reclf_fail(err, "%s:%ld: column '%s': missing %s file '%s'", mpath, row, col, col, resolved);
    if (access(resolved, R_OK) != 0)
        return reclf_fail(err, "%s:%ld: column '%s': unreadable %s file '%s': %s", mpath, row, col, col, resolved,
                          strerror(errno));
    (void)path;
    return 0;
}

/* Validates one record into r (zeroed on entry). */
static int parse_row(const reclf_manifest *m, const record *rec, const int *colidx, int ncols_header, long row,
                     reclf_manifest_row *r, reclf_err *err) {
    const char *P = m->path;
    if (rec->n != ncols_header) {
        if (rec->n < ncols_header) {
            /* name the first column that is missing */
            const char *missing = "?";
            for (int c = 0; c < N_COLS; c++)
                if (colidx[c] >= rec->n) { missing = col_name(c); break; }
            return reclf_fail(err, "%s:%ld: too few fields (%d, header has %d; column '%s' is missing)", P, row,
                              rec->n, ncols_header, missing);
        }
        return reclf_fail(err, "%s:%ld: too many fields (%d, header has %d; unquoted comma?)", P, row, rec->n,
                          ncols_header);
    }
    for (int c = 0; c < N_COLS; c++) {
        if (colidx[c] < 0) continue;
        long bad = utf8_invalid_at(rec->f[colidx[c]]);
        if (bad >= 0)
            return reclf_fail(err, "%s:%ld: column '%s': invalid UTF-8 at byte %ld of the field", P, row, col_name(c),
                              bad);
    }
    const char *img = rec->f[colidx[COL_IMAGE]];
    if (!*img) return reclf_fail(err, "%s:%ld: column 'image': empty image path", P, row);
    const char *rep = rec->f[colidx[COL_REPORT]];
    const char *q = rep;
    while (*q && isspace((unsigned char)*q)) q++;
    if (!*q) return reclf_fail(err, "%s:%ld: column 'report': empty report", P, row);
    const char *sp = rec->f[colidx[COL_SPLIT]];
    r->split = synth_split_from_name(sp);
    if (r->split < 0 || r->split > SPLIT_TEST)
        return reclf_fail(err, "%s:%ld: column 'split': unknown split '%s' (expected train, val or test)", P, row, sp);
    for (int k = 0; k < RECLF_N_FINDINGS; k++) {
        const char *v = rec->f[colidx[COL_LABEL0 + k]];
        if (parse_label(v, &r->labels[k]))
            return reclf_fail(err, "%s:%ld: column '%s': bad label value '%s' (expected 1, 0, -1 or empty)", P, row,
                              reclf_finding_names[k], v);
    }
    r->csv_row = row;
    r->image = strdup(img);
    r->image_path = resolve(m->dir, img);
    r->report = strdup(rep);
    if (!r->image || !r->image_path || !r->report) return reclf_fail(err, "%s:%ld: out of memory", P, row);
    if (check_file(img, P, row, "image", r->image_path, err)) return -1;
    if (colidx[COL_MASK] >= 0 && rec->f[colidx[COL_MASK]][0]) {
        r->mask = strdup(rec->f[colidx[COL_MASK]]);
        r->mask_path = r->mask ? resolve(m->dir, r->mask) : NULL;
        if (!r->mask_path) return reclf_fail(err, "%s:%ld: out of memory", P, row);
        if (check_file(r->mask, P, row, "mask", r->mask_path, err)) return -1;
    }
    return 0;
}

int manifest_load(const char *path, reclf_manifest *m, int skip_bad, reclf_err *err) {
    memset(m, 0, sizeof *m);
    unsigned char *data;
    size_t len;
    if (access(path, F_OK) != 0) return reclf_fail(err, "%s: missing manifest file", path);
    if (reclf_read_file(path, &data, &len, err)) return -1;
    m->path = strdup(path);
    char *slash = strrchr(path, '/');
    m->dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : strdup(".");
    if (!m->path || !m->dir) {
        free(data);
        manifest_free(m);
        return reclf_fail(err, "%s: out of memory", path);
    }
    const char *s = (const char *)data;
    size_t pos = 0;
    if (len >= 3 && data[0] == 0xEF && data[1] == 0xBB && data[2] == 0xBF) pos = 3; /* UTF-8 BOM */
    record rec = {0};
    field_buf fb = {0};
    int colidx[N_COLS], ncols = 0, rc = 0, blank = 0;
    long row = 0, cap = 0;
    reclf_err rowerr;

    int st = read_record(s, len, &pos, &rec, &fb, &blank);
    row = 1;
    if (st == REC_EOF || (st == REC_OK && blank)) {
        rc = reclf_fail(err, "%s:1: empty file or empty header (expected image,report,split,<labels>[,mask])", path);
        goto done;
    }
    if (st == REC_UNTERMINATED) { rc = reclf_fail(err, "%s:1: unterminated quote in the header", path); goto done; }
    if (st == REC_OOM) { rc = reclf_fail(err, "%s: out of memory", path); goto done; }
    for (int c = 0; c < N_COLS; c++) colidx[c] = -1;
    ncols = rec.n;
    for (int i = 0; i < rec.n; i++) {
        if (utf8_invalid_at(rec.f[i]) >= 0) {
            rc = reclf_fail(err, "%s:1: header field %d: invalid UTF-8", path, i + 1);
            goto done;
        }
        /* trim and compare case-insensitively */
        char *h = rec.f[i];
        while (*h == ' ') h++;
        size_t n = strlen(h);
        while (n && h[n - 1] == ' ') n--;
        for (int c = 0; c < N_COLS; c++) {
            const char *nm = col_name(c);
            if (strlen(nm) == n && !strncasecmp(h, nm, n)) {
                if (colidx[c] >= 0) {
                    rc = reclf_fail(err, "%s:1: column '%s' appears twice in the header", path, nm);
                    goto done;
                }
                colidx[c] = i;
            }
        }
    }
    for (int c = 0; c < COL_MASK; c++)
        if (colidx[c] < 0) {
            rc = reclf_fail(err, "%s:1: missing column '%s' in the header (need image, report, split, opacity, "
                            "nodule, effusion, pneumothorax, cardiomegaly; mask optional)", path, col_name(c));
            goto done;
        }

    for (;;) {
        st = read_record(s, len, &pos, &rec, &fb, &blank);
        if (st == REC_EOF) break;
        row++;
        if (st == REC_OOM) { rc = reclf_fail(err, "%s:%ld: out of memory", path, row); goto done; }
        if (st == REC_UNTERMINATED) {
            /* the quote opened in field rec.n (the fields before it were complete) */
            const char *cn = "(extra field)";
            for (int c = 0; c < N_COLS; c++)
                if (colidx[c] == rec.n) cn = col_name(c);
            rc = reclf_fail(err, "%s:%ld: column '%s': unterminated quote (the quoted field runs to the end of the file)",
                            path, row, cn);
            goto done;
        }
        if (blank && rec.n == 1) continue; /* empty line */
        if (m->n_rows == cap) {
            cap = cap ? cap * 2 : 64;
            reclf_manifest_row *nr = realloc(m->rows, (size_t)cap * sizeof *nr);
            if (!nr) { rc = reclf_fail(err, "%s: out of memory", path); goto done; }
            m->rows = nr;
        }
        reclf_manifest_row *r = &m->rows[m->n_rows];
        memset(r, 0, sizeof *r);
        if (parse_row(m, &rec, colidx, ncols, row, r, &rowerr)) {
            row_free(r);
            if (!skip_bad) {
                rc = reclf_fail(err, "%s", rowerr.msg);
                goto done;
            }
            char **nm = realloc(m->skipped_msgs, (size_t)(m->n_skipped + 1) * sizeof *nm);
            if (!nm || !(nm[m->n_skipped] = strdup(rowerr.msg))) {
                if (nm) m->skipped_msgs = nm;
                rc = reclf_fail(err, "%s: out of memory", path);
                goto done;
            }
            m->skipped_msgs = nm;
            m->n_skipped++;
            continue;
        }
        m->n_rows++;
    }
    /* per-split index lists */
    for (int sp = 0; sp < 3; sp++) {
        m->split_rows[sp] = malloc((size_t)(m->n_rows ? m->n_rows : 1) * sizeof(long));
        if (!m->split_rows[sp]) { rc = reclf_fail(err, "%s: out of memory", path); goto done; }
    }
    for (long i = 0; i < m->n_rows; i++) {
        int sp = m->rows[i].split;
        m->split_rows[sp][m->n_split[sp]++] = i;
    }
done:
    record_clear(&rec);
    free(rec.f);
    free(fb.p);
    free(data);
    if (rc) manifest_free(m);
    return rc;
}

long manifest_split_row(const reclf_manifest *m, int split, long i) {
    if (split < 0 || split > 2 || i < 0 || i >= m->n_split[split]) return -1;
    return m->split_rows[split][i];
}

int manifest_sample(const reclf_manifest *m, long row, int size, reclf_sample *out, reclf_err *err) {
    memset(out, 0, sizeof *out);
    if (row < 0 || row >= m->n_rows) return reclf_fail(err, "%s: row index %ld out of range (%ld rows)", m->path, row, m->n_rows);
    if (size < 1) return reclf_fail(err, "%s: bad image size %d", m->path, size);
    const reclf_manifest_row *r = &m->rows[row];
    reclf_err e;
    float *pix = NULL, *mpix = NULL;
    int w, h, mw, mh;
    size_t n = (size_t)size * size;
    if (reclf_image_load_raw(r->image_path, &pix, &w, &h, &e))
        return reclf_fail(err, "%s:%ld: column 'image': %s", m->path, r->csv_row, e.msg);
    out->size = size;
    out->image = malloc(n * sizeof(float));
    out->report = strdup(r->report);
    out->mirror_report = reclf_swap_sides(r->report);
    if (!out->image || !out->report || !out->mirror_report) goto oom;
    reclf_image_resize(pix, w, h, out->image, size, size);
    for (size_t i = 0; i < n; i++) out->image[i] = out->image[i] < 0 ? 0 : out->image[i] > 1 ? 1 : out->image[i];
    free(pix);
    pix = NULL;
    memcpy(out->labels, r->labels, sizeof out->labels);
    if (r->mask_path) {
        if (reclf_image_load_raw(r->mask_path, &mpix, &mw, &mh, &e)) {
            reclf_sample_free(out);
            return reclf_fail(err, "%s:%ld: column 'mask': %s", m->path, r->csv_row, e.msg);
        }
        if (mw != w || mh != h) {
            free(mpix);
            reclf_sample_free(out);
            return reclf_fail(err, "%s:%ld: column 'mask': mask '%s' is %dx%d but image '%s' is %dx%d", m->path,
                              r->csv_row, r->mask, mw, mh, r->image, w, h);
        }
        out->mask_union = malloc(n * sizeof(float));
        if (!out->mask_union) goto oom;
        reclf_image_resize(mpix, mw, mh, out->mask_union, size, size);
        for (size_t i = 0; i < n; i++) out->mask_union[i] = out->mask_union[i] >= 0.5f ? 1.0f : 0.0f;
        out->has_mask = 1;
        free(mpix);
    }
    return 0;
oom:
    free(pix);
    free(mpix);
    reclf_sample_free(out);
    return reclf_fail(err, "%s:%ld: out of memory", m->path, r->csv_row);
}

/* ------------------------------------------------------------------------------------------ */
/* Writer */

static int buf_add(char **buf, size_t *len, size_t *cap, const char *s, size_t n) {
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap : 4096;
        while (c < *len + n + 1) c *= 2;
        char *nb = realloc(*buf, c);
        if (!nb) return -1;
        *buf = nb;
        *cap = c;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = 0;
    return 0;
}

int manifest_csv_field(char **buf, size_t *len, size_t *cap, const char *field) {
    size_t n = strlen(field);
    int quote = n > 0 && (field[0] == ' ' || field[n - 1] == ' ');
    for (size_t i = 0; i < n && !quote; i++)
        if (field[i] == ',' || field[i] == '"' || field[i] == '\n' || field[i] == '\r') quote = 1;
    if (!quote) return buf_add(buf, len, cap, field, n);
    if (buf_add(buf, len, cap, "\"", 1)) return -1;
    for (size_t i = 0; i < n; i++) {
        if (field[i] == '"' && buf_add(buf, len, cap, "\"", 1)) return -1;
        if (buf_add(buf, len, cap, field + i, 1)) return -1;
    }
    return buf_add(buf, len, cap, "\"", 1);
}

int manifest_write_synth(const char *dir, uint64_t seed, int split, long n, int size, reclf_err *err) {
    long count = synth_split_count(split);
    if (split < 0 || split > SPLIT_TEST) return reclf_fail(err, "data synth: bad split %d (expected train, val or test)", split);
    if (n < 0 || n > count)
        return reclf_fail(err, "data synth: --n %ld out of range for split %s (at most %ld)", n, synth_split_name(split), count);
    size_t dl = strlen(dir) + 64;
    char *p = malloc(dl);
    if (!p) return reclf_fail(err, "%s: out of memory", dir);
    int rc = 0;
    snprintf(p, dl, "%s/images", dir);
    if (reclf_mkdirs(p, err)) { free(p); return -1; }
    snprintf(p, dl, "%s/masks", dir);
    if (reclf_mkdirs(p, err)) { free(p); return -1; }
    char *csv = NULL;
    size_t len = 0, cap = 0;
    const char *header = "image,report,split,opacity,nodule,effusion,pneumothorax,cardiomegaly,mask\n";
    if (buf_add(&csv, &len, &cap, header, strlen(header))) { rc = reclf_fail(err, "%s: out of memory", dir); goto done; }
    for (long i = 0; i < n; i++) {
        reclf_sample s;
        if (synth_sample(seed, split, i, size, &s, err)) { rc = -1; goto done; }
        char rel_img[64], rel_mask[64], tail[128];
        snprintf(rel_img, sizeof rel_img, "images/%05ld.png", i);
        snprintf(rel_mask, sizeof rel_mask, "masks/%05ld.png", i);
        snprintf(p, dl, "%s/%s", dir, rel_img);
        rc = reclf_image_save_png(p, s.image, size, size, err);
        snprintf(p, dl, "%s/%s", dir, rel_mask);
        if (!rc) rc = reclf_image_save_png(p, s.mask_union, size, size, err);
        snprintf(tail, sizeof tail, ",%s,%d,%d,%d,%d,%d,%s\n", synth_split_name(split), s.labels[0], s.labels[1],
                 s.labels[2], s.labels[3], s.labels[4], rel_mask);
        if (!rc && (buf_add(&csv, &len, &cap, rel_img, strlen(rel_img)) || buf_add(&csv, &len, &cap, ",", 1) ||
                    manifest_csv_field(&csv, &len, &cap, s.report) || buf_add(&csv, &len, &cap, tail, strlen(tail))))
            rc = reclf_fail(err, "%s: out of memory", dir);
        reclf_sample_free(&s);
        if (rc) goto done;
    }
    snprintf(p, dl, "%s/manifest.csv", dir);
    rc = reclf_write_file_atomic(p, csv, len, err);
done:
    free(csv);
    free(p);
    return rc;
}
