/// Dropout in training: each unit is zeroed with probability `probability` and the rest scaled
/// by 1/(1−p); the unit is an element (Dropout), a whole feature map (Dropout2d) or a whole
/// example (stochastic depth, torchvision's `StochasticDepth` in "row" mode, on a residual
/// branch). Evaluation, and p = 0, pass the input through.
public final class Dropout: Layer {
    /// What one random draw keeps or drops.
    public enum Granularity: Sendable, CaseIterable {
        case element, channel, example
    }

    public var probability: Real
    public let granularity: Granularity
    public var generator: SeededGenerator

    private var output: Tensor?, mask: Tensor?
    /// Whether the last forward applied a mask (training with p > 0).
    private var masked = false

    public var buffers: [Buffer] {
        [Buffer("generator", .generator(get: { [unowned self] in generator.state },
                                        set: { [unowned self] in generator = SeededGenerator(state: $0) }))]
    }

    public init(_ probability: Real, granularity: Granularity = .element, seed: UInt64 = 0) {
        precondition(probability >= 0 && probability < 1, "dropout probability \(probability) outside [0, 1)")
        self.probability = probability
        self.granularity = granularity
        generator = SeededGenerator(seed: seed)
    }

    public var summary: String {
        switch granularity {
        case .element: "Dropout(p=\(probability))"
        case .channel: "Dropout2d(p=\(probability))"
        case .example: "StochasticDepth(p=\(probability), row)"
        }
    }
    public func outputShape(for input: Shape) throws -> Shape {
        if granularity == .channel && input.rank != 4 { throw ShapeError(layer: summary, "expects N×C×H×W input, got \(input)") }
        return input
    }
    public func flops(for input: Shape) -> Int { 0 }

    public func forward(_ input: Tensor, mode: Mode) -> Tensor {
        masked = mode == .training && probability > 0
        guard masked else { return input }
        let y = Tensor.reuse(&output, shape: input.shape)
        let m = Tensor.reuse(&mask, shape: input.shape)
        let keep = 1 - probability, scale = 1 / keep
        let group = switch granularity {
        case .element: 1
        case .channel: input.shape[2] * input.shape[3]
        case .example: input.count / input.shape[0]
        }
        var i = 0
        while i < input.count {
            let v: Real = generator.nextUnit() < keep ? scale : 0
            m.data.advanced(by: i).update(repeating: v, count: group)
            i += group
        }
        for j in 0..<input.count { y.data[j] = input.data[j] * m.data[j] }
        return y
    }

    public func backward(_ input: Tensor, _ gradOutput: Tensor) -> Tensor {
        guard masked else { return gradOutput }
        let dx = Workspace.tensor(input.shape)
        let m = mask!.data
        for j in 0..<input.count { dx.data[j] = gradOutput.data[j] * m[j] }
        return dx
    }
}
