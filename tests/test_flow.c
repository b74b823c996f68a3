/* test_flow.c - the problem set's gradient-flow fact (VIB question (b)) on the chain of
 * examples/vib_chain.h: with the noise held fixed, the decoder's gradients are identical
 * for beta = 0 and beta = 1, the encoder's differ; and the whole chain's gradients agree
 * with finite differences of L = task + beta * KL. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tests.h"
#include "vib_chain.h"

typedef struct {
    vib_chain c;
    double beta;
} chain_ctx;

static double chain_loss(void *ctx)
{
    chain_ctx *p = ctx;
    double task, kl;
    ck_assert_ok(vib_chain_forward(&p->c, &task, &kl));
    return task + p->beta * kl;
}

/* Copy of every parameter gradient of a layer: dW then db. */
static float *grads_of(vib_dense *l)
{
    size_t nw = vib_dense_in(l) * vib_dense_out(l), nb = vib_dense_out(l);
    float *g = malloc((nw + nb) * sizeof *g);
    memcpy(g, vib_dense_weights_grad(l), nw * sizeof *g);
    memcpy(g + nw, vib_dense_bias_grad(l), nb * sizeof *g);
    return g;
}

START_TEST(decoder_gradient_is_independent_of_beta)
{
    vib_chain c;
    double loss0, loss1;
    ck_assert_ok(vib_chain_create(&c, 16, 12, 20, 4, 5, 99));
    vib_dense *enc[] = {c.enc, c.mu_head, c.rho_head};
    size_t ndec = vib_dense_in(c.dec) * vib_dense_out(c.dec) + vib_dense_out(c.dec);

    ck_assert_ok(vib_chain_gradients(&c, 1.0, 0.0, &loss0));
    float *dec0 = grads_of(c.dec), *enc0[3];
    for (int l = 0; l < 3; l++)
        enc0[l] = grads_of(enc[l]);

    ck_assert_ok(vib_chain_gradients(&c, 1.0, 1.0, &loss1));
    ck_assert(loss1 > loss0); /* the KL term is there and positive */
    float *dec1 = grads_of(c.dec);
    /* Bit for bit: the KL never reaches the decoder. */
    ck_assert_mem_eq(dec0, dec1, ndec * sizeof(float));
    double dec_norm = 0.0;
    for (size_t i = 0; i < ndec; i++)
        dec_norm += (double)dec0[i] * dec0[i];
    ck_assert_msg(dec_norm > 1e-6, "the task loss must reach the decoder");
    /* Every encoder layer's gradient changes with beta. */
    for (int l = 0; l < 3; l++) {
        size_t n = vib_dense_in(enc[l]) * vib_dense_out(enc[l]) + vib_dense_out(enc[l]);
        float *g1 = grads_of(enc[l]);
        double diff = 0.0, norm = 0.0;
        for (size_t i = 0; i < n; i++) {
            diff += fabs((double)g1[i] - enc0[l][i]);
            norm += fabs((double)enc0[l][i]);
        }
        ck_assert_msg(diff > 1e-3 * norm && diff > 1e-6,
                      "encoder layer %d: beta changed the gradient by only %g (norm %g)", l,
                      diff, norm);
        free(g1);
        free(enc0[l]);
    }
    free(dec0);
    free(dec1);
    vib_chain_free(&c);
}
END_TEST

START_TEST(chain_gradients_match_finite_differences)
{
    chain_ctx p;
    double loss;
    ck_assert_ok(vib_chain_create(&p.c, 8, 6, 10, 3, 4, 7));
    vib_dense *layers[] = {p.c.enc, p.c.mu_head, p.c.rho_head, p.c.dec};
    const char *names[] = {"encoder", "mu head", "rho head", "decoder"};
    const double betas[] = {0.0, 1e-3, 1.0};
    for (int bi = 0; bi < 3; bi++) {
        p.beta = betas[bi];
        ck_assert_ok(vib_chain_gradients(&p.c, 1.0, p.beta, &loss));
        ck_assert_double_eq_tol(loss, chain_loss(&p), 1e-9 * (1 + fabs(loss)));
        for (int l = 0; l < 4; l++) {
            size_t nw = vib_dense_in(layers[l]) * vib_dense_out(layers[l]);
            float *gw = grads_of(layers[l]); /* copy: the probes below re-run forward */
            check_gradient(names[l], chain_loss, &p, vib_dense_weights(layers[l]), nw, gw,
                           1e-2, 2e-2, 2e-4);
            check_gradient(names[l], chain_loss, &p, vib_dense_bias(layers[l]),
                           vib_dense_out(layers[l]), gw + nw, 1e-2, 2e-2, 2e-4);
            free(gw);
        }
    }
    vib_chain_free(&p.c);
}
END_TEST

Suite *make_flow_suite(void)
{
    Suite *s = suite_create("flow");
    TCase *tc = tcase_create("flow");
    tcase_add_test(tc, decoder_gradient_is_independent_of_beta);
    tcase_add_test(tc, chain_gradients_match_finite_differences);
    suite_add_tcase(s, tc);
    return s;
}
