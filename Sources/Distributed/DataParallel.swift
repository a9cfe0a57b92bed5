import Foundation
import NN

/// Sums a network's gradients across ranks during backward. The flat gradient buffer is cut
/// into buckets from its end (backward finishes the last layers first): the first bucket of
/// at most `firstBucketBytes`, so that communication starts early, then buckets of about
/// `bucketBytes`. A bucket's non-blocking all-reduce starts as soon as every parameter in it
/// is final (`Network.gradientsReady`, reported by every container), overlapping the rest of
/// backward. Every rank starts the buckets in the same order, since backward runs alike.
public final class GradientSynchronizer {
    public let communicator: any Communicator
    /// Each bucket's range in the gradient buffer, in the order they fill during backward.
    public let buckets: [Range<Int>]
    /// PyTorch DDP's first bucket is 1 MiB for the same reason.
    public static let firstBucketBytes = 1 << 20
    private let network: Network
    /// The bucket of each parameter, and how many parameters each bucket holds.
    private let bucketOfParameter: [Int], parametersInBucket: [Int]
    /// Per bucket, the parameters not yet final in this step's backward.
    private var pending: [Int]
    private var started: [Bool]
    /// Seconds the last `finishStep` waited for the first bucket started, then for the rest.
    public private(set) var lastWait = (firstBucket: 0.0, lastBucket: 0.0)
    /// The precision gradients travel in, and for 16-bit transport their 16-bit copy.
    public let transport: GradientTransport
    private let halves: UnsafeMutableBufferPointer<UInt16>

    public init(network: Network, communicator: any Communicator, bucketBytes: Int, transport: GradientTransport = .full) {
        precondition(GradientTransport.isAvailable(transport), "\(transport) gradient transport needs the float32 build")
        self.network = network
        self.communicator = communicator
        self.transport = transport
        halves = .allocate(capacity: transport == .full || communicator.size == 1 ? 0 : network.parameterCount)
        var buckets: [Range<Int>] = [], bucketOfParameter = Array(repeating: 0, count: network.parameters.count)
        var counts: [Int] = []
        var end = network.parameterCount, members = 0
        for p in network.parameters.indices.reversed() {
            bucketOfParameter[p] = buckets.count
            members += 1
            let start = network.parameterOffsets[p]
            let limit = buckets.isEmpty ? min(bucketBytes, Self.firstBucketBytes) : bucketBytes
            if (end - start) * MemoryLayout<Real>.size >= limit || p == 0 {
                buckets.append(start..<end)
                counts.append(members)
                end = start
                members = 0
            }
        }
        self.buckets = buckets
        self.bucketOfParameter = bucketOfParameter
        parametersInBucket = counts
        pending = counts
        started = Array(repeating: false, count: buckets.count)
    }

    deinit { halves.deallocate() }

    /// Bytes summed per step (each rank's contribution).
    public var bytesPerStep: Int { network.parameterCount * transport.bytesPerElement }

    /// Hooks into the network's backward; call once.
    public func attach() {
        guard communicator.size > 1 else { return }
        network.gradientsReady = { [unowned self] parameters in self.parametersReady(parameters) }
    }

    /// Before a step's backward.
    public func beginStep() {
        for b in buckets.indices {
            pending[b] = parametersInBucket[b]
            started[b] = false
        }
    }

    private func parametersReady(_ parameters: Range<Int>) {
        for p in parameters {
            let b = bucketOfParameter[p]
            pending[b] -= 1
            if pending[b] == 0 { start(b) }
        }
        communicator.progress()
    }

    private func start(_ bucket: Int) {
        let range = buckets[bucket], gradients = network.gradientStorage.base + range.lowerBound
        if transport == .full {
            communicator.startSum(UnsafeMutableBufferPointer(start: gradients, count: range.count), slot: bucket)
        } else {
            let narrow = halves.baseAddress! + range.lowerBound
            transport.narrow(gradients, into: narrow, count: range.count)
            communicator.startSum(halves: UnsafeMutableBufferPointer(start: narrow, count: range.count), format: transport, slot: bucket)
        }
        started[bucket] = true
    }

    /// After backward: starts any bucket not yet started (in bucket order) and waits for all.
    public func finishStep() {
        guard communicator.size > 1 else { return }
        for b in buckets.indices where !started[b] { start(b) }
        let t0 = now()
        communicator.waitForSums(1)
        let t1 = now()
        communicator.waitAll()
        lastWait = (t1 - t0, now() - t1)
        if transport != .full { transport.widen(halves.baseAddress!, into: network.gradientStorage.base, count: network.parameterCount) }
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

    /// Copies rank 0's parameters and state-dict buffers (running statistics, batch counts)
    /// to every rank; random generators stay each rank's own.
    public func broadcastState(_ network: Network) {
        broadcast(UnsafeMutableRawBufferPointer(start: network.parameterStorage.base,
                                                count: network.parameterCount * MemoryLayout<Real>.size), root: 0)
        for (_, buffer) in network.buffers {
            switch buffer.value {
            case let .statistic(t, _):
                broadcast(UnsafeMutableRawBufferPointer(start: t.data, count: t.count * MemoryLayout<Real>.size), root: 0)
            case let .counter(get, set):
                var value = get()
                withUnsafeMutableBytes(of: &value) { broadcast($0, root: 0) }
                set(value)
            case .generator: break
            }
        }
    }

    /// Replaces each rank's running statistics by their mean over the ranks (batch norm
    /// without synchronization keeps per-rank statistics while training).
    public func averageRunningStatistics(_ network: Network) {
        guard size > 1 else { return }
        for t in network.statistics {
            sum(UnsafeMutableBufferPointer(start: t.data, count: t.count))
            for i in 0..<t.count { t.data[i] /= Real(size) }
        }
    }
}

/// Seconds on a monotonic clock.
public func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
