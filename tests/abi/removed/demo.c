/* demo.c - variant "removed" of the library of demo.h (tests/abi/gate_test.sh). */
#include <stdlib.h>

#include "demo.h"

struct demo_ctx {
    int size;
};

int demo_ctx_create(int size, demo_ctx **out)
{
    demo_ctx *c = malloc(sizeof *c);
    if (c == NULL)
        return DEMO_ERR_IO;
    c->size = size;
    *out = c;
    return DEMO_OK;
}

void demo_ctx_free(demo_ctx *ctx)
{
    if (ctx)
        ctx->size = 0;
    free(ctx);
}

int demo_scale(float *x, size_t n, float k)
{
    for (size_t i = 0; i < n; i++)
        x[i] *= k;
    return DEMO_OK;
}

int demo_paint(enum demo_color c)
{
    return c == DEMO_BLUE ? 2 : (int)c;
}
