/*
 * test_cov.c - the full-covariance Gaussian nodes of lib/cov.c: z = mu + L v with a packed
 * lower-triangular L, and KL( N(mu, L L^T) || N(0, I) ).
 *
 * What is checked, one tcase per concern:
 *   gradients   both backwards against central finite differences of a random probe loss
 *               L = sum_i w_i out_i for k = 1, 2, 3 and several rows, against their closed
 *               forms in double (to ~1e-6), and that they ACCUMULATE;
 *   forward     both forwards against float64 references computed differently (the
 *               unpacked matrix product; the KL from tr and det of Sigma = L L^T formed
 *               explicitly), known values, and aliasing z == mu / z == v;
 *   diagonal    for k = 1 the nodes are the diagonal ones with sigma = L00, and with a
 *               diagonal L they are the diagonal ones for k = 3 (bit for bit);
 *   mc          2e5 samples z = mu + L v have mean mu and covariance L L^T, and the
 *               closed-form KL matches a Monte-Carlo estimate of E_q[log q - log p];
 *   bad_args    every failure mode: status, a detail naming the function and argument,
 *               untouched output / gradient buffers; results too large for a float;
 *   sizes       vib_chol_size, zero counts as no-ops accepting NULL, overflowing sizes.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests.h"

/* =====================================================================================
 * Helpers
 * =================================================================================== */

/* The probe loss, value checks and failure checks (dot_w, check_close, check_rel, outbuf,
 * BAD, WITH, ...) are in tests.h, so that this suite and test_nodes.c judge a node by
 * the same rules. */

/* Index of L[i][j] (j <= i) in a packed factor. */
static size_t tri(size_t i, size_t j)
{
    return i * (i + 1) / 2 + j;
}

/* `rows` packed k x k factors: off-diagonal ~ N(0, off_std^2), diagonal floor + |N(0, 1)|,
 * so the diagonal stays away from 0 (the KL has -log L_ii). */
static void fill_factor(uint64_t seed, size_t rows, size_t k, float off_std, float floor_,
                        float *l)
{
    const size_t ck = vib_chol_size(k);
    fill_normal(seed, rows * ck, 0.0f, 1.0f, l);
    for (size_t r = 0; r < rows; r++)
        for (size_t i = 0; i < k; i++)
            for (size_t j = 0; j <= i; j++) {
                float *x = &l[r * ck + tri(i, j)];
                *x = j == i ? floor_ + fabsf(*x) : off_std * *x;
            }
}

/* =====================================================================================
 * Gradients: central differences of L = sum_i w_i out_i
 * =================================================================================== */

/* Step 5e-3 relative. The reparameterization is affine in mu and L (no truncation
 * error); the KL's truncation error h^2 |f'''| / 6 is below 1e-4 for L_ii >= 0.5
 * (f''' = -2 / L_ii^3 from -log L_ii), and float outputs of size < 8 give the difference
 * quotient a rounding error of about ulp / 2h < 1e-4. */
#define H_REL 5e-3
#define RTOL 2e-3
#define ATOL 2e-4

enum { GR = 3, GK_MAX = 3, GN = GR * GK_MAX, GP = GR * GK_MAX * (GK_MAX + 1) / 2 };

typedef struct {
    size_t rows, k;
    float *mu, *l, *v, *w, *out;
} chol_ctx;

static double reparam_loss(void *p)
{
    chol_ctx *c = p;
    ck_assert_ok(vib_chol_reparam_forward(c->rows, c->k, c->mu, c->l, c->v, c->out));
    return dot_w(c->w, c->out, c->rows * c->k);
}

static double kl_loss(void *p)
{
    chol_ctx *c = p;
    ck_assert_ok(vib_kl_chol_std_normal(c->rows, c->k, c->mu, c->l, c->out));
    return dot_w(c->w, c->out, c->rows);
}

START_TEST(grad_chol_reparam)
{
    for (size_t k = 1; k <= GK_MAX; k++) {
        const size_t n = GR * k, p = GR * vib_chol_size(k);
        float mu[GN], l[GP], v[GN], w[GN], z[GN], dmu[GN] = {0}, dl[GP] = {0};
        char what[64];
        fill_normal(1000 + 10 * k, n, 0.0f, 1.5f, mu);
        fill_factor(1001 + 10 * k, GR, k, 0.7f, 0.2f, l);
        fill_normal(1002 + 10 * k, n, 0.0f, 1.0f, v);
        fill_normal(1003 + 10 * k, n, 0.0f, 1.0f, w);

        ck_assert_ok(vib_chol_reparam_backward(GR, k, w, v, dmu, dl));
        chol_ctx c = {GR, k, mu, l, v, w, z};
        snprintf(what, sizeof what, "chol reparam k=%zu dL/dmu", k);
        check_gradient_rel(what, reparam_loss, &c, mu, n, dmu, H_REL, RTOL, ATOL);
        snprintf(what, sizeof what, "chol reparam k=%zu dL/dl", k);
        check_gradient_rel(what, reparam_loss, &c, l, p, dl, H_REL, RTOL, ATOL);

        float pre_mu[GN], pre_l[GP], acc_mu[GN], acc_l[GP];
        fill_normal(1004 + 10 * k, n, 0.0f, 3.0f, pre_mu);
        fill_normal(1005 + 10 * k, p, 0.0f, 3.0f, pre_l);
        memcpy(acc_mu, pre_mu, sizeof acc_mu);
        memcpy(acc_l, pre_l, sizeof acc_l);
        ck_assert_ok(vib_chol_reparam_backward(GR, k, w, v, acc_mu, acc_l));
        check_accumulated("chol reparam dmu", acc_mu, pre_mu, dmu, n);
        check_accumulated("chol reparam dl", acc_l, pre_l, dl, p);
    }
}
END_TEST

START_TEST(grad_kl_chol)
{
    for (size_t k = 1; k <= GK_MAX; k++) {
        const size_t n = GR * k, p = GR * vib_chol_size(k);
        float mu[GN], l[GP], w[GR], kl[GR], dmu[GN] = {0}, dl[GP] = {0};
        char what[64];
        fill_normal(1100 + 10 * k, n, 0.0f, 1.0f, mu);
        /* diagonal in [0.5, ~3): both sides of L_ii = 1, where d/dL_ii = 0 */
        fill_factor(1101 + 10 * k, GR, k, 0.6f, 0.5f, l);
        fill_normal(1102 + 10 * k, GR, 0.0f, 1.0f, w);

        ck_assert_ok(vib_kl_chol_std_normal_backward(GR, k, mu, l, w, dmu, dl));
        chol_ctx c = {GR, k, mu, l, NULL, w, kl};
        snprintf(what, sizeof what, "kl chol k=%zu dL/dmu", k);
        check_gradient_rel(what, kl_loss, &c, mu, n, dmu, H_REL, RTOL, ATOL);
        snprintf(what, sizeof what, "kl chol k=%zu dL/dl", k);
        check_gradient_rel(what, kl_loss, &c, l, p, dl, H_REL, RTOL, ATOL);

        float pre_mu[GN], pre_l[GP], acc_mu[GN], acc_l[GP];
        fill_normal(1103 + 10 * k, n, 0.0f, 3.0f, pre_mu);
        fill_normal(1104 + 10 * k, p, 0.0f, 3.0f, pre_l);
        memcpy(acc_mu, pre_mu, sizeof acc_mu);
        memcpy(acc_l, pre_l, sizeof acc_l);
        ck_assert_ok(vib_kl_chol_std_normal_backward(GR, k, mu, l, w, acc_mu, acc_l));
        check_accumulated("kl chol dmu", acc_mu, pre_mu, dmu, n);
        check_accumulated("kl chol dl", acc_l, pre_l, dl, p);
    }
}
END_TEST

/* Finite differences resolve about 1e-3; the closed forms in double pin each backward to
 * float rounding: dmu = dz, dL_ij = dz_i v_j; dmu = dkl mu, dL_ij = dkl (L_ij - [i=j]/L_ii). */
START_TEST(backward_closed_form)
{
    enum { R = 4, K = 4, N = R * K, P = R * K * (K + 1) / 2, CK = K * (K + 1) / 2 };
    float mu[N], l[P], v[N], dz[N], dkl[R], dmu[N] = {0}, dl[P] = {0};
    fill_normal(1201, N, 0.0f, 1.0f, mu);
    fill_factor(1202, R, K, 1.0f, 0.05f, l);
    fill_normal(1203, N, 0.0f, 1.0f, v);
    fill_normal(1204, N, 0.0f, 1.0f, dz);
    fill_normal(1205, R, 0.0f, 1.0f, dkl);

    ck_assert_ok(vib_chol_reparam_backward(R, K, dz, v, dmu, dl));
    for (size_t r = 0; r < R; r++)
        for (size_t i = 0; i < K; i++) {
            check_rel("chol reparam dmu", r * K + i, dmu[r * K + i], dz[r * K + i]);
            for (size_t j = 0; j <= i; j++)
                check_rel("chol reparam dl", r * CK + tri(i, j), dl[r * CK + tri(i, j)],
                          (double)dz[r * K + i] * (double)v[r * K + j]);
        }

    memset(dmu, 0, sizeof dmu);
    memset(dl, 0, sizeof dl);
    ck_assert_ok(vib_kl_chol_std_normal_backward(R, K, mu, l, dkl, dmu, dl));
    for (size_t r = 0; r < R; r++) {
        const double g = dkl[r];
        for (size_t i = 0; i < K; i++) {
            check_rel("kl chol dmu", r * K + i, dmu[r * K + i], g * mu[r * K + i]);
            for (size_t j = 0; j <= i; j++) {
                double x = l[r * CK + tri(i, j)];
                check_rel("kl chol dl", r * CK + tri(i, j), dl[r * CK + tri(i, j)],
                          g * (j == i ? x - 1.0 / x : x));
            }
        }
    }
}
END_TEST

/* =====================================================================================
 * Forward values against float64 references
 * =================================================================================== */

/* Unpack row r's factor into a full k x k matrix (upper triangle 0). */
static void unpack(size_t k, const float *packed, double *full)
{
    for (size_t i = 0; i < k; i++)
        for (size_t j = 0; j < k; j++)
            full[i * k + j] = j <= i ? (double)packed[tri(i, j)] : 0.0;
}

START_TEST(fwd_chol_reparam)
{
    enum { R = 5, KMAX = 5 };
    float mu[R * KMAX], l[R * KMAX * (KMAX + 1) / 2], v[R * KMAX], z[R * KMAX];
    double full[KMAX * KMAX];
    for (size_t k = 1; k <= KMAX; k++) {
        const size_t ck = vib_chol_size(k);
        fill_normal(1300 + k, R * k, 0.0f, 3.0f, mu);
        fill_factor(1310 + k, R, k, 1.5f, 0.01f, l);
        fill_normal(1320 + k, R * k, 0.0f, 1.0f, v);
        ck_assert_ok(vib_chol_reparam_forward(R, k, mu, l, v, z));
        for (size_t r = 0; r < R; r++) {
            unpack(k, l + r * ck, full);
            for (size_t i = 0; i < k; i++) {
                /* the full row of L times v, summed last to first (another order) */
                double ref = 0.0, mag = fabs((double)mu[r * k + i]);
                for (size_t j = k; j-- > 0;) {
                    ref += full[i * k + j] * (double)v[r * k + j];
                    mag += fabs(full[i * k + j] * (double)v[r * k + j]);
                }
                ref += mu[r * k + i];
                /* rounded once from double: half an ulp, plus double-order noise */
                check_close("chol z", r * k + i, z[r * k + i], ref, 0.5 * FLT_EPSILON,
                            1e-14 * mag);
            }
        }
    }
    /* k = 2 by hand: L = [[2, 0], [3, 0.5]], v = (1, -2), mu = (0.25, 1):
     * z = (0.25 + 2, 1 + 3 - 1) = (2.25, 3). */
    const float m2[2] = {0.25f, 1.0f}, l2[3] = {2.0f, 3.0f, 0.5f}, v2[2] = {1.0f, -2.0f};
    float z2[2];
    ck_assert_ok(vib_chol_reparam_forward(1, 2, m2, l2, v2, z2));
    ck_assert_msg(z2[0] == 2.25f && z2[1] == 3.0f, "z = (%g, %g)", (double)z2[0],
                  (double)z2[1]);
}
END_TEST

/* z_i reads mu_i and v_0..v_i only; the library writes last to first, so z may be the
 * mu or the v buffer. */
START_TEST(fwd_chol_reparam_alias)
{
    enum { R = 3, K = 4, N = R * K, P = R * K * (K + 1) / 2 };
    float mu[N], l[P], v[N], z[N], a[N];
    fill_normal(1331, N, 0.0f, 1.0f, mu);
    fill_factor(1332, R, K, 1.0f, 0.1f, l);
    fill_normal(1333, N, 0.0f, 1.0f, v);
    ck_assert_ok(vib_chol_reparam_forward(R, K, mu, l, v, z));
    memcpy(a, mu, sizeof a);
    ck_assert_ok(vib_chol_reparam_forward(R, K, a, l, v, a));
    ck_assert_mem_eq(a, z, sizeof z);
    memcpy(a, v, sizeof a);
    ck_assert_ok(vib_chol_reparam_forward(R, K, mu, l, a, a));
    ck_assert_mem_eq(a, z, sizeof z);
}
END_TEST

/* det of a k x k matrix, k <= 3, by cofactors. */
static double det_small(size_t k, const double *s)
{
    if (k == 1)
        return s[0];
    if (k == 2)
        return s[0] * s[3] - s[1] * s[2];
    return s[0] * (s[4] * s[8] - s[5] * s[7]) - s[1] * (s[3] * s[8] - s[5] * s[6]) +
           s[2] * (s[3] * s[7] - s[4] * s[6]);
}

START_TEST(fwd_kl_chol)
{
    enum { R = 6, KMAX = 3 };
    float mu[R * KMAX], l[R * KMAX * (KMAX + 1) / 2], kl[R];
    double full[KMAX * KMAX], sig[KMAX * KMAX];
    for (size_t k = 1; k <= KMAX; k++) {
        const size_t ck = vib_chol_size(k);
        fill_normal(1400 + k, R * k, 0.0f, 2.0f, mu);
        fill_factor(1410 + k, R, k, 1.0f, 0.05f, l);
        ck_assert_ok(vib_kl_chol_std_normal(R, k, mu, l, kl));
        for (size_t r = 0; r < R; r++) {
            /* Sigma = L L^T formed explicitly; KL = 0.5 (tr Sigma + |mu|^2 - k - log det Sigma) */
            unpack(k, l + r * ck, full);
            for (size_t i = 0; i < k; i++)
                for (size_t j = 0; j < k; j++) {
                    double s = 0.0;
                    for (size_t t = 0; t < k; t++)
                        s += full[i * k + t] * full[j * k + t];
                    sig[i * k + j] = s;
                }
            double tr = 0.0, mm = 0.0;
            for (size_t i = 0; i < k; i++) {
                tr += sig[i * k + i];
                mm += (double)mu[r * k + i] * mu[r * k + i];
            }
            double ref = 0.5 * (tr + mm - (double)k - log(det_small(k, sig)));
            check_close("kl chol", r, kl[r], ref, 2e-6, 1e-6);
        }
    }
    /* Known values: L = I, mu = 0 gives 0 exactly; L = [[1, 0], [1, 1]] (Sigma =
     * [[1, 1], [1, 2]], tr 3, det 1) with mu = (1, 0) gives 0.5 (3 + 1 - 2 - 0) = 1. */
    const float mz[2] = {0.0f, 0.0f}, eye[3] = {1.0f, 0.0f, 1.0f};
    const float m1[2] = {1.0f, 0.0f}, l1[3] = {1.0f, 1.0f, 1.0f};
    float k0[1], k1[1];
    ck_assert_ok(vib_kl_chol_std_normal(1, 2, mz, eye, k0));
    ck_assert_msg(k0[0] == 0.0f, "KL(N(0, I) || N(0, I)) = %g", (double)k0[0]);
    ck_assert_ok(vib_kl_chol_std_normal(1, 2, m1, l1, k1));
    check_close("kl chol known", 0, k1[0], 1.0, 1e-7, 0.0);
    /* A negative off-diagonal is as valid as a positive one: the KL depends on L_10^2. */
    const float l1n[3] = {1.0f, -1.0f, 1.0f};
    ck_assert_ok(vib_kl_chol_std_normal(1, 2, m1, l1n, k0));
    ck_assert(k0[0] == k1[0]);
}
END_TEST

/* =====================================================================================
 * Agreement with the diagonal nodes
 * =================================================================================== */

/* k = 1: L = [sigma], and every node is its diagonal counterpart, bit for bit (both
 * compute the same double expression and round it once). */
START_TEST(diag_k1_equals_diagonal_nodes)
{
    enum { R = 16 };
    float mu[R], s[R], v[R], dz[R], dkl[R];
    fill_normal(1501, R, 0.0f, 2.0f, mu);
    fill_factor(1502, R, 1, 0.0f, 0.05f, s); /* k = 1: the packed factor is sigma itself */
    fill_normal(1503, R, 0.0f, 1.0f, v);
    fill_normal(1504, R, 0.0f, 1.0f, dz);
    fill_normal(1505, R, 0.0f, 1.0f, dkl);

    float z1[R], z2[R], kl1[R], kl2[R];
    ck_assert_ok(vib_chol_reparam_forward(R, 1, mu, s, v, z1));
    ck_assert_ok(vib_reparam_forward(R, mu, s, v, z2));
    ck_assert_mem_eq(z1, z2, sizeof z1);
    ck_assert_ok(vib_kl_chol_std_normal(R, 1, mu, s, kl1));
    ck_assert_ok(vib_kl_std_normal(R, 1, mu, s, kl2));
    ck_assert_mem_eq(kl1, kl2, sizeof kl1);

    float a_mu[R], a_s[R], b_mu[R], b_s[R];
    fill_normal(1506, R, 0.0f, 1.0f, a_mu); /* nonzero prefill: accumulation alike */
    fill_normal(1507, R, 0.0f, 1.0f, a_s);
    memcpy(b_mu, a_mu, sizeof b_mu);
    memcpy(b_s, a_s, sizeof b_s);
    ck_assert_ok(vib_chol_reparam_backward(R, 1, dz, v, a_mu, a_s));
    ck_assert_ok(vib_reparam_backward(R, dz, v, b_mu, b_s));
    ck_assert_mem_eq(a_mu, b_mu, sizeof a_mu);
    ck_assert_mem_eq(a_s, b_s, sizeof a_s);
    ck_assert_ok(vib_kl_chol_std_normal_backward(R, 1, mu, s, dkl, a_mu, a_s));
    ck_assert_ok(vib_kl_std_normal_backward(R, 1, mu, s, dkl, b_mu, b_s));
    ck_assert_mem_eq(a_mu, b_mu, sizeof a_mu);
    ck_assert_mem_eq(a_s, b_s, sizeof a_s);
}
END_TEST

/* k = 3 with a diagonal L = diag(sigma): z, KL and the gradients of mu and of the
 * diagonal are those of the diagonal nodes; the off-diagonal gradients are what the
 * full-covariance nodes add: dz_i v_j from the reparameterization, dkl * 0 = 0 from the
 * KL. */
START_TEST(diag_k3_equals_diagonal_nodes)
{
    enum { R = 5, K = 3, N = R * K, CK = 6, P = R * CK };
    float mu[N], sigma[N], l[P] = {0}, v[N], dz[N], dkl[R];
    fill_normal(1511, N, 0.0f, 2.0f, mu);
    fill_factor(1512, N, 1, 0.0f, 0.05f, sigma);
    fill_normal(1513, N, 0.0f, 1.0f, v);
    fill_normal(1514, N, 0.0f, 1.0f, dz);
    fill_normal(1515, R, 0.0f, 1.0f, dkl);
    for (size_t r = 0; r < R; r++)
        for (size_t i = 0; i < K; i++)
            l[r * CK + tri(i, i)] = sigma[r * K + i];

    float z1[N], z2[N], kl1[R], kl2[R];
    ck_assert_ok(vib_chol_reparam_forward(R, K, mu, l, v, z1));
    ck_assert_ok(vib_reparam_forward(N, mu, sigma, v, z2));
    ck_assert_mem_eq(z1, z2, sizeof z1);
    ck_assert_ok(vib_kl_chol_std_normal(R, K, mu, l, kl1));
    ck_assert_ok(vib_kl_std_normal(R, K, mu, sigma, kl2));
    ck_assert_mem_eq(kl1, kl2, sizeof kl1);

    float a_mu[N] = {0}, a_l[P] = {0}, b_mu[N] = {0}, b_s[N] = {0};
    ck_assert_ok(vib_chol_reparam_backward(R, K, dz, v, a_mu, a_l));
    ck_assert_ok(vib_reparam_backward(N, dz, v, b_mu, b_s));
    ck_assert_mem_eq(a_mu, b_mu, sizeof a_mu);
    for (size_t r = 0; r < R; r++)
        for (size_t i = 0; i < K; i++)
            for (size_t j = 0; j <= i; j++) {
                float got = a_l[r * CK + tri(i, j)];
                float want = j == i ? b_s[r * K + i]
                                    : (float)((double)dz[r * K + i] * (double)v[r * K + j]);
                ck_assert_msg(got == want, "reparam dl row %zu L[%zu][%zu]: %g vs %g", r, i,
                              j, (double)got, (double)want);
            }

    memset(a_mu, 0, sizeof a_mu);
    memset(a_l, 0, sizeof a_l);
    memset(b_mu, 0, sizeof b_mu);
    memset(b_s, 0, sizeof b_s);
    ck_assert_ok(vib_kl_chol_std_normal_backward(R, K, mu, l, dkl, a_mu, a_l));
    ck_assert_ok(vib_kl_std_normal_backward(R, K, mu, sigma, dkl, b_mu, b_s));
    ck_assert_mem_eq(a_mu, b_mu, sizeof a_mu);
    for (size_t r = 0; r < R; r++)
        for (size_t i = 0; i < K; i++)
            for (size_t j = 0; j <= i; j++) {
                float got = a_l[r * CK + tri(i, j)];
                float want = j == i ? b_s[r * K + i] : 0.0f;
                ck_assert_msg(got == want, "kl dl row %zu L[%zu][%zu]: %g vs %g", r, i, j,
                              (double)got, (double)want);
            }
}
END_TEST

/* =====================================================================================
 * Monte Carlo
 * =================================================================================== */

enum { MC = 200000 };

/* MC rows of the same posterior (mu, L) and fresh noise: z = mu + L v for every row. */
static float *mc_samples(uint64_t seed, size_t k, const float *mu0, const float *l0)
{
    const size_t ck = vib_chol_size(k);
    float *mu = malloc((size_t)MC * k * sizeof *mu), *l = malloc((size_t)MC * ck * sizeof *l);
    float *v = malloc((size_t)MC * k * sizeof *v), *z = malloc((size_t)MC * k * sizeof *z);
    ck_assert(mu != NULL && l != NULL && v != NULL && z != NULL);
    for (size_t s = 0; s < MC; s++) {
        memcpy(mu + s * k, mu0, k * sizeof *mu);
        memcpy(l + s * ck, l0, ck * sizeof *l);
    }
    fill_normal(seed, (size_t)MC * k, 0.0f, 1.0f, v);
    ck_assert_ok(vib_chol_reparam_forward(MC, k, mu, l, v, z));
    free(mu);
    free(l);
    free(v);
    return z;
}

START_TEST(mc_chol_moments)
{
    enum { K = 2 };
    /* L = [[0.8, 0], [0.6, 0.5]]: Sigma = [[0.64, 0.48], [0.48, 0.61]], correlation 0.77 */
    const float mu0[K] = {1.5f, -0.5f}, l0[3] = {0.8f, 0.6f, 0.5f};
    const double sig[K][K] = {{0.64, 0.48}, {0.48, 0.61}};
    float *z = mc_samples(1601, K, mu0, l0);
    double mean[K] = {0}, cov[K][K] = {{0}};
    for (size_t s = 0; s < MC; s++)
        for (size_t i = 0; i < K; i++)
            mean[i] += z[s * K + i];
    for (size_t i = 0; i < K; i++)
        mean[i] /= MC;
    for (size_t s = 0; s < MC; s++)
        for (size_t i = 0; i < K; i++)
            for (size_t j = 0; j < K; j++)
                cov[i][j] += (z[s * K + i] - mean[i]) * (z[s * K + j] - mean[j]);
    for (size_t i = 0; i < K; i++) {
        double se = sqrt(sig[i][i] / MC);
        ck_assert_msg(fabs(mean[i] - mu0[i]) <= 5.0 * se,
                      "sample mean[%zu] = %.6f, mu = %g (se %.2g)", i, mean[i], (double)mu0[i],
                      se);
        for (size_t j = 0; j < K; j++) {
            /* The sample covariance's standard error is sqrt((S_ii S_jj + S_ij^2) / n),
             * about 0.002 here: 2% of Sigma_ij is about 5 of them. */
            double c = cov[i][j] / (MC - 1);
            ck_assert_msg(fabs(c - sig[i][j]) <= 0.02 * fabs(sig[i][j]) + 1e-3,
                          "sample cov[%zu][%zu] = %.6f, (L L^T) = %g", i, j, c, sig[i][j]);
        }
    }
    free(z);
}
END_TEST

/* log q(z) - log p(z) for q = N(mu, L L^T), p = N(0, I); the (2 pi)^(-k/2) cancel.
 * log q(z) = -sum_i log L_ii - |u|^2 / 2 with L u = z - mu (forward substitution:
 * (z - mu)^T (L L^T)^-1 (z - mu) = |L^-1 (z - mu)|^2, and det(L L^T)^(1/2) = prod L_ii). */
static double log_ratio(size_t k, const float *mu, const float *l, const float *z)
{
    double u[8], uu = 0.0, zz = 0.0, logdet = 0.0;
    ck_assert(k <= 8);
    for (size_t i = 0; i < k; i++) {
        double d = (double)z[i] - (double)mu[i];
        for (size_t j = 0; j < i; j++)
            d -= (double)l[tri(i, j)] * u[j];
        u[i] = d / (double)l[tri(i, i)];
        uu += u[i] * u[i];
        zz += (double)z[i] * (double)z[i];
        logdet += log((double)l[tri(i, i)]);
    }
    return -logdet - 0.5 * uu + 0.5 * zz;
}

static void check_kl_mc(const char *what, uint64_t seed, size_t k, const float *mu0,
                        const float *l0)
{
    float kl;
    ck_assert_ok(vib_kl_chol_std_normal(1, k, mu0, l0, &kl));
    float *z = mc_samples(seed, k, mu0, l0);
    double sum = 0.0, sq = 0.0;
    for (size_t s = 0; s < MC; s++) {
        double x = log_ratio(k, mu0, l0, z + s * k);
        sum += x;
        sq += x * x;
    }
    free(z);
    double mean = sum / MC, var = (sq - MC * mean * mean) / (MC - 1), se = sqrt(var / MC);
    ck_assert_msg(se > 0.0, "%s: zero Monte-Carlo spread", what);
    ck_assert_msg(fabs((double)kl - mean) <= 5.0 * se,
                  "%s: closed form %.6f vs Monte Carlo %.6f +- %.6f (%.1f standard errors)",
                  what, (double)kl, mean, se, fabs((double)kl - mean) / se);
}

START_TEST(mc_kl_chol)
{
    const float mu2[2] = {0.7f, -1.2f}, l2[3] = {0.8f, 0.6f, 0.5f};
    check_kl_mc("KL k=2", 1701, 2, mu2, l2);
    const float mu3[3] = {0.3f, 0.0f, -0.8f}, l3[6] = {1.3f, -0.4f, 0.6f, 0.9f, 0.2f, 0.7f};
    check_kl_mc("KL k=3", 1702, 3, mu3, l3);
    /* strongly correlated and narrow: a large KL, far from the diagonal case */
    const float mu3b[3] = {1.0f, 1.0f, 0.0f}, l3b[6] = {0.3f, 1.5f, 0.2f, -1.0f, 0.5f, 0.25f};
    check_kl_mc("KL k=3 correlated", 1703, 3, mu3b, l3b);
}
END_TEST

/* =====================================================================================
 * Bad arguments: status, a detail naming the function and argument, untouched outputs.
 * Poison goes in the LAST element (or the last diagonal element), so a node that wrote
 * while it validated would show it.
 * =================================================================================== */

enum { BROWS = 2, BK = 3, BN = BROWS * BK, BCK = BK * (BK + 1) / 2, BP = BROWS * BCK };
#define BDIAG (BP - 1) /* L[2][2] of the last row */
#define BOFF (BP - 2)  /* L[2][1] of the last row */

static void valid_chol(float *mu, float *l, float *v)
{
    fill_normal(1801, BN, 0.0f, 1.0f, mu);
    fill_factor(1802, BROWS, BK, 1.0f, 0.2f, l);
    if (v != NULL)
        fill_normal(1803, BN, 0.0f, 1.0f, v);
}

START_TEST(bad_chol_reparam_forward)
{
    static const char fn[] = "vib_chol_reparam_forward";
    float mu[BN], l[BP], v[BN], z[BN];
    valid_chol(mu, l, v);
    const outbuf outs[] = {{"z", z, sizeof z, NULL}};
    arm_outputs(outs, 1);

#define CALL(m, f, n, o) vib_chol_reparam_forward(BROWS, BK, m, f, n, o)
    BAD(CALL(NULL, l, v, z), VIB_ERR_INVALID_ARG, "mu");
    BAD(CALL(mu, NULL, v, z), VIB_ERR_INVALID_ARG, "l");
    BAD(CALL(mu, l, NULL, z), VIB_ERR_INVALID_ARG, "v");
    BAD(CALL(mu, l, v, NULL), VIB_ERR_INVALID_ARG, "z");
    WITH(l[BDIAG], 0.0f, BAD(CALL(mu, l, v, z), VIB_ERR_INVALID_ARG, "l"));
    WITH(l[BDIAG], -0.0f, BAD(CALL(mu, l, v, z), VIB_ERR_INVALID_ARG, "l"));
    WITH(l[BDIAG], -0.5f, BAD(CALL(mu, l, v, z), VIB_ERR_INVALID_ARG, "l"));
    WITH(l[0], -0.5f, BAD(CALL(mu, l, v, z), VIB_ERR_INVALID_ARG, "l"));
    WITH(l[BDIAG], NAN, BAD(CALL(mu, l, v, z), VIB_ERR_NUMERIC, "l"));
    WITH(l[BDIAG], INFINITY, BAD(CALL(mu, l, v, z), VIB_ERR_NUMERIC, "l"));
    WITH(l[BOFF], NAN, BAD(CALL(mu, l, v, z), VIB_ERR_NUMERIC, "l"));
    WITH(l[BOFF], -INFINITY, BAD(CALL(mu, l, v, z), VIB_ERR_NUMERIC, "l"));
    WITH(mu[BN - 1], NAN, BAD(CALL(mu, l, v, z), VIB_ERR_NUMERIC, "mu"));
    WITH(mu[BN - 1], -INFINITY, BAD(CALL(mu, l, v, z), VIB_ERR_NUMERIC, "mu"));
    WITH(v[BN - 1], NAN, BAD(CALL(mu, l, v, z), VIB_ERR_NUMERIC, "v"));
    WITH(v[BN - 1], INFINITY, BAD(CALL(mu, l, v, z), VIB_ERR_NUMERIC, "v"));
    /* z = mu + L v = 2e38 + 2e38 * 1 */
    WITH2(mu[BN - 1], 2e38f, l[BDIAG], 2e38f,
          WITH(v[BN - 1], 1.0f, BAD(CALL(mu, l, v, z), VIB_ERR_NUMERIC, "z")));
    /* through an off-diagonal entry: L[2][0] v_0 = 1e30 * 1e10 */
    WITH2(l[BP - 3], 1e30f, v[BN - 3], 1e10f, BAD(CALL(mu, l, v, z), VIB_ERR_NUMERIC, "z"));

    /* the off-diagonal may be any finite value, negative included */
    WITH(l[BOFF], -7.5f, ck_assert_ok(CALL(mu, l, v, z)));
    /* fits: 2e38 + 1e38 */
    WITH2(mu[BN - 1], 2e38f, l[BDIAG], 1e38f, WITH(v[BN - 1], 1.0f, {
              l[BOFF] = l[BP - 3] = 0.0f;
              ck_assert_ok(CALL(mu, l, v, z));
              check_close("z near FLT_MAX", BN - 1, z[BN - 1], 3e38, 1e-6, 0.0);
          }));
#undef CALL
}
END_TEST

START_TEST(bad_chol_reparam_backward)
{
    static const char fn[] = "vib_chol_reparam_backward";
    float dz[BN], v[BN], dmu[BN], dl[BP];
    fill_normal(1811, BN, 0.0f, 1.0f, dz);
    fill_normal(1812, BN, 0.0f, 1.0f, v);
    const outbuf outs[] = {{"dmu", dmu, sizeof dmu, NULL}, {"dl", dl, sizeof dl, NULL}};
    arm_outputs(outs, 2);

#define CALL(g, n, gm, gl) vib_chol_reparam_backward(BROWS, BK, g, n, gm, gl)
    BAD(CALL(NULL, v, dmu, dl), VIB_ERR_INVALID_ARG, "dz");
    BAD(CALL(dz, NULL, dmu, dl), VIB_ERR_INVALID_ARG, "v");
    BAD(CALL(dz, v, NULL, dl), VIB_ERR_INVALID_ARG, "dmu");
    BAD(CALL(dz, v, dmu, NULL), VIB_ERR_INVALID_ARG, "dl");
    WITH(dz[BN - 1], NAN, BAD(CALL(dz, v, dmu, dl), VIB_ERR_NUMERIC, "dz"));
    WITH(dz[BN - 1], INFINITY, BAD(CALL(dz, v, dmu, dl), VIB_ERR_NUMERIC, "dz"));
    WITH(v[BN - 1], NAN, BAD(CALL(dz, v, dmu, dl), VIB_ERR_NUMERIC, "v"));
    WITH(v[BN - 1], -INFINITY, BAD(CALL(dz, v, dmu, dl), VIB_ERR_NUMERIC, "v"));
#undef CALL
}
END_TEST

/* Accumulations that would overflow, and ones that just fit. */
START_TEST(overflow_chol_reparam_backward)
{
    static const char fn[] = "vib_chol_reparam_backward";
    float dz[BN], v[BN], dmu[BN], dl[BP], dmu0[BN], dl0[BP];
    fill_normal(1821, BN, 0.0f, 1.0f, dz);
    fill_normal(1822, BN, 0.0f, 1.0f, v);
    const outbuf outs[] = {{"dmu", dmu, sizeof dmu, dmu0}, {"dl", dl, sizeof dl, dl0}};
    fill_const(dmu, BN, 1.0f);
    fill_const(dl, BP, 1.0f);
    memcpy(dmu0, dmu, sizeof dmu);
    memcpy(dl0, dl, sizeof dl);

    /* dl[L20] increment dz_2 v_0 = 1e30 * 1e10 */
    WITH2(dz[BN - 1], 1e30f, v[BN - 3], 1e10f,
          BAD(vib_chol_reparam_backward(BROWS, BK, dz, v, dmu, dl), VIB_ERR_NUMERIC, "dl"));
    /* dmu accumulated to FLT_MAX plus dz = 0.5 FLT_MAX (v = 0: dl stays small) */
    dmu[BN - 1] = dmu0[BN - 1] = FLT_MAX;
    fill_const(v + BK, BK, 0.0f);
    WITH(dz[BN - 1], 0.5f * FLT_MAX,
         BAD(vib_chol_reparam_backward(BROWS, BK, dz, v, dmu, dl), VIB_ERR_NUMERIC, "dmu"));
    /* dl accumulated to FLT_MAX plus 0.5 FLT_MAX * 1 */
    dmu[BN - 1] = dmu0[BN - 1] = 1.0f;
    dl[BDIAG] = dl0[BDIAG] = FLT_MAX;
    WITH2(dz[BN - 1], 0.5f * FLT_MAX, v[BN - 1], 1.0f,
          BAD(vib_chol_reparam_backward(BROWS, BK, dz, v, dmu, dl), VIB_ERR_NUMERIC, "dl"));
    /* fits: 0.5 FLT_MAX accumulated plus 0.25 FLT_MAX in both */
    dmu[BN - 1] = 0.5f * FLT_MAX;
    dl[BDIAG] = 0.5f * FLT_MAX;
    WITH2(dz[BN - 1], 0.25f * FLT_MAX, v[BN - 1], 1.0f, {
        ck_assert_ok(vib_chol_reparam_backward(BROWS, BK, dz, v, dmu, dl));
        check_close("dmu near FLT_MAX", BN - 1, dmu[BN - 1], 0.75 * FLT_MAX, 1e-6, 0.0);
        check_close("dl near FLT_MAX", BDIAG, dl[BDIAG], 0.75 * FLT_MAX, 1e-6, 0.0);
    });
}
END_TEST

START_TEST(bad_kl_chol)
{
    static const char fn[] = "vib_kl_chol_std_normal";
    float mu[BN], l[BP], kl[BROWS];
    valid_chol(mu, l, NULL);
    const outbuf outs[] = {{"kl", kl, sizeof kl, NULL}};
    arm_outputs(outs, 1);

#define CALL(m, f, o) vib_kl_chol_std_normal(BROWS, BK, m, f, o)
    BAD(CALL(NULL, l, kl), VIB_ERR_INVALID_ARG, "mu");
    BAD(CALL(mu, NULL, kl), VIB_ERR_INVALID_ARG, "l");
    BAD(CALL(mu, l, NULL), VIB_ERR_INVALID_ARG, "kl");
    WITH(l[BDIAG], 0.0f, BAD(CALL(mu, l, kl), VIB_ERR_INVALID_ARG, "l"));
    WITH(l[BDIAG], -0.0f, BAD(CALL(mu, l, kl), VIB_ERR_INVALID_ARG, "l"));
    WITH(l[BDIAG], -1.0f, BAD(CALL(mu, l, kl), VIB_ERR_INVALID_ARG, "l"));
    WITH(l[BDIAG], NAN, BAD(CALL(mu, l, kl), VIB_ERR_NUMERIC, "l"));
    WITH(l[BDIAG], INFINITY, BAD(CALL(mu, l, kl), VIB_ERR_NUMERIC, "l"));
    WITH(l[BOFF], INFINITY, BAD(CALL(mu, l, kl), VIB_ERR_NUMERIC, "l"));
    WITH(mu[BN - 1], NAN, BAD(CALL(mu, l, kl), VIB_ERR_NUMERIC, "mu"));
    WITH(mu[BN - 1], INFINITY, BAD(CALL(mu, l, kl), VIB_ERR_NUMERIC, "mu"));
    /* results too large for a float: mu^2 / 2 = 5e39, and the same through L[2][1]^2 / 2 */
    WITH(mu[BN - 1], 1e20f, BAD(CALL(mu, l, kl), VIB_ERR_NUMERIC, "kl"));
    WITH(l[BOFF], 1e20f, BAD(CALL(mu, l, kl), VIB_ERR_NUMERIC, "kl"));
    WITH(l[BDIAG], 1e20f, BAD(CALL(mu, l, kl), VIB_ERR_NUMERIC, "kl"));

    ck_assert_ok(CALL(mu, l, kl));
    /* fits: L[2][1] = 1e19 adds 5e37 */
    WITH(l[BOFF], 1e19f, {
        ck_assert_ok(CALL(mu, l, kl));
        check_close("kl near FLT_MAX", BROWS - 1, kl[BROWS - 1], 5e37, 1e-6, 0.0);
    });
#undef CALL
}
END_TEST

START_TEST(bad_kl_chol_backward)
{
    static const char fn[] = "vib_kl_chol_std_normal_backward";
    float mu[BN], l[BP], dkl[BROWS], dmu[BN], dl[BP];
    valid_chol(mu, l, NULL);
    fill_normal(1831, BROWS, 0.0f, 1.0f, dkl);
    const outbuf outs[] = {{"dmu", dmu, sizeof dmu, NULL}, {"dl", dl, sizeof dl, NULL}};
    arm_outputs(outs, 2);

#define CALL(m, f, d, gm, gl) vib_kl_chol_std_normal_backward(BROWS, BK, m, f, d, gm, gl)
    BAD(CALL(NULL, l, dkl, dmu, dl), VIB_ERR_INVALID_ARG, "mu");
    BAD(CALL(mu, NULL, dkl, dmu, dl), VIB_ERR_INVALID_ARG, "l");
    BAD(CALL(mu, l, NULL, dmu, dl), VIB_ERR_INVALID_ARG, "dkl");
    BAD(CALL(mu, l, dkl, NULL, dl), VIB_ERR_INVALID_ARG, "dmu");
    BAD(CALL(mu, l, dkl, dmu, NULL), VIB_ERR_INVALID_ARG, "dl");
    WITH(l[BDIAG], 0.0f, BAD(CALL(mu, l, dkl, dmu, dl), VIB_ERR_INVALID_ARG, "l"));
    WITH(l[BDIAG], -2.0f, BAD(CALL(mu, l, dkl, dmu, dl), VIB_ERR_INVALID_ARG, "l"));
    WITH(l[BDIAG], NAN, BAD(CALL(mu, l, dkl, dmu, dl), VIB_ERR_NUMERIC, "l"));
    WITH(l[BOFF], -INFINITY, BAD(CALL(mu, l, dkl, dmu, dl), VIB_ERR_NUMERIC, "l"));
    WITH(mu[BN - 1], -INFINITY, BAD(CALL(mu, l, dkl, dmu, dl), VIB_ERR_NUMERIC, "mu"));
    WITH(dkl[BROWS - 1], NAN, BAD(CALL(mu, l, dkl, dmu, dl), VIB_ERR_NUMERIC, "dkl"));
    WITH(dkl[BROWS - 1], INFINITY, BAD(CALL(mu, l, dkl, dmu, dl), VIB_ERR_NUMERIC, "dkl"));
#undef CALL
}
END_TEST

START_TEST(overflow_kl_chol_backward)
{
    static const char fn[] = "vib_kl_chol_std_normal_backward";
    float mu[BN], l[BP], dkl[BROWS], dmu[BN], dl[BP], dmu0[BN], dl0[BP];
    valid_chol(mu, l, NULL);
    /* The last row tame, so that only the entry under test can overflow when dkl is
     * near FLT_MAX: mu_i = 0.5, L = [[1, 0, 0], [0.5, 1, 0], [0.5, 1, 1]] (the diagonal
     * 1, where L_ii + 1/L_ii = 2 and L_ii - 1/L_ii = 0). */
    for (size_t i = 0; i < BK; i++)
        mu[BK + i] = 0.5f;
    for (size_t i = 0; i < BCK; i++)
        l[BCK + i] = 0.5f;
    l[BCK + 0] = l[BCK + 2] = l[BDIAG] = l[BOFF] = 1.0f;
    fill_const(dkl, BROWS, 1.0f);
    const outbuf outs[] = {{"dmu", dmu, sizeof dmu, dmu0}, {"dl", dl, sizeof dl, dl0}};
    fill_const(dmu, BN, 0.0f);
    fill_const(dl, BP, 0.0f);
    memcpy(dmu0, dmu, sizeof dmu);
    memcpy(dl0, dl, sizeof dl);

#define CALL() vib_kl_chol_std_normal_backward(BROWS, BK, mu, l, dkl, dmu, dl)
    /* A subnormal diagonal (an underflowed softplus) is positive and accepted by the
     * forward, but d/dL_ii = L_ii - 1/L_ii ~ -1e40. */
    WITH(l[BDIAG], 1e-40f, BAD(CALL(), VIB_ERR_NUMERIC, "dl"));
    /* dmu increment dkl * mu = 1e30 * 1e30 */
    WITH2(dkl[BROWS - 1], 1e30f, mu[BN - 1], 1e30f, BAD(CALL(), VIB_ERR_NUMERIC, "dmu"));
    /* off-diagonal increment dkl * L_21 = 1e30 * 1e30 */
    WITH2(dkl[BROWS - 1], 1e30f, l[BOFF], 1e30f, BAD(CALL(), VIB_ERR_NUMERIC, "dl"));
    /* dl accumulated to FLT_MAX plus dkl * L_21 = 0.5 FLT_MAX */
    dl[BOFF] = dl0[BOFF] = FLT_MAX;
    WITH2(dkl[BROWS - 1], 0.5f * FLT_MAX, l[BOFF], 1.0f, BAD(CALL(), VIB_ERR_NUMERIC, "dl"));
    /* fits: 0.5 FLT_MAX + 0.25 FLT_MAX (the other entries of the row get at most
     * 0.25 FLT_MAX: the tame row above) */
    dl[BOFF] = 0.5f * FLT_MAX;
    WITH2(dkl[BROWS - 1], 0.25f * FLT_MAX, l[BOFF], 1.0f, {
        ck_assert_ok(CALL());
        check_close("dl near FLT_MAX", BOFF, dl[BOFF], 0.75 * FLT_MAX, 1e-6, 0.0);
    });
#undef CALL
}
END_TEST

/* =====================================================================================
 * Sizes
 * =================================================================================== */

START_TEST(chol_size_values)
{
    ck_assert_uint_eq(vib_chol_size(0), 0);
    ck_assert_uint_eq(vib_chol_size(1), 1);
    ck_assert_uint_eq(vib_chol_size(2), 3);
    ck_assert_uint_eq(vib_chol_size(3), 6);
    ck_assert_uint_eq(vib_chol_size(4), 10);
    ck_assert_uint_eq(vib_chol_size(256), 32896);
    /* k(k+1)/2 > SIZE_MAX gives 0, including where k + 1 itself wraps */
    ck_assert_uint_eq(vib_chol_size(SIZE_MAX), 0);
    ck_assert_uint_eq(vib_chol_size(SIZE_MAX - 1), 0);
    ck_assert_uint_eq(vib_chol_size(SIZE_MAX / 2), 0);
#if SIZE_MAX == UINT64_MAX
    /* the largest k that fits: 6074000999 * 6074001000 / 2 = 18446744070963499500 */
    ck_assert_uint_eq(vib_chol_size(6074000999u), 18446744070963499500u);
    ck_assert_uint_eq(vib_chol_size(6074001000u), 0);
    ck_assert_uint_eq(vib_chol_size((size_t)1 << 32), ((size_t)1 << 31) * (((size_t)1 << 32) + 1));
#endif
}
END_TEST

START_TEST(size_zero)
{
    /* No rows: nothing to read or write, NULLs accepted. */
    ck_assert_ok(vib_chol_reparam_forward(0, 3, NULL, NULL, NULL, NULL));
    ck_assert_ok(vib_chol_reparam_backward(0, 3, NULL, NULL, NULL, NULL));
    ck_assert_ok(vib_kl_chol_std_normal(0, 3, NULL, NULL, NULL));
    ck_assert_ok(vib_kl_chol_std_normal_backward(0, 3, NULL, NULL, NULL, NULL, NULL));
    ck_assert_ok(vib_chol_reparam_forward(0, 0, NULL, NULL, NULL, NULL));
    ck_assert_ok(vib_kl_chol_std_normal(0, 0, NULL, NULL, NULL));
    /* k = 0 latents: the [rows x 0] buffers may be NULL; the KL is an empty sum, 0. */
    ck_assert_ok(vib_chol_reparam_forward(4, 0, NULL, NULL, NULL, NULL));
    ck_assert_ok(vib_chol_reparam_backward(4, 0, NULL, NULL, NULL, NULL));
    float kl[2] = {5.0f, 5.0f};
    ck_assert_ok(vib_kl_chol_std_normal(2, 0, NULL, NULL, kl));
    ck_assert_msg(kl[0] == 0.0f && kl[1] == 0.0f, "KL over 0 latents = %g, %g", (double)kl[0],
                  (double)kl[1]);
    const float dkl[2] = {1.0f, 1.0f};
    ck_assert_ok(vib_kl_chol_std_normal_backward(2, 0, NULL, NULL, dkl, NULL, NULL));
    /* ...but the KL output itself is needed when there are rows */
    {
        static const char fn[] = "vib_kl_chol_std_normal";
        const outbuf outs[] = {{"kl", kl, sizeof kl, NULL}};
        arm_outputs(outs, 1);
        BAD(vib_kl_chol_std_normal(2, 0, NULL, NULL, NULL), VIB_ERR_INVALID_ARG, "kl");
    }
    /* Real buffers with a zero count are left alone. */
    float buf[6], pristine[6];
    fill_normal(1901, 6, 0.5f, 0.1f, buf);
    memcpy(pristine, buf, sizeof buf);
    ck_assert_ok(vib_chol_reparam_forward(0, 2, buf, buf, buf, buf));
    ck_assert_ok(vib_chol_reparam_forward(2, 0, buf, buf, buf, buf));
    ck_assert_ok(vib_chol_reparam_backward(0, 2, buf, buf, buf, buf));
    ck_assert_ok(vib_chol_reparam_backward(2, 0, buf, buf, buf, buf));
    ck_assert_ok(vib_kl_chol_std_normal(0, 2, buf, buf, buf));
    ck_assert_ok(vib_kl_chol_std_normal_backward(0, 2, buf, buf, buf, buf, buf));
    ck_assert_ok(vib_kl_chol_std_normal_backward(2, 0, buf, buf, buf, buf, buf));
    ck_assert(memcmp(buf, pristine, sizeof buf) == 0);
}
END_TEST

/* Sizes that overflow size_t are refused before any buffer is touched (the small
 * buffers here would be overrun by a node that trusted a wrapped size). */
START_TEST(size_overflow)
{
    const size_t big = SIZE_MAX / 2;     /* big * 3 wraps */
    const size_t quarter = SIZE_MAX / 4; /* quarter * 3 fits, quarter * 6 wraps */
    const size_t huge_k = SIZE_MAX / 2;  /* k(k+1)/2 wraps, rows * k does not for rows 1 */
    float mu[BN], l[BP], v[BN], dkl[BROWS], z[BN], kl[BROWS], dmu[BN], dl[BP];
    valid_chol(mu, l, v);
    fill_normal(1911, BROWS, 0.0f, 1.0f, dkl);
    const outbuf outs[] = {{"z", z, sizeof z, NULL},
                           {"kl", kl, sizeof kl, NULL},
                           {"dmu", dmu, sizeof dmu, NULL},
                           {"dl", dl, sizeof dl, NULL}};
    arm_outputs(outs, sizeof outs / sizeof outs[0]);

    const size_t rows_k[][2] = {{big, 3}, {quarter, 3}, {1, huge_k}, {0, huge_k},
                                {2, SIZE_MAX}};
    for (size_t c = 0; c < sizeof rows_k / sizeof rows_k[0]; c++) {
        const size_t rows = rows_k[c][0], k = rows_k[c][1];
        {
            static const char fn[] = "vib_chol_reparam_forward";
            BAD(vib_chol_reparam_forward(rows, k, mu, l, v, z), VIB_ERR_INVALID_ARG, NULL);
        }
        {
            static const char fn[] = "vib_chol_reparam_backward";
            BAD(vib_chol_reparam_backward(rows, k, v, v, dmu, dl), VIB_ERR_INVALID_ARG, NULL);
        }
        {
            static const char fn[] = "vib_kl_chol_std_normal";
            BAD(vib_kl_chol_std_normal(rows, k, mu, l, kl), VIB_ERR_INVALID_ARG, NULL);
        }
        {
            static const char fn[] = "vib_kl_chol_std_normal_backward";
            BAD(vib_kl_chol_std_normal_backward(rows, k, mu, l, dkl, dmu, dl),
                VIB_ERR_INVALID_ARG, NULL);
        }
    }
}
END_TEST

/* =====================================================================================
 * Suite
 * =================================================================================== */

Suite *make_cov_suite(void)
{
    Suite *s = suite_create("cov");

    TCase *grad = tcase_create("gradients");
    tcase_add_test(grad, grad_chol_reparam);
    tcase_add_test(grad, grad_kl_chol);
    tcase_add_test(grad, backward_closed_form);
    suite_add_tcase(s, grad);

    TCase *fwd = tcase_create("forward");
    tcase_add_test(fwd, fwd_chol_reparam);
    tcase_add_test(fwd, fwd_chol_reparam_alias);
    tcase_add_test(fwd, fwd_kl_chol);
    suite_add_tcase(s, fwd);

    TCase *diag = tcase_create("diagonal");
    tcase_add_test(diag, diag_k1_equals_diagonal_nodes);
    tcase_add_test(diag, diag_k3_equals_diagonal_nodes);
    suite_add_tcase(s, diag);

    TCase *mc = tcase_create("mc");
    tcase_add_test(mc, mc_chol_moments);
    tcase_add_test(mc, mc_kl_chol);
    tcase_set_timeout(mc, 30); /* generous for sanitizer builds */
    suite_add_tcase(s, mc);

    TCase *bad = tcase_create("bad_args");
    tcase_add_test(bad, bad_chol_reparam_forward);
    tcase_add_test(bad, bad_chol_reparam_backward);
    tcase_add_test(bad, overflow_chol_reparam_backward);
    tcase_add_test(bad, bad_kl_chol);
    tcase_add_test(bad, bad_kl_chol_backward);
    tcase_add_test(bad, overflow_kl_chol_backward);
    suite_add_tcase(s, bad);

    TCase *sizes = tcase_create("sizes");
    tcase_add_test(sizes, chol_size_values);
    tcase_add_test(sizes, size_zero);
    tcase_add_test(sizes, size_overflow);
    suite_add_tcase(s, sizes);

    return s;
}
