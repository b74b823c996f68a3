/*
 * cov.c - the full-covariance Gaussian nodes: a posterior N(mu, L L^T) with L lower
 * triangular and a positive diagonal, its reparameterization z = mu + L v and its
 * closed-form KL to N(0, I), each forward beside its backward.
 *
 * L is packed by rows: row i of the factor holds L[i][0..i] at index i(i+1)/2 + j, so a
 * batch row of the posterior has k(k+1)/2 values. Like nodes.c, every function
 * validates all its arguments before it writes anything, computes in double and
 * rounds each result once, and refuses a result (or an accumulation) that would
 * overflow float. The math is in docs/math.md#full-covariance.
 */
#include <float.h>
#include <math.h>

#include "internal.h"

/* Index of L[i][i] in a packed factor: row i starts at i(i+1)/2. */
#define DIAG(i) ((i) * ((i) + 1) / 2 + (i))

/* k(k+1)/2 without overflow in the intermediate: one of k and k+1 is even, halve that
 * one before multiplying. 0 for k = 0 and when the packed size does not fit size_t. */
static size_t chol_size(size_t k)
{
    if (k == 0 || k == SIZE_MAX) /* k = SIZE_MAX: k + 1 wraps, and k(k+1)/2 > SIZE_MAX */
        return 0;
    size_t a = k, b = k + 1, out;
    if (a % 2 == 0)
        a /= 2;
    else
        b /= 2;
    return vibi_mul_size(a, b, &out) ? out : 0;
}

size_t vib_chol_size(size_t k)
{
    return chol_size(k);
}

/* n = rows * k (mu, v, z) and p = rows * k(k+1)/2 (l), or an error naming fn. A k whose
 * packed factor does not fit size_t is refused even for rows = 0: no buffer of that
 * shape can exist, so the size itself is invalid. */
static int chol_sizes(const char *fn, size_t rows, size_t k, size_t *n, size_t *p)
{
    size_t ck = chol_size(k);
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
    const size_t ck = chol_size(k);
    for (size_t r = 0; r < rows; r++)
        for (size_t i = 0; i < k; i++) {
            size_t idx = r * ck + DIAG(i);
            if (!(l[idx] > 0.0f))
                return vibi_fail(VIB_ERR_INVALID_ARG,
                                 "%s: l[%zu] = %g (row %zu, L[%zu][%zu]) is not positive", fn,
                                 idx, (double)l[idx], r, i, i);
        }
    return VIB_OK;
}

/* ---- reparameterization: z = mu + L v ---- */

/* Row i of z = mu + L v, in double: mu_i + sum_{j <= i} L_ij v_j, and, into *bound,
 * |mu_i| + sum_j |L_ij v_j|, which bounds |z_i| however the sum rounds. */
static double chol_row_dot(size_t i, double mu_i, const float *l, const float *v,
                           double *bound)
{
    const float *li = l + i * (i + 1) / 2;
    double acc = mu_i, b = fabs(mu_i);
    for (size_t j = 0; j <= i; j++) {
        double t = (double)li[j] * (double)v[j];
        acc += t;
        b += fabs(t);
    }
    *bound = b;
    return acc;
}

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
    TRY(vibi_check_ptr(fn, "mu", mu));
    TRY(vibi_check_ptr(fn, "l", l));
    TRY(vibi_check_ptr(fn, "v", v));
    TRY(vibi_check_ptr(fn, "z", z));
    TRY(check_posterior(fn, rows, k, n, p, mu, l));
    TRY(vibi_check_finite(fn, "v", n, v));
    const size_t ck = p / rows;
    /* Every z fits in a float before any is written. */
    for (size_t r = 0; r < rows; r++)
        for (size_t i = 0; i < k; i++) {
            double bound;
            (void)chol_row_dot(i, mu[r * k + i], l + r * ck, v + r * k, &bound);
            if (bound > (double)FLT_MAX)
                return vibi_fail(VIB_ERR_NUMERIC, "%s: z[%zu] would overflow float", fn,
                                 r * k + i);
        }
    /* z_i reads mu_i and v_0..v_i. Going from the last latent to the first, z_i is
     * written after every read of mu_i and v_i, so z may be the mu or the v buffer. */
    for (size_t r = 0; r < rows; r++)
        for (size_t i = k; i-- > 0;) {
            double bound;
            z[r * k + i] = (float)chol_row_dot(i, mu[r * k + i], l + r * ck, v + r * k, &bound);
        }
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
    TRY(vibi_check_ptr(fn, "dz", dz));
    TRY(vibi_check_ptr(fn, "v", v));
    TRY(vibi_check_ptr(fn, "dmu", dmu));
    TRY(vibi_check_ptr(fn, "dl", dl));
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
                size_t idx = r * ck + i * (i + 1) / 2 + j;
                if (fabs((double)dl[idx]) + fabs((double)g[i] * (double)vr[j]) >
                    (double)FLT_MAX)
                    return vibi_fail(VIB_ERR_NUMERIC, "%s: dl[%zu] would overflow float", fn,
                                     idx);
            }
        }
    }
    for (size_t r = 0; r < rows; r++) {
        const float *g = dz + r * k, *vr = v + r * k;
        float *dlr = dl + r * ck;
        for (size_t i = 0; i < k; i++) {
            dmu[r * k + i] = (float)((double)dmu[r * k + i] + (double)g[i]); /* dz_i/dmu_i = 1 */
            float *dli = dlr + i * (i + 1) / 2;
            for (size_t j = 0; j <= i; j++) /* dz_i/dL_ij = v_j */
                dli[j] = (float)((double)dli[j] + (double)g[i] * (double)vr[j]);
        }
    }
    return VIB_OK;
}

/* ---- KL( N(mu, L L^T) || N(0, I) ) per row ---- */

/* 0.5 (tr(L L^T) + |mu|^2 - k - log det(L L^T)) with tr(L L^T) = sum_ij L_ij^2 and
 * log det(L L^T) = 2 sum_i log L_ii, in double. Grouped by latent i as
 * mu_i^2 + sum_{j<i} L_ij^2 + (L_ii^2 - 2 log L_ii - 1), each group >= 0 (t - log t - 1
 * >= 0 with t = L_ii^2): with a diagonal L the sum is term for term the one of
 * vib_kl_std_normal with sigma = L_ii, so the two nodes agree exactly there. */
static double kl_chol_row(size_t k, const float *mu, const float *l)
{
    double acc = 0.0;
    for (size_t i = 0; i < k; i++) {
        const float *li = l + i * (i + 1) / 2;
        double off = 0.0;
        for (size_t j = 0; j < i; j++)
            off += (double)li[j] * (double)li[j];
        double m = mu[i], s = li[i];
        acc += m * m + off + s * s - 2.0 * log(s) - 1.0;
    }
    return 0.5 * acc;
}

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
    TRY(vibi_check_ptr(fn, "mu", mu));
    TRY(vibi_check_ptr(fn, "l", l));
    TRY(check_posterior(fn, rows, k, n, p, mu, l));
    const size_t ck = p / rows;
    /* Every row fits in a float before any is written (|mu| or |L_ij| near 2^64). */
    for (size_t r = 0; r < rows; r++)
        if (kl_chol_row(k, mu + r * k, l + r * ck) > (double)FLT_MAX)
            return vibi_fail(VIB_ERR_NUMERIC, "%s: kl[%zu] would overflow float", fn, r);
    for (size_t r = 0; r < rows; r++)
        kl[r] = (float)kl_chol_row(k, mu + r * k, l + r * ck);
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
    TRY(vibi_check_ptr(fn, "mu", mu));
    TRY(vibi_check_ptr(fn, "l", l));
    TRY(vibi_check_ptr(fn, "dkl", dkl));
    TRY(vibi_check_ptr(fn, "dmu", dmu));
    TRY(vibi_check_ptr(fn, "dl", dl));
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
                size_t idx = r * ck + i * (i + 1) / 2 + j;
                double x = l[idx];
                double mag = j == i ? x + 1.0 / x : fabs(x);
                if (fabs((double)dl[idx]) + g * mag > (double)FLT_MAX)
                    return vibi_fail(VIB_ERR_NUMERIC,
                                     "%s: dl[%zu] would overflow float (L[%zu][%zu] = %g)", fn,
                                     idx, i, j, x);
            }
        }
    }
    for (size_t r = 0; r < rows; r++) {
        const double g = dkl[r];
        for (size_t i = 0; i < k; i++) {
            size_t im = r * k + i;
            dmu[im] = (float)(dmu[im] + g * mu[im]); /* d/dmu_i 0.5 |mu|^2 = mu_i */
            for (size_t j = 0; j <= i; j++) {
                size_t idx = r * ck + i * (i + 1) / 2 + j;
                double x = l[idx];
                /* d/dL_ij 0.5 sum L^2 = L_ij; d/dL_ii (-log L_ii) = -1/L_ii */
                double d = j == i ? x - 1.0 / x : x;
                dl[idx] = (float)(dl[idx] + g * d);
            }
        }
    }
    return VIB_OK;
}
