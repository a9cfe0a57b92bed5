/// Which pooling.
public enum PoolingKind: Sendable, Hashable {
    case max
    /// Average over the whole window, padding counted as zeros (PyTorch's `count_include_pad=True`).
    case averageIncludingPadding
    /// Average over the window's elements inside the input (`count_include_pad=False`).
    case averageExcludingPadding
}

/// The window of a 2-D pooling. PyTorch's `ceil_mode` is extra bottom/right padding:
/// add what makes the last window fit.
public struct PoolingGeometry: Hashable, Sendable, CustomStringConvertible {
    public var kind: PoolingKind
    public var kernelHeight: Int
    public var kernelWidth: Int
    public var strideHeight: Int
    public var strideWidth: Int
    public var paddingTop: Int
    public var paddingLeft: Int
    public var paddingBottom: Int
    public var paddingRight: Int

    public init(kind: PoolingKind, kernelHeight: Int, kernelWidth: Int, strideHeight: Int, strideWidth: Int,
                paddingTop: Int = 0, paddingLeft: Int = 0, paddingBottom: Int = 0, paddingRight: Int = 0) {
        self.kind = kind
        self.kernelHeight = kernelHeight
        self.kernelWidth = kernelWidth
        self.strideHeight = strideHeight
        self.strideWidth = strideWidth
        self.paddingTop = paddingTop
        self.paddingLeft = paddingLeft
        self.paddingBottom = paddingBottom
        self.paddingRight = paddingRight
    }

    /// A square window with symmetric padding, PyTorch's `MaxPool2d(kernel, stride, padding)`.
    public init(kind: PoolingKind, kernel: Int, stride: Int, padding: Int = 0) {
        self.init(kind: kind, kernelHeight: kernel, kernelWidth: kernel, strideHeight: stride, strideWidth: stride,
                  paddingTop: padding, paddingLeft: padding, paddingBottom: padding, paddingRight: padding)
    }

    /// (N, C, OH, OW) for a source of dims (N, C, H, W).
    public func destinationDims(source dims: [Int]) -> [Int] {
        [dims[0], dims[1],
         (dims[2] + paddingTop + paddingBottom - kernelHeight) / strideHeight + 1,
         (dims[3] + paddingLeft + paddingRight - kernelWidth) / strideWidth + 1]
    }

    public var description: String {
        "\(kind) k\(kernelHeight)×\(kernelWidth) s\(strideHeight)×\(strideWidth) p\(paddingTop),\(paddingLeft),\(paddingBottom),\(paddingRight)"
    }
}

/// 2-D max or average pooling of a tensor in a given layout (f32 or bf16), forward and backward.
///
/// The destination's layout is oneDNN's choice (the source's, in practice): read
/// `destination`. Max pooling in training writes a workspace (the argmax, `workspace`
/// descriptor) that backward reads.
///
/// Precision: with bf16 data, oneDNN 2.6 sums the gradients of overlapping windows (3×3
/// stride 2, 3×3 stride 1) in bf16, so each addition rounds at 2⁻⁸ (measured in PoolingTests).
public final class Pooling {
    public let geometry: PoolingGeometry
    public let source: MemoryDescriptor
    private let forwardPrimitive: Primitive
    private let backwardPrimitive: Primitive?

    /// - Throws: `DNNLError` when `source` is not 4-D, the window does not fit, or oneDNN
    ///   has no implementation (e.g. padding as large as the kernel).
    public init(_ geometry: PoolingGeometry, source: MemoryDescriptor, training: Bool = true, context: Context? = nil) throws {
        guard source.dims.count == 4 else { throw DNNLError("pooling \(geometry) of \(source): expected (N, C, H, W)") }
        let dims = geometry.destinationDims(source: source.dims)
        guard dims[2] > 0, dims[3] > 0 else {
            throw DNNLError("pooling \(geometry) of \(source): the window does not fit (output \(dims[2])×\(dims[3]))")
        }
        let context = try context ?? DNNLRuntime.context
        self.geometry = geometry
        self.source = source
        let destination = try MemoryDescriptor(dims: dims, dataType: source.dataType ?? .f32, format: .any)
        let forward = try Primitive(
            descriptor: OneDNN.poolingForward(geometry, training: training, source: source, destination: destination,
                                              engine: context.engine),
            arguments: [.source, .destination, .workspace], context: context)
        forwardPrimitive = forward
        backwardPrimitive = training ? try Primitive(
            descriptor: OneDNN.poolingBackward(geometry, diffSource: source, diffDestination: forward.memoryDescriptor(.destination),
                                               forward: forward.descriptor, engine: context.engine),
            arguments: [.diffDestination, .workspace, .diffSource], context: context) : nil
    }

    /// The layout of the destination and of its gradient.
    public var destination: MemoryDescriptor { forwardPrimitive.memoryDescriptor(.destination) }
    /// The argmax record of max pooling in training (empty otherwise).
    public var workspace: MemoryDescriptor { forwardPrimitive.memoryDescriptor(.workspace) }
    public var implementation: String { forwardPrimitive.implementation }

    /// destination = pool(source); writes `workspace` for max pooling in training.
    public func forward(source: UnsafeRawPointer, destination: UnsafeMutableRawPointer,
                        workspace: UnsafeMutableRawPointer? = nil) throws {
        try forwardPrimitive.bind(.source, source)
        try forwardPrimitive.bind(.destination, destination)
        if forwardPrimitive.uses(.workspace) {
            guard let workspace else {
                throw DNNLError("pooling \(geometry) needs a workspace buffer of \(self.workspace.byteCount) bytes")
            }
            try forwardPrimitive.bind(.workspace, workspace)
        }
        try forwardPrimitive.execute()
    }

    /// diffSource = the gradient with respect to the source (overwritten, in `source`'s layout).
    public func backward(diffDestination: UnsafeRawPointer, workspace: UnsafeRawPointer? = nil,
                         diffSource: UnsafeMutableRawPointer) throws {
        guard let primitive = backwardPrimitive else {
            throw DNNLError("pooling \(geometry) was built with training: false; backward needs training: true")
        }
        try primitive.bind(.diffDestination, diffDestination)
        if primitive.uses(.workspace) {
            guard let workspace else {
                throw DNNLError("max pooling \(geometry) backward needs the forward's workspace")
            }
            try primitive.bind(.workspace, workspace)
        }
        try primitive.bind(.diffSource, diffSource)
        try primitive.execute()
    }
}
