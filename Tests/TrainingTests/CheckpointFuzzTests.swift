import Checkpoint
import Datasets
import Foundation
import HDF5
import Models
import Tensor
import Training
import XCTest

/// Damaged checkpoints, made by a seeded generator from one real checkpoint: every one is
/// refused (by the reader a resume uses and by the weights loader), with a damage error
/// naming the file, and none crashes the process or changes the network it was loading into.
///
/// The claim is "refused", not "refused or harmless": the checksum covers every byte of the
/// file, so no mutation is allowed to load, even one in padding that HDF5 would never read.
final class CheckpointFuzzTests: XCTestCase {
    private var scratch: URL!
    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("fuzz-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { if let scratch { try? FileManager.default.removeItem(at: scratch) } }

    /// A lenet-bn checkpoint after five SGD steps with momentum (an epoch is four, so it has
    /// optimizer slots, batch-norm buffers and a row of metrics), as the trainer writes it.
    private func checkpoint() throws -> (path: String, trainer: Trainer) {
        var config = TrainingConfig()
        config.batchSize = 16
        config.maxSteps = 5
        config.momentum = 0.9
        let splits = Synthetic.splits(train: 64, test: 16, classes: 10, channels: 1, side: 28, seed: 5)
        let network = try ModelZoo.make("lenet-bn")
        network.initialize(.xavier, seed: 1)
        let trainer = Trainer(network: network, config: config, splits: splits, preprocessing: Preprocessing(side: 28))
        try trainer.run()
        let directory = scratch.appendingPathComponent("run").path
        let checkpointer = try Checkpointer(directory: directory, keep: 1, configJSON: "{}")
        try checkpointer.save(trainer)
        try checkpointer.finish()
        return (try XCTUnwrap(Checkpointer.latest(in: directory)), trainer)
    }

    /// The parameters and buffers of a network, for "nothing changed".
    private func state(_ network: Network) -> [[Real]] {
        network.stateDict.map { entry -> [Real] in
            switch entry.value {
            case let .tensor(t): return t.array
            case let .counter(get, _): return [Real(get())]
            }
        }
    }

    func testTheUndamagedCheckpointVerifiesAndLoadsExactly() throws {
        let (path, trainer) = try checkpoint()
        let contents = try CheckpointFile.read(path, expecting: "lenet-bn", network: trainer.network)
        XCTAssertEqual(contents.checksum, .verified)
        XCTAssertEqual(contents.step, 5)
        let network = try ModelZoo.make("lenet-bn")
        XCTAssertEqual(try ModelWeights.load(into: network, from: path), .verified)
        // The file holds the build's precision: exactly the trainer's state.
        XCTAssertEqual(state(network), state(trainer.network))
    }

    func testEveryDamagedCheckpointIsRefused() throws {
        let (path, trainer) = try checkpoint()
        let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let extents = try XCTUnwrap(FileChecksum.extents(in: original))
        let network = trainer.network
        XCTAssertEqual(extents.count, network.stateDict.count + network.parameters.count + 8,
                       "every state_dict entry, momentum buffer and metrics column is in the table (no dropout: /rng/dropout is empty)")
        // Bytes outside every dataset: the checksum header, HDF5's metadata, the table.
        var inData = [Bool](repeating: false, count: original.count)
        for e in extents { for i in e.offset..<(e.offset + e.length) { inData[i] = true } }
        let metadata = inData.indices.filter { !inData[$0] }
        XCTAssertGreaterThan(metadata.count, 10_000)

        var generator = SeededGenerator(seed: 20_251_123)
        func below(_ n: Int) -> Int { Int(generator.next() % UInt64(n)) }
        func flip(_ bytes: inout [UInt8], at positions: () -> Int) {
            for _ in 0...below(8) {  // 1 to 8 bits
                bytes[positions()] ^= UInt8(1) << UInt8(below(8))
            }
        }
        let kinds = ["bit flips anywhere", "bit flips in metadata", "one bit flip in a dataset", "truncation", "zeroed block"]
        var refused = [Int](repeating: 0, count: kinds.count), tried = refused
        let probe = try ModelZoo.make("lenet-bn")
        let before = state(probe)
        for trial in 0..<400 {
            let kind = trial % kinds.count
            var bytes = original
            var damagedDataset: String?
            repeat {
                bytes = original
                switch kind {
                case 0: flip(&bytes) { below(original.count) }
                case 1: flip(&bytes) { metadata[below(metadata.count)] }
                case 2:
                    let extent = extents[below(extents.count)]
                    bytes[extent.offset + below(extent.length)] ^= UInt8(1) << UInt8(below(8))
                    damagedDataset = extent.path
                case 3: bytes.removeLast(1 + below(bytes.count))
                default:
                    let length = 1 + below(4096), start = below(bytes.count - length)
                    bytes.replaceSubrange(start..<(start + length), with: [UInt8](repeating: 0, count: length))
                }
            } while bytes == original  // a flip that cancels out, zeros over zeros: draw again
            let mutated = scratch.appendingPathComponent("mutant-\(trial).h5").path
            try Data(bytes).write(to: URL(fileURLWithPath: mutated))
            tried[kind] += 1

            let what = "trial \(trial) (\(kinds[kind]))"
            var message = ""
            do {
                _ = try CheckpointFile.read(mutated, expecting: "lenet-bn", network: probe)
                XCTFail("\(what): the checkpoint reader accepted a damaged file")
            } catch let error as HDF5Error {
                message = error.description
                XCTAssertTrue(error.isDamage, "\(what): \(error) is not marked as damage, so a resume would not fall back")
                XCTAssertTrue(message.hasPrefix(mutated + ": "), "\(what): \(message) does not start with the file")
                XCTAssertFalse(message.contains("\n"), "\(what): one line")
            }
            do {
                try ModelWeights.load(into: probe, from: mutated)
                XCTFail("\(what): the weights loader accepted a damaged file")
            } catch {
                XCTAssertTrue("\(error)".hasPrefix(mutated), "\(what): \(error)")
            }
            if let damagedDataset {
                XCTAssertEqual(message, "\(mutated): checksum mismatch in dataset \(damagedDataset)", what)
            }
            if !message.isEmpty { refused[kind] += 1 }
            try FileManager.default.removeItem(atPath: mutated)
        }
        XCTAssertEqual(state(probe), before, "no refused file changed the network")
        XCTAssertEqual(refused, tried, "refused per kind \(Array(zip(kinds, refused)))")
        XCTAssertEqual(tried.reduce(0, +), 400)
    }
}
