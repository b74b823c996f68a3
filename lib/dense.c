/*
 * dense.c - a fully connected layer: y = x W + b, its gradients, its initialization.
 * All products go through vibi_sgemm (docs/math.md#dense-layer). The arithmetic works
 * on a vibi_layer view so the model can run the same code over its flat arrays.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct vib_dense {
    vibi_layer l; /* w, dw, b, db follow the struct in the same allocation, 64-byte aligned */
    float *work;  /* the backward's products before they are added: grown, never shrunk */
    size_t work_cap;
};

/* Each output sums `in` terms w_ij x_i; with var(w) = c/in its variance is c * E[x^2],
 * independent of the width (docs/math.md#initialization). */
int vibi_layer_init(const vibi_layer *l, int init, vib_rng *rng)
{
    const size_t n = l->in * l->out;
    const double in = (double)l->in, out = (double)l->out;
    int rc = VIB_OK;
    switch (init) {
    case VIB_INIT_HE: rc = vib_rng_normal(rng, n, 0.0f, (float)sqrt(2.0 / in), l->w); break;
    case VIB_INIT_LECUN: rc = vib_rng_normal(rng, n, 0.0f, (float)sqrt(1.0 / in), l->w); break;
    case VIB_INIT_GLOROT: {
        float a = (float)sqrt(6.0 / (in + out));
        rc = vib_rng_uniform(rng, n, -a, a, l->w);
        break;
    }
    default: memset(l->w, 0, n * sizeof(float)); break; /* VIB_INIT_ZERO */
    }
    memset(l->b, 0, l->out * sizeof(float));
    return rc;
}

/* y = max(y + b, 0) (relu) or y + b, row by row: the bias and the activation in one
 * pass over the product's output. */
VIB_CLONES static void bias_act(size_t rows, size_t cols, const float *restrict b,
                                float *restrict y, bool relu)
{
    for (size_t r = 0; r < rows; r++) {
        float *yr = y + r * cols;
        if (relu) {
#pragma omp simd
            for (size_t j = 0; j < cols; j++) {
                const float v = yr[j] + b[j];
                yr[j] = v > 0.0f ? v : 0.0f;
            }
        } else {
#pragma omp simd
            for (size_t j = 0; j < cols; j++)
                yr[j] += b[j];
        }
    }
}

VIB_CLONES static void colsum(size_t rows, size_t cols, const float *restrict d,
                              float *restrict sum, bool accumulate)
{
    if (!accumulate)
        memset(sum, 0, cols * sizeof(float));
    for (size_t r = 0; r < rows; r++) { /* rows in order: the same sum every time */
        const float *dr = d + r * cols;
#pragma omp simd
        for (size_t j = 0; j < cols; j++)
            sum[j] += dr[j];
    }
}

void vibi_colsum(size_t rows, size_t cols, const float *d, float *sum, bool accumulate)
{
    colsum(rows, cols, d, sum, accumulate);
}

void vibi_layer_forward(const vibi_layer *l, size_t batch, const float *x, float *y, bool relu)
{
    const size_t in = l->in, out = l->out;
    vibi_sgemm(false, false, batch, out, in, 1.0f, x, in, l->w, out, 0.0f, y, out);
#pragma omp parallel num_threads(vibi_threads()) if (batch * out >= VIBI_PAR_ELEMS)
    {
        size_t r0, r1;
        vibi_share(batch, 1, &r0, &r1);
        bias_act(r1 - r0, out, l->b, y + r0 * out, relu);
    }
}

void vibi_layer_products(const vibi_layer *l, size_t batch, const float *x, const float *dy,
                         float *dx, bool accumulate)
{
    const size_t in = l->in, out = l->out;
    /* dW (+)= x^T dy   ([in x batch] [batch x out]); beta = 0 overwrites without reading */
    vibi_sgemm(true, false, in, out, batch, 1.0f, x, in, dy, out, accumulate ? 1.0f : 0.0f,
               l->dw, out);
    if (dx != NULL)
        vibi_layer_dx(l, batch, dy, dx, false);
}

void vibi_layer_dx(const vibi_layer *l, size_t batch, const float *dy, float *dx, bool accumulate)
{
    const size_t in = l->in, out = l->out;
    /* dx (+)= dy W^T   ([batch x out] [out x in]) */
    vibi_sgemm(false, true, batch, in, out, 1.0f, dy, out, l->w, out, accumulate ? 1.0f : 0.0f,
               dx, in);
}

int vib_dense_create(size_t in, size_t out, int init, vib_rng *rng, vib_dense **out_layer)
{
    static const char fn[] = "vib_dense_create";
    TRY(vibi_check_ptr(fn, "out_layer", out_layer));
    if (in == 0 || out == 0)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: sizes must be positive, got %zu x %zu", fn,
                         in, out);
    if (init < VIB_INIT_HE || init > VIB_INIT_ZERO)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: unknown init scheme %d", fn, init);
    if (rng == NULL && init != VIB_INIT_ZERO)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: rng is NULL", fn);
    size_t nw, wbytes;
    if (!vibi_mul_size(in, out, &nw) || !vibi_mul_size(nw, sizeof(float), &wbytes))
        return vibi_fail(VIB_ERR_NOMEM, "%s: %zu x %zu weights overflow size_t", fn, in, out);
    /* The handle, W, dW, b and db in one block. */
    const size_t bbytes = out * sizeof(float); /* out <= nw: cannot wrap */
    void *p[5];
    vib_dense *d = vibi_alloc_parts(5, (const size_t[]){sizeof(vib_dense), wbytes, wbytes,
                                                        bbytes, bbytes}, p);
    if (d == NULL)
        return vibi_fail(VIB_ERR_NOMEM, "%s: cannot allocate a %zu x %zu layer", fn, in, out);
    d->work = NULL;
    d->work_cap = 0;
    d->l = (vibi_layer){.in = in, .out = out, .w = p[1], .dw = p[2], .b = p[3], .db = p[4]};
    int rc = vibi_layer_init(&d->l, init, rng);
    if (rc != VIB_OK) {
        free(d);
        return rc;
    }
    memset(d->l.dw, 0, nw * sizeof(float));
    memset(d->l.db, 0, out * sizeof(float));
    *out_layer = d;
    return VIB_OK;
}

void vib_dense_free(vib_dense *layer)
{
    if (layer != NULL)
        free(layer->work);
    free(layer);
}

size_t vib_dense_in(const vib_dense *layer)
{
    return layer ? layer->l.in : 0;
}

size_t vib_dense_out(const vib_dense *layer)
{
    return layer ? layer->l.out : 0;
}

float *vib_dense_weights(vib_dense *layer)
{
    return layer ? layer->l.w : NULL;
}

float *vib_dense_bias(vib_dense *layer)
{
    return layer ? layer->l.b : NULL;
}

float *vib_dense_weights_grad(vib_dense *layer)
{
    return layer ? layer->l.dw : NULL;
}

float *vib_dense_bias_grad(vib_dense *layer)
{
    return layer ? layer->l.db : NULL;
}

int vib_dense_zero_grad(vib_dense *layer)
{
    if (layer == NULL)
        return vibi_fail(VIB_ERR_INVALID_ARG, "vib_dense_zero_grad: layer is NULL");
    memset(layer->l.dw, 0, layer->l.in * layer->l.out * sizeof(float));
    memset(layer->l.db, 0, layer->l.out * sizeof(float));
    return VIB_OK;
}

/* The checks forward and backward share: the layer, the batch size and x. */
static int check_batch(const char *fn, const vib_dense *layer, size_t batch, const float *x)
{
    TRY(vibi_check_ptr(fn, "layer", layer));
    size_t n;
    size_t widest = layer->l.in > layer->l.out ? layer->l.in : layer->l.out;
    if (!vibi_mul_size(batch, widest, &n) || n > SIZE_MAX / sizeof(float))
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: batch %zu overflows size_t", fn, batch);
    if (batch == 0)
        return VIB_OK;
    TRY(vibi_check_ptr(fn, "x", x));
    return vibi_check_finite(fn, "x", batch * layer->l.in, x);
}

int vib_dense_forward(const vib_dense *layer, size_t batch, const float *x, float *y)
{
    static const char fn[] = "vib_dense_forward";
    int rc = check_batch(fn, layer, batch, x);
    if (rc != VIB_OK || batch == 0)
        return rc;
    TRY(vibi_check_ptr(fn, "y", y));
    vibi_layer_forward(&layer->l, batch, x, y, false);
    return VIB_OK;
}

/* The layer's workspace of at least n floats; nothing is changed on failure. */
static int reserve(const char *fn, vib_dense *d, size_t n)
{
    if (n <= d->work_cap)
        return VIB_OK;
    size_t bytes;
    void *part;
    float *w = NULL;
    if (vibi_mul_size(n, sizeof(float), &bytes))
        w = vibi_alloc_parts(1, &bytes, &part);
    if (w == NULL)
        return vibi_fail(VIB_ERR_NOMEM, "%s: cannot allocate a workspace of %zu floats", fn, n);
    free(d->work);
    d->work = w;
    d->work_cap = n;
    return VIB_OK;
}

/* Whether every g[i] + p[i] can be stored: p[i] finite and the float sum within
 * FLT_MAX. The sum checked is the one then stored, so the test is exact, not a bound.
 * A NaN already in g passes, as in the nodes: only an infinity there is refused. */
static bool sums_fit(size_t n, const float *g, const float *p)
{
    int bad = 0;
#pragma omp simd reduction(| : bad)
    for (size_t i = 0; i < n; i++)
        bad |= !(fabsf(p[i]) <= FLT_MAX) | (fabsf(g[i] + p[i]) > FLT_MAX);
    return !bad;
}

/* The detail for the first element sums_fit refused, `g` named `what`, `p` the product
 * `prod` (e.g. "x^T dy"). */
static int refuse_sum(const char *fn, const char *what, const char *prod, size_t n,
                      const float *g, const float *p)
{
    size_t i = 0;
    while (i + 1 < n && fabsf(p[i]) <= FLT_MAX && !(fabsf(g[i] + p[i]) > FLT_MAX))
        i++;
    if (!(fabsf(p[i]) <= FLT_MAX))
        return vibi_fail(VIB_ERR_NUMERIC, "%s: %s[%zu]: %s gives %g, not finite", fn, what, i,
                         prod, (double)p[i]);
    return vibi_fail(VIB_ERR_NUMERIC, "%s: %s[%zu] = %g plus %s = %g overflows float", fn, what,
                     i, (double)g[i], prod, (double)p[i]);
}

static void add_into(size_t n, float *restrict g, const float *restrict p)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        g[i] += p[i];
}

/* Every backward accumulates, this one too: dW += x^T dy, db += column sums of dy and
 * dx += dy W^T. Refusing an overflow before anything is written needs the products
 * first: a bound on |x|^T |dy| would cost another product, so they are computed into
 * the layer's workspace, each sum with its buffer checked, and only then added. The
 * model writes its gradients through vibi_layer_products directly and has no such
 * check (docs/api.md#vib_dense_backward). */
int vib_dense_backward(vib_dense *layer, size_t batch, const float *x, const float *dy,
                       float *dx)
{
    static const char fn[] = "vib_dense_backward";
    int rc = check_batch(fn, layer, batch, x);
    if (rc != VIB_OK || batch == 0)
        return rc;
    TRY(vibi_check_ptr(fn, "dy", dy));
    TRY(vibi_check_finite(fn, "dy", batch * layer->l.out, dy));
    vibi_layer *l = &layer->l;
    /* nw and out fit in SIZE_MAX / 32 floats (vib_dense_create), nx in SIZE_MAX / 4
     * (check_batch): the sum cannot wrap. */
    const size_t nw = l->in * l->out, nx = dx != NULL ? batch * l->in : 0;
    TRY(reserve(fn, layer, nw + l->out + nx));
    float *pw = layer->work, *pb = pw + nw, *px = dx != NULL ? pb + l->out : NULL;
    vibi_layer scratch = *l;
    scratch.dw = pw;
    vibi_layer_products(&scratch, batch, x, dy, px, false); /* written into the workspace */
    vibi_colsum(batch, l->out, dy, pb, false);
    if (!sums_fit(nw, l->dw, pw))
        return refuse_sum(fn, "dW", "x^T dy", nw, l->dw, pw);
    if (!sums_fit(l->out, l->db, pb))
        return refuse_sum(fn, "db", "the column sum of dy", l->out, l->db, pb);
    if (dx != NULL && !sums_fit(nx, dx, px))
        return refuse_sum(fn, "dx", "dy W^T", nx, dx, px);
    add_into(nw, l->dw, pw);
    add_into(l->out, l->db, pb);
    if (dx != NULL)
        add_into(nx, dx, px);
    return VIB_OK;
}
