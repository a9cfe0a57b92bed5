import Foundation
import Tensor
import XCTest

/// The `cnn-train` executable as a user runs it.
final class CLITests: XCTestCase {
    struct Result { var status: Int32; var out: String; var err: String }

    /// The binary built beside this test bundle.
    static let binary: URL = {
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let direct = dir.appendingPathComponent("cnn-train")
        if FileManager.default.fileExists(atPath: direct.path) { return direct }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../.build/release/cnn-train").standardized
    }()

    @discardableResult
    func run(_ arguments: [String], environment: [String: String]? = nil) throws -> Result {
        let process = Process()
        process.executableURL = Self.binary
        process.arguments = arguments
        if let environment { process.environment = environment }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let outData = out.fileHandleForReading.readDataToEndOfFile(), errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, out: String(decoding: outData, as: UTF8.self),
                      err: String(decoding: errData, as: UTF8.self))
    }

    private var scratch: URL!
    override func setUpWithError() throws {
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: Self.binary.path), "cnn-train not built at \(Self.binary.path)")
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { if let scratch { try? FileManager.default.removeItem(at: scratch) } }

    func testHelpListsEveryTrainingOption() throws {
        let help = try run(["train", "--help"]).out
        for option in ["--dataset", "--data-dir", "--epochs", "--max-steps", "--batch-size", "--lr", "--momentum", "--weight-decay",
                       "--optimizer", "--schedule", "--warmup-epochs", "--side", "--augment", "--dropout", "--seed", "--no-shuffle",
                       "--limit-train", "--limit-test", "--threads", "--init-from", "--metrics", "--save", "--resume", "--checkpoint-dir",
                       "--checkpoint-every", "--keep", "--max-grad-norm", "--sync-bn", "--bucket-mb", "--grad-dtype", "--channels",
                       "--replace-head", "--initialization", "--label-smoothing", "--engine", "--conv-algorithm"] {
            XCTAssertTrue(help.contains(option), "train --help lacks \(option)")
        }
        for command in ["train", "eval", "models", "bench", "version"] {
            XCTAssertTrue(try run(["--help"]).out.contains(command), "--help lacks \(command)")
            XCTAssertEqual(try run([command, "--help"]).status, 0, command)
        }
    }

    /// Where OpenBLAS falls back to its generic kernel (as Debian's does on CPUs newer than
    /// it), cnn-train runs with the best kernel the CPU's flags allow; a kernel the user
    /// names is kept.
    func testRunsWithTheBestBLASKernelUnlessOneIsNamed() throws {
        var environment = ProcessInfo.processInfo.environment
        try XCTSkipIf(environment["OPENBLAS_CORETYPE"] != nil, "OPENBLAS_CORETYPE is set for the tests themselves")
        let expected = BLAS.coreName == "Prescott" ? BLAS.bestCore(forCPUFlags: BLAS.cpuFlags()) ?? "Prescott" : BLAS.coreName
        XCTAssertTrue(try run(["version"], environment: environment).out.contains("core \(expected),"))
        environment["OPENBLAS_CORETYPE"] = "Prescott"
        XCTAssertTrue(try run(["version"], environment: environment).out.contains("core Prescott,"))
    }

    /// OpenMP's threads spin briefly, then sleep, unless the user chose (libgomp's default
    /// spins ten times longer, on cores other threads need); libgomp reads the policy only
    /// when it is loaded.
    func testOpenMPSpinsBrieflyUnlessTheUserChose() throws {
        var environment = ProcessInfo.processInfo.environment
        environment["OMP_WAIT_POLICY"] = nil
        environment["GOMP_SPINCOUNT"] = nil
        XCTAssertTrue(try run(["version"], environment: environment).out.contains("wait policy PASSIVE, spin count 30000\n"))
        environment["OMP_WAIT_POLICY"] = "active"
        XCTAssertTrue(try run(["version"], environment: environment).out.contains("wait policy active\n"))
    }

    /// Large buffers are mapped from a fixed size on and unmapped when freed, unless the
    /// user chose (glibc reads the threshold only when it is loaded).
    func testLargeBuffersGoBackWhenFreedUnlessTheUserChose() throws {
        var environment = ProcessInfo.processInfo.environment
        environment["MALLOC_MMAP_THRESHOLD_"] = nil
        XCTAssertTrue(try run(["version"], environment: environment).out.contains("malloc: buffers from 131072 bytes mapped"))
        environment["MALLOC_MMAP_THRESHOLD_"] = "1048576"
        XCTAssertTrue(try run(["version"], environment: environment).out.contains("malloc: buffers from 1048576 bytes mapped"))
    }

    func testBadInputEndsWithAnErrorAndNonZeroStatus() throws {
        let unknown = try run(["resnet51"])
        XCTAssertNotEqual(unknown.status, 0)
        XCTAssertTrue(unknown.err.contains("unknown model 'resnet51'"), unknown.err)
        let badLR = try run(["lenet", "--lr=0"])
        XCTAssertNotEqual(badLR.status, 0)
        XCTAssertTrue(badLR.err.contains("--lr must be positive"), badLR.err)
        for clip in ["0", "-1", "inf", "nan"] {
            let badClip = try run(["lenet", "--max-grad-norm=\(clip)"])
            XCTAssertNotEqual(badClip.status, 0, clip)
            XCTAssertTrue(badClip.err.contains("--max-grad-norm must be a positive number"), badClip.err)
        }
        // Winograd is oneDNN's, and `auto` (oneDNN's choice, per machine) is not offered.
        let winogradOnBLAS = try run(["lenet", "--engine", "blas", "--conv-algorithm", "winograd"])
        XCTAssertNotEqual(winogradOnBLAS.status, 0)
        XCTAssertTrue(winogradOnBLAS.err.contains("--conv-algorithm winograd needs the dnnl engine"), winogradOnBLAS.err)
        let auto = try run(["lenet", "--conv-algorithm", "auto"])
        XCTAssertNotEqual(auto.status, 0)
        XCTAssertTrue(auto.err.contains("'auto' is invalid"), auto.err)
        let hugeLR = try run(["lenet", "--lr", "1e400"])
        XCTAssertNotEqual(hugeLR.status, 0)
        XCTAssertTrue(hugeLR.err.contains("is beyond the largest"), hugeLR.err)
        // A data problem is one line naming the file.
        let missing = try run(["lenet", "--data-dir", scratch.path, "--max-steps", "1"])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.err.contains("train-images-idx3-ubyte: no such file"), missing.err)
        XCTAssertEqual(missing.err.split(separator: "\n").count, 1, missing.err)
    }

    /// Without clipping the largest learning rate overflows the weights within a few steps and
    /// the run stops, naming the step; clipped to a norm of 1e8 / that rate, each step moves
    /// the weights by at most 1e8 and the run ends finite.
    func testClippingKeepsARunWithAHugeLearningRateFinite() throws {
        let args = ["lenet-bn", "--dataset", "synthetic", "--synthetic-count", "256,64", "--max-steps", "8", "--batch-size", "32",
                    "--lr", "\(Real.greatestFiniteMagnitude)"]
        let diverged = try run(args)
        XCTAssertNotEqual(diverged.status, 0)
        XCTAssertTrue(diverged.err.hasPrefix("Error: non-finite "), diverged.err)
        XCTAssertEqual(diverged.err.split(separator: "\n").count, 1, diverged.err)
        let clipped = try run(args + ["--max-grad-norm", "\(1e8 / Double(Real.greatestFiniteMagnitude))", "--save", scratch.appendingPathComponent("w.h5").path])
        XCTAssertEqual(clipped.status, 0, clipped.err)
        XCTAssertTrue(clipped.out.contains("done after 8 steps"), clipped.out)
    }

    func testTrainWritesMetricsCurvesAndWeightsThatEvalReads() throws {
        let metrics = scratch.appendingPathComponent("run.jsonl").path, weights = scratch.appendingPathComponent("w.h5").path
        let train = try run(["lenet-bn", "--dataset", "synthetic", "--synthetic-count", "256,64", "--epochs", "2", "--batch-size", "32",
                             "--metrics", metrics, "--save", weights])
        XCTAssertEqual(train.status, 0, train.err)
        let lines = try String(contentsOfFile: metrics, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 3, "two epochs and done")
        let events = try lines.map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        XCTAssertEqual(events.map { $0["event"] as? String }, ["epoch", "epoch", "done"])
        for key in ["epoch", "step", "train_loss", "train_acc", "test_loss", "test_acc", "images_per_sec", "seconds"] {
            XCTAssertNotNil(events[2][key] as? Double, "done line lacks \(key)")
        }
        XCTAssertEqual(events[1]["step"] as? Int, 16)
        let svg = try String(contentsOfFile: scratch.appendingPathComponent("run.svg").path, encoding: .utf8)
        XCTAssertTrue(svg.hasPrefix("<svg") && svg.contains("test acc"))

        let eval = try run(["eval", "--init-from", weights, "--dataset", "synthetic", "--synthetic-count", "256,64", "--json"])
        XCTAssertEqual(eval.status, 0, eval.err)
        let result = try JSONSerialization.jsonObject(with: Data(eval.out.utf8)) as! [String: Any]
        XCTAssertEqual(result["examples"] as? Int, 64)
        XCTAssertEqual(result["accuracy"] as! Double, events[2]["test_acc"] as! Double, accuracy: 1e-12,
                       "eval of the saved weights equals the run's final test accuracy")
    }

    /// Weights of another task (3 channels, 20 classes, as a torchvision ImageNet network's
    /// are 3 and 1000) fine-tuned on gray images of 10 classes: the gray is copied into 3
    /// channels and the classifier starts afresh; each missing flag is named in one line.
    func testFineTunesRGBWeightsOnGrayImagesWithAFreshHead() throws {
        let rgb = scratch.appendingPathComponent("rgb.h5").path, tuned = scratch.appendingPathComponent("tuned.h5").path
        let pretrain = try run(["lenet-bn", "--dataset", "synthetic", "--synthetic-shape", "28,3,20", "--synthetic-count", "128,32",
                                "--max-steps", "2", "--batch-size", "32", "--save", rgb])
        XCTAssertEqual(pretrain.status, 0, pretrain.err)
        let gray = ["lenet-bn", "--dataset", "synthetic", "--synthetic-count", "128,32", "--max-steps", "2", "--batch-size", "32", "--init-from", rgb]
        for (extra, advice) in [([String](), "--channels sets them, 3 for RGB weights"), (["--channels", "3"], "--replace-head starts the classifier afresh")] {
            let refused = try run(gray + extra)
            XCTAssertNotEqual(refused.status, 0)
            XCTAssertTrue(refused.err.contains(advice), refused.err)
            XCTAssertEqual(refused.err.split(separator: "\n").count, 1, refused.err)
        }
        let noWeights = try run(["lenet-bn", "--replace-head"])
        XCTAssertTrue(noWeights.status != 0 && noWeights.err.contains("--replace-head goes with --init-from"), noWeights.err)
        let colorImages = try run(["lenet-bn", "--dataset", "synthetic", "--synthetic-shape", "28,3,10", "--channels", "1", "--max-steps", "1"])
        XCTAssertTrue(colorImages.status != 0 && colorImages.err.contains("only single-channel images can be copied into more"), colorImages.err)

        let tune = try run(gray + ["--channels", "3", "--replace-head", "--save", tuned])
        XCTAssertEqual(tune.status, 0, tune.err)
        XCTAssertTrue(tune.out.contains("at 3×28×28"), tune.out)
        let eval = try run(["eval", "--init-from", tuned, "--dataset", "synthetic", "--synthetic-count", "128,32", "--channels", "3", "--json"])
        XCTAssertEqual(eval.status, 0, eval.err)
        XCTAssertTrue(eval.out.contains("\"examples\":32"), eval.out)
    }
}
