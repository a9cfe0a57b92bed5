@_exported import NN

/// The seed networks by the names of `reference/models.py`, with D2L's input sides.
public enum ModelZoo {
    public static let names = ["lenet", "lenet-bn", "alexnet", "vgg11", "nin", "googlenet", "resnet18", "resnet34", "densenet"]

    /// The side D2L trains each model at on Fashion-MNIST (images resized from 28×28).
    public static func defaultSide(_ name: String) -> Int? {
        switch name {
        case "lenet", "lenet-bn": return 28
        case "alexnet", "vgg11", "nin": return 224
        case "googlenet", "resnet18", "resnet34", "densenet": return 96
        default: return nil
        }
    }

    public struct UnknownModel: Error, CustomStringConvertible {
        public let name: String
        public init(name: String) { self.name = name }
        public var description: String {
            "unknown model '\(name)'; expected one of: \(ModelZoo.names.joined(separator: ", "))"
        }
    }

    /// A freshly built network (all parameters zero until `initialize`).
    public static func make(_ name: String, inputChannels: Int = 1, classes: Int = 10) throws -> Network {
        let root: Sequential
        switch name {
        case "lenet": root = leNet(inputChannels: inputChannels, classes: classes)
        case "lenet-bn": root = leNetBN(inputChannels: inputChannels, classes: classes)
        case "alexnet": root = alexNet(inputChannels: inputChannels, classes: classes)
        case "vgg11": root = vgg11(inputChannels: inputChannels, classes: classes)
        case "nin": root = nin(inputChannels: inputChannels, classes: classes)
        case "googlenet": root = googLeNet(inputChannels: inputChannels, classes: classes)
        case "resnet18": root = resNet(blocksPerStage: [2, 2, 2, 2], inputChannels: inputChannels, classes: classes)
        case "resnet34": root = resNet(blocksPerStage: [3, 4, 6, 3], inputChannels: inputChannels, classes: classes)
        case "densenet": root = denseNet(inputChannels: inputChannels, classes: classes)
        default: throw UnknownModel(name: name)
        }
        return Network(name: name, root: root, inputChannels: inputChannels, classes: classes)
    }
}
