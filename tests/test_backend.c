/* test_backend.c - the thread count, the backend line, the kernel choice and the
 * determinism the header promises: the same inputs and thread count give the same bits. */
#include <blis.h> /* BLIS_CONFIG_*: the kernel sets this BLIS build registered */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests.h"

START_TEST(thread_count_setting)
{
    ck_assert_ok(vib_set_num_threads(0)); /* the default (Check may run this in a fork) */
    const int def = vib_num_threads();
    ck_assert_int_ge(def, 1);
    ck_assert_int_le(def, VIB_MAX_THREADS);
    ck_assert_ok(vib_set_num_threads(3));
    ck_assert_int_eq(vib_num_threads(), 3);
    ck_assert_ok(vib_set_num_threads(1));
    ck_assert_int_eq(vib_num_threads(), 1);
    ck_assert_fails(vib_set_num_threads(-1), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_set_num_threads(VIB_MAX_THREADS + 1), VIB_ERR_INVALID_ARG);
    ck_assert_int_eq(vib_num_threads(), 1); /* a refused setting changes nothing */
    ck_assert_ok(vib_set_num_threads(0));
    ck_assert_int_eq(vib_num_threads(), def);
}
END_TEST

START_TEST(backend_info_is_snprintf_like)
{
    const int n = vib_backend_info(NULL, 0);
    ck_assert_int_gt(n, 20);
    char *full = malloc((size_t)n + 1);
    ck_assert_int_eq(vib_backend_info(full, (size_t)n + 1), n);
    ck_assert_uint_eq(strlen(full), (size_t)n);
    ck_assert_msg(strncmp(full, "BLIS ", 5) == 0 && strstr(full, "kernels ") != NULL,
                  "backend line: %s", full);
    char small[8];
    memset(small, 'x', sizeof small);
    ck_assert_int_eq(vib_backend_info(small, sizeof small), n); /* truncated, terminated */
    ck_assert_uint_eq(strlen(small), sizeof small - 1);
    ck_assert(strncmp(small, full, sizeof small - 1) == 0);
    ck_assert_fails(vib_backend_info(NULL, 4), VIB_ERR_INVALID_ARG);
    ck_assert_ok(vib_set_num_threads(5));
    char line[512];
    ck_assert_int_lt(vib_backend_info(line, sizeof line), (int)sizeof line);
    ck_assert_msg(strstr(line, "5 threads (vib_set_num_threads)") != NULL, "%s", line);
    ck_assert_ok(vib_set_num_threads(0));
    free(full);
}
END_TEST

#if defined(__x86_64__) && defined(BLIS_CONFIG_SKX)
#include <cpuid.h>
/* An AMD family 17h or 19h CPU (Zen 1 to Zen 4) that this BLIS build has the zen
 * kernel sets for, so that BLIS recognises it. */
static bool blis_knows_this_zen(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d) || b != 0x68747541u) /* "Auth"enticAMD */
        return false;
    __get_cpuid(1, &a, &b, &c, &d);
    const unsigned family = ((a >> 8) & 0xf) == 0xf ? 0xf + ((a >> 20) & 0xff) : (a >> 8) & 0xf;
#if defined(BLIS_CONFIG_ZEN3)
    if (family == 0x19)
        return true;
#endif
#if defined(BLIS_CONFIG_ZEN) && defined(BLIS_CONFIG_ZEN2)
    if (family == 0x17)
        return true;
#endif
    return false;
}
#endif

/* The kernel policy on whatever CPU runs the test: with neither BLIS_ARCH_TYPE nor
 * VIB_BLIS_ARCH set, an AMD Zen of family 17h/19h keeps BLIS's own choice (a zen set:
 * on Zen 4 its zen3 kernels beat skx), another AVX-512 F/DQ/BW/VL machine gets skx,
 * never the generic kernels; and the variable libvib set for BLIS is gone again. */
START_TEST(kernel_choice_follows_the_cpu)
{
    char info[256];
    ck_assert_int_gt(vib_backend_info(info, sizeof info), 0);
    if (getenv("VIB_BLIS_ARCH") != NULL || strstr(info, "set by the user") != NULL)
        return; /* the user chose: nothing of libvib's policy to check */
    ck_assert_msg(getenv("BLIS_ARCH_TYPE") == NULL, "BLIS_ARCH_TYPE left in the environment");
#if defined(__x86_64__) && defined(BLIS_CONFIG_SKX)
    __builtin_cpu_init();
    if (blis_knows_this_zen())
        ck_assert_msg(strstr(info, "kernels zen") != NULL &&
                          strstr(info, "which BLIS recognises: BLIS's own choice") != NULL,
                      "%s", info);
    else if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
        ck_assert_msg(strstr(info, "kernels skx (chosen by libvib") != NULL, "%s", info);
#endif
    ck_assert_msg(strstr(info, "kernels knl") == NULL, "%s", info); /* faults off Xeon Phi */
}
END_TEST

/* A VIB trained a few steps with Adam and the average fused into the step; large enough
 * that every threaded pass runs threaded (the products, the bias and ReLU passes, the
 * Gaussian head's rows, the optimizer's blocks: each above its size threshold). */
enum { TB = 64, TIN = 96, TK = 256, TC = 5 };
static const size_t t_enc[] = {512, 384};

static void train_steps(int threads, float *params_out, float *avg_out, size_t *np_out)
{
    ck_assert_ok(vib_set_num_threads(threads));
    enum { B = TB, IN = TIN, K = TK, C = TC, STEPS = 6 };
    const size_t *enc = t_enc;
    vib_model *m = NULL;
    vib_optim *opt = NULL;
    vib_ema *ema = NULL;
    ck_assert_ok(vib_model_create(IN, 2, enc, K, 0, NULL, C, 42, &m));
    const size_t np = vib_model_num_params(m);
    ck_assert_ok(vib_adam_create(np, 1e-3f, 0.5f, 0.999f, 1e-8f, &opt));
    ck_assert_ok(vib_ema_create(np, 0.99f, vib_model_params(m), &ema));
    static float x[B * IN];
    static int32_t y[B];
    for (int s = 0; s < STEPS; s++) {
        fill_normal(100 + (uint64_t)s, B * IN, 0.0f, 1.0f, x);
        for (int r = 0; r < B; r++)
            y[r] = (r * 7 + s) % C;
        ck_assert_ok(vib_model_gradients(m, B, x, y, NULL, NULL, NULL));
        ck_assert_ok(vib_optim_step_ema(opt, vib_model_params(m), vib_model_grads(m), ema));
    }
    if (params_out) {
        memcpy(params_out, vib_model_params(m), np * sizeof(float));
        memcpy(avg_out, vib_ema_values(ema), np * sizeof(float));
    }
    *np_out = np;
    vib_model_free(m);
    vib_optim_free(opt);
    vib_ema_free(ema);
    ck_assert_ok(vib_set_num_threads(0));
}

START_TEST(same_seed_same_threads_same_bits)
{
    size_t np;
    train_steps(1, NULL, NULL, &np);
    float *p[2], *a[2];
    for (int threads = 1; threads <= 2; threads++) {
        for (int run = 0; run < 2; run++) {
            p[run] = malloc(np * sizeof(float));
            a[run] = malloc(np * sizeof(float));
            train_steps(threads, p[run], a[run], &np);
        }
        ck_assert_msg(memcmp(p[0], p[1], np * sizeof(float)) == 0,
                      "parameters differ between two runs with %d threads", threads);
        ck_assert_msg(memcmp(a[0], a[1], np * sizeof(float)) == 0,
                      "averages differ between two runs with %d threads", threads);
        /* and training moved them: the comparison is not of two untouched copies */
        vib_model *fresh = NULL;
        ck_assert_ok(vib_model_create(TIN, 2, t_enc, TK, 0, NULL, TC, 42, &fresh));
        ck_assert(memcmp(p[0], vib_model_params(fresh), np * sizeof(float)) != 0);
        vib_model_free(fresh);
        for (int run = 0; run < 2; run++) {
            free(p[run]);
            free(a[run]);
        }
    }
}
END_TEST

/* A child forked after the parent ran threaded passes can still train: GNU OpenMP's
 * threads do not survive fork, and a child that used them would wait forever, so libvib
 * runs a forked child on one thread. The child has 60 s (an alarm) to finish two steps. */
START_TEST(forked_child_trains)
{
    size_t np;
    train_steps(2, NULL, NULL, &np); /* the parent's OpenMP threads now exist */
    ck_assert_ok(vib_set_num_threads(2));
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        alarm(60);
        int ok = vib_num_threads() == 1;
        vib_model *m = NULL;
        static float x[TB * TIN];
        static int32_t y[TB];
        ok = ok && vib_model_create(TIN, 2, t_enc, TK, 0, NULL, TC, 1, &m) == VIB_OK;
        for (int s = 0; ok && s < 2; s++)
            ok = vib_model_gradients(m, TB, x, y, NULL, NULL, NULL) == VIB_OK;
        vib_model_free(m);
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "the forked child %s", WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM
                                             ? "hung (alarm)"
                                             : "failed");
    ck_assert_int_eq(vib_num_threads(), 2); /* the parent keeps its setting */
    ck_assert_ok(vib_set_num_threads(0));
}
END_TEST

/* tests/vib_api_predefined.c includes vib.h after defining VIB_API as empty. */
const char *vibt_api_expansion(void);
uint32_t vibt_api_version(void);

/* A predefined VIB_API is kept by vib.h (the header only defines it when it is not
 * defined), and the declarations it then reads call the same library. */
START_TEST(predefined_vib_api_is_kept)
{
    ck_assert_str_eq(vibt_api_expansion(), "");
    ck_assert_uint_eq(vibt_api_version(), vib_version_number());
    ck_assert_uint_eq(vibt_api_version(), VIB_VERSION_NUMBER);
}
END_TEST

/* A forked child's one thread is libvib's doing, not the caller's: vib_backend_info must
 * say so, until the child sets a count of its own. */
START_TEST(forked_child_info_says_why)
{
    ck_assert_ok(vib_set_num_threads(2));
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        alarm(60);
        char line[512];
        int ok = vib_num_threads() == 1;
        ok = ok && vib_backend_info(line, sizeof line) < (int)sizeof line;
        ok = ok && strstr(line, " 1 thread (a forked child)") != NULL;
        ok = ok && strstr(line, "vib_set_num_threads") == NULL;
        if (!ok)
            fprintf(stderr, "forked child: %s\n", line);
        ok = ok && vib_set_num_threads(1) == VIB_OK;
        ok = ok && vib_backend_info(line, sizeof line) < (int)sizeof line;
        ok = ok && strstr(line, " 1 thread (vib_set_num_threads)") != NULL;
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "the forked child's backend line is wrong (see its stderr)");
    char line[512];
    ck_assert_int_lt(vib_backend_info(line, sizeof line), (int)sizeof line);
    ck_assert_msg(strstr(line, "2 threads (vib_set_num_threads)") != NULL, "%s", line);
    ck_assert_ok(vib_set_num_threads(0));
}
END_TEST

Suite *make_backend_suite(void)
{
    Suite *s = suite_create("backend");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, thread_count_setting);
    tcase_add_test(tc, backend_info_is_snprintf_like);
    tcase_add_test(tc, kernel_choice_follows_the_cpu);
    tcase_add_test(tc, same_seed_same_threads_same_bits);
    tcase_add_test(tc, forked_child_trains);
    tcase_add_test(tc, forked_child_info_says_why);
    tcase_add_test(tc, predefined_vib_api_is_kept);
    suite_add_tcase(s, tc);
    return s;
}
