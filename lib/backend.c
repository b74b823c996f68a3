/*
 * backend.c - which BLIS kernels run, and how many threads the library uses.
 *
 * Kernels. A "fat" BLIS build (Debian's among them) carries kernel sets for several
 * CPU generations and picks one at its first call, from CPUID, unless the environment
 * variable BLIS_ARCH_TYPE names one. BLIS 0.9.0 does not know CPUs newer than its
 * release: on an AMD Zen 5 it falls back to the "generic" kernels, about 5x slower than
 * its AVX-512 (skx) set, which that CPU runs. So, when libvib is loaded (a constructor,
 * before main or at dlopen) and the user has not set BLIS_ARCH_TYPE, libvib reads the
 * CPU's features and the OS's register-state support itself and, if the BLIS it was
 * built against contains a matching kernel set, sets BLIS_ARCH_TYPE for BLIS to read
 * and initializes BLIS:
 *   an AMD family 17h or 19h CPU (Zen 1 to Zen 4), which BLIS 0.9.0
 *     recognises itself (on Zen 4 its zen3 kernels beat skx), if the build
 *     has the zen sets for it                                            -> BLIS decides
 *   AVX-512 F, DQ, BW and VL, with the OS saving the opmask and ZMM state -> skx
 *   AVX2 with FMA, with the OS saving the YMM state (and no AVX-512)      -> haswell
 *   anything else                                                        -> BLIS decides
 * Those are the instruction sets the skx and haswell kernels use, so the choice cannot
 * fault. BLIS aborts on an id its build did not register, so an id is only set when
 * the BLIS header compiled against says the build registered that kernel set and the
 * loaded BLIS gives the id the same name (its numbering is the header's). BLIS's
 * choice is then fixed for the life of the process, and libvib removes the variable
 * again so child processes see the environment as it was. VIB_BLIS_ARCH=blis turns
 * all of this off.
 * vib_backend_info reports what happened.
 *
 * Product paths. Which of BLIS's two ways to run a product, packed or small/unpacked
 * ("sup"), libvib asks for is gemm.c's rule; it needs to know whether the kernel set BLIS
 * runs has sup kernels worth choosing (vibi_gemm_kernels_have_sup), and whether the user
 * overrode the rule with VIB_GEMM_PATH, read here once at load.
 *
 * Threads. One process-wide count used by every product (through a BLIS rntm_t, so
 * BLIS's own global setting is left alone) and every threaded elementwise pass: set by
 * vib_set_num_threads, else BLIS_NUM_THREADS or else OMP_NUM_THREADS if it is a
 * positive integer (clamped to VIB_MAX_THREADS), else the CPUs this process may run on.
 * A forked child runs on one thread.
 */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include <blis.h>
#include <omp.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "internal.h"

/* vib_set_num_threads's count; 0: the default; FORKED_CHILD: one thread, set by
 * after_fork_in_child (one variable, so vib_backend_info reads count and reason alike). */
static atomic_int user_threads;
#define FORKED_CHILD (-1)
static void after_fork_in_child(void);

/* What the constructor found and did, for vib_backend_info. */
static const char *arch_wanted; /* the kernel set libvib asked for, or NULL */
static const char *arch_reason; /* why, or why not */

/* ---- CPU features ---------------------------------------------------------------- */

enum { CPU_AVX2_FMA = 1, CPU_AVX512 = 2 };

#if defined(__x86_64__) || defined(__i386__)
static uint64_t xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

/* The vector extensions the CPU has and the OS has enabled (XCR0), and in *amd_zen the
 * family of an AMD family-17h/19h part (0 for any other CPU). */
static int cpu_features(int *amd_zen)
{
    unsigned a, b, c, d, max_leaf;
    *amd_zen = 0;
    if (!__get_cpuid(0, &max_leaf, &b, &c, &d))
        return 0;
    const bool amd = b == 0x68747541u && d == 0x69746e65u && c == 0x444d4163u; /* AuthenticAMD */
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    unsigned family = (a >> 8) & 0xf;
    if (family == 0xf)
        family += (a >> 20) & 0xff;
    *amd_zen = amd && (family == 0x17 || family == 0x19) ? (int)family : 0;
    const bool fma = c & (1u << 12), osxsave = c & (1u << 27), avx = c & (1u << 28);
    if (!osxsave || !avx || max_leaf < 7)
        return 0;
    const uint64_t xcr0 = xgetbv0();
    const bool os_ymm = (xcr0 & 0x6) == 0x6;          /* SSE and AVX state */
    const bool os_zmm = os_ymm && (xcr0 & 0xe0) == 0xe0; /* opmask, ZMM0-15 high, ZMM16-31 */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return 0;
    const bool avx2 = b & (1u << 5);
    const bool avx512 = (b & (1u << 16)) && (b & (1u << 17)) && (b & (1u << 30)) &&
                        (b & (1u << 31)); /* F, DQ, BW, VL */
    int f = 0;
    if (os_ymm && avx2 && fma)
        f |= CPU_AVX2_FMA;
    if (os_zmm && avx512 && (f & CPU_AVX2_FMA))
        f |= CPU_AVX512;
    return f;
}
#else
static int cpu_features(int *amd_zen)
{
    *amd_zen = 0;
    return 0;
}
#endif

/* The kernel set to request, or -1 to leave the choice to BLIS; sets arch_reason. */
static int choose_arch(void)
{
    int amd_zen;
    const int f = cpu_features(&amd_zen);
    /* BLIS 0.9.0 knows AMD families 17h and 19h (Zen 1 to Zen 4) and runs its zen,
     * zen2 or zen3 kernels there, if its build has them (else its generic ones). A Zen 4
     * has AVX-512, but executes it on 256-bit units: there the zen3 (AVX2) set measured
     * faster than skx, 110 against 104 GFLOP/s on a 2000^3 product and 102 against 83
     * on the paper network's products, one core (docs/performance.md). So a Zen of
     * those families keeps BLIS's own choice when the build has its sets. */
#if defined(BLIS_CONFIG_ZEN3)
    if (amd_zen == 0x19) {
        arch_reason = "an AMD family 19h CPU, which BLIS recognises: BLIS's own choice";
        return -1;
    }
#endif
#if defined(BLIS_CONFIG_ZEN) && defined(BLIS_CONFIG_ZEN2)
    if (amd_zen == 0x17) {
        arch_reason = "an AMD family 17h CPU, which BLIS recognises: BLIS's own choice";
        return -1;
    }
#endif
#if defined(BLIS_CONFIG_SKX)
    if (f & CPU_AVX512) {
        arch_reason = "AVX-512 F/DQ/BW/VL enabled by the OS";
        return BLIS_ARCH_SKX;
    }
#endif
#if defined(BLIS_CONFIG_HASWELL)
    if ((f & CPU_AVX2_FMA) && !(f & CPU_AVX512)) {
        arch_reason = "AVX2 and FMA enabled by the OS";
        return BLIS_ARCH_HASWELL;
    }
#endif
    arch_reason = f ? "no matching kernel set in this BLIS build: BLIS's own choice"
                    : "no AVX2/FMA: BLIS's own choice";
    return -1;
}

/* ---- product paths --------------------------------------------------------------- */

static int gemm_path = VIBI_GEMM_RULE; /* VIB_GEMM_PATH, read at load */
static const char *gemm_path_note = "libvib's rule";

int vibi_gemm_path_parse(const char *value, const char **note)
{
    if (value == NULL || strcmp(value, "auto") == 0) {
        *note = "libvib's rule";
        return VIBI_GEMM_RULE;
    }
    if (strcmp(value, "blis") == 0) {
        *note = "BLIS's choice (VIB_GEMM_PATH=blis)";
        return VIBI_GEMM_BLIS;
    }
    if (strcmp(value, "packed") == 0) {
        *note = "packed (VIB_GEMM_PATH=packed)";
        return VIBI_GEMM_PACKED;
    }
    *note = "libvib's rule (VIB_GEMM_PATH is not auto, blis or packed: ignored)";
    return VIBI_GEMM_RULE;
}

int vibi_gemm_path(void)
{
    return gemm_path;
}

static int sup_kernels;
static pthread_once_t kernels_once = PTHREAD_ONCE_INIT;

/* BLIS 0.9.0's AVX2 sets for AMD and Intel register small/unpacked kernels whose speed
 * differs from the packed path's by shape; the skx set registers none (both paths run
 * the same code), and the other sets are left to BLIS. */
static void find_kernels(void)
{
    bli_init();
    const char *name = bli_arch_string(bli_arch_query_id());
    static const char *const with_sup[] = {"haswell", "zen", "zen2", "zen3"};
    for (size_t i = 0; name != NULL && i < sizeof with_sup / sizeof with_sup[0]; i++)
        if (strcmp(name, with_sup[i]) == 0)
            sup_kernels = 1;
}

bool vibi_gemm_kernels_have_sup(void)
{
    pthread_once(&kernels_once, find_kernels);
    return sup_kernels;
}

/* Runs when the library is loaded (dlopen, or before main). */
__attribute__((constructor)) static void select_blis_kernels(void)
{
    pthread_atfork(NULL, NULL, after_fork_in_child);
    gemm_path = vibi_gemm_path_parse(getenv("VIB_GEMM_PATH"), &gemm_path_note);
    const char *opt = getenv("VIB_BLIS_ARCH");
    if (getenv("BLIS_ARCH_TYPE") != NULL) {
        arch_reason = "BLIS_ARCH_TYPE set by the user";
        return;
    }
    if (opt != NULL && strcmp(opt, "blis") == 0) {
        arch_reason = "VIB_BLIS_ARCH=blis: BLIS's own choice";
        return;
    }
    const int id = choose_arch();
    if (id < 0)
        return;
    /* The id is the header's enum value: make sure the loaded BLIS numbers its kernel
     * sets the same way before handing it over. */
    const char *name = bli_arch_string((arch_t)id);
    if (name == NULL || strcmp(name, id == BLIS_ARCH_SKX ? "skx" : "haswell") != 0) {
        arch_reason = "the loaded BLIS numbers its kernel sets differently: BLIS's own choice";
        return;
    }
    char buf[16];
    snprintf(buf, sizeof buf, "%d", id);
    if (setenv("BLIS_ARCH_TYPE", buf, 0) != 0)
        return;
    arch_wanted = bli_arch_string((arch_t)id);
    /* BLIS reads the variable once, when it first looks up its kernels; that lookup is
     * only valid after its initialization, so initialize it first (a no-op if the host
     * program already has). */
    bli_init();
    (void)bli_arch_query_id();
    unsetenv("BLIS_ARCH_TYPE");
}

/* ---- threads --------------------------------------------------------------------- */

static int default_threads;
static const char *default_source;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

/* A positive integer from the environment variable `name`, clamped to VIB_MAX_THREADS,
 * or 0 if it is unset or not one. */
static int env_threads(const char *name)
{
    const char *env = getenv(name);
    if (env == NULL)
        return 0;
    char *end;
    long v = strtol(env, &end, 10);
    if (end == env || *end != '\0' || v < 1)
        return 0;
    return v > VIB_MAX_THREADS ? VIB_MAX_THREADS : (int)v;
}

static void find_default_threads(void)
{
    static const char *const vars[] = {"BLIS_NUM_THREADS", "OMP_NUM_THREADS"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const int v = env_threads(vars[i]);
        if (v > 0) {
            default_threads = v;
            default_source = vars[i];
            return;
        }
    }
    int n = 0;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        n = CPU_COUNT(&set);
    if (n < 1) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c >= 1 ? (int)c : 1;
    }
    default_threads = n < VIB_MAX_THREADS ? n : VIB_MAX_THREADS;
    default_source = "available CPUs";
}

/* GNU OpenMP's worker threads do not survive fork(): a child that starts a parallel
 * region of more than one thread waits for them forever. So a forked child runs
 * libvib on one thread (its own vib_set_num_threads can raise that, at that risk). */
static void after_fork_in_child(void)
{
    atomic_store(&user_threads, FORKED_CHILD);
}
int vib_set_num_threads(int n)
{
    if (n < 0 || n > VIB_MAX_THREADS)
        return vibi_fail(VIB_ERR_INVALID_ARG,
                         "vib_set_num_threads: n = %d is outside [0, %d] (0 = the default)", n,
                         VIB_MAX_THREADS);
    atomic_store(&user_threads, n);
    return VIB_OK;
}

int vib_num_threads(void)
{
    int n = atomic_load(&user_threads);
    if (n > 0)
        return n;
    if (n == FORKED_CHILD)
        return 1;
    pthread_once(&default_once, find_default_threads);
    return default_threads;
}

int vibi_threads(void)
{
    return vib_num_threads();
}

void vibi_share(size_t n, size_t align, size_t *lo, size_t *hi)
{
    const size_t t = (size_t)omp_get_thread_num(), nt = (size_t)omp_get_num_threads();
    const size_t units = (n + align - 1) / align;
    const size_t a = units * t / nt * align, b = units * (t + 1) / nt * align;
    *lo = a < n ? a : n;
    *hi = b < n ? b : n;
}

/* ---- report ---------------------------------------------------------------------- */

int vib_backend_info(char *buf, size_t len)
{
    if (buf == NULL && len > 0)
        return vibi_fail(VIB_ERR_INVALID_ARG, "vib_backend_info: buf is NULL, len is %zu", len);
    bli_init(); /* BLIS 0.9.0 aborts on an id query before its initialization when
                 * BLIS_ARCH_TYPE is set */
    const arch_t id = bli_arch_query_id();
    const char *active = bli_arch_string(id);
    const int setting = atomic_load(&user_threads);
    const char *source = setting > 0              ? "vib_set_num_threads"
                         : setting == FORKED_CHILD ? "a forked child"
                                                   : NULL;
    if (source == NULL) {
        pthread_once(&default_once, find_default_threads);
        source = default_source;
    }
    const int threads = setting > 0 ? setting : setting == FORKED_CHILD ? 1 : default_threads;
    char note[160];
    if (arch_wanted != NULL && strcmp(arch_wanted, active) != 0)
        snprintf(note, sizeof note, "libvib asked for %s (%s) but BLIS had already chosen",
                 arch_wanted, arch_reason);
    else if (arch_wanted != NULL)
        snprintf(note, sizeof note, "chosen by libvib: %s", arch_reason);
    else
        snprintf(note, sizeof note, "%s", arch_reason ? arch_reason : "BLIS's own choice");
    /* The rule only chooses where the kernel set has sup kernels. */
    const char *paths = gemm_path == VIBI_GEMM_RULE && !vibi_gemm_kernels_have_sup()
                            ? "BLIS's choice (no sup kernels to choose)"
                            : gemm_path_note;
    int n = snprintf(buf, len, "BLIS %s, kernels %s (%s), %d thread%s (%s), products: %s",
                     bli_info_get_version_str(), active, note, threads, threads == 1 ? "" : "s",
                     source, paths);
    return n < 0 ? vibi_fail(VIB_ERR_INVALID_ARG, "vib_backend_info: formatting failed") : n;
}
