import CMPI
import CMPIShims
import Foundation
import NN

/// The processes of an MPI job (`mpirun`, `srun --mpi=pmix`, …), over MPI_COMM_WORLD. Gradient sums started during
/// backward run on a thread of their own (`GradientSumThread`) where MPI provides
/// MPI_THREAD_MULTIPLE; otherwise the main thread starts them and advances them at each
/// `progress()`.
public final class MPICommunicator: Communicator {
    public let rank: Int
    public let size: Int
    public let localSize: Int
    private let comm = cnn_mpi_comm_world()
    /// Where `startSum` hands its buckets; nil without MPI_THREAD_MULTIPLE or for one rank.
    private var sumThread: GradientSumThread?
    /// The thread's count of buckets handed over when this step's first sum started.
    private var stepStart: Int?

    /// Joins the MPI job that `launch` started: rank and size are MPI_COMM_WORLD's, the local
    /// size that of its shared-memory part (the ranks on this host). Throws, with MPI finalised,
    /// where MPI cannot join the launcher's job or its world is not the job the launcher
    /// started (`srun` without `--mpi=pmix`): training on there would run each process alone.
    public init(launch: Launch) throws {
        try launch.checkJoinable()
        var provided: Int32 = 0
        MPI_Init_thread(nil, nil, cnn_mpi_thread_multiple(), &provided)
        var r: Int32 = 0, s: Int32 = 0
        MPI_Comm_rank(comm, &r)
        MPI_Comm_size(comm, &s)
        rank = Int(r)
        size = Int(s)
        localSize = Self.sharedMemorySize(of: comm, rank: r)
        do {
            try launch.check(mpiSize: size)
        } catch {
            MPI_Finalize()
            throw error
        }
        // The 16-bit sum operations exist before any thread can use them.
        _ = (cnn_mpi_sum_bf16(), cnn_mpi_sum_fp16())
        // CNN_TRAIN_SUM_THREAD=0 keeps the sums on the main thread, to measure what the thread buys.
        if size > 1 && provided >= cnn_mpi_thread_multiple() && ProcessInfo.processInfo.environment["CNN_TRAIN_SUM_THREAD"] != "0" {
            sumThread = GradientSumThread(duplicating: comm)
        }
    }

    /// How many ranks of `comm` share this rank's memory (its host), from MPI's own split.
    private static func sharedMemorySize(of comm: MPI_Comm?, rank: Int32) -> Int {
        var local: MPI_Comm?
        guard MPI_Comm_split_type(comm, cnn_mpi_comm_type_shared(), rank, cnn_mpi_info_null(), &local) == cnn_mpi_success() else { return 1 }
        var size: Int32 = 1
        MPI_Comm_size(local, &size)
        MPI_Comm_free(&local)
        return Int(size)
    }

    /// Ends MPI; call once, after the last collective.
    public func finalize() {
        sumThread?.stop()
        MPI_Finalize()
    }

    private var realType: MPI_Datatype { MemoryLayout<Real>.size == 8 ? cnn_mpi_double() : cnn_mpi_float() }

    public func sum(_ values: UnsafeMutableBufferPointer<Real>) {
        guard size > 1, !values.isEmpty else { return }
        MPI_Allreduce(cnn_mpi_in_place(), values.baseAddress, Int32(values.count), realType, cnn_mpi_sum(), comm)
    }

    public func sum(doubles values: UnsafeMutableBufferPointer<Double>) {
        guard size > 1, !values.isEmpty else { return }
        MPI_Allreduce(cnn_mpi_in_place(), values.baseAddress, Int32(values.count), cnn_mpi_double(), cnn_mpi_sum(), comm)
    }

    public func minimum(_ values: UnsafeMutableBufferPointer<Int64>) {
        guard size > 1, !values.isEmpty else { return }
        MPI_Allreduce(cnn_mpi_in_place(), values.baseAddress, Int32(values.count), cnn_mpi_int64(), cnn_mpi_min(), comm)
    }

    public func broadcast(_ values: UnsafeMutableRawBufferPointer, root: Int) {
        guard size > 1, !values.isEmpty else { return }
        MPI_Bcast(values.baseAddress, Int32(values.count), cnn_mpi_byte(), Int32(root), comm)
    }

    /// Requests of the sums in flight; grown once to the number of slots used.
    private var requests: [MPI_Request?] = []
    private var active = 0

    public func startSum(_ values: UnsafeMutableBufferPointer<Real>, slot: Int) {
        guard let base = values.baseAddress else { return }
        startSum(SumRequest(values: UnsafeMutableRawPointer(base), count: Int32(values.count), type: realType, op: cnn_mpi_sum()), slot: slot)
    }

    public func startSum(halves: UnsafeMutableBufferPointer<UInt16>, format: GradientTransport, slot: Int) {
        guard let base = halves.baseAddress else { return }
        precondition(format != .full, "16-bit sums are bf16 or fp16")
        let op = format == .bf16 ? cnn_mpi_sum_bf16() : cnn_mpi_sum_fp16()
        startSum(SumRequest(values: UnsafeMutableRawPointer(base), count: Int32(halves.count), type: cnn_mpi_uint16(), op: op), slot: slot)
    }

    private func startSum(_ sum: SumRequest, slot: Int) {
        guard size > 1, sum.count > 0 else { return }
        if let sumThread {
            if stepStart == nil { stepStart = sumThread.handedOver }
            return sumThread.submit(sum)
        }
        while requests.count <= slot { requests.append(cnn_mpi_request_null()) }
        MPI_Iallreduce(cnn_mpi_in_place(), sum.values, sum.count, sum.type, sum.op, comm, &requests[slot])
        active = max(active, slot + 1)
    }

    public func progress() {
        guard active > 0 else { return }
        var done: Int32 = 0
        MPI_Testall(Int32(active), &requests, &done, nil)
    }

    public func waitForSums(_ count: Int) {
        if let sumThread {
            if let stepStart { sumThread.wait(untilSummed: stepStart + count) }
            return
        }
        let first = min(count, active)
        guard first > 0 else { return }
        MPI_Waitall(Int32(first), &requests, nil)
    }

    public func waitAll() {
        if let sumThread {
            sumThread.waitAll()
            stepStart = nil
            return
        }
        guard active > 0 else { return }
        MPI_Waitall(Int32(active), &requests, nil)
        active = 0
    }

    public func barrier() { MPI_Barrier(comm) }

    public func abort(code: Int32) -> Never {
        MPI_Abort(comm, code)
        exit(code)
    }
}
