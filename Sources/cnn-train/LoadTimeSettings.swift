import Foundation
import Tensor

/// Settings that OpenBLAS and OpenMP (libgomp) read only when they are loaded, before `main`:
/// where one is missing, cnn-train sets it and executes itself again (same process, same
/// arguments), before MPI starts. A value the user set is always kept.
///
/// - `OPENBLAS_CORETYPE`, only where OpenBLAS fell back to its generic kernel: Debian 12's
///   0.3.21 does not know CPUs newer than itself and takes Prescott (SSE3); on this
///   project's Xeon (model 207) that trains ResNet-18 at 19.7 images/s instead of 40.9 with
///   SkylakeX. cnn-train names the best kernel the CPU's flags allow.
/// - `OMP_WAIT_POLICY=PASSIVE`: OpenBLAS has threads of its own, and OpenMP's threads (oneDNN
///   and our parallel loops) spin between regions by default, taking the cores OpenBLAS's
///   threads need (measured on 2 cores, lenet-bn: 403 images/s spinning, 4170 passive;
///   resnet18 under load: 4 against 17–23).
enum LoadTimeSettings {
    static func applyBeforeStart() {
        let environment = ProcessInfo.processInfo.environment
        var missing: [(String, String)] = []
        if environment["OPENBLAS_CORETYPE"] == nil, BLAS.coreName == "Prescott", let core = BLAS.bestCore(forCPUFlags: BLAS.cpuFlags()) {
            missing.append(("OPENBLAS_CORETYPE", core))
        }
        if environment["OMP_WAIT_POLICY"] == nil { missing.append(("OMP_WAIT_POLICY", "PASSIVE")) }
        guard !missing.isEmpty else { return }
        for (name, value) in missing { setenv(name, value, 1) }
        // The binary's real path, so that the process keeps its name (ps, top) rather than "exe".
        let binary = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "/proc/self/exe"
        execv(binary, CommandLine.unsafeArgv)
        // Only reached if exec failed: carry on with the libraries' defaults rather than not at all.
        for (name, _) in missing { unsetenv(name) }
    }
}
