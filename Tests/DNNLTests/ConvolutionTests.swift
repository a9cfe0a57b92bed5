import DNNL
import XCTest

/// The naive convolution in Double: forward, input gradient and weight gradient of
/// `geometry` at the given values, each with the absolute sum of its terms and their count.
struct ReferenceConvolution {
    var destination: [Double], destinationAbs: [Double]
    var diffSource: [Double], diffSourceAbs: [Double], diffSourceTerms: [Int]
    var diffWeights: [Double], diffWeightsAbs: [Double]
    var diffBias: [Double], diffBiasAbs: [Double]

    init(_ g: ConvolutionGeometry, source x: [Float], weights w: [Float], bias b: [Float], diffDestination dy: [Float]) {
        let (oh, ow) = (g.outputHeight, g.outputWidth)
        let (cg, og) = (g.inputChannels / g.groups, g.outputChannels / g.groups)
        destination = [Double](repeating: 0, count: g.destinationDims.reduce(1, *))
        destinationAbs = destination
        diffSource = [Double](repeating: 0, count: g.sourceDims.reduce(1, *))
        diffSourceAbs = diffSource
        diffSourceTerms = [Int](repeating: 0, count: diffSource.count)
        diffWeights = [Double](repeating: 0, count: w.count)
        diffWeightsAbs = diffWeights
        diffBias = [Double](repeating: 0, count: g.outputChannels)
        diffBiasAbs = diffBias
        for n in 0..<g.batch {
            for o in 0..<g.outputChannels {
                let group = o / og
                for y in 0..<oh {
                    for xo in 0..<ow {
                        let out = ((n * g.outputChannels + o) * oh + y) * ow + xo
                        let gradient = Double(dy[out])
                        if g.hasBias {
                            destination[out] += Double(b[o])
                            destinationAbs[out] += abs(Double(b[o]))
                            diffBias[o] += gradient
                            diffBiasAbs[o] += abs(gradient)
                        }
                        for c in 0..<cg {
                            for ky in 0..<g.kernelHeight {
                                let iy = y * g.strideHeight - g.paddingTop + ky * g.dilationHeight
                                guard iy >= 0, iy < g.height else { continue }
                                for kx in 0..<g.kernelWidth {
                                    let ix = xo * g.strideWidth - g.paddingLeft + kx * g.dilationWidth
                                    guard ix >= 0, ix < g.width else { continue }
                                    let input = ((n * g.inputChannels + group * cg + c) * g.height + iy) * g.width + ix
                                    let weight = ((o * cg + c) * g.kernelHeight + ky) * g.kernelWidth + kx
                                    let (xv, wv) = (Double(x[input]), Double(w[weight]))
                                    destination[out] += xv * wv
                                    destinationAbs[out] += abs(xv * wv)
                                    diffSource[input] += gradient * wv
                                    diffSourceAbs[input] += abs(gradient * wv)
                                    diffSourceTerms[input] += 1
                                    diffWeights[weight] += gradient * xv
                                    diffWeightsAbs[weight] += abs(gradient * xv)
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Each convolution pass against the naive reference, in f32 and bf16, on shapes that
/// exercise groups, dilation, rectangular kernels, strides, asymmetric padding and bias.
///
/// Tolerance: every output is a dot product of K terms (K = C/G·kh·kw forward, at most
/// O/G·kh·kw for the input gradient, N·OH·OW for weight gradients), accumulated in f32:
/// |error| ≤ (K+1)·2⁻²⁴·Σ|terms|. bf16 inputs are rounded to bf16 before the reference sees
/// them (their products are exact in f32), and a bf16 output adds one rounding, 2⁻⁸·|y|.
final class ConvolutionTests: DNNLTestCase {
    static let geometries: [ConvolutionGeometry] = [
        // A 3×3 "same" convolution with bias.
        ConvolutionGeometry(batch: 2, inputChannels: 5, height: 7, width: 7, outputChannels: 6, kernel: 3, padding: 1),
        // Groups, a 3×2 kernel, strides 2×1, asymmetric padding, dilation 2×1, no bias.
        ConvolutionGeometry(batch: 2, inputChannels: 4, height: 9, width: 8, outputChannels: 6,
                            kernelHeight: 3, kernelWidth: 2, strideHeight: 2, strideWidth: 1,
                            paddingTop: 1, paddingLeft: 0, paddingBottom: 2, paddingRight: 1,
                            dilationHeight: 2, dilationWidth: 1, groups: 2, hasBias: false),
        // A strided 1×1 projection on 16-channel blocks (ResNet's downsample).
        ConvolutionGeometry(batch: 2, inputChannels: 16, height: 6, width: 6, outputChannels: 32, kernel: 1, stride: 2, hasBias: false),
        // Depthwise 3×3 with stride 2.
        ConvolutionGeometry(batch: 1, inputChannels: 16, height: 8, width: 8, outputChannels: 16, kernel: 3, stride: 2,
                            padding: 1, groups: 16),
        // An input with 3 channels, as the first layer of every network.
        ConvolutionGeometry(batch: 2, inputChannels: 3, height: 10, width: 10, outputChannels: 16, kernel: 5, stride: 2, padding: 2),
    ]

    private func check(_ g: ConvolutionGeometry, _ dataType: DataType, algorithm: ConvolutionAlgorithm = .direct,
                       fusedReLU: Bool = false, seed: UInt64) throws {
        let what = "\(dataType) \(algorithm)\(fusedReLU ? " +relu" : "") \(g)"
        var rng = SplitMix64(seed: seed)
        let x = representable(rng.values(g.sourceDims.reduce(1, *)), dataType)
        let w = representable(rng.values(g.weightsDims.reduce(1, *)), dataType)
        let b = rng.values(g.outputChannels)
        let dy = representable(rng.values(g.destinationDims.reduce(1, *)), dataType)
        let reference = ReferenceConvolution(g, source: x, weights: w, bias: b, diffDestination: dy)

        let convolution = try Convolution(g, dataType: dataType, algorithm: algorithm, fusedReLU: fusedReLU)
        let source = try upload(x, to: convolution.forwardSource)
        let weights = try upload(w, to: convolution.forwardWeights)
        let bias = try upload(b, to: MemoryDescriptor(dims: [g.outputChannels], dataType: .f32, format: .x))
        let destination = Buffer(convolution.forwardDestination)
        try convolution.forward(source: source.pointer, weights: weights.pointer,
                                bias: g.hasBias ? bias.pointer : nil, destination: destination.pointer)
        let forwardTerms = g.inputChannels / g.groups * g.kernelHeight * g.kernelWidth + (g.hasBias ? 1 : 0)
        assertClose(try download(destination), zip(reference.destination, reference.destinationAbs).map { y, abs in
            var e = accumulated(y, absoluteSum: abs, count: forwardTerms, storedAs: dataType)
            // ReLU is exact, and |max(0, a) − max(0, b)| ≤ |a − b|.
            if fusedReLU { e.value = max(0, e.value) }
            return e
        }, "forward \(what)")
        if fusedReLU { return }

        let diffDestination = try upload(dy, to: convolution.backwardDataDiffDestination!)
        let dataWeights = try upload(w, to: convolution.backwardDataWeights!)
        let diffSource = Buffer(convolution.backwardDataDiffSource!)
        try convolution.backwardData(diffDestination: diffDestination.pointer, weights: dataWeights.pointer,
                                     diffSource: diffSource.pointer)
        assertClose(try download(diffSource), reference.diffSource.indices.map {
            accumulated(reference.diffSource[$0], absoluteSum: reference.diffSourceAbs[$0],
                        count: reference.diffSourceTerms[$0], storedAs: dataType)
        }, "backward data \(what)")

        let weightsSource = try upload(x, to: convolution.backwardWeightsSource!)
        let weightsDiffDestination = try upload(dy, to: convolution.backwardWeightsDiffDestination!)
        let diffWeights = Buffer(convolution.backwardWeightsDiffWeights!)
        let diffBias = Buffer(try MemoryDescriptor(dims: [g.outputChannels], dataType: .f32, format: .x))
        try convolution.backwardWeights(source: weightsSource.pointer, diffDestination: weightsDiffDestination.pointer,
                                        diffWeights: diffWeights.pointer, diffBias: g.hasBias ? diffBias.pointer : nil)
        let positions = g.batch * g.outputHeight * g.outputWidth
        assertClose(try download(diffWeights), zip(reference.diffWeights, reference.diffWeightsAbs).map {
            accumulated($0, absoluteSum: $1, count: positions, storedAs: .f32)
        }, "backward weights \(what)")
        if g.hasBias {
            assertClose(try download(diffBias), zip(reference.diffBias, reference.diffBiasAbs).map {
                accumulated($0, absoluteSum: $1, count: positions, storedAs: .f32)
            }, "backward bias \(what)")
        }
    }

    func testF32PassesMatchTheNaiveConvolution() throws {
        for (i, g) in Self.geometries.enumerated() { try check(g, .f32, seed: UInt64(i)) }
    }

    func testBF16PassesMatchTheNaiveConvolutionOfTheRoundedInputs() throws {
        try skipUnlessBF16()
        for (i, g) in Self.geometries.enumerated() { try check(g, .bf16, seed: UInt64(100 + i)) }
    }

    func testFusedReLUClampsTheForward() throws {
        for (i, dataType) in dataTypes.enumerated() { try check(Self.geometries[0], dataType, fusedReLU: true, seed: UInt64(7 + i)) }
    }

    func testAutoAlgorithmMatchesTheNaiveConvolution() throws {
        try check(Self.geometries[0], .f32, algorithm: .auto, seed: 9)
    }

    func testInferenceOnlyConvolutionRefusesBackward() throws {
        let g = Self.geometries[0]
        let convolution = try Convolution(g, training: false)
        XCTAssertNil(convolution.backwardDataDiffSource)
        let buffer = Buffer(convolution.forwardSource)
        XCTAssertThrowsError(try convolution.backwardData(diffDestination: buffer.pointer, weights: buffer.pointer,
                                                          diffSource: buffer.pointer)) { error in
            XCTAssertTrue("\(error)".contains("training: false"), "\(error)")
        }
    }

    func testInvalidGeometryThrowsNamingIt() {
        let bad = ConvolutionGeometry(batch: 1, inputChannels: 6, height: 4, width: 4, outputChannels: 4, kernel: 3, groups: 4)
        XCTAssertThrowsError(try Convolution(bad)) { error in
            XCTAssertTrue("\(error)".contains("divide into 4 groups"), "\(error)")
        }
        let tooSmall = ConvolutionGeometry(batch: 1, inputChannels: 1, height: 2, width: 2, outputChannels: 1, kernel: 3)
        XCTAssertThrowsError(try Convolution(tooSmall)) { error in
            XCTAssertTrue("\(error)".contains("does not fit"), "\(error)")
        }
    }

    func testMissingBiasPointerThrows() throws {
        let g = Self.geometries[0]
        let convolution = try Convolution(g)
        let buffer = Buffer(convolution.forwardDestination)
        XCTAssertThrowsError(try convolution.forward(source: buffer.pointer, weights: buffer.pointer, bias: nil,
                                                     destination: buffer.pointer)) { error in
            XCTAssertTrue("\(error)".contains("bias pointer missing"), "\(error)")
        }
    }
}
