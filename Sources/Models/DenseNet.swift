// DenseNet: G. Huang, Z. Liu, L. van der Maaten, K. Q. Weinberger, "Densely Connected
// Convolutional Networks", CVPR 2017. As in D2L 8.7: four dense blocks of
// BN-ReLU-conv3×3 layers (growth 32), transitions that halve the channels and the side.
import NN

enum DenseNet {
    static let spec = ModelSpec(name: "densenet", side: 96, recipe: Recipe(learningRate: 0.1, batchSize: 256),
                                build: { denseNet(inputChannels: $0, classes: $1) })
}

func denseNet(inputChannels: Int, classes: Int, convsPerBlock: [Int] = [4, 4, 4, 4], growth: Int = 32) -> Sequential {
    var children: [Child] = [
        named("stem_conv", conv(inputChannels, 64, 7, stride: 2, padding: 3)), named("stem_bn", BatchNorm(64)),
        plain(relu()), plain(maxPool(3, 2, padding: 1)),
    ]
    var c = 64
    for (i, convs) in convsPerBlock.enumerated() {
        for j in 0..<convs {
            // Keep the input and append `growth` new channels computed from it.
            let newFeatures = Sequential([named("bn", BatchNorm(c)), plain(relu()),
                                          named("conv", conv(c, growth, 3, padding: 1))])
            children.append(named("blocks.\(i).\(j)", Concat([Identity(), newFeatures])))
            c += growth
        }
        if i != convsPerBlock.count - 1 {
            children.append(named("transitions.\(i)", Sequential([
                named("bn", BatchNorm(c)), plain(relu()), named("conv", conv(c, c / 2, 1)), plain(avgPool(2, 2)),
            ])))
            c /= 2
        }
    }
    children += [named("bn", BatchNorm(c)), plain(relu()), plain(GlobalAvgPool()), plain(Flatten()),
                 named("fc", Linear(c, classes))]
    return Sequential(children)
}
