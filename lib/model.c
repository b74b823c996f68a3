/*
 * model.c - the VIB classifier: encoder MLP -> Gaussian head -> decoder, over one flat
 * parameter array and one flat gradient array.
 *
 * Layers, in the order their parameters sit in the flat arrays (each W then b):
 *   encoder hidden layers (ReLU, He init), the head [h -> 2K] giving [mu | rho] (LeCun),
 *   decoder hidden layers (ReLU, He), the output layer [-> classes] (LeCun).
 * The Gaussian head is fused into one pass per element: sigma = softplus(rho + offset),
 * z = mu + sigma v, and the KL with a stable log sigma; its backward likewise
 * (docs/math.md#the-sigma-head, #kl-to-the-standard-normal, #reparameterization).
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "vmath.h"

#define ALIGN 64

/* Noise comes from its own stream, offset from the weights' seed, so restarting the
 * noise with the model's seed does not replay the draws that made the weights. */
#define NOISE_SEED(seed) ((seed) ^ 0x6a09e667f3bcc909ULL)
/* Prediction draws from a third stream, so evaluating a model between training steps
 * (as train_mnist does every epoch) never changes the noise training sees. */
#define PREDICT_SEED(seed) ((seed) ^ 0xbb67ae8584caa73bULL)

struct vib_model {
    size_t input_dim, k, classes, n_enc, n_dec;
    uint32_t flags;  /* VIB_MODEL_* options */
    size_t head_out; /* 2K ([mu | rho]) or K + K(K+1)/2 ([mu | packed L]) */
    size_t *enc_sizes, *dec_sizes;
    size_t n_layers;    /* n_enc + 1 (head) + n_dec + 1 (output) */
    vibi_layer *layers;
    size_t num_params;
    float *params, *grads;
    float beta, offset;
    int deterministic;
    uint64_t seed;
    vib_rng *noise;         /* training's draws */
    vib_rng *predict_noise; /* prediction's draws */
    /* Workspace for up to cap_rows rows, grown on demand: after the first batch of a
     * given size, steps allocate nothing. */
    size_t cap_rows, max_width;
    float *ws;
};

/* Per-call views into the workspace for `rows` rows. */
typedef struct {
    float **act;  /* act[l]: output of layer l, [rows x out_l] */
    float *v, *z; /* noise and sample, [rows x K] */
    float *dz;    /* dL/dz, [rows x K] */
    float *ga, *gb; /* ping-pong gradients, [rows x max_width] */
} views;

static size_t head_index(const vib_model *m)
{
    return m->n_enc;
}

static bool layer_is_relu(const vib_model *m, size_t l)
{
    return l != head_index(m) && l != m->n_layers - 1;
}

/* The packed-factor index of L[i][j], j <= i. */
static size_t tri(size_t i, size_t j)
{
    return i * (i + 1) / 2 + j;
}

/* ---- creation ------------------------------------------------------------------- */

/* a += b, false on overflow */
static bool add_size(size_t *a, size_t b)
{
    return !__builtin_add_overflow(*a, b, a);
}

/* Dimensions of layer l's input and output; the head emits head_out values. */
static void layer_dims(size_t input_dim, size_t n_enc, const size_t *enc, size_t k,
                       size_t head_out, size_t n_dec, const size_t *dec, size_t classes,
                       size_t l, size_t *in, size_t *out)
{
    size_t prev = input_dim;
    for (size_t i = 0; i <= l; i++) {
        size_t o;
        if (i < n_enc)
            o = enc[i];
        else if (i == n_enc)
            o = head_out;
        else if (i < n_enc + 1 + n_dec)
            o = dec[i - n_enc - 1];
        else
            o = classes;
        if (i == l) {
            *in = prev;
            *out = o;
            return;
        }
        /* The decoder reads z (K values), not the head's 2K outputs. */
        prev = i == n_enc ? k : o;
    }
}

static void free_model(vib_model *m)
{
    if (m == NULL)
        return;
    free(m->enc_sizes);
    free(m->dec_sizes);
    free(m->layers);
    free(m->params);
    free(m->grads);
    free(m->ws);
    vib_rng_free(m->noise);
    vib_rng_free(m->predict_noise);
    free(m);
}

void vib_model_free(vib_model *model)
{
    free_model(model);
}

int vib_model_create(size_t input_dim, size_t n_enc, const size_t *enc_hidden,
                     size_t latent_dim, size_t n_dec, const size_t *dec_hidden,
                     size_t classes, uint64_t seed, vib_model **out)
{
    return vib_model_create_ex(input_dim, n_enc, enc_hidden, latent_dim, n_dec, dec_hidden,
                               classes, 0, seed, out);
}

/* Validate an architecture and count its parameters (and its widest layer side):
 * what vib_model_create checks, usable before anything is allocated. */
static int model_shape(const char *fn, size_t input_dim, size_t n_enc, const size_t *enc_hidden,
                       size_t latent_dim, size_t n_dec, const size_t *dec_hidden,
                       size_t classes, uint32_t flags, size_t *num_params_out,
                       size_t *max_width_out, size_t *head_out_out)
{
    /* A size past 2^24 is no layer width anyone trains here; refusing it keeps every
     * product below well inside size_t. */
    const size_t max_dim = (size_t)1 << 24;
    if (input_dim == 0 || latent_dim == 0 || classes < 2)
        return vibi_fail(VIB_ERR_INVALID_ARG,
                         "%s: need input_dim > 0, latent_dim > 0, classes >= 2 (got %zu, %zu, %zu)",
                         fn, input_dim, latent_dim, classes);
    if ((n_enc > 0 && enc_hidden == NULL) || (n_dec > 0 && dec_hidden == NULL))
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: %s is NULL with a nonzero count", fn,
                         n_enc > 0 && enc_hidden == NULL ? "enc_hidden" : "dec_hidden");
    if (n_enc > 64 || n_dec > 64)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: at most 64 hidden layers per side", fn);
    if (input_dim > max_dim || latent_dim > max_dim || classes > max_dim)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: a size exceeds 2^24", fn);
    if (flags & ~(uint32_t)VIB_MODEL_FULL_COV)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: unknown flags 0x%x", fn, (unsigned)flags);
    const bool full = flags & VIB_MODEL_FULL_COV;
    /* A full factor has K(K+1)/2 entries per row: keep that a sane layer width. */
    if (full && latent_dim > 4096)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: a full covariance needs K <= 4096, got %zu",
                         fn, latent_dim);
    const size_t head_out = latent_dim + (full ? vib_chol_size(latent_dim) : latent_dim);
    for (size_t i = 0; i < n_enc; i++)
        if (enc_hidden[i] == 0 || enc_hidden[i] > max_dim)
            return vibi_fail(VIB_ERR_INVALID_ARG, "%s: enc_hidden[%zu] = %zu is out of range",
                             fn, i, enc_hidden[i]);
    for (size_t i = 0; i < n_dec; i++)
        if (dec_hidden[i] == 0 || dec_hidden[i] > max_dim)
            return vibi_fail(VIB_ERR_INVALID_ARG, "%s: dec_hidden[%zu] = %zu is out of range",
                             fn, i, dec_hidden[i]);
    size_t num_params = 0, max_width = 0;
    for (size_t l = 0; l < n_enc + n_dec + 2; l++) {
        size_t in = 0, o = 0;
        layer_dims(input_dim, n_enc, enc_hidden, latent_dim, head_out, n_dec, dec_hidden,
                   classes, l, &in, &o);
        size_t nw;
        if (!vibi_mul_size(in, o, &nw) || !add_size(&num_params, nw) ||
            !add_size(&num_params, o))
            return vibi_fail(VIB_ERR_NOMEM, "%s: the parameter count overflows", fn);
        max_width = in > max_width ? in : max_width;
        max_width = o > max_width ? o : max_width;
    }
    if (num_params > SIZE_MAX / 4 / sizeof(float))
        return vibi_fail(VIB_ERR_NOMEM, "%s: %zu parameters are too many", fn, num_params);
    *num_params_out = num_params;
    *max_width_out = max_width;
    *head_out_out = head_out;
    return VIB_OK;
}

int vibi_model_count_params(size_t input_dim, size_t n_enc, const size_t *enc_hidden,
                            size_t latent_dim, size_t n_dec, const size_t *dec_hidden,
                            size_t classes, uint32_t flags, size_t *num_params)
{
    size_t max_width, head_out;
    return model_shape("vib_model_load", input_dim, n_enc, enc_hidden, latent_dim, n_dec,
                       dec_hidden, classes, flags, num_params, &max_width, &head_out);
}

int vib_model_create_ex(size_t input_dim, size_t n_enc, const size_t *enc_hidden,
                        size_t latent_dim, size_t n_dec, const size_t *dec_hidden,
                        size_t classes, uint32_t flags, uint64_t seed, vib_model **out)
{
    static const char fn[] = "vib_model_create";
    if (out == NULL)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: out is NULL", fn);
    size_t num_params, max_width, head_out;
    int rc = model_shape(fn, input_dim, n_enc, enc_hidden, latent_dim, n_dec, dec_hidden,
                         classes, flags, &num_params, &max_width, &head_out);
    if (rc != VIB_OK)
        return rc;
    const bool full = flags & VIB_MODEL_FULL_COV;
    const size_t n_layers = n_enc + n_dec + 2;

    vib_model *m = calloc(1, sizeof *m);
    if (m == NULL)
        return vibi_fail(VIB_ERR_NOMEM, "%s: cannot allocate the model", fn);
    m->input_dim = input_dim, m->k = latent_dim, m->classes = classes;
    m->flags = flags, m->head_out = head_out;
    m->n_enc = n_enc, m->n_dec = n_dec, m->n_layers = n_layers;
    m->num_params = num_params, m->max_width = max_width;
    m->beta = 1e-3f, m->offset = -5.0f, m->seed = seed;
    m->enc_sizes = malloc((n_enc + 1) * sizeof(size_t));
    m->dec_sizes = malloc((n_dec + 1) * sizeof(size_t));
    m->layers = calloc(n_layers, sizeof(vibi_layer));
    size_t pbytes = (num_params * sizeof(float) + ALIGN - 1) / ALIGN * ALIGN;
    m->params = aligned_alloc(ALIGN, pbytes);
    m->grads = aligned_alloc(ALIGN, pbytes);
    if (!m->enc_sizes || !m->dec_sizes || !m->layers || !m->params || !m->grads) {
        free_model(m);
        return vibi_fail(VIB_ERR_NOMEM, "%s: cannot allocate %zu parameters", fn, num_params);
    }
    if (n_enc > 0)
        memcpy(m->enc_sizes, enc_hidden, n_enc * sizeof(size_t));
    if (n_dec > 0)
        memcpy(m->dec_sizes, dec_hidden, n_dec * sizeof(size_t));
    memset(m->grads, 0, num_params * sizeof(float));

    vib_rng *init_rng = NULL;
    rc = vib_rng_create(seed, &init_rng);
    if (rc == VIB_OK)
        rc = vib_rng_create(NOISE_SEED(seed), &m->noise);
    if (rc == VIB_OK)
        rc = vib_rng_create(PREDICT_SEED(seed), &m->predict_noise);
    size_t off = 0;
    for (size_t l = 0; rc == VIB_OK && l < n_layers; l++) {
        vibi_layer *L = &m->layers[l];
        layer_dims(input_dim, n_enc, enc_hidden, latent_dim, head_out, n_dec, dec_hidden,
                   classes, l, &L->in, &L->out);
        L->w = m->params + off, L->dw = m->grads + off;
        off += L->in * L->out;
        L->b = m->params + off, L->db = m->grads + off;
        off += L->out;
        rc = vibi_layer_init(L, layer_is_relu(m, l) ? VIB_INIT_HE : VIB_INIT_LECUN, init_rng);
    }
    vib_rng_free(init_rng);
    if (rc != VIB_OK) {
        free_model(m);
        return rc;
    }
    if (full) { /* start L diagonal (near-deterministic, like the diagonal head): the
                 * off-diagonal outputs' weights start at 0 and are learned from there */
        const vibi_layer *hl = &m->layers[n_enc];
        for (size_t i = 1; i < latent_dim; i++)
            for (size_t j = 0; j < i; j++)
                for (size_t r = 0; r < hl->in; r++)
                    hl->w[r * hl->out + latent_dim + tri(i, j)] = 0.0f;
    }
    *out = m;
    return VIB_OK;
}

/* ---- settings and getters ------------------------------------------------------- */

static int need_model(const char *fn, const vib_model *m)
{
    return m ? VIB_OK : vibi_fail(VIB_ERR_INVALID_ARG, "%s: model is NULL", fn);
}

int vib_model_set_beta(vib_model *model, float beta)
{
    int rc = need_model("vib_model_set_beta", model);
    if (rc != VIB_OK)
        return rc;
    if (!isfinite(beta))
        return vibi_fail(VIB_ERR_NUMERIC, "vib_model_set_beta: beta = %g is not finite",
                         (double)beta);
    if (beta < 0.0f)
        return vibi_fail(VIB_ERR_INVALID_ARG, "vib_model_set_beta: beta = %g is negative",
                         (double)beta);
    model->beta = beta;
    return VIB_OK;
}

int vib_model_set_sigma_offset(vib_model *model, float offset)
{
    int rc = need_model("vib_model_set_sigma_offset", model);
    if (rc != VIB_OK)
        return rc;
    if (!isfinite(offset))
        return vibi_fail(VIB_ERR_NUMERIC, "vib_model_set_sigma_offset: offset = %g is not finite",
                         (double)offset);
    model->offset = offset;
    return VIB_OK;
}

int vib_model_set_deterministic(vib_model *model, int deterministic)
{
    int rc = need_model("vib_model_set_deterministic", model);
    if (rc != VIB_OK)
        return rc;
    if (deterministic != 0 && deterministic != 1)
        return vibi_fail(VIB_ERR_INVALID_ARG,
                         "vib_model_set_deterministic: deterministic = %d is not 0 or 1",
                         deterministic);
    model->deterministic = deterministic;
    return VIB_OK;
}

int vib_model_reseed(vib_model *model, uint64_t seed)
{
    int rc = need_model("vib_model_reseed", model);
    if (rc == VIB_OK)
        rc = vib_rng_seed(model->noise, NOISE_SEED(seed));
    return rc != VIB_OK ? rc : vib_rng_seed(model->predict_noise, PREDICT_SEED(seed));
}

float vib_model_beta(const vib_model *model)
{
    return model ? model->beta : 0.0f;
}

float vib_model_sigma_offset(const vib_model *model)
{
    return model ? model->offset : 0.0f;
}

int vib_model_deterministic(const vib_model *model)
{
    return model ? model->deterministic : 0;
}

size_t vib_model_input_dim(const vib_model *model)
{
    return model ? model->input_dim : 0;
}

size_t vib_model_latent_dim(const vib_model *model)
{
    return model ? model->k : 0;
}

size_t vib_model_classes(const vib_model *model)
{
    return model ? model->classes : 0;
}

uint32_t vib_model_flags(const vib_model *model)
{
    return model ? model->flags : 0;
}

size_t vib_model_num_params(const vib_model *model)
{
    return model ? model->num_params : 0;
}

float *vib_model_params(vib_model *model)
{
    return model ? model->params : NULL;
}

float *vib_model_grads(vib_model *model)
{
    return model ? model->grads : NULL;
}

void vibi_model_arch(const vib_model *m, size_t *n_enc, const size_t **enc, size_t *n_dec,
                     const size_t **dec, uint64_t *seed)
{
    *n_enc = m->n_enc, *enc = m->enc_sizes;
    *n_dec = m->n_dec, *dec = m->dec_sizes;
    *seed = m->seed;
}

int vib_model_describe(const vib_model *model, char *buf, size_t len)
{
    static const char fn[] = "vib_model_describe";
    int rc = need_model(fn, model);
    if (rc != VIB_OK)
        return rc;
    if (buf == NULL || len == 0)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: buf is NULL or len is 0", fn);
    char tmp[1024];
    size_t n = 0;
    /* n never passes sizeof tmp - 1, so tmp + n stays inside the buffer */
#define PUT(...)                                                                           \
    do {                                                                                   \
        int w_ = snprintf(tmp + n, sizeof tmp - n, __VA_ARGS__);                           \
        n = w_ < 0 ? n : (n + (size_t)w_ < sizeof tmp ? n + (size_t)w_ : sizeof tmp - 1);  \
    } while (0)
    PUT("%zu", model->input_dim);
    for (size_t i = 0; i < model->n_enc; i++)
        PUT("-%zu", model->enc_sizes[i]);
    PUT(" | K=%zu%s | decoder ", model->k,
        (model->flags & VIB_MODEL_FULL_COV) ? " full-cov" : "");
    for (size_t i = 0; i < model->n_dec; i++)
        PUT("%zu-", model->dec_sizes[i]);
    PUT("%zu | ", model->classes);
    if (model->deterministic)
        PUT("deterministic");
    else
        PUT("beta=%g", (double)model->beta);
#undef PUT
    snprintf(buf, len, "%s", tmp);
    return VIB_OK;
}

/* ---- workspace ------------------------------------------------------------------ */

/* Floats of workspace for `rows` rows: every layer's output, v, z, dz, two ping-pong
 * gradient buffers. */
static size_t ws_floats(const vib_model *m, size_t rows)
{
    size_t per_row = 3 * m->k + 2 * m->max_width;
    for (size_t l = 0; l < m->n_layers; l++)
        per_row += m->layers[l].out;
    return rows * per_row;
}

static int reserve(vib_model *m, const char *fn, size_t rows)
{
    if (rows <= m->cap_rows)
        return VIB_OK;
    size_t floats = ws_floats(m, rows);
    if (floats / rows != ws_floats(m, 1) || floats > SIZE_MAX / 2 / sizeof(float))
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: batch %zu is too large", fn, rows);
    size_t bytes = (floats * sizeof(float) + ALIGN - 1) / ALIGN * ALIGN;
    float *ws = aligned_alloc(ALIGN, bytes);
    if (ws == NULL)
        return vibi_fail(VIB_ERR_NOMEM, "%s: cannot allocate %zu bytes of workspace", fn, bytes);
    free(m->ws);
    m->ws = ws;
    m->cap_rows = rows;
    return VIB_OK;
}

int vib_model_reserve(vib_model *model, size_t max_batch)
{
    static const char fn[] = "vib_model_reserve";
    int rc = need_model(fn, model);
    if (rc != VIB_OK)
        return rc;
    if (max_batch == 0)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: max_batch is 0", fn);
    return reserve(model, fn, max_batch);
}

/* Carve the workspace for `rows` rows; act must have n_layers slots. */
static views carve(const vib_model *m, size_t rows, float **act)
{
    views w;
    float *p = m->ws;
    w.act = act;
    for (size_t l = 0; l < m->n_layers; l++) {
        act[l] = p;
        p += rows * m->layers[l].out;
    }
    w.v = p, p += rows * m->k;
    w.z = p, p += rows * m->k;
    w.dz = p, p += rows * m->k;
    w.ga = p, p += rows * m->max_width;
    w.gb = p;
    return w;
}

/* ---- forward and backward ------------------------------------------------------- */

static int check_batch(const char *fn, const vib_model *m, size_t batch, const float *x)
{
    int rc = need_model(fn, m);
    if (rc != VIB_OK)
        return rc;
    if (batch == 0)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: batch is 0", fn);
    if (x == NULL)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: x is NULL", fn);
    size_t n;
    if (!vibi_mul_size(batch, m->input_dim, &n))
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: batch %zu is too large", fn, batch);
    return vibi_check_finite(fn, "x", n, x);
}

/* Layers [first, last] over `rows` rows, reading `in` and writing act[]. */
static void forward_layers(const vib_model *m, size_t first, size_t last, size_t rows,
                           const float *in, float **act)
{
    for (size_t l = first; l <= last; l++) {
        vibi_layer_forward(&m->layers[l], rows, in, act[l], layer_is_relu(m, l));
        in = act[l];
    }
}

/* dx = dx where the ReLU output a > 0, else 0, and db = the column sums of the result:
 * the gradient at a ReLU layer's output, and that layer's bias gradient, in one pass. */
VIB_CLONES static void relu_mask_colsum(size_t rows, size_t cols, size_t ld,
                                        const float *restrict a, float *restrict dx,
                                        float *restrict db)
{
    memset(db, 0, cols * sizeof(float));
    for (size_t r = 0; r < rows; r++) {
        const float *ar = a + r * ld;
        float *dr = dx + r * ld;
#pragma omp simd
        for (size_t j = 0; j < cols; j++) {
            const float g = ar[j] > 0.0f ? dr[j] : 0.0f;
            dr[j] = g;
            db[j] += g;
        }
    }
}

/* relu_mask_colsum with the columns split across the threads (in whole cache lines):
 * each column's sum runs over the rows in order whatever the split, so the bits do not
 * depend on the thread count. */
static void relu_mask_colsum_par(size_t rows, size_t cols, const float *a, float *dx,
                                 float *db)
{
#pragma omp parallel num_threads(vibi_threads()) if (rows * cols >= VIBI_PAR_ELEMS)
    {
        size_t c0, c1;
        vibi_share(cols, 16, &c0, &c1);
        if (c0 < c1)
            relu_mask_colsum(rows, c1 - c0, cols, a + c0, dx + c0, db + c0);
    }
}

/* Backward through layers [first, last] given dL/d(output of last) in `d`, WRITING
 * every weight and bias gradient of those layers (nothing needs zeroing first). Layer l
 * reads act[l - 1] (first_input for the first), a ReLU output for every layer but the
 * first, so the gradient passed down is masked where that output was 0, in the pass
 * that also sums it into the layer below's bias gradient. The gradients in between
 * alternate between ga and gb (d may start in either, or elsewhere); dx_first receives
 * dL/d(input of first) if not NULL. */
static void backward_layers(const vib_model *m, size_t first, size_t last, size_t rows,
                            const float *first_input, float **act, const float *d,
                            float *ga, float *gb, float *dx_first)
{
    vibi_colsum(rows, m->layers[last].out, d, m->layers[last].db, false);
    for (size_t l = last + 1; l-- > first;) {
        const vibi_layer *L = &m->layers[l];
        const float *in = l == first ? first_input : act[l - 1];
        float *dx = l == first ? dx_first : (d == ga ? gb : ga);
        /* dW = in^T d (written, not accumulated) and dx = d W^T */
        vibi_layer_products(L, rows, in, d, dx, false);
        if (l == first)
            break;
        relu_mask_colsum_par(rows, L->in, in, dx, m->layers[l - 1].db);
        d = dx;
    }
}

/* The diagonal head's forward over `rows` rows in float, vectorized: z = mu + sigma v
 * with sigma = softplus(rho + offset), and the KL terms mu^2 + sigma^2 - 1 - 2 log sigma
 * summed per row (log sigma from log softplus, finite when sigma underflows). */
VIB_CLONES static double latent_forward_diag(size_t rows, size_t K, size_t HO, float offset,
                                             const float *head, const float *v, float *z)
{
    double kl = 0.0;
    for (size_t r = 0; r < rows; r++) {
        const float *restrict mu = head + r * HO, *restrict rho = mu + K;
        const float *restrict vr = v + r * K;
        float *restrict zr = z + r * K;
        float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
        for (size_t i = 0; i < K; i++) {
            const float x = rho[i] + offset, s = vibi_vsoftplusf(x);
            zr[i] = mu[i] + s * vr[i];
            acc += mu[i] * mu[i] + s * s - 1.0f - 2.0f * vibi_vlog_softplusf(x);
        }
        kl += (double)acc;
    }
    return 0.5 * kl;
}

/* The Gaussian head over `rows` rows, from the head's outputs [mu | rho] (diagonal:
 * sigma = softplus(rho + offset)) or [mu | packed raw L] (full: the diagonal of L through
 * softplus(. + offset), the rest as it is): z = mu + sigma v or z = mu + L v, or z = mu
 * when not sampling. Returns the summed KL to N(0, I) in nats (0 when not sampling):
 * 0.5 sum (mu^2 + sum_j L_ij^2 - 1 - 2 log L_ii), the diagonal case having L = diag sigma. */
static double latent_forward(const vib_model *m, size_t rows, const float *head,
                             const float *v, float *z, bool sample)
{
    const size_t K = m->k, HO = m->head_out;
    const bool full = m->flags & VIB_MODEL_FULL_COV;
    if (sample && !full) {
        /* rows split across the threads; the per-thread KL sums are added in thread
         * order, so the total is the same for the same thread count */
        double part[VIB_MAX_THREADS];
        int used = 1;
#pragma omp parallel num_threads(vibi_threads()) if (rows * K >= VIBI_PAR_ELEMS)
        {
            size_t r0, r1;
            vibi_share(rows, 1, &r0, &r1);
            part[omp_get_thread_num()] = latent_forward_diag(
                r1 - r0, K, HO, m->offset, head + r0 * HO, v + r0 * K, z + r0 * K);
#pragma omp single
            used = omp_get_num_threads();
        }
        double kl = 0.0;
        for (int t = 0; t < used; t++)
            kl += part[t];
        return kl;
    }
    double kl = 0.0;
    for (size_t r = 0; r < rows; r++) {
        const float *mu = head + r * HO, *raw = mu + K, *vr = v + r * K;
        for (size_t i = 0; i < K; i++) {
            if (!sample) {
                z[r * K + i] = mu[i];
                continue;
            }
            double x = (double)raw[full ? tri(i, i) : i] + m->offset;
            double s = vibi_softplus(x), acc = mu[i] + s * vr[i];
            kl += (double)mu[i] * mu[i] + s * s - 1.0 - 2.0 * vibi_log_softplus(x);
            for (size_t j = 0; full && j < i; j++) {
                double l = raw[tri(i, j)];
                acc += l * vr[j];
                kl += l * l;
            }
            z[r * K + i] = (float)acc;
        }
    }
    return 0.5 * kl;
}

/* latent_backward for the diagonal head in float, vectorized:
 *   dmu = dz + w mu,  drho = s' (dz v + w (s - 1/s)) with s' (1/s) = d log s/dx stable. */
VIB_CLONES static void latent_backward_diag(size_t rows, size_t K, size_t HO, float offset,
                                            const float *head, const float *v,
                                            const float *dz, float w, float *dhead)
{
    for (size_t r = 0; r < rows; r++) {
        const float *restrict mu = head + r * HO, *restrict rho = mu + K;
        const float *restrict vr = v + r * K, *restrict g = dz + r * K;
        float *restrict dmu = dhead + r * HO, *restrict drho = dmu + K;
#pragma omp simd
        for (size_t i = 0; i < K; i++) {
            const float x = rho[i] + offset;
            const float s = vibi_vsoftplusf(x), ds = vibi_vsigmoidf(x);
            dmu[i] = g[i] + w * mu[i];
            drho[i] = g[i] * vr[i] * ds + w * (s * ds - vibi_vdlog_softplusf(x));
        }
    }
}

/* dL/d(head outputs) from dL/dz and the KL term with weight w = beta / batch:
 *   dmu_i   = dz_i + w mu_i
 *   dL_ij   = dz_i v_j + w L_ij                           (full, j < i)
 *   drho_i  = (dz_i v_i + w (s - 1/s)) s'    s = L_ii = softplus(x), s' = sigmoid(x),
 * where (1/s) s' = d log s/dx is evaluated stably (it tends to 1 as s underflows). */
static void latent_backward(const vib_model *m, size_t rows, const float *head,
                            const float *v, const float *dz, double w, float *dhead)
{
    const size_t K = m->k, HO = m->head_out;
    const bool full = m->flags & VIB_MODEL_FULL_COV;
    if (!full && !m->deterministic) {
#pragma omp parallel num_threads(vibi_threads()) if (rows * K >= VIBI_PAR_ELEMS)
        {
            size_t r0, r1;
            vibi_share(rows, 1, &r0, &r1);
            latent_backward_diag(r1 - r0, K, HO, m->offset, head + r0 * HO, v + r0 * K,
                                 dz + r0 * K, (float)w, dhead + r0 * HO);
        }
        return;
    }
    for (size_t r = 0; r < rows; r++) {
        const float *mu = head + r * HO, *raw = mu + K, *vr = v + r * K, *g = dz + r * K;
        float *dmu = dhead + r * HO, *draw = dmu + K;
        if (m->deterministic) {
            for (size_t i = 0; i < K; i++)
                dmu[i] = g[i];
            memset(draw, 0, (HO - K) * sizeof(float));
            continue;
        }
        for (size_t i = 0; i < K; i++) {
            dmu[i] = (float)(g[i] + w * mu[i]);
            size_t d = full ? tri(i, i) : i;
            double x = (double)raw[d] + m->offset;
            double s = vibi_softplus(x), ds = vibi_sigmoid(x);
            draw[d] = (float)((double)g[i] * vr[i] * ds + w * (s * ds - vibi_dlog_softplus(x)));
            for (size_t j = 0; full && j < i; j++)
                draw[tri(i, j)] = (float)((double)g[i] * vr[j] + w * raw[tri(i, j)]);
        }
    }
}

/* sigma = softplus(rho + offset) for the diagonal head, [rows x K], vectorized. */
VIB_CLONES static void sigma_diag(size_t rows, size_t K, size_t HO, float offset,
                                  const float *head, float *sigma)
{
    for (size_t r = 0; r < rows; r++) {
        const float *restrict rho = head + r * HO + K;
        float *restrict o = sigma + r * K;
#pragma omp simd
        for (size_t i = 0; i < K; i++)
            o[i] = vibi_vsoftplusf(rho[i] + offset);
    }
}

/* z = mu + sigma v over [rows x K], mu read from the head's rows. */
VIB_CLONES static void sample_diag(size_t rows, size_t K, size_t HO, const float *head,
                                   const float *sigma, const float *v, float *z)
{
    for (size_t r = 0; r < rows; r++) {
        const float *restrict mu = head + r * HO, *restrict s = sigma + r * K;
        const float *restrict vr = v + r * K;
        float *restrict zr = z + r * K;
#pragma omp simd
        for (size_t i = 0; i < K; i++)
            zr[i] = mu[i] + s[i] * vr[i];
    }
}

/* The posterior's scale for each row, packed as the full factor (K(K+1)/2 per row) when
 * `packed` or the model is full-covariance, else as sigma (K per row). */
static void posterior_scale(const vib_model *m, size_t rows, const float *head, bool packed,
                            float *out)
{
    const size_t K = m->k, HO = m->head_out, T = vib_chol_size(K);
    const bool full = m->flags & VIB_MODEL_FULL_COV;
    const size_t width = packed || full ? T : K;
    if (width == K) {
        sigma_diag(rows, K, HO, m->offset, head, out);
        return;
    }
    for (size_t r = 0; r < rows; r++) {
        const float *raw = head + r * HO + K;
        float *o = out + r * width;
        if (width == T)
            memset(o, 0, T * sizeof(float));
        for (size_t i = 0; i < K; i++) {
            size_t d = full ? tri(i, i) : i;
            /* the diagonal head's sigma in the float arithmetic of its sampling path */
            float s = full ? (float)vibi_softplus((double)raw[d] + m->offset)
                           : vibi_vsoftplusf(raw[d] + m->offset);
            o[width == T ? tri(i, i) : i] = s;
            for (size_t j = 0; full && j < i; j++)
                o[tri(i, j)] = raw[tri(i, j)];
        }
    }
}

int vib_model_gradients(vib_model *model, size_t batch, const float *x, const int32_t *labels,
                        double *ce, double *kl, double *loss)
{
    static const char fn[] = "vib_model_gradients";
    int rc = check_batch(fn, model, batch, x);
    if (rc != VIB_OK)
        return rc;
    vib_model *m = model;
    if (labels == NULL)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: labels is NULL", fn);
    for (size_t r = 0; r < batch; r++)
        if (labels[r] < 0 || (size_t)labels[r] >= m->classes)
            return vibi_fail(VIB_ERR_INVALID_ARG, "%s: labels[%zu] = %d is outside [0, %zu)",
                             fn, r, (int)labels[r], m->classes);
    if ((rc = reserve(m, fn, batch)) != VIB_OK)
        return rc;
    float *act[130];
    views w = carve(m, batch, act);
    const size_t K = m->k, C = m->classes, H = head_index(m), last = m->n_layers - 1;

    /* forward */
    forward_layers(m, 0, H, batch, x, act);
    if (!m->deterministic && (rc = vib_rng_normal(m->noise, batch * K, 0.0f, 1.0f, w.v)) != VIB_OK)
        return rc;
    double kl_sum = latent_forward(m, batch, act[H], w.v, w.z, !m->deterministic);
    forward_layers(m, H + 1, last, batch, w.z, act);
    double ce_sum = 0.0;
    float *dlogits = act[last]; /* the logits are consumed row by row, then replaced */
    const double inv_b = 1.0 / (double)batch;
    for (size_t r = 0; r < batch; r++) {
        float *l = act[last] + r * C;
        ce_sum += vibi_softmax_row(C, l, labels[r], l); /* l now holds the probabilities */
        dlogits[r * C + (size_t)labels[r]] -= 1.0f;      /* d ce / d logits = p - onehot */
        for (size_t c = 0; c < C; c++)
            dlogits[r * C + c] = (float)(dlogits[r * C + c] * inv_b);
    }
    double mean_ce = ce_sum * inv_b, mean_kl = m->deterministic ? 0.0 : kl_sum * inv_b;
    double total = mean_ce + (m->deterministic ? 0.0 : (double)m->beta * mean_kl);
    if (!isfinite(total))
        return vibi_fail(VIB_ERR_NUMERIC, "%s: the loss is not finite (CE %g, KL %g): diverged?",
                         fn, mean_ce, mean_kl);

    /* backward: decoder, the head, encoder; every gradient is written, none added to */
    backward_layers(m, H + 1, last, batch, w.z, act, dlogits, w.ga, w.gb, w.dz);
    float *dhead = w.gb;
    latent_backward(m, batch, act[H], w.v, w.dz, (double)m->beta * inv_b, dhead);
    backward_layers(m, 0, H, batch, x, act, dhead, w.ga, w.gb, NULL);

    if (ce) *ce = mean_ce;
    if (kl) *kl = mean_kl;
    if (loss) *loss = total;
    return VIB_OK;
}

/* Encoder and head over `batch` rows of x into the workspace: the shared start of
 * encode, encode_chol and predict. */
static int run_encoder(vib_model *m, const char *fn, size_t batch, const float *x,
                       float **act, views *w)
{
    int rc = check_batch(fn, m, batch, x);
    if (rc != VIB_OK)
        return rc;
    if ((rc = reserve(m, fn, batch)) != VIB_OK)
        return rc;
    *w = carve(m, batch, act);
    forward_layers(m, 0, head_index(m), batch, x, act);
    return VIB_OK;
}

static void copy_mu(const vib_model *m, size_t batch, const float *head, float *mu)
{
    for (size_t r = 0; r < batch; r++)
        memcpy(mu + r * m->k, head + r * m->head_out, m->k * sizeof(float));
}

int vib_model_encode(vib_model *model, size_t batch, const float *x, float *mu, float *sigma)
{
    static const char fn[] = "vib_model_encode";
    if (model && batch && (mu == NULL || sigma == NULL))
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: %s is NULL", fn, mu ? "sigma" : "mu");
    float *act[130];
    views w;
    int rc = run_encoder(model, fn, batch, x, act, &w);
    if (rc != VIB_OK)
        return rc;
    const size_t K = model->k, H = head_index(model);
    copy_mu(model, batch, act[H], mu);
    if (model->deterministic) {
        memset(sigma, 0, batch * K * sizeof(float));
    } else if (model->flags & VIB_MODEL_FULL_COV) {
        /* the marginal std: sqrt((L L^T)_ii) = the norm of row i of L */
        const size_t T = vib_chol_size(K);
        posterior_scale(model, batch, act[H], true, w.ga);
        for (size_t r = 0; r < batch; r++)
            for (size_t i = 0; i < K; i++) {
                double q = 0.0;
                for (size_t j = 0; j <= i; j++)
                    q += (double)w.ga[r * T + tri(i, j)] * w.ga[r * T + tri(i, j)];
                sigma[r * K + i] = (float)sqrt(q);
            }
    } else {
        posterior_scale(model, batch, act[H], false, sigma);
    }
    return VIB_OK;
}

int vib_model_encode_chol(vib_model *model, size_t batch, const float *x, float *mu,
                          float *chol)
{
    static const char fn[] = "vib_model_encode_chol";
    if (model && batch && (mu == NULL || chol == NULL))
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: %s is NULL", fn, mu ? "chol" : "mu");
    float *act[130];
    views w;
    int rc = run_encoder(model, fn, batch, x, act, &w);
    if (rc != VIB_OK)
        return rc;
    copy_mu(model, batch, act[head_index(model)], mu);
    if (model->deterministic)
        memset(chol, 0, batch * vib_chol_size(model->k) * sizeof(float));
    else
        posterior_scale(model, batch, act[head_index(model)], true, chol);
    return VIB_OK;
}

/* prob = softmax(l) row by row (first) or prob += it, in float with the vectorized exp;
 * l is overwritten with e^(l - max). Prediction evaluates this for every sample of every
 * row, where libm's double exp was most of the time after the products. */
VIB_CLONES static void softmax_add(size_t rows, size_t C, float *l, float *prob, bool first)
{
    for (size_t r = 0; r < rows; r++) {
        float *restrict lr = l + r * C, *restrict pr = prob + r * C;
        float mx = lr[0];
        for (size_t c = 1; c < C; c++)
            mx = lr[c] > mx ? lr[c] : mx;
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (size_t c = 0; c < C; c++) {
            lr[c] = vibi_vexpf(lr[c] - mx);
            sum += lr[c];
        }
        const float inv = 1.0f / sum; /* sum >= 1: the max's term is e^0 */
        if (first) {
#pragma omp simd
            for (size_t c = 0; c < C; c++)
                pr[c] = lr[c] * inv;
        } else {
#pragma omp simd
            for (size_t c = 0; c < C; c++)
                pr[c] += lr[c] * inv;
        }
    }
}

int vib_model_predict(vib_model *model, size_t batch, const float *x, size_t samples,
                      float *prob)
{
    static const char fn[] = "vib_model_predict";
    if (model && batch && x && prob == NULL)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: prob is NULL", fn);
    if (samples > 100000)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: %zu samples is too many", fn, samples);
    vib_model *m = model;
    float *act[130];
    views w;
    int rc = run_encoder(m, fn, batch, x, act, &w);
    if (rc != VIB_OK)
        return rc;
    const size_t K = m->k, C = m->classes, H = head_index(m), last = m->n_layers - 1;
    const bool full = m->flags & VIB_MODEL_FULL_COV;

    /* z = mu for the posterior mean; otherwise average softmax(decoder(z_s)) over the
     * samples, one batch of draws at a time, in the caller's prob array. The scale
     * (sigma, or the packed L) is the same for every draw: compute it once, into ga. */
    const bool at_mean = samples == 0 || m->deterministic;
    const size_t draws = at_mean ? 1 : samples, T = vib_chol_size(K);
    float *scale = w.ga;
    if (!at_mean)
        posterior_scale(m, batch, act[H], false, scale);
    for (size_t s = 0; s < draws; s++) {
        if (at_mean) {
            copy_mu(m, batch, act[H], w.z);
        } else {
            if ((rc = vib_rng_normal(m->predict_noise, batch * K, 0.0f, 1.0f, w.v)) != VIB_OK)
                return rc;
            if (!full) /* z = mu + sigma v */
                sample_diag(batch, K, m->head_out, act[H], scale, w.v, w.z);
            else /* z = mu + L v */
                for (size_t r = 0; r < batch; r++) {
                    const float *mu = act[H] + r * m->head_out, *v = w.v + r * K;
                    for (size_t i = 0; i < K; i++) {
                        double acc = mu[i];
                        for (size_t j = 0; j <= i; j++)
                            acc += (double)scale[r * T + tri(i, j)] * v[j];
                        w.z[r * K + i] = (float)acc;
                    }
                }
        }
        forward_layers(m, H + 1, last, batch, w.z, act);
        softmax_add(batch, C, act[last], prob, s == 0);
    }
    if (draws > 1)
        for (size_t i = 0; i < batch * C; i++)
            prob[i] = (float)(prob[i] / (double)draws);
    return VIB_OK;
}
