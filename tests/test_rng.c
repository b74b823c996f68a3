/* test_rng.c - the seeded generator: known answers, reproducibility, distributions. */
#include <math.h>
#include <stdlib.h>

#include "tests.h"

START_TEST(known_answers)
{
    /* xoshiro256** seeded by splitmix64, from an independent implementation of the
     * published algorithms (Blackman and Vigna). */
    const uint64_t seed0[3] = {0x99ec5f36cb75f2b4ULL, 0xbf6e1f784956452aULL,
                               0x1a5f849d4933e6e0ULL};
    const uint64_t seed2017[3] = {0x6615bfc19374eba8ULL, 0x2d23d49fe7db2de4ULL,
                                  0x5182a18cef7428c0ULL};
    vib_rng *a = NULL, *b = NULL;
    ck_assert_ok(vib_rng_create(0, &a));
    ck_assert_ok(vib_rng_create(2017, &b));
    for (int i = 0; i < 3; i++) {
        uint64_t x, y;
        ck_assert_ok(vib_rng_u64(a, &x));
        ck_assert_ok(vib_rng_u64(b, &y));
        ck_assert_uint_eq(x, seed0[i]);
        ck_assert_uint_eq(y, seed2017[i]);
    }
    vib_rng_free(a);
    vib_rng_free(b);
}
END_TEST

START_TEST(same_seed_same_stream)
{
    enum { N = 1001 }; /* odd, so a Box-Muller spare is pending at the end */
    static float x[N], y[N], z[N];
    vib_rng *a = NULL, *b = NULL;
    ck_assert_ok(vib_rng_create(42, &a));
    ck_assert_ok(vib_rng_create(42, &b));
    ck_assert_ok(vib_rng_normal(a, N, 0.0f, 1.0f, x));
    ck_assert_ok(vib_rng_normal(b, N, 0.0f, 1.0f, y));
    ck_assert_mem_eq(x, y, sizeof x);
    /* Reseeding restarts the stream exactly, dropping any pending spare. */
    ck_assert_ok(vib_rng_seed(a, 42));
    ck_assert_ok(vib_rng_normal(a, N, 0.0f, 1.0f, z));
    ck_assert_mem_eq(x, z, sizeof x);
    /* Another seed gives another stream. */
    ck_assert_ok(vib_rng_seed(b, 43));
    ck_assert_ok(vib_rng_normal(b, N, 0.0f, 1.0f, y));
    size_t same = 0;
    for (int i = 0; i < N; i++)
        same += x[i] == y[i];
    ck_assert_uint_lt(same, 5);
    vib_rng_free(a);
    vib_rng_free(b);
}
END_TEST

START_TEST(uniform_range_and_moments)
{
    enum { N = 200000 };
    float *u = malloc(N * sizeof *u);
    vib_rng *r = NULL;
    ck_assert_ok(vib_rng_create(7, &r));
    ck_assert_ok(vib_rng_uniform(r, N, -2.0f, 3.0f, u));
    double sum = 0.0, sq = 0.0;
    for (int i = 0; i < N; i++) {
        ck_assert(u[i] >= -2.0f && u[i] < 3.0f);
        sum += u[i];
        sq += (double)u[i] * u[i];
    }
    double mean = sum / N, var = sq / N - mean * mean;
    /* U(a, b): mean (a+b)/2 = 0.5, variance (b-a)^2/12; sd of the mean sqrt(var/N). */
    ck_assert_double_eq_tol(mean, 0.5, 5.0 * sqrt(25.0 / 12.0 / N));
    ck_assert_double_eq_tol(var, 25.0 / 12.0, 0.02 * 25.0 / 12.0);
    /* A tiny interval still never yields hi. */
    ck_assert_ok(vib_rng_uniform(r, 1000, 1.0f, nextafterf(1.0f, 2.0f), u));
    for (int i = 0; i < 1000; i++)
        ck_assert(u[i] == 1.0f);
    vib_rng_free(r);
    free(u);
}
END_TEST

START_TEST(normal_moments)
{
    enum { N = 200000 };
    float *z = malloc(N * sizeof *z);
    fill_normal(11, N, 2.0f, 0.5f, z);
    double sum = 0.0, sq = 0.0, m4 = 0.0;
    for (int i = 0; i < N; i++)
        sum += z[i];
    double mean = sum / N;
    for (int i = 0; i < N; i++) {
        double d = z[i] - mean;
        sq += d * d;
        m4 += d * d * d * d;
    }
    double var = sq / N, kurt = m4 / N / (var * var);
    ck_assert_double_eq_tol(mean, 2.0, 5.0 * 0.5 / sqrt(N));
    ck_assert_double_eq_tol(sqrt(var), 0.5, 0.01 * 0.5);
    ck_assert_double_eq_tol(kurt, 3.0, 0.1); /* Gaussian tails, not uniform (1.8) */
    /* std 0 is allowed and gives the mean exactly. */
    fill_normal(3, 10, -1.25f, 0.0f, z);
    for (int i = 0; i < 10; i++)
        ck_assert(z[i] == -1.25f);
    free(z);
}
END_TEST

START_TEST(bad_arguments)
{
    vib_rng *r = NULL;
    float out[4] = {9, 9, 9, 9};
    uint64_t u = 5;
    ck_assert_fails(vib_rng_create(1, NULL), VIB_ERR_INVALID_ARG);
    ck_assert_ok(vib_rng_create(1, &r));
    ck_assert_fails(vib_rng_seed(NULL, 1), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_rng_u64(NULL, &u), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_rng_u64(r, NULL), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_rng_uniform(NULL, 4, 0.0f, 1.0f, out), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_rng_uniform(r, 4, 0.0f, 1.0f, NULL), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_rng_uniform(r, 4, 1.0f, 1.0f, out), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_rng_uniform(r, 4, 2.0f, 1.0f, out), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_rng_uniform(r, 4, NAN, 1.0f, out), VIB_ERR_NUMERIC);
    ck_assert_fails(vib_rng_uniform(r, 4, 0.0f, INFINITY, out), VIB_ERR_NUMERIC);
    ck_assert_fails(vib_rng_normal(NULL, 4, 0.0f, 1.0f, out), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_rng_normal(r, 4, 0.0f, 1.0f, NULL), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_rng_normal(r, 4, 0.0f, -1.0f, out), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_rng_normal(r, 4, NAN, 1.0f, out), VIB_ERR_NUMERIC);
    ck_assert_fails(vib_rng_normal(r, 4, 0.0f, INFINITY, out), VIB_ERR_NUMERIC);
    ck_assert_fails(vib_rng_normal(r, 4, 0.0f, 1e38f, out), VIB_ERR_NUMERIC);
    for (int i = 0; i < 4; i++)
        ck_assert(out[i] == 9.0f); /* failures wrote nothing */
    ck_assert_uint_eq(u, 5);
    /* n = 0 is a no-op, even with NULL out. */
    ck_assert_ok(vib_rng_uniform(r, 0, 0.0f, 1.0f, NULL));
    ck_assert_ok(vib_rng_normal(r, 0, 0.0f, 1.0f, NULL));
    vib_rng_free(r);
    vib_rng_free(NULL);
}
END_TEST

Suite *make_rng_suite(void)
{
    Suite *s = suite_create("rng");
    TCase *tc = tcase_create("rng");
    tcase_add_test(tc, known_answers);
    tcase_add_test(tc, same_seed_same_stream);
    tcase_add_test(tc, uniform_range_and_moments);
    tcase_add_test(tc, normal_moments);
    tcase_add_test(tc, bad_arguments);
    suite_add_tcase(s, tc);
    return s;
}
