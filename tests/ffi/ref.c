/*
 * tests/ffi/ref.c - the C side of the ctypes test (tests/ffi_ctypes.py).
 *
 * Runs the same tiny-model sequence as the Python test, through the public header and
 * the shared library only, and prints every number with %a (hex floats, exact), so the
 * Python side can require its results to be bit-identical. Keep the two in step: the
 * model, the batch formula, the optimizer settings and the order of the calls.
 *
 * Output, one record per line:
 *   num_params N
 *   step I CE KL LOSS          (I = 0..STEPS-1, values of vib_model_gradients)
 *   params P0 P1 ...           (vib_model_params after the last step)
 *   prob0 ...                  (vib_model_predict, samples 0, after vib_model_reseed)
 *   prob4 ...                  (vib_model_predict, samples 4, right after)
 * Exit status 0, or 1 with a message on stderr if a call failed.
 */
#include <stdio.h>
#include <stdlib.h>

#include "vib.h"

enum { IN = 6, HID = 8, K = 3, CLASSES = 3, BATCH = 12, STEPS = 5 };
#define SEED 7u
#define RESEED 11u
#define BETA 1e-2f
#define LR 5e-2f

static int check(int status, const char *what)
{
    if (status != VIB_OK) {
        fprintf(stderr, "ffi_ref: %s failed: %s (%s)\n", what, vib_status_string(status),
                vib_last_error());
        exit(1);
    }
    return status;
}

static void print_floats(const char *key, size_t n, const float *v)
{
    printf("%s", key);
    for (size_t i = 0; i < n; i++)
        printf(" %a", (double)v[i]);
    printf("\n");
}

int main(void)
{
    /* The batch: dyadic values, exact in float and in Python's double; the class
     * shows as a +1 on every third input. */
    float x[BATCH * IN];
    int32_t labels[BATCH];
    for (int i = 0; i < BATCH; i++) {
        labels[i] = i % CLASSES;
        for (int j = 0; j < IN; j++)
            x[i * IN + j] = (float)((i * 5 + j * 3) % 11 - 5) / 8.0f +
                            (j % CLASSES == i % CLASSES ? 1.0f : 0.0f);
    }

    const size_t enc[1] = {HID};
    vib_model *m = NULL;
    check(vib_model_create(IN, 1, enc, K, 0, NULL, CLASSES, SEED, &m), "vib_model_create");
    check(vib_model_set_beta(m, BETA), "vib_model_set_beta");
    size_t n = vib_model_num_params(m);
    printf("num_params %zu\n", n);

    vib_optim *opt = NULL;
    check(vib_adam_create(n, LR, 0.9f, 0.999f, 1e-8f, &opt), "vib_adam_create");
    for (int s = 0; s < STEPS; s++) {
        double ce = 0.0, kl = 0.0, loss = 0.0;
        check(vib_model_gradients(m, BATCH, x, labels, &ce, &kl, &loss), "vib_model_gradients");
        check(vib_optim_step(opt, vib_model_params(m), vib_model_grads(m)), "vib_optim_step");
        printf("step %d %a %a %a\n", s, ce, kl, loss);
    }
    print_floats("params", n, vib_model_params(m));

    float prob[BATCH * CLASSES];
    check(vib_model_reseed(m, RESEED), "vib_model_reseed");
    check(vib_model_predict(m, BATCH, x, 0, prob), "vib_model_predict");
    print_floats("prob0", BATCH * CLASSES, prob);
    check(vib_model_predict(m, BATCH, x, 4, prob), "vib_model_predict");
    print_floats("prob4", BATCH * CLASSES, prob);

    vib_optim_free(opt);
    vib_model_free(m);
    return fflush(stdout) == 0 ? 0 : 1;
}
