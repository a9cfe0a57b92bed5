import ArgumentParser
import CHDF5
import CMPI
import CZlib
import Distributed
import DNNL
import Foundation
import Tensor

/// `cnn-train version`: which C libraries this binary runs on, for bug reports; under a
/// launcher (`mpirun`, `srun`) also what each process learns from MPI, to check a cluster's setup.
struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "version",
        abstract: "Print the versions of the libraries cnn-train is linked with.",
        discussion: "Under a launcher (mpirun, srun) each rank also prints one line: the launcher; its rank, the world's size and the ranks on its host as MPI gives them; and the threads it would compute with."
    )

    func run() throws {
        print("cnn-train 0.1 (tensors: \(MemoryLayout<Real>.size == 8 ? "float64" : "float32"))")
        print("OpenBLAS: core \(BLAS.coreName), one thread per call (GEMMs are split over OpenMP's threads)")
        let environment = ProcessInfo.processInfo.environment
        let waitPolicy = (environment["OMP_WAIT_POLICY"] ?? "the library's default")
            + (environment["GOMP_SPINCOUNT"].map { ", spin count \($0)" } ?? "")
        print("OpenMP (oneDNN \(DNNLRuntime.version) on \(DNNLRuntime.instructionSet), parallel loops, GEMMs): \(Parallel.threads) thread(s), wait policy \(waitPolicy)")
        print("malloc: buffers from \(environment["MALLOC_MMAP_THRESHOLD_"].map { "\($0) bytes" } ?? "glibc's moving threshold") mapped, and unmapped when freed")
        var major: UInt32 = 0, minor: UInt32 = 0, release: UInt32 = 0
        H5get_libversion(&major, &minor, &release)
        print("HDF5: \(major).\(minor).\(release)")
        print("zlib: \(String(cString: zlibVersion()))")
        var buffer = [CChar](repeating: 0, count: Int(MPI_MAX_LIBRARY_VERSION_STRING))
        var length: Int32 = 0
        MPI_Get_library_version(&buffer, &length)
        let mpi = String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        print("MPI: \(mpi.split(separator: "\n").first.map(String.init) ?? mpi)")
        if let launch = Launch.current, launch.joinsMPI {
            let communicator = try MPICommunicator(launch: launch)
            print("Launch: \(launch.launcher.rawValue); MPI rank \(communicator.rank) of \(communicator.size), \(communicator.localSize) on this host, "
                  + "\(communicator.localSize > 1 ? Job.threadsPerRank(localSize: communicator.localSize) : Parallel.threads) thread(s)")
            communicator.finalize()
        }
    }
}
