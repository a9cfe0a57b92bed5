import Foundation
import HDF5
import NN
import XCTest

/// Every case of packt-layers.h5 (the Packt chapter's convolutions and activations) against
/// our layers, within bounds derived from the arithmetic.
///
/// Convolutions are linear in each operand: each value within γ_K times the same layer run
/// on absolute values (`checkMultilinear`); activations and the channel scale within a few
/// roundings at the tensor's scale. The bounds and the golden inputs' float32 storage are
/// explained in `Rounding`.
final class PacktLayerGoldenTests: XCTestCase {
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
            try load(conv.weight, from: g, "weight", absolute: absolute)
            if let bias = conv.bias { try load(bias, from: g, "bias", absolute: absolute) }
            return conv
        }
        let conv = try make(absolute: false), magnitude = try make(absolute: true)
        let outputShape = try conv.outputShape(for: x.shape), n = x.shape[0], outPlane = outputShape[2] * outputShape[3]
        try checkMultilinear(conv, magnitude: magnitude, g, name,
                             accumulation: (forward: x.shape[1] / groups * kh * kw + 1, inputGradient: weightShape[0] / groups * kh * kw,
                                            weightGradient: n * outPlane + 1),
                             weight: (conv.weight, magnitude.weight),
                             bias: conv.bias.map { ($0, magnitude.bias!, n * outPlane) })
    }

    private func checkTransposedConvolution(_ g: HDF5Group, _ name: String) throws {
        let kernel = Int(try g.intAttribute("kernel")), stride = Int(try g.intAttribute("stride"))
        let padding = Int(try g.intAttribute("padding")), outputPadding = Int(try g.intAttribute("output_padding"))
        let groups = Int(try g.intAttribute("groups"))
        let weightShape = try g.dataset("weight").shape, x = try g.tensor("x")
        func make(absolute: Bool) throws -> ConvTranspose2d {
            let conv = ConvTranspose2d(weightShape[0], weightShape[1] * groups, kernel: kernel, stride: stride, padding: padding,
                                       outputPadding: outputPadding, groups: groups)
            try load(conv.weight, from: g, "weight", absolute: absolute)
            try load(conv.bias!, from: g, "bias", absolute: absolute)
            return conv
        }
        let conv = try make(absolute: false), magnitude = try make(absolute: true)
        let taps = kernel * kernel, n = x.shape[0], plane = x.shape[2] * x.shape[3]
        let outputShape = try conv.outputShape(for: x.shape)
        try checkMultilinear(conv, magnitude: magnitude, g, name,
                             accumulation: (forward: weightShape[0] / groups * taps + 1, inputGradient: weightShape[1] * taps,
                                            weightGradient: n * plane + 1),
                             weight: (conv.weight, magnitude.weight),
                             bias: (conv.bias!, magnitude.bias!, n * outputShape[2] * outputShape[3]))
    }

    // MARK: - Elementwise

    /// y = x·s is one rounding, dx = dy·s plus the gate's part two, ds = Σ_HW dy·x is summed
    /// in float64: held to the elementwise bound.
    private func checkChannelScale(_ g: HDF5Group, _ name: String) throws {
        let gate = FixedOutput(try g.tensor("scale"))
        let layer = ChannelScale(gate: gate), x = try g.tensor("x")
        assertClose(layer.forward(x, mode: .training), try g.doubles("y"), within: Rounding.elementwiseTolerance, "\(name) y")
        assertClose(layer.backward(x, try g.tensor("dy")), try g.doubles("dx"), within: Rounding.elementwiseTolerance, "\(name) dx")
        assertClose(gate.receivedGradient!, try g.doubles("dscale"), within: Rounding.elementwiseTolerance, "\(name) dscale")
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
