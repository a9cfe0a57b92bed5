import NN
import XCTest

/// A network lets each batch norm apply the ReLU that follows it; the results are the bits
/// of the two layers run one after the other, in forward and backward, training and evaluation.
final class BatchNormReLUFusionTests: XCTestCase {
    /// conv → BN → ReLU, with the same weights in a network (fused) and run layer by layer.
    private func layers() -> (Conv2d, BatchNorm, Activation) {
        let conv = Conv2d(2, 3, kernel: 3, padding: 1), bn = BatchNorm(3)
        var rng = SeededGenerator(seed: 7)
        for p in conv.parameters + bn.parameters {
            for i in 0..<p.value.count { p.value.data[i] = rng.uniform(-1, 1) }
        }
        return (conv, bn, Activation(.relu))
    }

    func testFusedBatchNormAndReLUEqualTheLayersRunApart() throws {
        let (conv, bn, relu) = layers()
        let network = Network(name: "fusion", root: Sequential([Child("conv", conv), Child("bn", bn), Child(nil, relu)]),
                              inputChannels: 2, classes: 3)
        XCTAssertTrue(bn.fusedReLU && relu.isFusedIntoLayerBefore, "the network fuses a batch norm with the ReLU after it")
        let (conv2, bn2, relu2) = layers()
        XCTAssertFalse(bn2.fusedReLU, "layers outside a network run apart")

        var rng = SeededGenerator(seed: 8)
        let x = Tensor(shape: Shape(4, 2, 5, 5), values: (0..<200).map { _ in rng.uniform(-1, 1) })
        let dy = Tensor(shape: Shape(4, 3, 5, 5), values: (0..<300).map { _ in rng.uniform(-1, 1) })
        for mode in [Mode.training, .evaluation] {
            network.zeroGradients()
            for p in conv2.parameters + bn2.parameters { p.grad.fill(0) }
            let fused = network.forward(x, mode: mode)
            let a = conv2.forward(x, mode: mode), b = bn2.forward(a, mode: mode), apart = relu2.forward(b, mode: mode)
            XCTAssertEqual(fused.array.map(\.bitPattern), apart.array.map(\.bitPattern), "\(mode) forward")
            XCTAssertTrue(apart.array.contains(0) && apart.array.contains { $0 > 0 }, "the ReLU clips some values")
            network.backward(x, dy)
            _ = conv2.backward(x, bn2.backward(a, relu2.backward(b, dy)))
            for (p, q) in zip(conv.parameters + bn.parameters, conv2.parameters + bn2.parameters) {
                XCTAssertEqual(p.grad.array.map(\.bitPattern), q.grad.array.map(\.bitPattern), "\(mode) gradient of \(p.name)")
            }
        }
        XCTAssertEqual(bn.runningMean.array.map(\.bitPattern), bn2.runningMean.array.map(\.bitPattern))
    }

    /// A ReLU object at two places of a network is not fused into either batch norm.
    func testASharedReLUIsLeftApart() {
        let relu = Activation(.relu), bn1 = BatchNorm(2), bn2 = BatchNorm(2)
        _ = Network(name: "shared", root: Sequential([Child("bn1", bn1), Child(nil, relu), Child("bn2", bn2), Child(nil, relu)]),
                    inputChannels: 2, classes: 2)
        XCTAssertFalse(bn1.fusedReLU || bn2.fusedReLU || relu.isFusedIntoLayerBefore)
    }
}
