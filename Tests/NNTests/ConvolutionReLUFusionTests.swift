import NN
import XCTest

/// A network lets each convolution apply the ReLU that follows it (on oneDNN as a post-op of
/// the convolution's pass): the results are the bits of the two layers run one after the
/// other, forward and backward, on every engine and algorithm.
final class ConvolutionReLUFusionTests: XCTestCase {
    private func convolution() -> Conv2d {
        let conv = Conv2d(3, 16, kernel: 3, padding: 1)
        var rng = SeededGenerator(seed: 9)
        for p in conv.parameters { for i in 0..<p.value.count { p.value.data[i] = rng.uniform(-1, 1) } }
        return conv
    }

    func testFusedConvolutionAndReLUEqualTheLayersRunApart() {
        var rng = SeededGenerator(seed: 10)
        let x = Tensor(shape: Shape(2, 3, 8, 8), values: (0..<384).map { _ in rng.uniform(-1, 1) })
        let dy = Tensor(shape: Shape(2, 16, 8, 8), values: (0..<2048).map { _ in rng.uniform(-1, 1) })
        for (engine, algorithm) in ConvolutionEngine.configurations {
            ConvolutionEngine.using(engine, algorithm: algorithm) {
                let label = "\(engine), \(algorithm)"
                let conv = convolution(), relu = Activation(.relu)
                // A layer before the convolution, so that it computes its input gradient too.
                let network = Network(name: "fusion", root: Sequential([Child(nil, Identity()), Child("conv", conv), Child(nil, relu)]),
                                      inputChannels: 3, classes: 16)
                XCTAssertTrue(conv.fusedReLU && relu.isFusedIntoLayerBefore, "the network fuses a convolution with the ReLU after it")
                let conv2 = convolution(), relu2 = Activation(.relu)
                XCTAssertFalse(conv2.fusedReLU, "layers outside a network run apart")

                let fused = network.root.forward(x, mode: .training)
                let a = conv2.forward(x, mode: .training), apart = relu2.forward(a, mode: .training)
                XCTAssertEqual(fused.converted(to: .nchw).array.map(\.bitPattern), apart.array.map(\.bitPattern), "\(label): forward")
                XCTAssertTrue(apart.array.contains(0) && apart.array.contains { $0 > 0 }, "the ReLU clips some values")
                let dx = network.root.backward(x, dy.converted(to: fused.layout)), dxApart = conv2.backward(x, relu2.backward(a, dy))
                XCTAssertEqual(dx.array.map(\.bitPattern), dxApart.array.map(\.bitPattern), "\(label): input gradient")
                for (p, q) in zip(conv.parameters, conv2.parameters) {
                    XCTAssertEqual(p.grad.array.map(\.bitPattern), q.grad.array.map(\.bitPattern), "\(label): gradient of \(p.name)")
                }
            }
        }
    }
}
