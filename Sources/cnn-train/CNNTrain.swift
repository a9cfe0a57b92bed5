import ArgumentParser
import Distributed
import Foundation
import Models

@main
struct CNNTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cnn-train",
        abstract: "Train the classic convolutional networks with data parallelism over MPI.",
        discussion: """
        Models: \(ModelZoo.names.joined(separator: ", ")).
        Under mpirun every rank trains a replica on its share of each global batch: mpirun -n 4 cnn-train resnet18
        """,
        subcommands: [TrainCommand.self, EvalCommand.self, InspectCommand.self, ModelsCommand.self, BenchCommand.self, VersionCommand.self],
        defaultSubcommand: TrainCommand.self
    )

    /// As ArgumentParser's, except that under a launcher (mpirun, srun) only rank 0 reports an
    /// error every rank hit alike (a bad argument), so it is printed once.
    static func main() {
        LoadTimeSettings.applyBeforeStart()
        // Past a file-size limit (ulimit -f), write() then fails with EFBIG and the run reports
        // it, instead of the process being killed without a word by SIGXFSZ.
        signal(SIGXFSZ, SIG_IGN)
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            if let launch = Launch.current, launch.rank != 0 {
                // Exiting first would make mpirun print its abort banner into the middle of
                // rank 0's message; give rank 0 the time to print it and exit itself.
                Thread.sleep(forTimeInterval: 1)
                Foundation.exit(exitCode(for: error).rawValue)
            }
            exit(withError: error)
        }
    }
}
