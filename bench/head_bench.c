/*
 * head_bench.c - the Gaussian head's cost per latent unit, forward and backward, two
 * ways over the same [batch x K] arrays: the public nodes (vib_sigma_head_*,
 * vib_reparam_*, vib_kl_std_normal*, which check their arguments and then run
 * lib/head.c's row kernels), and the row kernels as the model runs them
 * (lib/model_head.c), and the kernels as the nodes run them (the KL computing log sigma
 * from sigma). The last ratio is what the nodes' checks cost. One thread; best of
 * several runs. Built with -DNODES_ONLY it times the nodes alone, through the public
 * header only, so the same file measures an older libvib's nodes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef NODES_ONLY
#include "vib.h"
#else
#include "internal.h"
#endif

enum { B = 100, KL = 256, N = B * KL, REPS = 200, ROUNDS = 7 };

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static float mu[N], rho[N], v[N], z[N], sigma[N], log_sigma[N], dz[N], dmu[N], dsigma[N],
    dlog[N], drho[N], kl[B], dkl[B];

static void fail(int rc)
{
    if (rc != VIB_OK) {
        fprintf(stderr, "head_bench: %s\n", vib_last_error());
        exit(1);
    }
}

/* One forward and backward of the head through the public nodes. */
static void nodes_once(void)
{
    fail(vib_sigma_head_forward(N, rho, -5.0f, sigma, log_sigma));
    fail(vib_reparam_forward(N, mu, sigma, v, z));
    fail(vib_kl_std_normal(B, KL, mu, sigma, kl));
    memset(dmu, 0, sizeof dmu);
    memset(dsigma, 0, sizeof dsigma);
    memset(drho, 0, sizeof drho);
    fail(vib_reparam_backward(N, dz, v, dmu, dsigma));
    fail(vib_kl_std_normal_backward(B, KL, mu, sigma, dkl, dmu, dsigma));
    fail(vib_sigma_head_backward(N, rho, -5.0f, dsigma, NULL, drho));
}

#ifndef NODES_ONLY
/* The same through the row kernels, row by row as lib/model_head.c runs them (the KL
 * taking log sigma from the sigma head), or as the nodes run them (the KL given sigma
 * alone, computing its log again): the second differs from the nodes by their checks. */
static int kl_from_sigma_alone;

static void kernels_once(void)
{
    double sum = 0.0;
    for (size_t r = 0; r < B; r++) {
        const size_t o = r * KL;
        vibi_head_sigma(KL, rho + o, -5.0f, sigma + o, log_sigma + o);
        vibi_head_reparam(KL, mu + o, sigma + o, v + o, z + o);
        sum += vibi_head_kl(KL, mu + o, sigma + o, kl_from_sigma_alone ? NULL : log_sigma + o);
    }
    kl[0] = (float)sum;
    for (size_t r = 0; r < B; r++) {
        const size_t o = r * KL;
        memset(dmu + o, 0, KL * sizeof(float));
        memset(dsigma + o, 0, KL * sizeof(float));
        memset(dlog + o, 0, KL * sizeof(float));
        memset(drho + o, 0, KL * sizeof(float));
        vibi_head_reparam_backward(KL, dz + o, v + o, dmu + o, dsigma + o);
        vibi_head_kl_backward(KL, mu + o, sigma + o, 1e-5, dmu + o, dsigma + o, dlog + o);
        vibi_head_sigma_backward(KL, rho + o, -5.0f, dsigma + o, dlog + o, drho + o);
    }
}
#endif

/* Nanoseconds per latent unit (forward + backward), best of ROUNDS rounds of REPS. */
static double time_ns(void (*once)(void))
{
    double best = 1e30;
    for (int k = 0; k < ROUNDS; k++) {
        const double t0 = now();
        for (int i = 0; i < REPS; i++)
            once();
        const double t = (now() - t0) / REPS / N * 1e9;
        best = t < best ? t : best;
    }
    return best;
}

int main(void)
{
    fail(vib_set_num_threads(1));
    vib_rng *rng;
    fail(vib_rng_create(7, &rng));
    fail(vib_rng_normal(rng, N, 0.0f, 1.0f, mu));
    fail(vib_rng_normal(rng, N, 0.0f, 3.0f, rho));
    fail(vib_rng_normal(rng, N, 0.0f, 1.0f, v));
    fail(vib_rng_normal(rng, N, 0.0f, 1e-3f, dz));
    for (size_t r = 0; r < B; r++)
        dkl[r] = 1e-5f;
    vib_rng_free(rng);
    printf("head_bench: batch %d x K %d, one thread, libvib %s, ns per latent unit "
           "(forward + backward)\n", B, KL, vib_version_string());
    const double nodes = time_ns(nodes_once);
    printf("result nodes_ns=%.3f", nodes);
#ifndef NODES_ONLY
    const double kernels = time_ns(kernels_once);
    kl_from_sigma_alone = 1;
    const double kernels_as_nodes = time_ns(kernels_once);
    printf(" kernels_ns=%.3f nodes_over_kernels=%.3f kernels_as_nodes_ns=%.3f "
           "nodes_over_kernels_as_nodes=%.3f",
           kernels, nodes / kernels, kernels_as_nodes, nodes / kernels_as_nodes);
#endif
    printf("\n");
    return 0;
}
