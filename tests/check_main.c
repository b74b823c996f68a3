/* check_main.c - the one runner: every suite, non-zero exit on any failure.
 * CK_FORK=no runs the tests in-process (for gdb and the sanitizer run). */
#include <stdlib.h>

#include "tests.h"

int main(void)
{
    const char *child = getenv("VIB_TEST_RESUME_CHILD");
    if (child != NULL) /* test_train.c's resume in a fresh process */
        return test_resume_child(child);
    SRunner *sr = srunner_create(make_status_suite());
    srunner_add_suite(sr, make_rng_suite());
    srunner_add_suite(sr, make_gemm_suite());
    srunner_add_suite(sr, make_nodes_suite());
    srunner_add_suite(sr, make_cov_suite());
    srunner_add_suite(sr, make_dense_suite());
    srunner_add_suite(sr, make_flow_suite());
    srunner_add_suite(sr, make_model_suite());
    srunner_add_suite(sr, make_io_suite());
    srunner_add_suite(sr, make_optim_suite());
    srunner_add_suite(sr, make_idx_suite());
    srunner_add_suite(sr, make_backend_suite());
    srunner_add_suite(sr, make_alloc_suite());
    srunner_add_suite(sr, make_vmath_suite());
    srunner_add_suite(sr, make_train_suite());
    srunner_add_suite(sr, make_faults_suite());
    srunner_add_suite(sr, make_attacks_suite());
    srunner_add_suite(sr, make_samples_suite());
    srunner_add_suite(sr, make_mixture_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
