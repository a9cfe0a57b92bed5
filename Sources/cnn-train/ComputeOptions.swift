import ArgumentParser
import DNNL
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

    @Option(name: .customLong("conv-algorithm"), help: ArgumentHelp(
        "How the dnnl engine computes 3×3 stride-1 convolutions: direct (the default) or winograd (oneDNN's F(4×4, 3×3): about 1.7× faster on those layers, with rounding errors up to about 10× direct's bound; other shapes stay direct).",
        valueName: "direct|winograd"))
    var convolutionAlgorithm: ConvolutionAlgorithm?

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be positive, got \(threads)") }
        if let engine, !ConvolutionEngine.isAvailable(engine) {
            throw ValidationError("--engine \(engine.rawValue) is not available in this build (float64 builds have blas only)")
        }
        if convolutionAlgorithm == .winograd, (engine ?? ConvolutionEngine.current) != .dnnl {
            throw ValidationError("--conv-algorithm winograd needs the dnnl engine (oneDNN computes it)")
        }
        if convolutionAlgorithm == .winograd, !DNNLRuntime.runsWinograd {
            throw ValidationError("--conv-algorithm winograd: oneDNN implements it on AVX-512 only; this CPU runs \(DNNLRuntime.instructionSet)")
        }
    }
}

extension ConvolutionEngine: ExpressibleByArgument {}

/// `direct` and `winograd`; oneDNN's `auto` is not offered: which layers it gives Winograd
/// depends on the machine, and so would the rounding.
extension ConvolutionAlgorithm: ExpressibleByArgument {
    public init?(argument: String) {
        guard let algorithm = Self(rawValue: argument), algorithm != .auto else { return nil }
        self = algorithm
    }
    public static var allValueStrings: [String] { [direct, winograd].map(\.rawValue) }
}
extension GradientTransport: ExpressibleByArgument {}
