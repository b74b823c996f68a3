/* test_gemm.c - the BLIS wrapper against a naive float64 product, for every transpose
 * combination, padded leading dimensions, alpha and beta. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests.h"

/* Element (i, j) of op(X) for a row-major X with row stride ld. */
static double at(const float *x, size_t ld, bool trans, size_t i, size_t j)
{
    return trans ? x[j * ld + i] : x[i * ld + j];
}

static void check_product(bool ta, bool tb, size_t m, size_t n, size_t k, float alpha,
                          float beta)
{
    /* Stored shapes: A is [m x k] or [k x m], B is [k x n] or [n x k]; pad each row by 3
     * so the leading dimensions differ from the logical widths. */
    size_t a_rows = ta ? k : m, a_cols = ta ? m : k, lda = a_cols + 3;
    size_t b_rows = tb ? n : k, b_cols = tb ? k : n, ldb = b_cols + 3;
    size_t ldc = n + 3;
    float *a = malloc(a_rows * lda * sizeof *a), *b = malloc(b_rows * ldb * sizeof *b);
    float *c = malloc(m * ldc * sizeof *c), *c0 = malloc(m * ldc * sizeof *c0);
    fill_normal(1, a_rows * lda, 0.0f, 1.0f, a);
    fill_normal(2, b_rows * ldb, 0.0f, 1.0f, b);
    fill_normal(3, m * ldc, 0.0f, 1.0f, c0);
    if (beta == 0.0f) /* beta = 0 must overwrite C without reading it */
        for (size_t i = 0; i < m * ldc; i++)
            c0[i] = NAN;
    for (size_t i = 0; i < m * ldc; i++)
        c[i] = c0[i];
    vibi_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    for (size_t i = 0; i < m; i++) {
        for (size_t j = 0; j < n; j++) {
            double ref = 0.0, mag = 0.0;
            for (size_t p = 0; p < k; p++) {
                double t = at(a, lda, ta, i, p) * at(b, ldb, tb, p, j);
                ref += t;
                mag += fabs(t);
            }
            double old = beta == 0.0f ? 0.0 : beta * (double)c0[i * ldc + j]; /* C may be NaN */
            ref = alpha * ref + old;
            double tol = 1e-5 * (fabs(alpha) * mag + fabs(old)) + 1e-6;
            ck_assert_msg(fabs(c[i * ldc + j] - ref) <= tol,
                          "ta=%d tb=%d C[%zu][%zu] = %g, expected %g", ta, tb, i, j,
                          (double)c[i * ldc + j], ref);
        }
        for (size_t j = n; j < ldc; j++) /* padding is never written */
            ck_assert(memcmp(&c[i * ldc + j], &c0[i * ldc + j], sizeof(float)) == 0);
    }
    free(a);
    free(b);
    free(c);
    free(c0);
}

START_TEST(all_transposes)
{
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            check_product(ta, tb, 7, 5, 11, 1.0f, 0.0f);
            check_product(ta, tb, 33, 17, 64, 0.5f, 1.0f);
            check_product(ta, tb, 1, 9, 3, -2.0f, 0.25f);
        }
}
END_TEST

/* Shapes on both sides of lib/gemm.c's path rule (sup for 32 rows or columns or fewer
 * with k >= 16, packed otherwise, the columns split among threads over few rows): the
 * same answers either way, with 1 and 2 threads. */
START_TEST(both_paths)
{
    for (int threads = 1; threads <= 2; threads++) {
        ck_assert_ok(vib_set_num_threads(threads));
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                check_product(ta, tb, 100, 10, 256, 1.0f, 0.0f); /* the decoder: sup */
                check_product(ta, tb, 256, 10, 100, 1.0f, 1.0f); /* its weight gradient */
                check_product(ta, tb, 100, 256, 10, 1.0f, 0.0f); /* k = 10: packed */
                check_product(ta, tb, 32, 300, 200, 1.0f, 0.0f); /* a small batch: sup */
                check_product(ta, tb, 70, 300, 200, 1.0f, 0.5f); /* packed, split columns */
                check_product(ta, tb, 600, 70, 40, 1.0f, 0.0f);  /* packed, BLIS's split */
            }
    }
    ck_assert_ok(vib_set_num_threads(0));
}
END_TEST

/* The rule itself, on the step products docs/performance.md measured. */
START_TEST(path_rule)
{
    ck_assert(vibi_gemm_use_sup(100, 10, 256));    /* decoder forward, 10 classes */
    ck_assert(vibi_gemm_use_sup(256, 10, 100));    /* decoder weight gradient */
    ck_assert(vibi_gemm_use_sup(1, 1024, 784));    /* one example: packing W costs more */
    ck_assert(vibi_gemm_use_sup(32, 1024, 784));   /* batch 32 */
    ck_assert(!vibi_gemm_use_sup(33, 1024, 784));  /* past it */
    ck_assert(!vibi_gemm_use_sup(100, 256, 10));   /* k = 10: sup at a third of packed */
    ck_assert(!vibi_gemm_use_sup(100, 1024, 784));  /* encoder forward at batch 100 */
    ck_assert(!vibi_gemm_use_sup(100, 1024, 1024)); /* input gradient dy W^T */
    ck_assert(!vibi_gemm_use_sup(784, 1024, 100));  /* weight gradient x^T dy */
    ck_assert(!vibi_gemm_use_sup(4, 4, 4));         /* tiny all round: nothing to gain */
}
END_TEST

START_TEST(path_override)
{
    const char *note = NULL;
    ck_assert_int_eq(vibi_gemm_path_parse(NULL, &note), VIBI_GEMM_RULE);
    ck_assert_str_eq(note, "libvib's rule");
    ck_assert_int_eq(vibi_gemm_path_parse("auto", &note), VIBI_GEMM_RULE);
    ck_assert_int_eq(vibi_gemm_path_parse("blis", &note), VIBI_GEMM_BLIS);
    ck_assert_ptr_nonnull(strstr(note, "VIB_GEMM_PATH=blis"));
    ck_assert_int_eq(vibi_gemm_path_parse("packed", &note), VIBI_GEMM_PACKED);
    ck_assert_ptr_nonnull(strstr(note, "VIB_GEMM_PATH=packed"));
    ck_assert_int_eq(vibi_gemm_path_parse("Packed", &note), VIBI_GEMM_RULE);
    ck_assert_ptr_nonnull(strstr(note, "ignored"));
    ck_assert_int_eq(vibi_gemm_path_parse("", &note), VIBI_GEMM_RULE);
    /* what this process runs under, as vib_backend_info reports it */
    char info[512];
    ck_assert_int_lt(vib_backend_info(info, sizeof info), (int)sizeof info);
    ck_assert_msg(strstr(info, ", products: ") != NULL, "%s", info);
    const int path = vibi_gemm_path_parse(getenv("VIB_GEMM_PATH"), &note);
    ck_assert_int_eq(vibi_gemm_path(), path);
    if (path == VIBI_GEMM_RULE && !vibi_gemm_kernels_have_sup())
        note = "no sup kernels to choose";
    ck_assert_msg(strstr(info, note) != NULL, "%s lacks '%s'", info, note);
}
END_TEST

/* How each product runs, for each override, kernel set and thread count. */
START_TEST(path_plan)
{
    static const size_t shapes[][3] = {{100, 10, 256}, {100, 1024, 784}, {100, 256, 10},
                                       {1, 1, 1},      {784, 1024, 100}, {512, 64, 64},
                                       {513, 64, 64}};
    const int NO_SUP = VIBI_GEMM_NO_SUP, SPLIT = VIBI_GEMM_SPLIT_COLUMNS;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const size_t m = shapes[i][0], n = shapes[i][1], k = shapes[i][2];
        for (int t = 1; t <= 4; t++) {
            for (int have = 0; have < 2; have++) {
                ck_assert_int_eq(vibi_gemm_plan(VIBI_GEMM_PACKED, have, m, n, k, t), NO_SUP);
                ck_assert_int_eq(vibi_gemm_plan(VIBI_GEMM_BLIS, have, m, n, k, t), 0);
            }
            ck_assert_int_eq(vibi_gemm_plan(VIBI_GEMM_RULE, false, m, n, k, t), 0);
            const int plan = vibi_gemm_plan(VIBI_GEMM_RULE, true, m, n, k, t);
            const int want = vibi_gemm_use_sup(m, n, k) ? 0
                             : NO_SUP | (t > 1 && m <= 512 ? SPLIT : 0);
            ck_assert_msg(plan == want, "%zux%zux%zu, %d threads: plan %d, want %d", m, n, k,
                          t, plan, want);
        }
    }
    /* the step's products on two threads */
    ck_assert_int_eq(vibi_gemm_plan(VIBI_GEMM_RULE, true, 100, 1024, 784, 2), NO_SUP | SPLIT);
    ck_assert_int_eq(vibi_gemm_plan(VIBI_GEMM_RULE, true, 784, 1024, 100, 2), NO_SUP);
    ck_assert_int_eq(vibi_gemm_plan(VIBI_GEMM_RULE, true, 100, 10, 256, 2), 0);
}
END_TEST

/* The kernel sets said to have sup kernels are BLIS 0.9.0's AVX2 sets, by the name
 * vib_backend_info reports for the set running. */
START_TEST(sup_kernels_by_name)
{
    char info[512];
    ck_assert_int_lt(vib_backend_info(info, sizeof info), (int)sizeof info);
    const char *k = strstr(info, "kernels ");
    ck_assert_ptr_nonnull(k);
    char name[32] = "";
    ck_assert_int_eq(sscanf(k, "kernels %31s", name), 1);
    const bool avx2_set = !strcmp(name, "haswell") || !strcmp(name, "zen") ||
                          !strcmp(name, "zen2") || !strcmp(name, "zen3");
    ck_assert_msg(vibi_gemm_kernels_have_sup() == avx2_set, "kernels %s", name);
}
END_TEST

START_TEST(empty_shapes)
{
    float c[4] = {1, 2, 3, 4}, a[4] = {1, 1, 1, 1};
    vibi_sgemm(false, false, 0, 2, 2, 1.0f, a, 2, a, 2, 0.0f, c, 2);
    vibi_sgemm(false, false, 2, 0, 2, 1.0f, a, 2, a, 2, 0.0f, c, 2);
    ck_assert(c[0] == 1 && c[1] == 2 && c[2] == 3 && c[3] == 4);
    /* k = 0: C = beta * C. */
    vibi_sgemm(false, false, 2, 2, 0, 1.0f, a, 1, a, 2, 0.5f, c, 2);
    ck_assert(c[0] == 0.5f && c[1] == 1.0f && c[2] == 1.5f && c[3] == 2.0f);
}
END_TEST

Suite *make_gemm_suite(void)
{
    Suite *s = suite_create("gemm");
    TCase *tc = tcase_create("gemm");
    tcase_add_test(tc, all_transposes);
    tcase_add_test(tc, both_paths);
    tcase_add_test(tc, path_rule);
    tcase_add_test(tc, path_override);
    tcase_add_test(tc, path_plan);
    tcase_add_test(tc, sup_kernels_by_name);
    tcase_add_test(tc, empty_shapes);
    /* both_paths runs every product shape by two paths against a double reference: about
     * 1 s alone, 4-5 s on a 2-core machine shared with other builds, past Check's 4 s */
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);
    return s;
}
