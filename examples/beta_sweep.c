/*
 * beta_sweep - validation error and the information plane of a VIB classifier against
 * beta (the problem set's question 3 (c): the U-shaped validation error; the paper's
 * Figures 1 and 3).
 *
 *   beta_sweep [options]             (beta_sweep --help lists them)
 *
 * For every beta of a log grid (default 1e-8, 1e-7, ..., 1e-1, 1) one model is trained
 * from the same initial weights (same seed) on the first 50,000 MNIST training images
 * and evaluated on the last 10,000 (validation) and on the 10,000 test images:
 *
 *   val_error_pct, test_error_pct  error with S posterior samples (probabilities averaged)
 *   izx_bits   the mean KL rate KL(p(z|x) || N(0, I)) in bits over the validation set,
 *              the variational upper bound on I(Z;X) (computed from vib_model_encode)
 *   izy_bits   H(Y) - CE in bits over the validation set, the lower bound on I(Z;Y), with
 *              CE = the mean over rows AND over the S single-sample draws of -log q(y|z)
 *              (the paper's estimate, E_z[-log q(y|z)], not -log of the averaged
 *              probability, which would be smaller and overstate the bound)
 *
 * One stdout line per beta:
 *   result beta=<b> val_error_pct=<e> test_error_pct=<t> izx_bits=<x> izy_bits=<y>
 * and a CSV (results/beta_sweep.csv) with two PNGs drawn by examples/beta_sweep.gp:
 * results/beta_sweep_error.png (errors against beta) and results/information_plane.png.
 *
 * The default recipe is sized to finish in about ten minutes on two cores: inputs in
 * [0, 1], a 784-256-256 encoder, K = 32, a linear decoder, batch 100, Adam (lr 1e-3)
 * decayed by 0.97 every 2 epochs, an exponential moving average (0.999) of the weights
 * for evaluation, 25 epochs. --full is the paper's recipe (inputs in [-1, 1], 784-1024-
 * 1024, K = 256, Adam lr 1e-4 with beta1 0.5, the same decay and EMA, 200 epochs): hours.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXAMPLE_NAME "beta_sweep"
#include "example_util.h"

enum { MAX_BETAS = 64, N_TRAIN = 50000, N_VAL = 10000 };

typedef struct {
    size_t enc[2], latent, batch, epochs;
    double lr, beta1, lr_decay, decay_epochs, ema;
    int pm1;
} recipe;

typedef struct {
    const char *data, *csv, *error_plot, *plane_plot;
    size_t epochs, samples, threads, train_limit, n_betas;
    double betas[MAX_BETAS];
    uint64_t seed;
    int full, epochs_set;
} options;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: beta_sweep [options]\n"
            "  --data DIR          MNIST directory (default data/mnist; `make data` fetches it)\n"
            "  --betas LIST        betas, comma-separated numbers > 0 and/or ranges LO:HI[:N]\n"
            "                      with N values per decade (default 1e-8:1, i.e. 1e-8, 1e-7,\n"
            "                      ..., 1e-1, 1)\n"
            "  --epochs N          training epochs per beta (default 25; 200 with --full)\n"
            "  --full              the paper's recipe: inputs in [-1, 1], 784-1024-1024, K = 256,\n"
            "                      Adam lr 1e-4 beta1 0.5, 200 epochs (hours on two cores)\n"
            "  --samples S         posterior samples at evaluation (default 12)\n"
            "  --seed N            seed of the weights, the noise and the shuffling (default 1)\n"
            "  --threads N         threads (default: BLIS_NUM_THREADS, else all CPUs)\n"
            "  --train-limit N     train on the first N of the 50,000 training images only\n"
            "  --csv FILE          results table (default results/beta_sweep.csv)\n"
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
    return m;
}

static void parse_args(int argc, char **argv, options *o)
{
    *o = (options){.data = "data/mnist", .csv = "results/beta_sweep.csv",
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
        static const char *const valued[] = {"--data", "--csv", "--error-plot", "--plane-plot",
                                             "--epochs", "--samples", "--threads",
                                             "--train-limit", "--seed", "--betas"};
        const char *v = option_value(argc, argv, &i, valued, sizeof valued / sizeof valued[0]);
        if ((!strcmp(a, "--csv") || !strcmp(a, "--error-plot") || !strcmp(a, "--plane-plot")) &&
            v[0] == '\0')
            die("%s needs a file name", a);
        if (!strcmp(a, "--data")) o->data = v;
        else if (!strcmp(a, "--csv")) o->csv = v;
        else if (!strcmp(a, "--error-plot")) o->error_plot = v;
        else if (!strcmp(a, "--plane-plot")) o->plane_plot = v;
        else if (!strcmp(a, "--epochs")) o->epochs = parse_size(a, v, 1, 100000), o->epochs_set = 1;
        else if (!strcmp(a, "--samples")) o->samples = parse_size(a, v, 1, 1000);
        else if (!strcmp(a, "--threads")) o->threads = parse_size(a, v, 1, 1024);
        else if (!strcmp(a, "--train-limit")) o->train_limit = parse_size(a, v, 1, N_TRAIN);
        else if (!strcmp(a, "--seed")) o->seed = parse_size(a, v, 0, SIZE_MAX);
        else if (!strcmp(a, "--betas")) o->n_betas = parse_betas(a, v, o->betas);
    }
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

/* Train one model at `beta` and leave the evaluated (EMA) weights in it. The last
 * epoch's mean training cross-entropy (nats) and KL (bits) go to *ce and *kl_bits. */
static vib_model *train(const recipe *rc, const options *o, const vib_dataset *tr, size_t n,
                        double beta, double *ce_out, double *kl_out)
{
    const size_t dim = vib_dataset_dim(tr), classes = vib_dataset_classes(tr);
    vib_model *m = NULL;
    check(vib_model_create(dim, 2, rc->enc, rc->latent, 0, NULL, classes, o->seed, &m),
          "create the model");
    check(vib_model_set_beta(m, (float)beta), "set beta");
    check(vib_model_reseed(m, o->seed), "seed the noise");
    const size_t P = vib_model_num_params(m);
    float *params = vib_model_params(m);
    vib_optim *opt = NULL;
    vib_ema *ema = NULL;
    check(vib_adam_create(P, (float)rc->lr, (float)rc->beta1, 0.999f, 1e-8f, &opt), "Adam");
    check(vib_ema_create(P, (float)rc->ema, params, &ema), "EMA");
    /* The library's trainer: shuffled minibatches of the first n rows, the rate decayed
     * every decay_epochs epochs (counted in steps), one Adam step and EMA update each. */
    vib_trainer *t = NULL;
    check(vib_trainer_create(m, opt, ema, n, rc->batch, o->seed, &t), "trainer");
    const double decay_steps =
        fmax(1.0, rc->decay_epochs * (double)vib_trainer_steps_per_epoch(t));
    check(vib_trainer_set_schedule(t, (float)rc->lr, (float)rc->lr_decay, (uint64_t)decay_steps),
          "schedule");
    for (size_t epoch = 1; epoch <= rc->epochs; epoch++) {
        char label[64];
        snprintf(label, sizeof label, "beta %-6g epoch %zu/%zu", beta, epoch, rc->epochs);
        train_progress bar = {label, now()}; /* "beta <b> epoch <e>/<E>" */
        check(vib_trainer_set_callback(t, train_progress_cb, &bar), "callback");
        double ce, kl;
        check_training(vib_trainer_epoch(t, vib_dataset_images(tr), vib_dataset_labels(tr),
                                         &ce, &kl, NULL), t);
        *ce_out = ce;
        *kl_out = kl / log(2.0);
        fprintf(stderr, "  beta %-6g epoch %2zu/%zu  %5.1fs  train ce %.4f nats  kl %.2f bits\n",
                beta, epoch, rc->epochs, now() - bar.t0, *ce_out, *kl_out);
    }
    vib_trainer_free(t);
    memcpy(params, vib_ema_values(ema), P * sizeof(float)); /* evaluate the average */
    vib_ema_free(ema);
    vib_optim_free(opt);
    return m;
}

/* gnuplot -c script csv error_png plane_png H(Y) n_val n_test, run without a shell so no
 * path is ever interpreted (as train_mnist does). */
static void plot(const options *o, double h_y, size_t n_test)
{
    char hy[32], nv[32], nt[32];
    snprintf(hy, sizeof hy, "%.6f", h_y);
    snprintf(nv, sizeof nv, "%d", N_VAL);
    snprintf(nt, sizeof nt, "%zu", n_test);
    char *argv[] = {"gnuplot", "-c", "examples/beta_sweep.gp", (char *)o->csv,
                    (char *)o->error_plot, (char *)o->plane_plot, hy, nv, nt, NULL};
    fflush(stdout); /* keep our lines in order with gnuplot's */
    if (run_gnuplot(argv[2], argv, "plots"))
        printf("plots: %s %s\n", o->error_plot, o->plane_plot);
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

    printf("libvib %s | encoder 784-%zu-%zu, K = %zu, linear decoder | inputs in [%g, 1] | "
           "batch %zu, Adam lr %g beta1 %g, decay %g every %g epochs, EMA %g | %zu epochs\n",
           vib_version_string(), rc.enc[0], rc.enc[1], rc.latent, (double)lo, rc.batch, rc.lr,
           rc.beta1, rc.lr_decay, rc.decay_epochs, rc.ema, rc.epochs);
    printf("data %s: train on %zu, validate on %d, test on %zu | %zu samples | H(Y) = %.4f "
           "bits (validation labels) | %zu betas from %g to %g\n",
           o.data, n_train, N_VAL, vib_dataset_size(test), o.samples, h_y, o.n_betas,
           o.betas[0], o.betas[o.n_betas - 1]);
    fflush(stdout);

    mkdir_for(o.csv);
    FILE *csv = fopen(o.csv, "w");
    if (csv == NULL) {
        fprintf(stderr, "beta_sweep: %s: %s\n", o.csv, strerror(errno));
        return 1;
    }
    fprintf(csv, "beta,log10_beta,val_error_pct,test_error_pct,izx_bits,izy_bits,val_ce_nats,"
                 "train_ce_nats,train_kl_bits,epochs,seconds\n");

    const double t_start = now();
    double best_err = INFINITY, best_beta = 0.0;
    for (size_t b = 0; b < o.n_betas; b++) {
        const double beta = o.betas[b], t0 = now();
        double train_ce = 0.0, train_kl = 0.0;
        vib_model *m = train(&rc, &o, train_set, n_train, beta, &train_ce, &train_kl);
        const eval v = evaluate(m, val, "training set (validation split)", N_TRAIN, o.samples, 1);
        const eval t = evaluate(m, test, "test set", 0, o.samples, 0);
        vib_model_free(m);
        const double izy = h_y - v.ce_nats / log(2.0), secs = now() - t0;
        if (v.sigma_zero)
            fprintf(stderr, "beta_sweep: beta %g: %zu sigmas underflowed to 0 and were floored "
                            "at FLT_MIN in the KL rate\n", beta, v.sigma_zero);
        printf("result beta=%g val_error_pct=%.2f test_error_pct=%.2f izx_bits=%.3f "
               "izy_bits=%.4f\n", beta, v.error_pct, t.error_pct, v.izx_bits, izy);
        fflush(stdout);
        fprintf(csv, "%g,%.4f,%.4f,%.4f,%.6f,%.6f,%.6f,%.6f,%.6f,%zu,%.1f\n", beta, log10(beta),
                v.error_pct, t.error_pct, v.izx_bits, izy, v.ce_nats, train_ce, train_kl,
                rc.epochs, secs);
        fflush(csv);
        if (v.error_pct < best_err)
            best_err = v.error_pct, best_beta = beta;
        const double spent = now() - t_start;
        fprintf(stderr, "beta_sweep: beta %zu/%zu (%g) took %.0fs; about %.0fs to go\n", b + 1,
                o.n_betas, beta, secs, spent / (double)(b + 1) * (double)(o.n_betas - b - 1));
    }
    if (fclose(csv) != 0) {
        fprintf(stderr, "beta_sweep: %s: %s\n", o.csv, strerror(errno));
        return 1;
    }
    printf("best validation error %.2f%% at beta=%g | table %s | %.0f seconds\n", best_err,
           best_beta, o.csv, now() - t_start);
    mkdir_for(o.error_plot);
    mkdir_for(o.plane_plot);
    plot(&o, h_y, vib_dataset_size(test));
    vib_dataset_free(train_set);
    vib_dataset_free(val);
    vib_dataset_free(test);
    return 0;
}
