import Foundation
import HDF5
import XCTest

/// Runs the built `cnn-train` alone or under a real `mpirun`, in a scratch folder.
class MPITestCase: XCTestCase {
    static let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("cnn-train")
    var scratch: URL!

    override func setUpWithError() throws {
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: "/usr/bin/mpirun"), "mpirun (openmpi-bin) is not installed")
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: Self.binary.path), "cnn-train not built at \(Self.binary.path)")
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("dp-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { if let scratch { try? FileManager.default.removeItem(at: scratch) } }

    struct Outcome { var status: Int32; var seconds: Double; var out: String; var err: String }

    /// Whether the binary under test computes in float64 (`CNN_TRAIN_FLOAT64=1`).
    func binaryIsFloat64() throws -> Bool { try run(ranks: 0, ["version"]).out.contains("float64") }

    /// Runs `cnn-train` alone (ranks 0) or under `mpirun -n ranks`, with `environment` added
    /// (and exported to every rank); ends it after `timeout`. Alone, `fileSizeLimit` (KiB)
    /// runs it under `ulimit -f`, as on a disk that fills up.
    @discardableResult
    func run(ranks: Int, _ arguments: [String], mpmd: [String]? = nil, environment: [String: String] = [:],
             fileSizeLimit: Int? = nil, timeout: Double = 120) throws -> Outcome {
        let process = Process()
        var env = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        if ranks == 0, let fileSizeLimit {
            process.executableURL = URL(fileURLWithPath: "/bin/bash")
            process.arguments = ["-c", "ulimit -f \(fileSizeLimit) && exec \"$0\" \"$@\"", Self.binary.path] + arguments
        } else if ranks == 0 {
            process.executableURL = Self.binary
            process.arguments = arguments
        } else {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/mpirun")
            var args = ["--oversubscribe", "-n", "\(ranks)"] + environment.keys.sorted().flatMap { ["-x", $0] } + [Self.binary.path] + arguments
            if let mpmd { args += [":", "-n", "1", Self.binary.path] + mpmd }
            process.arguments = args
            env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
            env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        }
        process.environment = env
        let outFile = scratch.appendingPathComponent("out-\(UUID().uuidString)"), errFile = scratch.appendingPathComponent("err-\(UUID().uuidString)")
        FileManager.default.createFile(atPath: outFile.path, contents: nil)
        FileManager.default.createFile(atPath: errFile.path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: outFile)
        process.standardError = try FileHandle(forWritingTo: errFile)
        let start = Date()
        try process.run()
        while process.isRunning && Date().timeIntervalSince(start) < timeout { usleep(50_000) }
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
            XCTFail("\(arguments) did not finish within \(timeout) s")
        }
        process.waitUntilExit()
        return Outcome(status: process.terminationStatus, seconds: Date().timeIntervalSince(start),
                       out: try String(contentsOf: outFile, encoding: .utf8), err: try String(contentsOf: errFile, encoding: .utf8))
    }

    /// Every float dataset under /model of two weight files: the largest tensor-level
    /// relative difference, and where.
    func difference(_ a: String, _ b: String, only filter: (String) -> Bool = { _ in true }) throws -> (Double, String) {
        let ga = try HDF5File(reading: a).root.group("model"), gb = try HDF5File(reading: b).root.group("model")
        var worst = (0.0, "")
        for key in try ga.memberNames() where !key.hasSuffix("num_batches_tracked") && filter(key) {
            let x = try ga.dataset(key).readDoubles(), y = try gb.dataset(key).readDoubles()
            let scale = max(x.map(abs).max() ?? 0, 1e-30)
            let diff = zip(x, y).map { abs($0 - $1) }.max() ?? 0
            if diff / scale > worst.0 { worst = (diff / scale, key) }
        }
        return worst
    }

}
