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
 * Only regular files are read: a FIFO could block the reader forever and a device has
 * no length to check a header against. A file whose first two bytes are gzip's magic
 * (1F 8B) is decoded with zlib's inflate, member after member as gzip allows; any other
 * content is read as plain bytes: one reader for both, recognised by content rather than
 * by name. libvib decodes the members itself instead of through zlib's gz* functions,
 * which skip whatever follows the last member unseen. Every check is done before *out is
 * written, so a failed load leaves it untouched.
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

/* deflate's largest expansion, output bytes per input byte. The cheapest output is a
 * match of 258 bytes, the longest there is: its length code can be 1 bit long (a
 * literal/length code of two symbols, that one and end-of-block) and so can its
 * distance code (a distance code of one symbol), 2 bits for 258 bytes, 1032 bytes per
 * input byte. Literals cost at least 1 bit a byte, stored blocks 8, and block headers,
 * code tables and gzip's header and trailer produce nothing, so a gzip file of L bytes,
 * of one member or several, decodes to fewer than 1032 L bytes. */
#define DEFLATE_MAX_RATIO 1032

/* read() and inflate() move at most this much at once: below INT_MAX, and within
 * inflate's unsigned avail_out. */
#define READ_CHUNK ((size_t)1 << 30)

/* The buffer of raw file bytes: fewer system calls than zlib's 8 KiB default. */
#define IN_BYTES ((size_t)128 * 1024)

/* A gzip body's first allocation, doubled as the data arrives (see read_body). */
#define GROW_FIRST ((size_t)1 << 20)

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

static uint32_t get_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* ---- opening ------------------------------------------------------------------- */

static const char *file_kind(mode_t mode)
{
    if (S_ISDIR(mode))
        return "a directory";
    if (S_ISFIFO(mode))
        return "a FIFO";
    if (S_ISCHR(mode))
        return "a character device";
    if (S_ISBLK(mode))
        return "a block device";
    return "a special file";
}

int vibi_open_regular(const char *fn, const char *path, int *fd, uint64_t *size)
{
    /* O_NONBLOCK: opening a FIFO for reading waits for a writer, perhaps forever, before
     * fstat could say what it is; with it the open returns at once. O_NOCTTY: a
     * terminal opened here never becomes the process's controlling one. */
    const int f = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (f < 0)
        return vibi_fail(VIB_ERR_IO, "%s: %s: cannot open: %s", fn, path, strerror(errno));
    struct stat st;
    int flags;
    int rc = VIB_OK;
    if (fstat(f, &st) != 0)
        rc = vibi_fail(VIB_ERR_IO, "%s: %s: cannot stat: %s", fn, path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = vibi_fail(VIB_ERR_IO, "%s: %s: not a regular file (%s)", fn, path,
                       file_kind(st.st_mode));
    /* Reads block as usual from here; for a regular file the flag changes nothing on
     * Linux, but POSIX leaves its effect there unspecified. */
    else if ((flags = fcntl(f, F_GETFL)) < 0 || fcntl(f, F_SETFL, flags & ~O_NONBLOCK) < 0)
        rc = vibi_fail(VIB_ERR_IO, "%s: %s: cannot set blocking reads: %s", fn, path,
                       strerror(errno));
    if (rc != VIB_OK) {
        close(f);
        return rc;
    }
    *fd = f;
    *size = (uint64_t)st.st_size;
    return VIB_OK;
}

int vibi_read_fd(const char *fn, const char *path, int fd, void *buf, size_t n, size_t *got)
{
    unsigned char *b = buf;
    size_t done = 0;
    while (done < n) {
        const size_t want = n - done < READ_CHUNK ? n - done : READ_CHUNK;
        const ssize_t r = read(fd, b + done, want);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return vibi_fail(VIB_ERR_IO, "%s: %s: read error: %s", fn, path, strerror(errno));
        if (r == 0)
            break;
        done += (size_t)r;
    }
    *got = done;
    return VIB_OK;
}

/* ---- reading ------------------------------------------------------------------- */

/* An open IDX file: the raw bytes, and for gzip content the decoder. z.next_in and
 * z.avail_in are the unread raw bytes in `in` whichever the content. */
typedef struct {
    const char *fn, *path; /* for messages: the public caller and the file */
    int fd;
    uint64_t file_size; /* fstat's length at the open */
    uint64_t raw_read;  /* bytes read from fd so far */
    unsigned char *in;  /* IN_BYTES */
    z_stream z;
    bool eof;     /* read() has returned 0 */
    bool gzip;    /* the content starts with 1F 8B */
    bool z_ready; /* inflateInit2 succeeded: inflateEnd is due */
    enum { IN_MEMBER, AFTER_MEMBER, ENDED, CUT } state; /* gzip only */
} idx_src;

/* Read n raw bytes into dst, or up to the end of the file (then s->eof). */
static int raw_read(idx_src *s, unsigned char *dst, size_t n, size_t *got)
{
    TRY(vibi_read_fd(s->fn, s->path, s->fd, dst, n, got));
    s->eof = *got < n;
    s->raw_read += *got;
    return VIB_OK;
}

/* Move the unread raw bytes to the start of `in` and fill the rest of it. */
static int raw_more(idx_src *s)
{
    if (s->z.avail_in > 0 && s->z.next_in != s->in)
        memmove(s->in, s->z.next_in, s->z.avail_in);
    s->z.next_in = s->in;
    size_t got;
    TRY(raw_read(s, s->in + s->z.avail_in, IN_BYTES - s->z.avail_in, &got));
    s->z.avail_in += (uInt)got;
    return VIB_OK;
}

/* Read until n (at most IN_BYTES) raw bytes are unread, or the file ends. */
static int raw_need(idx_src *s, size_t n)
{
    while (s->z.avail_in < n && !s->eof)
        TRY(raw_more(s));
    return VIB_OK;
}

/* After a gzip member, the file must end or hold another member; anything else is
 * refused as a plain file's trailing bytes are. */
static int next_member(idx_src *s)
{
    TRY(raw_need(s, 2));
    if (s->z.avail_in == 0) {
        s->state = ENDED;
        return VIB_OK;
    }
    if (s->z.avail_in >= 2 && s->z.next_in[0] == 0x1F && s->z.next_in[1] == 0x8B) {
        if (inflateReset(&s->z) != Z_OK)
            return vibi_fail(VIB_ERR_FORMAT, "%s: %s: corrupt gzip stream (zlib: %s)", s->fn,
                             s->path, zError(Z_STREAM_ERROR));
        s->state = IN_MEMBER;
        return VIB_OK;
    }
    /* The file's length from fstat counts them without reading them all. */
    const uint64_t at = s->raw_read - s->z.avail_in;
    const uint64_t extra = s->file_size > at ? s->file_size - at : s->z.avail_in;
    return vibi_fail(VIB_ERR_FORMAT,
                     "%s: %s: trailing bytes after the gzip stream (%llu byte%s from offset "
                     "%llu, not a gzip member)",
                     s->fn, s->path, (unsigned long long)extra, extra == 1 ? "" : "s",
                     (unsigned long long)at);
}

/* Read up to len bytes of content into buf, *got receiving how many arrived. A short
 * count with VIB_OK is the end of the content (for gzip, also a member cut short, which
 * the caller reports as truncation); a read failure is VIB_ERR_IO, a gzip stream that
 * does not decode or fails its CRC-32 or length check, or that is followed by other
 * bytes, VIB_ERR_FORMAT. */
static int read_full(idx_src *s, void *buf, size_t len, size_t *got)
{
    unsigned char *p = buf;
    size_t done = 0;
    *got = 0;
    if (!s->gzip) {
        const size_t have = s->z.avail_in < len ? s->z.avail_in : len;
        if (have > 0)
            memcpy(p, s->z.next_in, have);
        s->z.next_in += have;
        s->z.avail_in -= (uInt)have;
        done = have;
        if (done < len && !s->eof) { /* the rest straight into buf */
            size_t more;
            TRY(raw_read(s, p + done, len - done, &more));
            done += more;
        }
        *got = done;
        return VIB_OK;
    }
    while (done < len) {
        if (s->state == AFTER_MEMBER) {
            TRY(next_member(s));
            continue;
        }
        if (s->state != IN_MEMBER)
            break;
        if (s->z.avail_in == 0) {
            TRY(raw_more(s));
            if (s->z.avail_in == 0) { /* the file ends inside a member */
                s->state = CUT;
                break;
            }
        }
        const size_t want = len - done < READ_CHUNK ? len - done : READ_CHUNK;
        s->z.next_out = p + done;
        s->z.avail_out = (uInt)want;
        const int zr = inflate(&s->z, Z_NO_FLUSH);
        done += want - s->z.avail_out;
        if (zr == Z_STREAM_END) /* the member's CRC-32 and length have been checked */
            s->state = AFTER_MEMBER;
        else if (zr == Z_MEM_ERROR)
            return vibi_fail(VIB_ERR_NOMEM, "%s: %s: zlib is out of memory", s->fn, s->path);
        else if (zr != Z_OK && zr != Z_BUF_ERROR)
            return vibi_fail(VIB_ERR_FORMAT, "%s: %s: corrupt gzip stream (zlib: %s)", s->fn,
                             s->path, s->z.msg != NULL ? s->z.msg : zError(zr));
    }
    *got = done;
    return VIB_OK;
}

/* " (the gzip stream ends early)" when the short read was a cut gzip member, so the
 * message says which of the two layers is truncated. */
static const char *cut_note(const idx_src *s)
{
    return s->gzip && s->state == CUT ? " (the gzip stream ends early)" : "";
}

/* Read the content to its end, discarding the bytes: VIB_OK, or the error that stopped
 * it. */
static int drain(idx_src *s)
{
    unsigned char sink[4096];
    size_t got;
    int rc;
    do
        rc = read_full(s, sink, sizeof sink, &got);
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

/* The bytes of a vib_idx holding ndim sizes and n data bytes; ndim <= 255 and
 * n <= 2^31 keep the sum far from overflow. */
static size_t idx_bytes(size_t ndim, size_t n)
{
    return sizeof(vib_idx) + ndim * sizeof(size_t) + n;
}

/* Read the body of `count` bytes into a new vib_idx of the given sizes, in *out even
 * on failure (the caller frees it). A plain file's length was checked against count,
 * so its body is allocated whole. A gzip body is allocated as it decodes, from
 * GROW_FIRST bytes doubling up to count: a forged header whose claim the file's length
 * permits, but which the data does not fill, costs at most GROW_FIRST or twice the
 * bytes that arrived, and the doublings of a real body copy fewer bytes than it holds.
 * *have receives the bytes read. */
static int read_body(idx_src *s, size_t ndim, const size_t *dims, size_t count,
                     vib_idx **out, size_t *have)
{
    size_t cap = s->gzip && count > GROW_FIRST ? GROW_FIRST : count;
    vib_idx *idx = malloc(idx_bytes(ndim, cap));
    *out = NULL;
    *have = 0;
    if (idx == NULL)
        return vibi_fail(VIB_ERR_NOMEM, "%s: %s: cannot allocate %zu bytes", s->fn, s->path,
                         idx_bytes(ndim, cap));
    idx->ndim = ndim;
    idx->count = count;
    memcpy(idx->dims, dims, ndim * sizeof(size_t));
    int rc;
    for (;;) {
        size_t got;
        rc = read_full(s, (uint8_t *)(idx->dims + ndim) + *have, cap - *have, &got);
        *have += got;
        if (rc != VIB_OK || *have < cap || cap == count)
            break;
        const size_t next = cap > count / 2 ? count : 2 * cap;
        vib_idx *bigger = realloc(idx, idx_bytes(ndim, next));
        if (bigger == NULL) {
            rc = vibi_fail(VIB_ERR_NOMEM, "%s: %s: cannot allocate %zu bytes", s->fn, s->path,
                           idx_bytes(ndim, next));
            break;
        }
        idx = bigger;
        cap = next;
    }
    idx->data = (uint8_t *)(idx->dims + ndim);
    *out = idx;
    return rc;
}

/* Parse and check the header, then read the body into a new vib_idx. Messages start
 * with the public function s->fn is, then the path. */
static int idx_read_stream(idx_src *s, vib_idx **out)
{
    const char *fn = s->fn, *path = s->path;
    unsigned char head[4 + 4 * 255];
    size_t got;
    TRY(read_full(s, head, 4, &got));
    if (got < 4)
        return vibi_fail(VIB_ERR_FORMAT,
                         "%s: %s: truncated header: expected 4 bytes, got %zu%s", fn, path, got,
                         cut_note(s));
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
    TRY(read_full(s, head + 4, 4 * ndim, &got));
    if (got < 4 * ndim)
        return vibi_fail(VIB_ERR_FORMAT,
                         "%s: %s: truncated header: expected %zu bytes for %zu dimensions, got "
                         "%zu%s",
                         fn, path, 4 + 4 * ndim, ndim, 4 + got, cut_note(s));
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
    /* Refuse a header that claims more than the file can hold without allocating what
     * it claims. A plain file's body is its length less the header, exactly; a gzip
     * file decodes to less than DEFLATE_MAX_RATIO times its length, header included.
     * (The length is fstat's at the open: a file changed since is caught by the reads.) */
    const size_t head_bytes = 4 + 4 * ndim;
    if (!s->gzip) {
        /* The body's length, compared without adding to count: a product of sizes can
         * sit just below 2^64, where head_bytes + count would wrap. */
        const uint64_t body = s->file_size > head_bytes ? s->file_size - head_bytes : 0;
        if (body < (uint64_t)count)
            return vibi_fail(VIB_ERR_FORMAT,
                             "%s: %s: truncated: expected %zu data bytes, got %llu", fn, path,
                             count, (unsigned long long)body);
        if (body > (uint64_t)count)
            return vibi_fail(VIB_ERR_FORMAT,
                             "%s: %s: %llu trailing bytes after the %zu data bytes", fn, path,
                             (unsigned long long)(body - count), count);
    } else {
        const uint64_t hold = s->file_size > UINT64_MAX / DEFLATE_MAX_RATIO
                                  ? UINT64_MAX
                                  : s->file_size * DEFLATE_MAX_RATIO;
        if (hold < head_bytes || (uint64_t)count > hold - head_bytes)
            return vibi_fail(VIB_ERR_FORMAT,
                             "%s: %s: the header claims %zu data bytes, more than a gzip file "
                             "of %llu bytes can hold (deflate expands at most %d:1)",
                             fn, path, count, (unsigned long long)s->file_size,
                             DEFLATE_MAX_RATIO);
    }
    if ((uint64_t)count > IDX_MAX_BYTES)
        return vibi_fail(VIB_ERR_NOMEM,
                         "%s: %s: too large: %zu data bytes exceed libvib's limit of %llu", fn,
                         path, count, (unsigned long long)IDX_MAX_BYTES);
    vib_idx *idx;
    int rc = read_body(s, ndim, dims, count, &idx, &got);
    if (rc == VIB_OK && got < count)
        rc = vibi_fail(VIB_ERR_FORMAT, "%s: %s: truncated: expected %zu data bytes, got %zu%s",
                       fn, path, count, got, cut_note(s));
    /* One more byte must not exist. Reading it also drives a gzip stream to its end,
     * where inflate checks each member's CRC-32 and length trailer and what follows the
     * last member is looked at. */
    unsigned char extra;
    if (rc == VIB_OK)
        rc = read_full(s, &extra, 1, &got);
    if (rc == VIB_OK && got != 0) {
        /* In a damaged gzip stream, extra output is a symptom and the damage the cause:
         * decode to the end, so a failed CRC is reported as what it is. */
        rc = drain(s);
        if (rc == VIB_OK)
            rc = vibi_fail(VIB_ERR_FORMAT, "%s: %s: trailing bytes after the %zu data bytes",
                           fn, path, count);
    }
    if (rc == VIB_OK && *cut_note(s) != '\0')
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
    idx_src s;
    memset(&s, 0, sizeof s);
    s.fn = fn;
    s.path = path;
    TRY(vibi_open_regular(fn, path, &s.fd, &s.file_size));
    int rc = VIB_OK;
    s.in = malloc(IN_BYTES);
    if (s.in == NULL)
        rc = vibi_fail(VIB_ERR_NOMEM, "%s: %s: cannot allocate %zu bytes", fn, path, IN_BYTES);
    if (rc == VIB_OK) {
        s.z.next_in = s.in;
        rc = raw_need(&s, 2);
    }
    if (rc == VIB_OK && s.z.avail_in >= 2 && s.in[0] == 0x1F && s.in[1] == 0x8B) {
        s.gzip = true;
        /* 15: deflate's largest window; + 16: a gzip wrapper, and only that */
        const int zr = inflateInit2(&s.z, 15 + 16);
        if (zr == Z_OK) {
            s.z_ready = true;
            s.state = IN_MEMBER;
        } else {
            rc = vibi_fail(VIB_ERR_NOMEM, "%s: %s: zlib cannot allocate its state (zlib: %s)",
                           fn, path, zError(zr));
        }
    }
    if (rc == VIB_OK)
        rc = idx_read_stream(&s, out);
    if (s.z_ready)
        (void)inflateEnd(&s.z);
    free(s.in);
    /* Closing a descriptor only read from cannot lose data; its status adds nothing. */
    (void)close(s.fd);
    return rc;
}

/* ---- IDX handles --------------------------------------------------------------- */

int vib_idx_load(const char *path, vib_idx **out)
{
    static const char fn[] = "vib_idx_load";
    TRY(VIBI_CHECK_PTRS(fn, "path out", path, out));
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
    void *p[3];
    vib_dataset *d = NULL;
    if (vibi_mul_size(n, dim, &values) && vibi_mul_size(values, sizeof(float), &ibytes) &&
        vibi_mul_size(n, sizeof(int32_t), &lbytes))
        d = vibi_alloc_parts(3, (const size_t[]){sizeof(vib_dataset), ibytes, lbytes}, p);
    if (d == NULL)
        return vibi_fail(VIB_ERR_NOMEM, "%s: cannot allocate %zu items of %zu values", fn, n,
                         dim);
    d->n = n;
    d->dim = dim;
    d->classes = 0;
    d->images = p[1];
    d->labels = p[2];
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
    TRY(dataset_alloc(fn, n, img->count / n, &d));
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
    TRY(VIBI_CHECK_PTRS(fn, "images_path labels_path out", images_path, labels_path, out));
    TRY(check_range(fn, lo, hi));
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
    TRY(VIBI_CHECK_PTRS(fn, "dir split out", dir, split, out));
    const bool train = strcmp(split, "train") == 0;
    if (!train && strcmp(split, "t10k") != 0)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: split \"%.64s\" is not \"train\" or \"t10k\"",
                         fn, split);
    TRY(check_range(fn, lo, hi));
    char *images = NULL, *labels = NULL;
    int rc = find_split_file(fn, dir, train ? "train-images-idx3-ubyte" : "t10k-images-idx3-ubyte",
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
    TRY(VIBI_CHECK_PTRS(fn, "src out", src, out));
    if (count == 0)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: count is 0 (a dataset holds at least one item)",
                         fn);
    if (first > src->n || count > src->n - first)
        return vibi_fail(VIB_ERR_INVALID_ARG,
                         "%s: items [%zu, %zu + %zu) are outside the dataset's %zu items", fn,
                         first, first, count, src->n);
    vib_dataset *d;
    TRY(dataset_alloc(fn, count, src->dim, &d));
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
