@_exported import Tensor

/// Whether a forward pass trains (batch statistics, dropout) or evaluates.
public enum Mode: Sendable {
    case training, evaluation
}

/// A named child of a container. A child without a name adds nothing to its parameters'
/// keys, so that containers can mirror PyTorch's module paths exactly.
public struct Child {
    public let name: String?
    public let layer: any Layer

    public init(_ name: String?, _ layer: any Layer) {
        self.name = name
        self.layer = layer
    }
}

/// A shape that a layer cannot accept, with the path of the layer that refused it.
public struct ShapeError: Error, CustomStringConvertible {
    public var path: String
    public var layer: String
    public var message: String

    public init(layer: String, _ message: String) {
        path = ""
        self.layer = layer
        self.message = message
    }

    public var description: String {
        path.isEmpty ? "\(layer): \(message)" : "\(path) (\(layer)): \(message)"
    }
}

/// One stage of a network with an explicit forward and backward, as in Torch's `nn`.
///
/// `forward` returns a tensor in the layer's own memory, valid until its next forward;
/// `backward(input, gradOutput)` returns the input gradient and adds this batch's parameter
/// gradients to `Parameter.grad`. The input gradient is `Workspace` memory (or `gradOutput`
/// itself, for a layer that hands it on), valid while the caller holds it; backward never
/// writes into `gradOutput`. Backward runs at most once per forward, after the backward of
/// every layer that read this one's output (a convolution with a fused ReLU writes its
/// output gradient over its output). Buffers are allocated on the first call at a shape and
/// reused after that.
public protocol Layer: AnyObject {
    /// A short description, e.g. "Conv2d(1→6, k5 s1 p2)".
    var summary: String { get }
    /// The layer's own trainable parameters, by local name ("weight", "bias").
    var parameters: [Parameter] { get }
    /// Sub-layers of a container; empty for a leaf.
    var children: [Child] { get }
    /// The layer's own state beside its parameters, by local name ("running_mean", ...).
    var buffers: [Buffer] { get }

    /// The output shape for an input shape, or a `ShapeError` saying why it does not fit.
    func outputShape(for input: Shape) throws -> Shape
    /// Floating-point operations of one forward pass over `input` (a multiply-add counts 2).
    func flops(for input: Shape) -> Int

    func forward(_ input: Tensor, mode: Mode) -> Tensor
    func backward(_ input: Tensor, _ gradOutput: Tensor) -> Tensor

    /// Whether `forward` takes input of `shape` in `layout`. A layer that reads channel-blocked
    /// input returns output in a layout of its choosing, and its backward takes the output
    /// gradient in the output's layout and returns the input gradient in the input's. The
    /// containers hand any other layer NCHW (`InputLayoutBridge`).
    func reads(_ layout: ActivationLayout, shape: Shape) -> Bool
}

extension Layer {
    public func reads(_ layout: ActivationLayout, shape: Shape) -> Bool { layout == .nchw }
    public var parameters: [Parameter] { [] }
    public var children: [Child] { [] }
    public var buffers: [Buffer] { [] }
}

/// State a layer keeps beside its parameters that the optimizer does not train: batch
/// norm's running statistics and batch counter, dropout's random generator. `Network`
/// collects every layer's buffers under their `state_dict` keys, and what handles a model's
/// state (the state dict, initialization, broadcast, statistics averaging, weights files,
/// checkpoints) goes by the buffer's kind, never by the layer's type.
public struct Buffer {
    public enum Value {
        /// A float tensor of the state dict that training moves (a running statistic):
        /// starts at `initial`, and ranks that kept their own average it.
        case statistic(Tensor, initial: Real)
        /// An int64 of the state dict (`num_batches_tracked`): starts at 0.
        case counter(get: () -> Int64, set: (Int64) -> Void)
        /// A random generator's state: each rank's own, kept in checkpoints but not in the
        /// state dict (PyTorch keeps generators outside modules).
        case generator(get: () -> [UInt64], set: ([UInt64]) -> Void)
    }

    public let name: String
    public let value: Value

    public init(_ name: String, _ value: Value) {
        self.name = name
        self.value = value
    }
}

/// A layer whose forward always returns a buffer of its own that its backward never reads:
/// a layer after it that alone reads that output may overwrite it (`Activation.writesInPlace`).
public protocol OverwritableOutput: Layer {}

/// A layer made of other layers. It reports each child as soon as that child's backward is
/// done: the gradients of the child's parameters are then final for this step, which is where
/// data parallelism starts summing them across ranks (`Network.gradientsReady`).
public protocol Container: Layer {
    /// Set by `Network` on every container of its tree.
    var didFinishChildBackward: ((any Layer) -> Void)? { get set }
}

/// A trainable tensor with its gradient and what its initializer needs to know.
public final class Parameter {
    public enum Role: Sendable {
        /// A convolution or linear weight with its fans (PyTorch's `_calculate_fan_in_and_fan_out`).
        case weight(fanIn: Int, fanOut: Int)
        /// A convolution or linear bias; `fanIn` of its layer's weight.
        case bias(fanIn: Int)
        /// Batch-norm scale (starts at 1) and shift (starts at 0).
        case scale, shift
    }

    public let name: String
    public let role: Role
    /// Repointed into the network's flat buffers once the network is assembled.
    public internal(set) var value: Tensor
    public internal(set) var grad: Tensor

    public init(_ name: String, shape: Shape, role: Role) {
        self.name = name
        self.role = role
        value = Tensor(zeros: shape)
        grad = Tensor(zeros: shape)
    }

    public var shape: Shape { value.shape }
}
