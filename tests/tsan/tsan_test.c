/*
 * tests/tsan/tsan_test.c - libvib under ThreadSanitizer (make check-tsan).
 *
 *     tsan_test [--threads T] [--workers W]      (defaults: T = 2, W = 4)
 *
 * Through the public header only, two parts, each asserting results, not only the
 * absence of a report:
 *
 *  1. The threaded passes. One job (below) runs on 1 thread, then on T threads
 *     (vib_set_num_threads): every product, the bias/ReLU passes, the Gaussian head,
 *     the optimizer's scans and update and the average run on T OpenMP threads (the
 *     sizes are chosen above the thresholds where libvib starts a parallel region). The
 *     arrays must be the same bits at both counts (the header promises bit-identical
 *     results for one count; these passes are also split so that the count does not
 *     change a bit), the reported batch means equal to 1e-12 (the KL is summed per
 *     thread, then across the threads).
 *
 *  2. Distinct handles from distinct threads. W pthreads start together (a barrier),
 *     each running its own job (its own seed, model, optimizers, average, trainer,
 *     dense layer, generator, dataset, files), with every pass on T OpenMP threads,
 *     while a bystander thread reads and sets the process-wide settings (the thread
 *     count, to the same T, and the backend line). Each worker's results must be the
 *     bits of the same job run alone beforehand, and vib_last_error() must hold, at the
 *     end, the error this thread raised at its start (other threads raising theirs
 *     meanwhile, after a barrier that makes sure they have).
 *
 * A job: load a tiny IDX dataset (vib_dataset_load), build a model (even workers the
 * diagonal head with K = 256; odd ones a full-covariance head with K = 4), train with
 * a trainer (Adam, an average, a staircase schedule, a callback): steps, the rest of an
 * epoch, a whole epoch; checkpoint, two steps, restore, the same two steps (asserted
 * equal); a hand-made SGD step and vib_optim_step_ema; predict, evaluate (with and
 * without the average), input gradients, encode; save and reload the model (asserted
 * equal); a dense layer forward and backward. Everything it computes goes into a record
 * compared byte for byte.
 *
 * Exit status: 0 if everything matched; 1 on a mismatch or a failed call (named on
 * stderr). A ThreadSanitizer report ends the program first with TSAN_OPTIONS's
 * exitcode (mk/sanitizers.mk sets halt_on_error=1 exitcode=66).
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vib.h"

/* Sizes above libvib's parallel thresholds (VIBI_PAR_ELEMS = 16384 elements for the
 * bias/ReLU passes and the head; 512 blocks of 64 = 32768 parameters for the optimizer
 * and the average): BATCH * HID = BATCH * K = 16384, and about 217k parameters. */
enum { SIDE = 8, IN = SIDE * SIDE, HID = 256, K_DIAG = 256, K_FULL = 4, CLASSES = 10 };
enum { N = 256, BATCH = 64 }; /* 4 steps an epoch */
enum { MAX_WORKERS = 16 };

static const char *prog = "tsan_test";

/* ---- a record of everything a job computed --------------------------------------- */

typedef struct {
    unsigned char *b;
    size_t n, cap;
    /* where each named section starts, to say which differs */
    const char *name[64];
    size_t at[64];
    size_t sections;
} record;

static int put(record *r, const char *name, const void *p, size_t bytes)
{
    if (r->n + bytes > r->cap) {
        size_t cap = r->cap ? r->cap : 1 << 16;
        while (cap < r->n + bytes)
            cap *= 2;
        unsigned char *b = realloc(r->b, cap);
        if (b == NULL)
            return -1;
        r->b = b, r->cap = cap;
    }
    if (r->sections < sizeof r->name / sizeof r->name[0])
        r->name[r->sections] = name, r->at[r->sections++] = r->n;
    memcpy(r->b + r->n, p, bytes);
    r->n += bytes;
    return 0;
}

static void record_free(record *r)
{
    free(r->b);
    *r = (record){0};
}

/* 0 if equal; else says which section first differs (and where) on stderr. */
static int compare(const record *got, const record *want, const char *what)
{
    if (got->n == want->n && memcmp(got->b, want->b, got->n) == 0)
        return 0;
    size_t i = 0;
    while (i < got->n && i < want->n && got->b[i] == want->b[i])
        i++;
    const char *section = "(past the end)";
    for (size_t s = 0; s < want->sections; s++)
        if (want->at[s] <= i)
            section = want->name[s];
    fprintf(stderr, "%s: %s: results differ from the reference at byte %zu of %zu/%zu, in %s\n",
            prog, what, i, got->n, want->n, section);
    return 1;
}

/* ---- a job --------------------------------------------------------------------- */

typedef struct {
    int id;                 /* worker number; -1 in part 1 */
    int full;               /* a full-covariance head */
    uint64_t seed;
    const char *dir;        /* the job's files go here, named after id and tag */
    const char *tag;        /* "ref" or "run": distinct files for the reference and the run */
    const char *images, *labels; /* the shared IDX files */
    pthread_barrier_t *errors_raised; /* NULL when run alone */
    record rec;
    double means[32];       /* batch means and evaluations, compared to 1e-12 in part 1 */
    size_t nmeans;
    char failure[600];      /* the first failed call, "" if none */
} job;

#define FAIL_IF(cond, ...)                                                                 \
    do {                                                                                   \
        if (cond) {                                                                        \
            snprintf(j->failure, sizeof j->failure, __VA_ARGS__);                          \
            goto out;                                                                      \
        }                                                                                  \
    } while (0)
#define CALL(expr)                                                                         \
    do {                                                                                   \
        int rc_ = (expr);                                                                  \
        FAIL_IF(rc_ != VIB_OK, "%s: %s (%s)", #expr, vib_status_string(rc_), vib_last_error()); \
    } while (0)
#define PUT(name, p, bytes) FAIL_IF(put(&j->rec, name, p, bytes) != 0, "out of memory")
#define MEAN(v) (j->means[j->nmeans++] = (v))

/* The trainer's callback: the step's numbers go into the record. */
static int on_step(void *user, uint64_t epoch, uint64_t step, uint64_t steps_per_epoch,
                   double ce, double kl, double loss)
{
    job *j = user;
    (void)ce, (void)kl, (void)loss; /* the means are compared apart, with a tolerance */
    const uint64_t pos[3] = {epoch, step, steps_per_epoch};
    return put(&j->rec, "callback position", pos, sizeof pos) != 0; /* stop on failure */
}

static void path_of(const job *j, const char *what, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s-%d-%s", j->dir, j->tag, j->id, what);
}

static void *run_job(void *arg)
{
    job *j = arg;
    vib_dataset *data = NULL;
    vib_model *m = NULL, *back = NULL;
    vib_optim *adam = NULL, *sgd = NULL;
    vib_ema *ema = NULL;
    vib_trainer *tr = NULL;
    vib_rng *rng = NULL;
    vib_dense *layer = NULL;
    float *buf = NULL, *saved = NULL, *ldx = NULL;
    char model_path[512], ckpt_path[512], own_error[64];
    path_of(j, "model.vibm", model_path, sizeof model_path);
    path_of(j, "train.ckpt", ckpt_path, sizeof ckpt_path);

    /* An error of this thread's own, which must still be vib_last_error() at the end:
     * successful calls do not clear it, and other threads' errors are theirs. */
    const int bad_n = -1000 - j->id - 1;
    const int raised = vib_set_num_threads(bad_n);
    snprintf(own_error, sizeof own_error, "n = %d is outside", bad_n);
    const int recorded = strstr(vib_last_error(), own_error) != NULL;
    if (j->errors_raised != NULL) /* every worker has raised its own before going on */
        pthread_barrier_wait(j->errors_raised);
    FAIL_IF(raised != VIB_ERR_INVALID_ARG, "vib_set_num_threads(%d) returned %d", bad_n, raised);
    FAIL_IF(!recorded, "vib_last_error() lacks \"%s\" after vib_set_num_threads(%d)",
            own_error, bad_n);

    /* the data, from the IDX files every worker reads */
    CALL(vib_dataset_load(j->images, j->labels, 0.0f, 1.0f, &data));
    FAIL_IF(vib_dataset_size(data) != N || vib_dataset_dim(data) != IN ||
                vib_dataset_classes(data) != CLASSES,
            "the dataset is %zu x %zu, %zu classes", vib_dataset_size(data),
            vib_dataset_dim(data), vib_dataset_classes(data));
    const float *x = vib_dataset_images(data);
    const int32_t *y = vib_dataset_labels(data);
    PUT("dataset images", x, (size_t)N * IN * sizeof(float));
    PUT("dataset labels", y, N * sizeof(int32_t));

    /* the model: encoder 64-256, head, decoder 256, 10 classes */
    const size_t enc[1] = {HID}, dec[1] = {HID};
    const size_t K = j->full ? K_FULL : K_DIAG;
    CALL(vib_model_create_ex(IN, 1, enc, K, 1, dec, CLASSES, j->full ? VIB_MODEL_FULL_COV : 0,
                             j->seed, &m));
    CALL(vib_model_set_beta(m, 1e-2f));
    CALL(vib_model_reserve(m, BATCH));
    const size_t P = vib_model_num_params(m);
    float *params = vib_model_params(m), *grads = vib_model_grads(m);
    buf = malloc((size_t)BATCH * (2 * CLASSES + IN + 2 * K + 2 * HID) * sizeof(float));
    saved = malloc(2 * P * sizeof(float));
    ldx = malloc((size_t)BATCH * HID * sizeof(float));
    FAIL_IF(buf == NULL || saved == NULL || ldx == NULL, "out of memory");

    /* training: Adam, an average, a staircase, a callback */
    CALL(vib_adam_create(P, 1e-3f, 0.9f, 0.999f, 1e-8f, &adam));
    CALL(vib_ema_create(P, 0.99f, params, &ema));
    CALL(vib_trainer_create(m, adam, ema, N, BATCH, j->seed + 1, &tr));
    CALL(vib_trainer_set_schedule(tr, 1e-3f, 0.5f, 3));
    CALL(vib_trainer_set_callback(tr, on_step, j));
    double ce, kl, loss;
    for (int s = 0; s < 3; s++) {
        CALL(vib_trainer_step(tr, x, y, &ce, &kl, &loss));
        MEAN(ce), MEAN(kl), MEAN(loss);
    }
    CALL(vib_trainer_epoch(tr, x, y, &ce, &kl, &loss)); /* the rest of epoch 0 */
    MEAN(ce), MEAN(kl), MEAN(loss);
    CALL(vib_trainer_epoch(tr, x, y, &ce, &kl, &loss)); /* all of epoch 1 */
    MEAN(ce), MEAN(kl), MEAN(loss);
    const uint64_t pos[4] = {vib_trainer_epochs_done(tr), vib_trainer_step_in_epoch(tr),
                             vib_trainer_steps(tr), (uint64_t)vib_trainer_stopped(tr)};
    const float lr = vib_trainer_lr(tr);
    PUT("trainer position", pos, sizeof pos);
    PUT("trainer lr", &lr, sizeof lr);
    PUT("trained params", params, P * sizeof(float));
    PUT("average", vib_ema_values(ema), P * sizeof(float));

    /* a checkpoint: two steps, back, the same two steps give the same bits */
    CALL(vib_trainer_save(tr, ckpt_path));
    CALL(vib_trainer_set_callback(tr, NULL, NULL));
    for (int s = 0; s < 2; s++)
        CALL(vib_trainer_step(tr, x, y, NULL, NULL, NULL));
    memcpy(saved, params, P * sizeof(float));
    memcpy(saved + P, vib_ema_values(ema), P * sizeof(float));
    CALL(vib_trainer_load(tr, ckpt_path));
    for (int s = 0; s < 2; s++)
        CALL(vib_trainer_step(tr, x, y, NULL, NULL, NULL));
    FAIL_IF(memcmp(saved, params, P * sizeof(float)) != 0 ||
                memcmp(saved + P, vib_ema_values(ema), P * sizeof(float)) != 0,
            "the steps after vib_trainer_load differ from those after vib_trainer_save");
    PUT("params after the checkpoint", params, P * sizeof(float));

    /* by hand: gradients, an SGD step, an SGD step with the average */
    CALL(vib_sgd_create(P, 1e-2f, 0.9f, &sgd));
    CALL(vib_model_gradients(m, BATCH, x, y, &ce, &kl, &loss));
    MEAN(ce), MEAN(kl), MEAN(loss);
    PUT("gradients", grads, P * sizeof(float));
    CALL(vib_optim_step(sgd, params, grads));
    CALL(vib_model_gradients(m, BATCH, x + (size_t)BATCH * IN, y + BATCH, &ce, &kl, &loss));
    MEAN(ce), MEAN(kl), MEAN(loss);
    CALL(vib_optim_step_ema(sgd, params, grads, ema));
    PUT("params after SGD", params, P * sizeof(float));
    PUT("average after SGD", vib_ema_values(ema), P * sizeof(float));

    /* prediction, evaluation, input gradients, the posterior */
    float *prob = buf, *dx = prob + BATCH * CLASSES, *mu = dx + BATCH * IN, *sig = mu + BATCH * K;
    CALL(vib_model_predict(m, BATCH, x, 4, prob));
    PUT("predict, 4 samples", prob, BATCH * CLASSES * sizeof(float));
    CALL(vib_model_predict(m, BATCH, x, 0, prob));
    PUT("predict at z = mu", prob, BATCH * CLASSES * sizeof(float));
    double ev[4];
    CALL(vib_model_evaluate(m, ema, N, x, y, 2, &ev[0], &ev[1], &ev[2], &ev[3]));
    MEAN(ev[0]), MEAN(ev[1]), MEAN(ev[2]), MEAN(ev[3]);
    CALL(vib_model_evaluate(m, NULL, N, x, y, 0, &ev[0], &ev[1], &ev[2], &ev[3]));
    MEAN(ev[0]), MEAN(ev[1]), MEAN(ev[2]), MEAN(ev[3]);
    CALL(vib_model_input_gradients(m, BATCH, x, y, 2, dx, &loss));
    MEAN(loss);
    PUT("input gradients", dx, BATCH * IN * sizeof(float));
    CALL(vib_model_encode(m, BATCH, x, mu, sig));
    PUT("encode", mu, 2 * BATCH * K * sizeof(float));

    /* save and load: the same parameters, the same predictions */
    CALL(vib_model_save(m, model_path));
    CALL(vib_model_load(model_path, &back));
    FAIL_IF(vib_model_num_params(back) != P ||
                memcmp(vib_model_params(back), params, P * sizeof(float)) != 0,
            "the loaded model's parameters differ");
    float *prob2 = sig + BATCH * K;
    CALL(vib_model_predict(back, BATCH, x, 0, prob2));
    FAIL_IF(memcmp(prob2, prob, BATCH * CLASSES * sizeof(float)) != 0,
            "the loaded model predicts otherwise");

    /* a dense layer of its own: forward and backward over a batch of HID-wide rows */
    CALL(vib_rng_create(j->seed + 2, &rng));
    CALL(vib_dense_create(HID, HID, VIB_INIT_HE, rng, &layer));
    float *lx = prob2 + BATCH * CLASSES, *ly = lx + BATCH * HID;
    CALL(vib_rng_normal(rng, (size_t)BATCH * HID, 0.0f, 1.0f, lx));
    CALL(vib_dense_forward(layer, BATCH, lx, ly));
    CALL(vib_relu_forward((size_t)BATCH * HID, ly, ly));
    memset(ldx, 0, (size_t)BATCH * HID * sizeof(float));
    CALL(vib_dense_backward(layer, BATCH, lx, ly, ldx));
    PUT("dense y", ly, (size_t)BATCH * HID * sizeof(float));
    PUT("dense dx", ldx, (size_t)BATCH * HID * sizeof(float));
    PUT("dense dW", vib_dense_weights_grad(layer), (size_t)HID * HID * sizeof(float));
    PUT("dense db", vib_dense_bias_grad(layer), HID * sizeof(float));

    /* this thread's error is still its own */
    FAIL_IF(strstr(vib_last_error(), own_error) == NULL,
            "vib_last_error() is \"%s\", not this thread's \"...%s...\"", vib_last_error(),
            own_error);
out:
    unlink(model_path), unlink(ckpt_path);
    vib_dense_free(layer);
    vib_rng_free(rng);
    vib_trainer_free(tr);
    vib_ema_free(ema);
    vib_optim_free(adam);
    vib_optim_free(sgd);
    vib_model_free(back);
    vib_model_free(m);
    vib_dataset_free(data);
    free(buf), free(saved), free(ldx);
    return NULL;
}

/* ---- the data: tiny IDX files ---------------------------------------------------- */

static void be32(FILE *f, uint32_t v)
{
    const unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                                (unsigned char)(v >> 8), (unsigned char)v};
    fwrite(b, 1, 4, f);
}

/* N images of SIDE x SIDE bytes whose pattern depends on the label, and the labels. */
static int write_idx(const char *images, const char *labels)
{
    FILE *fi = fopen(images, "wb"), *fl = fopen(labels, "wb");
    if (fi == NULL || fl == NULL)
        return -1;
    be32(fi, 0x803), be32(fi, N), be32(fi, SIDE), be32(fi, SIDE);
    be32(fl, 0x801), be32(fl, N);
    uint32_t s = 12345;
    for (int i = 0; i < N; i++) {
        const int label = (i * 7 + 3) % CLASSES;
        fputc(label, fl);
        for (int p = 0; p < IN; p++) {
            s = s * 1103515245u + 12345u;
            const int v = (int)((s >> 16) % 96) + (p % CLASSES == label ? 150 : 0);
            fputc(v, fi);
        }
    }
    int bad = ferror(fi) || ferror(fl);
    bad |= fclose(fi) != 0;
    bad |= fclose(fl) != 0;
    return bad ? -1 : 0;
}

/* ---- the bystander: process-wide settings, read and set while the workers run ------ */

static atomic_int workers_done;
static int bystander_threads;
static char bystander_failure[1200];

static void *bystander(void *arg)
{
    (void)arg;
    char line[512];
    long rounds = 0;
    while (!atomic_load(&workers_done)) {
        if (vib_set_num_threads(bystander_threads) != VIB_OK ||
            vib_num_threads() != bystander_threads || vib_backend_info(line, sizeof line) < 0 ||
            strstr(line, "vib_set_num_threads") == NULL || vib_version_number() == 0 ||
            strcmp(vib_status_string(VIB_ERR_IO), "input/output error") != 0) {
            snprintf(bystander_failure, sizeof bystander_failure, "settings: \"%s\" (%s)", line,
                     vib_last_error());
            break;
        }
        rounds++;
        nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
    }
    return (void *)rounds;
}

/* ---- main ------------------------------------------------------------------------- */

static int report(const job *j, const char *what)
{
    if (j->failure[0] == '\0')
        return 0;
    fprintf(stderr, "%s: %s: %s\n", prog, what, j->failure);
    return 1;
}

int main(int argc, char **argv)
{
    int threads = 2, workers = 4;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--threads") == 0)
            threads = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--workers") == 0)
            workers = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--threads T] [--workers W]\n", prog);
            return 2;
        }
    }
    if (threads < 2 || threads > 64 || workers < 2 || workers > MAX_WORKERS) {
        fprintf(stderr, "%s: need 2 <= T <= 64 and 2 <= W <= %d\n", prog, MAX_WORKERS);
        return 2;
    }
    const char *tmp = getenv("TMPDIR");
    char dir[512], images[600], labels[600];
    snprintf(dir, sizeof dir, "%s/vib_tsan_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(images, sizeof images, "%s/images-idx3-ubyte", dir);
    snprintf(labels, sizeof labels, "%s/labels-idx1-ubyte", dir);
    if (write_idx(images, labels) != 0) {
        fprintf(stderr, "%s: cannot write %s\n", prog, images);
        return 1;
    }
    int failures = 0;

    /* Part 1: the threaded passes, 1 thread against T. */
    for (int full = 0; full <= 1; full++) {
        job one = {.id = -1 - full, .full = full, .seed = 42, .dir = dir, .tag = "one",
                   .images = images, .labels = labels};
        job many = one;
        many.tag = "many";
        vib_set_num_threads(1);
        run_job(&one);
        vib_set_num_threads(threads);
        run_job(&many);
        const int before = failures;
        const char *head = full ? "full-covariance" : "diagonal";
        char what[80];
        snprintf(what, sizeof what, "part 1 (%s head), 1 thread", head);
        failures += report(&one, what);
        snprintf(what, sizeof what, "part 1 (%s head), %d threads", head, threads);
        failures += report(&many, what);
        if (one.failure[0] == '\0' && many.failure[0] == '\0') {
            failures += compare(&many.rec, &one.rec, what);
            for (size_t i = 0; i < one.nmeans; i++) {
                const double a = one.means[i], b = many.means[i];
                const double tol = 1e-12 * (a < 0 ? -a : a) + 1e-300;
                if (!(a - b <= tol && b - a <= tol)) {
                    fprintf(stderr, "%s: %s: mean %zu is %.17g, %.17g on 1 thread\n", prog, what,
                            i, b, a);
                    failures++;
                    break;
                }
            }
        }
        printf("%s: part 1, %s head: %zu bytes of results on %d threads %s those on 1\n", prog,
               head, many.rec.n, threads, failures > before ? "NOT equal to" : "equal to");
        record_free(&one.rec), record_free(&many.rec);
    }

    /* Part 2: W workers on distinct handles at once, against each alone. */
    vib_set_num_threads(threads);
    job refs[MAX_WORKERS], runs[MAX_WORKERS];
    for (int w = 0; w < workers; w++) {
        refs[w] = (job){.id = w, .full = w % 2, .seed = 100 + 17 * (uint64_t)w, .dir = dir,
                        .tag = "ref", .images = images, .labels = labels};
        run_job(&refs[w]);
        failures += report(&refs[w], "part 2, reference");
    }
    pthread_barrier_t raised;
    pthread_barrier_init(&raised, NULL, (unsigned)workers);
    pthread_t tid[MAX_WORKERS], by;
    bystander_threads = threads;
    atomic_store(&workers_done, 0);
    if (pthread_create(&by, NULL, bystander, NULL) != 0) {
        fprintf(stderr, "%s: pthread_create failed\n", prog);
        return 1;
    }
    for (int w = 0; w < workers; w++) {
        runs[w] = refs[w];
        runs[w].rec = (record){0};
        runs[w].nmeans = 0;
        memset(runs[w].means, 0, sizeof runs[w].means);
        runs[w].tag = "run";
        runs[w].errors_raised = &raised;
        if (pthread_create(&tid[w], NULL, run_job, &runs[w]) != 0) {
            fprintf(stderr, "%s: pthread_create failed\n", prog);
            return 1;
        }
    }
    for (int w = 0; w < workers; w++)
        pthread_join(tid[w], NULL);
    atomic_store(&workers_done, 1);
    void *rounds = NULL;
    pthread_join(by, &rounds);
    pthread_barrier_destroy(&raised);
    if (bystander_failure[0] != '\0') {
        fprintf(stderr, "%s: bystander: %s\n", prog, bystander_failure);
        failures++;
    }
    int matched = 0;
    for (int w = 0; w < workers; w++) {
        char what[80];
        snprintf(what, sizeof what, "part 2, worker %d (%s head)", w, w % 2 ? "full-covariance" : "diagonal");
        const int bad = report(&runs[w], what) ||
                        (refs[w].failure[0] == '\0' && compare(&runs[w].rec, &refs[w].rec, what));
        if (!bad && memcmp(runs[w].means, refs[w].means, sizeof refs[w].means) != 0) {
            fprintf(stderr, "%s: %s: the batch means differ from the reference\n", prog, what);
            failures++;
        } else if (bad) {
            failures++;
        } else {
            matched++;
        }
        record_free(&refs[w].rec), record_free(&runs[w].rec);
    }
    printf("%s: part 2: %d/%d workers (%d OpenMP threads each) equal to their job run alone; "
           "bystander: %ld rounds of settings\n",
           prog, matched, workers, threads, (long)(intptr_t)rounds);
    vib_set_num_threads(0);
    unlink(images), unlink(labels), rmdir(dir);
    if (failures) {
        fprintf(stderr, "%s: FAILED (%d)\n", prog, failures);
        return 1;
    }
    printf("%s: ok\n", prog);
    return 0;
}
