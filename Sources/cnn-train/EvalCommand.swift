import ArgumentParser
import Checkpoint
import Datasets
import Foundation
import Models
import Training

/// `cnn-train eval`: loss and accuracy of saved weights on the test split.
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Evaluate saved weights on the test split: loss and accuracy."
    )

    @Argument(help: ArgumentHelp("The model (optional when the file names it in its 'model' attribute).", valueName: "model"))
    var model: String?

    @Option(name: .long, help: ArgumentHelp("HDF5 weights: group /model with one dataset per state_dict key.", valueName: "file"))
    var initFrom: String?

    @Option(name: .long, help: ArgumentHelp("A checkpoint (its /model has the same layout).", valueName: "file"))
    var checkpoint: String?

    /// The weights file, from either option.
    private var weights: String { initFrom ?? checkpoint! }

    @OptionGroup(title: "Data") var data: DataOptions

    @Option(name: .long, help: "Images per evaluation batch.")
    var batchSize = 256

    @Flag(name: .long, help: "Print one JSON line {\"loss\":…,\"accuracy\":…,\"examples\":…}.")
    var json = false

    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        if let model { _ = try ModelZoo.validated(model) }
        if batchSize < 1 { throw ValidationError("--batch-size must be positive, got \(batchSize)") }
        guard (initFrom == nil) != (checkpoint == nil) else { throw ValidationError("give either --init-from or --checkpoint") }
        guard FileManager.default.fileExists(atPath: weights) else { throw ValidationError("\(weights): no such file") }
    }

    func run() throws {
        let job = Job(compute)
        try job.run { try evaluate(job) }
    }

    /// Under mpirun the ranks share the test set and rank 0 prints the global result.
    private func evaluate(_ job: Job) throws {
        let (network, splits, preprocessing) = try job.collectively { () throws -> (Network, Splits, Preprocessing) in
            if let checkpoint { _ = try CheckpointFile.read(checkpoint, expecting: model) }
            let named = try ModelWeights.modelName(in: weights)
            guard let name = model ?? named else {
                throw ValidationError("\(weights) does not name its model; give it: cnn-train eval MODEL --init-from \(weights)")
            }
            let splits = try data.load(seed: 0)
            let channels = try data.inputChannels(for: splits.test)
            let network = try ModelZoo.make(name, inputChannels: channels, classes: splits.test.classes)
            if job.isRoot, let warning = try ModelWeights.load(into: network, from: weights).warning(for: weights) { printError(warning) }
            return (network, splits, try data.preprocessing(model: name, channels: channels, augment: false))
        }
        var config = TrainingConfig()
        config.batchSize = max(batchSize, job.communicator.size)
        config.epochs = 0
        // Loaded statistics are already the ones to use; averaging them again would change nothing.
        config.syncBatchNorm = true
        let tally = Trainer(network: network, config: config, splits: splits, preprocessing: preprocessing,
                            communicator: job.communicator).evaluate()
        guard job.isRoot else { return }
        if json {
            print("{\"loss\":\(tally.loss),\"accuracy\":\(tally.accuracy),\"examples\":\(tally.examples)}")
        } else {
            print(String(format: "%@ on %@ test split: loss %.4f, accuracy %.4f (%d examples)",
                         network.name, data.dataset, tally.loss, tally.accuracy, tally.examples))
        }
    }
}
