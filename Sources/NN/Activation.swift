import Foundation

/// Elementwise activation: ReLU, Sigmoid, Tanh or GELU (exact, erf form).
public final class Activation: Layer {
    public enum Kind: String, Sendable {
        case relu = "ReLU", sigmoid = "Sigmoid", tanh = "Tanh", gelu = "GELU"
    }

    public let kind: Kind
    private var output: Tensor?, gradInput: Tensor?

    public init(_ kind: Kind) { self.kind = kind }

    public var summary: String { kind.rawValue }
    public func outputShape(for input: Shape) throws -> Shape { input }
    public func flops(for input: Shape) -> Int { input.count }

    public func forward(_ input: Tensor, mode: Mode) -> Tensor {
        let y = Tensor.reuse(&output, shape: input.shape)
        let x = input.data, out = y.data, n = input.count
        switch kind {
        case .relu: for i in 0..<n { out[i] = max(x[i], 0) }
        case .sigmoid: for i in 0..<n { out[i] = 1 / (1 + exp(-x[i])) }
        case .tanh: for i in 0..<n { out[i] = tanh(x[i]) }
        case .gelu: for i in 0..<n { out[i] = 0.5 * x[i] * (1 + erf(x[i] * Real(0.5.squareRoot()))) }
        }
        return y
    }

    /// Sigmoid and Tanh differentiate through their output, ReLU and GELU through their input.
    public func backward(_ input: Tensor, _ gradOutput: Tensor) -> Tensor {
        let dx = Tensor.reuse(&gradInput, shape: input.shape)
        let x = input.data, dy = gradOutput.data, g = dx.data, n = input.count
        switch kind {
        case .relu:
            for i in 0..<n { g[i] = x[i] > 0 ? dy[i] : 0 }
        case .sigmoid:
            let y = output!.data
            for i in 0..<n { g[i] = dy[i] * y[i] * (1 - y[i]) }
        case .tanh:
            let y = output!.data
            for i in 0..<n { g[i] = dy[i] * (1 - y[i] * y[i]) }
        case .gelu:
            let invSqrt2 = Real(0.5.squareRoot()), invSqrt2Pi = Real(1 / (2 * Double.pi).squareRoot())
            for i in 0..<n {
                let cdf = 0.5 * (1 + erf(x[i] * invSqrt2))
                let pdf = invSqrt2Pi * exp(-0.5 * x[i] * x[i])
                g[i] = dy[i] * (cdf + x[i] * pdf)
            }
        }
        return dx
    }
}
