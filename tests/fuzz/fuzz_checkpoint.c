/* fuzz_checkpoint.c - libFuzzer target: vib_trainer_load on checkpoint files, into a
 * trainer of a fixed small architecture (3 inputs, an encoder of 2, K = 2, 2 classes,
 * Adam, rows 6 in batches of 3; with an average in one trainer and without in the
 * other: the input's second bit picks which), as the seed corpus's checkpoints are.
 *
 * The input's first bit picks the mode: as it is, or with the CRC-32 seals recomputed
 * (the embedded model file's, then the checkpoint's; fuzz_reseal) so that mutations
 * reach the checks of the fields behind them: the embedded model, the trainer's
 * position, the order, the optimizer's moments, the average.
 * Oracle: a load that fails is VIB_ERR_FORMAT (VIB_ERR_NOMEM for a claim too large to
 * allocate, VIB_ERR_INVALID_ARG for a well-formed checkpoint of another trainer: another
 * architecture, optimizer setting, n or batch), names the file, and leaves the trainer as it was (its own checkpoint, saved
 * before and after, is the same bytes); a load that succeeds leaves a trainer that saves
 * the very bytes it loaded but for the optimizer's moment bound, which a load may raise
 * (api.md), and its settings, which must equal the trainer's by value (-0 for 0 loads);
 * those bytes load into a second trainer that saves them again. */
#include "fuzz_util.h"

typedef struct {
    vib_model *m;
    vib_optim *opt;
    vib_ema *ema;
    vib_trainer *t;
} rig;

static void make(rig *r, int with_ema)
{
    const size_t enc[] = {2};
    if (vib_model_create(3, 1, enc, 2, 0, NULL, 2, 1, &r->m) != VIB_OK ||
        vib_adam_create(vib_model_num_params(r->m), 1e-2f, 0.9f, 0.999f, 1e-8f, &r->opt) != VIB_OK ||
        (with_ema && vib_ema_create(vib_model_num_params(r->m), 0.9f, vib_model_params(r->m),
                                    &r->ema) != VIB_OK) ||
        vib_trainer_create(r->m, r->opt, r->ema, 6, 3, 2, &r->t) != VIB_OK)
        fuzz_fail("cannot build the trainer: %s", vib_last_error());
}

static int same_bytes(const char *a, const char *b)
{
    size_t na, nb;
    unsigned char *x = fuzz_read(a, &na), *y = fuzz_read(b, &nb);
    const int same = na == nb && memcmp(x, y, na) == 0;
    free(x), free(y);
    return same;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static rig target[2], second[2];
    static int built;
    if (!built) {
        for (int e = 0; e < 2; e++)
            make(&target[e], e), make(&second[e], e);
        built = 1;
    }
    if (size < 1)
        return 0;
    const int e = (data[0] >> 1) & 1;
    const char *path = fuzz_path("ckpt"), *before = fuzz_path("ckpt_before"),
               *after = fuzz_path("ckpt_after"), *again = fuzz_path("ckpt_again");
    size_t n;
    unsigned char *file = fuzz_file(data, size, path, &n);

    if (vib_trainer_save(target[e].t, before) != VIB_OK)
        fuzz_fail("cannot save the trainer: %s", vib_last_error());
    const int rc = vib_trainer_load(target[e].t, path);
    if (rc != VIB_OK) {
        /* VIB_ERR_INVALID_ARG: a well-formed checkpoint of another trainer (api.md) */
        fuzz_failed_load("vib_trainer_load", rc,
                         FUZZ_ALLOW(VIB_ERR_FORMAT) | FUZZ_ALLOW(VIB_ERR_NOMEM) |
                             FUZZ_ALLOW(VIB_ERR_INVALID_ARG),
                         NULL, NULL, path);
        if (vib_trainer_save(target[e].t, after) != VIB_OK)
            fuzz_fail("the trainer does not save after a failed load: %s", vib_last_error());
        if (!same_bytes(before, after))
            fuzz_fail("a failed vib_trainer_load changed the trainer");
    } else {
        if (vib_trainer_save(target[e].t, after) != VIB_OK)
            fuzz_fail("a loaded trainer does not save: %s", vib_last_error());
        size_t m;
        unsigned char *saved = fuzz_read(after, &m);
        if (m != n)
            fuzz_fail("a checkpoint of %zu bytes loads but saves %zu", n, m);
        /* The one field a load may change (api.md): the optimizer's bound on its first
         * moment is raised to the moments' largest magnitude when the file gives less.
         * It is the f64 after the trainer's section (5 u64, 2 f32, a u64, an f32, three
         * 32-byte generators, the order of 6 rows) and the optimizer's kind, length and
         * five f32 settings; the CRC then differs too. */
        uint64_t mlen = 0;
        for (int i = 0; i < 8; i++)
            mlen |= (uint64_t)file[16 + i] << (8 * i);
        const size_t settings = 24 + (size_t)mlen + 5 * 8 + 2 * 4 + 8 + 4 + 3 * 32 + 6 * 8 + 4 + 8;
        const size_t bound = settings + 5 * 4;
        /* The optimizer's five f32 settings are compared by value with the trainer's, so a
         * -0 where the trainer has 0 (Adam's momentum) loads, and saves as the trainer's. */
        for (size_t k = 0; k < 5; k++) {
            float a, b;
            memcpy(&a, file + settings + 4 * k, 4), memcpy(&b, saved + settings + 4 * k, 4);
            if (a != b)
                fuzz_fail("optimizer setting %zu loaded as %g, saved as %g", k, a, b);
        }
        for (size_t i = 0; i < n - 4; i++)
            if (saved[i] != file[i] && !(i >= settings && i < bound + 8))
                fuzz_fail("a checkpoint loads but saves other bytes from offset %zu", i);
        double was_b, now_b;
        memcpy(&was_b, file + bound, 8), memcpy(&now_b, saved + bound, 8);
        /* raised, or the same value (a -0 loads and saves as 0) */
        if (memcmp(saved + bound, file + bound, 8) != 0 && !(now_b >= was_b))
            fuzz_fail("the moment bound went from %g to %g", was_b, now_b);
        free(saved);
        if (vib_trainer_load(second[e].t, after) != VIB_OK)
            fuzz_fail("a saved checkpoint does not load: %s", vib_last_error());
        if (vib_trainer_save(second[e].t, again) != VIB_OK || !same_bytes(after, again))
            fuzz_fail("a reloaded checkpoint saves other bytes");
        /* and the loaded trainer trains */
        static const float x[18] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f, 0.9f,
                                    1.0f, 1.1f, 1.2f, 1.3f, 1.4f, 1.5f, 1.6f, 1.7f, 1.8f};
        static const int32_t y[6] = {0, 1, 0, 1, 0, 1};
        const int s = vib_trainer_step(target[e].t, x, y, NULL, NULL, NULL);
        if (s != VIB_OK && s != VIB_ERR_NUMERIC)
            fuzz_fail("a loaded trainer does not step: %d %s", s, vib_last_error());
    }
    free(file);
    unlink(path), unlink(before), unlink(after), unlink(again);
    return 0;
}
