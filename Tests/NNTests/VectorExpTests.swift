import CKernels
import Foundation
import XCTest

/// The float32 activations built on the vectorized e^x and erf (Sources/CKernels), against the
/// same formulas in float64 with libm's exp and erf. The loader picks the AVX2 + FMA build or the baseline
/// by the CPU: both must hold these bounds.
final class VectorExpTests: XCTestCase {
    private let u = Double(Float.ulpOfOne) / 2  // float32's unit roundoff, 2^-24

    /// Every 4093rd bit pattern: about a million floats of every sign, exponent and class.
    private var sampledFloats: [Float] {
        stride(from: UInt64(0), to: UInt64(UInt32.max), by: 4093).map { Float(bitPattern: UInt32($0)) }
    }

    /// The polynomial's truncation is below 0.1 ulp; the reduced argument carries one rounding
    /// (at most 0.35 ulp of the result) and Horner's scheme about one ulp: 2 ulp in all. Results
    /// below float32's smallest normal are held to 2 ulp of the subnormals' spacing.
    func testExpIsWithinTwoUlpsEverywhereAndKeepsNaNInfinityAndZero() {
        let x = sampledFloats + [0, -0, 88.72, 88.73, 89, 1e30, .infinity, -87.3, -103, -104, -1e30, -.infinity, .nan]
        var y = [Float](repeating: 0, count: x.count)
        cnn_exp_f32(x, &y, x.count)
        assertWithinUlps(2, "exp", x, y, exact: Foundation.exp)
    }

    /// Each y within `ulps` of exact(x), in ulps of the exact value rounded to float32 (below
    /// the smallest normal, of the subnormals' spacing). NaN must stay NaN, and where the
    /// exact value rounds to ±∞ or 0, y must be exactly that, as libm's float functions give.
    private func assertWithinUlps(_ ulps: Double, _ name: String, _ x: [Float], _ y: [Float], exact: (Double) -> Double) {
        var worst = 0.0
        for (xi, yi) in zip(x, y) {
            if xi.isNaN { XCTAssertTrue(yi.isNaN, "\(name)(NaN)"); continue }
            let value = exact(Double(xi)), rounded = Float(value)
            if rounded.isInfinite || rounded == 0 {
                XCTAssertEqual(yi, rounded, "\(name)(\(xi)) must be \(rounded)")
                continue
            }
            let spacing = rounded.isNormal ? Double(rounded.ulp) : Double(Float.leastNonzeroMagnitude)
            let error = abs(Double(yi) - value) / spacing
            worst = max(worst, error)
            XCTAssertLessThanOrEqual(error, ulps, "\(name)(\(xi)): \(yi) against \(value)")
        }
        print("\(name): worst error \(worst) ulp over \(x.count) values")
    }

    private func inputs(seed: UInt64) -> [Float] {
        var state = seed
        return (0..<100_000).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Double(state >> 11) / Double(1 << 53) * 200 - 100)  // uniform in [-100, 100)
        } + [0, -0, 1e-30, -1e-30, 88, -88, 104, -104, 1e30, -1e30]
    }

    /// Below x = −88.7, e^−x overflows and s = sigmoid(x) is 0, as it is with expf, where the
    /// exact s is below float32's smallest normal: each value may be off by that times the
    /// factor s is multiplied with.
    private func underflow(_ factor: Double) -> Double { Double(Float.leastNormalMagnitude) * factor }

    /// sigmoid = 1 / (1 + e^−x) and SiLU = x / (1 + e^−x): e^−x within 2 ulp (4u relative),
    /// then one rounding in the sum and one in the division: 6u of the value (first order;
    /// the second-order terms are below 1e-13 of it).
    func testSigmoidAndSiLUAreWithinSixRoundingsOfTheirValue() {
        let x = inputs(seed: 1)
        var sigmoid = [Float](repeating: 0, count: x.count), silu = sigmoid
        cnn_sigmoid_f32(x, &sigmoid, x.count)
        cnn_silu_f32(x, &silu, x.count)
        for i in x.indices {
            let v = Double(x[i]), s = 1 / (1 + Foundation.exp(-v))
            XCTAssertLessThanOrEqual(abs(Double(sigmoid[i]) - s), 6 * u * s + underflow(1), "sigmoid(\(v))")
            XCTAssertLessThanOrEqual(abs(Double(silu[i]) - v * s), 6 * u * abs(v * s) + underflow(abs(v)), "silu(\(v))")
        }
    }

    /// dx = dy · s · (1 + x(1 − s)), with s within 6u of itself: 1 − s within 6u·s + u(1 − s)
    /// ≤ 6u; x times it within 7u·|x|; 1 plus that within u(1 + 8|x|); the two products add
    /// s's 6u and two roundings of the result, 8u·(1 + |x|) of |dy|·s. In all
    /// |dy|·s·u·(9 + 16|x|) ≤ 16u·|dy|·s·(1 + |x|), whether or not the compiler fuses a product.
    func testSiLUsGradientIsWithinItsRoundingBound() {
        let x = inputs(seed: 2), dy = inputs(seed: 3).map { $0 / 100 }
        var dx = [Float](repeating: 0, count: x.count)
        cnn_silu_backward_f32(x, dy, &dx, x.count)
        for i in x.indices {
            let v = Double(x[i]), d = Double(dy[i]), s = 1 / (1 + Foundation.exp(-v))
            let exact = d * s * (1 + v * (1 - s))
            XCTAssertLessThanOrEqual(abs(Double(dx[i]) - exact), 16 * u * abs(d) * s * (1 + abs(v)) + underflow(abs(d) * (1 + abs(v))),
                                     "silu'(\(v)) · \(d)")
        }
    }

    /// Below |z| = 1: the fit's 1.2e-9 relative, P's Horner sum (|P| ≤ 0.13) and its product
    /// with z within about 1 ulp, the final z + z·P half an ulp. From 1 on: e^−z² within
    /// (z² + 4)u relative (the rounded square, e^x's 2 ulp), Q within 0.25u (fit) plus about
    /// 3u (Horner, product), so e^−z²·Q ≤ erfc(1) = 0.157 carries at most 12u·0.157 ≈ 1.9 ulp
    /// of erf there (ulp = u on [0.5, 1)); the subtraction half an ulp: under 3 ulp in all.
    func testErfIsWithinThreeUlpsEverywhereAndKeepsNaN() {
        let x = sampledFloats + [0, -0, 1, -1, 0.99999994, 3.92, 4, 1e30, -1e30, .infinity, -.infinity, .nan, Float.leastNonzeroMagnitude]
        var y = [Float](repeating: 0, count: x.count)
        cnn_erf_f32(x, &y, x.count)
        assertWithinUlps(3, "erf", x, y, exact: Foundation.erf)
    }

    /// y = x/2 · (1 + erf(x/√2)): the argument carries two roundings (x·(1/√2) and 1/√2
    /// itself), which move erf by at most (2/√π)·max(z·e^−z²)·2u < u; erf adds 3 ulp ≤ 3u
    /// (|erf| < 1), 1 + erf one rounding ≤ u; halving is exact and the product with x one
    /// rounding ≤ u|y| ≤ u|x|: 3.5u·|x| in all. Absolute in |x|, not relative: where x ≪ 0,
    /// 1 + erf cancels (as in PyTorch's own float32 GELU).
    func testGELUIsWithinItsRoundingBound() {
        let x = inputs(seed: 4)
        var y = [Float](repeating: 0, count: x.count)
        cnn_gelu_f32(x, &y, x.count)
        for i in x.indices {
            let v = Double(x[i]), exact = 0.5 * v * (1 + Foundation.erf(v / 2.0.squareRoot()))
            XCTAssertLessThanOrEqual(abs(Double(y[i]) - exact), 3.5 * u * abs(v), "gelu(\(v))")
        }
    }

    /// dx = dy · (Φ + x·φ): Φ within half of the 5u of 1 + erf above; φ = e^(−x²/2)/√(2π)
    /// within (x²/2 + 6)u relative (the rounded square, e^x's 4u, the constant and the
    /// product), x·φ one more, and |x|·φ ≤ 0.242, |x|³·φ/2 ≤ 0.23: x·φ within 7u·0.242 + 0.23u
    /// ≈ 1.93u; the sum (≤ 1.13) one rounding ≤ 1.13u, the product with dy another: in all
    /// within 8u·|dy|, whether or not the compiler fuses a product.
    func testGELUsGradientIsWithinItsRoundingBound() {
        let x = inputs(seed: 5), dy = inputs(seed: 6).map { $0 / 100 }
        var dx = [Float](repeating: 0, count: x.count)
        cnn_gelu_backward_f32(x, dy, &dx, x.count)
        for i in x.indices {
            let v = Double(x[i]), d = Double(dy[i])
            let cdf = 0.5 * (1 + Foundation.erf(v / 2.0.squareRoot())), pdf = Foundation.exp(-v * v / 2) / (2 * Double.pi).squareRoot()
            XCTAssertLessThanOrEqual(abs(Double(dx[i]) - d * (cdf + v * pdf)), 8 * u * abs(d), "gelu'(\(v)) · \(d)")
        }
    }
}
