/*
 * nodes.c - the pure nodes: reparameterization, Gaussian KLs, the sigma head, ReLU and
 * softmax cross-entropy, each forward beside its backward. Every function validates
 * all its arguments before it writes anything, so an error leaves the buffers as they
 * were. The Gaussian nodes' arithmetic is head.c's row kernels, the same the model
 * runs. The math of each backward is derived in docs/math.md.
 */
#include <float.h>
#include <math.h>
#include <string.h>

#include "internal.h"

/* n = rows * cols, or an error naming fn if that overflows. */
static int matrix_size(const char *fn, size_t rows, size_t cols, size_t *n)
{
    if (!vibi_mul_size(rows, cols, n))
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: %zu x %zu elements overflow size_t", fn,
                         rows, cols);
    return VIB_OK;
}

/* The bounds the nodes check before writing: a result or an accumulation must stay
 * within FLT_MAX. */
typedef enum {
    FIT_PRODUCT, /* |a| + |b c|       a + b c: z = mu + sigma v, dsigma += dz v */
    FIT_SUM,     /* |a| + |b|         a + b: dmu += dz; drho += dsigma times a factor <= 1 */
    FIT_SUM3,    /* |a| + |b| + |c|   drho += dsigma s' + dlog (d log s), factors <= 1 */
    FIT_SHIFT    /* |a + t|           x = rho + offset */
} fit_form;

/* The first i whose bound of the given form exceeds FLT_MAX, else n: in double, a
 * vector scan compiled per instruction set. */
VIB_CLONES static size_t first_unfit(size_t n, fit_form form, const float *a, const float *b,
                                     const float *c, float t)
{
    size_t i;
    switch (form) {
    case FIT_PRODUCT:
        VIBI_FIND_FIRST(i, n, j,
                        fabs((double)a[j]) + fabs((double)b[j] * (double)c[j]) > (double)FLT_MAX);
        break;
    case FIT_SUM:
        VIBI_FIND_FIRST(i, n, j, fabs((double)a[j]) + fabs((double)b[j]) > (double)FLT_MAX);
        break;
    case FIT_SUM3:
        VIBI_FIND_FIRST(i, n, j,
                        fabs((double)a[j]) + fabs((double)b[j]) + fabs((double)c[j]) >
                            (double)FLT_MAX);
        break;
    default:
        VIBI_FIND_FIRST(i, n, j, fabs((double)a[j] + (double)t) > (double)FLT_MAX);
        break;
    }
    return i;
}

/* An error unless every |a[i]| + |b[i] * c[i]| fits in a float (a NULL c read as 1):
 * the bound on a result or an accumulation of the form a + b * c, checked before
 * anything is written so that an overflow never leaves a buffer half updated. */
static int check_fits(const char *fn, const char *what, size_t n, const float *a,
                      const float *b, const float *c)
{
    const size_t i = first_unfit(n, c ? FIT_PRODUCT : FIT_SUM, a, b, c, 0.0f);
    if (i < n)
        return vibi_fail(VIB_ERR_NUMERIC, "%s: %s[%zu] would overflow float", fn, what, i);
    return VIB_OK;
}

/* ---- reparameterization: z = mu + sigma * v (docs/math.md#reparameterization) ---- */

int vib_reparam_forward(size_t n, const float *mu, const float *sigma, const float *v,
                        float *z)
{
    static const char fn[] = "vib_reparam_forward";
    if (n == 0)
        return VIB_OK;
    TRY(VIBI_CHECK_PTRS(fn, "mu sigma v z", mu, sigma, v, z));
    TRY(vibi_check_finite(fn, "mu", n, mu));
    TRY(vibi_check_positive(fn, "sigma", n, sigma));
    TRY(vibi_check_finite(fn, "v", n, v));
    TRY(check_fits(fn, "z", n, mu, sigma, v));
    vibi_head_reparam(n, mu, sigma, v, z);
    return VIB_OK;
}

int vib_reparam_backward(size_t n, const float *dz, const float *v, float *dmu, float *dsigma)
{
    static const char fn[] = "vib_reparam_backward";
    if (n == 0)
        return VIB_OK;
    TRY(VIBI_CHECK_PTRS(fn, "dz v dmu dsigma", dz, v, dmu, dsigma));
    TRY(vibi_check_finite(fn, "dz", n, dz));
    TRY(vibi_check_finite(fn, "v", n, v));
    TRY(check_fits(fn, "dmu", n, dmu, dz, NULL));
    TRY(check_fits(fn, "dsigma", n, dsigma, dz, v));
    vibi_head_reparam_backward(n, dz, v, dmu, dsigma);
    return VIB_OK;
}

/* ---- KL( N(mu, sigma^2) || N(0, 1) ) per row (docs/math.md#kl-to-the-standard-normal) ---- */

/* max |x[i]| over n finite values, 0 for n = 0: the largest magnitude's bits, as the
 * bit patterns of |x| order like the values (an integer max vectorizes everywhere). */
VIB_CLONES static float max_abs(size_t n, const float *x)
{
    uint32_t m = 0;
#pragma omp simd reduction(max : m)
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], sizeof u);
        u &= 0x7fffffffu;
        m = u > m ? u : m;
    }
    float f;
    memcpy(&f, &m, sizeof f);
    return f;
}

int vib_kl_std_normal(size_t rows, size_t k, const float *mu, const float *sigma, float *kl)
{
    static const char fn[] = "vib_kl_std_normal";
    size_t n;
    TRY(matrix_size(fn, rows, k, &n));
    if (rows == 0)
        return VIB_OK;
    TRY(vibi_check_ptr(fn, "kl", kl));
    if (n == 0) { /* k = 0: each row's KL is an empty sum (mu and sigma may be NULL) */
        for (size_t r = 0; r < rows; r++)
            kl[r] = 0.0f;
        return VIB_OK;
    }
    TRY(VIBI_CHECK_PTRS(fn, "mu sigma", mu, sigma));
    TRY(vibi_check_finite(fn, "mu", n, mu));
    TRY(vibi_check_positive(fn, "sigma", n, sigma));
    /* Every row must fit in a float before any is written (|mu| near 2^64 overflows).
     * With |mu|, sigma <= 2^50 a term mu^2 + sigma^2 - 1 - 2 log sigma is below 2^102
     * (-log sigma < 104 for any positive float), so 2^20 of them cannot overflow: then
     * the rows need not be computed twice. */
    if (k > ((size_t)1 << 20) || max_abs(n, mu) > 0x1p50f || max_abs(n, sigma) > 0x1p50f)
        for (size_t r = 0; r < rows; r++)
            if (vibi_head_kl(k, mu + r * k, sigma + r * k, NULL) > (double)FLT_MAX)
                return vibi_fail(VIB_ERR_NUMERIC, "%s: kl[%zu] would overflow float", fn, r);
    for (size_t r = 0; r < rows; r++)
        kl[r] = (float)vibi_head_kl(k, mu + r * k, sigma + r * k, NULL);
    return VIB_OK;
}

/* The first j where the KL backward's accumulation into d overflows, else k: with
 * |g| = ag, |dmu + g mu| <= |dmu| + ag |mu| and |dsigma + g (sigma - 1/sigma)| <=
 * |dsigma| + ag (sigma + 1/sigma), which a subnormal sigma from an underflowed sigma head
 * would send to infinity. */
VIB_CLONES static size_t first_kl_unfit(size_t k, const float *mu, const float *sigma,
                                        double ag, const float *d, bool into_dsigma)
{
    size_t j;
    if (into_dsigma)
        VIBI_FIND_FIRST(j, k, i,
                        fabs((double)d[i]) + ag * ((double)sigma[i] + 1.0 / (double)sigma[i]) >
                            (double)FLT_MAX);
    else
        VIBI_FIND_FIRST(j, k, i, fabs((double)d[i]) + ag * fabs((double)mu[i]) > (double)FLT_MAX);
    return j;
}

int vib_kl_std_normal_backward(size_t rows, size_t k, const float *mu, const float *sigma,
                               const float *dkl, float *dmu, float *dsigma)
{
    static const char fn[] = "vib_kl_std_normal_backward";
    size_t n;
    TRY(matrix_size(fn, rows, k, &n));
    if (n == 0)
        return VIB_OK;
    TRY(VIBI_CHECK_PTRS(fn, "mu sigma dkl dmu dsigma", mu, sigma, dkl, dmu, dsigma));
    TRY(vibi_check_finite(fn, "mu", n, mu));
    TRY(vibi_check_positive(fn, "sigma", n, sigma));
    TRY(vibi_check_finite(fn, "dkl", rows, dkl));
    for (size_t r = 0; r < rows; r++) {
        const size_t o = r * k;
        size_t j = first_kl_unfit(k, mu + o, sigma + o, fabs((double)dkl[r]), dmu + o, false);
        if (j < k)
            return vibi_fail(VIB_ERR_NUMERIC, "%s: dmu[%zu] would overflow float", fn, o + j);
        j = first_kl_unfit(k, mu + o, sigma + o, fabs((double)dkl[r]), dsigma + o, true);
        if (j < k)
            return vibi_fail(VIB_ERR_NUMERIC, "%s: dsigma[%zu] would overflow float (sigma = %g)",
                             fn, o + j, (double)sigma[o + j]);
    }
    for (size_t r = 0; r < rows; r++)
        vibi_head_kl_backward(k, mu + r * k, sigma + r * k, dkl[r], dmu + r * k, dsigma + r * k,
                              NULL);
    return VIB_OK;
}

/* ---- KL(P || Q) for two diagonal Gaussians (docs/math.md#kl-between-two-gaussians) ---- */

int vib_kl_diag_gauss(size_t k, const float *mu_p, const float *sigma_p, const float *mu_q,
                      const float *sigma_q, double *kl)
{
    static const char fn[] = "vib_kl_diag_gauss";
    TRY(vibi_check_ptr(fn, "kl", kl));
    if (k > 0) {
        TRY(VIBI_CHECK_PTRS(fn, "mu_p sigma_p mu_q sigma_q", mu_p, sigma_p, mu_q, sigma_q));
        TRY(vibi_check_finite(fn, "mu_p", k, mu_p));
        TRY(vibi_check_positive(fn, "sigma_p", k, sigma_p));
        TRY(vibi_check_finite(fn, "mu_q", k, mu_q));
        TRY(vibi_check_positive(fn, "sigma_q", k, sigma_q));
    }
    double acc = 0.0;
    for (size_t j = 0; j < k; j++) {
        double sp = sigma_p[j], sq = sigma_q[j], d = (double)mu_p[j] - (double)mu_q[j];
        acc += log(sq / sp) + (sp * sp + d * d) / (2.0 * sq * sq) - 0.5;
    }
    *kl = acc;
    return VIB_OK;
}

/* ---- the sigma head: sigma = softplus(rho + offset) (docs/math.md#the-sigma-head) ---- */

/* rho + offset in double, checked to give a finite float sigma. */
static int head_input(const char *fn, size_t n, const float *rho, float offset)
{
    if (!isfinite(offset))
        return vibi_fail(VIB_ERR_NUMERIC, "%s: offset = %g is not finite", fn, (double)offset);
    TRY(vibi_check_finite(fn, "rho", n, rho));
    const size_t i = first_unfit(n, FIT_SHIFT, rho, NULL, NULL, offset);
    if (i < n)
        return vibi_fail(VIB_ERR_NUMERIC, "%s: rho[%zu] + offset overflows float", fn, i);
    return VIB_OK;
}

int vib_sigma_head_forward(size_t n, const float *rho, float offset, float *sigma,
                           float *log_sigma)
{
    static const char fn[] = "vib_sigma_head_forward";
    if (n == 0)
        return VIB_OK;
    TRY(VIBI_CHECK_PTRS(fn, "rho sigma", rho, sigma));
    TRY(head_input(fn, n, rho, offset));
    vibi_head_sigma(n, rho, offset, sigma, log_sigma);
    return VIB_OK;
}

int vib_sigma_head_backward(size_t n, const float *rho, float offset, const float *dsigma,
                            const float *dlog_sigma, float *drho)
{
    static const char fn[] = "vib_sigma_head_backward";
    if (n == 0)
        return VIB_OK;
    TRY(VIBI_CHECK_PTRS(fn, "rho drho", rho, drho));
    if (dsigma == NULL && dlog_sigma == NULL)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: dsigma and dlog_sigma are both NULL", fn);
    TRY(head_input(fn, n, rho, offset));
    if (dsigma != NULL)
        TRY(vibi_check_finite(fn, "dsigma", n, dsigma));
    if (dlog_sigma != NULL)
        TRY(vibi_check_finite(fn, "dlog_sigma", n, dlog_sigma));
    /* Both factors lie in (0, 1], so |drho| + |dsigma| + |dlog_sigma| bounds the result
     * (a missing gradient reads as 0: the other takes its place). */
    const float *g1 = dsigma ? dsigma : dlog_sigma, *g2 = dsigma && dlog_sigma ? dlog_sigma : NULL;
    const size_t i = first_unfit(n, g2 ? FIT_SUM3 : FIT_SUM, drho, g1, g2, 0.0f);
    if (i < n)
        return vibi_fail(VIB_ERR_NUMERIC, "%s: drho[%zu] would overflow float", fn, i);
    vibi_head_sigma_backward(n, rho, offset, dsigma, dlog_sigma, drho);
    return VIB_OK;
}

/* ---- ReLU ---- */

int vib_relu_forward(size_t n, const float *x, float *y)
{
    static const char fn[] = "vib_relu_forward";
    if (n == 0)
        return VIB_OK;
    TRY(VIBI_CHECK_PTRS(fn, "x y", x, y));
    TRY(vibi_check_finite(fn, "x", n, x));
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
    return VIB_OK;
}

int vib_relu_backward(size_t n, const float *x, const float *dy, float *dx)
{
    static const char fn[] = "vib_relu_backward";
    if (n == 0)
        return VIB_OK;
    TRY(VIBI_CHECK_PTRS(fn, "x dy dx", x, dy, dx));
    TRY(vibi_check_finite(fn, "x", n, x));
    TRY(vibi_check_finite(fn, "dy", n, dy));
    for (size_t i = 0; i < n; i++) /* only where the gradient passes */
        if (x[i] > 0.0f && fabs((double)dx[i]) + fabs((double)dy[i]) > (double)FLT_MAX)
            return vibi_fail(VIB_ERR_NUMERIC, "%s: dx[%zu] would overflow float", fn, i);
    for (size_t i = 0; i < n; i++)
        if (x[i] > 0.0f)
            dx[i] += dy[i];
    return VIB_OK;
}

/* ---- softmax cross-entropy (docs/math.md#softmax-cross-entropy) ---- */

double vibi_softmax_row(size_t classes, const float *l, int32_t label, float *prob)
{
    /* log sum_c e^l_c = m + log sum_c e^(l_c - m), m = max l: no term exceeds 1. */
    double m = l[0];
    for (size_t c = 1; c < classes; c++)
        m = l[c] > m ? l[c] : m;
    double s = 0.0;
    for (size_t c = 0; c < classes; c++)
        s += exp(l[c] - m);
    double lse = m + log(s), loss = lse - l[label];
    if (prob != NULL) /* after the loss: prob may be l itself */
        for (size_t c = 0; c < classes; c++)
            prob[c] = (float)exp(l[c] - lse);
    return loss;
}

int vib_softmax_xent_forward(size_t rows, size_t classes, const float *logits,
                             const int32_t *labels, float *loss, float *prob)
{
    static const char fn[] = "vib_softmax_xent_forward";
    size_t n;
    TRY(matrix_size(fn, rows, classes, &n));
    if (rows == 0)
        return VIB_OK;
    if (classes == 0)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: classes is 0", fn);
    TRY(VIBI_CHECK_PTRS(fn, "logits labels loss", logits, labels, loss));
    TRY(vibi_check_finite(fn, "logits", n, logits));
    TRY(vibi_check_labels(fn, rows, classes, labels));
    /* loss[r] = lse - l_y <= max - l_y + log(classes): check it fits before writing. */
    for (size_t r = 0; r < rows; r++) {
        const float *l = logits + r * classes;
        double m = l[0];
        for (size_t c = 1; c < classes; c++)
            m = l[c] > m ? l[c] : m;
        if (m - l[labels[r]] + log((double)classes) > (double)FLT_MAX)
            return vibi_fail(VIB_ERR_NUMERIC, "%s: loss[%zu] would overflow float", fn, r);
    }
    for (size_t r = 0; r < rows; r++)
        loss[r] = (float)vibi_softmax_row(classes, logits + r * classes, labels[r],
                                          prob ? prob + r * classes : NULL);
    return VIB_OK;
}

int vib_softmax_xent_backward(size_t rows, size_t classes, const float *prob,
                              const int32_t *labels, const float *dloss, float *dlogits)
{
    static const char fn[] = "vib_softmax_xent_backward";
    size_t n;
    TRY(matrix_size(fn, rows, classes, &n));
    if (rows == 0)
        return VIB_OK;
    if (classes == 0)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: classes is 0", fn);
    TRY(VIBI_CHECK_PTRS(fn, "prob labels dloss dlogits", prob, labels, dloss, dlogits));
    TRY(vibi_check_finite(fn, "prob", n, prob));
    for (size_t i = 0; i < n; i++)
        if (prob[i] < 0.0f || prob[i] > 1.0f)
            return vibi_fail(VIB_ERR_INVALID_ARG, "%s: prob[%zu] = %g is not a probability",
                             fn, i, (double)prob[i]);
    TRY(vibi_check_finite(fn, "dloss", rows, dloss));
    TRY(vibi_check_labels(fn, rows, classes, labels));
    /* |prob - onehot| <= 1, so |dlogits| + |dloss| bounds each result. */
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < classes; c++)
            if (fabs((double)dlogits[r * classes + c]) + fabs((double)dloss[r]) >
                (double)FLT_MAX)
                return vibi_fail(VIB_ERR_NUMERIC, "%s: dlogits[%zu] would overflow float", fn,
                                 r * classes + c);
    for (size_t r = 0; r < rows; r++) {
        const double g = dloss[r];
        float *d = dlogits + r * classes;
        for (size_t c = 0; c < classes; c++) {
            /* d lse / d l_c = softmax_c, d (-l_y) / d l_y = -1 */
            double onehot = (size_t)labels[r] == c ? 1.0 : 0.0;
            d[c] = (float)(d[c] + g * (prob[r * classes + c] - onehot));
        }
    }
    return VIB_OK;
}
