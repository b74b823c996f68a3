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

#include "vib.h"

static void fuzz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fuzz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz oracle: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
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

#endif
