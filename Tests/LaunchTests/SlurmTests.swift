import Foundation
import HDF5
import XCTest

/// launch/slurm.sbatch under a real Slurm (munged, slurmctld, slurmd on this machine, from
/// cluster/slurm/setup.sh): a 2-task job trains as one 2-rank job, bitwise equal to
/// launch/local.sh -n 2; a requeued job resumes from its checkpoint and ends bitwise equal
/// to an uninterrupted run; on the emulated cluster, a 2-node job crosses its links. Skipped,
/// with setup.sh's reason, where Slurm cannot start.
final class SlurmTests: XCTestCase {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized
    static let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("cnn-train")
    /// The Slurm of this test class: its directory (slurm.conf, logs) and why it is not up, if it is not.
    nonisolated(unsafe) static var slurmDirectory: URL?
    nonisolated(unsafe) static var unavailable: String?

    override class func setUp() {
        super.setUp()
        guard FileManager.default.isExecutableFile(atPath: binary.path) else { return unavailable = "cnn-train not built at \(binary.path)" }
        guard ProcessInfo.processInfo.activeProcessorCount >= 2 else { return unavailable = "a 2-task job needs 2 CPUs" }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("slurm-\(UUID().uuidString.prefix(8))")
        // A port of its own, so that runs of the suite beside each other do not meet.
        let port = 20_000 + Int(getpid() % 5000) * 2
        let up = run("/bin/bash", [repo.appendingPathComponent("cluster/slurm/setup.sh").path, directory.path],
                     environment: ["SLURM_PORT": "\(port)"], timeout: 90)
        if up.status == 0 {
            slurmDirectory = directory
        } else {
            unavailable = up.status == 77 ? up.err.trimmingCharacters(in: .whitespacesAndNewlines) : "cluster/slurm/setup.sh failed (\(up.status)): \(up.err)"
        }
    }

    override class func tearDown() {
        if let slurmDirectory {
            run("/bin/bash", [repo.appendingPathComponent("cluster/slurm/teardown.sh").path, slurmDirectory.path], timeout: 60)
        }
        super.tearDown()
    }

    var scratch: URL!

    override func setUpWithError() throws {
        if let reason = Self.unavailable { throw XCTSkip(reason) }
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("slurm-job-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { if let scratch { try? FileManager.default.removeItem(at: scratch) } }

    // MARK: - Running things

    struct Outcome { var status: Int32; var out: String; var err: String }

    /// Runs `program` (a path, or a name under /usr/bin) with `environment` added, in `directory`; ends it after `timeout` s.
    @discardableResult
    static func run(_ program: String, _ arguments: [String], in directory: URL? = nil, environment: [String: String] = [:],
                    timeout: Double = 120) -> Outcome {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program.hasPrefix("/") ? program : "/usr/bin/\(program)")
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        if let directory { process.currentDirectoryURL = directory }
        let outFile = FileManager.default.temporaryDirectory.appendingPathComponent("slurm-out-\(UUID().uuidString)")
        let errFile = FileManager.default.temporaryDirectory.appendingPathComponent("slurm-err-\(UUID().uuidString)")
        FileManager.default.createFile(atPath: outFile.path, contents: nil)
        FileManager.default.createFile(atPath: errFile.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: outFile); try? FileManager.default.removeItem(at: errFile) }
        do {
            process.standardOutput = try FileHandle(forWritingTo: outFile)
            process.standardError = try FileHandle(forWritingTo: errFile)
            try process.run()
        } catch {
            return Outcome(status: -1, out: "", err: "\(program): \(error)")
        }
        let start = Date()
        while process.isRunning && Date().timeIntervalSince(start) < timeout { usleep(50_000) }
        var timedOut = ""
        if process.isRunning {
            process.terminate()
            timedOut = "\(program) did not finish within \(timeout) s"
        }
        process.waitUntilExit()
        let out = (try? String(contentsOf: outFile, encoding: .utf8)) ?? ""
        let err = (try? String(contentsOf: errFile, encoding: .utf8)) ?? ""
        return Outcome(status: timedOut.isEmpty ? process.terminationStatus : -2, out: out, err: timedOut + err)
    }

    /// Runs a Slurm client (sbatch, scontrol, …) against this class's Slurm, in the scratch folder.
    @discardableResult
    /// `configuration` names another Slurm's slurm.conf.
    func slurm(_ program: String, _ arguments: [String], environment: [String: String] = [:], configuration: String? = nil,
               timeout: Double = 120) -> Outcome {
        var environment = environment
        environment["SLURM_CONF"] = configuration ?? Self.slurmDirectory!.appendingPathComponent("slurm.conf").path
        return Self.run(program, arguments, in: scratch, environment: environment, timeout: timeout)
    }

    /// Submits launch/slurm.sbatch with one node of 2 tasks and cnn-train's `arguments`; the
    /// job id. With `wait`, returns when the job has ended, and checks that it completed.
    func submit(_ arguments: [String], environment: [String: String] = [:], configuration: String? = nil, wait: Bool) throws -> String {
        let submitted = slurm("sbatch", ["--parsable", "--nodes=1", "--ntasks-per-node=2", Self.repo.appendingPathComponent("launch/slurm.sbatch").path] + arguments,
                              environment: environment.merging(["CNN_TRAIN": Self.binary.path]) { $1 }, configuration: configuration)
        let id = submitted.out.split(separator: "\n").first.map { String($0.split(separator: ";")[0]) } ?? ""
        XCTAssertFalse(id.isEmpty, "sbatch printed no job id: \(submitted.err)")
        if wait {
            // Polled here: sbatch --wait looks every few seconds, which would be most of these tests' time.
            let ended = ["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "PREEMPTED"]
            let final = { self.state(of: id, configuration: configuration).state }
            XCTAssertTrue(eventually(within: 300) { ended.contains(final()) }, "job \(id) did not end: \(final())")
            XCTAssertEqual(final(), "COMPLETED", "job \(id): \(log(of: id))\nslurmctld:\n\(controllerLog(of: id, in: configuration.map { URL(fileURLWithPath: $0).deletingLastPathComponent() }))")
        }
        return id
    }

    /// The job's log, slurm-cnn-train-ID.out in the submission folder.
    func log(of job: String) -> String {
        (try? String(contentsOf: scratch.appendingPathComponent("slurm-cnn-train-\(job).out"), encoding: .utf8)) ?? "(no log)"
    }

    /// What slurmctld logged about the job, for failure messages.
    func controllerLog(of job: String, in directory: URL? = nil) -> String {
        let text = (try? String(contentsOf: (directory ?? Self.slurmDirectory!).appendingPathComponent("slurmctld.log"), encoding: .utf8)) ?? ""
        let lines = text.split(separator: "\n")
        // The job's own lines, and the nodes' troubles (not responding, down, rebooted) around them.
        return lines.filter { $0.contains("JobId=\(job) ") || $0.hasSuffix("JobId=\(job)") || $0.contains("error") || $0.contains("node ") || $0.contains("Node ") }
            .suffix(40).joined(separator: "\n")
    }

    /// The job's state (RUNNING, PENDING, COMPLETED, …) and how many times it was requeued.
    func state(of job: String, configuration: String? = nil) -> (state: String, restarts: Int) {
        let fields = slurm("scontrol", ["show", "job", "-o", job], configuration: configuration).out.split(separator: " ")
        func field(_ name: String) -> String? { fields.first { $0.hasPrefix(name + "=") }.map { String($0.dropFirst(name.count + 1)) } }
        return (field("JobState") ?? "", Int(field("Restarts") ?? "") ?? 0)
    }

    /// Polls every 50 ms until `condition` holds; false after `timeout` s.
    func eventually(within timeout: Double, _ condition: () -> Bool) -> Bool {
        let start = Date()
        while Date().timeIntervalSince(start) < timeout {
            if condition() { return true }
            usleep(50_000)
        }
        return condition()
    }

    /// The same training on this host under launch/local.sh -n 2 (Open MPI's mpirun).
    func trainLocally(_ arguments: [String]) {
        let local = Self.run("/bin/bash", [Self.repo.appendingPathComponent("launch/local.sh").path, "-n", "2"] + arguments,
                             in: scratch, environment: ["CNN_TRAIN": Self.binary.path], timeout: 300)
        XCTAssertEqual(local.status, 0, "launch/local.sh: \(local.err)")
    }

    /// Every tensor of two weight files, compared bit for bit, or within `tolerance` of the
    /// tensor's largest magnitude.
    func assertSameWeights(_ a: String, _ b: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let first = try HDF5File(reading: scratch.appendingPathComponent(a).path).root.group("model")
        let second = try HDF5File(reading: scratch.appendingPathComponent(b).path).root.group("model")
        let keys = try first.memberNames().sorted()
        XCTAssertEqual(keys, try second.memberNames().sorted(), file: file, line: line)
        XCTAssertFalse(keys.isEmpty, "\(a) holds no weights", file: file, line: line)
        for key in keys where !key.hasSuffix("num_batches_tracked") {
            let x = try first.dataset(key).readDoubles(), y = try second.dataset(key).readDoubles()
            XCTAssertTrue(x.map(\.bitPattern) == y.map(\.bitPattern), "\(key) differs between \(a) and \(b)", file: file, line: line)
        }
    }

    // MARK: - Tests

    /// The case: each srun task must be a rank of one job, not a training of its own.
    func testSbatchOfTwoTasksTrainsAsOneJobEqualToTheLocalLauncher() throws {
        // One thread per rank on both sides, so that the sums are the same whatever the cores.
        let training = ["lenet", "--epochs", "1", "--limit-train", "4096", "--limit-test", "500", "--threads", "1"]
        let job = try submit(training + ["--save", "slurm.h5"], wait: true)
        let text = log(of: job)
        XCTAssertEqual(text.components(separatedBy: "bytes all-reduced per step").count - 1, 1, "one start line: \(text)")
        XCTAssertTrue(text.contains("batch 256, 16 steps; 2 ranks"), "the global batch of 256 over 2 ranks: \(text)")
        XCTAssertEqual(text.components(separatedBy: "done after 16 steps").count - 1, 1, "one run, not one per task: \(text)")
        XCTAssertEqual(text.components(separatedBy: "weights written to").count - 1, 1, "rank 0 alone writes: \(text)")
        // What the job wrote: its log, its weights, and one checkpoint directory with the final checkpoint.
        let written = try FileManager.default.contentsOfDirectory(atPath: scratch.path).sorted()
        XCTAssertEqual(written, ["runs", "slurm-cnn-train-\(job).out", "slurm.h5"])
        let checkpoints = try FileManager.default.contentsOfDirectory(atPath: scratch.appendingPathComponent("runs/cnn-train-\(job)").path).sorted()
        XCTAssertEqual(checkpoints, ["ckpt-step-000000016.h5", "latest"])

        trainLocally(training + ["--save", "local.h5"])
        try assertSameWeights("slurm.h5", "local.h5")
    }

    func testSrunTasksAreRanksAndPlainSrunIsRefusedOnce() throws {
        let ranks = slurm("srun", ["--mpi=pmix", "-n", "2", Self.binary.path, "version"])
        XCTAssertEqual(ranks.status, 0, ranks.err)
        let lines = launchLines(ranks.out)
        XCTAssertEqual(lines, ["Launch: PMIx; MPI rank 0 of 2, 2 on this host", "Launch: PMIx; MPI rank 1 of 2, 2 on this host"], ranks.out)

        // Without an MPI plugin each task would train alone: refused before any training, by rank 0 alone.
        let plain = slurm("srun", ["--mpi=none", "-n", "2", Self.binary.path, "lenet", "--dataset", "synthetic", "--max-steps", "2", "--save", "alone.h5"])
        XCTAssertNotEqual(plain.status, 0)
        let errors = plain.err.split(separator: "\n").filter { $0.hasPrefix("Error:") }
        XCTAssertEqual(errors.count, 1, plain.err)
        XCTAssertTrue(errors.first?.contains("srun started 2 tasks without an MPI interface") == true, plain.err)
        XCTAssertFalse(plain.out.contains("parameters"), "no training started: \(plain.out)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: scratch.appendingPathComponent("alone.h5").path))
    }

    /// Submits a 118-step training checkpointing every 10 steps, interrupts it with `interrupt`
    /// after its first checkpoint, lets the requeued job run to its end, and compares its
    /// weights with an uninterrupted launch/local.sh -n 2 of the same arguments.
    /// Returns the job's log.
    @discardableResult
    func assertRequeuedJobEndsAsAnUninterruptedOne(_ extra: [String], interrupt: (String) -> Outcome) throws -> String {
        let training = ["lenet", "--epochs", "1", "--limit-train", "30000", "--limit-test", "500", "--threads", "1"] + extra
        let job = try submit(training + ["--save", "slurm.h5"], environment: ["CHECKPOINT_EVERY": "10"], wait: false)
        let checkpoints = scratch.appendingPathComponent("runs/cnn-train-\(job)")
        let checkpointed = eventually(within: 120) {
            ((try? FileManager.default.contentsOfDirectory(atPath: checkpoints.path)) ?? []).contains { $0.hasPrefix("ckpt-step-") }
        }
        XCTAssertTrue(checkpointed, "no checkpoint: \(log(of: job))")
        let interrupted = interrupt(job)
        XCTAssertEqual(interrupted.status, 0, interrupted.err)
        XCTAssertTrue(eventually(within: 60) { state(of: job).restarts == 1 }, "not requeued: \(state(of: job)) \(log(of: job))\nslurmctld:\n\(controllerLog(of: job))")
        // The requeued job starts again once its first run's credentials expire (cred_expire,
        // 10 s in cluster/slurm/setup.sh; 120 s by default), after that run has been stopped.
        XCTAssertTrue(eventually(within: 240) { state(of: job).state == "COMPLETED" }, "\(state(of: job)) \(log(of: job))\nslurmctld:\n\(controllerLog(of: job))")
        let text = log(of: job)
        XCTAssertTrue(text.contains("job \(job) run 2") && text.contains("resuming from runs/cnn-train-\(job)/ckpt-step-"), text)
        XCTAssertEqual(text.components(separatedBy: "done after 118 steps").count - 1, 1, text)

        trainLocally(training + ["--save", "local.h5"])
        // Bit for bit: the arithmetic is the same, and checkpoints hold the build's own precision.
        try assertSameWeights("slurm.h5", "local.h5")
        return text
    }

    /// As Slurm does before a time limit or a preemption (--signal=B:USR1@120): the batch
    /// script's trap requeues the job.
    func testAJobWarnedWithUSR1IsRequeuedAndResumesBitwise() throws {
        let text = try assertRequeuedJobEndsAsAnUninterruptedOne([]) { job in
            slurm("scancel", ["--signal=USR1", "--batch", job])
        }
        XCTAssertTrue(text.contains("time is up or preempted, requeueing"), text)
    }

    /// A fine-tuning job preempted by an administrator (scontrol requeue): it starts from its
    /// --init-from file the first time and from its checkpoint after the requeue.
    func testAFineTuningJobRequeuedByScontrolResumesBitwise() throws {
        let initial = Self.run(Self.binary.path, ["lenet", "--dataset", "synthetic", "--max-steps", "2", "--save", "init.h5"], in: scratch)
        XCTAssertEqual(initial.status, 0, initial.err)
        let text = try assertRequeuedJobEndsAsAnUninterruptedOne(["--init-from", "init.h5"]) { job in
            slurm("scontrol", ["requeue", job])
        }
        XCTAssertEqual(text.components(separatedBy: "starting from init.h5").count - 1, 1, "from init.h5 the first time only: \(text)")
    }

    /// On a cluster whose TaskPlugin cannot bind (task/none), the script asks for no binding,
    /// so srun does not warn that "cluster configuration lacks support for cpu binding".
    func testWithoutATaskPluginThatBindsTheScriptAsksForNoBinding() throws {
        let directory = scratch.appendingPathComponent("slurm-unbound")
        defer { Self.run("/bin/bash", [Self.repo.appendingPathComponent("cluster/slurm/teardown.sh").path, directory.path], timeout: 60) }
        let port = 25_000 + Int(getpid() % 5000) * 2
        let up = Self.run("/bin/bash", [Self.repo.appendingPathComponent("cluster/slurm/setup.sh").path, directory.path],
                          environment: ["SLURM_PORT": "\(port)", "TASK_PLUGIN": "task/none"], timeout: 90)
        XCTAssertEqual(up.status, 0, up.err)
        let conf = directory.appendingPathComponent("slurm.conf").path
        XCTAssertTrue(try String(contentsOfFile: conf, encoding: .utf8).contains("TaskPlugin=task/none"))
        let job = try submit(["lenet", "--dataset", "synthetic", "--max-steps", "2"], configuration: conf, wait: true)
        let text = log(of: job)
        XCTAssertTrue(text.contains("2 ranks") && text.contains("done after 2 steps"), text)
        XCTAssertFalse(text.contains("cpu binding"), text)
    }

    // MARK: - The emulated cluster as a Slurm cluster

    /// One slurmd per emulated host (network namespaces on shaped links, cluster/emulated/):
    /// the ranks of a 2-node job sit on two hosts, one per host, and sum their gradients over
    /// the emulated links; the result is the one-host result.
    func testATwoNodeJobOnTheEmulatedClusterCrossesItsLinks() throws {
        let probe = Self.run("/usr/sbin/ip", ["netns", "add", "cnn-slurm-probe"])
        try XCTSkipUnless(probe.status == 0, "this machine forbids network namespaces (ip netns add failed: \(probe.err))")
        Self.run("/usr/sbin/ip", ["netns", "del", "cnn-slurm-probe"])
        let emulated = Self.repo.appendingPathComponent("cluster/emulated")
        let directory = scratch.appendingPathComponent("slurm-emulated")
        defer {
            Self.run("/bin/bash", [Self.repo.appendingPathComponent("cluster/slurm/teardown.sh").path, directory.path], timeout: 60)
            Self.run("/bin/bash", [emulated.appendingPathComponent("teardown.sh").path], timeout: 60)
        }
        let hosts = Self.run("/bin/bash", [emulated.appendingPathComponent("setup.sh").path, "-k", "2", "--rate", "1gbit"], timeout: 60)
        XCTAssertEqual(hosts.status, 0, hosts.err)
        let up = Self.run("/bin/bash", [Self.repo.appendingPathComponent("cluster/slurm/setup.sh").path, "--emulated", directory.path], timeout: 90)
        if up.status == 77 { throw XCTSkip(up.err.trimmingCharacters(in: .whitespacesAndNewlines)) }
        XCTAssertEqual(up.status, 0, up.err)

        // Clients reach the controller from inside the first host; ranks talk TCP over eth0
        // (Open MPI's shared-memory transport does not work across these namespaces).
        let environment = ["SLURM_CONF": directory.appendingPathComponent("slurm.conf").path, "CNN_TRAIN": Self.binary.path,
                           "OMPI_MCA_btl": "self,tcp", "OMPI_MCA_btl_tcp_if_include": "eth0"]
        func inside(_ program: String, _ arguments: [String]) -> Outcome {
            Self.run("/usr/sbin/ip", ["netns", "exec", "cnn-h0", program] + arguments, in: scratch, environment: environment, timeout: 300)
        }
        let ranks = inside("srun", ["--nodes=2", "--ntasks=2", Self.binary.path, "version"])
        XCTAssertEqual(ranks.status, 0, ranks.err)
        let lines = launchLines(ranks.out)
        XCTAssertEqual(lines, ["Launch: PMIx; MPI rank 0 of 2, 1 on this host", "Launch: PMIx; MPI rank 1 of 2, 1 on this host"], ranks.out)

        let training = ["lenet", "--epochs", "1", "--limit-train", "4096", "--limit-test", "500", "--threads", "1"]
        let submitted = inside("sbatch", ["--parsable", "--wait", "--nodes=2", "--ntasks-per-node=1",
                                          Self.repo.appendingPathComponent("launch/slurm.sbatch").path] + training + ["--save", "slurm.h5"])
        let job = submitted.out.split(separator: "\n").first.map { String($0.split(separator: ";")[0]) } ?? ""
        XCTAssertEqual(submitted.status, 0, "job \(job): \(submitted.err)\n\(log(of: job))\nslurmctld:\n\(controllerLog(of: job, in: directory))")
        let text = log(of: job)
        XCTAssertTrue(text.contains("job \(job) run 1 on cnn-h[0-1]"), text)
        XCTAssertTrue(text.contains("batch 256, 16 steps; 2 ranks"), text)
        XCTAssertEqual(text.components(separatedBy: "done after 16 steps").count - 1, 1, text)

        trainLocally(training + ["--save", "local.h5"])
        try assertSameWeights("slurm.h5", "local.h5")
    }
}
