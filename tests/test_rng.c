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
    enum { N = 1001 };
    static float x[N], y[N], z[N];
    vib_rng *a = NULL, *b = NULL;
    ck_assert_ok(vib_rng_create(42, &a));
    ck_assert_ok(vib_rng_create(42, &b));
    ck_assert_ok(vib_rng_normal(a, N, 0.0f, 1.0f, x));
    ck_assert_ok(vib_rng_normal(b, N, 0.0f, 1.0f, y));
    ck_assert_mem_eq(x, y, sizeof x);
    /* Reseeding restarts the stream exactly. */
    ck_assert_ok(vib_rng_seed(a, 42));
    ck_assert_ok(vib_rng_normal(a, N, 0.0f, 1.0f, z));
    ck_assert_mem_eq(x, z, sizeof x);
    /* The same run split into calls of 1, 2, 3, ... values is the same sequence. */
    ck_assert_ok(vib_rng_seed(a, 42));
    for (size_t done = 0, len = 1; done < N; done += len, len++) {
        if (len > N - done)
            len = N - done;
        ck_assert_ok(vib_rng_normal(a, len, 0.0f, 1.0f, z + done));
    }
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
    /* N(2, 0.5^2): the sample mean, variance, skewness and kurtosis of n normal draws
     * have standard errors sigma/sqrt(n), sigma^2 sqrt(2/n), sqrt(6/n), sqrt(24/n). */
    enum { N = 1000000 };
    const double mu = 2.0, sigma = 0.5;
    float *z = malloc(N * sizeof *z);
    ck_assert_ptr_nonnull(z);
    fill_normal(11, N, (float)mu, (float)sigma, z);
    double sum = 0.0, m2 = 0.0, m3 = 0.0, m4 = 0.0;
    for (int i = 0; i < N; i++)
        sum += z[i];
    double mean = sum / N;
    for (int i = 0; i < N; i++) {
        double d = z[i] - mean;
        m2 += d * d;
        m3 += d * d * d;
        m4 += d * d * d * d;
    }
    double var = m2 / N, skew = m3 / N / pow(var, 1.5), kurt = m4 / N / (var * var);
    ck_assert_double_eq_tol(mean, mu, 5.0 * sigma / sqrt(N));
    ck_assert_double_eq_tol(var, sigma * sigma, 5.0 * sigma * sigma * sqrt(2.0 / N));
    ck_assert_double_eq_tol(skew, 0.0, 5.0 * sqrt(6.0 / N));
    ck_assert_double_eq_tol(kurt, 3.0, 5.0 * sqrt(24.0 / N));
    /* std 0 is allowed and gives the mean exactly. */
    fill_normal(3, 10, -1.25f, 0.0f, z);
    for (int i = 0; i < 10; i++)
        ck_assert(z[i] == -1.25f);
    free(z);
}
END_TEST

/* ---- the ziggurat ------------------------------------------------------------------
 * lib/rng.c draws normals with a 256-layer ziggurat (Marsaglia and Tsang, 2000) for
 * f(x) = exp(-x^2/2), r = x_1 = 3.6541528853610088. The reference below is the textbook
 * algorithm written out plainly, one draw at a time, on tables it computes itself from
 * r and v (the layer area) by the recursion of the paper, and on raw words from
 * vib_rng_u64 (checked by known_answers). */
#define REF_LAYERS 256
#define REF_R 3.65415288536100877164543L
#define REF_V 0.00492867323397465534736178L

typedef struct {
    double x[REF_LAYERS + 1], f[REF_LAYERS + 1];
    long box, wedge, reject, tail; /* how each draw ended, to show every path ran */
} ref_zig;

static void ref_zig_init(ref_zig *t)
{
    /* x_0 = v / f(r), x_1 = r, x_{i+1} = f^-1(f(x_i) + v / x_i), x_256 = 0, in long
     * double; the top layer [0, x_255] x [f(x_255), 1] must come out with area v. */
    long double x = REF_R;
    t->x[0] = (double)(REF_V / expl(-x * x / 2));
    t->x[1] = (double)x;
    for (int i = 2; i < REF_LAYERS; i++) {
        x = sqrtl(-2.0L * logl(expl(-x * x / 2) + REF_V / x));
        t->x[i] = (double)x;
    }
    ck_assert_double_eq_tol((double)(x * (1.0L - expl(-x * x / 2))), (double)REF_V, 1e-15);
    t->x[REF_LAYERS] = 0.0;
    for (int i = 0; i <= REF_LAYERS; i++) {
        long double xi = t->x[i];
        t->f[i] = (double)expl(-xi * xi / 2);
    }
    t->box = t->wedge = t->reject = t->tail = 0;
}

/* Not ck_assert_ok: Check logs every assertion, which would dominate a million draws. */
static uint64_t ref_word(vib_rng *words)
{
    uint64_t w = 0;
    if (vib_rng_u64(words, &w) != VIB_OK)
        ck_abort_msg("vib_rng_u64: %s", vib_last_error());
    return w;
}

static double ref_normal(ref_zig *t, vib_rng *words)
{
    for (;;) {
        uint64_t w = ref_word(words);
        int i = (int)(w % REF_LAYERS);                  /* bits 0-7: the layer */
        int negative = (int)((w >> 8) & 1);             /* bit 8: the sign */
        double u = ldexp((double)(w >> 11), -53);       /* bits 11-63: u in [0, 1) */
        double x = u * t->x[i], z;
        if (x < t->x[i + 1]) {
            t->box++;
            z = x;
        } else if (i == 0) {
            double s, y; /* the tail beyond r, with uniforms in (0, 1] */
            do {
                s = -log(ldexp((double)((ref_word(words) >> 11) + 1), -53)) / t->x[1];
                y = -log(ldexp((double)((ref_word(words) >> 11) + 1), -53));
            } while (2.0 * y < s * s);
            t->tail++;
            z = t->x[1] + s;
            if (z > 8.58) /* the library's bound on |z|; about 1e-17 of the mass */
                continue;
        } else {
            double y = t->f[i] + ldexp((double)(ref_word(words) >> 11), -53) *
                                     (t->f[i + 1] - t->f[i]);
            if (y >= exp(-x * x / 2)) {
                t->reject++;
                continue;
            }
            t->wedge++;
            z = x;
        }
        return negative ? -z : z;
    }
}

START_TEST(normal_matches_reference)
{
    /* A million draws of N(0.5, 2^2) from the library, in calls of 1, 2, 3, ... values,
     * against the reference one at a time from the same seed. The reference's long double
     * tables may differ from the library's correctly rounded ones by one unit in the last
     * place of a few entries, which can move a draw by one float ulp, very rarely: allow
     * two such values, nothing more. */
    enum { N = 1000000 };
    const uint64_t seed = 20240611;
    float *z = malloc(N * sizeof *z);
    ref_zig *t = malloc(sizeof *t);
    ck_assert_ptr_nonnull(z);
    ck_assert_ptr_nonnull(t);
    ref_zig_init(t);
    vib_rng *lib = NULL, *words = NULL;
    ck_assert_ok(vib_rng_create(seed, &lib));
    ck_assert_ok(vib_rng_create(seed, &words));
    for (size_t done = 0, len = 1; done < N; done += len, len++) {
        if (len > N - done)
            len = N - done;
        ck_assert_ok(vib_rng_normal(lib, len, 0.5f, 2.0f, z + done));
    }
    int off_by_ulp = 0;
    for (int i = 0; i < N; i++) {
        float want = (float)(0.5 + 2.0 * ref_normal(t, words));
        if (z[i] == want)
            continue;
        ck_assert_msg(nextafterf(want, z[i]) == z[i] && ++off_by_ulp <= 2,
                      "draw %d: library %.9g, reference %.9g", i, (double)z[i],
                      (double)want);
    }
    /* Both generators consumed the same words, so they still agree. */
    uint64_t a = 0, b = 0;
    ck_assert_ok(vib_rng_u64(lib, &a));
    ck_assert_ok(vib_rng_u64(words, &b));
    ck_assert_uint_eq(a, b);
    /* Every path ran: about 98.5% boxes, 1.3% wedges, 0.2% rejections, 0.026% tails. */
    ck_assert_int_gt(t->box, 980000);
    ck_assert_int_gt(t->wedge, 1000);
    ck_assert_int_gt(t->reject, 100);
    ck_assert_int_gt(t->tail, 100);
    vib_rng_free(lib);
    vib_rng_free(words);
    free(t);
    free(z);
}
END_TEST

START_TEST(normal_known_answers)
{
    /* Seed 2981's first twelve N(0, 1) floats, from an independent Python implementation:
     * xoshiro256** and splitmix64 on Python integers, X and F the tables of the mpmath
     * script in lib/rng.c's comment, words() the raw 64-bit draws, then
     *
     *   def normal(w, u=lambda b: (b >> 11) * 2.0**-53):
     *       while True:
     *           b = next(w); i = b & 255; x = u(b) * X[i]
     *           if x < X[i + 1]: z = x
     *           elif i == 0:
     *               while True:
     *                   t = -log(u(next(w)) + 2.0**-53) / X[1]; y = -log(u(next(w)) + 2.0**-53)
     *                   if y + y >= t * t: break
     *               z = X[1] + t
     *               if z > 8.58: continue
     *           elif F[i] + u(next(w)) * (F[i + 1] - F[i]) < exp(-0.5 * x * x): z = x
     *           else: continue
     *           return struct.unpack("f", struct.pack("f", -z if b >> 8 & 1 else z))[0]
     *
     * The first draw is rejected in a wedge, then lands in the tail; the sixth is accepted
     * in a wedge. */
    const double want[12] = {
        -0x1.efcce4p+1,  0x1.f0246cp-4,  0x1.fb24cap+0,  0x1.d6d522p-1,
        0x1.22c7e0p-1,  -0x1.02b17ap-4, -0x1.05ff2ap-2, -0x1.316520p+0,
        0x1.39e8e8p+0,  -0x1.59e830p-2, -0x1.cb854ap-1, -0x1.60c41ap-1};
    float z[12];
    fill_normal(2981, 12, 0.0f, 1.0f, z);
    for (int i = 0; i < 12; i++)
        ck_assert_msg((double)z[i] == want[i], "draw %d: %a, want %a", i, (double)z[i],
                      want[i]);
}
END_TEST

static double std_normal_cdf(double x)
{
    return 0.5 * erfc(-x / sqrt(2.0));
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The Kolmogorov-Smirnov statistic of n sorted values against the CDF cdf. */
static double ks_statistic(const float *sorted, size_t n, double (*cdf)(double, double),
                           double param)
{
    double d = 0.0;
    for (size_t i = 0; i < n; i++) {
        double c = cdf((double)sorted[i], param);
        d = fmax(d, fmax(c - (double)i / n, (double)(i + 1) / n - c));
    }
    return d;
}

static double normal_cdf2(double x, double unused)
{
    (void)unused;
    return std_normal_cdf(x);
}

/* The CDF of |Z| given |Z| > r: 1 - P(|Z| > x) / P(|Z| > r). */
static double tail_cdf(double x, double r)
{
    return 1.0 - erfc(x / sqrt(2.0)) / erfc(r / sqrt(2.0));
}

START_TEST(normal_goodness_of_fit)
{
    /* Kolmogorov-Smirnov on a million draws: D must stay below the 0.001 critical value
     * 1.95 / sqrt(n). The tail beyond r carries only 2.6e-4 of the mass, too little for
     * that test, so it is checked twice more: the fraction beyond |z| > r must match
     * P(|Z| > r) = erfc(r / sqrt 2) within 5 standard errors, and the draws beyond r among
     * ten million must pass Kolmogorov-Smirnov against the normal tail's own CDF. */
    enum { N = 1000000, CHUNK = 100000, TAIL_RUNS = 10, TAIL_MAX = 20000 };
    const double r = 3.6541528853610088;
    float *z = malloc(N * sizeof *z), *tail = malloc(TAIL_MAX * sizeof *tail);
    ck_assert_ptr_nonnull(z);
    ck_assert_ptr_nonnull(tail);
    fill_normal(99, N, 0.0f, 1.0f, z);
    long beyond = 0;
    for (int i = 0; i < N; i++)
        beyond += fabs((double)z[i]) > r;
    qsort(z, N, sizeof *z, cmp_float);
    double d = ks_statistic(z, N, normal_cdf2, 0.0);
    ck_assert_msg(d < 1.95 / sqrt(N), "KS D = %g, critical %g", d, 1.95 / sqrt(N));
    double p = erfc(r / sqrt(2.0));
    ck_assert_double_eq_tol((double)beyond / N, p, 5.0 * sqrt(p * (1.0 - p) / N));

    vib_rng *rng = NULL;
    ck_assert_ok(vib_rng_create(100, &rng));
    size_t n_tail = 0;
    for (int run = 0; run < TAIL_RUNS * (N / CHUNK); run++) {
        ck_assert_ok(vib_rng_normal(rng, CHUNK, 0.0f, 1.0f, z));
        for (int i = 0; i < CHUNK; i++)
            if (fabs((double)z[i]) > r) {
                ck_assert_uint_lt(n_tail, TAIL_MAX);
                tail[n_tail++] = fabsf(z[i]);
            }
    }
    const double n_all = (double)TAIL_RUNS * N;
    ck_assert_double_eq_tol(n_tail / n_all, p, 5.0 * sqrt(p * (1.0 - p) / n_all));
    qsort(tail, n_tail, sizeof *tail, cmp_float);
    d = ks_statistic(tail, n_tail, tail_cdf, r);
    ck_assert_msg(d < 1.95 / sqrt((double)n_tail), "tail KS D = %g over %zu draws, critical %g",
                  d, n_tail, 1.95 / sqrt((double)n_tail));
    vib_rng_free(rng);
    free(tail);
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
    tcase_add_test(tc, normal_matches_reference);
    tcase_add_test(tc, normal_known_answers);
    tcase_add_test(tc, normal_goodness_of_fit);
    tcase_add_test(tc, bad_arguments);
    tcase_set_timeout(tc, 30); /* ten million draws, generous for sanitizer builds */
    suite_add_tcase(s, tc);
    return s;
}
