import NN

/// How a model is trained by default: D2L's recipe on Fashion-MNIST (plain SGD from
/// Xavier-uniform weights for 10 epochs, no augmentation, with the learning rate and batch
/// of its chapter).
public struct Recipe: Sendable {
    public var learningRate: Real
    public var batchSize: Int
    public var epochs = 10

    public init(learningRate: Real, batchSize: Int, epochs: Int = 10) {
        self.learningRate = learningRate
        self.batchSize = batchSize
        self.epochs = epochs
    }
}
