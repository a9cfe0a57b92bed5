/// Geometry of a 2-D sliding window (convolution or pooling) over one feature map.
public struct Window2D: Hashable, Sendable {
    public var kernel: Int, stride: Int, padding: Int

    public init(kernel: Int, stride: Int = 1, padding: Int = 0) {
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
    }

    /// PyTorch's output size, floor((side + 2·padding − kernel) / stride) + 1; ≤ 0 when the
    /// window does not fit.
    public func outputSide(_ side: Int) -> Int {
        let span = side + 2 * padding - kernel
        return span < 0 ? 0 : span / stride + 1
    }
}

// MARK: - im2col / col2im

/// Unfolds one image into the column matrix of a convolution.
/// image: (C, H, W); columns: (C·k·k, Ho·Wo), zero where the window covers padding.
/// Rows of `columns` lie `leadingDimension` apart (default Ho·Wo), so several images can
/// be unfolded side by side into one wider matrix.
public func im2col(
    _ image: UnsafePointer<Real>, channels: Int, height: Int, width: Int,
    window: Window2D, into columns: UnsafeMutablePointer<Real>, leadingDimension: Int? = nil
) {
    let k = window.kernel, s = window.stride, p = window.padding
    let outH = window.outputSide(height), outW = window.outputSide(width)
    let ld = leadingDimension ?? outH * outW
    var row = columns
    for c in 0..<channels {
        let plane = image + c * height * width
        for ky in 0..<k {
            for kx in 0..<k {
                for oy in 0..<outH {
                    let iy = oy * s - p + ky
                    let out = row + oy * outW
                    if iy < 0 || iy >= height {
                        out.update(repeating: 0, count: outW)
                        continue
                    }
                    let line = plane + iy * width
                    if s == 1 {
                        // Contiguous run: zeros left of the image, a copy, zeros right of it.
                        let first = max(0, p - kx), last = min(outW, width + p - kx)
                        if first > 0 { out.update(repeating: 0, count: first) }
                        if last > first { out.advanced(by: first).update(from: line + (first - p + kx), count: last - first) }
                        if last < outW { out.advanced(by: max(last, first)).update(repeating: 0, count: outW - max(last, first)) }
                    } else {
                        for ox in 0..<outW {
                            let ix = ox * s - p + kx
                            out[ox] = (ix >= 0 && ix < width) ? line[ix] : 0
                        }
                    }
                }
                row += ld
            }
        }
    }
}

/// Folds a column matrix back onto an image, summing overlaps: the adjoint of `im2col`.
/// columns: (C·k·k, Ho·Wo) with rows `leadingDimension` apart; image: (C, H, W),
/// accumulated into (zero it first for a plain fold).
public func col2im(
    _ columns: UnsafePointer<Real>, channels: Int, height: Int, width: Int,
    window: Window2D, into image: UnsafeMutablePointer<Real>, leadingDimension: Int? = nil
) {
    let k = window.kernel, s = window.stride, p = window.padding
    let outH = window.outputSide(height), outW = window.outputSide(width)
    let ld = leadingDimension ?? outH * outW
    var row = columns
    for c in 0..<channels {
        let plane = image + c * height * width
        for ky in 0..<k {
            for kx in 0..<k {
                for oy in 0..<outH {
                    let iy = oy * s - p + ky
                    if iy < 0 || iy >= height { continue }
                    let line = plane + iy * width
                    let src = row + oy * outW
                    if s == 1 {
                        let first = max(0, p - kx), last = min(outW, width + p - kx)
                        var ox = first
                        while ox < last {
                            line[ox - p + kx] += src[ox]
                            ox += 1
                        }
                    } else {
                        for ox in 0..<outW {
                            let ix = ox * s - p + kx
                            if ix >= 0 && ix < width { line[ix] += src[ox] }
                        }
                    }
                }
                row += ld
            }
        }
    }
}
