import ArgumentParser
import Checkpoint
import Distributed
import Foundation
import HDF5
import Models
import Datasets
import Optim
import Training

/// `cnn-train train MODEL` (or `cnn-train MODEL`): one training run.
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a model (the default command: `cnn-train MODEL` is `cnn-train train MODEL`).",
        discussion: """
        Defaults follow D2L's recipe for each model (plain SGD, Xavier-uniform init, 10 epochs, no \
        augmentation; see `cnn-train models`). Every part can be overridden. The test split is \
        evaluated after every epoch and with the final weights.
        """
    )

    @Argument(help: ArgumentHelp("The model: \(ModelZoo.names.joined(separator: ", ")).", valueName: "model"))
    var model: String

    @OptionGroup(title: "Data") var data: DataOptions

    @Option(name: .long, help: "Epochs (default: the recipe's).")
    var epochs: Int?

    @Option(name: .long, help: ArgumentHelp("Stop after N optimizer steps.", valueName: "N"))
    var maxSteps: Int?

    @Option(name: .long, help: "Global batch size (default: the recipe's).")
    var batchSize: Int?

    @Option(name: .long, help: "Learning rate (default: the recipe's).")
    var lr: Double?

    @Option(name: .long, help: "Optimizer: sgd, adam or adamw.")
    var optimizer = "sgd"

    @Option(name: .long, help: "SGD momentum.")
    var momentum = 0.0

    @Flag(name: .long, help: "Nesterov momentum (SGD, needs --momentum).")
    var nesterov = false

    @Option(name: .long, help: "Weight decay (L2 for SGD and Adam, decoupled for AdamW).")
    var weightDecay = 0.0

    @Option(name: .long, help: "Learning-rate schedule: constant, step or cosine.")
    var schedule = "constant"

    @Option(name: .long, help: "Linear warmup, in epochs (fractions allowed).")
    var warmupEpochs = 0.0

    @Option(name: .long, help: "Step schedule: epochs between decays.")
    var decayEpochs = 3

    @Option(name: .long, help: "Step schedule: decay factor.")
    var gamma = 0.1

    @Option(name: .long, help: "Label smoothing for the cross-entropy.")
    var labelSmoothing = 0.0

    @Option(name: .long, help: ArgumentHelp("Set every dropout probability (0 disables dropout).", valueName: "p"))
    var dropout: Double?

    @Flag(name: .long, help: "Augment training images: random crop with 4-pixel padding, horizontal flip.")
    var augment = false

    @Option(name: .long, help: "Seed for initialization, shuffling, dropout and augmentation.")
    var seed: UInt64 = 0

    @Flag(name: .long, help: "Read the training set in file order, batch after batch.")
    var noShuffle = false

    @Option(name: .long, help: "Weight initialization: xavier or pytorch (PyTorch's default).")
    var initialization = "xavier"

    @Option(name: .long, help: ArgumentHelp(
        "Start from the weights in this HDF5 file (group /model, one dataset per state_dict key).",
        discussion: "With --resume auto (a fine-tuning job that may be requeued): continue from the latest checkpoint in --checkpoint-dir when there is one, else start from this file. Not with --resume PATH, whose checkpoint already holds the weights.",
        valueName: "file"))
    var initFrom: String?

    @Flag(name: .long, help: ArgumentHelp(
        "With --init-from: start the classifier (the last layer) afresh for the dataset's classes instead of loading it.",
        discussion: "For weights pretrained on other classes, such as torchvision's ImageNet heads converted by scripts/convert_checkpoint.py."))
    var replaceHead = false

    @Option(name: .long, help: ArgumentHelp("Write the final weights to this HDF5 file (the --init-from layout).", valueName: "file"))
    var save: String?

    @Option(name: .long, help: ArgumentHelp("Write JSON lines of per-epoch metrics here, and the curves as SVG beside it.", valueName: "file"))
    var metrics: String?

    @Option(name: .long, help: ArgumentHelp("Write checkpoints here (rank 0), with a 'latest' pointer.", valueName: "dir"))
    var checkpointDir: String?

    @Option(name: .long, help: ArgumentHelp("Also checkpoint every N optimizer steps (always at each epoch's end and the run's end).", valueName: "N"))
    var checkpointEvery: Int?

    @Option(name: .long, help: ArgumentHelp("Keep the newest K checkpoints (and the best by test accuracy of an epoch's end).", valueName: "K"))
    var keep = 3

    @Option(name: .long, help: ArgumentHelp(
        "Resume: 'auto' takes the latest checkpoint in --checkpoint-dir (a fresh start if there is none, from --init-from if given), or give a file or a directory.",
        discussion: "Weights, optimizer, schedule, the position in the epoch and the dropout generators are restored; --epochs and --max-steps count from the original start; the global batch must stay, the number of ranks may change; other options (--lr, --max-grad-norm, ...) are taken from this command line. From a directory, a checkpoint whose checksum does not match is skipped, saying so, for the newest one that verifies. A run stopped by a non-finite loss or gradient leaves 'latest' on its last good checkpoint, so --resume auto (with a lower --lr or a --max-grad-norm) continues from there.",
        valueName: "auto|path"))
    var resume: String?

    @Option(name: .long, help: ArgumentHelp(
        "Clip the gradient to this global norm before each update (PyTorch's clip_grad_norm_: scaled by N/(norm+1e-6) when that is below 1).",
        discussion: "The norm is of the gradient summed across ranks, over all parameters together. Whether or not it is set, a NaN or infinite loss or gradient stops the run at that step, before its update, with no checkpoint of it.",
        valueName: "N"))
    var maxGradNorm: Double?

    @Flag(name: .long, help: "Batch-norm statistics over the global batch across ranks (default: each rank's own).")
    var syncBn = false

    @Option(name: .long, help: "Gradient bucket size in MiB: each bucket's all-reduce starts as soon as backward has produced it.")
    var bucketMb = 4.0

    @Option(name: .long, help: ArgumentHelp(
        "Precision of the gradients between ranks: full (the build's), bf16 or fp16 (half the bytes; each sum of two ranks' values is added in float32 and rounded back).",
        valueName: "full|bf16|fp16"))
    var gradDtype = GradientTransport.full

    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        _ = try ModelZoo.validated(model)
        for (name, value) in [("--epochs", epochs), ("--max-steps", maxSteps), ("--batch-size", batchSize),
                              ("--decay-epochs", decayEpochs)] {
            if let value, value < 1 { throw ValidationError("\(name) must be positive, got \(value)") }
        }
        if let lr, !(lr > 0) { throw ValidationError("--lr must be positive, got \(lr)") }
        if let lr, !Real(lr).isFinite { throw ValidationError("--lr \(lr) is beyond the largest \(Real.self), \(Real.greatestFiniteMagnitude)") }
        guard TrainingConfig.OptimizerKind(rawValue: optimizer) != nil else {
            throw ValidationError("--optimizer must be sgd, adam or adamw, got '\(optimizer)'")
        }
        guard LearningRateSchedule.Kind(rawValue: schedule) != nil else {
            throw ValidationError("--schedule must be constant, step or cosine, got '\(schedule)'")
        }
        guard Initialization(rawValue: initialization) != nil else {
            throw ValidationError("--initialization must be xavier or pytorch, got '\(initialization)'")
        }
        if let dropout, !(0..<1).contains(dropout) { throw ValidationError("--dropout must be in [0, 1), got \(dropout)") }
        if !(0..<1).contains(labelSmoothing) { throw ValidationError("--label-smoothing must be in [0, 1), got \(labelSmoothing)") }
        if momentum < 0 || weightDecay < 0 || warmupEpochs < 0 { throw ValidationError("--momentum, --weight-decay and --warmup-epochs cannot be negative") }
        if nesterov && momentum == 0 { throw ValidationError("--nesterov needs --momentum above 0") }
        if let initFrom, !FileManager.default.fileExists(atPath: initFrom) { throw ValidationError("--init-from \(initFrom): no such file") }
        if replaceHead && initFrom == nil { throw ValidationError("--replace-head goes with --init-from (the classifier of those weights is replaced)") }
        if let maxGradNorm, !(maxGradNorm > 0 && maxGradNorm.isFinite) {
            throw ValidationError("--max-grad-norm must be a positive number, got \(maxGradNorm)")
        }
        if !(bucketMb > 0) { throw ValidationError("--bucket-mb must be positive, got \(bucketMb)") }
        if !GradientTransport.isAvailable(gradDtype) { throw ValidationError("--grad-dtype \(gradDtype.rawValue) needs the float32 build") }
        if let checkpointEvery, checkpointEvery < 1 { throw ValidationError("--checkpoint-every must be positive, got \(checkpointEvery)") }
        if keep < 1 { throw ValidationError("--keep must be at least 1, got \(keep)") }
        if checkpointEvery != nil && checkpointDir == nil { throw ValidationError("--checkpoint-every needs --checkpoint-dir") }
        if resume == "auto" && checkpointDir == nil { throw ValidationError("--resume auto needs --checkpoint-dir") }
        if let resume, resume != "auto", initFrom != nil {
            throw ValidationError("--resume \(resume) and --init-from exclude each other (the checkpoint holds the weights); --init-from goes with --resume auto")
        }
    }

    /// The checkpoint to resume from, read and checked, if any: nil for a fresh start. From a
    /// directory, the newest checkpoint that verifies; `report` gets a line for each newer one
    /// skipped as damaged.
    private func resumePoint(report: (String) -> Void) throws -> (path: String, contents: CheckpointFile.Contents)? {
        guard let resume else { return nil }
        var directory = checkpointDir ?? resume
        if resume != "auto" {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: resume, isDirectory: &isDirectory) else {
                throw ValidationError("--resume \(resume): no such file or directory")
            }
            guard isDirectory.boolValue else { return (resume, try CheckpointFile.read(resume, expecting: model)) }
            directory = resume
        }
        let found = try Checkpointer.newestIntact(in: directory, model: model) { report("--resume: skipping \($0)") }
        guard let found else {
            if resume == "auto" { return nil }
            throw ValidationError("--resume \(resume): no checkpoint in this directory")
        }
        return found
    }

    /// The run's settings, saved in each checkpoint.
    private func settingsJSON(_ c: TrainingConfig) -> String {
        let settings: [String: Any] = [
            "model": model, "dataset": data.dataset, "epochs": c.epochs, "max_steps": c.maxSteps ?? NSNull(),
            "batch_size": c.batchSize, "lr": Double(c.learningRate), "optimizer": c.optimizer.rawValue,
            "momentum": Double(c.momentum), "nesterov": c.nesterov, "weight_decay": Double(c.weightDecay),
            "schedule": c.schedule.rawValue, "warmup_epochs": c.warmupEpochs, "decay_epochs": c.decayEpochs, "gamma": Double(c.gamma),
            "label_smoothing": Double(c.labelSmoothing), "dropout": c.dropout.map { Double($0) } ?? NSNull(), "augment": augment,
            "seed": c.seed, "shuffle": c.shuffle, "initialization": c.initialization.rawValue, "sync_bn": c.syncBatchNorm, "grad_dtype": c.gradientTransport.rawValue,
            "max_grad_norm": c.maxGradientNorm ?? NSNull(), "side": data.side ?? NSNull(), "channels": data.channels ?? NSNull(),
            "init_from": initFrom ?? NSNull(), "replace_head": replaceHead, "limit_train": data.limitTrain ?? NSNull(), "limit_test": data.limitTest ?? NSNull(),
        ]
        let json = try? JSONSerialization.data(withJSONObject: settings, options: [.sortedKeys])
        return json.map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    func config() throws -> TrainingConfig {
        let recipe = try ModelZoo.spec(model).recipe
        var c = TrainingConfig()
        c.epochs = epochs ?? recipe.epochs
        c.maxSteps = maxSteps
        c.batchSize = batchSize ?? recipe.batchSize
        c.learningRate = lr.map { Real($0) } ?? recipe.learningRate
        c.optimizer = TrainingConfig.OptimizerKind(rawValue: optimizer)!
        c.momentum = Real(momentum)
        c.nesterov = nesterov
        c.weightDecay = Real(weightDecay)
        c.schedule = LearningRateSchedule.Kind(rawValue: schedule)!
        c.warmupEpochs = warmupEpochs
        c.decayEpochs = decayEpochs
        c.gamma = Real(gamma)
        c.labelSmoothing = Real(labelSmoothing)
        c.dropout = dropout.map { Real($0) }
        c.seed = seed
        c.shuffle = !noShuffle
        c.initialization = Initialization(rawValue: initialization)!
        c.syncBatchNorm = syncBn
        c.bucketBytes = max(1, Int(bucketMb * 1_048_576))
        c.gradientTransport = gradDtype
        c.maxGradientNorm = maxGradNorm
        return c
    }

    /// The message of a run stopped by a non-finite value: what, where, and the checkpoint
    /// that `--resume auto` would continue from (written completely before it is named).
    private func divergence(_ diverged: Trainer.DivergedError, checkpointer: Checkpointer?) throws -> Job.Failure {
        guard let checkpointer else { return Job.Failure(description: "\(diverged)") }
        try checkpointer.finish()
        let latest = Checkpointer.latest(in: checkpointer.directory).map { path in
            "latest is \(path)" + (Checkpointer.step(ofFile: path).map { " (step \($0))" } ?? "")
        } ?? "\(checkpointer.directory) has no checkpoint yet"
        return Job.Failure(description: "\(diverged.finding); no checkpoint written; \(latest); \(Trainer.DivergedError.advice)")
    }

    func run() throws {
        let job = Job(compute)
        try job.run { try train(job) }
    }

    private func train(_ job: Job) throws {
        var config = try config()
        let communicator = job.communicator
        let checkpoint = try job.collectively { () throws -> (path: String, contents: CheckpointFile.Contents)? in
            guard let (path, contents) = try resumePoint(report: { if job.isRoot { printError($0) } }) else { return nil }
            if job.isRoot, let warning = contents.checksum.warning(for: path) { printError(warning) }
            guard contents.globalBatch == config.batchSize else {
                throw ValidationError("\(path) was trained with a global batch of \(contents.globalBatch); resume with --batch-size \(contents.globalBatch)")
            }
            return (path, contents)
        }
        if let checkpoint { config.seed = checkpoint.contents.seed }
        let (network, splits, preprocessing) = try job.collectively { () throws -> (Network, Splits, Preprocessing) in
            let splits = try data.load(seed: config.seed)
            guard splits.train.count >= communicator.size, config.batchSize >= communicator.size else {
                throw ValidationError("\(communicator.size) ranks need a global batch and a training set of at least \(communicator.size)")
            }
            let channels = try data.inputChannels(for: splits.train)
            let network = try ModelZoo.make(model, inputChannels: channels, classes: splits.train.classes)
            let preprocessing = try data.preprocessing(model: model, channels: channels, augment: augment)
            do { _ = try network.describe(side: preprocessing.side) } catch {
                throw ValidationError("\(model) cannot take side \(preprocessing.side): \(error)")
            }
            network.initialize(config.initialization, seed: config.seed)
            // A checkpoint to resume from holds the weights (fine-tuned, when --init-from started the run).
            if communicator.isRoot, checkpoint == nil, let initFrom,
               let warning = try ModelWeights.load(into: network, from: initFrom, replacingClassifier: replaceHead).warning(for: initFrom) {
                printError(warning)
            }
            return (network, splits, preprocessing)
        }
        try job.collectively {
            guard communicator.sameModelEverywhere(network) else {
                throw ValidationError("the ranks built different models (names or shapes differ); give every rank the same arguments")
            }
        }
        communicator.broadcastState(network)

        let trainer = Trainer(network: network, config: config, splits: splits, preprocessing: preprocessing, communicator: communicator)
        if let checkpoint {
            try job.collectively {
                let contents = try CheckpointFile.read(checkpoint.path, expecting: model, network: network)
                try trainer.restore(from: contents, weights: checkpoint.path)
            }
            if job.isRoot {
                print("resuming from \(checkpoint.path): step \(trainer.step), epoch \(trainer.position.epoch + 1), "
                      + "batch \(trainer.position.batch) of the epoch (written on \(checkpoint.contents.worldSize) rank(s))")
            }
        } else if resume == "auto", job.isRoot {
            print("no checkpoint in \(checkpointDir!): starting \(initFrom.map { "from \($0)" } ?? "afresh")")
        }
        var checkpointer: Checkpointer?
        if let checkpointDir {
            let c = try job.collectively { try Checkpointer(directory: checkpointDir, keep: keep, configJSON: settingsJSON(config)) }
            trainer.checkpointEvery = checkpointEvery
            trainer.onCheckpoint = { try c.save($0) }
            checkpointer = c
        }
        if job.isRoot {
            print("\(model): \(grouped(network.parameterCount)) parameters, \(splits.train.count) training and "
                  + "\(splits.test.count) test images at \(network.inputChannels)×\(preprocessing.side)×\(preprocessing.side); "
                  + "\(config.optimizer.rawValue) lr \(config.learningRate), batch \(config.batchSize), \(trainer.totalSteps) steps"
                  + (communicator.size > 1 ? "; \(communicator.size) ranks, \(Parallel.threads) thread(s) each, "
                     + "\(grouped(trainer.bytesPerStep)) bytes all-reduced per step\(config.syncBatchNorm ? ", synchronized batch norm" : "")" : ""))
            trainer.observers.append(ConsoleReporter(epochs: config.epochs, showsCommunication: communicator.size > 1))
            if let metrics {
                trainer.observers.append(try MetricsLog(path: metrics, title: "\(model) on \(data.dataset)", history: trainer.history))
            }
        }
        do {
            try trainer.run()
        } catch let diverged as Trainer.DivergedError {
            throw try divergence(diverged, checkpointer: checkpointer)
        }
        try checkpointer?.finish()
        if job.isRoot, let save {
            try ModelWeights.save(network, to: save)
            print("weights written to \(save)")
        }
    }
}
