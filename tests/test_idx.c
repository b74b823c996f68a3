/* test_idx.c - the data reader: IDX files plain and gzip'd (of several members too), a
 * table of malformed inputs each named in its error, forged size claims and the
 * allocations they cause, bytes after a gzip stream, paths that are not regular files,
 * datasets (scaling, shapes, classes, subsets), the MNIST directory layout, bad
 * arguments, and Debian's Fashion-MNIST end to end. Every test writes its files into a
 * fresh directory under /tmp. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "tests.h"

#define FASHION_DIR "/usr/share/datasets/fashion-mnist"

static char tmpdir[64];

static void make_tmpdir(void)
{
    strcpy(tmpdir, "/tmp/vib_idx_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

/* The directory holds only plain files the tests wrote, and one level of
 * subdirectories: remove both. */
static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            remove_tree(p);
        else
            unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static void drop_tmpdir(void)
{
    remove_tree(tmpdir);
}

/* "<tmpdir>/<name>" in one of a few rotating buffers, so a call can use several. */
static const char *tmp_path(const char *name)
{
    static char bufs[4][512];
    static int next;
    char *p = bufs[next++ % 4];
    snprintf(p, sizeof bufs[0], "%s/%s", tmpdir, name);
    return p;
}

static void append_plain(const char *path, const void *bytes, size_t len)
{
    FILE *f = fopen(path, "ab");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(bytes, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

static void assert_error_mentions(const char *a, const char *b)
{
    const char *e = vib_last_error();
    ck_assert_msg(strstr(e, a) != NULL, "error '%s' does not mention '%s'", e, a);
    if (b != NULL)
        ck_assert_msg(strstr(e, b) != NULL, "error '%s' does not mention '%s'", e, b);
}

/* The detail starts "<fn>: <path>: ", as every message about one file does. */
static void assert_error_starts(const char *fn, const char *path)
{
    char want[600];
    snprintf(want, sizeof want, "%s: %s: ", fn, path);
    const char *e = vib_last_error();
    ck_assert_msg(strncmp(e, want, strlen(want)) == 0, "error '%s' does not start with '%s'",
                  e, want);
}

/* A 3 x 2 x 2 image file with bytes 0..11 and its 3 labels, written plain or gzip'd. */
static const uint32_t IMG_DIMS[3] = {3, 2, 2};
static const unsigned char IMG_DATA[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 255};
static const uint32_t LAB_DIMS[1] = {3};
static const unsigned char LAB_DATA[3] = {2, 0, 1};

static void check_small_pair(const char *images, const char *labels)
{
    vib_idx *img = NULL, *lab = NULL;
    ck_assert_ok(vib_idx_load(images, &img));
    ck_assert_ok(vib_idx_load(labels, &lab));
    ck_assert_uint_eq(vib_idx_ndim(img), 3);
    ck_assert_uint_eq(vib_idx_dim(img, 0), 3);
    ck_assert_uint_eq(vib_idx_dim(img, 1), 2);
    ck_assert_uint_eq(vib_idx_dim(img, 2), 2);
    ck_assert_uint_eq(vib_idx_dim(img, 3), 0); /* out of range */
    ck_assert_uint_eq(vib_idx_dim(img, SIZE_MAX), 0);
    ck_assert_uint_eq(vib_idx_count(img), 12);
    ck_assert_mem_eq(vib_idx_data(img), IMG_DATA, 12);
    ck_assert_uint_eq(vib_idx_ndim(lab), 1);
    ck_assert_uint_eq(vib_idx_dim(lab, 0), 3);
    ck_assert_uint_eq(vib_idx_count(lab), 3);
    ck_assert_mem_eq(vib_idx_data(lab), LAB_DATA, 3);
    vib_idx_free(img);
    vib_idx_free(lab);
}

START_TEST(valid_files_load)
{
    write_idx(tmp_path("img"), 0, 3, IMG_DIMS, IMG_DATA);
    write_idx(tmp_path("lab"), 0, 1, LAB_DIMS, LAB_DATA);
    check_small_pair(tmp_path("img"), tmp_path("lab"));
}
END_TEST

START_TEST(gzip_files_load_identically)
{
    write_idx(tmp_path("img.gz"), 1, 3, IMG_DIMS, IMG_DATA);
    write_idx(tmp_path("lab.gz"), 1, 1, LAB_DIMS, LAB_DATA);
    check_small_pair(tmp_path("img.gz"), tmp_path("lab.gz"));
    /* Recognised by content, not by name: gzip under a plain name, plain under .gz. */
    write_idx(tmp_path("img-gzip-content"), 1, 3, IMG_DIMS, IMG_DATA);
    write_idx(tmp_path("lab-plain.gz"), 0, 1, LAB_DIMS, LAB_DATA);
    check_small_pair(tmp_path("img-gzip-content"), tmp_path("lab-plain.gz"));
}
END_TEST

START_TEST(larger_gzip_file_loads)
{
    /* Larger than zlib's buffers, so the body arrives over many reads. */
    enum { N = 70, R = 28, C = 28 };
    const uint32_t dims[3] = {N, R, C};
    unsigned char *data = malloc(N * R * C);
    ck_assert_ptr_nonnull(data);
    for (size_t i = 0; i < N * R * C; i++)
        data[i] = (unsigned char)((i * 2654435761u) >> 13);
    write_idx(tmp_path("big.gz"), 1, 3, dims, data);
    vib_idx *idx = NULL;
    ck_assert_ok(vib_idx_load(tmp_path("big.gz"), &idx));
    ck_assert_uint_eq(vib_idx_count(idx), N * R * C);
    ck_assert_mem_eq(vib_idx_data(idx), data, N * R * C);
    vib_idx_free(idx);
    free(data);
}
END_TEST

/* ---- malformed files ----------------------------------------------------------- */

typedef struct {
    const char *what;
    unsigned char bytes[24];
    size_t len;
    const char *keyword; /* the message must contain it (and the path) */
} bad_header;

static const bad_header BAD[] = {
    {"bad magic", {0x01, 0x00, 0x08, 0x01, 0, 0, 0, 1, 7}, 9, "bad magic"},
    {"bad magic, second byte", {0x00, 0x01, 0x08, 0x01, 0, 0, 0, 1, 7}, 9, "bad magic"},
    {"float type", {0, 0, 0x0D, 1, 0, 0, 0, 1, 0, 0, 0, 0}, 12, "unsupported type 0x0D"},
    {"double type", {0, 0, 0x0E, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}, 16,
     "unsupported type 0x0E"},
    {"signed byte type", {0, 0, 0x09, 1, 0, 0, 0, 1, 0}, 9, "unsupported type 0x09"},
    {"unknown type", {0, 0, 0x42, 1, 0, 0, 0, 1, 0}, 9, "unknown type 0x42"},
    {"ndim 0", {0, 0, 0x08, 0}, 4, "ndim 0"},
    {"a zero dimension", {0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 0}, 12, "size 0"},
    {"product overflows size_t",
     {0, 0, 0x08, 3, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF},
     16,
     "overflows"},
    {"empty file", {0}, 0, "truncated header"},
    {"truncated magic", {0, 0, 0x08}, 3, "truncated header"},
    {"truncated dimensions", {0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0}, 10, "truncated header"},
    {"truncated body", {0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4}, 16,
     "truncated: expected 6 data bytes, got 4"},
    {"trailing bytes", {0, 0, 0x08, 1, 0, 0, 0, 3, 1, 2, 3, 4}, 12, "trailing bytes"},
};

START_TEST(malformed_headers_are_format_errors)
{
    /* Each case plain and gzip'd: the plain reader checks lengths from the file size,
     * the gzip reader from the stream; both must say the same thing. */
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        for (int gz = 0; gz < 2; gz++) {
            char name[64];
            snprintf(name, sizeof name, "bad%zu%s", i, gz ? ".gz" : "");
            const char *path = tmp_path(name);
            if (gz)
                write_gz(path, BAD[i].bytes, BAD[i].len);
            else
                write_plain(path, BAD[i].bytes, BAD[i].len);
            vib_idx *sentinel = (vib_idx *)&name, *idx = sentinel;
            int rc = vib_idx_load(path, &idx);
            ck_assert_msg(rc == VIB_ERR_FORMAT, "%s (%s): got %d, '%s'", BAD[i].what,
                          gz ? "gzip" : "plain", rc, vib_last_error());
            ck_assert_ptr_eq(idx, sentinel);
            assert_error_starts("vib_idx_load", path);
            assert_error_mentions(BAD[i].keyword, NULL);
        }
    }
}
END_TEST

/* A valid gzip'd IDX file of a few KiB, as bytes. */
static unsigned char *valid_gz_bytes(size_t *len)
{
    const uint32_t dims[2] = {8, 1024};
    unsigned char *data = malloc(8 * 1024);
    ck_assert_ptr_nonnull(data);
    for (size_t i = 0; i < 8 * 1024; i++)
        data[i] = (unsigned char)((i * 7) ^ (i >> 3));
    write_idx(tmp_path("src.gz"), 1, 2, dims, data);
    free(data);
    unsigned char *b = read_all(tmp_path("src.gz"), len);
    ck_assert_uint_gt(*len, 64);
    return b;
}

START_TEST(corrupt_gzip_stream_is_format_error)
{
    size_t len;
    unsigned char *b = valid_gz_bytes(&len);
    /* Flip bytes in the middle of the deflate data: the stream either stops decoding
     * or decodes to bytes whose CRC-32 does not match its trailer. */
    for (size_t k = len / 2 - 2; k < len / 2 + 2; k++)
        b[k] ^= 0xA5;
    const char *path = tmp_path("corrupt.gz");
    write_plain(path, b, len);
    vib_idx *sentinel = (vib_idx *)&len, *idx = sentinel;
    ck_assert_fails(vib_idx_load(path, &idx), VIB_ERR_FORMAT);
    ck_assert_ptr_eq(idx, sentinel);
    assert_error_mentions(path, "corrupt gzip");
    /* A flipped bit in the CRC trailer alone: the data decodes, the check fails. */
    size_t len2;
    unsigned char *c = valid_gz_bytes(&len2);
    c[len2 - 6] ^= 0x01;
    write_plain(path, c, len2);
    ck_assert_fails(vib_idx_load(path, &idx), VIB_ERR_FORMAT);
    assert_error_mentions(path, "corrupt gzip");
    free(c);
    free(b);
}
END_TEST

START_TEST(cut_gzip_stream_is_format_error)
{
    size_t len;
    unsigned char *b = valid_gz_bytes(&len);
    const char *path = tmp_path("cut.gz");
    /* Cut inside the data, and cut only the 8-byte trailer (all data present). */
    const size_t cuts[2] = {len / 2, len - 8};
    for (int i = 0; i < 2; i++) {
        write_plain(path, b, cuts[i]);
        vib_idx *idx = NULL;
        ck_assert_fails(vib_idx_load(path, &idx), VIB_ERR_FORMAT);
        ck_assert_ptr_null(idx);
        assert_error_mentions(path, "gzip stream ends early");
    }
    free(b);
}
END_TEST

START_TEST(huge_claims_are_refused_before_allocating)
{
    /* 2^36 bytes claimed: a plain file is checked against its length first, a gzip
     * file against what its compressed length can hold (1032 bytes a byte). */
    const unsigned char head[16] = {0, 0, 0x08, 3, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 16};
    const char *plain = tmp_path("huge"), *gz = tmp_path("huge.gz");
    write_plain(plain, head, sizeof head);
    write_gz(gz, head, sizeof head);
    vib_idx *idx = NULL;
    ck_assert_fails(vib_idx_load(plain, &idx), VIB_ERR_FORMAT);
    assert_error_mentions(plain, "truncated: expected 68719476736 data bytes, got 0");
    ck_assert_fails(vib_idx_load(gz, &idx), VIB_ERR_FORMAT);
    assert_error_mentions(gz, "68719476736 data bytes, more than");
    /* A gzip file long enough to hold its claim of 2^31 + 1 bytes (2.1 MB stored
     * uncompressed) reaches libvib's 2 GiB limit instead. */
    enum { STORED = 2100000 };
    unsigned char *big = calloc(STORED, 1);
    ck_assert_ptr_nonnull(big);
    const unsigned char claim[8] = {0, 0, 0x08, 1, 0x80, 0, 0, 1};
    memcpy(big, claim, sizeof claim);
    write_gz_mode(gz, big, STORED, "wb0");
    free(big);
    ck_assert_fails(vib_idx_load(gz, &idx), VIB_ERR_NOMEM);
    assert_error_mentions(gz, "too large");
    ck_assert_ptr_null(idx);
}
END_TEST

START_TEST(forged_gzip_claims_allocate_little)
{
    /* A 28-byte gzip file whose header claims 2^31 bytes: refused from the header and
     * the file's length, before anything is allocated for the body. */
    const unsigned char claim[8] = {0, 0, 0x08, 1, 0x80, 0, 0, 0};
    const char *gz = tmp_path("forged.gz");
    write_gz(gz, claim, sizeof claim);
    vib_idx *idx = NULL;
    alloc_watch_reset();
    int rc = vib_idx_load(gz, &idx);
    size_t largest = alloc_watch_largest();
    ck_assert_msg(largest < ((size_t)1 << 20), "a %zu-byte allocation", largest);
    ck_assert_msg(rc == VIB_ERR_FORMAT, "got %d: %s", rc, vib_last_error());
    assert_error_starts("vib_idx_load", gz);
    assert_error_mentions("2147483648 data bytes, more than a gzip file of", "can hold");
    ck_assert_ptr_null(idx);

    /* A claim the file's length could hold, 10^8 bytes, over 3 MB of stored data: the
     * body grows with the data that arrives, so the allocation stays within twice it. */
    enum { STORED = 3000000 };
    unsigned char *body = calloc(STORED, 1);
    ck_assert_ptr_nonnull(body);
    const unsigned char claim8[8] = {0, 0, 0x08, 1, 0x05, 0xF5, 0xE1, 0x00}; /* 10^8 */
    memcpy(body, claim8, sizeof claim8);
    write_gz_mode(gz, body, STORED, "wb0");
    free(body);
    alloc_watch_reset();
    rc = vib_idx_load(gz, &idx);
    largest = alloc_watch_largest();
    ck_assert_msg(largest <= 2 * (size_t)STORED, "a %zu-byte allocation for %d bytes of data",
                  largest, STORED);
    ck_assert_msg(rc == VIB_ERR_FORMAT, "got %d: %s", rc, vib_last_error());
    assert_error_mentions(gz, "truncated: expected 100000000 data bytes, got 2999992");
    ck_assert_ptr_null(idx);
}
END_TEST

/* ---- what follows a gzip stream ------------------------------------------------ */

START_TEST(gzip_members_concatenate)
{
    /* gzip allows a file of several members, read as their concatenation: the header in
     * one member, the body split over two more, and an empty member between. */
    size_t len;
    unsigned char *b = make_idx(3, IMG_DIMS, IMG_DATA, 12, &len);
    const char *img = tmp_path("img.gz");
    write_gz_mode(img, b, 7, "wb");
    write_gz_mode(img, b + 7, 5, "ab");
    write_gz_mode(img, NULL, 0, "ab");
    write_gz_mode(img, b + 12, len - 12, "ab9");
    free(b);
    write_idx(tmp_path("lab.gz"), 1, 1, LAB_DIMS, LAB_DATA);
    check_small_pair(img, tmp_path("lab.gz"));
    /* One byte too many, in a member of its own, is a trailing data byte. */
    write_gz_mode(img, "x", 1, "ab");
    vib_idx *idx = NULL;
    ck_assert_fails(vib_idx_load(img, &idx), VIB_ERR_FORMAT);
    assert_error_mentions(img, "trailing bytes after the 12 data bytes");
    ck_assert_ptr_null(idx);
}
END_TEST

START_TEST(bytes_after_the_gzip_stream_are_refused)
{
    /* What follows the last member must be nothing: zlib's gz* reader would skip it,
     * libvib refuses it as a plain file's trailing byte is refused. */
    static const struct {
        const char *what;
        unsigned char bytes[8];
        size_t len;
        const char *keyword;
    } tails[] = {
        {"junk", {'j', 'u', 'n', 'k'}, 4, "trailing bytes after the gzip stream (4 bytes from"},
        {"one zero byte", {0}, 1, "trailing bytes after the gzip stream (1 byte from"},
        {"half a gzip magic", {0x1F}, 1, "trailing bytes after the gzip stream (1 byte from"},
        {"a member cut after its magic", {0x1F, 0x8B, 0x08}, 3, "gzip stream ends early"},
        {"a member with a bad method", {0x1F, 0x8B, 0x07, 0, 0, 0, 0, 0}, 8, "corrupt gzip"},
    };
    size_t len;
    unsigned char *b = make_idx(1, LAB_DIMS, LAB_DATA, 3, &len);
    const char *path = tmp_path("tail.gz");
    for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++) {
        write_gz(path, b, len);
        append_plain(path, tails[i].bytes, tails[i].len);
        vib_idx *sentinel = (vib_idx *)&len, *idx = sentinel;
        int rc = vib_idx_load(path, &idx);
        ck_assert_msg(rc == VIB_ERR_FORMAT, "%s: got %d, '%s'", tails[i].what, rc,
                      vib_last_error());
        ck_assert_ptr_eq(idx, sentinel);
        assert_error_starts("vib_idx_load", path);
        assert_error_mentions(tails[i].keyword, NULL);
    }
    /* The same after a second, valid member. */
    write_gz(path, b, 5);
    write_gz_mode(path, b + 5, len - 5, "ab");
    append_plain(path, "junk", 4);
    vib_idx *idx = NULL;
    ck_assert_fails(vib_idx_load(path, &idx), VIB_ERR_FORMAT);
    assert_error_mentions(path, "trailing bytes after the gzip stream (4 bytes from");
    /* And in a dataset, named after the dataset call. */
    write_idx(tmp_path("img"), 0, 3, IMG_DIMS, IMG_DATA);
    vib_dataset *d = NULL;
    ck_assert_fails(vib_dataset_load(tmp_path("img"), path, 0.0f, 1.0f, &d), VIB_ERR_FORMAT);
    assert_error_starts("vib_dataset_load", path);
    assert_error_mentions("trailing bytes after the gzip stream", NULL);
    ck_assert_ptr_null(d);
    free(b);
}
END_TEST

/* ---- files that are not regular files ------------------------------------------ */

static int load_idx_at(const void *path)
{
    vib_idx *idx = NULL;
    int rc = vib_idx_load(path, &idx);
    vib_idx_free(idx);
    return rc;
}

/* vib_dataset_load of arg[0] (images) and arg[1] (labels). */
static int load_pair_at(const void *arg)
{
    const char *const *paths = arg;
    vib_dataset *d = NULL;
    int rc = vib_dataset_load(paths[0], paths[1], 0.0f, 1.0f, &d);
    vib_dataset_free(d);
    return rc;
}

/* call(arg) must return at once (a child process is ended after 2 s) with VIB_ERR_IO and
 * a detail "<fn>: <path>: not a regular file ...". */
static void expect_not_regular(int (*call)(const void *), const void *arg, const char *fn,
                               const char *path, const char *kind)
{
    int status;
    char detail[600];
    ck_assert_msg(call_in_child(call, arg, 2, &status, detail, sizeof detail),
                  "%s on %s blocked (the child was ended by signal %d)", fn, path, status);
    ck_assert_msg(status == VIB_ERR_IO, "%s on %s: got %d, '%s'", fn, path, status, detail);
    char want[600];
    snprintf(want, sizeof want, "%s: %s: not a regular file (%s)", fn, path, kind);
    ck_assert_msg(strcmp(detail, want) == 0, "detail '%s', expected '%s'", detail, want);
}

START_TEST(fifos_and_devices_are_refused_at_once)
{
    /* A FIFO without a writer would block an open for reading forever; a device has no
     * length to check a header against. Both are refused before anything is read. */
    const char *fifo = tmp_path("fifo");
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    expect_not_regular(load_idx_at, fifo, "vib_idx_load", fifo, "a FIFO");
    expect_not_regular(load_idx_at, "/dev/zero", "vib_idx_load", "/dev/zero",
                       "a character device");
    expect_not_regular(load_idx_at, tmpdir, "vib_idx_load", tmpdir, "a directory");
    /* In a dataset: the FIFO as the labels (read first), then as the images. */
    write_idx(tmp_path("lab"), 0, 1, LAB_DIMS, LAB_DATA);
    const char *labels_fifo[2] = {tmp_path("lab"), fifo}, *images_fifo[2] = {fifo, tmp_path("lab")};
    expect_not_regular(load_pair_at, labels_fifo, "vib_dataset_load", fifo, "a FIFO");
    expect_not_regular(load_pair_at, images_fifo, "vib_dataset_load", fifo, "a FIFO");
}
END_TEST

START_TEST(missing_file_is_io_error)
{
    const char *path = tmp_path("does-not-exist");
    vib_idx *sentinel = (vib_idx *)&path, *idx = sentinel;
    ck_assert_fails(vib_idx_load(path, &idx), VIB_ERR_IO);
    ck_assert_ptr_eq(idx, sentinel);
    assert_error_mentions(path, "No such file");
    /* A directory opens but is not a file. */
    ck_assert_fails(vib_idx_load(tmpdir, &idx), VIB_ERR_IO);
    assert_error_starts("vib_idx_load", tmpdir);
    assert_error_mentions("directory", NULL);
    ck_assert_ptr_eq(idx, sentinel);
}
END_TEST

/* ---- datasets ------------------------------------------------------------------ */

/* Two items of three pixels; labels 3 and 1. */
static const uint32_t DS_IMG_DIMS[2] = {2, 3};
static const unsigned char DS_IMG[6] = {0, 255, 51, 255, 0, 102};
static const uint32_t DS_LAB_DIMS[1] = {2};
static const unsigned char DS_LAB[2] = {3, 1};

static void write_ds_pair(int gz)
{
    write_idx(tmp_path("ds-img"), gz, 2, DS_IMG_DIMS, DS_IMG);
    write_idx(tmp_path("ds-lab"), gz, 1, DS_LAB_DIMS, DS_LAB);
}

START_TEST(dataset_scaling_is_exact_at_the_ends)
{
    write_ds_pair(0);
    const float ranges[2][2] = {{0.0f, 1.0f}, {-1.0f, 1.0f}};
    for (int r = 0; r < 2; r++) {
        const float lo = ranges[r][0], hi = ranges[r][1];
        vib_dataset *d = NULL;
        ck_assert_ok(vib_dataset_load(tmp_path("ds-img"), tmp_path("ds-lab"), lo, hi, &d));
        ck_assert_uint_eq(vib_dataset_size(d), 2);
        ck_assert_uint_eq(vib_dataset_dim(d), 3);
        ck_assert_uint_eq(vib_dataset_classes(d), 4); /* largest label 3, plus one */
        const float *x = vib_dataset_images(d);
        const int32_t *y = vib_dataset_labels(d);
        ck_assert_ptr_nonnull(x);
        ck_assert_ptr_nonnull(y);
        for (int i = 0; i < 6; i++) {
            if (DS_IMG[i] == 0)
                ck_assert_msg(x[i] == lo, "pixel 0 -> %.9g, expected %g", (double)x[i],
                              (double)lo);
            else if (DS_IMG[i] == 255)
                ck_assert_msg(x[i] == hi, "pixel 255 -> %.9g, expected %g", (double)x[i],
                              (double)hi);
            const double want = lo + (hi - lo) * DS_IMG[i] / 255.0;
            ck_assert_msg(fabs(x[i] - want) <= 1e-7, "pixel %d -> %.9g, expected %.9g",
                          DS_IMG[i], (double)x[i], want);
        }
        ck_assert_int_eq(y[0], 3);
        ck_assert_int_eq(y[1], 1);
        vib_dataset_free(d);
    }
}
END_TEST

START_TEST(dataset_from_gzip_matches_plain)
{
    write_ds_pair(1);
    vib_dataset *d = NULL;
    ck_assert_ok(vib_dataset_load(tmp_path("ds-img"), tmp_path("ds-lab"), 0.0f, 1.0f, &d));
    ck_assert_uint_eq(vib_dataset_size(d), 2);
    ck_assert_float_eq(vib_dataset_images(d)[2], 0.2f);
    vib_dataset_free(d);
}
END_TEST

START_TEST(dataset_rejects_bad_ranges)
{
    write_ds_pair(0);
    const char *img = tmp_path("ds-img"), *lab = tmp_path("ds-lab");
    vib_dataset *sentinel = (vib_dataset *)&img, *d = sentinel;
    ck_assert_fails(vib_dataset_load(img, lab, 1.0f, 1.0f, &d), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_dataset_load(img, lab, 1.0f, -1.0f, &d), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_dataset_load(img, lab, NAN, 1.0f, &d), VIB_ERR_NUMERIC);
    ck_assert_fails(vib_dataset_load(img, lab, 0.0f, INFINITY, &d), VIB_ERR_NUMERIC);
    ck_assert_fails(vib_dataset_load(img, lab, -INFINITY, 0.0f, &d), VIB_ERR_NUMERIC);
    ck_assert_fails(vib_dataset_load_mnist(tmpdir, "train", 2.0f, 1.0f, &d),
                    VIB_ERR_INVALID_ARG);
    ck_assert_ptr_eq(d, sentinel);
}
END_TEST

START_TEST(dataset_count_mismatch_names_both_files)
{
    const uint32_t three[1] = {3};
    write_idx(tmp_path("ds-img"), 0, 2, DS_IMG_DIMS, DS_IMG);
    write_idx(tmp_path("lab3"), 0, 1, three, LAB_DATA);
    vib_dataset *sentinel = (vib_dataset *)&three, *d = sentinel;
    ck_assert_fails(vib_dataset_load(tmp_path("ds-img"), tmp_path("lab3"), 0.0f, 1.0f, &d),
                    VIB_ERR_FORMAT);
    ck_assert_ptr_eq(d, sentinel);
    assert_error_mentions(tmp_path("ds-img"), tmp_path("lab3"));
    assert_error_mentions("mismatch", "vib_dataset_load");
}
END_TEST

START_TEST(dataset_labels_must_be_one_dimensional)
{
    write_idx(tmp_path("ds-img"), 0, 2, DS_IMG_DIMS, DS_IMG);
    const uint32_t dims[2] = {2, 1};
    write_idx(tmp_path("lab2d"), 0, 2, dims, DS_LAB);
    vib_dataset *d = NULL;
    ck_assert_fails(vib_dataset_load(tmp_path("ds-img"), tmp_path("lab2d"), 0.0f, 1.0f, &d),
                    VIB_ERR_FORMAT);
    assert_error_mentions(tmp_path("lab2d"), "1-D");
    /* Labels are read first, so a bad labels file is reported even when the images
     * are missing; a file error inside a dataset load is named after the dataset call. */
    ck_assert_fails(vib_dataset_load(tmp_path("nope"), tmp_path("lab2d"), 0.0f, 1.0f, &d),
                    VIB_ERR_FORMAT);
    write_idx(tmp_path("ds-lab"), 0, 1, DS_LAB_DIMS, DS_LAB);
    ck_assert_fails(vib_dataset_load(tmp_path("nope"), tmp_path("ds-lab"), 0.0f, 1.0f, &d),
                    VIB_ERR_IO);
    assert_error_mentions("vib_dataset_load", tmp_path("nope"));
    ck_assert_ptr_null(d);
}
END_TEST

START_TEST(dataset_one_dimensional_images)
{
    /* Images of any shape flatten to dim values; a 1-D file is one value per item. */
    const uint32_t dims[1] = {2};
    const unsigned char px[2] = {0, 255};
    write_idx(tmp_path("img1d"), 0, 1, dims, px);
    write_idx(tmp_path("ds-lab"), 0, 1, DS_LAB_DIMS, DS_LAB);
    vib_dataset *d = NULL;
    ck_assert_ok(vib_dataset_load(tmp_path("img1d"), tmp_path("ds-lab"), -1.0f, 1.0f, &d));
    ck_assert_uint_eq(vib_dataset_dim(d), 1);
    ck_assert_float_eq(vib_dataset_images(d)[0], -1.0f);
    ck_assert_float_eq(vib_dataset_images(d)[1], 1.0f);
    vib_dataset_free(d);
}
END_TEST

START_TEST(subset_copies_rows)
{
    enum { N = 5, D = 4 };
    const uint32_t idims[2] = {N, D}, ldims[1] = {N};
    unsigned char px[N * D], lab[N] = {0, 4, 2, 1, 3};
    for (int i = 0; i < N * D; i++)
        px[i] = (unsigned char)(i * 12);
    write_idx(tmp_path("img"), 0, 2, idims, px);
    write_idx(tmp_path("lab"), 0, 1, ldims, lab);
    vib_dataset *src = NULL, *sub = NULL;
    ck_assert_ok(vib_dataset_load(tmp_path("img"), tmp_path("lab"), 0.0f, 1.0f, &src));
    ck_assert_uint_eq(vib_dataset_classes(src), 5);
    ck_assert_ok(vib_dataset_subset(src, 2, 3, &sub));
    ck_assert_uint_eq(vib_dataset_size(sub), 3);
    ck_assert_uint_eq(vib_dataset_dim(sub), D);
    /* Items 2..4 have labels 2, 1, 3: the top class is absent, but the subset keeps the
     * source's label space, so a model sized from it fits the source too. */
    ck_assert_uint_eq(vib_dataset_classes(sub), 5);
    ck_assert_mem_eq(vib_dataset_images(sub), vib_dataset_images(src) + 2 * D,
                     3 * D * sizeof(float));
    ck_assert_mem_eq(vib_dataset_labels(sub), vib_dataset_labels(src) + 2, 3 * sizeof(int32_t));
    for (int i = 0; i < 3 * D; i++)
        ck_assert_float_eq_tol(vib_dataset_images(sub)[i], (2 * D + i) * 12 / 255.0f, 1e-7f);
    ck_assert_ptr_ne(vib_dataset_images(sub), vib_dataset_images(src)); /* a copy */
    vib_dataset_free(sub);

    /* The whole range and the last item are fine; anything past the end is not. */
    ck_assert_ok(vib_dataset_subset(src, 0, N, &sub));
    vib_dataset_free(sub);
    ck_assert_ok(vib_dataset_subset(src, N - 1, 1, &sub));
    ck_assert_int_eq(vib_dataset_labels(sub)[0], 3);
    vib_dataset_free(sub);
    vib_dataset *sentinel = (vib_dataset *)&src;
    sub = sentinel;
    ck_assert_fails(vib_dataset_subset(src, N, 1, &sub), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_dataset_subset(src, 4, 2, &sub), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_dataset_subset(src, 0, N + 1, &sub), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_dataset_subset(src, 2, SIZE_MAX, &sub), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_dataset_subset(src, SIZE_MAX, 2, &sub), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_dataset_subset(src, 0, 0, &sub), VIB_ERR_INVALID_ARG);
    ck_assert_ptr_eq(sub, sentinel);
    vib_dataset_free(src);
}
END_TEST

/* ---- the MNIST directory layout ------------------------------------------------ */

START_TEST(mnist_layout_finds_plain_and_gz)
{
    /* train as plain files, t10k gzip'd under the .gz names. */
    write_idx(tmp_path("train-images-idx3-ubyte"), 0, 3, IMG_DIMS, IMG_DATA);
    write_idx(tmp_path("train-labels-idx1-ubyte"), 0, 1, LAB_DIMS, LAB_DATA);
    write_idx(tmp_path("t10k-images-idx3-ubyte.gz"), 1, 2, DS_IMG_DIMS, DS_IMG);
    write_idx(tmp_path("t10k-labels-idx1-ubyte.gz"), 1, 1, DS_LAB_DIMS, DS_LAB);
    vib_dataset *train = NULL, *test = NULL;
    ck_assert_ok(vib_dataset_load_mnist(tmpdir, "train", 0.0f, 1.0f, &train));
    ck_assert_uint_eq(vib_dataset_size(train), 3);
    ck_assert_uint_eq(vib_dataset_dim(train), 4);
    ck_assert_uint_eq(vib_dataset_classes(train), 3);
    ck_assert_ok(vib_dataset_load_mnist(tmpdir, "t10k", -1.0f, 1.0f, &test));
    ck_assert_uint_eq(vib_dataset_size(test), 2);
    ck_assert_uint_eq(vib_dataset_dim(test), 3);
    ck_assert_float_eq(vib_dataset_images(test)[0], -1.0f);
    vib_dataset_free(train);
    vib_dataset_free(test);
    /* A trailing slash on the directory is not doubled. */
    char slashed[128];
    snprintf(slashed, sizeof slashed, "%s/", tmpdir);
    ck_assert_ok(vib_dataset_load_mnist(slashed, "t10k", 0.0f, 1.0f, &test));
    vib_dataset_free(test);
    /* The plain name wins over the .gz one when both exist. */
    write_idx(tmp_path("t10k-labels-idx1-ubyte"), 0, 1, LAB_DIMS, LAB_DATA); /* 3 labels */
    ck_assert_fails(vib_dataset_load_mnist(tmpdir, "t10k", 0.0f, 1.0f, &test), VIB_ERR_FORMAT);
    assert_error_mentions("mismatch", tmp_path("t10k-labels-idx1-ubyte holds"));
}
END_TEST

START_TEST(mnist_layout_reports_tried_paths)
{
    char mark;
    vib_dataset *sentinel = (vib_dataset *)&mark, *d = sentinel;
    ck_assert_fails(vib_dataset_load_mnist(tmpdir, "t10k", 0.0f, 1.0f, &d), VIB_ERR_IO);
    assert_error_mentions(tmp_path("t10k-images-idx3-ubyte"),
                          tmp_path("t10k-images-idx3-ubyte.gz"));
    assert_error_mentions("vib_dataset_load_mnist", NULL);
    /* Images present, labels missing: the labels' paths are the ones listed. */
    write_idx(tmp_path("train-images-idx3-ubyte.gz"), 1, 3, IMG_DIMS, IMG_DATA);
    ck_assert_fails(vib_dataset_load_mnist(tmpdir, "train", 0.0f, 1.0f, &d), VIB_ERR_IO);
    assert_error_mentions(tmp_path("train-labels-idx1-ubyte"),
                          tmp_path("train-labels-idx1-ubyte.gz"));
    /* A directory that does not exist. */
    ck_assert_fails(vib_dataset_load_mnist(tmp_path("absent"), "train", 0.0f, 1.0f, &d),
                    VIB_ERR_IO);
    assert_error_mentions("absent/train-images-idx3-ubyte", NULL);
    /* Unknown splits. */
    ck_assert_fails(vib_dataset_load_mnist(tmpdir, "test", 0.0f, 1.0f, &d),
                    VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_dataset_load_mnist(tmpdir, "", 0.0f, 1.0f, &d), VIB_ERR_INVALID_ARG);
    ck_assert_ptr_eq(d, sentinel);
}
END_TEST

/* ---- arguments ----------------------------------------------------------------- */

START_TEST(null_arguments)
{
    write_ds_pair(0);
    const char *img = tmp_path("ds-img"), *lab = tmp_path("ds-lab");
    vib_idx *isent = (vib_idx *)&img, *idx = isent;
    ck_assert_fails(vib_idx_load(NULL, &idx), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_idx_load(img, NULL), VIB_ERR_INVALID_ARG);
    ck_assert_ptr_eq(idx, isent);

    vib_dataset *dsent = (vib_dataset *)&lab, *d = dsent;
    ck_assert_fails(vib_dataset_load(NULL, lab, 0.0f, 1.0f, &d), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_dataset_load(img, NULL, 0.0f, 1.0f, &d), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_dataset_load(img, lab, 0.0f, 1.0f, NULL), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_dataset_load_mnist(NULL, "train", 0.0f, 1.0f, &d), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_dataset_load_mnist(tmpdir, NULL, 0.0f, 1.0f, &d), VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_dataset_load_mnist(tmpdir, "train", 0.0f, 1.0f, NULL),
                    VIB_ERR_INVALID_ARG);
    ck_assert_fails(vib_dataset_subset(NULL, 0, 1, &d), VIB_ERR_INVALID_ARG);
    ck_assert_ptr_eq(d, dsent);
    vib_dataset *src = NULL;
    ck_assert_ok(vib_dataset_load(img, lab, 0.0f, 1.0f, &src));
    ck_assert_fails(vib_dataset_subset(src, 0, 1, NULL), VIB_ERR_INVALID_ARG);
    vib_dataset_free(src);
}
END_TEST

START_TEST(getters_tolerate_null)
{
    ck_assert_uint_eq(vib_idx_ndim(NULL), 0);
    ck_assert_uint_eq(vib_idx_dim(NULL, 0), 0);
    ck_assert_uint_eq(vib_idx_count(NULL), 0);
    ck_assert_ptr_null(vib_idx_data(NULL));
    ck_assert_uint_eq(vib_dataset_size(NULL), 0);
    ck_assert_uint_eq(vib_dataset_dim(NULL), 0);
    ck_assert_uint_eq(vib_dataset_classes(NULL), 0);
    ck_assert_ptr_null(vib_dataset_images(NULL));
    ck_assert_ptr_null(vib_dataset_labels(NULL));
    vib_idx_free(NULL);
    vib_dataset_free(NULL);
}
END_TEST

/* ---- real data ----------------------------------------------------------------- */

START_TEST(fashion_mnist_t10k_loads)
{
    /* Not skipped when absent: `make check` installs the package (.ci/deps), so a
     * missing directory is a broken setup, not a reason to pass. */
    struct stat st;
    ck_assert_msg(stat(FASHION_DIR, &st) == 0,
                  "%s is missing: install Debian's dataset-fashion-mnist (make deps)",
                  FASHION_DIR);
    vib_dataset *d = NULL;
    ck_assert_ok(vib_dataset_load_mnist(FASHION_DIR, "t10k", 0.0f, 1.0f, &d));
    ck_assert_uint_eq(vib_dataset_size(d), 10000);
    ck_assert_uint_eq(vib_dataset_dim(d), 784);
    ck_assert_uint_eq(vib_dataset_classes(d), 10);
    const int32_t *y = vib_dataset_labels(d);
    const float *x = vib_dataset_images(d);
    /* The first test items are an ankle boot (9), a pullover (2) and two trousers (1). */
    ck_assert_int_eq(y[0], 9);
    ck_assert_int_eq(y[1], 2);
    ck_assert_int_eq(y[2], 1);
    ck_assert_int_eq(y[3], 1);
    size_t per_class[10] = {0};
    for (size_t i = 0; i < 10000; i++) {
        ck_assert_int_ge(y[i], 0);
        ck_assert_int_lt(y[i], 10);
        per_class[y[i]]++;
    }
    for (int c = 0; c < 10; c++)
        ck_assert_uint_eq(per_class[c], 1000);
    /* The first image's pixels sum to 33456 / 255. */
    double sum = 0.0;
    for (size_t j = 0; j < 784; j++) {
        ck_assert(x[j] >= 0.0f && x[j] <= 1.0f);
        sum += x[j];
    }
    ck_assert_double_eq_tol(sum, 33456.0 / 255.0, 1e-3);
    vib_dataset_free(d);
}
END_TEST

Suite *make_idx_suite(void)
{
    Suite *s = suite_create("idx");
    TCase *tc = tcase_create("idx");
    tcase_add_checked_fixture(tc, make_tmpdir, drop_tmpdir);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, valid_files_load);
    tcase_add_test(tc, gzip_files_load_identically);
    tcase_add_test(tc, larger_gzip_file_loads);
    tcase_add_test(tc, malformed_headers_are_format_errors);
    tcase_add_test(tc, corrupt_gzip_stream_is_format_error);
    tcase_add_test(tc, cut_gzip_stream_is_format_error);
    tcase_add_test(tc, huge_claims_are_refused_before_allocating);
    tcase_add_test(tc, forged_gzip_claims_allocate_little);
    tcase_add_test(tc, gzip_members_concatenate);
    tcase_add_test(tc, bytes_after_the_gzip_stream_are_refused);
    tcase_add_test(tc, fifos_and_devices_are_refused_at_once);
    tcase_add_test(tc, missing_file_is_io_error);
    tcase_add_test(tc, dataset_scaling_is_exact_at_the_ends);
    tcase_add_test(tc, dataset_from_gzip_matches_plain);
    tcase_add_test(tc, dataset_rejects_bad_ranges);
    tcase_add_test(tc, dataset_count_mismatch_names_both_files);
    tcase_add_test(tc, dataset_labels_must_be_one_dimensional);
    tcase_add_test(tc, dataset_one_dimensional_images);
    tcase_add_test(tc, subset_copies_rows);
    tcase_add_test(tc, mnist_layout_finds_plain_and_gz);
    tcase_add_test(tc, mnist_layout_reports_tried_paths);
    tcase_add_test(tc, null_arguments);
    tcase_add_test(tc, getters_tolerate_null);
    tcase_add_test(tc, fashion_mnist_t10k_loads);
    suite_add_tcase(s, tc);
    return s;
}
