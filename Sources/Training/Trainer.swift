import Datasets
import Foundation
import Models
import Optim

/// Everything that decides what a training run computes.
public struct TrainingConfig: Sendable {
    public enum OptimizerKind: String, CaseIterable, Sendable { case sgd, adam, adamw }

    public var epochs = 10
    /// Stop after this many optimizer steps (counted from the run's start).
    public var maxSteps: Int?
    public var batchSize = 256
    public var optimizer = OptimizerKind.sgd
    public var learningRate: Real = 0.1
    public var momentum: Real = 0
    public var nesterov = false
    public var weightDecay: Real = 0
    public var schedule = LearningRateSchedule.Kind.constant
    public var warmupEpochs: Double = 0
    /// Step schedule: epochs between decays, and the factor.
    public var decayEpochs = 3
    public var gamma: Real = 0.1
    public var labelSmoothing: Real = 0
    /// Every dropout probability, when set (0 disables dropout).
    public var dropout: Real?
    public var seed: UInt64 = 0
    public var shuffle = true
    public var initialization = Initialization.xavier
    /// Evaluate the test split after every epoch (the final evaluation always happens).
    public var evaluateEachEpoch = true

    public init() {}
}

/// Loss and accuracy summed over examples.
public struct Tally: Sendable {
    public var lossSum = 0.0, correct = 0, examples = 0
    public var loss: Double { examples == 0 ? .nan : lossSum / Double(examples) }
    public var accuracy: Double { examples == 0 ? .nan : Double(correct) / Double(examples) }
    public init() {}
}

/// What one epoch (or the final state) measured.
public struct EpochRecord: Sendable {
    public var epoch: Int, step: Int
    public var trainLoss: Double, trainAccuracy: Double
    public var testLoss: Double, testAccuracy: Double
    public var imagesPerSecond: Double, seconds: Double
}

/// Receives the run's progress; the CLI prints it and writes files.
public protocol TrainingObserver: AnyObject {
    func stepFinished(epoch: Int, batch: Int, batchesPerEpoch: Int, step: Int, totalSteps: Int, tally: Tally, imagesPerSecond: Double)
    func epochFinished(_ record: EpochRecord)
    func runFinished(_ record: EpochRecord)
}

/// Trains one network on one process: forward, loss, backward, the gradients-ready hook,
/// the optimizer step; evaluation on the test split.
public final class Trainer {
    public let network: Network
    public let config: TrainingConfig
    public let splits: Splits
    public let optimizer: any Optimizer
    public let schedule: LearningRateSchedule
    /// Told of every step, epoch and the end of the run (progress line, metrics file).
    public var observers: [any TrainingObserver] = []
    /// Called between backward and the optimizer step, when every gradient is ready
    /// (the point where data parallelism all-reduces).
    public var onGradientsReady: ((Network) -> Void)?
    public private(set) var step = 0

    private let loss: SoftmaxCrossEntropy
    private let sampler: EpochSampler
    private let trainPipeline: BatchPipeline
    private let testPipeline: BatchPipeline

    public init(network: Network, config: TrainingConfig, splits: Splits, preprocessing: Preprocessing) {
        self.network = network
        self.config = config
        self.splits = splits
        if let p = config.dropout { network.setDropout(p) }
        network.seedDropout(mix(config.seed, 0xD0))
        loss = SoftmaxCrossEntropy(labelSmoothing: config.labelSmoothing)
        sampler = EpochSampler(count: splits.train.count, batchSize: config.batchSize, seed: config.seed, shuffle: config.shuffle)
        let steps = Trainer.totalSteps(config: config, batchesPerEpoch: sampler.batchesPerEpoch)
        schedule = LearningRateSchedule(kind: config.schedule, baseRate: config.learningRate,
                                        warmupSteps: Int(config.warmupEpochs * Double(sampler.batchesPerEpoch)),
                                        totalSteps: steps, decaySteps: config.decayEpochs * sampler.batchesPerEpoch,
                                        gamma: config.gamma)
        switch config.optimizer {
        case .sgd:
            optimizer = SGD(values: network.parameterStorage, gradients: network.gradientStorage, learningRate: config.learningRate,
                            momentum: config.momentum, weightDecay: config.weightDecay, nesterov: config.nesterov)
        case .adam, .adamw:
            optimizer = Adam(values: network.parameterStorage, gradients: network.gradientStorage, learningRate: config.learningRate,
                             weightDecay: config.weightDecay, decoupled: config.optimizer == .adamw)
        }
        var testPreprocessing = preprocessing
        testPreprocessing.augment = false
        trainPipeline = BatchPipeline(assembler: BatchAssembler(set: splits.train, preprocessing: preprocessing),
                                      batchSize: config.batchSize)
        testPipeline = BatchPipeline(assembler: BatchAssembler(set: splits.test, preprocessing: testPreprocessing),
                                     batchSize: config.batchSize)
    }

    public static func totalSteps(config: TrainingConfig, batchesPerEpoch: Int) -> Int {
        let all = config.epochs * batchesPerEpoch
        return min(all, config.maxSteps ?? all)
    }

    public var totalSteps: Int { Trainer.totalSteps(config: config, batchesPerEpoch: sampler.batchesPerEpoch) }

    /// A non-finite loss: training cannot go on from it.
    public struct DivergedError: Error, CustomStringConvertible {
        public let step: Int, loss: Double
        public var description: String { "loss became \(loss) at step \(step); lower the learning rate (--lr)" }
    }

    /// Runs every epoch (or until `maxSteps`), evaluating as configured; returns the final record.
    @discardableResult
    public func run() throws -> EpochRecord {
        let total = totalSteps
        var last: EpochRecord?
        var lastTally = Tally()
        epochs: for epoch in 0..<config.epochs {
            guard step < total else { break }
            let started = now()
            var tally = Tally()
            trainPipeline.start(order: sampler.order(epoch: epoch), seed: mix(config.seed, UInt64(epoch), 0xA6))
            var batch = 0
            while step < total, let b = trainPipeline.next() {
                try trainStep(b, tally: &tally)
                batch += 1
                for o in observers { o.stepFinished(epoch: epoch, batch: batch, batchesPerEpoch: sampler.batchesPerEpoch, step: step,
                                       totalSteps: total, tally: tally, imagesPerSecond: Double(tally.examples) / (now() - started)) }
            }
            trainPipeline.finish()
            let seconds = now() - started
            lastTally = tally
            let finishedEpoch = batch == sampler.batchesPerEpoch
            let test = finishedEpoch && (config.evaluateEachEpoch || step >= total) ? evaluate() : nil
            let record = EpochRecord(epoch: epoch + 1, step: step, trainLoss: tally.loss, trainAccuracy: tally.accuracy,
                                     testLoss: test?.loss ?? .nan, testAccuracy: test?.accuracy ?? .nan,
                                     imagesPerSecond: Double(tally.examples) / seconds, seconds: seconds)
            last = record
            if finishedEpoch { for o in observers { o.epochFinished(record) } } else { break epochs }
        }
        // The final state: evaluated with the final weights (again, if the last epoch already was).
        var final = last ?? EpochRecord(epoch: 0, step: step, trainLoss: lastTally.loss, trainAccuracy: lastTally.accuracy,
                                        testLoss: .nan, testAccuracy: .nan, imagesPerSecond: 0, seconds: 0)
        if final.testLoss.isNaN {
            let test = evaluate()
            final.testLoss = test.loss
            final.testAccuracy = test.accuracy
        }
        for o in observers { o.runFinished(final) }
        return final
    }

    private func trainStep(_ batch: BatchPipeline.Batch, tally: inout Tally) throws {
        optimizer.learningRate = schedule.rate(at: step)
        network.zeroGradients()
        let logits = network.forward(batch.images, mode: .training)
        let result = loss.evaluate(logits: logits, labels: batch.labels)
        guard result.lossSum.isFinite else { throw DivergedError(step: step + 1, loss: result.lossSum / Double(batch.labels.count)) }
        network.backward(batch.images, result.gradient)
        onGradientsReady?(network)
        optimizer.step()
        step += 1
        tally.lossSum += result.lossSum
        tally.correct += result.correct
        tally.examples += batch.labels.count
    }

    /// Loss and accuracy over the whole test split, in evaluation mode.
    public func evaluate() -> Tally {
        var tally = Tally()
        testPipeline.start(order: Array(0..<splits.test.count), seed: 0)
        while let b = testPipeline.next() {
            let logits = network.forward(b.images, mode: .evaluation)
            let result = loss.evaluate(logits: logits, labels: b.labels)
            tally.lossSum += result.lossSum
            tally.correct += result.correct
            tally.examples += b.labels.count
        }
        return tally
    }
}

/// Seconds on a monotonic clock.
public func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
