import DNNL
import XCTest

/// Batch normalization against the textbook formulas in Double, on a plain and a blocked
/// layout, in f32 and bf16, and synchronized batch norm assembled from two half batches.
///
/// Tolerance: every statistic is a sum over M = N·H·W elements per channel, and each output
/// adds a handful of operations (subtract, square root, divide, multiply, add), so each
/// result is within (M + 10)·2⁻²⁴ of the magnitude T of the terms that produced it
/// (T for y: |γ|(|x| + mean|x|)/σ + |γ x̂| + |β|; for dx: |γ|/σ·(|dy| + mean|dy| +
/// (1+|x̂|)·mean(|dy|(1+|x̂|))); for Σdy·x̂: Σ|dy|(1+|x̂|)). bf16 outputs add 2⁻⁸·|value|.
final class BatchNormalizationTests: DNNLTestCase {
    struct Reference {
        var mean: [Double], variance: [Double], y: [Expected], dx: [Expected], dScale: [Expected], dShift: [Expected]
    }

    /// The reference of forward training and backward at `x` (N, C, H, W), optionally with
    /// statistics computed on the whole of `x` whatever the batch.
    static func reference(_ dims: [Int], x: [Float], dy: [Float], scale: [Float], shift: [Float],
                          epsilon: Double, dataType: DataType) -> Reference {
        let (n, c, hw) = (dims[0], dims[1], dims[2] * dims[3])
        let m = Double(n * hw)
        let slack = (m + 10) * f32Roundoff
        let storage = dataType == .bf16 ? bf16Roundoff : 0
        func index(_ i: Int, _ ch: Int, _ p: Int) -> Int { (i * c + ch) * hw + p }
        var reference = Reference(mean: [], variance: [], y: Array(repeating: Expected(value: 0, tolerance: 0), count: x.count),
                                  dx: Array(repeating: Expected(value: 0, tolerance: 0), count: x.count), dScale: [], dShift: [])
        for ch in 0..<c {
            let elements = (0..<n).flatMap { i in (0..<hw).map { index(i, ch, $0) } }
            let mean = elements.reduce(0.0) { $0 + Double(x[$1]) } / m
            let variance = elements.reduce(0.0) { $0 + (Double(x[$1]) - mean) * (Double(x[$1]) - mean) } / m
            let sigma = (variance + epsilon).squareRoot()
            let meanAbs = elements.reduce(0.0) { $0 + abs(Double(x[$1])) } / m
            let (g, b) = (Double(scale[ch]), Double(shift[ch]))
            let xhat = { (e: Int) in (Double(x[e]) - mean) / sigma }
            let sumDy = elements.reduce(0.0) { $0 + Double(dy[$1]) }
            let sumDyXhat = elements.reduce(0.0) { $0 + Double(dy[$1]) * xhat($1) }
            let meanAbsDy = elements.reduce(0.0) { $0 + abs(Double(dy[$1])) } / m
            let meanAbsDyXhat = elements.reduce(0.0) { $0 + abs(Double(dy[$1])) * (1 + abs(xhat($1))) } / m
            for e in elements {
                let y = g * xhat(e) + b
                let yTerms = abs(g) * (abs(Double(x[e])) + meanAbs) / sigma + abs(g * xhat(e)) + abs(b)
                reference.y[e] = Expected(value: y, tolerance: slack * yTerms + storage * abs(y) * (1 + slack))
                let dx = g / sigma * (Double(dy[e]) - sumDy / m - xhat(e) * sumDyXhat / m)
                let dxTerms = abs(g) / sigma * (abs(Double(dy[e])) + meanAbsDy + (1 + abs(xhat(e))) * meanAbsDyXhat)
                reference.dx[e] = Expected(value: dx, tolerance: slack * dxTerms + storage * abs(dx) * (1 + slack))
            }
            reference.mean.append(mean)
            reference.variance.append(variance)
            reference.dScale.append(Expected(value: sumDyXhat, tolerance: slack * meanAbsDyXhat * m))
            reference.dShift.append(Expected(value: sumDy, tolerance: slack * meanAbsDy * m))
        }
        return reference
    }

    private func f32Buffer(_ values: [Float]) throws -> Buffer {
        try upload(values, to: MemoryDescriptor(dims: [values.count], dataType: .f32, format: .x))
    }

    private func check(_ dims: [Int], _ dataType: DataType, _ format: FormatTag, seed: UInt64) throws {
        let what = "\(dataType) \(format) \(dims)"
        var rng = SplitMix64(seed: seed)
        let count = dims.reduce(1, *)
        let x = representable(rng.values(count, -2, 3), dataType)
        let dy = representable(rng.values(count), dataType)
        let scale = rng.values(dims[1], 0.5, 1.5), shift = rng.values(dims[1])
        let epsilon: Float = 1e-5
        let reference = Self.reference(dims, x: x, dy: dy, scale: scale, shift: shift, epsilon: Double(epsilon), dataType: dataType)

        let layout = try MemoryDescriptor(dims: dims, dataType: dataType, format: format)
        let norm = try BatchNormalization(data: layout, epsilon: epsilon)
        let (source, diffDestination) = (try upload(x, to: layout), try upload(dy, to: layout))
        let (scaleBuffer, shiftBuffer) = (try f32Buffer(scale), try f32Buffer(shift))
        let (mean, variance) = (try f32Buffer(scale), try f32Buffer(scale))
        let destination = Buffer(layout)
        try norm.forwardTraining(source: source.pointer, scale: scaleBuffer.pointer, shift: shiftBuffer.pointer,
                                 destination: destination.pointer, mean: mean.pointer, variance: variance.pointer)
        // Inputs lie in [-2, 3]: each term of the mean is at most 3, of the variance (x − μ)² ≤ 25.
        let m = Double(count / dims[1])
        assertClose(try download(mean), reference.mean.map { Expected(value: $0, tolerance: (m + 1) * f32Roundoff * 3) },
                    "mean \(what)")
        assertClose(try download(variance), reference.variance.map { Expected(value: $0, tolerance: (m + 10) * f32Roundoff * 25) },
                    "biased variance \(what)")
        assertClose(try download(destination), reference.y, "forward \(what)")

        let (diffSource, diffScale, diffShift) = (Buffer(layout), try f32Buffer(scale), try f32Buffer(scale))
        try norm.backward(source: source.pointer, diffDestination: diffDestination.pointer, scale: scaleBuffer.pointer,
                          mean: mean.pointer, variance: variance.pointer, diffSource: diffSource.pointer,
                          diffScale: diffScale.pointer, diffShift: diffShift.pointer)
        assertClose(try download(diffSource), reference.dx, "backward \(what)")
        assertClose(try download(diffScale), reference.dScale, "diff scale \(what)")
        assertClose(try download(diffShift), reference.dShift, "diff shift \(what)")
    }

    func testF32TrainingPassesMatchTheFormulas() throws {
        try check([3, 5, 4, 3], .f32, .nchw, seed: 1)
        try check([2, 32, 3, 3], .f32, .nChw16c, seed: 2)
    }

    func testBF16DataWithF32StatisticsMatchesTheFormulas() throws {
        try skipUnlessBF16()
        try check([2, 32, 3, 3], .bf16, .nChw16c, seed: 3)
    }

    /// Synchronized batch norm from two "ranks" holding half a batch each: local statistics
    /// from `forwardTraining`, combined as an all-reduce would, then `forward` with the
    /// global statistics and the backward recipe of `BatchNormalization`'s notes, equal the
    /// full batch's forward and backward.
    func testHalfBatchesWithGlobalStatisticsEqualTheFullBatch() throws {
        let dims = [4, 16, 3, 3], half = [2, 16, 3, 3]
        let (c, halfCount) = (dims[1], half.reduce(1, *))
        var rng = SplitMix64(seed: 4)
        let x = rng.values(dims.reduce(1, *), -2, 3), dy = rng.values(dims.reduce(1, *))
        let scale = rng.values(c, 0.5, 1.5), shift = rng.values(c)
        let reference = Self.reference(dims, x: x, dy: dy, scale: scale, shift: shift, epsilon: 1e-5, dataType: .f32)

        let layout = try MemoryDescriptor(dims: half, dataType: .f32, format: .nChw16c)
        let norm = try BatchNormalization(data: layout, epsilon: 1e-5)
        let halves = (0..<2).map { Array($0 * halfCount..<($0 + 1) * halfCount) }
        let sources = try halves.map { try upload($0.map { x[$0] }, to: layout) }
        let diffDestinations = try halves.map { try upload($0.map { dy[$0] }, to: layout) }
        let (scaleBuffer, shiftBuffer) = (try f32Buffer(scale), try f32Buffer(shift))

        // 1. Local statistics; the all-reduce of M·μ and M·(σ² + μ²).
        let m = Double(halfCount / c)
        var sums = [Double](repeating: 0, count: c), squares = sums
        for source in sources {
            let (mean, variance, scratch) = (try f32Buffer(scale), try f32Buffer(scale), Buffer(layout))
            try norm.forwardTraining(source: source.pointer, scale: scaleBuffer.pointer, shift: shiftBuffer.pointer,
                                     destination: scratch.pointer, mean: mean.pointer, variance: variance.pointer)
            for (ch, (mu, v)) in zip(try download(mean), try download(variance)).enumerated() {
                sums[ch] += m * Double(mu)
                squares[ch] += m * (Double(v) + Double(mu) * Double(mu))
            }
        }
        let globalMean = sums.map { $0 / (2 * m) }
        let globalVariance = zip(squares, globalMean).map { $0 / (2 * m) - $1 * $1 }
        let (mean, variance) = (try f32Buffer(globalMean.map(Float.init)), try f32Buffer(globalVariance.map(Float.init)))

        // 2. Forward with the global statistics on each half.
        var y: [Float] = []
        for source in sources {
            let destination = Buffer(layout)
            try norm.forward(source: source.pointer, scale: scaleBuffer.pointer, shift: shiftBuffer.pointer,
                             mean: mean.pointer, variance: variance.pointer, destination: destination.pointer)
            y += try download(destination)
        }
        assertClose(y, reference.y, "synchronized forward")

        // 3. Backward with constant statistics, all-reduce of Σdy·x̂ and Σdy, then the correction.
        var diffSources: [Buffer] = [], sumDyXhat = [Double](repeating: 0, count: c), sumDy = sumDyXhat
        for (source, diffDestination) in zip(sources, diffDestinations) {
            let (diffSource, diffScale, diffShift) = (Buffer(layout), try f32Buffer(scale), try f32Buffer(scale))
            try norm.backwardGivenStatistics(source: source.pointer, diffDestination: diffDestination.pointer,
                                             scale: scaleBuffer.pointer, mean: mean.pointer, variance: variance.pointer,
                                             diffSource: diffSource.pointer, diffScale: diffScale.pointer, diffShift: diffShift.pointer)
            for (ch, (a, b)) in zip(try download(diffScale), try download(diffShift)).enumerated() {
                sumDyXhat[ch] += Double(a)
                sumDy[ch] += Double(b)
            }
            diffSources.append(diffSource)
        }
        assertClose(sumDyXhat.map(Float.init), reference.dScale, "synchronized diff scale")
        assertClose(sumDy.map(Float.init), reference.dShift, "synchronized diff shift")
        let sigma = globalVariance.map { ($0 + 1e-5).squareRoot() }
        let correctionScale = (0..<c).map { Float(-Double(scale[$0]) * sumDyXhat[$0] / (sigma[$0] * 2 * m)) }
        let correctionShift = (0..<c).map { Float(-Double(scale[$0]) * sumDy[$0] / (sigma[$0] * 2 * m)) }
        let (a, b) = (try f32Buffer(correctionScale), try f32Buffer(correctionShift))
        let add = try Sum(scales: [1, 1], sources: [layout, layout])
        var dx: [Float] = []
        for (source, diffSource) in zip(sources, diffSources) {
            let correction = Buffer(layout)
            try norm.forward(source: source.pointer, scale: a.pointer, shift: b.pointer, mean: mean.pointer,
                             variance: variance.pointer, destination: correction.pointer)
            try add.execute(sources: [diffSource.pointer, correction.pointer], destination: diffSource.pointer)
            dx += try download(diffSource)
        }
        assertClose(dx, reference.dx, "synchronized backward")
    }

    func testFusedReLUNeedsAWorkspace() throws {
        let layout = try MemoryDescriptor(dims: [2, 16, 2, 2], dataType: .f32, format: .nChw16c)
        let norm = try BatchNormalization(data: layout, fusedReLU: true)
        XCTAssertFalse(norm.workspace.isEmpty)
        let buffer = Buffer(layout)
        XCTAssertThrowsError(try norm.forwardTraining(source: buffer.pointer, scale: buffer.pointer, shift: buffer.pointer,
                                                      destination: buffer.pointer, mean: buffer.pointer,
                                                      variance: buffer.pointer)) { error in
            XCTAssertTrue("\(error)".contains("workspace"), "\(error)")
        }
    }
}
