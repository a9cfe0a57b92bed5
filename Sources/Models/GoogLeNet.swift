// GoogLeNet (Inception v1): C. Szegedy et al., "Going Deeper with Convolutions", CVPR 2015.
// As in D2L 8.4, without the auxiliary classifiers.
import NN

/// Four parallel paths concatenated on channels: 1×1 | 1×1, 3×3 | 1×1, 5×5 | 3×3 max pool, 1×1.
private func inception(_ cin: Int, _ c1: Int, _ c2: (Int, Int), _ c3: (Int, Int), _ c4: Int) -> Concat {
    Concat([
        Sequential([named("p1_1", conv(cin, c1, 1)), plain(relu())]),
        Sequential([named("p2_1", conv(cin, c2.0, 1)), plain(relu()),
                    named("p2_2", conv(c2.0, c2.1, 3, padding: 1)), plain(relu())]),
        Sequential([named("p3_1", conv(cin, c3.0, 1)), plain(relu()),
                    named("p3_2", conv(c3.0, c3.1, 5, padding: 2)), plain(relu())]),
        Sequential([plain(maxPool(3, 1, padding: 1)), named("p4_2", conv(cin, c4, 1)), plain(relu())]),
    ])
}

enum GoogLeNet {
    static let spec = ModelSpec(name: "googlenet", side: 96, recipe: Recipe(learningRate: 0.1, batchSize: 128),
                                build: { googLeNet(inputChannels: $0, classes: $1) })
}

func googLeNet(inputChannels: Int, classes: Int) -> Sequential {
    Sequential([
        named("b1_conv", conv(inputChannels, 64, 7, stride: 2, padding: 3)), plain(relu()),
        plain(maxPool(3, 2, padding: 1)),
        named("b2_conv1", conv(64, 64, 1)), plain(relu()),
        named("b2_conv2", conv(64, 192, 3, padding: 1)), plain(relu()),
        plain(maxPool(3, 2, padding: 1)),
        named("b3.0", inception(192, 64, (96, 128), (16, 32), 32)),
        named("b3.1", inception(256, 128, (128, 192), (32, 96), 64)),
        plain(maxPool(3, 2, padding: 1)),
        named("b4.0", inception(480, 192, (96, 208), (16, 48), 64)),
        named("b4.1", inception(512, 160, (112, 224), (24, 64), 64)),
        named("b4.2", inception(512, 128, (128, 256), (24, 64), 64)),
        named("b4.3", inception(512, 112, (144, 288), (32, 64), 64)),
        named("b4.4", inception(528, 256, (160, 320), (32, 128), 128)),
        plain(maxPool(3, 2, padding: 1)),
        named("b5.0", inception(832, 256, (160, 320), (32, 128), 128)),
        named("b5.1", inception(832, 384, (192, 384), (48, 128), 128)),
        plain(GlobalAvgPool()), plain(Flatten()),
        named("fc", Linear(1024, classes)),
    ])
}
