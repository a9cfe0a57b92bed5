/// Geometry of a 2-D sliding window (convolution or pooling) over one feature map: kernel,
/// stride, zero padding (the same on both sides of an axis) and dilation, per axis.
public struct Window2D: Hashable, Sendable {
    /// The window along one axis.
    public struct Axis: Hashable, Sendable {
        public var kernel: Int, stride: Int, padding: Int, dilation: Int

        public init(kernel: Int, stride: Int = 1, padding: Int = 0, dilation: Int = 1) {
            self.kernel = kernel
            self.stride = stride
            self.padding = padding
            self.dilation = dilation
        }

        /// The extent the kernel covers: dilation·(kernel − 1) + 1.
        public var span: Int { dilation * (kernel - 1) + 1 }

        /// PyTorch's output size, floor((side + 2·padding − span) / stride) + 1; ≤ 0 when the
        /// window does not fit.
        public func outputSide(_ side: Int) -> Int {
            let room = side + 2 * padding - span
            return room < 0 ? 0 : room / stride + 1
        }
    }

    public var height: Axis, width: Axis

    public init(height: Axis, width: Axis) {
        self.height = height
        self.width = width
    }

    /// A square window.
    public init(kernel: Int, stride: Int = 1, padding: Int = 0, dilation: Int = 1) {
        let axis = Axis(kernel: kernel, stride: stride, padding: padding, dilation: dilation)
        self.init(height: axis, width: axis)
    }

    /// Kernel taps per channel: kh·kw.
    public var taps: Int { height.kernel * width.kernel }

    /// Output (height, width) for an input plane; either is ≤ 0 when the window does not fit.
    public func outputSize(height h: Int, width w: Int) -> (height: Int, width: Int) {
        (height.outputSide(h), width.outputSide(w))
    }

    /// "k3 s2 p1" for square windows, "k1×7 s1×1 p0×3 d1×1" otherwise; dilation only when used.
    public var description: String {
        func pair(_ a: Int, _ b: Int) -> String { a == b ? "\(a)" : "\(a)×\(b)" }
        var text = "k\(pair(height.kernel, width.kernel)) s\(pair(height.stride, width.stride)) p\(pair(height.padding, width.padding))"
        if height.dilation != 1 || width.dilation != 1 { text += " d\(pair(height.dilation, width.dilation))" }
        return text
    }
}

// MARK: - im2col / col2im

/// Unfolds one image into the column matrix of a convolution.
/// image: (C, H, W); columns: (C·kh·kw, Ho·Wo), zero where the window covers padding.
/// Rows of `columns` lie `leadingDimension` apart (default Ho·Wo), so several images can
/// be unfolded side by side into one wider matrix.
public func im2col(
    _ image: UnsafePointer<Real>, channels: Int, height: Int, width: Int,
    window: Window2D, into columns: UnsafeMutablePointer<Real>, leadingDimension: Int? = nil
) {
    let unfolding = Unfolding(image: UnsafeMutablePointer(mutating: image), columns: columns, height: height, width: width,
                              window: window, leadingDimension: leadingDimension)
    // Channels are independent: each thread unfolds whole channels.
    Parallel.forEach(channels, grain: unfolding.grain, unfolding) { Parallel.arguments($0, as: Unfolding.self).unfold($1..<$2) }
}

/// Folds a column matrix back onto an image, summing overlaps: the adjoint of `im2col`.
/// columns: (C·kh·kw, Ho·Wo) with rows `leadingDimension` apart; image: (C, H, W),
/// accumulated into (zero it first for a plain fold).
public func col2im(
    _ columns: UnsafePointer<Real>, channels: Int, height: Int, width: Int,
    window: Window2D, into image: UnsafeMutablePointer<Real>, leadingDimension: Int? = nil
) {
    let unfolding = Unfolding(image: image, columns: UnsafeMutablePointer(mutating: columns), height: height, width: width,
                              window: window, leadingDimension: leadingDimension)
    // Each channel's taps add onto that channel's plane only.
    Parallel.forEach(channels, grain: unfolding.grain, unfolding) { Parallel.arguments($0, as: Unfolding.self).fold($1..<$2) }
}

/// One image and its column matrix, for unfolding or folding a range of channels.
private struct Unfolding {
    let image: UnsafeMutablePointer<Real>, columns: UnsafeMutablePointer<Real>
    let height: Int, width: Int, window: Window2D, outH: Int, outW: Int, leadingDimension: Int

    init(image: UnsafeMutablePointer<Real>, columns: UnsafeMutablePointer<Real>, height: Int, width: Int,
         window: Window2D, leadingDimension: Int?) {
        (self.image, self.columns, self.height, self.width, self.window) = (image, columns, height, width, window)
        (outH, outW) = window.outputSize(height: height, width: width)
        self.leadingDimension = leadingDimension ?? outH * outW
    }

    /// Channels per thread at least.
    var grain: Int { Parallel.grain(work: window.taps * outH * outW) }

    /// The output columns ox whose tap at kernel column `kx` lands inside a row: first..<last,
    /// and the tap's offset from ox·stride.
    private func inside(_ kx: Int) -> (first: Int, last: Int, shift: Int) {
        let u = window.width
        let shift = kx * u.dilation - u.padding
        let first = min(outW, max(0, (-shift + u.stride - 1) / u.stride))
        let last = max(first, min(outW, (width - shift + u.stride - 1) / u.stride))
        return (first, last, shift)
    }

    func unfold(_ channels: Range<Int>) {
        let v = window.height, u = window.width
        for c in channels {
            let plane = image + c * height * width
            var row = columns + c * window.taps * leadingDimension
            for ky in 0..<v.kernel {
                for kx in 0..<u.kernel {
                    let (first, last, shift) = inside(kx)
                    for oy in 0..<outH {
                        let iy = oy * v.stride - v.padding + ky * v.dilation
                        let out = row + oy * outW
                        if iy < 0 || iy >= height {
                            out.update(repeating: 0, count: outW)
                            continue
                        }
                        let line = plane + iy * width
                        if first > 0 { out.update(repeating: 0, count: first) }
                        if u.stride == 1 {
                            // Contiguous run: zeros left of the image, a copy, zeros right of it.
                            if last > first { (out + first).update(from: line + (first + shift), count: last - first) }
                        } else {
                            for ox in first..<last { out[ox] = line[ox * u.stride + shift] }
                        }
                        if last < outW { (out + last).update(repeating: 0, count: outW - last) }
                    }
                    row += leadingDimension
                }
            }
        }
    }

    func fold(_ channels: Range<Int>) {
        let v = window.height, u = window.width
        for c in channels {
            let plane = image + c * height * width
            var row = UnsafePointer(columns + c * window.taps * leadingDimension)
            for ky in 0..<v.kernel {
                for kx in 0..<u.kernel {
                    let (first, last, shift) = inside(kx)
                    for oy in 0..<outH {
                        let iy = oy * v.stride - v.padding + ky * v.dilation
                        if iy < 0 || iy >= height { continue }
                        let line = plane + iy * width + shift
                        let src = row + oy * outW
                        var ox = first
                        while ox < last {
                            line[ox * u.stride] += src[ox]
                            ox += 1
                        }
                    }
                    row += leadingDimension
                }
            }
        }
    }
}
