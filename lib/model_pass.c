/*
 * model_pass.c - the model's passes over a batch: the layer stack forward and backward,
 * and the calls built on them (gradients, encode, predict). The head between encoder
 * and decoder is model_head.c's.
 */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "model.h"
#include "vmath.h"

static bool layer_is_relu(const vib_model *m, size_t l)
{
    return l != vibi_arch_head(&m->arch) && l != m->arch.n_layers - 1;
}

static int check_batch(const char *fn, const vib_model *m, size_t batch, const float *x)
{
    TRY(vibi_check_ptr(fn, "model", m));
    if (batch == 0)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: batch is 0", fn);
    TRY(vibi_check_ptr(fn, "x", x));
    size_t n;
    if (!vibi_mul_size(batch, m->arch.input_dim, &n))
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

static void copy_mu(const vib_model *m, size_t batch, const float *head, float *mu)
{
    for (size_t r = 0; r < batch; r++)
        memcpy(mu + r * m->arch.k, head + r * m->arch.head_out, m->arch.k * sizeof(float));
}

int vib_model_gradients(vib_model *model, size_t batch, const float *x, const int32_t *labels,
                        double *ce, double *kl, double *loss)
{
    static const char fn[] = "vib_model_gradients";
    TRY(check_batch(fn, model, batch, x));
    vib_model *m = model;
    TRY(vibi_check_ptr(fn, "labels", labels));
    TRY(vibi_check_labels(fn, batch, m->arch.classes, labels));
    TRY(vibi_model_reserve(m, fn, batch));
    float *act[VIBI_MAX_LAYERS];
    const vibi_views w = vibi_model_views(m, batch, act);
    const size_t K = m->arch.k, C = m->arch.classes, H = vibi_arch_head(&m->arch);
    const size_t last = m->arch.n_layers - 1;

    /* forward; the noise stream is put back if the loss turns out not finite */
    vibi_rng_state noise_was;
    vibi_rng_save(m->noise, &noise_was);
    forward_layers(m, 0, H, batch, x, act);
    double kl_sum = 0.0;
    if (m->deterministic) {
        copy_mu(m, batch, act[H], w.z);
    } else {
        TRY(vib_rng_normal(m->noise, batch * K, 0.0f, 1.0f, w.v));
        kl_sum = vibi_model_head_forward(m, batch, act[H], w.v, w.z, &w);
    }
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
    const double mean_ce = ce_sum * inv_b, mean_kl = kl_sum * inv_b;
    const double total = mean_ce + (m->deterministic ? 0.0 : (double)m->beta * mean_kl);
    if (!isfinite(total)) {
        vibi_rng_restore(m->noise, &noise_was);
        return vibi_fail(VIB_ERR_NUMERIC, "%s: the loss is not finite (CE %g, KL %g): diverged?",
                         fn, mean_ce, mean_kl);
    }

    /* backward: decoder, the head, encoder; every gradient is written, none added to */
    backward_layers(m, H + 1, last, batch, w.z, act, dlogits, w.ga, w.gb, w.dz);
    float *dhead = w.gb;
    vibi_model_head_backward(m, batch, act[H], w.v, w.dz, (double)m->beta * inv_b, &w, dhead);
    backward_layers(m, 0, H, batch, x, act, dhead, w.ga, w.gb, NULL);

    if (ce) *ce = mean_ce;
    if (kl) *kl = mean_kl;
    if (loss) *loss = total;
    return VIB_OK;
}

/* Encoder and head over `batch` rows of x into the workspace: the shared start of
 * encode, encode_chol and predict. */
static int run_encoder(vib_model *m, const char *fn, size_t batch, const float *x,
                       float **act, vibi_views *w)
{
    TRY(check_batch(fn, m, batch, x));
    TRY(vibi_model_reserve(m, fn, batch));
    *w = vibi_model_views(m, batch, act);
    forward_layers(m, 0, vibi_arch_head(&m->arch), batch, x, act);
    return VIB_OK;
}


int vib_model_encode(vib_model *model, size_t batch, const float *x, float *mu, float *sigma)
{
    static const char fn[] = "vib_model_encode";
    if (model && batch && (mu == NULL || sigma == NULL))
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: %s is NULL", fn, mu ? "sigma" : "mu");
    float *act[VIBI_MAX_LAYERS];
    vibi_views w;
    TRY(run_encoder(model, fn, batch, x, act, &w));
    const size_t K = model->arch.k, H = vibi_arch_head(&model->arch);
    copy_mu(model, batch, act[H], mu);
    if (model->deterministic) {
        memset(sigma, 0, batch * K * sizeof(float));
    } else if (vibi_arch_full(&model->arch)) {
        /* the marginal std: sqrt((L L^T)_ii) = the norm of row i of L */
        const size_t T = vib_chol_size(K);
        vibi_model_scale(model, batch, act[H], true, &w, w.ga);
        for (size_t r = 0; r < batch; r++)
            for (size_t i = 0; i < K; i++) {
                const float *li = w.ga + r * T + vibi_tri(i, 0);
                double q = 0.0;
                for (size_t j = 0; j <= i; j++)
                    q += (double)li[j] * li[j];
                sigma[r * K + i] = (float)sqrt(q);
            }
    } else {
        vibi_model_scale(model, batch, act[H], false, &w, sigma);
    }
    return VIB_OK;
}

int vib_model_encode_chol(vib_model *model, size_t batch, const float *x, float *mu,
                          float *chol)
{
    static const char fn[] = "vib_model_encode_chol";
    if (model && batch && (mu == NULL || chol == NULL))
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: %s is NULL", fn, mu ? "chol" : "mu");
    float *act[VIBI_MAX_LAYERS];
    vibi_views w;
    TRY(run_encoder(model, fn, batch, x, act, &w));
    const size_t H = vibi_arch_head(&model->arch);
    copy_mu(model, batch, act[H], mu);
    if (model->deterministic)
        memset(chol, 0, batch * vib_chol_size(model->arch.k) * sizeof(float));
    else
        vibi_model_scale(model, batch, act[H], true, &w, chol);
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
    float *act[VIBI_MAX_LAYERS];
    vibi_views w;
    TRY(run_encoder(m, fn, batch, x, act, &w));
    const size_t K = m->arch.k, C = m->arch.classes, H = vibi_arch_head(&m->arch);
    const size_t last = m->arch.n_layers - 1;

    /* z = mu for the posterior mean; otherwise average softmax(decoder(z_s)) over the
     * samples, one batch of draws at a time, in the caller's prob array. The scale
     * (sigma, or the packed L) is the same for every draw: compute it once, into ga. */
    const bool at_mean = samples == 0 || m->deterministic;
    const size_t draws = at_mean ? 1 : samples;
    float *scale = w.ga;
    if (!at_mean)
        vibi_model_scale(m, batch, act[H], false, &w, scale);
    for (size_t s = 0; s < draws; s++) {
        if (at_mean) {
            copy_mu(m, batch, act[H], w.z);
        } else {
            TRY(vib_rng_normal(m->predict_noise, batch * K, 0.0f, 1.0f, w.v));
            vibi_model_sample(m, batch, act[H], scale, w.v, w.z);
        }
        forward_layers(m, H + 1, last, batch, w.z, act);
        softmax_add(batch, C, act[last], prob, s == 0);
    }
    if (draws > 1)
        for (size_t i = 0; i < batch * C; i++)
            prob[i] = (float)(prob[i] / (double)draws);
    return VIB_OK;
}
