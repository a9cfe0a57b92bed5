import Checkpoint
import Distributed
import Foundation
import HDF5
import Models
import Optim

/// The checkpoint file: everything a run needs to continue exactly where it stopped.
///
/// Version 2 files carry a checksum over every byte (`FileChecksum`), checked on every
/// open; version 1 files have none and still load, with a warning.
///
///     /            attrs format="cnn-train-checkpoint", version=2, model, epoch (completed),
///                  step, world_size, global_batch, seed, config (JSON), created (ISO-8601),
///                  test_acc (of these weights: NaN unless written at an epoch's end)
///     /model/<key>               the state_dict (float32, num_batches_tracked int64)
///     /optimizer/<key>/<slot>    momentum_buffer | exp_avg, exp_avg_sq; attrs kind, lr,
///                                momentum, weight_decay, nesterov, step_count
///     /schedule                  attrs kind, base_rate, warmup_steps, total_steps, decay_steps, gamma
///     /sampler                   attrs epoch (in progress), batch (next global batch), seed,
///                                shuffle, global_batch, and the epoch's tally so far
///     /rng/dropout               int64 [world_size, 4 × dropout layers]: each rank's generators
///     /metrics/<field>           float64 [completed epochs]: the per-epoch history
public enum CheckpointFile {
    public static let format = "cnn-train-checkpoint"
    public static let version: Int64 = 2
    /// Versions this build reads: 1 differs only in having no checksum.
    public static let readableVersions: ClosedRange<Int64> = 1...2
    static let metricFields = ["epoch", "step", "train_loss", "train_acc", "test_loss", "test_acc", "images_per_sec", "seconds"]

    /// The test accuracy of the trainer's current weights: the last epoch's, if that epoch
    /// ended at this very step; nil for weights that have moved since they were evaluated.
    static func evaluatedAccuracy(_ trainer: Trainer) -> Double? {
        guard let last = trainer.history.last, last.step == trainer.step, !last.testAccuracy.isNaN else { return nil }
        return last.testAccuracy
    }

    /// Writes `trainer`'s state to `file` (the caller provides the dropout states of all ranks).
    static func write(_ trainer: Trainer, dropoutStates: [Int64], configJSON: String, to file: HDF5File) throws {
        let network = trainer.network, config = trainer.config, root = file.root
        try ModelWeights.write(network, to: file)
        try root.setAttribute("format", format)
        try root.setAttribute("version", version)
        try root.setAttribute("epoch", Int64(trainer.position.epoch))
        try root.setAttribute("step", Int64(trainer.step))
        try root.setAttribute("world_size", Int64(trainer.communicator.size))
        try root.setAttribute("global_batch", Int64(config.batchSize))
        try root.setAttribute("seed", Int64(bitPattern: config.seed))
        try root.setAttribute("config", configJSON)
        try root.setAttribute("created", ISO8601DateFormatter().string(from: Date()))
        try root.setAttribute("test_acc", evaluatedAccuracy(trainer) ?? .nan)

        let optimizer = try root.createGroup("optimizer")
        try optimizer.setAttribute("kind", config.optimizer.rawValue)
        try optimizer.setAttribute("lr", Double(config.learningRate))
        try optimizer.setAttribute("momentum", Double(config.momentum))
        try optimizer.setAttribute("weight_decay", Double(config.weightDecay))
        try optimizer.setAttribute("nesterov", Int64(config.nesterov ? 1 : 0))
        try optimizer.setAttribute("step_count", Int64(trainer.optimizer.stepCount))
        for (name, storage) in trainer.optimizer.slots {
            for (index, (key, parameter)) in network.parameters.enumerated() {
                let start = network.parameterOffsets[index]
                try optimizer.write("\(key)/\(name)", shape: parameter.shape.dims,
                                    reals: UnsafeBufferPointer(start: storage.base + start, count: parameter.shape.count))
            }
        }

        let schedule = try root.createGroup("schedule")
        let s = trainer.schedule
        try schedule.setAttribute("kind", s.kind.rawValue)
        try schedule.setAttribute("base_rate", Double(s.baseRate))
        try schedule.setAttribute("warmup_steps", Int64(s.warmupSteps))
        try schedule.setAttribute("total_steps", Int64(s.totalSteps))
        try schedule.setAttribute("decay_steps", Int64(s.decaySteps))
        try schedule.setAttribute("gamma", Double(s.gamma))

        let sampler = try root.createGroup("sampler")
        let p = trainer.position
        try sampler.setAttribute("epoch", Int64(p.epoch))
        try sampler.setAttribute("batch", Int64(p.batch))
        try sampler.setAttribute("seed", Int64(bitPattern: config.seed))
        try sampler.setAttribute("shuffle", Int64(config.shuffle ? 1 : 0))
        try sampler.setAttribute("global_batch", Int64(config.batchSize))
        try sampler.setAttribute("epoch_loss_sum", p.tally.lossSum)
        try sampler.setAttribute("epoch_correct", Int64(p.tally.correct))
        try sampler.setAttribute("epoch_examples", Int64(p.tally.examples))

        try root.write("rng/dropout", shape: [trainer.communicator.size, dropoutStates.count / trainer.communicator.size],
                       int64s: dropoutStates)

        let metrics = try root.createGroup("metrics")
        let h = trainer.history
        let columns: [[Double]] = [h.map { Double($0.epoch) }, h.map { Double($0.step) }, h.map(\.trainLoss), h.map(\.trainAccuracy),
                                   h.map(\.testLoss), h.map(\.testAccuracy), h.map(\.imagesPerSecond), h.map(\.seconds)]
        for (field, column) in zip(metricFields, columns) { try metrics.write(field, shape: [column.count], doubles: column) }
    }

    /// A checkpoint's contents other than the weights, read and checked.
    public struct Contents {
        public var model: String
        public var epoch: Int, step: Int, worldSize: Int, globalBatch: Int, seed: UInt64
        public var config: String, created: String
        public var optimizerKind: String, optimizerSteps: Int
        /// The optimizer's slot names in the file; `slots` holds their values when read with a network.
        public var slotNames: [String]
        public var slots: [String: [Real]]
        public var position: Trainer.Position
        public var dropoutStates: [[UInt64]]
        public var history: [EpochRecord]
        /// Whether the file's checksum was verified (`.absent` for a version 1 file).
        public var checksum: FileChecksum.Status
    }

    /// Opens and checks a checkpoint: its format and version, its model (when `expecting`
    /// names one), and every part a resume needs. Errors name the file and the problem; those
    /// of a file whose bytes are damaged (checksum, truncation, unreadable parts) are marked
    /// `isDamage`, so that a resume can fall back to an older checkpoint on them alone.
    public static func read(_ path: String, expecting model: String? = nil, network: Network? = nil) throws -> Contents {
        // Every problem but a file of another format, version or model is damage.
        func fail(_ problem: String, damage: Bool = true) -> HDF5Error { HDF5Error("\(path): \(problem)", damage: damage) }
        guard FileManager.default.fileExists(atPath: path) else { throw fail("no such checkpoint") }
        let file: HDF5File
        do { file = try HDF5File(reading: path) } catch let error as HDF5Error where error.isDamage { throw error } catch {
            throw fail("not a readable HDF5 file (truncated or corrupt?)", damage: true)
        }
        let root = file.root
        do {
            guard root.hasAttribute("format"), try root.stringAttribute("format") == format else {
                throw fail("not a cnn-train checkpoint (no format attribute \"\(format)\")", damage: false)
            }
            let v = try root.intAttribute("version")
            guard readableVersions.contains(v) else {
                throw fail("checkpoint version \(v); this cnn-train reads versions \(readableVersions.lowerBound) to \(readableVersions.upperBound)", damage: false)
            }
            let named = try root.stringAttribute("model")
            if let model, named != model { throw fail("holds \(named), not \(model)", damage: false) }
            for group in ["model", "optimizer", "schedule", "sampler", "metrics"] where !root.isGroup(group) {
                throw fail("has no /\(group) group")
            }
            let optimizer = try root.group("optimizer"), sampler = try root.group("sampler")
            let keys = try optimizer.memberNames()
            let slotNames = try keys.first.map { try optimizer.group($0).memberNames() } ?? []
            var slots: [String: [Real]] = [:]
            if let network {
                for (index, (key, parameter)) in network.parameters.enumerated() where root.contains("optimizer/\(key)") {
                    for slot in try optimizer.group(key).memberNames() {
                        let dataset = try optimizer.dataset("\(key)/\(slot)")
                        guard dataset.shape == parameter.shape.dims else {
                            throw fail("/optimizer/\(key)/\(slot) has shape \(dataset.shape), expected \(parameter.shape.dims)")
                        }
                        let values: [Real] = try dataset.readReals()
                        if slots[slot] == nil { slots[slot] = [Real](repeating: 0, count: network.parameterCount) }
                        let start = network.parameterOffsets[index]
                        slots[slot]!.replaceSubrange(start..<(start + values.count), with: values)
                    }
                }
                if let slot = slots.keys.first, network.parameters.contains(where: { !root.contains("optimizer/\($0.key)/\(slot)") }) {
                    let missing = network.parameters.first { !root.contains("optimizer/\($0.key)/\(slot)") }!.key
                    throw fail("has no /optimizer/\(missing)/\(slot)")
                }
            }
            var position = Trainer.Position()
            position.epoch = Int(try sampler.intAttribute("epoch"))
            position.batch = Int(try sampler.intAttribute("batch"))
            position.tally.lossSum = try sampler.doubleAttribute("epoch_loss_sum")
            position.tally.correct = Int(try sampler.intAttribute("epoch_correct"))
            position.tally.examples = Int(try sampler.intAttribute("epoch_examples"))
            let worldSize = Int(try root.intAttribute("world_size"))
            let rng = try root.dataset("rng/dropout")
            let flat = try rng.readInt64s()
            let width = rng.shape.count == 2 ? rng.shape[1] : 0
            guard rng.shape.first == worldSize else { throw fail("/rng/dropout has shape \(rng.shape) for \(worldSize) ranks") }
            let states = (0..<worldSize).map { r in (0..<width).map { UInt64(bitPattern: flat[r * width + $0]) } }
            let metrics = try root.group("metrics")
            let columns = try metricFields.map { try metrics.dataset($0).readDoubles() }
            guard Set(columns.map(\.count)).count == 1 else { throw fail("/metrics columns differ in length") }
            // Counts must be whole numbers (a damaged file without a checksum could hold anything).
            let counts = try columns[0...1].map { column in
                try column.map { value in
                    guard let count = Int(exactly: value), count >= 0 else { throw fail("/metrics holds \(value) where a count belongs") }
                    return count
                }
            }
            let history = (0..<columns[0].count).map { i in
                EpochRecord(epoch: counts[0][i], step: counts[1][i], trainLoss: columns[2][i], trainAccuracy: columns[3][i],
                            testLoss: columns[4][i], testAccuracy: columns[5][i], imagesPerSecond: columns[6][i], seconds: columns[7][i],
                            computeSeconds: 0, communicationSeconds: 0)
            }
            return Contents(model: named, epoch: Int(try root.intAttribute("epoch")), step: Int(try root.intAttribute("step")),
                            worldSize: worldSize, globalBatch: Int(try root.intAttribute("global_batch")),
                            seed: UInt64(bitPattern: try root.intAttribute("seed")), config: try root.stringAttribute("config"),
                            created: try root.stringAttribute("created"), optimizerKind: try optimizer.stringAttribute("kind"),
                            optimizerSteps: Int(try optimizer.intAttribute("step_count")), slotNames: slotNames, slots: slots,
                            position: position,
                            dropoutStates: states, history: history, checksum: file.checksum)
        } catch let error as HDF5Error where !error.description.hasPrefix(path) {
            throw fail("is damaged: \(error)")
        } catch let error as HDF5Error where !error.isDamage && error.description.hasPrefix("\(path):/") {
            throw HDF5Error(error.description, damage: true)  // from the HDF5 layer: a missing or unreadable part
        }
    }
}
