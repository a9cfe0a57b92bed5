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
