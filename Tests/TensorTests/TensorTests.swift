import Tensor
import XCTest

final class TensorTests: XCTestCase {
    func testShapeStoresUpToFourDimensionsInline() {
        let s = Shape(2, 3, 4, 5)
        XCTAssertEqual(s.count, 120)
        XCTAssertEqual(s.itemCount, 60)
        XCTAssertEqual(s.dims, [2, 3, 4, 5])
        XCTAssertEqual(Shape([2, 3, 4, 5]), s)
        XCTAssertNotEqual(Shape(2, 3, 20), Shape(2, 3, 4, 5))
        XCTAssertEqual(s.withBatch(7), Shape(7, 3, 4, 5))
        XCTAssertEqual("\(Shape(6, 1, 5, 5))", "6×1×5×5")
    }

    func testReuseKeepsMemoryForTheSameShapeOnly() {
        var cache: Tensor?
        let a = Tensor.reuse(&cache, shape: Shape(2, 3))
        let b = Tensor.reuse(&cache, shape: Shape(2, 3))
        XCTAssertTrue(a.storage === b.storage)
        let c = Tensor.reuse(&cache, shape: Shape(3, 2))
        XCTAssertFalse(a.storage === c.storage)
    }

    /// oneDNN's Winograd kernels store activations with aligned non-temporal stores and
    /// fault on less than 64 bytes; malloc gives 16 (large blocks sit 16 bytes past a page).
    func testFreshStorageIsCacheLineAligned() {
        for count in [1, 17, 1000, 1 << 20] {
            let storage = Storage(count: count)
            XCTAssertEqual(Int(bitPattern: storage.base) % Storage.alignment, 0, "\(count) floats")
            XCTAssertEqual(Storage.alignment, 64)
        }
    }

    func testViewsShareTheirParentsMemory() {
        let parent = Storage(count: 10)
        let view = Storage(viewing: parent, offset: 4, count: 3)
        view.base[0] = 5
        XCTAssertEqual(parent.base[4], 5)
    }

    func testWindowOutputSideFollowsPyTorch() {
        XCTAssertEqual(Window2D(kernel: 11, stride: 4, padding: 1).height.outputSide(224), 54)
        XCTAssertEqual(Window2D(kernel: 3, stride: 2, padding: 1).height.outputSide(48), 24)
        XCTAssertEqual(Window2D(kernel: 5).height.outputSide(4), 0)
        // Dilation 2 makes a 3-tap kernel span 5: (11 + 2·2 − 5) / 1 + 1 = 11.
        XCTAssertEqual(Window2D(kernel: 3, padding: 2, dilation: 2).height.outputSide(11), 11)
        let rectangular = Window2D(height: .init(kernel: 7, stride: 2, padding: 3), width: .init(kernel: 1))
        XCTAssertTrue(rectangular.outputSize(height: 10, width: 9) == (5, 9))
    }

    /// col2im is the adjoint of im2col: ⟨im2col(x), c⟩ = ⟨x, col2im(c)⟩ for any x and c.
    func testCol2imIsTheAdjointOfIm2col() {
        var rng = SeededGenerator(seed: 1)
        for window in [Window2D(kernel: 3, stride: 1, padding: 1), Window2D(kernel: 3, stride: 2, padding: 0),
                       Window2D(kernel: 5, stride: 2, padding: 2), Window2D(kernel: 2, stride: 1, padding: 0),
                       Window2D(kernel: 3, stride: 1, padding: 2, dilation: 2), Window2D(kernel: 3, stride: 2, padding: 1, dilation: 3),
                       Window2D(height: .init(kernel: 1, padding: 0), width: .init(kernel: 7, padding: 3)),
                       Window2D(height: .init(kernel: 7, stride: 2, padding: 3), width: .init(kernel: 1, stride: 1))] {
            let c = 2, h = 7, w = 6
            let (outH, outW) = window.outputSize(height: h, width: w)
            let rows = c * window.taps, cols = outH * outW
            let x = (0..<(c * h * w)).map { _ in rng.uniform(-1, 1) }
            let y = (0..<(rows * cols)).map { _ in rng.uniform(-1, 1) }
            var unfolded = [Real](repeating: 0, count: rows * cols)
            var folded = [Real](repeating: 0, count: c * h * w)
            im2col(x, channels: c, height: h, width: w, window: window, into: &unfolded)
            col2im(y, channels: c, height: h, width: w, window: window, into: &folded)
            let lhs = zip(unfolded, y).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            let rhs = zip(x, folded).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            // im2col copies, so lhs sums exact products in float64; col2im sums up to `taps`
            // values of y per element in Real: within γ_taps of col2im(|y|) (Higham Thm. 3.1).
            // Both float64 sums add γ_N(float64) of the same magnitude Σ|x|·col2im(|y|), itself
            // computed in Real: within (1 + γ_taps).
            var foldedMagnitude = [Real](repeating: 0, count: c * h * w)
            col2im(y.map { abs($0) }, channels: c, height: h, width: w, window: window, into: &foldedMagnitude)
            let magnitude = zip(x, foldedMagnitude).reduce(0.0) { $0 + abs(Double($1.0)) * Double($1.1) }
            func gamma(_ k: Int, _ u: Double) -> Double { Double(k) * u / (1 - Double(k) * u) }
            let taps = gamma(window.taps, Double(Real.ulpOfOne) / 2)
            let allowed = (taps + 2 * gamma(rows * cols, Double.ulpOfOne / 2)) * magnitude * (1 + taps)
            XCTAssertEqual(lhs, rhs, accuracy: allowed, "\(window)")
        }
    }

    func testIm2colPlacesPaddingAsZeros() {
        // One 2×2 channel, 3×3 window with padding 1: the centre column is the whole image.
        var out = [Real](repeating: -1, count: 9 * 4)
        im2col([1, 2, 3, 4], channels: 1, height: 2, width: 2, window: Window2D(kernel: 3, padding: 1), into: &out)
        XCTAssertEqual(Array(out[16..<20]), [1, 2, 3, 4])  // kernel position (1, 1)
        XCTAssertEqual(Array(out[0..<4]), [0, 0, 0, 1])    // kernel position (0, 0)
    }

    func testGemmMultipliesRowMajor() {
        let a: [Real] = [1, 2, 3, 4, 5, 6]  // 2×3
        let b: [Real] = [1, 0, 0, 1, 1, 1]  // 3×2
        var c = [Real](repeating: 0, count: 4)
        BLAS.gemm(m: 2, n: 2, k: 3, a: a, lda: 3, b: b, ldb: 2, c: &c, ldc: 2)
        XCTAssertEqual(c, [4, 5, 10, 11])
        var ata = [Real](repeating: 0, count: 9)  // Aᵀ·A
        BLAS.gemm(transA: true, m: 3, n: 3, k: 2, a: a, lda: 3, b: a, ldb: 3, c: &ata, ldc: 3)
        XCTAssertEqual(ata, [17, 22, 27, 22, 29, 36, 27, 36, 45])
    }

    /// `gemm` cuts C into bands of rows or columns, one per thread: every element must be
    /// computed exactly once, from the right rows of op(A) and columns of op(B). Small integer
    /// operands make every sum exact in any order (|C| < 2¹³ ≪ 2²⁴), so the product equals
    /// the reference exactly; beta = 1 would show an element computed twice.
    func testGemmSplitOverThreadsComputesEveryElementOnce() {
        var rng = SeededGenerator(seed: 7)
        func integers(_ count: Int) -> [Real] { (0..<count).map { _ in Real(Int(rng.next() % 9) - 4) } }
        let threads = Parallel.threads
        defer { Parallel.threads = threads }
        for teamSize in [1, 2, 3] {
            Parallel.threads = teamSize
            for (m, n, k) in [(45, 333, 67), (333, 45, 67), (5, 2, 3)] {
                for transA in [false, true] {
                    for transB in [false, true] {
                        let a = integers(m * k), b = integers(k * n), start = integers(m * n)
                        let lda = transA ? m : k, ldb = transB ? k : n
                        var c = start
                        BLAS.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 2, a: a, lda: lda, b: b, ldb: ldb,
                                  beta: 1, c: &c, ldc: n)
                        var expected = start
                        for i in 0..<m {
                            for j in 0..<n {
                                for p in 0..<k {
                                    expected[i * n + j] += 2 * (transA ? a[p * lda + i] : a[i * lda + p]) * (transB ? b[j * ldb + p] : b[p * ldb + j])
                                }
                            }
                        }
                        XCTAssertEqual(c, expected, "\(m)×\(n)×\(k), transA \(transA), transB \(transB), \(teamSize) thread(s)")
                    }
                }
            }
        }
    }

    func testAxpySplitOverThreadsAddsEveryElementOnce() {
        let threads = Parallel.threads
        defer { Parallel.threads = threads }
        Parallel.threads = 3
        let count = 100_003
        let x = (0..<count).map { Real($0 % 17) }
        var y = (0..<count).map { Real($0 % 5) }
        BLAS.axpy(count, alpha: 3, x: x, y: &y)
        XCTAssertEqual(y, (0..<count).map { Real($0 % 5) + 3 * Real($0 % 17) })
    }

    func testGeneratorIsReproducible() {
        var a = SeededGenerator(seed: 42), b = SeededGenerator(seed: 42)
        XCTAssertEqual((0..<5).map { _ in a.next() }, (0..<5).map { _ in b.next() })
        var c = SeededGenerator(state: a.state)
        XCTAssertEqual(a.next(), c.next())
        let u = (0..<1000).map { _ in a.nextUnit() }
        XCTAssertTrue(u.allSatisfy { $0 >= 0 && $0 < 1 })
        XCTAssertEqual(Double(u.reduce(0, +)) / 1000, 0.5, accuracy: 0.05)
    }
}

final class BLASKernelTests: XCTestCase {
    func testBestCoreFollowsTheInstructionSets() {
        XCTAssertEqual(BLAS.bestCore(forCPUFlags: ["sse2", "avx", "avx2", "fma", "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"]), "SkylakeX")
        XCTAssertEqual(BLAS.bestCore(forCPUFlags: ["avx", "avx2", "fma", "avx512f"]), "Haswell")   // AVX-512 foundation alone is not enough
        XCTAssertEqual(BLAS.bestCore(forCPUFlags: ["avx", "avx2"]), "Sandybridge")
        XCTAssertNil(BLAS.bestCore(forCPUFlags: ["sse2", "sse4_2"]))
    }
}
