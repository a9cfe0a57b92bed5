// ResNet-50: K. He, X. Zhang, S. Ren, J. Sun, "Deep Residual Learning for Image Recognition",
// CVPR 2016, with bottleneck blocks (1×1 reduce, 3×3, 1×1 expand by 4). As torchvision builds
// it ("v1.5": the 3×3 convolution carries the stride), under torchvision's keys.
import NN

enum ResNet50 {
    static let spec = ModelSpec(name: "resnet50", side: 96, recipe: Recipe(learningRate: 0.05, batchSize: 128),
                                build: { resNet50(inputChannels: $0, classes: $1) })
}

/// conv1×1 → BN → ReLU → conv3×3 (stride) → BN → ReLU → conv1×1 (×4) → BN, plus the input
/// (through a strided 1×1 convolution and BN, `downsample`, when the shape changes), then ReLU.
private func bottleneck(_ cin: Int, _ width: Int, stride: Int) -> Sequential {
    let cout = 4 * width
    let body = Sequential([
        named("conv1", conv(cin, width, 1, bias: false)), named("bn1", BatchNorm(width)), plain(relu()),
        named("conv2", conv(width, width, 3, stride: stride, padding: 1, bias: false)), named("bn2", BatchNorm(width)), plain(relu()),
        named("conv3", conv(width, cout, 1, bias: false)), named("bn3", BatchNorm(cout)),
    ])
    let downsample = stride != 1 || cin != cout
        ? named("downsample", Sequential([named("0", conv(cin, cout, 1, stride: stride, bias: false)), named("1", BatchNorm(cout))]))
        : nil
    return Sequential([plain(Residual(body: body, shortcut: downsample)), plain(relu())])
}

func resNet50(inputChannels: Int, classes: Int) -> Sequential {
    var children: [Child] = [
        named("conv1", conv(inputChannels, 64, 7, stride: 2, padding: 3, bias: false)), named("bn1", BatchNorm(64)),
        plain(relu()), plain(maxPool(3, 2, padding: 1)),
    ]
    var cin = 64
    for (stage, (blocks, width)) in zip([3, 4, 6, 3], [64, 128, 256, 512]).enumerated() {
        for j in 0..<blocks {
            let stride = stage > 0 && j == 0 ? 2 : 1
            children.append(named("layer\(stage + 1).\(j)", bottleneck(cin, width, stride: stride)))
            cin = 4 * width
        }
    }
    children += [plain(GlobalAvgPool()), plain(Flatten()), named("fc", Linear(cin, classes))]
    return Sequential(children)
}
