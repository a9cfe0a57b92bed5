// Primitives that combine tensors: binary operations (the residual add), weighted sums,
// and concatenation on channels (Inception, DenseNet).

/// An element-wise operation of two tensors.
public enum BinaryOperation: Sendable, Hashable {
    case add
    case multiply
    case maximum
}

/// destination = first ∘ second, element by element; `second` may broadcast (dims of 1).
///
/// The residual add of ResNet: `Binary(.add, first: x, second: x)` on the layout of `x`.
/// Its backward is the identity for both inputs; nothing to build.
public final class Binary {
    public let operation: BinaryOperation
    private let primitive: Primitive

    /// - Parameter destination: defaults to `first`'s descriptor.
    public init(_ operation: BinaryOperation, first: MemoryDescriptor, second: MemoryDescriptor,
                destination: MemoryDescriptor? = nil, context: Context? = nil) throws {
        let context = try context ?? DNNLRuntime.context
        self.operation = operation
        primitive = try Primitive(
            descriptor: OneDNN.binary(operation, first: first, second: second, destination: destination ?? first,
                                      engine: context.engine),
            arguments: [.source, .secondSource, .destination], context: context)
    }

    public var destination: MemoryDescriptor { primitive.memoryDescriptor(.destination) }
    public var implementation: String { primitive.implementation }

    /// destination may alias first (in place).
    public func execute(first: UnsafeRawPointer, second: UnsafeRawPointer, destination: UnsafeMutableRawPointer) throws {
        try primitive.bind(.source, first)
        try primitive.bind(.secondSource, second)
        try primitive.bind(.destination, destination)
        try primitive.execute()
    }
}

/// destination = Σ scales[i] · sources[i], for tensors of equal dims (layouts may differ).
public final class Sum {
    public let scales: [Float]
    private let primitive: Primitive

    /// - Parameter destination: defaults to the first source's descriptor.
    public init(scales: [Float], sources: [MemoryDescriptor], destination: MemoryDescriptor? = nil,
                context: Context? = nil) throws {
        guard !sources.isEmpty, scales.count == sources.count else {
            throw DNNLError("sum: \(scales.count) scales for \(sources.count) sources; expected one per source, at least one")
        }
        let context = try context ?? DNNLRuntime.context
        self.scales = scales
        primitive = try Primitive(
            descriptor: OneDNN.sum(scales: scales, sources: sources, destination: destination ?? sources[0],
                                   engine: context.engine),
            arguments: sources.indices.map(Argument.multipleSource) + [.destination], context: context)
    }

    public var destination: MemoryDescriptor { primitive.memoryDescriptor(.destination) }

    /// `sources` in the order of `scales`; keep the array between calls (building it allocates).
    public func execute(sources: [UnsafeRawPointer], destination: UnsafeMutableRawPointer) throws {
        guard sources.count == scales.count else {
            throw DNNLError("sum of \(scales.count) sources executed with \(sources.count) buffers")
        }
        for (i, source) in sources.enumerated() { try primitive.bind(.multipleSource(i), source) }
        try primitive.bind(.destination, destination)
        try primitive.execute()
    }
}

/// Concatenates tensors along one axis (channels: axis 1) into a layout oneDNN chooses;
/// backward copies the slices of the gradient back to each source's layout.
///
/// Blocked layouts concatenate in place of the block: with nChw16c sources, channel counts
/// that are multiples of 16 keep the fast path (and backward needs them to be, for slices).
public final class Concatenation {
    public let axis: Int
    public let sources: [MemoryDescriptor]
    private let primitive: Primitive
    /// One reorder per source: from its slice of the destination's gradient to its layout.
    private let slices: [Reorder]

    /// - Parameter training: also build the backward (slice reorders).
    public init(sources: [MemoryDescriptor], axis: Int = 1, training: Bool = true, context: Context? = nil) throws {
        guard let first = sources.first, (0..<first.dims.count).contains(axis) else {
            throw DNNLError("concatenation on axis \(axis) of \(sources): expected at least one source with that axis")
        }
        let context = try context ?? DNNLRuntime.context
        self.axis = axis
        self.sources = sources
        var dims = first.dims
        dims[axis] = sources.reduce(0) { $0 + $1.dims[axis] }
        let destination = try MemoryDescriptor(dims: dims, dataType: first.dataType ?? .f32, format: .any)
        let primitive = try Primitive(
            descriptor: OneDNN.concat(axis: axis, sources: sources, destination: destination, engine: context.engine),
            arguments: sources.indices.map(Argument.multipleSource) + [.destination], context: context)
        self.primitive = primitive
        var slices: [Reorder] = []
        if training {
            var offset = 0
            for source in sources {
                var offsets = [Int](repeating: 0, count: dims.count)
                offsets[axis] = offset
                let slice = try primitive.memoryDescriptor(.destination).submemory(dims: source.dims, offsets: offsets)
                slices.append(try Reorder(from: slice, to: source, context: context))
                offset += source.dims[axis]
            }
        }
        self.slices = slices
    }

    /// The layout oneDNN chose for the concatenation (and its gradient).
    public var destination: MemoryDescriptor { primitive.memoryDescriptor(.destination) }
    public var implementation: String { primitive.implementation }

    /// `sources` in order; keep the array between calls (building it allocates).
    public func forward(sources buffers: [UnsafeRawPointer], destination: UnsafeMutableRawPointer) throws {
        guard buffers.count == sources.count else {
            throw DNNLError("concatenation of \(sources.count) sources executed with \(buffers.count) buffers")
        }
        for (i, buffer) in buffers.enumerated() { try primitive.bind(.multipleSource(i), buffer) }
        try primitive.bind(.destination, destination)
        try primitive.execute()
    }

    /// Writes each source's slice of `diffDestination` to `diffSources[i]` (in `sources[i]`'s layout).
    public func backward(diffDestination: UnsafeRawPointer, diffSources: [UnsafeMutableRawPointer]) throws {
        guard slices.count == sources.count else {
            throw DNNLError("concatenation was built with training: false; backward needs training: true")
        }
        guard diffSources.count == sources.count else {
            throw DNNLError("concatenation backward of \(sources.count) sources given \(diffSources.count) buffers")
        }
        // A submemory descriptor carries its offset, so every reorder reads from the base pointer.
        for (slice, diffSource) in zip(slices, diffSources) {
            try slice.execute(from: diffDestination, to: diffSource)
        }
    }
}
