/*
 * vib_bench - how fast libvib trains and predicts, against the machine's physical floor.
 *
 *   vib_bench [--data DIR] [--epochs N] [--threads LIST] [--samples S]
 *
 * The paper's network (Alemi et al., ICLR 2017): inputs in [-1, 1], encoder
 * 784-1024-1024 (ReLU), K = 256, a linear softmax decoder, batch 100, Adam (lr 1e-4,
 * beta1 0.5) with the weights' moving average (0.999) updated in the same pass, on the
 * 60,000 MNIST training images. For each thread count in LIST (default 1,2), N rounds
 * (default 3, after a warm-up of 60 steps, an epoch of a trainer over 6,000 rows) of:
 *
 *   epoch    one vib_trainer_epoch: 600 steps of the library's trainer (gathering the
 *            shuffled batch, vib_model_gradients, vib_optim_step_ema, and at its end the
 *            next epoch's shuffle), timed with a monotonic clock;
 *   calls floor
 *            the same 600 steps' products alone, made as libvib makes them (vibi_sgemm:
 *            its paths and threads) on buffers of a step's sizes: what the step would
 *            cost if everything else were free. It cannot see a product that runs
 *            below the machine's speed, hence the peak;
 *   stream   600 passes of the least memory traffic an Adam step with an average needs:
 *            five arrays of the parameter count read (parameters, gradients, two
 *            moments, average) and four written, with the simplest arithmetic, on the
 *            same threads: the memory floor of the optimizer, which no fusion removes;
 *   peak     the machine's sgemm speed on these threads: the best of a 2000^3 product
 *            and of each of the step's products by any of BLIS's paths (sup, packed,
 *            packed with the threads on rows or on columns);
 *
 * so all four see the same machine state. The medians are reported, with the physical
 * floor of an epoch, (the epoch's product FLOPs) / peak + stream, and the epoch's ratio
 * to it; and, as a second figure, the ratios to the calls floor. Then the 10,000 test
 * images are classified by averaging S (default 12) posterior samples with the averaged
 * weights, in batches of 500 as train_mnist evaluates: the median of three passes.
 * Last, a training step (vib_model_gradients on a batch of 100) with 12 posterior draws
 * per example against one draw (vib_model_set_train_samples): the time of each (the
 * median of three runs of 50 steps), their ratio, and the ratio of their products'
 * FLOPs, the part the extra draws add.
 *
 * The last stdout line is
 *   result epoch_s=<s> phys_floor_s=<s> epoch_over_phys=<r> floor_s=<s> predict_s=<s>
 *          threads=<T>
 * for the last thread count of LIST (floor_s: the calls floor). This is a benchmark,
 * not a test: it asserts nothing; docs/performance.md interprets its numbers.
 */
#define _POSIX_C_SOURCE 200809L
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_paths.h"
#include "vib.h"

#define BATCH 100
#define MAX_EPOCHS 50
#define PREDICT_BATCH 500
#define SQUARE 2000 /* the large square product of the peak */
#define STEPS_S 50     /* the gradient calls of the train-samples comparison */

static void die(const char *what)
{
    fprintf(stderr, "vib_bench: %s: %s\n", what, vib_last_error());
    exit(1);
}

static void usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "vib_bench: %s '%s'\n", msg, arg);
    fprintf(stderr, "usage: vib_bench [--data DIR] [--epochs N] [--threads LIST] [--samples S]\n");
    exit(2);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static long parse_long(const char *v, long lo, long hi)
{
    long x[1];
    if (parse_list(v, x, 1, lo, hi) != 1)
        usage_error("bad value for", v);
    return x[0];
}

/* ---- the floors ----------------------------------------------------------------- */

/* One step's products exactly as libvib runs them (vibi_sgemm: its paths, its threads),
 * on buffers of a step's sizes shared as the step shares them. */
static void floor_step(const product *prods, float **buf, int threads, double *seconds)
{
    for (int i = 0; i < N_STEP_PRODUCTS; i++) {
        const product *p = &prods[i];
        const double t0 = now();
        run_path(LIBVIB, threads, p, buf[p->a], buf[p->b], buf[p->c]);
        seconds[i] += now() - t0;
    }
}

/* The machine's sgemm peak on `threads` threads, in GFLOP/s: the best of a SQUARE^3
 * product (packed) and of each of the step's products by any of BLIS's paths. */
static double sgemm_peak(const product *prods, float **buf, float *sq_a, float *sq_b,
                         float *sq_c, int threads)
{
    static const int packed[N_PATHS] = {[PACKED] = 1};
    static const int any[N_PATHS] = {[SUP] = 1, [PACKED] = 1, [PK_JC] = 1, [PK_IC] = 1};
    const product sq = {"square", 0, 0, SQUARE, SQUARE, SQUARE, 0, 0, 0};
    double t[N_PATHS], peak;
    best_of_paths(threads, 2, &sq, sq_a, sq_b, sq_c, packed, t);
    peak = product_flop(&sq) / t[PACKED];
    for (int i = 0; i < N_STEP_PRODUCTS; i++) {
        const product *p = &prods[i];
        best_of_paths(threads, 3, p, buf[p->a], buf[p->b], buf[p->c], any, t);
        for (int q = 0; q < N_PATHS; q++)
            if (any[q] && product_flop(p) / t[q] > peak)
                peak = product_flop(p) / t[q];
    }
    return peak / 1e9;
}

/* One pass of the optimizer's unavoidable traffic over n elements: read p, g, m, v, a;
 * write p, m, v, a. */
static void stream_pass(int threads, size_t n, float *p, const float *g, float *m, float *v,
                        float *a)
{
#pragma omp parallel for simd num_threads(threads) schedule(static)
    for (size_t i = 0; i < n; i++) {
        const float gi = g[i];
        m[i] += gi;
        v[i] += gi;
        p[i] += m[i] + v[i];
        a[i] += p[i];
    }
}

/* ---- main ------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    const char *data = "data/mnist", *thread_list = "1,2";
    int epochs = 3;
    size_t samples = 12;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: vib_bench [--data DIR] [--epochs N] [--threads LIST] [--samples S]\n"
                   "  the header of bench/vib_bench.c says what is measured\n");
            return 0;
        }
        if (i + 1 >= argc)
            usage_error("missing value after", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--epochs")) epochs = (int)parse_long(v, 1, MAX_EPOCHS);
        else if (!strcmp(a, "--threads")) thread_list = v;
        else if (!strcmp(a, "--samples")) samples = (size_t)parse_long(v, 0, 1000);
        else usage_error("unknown option", a);
    }
    long threads[16];
    const int n_threads = parse_list(thread_list, threads, 16, 1, VIB_MAX_THREADS);
    if (n_threads < 1)
        usage_error("bad thread list", thread_list);

    vib_dataset *train = NULL, *test = NULL;
    if (vib_dataset_load_mnist(data, "train", -1.0f, 1.0f, &train) != VIB_OK ||
        vib_dataset_load_mnist(data, "t10k", -1.0f, 1.0f, &test) != VIB_OK) {
        fprintf(stderr, "vib_bench: %s (run 'make data' first)\n", vib_last_error());
        return 1;
    }
    const size_t n_test = vib_dataset_size(test);
    /* Whole batches only, so every step's products are those step_products counts. */
    const size_t steps = vib_dataset_size(train) / BATCH, n_train = steps * BATCH;
    const float *images = vib_dataset_images(train);
    const int32_t *labels = vib_dataset_labels(train);

    char info[256];
    vib_backend_info(info, sizeof info);
    printf("backend: %s\n", info);

    product prods[N_STEP_PRODUCTS];
    size_t buf_size[N_BUFS];
    float *buf[N_BUFS];
    step_products(BATCH, prods, buf_size);
    double step_flop = 0; /* the epoch's products are the step's, `steps` times */
    for (int i = 0; i < N_STEP_PRODUCTS; i++)
        step_flop += product_flop(&prods[i]);
    const double gflop = step_flop * (double)steps / 1e9;
    printf("network: 784-1024-1024, K=256, linear decoder, batch %d, Adam + moving average;"
           " %zu steps per epoch, %.2f GFLOP of products per epoch\n",
           BATCH, steps, gflop);
    for (int i = 0; i < N_BUFS; i++)
        buf[i] = filled(buf_size[i]);
    float *sq_a = filled((size_t)SQUARE * SQUARE), *sq_b = filled((size_t)SQUARE * SQUARE);
    float *sq_c = filled((size_t)SQUARE * SQUARE);
    float *prob = filled(PREDICT_BATCH * CLASSES);

    double last_epoch = 0, last_floor = 0, last_phys = 0, last_predict = 0;
    for (int ti = 0; ti < n_threads; ti++) {
        const int nt = (int)threads[ti];
        if (vib_set_num_threads(nt) != VIB_OK)
            die("vib_set_num_threads");

        const size_t enc[2] = {H1, H2};
        vib_model *m = NULL;
        vib_optim *opt = NULL;
        vib_ema *ema = NULL;
        vib_trainer *warm = NULL, *tr = NULL;
        if (vib_model_create(IN, 2, enc, K, 0, NULL, CLASSES, 1, &m) != VIB_OK)
            die("vib_model_create");
        const size_t np = vib_model_num_params(m);
        /* The warm-up trains on the first tenth of the rows: one epoch of steps / 10. */
        if (vib_adam_create(np, 1e-4f, 0.5f, 0.999f, 1e-8f, &opt) != VIB_OK ||
            vib_ema_create(np, 0.999f, vib_model_params(m), &ema) != VIB_OK ||
            vib_trainer_create(m, opt, ema, steps / 10 * BATCH, BATCH, 7, &warm) != VIB_OK ||
            vib_trainer_create(m, opt, ema, n_train, BATCH, 7, &tr) != VIB_OK)
            die("setup");

        double epoch_s[MAX_EPOCHS], floor_s[MAX_EPOCHS], stream_s[MAX_EPOCHS];
        double peak[MAX_EPOCHS], prod_total[N_STEP_PRODUCTS] = {0};
        float *sp = filled(np), *sg = filled(np), *sm = filled(np), *sv = filled(np);
        float *sa = filled(np);
        for (size_t i = 0; i < np; i++) /* small values: 600 passes stay finite */
            sg[i] *= 1e-6f, sm[i] = sv[i] = sp[i] = sa[i] = 0.0f;
        for (int e = -1; e < epochs; e++) { /* e = -1: a warm-up pass, not counted */
            const size_t run = e < 0 ? steps / 10 : steps;
            double t0 = now();
            if (vib_trainer_epoch(e < 0 ? warm : tr, images, labels, NULL, NULL, NULL) != VIB_OK)
                die("vib_trainer_epoch");
            double t1 = now();
            double prod_s[N_STEP_PRODUCTS] = {0};
            for (size_t s = 0; s < run; s++)
                floor_step(prods, buf, nt, prod_s);
            for (int i = 0; e >= 0 && i < N_STEP_PRODUCTS; i++)
                prod_total[i] += prod_s[i];
            double t2 = now();
            for (size_t s = 0; s < run; s++)
                stream_pass(nt, np, sp, sg, sm, sv, sa);
            double t3 = now();
            const double pk = sgemm_peak(prods, buf, sq_a, sq_b, sq_c, nt);
            if (e >= 0) {
                epoch_s[e] = t1 - t0, floor_s[e] = t2 - t1, stream_s[e] = t3 - t2;
                peak[e] = pk;
                printf("threads=%d epoch %d: %.3f s, calls floor %.3f s, stream %.3f s, "
                       "peak %.1f GFLOP/s\n",
                       nt, e + 1, epoch_s[e], floor_s[e], stream_s[e], peak[e]);
                fflush(stdout);
            }
        }
        const double ep = median(epoch_s, epochs), fl = median(floor_s, epochs);
        const double st = median(stream_s, epochs), pk = median(peak, epochs);
        free(sp), free(sg), free(sm), free(sv), free(sa);

        const double phys = gflop / pk + st; /* the physical floor */
        printf("threads=%d calls floor by product (GFLOP/s in sequence, share of the "
               "floor):", nt);
        for (int i = 0; i < N_STEP_PRODUCTS; i++)
            printf("%s %s %.0f (%.1f%%)", i ? "," : "", prods[i].what,
                   product_flop(&prods[i]) * (double)steps * epochs / prod_total[i] / 1e9,
                   100.0 * prod_total[i] / (fl * epochs));
        printf("\n");

        /* Prediction with the averaged weights, as an evaluation would run; the median of
         * three passes over the test set. */
        memcpy(vib_model_params(m), vib_ema_values(ema), np * sizeof(float));
        size_t wrong = 0;
        double predict_s[3];
        for (int rep = 0; rep < 3; rep++) {
            double t0 = now();
            for (size_t b = 0; b < n_test; b += PREDICT_BATCH) {
                const size_t rows = n_test - b < PREDICT_BATCH ? n_test - b : PREDICT_BATCH;
                if (vib_model_predict(m, rows, vib_dataset_images(test) + b * IN, samples,
                                      prob) != VIB_OK)
                    die("vib_model_predict");
                for (size_t r = 0; rep == 0 && r < rows; r++) {
                    size_t best = 0;
                    for (size_t c = 1; c < CLASSES; c++)
                        if (prob[r * CLASSES + c] > prob[r * CLASSES + best])
                            best = c;
                    wrong += (int32_t)best != vib_dataset_labels(test)[b + r];
                }
            }
            predict_s[rep] = now() - t0;
        }
        const double pr = median(predict_s, 3);

        /* Training with 12 draws per example (vib_model_set_train_samples) against one:
         * the median over three runs of STEPS_S gradient calls on the first batches.
         * The encoder runs once either way; the draws add the head's sampling and the
         * decoder over 12 x batch rows, here 256 -> 10: the products' count grows by
         * the ratio printed as flop_ratio. */
        double samp_s[2];
        for (int which = 0; which < 2; which++) {
            const size_t S = which ? 12 : 1;
            if (vib_model_set_train_samples(m, S, VIB_OBJECTIVE_MEAN) != VIB_OK)
                die("vib_model_set_train_samples");
            double reps[3];
            for (int rep = 0; rep < 3; rep++) {
                double t0 = now();
                for (size_t b = 0; b < STEPS_S; b++)
                    if (vib_model_gradients(m, BATCH, images + b * BATCH * IN, labels + b * BATCH,
                                            NULL, NULL, NULL) != VIB_OK)
                        die("vib_model_gradients");
                reps[rep] = now() - t0;
            }
            samp_s[which] = median(reps, 3) / STEPS_S;
        }
        if (vib_model_set_train_samples(m, 1, VIB_OBJECTIVE_MEAN) != VIB_OK)
            die("vib_model_set_train_samples");
        const double enc_flop = 2.0 * BATCH * ((double)IN * H1 + (double)H1 * H2 + 2.0 * H2 * K);
        const double dec_flop = 2.0 * BATCH * (double)K * CLASSES;
        /* forward, weight gradient, input gradient (none for the first layer's input) */
        const double one = 3 * (enc_flop + dec_flop) - 2.0 * BATCH * IN * H1;
        const double twelve = one + 3 * 11 * dec_flop;
        printf("threads=%d train_samples: 1 draw %.2f ms a step, 12 draws %.2f ms, ratio %.3f "
               "(flop_ratio %.3f; 12 one-draw steps would be 12)\n",
               nt, 1e3 * samp_s[0], 1e3 * samp_s[1], samp_s[1] / samp_s[0], twelve / one);
        printf("threads=%d epoch_s=%.3f (%.1f GFLOP/s) peak %.1f GFLOP/s stream_s=%.3f "
               "(%.1f GB/s) phys_floor_s=%.3f epoch/phys_floor=%.3f | calls_floor_s=%.3f "
               "(%.1f GFLOP/s) epoch/calls_floor=%.3f epoch/(calls_floor+stream)=%.3f | "
               "predict_s=%.3f (%.0f images/s, %zu samples, test error %.2f%% after %d "
               "epochs and a warm-up)\n",
               nt, ep, gflop / ep, pk, st, 36.0 * (double)np * (double)steps / st / 1e9, phys,
               ep / phys, fl, gflop / fl, ep / fl, ep / (fl + st), pr, (double)n_test / pr,
               samples, 100.0 * (double)wrong / (double)n_test, epochs);
        fflush(stdout);
        last_phys = phys;
        last_epoch = ep, last_floor = fl, last_predict = pr;
        vib_trainer_free(warm);
        vib_trainer_free(tr);
        vib_model_free(m);
        vib_optim_free(opt);
        vib_ema_free(ema);
    }
    printf("result epoch_s=%.3f phys_floor_s=%.3f epoch_over_phys=%.3f floor_s=%.3f "
           "predict_s=%.3f threads=%d\n",
           last_epoch, last_phys, last_epoch / last_phys, last_floor, last_predict,
           (int)threads[n_threads - 1]);
    return 0;
}
