import COpenBLAS
import Foundation

/// Thin wrappers over OpenBLAS: every GEMM in cnn-train goes through `gemm`.
public enum BLAS {
    /// C (m×n) = alpha · op(A) · op(B) + beta · C, row-major.
    /// op(A) is m×k (A stored k×m when `transA`), op(B) is k×n (B stored n×k when `transB`).
    @inline(__always)
    public static func gemm(
        transA: Bool = false, transB: Bool = false,
        m: Int, n: Int, k: Int,
        alpha: Real = 1, a: UnsafePointer<Real>, lda: Int,
        b: UnsafePointer<Real>, ldb: Int,
        beta: Real = 0, c: UnsafeMutablePointer<Real>, ldc: Int
    ) {
        #if CNN_FLOAT64
        let gemm = cblas_dgemm
        #else
        let gemm = cblas_sgemm
        #endif
        gemm(CblasRowMajor,
                    transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb),
                    beta, c, blasint(ldc))
    }

    /// y += alpha · x
    @inline(__always)
    public static func axpy(_ n: Int, alpha: Real, x: UnsafePointer<Real>, y: UnsafeMutablePointer<Real>) {
        #if CNN_FLOAT64
        cblas_daxpy(blasint(n), alpha, x, 1, y, 1)
        #else
        cblas_saxpy(blasint(n), alpha, x, 1, y, 1)
        #endif
    }

    /// The number of threads OpenBLAS uses for one call.
    public static var threads: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(newValue)) }
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
