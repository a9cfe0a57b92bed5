@_exported import NN

/// One trainable network: its name (the key of `reference/models.py`), how to build it, the
/// side it is trained at and its default recipe. Each model file declares its own; adding a
/// network is that file plus its line in `ModelZoo.all`.
public struct ModelSpec: Sendable {
    public let name: String
    /// The input side the model is trained at by default (images are resized to it).
    public let side: Int
    public let recipe: Recipe
    /// The layer tree for `inputChannels` input channels and `classes` outputs.
    let build: @Sendable (_ inputChannels: Int, _ classes: Int) -> any Layer
}

/// Every network cnn-train trains, by name.
public enum ModelZoo {
    public static let all: [ModelSpec] = [
        LeNet.spec, LeNet.batchNormSpec, AlexNet.spec, VGG.spec, NiN.spec, GoogLeNet.spec,
        ResNet.spec18, ResNet.spec34, DenseNet.spec,
        // The Packt chapter's networks.
        CifarCNN.spec, ResNetVariants.preActivation, ResNetVariants.squeezeExcitation, ResNet50.spec, Xception.spec,
        MobileNetV3.small, MobileNetV3.large, EfficientNet.b0, EfficientNet.v2Small,
        InceptionV3.spec,
    ]

    public static let names = all.map(\.name)

    /// The model called `name`, or an error listing the known ones.
    public static func spec(_ name: String) throws -> ModelSpec {
        guard let spec = all.first(where: { $0.name == name }) else { throw UnknownModel(name: name) }
        return spec
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
        let spec = try spec(name)
        return Network(name: name, root: spec.build(inputChannels, classes), inputChannels: inputChannels, classes: classes)
    }
}
