/* test_faults.c - fault injection: every allocation, and every open, read, write, fsync,
 * rename and close, that libvib makes in an operation is made to fail in turn (the
 * first in one run, the second in the next, ... until the operation completes without
 * reaching the fault), for: model, optimizer, average and trainer creation, reserve,
 * a training step, predict, save, load, checkpoint save and load, IDX and dataset
 * loading. Each failure must return the right status (VIB_ERR_NOMEM for an allocation,
 * VIB_ERR_IO for a call on a file), leak nothing (the live allocation count and the
 * open descriptors are as before; LeakSanitizer in make check-sanitize), leave *out and
 * output buffers untouched, leave the old file as it was (and no temporary beside it),
 * and leave earlier objects usable: a faulted model, optimizer or trainer holds the
 * bits of an unfaulted twin and goes on to train or predict as the twin does. A fault
 * the library may ignore (closing a file only read, fsync of the directory after a
 * rename) may let the operation succeed: then its result must be right.
 *
 * Then a SIGKILL loop: a child saves models (and checkpoints) to one path over and
 * over, the parent kills it at a random moment, and the path must hold one of the two
 * versions, whole.
 *
 * The faults come through the link's --wrap (TEST_WRAP in the Makefile): test_alloc.c's
 * allocators ask fault_take(FAULT_ALLOC), the wrappers below the other kinds. Only the
 * statically linked libvib (and Check) go through them: BLIS, zlib and libgomp are
 * shared libraries with their own memory. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests.h"

/* ---- the injector ----------------------------------------------------------------- */

static unsigned armed_kinds; /* 0: off */
static size_t countdown;     /* calls of armed_kinds left before the failing one */
static size_t seen;          /* calls of armed_kinds since fault_arm */
static bool fired;
static long live;            /* allocations made through the wrappers, minus frees */

void fault_arm(unsigned kinds, size_t n)
{
    armed_kinds = kinds, countdown = n, seen = 0, fired = false;
}

bool fault_disarm(void)
{
    armed_kinds = 0;
    return fired;
}

bool fault_take(unsigned kind)
{
    if ((armed_kinds & kind) == 0 || fired)
        return false;
    seen++;
    if (--countdown > 0)
        return false;
    fired = true;
    return true;
}

void fault_count_alloc(long delta)
{
    live += delta;
}

int __real_open(const char *path, int flags, ...);
ssize_t __real_read(int fd, void *buf, size_t n);
ssize_t __real_write(int fd, const void *buf, size_t n);
int __real_fsync(int fd);
int __real_rename(const char *from, const char *to);
int __real_close(int fd);
int __wrap_open(const char *path, int flags, ...);
ssize_t __wrap_read(int fd, void *buf, size_t n);
ssize_t __wrap_write(int fd, const void *buf, size_t n);
int __wrap_fsync(int fd);
int __wrap_rename(const char *from, const char *to);
int __wrap_close(int fd);

int __wrap_open(const char *path, int flags, ...)
{
    mode_t mode = 0;
    if (flags & O_CREAT) {
        va_list ap;
        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, int);
        va_end(ap);
    }
    if (fault_take(FAULT_OPEN)) {
        errno = EACCES;
        return -1;
    }
    return __real_open(path, flags, mode);
}

ssize_t __wrap_read(int fd, void *buf, size_t n)
{
    if (fault_take(FAULT_READ)) {
        errno = EIO;
        return -1;
    }
    return __real_read(fd, buf, n);
}

ssize_t __wrap_write(int fd, const void *buf, size_t n)
{
    if (fault_take(FAULT_WRITE)) {
        errno = ENOSPC;
        return -1;
    }
    return __real_write(fd, buf, n);
}

int __wrap_fsync(int fd)
{
    if (fault_take(FAULT_FSYNC)) {
        errno = EIO;
        return -1;
    }
    return __real_fsync(fd);
}

int __wrap_rename(const char *from, const char *to)
{
    if (fault_take(FAULT_RENAME)) {
        errno = EXDEV;
        return -1;
    }
    return __real_rename(from, to);
}

int __wrap_close(int fd)
{
    if (fault_take(FAULT_CLOSE)) { /* as Linux: the descriptor is released all the same */
        (void)__real_close(fd);
        errno = EIO;
        return -1;
    }
    return __real_close(fd);
}

/* ---- what a failure must leave -------------------------------------------------- */

static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    ck_assert_ptr_nonnull(d);
    int n = 0;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

/* The entries of directory `dir` (a failed save must leave no temporary file). */
static int dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

static bool same_file(const char *path, const unsigned char *bytes, size_t n)
{
    size_t m;
    unsigned char *b = read_all(path, &m);
    const bool same = m == n && memcmp(b, bytes, n) == 0;
    free(b);
    return same;
}

/* A fresh directory for one test's files. */
static void fresh_dir(char *dir, size_t size, const char *name)
{
    snprintf(dir, size, "/tmp/vib_faults_%s_%ld", name, (long)getpid());
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(mkdir(dir, 0700), 0);
}

static void remove_dir(const char *dir)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* One operation under faults: prepare() builds what it works on (unfaulted), run() is
 * the operation, and after(rc) checks what it left: for rc != VIB_OK, that nothing
 * changed and the objects go on as their twins; for VIB_OK (no fault, or one the
 * library may ignore), that the result is right. release() frees what prepare and run
 * made. */
typedef struct op op;
struct op {
    const char *name;
    void (*prepare)(op *);
    int (*run)(op *);
    void (*after)(op *, int rc);
    void (*release)(op *);
    void *state;
};

/* Each n-th call of `kinds` fails in turn, until the operation runs without reaching
 * the fault; returns the number of faults injected. */
static size_t sweep(op *o, unsigned kinds, int want)
{
    /* the allocations an unfaulted run keeps (what it made: a model, a file's buffer...):
     * a run that succeeds past an ignored fault must keep as many */
    o->prepare(o);
    const long clean_was = live;
    const int clean_rc = o->run(o);
    const long clean_kept = live - clean_was; /* before Check's assertion allocates */
    ck_assert_msg(clean_rc == VIB_OK, "%s: %s", o->name, vib_last_error());
    o->after(o, VIB_OK);
    o->release(o);
    size_t n = 1;
    for (;; n++) {
        ck_assert_msg(n < 100000, "%s: no end to the calls", o->name);
        o->prepare(o);
        const int fds = open_fds();
        const long live_was = live;
        fault_arm(kinds, n);
        const int rc = o->run(o);
        const bool hit = fault_disarm();
        /* read before any assertion: Check's own allocate and free */
        const long leaked = live - live_was;
        const int fds_now = open_fds();
        if (rc != VIB_OK) {
            ck_assert_msg(hit, "%s failed without a fault: %s", o->name, vib_last_error());
            ck_assert_msg(rc == want, "%s, fault %zu of kinds %#x: status %d (%s), expected %d",
                          o->name, n, kinds, rc, vib_last_error(), want);
            ck_assert_msg(vib_last_error()[0] != '\0', "%s: no message", o->name);
            ck_assert_msg(leaked == 0, "%s, fault %zu of kinds %#x: %ld allocations leaked",
                          o->name, n, kinds, leaked);
        } else if (hit) { /* a fault the library may ignore: nothing may leak either */
            ck_assert_msg(leaked == clean_kept,
                          "%s, ignored fault %zu of kinds %#x: %ld allocations kept, %ld without it",
                          o->name, n, kinds, leaked, clean_kept);
        }
        ck_assert_msg(fds_now == fds, "%s, fault %zu of kinds %#x: descriptors %d, were %d",
                      o->name, n, kinds, fds_now, fds);
        o->after(o, rc);
        o->release(o);
        if (!hit)
            return n - 1;
    }
}

/* Every kind alone: allocations, then each call on a file. An operation that must make
 * none (none: a step once the trainer is made) is checked to make none. */
static void sweep_all(op *o, bool files, bool none)
{
    const size_t allocs = sweep(o, FAULT_ALLOC, VIB_ERR_NOMEM);
    size_t calls = 0;
    if (files) {
        static const unsigned kinds[] = {FAULT_OPEN, FAULT_READ, FAULT_WRITE, FAULT_FSYNC,
                                         FAULT_RENAME, FAULT_CLOSE};
        for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
            calls += sweep(o, kinds[k], VIB_ERR_IO);
    }
    printf("faults: %-22s %3zu allocations and %3zu file calls failed in turn\n", o->name,
           allocs, calls);
    if (none)
        ck_assert_msg(allocs + calls == 0, "%s: %zu allocations, %zu calls on files", o->name,
                      allocs, calls);
    else
        ck_assert_msg(allocs + calls > 0, "%s: no fault was reached", o->name);
}

/* ---- the objects ---------------------------------------------------------------- */

enum { IN = 12, K = 3, C = 4, N = 24, B = 8 };
static float xs[N * IN];
static int32_t ys[N];
static const size_t ENC[] = {10};

static void data(void)
{
    fill_normal(3, N * IN, 0.0f, 1.0f, xs);
    for (int i = 0; i < N; i++)
        ys[i] = i % C;
}

typedef struct {
    vib_model *m;
    vib_optim *opt;
    vib_ema *ema;
    vib_trainer *t;
} rig;

static void rig_make(rig *r)
{
    *r = (rig){0};
    ck_assert_ok(vib_model_create(IN, 1, ENC, K, 0, NULL, C, 7, &r->m));
    const size_t P = vib_model_num_params(r->m);
    ck_assert_ok(vib_adam_create(P, 1e-2f, 0.9f, 0.999f, 1e-8f, &r->opt));
    ck_assert_ok(vib_ema_create(P, 0.9f, vib_model_params(r->m), &r->ema));
    ck_assert_ok(vib_trainer_create(r->m, r->opt, r->ema, N, B, 5, &r->t));
}

static void rig_free(rig *r)
{
    vib_trainer_free(r->t);
    vib_ema_free(r->ema);
    vib_optim_free(r->opt);
    vib_model_free(r->m);
    *r = (rig){0};
}

/* Two rigs hold the same state: parameters, average, optimizer steps, position. */
static void same_rig(const rig *a, const rig *b, const char *what)
{
    const size_t P = vib_model_num_params(a->m);
    ck_assert_msg(memcmp(vib_model_params(a->m), vib_model_params(b->m), P * sizeof(float)) == 0,
                  "%s: parameters differ", what);
    ck_assert_msg(memcmp(vib_ema_values(a->ema), vib_ema_values(b->ema), P * sizeof(float)) == 0,
                  "%s: averages differ", what);
    ck_assert_uint_eq(vib_optim_steps(a->opt), vib_optim_steps(b->opt));
    ck_assert_uint_eq(vib_trainer_steps(a->t), vib_trainer_steps(b->t));
}

/* The faulted rig and its twin, both a step further, and then predicting, agree. */
static void go_on_alike(rig *a, rig *twin, const char *what)
{
    ck_assert_ok(vib_trainer_step(a->t, xs, ys, NULL, NULL, NULL));
    ck_assert_ok(vib_trainer_step(twin->t, xs, ys, NULL, NULL, NULL));
    same_rig(a, twin, what);
    float pa[B * C], pb[B * C];
    ck_assert_ok(vib_model_predict(a->m, B, xs, 2, pa));
    ck_assert_ok(vib_model_predict(twin->m, B, xs, 2, pb));
    ck_assert_msg(memcmp(pa, pb, sizeof pa) == 0, "%s: predictions differ", what);
}

#define SENTINEL ((void *)0x5a5a)

/* ---- creation: *out untouched on failure ---------------------------------------- */

typedef struct {
    void *out;
    rig base; /* what the optimizer, average and trainer are made for */
} made;

static void made_prepare(op *o)
{
    made *s = o->state;
    s->out = SENTINEL;
    rig_make(&s->base);
}

static void made_release(op *o)
{
    made *s = o->state;
    rig_free(&s->base);
}

static int run_model_create(op *o)
{
    made *s = o->state;
    const size_t dec[] = {5};
    return vib_model_create(IN, 1, ENC, K, 1, dec, C, 7, (vib_model **)&s->out);
}

static void after_model_create(op *o, int rc)
{
    made *s = o->state;
    if (rc != VIB_OK) {
        ck_assert_ptr_eq(s->out, SENTINEL);
        return;
    }
    vib_model *m = s->out;
    ck_assert_uint_eq(vib_model_input_dim(m), IN);
    vib_model_free(m);
}

static int run_adam_create(op *o)
{
    made *s = o->state;
    return vib_adam_create(vib_model_num_params(s->base.m), 1e-3f, 0.9f, 0.999f, 1e-8f,
                           (vib_optim **)&s->out);
}

static int run_sgd_create(op *o)
{
    made *s = o->state;
    return vib_sgd_create(vib_model_num_params(s->base.m), 1e-3f, 0.5f, (vib_optim **)&s->out);
}

static void after_optim_create(op *o, int rc)
{
    made *s = o->state;
    if (rc != VIB_OK) {
        ck_assert_ptr_eq(s->out, SENTINEL);
        return;
    }
    vib_optim_free(s->out);
}

static int run_ema_create(op *o)
{
    made *s = o->state;
    return vib_ema_create(vib_model_num_params(s->base.m), 0.99f, vib_model_params(s->base.m),
                          (vib_ema **)&s->out);
}

static void after_ema_create(op *o, int rc)
{
    made *s = o->state;
    if (rc != VIB_OK) {
        ck_assert_ptr_eq(s->out, SENTINEL);
        return;
    }
    vib_ema_free(s->out);
}

static int run_trainer_create(op *o)
{
    made *s = o->state;
    return vib_trainer_create(s->base.m, s->base.opt, s->base.ema, N, B, 5,
                              (vib_trainer **)&s->out);
}

static void after_trainer_create(op *o, int rc)
{
    made *s = o->state;
    if (rc != VIB_OK) {
        ck_assert_ptr_eq(s->out, SENTINEL);
        /* the parts are untouched: they train as a fresh rig's do */
        rig twin;
        rig_make(&twin);
        go_on_alike(&s->base, &twin, "after a failed vib_trainer_create");
        rig_free(&twin);
        return;
    }
    vib_trainer_free(s->out);
}

START_TEST(creation)
{
    data();
    made s;
    op ops[] = {
        {"vib_model_create", made_prepare, run_model_create, after_model_create, made_release, &s},
        {"vib_adam_create", made_prepare, run_adam_create, after_optim_create, made_release, &s},
        {"vib_sgd_create", made_prepare, run_sgd_create, after_optim_create, made_release, &s},
        {"vib_ema_create", made_prepare, run_ema_create, after_ema_create, made_release, &s},
        {"vib_trainer_create", made_prepare, run_trainer_create, after_trainer_create,
         made_release, &s},
    };
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        sweep_all(&ops[i], false, false);
}
END_TEST

/* ---- working on a model: reserve, a training step, predict ---------------------- */

typedef struct {
    rig a, twin;
    float prob[2 * N * C];
} pair;

static void pair_prepare(op *o)
{
    pair *s = o->state;
    rig_make(&s->a);
    rig_make(&s->twin);
    for (size_t i = 0; i < sizeof s->prob / sizeof s->prob[0]; i++)
        s->prob[i] = -7.0f;
}

static void pair_release(op *o)
{
    pair *s = o->state;
    rig_free(&s->a);
    rig_free(&s->twin);
}

static int run_reserve(op *o)
{
    pair *s = o->state;
    return vib_model_reserve(s->a.m, 2 * N);
}

static int run_step(op *o)
{
    pair *s = o->state;
    /* the first step: vib_trainer_create reserved its workspace, so it makes no
     * allocation and no call on a file, which the sweep checks */
    return vib_trainer_step(s->a.t, xs, ys, NULL, NULL, NULL);
}

static int run_predict(op *o)
{
    pair *s = o->state;
    return vib_model_predict(s->a.m, N, xs, 3, s->prob); /* its first: it reserves */
}

/* A failed call left the rig as its twin; both go on alike. A successful one did what
 * it does on the twin too. */
static void after_pair(op *o, int rc)
{
    pair *s = o->state;
    if (rc == VIB_OK) {
        if (o->run == run_step)
            ck_assert_ok(vib_trainer_step(s->twin.t, xs, ys, NULL, NULL, NULL));
        if (o->run == run_predict) {
            float want[N * C];
            ck_assert_ok(vib_model_predict(s->twin.m, N, xs, 3, want));
            ck_assert_msg(memcmp(want, s->prob, sizeof want) == 0, "predict: another answer");
        }
    } else {
        for (size_t i = 0; i < sizeof s->prob / sizeof s->prob[0]; i++)
            ck_assert_msg(s->prob[i] == -7.0f, "%s: the output was written", o->name);
    }
    same_rig(&s->a, &s->twin, o->name);
    go_on_alike(&s->a, &s->twin, o->name);
}

START_TEST(working)
{
    data();
    pair s;
    op ops[] = {
        {"vib_model_reserve", pair_prepare, run_reserve, after_pair, pair_release, &s},
        {"vib_trainer_step", pair_prepare, run_step, after_pair, pair_release, &s},
        {"vib_model_predict", pair_prepare, run_predict, after_pair, pair_release, &s},
    };
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        sweep_all(&ops[i], true, ops[i].run == run_step);
}
END_TEST

/* ---- files: save and load, checkpoints ------------------------------------------ */

typedef struct {
    char dir[256], path[300];
    unsigned char *old; /* the file's bytes before the operation */
    size_t old_len;
    int entries;     /* the directory's entries before */
    rig a, twin;
    void *out;
} filed;

static void filed_release(op *o)
{
    filed *s = o->state;
    rig_free(&s->a);
    rig_free(&s->twin);
    free(s->old);
    s->old = NULL;
}

/* A rig two steps on, and at path the file of another model (or checkpoint), whose
 * bytes a failed save must leave as they are. */
static void save_prepare(op *o, bool checkpoint)
{
    filed *s = o->state;
    rig_make(&s->a);
    rig_make(&s->twin);
    for (int i = 0; i < 2; i++) {
        ck_assert_ok(vib_trainer_step(s->a.t, xs, ys, NULL, NULL, NULL));
        ck_assert_ok(vib_trainer_step(s->twin.t, xs, ys, NULL, NULL, NULL));
    }
    rig other;
    rig_make(&other);
    ck_assert_ok(checkpoint ? vib_trainer_save(other.t, s->path)
                            : vib_model_save(other.m, s->path));
    rig_free(&other);
    s->old = read_all(s->path, &s->old_len);
    s->entries = dir_entries(s->dir);
}

static void model_save_prepare(op *o)
{
    save_prepare(o, false);
}

static void ckpt_save_prepare(op *o)
{
    save_prepare(o, true);
}

static int run_model_save(op *o)
{
    filed *s = o->state;
    return vib_model_save(s->a.m, s->path);
}

static int run_ckpt_save(op *o)
{
    filed *s = o->state;
    return vib_trainer_save(s->a.t, s->path);
}

/* A failed save left the old file whole and nothing beside it; a successful one wrote
 * what the twin writes. Either way the rig is its twin's. */
static void after_save(op *o, int rc)
{
    filed *s = o->state;
    ck_assert_int_eq(dir_entries(s->dir), s->entries);
    if (rc != VIB_OK) {
        ck_assert_msg(same_file(s->path, s->old, s->old_len), "%s: the old file changed",
                      o->name);
    } else {
        char twin_path[320];
        snprintf(twin_path, sizeof twin_path, "%s.twin", s->path);
        ck_assert_ok(o->run == run_ckpt_save ? vib_trainer_save(s->twin.t, twin_path)
                                             : vib_model_save(s->twin.m, twin_path));
        size_t n;
        unsigned char *want = read_all(twin_path, &n);
        ck_assert_msg(same_file(s->path, want, n), "%s: not the file the twin writes", o->name);
        free(want);
        unlink(twin_path);
    }
    same_rig(&s->a, &s->twin, o->name);
}

/* At path, the file of the twin (a model or a checkpoint of it, two steps on); the rig
 * to load into is fresh. */
static void load_prepare(op *o, bool checkpoint)
{
    filed *s = o->state;
    rig_make(&s->a);
    rig_make(&s->twin);
    ck_assert_ok(vib_trainer_step(s->twin.t, xs, ys, NULL, NULL, NULL));
    ck_assert_ok(vib_trainer_step(s->twin.t, xs, ys, NULL, NULL, NULL));
    ck_assert_ok(checkpoint ? vib_trainer_save(s->twin.t, s->path)
                            : vib_model_save(s->twin.m, s->path));
    s->old = NULL;
    s->out = SENTINEL;
}

static void model_load_prepare(op *o)
{
    load_prepare(o, false);
}

static void ckpt_load_prepare(op *o)
{
    load_prepare(o, true);
}

static int run_model_load(op *o)
{
    filed *s = o->state;
    return vib_model_load(s->path, (vib_model **)&s->out);
}

static int run_ckpt_load(op *o)
{
    filed *s = o->state;
    return vib_trainer_load(s->a.t, s->path);
}

static void after_model_load(op *o, int rc)
{
    filed *s = o->state;
    if (rc != VIB_OK) {
        ck_assert_ptr_eq(s->out, SENTINEL);
        return;
    }
    vib_model *m = s->out;
    const size_t P = vib_model_num_params(m);
    ck_assert_uint_eq(P, vib_model_num_params(s->twin.m));
    ck_assert_msg(memcmp(vib_model_params(m), vib_model_params(s->twin.m), P * sizeof(float)) == 0,
                  "vib_model_load: other weights");
    vib_model_free(m);
}

/* A failed load left the fresh rig fresh (as a new rig); a successful one made it the
 * twin. Either way it trains on as its counterpart does. */
static void after_ckpt_load(op *o, int rc)
{
    filed *s = o->state;
    if (rc != VIB_OK) {
        rig fresh;
        rig_make(&fresh);
        same_rig(&s->a, &fresh, "a failed vib_trainer_load");
        go_on_alike(&s->a, &fresh, "after a failed vib_trainer_load");
        rig_free(&fresh);
        return;
    }
    same_rig(&s->a, &s->twin, "vib_trainer_load");
    go_on_alike(&s->a, &s->twin, "after vib_trainer_load");
}

START_TEST(files)
{
    data();
    filed s = {0};
    fresh_dir(s.dir, sizeof s.dir, "files");
    snprintf(s.path, sizeof s.path, "%s/f.vib", s.dir);
    op ops[] = {
        {"vib_model_save", model_save_prepare, run_model_save, after_save, filed_release, &s},
        {"vib_trainer_save", ckpt_save_prepare, run_ckpt_save, after_save, filed_release, &s},
        {"vib_model_load", model_load_prepare, run_model_load, after_model_load, filed_release,
         &s},
        {"vib_trainer_load", ckpt_load_prepare, run_ckpt_load, after_ckpt_load, filed_release,
         &s},
    };
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        sweep_all(&ops[i], true, false);
    remove_dir(s.dir);
}
END_TEST

/* ---- IDX files and datasets -------------------------------------------------------- */

enum { ITEMS = 300, SIDE = 5 };

typedef struct {
    char dir[256], images[300], labels[300], gz[300];
    void *out;
    const char *path; /* the file vib_idx_load reads */
} idxed;

static void idx_prepare(op *o)
{
    idxed *s = o->state;
    s->out = SENTINEL;
}

static void idx_release(op *o)
{
    (void)o;
}

static int run_idx_load(op *o)
{
    idxed *s = o->state;
    return vib_idx_load(s->path, (vib_idx **)&s->out);
}

static void after_idx_load(op *o, int rc)
{
    idxed *s = o->state;
    if (rc != VIB_OK) {
        ck_assert_ptr_eq(s->out, SENTINEL);
        return;
    }
    vib_idx *idx = s->out;
    ck_assert_uint_eq(vib_idx_count(idx), (size_t)ITEMS * SIDE * SIDE);
    for (size_t i = 0; i < vib_idx_count(idx); i++)
        ck_assert_uint_eq(vib_idx_data(idx)[i], (uint8_t)(i * 7));
    vib_idx_free(idx);
}

static int run_mnist_load(op *o)
{
    idxed *s = o->state;
    return vib_dataset_load_mnist(s->dir, "train", 0.0f, 1.0f, (vib_dataset **)&s->out);
}

static void after_mnist_load(op *o, int rc)
{
    idxed *s = o->state;
    if (rc != VIB_OK) {
        ck_assert_ptr_eq(s->out, SENTINEL);
        return;
    }
    vib_dataset *d = s->out;
    ck_assert_uint_eq(vib_dataset_size(d), ITEMS);
    ck_assert_uint_eq(vib_dataset_dim(d), SIDE * SIDE);
    vib_dataset_free(d);
}

START_TEST(idx_files)
{
    idxed s;
    fresh_dir(s.dir, sizeof s.dir, "idx");
    snprintf(s.images, sizeof s.images, "%s/train-images-idx3-ubyte", s.dir);
    snprintf(s.labels, sizeof s.labels, "%s/train-labels-idx1-ubyte.gz", s.dir);
    snprintf(s.gz, sizeof s.gz, "%s/images.gz", s.dir);
    static unsigned char img[ITEMS * SIDE * SIDE], lab[ITEMS];
    const uint32_t idims[] = {ITEMS, SIDE, SIDE}, ldims[] = {ITEMS};
    for (size_t i = 0; i < (size_t)ITEMS * SIDE * SIDE; i++)
        img[i] = (unsigned char)(i * 7);
    for (size_t i = 0; i < ITEMS; i++)
        lab[i] = (unsigned char)(i % 10);
    write_idx(s.images, 0, 3, idims, img);
    /* gzip bodies: the images (for vib_idx_load) and the labels (for the dataset) */
    write_idx(s.gz, 1, 3, idims, img);
    write_idx(s.labels, 1, 1, ldims, lab);

    op plain = {"vib_idx_load", idx_prepare, run_idx_load, after_idx_load, idx_release, &s};
    op gz = {"vib_idx_load (gzip)", idx_prepare, run_idx_load, after_idx_load, idx_release, &s};
    op mnist = {"vib_dataset_load_mnist", idx_prepare, run_mnist_load, after_mnist_load,
                idx_release, &s};
    s.path = s.images;
    sweep_all(&plain, true, false);
    s.path = s.gz;
    sweep_all(&gz, true, false);
    sweep_all(&mnist, true, false);
    remove_dir(s.dir);
}
END_TEST

/* ---- SIGKILL during saves ------------------------------------------------------- */

/* A child saves two models (or two trainers' checkpoints) in turn to one path, without
 * end; the parent kills it after a random 0-15 ms (a save takes about a millisecond
 * here), 60 times. After every kill the path
 * loads, and its bytes are one of the two versions, whole. */
static void kill_loop(bool checkpoint)
{
    char dir[256], path[300], pa[320], pb[320];
    fresh_dir(dir, sizeof dir, checkpoint ? "killckpt" : "killmodel");
    snprintf(path, sizeof path, "%s/target", dir);
    snprintf(pa, sizeof pa, "%s/a", dir);
    snprintf(pb, sizeof pb, "%s/b", dir);
    rig a, b;
    rig_make(&a);
    rig_make(&b);
    ck_assert_ok(vib_trainer_step(b.t, xs, ys, NULL, NULL, NULL));
    ck_assert_ok(checkpoint ? vib_trainer_save(a.t, pa) : vib_model_save(a.m, pa));
    ck_assert_ok(checkpoint ? vib_trainer_save(b.t, pb) : vib_model_save(b.m, pb));
    ck_assert_ok(checkpoint ? vib_trainer_save(a.t, path) : vib_model_save(a.m, path));
    size_t na, nb;
    unsigned char *va = read_all(pa, &na), *vb = read_all(pb, &nb);
    unsigned seed = 12345;
    int saw_a = 0, saw_b = 0;
    for (int round = 0; round < 60; round++) {
        const pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            for (unsigned i = 0;; i++) {
                const bool use_b = (i & 1) != 0;
                const int rc = checkpoint ? vib_trainer_save(use_b ? b.t : a.t, path)
                                          : vib_model_save(use_b ? b.m : a.m, path);
                if (rc != VIB_OK)
                    _exit(3);
            }
        }
        seed = seed * 1103515245u + 12345u;
        const struct timespec ts = {0, (long)((seed >> 8) % 15000) * 1000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFSIGNALED(status), "round %d: the saving child ended by itself (%d)",
                      round, status);
        size_t n;
        unsigned char *got = read_all(path, &n);
        const bool is_a = n == na && memcmp(got, va, n) == 0;
        const bool is_b = n == nb && memcmp(got, vb, n) == 0;
        ck_assert_msg(is_a || is_b, "round %d: the file is neither version (%zu bytes)", round, n);
        saw_a += is_a, saw_b += is_b;
        free(got);
        if (checkpoint) {
            rig r;
            rig_make(&r);
            ck_assert_ok(vib_trainer_load(r.t, path));
            rig_free(&r);
        } else {
            vib_model *m = NULL;
            ck_assert_ok(vib_model_load(path, &m));
            vib_model_free(m);
        }
        /* no temporary left behind counts: the dead child's may stay, as after a crash */
    }
    printf("faults: SIGKILL during %s saves: 60 kills, the file loaded every time "
           "(%d times the first version, %d the second)\n", checkpoint ? "checkpoint" : "model",
           saw_a, saw_b);
    free(va), free(vb);
    rig_free(&a), rig_free(&b);
    remove_dir(dir);
}

START_TEST(sigkill_during_saves)
{
    data();
    kill_loop(false);
    kill_loop(true);
}
END_TEST

Suite *make_faults_suite(void)
{
    Suite *s = suite_create("faults");
    TCase *tc = tcase_create("faults");
    tcase_add_test(tc, creation);
    tcase_add_test(tc, working);
    tcase_add_test(tc, files);
    tcase_add_test(tc, idx_files);
    tcase_add_test(tc, sigkill_during_saves);
    tcase_set_timeout(tc, 300);
    suite_add_tcase(s, tc);
    return s;
}
