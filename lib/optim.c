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
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>

#include "internal.h"

#define ALIGN 64

/* Elements per block of the fused loops. The loops run over whole blocks of a constant
 * length and then over the tail: at -O2 GCC only vectorizes a loop whose trip count is a
 * known multiple of the vector width, which a constant block is and an arbitrary n is
 * not. */
#define BLOCK 64

static size_t round_up(size_t x)
{
    return (x + ALIGN - 1) / ALIGN * ALIGN;
}

/* The bytes of one array of n floats rounded up to ALIGN, or false if that, times the
 * `arrays` the handle holds plus its header, could wrap: every term is bounded by
 * SIZE_MAX / 8 so the sum cannot. */
static bool state_bytes(size_t n, size_t *bytes)
{
    size_t b;
    if (!vibi_mul_size(n, sizeof(float), &b) || b > SIZE_MAX / 8)
        return false;
    *bytes = round_up(b);
    return true;
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

#define TRY(expr)                                                                          \
    do {                                                                                   \
        int vibi_rc_ = (expr);                                                             \
        if (vibi_rc_ != VIB_OK)                                                            \
            return vibi_rc_;                                                               \
    } while (0)

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
static inline void ema_block(size_t n, float *restrict avg, const float *restrict p, double d,
                             double omd)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        avg[i] = (float)(d * (double)avg[i] + omd * (double)p[i]);
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
    const size_t head = round_up(sizeof(vib_optim));
    const size_t total = head + (size_t)arrays * bytes;
    char *mem = aligned_alloc(ALIGN, total);
    if (mem == NULL)
        return vibi_fail(VIB_ERR_NOMEM, "%s: cannot allocate %zu bytes", fn, total);
    memset(mem, 0, total); /* m = v = 0 (Adam), u = 0 (SGD): no update before step 1 */
    vib_optim *o = (vib_optim *)mem;
    o->n = n;
    o->s1 = (float *)(mem + head);
    o->s2 = arrays > 1 ? (float *)(mem + head + bytes) : NULL;
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

/* Nonzero if some |g[i]| exceeds gmax or is NaN, over a constant-length block so the
 * test vectorizes: !(|g| <= gmax) is true for NaN and both infinities as well. */
static inline unsigned block_bad(size_t n, const float *restrict g, float gmax)
{
    unsigned bad = 0;
    for (size_t i = 0; i < n; i++)
        bad |= !(fabsf(g[i]) <= gmax);
    return bad;
}

/* Arrays shorter than this many blocks are not worth waking threads for. */
#define PAR_BLOCKS 512

/* The index of the first gradient a step refuses, or n if there is none. The blocks are
 * scanned in parallel; the smallest failing block wins, so the answer does not depend
 * on the thread count. */
static size_t first_bad(size_t n, const float *g, float gmax)
{
    const size_t blocks = n / BLOCK;
    size_t bad_block = blocks;
#pragma omp parallel for schedule(static) reduction(min : bad_block) \
    num_threads(vibi_threads()) if (blocks >= PAR_BLOCKS)
    for (size_t b = 0; b < blocks; b++)
        if (b < bad_block && block_bad(BLOCK, g + b * BLOCK, gmax))
            bad_block = b;
    for (size_t i = bad_block * BLOCK; i < n; i++) /* the failing block, or the tail */
        if (!(fabsf(g[i]) <= gmax))
            return i;
    return n;
}

/* The coefficients of one Adam step (see adam_step). */
typedef struct adam_coef {
    float b1, omb1, b2, omb2; /* beta1, 1 - beta1, beta2, 1 - beta2 */
    float c1, c2;             /* bias corrections 1/(1 - b1^t), 1/(1 - b2^t) */
    float lr, eps;
} adam_coef;

/* One Adam update of n elements (Kingma and Ba 2015, Algorithm 1):
 *   m = b1 m + (1-b1) g,  v = b2 v + (1-b2) g^2,
 *   p -= lr * mhat / (sqrt(vhat) + eps),  mhat = m c1,  vhat = v c2.
 * (1-b2) g g is evaluated as ((1-b2) g) g, which cannot overflow once |g| <= 2^63, and
 * lr multiplies the ratio mhat / (sqrt(vhat) + eps), of order 1, rather than mhat.
 * Parameters are not checked for overflow: a step moves each by roughly at most
 * lr max(1, (1-b1)/sqrt(1-b2)) (Kingma and Ba, section 2.1), so only a learning rate
 * near float's range could overflow them. */
static inline void adam_scalar(size_t n, float *restrict p, float *restrict m,
                               float *restrict v, const float *restrict g, adam_coef k)
{
    for (size_t i = 0; i < n; i++) {
        const float gi = g[i];
        const float mi = k.b1 * m[i] + k.omb1 * gi;
        const float vi = k.b2 * v[i] + k.omb2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] -= k.lr * ((mi * k.c1) / (sqrtf(vi * k.c2) + k.eps));
    }
}

/* x = sqrt(x) over one block. sqrtf sets errno on a negative argument, and unless
 * errno is ignored GCC guards each call with a branch to the library that stops the
 * loop from vectorizing; the library is built with -fno-math-errno (it never reads
 * errno), so this is one vector square root per lane group, correctly rounded like
 * sqrtf: the same bits. */
static inline void sqrt_block(float *x)
{
    for (size_t i = 0; i < BLOCK; i++)
        x[i] = sqrtf(x[i]);
}

/* adam_scalar over BLOCK elements, split around the square roots so both halves are
 * branch-free straight lines over restrict pointers that the compiler vectorizes. */
static inline void adam_block(float *restrict p, float *restrict m, float *restrict v,
                              const float *restrict g, adam_coef k)
{
    float root[BLOCK]; /* vhat, then sqrt(vhat) */
    for (size_t i = 0; i < BLOCK; i++) {
        const float gi = g[i];
        const float vi = k.b2 * v[i] + k.omb2 * gi * gi;
        m[i] = k.b1 * m[i] + k.omb1 * gi;
        v[i] = vi;
        root[i] = vi * k.c2;
    }
    sqrt_block(root);
    for (size_t i = 0; i < BLOCK; i++)
        p[i] -= k.lr * ((m[i] * k.c1) / (root[i] + k.eps));
}

/* One heavy-ball update of n elements: u = momentum u + g, p -= lr u; u is the sum of
 * past gradients weighted by momentum^age. */
static inline void sgd_block(size_t n, float *restrict p, float *restrict u,
                             const float *restrict g, float momentum, float lr)
{
    for (size_t i = 0; i < n; i++) {
        const float ui = momentum * u[i] + g[i];
        u[i] = ui;
        p[i] -= lr * ui;
    }
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

/* The average's weight for its update t (TensorFlow's ExponentialMovingAverage with
 * num_updates = t): d = min(decay, (1 + t) / (10 + t)), so d is 0.1, 0.18, 0.25, ... at
 * first and the average forgets the initial weights quickly, then settles at decay. */
static double ema_weight(const vib_ema *e)
{
    const double t = (double)e->updates;
    const double warm = (1.0 + t) / (10.0 + t);
    return warm < (double)e->decay ? warm : (double)e->decay;
}

/* One update of elements [i, i + len), then, if avg is not NULL, the average of the
 * parameters just written: one pass that reads and writes each array once while its
 * block is in the L1 cache. */
static inline void update_range(const vib_optim *o, adam_coef k, size_t i, size_t len,
                                float *params, const float *grads, float *avg, double d)
{
    float *p = params + i;
    if (o->kind == KIND_ADAM) {
        if (len == BLOCK)
            adam_block(p, o->s1 + i, o->s2 + i, grads + i, k);
        else
            adam_scalar(len, p, o->s1 + i, o->s2 + i, grads + i, k);
    } else {
        sgd_block(len, p, o->s1 + i, grads + i, o->momentum, o->lr);
    }
    if (avg != NULL)
        ema_block(len, avg + i, p, d, 1.0 - d);
}

/* Blocks [b0, b1), compiled for AVX-512, AVX2 and baseline x86-64 and picked at load
 * time by the CPU (VIB_CLONES). Without FMA contraction (ISO C mode) every version
 * rounds each operation alike: the same bits on any CPU. */
VIB_CLONES static void update_blocks(const vib_optim *o, adam_coef k, size_t b0, size_t b1,
                                     float *params, const float *grads, float *avg, double d)
{
    if (o->kind != KIND_ADAM) {
        for (size_t b = b0; b < b1; b++)
            update_range(o, k, b * BLOCK, BLOCK, params, grads, avg, d);
        return;
    }
    /* Adam (and the average) as one straight vector loop: each element is adam_scalar's
     * and ema_block's arithmetic, operation for operation, so the bits are theirs. */
    float *restrict p = params, *restrict m = o->s1, *restrict v = o->s2, *restrict a = avg;
    const float *restrict g = grads;
    const size_t i0 = b0 * BLOCK, i1 = b1 * BLOCK;
    if (a == NULL) {
#pragma omp simd
        for (size_t i = i0; i < i1; i++) {
            const float gi = g[i];
            const float mi = k.b1 * m[i] + k.omb1 * gi;
            const float vi = k.b2 * v[i] + k.omb2 * gi * gi;
            m[i] = mi;
            v[i] = vi;
            p[i] -= k.lr * ((mi * k.c1) / (sqrtf(vi * k.c2) + k.eps));
        }
        return;
    }
    const double omd = 1.0 - d;
#pragma omp simd
    for (size_t i = i0; i < i1; i++) {
        const float gi = g[i];
        const float mi = k.b1 * m[i] + k.omb1 * gi;
        const float vi = k.b2 * v[i] + k.omb2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        const float pi = p[i] - k.lr * ((mi * k.c1) / (sqrtf(vi * k.c2) + k.eps));
        p[i] = pi;
        a[i] = (float)(d * (double)a[i] + omd * (double)pi);
    }
}

/* The whole update: the blocks split evenly across the threads, then the tail. Each
 * element depends on itself only, so the result is the same for any thread count. */
static void update_all(const vib_optim *o, float *params, const float *grads, vib_ema *ema)
{
    const adam_coef k = o->kind == KIND_ADAM ? adam_coefs(o) : (adam_coef){0};
    const double d = ema ? ema_weight(ema) : 0.0;
    float *avg = ema ? ema->avg : NULL;
    const size_t n = o->n, blocks = n / BLOCK;
#pragma omp parallel num_threads(vibi_threads()) if (blocks >= PAR_BLOCKS)
    {
        const size_t t = (size_t)omp_get_thread_num(), nt = (size_t)omp_get_num_threads();
        update_blocks(o, k, blocks * t / nt, blocks * (t + 1) / nt, params, grads, avg, d);
    }
    update_range(o, k, blocks * BLOCK, n - blocks * BLOCK, params, grads, avg, d);
}

/* Everything a step checks before it writes, so a refused step leaves params, the
 * moments, the average and the counts exactly as they were. */
static int check_step(const char *fn, const vib_optim *opt, const float *params,
                      const float *grads)
{
    const size_t n = opt->n;
    TRY(vibi_check_ptr(fn, "params", params));
    TRY(vibi_check_ptr(fn, "grads", grads));
    if (overlaps(params, grads, n))
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: params and grads overlap", fn);
    size_t bad = first_bad(n, grads, opt->gmax);
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
    return VIB_OK;
}

int vib_optim_step(vib_optim *opt, float *params, const float *grads)
{
    static const char fn[] = "vib_optim_step";
    TRY(vibi_check_ptr(fn, "opt", opt));
    if (opt->n > 0) {
        TRY(check_step(fn, opt, params, grads));
        update_all(opt, params, grads, NULL);
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
        TRY(check_step(fn, opt, params, grads));
        if (overlaps(ema->avg, params, n) || overlaps(ema->avg, grads, n))
            return vibi_fail(VIB_ERR_INVALID_ARG, "%s: params or grads overlap the average",
                             fn);
        /* The parameters need no finiteness check before averaging: they were finite
         * (the caller's, checked by the step's bound on g) and a step moves each by at
         * most about lr (see adam_scalar). */
        update_all(opt, params, grads, ema);
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
    const size_t head = round_up(sizeof(vib_ema));
    char *mem = aligned_alloc(ALIGN, head + bytes);
    if (mem == NULL)
        return vibi_fail(VIB_ERR_NOMEM, "%s: cannot allocate %zu bytes", fn, head + bytes);
    vib_ema *e = (vib_ema *)mem;
    e->n = n;
    e->decay = decay;
    e->updates = 0;
    e->avg = (float *)(mem + head);
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
    size_t i = 0;
    for (; i + BLOCK <= n; i += BLOCK)
        ema_block(BLOCK, ema->avg + i, params + i, d, omd);
    ema_block(n - i, ema->avg + i, params + i, d, omd);
    ema->updates++;
    return VIB_OK;
}

const float *vib_ema_values(const vib_ema *ema)
{
    return ema ? ema->avg : NULL;
}
