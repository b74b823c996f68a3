/*
 * dense.c - a fully connected layer: y = x W + b, its gradients, its initialization.
 * All products go through vibi_sgemm (docs/math.md#dense-layer).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct vib_dense {
    size_t in, out;
    float *w;  /* [in x out] */
    float *b;  /* [out] */
    float *dw; /* [in x out] */
    float *db; /* [out] */
    /* w, b, dw, db follow the struct in the same allocation, 64-byte aligned. */
};

#define ALIGN 64

static size_t round_up(size_t x)
{
    return (x + ALIGN - 1) / ALIGN * ALIGN;
}

/* Draw the initial weights. Each output sums `in` terms w_ij x_i; with var(w) = c/in
 * its variance is c * E[x^2], independent of the width (docs/math.md#initialization). */
static int init_weights(float *w, size_t in, size_t out, int init, vib_rng *rng)
{
    size_t n = in * out;
    switch (init) {
    case VIB_INIT_HE: return vib_rng_normal(rng, n, 0.0f, (float)sqrt(2.0 / (double)in), w);
    case VIB_INIT_LECUN: return vib_rng_normal(rng, n, 0.0f, (float)sqrt(1.0 / (double)in), w);
    case VIB_INIT_GLOROT: {
        float a = (float)sqrt(6.0 / ((double)in + (double)out));
        return vib_rng_uniform(rng, n, -a, a, w);
    }
    default: /* VIB_INIT_ZERO, validated by the caller */
        memset(w, 0, n * sizeof *w);
        return VIB_OK;
    }
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
    vib_dense *l = (vib_dense *)mem;
    char *p = mem + round_up(sizeof(vib_dense));
    l->in = in;
    l->out = out;
    l->w = (float *)p;
    l->dw = (float *)(p + wbytes);
    l->b = (float *)(p + 2 * wbytes);
    l->db = (float *)(p + 2 * wbytes + bbytes);
    int rc = init_weights(l->w, in, out, init, rng);
    if (rc != VIB_OK) {
        free(mem);
        return rc;
    }
    memset(l->dw, 0, nw * sizeof(float));
    memset(l->b, 0, out * sizeof(float));
    memset(l->db, 0, out * sizeof(float));
    *out_layer = l;
    return VIB_OK;
}

void vib_dense_free(vib_dense *layer)
{
    free(layer);
}

size_t vib_dense_in(const vib_dense *layer)
{
    return layer ? layer->in : 0;
}

size_t vib_dense_out(const vib_dense *layer)
{
    return layer ? layer->out : 0;
}

float *vib_dense_weights(vib_dense *layer)
{
    return layer ? layer->w : NULL;
}

float *vib_dense_bias(vib_dense *layer)
{
    return layer ? layer->b : NULL;
}

float *vib_dense_weights_grad(vib_dense *layer)
{
    return layer ? layer->dw : NULL;
}

float *vib_dense_bias_grad(vib_dense *layer)
{
    return layer ? layer->db : NULL;
}

int vib_dense_zero_grad(vib_dense *layer)
{
    if (layer == NULL)
        return vibi_fail(VIB_ERR_INVALID_ARG, "vib_dense_zero_grad: layer is NULL");
    memset(layer->dw, 0, layer->in * layer->out * sizeof(float));
    memset(layer->db, 0, layer->out * sizeof(float));
    return VIB_OK;
}

/* The checks forward and backward share: the layer, the batch size and x. */
static int check_batch(const char *fn, const vib_dense *layer, size_t batch, const float *x)
{
    if (layer == NULL)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: layer is NULL", fn);
    size_t n;
    if (!vibi_mul_size(batch, layer->in > layer->out ? layer->in : layer->out, &n) ||
        n > SIZE_MAX / sizeof(float))
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: batch %zu overflows size_t", fn, batch);
    if (batch == 0)
        return VIB_OK;
    if (x == NULL)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: x is NULL", fn);
    return vibi_check_finite(fn, "x", batch * layer->in, x);
}

int vib_dense_forward(const vib_dense *layer, size_t batch, const float *x, float *y)
{
    static const char fn[] = "vib_dense_forward";
    int rc = check_batch(fn, layer, batch, x);
    if (rc != VIB_OK || batch == 0)
        return rc;
    if (y == NULL)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: y is NULL", fn);
    const size_t in = layer->in, out = layer->out;
    /* y = b broadcast over rows, then y += x W in one product. */
    for (size_t r = 0; r < batch; r++)
        memcpy(y + r * out, layer->b, out * sizeof(float));
    vibi_sgemm(false, false, batch, out, in, 1.0f, x, in, layer->w, out, 1.0f, y, out);
    return VIB_OK;
}

int vib_dense_backward(vib_dense *layer, size_t batch, const float *x, const float *dy,
                       float *dx)
{
    static const char fn[] = "vib_dense_backward";
    int rc = check_batch(fn, layer, batch, x);
    if (rc != VIB_OK || batch == 0)
        return rc;
    const size_t in = layer->in, out = layer->out;
    if (dy == NULL)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: dy is NULL", fn);
    rc = vibi_check_finite(fn, "dy", batch * out, dy);
    if (rc != VIB_OK)
        return rc;
    /* dW += x^T dy   ([in x batch] [batch x out]) */
    vibi_sgemm(true, false, in, out, batch, 1.0f, x, in, dy, out, 1.0f, layer->dw, out);
    /* db += column sums of dy */
    for (size_t r = 0; r < batch; r++)
        for (size_t j = 0; j < out; j++)
            layer->db[j] += dy[r * out + j];
    /* dx = dy W^T   ([batch x out] [out x in]) */
    if (dx != NULL)
        vibi_sgemm(false, true, batch, in, out, 1.0f, dy, out, layer->w, out, 0.0f, dx, in);
    return VIB_OK;
}
