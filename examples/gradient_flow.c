/*
 * gradient_flow - which loss term reaches which parameters?
 *
 * The problem set's VIB question (b): train with L = task loss + beta * KL, the noise v
 * drawn outside the graph. This program builds the encoder -> Gaussian head ->
 * reparameterization -> decoder -> softmax cross-entropy chain from libvib's nodes,
 * backpropagates each loss term on its own, and prints the gradient norm each term
 * leaves on the encoder's and the decoder's parameters.
 *
 *   usage: gradient_flow [seed]
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "vib_chain.h"

/* Squared norm of a layer's gradients, dW and db together. */
static double grad_sq(vib_dense *layer)
{
    size_t nw = vib_dense_in(layer) * vib_dense_out(layer), nb = vib_dense_out(layer);
    const float *gw = vib_dense_weights_grad(layer), *gb = vib_dense_bias_grad(layer);
    double s = 0.0;
    for (size_t i = 0; i < nw; i++)
        s += (double)gw[i] * gw[i];
    for (size_t i = 0; i < nb; i++)
        s += (double)gb[i] * gb[i];
    return s;
}

/* Gradient norms of the encoder (encoder layer and both heads) and of the decoder. */
static void grad_norms(vib_chain *c, double *enc, double *dec)
{
    *enc = sqrt(grad_sq(c->enc) + grad_sq(c->mu_head) + grad_sq(c->rho_head));
    *dec = sqrt(grad_sq(c->dec));
}

static const char *mark(double norm)
{
    return norm > 0.0 ? "[x]" : "[ ]";
}

int main(int argc, char **argv)
{
    uint64_t seed = 2017;
    if (argc > 2) {
        fprintf(stderr, "usage: %s [seed]\n", argv[0]);
        return 2;
    }
    if (argc == 2) {
        char *end;
        errno = 0;
        seed = strtoull(argv[1], &end, 10);
        if (errno != 0 || *end != '\0' || end == argv[1]) {
            fprintf(stderr, "gradient_flow: seed must be a non-negative integer, got '%s'\n",
                    argv[1]);
            return 2;
        }
    }
    printf("libvib %s: gradient flow in a VIB classifier (problem set, VIB question (b))\n",
           vib_version_string());

    vib_chain c;
    /* 64 examples of 32 features -> 64 hidden -> K = 8 latents -> 10 classes. */
    int rc = vib_chain_create(&c, 64, 32, 64, 8, 10, seed);
    if (rc != VIB_OK) {
        fprintf(stderr, "gradient_flow: %s: %s\n", vib_status_string(rc), vib_last_error());
        return 1;
    }
    double loss, task_enc, task_dec, kl_enc, kl_dec, task, kl;
    rc = vib_chain_forward(&c, &task, &kl);
    if (rc == VIB_OK) rc = vib_chain_gradients(&c, 1.0, 0.0, &loss); /* task loss alone */
    if (rc == VIB_OK) grad_norms(&c, &task_enc, &task_dec);
    if (rc == VIB_OK) rc = vib_chain_gradients(&c, 0.0, 1.0, &loss); /* latent regularizer alone */
    if (rc == VIB_OK) grad_norms(&c, &kl_enc, &kl_dec);
    if (rc != VIB_OK) {
        fprintf(stderr, "gradient_flow: %s: %s\n", vib_status_string(rc), vib_last_error());
        vib_chain_free(&c);
        return 1;
    }
    printf("chain: x[64x32] -> dense+ReLU[64] -> mu, sigma = softplus(rho - 5) [K=8]\n"
           "       -> z = mu + sigma*v (v fixed) -> dense[10] -> softmax cross-entropy\n");
    printf("task loss %.4f nats, KL %.4f nats (%.4f bits)\n\n", task, kl, kl / log(2.0));
    printf("%-28s %22s %22s\n", "parameters", "|grad| of task loss", "|grad| of beta*KL");
    printf("%-28s %18.6e %s %18.6e %s\n", "encoder theta_e (3 layers)", task_enc,
           mark(task_enc), kl_enc, mark(kl_enc));
    printf("%-28s %18.6e %s %18.6e %s\n\n", "decoder theta_d", task_dec, mark(task_dec), kl_dec,
           mark(kl_dec));
    printf("answer: encoder <- task loss %s, latent regularizer %s\n", mark(task_enc),
           mark(kl_enc));
    printf("        decoder <- task loss %s, latent regularizer %s\n", mark(task_dec),
           mark(kl_dec));
    printf("The KL depends on mu and sigma only, so its gradient stops at the encoder;\n"
           "the decoder learns from the task loss alone.\n");
    vib_chain_free(&c);
    return kl_dec == 0.0 && task_dec > 0.0 && kl_enc > 0.0 ? 0 : 1;
}
