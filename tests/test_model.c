/* test_model.c - the VIB classifier: gradients of the whole model against finite
 * differences through the flat parameter vector, the gradient-flow fact at fixed noise,
 * initial logit scale, learning, prediction and encoding, bad arguments. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests.h"

enum { IN = 5, K = 3, C = 3, B = 4 };

typedef struct {
    vib_model *m;
    float x[B * IN];
    int32_t y[B];
} model_ctx;

/* The loss at the current parameters with the noise restarted, so every evaluation
 * sees the same v. */
static double model_loss(void *ctx)
{
    model_ctx *p = ctx;
    double loss;
    ck_assert_ok(vib_model_reseed(p->m, 77));
    ck_assert_ok(vib_model_gradients(p->m, B, p->x, p->y, NULL, NULL, &loss));
    return loss;
}

static void make_ctx(model_ctx *p, size_t n_dec, const size_t *dec)
{
    const size_t enc[] = {6};
    ck_assert_ok(vib_model_create(IN, 1, enc, K, n_dec, dec, C, 3, &p->m));
    fill_normal(4, B * IN, 0.0f, 1.0f, p->x);
    for (int r = 0; r < B; r++)
        p->y[r] = r % C;
}

static void check_model_gradient_h(model_ctx *p, double h)
{
    const size_t n = vib_model_num_params(p->m);
    float *g = malloc(n * sizeof *g);
    model_loss(p);
    memcpy(g, vib_model_grads(p->m), n * sizeof *g);
    check_gradient("dparams", model_loss, p, vib_model_params(p->m), n, g, h, 1e-2, 2e-4);
    free(g);
}

static void check_model_gradient(model_ctx *p)
{
    check_model_gradient_h(p, 1e-2);
}

START_TEST(gradients_match_finite_differences)
{
    const size_t dec[] = {4};
    for (int variant = 0; variant < 4; variant++) {
        model_ctx p;
        make_ctx(&p, variant >= 2 ? 1 : 0, dec);
        /* offset 0 makes sigma ~ 0.7, so the noise and the KL matter; beta large enough
         * that the KL's share of the gradient is visible. */
        ck_assert_ok(vib_model_set_sigma_offset(p.m, 0.0f));
        ck_assert_ok(vib_model_set_beta(p.m, 0.5f));
        if (variant % 2 == 1)
            ck_assert_ok(vib_model_set_deterministic(p.m, 1));
        check_model_gradient(&p);
        vib_model_free(p.m);
    }
}
END_TEST

START_TEST(full_covariance_gradients_match_finite_differences)
{
    const size_t enc[] = {6}, dec[] = {4};
    for (int variant = 0; variant < 2; variant++) {
        model_ctx p;
        ck_assert_ok(vib_model_create_ex(IN, 1, enc, K, variant, dec, C, VIB_MODEL_FULL_COV, 3,
                                         &p.m));
        ck_assert_uint_eq(vib_model_flags(p.m), VIB_MODEL_FULL_COV);
        fill_normal(4, B * IN, 0.0f, 1.0f, p.x);
        for (int r = 0; r < B; r++)
            p.y[r] = r % C;
        ck_assert_ok(vib_model_set_sigma_offset(p.m, 0.0f));
        ck_assert_ok(vib_model_set_beta(p.m, 0.5f));
        /* the off-diagonal outputs start with zero weights: give them some, so the
         * factor's off-diagonal entries and their gradients are exercised */
        float *w = vib_model_params(p.m);
        for (size_t i = 0; i < vib_model_num_params(p.m); i++)
            if (w[i] == 0.0f)
                w[i] = 0.3f * (float)((i * 7) % 5) - 0.6f;
        /* a smaller step: with these weights a decoder ReLU sits within 1e-2 of its kink */
        check_model_gradient_h(&p, 2e-3);
        vib_model_free(p.m);
    }
}
END_TEST

START_TEST(full_covariance_posterior)
{
    /* K = 2: encode_chol gives mu and L; encode's sigma is the norm of each row of L;
     * a fresh full-covariance model starts with a diagonal L; samples from predict
     * follow N(mu, L L^T) (checked through a one-row model whose decoder reads z). */
    const size_t enc[] = {6};
    vib_model *m = NULL;
    ck_assert_ok(vib_model_create_ex(IN, 1, enc, 2, 0, NULL, C, VIB_MODEL_FULL_COV, 9, &m));
    float x[B * IN], mu[B * 2], chol[B * 3], mu2[B * 2], sigma[B * 2];
    fill_normal(8, B * IN, 0.0f, 1.0f, x);
    ck_assert_ok(vib_model_encode_chol(m, B, x, mu, chol));
    for (int r = 0; r < B; r++) {
        ck_assert(chol[r * 3 + 0] > 0.0f && chol[r * 3 + 2] > 0.0f);
        ck_assert_msg(chol[r * 3 + 1] == 0.0f, "L10 = %g at creation", (double)chol[r * 3 + 1]);
    }
    float *w = vib_model_params(m);
    for (size_t i = 0; i < vib_model_num_params(m); i++)
        w[i] += 0.05f * (float)((i * 3) % 7) - 0.15f;
    ck_assert_ok(vib_model_encode_chol(m, B, x, mu, chol));
    ck_assert_ok(vib_model_encode(m, B, x, mu2, sigma));
    ck_assert_mem_eq(mu, mu2, sizeof mu);
    for (int r = 0; r < B; r++) {
        const float *L = chol + r * 3;
        ck_assert(L[1] != 0.0f);
        ck_assert_float_eq_tol(sigma[r * 2 + 0], L[0], 1e-6f);
        ck_assert_float_eq_tol(sigma[r * 2 + 1], sqrtf(L[1] * L[1] + L[2] * L[2]), 1e-6f);
    }
    /* a diagonal model's factor is diag(sigma) */
    vib_model *d = NULL;
    ck_assert_ok(vib_model_create(IN, 1, enc, 2, 0, NULL, C, 9, &d));
    ck_assert_ok(vib_model_encode_chol(d, B, x, mu, chol));
    ck_assert_ok(vib_model_encode(d, B, x, mu2, sigma));
    for (int r = 0; r < B; r++) {
        ck_assert(chol[r * 3 + 0] == sigma[r * 2 + 0] && chol[r * 3 + 1] == 0.0f &&
                  chol[r * 3 + 2] == sigma[r * 2 + 1]);
    }
    ck_assert_ok(vib_model_set_deterministic(d, 1));
    ck_assert_ok(vib_model_encode_chol(d, B, x, mu, chol));
    for (int i = 0; i < B * 3; i++)
        ck_assert(chol[i] == 0.0f);
    ck_assert_fails(vib_model_encode_chol(d, B, x, NULL, chol), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_model_encode_chol(d, B, x, mu, NULL), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_model_create_ex(IN, 1, enc, 2, 0, NULL, C, 4, 9, &d), VIB_ERR_INVALID_ARG);
    char desc[128];
    ck_assert_int_eq(vib_model_describe(m, desc, sizeof desc), (int)strlen(desc));
    ck_assert_ptr_nonnull(strstr(desc, "K=2 full-cov"));
    vib_model_free(m);
    vib_model_free(d);
}
END_TEST

START_TEST(gradient_in_the_sigma_tail)
{
    /* With the paper's offset -5 and rho pushed to -40, sigma underflows towards 0:
     * the KL's gradient through the head must stay finite and correct. */
    model_ctx p;
    make_ctx(&p, 0, NULL);
    ck_assert_ok(vib_model_set_sigma_offset(p.m, -40.0f));
    ck_assert_ok(vib_model_set_beta(p.m, 1.0f));
    check_model_gradient(&p);
    const size_t n = vib_model_num_params(p.m);
    for (size_t i = 0; i < n; i++)
        ck_assert(isfinite(vib_model_grads(p.m)[i]));
    vib_model_free(p.m);
}
END_TEST

START_TEST(decoder_gradient_is_independent_of_beta)
{
    model_ctx p;
    make_ctx(&p, 0, NULL);
    ck_assert_ok(vib_model_set_sigma_offset(p.m, 0.0f));
    const size_t n = vib_model_num_params(p.m);
    const size_t n_dec = K * C + C; /* the linear decoder's W and b, last in the array */
    float *g0 = malloc(n * sizeof *g0);
    ck_assert_ok(vib_model_set_beta(p.m, 0.0f));
    double loss0 = model_loss(&p);
    memcpy(g0, vib_model_grads(p.m), n * sizeof *g0);
    ck_assert_ok(vib_model_set_beta(p.m, 1.0f));
    double loss1 = model_loss(&p);
    const float *g1 = vib_model_grads(p.m);
    ck_assert(loss1 > loss0);
    ck_assert_mem_eq(g0 + n - n_dec, g1 + n - n_dec, n_dec * sizeof(float));
    double diff = 0.0;
    for (size_t i = 0; i < n - n_dec; i++)
        diff += fabs((double)g0[i] - g1[i]);
    ck_assert_msg(diff > 1e-3, "the encoder's gradient did not change with beta (%g)", diff);
    free(g0);
    vib_model_free(p.m);
}
END_TEST

START_TEST(initial_logits_are_order_one)
{
    /* The paper's network: 784-1024-1024, K = 256, 10 classes. Fan-in scaling keeps the
     * initial logits O(1); std-1 weights would make them O(sqrt(1024)) and saturate the
     * softmax. Logits are recovered up to a constant as log p. */
    const size_t enc[] = {1024, 1024};
    enum { ROWS = 32, D = 784, CL = 10 };
    vib_model *m = NULL;
    ck_assert_ok(vib_model_create(D, 2, enc, 256, 0, NULL, CL, 1, &m));
    float *x = malloc(ROWS * D * sizeof *x), prob[ROWS * CL];
    vib_rng *rng = NULL;
    ck_assert_ok(vib_rng_create(2, &rng));
    ck_assert_ok(vib_rng_uniform(rng, ROWS * D, -1.0f, 1.0f, x)); /* the paper's input scale */
    ck_assert_ok(vib_model_predict(m, ROWS, x, 0, prob));
    double spread = 0.0;
    for (int r = 0; r < ROWS; r++) {
        double mean = 0.0, sq = 0.0;
        for (int c = 0; c < CL; c++)
            mean += log(prob[r * CL + c]) / CL;
        for (int c = 0; c < CL; c++)
            sq += pow(log(prob[r * CL + c]) - mean, 2) / CL;
        spread += sqrt(sq) / ROWS;
    }
    ck_assert_msg(spread > 0.05 && spread < 3.0, "initial logit std %g, expected O(1)", spread);
    free(x);
    vib_rng_free(rng);
    vib_model_free(m);
}
END_TEST

/* Synthetic 4-class data: class means on the corners of a 16-d cube, unit noise. */
static void blobs(uint64_t seed, size_t n, float *x, int32_t *y)
{
    enum { D = 16 };
    vib_rng *rng = NULL;
    ck_assert_ok(vib_rng_create(seed, &rng));
    ck_assert_ok(vib_rng_normal(rng, n * D, 0.0f, 1.0f, x));
    for (size_t i = 0; i < n; i++) {
        uint64_t u;
        ck_assert_ok(vib_rng_u64(rng, &u));
        y[i] = (int32_t)(u % 4);
        for (int d = 0; d < D; d++)
            x[i * D + d] += 1.5f * (((y[i] >> (d % 2)) & 1) ? 1.0f : -1.0f);
    }
    vib_rng_free(rng);
}

static double error_rate(vib_model *m, size_t n, const float *x, const int32_t *y, size_t s)
{
    float *prob = malloc(n * 4 * sizeof *prob);
    ck_assert_ok(vib_model_predict(m, n, x, s, prob));
    size_t wrong = 0;
    for (size_t i = 0; i < n; i++) {
        int best = 0;
        for (int c = 1; c < 4; c++)
            best = prob[i * 4 + c] > prob[i * 4 + best] ? c : best;
        wrong += best != y[i];
    }
    free(prob);
    return (double)wrong / (double)n;
}

START_TEST(training_reduces_the_error)
{
    enum { N = 512, TEST = 512, D = 16, BATCH = 32, STEPS = 300 };
    float *x = malloc(N * D * sizeof *x), *xt = malloc(TEST * D * sizeof *xt);
    int32_t y[N], yt[TEST];
    blobs(10, N, x, y);
    blobs(11, TEST, xt, yt);
    const size_t enc[] = {32};
    vib_model *m = NULL;
    vib_optim *opt = NULL;
    ck_assert_ok(vib_model_create(D, 1, enc, 4, 0, NULL, 4, 5, &m));
    ck_assert_ok(vib_adam_create(vib_model_num_params(m), 1e-2f, 0.9f, 0.999f, 1e-8f, &opt));
    double before = error_rate(m, TEST, xt, yt, 0), first_loss = 0.0, loss = 0.0;
    for (int step = 0; step < STEPS; step++) {
        size_t off = (size_t)(step * BATCH) % N;
        ck_assert_ok(vib_model_gradients(m, BATCH, x + off * D, y + off, NULL, NULL, &loss));
        if (step == 0)
            first_loss = loss;
        ck_assert_ok(vib_optim_step(opt, vib_model_params(m), vib_model_grads(m)));
    }
    double after = error_rate(m, TEST, xt, yt, 0), after12 = error_rate(m, TEST, xt, yt, 12);
    ck_assert_msg(before > 0.4, "an untrained model should be near chance, got %g", before);
    ck_assert_msg(after < 0.05 && after12 < 0.05, "error %g -> %g (12 samples: %g)", before,
                  after, after12);
    ck_assert_msg(loss < 0.5 * first_loss, "loss %g -> %g", first_loss, loss);
    vib_optim_free(opt);
    vib_model_free(m);
    free(x);
    free(xt);
}
END_TEST

START_TEST(encode_and_predict)
{
    model_ctx p;
    make_ctx(&p, 0, NULL);
    float mu[B * K], sigma[B * K], p0[B * C], p12[B * C], p12b[B * C];
    ck_assert_ok(vib_model_encode(p.m, B, p.x, mu, sigma));
    for (int i = 0; i < B * K; i++) /* offset -5 and small rho: sigma near softplus(-5) */
        ck_assert(sigma[i] > 0.0f && sigma[i] < 0.1f);
    ck_assert_ok(vib_model_predict(p.m, B, p.x, 0, p0));
    ck_assert_ok(vib_model_reseed(p.m, 1));
    ck_assert_ok(vib_model_predict(p.m, B, p.x, 12, p12));
    ck_assert_ok(vib_model_reseed(p.m, 1));
    ck_assert_ok(vib_model_predict(p.m, B, p.x, 12, p12b));
    ck_assert_mem_eq(p12, p12b, sizeof p12); /* same seed, same samples */
    double differ = 0.0;
    for (int r = 0; r < B; r++) {
        double s0 = 0.0, s12 = 0.0;
        for (int c = 0; c < C; c++) {
            s0 += p0[r * C + c];
            s12 += p12[r * C + c];
            differ += fabs(p0[r * C + c] - p12[r * C + c]);
            /* small sigma: the sample average stays close to the mean's prediction */
            ck_assert_float_eq_tol(p0[r * C + c], p12[r * C + c], 0.05f);
        }
        ck_assert_double_eq_tol(s0, 1.0, 1e-5);
        ck_assert_double_eq_tol(s12, 1.0, 1e-5);
    }
    ck_assert(differ > 0.0);
    /* deterministic: sigma is 0 and the samples are ignored */
    ck_assert_ok(vib_model_set_deterministic(p.m, 1));
    ck_assert_ok(vib_model_encode(p.m, B, p.x, mu, sigma));
    for (int i = 0; i < B * K; i++)
        ck_assert(sigma[i] == 0.0f);
    ck_assert_ok(vib_model_predict(p.m, B, p.x, 12, p12));
    ck_assert_mem_eq(p0, p12, sizeof p0);
    double ce, kl, loss;
    ck_assert_ok(vib_model_gradients(p.m, B, p.x, p.y, &ce, &kl, &loss));
    ck_assert(kl == 0.0 && loss == ce);
    char desc[128];
    /* snprintf's convention, as vib_backend_info: the whole text's length, whatever fits */
    static const char whole[] = "5-6 | K=3 | decoder 3 | deterministic";
    ck_assert_int_eq(vib_model_describe(p.m, desc, sizeof desc), (int)strlen(whole));
    ck_assert_str_eq(desc, whole);
    ck_assert_int_eq(vib_model_describe(p.m, desc, 4), (int)strlen(whole)); /* cut: >= len */
    ck_assert_str_eq(desc, "5-6");
    ck_assert_int_eq(vib_model_describe(p.m, NULL, 0), (int)strlen(whole)); /* length only */
    vib_model_free(p.m);
}
END_TEST

START_TEST(reported_kl_and_sample_average)
{
    /* The KL that vib_model_gradients reports equals vib_kl_std_normal on the posterior
     * vib_model_encode returns; predict with S samples is the mean of S one-sample
     * predictions drawn in the same order. */
    model_ctx p;
    make_ctx(&p, 0, NULL);
    ck_assert_ok(vib_model_set_sigma_offset(p.m, 0.0f));
    double ce, kl, loss;
    ck_assert_ok(vib_model_gradients(p.m, B, p.x, p.y, &ce, &kl, &loss));
    float mu[B * K], sigma[B * K], klr[B];
    ck_assert_ok(vib_model_encode(p.m, B, p.x, mu, sigma));
    ck_assert_ok(vib_kl_std_normal(B, K, mu, sigma, klr));
    double mean = 0.0;
    for (int r = 0; r < B; r++)
        mean += klr[r] / (double)B;
    ck_assert_double_eq_tol(kl, mean, 1e-5 * (1.0 + mean));
    ck_assert_double_eq_tol(loss, ce + 1e-3 * kl, 1e-9);
    enum { S = 5 };
    float avg[B * C], one[B * C];
    double acc[B * C] = {0};
    ck_assert_ok(vib_model_reseed(p.m, 4));
    ck_assert_ok(vib_model_predict(p.m, B, p.x, S, avg));
    ck_assert_ok(vib_model_reseed(p.m, 4));
    for (int s = 0; s < S; s++) {
        ck_assert_ok(vib_model_predict(p.m, B, p.x, 1, one));
        for (int i = 0; i < B * C; i++)
            acc[i] += one[i] / (double)S;
    }
    for (int i = 0; i < B * C; i++)
        ck_assert_double_eq_tol(avg[i], acc[i], 1e-6);
    /* prediction has its own noise: it does not move training's stream */
    double loss_a, loss_b;
    ck_assert_ok(vib_model_reseed(p.m, 9));
    ck_assert_ok(vib_model_gradients(p.m, B, p.x, p.y, NULL, NULL, &loss_a));
    ck_assert_ok(vib_model_reseed(p.m, 9));
    ck_assert_ok(vib_model_predict(p.m, B, p.x, 7, one));
    ck_assert_ok(vib_model_gradients(p.m, B, p.x, p.y, NULL, NULL, &loss_b));
    ck_assert(loss_a == loss_b);
    vib_model_free(p.m);
}
END_TEST

START_TEST(deep_architectures_match_finite_differences)
{
    /* Three hidden layers on each side, a head wider than any layer, no encoder with a
     * deep decoder: every layer kind of backward_layers and the workspace carving.
     * Biases are jittered so no ReLU sits exactly at its kink. */
    const size_t enc3[] = {7, 4, 6}, dec3[] = {5, 3, 4}, wide[] = {2};
    struct { size_t n_enc; const size_t *enc; size_t k; size_t n_dec; const size_t *dec; } arch[] = {
        {3, enc3, 3, 3, dec3}, {1, wide, 6, 0, NULL}, {0, NULL, 2, 3, dec3}};
    for (int a = 0; a < 3; a++) {
        model_ctx p;
        ck_assert_ok(vib_model_create(IN, arch[a].n_enc, arch[a].enc, arch[a].k, arch[a].n_dec,
                                      arch[a].dec, C, 21, &p.m));
        fill_normal(22, B * IN, 0.0f, 1.0f, p.x);
        for (int r = 0; r < B; r++)
            p.y[r] = (r + 1) % C;
        ck_assert_ok(vib_model_set_sigma_offset(p.m, -1.0f));
        ck_assert_ok(vib_model_set_beta(p.m, 0.3f));
        float *w = vib_model_params(p.m);
        for (size_t i = 0; i < vib_model_num_params(p.m); i++)
            if (w[i] == 0.0f)
                w[i] = 0.05f + 0.01f * (float)(i % 7);
        /* small steps: with seven ReLU layers some unit is always near a kink */
        check_model_gradient_h(&p, 1e-3);
        vib_model_free(p.m);
    }
}
END_TEST

/* A step refused for a non-finite loss leaves no trace: the noise stream is where it
 * was, so the next step matches that of a twin model that never failed. */
START_TEST(failed_step_keeps_the_noise_stream)
{
    model_ctx a, b;
    make_ctx(&a, 0, NULL);
    make_ctx(&b, 0, NULL);
    const size_t n = vib_model_num_params(a.m);
    float *params = vib_model_params(a.m);
    for (size_t i = 0; i < n; i++)
        params[i] = 1e30f; /* the logits overflow: the loss is not finite */
    ck_assert_fails(vib_model_gradients(a.m, B, a.x, a.y, NULL, NULL, NULL), VIB_ERR_NUMERIC);
    memcpy(params, vib_model_params(b.m), n * sizeof(float));
    double la, lb;
    ck_assert_ok(vib_model_gradients(a.m, B, a.x, a.y, NULL, NULL, &la));
    ck_assert_ok(vib_model_gradients(b.m, B, b.x, b.y, NULL, NULL, &lb));
    ck_assert_msg(la == lb, "loss %.17g after the failed step, %.17g without it", la, lb);
    ck_assert_mem_eq(vib_model_grads(a.m), vib_model_grads(b.m), n * sizeof(float));
    vib_model_free(a.m);
    vib_model_free(b.m);
}
END_TEST

START_TEST(bad_arguments)
{
    const size_t enc[] = {6}, zero[] = {0};
    vib_model *m = NULL, *untouched = (vib_model *)0x1;
    ck_assert_fails(vib_model_create(IN, 1, enc, K, 0, NULL, C, 1, NULL), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_model_create(0, 1, enc, K, 0, NULL, C, 1, &untouched), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_model_create(IN, 1, enc, 0, 0, NULL, C, 1, &untouched), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_model_create(IN, 1, enc, K, 0, NULL, 1, 1, &untouched), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_model_create(IN, 1, NULL, K, 0, NULL, C, 1, &untouched), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_model_create(IN, 0, NULL, K, 1, NULL, C, 1, &untouched), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_model_create(IN, 1, zero, K, 0, NULL, C, 1, &untouched), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_model_create(SIZE_MAX, 1, enc, K, 0, NULL, C, 1, &untouched), VIB_ERR_INVALID_ARG);
    ck_assert_ptr_eq(untouched, (vib_model *)0x1);
    ck_assert_ok(vib_model_create(IN, 0, NULL, K, 0, NULL, C, 1, &m)); /* no hidden layers */
    float x[B * IN] = {0}, out[B * K], prob[B * C];
    int32_t y[B] = {0, 1, 2, 0};
    ck_assert_fails(vib_model_set_beta(NULL, 1.0f), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_model_set_beta(m, -1.0f), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_model_set_beta(m, NAN), VIB_ERR_NUMERIC);
    ck_assert_fails(vib_model_set_sigma_offset(NULL, 1.0f), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_model_set_sigma_offset(m, INFINITY), VIB_ERR_NUMERIC);
    ck_assert_fails(vib_model_set_deterministic(NULL, 1), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_model_set_deterministic(m, 2), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_model_reseed(NULL, 1), VIB_ERR_INVALID_ARG);
    ck_assert(vib_model_beta(m) == 1e-3f && vib_model_sigma_offset(m) == -5.0f);
    ck_assert_fails(vib_model_gradients(NULL, B, x, y, NULL, NULL, NULL), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_model_gradients(m, 0, x, y, NULL, NULL, NULL), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_model_gradients(m, B, NULL, y, NULL, NULL, NULL), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_model_gradients(m, B, x, NULL, NULL, NULL, NULL), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_model_gradients(m, SIZE_MAX, x, y, NULL, NULL, NULL), VIB_ERR_INVALID_ARG);
    y[3] = 3;
    ck_assert_fails(vib_model_gradients(m, B, x, y, NULL, NULL, NULL), VIB_ERR_INVALID_ARG);
    y[3] = -1;
    ck_assert_fails(vib_model_gradients(m, B, x, y, NULL, NULL, NULL), VIB_ERR_INVALID_ARG);
    y[3] = 0;
    x[7] = NAN;
    const size_t n = vib_model_num_params(m);
    for (size_t i = 0; i < n; i++)
        vib_model_grads(m)[i] = 42.0f;
    ck_assert_fails(vib_model_gradients(m, B, x, y, NULL, NULL, NULL), VIB_ERR_NUMERIC);
    for (size_t i = 0; i < n; i++)
        ck_assert(vib_model_grads(m)[i] == 42.0f); /* a refused batch changes nothing */
    ck_assert_fails(vib_model_encode(m, B, x, out, out), VIB_ERR_NUMERIC);
    ck_assert_fails(vib_model_predict(m, B, x, 0, prob), VIB_ERR_NUMERIC);
    x[7] = 0.0f;
    ck_assert_fails(vib_model_encode(m, B, x, NULL, out), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_model_encode(m, B, x, out, NULL), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_model_encode(NULL, B, x, out, out), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_model_predict(m, B, x, 0, NULL), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_model_predict(m, B, NULL, 0, prob), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_model_predict(NULL, B, x, 0, prob), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_model_describe(NULL, (char[8]){0}, 8), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_model_describe(m, NULL, 8), VIB_ERR_INVALID_ARG);
    ck_assert_int_gt(vib_model_describe(m, NULL, 0), 0);
    ck_assert_ptr_null(vib_model_params(NULL));
    ck_assert_ptr_null(vib_model_grads(NULL));
    ck_assert_uint_eq(vib_model_num_params(NULL), 0);
    ck_assert_uint_eq(vib_model_num_params(m), IN * 2 * K + 2 * K + K * C + C);
    ck_assert_uint_eq(vib_model_input_dim(m), IN);
    ck_assert_uint_eq(vib_model_latent_dim(m), K);
    ck_assert_uint_eq(vib_model_classes(m), C);
    vib_model_free(m);
    vib_model_free(NULL);
}
END_TEST

/* ---- the parameter blocks ------------------------------------------------------- */

START_TEST(blocks_tile_the_parameters)
{
    /* Every layer kind, a model without an encoder, and a full-covariance head: the
     * blocks follow each other without gap or overlap, W [in x out] then b [1 x out],
     * roles and indices in the layer order, and cover exactly num_params floats. */
    const size_t enc3[] = {7, 4, 6}, dec2[] = {5, 3};
    struct { size_t n_enc; const size_t *enc; size_t k; size_t n_dec; const size_t *dec;
             uint32_t flags; } arch[] = {
        {3, enc3, 3, 2, dec2, 0}, {0, NULL, 2, 2, dec2, 0}, {1, enc3, 3, 0, NULL, 0},
        {3, enc3, 4, 2, dec2, VIB_MODEL_FULL_COV}};
    for (size_t a = 0; a < sizeof arch / sizeof arch[0]; a++) {
        vib_model *m = NULL;
        ck_assert_ok(vib_model_create_ex(IN, arch[a].n_enc, arch[a].enc, arch[a].k,
                                         arch[a].n_dec, arch[a].dec, C, arch[a].flags, 2, &m));
        const size_t nb = vib_model_num_blocks(m), k = arch[a].k;
        const size_t head_out = k + (arch[a].flags ? vib_chol_size(k) : k);
        ck_assert_uint_eq(nb, 2 * (arch[a].n_enc + arch[a].n_dec + 2));
        size_t next = 0, in = IN;
        for (size_t b = 0; b < nb; b++) {
            size_t off = 99, rows = 99, cols = 99, index = 99;
            int kind = 99, role = 99;
            ck_assert_ok(vib_model_block(m, b, &off, &rows, &cols, &kind, &role, &index));
            const size_t l = b / 2;
            int want_role;
            size_t want_index = 0, out;
            if (l < arch[a].n_enc) {
                want_role = VIB_LAYER_ENCODER, want_index = l, out = arch[a].enc[l];
            } else if (l == arch[a].n_enc) {
                want_role = VIB_LAYER_HEAD, out = head_out;
            } else if (l < arch[a].n_enc + 1 + arch[a].n_dec) {
                want_role = VIB_LAYER_DECODER, want_index = l - arch[a].n_enc - 1;
                out = arch[a].dec[want_index];
            } else {
                want_role = VIB_LAYER_OUTPUT, out = C;
            }
            ck_assert_msg(off == next, "model %zu block %zu at %zu, expected %zu", a, b, off, next);
            ck_assert_int_eq(kind, b % 2 ? VIB_BLOCK_BIAS : VIB_BLOCK_WEIGHTS);
            ck_assert_int_eq(role, want_role);
            ck_assert_uint_eq(index, want_index);
            ck_assert_uint_eq(rows, b % 2 ? 1 : in);
            ck_assert_uint_eq(cols, out);
            next += rows * cols;
            if (b % 2) /* the decoder reads z, not the head's outputs */
                in = want_role == VIB_LAYER_HEAD ? k : out;
        }
        ck_assert_uint_eq(next, vib_model_num_params(m));
        /* every out pointer is optional */
        ck_assert_ok(vib_model_block(m, nb - 1, NULL, NULL, NULL, NULL, NULL, NULL));
        vib_model_free(m);
    }
}
END_TEST

START_TEST(block_writes_reach_their_layer)
{
    model_ctx p;
    make_ctx(&p, 0, NULL);
    float *params = vib_model_params(p.m);
    const size_t nb = vib_model_num_blocks(p.m);
    /* the output layer's W and b at 0: every logit is 0, every class equally likely */
    for (size_t b = nb - 2; b < nb; b++) {
        size_t off, rows, cols;
        int role;
        ck_assert_ok(vib_model_block(p.m, b, &off, &rows, &cols, NULL, &role, NULL));
        ck_assert_int_eq(role, VIB_LAYER_OUTPUT);
        fill_const(params + off, rows * cols, 0.0f);
    }
    float prob[B * C];
    ck_assert_ok(vib_model_predict(p.m, B, p.x, 3, prob));
    for (int i = 0; i < B * C; i++)
        ck_assert_float_eq_tol(prob[i], 1.0f / C, 1e-7f);
    /* the head's W at 0 and its bias [mu | rho] set: every row's posterior is the bias's */
    size_t woff, wrows, wcols, boff, bcols;
    int role;
    ck_assert_ok(vib_model_block(p.m, 2, &woff, &wrows, &wcols, NULL, &role, NULL));
    ck_assert_int_eq(role, VIB_LAYER_HEAD);
    ck_assert_ok(vib_model_block(p.m, 3, &boff, NULL, &bcols, NULL, NULL, NULL));
    ck_assert_uint_eq(bcols, 2 * K);
    fill_const(params + woff, wrows * wcols, 0.0f);
    const float bias[2 * K] = {0.5f, -1.0f, 2.0f, 3.0f, 5.0f, 4.0f};
    memcpy(params + boff, bias, sizeof bias);
    float mu[B * K], sigma[B * K], want[K];
    ck_assert_ok(vib_sigma_head_forward(K, bias + K, vib_model_sigma_offset(p.m), want, NULL));
    ck_assert_ok(vib_model_encode(p.m, B, p.x, mu, sigma));
    for (int r = 0; r < B; r++)
        for (int j = 0; j < K; j++) {
            ck_assert(mu[r * K + j] == bias[j]);
            ck_assert(sigma[r * K + j] == want[j]);
        }
    vib_model_free(p.m);
}
END_TEST

START_TEST(block_bad_arguments)
{
    static const char fn[] = "vib_model_block";
    model_ctx p;
    make_ctx(&p, 0, NULL);
    size_t off = 7, rows = 7, cols = 7, index = 7;
    int kind = 7, role = 7;
    const outbuf outs[] = {{"offset", &off, sizeof off, NULL}, {"rows", &rows, sizeof rows, NULL},
                           {"cols", &cols, sizeof cols, NULL}, {"kind", &kind, sizeof kind, NULL},
                           {"role", &role, sizeof role, NULL}, {"index", &index, sizeof index, NULL}};
    arm_outputs(outs, 6);
    const size_t nb = vib_model_num_blocks(p.m);
    BAD(vib_model_block(NULL, 0, &off, &rows, &cols, &kind, &role, &index), VIB_ERR_INVALID_ARG,
        "model");
    BAD(vib_model_block(p.m, nb, &off, &rows, &cols, &kind, &role, &index), VIB_ERR_INVALID_ARG,
        "block");
    BAD(vib_model_block(p.m, SIZE_MAX, &off, &rows, &cols, &kind, &role, &index),
        VIB_ERR_INVALID_ARG, "block");
    ck_assert_uint_eq(vib_model_num_blocks(NULL), 0);
    vib_model_free(p.m);
}
END_TEST

/* ---- input gradients ------------------------------------------------------------ */

typedef struct {
    model_ctx *p;
    size_t samples;
} input_ctx;

/* The loss input_gradients differentiates, at the current x, by other means: with
 * samples >= 1 the mean of `samples` training losses (vib_model_gradients) drawn from
 * the restarted training stream, in input_gradients' order; with samples = 0 the
 * cross-entropy of vib_model_predict at z = mu plus beta times the KL of the posterior
 * that vib_model_encode(_chol) gives, by the public KL nodes. */
static double input_loss(void *ctx)
{
    input_ctx *q = ctx;
    model_ctx *p = q->p;
    vib_model *m = p->m;
    ck_assert_ok(vib_model_reseed(m, 77));
    if (q->samples > 0 || vib_model_deterministic(m)) {
        const size_t draws = vib_model_deterministic(m) ? 1 : q->samples;
        double sum = 0.0, loss;
        for (size_t s = 0; s < draws; s++) {
            ck_assert_ok(vib_model_gradients(m, B, p->x, p->y, NULL, NULL, &loss));
            sum += loss;
        }
        return sum / (double)draws;
    }
    float prob[B * C], mu[B * K], scale[B * K * (K + 1) / 2], kl[B];
    ck_assert_ok(vib_model_predict(m, B, p->x, 0, prob));
    if (vib_model_flags(m) & VIB_MODEL_FULL_COV) {
        ck_assert_ok(vib_model_encode_chol(m, B, p->x, mu, scale));
        ck_assert_ok(vib_kl_chol_std_normal(B, K, mu, scale, kl));
    } else {
        ck_assert_ok(vib_model_encode(m, B, p->x, mu, scale));
        ck_assert_ok(vib_kl_std_normal(B, K, mu, scale, kl));
    }
    double loss = 0.0;
    for (int r = 0; r < B; r++)
        loss += (-log((double)prob[r * C + p->y[r]]) + (double)vib_model_beta(m) * kl[r]) / B;
    return loss;
}

START_TEST(input_gradients_match_finite_differences)
{
    const size_t enc[] = {6}, dec[] = {4};
    for (int variant = 0; variant < 5; variant++) {
        /* diagonal, full covariance, full covariance with a hidden decoder, a deterministic
         * model, and a model without encoder (the head reads x) */
        const bool full = variant == 1 || variant == 2;
        model_ctx p;
        ck_assert_ok(vib_model_create_ex(IN, variant == 4 ? 0 : 1, enc, K, variant == 2, dec, C,
                                         full ? VIB_MODEL_FULL_COV : 0, 3, &p.m));
        fill_normal(4, B * IN, 0.0f, 1.0f, p.x);
        for (int r = 0; r < B; r++)
            p.y[r] = r % C;
        ck_assert_ok(vib_model_set_sigma_offset(p.m, 0.0f));
        ck_assert_ok(vib_model_set_beta(p.m, 0.5f));
        ck_assert_ok(vib_model_set_deterministic(p.m, variant == 3));
        const size_t n = vib_model_num_params(p.m);
        float *w = vib_model_params(p.m);
        for (size_t i = 0; i < n; i++) /* off-diagonal factor weights, biases: not 0 */
            if (w[i] == 0.0f)
                w[i] = 0.3f * (float)((i * 7) % 5) - 0.6f;
        float *grads = vib_model_grads(p.m), *params0 = malloc(n * sizeof(float));
        memcpy(params0, w, n * sizeof(float));
        static const size_t samples[] = {0, 1, 3};
        for (int s = 0; s < 3; s++) {
            input_ctx q = {&p, samples[s]};
            float dx[B * IN];
            double loss;
            for (size_t i = 0; i < n; i++) /* (input_loss's training steps write them) */
                grads[i] = (float)i - 0.5f;
            ck_assert_ok(vib_model_reseed(p.m, 77));
            ck_assert_ok(vib_model_input_gradients(p.m, B, p.x, p.y, samples[s], dx, &loss));
            for (size_t i = 0; i < n; i++) /* no parameter gradient is touched */
                ck_assert_msg(grads[i] == (float)i - 0.5f, "variant %d: grads[%zu] changed",
                              variant, i);
            ck_assert_mem_eq(w, params0, n * sizeof(float));
            const double want = input_loss(&q);
            if (samples[s] > 0 || variant == 3) /* the same losses, summed in the same order */
                ck_assert_msg(loss == want, "variant %d, %zu samples: loss %.17g, expected %.17g",
                              variant, samples[s], loss, want);
            else
                ck_assert_double_eq_tol(loss, want, 1e-6 * (1.0 + want));
            char what[64];
            snprintf(what, sizeof what, "variant %d, %zu samples: dx", variant, samples[s]);
            check_gradient(what, input_loss, &q, p.x, B * IN, dx, 1e-2, 1e-2, 2e-4);
        }
        free(params0);
        vib_model_free(p.m);
    }
}
END_TEST

/* The draws come from the training stream, samples x batch x K normals of it: the
 * training step after the call sees what it would after `samples` training steps. */
START_TEST(input_gradients_draw_from_the_training_stream)
{
    model_ctx a, b;
    make_ctx(&a, 0, NULL);
    make_ctx(&b, 0, NULL);
    ck_assert_ok(vib_model_set_sigma_offset(a.m, 0.0f));
    ck_assert_ok(vib_model_set_sigma_offset(b.m, 0.0f));
    float dx[B * IN], prob_a[B * C], prob_b[B * C];
    double la, lb;
    ck_assert_ok(vib_model_input_gradients(a.m, B, a.x, a.y, 3, dx, NULL));
    for (int s = 0; s < 3; s++)
        ck_assert_ok(vib_model_gradients(b.m, B, b.x, b.y, NULL, NULL, NULL));
    ck_assert_ok(vib_model_gradients(a.m, B, a.x, a.y, NULL, NULL, &la));
    ck_assert_ok(vib_model_gradients(b.m, B, b.x, b.y, NULL, NULL, &lb));
    ck_assert(la == lb);
    /* the prediction stream is not used */
    ck_assert_ok(vib_model_predict(a.m, B, a.x, 2, prob_a));
    ck_assert_ok(vib_model_predict(b.m, B, b.x, 2, prob_b));
    ck_assert_mem_eq(prob_a, prob_b, sizeof prob_a);
    /* samples = 0 draws nothing */
    ck_assert_ok(vib_model_input_gradients(a.m, B, a.x, a.y, 0, dx, NULL));
    ck_assert_ok(vib_model_gradients(a.m, B, a.x, a.y, NULL, NULL, &la));
    ck_assert_ok(vib_model_gradients(b.m, B, b.x, b.y, NULL, NULL, &lb));
    ck_assert(la == lb);
    vib_model_free(a.m);
    vib_model_free(b.m);
}
END_TEST

/* Input gradients on 2 threads equal those on 1, the same bits, with ReLU layers wide
 * enough (64 rows x 256) that the mask's pass runs split over the threads: without
 * parameter gradients it has no bias gradient to sum, and each thread's share of that
 * absent array was formed as NULL + offset and written (a crash at 2 threads, found by
 * tests/tsan/tsan_test on the GCC build). */
START_TEST(input_gradients_on_two_threads)
{
    enum { R = 64, D = 32, H = 256, KD = 4, CD = 3 };
    static float x[R * D], dx1[R * D], dx2[R * D];
    static int32_t y[R];
    fill_normal(11, R * D, 0.0f, 1.0f, x);
    for (int i = 0; i < R; i++)
        y[i] = i % CD;
    const size_t enc[] = {H, H};
    double loss1, loss2;
    for (int threads = 1; threads <= 2; threads++) {
        vib_model *m = NULL;
        ck_assert_ok(vib_model_create(D, 2, enc, KD, 0, NULL, CD, 3, &m));
        ck_assert_ok(vib_set_num_threads(threads));
        float *dx = threads == 1 ? dx1 : dx2;
        memset(dx, 0, sizeof dx1);
        ck_assert_ok(vib_model_input_gradients(m, R, x, y, 2, dx, threads == 1 ? &loss1 : &loss2));
        vib_model_free(m);
    }
    ck_assert_ok(vib_set_num_threads(0));
    ck_assert_msg(memcmp(dx1, dx2, sizeof dx1) == 0, "input gradients differ at 2 threads");
    ck_assert_msg(loss1 == loss2, "losses differ: %g, %g", loss1, loss2);
}
END_TEST

START_TEST(input_gradients_bad_arguments)
{
    static const char fn[] = "vib_model_input_gradients";
    model_ctx p, twin;
    make_ctx(&p, 0, NULL);
    make_ctx(&twin, 0, NULL);
    float dx[B * IN];
    double loss;
    const outbuf outs[] = {{"dx", dx, sizeof dx, NULL}, {"loss", &loss, sizeof loss, NULL}};
    arm_outputs(outs, 2);
    const size_t n = vib_model_num_params(p.m);
    float *grads = vib_model_grads(p.m);
    fill_const(grads, n, 42.0f);
    BAD(vib_model_input_gradients(NULL, B, p.x, p.y, 1, dx, &loss), VIB_ERR_INVALID_ARG, "model");
    BAD(vib_model_input_gradients(p.m, 0, p.x, p.y, 1, dx, &loss), VIB_ERR_INVALID_ARG, "batch");
    BAD(vib_model_input_gradients(p.m, B, NULL, p.y, 1, dx, &loss), VIB_ERR_INVALID_ARG, "x");
    BAD(vib_model_input_gradients(p.m, SIZE_MAX, p.x, p.y, 1, dx, &loss), VIB_ERR_INVALID_ARG,
        "batch");
    WITH(p.x[7], NAN, BAD(vib_model_input_gradients(p.m, B, p.x, p.y, 1, dx, &loss),
                          VIB_ERR_NUMERIC, "x"));
    BAD(vib_model_input_gradients(p.m, B, p.x, NULL, 1, dx, &loss), VIB_ERR_INVALID_ARG, "labels");
    WITH_TYPED(int32_t, p.y[2], C, BAD(vib_model_input_gradients(p.m, B, p.x, p.y, 1, dx, &loss),
                                       VIB_ERR_INVALID_ARG, "labels"));
    WITH_TYPED(int32_t, p.y[2], -1, BAD(vib_model_input_gradients(p.m, B, p.x, p.y, 1, dx, &loss),
                                        VIB_ERR_INVALID_ARG, "labels"));
    BAD(vib_model_input_gradients(p.m, B, p.x, p.y, 1, NULL, &loss), VIB_ERR_INVALID_ARG, "dx");
    BAD(vib_model_input_gradients(p.m, B, p.x, p.y, 100001, dx, &loss), VIB_ERR_INVALID_ARG,
        "samples");
    /* a non-finite loss: nothing written, and the training stream where it was, so the
     * next call matches the twin's that never failed */
    float *params = vib_model_params(p.m), *saved = malloc(n * sizeof(float));
    memcpy(saved, params, n * sizeof(float));
    fill_const(params, n, 1e30f);
    BAD(vib_model_input_gradients(p.m, B, p.x, p.y, 3, dx, &loss), VIB_ERR_NUMERIC, "loss");
    memcpy(params, saved, n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        ck_assert(grads[i] == 42.0f);
    float dx_twin[B * IN];
    double loss_twin;
    ck_assert_ok(vib_model_input_gradients(p.m, B, p.x, p.y, 3, dx, &loss));
    ck_assert_ok(vib_model_input_gradients(twin.m, B, twin.x, twin.y, 3, dx_twin, &loss_twin));
    ck_assert(loss == loss_twin);
    ck_assert_mem_eq(dx, dx_twin, sizeof dx);
    /* loss is optional */
    ck_assert_ok(vib_model_input_gradients(p.m, B, p.x, p.y, 0, dx, NULL));
    free(saved);
    vib_model_free(p.m);
    vib_model_free(twin.m);
}
END_TEST

/* ---- evaluation ----------------------------------------------------------------- */

typedef struct {
    double error, ce, kl, izy;
} eval_result;

/* What vib_model_evaluate reports, from the public calls: vib_model_predict (one call on
 * every 500-row chunk, as evaluate draws), vib_model_encode(_chol) and the KL nodes. The
 * caller reseeds before, as before the evaluation it checks. */
static eval_result evaluate_by_hand(vib_model *m, size_t n, const float *x, const int32_t *y,
                                    size_t samples)
{
    const size_t D = vib_model_input_dim(m), k = vib_model_latent_dim(m);
    const size_t c = vib_model_classes(m), t = vib_chol_size(k);
    float *prob = malloc(n * c * sizeof *prob), *mu = malloc(n * k * sizeof *mu);
    float *scale = malloc(n * t * sizeof *scale), *kl = malloc(n * sizeof *kl);
    size_t *count = calloc(c, sizeof *count);
    for (size_t r0 = 0; r0 < n; r0 += 500) {
        const size_t rows = n - r0 < 500 ? n - r0 : 500;
        ck_assert_ok(vib_model_predict(m, rows, x + r0 * D, samples, prob + r0 * c));
    }
    if (vib_model_deterministic(m)) {
        memset(kl, 0, n * sizeof *kl);
    } else if (vib_model_flags(m) & VIB_MODEL_FULL_COV) {
        ck_assert_ok(vib_model_encode_chol(m, n, x, mu, scale));
        ck_assert_ok(vib_kl_chol_std_normal(n, k, mu, scale, kl));
    } else {
        ck_assert_ok(vib_model_encode(m, n, x, mu, scale));
        ck_assert_ok(vib_kl_std_normal(n, k, mu, scale, kl));
    }
    eval_result e = {0, 0, 0, 0};
    for (size_t r = 0; r < n; r++) {
        const float *p = prob + r * c;
        size_t best = 0;
        for (size_t j = 1; j < c; j++)
            if (p[j] > p[best])
                best = j;
        e.error += (best != (size_t)y[r]) / (double)n;
        e.ce += -log2(p[y[r]]) / (double)n;
        e.kl += kl[r] / log(2.0) / (double)n;
        count[y[r]]++;
    }
    double hy = 0.0;
    for (size_t j = 0; j < c; j++)
        if (count[j])
            hy -= (double)count[j] / (double)n * log2((double)count[j] / (double)n);
    e.izy = hy - e.ce;
    free(prob);
    free(mu);
    free(scale);
    free(kl);
    free(count);
    return e;
}

static void check_eval(const char *what, eval_result got, eval_result want)
{
    ck_assert_msg(fabs(got.error - want.error) < 1e-12, "%s: error %.17g, expected %.17g", what,
                  got.error, want.error);
    ck_assert_msg(fabs(got.ce - want.ce) <= 1e-12 * (1.0 + want.ce), "%s: ce %.17g, expected %.17g",
                  what, got.ce, want.ce);
    /* the KL: the head's kernels against the public nodes, to float rounding */
    ck_assert_msg(fabs(got.kl - want.kl) <= 1e-5 * (1.0 + want.kl), "%s: kl %.17g, expected %.17g",
                  what, got.kl, want.kl);
    ck_assert_msg(fabs(got.izy - want.izy) <= 1e-12 * (1.0 + fabs(want.izy)),
                  "%s: izy %.17g, expected %.17g", what, got.izy, want.izy);
}

static eval_result evaluate(vib_model *m, const vib_ema *ema, size_t n, const float *x,
                            const int32_t *y, size_t samples)
{
    eval_result e;
    ck_assert_ok(vib_model_evaluate(m, ema, n, x, y, samples, &e.error, &e.ce, &e.kl, &e.izy));
    return e;
}

START_TEST(evaluate_matches_a_hand_computation)
{
    /* Seven rows (labels 0, 0, 0, 1, 1, 2, 0: H(Y) is not log2 3), at the mean and with
     * four samples, for a diagonal model, a full-covariance one and a deterministic one;
     * then 1203 rows, three chunks, the last partial. */
    enum { N = 7, BIG = 1203 };
    const size_t enc[] = {6};
    static const int32_t y7[N] = {0, 0, 0, 1, 1, 2, 0};
    float *x = malloc(BIG * IN * sizeof *x);
    int32_t *y = malloc(BIG * sizeof *y);
    fill_normal(31, BIG * IN, 0.0f, 1.0f, x);
    for (int r = 0; r < BIG; r++)
        y[r] = r < N ? y7[r] : (int32_t)((r * 7) % 5 % C);
    for (int variant = 0; variant < 3; variant++) {
        vib_model *m = NULL;
        ck_assert_ok(vib_model_create_ex(IN, 1, enc, K, 0, NULL, C,
                                         variant == 1 ? VIB_MODEL_FULL_COV : 0, 8, &m));
        ck_assert_ok(vib_model_set_sigma_offset(m, 0.0f)); /* the samples matter */
        ck_assert_ok(vib_model_set_deterministic(m, variant == 2));
        float *w = vib_model_params(m);
        for (size_t i = 0; i < vib_model_num_params(m); i++)
            if (w[i] == 0.0f)
                w[i] = 0.2f * (float)((i * 7) % 5) - 0.4f;
        static const size_t samples[] = {0, 4};
        static const size_t rows[] = {N, BIG};
        for (int s = 0; s < 2; s++)
            for (int n = 0; n < 2; n++) {
                char what[64];
                snprintf(what, sizeof what, "variant %d, %zu rows, %zu samples", variant, rows[n],
                         samples[s]);
                ck_assert_ok(vib_model_reseed(m, 5));
                const eval_result got = evaluate(m, NULL, rows[n], x, y, samples[s]);
                ck_assert_ok(vib_model_reseed(m, 5));
                check_eval(what, got, evaluate_by_hand(m, rows[n], x, y, samples[s]));
                ck_assert(got.error > 0.0 && got.error < 1.0 && got.ce > 0.0);
                ck_assert(variant == 2 ? got.kl == 0.0 : got.kl > 0.0);
            }
        vib_model_free(m);
    }
    free(x);
    free(y);
}
END_TEST

/* Evaluation draws from the prediction stream as vib_model_predict on its chunks would,
 * and leaves the training stream, the parameters and the gradients alone. */
START_TEST(evaluate_streams_and_state)
{
    enum { N = 612 };
    model_ctx a, b;
    make_ctx(&a, 0, NULL);
    make_ctx(&b, 0, NULL);
    ck_assert_ok(vib_model_set_sigma_offset(a.m, 0.0f));
    ck_assert_ok(vib_model_set_sigma_offset(b.m, 0.0f));
    float *x = malloc(N * IN * sizeof *x), *prob = malloc(N * C * sizeof *prob);
    int32_t y[N];
    fill_normal(12, N * IN, 0.0f, 1.0f, x);
    for (int r = 0; r < N; r++)
        y[r] = r % C;
    const size_t n = vib_model_num_params(a.m);
    fill_const(vib_model_grads(a.m), n, 3.0f);
    fill_const(vib_model_grads(b.m), n, 3.0f);
    double error;
    ck_assert_ok(vib_model_evaluate(a.m, NULL, N, x, y, 3, &error, NULL, NULL, NULL));
    ck_assert_ok(vib_model_predict(b.m, 500, x, 3, prob));
    ck_assert_ok(vib_model_predict(b.m, N - 500, x + 500 * IN, 3, prob + 500 * C));
    ck_assert_mem_eq(vib_model_params(a.m), vib_model_params(b.m), n * sizeof(float));
    ck_assert_mem_eq(vib_model_grads(a.m), vib_model_grads(b.m), n * sizeof(float));
    float pa[B * C], pb[B * C];
    ck_assert_ok(vib_model_predict(a.m, B, a.x, 2, pa));
    ck_assert_ok(vib_model_predict(b.m, B, b.x, 2, pb));
    ck_assert_mem_eq(pa, pb, sizeof pa);
    double la, lb;
    ck_assert_ok(vib_model_gradients(a.m, B, a.x, a.y, NULL, NULL, &la));
    ck_assert_ok(vib_model_gradients(b.m, B, b.x, b.y, NULL, NULL, &lb));
    ck_assert(la == lb);
    /* every output is optional, and each is the same alone as with the others */
    eval_result all, one;
    ck_assert_ok(vib_model_evaluate(a.m, NULL, N, x, y, 0, &all.error, &all.ce, &all.kl, &all.izy));
    ck_assert_ok(vib_model_evaluate(a.m, NULL, N, x, y, 0, NULL, NULL, NULL, NULL));
    ck_assert_ok(vib_model_evaluate(a.m, NULL, N, x, y, 0, NULL, NULL, NULL, &one.izy));
    ck_assert_ok(vib_model_evaluate(a.m, NULL, N, x, y, 0, NULL, &one.ce, &one.kl, NULL));
    ck_assert(all.izy == one.izy && all.ce == one.ce && all.kl == one.kl);
    free(x);
    free(prob);
    vib_model_free(a.m);
    vib_model_free(b.m);
}
END_TEST

START_TEST(evaluate_with_an_average)
{
    /* The average's weights, without touching the model's: the same result as a twin
     * model holding the average's values as its parameters, and another than the
     * model's own weights give; the model is bit for bit what it was afterwards. */
    enum { N = 40 };
    model_ctx a, twin;
    make_ctx(&a, 0, NULL);
    make_ctx(&twin, 0, NULL);
    const size_t n = vib_model_num_params(a.m);
    float *params = vib_model_params(a.m), *moved = malloc(n * sizeof *moved);
    float *saved = malloc(n * sizeof *saved);
    vib_ema *ema = NULL;
    ck_assert_ok(vib_ema_create(n, 0.5f, params, &ema));
    for (int t = 0; t < 3; t++) {
        for (size_t i = 0; i < n; i++)
            moved[i] = params[i] + 0.3f * (float)((i + (size_t)t) % 3) - 0.3f;
        ck_assert_ok(vib_ema_update(ema, moved));
    }
    ck_assert_uint_eq(vib_ema_size(ema), n);
    memcpy(saved, params, n * sizeof *saved);
    memcpy(vib_model_params(twin.m), vib_ema_values(ema), n * sizeof(float));
    float x[N * IN];
    int32_t y[N];
    fill_normal(13, N * IN, 0.0f, 1.0f, x);
    for (int r = 0; r < N; r++)
        y[r] = (r * 5) % C;
    for (int variant = 0; variant < 2; variant++) { /* stochastic, then deterministic */
        ck_assert_ok(vib_model_set_deterministic(a.m, variant));
        ck_assert_ok(vib_model_set_deterministic(twin.m, variant));
        ck_assert_ok(vib_model_reseed(a.m, 6));
        ck_assert_ok(vib_model_reseed(twin.m, 6));
        const eval_result with = evaluate(a.m, ema, N, x, y, 2);
        const eval_result want = evaluate(twin.m, NULL, N, x, y, 2);
        ck_assert_mem_eq(&with, &want, sizeof with);
        ck_assert_mem_eq(params, saved, n * sizeof *saved);
        const eval_result own = evaluate(a.m, NULL, N, x, y, 2);
        ck_assert(own.ce != with.ce);
        /* the model computes with its own weights again */
        float pa[B * C], pb[B * C];
        ck_assert_ok(vib_model_predict(a.m, B, a.x, 0, pa));
        memcpy(vib_model_params(twin.m), saved, n * sizeof(float));
        ck_assert_ok(vib_model_predict(twin.m, B, twin.x, 0, pb));
        ck_assert_mem_eq(pa, pb, sizeof pa);
        memcpy(vib_model_params(twin.m), vib_ema_values(ema), n * sizeof(float));
    }
    vib_ema_free(ema);
    free(moved);
    free(saved);
    vib_model_free(a.m);
    vib_model_free(twin.m);
}
END_TEST

START_TEST(evaluate_clamps_a_zero_probability)
{
    /* Logits 0, 0, 200: the first two classes' probabilities underflow to 0 in float,
     * and count as FLT_MIN, 126 bits each. */
    model_ctx p;
    make_ctx(&p, 0, NULL);
    float *params = vib_model_params(p.m);
    const size_t nb = vib_model_num_blocks(p.m);
    size_t woff, wsize, boff;
    ck_assert_ok(vib_model_block(p.m, nb - 2, &woff, &wsize, NULL, NULL, NULL, NULL));
    ck_assert_ok(vib_model_block(p.m, nb - 1, &boff, NULL, NULL, NULL, NULL, NULL));
    fill_const(params + woff, boff - woff, 0.0f);
    params[boff + 0] = params[boff + 1] = 0.0f;
    params[boff + 2] = 200.0f;
    const int32_t y[B] = {0, 1, 0, 1};
    eval_result e = evaluate(p.m, NULL, B, p.x, y, 0);
    ck_assert(e.error == 1.0 && e.ce == 126.0 && e.izy == 1.0 - 126.0);
    vib_model_free(p.m);
}
END_TEST

START_TEST(evaluate_bad_arguments)
{
    static const char fn[] = "vib_model_evaluate";
    model_ctx p, twin;
    make_ctx(&p, 0, NULL);
    make_ctx(&twin, 0, NULL);
    double error, ce, kl, izy;
    const outbuf outs[] = {{"error", &error, sizeof error, NULL}, {"ce", &ce, sizeof ce, NULL},
                           {"kl", &kl, sizeof kl, NULL}, {"izy", &izy, sizeof izy, NULL}};
    arm_outputs(outs, 4);
    const size_t n = vib_model_num_params(p.m);
    vib_ema *short_ema = NULL, *long_ema = NULL;
    float *init = calloc(n + 1, sizeof *init);
    ck_assert_ok(vib_ema_create(n - 1, 0.9f, init, &short_ema));
    ck_assert_ok(vib_ema_create(n + 1, 0.9f, init, &long_ema));
#define EVAL(m, ema, rows, x, y, s) vib_model_evaluate(m, ema, rows, x, y, s, &error, &ce, &kl, &izy)
    BAD(EVAL(NULL, NULL, B, p.x, p.y, 1), VIB_ERR_INVALID_ARG, "model");
    BAD(EVAL(p.m, NULL, 0, p.x, p.y, 1), VIB_ERR_INVALID_ARG, "n");
    BAD(EVAL(p.m, NULL, B, NULL, p.y, 1), VIB_ERR_INVALID_ARG, "x");
    BAD(EVAL(p.m, NULL, SIZE_MAX, p.x, p.y, 1), VIB_ERR_INVALID_ARG, "n");
    WITH(p.x[5], INFINITY, BAD(EVAL(p.m, NULL, B, p.x, p.y, 1), VIB_ERR_NUMERIC, "x"));
    BAD(EVAL(p.m, NULL, B, p.x, NULL, 1), VIB_ERR_INVALID_ARG, "labels");
    WITH_TYPED(int32_t, p.y[3], C, BAD(EVAL(p.m, NULL, B, p.x, p.y, 1), VIB_ERR_INVALID_ARG,
                                       "labels"));
    ck_assert_ptr_nonnull(strstr(vib_last_error(), "labels[3]"));
    WITH_TYPED(int32_t, p.y[0], -1, BAD(EVAL(p.m, NULL, B, p.x, p.y, 1), VIB_ERR_INVALID_ARG,
                                        "labels"));
    BAD(EVAL(p.m, NULL, B, p.x, p.y, 100001), VIB_ERR_INVALID_ARG, "samples");
    BAD(EVAL(p.m, short_ema, B, p.x, p.y, 1), VIB_ERR_INVALID_ARG, "ema");
    BAD(EVAL(p.m, long_ema, B, p.x, p.y, 1), VIB_ERR_INVALID_ARG, "ema");
#undef EVAL
    /* the refusals drew nothing: the prediction stream is the twin's */
    float pa[B * C], pb[B * C];
    ck_assert_ok(vib_model_predict(p.m, B, p.x, 2, pa));
    ck_assert_ok(vib_model_predict(twin.m, B, twin.x, 2, pb));
    ck_assert_mem_eq(pa, pb, sizeof pa);
    vib_ema_free(short_ema);
    vib_ema_free(long_ema);
    free(init);
    vib_model_free(p.m);
    vib_model_free(twin.m);
}
END_TEST

Suite *make_model_suite(void)
{
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("model");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, gradients_match_finite_differences);
    tcase_add_test(tc, full_covariance_gradients_match_finite_differences);
    tcase_add_test(tc, full_covariance_posterior);
    tcase_add_test(tc, gradient_in_the_sigma_tail);
    tcase_add_test(tc, decoder_gradient_is_independent_of_beta);
    tcase_add_test(tc, initial_logits_are_order_one);
    tcase_add_test(tc, training_reduces_the_error);
    tcase_add_test(tc, encode_and_predict);
    tcase_add_test(tc, reported_kl_and_sample_average);
    tcase_add_test(tc, deep_architectures_match_finite_differences);
    tcase_add_test(tc, failed_step_keeps_the_noise_stream);
    tcase_add_test(tc, bad_arguments);
    tcase_add_test(tc, blocks_tile_the_parameters);
    tcase_add_test(tc, block_writes_reach_their_layer);
    tcase_add_test(tc, block_bad_arguments);
    tcase_add_test(tc, input_gradients_match_finite_differences);
    tcase_add_test(tc, input_gradients_draw_from_the_training_stream);
    tcase_add_test(tc, input_gradients_on_two_threads);
    tcase_add_test(tc, input_gradients_bad_arguments);
    tcase_add_test(tc, evaluate_matches_a_hand_computation);
    tcase_add_test(tc, evaluate_streams_and_state);
    tcase_add_test(tc, evaluate_with_an_average);
    tcase_add_test(tc, evaluate_clamps_a_zero_probability);
    tcase_add_test(tc, evaluate_bad_arguments);
    suite_add_tcase(s, tc);
    return s;
}
