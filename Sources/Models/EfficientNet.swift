// EfficientNet: M. Tan, Q. V. Le, "EfficientNet: Rethinking Model Scaling for Convolutional
// Neural Networks", ICML 2019 (B0: MBConv blocks with SiLU and squeeze-and-excitation).
// EfficientNetV2: M. Tan, Q. V. Le, "EfficientNetV2: Smaller Models and Faster Training",
// ICML 2021 (V2-S: fused MBConv in the early stages, a full 3×3 convolution instead of
// expansion + depthwise). As torchvision builds them (stochastic depth growing linearly to
// 0.2 over the blocks, dropout 0.2 before the classifier; V2 with batch norm eps 0.001),
// under torchvision's keys.
import NN

enum EfficientNet {
    static let b0 = ModelSpec(name: "efficientnet-b0", side: 96, recipe: Recipe(learningRate: 0.05, batchSize: 128),
                              build: { efficientNet(b0Stages, lastChannel: 1280, eps: 1e-5, inputChannels: $0, classes: $1) })
    static let v2Small = ModelSpec(name: "efficientnet-v2-s", side: 96, recipe: Recipe(learningRate: 0.05, batchSize: 128),
                                   build: { efficientNet(v2SmallStages, lastChannel: 1280, eps: 1e-3, inputChannels: $0, classes: $1) })

    /// One stage: its block kind, expansion ratio, kernel, stride of its first block, input
    /// and output channels, and number of blocks.
    struct Stage {
        var fused: Bool, expansion: Int, kernel: Int, stride: Int, input: Int, output: Int, blocks: Int
        init(fused: Bool = false, _ expansion: Int, _ kernel: Int, _ stride: Int, _ input: Int, _ output: Int, _ blocks: Int) {
            (self.fused, self.expansion, self.kernel, self.stride) = (fused, expansion, kernel, stride)
            (self.input, self.output, self.blocks) = (input, output, blocks)
        }
    }

    /// Table 1 of the EfficientNet paper (width and depth multipliers 1).
    static let b0Stages = [
        Stage(1, 3, 1, 32, 16, 1), Stage(6, 3, 2, 16, 24, 2), Stage(6, 5, 2, 24, 40, 2), Stage(6, 3, 2, 40, 80, 3),
        Stage(6, 5, 1, 80, 112, 3), Stage(6, 5, 2, 112, 192, 4), Stage(6, 3, 1, 192, 320, 1),
    ]
    /// Table 4 of the EfficientNetV2 paper.
    static let v2SmallStages = [
        Stage(fused: true, 1, 3, 1, 24, 24, 2), Stage(fused: true, 4, 3, 2, 24, 48, 4), Stage(fused: true, 4, 3, 2, 48, 64, 4),
        Stage(4, 3, 2, 64, 128, 6), Stage(6, 3, 1, 128, 160, 9), Stage(6, 3, 2, 160, 256, 15),
    ]
}

/// MBConv: 1×1 expansion (when the ratio is above 1), depthwise k×k, SE squeezing to a
/// quarter of the block's input channels (SiLU inside, sigmoid gate), linear 1×1 projection.
/// Fused MBConv: one k×k convolution for expansion and depthwise together, then the
/// projection (or, at ratio 1, the k×k convolution alone, with its activation).
private func mbConv(_ fused: Bool, expansion: Int, kernel: Int, stride: Int, input: Int, output: Int, eps: Real) -> [any Layer] {
    let expanded = makeDivisible(Double(input * expansion))
    if fused {
        guard expanded != input else {
            return [convNormActivation(input, output, kernel, stride: stride, eps: eps, activation: .silu)]
        }
        return [convNormActivation(input, expanded, kernel, stride: stride, eps: eps, activation: .silu),
                convNormActivation(expanded, output, 1, eps: eps, activation: nil)]
    }
    var layers: [any Layer] = []
    if expanded != input { layers.append(convNormActivation(input, expanded, 1, eps: eps, activation: .silu)) }
    layers += [
        convNormActivation(expanded, expanded, kernel, stride: stride, groups: expanded, eps: eps, activation: .silu),
        torchvisionSqueezeExcitation(expanded, squeeze: max(1, input / 4), inner: .silu, gate: .sigmoid),
        convNormActivation(expanded, output, 1, eps: eps, activation: nil),
    ]
    return layers
}

func efficientNet(_ stages: [EfficientNet.Stage], lastChannel: Int, eps: Real, inputChannels: Int, classes: Int,
                  stochasticDepth: Real = 0.2, dropout: Real = 0.2) -> Sequential {
    var features: [any Layer] = [convNormActivation(inputChannels, stages[0].input, 3, stride: 2, eps: eps, activation: .silu)]
    let totalBlocks = stages.reduce(0) { $0 + $1.blocks }
    var blockIndex = 0
    for s in stages {
        var stage: [any Layer] = []
        for j in 0..<s.blocks {
            let input = j == 0 ? s.input : s.output, stride = j == 0 ? s.stride : 1
            let layers = mbConv(s.fused, expansion: s.expansion, kernel: s.kernel, stride: stride, input: input, output: s.output, eps: eps)
            let block = named("block", Sequential(layers.enumerated().map { Child("\($0.offset)", $0.element) }))
            if stride == 1 && input == s.output {
                // Stochastic depth drops the whole residual branch of an example, more often deeper in.
                let drop = stochasticDepth * Real(blockIndex) / Real(totalBlocks)
                stage.append(Sequential([plain(Residual(body: Sequential([block, plain(Dropout(drop, granularity: .example))])))]))
            } else {
                stage.append(Sequential([block]))
            }
            blockIndex += 1
        }
        features.append(Sequential(stage.enumerated().map { Child("\($0.offset)", $0.element) }))
    }
    features.append(convNormActivation(stages.last!.output, lastChannel, 1, eps: eps, activation: .silu))
    return Sequential([
        named("features", Sequential(features.enumerated().map { Child("\($0.offset)", $0.element) })),
        plain(GlobalAvgPool()), plain(Flatten()),
        named("classifier", Sequential([plain(Dropout(dropout)), named("1", Linear(lastChannel, classes))])),
    ])
}
