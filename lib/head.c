/*
 * head.c - the Gaussian head's arithmetic, once: the sigma head sigma = softplus(rho +
 * offset) with a stable log sigma, the reparameterization z = mu + sigma v or
 * z = mu + L v, the closed-form KL to N(0, I), and their backwards.
 *
 * These are the row kernels behind both the public nodes (nodes.c and cov.c check their
 * arguments, then call them) and the model (model_head.c runs them over its rows), so a
 * gradient check of a node checks what training runs. They are unchecked: the callers
 * have validated the arguments and, for the nodes, that no result overflows.
 *
 * Precision. Softplus and its relatives are lib/vmath.h's float functions (within
 * 1.25 ulp, see there), in vector loops compiled per instruction set (VIB_CLONES).
 * Everything else is computed in double and rounded once to float (a KL given sigma
 * alone takes its log in double too): z = mu + sigma v
 * (sigma v is exact in double), z = mu + L v and the KL rows (sums whose length grows
 * with k), and every accumulation of a backward. So the full-covariance kernels given a
 * diagonal L return the diagonal ones' values, bit for bit (but for the sign of a zero
 * z: the diagonal of L v is added after the off-diagonal's +0 products). Backwards accumulate (+=), like the
 * public nodes. The math is in docs/math.md (#the-sigma-head, #reparameterization,
 * #kl-to-the-standard-normal, #full-covariance).
 */
#include <math.h>

#include "internal.h"
#include "vmath.h"

/* ---- the sigma head ------------------------------------------------------------- */

/* No restrict: sigma or log_sigma may be rho (each element is read, then written, by
 * the same iteration, which `omp simd` keeps independent of the others). */
VIB_CLONES static void sigma_fwd(size_t n, const float *rho, float offset, float *sigma,
                                 float *log_sigma)
{
    if (log_sigma == NULL) {
#pragma omp simd
        for (size_t i = 0; i < n; i++)
            sigma[i] = vibi_vsoftplusf(rho[i] + offset);
        return;
    }
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        const float x = rho[i] + offset;
        sigma[i] = vibi_vsoftplusf(x);
        log_sigma[i] = vibi_vlog_softplusf(x); /* finite where sigma underflows */
    }
}

void vibi_head_sigma(size_t n, const float *rho, float offset, float *sigma, float *log_sigma)
{
    sigma_fwd(n, rho, offset, sigma, log_sigma);
}

/* drho += dsigma sigmoid(x) + dlog_sigma sigmoid(x) / softplus(x), x = rho + offset, the
 * sum in double and rounded once; the second factor, d log softplus / dx, is evaluated
 * stably (it tends to 1 as x -> -inf). A NULL dsigma or dlog_sigma contributes 0. */
VIB_CLONES static void sigma_bwd(size_t n, const float *restrict rho, float offset,
                                 const float *restrict dsigma, const float *restrict dlog_sigma,
                                 float *restrict drho)
{
    /* One loop per case: a test inside the loop would keep it from vectorizing. */
    if (dlog_sigma == NULL) {
#pragma omp simd
        for (size_t i = 0; i < n; i++)
            drho[i] = (float)((double)drho[i] +
                              (double)dsigma[i] * (double)vibi_vsigmoidf(rho[i] + offset));
    } else if (dsigma == NULL) {
#pragma omp simd
        for (size_t i = 0; i < n; i++)
            drho[i] = (float)((double)drho[i] + (double)dlog_sigma[i] *
                                                    (double)vibi_vdlog_softplusf(rho[i] + offset));
    } else {
#pragma omp simd
        for (size_t i = 0; i < n; i++) {
            const float x = rho[i] + offset;
            drho[i] = (float)((double)drho[i] + (double)dsigma[i] * (double)vibi_vsigmoidf(x) +
                              (double)dlog_sigma[i] * (double)vibi_vdlog_softplusf(x));
        }
    }
}

void vibi_head_sigma_backward(size_t n, const float *rho, float offset, const float *dsigma,
                              const float *dlog_sigma, float *drho)
{
    sigma_bwd(n, rho, offset, dsigma, dlog_sigma, drho);
}

/* ---- z = mu + sigma v ----------------------------------------------------------- */

/* No restrict: z may be mu, sigma or v (elementwise, as in sigma_fwd). */
VIB_CLONES static void reparam_fwd(size_t n, const float *mu, const float *sigma,
                                   const float *v, float *z)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        z[i] = vibi_head_z(mu[i], sigma[i], v[i]);
}

void vibi_head_reparam(size_t n, const float *mu, const float *sigma, const float *v, float *z)
{
    reparam_fwd(n, mu, sigma, v, z);
}

/* dmu += dz (dz/dmu = 1), dsigma += dz v (dz/dsigma = v), in double, rounded once. */
VIB_CLONES static void reparam_bwd(size_t n, const float *restrict dz, const float *restrict v,
                                   float *restrict dmu, float *restrict dsigma)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        dmu[i] = (float)((double)dmu[i] + (double)dz[i]);
        dsigma[i] = (float)((double)dsigma[i] + (double)dz[i] * (double)v[i]);
    }
}

void vibi_head_reparam_backward(size_t n, const float *dz, const float *v, float *dmu,
                                float *dsigma)
{
    reparam_bwd(n, dz, v, dmu, dsigma);
}

/* ---- KL( N(mu, diag sigma^2) || N(0, I) ) of one row ------------------------------ */

/* log sigma in double for a block of n <= KL_BLOCK values, vectorized. */
enum { KL_BLOCK = 64 };
VIB_CLONES static void log_block(size_t n, const float *restrict sigma, double *restrict out)
{
#pragma omp simd
    for (size_t j = 0; j < n; j++)
        out[j] = vibi_vlog_dbl(sigma[j]);
}

double vibi_head_kl(size_t k, const float *mu, const float *sigma, const float *log_sigma)
{
    /* In double, term j into partial sum j mod 4 (four chains of additions, not one),
     * the same sum, term for term, as vibi_chol_kl's for a diagonal L. (A vectorized
     * reduction would reorder it.) log sigma is the sigma head's, or, given sigma
     * alone, vmath.h's log in double: near the prior (sigma ~ 1) the term sigma^2 - 1 -
     * 2 log sigma is far smaller than its parts, and a float log there would cost up to
     * thousands of ulps of it. */
    double acc[4] = {0.0, 0.0, 0.0, 0.0};
    double logs[KL_BLOCK];
    for (size_t j0 = 0; j0 < k; j0 += KL_BLOCK) {
        const size_t n = k - j0 < KL_BLOCK ? k - j0 : KL_BLOCK;
        const float *m = mu + j0, *s = sigma + j0;
        if (log_sigma != NULL)
            for (size_t j = 0; j < n; j++)
                logs[j] = log_sigma[j0 + j];
        else
            log_block(n, s, logs);
        size_t j = 0;
        for (; j + 4 <= n; j += 4) /* j0 is a multiple of 4: lane j mod 4 */
            for (size_t u = 0; u < 4; u++)
                acc[u] += vibi_head_kl_term(m[j + u], s[j + u], logs[j + u]);
        for (; j < n; j++)
            acc[j % 4] += vibi_head_kl_term(m[j], s[j], logs[j]);
    }
    return 0.5 * ((acc[0] + acc[1]) + (acc[2] + acc[3]));
}

/* g times the KL row's gradient, d/dmu = mu, d/dsigma = sigma, d/dlog sigma = -1, in
 * double and rounded once. With dlog_sigma NULL the last goes through d log sigma /
 * dsigma = 1/sigma into dsigma. */
VIB_CLONES static void kl_bwd(size_t k, const float *restrict mu, const float *restrict sigma,
                              double g, float *restrict dmu, float *restrict dsigma,
                              float *restrict dlog_sigma)
{
    if (dlog_sigma == NULL) {
#pragma omp simd
        for (size_t j = 0; j < k; j++) {
            const double s = sigma[j];
            dmu[j] = (float)((double)dmu[j] + g * (double)mu[j]);
            dsigma[j] = (float)((double)dsigma[j] + g * (s - 1.0 / s));
        }
        return;
    }
#pragma omp simd
    for (size_t j = 0; j < k; j++) {
        dmu[j] = (float)((double)dmu[j] + g * (double)mu[j]);
        dsigma[j] = (float)((double)dsigma[j] + g * (double)sigma[j]);
        dlog_sigma[j] = (float)((double)dlog_sigma[j] - g);
    }
}

void vibi_head_kl_backward(size_t k, const float *mu, const float *sigma, double g, float *dmu,
                           float *dsigma, float *dlog_sigma)
{
    kl_bwd(k, mu, sigma, g, dmu, dsigma, dlog_sigma);
}

/* ---- full covariance: N(mu, L L^T), L packed by rows ------------------------------ */

size_t vib_chol_size(size_t k)
{
    /* k(k+1)/2 without overflow in the intermediate: one of k and k+1 is even, halve
     * that one before multiplying. k = SIZE_MAX: k + 1 wraps, and k(k+1)/2 > SIZE_MAX. */
    if (k == 0 || k == SIZE_MAX)
        return 0;
    size_t a = k, b = k + 1, out;
    if (a % 2 == 0)
        a /= 2;
    else
        b /= 2;
    return vibi_mul_size(a, b, &out) ? out : 0;
}

double vibi_chol_dot(size_t i, double mu_i, const float *l, const float *v, double *bound)
{
    const float *li = l + vibi_tri(i, 0);
    double acc = mu_i, b = fabs(mu_i);
    for (size_t j = 0; j <= i; j++) {
        const double t = (double)li[j] * (double)v[j];
        acc += t;
        b += fabs(t);
    }
    if (bound != NULL)
        *bound = b;
    return acc;
}

void vibi_chol_reparam(size_t k, const float *mu, const float *l, const float *v, float *z)
{
    /* z_i reads mu_i and v_0..v_i. Going from the last latent to the first, z_i is
     * written after every read of mu_i and v_i, so z may be the mu or the v buffer. */
    for (size_t i = k; i-- > 0;)
        z[i] = (float)vibi_chol_dot(i, mu[i], l, v, NULL);
}

void vibi_chol_reparam_backward(size_t k, const float *dz, const float *v, float *dmu,
                                float *dl)
{
    for (size_t i = 0; i < k; i++) {
        dmu[i] = (float)((double)dmu[i] + (double)dz[i]); /* dz_i/dmu_i = 1 */
        float *dli = dl + vibi_tri(i, 0);
        for (size_t j = 0; j <= i; j++) /* dz_i/dL_ij = v_j */
            dli[j] = (float)((double)dli[j] + (double)dz[i] * (double)v[j]);
    }
}

/* 0.5 (tr(L L^T) + |mu|^2 - k - log det(L L^T)) with tr(L L^T) = sum_ij L_ij^2 and
 * log det(L L^T) = 2 sum_i log L_ii, grouped by latent i as mu_i^2 + sum_{j<i} L_ij^2
 * + (L_ii^2 - 2 log L_ii - 1), each group >= 0 (t - log t - 1 >= 0 with t = L_ii^2).
 * log L_ii is log_diag[i] (the sigma head's stable one) or, if log_diag is NULL, vmath.h's
 * in double, as in vibi_head_kl. With a diagonal L the sum is vibi_head_kl's, term for
 * term. */
double vibi_chol_kl(size_t k, const float *mu, const float *l, const float *log_diag)
{
    double acc[4] = {0.0, 0.0, 0.0, 0.0}; /* latent i into partial sum i mod 4 */
    for (size_t i = 0; i < k; i++) {
        const float *li = l + vibi_tri(i, 0);
        double off = 0.0;
        for (size_t j = 0; j < i; j++)
            off += (double)li[j] * (double)li[j];
        const double s = li[i];
        acc[i % 4] += off + vibi_head_kl_term(mu[i], s, log_diag != NULL ? log_diag[i] : vibi_vlog_dbl(li[i]));
    }
    return 0.5 * ((acc[0] + acc[1]) + (acc[2] + acc[3]));
}

/* g times the KL's gradient: d/dmu_i = mu_i, d/dL_ij = L_ij, and on the diagonal
 * d/d log L_ii = -1, into dlog_diag[i] if it is not NULL, else through
 * d log L_ii / dL_ii = 1 / L_ii into dl. */
void vibi_chol_kl_backward(size_t k, const float *mu, const float *l, double g, float *dmu,
                           float *dl, float *dlog_diag)
{
    for (size_t i = 0; i < k; i++) {
        dmu[i] = (float)(dmu[i] + g * mu[i]);
        const float *li = l + vibi_tri(i, 0);
        float *dli = dl + vibi_tri(i, 0);
        for (size_t j = 0; j < i; j++)
            dli[j] = (float)(dli[j] + g * li[j]);
        const double s = li[i];
        if (dlog_diag != NULL) {
            dli[i] = (float)(dli[i] + g * s);
            dlog_diag[i] = (float)(dlog_diag[i] - g);
        } else {
            dli[i] = (float)(dli[i] + g * (s - 1.0 / s));
        }
    }
}
