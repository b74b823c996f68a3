/* demo.h - version 1 of a throw-away library for tests/abi/gate_test.sh: what the ABI
 * gate must guard, in miniature. tests/abi/gate_test.sh derives each variant it tests
 * from a copy of these three files by one small edit (its function variant()). */
#ifndef DEMO_H
#define DEMO_H

#include <stddef.h>

/* Status codes as libvib's are: an anonymous enum, passed around as int, so no
 * function's type reaches it (abidiff cannot see it; the .enums check does). */
enum { DEMO_OK = 0, DEMO_ERR_ARG = -1, DEMO_ERR_IO = -2 };

/* A named enum that a function takes: abidiff sees it. */
enum demo_color { DEMO_RED, DEMO_GREEN, DEMO_BLUE };

typedef struct demo_ctx demo_ctx; /* opaque: its layout is private */

int demo_ctx_create(int size, demo_ctx **out);
int demo_ctx_size(const demo_ctx *ctx);
void demo_ctx_free(demo_ctx *ctx);
int demo_scale(float *x, size_t n, float k);
int demo_paint(enum demo_color c);

#endif
