// MobileNetV3: A. Howard, M. Sandler, G. Chu, L.-C. Chen, B. Chen, M. Tan, W. Wang, Y. Zhu,
// R. Pang, V. Vasudevan, Q. V. Le, H. Adam, "Searching for MobileNetV3", ICCV 2019. Inverted
// residual blocks (1×1 expansion, depthwise k×k, optional squeeze-and-excitation with a
// hard-sigmoid gate, linear 1×1 projection), ReLU early and hard swish late. As torchvision
// builds it (`mobilenet_v3_small`, `mobilenet_v3_large`: batch norm eps 0.001, momentum 0.01),
// under torchvision's keys.
import NN

enum MobileNetV3 {
    static let small = ModelSpec(name: "mobilenet-v3-small", side: 96, recipe: Recipe(learningRate: 0.05, batchSize: 128),
                                 build: { mobileNetV3(smallBlocks, lastChannel: 1024, inputChannels: $0, classes: $1) })
    static let large = ModelSpec(name: "mobilenet-v3-large", side: 96, recipe: Recipe(learningRate: 0.05, batchSize: 128),
                                 build: { mobileNetV3(largeBlocks, lastChannel: 1280, inputChannels: $0, classes: $1) })

    /// One inverted residual block: input, kernel, expanded and output channels, whether it
    /// has squeeze-and-excitation, hard swish (else ReLU), stride.
    struct Block {
        var input: Int, kernel: Int, expanded: Int, output: Int, squeezeExcitation: Bool, hardSwish: Bool, stride: Int
        init(_ input: Int, _ kernel: Int, _ expanded: Int, _ output: Int, _ se: Bool, _ hs: Bool, _ stride: Int) {
            (self.input, self.kernel, self.expanded, self.output) = (input, kernel, expanded, output)
            (squeezeExcitation, hardSwish, self.stride) = (se, hs, stride)
        }
    }

    /// Table 2 of the paper (torchvision's `_mobilenet_v3_conf("mobilenet_v3_small")`).
    static let smallBlocks = [
        Block(16, 3, 16, 16, true, false, 2), Block(16, 3, 72, 24, false, false, 2), Block(24, 3, 88, 24, false, false, 1),
        Block(24, 5, 96, 40, true, true, 2), Block(40, 5, 240, 40, true, true, 1), Block(40, 5, 240, 40, true, true, 1),
        Block(40, 5, 120, 48, true, true, 1), Block(48, 5, 144, 48, true, true, 1), Block(48, 5, 288, 96, true, true, 2),
        Block(96, 5, 576, 96, true, true, 1), Block(96, 5, 576, 96, true, true, 1),
    ]
    /// Table 1 of the paper.
    static let largeBlocks = [
        Block(16, 3, 16, 16, false, false, 1), Block(16, 3, 64, 24, false, false, 2), Block(24, 3, 72, 24, false, false, 1),
        Block(24, 5, 72, 40, true, false, 2), Block(40, 5, 120, 40, true, false, 1), Block(40, 5, 120, 40, true, false, 1),
        Block(40, 3, 240, 80, false, true, 2), Block(80, 3, 200, 80, false, true, 1), Block(80, 3, 184, 80, false, true, 1),
        Block(80, 3, 184, 80, false, true, 1), Block(80, 3, 480, 112, true, true, 1), Block(112, 3, 672, 112, true, true, 1),
        Block(112, 5, 672, 160, true, true, 2), Block(160, 5, 960, 160, true, true, 1), Block(160, 5, 960, 160, true, true, 1),
    ]
}

private let eps: Real = 0.001, momentum: Real = 0.01

/// Expansion (when it widens), depthwise convolution, SE (squeeze to a quarter, rounded to a
/// multiple of 8), projection; the input is added when the shape is kept.
private func invertedResidual(_ b: MobileNetV3.Block) -> Sequential {
    let activation: Activation.Kind = b.hardSwish ? .hardswish : .relu
    var layers: [any Layer] = []
    if b.expanded != b.input {
        layers.append(convNormActivation(b.input, b.expanded, 1, eps: eps, momentum: momentum, activation: activation))
    }
    layers.append(convNormActivation(b.expanded, b.expanded, b.kernel, stride: b.stride, groups: b.expanded,
                                     eps: eps, momentum: momentum, activation: activation))
    if b.squeezeExcitation {
        layers.append(torchvisionSqueezeExcitation(b.expanded, squeeze: makeDivisible(Double(b.expanded / 4)),
                                                   inner: .relu, gate: .hardsigmoid))
    }
    layers.append(convNormActivation(b.expanded, b.output, 1, eps: eps, momentum: momentum, activation: nil))
    let block = named("block", Sequential(layers.enumerated().map { Child("\($0.offset)", $0.element) }))
    guard b.stride == 1 && b.input == b.output else { return Sequential([block]) }
    return Sequential([plain(Residual(body: Sequential([block])))])
}

func mobileNetV3(_ blocks: [MobileNetV3.Block], lastChannel: Int, inputChannels: Int, classes: Int,
                 dropout: Real = 0.2) -> Sequential {
    let lastConv = 6 * blocks.last!.output
    let features: [any Layer] = [convNormActivation(inputChannels, blocks[0].input, 3, stride: 2, eps: eps, momentum: momentum,
                                                    activation: .hardswish)]
        + blocks.map(invertedResidual)
        + [convNormActivation(blocks.last!.output, lastConv, 1, eps: eps, momentum: momentum, activation: .hardswish)]
    return Sequential([
        named("features", Sequential(features.enumerated().map { Child("\($0.offset)", $0.element) })),
        plain(GlobalAvgPool()), plain(Flatten()),
        named("classifier", Sequential([named("0", Linear(lastConv, lastChannel)), plain(Activation(.hardswish)),
                                        plain(Dropout(dropout)), named("3", Linear(lastChannel, classes))])),
    ])
}
