import ArgumentParser
import Foundation
import Models
import Training

/// `cnn-train models`: the zoo at a glance, or one model layer by layer.
struct ModelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models",
        abstract: "List the models with parameter counts and FLOPs, or describe one layer by layer.",
        discussion: """
        FLOPs are for one forward pass of one image (a multiply-add counts 2). The recipe is D2L's: \
        plain SGD from Xavier-uniform weights, 10 epochs, no augmentation, with this learning rate and batch.
        """
    )

    @Option(name: .long, help: "Describe this model layer by layer: output shape, parameters, FLOPs.")
    var describe: String?

    @Option(name: .long, help: "Input side in pixels (default: the model's D2L side).")
    var side: Int?

    @Option(name: .long, help: "Input channels (1 for Fashion-MNIST, 3 for CIFAR-10).")
    var channels = 1

    @Option(name: .long, help: "Number of classes.")
    var classes = 10

    func validate() throws {
        if let side, side < 1 { throw ValidationError("--side must be positive, got \(side)") }
        if channels < 1 { throw ValidationError("--channels must be positive, got \(channels)") }
        if classes < 2 { throw ValidationError("--classes must be at least 2, got \(classes)") }
    }

    func run() throws {
        if let name = describe {
            try describeModel(name)
            return
        }
        print(pad("model", 18) + pad("parameters", 14, right: true) + pad("side", 6, right: true)
              + pad("GFLOPs/image", 14, right: true) + "  recipe")
        for spec in ModelZoo.all {
            let network = try ModelZoo.make(spec.name, inputChannels: channels, classes: classes)
            let s = side ?? spec.side
            _ = try describeOrFail(network, side: s)
            let recipe = spec.recipe
            print(pad(spec.name, 18) + pad(grouped(network.parameterCount), 14, right: true) + pad("\(s)", 6, right: true)
                  + pad(String(format: "%.3f", Double(network.flopsPerImage(side: s)) / 1e9), 14, right: true)
                  + "  sgd lr \(recipe.learningRate) batch \(recipe.batchSize), \(recipe.epochs) epochs")
        }
    }

    private func describeModel(_ name: String) throws {
        let network = try ModelZoo.make(name, inputChannels: channels, classes: classes)
        let s = try side ?? ModelZoo.spec(name).side
        let layers = try describeOrFail(network, side: s)
        print("\(name) at \(channels)×\(s)×\(s): \(grouped(network.parameterCount)) parameters, "
              + String(format: "%.3f", Double(network.flopsPerImage(side: s)) / 1e9) + " GFLOPs per image")
        print(pad("layer", 22) + pad("kind", 30) + pad("output", 16) + pad("parameters", 12, right: true)
              + pad("MFLOPs", 10, right: true))
        for layer in layers {
            let output = layer.outputShape.dims.dropFirst().map(String.init).joined(separator: "×")
            print(pad(layer.path, 22) + pad(layer.summary, 30) + pad(output, 16)
                  + pad(grouped(layer.parameterCount), 12, right: true)
                  + pad(String(format: "%.1f", Double(layer.flops) / 1e6), 10, right: true))
        }
    }

    private func describeOrFail(_ network: Network, side: Int) throws -> [Network.LayerInfo] {
        do {
            return try network.describe(side: side)
        } catch let error as ShapeError {
            throw ValidationError("\(network.name) cannot take side \(side): \(error)")
        }
    }
}

/// 1234567 -> "1,234,567"
func grouped(_ n: Int) -> String {
    let digits = String(n)
    var out = ""
    for (i, c) in digits.enumerated() {
        if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
        out.append(c)
    }
    return out
}

func pad(_ s: String, _ width: Int, right: Bool = false) -> String {
    let fill = String(repeating: " ", count: max(0, width - s.count))
    return right ? fill + s + " " : s + fill
}

extension ModelZoo {
    /// The model called `name`, or a usage error listing the known ones (for `validate()`).
    static func validated(_ name: String) throws -> ModelSpec {
        do { return try spec(name) } catch { throw ValidationError("\(error)") }
    }
}
