import AllocationCounter
import Models
import Optim
import XCTest

/// Once warmed up at a shape, a training step (forward, loss, backward, the gradient's norm
/// and clipping, optimizer update) allocates nothing: every layer reuses its buffers. The
/// counter sees the step's threads: the one that runs it and its OpenMP team.
///
/// Measured with one OpenBLAS thread: OpenBLAS's threaded GEMM makes small allocations of
/// its own (50–140 per ResNet/GoogLeNet step with 2 threads), which are not ours to remove;
/// so do its SkylakeX and Cooperlake kernels on one thread, and oneDNN 2.6's
/// `dnnl_primitive_execute` (it copies its arguments into a map on every call): the counter
/// leaves out calls made from inside those libraries, so the test holds on every kernel
/// and engine and still sees every allocation of ours.
/// Release builds only: an unoptimized build boxes values that the optimizer keeps on the stack.
final class AllocationTests: XCTestCase {
    private func allocationsInSecondStep(_ name: String, side: Int, batch: Int) throws -> Int {
        let network = try ModelZoo.make(name)
        network.initialize(.xavier, seed: 1)
        let images = Tensor(zeros: Shape(batch, 1, side, side))
        var rng = SeededGenerator(seed: 2)
        for i in 0..<images.count { images.data[i] = rng.uniform(0, 1) }
        let labels = (0..<batch).map { Int32($0 % 10) }
        let loss = SoftmaxCrossEntropy()
        let sgd = SGD(values: network.parameterStorage, gradients: network.gradientStorage,
                      learningRate: 0.01, momentum: 0.9, weightDecay: 1e-4)
        var allocations = 0
        for step in 0..<2 {
            if step == 1 { allocation_counter_start() }
            labels.withUnsafeBufferPointer { labels in
                network.zeroGradients()
                let logits = network.forward(images, mode: .training)
                let result = loss.evaluate(logits: logits, labels: labels)
                network.backward(images, result.gradient)
                let norm = network.gradientStorage.euclideanNorm()
                GradientClipping.clip(network.gradientStorage, norm: norm, to: norm / 2)
                sgd.step()
            }
            if step == 1 { allocations = allocation_counter_stop() }
        }
        return allocations
    }

    func testCounterSeesAnAllocation() {
        allocation_counter_start()
        let array = [Int](repeating: 1, count: 1000)
        let counted = allocation_counter_stop()
        XCTAssertEqual(array.count, 1000)
        XCTAssertGreaterThan(counted, 0, "the counter must see Swift's allocations")
    }

    /// A parallel loop's allocations count on every thread of the team; those of a thread
    /// outside the step (one Foundation starts, say) do not.
    func testCounterSeesEveryThreadOfTheStepAndNoOther() {
        let threads = Parallel.threads
        Parallel.threads = 2
        defer { Parallel.threads = threads }
        // Each index allocates and keeps the block (an allocation freed unused may be optimized away).
        let blocks = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: 2)
        defer { blocks.deallocate() }
        let allocateOnePerIndex: Parallel.Kernel = { arguments, begin, end in
            let blocks = Parallel.arguments(arguments, as: UnsafeMutablePointer<UnsafeMutableRawPointer?>.self)
            for i in begin..<end { blocks[i] = malloc(16) }
        }
        Parallel.forEach(2, grain: 1, blocks, allocateOnePerIndex)  // the first loop at 2 threads starts the team
        free(blocks[0]); free(blocks[1])
        allocation_counter_start()
        Parallel.forEach(2, grain: 1, blocks, allocateOnePerIndex)
        let inLoop = allocation_counter_stop()
        free(blocks[0]); free(blocks[1])
        XCTAssertEqual(inLoop, 2, "one allocation on each of the loop's two threads")

        let started = DispatchSemaphore(value: 0), allocate = DispatchSemaphore(value: 0), done = DispatchSemaphore(value: 0)
        let slot = Int(bitPattern: blocks)  // a plain address crosses into the thread's Sendable closure
        let stray = Thread {
            started.signal()
            allocate.wait()
            UnsafeMutablePointer<UnsafeMutableRawPointer?>(bitPattern: slot)![0] = malloc(16)
            done.signal()
        }
        stray.start()
        started.wait()
        allocation_counter_start()
        allocate.signal()
        done.wait()
        XCTAssertEqual(allocation_counter_stop(), 0, "a thread outside the step is not counted")
        XCTAssertNotNil(blocks[0], "the stray thread allocated")
        free(blocks[0])
    }

    func testTrainingStepsAllocateNothingOnceWarm() throws {
        #if DEBUG
        throw XCTSkip("allocation counts are meaningful in release builds (swift test -c release)")
        #endif
        for (engine, algorithm) in ConvolutionEngine.configurations {
            for (name, side) in [("lenet-bn", 28), ("resnet18", 32), ("googlenet", 32), ("densenet", 32), ("nin", 96),
                                 ("se-resnet18", 32), ("cifar-cnn", 32),
                                 ("resnet50", 32), ("xception", 32), ("mobilenet-v3-small", 32), ("efficientnet-b0", 32),
                                 ("efficientnet-v2-s", 32), ("inception-v3", 75)] {
                let count = try ConvolutionEngine.using(engine, algorithm: algorithm) { try allocationsInSecondStep(name, side: side, batch: 2) }
                XCTAssertEqual(count, 0, "\(name) (\(engine), \(algorithm))")
            }
        }
    }
}
