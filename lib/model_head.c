/*
 * model_head.c - the model's Gaussian head over a batch: head.c's row kernels, the
 * same the public nodes run, applied to the head layer's rows [mu | rho] (diagonal:
 * sigma = softplus(rho + offset)) or [mu | packed raw L] (full covariance: the diagonal
 * of L through the same softplus, the rest as it is).
 *
 * Per row of the diagonal head: the sigma head (sigma and log sigma), z = mu + sigma v,
 * the KL; backward, dz and the KL's gradient into dmu, dsigma and d log sigma, then
 * the sigma head's backward into drho (docs/math.md#the-sigma-head,
 * #kl-to-the-standard-normal, #reparameterization). Rows are split across the threads
 * (vibi_share); the per-thread KL sums are added in thread order, so the total is the
 * same for the same thread count. The full-covariance head runs on one thread.
 */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "model.h"

/* ---- a mixture marginal's rate -------------------------------------------------- */

/* Row r's share of the rate estimate that is log e(z|x): the mean over its draws of
 * -sum_k log sigma_k - |v|^2 / 2 (the -log r(z) share is model_prior.c's). */
static double log_e_part(size_t K, size_t rows, size_t draws, size_t r, const float *log_s,
                         const float *v)
{
    double ls = 0.0, vv = 0.0;
    for (size_t k = 0; k < K; k++)
        ls += log_s[k];
    for (size_t d = 0; d < draws; d++) {
        const float *vd = v + (d * rows + r) * K;
        for (size_t k = 0; k < K; k++)
            vv += (double)vd[k] * vd[k];
    }
    return -ls - 0.5 * vv / (double)draws;
}

/* The rate's gradient at log sigma once z's share is in dz: d/d log sigma_k of the
 * draws' mean of -sum_k log sigma_k, weight kl_w. */
static void log_e_backward(size_t K, double kl_w, float *dlog_s)
{
    for (size_t k = 0; k < K; k++)
        dlog_s[k] -= (float)kl_w;
}

/* ---- diagonal ------------------------------------------------------------------- */

/* Rows [r0, r1) of `rows`, each with `draws` samples: row r's draw d is row d rows + r
 * of v and z. The scale and the KL are the row's, computed once. */
static double diag_forward_rows(const vib_model *m, size_t r0, size_t r1, size_t rows,
                                size_t draws, const float *head, const float *v, float *z,
                                const vibi_views *w)
{
    const size_t K = m->arch.k, HO = m->arch.head_out;
    double kl = 0.0;
    for (size_t r = r0; r < r1; r++) {
        const float *mu = head + r * HO, *rho = mu + K;
        float *s = w->sigma + r * K, *log_s = w->aux + r * K;
        vibi_head_sigma(K, rho, m->offset, s, log_s);
        for (size_t d = 0; d < draws; d++)
            vibi_head_reparam(K, mu, s, v + (d * rows + r) * K, z + (d * rows + r) * K);
        kl += m->arch.components > 0 ? log_e_part(K, rows, draws, r, log_s, v)
                                     : vibi_head_kl(K, mu, s, log_s);
    }
    return kl;
}

/* The backward of diag_forward_rows: the draws' dmu and dsigma accumulate (in draw
 * order), then the KL's share and the sigma head's backward, once per row. */
static void diag_backward_rows(const vib_model *m, size_t r0, size_t r1, size_t rows,
                               size_t draws, const float *head, const float *v, const float *dz,
                               double kl_w, const vibi_views *w, float *dhead)
{
    const size_t K = m->arch.k, HO = m->arch.head_out;
    for (size_t r = r0; r < r1; r++) {
        const float *mu = head + r * HO, *rho = mu + K, *s = w->sigma + r * K;
        float *dmu = dhead + r * HO, *drho = dmu + K;
        float *ds = w->dsigma + r * K, *dlog_s = w->aux + r * K;
        memset(dmu, 0, 2 * K * sizeof(float));
        memset(ds, 0, K * sizeof(float));
        memset(dlog_s, 0, K * sizeof(float));
        for (size_t d = 0; d < draws; d++)
            vibi_head_reparam_backward(K, dz + (d * rows + r) * K, v + (d * rows + r) * K, dmu,
                                       ds);
        if (m->arch.components > 0)
            log_e_backward(K, kl_w, dlog_s);
        else
            vibi_head_kl_backward(K, mu, s, kl_w, dmu, ds, dlog_s);
        vibi_head_sigma_backward(K, rho, m->offset, ds, dlog_s, drho);
    }
}

/* ---- full covariance ------------------------------------------------------------ */

/* Row r's factor L into l (packed): the raw values, with the diagonal's softplus in
 * place, its raw values in rho_d and sigma and log sigma in s and log_s. */
static void full_factor(const vib_model *m, const float *raw, float *l, float *rho_d, float *s,
                        float *log_s)
{
    const size_t K = m->arch.k;
    memcpy(l, raw, vib_chol_size(K) * sizeof(float));
    for (size_t i = 0; i < K; i++)
        rho_d[i] = raw[vibi_tri(i, i)];
    vibi_head_sigma(K, rho_d, m->offset, s, log_s);
    for (size_t i = 0; i < K; i++)
        l[vibi_tri(i, i)] = s[i];
}

/* The full head's row scratch (model.h: vibi_views.scratch). */
typedef struct {
    float *l, *dl, *rho_d, *s, *log_s, *ds;
} full_rows;

static full_rows full_scratch(const vib_model *m, const vibi_views *w)
{
    const size_t K = m->arch.k, T = vib_chol_size(K);
    float *p = w->scratch;
    return (full_rows){.l = p, .dl = p + T, .rho_d = p + 2 * T, .s = p + 2 * T + K,
                       .log_s = p + 2 * T + 2 * K, .ds = p + 2 * T + 3 * K};
}

static double full_forward(const vib_model *m, size_t rows, size_t draws, const float *head,
                           const float *v, float *z, const vibi_views *w)
{
    const size_t K = m->arch.k, HO = m->arch.head_out;
    const full_rows f = full_scratch(m, w);
    double kl = 0.0;
    for (size_t r = 0; r < rows; r++) {
        const float *mu = head + r * HO;
        full_factor(m, mu + K, f.l, f.rho_d, f.s, f.log_s);
        for (size_t d = 0; d < draws; d++)
            vibi_chol_reparam(K, mu, f.l, v + (d * rows + r) * K, z + (d * rows + r) * K);
        kl += m->arch.components > 0 ? log_e_part(K, rows, draws, r, f.log_s, v)
                                     : vibi_chol_kl(K, mu, f.l, f.log_s);
    }
    return kl;
}

static void full_backward(const vib_model *m, size_t rows, size_t draws, const float *head,
                          const float *v, const float *dz, double kl_w, const vibi_views *w,
                          float *dhead)
{
    const size_t K = m->arch.k, HO = m->arch.head_out, T = vib_chol_size(K);
    const full_rows f = full_scratch(m, w);
    for (size_t r = 0; r < rows; r++) {
        const float *mu = head + r * HO;
        float *dmu = dhead + r * HO, *draw = dmu + K;
        full_factor(m, mu + K, f.l, f.rho_d, f.s, f.log_s);
        memset(dmu, 0, K * sizeof(float));
        memset(f.dl, 0, T * sizeof(float));
        float *dlog_s = f.log_s; /* log sigma is not needed any more */
        memset(dlog_s, 0, K * sizeof(float));
        for (size_t d = 0; d < draws; d++)
            vibi_chol_reparam_backward(K, dz + (d * rows + r) * K, v + (d * rows + r) * K, dmu,
                                       f.dl);
        if (m->arch.components > 0)
            log_e_backward(K, kl_w, dlog_s);
        else
            vibi_chol_kl_backward(K, mu, f.l, kl_w, dmu, f.dl, dlog_s);
        /* dL reaches the raw outputs as it is below the diagonal; on it, through the
         * sigma head. */
        memcpy(draw, f.dl, T * sizeof(float));
        for (size_t i = 0; i < K; i++) {
            f.ds[i] = f.dl[vibi_tri(i, i)];
            draw[vibi_tri(i, i)] = 0.0f;
        }
        float *drho_d = f.s; /* sigma is not needed any more */
        memset(drho_d, 0, K * sizeof(float));
        vibi_head_sigma_backward(K, f.rho_d, m->offset, f.ds, dlog_s, drho_d);
        for (size_t i = 0; i < K; i++)
            draw[vibi_tri(i, i)] = drho_d[i];
    }
}

/* ---- the batch ------------------------------------------------------------------ */

/* The rate's -log r(z) share over the rows' draws, averaged over the draws: 0 without
 * a mixture marginal. */
static double prior_part(const vib_model *m, size_t rows, size_t draws, const float *z,
                         const vibi_views *w)
{
    if (m->arch.components == 0)
        return 0.0;
    vibi_prior_prepare(m);
    return vibi_prior_neg_log(m, draws * rows, z, w->gamma) / (double)draws;
}

double vibi_model_head_forward(const vib_model *m, size_t rows, size_t draws,
                               const float *head, const float *v, float *z, const vibi_views *w)
{
    if (vibi_arch_full(&m->arch)) {
        const double kl = full_forward(m, rows, draws, head, v, z, w);
        return kl + prior_part(m, rows, draws, z, w);
    }
    double part[VIB_MAX_THREADS];
    int used = 1;
#pragma omp parallel num_threads(vibi_threads()) if (draws * rows * m->arch.k >= VIBI_PAR_ELEMS)
    {
        size_t r0, r1;
        vibi_share(rows, 1, &r0, &r1);
        part[omp_get_thread_num()] = diag_forward_rows(m, r0, r1, rows, draws, head, v, z, w);
#pragma omp single
        used = omp_get_num_threads();
    }
    double kl = 0.0;
    for (int t = 0; t < used; t++)
        kl += part[t];
    return kl + prior_part(m, rows, draws, z, w);
}

void vibi_model_head_backward(const vib_model *m, size_t rows, size_t draws,
                              const float *head, const float *v, const float *dz, double kl_w,
                              const vibi_views *w, float *dhead)
{
    const size_t K = m->arch.k, HO = m->arch.head_out;
    if (m->deterministic) { /* z = mu: dmu = dz, and nothing reaches the scale */
        for (size_t r = 0; r < rows; r++) {
            memcpy(dhead + r * HO, dz + r * K, K * sizeof(float));
            memset(dhead + r * HO + K, 0, (HO - K) * sizeof(float));
        }
        return;
    }
    if (vibi_arch_full(&m->arch)) {
        full_backward(m, rows, draws, head, v, dz, kl_w, w, dhead);
        return;
    }
#pragma omp parallel num_threads(vibi_threads()) if (draws * rows * K >= VIBI_PAR_ELEMS)
    {
        size_t r0, r1;
        vibi_share(rows, 1, &r0, &r1);
        diag_backward_rows(m, r0, r1, rows, draws, head, v, dz, kl_w, w, dhead);
    }
}

void vibi_model_scale(const vib_model *m, size_t rows, const float *head, bool packed,
                      const vibi_views *w, float *out)
{
    const size_t K = m->arch.k, HO = m->arch.head_out, T = vib_chol_size(K);
    const bool full = vibi_arch_full(&m->arch);
    if (!packed && !full) {
        for (size_t r = 0; r < rows; r++)
            vibi_head_sigma(K, head + r * HO + K, m->offset, out + r * K, NULL);
        return;
    }
    for (size_t r = 0; r < rows; r++) {
        const float *raw = head + r * HO + K;
        float *l = out + r * T;
        if (full) { /* (the scratch exists for a full-covariance model only) */
            const full_rows f = full_scratch(m, w);
            full_factor(m, raw, l, f.rho_d, f.s, f.log_s);
            continue;
        }
        /* the diagonal head's sigma on the diagonal of an otherwise zero factor */
        float *s = w->sigma + r * K;
        vibi_head_sigma(K, raw, m->offset, s, NULL);
        memset(l, 0, T * sizeof(float));
        for (size_t i = 0; i < K; i++)
            l[vibi_tri(i, i)] = s[i];
    }
}

void vibi_model_sample(const vib_model *m, size_t rows, const float *head, const float *scale,
                       const float *v, float *z)
{
    const size_t K = m->arch.k, HO = m->arch.head_out;
    const size_t width = vibi_arch_full(&m->arch) ? vib_chol_size(K) : K;
    for (size_t r = 0; r < rows; r++) {
        const float *mu = head + r * HO, *s = scale + r * width;
        if (width == K)
            vibi_head_reparam(K, mu, s, v + r * K, z + r * K);
        else
            vibi_chol_reparam(K, mu, s, v + r * K, z + r * K);
    }
}
