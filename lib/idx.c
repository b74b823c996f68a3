/*
 * idx.c - the data reader: IDX files (the MNIST format) and labelled datasets.
 *
 * IDX layout, all integers big-endian:
 *
 *   offset  size        field
 *   0       2           zero
 *   2       1           element type (0x08 unsigned byte, the only one read here)
 *   3       1           number of dimensions d (1..255)
 *   4       4*d  u32    the size of each dimension, outermost first
 *   4+4d    prod(dims)  the elements, row-major
 *
 * Files go through zlib's gz* functions, which read a gzip stream or, when the content
 * is not gzip, the plain bytes: one code path for both, recognised by content rather
 * than by name. Every check is done before *out is written, so a failed load leaves it
 * untouched.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "internal.h"

/* The largest body we agree to allocate, 2 GiB: far above any real IDX data set
 * (MNIST's training images are 47 MB), far below what a forged header can claim, so a
 * few bad bytes never turn into an absurd allocation. */
#define IDX_MAX_BYTES ((uint64_t)1 << 31)

/* gzread takes an unsigned length and returns an int: read in pieces below INT_MAX. */
#define READ_CHUNK ((size_t)1 << 30)

#define ALIGN 64

struct vib_idx {
    size_t ndim, count;
    uint8_t *data;  /* count bytes, after dims[] in the same allocation */
    size_t dims[];  /* ndim sizes */
};

struct vib_dataset {
    size_t n, dim, classes;
    float *images;   /* [n x dim], 64-byte aligned for the products that read it */
    int32_t *labels; /* [n] */
};

static size_t round_up(size_t x)
{
    return (x + ALIGN - 1) / ALIGN * ALIGN;
}

static uint32_t get_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* ---- reading ------------------------------------------------------------------- */

/* Read up to len bytes into buf, *got receiving how many arrived. A short count with
 * VIB_OK is the end of the input (for a gzip stream that ends early too, which the
 * caller reports as truncation); a read failure is VIB_ERR_IO and a gzip stream that
 * does not decode or fails its CRC is VIB_ERR_FORMAT. */
static int read_full(const char *fn, const char *path, gzFile f, void *buf, size_t len,
                     size_t *got)
{
    unsigned char *p = buf;
    size_t done = 0;
    *got = 0;
    while (done < len) {
        size_t want = len - done < READ_CHUNK ? len - done : READ_CHUNK;
        int r = gzread(f, p + done, (unsigned)want);
        const int e = errno; /* before gzerror or vibi_fail can change it */
        if (r > 0) {
            done += (size_t)r;
            continue;
        }
        int err = Z_OK;
        const char *msg = gzerror(f, &err);
        /* zlib prefixes its message with the stream's name, "<fd:N>" for a gzdopen'd
         * descriptor; the path is already in ours. */
        const char *sep = strstr(msg, ": ");
        if (sep != NULL)
            msg = sep + 2;
        if (err == Z_ERRNO)
            return vibi_fail(VIB_ERR_IO, "%s: %s: read error: %s", fn, path, strerror(e));
        if (err == Z_DATA_ERROR)
            return vibi_fail(VIB_ERR_FORMAT, "%s: %s: corrupt gzip stream (zlib: %s)", fn, path,
                             msg);
        if (err == Z_MEM_ERROR)
            return vibi_fail(VIB_ERR_NOMEM, "%s: %s: zlib is out of memory", fn, path);
        if (r < 0) /* an error zlib did not classify: treat it as unreadable input */
            return vibi_fail(VIB_ERR_IO, "%s: %s: read error (zlib: %s)", fn, path, msg);
        break; /* 0: end of input (Z_OK), or a gzip stream cut short (Z_BUF_ERROR) */
    }
    *got = done;
    return VIB_OK;
}

/* " (the gzip stream ends early)" when the short read was a cut gzip stream, so the
 * message says which of the two layers is truncated. */
static const char *cut_note(gzFile f)
{
    int err = Z_OK;
    (void)gzerror(f, &err);
    return err == Z_BUF_ERROR ? " (the gzip stream ends early)" : "";
}

/* Read f to its end, discarding the bytes: VIB_OK, or the error that stopped it. */
static int drain(const char *fn, const char *path, gzFile f)
{
    unsigned char sink[4096];
    size_t got;
    int rc;
    do
        rc = read_full(fn, path, f, sink, sizeof sink, &got);
    while (rc == VIB_OK && got == sizeof sink);
    return rc;
}

static const char *type_name(int type)
{
    switch (type) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "short";
    case 0x0C: return "int";
    case 0x0D: return "float";
    case 0x0E: return "double";
    default: return NULL;
    }
}

/* Parse and check the header from f, then read the body into a new vib_idx. `st` is
 * the opened file's status, used to check a plain file's length against its header
 * before allocating anything. Messages start with fn, the public function the caller
 * is inside. */
static int idx_read_stream(const char *fn, const char *path, gzFile f, const struct stat *st,
                           vib_idx **out)
{
    unsigned char head[4 + 4 * 255];
    size_t got;
    int rc = read_full(fn, path, f, head, 4, &got);
    if (rc != VIB_OK)
        return rc;
    if (got < 4)
        return vibi_fail(VIB_ERR_FORMAT,
                         "%s: %s: truncated header: expected 4 bytes, got %zu%s", fn, path, got,
                         cut_note(f));
    if (head[0] != 0 || head[1] != 0)
        return vibi_fail(VIB_ERR_FORMAT,
                         "%s: %s: bad magic 0x%02X%02X (an IDX file starts with two zero "
                         "bytes): not an IDX file",
                         fn, path, head[0], head[1]);
    const int type = head[2];
    if (type != 0x08) {
        const char *name = type_name(type);
        if (name != NULL)
            return vibi_fail(VIB_ERR_FORMAT,
                             "%s: %s: unsupported type 0x%02X (%s): libvib reads 0x08 "
                             "(unsigned byte) only",
                             fn, path, type, name);
        return vibi_fail(VIB_ERR_FORMAT,
                         "%s: %s: unknown type 0x%02X (IDX types are 0x08 unsigned byte, 0x09 "
                         "signed byte, 0x0B short, 0x0C int, 0x0D float, 0x0E double)",
                         fn, path, type);
    }
    const size_t ndim = head[3];
    if (ndim == 0)
        return vibi_fail(VIB_ERR_FORMAT, "%s: %s: ndim 0: an IDX file needs 1 to 255 dimensions",
                         fn, path);
    rc = read_full(fn, path, f, head + 4, 4 * ndim, &got);
    if (rc != VIB_OK)
        return rc;
    if (got < 4 * ndim)
        return vibi_fail(VIB_ERR_FORMAT,
                         "%s: %s: truncated header: expected %zu bytes for %zu dimensions, got "
                         "%zu%s",
                         fn, path, 4 + 4 * ndim, ndim, 4 + got, cut_note(f));
    size_t dims[255];
    size_t count = 1;
    for (size_t i = 0; i < ndim; i++) {
        dims[i] = get_be32(head + 4 + 4 * i);
        if (dims[i] == 0)
            return vibi_fail(VIB_ERR_FORMAT,
                             "%s: %s: dimension %zu has size 0 (every size must be positive)",
                             fn, path, i);
        if (!vibi_mul_size(count, dims[i], &count))
            return vibi_fail(VIB_ERR_FORMAT,
                             "%s: %s: the product of the %zu dimension sizes overflows size_t",
                             fn, path, ndim);
    }
    /* A plain file's length is known before reading it: refuse a header that claims
     * more or less than is there without allocating what it claims. (A gzip stream's
     * length is only known by decoding it; the reads below check it.) */
    const size_t head_bytes = 4 + 4 * ndim;
    if (gzdirect(f) && S_ISREG(st->st_mode)) {
        /* The body's length, compared without adding to count: a product of sizes can
         * sit just below 2^64, where head_bytes + count would wrap. */
        const uint64_t size = (uint64_t)st->st_size;
        const uint64_t body = size > head_bytes ? size - head_bytes : 0;
        if (body < (uint64_t)count)
            return vibi_fail(VIB_ERR_FORMAT,
                             "%s: %s: truncated: expected %zu data bytes, got %llu", fn, path,
                             count, (unsigned long long)body);
        if (body > (uint64_t)count)
            return vibi_fail(VIB_ERR_FORMAT,
                             "%s: %s: %llu trailing bytes after the %zu data bytes", fn, path,
                             (unsigned long long)(body - count), count);
    }
    if ((uint64_t)count > IDX_MAX_BYTES)
        return vibi_fail(VIB_ERR_NOMEM,
                         "%s: %s: too large: %zu data bytes exceed libvib's limit of %llu", fn,
                         path, count, (unsigned long long)IDX_MAX_BYTES);
    /* The struct, its dims and the data in one allocation; count <= 2^34 and ndim <= 255
     * keep the sum far from overflow. */
    const size_t total = sizeof(vib_idx) + ndim * sizeof(size_t) + count;
    vib_idx *idx = malloc(total);
    if (idx == NULL)
        return vibi_fail(VIB_ERR_NOMEM, "%s: %s: cannot allocate %zu bytes", fn, path, total);
    idx->ndim = ndim;
    idx->count = count;
    memcpy(idx->dims, dims, ndim * sizeof(size_t));
    idx->data = (uint8_t *)(idx->dims + ndim);
    rc = read_full(fn, path, f, idx->data, count, &got);
    if (rc == VIB_OK && got < count)
        rc = vibi_fail(VIB_ERR_FORMAT, "%s: %s: truncated: expected %zu data bytes, got %zu%s",
                       fn, path, count, got, cut_note(f));
    /* One more byte must not exist. Reading it also drives a gzip stream to its end,
     * where zlib checks the CRC-32 and length trailer. */
    unsigned char extra;
    if (rc == VIB_OK)
        rc = read_full(fn, path, f, &extra, 1, &got);
    if (rc == VIB_OK && got != 0) {
        /* In a damaged gzip stream, extra output is a symptom and the damage the cause:
         * decode to the end, so a failed CRC is reported as what it is. */
        rc = drain(fn, path, f);
        if (rc == VIB_OK)
            rc = vibi_fail(VIB_ERR_FORMAT, "%s: %s: trailing bytes after the %zu data bytes",
                           fn, path, count);
    }
    if (rc == VIB_OK && *cut_note(f) != '\0')
        rc = vibi_fail(VIB_ERR_FORMAT, "%s: %s: the gzip stream ends early (no trailer)", fn,
                       path);
    if (rc != VIB_OK) {
        free(idx);
        return rc;
    }
    *out = idx;
    return VIB_OK;
}

/* Open `path` and read it as IDX into *out; fn names the public caller in messages. */
static int idx_read(const char *fn, const char *path, vib_idx **out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return vibi_fail(VIB_ERR_IO, "%s: %s: cannot open: %s", fn, path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return vibi_fail(VIB_ERR_IO, "%s: %s: cannot stat: %s", fn, path, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return vibi_fail(VIB_ERR_IO, "%s: %s: is a directory", fn, path);
    }
    gzFile f = gzdopen(fd, "rb");
    if (f == NULL) {
        close(fd);
        return vibi_fail(VIB_ERR_NOMEM, "%s: %s: zlib cannot allocate its state", fn, path);
    }
    /* A larger buffer than zlib's 8 KiB default: fewer system calls for a gzip file. */
    (void)gzbuffer(f, 128 * 1024);
    int rc = idx_read_stream(fn, path, f, &st, out);
    /* Closing a read-only stream cannot lose data; its status adds nothing to rc. */
    (void)gzclose(f);
    return rc;
}

/* ---- IDX handles --------------------------------------------------------------- */

int vib_idx_load(const char *path, vib_idx **out)
{
    static const char fn[] = "vib_idx_load";
    if (path == NULL || out == NULL)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: %s is NULL", fn, path ? "out" : "path");
    return idx_read(fn, path, out);
}

void vib_idx_free(vib_idx *idx)
{
    free(idx);
}

size_t vib_idx_ndim(const vib_idx *idx)
{
    return idx ? idx->ndim : 0;
}

size_t vib_idx_dim(const vib_idx *idx, size_t axis)
{
    return idx && axis < idx->ndim ? idx->dims[axis] : 0;
}

size_t vib_idx_count(const vib_idx *idx)
{
    return idx ? idx->count : 0;
}

const uint8_t *vib_idx_data(const vib_idx *idx)
{
    return idx ? idx->data : NULL;
}

/* ---- datasets ------------------------------------------------------------------ */

/* A dataset of n items of dim values in one 64-byte aligned block, fields unset.
 * classes is filled by the caller. */
static int dataset_alloc(const char *fn, size_t n, size_t dim, vib_dataset **out)
{
    size_t values, ibytes, lbytes;
    if (!vibi_mul_size(n, dim, &values) || !vibi_mul_size(values, sizeof(float), &ibytes) ||
        ibytes > SIZE_MAX / 4 || !vibi_mul_size(n, sizeof(int32_t), &lbytes) ||
        lbytes > SIZE_MAX / 4)
        return vibi_fail(VIB_ERR_NOMEM, "%s: %zu x %zu values overflow size_t", fn, n, dim);
    const size_t total = round_up(sizeof(vib_dataset)) + round_up(ibytes) + round_up(lbytes);
    char *mem = aligned_alloc(ALIGN, total);
    if (mem == NULL)
        return vibi_fail(VIB_ERR_NOMEM, "%s: cannot allocate %zu bytes", fn, total);
    vib_dataset *d = (vib_dataset *)mem;
    d->n = n;
    d->dim = dim;
    d->classes = 0;
    d->images = (float *)(mem + round_up(sizeof(vib_dataset)));
    d->labels = (int32_t *)(mem + round_up(sizeof(vib_dataset)) + round_up(ibytes));
    *out = d;
    return VIB_OK;
}

/* Non-finite bounds are a numeric error, an empty or reversed range a bad argument,
 * as for vib_rng_uniform. */
static int check_range(const char *fn, float lo, float hi)
{
    if (!isfinite(lo) || !isfinite(hi))
        return vibi_fail(VIB_ERR_NUMERIC, "%s: bounds lo = %g, hi = %g are not finite", fn,
                         (double)lo, (double)hi);
    if (!(lo < hi))
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: lo = %g must be below hi = %g", fn,
                         (double)lo, (double)hi);
    return VIB_OK;
}

/* Build the dataset from two loaded IDX files (the labels already known to be 1-D),
 * checking that their counts agree. */
static int dataset_from_idx(const char *fn, const char *images_path, const vib_idx *img,
                            const char *labels_path, const vib_idx *lab, float lo, float hi,
                            vib_dataset **out)
{
    const size_t n = lab->dims[0];
    if (img->dims[0] != n)
        return vibi_fail(VIB_ERR_FORMAT,
                         "%s: count mismatch: %s holds %zu images, %s holds %zu labels", fn,
                         images_path, img->dims[0], labels_path, n);
    vib_dataset *d;
    int rc = dataset_alloc(fn, n, img->count / n, &d);
    if (rc != VIB_OK)
        return rc;
    /* Every pixel maps through one of 256 values. Each is computed in double and rounded
     * once; the ends are set exactly, so 0 gives lo and 255 gives hi whatever rounding
     * lo + (hi - lo) would suffer. */
    float lut[256];
    for (int p = 0; p < 256; p++)
        lut[p] = (float)((double)lo + ((double)hi - (double)lo) * p / 255.0);
    lut[0] = lo;
    lut[255] = hi;
    for (size_t i = 0; i < img->count; i++)
        d->images[i] = lut[img->data[i]];
    uint8_t top = 0;
    for (size_t i = 0; i < n; i++) {
        d->labels[i] = lab->data[i];
        if (lab->data[i] > top)
            top = lab->data[i];
    }
    d->classes = (size_t)top + 1;
    *out = d;
    return VIB_OK;
}

/* Load both files and build the dataset; fn names the public caller. */
static int dataset_load(const char *fn, const char *images_path, const char *labels_path,
                        float lo, float hi, vib_dataset **out)
{
    vib_idx *lab = NULL, *img = NULL;
    /* Labels first: the small file, so a wrong directory or a mismatched pair is found
     * before the large one is read. */
    int rc = idx_read(fn, labels_path, &lab);
    if (rc == VIB_OK && lab->ndim != 1)
        rc = vibi_fail(VIB_ERR_FORMAT,
                       "%s: %s: labels must be a 1-D IDX file, this one has %zu dimensions", fn,
                       labels_path, lab->ndim);
    if (rc == VIB_OK)
        rc = idx_read(fn, images_path, &img);
    if (rc == VIB_OK)
        rc = dataset_from_idx(fn, images_path, img, labels_path, lab, lo, hi, out);
    vib_idx_free(img);
    vib_idx_free(lab);
    return rc;
}

int vib_dataset_load(const char *images_path, const char *labels_path, float lo, float hi,
                     vib_dataset **out)
{
    static const char fn[] = "vib_dataset_load";
    if (images_path == NULL)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: images_path is NULL", fn);
    if (labels_path == NULL)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: labels_path is NULL", fn);
    if (out == NULL)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: out is NULL", fn);
    int rc = check_range(fn, lo, hi);
    if (rc != VIB_OK)
        return rc;
    return dataset_load(fn, images_path, labels_path, lo, hi, out);
}

/* Point *found at "<dir>/<name>" if it exists, else "<dir>/<name>.gz" if that does;
 * if neither, an I/O error listing both. `what` says which file is sought. The caller
 * frees *found. A path that exists but cannot be read counts as found, so the load
 * reports why it cannot be read rather than that it is missing. */
static int find_split_file(const char *fn, const char *dir, const char *name,
                           const char *what, char **found)
{
    const size_t dlen = strlen(dir), nlen = strlen(name);
    if (dlen > SIZE_MAX / 4)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: dir is too long", fn);
    /* "dir/name", without doubling a slash the caller already wrote. */
    const bool slash = dlen > 0 && dir[dlen - 1] != '/';
    const size_t room = dlen + 1 + nlen + sizeof ".gz";
    char *plain = malloc(2 * room);
    if (plain == NULL)
        return vibi_fail(VIB_ERR_NOMEM, "%s: cannot allocate %zu bytes", fn, 2 * room);
    char *gz = plain + room;
    memcpy(plain, dir, dlen);
    size_t at = dlen;
    if (slash)
        plain[at++] = '/';
    memcpy(plain + at, name, nlen + 1);
    memcpy(gz, plain, at + nlen);
    memcpy(gz + at + nlen, ".gz", sizeof ".gz");
    const char *candidates[2] = {plain, gz};
    for (int i = 0; i < 2; i++) {
        struct stat st;
        if (stat(candidates[i], &st) == 0 || (errno != ENOENT && errno != ENOTDIR)) {
            if (i == 1)
                memmove(plain, gz, strlen(gz) + 1);
            *found = plain;
            return VIB_OK;
        }
    }
    int rc = vibi_fail(VIB_ERR_IO, "%s: no %s file: tried %s and %s (%s)", fn, what, plain, gz,
                       strerror(ENOENT));
    free(plain);
    return rc;
}

int vib_dataset_load_mnist(const char *dir, const char *split, float lo, float hi,
                           vib_dataset **out)
{
    static const char fn[] = "vib_dataset_load_mnist";
    if (dir == NULL)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: dir is NULL", fn);
    if (split == NULL)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: split is NULL", fn);
    if (out == NULL)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: out is NULL", fn);
    const bool train = strcmp(split, "train") == 0;
    if (!train && strcmp(split, "t10k") != 0)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: split \"%.64s\" is not \"train\" or \"t10k\"",
                         fn, split);
    int rc = check_range(fn, lo, hi);
    if (rc != VIB_OK)
        return rc;
    char *images = NULL, *labels = NULL;
    rc = find_split_file(fn, dir, train ? "train-images-idx3-ubyte" : "t10k-images-idx3-ubyte",
                         train ? "train images" : "t10k images", &images);
    if (rc == VIB_OK)
        rc = find_split_file(fn, dir,
                             train ? "train-labels-idx1-ubyte" : "t10k-labels-idx1-ubyte",
                             train ? "train labels" : "t10k labels", &labels);
    if (rc == VIB_OK)
        rc = dataset_load(fn, images, labels, lo, hi, out);
    free(images);
    free(labels);
    return rc;
}

int vib_dataset_subset(const vib_dataset *src, size_t first, size_t count, vib_dataset **out)
{
    static const char fn[] = "vib_dataset_subset";
    if (src == NULL || out == NULL)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: %s is NULL", fn, src ? "out" : "src");
    if (count == 0)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: count is 0 (a dataset holds at least one item)",
                         fn);
    if (first > src->n || count > src->n - first)
        return vibi_fail(VIB_ERR_INVALID_ARG,
                         "%s: items [%zu, %zu + %zu) are outside the dataset's %zu items", fn,
                         first, first, count, src->n);
    vib_dataset *d;
    int rc = dataset_alloc(fn, count, src->dim, &d);
    if (rc != VIB_OK)
        return rc;
    memcpy(d->images, src->images + first * src->dim, count * src->dim * sizeof(float));
    memcpy(d->labels, src->labels + first, count * sizeof(int32_t));
    /* The subset keeps its source's label space: a slice that happens to miss the top
     * class must still describe a classifier of the same width. */
    d->classes = src->classes;
    *out = d;
    return VIB_OK;
}

void vib_dataset_free(vib_dataset *data)
{
    free(data);
}

size_t vib_dataset_size(const vib_dataset *data)
{
    return data ? data->n : 0;
}

size_t vib_dataset_dim(const vib_dataset *data)
{
    return data ? data->dim : 0;
}

size_t vib_dataset_classes(const vib_dataset *data)
{
    return data ? data->classes : 0;
}

const float *vib_dataset_images(const vib_dataset *data)
{
    return data ? data->images : NULL;
}

const int32_t *vib_dataset_labels(const vib_dataset *data)
{
    return data ? data->labels : NULL;
}
