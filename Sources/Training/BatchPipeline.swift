import Datasets
import Foundation
import Tensor

/// Assembles the batches of one pass over a split on a background thread, one batch ahead
/// of the consumer, into two alternating buffers (so preparing batch k+1 overlaps training
/// on batch k, and no step allocates).
public final class BatchPipeline: @unchecked Sendable {
    /// One prepared batch: valid until the next call to `next()`.
    public struct Batch {
        public let images: Tensor
        public let labels: UnsafeBufferPointer<Int32>
    }

    private final class Slot {
        let full: Tensor
        var partial: Tensor?
        let labels: UnsafeMutablePointer<Int32>
        let free = DispatchSemaphore(value: 1), ready = DispatchSemaphore(value: 0)
        var count = 0
        init(capacity: Int, image: Shape) {
            full = Tensor(zeros: Shape(capacity, image[0], image[1], image[2]))
            labels = .allocate(capacity: capacity)
        }
        deinit { labels.deallocate() }

        /// A tensor of `n` images: the full buffer, or (for a shorter batch) its own.
        func images(_ n: Int) -> Tensor {
            if n == full.shape[0] { return full }
            return Tensor.reuse(&partial, shape: full.shape.withBatch(n))
        }
    }

    private let assembler: BatchAssembler
    private let slots: [Slot]
    private let capacity: Int
    private var order: [Int] = []
    private var batches: [Range<Int>] = []
    private var consumed = 0
    private var seed: UInt64 = 0
    private var current: Slot?

    /// `capacity`: the most images one batch can hold.
    public init(assembler: BatchAssembler, capacity: Int) {
        self.assembler = assembler
        self.capacity = capacity
        slots = [Slot(capacity: capacity, image: assembler.imageShape), Slot(capacity: capacity, image: assembler.imageShape)]
    }

    /// Starts preparing `batches` (ranges of positions in `order`, which holds example
    /// indices); `seed` and an example's position decide its augmentation.
    public func start(order: [Int], batches: [Range<Int>], seed: UInt64) {
        finish()
        precondition(batches.allSatisfy { $0.count <= capacity && $0.count > 0 }, "batch larger than the pipeline's capacity")
        self.order = order
        self.batches = batches
        self.seed = seed
        consumed = 0
        let thread = Thread { [unowned self] in self.produce() }
        thread.stackSize = 1 << 20
        thread.start()
    }

    private func produce() {
        for (b, range) in batches.enumerated() {
            let slot = slots[b % 2]
            slot.free.wait()
            slot.count = range.count
            order[range].withUnsafeBufferPointer { indices in
                assembler.assemble(indices, firstPosition: range.lowerBound, into: slot.images(range.count), labels: slot.labels,
                                   seed: seed)
            }
            slot.ready.signal()
        }
    }

    /// The next batch, or nil after the last one.
    public func next() -> Batch? {
        release()
        guard consumed < batches.count else { return nil }
        let slot = slots[consumed % 2]
        slot.ready.wait()
        consumed += 1
        current = slot
        return Batch(images: slot.images(slot.count), labels: UnsafeBufferPointer(start: slot.labels, count: slot.count))
    }

    /// Lets a producer still running finish, so that the pipeline can start again.
    public func finish() {
        release()
        while consumed < batches.count {
            let slot = slots[consumed % 2]
            slot.ready.wait()
            slot.free.signal()
            consumed += 1
        }
    }

    private func release() {
        current?.free.signal()
        current = nil
    }
}
