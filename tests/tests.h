/*
 * tests.h - what the Check suites share: the suite constructors the runner calls and
 * the finite-difference helpers every gradient check uses.
 */
#ifndef VIB_TESTS_H
#define VIB_TESTS_H

#include <check.h>
#include <stddef.h>

#include "internal.h"
#include "vib.h"

/* One suite per lib/ file, plus the end-to-end gradient-flow suite. */
Suite *make_status_suite(void);
Suite *make_rng_suite(void);
Suite *make_gemm_suite(void);
Suite *make_nodes_suite(void);
Suite *make_cov_suite(void);
Suite *make_dense_suite(void);
Suite *make_flow_suite(void);
Suite *make_model_suite(void);
Suite *make_io_suite(void);
Suite *make_optim_suite(void);
Suite *make_idx_suite(void);

/* A scalar function of some float buffers, evaluated in double. */
typedef double (*scalar_fn)(void *ctx);

/* Central difference (f(x + h e_i) - f(x - h e_i)) / 2h, restoring x[i] afterwards. */
double fd_partial(scalar_fn f, void *ctx, float *x, size_t i, double h);

/* Check every analytic[i] against the central difference of f in x[i]:
 * |analytic - numeric| <= atol + rtol * max(|analytic|, |numeric|).
 * Fails the running test with the first offending index. */
void check_gradient(const char *what, scalar_fn f, void *ctx, float *x, size_t n,
                    const float *analytic, double h, double rtol, double atol);

/* A fixed-seed fill helper: n draws of N(mean, std^2) from a fresh generator. */
void fill_normal(uint64_t seed, size_t n, float mean, float std, float *out);

/* Assert a call failed with `status` and left a detail in vib_last_error(). */
#define ck_assert_fails(call, status)                                                      \
    do {                                                                                   \
        int rc_ = (call);                                                                  \
        ck_assert_msg(rc_ == (status), "%s returned %d (%s), expected %d", #call, rc_,    \
                      vib_status_string(rc_), (int)(status));                              \
        ck_assert_msg(vib_last_error()[0] != '\0', "%s left no error detail", #call);     \
    } while (0)

#define ck_assert_ok(call)                                                                 \
    do {                                                                                   \
        int rc_ = (call);                                                                  \
        ck_assert_msg(rc_ == VIB_OK, "%s returned %d: %s", #call, rc_, vib_last_error());  \
    } while (0)

#endif
