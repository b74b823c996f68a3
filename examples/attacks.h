/*
 * attacks.h - adversarial attacks on a vib_model and the scores of uncertainty, for the
 * robustness and out-of-distribution experiments: header-only, on libvib's public API
 * (as examples/vib_chain.h), so any program can run them against any model.
 *
 * Why in the examples and not in the library: an attack is an experiment on a model,
 * not a part of one; all it needs from libvib is vib_model_input_gradients (the
 * gradient of the training loss with respect to the input, averaged over S posterior
 * samples: the expectation over the sampling that an attack on a stochastic model must
 * take, or the sampling hides the gradient), and the library's ABI stays what a model
 * needs.
 *
 * Attacks (batched: one call over all n rows, no per-image loop around the model):
 *   attack_fgsm  fast gradient sign: x + eps sign(grad), clipped to [lo, hi];
 *   attack_pgd   projected gradient descent in the L-infinity ball of radius eps, from
 *                a uniform random start in the ball, `iters` steps of size `step`;
 *                every iterate is projected onto the ball and the data range.
 * The bound is exact: every output value lies in [fl(x - eps), fl(x + eps)] and in
 * [lo, hi], the box computed in float as the projection computes it.
 *
 * Scores (out-of-distribution detection, calibration):
 *   auroc, aupr, fpr_at_tpr  a score that should be higher out of distribution (the
 *                            rate, the predictive entropy, 1 - the maximum probability);
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

/* FGSM: x_adv = clip(x + eps sign(dL/dx)) for the true labels y, the gradient averaged
 * over `samples` posterior samples (0: z = mu). grad is scratch of n * dim floats.
 * Returns vib_model_input_gradients' status (x_adv untouched on failure). */
ATTACKS_FN int attack_fgsm(vib_model *m, size_t n, const float *x, const int32_t *y, float eps,
                           float lo, float hi, size_t samples, float *grad, float *x_adv)
{
    const size_t dim = vib_model_input_dim(m);
    const int rc = vib_model_input_gradients(m, n, x, y, samples, grad, NULL);
    if (rc != VIB_OK)
        return rc;
    for (size_t i = 0; i < n * dim; i++)
        x_adv[i] = attack_project(x[i] + eps * attack_sign(grad[i]), x[i], eps, lo, hi);
    return VIB_OK;
}

/* PGD in the L-infinity ball: a start drawn uniformly in the ball (from rng; NULL: start
 * at x), then `iters` steps x <- project(x + step sign(dL/dx)), each gradient averaged
 * over `samples` posterior samples. grad is scratch of n * dim floats. */
ATTACKS_FN int attack_pgd(vib_model *m, size_t n, const float *x, const int32_t *y, float eps,
                          float step, size_t iters, float lo, float hi, size_t samples,
                          vib_rng *rng, float *grad, float *x_adv)
{
    const size_t dim = vib_model_input_dim(m), len = n * dim;
    if (rng != NULL) {
        const int rc = vib_rng_uniform(rng, len, -eps, eps, grad); /* the start's offsets */
        if (rc != VIB_OK)
            return rc;
        for (size_t i = 0; i < len; i++)
            x_adv[i] = attack_project(x[i] + grad[i], x[i], eps, lo, hi);
    } else {
        memcpy(x_adv, x, len * sizeof(float));
    }
    for (size_t t = 0; t < iters; t++) {
        const int rc = vib_model_input_gradients(m, n, x_adv, y, samples, grad, NULL);
        if (rc != VIB_OK)
            return rc;
        for (size_t i = 0; i < len; i++)
            x_adv[i] = attack_project(x_adv[i] + step * attack_sign(grad[i]), x[i], eps, lo, hi);
    }
    return VIB_OK;
}

/* ---- scores ------------------------------------------------------------------------ */

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
