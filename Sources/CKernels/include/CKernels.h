#ifndef CNN_KERNELS_H
#define CNN_KERNELS_H

#include <stdint.h>

/// Float32 kernels that Swift leaves scalar, each built twice: for AVX2 + FMA (x86-64-v3)
/// and for the baseline, the loader picking one by the CPU.

/// Activations built on e^x. Swift calls libm's expf once per element, which keeps
/// those loops scalar; these compute e^x with a polynomial the compiler vectorizes.
/// e^x is within 2 ulp of the exact value over the whole float range (tested against libm's
/// double exp), NaN stays NaN, and overflow and underflow give +inf and 0 as expf does.

/// y = 1 / (1 + e^−x)
void cnn_sigmoid_f32(const float *x, float *y, long count);
/// y = x / (1 + e^−x)
void cnn_silu_f32(const float *x, float *y, long count);
/// dx = dy · s · (1 + x · (1 − s)), s = sigmoid(x)
void cnn_silu_backward_f32(const float *x, const float *dy, float *dx, long count);
/// y = e^x, for the tests of the approximation itself.
void cnn_exp_f32(const float *x, float *y, long count);

/// GELU (PyTorch's exact form) on a polynomial erf, within 3 ulp of the exact value (tested
/// against libm's double erf), as libm's erff keeps the loops scalar.
/// y = x/2 · (1 + erf(x/√2))
void cnn_gelu_f32(const float *x, float *y, long count);
/// dx = dy · (Φ(x) + x · φ(x)), Φ(x) = (1 + erf(x/√2))/2, φ(x) = e^(−x²/2)/√(2π)
void cnn_gelu_backward_f32(const float *x, const float *dy, float *dx, long count);
/// y = erf(x), for the tests of the approximation itself.
void cnn_erf_f32(const float *x, float *y, long count);

/// Float64 sums of float32 data over eight lanes (a single running sum is one chain of
/// dependent additions: the Swift loop ran at the adder's latency, not its width), for
/// batch norm, pooling and squeeze-and-excitation. The order of the additions depends only
/// on `count`.

/// Σ x
double cnn_sum_f32(const float *x, long count);
/// Σ a · b
double cnn_dot_f32(const float *a, const float *b, long count);

/// *sum += Σ x, *squares += Σ x² (each call adds to the outputs, as do the next).
void cnn_sum_and_squares_f32(const float *x, long count, double *sum, double *squares);
/// *sum += Σ d, *weighted += Σ d · x̂, with d = dy (or, for a fused ReLU, dy where y > 0 and
/// 0 elsewhere; y is NULL without one) and x̂ = (x − mean) · inv_std in float32.
void cnn_normalized_gradient_sums_f32(const float *dy, const float *y, const float *x, float mean, float inv_std,
                                      long count, double *sum, double *weighted);

/// Batch norm, channel sums and channel scaling over channel-blocked activations (oneDNN's
/// nChw8c or nChw16c: N, C/b, area, b with the b channels of a block innermost), one block
/// of `block` (8 or 16) channels per call. Per-channel values (sum, mean, scale, ...) are
/// given for the block's channels. The elementwise kernels round as NN's NCHW loops do (no
/// fused multiply-adds), so that both layouts give the same values for the same statistics.

/// sum[j] = Σ x, squares[j] = Σ x² of lane j over `examples` examples `example_stride`
/// floats apart, `area` rows of `block` floats each.
void cnn_blocked_sum_and_squares_f32(const float *x, long examples, long example_stride, long area, long block,
                                     double *sum, double *squares);
/// y = x · scale + shift (then max(y, 0) where `relu`), `area` rows of one example's block.
void cnn_blocked_normalize_f32(const float *x, float *y, long area, long block, const float *scale,
                               const float *shift, int relu);
/// sum[j] = Σ d, weighted[j] = Σ d · x̂ over the examples, with d and x̂ as in
/// cnn_normalized_gradient_sums_f32 (y NULL without a fused ReLU).
void cnn_blocked_gradient_sums_f32(const float *dy, const float *y, const float *x, long examples, long example_stride,
                                   long area, long block, const float *mean, const float *inv_std,
                                   double *sum, double *weighted);
/// dx = scale · (d − mean_dy − (x − mean) · inv_std · mean_dy_xhat), one example's block;
/// with mean_dy NULL (evaluation) dx = scale · d.
void cnn_blocked_input_gradient_f32(const float *dy, const float *y, const float *x, float *dx, long area, long block,
                                    const float *scale, const float *mean, const float *inv_std,
                                    const float *mean_dy, const float *mean_dy_xhat);

/// out[j] = Σ a · b (Σ a where b is NULL) of lane j over `area` rows, in float64.
void cnn_blocked_sums_f32(const float *a, const float *b, long area, long block, double *out);
/// y = x · factor[j] in lane j, or y += x · factor[j] where `accumulate`, `area` rows.
void cnn_blocked_scale_f32(const float *x, float *y, long area, long block, const float *factor, int accumulate);

/// Max and average pooling over NCHW planes: a square window, PyTorch's semantics (padding
/// as −∞ for max and as zeros in the average, whose divisor is kernel²). Each output sums or
/// compares its window in PyTorch's order, row by row, so the results (and the maximum's
/// index when several are equal: the first) are the scalar loop's, bit for bit.
struct cnn_pool_shape {
    long height, width, out_height, out_width, kernel, stride, padding;
};

/// y and argmax (the flat index within its plane of each output's maximum) for `planes` planes.
void cnn_max_pool_f32(const struct cnn_pool_shape *shape, const float *x, float *y, int32_t *argmax, long planes);
/// y for `planes` planes.
void cnn_average_pool_f32(const struct cnn_pool_shape *shape, const float *x, float *y, long planes);

/// The same over channel-blocked planes (oneDNN's nChw8c or nChw16c): each of `planes` planes
/// is height × width pixels of `block` (8 or 16) channels, and each channel's outputs (and
/// argmax, the flat pixel index within the plane) are those of its NCHW plane, bit for bit.
void cnn_blocked_max_pool_f32(const struct cnn_pool_shape *shape, const float *x, float *y, int32_t *argmax, long planes,
                              long block);
void cnn_blocked_average_pool_f32(const struct cnn_pool_shape *shape, const float *x, float *y, long planes, long block);

/// A depthwise convolution (each group reads one input channel, `multiplier` output
/// channels per group) on NCHW tensors.
struct cnn_depthwise_shape {
    long images, channels, multiplier, height, width, out_height, out_width;
    long kernel_h, kernel_w, stride_h, stride_w, padding_h, padding_w, dilation_h, dilation_w;
};

/// Output channels are taken 8 at a time, one per vector lane: x and dy are copied to
/// channels-last blocks (x with its padding as zeros), so that every product of a window is
/// one vector operation whatever the width (EfficientNet's planes are 3 to 48 wide).
enum { cnn_depthwise_lanes = 8 };

/// Floats of workspace one thread needs for `cnn_depthwise_weight_gradient_f32`.
long cnn_depthwise_workspace(const struct cnn_depthwise_shape *shape);

/// Adds to dW [O, 1, kh, kw] (and to db [O] unless it is NULL) the weight and bias gradients
/// of output channels [8·first_block, 8·last_block) ∩ [0, O), from x [N, C, H, W] and
/// dy [N, O, Ho, Wo], using `workspace` (cnn_depthwise_workspace floats, the caller's own).
/// Each channel's sums are in a fixed order, float32 within an image and float64 across
/// images: the result does not depend on how blocks are split among threads.
void cnn_depthwise_weight_gradient_f32(const struct cnn_depthwise_shape *shape, const float *x, const float *dy,
                                       float *dW, float *db, long first_block, long last_block, float *workspace);

#endif
