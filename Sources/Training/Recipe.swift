import Tensor

/// D2L's training recipe for a model on Fashion-MNIST: plain SGD from Xavier-uniform
/// weights for 10 epochs, no augmentation, with the learning rate and batch of its chapter.
public struct Recipe: Sendable {
    public var learningRate: Real
    public var batchSize: Int
    public var epochs = 10

    public static func d2l(_ model: String) -> Recipe? {
        switch model {
        case "lenet": return Recipe(learningRate: 0.9, batchSize: 256)
        case "lenet-bn": return Recipe(learningRate: 1.0, batchSize: 256)
        case "alexnet": return Recipe(learningRate: 0.01, batchSize: 128)
        case "vgg11": return Recipe(learningRate: 0.05, batchSize: 128)
        case "nin": return Recipe(learningRate: 0.1, batchSize: 128)
        case "googlenet": return Recipe(learningRate: 0.1, batchSize: 128)
        case "resnet18", "resnet34": return Recipe(learningRate: 0.05, batchSize: 256)
        case "densenet": return Recipe(learningRate: 0.1, batchSize: 256)
        default: return nil
        }
    }
}
