import DNNL
import XCTest

/// Binary add, weighted sum, concatenation and inner product against Double arithmetic.
/// Tolerances: `accumulated` (Support.swift): (terms + 1)·2⁻²⁴·Σ|terms|, plus 2⁻⁸·|value| for bf16.
final class CombiningTests: DNNLTestCase {
    func testResidualAddAndWeightedSum() throws {
        for dataType in dataTypes {
            let layout = try MemoryDescriptor.activations(2, 16, 3, 3, dataType, .nChw16c)
            var rng = SplitMix64(seed: 6)
            let (a, b, c) = (representable(rng.values(288), dataType), representable(rng.values(288), dataType),
                             representable(rng.values(288), dataType))
            let (first, second, third) = (try upload(a, to: layout), try upload(b, to: layout), try upload(c, to: layout))
            let add = try Binary(.add, first: layout, second: layout)
            let destination = Buffer(layout)
            try add.execute(first: first.pointer, second: second.pointer, destination: destination.pointer)
            assertClose(try download(destination), (0..<288).map {
                accumulated(Double(a[$0]) + Double(b[$0]), absoluteSum: abs(Double(a[$0])) + abs(Double(b[$0])), count: 2, storedAs: dataType)
            }, "add \(dataType)")

            // Powers of two as scales keep the products exact.
            let sum = try Sum(scales: [1, -0.5, 2], sources: [layout, layout, layout])
            try sum.execute(sources: [first.pointer, second.pointer, third.pointer], destination: destination.pointer)
            assertClose(try download(destination), (0..<288).map {
                let terms = [Double(a[$0]), -0.5 * Double(b[$0]), 2 * Double(c[$0])]
                return accumulated(terms.reduce(0, +), absoluteSum: terms.map(abs).reduce(0, +), count: 3, storedAs: dataType)
            }, "sum \(dataType)")
        }
    }

    /// Concatenating on channels and slicing the gradient back are copies: bitwise equal.
    func testConcatenationOnChannelsAndItsBackwardCopyExactly() throws {
        for (channels, format) in [([16, 32, 16], FormatTag.nChw16c), ([3, 5], .nchw)] {
            let sources = try channels.map { try MemoryDescriptor.activations(2, $0, 3, 2, .f32, format) }
            var rng = SplitMix64(seed: 7)
            let values = channels.map { rng.values(2 * $0 * 3 * 2) }
            let buffers = try zip(values, sources).map { try upload($0, to: $1) }
            let concat = try Concatenation(sources: sources)
            XCTAssertEqual(concat.destination.dims, [2, channels.reduce(0, +), 3, 2])
            let destination = Buffer(concat.destination)
            try concat.forward(sources: buffers.map { UnsafeRawPointer($0.pointer) }, destination: destination.pointer)
            let total = channels.reduce(0, +)
            var expected = [Float]()
            for n in 0..<2 {
                for (c, v) in zip(channels, values) { expected += v[(n * c * 6)..<((n + 1) * c * 6)] }
            }
            XCTAssertEqual(try download(destination).map(\.bitPattern), expected.map(\.bitPattern), "concat \(channels)")
            XCTAssertEqual(expected.count, 2 * total * 6)

            let diffSources = sources.map(Buffer.init)
            try concat.backward(diffDestination: destination.pointer, diffSources: diffSources.map(\.pointer))
            for (i, diffSource) in diffSources.enumerated() {
                XCTAssertEqual(try download(diffSource).map(\.bitPattern), values[i].map(\.bitPattern), "slice \(i) of \(channels)")
            }
        }
    }

    func testInnerProductPassesMatchTheNaiveProducts() throws {
        let (n, c, h, w, o) = (3, 16, 2, 2, 10)
        let k = c * h * w
        for dataType in dataTypes {
            var rng = SplitMix64(seed: 8)
            let x = representable(rng.values(n * k), dataType), wt = representable(rng.values(o * k), dataType)
            let b = rng.values(o), dy = representable(rng.values(n * o), dataType)
            let ip = try InnerProduct(sourceDims: [n, c, h, w], outputs: o, dataType: dataType)
            let (source, weights) = (try upload(x, to: ip.source), try upload(wt, to: ip.weights))
            let bias = try upload(b, to: MemoryDescriptor(dims: [o], dataType: .f32, format: .x))
            let destination = Buffer(ip.destination)
            try ip.forward(source: source.pointer, weights: weights.pointer, bias: bias.pointer, destination: destination.pointer)
            assertClose(try download(destination), (0..<(n * o)).map { e in
                let (i, j) = (e / o, e % o)
                let terms = (0..<k).map { Double(x[i * k + $0]) * Double(wt[j * k + $0]) } + [Double(b[j])]
                return accumulated(terms.reduce(0, +), absoluteSum: terms.map(abs).reduce(0, +), count: k + 1, storedAs: dataType)
            }, "inner product forward \(dataType)")

            let diffDestination = try upload(dy, to: ip.destination)
            let dataWeights = try upload(wt, to: ip.backwardDataWeights!)
            let diffSource = Buffer(ip.backwardDataDiffSource!)
            try ip.backwardData(diffDestination: diffDestination.pointer, weights: dataWeights.pointer, diffSource: diffSource.pointer)
            assertClose(try download(diffSource), (0..<(n * k)).map { e in
                let (i, q) = (e / k, e % k)
                let terms = (0..<o).map { Double(dy[i * o + $0]) * Double(wt[$0 * k + q]) }
                return accumulated(terms.reduce(0, +), absoluteSum: terms.map(abs).reduce(0, +), count: o, storedAs: dataType)
            }, "inner product backward data \(dataType)")

            let (diffWeights, diffBias) = (Buffer(ip.diffWeights!), Buffer(try MemoryDescriptor(dims: [o], dataType: .f32, format: .x)))
            try ip.backwardWeights(source: source.pointer, diffDestination: diffDestination.pointer,
                                   diffWeights: diffWeights.pointer, diffBias: diffBias.pointer)
            assertClose(try download(diffWeights), (0..<(o * k)).map { e in
                let (j, q) = (e / k, e % k)
                let terms = (0..<n).map { Double(dy[$0 * o + j]) * Double(x[$0 * k + q]) }
                return accumulated(terms.reduce(0, +), absoluteSum: terms.map(abs).reduce(0, +), count: n, storedAs: .f32)
            }, "inner product backward weights \(dataType)")
            assertClose(try download(diffBias), (0..<o).map { j in
                let terms = (0..<n).map { Double(dy[$0 * o + j]) }
                return accumulated(terms.reduce(0, +), absoluteSum: terms.map(abs).reduce(0, +), count: n, storedAs: .f32)
            }, "inner product backward bias \(dataType)")
        }
    }
}
