/* Downstream-evaluation metrics; see metrics.h for the definitions and conventions. */
#include "metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int is_positive(float label) { return label >= 0.5f; }

/* ---- AUROC ---------------------------------------------------------------------------------- */

typedef struct {
    float score;
    int positive;
} scored_label;

static int cmp_scored_label(const void *a, const void *b) {
    float x = ((const scored_label *)a)->score, y = ((const scored_label *)b)->score;
    return (x > y) - (x < y);
}

int reclf_auroc(const float *scores, size_t score_stride, const float *labels, size_t label_stride,
                size_t n, double *auroc, int *defined, reclf_err *err) {
    *auroc = 0.5;
    *defined = 0;
    if (n == 0) return 0;
    scored_label *items = malloc(n * sizeof *items);
    if (!items) return reclf_fail(err, "auroc: out of memory for %zu scores", n);

    size_t m = 0, n_pos = 0;
    for (size_t i = 0; i < n; i++) {
        float label = labels[i * label_stride], score = scores[i * score_stride];
        if (!(label >= 0.0f)) continue; /* < 0 or NaN: ignored */
        if (isnan(score)) {
            free(items);
            return reclf_fail(err, "auroc: score %zu is NaN (label %g)", i, (double)label);
        }
        items[m].score = score;
        items[m].positive = is_positive(label);
        n_pos += (size_t)items[m].positive;
        m++;
    }
    size_t n_neg = m - n_pos;
    if (n_pos == 0 || n_neg == 0) {
        free(items);
        return 0;
    }

    qsort(items, m, sizeof *items, cmp_scored_label);
    /* Ranks are 1-based; a group of ties spanning ranks [i+1, j] gets their mean (i+1+j)/2. */
    double pos_rank_sum = 0.0;
    for (size_t i = 0; i < m;) {
        size_t j = i;
        size_t group_pos = 0;
        while (j < m && items[j].score == items[i].score) group_pos += (size_t)items[j++].positive;
        pos_rank_sum += (double)group_pos * 0.5 * (double)(i + 1 + j);
        i = j;
    }
    free(items);

    double p = (double)n_pos, q = (double)n_neg;
    *auroc = (pos_rank_sum - p * (p + 1.0) * 0.5) / (p * q);
    *defined = 1;
    return 0;
}

int reclf_macro_auroc(const float *scores, const float *labels, size_t n, size_t n_classes,
                      double *per_class, int *defined, double *macro, size_t *n_defined,
                      reclf_err *err) {
    double sum = 0.0;
    size_t count = 0;
    *macro = 0.5;
    if (n_defined) *n_defined = 0;
    for (size_t c = 0; c < n_classes; c++) {
        double auc;
        int ok;
        if (reclf_auroc(scores + c, n_classes, labels + c, n_classes, n, &auc, &ok, err) != 0) {
            /* prefix the class index to the message */
            if (err) {
                char inner[sizeof err->msg];
                memcpy(inner, err->msg, sizeof inner);
                reclf_fail(err, "class %zu: %s", c, inner);
            }
            return -1;
        }
        if (per_class) per_class[c] = auc;
        if (defined) defined[c] = ok;
        if (ok) {
            sum += auc;
            count++;
        }
    }
    if (count > 0) *macro = sum / (double)count;
    if (n_defined) *n_defined = count;
    return 0;
}

/* ---- Dice ----------------------------------------------------------------------------------- */

double reclf_dice(const float *pred, const float *target, size_t n, float threshold) {
    double inter = 0.0, pred_sum = 0.0, target_sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        double t = target[i] >= 0.5f ? 1.0 : 0.0;
        double p = threshold > 0.0f ? (pred[i] >= threshold ? 1.0 : 0.0) : (double)pred[i];
        inter += p * t;
        pred_sum += p;
        target_sum += t;
    }
    if (pred_sum + target_sum == 0.0) return 1.0; /* both empty */
    return 2.0 * inter / (pred_sum + target_sum);
}

double reclf_mean_dice(const float *pred, const float *target, size_t n_masks, size_t mask_size,
                       float threshold) {
    if (n_masks == 0) return 0.0;
    double sum = 0.0;
    for (size_t m = 0; m < n_masks; m++)
        sum += reclf_dice(pred + m * mask_size, target + m * mask_size, mask_size, threshold);
    return sum / (double)n_masks;
}

/* ---- Retrieval ------------------------------------------------------------------------------ */

static size_t pessimistic_rank(const float *row, size_t n_candidates, size_t q) {
    float correct = row[q];
    size_t rank = 1;
    for (size_t j = 0; j < n_candidates; j++)
        if (j != q && !(row[j] < correct)) rank++; /* >=, and a NaN on either side counts */
    return rank;
}

void reclf_retrieval_ranks(const float *scores, size_t n_queries, size_t n_candidates,
                           size_t *ranks) {
    for (size_t q = 0; q < n_queries; q++)
        ranks[q] = pessimistic_rank(scores + q * n_candidates, n_candidates, q);
}

double reclf_recall_at_k(const float *scores, size_t n_queries, size_t n_candidates, size_t k) {
    if (n_queries == 0) return 0.0;
    size_t hits = 0;
    for (size_t q = 0; q < n_queries; q++)
        hits += pessimistic_rank(scores + q * n_candidates, n_candidates, q) <= k;
    return (double)hits / (double)n_queries;
}

static int labels_match(const float *a, const float *b, size_t n_labels, reclf_match_rule rule) {
    if (rule == RECLF_MATCH_EXACT) {
        for (size_t l = 0; l < n_labels; l++)
            if (is_positive(a[l]) != is_positive(b[l])) return 0;
        return 1;
    }
    int a_any = 0, b_any = 0;
    for (size_t l = 0; l < n_labels; l++) {
        int pa = is_positive(a[l]), pb = is_positive(b[l]);
        if (pa && pb) return 1;
        a_any |= pa;
        b_any |= pb;
    }
    return !a_any && !b_any;
}

typedef struct {
    float score;
    int relevant;
    size_t index;
} retrieved;

/* Best first: higher score; on ties non-relevant first (pessimistic); then lower index. */
static int cmp_retrieved(const void *a, const void *b) {
    const retrieved *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    if (x->relevant != y->relevant) return x->relevant - y->relevant;
    return (x->index > y->index) - (x->index < y->index);
}

int reclf_precision_at_k(const float *scores, size_t n_queries, size_t n_candidates,
                         const float *query_labels, const float *candidate_labels,
                         size_t n_labels, reclf_match_rule rule, size_t k, double *precision,
                         reclf_err *err) {
    *precision = 0.0;
    if (rule != RECLF_MATCH_EXACT && rule != RECLF_MATCH_OVERLAP)
        return reclf_fail(err, "precision@k: unknown match rule %d (expected %d exact or %d overlap)",
                          (int)rule, (int)RECLF_MATCH_EXACT, (int)RECLF_MATCH_OVERLAP);
    if (k > n_candidates) k = n_candidates;
    if (k == 0 || n_queries == 0) return 0;
    retrieved *items = malloc(n_candidates * sizeof *items);
    if (!items) return reclf_fail(err, "precision@k: out of memory for %zu candidates", n_candidates);

    double sum = 0.0;
    for (size_t q = 0; q < n_queries; q++) {
        const float *row = scores + q * n_candidates;
        for (size_t j = 0; j < n_candidates; j++) {
            if (isnan(row[j])) {
                free(items);
                return reclf_fail(err, "precision@k: score [query %zu][candidate %zu] is NaN", q, j);
            }
            items[j].score = row[j];
            items[j].relevant = labels_match(query_labels + q * n_labels,
                                             candidate_labels + j * n_labels, n_labels, rule);
            items[j].index = j;
        }
        qsort(items, n_candidates, sizeof *items, cmp_retrieved);
        size_t relevant = 0;
        for (size_t j = 0; j < k; j++) relevant += (size_t)items[j].relevant;
        sum += (double)relevant / (double)k;
    }
    free(items);
    *precision = sum / (double)n_queries;
    return 0;
}

/* ---- Accuracy and summaries ----------------------------------------------------------------- */

size_t reclf_argmax(const float *row, size_t n) {
    size_t best = 0;
    for (size_t i = 0; i < n; i++)
        if (!isnan(row[i]) && (isnan(row[best]) || row[i] > row[best])) best = i;
    return best;
}

double reclf_accuracy(const float *scores, size_t n, size_t n_classes, const int *targets,
                      size_t *n_counted) {
    size_t used = 0, correct = 0;
    for (size_t i = 0; i < n; i++) {
        if (targets[i] < 0) continue;
        used++;
        correct += reclf_argmax(scores + i * n_classes, n_classes) == (size_t)targets[i];
    }
    if (n_counted) *n_counted = used;
    return used ? (double)correct / (double)used : 0.0;
}

double reclf_mean(const double *x, size_t n) {
    if (n == 0) return 0.0;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) sum += x[i];
    return sum / (double)n;
}

double reclf_stddev(const double *x, size_t n) {
    if (n < 2) return 0.0;
    double mean = reclf_mean(x, n), ss = 0.0;
    for (size_t i = 0; i < n; i++) ss += (x[i] - mean) * (x[i] - mean);
    return sqrt(ss / (double)(n - 1));
}
