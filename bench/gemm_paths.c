/*
 * gemm_paths - every way BLIS can run each of libvib's products, timed, next to the
 * way libvib runs it: the measurements behind lib/gemm.c's rule.
 *
 *   gemm_paths [--threads LIST] [--reps N] [--steps N] [--batch LIST] [--square N]
 *
 * For each product a training step of the paper's network makes (784-1024-1024, K = 256,
 * 10 classes) at each batch size of LIST (default 100), and for each thread count
 * (default 1,2), it times, best of N calls (default 40) after two warm-up calls, the paths
 * interleaved call by call:
 *
 *   sup      BLIS's default: its small/unpacked ("sup") path when the shape is under the
 *            kernel set's thresholds, else the packed path;
 *   packed   the sup path disabled on the call's runtime object (bli_rntm_disable_l3_sup);
 *   T-sup, T-packed
 *            the same product as its transpose, C^T = op(B)^T op(A)^T, which BLIS sees
 *            as another shape with other strides;
 *   pk-jc, pk-ic
 *            packed, with every thread on the columns (BLIS's jc loop) or on the rows
 *            (ic) instead of BLIS's own split;
 *   libvib   vibi_sgemm, the path lib/gemm.c's rule picks;
 *
 * and prints GFLOP/s (2 m n k over the time) per path, the best path, and libvib's share
 * of the best. Those are products on warm caches, called back to back. In training the
 * products follow each other and the optimizer's pass (about 86 MB of traffic a step)
 * evicts the caches between steps, so then each batch size and thread count gets a
 * second table: the step's products in order, on buffers shared as the step shares
 * them, after an eviction pass of that size, for N steps (default 30) by each of sup,
 * packed, pk-jc and libvib's path, taking turns step by step. Then one large square
 * product (default 2000^3, packed) on the same threads: the machine's sgemm peak.
 * Kernels: whatever BLIS runs in this process, as libvib chose them or BLIS_ARCH_TYPE
 * forces them (never force a set the CPU lacks).
 * This is a benchmark: it asserts nothing (docs/performance.md).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_paths.h"

#define USAGE                                                                              \
    "usage: gemm_paths [--threads LIST] [--reps N] [--steps N] [--batch LIST] [--square N]\n"

/* The memory traffic of the optimizer's pass between two steps (five arrays of the
 * paper network's 2.38M parameters read, four written): it evicts the caches, so the
 * next step's products read their weights from memory, as they do in training. */
#define EVICT_FLOATS ((size_t)2384394 * 5)

static void evict(float *e)
{
    for (size_t i = 0; i < EVICT_FLOATS; i++)
        e[i] = e[i] * 0.5f + 1.0f;
}

/* The step's products in order, on buffers shared as a step shares them, with the
 * caches evicted before each step: `reps` steps by each of the paths sup, packed, pk-jc
 * and libvib, the paths taking turns step by step. Prints each product's GFLOP/s by
 * each path (total FLOPs over total time). */
static void sequence_table(size_t B, int nt, int reps, const product *prods,
                           const size_t *buf_size)
{
    enum { N_SEQ = 4 };
    static const int seq_path[N_SEQ] = {SUP, PACKED, PK_JC, LIBVIB};
    float *buf[N_BUFS];
    for (int i = 0; i < N_BUFS; i++)
        buf[i] = filled(buf_size[i]);
    float *e = filled(EVICT_FLOATS);
    double t[N_SEQ][N_STEP_PRODUCTS] = {{0}};
    for (int r = -1; r < reps; r++)
        for (int q = 0; q < N_SEQ; q++) {
            evict(e);
            for (int i = 0; i < N_STEP_PRODUCTS; i++) {
                const product *p = &prods[i];
                const double t0 = now();
                run_path(seq_path[q], nt, p, buf[p->a], buf[p->b], buf[p->c]);
                if (r >= 0)
                    t[q][i] += now() - t0;
            }
        }
    printf("\nbatch %zu, %d thread%s, in sequence with the caches evicted before each step: "
           "GFLOP/s over %d steps per path\n",
           B, nt, nt == 1 ? "" : "s", reps);
    printf("%-16s %-16s", "product", "m x n x k");
    for (int q = 0; q < N_SEQ; q++)
        printf(" %8s", path_name[seq_path[q]]);
    printf("  %-8s libvib/best\n", "best");
    double step[N_SEQ] = {0}, step_best = 0, flop_total = 0;
    for (int i = 0; i < N_STEP_PRODUCTS; i++) {
        const product *p = &prods[i];
        const double flop = product_flop(p) * reps;
        int best = 0;
        for (int q = 0; q < N_SEQ - 1; q++)
            if (t[q][i] < t[best][i])
                best = q;
        char shape[32];
        snprintf(shape, sizeof shape, "%zux%zux%zu", p->m, p->n, p->k);
        printf("%-16s %-16s", p->what, shape);
        for (int q = 0; q < N_SEQ; q++) {
            printf(" %8.1f", flop / t[q][i] / 1e9);
            step[q] += t[q][i];
        }
        printf("  %-8s %.2f\n", path_name[seq_path[best]], t[best][i] / t[N_SEQ - 1][i]);
        step_best += t[best][i], flop_total += flop;
    }
    printf("%-33s", "one step's products:");
    for (int q = 0; q < N_SEQ; q++)
        printf(" %s %.1f,", path_name[seq_path[q]], flop_total / step[q] / 1e9);
    printf(" best per product %.1f GFLOP/s; libvib %.3f ms a step\n",
           flop_total / step_best / 1e9, step[N_SEQ - 1] / reps * 1e3);
    for (int i = 0; i < N_BUFS; i++)
        free(buf[i]);
    free(e);
}

static void usage(const char *msg, const char *arg)
{
    fprintf(stderr, "gemm_paths: %s '%s'\n%s", msg, arg, USAGE);
    exit(2);
}

int main(int argc, char **argv)
{
    const char *thread_list = "1,2", *batch_list = "100";
    long reps = 40, square = 2000, seq_reps = 30;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("%s  the header of bench/gemm_paths.c says what is measured\n", USAGE);
            return 0;
        }
        if (i + 1 >= argc)
            usage("missing value after", a);
        const char *v = argv[++i];
        long x[1];
        if (!strcmp(a, "--threads")) thread_list = v;
        else if (!strcmp(a, "--batch")) batch_list = v;
        else if (!strcmp(a, "--reps") && parse_list(v, x, 1, 1, 100000) == 1) reps = x[0];
        else if (!strcmp(a, "--square") && parse_list(v, x, 1, 0, 20000) == 1) square = x[0];
        else if (!strcmp(a, "--steps") && parse_list(v, x, 1, 1, 100000) == 1) seq_reps = x[0];
        else usage("bad option or value", a);
    }
    long threads[16], batches[16];
    const int n_threads = parse_list(thread_list, threads, 16, 1, VIB_MAX_THREADS);
    const int n_batches = parse_list(batch_list, batches, 16, 1, 100000);
    if (n_threads < 1)
        usage("bad thread list", thread_list);
    if (n_batches < 1)
        usage("bad batch list", batch_list);

    char info[256];
    vib_backend_info(info, sizeof info);
    printf("backend: %s\n", info);

    for (int bi = 0; bi < n_batches; bi++) {
        const size_t B = (size_t)batches[bi];
        product prods[N_STEP_PRODUCTS];
        size_t buf_size[N_BUFS];
        step_products(B, prods, buf_size);
        for (int ti = 0; ti < n_threads; ti++) {
            const int nt = (int)threads[ti];
            vib_set_num_threads(nt);
            printf("\nbatch %zu, %d thread%s: GFLOP/s, best of %ld calls\n", B, nt,
                   nt == 1 ? "" : "s", reps);
            printf("%-16s %-16s", "product", "m x n x k");
            for (int p = 0; p < N_PATHS; p++)
                printf(" %8s", path_name[p]);
            printf("  %-8s libvib/best\n", "best");
            double step_best = 0, step_vib = 0, step_flop = 0;
            for (size_t i = 0; i < N_STEP_PRODUCTS; i++) {
                const product *p = &prods[i];
                float *a = filled(buf_size[p->a]), *b = filled(buf_size[p->b]);
                float *c = filled(buf_size[p->c]);
                const double flop = product_flop(p);
                static const int all[N_PATHS] = {1, 1, 1, 1, 1, 1, 1};
                double s[N_PATHS];
                best_of_paths(nt, (int)reps, p, a, b, c, all, s);
                int best = 0;
                for (int q = 0; q < N_PATHS; q++)
                    if (q != LIBVIB && s[q] < s[best])
                        best = q;
                char shape[32];
                snprintf(shape, sizeof shape, "%zux%zux%zu", p->m, p->n, p->k);
                printf("%-16s %-16s", p->what, shape);
                for (int q = 0; q < N_PATHS; q++)
                    printf(" %8.1f", flop / s[q] / 1e9);
                printf("  %-8s %.2f\n", path_name[best], s[best] / s[LIBVIB]);
                step_best += s[best], step_vib += s[LIBVIB], step_flop += flop;
                free(a), free(b), free(c);
            }
            printf("%-33s best paths %.1f GFLOP/s, libvib %.1f GFLOP/s (%.3f ms a step)\n",
                   "one step's products:", step_flop / step_best / 1e9,
                   step_flop / step_vib / 1e9, step_vib * 1e3);
            sequence_table(B, nt, (int)seq_reps, prods, buf_size);
        }
    }
    if (square > 0) {
        const size_t n = (size_t)square;
        const product sq = {"square", 0, 0, n, n, n, 0, 0, 0};
        float *a = filled(n * n), *b = filled(n * n), *c = filled(n * n);
        printf("\n");
        for (int ti = 0; ti < n_threads; ti++) {
            const int nt = (int)threads[ti];
            static const int packed[N_PATHS] = {[PACKED] = 1};
            double t[N_PATHS];
            best_of_paths(nt, 3, &sq, a, b, c, packed, t);
            printf("square %zu^3, %d thread%s: %.1f GFLOP/s (packed, best of 3)\n", n, nt,
                   nt == 1 ? "" : "s", product_flop(&sq) / t[PACKED] / 1e9);
        }
        free(a), free(b), free(c);
    }
    return 0;
}
