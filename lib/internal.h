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
#include <string.h>

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

/* util.c ------------------------------------------------------------------------- */

/* Every block libvib allocates for arrays starts on a cache line (and an AVX-512
 * vector), and so does every part of it. */
#define VIBI_ALIGN 64
size_t vibi_round_up(size_t bytes); /* to a multiple of VIBI_ALIGN; bytes <= SIZE_MAX / 2 */

/* One VIBI_ALIGN-aligned allocation of n parts of the given byte sizes, each starting
 * on a VIBI_ALIGN boundary: parts[i] gets its address, parts[0] the block's. NULL (and
 * parts untouched) if a size is absurd or the allocation fails. Freed with free(). */
void *vibi_alloc_parts(size_t n, const size_t *bytes, void **parts);

/* The snprintf convention of every function that fills a caller's text buffer: copy
 * as much of text as fits in len bytes, always terminated when len > 0 (buf may be
 * NULL when len is 0), and return the length of the whole text: a return >= len means
 * it was cut. */
int vibi_copy_text(const char *text, char *buf, size_t len);

/* idx = the first i in [0, n) for which `bad` (an expression of i) holds, else n: one
 * branch-free pass that vectorizes (the common case, where nothing is bad), then the
 * search for the index only if something is. The checks of every node run this way. */
#define VIBI_FIND_FIRST(idx, n, i, bad)                                                    \
    do {                                                                                   \
        unsigned vibi_any_ = 0;                                                            \
        _Pragma("omp simd reduction(| : vibi_any_)") for (size_t i = 0; i < (n); i++)      \
            vibi_any_ |= (unsigned)(bad);                                                  \
        (idx) = (n);                                                                       \
        for (size_t i = 0; vibi_any_ && i < (n); i++)                                      \
            if (bad) {                                                                     \
                (idx) = i;                                                                 \
                break;                                                                     \
            }                                                                              \
    } while (0)

/* Validation helpers shared by the nodes and layers. Each returns VIB_OK or records
 * an error naming `fn` and the argument `what`. */
int vibi_check_ptr(const char *fn, const char *what, const void *p);
/* The first NULL among ptrs[0..n), named from `names` (the n argument names, separated
 * by single spaces): VIBI_CHECK_PTRS(fn, "mu sigma", mu, sigma) checks both in order. */
int vibi_check_ptrs(const char *fn, const char *names, size_t n, const void *const *ptrs);
#define VIBI_CHECK_PTRS(fn, names, ...)                                                    \
    vibi_check_ptrs(fn, names, sizeof((const void *[]){__VA_ARGS__}) / sizeof(const void *), \
                    (const void *[]){__VA_ARGS__})
int vibi_check_finite(const char *fn, const char *what, size_t n, const float *x);
int vibi_check_positive(const char *fn, const char *what, size_t n, const float *x);
/* Every labels[r] in [0, classes): a label outside is VIB_ERR_INVALID_ARG naming the item. */
int vibi_check_labels(const char *fn, size_t rows, size_t classes, const int32_t *labels);

/* head.c: the Gaussian head's row kernels, the one implementation of its formulas -- */
/* The public nodes check their arguments and call these; the model runs them over its
 * rows. Unchecked: the arguments are valid and the results known to fit in float.
 * Backwards accumulate (+=). Precision and math: head.c. */

/* One latent's z = mu + sigma v, in double, rounded once (sigma v is exact in double). */
static inline float vibi_head_z(float mu, float sigma, float v)
{
    return (float)((double)mu + (double)sigma * (double)v);
}

/* One latent's share of 2 KL(N(mu, sigma^2) || N(0, 1)): mu^2 + sigma^2 - 1 - 2 log sigma. */
static inline double vibi_head_kl_term(double mu, double sigma, double log_sigma)
{
    return mu * mu + sigma * sigma - 1.0 - 2.0 * log_sigma;
}

/* The packed index of L[i][j], j <= i: row i of the factor starts at i(i+1)/2. */
static inline size_t vibi_tri(size_t i, size_t j)
{
    return i * (i + 1) / 2 + j;
}

/* sigma = softplus(rho + offset) and, if log_sigma is not NULL, its log computed stably;
 * the outputs may alias rho. */
void vibi_head_sigma(size_t n, const float *rho, float offset, float *sigma, float *log_sigma);
/* drho += dsigma d sigma/drho + dlog_sigma d log sigma/drho (either may be NULL). */
void vibi_head_sigma_backward(size_t n, const float *rho, float offset, const float *dsigma,
                              const float *dlog_sigma, float *drho);
/* z = mu + sigma v (z may alias an input); backward: dmu += dz, dsigma += dz v. */
void vibi_head_reparam(size_t n, const float *mu, const float *sigma, const float *v, float *z);
void vibi_head_reparam_backward(size_t n, const float *dz, const float *v, float *dmu,
                                float *dsigma);
/* KL(N(mu, diag sigma^2) || N(0, I)) of one row of k latents, log sigma from log_sigma or,
 * if NULL, from sigma; backward: g times its gradient into dmu, dsigma and, if not NULL,
 * dlog_sigma (else the log's share goes into dsigma). */
double vibi_head_kl(size_t k, const float *mu, const float *sigma, const float *log_sigma);
void vibi_head_kl_backward(size_t k, const float *mu, const float *sigma, double g, float *dmu,
                           float *dsigma, float *dlog_sigma);

/* Full covariance, one row of k latents with L packed (vibi_tri). vibi_chol_dot: z_i =
 * mu_i + sum_{j <= i} L_ij v_j in double and, if bound is not NULL, |mu_i| + sum_j
 * |L_ij v_j| (which bounds |z_i| however the sum rounds). The rest as for the diagonal,
 * with the log of the diagonal of L in place of log sigma. */
double vibi_chol_dot(size_t i, double mu_i, const float *l, const float *v, double *bound);
void vibi_chol_reparam(size_t k, const float *mu, const float *l, const float *v, float *z);
void vibi_chol_reparam_backward(size_t k, const float *dz, const float *v, float *dmu,
                                float *dl);
double vibi_chol_kl(size_t k, const float *mu, const float *l, const float *log_diag);
void vibi_chol_kl_backward(size_t k, const float *mu, const float *l, double g, float *dmu,
                           float *dl, float *dlog_diag);

/* nodes.c ------------------------------------------------------------------------- */

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

/* dx = dy W^T (or += if accumulate) alone: the product vibi_layer_products makes for dx,
 * for a backward that wants no weight gradient (the model's input gradient). Unchecked. */
void vibi_layer_dx(const vibi_layer *l, size_t batch, const float *dy, float *dx, bool accumulate);

/* sum[j] (+)= sum over r of d[r][j], rows added in order. */
void vibi_colsum(size_t rows, size_t cols, const float *d, float *sum, bool accumulate);

/* idx.c: opening a file to read, shared with io.c's model loader ---------------- */

/* Open `path` read-only into *fd if it is a regular file, its length in *size; else
 * VIB_ERR_IO naming fn and path, among them "not a regular file (a FIFO)" and the like,
 * returned at once: a FIFO without a writer does not block the open. */
int vibi_open_regular(const char *fn, const char *path, int *fd, uint64_t *size);

/* Read n bytes from fd into buf, or up to the end of the file: *got says how many
 * arrived. Retries interrupted and short reads; a failed read() is VIB_ERR_IO naming fn
 * and path. */
int vibi_read_fd(const char *fn, const char *path, int fd, void *buf, size_t n, size_t *got);

/* optim.c: an optimizer's and an average's state, for checkpoints ---------------- */

/* The settings by value, the state through pointers into the handle (s2 NULL for SGD). */
typedef struct vibi_optim_state {
    int kind; /* 1 Adam, 2 SGD */
    size_t n;
    float beta1, beta2, eps, momentum;
    float *lr;
    double *s1max;
    uint64_t *steps;
    float *s1, *s2;
} vibi_optim_state;
void vibi_optim_view(vib_optim *opt, vibi_optim_state *v);

typedef struct vibi_ema_state {
    size_t n;
    float decay;
    uint64_t *updates;
    float *avg;
} vibi_ema_state;
void vibi_ema_view(vib_ema *ema, vibi_ema_state *v);

/* io.c: little-endian fields, CRC-32 and atomic writes, for the model file and the
 * checkpoint ------------------------------------------------------------------------- */

static inline unsigned char *vibi_put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        *p++ = (unsigned char)(v >> (8 * i));
    return p;
}

static inline unsigned char *vibi_put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        *p++ = (unsigned char)(v >> (8 * i));
    return p;
}

static inline uint32_t vibi_get_u32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static inline uint64_t vibi_get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* floats and doubles by their bits (IEEE, as the library assumes everywhere) */
static inline unsigned char *vibi_put_f32(unsigned char *p, float f)
{
    uint32_t v;
    memcpy(&v, &f, 4);
    return vibi_put_u32(p, v);
}

static inline float vibi_get_f32(const unsigned char *p)
{
    const uint32_t v = vibi_get_u32(p);
    float f;
    memcpy(&f, &v, 4);
    return f;
}

static inline unsigned char *vibi_put_f64(unsigned char *p, double d)
{
    uint64_t v;
    memcpy(&v, &d, 8);
    return vibi_put_u64(p, v);
}

static inline double vibi_get_f64(const unsigned char *p)
{
    const uint64_t v = vibi_get_u64(p);
    double d;
    memcpy(&d, &v, 8);
    return d;
}

/* zlib's CRC-32 of n bytes. */
uint32_t vibi_crc32(const unsigned char *p, size_t n);

/* Write len bytes to path atomically: a temporary file beside it (mode 0666 less the
 * umask), fsync, rename over path, fsync of the directory. A reader sees the old file
 * or the new one, never a mix; on failure path is as it was and no temporary is left. */
int vibi_write_file(const char *fn, const char *path, const unsigned char *buf, size_t len);

/* rng.c --------------------------------------------------------------------------- */

/* A generator's whole state, so that a call which fails after drawing can put the
 * stream back where it was (a failed call leaves no trace). */
typedef struct vibi_rng_state {
    uint64_t s[4];
} vibi_rng_state;
void vibi_rng_save(const vib_rng *rng, vibi_rng_state *state);
void vibi_rng_restore(vib_rng *rng, const vibi_rng_state *state);

#endif /* VIB_INTERNAL_H */
