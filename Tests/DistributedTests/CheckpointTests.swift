import Foundation
import HDF5
import XCTest

/// Checkpoints written by rank 0 and exact resume, with real processes.
final class CheckpointTests: MPITestCase {
    /// 2 ranks, 10 steps (an epoch is 10 global batches of 32 here), a checkpoint every 3.
    private let common = ["lenet-bn", "--dataset", "synthetic", "--synthetic-count", "300,40", "--batch-size", "32",
                          "--max-steps", "10", "--momentum", "0.9", "--checkpoint-every", "3", "--dropout", "0"]

    private func directory(_ name: String) -> String { scratch.appendingPathComponent(name).path }

    /// Every dataset of a checkpoint by path, as float64.
    private func contents(_ path: String) throws -> [String: [Double]] {
        var out: [String: [Double]] = [:]
        func walk(_ group: HDF5Group, _ prefix: String) throws {
            for name in try group.memberNames() {
                if group.isGroup(name) { try walk(try group.group(name), prefix + name + "/") } else {
                    let d = try group.dataset(name)
                    out[prefix + name] = d.elementKind == .integer ? try d.readInt64s().map { Double($0) } : try d.readDoubles()
                }
            }
        }
        try walk(HDF5File(reading: path).root, "")
        return out
    }

    /// The largest difference between two checkpoints over every dataset, each relative to its
    /// largest value, and where.
    private func checkpointDifference(_ a: String, _ b: String) throws -> (Double, String) {
        let x = try contents(a), y = try contents(b)
        XCTAssertEqual(Set(x.keys), Set(y.keys))
        // The momentum of a bias that batch norm follows is pure roundoff (its gradient is zero in
        // exact arithmetic), so optimizer slots are judged at the scale of the whole optimizer state.
        let optimizerScale = x.filter { $0.key.hasPrefix("optimizer/") }.values.flatMap { $0 }.map(abs).max() ?? 0
        var worst = (0.0, "")
        for (key, values) in x where !key.hasPrefix("rng/") && key != "metrics/seconds" && key != "metrics/images_per_sec" {
            guard let other = y[key] else { continue }
            let scale = max(values.map(abs).max() ?? 0, key.hasPrefix("optimizer/") ? optimizerScale : 0, 1e-30)
            let diff = zip(values, other).map { abs($0 - $1) }.max() ?? 0
            if diff / scale > worst.0 { worst = (diff / scale, key) }
        }
        return worst
    }

    private func assertSameTraining(_ a: String, _ b: String, within tolerance: Double, file: StaticString = #filePath, line: UInt = #line) throws {
        let (worst, key) = try checkpointDifference(a, b)
        XCTAssertLessThanOrEqual(worst, tolerance, "\(key) differs by \(worst)", file: file, line: line)
    }

    func testAKilledRunResumesToTheSameResultBitForBit() throws {
        let straight = try run(ranks: 2, common + ["--checkpoint-dir", directory("straight")])
        XCTAssertEqual(straight.status, 0, straight.err)
        let killed = try run(ranks: 2, common + ["--checkpoint-dir", directory("killed")],
                             environment: ["CNN_TRAIN_FAULT": "kill-rank-after-step:1:7"])
        XCTAssertNotEqual(killed.status, 0, "rank 1 was killed after step 7")
        XCTAssertEqual(try String(contentsOfFile: directory("killed") + "/latest", encoding: .utf8), "ckpt-step-000000006.h5\n")
        let resumed = try run(ranks: 2, common + ["--checkpoint-dir", directory("killed"), "--resume", "auto"])
        XCTAssertEqual(resumed.status, 0, resumed.err)
        XCTAssertTrue(resumed.out.contains("resuming from"), resumed.out)
        // Bit for bit: the arithmetic is the same, and the file holds the build's own precision.
        try assertSameTraining(directory("straight") + "/ckpt-step-000000010.h5", directory("killed") + "/ckpt-step-000000010.h5",
                               within: 0)
    }

    /// Resumed on another number of ranks, a run continues as the ranks it has now would have
    /// trained: the same global batches, each step's sums grouped by the new ranks. So it may
    /// differ from the 2-rank run by what regrouping does, measured here as how far straight
    /// runs on 1 and 3 ranks differ from it, times λ = 4 (the golden tests' probabilistic
    /// bound); a lost optimizer slot or a wrong position in the epoch is far beyond that.
    func testResumingOnOneOrThreeRanksKeepsTheResult() throws {
        let synced = common + ["--sync-bn"]
        let reference = directory("two") + "/ckpt-step-000000010.h5"
        XCTAssertEqual(try run(ranks: 2, synced + ["--checkpoint-dir", directory("two")]).status, 0)
        var regrouping = 0.0
        for ranks in [1, 3] {
            let straight = directory("straight-\(ranks)")
            XCTAssertEqual(try run(ranks: ranks == 1 ? 0 : ranks, synced + ["--checkpoint-dir", straight]).status, 0)
            regrouping = max(regrouping, try checkpointDifference(reference, straight + "/ckpt-step-000000010.h5").0)
        }
        let tolerance = 4 * regrouping
        for ranks in [1, 3] {
            let dir = directory("from-two-to-\(ranks)")
            let partial = try run(ranks: 2, synced.map { $0 == "10" ? "6" : $0 } + ["--checkpoint-dir", dir])
            XCTAssertEqual(partial.status, 0, partial.err)
            let resumed = try run(ranks: ranks == 1 ? 0 : ranks, synced + ["--checkpoint-dir", dir, "--resume", "auto"])
            XCTAssertEqual(resumed.status, 0, resumed.err)
            try assertSameTraining(reference, dir + "/ckpt-step-000000010.h5", within: tolerance)
            print("resumed on \(ranks) rank(s): differs by \(try checkpointDifference(reference, dir + "/ckpt-step-000000010.h5").0), "
                  + "tolerance \(tolerance) (regrouping moves it \(regrouping))")
        }
    }

    func testDamagedOrForeignCheckpointsAreRefusedWithTheirOwnMessage() throws {
        XCTAssertEqual(try run(ranks: 0, common + ["--checkpoint-dir", directory("good")]).status, 0)
        let good = directory("good") + "/ckpt-step-000000010.h5"
        let bytes = try Data(contentsOf: URL(fileURLWithPath: good))
        func refused(_ path: String, _ message: String, file: StaticString = #filePath, line: UInt = #line) throws {
            let outcome = try run(ranks: 0, ["lenet-bn", "--dataset", "synthetic", "--synthetic-count", "300,40", "--batch-size", "32",
                                             "--resume", path])
            XCTAssertNotEqual(outcome.status, 0, file: file, line: line)
            XCTAssertTrue(outcome.err.contains(message), "expected '\(message)' in: \(outcome.err)", file: file, line: line)
            XCTAssertTrue(outcome.err.contains(path), "the message names the file", file: file, line: line)
        }
        for fraction in [0.05, 0.5, 0.95] {
            let cut = directory("cut-\(fraction).h5"), length = Int(Double(bytes.count) * fraction)
            try bytes.prefix(length).write(to: URL(fileURLWithPath: cut))
            try refused(cut, "truncated: \(length) of \(bytes.count) bytes")
        }
        let missing = directory("missing.h5")
        try bytes.write(to: URL(fileURLWithPath: missing))
        try HDF5File(updating: missing).root.remove("model/fc1.weight")
        try refused(missing, "/model has no 'fc1.weight'")

        XCTAssertEqual(try run(ranks: 0, ["lenet"] + common.dropFirst() + ["--checkpoint-dir", directory("other")]).status, 0)
        try refused(directory("other") + "/ckpt-step-000000010.h5", "holds lenet, not lenet-bn")

        let plain = directory("weights.h5")
        XCTAssertEqual(try run(ranks: 0, common.filter { $0 != "--checkpoint-every" && $0 != "3" } + ["--save", plain]).status, 0)
        try refused(plain, "not a cnn-train checkpoint")
        // Nothing was overwritten by the refusals.
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: good)), bytes)
    }

    func testAKillDuringAWriteLeavesThePreviousCheckpoint() throws {
        let dir = directory("interrupted")
        let killed = try run(ranks: 0, common + ["--checkpoint-dir", dir], environment: ["CNN_TRAIN_FAULT": "kill-during-checkpoint:2"])
        XCTAssertNotEqual(killed.status, 0)
        XCTAssertEqual(try String(contentsOfFile: dir + "/latest", encoding: .utf8), "ckpt-step-000000003.h5\n")
        XCTAssertTrue(try FileManager.default.contentsOfDirectory(atPath: dir).contains(".ckpt-step-000000006.h5.tmp"),
                      "the interrupted write stays under its temporary name")
        let inspect = try run(ranks: 0, ["inspect", dir])
        XCTAssertEqual(inspect.status, 0, inspect.err)
        XCTAssertTrue(inspect.out.contains("step 3"), inspect.out)
        let resumed = try run(ranks: 0, common + ["--checkpoint-dir", dir, "--resume", "auto"])
        XCTAssertEqual(resumed.status, 0, resumed.err)
        XCTAssertTrue(resumed.out.contains("step 3"), resumed.out)
    }

    /// 300 examples in batches of 32 make 10 steps an epoch: checkpoints every 3 steps and at
    /// steps 10, 20, 30 and 40, where the epochs end and the weights have a test accuracy.
    func testKeepsTheNewestAndTheBestEvaluated() throws {
        let dir = directory("kept"), metrics = directory("kept.jsonl")
        let outcome = try run(ranks: 0, common.map { $0 == "10" ? "40" : $0 } + ["--checkpoint-dir", dir, "--keep", "2", "--metrics", metrics])
        XCTAssertEqual(outcome.status, 0, outcome.err)
        let epochs = try String(contentsOfFile: metrics, encoding: .utf8).split(separator: "\n")
            .compactMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            .filter { $0["event"] as? String == "epoch" }
        let accuracy = Dictionary(uniqueKeysWithValues: epochs.map { ($0["step"] as! Int, $0["test_acc"] as! Double) })
        XCTAssertEqual(accuracy.keys.sorted(), [10, 20, 30, 40])
        let best = accuracy.keys.sorted().max { accuracy[$0]! < accuracy[$1]! }!   // the earliest of equals
        let name = { (step: Int) in String(format: "ckpt-step-%09d.h5", step) }
        let names = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".h5") }
        XCTAssertEqual(Set(names), Set([39, 40, best].map(name)), "the two newest and the best (step \(best))")
        // A file's test_acc belongs to its own weights: none for a step inside an epoch.
        XCTAssertTrue(try HDF5File(reading: dir + "/" + name(39)).root.doubleAttribute("test_acc").isNaN)
        XCTAssertEqual(try HDF5File(reading: dir + "/" + name(40)).root.doubleAttribute("test_acc"), accuracy[40]!)
    }

    /// With checkpoints every 5 steps, step 10 is both a multiple and an epoch's end: its file
    /// must close the epoch and carry that epoch's test accuracy.
    func testACheckpointAtAnEpochsEndClosesTheEpoch() throws {
        let dir = directory("epoch-end"), metrics = directory("epoch-end.jsonl")
        let args = common.map { $0 == "10" ? "20" : $0 == "3" ? "5" : $0 } + ["--checkpoint-dir", dir, "--keep", "10", "--metrics", metrics]
        let outcome = try run(ranks: 0, args)
        XCTAssertEqual(outcome.status, 0, outcome.err)
        let firstEpoch = try String(contentsOfFile: metrics, encoding: .utf8).split(separator: "\n")
            .compactMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            .first { $0["event"] as? String == "epoch" }!
        XCTAssertEqual(firstEpoch["step"] as? Int, 10)
        let atTen = try HDF5File(reading: dir + "/ckpt-step-000000010.h5").root
        XCTAssertEqual(try atTen.intAttribute("epoch"), 1, "completed epochs")
        XCTAssertEqual(try atTen.doubleAttribute("test_acc"), firstEpoch["test_acc"] as! Double)
        XCTAssertTrue(try HDF5File(reading: dir + "/ckpt-step-000000005.h5").root.doubleAttribute("test_acc").isNaN)
    }

    // MARK: - A run that diverges

    private func latest(_ dir: String) throws -> String { try String(contentsOfFile: dir + "/latest", encoding: .utf8) }

    /// The steps of the checkpoints in `dir`.
    private func checkpointSteps(_ dir: String) throws -> [Int] {
        try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".h5") }
            .map { Int($0.dropFirst("ckpt-step-".count).dropLast(".h5".count))! }.sorted()
    }

    /// A NaN that only rank 1 sees in its summed gradient at step 7 stops both ranks at that
    /// step, before its update, with one message from rank 0; `latest` stays on step 6, and
    /// resuming from it gives the straight run bit for bit: nothing of the broken step is kept.
    func testANonFiniteGradientOnOneRankStopsEveryRankAndLeavesTheLastGoodCheckpoint() throws {
        let straight = try run(ranks: 2, common + ["--checkpoint-dir", directory("straight")])
        XCTAssertEqual(straight.status, 0, straight.err)
        let dir = directory("stopped")
        let stopped = try run(ranks: 2, common + ["--checkpoint-dir", dir], environment: ["CNN_TRAIN_FAULT": "nan-gradient-on-rank:1:7"])
        XCTAssertNotEqual(stopped.status, 0)
        XCTAssertEqual(stopped.err.split(separator: "\n").filter { $0.hasPrefix("Error") },
                       ["Error: non-finite gradient norm (nan) at step 7 (epoch 1, batch 7); no checkpoint written; "
                        + "latest is \(dir)/ckpt-step-000000006.h5 (step 6); lower the learning rate (--lr) or clip the gradients (--max-grad-norm)"],
                       stopped.err)
        XCTAssertEqual(try latest(dir), "ckpt-step-000000006.h5\n")
        XCTAssertEqual(try checkpointSteps(dir), [3, 6])
        let resumed = try run(ranks: 2, common + ["--checkpoint-dir", dir, "--resume", "auto"])
        XCTAssertEqual(resumed.status, 0, resumed.err)
        try assertSameTraining(directory("straight") + "/ckpt-step-000000010.h5", dir + "/ckpt-step-000000010.h5",
                               within: 0)
    }

    /// Resumed at step 6 with the largest learning rate there is, the run overflows within a
    /// step or two: it stops with a message naming the step, writes no checkpoint of it, and a
    /// resume with the original rate gives the straight run bit for bit.
    func testADivergingRunWritesNoCheckpointOfItsBrokenState() throws {
        let straight = try run(ranks: 2, common + ["--checkpoint-dir", directory("straight")])
        XCTAssertEqual(straight.status, 0, straight.err)
        let dir = directory("diverging")
        let first = try run(ranks: 2, common.map { $0 == "10" ? "6" : $0 } + ["--checkpoint-dir", dir])
        XCTAssertEqual(first.status, 0, first.err)
        let largest = try binaryIsFloat64() ? "1.7e308" : "3.4e38"
        let diverged = try run(ranks: 2, common + ["--checkpoint-dir", dir, "--resume", "auto", "--lr", largest])
        XCTAssertNotEqual(diverged.status, 0)
        let message = try XCTUnwrap(diverged.err.split(separator: "\n").first { $0.hasPrefix("Error") }, diverged.err)
        XCTAssertTrue(message.hasPrefix("Error: non-finite "), String(message))
        let step = try XCTUnwrap(message.firstMatch(of: /(at|after) step (\d+) \(epoch 1, batch \d+\)/).flatMap { Int($0.2) }, String(message))
        XCTAssertTrue((7...10).contains(step), String(message))
        XCTAssertTrue(message.contains("no checkpoint written; latest is \(dir)/ckpt-step-000000006.h5 (step 6)"), String(message))
        XCTAssertEqual(try latest(dir), "ckpt-step-000000006.h5\n")
        XCTAssertEqual(try checkpointSteps(dir), [3, 6])
        let resumed = try run(ranks: 2, common + ["--checkpoint-dir", dir, "--resume", "auto"])
        XCTAssertEqual(resumed.status, 0, resumed.err)
        XCTAssertTrue(resumed.out.contains("resuming from \(dir)/ckpt-step-000000006.h5"), resumed.out)
        try assertSameTraining(directory("straight") + "/ckpt-step-000000010.h5", dir + "/ckpt-step-000000010.h5",
                               within: 0)
    }

    // MARK: - Fine-tuning under --resume auto

    /// What launch/slurm.sbatch adds to every job's arguments (with a small --checkpoint-every).
    private func slurmArguments(_ dir: String) -> [String] { ["--checkpoint-dir", dir, "--checkpoint-every", "3", "--resume", "auto"] }

    /// A fine-tuning job under the Slurm script's arguments starts from --init-from when its
    /// directory is empty and, requeued with the same command line, continues from its
    /// checkpoint (not from the file again): the same weights as one uninterrupted job.
    func testAFineTuningJobStartsFromItsWeightsAndIsRequeuedFromItsCheckpoint() throws {
        let pretrained = directory("pretrained.h5")
        let base = ["lenet-bn", "--dataset", "synthetic", "--synthetic-count", "300,40", "--batch-size", "32", "--dropout", "0", "--momentum", "0.9"]
        XCTAssertEqual(try run(ranks: 0, base + ["--max-steps", "4", "--seed", "7", "--save", pretrained]).status, 0)
        let fineTune = base + ["--init-from", pretrained, "--lr", "0.1"]
        let whole = directory("whole.h5"), wholeJob = directory("whole-job")
        let uninterrupted = try run(ranks: 2, fineTune + ["--max-steps", "8", "--save", whole] + slurmArguments(wholeJob))
        XCTAssertEqual(uninterrupted.status, 0, uninterrupted.err)
        XCTAssertTrue(uninterrupted.out.contains("no checkpoint in \(wholeJob): starting from \(pretrained)"), uninterrupted.out)

        let dir = directory("job")
        let first = try run(ranks: 2, fineTune + ["--max-steps", "8"] + slurmArguments(dir),
                            environment: ["CNN_TRAIN_FAULT": "kill-rank-after-step:1:5"])
        XCTAssertNotEqual(first.status, 0, "rank 1 was killed after step 5")
        XCTAssertEqual(try latest(dir), "ckpt-step-000000003.h5\n")
        let requeued = directory("requeued.h5")
        let second = try run(ranks: 2, fineTune + ["--max-steps", "8", "--save", requeued] + slurmArguments(dir))
        XCTAssertEqual(second.status, 0, second.err)
        XCTAssertTrue(second.out.contains("resuming from \(dir)/ckpt-step-000000003.h5"), second.out)
        // Bit for bit, as any resume.
        let (worst, key) = try difference(whole, requeued)
        XCTAssertEqual(worst, 0, "the requeued fine-tune differs from the uninterrupted one at \(key)")
        // Negative control: the same job without --init-from ends elsewhere.
        let fresh = directory("fresh.h5")
        XCTAssertEqual(try run(ranks: 2, base + ["--lr", "0.1", "--max-steps", "8", "--save", fresh] + slurmArguments(directory("fresh-job"))).status, 0)
        XCTAssertGreaterThan(try difference(whole, fresh).0, 1e-2, "--init-from decided where the job started")

        let refused = try run(ranks: 0, fineTune + ["--resume", dir])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.err.contains("--resume \(dir) and --init-from exclude each other"), refused.err)
    }
}

// MARK: - Checksums and a full disk

extension CheckpointTests {
    /// A copy of `source` at `target` with one bit flipped at `offset`.
    private func flipBit(of source: String, at offset: Int, into target: String) throws {
        var bytes = try Data(contentsOf: URL(fileURLWithPath: source))
        bytes[offset] ^= 0x04
        try bytes.write(to: URL(fileURLWithPath: target))
    }

    /// Where a dataset's bytes lie in a checksummed file.
    private func extent(_ dataset: String, in path: String) throws -> FileChecksum.Extent {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        return try XCTUnwrap(FileChecksum.extents(in: bytes)?.first { $0.path == dataset }, "\(dataset) in \(path)")
    }

    func testAFlippedBitIsRefusedNamingTheDatasetAndInspectVerifyFindsIt() throws {
        let dir = directory("flipped")
        XCTAssertEqual(try run(ranks: 0, common + ["--checkpoint-dir", dir]).status, 0)
        let good = dir + "/ckpt-step-000000010.h5", bad = dir + "/ckpt-step-000000011.h5"
        let weight = try extent("/model/fc1.weight", in: good)
        try flipBit(of: good, at: weight.offset + weight.length / 2, into: bad)

        let eval = try run(ranks: 0, ["eval", "--checkpoint", bad, "--dataset", "synthetic", "--synthetic-count", "300,40"])
        XCTAssertNotEqual(eval.status, 0)
        XCTAssertEqual(eval.err, "Error: \(bad): checksum mismatch in dataset /model/fc1.weight\n")
        XCTAssertEqual(try run(ranks: 0, ["eval", "--checkpoint", good, "--dataset", "synthetic", "--synthetic-count", "300,40"]).status, 0)

        let verify = try run(ranks: 0, ["inspect", "--verify", dir])
        XCTAssertNotEqual(verify.status, 0)
        XCTAssertEqual(verify.out.split(separator: "\n"), [
            "\(dir)/ckpt-step-000000006.h5: ok", "\(dir)/ckpt-step-000000009.h5: ok", "\(good): ok",
            "\(bad): checksum mismatch in dataset /model/fc1.weight",
        ])
        XCTAssertTrue(verify.err.contains("1 problem(s) in 4 file(s)"), verify.err)
        let one = try run(ranks: 0, ["inspect", "--verify", good])
        XCTAssertEqual(one.status, 0, one.err)
        XCTAssertEqual(one.out, "\(good): ok\n")
    }

    func testResumeAutoSkipsDamagedCheckpointsForTheNewestThatVerifies() throws {
        let dir = directory("fallback")
        XCTAssertEqual(try run(ranks: 0, common + ["--checkpoint-dir", dir]).status, 0)
        let newest = dir + "/ckpt-step-000000010.h5", older = dir + "/ckpt-step-000000009.h5"
        // A bit of metadata (the superblock, right after HDF5's signature) in the newest file.
        try flipBit(of: newest, at: FileChecksum.headerSize + 9, into: newest)
        let resumed = try run(ranks: 0, common.map { $0 == "10" ? "12" : $0 } + ["--checkpoint-dir", dir, "--resume", "auto"])
        XCTAssertEqual(resumed.status, 0, resumed.err)
        XCTAssertTrue(resumed.err.contains("--resume: skipping \(newest): checksum mismatch in the HDF5 metadata"), resumed.err)
        XCTAssertTrue(resumed.out.contains("resuming from \(older): step 9"), resumed.out)

        // Another model's checkpoint is not damage: refused, not skipped.
        let other = try run(ranks: 0, ["lenet"] + common.dropFirst() + ["--checkpoint-dir", dir, "--resume", "auto"])
        XCTAssertNotEqual(other.status, 0)
        XCTAssertTrue(other.err.contains("holds lenet-bn, not lenet"), other.err)

        // With every checkpoint damaged, nothing is resumed and nothing starts afresh.
        let all = directory("all-damaged")
        XCTAssertEqual(try run(ranks: 0, common + ["--checkpoint-dir", all]).status, 0)
        for name in try FileManager.default.contentsOfDirectory(atPath: all) where name.hasSuffix(".h5") {
            try flipBit(of: all + "/" + name, at: 1000, into: all + "/" + name)
        }
        let none = try run(ranks: 0, common + ["--checkpoint-dir", all, "--resume", "auto"])
        XCTAssertNotEqual(none.status, 0)
        XCTAssertTrue(none.err.contains("\(all): none of its 3 checkpoint(s) verifies"), none.err)
    }

    /// A checkpoint written before checksums (format version 1: no user block, no table) still
    /// resumes and evaluates, with a warning.
    func testAnUnchecksummedVersion1CheckpointLoadsWithAWarning() throws {
        let dir = directory("v2")
        XCTAssertEqual(try run(ranks: 0, common + ["--checkpoint-dir", dir]).status, 0)
        let legacy = directory("legacy.h5")
        // The HDF5 file inside: what cnn-train wrote before (HDF5 ignores the table after it).
        try Data(contentsOf: URL(fileURLWithPath: dir + "/ckpt-step-000000010.h5")).dropFirst(FileChecksum.headerSize)
            .write(to: URL(fileURLWithPath: legacy))
        try HDF5File(updating: legacy).root.setAttribute("version", Int64(1))
        let warning = "warning: \(legacy) has no checksum (written by an older cnn-train or another tool); loaded without verification\n"

        let eval = try run(ranks: 0, ["eval", "--checkpoint", legacy, "--dataset", "synthetic", "--synthetic-count", "300,40"])
        XCTAssertEqual(eval.status, 0, eval.err)
        XCTAssertEqual(eval.err, warning)
        let resumed = try run(ranks: 0, common.map { $0 == "10" ? "12" : $0 } + ["--resume", legacy, "--checkpoint-dir", directory("from-legacy")])
        XCTAssertEqual(resumed.status, 0, resumed.err)
        XCTAssertEqual(resumed.err, warning)
        XCTAssertTrue(resumed.out.contains("resuming from \(legacy): step 10"), resumed.out)
        let verify = try run(ranks: 0, ["inspect", "--verify", legacy])
        XCTAssertEqual(verify.status, 0)
        XCTAssertTrue(verify.out.hasPrefix("\(legacy): ok, unverified"), verify.out)
    }

    /// A file-size limit below a checkpoint's size, as a disk that fills up: the write fails
    /// (EFBIG), the run says so and ends non-zero, and the previous checkpoint and `latest`
    /// are as they were; nothing is left under a checkpoint's name, nor a temporary file.
    func testAFullDiskLeavesThePreviousCheckpointAndLatestIntact() throws {
        let dir = directory("full")
        XCTAssertEqual(try run(ranks: 0, common + ["--checkpoint-dir", dir]).status, 0)
        let before = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
        let newest = try Data(contentsOf: URL(fileURLWithPath: dir + "/ckpt-step-000000010.h5"))
        let latest = try String(contentsOfFile: dir + "/latest", encoding: .utf8)
        XCTAssertEqual(latest, "ckpt-step-000000010.h5\n")
        let limit = newest.count / 1024 / 4  // KiB: a quarter of a checkpoint

        let full = try run(ranks: 0, common.map { $0 == "10" ? "14" : $0 } + ["--checkpoint-dir", dir, "--resume", "auto"],
                           fileSizeLimit: limit)
        XCTAssertNotEqual(full.status, 0, "the run reports the failed write")
        XCTAssertTrue(full.out.contains("resuming from"), full.out)
        let failed = dir + "/ckpt-step-000000012.h5"
        XCTAssertTrue(full.err.hasPrefix("Error: \(failed): cannot write \(newest.count) bytes, stopped after \(limit * 1024) (File too large)"),
                      full.err)
        XCTAssertTrue(full.err.hasSuffix("'latest' still names ckpt-step-000000010.h5\n"), full.err)
        XCTAssertEqual(full.err.split(separator: "\n").count, 1, "one line")

        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).sorted(), before, "no new name, no temporary file")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir + "/ckpt-step-000000010.h5")), newest)
        XCTAssertEqual(try String(contentsOfFile: dir + "/latest", encoding: .utf8), latest)
        let verify = try run(ranks: 0, ["inspect", "--verify", dir])
        XCTAssertEqual(verify.status, 0, verify.out + verify.err)
    }
}
