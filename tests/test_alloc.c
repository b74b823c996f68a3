/* test_alloc.c - once its workspace is reserved, a training step (gradients, then the
 * fused optimizer and average), a prediction, input gradients and an evaluation
 * (without izy_bits) allocate nothing.
 *
 * The test binary is linked with -Wl,--wrap for malloc, calloc, realloc and
 * aligned_alloc, so every allocation made by the statically linked libvib (and by
 * the tests) goes through the counters below; BLIS and zlib, shared libraries, keep
 * their own memory and are not counted. The wrappers also keep the largest request
 * (alloc_watch_largest), which the file-reading suites use to show that a forged file
 * causes no large allocation. */
#include <stdlib.h>
#include <string.h>

#include "tests.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t k, size_t n);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t a, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t k, size_t n);
void *__wrap_realloc(void *p, size_t n);
void *__wrap_aligned_alloc(size_t a, size_t n);
void __real_free(void *p);
void __wrap_free(void *p);

static size_t allocations;
static size_t largest; /* the largest request since alloc_watch_reset */

static void count_request(size_t n)
{
    allocations++;
    if (n > largest)
        largest = n;
}

void alloc_watch_reset(void)
{
    largest = 0;
}

size_t alloc_watch_largest(void)
{
    return largest;
}

/* Each allocator also asks test_faults.c's injector whether this call must fail, and
 * reports what it allocated and what free releases (the live count a failed call must
 * leave as it was). */
static void *counted(void *p)
{
    if (p != NULL)
        fault_count_alloc(1);
    return p;
}

void *__wrap_malloc(size_t n)
{
    count_request(n);
    return fault_take(FAULT_ALLOC) ? NULL : counted(__real_malloc(n));
}

void *__wrap_calloc(size_t k, size_t n)
{
    size_t bytes;
    count_request(vibi_mul_size(k, n, &bytes) ? bytes : SIZE_MAX);
    return fault_take(FAULT_ALLOC) ? NULL : counted(__real_calloc(k, n));
}

void *__wrap_realloc(void *p, size_t n)
{
    count_request(n);
    if (fault_take(FAULT_ALLOC))
        return NULL; /* p stays allocated, as realloc leaves it */
    void *q = __real_realloc(p, n);
    if (p == NULL)
        counted(q);
    else if (q == NULL && n == 0)
        fault_count_alloc(-1); /* freed */
    return q;
}

void *__wrap_aligned_alloc(size_t a, size_t n)
{
    count_request(n);
    return fault_take(FAULT_ALLOC) ? NULL : counted(__real_aligned_alloc(a, n));
}

void __wrap_free(void *p)
{
    if (p != NULL)
        fault_count_alloc(-1);
    __real_free(p);
}

START_TEST(steady_state_allocates_nothing)
{
    enum { B = 40, IN = 64, K = 8, C = 4 };
    static float x[B * IN], prob[B * C];
    static int32_t y[B];
    const size_t enc[] = {96, 80}, dec[] = {16};
    vib_model *m = NULL;
    vib_optim *opt = NULL;
    vib_ema *ema = NULL;
    ck_assert_ok(vib_model_create(IN, 2, enc, K, 1, dec, C, 5, &m));
    const size_t np = vib_model_num_params(m);
    ck_assert_ok(vib_adam_create(np, 1e-3f, 0.9f, 0.999f, 1e-8f, &opt));
    ck_assert_ok(vib_ema_create(np, 0.99f, vib_model_params(m), &ema));
    fill_normal(6, B * IN, 0.0f, 1.0f, x);
    for (int r = 0; r < B; r++)
        y[r] = r % C;

    /* The counter sees allocations: reserving the workspace makes some. */
    size_t before = allocations;
    ck_assert_ok(vib_model_reserve(m, B));
    ck_assert_uint_gt(allocations, before);

    /* Check's own assertions allocate (it is linked statically too): collect the
     * statuses and assert after the counted stretch. */
    /* (input gradients and evaluation too, the latter without izy_bits, whose label
     * histogram is allocated per call) */
    static float dx[B * IN];
    int rc[15];
    before = allocations;
    for (int step = 0; step < 3; step++) {
        double ce, kl, loss, error;
        rc[5 * step] = vib_model_gradients(m, B - (size_t)step, x, y, &ce, &kl, &loss);
        rc[5 * step + 1] =
            vib_optim_step_ema(opt, vib_model_params(m), vib_model_grads(m), ema);
        rc[5 * step + 2] = vib_model_predict(m, B, x, 3, prob);
        rc[5 * step + 3] = vib_model_input_gradients(m, B, x, y, 2, dx, &loss);
        rc[5 * step + 4] = vib_model_evaluate(m, ema, B, x, y, 2, &error, &ce, &kl, NULL);
    }
    const size_t counted = allocations - before;
    for (int i = 0; i < 15; i++)
        ck_assert_msg(rc[i] == VIB_OK, "call %d: %s", i, vib_last_error());
    ck_assert_msg(counted == 0, "%zu allocations in three steps", counted);

    /* The trainer allocates when it is created, never in a step or an epoch (of 3). */
    static float xt[3 * B * IN];
    static int32_t yt[3 * B];
    fill_normal(7, 3 * B * IN, 0.0f, 1.0f, xt);
    for (int r = 0; r < 3 * B; r++)
        yt[r] = r % C;
    vib_trainer *t = NULL;
    ck_assert_ok(vib_trainer_create(m, opt, ema, 3 * B, B, 9, &t));
    int trc[4];
    before = allocations;
    for (int step = 0; step < 3; step++)
        trc[step] = vib_trainer_step(t, xt, yt, NULL, NULL, NULL);
    trc[3] = vib_trainer_epoch(t, xt, yt, NULL, NULL, NULL);
    const size_t trained = allocations - before;
    for (int i = 0; i < 4; i++)
        ck_assert_msg(trc[i] == VIB_OK, "trainer call %d: %s", i, vib_last_error());
    ck_assert_msg(trained == 0, "%zu allocations in the trainer's steps", trained);
    vib_trainer_free(t);

    /* and a larger batch than reserved does allocate (the workspace grows) */
    static float x2[(B + 1) * IN];
    static int32_t y2[B + 1];
    memcpy(x2, x, sizeof x);
    before = allocations;
    const int grown = vib_model_gradients(m, B + 1, x2, y2, NULL, NULL, NULL);
    const size_t after = allocations;
    ck_assert_int_eq(grown, VIB_OK);
    ck_assert_uint_gt(after, before);

    ck_assert_fails(vib_model_reserve(NULL, 4), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_model_reserve(m, 0), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_model_reserve(m, SIZE_MAX / 2), VIB_ERR_INVALID_ARG);
    vib_model_free(m);
    vib_optim_free(opt);
    vib_ema_free(ema);
}
END_TEST

Suite *make_alloc_suite(void)
{
    Suite *s = suite_create("alloc");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, steady_state_allocates_nothing);
    suite_add_tcase(s, tc);
    return s;
}
