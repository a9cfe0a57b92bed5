import ArgumentParser
import Distributed
import NN

/// Where a rank's arithmetic runs: its threads and the convolution engine (train, eval, bench).
struct ComputeOptions: ParsableArguments {
    @Option(name: .long, help: "Threads per rank: oneDNN, the GEMMs and every other loop of a step share them (default: the host's cores divided by its ranks on it; OMP_NUM_THREADS or all cores for a rank alone).")
    var threads: Int?

    @Option(name: .long, help: ArgumentHelp(
        "Convolution engine: dnnl (oneDNN's kernels; the default, float32 builds only; shapes it has only reference kernels for go to BLAS) or blas (im2col + OpenBLAS, the reference).",
        valueName: "blas|dnnl"))
    var engine: ConvolutionEngine?

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be positive, got \(threads)") }
        if let engine, !ConvolutionEngine.isAvailable(engine) {
            throw ValidationError("--engine \(engine.rawValue) is not available in this build (float64 builds have blas only)")
        }
    }
}

extension ConvolutionEngine: ExpressibleByArgument {}
extension GradientTransport: ExpressibleByArgument {}
