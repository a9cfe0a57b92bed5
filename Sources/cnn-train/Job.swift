import ArgumentParser
import DNNL
import NN
import Distributed
import Foundation
import Tensor
import Training

/// The processes of one run: one alone, or the ranks of a job that a launcher started
/// (`mpirun`, `srun`, any PMI launcher; see `Launch`). Decides who prints errors, so that an
/// error is printed once and no rank is left waiting.
final class Job {
    let communicator: any Communicator
    /// Why the launcher's processes cannot train as one job; `run` throws it before any work.
    private let launchProblem: Error?

    init(_ compute: ComputeOptions) {
        if let launch = Launch.current, launch.joinsMPI {
            do {
                communicator = try MPICommunicator(launch: launch)
                launchProblem = nil
            } catch {
                // Each process is alone: it reports and exits (rank 0 prints, see CNNTrain.main)
                // rather than train and write the files the others write.
                communicator = SingleProcess()
                launchProblem = error
            }
        } else {
            communicator = SingleProcess()
            launchProblem = nil
        }
        // The ranks of a host share its cores. A rank computes on one team of threads
        // (OpenMP's: oneDNN, our parallel loops and the GEMMs, see BLAS), which gets the
        // rank's share; alone on a host it keeps OpenMP's default (OMP_NUM_THREADS or the cores).
        if let threads = compute.threads {
            Parallel.threads = threads
        } else if communicator.localSize > 1 {
            Parallel.threads = Self.threadsPerRank(localSize: communicator.localSize)
        }
        if let engine = compute.engine { ConvolutionEngine.current = engine }
        if let algorithm = compute.convolutionAlgorithm { ConvolutionEngine.algorithm = algorithm }
    }

    var isRoot: Bool { communicator.isRoot }

    /// Threads for each of `localSize` ranks on this host: its share of the host's cores, and
    /// no more than the cores it is bound to (srun --cpu-bind, mpirun --bind-to: its CPU
    /// affinity mask).
    static func threadsPerRank(localSize: Int) -> Int {
        let share = ProcessInfo.processInfo.activeProcessorCount / max(localSize, 1)
        return max(1, min(share, cpusInAffinityMask() ?? share))
    }

    /// How many CPUs this process may run on (its affinity mask, from /proc/self/status), or
    /// nil where it cannot tell. Foundation's activeProcessorCount counts the host's, whatever
    /// the binding.
    static func cpusInAffinityMask() -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed:") }) else { return nil }
        // A hexadecimal mask in comma-separated words: "Cpus_allowed:\t00000000,00000003".
        let count = line.dropFirst("Cpus_allowed:".count).reduce(0) { $0 + (Int(String($1), radix: 16)?.nonzeroBitCount ?? 0) }
        return count > 0 ? count : nil
    }

    /// An error every rank knows of, with the message of the rank where it happened.
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// Runs `body` on every rank and agrees on the outcome: if it failed anywhere, every
    /// rank throws `Failure` carrying the message of the lowest failing rank.
    func collectively<T>(_ body: () throws -> T) throws -> T {
        var outcome: Result<T, Error>
        do { outcome = .success(try body()) } catch { outcome = .failure(error) }
        guard communicator.size > 1 else { return try outcome.get() }
        var firstFailing = [Int64(communicator.size)]
        if case .failure = outcome { firstFailing[0] = Int64(communicator.rank) }
        firstFailing.withUnsafeMutableBufferPointer { communicator.minimum($0) }
        let failing = Int(firstFailing[0])
        if failing == communicator.size { return try outcome.get() }
        var message = [UInt8](repeating: 0, count: 2048)
        if failing == communicator.rank, case let .failure(error) = outcome {
            let text = Array("\(error)".utf8.prefix(message.count - 1))
            message.replaceSubrange(0..<text.count, with: text)
        }
        message.withUnsafeMutableBytes { communicator.broadcast($0, root: failing) }
        let text = String(decoding: message.prefix { $0 != 0 }, as: UTF8.self)
        throw Failure(description: failing != 0 ? "rank \(failing): \(text)" : text)
    }

    /// Runs the whole job body. Errors all ranks share (`Failure`, a diverged loss) are
    /// reported by rank 0 alone; any other error on a rank of a multi-rank job is printed
    /// there and ends every rank at once, since the others may be waiting for it.
    func run(_ body: () throws -> Void) throws {
        if let launchProblem { throw launchProblem }
        do {
            try body()
        } catch where communicator.size > 1 {
            if error is Failure || error is Trainer.DivergedError {
                // Rank 0 prints before anyone exits, so mpirun's own report comes after it.
                if isRoot { FileHandle.standardError.write(Data("Error: \(error)\n".utf8)) }
                communicator.barrier()
                finish()
                throw ExitCode.failure
            }
            FileHandle.standardError.write(Data("Error: rank \(communicator.rank): \(error)\n".utf8))
            communicator.abort(code: 1)
        }
        finish()
    }

    private func finish() { (communicator as? MPICommunicator)?.finalize() }
}

/// Writes one line (a warning, a skipped file) to standard error.
func printError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}
