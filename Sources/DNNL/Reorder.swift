/// Copies a tensor from one memory descriptor to another: a change of layout (nchw ↔
/// nChw16c, oihw ↔ the layout a convolution chose), of element type (f32 ↔ bf16, rounding
/// to nearest even), or both at once.
///
/// Build one per pair of descriptors and keep it; `execute` allocates nothing.
public final class Reorder {
    /// The layout read.
    public let source: MemoryDescriptor
    /// The layout written.
    public let destination: MemoryDescriptor
    private let primitive: Primitive

    /// - Throws: `DNNLError` when the dims differ or oneDNN cannot convert between the two.
    public init(from source: MemoryDescriptor, to destination: MemoryDescriptor, context: Context? = nil) throws {
        guard source.dims == destination.dims else {
            throw DNNLError("reorder from \(source) to \(destination): dims differ")
        }
        let context = try context ?? DNNLRuntime.context
        self.source = source
        self.destination = destination
        primitive = try Primitive(
            descriptor: OneDNN.reorder(from: source, to: destination, engine: context.engine),
            arguments: [.source, .destination], context: context)
    }

    /// The implementation oneDNN chose, e.g. "jit:uni".
    public var implementation: String { primitive.implementation }

    /// Reads `source.byteCount` bytes at `from`, writes `destination.byteCount` bytes at `to`.
    public func execute(from: UnsafeRawPointer, to: UnsafeMutableRawPointer) throws {
        try primitive.bind(.source, from)
        try primitive.bind(.destination, to)
        try primitive.execute()
    }
}
