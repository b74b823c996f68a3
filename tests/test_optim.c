/* test_optim.c - Adam, SGD with momentum, the staircase schedule and the EMA, each
 * against an independent float64 implementation of its formula, plus the contracts:
 * a refused step changes nothing, bad arguments leave outputs untouched. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tests.h"

/* 100 elements: one vectorized block of 64 and a scalar tail of 36, so both code paths
 * of the fused loops are compared with the references. */
enum { N = 100, STEPS = 20 };

/* A gradient whose entries span four decades, so both eps-dominated and
 * sqrt(v)-dominated elements occur. */
static void fill_grad(uint64_t seed, float *g)
{
    fill_normal(seed, N, 0.0f, 1.0f, g);
    for (size_t i = 0; i < N; i++)
        g[i] *= powf(10.0f, (float)(i % 5) - 3.0f);
}

/* Two optimizers of one kind (0: Adam with lr 1e-2, beta1 as given, beta2 0.999,
 * eps 1e-8; 1: SGD with lr 1e-2, momentum 0.9) over n parameters, to step side by side. */
static void optim_pair(int kind, size_t n, float beta1, vib_optim **a, vib_optim **b)
{
    if (kind == 0) {
        ck_assert_ok(vib_adam_create(n, 1e-2f, beta1, 0.999f, 1e-8f, a));
        ck_assert_ok(vib_adam_create(n, 1e-2f, beta1, 0.999f, 1e-8f, b));
    } else {
        ck_assert_ok(vib_sgd_create(n, 1e-2f, 0.9f, a));
        ck_assert_ok(vib_sgd_create(n, 1e-2f, 0.9f, b));
    }
}

/* ---- float64 references ------------------------------------------------------------- */

/* Algorithm 1 of Kingma and Ba (2015); with eps_hat the variant of their section 2's
 * last paragraph, which TensorFlow implements (eps added to the uncorrected sqrt(v)). */
typedef struct {
    double lr, b1, b2, eps;
    int eps_hat;
    double t, m[N], v[N], p[N];
} ref_adam;

static void ref_adam_init(ref_adam *r, float lr, float b1, float b2, float eps, int eps_hat,
                          const float *p0)
{
    memset(r, 0, sizeof *r);
    r->lr = lr;
    r->b1 = b1;
    r->b2 = b2;
    r->eps = eps;
    r->eps_hat = eps_hat;
    for (size_t i = 0; i < N; i++)
        r->p[i] = p0[i];
}

static void ref_adam_step(ref_adam *r, const float *g)
{
    r->t += 1.0;
    const double bc1 = 1.0 - pow(r->b1, r->t), bc2 = 1.0 - pow(r->b2, r->t);
    for (size_t i = 0; i < N; i++) {
        const double gi = g[i];
        r->m[i] = r->b1 * r->m[i] + (1.0 - r->b1) * gi;
        r->v[i] = r->b2 * r->v[i] + (1.0 - r->b2) * gi * gi;
        if (r->eps_hat) {
            const double lr_t = r->lr * sqrt(bc2) / bc1;
            r->p[i] -= lr_t * r->m[i] / (sqrt(r->v[i]) + r->eps);
        } else {
            const double mhat = r->m[i] / bc1, vhat = r->v[i] / bc2;
            r->p[i] -= r->lr * mhat / (sqrt(vhat) + r->eps);
        }
    }
}

static double max_abs_diff(const float *a, const double *b)
{
    double worst = 0.0;
    for (size_t i = 0; i < N; i++)
        worst = fmax(worst, fabs((double)a[i] - b[i]));
    return worst;
}

/* ---- Adam ------------------------------------------------------------------------------ */

START_TEST(adam_matches_reference)
{
    static const struct {
        float lr, b1, b2, eps;
    } cfg[] = {
        {1e-3f, 0.9f, 0.999f, 1e-8f}, /* the defaults of the Adam paper */
        {1e-2f, 0.5f, 0.999f, 1e-8f}, /* the VIB paper's beta1 = 0.5 */
        {5e-2f, 0.0f, 0.9f, 1e-1f},   /* no momentum; eps comparable to sqrt(vhat) */
        {2e-2f, 0.95f, 0.5f, 1e-3f},
    };
    for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++) {
        float p[N], g[N];
        fill_normal(100 + c, N, 0.0f, 1.0f, p);
        ref_adam ref, tf;
        ref_adam_init(&ref, cfg[c].lr, cfg[c].b1, cfg[c].b2, cfg[c].eps, 0, p);
        ref_adam_init(&tf, cfg[c].lr, cfg[c].b1, cfg[c].b2, cfg[c].eps, 1, p);
        vib_optim *opt = NULL;
        ck_assert_ok(vib_adam_create(N, cfg[c].lr, cfg[c].b1, cfg[c].b2, cfg[c].eps, &opt));
        double tf_gap = 0.0;
        for (int s = 1; s <= STEPS; s++) {
            fill_grad(1000 * c + s, g);
            ck_assert_ok(vib_optim_step(opt, p, g));
            ref_adam_step(&ref, g);
            ref_adam_step(&tf, g);
            /* Each step moves a parameter by about lr, computed to ~1e-7 relative, and
             * rounds p (|p| < 4) to half an ulp, 2.4e-7: about 5e-7 after 20 steps. */
            double err = max_abs_diff(p, ref.p), tol = 1e-5 * cfg[c].lr * s + 1.5e-6;
            ck_assert_msg(err <= tol, "config %zu step %d: |p - ref| = %g > %g", c, s, err,
                          tol);
            tf_gap = fmax(tf_gap, max_abs_diff(p, tf.p));
        }
        ck_assert_uint_eq(vib_optim_steps(opt), STEPS);
        /* Where eps is not negligible the eps-hat (TensorFlow) form is measurably
         * different, and the library follows the header's (the paper's) form. */
        if (cfg[c].eps >= 1e-2f)
            ck_assert_msg(tf_gap > 100.0 * (1e-5 * cfg[c].lr * STEPS + 1.5e-6),
                          "config %zu: eps-hat form only %g away", c, tf_gap);
        vib_optim_free(opt);
    }
}
END_TEST

/* f(x) = 1/2 sum_i h_i (x_i - c_i)^2 with curvatures h from 1 to 1000 (condition number
 * 1000): plain gradient descent would need lr < 2/1000 and ~7000 steps for the flat
 * direction; Adam's per-coordinate scaling does not care. */
START_TEST(adam_minimizes_ill_conditioned_quadratic)
{
    enum { D = 10, ITERS = 6000 };
    double h[D], c[D];
    float x[D], g[D];
    for (int i = 0; i < D; i++) {
        h[i] = pow(10.0, 3.0 * i / (D - 1));
        c[i] = (i - 4.5) / 3.0;
        x[i] = 0.0f;
    }
    double f0 = 0.0;
    for (int i = 0; i < D; i++)
        f0 += 0.5 * h[i] * c[i] * c[i];
    vib_optim *opt = NULL;
    ck_assert_ok(vib_adam_create(D, 0.05f, 0.9f, 0.999f, 1e-8f, &opt));
    for (uint64_t s = 0; s < ITERS; s++) {
        /* Adam's iterates hover within about lr of the optimum; the staircase shrinks
         * that radius by 2 every 400 steps. */
        float lr;
        ck_assert_ok(vib_lr_staircase(0.05f, 0.5f, 400, s, &lr));
        ck_assert_ok(vib_optim_set_lr(opt, lr));
        for (int i = 0; i < D; i++)
            g[i] = (float)(h[i] * ((double)x[i] - c[i]));
        ck_assert_ok(vib_optim_step(opt, x, g));
    }
    double f = 0.0;
    for (int i = 0; i < D; i++) {
        double d = (double)x[i] - c[i];
        f += 0.5 * h[i] * d * d;
        ck_assert_msg(fabs(d) < 1e-4, "x[%d] = %g, optimum %g", i, (double)x[i], c[i]);
    }
    ck_assert_msg(f < 1e-8 * f0, "f = %g from f0 = %g", f, f0);
    vib_optim_free(opt);
}
END_TEST

/* ---- SGD with momentum ----------------------------------------------------------------- */

START_TEST(sgd_matches_reference)
{
    static const struct {
        float lr, momentum;
    } cfg[] = {{0.1f, 0.0f}, {0.05f, 0.5f}, {0.01f, 0.9f}, {0.2f, 0.99f}};
    for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++) {
        float p[N], g[N];
        double rp[N], ru[N] = {0};
        fill_normal(200 + c, N, 0.0f, 1.0f, p);
        for (size_t i = 0; i < N; i++)
            rp[i] = p[i];
        vib_optim *opt = NULL;
        ck_assert_ok(vib_sgd_create(N, cfg[c].lr, cfg[c].momentum, &opt));
        for (int s = 1; s <= STEPS; s++) {
            fill_grad(3000 * c + s, g);
            ck_assert_ok(vib_optim_step(opt, p, g));
            for (size_t i = 0; i < N; i++) {
                ru[i] = (double)cfg[c].momentum * ru[i] + g[i]; /* u = mu u + g */
                rp[i] -= (double)cfg[c].lr * ru[i];             /* p -= lr u */
            }
            /* p moves by up to lr |u| <= lr sum|g| a step; float keeps it to ~6e-8
             * relative each time. */
            for (size_t i = 0; i < N; i++) {
                double err = fabs((double)p[i] - rp[i]);
                ck_assert_msg(err <= 1e-6 * s * (1.0 + fabs(rp[i])),
                              "config %zu step %d [%zu]: |p - ref| = %g at %g", c, s, i, err,
                              rp[i]);
            }
        }
        vib_optim_free(opt);
    }
}
END_TEST

/* ---- learning rate, step count --------------------------------------------------------- */

/* Both optimizers are linear in lr for a fixed state: a step taken at 3 lr moves each
 * parameter 3 times as far as the twin's step at lr from the same state. */
START_TEST(set_lr_changes_the_next_step)
{
    for (int kind = 0; kind < 2; kind++) {
        float pa[N], pb[N], g[N], before[N];
        fill_normal(300, N, 0.0f, 1.0f, pa);
        memcpy(pb, pa, sizeof pa);
        vib_optim *a = NULL, *b = NULL;
        optim_pair(kind, N, 0.9f, &a, &b);
        ck_assert(vib_optim_lr(a) == 1e-2f);
        fill_grad(301, g);
        ck_assert_ok(vib_optim_step(a, pa, g));
        ck_assert_ok(vib_optim_step(b, pb, g));
        ck_assert_mem_eq(pa, pb, sizeof pa);
        ck_assert_ok(vib_optim_set_lr(b, 3e-2f));
        ck_assert(vib_optim_lr(b) == 3e-2f);
        ck_assert(vib_optim_lr(a) == 1e-2f);
        memcpy(before, pa, sizeof pa);
        fill_grad(302, g);
        ck_assert_ok(vib_optim_step(a, pa, g));
        ck_assert_ok(vib_optim_step(b, pb, g));
        for (size_t i = 0; i < N; i++) {
            double da = (double)pa[i] - before[i], db = (double)pb[i] - before[i];
            /* Each difference carries the rounding of p, half an ulp of |p| ~ 1. */
            ck_assert_msg(fabs(db - 3.0 * da) <= 1e-5 * fabs(db) + 4e-7 * (1.0 + fabs(before[i])),
                          "kind %d [%zu]: step %g at 3 lr vs %g at lr", kind, i, db, da);
        }
        vib_optim_free(a);
        vib_optim_free(b);
    }
}
END_TEST

START_TEST(steps_counter)
{
    float p[N], g[N];
    fill_normal(400, N, 0.0f, 1.0f, p);
    fill_grad(401, g);
    vib_optim *opt = NULL;
    ck_assert_ok(vib_adam_create(N, 1e-3f, 0.9f, 0.999f, 1e-8f, &opt));
    ck_assert_uint_eq(vib_optim_steps(opt), 0);
    for (int s = 1; s <= 3; s++) {
        ck_assert_ok(vib_optim_step(opt, p, g));
        ck_assert_uint_eq(vib_optim_steps(opt), s);
    }
    g[5] = NAN;
    ck_assert_fails(vib_optim_step(opt, p, g), VIB_ERR_NUMERIC);
    ck_assert_uint_eq(vib_optim_steps(opt), 3); /* a refused step does not count */
    vib_optim_free(opt);
    ck_assert_uint_eq(vib_optim_steps(NULL), 0);

    /* An empty optimizer: each step is a no-op that still counts, buffers may be NULL. */
    vib_optim *empty = NULL;
    ck_assert_ok(vib_sgd_create(0, 0.1f, 0.5f, &empty));
    ck_assert_ok(vib_optim_step(empty, NULL, NULL));
    ck_assert_ok(vib_optim_step(empty, p, g));
    ck_assert_uint_eq(vib_optim_steps(empty), 2);
    vib_optim_free(empty);
}
END_TEST

/* The lengths the handles were created for: what a caller checks its arrays against. */
START_TEST(handle_sizes)
{
    static const size_t lengths[] = {0, 1, N, 70001};
    float *init = calloc(70001, sizeof *init);
    for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
        const size_t n = lengths[i];
        vib_optim *adam = NULL, *sgd = NULL;
        vib_ema *ema = NULL;
        ck_assert_ok(vib_adam_create(n, 1e-3f, 0.9f, 0.999f, 1e-8f, &adam));
        ck_assert_ok(vib_sgd_create(n, 0.1f, 0.5f, &sgd));
        ck_assert_ok(vib_ema_create(n, 0.99f, init, &ema));
        ck_assert_uint_eq(vib_optim_size(adam), n);
        ck_assert_uint_eq(vib_optim_size(sgd), n);
        ck_assert_uint_eq(vib_ema_size(ema), n);
        vib_optim_free(adam);
        vib_optim_free(sgd);
        vib_ema_free(ema);
    }
    free(init);
    ck_assert_uint_eq(vib_optim_size(NULL), 0);
    ck_assert_uint_eq(vib_ema_size(NULL), 0);
}
END_TEST

/* ---- a refused step changes nothing ---------------------------------------------------- */

/* Optimizer a sees g1, a bad gradient (refused), g2, g3; its twin b sees g1, g2, g3.
 * If the refused step had touched the moments, the momentum or Adam's t, the later steps
 * would differ: equal bits prove it did not. */
START_TEST(bad_gradient_changes_nothing)
{
    for (int kind = 0; kind < 2; kind++) {
        float pa[N], pb[N], g[N], bad[N], saved[N];
        fill_normal(500, N, 0.0f, 1.0f, pa);
        memcpy(pb, pa, sizeof pa);
        vib_optim *a = NULL, *b = NULL;
        optim_pair(kind, N, 0.5f, &a, &b);
        fill_grad(501, g);
        ck_assert_ok(vib_optim_step(a, pa, g));
        ck_assert_ok(vib_optim_step(b, pb, g));

        /* NaN and infinities, in the vectorized block (3) and in the tail (70, 99).
         * Every entry but the bad one is a valid gradient, so a partial update would
         * show. Then a finite gradient whose square (Adam) or momentum sum (SGD) would
         * overflow float. */
        const float huge = kind == 0 ? 1e20f : 1e38f;
        const struct {
            size_t at;
            float value;
        } cases[] = {{3, NAN}, {70, INFINITY}, {99, -INFINITY}, {0, -NAN}, {64, huge}};
        for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
            fill_grad(502 + k, bad);
            bad[cases[k].at] = cases[k].value;
            memcpy(saved, pa, sizeof pa);
            ck_assert_fails(vib_optim_step(a, pa, bad), VIB_ERR_NUMERIC);
            ck_assert_mem_eq(pa, saved, sizeof pa);
            ck_assert_uint_eq(vib_optim_steps(a), 1);
        }

        for (int s = 0; s < 2; s++) {
            fill_grad(520 + s, g);
            ck_assert_ok(vib_optim_step(a, pa, g));
            ck_assert_ok(vib_optim_step(b, pb, g));
            ck_assert_mem_eq(pa, pb, sizeof pa);
        }
        ck_assert_uint_eq(vib_optim_steps(a), vib_optim_steps(b));
        vib_optim_free(a);
        vib_optim_free(b);
    }
}
END_TEST

/* ---- a step that would overflow a parameter is refused ----------------------------- */

/* All finite or a step was refused: p unchanged (bits), the count unchanged. */
static void all_finite(const float *p, size_t n, const char *what, int step)
{
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(isfinite(p[i]), "%s step %d: p[%zu] = %g", what, step, i, (double)p[i]);
}

/* Plain SGD at lr 1 with g = 1.7e38 (accepted: below FLT_MAX / 2) moves a parameter from
 * 0 to -1.7e38 and -3.4e38, exactly; a third step would give -5.1e38, beyond FLT_MAX, and
 * is refused, through vib_optim_step and the fused step alike, leaving the parameters,
 * the average and the count as they were. */
START_TEST(sgd_overflowing_step_is_refused)
{
    for (int fused = 0; fused < 2; fused++) {
        float p[N], g[N], saved[N], avg0[N];
        fill_normal(1100, N, 0.0f, 1.0f, p);
        p[70] = 0.0f;
        vib_optim *opt = NULL;
        vib_ema *ema = NULL;
        ck_assert_ok(vib_sgd_create(N, 1.0f, 0.0f, &opt));
        ck_assert_ok(vib_ema_create(N, 0.9f, p, &ema));
        for (int s = 1; s <= 2; s++) {
            fill_grad(1100 + s, g);
            g[70] = 1.7e38f;
            ck_assert_ok(fused ? vib_optim_step_ema(opt, p, g, ema) : vib_optim_step(opt, p, g));
            ck_assert(p[70] == (float)s * -1.7e38f);
            all_finite(p, N, "sgd", s);
        }
        fill_grad(1103, g);
        g[70] = 1.7e38f;
        memcpy(saved, p, sizeof p);
        memcpy(avg0, vib_ema_values(ema), sizeof avg0);
        ck_assert_fails(fused ? vib_optim_step_ema(opt, p, g, ema) : vib_optim_step(opt, p, g),
                        VIB_ERR_NUMERIC);
        ck_assert_msg(strstr(vib_last_error(), "params[70]") != NULL, "%s", vib_last_error());
        ck_assert_mem_eq(p, saved, sizeof p);
        ck_assert_mem_eq(vib_ema_values(ema), avg0, sizeof avg0);
        ck_assert_uint_eq(vib_optim_steps(opt), 2);
        vib_optim_free(opt);
        vib_ema_free(ema);
    }
}
END_TEST

/* With momentum the velocity, not the gradient, overflows the parameter: lr 4, momentum
 * 0.5 and g = 8e37 (below (1 - 0.5) FLT_MAX / 2) give u = 8e37, a move of 3.2e38, then
 * u = 1.2e38 and a move of 4.8e38, which overflows. The refused step must leave u alone:
 * a twin that never saw it takes the same next step, bit for bit. */
START_TEST(sgd_momentum_overflow_leaves_state)
{
    float pa[N], pb[N], g[N], saved[N];
    fill_normal(1200, N, 0.0f, 1.0f, pa);
    pa[3] = 0.0f;
    memcpy(pb, pa, sizeof pa);
    vib_optim *a = NULL, *b = NULL;
    ck_assert_ok(vib_sgd_create(N, 4.0f, 0.5f, &a));
    ck_assert_ok(vib_sgd_create(N, 4.0f, 0.5f, &b));
    fill_grad(1201, g);
    g[3] = 8e37f;
    ck_assert_ok(vib_optim_step(a, pa, g));
    ck_assert_ok(vib_optim_step(b, pb, g));
    ck_assert(pa[3] == -3.2e38f);
    memcpy(saved, pa, sizeof pa);
    ck_assert_fails(vib_optim_step(a, pa, g), VIB_ERR_NUMERIC);
    ck_assert_msg(strstr(vib_last_error(), "params[3]") != NULL, "%s", vib_last_error());
    ck_assert_mem_eq(pa, saved, sizeof pa);
    ck_assert_uint_eq(vib_optim_steps(a), 1);
    /* A tiny rate makes the next step safe; a changed u would move p[3] by 1e-30 * 4e37. */
    ck_assert_ok(vib_optim_set_lr(a, 1e-30f));
    ck_assert_ok(vib_optim_set_lr(b, 1e-30f));
    ck_assert_ok(vib_optim_step(a, pa, g));
    ck_assert_ok(vib_optim_step(b, pb, g));
    ck_assert_mem_eq(pa, pb, sizeof pa);
    vib_optim_free(a);
    vib_optim_free(b);
}
END_TEST

/* The momentum sum grows over steps: lr 1e30 and momentum 0.99 with g = -1 take u to
 * 100, and a parameter at FLT_MAX overflows once a move reaches half its ulp, 2^103,
 * that is once u >= 2^103 / 1e30 = 10.14 (step 11). No single gradient is large, so a
 * check that looked at this step's gradients alone would let that step through. Every
 * accepted step leaves every parameter finite, and the one that would not is refused. */
START_TEST(sgd_momentum_sum_overflow_is_refused)
{
    float p[N], g[N], saved[N];
    fill_normal(1300, N, 0.0f, 1.0f, p);
    p[3] = FLT_MAX;
    fill_const(g, N, -1.0f);
    /* The step at which float's u first makes FLT_MAX - (-lr u) overflow. */
    int want = 0;
    float u = 0.0f;
    for (int s = 1; want == 0 && s <= 40; s++) {
        u = 0.99f * u + -1.0f;
        if (!isfinite(FLT_MAX - 1e30f * u))
            want = s;
    }
    ck_assert_int_eq(want, 11);
    vib_optim *opt = NULL;
    ck_assert_ok(vib_sgd_create(N, 1e30f, 0.99f, &opt));
    for (int s = 1; s < want; s++) {
        ck_assert_ok(vib_optim_step(opt, p, g));
        all_finite(p, N, "momentum sum", s);
    }
    memcpy(saved, p, sizeof p);
    ck_assert_fails(vib_optim_step(opt, p, g), VIB_ERR_NUMERIC);
    ck_assert_msg(strstr(vib_last_error(), "params[3]") != NULL, "%s", vib_last_error());
    ck_assert_mem_eq(p, saved, sizeof p);
    ck_assert_uint_eq(vib_optim_steps(opt), (uint64_t)want - 1);
    vib_optim_free(opt);
}
END_TEST

/* Adam with beta2 = 0 has v = g^2 of this step only, while m remembers earlier steps:
 * after g = 1 then g = 0 (beta1 0.9), mhat = 0.09 / 0.19 = 0.47 and vhat = 0, so the
 * step is lr * 0.47 / eps, far beyond the lr max(1, (1 - beta1) / sqrt(1 - beta2)) that
 * bounds typical steps; with eps = 1e-40 the ratio itself overflows float even at lr
 * 1e-3. That step is refused, and the moments and t stay as they were: the twin that never
 * saw it takes the same next step, bit for bit, plain and fused. */
START_TEST(adam_overflowing_step_is_refused)
{
    for (int fused = 0; fused < 2; fused++) {
        float pa[N], pb[N], g[N], saved[N], avg0[N];
        fill_normal(1400, N, 0.0f, 1.0f, pa);
        memcpy(pb, pa, sizeof pa);
        vib_optim *a = NULL, *b = NULL;
        vib_ema *ea = NULL, *eb = NULL;
        ck_assert_ok(vib_adam_create(N, 1e-3f, 0.9f, 0.0f, 1e-40f, &a));
        ck_assert_ok(vib_adam_create(N, 1e-3f, 0.9f, 0.0f, 1e-40f, &b));
        ck_assert_ok(vib_ema_create(N, 0.9f, pa, &ea));
        ck_assert_ok(vib_ema_create(N, 0.9f, pb, &eb));
        fill_grad(1401, g);
        g[70] = 1.0f;
        ck_assert_ok(vib_optim_step_ema(a, pa, g, fused ? ea : NULL));
        ck_assert_ok(vib_optim_step_ema(b, pb, g, fused ? eb : NULL));
        all_finite(pa, N, "adam", 1);
        fill_grad(1402, g);
        g[70] = 0.0f;
        memcpy(saved, pa, sizeof pa);
        memcpy(avg0, vib_ema_values(ea), sizeof avg0);
        ck_assert_fails(vib_optim_step_ema(a, pa, g, fused ? ea : NULL), VIB_ERR_NUMERIC);
        ck_assert_msg(strstr(vib_last_error(), "params[70]") != NULL, "%s", vib_last_error());
        ck_assert_mem_eq(pa, saved, sizeof pa);
        ck_assert_mem_eq(vib_ema_values(ea), avg0, sizeof avg0);
        ck_assert_uint_eq(vib_optim_steps(a), 1);
        g[70] = 0.5f; /* now vhat = 0.25 and the step is of order lr */
        ck_assert_ok(vib_optim_step_ema(a, pa, g, fused ? ea : NULL));
        ck_assert_ok(vib_optim_step_ema(b, pb, g, fused ? eb : NULL));
        ck_assert_mem_eq(pa, pb, sizeof pa);
        ck_assert_mem_eq(vib_ema_values(ea), vib_ema_values(eb), sizeof avg0);
        all_finite(pa, N, "adam", 2);
        vib_optim_free(a);
        vib_optim_free(b);
        vib_ema_free(ea);
        vib_ema_free(eb);
    }
}
END_TEST

/* Over a threaded array, huge moves that stay finite are taken with the bits of the
 * float formula, and of two parameters that would overflow the first is reported
 * whatever the thread count. */
START_TEST(overflow_check_threaded)
{
    const size_t n = 70001;
    float *p = malloc(n * sizeof(float)), *g = malloc(n * sizeof(float));
    float *p0 = malloc(n * sizeof(float));
    for (int threads = 1; threads <= 2; threads++) {
        ck_assert_ok(vib_set_num_threads(threads));
        fill_normal(1500, n, 0.0f, 1.0f, p);
        fill_normal(1501, n, 0.0f, 1.0f, g);
        g[10] = 1.7e38f; /* moves p[10] by -1.7e38: finite */
        vib_optim *o = NULL;
        ck_assert_ok(vib_sgd_create(n, 1.0f, 0.0f, &o));
        memcpy(p0, p, n * sizeof(float));
        ck_assert_ok(vib_optim_step(o, p, g));
        for (size_t i = 0; i < n; i++)
            ck_assert(p[i] == p0[i] - g[i]);
        p[5000] = 3e38f;
        g[5000] = -1e38f;
        p[69996] = -3e38f;
        g[69996] = 1e38f;
        memcpy(p0, p, n * sizeof(float));
        ck_assert_fails(vib_optim_step(o, p, g), VIB_ERR_NUMERIC);
        ck_assert_msg(strstr(vib_last_error(), "params[5000]") != NULL, "%s", vib_last_error());
        p[5000] = 0.0f;
        p0[5000] = 0.0f;
        ck_assert_fails(vib_optim_step(o, p, g), VIB_ERR_NUMERIC);
        ck_assert_msg(strstr(vib_last_error(), "params[69996]") != NULL, "%s",
                      vib_last_error());
        ck_assert(memcmp(p, p0, n * sizeof(float)) == 0);
        ck_assert_uint_eq(vib_optim_steps(o), 1);
        vib_optim_free(o);
    }
    free(p);
    free(g);
    free(p0);
    ck_assert_ok(vib_set_num_threads(0));
}
END_TEST

/* ---- staircase schedule ----------------------------------------------------------------- */

START_TEST(staircase_values)
{
    /* The paper: lr0 1e-4, rate 0.97 every two epochs (1200 steps of batch 100). */
    const float lr0 = 1e-4f, rate = 0.97f;
    const uint64_t ds = 1200;
    const struct {
        uint64_t step, k; /* k = floor(step / ds) */
    } at[] = {{0, 0},       {ds - 1, 0},  {ds, 1},           {ds + 1, 1},
              {2 * ds - 1, 1}, {5 * ds, 5}, {100 * ds + 7, 100}};
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        float lr = -1.0f;
        ck_assert_ok(vib_lr_staircase(lr0, rate, ds, at[i].step, &lr));
        const float want = (float)((double)lr0 * pow((double)rate, (double)at[i].k));
        ck_assert_msg(lr == want, "step %llu: lr %.9g, want %.9g",
                      (unsigned long long)at[i].step, (double)lr, (double)want);
    }
    float lr;
    ck_assert_ok(vib_lr_staircase(lr0, rate, ds, 0, &lr));
    ck_assert(lr == lr0);
    /* rate 1 is a constant schedule; decay_steps 1 decays every step. */
    ck_assert_ok(vib_lr_staircase(0.5f, 1.0f, 3, 1000000, &lr));
    ck_assert(lr == 0.5f);
    ck_assert_ok(vib_lr_staircase(1.0f, 0.5f, 1, 3, &lr));
    ck_assert(lr == 0.125f);
}
END_TEST

/* ---- EMA ---------------------------------------------------------------------------------- */

/* The first three updates use d = 1/10, 2/11 and min(decay, 3/12): each average must be
 * the float nearest d avg + (1 - d) p, computed here in double. */
START_TEST(ema_warmup_exact)
{
    const float decays[] = {0.999f, 0.2f}; /* 0.2 < 3/12: the third update uses decay */
    for (size_t c = 0; c < 2; c++) {
        float init[N], p[N];
        double want[N];
        fill_normal(600 + c, N, 0.0f, 1.0f, init);
        for (size_t i = 0; i < N; i++)
            want[i] = init[i];
        vib_ema *ema = NULL;
        ck_assert_ok(vib_ema_create(N, decays[c], init, &ema));
        ck_assert_mem_eq(vib_ema_values(ema), init, sizeof init);
        const double d[3] = {1.0 / 10.0, 2.0 / 11.0, fmin((double)decays[c], 3.0 / 12.0)};
        for (int t = 0; t < 3; t++) {
            fill_normal(610 + t, N, 1.0f, 2.0f, p);
            ck_assert_ok(vib_ema_update(ema, p));
            const float *avg = vib_ema_values(ema);
            for (size_t i = 0; i < N; i++) {
                want[i] = (float)(d[t] * want[i] + (1.0 - d[t]) * (double)p[i]);
                ck_assert_msg(avg[i] == (float)want[i], "decay %g update %d [%zu]: %.9g vs %.9g",
                              (double)decays[c], t, i, (double)avg[i], want[i]);
            }
        }
        vib_ema_free(ema);
    }
}
END_TEST

/* With a constant input x the error avg - x shrinks by exactly d_t per update, so it is
 * prod_t d_t times the initial one. In float it stops shrinking once d e rounds back to
 * e, that is below 1/(2 (1 - d)) ulps; and an average that equals x stays x exactly. */
START_TEST(ema_converges_to_constant)
{
    const float decay = 0.99f;
    float init[N], x[N];
    fill_normal(700, N, 0.0f, 1.0f, init);
    fill_normal(701, N, 3.0f, 1.0f, x);
    vib_ema *ema = NULL;
    ck_assert_ok(vib_ema_create(N, decay, init, &ema));
    double shrink = 1.0;
    for (int t = 0; t < 4000; t++) {
        ck_assert_ok(vib_ema_update(ema, x));
        shrink *= fmin((double)decay, (1.0 + t) / (10.0 + t));
        if (t == 99) {
            const float *avg = vib_ema_values(ema);
            for (size_t i = 0; i < N; i++) {
                double err = (double)avg[i] - x[i], err0 = (double)init[i] - x[i];
                ck_assert_msg(fabs(err - shrink * err0) <= 1e-5 * fabs(shrink * err0) + 1e-6,
                              "[%zu]: error %g, want %g", i, err, shrink * err0);
            }
        }
    }
    const float *avg = vib_ema_values(ema);
    for (size_t i = 0; i < N; i++) {
        double ulp = (double)nextafterf(x[i], INFINITY) - x[i];
        double err = fabs((double)avg[i] - x[i]) / ulp;
        ck_assert_msg(err <= 0.5 / (1.0 - (double)decay), "[%zu]: %g ulps from %.9g", i, err,
                      (double)x[i]);
    }
    vib_ema_free(ema);

    /* Started at x, the average never moves, through the warm-up and after it. */
    ck_assert_ok(vib_ema_create(N, decay, x, &ema));
    for (int t = 0; t < 100; t++)
        ck_assert_ok(vib_ema_update(ema, x));
    ck_assert_mem_eq(vib_ema_values(ema), x, sizeof x);
    vib_ema_free(ema);
}
END_TEST

/* A refused update leaves the average and its update count as they were: the next good
 * update matches a twin that never saw the bad input. */
START_TEST(ema_bad_params_change_nothing)
{
    float init[N], p[N], bad[N], saved[N];
    fill_normal(800, N, 0.0f, 1.0f, init);
    vib_ema *a = NULL, *b = NULL;
    ck_assert_ok(vib_ema_create(N, 0.999f, init, &a));
    ck_assert_ok(vib_ema_create(N, 0.999f, init, &b));
    fill_normal(801, N, 0.0f, 1.0f, p);
    ck_assert_ok(vib_ema_update(a, p));
    ck_assert_ok(vib_ema_update(b, p));
    fill_normal(802, N, 0.0f, 1.0f, bad);
    bad[80] = INFINITY;
    memcpy(saved, vib_ema_values(a), sizeof saved);
    ck_assert_fails(vib_ema_update(a, bad), VIB_ERR_NUMERIC);
    ck_assert_mem_eq(vib_ema_values(a), saved, sizeof saved);
    bad[80] = 0.0f;
    bad[2] = NAN;
    ck_assert_fails(vib_ema_update(a, bad), VIB_ERR_NUMERIC);
    ck_assert_mem_eq(vib_ema_values(a), saved, sizeof saved);
    fill_normal(803, N, 0.0f, 1.0f, p);
    ck_assert_ok(vib_ema_update(a, p)); /* t = 1 in both, d = 2/11 */
    ck_assert_ok(vib_ema_update(b, p));
    ck_assert_mem_eq(vib_ema_values(a), vib_ema_values(b), N * sizeof(float));
    vib_ema_free(a);
    vib_ema_free(b);
}
END_TEST

/* ---- bad arguments ------------------------------------------------------------------------ */

START_TEST(create_rejects_bad_arguments)
{
    static int sentinel;
    vib_optim *const mark = (vib_optim *)(void *)&sentinel;
    vib_optim *o = mark;
#define ADAM_FAILS(n, lr, b1, b2, eps, status)                                             \
    do {                                                                                   \
        ck_assert_fails(vib_adam_create(n, lr, b1, b2, eps, &o), status);                  \
        ck_assert_ptr_eq(o, mark);                                                         \
    } while (0)
    ck_assert_fails(vib_adam_create(N, 1e-3f, 0.9f, 0.999f, 1e-8f, NULL), VIB_ERR_INVALID_ARG);
    ADAM_FAILS(N, 0.0f, 0.9f, 0.999f, 1e-8f, VIB_ERR_INVALID_ARG);
    ADAM_FAILS(N, -1e-3f, 0.9f, 0.999f, 1e-8f, VIB_ERR_INVALID_ARG);
    ADAM_FAILS(N, NAN, 0.9f, 0.999f, 1e-8f, VIB_ERR_NUMERIC);
    ADAM_FAILS(N, INFINITY, 0.9f, 0.999f, 1e-8f, VIB_ERR_NUMERIC);
    ADAM_FAILS(N, 1e-3f, -0.1f, 0.999f, 1e-8f, VIB_ERR_INVALID_ARG);
    ADAM_FAILS(N, 1e-3f, 1.0f, 0.999f, 1e-8f, VIB_ERR_INVALID_ARG);
    ADAM_FAILS(N, 1e-3f, NAN, 0.999f, 1e-8f, VIB_ERR_NUMERIC);
    ADAM_FAILS(N, 1e-3f, 0.9f, -0.5f, 1e-8f, VIB_ERR_INVALID_ARG);
    ADAM_FAILS(N, 1e-3f, 0.9f, 1.0f, 1e-8f, VIB_ERR_INVALID_ARG);
    ADAM_FAILS(N, 1e-3f, 0.9f, INFINITY, 1e-8f, VIB_ERR_NUMERIC);
    ADAM_FAILS(N, 1e-3f, 0.9f, 0.999f, 0.0f, VIB_ERR_INVALID_ARG);
    ADAM_FAILS(N, 1e-3f, 0.9f, 0.999f, -1e-8f, VIB_ERR_INVALID_ARG);
    ADAM_FAILS(N, 1e-3f, 0.9f, 0.999f, NAN, VIB_ERR_NUMERIC);
    /* n * sizeof(float) wraps, or the state would pass SIZE_MAX: refused before any
     * allocation is attempted. */
    ADAM_FAILS(SIZE_MAX / 2, 1e-3f, 0.9f, 0.999f, 1e-8f, VIB_ERR_NOMEM);
    ADAM_FAILS(SIZE_MAX / 4, 1e-3f, 0.9f, 0.999f, 1e-8f, VIB_ERR_NOMEM);
#undef ADAM_FAILS
    /* The bounds themselves are allowed: beta1 = beta2 = 0. */
    ck_assert_ok(vib_adam_create(N, 1e-3f, 0.0f, 0.0f, 1e-8f, &o));
    vib_optim_free(o);

    o = mark;
#define SGD_FAILS(n, lr, mom, status)                                                      \
    do {                                                                                   \
        ck_assert_fails(vib_sgd_create(n, lr, mom, &o), status);                           \
        ck_assert_ptr_eq(o, mark);                                                         \
    } while (0)
    ck_assert_fails(vib_sgd_create(N, 0.1f, 0.9f, NULL), VIB_ERR_INVALID_ARG);
    SGD_FAILS(N, 0.0f, 0.9f, VIB_ERR_INVALID_ARG);
    SGD_FAILS(N, -0.1f, 0.9f, VIB_ERR_INVALID_ARG);
    SGD_FAILS(N, NAN, 0.9f, VIB_ERR_NUMERIC);
    SGD_FAILS(N, -INFINITY, 0.9f, VIB_ERR_NUMERIC);
    SGD_FAILS(N, 0.1f, -0.1f, VIB_ERR_INVALID_ARG);
    SGD_FAILS(N, 0.1f, 1.0f, VIB_ERR_INVALID_ARG);
    SGD_FAILS(N, 0.1f, NAN, VIB_ERR_NUMERIC);
    SGD_FAILS(SIZE_MAX / 2, 0.1f, 0.9f, VIB_ERR_NOMEM);
#undef SGD_FAILS

    static int ema_sentinel;
    vib_ema *const emark = (vib_ema *)(void *)&ema_sentinel;
    vib_ema *e = emark;
    float init[4] = {1, 2, 3, 4};
#define EMA_FAILS(n, decay, init_, status)                                                 \
    do {                                                                                   \
        ck_assert_fails(vib_ema_create(n, decay, init_, &e), status);                      \
        ck_assert_ptr_eq(e, emark);                                                        \
    } while (0)
    ck_assert_fails(vib_ema_create(4, 0.9f, init, NULL), VIB_ERR_INVALID_ARG);
    EMA_FAILS(4, 0.0f, init, VIB_ERR_INVALID_ARG);
    EMA_FAILS(4, 1.0f, init, VIB_ERR_INVALID_ARG);
    EMA_FAILS(4, -0.5f, init, VIB_ERR_INVALID_ARG);
    EMA_FAILS(4, NAN, init, VIB_ERR_NUMERIC);
    EMA_FAILS(4, 0.9f, NULL, VIB_ERR_INVALID_ARG);
    EMA_FAILS(SIZE_MAX / 2, 0.9f, init, VIB_ERR_NOMEM);
    init[3] = NAN;
    EMA_FAILS(4, 0.9f, init, VIB_ERR_NUMERIC);
#undef EMA_FAILS
    /* n = 0: init may be NULL, updates are no-ops that accept NULL. */
    ck_assert_ok(vib_ema_create(0, 0.9f, NULL, &e));
    ck_assert_ok(vib_ema_update(e, NULL));
    vib_ema_free(e);

    vib_optim_free(NULL);
    vib_ema_free(NULL);
}
END_TEST

START_TEST(calls_reject_bad_arguments)
{
    float p[N], g[N], saved[N];
    fill_normal(900, N, 0.0f, 1.0f, p);
    fill_grad(901, g);
    memcpy(saved, p, sizeof p);
    vib_optim *opt = NULL;
    ck_assert_ok(vib_adam_create(N, 1e-3f, 0.9f, 0.999f, 1e-8f, &opt));
    ck_assert_fails(vib_optim_step(NULL, p, g), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_optim_step(opt, NULL, g), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_optim_step(opt, p, NULL), VIB_ERR_INVALID_ARG);
    /* params and grads must not share memory (the update reads through restrict). */
    ck_assert_fails(vib_optim_step(opt, p, p), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_optim_step(opt, p + 10, p), VIB_ERR_INVALID_ARG);
    ck_assert_mem_eq(p, saved, sizeof p);
    ck_assert_uint_eq(vib_optim_steps(opt), 0);

    ck_assert_fails(vib_optim_set_lr(NULL, 0.1f), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_optim_set_lr(opt, 0.0f), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_optim_set_lr(opt, -0.1f), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_optim_set_lr(opt, NAN), VIB_ERR_NUMERIC);
    ck_assert_fails(vib_optim_set_lr(opt, INFINITY), VIB_ERR_NUMERIC);
    ck_assert(vib_optim_lr(opt) == 1e-3f);
    ck_assert(vib_optim_lr(NULL) == 0.0f);
    vib_optim_free(opt);

    float lr = 7.0f;
    ck_assert_fails(vib_lr_staircase(1e-3f, 0.9f, 10, 5, NULL), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_lr_staircase(0.0f, 0.9f, 10, 5, &lr), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_lr_staircase(-1e-3f, 0.9f, 10, 5, &lr), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_lr_staircase(NAN, 0.9f, 10, 5, &lr), VIB_ERR_NUMERIC);
    ck_assert_fails(vib_lr_staircase(INFINITY, 0.9f, 10, 5, &lr), VIB_ERR_NUMERIC);
    ck_assert_fails(vib_lr_staircase(1e-3f, 0.0f, 10, 5, &lr), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_lr_staircase(1e-3f, -0.5f, 10, 5, &lr), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_lr_staircase(1e-3f, 1.5f, 10, 5, &lr), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_lr_staircase(1e-3f, NAN, 10, 5, &lr), VIB_ERR_NUMERIC);
    ck_assert_fails(vib_lr_staircase(1e-3f, 0.9f, 0, 5, &lr), VIB_ERR_INVALID_ARG);
    ck_assert(lr == 7.0f);

    vib_ema *ema = NULL;
    ck_assert_ok(vib_ema_create(N, 0.9f, p, &ema));
    ck_assert_fails(vib_ema_update(NULL, p), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_ema_update(ema, NULL), VIB_ERR_INVALID_ARG);
    ck_assert_mem_eq(vib_ema_values(ema), p, sizeof p);
    ck_assert_ptr_null(vib_ema_values(NULL));
    vib_ema_free(ema);
}
END_TEST

/* The fused step: bit for bit vib_optim_step then vib_ema_update, for Adam and SGD, at
 * N (a block and a tail) and at a size whose blocks are split across threads, with 1
 * and 2 threads. */
START_TEST(step_ema_equals_step_then_update)
{
    static const size_t sizes[] = {N, 70001};
    for (int threads = 1; threads <= 2; threads++) {
        ck_assert_ok(vib_set_num_threads(threads));
        for (size_t si = 0; si < 2; si++) {
            const size_t n = sizes[si];
            for (int kind = 0; kind < 2; kind++) {
                float *p1 = malloc(n * sizeof(float)), *p2 = malloc(n * sizeof(float));
                float *g = malloc(n * sizeof(float));
                fill_normal(5, n, 0.0f, 1.0f, p1);
                memcpy(p2, p1, n * sizeof(float));
                vib_optim *o1 = NULL, *o2 = NULL;
                vib_ema *e1 = NULL, *e2 = NULL;
                optim_pair(kind, n, 0.5f, &o1, &o2);
                ck_assert_ok(vib_ema_create(n, 0.9f, p1, &e1));
                ck_assert_ok(vib_ema_create(n, 0.9f, p2, &e2));
                for (int t = 0; t < 5; t++) {
                    fill_normal(50 + (uint64_t)t, n, 0.0f, 1.0f, g);
                    ck_assert_ok(vib_optim_step(o1, p1, g));
                    ck_assert_ok(vib_ema_update(e1, p1));
                    ck_assert_ok(vib_optim_step_ema(o2, p2, g, e2));
                }
                ck_assert_msg(memcmp(p1, p2, n * sizeof(float)) == 0,
                              "params differ (kind %d, n %zu, %d threads)", kind, n, threads);
                ck_assert_msg(memcmp(vib_ema_values(e1), vib_ema_values(e2),
                                     n * sizeof(float)) == 0,
                              "averages differ (kind %d, n %zu, %d threads)", kind, n, threads);
                ck_assert(memcmp(vib_ema_values(e1), p1, n * sizeof(float)) != 0);
                ck_assert_uint_eq(vib_optim_steps(o2), 5);
                vib_optim_free(o1);
                vib_optim_free(o2);
                vib_ema_free(e1);
                vib_ema_free(e2);
                free(p1);
                free(p2);
                free(g);
            }
        }
    }
    ck_assert_ok(vib_set_num_threads(0));
}
END_TEST

/* A refused fused step changes neither the parameters, the optimizer nor the average:
 * a NaN deep in a threaded array, a size mismatch, overlapping buffers. NULL for the
 * average is a plain step. */
START_TEST(step_ema_refusals_change_nothing)
{
    ck_assert_ok(vib_set_num_threads(2));
    const size_t n = 70001;
    float *p = malloc(n * sizeof(float)), *g = malloc(n * sizeof(float));
    float *p0 = malloc(n * sizeof(float)), *a0 = malloc(n * sizeof(float));
    fill_normal(8, n, 0.0f, 1.0f, p);
    fill_normal(9, n, 0.0f, 1.0f, g);
    vib_optim *o = NULL;
    vib_ema *e = NULL, *small = NULL;
    ck_assert_ok(vib_adam_create(n, 1e-2f, 0.9f, 0.999f, 1e-8f, &o));
    ck_assert_ok(vib_ema_create(n, 0.9f, p, &e));
    ck_assert_ok(vib_ema_create(n - 1, 0.9f, p, &small));
    ck_assert_ok(vib_optim_step_ema(o, p, g, e));
    memcpy(p0, p, n * sizeof(float));
    memcpy(a0, vib_ema_values(e), n * sizeof(float));

    g[n - 5] = NAN; /* in the last thread's share */
    ck_assert_fails(vib_optim_step_ema(o, p, g, e), VIB_ERR_NUMERIC);
    ck_assert_msg(strstr(vib_last_error(), "grads[69996]") != NULL, "%s", vib_last_error());
    g[n - 5] = 0.5f;
    g[3] = INFINITY; /* and in the first's */
    ck_assert_fails(vib_optim_step_ema(o, p, g, e), VIB_ERR_NUMERIC);
    ck_assert_msg(strstr(vib_last_error(), "grads[3]") != NULL, "%s", vib_last_error());
    g[3] = 0.5f;
    ck_assert_fails(vib_optim_step_ema(o, p, g, small), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_optim_step_ema(o, p, p, e), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_optim_step_ema(NULL, p, g, e), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_optim_step_ema(o, NULL, g, e), VIB_ERR_INVALID_ARG);
    ck_assert(memcmp(p, p0, n * sizeof(float)) == 0);
    ck_assert(memcmp(vib_ema_values(e), a0, n * sizeof(float)) == 0);
    ck_assert_uint_eq(vib_optim_steps(o), 1);

    ck_assert_ok(vib_optim_step_ema(o, p, g, NULL)); /* a plain step: the average stays */
    ck_assert_uint_eq(vib_optim_steps(o), 2);
    ck_assert(memcmp(p, p0, n * sizeof(float)) != 0);
    ck_assert(memcmp(vib_ema_values(e), a0, n * sizeof(float)) == 0);
    vib_optim_free(o);
    vib_ema_free(e);
    vib_ema_free(small);
    free(p);
    free(g);
    free(p0);
    free(a0);
    ck_assert_ok(vib_set_num_threads(0));
}
END_TEST

Suite *make_optim_suite(void)
{
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("optim");
    tcase_add_test(tc, adam_matches_reference);
    tcase_add_test(tc, adam_minimizes_ill_conditioned_quadratic);
    tcase_add_test(tc, sgd_matches_reference);
    tcase_add_test(tc, set_lr_changes_the_next_step);
    tcase_add_test(tc, steps_counter);
    tcase_add_test(tc, handle_sizes);
    tcase_add_test(tc, bad_gradient_changes_nothing);
    tcase_add_test(tc, sgd_overflowing_step_is_refused);
    tcase_add_test(tc, sgd_momentum_overflow_leaves_state);
    tcase_add_test(tc, sgd_momentum_sum_overflow_is_refused);
    tcase_add_test(tc, adam_overflowing_step_is_refused);
    tcase_add_test(tc, overflow_check_threaded);
    tcase_add_test(tc, staircase_values);
    tcase_add_test(tc, ema_warmup_exact);
    tcase_add_test(tc, ema_converges_to_constant);
    tcase_add_test(tc, ema_bad_params_change_nothing);
    tcase_add_test(tc, create_rejects_bad_arguments);
    tcase_add_test(tc, calls_reject_bad_arguments);
    tcase_add_test(tc, step_ema_equals_step_then_update);
    tcase_add_test(tc, step_ema_refusals_change_nothing);
    suite_add_tcase(s, tc);
    return s;
}
