import Foundation
import XCTest

/// The "Launch:" lines of `cnn-train version` under a launcher, one per rank, sorted, without
/// their thread counts: "Launch: mpirun; MPI rank 0 of 2, 2 on this host".
func launchLines(_ output: String) -> [String] {
    output.split(separator: "\n").filter { $0.hasPrefix("Launch:") }
        .map { $0.components(separatedBy: ", ").prefix(2).joined(separator: ", ") }.sorted()
}

/// The thread counts of those lines, by rank order.
func launchThreads(_ output: String) -> [String] {
    output.split(separator: "\n").filter { $0.hasPrefix("Launch:") }.sorted().map { $0.components(separatedBy: ", ").last ?? "" }
}

/// Rank, size and ranks per host as MPI gives them, under a real `mpirun` (`cnn-train version`
/// prints them on each rank).
final class LaunchRanksTests: XCTestCase {
    static let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("cnn-train")

    /// `command arguments` with the environment added; standard output and error together.
    func output(_ command: String, _ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, text: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: command)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    func testEveryRankLearnsItsRankTheWorldAndItsHostsRanksFromMPI() throws {
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: "/usr/bin/mpirun"), "mpirun (openmpi-bin) is not installed")
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: Self.binary.path), "cnn-train not built at \(Self.binary.path)")
        let asRoot = ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"]
        for ranks in [1, 3] {
            let run = try output("/usr/bin/mpirun", ["--oversubscribe", "-n", "\(ranks)", Self.binary.path, "version"], environment: asRoot)
            XCTAssertEqual(run.status, 0, run.text)
            XCTAssertEqual(launchLines(run.text), (0..<ranks).map { "Launch: mpirun; MPI rank \($0) of \(ranks), \(ranks) on this host" }, run.text)
        }
        // Alone, nothing is launched and MPI is not initialised.
        let alone = try output(Self.binary.path, ["version"])
        XCTAssertEqual(alone.status, 0, alone.text)
        XCTAssertFalse(alone.text.contains("Launch:"), alone.text)
    }

    /// A rank bound to fewer cores than its share of the host (srun --cpu-bind, taskset) computes
    /// on those alone. (On a host of 2 cores the share is 1 anyway; from 4 cores on, this tells.)
    func testARankBoundToOneCoreComputesWithOneThread() throws {
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: "/usr/bin/mpirun"), "mpirun (openmpi-bin) is not installed")
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: "/usr/bin/taskset"), "taskset (util-linux) is not installed")
        let asRoot = ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"]
        let bound = try output("/usr/bin/taskset", ["-c", "0", "/usr/bin/mpirun", "--oversubscribe", "--bind-to", "none", "-n", "2", Self.binary.path, "version"],
                               environment: asRoot)
        XCTAssertEqual(bound.status, 0, bound.text)
        XCTAssertEqual(launchThreads(bound.text), ["1 thread(s)", "1 thread(s)"], bound.text)
        let free = try output("/usr/bin/mpirun", ["--oversubscribe", "--bind-to", "none", "-n", "2", Self.binary.path, "version"], environment: asRoot)
        let share = max(1, ProcessInfo.processInfo.activeProcessorCount / 2)
        XCTAssertEqual(launchThreads(free.text), ["\(share) thread(s)", "\(share) thread(s)"], free.text)
    }
}
