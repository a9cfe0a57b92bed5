import Foundation
import HDF5
import NN
import XCTest

/// What the golden layer tests hold each value to. Two things separate our result from the
/// file's expected one:
/// - our arithmetic, with the unit roundoff `u` of `Real`;
/// - the file's inputs: PyTorch computed the expected values in float64 from inputs that were
///   then stored rounded to float32 (so the expected max of a pooling window is not exactly the
///   stored maximum, but within float32's half ulp of it). Every stored input is within
///   `inputRounding` relative of what PyTorch used. PyTorch's own float64 rounding adds
///   `goldenArithmetic` on the same terms as ours.
enum Rounding {
    /// Unit roundoff of this build's `Real`, of float64 (PyTorch's arithmetic for the golden
    /// values) and of float32 (the golden inputs' storage).
    static let u = Double(Real.ulpOfOne) / 2, goldenArithmetic = Double.ulpOfOne / 2
    static let inputRounding = Double(Float.ulpOfOne) / 2

    /// The allowed error of a sum of K products of two stored operands: our γ_K and
    /// PyTorch's on Σ|aᵢbᵢ|, and 2·`inputRounding` for both factors' storage. A sum of K
    /// products computed in floating point, in any order (any BLAS kernel, any thread count),
    /// is within γ_K·Σ|aᵢbᵢ| of the exact one, γ_K = K·u / (1 − K·u) (Higham, "Accuracy and
    /// Stability of Numerical Algorithms", Thm. 3.1).
    static func gamma(_ k: Int) -> Double {
        func gamma(_ k: Int, _ u: Double) -> Double { Double(k) * u / (1 - Double(k) * u) }
        return gamma(k, u) + gamma(k, goldenArithmetic) + 2 * inputRounding
    }

    /// Activations: each output is a few operations on one input (libm's expf, tanhf, erff
    /// within 1 ulp), at most ~10 roundings of u each, and the input's storage moves it by
    /// |x·f′(x)|·inputRounding, a few times inputRounding at the tensor's scale for these
    /// functions; judged at the tensor's scale as in `relativeError` (a derivative that
    /// crosses zero has no relative accuracy).
    static let elementwiseTolerance = 16 * (u + inputRounding)

    /// Whether to print each check's worst error as a share of its bound (`GOLDEN_REPORT=1`),
    /// for the tables of measured errors against bounds.
    static let report = ProcessInfo.processInfo.environment["GOLDEN_REPORT"] == "1"
}

/// Asserts |actual − expected| ≤ allowed, element by element (plus u·|expected|, the one
/// rounding of a result whose terms are all exact), and returns the worst error/allowed.
@discardableResult
func assertWithin(_ actual: Tensor, _ expected: [Double], allowed: [Double], _ what: String,
                  file: StaticString = #filePath, line: UInt = #line) -> Double {
    XCTAssertEqual(actual.count, expected.count, "\(what): size", file: file, line: line)
    XCTAssertEqual(allowed.count, expected.count, "\(what): bounds", file: file, line: line)
    var worst = 0.0, worstAt = 0
    for i in 0..<min(actual.count, expected.count, allowed.count) {
        let error = abs(Double(actual.data[i]) - expected[i])
        let share = error == 0 ? 0 : error / (allowed[i] + Rounding.u * abs(expected[i]))
        if !(share <= worst) { (worst, worstAt) = (share.isNaN ? .infinity : share, i) }
    }
    XCTAssertLessThanOrEqual(worst, 1, "\(what): element \(worstAt) is \(worst)× its rounding bound", file: file, line: line)
    if Rounding.report { print(String(format: "golden-report %@ %.3g", what, worst)) }
    return worst
}

func absolute(_ t: Tensor) -> Tensor { Tensor(shape: t.shape, values: t.array.map { abs($0) }) }

/// A parameter loaded from a golden case, or its absolute values (for a magnitude run).
func load(_ p: Parameter, from g: HDF5Group, _ key: String, absolute takeAbsolute: Bool = false) throws {
    let values = try g.tensor(key)
    p.value.copy(from: takeAbsolute ? absolute(values) : values)
}

/// Checks an activation's y and dx within `Rounding.elementwiseTolerance`.
func checkActivation(_ kind: Activation.Kind, _ g: HDF5Group, _ name: String) throws {
    let layer = Activation(kind), x = try g.tensor("x")
    assertClose(layer.forward(x, mode: .training), try g.doubles("y"), within: Rounding.elementwiseTolerance, "\(name) y")
    assertClose(layer.backward(x, try g.tensor("dy")), try g.doubles("dx"), within: Rounding.elementwiseTolerance, "\(name) dx")
}

/// Checks y, dx and the parameter gradients of a layer that is linear in its input and in each
/// parameter (convolutions, linear layers, pooling). The bound of a sum of K products is
/// γ_K·Σ|aᵢbᵢ|, and Σ|aᵢbᵢ| of every output element is the same layer run on absolute values:
/// `magnitude` is a copy of `layer` holding |W| and |bias|, run on |x| and |dy| (on x itself
/// where the layer selects by its input, as max pooling does, and passes |dy| on).
/// `accumulation` gives each result's K; a bias gradient sums `biasTerms` values of dy.
func checkMultilinear(_ layer: any Layer, magnitude: any Layer, _ g: HDF5Group, _ name: String,
                      accumulation: (forward: Int, inputGradient: Int, weightGradient: Int),
                      selectsByInput: Bool = false,
                      weight: (value: Parameter, magnitude: Parameter)? = nil,
                      bias: (value: Parameter, magnitude: Parameter, terms: Int)? = nil) throws {
    let x = try g.tensor("x"), dy = try g.tensor("dy")
    let magnitudeInput = selectsByInput ? x : absolute(x)
    func allowed(_ bound: Tensor, _ k: Int) -> [Double] {
        let gamma = Rounding.gamma(k)
        // `bound` was computed in floating point from non-negative terms: within (1 + γ) of Σ|aᵢbᵢ|.
        // (Max pooling's is the selected input itself, of either sign.)
        return bound.array.map { gamma * abs(Double($0)) * (1 + gamma) }
    }
    let y = layer.forward(x, mode: .training)
    let yBound = magnitude.forward(magnitudeInput, mode: .training)
    assertWithin(y, try g.doubles("y"), allowed: allowed(yBound, accumulation.forward), "\(name) y")

    let dx = layer.backward(x, dy)
    let dxBound = magnitude.backward(magnitudeInput, absolute(dy))
    assertWithin(dx, try g.doubles("dx"), allowed: allowed(dxBound, accumulation.inputGradient), "\(name) dx")
    if let weight {
        assertWithin(weight.value.grad, try g.doubles("dweight"),
                     allowed: allowed(weight.magnitude.grad, accumulation.weightGradient), "\(name) dweight")
    }
    if let bias {
        // Σ dy over the batch and plane in any order, added to a zero gradient.
        assertWithin(bias.value.grad, try g.doubles("dbias"), allowed: allowed(bias.magnitude.grad, bias.terms + 1), "\(name) dbias")
    }
}

// MARK: - Running error bounds

/// A value computed in float64 beside first-order bounds on how far evaluating the same
/// formula can move it (running error analysis, Higham §3.3): `rounding` in units of the
/// working precision's u, and `inputs` in units of `Rounding.inputRounding`, from the golden
/// inputs' storage. Each operation is charged the magnitudes of its operands rather than of
/// its result, so evaluations of the same formula in another order (ours folds batch norm's
/// mean into a shift, PyTorch subtracts it first) stay within the bound.
struct Bounded {
    var value: Double
    var rounding: Double, inputs: Double

    init(_ value: Double, rounding: Double, inputs: Double) { (self.value, self.rounding, self.inputs) = (value, rounding, inputs) }
    /// A value every build and PyTorch hold exactly (a count, 1).
    init(exact value: Double) { self.init(value, rounding: 0, inputs: 0) }
    /// An input stored in the golden file: exact for us, within float32's rounding of PyTorch's.
    init(stored value: Double) { self.init(value, rounding: 0, inputs: abs(value)) }
    /// A constant our build rounds to `Real` (a learning rate, eps, momentum).
    static func rounded(_ value: Double) -> Bounded { Bounded(value, rounding: abs(value), inputs: 0) }

    /// The error this bounds: our rounding, PyTorch's (in float64) and the inputs' storage.
    var allowedError: Double {
        (Rounding.u + Rounding.goldenArithmetic) * rounding + Rounding.inputRounding * inputs
    }

    static func + (a: Bounded, b: Bounded) -> Bounded {
        Bounded(a.value + b.value, rounding: a.rounding + b.rounding + abs(a.value) + abs(b.value), inputs: a.inputs + b.inputs)
    }
    static func - (a: Bounded, b: Bounded) -> Bounded { a + -b }
    static prefix func - (a: Bounded) -> Bounded { Bounded(-a.value, rounding: a.rounding, inputs: a.inputs) }
    static func * (a: Bounded, b: Bounded) -> Bounded {
        let product = a.value * b.value
        return Bounded(product, rounding: a.rounding * abs(b.value) + abs(a.value) * b.rounding + abs(product),
                       inputs: a.inputs * abs(b.value) + abs(a.value) * b.inputs)
    }
    static func / (a: Bounded, b: Bounded) -> Bounded {
        let quotient = a.value / b.value, q = abs(quotient), d = abs(b.value)
        return Bounded(quotient, rounding: (a.rounding + q * b.rounding) / d + q, inputs: (a.inputs + q * b.inputs) / d)
    }
    func squareRoot() -> Bounded {
        let root = value.squareRoot()
        return Bounded(root, rounding: rounding / (2 * root) + root, inputs: inputs / (2 * root))
    }
    /// libm's exp and log are within one ulp (2u) of the exact result.
    func exp() -> Bounded {
        let e = Foundation.exp(value)
        return Bounded(e, rounding: e * rounding + 2 * e, inputs: e * inputs)
    }
    func log() -> Bounded {
        let l = Foundation.log(value)
        return Bounded(l, rounding: rounding / abs(value) + 2 * abs(l), inputs: inputs / abs(value))
    }
    func power(_ n: Int) -> Bounded { (1..<max(n, 1)).reduce(self) { product, _ in product * self } }

    /// A sum of K terms in any order: within γ_{K−1}·Σ|tᵢ| of the exact sum of the computed terms.
    static func sum(_ terms: [Bounded]) -> Bounded {
        let k = Double(max(terms.count - 1, 1))
        return Bounded(terms.reduce(0) { $0 + $1.value }, rounding: terms.reduce(0) { $0 + $1.rounding + k * abs($1.value) },
                       inputs: terms.reduce(0) { $0 + $1.inputs })
    }
}
