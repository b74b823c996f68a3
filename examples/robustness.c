/*
 * robustness - what the bottleneck buys: adversarial robustness, out-of-distribution
 * detection and calibration of a deterministic classifier and of VIB classifiers at
 * several beta (the VIB paper's section 4.2; its 2018 follow-up on uncertainty).
 *
 *   robustness [options]             (robustness --help lists them)
 *
 * Models: a deterministic baseline (z = mu, no KL) and one VIB classifier per beta
 * (default 1e-3, 1e-2, 1e-1), all with the paper's network (784-1024-1024 encoder,
 * K = 256, a linear decoder) on inputs in [-1, 1], trained from the same seed on the
 * 60,000 MNIST training images with Adam (lr 1e-3, decayed by 0.97 every 2 epochs) and
 * evaluated with the exponential moving average (0.999) of the weights. Each is saved
 * under the output directory, and --reuse loads it from there instead of training.
 *
 * On the first --attack-n test images (default 1,000), every attack's gradient averaged
 * over S posterior samples (attacks.h; z = mu for the deterministic model), for S = 1
 * and S = --samples (12), side by side - the check for gradient obfuscation by the
 * sampling; accuracy is then judged by the 12-sample prediction, as the clean error is:
 *   FGSM and PGD (L-infinity, random start, --pgd-iters steps of 2.5 eps / iters): the
 *     accuracy for every epsilon of --eps, stated in the paper's [-1, 1] scale and in
 *     the [0, 1] scale of pixel intensities (half of it);
 *   the targeted L2 attack (Carlini-Wagner style, each image to the class after its
 *     label) on the first --l2-n of them: its success rate and mean L2 distortion.
 * Then every model scores the 10,000 MNIST test images (in distribution) against the
 * 10,000 Fashion-MNIST test images (out of distribution) by the rate, the predictive
 * entropy and 1 - the largest probability (AUROC, AUPR with out-of-distribution as the
 * positive class, and the false positive rate at 95% true positives), and its
 * calibration on MNIST's test set is measured (the expected calibration error over 15
 * bins and a reliability diagram).
 *
 * Output under --out (default results/robustness): attacks.csv, l2.csv, ood.csv,
 * calibration.csv, models.csv and the PNGs fgsm.png, pgd.png, l2.png, ood.png and
 * reliability.png drawn by examples/robustness.gp. docs/robustness.md reads them.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXAMPLE_NAME "robustness"
#include "attacks.h"
#include "example_util.h"

enum { MAX_LIST = 32, BINS = 15, CHUNK = 1000 };

typedef struct {
    const char *data, *fashion, *out;
    size_t enc[2], latent, epochs, train_limit, threads, samples;
    size_t attack_n, pgd_iters, l2_n, l2_iters, l2_searches;
    double l2_c, l2_kappa;
    size_t n_betas, n_eps;
    double betas[MAX_LIST], eps[MAX_LIST]; /* eps in the [-1, 1] scale */
    uint64_t seed;
    int unit, reuse, no_attacks, no_ood, no_det;
} options;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: robustness [options]\n"
            "  --data DIR          MNIST directory (default data/mnist; `make data` fetches it)\n"
            "  --fashion DIR       Fashion-MNIST directory, the out-of-distribution set\n"
            "                      (default /usr/share/datasets/fashion-mnist, Debian's\n"
            "                      dataset-fashion-mnist)\n"
            "  --out DIR           models, CSVs and PNGs (default results/robustness)\n"
            "  --betas LIST        the VIB models' betas, comma-separated (default\n"
            "                      1e-3,1e-2,1e-1)\n"
            "  --no-deterministic  no deterministic baseline\n"
            "  --hidden A,B        encoder widths (default 1024,1024, the paper's)\n"
            "  --latent K          bottleneck size (default 256)\n"
            "  --epochs N          training epochs per model (default 20)\n"
            "  --train-limit N     train on the first N training images only\n"
            "  --unit              train on inputs in [0, 1] instead of the paper's [-1, 1]\n"
            "  --reuse             load each model from --out when its file is there\n"
            "  --samples S         posterior samples of the averaged attack gradient and of\n"
            "                      every prediction (default 12); S = 1 is run beside it\n"
            "  --attack-n N        test images attacked (default 1000)\n"
            "  --eps LIST          FGSM and PGD radii in the [-1, 1] scale (default\n"
            "                      0,0.05,0.1,0.15,0.2,0.3,0.4,0.5,0.6)\n"
            "  --pgd-iters N       PGD steps (default 40)\n"
            "  --l2-n N            images given the L2 attack (default 500, at most --attack-n)\n"
            "  --l2-iters N        Adam steps per search round of the L2 attack (default 300)\n"
            "  --l2-searches N     rounds of the search over its constant c (default 5)\n"
            "  --l2-c C            the constant c of its first round (default 1)\n"
            "  --l2-kappa K        a success needs the target's probability K above every\n"
            "                      other class's (default 0.5), so a new draw keeps it\n"
            "  --no-attacks        skip the attacks\n"
            "  --no-ood            skip out-of-distribution detection and calibration\n"
            "  --seed N            seed of the weights, the noise and the attacks (default 1)\n"
            "  --threads N         threads (default: BLIS_NUM_THREADS, else all CPUs)\n");
}

/* "a,b,c": at most MAX_LIST numbers in [lo, hi], in the order given. */
static size_t parse_list(const char *opt, const char *s, double lo, double hi, double *out)
{
    char buf[1024];
    if (strlen(s) >= sizeof buf)
        die("%s: list too long", opt);
    strcpy(buf, s);
    size_t n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (n == MAX_LIST)
            die("%s: at most %d values", opt, MAX_LIST);
        out[n++] = parse_double(opt, tok, lo, hi);
    }
    if (n == 0)
        die("%s: empty list '%s'", opt, s);
    return n;
}

static void parse_args(int argc, char **argv, options *o)
{
    *o = (options){.data = "data/mnist", .fashion = "/usr/share/datasets/fashion-mnist",
                   .out = "results/robustness", .enc = {1024, 1024}, .latent = 256,
                   .epochs = 20, .samples = 12, .attack_n = 1000, .pgd_iters = 40,
                   .l2_n = 500, .l2_iters = 300, .l2_searches = 5, .l2_c = 1.0,
                   .l2_kappa = 0.5,
                   .seed = 1};
    o->n_betas = parse_list("--betas", "1e-3,1e-2,1e-1", 0, 1e6, o->betas);
    o->n_eps = parse_list("--eps", "0,0.05,0.1,0.15,0.2,0.3,0.4,0.5,0.6", 0, 2, o->eps);
    int l2_set = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            EXAMPLE_EXIT(0);
        }
        int *flag = !strcmp(a, "--unit") ? &o->unit : !strcmp(a, "--reuse") ? &o->reuse
                  : !strcmp(a, "--no-attacks") ? &o->no_attacks
                  : !strcmp(a, "--no-ood") ? &o->no_ood
                  : !strcmp(a, "--no-deterministic") ? &o->no_det : NULL;
        if (flag) {
            *flag = 1;
            continue;
        }
        static const char *const valued[] = {
            "--data", "--fashion", "--out", "--betas", "--hidden", "--latent", "--epochs",
            "--train-limit", "--samples", "--attack-n", "--eps", "--pgd-iters", "--l2-n",
            "--l2-iters", "--l2-searches", "--l2-c", "--l2-kappa", "--seed", "--threads"};
        const char *v = option_value(argc, argv, &i, valued, sizeof valued / sizeof valued[0]);
        if ((!strcmp(a, "--out") || !strcmp(a, "--data") || !strcmp(a, "--fashion")) &&
            v[0] == '\0')
            die("%s needs a directory", a);
        if (!strcmp(a, "--data")) o->data = v;
        else if (!strcmp(a, "--fashion")) o->fashion = v;
        else if (!strcmp(a, "--out")) o->out = v;
        else if (!strcmp(a, "--betas")) o->n_betas = parse_list(a, v, 1e-30, 1e6, o->betas);
        else if (!strcmp(a, "--eps")) o->n_eps = parse_list(a, v, 0, 2, o->eps);
        else if (!strcmp(a, "--hidden")) {
            double h[MAX_LIST];
            if (parse_list(a, v, 1, 1 << 16, h) != 2 || h[0] != floor(h[0]) || h[1] != floor(h[1]))
                die("--hidden needs two integer widths A,B, got '%s'", v);
            o->enc[0] = (size_t)h[0], o->enc[1] = (size_t)h[1];
        }
        else if (!strcmp(a, "--latent")) o->latent = parse_size(a, v, 1, 4096);
        else if (!strcmp(a, "--epochs")) o->epochs = parse_size(a, v, 1, 100000);
        else if (!strcmp(a, "--train-limit")) o->train_limit = parse_size(a, v, 1, SIZE_MAX);
        else if (!strcmp(a, "--samples")) o->samples = parse_size(a, v, 1, 1000);
        else if (!strcmp(a, "--attack-n")) o->attack_n = parse_size(a, v, 1, 10000);
        else if (!strcmp(a, "--pgd-iters")) o->pgd_iters = parse_size(a, v, 1, 10000);
        else if (!strcmp(a, "--l2-n")) o->l2_n = parse_size(a, v, 0, 10000), l2_set = 1;
        else if (!strcmp(a, "--l2-iters")) o->l2_iters = parse_size(a, v, 1, 100000);
        else if (!strcmp(a, "--l2-searches")) o->l2_searches = parse_size(a, v, 1, 100);
        else if (!strcmp(a, "--l2-c")) o->l2_c = parse_double(a, v, 1e-6, 1e6);
        else if (!strcmp(a, "--l2-kappa")) o->l2_kappa = parse_double(a, v, 0, 0.99);
        else if (!strcmp(a, "--seed")) o->seed = parse_size(a, v, 0, SIZE_MAX);
        else if (!strcmp(a, "--threads")) o->threads = parse_size(a, v, 1, 1024);
    }
    if (o->l2_n > o->attack_n) {
        if (l2_set)
            die("--l2-n %zu is more than --attack-n %zu", o->l2_n, o->attack_n);
        o->l2_n = o->attack_n;
    }
}

/* ---- the models ---------------------------------------------------------------------- */

typedef struct {
    char name[32];  /* "deterministic" or "vib_1e-03" */
    double beta;    /* 0 for the deterministic model */
    vib_model *m;
    size_t eval_s;  /* samples of its predictions: 0 (z = mu) if deterministic */
} study;

/* Train s->m on the first n rows of `tr` (the recipe of the header comment) and leave
 * the averaged weights in it. */
static void train(const options *o, study *s, const vib_dataset *tr, size_t n)
{
    const size_t dim = vib_dataset_dim(tr), classes = vib_dataset_classes(tr);
    check(vib_model_create(dim, 2, o->enc, o->latent, 0, NULL, classes, o->seed, &s->m),
          "create the model");
    if (s->beta > 0.0)
        check(vib_model_set_beta(s->m, (float)s->beta), "set beta");
    else
        check(vib_model_set_deterministic(s->m, 1), "set deterministic");
    check(vib_model_reseed(s->m, o->seed), "seed the noise");
    const size_t P = vib_model_num_params(s->m);
    float *params = vib_model_params(s->m);
    vib_optim *opt = NULL;
    vib_ema *ema = NULL;
    vib_trainer *t = NULL;
    check(vib_adam_create(P, 1e-3f, 0.9f, 0.999f, 1e-8f, &opt), "Adam");
    check(vib_ema_create(P, 0.999f, params, &ema), "EMA");
    check(vib_trainer_create(s->m, opt, ema, n, 100, o->seed, &t), "trainer");
    check(vib_trainer_set_schedule(t, 1e-3f, 0.97f, 2 * vib_trainer_steps_per_epoch(t)),
          "schedule");
    for (size_t epoch = 1; epoch <= o->epochs; epoch++) {
        char label[64];
        snprintf(label, sizeof label, "%.31s epoch %zu/%zu", s->name, epoch, o->epochs);
        train_progress bar = {label, now(), NULL};
        check(vib_trainer_set_callback(t, train_progress_cb, &bar), "callback");
        double ce, kl;
        check_training(vib_trainer_epoch(t, vib_dataset_images(tr), vib_dataset_labels(tr),
                                         &ce, &kl, NULL), t);
        fprintf(stderr, "  %s epoch %2zu/%zu  %5.1fs  train ce %.4f nats  kl %.1f nats\n",
                s->name, epoch, o->epochs, now() - bar.t0, ce, kl);
    }
    vib_trainer_free(t);
    memcpy(params, vib_ema_values(ema), P * sizeof(float));
    vib_ema_free(ema);
    vib_optim_free(opt);
}

/* The model of `s`: loaded from `path` with --reuse when the file is there (it must
 * have the data's shape and the study's kind), else trained and saved there. Returns
 * the seconds of training, NAN for a loaded model. */
static double obtain(const options *o, study *s, const char *path, const vib_dataset *tr)
{
    const size_t n = o->train_limit && o->train_limit < vib_dataset_size(tr)
                         ? o->train_limit : vib_dataset_size(tr);
    if (o->reuse && access(path, R_OK) == 0) {
        check(vib_model_load(path, &s->m), path);
        const int det = vib_model_deterministic(s->m);
        if (vib_model_input_dim(s->m) != vib_dataset_dim(tr) ||
            vib_model_classes(s->m) < vib_dataset_classes(tr) || det != (s->beta == 0.0) ||
            (!det && fabs(vib_model_beta(s->m) - s->beta) > 1e-6 * s->beta)) {
            fprintf(stderr, "robustness: %s is not a %s model for this data (input %zu, %zu "
                            "classes, beta %g): remove it or drop --reuse\n", path, s->name,
                    vib_model_input_dim(s->m), vib_model_classes(s->m),
                    det ? 0.0 : (double)vib_model_beta(s->m));
            exit(1);
        }
        printf("%s: loaded %s\n", s->name, path);
        return NAN;
    }
    const double t0 = now();
    train(o, s, tr, n);
    const double secs = now() - t0;
    check(vib_model_save(s->m, path), "save the model");
    printf("%s: trained in %.0f s on %zu images, saved %s\n", s->name, secs, n, path);
    return secs;
}

/* ---- evaluation ---------------------------------------------------------------------- */

/* Accuracy (%) of the model's `samples`-sample prediction on n rows of x; prob (n x C,
 * optional) receives the probabilities. */
static double accuracy(vib_model *m, size_t n, const float *x, const int32_t *y,
                       size_t samples, float *prob_out)
{
    const size_t dim = vib_model_input_dim(m), C = vib_model_classes(m);
    float *prob = prob_out ? prob_out : xmalloc(CHUNK * C * sizeof *prob);
    size_t right = 0;
    for (size_t i = 0; i < n; i += CHUNK) {
        const size_t rows = n - i < CHUNK ? n - i : CHUNK;
        float *p = prob_out ? prob + i * C : prob;
        check(vib_model_predict(m, rows, x + i * dim, samples, p), "predict");
        for (size_t r = 0; r < rows; r++)
            right += (int32_t)argmax(p + r * C, C) == y[i + r];
    }
    if (prob_out == NULL)
        free(prob);
    return 100.0 * (double)right / (double)n;
}

/* FGSM and PGD at every epsilon with S = 1 and S = samples (once, z = mu, for the
 * deterministic model); a line per run in attacks.csv. */
static void run_linf(const options *o, const study *s, size_t n, const float *x,
                     const int32_t *y, float lo, float scale, FILE *csv)
{
    const size_t dim = vib_model_input_dim(s->m);
    float *grad = xmalloc(n * dim * sizeof *grad), *adv = xmalloc(n * dim * sizeof *adv);
    vib_rng *rng = NULL;
    check(vib_rng_create(o->seed ^ 0x9e3779b97f4a7c15u, &rng), "rng");
    const size_t grads[2] = {s->beta > 0.0 ? 1 : 0, o->samples};
    for (size_t g = 0; g < (s->beta > 0.0 ? 2u : 1u); g++) {
        for (int attack = 0; attack < 2; attack++) {
            const char *aname = attack ? "pgd" : "fgsm";
            for (size_t e = 0; e < o->n_eps; e++) {
                const float eps = (float)(o->eps[e] * scale); /* in the data's scale */
                const double t0 = now();
                int rc = attack == 0
                             ? attack_fgsm(s->m, n, x, y, eps, lo, 1.0f, grads[g], grad, adv)
                             : attack_pgd(s->m, n, x, y, eps, 2.5f * eps / (float)o->pgd_iters,
                                          o->pgd_iters, lo, 1.0f, grads[g], rng, grad, adv);
                check(rc, aname);
                const double secs = now() - t0;
                const double acc = accuracy(s->m, n, adv, y, s->eval_s, NULL);
                fprintf(csv, "%s,%g,%s,%zu,%g,%g,%.2f,%zu,%.2f\n", s->name, s->beta, aname,
                        grads[g], o->eps[e], o->eps[e] / 2.0, acc, n, secs);
                fflush(csv);
                printf("  %-14s %-4s S=%-2zu eps %.3f ([-1,1]) %.3f ([0,1])  accuracy %6.2f%%"
                       "  %.1f s\n", s->name, aname, grads[g], o->eps[e], o->eps[e] / 2.0, acc,
                       secs);
                fflush(stdout);
            }
        }
    }
    vib_rng_free(rng);
    free(grad), free(adv);
}

/* The targeted L2 attack on n rows, each to the class after its label, with S = 1 and
 * S = samples. Its success rate counts the rows the model classified right before the
 * attack (a row already wrong needs no attack) whose attacked image a fresh evaluation
 * prediction puts in the target class; found_pct those the attack itself saw succeed
 * (with the margin kappa, on its own draw of the prediction's noise). The mean L2
 * distortion is over the successes, in both scales. A line per run in l2.csv. */
static void run_l2(const options *o, const study *s, size_t n, const float *x,
                   const int32_t *y, float lo, float scale, FILE *csv)
{
    if (n == 0)
        return;
    const size_t dim = vib_model_input_dim(s->m), C = vib_model_classes(s->m);
    int32_t *target = xmalloc(n * sizeof *target);
    for (size_t r = 0; r < n; r++)
        target[r] = (int32_t)(((size_t)y[r] + 1) % C);
    float *scratch = xmalloc((4 * n * dim + n * (C + 3)) * sizeof *scratch);
    float *adv = xmalloc(n * dim * sizeof *adv), *prob = xmalloc(n * C * sizeof *prob);
    double *dist2 = xmalloc(n * sizeof *dist2);
    char *right = xmalloc(n);
    (void)accuracy(s->m, n, x, y, s->eval_s, prob);
    size_t n_right = 0;
    for (size_t r = 0; r < n; r++)
        n_right += right[r] = (int32_t)argmax(prob + r * C, C) == y[r];
    const size_t grads[2] = {s->beta > 0.0 ? 1 : 0, o->samples};
    const float kappa = (float)o->l2_kappa;
    for (size_t g = 0; g < (s->beta > 0.0 ? 2u : 1u); g++) {
        const double t0 = now();
        check(attack_l2(s->m, n, x, target, (float)o->l2_c, o->l2_searches, o->l2_iters, lo,
                        1.0f, grads[g], s->eval_s, kappa, scratch, adv, dist2), "L2 attack");
        const double secs = now() - t0;
        (void)accuracy(s->m, n, adv, y, s->eval_s, prob);
        size_t hits = 0, found = 0;
        double sum = 0.0;
        for (size_t r = 0; r < n; r++) {
            found += right[r] && isfinite(dist2[r]);
            if (right[r] && isfinite(dist2[r]) && (int32_t)argmax(prob + r * C, C) == target[r])
                hits++, sum += sqrt(dist2[r]);
        }
        const double rate = n_right ? 100.0 * (double)hits / (double)n_right : NAN;
        const double at = n_right ? 100.0 * (double)found / (double)n_right : NAN;
        const double l2 = hits ? sum / (double)hits / scale : NAN; /* [-1, 1] scale */
        fprintf(csv, "%s,%g,%zu,%.2f,%.2f,%.4f,%.4f,%zu,%.2f\n", s->name, s->beta, grads[g],
                rate, at, l2, l2 / 2.0, n_right, secs);
        fflush(csv);
        printf("  %-14s L2   S=%-2zu success %6.2f%% of %zu (%.2f%% when found)  mean L2 %.3f "
               "([-1,1]) %.3f ([0,1])  %.1f s\n", s->name, grads[g], rate, n_right, at, l2,
               l2 / 2.0, secs);
        fflush(stdout);
    }
    free(target), free(scratch), free(adv), free(prob), free(dist2), free(right);
}

/* The three scores of n rows of x (CHUNK rows at a time): 3 x n doubles. */
static double *scores(const study *s, size_t n, const float *x, size_t samples)
{
    const size_t dim = vib_model_input_dim(s->m);
    const size_t K = vib_model_latent_dim(s->m), C = vib_model_classes(s->m);
    double *sc = xmalloc(3 * n * sizeof *sc);
    float *scratch = xmalloc(CHUNK * (2 * K + C) * sizeof *scratch);
    for (size_t i = 0; i < n; i += CHUNK) {
        const size_t rows = n - i < CHUNK ? n - i : CHUNK;
        check(uncertainty_scores(s->m, rows, x + i * dim, samples, scratch, sc + i,
                                 sc + n + i, sc + 2 * n + i), "scores");
    }
    free(scratch);
    return sc;
}

static void run_ood(const study *s, const vib_dataset *in, const vib_dataset *out,
                    FILE *csv)
{
    const size_t n_in = vib_dataset_size(in), n_out = vib_dataset_size(out);
    double *a = scores(s, n_in, vib_dataset_images(in), s->eval_s);
    double *b = scores(s, n_out, vib_dataset_images(out), s->eval_s);
    static const char *const names[3] = {"rate", "entropy", "one_minus_max_p"};
    for (int k = 0; k < 3; k++) {
        if (k == 0 && s->beta == 0.0)
            continue; /* a deterministic model has no rate */
        const double *si = a + (size_t)k * n_in, *so = b + (size_t)k * n_out;
        double mi = 0.0, mo = 0.0;
        for (size_t i = 0; i < n_in; i++)
            mi += si[i] / (double)n_in;
        for (size_t i = 0; i < n_out; i++)
            mo += so[i] / (double)n_out;
        const double roc = auroc(si, n_in, so, n_out), pr = aupr(si, n_in, so, n_out);
        const double f95 = fpr_at_tpr(si, n_in, so, n_out, 0.95);
        fprintf(csv, "%s,%g,%s,%.4f,%.4f,%.4f,%.4f,%.4f\n", s->name, s->beta, names[k], roc,
                pr, f95, mi, mo);
        printf("  %-14s %-15s AUROC %.4f  AUPR %.4f  FPR@95%%TPR %.4f  mean %.4g (MNIST) "
               "%.4g (Fashion)\n", s->name, names[k], roc, pr, f95, mi, mo);
    }
    fflush(csv);
    fflush(stdout);
    free(a), free(b);
}

static double run_calibration(const study *s, const vib_dataset *test, FILE *csv)
{
    const size_t n = vib_dataset_size(test), C = vib_model_classes(s->m);
    float *prob = xmalloc(n * C * sizeof *prob);
    const double acc = accuracy(s->m, n, vib_dataset_images(test), vib_dataset_labels(test),
                                s->eval_s, prob);
    size_t count[BINS];
    double bacc[BINS], bconf[BINS];
    const double e = ece(prob, vib_dataset_labels(test), n, C, BINS, count, bacc, bconf);
    for (size_t b = 0; b < BINS; b++)
        fprintf(csv, "%s,%g,%zu,%.4f,%.4f,%zu,%.6f,%.6f\n", s->name, s->beta, b,
                (double)b / BINS, (double)(b + 1) / BINS, count[b], bacc[b], bconf[b]);
    fflush(csv);
    printf("  %-14s test accuracy %.2f%%  ECE (15 bins) %.4f\n", s->name, acc, e);
    free(prob);
    return e;
}

/* ---- main ------------------------------------------------------------------------ */

static FILE *open_csv(const char *dir, const char *name, const char *header)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    mkdir_for(path);
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        fprintf(stderr, "robustness: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    fprintf(f, "%s\n", header);
    return f;
}

static void close_csv(FILE *f, const char *dir, const char *name)
{
    if (f != NULL && fclose(f) != 0) {
        fprintf(stderr, "robustness: %s/%s: %s\n", dir, name, strerror(errno));
        exit(1);
    }
}

int main(int argc, char **argv)
{
    options o;
    parse_args(argc, argv, &o);
    set_threads(o.threads);
    const float lo = o.unit ? 0.0f : -1.0f, scale = o.unit ? 0.5f : 1.0f;

    vib_dataset *train_set = NULL, *test = NULL, *f_train = NULL, *f_test = NULL;
    load_mnist(o.data, lo, &train_set, &test);
    if (!o.no_ood) {
        const int st = load_mnist_status(o.fashion, lo, &f_train, &f_test);
        if (st != VIB_OK) {
            fprintf(stderr, "robustness: the out-of-distribution set: %s\n", vib_last_error());
            fprintf(stderr, "robustness: apt-get install dataset-fashion-mnist, pass "
                            "--fashion DIR, or --no-ood\n");
            return 1;
        }
        vib_dataset_free(f_train);
        if (vib_dataset_dim(f_test) != vib_dataset_dim(train_set)) {
            fprintf(stderr, "robustness: %s: images of %zu values, MNIST's have %zu\n",
                    o.fashion, vib_dataset_dim(f_test), vib_dataset_dim(train_set));
            return 1;
        }
    }
    if (vib_dataset_dim(test) != vib_dataset_dim(train_set)) {
        fprintf(stderr, "robustness: %s: test images of %zu values, training images %zu\n",
                o.data, vib_dataset_dim(test), vib_dataset_dim(train_set));
        return 1;
    }
    check_labels(test, "test set", 0, vib_dataset_classes(train_set));
    const size_t n_att = o.attack_n < vib_dataset_size(test) ? o.attack_n : vib_dataset_size(test);
    const size_t n_l2 = o.l2_n < n_att ? o.l2_n : n_att;

    printf("libvib %s | encoder %zu-%zu-%zu, K = %zu, linear decoder | inputs in [%g, 1] | "
           "Adam lr 1e-3, decay 0.97 every 2 epochs, EMA 0.999, batch 100, %zu epochs\n",
           vib_version_string(), vib_dataset_dim(train_set), o.enc[0], o.enc[1], o.latent,
           (double)lo, o.epochs);
    printf("attacks on %zu test images (L2 on %zu), gradients averaged over 1 and %zu "
           "samples, predictions with %zu | PGD %zu steps | out of distribution: %s\n",
           n_att, n_l2, o.samples, o.samples, o.pgd_iters, o.no_ood ? "skipped" : o.fashion);
    fflush(stdout);

    size_t n_models = 0;
    study models[MAX_LIST + 1];
    if (!o.no_det)
        models[n_models++] = (study){.name = "deterministic", .beta = 0.0, .eval_s = 0};
    for (size_t b = 0; b < o.n_betas; b++) {
        study *s = &models[n_models++];
        *s = (study){.beta = o.betas[b], .eval_s = o.samples};
        snprintf(s->name, sizeof s->name, "vib_%.0e", o.betas[b]);
    }

    FILE *att = NULL, *l2 = NULL, *ood = NULL, *cal = NULL;
    FILE *mcsv = open_csv(o.out, "models.csv",
                          "model,beta,test_accuracy_pct,ece,train_seconds,epochs");
    if (!o.no_attacks) {
        att = open_csv(o.out, "attacks.csv", "model,beta,attack,grad_samples,eps_pm1,eps_01,"
                                             "accuracy_pct,n,seconds");
        l2 = open_csv(o.out, "l2.csv", "model,beta,grad_samples,success_pct,found_pct,mean_l2_pm1,"
                                       "mean_l2_01,n_right,seconds");
    }
    if (!o.no_ood) {
        ood = open_csv(o.out, "ood.csv", "model,beta,score,auroc,aupr,fpr_at_95_tpr,"
                                         "mean_in,mean_out");
        cal = open_csv(o.out, "calibration.csv",
                       "model,beta,bin,lo,hi,count,accuracy,confidence");
    }

    const double t_start = now();
    for (size_t i = 0; i < n_models; i++) {
        study *s = &models[i];
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.vibm", o.out, s->name);
        const double t_train = obtain(&o, s, path, train_set);
        const float *x = vib_dataset_images(test);
        const int32_t *y = vib_dataset_labels(test);
        const double clean = accuracy(s->m, vib_dataset_size(test), x, y, s->eval_s, NULL);
        printf("%s: test accuracy %.2f%% (%zu samples)\n", s->name, clean, s->eval_s);
        if (!o.no_attacks) {
            run_linf(&o, s, n_att, x, y, lo, scale, att);
            run_l2(&o, s, n_l2, x, y, lo, scale, l2);
        }
        double e = NAN;
        if (!o.no_ood) {
            run_ood(s, test, f_test, ood);
            e = run_calibration(s, test, cal);
        }
        fprintf(mcsv, "%s,%g,%.2f,%.4f,%.1f,%zu\n", s->name, s->beta, clean, e, t_train,
                o.epochs);
        fflush(mcsv);
        vib_model_free(s->m);
        const double spent = now() - t_start;
        fprintf(stderr, "robustness: model %zu/%zu (%s) done; %.0f s so far, about %.0f s "
                        "to go\n", i + 1, n_models, s->name, spent,
                spent / (double)(i + 1) * (double)(n_models - i - 1));
    }
    close_csv(mcsv, o.out, "models.csv");
    close_csv(att, o.out, "attacks.csv");
    close_csv(l2, o.out, "l2.csv");
    close_csv(ood, o.out, "ood.csv");
    close_csv(cal, o.out, "calibration.csv");
    printf("tables in %s | %.0f seconds\n", o.out, now() - t_start);

    char names[(MAX_LIST + 1) * 32] = "";
    for (size_t i = 0; i < n_models; i++) {
        strcat(names, i ? " " : "");
        strcat(names, models[i].name);
    }
    char *gp[] = {"gnuplot", "-c", "examples/robustness.gp", (char *)o.out,
                  o.no_attacks ? "0" : "1", o.no_ood ? "0" : "1", names, NULL};
    fflush(stdout);
    if ((!o.no_attacks || !o.no_ood) && run_gnuplot(gp[2], gp, "plots"))
        printf("plots: %s/*.png\n", o.out);
    vib_dataset_free(train_set);
    vib_dataset_free(test);
    vib_dataset_free(f_test);
    return 0;
}
