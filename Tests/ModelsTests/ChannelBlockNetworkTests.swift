import Models
import XCTest

/// On oneDNN, a network keeps its activations in the convolutions' channel blocks between
/// layers, and computes what it computes with every convolution reordering to NCHW.
final class ChannelBlockNetworkTests: XCTestCase {
    /// Logits and every parameter gradient of one training step.
    private func step(_ network: Network, _ images: Tensor) -> (logits: [Real], gradients: [Real]) {
        network.zeroGradients()
        let logits = network.forward(images, mode: .training)
        let gradLogits = Tensor(shape: logits.shape, values: (0..<logits.count).map { Real($0 % 7) / 7 - 0.5 })
        network.backward(images, gradLogits)
        return (logits.array, Array(UnsafeBufferPointer(start: network.gradientStorage.base, count: network.parameterCount)))
    }

    /// The two runs differ only in the order in which batch norm adds its float64 sums and
    /// in reorders (exact copies); the convolutions are the same primitives on the same
    /// bytes. Float64 sums in another order differ by a few units of 2^-53 of their size,
    /// which rounds to the same float32 statistics unless a sum lies that close to a float32
    /// rounding boundary (about one chance in 2^28 per channel): the runs agree bit for bit.
    func testNetworksInChannelBlocksComputeWhatTheyComputeInNCHW() throws {
        guard ConvolutionEngine.isAvailable(.dnnl) else { throw XCTSkip("oneDNN runs in the float32 build only") }
        for (engine, algorithm) in ConvolutionEngine.configurations where engine == .dnnl {
            for (name, side) in [("resnet18", 32), ("googlenet", 32), ("densenet", 32), ("se-resnet18", 32), ("resnet50", 32),
                                 ("xception", 32), ("mobilenet-v3-small", 32), ("efficientnet-b0", 32), ("inception-v3", 75),
                                 ("nin", 96)] {
                try ConvolutionEngine.using(.dnnl, algorithm: algorithm) {
                    let network = try ModelZoo.make(name)
                    network.initialize(.xavier, seed: 1)
                    network.setDropout(0, granularities: Set(Dropout.Granularity.allCases))
                    var rng = SeededGenerator(seed: 2)
                    let images = Tensor(shape: Shape(2, 1, side, side), values: (0..<2 * side * side).map { _ in rng.uniform(0, 1) })
                    let label = "\(name), \(algorithm)"

                    let blocked = step(network, images)
                    let convolutions = network.convolutions
                    let blockedOutputs = convolutions.filter { $0.lastOutputLayout != .nchw }.count
                    // Every convolution of a ResNet writes channel blocks (its channels are
                    // multiples of 16); elsewhere depthwise convolutions, whose weight gradient
                    // is computed on NCHW, and channel counts that no block divides stay NCHW.
                    if name == "resnet18" {
                        XCTAssertEqual(blockedOutputs, convolutions.count, "\(label): every convolution hands on channel blocks")
                    } else {
                        XCTAssertGreaterThan(blockedOutputs, 0, "\(label): convolutions hand on channel blocks")
                    }

                    network.keepActivationsInChannelBlocks(false)
                    let plain = step(network, images)
                    XCTAssertTrue(convolutions.allSatisfy { $0.lastOutputLayout == .nchw }, label)
                    XCTAssertEqual(blocked.logits, plain.logits, "\(label): logits")
                    XCTAssertTrue(blocked.gradients == plain.gradients, "\(label): gradients differ")
                }
            }
        }
    }

    /// Where a container's parts arrive in different layouts: a residual block over the NCHW
    /// input whose body writes channel blocks (the shortcut's identity is converted), and a
    /// concatenation of a 16-channel branch (blocks) with a 24-channel one (NCHW: no block
    /// of 16 divides it), which goes to NCHW. Same bits as with NCHW throughout.
    func testContainersJoinPartsInDifferentLayoutsAsInNCHW() throws {
        guard ConvolutionEngine.isAvailable(.dnnl) else { throw XCTSkip("oneDNN runs in the float32 build only") }
        let body = Sequential([Child("conv", Conv2d(16, 16, kernel: 3, padding: 1)), Child("bn", BatchNorm(16))])
        let narrow = Conv2d(16, 16, kernel: 1), wide = Conv2d(16, 24, kernel: 1)
        let root = Sequential([
            Child("block", Residual(body: body)), Child("branches", Concat([Child("narrow", narrow), Child("wide", wide)])),
            Child("bn", BatchNorm(40)), Child(nil, Activation(.relu)), Child(nil, GlobalAvgPool()), Child(nil, Flatten()),
            Child("fc", Linear(40, 10)),
        ])
        let network = Network(name: "mixed", root: root, inputChannels: 16, classes: 10)
        network.initialize(.xavier, seed: 3)
        var rng = SeededGenerator(seed: 4)
        let images = Tensor(shape: Shape(2, 16, 6, 6), values: (0..<2 * 16 * 36).map { _ in rng.uniform(-1, 1) })
        try ConvolutionEngine.using(.dnnl) {
            let blocked = step(network, images)
            XCTAssertNotEqual(narrow.lastOutputLayout, .nchw, "the 16-channel branch hands on channel blocks")
            XCTAssertEqual(wide.lastOutputLayout, .nchw, "the 24-channel branch stays NCHW")
            network.keepActivationsInChannelBlocks(false)
            let plain = step(network, images)
            XCTAssertEqual(blocked.logits, plain.logits, "logits")
            XCTAssertTrue(blocked.gradients == plain.gradients, "gradients differ")
        }
    }
}
