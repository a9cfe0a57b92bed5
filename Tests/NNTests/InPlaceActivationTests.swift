import NN
import XCTest

/// A network lets a ReLU or ReLU6 overwrite the output of the layer before it where only the
/// activation reads that output; the results are the bits of the same layers with their own
/// buffers.
final class InPlaceActivationTests: XCTestCase {
    /// conv → ReLU6 → residual block → ReLU → flatten → linear → ReLU (a ReLU right after the
    /// convolution would be fused into it); `apart` puts an Identity (whose output is its
    /// input's, so not to be overwritten) before each activation.
    private func network(apart: Bool) -> (Network, [Activation]) {
        let activations = [Activation(.relu6), Activation(.relu), Activation(.relu)]
        func before(_ activation: Activation) -> [Child] { (apart ? [Child(nil, Identity())] : []) + [Child(nil, activation)] }
        let block = Residual(body: Sequential([Child("conv", Conv2d(3, 3, kernel: 3, padding: 1)), Child("bn", BatchNorm(3))]))
        let layers: [Child] = [Child("conv", Conv2d(2, 3, kernel: 3, padding: 1))] + before(activations[0])
            + [Child("block", block)] + before(activations[1])
            + [Child(nil, Flatten()), Child("fc", Linear(75, 4))] + before(activations[2])
        let network = Network(name: "in-place", root: Sequential(layers), inputChannels: 2, classes: 4)
        var rng = SeededGenerator(seed: 5)
        for (_, p) in network.parameters {
            for i in 0..<p.value.count { p.value.data[i] = rng.uniform(-1, 1) }
        }
        return (network, activations)
    }

    func testInPlaceActivationsEqualTheLayersWithTheirOwnBuffers() {
        let (inPlace, overwriting) = network(apart: false), (apart, separate) = network(apart: true)
        XCTAssertTrue(overwriting.allSatisfy(\.writesInPlace), "each activation overwrites its input")
        XCTAssertFalse(separate.contains(where: \.writesInPlace), "nor after a layer that hands its input on")

        var rng = SeededGenerator(seed: 6)
        let x = Tensor(shape: Shape(4, 2, 5, 5), values: (0..<200).map { _ in rng.uniform(-2, 2) })
        let dy = Tensor(shape: Shape(4, 4), values: (0..<16).map { _ in rng.uniform(-1, 1) })
        for mode in [Mode.training, .evaluation] {
            inPlace.zeroGradients()
            apart.zeroGradients()
            let y = inPlace.forward(x, mode: mode), reference = apart.forward(x, mode: mode)
            XCTAssertEqual(y.array.map(\.bitPattern), reference.array.map(\.bitPattern), "\(mode) forward")
            inPlace.backward(x, dy)
            apart.backward(x, dy)
            for ((key, p), (_, q)) in zip(inPlace.parameters, apart.parameters) {
                XCTAssertTrue(p.grad.array.contains { $0 != 0 }, "\(key) has a gradient")
                XCTAssertEqual(p.grad.array.map(\.bitPattern), q.grad.array.map(\.bitPattern), "\(mode) gradient of \(key)")
            }
        }
    }

    /// A batch norm reads its own output in backward, dropout may hand its input on, and a
    /// ReLU object used twice has two inputs: none of them is overwritten.
    func testOutputsThatOthersReadAreKept() {
        let afterBatchNorm = Activation(.relu6), afterDropout = Activation(.relu), shared = Activation(.relu)
        _ = Network(name: "kept", root: Sequential([
            Child("bn", BatchNorm(2)), Child(nil, afterBatchNorm), Child(nil, Dropout(0.5)), Child(nil, afterDropout),
            Child("conv1", Conv2d(2, 2, kernel: 1)), Child(nil, shared), Child("conv2", Conv2d(2, 2, kernel: 1)), Child(nil, shared),
        ]), inputChannels: 2, classes: 2)
        XCTAssertFalse(afterBatchNorm.writesInPlace || afterDropout.writesInPlace || shared.writesInPlace)
    }
}
