#include "CKernels.h"
#include "targets.h"

#define LANES cnn_depthwise_lanes

/* The rows (or columns) of x that a window reads, padding included: (outputs − 1)·stride +
   (kernel − 1)·dilation + 1. Padded row r is input row r − padding. */
static long padded_extent(long outputs, long kernel, long stride, long dilation) {
    return (outputs - 1) * stride + (kernel - 1) * dilation + 1;
}

long cnn_depthwise_workspace(const struct cnn_depthwise_shape *s) {
    long rows = padded_extent(s->out_height, s->kernel_h, s->stride_h, s->dilation_h);
    long columns = padded_extent(s->out_width, s->kernel_w, s->stride_w, s->dilation_w);
    return (rows * columns + s->out_height * s->out_width) * LANES;
}

BOTH_TARGETS void cnn_depthwise_weight_gradient_f32(const struct cnn_depthwise_shape *s, const float *x, const float *dy,
                                                    float *dW, float *db, long first_block, long last_block, float *workspace) {
    long rows = padded_extent(s->out_height, s->kernel_h, s->stride_h, s->dilation_h);
    long columns = padded_extent(s->out_width, s->kernel_w, s->stride_w, s->dilation_w);
    long taps = s->kernel_h * s->kernel_w, plane = s->height * s->width, out_plane = s->out_height * s->out_width;
    long out_channels = s->channels * s->multiplier;
    float *xb = workspace, *gb = workspace + rows * columns * LANES; /* [rows][columns][8], [Ho][Wo][8] */
    double sums[taps * LANES], bias[LANES];

    for (long block = first_block; block < last_block; block++) {
        long o0 = block * LANES, lanes = out_channels - o0 < LANES ? out_channels - o0 : LANES;
        for (long k = 0; k < taps * LANES; k++) sums[k] = 0;
        for (long l = 0; l < LANES; l++) bias[l] = 0;
        for (long i = 0; i < s->images; i++) {
            /* Channels-last copies of this block; lanes past the last channel hold zeros. */
            for (long l = 0; l < LANES; l++) {
                const float *xc = l < lanes ? x + (i * s->channels + (o0 + l) / s->multiplier) * plane : 0;
                for (long r = 0; r < rows; r++) {
                    long row = r - s->padding_h;
                    for (long q = 0; q < columns; q++) {
                        long column = q - s->padding_w;
                        int inside = xc && row >= 0 && row < s->height && column >= 0 && column < s->width;
                        xb[(r * columns + q) * LANES + l] = inside ? xc[row * s->width + column] : 0;
                    }
                }
                const float *gc = l < lanes ? dy + (i * out_channels + o0 + l) * out_plane : 0;
                for (long k = 0; k < out_plane; k++) gb[k * LANES + l] = gc ? gc[k] : 0;
            }
            /* One window position at a time: 8 channels' products in one vector. */
            for (long kh = 0; kh < s->kernel_h; kh++) {
                for (long kw = 0; kw < s->kernel_w; kw++) {
                    float acc[LANES] = {0};
                    for (long oh = 0; oh < s->out_height; oh++) {
                        const float *xr = xb + ((oh * s->stride_h + kh * s->dilation_h) * columns + kw * s->dilation_w) * LANES;
                        const float *gr = gb + oh * s->out_width * LANES;
                        for (long ow = 0; ow < s->out_width; ow++) {
                            const float *xv = xr + ow * s->stride_w * LANES, *gv = gr + ow * LANES;
                            for (long l = 0; l < LANES; l++) acc[l] += gv[l] * xv[l];
                        }
                    }
                    for (long l = 0; l < LANES; l++) sums[(kh * s->kernel_w + kw) * LANES + l] += acc[l];
                }
            }
            if (db) {
                float acc[LANES] = {0};
                for (long k = 0; k < out_plane; k++)
                    for (long l = 0; l < LANES; l++) acc[l] += gb[k * LANES + l];
                for (long l = 0; l < LANES; l++) bias[l] += acc[l];
            }
        }
        for (long l = 0; l < lanes; l++) {
            for (long t = 0; t < taps; t++) dW[(o0 + l) * taps + t] += (float)sums[t * LANES + l];
            if (db) db[o0 + l] += (float)bias[l];
        }
    }
}
