/// The shape of a 2-D convolution, in PyTorch's terms (dilation 1 is a dense kernel).
public struct ConvolutionGeometry: Hashable, Sendable, CustomStringConvertible {
    public var batch: Int
    public var inputChannels: Int
    public var height: Int
    public var width: Int
    public var outputChannels: Int
    public var kernelHeight: Int
    public var kernelWidth: Int
    public var strideHeight: Int
    public var strideWidth: Int
    public var paddingTop: Int
    public var paddingLeft: Int
    public var paddingBottom: Int
    public var paddingRight: Int
    /// PyTorch's dilation: 1 is dense (oneDNN counts the gaps, 0).
    public var dilationHeight: Int
    public var dilationWidth: Int
    /// Channel groups: input and output channels split into `groups` independent convolutions.
    public var groups: Int
    /// Whether the convolution adds a bias (and its backward computes the bias gradient).
    public var hasBias: Bool

    public init(batch: Int, inputChannels: Int, height: Int, width: Int, outputChannels: Int,
                kernelHeight: Int, kernelWidth: Int, strideHeight: Int = 1, strideWidth: Int = 1,
                paddingTop: Int = 0, paddingLeft: Int = 0, paddingBottom: Int = 0, paddingRight: Int = 0,
                dilationHeight: Int = 1, dilationWidth: Int = 1, groups: Int = 1, hasBias: Bool = true) {
        self.batch = batch
        self.inputChannels = inputChannels
        self.height = height
        self.width = width
        self.outputChannels = outputChannels
        self.kernelHeight = kernelHeight
        self.kernelWidth = kernelWidth
        self.strideHeight = strideHeight
        self.strideWidth = strideWidth
        self.paddingTop = paddingTop
        self.paddingLeft = paddingLeft
        self.paddingBottom = paddingBottom
        self.paddingRight = paddingRight
        self.dilationHeight = dilationHeight
        self.dilationWidth = dilationWidth
        self.groups = groups
        self.hasBias = hasBias
    }

    /// A square kernel with symmetric padding, PyTorch's `Conv2d(c, o, k, stride, padding)`.
    public init(batch: Int, inputChannels: Int, height: Int, width: Int, outputChannels: Int,
                kernel: Int, stride: Int = 1, padding: Int = 0, dilation: Int = 1, groups: Int = 1, hasBias: Bool = true) {
        self.init(batch: batch, inputChannels: inputChannels, height: height, width: width,
                  outputChannels: outputChannels, kernelHeight: kernel, kernelWidth: kernel,
                  strideHeight: stride, strideWidth: stride, paddingTop: padding, paddingLeft: padding,
                  paddingBottom: padding, paddingRight: padding, dilationHeight: dilation, dilationWidth: dilation,
                  groups: groups, hasBias: hasBias)
    }

    public var outputHeight: Int {
        (height + paddingTop + paddingBottom - dilationHeight * (kernelHeight - 1) - 1) / strideHeight + 1
    }

    public var outputWidth: Int {
        (width + paddingLeft + paddingRight - dilationWidth * (kernelWidth - 1) - 1) / strideWidth + 1
    }

    /// (N, C, H, W).
    public var sourceDims: [Int] { [batch, inputChannels, height, width] }
    /// (N, O, OH, OW).
    public var destinationDims: [Int] { [batch, outputChannels, outputHeight, outputWidth] }
    /// oneDNN's weights dims: (O, C, kh, kw), or (G, O/G, C/G, kh, kw) with groups, which
    /// holds PyTorch's (O, C/G, kh, kw) bytes unchanged.
    public var weightsDims: [Int] {
        groups == 1
            ? [outputChannels, inputChannels, kernelHeight, kernelWidth]
            : [groups, outputChannels / groups, inputChannels / groups, kernelHeight, kernelWidth]
    }

    /// Multiply-adds of one forward pass (each of the two backward passes costs the same).
    public var multiplyAdds: Int {
        batch * outputChannels * outputHeight * outputWidth * (inputChannels / groups) * kernelHeight * kernelWidth
    }

    /// Throws unless every size is positive, channels divide into groups and the output is non-empty.
    func validate() throws {
        let positive = [batch, inputChannels, height, width, outputChannels, kernelHeight, kernelWidth,
                        strideHeight, strideWidth, dilationHeight, dilationWidth, groups]
        let padding = [paddingTop, paddingLeft, paddingBottom, paddingRight]
        guard positive.allSatisfy({ $0 > 0 }), padding.allSatisfy({ $0 >= 0 }) else {
            throw DNNLError("convolution \(self): sizes, strides, dilations and groups must be positive, padding non-negative")
        }
        guard inputChannels % groups == 0, outputChannels % groups == 0 else {
            throw DNNLError("convolution \(self): \(inputChannels) input and \(outputChannels) output channels must divide into \(groups) groups")
        }
        guard outputHeight > 0, outputWidth > 0 else {
            throw DNNLError("convolution \(self): the kernel does not fit the padded input (output \(outputHeight)×\(outputWidth))")
        }
    }

    public var description: String {
        "N\(batch) C\(inputChannels) \(height)×\(width) → O\(outputChannels) k\(kernelHeight)×\(kernelWidth)"
            + " s\(strideHeight)×\(strideWidth) p\(paddingTop),\(paddingLeft),\(paddingBottom),\(paddingRight)"
            + " d\(dilationHeight)×\(dilationWidth) g\(groups)\(hasBias ? " bias" : "")"
    }
}

/// How oneDNN computes a convolution.
public enum ConvolutionAlgorithm: String, Sendable, Hashable {
    /// Direct (JIT) convolution: the default and what oneDNN implements for every shape.
    case direct
    /// Winograd F(4×4, 3×3) (`WinogradF4x3`): 3×3, stride 1, undilated, ungrouped, f32, on
    /// AVX-512, in all three passes; rounds more than direct (its transforms amplify).
    case winograd
    /// Let oneDNN pick between them.
    case auto
}

/// A 2-D convolution built once for a geometry and data type: forward, backward data and
/// backward weights, executed on caller buffers.
///
/// Layouts: activations and weights are created with format `any`, so oneDNN picks its
/// fastest layout (nChw16c activations on AVX-512); read the chosen descriptors below and
/// reorder into them (`Reorder`). The backward primitives are created with their
/// activations pinned to the forward's layouts (`forwardSource` for `diffSource` and
/// `source`, `forwardDestination` for `diffDestination`), so activation gradients share
/// the activations' layout; oneDNN still chooses their weights layouts, which may differ
/// from the forward's: compare `backwardDataWeights` with `forwardWeights`. If oneDNN has
/// no implementation for the pinned layouts, or only its reference one, the pass takes
/// `any`; compare `backwardDataDiffDestination` etc. with the forward's before sharing
/// buffers. (LeNet's 6→16 convolution: pinned to the forward's plain nchw source, both
/// backward passes are `ref:any`; free, backward data runs jit:avx512_core on nChw16c and
/// backward weights jit:avx2 on nChw8c.)
///
/// Measured with oneDNN 2.6.3 on AVX512_BF16 (LayoutChoiceTests prints it): ResNet-18's
/// 3×3 and 1×1 convolutions run jit:avx512_core (f32) / jit_bf16:avx512_core_bf16 (bf16)
/// in every pass with nChw16c ("aBcd16b") activations in all three; weights are
/// ABcd16b16a forward and ABcd16a16b for backward data in f32 (bf16: ABcd8b16a2b and
/// ABcd8a16b2a), so each step needs one weights reorder per pass. The 3-channel stem
/// reads plain nchw and its backward data writes nChw16c; a network's first layer skips
/// `backwardData`, whose input gradient nobody needs.
///
/// Data types: with `.bf16`, source, weights, destination and their gradients are bf16;
/// `bias`, `diffBias` and `diffWeights` are f32 (weight gradients accumulate in f32, the
/// optimizer's master weights stay f32 and are reordered to bf16 for `forward`).
///
/// A fused ReLU applies max(0, ·) to the destination in the same pass. In training the
/// caller then runs ReLU's backward from the destination before `backwardData`/`backwardWeights`.
///
/// Executing allocates nothing: the scratchpad is the context's shared buffer.
public final class Convolution {
    public let geometry: ConvolutionGeometry
    public let dataType: DataType
    public let algorithm: ConvolutionAlgorithm
    public let fusedReLU: Bool
    private let forwardPrimitive: Primitive
    private let backwardDataPrimitive: Primitive?
    private let backwardWeightsPrimitive: Primitive?

    /// Builds the forward primitive, and the two backward ones when `training`.
    ///
    /// - Throws: `DNNLError` naming the geometry when it is invalid or oneDNN has no
    ///   implementation (e.g. `.winograd` on a 1×1 kernel, or `.bf16` without AVX-512).
    public init(_ geometry: ConvolutionGeometry, dataType: DataType = .f32, algorithm: ConvolutionAlgorithm = .direct,
                fusedReLU: Bool = false, training: Bool = true, context: Context? = nil) throws {
        try geometry.validate()
        let context = try context ?? DNNLRuntime.context
        self.geometry = geometry
        self.dataType = dataType
        self.algorithm = algorithm
        self.fusedReLU = fusedReLU
        let any = { (dims: [Int], type: DataType) in try MemoryDescriptor(dims: dims, dataType: type, format: .any) }
        let bias = geometry.hasBias ? try MemoryDescriptor(dims: [geometry.outputChannels], dataType: .f32, format: .x) : nil

        let forward = try Primitive(
            descriptor: OneDNN.convolutionForward(
                geometry, training: training, algorithm: algorithm, fusedReLU: fusedReLU,
                source: any(geometry.sourceDims, dataType), weights: any(geometry.weightsDims, dataType),
                bias: bias, destination: any(geometry.destinationDims, dataType), engine: context.engine),
            arguments: [.source, .weights, .bias, .destination], context: context)
        forwardPrimitive = forward
        guard training else {
            backwardDataPrimitive = nil
            backwardWeightsPrimitive = nil
            return
        }
        let source = forward.memoryDescriptor(.source)
        let destination = forward.memoryDescriptor(.destination)

        /// The backward descriptor with activations pinned to the forward's layouts, else (none,
        /// or only the reference kernel) with `any`.
        func pinnedOrAny(_ make: (_ source: MemoryDescriptor, _ destination: MemoryDescriptor) throws -> OpaquePointer) throws -> OpaquePointer {
            if let pinned = try? make(source, destination) {
                if !OneDNN.implementation(pinned).hasPrefix("ref") { return pinned }
                OneDNN.destroy(primitiveDescriptor: pinned)
            }
            return try make(any(geometry.sourceDims, dataType), any(geometry.destinationDims, dataType))
        }
        backwardDataPrimitive = try Primitive(
            descriptor: pinnedOrAny { source, destination in
                try OneDNN.convolutionBackwardData(
                    geometry, algorithm: algorithm, diffSource: source, weights: any(geometry.weightsDims, dataType),
                    diffDestination: destination, forward: forward.descriptor, engine: context.engine)
            },
            arguments: [.diffDestination, .weights, .diffSource], context: context)
        let diffBias = geometry.hasBias ? bias : nil
        backwardWeightsPrimitive = try Primitive(
            descriptor: pinnedOrAny { source, destination in
                try OneDNN.convolutionBackwardWeights(
                    geometry, algorithm: algorithm, source: source, diffWeights: any(geometry.weightsDims, .f32),
                    diffBias: diffBias, diffDestination: destination, forward: forward.descriptor, engine: context.engine)
            },
            arguments: [.source, .diffDestination, .diffWeights, .diffBias], context: context)
    }

    // MARK: - Layouts oneDNN chose

    public var forwardSource: MemoryDescriptor { forwardPrimitive.memoryDescriptor(.source) }
    public var forwardWeights: MemoryDescriptor { forwardPrimitive.memoryDescriptor(.weights) }
    public var forwardDestination: MemoryDescriptor { forwardPrimitive.memoryDescriptor(.destination) }
    /// f32 (O), or empty without bias.
    public var biasDescriptor: MemoryDescriptor { forwardPrimitive.memoryDescriptor(.bias) }

    public var backwardDataDiffDestination: MemoryDescriptor? { backwardDataPrimitive?.memoryDescriptor(.diffDestination) }
    public var backwardDataWeights: MemoryDescriptor? { backwardDataPrimitive?.memoryDescriptor(.weights) }
    public var backwardDataDiffSource: MemoryDescriptor? { backwardDataPrimitive?.memoryDescriptor(.diffSource) }

    public var backwardWeightsSource: MemoryDescriptor? { backwardWeightsPrimitive?.memoryDescriptor(.source) }
    public var backwardWeightsDiffDestination: MemoryDescriptor? { backwardWeightsPrimitive?.memoryDescriptor(.diffDestination) }
    /// Always f32, in the layout oneDNN chose for the weight gradient.
    public var backwardWeightsDiffWeights: MemoryDescriptor? { backwardWeightsPrimitive?.memoryDescriptor(.diffWeights) }

    /// PyTorch's weights layout (oihw, or goihw with groups) in `dataType`: the source of
    /// the reorder into `forwardWeights`, and the target of the one from `backwardWeightsDiffWeights`.
    public func plainWeights(_ dataType: DataType) throws -> MemoryDescriptor {
        try MemoryDescriptor(dims: geometry.weightsDims, dataType: dataType, format: geometry.groups == 1 ? .oihw : .goihw)
    }

    /// The implementations oneDNN chose, e.g. "jit:avx512_core" (nil for a backward not built).
    public var implementations: (forward: String, backwardData: String?, backwardWeights: String?) {
        (forwardPrimitive.implementation, backwardDataPrimitive?.implementation, backwardWeightsPrimitive?.implementation)
    }

    // MARK: - Execution

    /// destination = conv(source, weights) + bias (then ReLU if fused).
    ///
    /// Buffers in `forwardSource`, `forwardWeights`, `biasDescriptor` (f32), `forwardDestination`.
    public func forward(source: UnsafeRawPointer, weights: UnsafeRawPointer, bias: UnsafeRawPointer?,
                        destination: UnsafeMutableRawPointer) throws {
        guard (bias != nil) == geometry.hasBias else {
            throw DNNLError("convolution \(geometry): bias pointer \(bias == nil ? "missing" : "given") but hasBias is \(geometry.hasBias)")
        }
        try forwardPrimitive.bind(.source, source)
        try forwardPrimitive.bind(.weights, weights)
        if let bias { try forwardPrimitive.bind(.bias, bias) }
        try forwardPrimitive.bind(.destination, destination)
        try forwardPrimitive.execute()
    }

    /// diffSource = the gradient of the loss with respect to the source (overwritten).
    ///
    /// Buffers in `backwardDataDiffDestination`, `backwardDataWeights`, `backwardDataDiffSource`.
    public func backwardData(diffDestination: UnsafeRawPointer, weights: UnsafeRawPointer,
                             diffSource: UnsafeMutableRawPointer) throws {
        guard let primitive = backwardDataPrimitive else {
            throw DNNLError("convolution \(geometry) was built with training: false; backwardData needs training: true")
        }
        try primitive.bind(.diffDestination, diffDestination)
        try primitive.bind(.weights, weights)
        try primitive.bind(.diffSource, diffSource)
        try primitive.execute()
    }

    /// diffWeights (and diffBias) = the gradients of the loss, overwritten (not accumulated).
    ///
    /// Buffers in `backwardWeightsSource`, `backwardWeightsDiffDestination`,
    /// `backwardWeightsDiffWeights` (f32) and f32 (O) for `diffBias`.
    public func backwardWeights(source: UnsafeRawPointer, diffDestination: UnsafeRawPointer,
                                diffWeights: UnsafeMutableRawPointer, diffBias: UnsafeMutableRawPointer?) throws {
        guard let primitive = backwardWeightsPrimitive else {
            throw DNNLError("convolution \(geometry) was built with training: false; backwardWeights needs training: true")
        }
        guard (diffBias != nil) == geometry.hasBias else {
            throw DNNLError("convolution \(geometry): diffBias pointer \(diffBias == nil ? "missing" : "given") but hasBias is \(geometry.hasBias)")
        }
        try primitive.bind(.source, source)
        try primitive.bind(.diffDestination, diffDestination)
        try primitive.bind(.diffWeights, diffWeights)
        if let diffBias { try primitive.bind(.diffBias, diffBias) }
        try primitive.execute()
    }
}
