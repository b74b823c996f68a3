/*
 * attacks.h - adversarial attacks on a vib_model and the scores of uncertainty, for the
 * robustness and out-of-distribution experiments: header-only, on libvib's public API
 * (as examples/vib_chain.h), so any program can run them against any model.
 *
 * Why in the examples and not in the library: an attack is an experiment on a model,
 * not a part of one; all it needs from libvib is vib_model_input_gradients (the
 * gradient of the loss with respect to the input, taken here at beta = 0: the
 * cross-entropy's, averaged over S posterior samples, the expectation over the sampling
 * that an attack on a stochastic model must take, or the sampling hides the gradient),
 * and the library's ABI stays what a model needs. An attack sets the model's beta to 0
 * during the call and restores it, so a model must not be shared with another thread
 * while attacked.
 *
 * Attacks (batched: one call over all n rows, no per-image loop around the model):
 *   attack_fgsm  fast gradient sign: x + eps sign(grad), clipped to [lo, hi];
 *   attack_pgd   projected gradient descent in the L-infinity ball of radius eps, from
 *                a uniform random start in the ball, `iters` steps of size `step`;
 *                every iterate is projected onto the ball and the data range;
 *   attack_l2    targeted, in the style of Carlini and Wagner: the smallest L2
 *                perturbation found (Adam, projected onto the box, a search over the
 *                weight c of the cross-entropy towards the target) that makes the model
 *                predict the target.
 * The bound is exact: every output value lies in [fl(x - eps), fl(x + eps)] and in
 * [lo, hi], the box computed in float as the projection computes it.
 *
 * Scores (out-of-distribution detection, calibration):
 *   uncertainty_scores       per input: the rate, the predictive entropy, and 1 - the
 *                            largest probability;
 *   auroc, aupr, fpr_at_tpr  how well a score, higher out of distribution, tells the
 *                            out-of-distribution items from the others;
 *   ece                      the expected calibration error over equal-width bins of
 *                            confidence, with the bins' counts, accuracies and mean
 *                            confidences for a reliability diagram.
 */
#ifndef ATTACKS_H
#define ATTACKS_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vib.h"

#define ATTACKS_FN static __attribute__((unused))

/* The projection of v onto the ball of radius eps around x and onto [lo, hi]. */
static inline float attack_project(float v, float x, float eps, float lo, float hi)
{
    const float a = fmaxf(x - eps, lo), b = fminf(x + eps, hi);
    return fminf(fmaxf(v, a), b);
}

static inline float attack_sign(float g)
{
    return (g > 0.0f) - (g < 0.0f);
}

/* The gradient of the cross-entropy alone, dCE/dx of the batch mean, averaged over
 * `samples` posterior samples: what the attacks climb (or, towards a target, descend).
 * vib_model_input_gradients differentiates CE + beta KL, so beta is 0 for the call and
 * then restored; the rate's pull on the input is no part of what an adversary wants. */
static inline int attack_ce_gradients(vib_model *m, size_t n, const float *x, const int32_t *y,
                                      size_t samples, float *grad)
{
    const float beta = vib_model_beta(m);
    int rc = vib_model_set_beta(m, 0.0f);
    if (rc == VIB_OK)
        rc = vib_model_input_gradients(m, n, x, y, samples, grad, NULL);
    vib_model_set_beta(m, beta); /* the value it held, so valid */
    return rc;
}

/* FGSM: x_adv = clip(x + eps sign(dL/dx)) for the true labels y, the gradient averaged
 * over `samples` posterior samples (0: z = mu). grad is scratch of n * dim floats.
 * Returns vib_model_input_gradients' status (x_adv untouched on failure). */
ATTACKS_FN int attack_fgsm(vib_model *m, size_t n, const float *x, const int32_t *y, float eps,
                           float lo, float hi, size_t samples, float *grad, float *x_adv)
{
    const size_t dim = vib_model_input_dim(m);
    const int rc = attack_ce_gradients(m, n, x, y, samples, grad);
    if (rc != VIB_OK)
        return rc;
    for (size_t i = 0; i < n * dim; i++)
        x_adv[i] = attack_project(x[i] + eps * attack_sign(grad[i]), x[i], eps, lo, hi);
    return VIB_OK;
}

/* PGD in the L-infinity ball: a start drawn uniformly in the ball (from rng; NULL: start
 * at x; also at x for eps = 0, a ball of one point), then `iters` steps
 * x <- project(x + step sign(dL/dx)), each gradient averaged over `samples` posterior
 * samples. grad is scratch of n * dim floats. */
ATTACKS_FN int attack_pgd(vib_model *m, size_t n, const float *x, const int32_t *y, float eps,
                          float step, size_t iters, float lo, float hi, size_t samples,
                          vib_rng *rng, float *grad, float *x_adv)
{
    const size_t dim = vib_model_input_dim(m), len = n * dim;
    if (rng != NULL && eps > 0.0f) {
        const int rc = vib_rng_uniform(rng, len, -eps, eps, grad); /* the start's offsets */
        if (rc != VIB_OK)
            return rc;
        for (size_t i = 0; i < len; i++)
            x_adv[i] = attack_project(x[i] + grad[i], x[i], eps, lo, hi);
    } else {
        memcpy(x_adv, x, len * sizeof(float));
    }
    for (size_t t = 0; t < iters; t++) {
        const int rc = attack_ce_gradients(m, n, x_adv, y, samples, grad);
        if (rc != VIB_OK)
            return rc;
        for (size_t i = 0; i < len; i++)
            x_adv[i] = attack_project(x_adv[i] + step * attack_sign(grad[i]), x[i], eps, lo, hi);
    }
    return VIB_OK;
}

/* A targeted L2 attack in the style of Carlini and Wagner: for each row, the smallest
 * perturbation found that makes the model predict target[r]. x' minimizes
 * |x' - x|^2 + c CE(x', target) by Adam (step 0.005 (hi - lo)) for `iters` steps from
 * x, projected onto [lo, hi] after each, the gradient of the cross-entropy averaged over
 * `samples` posterior samples. c starts at c0 and is searched per row over `searches`
 * rounds: bisected towards the last success, times 10 after a failure while none has
 * come (a model whose input gradient is small needs a c some decades up). A row
 * succeeds when the prediction with `judge` samples (z = mu for 0) gives the target a
 * probability above every other class's by more than kappa: the decision of the model
 * as it is used, whatever the attack's gradient; kappa > 0 keeps a stochastic
 * prediction's success from resting on the boundary, where a new draw of its noise
 * undoes it half the time.
 * x_adv receives each row's best success (x itself if none), dist2[r] its squared L2
 * distance (INFINITY if none). scratch: 4 n dim + n (classes + 3) floats. Returns the
 * first failing libvib status.
 *
 * Why a projection and not Carlini and Wagner's x' = tanh(w) box: MNIST's background
 * sits at the end of the box, where w = atanh(+-0.999999) = +-7.25 and dx'/dw = 2e-6;
 * Adam moves w by about its step a step, so those pixels stay put for hundreds of steps
 * (measured on a trained MLP: 5.5% success in 5 rounds of 100 steps, against 100%). */
ATTACKS_FN int attack_l2(vib_model *m, size_t n, const float *x, const int32_t *target, float c0,
                         size_t searches, size_t iters, float lo, float hi, size_t samples,
                         size_t judge, float kappa, float *scratch, float *x_adv,
                         double *dist2)
{
    const size_t dim = vib_model_input_dim(m), len = n * dim, C = vib_model_classes(m);
    float *xp = scratch, *g = xp + len, *m1 = g + len, *m2 = m1 + len;
    float *cs = m2 + len, *c_lo = cs + n, *c_hi = c_lo + n, *prob = c_hi + n;
    const float b1 = 0.9f, b2 = 0.999f, lr = 0.005f * (hi - lo);
    for (size_t r = 0; r < n; r++) {
        cs[r] = c0, c_lo[r] = 0.0f, c_hi[r] = INFINITY, dist2[r] = INFINITY;
    }
    memcpy(x_adv, x, len * sizeof(float));
    char *hit = malloc(n ? n : 1);
    if (hit == NULL)
        return VIB_ERR_NOMEM;
    for (size_t s = 0; s < searches; s++) {
        memcpy(xp, x, len * sizeof(float));
        memset(m1, 0, len * sizeof(float));
        memset(m2, 0, len * sizeof(float));
        memset(hit, 0, n);
        for (size_t t = 0; t <= iters; t++) {
            /* judge the current point (the last one too), keep each row's closest success */
            int rc = vib_model_predict(m, n, xp, judge, prob);
            if (rc == VIB_OK && t < iters)
                rc = attack_ce_gradients(m, n, xp, target, samples, g);
            if (rc != VIB_OK) {
                free(hit);
                return rc;
            }
            for (size_t r = 0; r < n; r++) {
                const float *p = prob + r * C;
                float other = -INFINITY;
                for (size_t k = 0; k < C; k++)
                    if ((int32_t)k != target[r] && p[k] > other)
                        other = p[k];
                if (!(p[target[r]] - other > kappa))
                    continue;
                double d = 0.0;
                for (size_t j = 0; j < dim; j++) {
                    const double e = (double)xp[r * dim + j] - x[r * dim + j];
                    d += e * e;
                }
                hit[r] = 1;
                if (d < dist2[r]) {
                    dist2[r] = d;
                    memcpy(x_adv + r * dim, xp + r * dim, dim * sizeof(float));
                }
            }
            if (t == iters)
                break;
            /* Adam on x': d/dx' of |x' - x|^2 + c n dCE/dx' (the batch mean's gradient
             * times n is the row's own), then the projection onto the box */
            const float k1 = 1.0f - powf(b1, (float)(t + 1)), k2 = 1.0f - powf(b2, (float)(t + 1));
            for (size_t r = 0; r < n; r++)
                for (size_t j = 0; j < dim; j++) {
                    const size_t i = r * dim + j;
                    const float gx = 2.0f * (xp[i] - x[i]) + cs[r] * (float)n * g[i];
                    m1[i] = b1 * m1[i] + (1.0f - b1) * gx;
                    m2[i] = b2 * m2[i] + (1.0f - b2) * gx * gx;
                    const float v = xp[i] - lr * (m1[i] / k1) / (sqrtf(m2[i] / k2) + 1e-8f);
                    xp[i] = fminf(fmaxf(v, lo), hi);
                }
        }
        for (size_t r = 0; r < n; r++) { /* the next c: smaller after a success */
            if (hit[r])
                c_hi[r] = fminf(c_hi[r], cs[r]);
            else
                c_lo[r] = fmaxf(c_lo[r], cs[r]);
            cs[r] = isinf(c_hi[r]) ? 10.0f * cs[r] : 0.5f * (c_lo[r] + c_hi[r]);
        }
    }
    free(hit);
    return VIB_OK;
}

/* ---- scores ------------------------------------------------------------------------ */

/* Three scores per input, each higher for an input unlike the training data:
 *   rate[r]     KL(e(z|x_r) || N(0, I)) in nats, the rate of the 2018 follow-up (a
 *               diagonal-covariance VIB model; NAN for a deterministic or a
 *               full-covariance one, whose rate this does not compute);
 *   entropy[r]  the entropy of the predictive distribution (vib_model_predict with
 *               `samples` draws; z = mu for 0), in nats;
 *   unsure[r]   1 - its largest probability.
 * scratch: n (2 K + classes) floats. Any output may be NULL. */
ATTACKS_FN int uncertainty_scores(vib_model *m, size_t n, const float *x, size_t samples,
                                  float *scratch, double *rate, double *entropy, double *unsure)
{
    const size_t K = vib_model_latent_dim(m), C = vib_model_classes(m);
    float *mu = scratch, *sigma = mu + n * K, *prob = sigma + n * K;
    if (rate != NULL) {
        if (vib_model_deterministic(m) || (vib_model_flags(m) & VIB_MODEL_FULL_COV)) {
            for (size_t r = 0; r < n; r++)
                rate[r] = NAN;
        } else {
            int rc = vib_model_encode(m, n, x, mu, sigma);
            if (rc == VIB_OK) /* the rows' KL, into prob's room (n <= n C floats) */
                rc = vib_kl_std_normal(n, K, mu, sigma, prob);
            if (rc != VIB_OK)
                return rc;
            for (size_t r = 0; r < n; r++)
                rate[r] = prob[r];
        }
    }
    const int rc = vib_model_predict(m, n, x, samples, prob);
    if (rc != VIB_OK)
        return rc;
    for (size_t r = 0; r < n; r++) {
        const float *p = prob + r * C;
        double h = 0.0, top = 0.0;
        for (size_t c = 0; c < C; c++) {
            h -= p[c] > 0.0f ? (double)p[c] * log((double)p[c]) : 0.0;
            top = fmax(top, p[c]);
        }
        if (entropy) entropy[r] = h;
        if (unsure) unsure[r] = 1.0 - top;
    }
    return VIB_OK;
}

static int attacks_cmp_desc(const void *a, const void *b)
{
    const double x = ((const double *)a)[0], y = ((const double *)b)[0];
    return (x < y) - (x > y);
}

/* The n_in + n_out (score, 1 if out of distribution) pairs sorted by score, highest
 * first (malloc'd). */
static double *attacks_ranked(const double *in, size_t n_in, const double *out, size_t n_out)
{
    double *p = malloc(2 * (n_in + n_out) * sizeof(double));
    if (p == NULL)
        return NULL;
    for (size_t i = 0; i < n_in; i++)
        p[2 * i] = in[i], p[2 * i + 1] = 0.0;
    for (size_t i = 0; i < n_out; i++)
        p[2 * (n_in + i)] = out[i], p[2 * (n_in + i) + 1] = 1.0;
    qsort(p, n_in + n_out, 2 * sizeof(double), attacks_cmp_desc);
    return p;
}

/* The area under the ROC curve of telling out from in by a higher score: the chance
 * that an out-of-distribution item scores above an in-distribution one, ties counting
 * one half (the Mann-Whitney statistic). NAN if either set is empty or out of memory. */
ATTACKS_FN double auroc(const double *in, size_t n_in, const double *out, size_t n_out)
{
    double *p = n_in && n_out ? attacks_ranked(in, n_in, out, n_out) : NULL;
    if (p == NULL)
        return NAN;
    double above = 0.0; /* pairs (out, in) with the out item ranked above */
    size_t outs_seen = 0;
    for (size_t i = 0; i < n_in + n_out;) {
        size_t j = i, tie_in = 0, tie_out = 0; /* the run of equal scores */
        for (; j < n_in + n_out && p[2 * j] == p[2 * i]; j++)
            p[2 * j + 1] != 0.0 ? tie_out++ : tie_in++;
        above += (double)tie_in * ((double)outs_seen + 0.5 * (double)tie_out);
        outs_seen += tie_out;
        i = j;
    }
    free(p);
    return above / ((double)n_in * (double)n_out);
}

/* The area under the precision-recall curve with the out-of-distribution items as the
 * positives: average precision, the precision at each positive's threshold averaged
 * over the positives (a run of tied scores counts as one threshold). */
ATTACKS_FN double aupr(const double *in, size_t n_in, const double *out, size_t n_out)
{
    double *p = n_in && n_out ? attacks_ranked(in, n_in, out, n_out) : NULL;
    if (p == NULL)
        return NAN;
    double ap = 0.0;
    size_t tp = 0, seen = 0;
    for (size_t i = 0; i < n_in + n_out;) {
        size_t j = i, pos = 0;
        for (; j < n_in + n_out && p[2 * j] == p[2 * i]; j++)
            pos += p[2 * j + 1] != 0.0;
        tp += pos, seen += j - i;
        ap += (double)pos * (double)tp / (double)seen;
        i = j;
    }
    free(p);
    return ap / (double)n_out;
}

/* The false positive rate (in-distribution items flagged) at the lowest threshold that
 * flags at least `tpr` of the out-of-distribution items (0.95: "FPR at 95% TPR"). */
ATTACKS_FN double fpr_at_tpr(const double *in, size_t n_in, const double *out, size_t n_out,
                             double tpr)
{
    double *p = n_in && n_out ? attacks_ranked(in, n_in, out, n_out) : NULL;
    if (p == NULL)
        return NAN;
    size_t tp = 0, fp = 0;
    double fpr = 1.0;
    for (size_t i = 0; i < n_in + n_out;) {
        size_t j = i;
        for (; j < n_in + n_out && p[2 * j] == p[2 * i]; j++)
            p[2 * j + 1] != 0.0 ? tp++ : fp++;
        if ((double)tp >= tpr * (double)n_out) {
            fpr = (double)fp / (double)n_in;
            break;
        }
        i = j;
    }
    free(p);
    return fpr;
}

/* Expected calibration error of n predictions: prob is n x classes (rows summing to 1),
 * the prediction the argmax, its confidence the maximum. Confidences fall in `bins`
 * equal-width bins of (0, 1]; ECE = sum over bins of (count / n) |accuracy - mean
 * confidence|. count, acc and conf (each `bins` long, optional) receive the
 * reliability diagram. */
ATTACKS_FN double ece(const float *prob, const int32_t *labels, size_t n, size_t classes,
                      size_t bins, size_t *count, double *acc, double *conf)
{
    double *sum_acc = calloc(bins, sizeof(double)), *sum_conf = calloc(bins, sizeof(double));
    size_t *cnt = calloc(bins, sizeof(size_t));
    if (sum_acc == NULL || sum_conf == NULL || cnt == NULL || n == 0) {
        free(sum_acc), free(sum_conf), free(cnt);
        return NAN;
    }
    for (size_t r = 0; r < n; r++) {
        const float *p = prob + r * classes;
        size_t best = 0;
        for (size_t c = 1; c < classes; c++)
            if (p[c] > p[best])
                best = c;
        const double c = p[best];
        size_t b = c <= 0.0 ? 0 : (size_t)ceil(c * (double)bins) - 1; /* (k/B, (k+1)/B] */
        b = b < bins ? b : bins - 1;
        cnt[b]++;
        sum_conf[b] += c;
        sum_acc[b] += (int32_t)best == labels[r];
    }
    double e = 0.0;
    for (size_t b = 0; b < bins; b++) {
        const double a = cnt[b] ? sum_acc[b] / (double)cnt[b] : 0.0;
        const double m = cnt[b] ? sum_conf[b] / (double)cnt[b] : 0.0;
        e += (double)cnt[b] / (double)n * fabs(a - m);
        if (count) count[b] = cnt[b];
        if (acc) acc[b] = a;
        if (conf) conf[b] = m;
    }
    free(sum_acc), free(sum_conf), free(cnt);
    return e;
}

#endif
