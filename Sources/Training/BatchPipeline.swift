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
        init(batchSize: Int, image: Shape) {
            full = Tensor(zeros: Shape(batchSize, image[0], image[1], image[2]))
            labels = .allocate(capacity: batchSize)
        }
        deinit { labels.deallocate() }

        /// A tensor of `n` images: the full buffer, or (for a last, shorter batch) its own.
        func images(_ n: Int) -> Tensor {
            if n == full.shape[0] { return full }
            return Tensor.reuse(&partial, shape: full.shape.withBatch(n))
        }
    }

    private let assembler: BatchAssembler
    private let slots: [Slot]
    private let batchSize: Int
    private var consumed = 0
    private var order: [Int] = []
    private var batches = 0
    private var seed: UInt64 = 0
    private var thread: Thread?
    private var current: Slot?

    public init(assembler: BatchAssembler, batchSize: Int) {
        self.assembler = assembler
        self.batchSize = batchSize
        slots = [Slot(batchSize: batchSize, image: assembler.imageShape), Slot(batchSize: batchSize, image: assembler.imageShape)]
    }

    /// Starts preparing the batches of `order` (example indices) from batch `first` on;
    /// `seed` derives each batch's augmentation generator, so a batch is the same whichever
    /// thread or run prepares it.
    public func start(order: [Int], firstBatch first: Int = 0, seed: UInt64) {
        finish()
        self.order = order
        self.seed = seed
        batches = (order.count + batchSize - 1) / batchSize
        consumed = first
        let thread = Thread { [unowned self] in self.produce(from: first) }
        thread.stackSize = 1 << 20
        self.thread = thread
        thread.start()
    }

    private func produce(from first: Int) {
        guard first < batches else { return }
        for b in first..<batches {
            let slot = slots[b % 2]
            slot.free.wait()
            let range = (b * batchSize)..<min((b + 1) * batchSize, order.count)
            slot.count = range.count
            var rng = SeededGenerator(seed: mix(seed, UInt64(b)))
            order[range].withUnsafeBufferPointer { indices in
                assembler.assemble(indices, into: slot.images(range.count), labels: slot.labels, rng: &rng)
            }
            slot.ready.signal()
        }
    }

    /// The next batch, or nil after the last one.
    public func next() -> Batch? {
        if let current {
            current.free.signal()
            self.current = nil
        }
        guard consumed < batches else { return nil }
        let slot = slots[consumed % 2]
        slot.ready.wait()
        consumed += 1
        current = slot
        return Batch(images: slot.images(slot.count), labels: UnsafeBufferPointer(start: slot.labels, count: slot.count))
    }

    /// Lets a producer still running finish, so that the pipeline can start again.
    public func finish() {
        if let current {
            current.free.signal()
            self.current = nil
        }
        while consumed < batches {
            let slot = slots[consumed % 2]
            slot.ready.wait()
            slot.free.signal()
            consumed += 1
        }
    }
}
