import DNNL
import Foundation
import XCTest

/// Element-wise functions and their derivatives against Double formulas.
///
/// Tolerance: relu, clip, linear and hardswish are a few correctly rounded operations:
/// 4·2⁻²⁴·(|f| + |x|). tanh, sigmoid, GELU and swish go through oneDNN's polynomial exp,
/// tanh and erf, documented as accurate to a few ulp; we allow 64·2⁻²⁴·(|f| + |x| + 1)
/// (the +1 covers the absolute error of values near 0). bf16 outputs add 2⁻⁸·|value|.
final class EltwiseTests: DNNLTestCase {
    /// f(x) and f′(x) in Double.
    static func reference(_ function: EltwiseFunction, _ x: Double) -> (value: Double, derivative: Double) {
        let sigmoid = { (v: Double) in 1 / (1 + exp(-v)) }
        switch function {
        case .relu(let slope): return x > 0 ? (x, 1) : (Double(slope) * x, Double(slope))
        case .tanh: return (tanh(x), 1 - tanh(x) * tanh(x))
        case .sigmoid: return (sigmoid(x), sigmoid(x) * (1 - sigmoid(x)))
        case .clip(let low, let high):
            return (min(max(x, Double(low)), Double(high)), x > Double(low) && x < Double(high) ? 1 : 0)
        case .geluErf:
            let cdf = 0.5 * (1 + erf(x / 2.0.squareRoot()))
            return (x * cdf, cdf + x * exp(-x * x / 2) / (2 * Double.pi).squareRoot())
        case .geluTanh:
            let k = (2 / Double.pi).squareRoot(), t = tanh(k * (x + 0.044715 * x * x * x))
            return (0.5 * x * (1 + t), 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * 0.044715 * x * x))
        case .swish(let beta):
            let s = sigmoid(Double(beta) * x)
            return (x * s, s + Double(beta) * x * s * (1 - s))
        case .hardswish:
            return (x * min(max(x + 3, 0), 6) / 6, x < -3 ? 0 : x > 3 ? 1 : (2 * x + 3) / 6)
        case .linear(let scale, let shift): return (Double(scale) * x + Double(shift), Double(scale))
        }
    }

    static func isExact(_ function: EltwiseFunction) -> Bool {
        switch function {
        case .relu, .clip, .linear, .hardswish: return true
        default: return false
        }
    }

    static let functions: [EltwiseFunction] = [
        .relu, .relu(negativeSlope: 0.1), .tanh, .sigmoid, .relu6, .geluErf, .geluTanh, .silu, .hardswish,
        .linear(scale: 0.5, shift: -0.25),
    ]

    private func check(_ function: EltwiseFunction, _ dataType: DataType, fromDestination: Bool, seed: UInt64) throws {
        let what = "\(function) \(dataType)\(fromDestination ? " from destination" : "")"
        var rng = SplitMix64(seed: seed)
        // Random inputs plus the kinks of relu and ReLU6, where the derivative's convention
        // shows (hardswish's kinks are left out: see `EltwiseFunction.hardswish`).
        let x = representable(rng.values(2 * 3 * 4 * 5 - 2, -8, 8) + [0, 6], dataType)
        let dy = representable(rng.values(x.count), dataType)
        let layout = try MemoryDescriptor.activations(2, 3, 4, 5, dataType)
        let eltwise = try Eltwise(function, data: layout, backwardFromDestination: fromDestination)
        let (source, diffDestination, destination, diffSource) = (try upload(x, to: layout), try upload(dy, to: layout),
                                                                  Buffer(layout), Buffer(layout))
        try eltwise.forward(source: source.pointer, destination: destination.pointer)
        try eltwise.backward(data: fromDestination ? destination.pointer : source.pointer,
                             diffDestination: diffDestination.pointer, diffSource: diffSource.pointer)
        let slack = (Self.isExact(function) ? 4 : 64) * f32Roundoff
        let floor = Self.isExact(function) ? 0 : 1.0
        let storage = dataType == .bf16 ? bf16Roundoff : 0
        let expected = x.map { Self.reference(function, Double($0)) }
        assertClose(try download(destination), zip(x, expected).map { x, e in
            Expected(value: e.value, tolerance: slack * (abs(e.value) + abs(Double(x)) + floor) + storage * abs(e.value) * 1.01)
        }, "forward \(what)")
        assertClose(try download(diffSource), zip(dy, expected).map { dy, e in
            let dx = Double(dy) * e.derivative
            return Expected(value: dx, tolerance: slack * abs(Double(dy)) * (abs(e.derivative) + floor) + storage * abs(dx) * 1.01)
        }, "backward \(what)")
    }

    func testF32FunctionsAndDerivativesMatchTheFormulas() throws {
        for (i, function) in Self.functions.enumerated() { try check(function, .f32, fromDestination: false, seed: UInt64(i)) }
    }

    func testBF16FunctionsAndDerivativesMatchTheFormulas() throws {
        try skipUnlessBF16()
        for (i, function) in Self.functions.enumerated() { try check(function, .bf16, fromDestination: false, seed: UInt64(50 + i)) }
    }

    func testBackwardFromTheDestinationMatchesTheFormulas() throws {
        for (i, function) in Self.functions.enumerated() where function.canBackpropagateFromDestination {
            try check(function, .f32, fromDestination: true, seed: UInt64(100 + i))
        }
    }

    func testBackwardFromTheDestinationOfGELUIsRefused() throws {
        XCTAssertThrowsError(try Eltwise(.geluErf, data: MemoryDescriptor.activations(1, 1, 1, 1, .f32), backwardFromDestination: true)) {
            XCTAssertTrue("\($0)".contains("not possible"), "\($0)")
        }
    }
}
