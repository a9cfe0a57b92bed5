#include "CKernels.h"
#include "targets.h"
#include "vectors.h"

/* NN's NCHW loops compute x · scale + shift as two roundings (Swift does not contract):
   so do these, so that the two layouts agree bit for bit given the same statistics. */
#pragma STDC FP_CONTRACT OFF

/* Kernels over channel-blocked activations (batch norm, channel sums and scaling): each row
   is `block` channels of one pixel, 8 lanes per f8. They are inlined with the block as a
   constant (8 or 16), so that the accumulators are registers. */

#define MAX_LANES 16
#define VECTORS(block) ((block) / 8)

INLINE void load8(f8 *v, const float *p) { __builtin_memcpy(v, p, sizeof *v); }
INLINE void store8(float *p, const f8 *v) { __builtin_memcpy(p, v, sizeof *v); }

INLINE void store_halves(double *out, const d4 *h, long vectors) {
    for (long k = 0; k < 2 * vectors; k++) __builtin_memcpy(out + 4 * k, &h[k], sizeof h[k]);
}

INLINE void sum_and_squares(const float *x, long examples, long stride, long area, const long block,
                            double *sum, double *squares) {
    d4 s[2 * VECTORS(MAX_LANES)] = {{0}}, q[2 * VECTORS(MAX_LANES)] = {{0}};
    for (long i = 0; i < examples; i++) {
        const float *row = x + i * stride;
        for (long r = 0; r < area; r++, row += block) {
            for (long k = 0; k < VECTORS(block); k++) {
                f8 v;
                load8(&v, row + 8 * k);
                d4 a = LOW(v), b = HIGH(v);
                s[2 * k] += a; s[2 * k + 1] += b;
                q[2 * k] += a * a; q[2 * k + 1] += b * b;
            }
        }
    }
    store_halves(sum, s, VECTORS(block));
    store_halves(squares, q, VECTORS(block));
}

BOTH_TARGETS void cnn_blocked_sum_and_squares_f32(const float *x, long examples, long example_stride, long area, long block,
                                                  double *sum, double *squares) {
    if (block == 16) sum_and_squares(x, examples, example_stride, area, 16, sum, squares);
    else sum_and_squares(x, examples, example_stride, area, 8, sum, squares);
}

INLINE void normalize(const float *x, float *y, long area, const long block, const float *scale, const float *shift, int relu) {
    f8 a[VECTORS(MAX_LANES)], b[VECTORS(MAX_LANES)];
    for (long k = 0; k < VECTORS(block); k++) { load8(&a[k], scale + 8 * k); load8(&b[k], shift + 8 * k); }
    const f8 zero = {0};
    for (long r = 0; r < area * block; r += block) {
        for (long k = 0; k < VECTORS(block); k++) {
            f8 v;
            load8(&v, x + r + 8 * k);
            f8 product = v * a[k];
            f8 out = product + b[k];
            if (relu) out = (f8)((i8)out & (out > zero));
            store8(y + r + 8 * k, &out);
        }
    }
}

BOTH_TARGETS void cnn_blocked_normalize_f32(const float *x, float *y, long area, long block, const float *scale,
                                            const float *shift, int relu) {
    if (block == 16) normalize(x, y, area, 16, scale, shift, relu);
    else normalize(x, y, area, 8, scale, shift, relu);
}

/* d: dy, or with a fused ReLU dy where y > 0. */
INLINE f8 incoming(const float *dy, const float *y, long at) {
    f8 d;
    load8(&d, dy + at);
    if (y) {
        f8 out, zero = {0};
        load8(&out, y + at);
        d = (f8)((i8)d & (out > zero));
    }
    return d;
}

INLINE void gradient_sums(const float *dy, const float *y, const float *x, long examples, long stride, long area,
                          const long block, const float *mean, const float *inv_std, double *sum, double *weighted) {
    d4 s[2 * VECTORS(MAX_LANES)] = {{0}}, w[2 * VECTORS(MAX_LANES)] = {{0}};
    f8 mu[VECTORS(MAX_LANES)], inv[VECTORS(MAX_LANES)];
    for (long k = 0; k < VECTORS(block); k++) { load8(&mu[k], mean + 8 * k); load8(&inv[k], inv_std + 8 * k); }
    for (long i = 0; i < examples; i++) {
        for (long r = i * stride; r < i * stride + area * block; r += block) {
            for (long k = 0; k < VECTORS(block); k++) {
                f8 d = incoming(dy, y, r + 8 * k), v;
                load8(&v, x + r + 8 * k);
                f8 xhat = (v - mu[k]) * inv[k];
                d4 da = LOW(d), db = HIGH(d);
                s[2 * k] += da; s[2 * k + 1] += db;
                w[2 * k] += da * LOW(xhat); w[2 * k + 1] += db * HIGH(xhat);
            }
        }
    }
    store_halves(sum, s, VECTORS(block));
    store_halves(weighted, w, VECTORS(block));
}

BOTH_TARGETS void cnn_blocked_gradient_sums_f32(const float *dy, const float *y, const float *x, long examples,
                                                long example_stride, long area, long block, const float *mean,
                                                const float *inv_std, double *sum, double *weighted) {
    if (block == 16) gradient_sums(dy, y, x, examples, example_stride, area, 16, mean, inv_std, sum, weighted);
    else gradient_sums(dy, y, x, examples, example_stride, area, 8, mean, inv_std, sum, weighted);
}

INLINE void input_gradient(const float *dy, const float *y, const float *x, float *dx, long area, const long block,
                           const float *scale, const float *mean, const float *inv_std, const float *mean_dy,
                           const float *mean_dy_xhat) {
    f8 a[VECTORS(MAX_LANES)], mu[VECTORS(MAX_LANES)], inv[VECTORS(MAX_LANES)];
    f8 md[VECTORS(MAX_LANES)] = {{0}}, mw[VECTORS(MAX_LANES)] = {{0}};
    for (long k = 0; k < VECTORS(block); k++) {
        load8(&a[k], scale + 8 * k);
        load8(&mu[k], mean + 8 * k);
        load8(&inv[k], inv_std + 8 * k);
        if (mean_dy) { load8(&md[k], mean_dy + 8 * k); load8(&mw[k], mean_dy_xhat + 8 * k); }
    }
    for (long r = 0; r < area * block; r += block) {
        for (long k = 0; k < VECTORS(block); k++) {
            f8 d = incoming(dy, y, r + 8 * k), g;
            if (mean_dy) {
                f8 v;
                load8(&v, x + r + 8 * k);
                f8 centred = v - mu[k], normalized = centred * inv[k], correction = normalized * mw[k];
                g = a[k] * ((d - md[k]) - correction);
            } else {
                g = a[k] * d;
            }
            store8(dx + r + 8 * k, &g);
        }
    }
}

BOTH_TARGETS void cnn_blocked_input_gradient_f32(const float *dy, const float *y, const float *x, float *dx, long area,
                                                 long block, const float *scale, const float *mean, const float *inv_std,
                                                 const float *mean_dy, const float *mean_dy_xhat) {
    if (block == 16) input_gradient(dy, y, x, dx, area, 16, scale, mean, inv_std, mean_dy, mean_dy_xhat);
    else input_gradient(dy, y, x, dx, area, 8, scale, mean, inv_std, mean_dy, mean_dy_xhat);
}

INLINE void sums(const float *a, const float *b, long area, const long block, double *out) {
    d4 s[2 * VECTORS(MAX_LANES)] = {{0}};
    for (long r = 0; r < area * block; r += block)
        for (long k = 0; k < VECTORS(block); k++) {
            f8 u, v = {1, 1, 1, 1, 1, 1, 1, 1};
            load8(&u, a + r + 8 * k);
            if (b) load8(&v, b + r + 8 * k);
            s[2 * k] += LOW(u) * LOW(v); s[2 * k + 1] += HIGH(u) * HIGH(v);
        }
    store_halves(out, s, VECTORS(block));
}

BOTH_TARGETS void cnn_blocked_sums_f32(const float *a, const float *b, long area, long block, double *out) {
    if (block == 16) sums(a, b, area, 16, out);
    else sums(a, b, area, 8, out);
}

INLINE void scale(const float *x, float *y, long area, const long block, const float *factor, int accumulate) {
    f8 a[VECTORS(MAX_LANES)];
    for (long k = 0; k < VECTORS(block); k++) load8(&a[k], factor + 8 * k);
    for (long r = 0; r < area * block; r += block)
        for (long k = 0; k < VECTORS(block); k++) {
            f8 v, out;
            load8(&v, x + r + 8 * k);
            f8 product = v * a[k];
            if (accumulate) {
                load8(&out, y + r + 8 * k);
                out = out + product;
            } else {
                out = product;
            }
            store8(y + r + 8 * k, &out);
        }
}

BOTH_TARGETS void cnn_blocked_scale_f32(const float *x, float *y, long area, long block, const float *factor, int accumulate) {
    if (block == 16) scale(x, y, area, 16, factor, accumulate);
    else scale(x, y, area, 8, factor, accumulate);
}
