/// 2-D convolution over NCHW input with square kernel, stride and zero padding, as
/// im2col + sgemm per image (backward: sgemm for the weight gradient, sgemm + col2im for
/// the input gradient). Weight [out, in, k, k], bias [out], as in PyTorch.
public final class Conv2d: Layer {
    public let inChannels: Int, outChannels: Int
    public let window: Window2D
    public let weight: Parameter
    public let bias: Parameter?
    /// The first layer of a network need not compute a gradient for the image.
    public var computesInputGradient = true

    private var output: Tensor?, gradInput: Tensor?, columns: Tensor?

    public init(_ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0, bias: Bool = true) {
        self.inChannels = inChannels
        self.outChannels = outChannels
        window = Window2D(kernel: kernel, stride: stride, padding: padding)
        let fanIn = inChannels * kernel * kernel
        weight = Parameter("weight", shape: Shape(outChannels, inChannels, kernel, kernel),
                           role: .weight(fanIn: fanIn, fanOut: outChannels * kernel * kernel))
        self.bias = bias ? Parameter("bias", shape: Shape(outChannels), role: .bias(fanIn: fanIn)) : nil
    }

    public var summary: String {
        "Conv2d(\(inChannels)→\(outChannels), k\(window.kernel) s\(window.stride) p\(window.padding))"
    }
    public var parameters: [Parameter] { [weight] + (bias.map { [$0] } ?? []) }

    /// A 1×1 convolution with stride 1 and no padding reads its input as the column matrix.
    private var isPointwise: Bool { window.kernel == 1 && window.stride == 1 && window.padding == 0 }

    public func outputShape(for input: Shape) throws -> Shape {
        guard input.rank == 4 else { throw ShapeError(layer: summary, "expects N×C×H×W input, got \(input)") }
        guard input[1] == inChannels else {
            throw ShapeError(layer: summary, "expects \(inChannels) input channels, got \(input[1]) (input \(input))")
        }
        let h = window.outputSide(input[2]), w = window.outputSide(input[3])
        guard h > 0 && w > 0 else {
            throw ShapeError(layer: summary, "input \(input[2])×\(input[3]) is too small for kernel \(window.kernel) with padding \(window.padding)")
        }
        return Shape(input[0], outChannels, h, w)
    }

    public func flops(for input: Shape) -> Int {
        guard let out = try? outputShape(for: input) else { return 0 }
        return 2 * out.count * inChannels * window.kernel * window.kernel
    }

    // x: (N, C, H, W) -> y: (N, O, Ho, Wo)
    public func forward(_ input: Tensor, mode: Mode) -> Tensor {
        let n = input.shape[0], h = input.shape[2], w = input.shape[3]
        let outH = window.outputSide(h), outW = window.outputSide(w)
        let y = Tensor.reuse(&output, shape: Shape(n, outChannels, outH, outW))
        let plane = outH * outW, patch = inChannels * window.kernel * window.kernel
        let col = isPointwise ? nil : Tensor.reuse(&columns, shape: Shape(patch, plane))
        let wp = weight.value.data
        for i in 0..<n {
            let image = input.data + i * inChannels * h * w
            let out = y.data + i * outChannels * plane
            let cols = unfold(image, height: h, width: w, into: col)
            BLAS.gemm(m: outChannels, n: plane, k: patch, a: wp, lda: patch, b: cols, ldb: plane, c: out, ldc: plane)
            if let bias {
                let bp = bias.value.data
                for o in 0..<outChannels {
                    let row = out + o * plane, v = bp[o]
                    for j in 0..<plane { row[j] += v }
                }
            }
        }
        return y
    }

    /// The column matrix of one image: unfolded into `columns`, or the image itself for a
    /// pointwise convolution (which passes no buffer).
    private func unfold(_ image: UnsafeMutablePointer<Real>, height: Int, width: Int, into columns: Tensor?) -> UnsafePointer<Real> {
        guard let columns else { return UnsafePointer(image) }
        im2col(image, channels: inChannels, height: height, width: width, window: window, into: columns.data)
        return UnsafePointer(columns.data)
    }

    public func backward(_ input: Tensor, _ gradOutput: Tensor) -> Tensor {
        let n = input.shape[0], h = input.shape[2], w = input.shape[3]
        let plane = gradOutput.shape[2] * gradOutput.shape[3], patch = inChannels * window.kernel * window.kernel
        let dx = Tensor.reuse(&gradInput, shape: input.shape)
        let col = isPointwise ? nil : Tensor.reuse(&columns, shape: Shape(patch, plane))
        let wp = weight.value.data, dw = weight.grad.data
        for i in 0..<n {
            let image = input.data + i * inChannels * h * w
            let dy = gradOutput.data + i * outChannels * plane
            // dW += dY · colsᵀ (the columns are unfolded again rather than kept from forward)
            let cols = unfold(image, height: h, width: w, into: col)
            BLAS.gemm(transB: true, m: outChannels, n: patch, k: plane, a: dy, lda: plane, b: cols, ldb: plane,
                      beta: 1, c: dw, ldc: patch)
            if let bias {
                let db = bias.grad.data
                for o in 0..<outChannels {
                    let row = dy + o * plane
                    var s: Double = 0
                    for j in 0..<plane { s += Double(row[j]) }
                    db[o] += Real(s)
                }
            }
            guard computesInputGradient else { continue }
            // dcols = Wᵀ · dY, folded back onto the image.
            let dImage = dx.data + i * inChannels * h * w
            if let col {
                BLAS.gemm(transA: true, m: patch, n: plane, k: outChannels, a: wp, lda: patch, b: dy, ldb: plane,
                          c: col.data, ldc: plane)
                dImage.update(repeating: 0, count: inChannels * h * w)
                col2im(col.data, channels: inChannels, height: h, width: w, window: window, into: dImage)
            } else {
                BLAS.gemm(transA: true, m: patch, n: plane, k: outChannels, a: wp, lda: patch, b: dy, ldb: plane,
                          c: dImage, ldc: plane)
            }
        }
        return dx
    }
}
