/*
 * vib.h - libvib, Deep Variational Information Bottleneck models in C.
 *
 * The one public header. Read top to bottom it is the manual; docs/api.md says the
 * same with examples, and docs/math.md derives every backward pass cited here.
 *
 * Conventions that hold for every function below unless its comment says otherwise:
 *
 *  - Status: functions return int, VIB_OK (0) on success or a negative VIB_ERR_* code.
 *    On failure vib_last_error() gives a human-readable detail for the calling thread.
 *    The library never prints, exits or aborts on bad input.
 *  - Failure is clean: arguments are validated before anything is written, so a call
 *    that returns an error has not touched its output or gradient buffers.
 *  - Buffers are caller-owned, row-major float arrays: a [rows x cols] matrix stores
 *    element (r, c) at index r*cols + c. The library never keeps a pointer to them.
 *  - Forward functions WRITE their outputs. Backward functions ACCUMULATE (+=) into
 *    their gradient buffers (vib_dense_backward's dx too), so a value used twice
 *    receives both contributions; zero the buffers before the first backward of a step.
 *  - A zero count (n, rows, batch) is a no-op returning VIB_OK, and the buffers may then
 *    be NULL; a NULL buffer with a nonzero count is VIB_ERR_INVALID_ARG, and so are
 *    sizes whose product overflows size_t. Non-finite inputs (NaN, Inf) are
 *    VIB_ERR_NUMERIC, and so is a result that would overflow float: such calls are
 *    refused before anything is written.
 *  - Handles (vib_rng, vib_dense, vib_idx, vib_dataset, vib_optim, vib_ema, vib_model)
 *    are opaque, created and freed by the library; every *_free accepts NULL.
 *  - Threads: the node functions are pure and may be called from any number of
 *    threads at once. Distinct handles may be used from distinct threads; a single
 *    handle must be used by one thread at a time. The only process-wide settings are
 *    the thread count and the BLIS kernel choice (see "Backend" below).
 *
 * ABI: only opaque handles, fixed-width or size_t integers and pointers cross this
 * interface; no structs by value, no varargs. The one callback (the trainer's) takes a
 * void *user and scalars only. Status codes never change their numbers. The SONAME is
 * libvib.so.VIB_VERSION_MAJOR and moves only on a break; the functions added in 0.2 sit
 * under the symbol version LIBVIB_0.2, those of 0.1 under LIBVIB_0.
 */
#ifndef VIB_H
#define VIB_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The export attribute of every function below. Define VIB_API yourself before
 * including this header to replace it (e.g. as empty, for an FFI binding generator
 * that does not parse attributes, or a build of your own). */
#ifndef VIB_API
#if defined(_WIN32) && defined(VIB_BUILDING_LIBRARY)
#define VIB_API __declspec(dllexport)
#elif defined(_WIN32) && !defined(VIB_STATIC)
#define VIB_API __declspec(dllimport)
#elif defined(__GNUC__) && __GNUC__ >= 4
#define VIB_API __attribute__((visibility("default")))
#else
#define VIB_API
#endif
#endif

/* ---------------------------------------------------------------------------------
 * Versions
 * The Makefile reads these three lines; keep their form.
 * ------------------------------------------------------------------------------- */
#define VIB_VERSION_MAJOR 0
#define VIB_VERSION_MINOR 2
#define VIB_VERSION_PATCH 0

/* MAJOR*10000 + MINOR*100 + PATCH, e.g. 0.1.0 -> 100. */
#define VIB_VERSION_NUMBER (VIB_VERSION_MAJOR * 10000 + VIB_VERSION_MINOR * 100 + VIB_VERSION_PATCH)

/* The version of the library actually loaded, as VIB_VERSION_NUMBER would give it.
 * Compare with VIB_VERSION_NUMBER to detect a header/library mismatch. */
VIB_API uint32_t vib_version_number(void);

/* "MAJOR.MINOR.PATCH"; a static string owned by the library. */
VIB_API const char *vib_version_string(void);

/* ---------------------------------------------------------------------------------
 * Status codes and errors
 * A code keeps its number forever; a retired code keeps its slot.
 * ------------------------------------------------------------------------------- */
enum {
    VIB_OK = 0,
    VIB_ERR_INVALID_ARG = -1, /* NULL where a buffer is needed, bad size, value out of domain */
    VIB_ERR_NOMEM = -2,       /* an allocation failed, or the object asked for is too large */
    VIB_ERR_IO = -3,          /* a file could not be opened, read or written */
    VIB_ERR_FORMAT = -4,      /* a file or buffer is malformed, truncated or corrupted */
    VIB_ERR_NUMERIC = -5      /* a NaN or infinity in the input, or one would be produced */
};

/* A short fixed description of a status code ("invalid argument", ...); a static string.
 * Unknown codes give "unknown status". Never NULL. */
VIB_API const char *vib_status_string(int status);

/* The detail of the most recent error raised in the calling thread, e.g.
 * "vib_reparam_forward: sigma[3] = -1 is not positive". Owned by the library and
 * valid until the next libvib call from the same thread; thread-local, so threads do
 * not see each other's errors. Successful calls do not clear it: read it only after a
 * call returned an error. "" if no error has been raised in this thread. Never NULL. */
VIB_API const char *vib_last_error(void);

/* ---------------------------------------------------------------------------------
 * Backend: BLIS kernels and threads
 *
 * Every matrix product runs in BLIS. When the library is loaded and BLIS_ARCH_TYPE is
 * not set, libvib picks BLIS's kernel set from the CPU's features (an AMD Zen of
 * family 17h/19h, which BLIS knows: BLIS decides; else AVX-512 F/DQ/BW/VL enabled by
 * the OS: skx; else AVX2 with FMA: haswell; else BLIS decides), only among the sets the
 * BLIS build contains, and never one the CPU cannot run. Set BLIS_ARCH_TYPE yourself to
 * choose, or VIB_BLIS_ARCH=blis to leave BLIS's own detection alone
 * (docs/performance.md). The choice is handed to BLIS through the environment, set
 * while BLIS initializes and then removed: other threads reading the environment
 * during dlopen of libvib could race with that, and a BLIS other than the one libvib
 * was built against, lacking the chosen set, would abort; VIB_BLIS_ARCH=blis avoids
 * both.
 *
 * Each product takes the faster of BLIS's packed and small/unpacked ("sup") paths by a
 * fixed rule of its shape and the kernel set, never a timing, so results stay
 * reproducible: on BLIS's AVX2 sets, sup for an output of 32 rows or columns or fewer
 * (with k >= 16), else packed, with several threads each on its own columns when the
 * rows are a batch (at most 512); other sets as BLIS decides. The environment variable
 * VIB_GEMM_PATH, read when the library is loaded, overrides it: "blis" leaves every
 * choice to BLIS, "packed" always packs, "auto" (or unset) is the rule; another value
 * is ignored, as vib_backend_info reports.
 *
 * One process-wide thread count serves every product and every threaded elementwise
 * pass (the optimizer step and the average, the bias and ReLU passes, the Gaussian
 * head); products and passes too small to gain from a second thread run on one. The
 * default is BLIS_NUM_THREADS, else OMP_NUM_THREADS, if a positive integer (clamped to
 * VIB_MAX_THREADS), else the number of CPUs the process may run on. Results are
 * bit-identical for the same inputs and the same thread count.
 * ------------------------------------------------------------------------------- */
#define VIB_MAX_THREADS 1024

/* Threads for the calls that follow, from any thread: 1..VIB_MAX_THREADS, or 0 to go
 * back to the default. A call running in another thread at that moment may use the new
 * count for its remaining products and passes. A forked child starts at 1 (GNU
 * OpenMP's threads do not survive fork; raising the count in the child may hang), which
 * vib_backend_info reports as "1 thread (a forked child)". */
VIB_API int vib_set_num_threads(int n);

/* The count the next call will use (>= 1). */
VIB_API int vib_num_threads(void);

/* A one-line description of the backend, e.g.
 * "BLIS 0.9.0, kernels skx (chosen by libvib: AVX-512 F/DQ/BW/VL enabled by the OS),
 *  2 threads (available CPUs), products: libvib's rule", written like snprintf: at most
 * len - 1 characters and a terminating 0 into buf. Returns the length of the whole line
 * (so a call with buf NULL and len 0 gives the size to allocate, minus one), or
 * VIB_ERR_INVALID_ARG if buf is NULL with len > 0. */
VIB_API int vib_backend_info(char *buf, size_t len);

/* ---------------------------------------------------------------------------------
 * Random numbers
 *
 * A seeded generator per handle: xoshiro256** (Blackman and Vigna, 2018) with its
 * 256-bit state expanded from the 64-bit seed by splitmix64. Uniform floats take the
 * top 24 bits of a draw; normal floats come from the ziggurat method (Marsaglia and
 * Tsang, 2000) computed in double, with nothing carried between calls. The same seed
 * gives the same stream on every run; no global state is involved.
 * ------------------------------------------------------------------------------- */
typedef struct vib_rng vib_rng;

/* Create a generator seeded with `seed` (any value, 0 included) into *out.
 * The caller owns *out and frees it with vib_rng_free. On error *out is untouched. */
VIB_API int vib_rng_create(uint64_t seed, vib_rng **out);

/* Free a generator; NULL is fine. */
VIB_API void vib_rng_free(vib_rng *rng);

/* Restart the stream as if the generator had just been created with `seed`. */
VIB_API int vib_rng_seed(vib_rng *rng, uint64_t seed);

/* The next raw 64-bit draw into *out. */
VIB_API int vib_rng_u64(vib_rng *rng, uint64_t *out);

/* Fill out[0..n) with uniform draws in [lo, hi). Requires finite lo < hi. */
VIB_API int vib_rng_uniform(vib_rng *rng, size_t n, float lo, float hi, float *out);
/* (non-finite bounds: VIB_ERR_NUMERIC; lo >= hi: VIB_ERR_INVALID_ARG) */

/* Fill out[0..n) with draws from N(mean, std^2). Requires finite mean and std >= 0
 * (std = 0 gives mean exactly), and |mean| + 8.58 std within float range, which bounds
 * every draw of this generator. */
VIB_API int vib_rng_normal(vib_rng *rng, size_t n, float mean, float std, float *out);

/* ---------------------------------------------------------------------------------
 * Nodes: pure functions on caller-owned buffers, no allocation, no hidden state.
 * Derivations in docs/math.md. Elementwise nodes accept an output that aliases an
 * input of the same shape (for example z == mu); gradient buffers must not alias
 * each other or the inputs.
 * ------------------------------------------------------------------------------- */

/* Reparameterization: z = mu + sigma * v, elementwise over n values.
 * v is the standard normal noise, drawn outside the graph (e.g. by vib_rng_normal),
 * so z is a differentiable function of mu and sigma. Requires sigma > 0 and finite
 * inputs. Math: docs/math.md#reparameterization. */
VIB_API int vib_reparam_forward(size_t n, const float *mu, const float *sigma, const float *v,
                                float *z);

/* Backward of vib_reparam_forward, given dz = dL/dz and the same noise v:
 * dmu += dz, dsigma += dz * v (dz/dmu = 1, dz/dsigma = v). */
VIB_API int vib_reparam_backward(size_t n, const float *dz, const float *v, float *dmu,
                                 float *dsigma);

/* KL( N(mu, diag sigma^2) || N(0, I) ) in nats for each of `rows` rows of k latents:
 * kl[r] = 0.5 * sum_j (mu^2 + sigma^2 - 2 log sigma - 1). mu and sigma are [rows x k],
 * kl is [rows] (rows of k = 0 latents get 0). Accumulated in double. Requires sigma > 0
 * and finite inputs.
 * Math: docs/math.md#kl-to-the-standard-normal. */
VIB_API int vib_kl_std_normal(size_t rows, size_t k, const float *mu, const float *sigma,
                              float *kl);

/* Backward of vib_kl_std_normal given dkl = dL/dkl ([rows]):
 * dmu += dkl[r] * mu, dsigma += dkl[r] * (sigma - 1/sigma). Requires sigma > 0. */
VIB_API int vib_kl_std_normal_backward(size_t rows, size_t k, const float *mu,
                                       const float *sigma, const float *dkl, float *dmu,
                                       float *dsigma);

/* KL(P || Q) in nats for two diagonal Gaussians over k dimensions,
 * P = N(mu_p, diag sigma_p^2), Q = N(mu_q, diag sigma_q^2):
 * *kl = sum_j [ log(sigma_q/sigma_p) + (sigma_p^2 + (mu_p - mu_q)^2) / (2 sigma_q^2) - 1/2 ].
 * Not symmetric; always finite for sigmas > 0 (see docs/math.md). Computed in double. */
VIB_API int vib_kl_diag_gauss(size_t k, const float *mu_p, const float *sigma_p,
                              const float *mu_q, const float *sigma_q, double *kl);

/* The sigma head: sigma = softplus(rho + offset) = log(1 + exp(rho + offset)),
 * elementwise over n values (offset -5 in the VIB paper's code, so training starts
 * near-deterministic). If log_sigma is not NULL it receives log(sigma), computed
 * stably: where softplus underflows, log(sigma) -> rho + offset instead of -inf.
 * sigma itself leaves float's normal range for rho + offset below about -87 (subnormal)
 * and is 0 below about -104; the KL nodes reject sigma = 0 and refuse gradients that
 * overflow, so keep rho + offset in a sane range or work with log_sigma.
 * Math: docs/math.md#the-sigma-head. */
VIB_API int vib_sigma_head_forward(size_t n, const float *rho, float offset, float *sigma,
                                   float *log_sigma);

/* Backward of vib_sigma_head_forward:
 * drho += dsigma * sigmoid(rho + offset) + dlog_sigma * sigmoid(rho + offset) / sigma.
 * Either of dsigma and dlog_sigma may be NULL (no gradient through that output), not
 * both. The dlog_sigma factor is evaluated stably (it tends to 1 as rho + offset -> -inf). */
VIB_API int vib_sigma_head_backward(size_t n, const float *rho, float offset,
                                    const float *dsigma, const float *dlog_sigma, float *drho);

/* ReLU: y = max(x, 0), elementwise over n values; y may equal x (in place). */
VIB_API int vib_relu_forward(size_t n, const float *x, float *y);

/* Backward of ReLU: dx += dy where x > 0. `x` may be the input or the output of the
 * forward: both are positive exactly where the gradient passes (at 0 it does not). */
VIB_API int vib_relu_backward(size_t n, const float *x, const float *dy, float *dx);

/* Softmax cross-entropy over `rows` rows of `classes` logits ([rows x classes]):
 * loss[r] = -log softmax(logits[r])[labels[r]] in nats, computed with the max-shift
 * (log-sum-exp) so large logits do not overflow. labels[r] must be in [0, classes).
 * prob ([rows x classes]) receives the softmax probabilities; it may be NULL if
 * unneeded, but the backward needs it. Math: docs/math.md#softmax-cross-entropy. */
VIB_API int vib_softmax_xent_forward(size_t rows, size_t classes, const float *logits,
                                     const int32_t *labels, float *loss, float *prob);

/* Backward of the softmax cross-entropy, given the forward's probabilities (each in
 * [0, 1], else VIB_ERR_INVALID_ARG) and
 * dloss = dL/dloss ([rows]): dlogits[r][c] += dloss[r] * (prob[r][c] - [c == labels[r]]). */
VIB_API int vib_softmax_xent_backward(size_t rows, size_t classes, const float *prob,
                                      const int32_t *labels, const float *dloss,
                                      float *dlogits);

/* ---------------------------------------------------------------------------------
 * Full-covariance Gaussian nodes (the paper's Figure 2 uses K = 2)
 *
 * A posterior N(mu, L L^T) with L lower triangular and a positive diagonal, stored
 * packed by rows: for each row of the batch, k(k+1)/2 values L[i][j], j <= i, at index
 * i(i+1)/2 + j (for k = 2: L00, L10, L11). Math: docs/math.md#full-covariance.
 * ------------------------------------------------------------------------------- */

/* Packed size k(k+1)/2 of a k x k lower-triangular factor (0 if it overflows). */
VIB_API size_t vib_chol_size(size_t k);

/* z = mu + L v for each of `rows` rows: mu, v, z [rows x k], l [rows x k(k+1)/2].
 * Requires finite inputs and L[i][i] > 0. */
VIB_API int vib_chol_reparam_forward(size_t rows, size_t k, const float *mu, const float *l,
                                     const float *v, float *z);

/* Backward of vib_chol_reparam_forward: dmu += dz, dl[i][j] += dz[i] v[j] (j <= i). */
VIB_API int vib_chol_reparam_backward(size_t rows, size_t k, const float *dz, const float *v,
                                      float *dmu, float *dl);

/* KL( N(mu, L L^T) || N(0, I) ) in nats per row:
 * kl[r] = 0.5 * (sum_ij L[i][j]^2 + |mu|^2 - k - 2 sum_i log L[i][i]). Accumulated in
 * double. Requires finite inputs and L[i][i] > 0. */
VIB_API int vib_kl_chol_std_normal(size_t rows, size_t k, const float *mu, const float *l,
                                   float *kl);

/* Backward: dmu += dkl[r] mu, dl[i][j] += dkl[r] (L[i][j] - [i == j] / L[i][i]). */
VIB_API int vib_kl_chol_std_normal_backward(size_t rows, size_t k, const float *mu,
                                            const float *l, const float *dkl, float *dmu,
                                            float *dl);

/* ---------------------------------------------------------------------------------
 * Dense (fully connected) layer: y = x W + b for a batch of rows.
 *
 * x is [batch x in], W is [in x out] (row-major: W[i*out + j] joins input i to output
 * j), b is [out], y is [batch x out]. All products go through BLIS; transposes are
 * expressed by strides, never by copies.
 *
 * The layer checks its arguments and inputs (NaN, Inf). The backward also refuses a
 * gradient that would overflow (VIB_ERR_NUMERIC, nothing written): it computes its
 * products into a workspace the layer keeps, checks them and their sums with the
 * buffers, and only then adds them. The forward does not check y: weights or inputs
 * near float's range can overflow it to infinity.
 *
 * Initialization scales with fan-in. With weights of std 1, an output is a sum of
 * `in` terms and has std ~ sqrt(in) times its input's: a 1024-wide layer multiplies
 * the scale by 32 and a few layers saturate the softmax (the problem set's first
 * question: tied std-1 embeddings give logits of size ~sqrt(d_model)). Scaling the
 * std by 1/sqrt(fan_in) keeps each layer's output at the scale of its input.
 * ------------------------------------------------------------------------------- */
typedef struct vib_dense vib_dense;

enum {
    VIB_INIT_HE = 1,     /* N(0, 2/in): layers followed by ReLU, which zeroes half the signal */
    VIB_INIT_LECUN = 2,  /* N(0, 1/in): linear layers (the Gaussian head, the decoder) */
    VIB_INIT_GLOROT = 3, /* U(-a, a), a = sqrt(6/(in + out)): averages fan-in and fan-out */
    VIB_INIT_ZERO = 4    /* all zeros (e.g. to load weights afterwards) */
};

/* Create a layer with `in` inputs and `out` outputs into *out_layer. Weights are
 * drawn from `rng` by scheme `init` (rng may be NULL only for VIB_INIT_ZERO); biases
 * start at 0; gradients start at 0. The caller owns *out_layer and frees it with
 * vib_dense_free. On error *out_layer is untouched. */
VIB_API int vib_dense_create(size_t in, size_t out, int init, vib_rng *rng,
                             vib_dense **out_layer);

/* Free a layer and its workspace; NULL is fine. */
VIB_API void vib_dense_free(vib_dense *layer);

/* Sizes (pure getters; 0 for a NULL layer). */
VIB_API size_t vib_dense_in(const vib_dense *layer);
VIB_API size_t vib_dense_out(const vib_dense *layer);

/* The layer's parameters and their gradients, owned by the layer and valid until it
 * is freed: W and dW have in*out floats, b and db have out floats. Write through them
 * to load weights or to apply an update. NULL for a NULL layer. */
VIB_API float *vib_dense_weights(vib_dense *layer);
VIB_API float *vib_dense_bias(vib_dense *layer);
VIB_API float *vib_dense_weights_grad(vib_dense *layer);
VIB_API float *vib_dense_bias_grad(vib_dense *layer);

/* Set dW and db to zero. */
VIB_API int vib_dense_zero_grad(vib_dense *layer);

/* y = x W + b for `batch` rows. x is [batch x in], y is [batch x out]; y must not
 * overlap x. Non-finite x gives VIB_ERR_NUMERIC. */
VIB_API int vib_dense_forward(const vib_dense *layer, size_t batch, const float *x, float *y);

/* Backward given the forward's input x and dy = dL/dy ([batch x out]), accumulating
 * like every backward: dW += x^T dy, db += sum over rows of dy, and if dx is not NULL,
 * dx += dy W^T ([batch x in]; zero it first). An input read by two layers (the mu and
 * rho heads reading one hidden layer) gets both gradients by passing the same dx to
 * both backwards. VIB_ERR_NUMERIC, with nothing written, if a product is not finite or
 * its sum with the buffer's current value would overflow float; VIB_ERR_NOMEM if the
 * layer's workspace (in*out + out + batch*in floats, kept for later calls) cannot be
 * allocated. Math: docs/math.md#dense-layer. */
VIB_API int vib_dense_backward(vib_dense *layer, size_t batch, const float *x,
                               const float *dy, float *dx);

/* ---------------------------------------------------------------------------------
 * Data: IDX files (the MNIST format) and labelled datasets
 *
 * IDX: a big-endian header of two zero bytes, a type byte and a dimension count, then
 * one 32-bit size per dimension, then the data. libvib reads type 0x08 (unsigned byte),
 * the type of MNIST and Fashion-MNIST, from plain files or gzip-compressed ones
 * (recognised by their content, whatever the name; a gzip file may hold several
 * members, and nothing after the last). Every malformed input (bad magic, unsupported
 * type, no or too many dimensions, a zero size, sizes whose product overflows, a
 * truncated body or trailing bytes, a corrupt gzip stream, bytes after it) gives
 * VIB_ERR_FORMAT with a message naming the file and what is wrong. A path that cannot
 * be opened or read, or is not a regular file, gives VIB_ERR_IO: a directory, a device,
 * or a FIFO, which is refused at once, not waited on. The header's claim is checked
 * against the file's length before the body is allocated: VIB_ERR_FORMAT for a plain
 * file of another length or a gzip file too short to hold it (deflate expands at most
 * 1032:1). A body over 2^31 bytes (MNIST's largest is 47 MB) is VIB_ERR_NOMEM ("too
 * large").
 * ------------------------------------------------------------------------------- */
typedef struct vib_idx vib_idx;

/* Read the IDX file at `path` into *out (caller frees with vib_idx_free). */
VIB_API int vib_idx_load(const char *path, vib_idx **out);
VIB_API void vib_idx_free(vib_idx *idx);

/* Number of dimensions (1..255), the size of dimension `axis` (0 if axis is out of
 * range), the number of elements, and the data in row-major order, owned by the
 * handle. Pure getters: 0 or NULL for a NULL handle. */
VIB_API size_t vib_idx_ndim(const vib_idx *idx);
VIB_API size_t vib_idx_dim(const vib_idx *idx, size_t axis);
VIB_API size_t vib_idx_count(const vib_idx *idx);
VIB_API const uint8_t *vib_idx_data(const vib_idx *idx);

typedef struct vib_dataset vib_dataset;

/* Load images (an IDX file of n items of any shape, flattened to dim values each) and
 * their labels (an IDX file of n bytes) into *out. Pixels p in 0..255 become
 * lo + (hi - lo) * p / 255: (0, 1) for [0, 1], (-1, 1) for the VIB paper's scaling.
 * Mismatched counts give VIB_ERR_FORMAT naming both files. */
VIB_API int vib_dataset_load(const char *images_path, const char *labels_path, float lo,
                             float hi, vib_dataset **out);

/* Load a split of an MNIST-layout directory: `split` "train" reads
 * train-images-idx3-ubyte and train-labels-idx1-ubyte, "t10k" the t10k- pair; each
 * name is tried as it is, then with ".gz". Debian's /usr/share/datasets/fashion-mnist
 * loads the same way. */
VIB_API int vib_dataset_load_mnist(const char *dir, const char *split, float lo, float hi,
                                   vib_dataset **out);

/* A new dataset holding a copy of items [first, first + count) of src. */
VIB_API int vib_dataset_subset(const vib_dataset *src, size_t first, size_t count,
                               vib_dataset **out);

VIB_API void vib_dataset_free(vib_dataset *data);

/* Items, values per item, and classes (the largest label + 1 of the loaded files; a
 * subset keeps its source's count). Pure getters: 0 for NULL. */
VIB_API size_t vib_dataset_size(const vib_dataset *data);
VIB_API size_t vib_dataset_dim(const vib_dataset *data);
VIB_API size_t vib_dataset_classes(const vib_dataset *data);

/* The images [size x dim] and labels [size], owned by the dataset. NULL for NULL. */
VIB_API const float *vib_dataset_images(const vib_dataset *data);
VIB_API const int32_t *vib_dataset_labels(const vib_dataset *data);

/* ---------------------------------------------------------------------------------
 * Optimizers, learning-rate schedule, weight averaging
 *
 * An optimizer updates a flat float array of n parameters in place from a gradient
 * array of the same length (vib_model_params / vib_model_grads, or any other). Its
 * state is allocated once at creation; a step allocates nothing.
 * ------------------------------------------------------------------------------- */
typedef struct vib_optim vib_optim;

/* Adam (Kingma and Ba, 2015) with bias correction: m = b1 m + (1-b1) g,
 * v = b2 v + (1-b2) g^2, p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps).
 * Requires lr > 0, 0 <= beta1 < 1, 0 <= beta2 < 1, eps > 0. */
VIB_API int vib_adam_create(size_t n, float lr, float beta1, float beta2, float eps,
                            vib_optim **out);

/* SGD with (heavy-ball) momentum: u = momentum * u + g, p -= lr * u.
 * Requires lr > 0 and 0 <= momentum < 1. */
VIB_API int vib_sgd_create(size_t n, float lr, float momentum, vib_optim **out);

VIB_API void vib_optim_free(vib_optim *opt);

/* One update of params[0..n) from grads[0..n) (which must not overlap). A non-finite
 * gradient, or one so large the state would overflow (|g| > 2^63 for Adam, whose v holds
 * g^2; |g| > (1 - momentum) FLT_MAX / 2 for SGD), gives VIB_ERR_NUMERIC, and so does a
 * step that would turn a finite parameter into an infinity (a learning rate or gradients
 * near float's range; Adam's lr * mhat / (sqrt(vhat) + eps) with a tiny eps); either way
 * params and the optimizer state are left unchanged. A move under 2^103, half the float
 * spacing at FLT_MAX, cannot overflow a finite parameter; a step whose bound on its
 * moves (from max|g| and the state) exceeds 2^102 first computes its results without
 * writing them, a second pass over the arrays. Parameters already NaN or infinite are
 * not looked for; they stay so. */
VIB_API int vib_optim_step(vib_optim *opt, float *params, const float *grads);

/* The learning rate for the following steps (> 0), and the current one. */
VIB_API int vib_optim_set_lr(vib_optim *opt, float lr);
VIB_API float vib_optim_lr(const vib_optim *opt);

/* Steps taken so far. Pure getter: 0 for NULL. */
VIB_API uint64_t vib_optim_steps(const vib_optim *opt);

/* Staircase exponential decay: *lr = lr0 * rate^floor(step / decay_steps)
 * (the paper: lr0 1e-4, rate 0.97, decay_steps two epochs). Requires lr0 > 0,
 * 0 < rate <= 1, decay_steps > 0. */
VIB_API int vib_lr_staircase(float lr0, float rate, uint64_t decay_steps, uint64_t step,
                             float *lr);

/* Exponential moving average of parameters (Polyak averaging), for evaluation:
 * avg = d * avg + (1 - d) * params with d = min(decay, (1 + t) / (10 + t)) at update t
 * (t = 0, 1, ...), the warm-up TensorFlow's ExponentialMovingAverage applies with
 * num_updates, so early averages are not dominated by the initial weights. */
typedef struct vib_ema vib_ema;

/* Start an average of n values at init[0..n) with 0 < decay < 1. */
VIB_API int vib_ema_create(size_t n, float decay, const float *init, vib_ema **out);
VIB_API void vib_ema_free(vib_ema *ema);
VIB_API int vib_ema_update(vib_ema *ema, const float *params);

/* The averaged values (n floats), owned by the handle. NULL for NULL. */
VIB_API const float *vib_ema_values(const vib_ema *ema);

/* vib_optim_step, then vib_ema_update of the new parameters, in ONE pass over the
 * arrays (the step is memory-bound: this reads and writes each array once instead of
 * twice), with bit-identical results. It refuses what vib_optim_step refuses, so the
 * new parameters are finite wherever the given ones were; only parameters passed in
 * already NaN or infinite, which vib_ema_update would refuse, are averaged (the step
 * does not read them before its pass). ema may be NULL (then this is vib_optim_step); it
 * must hold as many values as the optimizer and must not overlap params or grads. On
 * any error neither the parameters, the optimizer nor the average change. */
VIB_API int vib_optim_step_ema(vib_optim *opt, float *params, const float *grads,
                               vib_ema *ema);

/* ---------------------------------------------------------------------------------
 * The VIB classifier
 *
 *   x -> encoder MLP (ReLU) -> one linear layer to [mu | rho], sigma = softplus(rho + offset)
 *     -> z = mu + sigma * v, v ~ N(0, I) from the model's own generator
 *     -> decoder (a linear softmax layer, or an MLP with ReLU) -> class probabilities
 *
 * Loss per batch, averaged over its rows: L = CE + beta * KL(N(mu, sigma^2) || N(0, I)),
 * in nats. In deterministic mode z = mu and there is no KL (the baseline).
 * All parameters live in ONE flat float array and their gradients in another of the
 * same length, so an optimizer, a checkpoint or an allreduce sees a single buffer.
 * Limits: at most 64 hidden layers per side, every size at most 2^24, batch >= 1 (a
 * batch of 0 is VIB_ERR_INVALID_ARG here: a batch mean needs a row), at most 100000
 * prediction samples. Training and prediction draw from two separate noise streams, so
 * evaluating between steps does not change what training sees. A model is one handle:
 * encode and predict use its workspace and noise, so one thread at a time.
 * ------------------------------------------------------------------------------- */
typedef struct vib_model vib_model;

/* Create a model into *out: input_dim inputs, n_enc encoder hidden layers of sizes
 * enc_hidden[0..n_enc), latent size latent_dim (K), n_dec decoder hidden layers
 * dec_hidden[0..n_dec) (0 for the paper's linear decoder), `classes` outputs. ReLU
 * layers start He-initialized, linear ones LeCun; biases 0; beta 1e-3; sigma offset
 * -5; stochastic mode. `seed` drives the initial weights and the noise. n_enc may be 0
 * (the head reads x directly); enc_hidden/dec_hidden may be NULL when their count is 0.
 * The caller frees *out with vib_model_free. */
VIB_API int vib_model_create(size_t input_dim, size_t n_enc, const size_t *enc_hidden,
                             size_t latent_dim, size_t n_dec, const size_t *dec_hidden,
                             size_t classes, uint64_t seed, vib_model **out);
VIB_API void vib_model_free(vib_model *model);

/* Options of vib_model_create_ex, or'd together. */
enum {
    /* A full-covariance posterior N(mu, L L^T): the head emits mu and the packed
     * Cholesky factor L (k(k+1)/2 values per row; the diagonal through
     * softplus(. + offset), the rest as they are), z = mu + L v, and the KL is the
     * closed form of vib_kl_chol_std_normal. */
    VIB_MODEL_FULL_COV = 1
};

/* vib_model_create with options `flags` (0 gives exactly vib_model_create's model).
 * Unknown flags are VIB_ERR_INVALID_ARG. */
VIB_API int vib_model_create_ex(size_t input_dim, size_t n_enc, const size_t *enc_hidden,
                                size_t latent_dim, size_t n_dec, const size_t *dec_hidden,
                                size_t classes, uint32_t flags, uint64_t seed,
                                vib_model **out);

/* The options the model was created with. Pure getter: 0 for NULL. */
VIB_API uint32_t vib_model_flags(const vib_model *model);

/* Settings. beta >= 0 and finite; offset finite; deterministic 0 or 1. */
VIB_API int vib_model_set_beta(vib_model *model, float beta);
VIB_API int vib_model_set_sigma_offset(vib_model *model, float offset);
VIB_API int vib_model_set_deterministic(vib_model *model, int deterministic);
/* Restart both noise streams (the weights are untouched): same seed, same samples. */
VIB_API int vib_model_reseed(vib_model *model, uint64_t seed);

/* Pure getters (0 for NULL). */
VIB_API float vib_model_beta(const vib_model *model);
VIB_API float vib_model_sigma_offset(const vib_model *model);
VIB_API int vib_model_deterministic(const vib_model *model);
VIB_API size_t vib_model_input_dim(const vib_model *model);
VIB_API size_t vib_model_latent_dim(const vib_model *model);
VIB_API size_t vib_model_classes(const vib_model *model);
VIB_API size_t vib_model_num_params(const vib_model *model);

/* A one-line description such as "784-1024-1024 | K=256 | decoder 10 | beta=0.001",
 * written like snprintf (as vib_backend_info): at most len - 1 characters and a
 * terminating 0 into buf. Returns the length of the whole line (a return >= len means
 * it was cut; buf NULL with len 0 gives the length alone), or VIB_ERR_INVALID_ARG if
 * model is NULL or buf is NULL with len > 0. */
VIB_API int vib_model_describe(const vib_model *model, char *buf, size_t len);

/* The parameters and their gradients, num_params floats each, owned by the model and
 * valid until it is freed. Write through vib_model_params to load or update weights. */
VIB_API float *vib_model_params(vib_model *model);
VIB_API float *vib_model_grads(vib_model *model);

/* Make the model's workspace big enough for batches of up to max_batch rows now, so
 * that no later call with at most that many rows allocates (without this, the first
 * call with a larger batch than any before grows the workspace). Errors:
 * VIB_ERR_INVALID_ARG (NULL model, max_batch 0 or so large the sizes overflow),
 * VIB_ERR_NOMEM; the model is unchanged on error. */
VIB_API int vib_model_reserve(vib_model *model, size_t max_batch);

/* Forward and backward of one batch: x [batch x input_dim], labels [batch] in
 * [0, classes). OVERWRITES the gradient array with dL/dparams of the batch-mean loss,
 * draws fresh noise from the model's generator, and reports the batch means of the
 * cross-entropy, the KL (0 when deterministic) and L = CE + beta KL, in nats, through
 * the non-NULL pointers. Does not change the parameters. */
VIB_API int vib_model_gradients(vib_model *model, size_t batch, const float *x,
                                const int32_t *labels, double *ce, double *kl,
                                double *loss);

/* The posterior of each row: mu and sigma [batch x K] (sigma = 0 when deterministic;
 * with VIB_MODEL_FULL_COV, sigma is the marginal standard deviation sqrt((L L^T)_ii)). */
VIB_API int vib_model_encode(vib_model *model, size_t batch, const float *x, float *mu,
                             float *sigma);

/* The posterior of each row as mu [batch x K] and its packed Cholesky factor
 * chol [batch x K(K+1)/2] (vib_chol_size): the full factor with VIB_MODEL_FULL_COV, the
 * diagonal sigma otherwise (off-diagonal entries 0), all zeros when deterministic. */
VIB_API int vib_model_encode_chol(vib_model *model, size_t batch, const float *x, float *mu,
                                  float *chol);

/* Class probabilities prob [batch x classes], averaged over `samples` draws of z from
 * the posterior (the paper uses 12), or computed at z = mu when samples is 0 or the
 * model is deterministic. */
VIB_API int vib_model_predict(vib_model *model, size_t batch, const float *x, size_t samples,
                              float *prob);

/* Save to `path`: a versioned little-endian file (magic, configuration, parameters,
 * CRC32), written to a temporary file in the same directory, flushed to disk and
 * renamed over `path`, so a crash never leaves a half-written model under that name. */
VIB_API int vib_model_save(const vib_model *model, const char *path);

/* Load a model saved by vib_model_save into *out. Every field is checked; a truncated,
 * corrupted or foreign file gives VIB_ERR_FORMAT naming the file and the problem. The
 * magic, then the header against the file's length, are checked before the file is read
 * whole, so a large foreign file costs 8 bytes of reading. A checkpoint
 * (vib_trainer_save) is read as the model file it holds: its header, then that part
 * alone, checked alike. Only a regular file is read: anything else, a FIFO included, is
 * VIB_ERR_IO at once. */
VIB_API int vib_model_load(const char *path, vib_model **out);

/* ---------------------------------------------------------------------------------
 * Added in 0.2 (symbol version LIBVIB_0.2)
 * ------------------------------------------------------------------------------- */

/* The length of the arrays an optimizer or an average was created for (its n). Pure
 * getters: 0 for NULL. */
VIB_API size_t vib_optim_size(const vib_optim *opt);
VIB_API size_t vib_ema_size(const vib_ema *ema);

/* The flat parameter array, block by block: each layer's weights then its bias, layer by
 * layer from the input (encoder hidden layers, the Gaussian head, decoder hidden layers,
 * the output layer), so vib_model_num_blocks is twice the number of layers (0 for NULL),
 * three more with a mixture marginal (below).
 * Block b starts at *offset in vib_model_params (and in vib_model_grads: same layout)
 * and holds a row-major [rows x cols] matrix (W is [in x out]: W[i*out + j] joins input
 * i to output j; a bias is [1 x out]); the blocks follow each other without gaps and end
 * at num_params. *kind is VIB_BLOCK_WEIGHTS or VIB_BLOCK_BIAS, *role the layer's
 * VIB_LAYER_*, *index the layer's number within its role from 0 (0 for the head and the
 * output layer). Any out pointer may be NULL; on error none is written.
 * VIB_ERR_INVALID_ARG for a NULL model or b >= vib_model_num_blocks(model). */
enum { VIB_BLOCK_WEIGHTS = 0, VIB_BLOCK_BIAS = 1 };
enum { VIB_LAYER_ENCODER = 0, VIB_LAYER_HEAD = 1, VIB_LAYER_DECODER = 2, VIB_LAYER_OUTPUT = 3 };
/* Since 0.2: a model with a mixture marginal (vib_model_create_mixture) has three more
 * blocks, right after the head's bias, of role VIB_LAYER_PRIOR (index 0) and these
 * kinds: the means [M x K], the scales' raw values [M x K], the weights' logits [1 x M]. */
enum { VIB_BLOCK_PRIOR_MEANS = 2, VIB_BLOCK_PRIOR_SCALES = 3, VIB_BLOCK_PRIOR_LOGITS = 4 };
enum { VIB_LAYER_PRIOR = 4 };
VIB_API size_t vib_model_num_blocks(const vib_model *model);
VIB_API int vib_model_block(const vib_model *model, size_t b, size_t *offset, size_t *rows,
                            size_t *cols, int *kind, int *role, size_t *index);

/* dL/dx [batch x input_dim] of the batch-mean training loss L = CE + beta KL (what
 * vib_model_gradients differentiates) for the given labels, WRITTEN into dx (not
 * accumulated, unlike a node's backward). With samples >= 1, samples draws of the noise
 * from the training stream (samples * batch * K normals, as that many vib_model_gradients
 * calls would draw), the gradient and the loss averaged over them; with samples = 0,
 * z = mu (v = 0) and no draw, the KL term kept; a deterministic model has z = mu and no
 * KL whatever samples is. Neither the parameters nor their gradients are touched.
 * The encoder runs once whatever samples is; each draw costs the head and decoder.
 * *loss (if not NULL) receives L, averaged over the draws. Checks as
 * vib_model_gradients, then dx NULL and samples > 100000 (VIB_ERR_INVALID_ARG); a
 * non-finite loss at any draw is VIB_ERR_NUMERIC with dx, *loss and the training noise
 * stream as they were. */
VIB_API int vib_model_input_gradients(vib_model *model, size_t batch, const float *x,
                                      const int32_t *labels, size_t samples, float *dx,
                                      double *loss);

/* Evaluate a classifier over n rows of x with their labels, with `samples` posterior
 * draws per row (0: at z = mu) from the prediction stream, with the model's weights or,
 * if ema is not NULL, with the averaged ones (read in place: the model's own weights are
 * not written; ema must hold vib_model_num_params values). Rows go through the model in
 * chunks of 500, each predicted and drawn as one vib_model_predict call on it would be
 * (a model with a mixture marginal first draws 4 * rows * K normals of the chunk's rate).
 * Outputs, each optional:
 *   *error     the fraction of rows whose most probable class (the first of equal ones)
 *              is not the label;
 *   *ce_bits   the mean cross-entropy -log2 p(y|x) of the averaged prediction, in bits,
 *              a probability that underflowed below FLT_MIN counting as FLT_MIN (126 bits);
 *   *kl_bits   the mean KL(q(z|x) || N(0, I)) in bits, the rate (an upper bound on I(Z;X));
 *              with a mixture marginal r(z), KL(q(z|x) || r(z)) estimated from 4 draws
 *              per row of the prediction stream; 0 for a deterministic model;
 *   *izy_bits  H(Y) - ce_bits, H(Y) the entropy of these labels: a lower bound on I(Z;Y).
 * Checks, in order: model NULL, n = 0 (a mean needs a row), x NULL, n * input_dim
 * overflowing (VIB_ERR_INVALID_ARG); x not finite (VIB_ERR_NUMERIC); labels NULL, a label
 * outside [0, classes) (naming the row), samples > 100000, ema of another length
 * (VIB_ERR_INVALID_ARG); the workspace for min(n, 500) rows, as in vib_model_gradients;
 * with izy_bits, the label histogram (`classes` counters, freed before returning:
 * VIB_ERR_NOMEM). Nothing is drawn or written on error. */
VIB_API int vib_model_evaluate(vib_model *model, const vib_ema *ema, size_t n, const float *x,
                               const int32_t *labels, size_t samples, double *error,
                               double *ce_bits, double *kl_bits, double *izy_bits);

/* Training with several posterior draws per example. vib_model_gradients (and so the
 * trainer, and vib_model_input_gradients' loss) then draws `samples` values of z for each
 * row, z_s = mu + sigma v_s, and trains on
 *   VIB_OBJECTIVE_MEAN        CE = the mean over the draws of -log q(y | z_s), an
 *                             average of `samples` one-draw losses (its gradient has
 *                             less variance; the bound it optimizes is the same);
 *   VIB_OBJECTIVE_LOGMEANEXP  CE = -log( (1/S) sum_s q(y | z_s) ), the cross-entropy of
 *                             the averaged prediction, the one the paper's 12-sample test
 *                             rule scores; a tighter bound, at most the mean's (Jensen);
 * plus beta KL, the KL in closed form as ever (it does not depend on the draw). The
 * encoder runs once per row whatever samples is: only the head's sampling and the
 * decoder run per draw, in one pass over batch x samples rows. The draws come from the
 * training stream, samples x batch x K normals a step, in the order of `samples`
 * one-draw steps, so samples = 1 with VIB_OBJECTIVE_MEAN is the model's default
 * training bit for bit. A deterministic model has one z per row and ignores the
 * setting. Saved with the model (vib_model_save, checkpoints). A training pass's
 * workspace is samples times as many rows; it grows at once for the largest training
 * batch so far (a trainer's, a successful vib_model_gradients', vib_model_reserve's),
 * so a trainer's steps still allocate nothing; vib_model_reserve reserves for the draws
 * set then. Errors: NULL model, samples 0 or above 1024, an unknown objective, a
 * workspace size that overflows (VIB_ERR_INVALID_ARG); VIB_ERR_NOMEM; the model is
 * unchanged on error. */
enum { VIB_OBJECTIVE_MEAN = 0, VIB_OBJECTIVE_LOGMEANEXP = 1 };
VIB_API int vib_model_set_train_samples(vib_model *model, size_t samples, int objective);
/* Pure getters: the draws per example (1 unless set; 0 for NULL) and the objective. */
VIB_API size_t vib_model_train_samples(const vib_model *model);
VIB_API int vib_model_train_objective(const vib_model *model);

/* vib_model_create_ex with a learned marginal r(z) in place of the standard normal: a
 * mixture of `components` (M) diagonal Gaussians,
 *   r(z) = sum_m pi_m N(z; c_m, diag(s_m^2)),  pi = softmax(logits),  s_m = softplus(raw_m),
 * whose means, raw scales and logits are trainable parameters in the flat array (three
 * blocks of role VIB_LAYER_PRIOR between the head and the decoder: [M x K] means,
 * [M x K] raw scales, [1 x M] logits; vib_model_block). They start as M means drawn from
 * N(0, I) after every layer's weights (so the layers are those of the model without
 * the marginal, seed for seed), unit scales and equal weights. The rate
 * KL(e(z|x) || r(z)) has no closed form: training estimates it from its own draws, for
 * each draw z_s of a row log e(z_s|x) - log r(z_s), averaged over the row's draws
 * (vib_model_set_train_samples), and its gradient reaches the encoder through z_s and
 * log sigma, and the marginal's parameters through the components' responsibilities
 * (docs/math.md#a-learned-mixture-marginal). vib_model_gradients' *kl and the loss hold
 * that estimate; vib_model_evaluate's *kl_bits is the same estimate from 4 draws per
 * row of the prediction stream. Works with VIB_MODEL_FULL_COV (log e then has log of
 * L's diagonal). components = 0 is vib_model_create_ex's model, the closed-form KL to
 * N(0, I); at most 1024 (VIB_ERR_INVALID_ARG), the parameter count as ever (NOMEM). A
 * deterministic model leaves the marginal unused (its gradient 0). Saved with the model. */
VIB_API int vib_model_create_mixture(size_t input_dim, size_t n_enc, const size_t *enc_hidden,
                                     size_t latent_dim, size_t n_dec, const size_t *dec_hidden,
                                     size_t classes, uint32_t flags, size_t components,
                                     uint64_t seed, vib_model **out);
/* Pure getter: the marginal's components, 0 for the standard normal (and for NULL). */
VIB_API size_t vib_model_prior_components(const vib_model *model);

/* A trainer: minibatch training of a model with an optimizer (and an optional moving
 * average of the weights) over a fixed training set of n rows, in seeded-shuffled
 * minibatches of `batch` rows (the last one of an epoch shorter if batch does not divide
 * n), the learning rate lr0 * rate^floor(step / decay_steps) (the staircase; rate 1
 * keeps it constant; floored at 1e-30, as no optimizer accepts 0), one optimizer step
 * and average update per minibatch. The trainer keeps pointers to the model, optimizer
 * and average (which the caller creates, keeps alive and frees after the trainer), not
 * to the data: every call that trains is given x [n x input_dim] and labels [n].
 * Everything is allocated at creation: steps allocate nothing. */
typedef struct vib_trainer vib_trainer;

/* Called after each step: the epoch (from 0), the step within it (from 1), the steps of
 * an epoch, and that step's batch means. Return 0 to go on, nonzero to stop the running
 * vib_trainer_epoch after this step, the epoch's last included (it returns VIB_OK;
 * vib_trainer_stopped says so). The callback may read the trainer's position and save a
 * checkpoint; it must not train, load or change the trainer's settings. */
typedef int (*vib_train_callback)(void *user, uint64_t epoch, uint64_t step,
                                  uint64_t steps_per_epoch, double ce, double kl, double loss);

VIB_API int vib_trainer_create(vib_model *model, vib_optim *opt, vib_ema *ema, size_t n,
                               size_t batch, uint64_t seed, vib_trainer **out);
VIB_API void vib_trainer_free(vib_trainer *trainer);

/* The learning-rate schedule (by default the optimizer's rate, constant). */
VIB_API int vib_trainer_set_schedule(vib_trainer *trainer, float lr0, float rate,
                                     uint64_t decay_steps);
/* The callback (NULL: none) and its user pointer. */
VIB_API int vib_trainer_set_callback(vib_trainer *trainer, vib_train_callback cb, void *user);

/* One step: the next minibatch of the current epoch; the epoch's last step reshuffles
 * for the next. A step that fails (bad data, a non-finite loss or gradient) changes
 * nothing the run depends on: parameters, optimizer state and rate, average, noise
 * streams and position are as they were (the model's gradient array, scratch, may have
 * been overwritten). ce, kl, loss (optional) receive the batch means. */
VIB_API int vib_trainer_step(vib_trainer *trainer, const float *x, const int32_t *labels,
                             double *ce, double *kl, double *loss);
/* The rest of the current epoch (all of it from its start), or up to the step after
 * which the callback asks to stop; ce, kl, loss receive the means over the rows trained. */
VIB_API int vib_trainer_epoch(vib_trainer *trainer, const float *x, const int32_t *labels,
                              double *ce, double *kl, double *loss);

/* Where the trainer is: epochs completed, steps done in the current one, steps per
 * epoch, steps in all; whether the last vib_trainer_epoch was stopped by the callback;
 * the learning rate of the last step (the schedule's first before any). */
VIB_API uint64_t vib_trainer_epochs_done(const vib_trainer *trainer);
VIB_API uint64_t vib_trainer_step_in_epoch(const vib_trainer *trainer);
VIB_API uint64_t vib_trainer_steps_per_epoch(const vib_trainer *trainer);
VIB_API uint64_t vib_trainer_steps(const vib_trainer *trainer);
VIB_API int vib_trainer_stopped(const vib_trainer *trainer);
VIB_API float vib_trainer_lr(const vib_trainer *trainer);

/* Data-parallel training (any transport: MPI, mpi4py, ...). A reduction, called once per
 * step on the model's flat gradient array (n floats) before the optimizer step, must
 * replace it in place by its sum over the workers, identical on every worker; return 0,
 * or nonzero for a failure (the step then fails with VIB_ERR_IO and changes nothing).
 * With vib_trainer_set_shard(rank, ranks) each worker trains rows [rows * rank / ranks,
 * rows * (rank + 1) / ranks) of each global batch (every worker builds the same shuffled
 * order), with the noise those rows get in a one-process run of the global batch, and
 * computes the gradient of the global batch's mean over its rows: the sum over the
 * workers is the one-process gradient, up to the order of the additions. The trainers
 * must be built alike (same seed, n, batch) on models of the same weights and seed.
 * ranks must not exceed the batch size; ranks 1 (the default) is one process. */
typedef int (*vib_reduce_callback)(void *user, float *buf, size_t n);
VIB_API int vib_trainer_set_reduce(vib_trainer *trainer, vib_reduce_callback cb, void *user);
VIB_API int vib_trainer_set_shard(vib_trainer *trainer, size_t rank, size_t ranks);

/* The reduction overlapped with the backward pass, in place of vib_trainer_set_reduce's
 * (setting either replaces the other; part NULL: none). The backward pass runs from the
 * last layer to the first, and each layer's weight and bias gradients, one contiguous
 * range of the flat gradient array, are final once it has passed that layer: then
 * part(user, buf, n, lo, hi) is called from the training thread with buf[lo, hi) newly
 * final. The calls cover [0, n) from the top down, one per layer, in the same order and
 * with the same ranges on every worker (on a worker with no rows in a batch too), so a
 * transport may start summing each range as it comes and return at once, while the pass
 * goes on below lo; it may write buf[lo, hi) (the pass never reads it again) but nothing
 * under lo. After the last part, wait(user, buf, n) must return once buf holds the sum
 * over the workers, identical on every worker. A part or wait returning nonzero fails
 * the step (VIB_ERR_IO, nothing changed), but the remaining parts and the wait are
 * still called, so the transport stays in step with the other workers. A step that
 * fails before its backward pass (bad data, a non-finite loss) calls neither. */
typedef int (*vib_reduce_part_callback)(void *user, float *buf, size_t n, size_t lo,
                                        size_t hi);
typedef int (*vib_reduce_wait_callback)(void *user, float *buf, size_t n);
VIB_API int vib_trainer_set_reduce_overlap(vib_trainer *trainer, vib_reduce_part_callback part,
                                           vib_reduce_wait_callback wait, void *user);

/* A checkpoint: the model (its file, which vib_model_load reads from the checkpoint as
 * it is), the optimizer's state (moments, step count, rate), the average, both of the
 * model's noise streams and the trainer's position (epoch, step, shuffle), in one
 * versioned, little-endian, CRC-checked file written atomically like a model file.
 * vib_trainer_load restores one into a trainer built like the one saved (the same
 * architecture, optimizer kind and length, average or not, n and batch): the state
 * continues bit for bit. A mismatch or a damaged file is an error and changes nothing. */
VIB_API int vib_trainer_save(const vib_trainer *trainer, const char *path);
VIB_API int vib_trainer_load(vib_trainer *trainer, const char *path);

#ifdef __cplusplus
}
#endif

#endif /* VIB_H */
