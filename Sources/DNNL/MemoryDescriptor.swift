/// The shape, element type and memory layout of a tensor, as oneDNN describes it.
///
/// Either a plain layout made from a `FormatTag` (`nchw`, `oihw`, …) or one a primitive
/// chose (`Convolution.forwardSource` may be nChw16c). Two descriptors are equal when
/// oneDNN says they describe the same bytes; a reorder converts between unequal ones.
public struct MemoryDescriptor: Equatable, CustomStringConvertible, @unchecked Sendable {
    let raw: RawMemoryDescriptor

    init(raw: RawMemoryDescriptor) { self.raw = raw }

    /// A descriptor of `dims` (outermost first, PyTorch's order) in `format`.
    ///
    /// - Throws: `DNNLError` when `format` does not fit the number of dimensions.
    public init(dims: [Int], dataType: DataType, format: FormatTag) throws {
        raw = try OneDNN.memoryDescriptor(dims: dims, dataType: dataType, format: format)
    }

    /// A 4-D activation descriptor (N, C, H, W) in `format`.
    public static func activations(_ n: Int, _ c: Int, _ h: Int, _ w: Int, _ dataType: DataType,
                                   _ format: FormatTag = .nchw) throws -> MemoryDescriptor {
        try MemoryDescriptor(dims: [n, c, h, w], dataType: dataType, format: format)
    }

    /// The same dims and layout with another element type (oneDNN's layouts do not depend
    /// on it), e.g. the f32 twin of a bf16 descriptor. Only for plain layouts and the
    /// blocked layouts a reorder can target; compare with the primitive's own descriptor.
    public func with(dataType: DataType) -> MemoryDescriptor {
        MemoryDescriptor(raw: OneDNN.changingDataType(raw, to: dataType))
    }

    /// A descriptor of the block of `dims` starting at `offsets` inside this tensor, with
    /// this tensor's strides (e.g. a channel slice for concat's backward). Blocked layouts
    /// need offsets on the blocked axis that are multiples of the block.
    public func submemory(dims: [Int], offsets: [Int]) throws -> MemoryDescriptor {
        MemoryDescriptor(raw: try OneDNN.submemory(of: raw, dims: dims, offsets: offsets))
    }

    /// The logical dimensions, outermost first (N, C, H, W for activations).
    public var dims: [Int] { OneDNN.dims(raw) }

    /// The element type (nil only for an empty descriptor).
    public var dataType: DataType? { OneDNN.dataType(raw) }

    /// Bytes a buffer for this descriptor needs, padding of blocked layouts included
    /// (C = 3 in nChw16c takes 16 channels' room).
    public var byteCount: Int { OneDNN.byteCount(raw) }

    /// Whether this is the empty descriptor (an argument the primitive does not use).
    public var isEmpty: Bool { OneDNN.isZero(raw) }

    /// oneDNN's name of the layout: "abcd" is nchw, "aBcd16b" nChw16c, "ABcd16b16a" a
    /// weights layout blocked on both O and I; "any" before a primitive chose.
    public var layout: String { OneDNN.layoutName(raw) }

    public static func == (lhs: MemoryDescriptor, rhs: MemoryDescriptor) -> Bool { OneDNN.equal(lhs.raw, rhs.raw) }

    /// E.g. "bf16 [64, 64, 24, 24] aBcd16b".
    public var description: String {
        isEmpty ? "empty" : "\(dataType.map { "\($0)" } ?? "?") \(dims) \(layout)"
    }
}
