import ArgumentParser
import Foundation
import HDF5
import Training

/// `cnn-train inspect FILE`: what a checkpoint holds; `--verify` checks files' checksums.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Describe a checkpoint (model, epoch, step, metrics, sizes, optimizer), or verify files' checksums.",
        discussion: """
        With --verify, checks every file instead: a file, or every .h5 file of a directory (and \
        that its 'latest' names one of them). One line per file: 'ok' when its checksum matches \
        and it reads back whole, 'ok, unverified' for a file without a checksum (written before \
        checkpoint format 2 or by another tool), or the problem. Exits non-zero if any file fails.
        """
    )

    @Argument(help: ArgumentHelp("A checkpoint file, or a checkpoint directory (its latest; with --verify, every .h5 file).", valueName: "file"))
    var path: String

    @Flag(name: .long, help: "Check the checksum and the contents of the file, or of every .h5 file in the directory.")
    var verify = false

    func run() throws {
        var isDirectory: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
        if verify {
            guard exists else { throw ValidationError("\(path): no such file or directory") }
            return try verifyAll(isDirectory.boolValue ? try filesToVerify(in: path) : [path],
                                 pointer: isDirectory.boolValue ? Checkpointer.pointerTarget(in: path) : nil)
        }
        var file = path
        if exists, isDirectory.boolValue {
            guard let latest = Checkpointer.latest(in: path) else { throw ValidationError("\(path): no checkpoint in this directory") }
            file = latest
        }
        try describe(file)
    }

    /// The .h5 files of a directory, in name order.
    private func filesToVerify(in directory: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".h5") && !$0.hasPrefix(".") }
            .sorted().map { "\(directory)/\($0)" }
    }

    /// Prints one line per file and fails if any file (or the directory's pointer) does.
    private func verifyAll(_ files: [String], pointer: String?) throws {
        var failures = 0
        for file in files {
            do { print("\(file): \(try Self.verify(file))") } catch {
                failures += 1
                print(error)
            }
        }
        if let pointer, !files.contains("\(path)/\(pointer)") {
            failures += 1
            print("\(path)/\(Checkpointer.pointer): names \(pointer), which is not there")
        }
        if files.isEmpty && pointer == nil { print("\(path): no .h5 files") }
        guard failures == 0 else { throw VerificationFailed(description: "\(path): \(failures) problem(s) in \(files.count) file(s)") }
    }

    /// The outcome of `--verify` when a file failed (each failure is printed above it).
    struct VerificationFailed: Error, CustomStringConvertible { let description: String }

    /// Checks a file's checksum and reads it back whole: a checkpoint as a resume would, a
    /// weights file's every dataset. Returns the verdict for a file that passes.
    static func verify(_ file: String) throws -> String {
        let handle = try HDF5File(reading: file)
        let root = handle.root
        if root.hasAttribute("format") {
            _ = try CheckpointFile.read(file)
        } else {
            guard root.isGroup("model") else { throw HDF5Error("\(file): neither a checkpoint nor a weights file (no /model group)") }
        }
        for dataset in try root.allDatasets() where dataset.elementKind == .float || dataset.elementKind == .integer {
            _ = try dataset.readDoubles()
        }
        return handle.checksum == .verified ? "ok" : "ok, unverified (no checksum: written before checkpoint format 2 or by another tool)"
    }

    private func describe(_ file: String) throws {
        let c = try CheckpointFile.read(file)
        if let warning = c.checksum.warning(for: file) { printError(warning) }
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
