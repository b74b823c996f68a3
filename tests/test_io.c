/* test_io.c - saving and loading models: a round trip predicts exactly as before; a
 * truncated, corrupted, padded or foreign file is refused with a status, a large one from
 * its header without being read whole; a FIFO or a device is refused at once; a failed
 * save leaves the previous file and no temporary behind. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "tests.h"

static char dir[64];
static char path[128];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/vib_io_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/model.vibm", dir);
}

static void teardown(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[512];
    while (d && (e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    if (d)
        closedir(d);
    rmdir(dir);
}

static vib_model *small_model(void)
{
    const size_t enc[] = {7}, dec[] = {5};
    vib_model *m = NULL;
    ck_assert_ok(vib_model_create(6, 1, enc, 3, 1, dec, 4, 11, &m));
    ck_assert_ok(vib_model_set_beta(m, 0.25f));
    ck_assert_ok(vib_model_set_sigma_offset(m, -2.0f));
    /* move the weights off their initial values so the test is not about the seed */
    float *p = vib_model_params(m);
    for (size_t i = 0; i < vib_model_num_params(m); i++)
        p[i] += 0.01f * (float)(i % 13);
    return m;
}

static unsigned char *slurp(const char *p, size_t *len)
{
    FILE *f = fopen(p, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    rewind(f);
    unsigned char *b = malloc(*len);
    ck_assert_uint_eq(fread(b, 1, *len, f), *len);
    fclose(f);
    return b;
}

static void spit(const char *p, const unsigned char *b, size_t len)
{
    FILE *f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(b, 1, len, f), len);
    fclose(f);
}

/* Load must fail with `status` and a message containing `word`. */
static void expect_refused(const char *p, int status, const char *word)
{
    vib_model *m = (vib_model *)0x1;
    ck_assert_fails(vib_model_load(p, &m), status);
    ck_assert_ptr_eq(m, (vib_model *)0x1);
    ck_assert_msg(strstr(vib_last_error(), word) != NULL, "'%s' does not mention '%s'",
                  vib_last_error(), word);
}

START_TEST(round_trip_predicts_identically)
{
    vib_model *a = small_model(), *b = NULL;
    ck_assert_ok(vib_model_save(a, path));
    ck_assert_ok(vib_model_load(path, &b));
    ck_assert_uint_eq(vib_model_num_params(a), vib_model_num_params(b));
    ck_assert_mem_eq(vib_model_params(a), vib_model_params(b),
                     vib_model_num_params(a) * sizeof(float));
    ck_assert(vib_model_beta(b) == 0.25f && vib_model_sigma_offset(b) == -2.0f);
    ck_assert_int_eq(vib_model_deterministic(b), 0);
    char da[128], db[128];
    ck_assert_int_eq(vib_model_describe(a, da, sizeof da), (int)strlen(da));
    ck_assert_int_eq(vib_model_describe(b, db, sizeof db), (int)strlen(db));
    ck_assert_str_eq(da, db);
    float x[3 * 6], pa[3 * 4], pb[3 * 4];
    fill_normal(5, 3 * 6, 0.0f, 1.0f, x);
    ck_assert_ok(vib_model_predict(a, 3, x, 0, pa));
    ck_assert_ok(vib_model_predict(b, 3, x, 0, pb));
    ck_assert_mem_eq(pa, pb, sizeof pa);
    ck_assert_ok(vib_model_reseed(a, 3));
    ck_assert_ok(vib_model_reseed(b, 3));
    ck_assert_ok(vib_model_predict(a, 3, x, 12, pa));
    ck_assert_ok(vib_model_predict(b, 3, x, 12, pb));
    ck_assert_mem_eq(pa, pb, sizeof pa);
    /* deterministic mode survives the trip; saving over an existing file replaces it */
    ck_assert_ok(vib_model_set_deterministic(a, 1));
    ck_assert_ok(vib_model_save(a, path));
    vib_model_free(b);
    ck_assert_ok(vib_model_load(path, &b));
    ck_assert_int_eq(vib_model_deterministic(b), 1);
    vib_model_free(a);
    vib_model_free(b);
    /* a full-covariance model keeps its head */
    const size_t enc[] = {7};
    ck_assert_ok(vib_model_create_ex(6, 1, enc, 2, 0, NULL, 4, VIB_MODEL_FULL_COV, 5, &a));
    ck_assert_ok(vib_model_save(a, path));
    ck_assert_ok(vib_model_load(path, &b));
    ck_assert_uint_eq(vib_model_flags(b), VIB_MODEL_FULL_COV);
    ck_assert_ok(vib_model_predict(a, 3, x, 0, pa));
    ck_assert_ok(vib_model_predict(b, 3, x, 0, pb));
    ck_assert_mem_eq(pa, pb, sizeof pa);
    vib_model_free(a);
    vib_model_free(b);
}
END_TEST

START_TEST(damaged_files_are_refused)
{
    vib_model *a = small_model();
    ck_assert_ok(vib_model_save(a, path));
    vib_model_free(a);
    size_t len;
    unsigned char *good = slurp(path, &len), *b = malloc(len + 8);
    char bad[160];
    snprintf(bad, sizeof bad, "%s/bad.vibm", dir);

    /* every truncation, from empty to one byte short */
    for (size_t cut = 0; cut < len; cut += (cut < 80 ? 1 : 97)) {
        spit(bad, good, cut);
        vib_model *m = (vib_model *)0x1;
        ck_assert_fails(vib_model_load(bad, &m), VIB_ERR_FORMAT);
        ck_assert_ptr_eq(m, (vib_model *)0x1);
        ck_assert_ptr_nonnull(strstr(vib_last_error(), bad));
    }
    spit(bad, good, len - 1);
    expect_refused(bad, VIB_ERR_FORMAT, "truncated");
    /* trailing bytes */
    memcpy(b, good, len);
    memset(b + len, 0, 8);
    spit(bad, b, len + 8);
    expect_refused(bad, VIB_ERR_FORMAT, "padded");
    /* wrong magic, wrong version, unknown flags */
    memcpy(b, good, len);
    b[0] = 'X';
    spit(bad, b, len);
    expect_refused(bad, VIB_ERR_FORMAT, "magic");
    memcpy(b, good, len);
    b[8] = 3;
    spit(bad, b, len);
    expect_refused(bad, VIB_ERR_FORMAT, "version");
    memcpy(b, good, len);
    b[12] = 0x80;
    spit(bad, b, len);
    expect_refused(bad, VIB_ERR_FORMAT, "flags");
    /* a flipped bit anywhere in the body breaks the CRC */
    for (size_t i = 56; i < len - 4; i += 41) {
        memcpy(b, good, len);
        b[i] ^= 0x10;
        spit(bad, b, len);
        expect_refused(bad, VIB_ERR_FORMAT, "CRC");
    }
    /* a flipped bit in the CRC itself */
    memcpy(b, good, len);
    b[len - 1] ^= 1;
    spit(bad, b, len);
    expect_refused(bad, VIB_ERR_FORMAT, "CRC");
    /* a header that claims an absurd number of layers */
    memcpy(b, good, len);
    b[40] = 200;
    spit(bad, b, len);
    expect_refused(bad, VIB_ERR_FORMAT, "corrupted");
    /* missing file, a directory */
    expect_refused("/nonexistent/dir/model.vibm", VIB_ERR_IO, "/nonexistent/dir/model.vibm");
    vib_model *m = (vib_model *)0x1;
    ck_assert(vib_model_load(dir, &m) != VIB_OK);
    ck_assert_ptr_eq(m, (vib_model *)0x1);
    free(good);
    free(b);
}
END_TEST

/* Re-seal an edited image with a fresh CRC, so the checks behind the CRC are reached. */
static void reseal(unsigned char *b, size_t len)
{
    uint32_t crc = (uint32_t)crc32(0L, b, (uInt)(len - 4));
    for (int i = 0; i < 4; i++)
        b[len - 4 + i] = (unsigned char)(crc >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

START_TEST(forged_files_behind_a_valid_crc)
{
    /* small_model: input 6, encoder [7], K 3, decoder [5], 4 classes: the header is 56
     * bytes, then 2 hidden sizes, beta, offset, seed, P at 88, parameters from 96 */
    vib_model *a = small_model();
    const size_t P = vib_model_num_params(a);
    ck_assert_ok(vib_model_save(a, path));
    vib_model_free(a);
    size_t len;
    unsigned char *good = slurp(path, &len), *b = malloc(len);
    ck_assert_uint_eq(len, 96 + 4 * P + 4);
    char bad[160];
    snprintf(bad, sizeof bad, "%s/forged.vibm", dir);

    /* one parameter fewer, sizes consistent: the architecture disagrees */
    memcpy(b, good, len);
    put64(b + 88, P - 1);
    memmove(b + 96 + 4 * (P - 1), b + 96 + 4 * P, 4);
    reseal(b, len - 4);
    spit(bad, b, len - 4);
    expect_refused(bad, VIB_ERR_FORMAT, "the architecture has");
    /* an absurd architecture (input 2^24, a hidden layer of 2^24) with P = 0: refused from
     * the header alone, before anything is allocated for it */
    unsigned char tiny[100];
    memcpy(tiny, good, 56);
    put64(tiny + 16, (uint64_t)1 << 24);
    put64(tiny + 40, 1);
    put64(tiny + 48, 0);
    put64(tiny + 56, (uint64_t)1 << 24);
    memcpy(tiny + 64, good + 72, 16); /* beta, offset, seed */
    put64(tiny + 80, 0);
    reseal(tiny, 92);
    spit(bad, tiny, 92);
    expect_refused(bad, VIB_ERR_FORMAT, "the architecture has");
    /* a full covariance of K = 5000, past its limit, with P = 0: the reason, whole (it
     * was once formatted from the error buffer into itself and came out garbled) */
    memcpy(tiny, good, 56);
    tiny[12] = 2; /* flags: full covariance */
    put64(tiny + 24, 5000);
    put64(tiny + 40, 0);
    put64(tiny + 48, 0);
    memcpy(tiny + 56, good + 72, 16); /* beta, offset, seed */
    put64(tiny + 72, 0);
    reseal(tiny, 84);
    spit(bad, tiny, 84);
    expect_refused(bad, VIB_ERR_FORMAT, "a full covariance needs latent_dim <= 4096, got 5000");
    ck_assert_msg(strncmp(vib_last_error(), "vib_model_load: ", 16) == 0 &&
                      strstr(vib_last_error(), bad) != NULL,
                  "%s", vib_last_error());
    /* a hidden size of 0, a NaN parameter, a negative beta */
    memcpy(b, good, len);
    put64(b + 56, 0);
    reseal(b, len);
    spit(bad, b, len);
    expect_refused(bad, VIB_ERR_FORMAT, "enc_hidden[0] = 0 is outside [1, 2^24]");
    memcpy(b, good, len);
    memcpy(b + 96 + 4 * 3, (const unsigned char[4]){0, 0, 0xc0, 0x7f}, 4);
    reseal(b, len);
    spit(bad, b, len);
    expect_refused(bad, VIB_ERR_FORMAT, "not finite");
    memcpy(b, good, len);
    b[75] = 0xbf; /* beta = -|beta| */
    reseal(b, len);
    spit(bad, b, len);
    expect_refused(bad, VIB_ERR_FORMAT, "beta");
    /* not a regular file */
    expect_refused("/dev/zero", VIB_ERR_IO, "not a regular file");
    /* a model with a non-finite parameter is not written */
    a = small_model();
    vib_model_params(a)[2] = NAN;
    ck_assert_fails(vib_model_save(a, bad), VIB_ERR_NUMERIC);
    vib_model_free(a);
    free(good);
    free(b);
}
END_TEST

static int load_model_at(const void *p)
{
    vib_model *m = NULL;
    int rc = vib_model_load(p, &m);
    vib_model_free(m);
    return rc;
}

/* vib_model_load(p) must return at once (a child process is ended after 2 s) with
 * VIB_ERR_IO and the detail "vib_model_load: <p>: not a regular file (<kind>)". */
static void expect_not_regular(const char *p, const char *kind)
{
    int status;
    char detail[600], want[600];
    ck_assert_msg(call_in_child(load_model_at, p, 2, &status, detail, sizeof detail),
                  "vib_model_load on %s blocked (the child was ended by signal %d)", p, status);
    ck_assert_msg(status == VIB_ERR_IO, "%s: got %d, '%s'", p, status, detail);
    snprintf(want, sizeof want, "vib_model_load: %s: not a regular file (%s)", p, kind);
    ck_assert_msg(strcmp(detail, want) == 0, "detail '%s', expected '%s'", detail, want);
}

START_TEST(fifos_and_devices_are_refused_at_once)
{
    /* Opening a FIFO without a writer for reading would wait forever. */
    char fifo[160];
    snprintf(fifo, sizeof fifo, "%s/fifo.vibm", dir);
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    expect_not_regular(fifo, "a FIFO");
    expect_not_regular("/dev/zero", "a character device");
    expect_not_regular(dir, "a directory");
}
END_TEST

/* Load p, which must fail with VIB_ERR_FORMAT, a detail "vib_model_load: <p>: ..."
 * holding `word`, and no allocation of 64 KiB or more. */
static void expect_refused_small(const char *p, const char *word)
{
    vib_model *m = NULL;
    alloc_watch_reset();
    const int rc = vib_model_load(p, &m);
    const size_t largest = alloc_watch_largest();
    ck_assert_msg(rc == VIB_ERR_FORMAT, "%s: got %d, '%s'", p, rc, vib_last_error());
    ck_assert_ptr_null(m);
    char want[300];
    snprintf(want, sizeof want, "vib_model_load: %s: ", p);
    ck_assert_msg(strncmp(vib_last_error(), want, strlen(want)) == 0,
                  "'%s' does not start with '%s'", vib_last_error(), want);
    ck_assert_msg(strstr(vib_last_error(), word) != NULL, "'%s' does not mention '%s'",
                  vib_last_error(), word);
    ck_assert_msg(largest < 65536, "%s: a %zu-byte allocation", p, largest);
}

START_TEST(large_files_are_refused_from_their_header)
{
    /* 256 MiB files, sparse: a foreign one is refused from its first 8 bytes, a model
     * file with 256 MiB of padding from its header, neither read nor allocated whole. */
    const off_t big = (off_t)256 << 20;
    char junk[160];
    snprintf(junk, sizeof junk, "%s/junk.bin", dir);
    spit(junk, (const unsigned char *)"NOTAMODEL, just junk", 20);
    ck_assert_int_eq(truncate(junk, big), 0);
    expect_refused_small(junk, "not a libvib model (bad magic)");

    vib_model *a = small_model();
    ck_assert_ok(vib_model_save(a, path));
    vib_model_free(a);
    ck_assert_int_eq(truncate(path, big), 0);
    expect_refused_small(path, "truncated or padded");
    /* and a header that promises more than the file holds */
    size_t len;
    unsigned char *good = slurp(path, &len);
    spit(path, good, 200);
    expect_refused_small(path, "truncated or padded");
    free(good);
}
END_TEST

START_TEST(failed_save_keeps_the_old_file)
{
    vib_model *a = small_model();
    ck_assert_ok(vib_model_save(a, path));
    size_t len0, len1;
    unsigned char *before = slurp(path, &len0);
    /* a target that cannot be renamed over (a non-empty directory) */
    char sub[160], inner[200];
    snprintf(sub, sizeof sub, "%s/sub", dir);
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    snprintf(inner, sizeof inner, "%s/keep", sub);
    spit(inner, (const unsigned char *)"x", 1);
    ck_assert_fails(vib_model_save(a, sub), VIB_ERR_IO);
    unlink(inner);
    rmdir(sub);
    ck_assert_fails(vib_model_save(a, "/nonexistent/dir/model.vibm"), VIB_ERR_IO);
    /* nothing but the original file is left in the directory, and it is unchanged */
    DIR *d = opendir(dir);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d)) != NULL)
        files += e->d_name[0] != '.';
    closedir(d);
    ck_assert_int_eq(files, 1);
    unsigned char *after = slurp(path, &len1);
    ck_assert_uint_eq(len0, len1);
    ck_assert_mem_eq(before, after, len0);
    ck_assert_fails(vib_model_save(NULL, path), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_model_save(a, NULL), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_model_load(NULL, &a), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_model_load(path, NULL), VIB_ERR_INVALID_ARG);
    free(before);
    free(after);
    vib_model_free(a);
}
END_TEST

Suite *make_io_suite(void)
{
    Suite *s = suite_create("io");
    TCase *tc = tcase_create("io");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, round_trip_predicts_identically);
    tcase_add_test(tc, damaged_files_are_refused);
    tcase_add_test(tc, forged_files_behind_a_valid_crc);
    tcase_add_test(tc, failed_save_keeps_the_old_file);
    tcase_add_test(tc, fifos_and_devices_are_refused_at_once);
    tcase_add_test(tc, large_files_are_refused_from_their_header);
    suite_add_tcase(s, tc);
    return s;
}
