/* fuzz_idx.c - libFuzzer target: vib_idx_load on plain and gzip IDX files, against a
 * reference reader written here from the format's description (vib.h, "Data").
 *
 * The input's first byte picks the mode:
 *   even  the rest is the file, as it is (plain, or gzip if the mutations make one);
 *   odd   the rest is an IDX image that the harness gzips (zlib's deflate), then
 *         corrupts as the next control bytes say: cut the stream short, flip a byte of
 *         it, append a second member or stray bytes, so that mutations reach the
 *         inflater and its checks rather than dying at the gzip magic.
 * Oracle: vib_idx_load succeeds exactly when the reference accepts the bytes, with the
 * same dimensions and data; a failure is VIB_ERR_FORMAT (or VIB_ERR_NOMEM for a body
 * over 2^31 bytes, which these small inputs cannot claim past the 1032:1 bound), names
 * the file, and leaves the output pointer untouched. */
#include <zlib.h>

#include "fuzz_util.h"

/* ---- the reference -------------------------------------------------------------- */

/* The plain bytes of a gzip file (all its members, nothing after the last), through
 * zlib's inflate with gzip framing; NULL if it is not a whole gzip file. */
static unsigned char *ref_gunzip(const unsigned char *in, size_t n, size_t *out_n)
{
    size_t cap = 4096, len = 0, pos = 0;
    unsigned char *out = malloc(cap);
    if (out == NULL)
        fuzz_fail("out of memory");
    while (pos < n) { /* one member */
        if (n - pos < 2 || in[pos] != 0x1f || in[pos + 1] != 0x8b)
            goto bad;
        z_stream z = {0};
        if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
            fuzz_fail("inflateInit2");
        z.next_in = (unsigned char *)in + pos;
        z.avail_in = (uInt)(n - pos);
        int zr;
        do {
            if (len == cap) {
                cap *= 2;
                unsigned char *b = realloc(out, cap);
                if (b == NULL)
                    fuzz_fail("out of memory");
                out = b;
            }
            z.next_out = out + len;
            z.avail_out = (uInt)(cap - len);
            zr = inflate(&z, Z_NO_FLUSH);
            len = cap - z.avail_out;
        } while (zr == Z_OK);
        const size_t used = (n - pos) - z.avail_in;
        inflateEnd(&z);
        if (zr != Z_STREAM_END)
            goto bad;
        pos += used;
    }
    *out_n = len;
    return out;
bad:
    free(out);
    return NULL;
}

typedef struct {
    size_t ndim, dims[255], count;
    const unsigned char *data;
} ref_idx;

/* An IDX image: 0 0 0x08 ndim (1..255), ndim big-endian u32 sizes (none 0), then exactly
 * their product of bytes. */
static int ref_parse(const unsigned char *b, size_t n, ref_idx *r)
{
    if (n < 4 || b[0] != 0 || b[1] != 0 || b[2] != 0x08 || b[3] == 0)
        return 0;
    r->ndim = b[3];
    if (n < 4 + 4 * r->ndim)
        return 0;
    unsigned __int128 count = 1;
    for (size_t k = 0; k < r->ndim; k++) {
        const unsigned char *d = b + 4 + 4 * k;
        r->dims[k] = (size_t)d[0] << 24 | (size_t)d[1] << 16 | (size_t)d[2] << 8 | d[3];
        if (r->dims[k] == 0)
            return 0;
        count *= r->dims[k];
        if (count > SIZE_MAX)
            return 0;
    }
    if ((unsigned __int128)(n - 4 - 4 * r->ndim) != count)
        return 0;
    r->count = (size_t)count;
    r->data = b + 4 + 4 * r->ndim;
    return 1;
}

/* ---- the harness ---------------------------------------------------------------- */

/* deflate src into a gzip member (malloc'd). */
static unsigned char *gzip_bytes(const unsigned char *src, size_t n, size_t *out_n)
{
    z_stream z = {0};
    if (deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        fuzz_fail("deflateInit2");
    const size_t cap = deflateBound(&z, (uLong)n) + 16;
    unsigned char *out = malloc(cap);
    if (out == NULL)
        fuzz_fail("out of memory");
    z.next_in = (unsigned char *)src;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END)
        fuzz_fail("deflate");
    *out_n = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *path = fuzz_path("idx");
    unsigned char *file = NULL;
    size_t file_n = 0;
    if ((data[0] & 1) == 0 || size < 7) {
        file_n = size - 1;
        file = malloc(file_n + 1);
        memcpy(file, data + 1, file_n);
    } else {
        /* control: cut (2 bytes: keep that many of the stream, 0 = all), flip (2 bytes:
         * position, 0 = none), then what to append (a second member, stray bytes) */
        const size_t cut = (size_t)data[1] << 8 | data[2], flip = (size_t)data[3] << 8 | data[4];
        const unsigned tail = data[5] % 4, flip_xor = data[6] | 1;
        const unsigned char *image = data + 7;
        const size_t image_n = size - 7;
        size_t gz_n;
        unsigned char *gz = gzip_bytes(image, image_n, &gz_n);
        if (cut > 0 && cut < gz_n)
            gz_n = cut;
        if (flip > 0 && flip < gz_n)
            gz[flip] ^= (unsigned char)flip_xor;
        size_t extra_n = 0;
        unsigned char *extra = NULL;
        if (tail == 1) /* a second member: the image's last half, gzipped */
            extra = gzip_bytes(image + image_n / 2, image_n - image_n / 2, &extra_n);
        else if (tail == 2) { /* stray bytes after the stream */
            extra_n = 3;
            extra = malloc(3);
            memcpy(extra, "\x00\x1f\x00", 3);
        }
        file_n = gz_n + extra_n;
        file = malloc(file_n + 1);
        memcpy(file, gz, gz_n);
        if (extra_n)
            memcpy(file + gz_n, extra, extra_n);
        free(gz);
        free(extra);
    }
    fuzz_write(path, file, file_n);

    /* the reference's verdict */
    ref_idx want;
    unsigned char *plain = NULL;
    size_t plain_n = 0;
    int ok;
    if (file_n >= 2 && file[0] == 0x1f && file[1] == 0x8b) {
        plain = ref_gunzip(file, file_n, &plain_n);
        ok = plain != NULL && ref_parse(plain, plain_n, &want);
    } else {
        ok = ref_parse(file, file_n, &want);
    }

    vib_idx *const was = (vib_idx *)(uintptr_t)0x1d1d;
    vib_idx *idx = was;
    const int rc = vib_idx_load(path, &idx);
    if (rc == VIB_OK) {
        if (!ok)
            fuzz_fail("vib_idx_load accepted what the reference refuses (%zu bytes)", file_n);
        if (vib_idx_ndim(idx) != want.ndim || vib_idx_count(idx) != want.count)
            fuzz_fail("vib_idx_load: %zu dimensions, %zu values; the reference %zu, %zu",
                      vib_idx_ndim(idx), vib_idx_count(idx), want.ndim, want.count);
        for (size_t k = 0; k < want.ndim; k++)
            if (vib_idx_dim(idx, k) != want.dims[k])
                fuzz_fail("vib_idx_load: dimension %zu is %zu, the reference %zu", k,
                          vib_idx_dim(idx, k), want.dims[k]);
        if (memcmp(vib_idx_data(idx), want.data, want.count) != 0)
            fuzz_fail("vib_idx_load: other data than the reference's");
        vib_idx_free(idx);
    } else {
        if (ok)
            fuzz_fail("vib_idx_load refused what the reference accepts: %s", vib_last_error());
        fuzz_failed_load("vib_idx_load", rc, FUZZ_ALLOW(VIB_ERR_FORMAT) | FUZZ_ALLOW(VIB_ERR_NOMEM),
                         idx, was, path);
    }
    free(plain);
    free(file);
    unlink(path);
    return 0;
}
