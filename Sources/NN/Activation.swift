import CKernels
import Foundation

/// Elementwise activation, as PyTorch defines each: ReLU, Sigmoid, Tanh, GELU (exact, erf
/// form), and MobileNetV3's and EfficientNet's ReLU6 = min(max(x, 0), 6), Hardsigmoid =
/// ReLU6(x + 3) / 6, Hardswish = x · Hardsigmoid(x), SiLU = x · sigmoid(x).
public final class Activation: Layer {
    public enum Kind: String, Sendable, CaseIterable {
        case relu = "ReLU", sigmoid = "Sigmoid", tanh = "Tanh", gelu = "GELU"
        case relu6 = "ReLU6", hardsigmoid = "Hardsigmoid", hardswish = "Hardswish", silu = "SiLU"
    }

    public let kind: Kind
    private var output: Tensor?
    /// Set by `Network` for a ReLU that the layer before it applies (`BatchNorm.fusedReLU`,
    /// `Conv2d.fusedReLU`): forward and backward then hand their argument on unchanged.
    public internal(set) var isFusedIntoLayerBefore = false
    /// Set by `Network` for a ReLU or ReLU6 that alone reads its input, the output of an
    /// `OverwritableOutput` layer (PyTorch's `inplace=True`): forward overwrites the input,
    /// and backward masks by the overwritten values, which are positive (and below 6)
    /// exactly where the input was. One activation-sized buffer fewer.
    public internal(set) var writesInPlace = false

    public init(_ kind: Kind) { self.kind = kind }

    public var summary: String { kind.rawValue }
    public func outputShape(for input: Shape) throws -> Shape { input }
    public func flops(for input: Shape) -> Int { input.count }

    /// Elementwise: any layout, kept.
    public func reads(_ layout: ActivationLayout, shape: Shape) -> Bool { true }

    public func forward(_ input: Tensor, mode: Mode) -> Tensor {
        if isFusedIntoLayerBefore { return input }
        let y = writesInPlace ? input : Tensor.reuse(&output, shape: input.shape, layout: input.layout)
        let pass = Elementwise(kind: kind, x: input.data, y: y.data)
        Parallel.forEach(input.count, grain: Parallel.grain(work: 1), pass) { Parallel.arguments($0, as: Elementwise.self).forward($1..<$2) }
        return y
    }

    /// Sigmoid and Tanh differentiate through their output, the others through their input.
    /// At the kinks the derivative is PyTorch's: ReLU 0 at 0, ReLU6 and Hardsigmoid 0 at the
    /// ends of their ramps, Hardswish x/3 + 1/2 inside [−3, 3].
    public func backward(_ input: Tensor, _ gradOutput: Tensor) -> Tensor {
        if isFusedIntoLayerBefore { return gradOutput }
        let dx = Workspace.tensor(input.shape, layout: input.layout)
        let pass = Elementwise(kind: kind, x: input.data, y: output?.data, dy: gradOutput.data, dx: dx.data)
        Parallel.forEach(input.count, grain: Parallel.grain(work: 1), pass) { Parallel.arguments($0, as: Elementwise.self).backward($1..<$2) }
        return dx
    }

    /// y = max(y, 0) in place, as the ReLU layer computes it: for a layer that applies it itself.
    static func applyReLU(_ y: Tensor) {
        let pass = Elementwise(kind: .relu, x: y.data, y: y.data)
        Parallel.forEach(y.count, grain: Parallel.grain(work: 1), pass) { Parallel.arguments($0, as: Elementwise.self).forward($1..<$2) }
    }

    /// ReLU's input gradient from its output `y` (positive exactly where its input was), for
    /// a layer that applied the ReLU itself; `dx` may be `y`.
    static func reluGradient(output y: Tensor, _ gradOutput: Tensor, into dx: Tensor) {
        let pass = Elementwise(kind: .relu, x: y.data, y: nil, dy: gradOutput.data, dx: dx.data)
        Parallel.forEach(y.count, grain: Parallel.grain(work: 1), pass) { Parallel.arguments($0, as: Elementwise.self).backward($1..<$2) }
    }
}

/// One activation pass over a range of elements.
private struct Elementwise {
    typealias Kind = Activation.Kind
    let kind: Kind
    let x: UnsafeMutablePointer<Real>, y: UnsafeMutablePointer<Real>?
    var dy: UnsafeMutablePointer<Real>? = nil, dx: UnsafeMutablePointer<Real>? = nil

    func forward(_ range: Range<Int>) {
        let out = y!
        #if !CNN_FLOAT64
        // libm's expf and erff keep Swift's loops scalar: the ones built on them run vectorized in C.
        let (start, count) = (range.lowerBound, range.count)
        switch kind {
        case .sigmoid: return cnn_sigmoid_f32(x + start, out + start, count)
        case .silu: return cnn_silu_f32(x + start, out + start, count)
        case .gelu: return cnn_gelu_f32(x + start, out + start, count)
        default: break
        }
        #endif
        switch kind {
        case .relu: for i in range { out[i] = max(x[i], 0) }
        case .sigmoid: for i in range { out[i] = 1 / (1 + exp(-x[i])) }
        case .tanh: for i in range { out[i] = tanh(x[i]) }
        case .gelu: for i in range { out[i] = 0.5 * x[i] * (1 + erf(x[i] * Real(0.5.squareRoot()))) }
        case .relu6: for i in range { out[i] = min(max(x[i], 0), 6) }
        case .hardsigmoid: for i in range { out[i] = min(max(x[i] + 3, 0), 6) / 6 }
        case .hardswish: for i in range { out[i] = x[i] * min(max(x[i] + 3, 0), 6) / 6 }
        case .silu: for i in range { out[i] = x[i] / (1 + exp(-x[i])) }
        }
    }

    /// The selections load dy before choosing, so that the loops vectorize (a load under a
    /// condition keeps them scalar: ReLU's backward was 12× its forward's time).
    func backward(_ range: Range<Int>) {
        let dy = dy!, g = dx!
        #if !CNN_FLOAT64
        let (start, count) = (range.lowerBound, range.count)
        switch kind {
        case .silu: return cnn_silu_backward_f32(x + start, dy + start, g + start, count)
        case .gelu: return cnn_gelu_backward_f32(x + start, dy + start, g + start, count)
        default: break
        }
        #endif
        switch kind {
        case .relu:
            for i in range {
                let d = dy[i]
                g[i] = x[i] > 0 ? d : 0
            }
        case .sigmoid:
            let y = y!
            for i in range { g[i] = dy[i] * y[i] * (1 - y[i]) }
        case .tanh:
            let y = y!
            for i in range { g[i] = dy[i] * (1 - y[i] * y[i]) }
        case .gelu:
            let invSqrt2 = Real(0.5.squareRoot()), invSqrt2Pi = Real(1 / (2 * Double.pi).squareRoot())
            for i in range {
                let cdf = 0.5 * (1 + erf(x[i] * invSqrt2))
                let pdf = invSqrt2Pi * exp(-0.5 * x[i] * x[i])
                g[i] = dy[i] * (cdf + x[i] * pdf)
            }
        case .relu6:
            for i in range {
                let d = dy[i], v = x[i]
                g[i] = v > 0 && v < 6 ? d : 0
            }
        case .hardsigmoid:
            for i in range {
                let d = dy[i] / 6, v = x[i]
                g[i] = v > -3 && v < 3 ? d : 0
            }
        case .hardswish:
            for i in range { g[i] = x[i] < -3 ? 0 : x[i] > 3 ? dy[i] : dy[i] * (x[i] / 3 + 0.5) }
        case .silu:
            for i in range {
                let s = 1 / (1 + exp(-x[i]))
                g[i] = dy[i] * s * (1 + x[i] * (1 - s))
            }
        }
    }
}
