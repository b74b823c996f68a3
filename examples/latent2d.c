/*
 * latent2d - two-dimensional VIB latent spaces of three MNIST digits for several betas
 * (the problem set's question 3 (d) and its Figure 4; the paper's Figure 2).
 *
 *   latent2d [options]               (latent2d --help lists them)
 *
 * For each beta (default 1e-6, 1e-3, 1) a VIB classifier with K = 2 is trained on the
 * training images of the chosen digits (default 0, 1, 2; labels remapped to 0..C-1),
 * always from the same initial weights, and the test images of those digits are encoded.
 * The posterior means are scattered, one marker and colour per digit, each plot on its
 * own autoscaled axes with the range of the means in its title: small beta lets the
 * encoder spread the classes far apart, beta = 1 squeezes them onto the origin.
 *
 *   results/latent2d_beta<b>.png   one plot per beta (with --cov full: plus the 95%
 *                                  ellipses of 5 test points per digit)
 *   results/latent2d.png           all betas side by side, like the problem set's Figure 4
 *   results/latent2d_beta<b>.dat   the plotted points (gnuplot blocks, one per digit)
 *
 * One stdout line per beta:
 *   result beta=<b> test_error_pct=<e> spread=<s>
 * where spread is the mean over the two axes of the standard deviation of the test
 * images' posterior means.
 *
 * The recipe: inputs in [0, 1], a 784-512-512 encoder, K = 2, a linear decoder, batch
 * 100, Adam (lr 1e-3) decayed by 0.97 every 2 epochs, 8 epochs, 12 posterior samples for
 * the test error. --cov full gives the encoder a full-covariance Gaussian head
 * (vib_model_create_ex with VIB_MODEL_FULL_COV): N(mu, L L^T).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXAMPLE_NAME "latent2d"
#include "example_util.h"

enum { MAX_BETAS = 16, K = 2, ELLIPSES_PER_CLASS = 5, ELLIPSE_POINTS = 73 };

/* chi-square with 2 degrees of freedom, 95% quantile: -2 ln 0.05 */
#define CHI2_2_95 5.991464547107979
#define TWO_PI 6.283185307179586

typedef struct {
    const char *data, *out;
    size_t epochs, threads, n_digits, n_betas, enc[8], n_enc;
    int digits[10];
    double betas[MAX_BETAS];
    uint64_t seed;
    int full;
} options;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: latent2d [options]\n"
            "  --data DIR        MNIST directory (default data/mnist; `make data` fetches it)\n"
            "  --digits LIST     2 to 10 distinct digits, e.g. 0,1,2 (default 0,1,2)\n"
            "  --betas LIST      KL weights, comma-separated numbers >= 0 (default 1e-6,1e-3,1)\n"
            "  --epochs N        training epochs per beta (default 8)\n"
            "  --hidden LIST     encoder hidden sizes (default 512,512)\n"
            "  --cov diag|full   the posterior's covariance (default diag); full also draws\n"
            "                    the 95%% ellipses of %d test points per digit\n"
            "  --seed N          seed of the weights, the noise and the shuffling (default 1)\n"
            "  --threads N       threads (default: BLIS_NUM_THREADS, else all CPUs)\n"
            "  --out PREFIX      output prefix (default results/latent2d: PREFIX.png,\n"
            "                    PREFIX_beta<b>.png and PREFIX_beta<b>.dat)\n",
            ELLIPSES_PER_CLASS);
}

/* ---- option parsing: every value is checked, a bad one ends the program clearly ---- */

/* Split a comma-separated list into at most `max` tokens of buf (which it modifies). */
static size_t split(const char *opt, const char *s, char *buf, size_t len, char **tok,
                    size_t max)
{
    if (strlen(s) >= len)
        die("%s: list too long: '%s'", opt, s);
    strcpy(buf, s);
    size_t n = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (n == max)
            die("%s: at most %zu values, got '%s'", opt, max, s);
        tok[n++] = t;
    }
    if (n == 0)
        die("%s: empty list '%s'", opt, s);
    return n;
}

static void parse_args(int argc, char **argv, options *o)
{
    *o = (options){.data = "data/mnist", .out = "results/latent2d", .epochs = 8,
                   .n_digits = 3, .digits = {0, 1, 2}, .n_betas = 3,
                   .betas = {1e-6, 1e-3, 1.0}, .enc = {512, 512}, .n_enc = 2, .seed = 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            EXAMPLE_EXIT(0);
        }
        static const char *const valued[] = {"--data", "--digits", "--betas", "--epochs",
                                             "--hidden", "--cov", "--seed", "--threads",
                                             "--out"};
        const char *v = option_value(argc, argv, &i, valued, sizeof valued / sizeof valued[0]);
        char buf[512], *tok[64];
        if (!strcmp(a, "--data")) o->data = v;
        else if (!strcmp(a, "--out")) {
            if (v[0] == '\0' || strlen(v) > 4000)
                die("--out needs a prefix of 1 to 4000 characters");
            o->out = v;
        }
        else if (!strcmp(a, "--epochs")) o->epochs = parse_size(a, v, 1, 100000);
        else if (!strcmp(a, "--seed")) o->seed = parse_size(a, v, 0, SIZE_MAX);
        else if (!strcmp(a, "--threads")) o->threads = parse_size(a, v, 1, 1024);
        else if (!strcmp(a, "--cov")) {
            if (strcmp(v, "diag") && strcmp(v, "full"))
                die("--cov takes diag or full, got '%s'", v);
            o->full = strcmp(v, "full") == 0;
        } else if (!strcmp(a, "--hidden")) {
            o->n_enc = split(a, v, buf, sizeof buf, tok, 8);
            for (size_t k = 0; k < o->n_enc; k++)
                o->enc[k] = parse_size(a, tok[k], 1, 1 << 16);
        } else if (!strcmp(a, "--betas")) {
            o->n_betas = split(a, v, buf, sizeof buf, tok, MAX_BETAS);
            for (size_t k = 0; k < o->n_betas; k++) {
                o->betas[k] = parse_double(a, tok[k], 0.0, 1e6);
                for (size_t j = 0; j < k; j++)
                    if (o->betas[j] == o->betas[k])
                        die("--betas: %g appears twice in '%s'", o->betas[k], v);
            }
        } else if (!strcmp(a, "--digits")) {
            o->n_digits = split(a, v, buf, sizeof buf, tok, 10);
            for (size_t k = 0; k < o->n_digits; k++) {
                o->digits[k] = (int)parse_size(a, tok[k], 0, 9);
                for (size_t j = 0; j < k; j++)
                    if (o->digits[j] == o->digits[k])
                        die("--digits: %d appears twice in '%s'", o->digits[k], v);
            }
            if (o->n_digits < 2)
                die("--digits needs at least 2 digits, got '%s'", v);
        }
    }
}

/* ---- helpers --------------------------------------------------------------------- */

/* The images of the chosen digits, copied out of `d`, labels remapped to their index in
 * the digit list. */
typedef struct {
    size_t n, dim;
    float *x;
    int32_t *y;
} subset;

static subset select_digits(const vib_dataset *d, const options *o)
{
    const size_t n = vib_dataset_size(d), dim = vib_dataset_dim(d);
    const int32_t *lab = vib_dataset_labels(d);
    int map[256];
    for (int k = 0; k < 256; k++)
        map[k] = -1;
    for (size_t k = 0; k < o->n_digits; k++)
        map[o->digits[k]] = (int)k;
    subset s = {0, dim, NULL, NULL};
    for (size_t i = 0; i < n; i++)
        s.n += map[lab[i] & 255] >= 0;
    s.x = xmalloc(s.n * dim * sizeof *s.x);
    s.y = xmalloc(s.n * sizeof *s.y);
    for (size_t i = 0, j = 0; i < n; i++)
        if (map[lab[i] & 255] >= 0) {
            memcpy(s.x + j * dim, vib_dataset_images(d) + i * dim, dim * sizeof(float));
            s.y[j++] = map[lab[i] & 255];
        }
    return s;
}

static vib_model *train(const options *o, const subset *tr, double beta)
{
    enum { B = 100 };
    vib_model *m = NULL;
    check(vib_model_create_ex(tr->dim, o->n_enc, o->enc, K, 0, NULL, o->n_digits,
                              o->full ? VIB_MODEL_FULL_COV : 0, o->seed, &m),
          "create the model");
    check(vib_model_set_beta(m, (float)beta), "set beta");
    check(vib_model_reseed(m, o->seed), "seed the noise");
    vib_optim *opt = NULL;
    check(vib_adam_create(vib_model_num_params(m), 1e-3f, 0.9f, 0.999f, 1e-8f, &opt), "Adam");
    /* The library's trainer, no EMA: lr 1e-3 decayed by 0.97 every 2 epochs (in steps). */
    vib_trainer *t = NULL;
    check(vib_trainer_create(m, opt, NULL, tr->n, B, o->seed, &t), "trainer");
    const double decay_steps = fmax(1.0, 2.0 * (double)vib_trainer_steps_per_epoch(t));
    check(vib_trainer_set_schedule(t, 1e-3f, 0.97f, (uint64_t)decay_steps), "schedule");
    for (size_t epoch = 1; epoch <= o->epochs; epoch++) {
        const double t0 = now();
        double ce, kl;
        check_training(vib_trainer_epoch(t, tr->x, tr->y, &ce, &kl, NULL), t);
        fprintf(stderr, "  beta %-6g epoch %2zu/%zu  %5.1fs  train ce %.4f nats  kl %.3f bits\n",
                beta, epoch, o->epochs, now() - t0, ce, kl / log(2.0));
    }
    vib_trainer_free(t);
    vib_optim_free(opt);
    return m;
}

/* Test error (%) with 12 posterior samples. The remapped labels are in [0, C) by
 * construction; label_class still guards the comparison as in the other programs. */
static double test_error(vib_model *m, const subset *te)
{
    enum { CHUNK = 500 };
    const size_t C = vib_model_classes(m);
    float *prob = xmalloc(CHUNK * C * sizeof *prob);
    size_t wrong = 0;
    for (size_t i = 0; i < te->n; i += CHUNK) {
        const size_t rows = te->n - i < CHUNK ? te->n - i : CHUNK;
        check(vib_model_predict(m, rows, te->x + i * te->dim, 12, prob), "predict");
        for (size_t r = 0; r < rows; r++)
            wrong += argmax(prob + r * C, C) !=
                     label_class("test set (chosen digits)", i + r, te->y[i + r], C);
    }
    free(prob);
    return 100.0 * (double)wrong / (double)te->n;
}

typedef struct {
    double lo[K], hi[K], spread;
} extent;

/* Encode the test images; write the means (one gnuplot block per class) and, with a
 * full covariance, the 95% ellipses of the first ELLIPSES_PER_CLASS test images of
 * each class (one more block per class) to `path`. */
static extent write_latents(vib_model *m, const subset *te, const options *o, const char *path)
{
    const size_t n = te->n, C = o->n_digits, T = vib_chol_size(K);
    float *mu = xmalloc(n * K * sizeof *mu), *chol = xmalloc(n * T * sizeof *chol);
    enum { CHUNK = 1000 };
    for (size_t i = 0; i < n; i += CHUNK) {
        const size_t rows = n - i < CHUNK ? n - i : CHUNK;
        check(vib_model_encode_chol(m, rows, te->x + i * te->dim, mu + i * K, chol + i * T),
              "encode");
    }
    extent e;
    double sd[K];
    for (size_t k = 0; k < K; k++) {
        double s = 0.0, s2 = 0.0;
        e.lo[k] = INFINITY, e.hi[k] = -INFINITY;
        for (size_t i = 0; i < n; i++) {
            double v = mu[i * K + k];
            s += v, s2 += v * v;
            e.lo[k] = fmin(e.lo[k], v), e.hi[k] = fmax(e.hi[k], v);
        }
        double mean = s / (double)n;
        sd[k] = sqrt(fmax(0.0, s2 / (double)n - mean * mean));
    }
    e.spread = 0.5 * (sd[0] + sd[1]);

    FILE *f = fopen(path, "w");
    if (f == NULL) {
        fprintf(stderr, "latent2d: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    fprintf(f, "# latent2d: posterior means of the test images, one block per digit%s\n",
            o->full ? ", then the 95% ellipses of a few of them, one block per digit" : "");
    for (size_t c = 0; c < C; c++) {
        fprintf(f, "%s# digit %d: z1 z2\n", c ? "\n\n" : "", o->digits[c]);
        for (size_t i = 0; i < n; i++)
            if ((size_t)te->y[i] == c)
                fprintf(f, "%.6g %.6g\n", (double)mu[i * K], (double)mu[i * K + 1]);
    }
    if (o->full) {
        /* z = mu + L v with |v|^2 <= chi2_2(0.95) covers 95% of N(mu, L L^T):
         * the ellipse mu + sqrt(5.991) L [cos t, sin t] */
        const double r = sqrt(CHI2_2_95);
        for (size_t c = 0; c < C; c++) {
            fprintf(f, "\n\n# digit %d: 95%% ellipses\n", o->digits[c]);
            for (size_t i = 0, drawn = 0; i < n && drawn < ELLIPSES_PER_CLASS; i++) {
                if ((size_t)te->y[i] != c)
                    continue;
                const float *l = chol + i * T; /* packed L00, L10, L11 */
                for (int p = 0; p < ELLIPSE_POINTS; p++) {
                    double t = TWO_PI * p / (ELLIPSE_POINTS - 1), ct = cos(t), st = sin(t);
                    fprintf(f, "%.6g %.6g\n", mu[i * K] + r * l[0] * ct,
                            mu[i * K + 1] + r * (l[1] * ct + l[2] * st));
                }
                fprintf(f, "\n");
                drawn++;
            }
        }
    }
    if (fclose(f) != 0) {
        fprintf(stderr, "latent2d: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    free(mu), free(chol);
    return e;
}

/* ---- plotting through examples/latent2d.gp ---------------------------------------- */

/* Append `v` to buf as a gnuplot single-quoted string ('' stands for '). */
static void append_quoted(char *buf, size_t len, const char *v)
{
    size_t n = strlen(buf);
    if (n + 1 < len)
        buf[n++] = '\'';
    for (; *v && n + 2 < len; v++) {
        if (*v == '\'')
            buf[n++] = '\'';
        buf[n++] = *v;
    }
    if (n + 1 < len)
        buf[n++] = '\'';
    buf[n < len ? n : len - 1] = '\0';
}

/* gnuplot -e "n=..; out='..'; names='..'; ellipses=..; dat1='..'; ttl1=\"..\"; .." script,
 * run without a shell so no path is ever interpreted (as train_mnist does); the paths
 * travel as gnuplot strings with their quotes doubled. */
static void plot(const options *o, size_t n, char dats[][4096], char titles[][256],
                 const char *out, int ellipses)
{
    /* every path doubled at worst, plus titles and names: this always fits */
    static char e[MAX_BETAS * (2 * 4096 + 256 + 64) + 2 * 4096 + 1024];
    char tmp[128];
    snprintf(e, sizeof e, "n=%zu; ellipses=%d; names='", n, ellipses);
    for (size_t c = 0; c < o->n_digits; c++) {
        snprintf(tmp, sizeof tmp, "%s%d", c ? " " : "", o->digits[c]);
        strcat(e, tmp);
    }
    strcat(e, "'; out=");
    append_quoted(e, sizeof e, out);
    for (size_t i = 0; i < n; i++) {
        snprintf(tmp, sizeof tmp, "; dat%zu=", i + 1);
        strcat(e, tmp);
        append_quoted(e, sizeof e, dats[i]);
        snprintf(tmp, sizeof tmp, "; ttl%zu=\"", i + 1);
        strcat(e, tmp);
        strcat(e, titles[i]); /* ours: numbers and fixed text, no quotes */
        strcat(e, "\"");
    }
    char *argv[] = {"gnuplot", "-e", e, "examples/latent2d.gp", NULL};
    fflush(stdout); /* keep our lines in order with gnuplot's */
    if (run_gnuplot(argv[3], argv, out))
        printf("plot: %s\n", out);
    fflush(stdout);
}

/* ---- main ------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    options o;
    parse_args(argc, argv, &o);
    set_threads(o.threads);

    vib_dataset *train_all = NULL, *test_all = NULL;
    load_mnist(o.data, 0.0f, &train_all, &test_all);
    if (vib_dataset_dim(test_all) != vib_dataset_dim(train_all)) {
        fprintf(stderr, "latent2d: train images have %zu values, test images %zu\n",
                vib_dataset_dim(train_all), vib_dataset_dim(test_all));
        return 1;
    }
    subset tr = select_digits(train_all, &o), te = select_digits(test_all, &o);
    vib_dataset_free(train_all);
    vib_dataset_free(test_all);
    for (size_t c = 0; c < o.n_digits; c++) {
        size_t k = 0;
        for (size_t i = 0; i < te.n; i++)
            k += (size_t)te.y[i] == c;
        if (k == 0) {
            fprintf(stderr, "latent2d: %s has no test images of digit %d\n", o.data,
                    o.digits[c]);
            return 1;
        }
    }

    char digits[64] = "", hidden[128] = "";
    for (size_t c = 0; c < o.n_digits; c++)
        snprintf(digits + strlen(digits), sizeof digits - strlen(digits), "%s%d", c ? "," : "",
                 o.digits[c]);
    for (size_t k = 0; k < o.n_enc; k++)
        snprintf(hidden + strlen(hidden), sizeof hidden - strlen(hidden), "-%zu", o.enc[k]);
    printf("libvib %s | digits %s: %zu train, %zu test images | encoder %zu%s, K = 2 (%s "
           "covariance), linear decoder | Adam lr 1e-3, batch 100, %zu epochs\n",
           vib_version_string(), digits, tr.n, te.n, tr.dim, hidden,
           o.full ? "full" : "diagonal", o.epochs);
    fflush(stdout);

    static char dats[MAX_BETAS][4096], titles[MAX_BETAS][256];
    const double t_start = now();
    for (size_t b = 0; b < o.n_betas; b++) {
        const double beta = o.betas[b];
        vib_model *m = train(&o, &tr, beta);
        const double err = test_error(m, &te);
        snprintf(dats[b], sizeof dats[b], "%s_beta%g.dat", o.out, beta);
        mkdir_for(dats[b]);
        const extent e = write_latents(m, &te, &o, dats[b]);
        vib_model_free(m);
        printf("result beta=%g test_error_pct=%.2f spread=%.4g\n", beta, err, e.spread);
        fflush(stdout);
        /* two lines: gnuplot turns \\n into a newline inside its double-quoted strings */
        snprintf(titles[b], sizeof titles[b],
                 "beta = %g   (test error %.2f%%)\\nz_1 in [%.3g, %.3g], z_2 in [%.3g, %.3g]",
                 beta, err, e.lo[0], e.hi[0], e.lo[1], e.hi[1]);
        char png[4096 + 16];
        snprintf(png, sizeof png, "%s_beta%g.png", o.out, beta);
        plot(&o, 1, &dats[b], &titles[b], png, o.full);
    }
    char png[4096];
    snprintf(png, sizeof png, "%s.png", o.out);
    plot(&o, o.n_betas, dats, titles, png, 0);
    printf("%zu betas in %.0f seconds\n", o.n_betas, now() - t_start);
    free(tr.x), free(tr.y), free(te.x), free(te.y);
    return 0;
}
