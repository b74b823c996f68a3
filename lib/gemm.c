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
 * (a few hundred on the AVX2 sets), which covers every batch-100 product. Measured on
 * the AVX2 sets (zen3 and haswell kernels, docs/performance.md#product-paths), packed
 * beats sup by up to 1.7x on every product of the paper network at batches 32 to 500,
 * with one exception: an output only a few columns or rows wide (the 10-class
 * decoder), where packing costs more than it saves and sup runs 1.3-2x faster, unless
 * k is tiny too (k = 10: sup runs at a third of packed). Below 16 (an AVX2 kernel's
 * tile is 6 x 16) sup it is. */
#define NARROW 16

bool vibi_gemm_use_sup(size_t m, size_t n, size_t k)
{
    return (m < NARROW || n < NARROW) && k >= NARROW;
}

bool vibi_gemm_disable_sup(int path, bool have_sup, size_t m, size_t n, size_t k)
{
    return path == VIBI_GEMM_PACKED ||
           (path == VIBI_GEMM_RULE && have_sup && !vibi_gemm_use_sup(m, n, k));
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
    bli_rntm_set_num_threads(small_product(m, n, k) ? 1 : vibi_threads(), &rntm);
    /* The path depends on the shape, the kernel set and the override only: the same
     * call takes the same path every time, so the bits stay reproducible. */
    if (vibi_gemm_disable_sup(vibi_gemm_path(), vibi_gemm_kernels_have_sup(), m, n, k))
        bli_rntm_disable_l3_sup(&rntm);
    /* BLIS's typed API takes non-const pointers but does not write A, B, alpha or beta. */
    bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, (dim_t)m, (dim_t)n, (dim_t)k, &alpha,
                 (float *)a, rsa, csa, (float *)b, rsb, csb, &beta, c, (inc_t)ldc, 1, NULL,
                 &rntm);
}
