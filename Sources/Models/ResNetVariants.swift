// ResNet-18's layout (D2L 8.6) with the residual blocks of two later papers, as in the Packt
// chapter: squeeze-and-excitation, J. Hu, L. Shen, G. Sun, "Squeeze-and-Excitation Networks",
// CVPR 2018 (the SE block on the residual branch before the sum); and pre-activation,
// K. He, X. Zhang, S. Ren, J. Sun, "Identity Mappings in Deep Residual Networks", ECCV 2016
// (BN-ReLU-conv twice, no ReLU after the sum, a final BN-ReLU before pooling).
import NN

enum ResNetVariants {
    static let squeezeExcitation = ModelSpec(name: "se-resnet18", side: 96, recipe: Recipe(learningRate: 0.05, batchSize: 256),
                                             build: { resNetVariant(seBlock, inputChannels: $0, classes: $1) })
    static let preActivation = ModelSpec(name: "preact-resnet18", side: 96, recipe: Recipe(learningRate: 0.05, batchSize: 256),
                                         build: { resNetVariant(preActivationBlock, inputChannels: $0, classes: $1, finalBatchNorm: true) })
}

/// Global average pool, fc (1×1 conv) → ReLU → fc → sigmoid, scaling the channels.
func squeezeExcitation(_ channels: Int, reduction: Int = 16) -> ChannelScale {
    ChannelScale(gate: Sequential([
        plain(GlobalAvgPool()), named("fc1", conv(channels, channels / reduction, 1)), plain(relu()),
        named("fc2", conv(channels / reduction, channels, 1)), plain(sigmoid()),
    ]))
}

/// D2L's residual block with an SE block on the residual branch, then ReLU after the sum.
private func seBlock(_ cin: Int, _ cout: Int, projection: Bool, stride: Int) -> Sequential {
    let body = Sequential([
        named("conv1", conv(cin, cout, 3, stride: stride, padding: 1)), named("bn1", BatchNorm(cout)), plain(relu()),
        named("conv2", conv(cout, cout, 3, padding: 1)), named("bn2", BatchNorm(cout)), named("se", squeezeExcitation(cout)),
    ])
    let shortcut = projection ? named("conv3", conv(cin, cout, 1, stride: stride)) : nil
    return Sequential([plain(Residual(body: body, shortcut: shortcut)), plain(relu())])
}

/// a = ReLU(BN(x)); conv(ReLU(BN(conv(a)))) + (a 1×1 conv of a when the shape changes, else x).
private func preActivationBlock(_ cin: Int, _ cout: Int, projection: Bool, stride: Int) -> Sequential {
    let convolutions: [Child] = [
        named("conv1", conv(cin, cout, 3, stride: stride, padding: 1, bias: false)), named("bn2", BatchNorm(cout)), plain(relu()),
        named("conv2", conv(cout, cout, 3, padding: 1, bias: false)),
    ]
    let preActivation: [Child] = [named("bn1", BatchNorm(cin)), plain(relu())]
    guard projection else { return Sequential([plain(Residual(body: Sequential(preActivation + convolutions)))]) }
    // The projection reads the pre-activated input, so both branches start after it.
    let shortcut = named("conv3", conv(cin, cout, 1, stride: stride, bias: false))
    return Sequential(preActivation + [plain(Residual(body: Sequential(convolutions), shortcut: shortcut))])
}

private func resNetVariant(_ block: (Int, Int, Bool, Int) -> Sequential, inputChannels: Int, classes: Int,
                           finalBatchNorm: Bool = false) -> Sequential {
    var children: [Child] = [
        named("stem_conv", conv(inputChannels, 64, 7, stride: 2, padding: 3)), named("stem_bn", BatchNorm(64)),
        plain(relu()), plain(maxPool(3, 2, padding: 1)),
    ]
    var cin = 64
    for (stage, width) in [64, 128, 256, 512].enumerated() {
        for j in 0..<2 {
            let downsample = stage > 0 && j == 0
            children.append(named("stages.\(stage).\(j)", block(cin, width, downsample, downsample ? 2 : 1)))
            cin = width
        }
    }
    if finalBatchNorm { children += [named("final_bn", BatchNorm(512)), plain(relu())] }
    children += [plain(GlobalAvgPool()), plain(Flatten()), named("fc", Linear(512, classes))]
    return Sequential(children)
}
