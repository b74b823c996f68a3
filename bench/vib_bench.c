/*
 * vib_bench - how fast libvib trains and predicts, against the matrix-product floor.
 *
 *   vib_bench [--data DIR] [--epochs N] [--threads LIST] [--samples S]
 *
 * The paper's network (Alemi et al., ICLR 2017): inputs in [-1, 1], encoder
 * 784-1024-1024 (ReLU), K = 256, a linear softmax decoder, batch 100, Adam (lr 1e-4,
 * beta1 0.5) with the weights' moving average (0.999) updated in the same pass, on the
 * 60,000 MNIST training images. For each thread count in LIST (default 1,2):
 *
 *   epoch    one shuffled pass of 600 steps (batch gathering, vib_model_gradients,
 *            vib_optim_step_ema), timed with a monotonic clock;
 *   floor    the same 600 steps' matrix products alone: the eleven BLIS calls a step
 *            makes, with the same shapes, strides and thread count, on buffers of the
 *            same sizes: what the step would cost if everything else were free;
 *   stream   600 passes of the least memory traffic an Adam step with an average needs:
 *            five arrays of the parameter count read (parameters, gradients, two
 *            moments, average) and four written, with the simplest arithmetic, on the
 *            same threads: the memory floor of the optimizer, which no fusion removes;
 *
 * measured alternately (epoch, floor, epoch, floor, ...) so both see the same machine
 * state, N times each (default 3); the medians are reported with the achieved GFLOP/s
 * (the products' floating-point operations over the time) and the ratios of the epoch to
 * the floor and to floor + stream. Then the
 * 10,000 test images are classified by averaging S (default 12) posterior samples, in
 * batches of 500 as train_mnist evaluates, timed.
 *
 * The last stdout line is
 *   result epoch_s=<s> floor_s=<s> predict_s=<s> threads=<T>
 * for the last thread count of LIST. This is a benchmark, not a test: it asserts
 * nothing; docs/performance.md interprets its numbers.
 */
#define _POSIX_C_SOURCE 200809L
#include <blis.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vib.h"

#define BATCH 100
#define IN 784
#define H1 1024
#define H2 1024
#define K 256
#define CLASSES 10
#define MAX_EPOCHS 50
#define PREDICT_BATCH 500

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

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
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

static long parse_long(const char *opt, const char *v, long lo, long hi)
{
    char *end;
    long x = strtol(v, &end, 10);
    if (end == v || *end != '\0' || x < lo || x > hi)
        usage_error(opt[2] == 't' ? "bad thread count" : "bad value for", v);
    return x;
}

/* ---- the floor: a step's products alone ------------------------------------------ */

typedef struct {
    float *x, *w1, *h1, *w2, *h2, *wh, *head, *z, *wd, *logits;
    float *dw1, *dw2, *dwh, *dwd, *d1, *d2, *dhead, *dz;
} floor_bufs;

static float *filled(size_t n)
{
    float *p = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    if (p == NULL) {
        fprintf(stderr, "vib_bench: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        p[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
    return p;
}

/* C = op(A) op(B) (+ C if accumulate), row-major, transposes as strides: exactly the
 * call libvib makes for each product. */
static void mm(const rntm_t *rntm, int ta, int tb, dim_t m, dim_t n, dim_t k, float *a,
               dim_t lda, float *b, dim_t ldb, float beta, float *c, dim_t ldc)
{
    float one = 1.0f;
    inc_t rsa = ta ? 1 : lda, csa = ta ? lda : 1, rsb = tb ? 1 : ldb, csb = tb ? ldb : 1;
    rntm_t r = *rntm;
    bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, m, n, k, &one, a, rsa, csa, b, rsb, csb,
                 &beta, c, ldc, 1, NULL, &r);
}

/* One step's eleven products: forward through the encoder, the head and the decoder;
 * backward the decoder's and the head's weight gradient and input gradient, the second
 * layer's, and the first layer's weight gradient (its input gradient is never needed). */
static void floor_step(const floor_bufs *f, const rntm_t *r)
{
    mm(r, 0, 0, BATCH, H1, IN, f->x, IN, f->w1, H1, 0.0f, f->h1, H1);
    mm(r, 0, 0, BATCH, H2, H1, f->h1, H1, f->w2, H2, 0.0f, f->h2, H2);
    mm(r, 0, 0, BATCH, 2 * K, H2, f->h2, H2, f->wh, 2 * K, 0.0f, f->head, 2 * K);
    mm(r, 0, 0, BATCH, CLASSES, K, f->z, K, f->wd, CLASSES, 0.0f, f->logits, CLASSES);
    mm(r, 1, 0, K, CLASSES, BATCH, f->z, K, f->logits, CLASSES, 0.0f, f->dwd, CLASSES);
    mm(r, 0, 1, BATCH, K, CLASSES, f->logits, CLASSES, f->wd, CLASSES, 0.0f, f->dz, K);
    mm(r, 1, 0, H2, 2 * K, BATCH, f->h2, H2, f->dhead, 2 * K, 0.0f, f->dwh, 2 * K);
    mm(r, 0, 1, BATCH, H2, 2 * K, f->dhead, 2 * K, f->wh, 2 * K, 0.0f, f->d2, H2);
    mm(r, 1, 0, H1, H2, BATCH, f->h1, H1, f->d2, H2, 0.0f, f->dw2, H2);
    mm(r, 0, 1, BATCH, H1, H2, f->d2, H2, f->w2, H2, 0.0f, f->d1, H1);
    mm(r, 1, 0, IN, H1, BATCH, f->x, IN, f->d1, H1, 0.0f, f->dw1, H1);
}

/* Floating-point operations of one step's products per example: 2 in*out for each
 * layer's forward and weight gradient, and for every input gradient but the first
 * layer's. */
static double flops_per_example(void)
{
    const double first = (double)IN * H1;
    const double sum = first + (double)H1 * H2 + (double)H2 * 2 * K + (double)K * CLASSES;
    return 2.0 * (3.0 * sum - first);
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
        else if (!strcmp(a, "--epochs")) epochs = (int)parse_long(a, v, 1, MAX_EPOCHS);
        else if (!strcmp(a, "--threads")) thread_list = v;
        else if (!strcmp(a, "--samples")) samples = (size_t)parse_long(a, v, 0, 1000);
        else usage_error("unknown option", a);
    }
    int threads[16], n_threads = 0;
    for (const char *p = thread_list; *p;) {
        char *end;
        long t = strtol(p, &end, 10);
        if (end == p || t < 1 || t > VIB_MAX_THREADS || n_threads == 16 ||
            (*end != ',' && *end != '\0'))
            usage_error("bad thread list", thread_list);
        threads[n_threads++] = (int)t;
        p = *end == ',' ? end + 1 : end;
    }
    if (n_threads == 0)
        usage_error("bad thread list", thread_list);

    vib_dataset *train = NULL, *test = NULL;
    if (vib_dataset_load_mnist(data, "train", -1.0f, 1.0f, &train) != VIB_OK ||
        vib_dataset_load_mnist(data, "t10k", -1.0f, 1.0f, &test) != VIB_OK) {
        fprintf(stderr, "vib_bench: %s (run 'make data' first)\n", vib_last_error());
        return 1;
    }
    const size_t n_train = vib_dataset_size(train), n_test = vib_dataset_size(test);
    const size_t steps = n_train / BATCH;
    const float *images = vib_dataset_images(train);
    const int32_t *labels = vib_dataset_labels(train);

    char info[256];
    vib_backend_info(info, sizeof info);
    printf("backend: %s\n", info);
    printf("network: 784-1024-1024, K=256, linear decoder, batch %d, Adam + moving average;"
           " %zu steps per epoch, %.2f GFLOP of products per epoch\n",
           BATCH, steps, flops_per_example() * (double)(steps * BATCH) / 1e9);

    floor_bufs f = {
        .x = filled(BATCH * IN), .w1 = filled(IN * H1), .h1 = filled(BATCH * H1),
        .w2 = filled(H1 * H2), .h2 = filled(BATCH * H2), .wh = filled(H2 * 2 * K),
        .head = filled(BATCH * 2 * K), .z = filled(BATCH * K), .wd = filled(K * CLASSES),
        .logits = filled(BATCH * CLASSES), .dw1 = filled(IN * H1), .dw2 = filled(H1 * H2),
        .dwh = filled(H2 * 2 * K), .dwd = filled(K * CLASSES), .d1 = filled(BATCH * H1),
        .d2 = filled(BATCH * H2), .dhead = filled(BATCH * 2 * K), .dz = filled(BATCH * K)};
    float *xb = filled(BATCH * IN), *prob = filled(PREDICT_BATCH * CLASSES);
    int32_t yb[BATCH];
    size_t *perm = malloc(n_train * sizeof *perm);
    if (perm == NULL) {
        fprintf(stderr, "vib_bench: out of memory\n");
        return 1;
    }

    double last_epoch = 0, last_floor = 0, last_predict = 0;
    for (int ti = 0; ti < n_threads; ti++) {
        const int nt = threads[ti];
        if (vib_set_num_threads(nt) != VIB_OK)
            die("vib_set_num_threads");
        rntm_t rntm = BLIS_RNTM_INITIALIZER;
        bli_rntm_set_num_threads(nt, &rntm);

        const size_t enc[2] = {H1, H2};
        vib_model *m = NULL;
        vib_optim *opt = NULL;
        vib_ema *ema = NULL;
        vib_rng *shuffle = NULL;
        if (vib_model_create(IN, 2, enc, K, 0, NULL, CLASSES, 1, &m) != VIB_OK)
            die("vib_model_create");
        const size_t np = vib_model_num_params(m);
        if (vib_adam_create(np, 1e-4f, 0.5f, 0.999f, 1e-8f, &opt) != VIB_OK ||
            vib_ema_create(np, 0.999f, vib_model_params(m), &ema) != VIB_OK ||
            vib_rng_create(7, &shuffle) != VIB_OK)
            die("setup");

        double epoch_s[MAX_EPOCHS], floor_s[MAX_EPOCHS], stream_s[MAX_EPOCHS];
        float *sp = filled(np), *sg = filled(np), *sm = filled(np), *sv = filled(np);
        float *sa = filled(np);
        for (size_t i = 0; i < np; i++) /* small values: 600 passes stay finite */
            sg[i] *= 1e-6f, sm[i] = sv[i] = sp[i] = sa[i] = 0.0f;
        for (int e = -1; e < epochs; e++) { /* e = -1: a warm-up pass, not counted */
            for (size_t i = 0; i < n_train; i++)
                perm[i] = i;
            for (size_t i = n_train - 1; i > 0; i--) { /* Fisher-Yates */
                float u;
                if (vib_rng_uniform(shuffle, 1, 0.0f, 1.0f, &u) != VIB_OK)
                    die("vib_rng_uniform");
                size_t j = (size_t)(u * (float)(i + 1));
                j = j > i ? i : j;
                size_t t = perm[i];
                perm[i] = perm[j], perm[j] = t;
            }
            const size_t run = e < 0 ? steps / 10 : steps;
            double t0 = now();
            for (size_t s = 0; s < run; s++) {
                for (size_t r = 0; r < BATCH; r++) {
                    size_t idx = perm[s * BATCH + r];
                    memcpy(xb + r * IN, images + idx * IN, IN * sizeof(float));
                    yb[r] = labels[idx];
                }
                if (vib_model_gradients(m, BATCH, xb, yb, NULL, NULL, NULL) != VIB_OK)
                    die("vib_model_gradients");
                if (vib_optim_step_ema(opt, vib_model_params(m), vib_model_grads(m), ema) !=
                    VIB_OK)
                    die("vib_optim_step_ema");
            }
            double t1 = now();
            for (size_t s = 0; s < run; s++)
                floor_step(&f, &rntm);
            double t2 = now();
            for (size_t s = 0; s < run; s++)
                stream_pass(nt, np, sp, sg, sm, sv, sa);
            double t3 = now();
            if (e >= 0) {
                epoch_s[e] = t1 - t0, floor_s[e] = t2 - t1, stream_s[e] = t3 - t2;
                printf("threads=%d epoch %d: %.3f s, floor %.3f s, stream %.3f s\n", nt, e + 1,
                       epoch_s[e], floor_s[e], stream_s[e]);
                fflush(stdout);
            }
        }
        const double ep = median(epoch_s, epochs), fl = median(floor_s, epochs);
        const double st = median(stream_s, epochs);
        free(sp), free(sg), free(sm), free(sv), free(sa);
        const double gflop = flops_per_example() * (double)(steps * BATCH) / 1e9;

        /* Prediction with the averaged weights, as an evaluation would run. */
        memcpy(vib_model_params(m), vib_ema_values(ema), np * sizeof(float));
        size_t wrong = 0;
        double t0 = now();
        for (size_t b = 0; b < n_test; b += PREDICT_BATCH) {
            const size_t rows = n_test - b < PREDICT_BATCH ? n_test - b : PREDICT_BATCH;
            if (vib_model_predict(m, rows, vib_dataset_images(test) + b * IN, samples, prob) !=
                VIB_OK)
                die("vib_model_predict");
            for (size_t r = 0; r < rows; r++) {
                size_t best = 0;
                for (size_t c = 1; c < CLASSES; c++)
                    if (prob[r * CLASSES + c] > prob[r * CLASSES + best])
                        best = c;
                wrong += (int32_t)best != vib_dataset_labels(test)[b + r];
            }
        }
        const double pr = now() - t0;
        printf("threads=%d epoch_s=%.3f (%.1f GFLOP/s) floor_s=%.3f (%.1f GFLOP/s) "
               "epoch/floor=%.3f stream_s=%.3f (%.1f GB/s) epoch/(floor+stream)=%.3f "
               "predict_s=%.3f (%.0f images/s, %zu samples, test error %.2f%% after %d "
               "epochs and a warm-up)\n",
               nt, ep, gflop / ep, fl, gflop / fl, ep / fl, st,
               36.0 * (double)np * (double)steps / st / 1e9, ep / (fl + st), pr,
               (double)n_test / pr, samples, 100.0 * (double)wrong / (double)n_test, epochs);
        fflush(stdout);
        last_epoch = ep, last_floor = fl, last_predict = pr;
        vib_model_free(m);
        vib_optim_free(opt);
        vib_ema_free(ema);
        vib_rng_free(shuffle);
    }
    printf("result epoch_s=%.3f floor_s=%.3f predict_s=%.3f threads=%d\n", last_epoch,
           last_floor, last_predict, threads[n_threads - 1]);
    return 0;
}
