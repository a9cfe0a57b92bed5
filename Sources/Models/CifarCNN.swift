// The Packt chapter's CIFAR-10 network ("Computer vision with convolutional networks"): three
// blocks of two 3×3 conv + batch norm + GELU and a 2×2 max pooling, each followed by
// Dropout2d (0.2, 0.3, 0.5), then one linear layer; 32×32 input. Keys are nn.Sequential's
// indices, as in `reference/models.py`.
import NN

enum CifarCNN {
    static let spec = ModelSpec(name: "cifar-cnn", side: 32, recipe: Recipe(learningRate: 0.05, batchSize: 128),
                                build: { cifarCNN(inputChannels: $0, classes: $1) })
}

func cifarCNN(inputChannels: Int, classes: Int) -> Sequential {
    var layers: [any Layer] = []
    func block(_ cin: Int, _ cout: Int, padding: Int, dropout: Real) {
        layers += [conv(cin, cout, 3, padding: padding), BatchNorm(cout), Activation(.gelu),
                   conv(cout, cout, 3, padding: padding), BatchNorm(cout), Activation(.gelu), maxPool(2, 2),
                   Dropout(dropout, granularity: .channel)]
    }
    block(inputChannels, 32, padding: 1, dropout: 0.2)
    block(32, 64, padding: 1, dropout: 0.3)
    block(64, 128, padding: 0, dropout: 0.5)
    layers += [Flatten(), Linear(128 * 2 * 2, classes)]
    // Every module is keyed by its index, parameters or not.
    return Sequential(layers.enumerated().map { Child("\($0.offset)", $0.element) })
}
