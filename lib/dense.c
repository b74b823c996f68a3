/*
 * dense.c - a fully connected layer: y = x W + b, its gradients, its initialization.
 * All products go through vibi_sgemm (docs/math.md#dense-layer). The arithmetic works
 * on a vibi_layer view so the model can run the same code over its flat arrays.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct vib_dense {
    vibi_layer l; /* w, dw, b, db follow the struct in the same allocation, 64-byte aligned */
};

#define ALIGN 64

static size_t round_up(size_t x)
{
    return (x + ALIGN - 1) / ALIGN * ALIGN;
}

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
    /* dx = dy W^T   ([batch x out] [out x in]) */
    if (dx != NULL)
        vibi_sgemm(false, true, batch, in, out, 1.0f, dy, out, l->w, out, 0.0f, dx, in);
}

int vib_dense_create(size_t in, size_t out, int init, vib_rng *rng, vib_dense **out_layer)
{
    static const char fn[] = "vib_dense_create";
    if (out_layer == NULL)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: out_layer is NULL", fn);
    if (in == 0 || out == 0)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: sizes must be positive, got %zu x %zu", fn,
                         in, out);
    if (init < VIB_INIT_HE || init > VIB_INIT_ZERO)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: unknown init scheme %d", fn, init);
    if (rng == NULL && init != VIB_INIT_ZERO)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: rng is NULL", fn);
    /* Two weight arrays and two bias arrays, each rounded up to ALIGN: bound every term
     * by SIZE_MAX / 8 so neither the products nor the sum can wrap. */
    size_t nw, wbytes, bbytes, total;
    const size_t cap = SIZE_MAX / 8;
    if (!vibi_mul_size(in, out, &nw) || !vibi_mul_size(nw, sizeof(float), &wbytes) ||
        wbytes > cap || out > cap / sizeof(float))
        return vibi_fail(VIB_ERR_NOMEM, "%s: %zu x %zu weights overflow size_t", fn, in, out);
    wbytes = round_up(wbytes);
    bbytes = round_up(out * sizeof(float));
    total = round_up(sizeof(vib_dense)) + 2 * wbytes + 2 * bbytes;
    char *mem = aligned_alloc(ALIGN, total);
    if (mem == NULL)
        return vibi_fail(VIB_ERR_NOMEM, "%s: cannot allocate %zu bytes", fn, total);
    vib_dense *d = (vib_dense *)mem;
    char *p = mem + round_up(sizeof(vib_dense));
    d->l = (vibi_layer){.in = in,
                        .out = out,
                        .w = (float *)p,
                        .dw = (float *)(p + wbytes),
                        .b = (float *)(p + 2 * wbytes),
                        .db = (float *)(p + 2 * wbytes + bbytes)};
    int rc = vibi_layer_init(&d->l, init, rng);
    if (rc != VIB_OK) {
        free(mem);
        return rc;
    }
    memset(d->l.dw, 0, nw * sizeof(float));
    memset(d->l.db, 0, out * sizeof(float));
    *out_layer = d;
    return VIB_OK;
}

void vib_dense_free(vib_dense *layer)
{
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
    if (layer == NULL)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: layer is NULL", fn);
    size_t n;
    size_t widest = layer->l.in > layer->l.out ? layer->l.in : layer->l.out;
    if (!vibi_mul_size(batch, widest, &n) || n > SIZE_MAX / sizeof(float))
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: batch %zu overflows size_t", fn, batch);
    if (batch == 0)
        return VIB_OK;
    if (x == NULL)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: x is NULL", fn);
    return vibi_check_finite(fn, "x", batch * layer->l.in, x);
}

int vib_dense_forward(const vib_dense *layer, size_t batch, const float *x, float *y)
{
    static const char fn[] = "vib_dense_forward";
    int rc = check_batch(fn, layer, batch, x);
    if (rc != VIB_OK || batch == 0)
        return rc;
    if (y == NULL)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: y is NULL", fn);
    vibi_layer_forward(&layer->l, batch, x, y, false);
    return VIB_OK;
}

int vib_dense_backward(vib_dense *layer, size_t batch, const float *x, const float *dy,
                       float *dx)
{
    static const char fn[] = "vib_dense_backward";
    int rc = check_batch(fn, layer, batch, x);
    if (rc != VIB_OK || batch == 0)
        return rc;
    if (dy == NULL)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: dy is NULL", fn);
    rc = vibi_check_finite(fn, "dy", batch * layer->l.out, dy);
    if (rc != VIB_OK)
        return rc;
    vibi_layer_products(&layer->l, batch, x, dy, dx, true);
    vibi_colsum(batch, layer->l.out, dy, layer->l.db, true); /* db += column sums of dy */
    return VIB_OK;
}
