/*
 * model.c - the VIB classifier's lifecycle: its architecture checked in one place,
 * creation and loading's allocation, settings and getters, its description, and the
 * workspace its passes run in. The passes are in model_pass.c, the Gaussian head over
 * a batch in model_head.c; the layer order is in model.h.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

/* Noise comes from its own stream, offset from the weights' seed, so restarting the
 * noise with the model's seed does not replay the draws that made the weights. */
#define NOISE_SEED(seed) ((seed) ^ 0x6a09e667f3bcc909ULL)
/* Prediction draws from a third stream, so evaluating a model between training steps
 * (as train_mnist does every epoch) never changes the noise training sees. */
#define PREDICT_SEED(seed) ((seed) ^ 0xbb67ae8584caa73bULL)

/* ---- the architecture ----------------------------------------------------------- */

/* The output size of layer l. */
static size_t layer_out(const vibi_arch *a, size_t l)
{
    const size_t h = vibi_arch_head(a);
    if (l < h)
        return a->enc[l];
    if (l == h)
        return a->head_out;
    if (l < h + 1 + a->n_dec)
        return a->dec[l - h - 1];
    return a->classes;
}

void vibi_arch_layer(const vibi_arch *a, size_t l, size_t *in, size_t *out)
{
    if (l == 0)
        *in = a->input_dim;
    else if (l == vibi_arch_head(a) + 1)
        *in = a->k; /* the decoder reads z, not the head's outputs */
    else
        *in = layer_out(a, l - 1);
    *out = layer_out(a, l);
}

/* a += b, false on overflow */
static bool add_size(size_t *a, size_t b)
{
    return !__builtin_add_overflow(*a, b, a);
}

int vibi_arch_check(const char *fn, bool from_file, vibi_arch *a)
{
    /* A file that describes an impossible model is a malformed file. */
    const int bad = from_file ? VIB_ERR_FORMAT : VIB_ERR_INVALID_ARG;
    const int big = from_file ? VIB_ERR_FORMAT : VIB_ERR_NOMEM;
    if (a->input_dim == 0 || a->k == 0 || a->classes < 2)
        return vibi_fail(bad, "%s: need input_dim > 0, latent_dim > 0, classes >= 2 (got %zu, %zu, %zu)",
                         fn, a->input_dim, a->k, a->classes);
    if (a->n_enc > VIBI_MAX_HIDDEN || a->n_dec > VIBI_MAX_HIDDEN)
        return vibi_fail(bad, "%s: %zu encoder and %zu decoder layers: at most %d per side", fn,
                         a->n_enc, a->n_dec, VIBI_MAX_HIDDEN);
    if (a->input_dim > VIBI_MAX_DIM || a->k > VIBI_MAX_DIM || a->classes > VIBI_MAX_DIM)
        return vibi_fail(bad, "%s: a size exceeds 2^24 (input_dim %zu, latent_dim %zu, classes %zu)",
                         fn, a->input_dim, a->k, a->classes);
    if (a->flags & ~(uint32_t)VIB_MODEL_FULL_COV)
        return vibi_fail(bad, "%s: unknown flags 0x%x", fn, (unsigned)a->flags);
    if (vibi_arch_full(a) && a->k > VIBI_MAX_FULL_K)
        return vibi_fail(bad, "%s: a full covariance needs latent_dim <= %d, got %zu", fn,
                         VIBI_MAX_FULL_K, a->k);
    for (size_t i = 0; i < a->n_enc + a->n_dec; i++) {
        const bool enc = i < a->n_enc;
        const size_t j = enc ? i : i - a->n_enc, d = enc ? a->enc[j] : a->dec[j];
        if (d == 0 || d > VIBI_MAX_DIM)
            return vibi_fail(bad, "%s: %s_hidden[%zu] = %zu is outside [1, 2^24]", fn,
                             enc ? "enc" : "dec", j, d);
    }
    if (a->components > VIBI_MAX_COMPONENTS)
        return vibi_fail(bad, "%s: %zu mixture components: at most %d", fn, a->components,
                         VIBI_MAX_COMPONENTS);
    a->head_out = a->k + (vibi_arch_full(a) ? vib_chol_size(a->k) : a->k);
    a->n_layers = a->n_enc + a->n_dec + 2;
    a->num_params = 0;
    a->max_width = 0;
    size_t prior; /* M (2K + 1): M <= 1024 and K <= 2^24 keep it well inside size_t */
    if (!vibi_mul_size(a->components, 2 * a->k + 1, &prior))
        return vibi_fail(big, "%s: the parameter count overflows", fn);
    for (size_t l = 0; l < a->n_layers; l++) {
        size_t in, out, nw;
        vibi_arch_layer(a, l, &in, &out);
        if (!vibi_mul_size(in, out, &nw) || !add_size(&a->num_params, nw) ||
            !add_size(&a->num_params, out) ||
            (l == vibi_arch_head(a) && !add_size(&a->num_params, prior)) ||
            a->num_params > SIZE_MAX / 4 / sizeof(float))
            return vibi_fail(big, "%s: the parameter count overflows", fn);
        if (l == vibi_arch_head(a))
            a->prior_at = a->num_params - prior;
        a->max_width = in > a->max_width ? in : a->max_width;
        a->max_width = out > a->max_width ? out : a->max_width;
    }
    return VIB_OK;
}

/* ---- creation ------------------------------------------------------------------- */

void vib_model_free(vib_model *model)
{
    if (model == NULL)
        return;
    free(model->layers);
    free(model->params); /* the gradients share its block */
    free(model->ws);
    free(model->prior_buf);
    vib_rng_free(model->noise);
    vib_rng_free(model->predict_noise);
    free(model);
}

int vibi_model_alloc(const char *fn, const vibi_arch *a, uint64_t seed, vib_model **out)
{
    vib_model *m = calloc(1, sizeof *m);
    if (m == NULL)
        return vibi_fail(VIB_ERR_NOMEM, "%s: cannot allocate the model", fn);
    m->arch = *a;
    m->beta = 1e-3f, m->offset = -5.0f, m->seed = seed;
    m->train_samples = 1, m->objective = VIB_OBJECTIVE_MEAN;
    m->layers = calloc(a->n_layers, sizeof(vibi_layer));
    const size_t bytes = a->num_params * sizeof(float); /* checked by vibi_arch_check */
    void *parts[2];
    m->params = vibi_alloc_parts(2, (const size_t[]){bytes, bytes}, parts);
    int rc = VIB_OK;
    if (m->layers == NULL || m->params == NULL)
        rc = vibi_fail(VIB_ERR_NOMEM, "%s: cannot allocate %zu parameters", fn, a->num_params);
    if (rc == VIB_OK && a->components > 0) {
        /* the marginal's per-pass constants: s and 1/s^2 [M x K], log_w and log_pi [M] */
        const size_t mk = a->components * a->k, M = a->components;
        void *pp[2];
        m->prior_buf = vibi_alloc_parts(2, (const size_t[]){2 * mk * sizeof(float),
                                                            2 * M * sizeof(double)}, pp);
        if (m->prior_buf == NULL)
            rc = vibi_fail(VIB_ERR_NOMEM, "%s: cannot allocate the marginal's constants", fn);
        else {
            m->prior.s = pp[0], m->prior.inv_s2 = (float *)pp[0] + mk;
            m->prior.log_w = pp[1], m->prior.log_pi = (double *)pp[1] + M;
        }
    }
    if (rc == VIB_OK)
        rc = vib_rng_create(NOISE_SEED(seed), &m->noise);
    if (rc == VIB_OK)
        rc = vib_rng_create(PREDICT_SEED(seed), &m->predict_noise);
    if (rc != VIB_OK) {
        vib_model_free(m);
        return rc;
    }
    m->grads = parts[1];
    memset(m->grads, 0, bytes);
    vibi_model_bind(m, m->params);
    *out = m;
    return VIB_OK;
}

/* The one walk of the flat layout (model.h's order, each W then b). */
void vibi_model_bind(vib_model *m, const float *params)
{
    /* The passes only read W and b: an array bound here in place of the model's own (a
     * const average's) is never written through. */
    float *p = (float *)params;
    size_t off = 0;
    for (size_t l = 0; l < m->arch.n_layers; l++) {
        vibi_layer *L = &m->layers[l];
        vibi_arch_layer(&m->arch, l, &L->in, &L->out);
        L->w = p + off, L->dw = m->grads + off;
        off += L->in * L->out;
        L->b = p + off, L->db = m->grads + off;
        off += L->out;
        if (l == vibi_arch_head(&m->arch) && m->arch.components > 0) {
            const size_t mk = m->arch.components * m->arch.k;
            vibi_prior *r = &m->prior;
            r->c = p + off, r->dc = m->grads + off;
            r->raw = p + off + mk, r->draw = m->grads + off + mk;
            r->logit = p + off + 2 * mk, r->dlogit = m->grads + off + 2 * mk;
            off += vibi_arch_prior_params(&m->arch);
        }
    }
}

/* Draw the weights: He for the ReLU layers, LeCun for the head and the output layer,
 * biases 0; a full-covariance head starts with L diagonal (near-deterministic, like
 * the diagonal head): the off-diagonal outputs' weights start at 0. */
static int init_weights(vib_model *m)
{
    const vibi_arch *a = &m->arch;
    vib_rng *rng = NULL;
    TRY(vib_rng_create(m->seed, &rng));
    int rc = VIB_OK;
    const size_t h = vibi_arch_head(a);
    for (size_t l = 0; rc == VIB_OK && l < a->n_layers; l++) {
        const bool relu = l != h && l != a->n_layers - 1;
        rc = vibi_layer_init(&m->layers[l], relu ? VIB_INIT_HE : VIB_INIT_LECUN, rng);
    }
    if (rc == VIB_OK && a->components > 0) {
        /* the marginal: means drawn from N(0, I) after every layer's weights (which are
         * then those of the same model without it), unit scales (raw = softplus^-1(1)),
         * equal weights */
        const size_t mk = a->components * a->k;
        float *c = m->params + a->prior_at;
        rc = vib_rng_normal(rng, mk, 0.0f, 1.0f, c);
        for (size_t i = 0; i < mk; i++)
            c[mk + i] = (float)log(expm1(1.0));
        memset(c + 2 * mk, 0, a->components * sizeof(float));
    }
    vib_rng_free(rng);
    if (rc != VIB_OK || !vibi_arch_full(a))
        return rc;
    const vibi_layer *hl = &m->layers[h];
    for (size_t r = 0; r < hl->in; r++)
        for (size_t i = 1; i < a->k; i++)
            for (size_t j = 0; j < i; j++)
                hl->w[r * hl->out + a->k + vibi_tri(i, j)] = 0.0f;
    return VIB_OK;
}

int vib_model_create(size_t input_dim, size_t n_enc, const size_t *enc_hidden,
                     size_t latent_dim, size_t n_dec, const size_t *dec_hidden,
                     size_t classes, uint64_t seed, vib_model **out)
{
    return vib_model_create_ex(input_dim, n_enc, enc_hidden, latent_dim, n_dec, dec_hidden,
                               classes, 0, seed, out);
}

int vib_model_create_ex(size_t input_dim, size_t n_enc, const size_t *enc_hidden,
                        size_t latent_dim, size_t n_dec, const size_t *dec_hidden,
                        size_t classes, uint32_t flags, uint64_t seed, vib_model **out)
{
    return vib_model_create_mixture(input_dim, n_enc, enc_hidden, latent_dim, n_dec,
                                    dec_hidden, classes, flags, 0, seed, out);
}

int vib_model_create_mixture(size_t input_dim, size_t n_enc, const size_t *enc_hidden,
                             size_t latent_dim, size_t n_dec, const size_t *dec_hidden,
                             size_t classes, uint32_t flags, size_t components, uint64_t seed,
                             vib_model **out)
{
    static const char fn[] = "vib_model_create";
    TRY(vibi_check_ptr(fn, "out", out));
    if (n_enc > 0)
        TRY(vibi_check_ptr(fn, "enc_hidden", enc_hidden));
    if (n_dec > 0)
        TRY(vibi_check_ptr(fn, "dec_hidden", dec_hidden));
    vibi_arch a = {.input_dim = input_dim, .k = latent_dim, .classes = classes,
                   .n_enc = n_enc, .n_dec = n_dec, .flags = flags, .components = components};
    if (n_enc <= VIBI_MAX_HIDDEN && n_dec <= VIBI_MAX_HIDDEN) {
        if (n_enc > 0)
            memcpy(a.enc, enc_hidden, n_enc * sizeof(size_t));
        if (n_dec > 0)
            memcpy(a.dec, dec_hidden, n_dec * sizeof(size_t));
    }
    TRY(vibi_arch_check(fn, false, &a));
    vib_model *m;
    TRY(vibi_model_alloc(fn, &a, seed, &m));
    int rc = init_weights(m);
    if (rc != VIB_OK) {
        vib_model_free(m);
        return rc;
    }
    *out = m;
    return VIB_OK;
}

/* ---- settings and getters ------------------------------------------------------- */

int vib_model_set_beta(vib_model *model, float beta)
{
    static const char fn[] = "vib_model_set_beta";
    TRY(vibi_check_ptr(fn, "model", model));
    if (!isfinite(beta))
        return vibi_fail(VIB_ERR_NUMERIC, "%s: beta = %g is not finite", fn, (double)beta);
    if (beta < 0.0f)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: beta = %g is negative", fn, (double)beta);
    model->beta = beta;
    return VIB_OK;
}

int vib_model_set_sigma_offset(vib_model *model, float offset)
{
    static const char fn[] = "vib_model_set_sigma_offset";
    TRY(vibi_check_ptr(fn, "model", model));
    if (!isfinite(offset))
        return vibi_fail(VIB_ERR_NUMERIC, "%s: offset = %g is not finite", fn, (double)offset);
    model->offset = offset;
    return VIB_OK;
}

int vib_model_set_deterministic(vib_model *model, int deterministic)
{
    static const char fn[] = "vib_model_set_deterministic";
    TRY(vibi_check_ptr(fn, "model", model));
    if (deterministic != 0 && deterministic != 1)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: deterministic = %d is not 0 or 1", fn,
                         deterministic);
    /* back to sampling: room for the draws of the largest batch trained so far, now (a
     * trainer's steps allocate nothing) */
    if (!deterministic && model->train_batch > 0)
        TRY(vibi_model_reserve_train(model, fn, model->train_batch, model->train_samples));
    model->deterministic = deterministic;
    return VIB_OK;
}

int vib_model_set_train_samples(vib_model *model, size_t samples, int objective)
{
    static const char fn[] = "vib_model_set_train_samples";
    TRY(vibi_check_ptr(fn, "model", model));
    if (samples == 0 || samples > VIBI_MAX_TRAIN_SAMPLES)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: samples = %zu is not in [1, %d]", fn, samples,
                         VIBI_MAX_TRAIN_SAMPLES);
    if (objective != VIB_OBJECTIVE_MEAN && objective != VIB_OBJECTIVE_LOGMEANEXP)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: objective = %d is not VIB_OBJECTIVE_MEAN or "
                         "VIB_OBJECTIVE_LOGMEANEXP", fn, objective);
    /* the room for the draws of the largest batch trained so far, now: a trainer's steps
     * allocate nothing, and a failure here changes nothing */
    if (model->train_batch > 0 && !model->deterministic)
        TRY(vibi_model_reserve_train(model, fn, model->train_batch, samples));
    model->train_samples = samples;
    model->objective = objective;
    return VIB_OK;
}

size_t vib_model_train_samples(const vib_model *model)
{
    return model ? model->train_samples : 0;
}

int vib_model_train_objective(const vib_model *model)
{
    return model ? model->objective : 0;
}

int vib_model_reseed(vib_model *model, uint64_t seed)
{
    TRY(vibi_check_ptr("vib_model_reseed", "model", model));
    TRY(vib_rng_seed(model->noise, NOISE_SEED(seed)));
    return vib_rng_seed(model->predict_noise, PREDICT_SEED(seed));
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
    return model ? model->arch.input_dim : 0;
}

size_t vib_model_latent_dim(const vib_model *model)
{
    return model ? model->arch.k : 0;
}

size_t vib_model_classes(const vib_model *model)
{
    return model ? model->arch.classes : 0;
}

uint32_t vib_model_flags(const vib_model *model)
{
    return model ? model->arch.flags : 0;
}

size_t vib_model_prior_components(const vib_model *model)
{
    return model ? model->arch.components : 0;
}

size_t vib_model_num_params(const vib_model *model)
{
    return model ? model->arch.num_params : 0;
}

float *vib_model_params(vib_model *model)
{
    return model ? model->params : NULL;
}

float *vib_model_grads(vib_model *model)
{
    return model ? model->grads : NULL;
}

/* ---- the parameter blocks ---------------------------------------------------- */

size_t vib_model_num_blocks(const vib_model *model)
{
    /* every layer has W and b; a mixture marginal adds its means, scales and logits */
    return model ? 2 * model->arch.n_layers + (model->arch.components > 0 ? 3 : 0) : 0;
}

int vib_model_block(const vib_model *model, size_t b, size_t *offset, size_t *rows,
                    size_t *cols, int *kind, int *role, size_t *index)
{
    static const char fn[] = "vib_model_block";
    TRY(vibi_check_ptr(fn, "model", model));
    const size_t n = vib_model_num_blocks(model);
    if (b >= n)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: block %zu of a model of %zu blocks", fn, b, n);
    const vibi_arch *a = &model->arch;
    const size_t h = vibi_arch_head(a), first = 2 * (h + 1); /* the marginal's first block */
    if (a->components > 0 && b >= first && b < first + 3) {
        const size_t i = b - first, M = a->components;
        if (offset) *offset = a->prior_at + i * M * a->k;
        if (rows) *rows = i < 2 ? M : 1;
        if (cols) *cols = i < 2 ? a->k : M;
        if (kind) *kind = VIB_BLOCK_PRIOR_MEANS + (int)i;
        if (role) *role = VIB_LAYER_PRIOR;
        if (index) *index = 0;
        return VIB_OK;
    }
    if (a->components > 0 && b >= first)
        b -= 3;
    const size_t l = b / 2;
    const vibi_layer *L = &model->layers[l];
    const bool bias = b % 2 == 1;
    /* the views point into params (vib_model_evaluate binds an average only during the call) */
    if (offset) *offset = (size_t)((bias ? L->b : L->w) - model->params);
    if (rows) *rows = bias ? 1 : L->in;
    if (cols) *cols = L->out;
    if (kind) *kind = bias ? VIB_BLOCK_BIAS : VIB_BLOCK_WEIGHTS;
    if (role)
        *role = l < h ? VIB_LAYER_ENCODER
              : l == h ? VIB_LAYER_HEAD
              : l < a->n_layers - 1 ? VIB_LAYER_DECODER : VIB_LAYER_OUTPUT;
    if (index) *index = l < h ? l : l > h && l < a->n_layers - 1 ? l - h - 1 : 0;
    return VIB_OK;
}

int vib_model_describe(const vib_model *model, char *buf, size_t len)
{
    static const char fn[] = "vib_model_describe";
    TRY(vibi_check_ptr(fn, "model", model));
    if (buf == NULL && len > 0)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: buf is NULL, len is %zu", fn, len);
    /* At most 130 sizes of 8 digits and some words: the text always fits tmp. */
    const vibi_arch *a = &model->arch;
    char tmp[2048];
    size_t n = 0;
#define PUT(...) (n += (size_t)snprintf(tmp + n, sizeof tmp - n, __VA_ARGS__))
    PUT("%zu", a->input_dim);
    for (size_t i = 0; i < a->n_enc; i++)
        PUT("-%zu", a->enc[i]);
    PUT(" | K=%zu%s", a->k, vibi_arch_full(a) ? " full-cov" : "");
    if (a->components > 0)
        PUT(" | r(z): %zu-Gaussian mixture", a->components);
    PUT(" | decoder ");
    for (size_t i = 0; i < a->n_dec; i++)
        PUT("%zu-", a->dec[i]);
    PUT("%zu | ", a->classes);
    if (model->deterministic)
        PUT("deterministic");
    else
        PUT("beta=%g", (double)model->beta);
    if (!model->deterministic && model->train_samples > 1)
        PUT(" | %zu train samples%s", model->train_samples,
            model->objective == VIB_OBJECTIVE_LOGMEANEXP ? ", log-mean-exp" : "");
#undef PUT
    return vibi_copy_text(tmp, buf, len);
}

/* ---- workspace ------------------------------------------------------------------ */

/* The head's row scratch of a full-covariance model: L and dL (K(K+1)/2 each) and four
 * rows of K (the diagonal's raw values, its sigma, log sigma and gradient). */
static size_t scratch_floats(const vibi_arch *a)
{
    return vibi_arch_full(a) ? 2 * vib_chol_size(a->k) + 4 * a->k : 0;
}

/* The floats of a row of the dx view: the input gradient, or the head's gradient
 * averaged over the draws (vib_model_input_gradients), whichever is wider. */
static size_t dx_width(const vibi_arch *a)
{
    return a->input_dim > a->head_out ? a->input_dim : a->head_out;
}

/* Floats of workspace per row: every layer's output, v, z, dz, the head's sigma, aux
 * and dsigma, two ping-pong gradient buffers, the dx view, and the responsibilities of
 * a mixture marginal's components. */
static size_t row_floats(const vib_model *m)
{
    size_t per_row = 6 * m->arch.k + 2 * m->arch.max_width + dx_width(&m->arch) +
                     m->arch.components;
    for (size_t l = 0; l < m->arch.n_layers; l++)
        per_row += m->layers[l].out;
    return per_row;
}

int vibi_model_reserve(vib_model *m, const char *fn, size_t rows)
{
    if (rows <= m->cap_rows)
        return VIB_OK;
    size_t floats;
    if (!vibi_mul_size(rows, row_floats(m), &floats) ||
        floats > SIZE_MAX / 2 / sizeof(float) - scratch_floats(&m->arch))
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: batch %zu is too large", fn, rows);
    const size_t bytes = (floats + scratch_floats(&m->arch)) * sizeof(float);
    void *part;
    float *ws = vibi_alloc_parts(1, &bytes, &part);
    if (ws == NULL)
        return vibi_fail(VIB_ERR_NOMEM, "%s: cannot allocate %zu bytes of workspace", fn, bytes);
    free(m->ws);
    m->ws = ws;
    m->cap_rows = rows;
    return VIB_OK;
}

int vibi_model_reserve_train(vib_model *m, const char *fn, size_t batch, size_t draws)
{
    size_t rows;
    if (!vibi_mul_size(batch, draws, &rows))
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: batch %zu is too large", fn, batch);
    return vibi_model_reserve(m, fn, rows);
}

void vibi_model_trained(vib_model *m, size_t batch)
{
    if (batch > m->train_batch)
        m->train_batch = batch;
}

int vib_model_reserve(vib_model *model, size_t max_batch)
{
    static const char fn[] = "vib_model_reserve";
    TRY(vibi_check_ptr(fn, "model", model));
    if (max_batch == 0)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: max_batch is 0", fn);
    /* room for training's draws, even while deterministic (a switch back then needs
     * none): the batches the caller declared are training's */
    TRY(vibi_model_reserve_train(model, fn, max_batch, model->train_samples));
    vibi_model_trained(model, max_batch);
    return VIB_OK;
}

vibi_views vibi_model_views(const vib_model *m, size_t rows, float **act)
{
    vibi_views w;
    float *p = m->ws;
    const size_t K = m->arch.k;
    w.act = act;
    for (size_t l = 0; l < m->arch.n_layers; l++) {
        act[l] = p;
        p += rows * m->layers[l].out;
    }
    w.v = p, p += rows * K;
    w.z = p, p += rows * K;
    w.dz = p, p += rows * K;
    w.sigma = p, p += rows * K;
    w.aux = p, p += rows * K;
    w.dsigma = p, p += rows * K;
    w.ga = p, p += rows * m->arch.max_width;
    w.gb = p, p += rows * m->arch.max_width;
    w.dx = p, p += rows * dx_width(&m->arch);
    w.gamma = p, p += rows * m->arch.components;
    w.scratch = p;
    return w;
}
