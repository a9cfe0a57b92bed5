import DNNL
import NN

/// The forward-error bound of a whole model in this build's precision, derived from its
/// depth instead of chosen.
///
/// A dot product of length K computed in floating point, in any order (any BLAS kernel, any
/// thread count), is within γ_K ≈ K·u of the exact one relative to Σ|aᵢbᵢ| (Higham,
/// "Accuracy and Stability of Numerical Algorithms", Thm. 3.1); rounding the golden
/// parameters to this precision adds one more u per weighted layer. To first order the
/// local errors of successive layers add, so the logits are within u·Σ Kₗ relative, where
/// the sum runs over the layers of the longest path from input to logits (branches of a
/// concatenation or a residual block run side by side: the longest one counts). The
/// assumption behind "relative" is that each layer passes relative errors on without
/// amplifying them. That fails where a training-mode batch norm normalizes a handful of
/// values (the last stages of deep networks at small sides and batches): subtracting their
/// mean cancels, and dividing by a small σ amplifies the error. So the golden tests pair
/// this bound with the conditioning measured at the golden parameters
/// (`perturbByRoundingSteps`) and hold each value to the larger of the two.
enum RoundingBound {
    /// Unit roundoff of `Real`: 2⁻²⁴ for float32, 2⁻⁵³ for float64.
    static let unitRoundoff = Double(Real.ulpOfOne) / 2

    /// u·Σ Kₗ over the longest path of `network` for one input of side `side` and `batch` images.
    static func forward(_ network: Network, side: Int, batch: Int) throws -> Double {
        let input = Shape(batch, network.inputChannels, side, side)
        return unitRoundoff * Double(try roundingSteps(network.root, input).steps)
    }

    /// The rounding steps along the longest path through `layer` (the K of each
    /// accumulation, plus one per elementwise operation), and the layer's output shape.
    static func roundingSteps(_ layer: any Layer, _ input: Shape) throws -> (steps: Int, output: Shape) {
        let output = try layer.outputShape(for: input)
        switch layer {
        case let sequential as Sequential:
            var shape = input, steps = 0
            for child in sequential.children {
                let inner = try roundingSteps(child.layer, shape)
                steps += inner.steps
                shape = inner.output
            }
            return (steps, output)
        case is Concat:
            return (try layer.children.map { try roundingSteps($0.layer, input).steps }.max() ?? 0, output)
        case is Residual, is ChannelScale:
            // The longest branch, then the sum (or product) of the two.
            return (try layer.children.map { try roundingSteps($0.layer, input).steps }.max()! + 1, output)
        case let conv as Conv2d:
            return (convolutionSteps(conv), output)
        case let linear as Linear:
            return (linear.inFeatures + 2, output)
        case let pool as Pool2d:
            return (pool.kind == .average ? pool.window.taps : 0, output)
        case is GlobalAvgPool:
            return (input[2] * input[3], output)
        case is BatchNorm:
            // Statistics are summed in float64; then x·scale + shift, with scale and shift
            // rounded to this precision.
            return (4, output)
        case is Activation:
            return (1, output)
        default:
            // Flatten, dropout at probability 0, identity: no arithmetic.
            return (0, output)
        }
    }
}

extension RoundingBound {
    /// A convolution's rounding steps. Direct: each output is a dot product over in-channels
    /// × kernel, plus the bias and the weight's own rounding to this precision. Winograd
    /// (`WinogradF4x3`): γ_{C+22} on its magnitude M, plus the weight's rounding, and M is up
    /// to `uniformAmplification` (62.7) times direct's Σ|w·x| where a tile's values are of one
    /// size (the relative terms this bound counts in).
    static func convolutionSteps(_ conv: Conv2d) -> Int {
        guard conv.ranWinograd else { return conv.inChannels / conv.groups * conv.window.taps + 2 }
        let roundings = Double(conv.inChannels + WinogradF4x3.transformRoundings + 1)
        return Int((WinogradF4x3.uniformAmplification * roundings).rounded(.up))
    }
}

// MARK: - Conditioning

extension RoundingBound {
    /// Per parameter key: the rounding steps of the layer that owns it, Kₗ — the relative
    /// size, in units of u, of the backward error of that layer's rounding. Read from a
    /// network that has run (a convolution's steps depend on the algorithm it ran).
    static func parameterSteps(_ network: Network) -> [String: Int] {
        var steps: [ObjectIdentifier: Int] = [:]
        func visit(_ layer: any Layer) {
            let k: Int
            switch layer {
            case let conv as Conv2d: k = convolutionSteps(conv)
            case let linear as Linear: k = linear.inFeatures + 2
            case is BatchNorm: k = 4
            default: k = 2
            }
            for p in layer.parameters { steps[ObjectIdentifier(p)] = k }
            for child in layer.children { visit(child.layer) }
        }
        visit(network.root)
        return Dictionary(uniqueKeysWithValues: network.parameters.map { ($0.key, steps[ObjectIdentifier($0.parameter)]!) })
    }

    /// Multiplies every parameter of `network` by 1 ± √Kₗ·u (signs from `seed`), Kₗ its
    /// layer's rounding steps in `steps` (`parameterSteps` of the network whose rounding it
    /// stands for): the perturbation that the layers' own rounding amounts to.
    ///
    /// A dot product of length K computed in floating point is the exact dot product of
    /// weights each perturbed by at most γ_K ≈ K·u relative (Higham, Thm. 3.1's backward
    /// form), and with rounding errors that are independent and of mean zero, by λ√K·u with
    /// probability at least 1 − 2·exp(−λ²/2) (Higham & Mary 2019); the golden parameters'
    /// rounding to this precision is part of it. So the change this perturbation makes to
    /// the logits, gradients and statistics measures how far this build's rounding moves
    /// them at these parameters — including the amplification that the depth bound leaves
    /// out (a late training-mode batch norm that normalizes a handful of values divides
    /// their rounding errors by a small σ). The caller multiplies it by λ.
    static func perturbByRoundingSteps(_ network: Network, steps: [String: Int], seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        for (key, p) in network.parameters {
            let size = Real(Double(steps[key]!).squareRoot() * unitRoundoff)
            for i in 0..<p.value.count {
                p.value.data[i] *= rng.next() & 1 == 0 ? 1 + size : 1 - size
            }
        }
    }
}
