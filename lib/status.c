/* status.c - version getters, status strings and the thread-local error detail. */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define VIB_STR2(x) #x
#define VIB_STR(x) VIB_STR2(x)

/* Each thread keeps its own detail, so concurrent callers on distinct handles never
 * read one another's messages; no lock is needed. */
static _Thread_local char last_error[512];

uint32_t vib_version_number(void)
{
    return VIB_VERSION_NUMBER;
}

const char *vib_version_string(void)
{
    return VIB_STR(VIB_VERSION_MAJOR) "." VIB_STR(VIB_VERSION_MINOR) "." VIB_STR(
        VIB_VERSION_PATCH);
}

const char *vib_status_string(int status)
{
    switch (status) {
    case VIB_OK: return "ok";
    case VIB_ERR_INVALID_ARG: return "invalid argument";
    case VIB_ERR_NOMEM: return "out of memory";
    case VIB_ERR_IO: return "input/output error";
    case VIB_ERR_FORMAT: return "bad format";
    case VIB_ERR_NUMERIC: return "numeric error";
    default: return "unknown status";
    }
}

const char *vib_last_error(void)
{
    return last_error;
}

int vibi_fail(int status, const char *fmt, ...)
{
    /* Formatted aside first: an argument may be vib_last_error() itself (a caller
     * wrapping an inner failure's reason), and vsnprintf's source and destination must
     * not overlap. */
    char msg[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    memcpy(last_error, msg, sizeof last_error);
    return status;
}

int vibi_check_ptr(const char *fn, const char *what, const void *p)
{
    if (p == NULL)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: %s is NULL", fn, what);
    return VIB_OK;
}

int vibi_check_ptrs(const char *fn, const char *names, size_t n, const void *const *ptrs)
{
    for (size_t i = 0; i < n; i++) {
        const size_t len = strcspn(names, " ");
        if (ptrs[i] == NULL)
            return vibi_fail(VIB_ERR_INVALID_ARG, "%s: %.*s is NULL", fn, (int)len, names);
        names += len + (names[len] == ' ');
    }
    return VIB_OK;
}

/* The first x[i] that is not finite (first_bad_finite) or not a finite positive value
 * (first_bad_positive), else n: vector scans, compiled per instruction set. */
VIB_CLONES static size_t first_bad_finite(size_t n, const float *x)
{
    size_t i;
    VIBI_FIND_FIRST(i, n, j, !(fabsf(x[j]) <= FLT_MAX));
    return i;
}

VIB_CLONES static size_t first_bad_positive(size_t n, const float *x)
{
    size_t i;
    VIBI_FIND_FIRST(i, n, j, !((x[j] > 0.0f) & (x[j] <= FLT_MAX)));
    return i;
}

int vibi_check_finite(const char *fn, const char *what, size_t n, const float *x)
{
    const size_t i = first_bad_finite(n, x);
    if (i < n)
        return vibi_fail(VIB_ERR_NUMERIC, "%s: %s[%zu] = %g is not finite", fn, what, i,
                         (double)x[i]);
    return VIB_OK;
}

int vibi_check_positive(const char *fn, const char *what, size_t n, const float *x)
{
    const size_t i = first_bad_positive(n, x);
    if (i < n && !isfinite(x[i]))
        return vibi_fail(VIB_ERR_NUMERIC, "%s: %s[%zu] = %g is not finite", fn, what, i,
                         (double)x[i]);
    if (i < n)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: %s[%zu] = %g is not positive", fn, what, i,
                         (double)x[i]);
    return VIB_OK;
}

int vibi_check_labels(const char *fn, size_t rows, size_t classes, const int32_t *labels)
{
    for (size_t r = 0; r < rows; r++)
        if (labels[r] < 0 || (size_t)labels[r] >= classes)
            return vibi_fail(VIB_ERR_INVALID_ARG, "%s: labels[%zu] = %d is outside [0, %zu)",
                             fn, r, (int)labels[r], classes);
    return VIB_OK;
}
