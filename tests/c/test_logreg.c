/* Tests of the linear probe (runtime/logreg.c). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "logreg.h"
#include "metrics.h"

/* Small deterministic generator (xorshift64*), uniform in [0, 1). */
static double uniform(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return (double)((*s * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

static double sigmoid(double m) { return 1.0 / (1.0 + exp(-m)); }

static void fit_ok(reclf_logreg *model, const float *x, size_t n, size_t dim, const float *y,
                   size_t nc, const reclf_logreg_opts *opts) {
    reclf_err err = {{0}};
    cr_assert_eq(reclf_logreg_fit(model, x, n, dim, y, nc, opts, &err), 0, "%s", err.msg);
}

/* Two features, two classes: class 0 is "x0 > 0", class 1 is "x1 < 0", each with a margin of
 * 0.2 around the boundary. The probe must rank the training rows perfectly and put the weight on
 * the right feature with the right sign. */
Test(logreg, separable_data) {
    enum { N = 400, D = 2, C = 2 };
    static float x[N * D], y[N * C], p[N * C];
    uint64_t s = 42;
    for (size_t i = 0; i < N; i++) {
        for (size_t d = 0; d < D; d++) {
            double v = 0.2 + uniform(&s);
            x[i * D + d] = (float)(uniform(&s) < 0.5 ? -v : v) + (d == 0 ? 3.0f : -1.0f);
        }
        y[i * C + 0] = x[i * D + 0] > 3.0f;
        y[i * C + 1] = x[i * D + 1] < -1.0f;
    }
    reclf_logreg model;
    fit_ok(&model, x, N, D, y, C, NULL);
    reclf_logreg_predict(&model, x, N, p);

    double macro;
    size_t n_defined;
    reclf_err err = {{0}};
    cr_assert_eq(reclf_macro_auroc(p, y, N, C, NULL, NULL, &macro, &n_defined, &err), 0);
    cr_assert_eq(n_defined, 2);
    cr_assert_float_eq(macro, 1.0, 1e-12);
    for (size_t c = 0; c < C; c++) {
        cr_assert_eq(model.status[c], RECLF_LOGREG_CONVERGED, "class %zu status %d", c,
                     model.status[c]);
        cr_assert_leq(model.grad_norm[c], 1e-8);
        cr_assert_eq(model.n_used[c], N);
    }
    cr_assert_gt(model.w[0 * D + 0], 0.0);
    cr_assert_lt(model.w[1 * D + 1], 0.0);
    cr_assert_gt(fabs(model.w[0 * D + 0]), 10.0 * fabs(model.w[0 * D + 1]));
    cr_assert_gt(fabs(model.w[1 * D + 1]), 10.0 * fabs(model.w[1 * D + 0]));
    /* confident on the training rows */
    for (size_t i = 0; i < N; i++)
        for (size_t c = 0; c < C; c++)
            cr_assert_lt(fabs(p[i * C + c] - y[i * C + c]), 0.2, "row %zu class %zu", i, c);
    reclf_logreg_free(&model);
}

/* A constant feature standardises to 0, so only the (unpenalised) bias is fitted and the
 * predicted probability is the empirical frequency of the used rows: 7 positives, 13
 * negatives, 5 ignored rows -> 7/20 = 0.35, whatever the ignored rows are. */
Test(logreg, constant_feature_gives_empirical_frequency) {
    enum { N = 25 };
    float x[N], y[N], p[N];
    for (size_t i = 0; i < N; i++) {
        x[i] = 3.0f;
        y[i] = i < 7 ? 1.0f : i < 20 ? 0.0f : -1.0f;
    }
    reclf_logreg model;
    fit_ok(&model, x, N, 1, y, 1, NULL);
    cr_assert_eq(model.status[0], RECLF_LOGREG_CONVERGED);
    cr_assert_eq(model.n_used[0], 20);
    cr_assert_float_eq(model.w[0], 0.0, 1e-12);
    cr_assert_float_eq(model.b[0], log(0.35 / 0.65), 1e-7); /* tol 1e-8 on the gradient */
    reclf_logreg_predict(&model, x, N, p);
    for (size_t i = 0; i < N; i++) cr_assert_float_eq(p[i], 0.35f, 1e-6);
    reclf_logreg_free(&model);
}

/* A noisy 1-D problem: the test recomputes the standardisation and the gradient of
 *   f(w, b) = mean BCE + l2/2 w^2
 * on its own and checks that it vanishes at the returned solution, that f does not decrease in
 * any direction nearby, and that the mean predicted probability equals the empirical frequency
 * (the bias' stationarity condition). */
Test(logreg, one_dimensional_optimum) {
    enum { N = 300 };
    static float x[N], y[N];
    uint64_t s = 7;
    for (size_t i = 0; i < N; i++) {
        x[i] = (float)(4.0 * uniform(&s) - 1.0);
        y[i] = uniform(&s) < sigmoid(1.5 * x[i] - 0.5) ? 1.0f : 0.0f;
        if (i % 10 == 3) y[i] = -1.0f; /* ignored */
    }
    const double l2 = 1e-2; /* large enough to matter */
    reclf_logreg_opts opts = reclf_logreg_default_opts();
    opts.l2 = l2;
    reclf_logreg model;
    fit_ok(&model, x, N, 1, y, 1, &opts);
    cr_assert_eq(model.status[0], RECLF_LOGREG_CONVERGED);

    double mean = 0.0, var = 0.0;
    for (size_t i = 0; i < N; i++) mean += x[i];
    mean /= N;
    for (size_t i = 0; i < N; i++) var += (x[i] - mean) * (x[i] - mean);
    double sd = sqrt(var / N);
    cr_assert_float_eq(model.mean[0], mean, 1e-6);
    cr_assert_float_eq(model.std[0], sd, 1e-6);

    double w = model.w[0], b = model.b[0];
    double gw = 0.0, gb = 0.0, sum_p = 0.0, sum_y = 0.0;
    size_t m = 0;
    for (size_t i = 0; i < N; i++) {
        if (y[i] < 0) continue;
        double z = (x[i] - (double)model.mean[0]) / model.std[0];
        double p = sigmoid(w * z + b);
        gw += (p - y[i]) * z;
        gb += p - y[i];
        sum_p += p;
        sum_y += y[i];
        m++;
    }
    cr_assert_eq(m, model.n_used[0]);
    gw = gw / m + l2 * w;
    gb /= m;
    cr_assert_lt(fabs(gw), 1e-7, "dw %g", gw);
    cr_assert_lt(fabs(gb), 1e-7, "db %g", gb);
    cr_assert_float_eq(sum_p / m, sum_y / m, 1e-7);
    cr_assert_gt(w, 0.5); /* the slope has the generating sign */

    /* f is not lower at any of 8 nearby points */
    double f0 = model.loss[0];
    for (int k = 0; k < 8; k++) {
        double dw = 1e-3 * cos(k * 0.7853981633974483), db = 1e-3 * sin(k * 0.7853981633974483), f = 0.0;
        for (size_t i = 0; i < N; i++) {
            if (y[i] < 0) continue;
            double z = (x[i] - (double)model.mean[0]) / model.std[0];
            double mg = (w + dw) * z + (b + db);
            f += log1p(exp(-fabs(mg))) + fmax(mg, 0.0) - y[i] * mg;
        }
        f = f / m + 0.5 * l2 * (w + dw) * (w + dw);
        cr_assert_geq(f, f0 - 1e-12, "direction %d: %.15g < %.15g", k, f, f0);
    }
    reclf_logreg_free(&model);
}

/* Five classes on 16 features with ignored labels: two fits give the same bits, and so do
 * their predictions. */
Test(logreg, deterministic) {
    enum { N = 2000, D = 16, C = 5 };
    float *x = malloc(sizeof(float) * N * D), *y = malloc(sizeof(float) * N * C);
    float *p1 = malloc(sizeof(float) * N * C), *p2 = malloc(sizeof(float) * N * C);
    uint64_t s = 99;
    for (size_t i = 0; i < N * D; i++) x[i] = (float)(uniform(&s) * 2.0 - 1.0);
    for (size_t i = 0; i < N; i++)
        for (size_t c = 0; c < C; c++) {
            double m = 2.0 * x[i * D + c] - x[i * D + c + 5] + 0.3 * (double)c;
            y[i * C + c] = uniform(&s) < 0.05 ? -1.0f : (uniform(&s) < sigmoid(m) ? 1.0f : 0.0f);
        }
    reclf_logreg a, b;
    fit_ok(&a, x, N, D, y, C, NULL);
    fit_ok(&b, x, N, D, y, C, NULL);
    cr_assert_eq(memcmp(a.w, b.w, sizeof(double) * C * D), 0);
    cr_assert_eq(memcmp(a.b, b.b, sizeof(double) * C), 0);
    cr_assert_eq(memcmp(a.mean, b.mean, sizeof(float) * D), 0);
    cr_assert_eq(memcmp(a.std, b.std, sizeof(float) * D), 0);
    reclf_logreg_predict(&a, x, N, p1);
    reclf_logreg_predict(&b, x, N, p2);
    cr_assert_eq(memcmp(p1, p2, sizeof(float) * N * C), 0);
    for (size_t c = 0; c < C; c++) {
        cr_assert_eq(a.status[c], RECLF_LOGREG_CONVERGED);
        cr_assert_lt(a.iters[c], 30);
        cr_assert_gt(a.w[c * D + c], 0.0);
        cr_assert_lt(a.w[c * D + c + 5], 0.0);
    }
    reclf_logreg_free(&a);
    reclf_logreg_free(&b);
    free(x);
    free(y);
    free(p1);
    free(p2);
}

/* Without a penalty the fit on the raw features does not depend on the standardisation, so
 * marking rows as ignored (-1) must give the same raw weights as leaving them out, although the
 * standardisation (from all rows) differs. */
Test(logreg, ignored_rows_equal_removed_rows) {
    enum { N = 200, D = 3 };
    static float x[N * D], y[N], x_kept[N * D], y_kept[N];
    uint64_t s = 5;
    size_t kept = 0;
    for (size_t i = 0; i < N; i++) {
        for (size_t d = 0; d < D; d++) x[i * D + d] = (float)(uniform(&s) * 4.0 - 2.0 + d);
        double m = x[i * D] - 0.5 * x[i * D + 1] + 0.25 * x[i * D + 2] - 0.2;
        y[i] = uniform(&s) < sigmoid(m) ? 1.0f : 0.0f;
        if (i % 3 == 0) {
            y[i] = -1.0f;
            x[i * D] += 5.0f; /* shifts the mean and std of feature 0 */
        } else {
            memcpy(x_kept + kept * D, x + i * D, sizeof(float) * D);
            y_kept[kept++] = y[i];
        }
    }
    reclf_logreg_opts opts = reclf_logreg_default_opts();
    opts.l2 = 0.0;
    reclf_logreg a, b;
    fit_ok(&a, x, N, D, y, 1, &opts);
    fit_ok(&b, x_kept, kept, D, y_kept, 1, &opts);
    cr_assert_eq(a.n_used[0], kept);
    cr_assert_neq(a.mean[0], b.mean[0]);
    double wa[D], wb[D], ba, bb;
    reclf_logreg_raw_weights(&a, wa, &ba);
    reclf_logreg_raw_weights(&b, wb, &bb);
    for (size_t d = 0; d < D; d++) cr_assert_float_eq(wa[d], wb[d], 1e-5, "feature %zu", d);
    cr_assert_float_eq(ba, bb, 1e-5);
    /* raw weights predict what predict() does */
    float p[1];
    reclf_logreg_predict(&b, x_kept, 1, p);
    double m = bb;
    for (size_t d = 0; d < D; d++) m += wb[d] * x_kept[d];
    cr_assert_float_eq(p[0], sigmoid(m), 1e-6);
    reclf_logreg_free(&a);
    reclf_logreg_free(&b);
}

/* A class with no positives cannot be fitted: it is flagged and predicts the smoothed frequency
 * (P + 0.5) / (P + N + 1) = 0.5 / 11; the other class is fitted as usual. */
Test(logreg, one_class_is_flagged) {
    enum { N = 10 };
    float x[N], y[N * 2], p[N * 2];
    for (size_t i = 0; i < N; i++) {
        x[i] = (float)i;
        y[i * 2 + 0] = 0.0f;
        y[i * 2 + 1] = i >= 5;
    }
    reclf_logreg model;
    fit_ok(&model, x, N, 1, y, 2, NULL);
    cr_assert_eq(model.status[0], RECLF_LOGREG_ONE_CLASS);
    cr_assert_eq(model.status[1], RECLF_LOGREG_CONVERGED);
    cr_assert_float_eq(model.w[0], 0.0, 1e-15);
    reclf_logreg_predict(&model, x, N, p);
    for (size_t i = 0; i < N; i++) {
        cr_assert_float_eq(p[i * 2], 0.5 / 11.0, 1e-6);
        cr_assert(isfinite(p[i * 2 + 1]));
    }
    reclf_logreg_free(&model);
}

Test(logreg, bad_input_is_reported) {
    reclf_logreg model;
    reclf_err err = {{0}};
    float x[2] = {1.0f, NAN}, y[2] = {0.0f, 1.0f};
    cr_assert_neq(reclf_logreg_fit(&model, x, 2, 1, y, 1, NULL, &err), 0);
    cr_assert(strstr(err.msg, "not finite") != NULL, "%s", err.msg);
    cr_assert_null(model.w);
    reclf_logreg_opts opts = reclf_logreg_default_opts();
    opts.l2 = -1.0;
    x[1] = 2.0f;
    cr_assert_neq(reclf_logreg_fit(&model, x, 2, 1, y, 1, &opts, &err), 0);
    cr_assert_neq(reclf_logreg_fit(&model, x, 2, 0, y, 1, NULL, &err), 0);
    reclf_logreg_free(&model); /* safe on an empty model */
}
