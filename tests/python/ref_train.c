/*
 * tests/python/ref_train.c - the C side of test_train_c.py.
 *
 *     ref_train FULL THREADS
 *
 * Trains a small model (FULL = 1: a full-covariance head, 0: diagonal) with Adam, a
 * moving average and a staircase schedule through a trainer, on THREADS threads, using
 * the public header and the shared library only, and prints every number with %a (hex
 * floats, exact), so the Python side can require the same run through the libvib
 * package to give the same bits. Keep the two in step: the model, the data formula,
 * the settings and the order of the calls (test_train_c.py: train_python).
 *
 * Output, one record per line:
 *   step CE KL LOSS            (three vib_trainer_step calls)
 *   epoch CE KL LOSS           (vib_trainer_epoch: the rest of epoch 0, then epoch 1)
 *   position EPOCHS STEP_IN_EPOCH STEPS LR
 *   params P0 P1 ...           (vib_model_params at the end)
 *   ema A0 A1 ...              (vib_ema_values at the end)
 *   eval ERROR CE_BITS KL_BITS IZY_BITS   (vib_model_evaluate: the average, 3 samples)
 *   eval ERROR CE_BITS KL_BITS IZY_BITS   (the model's weights, at z = mu)
 * Exit status 0, or 1 with a message on stderr if a call failed.
 */
#include <stdio.h>
#include <stdlib.h>

#include "vib.h"

enum { IN = 6, HID = 10, K = 3, DEC = 7, CLASSES = 4, N = 50, BATCH = 8 };
#define MODEL_SEED 5u
#define TRAIN_SEED 3u
#define BETA 1e-2f
#define OFFSET -2.0f

static void check(int status, const char *what)
{
    if (status != VIB_OK) {
        fprintf(stderr, "ref_train: %s failed: %s (%s)\n", what, vib_status_string(status),
                vib_last_error());
        exit(1);
    }
}

static void print_floats(const char *key, size_t n, const float *v)
{
    printf("%s", key);
    for (size_t i = 0; i < n; i++)
        printf(" %a", (double)v[i]);
    printf("\n");
}

static void print_eval(vib_model *m, const vib_ema *ema, const float *x, const int32_t *labels,
                       size_t samples)
{
    double e, ce, kl, izy;
    check(vib_model_evaluate(m, ema, N, x, labels, samples, &e, &ce, &kl, &izy),
          "vib_model_evaluate");
    printf("eval %a %a %a %a\n", e, ce, kl, izy);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: ref_train FULL THREADS\n");
        return 2;
    }
    const uint32_t flags = atoi(argv[1]) ? VIB_MODEL_FULL_COV : 0;
    check(vib_set_num_threads(atoi(argv[2])), "vib_set_num_threads");

    /* N rows of dyadic values (exact in float and double); the class shows as a +1 on
     * every CLASSES-th input. N is not a multiple of BATCH: each epoch ends short. */
    static float x[N * IN];
    static int32_t labels[N];
    for (int i = 0; i < N; i++) {
        labels[i] = i % CLASSES;
        for (int j = 0; j < IN; j++)
            x[i * IN + j] = (float)((i * 7 + j * 3) % 13 - 6) / 8.0f +
                            (j % CLASSES == i % CLASSES ? 1.0f : 0.0f);
    }

    const size_t enc[1] = {HID}, dec[1] = {DEC};
    vib_model *m = NULL;
    check(vib_model_create_ex(IN, 1, enc, K, 1, dec, CLASSES, flags, MODEL_SEED, &m),
          "vib_model_create_ex");
    check(vib_model_set_beta(m, BETA), "vib_model_set_beta");
    check(vib_model_set_sigma_offset(m, OFFSET), "vib_model_set_sigma_offset");
    const size_t n = vib_model_num_params(m);

    vib_optim *opt = NULL;
    vib_ema *ema = NULL;
    vib_trainer *t = NULL;
    check(vib_adam_create(n, 1e-2f, 0.9f, 0.999f, 1e-8f, &opt), "vib_adam_create");
    check(vib_ema_create(n, 0.9f, vib_model_params(m), &ema), "vib_ema_create");
    check(vib_trainer_create(m, opt, ema, N, BATCH, TRAIN_SEED, &t), "vib_trainer_create");
    check(vib_trainer_set_schedule(t, 2e-2f, 0.5f, 4), "vib_trainer_set_schedule");

    double ce, kl, loss;
    for (int s = 0; s < 3; s++) {
        check(vib_trainer_step(t, x, labels, &ce, &kl, &loss), "vib_trainer_step");
        printf("step %a %a %a\n", ce, kl, loss);
    }
    for (int e = 0; e < 2; e++) {
        check(vib_trainer_epoch(t, x, labels, &ce, &kl, &loss), "vib_trainer_epoch");
        printf("epoch %a %a %a\n", ce, kl, loss);
    }
    printf("position %llu %llu %llu %a\n", (unsigned long long)vib_trainer_epochs_done(t),
           (unsigned long long)vib_trainer_step_in_epoch(t),
           (unsigned long long)vib_trainer_steps(t), (double)vib_trainer_lr(t));
    print_floats("params", n, vib_model_params(m));
    print_floats("ema", n, vib_ema_values(ema));
    print_eval(m, ema, x, labels, 3);
    print_eval(m, NULL, x, labels, 0);

    vib_trainer_free(t);
    vib_ema_free(ema);
    vib_optim_free(opt);
    vib_model_free(m);
    return fflush(stdout) == 0 ? 0 : 1;
}
