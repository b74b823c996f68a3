/* test_dense.c - the dense layer: forward against float64, every gradient against
 * finite differences, accumulation into every gradient, overflow refused, initialization
 * scales, bad arguments. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tests.h"

enum { B = 5, IN = 7, OUT = 4 };

/* Probe loss L = sum_ij w_ij y_ij over y = x W + b, evaluated in double. */
typedef struct {
    vib_dense *layer;
    float x[B * IN], y[B * OUT], w[B * OUT];
} probe;

static double probe_loss(void *ctx)
{
    probe *p = ctx;
    ck_assert_ok(vib_dense_forward(p->layer, B, p->x, p->y));
    double l = 0.0;
    for (int i = 0; i < B * OUT; i++)
        l += (double)p->w[i] * p->y[i];
    return l;
}

static probe *make_probe(int init)
{
    probe *p = calloc(1, sizeof *p);
    vib_rng *rng = NULL;
    ck_assert_ok(vib_rng_create(5, &rng));
    ck_assert_ok(vib_dense_create(IN, OUT, init, rng, &p->layer));
    ck_assert_ok(vib_rng_normal(rng, OUT, 0.0f, 1.0f, vib_dense_bias(p->layer)));
    ck_assert_ok(vib_rng_normal(rng, B * IN, 0.0f, 1.0f, p->x));
    ck_assert_ok(vib_rng_normal(rng, B * OUT, 0.0f, 1.0f, p->w));
    vib_rng_free(rng);
    return p;
}

static void free_probe(probe *p)
{
    vib_dense_free(p->layer);
    free(p);
}

START_TEST(forward_matches_float64)
{
    probe *p = make_probe(VIB_INIT_GLOROT);
    ck_assert_ok(vib_dense_forward(p->layer, B, p->x, p->y));
    const float *W = vib_dense_weights(p->layer), *b = vib_dense_bias(p->layer);
    for (int r = 0; r < B; r++)
        for (int j = 0; j < OUT; j++) {
            double ref = b[j];
            for (int i = 0; i < IN; i++)
                ref += (double)p->x[r * IN + i] * W[i * OUT + j];
            ck_assert_double_eq_tol(p->y[r * OUT + j], ref, 1e-5 * (1 + fabs(ref)));
        }
    free_probe(p);
}
END_TEST

START_TEST(gradients_match_finite_differences)
{
    probe *p = make_probe(VIB_INIT_HE);
    float dx[B * IN] = {0}; /* backward accumulates into dx */
    ck_assert_ok(vib_dense_zero_grad(p->layer));
    ck_assert_ok(vib_dense_forward(p->layer, B, p->x, p->y));
    ck_assert_ok(vib_dense_backward(p->layer, B, p->x, p->w, dx)); /* dL/dy = w */
    check_gradient("dW", probe_loss, p, vib_dense_weights(p->layer), IN * OUT,
                   vib_dense_weights_grad(p->layer), 1e-2, 1e-3, 1e-4);
    check_gradient("db", probe_loss, p, vib_dense_bias(p->layer), OUT,
                   vib_dense_bias_grad(p->layer), 1e-2, 1e-3, 1e-4);
    check_gradient("dx", probe_loss, p, p->x, B * IN, dx, 1e-2, 1e-3, 1e-4);
    free_probe(p);
}
END_TEST

/* dx == base + dy W^T (dy is the probe's w) to float rounding, against float64. */
static void check_dx(const probe *p, const float *dx, double base)
{
    const float *W = vib_dense_weights(p->layer);
    for (int r = 0; r < B; r++)
        for (int i = 0; i < IN; i++) {
            double ref = base, mag = fabs(base);
            for (int j = 0; j < OUT; j++) {
                ref += (double)p->w[r * OUT + j] * W[i * OUT + j];
                mag += fabs((double)p->w[r * OUT + j] * W[i * OUT + j]);
            }
            ck_assert_double_eq_tol(dx[r * IN + i], ref, 2e-7 * mag + 1e-12);
        }
}

START_TEST(backward_matches_closed_form)
{
    /* Finite differences resolve ~1e-3; this pins dW = x^T dy, db = sum dy, dx = dy W^T
     * to float rounding against float64. */
    probe *p = make_probe(VIB_INIT_GLOROT);
    float dx[B * IN] = {0};
    ck_assert_ok(vib_dense_backward(p->layer, B, p->x, p->w, dx));
    const float *dW = vib_dense_weights_grad(p->layer);
    const float *db = vib_dense_bias_grad(p->layer);
    for (int i = 0; i < IN; i++)
        for (int j = 0; j < OUT; j++) {
            double ref = 0.0, mag = 0.0;
            for (int r = 0; r < B; r++) {
                ref += (double)p->x[r * IN + i] * p->w[r * OUT + j];
                mag += fabs((double)p->x[r * IN + i] * p->w[r * OUT + j]);
            }
            ck_assert_double_eq_tol(dW[i * OUT + j], ref, 2e-7 * mag + 1e-12);
        }
    for (int j = 0; j < OUT; j++) {
        double ref = 0.0, mag = 0.0;
        for (int r = 0; r < B; r++)
            ref += p->w[r * OUT + j], mag += fabs(p->w[r * OUT + j]);
        ck_assert_double_eq_tol(db[j], ref, 2e-7 * mag + 1e-12);
    }
    check_dx(p, dx, 0.0);
    free_probe(p);
}
END_TEST

START_TEST(backward_adds_into_a_prefilled_dx)
{
    /* dx = 1 before the call: the backward must leave 1 + dy W^T, like every backward,
     * so a value read by two layers collects both gradients in one buffer. */
    probe *p = make_probe(VIB_INIT_GLOROT);
    float dx[B * IN];
    fill_const(dx, B * IN, 1.0f);
    ck_assert_ok(vib_dense_backward(p->layer, B, p->x, p->w, dx));
    check_dx(p, dx, 1.0);
    free_probe(p);
}
END_TEST

START_TEST(backward_accumulates_every_gradient)
{
    probe *p = make_probe(VIB_INIT_LECUN);
    float dx1[B * IN] = {0}, dx2[B * IN], dw1[IN * OUT], db1[OUT];
    ck_assert_ok(vib_dense_backward(p->layer, B, p->x, p->w, dx1));
    memcpy(dw1, vib_dense_weights_grad(p->layer), sizeof dw1);
    memcpy(db1, vib_dense_bias_grad(p->layer), sizeof db1);
    /* A second call from where the first left off: every gradient doubles. */
    memcpy(dx2, dx1, sizeof dx2);
    ck_assert_ok(vib_dense_backward(p->layer, B, p->x, p->w, dx2));
    check_accumulated("dx", dx2, dx1, dx1, B * IN);
    check_accumulated("dW", vib_dense_weights_grad(p->layer), dw1, dw1, IN * OUT);
    check_accumulated("db", vib_dense_bias_grad(p->layer), db1, db1, OUT);
    /* dx may be NULL; the parameter gradients still accumulate. */
    ck_assert_ok(vib_dense_backward(p->layer, B, p->x, p->w, NULL));
    ck_assert_float_eq_tol(vib_dense_bias_grad(p->layer)[0], 3.0f * db1[0], 1e-5f);
    ck_assert_ok(vib_dense_zero_grad(p->layer));
    for (int i = 0; i < IN * OUT; i++)
        ck_assert(vib_dense_weights_grad(p->layer)[i] == 0.0f);
    for (int j = 0; j < OUT; j++)
        ck_assert(vib_dense_bias_grad(p->layer)[j] == 0.0f);
    free_probe(p);
}
END_TEST

START_TEST(backward_refuses_overflow)
{
    /* A 2 -> 2 layer on a batch of 2 with hand-set values: each case overflows one of the
     * three sums and must be refused with nothing written, the detail naming the sum. */
    static const char fn[] = "vib_dense_backward";
    vib_dense *l = NULL;
    ck_assert_ok(vib_dense_create(2, 2, VIB_INIT_ZERO, NULL, &l));
    float *W = vib_dense_weights(l), *dW = vib_dense_weights_grad(l), *db = vib_dense_bias_grad(l);
    float x[4], dy[4], dx[4], dW0[4], db0[2], dx0[4];
    outbuf outs[] = {{"dW", dW, sizeof dW0, dW0}, {"db", db, sizeof db0, db0},
                     {"dx", dx, sizeof dx0, dx0}};
    /* Known starting contents, kept in the expect copies. */
#define RESET(wv, xv, dyv, gv)                                                             \
    do {                                                                                   \
        fill_const(W, 4, wv), fill_const(x, 4, xv), fill_const(dy, 4, dyv);                \
        fill_const(dW, 4, gv), fill_const(db, 2, gv), fill_const(dx, 4, gv);               \
        memcpy(dW0, dW, sizeof dW0), memcpy(db0, db, sizeof db0), memcpy(dx0, dx, sizeof dx0); \
    } while (0)
    /* The products themselves overflow: x^T dy = 2 * 1e20 * 1e20. */
    RESET(1.0f, 1e20f, 1e20f, 0.0f);
    BAD(vib_dense_backward(l, 2, x, dy, dx), VIB_ERR_NUMERIC, "dW");
    /* dy W^T = 2 * 1e20 * 1e20 with x^T dy small. */
    RESET(1e20f, 1e-20f, 1e20f, 0.0f);
    BAD(vib_dense_backward(l, 2, x, dy, dx), VIB_ERR_NUMERIC, "dx");
    /* The column sums of dy: 2 * 3e38 (dx NULL, else dy W^T would fail first). */
    RESET(1.0f, 1e-30f, 3e38f, 0.0f);
    BAD(vib_dense_backward(l, 2, x, dy, NULL), VIB_ERR_NUMERIC, "db");
    /* Finite products that overflow only when added to what the buffers hold. */
    RESET(1.0f, 1.0f, 1e38f, 3e38f);
    fill_const(db, 2, 0.0f), memcpy(db0, db, sizeof db0);
    fill_const(dx, 4, 0.0f), memcpy(dx0, dx, sizeof dx0);
    BAD(vib_dense_backward(l, 2, x, dy, dx), VIB_ERR_NUMERIC, "dW");
    RESET(1.0f, 1.0f, 1e38f, 0.0f);
    fill_const(dx, 4, FLT_MAX), memcpy(dx0, dx, sizeof dx0);
    BAD(vib_dense_backward(l, 2, x, dy, dx), VIB_ERR_NUMERIC, "dx");
    RESET(1.0f, 1.0f, 1e38f, 0.0f);
    fill_const(db, 2, FLT_MAX), memcpy(db0, db, sizeof db0);
    BAD(vib_dense_backward(l, 2, x, dy, dx), VIB_ERR_NUMERIC, "db");
    /* An infinity already in a buffer is refused, a NaN is the caller's (as the nodes). */
    RESET(1.0f, 1.0f, 1.0f, 0.0f);
    dx[1] = INFINITY, dx0[1] = INFINITY;
    BAD(vib_dense_backward(l, 2, x, dy, dx), VIB_ERR_NUMERIC, "dx");
    dx[1] = NAN;
    ck_assert_ok(vib_dense_backward(l, 2, x, dy, dx));
    ck_assert(isnan(dx[1]) && dx[0] == 2.0f && dW[0] == 2.0f && db[0] == 2.0f);
    /* A non-finite weight reaches dx only: refused there, harmless without dx. */
    RESET(1.0f, 1.0f, 1.0f, 0.0f);
    W[3] = INFINITY;
    BAD(vib_dense_backward(l, 2, x, dy, dx), VIB_ERR_NUMERIC, "dx");
    ck_assert_ok(vib_dense_backward(l, 2, x, dy, NULL));
    ck_assert(dW[3] == 2.0f && db[1] == 2.0f);
    /* A larger batch after the smaller ones: the results still hold. */
    RESET(0.5f, 1.0f, 1.0f, 0.0f);
    float xb[6 * 2], dyb[6 * 2], dxb[6 * 2] = {0};
    fill_const(xb, 12, 1.0f), fill_const(dyb, 12, 1.0f);
    ck_assert_ok(vib_dense_backward(l, 6, xb, dyb, dxb));
    for (int i = 0; i < 12; i++)
        ck_assert(dxb[i] == 1.0f);
    ck_assert(dW[0] == 6.0f && db[0] == 6.0f);
#undef RESET
    vib_dense_free(l);
}
END_TEST

START_TEST(layer_products_write_for_the_model)
{
    /* The model's backward calls the internal products with accumulate = false and
     * expects dW and dx WRITTEN over whatever its workspace held. */
    probe *p = make_probe(VIB_INIT_GLOROT);
    vib_dense *ref = NULL;
    ck_assert_ok(vib_dense_create(IN, OUT, VIB_INIT_ZERO, NULL, &ref));
    memcpy(vib_dense_weights(ref), vib_dense_weights(p->layer), IN * OUT * sizeof(float));
    float dx[B * IN] = {0}, dx_model[B * IN], dw_model[IN * OUT];
    ck_assert_ok(vib_dense_backward(ref, B, p->x, p->w, dx));
    fill_const(dx_model, B * IN, 1e6f);
    fill_const(dw_model, IN * OUT, 1e6f);
    vibi_layer l = {.in = IN, .out = OUT, .w = vib_dense_weights(p->layer),
                    .b = vib_dense_bias(p->layer), .dw = dw_model, .db = NULL};
    vibi_layer_products(&l, B, p->x, p->w, dx_model, false);
    for (int i = 0; i < B * IN; i++)
        ck_assert_float_eq(dx_model[i], dx[i]);
    for (int i = 0; i < IN * OUT; i++)
        ck_assert_float_eq(dw_model[i], vib_dense_weights_grad(ref)[i]);
    vib_dense_free(ref);
    free_probe(p);
}
END_TEST

/* Sample std of n floats. */
static double sample_std(const float *x, size_t n)
{
    double s = 0.0, q = 0.0;
    for (size_t i = 0; i < n; i++)
        s += x[i], q += (double)x[i] * x[i];
    double m = s / (double)n;
    return sqrt(q / (double)n - m * m);
}

START_TEST(initialization_scales_with_fan_in)
{
    enum { WIDE = 1024, NOUT = 256, ROWS = 64 };
    vib_rng *rng = NULL;
    vib_dense *he = NULL, *lecun = NULL, *glorot = NULL, *zero = NULL;
    ck_assert_ok(vib_rng_create(9, &rng));
    ck_assert_ok(vib_dense_create(WIDE, NOUT, VIB_INIT_HE, rng, &he));
    ck_assert_ok(vib_dense_create(WIDE, NOUT, VIB_INIT_LECUN, rng, &lecun));
    ck_assert_ok(vib_dense_create(WIDE, NOUT, VIB_INIT_GLOROT, rng, &glorot));
    ck_assert_ok(vib_dense_create(WIDE, NOUT, VIB_INIT_ZERO, NULL, &zero));
    const size_t n = (size_t)WIDE * NOUT;
    ck_assert_double_eq_tol(sample_std(vib_dense_weights(he), n), sqrt(2.0 / WIDE), 0.01 * sqrt(2.0 / WIDE));
    ck_assert_double_eq_tol(sample_std(vib_dense_weights(lecun), n), sqrt(1.0 / WIDE), 0.01 * sqrt(1.0 / WIDE));
    /* U(-a, a) has std a / sqrt(3). */
    double a = sqrt(6.0 / (WIDE + NOUT));
    ck_assert_double_eq_tol(sample_std(vib_dense_weights(glorot), n), a / sqrt(3.0), 0.01 * a);
    for (size_t i = 0; i < n; i++) {
        ck_assert(fabsf(vib_dense_weights(glorot)[i]) <= (float)a);
        ck_assert(vib_dense_weights(zero)[i] == 0.0f);
    }
    /* The point of it: unit-variance inputs through a 1024-wide LeCun layer give
     * unit-scale outputs, where std-1 weights would give ~sqrt(1024) = 32. */
    float *x = malloc(ROWS * WIDE * sizeof *x), *y = malloc(ROWS * NOUT * sizeof *y);
    ck_assert_ok(vib_rng_normal(rng, ROWS * WIDE, 0.0f, 1.0f, x));
    ck_assert_ok(vib_dense_forward(lecun, ROWS, x, y));
    double sy = sample_std(y, ROWS * NOUT);
    ck_assert_msg(sy > 0.9 && sy < 1.1, "output std %g, expected ~1", sy);
    ck_assert_ok(vib_rng_normal(rng, n, 0.0f, 1.0f, vib_dense_weights(lecun)));
    ck_assert_ok(vib_dense_forward(lecun, ROWS, x, y));
    sy = sample_std(y, ROWS * NOUT);
    ck_assert_msg(sy > 28.0 && sy < 36.0, "std-1 weights give output std %g, expected ~32", sy);
    free(x);
    free(y);
    vib_dense_free(he);
    vib_dense_free(lecun);
    vib_dense_free(glorot);
    vib_dense_free(zero);
    vib_rng_free(rng);
}
END_TEST

START_TEST(bad_arguments)
{
    vib_rng *rng = NULL;
    vib_dense *l = NULL, *untouched = (vib_dense *)0x1;
    ck_assert_ok(vib_rng_create(1, &rng));
    ck_assert_fails(vib_dense_create(3, 2, VIB_INIT_HE, rng, NULL), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_dense_create(0, 2, VIB_INIT_HE, rng, &untouched), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_dense_create(3, 0, VIB_INIT_HE, rng, &untouched), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_dense_create(3, 2, 0, rng, &untouched), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_dense_create(3, 2, 99, rng, &untouched), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_dense_create(3, 2, VIB_INIT_HE, NULL, &untouched), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_dense_create(SIZE_MAX / 2, 3, VIB_INIT_ZERO, NULL, &untouched),
                    VIB_ERR_NOMEM);
    /* in * out fits but the whole allocation would wrap around */
    ck_assert_fails(vib_dense_create(1, ((size_t)1 << 60) - 1, VIB_INIT_ZERO, NULL, &untouched),
                    VIB_ERR_NOMEM);
    ck_assert_ptr_eq(untouched, (vib_dense *)0x1);
    ck_assert_ok(vib_dense_create(3, 2, VIB_INIT_HE, rng, &l));

    float x[6] = {1, 2, 3, 4, 5, 6}, y[4] = {7, 7, 7, 7}, dy[4] = {1, 1, 1, 1};
    float dx[6] = {8, 8, 8, 8, 8, 8};
    ck_assert_fails(vib_dense_forward(NULL, 2, x, y), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_dense_forward(l, 2, NULL, y), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_dense_forward(l, 2, x, NULL), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_dense_forward(l, SIZE_MAX / 2, x, y), VIB_ERR_INVALID_ARG);
    x[4] = NAN;
    ck_assert_fails(vib_dense_forward(l, 2, x, y), VIB_ERR_NUMERIC);
    for (int i = 0; i < 4; i++)
        ck_assert(y[i] == 7.0f); /* untouched */
    ck_assert_fails(vib_dense_backward(l, 2, x, dy, dx), VIB_ERR_NUMERIC);
    x[4] = 5;
    dy[1] = INFINITY;
    ck_assert_fails(vib_dense_backward(l, 2, x, dy, dx), VIB_ERR_NUMERIC);
    ck_assert_fails(vib_dense_backward(NULL, 2, x, dy, dx), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_dense_backward(l, 2, NULL, dy, dx), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_dense_backward(l, 2, x, NULL, dx), VIB_ERR_INVALID_ARG);
    for (int i = 0; i < 6; i++) { /* failures accumulated and wrote nothing */
        ck_assert(vib_dense_weights_grad(l)[i] == 0.0f);
        ck_assert(dx[i] == 8.0f);
    }
    ck_assert(vib_dense_bias_grad(l)[0] == 0.0f && vib_dense_bias_grad(l)[1] == 0.0f);
    ck_assert_fails(vib_dense_zero_grad(NULL), VIB_ERR_INVALID_ARG);
    /* batch 0 is a no-op; getters tolerate NULL. */
    ck_assert_ok(vib_dense_forward(l, 0, NULL, NULL));
    ck_assert_ok(vib_dense_backward(l, 0, NULL, NULL, NULL));
    ck_assert_uint_eq(vib_dense_in(NULL), 0);
    ck_assert_uint_eq(vib_dense_out(NULL), 0);
    ck_assert_ptr_null(vib_dense_weights(NULL));
    ck_assert_ptr_null(vib_dense_bias(NULL));
    ck_assert_ptr_null(vib_dense_weights_grad(NULL));
    ck_assert_ptr_null(vib_dense_bias_grad(NULL));
    ck_assert_uint_eq(vib_dense_in(l), 3);
    ck_assert_uint_eq(vib_dense_out(l), 2);
    vib_dense_free(l);
    vib_dense_free(NULL);
    vib_rng_free(rng);
}
END_TEST

Suite *make_dense_suite(void)
{
    Suite *s = suite_create("dense");
    TCase *tc = tcase_create("dense");
    tcase_add_test(tc, forward_matches_float64);
    tcase_add_test(tc, gradients_match_finite_differences);
    tcase_add_test(tc, backward_matches_closed_form);
    tcase_add_test(tc, backward_adds_into_a_prefilled_dx);
    tcase_add_test(tc, backward_accumulates_every_gradient);
    tcase_add_test(tc, backward_refuses_overflow);
    tcase_add_test(tc, layer_products_write_for_the_model);
    tcase_add_test(tc, initialization_scales_with_fan_in);
    tcase_add_test(tc, bad_arguments);
    suite_add_tcase(s, tc);
    return s;
}
