// VGG: K. Simonyan, A. Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
// Recognition", ICLR 2015. VGG-11 as in D2L 8.2, every convolution width divided by
// `ratio` (D2L trains ratio 4 on Fashion-MNIST).
import NN

enum VGG {
    static let spec = ModelSpec(name: "vgg11", side: 224, recipe: Recipe(learningRate: 0.05, batchSize: 128),
                                build: { vgg11(inputChannels: $0, classes: $1) })
}

func vgg11(inputChannels: Int, classes: Int, ratio: Int = 4, dropout: Real = 0.5) -> Sequential {
    let arch = [(1, 64), (1, 128), (2, 256), (2, 512), (2, 512)]
    var children: [Child] = []
    var cin = inputChannels
    for (i, (convs, fullWidth)) in arch.enumerated() {
        let width = fullWidth / ratio
        var block: [Child] = []
        for j in 0..<convs {
            block += [named("conv\(j + 1)", conv(cin, width, 3, padding: 1)), plain(relu())]
            cin = width
        }
        block.append(plain(maxPool(2, 2)))
        children.append(named("blocks.\(i)", Sequential(block)))
    }
    children += [
        plain(Flatten()),
        named("fc1", Linear(cin * 7 * 7, 4096)), plain(relu()), plain(Dropout(dropout)),
        named("fc2", Linear(4096, 4096)), plain(relu()), plain(Dropout(dropout)),
        named("fc3", Linear(4096, classes)),
    ]
    return Sequential(children)
}
