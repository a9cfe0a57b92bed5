#include "CKernels.h"
#include "targets.h"
#include "vectors.h"
#include <string.h>

/* Accumulators are d4 vectors (vectors.h): kept in arrays they were spilled to the stack on
   every iteration. */

/* Eight floats from p, or the first `count` of them and zeros after. */
INLINE void load(f8 *v, const float *p, long count) {
    float lanes[8] = {0};
    memcpy(count == 8 ? (void *)v : (void *)lanes, p, (size_t)count * sizeof(float));
    if (count < 8) memcpy(v, lanes, sizeof lanes);
}

/* The eight lanes added in a fixed tree, so the result depends only on the count. */
INLINE double total(const d4 *h) {
    return ((h[0][0] + h[0][1]) + (h[0][2] + h[0][3])) + ((h[1][0] + h[1][1]) + (h[1][2] + h[1][3]));
}

INLINE void add_sum_and_squares(const float *x, long count, d4 *s, d4 *q) {
    f8 v;
    load(&v, x, count);
    d4 a = LOW(v), b = HIGH(v);
    s[0] += a; s[1] += b;
    q[0] += a * a; q[1] += b * b;
}

INLINE void add_products(const float *a, const float *b, long count, d4 *s) {
    f8 u, v = {1, 1, 1, 1, 1, 1, 1, 1};
    load(&u, a, count);
    if (b) load(&v, b, count);
    s[0] += LOW(u) * LOW(v); s[1] += HIGH(u) * HIGH(v);
}

/* Σ a·b, or Σ a when b is NULL. */
INLINE double sum_of_products(const float *a, const float *b, long count) {
    d4 s[2] = {{0}};
    long j = 0;
    for (; j + 8 <= count; j += 8) add_products(a + j, b ? b + j : 0, 8, s);
    if (j < count) add_products(a + j, b ? b + j : 0, count - j, s);
    return total(s);
}

BOTH_TARGETS double cnn_sum_f32(const float *x, long count) { return sum_of_products(x, 0, count); }

BOTH_TARGETS double cnn_dot_f32(const float *a, const float *b, long count) { return sum_of_products(a, b, count); }

BOTH_TARGETS void cnn_sum_and_squares_f32(const float *x, long count, double *sum, double *squares) {
    d4 s[2] = {{0}}, q[2] = {{0}};
    long j = 0;
    for (; j + 8 <= count; j += 8) add_sum_and_squares(x + j, 8, s, q);
    if (j < count) add_sum_and_squares(x + j, count - j, s, q);
    *sum += total(s);
    *squares += total(q);
}

/* d = dy (with a fused ReLU, dy where y > 0), x̂ = (x − mean)·inv_std in float32. */
INLINE void add_gradient_sums(const float *dy, const float *y, const float *x, long count, float mean, float inv_std,
                              d4 *s, d4 *w) {
    f8 d, out, v;
    load(&d, dy, count);
    load(&v, x, count);
    if (y) {
        load(&out, y, count);
        d = (f8)((i8)d & (out > 0));
    }
    f8 xhat = (v - mean) * inv_std;
    d4 da = LOW(d), db = HIGH(d);
    s[0] += da; s[1] += db;
    w[0] += da * LOW(xhat); w[1] += db * HIGH(xhat);
}

BOTH_TARGETS void cnn_normalized_gradient_sums_f32(const float *dy, const float *y, const float *x, float mean, float inv_std,
                                                   long count, double *sum, double *weighted) {
    d4 s[2] = {{0}}, w[2] = {{0}};
    long j = 0;
    for (; j + 8 <= count; j += 8) add_gradient_sums(dy + j, y ? y + j : 0, x + j, 8, mean, inv_std, s, w);
    if (j < count) add_gradient_sums(dy + j, y ? y + j : 0, x + j, count - j, mean, inv_std, s, w);
    *sum += total(s);
    *weighted += total(w);
}
