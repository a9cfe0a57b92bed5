// Xception: F. Chollet, "Xception: Deep Learning with Depthwise Separable Convolutions",
// CVPR 2017. Entry flow (two convolutions, three strided blocks), eight middle blocks of 728
// channels, exit flow (a strided block, two separable convolutions to 2048 features), as
// `reference/models.py` defines it.
import NN

enum Xception {
    static let spec = ModelSpec(name: "xception", side: 96, recipe: Recipe(learningRate: 0.05, batchSize: 128),
                                build: { xception(inputChannels: $0, classes: $1) })
}

/// A depthwise 3×3 convolution (one filter per channel) then a pointwise 1×1, both without bias.
private func separableConv(_ cin: Int, _ cout: Int) -> Sequential {
    Sequential([named("depthwise", conv(cin, cin, 3, padding: 1, groups: cin, bias: false)),
                named("pointwise", conv(cin, cout, 1, bias: false))])
}

/// `reps` × (ReLU, separable convolution, BN), then a 3×3 max pool when strided; plus the
/// input, through a strided 1×1 convolution and BN (`skip`, `skip_bn`) when the shape
/// changes. `startWithReLU` is false right after the stem, which ends in a ReLU already.
private func xceptionBlock(_ cin: Int, _ cout: Int, reps: Int, stride: Int,
                           startWithReLU: Bool = true, growFirst: Bool = true) -> Residual {
    // The width changes in the first separable convolution, or in the last.
    let widths = growFirst ? [(cin, cout)] + Array(repeating: (cout, cout), count: reps - 1)
                           : Array(repeating: (cin, cin), count: reps - 1) + [(cin, cout)]
    var body: [Child] = []
    for (i, (a, b)) in widths.enumerated() {
        if i > 0 || startWithReLU { body.append(plain(relu())) }
        body += [named("seps.\(i)", separableConv(a, b)), named("bns.\(i)", BatchNorm(b))]
    }
    if stride != 1 { body.append(plain(maxPool(3, stride, padding: 1))) }
    let skip = cout != cin || stride != 1
        ? plain(Sequential([named("skip", conv(cin, cout, 1, stride: stride, bias: false)), named("skip_bn", BatchNorm(cout))]))
        : nil
    return Residual(body: Sequential(body), shortcut: skip)
}

func xception(inputChannels: Int, classes: Int) -> Sequential {
    var children: [Child] = [
        named("conv1", conv(inputChannels, 32, 3, stride: 2, bias: false)), named("bn1", BatchNorm(32)), plain(relu()),
        named("conv2", conv(32, 64, 3, bias: false)), named("bn2", BatchNorm(64)), plain(relu()),
    ]
    let blocks = [xceptionBlock(64, 128, reps: 2, stride: 2, startWithReLU: false), xceptionBlock(128, 256, reps: 2, stride: 2),
                  xceptionBlock(256, 728, reps: 2, stride: 2)]
        + (0..<8).map { _ in xceptionBlock(728, 728, reps: 3, stride: 1) }
        + [xceptionBlock(728, 1024, reps: 2, stride: 2, growFirst: false)]
    children += blocks.enumerated().map { named("blocks.\($0.offset)", $0.element) }
    children += [
        named("conv3", separableConv(1024, 1536)), named("bn3", BatchNorm(1536)), plain(relu()),
        named("conv4", separableConv(1536, 2048)), named("bn4", BatchNorm(2048)), plain(relu()),
        plain(GlobalAvgPool()), plain(Flatten()), named("fc", Linear(2048, classes)),
    ]
    return Sequential(children)
}
