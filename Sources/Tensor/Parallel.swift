import CParallel

/// Loops that run on all of the rank's threads: the OpenMP team oneDNN's primitives use,
/// so the non-library work of a step (batch norm, activations, pooling, im2col, the
/// optimizer) and oneDNN never run more threads than the rank was given.
///
/// Each thread gets one contiguous range, fixed by the count and the thread count; a body
/// whose indices are independent therefore gives the same bits on any number of threads.
public enum Parallel {
    /// Threads of a parallel loop started from this thread (OpenMP's, shared with oneDNN).
    public static var threads: Int {
        get { Int(cnn_parallel_threads()) }
        set { cnn_parallel_set_threads(Int32(max(1, newValue))) }
    }

    /// A loop body: handles indices `begin..<end` with the loop's arguments at `arguments`.
    ///
    /// A C function rather than a Swift closure: handing a closure to other threads makes
    /// it escape, and each escaping closure context is an allocation (measured: two per loop
    /// with `withoutActuallyEscaping`), where a training step allocates nothing.
    public typealias Kernel = @convention(c) (_ arguments: UnsafeMutableRawPointer?, _ begin: Int, _ end: Int) -> Void

    /// Calls `kernel(&arguments, begin, end)` with disjoint ranges covering `0..<count`,
    /// concurrently, giving each thread at least `grain` indices (fewer threads when the loop
    /// is small; the calling thread alone when one suffices). `arguments` is what the kernel
    /// needs, usually a small struct of pointers.
    @inlinable
    public static func forEach<Arguments>(_ count: Int, grain: Int = 1, _ arguments: Arguments, _ kernel: Kernel) {
        withUnsafePointer(to: arguments) { pointer in
            cnn_parallel_for(count, grain, kernel, UnsafeMutableRawPointer(mutating: pointer))
        }
    }
}

extension Parallel {
    /// Indices per thread for a loop doing `work` elements of simple arithmetic per index:
    /// enough that starting the team (a few microseconds) stays a small share.
    @inlinable
    public static func grain(work: Int) -> Int { max(1, 32_768 / max(work, 1)) }

    /// Inside a kernel: which of the loop's threads runs it, from 0 to `threads` − 1 (for
    /// per-thread scratch space).
    @inlinable
    public static var threadIndex: Int { Int(cnn_parallel_thread_index()) }

    /// Inside a kernel: the loop's arguments, which `forEach` was given as `type`.
    @inlinable
    public static func arguments<Arguments>(_ pointer: UnsafeMutableRawPointer?, as type: Arguments.Type) -> Arguments {
        pointer!.assumingMemoryBound(to: Arguments.self).pointee
    }
}
