/*
 * vmath.h - branch-free single-precision exp, log, log1p and the softplus family, for
 * loops that GCC vectorizes under `#pragma omp simd` (internal; header only).
 *
 * Why: the Gaussian head evaluates softplus, sigmoid and log softplus over every latent
 * unit of a batch each step, and libm's scalar double calls cost several percent of an
 * epoch. These functions are float -> float and call nothing (no libm, no tables): only
 * float arithmetic, comparisons turned into mask selects, a float -> int32 conversion of
 * a small integral value, and bit casts through a union. A loop of them becomes
 * straight-line SIMD code (zmm with -march=x86-64-v4, ymm with v3, SSE2 otherwise).
 * Every function computes all its cases and selects at the end: no fast path, and
 * special inputs cost the same as any other.
 *
 * Accuracy, in ulps of the float result (ulp(y) = 2^(floor(log2 |y|) - 23), 2^-149 for
 * subnormals), against a double-precision libm reference, measured over EVERY float
 * input (all 2^32 bit patterns) built with -O2 for x86-64 (SSE2) and for x86-64-v4
 * (identical results), and with -ffp-contract=fast for x86-64-v3 (FMA; the second
 * number where it differs). tests/test_vmath.c asserts the bound in brackets on a
 * dense sweep of some 2^20 inputs per range.
 *
 *   vibi_vexpf         0.681 / 0.653 [0.75] where e^x is a normal float (x in
 *                      [-87.34, 88.72]). Below, gradual underflow: results rounded onto
 *                      the subnormal grid within 0.764 of its ulp (2^-149) [0.8], no
 *                      flush to zero; 0 for x < -103.98, +inf for x > 88.7228;
 *                      e^NaN = NaN, e^-inf = 0, e^inf = inf.
 *   vibi_vlogf         0.835 [0.9] for every positive float, subnormals included;
 *                      log(+-0) = -inf, log(x < 0) = NaN, log(inf) = inf.
 *   vibi_vlog1pf       0.863 / 0.835 [0.9] for every x > -1; log1p(x) = x exactly for
 *                      |x| < 2^-25 (no cancellation), log1p(-0) = -0,
 *                      log1p(-1) = -inf, log1p(x < -1) = NaN.
 *   vibi_vsoftplusf    1.192 / 1.182 [1.25] wherever softplus is a normal float
 *                      (x > -87.34); below, e^x on the subnormal grid (0.764 [0.8]);
 *                      exactly x for x > 17, never overflowing.
 *   vibi_vsigmoidf     0.780 / 0.770 [0.85] where the result is a normal float
 *                      (x > -87.34), subnormal grid below (0.764 [0.8]); 1 for x > 17.33.
 *   vibi_vlog_softplusf  0.875 / 0.854 [1.0] where |result| >= 2^-6, 1.535 [2.0] where
 *                      |result| >= 2^-10; closer to its zero at x0 = log(e - 1) = 0.5413
 *                      (|x - x0| < 0.0016) the error is absolute, below 1.43e-10
 *                      (2^-32.7) [2^-32], the result itself tending to 0. Finite for
 *                      every finite x: exactly x for x < -103.98, where softplus(x)
 *                      underflows to 0.
 *   vibi_vdlog_softplusf 0.922 / 0.802 [1.0] for every float (exactly 1 for x < -16.7,
 *                      1/x as x -> +inf, 0 at +inf).
 *   vibi_vlog_dbl      float -> double: log of a positive finite float within 1.4 units
 *                      of 2^-52 relative [2^-50], against logl (see its comment).
 * NaN in gives NaN out everywhere.
 *
 * Algorithms. The polynomial coefficients were fitted for this file: Chebyshev
 * (near-minimax) fits, mpmath.chebyfit(f, [a, b], degree + 1) in 50-digit arithmetic
 * for the function f and interval each #define block names, rounded to the nearest
 * float; the fit errors quoted are those before rounding.
 *
 *  exp   x = k ln2 + r, k = round(x / ln2) by the 1.5 * 2^23 shifter, r = x - k ln2_hi -
 *        k ln2_lo (Cody-Waite: ln2_hi has 15 significant bits, so k ln2_hi is exact for
 *        the |k| <= 151 that occur and so is its subtraction from x), |r| <= 0.347, with
 *        the rounding error of r kept. e^r = 1 + r + r^2 P(r), P of degree 5 fitted to
 *        (e^r - 1 - r) / r^2 on [-0.35, 0.35] (fit error 1.5e-9, 2e-10 relative to
 *        e^r); 1 + r is split exactly (Fast2Sum) and the small terms added to its tail,
 *        so e^r comes out as hi + lo, which the softplus family uses. The result is
 *        scaled by 2^k as 2^k1 * 2^k2 with k1 = k / 2 and k2 = k - k1, both normal
 *        powers of two: a subnormal result is rounded once, and overflow happens in the
 *        last multiply, as it should. x is first clamped to [-104, 89], which keeps k in
 *        range and NaN out of the integer conversion (NaN is put back at the end).
 *  log   x = 2^k m, m in [sqrt(1/2), sqrt(2)), from the exponent bits (a subnormal x is
 *        first scaled by 2^23); f = m - 1 exactly, s = f / (2 + f), and
 *        log(m) = 2 atanh(s) = f - f^2/2 + s (f^2/2 + s^2 Q(s^2)), Q of degree 3 fitted
 *        to (2 atanh(s) - 2s) / s^3 for s^2 in [0, 0.0297] (fit error 1.2e-9, entering
 *        the result multiplied by s^2/2 < 0.015). This arrangement, fdlibm's, leaves the
 *        rounding errors on terms much smaller than f; k ln2 is added in two parts.
 *  log1p u = 1 + x rounded, e = 1 + x - u exactly (Fast2Sum, ordered by |x| <= 1), then
 *        log(u) as above plus the first-order correction e / u.
 *  softplus  max(x, 0) + log1p(e^-|x|), with e^-|x| as hi + lo (log1p(hi + lo) folds lo
 *        into e). Its worst case, 1.19 ulp near x = 0.33, is the final rounding of x +
 *        log1p(t) on top of log1p's own error.
 *  sigmoid   n / (1 + t), t = e^-|x|, n = 1 for x >= 0 and t for x < 0; 1 + t is
 *        summed exactly and the rounding error of the quotient taken exactly (Dekker's
 *        product error, operands split by bit masks), so only the last rounding
 *        remains.
 *  log softplus  log(softplus(x)) is ill-conditioned where softplus(x) is near 1 (its
 *        zero, x0 = 0.5413) and amplifies errors by 1/|log softplus| (2.7 at x = 0): a
 *        softplus rounded to float would already cost 1-3 ulps of the log. So:
 *        x < -1       x + log(log1p(t) / t) with t = e^x (the suggested form), its second
 *                     term as t G(t), G of degree 6 fitted to log(log1p(t)/t) / t on
 *                     [0, e^-1] (fit error 1.5e-9); -> x - t/2 as t -> 0, and exactly x
 *                     once t underflows.
 *        -1 <= x <= 2 softplus(x) = ln2 + x/2 + log cosh(x/2) (softplus(x) - x/2 is
 *                     even), log cosh(a) = v/2 + v^2 H(v), v = a^2 taken exactly as
 *                     v + v_lo, H of degree 6 fitted to (log cosh(a) - v/2) / v^2 on
 *                     v in [0, 1] (fit error 1.3e-9); ln2 + a + v/2 is summed exactly,
 *                     so softplus is known as hi + lo to about 2^-33, and
 *                     log(hi + lo) = log(hi) + lo / hi.
 *        x > 2        hi + lo = x + log1p(e^-x) exactly (Fast2Sum), then the same log.
 *  dlog softplus  sigmoid(x) / softplus(x):
 *        x < -1       1 - t K(t), t = e^x, K of degree 6 fitted to
 *                     (1 - t / ((1 + t) log1p(t))) / t on [0, e^-1] (fit error 1.1e-8);
 *                     -> 1 as x -> -inf.
 *        x >= -1      the sigmoid and the softplus above, both as hi + lo, divided with
 *                     the quotient's rounding error taken exactly; -> 1/x as x -> inf.
 *
 * Requirements on the build: IEEE single precision evaluated in float (SSE, not x87:
 * FLT_EVAL_METHOD 0), round to nearest, subnormals not flushed (FTZ/DAZ would flush
 * the results this file rounds onto the subnormal grid, and nothing else), and no
 * -ffast-math: no -fassociative-math (the shifter and the exact sums rely on the
 * order of operations) and no -ffinite-math-only (the special-value selects). FMA
 * contraction (-ffp-contract=fast, e.g. -std=gnu11 with -march=x86-64-v3) is fine:
 * the exact sums involve no products, the partial products of the product error are
 * exact either way, and the bounds above hold with and without it.
 * No undefined behaviour (UBSan-clean): bit casts through a union, unsigned shifts,
 * and the one float -> int conversion is of an integral value within +-151.
 */
#ifndef VIB_VMATH_H
#define VIB_VMATH_H

#include <math.h>   /* INFINITY and NAN only: nothing here calls libm */
#include <stdint.h>
#include <string.h> /* memcpy, for vibi_vlog_dbl's bit cast of a double */

/* Forced inline: a loop over these vectorizes only if no call remains in its body. */
#define VIBI_VM_INLINE static inline __attribute__((always_inline))

/* Type punning through a union is defined in C11 (6.5.2.3, footnote 95). */
typedef union {
    float f;
    uint32_t u;
} vibi_vm_bits;

VIBI_VM_INLINE uint32_t vibi_vm_asuint(float x)
{
    vibi_vm_bits b;
    b.f = x;
    return b.u;
}

VIBI_VM_INLINE float vibi_vm_asfloat(uint32_t u)
{
    vibi_vm_bits b;
    b.u = u;
    return b.f;
}

/* 2^k for -126 <= k <= 127, from the exponent field. */
VIBI_VM_INLINE float vibi_vm_pow2i(int32_t k)
{
    return vibi_vm_asfloat((uint32_t)(k + 127) << 23);
}

#define VIBI_VM_LOG2E 0x1.715476p+0f    /* 1/ln2 rounded */
#define VIBI_VM_LN2_HI 0x1.62e4p-1f     /* ln2 to 15 bits: k * LN2_HI is exact, |k| <= 255 */
#define VIBI_VM_LN2_LO 0x1.7f7d1cp-20f  /* ln2 - LN2_HI, rounded */
#define VIBI_VM_LN2 0x1.62e430p-1f      /* ln2 rounded (0.693147182) */
#define VIBI_VM_LN2_TAIL -0x1.05c610p-29f /* ln2 - VIBI_VM_LN2, rounded */

/* exp: (e^r - 1 - r) / r^2 on [-0.35, 0.35], degree 5, fit error 1.5e-9. */
#define VIBI_VM_EXP_P0 0x1p-1f
#define VIBI_VM_EXP_P1 0x1.555556p-3f
#define VIBI_VM_EXP_P2 0x1.5554e4p-5f
#define VIBI_VM_EXP_P3 0x1.1110ep-7f
#define VIBI_VM_EXP_P4 0x1.6d491p-10f
#define VIBI_VM_EXP_P5 0x1.a12a34p-13f

/* log: (2 atanh(s) - 2s) / s^3 as a polynomial in z = s^2 on [0, 0.0297], degree 3,
 * fit error 1.2e-9. */
#define VIBI_VM_LOG_Q0 0x1.555556p-1f
#define VIBI_VM_LOG_Q1 0x1.9999eep-2f
#define VIBI_VM_LOG_Q2 0x1.245b28p-2f
#define VIBI_VM_LOG_Q3 0x1.de0b02p-3f

/* (log cosh(u) - u^2/2) / u^4 as a polynomial in v = u^2 on [0, 1], degree 6, fit
 * error 1.3e-9. */
#define VIBI_VM_LOGCOSH_H0 -0x1.555554p-4f
#define VIBI_VM_LOGCOSH_H1 0x1.6c1638p-6f
#define VIBI_VM_LOGCOSH_H2 -0x1.b9f8a6p-8f
#define VIBI_VM_LOGCOSH_H3 0x1.1cf218p-9f
#define VIBI_VM_LOGCOSH_H4 -0x1.6e7536p-11f
#define VIBI_VM_LOGCOSH_H5 0x1.908d18p-13f
#define VIBI_VM_LOGCOSH_H6 -0x1.f70bc6p-16f

/* log(log1p(t) / t) / t on [0, e^-1], degree 6, fit error 1.5e-9. */
#define VIBI_VM_LSP_G0 -0x1p-1f
#define VIBI_VM_LSP_G1 0x1.aaaa74p-3f
#define VIBI_VM_LSP_G2 -0x1.ffed28p-4f
#define VIBI_VM_LSP_G3 0x1.63bcd4p-4f
#define VIBI_VM_LSP_G4 -0x1.04052cp-4f
#define VIBI_VM_LSP_G5 0x1.548f0ap-5f
#define VIBI_VM_LSP_G6 -0x1.0d4a84p-6f

/* (1 - t / ((1 + t) log1p(t))) / t on [0, e^-1], degree 6, fit error 1.1e-8. */
#define VIBI_VM_DLSP_K0 0x1p-1f
#define VIBI_VM_DLSP_K1 -0x1.aaa9e8p-2f
#define VIBI_VM_DLSP_K2 0x1.7fde68p-2f
#define VIBI_VM_DLSP_K3 -0x1.62c1e2p-2f
#define VIBI_VM_DLSP_K4 0x1.3f5e12p-2f
#define VIBI_VM_DLSP_K5 -0x1.e0fc18p-3f
#define VIBI_VM_DLSP_K6 0x1.9c9a28p-4f

/* c ? a : b for c in {0, 1}, by masks: both a and b are computed in any case, and a
 * ternary operator would let GCC move the arithmetic of one side under a branch, which
 * it then cannot if-convert (the FP operations may trap under the default
 * -ftrapping-math): the loop would not vectorize. */
VIBI_VM_INLINE float vibi_vm_sel(int c, float a, float b)
{
    uint32_t m = 0u - (uint32_t)c;
    return vibi_vm_asfloat((vibi_vm_asuint(a) & m) | (vibi_vm_asuint(b) & ~m));
}

VIBI_VM_INLINE float vibi_vm_absf(float x)
{
    return vibi_vm_asfloat(vibi_vm_asuint(x) & 0x7fffffffu);
}

/* The top 12 significant bits of x (sign and exponent kept): the product of two such
 * parts, or of such a part and x minus it, is exact in float. */
VIBI_VM_INLINE float vibi_vm_split_hi(float x)
{
    return vibi_vm_asfloat(vibi_vm_asuint(x) & 0xfffff000u);
}

/* a b - p for p = fl(a b), exactly (Dekker's product error, with the operands split by
 * masking rather than by Veltkamp's (2^12 + 1) a, a split that contraction into FMA
 * would break). For finite a, b whose partial products do not underflow. */
VIBI_VM_INLINE float vibi_vm_mul_err(float a, float b, float p)
{
    float a_hi = vibi_vm_split_hi(a), a_lo = a - a_hi;
    float b_hi = vibi_vm_split_hi(b), b_lo = b - b_hi;
    return ((a_hi * b_hi - p) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo;
}

/* c0 + c1 t + ... + c5 t^5 by Horner's rule, highest coefficient first. */
VIBI_VM_INLINE float vibi_vm_poly5(float t, float c0, float c1, float c2, float c3, float c4,
                                   float c5)
{
    float p = c5;
    p = p * t + c4;
    p = p * t + c3;
    p = p * t + c2;
    p = p * t + c1;
    return p * t + c0;
}

/* The same to degree 6: its first step, c6 t + c5, is the top coefficient of the rest. */
VIBI_VM_INLINE float vibi_vm_poly6(float t, float c0, float c1, float c2, float c3, float c4,
                                   float c5, float c6)
{
    return vibi_vm_poly5(t, c0, c1, c2, c3, c4, c6 * t + c5);
}

/* ---- exp ------------------------------------------------------------------------- */

/* e^x as hi + *lo, |*lo| <= ulp(hi) / 2, for the callers that need e^x to better than
 * float (log1p(e^x), 1 + e^x). x is clamped to [-104, 89] first: below -104 e^x rounds
 * to 0 and above 89 to inf. NaN becomes -104 here (comparisons with NaN are false):
 * callers put it back. */
VIBI_VM_INLINE float vibi_vm_exp_hilo(float x, float *lo)
{
    float xc = vibi_vm_sel(x > -104.0f, x, -104.0f);
    xc = vibi_vm_sel(xc < 89.0f, xc, 89.0f);
    /* k = round(x / ln2) by the 1.5 * 2^23 shifter (|x / ln2| < 2^22, round to nearest);
     * kf is integral and at most 151 in magnitude, so the conversion is exact. */
    float kf = (xc * VIBI_VM_LOG2E + 0x1.8p23f) - 0x1.8p23f;
    int32_t k = (int32_t)kf;
    float r_hi = xc - kf * VIBI_VM_LN2_HI; /* exact */
    float r_lo = kf * VIBI_VM_LN2_LO;
    float r = r_hi - r_lo;
    float r_err = (r_hi - r) - r_lo; /* r + r_err = r_hi - r_lo (Fast2Sum) */
    float p = vibi_vm_poly5(r, VIBI_VM_EXP_P0, VIBI_VM_EXP_P1, VIBI_VM_EXP_P2, VIBI_VM_EXP_P3,
                            VIBI_VM_EXP_P4, VIBI_VM_EXP_P5);
    /* e^r = 1 + r + r^2 P(r): 1 + r split exactly, the small terms added to its tail. */
    float one_r = 1.0f + r;
    float tail = (r - (one_r - 1.0f)) + (r_err + (r * r) * p);
    float e_hi = one_r + tail; /* Fast2Sum again: one_r >= 0.65 > |tail| */
    float e_lo = tail - (e_hi - one_r);
    int32_t k1 = k / 2; /* k1, k - k1 in [-75, 64]: both 2^k1 and 2^(k - k1) are normal */
    float s1 = vibi_vm_pow2i(k1), s2 = vibi_vm_pow2i(k - k1);
    *lo = (e_lo * s1) * s2;
    return (e_hi * s1) * s2; /* one rounding, in the last multiply, if subnormal */
}

VIBI_VM_INLINE float vibi_vexpf(float x)
{
    float lo, y = vibi_vm_exp_hilo(x, &lo);
    return vibi_vm_sel(x != x, x, y);
}

/* ---- log ------------------------------------------------------------------------- */

/* log(u) + c for a positive, finite u whose exponent field, less `bias`, is its binary
 * exponent (bias 127 for a normal u, 150 for a subnormal scaled by 2^23); c is a
 * correction of the order of an ulp of u relative to u (or smaller), added where it
 * does not disturb the exact terms. Garbage, but no undefined behaviour, for other u:
 * callers select their special cases afterwards. */
VIBI_VM_INLINE float vibi_vm_log_core(float u, float c, int32_t bias)
{
    /* Shift the mantissa window so that m lands in [sqrt(1/2), sqrt(2)). */
    uint32_t iu = vibi_vm_asuint(u) + (0x3f800000u - 0x3f3504f3u);
    int32_t k = (int32_t)(iu >> 23) - bias;
    float m = vibi_vm_asfloat((iu & 0x007fffffu) + 0x3f3504f3u);
    float f = m - 1.0f; /* exact: m in [0.5, 2] */
    float s = f / (2.0f + f);
    float z = s * s;
    float q = VIBI_VM_LOG_Q3;
    q = q * z + VIBI_VM_LOG_Q2;
    q = q * z + VIBI_VM_LOG_Q1;
    q = q * z + VIBI_VM_LOG_Q0;
    float rz = z * q;
    float hfsq = 0.5f * f * f;
    float kf = (float)k;
    return kf * VIBI_VM_LN2_HI - ((hfsq - (s * (hfsq + rz) + (kf * VIBI_VM_LN2_LO + c))) - f);
}

VIBI_VM_INLINE float vibi_vlogf(float x)
{
    int sub = x < 0x1p-126f;
    float u = vibi_vm_sel(sub, x * 0x1p23f, x);
    float y = vibi_vm_log_core(u, 0.0f, 127 + 23 * sub);
    y = vibi_vm_sel(x == INFINITY, x, y);
    y = vibi_vm_sel(x == 0.0f, -INFINITY, y);
    y = vibi_vm_sel(x < 0.0f, NAN, y);
    return vibi_vm_sel(x != x, x, y);
}

/* ---- log1p ----------------------------------------------------------------------- */

/* log1p(x + x_lo) for finite x > -1 and a tail |x_lo| <= ulp(x), no special cases
 * (log1p(0) is +0). */
VIBI_VM_INLINE float vibi_vm_log1p_core(float x, float x_lo)
{
    float u = 1.0f + x;
    /* The rounding error of 1 + x, exactly: Fast2Sum with the larger operand first. */
    float e = vibi_vm_sel(x > 1.0f, 1.0f - (u - x), x - (u - 1.0f)) + x_lo;
    return vibi_vm_log_core(u, e / u, 127);
}

VIBI_VM_INLINE float vibi_vlog1pf(float x)
{
    float y = vibi_vm_log1p_core(x, 0.0f);
    y = vibi_vm_sel(x == 0.0f, x, y); /* keeps -0 */
    y = vibi_vm_sel(x == INFINITY, x, y);
    y = vibi_vm_sel(x == -1.0f, -INFINITY, y);
    y = vibi_vm_sel(x < -1.0f, NAN, y);
    return vibi_vm_sel(x != x, x, y);
}

/* ---- the softplus family --------------------------------------------------------- */

/* Each starts from t = e^-|x| <= 1 as t + t_lo, so that nothing overflows. */

/* log(1 + e^x) = max(x, 0) + log1p(e^-|x|): x for large x, e^x for x -> -inf. */
VIBI_VM_INLINE float vibi_vsoftplusf(float x)
{
    float t_lo, t = vibi_vm_exp_hilo(-vibi_vm_absf(x), &t_lo);
    float y = vibi_vm_sel(x > 0.0f, x, 0.0f) + vibi_vm_log1p_core(t, t_lo);
    return vibi_vm_sel(x != x, x, y);
}

/* sigmoid(x) = n / (1 + t), n = 1 for x >= 0 and t for x < 0, as q + *lo: with
 * 1 + t = d + d_lo exactly and the residual n - q d exact,
 * n / (1 + t) = q + (n - q d + n_lo - q d_lo) / d to second order, where 1 / d is q
 * for x >= 0 and 1 - q for x < 0, close enough for a correction. */
VIBI_VM_INLINE float vibi_vm_sigmoid_hilo(float x, float t, float t_lo, float *lo)
{
    float d = 1.0f + t;
    float d_lo = (t - (d - 1.0f)) + t_lo;
    int neg = x < 0.0f;
    float n = vibi_vm_sel(neg, t, 1.0f);
    float q = n / d;
    float qd = q * d;
    float res = (n - qd) - vibi_vm_mul_err(q, d, qd);
    float n_lo = vibi_vm_sel(neg, t_lo, 0.0f);
    *lo = ((res + n_lo) - q * d_lo) * vibi_vm_sel(neg, 1.0f - q, q);
    return q;
}

VIBI_VM_INLINE float vibi_vsigmoidf(float x)
{
    float t_lo, t = vibi_vm_exp_hilo(-vibi_vm_absf(x), &t_lo);
    float lo, q = vibi_vm_sigmoid_hilo(x, t, t_lo, &lo);
    return vibi_vm_sel(x != x, x, q + lo);
}

/* softplus(x) as hi + *lo for x in [-1, 2], to about 2^-33 absolute:
 * ln2 + a + log cosh(a), a = x/2, log cosh(a) = v/2 + v^2 H(v) with v = a^2 taken
 * exactly as v + v_lo, and ln2 + a + v/2 summed exactly. */
VIBI_VM_INLINE float vibi_vm_softplus_mid(float x, float *lo)
{
    float a = 0.5f * x;
    float v = a * a;
    float v_lo = vibi_vm_mul_err(a, a, v);
    float h = vibi_vm_poly6(v, VIBI_VM_LOGCOSH_H0, VIBI_VM_LOGCOSH_H1, VIBI_VM_LOGCOSH_H2,
                            VIBI_VM_LOGCOSH_H3, VIBI_VM_LOGCOSH_H4, VIBI_VM_LOGCOSH_H5,
                            VIBI_VM_LOGCOSH_H6);
    float small = 0.5f * v_lo + (v * v) * h;
    float s1 = VIBI_VM_LN2 + a; /* TwoSum: s1 + e1 = LN2 + a exactly */
    float a_part = s1 - VIBI_VM_LN2;
    float l_part = s1 - a_part;
    float e1 = (a - a_part) + (VIBI_VM_LN2 - l_part);
    float s2 = s1 + 0.5f * v; /* Fast2Sum: s1 >= 0.19 >= v/2 on [-1, 2] */
    float e2 = 0.5f * v - (s2 - s1);
    float tail = (e1 + e2) + (VIBI_VM_LN2_TAIL + small);
    float hi = s2 + tail; /* Fast2Sum: s2 >= 0.3 > |tail| */
    *lo = tail - (hi - s2);
    return hi;
}

/* softplus(x) as hi + *lo for any x (exact hi + lo for x > 2, where the middle form
 * does not apply: x + log1p(t) by Fast2Sum, x > log1p(t)). */
VIBI_VM_INLINE float vibi_vm_softplus_hilo(float x, float t, float t_lo, float *lo)
{
    float mid_lo, mid_hi = vibi_vm_softplus_mid(x, &mid_lo);
    float l1p = vibi_vm_log1p_core(t, t_lo);
    float r_hi = x + l1p;
    float r_lo = l1p - (r_hi - x);
    int mid = x <= 2.0f;
    *lo = vibi_vm_sel(mid, mid_lo, r_lo);
    return vibi_vm_sel(mid, mid_hi, r_hi);
}

/* log softplus(x): x + t G(t) for x < -1 (t = e^x), log(hi + lo) of softplus as hi + lo
 * otherwise. */
VIBI_VM_INLINE float vibi_vlog_softplusf(float x)
{
    float t_lo, t = vibi_vm_exp_hilo(-vibi_vm_absf(x), &t_lo);
    float g = vibi_vm_poly6(t, VIBI_VM_LSP_G0, VIBI_VM_LSP_G1, VIBI_VM_LSP_G2, VIBI_VM_LSP_G3,
                            VIBI_VM_LSP_G4, VIBI_VM_LSP_G5, VIBI_VM_LSP_G6);
    float y_left = x + t * g;

    float lo, hi = vibi_vm_softplus_hilo(x, t, t_lo, &lo);
    float y = vibi_vm_log_core(hi, lo / hi, 127);
    y = vibi_vm_sel(x < -1.0f, y_left, y);
    y = vibi_vm_sel(x == INFINITY, x, y);
    return vibi_vm_sel(x != x, x, y);
}

/* d/dx log softplus(x) = sigmoid(x) / softplus(x): 1 - t K(t) for x < -1 (t = e^x),
 * otherwise the quotient of the two as hi + lo: (s + s_lo) / (p + p_lo) =
 * y + (s - y p + s_lo - y p_lo) / p to second order, the residual s - y p exact. */
VIBI_VM_INLINE float vibi_vdlog_softplusf(float x)
{
    float t_lo, t = vibi_vm_exp_hilo(-vibi_vm_absf(x), &t_lo);
    float kp = vibi_vm_poly6(t, VIBI_VM_DLSP_K0, VIBI_VM_DLSP_K1, VIBI_VM_DLSP_K2,
                             VIBI_VM_DLSP_K3, VIBI_VM_DLSP_K4, VIBI_VM_DLSP_K5, VIBI_VM_DLSP_K6);
    float y_left = 1.0f - t * kp;

    float sig_lo, sig = vibi_vm_sigmoid_hilo(x, t, t_lo, &sig_lo);
    float sp_lo, sp = vibi_vm_softplus_hilo(x, t, t_lo, &sp_lo);
    float y = sig / sp;
    float ysp = y * sp;
    float res = (sig - ysp) - vibi_vm_mul_err(y, sp, ysp);
    y = y + ((res + sig_lo) - y * sp_lo) / sp;
    y = vibi_vm_sel(x < -1.0f, y_left, y);
    y = vibi_vm_sel(x == INFINITY, 0.0f, y);
    return vibi_vm_sel(x != x, x, y);
}

/* ---- log of a float, in double ---------------------------------------------------- */

/* 2/(2j + 1) for the series of log(m) = 2 atanh(s) = sum_j 2 s^(2j+1) / (2j + 1). */
#define VIBI_VM_ATANH_C(j) (2.0 / (2.0 * (j) + 1.0))
#define VIBI_VM_LN2_HI_D 0x1.62e42fefa3800p-1 /* ln2 to 43 bits: e * LN2_HI_D is exact */
#define VIBI_VM_LN2_LO_D 0x1.ef35793c76730p-45 /* ln2 - LN2_HI_D, rounded */

/* log(x) in double for a positive finite float x (normal or subnormal), within a few
 * ulps of double, branch-free so that a loop of it vectorizes: where a result is a small
 * difference of logarithms (the KL term sigma^2 - 1 - 2 log sigma near sigma = 1), a
 * float log would cost thousands of ulps of it. x = 2^e m, m in [sqrt(1/2), sqrt(2)),
 * taken from the bits of (double)x (exact, and normal in double); log m = 2 atanh(s),
 * s = (m - 1)/(m + 1), |s| < 0.1716, by its Taylor series to s^19: the first term left
 * out, 2 s^21 / 21, is below 2^-55 of the sum. Measured against logl over every 97th
 * positive finite float: within 1.4 units of 2^-52 relative. e ln2 is added in two parts. Garbage for
 * x <= 0, infinities and NaN: callers pass a positive finite x. */
VIBI_VM_INLINE double vibi_vlog_dbl(float x)
{
    double d = (double)x;
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    u += 0x3ff0000000000000ull - 0x3fe6a09e667f3bcdull; /* m lands in [sqrt(1/2), sqrt(2)) */
    const int32_t e = (int32_t)(u >> 52) - 1023;
    u = (u & 0x000fffffffffffffull) + 0x3fe6a09e667f3bcdull;
    double m;
    memcpy(&m, &u, sizeof m);
    const double f = m - 1.0; /* exact */
    const double s = f / (2.0 + f), z = s * s;
    double p = VIBI_VM_ATANH_C(9);
    for (int j = 8; j >= 0; j--) /* constant trip count: unrolled, then vectorized */
        p = p * z + VIBI_VM_ATANH_C(j);
    const double ed = (double)e;
    return ed * VIBI_VM_LN2_HI_D + (s * p + ed * VIBI_VM_LN2_LO_D);
}

#endif /* VIB_VMATH_H */
