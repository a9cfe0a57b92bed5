import DNNL
import XCTest

/// oneDNN's Winograd passes against the naive convolution, each output held to the bound
/// that `WinogradF4x3` derives: γ_k·M, M the same Winograd computation on absolute values
/// with absolute matrices, k = C + 22 (C the terms of the transformed-domain sum).
///
/// The matrices are checked first: Winograd in Double with them must reproduce the naive
/// convolution, in all three passes, on the tiling oneDNN uses (so M is the magnitude of
/// the computation oneDNN runs, not of another one).
final class WinogradTests: DNNLTestCase {
    static let geometries: [ConvolutionGeometry] = [
        // "Same" padding with bias; 10 = 4 + 4 + 2: a partial tile on each axis.
        ConvolutionGeometry(batch: 2, inputChannels: 32, height: 10, width: 10, outputChannels: 32, kernel: 3, padding: 1),
        // No padding (the input gradient then pads by 2), a rectangular plane, no bias.
        ConvolutionGeometry(batch: 3, inputChannels: 16, height: 9, width: 11, outputChannels: 48, kernel: 3, hasBias: false),
    ]

    /// One transformed-domain product, back in the tile: Aᵀ[(G f Gᵀ) ⊙ (Bᵀ d B)]A for a
    /// filter tile `f` (r×r) and a data tile `d` (6×6); on absolute values throughout when `absolute`.
    private func tileProduct(filter f: [[Double]], data d: [[Double]], filterTransform: [[Double]],
                             outputTransform: [[Double]], absolute: Bool) -> [[Double]] {
        func m(_ x: [[Double]]) -> [[Double]] { absolute ? x.map { $0.map(abs) } : x }
        func product(_ a: [[Double]], _ b: [[Double]]) -> [[Double]] {
            a.map { row in b[0].indices.map { j in row.indices.reduce(0) { $0 + row[$1] * b[$1][j] } } }
        }
        func transposed(_ a: [[Double]]) -> [[Double]] { a[0].indices.map { j in a.map { $0[j] } } }
        let g = m(filterTransform), bt = m(WinogradF4x3.inputTransform), at = m(outputTransform)
        let u = product(product(g, m(f)), transposed(g)), v = product(product(bt, m(d)), transposed(bt))
        let uv = zip(u, v).map { zip($0, $1).map(*) }
        return product(product(at, uv), transposed(at))
    }

    /// rows × cols values of the H×W plane at `offset` of `values` from (top, left), zero
    /// outside; turned by 180° when `flipped` (a kernel, for the input gradient).
    private func window(_ values: [Float], offset: Int, height: Int, width: Int,
                        top: Int, left: Int, rows: Int, cols: Int, flipped: Bool = false) -> [[Double]] {
        (0..<rows).map { i in
            (0..<cols).map { j in
                let (y, x) = flipped ? (top + rows - 1 - i, left + cols - 1 - j) : (top + i, left + j)
                return y >= 0 && y < height && x >= 0 && x < width ? Double(values[offset + y * width + x]) : 0
            }
        }
    }

    /// Every tile's outputs of one pass: `accumulate(tileRow, tileCol, absolute)` returns the
    /// tile's sum over its terms; the result is (values, magnitudes) per output of an
    /// outHeight × outWidth plane.
    private func tiled(outHeight: Int, outWidth: Int, tile: Int,
                       _ accumulate: (Int, Int, Bool) -> [[Double]]) -> (values: [Double], magnitudes: [Double]) {
        var values = [Double](repeating: 0, count: outHeight * outWidth), magnitudes = values
        for ty in stride(from: 0, to: outHeight, by: tile) {
            for tx in stride(from: 0, to: outWidth, by: tile) {
                let exact = accumulate(ty, tx, false), magnitude = accumulate(ty, tx, true)
                for i in 0..<tile where ty + i < outHeight {
                    for j in 0..<tile where tx + j < outWidth {
                        values[(ty + i) * outWidth + tx + j] = exact[i][j]
                        magnitudes[(ty + i) * outWidth + tx + j] = magnitude[i][j]
                    }
                }
            }
        }
        return (values, magnitudes)
    }

    private func sum(_ a: [[Double]], _ b: [[Double]]) -> [[Double]] { zip(a, b).map { zip($0, $1).map(+) } }

    private func check(_ g: ConvolutionGeometry, seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        let x = rng.values(g.sourceDims.reduce(1, *)), w = rng.values(g.weightsDims.reduce(1, *))
        let b = rng.values(g.outputChannels), dy = rng.values(g.destinationDims.reduce(1, *))
        let reference = ReferenceConvolution(g, source: x, weights: w, bias: b, diffDestination: dy)
        let (c, o, h, wd, oh, ow) = (g.inputChannels, g.outputChannels, g.height, g.width, g.outputHeight, g.outputWidth)
        let t = WinogradF4x3.tile, alpha = WinogradF4x3.transformedTile
        let f = WinogradF4x3.filterTransform, a = WinogradF4x3.outputTransform
        func gamma(_ k: Int) -> Double { Double(k) * f32Roundoff / (1 - Double(k) * f32Roundoff) }

        let convolution = try Convolution(g, dataType: .f32, algorithm: .winograd)
        let chosen = convolution.implementations
        for implementation in [chosen.forward, chosen.backwardData, chosen.backwardWeights] {
            XCTAssertEqual(implementation?.hasPrefix("jit_wino_4x3"), true, "\(g): \(String(describing: implementation))")
        }

        // Forward: per image and output channel, Σ_c over input channels' tiles, plus the bias.
        var y = [Double](), yBound = [Double]()
        for n in 0..<g.batch {
            for oc in 0..<o {
                let plane = tiled(outHeight: oh, outWidth: ow, tile: t) { ty, tx, absolute in
                    (0..<c).reduce(Array(repeating: Array(repeating: 0.0, count: t), count: t)) { acc, ic in
                        let kernel = window(w, offset: (oc * c + ic) * 9, height: 3, width: 3, top: 0, left: 0, rows: 3, cols: 3)
                        let data = window(x, offset: (n * c + ic) * h * wd, height: h, width: wd,
                                          top: ty - g.paddingTop, left: tx - g.paddingLeft, rows: alpha, cols: alpha)
                        return sum(acc, tileProduct(filter: kernel, data: data, filterTransform: f, outputTransform: a, absolute: absolute))
                    }
                }
                let bias = g.hasBias ? Double(b[oc]) : 0
                y += plane.values.map { $0 + bias }
                yBound += plane.magnitudes.map { gamma(c + WinogradF4x3.transformRoundings) * ($0 + abs(bias)) }
            }
        }
        try checkPass("forward", g, y, yBound, reference.destination) {
            let source = try upload(x, to: convolution.forwardSource), weights = try upload(w, to: convolution.forwardWeights)
            let bias = try upload(b, to: MemoryDescriptor(dims: [o], dataType: .f32, format: .x))
            let destination = Buffer(convolution.forwardDestination)
            try convolution.forward(source: source.pointer, weights: weights.pointer, bias: g.hasBias ? bias.pointer : nil,
                                    destination: destination.pointer)
            return try download(destination)
        }

        // Input gradient: dy padded by kernel − 1 − padding, the kernel turned by 180°, Σ over output channels.
        var dx = [Double](), dxBound = [Double]()
        for n in 0..<g.batch {
            for ic in 0..<c {
                let plane = tiled(outHeight: h, outWidth: wd, tile: t) { ty, tx, absolute in
                    (0..<o).reduce(Array(repeating: Array(repeating: 0.0, count: t), count: t)) { acc, oc in
                        let kernel = window(w, offset: (oc * c + ic) * 9, height: 3, width: 3, top: 0, left: 0, rows: 3, cols: 3, flipped: true)
                        let data = window(dy, offset: (n * o + oc) * oh * ow, height: oh, width: ow,
                                          top: ty - (2 - g.paddingTop), left: tx - (2 - g.paddingLeft), rows: alpha, cols: alpha)
                        return sum(acc, tileProduct(filter: kernel, data: data, filterTransform: f, outputTransform: a, absolute: absolute))
                    }
                }
                dx += plane.values
                dxBound += plane.magnitudes.map { gamma(o + WinogradF4x3.transformRoundings) * $0 }
            }
        }
        try checkPass("backward data", g, dx, dxBound, reference.diffSource) {
            let diffDestination = try upload(dy, to: convolution.backwardDataDiffDestination!)
            let weights = try upload(w, to: convolution.backwardDataWeights!)
            let diffSource = Buffer(convolution.backwardDataDiffSource!)
            try convolution.backwardData(diffDestination: diffDestination.pointer, weights: weights.pointer, diffSource: diffSource.pointer)
            return try download(diffSource)
        }

        // Weight gradient, F(3×3, 4×4): each 4×4 tile of dy is the filter of the 6×6 tile of x
        // under it; Σ over images and tiles.
        let tiles = g.batch * ((oh + t - 1) / t) * ((ow + t - 1) / t)
        var dW = [Double](), dWBound = [Double]()
        for oc in 0..<o {
            for ic in 0..<c {
                var exact = Array(repeating: Array(repeating: 0.0, count: 3), count: 3), magnitude = exact
                for n in 0..<g.batch {
                    for ty in stride(from: 0, to: oh, by: t) {
                        for tx in stride(from: 0, to: ow, by: t) {
                            let gradient = window(dy, offset: (n * o + oc) * oh * ow, height: oh, width: ow, top: ty, left: tx, rows: t, cols: t)
                            let data = window(x, offset: (n * c + ic) * h * wd, height: h, width: wd,
                                              top: ty - g.paddingTop, left: tx - g.paddingLeft, rows: alpha, cols: alpha)
                            for absolute in [false, true] {
                                let p = tileProduct(filter: gradient, data: data, filterTransform: WinogradF4x3.weightGradientFilterTransform,
                                                    outputTransform: WinogradF4x3.weightGradientOutputTransform, absolute: absolute)
                                if absolute { magnitude = sum(magnitude, p) } else { exact = sum(exact, p) }
                            }
                        }
                    }
                }
                dW += exact.flatMap { $0 }
                dWBound += magnitude.flatMap { $0 }.map { gamma(tiles + WinogradF4x3.transformRoundings) * $0 }
            }
        }
        try checkPass("backward weights", g, dW, dWBound, reference.diffWeights) {
            let source = try upload(x, to: convolution.backwardWeightsSource!)
            let diffDestination = try upload(dy, to: convolution.backwardWeightsDiffDestination!)
            let diffWeights = Buffer(convolution.backwardWeightsDiffWeights!)
            let diffBias = Buffer(try MemoryDescriptor(dims: [o], dataType: .f32, format: .x))
            try convolution.backwardWeights(source: source.pointer, diffDestination: diffDestination.pointer,
                                            diffWeights: diffWeights.pointer, diffBias: g.hasBias ? diffBias.pointer : nil)
            if g.hasBias {
                // The bias gradient is a plain sum over positions.
                let positions = g.batch * oh * ow
                assertClose(try download(diffBias), zip(reference.diffBias, reference.diffBiasAbs).map {
                    accumulated($0, absoluteSum: $1, count: positions, storedAs: .f32)
                }, "backward bias \(g)")
            }
            return try download(diffWeights)
        }
    }

    /// The Double Winograd `exact` must equal the naive `reference` (a wrong matrix or tiling
    /// is off by the values' size, ~1; Double's rounding of these sums is ~1e-12); oneDNN's
    /// result must lie within `bound` of it.
    private func checkPass(_ pass: String, _ g: ConvolutionGeometry, _ exact: [Double], _ bound: [Double],
                           _ reference: [Double], run: () throws -> [Float]) throws {
        XCTAssertLessThan(zip(exact, reference).map { abs($0 - $1) }.max()!, 1e-9, "\(pass) \(g): Winograd's matrices or tiling")
        assertClose(try run(), zip(reference, bound).map { Expected(value: $0, tolerance: $1) }, "\(pass) \(g)")
    }

    func testWinogradPassesStayWithinTheirDerivedBound() throws {
        try XCTSkipUnless(DNNLRuntime.runsWinograd, "oneDNN runs Winograd on AVX-512 only (\(DNNLRuntime.instructionSet))")
        for (i, g) in Self.geometries.enumerated() { try check(g, seed: UInt64(40 + i)) }
    }

    /// Where every |w| and |x| is 1, M is 62.7 times direct's Σ|w·x| at most (the figure the
    /// golden model tests scale a Winograd layer's rounding steps by): computed here the long way.
    func testUniformAmplificationIsTheLargestRatioOfMagnitudes() {
        let ones = Array(repeating: Array(repeating: 1.0, count: 3), count: 3)
        let data = Array(repeating: Array(repeating: 1.0, count: 6), count: 6)
        let m = tileProduct(filter: ones, data: data, filterTransform: WinogradF4x3.filterTransform,
                            outputTransform: WinogradF4x3.outputTransform, absolute: true)
        XCTAssertEqual(m.flatMap { $0 }.max()! / 9, WinogradF4x3.uniformAmplification, accuracy: 1e-9)
        XCTAssertEqual(WinogradF4x3.uniformAmplification, 62.65, accuracy: 0.01)
    }
}
