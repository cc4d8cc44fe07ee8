/* Word-level and WordPiece tokenizers for reports. */
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const SPECIALS[TOK_N_SPECIAL] = {"[PAD]", "[CLS]", "[SEP]", "[UNK]"};
#define MAX_WORD 200 /* longer "words" (URLs, garbage) become [UNK] */

static uint32_t fnv1a(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

/* Looks up s[0..n) in the hash table; returns the id or -1. */
static int lookup(const reclf_vocab *v, const char *s, size_t n) {
    if (!v->table) return -1;
    uint32_t mask = (uint32_t)v->table_size - 1, h = fnv1a(s, n) & mask;
    for (;;) {
        int id = v->table[h];
        if (id < 0) return -1;
        if (strlen(v->words[id]) == n && !memcmp(v->words[id], s, n)) return id;
        h = (h + 1) & mask;
    }
}

static int rehash(reclf_vocab *v, int size) {
    int *t = malloc((size_t)size * sizeof(int));
    if (!t) return -1;
    for (int i = 0; i < size; i++) t[i] = -1;
    uint32_t mask = (uint32_t)size - 1;
    for (int id = 0; id < v->n; id++) {
        uint32_t h = fnv1a(v->words[id], strlen(v->words[id])) & mask;
        while (t[h] >= 0) h = (h + 1) & mask;
        t[h] = id;
    }
    free(v->table);
    v->table = t;
    v->table_size = size;
    return 0;
}

/* Appends a token (copying s[0..n)) and returns its id; the existing id if already present;
 * -1 on out of memory. words has room for cap entries (grown here). */
static int vocab_add(reclf_vocab *v, int *cap, const char *s, size_t n) {
    int id = lookup(v, s, n);
    if (id >= 0) return id;
    if (v->n == *cap) {
        int c = *cap ? *cap * 2 : 256;
        char **nw = realloc(v->words, (size_t)c * sizeof *nw);
        if (!nw) return -1;
        v->words = nw;
        *cap = c;
    }
    char *w = malloc(n + 1);
    if (!w) return -1;
    memcpy(w, s, n);
    w[n] = 0;
    v->words[v->n++] = w;
    if (2 * v->n > v->table_size) {
        if (rehash(v, v->table_size ? v->table_size * 2 : 1024)) return -1;
    } else {
        uint32_t mask = (uint32_t)v->table_size - 1, h = fnv1a(s, n) & mask;
        while (v->table[h] >= 0) h = (h + 1) & mask;
        v->table[h] = v->n - 1;
    }
    return v->n - 1;
}

static int add_specials(reclf_vocab *v, int *cap) {
    for (int i = 0; i < TOK_N_SPECIAL; i++)
        if (vocab_add(v, cap, SPECIALS[i], strlen(SPECIALS[i])) != i) return -1;
    return 0;
}

void vocab_free(reclf_vocab *v) {
    if (!v) return;
    for (int i = 0; i < v->n; i++) free(v->words[i]);
    free(v->words);
    free(v->table);
    memset(v, 0, sizeof *v);
}

int vocab_id(const reclf_vocab *v, const char *token) { return lookup(v, token, strlen(token)); }

static int is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
static int is_punct(unsigned char c) { return c < 0x80 && c > ' ' && c != 0x7f && !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')); }

/* Next pre-token from *p into buf (lower-cased). Returns its length, 0 at the end of the text;
 * *too_long is set when the word did not fit (buf then holds a prefix). */
static size_t next_word(const char **p, char *buf, int *too_long) {
    const unsigned char *s = (const unsigned char *)*p;
    *too_long = 0;
    while (*s && is_space(*s)) s++;
    if (!*s) {
        *p = (const char *)s;
        return 0;
    }
    size_t n = 0;
    if (is_punct(*s)) {
        buf[n++] = (char)*s++;
    } else {
        while (*s && !is_space(*s) && !is_punct(*s)) {
            unsigned char c = *s++;
            if (c >= 'A' && c <= 'Z') c = (unsigned char)(c - 'A' + 'a');
            if (n < MAX_WORD) buf[n++] = (char)c;
            else *too_long = 1;
        }
    }
    buf[n] = 0;
    *p = (const char *)s;
    return n;
}

typedef struct {
    int id;
    long count;
    const char *w;
} wc;

static int cmp_wc(const void *a, const void *b) {
    const wc *x = a, *y = b;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    return strcmp(x->w, y->w);
}

int vocab_build(reclf_vocab *v, const char *const *texts, long n_texts, int min_count, int max_size, reclf_err *err) {
    memset(v, 0, sizeof *v);
    reclf_vocab all = {0};
    int cap = 0, rc = 0;
    long *counts = NULL;
    long ccap = 0;
    wc *order = NULL;
    char buf[MAX_WORD + 1];
    if (add_specials(&all, &cap)) goto oom;
    for (long t = 0; t < n_texts; t++) {
        const char *p = texts[t];
        int too_long;
        size_t n;
        while (p && (n = next_word(&p, buf, &too_long)) > 0) {
            if (too_long) continue;
            int id = vocab_add(&all, &cap, buf, n);
            if (id < 0) goto oom;
            if (id >= ccap) {
                long c = ccap ? ccap * 2 : 1024;
                while (c <= id) c *= 2;
                long *nc = realloc(counts, (size_t)c * sizeof *nc);
                if (!nc) goto oom;
                memset(nc + ccap, 0, (size_t)(c - ccap) * sizeof *nc);
                counts = nc;
                ccap = c;
            }
            counts[id]++;
        }
    }
    int nw = all.n - TOK_N_SPECIAL;
    order = malloc((size_t)(nw > 0 ? nw : 1) * sizeof *order);
    if (!order) goto oom;
    int k = 0;
    for (int id = TOK_N_SPECIAL; id < all.n; id++)
        if (counts[id] >= (min_count > 0 ? min_count : 1)) order[k++] = (wc){id, counts[id], all.words[id]};
    qsort(order, (size_t)k, sizeof *order, cmp_wc);
    int vcap = 0;
    if (add_specials(v, &vcap)) goto oom;
    for (int i = 0; i < k && (max_size <= 0 || v->n < max_size); i++)
        if (vocab_add(v, &vcap, order[i].w, strlen(order[i].w)) < 0) goto oom;
    goto done;
oom:
    rc = reclf_fail(err, "vocab_build: out of memory (%d words so far)", all.n);
    vocab_free(v);
done:
    vocab_free(&all);
    free(counts);
    free(order);
    return rc;
}

static int load_lines(reclf_vocab *v, const char *s, int skip_header, const char *name, reclf_err *err) {
    int cap = 0;
    if (add_specials(v, &cap)) return reclf_fail(err, "%s: out of memory", name);
    const char *p = s;
    long line = 0;
    while (*p) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        line++;
        size_t m = n;
        /* every trailing CR, not just one: a token never ends in CR, so vocab_serialize ->
         * vocab_deserialize gives the same tokens (found by tests/fuzz/fuzz_vocab.c) */
        while (m && p[m - 1] == '\r') m--;
        if (line > (long)skip_header && m > 0 && vocab_add(v, &cap, p, m) < 0) {
            vocab_free(v);
            return reclf_fail(err, "%s:%ld: out of memory", name, line);
        }
        p += n + (e ? 1 : 0);
    }
    return 0;
}

int vocab_load_bert(reclf_vocab *v, const char *path, reclf_err *err) {
    memset(v, 0, sizeof *v);
    unsigned char *data;
    size_t len;
    if (reclf_read_file(path, &data, &len, err)) return -1;
    if (memchr(data, 0, len)) {
        free(data);
        return reclf_fail(err, "%s: not a vocab.txt (contains NUL bytes)", path);
    }
    int rc = load_lines(v, (const char *)data, 0, path, err);
    free(data);
    if (rc) return rc;
    if (v->n == TOK_N_SPECIAL) {
        vocab_free(v);
        return reclf_fail(err, "%s: empty vocabulary", path);
    }
    v->wordpiece = 1;
    return 0;
}

/* Emits the ids of one pre-token into ids[*pos..limit). */
static void emit_word(const reclf_vocab *v, const char *w, size_t n, int too_long, int32_t *ids, int *pos, int limit) {
    if (*pos >= limit) return;
    if (too_long) {
        ids[(*pos)++] = TOK_UNK;
        return;
    }
    if (!v->wordpiece) {
        int id = lookup(v, w, n);
        ids[(*pos)++] = id >= 0 ? id : TOK_UNK;
        return;
    }
    /* greedy longest-match-first; if any part fails the whole word is [UNK] (as BERT does) */
    int32_t pieces[MAX_WORD];
    int np = 0;
    char tmp[MAX_WORD + 3];
    size_t start = 0;
    while (start < n) {
        int found = -1;
        size_t end = n;
        for (; end > start; end--) {
            size_t l = 0;
            if (start > 0) {
                tmp[0] = '#';
                tmp[1] = '#';
                l = 2;
            }
            memcpy(tmp + l, w + start, end - start);
            l += end - start;
            found = lookup(v, tmp, l);
            if (found >= 0) break;
        }
        if (found < 0) {
            ids[(*pos)++] = TOK_UNK;
            return;
        }
        pieces[np++] = found;
        start = end;
    }
    for (int i = 0; i < np && *pos < limit; i++) ids[(*pos)++] = pieces[i];
}

int tokenize(const reclf_vocab *v, const char *text, int L, int32_t *ids) {
    if (L < 2) return -1;
    int pos = 0;
    ids[pos++] = TOK_CLS;
    const char *p = text ? text : "";
    char buf[MAX_WORD + 1];
    int too_long;
    size_t n;
    while (pos < L - 1 && (n = next_word(&p, buf, &too_long)) > 0) emit_word(v, buf, n, too_long, ids, &pos, L - 1);
    ids[pos++] = TOK_SEP;
    int used = pos;
    while (pos < L) ids[pos++] = TOK_PAD;
    return used;
}

char *vocab_serialize(const reclf_vocab *v) {
    size_t len = 64;
    for (int i = 0; i < v->n; i++) len += strlen(v->words[i]) + 1;
    char *s = malloc(len);
    if (!s) return NULL;
    size_t o = (size_t)snprintf(s, len, "reclf-vocab 1 %d %d\n", v->wordpiece, v->n);
    for (int i = 0; i < v->n; i++) {
        size_t l = strlen(v->words[i]);
        memcpy(s + o, v->words[i], l);
        o += l;
        s[o++] = '\n';
    }
    s[o] = 0;
    return s;
}

int vocab_deserialize(reclf_vocab *v, const char *s, reclf_err *err) {
    memset(v, 0, sizeof *v);
    int version, wp, n;
    if (!s || sscanf(s, "reclf-vocab %d %d %d", &version, &wp, &n) != 3 || version != 1 || n < TOK_N_SPECIAL)
        return reclf_fail(err, "vocabulary: bad header (expected 'reclf-vocab 1 <wordpiece> <n>')");
    const char *body = strchr(s, '\n');
    if (!body) return reclf_fail(err, "vocabulary: no tokens after the header");
    /* the specials are stored too (lines 2..5); check them rather than trust positions */
    for (int i = 0; i < TOK_N_SPECIAL; i++) {
        size_t l = strlen(SPECIALS[i]);
        const char *line = body + 1;
        for (int k = 0; k < i; k++) line = strchr(line, '\n') ? strchr(line, '\n') + 1 : "";
        if (strncmp(line, SPECIALS[i], l) || (line[l] != '\n' && line[l] != 0))
            return reclf_fail(err, "vocabulary: id %d should be %s", i, SPECIALS[i]);
    }
    /* skip the header and the four specials (load_lines adds them itself) */
    if (load_lines(v, body + 1, TOK_N_SPECIAL, "vocabulary", err)) return -1;
    if (v->n != n) {
        int got = v->n;
        vocab_free(v);
        return reclf_fail(err, "vocabulary: header says %d tokens but %d were read", n, got);
    }
    v->wordpiece = wp;
    return 0;
}
