import CKernels

/// Max or average pooling with square kernel, stride and padding, in PyTorch's semantics:
/// padding counts as −∞ for max and as zeros in the average (count_include_pad).
public final class Pool2d: Layer, OverwritableOutput {
    public enum Kind: String, Sendable { case max = "MaxPool2d", average = "AvgPool2d" }

    public let kind: Kind
    public let window: Window2D
    private var output: Tensor?
    /// For max pooling, the flat input index that won each output (within its plane).
    private var argmax: UnsafeMutablePointer<Int32>?
    private var argmaxCount = 0

    public init(_ kind: Kind, kernel: Int, stride: Int? = nil, padding: Int = 0) {
        self.kind = kind
        window = Window2D(kernel: kernel, stride: stride ?? kernel, padding: padding)
    }

    deinit { argmax?.deallocate() }

    public var summary: String { "\(kind.rawValue)(\(window.description))" }

    public func outputShape(for input: Shape) throws -> Shape {
        guard input.rank == 4 else { throw ShapeError(layer: summary, "expects N×C×H×W input, got \(input)") }
        let (h, w) = window.outputSize(height: input[2], width: input[3])
        guard h > 0 && w > 0 else {
            throw ShapeError(layer: summary, "input \(input[2])×\(input[3]) is too small for the window \(window.description)")
        }
        return Shape(input[0], input[1], h, w)
    }

    public func flops(for input: Shape) -> Int {
        guard let out = try? outputShape(for: input) else { return 0 }
        return out.count * window.taps
    }

    /// NCHW, and in the float32 build oneDNN's channel blocks.
    public func reads(_ layout: ActivationLayout, shape: Shape) -> Bool {
        layout.hasOwnKernels
    }

    // x: (N, C, H, W) -> y: (N, C, Ho, Wo), in the input's layout
    public func forward(_ input: Tensor, mode: Mode) -> Tensor {
        let (outH, outW) = window.outputSize(height: input.shape[2], width: input.shape[3])
        let y = Tensor.reuse(&output, shape: Shape(input.shape[0], input.shape[1], outH, outW), layout: input.layout)
        if kind == .max && argmaxCount < y.count {
            argmax?.deallocate()
            argmax = .allocate(capacity: y.count)
            argmaxCount = y.count
        }
        let pass = Pass(kind: kind, window: window, input: input.shape, block: input.layout.block, outH: outH, outW: outW,
                        x: input.data, y: y.data, argmax: argmax)
        Parallel.forEach(pass.planes, grain: pass.grain, pass) { Parallel.arguments($0, as: Pass.self).forward($1..<$2) }
        return y
    }

    public func backward(_ input: Tensor, _ gradOutput: Tensor) -> Tensor {
        let dx = Workspace.tensor(input.shape, layout: input.layout)
        let pass = Pass(kind: kind, window: window, input: input.shape, block: input.layout.block,
                        outH: gradOutput.shape[2], outW: gradOutput.shape[3], x: dx.data, y: gradOutput.data, argmax: argmax)
        Parallel.forEach(pass.planes, grain: pass.grain, pass) { Parallel.arguments($0, as: Pass.self).backward($1..<$2) }
        return dx
    }

    /// Pooling over a range of planes (example, channel), which are independent, or of
    /// channel-blocked planes (example, block of `block` channels): x and y hold the input
    /// and output, or in backward the input gradient and output gradient.
    private struct Pass {
        let kind: Kind
        let planes: Int, block: Int, h: Int, w: Int, outH: Int, outW: Int
        // Pooling windows are square (see init).
        let k: Int, s: Int, p: Int
        let x: UnsafeMutablePointer<Real>, y: UnsafeMutablePointer<Real>
        let argmax: UnsafeMutablePointer<Int32>?

        init(kind: Kind, window: Window2D, input: Shape, block: Int, outH: Int, outW: Int,
             x: UnsafeMutablePointer<Real>, y: UnsafeMutablePointer<Real>, argmax: UnsafeMutablePointer<Int32>?) {
            (self.kind, planes, self.block) = (kind, input[0] * input[1] / block, block)
            (h, w, self.outH, self.outW) = (input[2], input[3], outH, outW)
            (k, s, p) = (window.height.kernel, window.height.stride, window.height.padding)
            (self.x, self.y, self.argmax) = (x, y, argmax)
        }

        var grain: Int { Parallel.grain(work: outH * outW * k * k * block) }

        func forward(_ range: Range<Int>) {
            #if !CNN_FLOAT64
            // The same loops in C, where the inner outputs of a row, or a block's channels, vectorize.
            var shape = cnn_pool_shape(height: h, width: w, out_height: outH, out_width: outW, kernel: k, stride: s, padding: p)
            let first = range.lowerBound
            if block > 1 {
                let (input, output) = (x + first * h * w * block, y + first * outH * outW * block)
                switch kind {
                case .max: cnn_blocked_max_pool_f32(&shape, input, output, argmax! + first * outH * outW * block, range.count, block)
                case .average: cnn_blocked_average_pool_f32(&shape, input, output, range.count, block)
                }
                return
            }
            switch kind {
            case .max: cnn_max_pool_f32(&shape, x + first * h * w, y + first * outH * outW, argmax! + first * outH * outW, range.count)
            case .average: cnn_average_pool_f32(&shape, x + first * h * w, y + first * outH * outW, range.count)
            }
            #else
            let divisor = Real(k * k)
            for plane in range {
                let x = x + plane * h * w, out = y + plane * outH * outW
                for oy in 0..<outH {
                    let y0 = oy * s - p, yStart = max(y0, 0), yEnd = min(y0 + k, h)
                    for ox in 0..<outW {
                        let x0 = ox * s - p, xStart = max(x0, 0), xEnd = min(x0 + k, w)
                        let o = oy * outW + ox
                        switch kind {
                        case .max:
                            var best = -Real.infinity, at = -1
                            for iy in yStart..<yEnd {
                                for ix in xStart..<xEnd where x[iy * w + ix] > best || x[iy * w + ix].isNaN || at < 0 {
                                    best = x[iy * w + ix]
                                    at = iy * w + ix
                                }
                            }
                            out[o] = best
                            argmax![plane * outH * outW + o] = Int32(at)
                        case .average:
                            var sum: Real = 0
                            for iy in yStart..<yEnd {
                                for ix in xStart..<xEnd { sum += x[iy * w + ix] }
                            }
                            out[o] = sum / divisor
                        }
                    }
                }
            }
            #endif
        }

        /// x: the input gradient (zeroed here), y: the output gradient. Each input element
        /// adds its outputs' shares in the same order in both layouts.
        func backward(_ range: Range<Int>) {
            let divisor = Real(k * k), block = block
            for plane in range {
                let g = x + plane * h * w * block, dy = y + plane * outH * outW * block
                g.update(repeating: 0, count: h * w * block)
                switch kind {
                case .max:
                    let winners = argmax! + plane * outH * outW * block
                    for o in 0..<(outH * outW) {
                        for lane in 0..<block { g[Int(winners[o * block + lane]) * block + lane] += dy[o * block + lane] }
                    }
                case .average:
                    for oy in 0..<outH {
                        let y0 = oy * s - p, yStart = max(y0, 0), yEnd = min(y0 + k, h)
                        for ox in 0..<outW {
                            let x0 = ox * s - p, xStart = max(x0, 0), xEnd = min(x0 + k, w)
                            for lane in 0..<block {
                                let share = dy[(oy * outW + ox) * block + lane] / divisor
                                for iy in yStart..<yEnd {
                                    for ix in xStart..<xEnd { g[(iy * w + ix) * block + lane] += share }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Average over each whole feature map: (N, C, H, W) -> (N, C, 1, 1), as
/// `adaptive_avg_pool2d(x, 1)`.
public final class GlobalAvgPool: Layer, OverwritableOutput {
    private var output: Tensor?

    public init() {}

    public var summary: String { "GlobalAvgPool" }

    public func outputShape(for input: Shape) throws -> Shape {
        guard input.rank == 4 else { throw ShapeError(layer: summary, "expects N×C×H×W input, got \(input)") }
        return Shape(input[0], input[1], 1, 1)
    }

    public func flops(for input: Shape) -> Int { input.count }

    /// NCHW, and in the float32 build channel blocks. The output is NCHW: of a 1×1 plane,
    /// both layouts are the same bytes.
    public func reads(_ layout: ActivationLayout, shape: Shape) -> Bool {
        layout.hasOwnKernels
    }

    public func forward(_ input: Tensor, mode: Mode) -> Tensor {
        let block = input.layout.block, planes = input.shape[0] * input.shape[1] / block, area = input.shape[2] * input.shape[3]
        let y = Tensor.reuse(&output, shape: Shape(input.shape[0], input.shape[1], 1, 1))
        let pass = PlaneMeans(area: area, block: block, planes: input.data, means: y.data)
        Parallel.forEach(planes, grain: Parallel.grain(work: area * block), pass) { Parallel.arguments($0, as: PlaneMeans.self).forward($1..<$2) }
        return y
    }

    public func backward(_ input: Tensor, _ gradOutput: Tensor) -> Tensor {
        let block = input.layout.block, planes = input.shape[0] * input.shape[1] / block, area = input.shape[2] * input.shape[3]
        let dx = Workspace.tensor(input.shape, layout: input.layout)
        let pass = PlaneMeans(area: area, block: block, planes: dx.data, means: gradOutput.data)
        Parallel.forEach(planes, grain: Parallel.grain(work: area * block), pass) { Parallel.arguments($0, as: PlaneMeans.self).backward($1..<$2) }
        return dx
    }
}

/// Global average pooling over a range of planes of `area` elements, or of channel-blocked
/// planes of `area` rows of `block` channels (whose means are `block` apart).
private struct PlaneMeans {
    let area: Int, block: Int
    let planes: UnsafeMutablePointer<Real>, means: UnsafeMutablePointer<Real>

    /// means = the mean of each plane
    func forward(_ range: Range<Int>) {
        guard block > 1 else {
            for p in range { means[p] = Real(Sums.sum(planes + p * area, area) / Double(area)) }
            return
        }
        for p in range {
            Sums.forEachLane(planes + p * area * block, nil, rows: area, block: block) { means[p * block + $0] = Real($1 / Double(area)) }
        }
    }

    /// Each plane filled with its mean's gradient over the area.
    func backward(_ range: Range<Int>) {
        for p in range {
            let plane = planes + p * area * block
            for lane in 0..<block {
                let share = means[p * block + lane] / Real(area)
                for r in 0..<area { plane[r * block + lane] = share }
            }
        }
    }
}

/// (N, C, H, W) -> (N, C·H·W), sharing memory with its input.
public final class Flatten: Layer {
    public init() {}

    public var summary: String { "Flatten" }
    public func outputShape(for input: Shape) throws -> Shape { Shape(input[0], input.itemCount) }
    public func flops(for input: Shape) -> Int { 0 }

    public func forward(_ input: Tensor, mode: Mode) -> Tensor {
        input.reshaped(Shape(input.shape[0], input.shape.itemCount))
    }

    public func backward(_ input: Tensor, _ gradOutput: Tensor) -> Tensor { gradOutput.reshaped(input.shape) }
}
