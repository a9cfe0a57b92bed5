import COpenBLAS

/// Thin wrappers over OpenBLAS: every GEMM in cnn-train goes through `gemm`.
public enum BLAS {
    /// C (m×n) = alpha · op(A) · op(B) + beta · C, row-major.
    /// op(A) is m×k (A stored k×m when `transA`), op(B) is k×n (B stored n×k when `transB`).
    @inline(__always)
    public static func gemm(
        transA: Bool = false, transB: Bool = false,
        m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        cblas_sgemm(CblasRowMajor,
                    transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb),
                    beta, c, blasint(ldc))
    }

    /// y += alpha · x
    @inline(__always)
    public static func axpy(_ n: Int, alpha: Float, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        cblas_saxpy(blasint(n), alpha, x, 1, y, 1)
    }

    /// The number of threads OpenBLAS uses for one call.
    public static var threads: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(newValue)) }
    }

    /// The kernel OpenBLAS chose for this CPU (for benchmark reports).
    public static var coreName: String { String(cString: openblas_get_corename()) }
}
