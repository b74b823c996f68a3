/*
 * model_prior.c - a learned marginal r(z): a mixture of M diagonal Gaussians,
 *
 *   r(z) = sum_m pi_m N(z; c_m, diag(s_m^2)),  pi = softmax(logits),  s_m = softplus(raw_m),
 *
 * against which the rate is estimated from the posterior's draws: for a draw
 * z = mu + sigma v of e(z|x) = N(mu, diag(sigma^2)),
 *
 *   log e(z|x) - log r(z) = -sum_k log sigma_k - |v|^2 / 2 - log r(z)
 *
 * (both log densities without their K/2 log 2 pi, which cancels). model_head.c adds the
 * first two terms, which need the head's sigma; this file the third, over rows of z.
 * With gamma_m = pi_m N(z; c_m, s_m) / r(z), the component's responsibility for z,
 *
 *   d(-log r)/dz_k      = sum_m gamma_m (z_k - c_mk) / s_mk^2
 *   d(-log r)/dc_mk     = -gamma_m (z_k - c_mk) / s_mk^2
 *   d(-log r)/ds_mk     = gamma_m (1 - (z_k - c_mk)^2 / s_mk^2) / s_mk
 *   d(-log r)/dlogit_m  = pi_m - gamma_m
 *
 * (docs/math.md#a-learned-mixture-marginal). The forward and the rows' gradients split
 * the rows across the threads, the marginal's gradients its components: every sum runs
 * over the rows in order, so the bits do not depend on the thread count.
 */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "model.h"

void vibi_prior_prepare(const vib_model *m)
{
    const size_t K = m->arch.k, M = m->arch.components;
    const vibi_prior *r = &m->prior;
    double mx = r->logit[0];
    for (size_t j = 1; j < M; j++)
        mx = r->logit[j] > mx ? r->logit[j] : mx;
    double sum = 0.0;
    for (size_t j = 0; j < M; j++)
        sum += exp(r->logit[j] - mx);
    const double lse = mx + log(sum);
    for (size_t j = 0; j < M; j++) {
        float *s = r->s + j * K, *inv = r->inv_s2 + j * K;
        /* softplus and its log by the sigma head's kernel (no offset); the log waits in
         * inv until it is summed */
        vibi_head_sigma(K, r->raw + j * K, 0.0f, s, inv);
        double log_s = 0.0;
        for (size_t k = 0; k < K; k++) {
            log_s += inv[k];
            inv[k] = 1.0f / (s[k] * s[k]);
        }
        r->log_pi[j] = r->logit[j] - lse;
        r->log_w[j] = r->log_pi[j] - log_s;
    }
}

/* -log r(z) of one row; gamma [M] receives the responsibilities. */
static double row_neg_log(const vib_model *m, const float *restrict z, float *restrict gamma)
{
    const size_t K = m->arch.k, M = m->arch.components;
    const vibi_prior *r = &m->prior;
    double a[VIBI_MAX_COMPONENTS];
    double mx = -INFINITY;
    for (size_t j = 0; j < M; j++) {
        const float *restrict c = r->c + j * K, *restrict inv = r->inv_s2 + j * K;
        double q = 0.0;
#pragma omp simd reduction(+ : q)
        for (size_t k = 0; k < K; k++) {
            const double d = (double)z[k] - (double)c[k];
            q += d * d * (double)inv[k];
        }
        a[j] = r->log_w[j] - 0.5 * q;
        mx = a[j] > mx ? a[j] : mx;
    }
    double sum = 0.0;
    for (size_t j = 0; j < M; j++)
        sum += exp(a[j] - mx);
    const double lse = mx + log(sum);
    for (size_t j = 0; j < M; j++)
        gamma[j] = (float)exp(a[j] - lse);
    return -lse;
}

double vibi_prior_neg_log(const vib_model *m, size_t n, const float *z, float *gamma)
{
    const size_t K = m->arch.k, M = m->arch.components;
    double part[VIB_MAX_THREADS];
    int used = 1;
#pragma omp parallel num_threads(vibi_threads()) if (n * K * M >= VIBI_PAR_ELEMS)
    {
        size_t r0, r1;
        vibi_share(n, 1, &r0, &r1);
        double s = 0.0;
        for (size_t r = r0; r < r1; r++)
            s += row_neg_log(m, z + r * K, gamma + r * M);
        part[omp_get_thread_num()] = s;
#pragma omp single
        used = omp_get_num_threads();
    }
    double total = 0.0;
    for (int t = 0; t < used; t++)
        total += part[t];
    return total;
}

/* Components [j0, j1)'s gradients of wt sum_rows -log r(z), written: dc and draw gather
 * sum_r gamma (z - c) and sum_r gamma (z - c)^2 first, then become the gradients. */
static void components_backward(const vib_model *m, size_t j0, size_t j1, size_t n,
                                const float *z, const float *gamma, double wt)
{
    const size_t K = m->arch.k, M = m->arch.components;
    const vibi_prior *r = &m->prior;
    for (size_t j = j0; j < j1; j++) {
        const float *restrict c = r->c + j * K, *restrict inv = r->inv_s2 + j * K;
        float *restrict dc = r->dc + j * K, *restrict dr = r->draw + j * K;
        memset(dc, 0, K * sizeof(float));
        memset(dr, 0, K * sizeof(float));
        double g_sum = 0.0;
        for (size_t i = 0; i < n; i++) {
            const float g = gamma[i * M + j];
            if (g == 0.0f) /* an underflowed responsibility adds nothing */
                continue;
            g_sum += g;
            const float *restrict zi = z + i * K;
#pragma omp simd
            for (size_t k = 0; k < K; k++) {
                const float d = zi[k] - c[k];
                dc[k] += g * d;
                dr[k] += g * d * d;
            }
        }
        for (size_t k = 0; k < K; k++) {
            const double s = r->s[j * K + k], raw = r->raw[j * K + k];
            const double ds = wt * (g_sum - (double)dr[k] * inv[k]) / s;
            dc[k] = (float)(-wt * (double)dc[k] * inv[k]);
            dr[k] = (float)(ds / (1.0 + exp(-raw))); /* softplus' = the logistic */
        }
        r->dlogit[j] = (float)(wt * ((double)n * exp(r->log_pi[j]) - g_sum));
    }
}

void vibi_prior_backward(const vib_model *m, size_t n, const float *z, const float *gamma,
                         double wt, bool params, float *dz)
{
    const size_t K = m->arch.k, M = m->arch.components;
    const vibi_prior *r = &m->prior;
    if (m->deterministic) { /* z = mu: no rate, and nothing reaches the marginal */
        if (params)
            memset(r->dc, 0, vibi_arch_prior_params(&m->arch) * sizeof(float));
        return;
    }
#pragma omp parallel num_threads(vibi_threads()) if (n * K * M >= VIBI_PAR_ELEMS)
    {
        size_t r0, r1;
        vibi_share(n, 1, &r0, &r1);
        for (size_t i = r0; i < r1; i++) {
            float *restrict d = dz + i * K;
            const float *restrict zi = z + i * K;
            for (size_t j = 0; j < M; j++) {
                const float g = (float)(wt * gamma[i * M + j]);
                if (g == 0.0f)
                    continue;
                const float *restrict c = r->c + j * K, *restrict inv = r->inv_s2 + j * K;
#pragma omp simd
                for (size_t k = 0; k < K; k++)
                    d[k] += g * (zi[k] - c[k]) * inv[k];
            }
        }
        if (params) { /* reads z and gamma only: no wait for the rows' share */
            size_t j0, j1;
            vibi_share(M, 1, &j0, &j1);
            components_backward(m, j0, j1, n, z, gamma, wt);
        }
    }
}
