/// Float32 memory owned by one allocation, or a view into another `Storage`.
/// A class, so layers, parameters and the flat parameter buffer share memory without copies.
public final class Storage: @unchecked Sendable {
    public let base: UnsafeMutablePointer<Real>
    public let count: Int
    private let owner: Storage?

    /// Fresh zeroed memory for `count` floats, aligned to a cache line: oneDNN's kernels
    /// store to activations with aligned non-temporal stores (Winograd's fault on anything
    /// less), and a 64-byte vector that straddles two lines costs two loads.
    public init(count: Int) {
        base = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * MemoryLayout<Real>.stride, alignment: Self.alignment)
            .bindMemory(to: Real.self, capacity: max(count, 1))
        base.initialize(repeating: 0, count: max(count, 1))
        self.count = count
        owner = nil
    }

    /// A window of `count` floats starting at `offset` in `storage`; keeps `storage` alive.
    public init(viewing storage: Storage, offset: Int, count: Int) {
        precondition(offset >= 0 && offset + count <= storage.count, "view out of bounds")
        base = storage.base + offset
        self.count = count
        owner = storage
    }

    /// Bytes: one cache line, and the width of an AVX-512 vector.
    public static let alignment = 64

    deinit { if owner == nil { base.deallocate() } }
}

/// How the elements of a 4-D activation (N, C, H, W) lie in memory.
public enum ActivationLayout: Hashable, Sendable, CustomStringConvertible {
    /// Row-major N, C, H, W: PyTorch's layout, and every tensor's unless said otherwise.
    case nchw
    /// oneDNN's nChw{b}c: (N, C/b, H, W, b), the channels of a block innermost, as its
    /// convolutions read and write them. Only where b divides C, so that the tensor holds
    /// exactly as many elements as in NCHW.
    case channelBlocks(Int)

    /// The channels of one block (1 for NCHW).
    public var block: Int {
        switch self {
        case .nchw: 1
        case .channelBlocks(let b): b
        }
    }

    public var description: String {
        switch self {
        case .nchw: "NCHW"
        case .channelBlocks(let b): "nChw\(b)c"
        }
    }
}

/// A dense float32 tensor, row-major (activations NCHW) unless `layout` says otherwise.
/// Copying a `Tensor` copies the reference, not the data.
public struct Tensor: @unchecked Sendable {
    public private(set) var shape: Shape
    public let storage: Storage
    /// Where each element of an activation lies; only 4-D activations between layers that
    /// read it (`Layer.reads`) are ever channel-blocked.
    public private(set) var layout = ActivationLayout.nchw

    public init(zeros shape: Shape) {
        self.shape = shape
        storage = Storage(count: shape.count)
    }

    public init(shape: Shape, values: [Real]) {
        precondition(values.count == shape.count, "\(values.count) values for shape \(shape)")
        self.init(zeros: shape)
        values.withUnsafeBufferPointer { storage.base.update(from: $0.baseAddress!, count: values.count) }
    }

    public init(shape: Shape, storage: Storage) {
        precondition(storage.count == shape.count, "storage of \(storage.count) for shape \(shape)")
        self.shape = shape
        self.storage = storage
    }

    /// The first `shape.count` elements of a possibly larger `storage` (a workspace slot).
    init(shape: Shape, leadingElementsOf storage: Storage) {
        precondition(storage.count >= shape.count, "storage of \(storage.count) for shape \(shape)")
        self.shape = shape
        self.storage = storage
    }

    public var count: Int { shape.count }
    public var data: UnsafeMutablePointer<Real> { storage.base }
    public var array: [Real] { Array(UnsafeBufferPointer(start: storage.base, count: shape.count)) }

    /// The same memory under another shape of equal size (NCHW only: a reshape of blocked
    /// data would scramble it).
    public func reshaped(_ newShape: Shape) -> Tensor {
        precondition(newShape.count == shape.count, "cannot reshape \(shape) to \(newShape)")
        precondition(layout == .nchw, "cannot reshape \(shape) in \(layout)")
        return Tensor(shape: newShape, leadingElementsOf: storage)
    }

    /// The same memory, its elements taken to lie in `layout` (the caller writes them so).
    public func laidOut(_ layout: ActivationLayout) -> Tensor {
        precondition(layout == .nchw || (shape.rank == 4 && shape[1] % layout.block == 0),
                     "\(layout) does not fit \(shape)")
        var t = self
        t.layout = layout
        return t
    }

    public func fill(_ value: Real) { data.update(repeating: value, count: count) }
    public func copy(from other: Tensor) {
        precondition(other.count == count, "copy of \(other.shape) into \(shape)")
        precondition(other.layout == layout, "copy of \(other.layout) data into \(layout)")
        data.update(from: other.data, count: count)
    }

    /// Returns `cached` when it already has `shape`, otherwise a new zeroed tensor stored in
    /// `cached`: how layers keep their buffers across steps without allocating. The result
    /// is in `layout` (the memory is the same whatever the layout).
    public static func reuse(_ cached: inout Tensor?, shape: Shape, layout: ActivationLayout = .nchw) -> Tensor {
        if let t = cached, t.shape == shape { return t.laidOut(layout) }
        let t = Tensor(zeros: shape)
        cached = t
        return t.laidOut(layout)
    }
}
