/* fuzz_model.c - libFuzzer target: vib_model_load on model files, and on checkpoints,
 * whose model part it reads.
 *
 * The input's first byte picks the mode:
 *   even  the rest is the file, as it is (most mutations then fail the CRC-32 check);
 *   odd   the rest is the file re-sealed: its last four bytes replaced by the CRC-32 of
 *         the others (and, in a checkpoint, the embedded model file's own CRC first;
 *         fuzz_reseal), so that mutations reach the checks of the fields behind it:
 *         the architecture, the counts, the values.
 * Oracle: a load that succeeds gives a model that saves to a file which loads to a
 * model that saves to the very same bytes (load(save(load(f))) == load(f), compared
 * through their files), with the architecture's getters agreeing; a load that fails is
 * VIB_ERR_FORMAT (VIB_ERR_NOMEM for a model too large to allocate), names the file and
 * leaves the output pointer untouched. */
#include "fuzz_util.h"

static void same_arch(vib_model *a, vib_model *b)
{
    if (vib_model_input_dim(a) != vib_model_input_dim(b) ||
        vib_model_latent_dim(a) != vib_model_latent_dim(b) ||
        vib_model_classes(a) != vib_model_classes(b) ||
        vib_model_num_params(a) != vib_model_num_params(b))
        fuzz_fail("a saved model loaded to another architecture");
    if (memcmp(vib_model_params(a), vib_model_params(b),
               vib_model_num_params(a) * sizeof(float)) != 0)
        fuzz_fail("a saved model loaded to other weights");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *path = fuzz_path("model"), *again = fuzz_path("model2"),
               *third = fuzz_path("model3");
    size_t n;
    free(fuzz_file(data, size, path, &n));

    vib_model *const was = (vib_model *)(uintptr_t)0x30d1;
    vib_model *m = was;
    const int rc = vib_model_load(path, &m);
    if (rc != VIB_OK) {
        fuzz_failed_load("vib_model_load", rc,
                         FUZZ_ALLOW(VIB_ERR_FORMAT) | FUZZ_ALLOW(VIB_ERR_NOMEM), m, was, path);
        unlink(path);
        return 0;
    }
    /* save, load, save: the two saves are the same bytes, the two models alike */
    if (vib_model_save(m, again) != VIB_OK)
        fuzz_fail("a loaded model does not save: %s", vib_last_error());
    vib_model *m2 = NULL;
    if (vib_model_load(again, &m2) != VIB_OK)
        fuzz_fail("a saved model does not load: %s", vib_last_error());
    same_arch(m, m2);
    if (vib_model_save(m2, third) != VIB_OK)
        fuzz_fail("a reloaded model does not save: %s", vib_last_error());
    size_t n2, n3;
    unsigned char *b2 = fuzz_read(again, &n2), *b3 = fuzz_read(third, &n3);
    if (n2 != n3 || memcmp(b2, b3, n2) != 0)
        fuzz_fail("load(save(load(f))) saves other bytes than load(f) (%zu, %zu bytes)", n2, n3);
    /* a model file (not a checkpoint) is the very file the model saves */
    unsigned char *given = fuzz_read(path, &n);
    if (n >= 8 && memcmp(given, "VIBMODEL", 8) == 0 && (n != n2 || memcmp(given, b2, n) != 0)) {
        /* a file that loads may still differ from what its model saves only in bytes the
         * loader ignores: there are none in version 1 */
        fuzz_fail("a model file loads but its model saves other bytes (%zu, %zu)", n, n2);
    }
    free(given), free(b2), free(b3);
    vib_model_free(m2);
    vib_model_free(m);
    unlink(path), unlink(again), unlink(third);
    return 0;
}
