/* Downstream-evaluation metrics (SPEC §10): AUROC, Dice, retrieval Recall@K / Precision@K,
 * argmax accuracy, mean and standard deviation.
 *
 * Label convention, shared by every function here and by logreg.h: a label is a float;
 *   label < 0      ignored (uncertain or missing: the manifest's -1 or empty; also NaN),
 *   label >= 0.5   positive,
 *   otherwise      negative.
 * Every result is computed in double and is never NaN: undefined cases return a documented value
 * together with a flag or a count that says so. Functions that allocate return 0 on success and
 * -1 with a message in err on failure; the others cannot fail and return the metric directly. */
#ifndef RECLF_METRICS_H
#define RECLF_METRICS_H
#include <stddef.h>
#include "common.h"

/* ---- AUROC ------------------------------------------------------------------------------------
 * Area under the ROC curve of scores against binary labels, by the Mann-Whitney statistic with
 * midranks: sort the scores, give each group of tied scores the mean of the ranks it spans, then
 *     AUROC = (sum of positive ranks - P(P+1)/2) / (P N)
 * for P positives and N negatives; a tied positive/negative pair counts 1/2. Rows whose label is
 * < 0 are ignored. Element i is scores[i * score_stride] and labels[i * label_stride], so one
 * column of row-major n x C score and label matrices is (scores + c, C, labels + c, C).
 * *defined is set to 1 when at least one positive and one negative remain, otherwise to 0 and
 * *auroc to 0.5. NaN scores are an error (they have no rank). */
int reclf_auroc(const float *scores, size_t score_stride, const float *labels, size_t label_stride,
                size_t n, double *auroc, int *defined, reclf_err *err);

/* Per-class AUROC of row-major n x n_classes score and label matrices and their macro average
 * over the defined classes only. per_class (n_classes entries, may be NULL) receives 0.5 for an
 * undefined class; defined (n_classes entries, may be NULL) receives the flags. *n_defined (may be
 * NULL) is the number of classes averaged; when it is 0, *macro is 0.5. */
int reclf_macro_auroc(const float *scores, const float *labels, size_t n, size_t n_classes,
                      double *per_class, int *defined, double *macro, size_t *n_defined,
                      reclf_err *err);

/* ---- Dice -------------------------------------------------------------------------------------
 * Dice = 2 |P ∩ T| / (|P| + |T|) of a predicted mask against a target mask of n pixels.
 * The target is binarised (t >= 0.5). The prediction is binarised with pred >= threshold when
 * threshold > 0 (0.5 for probabilities, any value in (0, 1] for binary masks); when threshold <= 0
 * the soft Dice 2 sum(p t) / (sum p + sum t) of the raw predicted probabilities is returned.
 * Empty masks: an empty prediction and an empty target give 1 (nothing to find, nothing found);
 * an empty target with a non-empty prediction gives 0, as does a non-empty target with an empty
 * prediction. "Empty" means a sum of exactly zero. */
double reclf_dice(const float *pred, const float *target, size_t n, float threshold);

/* Mean Dice over n_masks masks of mask_size pixels each, stored one after another. 0 if none. */
double reclf_mean_dice(const float *pred, const float *target, size_t n_masks, size_t mask_size,
                       float threshold);

/* ---- Retrieval --------------------------------------------------------------------------------
 * scores is a row-major n_queries x n_candidates similarity matrix (larger = more similar); the
 * correct candidate of query q is candidate q, so n_candidates >= n_queries. For report-to-image
 * retrieval pass the transpose of the image-to-report matrix.
 *
 * Rank of query q, ties broken pessimistically: 1 + the number of candidates j != q with
 *     scores[q][j] >= scores[q][q],
 * so a correct candidate tied with others is ranked below all of them (a constant score matrix
 * gives rank n_candidates, never a lucky 1). A NaN on either side counts as a tie (pessimistic).
 * ranks receives n_queries ranks in 1..n_candidates. */
void reclf_retrieval_ranks(const float *scores, size_t n_queries, size_t n_candidates,
                           size_t *ranks);

/* Recall@K: the fraction of queries whose rank (above) is <= k. 0 if n_queries == 0. */
double reclf_recall_at_k(const float *scores, size_t n_queries, size_t n_candidates, size_t k);

/* When a retrieved candidate counts as relevant to a query, from their label vectors (binarised
 * with the convention above: < 0.5, including the uncertain -1, is "not positive"):
 *   RECLF_MATCH_EXACT    the two binarised label vectors are equal (normal matches normal);
 *   RECLF_MATCH_OVERLAP  they share at least one positive finding, or both have none (both
 *                        normal). */
typedef enum { RECLF_MATCH_EXACT = 0, RECLF_MATCH_OVERLAP = 1 } reclf_match_rule;

/* Precision@K: for every query, the k candidates with the highest scores are retrieved (all
 * candidates take part, the paired one included) and the fraction of them relevant to the query
 * is taken; the result is the mean over queries. Ties are broken pessimistically, as for the
 * ranks: among equal scores non-relevant candidates are retrieved first (then lower index first),
 * so the result never depends on the order of the candidates. k is clamped to n_candidates;
 * k == 0 or n_queries == 0 give 0. query_labels is n_queries x n_labels, candidate_labels is
 * n_candidates x n_labels, both row-major. NaN scores are an error. */
int reclf_precision_at_k(const float *scores, size_t n_queries, size_t n_candidates,
                         const float *query_labels, const float *candidate_labels,
                         size_t n_labels, reclf_match_rule rule, size_t k, double *precision,
                         reclf_err *err);

/* ---- Classification accuracy and summaries ----------------------------------------------------
 * Index of the largest of row[0..n) (the first one on ties; NaN entries are never chosen unless
 * all are NaN, then 0). */
size_t reclf_argmax(const float *row, size_t n);

/* Fraction of rows whose argmax over the n_classes scores equals targets[i]; rows with
 * targets[i] < 0 are ignored. *n_counted (may be NULL) receives the number of rows used; 0 rows
 * give accuracy 0. */
double reclf_accuracy(const float *scores, size_t n, size_t n_classes, const int *targets,
                      size_t *n_counted);

/* Arithmetic mean (0 for n == 0) and sample standard deviation with the n - 1 denominator
 * (0 for n < 2). */
double reclf_mean(const double *x, size_t n);
double reclf_stddev(const double *x, size_t n);

#endif
