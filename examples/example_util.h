/*
 * example_util.h - the helpers train_mnist, beta_sweep and latent2d share: checked option
 * values, failing on a libvib status, timing, output directories, the progress bar,
 * gnuplot without a shell, the BLIS thread count, loading MNIST and labels checked
 * against the model's classes (training itself is the library's, vib_trainer_*). Kept in
 * one place so the three programs cannot drift apart; header-only with static functions
 * (as examples/vib_chain.h), public API only.
 *
 * Define EXAMPLE_NAME (the program's name, a string literal) before including: every
 * message starts with it.
 */
#ifndef EXAMPLE_UTIL_H
#define EXAMPLE_UTIL_H

#ifndef EXAMPLE_NAME
#error "define EXAMPLE_NAME before including example_util.h"
#endif

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vib.h"

/* Not every program uses every helper; this keeps -Wunused-function quiet for those. */
#define EXAMPLE_UTIL_FN static __attribute__((unused))

/* ---- option parsing: every value is checked, a bad one ends the program clearly ---- */

/* How option parsing ends the program (a usage error: 2; --help: 0). The option-parsing
 * fuzz target (tests/fuzz/fuzz_options.c) defines it to return to itself instead. */
#ifndef EXAMPLE_EXIT
#define EXAMPLE_EXIT(status) exit(status)
#endif

EXAMPLE_UTIL_FN void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* A usage error: the message on stderr, exit status 2. */
EXAMPLE_UTIL_FN void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, EXAMPLE_NAME ": ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    EXAMPLE_EXIT(2);
}

EXAMPLE_UTIL_FN size_t parse_size(const char *opt, const char *s, size_t lo, size_t hi)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    /* strtoull would quietly wrap "-1" around, after white space too (" -4" read as
     * 2^64 - 4 until the option fuzzer found it), hence the '-' test past the spaces */
    const char *sign = s;
    while (*sign == ' ' || (*sign >= '\t' && *sign <= '\r'))
        sign++;
    if (errno || *end || end == s || *sign == '-' || v < lo || v > hi)
        die("%s needs an integer in [%zu, %zu], got '%s'", opt, lo, hi, s);
    return (size_t)v;
}

EXAMPLE_UTIL_FN double parse_double(const char *opt, const char *s, double lo, double hi)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || end == s || !(v >= lo && v <= hi)) /* also rejects NaN */
        die("%s needs a number in [%g, %g], got '%s'", opt, lo, hi, s);
    return v;
}

/* argv[*i] must be one of the n options in `valued`, all of which take a value: return
 * that value and step *i past it, or die naming the unknown option or the missing value. */
EXAMPLE_UTIL_FN const char *option_value(int argc, char **argv, int *i,
                                         const char *const *valued, size_t n)
{
    const char *a = argv[*i];
    bool known = false;
    for (size_t k = 0; k < n; k++)
        known = known || strcmp(a, valued[k]) == 0;
    if (!known)
        die("unknown option '%s' (see --help)", a);
    if (*i + 1 >= argc)
        die("%s needs a value", a);
    return argv[++*i];
}

/* ---- failing, memory, time, files ------------------------------------------------- */

/* Fail with libvib's own detail. */
EXAMPLE_UTIL_FN void check(int rc, const char *what)
{
    if (rc != VIB_OK) {
        fprintf(stderr, EXAMPLE_NAME ": %s: %s (%s)\n", what, vib_last_error(),
                vib_status_string(rc));
        exit(1);
    }
}

/* A diverged run (VIB_ERR_NUMERIC from a training call: a non-finite loss, or a gradient
 * that would overflow the optimizer): where it stopped, why (`why`, the failed call's
 * message), and that nothing of the failed step was applied. */
EXAMPLE_UTIL_FN void report_divergence(const vib_trainer *t, const char *why)
{
    fflush(stdout); /* the lines so far first */
    fprintf(stderr,
            EXAMPLE_NAME ": training diverged in epoch %llu at step %llu of %llu: %s\n"
            EXAMPLE_NAME ": the model, the optimizer's state and the average (if any) are "
            "those of the last good step (%llu in all); nothing of the failed step was "
            "applied\n",
            (unsigned long long)vib_trainer_epochs_done(t) + 1,
            (unsigned long long)vib_trainer_step_in_epoch(t) + 1,
            (unsigned long long)vib_trainer_steps_per_epoch(t), why,
            (unsigned long long)vib_trainer_steps(t));
}

/* check() for a training call: a diverged run is reported as such, then exit 1. */
EXAMPLE_UTIL_FN void check_training(int rc, const vib_trainer *t)
{
    if (rc == VIB_ERR_NUMERIC) {
        report_divergence(t, vib_last_error());
        exit(1);
    }
    check(rc, "train");
}

EXAMPLE_UTIL_FN void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        fprintf(stderr, EXAMPLE_NAME ": out of memory\n");
        exit(1);
    }
    return p;
}

EXAMPLE_UTIL_FN double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Create the directories above `path` (mkdir -p of its dirname); failures surface later,
 * when the file itself is opened. */
EXAMPLE_UTIL_FN void mkdir_for(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        return;
    *slash = '\0';
    for (char *p = dir + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(dir, 0755);
            *p = '/';
        }
    mkdir(dir, 0755);
}

/* --threads N (N > 0) sets libvib's thread count; 0 keeps the library's default
 * (BLIS_NUM_THREADS, else the CPUs this process may use). Then print the backend line
 * (kernels and threads) so every log says what it ran on. */
EXAMPLE_UTIL_FN void set_threads(size_t threads)
{
    if (threads > VIB_MAX_THREADS)
        die("--threads %zu is more than %d", threads, VIB_MAX_THREADS);
    if (threads > 0)
        check(vib_set_num_threads((int)threads), "vib_set_num_threads");
    char info[256];
    vib_backend_info(info, sizeof info);
    printf("backend: %s\n", info);
}

/* The MNIST training and test sets of `dir` with pixels scaled to [lo, 1], or the
 * failing load's status (vib_last_error() says why), with nothing loaded. */
EXAMPLE_UTIL_FN int load_mnist_status(const char *dir, float lo, vib_dataset **train,
                                      vib_dataset **test)
{
    int st = vib_dataset_load_mnist(dir, "train", lo, 1.0f, train);
    if (st == VIB_OK && (st = vib_dataset_load_mnist(dir, "t10k", lo, 1.0f, test)) != VIB_OK) {
        vib_dataset_free(*train);
        *train = NULL;
    }
    return st;
}

/* load_mnist_status, and on failure say why (and how to fetch the data) and exit 1. */
EXAMPLE_UTIL_FN void load_mnist(const char *dir, float lo, vib_dataset **train, vib_dataset **test)
{
    const int st = load_mnist_status(dir, lo, train, test);
    if (st != VIB_OK) {
        fprintf(stderr, EXAMPLE_NAME ": %s\n", vib_last_error());
        if (st == VIB_ERR_IO)
            fprintf(stderr, EXAMPLE_NAME ": fetch MNIST with `make data`, or pass --data DIR\n");
        exit(1);
    }
}

/* ---- labels against the model's classes ------------------------------------------ */

/* The class of item `item` of `what` (e.g. "test set"), or exit 1 naming the item if
 * `label` is outside [0, classes): a label the model has no output for would be scored
 * as one more error without a word, and indexing a row of probabilities by it reads
 * past the row. */
EXAMPLE_UTIL_FN size_t label_class(const char *what, size_t item, int32_t label,
                                   size_t classes)
{
    if (label < 0 || (size_t)label >= classes) {
        fprintf(stderr, EXAMPLE_NAME ": %s item %zu: label %d is outside the model's %zu "
                        "classes\n", what, item, (int)label, classes);
        exit(1);
    }
    return (size_t)label;
}

/* Before any training: every label of `data` must be one of the model's `classes`, or
 * the program says how many classes the data has and exits 1 at the first label out of
 * range. `first` is the index in its file of the dataset's item 0 (a split's offset). */
EXAMPLE_UTIL_FN void check_labels(const vib_dataset *data, const char *what, size_t first,
                                  size_t classes)
{
    const size_t have = vib_dataset_classes(data);
    if (have > classes)
        fprintf(stderr, EXAMPLE_NAME ": the %s has labels up to %zu (%zu classes), the model "
                        "%zu classes\n", what, have - 1, have, classes);
    const int32_t *y = vib_dataset_labels(data);
    for (size_t i = 0; i < vib_dataset_size(data); i++)
        label_class(what, first + i, y[i], classes);
}

/* ---- small statistics ------------------------------------------------------------- */

/* H(Y) in bits of the empirical distribution of the first n labels. */
EXAMPLE_UTIL_FN double label_entropy_bits(const vib_dataset *data, size_t n)
{
    double count[256] = {0}, h = 0.0;
    for (size_t i = 0; i < n; i++)
        count[vib_dataset_labels(data)[i] & 255] += 1.0;
    for (int k = 0; k < 256; k++)
        if (count[k] > 0)
            h -= count[k] / (double)n * log2(count[k] / (double)n);
    return h;
}

/* The first index of the largest of p[0..c). */
EXAMPLE_UTIL_FN size_t argmax(const float *p, size_t c)
{
    size_t best = 0;
    for (size_t k = 1; k < c; k++)
        best = p[k] > p[best] ? k : best;
    return best;
}

/* ---- progress bar (stderr, only on a terminal) ------------------------------------ */

/* Whether to redraw now: on a terminal, at most 4 times a second, and always at the end
 * (done == total). *t is the time of the test. */
EXAMPLE_UTIL_FN bool progress_due(size_t done, size_t total, double *t)
{
    static double last;
    *t = now();
    if (!isatty(STDERR_FILENO) || (done < total && *t - last < 0.25))
        return false;
    last = *t;
    return true;
}

/* "  <label> [####      ]  40%  <tail> ", erased (clear columns) once done == total. */
EXAMPLE_UTIL_FN void progress_draw(const char *label, size_t done, size_t total,
                                   const char *tail, int clear)
{
    const int width = 30;
    int fill = (int)((double)width * (double)done / (double)total);
    fprintf(stderr, "\r  %s [%.*s%*s] %3.0f%%  %s ", label, fill,
            "##############################", width - fill, "",
            100.0 * (double)done / (double)total, tail);
    if (done == total)
        fprintf(stderr, "\r%*s\r", clear, "");
    fflush(stderr);
}

/* A trainer's callback (vib_train_callback) drawing "  <label> [###   ]  40%  <seconds>s",
 * the seconds since t0; it stops the epoch after the current step once *stop (if stop is
 * not NULL: a flag a signal handler sets) is nonzero. */
typedef struct {
    const char *label;
    double t0;
    volatile sig_atomic_t *stop;
} train_progress;

EXAMPLE_UTIL_FN int train_progress_cb(void *user, uint64_t epoch, uint64_t step,
                                      uint64_t steps, double ce, double kl, double loss)
{
    (void)epoch, (void)ce, (void)kl, (void)loss;
    const train_progress *p = user;
    const int stop = p->stop != NULL && *p->stop;
    double t;
    if (!progress_due((size_t)step, (size_t)steps, &t))
        return stop;
    char tail[32];
    snprintf(tail, sizeof tail, "%4.0fs", t - p->t0);
    progress_draw(p->label, (size_t)step, (size_t)steps, tail, 78);
    return stop;
}

/* ---- gnuplot ---------------------------------------------------------------------- */

/* Run gnuplot with argv (argv[0] "gnuplot", NULL-terminated) directly, without a shell, so
 * no path is ever interpreted; its stderr goes to /dev/null. `script` must be readable
 * (the programs run from the source tree). On any failure say so, ending with "no
 * <what>", and return false. Callers flush stdout first where the order of lines matters. */
EXAMPLE_UTIL_FN bool run_gnuplot(const char *script, char *const argv[], const char *what)
{
    if (access(script, R_OK) != 0) {
        fprintf(stderr, EXAMPLE_NAME ": %s not found (run from the source tree): no %s\n",
                script, what);
        return false;
    }
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0)
            dup2(devnull, STDERR_FILENO);
        execvp("gnuplot", argv);
        _exit(127);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
        fprintf(stderr, EXAMPLE_NAME ": could not run gnuplot: no %s\n", what);
    else if (WEXITSTATUS(status) == 127)
        fprintf(stderr, EXAMPLE_NAME ": gnuplot not found: no %s (apt-get install gnuplot-nox)\n",
                what);
    else if (WEXITSTATUS(status) != 0)
        fprintf(stderr, EXAMPLE_NAME ": gnuplot failed: no %s\n", what);
    else
        return true;
    return false;
}

#endif
