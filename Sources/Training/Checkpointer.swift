import Checkpoint
import Distributed
import Foundation
import HDF5
import Optim
import Tensor

/// Saves checkpoints of a run into a directory (rank 0 writes) and finds the latest one.
///
/// Each file is written under a temporary name, flushed, fsynced and renamed into place, and
/// only then does the `latest` pointer move to it, so a crash or a full disk mid-write leaves
/// the previous checkpoint and pointer intact (a failed write removes its temporary file and
/// is reported by the next `save` or `finish`). Every file carries a checksum
/// (`FileChecksum`); a resume takes the newest one that verifies. The newest `keep` files
/// stay, and so does the one with the best test accuracy (among those written at an epoch's
/// end, whose weights were evaluated; the earliest of equals).
public final class Checkpointer: @unchecked Sendable {  // the writer thread and the caller meet only through `done`
    public let directory: String
    public let keep: Int
    private let configJSON: String
    /// Test hook: kill this process during the n-th write (CNN_TRAIN_FAULT=kill-during-checkpoint:n).
    private let killDuringWrite: Int?
    private var writes = 0

    public init(directory: String, keep: Int, configJSON: String) throws {
        self.directory = directory
        self.keep = keep
        self.configJSON = configJSON
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        killDuringWrite = Fault.current.flatMap { $0.kind == "kill-during-checkpoint" ? $0.values.first : nil }
        // Checkpoints already there (a resumed run) compete for "best" with their recorded accuracy.
        for name in try FileManager.default.contentsOfDirectory(atPath: directory) where name.hasPrefix("ckpt-step-") && name.hasSuffix(".h5") {
            accuracies[name] = (try? HDF5File(reading: "\(directory)/\(name)").root.doubleAttribute("test_acc")).flatMap { $0.isNaN ? nil : $0 }
        }
    }

    public static let pointer = "latest"

    /// The name of the checkpoint written after `step` optimizer steps.
    public static func fileName(step: Int) -> String { String(format: "ckpt-step-%09d.h5", step) }

    /// The step a checkpoint's file name records (`fileName(step:)` read back), if it has one.
    public static func step(ofFile path: String) -> Int? {
        let name = URL(fileURLWithPath: path).lastPathComponent
        guard name.hasPrefix("ckpt-step-"), name.hasSuffix(".h5") else { return nil }
        return Int(name.dropFirst("ckpt-step-".count).dropLast(".h5".count))
    }

    /// The newest complete checkpoint in `directory`, or nil if there is none.
    public static func latest(in directory: String) -> String? {
        guard let name = pointerTarget(in: directory) else { return nil }
        let path = "\(directory)/\(name)"
        return FileManager.default.fileExists(atPath: path) ? path : nil
    }

    /// The name `latest` holds, if any.
    public static func pointerTarget(in directory: String) -> String? {
        guard let name = try? String(contentsOfFile: "\(directory)/\(pointer)", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines), !name.isEmpty else { return nil }
        return name
    }

    /// The checkpoint files of `directory`, newest first: the one `latest` names, then the
    /// others by step, descending.
    public static func checkpoints(in directory: String) -> [String] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
            .filter { $0.hasPrefix("ckpt-step-") && $0.hasSuffix(".h5") }.sorted(by: >)
        let first = latest(in: directory).map { [$0] } ?? []
        return first + names.map { "\(directory)/\($0)" }.filter { !first.contains($0) }
    }

    /// The newest checkpoint of `directory` that reads back intact, with its contents; each
    /// newer one whose bytes are damaged (a checksum mismatch, a truncation) is skipped and
    /// handed to `skipping`. Nil if the directory holds no checkpoint. Any other refusal
    /// (another model, format or version) is thrown, as is the case where all are damaged.
    public static func newestIntact(in directory: String, model: String,
                                    skipping: (HDF5Error) -> Void) throws -> (path: String, contents: CheckpointFile.Contents)? {
        var skipped: [HDF5Error] = []
        for path in checkpoints(in: directory) {
            do {
                return (path, try CheckpointFile.read(path, expecting: model))
            } catch let error as HDF5Error where error.isDamage {
                skipped.append(error)
                skipping(error)
            }
        }
        guard skipped.isEmpty else {
            throw HDF5Error("\(directory): none of its \(skipped.count) checkpoint(s) verifies; the newest: \(skipped[0])")
        }
        return nil
    }

    /// Called on every rank: averages unsynchronized batch-norm statistics (so every rank goes
    /// on from what is saved) and gathers the dropout generators. Rank 0 then serializes the
    /// checkpoint in memory and hands the bytes to a background thread that writes, syncs and
    /// renames them, so training (and the other ranks) wait only for the serialization.
    public func save(_ trainer: Trainer) throws {
        let communicator = trainer.communicator
        trainer.shareRunningStatistics()
        let mine = trainer.network.generators.flatMap { $0.get().map { Int64(bitPattern: $0) } }
        var all = [Int64](repeating: 0, count: mine.count * communicator.size)
        for r in 0..<communicator.size {
            var slice = r == communicator.rank ? mine : [Int64](repeating: 0, count: mine.count)
            slice.withUnsafeMutableBytes { communicator.broadcast($0, root: r) }
            all.replaceSubrange((r * mine.count)..<((r + 1) * mine.count), with: slice)
        }
        guard communicator.isRoot else { return }
        try finish()
        writes += 1
        let name = Self.fileName(step: trainer.step)
        let file = try HDF5File(inMemoryNamed: name)
        try CheckpointFile.write(trainer, dropoutStates: all, configJSON: configJSON, to: file)
        let bytes = try file.checksummedImage()
        let accuracy = CheckpointFile.evaluatedAccuracy(trainer)
        let killMidWrite = writes == killDuringWrite
        pending = Thread { [unowned self] in
            do { try self.persist(bytes, as: name, accuracy: accuracy, killMidWrite: killMidWrite) } catch { self.failure = error }
            self.done.signal()
        }
        pending!.start()
    }

    /// Waits for the write in progress, if any, and reports its failure.
    public func finish() throws {
        guard pending != nil else { return }
        done.wait()
        pending = nil
        if let failure {
            self.failure = nil
            throw failure
        }
    }

    private var pending: Thread?
    private let done = DispatchSemaphore(value: 0)
    private var failure: Error?
    /// Test accuracy of each evaluated checkpoint in the directory, for keeping the best.
    private var accuracies: [String: Double] = [:]

    /// Durable write, pointer, pruning: plain file operations only, so that this runs beside
    /// a main thread that may be using HDF5.
    private func persist(_ bytes: [UInt8], as name: String, accuracy: Double?, killMidWrite: Bool) throws {
        let final = "\(directory)/\(name)"
        if killMidWrite {
            try Data(bytes.prefix(bytes.count / 2)).write(to: URL(fileURLWithPath: temporaryPath(for: final)))
            kill(getpid(), SIGKILL)
        }
        let pointer = "'\(Self.pointer)' " + (Self.pointerTarget(in: directory).map { "still names \($0)" } ?? "was not written")
        do { try writeDurably(bytes, to: final) } catch { throw HDF5Error("\(error); \(pointer)") }
        do { try writeDurably(Array((name + "\n").utf8), to: "\(directory)/\(Self.pointer)") } catch {
            throw HDF5Error("\(error); \(pointer), though \(name) is complete")
        }
        accuracies[name] = accuracy
        try prune()
    }

    /// Keeps the newest `keep` checkpoints and the best by test accuracy.
    private func prune() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: directory)
            .filter { $0.hasPrefix("ckpt-step-") && $0.hasSuffix(".h5") }.sorted()
        guard names.count > keep else { return }
        let best = names.filter { accuracies[$0] != nil }.max { accuracies[$0]! < accuracies[$1]! }
        for name in names.dropLast(keep) where name != best {
            try FileManager.default.removeItem(atPath: "\(directory)/\(name)")
        }
    }
}

/// Fault injection for tests, from the environment: CNN_TRAIN_FAULT=kind:n[:m].
public struct Fault: Sendable {
    public let kind: String
    public let values: [Int]

    public static let current: Fault? = {
        guard let text = ProcessInfo.processInfo.environment["CNN_TRAIN_FAULT"] else { return nil }
        let parts = text.split(separator: ":").map(String.init)
        return Fault(kind: parts[0], values: parts.dropFirst().compactMap { Int($0) })
    }()
}

extension Trainer {
    /// Restores a run from checkpoint contents: weights (all ranks read the same file),
    /// optimizer slots and step count, position, history, and each rank's dropout generators
    /// when the number of ranks is the one that wrote them.
    public func restore(from contents: CheckpointFile.Contents, weights path: String) throws {
        try ModelWeights.load(into: network, from: path)
        optimizer.restore(slots: contents.slots, stepCount: contents.optimizerSteps)
        resume(step: contents.step, position: contents.position, history: contents.history)
        if contents.worldSize == communicator.size, contents.dropoutStates.indices.contains(communicator.rank) {
            let states = contents.dropoutStates[communicator.rank]
            for (i, generator) in network.generators.enumerated() where states.count >= 4 * (i + 1) {
                generator.set(Array(states[(4 * i)..<(4 * i + 4)]))
            }
        }
    }
}
