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
/// Activations enter and leave in NCHW: every call reorders its input and output (measured
/// for ResNet-18 at batch 64: 9–15 ms of activation reorders a step against ~300 ms of
/// convolutions). Weights are reordered on every forward and backward.
final class DNNLConvolutionPlan {
    let inputShape: Shape
    private let convolution: Convolution
    private let sourceIn, destinationOut, weightsForward: Reorder?
    private let diffDestinationIn, weightsBackward, diffSourceOut, diffWeightsOut: Reorder?
    /// Blocked (or plain, when oneDNN chose plain) buffers, as raw bytes.
    private let source, destination, forwardWeights, diffDestination, backwardWeights, diffSource, diffWeights: Buffer
    /// The weight gradient in PyTorch's layout and the bias gradient, before they are added to the parameter's.
    private let plainDiffWeights, diffBias: Buffer
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
        source = Buffer(sourceIn == nil ? 0 : convolution.forwardSource.byteCount)
        destination = Buffer(destinationOut == nil ? 0 : convolution.forwardDestination.byteCount)
        forwardWeights = Buffer(weightsForward == nil ? 0 : convolution.forwardWeights.byteCount)

        let backwardDestination = convolution.backwardDataDiffDestination!
        guard depthwiseWeightGradient != nil || (backwardDestination == convolution.backwardWeightsDiffDestination!
              && convolution.backwardWeightsSource! == convolution.forwardSource) else {
            throw DNNLError("convolution \(geometry): the backward passes chose other activation layouts than the forward")
        }
        diffDestinationIn = try reorder(plainDestination, backwardDestination)
        diffDestination = Buffer(diffDestinationIn == nil ? 0 : backwardDestination.byteCount)
        weightsBackward = computesInputGradient ? try reorder(plainWeights, convolution.backwardDataWeights!) : nil
        backwardWeights = Buffer(weightsBackward == nil ? 0 : convolution.backwardDataWeights!.byteCount)
        diffSourceOut = computesInputGradient ? try reorder(convolution.backwardDataDiffSource!, plainSource) : nil
        diffSource = Buffer(diffSourceOut == nil ? 0 : convolution.backwardDataDiffSource!.byteCount)
        diffWeightsOut = depthwiseWeightGradient == nil ? try reorder(convolution.backwardWeightsDiffWeights!, plainWeights) : nil
        diffWeights = Buffer(diffWeightsOut == nil ? 0 : convolution.backwardWeightsDiffWeights!.byteCount)
        plainDiffWeights = Buffer(plainWeights.byteCount)
        diffBias = Buffer(conv.bias == nil ? 0 : conv.outChannels * MemoryLayout<Float>.size)
        self.computesInputGradient = computesInputGradient
    }

    let computesInputGradient: Bool

    /// y = conv(x) + bias, x and y NCHW.
    func forward(_ x: Tensor, into y: Tensor, weight: Tensor, bias: Tensor?) throws {
        let src = try bring(x.data, through: sourceIn, into: source)
        let weights = try bring(weight.data, through: weightsForward, into: forwardWeights)
        let dst = destinationOut == nil ? UnsafeMutableRawPointer(y.data) : destination.base
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
        let diffDst = try bring(dy.data, through: diffDestinationIn, into: diffDestination)
        if depthwiseWeightGradient == nil {
            // The forward's source buffer still holds x in the convolution's layout.
            let src = sourceIn == nil ? UnsafeRawPointer(x.data) : UnsafeRawPointer(source.base)
            let dW = diffWeightsOut == nil ? plainDiffWeights.base : diffWeights.base
            try convolution.backwardWeights(source: src, diffDestination: diffDst, diffWeights: dW,
                                            diffBias: biasGrad == nil ? nil : diffBias.base)
            try diffWeightsOut?.execute(from: dW, to: plainDiffWeights.base)
            add(plainDiffWeights, to: weightGrad)
            if let biasGrad { add(diffBias, to: biasGrad) }
        }
        guard computesInputGradient else { return }
        let weights = try bring(weight.data, through: weightsBackward, into: backwardWeights)
        let diffSrc = diffSourceOut == nil ? UnsafeMutableRawPointer(dx.data) : diffSource.base
        try convolution.backwardData(diffDestination: diffDst, weights: weights, diffSource: diffSrc)
        try diffSourceOut?.execute(from: diffSrc, to: dx.data)
    }

    /// `plain` in the primitive's layout: reordered into `buffer`, or itself when no reorder is needed.
    private func bring(_ plain: UnsafeMutablePointer<Real>, through reorder: Reorder?, into buffer: Buffer) throws -> UnsafeRawPointer {
        guard let reorder else { return UnsafeRawPointer(plain) }
        try reorder.execute(from: plain, to: buffer.base)
        return UnsafeRawPointer(buffer.base)
    }

    private func add(_ buffer: Buffer, to gradient: Tensor) {
        let values = buffer.base.assumingMemoryBound(to: Real.self)
        BLAS.axpy(gradient.count, alpha: 1, x: values, y: gradient.data)
    }

    /// Bytes owned by the plan, 64-byte aligned as oneDNN prefers.
    final class Buffer {
        let base: UnsafeMutableRawPointer
        init(_ byteCount: Int) { base = .allocate(byteCount: max(byteCount, 64), alignment: 64) }
        deinit { base.deallocate() }
    }
}
