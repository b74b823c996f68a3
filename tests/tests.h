/*
 * tests.h - what the Check suites share: the suite constructors the runner calls, the
 * finite-difference helpers every gradient check uses, and the value and failure checks
 * of the node suites (test_nodes.c, test_cov.c), kept in one place so that both judge
 * a node by the same rules.
 */
#ifndef VIB_TESTS_H
#define VIB_TESTS_H

#include <check.h>
#include <stdbool.h>
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
Suite *make_backend_suite(void);
Suite *make_alloc_suite(void);
Suite *make_vmath_suite(void);
Suite *make_train_suite(void);
Suite *make_faults_suite(void);
Suite *make_attacks_suite(void);
Suite *make_samples_suite(void);
Suite *make_mixture_suite(void);

/* test_train.c's fresh-process resume: the runner runs this instead of the suites when
 * VIB_TEST_RESUME_CHILD is set (to "threads checkpoint output"). */
int test_resume_child(const char *spec);

/* test_alloc.c's allocation wrappers: the largest single request (malloc, calloc,
 * realloc, aligned_alloc) made by libvib or the tests since alloc_watch_reset. Read it
 * right after the call under test: Check's assertions allocate too. */
void alloc_watch_reset(void);
size_t alloc_watch_largest(void);

/* test_faults.c's injector, through the same --wrap: fault_arm(kinds, n) makes the n-th
 * call (from 1) of any of `kinds` fail, once; fault_disarm() stops and says whether it
 * fired. The wrappers ask fault_take(kind) before each call (true: fail it), and the
 * allocators report to fault_count_alloc (+1 an allocation, -1 a free). */
enum {
    FAULT_ALLOC = 1,
    FAULT_OPEN = 2,
    FAULT_READ = 4,
    FAULT_WRITE = 8,
    FAULT_FSYNC = 16,
    FAULT_RENAME = 32,
    FAULT_CLOSE = 64
};
void fault_arm(unsigned kinds, size_t n);
bool fault_disarm(void);
bool fault_take(unsigned kind);
void fault_count_alloc(long delta);

/* Run call(arg) in a child process that SIGALRM ends after `seconds`, so a call that
 * blocks (on a FIFO, say) fails its test instead of hanging the suite, forked or not.
 * Returns 1 and the call's status and vib_last_error() (cut to detail_size) if it
 * returned, or 0 and the signal that ended the child in *status. */
int call_in_child(int (*call)(const void *arg), const void *arg, unsigned seconds,
                  int *status, char *detail, size_t detail_size);

/* A scalar function of some float buffers, evaluated in double. */
typedef double (*scalar_fn)(void *ctx);

/* Central difference (f(x + h e_i) - f(x - h e_i)) / 2h, restoring x[i] afterwards. */
double fd_partial(scalar_fn f, void *ctx, float *x, size_t i, double h);

/* Check every analytic[i] against the central difference of f in x[i]:
 * |analytic - numeric| <= atol + rtol * max(|analytic|, |numeric|), at step h, or else
 * at h/4 or h/16 (a ReLU kink within h of x[i] spoils a central difference; a smaller
 * step clears it, while a wrong gradient fails at every step).
 * Fails the running test with the first offending index. */
void check_gradient(const char *what, scalar_fn f, void *ctx, float *x, size_t n,
                    const float *analytic, double h, double rtol, double atol);

/* Files (each step asserted): write bytes plain, or as one gzip member (mode gzopen's:
 * "wb", "ab" to append a member, a digit after it the level); read a whole file
 * (malloc'd, *len its length); an IDX image of type 0x08 (the header for dims, then the
 * product of dims bytes of data), malloc'd, *len its length; and such a file, plain or
 * gzip'd. */
void write_plain(const char *path, const void *bytes, size_t len);
void write_gz_mode(const char *path, const void *bytes, size_t len, const char *mode);
void write_gz(const char *path, const void *bytes, size_t len);
unsigned char *read_all(const char *path, size_t *len);
unsigned char *make_idx(size_t ndim, const uint32_t *dims, const unsigned char *data,
                        size_t count, size_t *len);
void write_idx(const char *path, int gz, size_t ndim, const uint32_t *dims,
               const unsigned char *data);

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

/* Sum_i w_i y_i in double: the probe loss every gradient check differentiates (a random
 * w drives each backward with dout = w). */
double dot_w(const float *w, const float *y, size_t n);

/* x[0..n) = v: the constant prefills, weights and parameters tests build by hand. */
void fill_const(float *x, size_t n, float v);

/* check_gradient with a step relative to each coordinate: h_i = h_rel * max(1, |x_i|),
 * so large coordinates are not stepped below their float resolution. */
void check_gradient_rel(const char *what, scalar_fn f, void *ctx, float *x, size_t n,
                        const float *analytic, double h_rel, double rtol, double atol);

/* A backward accumulates: starting from `prefill` it must leave prefill + g, where g is
 * what the same backward wrote into a zeroed buffer. Equal up to one float rounding of
 * the sum. */
void check_accumulated(const char *what, const float *result, const float *prefill,
                       const float *g, size_t n);

/* A forward value against a double reference: finite, and within atol + rtol |want|. */
void check_close(const char *what, size_t i, double got, double want, double rtol,
                 double atol);

/* A float result against its closed form in double, to float rounding (1e-6 relative):
 * finite differences only resolve about 1e-3, so this is what pins a backward down. */
void check_rel(const char *what, size_t i, double got, double want);

/* ---- failure checking --------------------------------------------------------------
 * An output buffer registered in an `outbuf` list holds known contents before the
 * failing calls and must still hold them after each ("failure is clean"): a byte pattern
 * set by arm_outputs, or, where the test needs particular values in the buffer
 * (gradients accumulated near FLT_MAX), a copy of them in `expect`. */
#define SENTINEL_BYTE 0x5A /* 0x5A5A5A5A is a finite float (~1.5e16) and a finite double */

typedef struct {
    const char *name;
    void *p;
    size_t bytes;
    const void *expect; /* NULL: the sentinel pattern */
} outbuf;

/* Fill every buffer without an `expect` copy with SENTINEL_BYTE. */
void arm_outputs(const outbuf *outs, size_t count);

/* Fail the running test if `call` changed any byte of the buffers. */
void expect_untouched(const char *call, const outbuf *outs, size_t count);

/* vib_last_error() is not cleared by successful calls, so a stale detail could pass for
 * the call under test; overwrite it with a marker first. */
void plant_marker(void);

/* `word` occurs in s as a whole identifier ("mu" matches "mu[2]", not "mu_p"; "l" not
 * "dl" or "L"), so a detail naming a longer argument does not pass for a shorter one. */
int has_word(const char *s, const char *word);

/* The detail must start with "<fn>:" (the documented form, e.g. "vib_reparam_forward:
 * sigma[3] = -1 is not positive") and, when `what` is given, name the offending
 * argument, which shows the failure came from the intended check. */
void check_detail(const char *call, const char *fn, const char *what);

/* Expect `call` to fail with `status`, a detail naming function `fn` (a local of the
 * test) and argument `what`, and no write to the test's local `outs[]` buffers.
 * (Function-like, so test_idx.c's table named BAD is not expanded.) */
#define BAD(call, status, what)                                                            \
    do {                                                                                   \
        plant_marker();                                                                    \
        ck_assert_fails(call, status);                                                     \
        check_detail(#call, fn, what);                                                     \
        expect_untouched(#call, outs, sizeof outs / sizeof outs[0]);                       \
    } while (0)

/* Run `stmt` with the lvalue of type `type` temporarily set to `value`, so each
 * poisoned call starts from otherwise valid inputs. */
#define WITH_TYPED(type, lvalue, value, stmt)                                              \
    do {                                                                                   \
        type saved_ = (lvalue);                                                            \
        (lvalue) = (value);                                                                \
        stmt;                                                                              \
        (lvalue) = saved_;                                                                 \
    } while (0)

/* The same for a float, what nearly every poisoned input is. */
#define WITH(lvalue, value, stmt) WITH_TYPED(float, lvalue, value, stmt)

/* The same for two float lvalues at once. */
#define WITH2(lv1, v1, lv2, v2, stmt)                                                      \
    do {                                                                                   \
        float saved1_ = (lv1), saved2_ = (lv2);                                            \
        (lv1) = (v1);                                                                      \
        (lv2) = (v2);                                                                      \
        stmt;                                                                              \
        (lv1) = saved1_;                                                                   \
        (lv2) = saved2_;                                                                   \
    } while (0)

#endif
