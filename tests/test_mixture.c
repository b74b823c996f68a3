/* test_mixture.c - a learned mixture marginal r(z) (vib_model_create_mixture): every
 * gradient (encoder, head, decoder and the marginal's means, scales and logits) against
 * finite differences with one and several draws, both objectives, diagonal and full
 * covariance; the rate by hand at z = mu; the estimate against the closed form when r
 * is N(0, I) (one component at 0 with unit scales), its value and its gradient; the
 * layers of the model without the marginal, seed for seed; the blocks; shards summing
 * to the batch; deterministic mode; input gradients; saving and its checks; bad
 * arguments. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model.h"
#include "tests.h"

enum { IN = 5, K = 3, C = 3, B = 4, M = 3 };

static const double LOG_2PI = 1.8378770664093454836;

static const size_t ENC[] = {6}, DEC[] = {4};

typedef struct {
    vib_model *m;
    float x[B * IN];
    int32_t y[B];
} ctx;

/* A model of M components with its marginal moved off its start (means spread, scales
 * and weights unequal), sigma ~ 0.7 and beta large enough that the rate matters. */
static void make(ctx *p, uint32_t flags, size_t n_dec, size_t samples, int objective)
{
    ck_assert_ok(vib_model_create_mixture(IN, 1, ENC, K, n_dec, DEC, C, flags, M, 3, &p->m));
    fill_normal(4, B * IN, 0.0f, 1.0f, p->x);
    for (int r = 0; r < B; r++)
        p->y[r] = r % C;
    ck_assert_ok(vib_model_set_sigma_offset(p->m, 0.0f));
    ck_assert_ok(vib_model_set_beta(p->m, 0.5f));
    ck_assert_ok(vib_model_set_train_samples(p->m, samples, objective));
    float *r = vib_model_params(p->m) + p->m->arch.prior_at;
    for (size_t i = 0; i < M * K; i++) {
        r[M * K + i] = 0.2f + 0.15f * (float)(i % 4); /* raw scales: s in 0.8 .. 1.1 */
        r[i] *= 0.7f;
    }
    for (size_t j = 0; j < M; j++)
        r[2 * M * K + j] = 0.3f * (float)j - 0.2f;
}

static double loss_at(void *c)
{
    ctx *p = c;
    double loss;
    ck_assert_ok(vib_model_reseed(p->m, 77));
    ck_assert_ok(vib_model_gradients(p->m, B, p->x, p->y, NULL, NULL, &loss));
    return loss;
}

static void check_fd(ctx *p, double h)
{
    const size_t n = vib_model_num_params(p->m);
    float *g = malloc(n * sizeof *g);
    loss_at(p);
    memcpy(g, vib_model_grads(p->m), n * sizeof *g);
    /* the marginal's gradients are not 0: the check covers them */
    double big = 0.0;
    for (size_t i = 0; i < vibi_arch_prior_params(&p->m->arch); i++)
        big = fmax(big, fabs(g[p->m->arch.prior_at + i]));
    ck_assert_msg(big > 1e-3, "the marginal's gradients are %g at most", big);
    check_gradient("dparams", loss_at, p, vib_model_params(p->m), n, g, h, 1e-2, 2e-4);
    free(g);
}

START_TEST(gradients_match_finite_differences)
{
    static const struct {
        size_t n_dec, samples;
        int objective;
    } cases[] = {{0, 1, VIB_OBJECTIVE_MEAN},
                 {1, 1, VIB_OBJECTIVE_MEAN},
                 {1, 4, VIB_OBJECTIVE_MEAN},
                 {0, 4, VIB_OBJECTIVE_LOGMEANEXP}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ctx p;
        make(&p, 0, cases[i].n_dec, cases[i].samples, cases[i].objective);
        check_fd(&p, 1e-2);
        vib_model_free(p.m);
    }
}
END_TEST

START_TEST(full_covariance_gradients_match_finite_differences)
{
    ctx p;
    make(&p, VIB_MODEL_FULL_COV, 1, 3, VIB_OBJECTIVE_MEAN);
    float *w = vib_model_params(p.m); /* off-diagonal weights start at 0: give some */
    for (size_t i = 0; i < vib_model_num_params(p.m); i++)
        if (w[i] == 0.0f)
            w[i] = 0.3f * (float)((i * 7) % 5) - 0.6f;
    check_fd(&p, 2e-3);
    vib_model_free(p.m);
}
END_TEST

/* -log r(z) in double from the model's marginal blocks, read through vib_model_block. */
static double neg_log_r(const vib_model *m, const float *z)
{
    const float *p = vib_model_params((vib_model *)m);
    size_t at[3];
    for (size_t i = 0; i < 3; i++) {
        int kind, role;
        ck_assert_ok(vib_model_block(m, 2 * 2 + i, &at[i], NULL, NULL, &kind, &role, NULL));
        ck_assert_int_eq(kind, VIB_BLOCK_PRIOR_MEANS + (int)i);
        ck_assert_int_eq(role, VIB_LAYER_PRIOR);
    }
    double lse_logit = 0.0, r = 0.0;
    for (size_t j = 0; j < M; j++)
        lse_logit += exp(p[at[2] + j]);
    for (size_t j = 0; j < M; j++) {
        double log_n = log(exp(p[at[2] + j]) / lse_logit);
        for (size_t k = 0; k < K; k++) {
            const double s = log1p(exp(p[at[1] + j * K + k])), d = z[k] - p[at[0] + j * K + k];
            log_n += -0.5 * LOG_2PI - log(s) - 0.5 * d * d / (s * s);
        }
        r += exp(log_n);
    }
    return -log(r);
}

/* At z = mu (vib_model_input_gradients with no draw) the loss is, row by row,
 * -log q(y | mu) + beta (log e(mu|x) - log r(mu)), log e(mu|x) = -K/2 log 2 pi -
 * sum log sigma: computed here from encode, predict and the blocks. */
START_TEST(rate_by_hand_at_the_mean)
{
    ctx p;
    make(&p, 0, 1, 1, VIB_OBJECTIVE_MEAN);
    float mu[B * K], sigma[B * K], prob[B * C], dx[B * IN];
    ck_assert_ok(vib_model_encode(p.m, B, p.x, mu, sigma));
    ck_assert_ok(vib_model_predict(p.m, B, p.x, 0, prob));
    double want = 0.0;
    for (int r = 0; r < B; r++) {
        double log_e = 0.0;
        for (int k = 0; k < K; k++)
            log_e += -0.5 * LOG_2PI - log(sigma[r * K + k]);
        want += (-log(prob[r * C + p.y[r]]) + 0.5 * (log_e + neg_log_r(p.m, mu + r * K))) / B;
    }
    double loss;
    ck_assert_ok(vib_model_input_gradients(p.m, B, p.x, p.y, 0, dx, &loss));
    ck_assert_double_eq_tol(loss, want, 1e-5 * fabs(want));
    vib_model_free(p.m);
}
END_TEST

/* One component at 0 with unit scales is N(0, I): the estimate's mean over many draws
 * is the closed-form KL of the model without the marginal (the same layers, seed for
 * seed, and the same draws), and so is its gradient's. */
START_TEST(standard_normal_component_is_the_closed_form)
{
    enum { S = 1024 };
    vib_model *mix, *std;
    ck_assert_ok(vib_model_create_mixture(IN, 1, ENC, K, 1, DEC, C, 0, 1, 5, &mix));
    ck_assert_ok(vib_model_create_ex(IN, 1, ENC, K, 1, DEC, C, 0, 5, &std));
    const size_t np = vib_model_num_params(std), at = mix->arch.prior_at;
    const float *a = vib_model_params(mix), *b = vib_model_params(std);
    /* the layers: the same values, the marginal's 2K + 1 inserted after the head */
    ck_assert_uint_eq(vib_model_num_params(mix), np + 2 * K + 1);
    ck_assert_mem_eq(a, b, at * sizeof(float));
    ck_assert_mem_eq(a + at + 2 * K + 1, b + at, (np - at) * sizeof(float));
    float *r = vib_model_params(mix) + at;
    for (int k = 0; k < K; k++) { /* the start: unit scales; now the mean at 0 */
        ck_assert_float_eq_tol(log1pf(expf(r[K + k])), 1.0f, 1e-6f);
        r[k] = 0.0f;
    }
    float x[B * IN];
    int32_t y[B] = {0, 1, 2, 0};
    fill_normal(8, B * IN, 0.0f, 1.0f, x);
    vib_model *both[2] = {mix, std};
    double kl[2], ce[2];
    for (int i = 0; i < 2; i++) {
        ck_assert_ok(vib_model_set_sigma_offset(both[i], 0.0f));
        ck_assert_ok(vib_model_set_beta(both[i], 1.0f));
        ck_assert_ok(vib_model_set_train_samples(both[i], S, VIB_OBJECTIVE_MEAN));
        ck_assert_ok(vib_model_gradients(both[i], B, x, y, &ce[i], &kl[i], NULL));
    }
    ck_assert_double_eq(ce[0], ce[1]); /* the same draws, the same CE */
    ck_assert_msg(fabs(kl[0] - kl[1]) < 0.05 * kl[1], "estimate %g, closed form %g", kl[0], kl[1]);
    /* the head's gradient: the rate's part differs by its Monte Carlo error only, which
     * falls as 1/sqrt(draws) (measured: 4.3% of the largest entry after one step of S
     * draws, 1.4% after 16, 0.76% after 64): averaged over 64 steps it is within 2%, a
     * bias (a term off by a few percent) is not */
    const vibi_layer *hm = &mix->layers[1], *hs = &std->layers[1];
    const size_t nh = hs->in * hs->out;
    double *avg = calloc(2 * nh, sizeof *avg);
    for (int c = 0; c < 64; c++)
        for (int i = 0; i < 2; i++) {
            ck_assert_ok(vib_model_gradients(both[i], B, x, y, NULL, NULL, NULL));
            for (size_t j = 0; j < nh; j++)
                avg[i * nh + j] += (i ? hs : hm)->dw[j] / 64.0;
        }
    double worst = 0.0, scale = 0.0;
    for (size_t i = 0; i < nh; i++) {
        worst = fmax(worst, fabs(avg[i] - avg[nh + i]));
        scale = fmax(scale, fabs(avg[nh + i]));
    }
    ck_assert_msg(worst < 0.02 * scale, "head gradient %g off, the largest %g", worst, scale);
    free(avg);
    /* evaluation's estimate (4 draws a row) against the closed form, over many rows */
    enum { N = 2000 };
    float *xe = malloc(N * IN * sizeof *xe);
    int32_t *ye = malloc(N * sizeof *ye);
    fill_normal(9, N * IN, 0.0f, 1.0f, xe);
    for (int i = 0; i < N; i++)
        ye[i] = i % C;
    double kb[2];
    for (int i = 0; i < 2; i++)
        ck_assert_ok(vib_model_evaluate(both[i], NULL, N, xe, ye, 0, NULL, NULL, &kb[i], NULL));
    ck_assert_msg(fabs(kb[0] - kb[1]) < 0.02 * kb[1], "evaluate: estimate %g bits, closed form %g",
                  kb[0], kb[1]);
    free(xe);
    free(ye);
    vib_model_free(mix);
    vib_model_free(std);
}
END_TEST

START_TEST(blocks_describe_the_marginal)
{
    ctx p;
    make(&p, 0, 1, 1, VIB_OBJECTIVE_MEAN);
    ck_assert_uint_eq(vib_model_prior_components(p.m), M);
    ck_assert_uint_eq(vib_model_prior_components(NULL), 0);
    ck_assert_uint_eq(vib_model_num_blocks(p.m), 2 * 4 + 3);
    size_t next = 0;
    static const int roles[] = {VIB_LAYER_ENCODER, VIB_LAYER_ENCODER, VIB_LAYER_HEAD,
                                VIB_LAYER_HEAD,    VIB_LAYER_PRIOR,   VIB_LAYER_PRIOR,
                                VIB_LAYER_PRIOR,   VIB_LAYER_DECODER, VIB_LAYER_DECODER,
                                VIB_LAYER_OUTPUT,  VIB_LAYER_OUTPUT};
    for (size_t b = 0; b < vib_model_num_blocks(p.m); b++) {
        size_t off, rows, cols, index;
        int kind, role;
        ck_assert_ok(vib_model_block(p.m, b, &off, &rows, &cols, &kind, &role, &index));
        ck_assert_uint_eq(off, next); /* no gaps, in order */
        next += rows * cols;
        ck_assert_int_eq(role, roles[b]);
        if (role == VIB_LAYER_PRIOR) {
            ck_assert_int_eq(kind, VIB_BLOCK_PRIOR_MEANS + (int)(b - 4));
            ck_assert_uint_eq(rows, b < 6 ? M : 1);
            ck_assert_uint_eq(cols, b < 6 ? K : M);
            ck_assert_uint_eq(index, 0);
        } else {
            ck_assert_int_eq(kind, b % 2 == (b > 4) ? VIB_BLOCK_WEIGHTS : VIB_BLOCK_BIAS);
        }
    }
    ck_assert_uint_eq(next, vib_model_num_params(p.m));
    char d[256];
    ck_assert_int_gt(vib_model_describe(p.m, d, sizeof d), 0);
    ck_assert_ptr_nonnull(strstr(d, "3-Gaussian mixture"));
    vib_model_free(p.m);
}
END_TEST

/* Two shards of a global batch sum to its gradient, the marginal's included. */
START_TEST(shards_sum_to_the_batch)
{
    enum { N = 10, S = 3 };
    ctx w, s;
    make(&w, 0, 0, S, VIB_OBJECTIVE_MEAN);
    make(&s, 0, 0, S, VIB_OBJECTIVE_MEAN);
    float x[N * IN];
    int32_t y[N];
    fill_normal(6, N * IN, 0.0f, 1.0f, x);
    for (int r = 0; r < N; r++)
        y[r] = (r * 2) % C;
    const size_t n = vib_model_num_params(w.m);
    double kl;
    ck_assert_ok(vib_model_gradients(w.m, N, x, y, NULL, &kl, NULL));
    double *sum = calloc(n, sizeof *sum), kl_sum = 0.0;
    for (int sh = 0; sh < 2; sh++) {
        const size_t lo = sh ? 4 : 0, rows = sh ? N - 4 : 4;
        double c, k, l;
        ck_assert_ok(vib_model_reseed(s.m, 3));
        ck_assert_ok(vibi_model_shard_gradients(s.m, "test", rows, x + lo * IN, y + lo, N, lo,
                                                NULL, &c, &k, &l));
        for (size_t i = 0; i < n; i++)
            sum[i] += vib_model_grads(s.m)[i];
        kl_sum += k * (double)rows / N;
    }
    ck_assert_double_eq_tol(kl_sum, kl, 1e-6 * fabs(kl));
    double worst = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        worst = fmax(worst, fabs(vib_model_grads(w.m)[i] - sum[i]));
        scale = fmax(scale, fabs(sum[i]));
    }
    ck_assert_msg(worst <= 1e-5 * scale, "shards %g off, the largest %g", worst, scale);
    free(sum);
    vib_model_free(w.m);
    vib_model_free(s.m);
}
END_TEST

START_TEST(deterministic_leaves_the_marginal_alone)
{
    ctx p;
    make(&p, 0, 1, 2, VIB_OBJECTIVE_MEAN);
    ck_assert_ok(vib_model_set_deterministic(p.m, 1));
    float *g = vib_model_grads(p.m);
    const size_t at = p.m->arch.prior_at, np = vibi_arch_prior_params(&p.m->arch);
    for (size_t i = 0; i < np; i++)
        g[at + i] = 1.0f; /* the gradient is written, not left */
    double kl, loss, ce;
    ck_assert_ok(vib_model_gradients(p.m, B, p.x, p.y, &ce, &kl, &loss));
    ck_assert_double_eq(kl, 0.0);
    ck_assert_double_eq(loss, ce);
    for (size_t i = 0; i < np; i++)
        ck_assert_float_eq(g[at + i], 0.0f);
    vib_model_free(p.m);
}
END_TEST

static double input_loss(void *c)
{
    ctx *p = c;
    double loss;
    float dx[B * IN];
    ck_assert_ok(vib_model_reseed(p->m, 31));
    ck_assert_ok(vib_model_input_gradients(p->m, B, p->x, p->y, 2, dx, &loss));
    return loss;
}

START_TEST(input_gradients_with_the_marginal)
{
    ctx p;
    make(&p, 0, 1, 3, VIB_OBJECTIVE_MEAN);
    const size_t n = vib_model_num_params(p.m);
    float *before = malloc(n * sizeof *before), dx[B * IN];
    memcpy(before, vib_model_grads(p.m), n * sizeof *before);
    ck_assert_ok(vib_model_reseed(p.m, 31));
    ck_assert_ok(vib_model_input_gradients(p.m, B, p.x, p.y, 2, dx, NULL));
    ck_assert_mem_eq(before, vib_model_grads(p.m), n * sizeof *before); /* untouched */
    check_gradient("dx", input_loss, &p, p.x, B * IN, dx, 1e-2, 1e-2, 2e-4);
    free(before);
    vib_model_free(p.m);
}
END_TEST

/* Saved as version 2 with the components; loads to the same gradients; a file whose
 * components disagree with its parameters, or exceed 1024, is refused. */
START_TEST(saved_with_the_model)
{
    char path[] = "/tmp/libvib_mixture_XXXXXX";
    const int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ctx p;
    make(&p, 0, 1, 1, VIB_OBJECTIVE_MEAN);
    ck_assert_ok(vib_model_save(p.m, path));
    size_t len;
    unsigned char *buf = read_all(path, &len);
    ck_assert_uint_eq(vibi_get_u32(buf + 8), 2);
    const size_t at = 56 + 8 * 2 + 16; /* after the seed: draws, objective, components */
    ck_assert_uint_eq(vibi_get_u32(buf + at + 8), M);
    vib_model *q;
    ck_assert_ok(vib_model_load(path, &q));
    ck_assert_uint_eq(vib_model_prior_components(q), M);
    const size_t n = vib_model_num_params(p.m);
    ck_assert_uint_eq(vib_model_num_params(q), n);
    ck_assert_mem_eq(vib_model_params(q), vib_model_params(p.m), n * sizeof(float));
    double la, lb;
    ck_assert_ok(vib_model_reseed(q, 2));
    ck_assert_ok(vib_model_reseed(p.m, 2));
    ck_assert_ok(vib_model_gradients(q, B, p.x, p.y, NULL, NULL, &la));
    ck_assert_ok(vib_model_gradients(p.m, B, p.x, p.y, NULL, NULL, &lb));
    ck_assert_double_eq(la, lb);
    ck_assert_mem_eq(vib_model_grads(q), vib_model_grads(p.m), n * sizeof(float));
    vib_model_free(q);
    static const uint32_t bad[] = {M + 1, 0, 1025};
    static const char *const said[] = {"parameters", "parameters", "mixture components"};
    for (size_t i = 0; i < 3; i++) {
        unsigned char *b = malloc(len);
        memcpy(b, buf, len);
        vibi_put_u32(b + at + 8, bad[i]);
        vibi_put_u32(b + len - 4, vibi_crc32(b, len - 4));
        write_plain(path, b, len);
        free(b);
        q = NULL;
        ck_assert_int_eq(vib_model_load(path, &q), VIB_ERR_FORMAT);
        ck_assert_ptr_null(q);
        ck_assert_msg(strstr(vib_last_error(), said[i]), "case %zu: %s", i, vib_last_error());
    }
    free(buf);
    vib_model_free(p.m);
    unlink(path);
}
END_TEST

START_TEST(bad_arguments)
{
    vib_model *m = NULL;
    ck_assert_fails(vib_model_create_mixture(IN, 1, ENC, K, 0, NULL, C, 0, 1025, 1, &m),
                    VIB_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(vib_last_error(), "1025 mixture components"));
    ck_assert_ptr_null(m);
    ck_assert_fails(vib_model_create_mixture(IN, 1, ENC, K, 0, NULL, C, 0, 2, 1, NULL),
                    VIB_ERR_INVALID_ARG);
    /* 0 components: vib_model_create_ex's model, bit for bit */
    vib_model *a, *b;
    ck_assert_ok(vib_model_create_mixture(IN, 1, ENC, K, 0, NULL, C, 0, 0, 1, &a));
    ck_assert_ok(vib_model_create_ex(IN, 1, ENC, K, 0, NULL, C, 0, 1, &b));
    ck_assert_uint_eq(vib_model_num_params(a), vib_model_num_params(b));
    ck_assert_mem_eq(vib_model_params(a), vib_model_params(b),
                     vib_model_num_params(a) * sizeof(float));
    ck_assert_uint_eq(vib_model_num_blocks(a), 6);
    vib_model_free(a);
    vib_model_free(b);
}
END_TEST

Suite *make_mixture_suite(void)
{
    Suite *s = suite_create("mixture");
    TCase *tc = tcase_create("mixture");
    tcase_add_test(tc, gradients_match_finite_differences);
    tcase_add_test(tc, full_covariance_gradients_match_finite_differences);
    tcase_add_test(tc, rate_by_hand_at_the_mean);
    tcase_add_test(tc, standard_normal_component_is_the_closed_form);
    tcase_add_test(tc, blocks_describe_the_marginal);
    tcase_add_test(tc, shards_sum_to_the_batch);
    tcase_add_test(tc, deterministic_leaves_the_marginal_alone);
    tcase_add_test(tc, input_gradients_with_the_marginal);
    tcase_add_test(tc, saved_with_the_model);
    tcase_add_test(tc, bad_arguments);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);
    return s;
}
