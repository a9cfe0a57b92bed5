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
/// - `OMP_WAIT_POLICY=PASSIVE` with `GOMP_SPINCOUNT=30000`: between parallel regions
///   OpenMP's threads spin about 0.3 ms (libgomp's estimate: 10⁵ spins a millisecond), then
///   sleep. libgomp's default spins about 3 ms, which took the cores from OpenBLAS's own
///   threads while those existed (lenet-bn on 2 cores: 403 images/s against 4170 passive)
///   and from the data and gradient-sum threads; not spinning at all makes every region wake
///   its team through the kernel (on 2 threads, with the GEMMs on the team: lenet-bn 4743
///   images/s passive, 6582 spinning 0.3 ms; resnet18 46.3 and 46.9).
/// - `MALLOC_MMAP_THRESHOLD_=131072`: large buffers (tensors and workspace slots, 64-byte
///   aligned) always come from mmap and go back when freed. glibc otherwise raises that
///   threshold past each freed buffer and carves later aligned ones from its heap, which it
///   keeps: NiN's peak was 1039 MB against 899 (`bench nin`). A warm step allocates nothing,
///   so it costs no speed.
enum LoadTimeSettings {
    static func applyBeforeStart() {
        let environment = ProcessInfo.processInfo.environment
        var missing: [(String, String)] = []
        if environment["OPENBLAS_CORETYPE"] == nil, BLAS.coreName == "Prescott", let core = BLAS.bestCore(forCPUFlags: BLAS.cpuFlags()) {
            missing.append(("OPENBLAS_CORETYPE", core))
        }
        if environment["OMP_WAIT_POLICY"] == nil {
            missing.append(("OMP_WAIT_POLICY", "PASSIVE"))
            if environment["GOMP_SPINCOUNT"] == nil { missing.append(("GOMP_SPINCOUNT", "30000")) }
        }
        if environment["MALLOC_MMAP_THRESHOLD_"] == nil { missing.append(("MALLOC_MMAP_THRESHOLD_", "131072")) }
        guard !missing.isEmpty else { return }
        for (name, value) in missing { setenv(name, value, 1) }
        // The binary's real path, so that the process keeps its name (ps, top) rather than "exe".
        let binary = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "/proc/self/exe"
        execv(binary, CommandLine.unsafeArgv)
        // Only reached if exec failed: carry on with the libraries' defaults rather than not at all.
        for (name, _) in missing { unsetenv(name) }
    }
}
