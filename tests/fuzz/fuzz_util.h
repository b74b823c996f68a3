/* fuzz_util.h - what the libFuzzer targets in tests/fuzz/ share: a file per process to
 * hand the library the bytes under test, and the checks every failed load must pass.
 * A target's oracle failing calls fuzz_fail, which prints why and aborts: libFuzzer
 * then saves the input as a crash. */
#ifndef FUZZ_UTIL_H
#define FUZZ_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "vib.h"

/* Where a failed oracle is told: a copy of stderr made before main, since libFuzzer's
 * -close_fd_mask=2 (which mutes the library's and the parser's messages) closes stderr
 * itself. */
static int fuzz_report_fd = 2;
__attribute__((constructor)) static void fuzz_keep_stderr(void)
{
    const int fd = dup(2);
    if (fd >= 0)
        fuzz_report_fd = fd;
}

static void fuzz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fuzz_fail(const char *fmt, ...)
{
    char msg[1024];
    int len = snprintf(msg, sizeof msg, "fuzz oracle: ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + len, sizeof msg - (size_t)len - 1, fmt, ap);
    va_end(ap);
    len = (int)strlen(msg);
    msg[len++] = '\n';
    if (write(fuzz_report_fd, msg, (size_t)len) < 0)
        (void)0; /* nowhere left to say it: the abort still marks the input */
    abort();
}

/* The path of this process's scratch file `name` (in /dev/shm when there is one, so the
 * writes stay in memory). */
static const char *fuzz_path(const char *name)
{
    static char buf[4][256];
    static int next;
    char *p = buf[next++ & 3];
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(p, 256, "%s/vib_fuzz_%ld_%s", dir, (long)getpid(), name);
    return p;
}

/* Write n bytes to path (replacing it). */
static void fuzz_write(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        fuzz_fail("cannot create %s", path);
    if (n > 0 && fwrite(data, 1, n, f) != n)
        fuzz_fail("cannot write %s", path);
    if (fclose(f) != 0)
        fuzz_fail("cannot close %s", path);
}

/* A whole file's bytes (malloc'd; *n its length). */
static unsigned char *fuzz_read(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fuzz_fail("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    const long len = ftell(f);
    rewind(f);
    unsigned char *b = malloc((size_t)len + 1);
    if (b == NULL || fread(b, 1, (size_t)len, f) != (size_t)len)
        fuzz_fail("cannot read %s", path);
    fclose(f);
    *n = (size_t)len;
    return b;
}

/* A failed load: a status of `allowed` (a bit per -status), the output pointer as it was,
 * and a message that names the file. */
static void fuzz_failed_load(const char *what, int rc, unsigned allowed, const void *out,
                             const void *was, const char *path)
{
    if (rc >= 0 || -rc >= 32 || ((allowed >> -rc) & 1u) == 0)
        fuzz_fail("%s: unexpected status %d (%s): %s", what, rc, vib_status_string(rc),
                  vib_last_error());
    if (out != was)
        fuzz_fail("%s failed (%d) but wrote its output pointer", what, rc);
    if (strstr(vib_last_error(), path) == NULL)
        fuzz_fail("%s: the message does not name the file: %s", what, vib_last_error());
}

#define FUZZ_ALLOW(status) (1u << -(status))

/* Re-seal a model file or a checkpoint: its CRC-32 (little-endian, the last 4 bytes)
 * recomputed over the bytes before it, and, in a checkpoint ("VIBCKPT1", the model
 * part's length at byte 16, the model file from byte 24), the embedded model file's own
 * CRC first, so that mutations reach the field checks behind both. */
static void fuzz_reseal_one(unsigned char *b, size_t n)
{
    if (n < 4)
        return;
    const uLong crc = crc32(crc32(0L, Z_NULL, 0), b, (uInt)(n - 4));
    for (int i = 0; i < 4; i++)
        b[n - 4 + i] = (unsigned char)(crc >> (8 * i));
}

static void fuzz_reseal(unsigned char *b, size_t n)
{
    if (n >= 24 + 4 && memcmp(b, "VIBCKPT1", 8) == 0) {
        uint64_t mlen = 0;
        for (int i = 0; i < 8; i++)
            mlen |= (uint64_t)b[16 + i] << (8 * i);
        if (mlen >= 4 && mlen <= n - 24 - 4)
            fuzz_reseal_one(b + 24, (size_t)mlen);
    }
    fuzz_reseal_one(b, n);
}

/* The file under test: the input after its mode byte, re-sealed when the mode's bit 0 is
 * set (fuzz_reseal), written to path; returns its bytes (malloc'd) and length. */
static unsigned char *fuzz_file(const uint8_t *data, size_t size, const char *path, size_t *n)
{
    *n = size - 1;
    unsigned char *file = malloc(*n + 1);
    if (file == NULL)
        fuzz_fail("out of memory");
    memcpy(file, data + 1, *n);
    if (data[0] & 1)
        fuzz_reseal(file, *n);
    fuzz_write(path, file, *n);
    return file;
}

#endif
