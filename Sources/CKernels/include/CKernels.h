#ifndef CNN_KERNELS_H
#define CNN_KERNELS_H

/// Float32 activations built on e^x. Swift calls libm's expf once per element, which keeps
/// those loops scalar; these compute e^x with a polynomial the compiler vectorizes, built
/// twice: for AVX2 + FMA (x86-64-v3) and for the baseline, chosen when the library loads.
/// e^x is within 3 ulp of the exact value over the whole float range (tested against libm's
/// double exp), NaN stays NaN, and overflow and underflow give +inf and 0 as expf does.

/// y = 1 / (1 + e^−x)
void cnn_sigmoid_f32(const float *x, float *y, long count);
/// y = x / (1 + e^−x)
void cnn_silu_f32(const float *x, float *y, long count);
/// dx = dy · s · (1 + x · (1 − s)), s = sigmoid(x)
void cnn_silu_backward_f32(const float *x, const float *dy, float *dx, long count);
/// y = e^x, for the tests of the approximation itself.
void cnn_exp_f32(const float *x, float *y, long count);

#endif
