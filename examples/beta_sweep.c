/*
 * beta_sweep - validation error and the information plane of a VIB classifier against
 * beta (the problem set's question 3 (c): the U-shaped validation error; the paper's
 * Figures 1 and 3).
 *
 *   beta_sweep [options]             (beta_sweep --help lists them)
 *
 * For every beta of a log grid (default 1e-8, 1e-7, ..., 1e-1, 1) and every seed (default
 * 1; --seeds 1:3 for three) one model is trained from the seed's initial weights on the
 * first 50,000 MNIST training images and evaluated on the last 10,000 (validation) and
 * on the 10,000 test images:
 *
 *   val_error_pct, test_error_pct  error with S posterior samples (probabilities averaged)
 *   izx_bits   the mean KL rate KL(p(z|x) || N(0, I)) in bits over the validation set,
 *              the variational upper bound on I(Z;X) (computed from vib_model_encode)
 *   izy_bits   H(Y) - CE in bits over the validation set, the lower bound on I(Z;Y), with
 *              CE = the mean over rows AND over the S single-sample draws of -log q(y|z)
 *              (the paper's estimate, E_z[-log q(y|z)], not -log of the averaged
 *              probability, which would be smaller and overstate the bound)
 *
 * One stdout line per run (a beta and a seed), then one per beta over its seeds:
 *   result beta=<b> seed=<s> val_error_pct=<e> test_error_pct=<t> izx_bits=<x> izy_bits=<y>
 *   summary beta=<b> seeds=<n> val_error_pct=<mean>+-<sd> test_error_pct=<mean>+-<sd> ...
 * a CSV of the runs (results/beta_sweep.csv), one of the betas' means, standard
 * deviations (over the seeds), minima and maxima (results/beta_sweep_summary.csv), and
 * two PNGs drawn by examples/beta_sweep.gp: results/beta_sweep_error.png (errors against
 * beta) and results/information_plane.png.
 *
 * --state DIR makes a long sweep resumable: each run keeps in DIR a trainer checkpoint
 * (after every epoch, and on Ctrl-C after the current step), its learning curve
 * (beta<b>_seed<s>.csv: per epoch the seconds, the training CE and KL, the validation
 * error of the averaged weights, and resumed_after_step, explained below) and, once
 * finished, its result row (.row; the checkpoint is then deleted). The same command
 * again goes on where it stopped, bit for bit, and reuses finished runs; DIR/recipe.txt
 * refuses a different recipe. A run stopped in the middle of an epoch keeps that epoch's
 * training sums in a .part file, so its line in the curve is the one an uninterrupted
 * run writes (resumed_after_step 0); were the .part lost (a kill between it and the
 * checkpoint), the line's training means begin after the step resumed_after_step names.
 * Processes may share DIR, with the same or different --betas and --seeds: each run is
 * locked while one trains it, the others pass it by, and the same command with every
 * beta and seed then gathers them. --time-limit stops (state saved) after the first
 * epoch that ends past the limit. For tests, BETA_SWEEP_TEST_STOP_AFTER=N in the
 * environment acts as a Ctrl-C after this process's N-th training step.
 *
 * Exit status: 0 all runs finished and tabulated; 1 an error; 2 a usage error; 3 stopped
 * by --time-limit; 4 some runs were left to other processes sharing DIR (the tables, if
 * any run is finished, hold the finished ones); 130 stopped by Ctrl-C.
 *
 * The default recipe is sized to finish in about ten minutes on two cores: inputs in
 * [0, 1], a 784-256-256 encoder, K = 32, a linear decoder, batch 100, Adam (lr 1e-3)
 * decayed by 0.97 every 2 epochs, an exponential moving average (0.999) of the weights
 * for evaluation, 25 epochs. --full is the paper's recipe (inputs in [-1, 1], 784-1024-
 * 1024, K = 256, Adam lr 1e-4 with beta1 0.5, the same decay and EMA, 200 epochs): hours.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define EXAMPLE_NAME "beta_sweep"
#include "example_util.h"

enum { MAX_BETAS = 64, MAX_SEEDS = 32, N_TRAIN = 50000, N_VAL = 10000 };

/* Exit statuses besides 0, 1 (an error) and 2 (a usage error): stopped by --time-limit
 * or by Ctrl-C, the state saved in --state's DIR; runs left out because another process
 * sharing DIR trains them (the tables hold the finished ones only). */
enum { EXIT_TIME_LIMIT = 3, EXIT_INCOMPLETE = 4, EXIT_INTERRUPTED = 130 };

typedef struct {
    size_t enc[2], latent, batch, epochs;
    double lr, beta1, lr_decay, decay_epochs, ema;
    int pm1;
} recipe;

typedef struct {
    const char *data, *csv, *summary, *error_plot, *plane_plot, *state;
    size_t epochs, samples, threads, train_limit, n_betas, n_seeds, time_limit;
    double betas[MAX_BETAS];
    uint64_t seed, seeds[MAX_SEEDS];
    int full, epochs_set, seed_set, time_limit_set;
} options;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: beta_sweep [options]\n"
            "  --data DIR          MNIST directory (default data/mnist; `make data` fetches it)\n"
            "  --betas LIST        betas, comma-separated numbers > 0 and/or ranges LO:HI[:N]\n"
            "                      with N values per decade (default 1e-8:1, i.e. 1e-8, 1e-7,\n"
            "                      ..., 1e-1, 1)\n"
            "  --epochs N          training epochs per run (default 25; 200 with --full)\n"
            "  --full              the paper's recipe: inputs in [-1, 1], 784-1024-1024, K = 256,\n"
            "                      Adam lr 1e-4 beta1 0.5, 200 epochs (hours on two cores)\n"
            "  --samples S         posterior samples at evaluation (default 12)\n"
            "  --seed N            seed of the weights, the noise and the shuffling (default 1)\n"
            "  --seeds LIST        several seeds, comma-separated and/or ranges LO:HI (e.g.\n"
            "                      1:3): every beta is trained once per seed, and the summary\n"
            "                      gives the mean and spread over them (not with --seed)\n"
            "  --state DIR         keep every run's state in DIR (a checkpoint after each epoch\n"
            "                      and on Ctrl-C, its learning curve, its result): the same\n"
            "                      command again resumes and reuses finished runs; processes\n"
            "                      sharing DIR split the runs (exit status 4 while some are\n"
            "                      another's: the tables hold the finished ones)\n"
            "  --time-limit S      with --state: stop, state saved, after the first epoch that\n"
            "                      ends S seconds or more after the start (exit status 3)\n"
            "  --threads N         threads (default: BLIS_NUM_THREADS, else all CPUs)\n"
            "  --train-limit N     train on the first N of the 50,000 training images only\n"
            "  --csv FILE          one row per run (default results/beta_sweep.csv)\n"
            "  --summary FILE      one row per beta over the seeds: mean, standard deviation,\n"
            "                      min, max (default results/beta_sweep_summary.csv)\n"
            "  --error-plot FILE   error against beta (default results/beta_sweep_error.png)\n"
            "  --plane-plot FILE   information plane (default results/information_plane.png)\n");
}

/* ---- option parsing: every value is checked, a bad one ends the program clearly ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* "1e-8,1e-4,1" and/or "1e-8:1" (one value per decade) or "1e-8:1:2" (two per decade).
 * The result is sorted and free of duplicates. */
static size_t parse_betas(const char *opt, const char *s, double *out)
{
    char buf[1024];
    if (strlen(s) >= sizeof buf)
        die("%s: list too long", opt);
    strcpy(buf, s);
    size_t n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *c1 = strchr(tok, ':');
        if (c1 == NULL) {
            if (n == MAX_BETAS)
                die("%s: at most %d values", opt, MAX_BETAS);
            out[n++] = parse_double(opt, tok, 1e-30, 1e6);
            continue;
        }
        *c1 = '\0';
        char *c2 = strchr(c1 + 1, ':');
        if (c2)
            *c2 = '\0';
        double lo = parse_double(opt, tok, 1e-30, 1e6), hi = parse_double(opt, c1 + 1, 1e-30, 1e6);
        size_t per = c2 ? parse_size(opt, c2 + 1, 1, 100) : 1;
        if (hi < lo)
            die("%s: range %g:%g runs backwards", opt, lo, hi);
        double decades = log10(hi / lo);
        size_t count = (size_t)floor(decades * (double)per + 1e-9) + 1;
        if (count > MAX_BETAS - n)
            die("%s: at most %d values, the range %g:%g gives %zu", opt, MAX_BETAS, lo, hi,
                count);
        for (size_t i = 0; i < count; i++)
            out[n++] = pow(10.0, log10(lo) + (double)i / (double)per);
    }
    if (n == 0)
        die("%s: empty list '%s'", opt, s);
    qsort(out, n, sizeof *out, cmp_double);
    size_t m = 1;
    for (size_t i = 1; i < n; i++)
        if (out[i] > out[m - 1] * (1.0 + 1e-9))
            out[m++] = out[i];
    /* Runs are named, in DIR and in the tables, by beta at 6 significant digits: two
     * betas that print alike would share a name (and a checkpoint). */
    for (size_t i = 1; i < m; i++) {
        char a[32], b[32];
        snprintf(a, sizeof a, "%.6g", out[i - 1]);
        snprintf(b, sizeof b, "%.6g", out[i]);
        if (strcmp(a, b) == 0)
            die("%s: betas %.17g and %.17g are both %s at 6 digits (runs are named by it): "
                "space them further apart", opt, out[i - 1], out[i], a);
    }
    return m;
}

/* "1,2,3" and/or "1:3" (inclusive): sorted and free of duplicates, 1 to MAX_SEEDS. */
static size_t parse_seeds(const char *opt, const char *s, uint64_t *out)
{
    char buf[1024];
    if (strlen(s) >= sizeof buf)
        die("%s: list too long", opt);
    strcpy(buf, s);
    size_t n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(tok, ':');
        if (colon)
            *colon = '\0';
        const uint64_t lo = parse_size(opt, tok, 0, SIZE_MAX);
        const uint64_t hi = colon ? parse_size(opt, colon + 1, 0, SIZE_MAX) : lo;
        if (hi < lo)
            die("%s: range %llu:%llu runs backwards", opt, (unsigned long long)lo,
                (unsigned long long)hi);
        if (hi - lo >= (uint64_t)(MAX_SEEDS - n))
            die("%s: at most %d seeds", opt, MAX_SEEDS);
        for (uint64_t v = lo;; v++) {
            out[n++] = v;
            if (v == hi)
                break;
        }
    }
    if (n == 0)
        die("%s: empty list '%s'", opt, s);
    for (size_t i = 1; i < n; i++) /* insertion sort: at most MAX_SEEDS values */
        for (size_t j = i; j > 0 && out[j - 1] > out[j]; j--) {
            const uint64_t t = out[j];
            out[j] = out[j - 1], out[j - 1] = t;
        }
    size_t m = 1;
    for (size_t i = 1; i < n; i++)
        if (out[i] != out[m - 1])
            out[m++] = out[i];
    return m;
}

static void parse_args(int argc, char **argv, options *o)
{
    *o = (options){.data = "data/mnist", .csv = "results/beta_sweep.csv",
                   .summary = "results/beta_sweep_summary.csv",
                   .error_plot = "results/beta_sweep_error.png",
                   .plane_plot = "results/information_plane.png", .samples = 12, .seed = 1};
    o->n_betas = parse_betas("--betas", "1e-8:1", o->betas);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            EXAMPLE_EXIT(0);
        }
        if (strcmp(a, "--full") == 0) {
            o->full = 1;
            continue;
        }
        static const char *const valued[] = {
            "--data",  "--csv",  "--error-plot", "--plane-plot", "--epochs", "--samples",
            "--threads", "--train-limit", "--seed", "--betas", "--seeds", "--summary",
            "--state", "--time-limit"};
        const char *v = option_value(argc, argv, &i, valued, sizeof valued / sizeof valued[0]);
        if ((!strcmp(a, "--csv") || !strcmp(a, "--error-plot") || !strcmp(a, "--plane-plot") ||
             !strcmp(a, "--summary") || !strcmp(a, "--state")) &&
            v[0] == '\0')
            die("%s needs a %s name", a, strcmp(a, "--state") ? "file" : "directory");
        if (!strcmp(a, "--data")) o->data = v;
        else if (!strcmp(a, "--csv")) o->csv = v;
        else if (!strcmp(a, "--summary")) o->summary = v;
        else if (!strcmp(a, "--state")) o->state = v;
        else if (!strcmp(a, "--time-limit"))
            o->time_limit = parse_size(a, v, 0, 100000000), o->time_limit_set = 1;
        else if (!strcmp(a, "--seeds")) o->n_seeds = parse_seeds(a, v, o->seeds);
        else if (!strcmp(a, "--error-plot")) o->error_plot = v;
        else if (!strcmp(a, "--plane-plot")) o->plane_plot = v;
        else if (!strcmp(a, "--epochs")) o->epochs = parse_size(a, v, 1, 100000), o->epochs_set = 1;
        else if (!strcmp(a, "--samples")) o->samples = parse_size(a, v, 1, 1000);
        else if (!strcmp(a, "--threads")) o->threads = parse_size(a, v, 1, 1024);
        else if (!strcmp(a, "--train-limit")) o->train_limit = parse_size(a, v, 1, N_TRAIN);
        else if (!strcmp(a, "--seed")) o->seed = parse_size(a, v, 0, SIZE_MAX), o->seed_set = 1;
        else if (!strcmp(a, "--betas")) o->n_betas = parse_betas(a, v, o->betas);
    }
    if (o->seed_set && o->n_seeds > 0)
        die("--seed and --seeds: give one of them");
    if (o->time_limit_set && o->state == NULL)
        die("--time-limit needs --state DIR, where the stopped runs wait");
    if (o->n_seeds == 0)
        o->seeds[0] = o->seed, o->n_seeds = 1;
}

/* ---- helpers --------------------------------------------------------------------- */

typedef struct {
    double error_pct;  /* with the S-sample averaged probabilities */
    double ce_nats;    /* mean over rows and single draws of -log q(y|z) (info only) */
    double izx_bits;   /* mean KL rate (info only) */
    size_t sigma_zero; /* sigmas that underflowed to 0 and were floored (info only) */
} eval;

/* Evaluate `m` on `d` with `samples` draws. With `info`, also the cross-entropy of
 * single draws and the KL rate; the S-sample prediction is then assembled from the S
 * single draws (the same average vib_model_predict(samples) takes). A label outside the
 * model's classes ends the program, naming item first + i of `what`. */
static eval evaluate(vib_model *m, const vib_dataset *d, const char *what, size_t first,
                     size_t samples, int info)
{
    enum { CHUNK = 500 };
    const size_t n = vib_dataset_size(d), dim = vib_dataset_dim(d);
    const size_t C = vib_model_classes(m), K = vib_model_latent_dim(m);
    const float *x = vib_dataset_images(d);
    const int32_t *y = vib_dataset_labels(d);
    float *prob = xmalloc(CHUNK * C * sizeof *prob), *one = xmalloc(CHUNK * C * sizeof *one);
    float *mu = xmalloc(CHUNK * K * sizeof *mu), *sigma = xmalloc(CHUNK * K * sizeof *sigma);
    size_t wrong = 0;
    double ce = 0.0, kl = 0.0;
    eval e = {0};
    for (size_t i = 0; i < n; i += CHUNK) {
        const size_t rows = n - i < CHUNK ? n - i : CHUNK;
        const float *xc = x + i * dim;
        if (!info) {
            check(vib_model_predict(m, rows, xc, samples, prob), "predict");
        } else {
            for (size_t s = 0; s < samples; s++) {
                check(vib_model_predict(m, rows, xc, 1, one), "predict");
                for (size_t r = 0; r < rows; r++) {
                    /* a float softmax can round a hopeless class to 0: floor it so one
                     * such row costs 69 nats instead of making the mean infinite */
                    const size_t c = label_class(what, first + i + r, y[i + r], C);
                    double p = fmax((double)one[r * C + c], 1e-30);
                    ce -= log(p);
                }
                for (size_t k = 0; k < rows * C; k++)
                    prob[k] = s == 0 ? one[k] : prob[k] + one[k];
            }
            /* KL(N(mu, sigma^2) || N(0, I)) per row, in nats, from the encoder's output;
             * a sigma that underflowed to 0 is floored at FLT_MIN (log = -87.3) */
            check(vib_model_encode(m, rows, xc, mu, sigma), "encode");
            for (size_t r = 0; r < rows; r++) {
                double acc = 0.0;
                for (size_t k = 0; k < K; k++) {
                    double u = mu[r * K + k], s = sigma[r * K + k];
                    if (!(s > 0.0))
                        s = FLT_MIN, e.sigma_zero++;
                    acc += u * u + s * s - 2.0 * log(s) - 1.0;
                }
                kl += 0.5 * fmax(acc, 0.0); /* >= 0 but for rounding */
            }
        }
        for (size_t r = 0; r < rows; r++)
            wrong += argmax(prob + r * C, C) != label_class(what, first + i + r, y[i + r], C);
    }
    free(prob), free(one), free(mu), free(sigma);
    e.error_pct = 100.0 * (double)wrong / (double)n;
    e.ce_nats = ce / ((double)n * (double)samples);
    e.izx_bits = kl / (double)n / log(2.0);
    return e;
}

/* ---- a run's state (--state DIR) --------------------------------------------------- */

/* Set by SIGINT when --state is given: the trainer stops after the current step. */
static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* For tests: BETA_SWEEP_TEST_STOP_AFTER=N in the environment acts as a Ctrl-C after this
 * process's N-th training step, so a stop inside an epoch lands where a test wants it. */
static unsigned long long test_stop_after, steps_here;

static int sweep_progress_cb(void *user, uint64_t epoch, uint64_t step, uint64_t steps,
                             double ce, double kl, double loss)
{
    if (test_stop_after != 0 && ++steps_here == test_stop_after)
        interrupted = 1;
    return train_progress_cb(user, epoch, step, steps, ce, kl, loss);
}

typedef struct {
    char name[96];                                   /* "beta1e-08_seed3" */
    char ckpt[4096], curve[4096], row[4096], lock[4096], part[4096];
} run_files;

static void run_paths(const char *dir, double beta, uint64_t seed, run_files *f)
{
    snprintf(f->name, sizeof f->name, "beta%.6g_seed%llu", beta, (unsigned long long)seed);
    snprintf(f->ckpt, sizeof f->ckpt, "%s/%s.ckpt", dir, f->name);
    snprintf(f->curve, sizeof f->curve, "%s/%s.csv", dir, f->name);
    snprintf(f->row, sizeof f->row, "%s/%s.row", dir, f->name);
    snprintf(f->lock, sizeof f->lock, "%s/%s.lock", dir, f->name);
    snprintf(f->part, sizeof f->part, "%s/%s.part", dir, f->name);
}

static void fail_file(const char *path, const char *what)
{
    fprintf(stderr, "beta_sweep: %s: %s%s%s\n", path, what, errno ? ": " : "",
            errno ? strerror(errno) : "");
    exit(1);
}

/* Write `text` to a new temporary file beside `path`, flushed to the disk; its name goes
 * to tmp. The file is created exclusively, named by this process and an attempt number,
 * so processes sharing DIR (even from hosts whose pids coincide) never write the same
 * one. On failure it is removed and the program ends with the reason. */
static void write_temp(const char *path, const char *text, char *tmp, size_t size)
{
    int fd = -1;
    for (unsigned attempt = 0; fd < 0 && attempt < 100; attempt++) {
        snprintf(tmp, size, "%s.%ld.%u.tmp", path, (long)getpid(), attempt);
        errno = 0;
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0644);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0)
        fail_file(path, "cannot create a temporary file beside it");
    FILE *f = fdopen(fd, "w");
    errno = 0;
    const int ok = f != NULL && fputs(text, f) >= 0 && fflush(f) == 0 && fsync(fd) == 0;
    const int e = errno;
    if ((f != NULL ? fclose(f) : close(fd)) != 0 || !ok) {
        unlink(tmp);
        errno = ok ? errno : e;
        fail_file(tmp, "cannot write");
    }
}

/* Write `text` to `path` through a temporary file renamed over it: a reader sees the old
 * file or the new one, never a part. */
static void write_atomically(const char *path, const char *text)
{
    char tmp[4200];
    write_temp(path, text, tmp, sizeof tmp);
    errno = 0;
    if (rename(tmp, path) != 0) {
        const int e = errno;
        unlink(tmp);
        errno = e;
        fail_file(path, "cannot write");
    }
}

/* DIR/recipe.txt holds what the runs in DIR were trained with; another recipe is refused
 * rather than mixed into them. It is read if it is there (so a DIR one may only read still
 * gathers finished runs). Otherwise it is created by link(), which fails if the file
 * exists: of processes starting together on an empty DIR one writes it, the others read
 * what it wrote. */
static void check_recipe(const char *dir, const char *recipe_line)
{
    char path[4200], have[1024] = "";
    snprintf(path, sizeof path, "%s/recipe.txt", dir);
    errno = 0;
    FILE *f = fopen(path, "r");
    if (f == NULL && errno == ENOENT) {
        char tmp[4200];
        mkdir_for(path);
        write_temp(path, recipe_line, tmp, sizeof tmp);
        errno = 0;
        const int made = link(tmp, path) == 0, link_errno = errno;
        unlink(tmp);
        if (made)
            return;
        if (link_errno != EEXIST) { /* e.g. a file system without hard links */
            errno = link_errno;
            fail_file(path, "cannot create (link from a temporary file)");
        }
        errno = 0;
        f = fopen(path, "r"); /* another process made it meanwhile */
    }
    if (f == NULL)
        fail_file(path, "cannot read");
    if (fgets(have, sizeof have, f) == NULL)
        have[0] = '\0';
    fclose(f);
    if (strcmp(have, recipe_line) != 0) {
        fprintf(stderr, "beta_sweep: %s holds runs of another recipe:\n  it has:  %s"
                        "  this is: %s(another --state DIR, or the same options)\n",
                dir, have, recipe_line);
        exit(1);
    }
}

#define CURVE_HEADER "epoch,seconds,train_ce_nats,train_kl_bits,val_error_pct,resumed_after_step\n"

/* The learning curve of a run resumed after `done` epochs: the lines of those epochs are
 * kept (a line written before a crash that lost its epoch's checkpoint is dropped: the
 * epoch is trained again, to the same numbers), their seconds summed into *secs and the
 * last one's training CE and KL read back; the file is opened to append. */
static FILE *open_curve(const char *path, uint64_t done, double *ce, double *kl_bits,
                        double *secs)
{
    size_t cap = 4096, len = 0;
    char *kept = xmalloc(cap), line[512];
    len = (size_t)snprintf(kept, cap, "%s", CURVE_HEADER);
    FILE *f = fopen(path, "r");
    if (f != NULL) {
        while (fgets(line, sizeof line, f) != NULL) {
            unsigned long long epoch;
            double sec, c, k;
            if (sscanf(line, "%llu,%lf,%lf,%lf", &epoch, &sec, &c, &k) != 4 || epoch > done)
                continue; /* the header, or an epoch to train again */
            *secs += sec, *ce = c, *kl_bits = k;
            const size_t n = strlen(line);
            if (len + n + 1 > cap)
                kept = realloc(kept, cap = 2 * (len + n + 1));
            if (kept == NULL)
                fail_file(path, "out of memory");
            memcpy(kept + len, line, n + 1);
            len += n;
        }
        fclose(f);
    }
    write_atomically(path, kept);
    free(kept);
    errno = 0;
    if ((f = fopen(path, "a")) == NULL)
        fail_file(path, "cannot append");
    return f;
}

static void save_state(const vib_trainer *t, const run_files *f)
{
    check(vib_trainer_save(t, f->ckpt), "checkpoint");
}

/* Rows of an epoch its first `step` steps train (the last batch may be short). */
static double rows_through(uint64_t step, size_t batch, size_t n)
{
    const double r = (double)step * (double)batch;
    return r < (double)n ? r : (double)n;
}

/* An epoch's training sums so far: the cross-entropy and KL (nats) summed over the rows
 * trained, the rows, the seconds, and `from`, the step after which they begin (0: the
 * epoch's first). A run stopped in the middle of an epoch keeps them in DIR/<run>.part
 * ("epoch from step sum_ce sum_kl rows seconds", the stop after `step`), written before
 * the checkpoint: the resumed epoch's line then holds the means over the rows since
 * `from`, all of them unless a .part was lost on the way. */
typedef struct {
    double ce, kl, rows, secs;
    uint64_t from;
} epoch_sums;

static void write_part(const run_files *f, uint64_t epoch, uint64_t step, const epoch_sums *a)
{
    char text[256];
    snprintf(text, sizeof text, "%llu %llu %llu %.17g %.17g %.17g %.17g\n",
             (unsigned long long)epoch, (unsigned long long)a->from, (unsigned long long)step,
             a->ce, a->kl, a->rows, a->secs);
    write_atomically(f->part, text);
}

/* The sums of the epoch a run resumed in, if DIR/<run>.part holds that very position (the
 * epoch, from 1, and the step) and rows that agree with its `from`; 0 otherwise (no file,
 * or one a crash left from another position: a stop killed between the .part and the
 * checkpoint). Without them the sums start at the resumed step. */
static int read_part(const run_files *f, uint64_t epoch, uint64_t step, size_t batch,
                     size_t n, epoch_sums *a)
{
    FILE *in = fopen(f->part, "r");
    if (in == NULL)
        return 0;
    unsigned long long e, from, st;
    epoch_sums got;
    const int ok = fscanf(in, "%llu %llu %llu %lf %lf %lf %lf", &e, &from, &st, &got.ce,
                          &got.kl, &got.rows, &got.secs) == 7;
    fclose(in);
    if (!ok || e != epoch || st != step || from >= step ||
        got.rows != rows_through(step, batch, n) - rows_through(from, batch, n) ||
        !isfinite(got.ce) || !isfinite(got.kl) || !isfinite(got.secs))
        return 0;
    got.from = from;
    *a = got;
    return 1;
}

/* Train one model at `beta` from `seed` and leave the evaluated (EMA) weights in it. The
 * last epoch's mean training cross-entropy (nats) and KL (bits) go to *ce and *kl_bits,
 * the training seconds (this run's and, resumed, the earlier ones') to *secs. With `f`
 * (--state), the run resumes from its checkpoint if there is one and saves it after
 * every epoch; stopped (Ctrl-C, or --time-limit past `deadline`), it saves and exits. */
static vib_model *train(const recipe *rc, const options *o, const vib_dataset *tr, size_t n,
                        const vib_dataset *val, double beta, uint64_t seed,
                        const run_files *f, double deadline, double *ce_out,
                        double *kl_out, double *secs_out, size_t *epochs_trained)
{
    const size_t dim = vib_dataset_dim(tr), classes = vib_dataset_classes(tr);
    vib_model *m = NULL;
    check(vib_model_create(dim, 2, rc->enc, rc->latent, 0, NULL, classes, seed, &m),
          "create the model");
    check(vib_model_set_beta(m, (float)beta), "set beta");
    check(vib_model_reseed(m, seed), "seed the noise");
    const size_t P = vib_model_num_params(m);
    float *params = vib_model_params(m);
    vib_optim *opt = NULL;
    vib_ema *ema = NULL;
    check(vib_adam_create(P, (float)rc->lr, (float)rc->beta1, 0.999f, 1e-8f, &opt), "Adam");
    check(vib_ema_create(P, (float)rc->ema, params, &ema), "EMA");
    /* The library's trainer: shuffled minibatches of the first n rows, the rate decayed
     * every decay_epochs epochs (counted in steps), one Adam step and EMA update each. */
    vib_trainer *t = NULL;
    check(vib_trainer_create(m, opt, ema, n, rc->batch, seed, &t), "trainer");
    const double decay_steps =
        fmax(1.0, rc->decay_epochs * (double)vib_trainer_steps_per_epoch(t));
    check(vib_trainer_set_schedule(t, (float)rc->lr, (float)rc->lr_decay, (uint64_t)decay_steps),
          "schedule");
    *ce_out = *kl_out = NAN, *secs_out = 0.0;
    FILE *curve = NULL;
    if (f != NULL) {
        if (access(f->ckpt, F_OK) == 0) {
            check(vib_trainer_load(t, f->ckpt), "resume");
            fprintf(stderr, "  beta %g seed %llu: resumed from %s after %llu epochs and %llu "
                            "steps\n", beta, (unsigned long long)seed, f->ckpt,
                    (unsigned long long)vib_trainer_epochs_done(t),
                    (unsigned long long)vib_trainer_step_in_epoch(t));
        }
        curve = open_curve(f->curve, vib_trainer_epochs_done(t), ce_out, kl_out, secs_out);
    }
    /* the epoch resumed in the middle: its sums before the stop, if they were kept */
    const uint64_t resumed_at = vib_trainer_step_in_epoch(t);
    epoch_sums sums = {0.0, 0.0, 0.0, 0.0, resumed_at};
    if (f != NULL && resumed_at > 0)
        read_part(f, vib_trainer_epochs_done(t) + 1, resumed_at, rc->batch, n, &sums);
    const size_t first_epoch = (size_t)vib_trainer_epochs_done(t) + 1;
    const double t_begin = now();
    /* the epochs this process trains, the resumed part counted as its fraction */
    const double steps = (double)vib_trainer_steps_per_epoch(t);
    const double first_part = 1.0 - (double)resumed_at / steps;
    for (size_t epoch = first_epoch; epoch <= rc->epochs; epoch++) {
        char label[96];
        snprintf(label, sizeof label, "beta %-6g seed %llu epoch %zu/%zu", beta,
                 (unsigned long long)seed, epoch, rc->epochs);
        train_progress bar = {label, now(), &interrupted};
        check(vib_trainer_set_callback(t, sweep_progress_cb, &bar), "callback");
        const uint64_t from = vib_trainer_step_in_epoch(t);
        double ce, kl;
        check_training(vib_trainer_epoch(t, vib_dataset_images(tr), vib_dataset_labels(tr),
                                         &ce, &kl, NULL), t);
        /* vib_trainer_epoch's means are over the rows this call trained */
        const uint64_t to = vib_trainer_step_in_epoch(t) != 0 ? vib_trainer_step_in_epoch(t)
                                                              : vib_trainer_steps_per_epoch(t);
        const double rows = rows_through(to, rc->batch, n) - rows_through(from, rc->batch, n);
        sums.ce += ce * rows, sums.kl += kl * rows, sums.rows += rows;
        sums.secs += now() - bar.t0;
        if (interrupted && vib_trainer_step_in_epoch(t) != 0) { /* in the middle of an epoch */
            write_part(f, epoch, vib_trainer_step_in_epoch(t), &sums);
            save_state(t, f);
            fprintf(stderr, "\nbeta_sweep: interrupted in run %s after %llu epochs and %llu "
                            "steps; state saved in %s (the same command goes on)\n", f->name,
                    (unsigned long long)vib_trainer_epochs_done(t),
                    (unsigned long long)vib_trainer_step_in_epoch(t), f->ckpt);
            exit(EXIT_INTERRUPTED);
        }
        const double secs = sums.secs;
        *ce_out = sums.ce / sums.rows;
        *kl_out = sums.kl / sums.rows / log(2.0);
        *secs_out += secs;
        ++*epochs_trained;
        /* the averaged weights' validation error, as the final evaluation's prediction */
        double val_err;
        check(vib_model_evaluate(m, ema, vib_dataset_size(val), vib_dataset_images(val),
                                 vib_dataset_labels(val), o->samples, &val_err, NULL, NULL,
                                 NULL), "evaluate");
        /* the run's ETA: its epochs left at this process's pace, evaluations included
         * (the sweep's comes at the end of each run) */
        const long eta = lround((now() - t_begin) / ((double)(epoch - first_epoch) + first_part) *
                                (double)(rc->epochs - epoch));
        fprintf(stderr, "  beta %-6g seed %llu epoch %3zu/%zu  %5.1fs  train ce %.4f nats  kl "
                        "%.2f bits  val error %.2f%%  run ETA %ldm%02lds\n", beta,
                (unsigned long long)seed, epoch, rc->epochs, secs, *ce_out, *kl_out,
                100.0 * val_err, eta / 60, eta % 60);
        if (curve != NULL) { /* the line, on the disk, then the checkpoint: see open_curve */
            fprintf(curve, "%zu,%.3f,%.6f,%.6f,%.4f,%llu\n", epoch, secs, *ce_out, *kl_out,
                    100.0 * val_err, (unsigned long long)sums.from);
            errno = 0;
            if (fflush(curve) != 0 || fsync(fileno(curve)) != 0)
                fail_file(f->curve, "cannot write");
            save_state(t, f);
            unlink(f->part); /* the epoch's sums are in its line now */
        }
        sums = (epoch_sums){0.0, 0.0, 0.0, 0.0, 0};
        const int out_of_time = f != NULL && o->time_limit_set && now() >= deadline;
        if ((interrupted || out_of_time) && epoch < rc->epochs) {
            fprintf(stderr, "beta_sweep: %s in run %s after %zu epochs; state saved in %s (the "
                            "same command goes on)\n", interrupted ? "interrupted" : "time limit",
                    f->name, epoch, f->ckpt);
            exit(interrupted ? EXIT_INTERRUPTED : EXIT_TIME_LIMIT);
        }
    }
    if (curve != NULL)
        fclose(curve);
    vib_trainer_free(t);
    memcpy(params, vib_ema_values(ema), P * sizeof(float)); /* evaluate the average */
    vib_ema_free(ema);
    vib_optim_free(opt);
    return m;
}

/* One run's result: its row of the runs' CSV, and the numbers the summary needs. */
typedef struct {
    double beta, val_err, test_err, izx, izy, val_ce, train_ce, train_kl, secs;
    uint64_t seed;
    size_t epochs;
    int have;
    char row[512];
} result;

#define RUNS_HEADER                                                                            \
    "beta,log10_beta,val_error_pct,test_error_pct,izx_bits,izy_bits,val_ce_nats,"             \
    "train_ce_nats,train_kl_bits,epochs,seconds,seed\n"

/* The fields of a result row; 1 if all 12 are there. */
static int parse_row(const char *line, result *r)
{
    double lb;
    unsigned long long s;
    if (sscanf(line, "%lf,%lf,%lf,%lf,%lf,%lf,%lf,%lf,%lf,%zu,%lf,%llu", &r->beta, &lb,
               &r->val_err, &r->test_err, &r->izx, &r->izy, &r->val_ce, &r->train_ce,
               &r->train_kl, &r->epochs, &r->secs, &s) != 12)
        return 0;
    r->seed = (uint64_t)s;
    return 1;
}

/* r's row, and r's fields set to what the row says: a run trained here then counts in the
 * summary exactly as it will when a later call reads its .row, so a gathered summary does
 * not depend on which process trained which run. */
static void format_row(result *r)
{
    snprintf(r->row, sizeof r->row, "%g,%.4f,%.4f,%.4f,%.6f,%.6f,%.6f,%.6f,%.6f,%zu,%.1f,%llu\n",
             r->beta, log10(r->beta), r->val_err, r->test_err, r->izx, r->izy, r->val_ce,
             r->train_ce, r->train_kl, r->epochs, r->secs, (unsigned long long)r->seed);
    parse_row(r->row, r);
}

/* A finished run's .row file, checked to be that run's (its beta, seed and epochs). */
static int read_row(const char *path, double beta, uint64_t seed, size_t epochs, result *r)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    char line[512];
    const int ok = fgets(line, sizeof line, f) != NULL && parse_row(line, r);
    fclose(f);
    errno = 0;
    if (!ok || r->seed != seed || r->epochs != epochs || fabs(r->beta - beta) > 1e-5 * beta)
        fail_file(path, "not this run's result (remove it to train the run again)");
    r->have = 1;
    snprintf(r->row, sizeof r->row, "%s", line);
    return 1;
}

/* Mean, sample standard deviation (0 for one value), min and max of n values. */
static void stats(const double *v, size_t n, double *mean, double *sd, double *lo, double *hi)
{
    double sum = 0.0, ss = 0.0;
    *lo = *hi = v[0];
    for (size_t i = 0; i < n; i++)
        sum += v[i], *lo = fmin(*lo, v[i]), *hi = fmax(*hi, v[i]);
    *mean = sum / (double)n;
    for (size_t i = 0; i < n; i++)
        ss += (v[i] - *mean) * (v[i] - *mean);
    *sd = n > 1 ? sqrt(ss / (double)(n - 1)) : 0.0;
}

/* gnuplot -c script runs_csv error_png plane_png H(Y) n_val n_test summary_csv, run
 * without a shell so no path is ever interpreted (as train_mnist does). */
static void plot(const options *o, double h_y, size_t n_test)
{
    char hy[32], nv[32], nt[32];
    snprintf(hy, sizeof hy, "%.6f", h_y);
    snprintf(nv, sizeof nv, "%d", N_VAL);
    snprintf(nt, sizeof nt, "%zu", n_test);
    char *argv[] = {"gnuplot", "-c", "examples/beta_sweep.gp", (char *)o->csv,
                    (char *)o->error_plot, (char *)o->plane_plot, hy, nv, nt,
                    (char *)o->summary, NULL};
    fflush(stdout); /* keep our lines in order with gnuplot's */
    if (run_gnuplot(argv[2], argv, "plots"))
        printf("plots: %s %s\n", o->error_plot, o->plane_plot);
}

static FILE *open_table(const char *path, const char *header)
{
    mkdir_for(path);
    FILE *f = fopen(path, "w");
    if (f == NULL || fputs(header, f) < 0) {
        fprintf(stderr, "beta_sweep: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    return f;
}

static void close_table(FILE *f, const char *path)
{
    if (fclose(f) != 0) {
        fprintf(stderr, "beta_sweep: %s: %s\n", path, strerror(errno));
        exit(1);
    }
}

/* The summary: per beta, over its seeds' runs. */
static void summarize(const options *o, const result *res, size_t *best_b, double *best_err)
{
    FILE *f = open_table(o->summary,
                         "beta,log10_beta,seeds,val_error_mean,val_error_sd,val_error_min,"
                         "val_error_max,test_error_mean,test_error_sd,test_error_min,"
                         "test_error_max,izx_mean,izx_sd,izy_mean,izy_sd,val_ce_mean,"
                         "val_ce_sd\n");
    *best_err = INFINITY, *best_b = 0;
    for (size_t b = 0; b < o->n_betas; b++) {
        double v[6][MAX_SEEDS];
        size_t n = 0;
        for (size_t s = 0; s < o->n_seeds; s++) {
            const result *r = &res[b * o->n_seeds + s];
            if (!r->have)
                continue;
            v[0][n] = r->val_err, v[1][n] = r->test_err, v[2][n] = r->izx, v[3][n] = r->izy,
            v[4][n] = r->val_ce, n++;
        }
        if (n == 0)
            continue;
        double m[5], sd[5], lo[5], hi[5];
        for (int k = 0; k < 5; k++)
            stats(v[k], n, &m[k], &sd[k], &lo[k], &hi[k]);
        fprintf(f, "%g,%.4f,%zu,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%.6f,%.6f,%.6f,%.6f,"
                   "%.6f,%.6f\n", o->betas[b], log10(o->betas[b]), n, m[0], sd[0], lo[0], hi[0],
                m[1], sd[1], lo[1], hi[1], m[2], sd[2], m[3], sd[3], m[4], sd[4]);
        printf("summary beta=%g seeds=%zu val_error_pct=%.2f+-%.2f test_error_pct=%.2f+-%.2f "
               "izx_bits=%.3f+-%.3f izy_bits=%.4f+-%.4f\n", o->betas[b], n, m[0], sd[0], m[1],
               sd[1], m[2], sd[2], m[3], sd[3]);
        if (m[0] < *best_err)
            *best_err = m[0], *best_b = b;
    }
    close_table(f, o->summary);
}

/* The finished runs' table, the summary over seeds, the best beta's line, the figures. */
static void report(const options *o, const result *res, size_t runs, double h_y,
                   size_t n_test, double t_start)
{
    FILE *csv = open_table(o->csv, RUNS_HEADER);
    for (size_t k = 0; k < runs; k++)
        if (res[k].have && fputs(res[k].row, csv) < 0)
            fail_file(o->csv, "cannot write");
    close_table(csv, o->csv);
    size_t best = 0;
    double best_err;
    summarize(o, res, &best, &best_err);
    printf("best mean validation error %.2f%% at beta=%g | runs %s | summary %s | %.0f seconds\n",
           best_err, o->betas[best], o->csv, o->summary, now() - t_start);
    mkdir_for(o->error_plot);
    mkdir_for(o->plane_plot);
    plot(o, h_y, n_test);
}

/* ---- main ------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    options o;
    parse_args(argc, argv, &o);
    set_threads(o.threads);

    recipe rc = {.enc = {256, 256}, .latent = 32, .batch = 100, .epochs = 25, .lr = 1e-3,
                 .beta1 = 0.9, .lr_decay = 0.97, .decay_epochs = 2, .ema = 0.999};
    if (o.full)
        rc = (recipe){.enc = {1024, 1024}, .latent = 256, .batch = 100, .epochs = 200,
                      .lr = 1e-4, .beta1 = 0.5, .lr_decay = 0.97, .decay_epochs = 2,
                      .ema = 0.999, .pm1 = 1};
    if (o.epochs_set)
        rc.epochs = o.epochs;

    const float lo = rc.pm1 ? -1.0f : 0.0f;
    vib_dataset *all = NULL, *test = NULL, *train_set = NULL, *val = NULL;
    load_mnist(o.data, lo, &all, &test);
    if (vib_dataset_size(all) < N_TRAIN + N_VAL || vib_dataset_dim(test) != vib_dataset_dim(all)) {
        fprintf(stderr, "beta_sweep: %s: need %d training images and test images of the same "
                        "size (got %zu of %zu values, test %zu values)\n", o.data,
                N_TRAIN + N_VAL, vib_dataset_size(all), vib_dataset_dim(all),
                vib_dataset_dim(test));
        return 1;
    }
    check(vib_dataset_subset(all, 0, N_TRAIN, &train_set), "training split");
    check(vib_dataset_subset(all, N_TRAIN, N_VAL, &val), "validation split");
    vib_dataset_free(all);
    const size_t n_train = o.train_limit ? o.train_limit : N_TRAIN;
    /* Every model has the training split's classes: the validation and test labels must
     * be among them, checked before hours of training rather than after. */
    const size_t classes = vib_dataset_classes(train_set);
    check_labels(val, "training set (validation split)", N_TRAIN, classes);
    check_labels(test, "test set", 0, classes);
    const double h_y = label_entropy_bits(val, vib_dataset_size(val));

    char recipe_line[512];
    snprintf(recipe_line, sizeof recipe_line,
             "encoder %zu-%zu-%zu, K = %zu, linear decoder | inputs in [%g, 1] | batch %zu, "
             "Adam lr %g beta1 %g, decay %g every %g epochs, EMA %g | %zu epochs\n",
             vib_dataset_dim(train_set), rc.enc[0], rc.enc[1], rc.latent, (double)lo, rc.batch,
             rc.lr, rc.beta1, rc.lr_decay, rc.decay_epochs, rc.ema, rc.epochs);
    printf("libvib %s | %s", vib_version_string(), recipe_line);
    printf("data %s: train on %zu, validate on %d, test on %zu | %zu samples | H(Y) = %.4f "
           "bits (validation labels) | %zu betas from %g to %g | %zu seeds from %llu to %llu\n",
           o.data, n_train, N_VAL, vib_dataset_size(test), o.samples, h_y, o.n_betas,
           o.betas[0], o.betas[o.n_betas - 1], o.n_seeds, (unsigned long long)o.seeds[0],
           (unsigned long long)o.seeds[o.n_seeds - 1]);
    fflush(stdout);
    if (o.state != NULL) {
        /* the recipe file also names what decides a run's numbers beside the recipe */
        char state_line[700];
        snprintf(state_line, sizeof state_line, "%.*s | train on %zu | %zu samples\n",
                 (int)strcspn(recipe_line, "\n"), recipe_line, n_train, o.samples);
        check_recipe(o.state, state_line);
        const char *stop_after = getenv("BETA_SWEEP_TEST_STOP_AFTER");
        if (stop_after != NULL)
            test_stop_after = parse_size("BETA_SWEEP_TEST_STOP_AFTER", stop_after, 1,
                                         (size_t)1 << 40);
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_sigint;
        sa.sa_flags = SA_RESETHAND | SA_RESTART; /* a second Ctrl-C ends the program at once */
        sigaction(SIGINT, &sa, NULL);
    }

    const size_t runs = o.n_betas * o.n_seeds;
    result *res = calloc(runs, sizeof *res);
    if (res == NULL)
        fail_file(o.state ? o.state : "beta_sweep", "out of memory");
    const double t_start = now(), deadline = t_start + (double)o.time_limit;
    size_t trained_epochs = 0, finished = 0, busy = 0;
    double trained_secs = 0.0;
    for (size_t b = 0; b < o.n_betas; b++)
        for (size_t s = 0; s < o.n_seeds; s++) {
            const double beta = o.betas[b], t0 = now();
            const uint64_t seed = o.seeds[s];
            result *r = &res[b * o.n_seeds + s];
            run_files files, *f = NULL;
            int lock_fd = -1;
            if (o.state != NULL) {
                f = &files;
                run_paths(o.state, beta, seed, f);
                if (read_row(f->row, beta, seed, rc.epochs, r)) {
                    printf("result beta=%g seed=%llu val_error_pct=%.2f test_error_pct=%.2f "
                           "izx_bits=%.3f izy_bits=%.4f (finished before: %s)\n", beta,
                           (unsigned long long)seed, r->val_err, r->test_err, r->izx, r->izy,
                           f->row);
                    finished++;
                    continue;
                }
                /* one process trains a run: another sharing DIR leaves it alone */
                lock_fd = open(f->lock, O_RDWR | O_CREAT, 0644);
                if (lock_fd < 0)
                    fail_file(f->lock, "cannot create");
                if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
                    fprintf(stderr, "beta_sweep: %s: another process is training it; left "
                                    "out here\n", f->name);
                    close(lock_fd);
                    busy++;
                    continue;
                }
                if (read_row(f->row, beta, seed, rc.epochs, r)) { /* finished meanwhile */
                    unlink(f->lock);
                    close(lock_fd);
                    finished++;
                    continue;
                }
            }
            double train_ce, train_kl, secs;
            size_t epochs_now = 0;
            vib_model *m = train(&rc, &o, train_set, n_train, val, beta, seed, f, deadline,
                                 &train_ce, &train_kl, &secs, &epochs_now);
            const double t_eval = now();
            const eval v = evaluate(m, val, "training set (validation split)", N_TRAIN,
                                    o.samples, 1);
            const eval t = evaluate(m, test, "test set", 0, o.samples, 0);
            vib_model_free(m);
            if (v.sigma_zero)
                fprintf(stderr, "beta_sweep: beta %g seed %llu: %zu sigmas underflowed to 0 and "
                                "were floored at FLT_MIN in the KL rate\n", beta,
                        (unsigned long long)seed, v.sigma_zero);
            *r = (result){.beta = beta, .seed = seed, .val_err = v.error_pct,
                          .test_err = t.error_pct, .izx = v.izx_bits,
                          .izy = h_y - v.ce_nats / log(2.0), .val_ce = v.ce_nats,
                          .train_ce = train_ce, .train_kl = train_kl, .epochs = rc.epochs,
                          .secs = secs + (now() - t_eval), .have = 1};
            format_row(r);
            printf("result beta=%g seed=%llu val_error_pct=%.2f test_error_pct=%.2f "
                   "izx_bits=%.3f izy_bits=%.4f\n", beta, (unsigned long long)seed, r->val_err,
                   r->test_err, r->izx, r->izy);
            fflush(stdout);
            if (f != NULL) { /* the result, then the checkpoint goes */
                write_atomically(f->row, r->row);
                unlink(f->ckpt);
                unlink(f->part); /* left by a kill between the last checkpoint and its removal */
                unlink(f->lock); /* a process waiting on it finds the row once it has it */
                close(lock_fd);  /* releases the lock */
            }
            finished++;
            trained_epochs += epochs_now, trained_secs += now() - t0;
            /* the time to go: what this process's epochs took, over the epochs left */
            size_t left = 0;
            for (size_t k = b * o.n_seeds + s + 1; k < runs; k++)
                left += rc.epochs;
            fprintf(stderr, "beta_sweep: run %zu/%zu (beta %g, seed %llu) took %.0fs; about "
                            "%.0fs to go at most\n", b * o.n_seeds + s + 1, runs, beta,
                    (unsigned long long)seed, now() - t0,
                    trained_epochs ? trained_secs / (double)trained_epochs * (double)left : 0.0);
            const int out_of_time = o.time_limit_set && now() >= deadline;
            if ((interrupted || out_of_time) && finished + busy < runs) {
                fprintf(stderr, "beta_sweep: %s after run %s; %zu of %zu runs finished (the "
                                "same command goes on)\n",
                        interrupted ? "interrupted" : "time limit", f->name, finished, runs);
                return interrupted ? EXIT_INTERRUPTED : EXIT_TIME_LIMIT;
            }
        }

    if (finished == 0) /* every run is another process's: nothing to tabulate */
        fprintf(stderr, "beta_sweep: all %zu runs are trained by other processes sharing %s: "
                        "no tables or plots (the same command again, once they finish, "
                        "writes them)\n", busy, o.state);
    else
        report(&o, res, runs, h_y, vib_dataset_size(test), t_start);
    if (busy > 0 && finished > 0)
        fprintf(stderr, "beta_sweep: %zu runs left out (trained by another process); the "
                        "tables hold the %zu finished ones: the same command again, once they "
                        "finish, holds all\n", busy, finished);
    free(res);
    vib_dataset_free(train_set);
    vib_dataset_free(val);
    vib_dataset_free(test);
    return busy > 0 ? EXIT_INCOMPLETE : 0;
}
