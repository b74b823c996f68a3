/* testutil.c - finite-difference and fill helpers shared by the suites. */
#include <math.h>

#include "tests.h"

double fd_partial(scalar_fn f, void *ctx, float *x, size_t i, double h)
{
    const float saved = x[i];
    /* Step by what float can represent, and divide by the step actually taken. */
    const float xp = (float)(saved + h), xm = (float)(saved - h);
    x[i] = xp;
    double fp = f(ctx);
    x[i] = xm;
    double fm = f(ctx);
    x[i] = saved;
    return (fp - fm) / ((double)xp - (double)xm);
}

void check_gradient(const char *what, scalar_fn f, void *ctx, float *x, size_t n,
                    const float *analytic, double h, double rtol, double atol)
{
    for (size_t i = 0; i < n; i++) {
        double num = fd_partial(f, ctx, x, i, h);
        double ana = analytic[i];
        double scale = fmax(fabs(ana), fabs(num));
        ck_assert_msg(fabs(ana - num) <= atol + rtol * scale,
                      "%s[%zu]: analytic %.8g vs finite difference %.8g", what, i, ana, num);
    }
}

void fill_normal(uint64_t seed, size_t n, float mean, float std, float *out)
{
    vib_rng *rng = NULL;
    ck_assert_ok(vib_rng_create(seed, &rng));
    ck_assert_ok(vib_rng_normal(rng, n, mean, std, out));
    vib_rng_free(rng);
}
