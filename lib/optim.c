/*
 * optim.c - the update rules: Adam and SGD with momentum over one flat parameter array,
 * the staircase learning-rate decay, and the exponential moving average (Polyak
 * averaging) of the parameters used for evaluation.
 *
 * All state is allocated with its handle, so a step or an EMA update allocates nothing.
 * A step checks its gradients first and then makes one fused pass over the arrays (with
 * vib_optim_step_ema, the average too): the optimizer is memory-bound (at 2.38M
 * parameters a step and an average move about 86 MB), so every array is read and
 * written exactly once, the pass is split across vib_num_threads() threads, and its
 * loops are compiled for AVX-512, AVX2 and the baseline (VIB_CLONES).
 *
 * No step may turn a finite parameter into an infinity, and a refused step writes
 * nothing, so whether a step overflows must be known before its pass. Reading the
 * parameters and the state ahead of the pass would double the step's memory traffic;
 * instead the gradient scan also finds max|g|, the handle keeps a bound on its state,
 * and from the two a step bounds its largest move (see step_bound). Below half an ulp of
 * FLT_MAX, 2^103, no move can overflow a finite parameter, and the pass runs at once;
 * only a step that could move a parameter by more (a learning rate or gradients near
 * float's range, or Adam with a tiny eps) first computes its results without writing
 * them, in a second scan (first_overflow).
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Elements per block: the gradient check scans blocks of this constant length (a loop
 * whose trip count is a known multiple of the vector width vectorizes at -O2), and the
 * threads split the arrays in whole blocks, each starting on a cache line. */
#define BLOCK 64

/* The bytes of one array of n floats, or false if n floats do not fit size_t. */
static bool state_bytes(size_t n, size_t *bytes)
{
    return vibi_mul_size(n, sizeof(float), bytes);
}

/* Nonzero if [a, a + n) and [b, b + n) share a float: the fused loops read and write
 * through restrict pointers, which promise they do not. */
static bool overlaps(const float *a, const float *b, size_t n)
{
    uintptr_t x = (uintptr_t)a, y = (uintptr_t)b, len = (uintptr_t)(n * sizeof(float));
    return x < y + len && y < x + len;
}

/* Non-finite scalar settings are numeric errors, finite ones outside their domain are
 * invalid arguments (the convention vib_rng_uniform and vib_rng_normal follow). Each
 * helper returns VIB_OK or records the error against `fn`. */
static int check_setting(const char *fn, const char *what, float x, bool in_domain,
                         const char *domain)
{
    if (!isfinite(x))
        return vibi_fail(VIB_ERR_NUMERIC, "%s: %s = %g is not finite", fn, what, (double)x);
    if (!in_domain)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: %s = %g is not %s", fn, what, (double)x,
                         domain);
    return VIB_OK;
}

struct vib_ema {
    size_t n;
    float decay;
    uint64_t updates; /* t of the next update */
    float *avg;       /* follows the struct in the same allocation, 64-byte aligned */
};

/* avg = d avg + (1-d) p, in double and rounded once: a convex combination of two floats
 * cannot overflow, and a constant input is an exact fixed point (avg = p stays p). The
 * approach to a constant stalls where d e rounds back to e, within 1/(2 (1-d)) ulps:
 * the resolution of a float average, the same for any rounding order. */
static inline float ema_one(float avg, float p, double d, double omd)
{
    return (float)(d * (double)avg + omd * (double)p);
}

static inline void ema_block(size_t n, float *restrict avg, const float *restrict p, double d,
                             double omd)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        avg[i] = ema_one(avg[i], p[i], d, omd);
}

/* ---- optimizers ---------------------------------------------------------------------- */

enum { KIND_ADAM = 1, KIND_SGD = 2 };

struct vib_optim {
    int kind;
    size_t n;
    float lr;
    float beta1, beta2, eps; /* Adam */
    float momentum;          /* SGD */
    /* The largest |g| a step accepts (a NaN fails the test too): the bound under which
     * the state stays finite; see adam_gmax and sgd_gmax. */
    float gmax;
    /* An upper bound on |s1[i]| over all i (SGD's u, Adam's m), kept by every step for
     * step_bound; 0 while the state is 0. */
    double s1max;
    uint64_t steps;
    /* Adam: m and v; SGD: u in s1 and s2 NULL. Both follow the struct in the same
     * allocation, each 64-byte aligned. */
    float *s1, *s2;
};

/* Adam: m and v are convex combinations of past g and g^2 (their bias-corrected
 * mhat and vhat are weighted means of them), so they stay within the largest |g| and
 * g^2 seen, up to rounding. |g| <= 2^63 keeps g^2 <= 2^126, a quarter of float's range,
 * which leaves room for that rounding; a larger gradient would turn v into infinity and
 * freeze its parameter for good. */
static float adam_gmax(void)
{
    return 0x1p63f;
}

/* SGD: u_t = sum_k momentum^k g_{t-k} is bounded by max|g| / (1 - momentum); half of
 * FLT_MAX times (1 - momentum) keeps that bound, with room for rounding, finite. */
static float sgd_gmax(float momentum)
{
    return (float)((1.0 - (double)momentum) * (double)FLT_MAX * 0.5);
}

/* The handle and `arrays` zeroed state arrays of n floats in one aligned allocation. */
static int optim_alloc(const char *fn, size_t n, int arrays, vib_optim **opt)
{
    size_t bytes;
    if (!state_bytes(n, &bytes))
        return vibi_fail(VIB_ERR_NOMEM, "%s: %zu parameters overflow size_t", fn, n);
    void *p[3];
    vib_optim *o = vibi_alloc_parts((size_t)arrays + 1,
                                    (const size_t[]){sizeof(vib_optim), bytes, bytes}, p);
    if (o == NULL)
        return vibi_fail(VIB_ERR_NOMEM, "%s: cannot allocate the state of %zu parameters", fn,
                         n);
    memset(o, 0, sizeof *o);
    /* m = v = 0 (Adam), u = 0 (SGD): no update before step 1 */
    memset(p[1], 0, (size_t)arrays * vibi_round_up(bytes));
    o->n = n;
    o->s1 = p[1];
    o->s2 = arrays > 1 ? p[2] : NULL;
    *opt = o;
    return VIB_OK;
}

int vib_adam_create(size_t n, float lr, float beta1, float beta2, float eps, vib_optim **out)
{
    static const char fn[] = "vib_adam_create";
    TRY(vibi_check_ptr(fn, "out", out));
    TRY(check_setting(fn, "lr", lr, lr > 0.0f, "positive"));
    TRY(check_setting(fn, "beta1", beta1, beta1 >= 0.0f && beta1 < 1.0f, "in [0, 1)"));
    TRY(check_setting(fn, "beta2", beta2, beta2 >= 0.0f && beta2 < 1.0f, "in [0, 1)"));
    TRY(check_setting(fn, "eps", eps, eps > 0.0f, "positive"));
    vib_optim *o;
    TRY(optim_alloc(fn, n, 2, &o));
    o->kind = KIND_ADAM;
    o->lr = lr;
    o->beta1 = beta1;
    o->beta2 = beta2;
    o->eps = eps;
    o->gmax = adam_gmax();
    *out = o;
    return VIB_OK;
}

int vib_sgd_create(size_t n, float lr, float momentum, vib_optim **out)
{
    static const char fn[] = "vib_sgd_create";
    TRY(vibi_check_ptr(fn, "out", out));
    TRY(check_setting(fn, "lr", lr, lr > 0.0f, "positive"));
    TRY(check_setting(fn, "momentum", momentum, momentum >= 0.0f && momentum < 1.0f,
                      "in [0, 1)"));
    vib_optim *o;
    TRY(optim_alloc(fn, n, 1, &o));
    o->kind = KIND_SGD;
    o->lr = lr;
    o->momentum = momentum;
    o->gmax = sgd_gmax(momentum);
    *out = o;
    return VIB_OK;
}

void vib_optim_free(vib_optim *opt)
{
    free(opt);
}

/* The bits of |x|. For x >= 0 the order of the bit patterns, read as integers, is the
 * order of the values, with +infinity above every finite value and the NaNs above it:
 * so the largest of them gives max|g| and, compared with gmax's, whether some |g| is
 * too large or NaN, in one integer reduction. */
static inline int32_t abs_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return (int32_t)(u & 0x7fffffffu);
}

/* max abs_bits(g[i]) over `blocks` whole blocks, each a loop of constant length so the
 * reduction vectorizes. Compiled for AVX-512, AVX2 and the baseline: SSE2 has no packed
 * 32-bit max, and its emulation made the scan compute-bound (0.39 ms over 2.38M
 * gradients on one core of a Zen 4, against 0.10-0.13 ms for the AVX-512 clone). */
VIB_CLONES static int32_t max_abs_bits(size_t blocks, const float *g)
{
    int32_t mx = 0;
    for (size_t b = 0; b < blocks; b++) {
        const float *restrict gb = g + b * BLOCK;
        int32_t m = 0;
        for (size_t i = 0; i < BLOCK; i++) {
            const int32_t x = abs_bits(gb[i]);
            m = x > m ? x : m;
        }
        mx = m > mx ? m : mx;
    }
    return mx;
}

/* Arrays shorter than this many blocks are not worth waking threads for. */
#define PAR_BLOCKS 512

/* The index of the first gradient a step refuses (|g| > gmax or NaN), or n if there is
 * none, and then max|g| in *gabs. The threads scan their shares for the largest |g|;
 * only if that is refused is the first failing index searched, in order, so the answer
 * does not depend on the thread count. */
static size_t first_bad(size_t n, const float *g, float gmax, float *gabs)
{
    int32_t mx = 0;
#pragma omp parallel num_threads(vibi_threads()) if (n / BLOCK >= PAR_BLOCKS) \
    reduction(max : mx)
    {
        size_t i0, i1;
        vibi_share(n, BLOCK, &i0, &i1);
        const size_t full = i0 + (i1 - i0) / BLOCK * BLOCK;
        mx = max_abs_bits((full - i0) / BLOCK, g + i0);
        for (size_t i = full; i < i1; i++) { /* the last share's tail */
            const int32_t b = abs_bits(g[i]);
            mx = b > mx ? b : mx;
        }
    }
    if (mx > abs_bits(gmax)) {
        for (size_t i = 0; i < n; i++)
            if (!(fabsf(g[i]) <= gmax))
                return i;
    }
    const uint32_t u = (uint32_t)mx;
    memcpy(gabs, &u, sizeof *gabs);
    return n;
}

/* The coefficients of one Adam step (see adam_one and adam_coefs). */
typedef struct adam_coef {
    float b1, omb1, b2, omb2; /* beta1, 1 - beta1, beta2, 1 - beta2 */
    float c1, c2;             /* bias corrections 1/(1 - b1^t), 1/(1 - b2^t) */
    float lr, eps;
} adam_coef;

/* One Adam update of one element (Kingma and Ba 2015, Algorithm 1), returning the new
 * parameter:
 *   m = b1 m + (1-b1) g,  v = b2 v + (1-b2) g^2,
 *   p -= lr * mhat / (sqrt(vhat) + eps),  mhat = m c1,  vhat = v c2.
 * (1-b2) g g is evaluated as ((1-b2) g) g, which cannot overflow once |g| <= 2^63, and
 * lr multiplies the ratio mhat / (sqrt(vhat) + eps) rather than mhat. That ratio is
 * typically of order 1 (Kingma and Ba, section 2.1, give lr max(1, (1-b1)/sqrt(1-b2))
 * for a typical step), but it is not bounded by it: where b1^2 >= b2, m can outlast v,
 * and with b2 = 0 a gradient of 0 after a gradient of 1 gives a ratio of about
 * 0.5 / eps. step_bound bounds it by |mhat| / eps instead. sqrtf is correctly rounded
 * and, with errno ignored (-fno-math-errno), a vector instruction in the loops below. */
static inline float adam_one(float p, float *m, float *v, float g, adam_coef k)
{
    const float mi = k.b1 * *m + k.omb1 * g;
    const float vi = k.b2 * *v + k.omb2 * g * g;
    *m = mi;
    *v = vi;
    return p - k.lr * ((mi * k.c1) / (sqrtf(vi * k.c2) + k.eps));
}

/* One heavy-ball update of one element: u = momentum u + g, p -= lr u; u is the sum of
 * past gradients weighted by momentum^age. */
static inline float sgd_one(float p, float *u, float g, float momentum, float lr)
{
    const float ui = momentum * *u + g;
    *u = ui;
    return p - lr * ui;
}

/* The step's coefficients: Adam's for the step about to be taken, t = steps + 1. */
static adam_coef adam_coefs(const vib_optim *o)
{
    /* The bias corrections are computed in double once per step: 1 - b^t loses float's
     * relative precision as b^t -> 1.
     *
     * This is the paper's form, the one the header documents: eps is added to
     * sqrt(vhat), the bias-corrected second moment. TensorFlow's AdamOptimizer instead
     * folds both corrections into lr_t = lr sqrt(1 - b2^t) / (1 - b1^t) and adds eps to
     * the uncorrected sqrt(v), which equals this update with eps replaced by
     * eps / sqrt(1 - b2^t) (the paper's "eps hat", at the end of its section 2). The
     * two agree when eps << sqrt(vhat) and differ early in training, when 1 - b2^t is
     * small and that eps hat is large. */
    const double t = (double)o->steps + 1.0;
    return (adam_coef){
        .b1 = o->beta1,
        .omb1 = (float)(1.0 - (double)o->beta1),
        .b2 = o->beta2,
        .omb2 = (float)(1.0 - (double)o->beta2),
        .c1 = (float)(1.0 / (1.0 - pow((double)o->beta1, t))),
        .c2 = (float)(1.0 / (1.0 - pow((double)o->beta2, t))),
        .lr = o->lr,
        .eps = o->eps,
    };
}

/* Half an ulp of FLT_MAX: a finite p minus a move d with |d| < 2^103 stays below
 * FLT_MAX + 2^103, the midpoint between FLT_MAX and 2^128, so it rounds to at most
 * FLT_MAX in magnitude. */
#define SAFE_MOVE 0x1p103

/* A bound, from max|g| over this step's gradients and the handle's bound s1max on the
 * state, on |s1| after the step (into *s1new) and on every move |p_new - p| it makes
 * (returned), both in double. Each float operation of sgd_one and adam_one rounds to
 * within a relative 2^-24 and is monotone, so a few operations stay within the
 * factor 1 + 2^-20 on s1 and the factor 2 on the move (the caller compares it with
 * SAFE_MOVE / 2):
 *   SGD:  |u'| <= mom s1max + gabs,  |d| = |lr u'|;
 *   Adam: |m'| <= b1 s1max + (1-b1) gabs,  |d| <= lr c1 |m'| / eps, since the
 *         denominator sqrt(vhat) + eps is at least eps; the ratio before lr must not
 *         overflow either, hence max(lr, 1).
 * The state's own bound, |g| <= gmax, keeps s1 finite; this bounds the parameters. */
static double step_bound(const vib_optim *o, adam_coef k, float gabs, double *s1new)
{
    const double slack = 1.0 + 0x1p-20, g = (double)gabs;
    if (o->kind == KIND_SGD) {
        *s1new = ((double)o->momentum * o->s1max + g) * slack;
        return (double)o->lr * *s1new;
    }
    *s1new = ((double)k.b1 * o->s1max + (double)k.omb1 * g) * slack;
    return fmax((double)k.lr, 1.0) * (double)k.c1 * *s1new / (double)k.eps;
}

/* 1 if the finite parameter p would become pn, an infinity (a NaN cannot arise from a
 * finite p: the move is finite or infinite, never 0/0). A parameter already NaN or
 * infinite is left alone: the step neither reads it beforehand nor makes it worse. */
static inline unsigned overflows(float p, float pn)
{
    return (unsigned)(fabsf(p) <= FLT_MAX) & (unsigned)!(fabsf(pn) <= FLT_MAX);
}

/* One element of the step as update_span computes it, without writing: the new
 * parameter, and the new s1 in *s1. */
static inline float step_one(const vib_optim *o, adam_coef k, size_t i, const float *p,
                             const float *g, float *s1)
{
    *s1 = o->s1[i];
    if (o->kind == KIND_ADAM) {
        float s2 = o->s2[i];
        return adam_one(p[i], s1, &s2, g[i], k);
    }
    return sgd_one(p[i], s1, g[i], o->momentum, o->lr);
}

/* Elements [i0, i1) of the step, computed and not written: whether some finite
 * parameter would overflow and, in *s1bits, max abs_bits of the new s1 (exact: s1 stays
 * finite). Vector loops without an early exit, compiled like update_span, whose
 * operations they repeat and round alike; the failing index, if any, is found after. */
VIB_CLONES static bool overflow_any(const vib_optim *o, adam_coef k, size_t i0, size_t i1,
                                    const float *params, const float *grads, int32_t *s1bits)
{
    const float *restrict p = params, *restrict g = grads;
    const float *restrict s1 = o->s1, *restrict s2 = o->s2;
    unsigned bad = 0;
    int32_t mx = 0;
    if (o->kind == KIND_ADAM) {
#pragma omp simd reduction(| : bad) reduction(max : mx)
        for (size_t i = i0; i < i1; i++) {
            float m = s1[i], v = s2[i];
            bad |= overflows(p[i], adam_one(p[i], &m, &v, g[i], k));
            const int32_t b = abs_bits(m);
            mx = b > mx ? b : mx;
        }
    } else {
        const float mom = o->momentum, lr = o->lr;
#pragma omp simd reduction(| : bad) reduction(max : mx)
        for (size_t i = i0; i < i1; i++) {
            float u = s1[i];
            bad |= overflows(p[i], sgd_one(p[i], &u, g[i], mom, lr));
            const int32_t b = abs_bits(u);
            mx = b > mx ? b : mx;
        }
    }
    *s1bits = mx;
    return bad != 0;
}

/* The first parameter the step would overflow, or n if none (then *s1abs is max|s1|
 * after the step): the threads scan their shares, and the smallest failing index wins,
 * whatever the thread count. */
static size_t first_overflow(const vib_optim *o, adam_coef k, const float *params,
                             const float *grads, float *s1abs)
{
    const size_t n = o->n;
    size_t bad = n;
    int32_t mx = 0;
#pragma omp parallel num_threads(vibi_threads()) if (n / BLOCK >= PAR_BLOCKS) \
    reduction(min : bad) reduction(max : mx)
    {
        size_t i0, i1;
        vibi_share(n, BLOCK, &i0, &i1);
        /* (bad and mx are the reduction's private copies, which start at SIZE_MAX and
         * INT32_MIN, not at n and 0: both are set here.) */
        size_t first = i1;
        if (overflow_any(o, k, i0, i1, params, grads, &mx)) {
            for (size_t i = i0; i < i1 && first == i1; i++) {
                float s1;
                if (overflows(params[i], step_one(o, k, i, params, grads, &s1)))
                    first = i;
            }
        }
        bad = first < i1 ? first : n;
    }
    const uint32_t u = (uint32_t)mx;
    memcpy(s1abs, &u, sizeof *s1abs);
    return bad;
}

/* The average's weight for its update t (TensorFlow's ExponentialMovingAverage with
 * num_updates = t): d = min(decay, (1 + t) / (10 + t)), so d is 0.1, 0.18, 0.25, ... at
 * first and the average forgets the initial weights quickly, then settles at decay. */
static double ema_weight(const vib_ema *e)
{
    const double t = (double)e->updates;
    const double warm = (1.0 + t) / (10.0 + t);
    return warm < (double)e->decay ? warm : (double)e->decay;
}

/* Elements [i0, i1): the update, then, if avg is not NULL, the average of the parameter
 * just written, one straight vector loop that reads and writes each array once.
 * Compiled for AVX-512, AVX2 and baseline x86-64 and picked at load time by the CPU
 * (VIB_CLONES); without FMA contraction (ISO C mode) every version rounds each
 * operation alike: the same bits on any CPU, and the same as vib_optim_step followed by
 * vib_ema_update. */
VIB_CLONES static void update_span(const vib_optim *o, adam_coef k, size_t i0, size_t i1,
                                   float *params, const float *grads, float *avg, double d)
{
    float *restrict p = params, *restrict s1 = o->s1, *restrict s2 = o->s2;
    float *restrict a = avg;
    const float *restrict g = grads;
    const double omd = 1.0 - d;
    if (o->kind == KIND_ADAM && a != NULL) {
#pragma omp simd
        for (size_t i = i0; i < i1; i++) {
            p[i] = adam_one(p[i], &s1[i], &s2[i], g[i], k);
            a[i] = ema_one(a[i], p[i], d, omd);
        }
    } else if (o->kind == KIND_ADAM) {
#pragma omp simd
        for (size_t i = i0; i < i1; i++)
            p[i] = adam_one(p[i], &s1[i], &s2[i], g[i], k);
    } else {
#pragma omp simd
        for (size_t i = i0; i < i1; i++)
            p[i] = sgd_one(p[i], &s1[i], g[i], o->momentum, o->lr);
        if (a != NULL)
            ema_block(i1 - i0, a + i0, p + i0, d, omd);
    }
}

/* The whole update, split across the threads in whole blocks (vibi_share: each share
 * starts on a cache line). Each element depends on itself only, so the result is the
 * same for any thread count. */
static void update_all(const vib_optim *o, adam_coef k, float *params, const float *grads,
                       vib_ema *ema)
{
    const double d = ema ? ema_weight(ema) : 0.0;
    float *avg = ema ? ema->avg : NULL;
    const size_t n = o->n;
#pragma omp parallel num_threads(vibi_threads()) if (n / BLOCK >= PAR_BLOCKS)
    {
        size_t i0, i1;
        vibi_share(n, BLOCK, &i0, &i1);
        update_span(o, k, i0, i1, params, grads, avg, d);
    }
}

/* Everything a step checks before it writes, so a refused step leaves params, the
 * moments, the average and the counts exactly as they were: the pointers, then the
 * gradients, then that no parameter overflows (step_bound, else first_overflow). On
 * success *k holds the step's coefficients and *s1new the state's bound after it. */
static int check_step(const char *fn, const vib_optim *opt, const float *params,
                      const float *grads, adam_coef *k, double *s1new)
{
    const size_t n = opt->n;
    TRY(vibi_check_ptr(fn, "params", params));
    TRY(vibi_check_ptr(fn, "grads", grads));
    if (overlaps(params, grads, n))
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: params and grads overlap", fn);
    float gabs = 0.0f;
    size_t bad = first_bad(n, grads, opt->gmax, &gabs);
    if (bad < n) {
        if (!isfinite(grads[bad]))
            return vibi_fail(VIB_ERR_NUMERIC, "%s: grads[%zu] = %g is not finite", fn, bad,
                             (double)grads[bad]);
        return vibi_fail(VIB_ERR_NUMERIC,
                         "%s: grads[%zu] = %g exceeds %g, beyond which the %s would "
                         "overflow float",
                         fn, bad, (double)grads[bad], (double)opt->gmax,
                         opt->kind == KIND_ADAM ? "second moment" : "momentum");
    }
    *k = opt->kind == KIND_ADAM ? adam_coefs(opt) : (adam_coef){0};
    if (step_bound(opt, *k, gabs, s1new) <= SAFE_MOVE / 2)
        return VIB_OK;
    float s1abs = 0.0f;
    bad = first_overflow(opt, *k, params, grads, &s1abs);
    if (bad < n)
        return vibi_fail(VIB_ERR_NUMERIC,
                         "%s: params[%zu] = %g would overflow float (grads[%zu] = %g)", fn,
                         bad, (double)params[bad], bad, (double)grads[bad]);
    *s1new = (double)s1abs; /* exact: the scan computed the new state */
    return VIB_OK;
}

int vib_optim_step(vib_optim *opt, float *params, const float *grads)
{
    static const char fn[] = "vib_optim_step";
    TRY(vibi_check_ptr(fn, "opt", opt));
    if (opt->n > 0) {
        adam_coef k;
        double s1new;
        TRY(check_step(fn, opt, params, grads, &k, &s1new));
        update_all(opt, k, params, grads, NULL);
        opt->s1max = s1new;
    }
    /* An empty step still counts, so Adam's t stays in step with the caller's. */
    opt->steps++;
    return VIB_OK;
}

int vib_optim_step_ema(vib_optim *opt, float *params, const float *grads, vib_ema *ema)
{
    static const char fn[] = "vib_optim_step_ema";
    TRY(vibi_check_ptr(fn, "opt", opt));
    if (ema == NULL)
        return vib_optim_step(opt, params, grads);
    const size_t n = opt->n;
    if (ema->n != n)
        return vibi_fail(VIB_ERR_INVALID_ARG,
                         "%s: the average holds %zu values, the optimizer %zu", fn, ema->n,
                         n);
    if (n > 0) {
        adam_coef k;
        double s1new;
        TRY(check_step(fn, opt, params, grads, &k, &s1new));
        if (overlaps(ema->avg, params, n) || overlaps(ema->avg, grads, n))
            return vibi_fail(VIB_ERR_INVALID_ARG, "%s: params or grads overlap the average",
                             fn);
        /* The new parameters need no finiteness check before averaging: check_step
         * refused any step that would make a finite one infinite, so they are finite
         * wherever the caller's were. */
        update_all(opt, k, params, grads, ema);
        opt->s1max = s1new;
    }
    opt->steps++;
    ema->updates++;
    return VIB_OK;
}

int vib_optim_set_lr(vib_optim *opt, float lr)
{
    static const char fn[] = "vib_optim_set_lr";
    TRY(vibi_check_ptr(fn, "opt", opt));
    TRY(check_setting(fn, "lr", lr, lr > 0.0f, "positive"));
    opt->lr = lr;
    return VIB_OK;
}

float vib_optim_lr(const vib_optim *opt)
{
    return opt ? opt->lr : 0.0f;
}

uint64_t vib_optim_steps(const vib_optim *opt)
{
    return opt ? opt->steps : 0;
}

size_t vib_optim_size(const vib_optim *opt)
{
    return opt ? opt->n : 0;
}

/* ---- learning-rate schedule ------------------------------------------------------------ */

int vib_lr_staircase(float lr0, float rate, uint64_t decay_steps, uint64_t step, float *lr)
{
    static const char fn[] = "vib_lr_staircase";
    TRY(vibi_check_ptr(fn, "lr", lr));
    TRY(check_setting(fn, "lr0", lr0, lr0 > 0.0f, "positive"));
    TRY(check_setting(fn, "rate", rate, rate > 0.0f && rate <= 1.0f, "in (0, 1]"));
    if (decay_steps == 0)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: decay_steps is 0", fn);
    /* Unsigned division is the floor. rate <= 1 keeps the result <= lr0, so it cannot
     * overflow; after very many decays it can round to 0, which vib_optim_set_lr then
     * refuses. In double, rounded once to float. */
    const double k = (double)(step / decay_steps);
    *lr = (float)((double)lr0 * pow((double)rate, k));
    return VIB_OK;
}

/* ---- exponential moving average ------------------------------------------------------- */

int vib_ema_create(size_t n, float decay, const float *init, vib_ema **out)
{
    static const char fn[] = "vib_ema_create";
    TRY(vibi_check_ptr(fn, "out", out));
    TRY(check_setting(fn, "decay", decay, decay > 0.0f && decay < 1.0f, "in (0, 1)"));
    /* The size first: no init of that many floats can exist to be read. */
    size_t bytes;
    if (!state_bytes(n, &bytes))
        return vibi_fail(VIB_ERR_NOMEM, "%s: %zu values overflow size_t", fn, n);
    if (n > 0) {
        TRY(vibi_check_ptr(fn, "init", init));
        TRY(vibi_check_finite(fn, "init", n, init));
    }
    void *p[2];
    vib_ema *e = vibi_alloc_parts(2, (const size_t[]){sizeof(vib_ema), bytes}, p);
    if (e == NULL)
        return vibi_fail(VIB_ERR_NOMEM, "%s: cannot allocate an average of %zu values", fn, n);
    e->n = n;
    e->decay = decay;
    e->updates = 0;
    e->avg = p[1];
    if (n > 0)
        memcpy(e->avg, init, n * sizeof(float));
    *out = e;
    return VIB_OK;
}

void vib_ema_free(vib_ema *ema)
{
    free(ema);
}

int vib_ema_update(vib_ema *ema, const float *params)
{
    static const char fn[] = "vib_ema_update";
    TRY(vibi_check_ptr(fn, "ema", ema));
    const size_t n = ema->n;
    if (n > 0) {
        TRY(vibi_check_ptr(fn, "params", params));
        if (overlaps(ema->avg, params, n))
            return vibi_fail(VIB_ERR_INVALID_ARG, "%s: params overlap the average", fn);
        TRY(vibi_check_finite(fn, "params", n, params));
    }
    const double d = ema_weight(ema), omd = 1.0 - d;
    ema_block(n, ema->avg, params, d, omd);
    ema->updates++;
    return VIB_OK;
}

const float *vib_ema_values(const vib_ema *ema)
{
    return ema ? ema->avg : NULL;
}

size_t vib_ema_size(const vib_ema *ema)
{
    return ema ? ema->n : 0;
}

/* ---- the state, for checkpoints (train.c) ------------------------------------------ */

void vibi_optim_view(vib_optim *opt, vibi_optim_state *v)
{
    *v = (vibi_optim_state){.kind = opt->kind, .n = opt->n, .lr = &opt->lr,
                            .beta1 = opt->beta1, .beta2 = opt->beta2, .eps = opt->eps,
                            .momentum = opt->momentum, .s1max = &opt->s1max,
                            .steps = &opt->steps, .s1 = opt->s1, .s2 = opt->s2};
}

void vibi_ema_view(vib_ema *ema, vibi_ema_state *v)
{
    *v = (vibi_ema_state){.n = ema->n, .decay = ema->decay, .updates = &ema->updates,
                          .avg = ema->avg};
}
