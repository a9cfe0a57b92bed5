import Foundation
import NN

/// What data parallelism needs from the processes of one job: sums, broadcasts and a way
/// to stop them all. `MPICommunicator` is the real one; `SingleProcess` is one process
/// alone, where every collective is the identity.
public protocol Communicator: AnyObject, BatchStatisticsReducer {
    var rank: Int { get }
    var size: Int { get }
    /// Ranks on this host, for splitting its cores.
    var localSize: Int { get }

    /// Replaces `values` by their sum over all ranks.
    func sum(_ values: UnsafeMutableBufferPointer<Real>)
    /// The same for float64 statistics and metrics (whatever `Real` is in this build).
    func sum(doubles values: UnsafeMutableBufferPointer<Double>)
    func minimum(_ values: UnsafeMutableBufferPointer<Int64>)
    /// Copies rank `root`'s `values` to every rank.
    func broadcast(_ values: UnsafeMutableRawBufferPointer, root: Int)

    /// Starts summing `values` across ranks without waiting, as request number `slot`
    /// (slots are reused from step to step, so nothing is allocated).
    func startSum(_ values: UnsafeMutableBufferPointer<Real>, slot: Int)
    /// The same for 16-bit floats in `format` (bf16 or fp16), each combine adding in float32.
    func startSum(halves: UnsafeMutableBufferPointer<UInt16>, format: GradientTransport, slot: Int)
    /// Lets started sums progress while the caller computes.
    func progress()
    /// Waits until the first `count` sums started since the last `waitAll` are complete.
    func waitForSums(_ count: Int)
    /// Waits until every started sum is complete.
    func waitAll()
    func barrier()
    /// Ends every process of the job at once (an error no other rank can know of).
    func abort(code: Int32) -> Never
}

extension Communicator {
    public var isRoot: Bool { rank == 0 }

    public func sumAcrossReplicas(_ values: UnsafeMutableBufferPointer<Double>) { sum(doubles: values) }

    /// Whether every rank passed `value`.
    public func allAgree(_ value: Int64) -> Bool {
        var pair = [value, -value]
        pair.withUnsafeMutableBufferPointer { minimum($0) }
        return pair[0] == -pair[1]
    }
}

/// One process on its own: every collective leaves its data as it is.
public final class SingleProcess: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public var localSize: Int { 1 }
    public func sum(_ values: UnsafeMutableBufferPointer<Real>) {}
    public func sum(doubles values: UnsafeMutableBufferPointer<Double>) {}
    public func minimum(_ values: UnsafeMutableBufferPointer<Int64>) {}
    public func broadcast(_ values: UnsafeMutableRawBufferPointer, root: Int) {}
    public func startSum(_ values: UnsafeMutableBufferPointer<Real>, slot: Int) {}
    public func startSum(halves: UnsafeMutableBufferPointer<UInt16>, format: GradientTransport, slot: Int) {}
    public func progress() {}
    public func waitForSums(_ count: Int) {}
    public func waitAll() {}
    public func barrier() {}
    public func abort(code: Int32) -> Never { exit(code) }
}
