/* Tests of runtime/metrics.c on cases worked out by hand. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "metrics.h"

#define EPS 1e-9

static double auroc_of(const float *scores, const float *labels, size_t n, int *defined) {
    double auc = -1.0;
    int ok = -1;
    reclf_err err = {{0}};
    cr_assert_eq(reclf_auroc(scores, 1, labels, 1, n, &auc, &ok, &err), 0, "%s", err.msg);
    if (defined) *defined = ok;
    return auc;
}

/* ---- AUROC ---- */

Test(auroc, perfect_reversed_and_ties) {
    float labels[6] = {0, 0, 0, 1, 1, 1};
    float up[6] = {0.1f, 0.2f, 0.3f, 0.7f, 0.8f, 0.9f};
    float down[6] = {0.9f, 0.8f, 0.7f, 0.3f, 0.2f, 0.1f};
    float flat[6] = {0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f};
    int defined;
    cr_assert_float_eq(auroc_of(up, labels, 6, &defined), 1.0, EPS);
    cr_assert_eq(defined, 1);
    cr_assert_float_eq(auroc_of(down, labels, 6, NULL), 0.0, EPS);
    cr_assert_float_eq(auroc_of(flat, labels, 6, NULL), 0.5, EPS);
}

/* scores 0.1 0.4 0.4 0.8 0.4 | labels 0 0 1 1 1, plus a row with label -1 that is ignored.
 * By pairs (positive, negative), a tie counting 1/2:
 *   pos 0.4: vs 0.1 -> 1, vs 0.4 -> 1/2
 *   pos 0.8: vs 0.1 -> 1, vs 0.4 -> 1
 *   pos 0.4: vs 0.1 -> 1, vs 0.4 -> 1/2            sum 5 over P*N = 3*2 = 6 -> 5/6.
 * By midranks: sorted 0.1 (rank 1), 0.4 0.4 0.4 (ranks 2,3,4 -> 3 each), 0.8 (rank 5);
 *   positive ranks 3 + 3 + 5 = 11; (11 - 3*4/2) / 6 = 5/6. */
Test(auroc, ties_by_hand) {
    float scores[6] = {0.1f, 0.4f, 0.4f, 0.8f, 0.4f, 0.05f};
    float labels[6] = {0, 0, 1, 1, 1, -1};
    cr_assert_float_eq(auroc_of(scores, labels, 6, NULL), 5.0 / 6.0, EPS);
    /* the ignored row must not count even if its score would change the result */
    scores[5] = 100.0f;
    cr_assert_float_eq(auroc_of(scores, labels, 6, NULL), 5.0 / 6.0, EPS);
}

Test(auroc, undefined_without_both_classes) {
    float scores[4] = {0.1f, 0.2f, 0.3f, 0.4f};
    float all_pos[4] = {1, 1, -1, 1};
    float all_ignored[4] = {-1, -1, -1, -1};
    int defined = -1;
    double auc = auroc_of(scores, all_pos, 4, &defined);
    cr_assert_eq(defined, 0);
    cr_assert_float_eq(auc, 0.5, EPS);
    auc = auroc_of(scores, all_ignored, 4, &defined);
    cr_assert_eq(defined, 0);
    cr_assert_float_eq(auc, 0.5, EPS);
    auc = auroc_of(scores, all_ignored, 0, &defined);
    cr_assert_eq(defined, 0);
}

Test(auroc, nan_score_is_an_error) {
    float scores[3] = {0.1f, NAN, 0.3f};
    float labels[3] = {0, 1, 1};
    double auc;
    int defined;
    reclf_err err = {{0}};
    cr_assert_neq(reclf_auroc(scores, 1, labels, 1, 3, &auc, &defined, &err), 0);
    cr_assert(strstr(err.msg, "NaN") != NULL, "%s", err.msg);
    cr_assert(!isnan(auc));
}

/* 4 rows x 3 classes, row-major. Class 0 perfect (1), class 1 reversed (0), class 2 has no
 * negatives (undefined). Macro = (1 + 0) / 2 over the 2 defined classes. */
Test(auroc, macro_skips_undefined_classes) {
    float scores[12] = {0.1f, 0.9f, 0.3f, 0.2f, 0.8f, 0.1f, 0.7f, 0.2f, 0.5f, 0.8f, 0.1f, 0.9f};
    float labels[12] = {0, 0, 1, 0, 0, 1, 1, 1, -1, 1, 1, 1};
    double per_class[3], macro;
    int defined[3];
    size_t n_defined;
    reclf_err err = {{0}};
    cr_assert_eq(reclf_macro_auroc(scores, labels, 4, 3, per_class, defined, &macro, &n_defined,
                                   &err), 0, "%s", err.msg);
    cr_assert_float_eq(per_class[0], 1.0, EPS);
    cr_assert_float_eq(per_class[1], 0.0, EPS);
    cr_assert_float_eq(per_class[2], 0.5, EPS);
    cr_assert_eq(defined[0], 1);
    cr_assert_eq(defined[1], 1);
    cr_assert_eq(defined[2], 0);
    cr_assert_eq(n_defined, 2);
    cr_assert_float_eq(macro, 0.5, EPS);
}

/* ---- Dice ---- */

Test(dice, empty_masks) {
    float zero[4] = {0, 0, 0, 0};
    float some[4] = {0, 1, 1, 0};
    cr_assert_float_eq(reclf_dice(zero, zero, 4, 0.5f), 1.0, EPS); /* both empty */
    cr_assert_float_eq(reclf_dice(some, zero, 4, 0.5f), 0.0, EPS); /* empty target */
    cr_assert_float_eq(reclf_dice(zero, some, 4, 0.5f), 0.0, EPS); /* empty prediction */
    cr_assert_float_eq(reclf_dice(zero, zero, 4, 0.0f), 1.0, EPS); /* soft, both empty */
    float low[4] = {0.1f, 0.2f, 0.0f, 0.3f};                      /* below threshold */
    cr_assert_float_eq(reclf_dice(low, zero, 4, 0.5f), 1.0, EPS);
}

/* pred >= 0.5 at pixels 0,1,2,3 (4 pixels), target at 0,1,2,4,5 (5 pixels), overlap 0,1,2 (3):
 * Dice = 2*3 / (4+5) = 2/3. Soft: sum p t = .9+.6+.5+.2+.4 = 2.6, sum p = 3.4, sum t = 5:
 * 5.2 / 8.4 = 13/21. */
Test(dice, hand_case) {
    float pred[8] = {0.9f, 0.6f, 0.5f, 0.7f, 0.2f, 0.4f, 0.1f, 0.0f};
    float target[8] = {1, 1, 1, 0, 1, 1, 0, 0};
    cr_assert_float_eq(reclf_dice(pred, target, 8, 0.5f), 2.0 / 3.0, EPS);
    cr_assert_float_eq(reclf_dice(pred, target, 8, 0.0f), 13.0 / 21.0, 1e-6);
    float binary[8] = {1, 1, 1, 1, 0, 0, 0, 0};
    cr_assert_float_eq(reclf_dice(binary, target, 8, 0.5f), 2.0 / 3.0, EPS);
}

/* Three masks of 8 pixels: both empty (1), the hand case (2/3), empty target (0): mean 5/9. */
Test(dice, mean_over_masks) {
    float pred[24] = {0, 0, 0, 0, 0, 0, 0, 0,
                      0.9f, 0.6f, 0.5f, 0.7f, 0.2f, 0.4f, 0.1f, 0.0f,
                      0, 0, 0.8f, 0, 0, 0, 0, 0};
    float target[24] = {0, 0, 0, 0, 0, 0, 0, 0,
                        1, 1, 1, 0, 1, 1, 0, 0,
                        0, 0, 0, 0, 0, 0, 0, 0};
    cr_assert_float_eq(reclf_mean_dice(pred, target, 3, 8, 0.5f), 5.0 / 9.0, EPS);
    cr_assert_float_eq(reclf_mean_dice(pred, target, 0, 8, 0.5f), 0.0, EPS);
}

/* ---- Retrieval ---- */

/* Row q holds the scores of query q against candidates 0..3; the correct candidate is q.
 *   q0: correct 0.9 is the highest                            -> rank 1
 *   q1: correct 0.4; 0.5 and 0.6 are >= it                    -> rank 3
 *   q2: correct 0.7 tied with candidate 1 (pessimistic)        -> rank 2
 *   q3: all four equal: the other three count (pessimistic)    -> rank 4
 * R@1 = 1/4, R@2 = 2/4, R@3 = 3/4, R@4 = 4/4. */
static const float RETRIEVAL[16] = {0.9f, 0.1f, 0.2f, 0.3f,
                                    0.5f, 0.4f, 0.6f, 0.1f,
                                    0.2f, 0.7f, 0.7f, 0.1f,
                                    0.3f, 0.3f, 0.3f, 0.3f};

Test(retrieval, ranks_and_recall_by_hand) {
    size_t ranks[4];
    reclf_retrieval_ranks(RETRIEVAL, 4, 4, ranks);
    cr_assert_eq(ranks[0], 1);
    cr_assert_eq(ranks[1], 3);
    cr_assert_eq(ranks[2], 2);
    cr_assert_eq(ranks[3], 4);
    cr_assert_float_eq(reclf_recall_at_k(RETRIEVAL, 4, 4, 1), 0.25, EPS);
    cr_assert_float_eq(reclf_recall_at_k(RETRIEVAL, 4, 4, 2), 0.50, EPS);
    cr_assert_float_eq(reclf_recall_at_k(RETRIEVAL, 4, 4, 3), 0.75, EPS);
    cr_assert_float_eq(reclf_recall_at_k(RETRIEVAL, 4, 4, 4), 1.00, EPS);
    cr_assert_float_eq(reclf_recall_at_k(RETRIEVAL, 4, 4, 10), 1.00, EPS);
    cr_assert_float_eq(reclf_recall_at_k(RETRIEVAL, 4, 4, 0), 0.00, EPS);
}

/* Labels of items 0..3 (2 findings), the same for queries and candidates:
 *   L0 = [1,0], L1 = [1,1], L2 = [0,0] (normal), L3 = [1,0].
 * Relevant sets, exact match:   q0 {0,3}  q1 {1}    q2 {2}  q3 {0,3}
 *                overlap rule:  q0 {0,1,3} q1 {0,1,3} q2 {2} q3 {0,1,3}
 * Retrieved order (score desc, ties: non-relevant first, then lower index):
 *   q0: 0(.9) 3(.3) 2(.2) 1(.1)
 *   q1: 2(.6) 0(.5) 1(.4) 3(.1)
 *   q2: tie 1,2 at .7 -> 1 first under both rules (non-relevant to q2), then 2, 0, 3
 *   q3: all tied -> exact: 1, 2, 0, 3;  overlap: 2, 0, 1, 3
 * Exact   P@1: 1,0,0,0 -> 1/4      P@2: 2/2, 0/2, 1/2, 0/2 -> 0.375
 * Overlap P@1: 1,0,0,0 -> 1/4      P@2: 2/2, 1/2, 1/2, 1/2 -> 0.625
 *         P@4: 3/4, 3/4, 1/4, 3/4 -> 0.625 (and P@10 is clamped to P@4). */
static const float LABELS[8] = {1, 0, 1, 1, 0, 0, 1, 0};

static double p_at_k(reclf_match_rule rule, size_t k) {
    double p = -1.0;
    reclf_err err = {{0}};
    cr_assert_eq(reclf_precision_at_k(RETRIEVAL, 4, 4, LABELS, LABELS, 2, rule, k, &p, &err), 0,
                 "%s", err.msg);
    return p;
}

Test(retrieval, precision_by_hand) {
    cr_assert_float_eq(p_at_k(RECLF_MATCH_EXACT, 1), 0.25, EPS);
    cr_assert_float_eq(p_at_k(RECLF_MATCH_EXACT, 2), 0.375, EPS);
    cr_assert_float_eq(p_at_k(RECLF_MATCH_OVERLAP, 1), 0.25, EPS);
    cr_assert_float_eq(p_at_k(RECLF_MATCH_OVERLAP, 2), 0.625, EPS);
    cr_assert_float_eq(p_at_k(RECLF_MATCH_OVERLAP, 4), 0.625, EPS);
    cr_assert_float_eq(p_at_k(RECLF_MATCH_OVERLAP, 10), 0.625, EPS);
    cr_assert_float_eq(p_at_k(RECLF_MATCH_EXACT, 0), 0.0, EPS);
}

Test(retrieval, uncertain_labels_are_not_positive) {
    /* query [-1, 0] is "normal" under the binarisation, so it matches [0, 0] exactly */
    float scores[2] = {0.2f, 0.9f};
    float q[2] = {-1, 0};
    float c[4] = {1, 0, 0, 0};
    double p;
    reclf_err err = {{0}};
    cr_assert_eq(reclf_precision_at_k(scores, 1, 2, q, c, 2, RECLF_MATCH_EXACT, 1, &p, &err), 0);
    cr_assert_float_eq(p, 1.0, EPS);
    cr_assert_neq(reclf_precision_at_k(scores, 1, 2, q, c, 2, (reclf_match_rule)7, 1, &p, &err), 0);
}

/* ---- Accuracy, mean, std ---- */

Test(summary, accuracy_of_argmax) {
    float scores[12] = {0.1f, 0.7f, 0.2f,  /* argmax 1, target 1: right */
                        0.5f, 0.5f, 0.1f,  /* tie -> first (0), target 1: wrong */
                        0.3f, 0.2f, 0.9f,  /* argmax 2, target 2: right */
                        0.9f, 0.0f, 0.0f}; /* target -1: ignored */
    int targets[4] = {1, 1, 2, -1};
    size_t used;
    cr_assert_float_eq(reclf_accuracy(scores, 4, 3, targets, &used), 2.0 / 3.0, EPS);
    cr_assert_eq(used, 3);
    cr_assert_eq(reclf_argmax(scores + 3, 3), 0);
    float with_nan[3] = {NAN, 0.1f, 0.3f};
    cr_assert_eq(reclf_argmax(with_nan, 3), 2);
}

/* 2 4 4 4 5 5 7 9: mean 5, squared deviations 9+1+1+1+0+0+4+16 = 32, sample var 32/7. */
Test(summary, mean_and_sample_std) {
    double x[8] = {2, 4, 4, 4, 5, 5, 7, 9};
    cr_assert_float_eq(reclf_mean(x, 8), 5.0, EPS);
    cr_assert_float_eq(reclf_stddev(x, 8), sqrt(32.0 / 7.0), EPS);
    cr_assert_float_eq(reclf_stddev(x, 1), 0.0, EPS);
    cr_assert_float_eq(reclf_mean(x, 0), 0.0, EPS);
}
