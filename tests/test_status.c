/* test_status.c - versions, status strings and the thread-local error detail. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "tests.h"

START_TEST(version_matches_header)
{
    char expect[32];
    snprintf(expect, sizeof expect, "%d.%d.%d", VIB_VERSION_MAJOR, VIB_VERSION_MINOR,
             VIB_VERSION_PATCH);
    ck_assert_str_eq(vib_version_string(), expect);
    ck_assert_uint_eq(vib_version_number(), VIB_VERSION_NUMBER);
    ck_assert_uint_eq(vib_version_number(),
                      VIB_VERSION_MAJOR * 10000u + VIB_VERSION_MINOR * 100u + VIB_VERSION_PATCH);
}
END_TEST

START_TEST(status_strings_are_distinct)
{
    const int codes[] = {VIB_OK, VIB_ERR_INVALID_ARG, VIB_ERR_NOMEM, VIB_ERR_IO,
                         VIB_ERR_FORMAT, VIB_ERR_NUMERIC};
    const size_t n = sizeof codes / sizeof codes[0];
    /* The numbers are part of the ABI: they never change. */
    ck_assert_int_eq(VIB_OK, 0);
    ck_assert_int_eq(VIB_ERR_INVALID_ARG, -1);
    ck_assert_int_eq(VIB_ERR_NOMEM, -2);
    ck_assert_int_eq(VIB_ERR_IO, -3);
    ck_assert_int_eq(VIB_ERR_FORMAT, -4);
    ck_assert_int_eq(VIB_ERR_NUMERIC, -5);
    for (size_t i = 0; i < n; i++) {
        const char *s = vib_status_string(codes[i]);
        ck_assert_ptr_nonnull(s);
        ck_assert_str_ne(s, "unknown status");
        for (size_t j = 0; j < i; j++)
            ck_assert_str_ne(s, vib_status_string(codes[j]));
    }
    ck_assert_str_eq(vib_status_string(-999), "unknown status");
    ck_assert_str_eq(vib_status_string(7), "unknown status");
}
END_TEST

START_TEST(last_error_names_the_call)
{
    ck_assert_fails(vib_rng_create(1, NULL), VIB_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(vib_last_error(), "vib_rng_create"));
    /* A later success does not clear the detail; a later failure replaces it. */
    vib_rng *rng = NULL;
    ck_assert_ok(vib_rng_create(1, &rng));
    ck_assert_ptr_nonnull(strstr(vib_last_error(), "vib_rng_create"));
    ck_assert_fails(vib_rng_seed(NULL, 1), VIB_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(vib_last_error(), "vib_rng_seed"));
    vib_rng_free(rng);
}
END_TEST

static void *fail_in_thread(void *arg)
{
    char *seen = arg;
    /* A fresh thread starts with an empty detail, whatever other threads did. */
    strcpy(seen, vib_last_error());
    float x = 1.0f;
    (void)vib_relu_forward(1, &x, NULL);
    strcat(seen, "|");
    strncat(seen, vib_last_error(), 200);
    return NULL;
}

/* An error whose detail wraps an earlier one's, read from vib_last_error() itself (what
 * the model loader does with the architecture check's reason), keeps it whole. */
START_TEST(last_error_can_wrap_itself)
{
    ck_assert_fails(vib_rng_create(1, NULL), VIB_ERR_INVALID_ARG);
    char inner[256];
    snprintf(inner, sizeof inner, "%s", vib_last_error());
    ck_assert_int_eq(vibi_fail(VIB_ERR_FORMAT, "outer: %s (wrapped)", vib_last_error()),
                     VIB_ERR_FORMAT);
    char want[300];
    snprintf(want, sizeof want, "outer: %s (wrapped)", inner);
    ck_assert_str_eq(vib_last_error(), want);
}
END_TEST

START_TEST(last_error_is_thread_local)
{
    ck_assert_fails(vib_rng_seed(NULL, 1), VIB_ERR_INVALID_ARG);
    char mine[256];
    snprintf(mine, sizeof mine, "%s", vib_last_error());
    char seen[512] = "";
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, fail_in_thread, seen), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_msg(seen[0] == '|', "new thread saw '%s'", seen);
    ck_assert_ptr_nonnull(strstr(seen, "vib_relu_forward"));
    ck_assert_str_eq(vib_last_error(), mine); /* the other thread's error did not leak here */
}
END_TEST

Suite *make_status_suite(void)
{
    Suite *s = suite_create("status");
    TCase *tc = tcase_create("status");
    tcase_add_test(tc, version_matches_header);
    tcase_add_test(tc, status_strings_are_distinct);
    tcase_add_test(tc, last_error_names_the_call);
    tcase_add_test(tc, last_error_can_wrap_itself);
    tcase_add_test(tc, last_error_is_thread_local);
    suite_add_tcase(s, tc);
    return s;
}
