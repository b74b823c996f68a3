/*
 * vib_chain.h - the problem set's VIB chain built from libvib's nodes, as a user would:
 *
 *   x -> encoder (dense + ReLU) -> mu head (dense)            -> reparam -> decoder -> softmax
 *                              \-> rho head (dense) -> sigma head /    (dense)      cross-entropy
 *
 * L = task_weight * mean_r xent[r] + beta * mean_r KL[r], with the noise v drawn once at
 * creation and held fixed, so L is a deterministic function of the parameters.
 * Shared by examples/gradient_flow.c and the flow suite in tests/, so the test checks
 * exactly the chain the example reports on. Header-only, uses the public API only.
 */
#ifndef VIB_CHAIN_H
#define VIB_CHAIN_H

#include <stdlib.h>
#include <string.h>

#include "vib.h"

typedef struct vib_chain {
    size_t batch, in, hidden, k, classes;
    float offset; /* sigma = softplus(rho + offset) */
    vib_dense *enc, *mu_head, *rho_head, *dec;
    int32_t *y;
    float *x, *h_pre, *h, *mu, *rho, *sigma, *v, *z, *logits, *prob, *xent, *kl;
    float *dh, *dh_pre, *dmu, *drho, *dsigma, *dz, *dlogits, *dxent, *dkl;
    float *arena;
} vib_chain;

static void vib_chain_free(vib_chain *c)
{
    vib_dense_free(c->enc);
    vib_dense_free(c->mu_head);
    vib_dense_free(c->rho_head);
    vib_dense_free(c->dec);
    free(c->arena);
    free(c->y);
    memset(c, 0, sizeof *c);
}

/* Build the chain with random synthetic inputs and labels, fixed noise v, and
 * fan-in-scaled weights, all from `seed`. Returns a libvib status. */
static int vib_chain_create(vib_chain *c, size_t batch, size_t in, size_t hidden, size_t k,
                            size_t classes, uint64_t seed)
{
    memset(c, 0, sizeof *c);
    c->batch = batch, c->in = in, c->hidden = hidden, c->k = k, c->classes = classes;
    c->offset = -5.0f; /* the paper's code: training starts near-deterministic */
    size_t bh = batch * hidden, bk = batch * k, bc = batch * classes;
    size_t sizes[] = {batch * in, bh, bh, bk, bk, bk, bk, bk, bc, bc, batch, batch, /* fwd */
                      bh, bh, bk, bk, bk, bk, bc, batch, batch};                    /* bwd */
    float **bufs[] = {&c->x,  &c->h_pre, &c->h,    &c->mu,     &c->rho,    &c->sigma,
                      &c->v,  &c->z,     &c->logits, &c->prob, &c->xent,   &c->kl,
                      &c->dh, &c->dh_pre, &c->dmu,  &c->drho,   &c->dsigma, &c->dz,
                      &c->dlogits, &c->dxent, &c->dkl};
    size_t total = 0, nbufs = sizeof sizes / sizeof sizes[0];
    for (size_t i = 0; i < nbufs; i++)
        total += sizes[i];
    vib_rng *rng = NULL;
    int rc = vib_rng_create(seed, &rng);
    if (rc != VIB_OK)
        return rc;
    c->arena = calloc(total, sizeof(float));
    c->y = calloc(batch, sizeof *c->y);
    if (c->arena == NULL || c->y == NULL) {
        vib_rng_free(rng);
        vib_chain_free(c);
        return VIB_ERR_NOMEM;
    }
    float *p = c->arena;
    for (size_t i = 0; i < nbufs; i++) {
        *bufs[i] = p;
        p += sizes[i];
    }
    rc = vib_dense_create(in, hidden, VIB_INIT_HE, rng, &c->enc);
    if (rc == VIB_OK)
        rc = vib_dense_create(hidden, k, VIB_INIT_LECUN, rng, &c->mu_head);
    if (rc == VIB_OK)
        rc = vib_dense_create(hidden, k, VIB_INIT_LECUN, rng, &c->rho_head);
    if (rc == VIB_OK)
        rc = vib_dense_create(k, classes, VIB_INIT_LECUN, rng, &c->dec);
    if (rc == VIB_OK)
        rc = vib_rng_normal(rng, batch * in, 0.0f, 1.0f, c->x);
    if (rc == VIB_OK)
        rc = vib_rng_normal(rng, bk, 0.0f, 1.0f, c->v); /* the fixed noise */
    for (size_t r = 0; rc == VIB_OK && r < batch; r++) {
        uint64_t u;
        rc = vib_rng_u64(rng, &u);
        c->y[r] = (int32_t)(u % classes);
    }
    vib_rng_free(rng);
    if (rc != VIB_OK)
        vib_chain_free(c);
    return rc;
}

/* Forward pass: fills every activation and returns the mean task loss and mean KL. */
static int vib_chain_forward(vib_chain *c, double *task, double *kl)
{
    size_t B = c->batch;
    int rc = vib_dense_forward(c->enc, B, c->x, c->h_pre);
    if (rc == VIB_OK) rc = vib_relu_forward(B * c->hidden, c->h_pre, c->h);
    if (rc == VIB_OK) rc = vib_dense_forward(c->mu_head, B, c->h, c->mu);
    if (rc == VIB_OK) rc = vib_dense_forward(c->rho_head, B, c->h, c->rho);
    if (rc == VIB_OK) rc = vib_sigma_head_forward(B * c->k, c->rho, c->offset, c->sigma, NULL);
    if (rc == VIB_OK) rc = vib_reparam_forward(B * c->k, c->mu, c->sigma, c->v, c->z);
    if (rc == VIB_OK) rc = vib_dense_forward(c->dec, B, c->z, c->logits);
    if (rc == VIB_OK)
        rc = vib_softmax_xent_forward(B, c->classes, c->logits, c->y, c->xent, c->prob);
    if (rc == VIB_OK) rc = vib_kl_std_normal(B, c->k, c->mu, c->sigma, c->kl);
    if (rc != VIB_OK)
        return rc;
    double t = 0.0, q = 0.0;
    for (size_t r = 0; r < B; r++)
        t += c->xent[r], q += c->kl[r];
    *task = t / (double)B;
    *kl = q / (double)B;
    return VIB_OK;
}

/* Zero every parameter gradient, run forward, then backward of
 * L = task_weight * task + beta * KL. *loss receives L. */
static int vib_chain_gradients(vib_chain *c, double task_weight, double beta, double *loss)
{
    size_t B = c->batch, bh = B * c->hidden, bk = B * c->k;
    vib_dense *layers[] = {c->enc, c->mu_head, c->rho_head, c->dec};
    for (int i = 0; i < 4; i++)
        vib_dense_zero_grad(layers[i]);
    double task, kl;
    int rc = vib_chain_forward(c, &task, &kl);
    if (rc != VIB_OK)
        return rc;
    *loss = task_weight * task + beta * kl;
    for (size_t r = 0; r < B; r++) {
        c->dxent[r] = (float)(task_weight / (double)B);
        c->dkl[r] = (float)(beta / (double)B);
    }
    /* Each backward accumulates, so start every activation gradient at zero. */
    memset(c->dlogits, 0, B * c->classes * sizeof(float));
    memset(c->dz, 0, bk * sizeof(float));
    memset(c->dmu, 0, bk * sizeof(float));
    memset(c->dsigma, 0, bk * sizeof(float));
    memset(c->drho, 0, bk * sizeof(float));
    memset(c->dh, 0, bh * sizeof(float));
    memset(c->dh_pre, 0, bh * sizeof(float));
    /* The KL reaches mu and sigma directly: encoder parameters only. It runs first, so
     * had it any path into the decoder, the decoder's gradient would depend on beta. */
    rc = vib_kl_std_normal_backward(B, c->k, c->mu, c->sigma, c->dkl, c->dmu, c->dsigma);
    if (rc == VIB_OK)
        rc = vib_softmax_xent_backward(B, c->classes, c->prob, c->y, c->dxent, c->dlogits);
    /* The decoder sees only dlogits, which comes from the task loss alone. */
    if (rc == VIB_OK) rc = vib_dense_backward(c->dec, B, c->z, c->dlogits, c->dz);
    if (rc == VIB_OK) rc = vib_reparam_backward(bk, c->dz, c->v, c->dmu, c->dsigma);
    if (rc == VIB_OK)
        rc = vib_sigma_head_backward(bk, c->rho, c->offset, c->dsigma, NULL, c->drho);
    /* h feeds both heads: each adds its share into the one dh. */
    if (rc == VIB_OK) rc = vib_dense_backward(c->mu_head, B, c->h, c->dmu, c->dh);
    if (rc == VIB_OK) rc = vib_dense_backward(c->rho_head, B, c->h, c->drho, c->dh);
    if (rc == VIB_OK) rc = vib_relu_backward(bh, c->h_pre, c->dh, c->dh_pre);
    if (rc == VIB_OK) rc = vib_dense_backward(c->enc, B, c->x, c->dh_pre, NULL);
    return rc;
}

#endif
