// Network in Network: M. Lin, Q. Chen, S. Yan, "Network In Network", ICLR 2014. As in
// D2L 8.3: no fully connected layer; the last block outputs one map per class, averaged.
import NN

private func ninBlock(_ cin: Int, _ cout: Int, _ k: Int, stride: Int, padding: Int) -> Sequential {
    Sequential([
        named("conv", conv(cin, cout, k, stride: stride, padding: padding)), plain(relu()),
        named("mlp1", conv(cout, cout, 1)), plain(relu()),
        named("mlp2", conv(cout, cout, 1)), plain(relu()),
    ])
}

enum NiN {
    static let spec = ModelSpec(name: "nin", side: 224, recipe: Recipe(learningRate: 0.1, batchSize: 128),
                                build: { nin(inputChannels: $0, classes: $1) })
}

func nin(inputChannels: Int, classes: Int, dropout: Real = 0.5) -> Sequential {
    Sequential([
        named("block1", ninBlock(inputChannels, 96, 11, stride: 4, padding: 0)), plain(maxPool(3, 2)),
        named("block2", ninBlock(96, 256, 5, stride: 1, padding: 2)), plain(maxPool(3, 2)),
        named("block3", ninBlock(256, 384, 3, stride: 1, padding: 1)), plain(maxPool(3, 2)),
        plain(Dropout(dropout)),
        named("block4", ninBlock(384, classes, 3, stride: 1, padding: 1)),
        plain(GlobalAvgPool()), plain(Flatten()),
    ])
}
