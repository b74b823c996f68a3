/*
 * internal.h - what lib/ files share and users never see.
 *
 * Internal functions carry the vibi_ prefix: they are hidden by -fvisibility=hidden and
 * fall outside the version script's vib_* pattern, so the shared library never exports
 * them. The Check suites link the static library and may call them.
 */
#ifndef VIB_INTERNAL_H
#define VIB_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "vib.h"

/* status.c ------------------------------------------------------------------------ */

/* Record a formatted detail for vib_last_error() in this thread and return `status`.
 * The message should start with the public function's name. */
int vibi_fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Stops at the first non-OK status of a validation chain (inside lib/ only). */
#define TRY(expr)                                                                          \
    do {                                                                                   \
        int vibi_rc_ = (expr);                                                             \
        if (vibi_rc_ != VIB_OK)                                                            \
            return vibi_rc_;                                                               \
    } while (0)

/* A hot loop compiled three times, for AVX-512 (x86-64-v4), AVX2 (v3) and the baseline,
 * the version run chosen by the CPU when the library loads (GCC's target_clones, an
 * ifunc). The library itself is built for the baseline, so it runs anywhere. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11 &&  \
    defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__)
/* Only on static functions: GCC 11+ (which knows the x86-64-v3/v4 levels) with glibc
 * (ifunc). Elsewhere the loops are built once, for the baseline. */
#define VIB_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define VIB_CLONES
#endif

/* a*b into *out, false on size_t overflow. */
static inline bool vibi_mul_size(size_t a, size_t b, size_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}

/* Validation helpers shared by the nodes and layers. Each returns VIB_OK or records
 * an error naming `fn` and the argument `what`. */
int vibi_check_ptr(const char *fn, const char *what, const void *p);
int vibi_check_finite(const char *fn, const char *what, size_t n, const float *x);
int vibi_check_positive(const char *fn, const char *what, size_t n, const float *x);

/* nodes.c: unchecked scalar kernels the model shares with the public nodes -------- */

double vibi_softplus(double x);      /* log(1 + e^x), no overflow */
double vibi_sigmoid(double x);       /* d softplus / dx */
double vibi_log_softplus(double x);  /* log softplus(x), finite as x -> -inf */
double vibi_dlog_softplus(double x); /* d log softplus / dx = sigmoid/softplus, -> 1 */

/* Softmax cross-entropy of one row of logits: returns -log softmax(l)[label] and, if
 * prob is not NULL, writes the probabilities (prob may be l: in place). label must be
 * in [0, classes). */
double vibi_softmax_row(size_t classes, const float *l, int32_t label, float *prob);

/* backend.c ----------------------------------------------------------------------- */

/* The thread count for this call (vib_num_threads): products and threaded passes. */
int vibi_threads(void);

/* Elementwise passes over fewer elements than this run on the calling thread: waking a
 * second thread costs about what a few thousand vector operations do. */
#define VIBI_PAR_ELEMS 16384

/* Inside an OpenMP parallel region: this thread's share [*lo, *hi) of n items, contiguous,
 * in order of thread number, with every boundary a multiple of `align` (but n). The
 * split depends on the thread count only, so per-thread partial sums combined in
 * thread order are reproducible. */
void vibi_share(size_t n, size_t align, size_t *lo, size_t *hi);

/* Which path a product takes (gemm.c): libvib's rule, BLIS's own choice, or always
 * packed; VIB_GEMM_PATH=auto|blis|packed, read once when the library is loaded. */
enum { VIBI_GEMM_RULE, VIBI_GEMM_BLIS, VIBI_GEMM_PACKED };
int vibi_gemm_path(void);

/* The VIBI_GEMM_* that a VIB_GEMM_PATH value asks for (NULL: unset), and the words
 * vib_backend_info says of it in *note. */
int vibi_gemm_path_parse(const char *value, const char **note);

/* Whether the kernel set BLIS runs in this process has small/unpacked ("sup") kernels
 * to choose between (BLIS 0.9.0: haswell, zen, zen2, zen3). */
bool vibi_gemm_kernels_have_sup(void);

/* gemm.c -------------------------------------------------------------------------- */

/* libvib's rule, given sup kernels: whether a row-major [m x n] = [m x k] [k x n]
 * product should take the sup path (true) or the packed one. Shape only. */
bool vibi_gemm_use_sup(size_t m, size_t n, size_t k);

/* How a product of that shape runs on `threads` threads, under override `path`
 * (VIBI_GEMM_*) with a kernel set that has (have_sup) or lacks sup kernels: a mask of
 * VIBI_GEMM_NO_SUP (BLIS's sup path disabled) and VIBI_GEMM_SPLIT_COLUMNS (every
 * thread on BLIS's jc loop). */
enum { VIBI_GEMM_NO_SUP = 1, VIBI_GEMM_SPLIT_COLUMNS = 2 };
int vibi_gemm_plan(int path, bool have_sup, size_t m, size_t n, size_t k, int threads);

/* C = alpha * op(A) op(B) + beta * C, all row-major, op(X) = X or X^T by `trans_x`.
 * op(A) is [m x k], op(B) is [k x n], C is [m x n]; lda, ldb, ldc are the row strides
 * of the matrices as stored. A transpose is expressed by swapping BLIS's row and
 * column strides: no copy is made. beta == 0 overwrites C without reading it. */
void vibi_sgemm(bool trans_a, bool trans_b, size_t m, size_t n, size_t k, float alpha,
                const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c,
                size_t ldc);

/* dense.c: a layer's arithmetic on storage owned elsewhere (a vib_dense, or a slice of
 * a model's flat parameter array) ------------------------------------------------- */

typedef struct vibi_layer {
    size_t in, out;
    float *w, *b;   /* W [in x out], b [out] */
    float *dw, *db; /* their gradients, same shapes */
} vibi_layer;

/* Draw W by scheme `init` (a VIB_INIT_* value, already validated) and zero b. */
int vibi_layer_init(const vibi_layer *l, int init, vib_rng *rng);

/* y = x W + b over `batch` rows, then max(y, 0) if relu. Unchecked. */
void vibi_layer_forward(const vibi_layer *l, size_t batch, const float *x, float *y, bool relu);

/* A layer's backward products: dW = x^T dy (or += if accumulate), and dx = dy W^T if dx
 * is not NULL. The bias gradient (column sums of dy, vibi_colsum) is the caller's: the
 * model sums it in the same pass that applies the ReLU mask. Unchecked. */
void vibi_layer_products(const vibi_layer *l, size_t batch, const float *x, const float *dy,
                         float *dx, bool accumulate);

/* sum[j] (+)= sum over r of d[r][j], rows added in order. */
void vibi_colsum(size_t rows, size_t cols, const float *d, float *sum, bool accumulate);

/* model.c: what io.c needs to save a model ---------------------------------------- */

void vibi_model_arch(const vib_model *m, size_t *n_enc, const size_t **enc, size_t *n_dec,
                     const size_t **dec, uint64_t *seed);

/* The parameter count of an architecture, validated as vib_model_create would, without
 * allocating anything (errors are reported under vib_model_load's name). */
int vibi_model_count_params(size_t input_dim, size_t n_enc, const size_t *enc_hidden,
                            size_t latent_dim, size_t n_dec, const size_t *dec_hidden,
                            size_t classes, uint32_t flags, size_t *num_params);

#endif /* VIB_INTERNAL_H */
