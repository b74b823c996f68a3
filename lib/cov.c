/*
 * cov.c - the full-covariance Gaussian nodes: a posterior N(mu, L L^T) with L lower
 * triangular and a positive diagonal, its reparameterization z = mu + L v and its
 * closed-form KL to N(0, I), each forward beside its backward.
 *
 * L is packed by rows: row i of the factor holds L[i][0..i] at index i(i+1)/2 + j, so a
 * batch row of the posterior has k(k+1)/2 values. Like nodes.c, every function
 * validates all its arguments before it writes anything and refuses a result (or an
 * accumulation) that would overflow float; the arithmetic is head.c's row kernels,
 * which the model runs too. The math is in docs/math.md#full-covariance.
 */
#include <float.h>
#include <math.h>

#include "internal.h"

/* n = rows * k (mu, v, z) and p = rows * k(k+1)/2 (l), or an error naming fn. A k whose
 * packed factor does not fit size_t is refused even for rows = 0: no buffer of that
 * shape can exist, so the size itself is invalid. */
static int chol_sizes(const char *fn, size_t rows, size_t k, size_t *n, size_t *p)
{
    size_t ck = vib_chol_size(k);
    if (k > 0 && ck == 0)
        return vibi_fail(VIB_ERR_INVALID_ARG,
                         "%s: k = %zu: the packed factor k(k+1)/2 overflows size_t", fn, k);
    if (!vibi_mul_size(rows, k, n))
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: %zu x %zu elements overflow size_t", fn,
                         rows, k);
    if (!vibi_mul_size(rows, ck, p))
        return vibi_fail(VIB_ERR_INVALID_ARG,
                         "%s: %zu rows x %zu packed factor values overflow size_t", fn, rows,
                         ck);
    return VIB_OK;
}

/* Every L[i][i] > 0 in each of `rows` packed factors (finiteness is checked before).
 * The off-diagonal may be any finite value: a lower-triangular L with a positive
 * diagonal is nonsingular, so L L^T is positive definite whatever lies below it. */
static int check_diag(const char *fn, size_t rows, size_t k, const float *l)
{
    const size_t ck = vib_chol_size(k);
    for (size_t r = 0; r < rows; r++)
        for (size_t i = 0; i < k; i++) {
            size_t idx = r * ck + vibi_tri(i, i);
            if (!(l[idx] > 0.0f))
                return vibi_fail(VIB_ERR_INVALID_ARG,
                                 "%s: l[%zu] = %g (row %zu, L[%zu][%zu]) is not positive", fn,
                                 idx, (double)l[idx], r, i, i);
        }
    return VIB_OK;
}

/* ---- reparameterization: z = mu + L v ---- */

/* The checks every node makes of a posterior N(mu, L L^T): finite mu, finite L and a
 * positive diagonal, in that order. */
static int check_posterior(const char *fn, size_t rows, size_t k, size_t n, size_t p,
                           const float *mu, const float *l)
{
    TRY(vibi_check_finite(fn, "mu", n, mu));
    TRY(vibi_check_finite(fn, "l", p, l));
    return check_diag(fn, rows, k, l);
}

int vib_chol_reparam_forward(size_t rows, size_t k, const float *mu, const float *l,
                             const float *v, float *z)
{
    static const char fn[] = "vib_chol_reparam_forward";
    size_t n, p;
    TRY(chol_sizes(fn, rows, k, &n, &p));
    if (n == 0)
        return VIB_OK;
    TRY(VIBI_CHECK_PTRS(fn, "mu l v z", mu, l, v, z));
    TRY(check_posterior(fn, rows, k, n, p, mu, l));
    TRY(vibi_check_finite(fn, "v", n, v));
    const size_t ck = p / rows;
    /* Every z fits in a float before any is written. */
    for (size_t r = 0; r < rows; r++)
        for (size_t i = 0; i < k; i++) {
            double bound;
            (void)vibi_chol_dot(i, mu[r * k + i], l + r * ck, v + r * k, &bound);
            if (bound > (double)FLT_MAX)
                return vibi_fail(VIB_ERR_NUMERIC, "%s: z[%zu] would overflow float", fn,
                                 r * k + i);
        }
    for (size_t r = 0; r < rows; r++)
        vibi_chol_reparam(k, mu + r * k, l + r * ck, v + r * k, z + r * k);
    return VIB_OK;
}

int vib_chol_reparam_backward(size_t rows, size_t k, const float *dz, const float *v,
                              float *dmu, float *dl)
{
    static const char fn[] = "vib_chol_reparam_backward";
    size_t n, p;
    TRY(chol_sizes(fn, rows, k, &n, &p));
    if (n == 0)
        return VIB_OK;
    TRY(VIBI_CHECK_PTRS(fn, "dz v dmu dl", dz, v, dmu, dl));
    TRY(vibi_check_finite(fn, "dz", n, dz));
    TRY(vibi_check_finite(fn, "v", n, v));
    const size_t ck = p / rows;
    /* |dmu + dz| <= |dmu| + |dz| and |dl_ij + dz_i v_j| <= |dl_ij| + |dz_i v_j|. */
    for (size_t r = 0; r < rows; r++) {
        const float *g = dz + r * k, *vr = v + r * k;
        for (size_t i = 0; i < k; i++) {
            if (fabs((double)dmu[r * k + i]) + fabs((double)g[i]) > (double)FLT_MAX)
                return vibi_fail(VIB_ERR_NUMERIC, "%s: dmu[%zu] would overflow float", fn,
                                 r * k + i);
            for (size_t j = 0; j <= i; j++) {
                size_t idx = r * ck + vibi_tri(i, j);
                if (fabs((double)dl[idx]) + fabs((double)g[i] * (double)vr[j]) >
                    (double)FLT_MAX)
                    return vibi_fail(VIB_ERR_NUMERIC, "%s: dl[%zu] would overflow float", fn,
                                     idx);
            }
        }
    }
    for (size_t r = 0; r < rows; r++)
        vibi_chol_reparam_backward(k, dz + r * k, v + r * k, dmu + r * k, dl + r * ck);
    return VIB_OK;
}

/* ---- KL( N(mu, L L^T) || N(0, I) ) per row ---- */

int vib_kl_chol_std_normal(size_t rows, size_t k, const float *mu, const float *l, float *kl)
{
    static const char fn[] = "vib_kl_chol_std_normal";
    size_t n, p;
    TRY(chol_sizes(fn, rows, k, &n, &p));
    if (rows == 0)
        return VIB_OK;
    TRY(vibi_check_ptr(fn, "kl", kl));
    if (n == 0) { /* k = 0: each row's KL is an empty sum (mu and l may be NULL) */
        for (size_t r = 0; r < rows; r++)
            kl[r] = 0.0f;
        return VIB_OK;
    }
    TRY(VIBI_CHECK_PTRS(fn, "mu l", mu, l));
    TRY(check_posterior(fn, rows, k, n, p, mu, l));
    const size_t ck = p / rows;
    /* Every row fits in a float before any is written (|mu| or |L_ij| near 2^64). */
    for (size_t r = 0; r < rows; r++)
        if (vibi_chol_kl(k, mu + r * k, l + r * ck, NULL) > (double)FLT_MAX)
            return vibi_fail(VIB_ERR_NUMERIC, "%s: kl[%zu] would overflow float", fn, r);
    for (size_t r = 0; r < rows; r++)
        kl[r] = (float)vibi_chol_kl(k, mu + r * k, l + r * ck, NULL);
    return VIB_OK;
}

int vib_kl_chol_std_normal_backward(size_t rows, size_t k, const float *mu, const float *l,
                                    const float *dkl, float *dmu, float *dl)
{
    static const char fn[] = "vib_kl_chol_std_normal_backward";
    size_t n, p;
    TRY(chol_sizes(fn, rows, k, &n, &p));
    if (n == 0)
        return VIB_OK;
    TRY(VIBI_CHECK_PTRS(fn, "mu l dkl dmu dl", mu, l, dkl, dmu, dl));
    TRY(check_posterior(fn, rows, k, n, p, mu, l));
    TRY(vibi_check_finite(fn, "dkl", rows, dkl));
    const size_t ck = p / rows;
    /* Each accumulation must stay finite: |dmu + dkl mu| <= |dmu| + |dkl mu|, and
     * |dkl (L_ij - [i == j] / L_ii)| <= |dkl| (|L_ij| + [i == j] / L_ii), which a tiny
     * diagonal (an underflowed softplus) would send to infinity. */
    for (size_t r = 0; r < rows; r++) {
        const double g = fabs((double)dkl[r]);
        for (size_t i = 0; i < k; i++) {
            size_t im = r * k + i;
            if (fabs((double)dmu[im]) + g * fabs((double)mu[im]) > (double)FLT_MAX)
                return vibi_fail(VIB_ERR_NUMERIC, "%s: dmu[%zu] would overflow float", fn, im);
            for (size_t j = 0; j <= i; j++) {
                size_t idx = r * ck + vibi_tri(i, j);
                double x = l[idx];
                double mag = j == i ? x + 1.0 / x : fabs(x);
                if (fabs((double)dl[idx]) + g * mag > (double)FLT_MAX)
                    return vibi_fail(VIB_ERR_NUMERIC,
                                     "%s: dl[%zu] would overflow float (L[%zu][%zu] = %g)", fn,
                                     idx, i, j, x);
            }
        }
    }
    for (size_t r = 0; r < rows; r++)
        vibi_chol_kl_backward(k, mu + r * k, l + r * ck, dkl[r], dmu + r * k, dl + r * ck, NULL);
    return VIB_OK;
}
