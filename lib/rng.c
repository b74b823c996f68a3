/*
 * rng.c - the seeded generator: xoshiro256** (Blackman and Vigna, 2018), seeded by
 * splitmix64, with Box-Muller normals. One state per handle, nothing global.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "internal.h"

#define VIB_TWO_PI 6.283185307179586476925286766559

struct vib_rng {
    uint64_t s[4];
    double spare;   /* the second value of the last Box-Muller pair */
    bool has_spare;
};

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t next_u64(vib_rng *r)
{
    uint64_t *s = r->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

static void reseed(vib_rng *r, uint64_t seed)
{
    /* splitmix64 never yields four zero words from one seed, so the xoshiro state is
     * never the all-zero fixed point. */
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
    r->has_spare = false;
    r->spare = 0.0;
}

int vib_rng_create(uint64_t seed, vib_rng **out)
{
    if (out == NULL)
        return vibi_fail(VIB_ERR_INVALID_ARG, "vib_rng_create: out is NULL");
    vib_rng *r = malloc(sizeof *r);
    if (r == NULL)
        return vibi_fail(VIB_ERR_NOMEM, "vib_rng_create: cannot allocate the generator");
    reseed(r, seed);
    *out = r;
    return VIB_OK;
}

void vib_rng_free(vib_rng *rng)
{
    free(rng);
}

int vib_rng_seed(vib_rng *rng, uint64_t seed)
{
    if (rng == NULL)
        return vibi_fail(VIB_ERR_INVALID_ARG, "vib_rng_seed: rng is NULL");
    reseed(rng, seed);
    return VIB_OK;
}

int vib_rng_u64(vib_rng *rng, uint64_t *out)
{
    if (rng == NULL || out == NULL)
        return vibi_fail(VIB_ERR_INVALID_ARG, "vib_rng_u64: %s is NULL",
                         rng == NULL ? "rng" : "out");
    *out = next_u64(rng);
    return VIB_OK;
}

double vibi_rng_open_unit(vib_rng *rng)
{
    return (double)((next_u64(rng) >> 11) + 1) * 0x1.0p-53;
}

int vib_rng_uniform(vib_rng *rng, size_t n, float lo, float hi, float *out)
{
    static const char fn[] = "vib_rng_uniform";
    if (rng == NULL)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: rng is NULL", fn);
    if (n == 0)
        return VIB_OK;
    if (out == NULL)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: out is NULL", fn);
    if (!isfinite(lo) || !isfinite(hi))
        return vibi_fail(VIB_ERR_NUMERIC, "%s: bounds [%g, %g) are not finite", fn,
                         (double)lo, (double)hi);
    if (!(lo < hi))
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: need lo < hi, got [%g, %g)", fn,
                         (double)lo, (double)hi);
    const double width = (double)hi - (double)lo;
    for (size_t i = 0; i < n; i++) {
        /* 24 bits: every value k * 2^-24 is exact in float, so u is in [0, 1). */
        float u = (float)(next_u64(rng) >> 40) * 0x1.0p-24f;
        float x = (float)((double)lo + width * (double)u);
        /* Rounding to float can land on hi when the interval is tiny; keep it open. */
        out[i] = x < hi ? x : nextafterf(hi, lo);
    }
    return VIB_OK;
}

/* One standard normal draw. Box-Muller: for u1 in (0, 1] and u2 in [0, 1),
 * r = sqrt(-2 log u1), (r cos 2 pi u2, r sin 2 pi u2) are two independent N(0, 1). */
static double next_normal(vib_rng *rng)
{
    if (rng->has_spare) {
        rng->has_spare = false;
        return rng->spare;
    }
    double u1 = vibi_rng_open_unit(rng);
    double u2 = (double)(next_u64(rng) >> 11) * 0x1.0p-53;
    double r = sqrt(-2.0 * log(u1));
    double t = VIB_TWO_PI * u2;
    rng->spare = r * sin(t);
    rng->has_spare = true;
    return r * cos(t);
}

int vib_rng_normal(vib_rng *rng, size_t n, float mean, float std, float *out)
{
    static const char fn[] = "vib_rng_normal";
    if (rng == NULL)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: rng is NULL", fn);
    if (n == 0)
        return VIB_OK;
    if (out == NULL)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: out is NULL", fn);
    if (!isfinite(mean) || !isfinite(std))
        return vibi_fail(VIB_ERR_NUMERIC, "%s: mean %g and std %g must be finite", fn,
                         (double)mean, (double)std);
    if (std < 0.0f)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: std = %g is negative", fn, (double)std);
    /* |N(0, 1)| <= sqrt(-2 log 2^-53) < 8.58 for this generator, so this bound keeps
     * every draw finite. */
    if (fabs((double)mean) + 8.58 * (double)std > (double)FLT_MAX)
        return vibi_fail(VIB_ERR_NUMERIC, "%s: mean %g and std %g can overflow float", fn,
                         (double)mean, (double)std);
    for (size_t i = 0; i < n; i++)
        out[i] = (float)((double)mean + (double)std * next_normal(rng));
    return VIB_OK;
}
