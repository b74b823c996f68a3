/*
 * vmath.h - branch-free single-precision exp, log, log1p and the softplus family, for
 * loops that GCC vectorizes under `#pragma omp simd` (internal; header only).
 *
 * Why: the Gaussian head evaluates softplus, sigmoid and log softplus over every latent
 * unit of a batch each step; libm's scalar double calls cost several percent of an
 * epoch. These functions are float -> float, call nothing (no libm, no tables), and use
 * only arithmetic, comparisons turned into selects, float <-> int32 conversions of
 * values clamped into range, and bit casts through a union, so a loop of them becomes
 * straight-line SIMD code (zmm with -march=x86-64-v4). Every function computes all its
 * cases and selects at the end: there is no fast path, and special inputs cost the same.
 *
 * Accuracy: errors in ulps of the float result (ulp(y) = 2^(floor(log2|y|) - 23), at
 * least 2^-149), measured against a double-precision reference over EVERY float input of
 * the stated range (ERR_* below; tests/test_vmath.c asserts them on a dense sweep):
 *
 *   vibi_vexpf        0.__ ulp on [-87.33, 88.72] (normal results); below, results are
 *                     subnormal (gradual underflow, rounded once, within 1 ulp of the
 *                     subnormal grid: no flush to zero), 0 for x < -103.97, +inf above
 *                     88.72, NaN -> NaN
 *   vibi_vlogf        0.__ ulp for every positive float, subnormals included;
 *                     log(+-0) = -inf, log(x < 0) = NaN, log(inf) = inf
 *   vibi_vlog1pf      0.__ ulp for every x > -1, log1p(x) = x exactly for |x| < 2^-24,
 *                     log1p(-0) = -0, log1p(-1) = -inf, x < -1 -> NaN
 *   vibi_vsoftplusf   __ ulp for every float with a normal result (x > -87.33); below,
 *                     e^x on the subnormal grid; x for x > 17 (no overflow)
 *   vibi_vsigmoidf    __ ulp where the result is normal (x > -87.33)
 *   vibi_vlog_softplusf  __ ulp for every float except near the zero of log softplus at
 *                     x0 = log(e - 1) = 0.5413, where the error is below __ absolute
 *                     (the result itself tends to 0 there); x for x < -103.97
 *   vibi_vdlog_softplusf __ ulp for every float
 *
 * Algorithms (coefficients fitted for this file: Chebyshev fits, which are near-minimax,
 * computed with mpmath's chebyfit in 50-digit arithmetic and rounded to float; the
 * quoted fit errors are those of the fits before rounding):
 *
 *  exp   x = k ln2 + r with k = round(x / ln2) and r = x - k ln2_hi - k ln2_lo
 *        (Cody-Waite: ln2_hi has 15 significant bits, so k ln2_hi is exact for the
 *        |k| <= 150 that occur and the subtraction from x is exact), |r| <= 0.3466.
 *        e^r = 1 + (r + r^2 P(r)), P of degree 5 fitted to (e^r - 1 - r) / r^2 on
 *        [-0.35, 0.35] (fit error 1.5e-9, which is 2e-10 relative to e^r). The result
 *        is scaled by 2^k as 2^k1 * 2^k2 with k1 = k / 2, k2 = k - k1, both normal
 *        powers of two, so subnormal results are rounded once and overflow happens in
 *        the last multiply, as it should. x is clamped to [-104, 89] first, which keeps
 *        the conversion to int in range (and maps NaN, which is restored at the end).
 *  log   x = 2^k m with m in [sqrt(1/2), sqrt(2)) taken from the exponent bits (a
 *        subnormal x is first scaled by 2^23), f = m - 1 exactly, s = f / (2 + f), so
 *        log(m) = 2 atanh(s) = f - f^2/2 + s (f^2/2 + R), R = s^2 Q(s^2), Q of degree 3
 *        fitted to (2 atanh(s) - 2s) / s^3 for s^2 in [0, 0.0297] (fit error 1.2e-9;
 *        it enters the result multiplied by s^2 / 2 < 0.015). This arrangement, from
 *        fdlibm's e_logf.c, adds the rounding errors to terms much smaller than f.
 *        k ln2 is added in two parts, k ln2_hi exactly.
 *  log1p u = 1 + x rounded, e = (1 + x) - u exactly (Fast2Sum, ordered by |x| <= 1),
 *        then log(u) as above plus the first-order correction e / u.
 *  softplus    max(x, 0) + log1p(e^-|x|).
 *  sigmoid     1 / (1 + t) for x >= 0, t / (1 + t) for x < 0, t = e^-|x|.
 *  log softplus  three pieces, because log(softplus(x)) is ill-conditioned where
 *        softplus(x) is near 1 (x near 0.54): a float softplus rounded once would already
 *        cost 1-3 ulps of the log there, so the softplus is carried as hi + lo:
 *        x < -1:      x + t G(t), t = e^x; t G(t) = log(log1p(t) / t) (-> -t/2 as t -> 0,
 *                     and exactly 0 once t underflows), G of degree 6 fitted on
 *                     [0, e^-1] (fit error 1.5e-9).
 *        -1 <= x <= 2: softplus(x) = ln2 + x/2 + log cosh(x/2) (softplus(x) - x/2 is
 *                     even), log cosh(u) = u^2 H(u^2), H of degree 6 fitted on [0, 1]
 *                     (fit error 3.6e-9); ln2 + x/2 is summed exactly (TwoSum), and
 *                     log(hi + lo) = log(hi) + lo / hi.
 *        x > 2:       hi + lo = x + log1p(e^-x) exactly (Fast2Sum), then as above.
 *  dlog softplus  sigmoid(x) / softplus(x) = 1 / ((1 + t) D), t = e^-|x|, with
 *        D = log1p(t) / t for x < 0 (-> 1 as t -> 0: the limit 1 as x -> -inf) and
 *        D = softplus(x) for x >= 0 (-> x: the limit 1/x as x -> +inf).
 *
 * Requirements on the build: IEEE single precision with round-to-nearest, no
 * -ffast-math (in particular no -fassociative-math or -ffinite-math-only: the exact
 * two-sums and the special-value selects rely on them being honoured), and subnormals
 * not flushed (FTZ/DAZ would flush the results that this file rounds onto the subnormal
 * grid, and nothing else). Contraction into FMA (-ffp-contract=fast with
 * -march=x86-64-v3 or later) is harmless: the bounds above hold with and without it.
 */
#ifndef VIB_VMATH_H
#define VIB_VMATH_H

#include <math.h>   /* INFINITY and NAN only: nothing here calls libm */
#include <stdint.h>

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

/* |x| by select (also for NaN, whose sign does not matter here). */
VIBI_VM_INLINE float vibi_vm_absf(float x)
{
    return x < 0.0f ? -x : x;
}

/* The top 12 significant bits of x (sign and exponent kept): the product of two such
 * halves, or of a half and x - half, is exact in float. */
VIBI_VM_INLINE float vibi_vm_split_hi(float x)
{
    return vibi_vm_asfloat(vibi_vm_asuint(x) & 0xfffff000u);
}

/* a b - p for p = fl(a b), exactly (Dekker's product error with the operands split by
 * masking rather than by Veltkamp's (2^12 + 1) a, a split that contraction into FMA
 * would break). For finite a, b without underflow. */
VIBI_VM_INLINE float vibi_vm_mul_err(float a, float b, float p)
{
    float a_hi = vibi_vm_split_hi(a), a_lo = a - a_hi;
    float b_hi = vibi_vm_split_hi(b), b_lo = b - b_hi;
    return ((a_hi * b_hi - p) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo;
}

/* ---- exp ------------------------------------------------------------------------- */

/* e^x as hi + *lo, |*lo| <= ulp(hi) / 2 (for the callers that want e^x to better than
 * float: log1p(e^x), 1 + e^x). x is clamped to [-104, 89] first: below -104 e^x rounds
 * to 0 and above 89 to inf; NaN becomes -104 here (comparisons with NaN are false),
 * callers restore it. */
VIBI_VM_INLINE float vibi_vm_exp_hilo(float x, float *lo)
{
    float xc = x > -104.0f ? x : -104.0f;
    xc = xc < 89.0f ? xc : 89.0f;
    float kr = xc * VIBI_VM_LOG2E;
    int32_t k = (int32_t)(kr + (kr < 0.0f ? -0.5f : 0.5f)); /* round, |k| <= 150 */
    float kf = (float)k;
    float r_hi = xc - kf * VIBI_VM_LN2_HI; /* exact */
    float r_lo = kf * VIBI_VM_LN2_LO;
    float r = r_hi - r_lo;
    float r_err = (r_hi - r) - r_lo; /* r + r_err = r_hi - r_lo (Fast2Sum) */
    float p = VIBI_VM_EXP_P5;
    p = p * r + VIBI_VM_EXP_P4;
    p = p * r + VIBI_VM_EXP_P3;
    p = p * r + VIBI_VM_EXP_P2;
    p = p * r + VIBI_VM_EXP_P1;
    p = p * r + VIBI_VM_EXP_P0;
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
    float lo;
    float y = vibi_vm_exp_hilo(x, &lo);
    return x != x ? x : y;
}

/* ---- log ------------------------------------------------------------------------- */

/* log(u) + c for a positive, finite u whose exponent field, less `bias`, is its binary
 * exponent (bias 127 for a normal u, 150 for a subnormal scaled by 2^23); c is a
 * correction of the order of an ulp of u (or smaller) relative to u, added where it
 * does not disturb the exact terms. Garbage (but no undefined behaviour) for other u:
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
    float u = sub ? x * 0x1p23f : x;
    float y = vibi_vm_log_core(u, 0.0f, sub ? 150 : 127);
    y = x == INFINITY ? x : y;
    y = x == 0.0f ? -INFINITY : y;
    y = x < 0.0f ? NAN : y;
    return x != x ? x : y;
}

/* ---- log1p ----------------------------------------------------------------------- */

/* log1p(x + x_lo) for finite x > -1 and a tail |x_lo| <= ulp(x), no special cases
 * (log1p(0) is +0). */
VIBI_VM_INLINE float vibi_vm_log1p_core(float x, float x_lo)
{
    float u = 1.0f + x;
    /* The rounding error of 1 + x, exactly: Fast2Sum with the larger operand first. */
    float e = (x > 1.0f ? 1.0f - (u - x) : x - (u - 1.0f)) + x_lo;
    return vibi_vm_log_core(u, e / u, 127);
}

VIBI_VM_INLINE float vibi_vlog1pf(float x)
{
    float y = vibi_vm_log1p_core(x, 0.0f);
    y = x == 0.0f ? x : y; /* keeps -0 */
    y = x == INFINITY ? x : y;
    y = x == -1.0f ? -INFINITY : y;
    y = x < -1.0f ? NAN : y;
    return x != x ? x : y;
}

/* ---- the softplus family --------------------------------------------------------- */

/* log(1 + e^x) = max(x, 0) + log1p(e^-|x|): no overflow, e^x for x -> -inf. */
VIBI_VM_INLINE float vibi_vsoftplusf(float x)
{
    float t_lo, t = vibi_vm_exp_hilo(-vibi_vm_absf(x), &t_lo);
    float y = (x > 0.0f ? x : 0.0f) + vibi_vm_log1p_core(t, t_lo);
    return x != x ? x : y;
}

/* sigmoid(x) = n / (1 + t), t = e^-|x| <= 1, n = 1 for x >= 0 and t for x < 0, as
 * q + *lo: with t = t_hi + t_lo, 1 + t_hi = d + d_lo exactly and the residual
 * n - q d exact, n / (1 + t) = q + (n - q d + n_lo - q d_lo) / d to second order, and
 * 1 / d is q for x >= 0 and 1 - q for x < 0, close enough for a correction. */
VIBI_VM_INLINE float vibi_vm_sigmoid_hilo(float x, float *lo)
{
    float t_lo, t = vibi_vm_exp_hilo(-vibi_vm_absf(x), &t_lo);
    float d = 1.0f + t;
    float d_lo = (t - (d - 1.0f)) + t_lo;
    int neg = x < 0.0f;
    float n = neg ? t : 1.0f;
    float q = n / d;
    float qd = q * d;
    float res = (n - qd) - vibi_vm_mul_err(q, d, qd);
    *lo = ((res + (neg ? t_lo : 0.0f)) - q * d_lo) * (neg ? 1.0f - q : q);
    return q;
}

VIBI_VM_INLINE float vibi_vsigmoidf(float x)
{
    float lo, q = vibi_vm_sigmoid_hilo(x, &lo);
    return x != x ? x : q + lo;
}

/* softplus(x) = ln2 + a + log cosh(a), a = x/2, as hi + *lo for -1 <= x <= 2, to about
 * 2^-30 absolute. log cosh(a) = v/2 + v^2 H(v) with v = a^2 taken exactly as v + v_lo
 * (vibi_vm_mul_err). */
VIBI_VM_INLINE float vibi_vm_softplus_mid(float x, float *lo)
{
    float a = 0.5f * x;
    float v = a * a;
    float v_lo = vibi_vm_mul_err(a, a, v);
    float h = VIBI_VM_LOGCOSH_H6;
    h = h * v + VIBI_VM_LOGCOSH_H5;
    h = h * v + VIBI_VM_LOGCOSH_H4;
    h = h * v + VIBI_VM_LOGCOSH_H3;
    h = h * v + VIBI_VM_LOGCOSH_H2;
    h = h * v + VIBI_VM_LOGCOSH_H1;
    h = h * v + VIBI_VM_LOGCOSH_H0;
    float small = 0.5f * v_lo + (v * v) * h;
    float s1 = VIBI_VM_LN2 + a; /* TwoSum: s1 + e1 = LN2 + a exactly */
    float a_part = s1 - VIBI_VM_LN2;
    float l_part = s1 - a_part;
    float e1 = (a - a_part) + (VIBI_VM_LN2 - l_part);
    float s2 = s1 + 0.5f * v; /* Fast2Sum: s1 >= 0.19 >= v/2 on [-1, 2] */
    float e2 = 0.5f * v - (s2 - s1);
    float tail = (e1 + e2) + (VIBI_VM_LN2_TAIL + small);
    float hi = s2 + tail; /* Fast2Sum: |tail| is of the order of an ulp of s2 */
    *lo = tail - (hi - s2);
    return hi;
}

/* log softplus(x): see the header comment for the three pieces. */
VIBI_VM_INLINE float vibi_vlog_softplusf(float x)
{
    float t_lo, t = vibi_vm_exp_hilo(-vibi_vm_absf(x), &t_lo);

    /* x < -1: x + t G(t), t = e^x. */
    float g = VIBI_VM_LSP_G6;
    g = g * t + VIBI_VM_LSP_G5;
    g = g * t + VIBI_VM_LSP_G4;
    g = g * t + VIBI_VM_LSP_G3;
    g = g * t + VIBI_VM_LSP_G2;
    g = g * t + VIBI_VM_LSP_G1;
    g = g * t + VIBI_VM_LSP_G0;
    float y_left = x + t * g;

    float mid_lo, mid_hi = vibi_vm_softplus_mid(x, &mid_lo);

    /* x > 2: x + log1p(e^-x) as hi + lo (Fast2Sum, x > log1p(t)). */
    float l1p = vibi_vm_log1p_core(t, t_lo);
    float r_hi = x + l1p;
    float r_lo = l1p - (r_hi - x);

    int mid = x <= 2.0f;
    float hi = mid ? mid_hi : r_hi, lo = mid ? mid_lo : r_lo;
    float y = vibi_vm_log_core(hi, lo / hi, 127); /* log(hi + lo) */
    y = x < -1.0f ? y_left : y;
    y = x == INFINITY ? x : y;
    return x != x ? x : y;
}

/* d/dx log softplus(x) = sigmoid(x) / softplus(x): 1 as x -> -inf, 1/x as x -> +inf.
 * x < -1: 1 - t K(t), t = e^x; otherwise sigmoid / softplus, both as hi + lo. */
VIBI_VM_INLINE float vibi_vdlog_softplusf(float x)
{
    float t_lo, t = vibi_vm_exp_hilo(-vibi_vm_absf(x), &t_lo);
    float kp = VIBI_VM_DLSP_K6;
    kp = kp * t + VIBI_VM_DLSP_K5;
    kp = kp * t + VIBI_VM_DLSP_K4;
    kp = kp * t + VIBI_VM_DLSP_K3;
    kp = kp * t + VIBI_VM_DLSP_K2;
    kp = kp * t + VIBI_VM_DLSP_K1;
    kp = kp * t + VIBI_VM_DLSP_K0;
    float y_left = 1.0f - t * kp;

    float sig_lo, sig = vibi_vm_sigmoid_hilo(x, &sig_lo);
    float mid_lo, mid_hi = vibi_vm_softplus_mid(x, &mid_lo);
    float l1p = vibi_vm_log1p_core(t, t_lo);
    float r_hi = x + l1p;
    float r_lo = l1p - (r_hi - x);
    int mid = x <= 2.0f;
    float sp = mid ? mid_hi : r_hi, sp_lo = mid ? mid_lo : r_lo;
    /* (sig + sig_lo) / (sp + sp_lo) = y + (sig - y sp + sig_lo - y sp_lo) / sp to
     * second order, the residual sig - y sp exact */
    float y = sig / sp;
    float ysp = y * sp;
    float res = (sig - ysp) - vibi_vm_mul_err(y, sp, ysp);
    y = y + ((res + sig_lo) - y * sp_lo) / sp;
    y = x < -1.0f ? y_left : y;
    y = x == INFINITY ? 0.0f : y;
    return x != x ? x : y;
}

#endif /* VIB_VMATH_H */
