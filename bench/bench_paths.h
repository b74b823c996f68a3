/*
 * bench_paths.h - what bench/vib_bench.c and bench/gemm_paths.c share: the products one
 * training step of the paper's network makes, and every way BLIS can run a product.
 * Benchmarks only; they link lib/libvib.a to reach vibi_sgemm, the path libvib takes.
 */
#ifndef VIB_BENCH_PATHS_H
#define VIB_BENCH_PATHS_H

#include <blis.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "internal.h"

/* The paper's network (Alemi et al., ICLR 2017). */
#define IN 784
#define H1 1024
#define H2 1024
#define K 256
#define CLASSES 10

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* n floats, 64-byte aligned, filled with small values; exits if out of memory. */
static float *filled(size_t n)
{
    float *p = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    if (p == NULL) {
        fprintf(stderr, "bench: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        p[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
    return p;
}

/* A row-major product C [m x n] = op(A) op(B), op(A) [m x k], op(B) [k x n], op(X) = X^T
 * if tx; its operands are buffers a, b, c of a step's buffer table. */
typedef struct {
    const char *what;
    int ta, tb;
    size_t m, n, k;
    int a, b, c;
} product;

/* A step's buffers: activations, weights, their gradients. */
enum { BX, BW1, BH1, BW2, BH2, BWH, BHEAD, BZ, BWD, BLOGITS,
       BDW1, BDW2, BDWH, BDWD, BD1, BD2, BDHEAD, BDZ, N_BUFS };

/* The products of one step at batch B, in the order lib/model.c makes them (forward
 * x W, weight gradient x^T dy, input gradient dy W^T; the first layer's input gradient
 * is never needed), and the sizes of the buffers they use. */
enum { N_STEP_PRODUCTS = 11 };
static void step_products(size_t B, product *p, size_t *buf_size)
{
    const product list[N_STEP_PRODUCTS] = {
        {"fwd 1: x W1", 0, 0, B, H1, IN, BX, BW1, BH1},
        {"fwd 2: h1 W2", 0, 0, B, H2, H1, BH1, BW2, BH2},
        {"fwd 3: h2 Wh", 0, 0, B, 2 * K, H2, BH2, BWH, BHEAD},
        {"fwd d: z Wd", 0, 0, B, CLASSES, K, BZ, BWD, BLOGITS},
        {"dW d: z^T dl", 1, 0, K, CLASSES, B, BZ, BLOGITS, BDWD},
        {"dx d: dl Wd^T", 0, 1, B, K, CLASSES, BLOGITS, BWD, BDZ},
        {"dW 3: h2^T dh", 1, 0, H2, 2 * K, B, BH2, BDHEAD, BDWH},
        {"dx 3: dh Wh^T", 0, 1, B, H2, 2 * K, BDHEAD, BWH, BD2},
        {"dW 2: h1^T d2", 1, 0, H1, H2, B, BH1, BD2, BDW2},
        {"dx 2: d2 W2^T", 0, 1, B, H1, H2, BD2, BW2, BD1},
        {"dW 1: x^T d1", 1, 0, IN, H1, B, BX, BD1, BDW1},
    };
    for (int i = 0; i < N_STEP_PRODUCTS; i++)
        p[i] = list[i];
    const size_t size[N_BUFS] = {
        [BX] = B * IN,        [BW1] = IN * H1,     [BH1] = B * H1,     [BW2] = H1 * H2,
        [BH2] = B * H2,       [BWH] = H2 * 2 * K,  [BHEAD] = B * 2 * K, [BZ] = B * K,
        [BWD] = K * CLASSES,  [BLOGITS] = B * CLASSES, [BDW1] = IN * H1, [BDW2] = H1 * H2,
        [BDWH] = H2 * 2 * K,  [BDWD] = K * CLASSES, [BD1] = B * H1,     [BD2] = B * H2,
        [BDHEAD] = B * 2 * K, [BDZ] = B * K,
    };
    for (int i = 0; i < N_BUFS; i++)
        buf_size[i] = size[i];
}

static double product_flop(const product *p)
{
    return 2.0 * (double)p->m * (double)p->n * (double)p->k;
}

/* The comma-separated integers of s, each in [lo, hi], at most max of them, into out:
 * their count, or -1 if s is not such a list. */
__attribute__((unused)) static int parse_list(const char *s, long *out, int max, long lo,
                                              long hi)
{
    int n = 0;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < lo || v > hi || n == max || (*end != ',' && *end != '\0'))
            return -1;
        out[n++] = v;
        s = *end == ',' ? end + 1 : end;
    }
    return n;
}

/* The ways to run a product: BLIS's default (its sup path under its thresholds), sup
 * disabled, both as the transposed product C^T = op(B)^T op(A)^T, the packed path with
 * all threads on the columns (jc) or on the rows (ic), and libvib's vibi_sgemm. */
enum { SUP, PACKED, T_SUP, T_PACKED, PK_JC, PK_IC, LIBVIB, N_PATHS };
__attribute__((unused)) static const char *const path_name[N_PATHS] = {
    "sup", "packed", "T-sup", "T-packed", "pk-jc", "pk-ic", "libvib"};

static void run_path(int path, int threads, const product *p, float *a, float *b, float *c)
{
    const size_t lda = p->ta ? p->m : p->k, ldb = p->tb ? p->k : p->n, ldc = p->n;
    if (path == LIBVIB) {
        vibi_sgemm(p->ta, p->tb, p->m, p->n, p->k, 1.0f, a, lda, b, ldb, 0.0f, c, ldc);
        return;
    }
    float one = 1.0f, zero = 0.0f;
    rntm_t rntm = BLIS_RNTM_INITIALIZER;
    bli_rntm_set_num_threads(threads, &rntm);
    if (path != SUP && path != T_SUP)
        bli_rntm_disable_l3_sup(&rntm);
    if (path == PK_JC)
        bli_rntm_set_ways(threads, 1, 1, 1, 1, &rntm);
    if (path == PK_IC)
        bli_rntm_set_ways(1, 1, threads, 1, 1, &rntm);
    /* row-major [r x c] with row stride ld: BLIS strides (ld, 1); transposed (1, ld) */
    inc_t rsa = p->ta ? 1 : (inc_t)lda, csa = p->ta ? (inc_t)lda : 1;
    inc_t rsb = p->tb ? 1 : (inc_t)ldb, csb = p->tb ? (inc_t)ldb : 1;
    if (path != T_SUP && path != T_PACKED)
        bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, (dim_t)p->m, (dim_t)p->n,
                     (dim_t)p->k, &one, a, rsa, csa, b, rsb, csb, &zero, c, (inc_t)ldc, 1,
                     NULL, &rntm);
    else /* every matrix read with its strides swapped */
        bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, (dim_t)p->n, (dim_t)p->m,
                     (dim_t)p->k, &one, b, csb, rsb, a, csa, rsa, &zero, c, 1, (inc_t)ldc,
                     NULL, &rntm);
}

/* best[q]: the fastest of `reps` calls by path q, for each q with use[q], after two
 * warm-up rounds; the paths interleaved call by call so that all of them see the same
 * machine state (a shared machine's speed drifts). */
static void best_of_paths(int threads, int reps, const product *p, float *a, float *b,
                          float *c, const int *use, double *best)
{
    for (int q = 0; q < N_PATHS; q++)
        best[q] = 1e30;
    for (int r = -2; r < reps; r++)
        for (int q = 0; q < N_PATHS; q++) {
            if (!use[q])
                continue;
            const double t0 = now();
            run_path(q, threads, p, a, b, c);
            const double t = now() - t0;
            if (r >= 0 && t < best[q])
                best[q] = t;
        }
}

#endif /* VIB_BENCH_PATHS_H */
