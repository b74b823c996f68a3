/*
 * train_mnist - train a VIB classifier on MNIST with libvib.
 *
 *   train_mnist [options]            (train_mnist --help lists them)
 *
 * Each epoch prints the training loss, cross-entropy, the KL rate in bits (an upper
 * bound on I(Z;X)), the lower bound H(Y) - CE on I(Z;Y) in bits, and the test error with
 * one posterior sample and with S samples; a CSV of these and a PNG learning curve
 * (gnuplot) go under results/. The last stdout line is
 *   result test_error_pct=<x> epochs=<n> beta=<b> seconds=<s>
 * --paper selects the recipe of Alemi et al. (ICLR 2017): inputs in [-1, 1], a
 * 784-1024-1024 encoder, K = 256, batch 100, Adam (lr 1e-4, beta1 0.5) decayed by 0.97
 * every 2 epochs, an exponential moving average (0.999) of the weights for evaluation,
 * 200 epochs, 12 posterior samples at test time.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXAMPLE_NAME "train_mnist"
#include "example_util.h"

/* Built a second time with -DTRAIN_MNIST_MPI (and mpicc) as examples/train_mnist_mpi:
 * data-parallel training over MPI through libvib-mpi, each rank training its shard of
 * every global batch (the same model as one process, to float rounding); rank 0 writes
 * the output, the CSV, the checkpoints and the model. `make mpi` builds it. */
#ifdef TRAIN_MNIST_MPI
#include <mpi.h>

#include "vib_mpi.h"
static vib_mpi *mpi_ctx;
static int mpi_rank, mpi_size = 1;
/* every rank's step, and an epoch's means over the global batch's rows */
#define TRAIN_EPOCH(tr, x, y, ce, kl, loss) vib_mpi_epoch(mpi_ctx, x, y, ce, kl, loss)

/* check() for a vib_mpi_* call: its message is vib_mpi_last_error() (the failing rank's
 * reason, on every rank). */
static void check_mpi(int rc, const char *what)
{
    if (rc != VIB_OK) {
        fprintf(stderr, "train_mnist (rank %d): %s: %s (%s)\n", mpi_rank, what,
                vib_mpi_last_error(), vib_status_string(rc));
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
}
#define CHECK_STATE check_mpi

/* The rows this rank trains in an epoch of n rows in global batches of `batch`, from
 * step `from` on: its shard [rows r / P, rows (r + 1) / P) of each. */
static double shard_rows(size_t n, size_t batch, size_t from)
{
    const size_t r = (size_t)mpi_rank, p = (size_t)mpi_size;
    double rows = 0.0;
    for (size_t first = from * batch; first < n; first += batch) {
        const size_t b = n - first < batch ? n - first : batch;
        rows += (double)(b * (r + 1) / p - b * r / p);
    }
    return rows;
}

/* An epoch's means over all ranks' rows, from each rank's means over its own. */
static void global_means(size_t n, size_t batch, size_t from, double *ce, double *kl,
                         double *loss)
{
    const double rows = shard_rows(n, batch, from);
    double part[4] = {*ce * rows, *kl * rows, *loss * rows, rows}, all[4];
    MPI_Allreduce(part, all, 4, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    *ce = all[0] / all[3], *kl = all[1] / all[3], *loss = all[2] / all[3];
}
#define SAVE_STATE(tr, path) vib_mpi_save(tr, path, MPI_COMM_WORLD)
#else
#define CHECK_STATE check
#define TRAIN_EPOCH(tr, x, y, ce, kl, loss) vib_trainer_epoch(tr, x, y, ce, kl, loss)
#define SAVE_STATE(tr, path) vib_trainer_save(tr, path)
#endif

typedef struct {
    const char *data, *save, *load, *csv, *plot, *checkpoint, *resume;
    size_t epochs, latent, batch, samples, threads, train_limit, train_samples, mixture;
    size_t enc[8], n_enc, dec[8], n_dec;
    double beta, lr, beta1, beta2, lr_decay, decay_epochs, ema;
    uint64_t seed;
    int deterministic, pm1, beta_set, overlap, objective, train_samples_set, objective_set;
} options;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: train_mnist [options]\n"
            "  --data DIR            MNIST directory (default data/mnist; `make data` fetches it)\n"
            "  --epochs N            training epochs (default 10; 0 with --load: evaluate only)\n"
            "  --beta B              KL weight beta (default 1e-3)\n"
            "  --latent K            latent dimension (default 64)\n"
            "  --hidden LIST         encoder hidden sizes, e.g. 1024,1024 (default 512,512)\n"
            "  --decoder-hidden LIST decoder hidden sizes (default none: a linear softmax)\n"
            "  --batch N             batch size (default 100)\n"
            "  --lr LR               Adam learning rate (default 1e-3)\n"
            "  --beta1 B1            Adam beta1 (default 0.9)\n"
            "  --lr-decay R          multiply the rate by R every --decay-epochs (default 0.97)\n"
            "  --decay-epochs E      epochs per decay step (default 2)\n"
            "  --ema D               evaluate an exponential moving average of the weights\n"
            "                        with decay D (default 0.999; 0 turns it off)\n"
            "  --samples S           posterior samples at test time (default 12)\n"
            "  --train-samples S     posterior draws per example in training (default 1;\n"
            "                        the encoder runs once per example whatever S is)\n"
            "  --objective mean|logmeanexp\n"
            "                        how the draws' cross-entropies combine: their mean\n"
            "                        (default), or -log of their mean probability\n"
            "  --mixture M           a learned marginal r(z), a mixture of M Gaussians, in\n"
            "                        place of N(0, I) (default 0: N(0, I); a new model only)\n"
            "  --seed N              seed of the weights, the noise and the shuffling (default 1)\n"
            "  --threads N           threads (default: BLIS_NUM_THREADS, else all CPUs)\n"
            "  --train-limit N       train on the first N training images only\n"
            "  --inputs unit|pm1     pixel scaling to [0, 1] (default) or [-1, 1]\n"
            "  --deterministic       the baseline: z = mu, no KL\n"
            "  --overlap             train_mnist_mpi: sum each layer's gradient across the\n"
            "                        ranks while the backward pass computes the layers below\n"
            "  --paper               the paper's recipe (see the top of train_mnist.c)\n"
            "  --save FILE           save the evaluated model (the EMA weights if on) at the end\n"
            "  --load FILE           start from a saved model (its architecture wins)\n"
            "  --checkpoint FILE     save the whole training state there after every epoch,\n"
            "                        and on Ctrl-C (SIGINT) at the end of the current step\n"
            "  --resume FILE         continue the run a --checkpoint file holds (give the same\n"
            "                        options as the run that wrote it)\n"
            "  --csv FILE            per-epoch metrics (default results/train_mnist.csv)\n"
            "  --plot FILE           learning curve PNG (default results/train_mnist.png)\n");
}

/* ---- option parsing: every value is checked, a bad one ends the program clearly ---- */

/* "none" or up to `max` comma-separated sizes; an empty entry is an error. */
static size_t parse_list(const char *opt, const char *s, size_t *out, size_t max)
{
    size_t n = 0;
    if (strcmp(s, "none") == 0)
        return 0;
    char buf[256];
    if (strlen(s) >= sizeof buf)
        die("%s: list too long: '%s'", opt, s);
    strcpy(buf, s);
    for (char *tok = buf, *comma; tok; tok = comma ? comma + 1 : NULL) {
        comma = strchr(tok, ',');
        if (comma)
            *comma = '\0';
        if (n == max)
            die("%s: at most 8 sizes, got '%s'", opt, s);
        out[n++] = parse_size(opt, tok, 1, 1 << 16); /* an empty entry fails here */
    }
    if (n == 0)
        die("%s: empty list '%s'", opt, s);
    return n;
}

static void parse_args(int argc, char **argv, options *o)
{
    *o = (options){.data = "data/mnist", .csv = "results/train_mnist.csv",
                   .plot = "results/train_mnist.png", .epochs = 10, .latent = 64,
                   .batch = 100, .samples = 12, .train_samples = 1, .enc = {512, 512}, .n_enc = 2,
                   .beta = 1e-3, .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .lr_decay = 0.97,
                   .decay_epochs = 2, .ema = 0.999, .seed = 1};
    /* --paper first, so later options can override single settings of the recipe */
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--paper") == 0) {
            o->pm1 = 1, o->enc[0] = o->enc[1] = 1024, o->n_enc = 2, o->latent = 256;
            o->batch = 100, o->lr = 1e-4, o->beta1 = 0.5, o->lr_decay = 0.97;
            o->decay_epochs = 2, o->ema = 0.999, o->epochs = 200, o->samples = 12;
        }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            EXAMPLE_EXIT(0);
        }
        if (strcmp(a, "--paper") == 0)
            continue;
        if (strcmp(a, "--deterministic") == 0) {
            o->deterministic = 1;
            continue;
        }
        if (strcmp(a, "--overlap") == 0) {
#ifndef TRAIN_MNIST_MPI
            die("--overlap is train_mnist_mpi's (a reduction across MPI ranks)");
#endif
            o->overlap = 1;
            continue;
        }
        static const char *const valued[] = {
            "--data", "--save", "--load", "--csv", "--plot", "--epochs", "--latent", "--batch",
            "--samples", "--threads", "--train-limit", "--seed", "--beta", "--lr", "--beta1",
            "--lr-decay", "--decay-epochs", "--ema", "--hidden", "--decoder-hidden", "--inputs",
            "--checkpoint", "--resume", "--train-samples", "--objective", "--mixture"};
        const char *v = option_value(argc, argv, &i, valued, sizeof valued / sizeof valued[0]);
        if (!strcmp(a, "--data")) o->data = v;
        else if (!strcmp(a, "--save")) o->save = v;
        else if (!strcmp(a, "--load")) o->load = v;
        else if (!strcmp(a, "--checkpoint")) o->checkpoint = v;
        else if (!strcmp(a, "--resume")) o->resume = v;
        else if (!strcmp(a, "--csv")) o->csv = v;
        else if (!strcmp(a, "--plot")) o->plot = v;
        else if (!strcmp(a, "--epochs")) o->epochs = parse_size(a, v, 0, 100000);
        else if (!strcmp(a, "--latent")) o->latent = parse_size(a, v, 1, 1 << 16);
        else if (!strcmp(a, "--batch")) o->batch = parse_size(a, v, 1, 60000);
        else if (!strcmp(a, "--samples")) o->samples = parse_size(a, v, 0, 1000);
        else if (!strcmp(a, "--threads")) o->threads = parse_size(a, v, 1, 1024);
        else if (!strcmp(a, "--train-limit")) o->train_limit = parse_size(a, v, 1, SIZE_MAX);
        else if (!strcmp(a, "--seed")) o->seed = parse_size(a, v, 0, SIZE_MAX);
        else if (!strcmp(a, "--beta")) o->beta = parse_double(a, v, 0, 1e6), o->beta_set = 1;
        else if (!strcmp(a, "--lr")) o->lr = parse_double(a, v, 1e-12, 1e6);
        else if (!strcmp(a, "--beta1")) o->beta1 = parse_double(a, v, 0, 0.999999);
        else if (!strcmp(a, "--lr-decay")) o->lr_decay = parse_double(a, v, 1e-6, 1);
        else if (!strcmp(a, "--decay-epochs")) o->decay_epochs = parse_double(a, v, 1e-3, 1e6);
        else if (!strcmp(a, "--ema")) o->ema = parse_double(a, v, 0, 0.999999);
        else if (!strcmp(a, "--hidden")) o->n_enc = parse_list(a, v, o->enc, 8);
        else if (!strcmp(a, "--decoder-hidden")) o->n_dec = parse_list(a, v, o->dec, 8);
        else if (!strcmp(a, "--train-samples"))
            o->train_samples = parse_size(a, v, 1, 1024), o->train_samples_set = 1;
        else if (!strcmp(a, "--mixture")) o->mixture = parse_size(a, v, 0, 1024);
        else if (!strcmp(a, "--objective")) {
            if (strcmp(v, "mean") && strcmp(v, "logmeanexp"))
                die("--objective takes mean or logmeanexp, got '%s'", v);
            o->objective = strcmp(v, "mean") ? VIB_OBJECTIVE_LOGMEANEXP : VIB_OBJECTIVE_MEAN;
            o->objective_set = 1;
        }
        else if (!strcmp(a, "--inputs")) {
            if (strcmp(v, "unit") && strcmp(v, "pm1"))
                die("--inputs takes unit or pm1, got '%s'", v);
            o->pm1 = strcmp(v, "pm1") == 0;
        }
    }
}

/* ---- helpers --------------------------------------------------------------------- */

/* The bar covers the current epoch; the ETA, the rest of the run at this epoch's pace. */
typedef struct {
    size_t epoch, epochs;
    double t0;
} epoch_progress;

/* Set by SIGINT when --checkpoint is given: the trainer stops after the current step. */
static volatile sig_atomic_t interrupted;

#ifndef TRAIN_MNIST_MPI
static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}
#endif

/* After Ctrl-C: save the state and say how to continue; the exit status is 130. */
/* A diverged epoch (VIB_ERR_NUMERIC): say where and why, keep the last good step's state
 * in the checkpoint if there is one, and end with status 1. */
static int diverged(const vib_trainer *tr, const options *o)
{
    char why[512];
#ifdef TRAIN_MNIST_MPI
    snprintf(why, sizeof why, "%s", vib_mpi_last_error());
    if (mpi_rank == 0) /* every rank holds the same state: one report */
#else
    snprintf(why, sizeof why, "%s", vib_last_error());
#endif
        report_divergence(tr, why);
    if (o->checkpoint != NULL) {
        CHECK_STATE(SAVE_STATE(tr, o->checkpoint), "checkpoint");
#ifdef TRAIN_MNIST_MPI
        if (mpi_rank == 0)
#endif
            /* --resume would restore the schedule too: --load takes the weights alone */
            fprintf(stderr, "train_mnist: that state is saved in %s; to go on from its weights "
                            "with a lower rate than %g: --load %s --lr R\n", o->checkpoint,
                    o->lr, o->checkpoint);
    } else {
#ifdef TRAIN_MNIST_MPI
        if (mpi_rank == 0)
#endif
            fprintf(stderr, "train_mnist: try a lower --lr than %g (with --checkpoint FILE, "
                            "that state is saved there)\n", o->lr);
    }
#ifdef TRAIN_MNIST_MPI
    vib_mpi_detach(mpi_ctx);
    MPI_Finalize();
#endif
    return 1;
}

static int save_and_leave(const vib_trainer *tr, const char *checkpoint)
{
    CHECK_STATE(SAVE_STATE(tr, checkpoint), "checkpoint");
    fprintf(stderr, "\ntrain_mnist: interrupted after %llu epochs and %llu steps; state saved "
                    "in %s (continue with --resume %s)\n",
            (unsigned long long)vib_trainer_epochs_done(tr),
            (unsigned long long)vib_trainer_step_in_epoch(tr), checkpoint, checkpoint);
    return 130;
}

/* The trainer's callback: the progress bar, and the request to stop. */
static int progress(void *user, uint64_t epoch, uint64_t step, uint64_t steps, double ce,
                    double kl, double loss)
{
    (void)epoch, (void)ce, (void)kl, (void)loss;
    const epoch_progress *p = user;
    const size_t done = (size_t)step, total = (size_t)steps;
    double t;
    if (progress_due(done, total, &t)) {
        double per_step = done ? (t - p->t0) / (double)done : 0.0;
        double eta =
            per_step * ((double)(total - done) + (double)total * (double)(p->epochs - p->epoch));
        char label[64], tail[32];
        snprintf(label, sizeof label, "epoch %zu/%zu", p->epoch, p->epochs);
        snprintf(tail, sizeof tail, "ETA %5.0fs", eta);
        progress_draw(label, done, total, tail, 70);
    }
    return interrupted;
}

/* Test error (%) with `samples` draws (0: at the posterior mean), with the averaged
 * weights if ema is not NULL (the model's own stay as they are). */
static double test_error(vib_model *m, const vib_ema *ema, const vib_dataset *test,
                         size_t samples)
{
    double error;
    check(vib_model_evaluate(m, ema, vib_dataset_size(test), vib_dataset_images(test),
                             vib_dataset_labels(test), samples, &error, NULL, NULL, NULL),
          "evaluate");
    return 100.0 * error;
}

/* gnuplot -c script csv png. */
static void plot(const options *o)
{
    char *argv[] = {"gnuplot", "-c", "examples/learning_curve.gp", (char *)o->csv,
                    (char *)o->plot, NULL};
    if (run_gnuplot(argv[2], argv, o->plot))
        printf("learning curve: %s\n", o->plot);
}

/* ---- main ------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
#ifdef TRAIN_MNIST_MPI
    int thread_level; /* --overlap's communication thread needs SERIALIZED */
    MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &thread_level);
    MPI_Comm_rank(MPI_COMM_WORLD, &mpi_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &mpi_size);
#endif
    options o;
    parse_args(argc, argv, &o);
    if (o.epochs == 0 && o.load == NULL)
        die("--epochs 0 only makes sense with --load FILE");
    if (o.mixture > 0 && o.load != NULL)
        die("--mixture makes a new model: a loaded one keeps its own marginal");
#ifdef TRAIN_MNIST_MPI
    if (mpi_rank != 0) { /* rank 0 speaks and writes for all */
        if (freopen("/dev/null", "w", stdout) == NULL)
            die("cannot silence rank %d", mpi_rank);
        o.csv = "/dev/null", o.plot = NULL, o.save = NULL;
    }
#endif
    set_threads(o.threads);

    const float lo = o.pm1 ? -1.0f : 0.0f;
    vib_dataset *train = NULL, *test = NULL;
#ifdef TRAIN_MNIST_MPI
    /* A rank that cannot read its data stops every rank, with its reason, at once. */
    if (vib_mpi_agree(load_mnist_status(o.data, lo, &train, &test), MPI_COMM_WORLD) != VIB_OK) {
        fprintf(stderr, "train_mnist (rank %d): the data: %s\n", mpi_rank, vib_mpi_last_error());
        MPI_Finalize();
        return 1;
    }
#else
    load_mnist(o.data, lo, &train, &test);
#endif
    size_t n_train = vib_dataset_size(train);
    if (o.train_limit && o.train_limit < n_train)
        n_train = o.train_limit;
    const size_t dim = vib_dataset_dim(train), classes = vib_dataset_classes(train);
    if (vib_dataset_dim(test) != dim) {
        fprintf(stderr, "train_mnist: train images have %zu values, test images %zu\n", dim,
                vib_dataset_dim(test));
        return 1;
    }

    vib_model *m = NULL;
    if (o.load) {
        check(vib_model_load(o.load, &m), "load");
        if (vib_model_input_dim(m) != dim || vib_model_classes(m) < classes) {
            fprintf(stderr, "train_mnist: %s expects %zu inputs and %zu classes, the data has "
                            "%zu and %zu\n", o.load, vib_model_input_dim(m),
                    vib_model_classes(m), dim, classes);
            return 1;
        }
        if (o.deterministic)
            check(vib_model_set_deterministic(m, 1), "set deterministic");
    } else {
        check(vib_model_create_mixture(dim, o.n_enc, o.enc, o.latent, o.n_dec, o.dec, classes,
                                       0, o.mixture, o.seed, &m), "create the model");
        check(vib_model_set_deterministic(m, o.deterministic), "set deterministic");
    }
    /* The model's classes come from the training labels (or the loaded file): say now,
     * not after training, if the test set holds a label beyond them. */
    check_labels(test, "test set", 0, vib_model_classes(m));
    if (!o.load || o.beta_set)
        check(vib_model_set_beta(m, (float)o.beta), "set beta");
    /* a loaded model keeps its own draws per example and objective, each unless given */
    if (!o.load || o.train_samples_set || o.objective_set)
        check(vib_model_set_train_samples(
                  m, o.load && !o.train_samples_set ? vib_model_train_samples(m) : o.train_samples,
                  o.load && !o.objective_set ? vib_model_train_objective(m) : o.objective),
              "set train samples");
    check(vib_model_reseed(m, o.seed), "seed the noise");

    const size_t P = vib_model_num_params(m);
    float *params = vib_model_params(m);
    vib_optim *opt = NULL;
    vib_ema *ema = NULL;
    check(vib_adam_create(P, (float)o.lr, (float)o.beta1, (float)o.beta2, 1e-8f, &opt), "Adam");
    if (o.ema > 0.0)
        check(vib_ema_create(P, (float)o.ema, params, &ema), "EMA");
    /* The library's trainer: seeded shuffling, the staircase rate (decayed every
     * decay_epochs epochs of steps), one Adam step and average update per batch. */
    vib_trainer *tr = NULL;
    check(vib_trainer_create(m, opt, ema, n_train, o.batch, o.seed, &tr), "trainer");
    const double decay_steps =
        fmax(1.0, o.decay_epochs * (double)vib_trainer_steps_per_epoch(tr));
    check(vib_trainer_set_schedule(tr, (float)o.lr, (float)o.lr_decay, (uint64_t)decay_steps),
          "schedule");
#ifdef TRAIN_MNIST_MPI
    check_mpi(vib_mpi_attach(tr, MPI_COMM_WORLD, &mpi_ctx), "MPI");
    if (o.overlap)
        check_mpi(vib_mpi_set_overlap(mpi_ctx, 1), "--overlap");
    printf("MPI: %d ranks, each training its shard of every global batch of %zu%s\n", mpi_size,
           o.batch, o.overlap ? ", the reduction overlapped with the backward pass" : "");
#endif
    if (o.resume) {
        check(vib_trainer_load(tr, o.resume), "resume");
        printf("resumed %s: %llu epochs and %llu steps done; the weights, the model's "
               "settings (beta, sigma offset, training draws and objective), the optimizer's "
               "state and rate, the schedule and the shuffle come from it, not from the "
               "options\n", o.resume,
               (unsigned long long)vib_trainer_epochs_done(tr),
               (unsigned long long)vib_trainer_step_in_epoch(tr));
    }
    if (o.checkpoint)
        mkdir_for(o.checkpoint);
#ifndef TRAIN_MNIST_MPI /* under MPI a rank alone cannot stop: Ctrl-C ends mpirun */
    if (o.checkpoint) { /* Ctrl-C: stop after the current step and save the state */
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_sigint;
        /* a second Ctrl-C ends the program at once; interrupted calls restart */
        sa.sa_flags = SA_RESETHAND | SA_RESTART;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
    }
#endif

    char desc[256];
    const int desc_len = vib_model_describe(m, desc, sizeof desc); /* length, or a status */
    check(desc_len < 0 ? desc_len : VIB_OK, "describe");
    printf("libvib %s | model %s | %zu parameters\n", vib_version_string(), desc, P);
    printf("data %s: %zu train, %zu test, %zu classes, inputs in [%g, 1] | batch %zu, Adam lr %g "
           "beta1 %g, decay %g every %g epochs, EMA %g, %zu test samples\n",
           o.data, n_train, vib_dataset_size(test), classes, (double)lo, o.batch, o.lr,
           o.beta1, o.lr_decay, o.decay_epochs, o.ema, o.samples);

    if (o.save) { /* find out now, not after hours of training, that the path is bad */
        mkdir_for(o.save);
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", o.save);
        char *slash = strrchr(dir, '/');
        if (slash)
            *slash = '\0';
        if (access(slash ? dir : ".", W_OK) != 0) {
            fprintf(stderr, "train_mnist: cannot write %s: %s\n", o.save, strerror(errno));
            return 1;
        }
    }
    FILE *csv = NULL;
    if (o.epochs > 0) {
        mkdir_for(o.csv);
        csv = fopen(o.csv, o.resume ? "a" : "w"); /* a resumed run adds its epochs */
        if (csv == NULL) {
            fprintf(stderr, "train_mnist: %s: %s\n", o.csv, strerror(errno));
            return 1;
        }
        if (ftell(csv) == 0) /* a new file (a resumed run appends to its run's) */
            fprintf(csv, "epoch,seconds,lr,loss,ce_nats,kl_bits,izy_lower_bits,"
                         "test_error_1_pct,test_error_s_pct\n");
    }

    const double h_y = label_entropy_bits(train, n_train);

    const double t_start = now();
    double err1 = 0.0, errs = 0.0;
    size_t trained = 0; /* epochs trained by this run */
    for (size_t epoch = (size_t)vib_trainer_epochs_done(tr) + 1; epoch <= o.epochs; epoch++) {
        epoch_progress bar = {epoch, o.epochs, now()};
        const uint64_t resumed_at = vib_trainer_step_in_epoch(tr); /* > 0: a partial epoch */
#ifdef TRAIN_MNIST_MPI
        if (mpi_rank == 0) /* one progress bar */
#endif
            check(vib_trainer_set_callback(tr, progress, &bar), "callback");
        double mean_ce, mean_kl, mean_loss;
        const int trained_rc = TRAIN_EPOCH(tr, vib_dataset_images(train),
                                           vib_dataset_labels(train), &mean_ce, &mean_kl,
                                           &mean_loss);
        if (trained_rc == VIB_ERR_NUMERIC)
            return diverged(tr, &o);
        CHECK_STATE(trained_rc, "train");
#ifdef TRAIN_MNIST_MPI
        global_means(n_train, o.batch, (size_t)resumed_at, &mean_ce, &mean_kl, &mean_loss);
#endif
        /* Ctrl-C: the state, then out; an epoch that ended is reported first */
        const bool stop = vib_trainer_stopped(tr) || interrupted;
        if (stop && vib_trainer_step_in_epoch(tr) != 0)
            return save_and_leave(tr, o.checkpoint);
        trained++;
        const double n = (double)n_train, sum_loss = mean_loss * n, sum_ce = mean_ce * n;
        const double sum_kl = mean_kl * n, lr = vib_trainer_lr(tr);
        const double train_s = now() - bar.t0;
        /* the averaged weights, if any, evaluated; training goes on with the model's */
        err1 = test_error(m, ema, test, vib_model_deterministic(m) ? 0 : 1);
        errs = test_error(m, ema, test, o.samples);
        const double ce = sum_ce / n, kl_bits = sum_kl / n / log(2.0);
        const double izy = h_y - ce / log(2.0);
        /* the checkpoint before the line: a crash between them loses a line, never
         * writes one twice */
        if (o.checkpoint)
            CHECK_STATE(SAVE_STATE(tr, o.checkpoint), "checkpoint");
        printf("epoch %3zu  %6.1fs  lr %.3g  loss %.4f  ce %.4f  kl %.2f bits  I(Z;Y) >= %.3f bits"
               "  test error %.2f%% (1 sample)  %.2f%% (%zu samples)",
               epoch, train_s, lr, sum_loss / n, ce, kl_bits, izy, err1, errs, o.samples);
        if (resumed_at > 0) /* the means and time of the steps this run took */
            printf("  (resumed after step %llu)", (unsigned long long)resumed_at);
        printf("\n");
        fprintf(csv, "%zu,%.3f,%.6g,%.6f,%.6f,%.6f,%.6f,%.4f,%.4f\n", epoch, train_s, lr,
                sum_loss / n, ce, kl_bits, izy, err1, errs);
        fflush(csv);
        fflush(stdout);
        if (stop)
            return save_and_leave(tr, o.checkpoint);
    }
    if (csv) {
        fclose(csv);
        if (o.plot != NULL) /* NULL: a rank other than 0, which writes nothing */
            plot(&o);
    }
    if (ema) /* from here on the model is the one evaluated */
        memcpy(params, vib_ema_values(ema), P * sizeof(float));
    if (trained == 0) { /* nothing trained: evaluate what was loaded or resumed */
        err1 = test_error(m, NULL, test, vib_model_deterministic(m) ? 0 : 1);
        errs = test_error(m, NULL, test, o.samples);
        printf("evaluation of %s: test error %.2f%% (1 sample)  %.2f%% (%zu samples)\n",
               o.resume ? o.resume : o.load ? o.load : "the new model", err1, errs, o.samples);
    }
    if (o.save) {
        mkdir_for(o.save);
        check(vib_model_save(m, o.save), "save");
        printf("saved %s\n", o.save);
    }
    printf("result test_error_pct=%.2f epochs=%zu beta=%g seconds=%.1f\n", errs, o.epochs,
           vib_model_deterministic(m) ? 0.0 : (double)vib_model_beta(m), now() - t_start);
#ifdef TRAIN_MNIST_MPI
    vib_mpi_detach(mpi_ctx);
#endif
    vib_trainer_free(tr);
    vib_ema_free(ema);
    vib_optim_free(opt);
    vib_model_free(m);
    vib_dataset_free(train);
    vib_dataset_free(test);
#ifdef TRAIN_MNIST_MPI
    MPI_Finalize();
#endif
    return 0;
}
