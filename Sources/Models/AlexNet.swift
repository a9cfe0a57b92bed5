// AlexNet: A. Krizhevsky, I. Sutskever, G. E. Hinton, "ImageNet Classification with Deep
// Convolutional Neural Networks", NeurIPS 2012. As in D2L 8.1: a single tower for 224×224
// input, dropout 0.5 in the classifier.
import NN

enum AlexNet {
    static let spec = ModelSpec(name: "alexnet", side: 224, recipe: Recipe(learningRate: 0.01, batchSize: 128),
                                build: { alexNet(inputChannels: $0, classes: $1) })
}

func alexNet(inputChannels: Int, classes: Int, dropout: Real = 0.5) -> Sequential {
    Sequential([
        named("conv1", conv(inputChannels, 96, 11, stride: 4, padding: 1)), plain(relu()), plain(maxPool(3, 2)),
        named("conv2", conv(96, 256, 5, padding: 2)), plain(relu()), plain(maxPool(3, 2)),
        named("conv3", conv(256, 384, 3, padding: 1)), plain(relu()),
        named("conv4", conv(384, 384, 3, padding: 1)), plain(relu()),
        named("conv5", conv(384, 256, 3, padding: 1)), plain(relu()), plain(maxPool(3, 2)),
        plain(Flatten()),
        named("fc1", Linear(6400, 4096)), plain(relu()), plain(Dropout(dropout)),
        named("fc2", Linear(4096, 4096)), plain(relu()), plain(Dropout(dropout)),
        named("fc3", Linear(4096, classes)),
    ])
}
