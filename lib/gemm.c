/*
 * gemm.c - the one wrapper over BLIS. Every matrix product in libvib comes through
 * vibi_sgemm, so kernel and thread choices live in one place (backend.c).
 */
#include <blis.h>

#include "internal.h"

/* Below this many multiply-adds (a 64 x 64 x 64 product) a product takes a few
 * microseconds on one core, about what waking a second thread costs, and far less than
 * waiting for one that the scheduler has not given a core: run it on the calling thread.
 * The choice depends on the shape only, so results stay reproducible. */
#define SMALL_MACS ((size_t)1 << 18)

static bool small_product(size_t m, size_t n, size_t k)
{
    return m * n < SMALL_MACS && m * n * k < SMALL_MACS; /* no overflow: m n checked first */
}

/* BLIS runs a product one of two ways: packed (A and B copied into the micro-kernel's
 * panel layout, then the kernel: near the machine's peak once the copies are paid for)
 * or small/unpacked, "sup" (the kernel reads A and B where they lie: no copies, but
 * strided loads). BLIS 0.9.0 takes sup whenever one dimension is under its thresholds
 * (a few hundred on the AVX2 sets), which covers every product of a training step at
 * batch 100. Measured on the AVX2 sets (zen3 and haswell kernels), in a training
 * step's order with the caches as cold as the optimizer leaves them
 * (docs/performance.md#product-paths):
 *   - packing B pays off only when it is reused over enough rows of A (and packing A
 *     over enough columns of B): with 32 rows or columns or fewer (5 rows of a 6 x 16
 *     micro-tile) sup was faster, up to 1.7x at batch 16 and 32; with 64 and more,
 *     packed was, up to 1.7x (a step's products together: 10-25% at batch 64 to 500);
 *   - with k under 16, sup's kernels ran at a third of packed's (100 x 256 x 10).
 * And with several threads, packed, over few rows (a batch: up to 512), giving every
 * thread its own columns (BLIS's jc loop) beat BLIS's own split by 0-10% a step: each
 * thread packs its own part of B and none waits for another's packing; over many rows
 * (a weight gradient, 784 x 1024 x 100) BLIS's split was as good or better. */
#define FEW 32
#define TINY_K 16
#define BATCH_ROWS 512

bool vibi_gemm_use_sup(size_t m, size_t n, size_t k)
{
    return (m <= FEW || n <= FEW) && k >= TINY_K;
}

int vibi_gemm_plan(int path, bool have_sup, size_t m, size_t n, size_t k, int threads)
{
    if (path == VIBI_GEMM_PACKED)
        return VIBI_GEMM_NO_SUP;
    if (path != VIBI_GEMM_RULE || !have_sup || vibi_gemm_use_sup(m, n, k))
        return 0;
    return VIBI_GEMM_NO_SUP | (threads > 1 && m <= BATCH_ROWS ? VIBI_GEMM_SPLIT_COLUMNS : 0);
}

void vibi_sgemm(bool trans_a, bool trans_b, size_t m, size_t n, size_t k, float alpha,
                const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c,
                size_t ldc)
{
    if (m == 0 || n == 0)
        return;
    /* A row-major [r x c] matrix with row stride ld has BLIS strides (rs, cs) = (ld, 1);
     * its transpose is the same memory read with (rs, cs) = (1, ld). */
    inc_t rsa = trans_a ? 1 : (inc_t)lda, csa = trans_a ? (inc_t)lda : 1;
    inc_t rsb = trans_b ? 1 : (inc_t)ldb, csb = trans_b ? (inc_t)ldb : 1;
    /* The thread count travels with the call in a runtime object of our own, so BLIS's
     * global setting (which the host program may use) is never changed. With a fixed
     * count BLIS partitions the product the same way every time: the same bits. */
    rntm_t rntm = BLIS_RNTM_INITIALIZER;
    const int threads = small_product(m, n, k) ? 1 : vibi_threads();
    bli_rntm_set_num_threads(threads, &rntm);
    /* The path and the split depend on the shape, the kernel set, the thread count and
     * the override only: the same call runs the same way every time, the same bits. */
    const int plan =
        vibi_gemm_plan(vibi_gemm_path(), vibi_gemm_kernels_have_sup(), m, n, k, threads);
    if (plan & VIBI_GEMM_NO_SUP)
        bli_rntm_disable_l3_sup(&rntm);
    if (plan & VIBI_GEMM_SPLIT_COLUMNS) /* ways: jc, pc, ic, jr, ir */
        bli_rntm_set_ways(threads, 1, 1, 1, 1, &rntm);
    /* BLIS's typed API takes non-const pointers but does not write A, B, alpha or beta. */
    bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, (dim_t)m, (dim_t)n, (dim_t)k, &alpha,
                 (float *)a, rsa, csa, (float *)b, rsb, csb, &beta, c, (inc_t)ldc, 1, NULL,
                 &rntm);
}
