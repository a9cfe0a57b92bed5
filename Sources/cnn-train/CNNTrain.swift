import ArgumentParser
import Models

@main
struct CNNTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cnn-train",
        abstract: "Train the classic convolutional networks with data parallelism over MPI.",
        discussion: "Models: \(ModelZoo.names.joined(separator: ", ")).",
        subcommands: [TrainCommand.self, EvalCommand.self, ModelsCommand.self, BenchCommand.self, VersionCommand.self],
        defaultSubcommand: TrainCommand.self
    )
}
