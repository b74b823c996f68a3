/*
 * test_nodes.c - the pure nodes of lib/nodes.c: reparameterization, the Gaussian KLs,
 * the sigma head, ReLU and softmax cross-entropy.
 *
 * What is checked, one tcase per concern:
 *   gradients        every backward against central finite differences of a random
 *                    probe loss L = sum_i w_i out_i (so the backward is driven with
 *                    dout = w), and that every backward ACCUMULATES into its buffers;
 *   forward          every forward against a float64 reference computed here, including
 *                    the numerically hard regions (sigma-head tail, huge logits);
 *   kl_mc            the closed-form KLs against Monte-Carlo estimates (2e5 samples);
 *   kl_values        known KL values, asymmetry, KL(P||P) = 0, Gibbs' inequality;
 *   reparam_mc       moments of reparameterized samples;
 *   bad_args         every failure mode of every node: status, an error detail naming
 *                    the function and argument, and untouched output / gradient buffers;
 *   output_overflow  a result (an accumulated gradient included) too large for a float
 *                    is VIB_ERR_NUMERIC with untouched buffers; one that fits is accepted;
 *   sizes            a zero count is a no-op accepting NULL; rows * cols overflowing
 *                    size_t is VIB_ERR_INVALID_ARG.
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
 * BAD, WITH, ...) are in tests.h, so that this suite and test_cov.c judge a node by
 * the same rules. */

/* Draws mapped to |N(0, std^2)| + floor: strictly positive, away from 0 (for sigmas). */
static void fill_positive(uint64_t seed, size_t n, float floor_, float std, float *out)
{
    fill_normal(seed, n, 0.0f, std, out);
    for (size_t i = 0; i < n; i++)
        out[i] = floor_ + fabsf(out[i]);
}

static int32_t *fill_labels(uint64_t seed, size_t rows, size_t classes, int32_t *labels)
{
    vib_rng *rng = NULL;
    ck_assert_ok(vib_rng_create(seed, &rng));
    for (size_t r = 0; r < rows; r++) {
        uint64_t u;
        ck_assert_ok(vib_rng_u64(rng, &u));
        labels[r] = (int32_t)(u % classes);
    }
    vib_rng_free(rng);
    return labels;
}

/* WITH (tests.h) for an int32_t label. */
#define WITH_LABEL(lvalue, value, stmt) WITH_TYPED(int32_t, lvalue, value, stmt)

/* ---- float64 references ------------------------------------------------------------ */

/* softplus(x) = log(1 + e^x); log1p keeps the x < 0 side exact, and for 0 <= x < 700
 * 1 + e^x has no cancellation. (Written differently from the library on purpose.) */
static double ref_softplus(double x)
{
    return x < 0.0 ? log1p(exp(x)) : log(1.0 + exp(x));
}

/* log softplus(x); for x < -700 exp underflows double, and log softplus(x) = x + O(e^x). */
static double ref_log_softplus(double x)
{
    return x < -700.0 ? x : log(ref_softplus(x));
}

/* d/dx log softplus(x) = sigmoid(x) / softplus(x) = e^x / ((1 + e^x) log(1 + e^x)),
 * tending to 1 as x -> -inf. */
static double ref_dlog_softplus(double x)
{
    if (x < -700.0)
        return 1.0;
    double e = exp(x);
    return e / ((1.0 + e) * ref_softplus(x));
}

static double ref_sigmoid(double x)
{
    return 1.0 / (1.0 + exp(-x));
}

/* KL(N(mp, sp^2) || N(mq, sq^2)) for one dimension. */
static double ref_kl1(double mp, double sp, double mq, double sq)
{
    double d = mp - mq;
    return log(sq) - log(sp) + (sp * sp + d * d) / (2.0 * sq * sq) - 0.5;
}

/* =====================================================================================
 * Gradients: central differences of L = sum_i w_i out_i
 * =================================================================================== */

/* Step 1e-3 relative; float outputs give the difference quotient an absolute error of
 * about |w| ulp(out) / 2h ~ 1e-4, and truncation error h^2 f'''/6 is below 1e-6. */
#define H_REL 1e-3
#define RTOL 2e-3
#define ATOL 2e-4

/* ---- reparameterization ---- */

typedef struct {
    size_t n;
    float *mu, *sigma, *v, *w, *z;
} reparam_ctx;

static double reparam_loss(void *p)
{
    reparam_ctx *c = p;
    ck_assert_ok(vib_reparam_forward(c->n, c->mu, c->sigma, c->v, c->z));
    return dot_w(c->w, c->z, c->n);
}

START_TEST(grad_reparam)
{
    enum { N = 16 };
    float mu[N], sigma[N], v[N], w[N], z[N];
    float dmu[N] = {0}, dsigma[N] = {0};
    fill_normal(101, N, 0.0f, 2.0f, mu);
    fill_positive(102, N, 0.2f, 1.0f, sigma);
    fill_normal(103, N, 0.0f, 1.0f, v);
    fill_normal(104, N, 0.0f, 1.0f, w);

    ck_assert_ok(vib_reparam_backward(N, w, v, dmu, dsigma));
    reparam_ctx c = {N, mu, sigma, v, w, z};
    check_gradient_rel("reparam dL/dmu", reparam_loss, &c, mu, N, dmu, H_REL, RTOL, ATOL);
    check_gradient_rel("reparam dL/dsigma", reparam_loss, &c, sigma, N, dsigma, H_REL, RTOL,
                       ATOL);

    float pre_mu[N], pre_sigma[N], acc_mu[N], acc_sigma[N];
    fill_normal(105, N, 0.0f, 3.0f, pre_mu);
    fill_normal(106, N, 0.0f, 3.0f, pre_sigma);
    memcpy(acc_mu, pre_mu, sizeof acc_mu);
    memcpy(acc_sigma, pre_sigma, sizeof acc_sigma);
    ck_assert_ok(vib_reparam_backward(N, w, v, acc_mu, acc_sigma));
    check_accumulated("reparam dmu", acc_mu, pre_mu, dmu, N);
    check_accumulated("reparam dsigma", acc_sigma, pre_sigma, dsigma, N);
}
END_TEST

/* ---- KL to the standard normal ---- */

typedef struct {
    size_t rows, k;
    float *mu, *sigma, *w, *kl;
} klstd_ctx;

static double klstd_loss(void *p)
{
    klstd_ctx *c = p;
    ck_assert_ok(vib_kl_std_normal(c->rows, c->k, c->mu, c->sigma, c->kl));
    return dot_w(c->w, c->kl, c->rows);
}

START_TEST(grad_kl_std_normal)
{
    enum { ROWS = 3, K = 4, N = ROWS * K };
    float mu[N], sigma[N], w[ROWS], kl[ROWS];
    float dmu[N] = {0}, dsigma[N] = {0};
    fill_normal(111, N, 0.0f, 1.5f, mu);
    fill_positive(112, N, 0.3f, 1.0f, sigma); /* both sides of sigma = 1, where d/dsigma = 0 */
    fill_normal(113, ROWS, 0.0f, 1.0f, w);

    ck_assert_ok(vib_kl_std_normal_backward(ROWS, K, mu, sigma, w, dmu, dsigma));
    klstd_ctx c = {ROWS, K, mu, sigma, w, kl};
    check_gradient_rel("kl_std_normal dL/dmu", klstd_loss, &c, mu, N, dmu, H_REL, RTOL, ATOL);
    check_gradient_rel("kl_std_normal dL/dsigma", klstd_loss, &c, sigma, N, dsigma, H_REL, RTOL,
                       ATOL);

    float pre_mu[N], pre_sigma[N], acc_mu[N], acc_sigma[N];
    fill_normal(114, N, 0.0f, 3.0f, pre_mu);
    fill_normal(115, N, 0.0f, 3.0f, pre_sigma);
    memcpy(acc_mu, pre_mu, sizeof acc_mu);
    memcpy(acc_sigma, pre_sigma, sizeof acc_sigma);
    ck_assert_ok(vib_kl_std_normal_backward(ROWS, K, mu, sigma, w, acc_mu, acc_sigma));
    check_accumulated("kl_std_normal dmu", acc_mu, pre_mu, dmu, N);
    check_accumulated("kl_std_normal dsigma", acc_sigma, pre_sigma, dsigma, N);
}
END_TEST

/* ---- sigma head ---- */

typedef struct {
    size_t n;
    float *rho;
    float offset;
    const float *w_sigma, *w_log; /* either may be NULL: that output is not in L */
    float *sigma, *log_sigma;
} head_ctx;

static double head_loss(void *p)
{
    head_ctx *c = p;
    ck_assert_ok(vib_sigma_head_forward(c->n, c->rho, c->offset, c->sigma, c->log_sigma));
    double l = 0.0;
    if (c->w_sigma != NULL)
        l += dot_w(c->w_sigma, c->sigma, c->n);
    if (c->w_log != NULL)
        l += dot_w(c->w_log, c->log_sigma, c->n);
    return l;
}

/* rho + offset (offset -5) covering the far tail, both sides of the library's tail
 * switch, the bend of the softplus and its linear part. */
#define HEAD_OFFSET (-5.0f)
static const float head_x[] = {-200.0f, -100.0f, -40.0f, -31.0f, -29.0f, -12.0f, -5.0f,
                               -1.5f,   -0.3f,   0.0f,   0.4f,   2.0f,   6.0f,   20.0f};
enum { HEAD_N = sizeof head_x / sizeof head_x[0] };

static void head_rho(float *rho)
{
    for (size_t i = 0; i < HEAD_N; i++)
        rho[i] = head_x[i] - HEAD_OFFSET;
}

/* Drives the backward with the given upstream gradients, checks against finite
 * differences of the matching probe loss, then checks accumulation. */
static void head_grad_case(const char *what, float *rho, size_t n, float offset,
                           const float *w_sigma, const float *w_log, double atol)
{
    float drho[HEAD_N] = {0}, sigma[HEAD_N], log_sigma[HEAD_N];
    ck_assert(n <= HEAD_N);
    ck_assert_ok(vib_sigma_head_backward(n, rho, offset, w_sigma, w_log, drho));
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(isfinite(drho[i]), "%s: drho[%zu] = %g", what, i, (double)drho[i]);
    head_ctx c = {n, rho, offset, w_sigma, w_log, sigma, log_sigma};
    check_gradient_rel(what, head_loss, &c, rho, n, drho, H_REL, RTOL, atol);

    float pre[HEAD_N], acc[HEAD_N];
    fill_normal(129, n, 0.0f, 2.0f, pre);
    memcpy(acc, pre, sizeof acc);
    ck_assert_ok(vib_sigma_head_backward(n, rho, offset, w_sigma, w_log, acc));
    check_accumulated(what, acc, pre, drho, n);
}

START_TEST(grad_sigma_head_sigma)
{
    float rho[HEAD_N], w[HEAD_N];
    head_rho(rho);
    fill_normal(121, HEAD_N, 0.0f, 1.0f, w);
    head_grad_case("sigma head via sigma", rho, HEAD_N, HEAD_OFFSET, w, NULL, ATOL);

    /* In the tail dsigma/drho = sigmoid(x) ~ e^x is tiny, so the absolute tolerance above
     * says nothing there. Check the tail alone with a purely relative tolerance (alone,
     * because a term of size ~20 in L would drown e^-40 in double rounding). */
    float tail_rho[] = {-40.0f, -37.5f, -33.0f, -30.5f, -29.5f, -26.0f};
    enum { T = sizeof tail_rho / sizeof tail_rho[0] };
    float tail_w[T];
    fill_normal(122, T, 0.0f, 1.0f, tail_w);
    for (size_t i = 0; i < T; i++)
        tail_rho[i] -= HEAD_OFFSET; /* so rho + offset takes the listed values */
    head_grad_case("sigma head via sigma, tail", tail_rho, T, HEAD_OFFSET, tail_w, NULL, 0.0);
}
END_TEST

START_TEST(grad_sigma_head_log_sigma)
{
    /* Includes rho + offset = -40, -100, -200: d log sigma / drho must stay ~1 there
     * although sigma is tiny or has underflowed to 0. */
    float rho[HEAD_N], w[HEAD_N];
    head_rho(rho);
    fill_normal(123, HEAD_N, 0.0f, 1.0f, w);
    head_grad_case("sigma head via log_sigma", rho, HEAD_N, HEAD_OFFSET, NULL, w, ATOL);

    /* Same points with offset 0: the split of x between rho and offset is immaterial. */
    float rho0[HEAD_N];
    memcpy(rho0, head_x, sizeof rho0);
    head_grad_case("sigma head via log_sigma, offset 0", rho0, HEAD_N, 0.0f, NULL, w, ATOL);
}
END_TEST

START_TEST(grad_sigma_head_both)
{
    float rho[HEAD_N], ws[HEAD_N], wl[HEAD_N];
    head_rho(rho);
    fill_normal(124, HEAD_N, 0.0f, 1.0f, ws);
    fill_normal(125, HEAD_N, 0.0f, 1.0f, wl);
    head_grad_case("sigma head via sigma and log_sigma", rho, HEAD_N, HEAD_OFFSET, ws, wl, ATOL);
}
END_TEST

/* The tail values directly: drho for dlog_sigma = 1 is sigmoid(x)/softplus(x) -> 1 and
 * must be finite even where sigma has underflowed; for dsigma = 1 it is sigmoid(x). */
START_TEST(grad_sigma_head_tail_values)
{
    static const float xs[] = {-20.0f, -29.99f, -30.01f, -40.0f, -87.0f,
                               -100.0f, -200.0f, -1000.0f, -1e6f};
    enum { T = sizeof xs / sizeof xs[0] };
    float rho[T], ones[T], d_log[T] = {0}, d_sig[T] = {0};
    fill_const(ones, T, 1.0f);
    for (size_t i = 0; i < T; i++)
        rho[i] = xs[i] - HEAD_OFFSET;
    ck_assert_ok(vib_sigma_head_backward(T, rho, HEAD_OFFSET, NULL, ones, d_log));
    ck_assert_ok(vib_sigma_head_backward(T, rho, HEAD_OFFSET, ones, NULL, d_sig));
    for (size_t i = 0; i < T; i++) {
        double x = (double)rho[i] + (double)HEAD_OFFSET;
        check_close("dlog_sigma/drho", i, d_log[i], ref_dlog_softplus(x), 1e-6, 0.0);
        double s = ref_sigmoid(x);
        ck_assert_msg(isfinite(d_sig[i]) && d_sig[i] >= 0.0f &&
                          fabs((double)d_sig[i] - s) <= 1e-6 * s + FLT_TRUE_MIN,
                      "dsigma/drho[%zu] at x = %g: got %g, reference %g", i, x,
                      (double)d_sig[i], s);
    }
}
END_TEST

/* ---- ReLU ---- */

typedef struct {
    size_t n;
    float *x, *w, *y;
} relu_ctx;

static double relu_loss(void *p)
{
    relu_ctx *c = p;
    ck_assert_ok(vib_relu_forward(c->n, c->x, c->y));
    return dot_w(c->w, c->y, c->n);
}

START_TEST(grad_relu)
{
    enum { N = 24 };
    float x[N], w[N], y[N], dx[N] = {0}, dx_out[N] = {0};
    fill_normal(131, N, 0.0f, 1.0f, x);
    /* Keep |x| >= 0.1 so no difference step (<= 1e-3 |x|) crosses the kink at 0. */
    for (size_t i = 0; i < N; i++)
        x[i] = copysignf(0.1f + fabsf(x[i]), x[i]);
    fill_normal(132, N, 0.0f, 1.0f, w);

    ck_assert_ok(vib_relu_backward(N, x, w, dx));
    relu_ctx c = {N, x, w, y};
    check_gradient_rel("relu dL/dx", relu_loss, &c, x, N, dx, H_REL, RTOL, ATOL);

    /* The backward may be given the forward's output instead of its input. */
    ck_assert_ok(vib_relu_forward(N, x, y));
    ck_assert_ok(vib_relu_backward(N, y, w, dx_out));
    for (size_t i = 0; i < N; i++)
        ck_assert_msg(dx_out[i] == dx[i], "relu backward from y differs at %zu", i);

    float pre[N], acc[N];
    fill_normal(133, N, 0.0f, 3.0f, pre);
    memcpy(acc, pre, sizeof acc);
    ck_assert_ok(vib_relu_backward(N, x, w, acc));
    check_accumulated("relu dx", acc, pre, dx, N);
}
END_TEST

/* ---- softmax cross-entropy ---- */

typedef struct {
    size_t rows, classes;
    float *logits;
    const int32_t *labels;
    float *w, *loss;
} xent_ctx;

static double xent_loss(void *p)
{
    xent_ctx *c = p;
    ck_assert_ok(
        vib_softmax_xent_forward(c->rows, c->classes, c->logits, c->labels, c->loss, NULL));
    return dot_w(c->w, c->loss, c->rows);
}

START_TEST(grad_softmax_xent)
{
    enum { ROWS = 4, C = 5, N = ROWS * C };
    float logits[N], prob[N], loss[ROWS], w[ROWS], dlogits[N] = {0};
    int32_t labels[ROWS];
    fill_normal(141, N, 0.0f, 2.0f, logits);
    fill_normal(142, ROWS, 0.0f, 1.0f, w);
    fill_labels(143, ROWS, C, labels);

    ck_assert_ok(vib_softmax_xent_forward(ROWS, C, logits, labels, loss, prob));
    ck_assert_ok(vib_softmax_xent_backward(ROWS, C, prob, labels, w, dlogits));
    xent_ctx c = {ROWS, C, logits, labels, w, loss};
    check_gradient_rel("softmax_xent dL/dlogits", xent_loss, &c, logits, N, dlogits, H_REL, RTOL,
                       ATOL);

    float pre[N], acc[N];
    fill_normal(144, N, 0.0f, 3.0f, pre);
    memcpy(acc, pre, sizeof acc);
    ck_assert_ok(vib_softmax_xent_backward(ROWS, C, prob, labels, w, acc));
    check_accumulated("softmax_xent dlogits", acc, pre, dlogits, N);
}
END_TEST

/* =====================================================================================
 * Forward values against float64 references
 * =================================================================================== */

START_TEST(fwd_reparam)
{
    enum { N = 32 };
    float mu[N], sigma[N], v[N], z[N];
    fill_normal(201, N, 0.0f, 3.0f, mu);
    fill_positive(202, N, 0.01f, 2.0f, sigma);
    fill_normal(203, N, 0.0f, 1.0f, v);
    ck_assert_ok(vib_reparam_forward(N, mu, sigma, v, z));
    for (size_t i = 0; i < N; i++) {
        double sv = (double)sigma[i] * (double)v[i], ref = (double)mu[i] + sv;
        /* two float roundings, each relative to the larger of the magnitudes involved */
        check_close("reparam z", i, z[i], ref, 0.0,
                    2.0 * FLT_EPSILON * (fabs((double)mu[i]) + fabs(sv)));
    }
    /* Output aliasing an input (z == mu) is documented as allowed. */
    float alias[N];
    memcpy(alias, mu, sizeof alias);
    ck_assert_ok(vib_reparam_forward(N, alias, sigma, v, alias));
    ck_assert(memcmp(alias, z, sizeof z) == 0);
}
END_TEST

START_TEST(fwd_kl_std_normal)
{
    enum { ROWS = 5, K = 6, N = ROWS * K };
    float mu[N], sigma[N], kl[ROWS];
    fill_normal(211, N, 0.0f, 2.0f, mu);
    fill_positive(212, N, 0.05f, 1.5f, sigma);
    ck_assert_ok(vib_kl_std_normal(ROWS, K, mu, sigma, kl));
    for (size_t r = 0; r < ROWS; r++) {
        /* sum_j KL(N(mu_j, sigma_j^2) || N(0, 1)), the general 1-D formula with Q = N(0,1) */
        double ref = 0.0;
        for (size_t j = 0; j < K; j++)
            ref += ref_kl1(mu[r * K + j], sigma[r * K + j], 0.0, 1.0);
        check_close("kl_std_normal", r, kl[r], ref, 2e-6, 1e-6);
        /* and consistent with the general two-Gaussian node */
        float zeros[K] = {0}, ones[K];
        fill_const(ones, K, 1.0f);
        double kd;
        ck_assert_ok(vib_kl_diag_gauss(K, mu + r * K, sigma + r * K, zeros, ones, &kd));
        check_close("kl_std_normal vs kl_diag_gauss", r, kl[r], kd, 2e-6, 1e-6);
    }

    /* Known values: mu = 0, sigma = 1 gives exactly 0; mu = 1, sigma = 1 gives 1/2 per
     * dimension; mu = 0, sigma = e gives (e^2 - 3)/2 per dimension. */
    float m2[2 * 3] = {0, 0, 0, 1, 1, 1}, s2[2 * 3], kl2[2];
    fill_const(s2, 6, 1.0f);
    ck_assert_ok(vib_kl_std_normal(2, 3, m2, s2, kl2));
    ck_assert_msg(kl2[0] == 0.0f, "KL(N(0,I) || N(0,I)) = %g", (double)kl2[0]);
    check_close("kl_std_normal mu=1", 1, kl2[1], 1.5, 1e-6, 0.0);
    const double e = exp(1.0);
    float m1[1] = {0.0f}, s1[1] = {(float)e}, kl1[1];
    ck_assert_ok(vib_kl_std_normal(1, 1, m1, s1, kl1));
    check_close("kl_std_normal sigma=e", 0, kl1[0],
                0.5 * ((double)s1[0] * s1[0] - 2.0 * log((double)s1[0]) - 1.0), 1e-6, 0.0);
    check_close("kl_std_normal sigma=e (exact e)", 0, kl1[0], 0.5 * (e * e - 3.0), 1e-6,
                0.0);
}
END_TEST

/* Near the prior (mu = 0, sigma = 1 + d) the KL, about d^2, is far smaller than the
 * terms sigma^2 - 1 and 2 log sigma it is the difference of: log sigma must be taken in
 * double (a float log there is off by up to 8e-5 of the result at d = 2^-12). Both KL
 * nodes, against long double. */
START_TEST(kl_near_the_prior)
{
    for (int e = 4; e <= 22; e++) {
        for (int sign = -1; sign <= 1; sign += 2) {
            const float s = 1.0f + (float)sign * ldexpf(1.0f, -e), mu = 0.0f;
            const long double ls = (long double)s;
            const double ref = (double)(0.5L * (ls * ls - 1.0L - 2.0L * logl(ls)));
            float kl, klc;
            ck_assert_ok(vib_kl_std_normal(1, 1, &mu, &s, &kl));
            ck_assert_ok(vib_kl_chol_std_normal(1, 1, &mu, &s, &klc));
            ck_assert_msg(fabs(kl - ref) <= 4e-7 * ref, "sigma = 1 %+g: KL %.9g, reference %.9g",
                          (double)(s - 1.0f), (double)kl, ref);
            ck_assert(kl == klc);
        }
    }
}
END_TEST

START_TEST(fwd_kl_diag_gauss)
{
    enum { K = 7 };
    float mp[K], sp[K], mq[K], sq[K];
    fill_normal(221, K, 0.0f, 2.0f, mp);
    fill_positive(222, K, 0.05f, 1.5f, sp);
    fill_normal(223, K, 1.0f, 2.0f, mq);
    fill_positive(224, K, 0.05f, 1.5f, sq);
    double kl, ref = 0.0;
    ck_assert_ok(vib_kl_diag_gauss(K, mp, sp, mq, sq, &kl));
    for (size_t j = 0; j < K; j++)
        ref += ref_kl1(mp[j], sp[j], mq[j], sq[j]);
    /* "computed in double": agreement to double precision, not float */
    check_close("kl_diag_gauss", 0, kl, ref, 1e-12, 1e-12);
}
END_TEST

START_TEST(fwd_sigma_head)
{
    /* -1e6 ... -800 lie beyond where even double softplus underflows (x < -745). */
    static const float xs[] = {-1e6f,   -1000.0f, -800.0f, -200.0f, -150.0f, -104.0f, -100.0f,
                               -90.0f,  -87.0f,   -40.0f,  -30.01f, -29.99f, -20.0f,  -5.0f,
                               -1.0f,   0.0f,     0.5f,    3.0f,    15.0f,   40.0f,   100.0f,
                               1e4f};
    enum { N = sizeof xs / sizeof xs[0] };
    const float offset = HEAD_OFFSET;
    float rho[N], sigma[N], log_sigma[N], sigma_only[N];
    for (size_t i = 0; i < N; i++)
        rho[i] = xs[i] - offset;
    ck_assert_ok(vib_sigma_head_forward(N, rho, offset, sigma, log_sigma));
    for (size_t i = 0; i < N; i++) {
        double x = (double)rho[i] + (double)offset;
        double s = x < 700.0 ? ref_softplus(x) : x;
        /* sigma may be subnormal (x < -87.3) or 0 (x < -103.3): allow one subnormal ulp */
        ck_assert_msg(isfinite(sigma[i]) && sigma[i] >= 0.0f &&
                          fabs((double)sigma[i] - s) <= 1e-6 * s + FLT_TRUE_MIN,
                      "sigma[%zu] at x = %g: got %g, reference %g", i, x, (double)sigma[i], s);
        /* log sigma must be finite and accurate even where sigma itself underflowed:
         * it tends to x itself. */
        double ls = x < 700.0 ? ref_log_softplus(x) : log(x);
        check_close("log_sigma", i, log_sigma[i], ls, 2e-6, 1e-6);
    }
    /* The explicitly required stable tail: at -100 and -200 log_sigma == rho + offset. */
    for (size_t i = 0; i < N; i++)
        if (xs[i] == -100.0f || xs[i] == -200.0f) {
            ck_assert_msg(isfinite(log_sigma[i]) &&
                              fabsf(log_sigma[i] - xs[i]) <= 1e-6f * fabsf(xs[i]),
                          "log_sigma at x = %g is %g", (double)xs[i], (double)log_sigma[i]);
        }
    /* log_sigma is optional and does not change sigma. */
    ck_assert_ok(vib_sigma_head_forward(N, rho, offset, sigma_only, NULL));
    ck_assert(memcmp(sigma_only, sigma, sizeof sigma) == 0);
    /* sigma may alias rho (elementwise node). */
    float alias[N];
    memcpy(alias, rho, sizeof alias);
    ck_assert_ok(vib_sigma_head_forward(N, alias, offset, alias, NULL));
    ck_assert(memcmp(alias, sigma, sizeof sigma) == 0);
}
END_TEST

START_TEST(fwd_relu)
{
    enum { N = 33 };
    float x[N], y[N];
    fill_normal(231, N, 0.0f, 1.0f, x);
    x[0] = 0.0f;
    x[1] = -0.0f;
    ck_assert_ok(vib_relu_forward(N, x, y));
    for (size_t i = 0; i < N; i++) {
        float want = x[i] > 0.0f ? x[i] : 0.0f;
        ck_assert_msg(y[i] == want, "relu(%g) = %g", (double)x[i], (double)y[i]);
    }
    ck_assert_ok(vib_relu_forward(N, x, x)); /* in place */
    ck_assert(memcmp(x, y, sizeof y) == 0);
}
END_TEST

START_TEST(fwd_softmax_xent)
{
    /* Random logits: naive double log-sum-exp is safe at this scale and is a different
     * computation from the library's max-shifted one. */
    enum { ROWS = 6, C = 7, N = ROWS * C };
    float logits[N], loss[ROWS], prob[N], loss_np[ROWS];
    int32_t labels[ROWS];
    fill_normal(241, N, 0.0f, 3.0f, logits);
    fill_labels(242, ROWS, C, labels);
    ck_assert_ok(vib_softmax_xent_forward(ROWS, C, logits, labels, loss, prob));
    for (size_t r = 0; r < ROWS; r++) {
        double z = 0.0;
        for (size_t c = 0; c < C; c++)
            z += exp((double)logits[r * C + c]);
        check_close("xent loss", r, loss[r], log(z) - logits[r * C + (size_t)labels[r]], 2e-6,
                    1e-6);
        for (size_t c = 0; c < C; c++)
            check_close("xent prob", r * C + c, prob[r * C + c],
                        exp((double)logits[r * C + c]) / z, 2e-6, 1e-7);
    }
    /* prob is optional and does not change the loss. */
    ck_assert_ok(vib_softmax_xent_forward(ROWS, C, logits, labels, loss_np, NULL));
    ck_assert(memcmp(loss_np, loss, sizeof loss) == 0);
}
END_TEST

START_TEST(fwd_softmax_xent_huge_logits)
{
    /* Logits whose exponentials overflow float and double (e^1000); with the max shift
     * everything stays finite. References by hand:
     *   row 0, label 1: lse - l_1 = 1000 + log(1 + e^-1 + ~0) - 999 = 1 + log1p(e^-1)
     *   row 1, label 0: log1p(e^-1); probs 1/(1+e^-1), e^-1/(1+e^-1), ~0, ~0
     *   row 2: all equal (-1000): uniform, loss log 4
     *   row 3, label 1: 30000 - (-30000) = 60000; prob one-hot on class 0 */
    enum { ROWS = 4, C = 4, N = ROWS * C };
    float logits[N] = {1000.0f,  999.0f,   -1000.0f, 0.0f,    1000.0f, 999.0f,
                       -1000.0f, 0.0f,     -1000.0f, -1000.0f, -1000.0f, -1000.0f,
                       3e4f,     -3e4f,    0.0f,     1.0f};
    int32_t labels[ROWS] = {1, 0, 2, 1};
    float loss[ROWS], prob[N];
    ck_assert_ok(vib_softmax_xent_forward(ROWS, C, logits, labels, loss, prob));
    const double em1 = exp(-1.0);
    const double want_loss[ROWS] = {1.0 + log1p(em1), log1p(em1), log(4.0), 6e4};
    const double want_prob[N] = {1.0 / (1.0 + em1), em1 / (1.0 + em1), 0, 0,
                                 1.0 / (1.0 + em1), em1 / (1.0 + em1), 0, 0,
                                 0.25, 0.25, 0.25, 0.25,
                                 1, 0, 0, 0};
    for (size_t r = 0; r < ROWS; r++) {
        check_close("huge-logit loss", r, loss[r], want_loss[r], 1e-6, 0.0);
        double sum = 0.0;
        for (size_t c = 0; c < C; c++) {
            float p = prob[r * C + c];
            ck_assert_msg(isfinite(p) && p >= 0.0f && p <= 1.0f, "prob[%zu][%zu] = %g", r, c,
                          (double)p);
            check_close("huge-logit prob", r * C + c, p, want_prob[r * C + c], 1e-6, 1e-7);
            sum += p;
        }
        ck_assert_msg(fabs(sum - 1.0) <= 4.0 * C * FLT_EPSILON, "prob row %zu sums to %.9g", r,
                      sum);
    }
}
END_TEST

/* =====================================================================================
 * Closed-form KL against Monte Carlo
 * =================================================================================== */

enum { MC_SAMPLES = 200000 };

/* E_{x ~ P}[log p(x) - log q(x)] over MC_SAMPLES draws of x ~ P (vib_rng_normal, one
 * dimension at a time), in double. The Gaussian normalizers (2 pi)^(-k/2) cancel:
 *   log p(x) - log q(x) = sum_j log(sq_j/sp_j) - (x_j-mp_j)^2/2sp_j^2 + (x_j-mq_j)^2/2sq_j^2.
 * Returns the sample mean; *se gets its standard error, sample std / sqrt(n). */
static double mc_kl(uint64_t seed, size_t k, const float *mp, const float *sp,
                    const float *mq, const float *sq, double *se)
{
    float *x = malloc(MC_SAMPLES * sizeof *x);
    double *lr = calloc(MC_SAMPLES, sizeof *lr);
    ck_assert(x != NULL && lr != NULL);
    vib_rng *rng = NULL;
    ck_assert_ok(vib_rng_create(seed, &rng));
    for (size_t j = 0; j < k; j++) {
        ck_assert_ok(vib_rng_normal(rng, MC_SAMPLES, mp[j], sp[j], x));
        double a = mp[j], b = mq[j], s = sp[j], t = sq[j];
        for (size_t i = 0; i < MC_SAMPLES; i++) {
            double u = (x[i] - a) / s, w = (x[i] - b) / t;
            lr[i] += log(t / s) - 0.5 * u * u + 0.5 * w * w;
        }
    }
    vib_rng_free(rng);
    double mean = 0.0, var = 0.0;
    for (size_t i = 0; i < MC_SAMPLES; i++)
        mean += lr[i];
    mean /= MC_SAMPLES;
    for (size_t i = 0; i < MC_SAMPLES; i++)
        var += (lr[i] - mean) * (lr[i] - mean);
    var /= MC_SAMPLES - 1;
    *se = sqrt(var / MC_SAMPLES);
    free(x);
    free(lr);
    return mean;
}

static void check_kl_vs_mc(const char *what, uint64_t seed, double closed, size_t k,
                           const float *mp, const float *sp, const float *mq, const float *sq)
{
    double se, mc = mc_kl(seed, k, mp, sp, mq, sq, &se);
    ck_assert_msg(se > 0.0 || closed == 0.0, "%s: zero Monte-Carlo spread", what);
    ck_assert_msg(fabs(closed - mc) <= 5.0 * se,
                  "%s: closed form %.6f vs Monte Carlo %.6f +- %.6f (%.1f standard errors)",
                  what, closed, mc, se, fabs(closed - mc) / se);
}

START_TEST(mc_kl_diag_gauss)
{
    enum { K = 3 };
    static const float pairs[][4][K] = {
        /* mu_p, sigma_p, mu_q, sigma_q */
        {{0.5f, -1.0f, 2.0f}, {0.8f, 1.5f, 0.3f}, {0.0f, 0.5f, 1.5f}, {1.2f, 0.7f, 0.5f}},
        {{0.0f, 0.5f, 1.5f}, {1.2f, 0.7f, 0.5f}, {0.5f, -1.0f, 2.0f}, {0.8f, 1.5f, 0.3f}},
        {{3.0f, 0.0f, -2.0f}, {0.5f, 2.0f, 1.0f}, {-1.0f, 1.0f, 0.0f}, {2.0f, 1.1f, 1.0f}},
        {{0.0f, 0.0f, 0.0f}, {1.0f, 1.0f, 1.0f}, {0.0f, 0.0f, 0.0f}, {2.0f, 2.0f, 2.0f}},
    };
    for (size_t p = 0; p < sizeof pairs / sizeof pairs[0]; p++) {
        double kl;
        ck_assert_ok(vib_kl_diag_gauss(K, pairs[p][0], pairs[p][1], pairs[p][2], pairs[p][3],
                                       &kl));
        char what[64];
        snprintf(what, sizeof what, "KL(P||Q) pair %zu", p);
        check_kl_vs_mc(what, 300 + p, kl, K, pairs[p][0], pairs[p][1], pairs[p][2],
                       pairs[p][3]);
    }
}
END_TEST

START_TEST(mc_kl_std_normal)
{
    enum { ROWS = 3, K = 3, N = ROWS * K };
    const float mu[N] = {0.5f, -1.0f, 2.0f, 0.0f, 0.0f, 0.0f, -0.3f, 1.2f, 0.1f};
    const float sigma[N] = {0.8f, 1.5f, 0.3f, 0.2f, 1.0f, 1.4f, 1.0f, 0.6f, 1.1f};
    const float zeros[K] = {0}, ones[K] = {1.0f, 1.0f, 1.0f};
    float kl[ROWS];
    ck_assert_ok(vib_kl_std_normal(ROWS, K, mu, sigma, kl));
    for (size_t r = 0; r < ROWS; r++) {
        char what[64];
        snprintf(what, sizeof what, "KL(row %zu || N(0,I))", r);
        check_kl_vs_mc(what, 310 + r, kl[r], K, mu + r * K, sigma + r * K, zeros, ones);
    }
}
END_TEST

/* =====================================================================================
 * Known KL values and properties
 * =================================================================================== */

START_TEST(kl_asymmetry_known_values)
{
    /* P = N(0, 1), Q = N(0, 4) (sigma 2). Both directions are finite:
     *   KL(P||Q) = log 2 + 1/8 - 1/2,   KL(Q||P) = -log 2 + 4/2 - 1/2. */
    const float zero = 0.0f, one = 1.0f, two = 2.0f;
    double pq, qp, pp, qq;
    ck_assert_ok(vib_kl_diag_gauss(1, &zero, &one, &zero, &two, &pq));
    ck_assert_ok(vib_kl_diag_gauss(1, &zero, &two, &zero, &one, &qp));
    ck_assert(isfinite(pq) && isfinite(qp));
    ck_assert_msg(fabs(pq - 0.3181471805599453) <= 1e-12, "KL(P||Q) = %.16g", pq);
    ck_assert_msg(fabs(qp - 0.8068528194400547) <= 1e-12, "KL(Q||P) = %.16g", qp);
    ck_assert_msg(fabs(pq - qp) > 0.4, "KL is not symmetric: %g vs %g", pq, qp);
    ck_assert_ok(vib_kl_diag_gauss(1, &zero, &one, &zero, &one, &pp));
    ck_assert_ok(vib_kl_diag_gauss(1, &zero, &two, &zero, &two, &qq));
    ck_assert_msg(pp == 0.0 && qq == 0.0, "KL(P||P) = %g, KL(Q||Q) = %g", pp, qq);

    /* Independent dimensions add: three copies give three times the value. */
    const float z3[3] = {0, 0, 0}, o3[3] = {1, 1, 1}, t3[3] = {2, 2, 2};
    double pq3;
    ck_assert_ok(vib_kl_diag_gauss(3, z3, o3, z3, t3, &pq3));
    ck_assert_msg(fabs(pq3 - 3.0 * 0.3181471805599453) <= 1e-12, "3-D KL(P||Q) = %.16g", pq3);
}
END_TEST

START_TEST(kl_self_and_gibbs)
{
    /* KL(P||P) = 0 for any P; KL(P||Q) > 0 for P != Q (Gibbs' inequality). */
    enum { K = 5, TRIALS = 50 };
    float mp[K], sp[K], mq[K], sq[K];
    for (uint64_t t = 0; t < TRIALS; t++) {
        fill_normal(400 + 4 * t, K, 0.0f, 2.0f, mp);
        fill_positive(401 + 4 * t, K, 0.05f, 2.0f, sp);
        fill_normal(402 + 4 * t, K, 0.0f, 2.0f, mq);
        fill_positive(403 + 4 * t, K, 0.05f, 2.0f, sq);
        double self, pq;
        ck_assert_ok(vib_kl_diag_gauss(K, mp, sp, mp, sp, &self));
        ck_assert_msg(fabs(self) <= 1e-12, "trial %u: KL(P||P) = %g", (unsigned)t, self);
        ck_assert_ok(vib_kl_diag_gauss(K, mp, sp, mq, sq, &pq));
        ck_assert_msg(isfinite(pq) && pq > 0.0, "trial %u: KL(P||Q) = %g", (unsigned)t, pq);
    }
}
END_TEST

/* =====================================================================================
 * Reparameterized samples have the intended moments
 * =================================================================================== */

static void check_reparam_moments(uint64_t seed, float mu0, float sigma0)
{
    enum { N = 200000 };
    float *mu = malloc(N * sizeof *mu), *sigma = malloc(N * sizeof *sigma);
    float *v = malloc(N * sizeof *v), *z = malloc(N * sizeof *z);
    ck_assert(mu != NULL && sigma != NULL && v != NULL && z != NULL);
    fill_const(mu, N, mu0);
    fill_const(sigma, N, sigma0);
    fill_normal(seed, N, 0.0f, 1.0f, v);
    ck_assert_ok(vib_reparam_forward(N, mu, sigma, v, z));
    double mean = 0.0, var = 0.0;
    for (size_t i = 0; i < N; i++)
        mean += z[i];
    mean /= N;
    for (size_t i = 0; i < N; i++)
        var += ((double)z[i] - mean) * ((double)z[i] - mean);
    var /= N - 1;
    double sd = sqrt(var), se = sd / sqrt((double)N);
    ck_assert_msg(fabs(mean - mu0) <= 5.0 * se, "z ~ N(%g, %g^2): sample mean %.6f (se %.2g)",
                  (double)mu0, (double)sigma0, mean, se);
    ck_assert_msg(fabs(sd - sigma0) <= 0.02 * sigma0,
                  "z ~ N(%g, %g^2): sample std %.6f", (double)mu0, (double)sigma0, sd);
    free(mu);
    free(sigma);
    free(v);
    free(z);
}

START_TEST(reparam_sample_moments)
{
    check_reparam_moments(501, 1.5f, 0.3f);
    check_reparam_moments(502, -4.0f, 2.5f);
}
END_TEST

/* =====================================================================================
 * Bad arguments: status, detail naming the function and argument, untouched outputs.
 * Poison goes in the LAST element, so a node that wrote as it validated would show it.
 * =================================================================================== */

enum { BN = 6, BROWS = 2, BK = 3 }; /* BROWS * BK == BN */

/* Valid inputs: mu ~ N(0,1), sigma in [0.2, ...), v ~ N(0,1). */
static void valid_gauss(float *mu, float *sigma, float *v)
{
    fill_normal(601, BN, 0.0f, 1.0f, mu);
    fill_positive(602, BN, 0.2f, 1.0f, sigma);
    if (v != NULL)
        fill_normal(603, BN, 0.0f, 1.0f, v);
}

START_TEST(bad_reparam_forward)
{
    static const char fn[] = "vib_reparam_forward";
    float mu[BN], sigma[BN], v[BN], z[BN];
    valid_gauss(mu, sigma, v);
    const outbuf outs[] = {{"z", z, sizeof z, NULL}};
    arm_outputs(outs, 1);

    BAD(vib_reparam_forward(BN, NULL, sigma, v, z), VIB_ERR_INVALID_ARG, "mu");
    BAD(vib_reparam_forward(BN, mu, NULL, v, z), VIB_ERR_INVALID_ARG, "sigma");
    BAD(vib_reparam_forward(BN, mu, sigma, NULL, z), VIB_ERR_INVALID_ARG, "v");
    BAD(vib_reparam_forward(BN, mu, sigma, v, NULL), VIB_ERR_INVALID_ARG, "z");

    WITH(sigma[BN - 1], 0.0f,
         BAD(vib_reparam_forward(BN, mu, sigma, v, z), VIB_ERR_INVALID_ARG, "sigma"));
    WITH(sigma[BN - 1], -0.0f,
         BAD(vib_reparam_forward(BN, mu, sigma, v, z), VIB_ERR_INVALID_ARG, "sigma"));
    WITH(sigma[BN - 1], -0.5f,
         BAD(vib_reparam_forward(BN, mu, sigma, v, z), VIB_ERR_INVALID_ARG, "sigma"));
    WITH(sigma[BN - 1], NAN,
         BAD(vib_reparam_forward(BN, mu, sigma, v, z), VIB_ERR_NUMERIC, "sigma"));
    WITH(sigma[BN - 1], INFINITY,
         BAD(vib_reparam_forward(BN, mu, sigma, v, z), VIB_ERR_NUMERIC, "sigma"));
    WITH(mu[BN - 1], NAN, BAD(vib_reparam_forward(BN, mu, sigma, v, z), VIB_ERR_NUMERIC, "mu"));
    WITH(mu[BN - 1], -INFINITY,
         BAD(vib_reparam_forward(BN, mu, sigma, v, z), VIB_ERR_NUMERIC, "mu"));
    WITH(v[BN - 1], NAN, BAD(vib_reparam_forward(BN, mu, sigma, v, z), VIB_ERR_NUMERIC, "v"));
    WITH(v[BN - 1], INFINITY, BAD(vib_reparam_forward(BN, mu, sigma, v, z), VIB_ERR_NUMERIC, "v"));

    ck_assert_ok(vib_reparam_forward(BN, mu, sigma, v, z)); /* the unpoisoned call is fine */
}
END_TEST

START_TEST(bad_reparam_backward)
{
    static const char fn[] = "vib_reparam_backward";
    float dz[BN], v[BN], dmu[BN], dsigma[BN];
    fill_normal(611, BN, 0.0f, 1.0f, dz);
    fill_normal(612, BN, 0.0f, 1.0f, v);
    const outbuf outs[] = {{"dmu", dmu, sizeof dmu, NULL}, {"dsigma", dsigma, sizeof dsigma, NULL}};
    arm_outputs(outs, 2);

    BAD(vib_reparam_backward(BN, NULL, v, dmu, dsigma), VIB_ERR_INVALID_ARG, "dz");
    BAD(vib_reparam_backward(BN, dz, NULL, dmu, dsigma), VIB_ERR_INVALID_ARG, "v");
    BAD(vib_reparam_backward(BN, dz, v, NULL, dsigma), VIB_ERR_INVALID_ARG, "dmu");
    BAD(vib_reparam_backward(BN, dz, v, dmu, NULL), VIB_ERR_INVALID_ARG, "dsigma");
    WITH(dz[BN - 1], NAN, BAD(vib_reparam_backward(BN, dz, v, dmu, dsigma), VIB_ERR_NUMERIC, "dz"));
    WITH(dz[BN - 1], INFINITY,
         BAD(vib_reparam_backward(BN, dz, v, dmu, dsigma), VIB_ERR_NUMERIC, "dz"));
    WITH(v[BN - 1], NAN, BAD(vib_reparam_backward(BN, dz, v, dmu, dsigma), VIB_ERR_NUMERIC, "v"));
    WITH(v[BN - 1], -INFINITY,
         BAD(vib_reparam_backward(BN, dz, v, dmu, dsigma), VIB_ERR_NUMERIC, "v"));
}
END_TEST

START_TEST(bad_kl_std_normal)
{
    static const char fn[] = "vib_kl_std_normal";
    float mu[BN], sigma[BN], kl[BROWS];
    valid_gauss(mu, sigma, NULL);
    const outbuf outs[] = {{"kl", kl, sizeof kl, NULL}};
    arm_outputs(outs, 1);

    BAD(vib_kl_std_normal(BROWS, BK, NULL, sigma, kl), VIB_ERR_INVALID_ARG, "mu");
    BAD(vib_kl_std_normal(BROWS, BK, mu, NULL, kl), VIB_ERR_INVALID_ARG, "sigma");
    BAD(vib_kl_std_normal(BROWS, BK, mu, sigma, NULL), VIB_ERR_INVALID_ARG, "kl");
    WITH(sigma[BN - 1], 0.0f,
         BAD(vib_kl_std_normal(BROWS, BK, mu, sigma, kl), VIB_ERR_INVALID_ARG, "sigma"));
    WITH(sigma[BN - 1], -1.0f,
         BAD(vib_kl_std_normal(BROWS, BK, mu, sigma, kl), VIB_ERR_INVALID_ARG, "sigma"));
    WITH(sigma[BN - 1], NAN,
         BAD(vib_kl_std_normal(BROWS, BK, mu, sigma, kl), VIB_ERR_NUMERIC, "sigma"));
    WITH(sigma[BN - 1], INFINITY,
         BAD(vib_kl_std_normal(BROWS, BK, mu, sigma, kl), VIB_ERR_NUMERIC, "sigma"));
    WITH(mu[BN - 1], NAN, BAD(vib_kl_std_normal(BROWS, BK, mu, sigma, kl), VIB_ERR_NUMERIC, "mu"));
    WITH(mu[BN - 1], INFINITY,
         BAD(vib_kl_std_normal(BROWS, BK, mu, sigma, kl), VIB_ERR_NUMERIC, "mu"));
}
END_TEST

START_TEST(bad_kl_std_normal_backward)
{
    static const char fn[] = "vib_kl_std_normal_backward";
    float mu[BN], sigma[BN], dkl[BROWS], dmu[BN], dsigma[BN];
    valid_gauss(mu, sigma, NULL);
    fill_normal(621, BROWS, 0.0f, 1.0f, dkl);
    const outbuf outs[] = {{"dmu", dmu, sizeof dmu, NULL}, {"dsigma", dsigma, sizeof dsigma, NULL}};
    arm_outputs(outs, 2);

#define CALL(m, s, d, gm, gs) vib_kl_std_normal_backward(BROWS, BK, m, s, d, gm, gs)
    BAD(CALL(NULL, sigma, dkl, dmu, dsigma), VIB_ERR_INVALID_ARG, "mu");
    BAD(CALL(mu, NULL, dkl, dmu, dsigma), VIB_ERR_INVALID_ARG, "sigma");
    BAD(CALL(mu, sigma, NULL, dmu, dsigma), VIB_ERR_INVALID_ARG, "dkl");
    BAD(CALL(mu, sigma, dkl, NULL, dsigma), VIB_ERR_INVALID_ARG, "dmu");
    BAD(CALL(mu, sigma, dkl, dmu, NULL), VIB_ERR_INVALID_ARG, "dsigma");
    WITH(sigma[BN - 1], 0.0f, BAD(CALL(mu, sigma, dkl, dmu, dsigma), VIB_ERR_INVALID_ARG, "sigma"));
    WITH(sigma[BN - 1], -2.0f,
         BAD(CALL(mu, sigma, dkl, dmu, dsigma), VIB_ERR_INVALID_ARG, "sigma"));
    WITH(sigma[BN - 1], NAN, BAD(CALL(mu, sigma, dkl, dmu, dsigma), VIB_ERR_NUMERIC, "sigma"));
    WITH(mu[BN - 1], -INFINITY, BAD(CALL(mu, sigma, dkl, dmu, dsigma), VIB_ERR_NUMERIC, "mu"));
    WITH(dkl[BROWS - 1], NAN, BAD(CALL(mu, sigma, dkl, dmu, dsigma), VIB_ERR_NUMERIC, "dkl"));
    WITH(dkl[BROWS - 1], INFINITY, BAD(CALL(mu, sigma, dkl, dmu, dsigma), VIB_ERR_NUMERIC, "dkl"));
#undef CALL
}
END_TEST

START_TEST(bad_kl_diag_gauss)
{
    static const char fn[] = "vib_kl_diag_gauss";
    float mp[BN], sp[BN], mq[BN], sq[BN];
    double kl;
    valid_gauss(mp, sp, NULL);
    fill_normal(631, BN, 0.0f, 1.0f, mq);
    fill_positive(632, BN, 0.2f, 1.0f, sq);
    const outbuf outs[] = {{"kl", &kl, sizeof kl, NULL}};
    arm_outputs(outs, 1);

#define CALL(a, b, c, d) vib_kl_diag_gauss(BN, a, b, c, d, &kl)
    BAD(CALL(NULL, sp, mq, sq), VIB_ERR_INVALID_ARG, "mu_p");
    BAD(CALL(mp, NULL, mq, sq), VIB_ERR_INVALID_ARG, "sigma_p");
    BAD(CALL(mp, sp, NULL, sq), VIB_ERR_INVALID_ARG, "mu_q");
    BAD(CALL(mp, sp, mq, NULL), VIB_ERR_INVALID_ARG, "sigma_q");
    BAD(vib_kl_diag_gauss(BN, mp, sp, mq, sq, NULL), VIB_ERR_INVALID_ARG, "kl");
    WITH(sp[BN - 1], 0.0f, BAD(CALL(mp, sp, mq, sq), VIB_ERR_INVALID_ARG, "sigma_p"));
    WITH(sp[BN - 1], -1.0f, BAD(CALL(mp, sp, mq, sq), VIB_ERR_INVALID_ARG, "sigma_p"));
    WITH(sq[BN - 1], 0.0f, BAD(CALL(mp, sp, mq, sq), VIB_ERR_INVALID_ARG, "sigma_q"));
    WITH(sq[BN - 1], -3.0f, BAD(CALL(mp, sp, mq, sq), VIB_ERR_INVALID_ARG, "sigma_q"));
    WITH(sp[BN - 1], NAN, BAD(CALL(mp, sp, mq, sq), VIB_ERR_NUMERIC, "sigma_p"));
    WITH(sq[BN - 1], INFINITY, BAD(CALL(mp, sp, mq, sq), VIB_ERR_NUMERIC, "sigma_q"));
    WITH(mp[BN - 1], NAN, BAD(CALL(mp, sp, mq, sq), VIB_ERR_NUMERIC, "mu_p"));
    WITH(mq[BN - 1], -INFINITY, BAD(CALL(mp, sp, mq, sq), VIB_ERR_NUMERIC, "mu_q"));
#undef CALL
}
END_TEST

START_TEST(bad_sigma_head_forward)
{
    static const char fn[] = "vib_sigma_head_forward";
    float rho[BN], sigma[BN], log_sigma[BN];
    fill_normal(641, BN, 0.0f, 2.0f, rho);
    const outbuf outs[] = {{"sigma", sigma, sizeof sigma, NULL},
                           {"log_sigma", log_sigma, sizeof log_sigma, NULL}};
    arm_outputs(outs, 2);

    BAD(vib_sigma_head_forward(BN, NULL, -5.0f, sigma, log_sigma), VIB_ERR_INVALID_ARG, "rho");
    BAD(vib_sigma_head_forward(BN, rho, -5.0f, NULL, log_sigma), VIB_ERR_INVALID_ARG, "sigma");
    WITH(rho[BN - 1], NAN,
         BAD(vib_sigma_head_forward(BN, rho, -5.0f, sigma, log_sigma), VIB_ERR_NUMERIC, "rho"));
    WITH(rho[BN - 1], INFINITY,
         BAD(vib_sigma_head_forward(BN, rho, -5.0f, sigma, log_sigma), VIB_ERR_NUMERIC, "rho"));
    WITH(rho[BN - 1], -INFINITY,
         BAD(vib_sigma_head_forward(BN, rho, -5.0f, sigma, log_sigma), VIB_ERR_NUMERIC, "rho"));
    BAD(vib_sigma_head_forward(BN, rho, NAN, sigma, log_sigma), VIB_ERR_NUMERIC, "offset");
    BAD(vib_sigma_head_forward(BN, rho, -INFINITY, sigma, log_sigma), VIB_ERR_NUMERIC, "offset");
    /* rho + offset = 2 FLT_MAX: sigma = rho + offset would be +inf in float. */
    WITH(rho[BN - 1], FLT_MAX,
         BAD(vib_sigma_head_forward(BN, rho, FLT_MAX, sigma, log_sigma), VIB_ERR_NUMERIC, "rho"));
    /* Without log_sigma, sigma alone must stay untouched too. */
    WITH(rho[BN - 1], NAN,
         BAD(vib_sigma_head_forward(BN, rho, -5.0f, sigma, NULL), VIB_ERR_NUMERIC, "rho"));
}
END_TEST

START_TEST(bad_sigma_head_backward)
{
    static const char fn[] = "vib_sigma_head_backward";
    float rho[BN], ds[BN], dl[BN], drho[BN];
    fill_normal(651, BN, 0.0f, 2.0f, rho);
    fill_normal(652, BN, 0.0f, 1.0f, ds);
    fill_normal(653, BN, 0.0f, 1.0f, dl);
    const outbuf outs[] = {{"drho", drho, sizeof drho, NULL}};
    arm_outputs(outs, 1);

    BAD(vib_sigma_head_backward(BN, NULL, -5.0f, ds, dl, drho), VIB_ERR_INVALID_ARG, "rho");
    BAD(vib_sigma_head_backward(BN, rho, -5.0f, ds, dl, NULL), VIB_ERR_INVALID_ARG, "drho");
    BAD(vib_sigma_head_backward(BN, rho, -5.0f, NULL, NULL, drho), VIB_ERR_INVALID_ARG, "dsigma");
    WITH(rho[BN - 1], NAN,
         BAD(vib_sigma_head_backward(BN, rho, -5.0f, ds, dl, drho), VIB_ERR_NUMERIC, "rho"));
    WITH(rho[BN - 1], -INFINITY,
         BAD(vib_sigma_head_backward(BN, rho, -5.0f, ds, dl, drho), VIB_ERR_NUMERIC, "rho"));
    BAD(vib_sigma_head_backward(BN, rho, INFINITY, ds, dl, drho), VIB_ERR_NUMERIC, "offset");
    BAD(vib_sigma_head_backward(BN, rho, NAN, ds, NULL, drho), VIB_ERR_NUMERIC, "offset");
    WITH(ds[BN - 1], NAN,
         BAD(vib_sigma_head_backward(BN, rho, -5.0f, ds, dl, drho), VIB_ERR_NUMERIC, "dsigma"));
    WITH(ds[BN - 1], INFINITY,
         BAD(vib_sigma_head_backward(BN, rho, -5.0f, ds, NULL, drho), VIB_ERR_NUMERIC, "dsigma"));
    WITH(dl[BN - 1], NAN,
         BAD(vib_sigma_head_backward(BN, rho, -5.0f, ds, dl, drho), VIB_ERR_NUMERIC, "dlog_sigma"));
    WITH(dl[BN - 1], -INFINITY,
         BAD(vib_sigma_head_backward(BN, rho, -5.0f, NULL, dl, drho), VIB_ERR_NUMERIC,
             "dlog_sigma"));
    WITH(rho[BN - 1], FLT_MAX,
         BAD(vib_sigma_head_backward(BN, rho, FLT_MAX, ds, dl, drho), VIB_ERR_NUMERIC, "rho"));
}
END_TEST

START_TEST(bad_relu_forward)
{
    static const char fn[] = "vib_relu_forward";
    float x[BN], y[BN];
    fill_normal(661, BN, 0.0f, 1.0f, x);
    const outbuf outs[] = {{"y", y, sizeof y, NULL}};
    arm_outputs(outs, 1);

    BAD(vib_relu_forward(BN, NULL, y), VIB_ERR_INVALID_ARG, "x");
    BAD(vib_relu_forward(BN, x, NULL), VIB_ERR_INVALID_ARG, "y");
    WITH(x[BN - 1], NAN, BAD(vib_relu_forward(BN, x, y), VIB_ERR_NUMERIC, "x"));
    WITH(x[BN - 1], INFINITY, BAD(vib_relu_forward(BN, x, y), VIB_ERR_NUMERIC, "x"));
    /* -inf would map to a harmless 0, but the contract rejects non-finite input. */
    WITH(x[BN - 1], -INFINITY, BAD(vib_relu_forward(BN, x, y), VIB_ERR_NUMERIC, "x"));
}
END_TEST

START_TEST(bad_relu_backward)
{
    static const char fn[] = "vib_relu_backward";
    float x[BN], dy[BN], dx[BN];
    fill_normal(671, BN, 0.0f, 1.0f, x);
    fill_normal(672, BN, 0.0f, 1.0f, dy);
    const outbuf outs[] = {{"dx", dx, sizeof dx, NULL}};
    arm_outputs(outs, 1);

    BAD(vib_relu_backward(BN, NULL, dy, dx), VIB_ERR_INVALID_ARG, "x");
    BAD(vib_relu_backward(BN, x, NULL, dx), VIB_ERR_INVALID_ARG, "dy");
    BAD(vib_relu_backward(BN, x, dy, NULL), VIB_ERR_INVALID_ARG, "dx");
    WITH(x[BN - 1], NAN, BAD(vib_relu_backward(BN, x, dy, dx), VIB_ERR_NUMERIC, "x"));
    WITH(x[BN - 1], INFINITY, BAD(vib_relu_backward(BN, x, dy, dx), VIB_ERR_NUMERIC, "x"));
    WITH(dy[BN - 1], NAN, BAD(vib_relu_backward(BN, x, dy, dx), VIB_ERR_NUMERIC, "dy"));
    WITH(dy[BN - 1], -INFINITY, BAD(vib_relu_backward(BN, x, dy, dx), VIB_ERR_NUMERIC, "dy"));
}
END_TEST

START_TEST(bad_softmax_xent_forward)
{
    static const char fn[] = "vib_softmax_xent_forward";
    float logits[BN], loss[BROWS], prob[BN];
    int32_t labels[BROWS] = {2, 0};
    fill_normal(681, BN, 0.0f, 2.0f, logits);
    const outbuf outs[] = {{"loss", loss, sizeof loss, NULL}, {"prob", prob, sizeof prob, NULL}};
    arm_outputs(outs, 2);

#define CALL(l, y, lo, p) vib_softmax_xent_forward(BROWS, BK, l, y, lo, p)
    BAD(CALL(NULL, labels, loss, prob), VIB_ERR_INVALID_ARG, "logits");
    BAD(CALL(logits, NULL, loss, prob), VIB_ERR_INVALID_ARG, "labels");
    BAD(CALL(logits, labels, NULL, prob), VIB_ERR_INVALID_ARG, "loss");
    WITH_LABEL(labels[BROWS - 1], -1,
               BAD(CALL(logits, labels, loss, prob), VIB_ERR_INVALID_ARG, "labels"));
    WITH_LABEL(labels[BROWS - 1], BK,
               BAD(CALL(logits, labels, loss, prob), VIB_ERR_INVALID_ARG, "labels"));
    WITH_LABEL(labels[BROWS - 1], INT32_MIN,
               BAD(CALL(logits, labels, loss, prob), VIB_ERR_INVALID_ARG, "labels"));
    WITH_LABEL(labels[BROWS - 1], INT32_MAX,
               BAD(CALL(logits, labels, loss, NULL), VIB_ERR_INVALID_ARG, "labels"));
    WITH(logits[BN - 1], NAN, BAD(CALL(logits, labels, loss, prob), VIB_ERR_NUMERIC, "logits"));
    WITH(logits[BN - 1], INFINITY,
         BAD(CALL(logits, labels, loss, prob), VIB_ERR_NUMERIC, "logits"));
    WITH(logits[BN - 1], -INFINITY,
         BAD(CALL(logits, labels, loss, prob), VIB_ERR_NUMERIC, "logits"));
#undef CALL
    /* No label can be valid when there are no classes (either argument may be blamed). */
    BAD(vib_softmax_xent_forward(BROWS, 0, logits, labels, loss, prob), VIB_ERR_INVALID_ARG,
        NULL);
}
END_TEST

START_TEST(bad_softmax_xent_backward)
{
    static const char fn[] = "vib_softmax_xent_backward";
    float logits[BN], loss[BROWS], prob[BN], dloss[BROWS], dlogits[BN];
    int32_t labels[BROWS] = {1, 2};
    fill_normal(691, BN, 0.0f, 2.0f, logits);
    fill_normal(692, BROWS, 0.0f, 1.0f, dloss);
    ck_assert_ok(vib_softmax_xent_forward(BROWS, BK, logits, labels, loss, prob));
    const outbuf outs[] = {{"dlogits", dlogits, sizeof dlogits, NULL}};
    arm_outputs(outs, 1);

#define CALL(p, y, d, g) vib_softmax_xent_backward(BROWS, BK, p, y, d, g)
    BAD(CALL(NULL, labels, dloss, dlogits), VIB_ERR_INVALID_ARG, "prob");
    BAD(CALL(prob, NULL, dloss, dlogits), VIB_ERR_INVALID_ARG, "labels");
    BAD(CALL(prob, labels, NULL, dlogits), VIB_ERR_INVALID_ARG, "dloss");
    BAD(CALL(prob, labels, dloss, NULL), VIB_ERR_INVALID_ARG, "dlogits");
    WITH_LABEL(labels[BROWS - 1], -1,
               BAD(CALL(prob, labels, dloss, dlogits), VIB_ERR_INVALID_ARG, "labels"));
    WITH_LABEL(labels[BROWS - 1], BK,
               BAD(CALL(prob, labels, dloss, dlogits), VIB_ERR_INVALID_ARG, "labels"));
    WITH(prob[BN - 1], NAN, BAD(CALL(prob, labels, dloss, dlogits), VIB_ERR_NUMERIC, "prob"));
    WITH(prob[BN - 1], INFINITY, BAD(CALL(prob, labels, dloss, dlogits), VIB_ERR_NUMERIC, "prob"));
    WITH(dloss[BROWS - 1], NAN, BAD(CALL(prob, labels, dloss, dlogits), VIB_ERR_NUMERIC, "dloss"));
    WITH(dloss[BROWS - 1], -INFINITY,
         BAD(CALL(prob, labels, dloss, dlogits), VIB_ERR_NUMERIC, "dloss"));
#undef CALL
    BAD(vib_softmax_xent_backward(BROWS, 0, prob, labels, dloss, dlogits), VIB_ERR_INVALID_ARG,
        NULL);
}
END_TEST

/* =====================================================================================
 * Sizes: zero is a no-op accepting NULL; rows * cols overflowing size_t is an error
 * =================================================================================== */

START_TEST(size_zero)
{
    /* Everything NULL: nothing to read or write. */
    ck_assert_ok(vib_reparam_forward(0, NULL, NULL, NULL, NULL));
    ck_assert_ok(vib_reparam_backward(0, NULL, NULL, NULL, NULL));
    ck_assert_ok(vib_kl_std_normal(0, 3, NULL, NULL, NULL));
    ck_assert_ok(vib_kl_std_normal(0, 0, NULL, NULL, NULL));
    ck_assert_ok(vib_kl_std_normal_backward(0, 3, NULL, NULL, NULL, NULL, NULL));
    ck_assert_ok(vib_kl_std_normal_backward(0, 0, NULL, NULL, NULL, NULL, NULL));
    ck_assert_ok(vib_sigma_head_forward(0, NULL, -5.0f, NULL, NULL));
    ck_assert_ok(vib_sigma_head_backward(0, NULL, -5.0f, NULL, NULL, NULL));
    ck_assert_ok(vib_relu_forward(0, NULL, NULL));
    ck_assert_ok(vib_relu_backward(0, NULL, NULL, NULL));
    ck_assert_ok(vib_softmax_xent_forward(0, 3, NULL, NULL, NULL, NULL));
    ck_assert_ok(vib_softmax_xent_forward(0, 0, NULL, NULL, NULL, NULL));
    ck_assert_ok(vib_softmax_xent_backward(0, 3, NULL, NULL, NULL, NULL));
    ck_assert_ok(vib_softmax_xent_backward(0, 0, NULL, NULL, NULL, NULL));

    /* Real buffers with size zero are left alone. */
    float buf[4], pristine[4];
    fill_normal(701, 4, 0.0f, 1.0f, buf);
    memcpy(pristine, buf, sizeof buf);
    ck_assert_ok(vib_reparam_forward(0, buf, buf, buf, buf));
    ck_assert_ok(vib_reparam_backward(0, buf, buf, buf, buf));
    ck_assert_ok(vib_sigma_head_forward(0, buf, -5.0f, buf, buf));
    ck_assert_ok(vib_sigma_head_backward(0, buf, -5.0f, buf, buf, buf));
    ck_assert_ok(vib_relu_forward(0, buf, buf));
    ck_assert_ok(vib_relu_backward(0, buf, buf, buf));
    ck_assert(memcmp(buf, pristine, sizeof buf) == 0);

    /* A zero-dimensional latent: the KL of an empty product of Gaussians is 0, and the
     * [rows x 0] inputs may be NULL. */
    float kl[2] = {5.0f, 5.0f};
    ck_assert_ok(vib_kl_std_normal(2, 0, NULL, NULL, kl));
    ck_assert_msg(kl[0] == 0.0f && kl[1] == 0.0f, "KL over 0 latents = %g, %g", (double)kl[0],
                  (double)kl[1]);
    const float dkl[2] = {1.0f, 1.0f};
    ck_assert_ok(vib_kl_std_normal_backward(2, 0, NULL, NULL, dkl, NULL, NULL));
    double kd = 5.0;
    ck_assert_ok(vib_kl_diag_gauss(0, NULL, NULL, NULL, NULL, &kd));
    ck_assert_msg(kd == 0.0, "KL over 0 dimensions = %g", kd);
}
END_TEST

/* rows * cols wraps around size_t: must be refused before any buffer is touched (the
 * small buffers passed here would be overrun by a node that trusted the wrapped size).
 * The header: "sizes whose product overflows size_t" are VIB_ERR_INVALID_ARG. */
static void check_overflow_status(const char *call, int rc, const char *fn)
{
    ck_assert_msg(rc == VIB_ERR_INVALID_ARG,
                  "%s with overflowing size returned %d (%s)", call, rc, vib_status_string(rc));
    check_detail(call, fn, NULL);
}

#define OVERFLOW_CASE(fn, call)                                                            \
    do {                                                                                   \
        plant_marker();                                                                    \
        check_overflow_status(#call, (call), fn);                                          \
        expect_untouched(#call, outs, sizeof outs / sizeof outs[0]);                       \
    } while (0)

START_TEST(size_overflow)
{
    const size_t half = SIZE_MAX / 2 + 1; /* half * 2 wraps to exactly 0 */
    const size_t big = SIZE_MAX / 2;      /* big * 3 wraps to SIZE_MAX / 2 - 2 */
    float mu[BN], sigma[BN], dkl[BN], prob[BN], dloss[BN];
    float kl[BN], dmu[BN], dsigma[BN], loss[BN], probout[BN], dlogits[BN];
    int32_t labels[BN] = {0};
    valid_gauss(mu, sigma, NULL);
    fill_normal(711, BN, 0.0f, 1.0f, dkl);
    fill_normal(712, BN, 0.0f, 1.0f, dloss);
    fill_const(prob, BN, 1.0f / 3.0f);
    const outbuf outs[] = {{"kl", kl, sizeof kl, NULL},
                           {"dmu", dmu, sizeof dmu, NULL},
                           {"dsigma", dsigma, sizeof dsigma, NULL},
                           {"loss", loss, sizeof loss, NULL},
                           {"prob", probout, sizeof probout, NULL},
                           {"dlogits", dlogits, sizeof dlogits, NULL}};
    arm_outputs(outs, sizeof outs / sizeof outs[0]);

    OVERFLOW_CASE("vib_kl_std_normal", vib_kl_std_normal(big, 3, mu, sigma, kl));
    OVERFLOW_CASE("vib_kl_std_normal", vib_kl_std_normal(3, big, mu, sigma, kl));
    OVERFLOW_CASE("vib_kl_std_normal", vib_kl_std_normal(half, 2, mu, sigma, kl));
    OVERFLOW_CASE("vib_kl_std_normal_backward",
                  vib_kl_std_normal_backward(big, 3, mu, sigma, dkl, dmu, dsigma));
    OVERFLOW_CASE("vib_kl_std_normal_backward",
                  vib_kl_std_normal_backward(half, 2, mu, sigma, dkl, dmu, dsigma));
    OVERFLOW_CASE("vib_softmax_xent_forward",
                  vib_softmax_xent_forward(big, 3, prob, labels, loss, probout));
    OVERFLOW_CASE("vib_softmax_xent_forward",
                  vib_softmax_xent_forward(2, half, prob, labels, loss, probout));
    OVERFLOW_CASE("vib_softmax_xent_backward",
                  vib_softmax_xent_backward(big, 3, prob, labels, dloss, dlogits));
    OVERFLOW_CASE("vib_softmax_xent_backward",
                  vib_softmax_xent_backward(2, half, prob, labels, dloss, dlogits));
}
END_TEST

/* =====================================================================================
 * Results that would not fit in a float. The header: "Non-finite inputs (NaN, Inf) are
 * VIB_ERR_NUMERIC, and so is a result that would overflow float: such calls are refused
 * before anything is written." For a backward the result is the accumulated gradient,
 * so both a huge increment and a huge prefill plus an increment count. Results that do
 * fit must not be refused.
 * =================================================================================== */

/* A gradient buffer of BN values prefilled with `fill`, value `last` at the end, with a
 * copy kept for the untouched check. */
static void prefill(float *buf, float *copy, float fill, float last)
{
    fill_const(buf, BN, fill);
    buf[BN - 1] = last;
    memcpy(copy, buf, BN * sizeof *buf);
}

START_TEST(overflow_reparam_forward)
{
    static const char fn[] = "vib_reparam_forward";
    float mu[BN], sigma[BN], v[BN], z[BN];
    valid_gauss(mu, sigma, v);
    const outbuf outs[] = {{"z", z, sizeof z, NULL}};
    arm_outputs(outs, 1);
    mu[BN - 1] = FLT_MAX; /* FLT_MAX + FLT_MAX * 1 */
    sigma[BN - 1] = FLT_MAX;
    v[BN - 1] = 1.0f;
    BAD(vib_reparam_forward(BN, mu, sigma, v, z), VIB_ERR_NUMERIC, NULL);
    mu[BN - 1] = 0.5f * FLT_MAX; /* 0.5 FLT_MAX + 0.25 FLT_MAX fits */
    sigma[BN - 1] = 0.25f * FLT_MAX;
    ck_assert_ok(vib_reparam_forward(BN, mu, sigma, v, z));
    check_close("z near FLT_MAX", BN - 1, z[BN - 1], 0.75 * FLT_MAX, 1e-6, 0.0);
}
END_TEST

START_TEST(overflow_reparam_backward)
{
    static const char fn[] = "vib_reparam_backward";
    float dz[BN], v[BN], dmu[BN], dsigma[BN], dmu0[BN], dsigma0[BN];
    fill_normal(801, BN, 0.0f, 1.0f, dz);
    fill_normal(802, BN, 0.0f, 1.0f, v);
    const outbuf outs[] = {{"dmu", dmu, sizeof dmu, dmu0},
                           {"dsigma", dsigma, sizeof dsigma, dsigma0}};

    /* dsigma increment dz * v = 1e30 * 1e10 */
    prefill(dmu, dmu0, 0.0f, 0.0f);
    prefill(dsigma, dsigma0, 0.0f, 0.0f);
    WITH2(dz[BN - 1], 1e30f, v[BN - 1], 1e10f,
          BAD(vib_reparam_backward(BN, dz, v, dmu, dsigma), VIB_ERR_NUMERIC, NULL));
    /* dsigma accumulated to FLT_MAX, plus dz * v = 0.5 FLT_MAX */
    prefill(dsigma, dsigma0, 1.0f, FLT_MAX);
    WITH2(dz[BN - 1], 0.5f * FLT_MAX, v[BN - 1], 1.0f,
          BAD(vib_reparam_backward(BN, dz, v, dmu, dsigma), VIB_ERR_NUMERIC, NULL));
    /* dmu accumulated to FLT_MAX, plus dz = 0.5 FLT_MAX */
    prefill(dsigma, dsigma0, 1.0f, 1.0f);
    prefill(dmu, dmu0, 1.0f, FLT_MAX);
    WITH2(dz[BN - 1], 0.5f * FLT_MAX, v[BN - 1], 0.0f,
          BAD(vib_reparam_backward(BN, dz, v, dmu, dsigma), VIB_ERR_NUMERIC, NULL));
    /* fits: 0.5 FLT_MAX accumulated plus 0.25 FLT_MAX in both */
    prefill(dmu, dmu0, 1.0f, 0.5f * FLT_MAX);
    prefill(dsigma, dsigma0, 1.0f, 0.5f * FLT_MAX);
    WITH2(dz[BN - 1], 0.25f * FLT_MAX, v[BN - 1], 1.0f, {
        ck_assert_ok(vib_reparam_backward(BN, dz, v, dmu, dsigma));
        check_close("dmu near FLT_MAX", BN - 1, dmu[BN - 1], 0.75 * FLT_MAX, 1e-6, 0.0);
        check_close("dsigma near FLT_MAX", BN - 1, dsigma[BN - 1], 0.75 * FLT_MAX, 1e-6, 0.0);
    });
}
END_TEST

START_TEST(overflow_kl_std_normal)
{
    static const char fn[] = "vib_kl_std_normal";
    float mu[BN], sigma[BN], kl[BROWS];
    valid_gauss(mu, sigma, NULL);
    const outbuf outs[] = {{"kl", kl, sizeof kl, NULL}};
    arm_outputs(outs, 1);
    mu[BN - 1] = 1e20f; /* mu^2 / 2 = 5e39 */
    BAD(vib_kl_std_normal(BROWS, BK, mu, sigma, kl), VIB_ERR_NUMERIC, NULL);
    mu[BN - 1] = 1e19f; /* mu^2 / 2 = 5e37 fits */
    ck_assert_ok(vib_kl_std_normal(BROWS, BK, mu, sigma, kl));
    check_close("kl near FLT_MAX", BROWS - 1, kl[BROWS - 1], 5e37, 1e-6, 0.0);
}
END_TEST

START_TEST(overflow_kl_std_normal_backward)
{
    static const char fn[] = "vib_kl_std_normal_backward";
    float mu[BN], sigma[BN], dkl[BROWS], dmu[BN], dsigma[BN], dmu0[BN], dsigma0[BN];
    valid_gauss(mu, sigma, NULL);
    fill_const(dkl, BROWS, 1.0f);
    const outbuf outs[] = {{"dmu", dmu, sizeof dmu, dmu0},
                           {"dsigma", dsigma, sizeof dsigma, dsigma0}};
    prefill(dmu, dmu0, 0.0f, 0.0f);
    prefill(dsigma, dsigma0, 0.0f, 0.0f);

    /* A subnormal sigma (what the sigma head gives for rho + offset in (-104, -87)) is
     * positive and accepted, but d/dsigma = sigma - 1/sigma ~ -1e40. */
    WITH(sigma[BN - 1], 1e-40f,
         BAD(vib_kl_std_normal_backward(BROWS, BK, mu, sigma, dkl, dmu, dsigma), VIB_ERR_NUMERIC,
             NULL));
    /* dmu increment dkl * mu = 1e30 * 1e30 (sigma stays ordinary) */
    WITH2(dkl[BROWS - 1], 1e30f, mu[BN - 1], 1e30f,
          BAD(vib_kl_std_normal_backward(BROWS, BK, mu, sigma, dkl, dmu, dsigma), VIB_ERR_NUMERIC,
              NULL));
    /* dmu accumulated to FLT_MAX plus dkl * mu = 0.5 FLT_MAX */
    prefill(dmu, dmu0, 1.0f, FLT_MAX);
    WITH2(dkl[BROWS - 1], 0.5f * FLT_MAX, mu[BN - 1], 1.0f,
          BAD(vib_kl_std_normal_backward(BROWS, BK, mu, sigma, dkl, dmu, dsigma), VIB_ERR_NUMERIC,
              NULL));
}
END_TEST

/* Accumulated gradients near FLT_MAX plus ordinary increments fit: no false alarm, in
 * particular not from adding the bounds of dmu and dsigma together. */
START_TEST(overflow_kl_std_normal_backward_fits)
{
    float mu[BN], sigma[BN], dkl[BROWS], dmu[BN], dsigma[BN], copy[BN];
    valid_gauss(mu, sigma, NULL);
    fill_const(dkl, BROWS, 1e-3f);
    prefill(dmu, copy, 0.6f * FLT_MAX, 0.6f * FLT_MAX);
    prefill(dsigma, copy, 0.6f * FLT_MAX, 0.6f * FLT_MAX);
    ck_assert_ok(vib_kl_std_normal_backward(BROWS, BK, mu, sigma, dkl, dmu, dsigma));
    for (size_t i = 0; i < BN; i++) {
        check_close("dmu", i, dmu[i], 0.6 * FLT_MAX, 1e-6, 0.0);
        check_close("dsigma", i, dsigma[i], 0.6 * FLT_MAX, 1e-6, 0.0);
    }
}
END_TEST

START_TEST(overflow_sigma_head_forward)
{
    static const char fn[] = "vib_sigma_head_forward";
    float rho[BN], sigma[BN], log_sigma[BN];
    fill_normal(811, BN, 0.0f, 1.0f, rho);
    const outbuf outs[] = {{"sigma", sigma, sizeof sigma, NULL},
                           {"log_sigma", log_sigma, sizeof log_sigma, NULL}};
    arm_outputs(outs, 2);
    /* rho + offset = -2 FLT_MAX: log sigma = rho + offset would be -inf in float. */
    WITH(rho[BN - 1], -FLT_MAX,
         BAD(vib_sigma_head_forward(BN, rho, -FLT_MAX, sigma, log_sigma), VIB_ERR_NUMERIC, NULL));
    /* rho + offset = -FLT_MAX fits: log sigma = -FLT_MAX, sigma = 0. */
    WITH(rho[BN - 1], -0.5f * FLT_MAX, {
        ck_assert_ok(vib_sigma_head_forward(BN, rho, -0.5f * FLT_MAX, sigma, log_sigma));
        ck_assert(sigma[BN - 1] == 0.0f && log_sigma[BN - 1] == -FLT_MAX);
    });
}
END_TEST

START_TEST(overflow_sigma_head_backward)
{
    static const char fn[] = "vib_sigma_head_backward";
    float rho[BN], ds[BN], dl[BN], drho[BN], drho0[BN];
    fill_normal(821, BN, 0.0f, 1.0f, rho);
    fill_normal(822, BN, 0.0f, 1.0f, ds);
    fill_normal(823, BN, 0.0f, 1.0f, dl);
    const outbuf outs[] = {{"drho", drho, sizeof drho, drho0}};
    prefill(drho, drho0, 0.0f, 0.0f);
    /* At rho + offset = 0: drho = dsigma sigmoid(0) + dlog_sigma sigmoid(0)/log 2
     * = FLT_MAX (0.5 + 0.72) */
    rho[BN - 1] = 0.0f;
    WITH2(ds[BN - 1], FLT_MAX, dl[BN - 1], FLT_MAX,
          BAD(vib_sigma_head_backward(BN, rho, 0.0f, ds, dl, drho), VIB_ERR_NUMERIC, NULL));
    /* drho accumulated to FLT_MAX plus dlog_sigma * ~1 = 0.5 FLT_MAX (rho + offset = -40) */
    prefill(drho, drho0, 1.0f, FLT_MAX);
    rho[BN - 1] = -40.0f;
    WITH(dl[BN - 1], 0.5f * FLT_MAX,
         BAD(vib_sigma_head_backward(BN, rho, 0.0f, NULL, dl, drho), VIB_ERR_NUMERIC, NULL));
    /* fits: 0.5 FLT_MAX + 0.25 FLT_MAX */
    prefill(drho, drho0, 1.0f, 0.5f * FLT_MAX);
    WITH(dl[BN - 1], 0.25f * FLT_MAX, {
        ck_assert_ok(vib_sigma_head_backward(BN, rho, 0.0f, NULL, dl, drho));
        check_close("drho near FLT_MAX", BN - 1, drho[BN - 1], 0.75 * FLT_MAX, 1e-6, 0.0);
    });
}
END_TEST

START_TEST(overflow_relu_backward)
{
    static const char fn[] = "vib_relu_backward";
    float x[BN], dy[BN], dx[BN], dx0[BN];
    fill_const(x, BN, 1.0f);
    fill_const(dy, BN, 1.0f);
    const outbuf outs[] = {{"dx", dx, sizeof dx, dx0}};
    /* dx accumulated to FLT_MAX plus dy = 0.5 FLT_MAX where x > 0 */
    prefill(dx, dx0, 1.0f, FLT_MAX);
    WITH(dy[BN - 1], 0.5f * FLT_MAX, BAD(vib_relu_backward(BN, x, dy, dx), VIB_ERR_NUMERIC, NULL));
    /* where x <= 0 nothing is added: no overflow, no error */
    WITH2(x[BN - 1], -1.0f, dy[BN - 1], FLT_MAX, {
        ck_assert_ok(vib_relu_backward(BN, x, dy, dx));
        ck_assert(dx[BN - 1] == FLT_MAX);
    });
}
END_TEST

START_TEST(overflow_softmax_xent_forward)
{
    static const char fn[] = "vib_softmax_xent_forward";
    enum { C = 3 };
    float logits[C] = {FLT_MAX, -FLT_MAX, 0.0f}, loss[1], prob[C];
    int32_t label[1] = {1};
    const outbuf outs[] = {{"loss", loss, sizeof loss, NULL}, {"prob", prob, sizeof prob, NULL}};
    arm_outputs(outs, 2);
    /* loss = lse - l_1 = FLT_MAX + FLT_MAX */
    BAD(vib_softmax_xent_forward(1, C, logits, label, loss, prob), VIB_ERR_NUMERIC, NULL);
    /* 1e38 - (-1e38) = 2e38 fits */
    logits[0] = 1e38f;
    logits[1] = -1e38f;
    ck_assert_ok(vib_softmax_xent_forward(1, C, logits, label, loss, prob));
    check_close("loss near FLT_MAX", 0, loss[0], 2e38, 1e-6, 0.0);
}
END_TEST

START_TEST(overflow_softmax_xent_backward)
{
    static const char fn[] = "vib_softmax_xent_backward";
    enum { C = 2 };
    float prob[C] = {1.0f, 0.0f}, dloss[1] = {0.5f * FLT_MAX}, dlogits[C], dlogits0[C];
    int32_t label[1] = {1};
    const outbuf outs[] = {{"dlogits", dlogits, sizeof dlogits, dlogits0}};
    /* dlogits[0] accumulated to FLT_MAX plus dloss * (prob_0 - 0) = 0.5 FLT_MAX */
    dlogits[0] = FLT_MAX;
    dlogits[1] = 0.0f;
    memcpy(dlogits0, dlogits, sizeof dlogits);
    BAD(vib_softmax_xent_backward(1, C, prob, label, dloss, dlogits), VIB_ERR_NUMERIC, NULL);
    /* fits: 0.5 FLT_MAX + 0.25 FLT_MAX on class 0, -0.25 FLT_MAX on class 1 */
    dlogits[0] = 0.5f * FLT_MAX;
    dloss[0] = 0.25f * FLT_MAX;
    ck_assert_ok(vib_softmax_xent_backward(1, C, prob, label, dloss, dlogits));
    check_close("dlogits", 0, dlogits[0], 0.75 * FLT_MAX, 1e-6, 0.0);
    check_close("dlogits", 1, dlogits[1], -0.25 * FLT_MAX, 1e-6, 0.0);
}
END_TEST

/* =====================================================================================
 * Backward against its closed form in double: finite differences only resolve about
 * 1e-3, so this pins every backward to float rounding (a 0.1% error fails here).
 * =================================================================================== */

START_TEST(backward_closed_form)
{
    enum { R = 3, KK = 4, N = R * KK, CC = 5 };
    float mu[N], sigma[N], v[N], dz[N], dmu[N] = {0}, dsigma[N] = {0}, dkl[R];
    fill_normal(31, N, 0.0f, 1.0f, mu);
    fill_positive(32, N, 0.05f, 1.0f, sigma);
    fill_normal(33, N, 0.0f, 1.0f, v);
    fill_normal(34, N, 0.0f, 1.0f, dz);
    fill_normal(35, R, 0.0f, 1.0f, dkl);
    ck_assert_ok(vib_reparam_backward(N, dz, v, dmu, dsigma));
    for (size_t i = 0; i < N; i++) {
        check_rel("reparam dmu", i, dmu[i], dz[i]);
        check_rel("reparam dsigma", i, dsigma[i], (double)dz[i] * v[i]);
    }
    memset(dmu, 0, sizeof dmu);
    memset(dsigma, 0, sizeof dsigma);
    ck_assert_ok(vib_kl_std_normal_backward(R, KK, mu, sigma, dkl, dmu, dsigma));
    for (size_t i = 0; i < N; i++) {
        double g = dkl[i / KK], s = sigma[i];
        check_rel("kl dmu", i, dmu[i], g * mu[i]);
        check_rel("kl dsigma", i, dsigma[i], g * (s - 1.0 / s));
    }
    float rho[N], ds[N], dls[N], drho[N] = {0};
    fill_normal(36, N, 0.0f, 3.0f, rho);
    fill_normal(37, N, 0.0f, 1.0f, ds);
    fill_normal(38, N, 0.0f, 1.0f, dls);
    ck_assert_ok(vib_sigma_head_backward(N, rho, -2.0f, ds, dls, drho));
    for (size_t i = 0; i < N; i++) {
        double x = (double)rho[i] - 2.0;
        check_rel("head drho", i, drho[i], ds[i] * ref_sigmoid(x) + dls[i] * ref_dlog_softplus(x));
    }
    float logits[R * CC], prob[R * CC], loss[R], dloss[R], dlogits[R * CC] = {0};
    int32_t labels[R];
    fill_normal(39, R * CC, 0.0f, 2.0f, logits);
    fill_normal(40, R, 0.0f, 1.0f, dloss);
    fill_labels(41, R, CC, labels);
    ck_assert_ok(vib_softmax_xent_forward(R, CC, logits, labels, loss, prob));
    ck_assert_ok(vib_softmax_xent_backward(R, CC, prob, labels, dloss, dlogits));
    for (size_t r = 0; r < R; r++) {
        double m = logits[r * CC], z = 0.0;
        for (size_t c = 1; c < CC; c++)
            m = fmax(m, logits[r * CC + c]);
        for (size_t c = 0; c < CC; c++)
            z += exp(logits[r * CC + c] - m);
        for (size_t c = 0; c < CC; c++) {
            double p = exp(logits[r * CC + c] - m) / z;
            check_rel("xent dlogits", r * CC + c, dlogits[r * CC + c],
                      dloss[r] * (p - (labels[r] == (int32_t)c ? 1.0 : 0.0)));
        }
    }
    /* prob may be the logits buffer itself: the loss is taken before it is overwritten */
    float inplace[R * CC], loss2[R];
    memcpy(inplace, logits, sizeof inplace);
    ck_assert_ok(vib_softmax_xent_forward(R, CC, inplace, labels, loss2, inplace));
    ck_assert_mem_eq(loss, loss2, sizeof loss);
    ck_assert_mem_eq(prob, inplace, sizeof prob);
    /* a prob outside [0, 1] is no softmax output */
    prob[2] = 1.5f;
    ck_assert_fails(vib_softmax_xent_backward(R, CC, prob, labels, dloss, dlogits),
                    VIB_ERR_INVALID_ARG);
}
END_TEST

/* =====================================================================================
 * Suite
 * =================================================================================== */

Suite *make_nodes_suite(void)
{
    Suite *s = suite_create("nodes");

    TCase *grad = tcase_create("gradients");
    tcase_add_test(grad, grad_reparam);
    tcase_add_test(grad, grad_kl_std_normal);
    tcase_add_test(grad, grad_sigma_head_sigma);
    tcase_add_test(grad, grad_sigma_head_log_sigma);
    tcase_add_test(grad, grad_sigma_head_both);
    tcase_add_test(grad, grad_sigma_head_tail_values);
    tcase_add_test(grad, grad_relu);
    tcase_add_test(grad, grad_softmax_xent);
    tcase_add_test(grad, backward_closed_form);
    suite_add_tcase(s, grad);

    TCase *fwd = tcase_create("forward");
    tcase_add_test(fwd, fwd_reparam);
    tcase_add_test(fwd, fwd_kl_std_normal);
    tcase_add_test(fwd, kl_near_the_prior);
    tcase_add_test(fwd, fwd_kl_diag_gauss);
    tcase_add_test(fwd, fwd_sigma_head);
    tcase_add_test(fwd, fwd_relu);
    tcase_add_test(fwd, fwd_softmax_xent);
    tcase_add_test(fwd, fwd_softmax_xent_huge_logits);
    suite_add_tcase(s, fwd);

    TCase *mc = tcase_create("kl_mc");
    tcase_add_test(mc, mc_kl_diag_gauss);
    tcase_add_test(mc, mc_kl_std_normal);
    tcase_set_timeout(mc, 30); /* generous for sanitizer builds */
    suite_add_tcase(s, mc);

    TCase *values = tcase_create("kl_values");
    tcase_add_test(values, kl_asymmetry_known_values);
    tcase_add_test(values, kl_self_and_gibbs);
    suite_add_tcase(s, values);

    TCase *rmc = tcase_create("reparam_mc");
    tcase_add_test(rmc, reparam_sample_moments);
    tcase_set_timeout(rmc, 30);
    suite_add_tcase(s, rmc);

    TCase *bad = tcase_create("bad_args");
    tcase_add_test(bad, bad_reparam_forward);
    tcase_add_test(bad, bad_reparam_backward);
    tcase_add_test(bad, bad_kl_std_normal);
    tcase_add_test(bad, bad_kl_std_normal_backward);
    tcase_add_test(bad, bad_kl_diag_gauss);
    tcase_add_test(bad, bad_sigma_head_forward);
    tcase_add_test(bad, bad_sigma_head_backward);
    tcase_add_test(bad, bad_relu_forward);
    tcase_add_test(bad, bad_relu_backward);
    tcase_add_test(bad, bad_softmax_xent_forward);
    tcase_add_test(bad, bad_softmax_xent_backward);
    suite_add_tcase(s, bad);

    TCase *ovf = tcase_create("output_overflow");
    tcase_add_test(ovf, overflow_reparam_forward);
    tcase_add_test(ovf, overflow_reparam_backward);
    tcase_add_test(ovf, overflow_kl_std_normal);
    tcase_add_test(ovf, overflow_kl_std_normal_backward);
    tcase_add_test(ovf, overflow_kl_std_normal_backward_fits);
    tcase_add_test(ovf, overflow_sigma_head_forward);
    tcase_add_test(ovf, overflow_sigma_head_backward);
    tcase_add_test(ovf, overflow_relu_backward);
    tcase_add_test(ovf, overflow_softmax_xent_forward);
    tcase_add_test(ovf, overflow_softmax_xent_backward);
    suite_add_tcase(s, ovf);

    TCase *sizes = tcase_create("sizes");
    tcase_add_test(sizes, size_zero);
    tcase_add_test(sizes, size_overflow);
    suite_add_tcase(s, sizes);

    return s;
}
