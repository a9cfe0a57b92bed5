/// Transposed 2-D convolution, as PyTorch's `ConvTranspose2d`: the adjoint of a convolution
/// with the same kernel, stride, padding and groups, so its forward is a convolution's input
/// gradient (GEMM + col2im) and its input gradient a convolution's forward (im2col + GEMM).
/// Output side (H − 1)·stride − 2·padding + kernel + outputPadding. Weight [in, out/groups,
/// k, k], bias [out], as in PyTorch.
public final class ConvTranspose2d: Layer, OverwritableOutput {
    public let inChannels: Int, outChannels: Int
    /// The window of the convolution this layer is the adjoint of (it maps our output to our input).
    public let window: Window2D
    public let outputPadding: Int
    public let groups: Int
    public let weight: Parameter
    public let bias: Parameter?

    private var output: Tensor?

    public init(_ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0,
                outputPadding: Int = 0, groups: Int = 1, bias: Bool = true) {
        precondition(groups >= 1 && inChannels % groups == 0 && outChannels % groups == 0,
                     "ConvTranspose2d(\(inChannels)→\(outChannels)): \(groups) groups must divide both channel counts")
        precondition(outputPadding < stride, "ConvTranspose2d: output padding \(outputPadding) must be below the stride \(stride)")
        self.inChannels = inChannels
        self.outChannels = outChannels
        window = Window2D(kernel: kernel, stride: stride, padding: padding)
        self.outputPadding = outputPadding
        self.groups = groups
        // PyTorch's fans for a weight [in, out/groups, k, k]: fan_in = size(1)·k², fan_out = size(0)·k².
        let fanIn = outChannels / groups * window.taps
        weight = Parameter("weight", shape: Shape(inChannels, outChannels / groups, kernel, kernel),
                           role: .weight(fanIn: fanIn, fanOut: inChannels * window.taps))
        self.bias = bias ? Parameter("bias", shape: Shape(outChannels), role: .bias(fanIn: fanIn)) : nil
    }

    public var summary: String {
        "ConvTranspose2d(\(inChannels)→\(outChannels), \(window.description)\(outputPadding > 0 ? " op\(outputPadding)" : "")\(groups > 1 ? " g\(groups)" : ""))"
    }
    public var parameters: [Parameter] { [weight] + (bias.map { [$0] } ?? []) }

    private var groupInChannels: Int { inChannels / groups }
    /// Rows of one group's column matrix: out/groups · k².
    private var patch: Int { outChannels / groups * window.taps }

    private func outputSide(_ side: Int) -> Int {
        (side - 1) * window.height.stride - 2 * window.height.padding + window.height.kernel + outputPadding
    }

    public func outputShape(for input: Shape) throws -> Shape {
        guard input.rank == 4 else { throw ShapeError(layer: summary, "expects N×C×H×W input, got \(input)") }
        guard input[1] == inChannels else {
            throw ShapeError(layer: summary, "expects \(inChannels) input channels, got \(input[1]) (input \(input))")
        }
        let h = outputSide(input[2]), w = outputSide(input[3])
        guard h > 0 && w > 0 else { throw ShapeError(layer: summary, "input \(input[2])×\(input[3]) gives an empty output") }
        return Shape(input[0], outChannels, h, w)
    }

    public func flops(for input: Shape) -> Int { 2 * input.count * patch }

    // x: (N, C, H, W) -> y: (N, O, Ho, Wo); per image and group: cols = W_gᵀ · x_g, y_g = col2im(cols).
    public func forward(_ input: Tensor, mode: Mode) -> Tensor {
        let n = input.shape[0], h = input.shape[2], w = input.shape[3], plane = h * w
        let outH = outputSide(h), outW = outputSide(w), outPlane = outH * outW
        let y = Tensor.reuse(&output, shape: Shape(n, outChannels, outH, outW))
        let col = Workspace.tensor(Shape(patch, plane))
        let outPerGroup = outChannels / groups
        for i in 0..<n {
            let image = y.data + i * outChannels * outPlane
            image.update(repeating: 0, count: outChannels * outPlane)
            for g in 0..<groups {
                BLAS.gemm(transA: true, m: patch, n: plane, k: groupInChannels,
                          a: weight.value.data + g * groupInChannels * patch, lda: patch,
                          b: input.data + (i * inChannels + g * groupInChannels) * plane, ldb: plane, c: col.data, ldc: plane)
                col2im(col.data, channels: outPerGroup, height: outH, width: outW, window: window,
                       into: image + g * outPerGroup * outPlane)
            }
            guard let bias else { continue }
            for o in 0..<outChannels {
                let row = image + o * outPlane, v = bias.value.data[o]
                for k in 0..<outPlane { row[k] += v }
            }
        }
        return y
    }

    // dx_g = W_g · im2col(dy_g); dW_g += x_g · im2col(dy_g)ᵀ; dbias = Σ dy.
    public func backward(_ input: Tensor, _ gradOutput: Tensor) -> Tensor {
        let n = input.shape[0], plane = input.shape[2] * input.shape[3]
        let outH = gradOutput.shape[2], outW = gradOutput.shape[3], outPlane = outH * outW
        let dx = Workspace.tensor(input.shape)
        let col = Workspace.tensor(Shape(patch, plane))
        let outPerGroup = outChannels / groups
        for i in 0..<n {
            let dy = gradOutput.data + i * outChannels * outPlane
            if let bias {
                for o in 0..<outChannels {
                    var s: Double = 0
                    for k in 0..<outPlane { s += Double(dy[o * outPlane + k]) }
                    bias.grad.data[o] += Real(s)
                }
            }
            for g in 0..<groups {
                im2col(dy + g * outPerGroup * outPlane, channels: outPerGroup, height: outH, width: outW, window: window,
                       into: col.data)
                let x = input.data + (i * inChannels + g * groupInChannels) * plane
                let weights = weight.value.data + g * groupInChannels * patch
                BLAS.gemm(transB: true, m: groupInChannels, n: patch, k: plane, a: x, lda: plane, b: col.data, ldb: plane,
                          beta: 1, c: weight.grad.data + g * groupInChannels * patch, ldc: patch)
                BLAS.gemm(m: groupInChannels, n: plane, k: patch, a: weights, lda: patch, b: col.data, ldb: plane,
                          c: dx.data + (i * inChannels + g * groupInChannels) * plane, ldc: plane)
            }
        }
        return dx
    }
}
