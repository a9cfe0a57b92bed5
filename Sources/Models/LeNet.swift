// LeNet-5: Y. LeCun, L. Bottou, Y. Bengio, P. Haffner, "Gradient-based learning applied to
// document recognition", Proc. IEEE 86(11), 1998. As in D2L 7.6 (6.6 in some editions):
// sigmoid activations, average pooling, padding 2 on the first convolution.
// With batch norm: S. Ioffe, C. Szegedy, "Batch Normalization", ICML 2015 (D2L 8.5).
import NN

enum LeNet {
    static let spec = ModelSpec(name: "lenet", side: 28, recipe: Recipe(learningRate: 0.9, batchSize: 256),
                                build: { leNet(inputChannels: $0, classes: $1) })
    static let batchNormSpec = ModelSpec(name: "lenet-bn", side: 28, recipe: Recipe(learningRate: 1.0, batchSize: 256),
                                         build: { leNetBN(inputChannels: $0, classes: $1) })
}

func leNet(inputChannels: Int, classes: Int) -> Sequential {
    Sequential([
        named("conv1", conv(inputChannels, 6, 5, padding: 2)), plain(sigmoid()), plain(avgPool(2, 2)),
        named("conv2", conv(6, 16, 5)), plain(sigmoid()), plain(avgPool(2, 2)),
        plain(Flatten()),
        named("fc1", Linear(16 * 5 * 5, 120)), plain(sigmoid()),
        named("fc2", Linear(120, 84)), plain(sigmoid()),
        named("fc3", Linear(84, classes)),
    ])
}

func leNetBN(inputChannels: Int, classes: Int) -> Sequential {
    Sequential([
        named("conv1", conv(inputChannels, 6, 5)), named("bn1", BatchNorm(6)), plain(sigmoid()), plain(avgPool(2, 2)),
        named("conv2", conv(6, 16, 5)), named("bn2", BatchNorm(16)), plain(sigmoid()), plain(avgPool(2, 2)),
        plain(Flatten()),
        named("fc1", Linear(16 * 4 * 4, 120)), named("bn3", BatchNorm(120)), plain(sigmoid()),
        named("fc2", Linear(120, 84)), named("bn4", BatchNorm(84)), plain(sigmoid()),
        named("fc3", Linear(84, classes)),
    ])
}
