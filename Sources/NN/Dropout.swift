/// Dropout in training: each element (or, for `channelwise`, each whole feature map as in
/// Dropout2d) is zeroed with probability `probability` and the rest scaled by 1/(1−p).
/// Evaluation, and p = 0, pass the input through.
public final class Dropout: Layer {
    public var probability: Real
    public let channelwise: Bool
    public var generator: SeededGenerator

    private var output: Tensor?, gradInput: Tensor?, mask: Tensor?
    /// Whether the last forward applied a mask (training with p > 0).
    private var masked = false

    public init(_ probability: Real, channelwise: Bool = false, seed: UInt64 = 0) {
        precondition(probability >= 0 && probability < 1, "dropout probability \(probability) outside [0, 1)")
        self.probability = probability
        self.channelwise = channelwise
        generator = SeededGenerator(seed: seed)
    }

    public var summary: String { channelwise ? "Dropout2d(p=\(probability))" : "Dropout(p=\(probability))" }
    public func outputShape(for input: Shape) throws -> Shape {
        if channelwise && input.rank != 4 { throw ShapeError(layer: summary, "expects N×C×H×W input, got \(input)") }
        return input
    }
    public func flops(for input: Shape) -> Int { 0 }

    public func forward(_ input: Tensor, mode: Mode) -> Tensor {
        masked = mode == .training && probability > 0
        guard masked else { return input }
        let y = Tensor.reuse(&output, shape: input.shape)
        let m = Tensor.reuse(&mask, shape: input.shape)
        let keep = 1 - probability, scale = 1 / keep
        let group = channelwise ? input.shape[2] * input.shape[3] : 1
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
        let dx = Tensor.reuse(&gradInput, shape: input.shape)
        let m = mask!.data
        for j in 0..<input.count { dx.data[j] = gradOutput.data[j] * m[j] }
        return dx
    }
}
