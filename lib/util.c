/* util.c - the helpers every lib/ file shares: one aligned-block allocator and the
 * text-copy convention of the functions that fill a caller's buffer. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

size_t vibi_round_up(size_t bytes)
{
    return (bytes + VIBI_ALIGN - 1) / VIBI_ALIGN * VIBI_ALIGN;
}

void *vibi_alloc_parts(size_t n, const size_t *bytes, void **parts)
{
    /* Every part is bounded by SIZE_MAX / 8 / n, so neither a rounding up nor the sum
     * can wrap. */
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (bytes[i] > SIZE_MAX / 8 / n)
            return NULL;
        total += vibi_round_up(bytes[i]);
    }
    char *mem = aligned_alloc(VIBI_ALIGN, total > 0 ? total : VIBI_ALIGN);
    if (mem == NULL)
        return NULL;
    for (size_t i = 0, off = 0; i < n; i++) {
        parts[i] = mem + off;
        off += vibi_round_up(bytes[i]);
    }
    return mem;
}

int vibi_copy_text(const char *text, char *buf, size_t len)
{
    const size_t n = strlen(text);
    if (len > 0) {
        const size_t c = n < len - 1 ? n : len - 1;
        memcpy(buf, text, c);
        buf[c] = '\0';
    }
    return n > (size_t)INT32_MAX ? INT32_MAX : (int)n;
}
