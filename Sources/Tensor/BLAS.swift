import COpenBLAS
import Foundation

/// Thin wrappers over OpenBLAS: every GEMM in cnn-train goes through `gemm`.
///
/// OpenBLAS computes each call on one thread; `gemm` and `axpy` split the work over the
/// rank's threads themselves (`Parallel`, the OpenMP team oneDNN uses). OpenBLAS's own
/// threads spin on `sched_yield` for about 0.1 s after every call, and on a rank whose cores
/// oneDNN's team also uses they took 14% of ResNet-18's step doing nothing (perf, 2 cores).
public enum BLAS {
    /// C (m×n) = alpha · op(A) · op(B) + beta · C, row-major.
    /// op(A) is m×k (A stored k×m when `transA`), op(B) is k×n (B stored n×k when `transB`).
    ///
    /// Each thread computes a band of C's rows or columns (the longer side) with the whole
    /// of k, so every element is one OpenBLAS sum whatever the thread count.
    public static func gemm(
        transA: Bool = false, transB: Bool = false,
        m: Int, n: Int, k: Int,
        alpha: Real = 1, a: UnsafePointer<Real>, lda: Int,
        b: UnsafePointer<Real>, ldb: Int,
        beta: Real = 0, c: UnsafeMutablePointer<Real>, ldc: Int
    ) {
        let product = GEMM(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                           b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        keepOpenBLASOnOneThread()
        let bands = min(Parallel.threads, max(1, m * n * k / minimumMultiplyAddsPerThread), (max(m, n) + 7) / 8)
        guard bands > 1 else { return product.compute(rows: 0..<m, columns: 0..<n) }
        Parallel.forEach(bands, GEMMBands(product: product, count: bands)) { pointer, begin, end in
            let bands = Parallel.arguments(pointer, as: GEMMBands.self)
            for band in begin..<end { bands.compute(band) }
        }
    }

    /// y += alpha · x, in a contiguous share per thread.
    public static func axpy(_ n: Int, alpha: Real, x: UnsafePointer<Real>, y: UnsafeMutablePointer<Real>) {
        keepOpenBLASOnOneThread()
        Parallel.forEach(n, grain: Parallel.grain(work: 1), AXPY(alpha: alpha, x: x, y: y)) { pointer, begin, end in
            let axpy = Parallel.arguments(pointer, as: AXPY.self)
            #if CNN_FLOAT64
            cblas_daxpy(blasint(end - begin), axpy.alpha, axpy.x + begin, 1, axpy.y + begin, 1)
            #else
            cblas_saxpy(blasint(end - begin), axpy.alpha, axpy.x + begin, 1, axpy.y + begin, 1)
            #endif
        }
    }

    /// Below this many multiply-adds a thread's share no longer pays for waking the team
    /// (a few microseconds: about 10⁵ multiply-adds at this machine's speed).
    static let minimumMultiplyAddsPerThread = 1 << 17

    /// OpenBLAS starts with a thread per core (or OPENBLAS_NUM_THREADS); each of its calls
    /// must run on the thread that makes it.
    @inline(__always)
    static func keepOpenBLASOnOneThread() {
        if openblas_get_num_threads() != 1 { openblas_set_num_threads(1) }
    }

    /// The kernel OpenBLAS chose for this CPU (for benchmark reports).
    public static var coreName: String { String(cString: openblas_get_corename()) }

    /// The newest OpenBLAS x86-64 kernel family a CPU with these flags runs (names as
    /// OPENBLAS_CORETYPE takes them), or nil when none beats the generic one.
    public static func bestCore(forCPUFlags flags: Set<Substring>) -> String? {
        if ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"].allSatisfy(flags.contains) { return "SkylakeX" }
        if flags.contains("avx2") && flags.contains("fma") { return "Haswell" }
        if flags.contains("avx") { return "Sandybridge" }
        return nil
    }

    /// This CPU's instruction-set flags, from /proc/cpuinfo (empty where there is none).
    public static func cpuFlags() -> Set<Substring> {
        guard let cpuinfo = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("flags") }),
              let colon = line.firstIndex(of: ":") else { return [] }
        return Set(line[line.index(after: colon)...].split(separator: " "))
    }
}

/// One GEMM's operands, so that a band of it can be computed on another thread.
private struct GEMM {
    let transA, transB: Bool
    let m, n, k: Int
    let alpha: Real
    let a: UnsafePointer<Real>, lda: Int
    let b: UnsafePointer<Real>, ldb: Int
    let beta: Real
    let c: UnsafeMutablePointer<Real>, ldc: Int

    /// C[rows, columns] of the product: the band's rows of op(A) and columns of op(B).
    func compute(rows: Range<Int>, columns: Range<Int>) {
        guard !rows.isEmpty, !columns.isEmpty else { return }
        // op(A)'s row i is A's row i, or its column i when A is stored transposed; likewise
        // op(B)'s column j is B's column j, or its row j.
        let aBand = a + (transA ? rows.lowerBound : rows.lowerBound * lda)
        let bBand = b + (transB ? columns.lowerBound * ldb : columns.lowerBound)
        #if CNN_FLOAT64
        let gemm = cblas_dgemm
        #else
        let gemm = cblas_sgemm
        #endif
        gemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
             blasint(rows.count), blasint(columns.count), blasint(k), alpha, aBand, blasint(lda), bBand, blasint(ldb),
             beta, c + rows.lowerBound * ldc + columns.lowerBound, blasint(ldc))
    }
}

/// A GEMM cut into `count` bands of its longer side, each a multiple of 8 wide (the width
/// of OpenBLAS's kernels' tiles) but the last.
private struct GEMMBands {
    let product: GEMM
    let count: Int

    func compute(_ band: Int) {
        let splitsRows = product.m > product.n
        let length = splitsRows ? product.m : product.n
        let range = bound(band, length)..<bound(band + 1, length)
        if splitsRows {
            product.compute(rows: range, columns: 0..<product.n)
        } else {
            product.compute(rows: 0..<product.m, columns: range)
        }
    }

    private func bound(_ band: Int, _ length: Int) -> Int {
        band == count ? length : min(length, (length * band / count) & ~7)
    }
}

private struct AXPY {
    let alpha: Real
    let x: UnsafePointer<Real>
    let y: UnsafeMutablePointer<Real>
}
