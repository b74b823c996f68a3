/*
 * io.c - saving and loading a model.
 *
 * File format, versions 1 and 2, all integers and floats little-endian:
 *
 *   offset  size        field
 *   0       8           magic "VIBMODEL"
 *   8       4  u32      format version (1 or 2)
 *   12      4  u32      flags: bit 0 = deterministic, bit 1 = full covariance; others 0
 *   16      8  u64      input_dim
 *   24      8  u64      latent_dim (K)
 *   32      8  u64      classes
 *   40      8  u64      n_enc
 *   48      8  u64      n_dec
 *   56      8*n_enc     encoder hidden sizes
 *   ..      8*n_dec     decoder hidden sizes
 *   ..      4  f32      beta
 *   ..      4  f32      sigma offset
 *   ..      8  u64      seed
 *   ..      4  u32      version 2 only: training's draws per example, 1 to 1024
 *   ..      4  u32      version 2 only: its objective (VIB_OBJECTIVE_*)
 *   ..      4  u32      version 2 only: the mixture marginal's components, 0 to 1024
 *                       (0: the standard normal)
 *   ..      8  u64      number of parameters P
 *   ..      4*P f32     the flat parameter array
 *   ..      4  u32      CRC-32 (zlib's) of every byte before it
 *
 * A model with one draw, the mean objective and the standard normal marginal (every
 * model before 0.2's vib_model_set_train_samples and vib_model_create_mixture) is saved
 * as version 1, byte for byte as before, so older readers keep reading it; any other as
 * version 2. The parameter array of a model with a mixture marginal holds its blocks
 * after the head's (vib_model_block). A version 2 file that holds version
 * 1's settings is refused: each model has one file image, which load and save keep.
 *
 * Saving writes the whole image to a temporary file beside the target (mode 0666 less
 * the umask), fsyncs it,
 * renames it over the target and fsyncs the directory: a reader sees the old file or
 * the new one, never a mix. Loading checks every field before it builds anything.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "model.h"

static const char MAGIC[8] = {'V', 'I', 'B', 'M', 'O', 'D', 'E', 'L'};
enum { FORMAT_V1 = 1, FORMAT_V2 = 2, FLAG_DETERMINISTIC = 1, FLAG_FULL_COV = 2 };

/* The header's bytes after the hidden sizes: beta, offset, seed, (version 2: the draws,
 * the objective and the components,) P. */
static size_t tail_bytes(uint32_t version)
{
    return version == FORMAT_V1 ? 24 : 36;
}

/* Bytes of a file with these counts; the header up to the hidden sizes is 56 bytes. */
static uint64_t file_size(uint32_t version, uint64_t n_enc, uint64_t n_dec, uint64_t params)
{
    return 56 + 8 * (n_enc + n_dec) + tail_bytes(version) + 4 * params + 4;
}

uint64_t vibi_model_file_bytes(const vibi_arch *a)
{
    return file_size(FORMAT_V2, a->n_enc, a->n_dec, a->num_params);
}

/* The version a model is saved as: 1 unless its training settings need 2. */
static uint32_t model_version(const vib_model *m)
{
    return m->train_samples == 1 && m->objective == VIB_OBJECTIVE_MEAN && m->arch.components == 0
               ? FORMAT_V1
               : FORMAT_V2;
}

/* zlib's crc32 takes a uInt length; feed large buffers in pieces. */
uint32_t vibi_crc32(const unsigned char *p, size_t n)
{
    uLong crc = crc32(0L, Z_NULL, 0);
    while (n > 0) {
        uInt chunk = n > (1u << 30) ? (1u << 30) : (uInt)n;
        crc = crc32(crc, p, chunk);
        p += chunk;
        n -= chunk;
    }
    return (uint32_t)crc;
}

/* ---- save ----------------------------------------------------------------------- */

/* Write all of buf to fd, retrying short writes. */
static bool write_all(int fd, const unsigned char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        buf += w;
        n -= (size_t)w;
    }
    return true;
}

/* fsync the directory holding path, so the rename itself is durable. */
static void sync_dir(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY);
    if (fd >= 0) {
        (void)fsync(fd); /* best effort: some filesystems refuse fsync on directories */
        close(fd);
    }
}

int vibi_model_image(const char *fn, const vib_model *model, unsigned char **out, size_t *len)
{
    const vibi_arch *a = &model->arch;
    const size_t P = a->num_params;
    const uint32_t version = model_version(model);
    const size_t total = (size_t)file_size(version, a->n_enc, a->n_dec, P);
    const float *params = model->params;
    for (size_t i = 0; i < P; i++) /* vib_model_load refuses such a file: do not write it */
        if (!isfinite(params[i]))
            return vibi_fail(VIB_ERR_NUMERIC, "%s: parameter %zu is %g", fn, i, (double)params[i]);
    unsigned char *buf = malloc(total);
    if (buf == NULL)
        return vibi_fail(VIB_ERR_NOMEM, "%s: cannot allocate %zu bytes", fn, total);
    unsigned char *p = buf;
    memcpy(p, MAGIC, 8), p += 8;
    p = vibi_put_u32(p, version);
    p = vibi_put_u32(p, (model->deterministic ? FLAG_DETERMINISTIC : 0) |
                            (vibi_arch_full(a) ? FLAG_FULL_COV : 0));
    p = vibi_put_u64(p, a->input_dim);
    p = vibi_put_u64(p, a->k);
    p = vibi_put_u64(p, a->classes);
    p = vibi_put_u64(p, a->n_enc);
    p = vibi_put_u64(p, a->n_dec);
    for (size_t i = 0; i < a->n_enc; i++)
        p = vibi_put_u64(p, a->enc[i]);
    for (size_t i = 0; i < a->n_dec; i++)
        p = vibi_put_u64(p, a->dec[i]);
    p = vibi_put_f32(p, model->beta);
    p = vibi_put_f32(p, model->offset);
    p = vibi_put_u64(p, model->seed);
    if (version == FORMAT_V2) {
        p = vibi_put_u32(p, (uint32_t)model->train_samples); /* at most 1024 */
        p = vibi_put_u32(p, (uint32_t)model->objective);
        p = vibi_put_u32(p, (uint32_t)a->components); /* at most 1024 */
    }
    p = vibi_put_u64(p, P);
    for (size_t i = 0; i < P; i++)
        p = vibi_put_f32(p, params[i]);
    vibi_put_u32(p, vibi_crc32(buf, (size_t)(p - buf)));
    *out = buf;
    *len = total;
    return VIB_OK;
}

int vibi_write_file(const char *fn, const char *path, const unsigned char *buf, size_t len)
{
    if (strlen(path) > 4000)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: path is too long", fn);
    /* The temporary beside the target, created exclusively with mode 0666 so the
     * process's umask applies as for any new file (mkstemp would force 0600). */
    char tmp[4096 + 64];
    int fd = -1;
    for (unsigned attempt = 0; fd < 0 && attempt < 100; attempt++) {
        snprintf(tmp, sizeof tmp, "%s.tmp%ld.%u", path, (long)getpid(), attempt);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0666);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0)
        return vibi_fail(VIB_ERR_IO, "%s: %s: cannot create a temporary file: %s", fn, path,
                         strerror(errno));
    const char *failed = NULL;
    int e = 0;
    if (!write_all(fd, buf, len))
        failed = "write", e = errno ? errno : EIO;
    else if (fsync(fd) != 0)
        failed = "fsync", e = errno;
    if (close(fd) != 0 && failed == NULL)
        failed = "close", e = errno;
    if (failed == NULL && rename(tmp, path) != 0)
        failed = "rename", e = errno;
    if (failed != NULL) {
        unlink(tmp);
        return vibi_fail(VIB_ERR_IO, "%s: %s: %s failed: %s", fn, path, failed, strerror(e));
    }
    sync_dir(path);
    return VIB_OK;
}

int vib_model_save(const vib_model *model, const char *path)
{
    static const char fn[] = "vib_model_save";
    TRY(VIBI_CHECK_PTRS(fn, "model path", model, path));
    if (strlen(path) > 4000)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: path is too long", fn);
    unsigned char *buf;
    size_t len;
    TRY(vibi_model_image(fn, model, &buf, &len));
    const int rc = vibi_write_file(fn, path, buf, len);
    free(buf);
    return rc;
}

/* ---- load ----------------------------------------------------------------------- */

/* The longest header a loadable file has: 56 bytes, 8 per hidden size (at most 64 + 64
 * of them), then beta, offset, seed, version 2's draws, objective and components, and P. */
#define HEADER_MAX (56 + 8 * (64 + 64) + 36)

/* The checks parse() begins with, which need only the header: `head` holds its first
 * head_len bytes, all the file has up to HEADER_MAX, and file_len is the file's length.
 * Run before the file is read whole, so a large foreign file is refused from its first
 * 8 bytes and a model file padded or cut from its header; in parse()'s order and words,
 * so what a file is told does not depend on which of the two refuses it. */
static int check_header(const char *fn, const char *path, const unsigned char *head,
                        size_t head_len, uint64_t file_len)
{
    if (head_len < 8 || memcmp(head, MAGIC, 8) != 0)
        return vibi_fail(VIB_ERR_FORMAT, "%s: %s: not a libvib model (bad magic)", fn, path);
    if (file_len < 56)
        return vibi_fail(VIB_ERR_FORMAT, "%s: %s: truncated header (%llu bytes)", fn, path,
                   (unsigned long long)file_len);
    const uint32_t version = vibi_get_u32(head + 8), flags = vibi_get_u32(head + 12);
    if (version != FORMAT_V1 && version != FORMAT_V2)
        return vibi_fail(VIB_ERR_FORMAT, "%s: %s: format version %u, this libvib reads versions 1 and 2",
                         fn, path, version);
    if (flags & ~(uint32_t)(FLAG_DETERMINISTIC | FLAG_FULL_COV))
        return vibi_fail(VIB_ERR_FORMAT, "%s: %s: unknown flags 0x%x", fn, path, flags);
    const uint64_t n_enc = vibi_get_u64(head + 40), n_dec = vibi_get_u64(head + 48);
    /* The layer counts bound where the fields after them sit: only they are checked
     * before the length (every other limit is vibi_arch_check's, in parse). */
    if (n_enc > VIBI_MAX_HIDDEN || n_dec > VIBI_MAX_HIDDEN)
        return vibi_fail(VIB_ERR_FORMAT, "%s: %s: %llu encoder and %llu decoder layers: corrupted", fn, path,
                   (unsigned long long)n_enc, (unsigned long long)n_dec);
    const size_t hdr = 56 + 8 * (size_t)(n_enc + n_dec) + tail_bytes(version); /* <= HEADER_MAX */
    if (file_len < hdr + 4)
        return vibi_fail(VIB_ERR_FORMAT, "%s: %s: truncated header (%llu bytes)", fn, path,
                   (unsigned long long)file_len);
    const uint64_t P = vibi_get_u64(head + hdr - 8);
    if (P > ((uint64_t)1 << 40) || file_size(version, n_enc, n_dec, P) != file_len)
        return vibi_fail(VIB_ERR_FORMAT, "%s: %s: truncated or padded: %llu bytes, the header promises %llu", fn,
                   path, (unsigned long long)file_len,
                   P > ((uint64_t)1 << 40) ? 0ULL
                                           : (unsigned long long)file_size(version, n_enc, n_dec, P));
    return VIB_OK;
}

/* Read the model file at path into *buf (caller frees) of *len bytes. Only a regular
 * file, opened without blocking on a FIFO (vibi_open_regular). Its magic is read and
 * checked first, then its header against its length (check_header), and only then is
 * the whole file allocated, of at most `cap` bytes: neither a device, nor a large
 * foreign file, nor a forged header makes the reader grow beyond the file's true
 * size. A checkpoint holds a model file after its header: that part is read alike, as a
 * file of its own, and the rest of the checkpoint is not read. */
static int read_file(const char *fn, const char *path, size_t cap, unsigned char **buf,
                     size_t *len)
{
    int fd;
    uint64_t size;
    TRY(vibi_open_regular(fn, path, &fd, &size));
    unsigned char head[HEADER_MAX];
    size_t got, rest = 0;
    /* the magic alone first: a foreign file costs 8 bytes of reading */
    int rc = vibi_read_fd(fn, path, fd, head, 8, &got);
    bool ckpt = false;
    if (rc == VIB_OK && got == 8 && memcmp(head, VIBI_CKPT_MAGIC, 8) == 0) {
        unsigned char ch[VIBI_CKPT_HEAD];
        memcpy(ch, head, 8);
        uint64_t m = 0;
        rc = vibi_read_fd(fn, path, fd, ch + 8, VIBI_CKPT_HEAD - 8, &got);
        if (rc == VIB_OK)
            rc = vibi_checkpoint_header(fn, path, ch, 8 + got, size, &m);
        if (rc == VIB_OK)
            rc = vibi_read_fd(fn, path, fd, head, 8, &got);
        size = m;
        ckpt = true;
    }
    const size_t head_want = size < HEADER_MAX ? (size_t)size : HEADER_MAX;
    if (rc == VIB_OK && got == 8 && memcmp(head, MAGIC, 8) == 0 && head_want > 8)
        rc = vibi_read_fd(fn, path, fd, head + 8, head_want - 8, &rest);
    const size_t head_len = got + rest;
    /* a file that shrank since fstat is as long as what was read of it */
    const uint64_t file_len = head_len < head_want ? head_len : size;
    if (rc == VIB_OK)
        rc = check_header(fn, path, head, head_len, file_len);
    unsigned char *b = NULL;
    if (rc == VIB_OK && file_len > (uint64_t)cap)
        rc = vibi_fail(VIB_ERR_FORMAT, "%s: %s: %llu bytes is larger than any model", fn, path,
                       (unsigned long long)file_len);
    else if (rc == VIB_OK && (b = malloc((size_t)file_len + 1)) == NULL)
        rc = vibi_fail(VIB_ERR_NOMEM, "%s: %s: cannot allocate %llu bytes", fn, path,
                       (unsigned long long)file_len + 1);
    if (rc == VIB_OK) {
        memcpy(b, head, head_len);
        /* one byte more than the length: a file that grew meanwhile reads as padded (a
         * checkpoint's model part is followed by the rest of the checkpoint) */
        const size_t more = (size_t)file_len + (ckpt ? 0 : 1) - head_len;
        rc = vibi_read_fd(fn, path, fd, b + head_len, more, &got);
        *len = head_len + got;
    }
    (void)close(fd); /* only read from: its status adds nothing */
    if (rc != VIB_OK) {
        free(b);
        return rc;
    }
    *buf = b;
    return VIB_OK;
}

int vibi_model_parse(const char *fn, const char *path, const unsigned char *b, size_t len,
                     vib_model **out)
{
    /* the header again, against the length read (the file may have changed since) */
    TRY(check_header(fn, path, b, len, len));
    const uint32_t version = vibi_get_u32(b + 8), flags = vibi_get_u32(b + 12);
    const uint64_t n_enc = vibi_get_u64(b + 40), n_dec = vibi_get_u64(b + 48);
    const size_t hdr = 56 + 8 * (size_t)(n_enc + n_dec) + tail_bytes(version);
    const uint64_t P = vibi_get_u64(b + hdr - 8);
    uint32_t stored = vibi_get_u32(b + len - 4), actual = vibi_crc32(b, len - 4);
    if (stored != actual)
        return vibi_fail(VIB_ERR_FORMAT, "%s: %s: CRC mismatch (stored %08x, computed %08x): corrupted", fn, path,
                   stored, actual);
    /* Sizes beyond size_t are clamped to SIZE_MAX, which the check refuses as it
     * refuses any size past its limit. */
#define SIZE_OF(v) ((v) > SIZE_MAX ? SIZE_MAX : (size_t)(v))
    vibi_arch a = {.input_dim = SIZE_OF(vibi_get_u64(b + 16)), .k = SIZE_OF(vibi_get_u64(b + 24)),
                   .classes = SIZE_OF(vibi_get_u64(b + 32)), .n_enc = (size_t)n_enc,
                   .n_dec = (size_t)n_dec,
                   .flags = (flags & FLAG_FULL_COV) ? VIB_MODEL_FULL_COV : 0};
    for (size_t i = 0; i < a.n_enc + a.n_dec; i++) {
        const size_t v = SIZE_OF(vibi_get_u64(b + 56 + 8 * i));
        if (i < a.n_enc)
            a.enc[i] = v;
        else
            a.dec[i - a.n_enc] = v;
    }
#undef SIZE_OF
    const unsigned char *p = b + 56 + 8 * (n_enc + n_dec);
    /* version 2's components (checked by vibi_arch_check: the parameter count depends
     * on them) */
    const uint32_t components = version == FORMAT_V2 ? vibi_get_u32(p + 24) : 0;
    a.components = components;
    char who[4200];
    snprintf(who, sizeof who, "%s: %s: impossible architecture", fn, path);
    TRY(vibi_arch_check(who, true, &a));
    if (a.num_params != P)
        return vibi_fail(VIB_ERR_FORMAT, "%s: %s: %llu parameters, the architecture has %zu", fn, path,
                   (unsigned long long)P, a.num_params);
    float beta = vibi_get_f32(p), offset = vibi_get_f32(p + 4);
    uint64_t seed = vibi_get_u64(p + 8);
    if (!isfinite(beta) || beta < 0.0f || !isfinite(offset))
        return vibi_fail(VIB_ERR_FORMAT, "%s: %s: beta %g or offset %g invalid", fn, path, (double)beta, (double)offset);
    uint32_t samples = 1, objective = VIB_OBJECTIVE_MEAN;
    if (version == FORMAT_V2) {
        samples = vibi_get_u32(p + 16), objective = vibi_get_u32(p + 20);
        if (samples == 0 || samples > VIBI_MAX_TRAIN_SAMPLES ||
            (objective != VIB_OBJECTIVE_MEAN && objective != VIB_OBJECTIVE_LOGMEANEXP))
            return vibi_fail(VIB_ERR_FORMAT, "%s: %s: %u training draws, objective %u: invalid", fn,
                             path, samples, objective);
        if (samples == 1 && objective == VIB_OBJECTIVE_MEAN && components == 0)
            return vibi_fail(VIB_ERR_FORMAT, "%s: %s: a version 2 file with version 1's training "
                             "settings: not written by libvib", fn, path);
    }
    const unsigned char *q = b + hdr;
    for (size_t i = 0; i < P; i++)
        if (!isfinite(vibi_get_f32(q + 4 * i)))
            return vibi_fail(VIB_ERR_FORMAT, "%s: %s: parameter %zu is not finite", fn, path, i);
    /* Allocated, not initialized: the weights are the file's. */
    vib_model *m;
    TRY(vibi_model_alloc(fn, &a, seed, &m));
    for (size_t i = 0; i < P; i++)
        m->params[i] = vibi_get_f32(q + 4 * i);
    m->beta = beta;
    m->offset = offset;
    m->deterministic = (flags & FLAG_DETERMINISTIC) ? 1 : 0;
    m->train_samples = samples;
    m->objective = (int)objective;
    *out = m;
    return VIB_OK;
}

int vib_model_load(const char *path, vib_model **out)
{
    static const char fn[] = "vib_model_load";
    TRY(VIBI_CHECK_PTRS(fn, "path out", path, out));
    unsigned char *buf = NULL;
    size_t len = 0;
    TRY(read_file(fn, path, (size_t)1 << 34, &buf, &len));
    const int rc = vibi_model_parse(fn, path, buf, len, out);
    free(buf);
    return rc;
}
