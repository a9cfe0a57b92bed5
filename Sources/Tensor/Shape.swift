/// The dimensions of a tensor, up to rank 4, stored inline so that building or comparing
/// a shape inside a training step never allocates.
public struct Shape: Hashable, Sendable, CustomStringConvertible {
    public let rank: Int
    private var d0 = 1, d1 = 1, d2 = 1, d3 = 1

    public init(_ a: Int) { rank = 1; d0 = a }
    public init(_ a: Int, _ b: Int) { rank = 2; d0 = a; d1 = b }
    public init(_ a: Int, _ b: Int, _ c: Int) { rank = 3; d0 = a; d1 = b; d2 = c }
    public init(_ a: Int, _ b: Int, _ c: Int, _ d: Int) { rank = 4; d0 = a; d1 = b; d2 = c; d3 = d }

    /// A shape from an array of 1 to 4 dimensions (a scalar is stored as rank 1, size 1).
    public init(_ dims: [Int]) {
        precondition(dims.count <= 4, "Shape supports rank 4 at most, got \(dims)")
        rank = max(dims.count, 1)
        if dims.count > 0 { d0 = dims[0] }
        if dims.count > 1 { d1 = dims[1] }
        if dims.count > 2 { d2 = dims[2] }
        if dims.count > 3 { d3 = dims[3] }
    }

    public subscript(axis: Int) -> Int {
        precondition(axis >= 0 && axis < rank, "axis \(axis) out of range for rank \(rank)")
        switch axis {
        case 0: return d0
        case 1: return d1
        case 2: return d2
        default: return d3
        }
    }

    public var dims: [Int] { (0..<rank).map { self[$0] } }
    public var count: Int { d0 * d1 * d2 * d3 }
    /// Elements per item of the leading (batch) axis.
    public var itemCount: Int { count / d0 }

    /// The same shape with a different leading (batch) dimension.
    public func withBatch(_ n: Int) -> Shape {
        var s = self
        s.d0 = n
        return s
    }

    public var description: String { dims.map(String.init).joined(separator: "×") }
}
