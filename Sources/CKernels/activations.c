#include "CKernels.h"
#include "targets.h"
#include <stdint.h>
#include <string.h>

static inline float from_bits(uint32_t bits) { float f; memcpy(&f, &bits, sizeof f); return f; }

/* 2^k for an integer-valued k in [-126, 127]. */
static inline float power_of_two(float k) { return from_bits((uint32_t)((int32_t)k + 127) << 23); }

/* e^x = 2^n · e^r with n = round(x / ln 2) and |r| ≤ ln 2 / 2. ln 2 is split (Cody–Waite)
   so that n · ln2_high is exact and r carries one rounding; e^r is its Taylor polynomial of
   degree 7 (truncation below 0.1 ulp). 2^n is applied in two halves so that the result may
   overflow to +inf or fall to a subnormal or 0 as expf does. Straight-line code with
   selects only: the loops around it vectorize. */
static inline __attribute__((always_inline)) float exp_f32(float x) {
    const float high = 89.0f, low = -104.0f; /* e^89 overflows, e^-104 rounds to 0 */
    int nan = x != x;
    float c = nan ? 0.0f : x < low ? low : x > high ? high : x;
    const float shifter = 12582912.0f; /* 1.5 · 2^23: adding and subtracting it rounds to an integer */
    float n = (c * 1.44269504088896341f + shifter) - shifter;
    float r = c - n * 0.693145751953125f;  /* ln 2's high part: 16 bits, so n · it is exact */
    r = r - n * 1.42860682030941723e-6f;    /* and the rest */
    float p = 1.0f / 5040;
    p = p * r + 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    float half = (float)((int32_t)n >> 1); /* n = half + (n − half), each within 2^±64 */
    float e = p * power_of_two(half) * power_of_two(n - half);
    return nan ? x : e;
}

BOTH_TARGETS void cnn_exp_f32(const float *x, float *y, long count) {
    for (long i = 0; i < count; i++) y[i] = exp_f32(x[i]);
}

BOTH_TARGETS void cnn_sigmoid_f32(const float *x, float *y, long count) {
    for (long i = 0; i < count; i++) y[i] = 1.0f / (1.0f + exp_f32(-x[i]));
}

BOTH_TARGETS void cnn_silu_f32(const float *x, float *y, long count) {
    for (long i = 0; i < count; i++) y[i] = x[i] / (1.0f + exp_f32(-x[i]));
}

BOTH_TARGETS void cnn_silu_backward_f32(const float *x, const float *dy, float *dx, long count) {
    for (long i = 0; i < count; i++) {
        float s = 1.0f / (1.0f + exp_f32(-x[i]));
        dx[i] = dy[i] * s * (1.0f + x[i] * (1.0f - s));
    }
}

/* erf(z), within 3 ulp. Below |z| = 1, erf(z) = z + z · P(z²), P of degree 6 (erf(z)/z − 1
   fitted to 1.2e-9 relative): adding the correction to z keeps the leading term exact.
   From 1 on, erf(|z|) = 1 − e^−z² · Q(1/|z|), Q of degree 9 (erfc(a) · e^a² fitted to
   1.5e-8 relative on [1, 4]; beyond 3.92 erf rounds to 1, and 4 is where the argument is
   held). Both branches are computed and one selected, so the loops vectorize. */
static inline __attribute__((always_inline)) float erf_f32(float z) {
    float a = z < 0 ? -z : z;
    float s = z * z;
    float p = 7.854025898e-05f;
    p = p * s + -8.010247839e-04f;
    p = p * s + 5.188334268e-03f;
    p = p * s + -2.685381658e-02f;
    p = p * s + 1.128358543e-01f;
    p = p * s + -3.761262596e-01f;
    p = p * s + 1.283791661e-01f;
    float small = z + z * p;
    float held = a < 1.0f ? 1.0f : a > 4.0f ? 4.0f : a;
    float t = 1.0f / held;
    float q = 3.071407042e-02f;
    q = q * t + -1.797132343e-01f;
    q = q * t + 4.382409751e-01f;
    q = q * t + -5.369493365e-01f;
    q = q * t + 2.383341938e-01f;
    q = q * t + 2.303950936e-01f;
    q = q * t + -3.758631051e-01f;
    q = q * t + 2.053584717e-02f;
    q = q * t + 5.617679358e-01f;
    q = q * t + 1.210782648e-04f;
    float large = 1.0f - exp_f32(-(held * held)) * q;
    large = z < 0 ? -large : large;
    return a < 1.0f ? small : z != z ? z : large;
}

BOTH_TARGETS void cnn_erf_f32(const float *x, float *y, long count) {
    for (long i = 0; i < count; i++) y[i] = erf_f32(x[i]);
}

static const float sqrt_half = 0.70710678118654752f, inverse_sqrt_2pi = 0.39894228040143268f;

BOTH_TARGETS void cnn_gelu_f32(const float *x, float *y, long count) {
    for (long i = 0; i < count; i++) y[i] = 0.5f * x[i] * (1.0f + erf_f32(x[i] * sqrt_half));
}

BOTH_TARGETS void cnn_gelu_backward_f32(const float *x, const float *dy, float *dx, long count) {
    for (long i = 0; i < count; i++) {
        float cdf = 0.5f * (1.0f + erf_f32(x[i] * sqrt_half));
        float pdf = inverse_sqrt_2pi * exp_f32(-0.5f * x[i] * x[i]);
        dx[i] = dy[i] * (cdf + x[i] * pdf);
    }
}
