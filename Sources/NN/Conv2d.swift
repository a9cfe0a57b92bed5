import DNNL

/// 2-D convolution over NCHW input, as in PyTorch's `Conv2d`: per-axis kernel, stride, zero
/// padding and dilation, channel groups (depthwise when groups = in = out channels), optional
/// bias. Computed as im2col + sgemm per group (backward: sgemm for the weight gradient,
/// sgemm + col2im for the input gradient). Weight [out, in/groups, kh, kw], bias [out].
///
/// Images with a small output plane are convolved several at a time: their columns are
/// unfolded side by side so that one GEMM sees at least `minimumColumns` columns. One image
/// at a time, a late ResNet stage (3×3 outputs, 4608-long patches) is a matrix–vector
/// product that rereads 9 MB of weights per image.
public final class Conv2d: Layer, OverwritableOutput {
    public let inChannels: Int, outChannels: Int
    public let window: Window2D
    public let groups: Int
    public let weight: Parameter
    public let bias: Parameter?
    /// The first layer of a network need not compute a gradient for the image.
    public var computesInputGradient = true

    /// Set by `Network` where a ReLU of its own follows: the output is max(y, 0) (on oneDNN a
    /// post-op of the convolution's own pass), and backward masks the gradient by it, in the
    /// output's memory; the ReLU passes its input through.
    public internal(set) var fusedReLU = false

    /// Set by `Network` (`keepActivationsInChannelBlocks`): the oneDNN path may return its
    /// output in the channel-blocked layout its convolution writes (the layers after it read
    /// it, or the containers convert it). A layer used alone returns NCHW.
    public internal(set) var emitsChannelBlocks = false

    private var output: Tensor?
    /// oneDNN's plans for the last few inputs, most recent first; a nil plan means oneDNN has
    /// no implementation for it and the BLAS path runs. Training and evaluation batches, and
    /// an input in NCHW and in channel blocks, each have their own.
    private var dnnlPlans: [(key: PlanKey, plan: DNNLConvolutionPlan?)] = []
    private static let plansKept = 4

    private struct PlanKey: Equatable {
        let shape: Shape, layout: ActivationLayout, algorithm: ConvolutionAlgorithm
        let computesInputGradient: Bool, emitsChannelBlocks: Bool, fusedReLU: Bool
    }

    /// ResNet-18 training at side 96 (bench, SkylakeX kernel): 31.9 images/s one image at a
    /// time, 44.0 from 256 columns, no further gain up to 4096.
    public static let minimumColumns = 1024

    public init(_ inChannels: Int, _ outChannels: Int, window: Window2D, groups: Int = 1, bias: Bool = true) {
        precondition(groups >= 1 && inChannels % groups == 0 && outChannels % groups == 0,
                     "Conv2d(\(inChannels)→\(outChannels)): \(groups) groups must divide both channel counts")
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.window = window
        self.groups = groups
        let fanIn = inChannels / groups * window.taps
        weight = Parameter("weight", shape: Shape(outChannels, inChannels / groups, window.height.kernel, window.width.kernel),
                           role: .weight(fanIn: fanIn, fanOut: outChannels * window.taps))
        self.bias = bias ? Parameter("bias", shape: Shape(outChannels), role: .bias(fanIn: fanIn)) : nil
    }

    /// A square kernel, stride, padding and dilation.
    public convenience init(_ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0,
                            dilation: Int = 1, groups: Int = 1, bias: Bool = true) {
        self.init(inChannels, outChannels, window: Window2D(kernel: kernel, stride: stride, padding: padding, dilation: dilation),
                  groups: groups, bias: bias)
    }

    public var summary: String {
        "Conv2d(\(inChannels)→\(outChannels), \(window.description)\(groups > 1 ? " g\(groups)" : "")\(bias == nil ? ", no bias" : ""))"
    }
    public var parameters: [Parameter] { [weight] + (bias.map { [$0] } ?? []) }

    /// Channels per group on each side, and the length of one group's patch (GEMM's k).
    private var groupInChannels: Int { inChannels / groups }
    private var groupOutChannels: Int { outChannels / groups }
    private var patch: Int { groupInChannels * window.taps }

    /// A 1×1 convolution with stride 1 and no padding reads its input as the column matrix.
    private var isPointwise: Bool {
        window.taps == 1 && window.height.stride == 1 && window.width.stride == 1
            && window.height.padding == 0 && window.width.padding == 0
    }

    public func outputShape(for input: Shape) throws -> Shape {
        guard input.rank == 4 else { throw ShapeError(layer: summary, "expects N×C×H×W input, got \(input)") }
        guard input[1] == inChannels else {
            throw ShapeError(layer: summary, "expects \(inChannels) input channels, got \(input[1]) (input \(input))")
        }
        let (h, w) = window.outputSize(height: input[2], width: input[3])
        guard h > 0 && w > 0 else {
            throw ShapeError(layer: summary, "input \(input[2])×\(input[3]) is too small for the window \(window.description)")
        }
        return Shape(input[0], outChannels, h, w)
    }

    public func flops(for input: Shape) -> Int {
        guard let out = try? outputShape(for: input) else { return 0 }
        return 2 * out.count * patch
    }

    /// How many images one GEMM covers, given the output plane Ho·Wo.
    private func imagesPerGEMM(batch: Int, plane: Int) -> Int {
        min(batch, max(1, (Self.minimumColumns + plane - 1) / plane))
    }

    /// Whether the last forward ran on oneDNN (false: im2col and OpenBLAS).
    public var ranOnOneDNN: Bool { dnnlPlans.first?.plan != nil }

    /// The layout of the last output on oneDNN: channel blocks where `emitsChannelBlocks` lets it.
    public var lastOutputLayout: ActivationLayout { dnnlPlans.first?.plan?.outputLayout ?? .nchw }

    /// Whether the last forward ran Winograd's algorithm (`--conv-algorithm winograd`), which rounds more.
    public var ranWinograd: Bool { dnnlPlans.first?.plan?.runsWinograd ?? false }

    /// The oneDNN plan for an input of `shape` in `layout`, built on first use; nil on the
    /// BLAS engine or where oneDNN has no implementation.
    private func dnnlPlan(_ shape: Shape, _ layout: ActivationLayout) -> DNNLConvolutionPlan? {
        guard ConvolutionEngine.current == .dnnl, ConvolutionEngine.isAvailable(.dnnl) else { return nil }
        let key = PlanKey(shape: shape, layout: layout, algorithm: ConvolutionEngine.algorithm,
                          computesInputGradient: computesInputGradient, emitsChannelBlocks: emitsChannelBlocks,
                          fusedReLU: fusedReLU)
        if let i = dnnlPlans.firstIndex(where: { $0.key == key }) {
            if i > 0 { dnnlPlans.insert(dnnlPlans.remove(at: i), at: 0) }
            return dnnlPlans[0].plan
        }
        let plan = try? DNNLConvolutionPlan(self, input: shape, layout: layout, computesInputGradient: computesInputGradient,
                                            emitsChannelBlocks: emitsChannelBlocks, fusedReLU: fusedReLU)
        dnnlPlans.insert((key, plan), at: 0)
        if dnnlPlans.count > Self.plansKept { dnnlPlans.removeLast() }
        return plan
    }

    /// NCHW, and on oneDNN the channel blocks of the layers before it.
    public func reads(_ layout: ActivationLayout, shape: Shape) -> Bool {
        layout == .nchw || dnnlPlan(shape, layout) != nil
    }

    // x: (N, C, H, W) -> y: (N, O, Ho, Wo)
    public func forward(_ input: Tensor, mode: Mode) -> Tensor {
        let n = input.shape[0]
        let (outH, outW) = window.outputSize(height: input.shape[2], width: input.shape[3])
        if let plan = dnnlPlan(input.shape, input.layout) {
            let y = Tensor.reuse(&output, shape: Shape(n, outChannels, outH, outW), layout: plan.outputLayout)
            do { try plan.forward(input, into: y, weight: weight.value, bias: bias?.value) } catch { fatalError("\(summary): \(error)") }
            return y
        }
        precondition(input.layout == .nchw, "\(summary): im2col reads NCHW, got \(input.layout)")
        let y = Tensor.reuse(&output, shape: Shape(n, outChannels, outH, outW))
        let plane = outH * outW, rowsPerGroup = groupOutChannels
        let batchPerGEMM = imagesPerGEMM(batch: n, plane: plane), columnCount = batchPerGEMM * plane
        let (col, rows) = scratch(batchPerGEMM: batchPerGEMM, columnCount: columnCount)
        for first in stride(from: 0, to: n, by: batchPerGEMM) {
            let images = first..<min(n, first + batchPerGEMM)
            for g in 0..<groups {
                let cols = unfold(input, images: images, group: g, into: col, columnCount: columnCount)
                let out = rows.map { $0.data + g * rowsPerGroup * columnCount }
                    ?? y.data + (first * outChannels + g * rowsPerGroup) * plane
                BLAS.gemm(m: rowsPerGroup, n: images.count * plane, k: patch, a: weight.value.data + g * rowsPerGroup * patch,
                          lda: patch, b: cols, ldb: columnCount, c: out, ldc: columnCount)
            }
            for (j, i) in images.enumerated() {
                let image = y.data + i * outChannels * plane
                if let rows { copyPlanes(image: image, rows: rows.data + j * plane, rowStride: columnCount, plane: plane, toRows: false) }
                guard let bias else { continue }
                let bp = bias.value.data
                for o in 0..<outChannels {
                    let row = image + o * plane, v = bp[o]
                    for k in 0..<plane { row[k] += v }
                }
            }
        }
        if fusedReLU { Activation.applyReLU(y) }
        return y
    }

    /// A call's scratch, from the workspace: the column matrix (none where a pointwise
    /// convolution of one image at a time reads the image's channels as it) and, where images
    /// go several to a GEMM, their output or output-gradient rows, [out, images·Ho·Wo].
    private func scratch(batchPerGEMM: Int, columnCount: Int) -> (columns: Tensor?, rows: Tensor?) {
        (isPointwise && batchPerGEMM == 1 ? nil : Workspace.tensor(Shape(patch, columnCount)),
         batchPerGEMM == 1 ? nil : Workspace.tensor(Shape(outChannels, columnCount)))
    }

    /// The column matrix of group `group` of the images: unfolded side by side into
    /// `columns`, or the image's channels themselves for a pointwise convolution of one image
    /// at a time (which passes no buffer).
    private func unfold(_ input: Tensor, images: Range<Int>, group: Int, into columns: Tensor?, columnCount: Int) -> UnsafePointer<Real> {
        let h = input.shape[2], w = input.shape[3], imageSize = inChannels * h * w
        let channelOffset = group * groupInChannels * h * w
        guard let columns else { return UnsafePointer(input.data + images.lowerBound * imageSize + channelOffset) }
        let (outH, outW) = window.outputSize(height: h, width: w)
        for (j, i) in images.enumerated() {
            im2col(input.data + i * imageSize + channelOffset, channels: groupInChannels, height: h, width: w, window: window,
                   into: columns.data + j * outH * outW, leadingDimension: columnCount)
        }
        return UnsafePointer(columns.data)
    }

    /// Copies an image's `outChannels` planes (contiguous) into its block of a group's rows
    /// (`rowStride` apart), or back.
    private func copyPlanes(image: UnsafeMutablePointer<Real>, rows: UnsafeMutablePointer<Real>, rowStride: Int,
                            plane: Int, toRows: Bool) {
        for o in 0..<outChannels {
            let planeStart = image + o * plane, rowStart = rows + o * rowStride
            if toRows { rowStart.update(from: planeStart, count: plane) } else { planeStart.update(from: rowStart, count: plane) }
        }
    }

    public func backward(_ input: Tensor, _ outputGradient: Tensor) -> Tensor {
        // With a fused ReLU, the gradient at the convolution's own output, written over that
        // output: the layers that read it have run their backward already.
        var gradOutput = outputGradient
        if fusedReLU {
            gradOutput = output!.laidOut(outputGradient.layout)
            Activation.reluGradient(output: gradOutput, outputGradient, into: gradOutput)
        }
        let n = input.shape[0], h = input.shape[2], w = input.shape[3], imageSize = inChannels * h * w
        let plane = gradOutput.shape[2] * gradOutput.shape[3], rowsPerGroup = groupOutChannels
        let batchPerGEMM = imagesPerGEMM(batch: n, plane: plane), columnCount = batchPerGEMM * plane
        let dx = Workspace.tensor(input.shape, layout: input.layout)
        if let plan = dnnlPlan(input.shape, input.layout) {
            do {
                try plan.backward(input, gradOutput, weight: weight.value, weightGrad: weight.grad, biasGrad: bias?.grad, into: dx)
            } catch { fatalError("\(summary): \(error)") }
            return dx
        }
        let (col, rows) = scratch(batchPerGEMM: batchPerGEMM, columnCount: columnCount)
        for first in stride(from: 0, to: n, by: batchPerGEMM) {
            let images = first..<min(n, first + batchPerGEMM), width = images.count * plane
            // dY of these images as [out, columns]: gathered into `rows`, or the image's own planes.
            let dy: UnsafePointer<Real>
            if let rows {
                for (j, i) in images.enumerated() {
                    copyPlanes(image: gradOutput.data + i * outChannels * plane, rows: rows.data + j * plane,
                               rowStride: columnCount, plane: plane, toRows: true)
                }
                dy = UnsafePointer(rows.data)
            } else {
                dy = UnsafePointer(gradOutput.data + first * outChannels * plane)
            }
            if let bias {
                let db = bias.grad.data
                for o in 0..<outChannels {
                    let row = dy + o * columnCount
                    var s: Double = 0
                    for k in 0..<width { s += Double(row[k]) }
                    db[o] += Real(s)
                }
            }
            for g in 0..<groups {
                let dyGroup = dy + g * rowsPerGroup * columnCount
                let weights = weight.value.data + g * rowsPerGroup * patch, dWeights = weight.grad.data + g * rowsPerGroup * patch
                // dW += dY · colsᵀ (the columns are unfolded again rather than kept from forward)
                let cols = unfold(input, images: images, group: g, into: col, columnCount: columnCount)
                BLAS.gemm(transB: true, m: rowsPerGroup, n: patch, k: width, a: dyGroup, lda: columnCount, b: cols,
                          ldb: columnCount, beta: 1, c: dWeights, ldc: patch)
                guard computesInputGradient else { continue }
                // dcols = Wᵀ · dY, folded back onto each image's channels of this group.
                let channelOffset = g * groupInChannels * h * w
                if let col {
                    BLAS.gemm(transA: true, m: patch, n: width, k: rowsPerGroup, a: weights, lda: patch, b: dyGroup,
                              ldb: columnCount, c: col.data, ldc: columnCount)
                    for (j, i) in images.enumerated() {
                        let dImage = dx.data + i * imageSize + channelOffset
                        dImage.update(repeating: 0, count: groupInChannels * h * w)
                        col2im(col.data + j * plane, channels: groupInChannels, height: h, width: w, window: window,
                               into: dImage, leadingDimension: columnCount)
                    }
                } else {
                    BLAS.gemm(transA: true, m: patch, n: plane, k: rowsPerGroup, a: weights, lda: patch, b: dyGroup,
                              ldb: plane, c: dx.data + first * imageSize + channelOffset, ldc: plane)
                }
            }
        }
        return dx
    }
}
