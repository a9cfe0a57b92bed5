// ResNet: K. He, X. Zhang, S. Ren, J. Sun, "Deep Residual Learning for Image Recognition",
// CVPR 2016. As in D2L 8.6: a 7×7 stem, four stages of basic blocks, global average pooling.
import NN

/// Two 3×3 conv + batch-norm layers plus a shortcut (a 1×1 convolution `conv3` when the
/// shape changes), then ReLU.
private func residualBlock(_ cin: Int, _ cout: Int, projection: Bool, stride: Int) -> Sequential {
    let body = Sequential([
        named("conv1", conv(cin, cout, 3, stride: stride, padding: 1)), named("bn1", BatchNorm(cout)), plain(relu()),
        named("conv2", conv(cout, cout, 3, padding: 1)), named("bn2", BatchNorm(cout)),
    ])
    let shortcut = projection ? named("conv3", conv(cin, cout, 1, stride: stride)) : nil
    return Sequential([plain(Residual(body: body, shortcut: shortcut)), plain(relu())])
}

enum ResNet {
    static let spec18 = ModelSpec(name: "resnet18", side: 96, recipe: Recipe(learningRate: 0.05, batchSize: 256),
                                  build: { resNet(blocksPerStage: [2, 2, 2, 2], inputChannels: $0, classes: $1) })
    static let spec34 = ModelSpec(name: "resnet34", side: 96, recipe: Recipe(learningRate: 0.05, batchSize: 256),
                                  build: { resNet(blocksPerStage: [3, 4, 6, 3], inputChannels: $0, classes: $1) })
}

func resNet(blocksPerStage: [Int], inputChannels: Int, classes: Int) -> Sequential {
    var children: [Child] = [
        named("stem_conv", conv(inputChannels, 64, 7, stride: 2, padding: 3)), named("stem_bn", BatchNorm(64)),
        plain(relu()), plain(maxPool(3, 2, padding: 1)),
    ]
    var cin = 64
    for (stage, (blocks, width)) in zip(blocksPerStage, [64, 128, 256, 512]).enumerated() {
        for j in 0..<blocks {
            let downsample = stage > 0 && j == 0
            children.append(named("stages.\(stage).\(j)",
                                  residualBlock(cin, width, projection: downsample, stride: downsample ? 2 : 1)))
            cin = width
        }
    }
    children += [plain(GlobalAvgPool()), plain(Flatten()), named("fc", Linear(512, classes))]
    return Sequential(children)
}
