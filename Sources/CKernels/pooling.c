#include "CKernels.h"
#include "targets.h"
#include "vectors.h"
#include <string.h>

/* The input rows (or columns) [*start, *end) that the window of output `o` covers, clipped
   to the input's `extent`. */
static void window_span(const struct cnn_pool_shape *s, long o, long extent, long *start, long *end) {
    long origin = o * s->stride - s->padding;
    *start = origin < 0 ? 0 : origin;
    *end = origin + s->kernel < extent ? origin + s->kernel : extent;
}

/* One output of a window that the input's edge clips: PyTorch's loop, row by row. */
static void max_at(const struct cnn_pool_shape *s, const float *x, long oy, long ox, float *y, int32_t *at) {
    long ys, ye, xs, xe;
    window_span(s, oy, s->height, &ys, &ye);
    window_span(s, ox, s->width, &xs, &xe);
    float best = -__builtin_inff();
    int32_t index = (int32_t)(ys * s->width + xs);
    for (long iy = ys; iy < ye; iy++)
        for (long ix = xs; ix < xe; ix++) {
            float v = x[iy * s->width + ix];
            if (v > best || v != v) { best = v; index = (int32_t)(iy * s->width + ix); }
        }
    *y = best;
    *at = index;
}

static float sum_at(const struct cnn_pool_shape *s, const float *x, long oy, long ox) {
    long ys, ye, xs, xe;
    window_span(s, oy, s->height, &ys, &ye);
    window_span(s, ox, s->width, &xs, &xe);
    float sum = 0;
    for (long iy = ys; iy < ye; iy++)
        for (long ix = xs; ix < xe; ix++) sum += x[iy * s->width + ix];
    return sum;
}

/* The outputs [*first, *last) of a row whose windows lie inside the input's columns. */
static void inner_columns(const struct cnn_pool_shape *s, long *first, long *last) {
    long a = (s->padding + s->stride - 1) / s->stride;
    long b = s->width + s->padding - s->kernel < 0 ? 0 : (s->width + s->padding - s->kernel) / s->stride + 1;
    *first = a < s->out_width ? a : s->out_width;
    *last = b < *first ? *first : b < s->out_width ? b : s->out_width;
}

/* Eight outputs side by side, one per lane; sixteen floats for stride 2's loads. */
typedef float f16 __attribute__((vector_size(64)));

/* p[0], p[stride], …, p[7·stride]: stride 1 and 2 (nearly every pooling) load whole
   vectors; others go lane by lane. */
INLINE void load_strided(f8 *v, const float *p, long stride) {
    if (stride == 1) {
        memcpy(v, p, sizeof *v);
    } else if (stride == 2) {
        f16 pair = {0};
        memcpy(&pair, p, sizeof pair - sizeof(float)); /* the last odd lane is not needed (nor maybe readable) */
        *v = __builtin_shufflevector(pair, pair, 0, 2, 4, 6, 8, 10, 12, 14);
    } else {
        for (int l = 0; l < 8; l++) (*v)[l] = p[l * stride];
    }
}

/* Where v is larger than best, or NaN, in a lane: best ← v and winner ← at there (so the
   first maximum of a window stays, as in PyTorch). */
INLINE void keep_maximum(f8 *best, i8 *winner, const f8 *v, const i8 *at) {
    i8 take = (*v > *best) | (*v != *v);
    *best = (f8)(((i8)*v & take) | ((i8)*best & ~take));
    *winner = (*at & take) | (*winner & ~take);
}

/* Eight inner outputs ox … ox + 7 of row oy, their windows' rows clipped to [ys, ye). */
INLINE void max_of_eight(const struct cnn_pool_shape *s, const float *x, long ys, long ye, long ox, float *y, int32_t *at) {
    const i8 lanes = {0, 1, 2, 3, 4, 5, 6, 7};
    f8 best = (f8){0} - __builtin_inff(); /* −∞ in every lane */
    i8 winner = (int32_t)(ys * s->width + ox * s->stride - s->padding) + lanes * (int32_t)s->stride;
    for (long iy = ys; iy < ye; iy++)
        for (long kx = 0; kx < s->kernel; kx++) {
            long offset = iy * s->width + ox * s->stride - s->padding + kx;
            f8 v;
            load_strided(&v, x + offset, s->stride);
            i8 at = (int32_t)offset + lanes * (int32_t)s->stride;
            keep_maximum(&best, &winner, &v, &at);
        }
    memcpy(y, &best, sizeof best);
    memcpy(at, &winner, sizeof winner);
}

INLINE void average_of_eight(const struct cnn_pool_shape *s, const float *x, long ys, long ye, long ox, float divisor, float *y) {
    f8 sum = {0};
    for (long iy = ys; iy < ye; iy++)
        for (long kx = 0; kx < s->kernel; kx++) {
            f8 v;
            load_strided(&v, x + iy * s->width + ox * s->stride - s->padding + kx, s->stride);
            sum += v;
        }
    sum /= divisor;
    memcpy(y, &sum, sizeof sum);
}

/* Channel-blocked planes: pixel i of a plane holds `block` channels at x[i·block …], so each
   output compares or adds whole vectors of channels, in its window's order (as above). Max
   pooling where `argmax` is given, else average. Inlined with the block as a constant (8
   or 16), so that the accumulators are registers. */
enum { max_vectors = 2 };

INLINE void blocked_pool(const struct cnn_pool_shape *s, const float *x, float *y, int32_t *argmax, long planes,
                         const long block) {
    const long vectors = block / 8, plane = s->height * s->width * block, out_plane = s->out_height * s->out_width * block;
    const float divisor = (float)(s->kernel * s->kernel);
    for (long p = 0; p < planes; p++, x += plane, y += out_plane, argmax += argmax ? out_plane : 0)
        for (long oy = 0; oy < s->out_height; oy++) {
            long ys, ye;
            window_span(s, oy, s->height, &ys, &ye);
            for (long ox = 0; ox < s->out_width; ox++) {
                long xs, xe;
                window_span(s, ox, s->width, &xs, &xe);
                f8 result[max_vectors]; /* the maximum, or the sum */
                i8 winner[max_vectors];
                for (long k = 0; k < vectors; k++) {
                    result[k] = argmax ? (f8){0} - __builtin_inff() : (f8){0};
                    winner[k] = (i8){0} + (int32_t)(ys * s->width + xs);
                }
                for (long iy = ys; iy < ye; iy++)
                    for (long ix = xs; ix < xe; ix++) {
                        const int32_t pixel = (int32_t)(iy * s->width + ix);
                        for (long k = 0; k < vectors; k++) {
                            f8 v;
                            memcpy(&v, x + pixel * block + 8 * k, sizeof v);
                            i8 at = (i8){0} + pixel;
                            if (argmax) keep_maximum(&result[k], &winner[k], &v, &at);
                            else result[k] += v;
                        }
                    }
                long o = (oy * s->out_width + ox) * block;
                for (long k = 0; k < vectors; k++) {
                    if (!argmax) result[k] /= divisor;
                    memcpy(y + o + 8 * k, &result[k], sizeof result[k]);
                    if (argmax) memcpy(argmax + o + 8 * k, &winner[k], sizeof winner[k]);
                }
            }
        }
}

/* Planes of at most this many floats (16×16) go eight at a time, one per lane. */
enum { small_plane = 256 };

/* Eight small planes side by side: each lane is a plane, every output (clipped or not)
   visits its window in the order above. GoogLeNet's 6×6 and 3×3 planes have no row of
   eight inner outputs, and one at a time their unpredictable comparisons took 20% of its
   step. Transposed first, so that the nine reads of each input are whole vectors: the
   eight planes are then one channel-blocked plane of 8 lanes. */
INLINE void max_pool_eight_planes(const struct cnn_pool_shape *s, const float *x, float *y, int32_t *argmax) {
    long plane = s->height * s->width, out_plane = s->out_height * s->out_width;
    float in[8 * small_plane], best_of[8 * small_plane];
    int32_t winner_of[8 * small_plane];
    for (long i = 0; i < plane; i++)
        for (int l = 0; l < 8; l++) in[8 * i + l] = x[l * plane + i];
    blocked_pool(s, in, best_of, winner_of, 1, 8);
    for (int l = 0; l < 8; l++)
        for (long o = 0; o < out_plane; o++) {
            y[l * out_plane + o] = best_of[8 * o + l];
            argmax[l * out_plane + o] = winner_of[8 * o + l];
        }
}

/* The inner outputs of each row go eight at a time, each lane visiting its window in the
   order above (a row's last inner outputs as the eight that end there, recomputing a few);
   the rest one at a time. Small planes go eight planes at a time instead. */
BOTH_TARGETS void cnn_max_pool_f32(const struct cnn_pool_shape *s, const float *x, float *y, int32_t *argmax, long planes) {
    long first, last, plane = s->height * s->width, out_plane = s->out_height * s->out_width;
    inner_columns(s, &first, &last);
    if (plane <= small_plane && out_plane <= small_plane)
        for (; planes >= 8; planes -= 8, x += 8 * plane, y += 8 * out_plane, argmax += 8 * out_plane)
            max_pool_eight_planes(s, x, y, argmax);
    for (long p = 0; p < planes; p++, x += plane, y += out_plane, argmax += out_plane) {
        for (long oy = 0; oy < s->out_height; oy++) {
            long ys, ye;
            window_span(s, oy, s->height, &ys, &ye);
            long row = oy * s->out_width, ox = 0;
            for (; ox < first; ox++) max_at(s, x, oy, ox, y + row + ox, argmax + row + ox);
            for (; ox + 8 <= last; ox += 8) max_of_eight(s, x, ys, ye, ox, y + row + ox, argmax + row + ox);
            if (ox < last && last - first >= 8) { /* the last eight again: the same values */
                ox = last - 8;
                max_of_eight(s, x, ys, ye, ox, y + row + ox, argmax + row + ox);
                ox = last;
            }
            for (; ox < s->out_width; ox++) max_at(s, x, oy, ox, y + row + ox, argmax + row + ox);
        }
    }
}

BOTH_TARGETS void cnn_average_pool_f32(const struct cnn_pool_shape *s, const float *x, float *y, long planes) {
    long first, last, plane = s->height * s->width, out_plane = s->out_height * s->out_width;
    float divisor = (float)(s->kernel * s->kernel);
    inner_columns(s, &first, &last);
    for (long p = 0; p < planes; p++, x += plane, y += out_plane)
        for (long oy = 0; oy < s->out_height; oy++) {
            long ys, ye;
            window_span(s, oy, s->height, &ys, &ye);
            long row = oy * s->out_width, ox = 0;
            for (; ox < first; ox++) y[row + ox] = sum_at(s, x, oy, ox) / divisor;
            for (; ox + 8 <= last; ox += 8) average_of_eight(s, x, ys, ye, ox, divisor, y + row + ox);
            if (ox < last && last - first >= 8) {
                ox = last - 8;
                average_of_eight(s, x, ys, ye, ox, divisor, y + row + ox);
                ox = last;
            }
            for (; ox < s->out_width; ox++) y[row + ox] = sum_at(s, x, oy, ox) / divisor;
        }
}

BOTH_TARGETS void cnn_blocked_max_pool_f32(const struct cnn_pool_shape *s, const float *x, float *y, int32_t *argmax,
                                           long planes, long block) {
    if (block == 16) blocked_pool(s, x, y, argmax, planes, 16);
    else blocked_pool(s, x, y, argmax, planes, 8);
}

BOTH_TARGETS void cnn_blocked_average_pool_f32(const struct cnn_pool_shape *s, const float *x, float *y, long planes, long block) {
    if (block == 16) blocked_pool(s, x, y, 0, planes, 16);
    else blocked_pool(s, x, y, 0, planes, 8);
}
