import Foundation
import NN

/// Sums a network's gradients across ranks during backward: the flat gradient buffer is cut
/// into buckets of about `bucketBytes` from its end (backward finishes the last layers
/// first), and each bucket's non-blocking all-reduce starts as soon as the root's children
/// holding it are done, overlapping the rest of backward.
public final class GradientSynchronizer {
    public let communicator: any Communicator
    /// Each bucket: its range in the gradient buffer, and the root child index after whose
    /// backward all of it is final.
    public let buckets: [(range: Range<Int>, readyAfterChild: Int)]
    private let network: Network
    private var nextBucket = 0

    public init(network: Network, communicator: any Communicator, bucketBytes: Int) {
        self.network = network
        self.communicator = communicator
        var buckets: [(Range<Int>, Int)] = []
        var end = network.parameterCount, readyAfter = Int.max
        for p in network.parameters.indices.reversed() {
            readyAfter = min(readyAfter, network.parameterRootChild[p])
            let start = network.parameterOffsets[p]
            if (end - start) * MemoryLayout<Real>.size >= bucketBytes || p == 0 {
                buckets.append((start..<end, readyAfter))
                end = start
                readyAfter = Int.max
            }
        }
        self.buckets = buckets
    }

    /// Bytes summed per step (each rank's contribution).
    public var bytesPerStep: Int { network.parameterCount * MemoryLayout<Real>.size }

    /// Hooks into the root's backward; call once.
    public func attach() {
        guard let root = network.root as? Sequential, communicator.size > 1 else { return }
        root.didFinishBackward = { [unowned self] child in self.childFinished(child) }
    }

    /// Before a step's backward.
    public func beginStep() { nextBucket = 0 }

    private func childFinished(_ child: Int) {
        while nextBucket < buckets.count && child <= buckets[nextBucket].readyAfterChild {
            let range = buckets[nextBucket].range
            communicator.startSum(UnsafeMutableBufferPointer(start: network.gradientStorage.base + range.lowerBound, count: range.count),
                                  slot: nextBucket)
            nextBucket += 1
        }
        communicator.progress()
    }

    /// After backward: starts what is left (a root that is not a `Sequential`) and waits for all.
    public func finishStep() {
        childFinished(-1)
        communicator.waitAll()
    }
}

extension Communicator {
    /// A hash of every state_dict key and shape, equal on ranks that built the same model.
    public func sameModelEverywhere(_ network: Network) -> Bool {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for (key, value) in network.stateDict {
            var text = key
            if case let .tensor(t) = value { text += "\(t.shape)" }
            for byte in text.utf8 {
                h ^= UInt64(byte)
                h = h &* 0x100_0000_01B3
            }
        }
        return allAgree(Int64(bitPattern: h))
    }

    /// Copies rank 0's parameters, running statistics and batch counts to every rank.
    public func broadcastState(_ network: Network) {
        broadcast(UnsafeMutableRawBufferPointer(start: network.parameterStorage.base,
                                                count: network.parameterCount * MemoryLayout<Real>.size), root: 0)
        for (_, bn) in network.batchNorms {
            for t in [bn.runningMean, bn.runningVar] {
                broadcast(UnsafeMutableRawBufferPointer(start: t.data, count: t.count * MemoryLayout<Real>.size), root: 0)
            }
            withUnsafeMutableBytes(of: &bn.numBatchesTracked) { broadcast($0, root: 0) }
        }
    }

    /// Replaces each rank's running statistics by their mean over the ranks (batch norm
    /// without synchronization keeps per-rank statistics while training).
    public func averageRunningStatistics(_ network: Network) {
        guard size > 1 else { return }
        for (_, bn) in network.batchNorms {
            for t in [bn.runningMean, bn.runningVar] {
                sum(UnsafeMutableBufferPointer(start: t.data, count: t.count))
                for i in 0..<t.count { t.data[i] /= Real(size) }
            }
        }
    }
}
