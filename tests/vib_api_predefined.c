/* vib_api_predefined.c - vib.h included with VIB_API defined beforehand (here as empty),
 * as an FFI binding generator or an unusual build may do: the header must keep that
 * definition rather than replace it. No suite of its own: test_backend.c calls these. */
#define VIB_API
#include "vib.h"

#define VIBT_STR(x) #x
#define VIBT_XSTR(x) VIBT_STR(x)

const char *vibt_api_expansion(void);
uint32_t vibt_api_version(void);

/* What VIB_API expands to after the header: "" if the header kept the definition. */
const char *vibt_api_expansion(void)
{
    return VIBT_XSTR(VIB_API);
}

/* A declaration read without the export attribute still names the library's function. */
uint32_t vibt_api_version(void)
{
    return vib_version_number();
}
