/// Batch normalization over the channels (axis 1) of a tensor in a given layout, with
/// separate scale (γ) and shift (β) as PyTorch stores them.
///
/// oneDNN takes the layout of its input (it has no `any` here): pass the descriptor the
/// previous primitive produced, e.g. `Convolution.forwardDestination`. Data may be f32 or
/// bf16; scale, shift, mean, variance and their gradients are always f32 (C).
///
/// Statistics: `forwardTraining` computes the batch mean and the *biased* variance (divided
/// by N·H·W) and returns them; updating running statistics (PyTorch uses the unbiased
/// variance there) is the caller's business. `forward(…mean:variance:)` normalizes with
/// statistics the caller gives: running statistics in evaluation, or global batch
/// statistics in synchronized batch norm:
///
///  1. `forwardTraining` on the local batch (M = N·H·W elements per channel) gives mean μᵣ
///     and variance σ²ᵣ; all-reduce Σ M·μᵣ and Σ M·(σ²ᵣ + μᵣ²) across ranks;
///  2. the global μ = ΣMμ/ΣM and σ² = ΣM(σ²+μ²)/ΣM − μ² go to `forward(…mean:variance:)`;
///  3. backward: `backwardGivenStatistics` gives the local diffScale = Σ dy·x̂ and diffShift
///     = Σ dy (all-reduce them) and diffSource = γ/σ · dy; the full gradient subtracts
///     γ/σ · (ΣdY + x̂ Σdy·x̂)/ΣM, a per-channel affine function of x that `forward` with
///     scale −γ·Σdy·x̂/(σ·ΣM), shift −γ·Σdy/(σ·ΣM) and the same μ, σ² computes, added with `Sum`.
///
/// With `fusedReLU` the output is max(0, y) and training passes a workspace (a bit mask,
/// `workspace` descriptor) from forward to backward.
public final class BatchNormalization {
    /// The layout of source, destination and their gradients.
    public let data: MemoryDescriptor
    public let epsilon: Float
    public let fusedReLU: Bool
    private let batchStatistics: Primitive
    private let givenStatistics: Primitive
    private let backwardPrimitive: Primitive
    private let backwardGivenPrimitive: Primitive

    /// - Throws: `DNNLError` if `data` is not 2-D to 5-D or oneDNN has no implementation.
    public init(data: MemoryDescriptor, epsilon: Float = 1e-5, fusedReLU: Bool = false, context: Context? = nil) throws {
        guard (2...5).contains(data.dims.count) else {
            throw DNNLError("batch normalization of \(data): expected 2 to 5 dimensions (N, C, …)")
        }
        let context = try context ?? DNNLRuntime.context
        self.data = data
        self.epsilon = epsilon
        self.fusedReLU = fusedReLU
        let forwardArguments: [Argument] = [.source, .scale, .shift, .mean, .variance, .destination, .workspace]
        let backwardArguments: [Argument] = [.source, .diffDestination, .scale, .shift, .mean, .variance, .workspace,
                                             .diffSource, .diffScale, .diffShift]
        batchStatistics = try Primitive(
            descriptor: OneDNN.batchNormalizationForward(data: data, epsilon: epsilon, globalStatistics: false,
                                                         fusedReLU: fusedReLU, engine: context.engine),
            arguments: forwardArguments, context: context)
        givenStatistics = try Primitive(
            descriptor: OneDNN.batchNormalizationForward(data: data, epsilon: epsilon, globalStatistics: true,
                                                         fusedReLU: fusedReLU, engine: context.engine),
            arguments: forwardArguments, context: context)
        backwardPrimitive = try Primitive(
            descriptor: OneDNN.batchNormalizationBackward(data: data, epsilon: epsilon, globalStatistics: false,
                                                          fusedReLU: fusedReLU, forward: batchStatistics.descriptor,
                                                          engine: context.engine),
            arguments: backwardArguments, context: context)
        backwardGivenPrimitive = try Primitive(
            descriptor: OneDNN.batchNormalizationBackward(data: data, epsilon: epsilon, globalStatistics: true,
                                                          fusedReLU: fusedReLU, forward: givenStatistics.descriptor,
                                                          engine: context.engine),
            arguments: backwardArguments, context: context)
    }

    /// The ReLU mask forward writes and backward reads when `fusedReLU` (else empty).
    public var workspace: MemoryDescriptor { batchStatistics.memoryDescriptor(.workspace) }

    /// The implementation oneDNN chose for the forward with batch statistics.
    public var implementation: String { batchStatistics.implementation }

    private func bindWorkspace(_ primitive: Primitive, _ workspace: UnsafeRawPointer?) throws {
        guard fusedReLU else { return }
        guard let workspace else {
            throw DNNLError("batch normalization of \(data) with fused ReLU needs a workspace buffer of \(self.workspace.byteCount) bytes")
        }
        try primitive.bind(.workspace, workspace)
    }

    /// destination = γ (source − μ)/√(σ² + ε) + β with the batch's μ and biased σ², which it writes.
    public func forwardTraining(source: UnsafeRawPointer, scale: UnsafeRawPointer, shift: UnsafeRawPointer,
                                destination: UnsafeMutableRawPointer, mean: UnsafeMutableRawPointer,
                                variance: UnsafeMutableRawPointer, workspace: UnsafeMutableRawPointer? = nil) throws {
        try run(batchStatistics, source, scale, shift, mean, variance, destination, workspace)
    }

    /// destination = γ (source − μ)/√(σ² + ε) + β with the given μ and σ² (running or global statistics).
    public func forward(source: UnsafeRawPointer, scale: UnsafeRawPointer, shift: UnsafeRawPointer,
                        mean: UnsafeRawPointer, variance: UnsafeRawPointer,
                        destination: UnsafeMutableRawPointer, workspace: UnsafeMutableRawPointer? = nil) throws {
        try run(givenStatistics, source, scale, shift, mean, variance, destination, workspace)
    }

    private func run(_ primitive: Primitive, _ source: UnsafeRawPointer, _ scale: UnsafeRawPointer,
                     _ shift: UnsafeRawPointer, _ mean: UnsafeRawPointer, _ variance: UnsafeRawPointer,
                     _ destination: UnsafeMutableRawPointer, _ workspace: UnsafeMutableRawPointer?) throws {
        try primitive.bind(.source, source)
        try primitive.bind(.scale, scale)
        try primitive.bind(.shift, shift)
        try primitive.bind(.mean, mean)
        try primitive.bind(.variance, variance)
        try primitive.bind(.destination, destination)
        try bindWorkspace(primitive, workspace)
        try primitive.execute()
    }

    /// The full gradient through batch statistics: diffSource, diffScale = Σ dy·x̂,
    /// diffShift = Σ dy (all overwritten). `mean` and `variance` are `forwardTraining`'s.
    public func backward(source: UnsafeRawPointer, diffDestination: UnsafeRawPointer, scale: UnsafeRawPointer,
                         mean: UnsafeRawPointer, variance: UnsafeRawPointer, diffSource: UnsafeMutableRawPointer,
                         diffScale: UnsafeMutableRawPointer, diffShift: UnsafeMutableRawPointer,
                         workspace: UnsafeRawPointer? = nil) throws {
        try runBackward(backwardPrimitive, source, diffDestination, scale, mean, variance, diffSource, diffScale, diffShift, workspace)
    }

    /// The gradient with μ and σ² taken as constants: diffSource = γ/√(σ²+ε) · dy (see the
    /// type's notes for synchronized batch norm); diffScale and diffShift as in `backward`.
    public func backwardGivenStatistics(source: UnsafeRawPointer, diffDestination: UnsafeRawPointer,
                                        scale: UnsafeRawPointer, mean: UnsafeRawPointer, variance: UnsafeRawPointer,
                                        diffSource: UnsafeMutableRawPointer, diffScale: UnsafeMutableRawPointer,
                                        diffShift: UnsafeMutableRawPointer, workspace: UnsafeRawPointer? = nil) throws {
        try runBackward(backwardGivenPrimitive, source, diffDestination, scale, mean, variance, diffSource, diffScale, diffShift, workspace)
    }

    private func runBackward(_ primitive: Primitive, _ source: UnsafeRawPointer, _ diffDestination: UnsafeRawPointer,
                             _ scale: UnsafeRawPointer, _ mean: UnsafeRawPointer, _ variance: UnsafeRawPointer,
                             _ diffSource: UnsafeMutableRawPointer, _ diffScale: UnsafeMutableRawPointer,
                             _ diffShift: UnsafeMutableRawPointer, _ workspace: UnsafeRawPointer?) throws {
        try primitive.bind(.source, source)
        try primitive.bind(.diffDestination, diffDestination)
        try primitive.bind(.scale, scale)
        // oneDNN 2.6 fails with invalid_arguments unless backward is also given the shift,
        // which the gradient does not depend on; any C floats will do.
        try primitive.bind(.shift, scale)
        try primitive.bind(.mean, mean)
        try primitive.bind(.variance, variance)
        try primitive.bind(.diffSource, diffSource)
        try primitive.bind(.diffScale, diffScale)
        try primitive.bind(.diffShift, diffShift)
        try bindWorkspace(primitive, workspace)
        try primitive.execute()
    }
}
