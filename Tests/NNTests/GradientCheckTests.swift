import DNNL
import NN
import XCTest

/// Every layer type's backward against finite differences, on small random shapes.
final class GradientCheckTests: XCTestCase {
    /// On every convolution engine of this build.
    private func assertGradients(_ layer: any Layer, _ input: Tensor, mode: Mode = .training, reset: () -> Void = {},
                                 file: StaticString = #filePath, line: UInt = #line) {
        for engine in ConvolutionEngine.available {
            let report = ConvolutionEngine.using(engine) { GradientChecker.check(layer, input: input, mode: mode, reset: reset) }
            XCTAssertLessThanOrEqual(report.worst, GradientChecker.tolerance,
                                     "\(layer.summary) (\(engine)): worst relative error \(report.worst) at \(report.where_)",
                                     file: file, line: line)
        }
    }

    private func randomize(_ layer: any Layer, seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        for p in layer.allParameters { for i in 0..<p.value.count { p.value.data[i] = rng.uniform(-0.5, 0.5) } }
    }

    func testConv2dOverKernelsStridesAndPadding() {
        for (k, s, p) in [(3, 1, 1), (3, 2, 0), (1, 1, 0), (1, 2, 0), (5, 2, 2), (2, 1, 0)] {
            let conv = Conv2d(3, 4, kernel: k, stride: s, padding: p)
            randomize(conv, seed: 1)
            assertGradients(conv, Inputs.uniform(Shape(2, 3, 7, 6), seed: 2))
        }
    }

    /// LeNet's second convolution: on oneDNN its weight-gradient pass reads x and dy in other
    /// layouts (nChw8c) than the input-gradient pass (nChw16c) and the forward (nchw). One
    /// small image: the finite differences' rounding grows with the number of outputs summed
    /// into the loss (2×16×5×4 outputs put float64's worst error at 1.05e-6, past its 1e-6).
    func testConv2dWhoseBackwardPassesUseOtherLayouts() {
        let conv = Conv2d(6, 16, kernel: 5)
        randomize(conv, seed: 20)
        assertGradients(conv, Inputs.uniform(Shape(1, 6, 7, 6), seed: 21))
    }

    /// `--conv-algorithm winograd`: the plan's reorders around oneDNN's Winograd passes,
    /// whose layouts may differ from direct's (its tiles take channels in blocks of 16).
    /// Against direct's gradients, which the finite differences above check: float32 finite
    /// differences cannot check Winograd itself (its forward rounds ~10× more, and step 1e-2
    /// turns that into a few percent of these gradients). Each value is held to both
    /// algorithms' rounding bounds, γ_K on direct's Σ|terms| S (the layer run on |W|, |x|,
    /// |dy|) and γ_{K′+22}·62.7 on it for Winograd (`WinogradF4x3`; K′ the transformed
    /// domain's terms: channels, or images × tiles for the weight gradient).
    func testConv2dOnWinogradMatchesDirect() throws {
        try XCTSkipUnless(ConvolutionEngine.configurations.contains { $0.algorithm == .winograd },
                          "Winograd runs on oneDNN in float32 builds on AVX-512 only")
        let (n, c, h, w) = (2, 16, 6, 5)
        let conv = Conv2d(c, c, kernel: 3, padding: 1), magnitude = Conv2d(c, c, kernel: 3, padding: 1)
        randomize(conv, seed: 30)
        for (p, m) in zip(conv.parameters, magnitude.parameters) { for i in 0..<p.value.count { m.value.data[i] = abs(p.value.data[i]) } }
        let x = Inputs.uniform(Shape(n, c, h, w), seed: 31), dy = Inputs.uniform(Shape(n, c, h, w), seed: 32)
        func absolute(_ t: Tensor) -> Tensor { Tensor(shape: t.shape, values: t.array.map { abs($0) }) }

        /// y, dx, dW and db of `layer` on `algorithm`.
        func pass(_ layer: Conv2d, _ algorithm: ConvolutionAlgorithm, _ x: Tensor, _ dy: Tensor) -> [[Double]] {
            ConvolutionEngine.using(.dnnl, algorithm: algorithm) {
                for p in layer.parameters { p.grad.fill(0) }
                let y = layer.forward(x, mode: .training).array, dx = layer.backward(x, dy).array
                return [y, dx, layer.weight.grad.array, layer.bias!.grad.array].map { $0.map { Double($0) } }
            }
        }
        let winograd = pass(conv, .winograd, x, dy)
        XCTAssertTrue(conv.ranWinograd)
        let direct = pass(conv, .direct, x, dy)
        XCTAssertFalse(conv.ranWinograd)
        let sums = pass(magnitude, .direct, absolute(x), absolute(dy))

        let u = Double(Real.ulpOfOne) / 2
        func gamma(_ k: Int) -> Double { Double(k) * u / (1 - Double(k) * u) }
        let t = WinogradF4x3.tile, tiles = n * ((h + t - 1) / t) * ((w + t - 1) / t)
        // (direct's K, Winograd's K′) per value; the bias gradient is a plain sum in both.
        let terms = [("y", c * 9 + 2, c), ("dx", c * 9, c), ("dW", n * h * w, tiles), ("db", n * h * w, -1)]
        for ((what, k, kw), (a, (b, s))) in zip(terms, zip(winograd, zip(direct, sums))) {
            let winogradRounding = kw < 0 ? gamma(k) : gamma(kw + WinogradF4x3.transformRoundings) * WinogradF4x3.uniformAmplification
            let worst = zip(zip(a, b), s).map { abs($0.0 - $0.1) / ((gamma(k) + winogradRounding) * $1) }.max()!
            XCTAssertLessThanOrEqual(worst, 1, "\(what): Winograd against direct, worst error / bound")
        }
    }

    /// The Packt chapter's convolutions: depthwise and grouped, dilated, rectangular, no bias.
    func testGeneralConvolutions() {
        let cases: [Conv2d] = [
            Conv2d(4, 4, kernel: 3, padding: 1, groups: 4, bias: false),
            Conv2d(4, 6, kernel: 3, stride: 2, padding: 1, groups: 2),
            Conv2d(3, 4, kernel: 3, padding: 2, dilation: 2),
            Conv2d(4, 2, window: Window2D(height: .init(kernel: 1), width: .init(kernel: 5, padding: 2)), bias: false),
            Conv2d(4, 2, window: Window2D(height: .init(kernel: 5, stride: 2, padding: 2), width: .init(kernel: 1))),
        ]
        for conv in cases {
            randomize(conv, seed: 16)
            assertGradients(conv, Inputs.uniform(Shape(2, conv.inChannels, 7, 6), seed: 17))
        }
    }

    func testTransposedConvolutions() {
        for (k, s, p, op, g) in [(4, 2, 1, 0, 1), (3, 2, 1, 1, 1), (3, 1, 0, 0, 2)] {
            let conv = ConvTranspose2d(4, 6, kernel: k, stride: s, padding: p, outputPadding: op, groups: g)
            randomize(conv, seed: 18)
            assertGradients(conv, Inputs.uniform(Shape(2, 4, 4, 3), seed: 19))
        }
    }

    /// Squeeze-and-excitation: x ⊙ hardsigmoid(conv(relu(conv(avgpool(x))))).
    func testChannelScaleWithItsGate() {
        let gate = Sequential([Child(nil, GlobalAvgPool()), Child("fc1", Conv2d(4, 2, kernel: 1)), Child(nil, Activation(.relu)),
                               Child("fc2", Conv2d(2, 4, kernel: 1)), Child(nil, Activation(.hardsigmoid))])
        let layer = ChannelScale(gate: gate)
        randomize(layer, seed: 20)
        assertGradients(layer, Inputs.uniform(Shape(2, 4, 3, 3), seed: 21))
    }

    func testLinear() {
        let linear = Linear(5, 3)
        randomize(linear, seed: 3)
        assertGradients(linear, Inputs.uniform(Shape(4, 5), seed: 4))
    }

    func testActivations() {
        for kind in Activation.Kind.allCases {
            assertGradients(Activation(kind), Inputs.separated(Shape(2, 3, 4, 2), seed: 5))
        }
    }

    func testPooling() {
        for (kind, k, s, p) in [(Pool2d.Kind.max, 3, 2, 1), (.max, 2, 2, 0), (.max, 3, 1, 1), (.average, 3, 2, 1), (.average, 2, 2, 0)] {
            assertGradients(Pool2d(kind, kernel: k, stride: s, padding: p), Inputs.separated(Shape(2, 2, 7, 7), seed: 6))
        }
        assertGradients(GlobalAvgPool(), Inputs.uniform(Shape(2, 3, 4, 5), seed: 7))
    }

    func testBatchNormInTrainingAndEvaluation() {
        for shape in [Shape(4, 3, 3, 2), Shape(6, 5)] {
            for mode in [Mode.training, .evaluation] {
                let bn = BatchNorm(shape[1])
                randomize(bn, seed: 8)
                bn.runningMean.fill(0.3)
                bn.runningVar.fill(1.7)
                assertGradients(bn, Inputs.uniform(shape, seed: 9), mode: mode)
            }
        }
    }

    func testDropoutReplayingItsMask() {
        for granularity in Dropout.Granularity.allCases {
            let dropout = Dropout(0.4, granularity: granularity)
            assertGradients(dropout, Inputs.uniform(Shape(2, 3, 3, 3), seed: 10),
                            reset: { dropout.generator = SeededGenerator(seed: 11) })
        }
    }

    func testFlattenAndContainers() {
        let branchA = Sequential([Child("conv", Conv2d(2, 3, kernel: 3, padding: 1)), Child(nil, Activation(.tanh))])
        let branchB = Sequential([Child(nil, Pool2d(.average, kernel: 3, stride: 1, padding: 1)),
                                  Child("conv", Conv2d(2, 2, kernel: 1))])
        let net = Sequential([
            Child("concat", Concat([Identity(), branchA, branchB])),
            Child("res", Residual(body: Sequential([Child("c", Conv2d(7, 7, kernel: 3, padding: 1)), Child("bn", BatchNorm(7))]))),
            Child("proj", Residual(body: Conv2d(7, 4, kernel: 3, stride: 2, padding: 1),
                                   shortcut: Child("conv3", Conv2d(7, 4, kernel: 1, stride: 2)))),
            Child(nil, Flatten()),
            Child("fc", Linear(4 * 2 * 2, 3)),
        ])
        randomize(net, seed: 12)
        assertGradients(net, Inputs.uniform(Shape(2, 2, 4, 4), seed: 13))
    }

    func testSoftmaxCrossEntropyWithAndWithoutLabelSmoothing() {
        for smoothing: Real in [0, 0.1] {
            let loss = SoftmaxCrossEntropy(labelSmoothing: smoothing)
            let logits = Inputs.uniform(Shape(3, 5), seed: 14, range: -3...3)
            let labels: [Int32] = [0, 4, 2]
            let analytic = labels.withUnsafeBufferPointer { loss.evaluate(logits: logits, labels: $0).gradient.array }
            for i in 0..<logits.count {
                let saved = logits.data[i], h = GradientChecker.step
                logits.data[i] = saved + h
                let plus = labels.withUnsafeBufferPointer { loss.evaluate(logits: logits, labels: $0).lossSum } / 3
                logits.data[i] = saved - h
                let minus = labels.withUnsafeBufferPointer { loss.evaluate(logits: logits, labels: $0).lossSum } / 3
                logits.data[i] = saved
                let numeric = (plus - minus) / (2 * Double(h))
                XCTAssertEqual(Double(analytic[i]), numeric, accuracy: GradientChecker.tolerance * max(abs(numeric), 1e-2),
                               "smoothing \(smoothing), logit \(i)")
            }
        }
    }

    // MARK: - The checker itself

    /// A sigmoid whose backward forgets the (1 − y) factor: the checker must catch it.
    private final class WrongSigmoid: Layer {
        let inner = Activation(.sigmoid)
        var summary: String { "WrongSigmoid" }
        func outputShape(for input: Shape) throws -> Shape { input }
        func flops(for input: Shape) -> Int { 0 }
        func forward(_ input: Tensor, mode: Mode) -> Tensor { inner.forward(input, mode: mode) }
        func backward(_ input: Tensor, _ gradOutput: Tensor) -> Tensor {
            let y = inner.forward(input, mode: .training)
            let dx = Tensor(zeros: input.shape)
            for i in 0..<dx.count { dx.data[i] = gradOutput.data[i] * y.data[i] }
            return dx
        }
    }

    func testCheckerCatchesAWrongBackward() {
        let report = GradientChecker.check(WrongSigmoid(), input: Inputs.uniform(Shape(2, 3), seed: 15))
        XCTAssertGreaterThan(report.worst, 10 * GradientChecker.tolerance, "a wrong backward must fail the check by far")
    }
}
