/* test_attacks.c - examples/attacks.h: the attacks raise the loss they attack on a small
 * trained model and keep to their bound exactly; the out-of-distribution scores and the
 * calibration error against cases whose answer is known. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attacks.h"
#include "tests.h"

enum { N = 200, D = 16, K = 4, C = 3, EPOCHS = 30 };

static float xs[N * D];
static int32_t ys[N];

/* Three Gaussian classes in [0, 1]^D (means 0.3, 0.5, 0.7 in every coordinate, spread
 * 0.1, clipped), and a VIB model trained on them for 30 epochs. */
static vib_model *trained(void)
{
    vib_rng *rng = NULL;
    ck_assert_ok(vib_rng_create(5, &rng));
    ck_assert_ok(vib_rng_normal(rng, N * D, 0.0f, 0.1f, xs));
    vib_rng_free(rng);
    for (int i = 0; i < N; i++) {
        ys[i] = i % C;
        for (int j = 0; j < D; j++)
            xs[i * D + j] = fminf(fmaxf(xs[i * D + j] + 0.3f + 0.2f * (float)ys[i], 0.0f), 1.0f);
    }
    const size_t enc[] = {32};
    vib_model *m = NULL;
    vib_optim *opt = NULL;
    vib_trainer *t = NULL;
    ck_assert_ok(vib_model_create(D, 1, enc, K, 0, NULL, C, 3, &m));
    ck_assert_ok(vib_adam_create(vib_model_num_params(m), 1e-2f, 0.9f, 0.999f, 1e-8f, &opt));
    ck_assert_ok(vib_trainer_create(m, opt, NULL, N, 20, 7, &t));
    for (int e = 0; e < EPOCHS; e++)
        ck_assert_ok(vib_trainer_epoch(t, xs, ys, NULL, NULL, NULL));
    vib_trainer_free(t);
    vib_optim_free(opt);
    return m;
}

/* The loss the attacks climb, the batch-mean cross-entropy, at z = mu (no draw: the
 * same for both inputs); the model's beta as it was. */
static double loss_at(vib_model *m, const float *x, float *scratch)
{
    const float beta = vib_model_beta(m);
    double loss;
    ck_assert_ok(vib_model_set_beta(m, 0.0f));
    ck_assert_ok(vib_model_input_gradients(m, N, x, ys, 0, scratch, &loss));
    ck_assert_ok(vib_model_set_beta(m, beta));
    return loss;
}

/* Every value within the box the projection computes, and inside [lo, hi]. */
static void within(const float *x, const float *adv, float eps, float lo, float hi)
{
    float worst = 0.0f;
    for (size_t i = 0; i < (size_t)N * D; i++) {
        ck_assert_msg(adv[i] >= fmaxf(x[i] - eps, lo) && adv[i] <= fminf(x[i] + eps, hi),
                      "value %zu: %g from %g, eps %g", i, adv[i], x[i], eps);
        worst = fmaxf(worst, fabsf(adv[i] - x[i]));
    }
    ck_assert_msg(worst > 0.5f * eps, "the attack moved at most %g of eps %g", worst, eps);
}

START_TEST(attacks_raise_the_loss_within_the_bound)
{
    vib_model *m = trained();
    ck_assert_ok(vib_model_set_beta(m, 0.01f)); /* a KL term the attacks must leave out */
    static float adv[N * D], grad[N * D];
    const double clean = loss_at(m, xs, grad);
    const float eps = 0.03f;
    /* the loss after a step of the same size in random directions: the attack's must be
     * well above it (a step down the gradient would be below the clean loss) */
    static float noise[N * D];
    vib_rng *nrng = NULL;
    ck_assert_ok(vib_rng_create(13, &nrng));
    ck_assert_ok(vib_rng_normal(nrng, N * D, 0.0f, 1.0f, noise));
    vib_rng_free(nrng);
    for (size_t i = 0; i < (size_t)N * D; i++)
        adv[i] = attack_project(xs[i] + eps * attack_sign(noise[i]), xs[i], eps, 0.0f, 1.0f);
    const double random = loss_at(m, adv, grad);
    for (size_t samples = 1; samples <= 12; samples += 11) {
        ck_assert_ok(attack_fgsm(m, N, xs, ys, eps, 0.0f, 1.0f, samples, grad, adv));
        within(xs, adv, eps, 0.0f, 1.0f);
        const double fgsm = loss_at(m, adv, grad);
        ck_assert_msg(fgsm > 2.0 * random && random < 2.0 * clean,
                      "FGSM (S = %zu): loss %g; random signs %g; clean %g", samples, fgsm,
                      random, clean);
        vib_rng *rng = NULL;
        ck_assert_ok(vib_rng_create(9, &rng));
        ck_assert_ok(attack_pgd(m, N, xs, ys, eps, 0.0075f, 10, 0.0f, 1.0f, samples, rng, grad,
                                adv));
        vib_rng_free(rng);
        within(xs, adv, eps, 0.0f, 1.0f);
        const double pgd = loss_at(m, adv, grad);
        ck_assert_msg(pgd >= fgsm, "PGD-10 (S = %zu): loss %g, below FGSM's %g (clean %g)",
                      samples, pgd, fgsm, clean);
    }
    /* the attacks climb the cross-entropy alone: at z = mu, FGSM is the sign of its
     * gradient (beta 0), bit for bit, and the model's beta is what it was */
    static float want[N * D];
    ck_assert_ok(vib_model_set_beta(m, 0.0f));
    ck_assert_ok(vib_model_input_gradients(m, N, xs, ys, 0, grad, NULL));
    ck_assert_ok(vib_model_set_beta(m, 0.01f));
    size_t kl_moves = 0;
    for (size_t i = 0; i < (size_t)N * D; i++)
        want[i] = attack_project(xs[i] + eps * attack_sign(grad[i]), xs[i], eps, 0.0f, 1.0f);
    ck_assert_ok(vib_model_input_gradients(m, N, xs, ys, 0, grad, NULL)); /* CE + beta KL */
    for (size_t i = 0; i < (size_t)N * D; i++)
        kl_moves += attack_project(xs[i] + eps * attack_sign(grad[i]), xs[i], eps, 0.0f, 1.0f) !=
                    want[i];
    ck_assert_ok(attack_fgsm(m, N, xs, ys, eps, 0.0f, 1.0f, 0, grad, adv));
    ck_assert_msg(memcmp(adv, want, sizeof want) == 0, "FGSM is not the cross-entropy's");
    ck_assert(vib_model_beta(m) == 0.01f);
    /* and that tells: with the KL term, other values move (so the check above can fail) */
    ck_assert_msg(kl_moves > 0, "the KL term moved no value");
    /* the data range binds: from inputs at the edges nothing leaves [0, 1] */
    for (size_t i = 0; i < (size_t)N * D; i++)
        adv[i] = (float)(i % 2);
    static float edge[N * D];
    memcpy(edge, adv, sizeof edge);
    ck_assert_ok(attack_fgsm(m, N, edge, ys, 0.3f, 0.0f, 1.0f, 1, grad, adv));
    for (size_t i = 0; i < (size_t)N * D; i++)
        ck_assert(adv[i] >= 0.0f && adv[i] <= 1.0f);
    vib_model_free(m);
}
END_TEST

/* The targeted L2 attack reaches the next class on most rows; each success is predicted
 * as its target, lies in [0, 1], and its reported distance is its own; a failed row is
 * left as it was. */
START_TEST(l2_attack_reaches_its_targets)
{
    enum { R = 60 };
    vib_model *m = trained();
    int32_t target[R];
    for (int r = 0; r < R; r++)
        target[r] = (ys[r] + 1) % C;
    static float adv[R * D], scratch[4 * R * D + R * (C + 3)], prob[R * C];
    double dist2[R];
    ck_assert_ok(attack_l2(m, R, xs, target, 1.0f, 4, 100, 0.0f, 1.0f, 0, 0, 0.0f, scratch, adv,
                           dist2));
    ck_assert_ok(vib_model_predict(m, R, adv, 0, prob));
    int won = 0;
    double mean = 0.0;
    for (int r = 0; r < R; r++) {
        double d = 0.0;
        for (int j = 0; j < D; j++) {
            ck_assert(adv[r * D + j] >= 0.0f && adv[r * D + j] <= 1.0f);
            d += ((double)adv[r * D + j] - xs[r * D + j]) * ((double)adv[r * D + j] - xs[r * D + j]);
        }
        if (isinf(dist2[r])) {
            ck_assert_msg(d == 0.0, "row %d failed but moved", r);
            continue;
        }
        won++;
        mean += sqrt(d);
        ck_assert_double_eq_tol(d, dist2[r], 1e-9 * (1.0 + d));
        int best = 0;
        for (int k = 1; k < C; k++)
            if (prob[r * C + k] > prob[r * C + best])
                best = k;
        ck_assert_msg(best == target[r], "row %d: a success predicted %d, not %d", r, best,
                      target[r]);
    }
    printf("attacks: targeted L2: %d of %d rows reached their target, mean L2 distortion "
           "%.3f\n", won, R, won ? mean / won : 0.0);
    ck_assert_msg(won >= R * 8 / 10, "%d of %d rows reached their target", won, R);
    /* the classes' means are 0.2 apart in each of 16 coordinates (0.8 in L2): the
     * perturbations found must not be larger than crossing over */
    ck_assert_msg(mean / won < 0.8, "mean L2 distortion %g", mean / won);
    vib_model_free(m);
}
END_TEST

/* The scores of a trained model: the rate is the closed-form KL of its posterior,
 * recomputed here from vib_model_encode; the entropy lies in [0, log C] and 1 - max p in
 * [0, 1 - 1/C]; far from the training data (inputs of 5 instead of 0..1) the rate is
 * higher on average than on it; a deterministic model has no rate (NAN). */
START_TEST(uncertainty_scores_of_a_model)
{
    enum { R = 60 };
    vib_model *m = trained();
    static float scratch[R * (2 * K + C)], mu[R * K], sigma[R * K], far[R * D];
    double rate[R], ent[R], uns[R], rate_far[R];
    ck_assert_ok(uncertainty_scores(m, R, xs, 4, scratch, rate, ent, uns));
    ck_assert_ok(vib_model_encode(m, R, xs, mu, sigma));
    double in_mean = 0.0, far_mean = 0.0;
    for (int r = 0; r < R; r++) {
        double kl = 0.0;
        for (int j = 0; j < K; j++) {
            const double u = mu[r * K + j], s = sigma[r * K + j];
            kl += 0.5 * (u * u + s * s - 2.0 * log(s) - 1.0);
        }
        ck_assert_double_eq_tol(rate[r], kl, 1e-4 * (1.0 + kl));
        ck_assert(ent[r] >= 0.0 && ent[r] <= log((double)C) + 1e-9);
        ck_assert(uns[r] >= 0.0 && uns[r] <= 1.0 - 1.0 / C + 1e-6);
        in_mean += rate[r] / R;
    }
    for (int i = 0; i < R * D; i++)
        far[i] = 5.0f;
    ck_assert_ok(uncertainty_scores(m, R, far, 0, scratch, rate_far, NULL, NULL));
    for (int r = 0; r < R; r++)
        far_mean += rate_far[r] / R;
    ck_assert_msg(far_mean > in_mean, "rate far from the data %g, on it %g", far_mean, in_mean);
    ck_assert_ok(vib_model_set_deterministic(m, 1));
    ck_assert_ok(uncertainty_scores(m, R, xs, 0, scratch, rate, NULL, NULL));
    ck_assert(isnan(rate[0]));
    vib_model_free(m);
}
END_TEST

START_TEST(ood_scores_of_known_cases)
{
    enum { M = 1000 };
    static double in[M], out[M], same[M];
    for (int i = 0; i < M; i++)
        in[i] = i * 1e-3, out[i] = 2.0 + i * 1e-3, same[i] = 0.5;
    /* separated perfectly: 1, 1, 0 */
    ck_assert_double_eq_tol(auroc(in, M, out, M), 1.0, 1e-12);
    ck_assert_double_eq_tol(aupr(in, M, out, M), 1.0, 1e-12);
    ck_assert_double_eq_tol(fpr_at_tpr(in, M, out, M, 0.95), 0.0, 1e-12);
    /* the other way round: 0 */
    ck_assert_double_eq_tol(auroc(out, M, in, M), 0.0, 1e-12);
    /* a constant score: 0.5; AUPR the positives' share; FPR 1 */
    ck_assert_double_eq_tol(auroc(same, M, same, M), 0.5, 1e-12);
    ck_assert_double_eq_tol(aupr(same, M, same, M / 4), 0.2, 1e-12);
    ck_assert_double_eq_tol(fpr_at_tpr(same, M, same, M, 0.95), 1.0, 1e-12);
    /* a hand case: in {1, 2, 3}, out {2, 4}: pairs out > in: (2>1), (4>1,2,3) = 4, tie
     * (2, 2) one half: 4.5 / 6 */
    const double a[] = {1, 2, 3}, b[] = {2, 4};
    ck_assert_double_eq_tol(auroc(a, 3, b, 2), 4.5 / 6.0, 1e-12);
    /* ranked 4(out) | 3(in) | 2,2 (in, out tied) | 1: AP = (1/1 + 2/4) / 2 */
    ck_assert_double_eq_tol(aupr(a, 3, b, 2), (1.0 + 0.5) / 2.0, 1e-12);
    /* all of out flagged first at the threshold 2: in items >= 2 are 2 of 3 */
    ck_assert_double_eq_tol(fpr_at_tpr(a, 3, b, 2, 0.95), 2.0 / 3.0, 1e-12);
    ck_assert(isnan(auroc(a, 0, b, 2)));
}
END_TEST

START_TEST(ece_of_known_predictors)
{
    enum { R = 200000, CL = 2, B = 15 };
    static float prob[R * CL];
    static int32_t y[R];
    vib_rng *rng = NULL;
    ck_assert_ok(vib_rng_create(3, &rng));
    static float u[2 * R];
    ck_assert_ok(vib_rng_uniform(rng, 2 * R, 0.0f, 1.0f, u));
    vib_rng_free(rng);
    /* calibrated: confidence p in [0.5, 1), right with probability p */
    for (int r = 0; r < R; r++) {
        const float p = 0.5f + 0.5f * u[2 * r];
        prob[r * CL] = p, prob[r * CL + 1] = 1.0f - p;
        y[r] = u[2 * r + 1] < p ? 0 : 1;
    }
    size_t count[B];
    double acc[B], conf[B];
    const double e = ece(prob, y, R, CL, B, count, acc, conf);
    ck_assert_msg(e < 0.005, "a calibrated predictor's ECE is %g", e);
    size_t total = 0;
    for (int b = 0; b < B; b++)
        total += count[b];
    ck_assert_uint_eq(total, R);
    ck_assert_uint_eq(count[0], 0); /* no confidence under 0.5 with two classes */
    /* overconfident: the same confidences, always wrong: ECE = mean confidence, 0.75 */
    for (int r = 0; r < R; r++)
        y[r] = 1;
    ck_assert_double_eq_tol(ece(prob, y, R, CL, B, NULL, NULL, NULL), 0.75, 0.005);
}
END_TEST

Suite *make_attacks_suite(void)
{
    Suite *s = suite_create("attacks");
    TCase *tc = tcase_create("attacks");
    tcase_add_test(tc, attacks_raise_the_loss_within_the_bound);
    tcase_add_test(tc, l2_attack_reaches_its_targets);
    tcase_add_test(tc, uncertainty_scores_of_a_model);
    tcase_add_test(tc, ood_scores_of_known_cases);
    tcase_add_test(tc, ece_of_known_predictors);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);
    return s;
}
