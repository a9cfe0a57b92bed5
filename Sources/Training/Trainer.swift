import Datasets
import Distributed
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
    /// Batch-norm statistics over the global batch (across ranks) rather than each rank's.
    public var syncBatchNorm = false
    /// Size of the gradient buckets whose all-reduce overlaps backward.
    public var bucketBytes = 4 << 20
    /// The precision gradients travel in between ranks.
    public var gradientTransport = GradientTransport.full
    /// Clip the summed gradient to this global norm before each update (PyTorch's
    /// `clip_grad_norm_`); nil leaves it as it is.
    public var maxGradientNorm: Double?

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
    /// Of `seconds`: forward and backward, and waiting for other ranks (all-reduce).
    public var computeSeconds: Double, communicationSeconds: Double
}

/// Where a run is after one step.
public struct StepProgress {
    public var epoch: Int, batch: Int, batchesPerEpoch: Int, step: Int, totalSteps: Int
    public var tally: Tally
    public var imagesPerSecond: Double
    /// The part of the time spent waiting for communication so far this epoch.
    public var communicationShare: Double

    public init(epoch: Int, batch: Int, batchesPerEpoch: Int, step: Int, totalSteps: Int, tally: Tally,
                imagesPerSecond: Double, communicationShare: Double) {
        self.epoch = epoch
        self.batch = batch
        self.batchesPerEpoch = batchesPerEpoch
        self.step = step
        self.totalSteps = totalSteps
        self.tally = tally
        self.imagesPerSecond = imagesPerSecond
        self.communicationShare = communicationShare
    }
}

/// Receives the run's progress; the CLI prints it and writes files.
public protocol TrainingObserver: AnyObject {
    func stepFinished(_ progress: StepProgress)
    func epochFinished(_ record: EpochRecord)
    func runFinished(_ record: EpochRecord)
}

/// Trains one network replica: forward, loss, backward (its gradients summed across ranks
/// as they become ready), the optimizer step; evaluation on the test split. With one
/// process the communicator is `SingleProcess` and every collective is free.
public final class Trainer {
    public let network: Network
    public let config: TrainingConfig
    public let splits: Splits
    public let optimizer: any Optimizer
    public let schedule: LearningRateSchedule
    /// Told of every step, epoch and the end of the run (progress line, metrics file).
    public var observers: [any TrainingObserver] = []
    public let communicator: any Communicator
    public private(set) var step = 0

    private let loss: SoftmaxCrossEntropy
    private let sampler: EpochSampler
    private let trainPipeline: BatchPipeline
    private let testPipeline: BatchPipeline
    private let gradients: GradientSynchronizer
    /// Σloss, correct, examples of one step, and the rank's gradient norm if it is not
    /// finite (else 0), summed across ranks: one reduction agrees on the metrics and on
    /// whether every rank may take the step.
    private let stepSums = UnsafeMutableBufferPointer<Double>.allocate(capacity: 4)

    public init(network: Network, config: TrainingConfig, splits: Splits, preprocessing: Preprocessing,
                communicator: any Communicator = SingleProcess()) {
        self.network = network
        self.config = config
        self.splits = splits
        self.communicator = communicator
        if let p = config.dropout { network.setDropout(p) }
        // Each rank draws its own dropout masks (its examples are not the others').
        network.seedDropout(mix(config.seed, 0xD0, UInt64(communicator.rank)))
        loss = SoftmaxCrossEntropy(labelSmoothing: config.labelSmoothing)
        sampler = EpochSampler(count: splits.train.count, batchSize: config.batchSize, seed: config.seed, shuffle: config.shuffle,
                               worldSize: communicator.size)
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
        let localCapacity = (config.batchSize + communicator.size - 1) / communicator.size
        trainPipeline = BatchPipeline(assembler: BatchAssembler(set: splits.train, preprocessing: preprocessing),
                                      capacity: localCapacity)
        testPipeline = BatchPipeline(assembler: BatchAssembler(set: splits.test, preprocessing: testPreprocessing),
                                     capacity: localCapacity)
        gradients = GradientSynchronizer(network: network, communicator: communicator, bucketBytes: config.bucketBytes,
                                        transport: config.gradientTransport)
        gradients.attach()
        if config.syncBatchNorm && communicator.size > 1 {
            for (_, bn) in network.batchNorms { bn.reducer = communicator }
        }
    }

    deinit { stepSums.deallocate() }

    /// Bytes of gradient each rank sends into the all-reduce per step.
    public var bytesPerStep: Int { communicator.size > 1 ? gradients.bytesPerStep : 0 }

    public static func totalSteps(config: TrainingConfig, batchesPerEpoch: Int) -> Int {
        let all = config.epochs * batchesPerEpoch
        return min(all, config.maxSteps ?? all)
    }

    public var totalSteps: Int { Trainer.totalSteps(config: config, batchesPerEpoch: sampler.batchesPerEpoch) }

    /// A loss or gradient norm that is NaN or infinite on some rank (every rank stops before
    /// that step's update), or weights or statistics found so before a checkpoint (which is
    /// then not written).
    public struct DivergedError: Error, CustomStringConvertible {
        /// What was found not finite.
        public enum Quantity: String, Sendable {
            case loss
            case gradientNorm = "gradient norm"
            /// Found before a checkpoint: an update overflowed though its gradient was finite.
            case state = "weights or batch-norm statistics"
        }
        /// The step that diverged, counted from 1 as the progress line counts; its epoch and
        /// its batch in that epoch, also from 1.
        public let step: Int, epoch: Int, batch: Int
        public let quantity: Quantity
        /// The mean loss over the global batch, the gradient norm, or the norm of the state:
        /// NaN or ±∞.
        public let value: Double

        /// What was found, and where.
        public var finding: String {
            "non-finite \(quantity.rawValue) (\(value.isNaN ? "nan" : "\(value)")) \(quantity == .state ? "after" : "at") step \(step) (epoch \(epoch), batch \(batch))"
        }
        public static let advice = "lower the learning rate (--lr) or clip the gradients (--max-grad-norm)"
        public var description: String { "\(finding); \(Self.advice)" }
    }

    // MARK: - Position, for checkpoints

    /// Where a run stands between steps: the epoch in progress, the next global batch in
    /// it, and what that epoch's batches so far have measured.
    public struct Position: Sendable {
        public var epoch = 0, batch = 0
        public var tally = Tally()
        public init() {}
    }

    public private(set) var position = Position()
    /// The records of the epochs completed so far.
    public private(set) var history: [EpochRecord] = []
    /// Called on every rank when a checkpoint is due: at each epoch's end (where the weights
    /// have a test accuracy), every `checkpointEvery` steps if set, and at the end of the run;
    /// never with non-finite weights or statistics (the run throws `DivergedError` instead).
    public var onCheckpoint: ((Trainer) throws -> Void)?
    public var checkpointEvery: Int?

    /// Continues a run from a checkpoint: the weights and optimizer are restored by the caller.
    public func resume(step: Int, position: Position, history: [EpochRecord]) {
        self.step = step
        self.position = position
        self.history = history
    }

    /// Runs every epoch (or until `maxSteps`) from the current position, evaluating as
    /// configured; returns the final record.
    @discardableResult
    public func run() throws -> EpochRecord {
        let total = totalSteps
        var lastCheckpoint = -1
        func checkpoint() throws {
            guard let onCheckpoint, lastCheckpoint != step else { return }
            try requireFiniteState()
            try onCheckpoint(self)
            lastCheckpoint = step
        }
        var segment = (rate: 0.0, seconds: 0.0, compute: 0.0, communication: 0.0)
        epochs: while position.epoch < config.epochs && step < total {
            let epoch = position.epoch
            let started = now()
            var timing = (compute: 0.0, communication: 0.0)
            let batches = (position.batch..<sampler.batchesPerEpoch).map { sampler.range(ofBatch: $0, rank: communicator.rank) }
            trainPipeline.start(order: sampler.order(epoch: epoch), batches: batches, seed: mix(config.seed, UInt64(epoch), 0xA6))
            var examplesHere = 0
            while step < total, let b = trainPipeline.next() {
                let globalBatch = sampler.range(ofBatch: position.batch).count
                try trainStep(b, globalBatch: globalBatch, timing: &timing)
                examplesHere += globalBatch
                position.batch += 1
                let elapsed = now() - started
                let progress = StepProgress(epoch: epoch, batch: position.batch, batchesPerEpoch: sampler.batchesPerEpoch, step: step,
                                            totalSteps: total, tally: position.tally, imagesPerSecond: Double(examplesHere) / elapsed,
                                            communicationShare: timing.communication / elapsed)
                for o in observers { o.stepFinished(progress) }
                // An epoch's last step is checkpointed after its evaluation, below, so that the
                // file closes the epoch and carries the test accuracy of its weights.
                if let every = checkpointEvery, step % every == 0, step < total, position.batch < sampler.batchesPerEpoch {
                    try checkpoint()
                }
                if let fault = Fault.current, fault.kind == "kill-rank-after-step", fault.values == [communicator.rank, step] {
                    kill(getpid(), SIGKILL)
                }
            }
            trainPipeline.finish()
            let seconds = now() - started
            segment = (Double(examplesHere) / seconds, seconds, timing.compute, timing.communication)
            guard position.batch == sampler.batchesPerEpoch else { break epochs }
            let test = config.evaluateEachEpoch || step >= total ? evaluate() : nil
            let tally = position.tally
            let record = EpochRecord(epoch: epoch + 1, step: step, trainLoss: tally.loss, trainAccuracy: tally.accuracy,
                                     testLoss: test?.loss ?? .nan, testAccuracy: test?.accuracy ?? .nan,
                                     imagesPerSecond: segment.rate, seconds: segment.seconds,
                                     computeSeconds: segment.compute, communicationSeconds: segment.communication)
            history.append(record)
            position = Position()
            position.epoch = epoch + 1
            for o in observers { o.epochFinished(record) }
            if step < total { try checkpoint() }
        }
        // The final state, evaluated with the final weights (unless the last epoch just was).
        var final: EpochRecord
        if position.batch == 0, let last = history.last, last.step == step, !last.testLoss.isNaN {
            final = last
        } else {
            let test = evaluate()
            final = EpochRecord(epoch: position.epoch + (position.batch > 0 ? 1 : 0), step: step,
                                trainLoss: position.batch > 0 ? position.tally.loss : history.last?.trainLoss ?? .nan,
                                trainAccuracy: position.batch > 0 ? position.tally.accuracy : history.last?.trainAccuracy ?? .nan,
                                testLoss: test.loss, testAccuracy: test.accuracy, imagesPerSecond: segment.rate,
                                seconds: segment.seconds, computeSeconds: segment.compute, communicationSeconds: segment.communication)
        }
        try requireFiniteState()  // also when there is no checkpoint: the caller may save the weights
        try checkpoint()
        for o in observers { o.runFinished(final) }
        return final
    }

    /// One optimizer step on this rank's share of a global batch of `globalBatch` examples,
    /// counted in `position`; throws `DivergedError`, before the update, when the loss or the
    /// summed gradient is not finite on any rank.
    private func trainStep(_ batch: BatchPipeline.Batch, globalBatch: Int,
                           timing: inout (compute: Double, communication: Double)) throws {
        let t0 = now()
        optimizer.learningRate = schedule.rate(at: step)
        network.zeroGradients()
        gradients.beginStep()
        let logits = network.forward(batch.images, mode: .training)
        // Each rank divides by the global batch, so the sum over ranks is the global mean's gradient.
        let result = loss.evaluate(logits: logits, labels: batch.labels, normalizer: globalBatch)
        network.backward(batch.images, result.gradient)
        let t1 = now()
        gradients.finishStep()
        let t2 = now()
        // Test hook: one rank's summed gradient turns NaN (CNN_TRAIN_FAULT=nan-gradient-on-rank:r:step),
        // which only that rank can see; every rank must stop with it.
        if let fault = Fault.current, fault.kind == "nan-gradient-on-rank", fault.values == [communicator.rank, step + 1] {
            network.gradientStorage.base[0] = .nan
        }
        // The summed gradient is the same on every rank, and so is its norm; one float64 pass
        // gives both the norm for clipping and whether every gradient is finite.
        let gradientNorm = network.gradientStorage.euclideanNorm()
        stepSums[0] = result.lossSum
        stepSums[1] = Double(result.correct)
        stepSums[2] = Double(batch.labels.count)
        stepSums[3] = gradientNorm.isFinite ? 0 : gradientNorm
        let t3 = now()
        communicator.sum(doubles: stepSums)
        let t4 = now()
        timing.compute += (t1 - t0) + (t3 - t2)
        timing.communication += (t2 - t1) + (t4 - t3)
        // A sum with a NaN or ±∞ term is not finite: a rank that diverged stops them all.
        guard stepSums[0].isFinite && stepSums[3] == 0 else {
            let lossDiverged = !stepSums[0].isFinite
            throw DivergedError(step: step + 1, epoch: position.epoch + 1, batch: position.batch + 1,
                                quantity: lossDiverged ? .loss : .gradientNorm,
                                value: lossDiverged ? stepSums[0] / stepSums[2] : stepSums[3])
        }
        if let maxNorm = config.maxGradientNorm { GradientClipping.clip(network.gradientStorage, norm: gradientNorm, to: maxNorm) }
        optimizer.step()
        step += 1
        position.tally.lossSum += stepSums[0]
        position.tally.correct += Int(stepSums[1])
        position.tally.examples += Int(stepSums[2])
    }

    /// Throws `DivergedError` when a weight, or a batch-norm statistic on any rank, is not
    /// finite: an update can overflow though its gradient was finite (a huge learning rate),
    /// and the next step's loss would reveal it only after a checkpoint of it. Collective;
    /// one pass over the weights, run before each checkpoint and at the end.
    private func requireFiniteState() throws {
        var norms = [network.parameterStorage.euclideanNorm()]
        norms += network.statistics.map { $0.storage.euclideanNorm() }
        var notFinite = [norms.first { !$0.isFinite } ?? 0]
        notFinite.withUnsafeMutableBufferPointer { communicator.sum(doubles: $0) }
        guard notFinite[0] != 0 else { return }
        // The last step taken: the one before `position`.
        let (epoch, batch) = position.batch > 0 ? (position.epoch + 1, position.batch) : (position.epoch, sampler.batchesPerEpoch)
        throw DivergedError(step: step, epoch: epoch, batch: batch, quantity: .state, value: notFinite[0])
    }

    /// Without synchronized batch norm each rank's running statistics drift apart; their mean
    /// over the ranks is what is evaluated and saved (and every rank goes on from it).
    public func shareRunningStatistics() {
        if !config.syncBatchNorm { communicator.averageRunningStatistics(network) }
    }

    /// Loss and accuracy over the whole test split in evaluation mode, each rank taking a
    /// contiguous shard so that every example counts exactly once. Without synchronized
    /// batch norm, the ranks' running statistics are averaged first.
    public func evaluate() -> Tally {
        shareRunningStatistics()
        let mine = shard(0..<splits.test.count, rank: communicator.rank, of: communicator.size)
        let capacity = (config.batchSize + communicator.size - 1) / communicator.size
        let batches = stride(from: mine.lowerBound, to: mine.upperBound, by: capacity).map { $0..<min($0 + capacity, mine.upperBound) }
        var sums = [0.0, 0.0, 0.0]
        testPipeline.start(order: Array(0..<splits.test.count), batches: batches, seed: 0)
        while let b = testPipeline.next() {
            let logits = network.forward(b.images, mode: .evaluation)
            let result = loss.evaluate(logits: logits, labels: b.labels)
            sums[0] += result.lossSum
            sums[1] += Double(result.correct)
            sums[2] += Double(b.labels.count)
        }
        sums.withUnsafeMutableBufferPointer { communicator.sum(doubles: $0) }
        var tally = Tally()
        tally.lossSum = sums[0]
        tally.correct = Int(sums[1])
        tally.examples = Int(sums[2])
        return tally
    }
}
