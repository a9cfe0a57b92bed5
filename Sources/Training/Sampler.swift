import Datasets
import Tensor

/// The order in which one epoch visits a split, and each rank's share of every global
/// batch. The order is a permutation drawn from (seed, epoch), or file order; global batch
/// k is positions k·B … k·B+B−1 of it (the last may be shorter), cut into `worldSize`
/// contiguous local batches whose sizes differ by at most one.
public struct EpochSampler: Sendable {
    public let count: Int, batchSize: Int, seed: UInt64, shuffle: Bool
    public let worldSize: Int

    public init(count: Int, batchSize: Int, seed: UInt64, shuffle: Bool, worldSize: Int = 1) {
        precondition(batchSize >= worldSize, "a global batch of \(batchSize) cannot feed \(worldSize) ranks")
        self.count = count
        self.batchSize = batchSize
        self.seed = seed
        self.shuffle = shuffle
        self.worldSize = worldSize
    }

    /// Global batches per epoch. A last batch smaller than the number of ranks would leave a
    /// rank empty-handed, and is skipped.
    public var batchesPerEpoch: Int {
        let remainder = count % batchSize
        return count / batchSize + (remainder >= worldSize ? 1 : 0)
    }

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

    /// Positions in `order(epoch:)` of global batch `batch`.
    public func range(ofBatch batch: Int) -> Range<Int> {
        (batch * batchSize)..<min((batch + 1) * batchSize, count)
    }

    /// Positions of `rank`'s share of global batch `batch`.
    public func range(ofBatch batch: Int, rank: Int) -> Range<Int> {
        shard(range(ofBatch: batch), rank: rank, of: worldSize)
    }
}

/// `rank`'s contiguous part of `range` split `parts` ways, sizes differing by at most one
/// (the first `range.count % parts` parts have one more).
public func shard(_ range: Range<Int>, rank: Int, of parts: Int) -> Range<Int> {
    let base = range.count / parts, extra = range.count % parts
    let start = range.lowerBound + rank * base + min(rank, extra)
    return start..<(start + base + (rank < extra ? 1 : 0))
}
