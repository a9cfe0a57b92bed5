import Checkpoint
import Datasets
import Foundation
import HDF5
import Models
import Optim
import Training
import XCTest

private func parameters(_ network: Network) -> [Real] {
    Array(UnsafeBufferPointer(start: network.parameterStorage.base, count: network.parameterCount))
}

final class TrainerTests: XCTestCase {
    private let synthetic = Synthetic.splits(train: 512, test: 128, classes: 10, channels: 1, side: 28, seed: 3)

    private func trainer(_ model: String, _ config: TrainingConfig, splits: Splits? = nil, initFrom: String? = nil) throws -> Trainer {
        let splits = splits ?? synthetic
        let network = try ModelZoo.make(model)
        network.initialize(config.initialization, seed: config.seed)
        if let initFrom { try ModelWeights.load(into: network, from: initFrom) }
        return Trainer(network: network, config: config, splits: splits, preprocessing: Preprocessing(side: 28))
    }

    final class Recorder: TrainingObserver {
        var epochs: [EpochRecord] = [], final: EpochRecord?, steps = 0
        func stepFinished(_ progress: StepProgress) { steps += 1 }
        func epochFinished(_ record: EpochRecord) { epochs.append(record) }
        func runFinished(_ record: EpochRecord) { final = record }
    }

    func testTrainingReducesTheLossOnASyntheticProblem() throws {
        var config = TrainingConfig()
        config.epochs = 4
        config.batchSize = 64
        config.learningRate = 0.5
        let t = try trainer("lenet-bn", config)
        let recorder = Recorder()
        t.observers.append(recorder)
        let final = try t.run()
        XCTAssertEqual(recorder.epochs.count, 4)
        XCTAssertEqual(recorder.steps, 4 * 8)
        XCTAssertEqual(final.step, 32)
        XCTAssertLessThan(recorder.epochs.last!.trainLoss, recorder.epochs.first!.trainLoss / 3)
        XCTAssertLessThan(recorder.epochs.last!.testLoss, recorder.epochs.first!.testLoss)
        XCTAssertGreaterThan(final.testAccuracy, 0.9, "synthetic classes are prototypes plus noise")
    }

    func testMaxStepsEndsMidEpochAndStillEvaluates() throws {
        var config = TrainingConfig()
        config.epochs = 3
        config.batchSize = 100
        config.maxSteps = 7
        let t = try trainer("lenet", config)
        let recorder = Recorder()
        t.observers.append(recorder)
        let final = try t.run()
        XCTAssertEqual(t.step, 7)
        XCTAssertEqual(recorder.epochs.count, 1, "epoch 1 has 6 steps; the 7th ends the run inside epoch 2")
        XCTAssertEqual(final.step, 7)
        XCTAssertTrue(final.testAccuracy.isFinite)
    }

    func testTwoRunsFromTheSameWeightsAreBitIdentical() throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("init-\(UUID().uuidString).h5").path
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let source = try ModelZoo.make("lenet-bn")
        source.initialize(.xavier, seed: 11)
        try ModelWeights.save(source, to: scratch)

        var config = TrainingConfig()
        config.shuffle = false
        config.maxSteps = 5
        config.batchSize = 32
        config.momentum = 0.9
        config.seed = 1
        let a = try trainer("lenet-bn", config, initFrom: scratch)
        config.seed = 2  // a different seed for everything else: the file decides the weights
        let b = try trainer("lenet-bn", config, initFrom: scratch)
        try a.run()
        try b.run()
        XCTAssertEqual(parameters(a.network).map(\.bitPattern), parameters(b.network).map(\.bitPattern))
        XCTAssertNotEqual(parameters(a.network), parameters(source), "training moved the weights")

        config.shuffle = true
        let c = try trainer("lenet-bn", config, initFrom: scratch)
        try c.run()
        XCTAssertNotEqual(parameters(c.network), parameters(a.network), "another order gives other weights")
    }

    func testADivergingRunStopsWithAClearError() throws {
        var config = TrainingConfig()
        config.learningRate = Real.greatestFiniteMagnitude / 4
        config.batchSize = 64
        config.maxSteps = 20
        XCTAssertThrowsError(try trainer("lenet", config).run()) { error in
            XCTAssertTrue("\(error)".contains("lower the learning rate"), "\(error)")
        }
    }

    /// With a learning rate of a quarter of the largest float, LeNet-BN's second update
    /// overflows the weights although its gradient was finite, and a checkpoint is due right
    /// after it: the run stops there, and every checkpoint it was asked for saw finite weights
    /// and statistics. (Without the check before checkpoints, the one of step 2 is asked for
    /// with infinite weights and this test fails.)
    func testNoCheckpointIsAskedForWithNonFiniteWeights() throws {
        var config = TrainingConfig()
        config.learningRate = Real.greatestFiniteMagnitude / 4
        config.batchSize = 64
        config.maxSteps = 20
        let t = try trainer("lenet-bn", config)
        t.checkpointEvery = 1
        var checkpoints: [Int] = []
        t.onCheckpoint = { t in
            checkpoints.append(t.step)
            XCTAssertTrue(t.network.parameterStorage.euclideanNorm().isFinite, "weights at step \(t.step)")
            for (key, bn) in t.network.batchNorms {
                XCTAssertTrue(bn.runningMean.storage.euclideanNorm().isFinite && bn.runningVar.storage.euclideanNorm().isFinite, "\(key) at step \(t.step)")
            }
        }
        XCTAssertThrowsError(try t.run()) { error in
            guard let diverged = error as? Trainer.DivergedError else { return XCTFail("\(error)") }
            XCTAssertTrue("\(diverged)".hasPrefix("non-finite "), "\(diverged)")
            XCTAssertEqual(checkpoints, Array(1..<diverged.step), "one checkpoint per step before the one that diverged")
        }
    }
}

final class SamplerAndScheduleTests: XCTestCase {
    func testEpochOrderIsAPermutationFromSeedAndEpoch() {
        let sampler = EpochSampler(count: 10, batchSize: 4, seed: 7, shuffle: true)
        XCTAssertEqual(sampler.batchesPerEpoch, 3)
        XCTAssertEqual(sampler.range(ofBatch: 2), 8..<10)
        XCTAssertEqual(sampler.order(epoch: 0).sorted(), Array(0..<10))
        XCTAssertEqual(sampler.order(epoch: 1), sampler.order(epoch: 1))
        XCTAssertNotEqual(sampler.order(epoch: 0), sampler.order(epoch: 1))
        XCTAssertNotEqual(sampler.order(epoch: 0), EpochSampler(count: 10, batchSize: 4, seed: 8, shuffle: true).order(epoch: 0))
        XCTAssertEqual(EpochSampler(count: 5, batchSize: 2, seed: 7, shuffle: false).order(epoch: 3), [0, 1, 2, 3, 4])
    }

    func testSchedules() {
        let constant = LearningRateSchedule(kind: .constant, baseRate: 0.1, totalSteps: 100)
        XCTAssertEqual(constant.rate(at: 0), 0.1)
        XCTAssertEqual(constant.rate(at: 99), 0.1)
        let warm = LearningRateSchedule(kind: .constant, baseRate: 0.1, warmupSteps: 4, totalSteps: 100)
        XCTAssertEqual(warm.rate(at: 0), 0.025, accuracy: 1e-7)
        XCTAssertEqual(warm.rate(at: 3), 0.1, accuracy: 1e-7)
        let step = LearningRateSchedule(kind: .step, baseRate: 1, totalSteps: 100, decaySteps: 10, gamma: 0.5)
        XCTAssertEqual(step.rate(at: 9), 1)
        XCTAssertEqual(step.rate(at: 10), 0.5)
        XCTAssertEqual(step.rate(at: 25), 0.25)
        let cosine = LearningRateSchedule(kind: .cosine, baseRate: 1, totalSteps: 100)
        XCTAssertEqual(cosine.rate(at: 0), 1)
        XCTAssertEqual(cosine.rate(at: 50), 0.5, accuracy: 1e-6)
        XCTAssertEqual(cosine.rate(at: 100), 0, accuracy: 1e-6)
    }
}

final class ProgressLineTests: XCTestCase {
    /// The plain progress lines of `steps` steps from `firstStep` on, each taking 4 s on a fake clock.
    private func progressLines(firstStep: Int, steps: Int, totalSteps: Int) -> [String] {
        var time = 1000.0, lines: [String] = []
        let reporter = ConsoleReporter(epochs: 10, interactive: false, interval: 0, clock: { time }, write: { lines.append($0) })
        for step in firstStep..<(firstStep + steps) {
            time += 4
            reporter.stepFinished(StepProgress(epoch: 0, batch: step, batchesPerEpoch: totalSteps, step: step,
                                               totalSteps: totalSteps, tally: Tally(), imagesPerSecond: 64, communicationShare: 0))
        }
        return lines
    }

    func testETAIsTheRemainingStepsAtTheRateThisProcessTimed() {
        let fresh = progressLines(firstStep: 1, steps: 10, totalSteps: 2350)
        XCTAssertEqual(fresh.count, 10)
        XCTAssertTrue(fresh.last!.hasSuffix(" ETA 2:36:00\n"), fresh.last!)  // 2340 steps × 4 s
        // Resumed at step 705: the 705 steps before were not timed by this process.
        let resumed = progressLines(firstStep: 706, steps: 10, totalSteps: 2350)
        XCTAssertTrue(resumed.last!.hasSuffix(" ETA 1:49:00\n"), resumed.last!)  // 1635 steps × 4 s
        let short = progressLines(firstStep: 1, steps: 5, totalSteps: 20)
        XCTAssertTrue(short.last!.hasPrefix("epoch 1/10 step 5/20 loss nan acc nan 64.0 img/s"), short.last!)
        XCTAssertTrue(short.last!.hasSuffix(" ETA 1:00\n"), short.last!)  // 15 steps × 4 s
    }
}

final class ModelWeightsTests: XCTestCase {
    private var path: String!
    override func setUp() { path = FileManager.default.temporaryDirectory.appendingPathComponent("w-\(UUID().uuidString).h5").path }
    override func tearDown() { try? FileManager.default.removeItem(atPath: path) }

    /// A layer with state of a new kind needs nothing outside itself: declaring its buffers
    /// puts them in the state dict, initialization, broadcast and weights files.
    private final class RunningPeak: Layer {
        let peak = Tensor(zeros: Shape(2))
        var calls: Int64 = 0
        var summary: String { "RunningPeak" }
        var buffers: [Buffer] {
            [Buffer("peak", .statistic(peak, initial: -1)),
             Buffer("calls", .counter(get: { [unowned self] in calls }, set: { [unowned self] in calls = $0 }))]
        }
        func outputShape(for input: Shape) throws -> Shape { input }
        func flops(for input: Shape) -> Int { 0 }
        func forward(_ input: Tensor, mode: Mode) -> Tensor { input }
        func backward(_ input: Tensor, _ gradOutput: Tensor) -> Tensor { gradOutput }
    }

    func testALayersOwnBuffersAreSavedLoadedAndInitialized() throws {
        func network() -> Network {
            Network(name: "probe", root: Sequential([Child("probe", RunningPeak()), Child("fc", Linear(2, 3))]), inputChannels: 1, classes: 3)
        }
        let a = network()
        XCTAssertEqual(a.stateDict.map(\.key), ["fc.weight", "fc.bias", "probe.peak", "probe.calls"])
        let probe = (a.root as! Sequential).children[0].layer as! RunningPeak
        probe.peak.fill(5)
        probe.calls = 9
        a.initialize(.xavier, seed: 1)
        XCTAssertEqual(probe.peak.array, [-1, -1], "a statistic starts at its initial value")
        XCTAssertEqual(probe.calls, 0, "a counter starts at 0")
        probe.peak.fill(0.5)
        probe.calls = 4
        try ModelWeights.save(a, to: path)
        let b = network()
        try ModelWeights.load(into: b, from: path)
        let loaded = (b.root as! Sequential).children[0].layer as! RunningPeak
        XCTAssertEqual(loaded.peak.array, [0.5, 0.5])
        XCTAssertEqual(loaded.calls, 4)
    }

    func testWeightsRoundTripWithBatchNormBuffers() throws {
        let a = try ModelZoo.make("lenet-bn")
        a.initialize(.xavier, seed: 1)
        a.batchNorms[0].layer.runningMean.fill(0.25)
        a.batchNorms[0].layer.numBatchesTracked = 17
        try ModelWeights.save(a, to: path)
        XCTAssertEqual(try ModelWeights.modelName(in: path), "lenet-bn")
        let b = try ModelZoo.make("lenet-bn")
        XCTAssertEqual(try ModelWeights.load(into: b, from: path), .verified, "saved weights carry a checksum")
        // The file holds the build's precision (float32, PyTorch's layout; float64 in the float64 build).
        XCTAssertEqual(parameters(a), parameters(b))
        XCTAssertEqual(try HDF5File(reading: path).root.dataset("model/conv1.weight").elementSize, MemoryLayout<Real>.size)
        XCTAssertEqual(b.batchNorms[0].layer.runningMean.array, [Real](repeating: 0.25, count: 6))
        XCTAssertEqual(b.batchNorms[0].layer.numBatchesTracked, 17)
    }

    func testWeightsOfAnotherModelOrShapeAreRefusedAndNothingChanges() throws {
        let lenet = try ModelZoo.make("lenet")
        lenet.initialize(.xavier, seed: 1)
        try ModelWeights.save(lenet, to: path)
        let other = try ModelZoo.make("lenet-bn")
        other.initialize(.xavier, seed: 2)
        let before = parameters(other)
        XCTAssertThrowsError(try ModelWeights.load(into: other, from: path)) { XCTAssertTrue("\($0)".contains("holds weights of lenet, not lenet-bn"), "\($0)") }
        XCTAssertEqual(parameters(other), before)

        let wide = try ModelZoo.make("lenet", classes: 12)
        XCTAssertThrowsError(try ModelWeights.load(into: wide, from: path)) { XCTAssertTrue("\($0)".contains("/model/fc3.weight has shape [10, 84], expected [12, 84]"), "\($0)") }
    }
}

/// LeNet-BN with its D2L recipe on the real Fashion-MNIST for a few hundred steps.
final class FashionMNISTEndToEndTests: XCTestCase {
    func testLeNetBNLearnsFashionMNIST() throws {
        let dir = "/usr/share/datasets/fashion-mnist"
        try XCTSkipUnless(FileManager.default.fileExists(atPath: dir), "dataset-fashion-mnist is not installed")
        let splits = try IDX.loadSplits(directory: dir)
        let recipe = try ModelZoo.spec("lenet-bn").recipe
        var config = TrainingConfig()
        config.learningRate = recipe.learningRate
        config.batchSize = recipe.batchSize
        config.maxSteps = 300
        config.evaluateEachEpoch = false
        let network = try ModelZoo.make("lenet-bn")
        network.initialize(.xavier, seed: 0)
        let final = try Trainer(network: network, config: config, splits: splits, preprocessing: Preprocessing(side: 28)).run()
        XCTAssertEqual(final.step, 300)
        XCTAssertGreaterThan(final.testAccuracy, 0.75, "LeNet-BN passes 0.75 within 300 steps (it reaches ~0.8 in one epoch)")
    }
}

final class GradientClippingTests: XCTestCase {
    private func storage(_ values: [Real]) -> Storage {
        let s = Storage(count: values.count)
        for (i, v) in values.enumerated() { s.base[i] = v }
        return s
    }

    private func values(_ s: Storage) -> [Real] { Array(UnsafeBufferPointer(start: s.base, count: s.count)) }

    /// Two parameters' gradients, [3, 4] and [0, 12], in one flat buffer: global norm 13
    /// (exact: 169 is summed exactly, with any remainder of 4 elements).
    private let twoParameters: [Real] = [3, 4, 0, 12, 0]

    func testNormIsOfTheWholeBufferAndIsNotFiniteWhenAValueIsNot() {
        XCTAssertEqual(storage(twoParameters).euclideanNorm(), 13)
        XCTAssertEqual(storage([]).euclideanNorm(), 0)
        XCTAssertTrue(storage([1, .nan, 2, 3, 4]).euclideanNorm().isNaN)
        XCTAssertEqual(storage([1, 2, -.infinity, 3, 4, 5]).euclideanNorm(), .infinity)
        XCTAssertEqual(storage([1, 2, 3, 4, 5, .infinity]).euclideanNorm(), .infinity, "in the remainder after the groups of 4")
        // Float32 squares cannot overflow float64; float64 values beyond 1e154 can, and are still finite.
        let big = Real.greatestFiniteMagnitude / 4
        XCTAssertEqual(storage([big, big, big, big]).euclideanNorm(), 2 * Double(big), accuracy: Double(big) * 1e-15)
    }

    /// PyTorch's values, from `torch.nn.utils.clip_grad_norm_([a, b], max_norm)` with a.grad =
    /// [3, 4], b.grad = [0, 12] (torch 2.13, /work/venv): max 2 gives the first row, max 13
    /// (the norm itself) scales by 13 / (13 + 1e-6), max 13.5 leaves the gradients alone.
    /// PyTorch rounds the factor to float32 and we to `Real`, each product rounding once more:
    /// two float32 roundings apart at most, 2·2⁻²⁴ relative.
    func testClippingScalesAsPyTorchDoes() {
        let pytorch: [(maxNorm: Double, expected: [Double])] = [
            (2, [0.4615384340286255, 0.615384578704834, 0, 1.846153736114502, 0]),
            (13, [2.999999761581421, 3.999999761581421, 0, 11.999999046325684, 0]),
            (13.5, [3, 4, 0, 12, 0]),
        ]
        for (maxNorm, expected) in pytorch {
            let g = storage(twoParameters)
            let factor = GradientClipping.clip(g, norm: g.euclideanNorm(), to: maxNorm)
            XCTAssertEqual(factor, min(1, maxNorm / (13 + 1e-6)), "max \(maxNorm)")
            for (ours, theirs) in zip(values(g), expected) {
                XCTAssertEqual(Double(ours), theirs, accuracy: abs(theirs) * 2 * 0x1p-24, "max \(maxNorm)")
            }
        }
    }

    /// One SGD step (lr 1, no momentum) clipped to half the gradient's norm moves the weights
    /// by half as far in the same direction as the unclipped step.
    ///
    /// Tolerance: each weight difference carries the rounding of one update, at most half an
    /// ulp of the weight (2⁻²⁴·|p| in float32), so each measured step is off by at most
    /// 2⁻²⁴·(‖p‖ + ‖Δ‖); the clipped one, and the unclipped one scaled by f ≈ ½ (and its
    /// measured norm, which sets f), add up to 3 such terms.
    func testTheTrainerClipsTheSummedGradientBeforeTheUpdate() throws {
        let splits = Synthetic.splits(train: 64, test: 16, classes: 10, channels: 1, side: 28, seed: 3)
        var config = TrainingConfig()
        config.batchSize = 64
        config.maxSteps = 1
        config.learningRate = 1
        func step(maxNorm: Double?) throws -> (before: [Double], after: [Double]) {
            config.maxGradientNorm = maxNorm
            let network = try ModelZoo.make("lenet-bn")
            network.initialize(.xavier, seed: 5)
            let before = parameters(network).map { Double($0) }
            try Trainer(network: network, config: config, splits: splits, preprocessing: Preprocessing(side: 28)).run()
            return (before, parameters(network).map { Double($0) })
        }
        func norm(_ x: [Double]) -> Double { x.reduce(0) { $0 + $1 * $1 }.squareRoot() }
        let free = try step(maxNorm: nil)
        let freeStep = zip(free.before, free.after).map { $1 - $0 }
        let gradientNorm = norm(freeStep)
        let clipped = try step(maxNorm: gradientNorm / 2)
        XCTAssertEqual(clipped.before, free.before)
        let clippedStep = zip(clipped.before, clipped.after).map { $1 - $0 }
        let factor = (gradientNorm / 2) / (gradientNorm + GradientClipping.epsilon)
        let error = norm(zip(clippedStep, freeStep).map { $0 - factor * $1 })
        let tolerance = 3 * Double(Real.ulpOfOne) / 2 * (norm(free.before) + gradientNorm)
        XCTAssertLessThanOrEqual(error, tolerance, "step of norm \(norm(clippedStep)) against \(factor) × \(gradientNorm)")
        XCTAssertEqual(norm(clippedStep), factor * gradientNorm, accuracy: tolerance)
    }
}
