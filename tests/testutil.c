/* testutil.c - finite-difference, fill, value and failure-checking helpers shared by the
 * suites, and the files they write and read (see tests.h for what each is for). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <float.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "tests.h"

double fd_partial(scalar_fn f, void *ctx, float *x, size_t i, double h)
{
    const float saved = x[i];
    /* Step by what float can represent, and divide by the step actually taken. */
    const float xp = (float)(saved + h), xm = (float)(saved - h);
    x[i] = xp;
    double fp = f(ctx);
    x[i] = xm;
    double fm = f(ctx);
    x[i] = saved;
    return (fp - fm) / ((double)xp - (double)xm);
}

void check_gradient(const char *what, scalar_fn f, void *ctx, float *x, size_t n,
                    const float *analytic, double h, double rtol, double atol)
{
    /* A ReLU's kink within h of the point bends a central difference away from the
     * one-sided slopes, so a mismatch is retried with h/4 and h/16, which step past a
     * kink farther than that; a wrong gradient differs at every step and still fails. */
    for (size_t i = 0; i < n; i++) {
        const double ana = analytic[i];
        double num = 0.0, hk = h;
        bool ok = false;
        for (int k = 0; k < 3 && !ok; k++, hk /= 4.0) {
            num = fd_partial(f, ctx, x, i, hk);
            ok = fabs(ana - num) <= atol + rtol * fmax(fabs(ana), fabs(num));
        }
        ck_assert_msg(ok, "%s[%zu]: analytic %.8g vs finite difference %.8g (step %g)", what,
                      i, ana, num, hk * 4.0);
    }
}

void fill_normal(uint64_t seed, size_t n, float mean, float std, float *out)
{
    vib_rng *rng = NULL;
    ck_assert_ok(vib_rng_create(seed, &rng));
    ck_assert_ok(vib_rng_normal(rng, n, mean, std, out));
    vib_rng_free(rng);
}

double dot_w(const float *w, const float *y, size_t n)
{
    double acc = 0.0;
    for (size_t i = 0; i < n; i++)
        acc += (double)w[i] * (double)y[i];
    return acc;
}

void fill_const(float *x, size_t n, float v)
{
    for (size_t i = 0; i < n; i++)
        x[i] = v;
}

void check_gradient_rel(const char *what, scalar_fn f, void *ctx, float *x, size_t n,
                        const float *analytic, double h_rel, double rtol, double atol)
{
    char label[96];
    for (size_t i = 0; i < n; i++) {
        snprintf(label, sizeof label, "%s[%zu] (x = %g)", what, i, (double)x[i]);
        double h = h_rel * fmax(1.0, fabs((double)x[i]));
        /* check_gradient perturbs x[0] of the pointer it gets, i.e. our x[i]. */
        check_gradient(label, f, ctx, x + i, 1, analytic + i, h, rtol, atol);
    }
}

void check_accumulated(const char *what, const float *result, const float *prefill,
                       const float *g, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double want = (double)prefill[i] + (double)g[i];
        double tol = 2.0 * FLT_EPSILON * (fabs((double)prefill[i]) + fabs((double)g[i]));
        ck_assert_msg(fabs((double)result[i] - want) <= tol,
                      "%s[%zu]: prefill %.9g + gradient %.9g gave %.9g (not accumulated)",
                      what, i, (double)prefill[i], (double)g[i], (double)result[i]);
    }
}

void check_close(const char *what, size_t i, double got, double want, double rtol,
                 double atol)
{
    ck_assert_msg(isfinite(got), "%s[%zu] = %g is not finite", what, i, got);
    ck_assert_msg(fabs(got - want) <= atol + rtol * fabs(want),
                  "%s[%zu]: got %.10g, reference %.10g", what, i, got, want);
}

void check_rel(const char *what, size_t i, double got, double want)
{
    ck_assert_msg(fabs(got - want) <= 1e-6 * fabs(want) + 1e-30,
                  "%s[%zu]: %.9g, closed form %.9g", what, i, got, want);
}

void arm_outputs(const outbuf *outs, size_t count)
{
    for (size_t b = 0; b < count; b++)
        if (outs[b].expect == NULL)
            memset(outs[b].p, SENTINEL_BYTE, outs[b].bytes);
}

void expect_untouched(const char *call, const outbuf *outs, size_t count)
{
    for (size_t b = 0; b < count; b++) {
        const unsigned char *p = outs[b].p, *e = outs[b].expect;
        for (size_t i = 0; i < outs[b].bytes; i++)
            ck_assert_msg(p[i] == (e != NULL ? e[i] : SENTINEL_BYTE),
                          "%s failed but wrote %s (byte %zu)", call, outs[b].name, i);
    }
}

void plant_marker(void)
{
    (void)vibi_fail(VIB_ERR_IO, "%s", "<test marker: no detail raised>");
}

/* has_word's notion of an identifier character: what the argument names in a detail use. */
static int is_ident_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_';
}

int has_word(const char *s, const char *word)
{
    size_t len = strlen(word);
    for (const char *p = strstr(s, word); p != NULL; p = strstr(p + 1, word)) {
        int left = p == s || !is_ident_char(p[-1]);
        int right = !is_ident_char(p[len]);
        if (left && right)
            return 1;
    }
    return 0;
}

void check_detail(const char *call, const char *fn, const char *what)
{
    const char *msg = vib_last_error();
    size_t len = strlen(fn);
    ck_assert_msg(strncmp(msg, fn, len) == 0 && msg[len] == ':',
                  "%s: detail \"%s\" does not start with \"%s:\"", call, msg, fn);
    if (what != NULL)
        ck_assert_msg(has_word(msg + len + 1, what), "%s: detail \"%s\" does not name %s",
                      call, msg, what);
}

int call_in_child(int (*call)(const void *arg), const void *arg, unsigned seconds,
                  int *status, char *detail, size_t detail_size)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    const pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* The child: SIGALRM's default action ends it if the call blocks. The handler
         * inherited from Check's runner would kill the whole test's process group
         * instead, so the default is restored first. The child reports through the
         * pipe and leaves by _exit, running none of the parent's atexit handlers
         * (Check's, the sanitizers'). */
        close(fds[0]);
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        sigemptyset(&dfl.sa_mask);
        sigset_t alrm;
        sigemptyset(&alrm);
        sigaddset(&alrm, SIGALRM);
        if (sigaction(SIGALRM, &dfl, NULL) != 0 || sigprocmask(SIG_UNBLOCK, &alrm, NULL) != 0)
            _exit(2);
        alarm(seconds);
        const int rc = call(arg);
        const char *msg = vib_last_error();
        ssize_t w = write(fds[1], &rc, sizeof rc);
        if (w == (ssize_t)sizeof rc)
            w = write(fds[1], msg, strlen(msg));
        _exit(w < 0 ? 1 : 0);
    }
    close(fds[1]);
    int wstatus = 0;
    pid_t done;
    while ((done = waitpid(pid, &wstatus, 0)) < 0 && errno == EINTR)
        ;
    ck_assert_int_eq(done, pid);
    if (WIFSIGNALED(wstatus)) {
        close(fds[0]);
        *status = WTERMSIG(wstatus);
        return 0;
    }
    ck_assert_msg(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0,
                  "the child process failed to report (wait status 0x%x)", wstatus);
    /* The child has exited: everything it wrote is in the pipe, then end of file. */
    int rc = 0;
    ck_assert_int_eq(read(fds[0], &rc, sizeof rc), (ssize_t)sizeof rc);
    size_t have = 0;
    ssize_t r;
    while (have + 1 < detail_size &&
           (r = read(fds[0], detail + have, detail_size - 1 - have)) > 0)
        have += (size_t)r;
    if (detail_size > 0)
        detail[have] = '\0';
    close(fds[0]);
    *status = rc;
    return 1;
}

/* ---- files ------------------------------------------------------------------------ */

void write_plain(const char *path, const void *bytes, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(bytes, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

/* Write bytes as one gzip member; mode is gzopen's ("wb", or "ab" to append another
 * member; a digit after it sets the level, "wb0" stores the bytes uncompressed). */
void write_gz_mode(const char *path, const void *bytes, size_t len, const char *mode)
{
    gzFile f = gzopen(path, mode);
    ck_assert_ptr_nonnull(f);
    if (len > 0)
        ck_assert_int_eq(gzwrite(f, bytes, (unsigned)len), (int)len);
    ck_assert_int_eq(gzclose(f), Z_OK);
}

void write_gz(const char *path, const void *bytes, size_t len)
{
    write_gz_mode(path, bytes, len, "wb");
}

unsigned char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    ck_assert_int_ge(n, 0);
    rewind(f);
    unsigned char *b = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* An IDX image of type 0x08: header for dims[0..ndim) followed by `data` (count bytes,
 * the product of dims), in a malloc'd buffer of *len bytes. */
unsigned char *make_idx(size_t ndim, const uint32_t *dims, const unsigned char *data,
                               size_t count, size_t *len)
{
    *len = 4 + 4 * ndim + count;
    unsigned char *b = malloc(*len);
    ck_assert_ptr_nonnull(b);
    b[0] = 0;
    b[1] = 0;
    b[2] = 0x08;
    b[3] = (unsigned char)ndim;
    for (size_t i = 0; i < ndim; i++) {
        b[4 + 4 * i] = (unsigned char)(dims[i] >> 24);
        b[5 + 4 * i] = (unsigned char)(dims[i] >> 16);
        b[6 + 4 * i] = (unsigned char)(dims[i] >> 8);
        b[7 + 4 * i] = (unsigned char)dims[i];
    }
    if (count > 0)
        memcpy(b + 4 + 4 * ndim, data, count);
    return b;
}

/* Write an IDX file of dims with data, plain or gzip'd. */
void write_idx(const char *path, int gz, size_t ndim, const uint32_t *dims,
                      const unsigned char *data)
{
    size_t count = 1;
    for (size_t i = 0; i < ndim; i++)
        count *= dims[i];
    size_t len;
    unsigned char *b = make_idx(ndim, dims, data, count, &len);
    if (gz)
        write_gz(path, b, len);
    else
        write_plain(path, b, len);
    free(b);
}
