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
    /* BLIS's typed API takes non-const pointers but does not write A, B, alpha or beta. */
    bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, (dim_t)m, (dim_t)n, (dim_t)k, &alpha,
                 (float *)a, rsa, csa, (float *)b, rsb, csb, &beta, c, (inc_t)ldc, 1, NULL,
                 &rntm);
}
