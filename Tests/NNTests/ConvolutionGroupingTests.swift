import NN
import XCTest

/// Conv2d unfolds several images side by side into one GEMM when their output plane is
/// small. Whatever the grouping, a batch must give what its images give one at a time
/// (the one-image path is the one the golden case with a single image checks).
/// The two paths sum the same products in different orders (`assertEqualWithinRounding`).
final class ConvolutionGroupingTests: XCTestCase {
    private func values(_ t: Tensor, _ range: Range<Int>? = nil) -> [Real] {
        let r = range ?? 0..<t.count
        return Array(UnsafeBufferPointer(start: t.data + r.lowerBound, count: r.count))
    }

    private func zeroGradients(_ conv: Conv2d) {
        for p in conv.parameters { p.grad.data.update(repeating: 0, count: p.grad.count) }
    }

    /// The grouping is the BLAS engine's (oneDNN batches images its own way).
    func testBatchEqualsImagesOneAtATime() {
        ConvolutionEngine.using(.blas) { batchEqualsImagesOneAtATime() }
    }

    private func batchEqualsImagesOneAtATime() {
        // 24×24 outputs: two images per GEMM, so five images make groups of 2, 2 and 1.
        for (k, s, p) in [(3, 1, 1), (1, 1, 0), (3, 2, 1)] {
            let conv = Conv2d(3, 5, kernel: k, stride: s, padding: p)
            var rng = SeededGenerator(seed: 7)
            for param in conv.parameters { for i in 0..<param.value.count { param.value.data[i] = rng.uniform(-0.5, 0.5) } }
            let side = s == 1 ? 24 : 47, n = 5
            let x = Inputs.uniform(Shape(n, 3, side, side), seed: 8)
            zeroGradients(conv)
            let y = conv.forward(x, mode: .training)
            let plane = y.shape[2] * y.shape[3]
            XCTAssertGreaterThan(n * plane, Conv2d.minimumColumns, "the batch must span more than one group")
            let dy = Inputs.uniform(y.shape, seed: 9)
            let batchY = values(y), batchDX = values(conv.backward(x, dy))
            let batchDW = values(conv.weight.grad), batchDB = values(conv.bias!.grad)

            let magnitude = Conv2d(3, 5, kernel: k, stride: s, padding: p)
            for (m, v) in zip(magnitude.parameters, conv.parameters) {
                for i in 0..<v.value.count { m.value.data[i] = abs(v.value.data[i]) }
            }
            zeroGradients(magnitude)
            let absX = Tensor(shape: x.shape, values: values(x).map { abs($0) })
            let boundY = values(magnitude.forward(absX, mode: .training))
            let boundDX = values(magnitude.backward(absX, Tensor(shape: dy.shape, values: values(dy).map { abs($0) })))

            zeroGradients(conv)
            var singleY: [Real] = [], singleDX: [Real] = []
            let imageSize = 3 * side * side, outSize = 5 * plane
            for i in 0..<n {
                let xi = Tensor(shape: Shape(1, 3, side, side), values: values(x, i * imageSize..<(i + 1) * imageSize))
                let dyi = Tensor(shape: Shape(1, 5, y.shape[2], y.shape[3]), values: values(dy, i * outSize..<(i + 1) * outSize))
                singleY += values(conv.forward(xi, mode: .training))
                singleDX += values(conv.backward(xi, dyi))   // accumulates dW, db over the images
            }
            let what = "k\(k) s\(s) p\(p)"
            // Sums: 3·k² products and the bias; 5·k² products; n·plane products and, one image
            // at a time, n partial sums.
            assertEqualWithinRounding(batchY, singleY, magnitude: boundY, terms: 3 * k * k + 1, "\(what) y")
            assertEqualWithinRounding(batchDX, singleDX, magnitude: boundDX, terms: 5 * k * k, "\(what) dx")
            assertEqualWithinRounding(batchDW, values(conv.weight.grad), magnitude: values(magnitude.weight.grad), terms: n * plane + n, "\(what) dweight")
            assertEqualWithinRounding(batchDB, values(conv.bias!.grad), magnitude: values(magnitude.bias!.grad), terms: n * plane + n, "\(what) dbias")
        }
    }
}
