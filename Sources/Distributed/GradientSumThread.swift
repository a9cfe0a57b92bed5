import CMPI
import CMPIShims
import Foundation
import NN

/// A thread of its own that sums gradient buckets across ranks while backward goes on.
///
/// OpenMPI advances a non-blocking collective only while some thread is inside an MPI call;
/// from the main thread that happened only where backward stopped to call `progress()`, so
/// sums stalled in between. Here the thread starts each bucket's all-reduce as soon as it
/// is handed over and polls it to completion. While backward runs it sleeps between polls
/// (10 µs, doubling up to 0.5 ms) so that it does not take a core from the computation; once
/// the main thread waits for the sums, the core is idle and it polls without pause (but
/// yields to any other thread that wants the core): an
/// all-reduce of 16 ranks is some 30 rounds, each advancing only at a poll of every rank
/// (measured at 16 ranks × 1 thread, resnet18: 1.8 s of waiting with sleeps against a 0.06 s
/// blocking all-reduce). It owns a duplicate of the world
/// communicator: the main thread keeps calling MPI (synchronized batch norm, metrics) on
/// the world one, and each communicator's collectives still come in the same order on
/// every rank. Needs MPI_THREAD_MULTIPLE.
/// One all-reduce in place: `count` elements of `type` at `values`, combined with `op`.
struct SumRequest {
    var values: UnsafeMutableRawPointer?
    var count: Int32 = 0
    var type: MPI_Datatype? = nil
    var op: MPI_Op? = nil
}

final class GradientSumThread: @unchecked Sendable {
    private typealias Bucket = SumRequest

    private let comm: MPI_Comm?
    /// Buckets handed over and not yet summed, a ring; grown (outside a warm step) when a
    /// step hands over more buckets than it holds.
    private var queue: [Bucket] = Array(repeating: Bucket(), count: 64)
    /// Counters since the start: buckets handed over, buckets summed.
    private var submitted = 0, completed = 0
    private var stopping = false
    /// Whether the main thread waits for sums (then polling takes no core from it).
    private var mainThreadWaits = false
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let workAvailable = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private let bucketDone = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private let finished = DispatchSemaphore(value: 0)
    /// The first and the longest pause between two polls of a sum in flight, in nanoseconds.
    private static let firstPause = 10_000, longestPause = 500_000

    init(duplicating world: MPI_Comm?) {
        var duplicate: MPI_Comm? = nil
        MPI_Comm_dup(world, &duplicate)
        comm = duplicate
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(workAvailable, nil)
        pthread_cond_init(bucketDone, nil)
        let thread = Thread { [self] in run() }
        thread.name = "gradient sums"
        thread.start()
    }

    /// Hands a bucket over; returns at once.
    func submit(_ bucket: SumRequest) {
        pthread_mutex_lock(mutex)
        if submitted - completed == queue.count { grow() }
        queue[submitted % queue.count] = bucket
        submitted += 1
        pthread_cond_signal(workAvailable)
        pthread_mutex_unlock(mutex)
    }

    /// Buckets handed over since the start.
    var handedOver: Int {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return submitted
    }

    /// Waits until the first `count` buckets handed over since the start are summed.
    func wait(untilSummed count: Int) {
        pthread_mutex_lock(mutex)
        mainThreadWaits = true
        while completed < min(count, submitted) { pthread_cond_wait(bucketDone, mutex) }
        mainThreadWaits = false
        pthread_mutex_unlock(mutex)
    }

    /// Waits until every bucket handed over so far is summed.
    func waitAll() { wait(untilSummed: .max) }

    /// Ends the thread once its work is done and frees its communicator; call before MPI_Finalize.
    func stop() {
        pthread_mutex_lock(mutex)
        stopping = true
        pthread_cond_signal(workAvailable)
        pthread_mutex_unlock(mutex)
        finished.wait()
        var c: MPI_Comm? = comm
        MPI_Comm_free(&c)
    }

    private func grow() {
        // Called with the mutex held; keeps the pending buckets in order.
        let pending = (completed..<submitted).map { queue[$0 % queue.count] }
        queue = Array(repeating: Bucket(), count: 2 * queue.count)
        for (i, bucket) in pending.enumerated() { queue[(completed + i) % queue.count] = bucket }
    }

    private func run() {
        var request: MPI_Request? = cnn_mpi_request_null()
        while true {
            pthread_mutex_lock(mutex)
            while completed == submitted && !stopping { pthread_cond_wait(workAvailable, mutex) }
            if completed == submitted {
                pthread_mutex_unlock(mutex)
                break
            }
            let bucket = queue[completed % queue.count]
            pthread_mutex_unlock(mutex)

            MPI_Iallreduce(cnn_mpi_in_place(), bucket.values, bucket.count, bucket.type, bucket.op, comm, &request)
            var done: Int32 = 0, pause = timespec(tv_sec: 0, tv_nsec: Self.firstPause)
            while true {
                MPI_Test(&request, &done, cnn_mpi_status_ignore())
                if done != 0 { break }
                pthread_mutex_lock(mutex)
                let idleCore = mainThreadWaits
                pthread_mutex_unlock(mutex)
                if idleCore {
                    // Gives the core up only to a thread that wants it: ranks beyond the cores
                    // (an oversubscribed host) would otherwise starve each other's polls.
                    sched_yield()
                    continue
                }
                nanosleep(&pause, nil)
                pause.tv_nsec = min(2 * pause.tv_nsec, Self.longestPause)
            }

            pthread_mutex_lock(mutex)
            completed += 1
            pthread_cond_broadcast(bucketDone)
            pthread_mutex_unlock(mutex)
        }
        finished.signal()
    }

    deinit {
        pthread_mutex_destroy(mutex)
        pthread_cond_destroy(workAvailable)
        pthread_cond_destroy(bucketDone)
        mutex.deallocate()
        workAvailable.deallocate()
        bucketDone.deallocate()
    }
}
