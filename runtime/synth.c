/* SynthCXR: generated chest radiographs with structured findings and templated reports (SPEC §9).
 *
 * A sample is a pure function of (seed, split, index): a per-sample key is hashed from the three,
 * and separate random streams are derived from it for the findings, the anatomy, the pixel noise
 * and the report wording. Keeping the report's stream separate (the "render seed") is what makes
 * the mirror and flip reports possible: rendering the same findings with other sides and the same
 * render seed makes the same template choices, so only the side words change. */
#include "synth.h"

#include "rng.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const reclf_finding_names[RECLF_N_FINDINGS] = {
    "opacity", "nodule", "effusion", "pneumothorax", "cardiomegaly"};

void reclf_sample_free(reclf_sample *s) {
    if (!s) return;
    free(s->image);
    free(s->report);
    free(s->mirror_report);
    free(s->flip_report);
    free(s->masks);
    free(s->mask_union);
    memset(s, 0, sizeof *s);
}

/* ------------------------------------------------------------------------------------------ */
/* Random numbers: rng.c's generator (xoshiro256** seeded by splitmix64), and the draws that
 * define SynthCXR's samples. xint and xnormal are not rng_below and rng_normal: changing them
 * would change every sample of every seed. */

static uint64_t hash2(uint64_t a, uint64_t b) {
    uint64_t x = a ^ (b * 0xD1B54A32D192ED03ull + 0x8CB92BA72F3D8DD7ull);
    rng_splitmix64(&x);
    return rng_splitmix64(&x);
}

static int xint(rng_t *r, int n) { return (int)(rng_double(r) * n); }
static double xnormal(rng_t *r) {
    double u1 = rng_double(r), u2 = rng_double(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* ------------------------------------------------------------------------------------------ */
/* Splits and sample keys. */

long synth_split_count(int split) {
    switch (split) {
    case SPLIT_TRAIN: return SYNTH_TRAIN_COUNT;
    case SPLIT_VAL: return SYNTH_VAL_COUNT;
    case SPLIT_TEST: return SYNTH_TEST_COUNT;
    case SPLIT_ZS: return SYNTH_ZS_PER_CLASS * RECLF_N_FINDINGS;
    default: return -1;
    }
}

int synth_split_from_name(const char *name) {
    if (!name) return -1;
    if (!strcmp(name, "train")) return SPLIT_TRAIN;
    if (!strcmp(name, "val") || !strcmp(name, "valid") || !strcmp(name, "validation")) return SPLIT_VAL;
    if (!strcmp(name, "test")) return SPLIT_TEST;
    if (!strcmp(name, "zs")) return SPLIT_ZS;
    return -1;
}

const char *synth_split_name(int split) {
    static const char *names[] = {"train", "val", "test", "zs"};
    return split >= 0 && split < 4 ? names[split] : "?";
}

/* Disjoint splits: each split hashes its own constant into the key, so no (split, index) pair
 * shares a stream with another. */
static uint64_t sample_key(uint64_t seed, int split, long index) {
    uint64_t k = hash2(seed, 0x5EEDC0DEull);
    k = hash2(k, 0xA5A5000000000000ull + (uint64_t)split * 0x1000193ull + 1);
    return hash2(k, (uint64_t)index);
}

enum { STREAM_FINDINGS = 1, STREAM_ANATOMY = 2, STREAM_NOISE = 3, STREAM_RENDER = 4, STREAM_FLIP = 5 };

static int lateralised(int f) { return f != FINDING_CARDIOMEGALY; }
static int has_zone(int f) { return f == FINDING_OPACITY || f == FINDING_NODULE || f == FINDING_PNEUMOTHORAX; }

static void random_attrs(rng_t *r, synth_findings *f, int k, int side) {
    f->present[k] = 1;
    f->side[k] = lateralised(k) ? side : SIDE_NONE;
    f->zone[k] = has_zone(k) ? 1 + xint(r, 2) : ZONE_NONE;
    f->size[k] = xint(r, 3);
}

int synth_sample_findings(uint64_t seed, int split, long index, synth_findings *f,
                          uint64_t *render_seed, int *flip_finding, reclf_err *err) {
    long count = synth_split_count(split);
    if (count < 0) return reclf_fail(err, "synth: unknown split %d (expected 0 train, 1 val, 2 test, 3 zs)", split);
    if (index < 0 || index >= count)
        return reclf_fail(err, "synth: index %ld out of range for split %s (0..%ld)", index,
                          synth_split_name(split), count - 1);
    uint64_t key = sample_key(seed, split, index);
    rng_t r;
    rng_seed(&r, hash2(key, STREAM_FINDINGS));
    memset(f, 0, sizeof *f);
    if (split == SPLIT_ZS) {
        /* balanced single-finding set: index % 5 is the finding */
        random_attrs(&r, f, (int)(index % RECLF_N_FINDINGS), 1 + xint(&r, 2));
    } else {
        double u = rng_double(&r);
        if (u < 0.30) {
            /* normal */
        } else if (u < 0.55) {
            /* binding case: two lateralised findings on different sides */
            int a = xint(&r, 4), b = xint(&r, 3);
            if (b >= a) b++;
            int sa = 1 + xint(&r, 2);
            random_attrs(&r, f, a, sa);
            random_attrs(&r, f, b, 3 - sa);
            if (rng_double(&r) < 0.2) random_attrs(&r, f, FINDING_CARDIOMEGALY, SIDE_NONE);
        } else {
            /* 1 to 3 findings; lateralised ones share one side, so only binding cases mix sides */
            double v = rng_double(&r);
            int k = v < 0.5 ? 1 : v < 0.85 ? 2 : 3;
            int side = 1 + xint(&r, 2);
            int order[RECLF_N_FINDINGS] = {0, 1, 2, 3, 4};
            for (int i = RECLF_N_FINDINGS - 1; i > 0; i--) {
                int j = xint(&r, i + 1), t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
            for (int i = 0; i < k; i++) random_attrs(&r, f, order[i], side);
        }
    }
    if (render_seed) *render_seed = hash2(key, STREAM_RENDER);
    if (flip_finding) {
        int lat[RECLF_N_FINDINGS], nl = 0;
        for (int k = 0; k < RECLF_N_FINDINGS; k++)
            if (f->present[k] && lateralised(k)) lat[nl++] = k;
        rng_t fr;
        rng_seed(&fr, hash2(key, STREAM_FLIP));
        *flip_finding = nl ? lat[xint(&fr, nl)] : -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Reports. */

typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_add(sbuf *b, const char *s) {
    size_t l = strlen(s);
    if (b->oom) return;
    if (b->n + l + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 128;
        while (cap < b->n + l + 1) cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, l + 1);
    b->n += l;
}

static void sb_printf(sbuf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void sb_printf(sbuf *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    sb_add(b, tmp);
}

static const char *side_word(int side) { return side == SIDE_LEFT ? "left" : side == SIDE_RIGHT ? "right" : "?"; }
static const char *zone_word(int zone) { return zone == ZONE_UPPER ? "upper" : zone == ZONE_LOWER ? "lower" : "?"; }

/* size words per finding and size, two variants each (all start with a consonant: "a ...") */
static const char *const SIZE_WORDS[RECLF_N_FINDINGS][3][2] = {
    {{"small", "mild"}, {"moderate", "moderate"}, {"large", "large"}},
    {{"small", "tiny"}, {"moderate", "medium"}, {"large", "large"}},
    {{"small", "small"}, {"moderate", "moderate"}, {"large", "large"}},
    {{"small", "tiny"}, {"moderate", "moderate"}, {"large", "large"}},
    {{"mild", "mild"}, {"moderate", "moderate"}, {"marked", "severe"}},
};
static const char *const CARDIO_ADVERB[3] = {"mildly", "moderately", "markedly"};

#define N_SYN 3
static const char *const SYNONYMS[RECLF_N_FINDINGS][N_SYN] = {
    {"opacity", "consolidation", "airspace disease"},
    {"nodule", "pulmonary nodule", "nodular opacity"},
    {"pleural effusion", "effusion", "pleural fluid collection"},
    {"pneumothorax", "pneumothorax", "pneumothorax"},
    {"cardiomegaly", "cardiomegaly", "cardiomegaly"},
};
/* "a" only before countable nouns: "moderate airspace disease", "a moderate opacity" */
static const int COUNTABLE[RECLF_N_FINDINGS][N_SYN] = {
    {1, 0, 0}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}};
#define N_FORMS 4

/* Writes the noun phrase of one finding ("a small nodule in the right upper zone"). The choices
 * (form, synonym, size variant) come from the caller so that prompts can enumerate them. */
static void finding_np(sbuf *b, int f, int form, int syn, int sv, int side, int zone, int size) {
    const char *sz = SIZE_WORDS[f][size][sv], *sd = side_word(side), *zn = zone_word(zone);
    const char *sy = SYNONYMS[f][syn];
    const char *a = COUNTABLE[f][syn] ? "a " : "";
    switch (f) {
    case FINDING_OPACITY:
    case FINDING_NODULE:
        switch (form) {
        case 0: sb_printf(b, "%s%s %s %s zone %s", a, sz, sd, zn, sy); break;
        case 1: sb_printf(b, "%s%s %s in the %s %s zone", a, sz, sy, sd, zn); break;
        case 2: sb_printf(b, "%s%s %s in the %s %s lobe", a, sz, sy, sd, zn); break;
        default:
            if (f == FINDING_OPACITY) sb_printf(b, "a %s area of %s in the %s %s lung", sz, sy, sd, zn);
            else sb_printf(b, "%s%s %s projecting over the %s %s lung", a, sz, sy, sd, zn);
        }
        break;
    case FINDING_EFFUSION:
        switch (form) {
        case 0: sb_printf(b, "%s%s %s %s", a, sz, sd, sy); break;
        case 1: sb_printf(b, "%s%s %s on the %s", a, sz, sy, sd); break;
        case 2: sb_printf(b, "%s%s %s at the %s lung base", a, sz, sy, sd); break;
        default: sb_printf(b, "%s%s %s-sided %s", a, sz, sd, sy);
        }
        break;
    case FINDING_PNEUMOTHORAX:
        switch (form) {
        case 0: sb_printf(b, "%s%s %s %s zone %s", a, sz, sd, zn, sy); break;
        case 1: sb_printf(b, "%s%s %s in the %s %s zone", a, sz, sy, sd, zn); break;
        case 2: sb_printf(b, "%s%s %s %s at the %s zone", a, sz, sd, sy, zn); break;
        default: sb_printf(b, "%s%s %s %s %s", a, sz, sd, zn, sy);
        }
        break;
    default: /* cardiomegaly */
        switch (form) {
        case 0:
        case 3: sb_printf(b, "%s cardiomegaly", sz); break;
        case 1: sb_printf(b, "%s enlargement of the cardiac silhouette", sz); break;
        default: sb_printf(b, "%s enlargement of the heart", sz);
        }
    }
}

/* Sentence wrappers around one noun phrase; %s is the phrase. Capitalisation is done later. */
static const char *const WRAP1[] = {"There is %s.", "%s.", "Findings include %s.", "%s is seen.", "%s is noted."};
#define N_WRAP1 5
static const char *const WRAP2[] = {"There is %s and %s.", "%s, with %s.", "Findings include %s and %s.",
                                    "%s and %s are seen."};
#define N_WRAP2 4

static const char *const NEGATIONS[RECLF_N_FINDINGS][4] = {
    {"No focal consolidation.", "No focal opacity.", "There is no airspace disease.", "No consolidation is seen."},
    {"No pulmonary nodule.", "No suspicious nodules.", "There is no nodule.", "No nodule is seen."},
    {"No pleural effusion.", "There is no pleural effusion.", "No effusion.", "No pleural effusion is seen."},
    {"No pneumothorax.", "There is no pneumothorax.", "No evidence of pneumothorax.", "No pneumothorax is seen."},
    {"Heart size is normal.", "The cardiac silhouette is normal in size.", "No cardiomegaly.",
     "The heart is not enlarged."},
};
static const char *const NEG_EFF_PTX[] = {"No pleural effusion or pneumothorax.",
                                          "There is no pleural effusion or pneumothorax."};
static const char *const NEG_ALL3[] = {"No focal consolidation, pleural effusion or pneumothorax."};
static const char *const CLEAR[] = {"The lungs are clear.", "Lungs are clear bilaterally.",
                                    "The lungs are well expanded and clear."};
static const char *const NORMAL[] = {"No acute cardiopulmonary process.", "No acute cardiopulmonary abnormality.",
                                     "Normal chest radiograph."};
static const char *const OTHERWISE[] = {"The lungs are otherwise clear.", "Otherwise the lungs are clear."};
static const char *const FILLERS[] = {"Frontal view of the chest.", "PA and lateral views of the chest were obtained.",
                                      "The osseous structures are intact.", "The mediastinal contours are unremarkable.",
                                      "Comparison: none.", "No acute osseous abnormality.",
                                      "Soft tissues are unremarkable."};
#define NELEM(a) ((int)(sizeof(a) / sizeof((a)[0])))

#define MAX_SENT 24

/* Capitalises the first letter of s in place. */
static void capitalise(char *s) {
    if (s && *s) s[0] = (char)toupper((unsigned char)s[0]);
}

static char *sb_take(sbuf *b) {
    if (b->oom) {
        free(b->p);
        return NULL;
    }
    if (!b->p) return strdup("");
    return b->p;
}

/* Renders one finding's noun phrase with random choices drawn from r. */
static char *random_np(rng_t *r, const synth_findings *f, int k) {
    int form = xint(r, N_FORMS), syn = xint(r, N_SYN), sv = xint(r, 2);
    sbuf b = {0};
    finding_np(&b, k, form, syn, sv, f->side[k], f->zone[k], f->size[k]);
    return sb_take(&b);
}

static char *wrap(const char *fmt, const char *a, const char *b2) {
    size_t n = strlen(fmt) + strlen(a) + (b2 ? strlen(b2) : 0) + 1;
    char *s = malloc(n);
    if (!s) return NULL;
    if (b2) snprintf(s, n, fmt, a, b2);
    else snprintf(s, n, fmt, a);
    capitalise(s);
    return s;
}

char *synth_render_report(const synth_findings *f, uint64_t render_seed) {
    /* Every random draw below depends only on render_seed and on present/zone/size, never on a
     * side, so two renders that differ only in sides stay aligned draw for draw. */
    rng_t r;
    rng_seed(&r, render_seed);
    char *sent[MAX_SENT];
    int ns = 0, oom = 0;
#define PUSH(expr)                                   \
    do {                                             \
        char *s_ = (expr);                           \
        if (!s_) oom = 1;                            \
        else if (ns < MAX_SENT) sent[ns++] = s_;     \
        else free(s_);                               \
    } while (0)

    int lat[RECLF_N_FINDINGS], nlat = 0, any = 0, lung_any = 0;
    for (int k = 0; k < RECLF_N_FINDINGS; k++) {
        if (!f->present[k]) continue;
        any = 1;
        if (lateralised(k)) {
            lat[nlat++] = k;
            lung_any = 1;
        }
    }
    /* positive findings; with two or more lateralised findings, the first two may share a sentence */
    int combined = nlat >= 2 && rng_double(&r) < 0.5;
    for (int k = 0; k < RECLF_N_FINDINGS; k++) {
        if (!f->present[k]) continue;
        if (combined && k == lat[1]) continue;
        if (combined && k == lat[0]) {
            char *a = random_np(&r, f, lat[0]), *b = random_np(&r, f, lat[1]);
            int w = xint(&r, N_WRAP2);
            if (a && b) PUSH(wrap(WRAP2[w], a, b));
            else oom = 1;
            free(a);
            free(b);
            continue;
        }
        if (k == FINDING_CARDIOMEGALY && rng_double(&r) < 0.35) {
            /* adverbial forms that do not fit the noun-phrase wrappers */
            int w = xint(&r, 2);
            if (w == 0) PUSH(wrap("The heart is %s enlarged.", CARDIO_ADVERB[f->size[k]], NULL));
            else PUSH(wrap("The cardiac silhouette is %s enlarged.", CARDIO_ADVERB[f->size[k]], NULL));
            continue;
        }
        char *a = random_np(&r, f, k);
        int w = xint(&r, N_WRAP1);
        if (a) PUSH(wrap(WRAP1[w], a, NULL));
        else oom = 1;
        free(a);
    }
    /* negations of some absent findings */
    int neg[RECLF_N_FINDINGS];
    for (int k = 0; k < RECLF_N_FINDINGS; k++) neg[k] = !f->present[k] && rng_double(&r) < 0.6;
    if (neg[FINDING_OPACITY] && neg[FINDING_EFFUSION] && neg[FINDING_PNEUMOTHORAX] && rng_double(&r) < 0.25) {
        PUSH(strdup(NEG_ALL3[0]));
        neg[FINDING_OPACITY] = neg[FINDING_EFFUSION] = neg[FINDING_PNEUMOTHORAX] = 0;
    } else if (neg[FINDING_EFFUSION] && neg[FINDING_PNEUMOTHORAX] && rng_double(&r) < 0.6) {
        PUSH(strdup(NEG_EFF_PTX[xint(&r, NELEM(NEG_EFF_PTX))]));
        neg[FINDING_EFFUSION] = neg[FINDING_PNEUMOTHORAX] = 0;
    }
    for (int k = 0; k < RECLF_N_FINDINGS; k++)
        if (neg[k]) PUSH(strdup(NEGATIONS[k][xint(&r, 4)]));
    /* normal statements */
    if (!lung_any && rng_double(&r) < 0.7) PUSH(strdup(CLEAR[xint(&r, NELEM(CLEAR))]));
    if (lung_any && rng_double(&r) < 0.3) PUSH(strdup(OTHERWISE[xint(&r, NELEM(OTHERWISE))]));
    if (!any && rng_double(&r) < 0.6) PUSH(strdup(NORMAL[xint(&r, NELEM(NORMAL))]));
    /* fillers */
    int nf = xint(&r, 3), first = xint(&r, NELEM(FILLERS)), step = 1 + xint(&r, NELEM(FILLERS) - 1);
    for (int i = 0; i < nf; i++) PUSH(strdup(FILLERS[(first + i * step) % NELEM(FILLERS)])); /* distinct: 7 is prime */
    if (ns == 0) PUSH(strdup(NORMAL[0]));
#undef PUSH
    /* shuffled order */
    for (int i = ns - 1; i > 0; i--) {
        int j = xint(&r, i + 1);
        char *t = sent[i];
        sent[i] = sent[j];
        sent[j] = t;
    }
    sbuf b = {0};
    for (int i = 0; i < ns; i++) {
        if (i) sb_add(&b, " ");
        sb_add(&b, sent[i]);
        free(sent[i]);
    }
    char *out = sb_take(&b);
    if (oom) {
        free(out);
        return NULL;
    }
    return out;
}

int synth_sample_report(uint64_t seed, int split, long index, char **report, reclf_err *err) {
    synth_findings f = {0}; /* set by synth_sample_findings whenever it returns 0 */
    uint64_t rs = 0;
    if (synth_sample_findings(seed, split, index, &f, &rs, NULL, err)) return -1;
    *report = synth_render_report(&f, rs);
    if (!*report) return reclf_fail(err, "synth: out of memory rendering report %s/%ld", synth_split_name(split), index);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Side words. */

static int is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

/* If a whole word "left"/"right" (any case) starts at text[i], returns its length and sets
 * *is_left; otherwise 0. Word boundaries are non-letters, so "left-sided" counts, "leftward"
 * does not. */
static size_t side_word_at(const char *text, size_t i, int *is_left) {
    if (i > 0 && is_alpha(text[i - 1])) return 0;
    static const char *const w[2] = {"left", "right"};
    for (int k = 0; k < 2; k++) {
        size_t l = strlen(w[k]), j = 0;
        while (j < l && text[i + j] && tolower((unsigned char)text[i + j]) == w[k][j]) j++;
        if (j == l && !is_alpha(text[i + l])) {
            *is_left = (k == 0);
            return l;
        }
    }
    return 0;
}

char *reclf_swap_sides(const char *text) {
    if (!text) return NULL;
    size_t n = strlen(text);
    char *out = malloc(n + n / 4 + 2); /* each 4-letter "left" grows by one letter at most */
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        int is_left;
        size_t l = side_word_at(text, i, &is_left);
        if (!l) {
            out[o++] = text[i++];
            continue;
        }
        /* keep the case pattern: all upper, capitalised, or lower */
        int all_upper = 1;
        for (size_t j = 0; j < l; j++)
            if (!isupper((unsigned char)text[i + j])) all_upper = 0;
        int cap = isupper((unsigned char)text[i]);
        const char *rep = is_left ? "right" : "left";
        for (size_t j = 0; rep[j]; j++) {
            char c = rep[j];
            if (all_upper || (cap && j == 0)) c = (char)toupper((unsigned char)c);
            out[o++] = c;
        }
        i += l;
    }
    out[o] = 0;
    return out;
}

int reclf_names_side(const char *text) {
    if (!text) return 0;
    int count = 0;
    for (size_t i = 0; text[i];) {
        int is_left;
        size_t l = side_word_at(text, i, &is_left);
        if (l) {
            count++;
            i += l;
        } else {
            i++;
        }
    }
    return count;
}

/* ------------------------------------------------------------------------------------------ */
/* Zero-shot prompts. */

int synth_class_prompts(int finding, int positive, char ***prompts, int *n) {
    *prompts = NULL;
    *n = 0;
    if (finding < 0 || finding >= RECLF_N_FINDINGS) return -1;
    char **p = calloc(64, sizeof *p);
    if (!p) return -1;
    int np = 0, oom = 0;
    if (positive) {
        /* one sentence per (synonym-or-form, side, zone), cycling sizes, forms and wrappers so
         * that the set covers the vocabulary of positive report sentences */
        int sides = lateralised(finding) ? 2 : 1, zones = has_zone(finding) ? 2 : 1;
        int variants = finding == FINDING_CARDIOMEGALY ? 3 : N_SYN;
        if (finding == FINDING_PNEUMOTHORAX) variants = 2;
        int c = 0;
        for (int v = 0; v < variants; v++)
            for (int s = 0; s < sides; s++)
                for (int z = 0; z < zones; z++, c++) {
                    sbuf b = {0}, np_ = {0};
                    int syn = finding == FINDING_CARDIOMEGALY || finding == FINDING_PNEUMOTHORAX ? 0 : v;
                    int form = finding == FINDING_CARDIOMEGALY ? v : (c + v) % N_FORMS;
                    finding_np(&np_, finding, form, syn, 0, lateralised(finding) ? 1 + s : 0,
                               has_zone(finding) ? 1 + z : 0, (c + 1) % 3);
                    char *ph = sb_take(&np_);
                    if (!ph) {
                        oom = 1;
                        continue;
                    }
                    /* "there is a moderate left lower zone opacity." */
                    sb_printf(&b, c % 2 ? "%s." : "there is %s.", ph);
                    free(ph);
                    char *s1 = sb_take(&b);
                    if (!s1) oom = 1;
                    else p[np++] = s1;
                }
    } else {
        for (int i = 0; i < 4; i++) {
            char *s = strdup(NEGATIONS[finding][i]);
            if (!s) {
                oom = 1;
                continue;
            }
            for (char *q = s; *q; q++) *q = (char)tolower((unsigned char)*q);
            p[np++] = s;
        }
    }
    if (oom) {
        synth_free_prompts(p, np);
        return -1;
    }
    *prompts = p;
    *n = np;
    return 0;
}

void synth_free_prompts(char **prompts, int n) {
    if (!prompts) return;
    for (int i = 0; i < n; i++) free(prompts[i]);
    free(prompts);
}

long synth_single_finding_index(uint64_t seed, int finding, int k) {
    (void)seed;
    if (finding < 0 || finding >= RECLF_N_FINDINGS || k < 0 || k >= SYNTH_ZS_PER_CLASS) return -1;
    return (long)k * RECLF_N_FINDINGS + finding;
}

/* ------------------------------------------------------------------------------------------ */
/* Images. All geometry is in canonical coordinates (u, v) in [0,1]^2, u to the image's right,
 * v down; a random affine (shift, scale, rotation) maps output pixels back into that space, so
 * image and masks move together. The patient's right lung is on the image's left. */

typedef struct {
    double cx, cy, rx, ry; /* lung ellipse */
    double dome_base, dome_h;
    double lat_dir;        /* +1 if the lateral wall is toward larger u */
} lung_geom;

typedef struct {
    /* inverse affine: canonical = A * (pixel - c - t) + c */
    double a11, a12, a21, a22, tx, ty;
    double body_rx, body_ry, body_cx, body_cy;
    lung_geom lung[2]; /* 0: image left = patient right, 1: image right = patient left */
    double heart_cx, heart_cy, heart_rx, heart_ry;
    double mark_f[4], mark_p[4];
    double rib_freq, rib_phase;
    double gamma, gain, offset, noise;
    /* findings */
    synth_findings f;
    double op_cx, op_cy, op_sx, op_sy, op_tex;
    double no_cx, no_cy, no_r;
    double eff_level;
    double ptx_gap, ptx_v0, ptx_v1;
} scene;

static double clampd(double x, double lo, double hi) { return x < lo ? lo : x > hi ? hi : x; }
/* soft membership: 1 well inside (d < 1 - e), 0 outside (d > 1 + e) */
static double soft_in(double d, double e) { return clampd((1.0 + e - d) / (2.0 * e), 0.0, 1.0); }

static const lung_geom *side_lung(const scene *sc, int side) {
    return &sc->lung[side == SIDE_LEFT ? 1 : 0];
}

static double lung_dome(const lung_geom *L, double u) {
    double d = (u - L->cx) / L->rx;
    return L->dome_base - L->dome_h * (1.0 - d * d);
}

static double ellipse_d(double u, double v, double cx, double cy, double rx, double ry) {
    double x = (u - cx) / rx, y = (v - cy) / ry;
    return sqrt(x * x + y * y);
}

/* zone centre (v) inside a lung */
static double zone_v(const lung_geom *L, int zone) {
    return zone == ZONE_UPPER ? L->cy - 0.42 * L->ry : L->cy + 0.38 * L->ry;
}

static void build_scene(scene *sc, const synth_findings *f, uint64_t key) {
    rng_t r;
    rng_seed(&r, hash2(key, STREAM_ANATOMY));
    memset(sc, 0, sizeof *sc);
    sc->f = *f;
    double ang = rng_uniform(&r, -4.0, 4.0) * 3.141592653589793 / 180.0;
    double scale = rng_uniform(&r, 0.93, 1.05);
    double ca = cos(ang), sa = sin(ang);
    sc->a11 = ca / scale;
    sc->a12 = sa / scale;
    sc->a21 = -sa / scale;
    sc->a22 = ca / scale;
    sc->tx = rng_uniform(&r, -0.03, 0.03);
    sc->ty = rng_uniform(&r, -0.03, 0.03);
    sc->body_cx = 0.5;
    sc->body_cy = 0.55;
    sc->body_rx = rng_uniform(&r, 0.40, 0.44);
    sc->body_ry = 0.52;
    double lry = rng_uniform(&r, 0.27, 0.31), lrx = rng_uniform(&r, 0.135, 0.155), lcy = rng_uniform(&r, 0.45, 0.48);
    for (int i = 0; i < 2; i++) {
        lung_geom *L = &sc->lung[i];
        L->cx = (i == 0 ? 0.31 : 0.69) + rng_uniform(&r, -0.01, 0.01);
        L->cy = lcy;
        L->rx = lrx;
        L->ry = lry;
        /* the patient's right hemidiaphragm (image left) sits a little higher */
        L->dome_base = lcy + 0.86 * lry + (i == 0 ? -0.015 : 0.0);
        L->dome_h = rng_uniform(&r, 0.05, 0.08);
        L->lat_dir = i == 0 ? -1.0 : 1.0;
    }
    sc->heart_rx = rng_uniform(&r, 0.13, 0.145);
    sc->heart_ry = rng_uniform(&r, 0.10, 0.115);
    sc->heart_cx = 0.545 + rng_uniform(&r, -0.01, 0.01);
    sc->heart_cy = lcy + 0.5 * lry;
    for (int i = 0; i < 4; i++) {
        sc->mark_f[i] = rng_uniform(&r, 25.0, 45.0);
        sc->mark_p[i] = rng_uniform(&r, 0.0, 6.283185307179586);
    }
    sc->rib_freq = rng_uniform(&r, 8.0, 10.0);
    sc->rib_phase = rng_uniform(&r, 0.0, 6.283185307179586);
    sc->gamma = rng_uniform(&r, 0.85, 1.15);
    sc->gain = rng_uniform(&r, 0.9, 1.1);
    sc->offset = rng_uniform(&r, -0.04, 0.04);
    sc->noise = rng_uniform(&r, 0.01, 0.025);

    /* finding geometry; drawn in a fixed order so the anatomy stream stays aligned */
    if (f->present[FINDING_CARDIOMEGALY]) {
        static const double crx[3] = {0.2, 0.225, 0.25};
        double old = sc->heart_rx;
        sc->heart_rx = crx[f->size[FINDING_CARDIOMEGALY]] + rng_uniform(&r, -0.008, 0.008);
        sc->heart_ry *= 1.15;
        sc->heart_cx += 0.3 * (sc->heart_rx - old); /* enlarges toward the patient's left */
    }
    if (f->present[FINDING_OPACITY]) {
        const lung_geom *L = side_lung(sc, f->side[FINDING_OPACITY]);
        static const double sg[3] = {0.035, 0.05, 0.065};
        double s = sg[f->size[FINDING_OPACITY]];
        sc->op_cx = L->cx + L->lat_dir * rng_uniform(&r, 0.01, 0.05);
        sc->op_cy = zone_v(L, f->zone[FINDING_OPACITY]) + rng_uniform(&r, -0.02, 0.02);
        double an = rng_uniform(&r, 0.8, 1.25);
        sc->op_sx = s * an;
        sc->op_sy = s / an;
        sc->op_tex = rng_uniform(&r, 0.0, 6.283185307179586);
    }
    if (f->present[FINDING_NODULE]) {
        const lung_geom *L = side_lung(sc, f->side[FINDING_NODULE]);
        static const double nr[3] = {0.022, 0.03, 0.04};
        sc->no_r = nr[f->size[FINDING_NODULE]];
        /* lower-zone nodules stay lateral, clear of the heart */
        sc->no_cx = L->cx + L->lat_dir * (f->zone[FINDING_NODULE] == ZONE_LOWER ? rng_uniform(&r, 0.02, 0.06)
                                                                                 : rng_uniform(&r, -0.02, 0.05));
        sc->no_cy = zone_v(L, f->zone[FINDING_NODULE]) + rng_uniform(&r, -0.04, 0.04);
    }
    if (f->present[FINDING_EFFUSION]) {
        const lung_geom *L = side_lung(sc, f->side[FINDING_EFFUSION]);
        static const double fr[3] = {0.2, 0.32, 0.46};
        double frac = fr[f->size[FINDING_EFFUSION]] + rng_uniform(&r, -0.03, 0.03);
        sc->eff_level = L->dome_base - frac * 2.0 * L->ry * 0.9;
    }
    if (f->present[FINDING_PNEUMOTHORAX]) {
        const lung_geom *L = side_lung(sc, f->side[FINDING_PNEUMOTHORAX]);
        static const double gp[3] = {0.07, 0.09, 0.115};
        sc->ptx_gap = gp[f->size[FINDING_PNEUMOTHORAX]] + rng_uniform(&r, -0.005, 0.005);
        if (f->zone[FINDING_PNEUMOTHORAX] == ZONE_UPPER) {
            sc->ptx_v0 = L->cy - L->ry;
            sc->ptx_v1 = L->cy + 0.1 * L->ry;
        } else {
            sc->ptx_v0 = L->cy - 0.1 * L->ry;
            sc->ptx_v1 = L->dome_base;
        }
    }
}

/* Pneumothorax crescent along the lateral chest wall at row v: returns the horizontal distance
 * in from the lateral lung edge (negative outside the lung) and the crescent width there. */
static void ptx_geom(const scene *sc, double u, double v, double *depth, double *width) {
    const lung_geom *L = side_lung(sc, sc->f.side[FINDING_PNEUMOTHORAX]);
    double y = (v - L->cy) / L->ry;
    *width = 0.0;
    *depth = -1.0;
    if (fabs(y) >= 1.0 || v <= sc->ptx_v0 || v >= sc->ptx_v1) return;
    double edge = L->cx + L->lat_dir * L->rx * sqrt(1.0 - y * y);
    *depth = L->lat_dir * (edge - u);
    double t = (v - sc->ptx_v0) / (sc->ptx_v1 - sc->ptx_v0);
    *width = sc->ptx_gap * pow(sin(3.141592653589793 * t), 0.35);
}

/* Grey value (before contrast and noise) and finding masks at canonical point (u, v). */
static double scene_eval(const scene *sc, double u, double v, float mask[RECLF_N_FINDINGS]) {
    const synth_findings *f = &sc->f;
    for (int k = 0; k < RECLF_N_FINDINGS; k++) mask[k] = 0.0f;
    double val = 0.04;
    double body = soft_in(ellipse_d(u, v, sc->body_cx, sc->body_cy, sc->body_rx, sc->body_ry), 0.03);
    val += body * (0.46 - 0.04);
    /* spine, faint */
    val += body * 0.08 * soft_in(fabs(u - 0.5) / 0.04, 0.3);
    /* lungs with markings (brighter toward the hila) */
    double lung = 0.0;
    for (int i = 0; i < 2; i++) {
        const lung_geom *L = &sc->lung[i];
        double m = soft_in(ellipse_d(u, v, L->cx, L->cy, L->rx, L->ry), 0.05);
        m *= clampd((lung_dome(L, u) - v) / 0.015 + 0.5, 0.0, 1.0);
        if (m > lung) lung = m;
    }
    double marks = 0.03 * sin(sc->mark_f[0] * u + sc->mark_f[1] * v + sc->mark_p[0]) *
                   sin(sc->mark_f[2] * u - sc->mark_f[3] * v + sc->mark_p[1]);
    double hx = fabs(u - 0.5) - 0.1, hy = v - 0.45;
    double hil = 0.1 * exp(-(hx * hx + hy * hy) / (2 * 0.06 * 0.06));
    double lungval = 0.15 + marks + hil;
    double ptx_depth = -1, ptx_w = 0;
    if (f->present[FINDING_PNEUMOTHORAX]) {
        ptx_geom(sc, u, v, &ptx_depth, &ptx_w);
        if (ptx_depth >= 0 && ptx_depth < ptx_w) {
            lungval = 0.02; /* air without lung markings */
            mask[FINDING_PNEUMOTHORAX] = lung > 0.5 ? 1.0f : 0.0f;
        } else if (ptx_w > 0 && ptx_depth >= ptx_w && ptx_depth < ptx_w + 0.012) {
            lungval += 0.25; /* visceral pleural line */
        }
    }
    val = val * (1.0 - lung) + lungval * lung;
    /* ribs: posterior arcs sloping down laterally */
    double t = v + 0.5 * (u - 0.5) * (u - 0.5);
    double rc = 0.5 + 0.5 * cos(6.283185307179586 * sc->rib_freq * t + sc->rib_phase);
    double rib = rc * rc * rc;
    rib *= rib; /* ^6: thin bright bands */
    val += body * 0.06 * rib * (0.3 + 0.7 * lung);
    /* mediastinum and trachea */
    double med = soft_in(fabs(u - 0.5) / 0.055, 0.15) * clampd((v - 0.05) / 0.05, 0, 1) *
                 clampd((sc->heart_cy - v) / 0.05 + 0.5, 0, 1);
    val = val * (1 - med) + 0.58 * med;
    double tr = soft_in(fabs(u - 0.5) / 0.012, 0.3) * clampd((0.36 - v) / 0.03, 0, 1) * clampd((v - 0.04) / 0.03, 0, 1);
    val = val * (1 - tr) + 0.3 * tr;
    /* heart */
    double hd = ellipse_d(u, v, sc->heart_cx, sc->heart_cy, sc->heart_rx, sc->heart_ry);
    double heart = soft_in(hd, 0.06);
    val = val * (1 - heart) + 0.72 * heart;
    if (f->present[FINDING_CARDIOMEGALY] && hd < 1.0) mask[FINDING_CARDIOMEGALY] = 1.0f;
    /* effusion: fluid fills the lung base up to a meniscus that rises along the lateral wall */
    if (f->present[FINDING_EFFUSION]) {
        const lung_geom *L = side_lung(sc, f->side[FINDING_EFFUSION]);
        double d = ellipse_d(u, v, L->cx, L->cy, L->rx, L->ry * 1.05);
        double lat = clampd(L->lat_dir * (u - L->cx) / L->rx, -1, 1);
        double level = sc->eff_level - 0.07 * (lat + 1) * (lat + 1) / 4.0;
        double e = soft_in(d, 0.05) * clampd((v - level) / 0.015 + 0.5, 0, 1);
        val = val * (1 - e) + 0.66 * e;
        if (d < 1.0 && v > level) mask[FINDING_EFFUSION] = 1.0f;
    }
    /* opacity: blurred bright blob with some texture */
    if (f->present[FINDING_OPACITY]) {
        double dx = (u - sc->op_cx) / sc->op_sx, dy = (v - sc->op_cy) / sc->op_sy;
        double g = exp(-0.5 * (dx * dx + dy * dy));
        double tex = 1.0 + 0.2 * sin(40.0 * u + sc->op_tex) * sin(37.0 * v - sc->op_tex);
        val += 0.45 * g * tex;
        if (g > 0.45) mask[FINDING_OPACITY] = 1.0f;
    }
    /* nodule: small bright disc */
    if (f->present[FINDING_NODULE]) {
        double d = sqrt((u - sc->no_cx) * (u - sc->no_cx) + (v - sc->no_cy) * (v - sc->no_cy)) / sc->no_r;
        val += 0.5 * soft_in(d, 0.2);
        if (d < 1.0) mask[FINDING_NODULE] = 1.0f;
    }
    return val;
}

static void to_canonical(const scene *sc, double px, double py, double *u, double *v) {
    double x = px - 0.5 - sc->tx, y = py - 0.5 - sc->ty;
    *u = sc->a11 * x + sc->a12 * y + 0.5;
    *v = sc->a21 * x + sc->a22 * y + 0.5;
}

int synth_sample(uint64_t seed, int split, long index, int size, reclf_sample *out, reclf_err *err) {
    memset(out, 0, sizeof *out);
    if (size < 16 || size > 4096) return reclf_fail(err, "synth: image size %d out of range (16..4096)", size);
    synth_findings f;
    uint64_t rs;
    int flip;
    if (synth_sample_findings(seed, split, index, &f, &rs, &flip, err)) return -1;
    uint64_t key = sample_key(seed, split, index);
    size_t np = (size_t)size * size;
    out->size = size;
    out->image = malloc(np * sizeof(float));
    out->masks = calloc(np * RECLF_N_FINDINGS, sizeof(float));
    out->mask_union = calloc(np, sizeof(float));
    out->report = synth_render_report(&f, rs);
    synth_findings m = f;
    for (int k = 0; k < RECLF_N_FINDINGS; k++)
        if (m.side[k]) m.side[k] = 3 - m.side[k];
    out->mirror_report = synth_render_report(&m, rs);
    int oom = !out->image || !out->masks || !out->mask_union || !out->report || !out->mirror_report;
    if (flip >= 0) {
        synth_findings fl = f;
        fl.side[flip] = 3 - fl.side[flip];
        out->flip_report = synth_render_report(&fl, rs);
        oom |= !out->flip_report;
    }
    if (oom) {
        reclf_sample_free(out);
        return reclf_fail(err, "synth: out of memory for sample %s/%ld at %dx%d", synth_split_name(split), index, size, size);
    }
    int nlat_sides[3] = {0, 0, 0};
    for (int k = 0; k < RECLF_N_FINDINGS; k++) {
        out->labels[k] = f.present[k];
        out->side[k] = f.side[k];
        out->zone[k] = f.zone[k];
        nlat_sides[f.side[k]] += f.present[k] && f.side[k];
    }
    out->is_binding = nlat_sides[SIDE_LEFT] > 0 && nlat_sides[SIDE_RIGHT] > 0;
    out->has_mask = 1;

    scene sc;
    build_scene(&sc, &f, key);
    rng_t nr;
    rng_seed(&nr, hash2(key, STREAM_NOISE));
    const double inv = 1.0 / size;
    float mk[RECLF_N_FINDINGS];
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) {
            /* 2x2 supersampling: the grey value is the mean, a mask covers the pixel when it
             * covers at least half of the sub-samples */
            double acc = 0.0, u, v;
            float cover[RECLF_N_FINDINGS] = {0};
            for (int sy = 0; sy < 2; sy++)
                for (int sx = 0; sx < 2; sx++) {
                    to_canonical(&sc, (x + 0.25 + 0.5 * sx) * inv, (y + 0.25 + 0.5 * sy) * inv, &u, &v);
                    acc += scene_eval(&sc, u, v, mk);
                    for (int k = 0; k < RECLF_N_FINDINGS; k++) cover[k] += mk[k];
                }
            size_t p = (size_t)y * size + x;
            float any = 0.0f;
            for (int k = 0; k < RECLF_N_FINDINGS; k++) {
                float mv = cover[k] >= 2.0f ? 1.0f : 0.0f;
                out->masks[(size_t)k * np + p] = mv;
                if (mv > 0.0f) any = 1.0f;
            }
            out->mask_union[p] = any;
            double g = clampd(acc * 0.25, 0.0, 1.0);
            g = sc.gain * pow(g, sc.gamma) + sc.offset + sc.noise * xnormal(&nr);
            out->image[p] = (float)clampd(g, 0.0, 1.0);
        }
    return 0;
}
