import Foundation
import HDF5
import NN
import XCTest

/// Every case of packt-layers.h5 (the Packt chapter's convolutions and activations) against
/// our layers, within bounds derived from the arithmetic.
///
/// Convolutions: a sum of K products computed in floating point, in any order, is within
/// γ_K·Σ|aᵢbᵢ| of the exact one (γ_K = K·u / (1 − K·u), u = 2⁻²⁴ in float32, Higham Thm. 3.1).
/// The layer is multilinear, so Σ|aᵢbᵢ| for every output element is the same layer run on
/// absolute values: the bound is element by element, `γ_K · layer(|x|, |W|)`, and holds for
/// any BLAS kernel and thread count. Inputs and weights are float32 in the file, so nothing
/// else is rounded. The expected values carry float32 rounding of their own, as layers.h5's
/// do: the float64 build differs from them by up to 4.8e-8 relative (channel_scale's y = x·s,
/// a single product), one float32 rounding, so they are held to the same bound.
final class PacktLayerGoldenTests: XCTestCase {
    /// Unit roundoff of this build's `Real`, and of the golden values (float32's).
    private static let u = Double(Real.ulpOfOne) / 2, goldenU = Double(Float.ulpOfOne) / 2

    /// γ_K of our arithmetic plus that of the golden values'.
    private static func gamma(_ k: Int) -> Double {
        Double(k) * u / (1 - Double(k) * u) + Double(k) * goldenU / (1 - Double(k) * goldenU)
    }

    func testEveryPacktLayerCaseMatchesPyTorch() throws {
        for engine in ConvolutionEngine.available { try ConvolutionEngine.using(engine) { try checkEveryCase() } }
    }

    private func checkEveryCase() throws {
        let file = try Golden.open("packt-layers.h5")
        let cases = try file.root.memberNames()
        XCTAssertGreaterThanOrEqual(cases.count, 15, "packt-layers.h5 should hold every layer case")
        for name in cases {
            let group = try file.root.group(name)
            let op = try group.stringAttribute("op")
            switch op {
            case "conv2d_general": try checkConvolution(group, name)
            case "conv_transpose2d": try checkTransposedConvolution(group, name)
            case "relu6": try checkActivation(.relu6, group, name)
            case "hardswish": try checkActivation(.hardswish, group, name)
            case "hardsigmoid": try checkActivation(.hardsigmoid, group, name)
            case "silu": try checkActivation(.silu, group, name)
            case "channel_scale": try checkChannelScale(group, name)
            default: XCTFail("\(name): no test for op '\(op)'")
            }
        }
    }

    // MARK: - Convolutions

    private func pair(_ g: HDF5Group, _ key: String) throws -> (Int, Int) {
        let values = try g.doubleAttributes(key)
        return (Int(values[0]), Int(values[1]))
    }

    private func checkConvolution(_ g: HDF5Group, _ name: String) throws {
        let (kh, kw) = try pair(g, "kernel"), (sh, sw) = try pair(g, "stride")
        let (ph, pw) = try pair(g, "padding"), (dh, dw) = try pair(g, "dilation")
        let groups = Int(try g.intAttribute("groups")), hasBias = try g.intAttribute("bias") == 1
        let weightShape = try g.dataset("weight").shape, x = try g.tensor("x")
        let window = Window2D(height: .init(kernel: kh, stride: sh, padding: ph, dilation: dh),
                              width: .init(kernel: kw, stride: sw, padding: pw, dilation: dw))
        func make(absolute: Bool) throws -> Conv2d {
            let conv = Conv2d(x.shape[1], weightShape[0], window: window, groups: groups, bias: hasBias)
            try load(conv.weight, g, "weight", absolute: absolute)
            if let bias = conv.bias { try load(bias, g, "bias", absolute: absolute) }
            return conv
        }
        let conv = try make(absolute: false), magnitude = try make(absolute: true)
        let dy = try g.tensor("dy"), n = x.shape[0], outPlane = dy.shape[2] * dy.shape[3]
        let taps = kh * kw
        try checkMultilinear(conv, magnitude, g, name, x: x, dy: dy,
                             accumulation: (forward: x.shape[1] / groups * taps + 1, inputGradient: weightShape[0] / groups * taps,
                                            weightGradient: n * outPlane + 1),
                             bias: conv.bias, magnitudeBias: magnitude.bias, weight: conv.weight, magnitudeWeight: magnitude.weight)
    }

    private func checkTransposedConvolution(_ g: HDF5Group, _ name: String) throws {
        let kernel = Int(try g.intAttribute("kernel")), stride = Int(try g.intAttribute("stride"))
        let padding = Int(try g.intAttribute("padding")), outputPadding = Int(try g.intAttribute("output_padding"))
        let groups = Int(try g.intAttribute("groups"))
        let weightShape = try g.dataset("weight").shape, x = try g.tensor("x")
        func make(absolute: Bool) throws -> ConvTranspose2d {
            let conv = ConvTranspose2d(weightShape[0], weightShape[1] * groups, kernel: kernel, stride: stride, padding: padding,
                                       outputPadding: outputPadding, groups: groups)
            try load(conv.weight, g, "weight", absolute: absolute)
            try load(conv.bias!, g, "bias", absolute: absolute)
            return conv
        }
        let conv = try make(absolute: false), magnitude = try make(absolute: true)
        let taps = kernel * kernel, plane = x.shape[2] * x.shape[3]
        try checkMultilinear(conv, magnitude, g, name, x: x, dy: try g.tensor("dy"),
                             accumulation: (forward: weightShape[0] / groups * taps + 1, inputGradient: weightShape[1] * taps,
                                            weightGradient: x.shape[0] * plane + 1),
                             bias: conv.bias, magnitudeBias: magnitude.bias, weight: conv.weight, magnitudeWeight: magnitude.weight)
    }

    /// y, dx, dweight (and dbias) of a layer multilinear in (x, W), each element within
    /// γ_K of the same quantity computed on absolute values by `magnitude` (|W|, |bias|).
    private func checkMultilinear(_ layer: any Layer, _ magnitude: any Layer, _ g: HDF5Group, _ name: String,
                                  x: Tensor, dy: Tensor, accumulation: (forward: Int, inputGradient: Int, weightGradient: Int),
                                  bias: Parameter?, magnitudeBias: Parameter?, weight: Parameter, magnitudeWeight: Parameter) throws {
        let y = layer.forward(x, mode: .training)
        let yBound = magnitude.forward(absolute(x), mode: .training)
        assertWithin(y, try g.doubles("y"), bound: yBound, gamma: Self.gamma(accumulation.forward), "\(name) y")

        let dx = layer.backward(x, dy)
        let absDy = absolute(dy)
        let dxBound = magnitude.backward(absolute(x), absDy)
        assertWithin(dx, try g.doubles("dx"), bound: dxBound, gamma: Self.gamma(accumulation.inputGradient), "\(name) dx")
        assertWithin(weight.grad, try g.doubles("dweight"), bound: magnitudeWeight.grad,
                     gamma: Self.gamma(accumulation.weightGradient), "\(name) dweight")
        if let bias, let magnitudeBias {
            // Summed in float64 (as PyTorch's are), then rounded once to this precision.
            assertWithin(bias.grad, try g.doubles("dbias"), bound: magnitudeBias.grad,
                         gamma: Self.u + 2 * Double(dy.count) * Self.goldenU, "\(name) dbias")
        }
    }

    // MARK: - Elementwise

    /// Each output is a few operations on one input (libm's expf within 1 ulp): at most ~10
    /// roundings of u each on both sides, judged at the tensor's scale as in `relativeError`.
    private static let elementwiseTolerance = 16 * (u + goldenU)

    private func checkActivation(_ kind: Activation.Kind, _ g: HDF5Group, _ name: String) throws {
        let layer = Activation(kind), x = try g.tensor("x")
        assertClose(layer.forward(x, mode: .training), try g.doubles("y"), within: Self.elementwiseTolerance, "\(name) y")
        assertClose(layer.backward(x, try g.tensor("dy")), try g.doubles("dx"), within: Self.elementwiseTolerance, "\(name) dx")
    }

    /// y = x·s is one rounding, dx = dy·s plus the gate's part two, ds = Σ_HW dy·x is summed
    /// in float64: held to the elementwise bound.
    private func checkChannelScale(_ g: HDF5Group, _ name: String) throws {
        let gate = FixedOutput(try g.tensor("scale"))
        let layer = ChannelScale(gate: gate), x = try g.tensor("x")
        assertClose(layer.forward(x, mode: .training), try g.doubles("y"), within: Self.elementwiseTolerance, "\(name) y")
        assertClose(layer.backward(x, try g.tensor("dy")), try g.doubles("dx"), within: Self.elementwiseTolerance, "\(name) dx")
        assertClose(gate.receivedGradient!, try g.doubles("dscale"), within: Self.elementwiseTolerance, "\(name) dscale")
    }

    // MARK: - Helpers

    private func load(_ p: Parameter, _ g: HDF5Group, _ key: String, absolute takeAbsolute: Bool) throws {
        let values = try g.tensor(key)
        p.value.copy(from: takeAbsolute ? absolute(values) : values)
    }

    private func absolute(_ t: Tensor) -> Tensor { Tensor(shape: t.shape, values: t.array.map { abs($0) }) }

    /// |actual − expected| ≤ γ·bound, element by element. `bound` was itself computed in
    /// floating point from non-negative terms, so it is within (1 + γ) of the exact Σ|aᵢbᵢ|;
    /// u·|expected| allows the one rounding of a result whose terms are all exact.
    private func assertWithin(_ actual: Tensor, _ expected: [Double], bound: Tensor, gamma: Double, _ what: String,
                              file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.count, expected.count, "\(what): size", file: file, line: line)
        var worst = 0.0, worstAt = -1
        for i in 0..<min(actual.count, expected.count) {
            let error = abs(Double(actual.data[i]) - expected[i])
            let allowed = gamma * Double(bound.data[i]) * (1 + gamma) + Self.u * abs(expected[i])
            if error > allowed && (worstAt < 0 || error / allowed > worst) { worst = error / allowed; worstAt = i }
        }
        XCTAssertLessThan(worstAt, 0, "\(what): element \(worstAt) exceeds its rounding bound \(worst)×", file: file, line: line)
    }
}

/// A gate that returns a fixed scale and keeps the gradient it is given (tests ChannelScale alone).
private final class FixedOutput: Layer {
    let value: Tensor
    var receivedGradient: Tensor?
    private var gradInput: Tensor?

    init(_ value: Tensor) { self.value = value }
    var summary: String { "FixedOutput" }
    func outputShape(for input: Shape) throws -> Shape { value.shape }
    func flops(for input: Shape) -> Int { 0 }
    func forward(_ input: Tensor, mode: Mode) -> Tensor { value }
    func backward(_ input: Tensor, _ gradOutput: Tensor) -> Tensor {
        receivedGradient = Tensor(shape: gradOutput.shape, values: gradOutput.array)
        let dx = Tensor.reuse(&gradInput, shape: input.shape)
        dx.fill(0)
        return dx
    }
}
