import Tensor

/// The order in which one epoch visits a split: a permutation drawn from (seed, epoch), or
/// file order, cut into batches of `batchSize` (the last one may be smaller).
public struct EpochSampler: Sendable {
    public let count: Int, batchSize: Int, seed: UInt64, shuffle: Bool

    public init(count: Int, batchSize: Int, seed: UInt64, shuffle: Bool) {
        self.count = count
        self.batchSize = batchSize
        self.seed = seed
        self.shuffle = shuffle
    }

    public var batchesPerEpoch: Int { (count + batchSize - 1) / batchSize }

    /// Example indices in visiting order for `epoch` (0-based).
    public func order(epoch: Int) -> [Int] {
        var indices = Array(0..<count)
        guard shuffle else { return indices }
        var rng = SeededGenerator(seed: mix(seed, UInt64(epoch), 0x5A3F))
        for i in stride(from: count - 1, to: 0, by: -1) {
            indices.swapAt(i, Int(rng.next() % UInt64(i + 1)))
        }
        return indices
    }

    /// The index range inside `order(epoch:)` of batch `batch`.
    public func range(ofBatch batch: Int) -> Range<Int> {
        (batch * batchSize)..<min((batch + 1) * batchSize, count)
    }
}

/// Combines seeds and counters into one seed (for per-epoch and per-batch generators).
public func mix(_ values: UInt64...) -> UInt64 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for v in values {
        h ^= v &+ 0x9E37_79B9_7F4A_7C15 &+ (h << 6) &+ (h >> 2)
        h = h &* 0x100_0000_01B3
    }
    return h
}
