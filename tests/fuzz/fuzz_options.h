/* fuzz_options.h - what the option-parsing targets share (fuzz_options*.c). A target
 * defines FUZZ_PROGRAM (the example's source, relative to this directory) and includes
 * this header, which includes that source with its main renamed and with die() and
 * --help returning here instead of ending the process (EXAMPLE_EXIT), then gives the
 * helpers below, which use the program's `options` and parse_args(). */
#ifndef FUZZ_OPTIONS_H
#define FUZZ_OPTIONS_H

#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>

static jmp_buf fuzz_exit;
#define EXAMPLE_EXIT(status) longjmp(fuzz_exit, 1 + (status))
#define main fuzz_program_main
#include FUZZ_PROGRAM
#undef main

#include "fuzz_util.h"

enum { FUZZ_MAX_ARGS = 40 };

/* The command line in the input: arguments separated by NUL bytes, after argv[0]
 * (`name`); *copy holds the strings (free it). */
static int fuzz_argv(const uint8_t *data, size_t size, const char *name, char **argv,
                     char **copy)
{
    *copy = malloc(size + 1);
    if (*copy == NULL)
        fuzz_fail("out of memory");
    memcpy(*copy, data, size);
    (*copy)[size] = '\0';
    int argc = 0;
    argv[argc++] = (char *)name;
    for (char *p = *copy; argc <= FUZZ_MAX_ARGS && p <= *copy + size;) {
        argv[argc++] = p;
        p += strlen(p) + 1;
    }
    argv[argc] = NULL;
    return argc;
}

/* parse_args on argc, argv: 0 and *o when it accepted the line; else 1 + the status it
 * ended with, which must be a usage error (2) or --help (0). */
static int fuzz_parse(int argc, char **argv, options *o)
{
    const int ended = setjmp(fuzz_exit);
    if (ended) {
        if (ended != 1 && ended != 3)
            fuzz_fail("parse_args ended with status %d", ended - 1);
        return ended;
    }
    parse_args(argc, argv, o);
    return 0;
}

/* The input's command line, parsed: argc when parse_args accepted it (*o filled, *copy
 * to free), 0 when it refused it, or the input is over 4 KiB (nothing to free). */
static int fuzz_accepted(const uint8_t *data, size_t size, const char *name, char **argv,
                         char **copy, options *o)
{
    if (size > 4096)
        return 0;
    const int argc = fuzz_argv(data, size, name, argv, copy);
    if (fuzz_parse(argc, argv, o) != 0) {
        free(*copy);
        return 0;
    }
    return argc;
}

/* The reference for parse_size's accepted strings: [ \t\n\v\f\r]*[+]?[0-9]+, its value
 * in [lo, hi]. */
static int fuzz_ref_size(const char *s, size_t lo, size_t hi, size_t *out)
{
    while (*s == ' ' || (*s >= '\t' && *s <= '\r'))
        s++;
    if (*s == '+')
        s++;
    if (*s < '0' || *s > '9')
        return 0;
    unsigned __int128 v = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        v = v * 10 + (unsigned)(*s - '0');
        if (v > (unsigned __int128)UINT64_MAX)
            return 0; /* strtoull: ERANGE */
    }
    if (*s != '\0' || v < lo || v > hi)
        return 0;
    *out = (size_t)v;
    return 1;
}

/* A size-valued option: its name, its range, and where the program keeps it. */
typedef struct {
    const char *name;
    size_t lo, hi;
    const void *field; /* a size_t, or a uint64_t with is_u64 */
    int is_u64;
} fuzz_size_option;

/* In an accepted line, every size-valued option's last value is what the reference
 * reads, and the program holds that value. `flags` lists the options that take no
 * value (every other argument of an accepted line is followed by its value). */
static void fuzz_check_sizes(int argc, char **argv, const char *const *flags, size_t n_flags,
                             const fuzz_size_option *opt, size_t n_opt)
{
    for (size_t k = 0; k < n_opt; k++) {
        const char *last = NULL;
        for (int i = 1; i < argc; i++) {
            int flag = 0;
            for (size_t f = 0; f < n_flags; f++)
                flag |= strcmp(argv[i], flags[f]) == 0;
            if (flag)
                continue;
            if (i + 1 < argc && !strcmp(argv[i], opt[k].name))
                last = argv[i + 1];
            i++;
        }
        if (last == NULL)
            continue;
        size_t want;
        if (!fuzz_ref_size(last, opt[k].lo, opt[k].hi, &want))
            fuzz_fail("%s '%s' was accepted; the reference refuses it", opt[k].name, last);
        const size_t got = opt[k].is_u64 ? (size_t)*(const uint64_t *)opt[k].field
                                         : *(const size_t *)opt[k].field;
        if (got != want)
            fuzz_fail("%s '%s' read as %zu; the reference reads %zu", opt[k].name, last, got,
                      want);
    }
}

#define FUZZ_RANGE(ok, what)                                                                \
    do {                                                                                    \
        if (!(ok))                                                                          \
            fuzz_fail("an accepted line left %s out of range", what);                       \
    } while (0)

#endif
