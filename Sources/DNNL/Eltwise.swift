/// An element-wise function oneDNN 2.6 implements, forward and backward.
///
/// PyTorch names: ReLU6 is `.relu6` (clip to [0, 6]), SiLU is `.silu` (swish with β = 1),
/// GELU is `.geluErf` (PyTorch's default) or `.geluTanh` (approximate="tanh").
/// Hardsigmoid has no algorithm in oneDNN 2.6 (3.0 added it): compose
/// `.linear(scale: 1/6, shift: 0.5)` and `.clip(low: 0, high: 1)`.
public enum EltwiseFunction: Sendable, Hashable, CustomStringConvertible {
    /// max(x, 0) + negativeSlope · min(x, 0).
    case relu(negativeSlope: Float)
    case tanh
    /// The logistic function 1/(1 + e^−x).
    case sigmoid
    /// min(max(x, low), high); its gradient is 1 on (low, high) and 0 elsewhere, as PyTorch's hardtanh.
    case clip(low: Float, high: Float)
    /// x · Φ(x) with the exact normal CDF.
    case geluErf
    /// GELU's tanh approximation.
    case geluTanh
    /// x · sigmoid(β x).
    case swish(beta: Float)
    /// x · min(max(x + 3, 0), 6) / 6. At exactly x = −3 oneDNN 2.6's derivative is 0 where
    /// PyTorch's is −1/2 (elsewhere they agree).
    case hardswish
    /// scale · x + shift.
    case linear(scale: Float, shift: Float)

    /// max(x, 0).
    public static let relu = EltwiseFunction.relu(negativeSlope: 0)
    /// PyTorch's ReLU6.
    public static let relu6 = EltwiseFunction.clip(low: 0, high: 6)
    /// PyTorch's SiLU.
    public static let silu = EltwiseFunction.swish(beta: 1)

    /// Whether backward can read the forward's output instead of its input, so the
    /// input need not be kept (and the function may run in place).
    public var canBackpropagateFromDestination: Bool {
        switch self {
        case .relu(let slope): return slope >= 0
        case .tanh, .sigmoid, .clip: return true
        default: return false
        }
    }

    public var description: String {
        switch self {
        case .relu(let slope): return slope == 0 ? "relu" : "leaky relu(\(slope))"
        case .tanh: return "tanh"
        case .sigmoid: return "sigmoid"
        case .clip(let low, let high): return "clip(\(low), \(high))"
        case .geluErf: return "gelu(erf)"
        case .geluTanh: return "gelu(tanh)"
        case .swish(let beta): return "swish(\(beta))"
        case .hardswish: return "hardswish"
        case .linear(let scale, let shift): return "linear(\(scale), \(shift))"
        }
    }
}

/// An element-wise function on a tensor in a given layout (f32 or bf16), forward and backward.
///
/// In-place is allowed: source and destination may be the same buffer.
public final class Eltwise {
    public let function: EltwiseFunction
    public let data: MemoryDescriptor
    /// Whether `backward` takes the forward's destination (true) or its source (false).
    public let backwardFromDestination: Bool
    private let forwardPrimitive: Primitive
    private let backwardPrimitive: Primitive?

    /// - Throws: `DNNLError` when `backwardFromDestination` is asked of a function that
    ///   cannot (see `canBackpropagateFromDestination`) or oneDNN has no implementation.
    public init(_ function: EltwiseFunction, data: MemoryDescriptor, backwardFromDestination: Bool = false,
                training: Bool = true, context: Context? = nil) throws {
        guard !backwardFromDestination || function.canBackpropagateFromDestination else {
            throw DNNLError("eltwise \(function): backward from the destination is not possible; use the source")
        }
        let context = try context ?? DNNLRuntime.context
        self.function = function
        self.data = data
        self.backwardFromDestination = backwardFromDestination
        let forward = try Primitive(
            descriptor: OneDNN.eltwiseForward(function, useDestination: backwardFromDestination, training: training,
                                              data: data, engine: context.engine),
            arguments: [.source, .destination], context: context)
        forwardPrimitive = forward
        backwardPrimitive = training ? try Primitive(
            descriptor: OneDNN.eltwiseBackward(function, useDestination: backwardFromDestination, data: data,
                                               forward: forward.descriptor, engine: context.engine),
            arguments: [backwardFromDestination ? .destination : .source, .diffDestination, .diffSource],
            context: context) : nil
    }

    public var implementation: String { forwardPrimitive.implementation }

    /// destination = f(source), element by element.
    public func forward(source: UnsafeRawPointer, destination: UnsafeMutableRawPointer) throws {
        try forwardPrimitive.bind(.source, source)
        try forwardPrimitive.bind(.destination, destination)
        try forwardPrimitive.execute()
    }

    /// diffSource = f′ · diffDestination, where `data` is the forward's destination if
    /// `backwardFromDestination`, else its source. diffSource may alias diffDestination.
    public func backward(data: UnsafeRawPointer, diffDestination: UnsafeRawPointer, diffSource: UnsafeMutableRawPointer) throws {
        guard let primitive = backwardPrimitive else {
            throw DNNLError("eltwise \(function) was built with training: false; backward needs training: true")
        }
        try primitive.bind(backwardFromDestination ? .destination : .source, data)
        try primitive.bind(.diffDestination, diffDestination)
        try primitive.bind(.diffSource, diffSource)
        try primitive.execute()
    }
}
