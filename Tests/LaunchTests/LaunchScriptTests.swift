import Foundation
import XCTest

/// launch/ and cluster/: argument handling, and the emulated cluster end to end.
final class LaunchScriptTests: XCTestCase {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized

    struct Result { var status: Int32; var out: String; var err: String }

    @discardableResult
    func shell(_ script: String, _ arguments: [String], environment: [String: String] = [:], timeout: Int? = nil) throws -> Result {
        let process = Process()
        let command = ["/bin/bash", Self.repo.appendingPathComponent(script).path] + arguments
        // A job that hangs ends with status 124 instead of hanging the suite.
        let full = timeout.map { ["/usr/bin/timeout", "\($0)"] + command } ?? command
        process.executableURL = URL(fileURLWithPath: full[0])
        process.arguments = Array(full.dropFirst())
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, out: String(decoding: o, as: UTF8.self), err: String(decoding: e, as: UTF8.self))
    }

    private var isRoot: Bool { getuid() == 0 }
    private var cores: Int { ProcessInfo.processInfo.activeProcessorCount }

    func testLocalLauncherAddsOnlyTheFlagsTheHostNeeds() throws {
        let help = try shell("launch/local.sh", ["--help"])
        XCTAssertEqual(help.status, 0)
        XCTAssertTrue(help.out.contains("Usage: launch/local.sh"))

        let few = try shell("launch/local.sh", ["--dry-run", "-n", "1", "lenet", "--epochs", "2"])
        XCTAssertEqual(few.status, 0, few.err)
        XCTAssertTrue(few.out.hasPrefix("mpirun -n 1 "), few.out)
        XCTAssertEqual(few.out.contains("--allow-run-as-root"), isRoot)
        XCTAssertFalse(few.out.contains("--oversubscribe"))
        XCTAssertTrue(few.out.contains("--map-by slot:PE=\(cores) --bind-to core"), "one rank gets every core: \(few.out)")
        XCTAssertTrue(few.out.hasSuffix("cnn-train lenet --epochs 2 \n"), "arguments pass through: \(few.out)")

        let many = try shell("launch/local.sh", ["--dry-run", "-n", "\(cores + 1)", "resnet18"])
        XCTAssertTrue(many.out.contains("--oversubscribe") && many.out.contains("--bind-to none"), many.out)

        for bad in [["-n", "0"], ["-n", "x"], ["-n"]] {
            let result = try shell("launch/local.sh", ["--dry-run"] + bad + ["lenet"])
            XCTAssertEqual(result.status, 2, "\(bad): \(result.err)")
            XCTAssertFalse(result.err.isEmpty)
        }
    }

    func testHostfileLauncherCountsSlotsAndPassesTheInterface() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("hosts-\(UUID().uuidString)")
        try "# two hosts\nnode-a slots=2\nnode-b slots=3\n".write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let result = try shell("launch/hostfile.sh", ["-f", file.path, "--if", "eth1", "--dry-run", "lenet-bn", "--sync-bn"])
        XCTAssertEqual(result.status, 0, result.err)
        XCTAssertTrue(result.out.contains("-n 5 --hostfile \(file.path)"), result.out)
        XCTAssertTrue(result.out.contains("btl_tcp_if_include eth1"), result.out)
        XCTAssertFalse(result.out.contains("--oversubscribe"))
        XCTAssertTrue(result.out.hasSuffix("cnn-train lenet-bn --sync-bn \n"), result.out)
        XCTAssertTrue(try shell("launch/hostfile.sh", ["-f", file.path, "-n", "7", "--dry-run", "lenet"]).out.contains("--oversubscribe"))
        XCTAssertEqual(try shell("launch/hostfile.sh", ["lenet"]).status, 2, "a hostfile is required")
        XCTAssertEqual(try shell("launch/hostfile.sh", ["-f", "/nonexistent", "lenet"]).status, 2)
    }

    func testSlurmScriptParsesAndDocumentsItsVariables() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = ["-n", Self.repo.appendingPathComponent("launch/slurm.sbatch").path]
        try process.run()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "bash -n launch/slurm.sbatch")
        let text = try String(contentsOf: Self.repo.appendingPathComponent("launch/slurm.sbatch"), encoding: .utf8)
        for needle in ["#SBATCH --nodes", "#SBATCH --ntasks-per-node", "#SBATCH --time", "#SBATCH --output", "--resume auto",
                       "CHECKPOINT_DIR", "CNN_TRAIN", "--requeue"] {
            XCTAssertTrue(text.contains(needle), "slurm.sbatch lacks \(needle)")
        }
    }

    /// Two namespaced hosts, a short 2-host training, and nothing left behind.
    func testEmulatedClusterComesUpTrainsAndLeavesNothing() throws {
        try XCTSkipUnless(isRoot, "network namespaces need root")
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        probe.arguments = ["netns", "add", "cnn-probe"]
        probe.standardError = FileHandle.nullDevice
        try probe.run()
        probe.waitUntilExit()
        try XCTSkipUnless(probe.terminationStatus == 0, "this machine forbids network namespaces (ip netns add failed)")
        _ = try? Process.run(URL(fileURLWithPath: "/usr/sbin/ip"), arguments: ["netns", "del", "cnn-probe"]).waitUntilExit()
        let binary = Self.repo.appendingPathComponent(".build/release/cnn-train").path
        let here = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("cnn-train").path
        let cnnTrain = FileManager.default.isExecutableFile(atPath: here) ? here : binary
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: cnnTrain), "cnn-train not built")

        defer { _ = try? shell("cluster/emulated/teardown.sh", []) }
        let up = try shell("cluster/emulated/setup.sh", ["-k", "2", "--rate", "1gbit"])
        XCTAssertEqual(up.status, 0, up.err)
        let run = try shell("cluster/emulated/run.sh", ["-n", "2", "lenet-bn", "--dataset", "synthetic", "--max-steps", "3"],
                            environment: ["CNN_TRAIN": cnnTrain])
        XCTAssertEqual(run.status, 0, run.err)
        XCTAssertTrue(run.out.contains("2 ranks") && run.out.contains("done after 3 steps"), run.out)
        // One rank per host: MPI's shared-memory split puts each alone on its host.
        let ranks = try shell("cluster/emulated/run.sh", ["-n", "2", "version"], environment: ["CNN_TRAIN": cnnTrain])
        XCTAssertEqual(ranks.status, 0, ranks.err)
        XCTAssertEqual(launchLines(ranks.out),
                       ["Launch: mpirun; MPI rank 0 of 2, 1 on this host", "Launch: mpirun; MPI rank 1 of 2, 1 on this host"], ranks.out)
        // Two ranks per host: each emulated host has a hostname of its own (the namespaces
        // share one otherwise, and Open MPI then crashed or hung at the first collective).
        let four = try shell("cluster/emulated/run.sh", ["-n", "4", "version"], environment: ["CNN_TRAIN": cnnTrain], timeout: 120)
        XCTAssertEqual(four.status, 0, four.err)
        XCTAssertEqual(launchLines(four.out), (0..<4).map { "Launch: mpirun; MPI rank \($0) of 4, 2 on this host" }, four.out)
        let fourTrain = try shell("cluster/emulated/run.sh", ["-n", "4", "lenet-bn", "--dataset", "synthetic", "--max-steps", "3"],
                                  environment: ["CNN_TRAIN": cnnTrain], timeout: 120)
        XCTAssertEqual(fourTrain.status, 0, fourTrain.err)
        XCTAssertTrue(fourTrain.out.contains("4 ranks") && fourTrain.out.contains("done after 3 steps"), fourTrain.out)
        let down = try shell("cluster/emulated/teardown.sh", [])
        XCTAssertEqual(down.status, 0, down.err)

        let list = Process()
        list.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        list.arguments = ["netns", "list"]
        let pipe = Pipe()
        list.standardOutput = pipe
        try list.run()
        list.waitUntilExit()
        let namespaces = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertFalse(namespaces.contains("cnn-h") || namespaces.contains("cnn-switch"), "left behind: \(namespaces)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/etc/netns/cnn-h0"))
    }
}
