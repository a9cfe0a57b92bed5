import DNNL

/// Which library computes convolutions: oneDNN's kernels (the default in the float32 build;
/// `--engine dnnl`) or OpenBLAS through im2col (`--engine blas`: the reference, and the only
/// engine of the float64 build).
public enum ConvolutionEngine: String, Sendable, CaseIterable {
    case blas, dnnl

    /// The engine new convolutions run on; set once at start (`--engine`).
    nonisolated(unsafe) public static var current: ConvolutionEngine = isAvailable(.dnnl) ? .dnnl : .blas

    /// How oneDNN computes the convolutions that Winograd F(4×4, 3×3) applies to (3×3,
    /// stride 1, undilated, ungrouped, channels that oneDNN accepts); every other one runs
    /// direct. Set once at start (`--conv-algorithm`); direct is the default.
    nonisolated(unsafe) public static var algorithm: ConvolutionAlgorithm = .direct

    /// oneDNN computes in float32 (and bf16) only.
    public static func isAvailable(_ engine: ConvolutionEngine) -> Bool {
        engine == .blas || MemoryLayout<Real>.size == 4
    }

    /// The engines this build can run, for tests that check each.
    public static var available: [ConvolutionEngine] { allCases.filter(isAvailable) }

    /// Every engine with each algorithm it runs on this CPU, for tests that check each:
    /// direct everywhere, Winograd too on oneDNN where the CPU has AVX-512.
    public static var configurations: [(engine: ConvolutionEngine, algorithm: ConvolutionAlgorithm)] {
        available.flatMap { engine in
            (engine == .dnnl && DNNLRuntime.runsWinograd ? [.direct, .winograd] : [ConvolutionAlgorithm.direct]).map { (engine, $0) }
        }
    }

    /// Runs `body` on `engine` with `algorithm`, then restores the current ones.
    public static func using<T>(_ engine: ConvolutionEngine, algorithm: ConvolutionAlgorithm = .direct,
                                _ body: () throws -> T) rethrows -> T {
        let saved = (current, self.algorithm)
        (current, self.algorithm) = (engine, algorithm)
        defer { (current, self.algorithm) = saved }
        return try body()
    }
}

/// One convolution geometry on oneDNN: the primitives, the reorders between the layers'
/// layouts (activations in NCHW or channel blocks, OIHW weights) and the blocked ones oneDNN
/// chose. Built on the first forward at a batch shape and input layout; a warm step reuses
/// all of it.
///
/// Activations arrive in the layout of the layer before: NCHW is reordered on every call
/// (backward reorders x again for the weight gradient), the channel blocks oneDNN's
/// convolutions use are read as they are. The output leaves in NCHW, or, where `Network`
/// lets it (`Conv2d.emitsChannelBlocks`), in oneDNN's channel blocks. Weights are reordered
/// on every forward and backward. ResNet-34 at batch 64 and side 96 on the 2-core AVX-512
/// EPYC (`DNNL_VERBOSE=1`): with NCHW between layers, activation reorders took 31 ms of a
/// 650 ms step; in channel blocks none are left but the weights' (14 ms). The blocked copies
/// live within one call, in `Workspace` memory: kept per plan for the whole run, they were
/// most of ResNet-50's peak memory.
final class DNNLConvolutionPlan {
    let inputShape: Shape
    /// The layout the output is written in, and its gradient read in.
    let outputLayout: ActivationLayout
    private let convolution: Convolution
    private let sourceIn, destinationOut, weightsForward: Reorder?
    private let diffDestinationIn, weightsBackward, diffSourceOut, diffWeightsOut: Reorder?
    /// x and dy into the weight-gradient pass's layouts, which may differ from the other
    /// passes' (where oneDNN has only reference kernels for those).
    private let weightsPassSourceIn, weightsPassDiffDestinationIn: Reorder?
    /// Both backward passes run and read dy in one layout: one blocked copy serves both.
    private let passesShareDiffDestination: Bool
    /// Whether oneDNN computes this convolution by Winograd's algorithm (`ConvolutionEngine.algorithm`).
    let runsWinograd: Bool
    /// The bias gradient, before it is added to the parameter's.
    private let diffBias: Buffer
    /// Computes the weight gradient where oneDNN has only its reference kernel for it.
    private let depthwiseWeightGradient: DepthwiseWeightGradient?

    /// - Throws: where oneDNN has only its reference kernels.
    init(_ conv: Conv2d, input: Shape, layout: ActivationLayout, computesInputGradient: Bool, emitsChannelBlocks: Bool,
         fusedReLU: Bool) throws {
        inputShape = input
        let w = conv.window
        let geometry = ConvolutionGeometry(
            batch: input[0], inputChannels: conv.inChannels, height: input[2], width: input[3], outputChannels: conv.outChannels,
            kernelHeight: w.height.kernel, kernelWidth: w.width.kernel, strideHeight: w.height.stride, strideWidth: w.width.stride,
            paddingTop: w.height.padding, paddingLeft: w.width.padding, paddingBottom: w.height.padding, paddingRight: w.width.padding,
            dilationHeight: w.height.dilation, dilationWidth: w.width.dilation, groups: conv.groups, hasBias: conv.bias != nil)
        let takesWinograd = w.height.kernel == 3 && w.width.kernel == 3 && w.height.stride == 1 && w.width.stride == 1
            && w.height.dilation == 1 && w.width.dilation == 1 && conv.groups == 1
        let algorithm = takesWinograd ? ConvolutionEngine.algorithm : .direct
        // oneDNN refuses Winograd on channel counts its tiles do not fit (not multiples of 16).
        convolution = try algorithm == .direct ? Convolution(geometry, dataType: .f32, fusedReLU: fusedReLU)
            : (try? Convolution(geometry, dataType: .f32, algorithm: algorithm, fusedReLU: fusedReLU))
                ?? Convolution(geometry, dataType: .f32, fusedReLU: fusedReLU)
        runsWinograd = convolution.implementations.forward.hasPrefix("jit_wino")
        // oneDNN's reference kernels are 50× slower than im2col + OpenBLAS: leave the shapes
        // that get one even in the layouts oneDNN prefers (`Convolution` tries those) to BLAS.
        // A depthwise convolution whose only reference pass is the weight gradient computes
        // that pass itself.
        let chosen = convolution.implementations
        let isReference = { (implementation: String?) in implementation?.hasPrefix("ref") ?? false }
        depthwiseWeightGradient = isReference(chosen.backwardWeights) && conv.inChannels == conv.groups
            ? DepthwiseWeightGradient(window: w, outChannels: conv.outChannels, inChannels: conv.inChannels, input: input) : nil
        guard !isReference(chosen.forward), !computesInputGradient || !isReference(chosen.backwardData),
              !isReference(chosen.backwardWeights) || depthwiseWeightGradient != nil else {
            throw DNNLError("convolution \(geometry): only oneDNN's reference implementation (\(chosen.forward))")
        }
        outputLayout = emitsChannelBlocks ? ActivationLayout.of(convolution.forwardDestination) ?? .nchw : .nchw
        let layerSource = try layout.descriptor(input)
        let layerDestination = try outputLayout.descriptor(Shape(geometry.destinationDims))
        let plainWeights = try convolution.plainWeights(.f32)

        /// A reorder from `a` to `b`, or nil when they are the same layout.
        func reorder(_ a: MemoryDescriptor, _ b: MemoryDescriptor) throws -> Reorder? { a == b ? nil : try Reorder(from: a, to: b) }

        sourceIn = try reorder(layerSource, convolution.forwardSource)
        destinationOut = try reorder(convolution.forwardDestination, layerDestination)
        weightsForward = try reorder(plainWeights, convolution.forwardWeights)

        let backwardDestination = convolution.backwardDataDiffDestination!
        diffDestinationIn = computesInputGradient ? try reorder(layerDestination, backwardDestination) : nil
        let weightsPass = depthwiseWeightGradient == nil
        weightsPassSourceIn = weightsPass ? try reorder(layerSource, convolution.backwardWeightsSource!) : nil
        weightsPassDiffDestinationIn = weightsPass ? try reorder(layerDestination, convolution.backwardWeightsDiffDestination!) : nil
        passesShareDiffDestination = weightsPass && computesInputGradient && backwardDestination == convolution.backwardWeightsDiffDestination!
        weightsBackward = computesInputGradient ? try reorder(plainWeights, convolution.backwardDataWeights!) : nil
        diffSourceOut = computesInputGradient ? try reorder(convolution.backwardDataDiffSource!, layerSource) : nil
        diffWeightsOut = depthwiseWeightGradient == nil ? try reorder(convolution.backwardWeightsDiffWeights!, plainWeights) : nil
        diffBias = Buffer(conv.bias == nil ? 0 : conv.outChannels * MemoryLayout<Float>.size)
        self.computesInputGradient = computesInputGradient
    }

    let computesInputGradient: Bool

    /// y = conv(x) + bias, x and y NCHW.
    func forward(_ x: Tensor, into y: Tensor, weight: Tensor, bias: Tensor?) throws {
        // The call's blocked copies, all taken before any is used (see `Workspace`).
        let blockedX = scratch(sourceIn?.destination), blockedWeights = scratch(weightsForward?.destination)
        let blockedY = scratch(destinationOut?.source)
        let src = try bring(x.data, through: sourceIn, into: blockedX)
        let weights = try bring(weight.data, through: weightsForward, into: blockedWeights)
        let dst = blockedY.map { UnsafeMutableRawPointer($0.data) } ?? UnsafeMutableRawPointer(y.data)
        try convolution.forward(source: src, weights: weights, bias: bias.map { UnsafeRawPointer($0.data) }, destination: dst)
        try destinationOut?.execute(from: dst, to: y.data)
    }

    /// Adds the weight and bias gradients to `weightGrad` and `biasGrad`; writes dx (NCHW)
    /// unless the plan does not compute the input gradient.
    func backward(_ x: Tensor, _ dy: Tensor, weight: Tensor, weightGrad: Tensor, biasGrad: Tensor?, into dx: Tensor) throws {
        if let depthwiseWeightGradient {
            // It reads NCHW: channel blocks are converted for it, within this call.
            depthwiseWeightGradient.accumulate(x: LayoutConversion.inNCHW(x), dy: LayoutConversion.inNCHW(dy),
                                               weightGrad: weightGrad.data, biasGrad: biasGrad?.data)
            guard computesInputGradient else { return }
        }
        let sharedDy = passesShareDiffDestination ? scratch(diffDestinationIn?.destination) : nil
        let sharedDiffDst = passesShareDiffDestination ? try bring(dy.data, through: diffDestinationIn, into: sharedDy) : nil
        // Each pass takes its own scratch and drops it on return: the input gradient's may
        // reuse the weight gradient's. A shared blocked copy of dy is held across both.
        try withExtendedLifetime(sharedDy) {
            if depthwiseWeightGradient == nil { try addWeightGradient(x, dy, sharedDiffDst, weightGrad: weightGrad, biasGrad: biasGrad) }
            if computesInputGradient { try computeInputGradient(dy, sharedDiffDst, weight: weight, into: dx) }
        }
    }

    /// `sharedDiffDst`: dy already in the pass's layout; nil when the pass reorders it itself.
    private func addWeightGradient(_ x: Tensor, _ dy: Tensor, _ sharedDiffDst: UnsafeRawPointer?, weightGrad: Tensor, biasGrad: Tensor?) throws {
        let blockedX = scratch(weightsPassSourceIn?.destination), blockedDiffWeights = scratch(diffWeightsOut?.source)
        let blockedDy = sharedDiffDst == nil ? scratch(weightsPassDiffDestinationIn?.destination) : nil
        let plainDiffWeights = Workspace.tensor(weightGrad.shape)
        // x again in the convolution's layout: keeping forward's copy until backward cost
        // an activation-sized buffer per convolution.
        let src = try bring(x.data, through: weightsPassSourceIn, into: blockedX)
        let diffDst = try sharedDiffDst ?? bring(dy.data, through: weightsPassDiffDestinationIn, into: blockedDy)
        let dW = blockedDiffWeights.map { UnsafeMutableRawPointer($0.data) } ?? UnsafeMutableRawPointer(plainDiffWeights.data)
        try convolution.backwardWeights(source: src, diffDestination: diffDst, diffWeights: dW,
                                        diffBias: biasGrad == nil ? nil : diffBias.base)
        try diffWeightsOut?.execute(from: dW, to: plainDiffWeights.data)
        BLAS.axpy(weightGrad.count, alpha: 1, x: plainDiffWeights.data, y: weightGrad.data)
        if let biasGrad { BLAS.axpy(biasGrad.count, alpha: 1, x: diffBias.base.assumingMemoryBound(to: Real.self), y: biasGrad.data) }
    }

    private func computeInputGradient(_ dy: Tensor, _ sharedDiffDst: UnsafeRawPointer?, weight: Tensor, into dx: Tensor) throws {
        let blockedWeights = scratch(weightsBackward?.destination), blockedDx = scratch(diffSourceOut?.source)
        let blockedDy = sharedDiffDst == nil ? scratch(diffDestinationIn?.destination) : nil
        let weights = try bring(weight.data, through: weightsBackward, into: blockedWeights)
        let diffDst = try sharedDiffDst ?? bring(dy.data, through: diffDestinationIn, into: blockedDy)
        let diffSrc = blockedDx.map { UnsafeMutableRawPointer($0.data) } ?? UnsafeMutableRawPointer(dx.data)
        try convolution.backwardData(diffDestination: diffDst, weights: weights, diffSource: diffSrc)
        try diffSourceOut?.execute(from: diffSrc, to: dx.data)
    }

    /// Workspace memory for a tensor in the blocked `layout`, for one call; nil where the
    /// plain layout serves (no reorder).
    private func scratch(_ layout: MemoryDescriptor?) -> Tensor? {
        layout.map { Workspace.tensor(Shape(($0.byteCount + MemoryLayout<Real>.size - 1) / MemoryLayout<Real>.size)) }
    }

    /// `plain` in the primitive's layout: reordered into `buffer`, or itself when no reorder is needed.
    private func bring(_ plain: UnsafeMutablePointer<Real>, through reorder: Reorder?, into buffer: Tensor?) throws -> UnsafeRawPointer {
        guard let reorder, let buffer else { return UnsafeRawPointer(plain) }
        try reorder.execute(from: plain, to: buffer.data)
        return UnsafeRawPointer(buffer.data)
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
}
