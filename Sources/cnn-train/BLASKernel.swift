import Foundation
import Tensor

/// OpenBLAS picks its kernels when it is loaded, from the CPU model. Debian 12's 0.3.21
/// does not know CPUs newer than itself and falls back to Prescott (SSE3): on this project's
/// Xeon (model 207) that trains ResNet-18 at 19.7 images/s instead of 40.9 with SkylakeX.
/// The library honours OPENBLAS_CORETYPE only at load time, so when it is unset and the
/// fallback was taken, cnn-train names the best kernel the CPU's flags allow and executes
/// itself again (same process, same arguments), before MPI starts. Setting
/// OPENBLAS_CORETYPE, to any value, turns this off.
enum BLASKernel {
    static func upgradeIfFallback() {
        let environment = ProcessInfo.processInfo.environment
        guard environment["OPENBLAS_CORETYPE"] == nil, BLAS.coreName == "Prescott",
              let core = BLAS.bestCore(forCPUFlags: BLAS.cpuFlags()) else { return }
        setenv("OPENBLAS_CORETYPE", core, 1)
        // The binary's real path, so that the process keeps its name (ps, top) rather than "exe".
        let binary = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "/proc/self/exe"
        execv(binary, CommandLine.unsafeArgv)
        // Only reached if exec failed: carry on with the slow kernel rather than not at all.
        unsetenv("OPENBLAS_CORETYPE")
    }
}
