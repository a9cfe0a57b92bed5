import ArgumentParser
import Foundation
import HDF5
import Training

/// `cnn-train inspect FILE`: what a checkpoint holds.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Describe a checkpoint: model, epoch, step, metrics, sizes, optimizer."
    )

    @Argument(help: ArgumentHelp("A checkpoint file, or a checkpoint directory (its latest).", valueName: "file"))
    var path: String

    func run() throws {
        var isDirectory: ObjCBool = false
        var file = path
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            guard let latest = Checkpointer.latest(in: path) else { throw ValidationError("\(path): no checkpoint in this directory") }
            file = latest
        }
        let c = try CheckpointFile.read(file)
        let model = try HDF5File(reading: file).root.group("model")
        var parameters = 0, tensors = 0
        for key in try model.memberNames() {
            tensors += 1
            if !key.hasSuffix("num_batches_tracked") && !key.hasSuffix("running_mean") && !key.hasSuffix("running_var") {
                parameters += try model.dataset(key).count
            }
        }
        let bytes = (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0
        print("\(file)")
        print("  model \(c.model): \(tensors) state_dict entries, \(grouped(parameters)) parameters; file \(grouped(bytes)) bytes")
        print("  completed epochs \(c.epoch), step \(c.step); next: epoch \(c.position.epoch + 1), batch \(c.position.batch)")
        print("  written by \(c.worldSize) rank(s), global batch \(c.globalBatch), seed \(c.seed), on \(c.created)")
        print("  optimizer \(c.optimizerKind), \(c.optimizerSteps) steps, slots: \(c.slotNames.isEmpty ? "none" : c.slotNames.joined(separator: ", "))")
        print("  config \(c.config)")
        if !c.history.isEmpty {
            print("  epoch   step  train loss  train acc  test loss  test acc")
            for r in c.history {
                print(String(format: "  %5d %6d  %10.4f  %9.4f  %9.4f  %8.4f", r.epoch, r.step, r.trainLoss, r.trainAccuracy, r.testLoss, r.testAccuracy))
            }
        }
    }
}
