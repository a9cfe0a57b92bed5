import DNNL

/// Which library computes convolutions: oneDNN's kernels (the default in the float32 build;
/// `--engine dnnl`) or OpenBLAS through im2col (`--engine blas`: the reference, and the only
/// engine of the float64 build).
public enum ConvolutionEngine: String, Sendable, CaseIterable {
    case blas, dnnl

    /// The engine new convolutions run on; set once at start (`--engine`).
    nonisolated(unsafe) public static var current: ConvolutionEngine = isAvailable(.dnnl) ? .dnnl : .blas

    /// oneDNN computes in float32 (and bf16) only.
    public static func isAvailable(_ engine: ConvolutionEngine) -> Bool {
        engine == .blas || MemoryLayout<Real>.size == 4
    }

    /// The engines this build can run, for tests that check each.
    public static var available: [ConvolutionEngine] { allCases.filter(isAvailable) }

    /// Runs `body` on `engine`, then restores the current one.
    public static func using<T>(_ engine: ConvolutionEngine, _ body: () throws -> T) rethrows -> T {
        let saved = current
        current = engine
        defer { current = saved }
        return try body()
    }
}

/// One convolution geometry on oneDNN: the primitives, the reorders between PyTorch's
/// layouts (NCHW activations, OIHW weights) and the blocked ones oneDNN chose, and the
/// blocked buffers. Built on the first forward at a batch shape; a warm step reuses all of it.
///
/// Activations enter and leave in NCHW: every call reorders its input and output, and
/// backward reorders x again for the weight gradient. Weights are reordered on every forward
/// and backward. On this project's 2-core AMD EPYC, ResNet-18 at batch 64 and side 96 spends
/// about 85 ms of a 1.4 s step in reorders (`DNNL_VERBOSE=1`) and 1.2 s in convolutions. The
/// blocked buffers live within one call and are shared by every plan (`Scratch`): this
/// costs no measurable time and brought ResNet-18's peak memory from 1301 to 850 MB.
final class DNNLConvolutionPlan {
    let inputShape: Shape
    private let convolution: Convolution
    private let sourceIn, destinationOut, weightsForward: Reorder?
    private let diffDestinationIn, weightsBackward, diffSourceOut, diffWeightsOut: Reorder?
    /// The bias gradient, before it is added to the parameter's.
    private let diffBias: Buffer
    /// Computes the weight gradient where oneDNN has only its reference kernel for it.
    private let depthwiseWeightGradient: DepthwiseWeightGradient?

    init(_ conv: Conv2d, input: Shape, computesInputGradient: Bool) throws {
        inputShape = input
        let w = conv.window
        let geometry = ConvolutionGeometry(
            batch: input[0], inputChannels: conv.inChannels, height: input[2], width: input[3], outputChannels: conv.outChannels,
            kernelHeight: w.height.kernel, kernelWidth: w.width.kernel, strideHeight: w.height.stride, strideWidth: w.width.stride,
            paddingTop: w.height.padding, paddingLeft: w.width.padding, paddingBottom: w.height.padding, paddingRight: w.width.padding,
            dilationHeight: w.height.dilation, dilationWidth: w.width.dilation, groups: conv.groups, hasBias: conv.bias != nil)
        convolution = try Convolution(geometry, dataType: .f32)
        // oneDNN's reference kernels (tiny channel counts, e.g. LeNet's 1→6) are 50× slower
        // than im2col + OpenBLAS: leave those shapes to BLAS. A depthwise convolution whose
        // only reference pass is the weight gradient computes that pass itself.
        let chosen = convolution.implementations
        let isReference = { (implementation: String?) in implementation?.hasPrefix("ref") ?? false }
        depthwiseWeightGradient = isReference(chosen.backwardWeights) && conv.inChannels == conv.groups
            ? DepthwiseWeightGradient(window: w, outChannels: conv.outChannels, inChannels: conv.inChannels, input: input) : nil
        guard !isReference(chosen.forward), !isReference(chosen.backwardData),
              !isReference(chosen.backwardWeights) || depthwiseWeightGradient != nil else {
            throw DNNLError("convolution \(geometry): only oneDNN's reference implementation (\(chosen.forward))")
        }
        let (n, c, h, wd) = (input[0], input[1], input[2], input[3])
        let plainSource = try MemoryDescriptor.activations(n, c, h, wd, .f32)
        let plainDestination = try MemoryDescriptor.activations(n, conv.outChannels, geometry.outputHeight, geometry.outputWidth, .f32)
        let plainWeights = try convolution.plainWeights(.f32)

        /// A reorder from `a` to `b`, or nil when they are the same layout.
        func reorder(_ a: MemoryDescriptor, _ b: MemoryDescriptor) throws -> Reorder? { a == b ? nil : try Reorder(from: a, to: b) }

        sourceIn = try reorder(plainSource, convolution.forwardSource)
        destinationOut = try reorder(convolution.forwardDestination, plainDestination)
        weightsForward = try reorder(plainWeights, convolution.forwardWeights)
        Scratch.reserve(.source, sourceIn == nil ? 0 : convolution.forwardSource.byteCount)
        Scratch.reserve(.destination, destinationOut == nil ? 0 : convolution.forwardDestination.byteCount)
        Scratch.reserve(.forwardWeights, weightsForward == nil ? 0 : convolution.forwardWeights.byteCount)

        let backwardDestination = convolution.backwardDataDiffDestination!
        guard depthwiseWeightGradient != nil || (backwardDestination == convolution.backwardWeightsDiffDestination!
              && convolution.backwardWeightsSource! == convolution.forwardSource) else {
            throw DNNLError("convolution \(geometry): the backward passes chose other activation layouts than the forward")
        }
        diffDestinationIn = try reorder(plainDestination, backwardDestination)
        Scratch.reserve(.diffDestination, diffDestinationIn == nil ? 0 : backwardDestination.byteCount)
        weightsBackward = computesInputGradient ? try reorder(plainWeights, convolution.backwardDataWeights!) : nil
        Scratch.reserve(.backwardWeights, weightsBackward == nil ? 0 : convolution.backwardDataWeights!.byteCount)
        diffSourceOut = computesInputGradient ? try reorder(convolution.backwardDataDiffSource!, plainSource) : nil
        Scratch.reserve(.diffSource, diffSourceOut == nil ? 0 : convolution.backwardDataDiffSource!.byteCount)
        diffWeightsOut = depthwiseWeightGradient == nil ? try reorder(convolution.backwardWeightsDiffWeights!, plainWeights) : nil
        Scratch.reserve(.diffWeights, diffWeightsOut == nil ? 0 : convolution.backwardWeightsDiffWeights!.byteCount)
        Scratch.reserve(.plainDiffWeights, plainWeights.byteCount)
        diffBias = Buffer(conv.bias == nil ? 0 : conv.outChannels * MemoryLayout<Float>.size)
        self.computesInputGradient = computesInputGradient
    }

    let computesInputGradient: Bool

    /// y = conv(x) + bias, x and y NCHW.
    func forward(_ x: Tensor, into y: Tensor, weight: Tensor, bias: Tensor?) throws {
        let src = try bring(x.data, through: sourceIn, into: Scratch.base(.source))
        let weights = try bring(weight.data, through: weightsForward, into: Scratch.base(.forwardWeights))
        let dst = destinationOut == nil ? UnsafeMutableRawPointer(y.data) : Scratch.base(.destination)
        try convolution.forward(source: src, weights: weights, bias: bias.map { UnsafeRawPointer($0.data) }, destination: dst)
        try destinationOut?.execute(from: dst, to: y.data)
    }

    /// Adds the weight and bias gradients to `weightGrad` and `biasGrad`; writes dx (NCHW)
    /// unless the plan does not compute the input gradient.
    func backward(_ x: Tensor, _ dy: Tensor, weight: Tensor, weightGrad: Tensor, biasGrad: Tensor?, into dx: Tensor) throws {
        if let depthwiseWeightGradient {
            depthwiseWeightGradient.accumulate(x: x, dy: dy, weightGrad: weightGrad.data, biasGrad: biasGrad?.data)
            guard computesInputGradient else { return }
        }
        let diffDst = try bring(dy.data, through: diffDestinationIn, into: Scratch.base(.diffDestination))
        if depthwiseWeightGradient == nil {
            // x again in the convolution's layout: keeping forward's copy until backward cost
            // an activation-sized buffer per convolution.
            let src = try bring(x.data, through: sourceIn, into: Scratch.base(.source))
            let plainDiffWeights = Scratch.base(.plainDiffWeights)
            let dW = diffWeightsOut == nil ? plainDiffWeights : Scratch.base(.diffWeights)
            try convolution.backwardWeights(source: src, diffDestination: diffDst, diffWeights: dW,
                                            diffBias: biasGrad == nil ? nil : diffBias.base)
            try diffWeightsOut?.execute(from: dW, to: plainDiffWeights)
            add(plainDiffWeights, to: weightGrad)
            if let biasGrad { add(diffBias.base, to: biasGrad) }
        }
        guard computesInputGradient else { return }
        let weights = try bring(weight.data, through: weightsBackward, into: Scratch.base(.backwardWeights))
        let diffSrc = diffSourceOut == nil ? UnsafeMutableRawPointer(dx.data) : Scratch.base(.diffSource)
        try convolution.backwardData(diffDestination: diffDst, weights: weights, diffSource: diffSrc)
        try diffSourceOut?.execute(from: diffSrc, to: dx.data)
    }

    /// `plain` in the primitive's layout: reordered into `buffer`, or itself when no reorder is needed.
    private func bring(_ plain: UnsafeMutablePointer<Real>, through reorder: Reorder?, into buffer: UnsafeMutableRawPointer) throws -> UnsafeRawPointer {
        guard let reorder else { return UnsafeRawPointer(plain) }
        try reorder.execute(from: plain, to: buffer)
        return UnsafeRawPointer(buffer)
    }

    private func add(_ buffer: UnsafeMutableRawPointer, to gradient: Tensor) {
        let values = buffer.assumingMemoryBound(to: Real.self)
        BLAS.axpy(gradient.count, alpha: 1, x: values, y: gradient.data)
    }

    /// Bytes, 64-byte aligned as oneDNN prefers.
    final class Buffer {
        let base: UnsafeMutableRawPointer
        let byteCount: Int
        init(_ byteCount: Int) {
            self.byteCount = max(byteCount, 64)
            base = .allocate(byteCount: self.byteCount, alignment: 64)
        }
        deinit { base.deallocate() }
    }

    /// The buffers a plan needs only within one forward or backward call, one per role for
    /// all plans of the process: layers run one at a time, so each plan need not keep its
    /// own (they held four activation-sized buffers per convolution, most of ResNet-50's
    /// peak memory). A buffer grows when a plan is made, never in a step.
    enum Scratch {
        enum Role: Int, CaseIterable {
            case source, destination, forwardWeights, diffDestination, backwardWeights, diffSource, diffWeights, plainDiffWeights
        }

        nonisolated(unsafe) private static var buffers = [Buffer?](repeating: nil, count: Role.allCases.count)

        /// Makes `role`'s buffer at least `byteCount` long (its contents are not kept).
        static func reserve(_ role: Role, _ byteCount: Int) {
            if byteCount > buffers[role.rawValue]?.byteCount ?? -1 { buffers[role.rawValue] = Buffer(byteCount) }
        }

        /// `role`'s buffer, as large as the largest reservation. Taken at each call: a later
        /// plan may have replaced it by a larger one.
        static func base(_ role: Role) -> UnsafeMutableRawPointer { buffers[role.rawValue]!.base }
    }
}
