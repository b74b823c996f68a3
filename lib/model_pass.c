/*
 * model_pass.c - the model's passes over a batch: the layer stack forward and backward,
 * and the calls built on them (gradients, input gradients, encode, predict, evaluate).
 * The head between encoder and decoder is model_head.c's.
 */
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "vmath.h"

static bool layer_is_relu(const vib_model *m, size_t l)
{
    return l != vibi_arch_head(&m->arch) && l != m->arch.n_layers - 1;
}

/* The most prediction (and input-gradient) samples a call takes. */
#define MAX_SAMPLES 100000

/* model, then `rows` rows of x (the count named `what` in messages): not 0, x not NULL,
 * its size not overflowing, its values finite. */
static int check_rows(const char *fn, const vib_model *m, const char *what, size_t rows,
                      const float *x)
{
    TRY(vibi_check_ptr(fn, "model", m));
    if (rows == 0)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: %s is 0", fn, what);
    TRY(vibi_check_ptr(fn, "x", x));
    size_t n;
    if (!vibi_mul_size(rows, m->arch.input_dim, &n))
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: %s %zu is too large", fn, what, rows);
    return vibi_check_finite(fn, "x", n, x);
}

static int check_batch(const char *fn, const vib_model *m, size_t batch, const float *x)
{
    return check_rows(fn, m, "batch", batch, x);
}

static int check_samples(const char *fn, size_t samples)
{
    if (samples > MAX_SAMPLES)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: %zu samples is too many", fn, samples);
    return VIB_OK;
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
 * the gradient at a ReLU layer's output, and that layer's bias gradient, in one pass.
 * db NULL: the mask alone (a backward without parameter gradients). */
VIB_CLONES static void relu_mask_colsum(size_t rows, size_t cols, size_t ld,
                                        const float *restrict a, float *restrict dx,
                                        float *restrict db)
{
    if (db == NULL) {
        for (size_t r = 0; r < rows; r++) {
            const float *ar = a + r * ld;
            float *dr = dx + r * ld;
#pragma omp simd
            for (size_t j = 0; j < cols; j++)
                dr[j] = ar[j] > 0.0f ? dr[j] : 0.0f;
        }
        return;
    }
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
        if (c0 < c1) /* db NULL (the mask alone) stays NULL in every share */
            relu_mask_colsum(rows, c1 - c0, cols, a + c0, dx + c0, db ? db + c0 : NULL);
    }
}

/* Announce layer l's gradient range, [its W, the next layer's W), to ready (NULL: none). */
static void announce_layer(const vib_model *m, vibi_ready *ready, size_t l)
{
    if (ready == NULL)
        return;
    const size_t lo = (size_t)(m->layers[l].dw - m->grads), n = m->arch.num_params;
    const int r = ready->part(ready->user, m->grads, n, lo, ready->hi);
    if (r != 0 && ready->failed == 0)
        ready->failed = r;
    ready->hi = lo;
}

/* What a backward through the layers computes besides the gradient it passes down. */
enum {
    BACK_PARAMS = 1, /* every weight and bias gradient of the layers, WRITTEN */
    BACK_ADD_DX = 2  /* dx_first accumulated (+=), not written */
};

/* Backward through layers [first, last] given dL/d(output of last) in `d`. With
 * BACK_PARAMS it writes every weight and bias gradient of those layers (nothing needs
 * zeroing first); without, it touches none of them and skips their products. Layer l
 * reads act[l - 1] (first_input for the first), a ReLU output for every layer but the
 * first, so the gradient passed down is masked where that output was 0, in the pass
 * that also sums it into the layer below's bias gradient. The gradients in between
 * alternate between ga and gb (d may start in either, or elsewhere); dx_first receives
 * dL/d(input of first) if not NULL, added to it with BACK_ADD_DX. */
static void backward_layers(const vib_model *m, size_t first, size_t last, size_t rows,
                            const float *first_input, float **act, const float *d,
                            float *ga, float *gb, float *dx_first, unsigned mode,
                            vibi_ready *ready)
{
    const bool params = (mode & BACK_PARAMS) != 0;
    if (params)
        vibi_colsum(rows, m->layers[last].out, d, m->layers[last].db, false);
    for (size_t l = last + 1; l-- > first;) {
        const vibi_layer *L = &m->layers[l];
        const float *in = l == first ? first_input : act[l - 1];
        float *dx = l == first ? dx_first : (d == ga ? gb : ga);
        if (params) { /* dW = in^T d (written, not accumulated) */
            vibi_layer_products(L, rows, in, d, NULL, false);
            /* layer l's W and b are final (b was summed by the layer above, or first) */
            announce_layer(m, ready, l);
        }
        if (dx != NULL) /* dx = d W^T */
            vibi_layer_dx(L, rows, d, dx, l == first && (mode & BACK_ADD_DX));
        if (l == first)
            break;
        relu_mask_colsum_par(rows, L->in, in, dx, params ? m->layers[l - 1].db : NULL);
        d = dx;
    }
}

static void copy_mu(const vib_model *m, size_t batch, const float *head, float *mu)
{
    for (size_t r = 0; r < batch; r++)
        memcpy(mu + r * m->arch.k, head + r * m->arch.head_out, m->arch.k * sizeof(float));
}

/* The training loss's forward from the head's outputs in act[H] (the encoder's pass done)
 * over `batch` checked rows in the workspace w, which has room for batch x D rows, D =
 * vibi_model_draws(m) when noise is drawn, else 1: the samples, decoder, softmax
 * cross-entropy. The D draws of a row are rows r, batch + r, ..., (D - 1) batch + r of
 * everything past the head: act[H]'s first batch rows are copied D - 1 times below
 * themselves, and z = mu + scale v with v drawn from the training stream (draw) in the
 * order of D one-draw passes, or v = 0, which is z = mu with the KL kept (and one
 * draw); a deterministic model takes z = mu and has no KL. The logits in act[last] are
 * replaced by dL/dlogits of the batch mean. Writes the batch means of the CE (the
 * objective's: the draws' mean, or -log of their mean probability) and KL and L = CE +
 * beta KL. A non-finite L is VIB_ERR_NUMERIC, with the training stream put back to
 * *noise_was. */
static int loss_forward_tail(vib_model *m, const char *fn, size_t batch,
                             const int32_t *labels, const vibi_noise *nz, const vibi_views *w,
                             const vibi_rng_state *noise_was, double *ce, double *kl,
                             double *loss)
{
    const size_t K = m->arch.k, C = m->arch.classes, H = vibi_arch_head(&m->arch);
    const size_t last = m->arch.n_layers - 1;
    const size_t D = nz->draw_rows > 0 ? vibi_model_draws(m) : 1, n = D * batch;
    float **act = w->act;
    double kl_sum = 0.0;
    if (m->deterministic) {
        copy_mu(m, batch, act[H], w->z);
    } else {
        if (nz->draw_rows > 0) {
            /* the draws of all draw_rows rows (a global batch's, for a shard of it), D
             * of them one after the other, of which these rows take theirs: row
             * offset + r of each */
            const int rc = vib_rng_normal(m->noise, D * nz->draw_rows * K, 0.0f, 1.0f, w->v);
            if (rc != VIB_OK) {
                vibi_rng_restore(m->noise, noise_was);
                return rc;
            }
            if (nz->offset > 0 || nz->draw_rows != batch)
                for (size_t d = 0; d < D; d++) /* forward in memory: no source overwritten */
                    memmove(w->v + d * batch * K, w->v + (d * nz->draw_rows + nz->offset) * K,
                            batch * K * sizeof(float));
        } else {
            memset(w->v, 0, batch * K * sizeof(float));
        }
        /* the scale and the KL (which does not depend on v) once per row */
        kl_sum = vibi_model_head_forward(m, batch, D, act[H], w->v, w->z, w);
    }
    forward_layers(m, H + 1, last, n, w->z, act);
    double ce_sum = 0.0;
    float *dlogits = act[last]; /* the logits are consumed row by row, then replaced */
    /* the gradient of the mean over nz->norm_rows rows (these, or a global batch's) */
    const double inv_b = 1.0 / (double)batch, inv_norm = 1.0 / (double)nz->norm_rows;
    if (m->objective == VIB_OBJECTIVE_MEAN || D == 1) {
        /* CE = (1/D) sum_d ce_d: each draw's p - onehot, weighted 1/D */
        const double g = inv_norm / (double)D;
        for (size_t r = 0; r < n; r++) {
            float *l = act[last] + r * C;
            const size_t y = (size_t)labels[r % batch];
            ce_sum += vibi_softmax_row(C, l, (int32_t)y, l); /* l now: the probabilities */
            dlogits[r * C + y] -= 1.0f;                       /* d ce / d logits = p - onehot */
            for (size_t c = 0; c < C; c++)
                dlogits[r * C + c] = (float)(dlogits[r * C + c] * g);
        }
        ce_sum /= (double)D;
    } else {
        /* CE = -log((1/D) sum_d e^(-ce_d)); dCE/dce_d = w_d = e^(-ce_d) / sum_d' e^(-ce_d'),
         * the draws' softmax of -ce, so each draw's p - onehot is weighted w_d. The ce_d
         * wait in dz (n floats of its n K), which the backward writes only later. */
        float *ce_d = w->dz;
        for (size_t r = 0; r < n; r++) {
            float *l = act[last] + r * C;
            ce_d[r] = (float)vibi_softmax_row(C, l, labels[r % batch], l);
        }
        for (size_t r = 0; r < batch; r++) {
            double mx = -ce_d[r];
            for (size_t d = 1; d < D; d++)
                mx = -ce_d[d * batch + r] > mx ? -ce_d[d * batch + r] : mx;
            double sum = 0.0;
            for (size_t d = 0; d < D; d++)
                sum += exp(-ce_d[d * batch + r] - mx);
            ce_sum += -(mx + log(sum)) + log((double)D);
            const size_t y = (size_t)labels[r];
            for (size_t d = 0; d < D; d++) {
                const double g = exp(-ce_d[d * batch + r] - mx) / sum * inv_norm;
                float *dl = dlogits + (d * batch + r) * C;
                dl[y] -= 1.0f;
                for (size_t c = 0; c < C; c++)
                    dl[c] = (float)(dl[c] * g);
            }
        }
    }
    const double mean_ce = ce_sum * inv_b, mean_kl = kl_sum * inv_b;
    const double total = mean_ce + (m->deterministic ? 0.0 : (double)m->beta * mean_kl);
    if (!isfinite(total)) {
        vibi_rng_restore(m->noise, noise_was);
        return vibi_fail(VIB_ERR_NUMERIC, "%s: the loss is not finite (CE %g, KL %g): diverged?",
                         fn, mean_ce, mean_kl);
    }
    *ce = mean_ce, *kl = mean_kl, *loss = total;
    return VIB_OK;
}

/* The training loss's forward over `batch` checked rows: the encoder, then
 * loss_forward_tail. */
static int loss_forward(vib_model *m, const char *fn, size_t batch, const float *x,
                        const int32_t *labels, const vibi_noise *nz, const vibi_views *w,
                        const vibi_rng_state *noise_was, double *ce, double *kl, double *loss)
{
    forward_layers(m, 0, vibi_arch_head(&m->arch), batch, x, w->act);
    return loss_forward_tail(m, fn, batch, labels, nz, w, noise_was, ce, kl, loss);
}

/* The decoder's and the head's backward after loss_forward_tail on the same rows (D =
 * draws of them each): dL/d(head outputs) of each row, its draws' shares summed, into
 * w->gb. With params the decoder's weight and bias gradients are WRITTEN (their products
 * over all D x batch rows at once). */
static void tail_backward(vib_model *m, size_t batch, size_t draws, size_t norm_rows,
                          const vibi_views *w, bool params, vibi_ready *ready)
{
    const size_t H = vibi_arch_head(&m->arch), last = m->arch.n_layers - 1;
    backward_layers(m, H + 1, last, draws * batch, w->z, w->act, w->act[last], w->ga, w->gb,
                    w->dz, params ? BACK_PARAMS : 0, ready);
    /* a mixture marginal: the rate's share through z joins dz (weight beta / norm_rows
     * per row, shared by its draws), and its own gradients are written */
    if (m->arch.components > 0)
        vibi_prior_backward(m, draws * batch, w->z, w->gamma,
                            (double)m->beta / ((double)norm_rows * (double)draws), params, w->dz);
    vibi_model_head_backward(m, batch, draws, w->act[H], w->v, w->dz,
                             (double)m->beta * (1.0 / (double)norm_rows), w, w->gb);
}

/* The backward of loss_forward on the same rows: decoder, head, encoder. With params
 * every weight and bias gradient is WRITTEN (none added to) and the encoder stops at its
 * first layer's weights; without, no parameter gradient is touched or computed, and the
 * gradient goes on through the first layer to the input, ADDED into dx. */
static void loss_backward(vib_model *m, size_t batch, size_t draws, size_t norm_rows,
                          const float *x, const vibi_views *w, bool params, float *dx,
                          vibi_ready *ready)
{
    const size_t H = vibi_arch_head(&m->arch);
    const unsigned mode = params ? BACK_PARAMS : BACK_ADD_DX;
    tail_backward(m, batch, draws, norm_rows, w, params, ready);
    backward_layers(m, 0, H, batch, x, w->act, w->gb, w->ga, w->gb, params ? NULL : dx, mode,
                    ready);
}

int vib_model_gradients(vib_model *model, size_t batch, const float *x, const int32_t *labels,
                        double *ce, double *kl, double *loss)
{
    static const char fn[] = "vib_model_gradients";
    TRY(check_batch(fn, model, batch, x));
    vib_model *m = model;
    TRY(vibi_check_ptr(fn, "labels", labels));
    TRY(vibi_check_labels(fn, batch, m->arch.classes, labels));
    const size_t draws = vibi_model_draws(m);
    TRY(vibi_model_reserve_train(m, fn, batch, draws));
    float *act[VIBI_MAX_LAYERS];
    const vibi_views w = vibi_model_views(m, draws * batch, act);
    /* the noise stream is put back if the loss turns out not finite */
    vibi_rng_state noise_was;
    vibi_rng_save(m->noise, &noise_was);
    double mean_ce, mean_kl, total;
    const vibi_noise nz = {.draw_rows = batch, .offset = 0, .norm_rows = batch};
    TRY(loss_forward(m, fn, batch, x, labels, &nz, &w, &noise_was, &mean_ce, &mean_kl, &total));
    loss_backward(m, batch, draws, batch, x, &w, true, NULL, NULL);
    vibi_model_trained(m, batch);
    if (ce) *ce = mean_ce;
    if (kl) *kl = mean_kl;
    if (loss) *loss = total;
    return VIB_OK;
}

int vibi_model_shard_gradients(vib_model *m, const char *fn, size_t rows, const float *x,
                               const int32_t *labels, size_t total, size_t offset,
                               vibi_ready *ready, double *ce, double *kl, double *loss)
{
    const size_t draws = vibi_model_draws(m);
    TRY(vibi_model_reserve_train(m, fn, total, draws));
    float *act[VIBI_MAX_LAYERS];
    const vibi_views w = vibi_model_views(m, draws * total, act); /* the global draw's room */
    vibi_rng_state noise_was;
    vibi_rng_save(m->noise, &noise_was);
    if (rows == 0) { /* no rows here: the stream moves on as the others' does */
        if (!m->deterministic)
            TRY(vib_rng_normal(m->noise, draws * total * m->arch.k, 0.0f, 1.0f, w.v));
        memset(m->grads, 0, m->arch.num_params * sizeof(float));
        *ce = *kl = *loss = 0.0;
        for (size_t l = m->arch.n_layers; l-- > 0;) /* the ranges the others announce */
            announce_layer(m, ready, l);
        vibi_model_trained(m, total);
        return VIB_OK;
    }
    TRY(check_batch(fn, m, rows, x));
    TRY(vibi_check_labels(fn, rows, m->arch.classes, labels));
    const vibi_noise nz = {.draw_rows = total, .offset = offset, .norm_rows = total};
    TRY(loss_forward(m, fn, rows, x, labels, &nz, &w, &noise_was, ce, kl, loss));
    loss_backward(m, rows, draws, total, x, &w, true, NULL, ready);
    vibi_model_trained(m, total);
    return VIB_OK;
}

int vib_model_input_gradients(vib_model *model, size_t batch, const float *x,
                              const int32_t *labels, size_t samples, float *dx, double *loss)
{
    static const char fn[] = "vib_model_input_gradients";
    TRY(check_batch(fn, model, batch, x));
    vib_model *m = model;
    TRY(vibi_check_ptr(fn, "labels", labels));
    TRY(vibi_check_labels(fn, batch, m->arch.classes, labels));
    TRY(vibi_check_ptr(fn, "dx", dx));
    TRY(check_samples(fn, samples));
    const bool draw = samples > 0 && !m->deterministic;
    /* each of the `samples` evaluations of the training loss takes the model's
     * train_samples draws per row (one at z = mu) */
    const size_t per = draw ? vibi_model_draws(m) : 1;
    TRY(vibi_model_reserve_train(m, fn, batch, per));
    float *act[VIBI_MAX_LAYERS];
    const vibi_views w = vibi_model_views(m, per * batch, act);
    const size_t draws = draw ? samples : 1, H = vibi_arch_head(&m->arch);
    const size_t n_head = batch * m->arch.head_out;
    /* The encoder runs once: the draws differ only from the head on, and the encoder's
     * backward is linear in the gradient it receives, so the mean over the draws of
     * dL/d(head outputs) goes through it once (a draw costs the decoder, not the
     * network). That mean gathers in w.dx, and dx is written only once every draw's
     * loss has proved finite. */
    forward_layers(m, 0, H, batch, x, w.act);
    vibi_rng_state noise_was;
    vibi_rng_save(m->noise, &noise_was);
    double sum = 0.0;
    const vibi_noise nz = {.draw_rows = draw ? batch : 0, .offset = 0, .norm_rows = batch};
    for (size_t s = 0; s < draws; s++) {
        double ce, kl, total;
        TRY(loss_forward_tail(m, fn, batch, labels, &nz, &w, &noise_was, &ce, &kl, &total));
        tail_backward(m, batch, per, batch, &w, false, NULL);
        for (size_t i = 0; i < n_head; i++)
            w.dx[i] = s == 0 ? w.gb[i] : w.dx[i] + w.gb[i];
        sum += total;
    }
    if (draws > 1)
        for (size_t i = 0; i < n_head; i++)
            w.dx[i] /= (float)draws;
    backward_layers(m, 0, H, batch, x, w.act, w.dx, w.ga, w.gb, dx, 0, NULL);
    if (loss)
        *loss = sum / (double)draws;
    return VIB_OK;
}

/* Encoder and head over `rows` rows of x: act[H] receives the head's outputs. */
static vibi_views encode_rows(vib_model *m, size_t rows, const float *x, float **act)
{
    const vibi_views w = vibi_model_views(m, rows, act);
    forward_layers(m, 0, vibi_arch_head(&m->arch), rows, x, act);
    return w;
}

/* The checks and the encoder over `batch` rows of x into the workspace: the shared start
 * of encode, encode_chol and predict. */
static int run_encoder(vib_model *m, const char *fn, size_t batch, const float *x,
                       float **act, vibi_views *w)
{
    TRY(check_batch(fn, m, batch, x));
    TRY(vibi_model_reserve(m, fn, batch));
    *w = encode_rows(m, batch, x, act);
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

/* Class probabilities of `rows` rows whose head outputs encode_rows left in the views
 * w, into prob [rows x classes], which may be in the workspace past what a prediction
 * uses (gb). z = mu for the posterior mean; otherwise average softmax(decoder(z_s)) over
 * the samples, one batch of draws from the prediction stream at a time. The scale (sigma,
 * or the packed L) is the same for every draw: computed once, into ga. */
static int predict_rows(vib_model *m, size_t rows, size_t samples, const vibi_views *w,
                        float *prob)
{
    const size_t K = m->arch.k, C = m->arch.classes, H = vibi_arch_head(&m->arch);
    const size_t last = m->arch.n_layers - 1;
    float **act = w->act;
    const bool at_mean = samples == 0 || m->deterministic;
    const size_t draws = at_mean ? 1 : samples;
    float *scale = w->ga;
    if (!at_mean)
        vibi_model_scale(m, rows, act[H], false, w, scale);
    for (size_t s = 0; s < draws; s++) {
        if (at_mean) {
            copy_mu(m, rows, act[H], w->z);
        } else {
            TRY(vib_rng_normal(m->predict_noise, rows * K, 0.0f, 1.0f, w->v));
            vibi_model_sample(m, rows, act[H], scale, w->v, w->z);
        }
        forward_layers(m, H + 1, last, rows, w->z, act);
        softmax_add(rows, C, act[last], prob, s == 0);
    }
    if (draws > 1)
        for (size_t i = 0; i < rows * C; i++)
            prob[i] = (float)(prob[i] / (double)draws);
    return VIB_OK;
}

int vib_model_predict(vib_model *model, size_t batch, const float *x, size_t samples,
                      float *prob)
{
    static const char fn[] = "vib_model_predict";
    if (model && batch && x && prob == NULL)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: prob is NULL", fn);
    TRY(check_samples(fn, samples));
    float *act[VIBI_MAX_LAYERS];
    vibi_views w;
    TRY(run_encoder(model, fn, batch, x, act, &w));
    return predict_rows(model, batch, samples, &w, prob);
}

/* ---- evaluation ----------------------------------------------------------------- */

/* Evaluation predicts this many rows at a time: the workspace it needs stays that of a
 * batch, and the draws of each chunk are those of one vib_model_predict call on it. */
#define EVAL_ROWS 500
/* The draws per row of a mixture marginal's rate estimate in an evaluation. */
#define RATE_DRAWS 4

/* H(Y) in bits of the labels' histogram counts[0..classes) over n rows. */
static double label_entropy(size_t classes, const size_t *counts, size_t n)
{
    double h = 0.0;
    for (size_t c = 0; c < classes; c++)
        if (counts[c] > 0) {
            const double p = (double)counts[c] / (double)n;
            h -= p * log2(p);
        }
    return h;
}

/* The chunks of an evaluation, with the model's layers bound to whatever weights the
 * caller chose: wrong predictions, and the sums of -log2 p(label) and of the KL (nats). */
static int evaluate_rows(vib_model *m, size_t n, const float *x, const int32_t *labels,
                         size_t samples, size_t *wrong, double *ce2_sum, double *kl_sum)
{
    const size_t D = m->arch.input_dim, K = m->arch.k, C = m->arch.classes;
    const size_t H = vibi_arch_head(&m->arch);
    for (size_t r0 = 0; r0 < n; r0 += EVAL_ROWS) {
        const size_t rows = n - r0 < EVAL_ROWS ? n - r0 : EVAL_ROWS;
        float *act[VIBI_MAX_LAYERS];
        const vibi_views w = encode_rows(m, rows, x + r0 * D, act);
        if (!m->deterministic && m->arch.components == 0) {
            /* the KL by the training head's own code: at v = 0 (z = mu, not used) */
            memset(w.v, 0, rows * K * sizeof(float));
            *kl_sum += vibi_model_head_forward(m, rows, 1, act[H], w.v, w.z, &w);
        } else if (!m->deterministic) {
            /* a mixture marginal's rate has no closed form: the training head's estimate,
             * from RATE_DRAWS draws of the prediction stream per row */
            for (size_t e = 0; e < RATE_DRAWS; e++) {
                TRY(vib_rng_normal(m->predict_noise, rows * K, 0.0f, 1.0f, w.v));
                *kl_sum += vibi_model_head_forward(m, rows, 1, act[H], w.v, w.z, &w) /
                           (double)RATE_DRAWS;
            }
        }
        float *prob = w.gb;
        TRY(predict_rows(m, rows, samples, &w, prob));
        for (size_t r = 0; r < rows; r++) {
            const float *p = prob + r * C;
            const size_t y = (size_t)labels[r0 + r];
            size_t best = 0; /* the first of equal maxima */
            for (size_t c = 1; c < C; c++)
                best = p[c] > p[best] ? c : best;
            *wrong += best != y;
            /* a probability that underflowed to 0 counts as FLT_MIN: at most 126 bits (a
             * NaN stays NaN) */
            *ce2_sum -= log2(p[y] < FLT_MIN ? (double)FLT_MIN : (double)p[y]);
        }
    }
    return VIB_OK;
}

int vib_model_evaluate(vib_model *model, const vib_ema *ema, size_t n, const float *x,
                       const int32_t *labels, size_t samples, double *error,
                       double *ce_bits, double *kl_bits, double *izy_bits)
{
    static const char fn[] = "vib_model_evaluate";
    TRY(check_rows(fn, model, "n", n, x));
    vib_model *m = model;
    TRY(vibi_check_ptr(fn, "labels", labels));
    TRY(vibi_check_labels(fn, n, m->arch.classes, labels));
    TRY(check_samples(fn, samples));
    if (ema != NULL && vib_ema_size(ema) != m->arch.num_params)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: ema holds %zu values, the model %zu parameters",
                         fn, vib_ema_size(ema), m->arch.num_params);
    TRY(vibi_model_reserve(m, fn, n < EVAL_ROWS ? n : EVAL_ROWS));
    const size_t C = m->arch.classes;
    size_t *counts = NULL;
    if (izy_bits != NULL) { /* the label histogram, only if H(Y) is asked for */
        const size_t bytes = C * sizeof(size_t); /* C <= 2^24 */
        void *part;
        counts = vibi_alloc_parts(1, &bytes, &part);
        if (counts == NULL)
            return vibi_fail(VIB_ERR_NOMEM, "%s: cannot allocate %zu label counts", fn, C);
        memset(counts, 0, bytes);
        for (size_t r = 0; r < n; r++)
            counts[labels[r]]++;
    }
    /* the average's values stand in for the weights for this call only: the passes read
     * them through the layer views, and the model's own array is never written */
    if (ema != NULL)
        vibi_model_bind(m, vib_ema_values(ema));
    size_t wrong = 0;
    double ce2_sum = 0.0, kl_sum = 0.0;
    const int rc = evaluate_rows(m, n, x, labels, samples, &wrong, &ce2_sum, &kl_sum);
    if (ema != NULL)
        vibi_model_bind(m, m->params);
    const double hy = counts != NULL ? label_entropy(C, counts, n) : 0.0;
    free(counts);
    if (rc != VIB_OK)
        return rc;
    const double inv_n = 1.0 / (double)n, ce = ce2_sum * inv_n;
    if (error) *error = (double)wrong * inv_n;
    if (ce_bits) *ce_bits = ce;
    if (kl_bits) *kl_bits = kl_sum * inv_n / log(2.0); /* nats to bits */
    if (izy_bits) *izy_bits = hy - ce;
    return VIB_OK;
}
