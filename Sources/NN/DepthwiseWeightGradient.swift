import Tensor

/// The weight (and bias) gradient of a convolution whose groups each read one input channel
/// (depthwise, with any channel multiplier), computed directly from NCHW x and dy.
///
/// oneDNN 2.6.3 has no optimized backward-weights kernel for some depthwise shapes on AVX2
/// (5×5, as in EfficientNet and MobileNetV3), only its reference one; without this the whole
/// convolution fell back to im2col + one GEMM per channel. Each output channel's sums are
/// done by one thread in a fixed order, so the result does not depend on the thread count.
struct DepthwiseWeightGradient {
    let window: Window2D
    let outChannels: Int, inChannels: Int

    /// Adds dW [O, 1, kh, kw] and, when given, db [O] for x [N, C, H, W] and dy [N, O, Ho, Wo].
    func accumulate(x: Tensor, dy: Tensor, weightGrad: UnsafeMutablePointer<Real>, biasGrad: UnsafeMutablePointer<Real>?) {
        let pass = Pass(window: window, n: x.shape[0], channels: inChannels, outChannels: outChannels,
                        h: x.shape[2], w: x.shape[3], outH: dy.shape[2], outW: dy.shape[3],
                        x: x.data, dy: dy.data, dW: weightGrad, db: biasGrad)
        Parallel.forEach(outChannels, grain: 1, pass) { Parallel.arguments($0, as: Pass.self).run($1..<$2) }
    }

    private struct Pass {
        let window: Window2D
        let n: Int, channels: Int, outChannels: Int, h: Int, w: Int, outH: Int, outW: Int
        let x: UnsafeMutablePointer<Real>, dy: UnsafeMutablePointer<Real>
        let dW: UnsafeMutablePointer<Real>, db: UnsafeMutablePointer<Real>?

        /// The output columns whose input column ow·stride − padding + k·dilation lies inside [0, size).
        private func validOutputs(_ k: Int, _ axis: Window2D.Axis, size: Int, outputs: Int) -> Range<Int> {
            let offset = k * axis.dilation - axis.padding
            let first = offset >= 0 ? 0 : (-offset + axis.stride - 1) / axis.stride
            let last = (size - 1 - offset) >= 0 ? min(outputs - 1, (size - 1 - offset) / axis.stride) : -1
            return first <= last ? first..<(last + 1) : 0..<0
        }

        func run(_ range: Range<Int>) {
            let taps = window.height.kernel * window.width.kernel
            // On the stack: a warm training step allocates nothing.
            withUnsafeTemporaryAllocation(of: Double.self, capacity: taps) { run(range, sums: $0) }
        }

        private func run(_ range: Range<Int>, sums: UnsafeMutableBufferPointer<Double>) {
            let (rows, columns) = (window.height, window.width)
            let taps = rows.kernel * columns.kernel, multiplier = outChannels / channels
            for o in range {
                for t in 0..<taps { sums[t] = 0 }
                var biasSum: Double = 0
                let c = o / multiplier
                for i in 0..<n {
                    let input = x + (i * channels + c) * h * w, gradient = dy + (i * outChannels + o) * outH * outW
                    if db != nil { for k in 0..<(outH * outW) { biasSum += Double(gradient[k]) } }
                    for kh in 0..<rows.kernel {
                        let outputRows = validOutputs(kh, rows, size: h, outputs: outH)
                        for kw in 0..<columns.kernel {
                            let outputColumns = validOutputs(kw, columns, size: w, outputs: outW)
                            let columnOffset = kw * columns.dilation - columns.padding
                            var sum: Real = 0
                            for oh in outputRows {
                                let inputRow = input + (oh * rows.stride + kh * rows.dilation - rows.padding) * w + columnOffset
                                let gradientRow = gradient + oh * outW
                                for ow in outputColumns { sum += gradientRow[ow] * inputRow[ow * columns.stride] }
                            }
                            sums[kh * columns.kernel + kw] += Double(sum)
                        }
                    }
                }
                for t in 0..<taps { dW[o * taps + t] += Real(sums[t]) }
                db?[o] += Real(biasSum)
            }
        }
    }
}
