/* test_model.c - the VIB classifier: gradients of the whole model against finite
 * differences through the flat parameter vector, the gradient-flow fact at fixed noise,
 * initial logit scale, learning, prediction and encoding, bad arguments. */
#include <math.h>
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
    suite_add_tcase(s, tc);
    return s;
}
